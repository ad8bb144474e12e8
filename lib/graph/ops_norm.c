/*
 * ops_norm.c - batch normalisation (training-mode batch statistics) and
 * layer normalisation, both with a learnable affine map.  Four passes each.
 *
 * Both normalise groups of m elements of x with the group's own mean and
 * biased variance (as torch), then scale and shift elementwise:
 *
 *     μ = mean(x),  v = mean((x − μ)²),  s = 1/√(v + ε),  x̂ = s (x − μ)
 *     y = γ x̂ + β
 *
 *   batch norm  x [rows, C, S...]: one group per channel c, holding the
 *               channel's values of every row of the chunk and every spatial
 *               position (m = rows S); γ, β [C].  Rows are coupled.
 *   layer norm  one group per example (m = size); γ, β [size] (torch's
 *               LayerNorm over the whole example shape).
 *
 * Write mean() for the group mean and P for the projection
 *     P(z) = z − mean(z) − x̂ mean(x̂ z)
 * (symmetric, it depends on x through x̂).  With g = γ ȳ, direction (γ̇, β̇),
 * a = mean(x̂ ẋ), d = P(ẋ):
 *
 *     backward:  x̄ += s P(g);   γ̄ += Σ ȳ x̂;   β̄ += Σ ȳ
 *     tangent:   x̂˙ = s d;   ẏ = γ x̂˙ + γ̇ x̂ + β̇
 *     tan-back:  ġ = γ̇ ȳ + γ (ȳ)˙
 *                (x̄)˙ += s [P(ġ) − s a P(g) − s d mean(x̂ g) − s x̂ mean(d g)]
 *                (γ̄)˙ += Σ ((ȳ)˙ x̂ + ȳ x̂˙);   (β̄)˙ += Σ (ȳ)˙
 *
 * (Σ over the elements sharing the parameter.)  The derivation is in
 * docs/derivations.md, "Batch and layer normalisation"; tests/test_ops_norm.c
 * checks it against finite differences.  Statistics are recomputed from x in
 * every pass; group sums accumulate in double, in four fixed lanes by the
 * spatial index (MGR_LANES: deterministic, and not one serial chain).
 * Batch norm's groups run on the context's threads (run_groups).
 *
 * Like every ops_<family>.c, this file is compiled three times: without
 * MGRAD_REAL_BITS it gives the ops' definitions (op.h), with 32 and 64
 * their passes.
 */
#ifndef MGRAD_REAL_BITS
/* ---- the definitions (untyped, compiled once) ---------------------------- */

#include <math.h>
#include <string.h>

#include "graph/graph.h"

/* The caller sets eps.  Batch norm: γ, β per channel (the first dimension);
   layer norm: per element of the example. */
static mgrad_status norm_infer(mgrad_context *ctx, const mgr_graph *g, mgr_node *node,
                               int64_t *param_count)
{
    const mgr_node *x = &g->nodes[node->in0];
    MGRAD_RETURN_IF(ctx, !(node->eps > 0) || !isfinite(node->eps), MGRAD_ERR_INVALID,
                    "%s: eps must be positive and finite (got %g; torch uses 1e-5)",
                    mgr_op_name(node->kind), node->eps);
    int64_t count = 2 * (node->kind == MGR_OP_BATCH_NORM ? x->shape[0] : x->size);
    MGRAD_FORWARD(mgr_check_param_total(ctx, g, node, count));
    MGRAD_FORWARD(mgr_infer_same_shape(ctx, g, node, param_count));
    *param_count = count;
    return MGRAD_OK;
}

mgrad_status mgr_init_gamma_beta(mgrad_context *ctx, const mgr_graph *g, int32_t k,
                                 uint64_t seed, double *theta)
{
    (void)ctx;
    (void)seed;
    const mgr_node *nd = &g->nodes[k];
    int64_t half = nd->param_count / 2;
    double *gamma = theta + nd->param_offset;
    for (int64_t i = 0; i < half; i++) gamma[i] = 1.0;
    memset(gamma + half, 0, (size_t)half * sizeof *gamma);
    return MGRAD_OK;
}

