/*
 * ops_dense.c - the dense layer: its definition and its four passes.
 *
 *     y = x Wᵀ + b        x [rows, in], W [out, in], b [out], y [rows, out]
 *
 * Parameters: W row-major, then b.  Direction on them: (U, u_b), same layout.
 * Every matrix product goes through R(mgr_gemm); terms are accumulated into
 * their output with beta = 1 so that no temporaries are needed.
 * Rules: docs/derivations.md, "Dense".
 *
 * Like every ops_<family>.c, this file is compiled three times: without
 * MGRAD_REAL_BITS it gives the op's definition (op.h), with 32 and 64 its
 * passes (docs/architecture.md, "Ops").
 */
#ifndef MGRAD_REAL_BITS
/* ---- the definition (untyped, compiled once) ----------------------------- */

#include "graph/graph.h"

/* The caller sets shape[0] = units and init. */
static mgrad_status dense_infer(mgrad_context *ctx, const mgr_graph *g, mgr_node *node,
                                int64_t *param_count)
{
    const mgr_node *x = &g->nodes[node->in0];
    int64_t units = node->shape[0];
    MGRAD_RETURN_IF(ctx, units < 1, MGRAD_ERR_INVALID,
                    "dense layer: units must be at least 1 (got %lld)", (long long)units);
    MGRAD_RETURN_IF(ctx, !mgr_init_known(node->init), MGRAD_ERR_INVALID,
                    "dense layer: unknown initialiser %d (use an mgrad_init value)",
                    (int)node->init);
    /* W [units, in] plus b [units]: units * (in + 1) must fit. */
    MGRAD_RETURN_IF(ctx, x->size > INT64_MAX - 1 || units > INT64_MAX / (x->size + 1),
                    MGRAD_ERR_INVALID,
                    "dense layer: %lld units x %lld inputs is too many parameters",
                    (long long)units, (long long)x->size);
    int64_t count = units * (x->size + 1);
    MGRAD_FORWARD(mgr_check_param_total(ctx, g, node, count));
    mgr_node_set_shape1(node, units);
    *param_count = count;
    return MGRAD_OK;
}

/* W [out, in]: fan_in = in, fan_out = out. */
static mgrad_status dense_init(mgrad_context *ctx, const mgr_graph *g, int32_t k,
                               uint64_t seed, double *theta)
{
    const mgr_node *nd = &g->nodes[k];
    int64_t rows = nd->size, cols = g->nodes[nd->in0].size;
    return mgr_init_weights(ctx, nd->init, k, rows, cols, rows, seed,
                            theta + nd->param_offset);
}

const mgr_op_def mgr_op_dense = {
    .name = "dense layer",
    .inputs = 1,
    .flags = MGR_OP_FLAG_MEMOISED,
    .infer = dense_infer,
    /* (x̄)˙ += ȳ U and (W̄)˙ += ȳᵀ ẋ */
    .ybar_reads = MGR_YBAR_FOR_XBARDOT_OR_XDOT,
    .init = dense_init,
    MGR_OP_PASSES(dense),
};

#else
/* ---- the passes (typed, compiled for f32 and f64) ------------------------ */

#include "graph/ops.h"

/* C[m,n] += op(A) op(B), on the context's threads in fixed pieces */
#define GEMM_ACC(ta, tb, m, n, k, a, lda, b, ldb, c, ldc)                                 \
    R(mgr_gemm_pool)(a_->pool, (ta), (tb), (m), (n), (k), 1, (a), (lda), (b), (ldb), 1, (c), \
                     (ldc))

/* y = x Wᵀ + b */
static void dense_forward(const R(mgr_op_args) *a)
{
    const R(mgr_op_args) *a_ = a;
    size_t rows = a->rows, in = a->in_size, out = (size_t)a->node->size;
    const real *W = a->p, *b = W + out * in;
    /* y = b in every row, then y += x Wᵀ: y[rows,out] = x[rows,in] · Wᵀ[in,out] */
    for (size_t r = 0; r < rows; r++) R(mgr_copy)(out, b, a->y + r * out);
    GEMM_ACC(0, 1, rows, out, in, a->x, in, W, in, a->y, out);
}

