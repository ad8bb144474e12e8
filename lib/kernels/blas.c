/*
 * blas.c - the BLAS seam: every matrix product of the library goes through
 * R(mgr_gemm), which maps row-major arguments onto CBLAS.
 */
#include <cblas.h>

#include "kernels/kernels.h"

void R(mgr_gemm)(int trans_a, int trans_b, size_t m, size_t n, size_t k, real alpha,
                 const real *a, size_t lda, const real *b, size_t ldb, real beta,
                 real *c, size_t ldc)
{
    if (m == 0 || n == 0) return;
    if (k == 0) {
        /* BLAS leaves C untouched for k = 0 only when beta = 1; make the
           scaling explicit so both paths agree with the naive twin. */
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++)
                c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j];
        return;
    }
#if MGRAD_REAL_BITS == 32
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, alpha, a,
                (int)lda, b, (int)ldb, beta, c, (int)ldc);
#else
    cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, alpha, a,
                (int)lda, b, (int)ldb, beta, c, (int)ldc);
#endif
}
