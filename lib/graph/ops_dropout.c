/*
 * ops_dropout.c - inverted dropout with a counter-based mask, four passes.
 *
 *     y = x ⊙ μ / (1 − p),   μ_e = [mgr_rng_uniform(seed, stream, e) >= p]
 *     stream = MGR_STREAM_DROPOUT + ((step << 16 | node) << 8)
 *     e = (row0 + r) · size + j   (row r of the chunk, element j of the example;
 *                                  row0 = 0 except on a rank of a data-parallel
 *                                  run, which computes rows row0.. of the chunk)
 *
 * The mask is a pure function of (seed, step, node, row, element), so the
 * recomputation of a step during the reverse pass sees the very mask the
 * forward pass saw, and the op is a fixed linear map within a step: its
 * tangent is the map applied to ẋ, its tangent-of-backward the map applied
 * to (ȳ)˙.  With a->training == 0 (validation and evaluation passes) or
 * p = 0 the op is the identity.  The seed, step and training flag come from
 * the workspace (R(mgr_graph_ws)); the engine sets them.
 * Rules: docs/derivations.md, "Dropout".
 *
 * Like every ops_<family>.c, this file is compiled three times: without
 * MGRAD_REAL_BITS it gives the op's definition (op.h), with 32 and 64 its
 * passes.
 */
#ifndef MGRAD_REAL_BITS
/* ---- the definition (untyped, compiled once) ----------------------------- */

#include "graph/graph.h"

/* The caller sets rate = p. */
static mgrad_status dropout_infer(mgrad_context *ctx, const mgr_graph *g, mgr_node *node,
                                  int64_t *param_count)
{
    MGRAD_RETURN_IF(ctx, !(node->rate >= 0 && node->rate < 1), MGRAD_ERR_INVALID,
                    "dropout: p must be in [0, 1) (got %g)", node->rate);
    return mgr_infer_same_shape(ctx, g, node, param_count);
}

const mgr_op_def mgr_op_dropout = {
    .name = "dropout",
    .inputs = 1,
    .infer = dropout_infer,
    /* A fixed linear map within a step: no second-order term. */
    .ybar_reads = MGR_YBAR_NEVER,
    MGR_OP_PASSES(dropout),
};

#else
/* ---- the passes (typed, compiled for f32 and f64) ------------------------ */

#include "base/rng.h"
#include "graph/ops.h"

static uint64_t dropout_stream(const R(mgr_op_args) *a)
{
    return (uint64_t)MGR_STREAM_DROPOUT +
           ((((uint64_t)a->step << 16) | (uint64_t)a->index) << 8);
}

/* dst = mask ⊙ src / (1 − p) (accumulate: dst += ...); src NULL means 0. */
static void apply_mask(const R(mgr_op_args) *a, const real *src, real *dst, int accumulate)
{
    size_t n = a->rows * a->in_size;
    double p = a->node->rate;
    if (src == NULL) {
        if (!accumulate) R(mgr_zero)(n, dst);
        return;
    }
    if (!a->training || p == 0) {
        if (accumulate)
            R(mgr_axpy)(n, 1, src, dst);
        else
            R(mgr_copy)(n, src, dst);
        return;
    }
    uint64_t stream = dropout_stream(a);
    real keep = (real)(1.0 / (1.0 - p));
    uint64_t e0 = (uint64_t)a->row0 * (uint64_t)a->in_size;
    for (size_t e = 0; e < n; e++) {
        real v = mgr_rng_uniform(a->seed, stream, e0 + (uint64_t)e) >= p ? keep * src[e] : 0;
        if (accumulate)
            dst[e] += v;
        else
            dst[e] = v;
    }
}

static void dropout_forward(const R(mgr_op_args) *a) { apply_mask(a, a->x, a->y, 0); }

static void dropout_backward(const R(mgr_op_args) *a)
{
    if (a->xbar != NULL) apply_mask(a, a->ybar, a->xbar, 1);
}

static void dropout_tangent(const R(mgr_op_args) *a) { apply_mask(a, a->xdot, a->ydot, 0); }

static void dropout_tangent_backward(const R(mgr_op_args) *a)
{
    if (a->xbardot != NULL) apply_mask(a, a->ybardot, a->xbardot, 1);
}

MGR_OP_PASS_TABLE(dropout, dropout);

#endif
