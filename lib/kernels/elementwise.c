/*
 * elementwise.c - vector kernels.  Loops are kept plain so that gcc
 * vectorises them; reductions run in double in a fixed order (index order,
 * or mgr_dot's four fixed lanes) so that results are the same whatever the
 * thread count.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "base/pool.h"
#include "kernels/kernels.h"

/* Four partial sums, element i going to lane i mod 4, added as
   (l0 + l1) + (l2 + l3) at the end (the rule of MGR_LANE_SUM in
   optim_impl.h): the result depends on n and the data only, as an
   index-order sum does, but four independent chains run about four times
   faster than one (and vectorise). */
double R(mgr_dot)(size_t n, const real *x, const real *y)
{
    double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        a0 += (double)x[i] * (double)y[i];
        a1 += (double)x[i + 1] * (double)y[i + 1];
        a2 += (double)x[i + 2] * (double)y[i + 2];
        a3 += (double)x[i + 3] * (double)y[i + 3];
    }
    if (i < n) a0 += (double)x[i] * (double)y[i];
    if (i + 1 < n) a1 += (double)x[i + 1] * (double)y[i + 1];
    if (i + 2 < n) a2 += (double)x[i + 2] * (double)y[i + 2];
    return (a0 + a1) + (a2 + a3);
}

/* The lanes of mgr_dot: a conv layer's bias gradient sums every output
   position, where one chain of dependent additions ran at a quarter of
   this speed. */
double R(mgr_sum)(size_t n, const real *x)
{
    double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        a0 += (double)x[i];
        a1 += (double)x[i + 1];
        a2 += (double)x[i + 2];
        a3 += (double)x[i + 3];
    }
    if (i < n) a0 += (double)x[i];
    if (i + 1 < n) a1 += (double)x[i + 1];
    if (i + 2 < n) a2 += (double)x[i + 2];
    return (a0 + a1) + (a2 + a3);
}

void R(mgr_axpy)(size_t n, real a, const real *x, real *y)
{
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}

void R(mgr_copy)(size_t n, const real *x, real *y)
{
    if (n > 0 && x != y) memcpy(y, x, n * sizeof(real));
}

void R(mgr_zero)(size_t n, real *x)
{
    if (n > 0) memset(x, 0, n * sizeof(real));
}

/* Blocks are screened with an exponent-bits test that the compiler
   vectorises (a value is non-finite iff all its exponent bits are set);
   only a flagged block is searched element by element. */
long long R(mgr_first_nonfinite)(size_t n, const real *x)
{
#if MGRAD_REAL_BITS == 32
    typedef uint32_t bits_t;
    const bits_t expmask = 0x7f800000u;
#else
    typedef uint64_t bits_t;
    const bits_t expmask = 0x7ff0000000000000ull;
#endif
    enum { BLOCK = 1024 };
    for (size_t start = 0; start < n; start += BLOCK) {
        size_t len = n - start < BLOCK ? n - start : BLOCK;
        const real *blk = x + start;
        bits_t bad = 0;
        for (size_t i = 0; i < len; i++) {
            bits_t b;
            memcpy(&b, &blk[i], sizeof b);
            bad |= (bits_t)((b & expmask) == expmask);
        }
        if (bad == 0) continue;
        for (size_t i = 0; i < len; i++)
            if (!isfinite(blk[i])) return (long long)(start + i);
    }
    return -1;
}

void R(mgr_add_colsum)(size_t rows, size_t cols, const real *x, real *out)
{
    for (size_t r = 0; r < rows; r++) {
        const real *row = x + r * cols;
        for (size_t j = 0; j < cols; j++) out[j] += row[j];
    }
}


typedef struct vec_job {
    const real *x, *x1;
    real *y;
    real a, b;
    long long first[MGR_POOL_MAX_CHUNKS];
    size_t chunk;
} vec_job;

static void nonfinite_range(void *arg, size_t lo, size_t hi)
{
    vec_job *j = arg;
    long long at = R(mgr_first_nonfinite)(hi - lo, j->x + lo);
    j->first[lo / j->chunk] = at < 0 ? -1 : (long long)lo + at;
}

long long R(mgr_first_nonfinite_pool)(struct mgr_pool *pool, size_t n, const real *x)
{
    vec_job j = {.x = x};
    size_t chunks = mgr_pool_grid(n, &j.chunk);
    mgr_pool_range(pool, n, 1, nonfinite_range, &j);
    for (size_t c = 0; c < chunks; c++)
        if (j.first[c] >= 0) return j.first[c];
    return -1;
}

static void copy_range(void *arg, size_t lo, size_t hi)
{
    vec_job *j = arg;
    memcpy(j->y + lo, j->x + lo, (hi - lo) * sizeof(real));
}

void R(mgr_copy_pool)(struct mgr_pool *pool, size_t n, const real *x, real *y)
{
    if (n == 0 || x == y) return;
    vec_job j = {.x = x, .y = y};
    mgr_pool_range(pool, n, 2, copy_range, &j);
}

static void zero_range(void *arg, size_t lo, size_t hi)
{
    vec_job *j = arg;
    memset(j->y + lo, 0, (hi - lo) * sizeof(real));
}

void R(mgr_zero_pool)(struct mgr_pool *pool, size_t n, real *x)
{
    if (n == 0) return;
    vec_job j = {.y = x};
    mgr_pool_range(pool, n, 1, zero_range, &j);
}

static void axpy_range(void *arg, size_t lo, size_t hi)
{
    vec_job *j = arg;
    R(mgr_axpy)(hi - lo, j->a, j->x + lo, j->y + lo);
}

void R(mgr_axpy_pool)(struct mgr_pool *pool, size_t n, real a, const real *x, real *y)
{
    vec_job j = {.x = x, .y = y, .a = a};
    mgr_pool_range(pool, n, 3, axpy_range, &j);
}

static void axpby_range(void *arg, size_t lo, size_t hi)
{
    vec_job *j = arg;
    const real *restrict x = j->x;
    real *restrict y = j->y;
    const real a = j->a, b = j->b;
    if (j->x1 == NULL) {
        for (size_t i = lo; i < hi; i++) y[i] = a * x[i];
        return;
    }
    const real *restrict x1 = j->x1;
    for (size_t i = lo; i < hi; i++) y[i] = a * x[i] + b * x1[i];
}

void R(mgr_axpby_pool)(struct mgr_pool *pool, size_t n, real a, const real *x, real b,
                       const real *x1, real *y)
{
    vec_job j = {.x = x, .x1 = x1, .y = y, .a = a, .b = b};
    mgr_pool_range(pool, n, 3, axpby_range, &j);
}