/* Which adjoints tangent_backward reads (the file comment's rule): ȳ
   enters (x̄)˙ through g = γ ȳ and ġ = γ̇ ȳ + γ (ȳ)˙, and (γ̄)˙ only through
   ȳ x̂˙ = ȳ s d, which vanishes with ẋ (d = P(ẋ)); (β̄)˙ reads (ȳ)˙ alone.
   So ȳ is read exactly when (x̄)˙ is wanted or ẋ ≠ 0, the dense layer's
   rule, although the op is not bilinear: its second-order terms in x
   (s a P(g), ...) all carry ẋ and feed (x̄)˙ only.  The passes follow it
   to the letter: group_tb_param_sums touches ȳ only when ẋ is given, and
   group_tb_xbardot runs only when (x̄)˙ is wanted (tests/test_graph.c,
   test_backward_rop_images, poisons the skipped adjoints). */
const mgr_op_def mgr_op_batch_norm = {
    .name = "batch norm",
    .inputs = 1,
    .flags = MGR_OP_FLAG_COUPLES_ROWS,
    .infer = norm_infer,
    .ybar_reads = MGR_YBAR_FOR_XBARDOT_OR_XDOT,
    .init = mgr_init_gamma_beta,
    MGR_OP_PASSES(batch_norm),
};

const mgr_op_def mgr_op_layer_norm = {
    .name = "layer norm",
    .inputs = 1,
    .infer = norm_infer,
    .ybar_reads = MGR_YBAR_FOR_XBARDOT_OR_XDOT, /* the same passes */
    .init = mgr_init_gamma_beta,
    MGR_OP_PASSES(layer_norm),
};

#else
/* ---- the passes (typed, compiled for f32 and f64) ------------------------ */

#include <assert.h>

#include "graph/ops.h"

/* The per-group functions below take the parameter step as an argument and
   are called with the constants 0 (batch norm: one γ per group) and 1
   (layer norm: γ per element); forced inlining makes each call a loop over
   contiguous elements with a scalar or a vector γ, which the compiler
   vectorises.  Without it they are still correct, only slower. */
#if defined(__GNUC__)
#define NORM_INLINE static inline __attribute__((always_inline))
#else
#define NORM_INLINE static inline
#endif

/* Lane sums in double (MGR_LANES): element j of a segment goes to lane
   j mod 4, written four at a time so that the four chains run side by side
   in vector registers.  The order of every lane's additions is that of a
   loop over j, so results do not depend on how the loop is written. */
#define SEG_LANES(S, j, acc, term)                                  \
    do {                                                            \
        size_t j = 0;                                               \
        for (; j + 4 <= (S); j += 4) {                              \
            size_t j0_ = j;                                         \
            for (size_t l_ = 0; l_ < 4; l_++) {                     \
                j = j0_ + l_;                                       \
                (acc)[l_] += (term);                                \
            }                                                       \
            j = j0_;                                                \
        }                                                           \
        for (; j < (S); j++) (acc)[j & 3] += (term);                \
    } while (0)

/* A group: `outer` segments of S contiguous elements, segment o at
   base + o stride; element j of a segment uses γ[gbase + gstep j]. */
typedef struct group {
    size_t base, outer, stride, S, gbase;
    double m;
} group;

/* The group's μ and s = 1/√(v + ε), two-pass in double. */
static void group_stats(const group *gr, const real *x, double eps, real *mu, real *s)
{
    MGR_LANES(sum);
    MGR_LANES(sq);
    for (size_t o = 0; o < gr->outer; o++) {
        const real *xs = x + gr->base + o * gr->stride;
        SEG_LANES(gr->S, j, sum, (double)xs[j]);
    }
    double mean = MGR_LANE_SUM(sum) / gr->m;
    for (size_t o = 0; o < gr->outer; o++) {
        const real *xs = x + gr->base + o * gr->stride;
        SEG_LANES(gr->S, j, sq, ((double)xs[j] - mean) * ((double)xs[j] - mean));
    }
    *mu = (real)mean;
    *s = (real)(1.0 / sqrt(MGR_LANE_SUM(sq) / gr->m + eps));
}

/* The per-op view: γ, β and their directions, the group of index i. */
typedef struct norm_op {
    size_t groups, nparam;   /* number of groups; length of γ (and of β) */
    int batch;               /* batch norm (else layer norm) */
    size_t C, S, size, rows;
} norm_op;

static norm_op op_of(const R(mgr_op_args) *a)
{
    norm_op n;
    n.batch = a->node->kind == MGR_OP_BATCH_NORM;
    n.size = (size_t)a->node->size;
    n.rows = a->rows;
    n.C = (size_t)a->node->shape[0];
    n.S = n.size / n.C;
    n.groups = n.batch ? n.C : a->rows;
    n.nparam = n.batch ? n.C : n.size;
    assert(a->in_size == n.size);
    return n;
}

