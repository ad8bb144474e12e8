/*
 * ops_dense.c - the dense layer's four passes.
 *
 *     y = x Wᵀ + b        x [rows, in], W [out, in], b [out], y [rows, out]
 *
 * Parameters: W row-major, then b.  Direction on them: (U, u_b), same layout.
 * Every matrix product goes through R(mgr_gemm); terms are accumulated into
 * their output with beta = 1 so that no temporaries are needed.
 * Rules: docs/derivations.md, "Dense".
 */
#include "graph/ops.h"

/* C[m,n] += op(A) op(B) */
#define GEMM_ACC(ta, tb, m, n, k, a, lda, b, ldb, c, ldc) \
    R(mgr_gemm)((ta), (tb), (m), (n), (k), 1, (a), (lda), (b), (ldb), 1, (c), (ldc))

/* y = x Wᵀ + b */
void R(mgr_dense_forward)(const R(mgr_op_args) *a)
{
    size_t rows = a->rows, in = a->in_size, out = (size_t)a->node->size;
    const real *W = a->p, *b = W + out * in;
    /* y = b in every row, then y += x Wᵀ: y[rows,out] = x[rows,in] · Wᵀ[in,out] */
    for (size_t r = 0; r < rows; r++) R(mgr_copy)(out, b, a->y + r * out);
    GEMM_ACC(0, 1, rows, out, in, a->x, in, W, in, a->y, out);
}

/* x̄ += ȳ W;  W̄ += ȳᵀ x;  b̄ += Σ_rows ȳ */
void R(mgr_dense_backward)(const R(mgr_op_args) *a)
{
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
void R(mgr_dense_tangent)(const R(mgr_op_args) *a)
{
    size_t rows = a->rows, in = a->in_size, out = (size_t)a->node->size;
    const real *W = a->p;
    if (a->u != NULL) {
        const real *U = a->u, *ub = U + out * in;
        for (size_t r = 0; r < rows; r++) R(mgr_copy)(out, ub, a->ydot + r * out);
        /* ẏ[rows,out] += x[rows,in] · Uᵀ[in,out] */
        GEMM_ACC(0, 1, rows, out, in, a->x, in, U, in, a->ydot, out);
    } else {
        R(mgr_zero)(rows * out, a->ydot);
    }
    if (a->xdot != NULL) /* ẏ[rows,out] += ẋ[rows,in] · Wᵀ[in,out] */
        GEMM_ACC(0, 1, rows, out, in, a->xdot, in, W, in, a->ydot, out);
}

/* (x̄)˙ += (ȳ)˙ W + ȳ U;  (W̄)˙ += (ȳ)˙ᵀ x + ȳᵀ ẋ;  (b̄)˙ += Σ_rows (ȳ)˙ */
void R(mgr_dense_tangent_backward)(const R(mgr_op_args) *a)
{
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
