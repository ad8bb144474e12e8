/*
 * elementwise.c - vector kernels.  Loops are kept plain so that gcc
 * vectorises them; reductions run in index order in double so that results
 * are the same whatever the thread count.
 */
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"

double R(mgr_dot)(size_t n, const real *x, const real *y)
{
    double acc = 0;
    for (size_t i = 0; i < n; i++) acc += (double)x[i] * (double)y[i];
    return acc;
}

double R(mgr_sum)(size_t n, const real *x)
{
    double acc = 0;
    for (size_t i = 0; i < n; i++) acc += (double)x[i];
    return acc;
}

void R(mgr_axpy)(size_t n, real a, const real *x, real *y)
{
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}

void R(mgr_scal)(size_t n, real a, real *x)
{
    for (size_t i = 0; i < n; i++) x[i] *= a;
}

void R(mgr_copy)(size_t n, const real *x, real *y)
{
    if (n > 0 && x != y) memcpy(y, x, n * sizeof(real));
}

void R(mgr_zero)(size_t n, real *x)
{
    if (n > 0) memset(x, 0, n * sizeof(real));
}

long long R(mgr_first_nonfinite)(size_t n, const real *x)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return (long long)i;
    return -1;
}

void R(mgr_add_colsum)(size_t rows, size_t cols, const real *x, real *out)
{
    for (size_t r = 0; r < rows; r++) {
        const real *row = x + r * cols;
        for (size_t j = 0; j < cols; j++) out[j] += row[j];
    }
}

void R(mgr_add_rowvec)(size_t rows, size_t cols, const real *b, real *y)
{
    for (size_t r = 0; r < rows; r++) {
        real *row = y + r * cols;
        for (size_t j = 0; j < cols; j++) row[j] += b[j];
    }
}