static group group_of(const norm_op *n, size_t i)
{
    group g;
    if (n->batch) {
        g.base = i * n->S;
        g.outer = n->rows;
        g.stride = n->size;
        g.S = n->S;
        g.gbase = i;
    } else {
        g.base = i * n->size;
        g.outer = 1;
        g.stride = 0;
        g.S = n->size;
        g.gbase = 0;
    }
    g.m = (double)(g.outer * g.S);
    return g;
}

/* Segment o of the group in buffer v (NULL stays NULL). */
#define SEG(gr, v, o) ((v) != NULL ? (v) + (gr)->base + (o) * (gr)->stride : NULL)

/* y = γ x̂ + β on one group */
NORM_INLINE void group_forward(const group *gr, size_t gstep, const real *gamma,
                               const real *beta, const real *x, real mu, real s, real *y)
{
    const real *gm = gamma + gr->gbase, *bt = beta + gr->gbase;
    for (size_t o = 0; o < gr->outer; o++) {
        const real *restrict xs = SEG(gr, x, o);
        real *restrict ys = SEG(gr, y, o);
        for (size_t j = 0; j < gr->S; j++)
            ys[j] = gm[gstep * j] * (s * (xs[j] - mu)) + bt[gstep * j];
    }
}

/* Each pass runs group by group, the groups on the context's threads where
   they write disjoint memory: batch norm's groups (channels) own their γ̄,
   β̄ and their slices of y, x̄; layer norm's groups (rows) all add to every
   γ̄, β̄, so its passes stay on the calling thread.  A group is computed by
   the same code whatever thread runs it. */
static void run_groups(const R(mgr_op_args) *a, const norm_op *n, double work_per_elem,
                       mgr_pool_fn fn)
{
    double per_group = work_per_elem * (double)(n->rows * n->size) / (double)n->groups;
    mgr_pool_for(n->batch ? a->pool : NULL, n->groups, per_group, fn, (void *)a);
}

static void norm_forward_group(void *arg, size_t i)
{
    const R(mgr_op_args) *a = arg;
    norm_op n = op_of(a);
    const real *gamma = a->p, *beta = a->p + n.nparam;
    group gr = group_of(&n, i);
    real mu, s;
    group_stats(&gr, a->x, a->node->eps, &mu, &s);
    if (n.batch)
        group_forward(&gr, 0, gamma, beta, a->x, mu, s, a->y);
    else
        group_forward(&gr, 1, gamma, beta, a->x, mu, s, a->y);
}

static void norm_forward(const R(mgr_op_args) *a)
{
    norm_op n = op_of(a);
    run_groups(a, &n, 4, norm_forward_group);
}

/* γ̄ += Σ ȳ x̂ and β̄ += Σ ȳ over one group: with gstep = 1 (layer norm) every element has its
   own γ̄, β̄ (no sum); with gstep = 0 (batch norm) the group's elements sum
   in double lanes and the total is added once. */
NORM_INLINE void group_param_sums(const group *gr, size_t gstep, const real *x, real mu,
                                  real s, const real *yb, real *gb, real *bb)
{
    if (gstep == 0) {
        MGR_LANES(sgb);
        MGR_LANES(sbb);
        for (size_t o = 0; o < gr->outer; o++) {
            const real *xs = SEG(gr, x, o), *ys = SEG(gr, yb, o);
            SEG_LANES(gr->S, j, sgb, (double)(ys[j] * (s * (xs[j] - mu))));
            SEG_LANES(gr->S, j, sbb, (double)ys[j]);
        }
        gb[gr->gbase] += (real)MGR_LANE_SUM(sgb);
        bb[gr->gbase] += (real)MGR_LANE_SUM(sbb);
        return;
    }
    for (size_t o = 0; o < gr->outer; o++) {
        const real *xs = SEG(gr, x, o), *ys = SEG(gr, yb, o);
        real *restrict g = gb + gr->gbase, *restrict b = bb + gr->gbase;
        for (size_t j = 0; j < gr->S; j++) {
            g[j] += ys[j] * (s * (xs[j] - mu));
            b[j] += ys[j];
        }
    }
}

