/*
 * kernels.h - the BLAS seam and elementwise kernels (typed: include real.h
 * first via this header; see real.h).
 *
 * All matrices are row-major.  mgr_gemm computes
 *     C[M,N] = alpha * op(A)[M,K] · op(B)[K,N] + beta * C
 * with op(X) = X or Xᵀ as trans_a / trans_b say; lda/ldb/ldc are row strides
 * of the matrices as stored.  mgr_gemm goes to CBLAS; mgr_gemm_naive is its
 * plain-loop twin, the oracle in tests.
 *
 * Reductions accumulate in double, in index order, so results do not depend
 * on the thread count.
 */
#ifndef MGRAD_KERNELS_H
#define MGRAD_KERNELS_H

#include <stddef.h>

#include "real.h"

void R(mgr_gemm)(int trans_a, int trans_b, size_t m, size_t n, size_t k, real alpha,
                 const real *a, size_t lda, const real *b, size_t ldb, real beta,
                 real *c, size_t ldc);
void R(mgr_gemm_naive)(int trans_a, int trans_b, size_t m, size_t n, size_t k,
                       real alpha, const real *a, size_t lda, const real *b,
                       size_t ldb, real beta, real *c, size_t ldc);

/* mgr_gemm on the context's threads (base/pool.h; NULL: the calling
   thread): C cut into a fixed grid of pieces along its longer side (a
   function of m, n, k only), each one mgr_gemm.  The bits depend on the
   shapes, never on the thread count; they may differ from one mgr_gemm
   of the whole in the last place. */
struct mgr_pool;
void R(mgr_gemm_pool)(struct mgr_pool *pool, int trans_a, int trans_b, size_t m, size_t n,
                      size_t k, real alpha, const real *a, size_t lda, const real *b,
                      size_t ldb, real beta, real *c, size_t ldc);

/* Deterministic sums inside elementwise loops: element i adds to lane
   i mod 4, the lanes add up as (l0 + l1) + (l2 + l3) -- the order of
   mgr_dot, so a sum written either way has the same bits.  Four chains
   instead of one keep a loop from waiting on each addition. */
#define MGR_LANES(name) double name[4] = { 0.0, 0.0, 0.0, 0.0 }
#define MGR_LANE_ADD(name, i, term) ((name)[(i) & 3] += (term))
#define MGR_LANE_SUM(name) (((name)[0] + (name)[1]) + ((name)[2] + (name)[3]))

/* Σ x_i y_i, accumulated in double in four fixed lanes (deterministic). */
double R(mgr_dot)(size_t n, const real *x, const real *y);
/* Σ x_i, accumulated in double in the four lanes of mgr_dot. */
double R(mgr_sum)(size_t n, const real *x);
/* y += a x */
void R(mgr_axpy)(size_t n, real a, const real *x, real *y);
/* y = x */
void R(mgr_copy)(size_t n, const real *x, real *y);
/* x = 0 */
void R(mgr_zero)(size_t n, real *x);
/* Index of the first non-finite value, or -1. */
long long R(mgr_first_nonfinite)(size_t n, const real *x);
/* The same passes on the context's threads (base/pool.h; NULL: the
   calling thread), over the fixed grid: the first non-finite index is the
   smallest of the chunks' answers, the same whatever the thread count. */
struct mgr_pool;
long long R(mgr_first_nonfinite_pool)(struct mgr_pool *pool, size_t n, const real *x);
void R(mgr_copy_pool)(struct mgr_pool *pool, size_t n, const real *x, real *y);
void R(mgr_zero_pool)(struct mgr_pool *pool, size_t n, real *x);
void R(mgr_axpy_pool)(struct mgr_pool *pool, size_t n, real a, const real *x, real *y);
/* y = a x + b x1 (x1 may be NULL: y = a x) */
void R(mgr_axpby_pool)(struct mgr_pool *pool, size_t n, real a, const real *x, real b,
                       const real *x1, real *y);
/* out[j] += Σ_rows x[r, j]  (column sums of x [rows, cols]) */
void R(mgr_add_colsum)(size_t rows, size_t cols, const real *x, real *out);

#endif /* MGRAD_KERNELS_H */
