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
 * checks it against finite differences.
 *
 * The passes are memory-bound, so each reads its arrays in three sweeps per
 * group and no more.  The forward keeps μ and s of every group (the op's
 * `saved` doubles); backward and tangent take them from there and skip
 * sweep 1 below (tangent_backward keeps it: measured faster).
 *   1. μ = Σ x / m.
 *   2. One sweep for every other sum, in c = x − μ: the variance (two-pass,
 *      for accuracy) v = Σ c² / m, and the pass's moments.  s is a scalar
 *      per group, so it factors out: Σ x̂ z = s Σ c z.  Backward needs
 *      Σ g, Σ c g; tangent Σ ẋ, Σ c ẋ; tangent_backward all of
 *          Σ ẋ, Σ c ẋ, Σ g, Σ c g, Σ ġ, Σ c ġ, Σ ẋ g
 *      giving a = s Σ c ẋ / m, mean(x̂ g) = s Σ c g / m, ... and
 *      mean(d g) = mean(ẋ g) − mean(ẋ) mean(g) − a mean(x̂ g).  Batch norm
 *      sums ȳ and (ȳ)˙ in place of g and ġ (its γ, γ̇ are scalars per group:
 *      Σ g = γ Σ ȳ, Σ ġ = γ̇ Σ ȳ + γ Σ (ȳ)˙), which also gives its parameter
 *      sums without another sweep:
 *          γ̄ += s Σ ȳ c;   β̄ += Σ ȳ
 *          (γ̄)˙ += s [Σ (ȳ)˙ c + Σ ȳ ẋ − mean(ẋ) Σ ȳ − s a Σ ȳ c];   (β̄)˙ += Σ (ȳ)˙
 *      (the second expands Σ ((ȳ)˙ x̂ + ȳ s d) with d = ẋ − mean(ẋ) − a x̂).
 *   3. One sweep writes y, x̄, ẏ or (x̄)˙ elementwise from the group's
 *      constants; layer norm's per-element γ̄, β̄, (γ̄)˙, (β̄)˙ are written
 *      here too.
 * So tangent_backward, the widest pass, moves 11 array-lengths per group: x;
 * x, ẋ, ȳ, (ȳ)˙; the same four and (x̄)˙ read and written.  Sums accumulate in
 * double, in four fixed lanes by the spatial index (MGR_LANES: deterministic,
 * and not one serial chain).  Batch norm's groups run on the context's
 * threads (run_groups).
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

/* The forward keeps each group's μ and s (two doubles per channel, or per
   row for layer norm) for the other passes of the chunk: they skip the
   sweep for μ and take the same s (the same bits as recomputing both). */
static size_t norm_saved(const mgr_graph *g, int32_t k, size_t max_rows)
{
    const mgr_node *nd = &g->nodes[k];
    size_t groups = nd->kind == MGR_OP_BATCH_NORM ? (size_t)nd->shape[0] : max_rows;
    return groups > SIZE_MAX / 2 ? SIZE_MAX : 2 * groups;
}

/* Which adjoints tangent_backward reads (the file comment's rule): ȳ
   enters (x̄)˙ through g = γ ȳ and ġ = γ̇ ȳ + γ (ȳ)˙, and (γ̄)˙ only through
   ȳ x̂˙ = ȳ s d, which vanishes with ẋ (d = P(ẋ)); (β̄)˙ reads (ȳ)˙ alone.
   So ȳ is read exactly when (x̄)˙ is wanted or ẋ ≠ 0, the dense layer's
   rule, although the op is not bilinear: its second-order terms in x
   (s a P(g), ...) all carry ẋ and feed (x̄)˙ only.  The pass follows it
   to the letter: norm_tangent_backward_group reads ȳ only when (x̄)˙ is
   wanted or ẋ is given (tests/test_graph.c, test_backward_rop_images,
   poisons the skipped adjoints). */