/* x̄ += s P(γ ȳ) on one group */
NORM_INLINE void group_xbar(const group *gr, size_t gstep, const real *gamma, const real *x,
                            real mu, real s, const real *yb, real *xbar)
{
    const real *gm = gamma + gr->gbase;
    MGR_LANES(sg);
    MGR_LANES(sxg);
    for (size_t o = 0; o < gr->outer; o++) {
        const real *xs = SEG(gr, x, o), *ys = SEG(gr, yb, o);
        SEG_LANES(gr->S, j, sg, (double)gm[gstep * j] * ys[j]);
        SEG_LANES(gr->S, j, sxg, (double)gm[gstep * j] * ys[j] * (s * (xs[j] - mu)));
    }
    real mg = (real)(MGR_LANE_SUM(sg) / gr->m), mxg = (real)(MGR_LANE_SUM(sxg) / gr->m);
    for (size_t o = 0; o < gr->outer; o++) {
        const real *restrict xs = SEG(gr, x, o), *restrict ys = SEG(gr, yb, o);
        real *restrict xb = SEG(gr, xbar, o);
        for (size_t j = 0; j < gr->S; j++) {
            real xh = s * (xs[j] - mu), g = gm[gstep * j] * ys[j];
            xb[j] += s * (g - mg - xh * mxg);
        }
    }
}

/* x̄ += s P(γ ȳ);  γ̄ += Σ ȳ x̂;  β̄ += Σ ȳ */
static void norm_backward_group(void *arg, size_t i)
{
    const R(mgr_op_args) *a = arg;
    norm_op n = op_of(a);
    const real *gamma = a->p;
    group gr = group_of(&n, i);
    real mu, s;
    group_stats(&gr, a->x, a->node->eps, &mu, &s);
    if (a->pbar != NULL) {
        if (n.batch)
            group_param_sums(&gr, 0, a->x, mu, s, a->ybar, a->pbar, a->pbar + n.nparam);
        else
            group_param_sums(&gr, 1, a->x, mu, s, a->ybar, a->pbar, a->pbar + n.nparam);
    }
    if (a->xbar == NULL) return;
    if (n.batch)
        group_xbar(&gr, 0, gamma, a->x, mu, s, a->ybar, a->xbar);
    else
        group_xbar(&gr, 1, gamma, a->x, mu, s, a->ybar, a->xbar);
}

static void norm_backward(const R(mgr_op_args) *a)
{
    norm_op n = op_of(a);
    run_groups(a, &n, 7, norm_backward_group);
}

/* The tangent's per-group constants: mean(ẋ) and a = mean(x̂ ẋ). */
static void xdot_means(const group *gr, const real *x, const real *xd, real mu, real s,
                       real *mxd, real *ma)
{
    MGR_LANES(sd);
    MGR_LANES(sa);
    for (size_t o = 0; o < gr->outer; o++) {
        const real *xs = SEG(gr, x, o), *ds = SEG(gr, xd, o);
        SEG_LANES(gr->S, j, sd, (double)ds[j]);
        SEG_LANES(gr->S, j, sa, (double)ds[j] * (s * (xs[j] - mu)));
    }
    *mxd = (real)(MGR_LANE_SUM(sd) / gr->m);
    *ma = (real)(MGR_LANE_SUM(sa) / gr->m);
}

/* ẏ = γ s P(ẋ) + γ̇ x̂ + β̇ on one group (xd, u may be NULL: zero) */
NORM_INLINE void group_tangent(const group *gr, size_t gstep, size_t nparam,
                               const real *gamma, const real *u, const real *x,
                               const real *xd, real mu, real s, real mxd, real ma, real *ydot)
{
    const real *gm = gamma + gr->gbase;
    const real *ug = u != NULL ? u + gr->gbase : NULL, *ub = u != NULL ? ug + nparam : NULL;
    for (size_t o = 0; o < gr->outer; o++) {
        const real *restrict xs = SEG(gr, x, o), *restrict ds = SEG(gr, xd, o);
        real *restrict ys = SEG(gr, ydot, o);
        if (ds != NULL && ug != NULL) {
            for (size_t j = 0; j < gr->S; j++) {
                real xh = s * (xs[j] - mu);
                ys[j] = gm[gstep * j] * s * (ds[j] - mxd - xh * ma) +
                        (ug[gstep * j] * xh + ub[gstep * j]);
            }
        } else if (ds != NULL) {
            for (size_t j = 0; j < gr->S; j++) {
                real xh = s * (xs[j] - mu);
                ys[j] = gm[gstep * j] * s * (ds[j] - mxd - xh * ma);
            }
        } else if (ug != NULL) {
            for (size_t j = 0; j < gr->S; j++) {
                real xh = s * (xs[j] - mu);
                ys[j] = (real)0 + (ug[gstep * j] * xh + ub[gstep * j]);
            }
        } else {
            for (size_t j = 0; j < gr->S; j++) ys[j] = 0;
        }
    }
}

