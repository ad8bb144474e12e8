/* Helpers shared by the test suites (header-only). */
#ifndef MGRAD_TESTUTIL_H
#define MGRAD_TESTUTIL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* A sentinel that no API call ever writes into a handle. */
#define SENTINEL_PTR ((void *)(uintptr_t)0x5e5e5e5e)

/* Relative error |a - b| / max(|a|, |b|, floor). */
static inline double tu_rel_err(double a, double b, double floor_)
{
    double d = fabs(a - b);
    double s = fmax(fmax(fabs(a), fabs(b)), floor_);
    return d / s;
}

/* Deterministic pseudo-random doubles in [-1, 1) (SplitMix64). */
static inline double tu_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

static inline void tu_fill(double *x, size_t n, uint64_t *state, double scale)
{
    for (size_t i = 0; i < n; i++) x[i] = scale * tu_rand(state);
}

/* ‖a − b‖ / max(‖a‖, ‖b‖, floor) over n values. */
static inline double tu_vec_rel_err(const double *a, const double *b, size_t n, double floor_)
{
    double d = 0, na = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        d += (a[i] - b[i]) * (a[i] - b[i]);
        na += a[i] * a[i];
        nb += b[i] * b[i];
    }
    double s = fmax(fmax(sqrt(na), sqrt(nb)), floor_);
    return sqrt(d) / s;
}

/* Random integer in [lo, hi]. */
static inline int64_t tu_rand_int(uint64_t *st, int64_t lo, int64_t hi)
{
    double r = 0.5 * (tu_rand(st) + 1.0); /* [0, 1) */
    int64_t v = lo + (int64_t)(r * (double)(hi - lo + 1));
    return v > hi ? hi : v;
}

/* a = b + s c  (c NULL: a = b) */
static inline void tu_axpy_to(double *a, const double *b, double s, const double *c, size_t n)
{
    for (size_t i = 0; i < n; i++) a[i] = b[i] + s * (c != NULL ? c[i] : 0.0);
}

#endif
