/* Helpers shared by the test suites (header-only). */
#ifndef MGRAD_TESTUTIL_H
#define MGRAD_TESTUTIL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

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

#endif