/* ẏ = γ s P(ẋ) + γ̇ x̂ + β̇ */
static void norm_tangent_group(void *arg, size_t i)
{
    const R(mgr_op_args) *a = arg;
    norm_op n = op_of(a);
    const real *xd = a->xdot;
    group gr = group_of(&n, i);
    real mu, s, mxd = 0, ma = 0;
    group_stats(&gr, a->x, a->node->eps, &mu, &s);
    if (xd != NULL) xdot_means(&gr, a->x, xd, mu, s, &mxd, &ma);
    if (n.batch)
        group_tangent(&gr, 0, n.nparam, a->p, a->u, a->x, xd, mu, s, mxd, ma, a->ydot);
    else
        group_tangent(&gr, 1, n.nparam, a->p, a->u, a->x, xd, mu, s, mxd, ma, a->ydot);
}

static void norm_tangent(const R(mgr_op_args) *a)
{
    norm_op n = op_of(a);
    run_groups(a, &n, 7, norm_tangent_group);
}

/* (γ̄)˙ += Σ ((ȳ)˙ x̂ + ȳ s d);  (β̄)˙ += Σ (ȳ)˙ on one group, summed as in
   group_param_sums */
NORM_INLINE void group_tb_param_sums(const group *gr, size_t gstep, const real *x,
                                     const real *xd, real mu, real s, real mxd, real ma,
                                     const real *yb, const real *ybd, real *gd, real *bd)
{
    MGR_LANES(sgd);
    MGR_LANES(sbd);
    for (size_t o = 0; o < gr->outer; o++) {
        const real *restrict xs = SEG(gr, x, o), *restrict ds = SEG(gr, xd, o);
        const real *restrict ys = SEG(gr, yb, o), *restrict yds = SEG(gr, ybd, o);
        if (gstep == 0) {
            if (ds != NULL)
                SEG_LANES(gr->S, j, sgd,
                          (double)(yds[j] * (s * (xs[j] - mu)) +
                                   ys[j] * s * (ds[j] - mxd - (s * (xs[j] - mu)) * ma)));
            else
                SEG_LANES(gr->S, j, sgd, (double)(yds[j] * (s * (xs[j] - mu))));
            SEG_LANES(gr->S, j, sbd, (double)yds[j]);
            continue;
        }
        real *restrict g = gd + gr->gbase, *restrict b = bd + gr->gbase;
        for (size_t j = 0; j < gr->S; j++) {
            real xh = s * (xs[j] - mu);
            real v = yds[j] * xh;
            if (ds != NULL) v += ys[j] * s * (ds[j] - mxd - xh * ma);
            g[j] += v;
            b[j] += yds[j];
        }
    }
    if (gstep == 0) {
        gd[gr->gbase] += (real)MGR_LANE_SUM(sgd);
        bd[gr->gbase] += (real)MGR_LANE_SUM(sbd);
    }
}

/* (x̄)˙ += s [P(ġ) − s a P(g) − s d mean(x̂ g) − s x̂ mean(d g)],
   ġ = γ̇ ȳ + γ (ȳ)˙, on one group */
