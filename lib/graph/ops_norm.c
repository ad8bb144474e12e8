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
 * docs/derivations.md, "Batch and layer normalisation"; tests/test_conv.c
 * checks it against finite differences.  Statistics are recomputed from x in
 * every pass; group sums accumulate in double, in four fixed lanes by the
 * spatial index (MGR_LANES: deterministic, and not one serial chain).
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

/* γ = 1 then β = 0, as torch (no draws). */
static mgrad_status norm_init(mgrad_context *ctx, const mgr_graph *g, int32_t k,
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

/* tangent_backward reads ȳ in g = γ ȳ for (x̄)˙ and in ȳ x̂˙ for (γ̄)˙;
   not yet analysed, so the R-op's backward keeps every adjoint. */
const mgr_op_def mgr_op_batch_norm = {
    .name = "batch norm",
    .inputs = 1,
    .flags = MGR_OP_FLAG_COUPLES_ROWS,
    .infer = norm_infer,
    .ybar_reads = MGR_YBAR_ALL,
    .init = norm_init,
    MGR_OP_PASSES(batch_norm),
};

const mgr_op_def mgr_op_layer_norm = {
    .name = "layer norm",
    .inputs = 1,
    .infer = norm_infer,
    .ybar_reads = MGR_YBAR_ALL,
    .init = norm_init,
    MGR_OP_PASSES(layer_norm),
};

#else
/* ---- the passes (typed, compiled for f32 and f64) ------------------------ */

#include <assert.h>

#include "graph/ops.h"

/* A group: elements base + o stride + j for o < outer, j < S (m = outer S);
   element (o, j) uses γ[gbase + gstep j]. */
typedef struct group {
    size_t base, outer, stride, S, gbase, gstep;
    double m;
} group;

#define GROUP_LOOP(gr)                                  \
    for (size_t o_ = 0; o_ < (gr)->outer; o_++)         \
        for (size_t j_ = 0; j_ < (gr)->S; j_++)
#define G_ELEM(gr) ((gr)->base + o_ * (gr)->stride + j_)
#define G_PARAM(gr) ((gr)->gbase + (gr)->gstep * j_)

/* The group's μ and s = 1/√(v + ε), two-pass in double. */
static void group_stats(const group *gr, const real *x, double eps, real *mu, real *s)
{
    MGR_LANES(sum);
    MGR_LANES(sq);
    GROUP_LOOP(gr) MGR_LANE_ADD(sum, j_, x[G_ELEM(gr)]);
    double mean = MGR_LANE_SUM(sum) / gr->m;
    GROUP_LOOP(gr) {
        double c = x[G_ELEM(gr)] - mean;
        MGR_LANE_ADD(sq, j_, c * c);
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
        g.gstep = 0;
    } else {
        g.base = i * n->size;
        g.outer = 1;
        g.stride = 0;
        g.S = n->size;
        g.gbase = 0;
        g.gstep = 1;
    }
    g.m = (double)(g.outer * g.S);
    return g;
}

/* y = γ x̂ + β */
static void norm_forward(const R(mgr_op_args) *a)
{
    norm_op n = op_of(a);
    const real *gamma = a->p, *beta = a->p + n.nparam, *x = a->x;
    for (size_t i = 0; i < n.groups; i++) {
        group gr = group_of(&n, i);
        real mu, s;
        group_stats(&gr, x, a->node->eps, &mu, &s);
        GROUP_LOOP(&gr) {
            size_t e = G_ELEM(&gr), k = G_PARAM(&gr);
            a->y[e] = gamma[k] * (s * (x[e] - mu)) + beta[k];
        }
    }
}

/* x̄ += s P(γ ȳ);  γ̄ += Σ ȳ x̂;  β̄ += Σ ȳ */
static void norm_backward(const R(mgr_op_args) *a)
{
    norm_op n = op_of(a);
    const real *gamma = a->p, *x = a->x, *yb = a->ybar;
    for (size_t i = 0; i < n.groups; i++) {
        group gr = group_of(&n, i);
        real mu, s;
        group_stats(&gr, x, a->node->eps, &mu, &s);
        if (a->pbar != NULL) {
            real *gb = a->pbar, *bb = a->pbar + n.nparam;
            GROUP_LOOP(&gr) {
                size_t e = G_ELEM(&gr), k = G_PARAM(&gr);
                gb[k] += yb[e] * (s * (x[e] - mu));
                bb[k] += yb[e];
            }
        }
        if (a->xbar == NULL) continue;
        MGR_LANES(sg);
        MGR_LANES(sxg);
        GROUP_LOOP(&gr) {
            size_t e = G_ELEM(&gr);
            double g = (double)gamma[G_PARAM(&gr)] * yb[e];
            MGR_LANE_ADD(sg, j_, g);
            MGR_LANE_ADD(sxg, j_, g * (s * (x[e] - mu)));
        }
        real mg = (real)(MGR_LANE_SUM(sg) / gr.m), mxg = (real)(MGR_LANE_SUM(sxg) / gr.m);
        GROUP_LOOP(&gr) {
            size_t e = G_ELEM(&gr);
            real xh = s * (x[e] - mu), g = gamma[G_PARAM(&gr)] * yb[e];
            a->xbar[e] += s * (g - mg - xh * mxg);
        }
    }
}

/* The tangent's per-group constants: mean(ẋ) and a = mean(x̂ ẋ). */
static void xdot_means(const group *gr, const real *x, const real *xd, real mu, real s,
                       real *mxd, real *ma)
{
    MGR_LANES(sd);
    MGR_LANES(sa);
    GROUP_LOOP(gr) {
        size_t e = G_ELEM(gr);
        MGR_LANE_ADD(sd, j_, xd[e]);
        MGR_LANE_ADD(sa, j_, (double)xd[e] * (s * (x[e] - mu)));
    }
    *mxd = (real)(MGR_LANE_SUM(sd) / gr->m);
    *ma = (real)(MGR_LANE_SUM(sa) / gr->m);
}

/* ẏ = γ s P(ẋ) + γ̇ x̂ + β̇ */
static void norm_tangent(const R(mgr_op_args) *a)
{
    norm_op n = op_of(a);
    const real *gamma = a->p, *x = a->x, *xd = a->xdot, *u = a->u;
    for (size_t i = 0; i < n.groups; i++) {
        group gr = group_of(&n, i);
        real mu, s, mxd = 0, ma = 0;
        group_stats(&gr, x, a->node->eps, &mu, &s);
        if (xd != NULL) xdot_means(&gr, x, xd, mu, s, &mxd, &ma);
        GROUP_LOOP(&gr) {
            size_t e = G_ELEM(&gr), k = G_PARAM(&gr);
            real xh = s * (x[e] - mu);
            real v = xd != NULL ? gamma[k] * s * (xd[e] - mxd - xh * ma) : 0;
            if (u != NULL) v += u[k] * xh + u[n.nparam + k];
            a->ydot[e] = v;
        }
    }
}

/* (x̄)˙ += s [P(ġ) − s a P(g) − s d mean(x̂ g) − s x̂ mean(d g)],  ġ = γ̇ ȳ + γ (ȳ)˙;
   (γ̄)˙ += Σ ((ȳ)˙ x̂ + ȳ s d);  (β̄)˙ += Σ (ȳ)˙ */
static void norm_tangent_backward(const R(mgr_op_args) *a)
{
    norm_op n = op_of(a);
    const real *gamma = a->p, *x = a->x, *xd = a->xdot, *u = a->u;
    const real *yb = a->ybar, *ybd = a->ybardot;
    for (size_t i = 0; i < n.groups; i++) {
        group gr = group_of(&n, i);
        real mu, s, mxd = 0, ma = 0;
        group_stats(&gr, x, a->node->eps, &mu, &s);
        if (xd != NULL) xdot_means(&gr, x, xd, mu, s, &mxd, &ma);
        if (a->pbardot != NULL) {
            real *gd = a->pbardot, *bd = a->pbardot + n.nparam;
            GROUP_LOOP(&gr) {
                size_t e = G_ELEM(&gr), k = G_PARAM(&gr);
                real xh = s * (x[e] - mu);
                real v = ybd[e] * xh;
                if (xd != NULL) v += yb[e] * s * (xd[e] - mxd - xh * ma);
                gd[k] += v;
                bd[k] += ybd[e];
            }
        }
        if (a->xbardot == NULL) continue;
        /* Group means of g, x̂ g, ġ, x̂ ġ and ẋ g. */
        MGR_LANES(sg);
        MGR_LANES(sxg);
        MGR_LANES(sgd);
        MGR_LANES(sxgd);
        MGR_LANES(sdg);
        GROUP_LOOP(&gr) {
            size_t e = G_ELEM(&gr), k = G_PARAM(&gr);
            double xh = s * (x[e] - mu);
            double g = (double)gamma[k] * yb[e];
            double gd = (double)gamma[k] * ybd[e] + (u != NULL ? (double)u[k] * yb[e] : 0);
            MGR_LANE_ADD(sg, j_, g);
            MGR_LANE_ADD(sxg, j_, xh * g);
            MGR_LANE_ADD(sgd, j_, gd);
            MGR_LANE_ADD(sxgd, j_, xh * gd);
            if (xd != NULL) MGR_LANE_ADD(sdg, j_, (double)xd[e] * g);
        }
        double m = gr.m;
        real mg = (real)(MGR_LANE_SUM(sg) / m), mxg = (real)(MGR_LANE_SUM(sxg) / m);
        real mgd = (real)(MGR_LANE_SUM(sgd) / m), mxgd = (real)(MGR_LANE_SUM(sxgd) / m);
        /* mean(d g) = mean(ẋ g) − mean(ẋ) mean(g) − a mean(x̂ g) */
        real mdg = (real)(MGR_LANE_SUM(sdg) / m) - mxd * mg - ma * mxg;
        GROUP_LOOP(&gr) {
            size_t e = G_ELEM(&gr), k = G_PARAM(&gr);
            real xh = s * (x[e] - mu);
            real g = gamma[k] * yb[e];
            real gd = gamma[k] * ybd[e] + (u != NULL ? u[k] * yb[e] : 0);
            real v = gd - mgd - xh * mxgd;                    /* P(ġ) */
            if (xd != NULL) {
                real dd = xd[e] - mxd - xh * ma;                 /* d */
                real pg = g - mg - xh * mxg;                     /* P(g) */
                v -= s * (ma * pg + dd * mxg + xh * mdg);
            }
            a->xbardot[e] += s * v;
        }
    }
}

/* Both ops run the same passes; op_of tells them apart by the node's kind. */
MGR_OP_PASS_TABLE(batch_norm, norm);
MGR_OP_PASS_TABLE(layer_norm, norm);

#endif
