/*
 * rng.h - counter-based random numbers.  Every draw is a pure function of
 * (seed, stream, counter), so any step of a run can be recomputed exactly
 * without carrying generator state: batch order, initialisers, dropout.
 *
 * The mixer is SplitMix64's finaliser applied to a keyed counter; streams
 * are separated by hashing (seed, stream) first.
 */
#ifndef MGRAD_RNG_H
#define MGRAD_RNG_H

#include <stdint.h>

/* Well-mixed 64-bit value for (seed, stream, counter). */
uint64_t mgr_rng_u64(uint64_t seed, uint64_t stream, uint64_t counter);
/* Uniform in [0, 1) with 53 random bits. */
double mgr_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter);
/* Standard normal (Box-Muller on counters 2c and 2c+1). */
double mgr_rng_normal(uint64_t seed, uint64_t stream, uint64_t counter);
/* Uniform integer in [0, n) without modulo bias (n >= 1). */
uint64_t mgr_rng_below(uint64_t seed, uint64_t stream, uint64_t counter, uint64_t n);

/* Well-known stream ids, so that independent uses never collide. */
enum {
    MGR_STREAM_INIT = 1,      /* + layer index << 8 */
    MGR_STREAM_SHUFFLE = 2,   /* + epoch << 8 */
    MGR_STREAM_DROPOUT = 3,   /* + (step << 16 | layer) << 8 */
    MGR_STREAM_USER = 4
};

#endif /* MGRAD_RNG_H */