const mgr_op_def mgr_op_batch_norm = {
    .name = "batch norm",
    .inputs = 1,
    .flags = MGR_OP_FLAG_COUPLES_ROWS,
    .infer = norm_infer,
    .saved = norm_saved,
    .ybar_reads = MGR_YBAR_FOR_XBARDOT_OR_XDOT,
    .init = mgr_init_gamma_beta,
    MGR_OP_PASSES(batch_norm),
};

const mgr_op_def mgr_op_layer_norm = {
    .name = "layer norm",
    .inputs = 1,
    .infer = norm_infer,
    .saved = norm_saved,
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

/* Segment o of the group in buffer v (NULL stays NULL). */
#define SEG(gr, v, o) ((v) != NULL ? (v) + (gr)->base + (o) * (gr)->stride : NULL)

/* The first sweep: μ = mean(x) in double. */
static double group_mean(const group *gr, const real *x)
{
    MGR_LANES(sum);
    for (size_t o = 0; o < gr->outer; o++) {
        const real *xs = SEG(gr, x, o);
        SEG_LANES(gr->S, j, sum, (double)xs[j]);
    }
    return MGR_LANE_SUM(sum) / gr->m;
}

/* The group sums of the second sweep, c = x − μ (μ in double).  With
   gstep = 0 (batch norm) g = ȳ and ġ = (ȳ)˙ (the pass multiplies by the
   group's γ, γ̇ afterwards, and also needs the raw sums for γ̄, (γ̄)˙); with
   gstep = 1 (layer norm) g = γ ȳ and ġ = γ̇ ȳ + γ (ȳ)˙ per element. */
typedef struct moments {
    double q;          /* Σ c²  (v = q/m: the two-pass variance) */
    double xd, cxd;    /* Σ ẋ, Σ c ẋ */
    double g, cg;      /* Σ g, Σ c g */
    double gd, cgd;    /* Σ ġ, Σ c ġ */
    double xdg;        /* Σ ẋ g */
} moments;

/* One sweep for all the sums a pass needs; the flags (constants after
   inlining) say which inputs are read, so each caller's loop keeps only its
   accumulators.  XD: ẋ; YB: ȳ; YBD: (ȳ)˙; U: γ̇ (gstep = 1 only).  Lanes
   as SEG_LANES: element j to lane j mod 4, each lane in the order of j.
   Up to eight sums of four lanes do not fit SSE2's 16 registers, so some
   accumulators live in memory; measured (bench_rop, perf), converting four
   elements at a time and then running one short loop per sum is the
   fastest form: one loop with every sum in its body, or L1-sized blocks
   read by several narrower loops, vectorised worse. */
NORM_INLINE void moments_sweep(const group *gr, size_t gstep, int XD, int YB, int YBD, int U,
                               double mu, const real *gamma, const real *u, const real *x,
                               const real *xd, const real *yb, const real *ybd, moments *out)
{
    const real *gm = gamma + gr->gbase, *ug = U ? u + gr->gbase : NULL;
    MGR_LANES(q);
    MGR_LANES(sxd);
    MGR_LANES(scxd);
    MGR_LANES(sg);
    MGR_LANES(scg);
    MGR_LANES(sgd);
    MGR_LANES(scgd);
    MGR_LANES(sxdg);
    for (size_t o = 0; o < gr->outer; o++) {
        const real *restrict xs = SEG(gr, x, o), *restrict ds = SEG(gr, xd, o);
        const real *restrict ys = SEG(gr, yb, o), *restrict yds = SEG(gr, ybd, o);
        size_t j0 = 0;
        /* Four elements at a time, each converted to double once, then one
           short loop per sum: the shape the vectoriser maps to registers. */
        for (; j0 + 4 <= gr->S; j0 += 4) {
            double c[4], d[4], g[4], gd[4];
            for (size_t l = 0; l < 4; l++) {
                size_t j = j0 + l;
                c[l] = (double)xs[j] - mu;
                d[l] = XD ? (double)ds[j] : 0.0;
                g[l] = YB ? (gstep ? (double)gm[j] * ys[j] : (double)ys[j]) : 0.0;
                gd[l] = YBD ? (gstep ? (double)gm[j] * yds[j] : (double)yds[j]) : 0.0;
                if (gstep && U && YB && YBD) gd[l] += (double)ug[j] * ys[j];
            }
            for (size_t l = 0; l < 4; l++) q[l] += c[l] * c[l];
            if (XD) {
                for (size_t l = 0; l < 4; l++) sxd[l] += d[l];
                for (size_t l = 0; l < 4; l++) scxd[l] += c[l] * d[l];
            }
            if (YB) {
                for (size_t l = 0; l < 4; l++) sg[l] += g[l];
                for (size_t l = 0; l < 4; l++) scg[l] += c[l] * g[l];
                if (XD)
                    for (size_t l = 0; l < 4; l++) sxdg[l] += d[l] * g[l];
            }
            if (YBD) {
                for (size_t l = 0; l < 4; l++) sgd[l] += gd[l];
                for (size_t l = 0; l < 4; l++) scgd[l] += c[l] * gd[l];
            }
        }
        for (size_t j = j0; j < gr->S; j++) {
            size_t l = j & 3;
            double c = (double)xs[j] - mu;
            q[l] += c * c;
            if (XD) {
                sxd[l] += (double)ds[j];
                scxd[l] += c * ds[j];
            }
            if (YB) {
                double g = gstep ? (double)gm[j] * ys[j] : (double)ys[j];
                sg[l] += g;
                scg[l] += c * g;
                if (XD) sxdg[l] += (double)ds[j] * g;
            }
            if (YBD) {
                double gd = gstep ? (double)gm[j] * yds[j] : (double)yds[j];
                if (gstep && U && YB) gd += (double)ug[j] * ys[j];
                sgd[l] += gd;
                scgd[l] += c * gd;
            }
        }
    }
    out->q = MGR_LANE_SUM(q);
    out->xd = MGR_LANE_SUM(sxd);
    out->cxd = MGR_LANE_SUM(scxd);
    out->g = MGR_LANE_SUM(sg);
    out->cg = MGR_LANE_SUM(scg);
    out->gd = MGR_LANE_SUM(sgd);
    out->cgd = MGR_LANE_SUM(scgd);
    out->xdg = MGR_LANE_SUM(sxdg);
}

/* moments_sweep with the flags read off the pointers (NULL: not read;
   u only matters with gstep = 1 and both adjoints). */
NORM_INLINE void group_moments(const group *gr, size_t gstep, double mu, const real *gamma,
                               const real *u, const real *x, const real *xd, const real *yb,
                               const real *ybd, moments *out)
{
#define MOMENTS_(XD, YB, YBD, U) \
    moments_sweep(gr, gstep, XD, YB, YBD, U, mu, gamma, u, x, xd, yb, ybd, out)
    if (gstep && u != NULL && yb != NULL && ybd != NULL) {
        if (xd != NULL)
            MOMENTS_(1, 1, 1, 1);
        else
            MOMENTS_(0, 1, 1, 1);
        return;
    }
    switch ((xd != NULL) * 4 + (yb != NULL) * 2 + (ybd != NULL)) {
    case 0: MOMENTS_(0, 0, 0, 0); break;
    case 1: MOMENTS_(0, 0, 1, 0); break;
    case 2: MOMENTS_(0, 1, 0, 0); break;
    case 3: MOMENTS_(0, 1, 1, 0); break;
    case 4: MOMENTS_(1, 0, 0, 0); break;
    case 5: MOMENTS_(1, 0, 1, 0); break;
    case 6: MOMENTS_(1, 1, 0, 0); break;
    default: MOMENTS_(1, 1, 1, 0); break;
    }
#undef MOMENTS_
}

/* s = 1/√(v + ε) from Σ (x − μ)² */
static double inv_std(const group *gr, const moments *mo, double eps)
{
    return 1.0 / sqrt(mo->q / gr->m + eps);
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

/* ---- forward: y = γ x̂ + β ---- */

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

static void norm_forward_group(void *arg, size_t i)
{
    const R(mgr_op_args) *a = arg;
    norm_op n = op_of(a);
    const real *gamma = a->p, *beta = a->p + n.nparam;
    group gr = group_of(&n, i);
    double mu = group_mean(&gr, a->x);
    moments mo;
    group_moments(&gr, 0, mu, gamma, NULL, a->x, NULL, NULL, NULL, &mo);
    double sd = inv_std(&gr, &mo, a->node->eps);
    a->saved[2 * i] = mu;
    a->saved[2 * i + 1] = sd;
    real s = (real)sd;
    if (n.batch)
        group_forward(&gr, 0, gamma, beta, a->x, (real)mu, s, a->y);
    else
        group_forward(&gr, 1, gamma, beta, a->x, (real)mu, s, a->y);
}

static void norm_forward(const R(mgr_op_args) *a)
{
    norm_op n = op_of(a);
    run_groups(a, &n, 4, norm_forward_group);
}

/* ---- backward: x̄ += s P(g);  γ̄ += Σ ȳ x̂;  β̄ += Σ ȳ ---- */

/* The write sweep: x̄ += s (g − mean(g) − x̂ mean(x̂ g)) where xbar is given;
   with gstep = 1 also γ̄ += ȳ x̂, β̄ += ȳ per element where gb is given
   (batch norm's γ̄, β̄ come from the sums). */
NORM_INLINE void group_backward_write(const group *gr, size_t gstep, const real *gamma,
                                      const real *x, real mu, real s, real mg, real mxg,
                                      const real *yb, real *xbar, real *gb, real *bb)
{
    const real *gm = gamma + gr->gbase;
    for (size_t o = 0; o < gr->outer; o++) {
        const real *restrict xs = SEG(gr, x, o), *restrict ys = SEG(gr, yb, o);
        real *restrict xb = SEG(gr, xbar, o);
        if (xb != NULL)
            for (size_t j = 0; j < gr->S; j++) {
                real xh = s * (xs[j] - mu), g = gm[gstep * j] * ys[j];
                xb[j] += s * (g - mg - xh * mxg);
            }
        if (gstep == 1 && gb != NULL) {
            real *restrict g = gb + gr->gbase, *restrict b = bb + gr->gbase;
            for (size_t j = 0; j < gr->S; j++) {
                g[j] += ys[j] * (s * (xs[j] - mu));
                b[j] += ys[j];
            }
        }
    }
}

static void norm_backward_group(void *arg, size_t i)
{
    const R(mgr_op_args) *a = arg;
    norm_op n = op_of(a);
    const real *gamma = a->p;
    real *gb = a->pbar, *bb = a->pbar != NULL ? a->pbar + n.nparam : NULL;
    group gr = group_of(&n, i);
    double mu = a->saved[2 * i], s = a->saved[2 * i + 1];
    /* Batch norm's sums serve γ̄, β̄ as well; layer norm's only x̄. */
    int want_g = a->xbar != NULL || (n.batch && gb != NULL);
    moments mo;
    if (n.batch)
        group_moments(&gr, 0, mu, gamma, NULL, a->x, NULL, want_g ? a->ybar : NULL, NULL, &mo);
    else
        group_moments(&gr, 1, mu, gamma, NULL, a->x, NULL, want_g ? a->ybar : NULL, NULL, &mo);
    /* Σ g = γ Σ ȳ, Σ x̂ g = s γ Σ c ȳ for batch norm (mo holds ȳ's sums) */
    double gam = n.batch ? (double)gamma[gr.gbase] : 1.0;
    if (n.batch && gb != NULL) {
        gb[gr.gbase] += (real)(s * mo.cg);
        bb[gr.gbase] += (real)mo.g;
    }
    if (a->xbar == NULL && (n.batch || gb == NULL)) return;
    real mg = (real)(gam * mo.g / gr.m), mxg = (real)(s * gam * mo.cg / gr.m);
    if (n.batch)
        group_backward_write(&gr, 0, gamma, a->x, (real)mu, (real)s, mg, mxg, a->ybar, a->xbar,
                             NULL, NULL);
    else
        group_backward_write(&gr, 1, gamma, a->x, (real)mu, (real)s, mg, mxg, a->ybar, a->xbar,
                             gb, bb);
}

static void norm_backward(const R(mgr_op_args) *a)
{
    norm_op n = op_of(a);
    run_groups(a, &n, 7, norm_backward_group);
}

/* ---- tangent: ẏ = γ s P(ẋ) + γ̇ x̂ + β̇ ---- */

/* The write sweep (xd, u may be NULL: zero); mxd = mean(ẋ), ma = a. */
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

static void norm_tangent_group(void *arg, size_t i)
{
    const R(mgr_op_args) *a = arg;
    norm_op n = op_of(a);
    const real *xd = a->xdot;
    group gr = group_of(&n, i);
    double mu = a->saved[2 * i], s = a->saved[2 * i + 1];
    moments mo;
    group_moments(&gr, 0, mu, a->p, NULL, a->x, xd, NULL, NULL, &mo);
    /* mean(ẋ), a = mean(x̂ ẋ) = s Σ c ẋ / m (both 0 without ẋ) */
    real mxd = (real)(mo.xd / gr.m), ma = (real)(s * mo.cxd / gr.m);
    if (n.batch)
        group_tangent(&gr, 0, n.nparam, a->p, a->u, a->x, xd, (real)mu, (real)s, mxd, ma,
                      a->ydot);
    else
        group_tangent(&gr, 1, n.nparam, a->p, a->u, a->x, xd, (real)mu, (real)s, mxd, ma,
                      a->ydot);
}

static void norm_tangent(const R(mgr_op_args) *a)
{
    norm_op n = op_of(a);
    run_groups(a, &n, 7, norm_tangent_group);
}

/* ---- tangent of backward ----
   (x̄)˙ += s [P(ġ) − s a P(g) − s d mean(x̂ g) − s x̂ mean(d g)],  ġ = γ̇ ȳ + γ (ȳ)˙;
   (γ̄)˙ += Σ ((ȳ)˙ x̂ + ȳ s d);  (β̄)˙ += Σ (ȳ)˙ */

/* The per-group means the write sweep uses. */
typedef struct tb_means {
    real mxd, ma;      /* mean(ẋ), a = mean(x̂ ẋ) */
    real mg, mxg;      /* mean(g), mean(x̂ g) */
    real mgd, mxgd;    /* mean(ġ), mean(x̂ ġ) */
    real mdg;          /* mean(d g) */
} tb_means;

/* The write sweep: (x̄)˙ where xbardot is given; with gstep = 1 also the
   per-element (γ̄)˙ += (ȳ)˙ x̂ + ȳ s d, (β̄)˙ += (ȳ)˙ where gd is given (ȳ
   read there only with ẋ; batch norm's come from the sums). */
NORM_INLINE void group_tb_write(const group *gr, size_t gstep, const real *gamma,
                                const real *u, const real *x, const real *xd, real mu, real s,
                                const tb_means *t, const real *yb, const real *ybd,
                                real *xbardot, real *gdot, real *bdot)
{
    const real *gm = gamma + gr->gbase, *ug = u != NULL ? u + gr->gbase : NULL;
    real mxd = t->mxd, ma = t->ma, mg = t->mg, mxg = t->mxg;
    real mgd = t->mgd, mxgd = t->mxgd, mdg = t->mdg;
    for (size_t o = 0; o < gr->outer; o++) {
        const real *restrict xs = SEG(gr, x, o), *restrict ds = SEG(gr, xd, o);
        const real *restrict ys = SEG(gr, yb, o), *restrict yds = SEG(gr, ybd, o);
        real *restrict xo = SEG(gr, xbardot, o);
        if (xo != NULL)
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
        if (gstep == 1 && gdot != NULL) {
            real *restrict gp = gdot + gr->gbase, *restrict bp = bdot + gr->gbase;
            for (size_t j = 0; j < gr->S; j++) {
                real xh = s * (xs[j] - mu);
                real v = yds[j] * xh;
                if (ds != NULL) v += ys[j] * s * (ds[j] - mxd - xh * ma);
                gp[j] += v;
                bp[j] += yds[j];
            }
        }
    }
}

static void norm_tangent_backward_group(void *arg, size_t i)
{
    const R(mgr_op_args) *a = arg;
    norm_op n = op_of(a);
    const real *x = a->x, *xd = a->xdot, *gamma = a->p;
    real *gdot = a->pbardot, *bdot = a->pbardot != NULL ? a->pbardot + n.nparam : NULL;
    group gr = group_of(&n, i);
    double m = gr.m;
    /* μ again from x although the forward kept it (the same bits): with
       the extra sweep this pass ran 3-5 % faster than without it
       (bench_rop small, interleaved), x then being in cache for the
       four-input sums sweep. */
    double mu = group_mean(&gr, x), s = a->saved[2 * i + 1];
    /* ȳ is read when (x̄)˙ is wanted or ẋ ≠ 0 (the op's ybar_reads rule);
       (ȳ)˙ when (x̄)˙ is wanted or, for batch norm's sums, (γ̄)˙. */
    int want_xo = a->xbardot != NULL;
    const real *yb = want_xo || xd != NULL ? a->ybar : NULL;
    moments mo;
    if (n.batch) {
        const real *ybd = want_xo || gdot != NULL ? a->ybardot : NULL;
        if (ybd == NULL) return;
        group_moments(&gr, 0, mu, gamma, NULL, x, xd, yb, ybd, &mo);
    } else if (want_xo) {
        group_moments(&gr, 1, mu, gamma, a->u, x, xd, yb, a->ybardot, &mo);
    } else {
        if (gdot == NULL) return;
        group_moments(&gr, 1, mu, gamma, NULL, x, xd, NULL, NULL, &mo);
    }
    double mxd = mo.xd / m, ma = s * mo.cxd / m;
    double sg = mo.g, scg = mo.cg, sgd = mo.gd, scgd = mo.cgd, sxdg = mo.xdg;
    if (n.batch) {
        /* (γ̄)˙ += s Σ (ȳ)˙ c + Σ ȳ s (ẋ − mean(ẋ) − a s c)
                 = s [Σ (ȳ)˙ c + Σ ȳ ẋ − mean(ẋ) Σ ȳ − a s Σ ȳ c] */
        if (gdot != NULL) {
            double v = mo.cgd;
            if (xd != NULL) v += mo.xdg - mxd * mo.g - ma * s * mo.cg;
            gdot[gr.gbase] += (real)(s * v);
            bdot[gr.gbase] += (real)mo.gd;
        }
        if (!want_xo) return;
        /* g = γ ȳ, ġ = γ̇ ȳ + γ (ȳ)˙ with the group's scalars */
        double gam = gamma[gr.gbase], gdir = a->u != NULL ? a->u[gr.gbase] : 0.0;
        sgd = gdir * mo.g + gam * mo.gd;
        scgd = gdir * mo.cg + gam * mo.cgd;
        sg = gam * mo.g;
        scg = gam * mo.cg;
        sxdg = gam * mo.xdg;
    }
    tb_means t;
    t.mxd = (real)mxd;
    t.ma = (real)ma;
    t.mg = (real)(sg / m);
    t.mxg = (real)(s * scg / m);
    t.mgd = (real)(sgd / m);
    t.mxgd = (real)(s * scgd / m);
    /* mean(d g) = mean(ẋ g) − mean(ẋ) mean(g) − a mean(x̂ g) */
    t.mdg = (real)(sxdg / m - mxd * (sg / m) - ma * (s * scg / m));
    if (n.batch)
        group_tb_write(&gr, 0, gamma, a->u, x, xd, (real)mu, (real)s, &t, a->ybar, a->ybardot,
                       a->xbardot, NULL, NULL);
    else
        group_tb_write(&gr, 1, gamma, a->u, x, xd, (real)mu, (real)s, &t,
                       want_xo || xd != NULL ? a->ybar : NULL, a->ybardot, a->xbardot, gdot,
                       bdot);
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
