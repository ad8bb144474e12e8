/*
 * ops_linear.c - parameter-free linear ops, four passes each.
 *
 *     scale:  y = c x          x, y [rows, size], c = node->scale
 *     add:    y = x + x1       x, x1, y [rows, size]  (residual connection;
 *                              any shape, both inputs alike)
 *     flatten: y = x           [rows, C H W]: only the node's shape changes
 *
 * Being linear, each op's tangent is the op applied to the tangents and its
 * tangent-of-backward is its backward applied to (ȳ)˙: no second-order term.
 * Rules: docs/derivations.md, "Scale and residual add".
 *
 * Like every ops_<family>.c, this file is compiled three times: without
 * MGRAD_REAL_BITS it gives the ops' definitions (op.h), with 32 and 64
 * their passes.  None of them has a second-order term, so none reads ȳ in
 * its tangent-of-backward (MGR_YBAR_NEVER).
 */
#ifndef MGRAD_REAL_BITS
/* ---- the definitions (untyped, compiled once) ---------------------------- */

#include <math.h>

#include "graph/graph.h"

/* The caller sets scale. */
static mgrad_status scale_infer(mgrad_context *ctx, const mgr_graph *g, mgr_node *node,
                                int64_t *param_count)
{
    MGRAD_RETURN_IF(ctx, !isfinite(node->scale), MGRAD_ERR_INVALID,
                    "scale: the factor must be finite (got %g)", node->scale);
    return mgr_infer_same_shape(ctx, g, node, param_count);
}

const mgr_op_def mgr_op_scale = {
    .name = "scale",
    .inputs = 1,
    .infer = scale_infer,
    .ybar_reads = MGR_YBAR_NEVER,
    MGR_OP_PASSES(scale),
};

/* The caller sets in1; both inputs must have the same size, and the same
   shape unless both are 1-D. */
static mgrad_status add_infer(mgrad_context *ctx, const mgr_graph *g, mgr_node *node,
                              int64_t *param_count)
{
    MGRAD_RETURN_IF(ctx, node->in1 < 0 || node->in1 >= g->num_nodes, MGRAD_ERR_INVALID,
                    "residual: node %d does not exist (valid ids are 0 to %d; "
                    "use mgrad_model_mark to get one)",
                    (int)node->in1, (int)(g->num_nodes - 1));
    const mgr_node *x = &g->nodes[node->in0], *x1 = &g->nodes[node->in1];
    MGRAD_RETURN_IF(ctx, x->size != x1->size, MGRAD_ERR_SHAPE,
                    "residual: sizes differ: the current output (node %d) has "
                    "%lld values per example but node %d has %lld; add a dense "
                    "layer so that they match",
                    (int)node->in0, (long long)x->size, (int)node->in1,
                    (long long)x1->size);
    int same = x->ndim == x1->ndim;
    for (int32_t d = 0; same && d < x->ndim; d++) same = x->shape[d] == x1->shape[d];
    MGRAD_RETURN_IF(ctx, !same && (x->ndim > 1 || x1->ndim > 1), MGRAD_ERR_SHAPE,
                    "residual: shapes differ: node %d is %lldx%lldx%lld but node %d "
                    "is %lldx%lldx%lld (same size, different layout); use conv2d "
                    "or pooling so that channels and spatial sizes match, or "
                    "flatten both",
                    (int)node->in0, (long long)x->shape[0], (long long)x->shape[1],
                    (long long)x->shape[2], (int)node->in1, (long long)x1->shape[0],
                    (long long)x1->shape[1], (long long)x1->shape[2]);
    return mgr_infer_same_shape(ctx, g, node, param_count);
}

const mgr_op_def mgr_op_add = {
    .name = "residual add",
    .inputs = 2,
    .infer = add_infer,
    .ybar_reads = MGR_YBAR_NEVER,
    MGR_OP_PASSES(add),
};

/* [C, H, W] -> [C H W] */
static mgrad_status flatten_infer(mgrad_context *ctx, const mgr_graph *g, mgr_node *node,
                                  int64_t *param_count)
{
    (void)ctx;
    mgr_node_set_shape1(node, g->nodes[node->in0].size);
    *param_count = 0;
    return MGRAD_OK;
}

const mgr_op_def mgr_op_flatten = {
    .name = "flatten",
    .inputs = 1,
    .infer = flatten_infer,
    .ybar_reads = MGR_YBAR_NEVER,
    MGR_OP_PASSES(flatten),
};

#else
/* ---- the passes (typed, compiled for f32 and f64) ------------------------ */

#include <assert.h>

#include "graph/ops.h"

