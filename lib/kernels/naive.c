/*
 * naive.c - plain-loop twin of R(mgr_gemm): the oracle of the kernel tests
 * and a fallback that needs nothing but a C compiler.
 */
#include "kernels/kernels.h"

void R(mgr_gemm_naive)(int trans_a, int trans_b, size_t m, size_t n, size_t k,
                       real alpha, const real *a, size_t lda, const real *b,
                       size_t ldb, real beta, real *c, size_t ldc)
{
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < n; j++) {
            double acc = 0;
            for (size_t p = 0; p < k; p++) {
                real av = trans_a ? a[p * lda + i] : a[i * lda + p];
                real bv = trans_b ? b[j * ldb + p] : b[p * ldb + j];
                acc += (double)av * (double)bv;
            }
            real old = beta == 0 ? 0 : beta * c[i * ldc + j];
            c[i * ldc + j] = (real)(alpha * acc) + old;
        }
    }
}