/* x̄ += ȳ W;  W̄ += ȳᵀ x;  b̄ += Σ_rows ȳ */
static void dense_backward(const R(mgr_op_args) *a)
{
    const R(mgr_op_args) *a_ = a;
    size_t rows = a->rows, in = a->in_size, out = (size_t)a->node->size;
    const real *W = a->p;
    if (a->xbar != NULL) /* x̄[rows,in] += ȳ[rows,out] · W[out,in] */
        GEMM_ACC(0, 0, rows, in, out, a->ybar, out, W, in, a->xbar, in);
    if (a->pbar != NULL) {
        real *Wbar = a->pbar, *bbar = Wbar + out * in;
        /* W̄[out,in] += ȳᵀ[out,rows] · x[rows,in] */
        GEMM_ACC(1, 0, out, in, rows, a->ybar, out, a->x, in, Wbar, in);
        R(mgr_add_colsum)(rows, out, a->ybar, bbar);
    }
}

/* ẏ = ẋ Wᵀ + x Uᵀ + u_b   (terms with a zero direction are skipped) */
static void dense_tangent(const R(mgr_op_args) *a)
{
    const R(mgr_op_args) *a_ = a;
    size_t rows = a->rows, in = a->in_size, out = (size_t)a->node->size;
    const real *W = a->p;
    if (a->u != NULL) {
        const real *U = a->u, *ub = U + out * in;
        for (size_t r = 0; r < rows; r++) R(mgr_copy)(out, ub, a->ydot + r * out);
        /* ẏ[rows,out] += x[rows,in] · Uᵀ[in,out] */
        GEMM_ACC(0, 1, rows, out, in, a->x, in, U, in, a->ydot, out);
    } else {
        R(mgr_zero_pool)(a->pool, rows * out, a->ydot);
    }
    if (a->xdot != NULL) /* ẏ[rows,out] += ẋ[rows,in] · Wᵀ[in,out] */
        GEMM_ACC(0, 1, rows, out, in, a->xdot, in, W, in, a->ydot, out);
}

/* (x̄)˙ += (ȳ)˙ W + ȳ U;  (W̄)˙ += (ȳ)˙ᵀ x + ȳᵀ ẋ;  (b̄)˙ += Σ_rows (ȳ)˙ */
static void dense_tangent_backward(const R(mgr_op_args) *a)
{
    const R(mgr_op_args) *a_ = a;
    size_t rows = a->rows, in = a->in_size, out = (size_t)a->node->size;
    const real *W = a->p;
    if (a->xbardot != NULL) {
        /* (x̄)˙[rows,in] += (ȳ)˙[rows,out] · W[out,in] + ȳ[rows,out] · U[out,in] */
        GEMM_ACC(0, 0, rows, in, out, a->ybardot, out, W, in, a->xbardot, in);
        if (a->u != NULL)
            GEMM_ACC(0, 0, rows, in, out, a->ybar, out, a->u, in, a->xbardot, in);
    }
    if (a->pbardot != NULL) {
        real *Wd = a->pbardot, *bd = Wd + out * in;
        /* (W̄)˙[out,in] += (ȳ)˙ᵀ[out,rows] · x[rows,in] + ȳᵀ[out,rows] · ẋ[rows,in] */
        GEMM_ACC(1, 0, out, in, rows, a->ybardot, out, a->x, in, Wd, in);
        if (a->xdot != NULL)
            GEMM_ACC(1, 0, out, in, rows, a->ybar, out, a->xdot, in, Wd, in);
        R(mgr_add_colsum)(rows, out, a->ybardot, bd);
    }
}

MGR_OP_PASS_TABLE(dense, dense);

#endif