NORM_INLINE void group_tb_xbardot(const group *gr, size_t gstep, const real *gamma,
                                  const real *u, const real *x, const real *xd, real mu,
                                  real s, real mxd, real ma, const real *yb,
                                  const real *ybd, real *xbardot)
{
    const real *gm = gamma + gr->gbase, *ug = u != NULL ? u + gr->gbase : NULL;
    /* Group means of g, x̂ g, ġ, x̂ ġ and ẋ g. */
    MGR_LANES(sg);
    MGR_LANES(sxg);
    MGR_LANES(sgd);
    MGR_LANES(sxgd);
    MGR_LANES(sdg);
    for (size_t o = 0; o < gr->outer; o++) {
        const real *xs = SEG(gr, x, o), *ds = SEG(gr, xd, o);
        const real *ys = SEG(gr, yb, o), *yds = SEG(gr, ybd, o);
#define XH_ ((double)(s * (xs[j] - mu)))
#define G_ ((double)gm[gstep * j] * ys[j])
        SEG_LANES(gr->S, j, sg, G_);
        SEG_LANES(gr->S, j, sxg, XH_ * G_);
        if (ug != NULL) {
            SEG_LANES(gr->S, j, sgd, (double)gm[gstep * j] * yds[j] + (double)ug[gstep * j] * ys[j]);
            SEG_LANES(gr->S, j, sxgd, XH_ * ((double)gm[gstep * j] * yds[j] +
                                             (double)ug[gstep * j] * ys[j]));
        } else {
            SEG_LANES(gr->S, j, sgd, (double)gm[gstep * j] * yds[j] + 0.0);
            SEG_LANES(gr->S, j, sxgd, XH_ * ((double)gm[gstep * j] * yds[j] + 0.0));
        }
        if (ds != NULL) SEG_LANES(gr->S, j, sdg, (double)ds[j] * G_);
#undef XH_
#undef G_
    }
    double m = gr->m;
    real mg = (real)(MGR_LANE_SUM(sg) / m), mxg = (real)(MGR_LANE_SUM(sxg) / m);
    real mgd = (real)(MGR_LANE_SUM(sgd) / m), mxgd = (real)(MGR_LANE_SUM(sxgd) / m);
    /* mean(d g) = mean(ẋ g) − mean(ẋ) mean(g) − a mean(x̂ g) */
    real mdg = (real)(MGR_LANE_SUM(sdg) / m) - mxd * mg - ma * mxg;
    for (size_t o = 0; o < gr->outer; o++) {
        const real *restrict xs = SEG(gr, x, o), *restrict ds = SEG(gr, xd, o);
        const real *restrict ys = SEG(gr, yb, o), *restrict yds = SEG(gr, ybd, o);
        real *restrict xo = SEG(gr, xbardot, o);
        for (size_t j = 0; j < gr->S; j++) {
            real xh = s * (xs[j] - mu);
            real g = gm[gstep * j] * ys[j];
            real gd = gm[gstep * j] * yds[j] + (ug != NULL ? ug[gstep * j] * ys[j] : 0);
            real v = gd - mgd - xh * mxgd; /* P(ġ) */
            if (ds != NULL) {
                real dd = ds[j] - mxd - xh * ma; /* d */
                real pg = g - mg - xh * mxg;     /* P(g) */
                v -= s * (ma * pg + dd * mxg + xh * mdg);
            }
            xo[j] += s * v;
        }
    }
}

/* (x̄)˙ += s [P(ġ) − s a P(g) − s d mean(x̂ g) − s x̂ mean(d g)],  ġ = γ̇ ȳ + γ (ȳ)˙;
   (γ̄)˙ += Σ ((ȳ)˙ x̂ + ȳ s d);  (β̄)˙ += Σ (ȳ)˙ */
static void norm_tangent_backward_group(void *arg, size_t i)
{
    const R(mgr_op_args) *a = arg;
    norm_op n = op_of(a);
    const real *x = a->x, *xd = a->xdot;
    group gr = group_of(&n, i);
    real mu, s, mxd = 0, ma = 0;
    group_stats(&gr, x, a->node->eps, &mu, &s);
    if (xd != NULL) xdot_means(&gr, x, xd, mu, s, &mxd, &ma);
    if (a->pbardot != NULL) {
        real *gd = a->pbardot, *bd = a->pbardot + n.nparam;
        if (n.batch)
            group_tb_param_sums(&gr, 0, x, xd, mu, s, mxd, ma, a->ybar, a->ybardot, gd, bd);
        else
            group_tb_param_sums(&gr, 1, x, xd, mu, s, mxd, ma, a->ybar, a->ybardot, gd, bd);
    }
    if (a->xbardot == NULL) return;
    if (n.batch)
        group_tb_xbardot(&gr, 0, a->p, a->u, x, xd, mu, s, mxd, ma, a->ybar, a->ybardot,
                         a->xbardot);
    else
        group_tb_xbardot(&gr, 1, a->p, a->u, x, xd, mu, s, mxd, ma, a->ybar, a->ybardot,
                         a->xbardot);
}

static void norm_tangent_backward(const R(mgr_op_args) *a)
{
    norm_op n = op_of(a);
    run_groups(a, &n, 12, norm_tangent_backward_group);
}

/* Both ops run the same passes; op_of tells them apart by the node's kind. */
MGR_OP_PASS_TABLE(batch_norm, norm);
MGR_OP_PASS_TABLE(layer_norm, norm);

#endif
