/*
 * blas.c - the BLAS seam: every matrix product of the library goes through
 * R(mgr_gemm), which maps row-major arguments onto CBLAS.
 */
#include <cblas.h>

#include "base/pool.h"
#include "kernels/kernels.h"
#include "mgrad_config.h"

#if MGRAD_HAVE_OPENBLAS
int openblas_get_num_threads(void);
#endif

/* OpenBLAS multiplies on one thread when m·n·k <= 65536 × its
   GEMM_MULTITHREAD_THRESHOLD (4 unless built otherwise: 262144), and
   otherwise on all its threads.  Just above that, waking and joining the
   other threads costs more than they save (measured on 2 cores:
   128x10x256 takes 12 us on one thread and 30 us on two; the break-even is
   near 128x64x256, 2 M multiply-adds).  Products between the two sizes are
   therefore cut along their longer output side into pieces at most that
   threshold, which OpenBLAS runs on the calling thread.  The process-wide
   thread count is never touched (other threads of the caller may be using
   BLAS at the same time), and each element of C is still one dot product,
   computed the same way every time. */
#define MGR_GEMM_ONE_THREAD_MNK 262144.0
#define MGR_GEMM_SPLIT_BELOW_MNK 2.0e6

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
    double mnk = (double)m * (double)n * (double)k;
    if (mnk > MGR_GEMM_ONE_THREAD_MNK && mnk < MGR_GEMM_SPLIT_BELOW_MNK) {
        /* pieces of whole rows of C (op(A) rows), else of whole columns */
        size_t rows = (size_t)(MGR_GEMM_ONE_THREAD_MNK / ((double)n * (double)k));
        size_t cols = (size_t)(MGR_GEMM_ONE_THREAD_MNK / ((double)m * (double)k));
        if (rows >= 8 && rows < m) {
            rows -= rows % 8;
            for (size_t i = 0; i < m; i += rows) {
                size_t mi = m - i < rows ? m - i : rows;
                gemm(trans_a, trans_b, mi, n, k, alpha, trans_a ? a + i : a + i * lda, lda, b,
                     ldb, beta, c + i * ldc, ldc);
            }
            return;
        }
        if (cols >= 8 && cols < n) {
            cols -= cols % 8;
            for (size_t j = 0; j < n; j += cols) {
                size_t nj = n - j < cols ? n - j : cols;
                gemm(trans_a, trans_b, m, nj, k, alpha, a, lda, trans_b ? b + j * ldb : b + j,
                     ldb, beta, c + j, ldc);
            }
            return;
        }
    }
    gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* Products on the context's threads (kernels.h).  C is cut along its
   longer side into at most MGR_GEMM_PIECES pieces whose edges are
   multiples of 16 (whole register tiles), a grid fixed by (m, n, k): each
   piece is an R(mgr_gemm) of its own, computed the same way whatever the
   thread count.  Only while OpenBLAS is set to one thread: with more, the
   product is one R(mgr_gemm) as before, which OpenBLAS parallelises itself
   (pieces would make it wake its threads once per piece, and two of our
   threads would queue on its one thread pool); that too is the same
   whatever our thread count. */
#define MGR_GEMM_PIECES 6
#define MGR_GEMM_PIECE_ALIGN 16

typedef struct gemm_job {
    int ta, tb, by_rows;
    size_t m, n, k, lda, ldb, ldc, side, pieces;
    real alpha, beta;
    const real *a, *b;
    real *c;
} gemm_job;

static size_t piece_edge(const gemm_job *j, size_t p)
{
    size_t units = (j->side + MGR_GEMM_PIECE_ALIGN - 1) / MGR_GEMM_PIECE_ALIGN;
    size_t e = units * p / j->pieces * MGR_GEMM_PIECE_ALIGN;
    return e < j->side ? e : j->side;
}

static void gemm_piece(void *arg, size_t p)
{
    const gemm_job *j = arg;
    size_t lo = piece_edge(j, p), hi = piece_edge(j, p + 1);
    if (hi <= lo) return;
    if (j->by_rows)
        R(mgr_gemm)(j->ta, j->tb, hi - lo, j->n, j->k, j->alpha,
                    j->ta ? j->a + lo : j->a + lo * j->lda, j->lda, j->b, j->ldb, j->beta,
                    j->c + lo * j->ldc, j->ldc);
    else
        R(mgr_gemm)(j->ta, j->tb, j->m, hi - lo, j->k, j->alpha, j->a, j->lda,
                    j->tb ? j->b + lo * j->ldb : j->b + lo, j->ldb, j->beta, j->c + lo,
                    j->ldc);
}

void R(mgr_gemm_pool)(struct mgr_pool *pool, int trans_a, int trans_b, size_t m, size_t n,
                      size_t k, real alpha, const real *a, size_t lda, const real *b,
                      size_t ldb, real beta, real *c, size_t ldc)
{
    double mnk = (double)m * (double)n * (double)k;
    int blas_threads = 1;
#if MGRAD_HAVE_OPENBLAS
    blas_threads = openblas_get_num_threads();
#endif
    if (mnk <= MGR_GEMM_ONE_THREAD_MNK || blas_threads > 1) {
        R(mgr_gemm)(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    gemm_job j = {trans_a, trans_b, m >= n, m, n, k, lda, ldb, ldc, m >= n ? m : n, 0,
                  alpha, beta, a, b, c};
    size_t units = (j.side + MGR_GEMM_PIECE_ALIGN - 1) / MGR_GEMM_PIECE_ALIGN;
    j.pieces = units < MGR_GEMM_PIECES ? units : MGR_GEMM_PIECES;
    /* work in element-pass equivalents: about 8 multiply-adds cost what
       one element of a memory-bound pass does */
    mgr_pool_for(pool, j.pieces, mnk / 8.0 / (double)j.pieces, gemm_piece, &j);
}
