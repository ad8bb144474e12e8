/*
 * rng.c - counter-based random numbers (see rng.h).
 */
#include <math.h>

#include "base/rng.h"

static uint64_t mix64(uint64_t z)
{
    /* SplitMix64 finaliser: a bijection with good avalanche. */
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t mgr_rng_u64(uint64_t seed, uint64_t stream, uint64_t counter)
{
    uint64_t key = mix64(mix64(seed + 0x9E3779B97F4A7C15ull) ^ (stream * 0xD1B54A32D192ED03ull));
    return mix64(key + counter * 0x9E3779B97F4A7C15ull);
}

double mgr_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter)
{
    return (double)(mgr_rng_u64(seed, stream, counter) >> 11) * (1.0 / 9007199254740992.0);
}

double mgr_rng_normal(uint64_t seed, uint64_t stream, uint64_t counter)
{
    /* Box-Muller; 1 - u1 keeps the logarithm's argument in (0, 1]. */
    double u1 = 1.0 - mgr_rng_uniform(seed, stream, 2 * counter);
    double u2 = mgr_rng_uniform(seed, stream, 2 * counter + 1);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint64_t mgr_rng_below(uint64_t seed, uint64_t stream, uint64_t counter, uint64_t n)
{
    /* Rejection on the top of the range avoids modulo bias; the retry
       counter is derived from the first, so draws stay pure functions. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x = mgr_rng_u64(seed, stream, counter);
    for (uint64_t retry = 1; x >= limit; retry++)
        x = mgr_rng_u64(seed, stream ^ (retry << 56), counter);
    return x % n;
}
