/*
 * blas.c - the BLAS seam: every matrix product of the library goes through
 * R(mgr_gemm), which maps row-major arguments onto CBLAS.
 */
#include <cblas.h>

#include "kernels/kernels.h"
#include "mgrad_config.h"

#if MGRAD_HAVE_OPENBLAS
int openblas_get_num_threads(void);
void openblas_set_num_threads(int num_threads);

/* Products below this many multiply-adds run on one thread: waking and
   joining OpenBLAS's other threads costs more than they save (measured on
   2 cores: 128x10x256 takes 11 us on one thread and 26 us on two; the
   break-even is near 128x64x256).  The thread count is process-wide; it is
   restored right after the call.  Results do not depend on it: OpenBLAS
   splits the rows and columns of C between threads, never k. */
#define MGR_GEMM_ONE_THREAD_BELOW 2.0e6
#endif

static void gemm(int trans_a, int trans_b, size_t m, size_t n, size_t k, real alpha,
                 const real *a, size_t lda, const real *b, size_t ldb, real beta, real *c,
                 size_t ldc)
{
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
#if MGRAD_HAVE_OPENBLAS
    if ((double)m * (double)n * (double)k < MGR_GEMM_ONE_THREAD_BELOW) {
        int threads = openblas_get_num_threads();
        if (threads > 1) {
            openblas_set_num_threads(1);
            gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
            openblas_set_num_threads(threads);
            return;
        }
    }
#endif
    gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