/* y = c x */
static void scale_forward(const R(mgr_op_args) *a)
{
    assert(a->in_size == (size_t)a->node->size);
    size_t n = a->rows * a->in_size;
    R(mgr_axpby_pool)(a->pool, n, (real)a->node->scale, a->x, 0, NULL, a->y);
}

/* x̄ += c ȳ */
static void scale_backward(const R(mgr_op_args) *a)
{
    if (a->xbar == NULL) return;
    R(mgr_axpy_pool)(a->pool, a->rows * a->in_size, (real)a->node->scale, a->ybar, a->xbar);
}

/* ẏ = c ẋ */
static void scale_tangent(const R(mgr_op_args) *a)
{
    size_t n = a->rows * a->in_size;
    if (a->xdot == NULL) {
        R(mgr_zero)(n, a->ydot);
        return;
    }
    R(mgr_axpby_pool)(a->pool, n, (real)a->node->scale, a->xdot, 0, NULL, a->ydot);
}

/* (x̄)˙ += c (ȳ)˙ */
static void scale_tangent_backward(const R(mgr_op_args) *a)
{
    if (a->xbardot == NULL) return;
    R(mgr_axpy_pool)(a->pool, a->rows * a->in_size, (real)a->node->scale, a->ybardot, a->xbardot);
}

MGR_OP_PASS_TABLE(scale, scale);

/* y = x + x1 */
static void add_forward(const R(mgr_op_args) *a)
{
    assert(a->in_size == (size_t)a->node->size && a->x1 != NULL);
    size_t n = a->rows * a->in_size;
    /* 1 x + 1 x1 = x + x1 exactly */
    R(mgr_axpby_pool)(a->pool, n, 1, a->x, 1, a->x1, a->y);
}

/* x̄ += ȳ;  x̄1 += ȳ.  Both may be one buffer (y = x + x): two separate
   accumulations handle that. */
static void add_backward(const R(mgr_op_args) *a)
{
    size_t n = a->rows * a->in_size;
    if (a->xbar != NULL) R(mgr_axpy_pool)(a->pool, n, 1, a->ybar, a->xbar);
    if (a->x1bar != NULL) R(mgr_axpy_pool)(a->pool, n, 1, a->ybar, a->x1bar);
}

/* ẏ = ẋ + ẋ1  (NULL tangents are zero) */
static void add_tangent(const R(mgr_op_args) *a)
{
    size_t n = a->rows * a->in_size;
    const real *xd = a->xdot, *x1d = a->x1dot;
    real *yd = a->ydot;
    if (xd != NULL && x1d != NULL) {
        R(mgr_axpby_pool)(a->pool, n, 1, xd, 1, x1d, yd);
    } else if (xd != NULL || x1d != NULL) {
        R(mgr_copy_pool)(a->pool, n, xd != NULL ? xd : x1d, yd);
    } else {
        R(mgr_zero_pool)(a->pool, n, yd);
    }
}

/* (x̄)˙ += (ȳ)˙;  (x̄1)˙ += (ȳ)˙ */
static void add_tangent_backward(const R(mgr_op_args) *a)
{
    size_t n = a->rows * a->in_size;
    if (a->xbardot != NULL) R(mgr_axpy_pool)(a->pool, n, 1, a->ybardot, a->xbardot);
    if (a->x1bardot != NULL) R(mgr_axpy_pool)(a->pool, n, 1, a->ybardot, a->x1bardot);
}

MGR_OP_PASS_TABLE(add, add);

/* flatten: y = x, only the shape changes ([C, H, W] -> [C H W]). */
static void flatten_forward(const R(mgr_op_args) *a)
{
    assert(a->in_size == (size_t)a->node->size);
    R(mgr_copy_pool)(a->pool, a->rows * a->in_size, a->x, a->y);
}

/* x̄ += ȳ */
static void flatten_backward(const R(mgr_op_args) *a)
{
    if (a->xbar != NULL) R(mgr_axpy_pool)(a->pool, a->rows * a->in_size, 1, a->ybar, a->xbar);
}

/* ẏ = ẋ */
static void flatten_tangent(const R(mgr_op_args) *a)
{
    size_t n = a->rows * a->in_size;
    if (a->xdot != NULL)
        R(mgr_copy)(n, a->xdot, a->ydot);
    else
        R(mgr_zero)(n, a->ydot);
}

/* (x̄)˙ += (ȳ)˙ */
static void flatten_tangent_backward(const R(mgr_op_args) *a)
{
    if (a->xbardot != NULL) R(mgr_axpy_pool)(a->pool, a->rows * a->in_size, 1, a->ybardot, a->xbardot);
}

MGR_OP_PASS_TABLE(flatten, flatten);

#endif
