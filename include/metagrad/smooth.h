/*
 * metagrad/smooth.h - diagnostics of smooth training: the empirical
 * metasmoothness of a run along a metaparameter direction, and the Hessian
 * of the training loss at θ_T (H·u products, the dense spectrum of a small
 * model, Lanczos extremes).  docs/smoothness.md defines them and lists the
 * choices that raise metasmoothness.
 *
 * Metagradients only help when training is metasmooth (Engstrom et al.
 * 2025, "Smooth model training").  Writing A(z) for θ_T as a function of
 * the metaparameter z and φ(z) for the output function, with three training
 * runs and no metagradient:
 *     θ_0 = A(z),  θ_h = A(z + hv),  θ_2h = A(z + 2hv),  d = |θ_2h − θ_0|,
 *     Ŝ = Σ_i d_i sign(θ_h − θ_0)_i sign(θ_2h − θ_h)_i / Σ_i d_i   ∈ [−1, 1],
 *     curvature = |φ(z + 2hv) − 2 φ(z + hv) + φ(z)| / h².
 * Ŝ = 1 when A is affine along v; higher is smoother.
 *
 * Thread safety: as the run's context.
 */
#ifndef METAGRAD_SMOOTH_H
#define METAGRAD_SMOOTH_H

#include "meta.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * The empirical metasmoothness Ŝ of `meta`'s run along direction v with
 * step h, and the curvature form of φ (see the top of this header).
 *
 * Trains the run three times, at z + 2hv, z + hv and z (in that order),
 * where z is the metaparameter's current value.  sign(0) = 0; when Σ d = 0
 * (θ_T does not move along v) Ŝ is defined as 1.
 * On success the metaparameter holds z again and the run is trained at z,
 * as after mgrad_run_train (metagradients of an earlier mgrad_run_reverse are
 * discarded).  On failure the metaparameter holds z and the run needs
 * mgrad_run_train.
 *
 * @param meta       a metaparameter of the run to measure.
 * @param direction  v [size of meta], used as given; NULL: a random
 *                   direction of unit Euclidean norm drawn from `seed`
 *                   (standard normal entries, normalised).
 * @param seed       seed of the random direction (ignored with a direction).
 * @param h          step, finite and > 0.
 * @param[out] out_S          Ŝ; may be NULL.
 * @param[out] out_curvature  |φ(z+2hv) − 2φ(z+hv) + φ(z)| / h²; may be NULL.
 * @return MGRAD_OK; MGRAD_ERR_NULL (meta); MGRAD_ERR_INVALID (h not finite
 *         and > 0, v zero or not finite, or z + 2hv out of the
 *         metaparameter's range, e.g. momentum >= 1: the message says which
 *         value); MGRAD_ERR_NONFINITE (a training run diverged: the message
 *         names the run); MGRAD_ERR_NOMEM; the status of a failing
 *         mgrad_run_train.
 */
MGRAD_API mgrad_status mgrad_meta_metasmoothness(mgrad_meta *meta, const double *direction,
                                                 uint64_t seed, double h, double *out_S,
                                                 double *out_curvature);

/**
 * Hessian-vector product H u of the training loss at θ_T,
 *     L(θ) = (1/N) Σ_i w_i ℓ_i(θ)  over the whole training set,
 * with the set's weights w (default 1) and the current values of INPUTS and
 * SOFT_LABELS metaparameters; DATA_WEIGHTS and POOL_WEIGHTS, which belong to
 * particular steps, do not enter.  Rows are taken in chunks of max(B, 256)
 * as in mgrad_run_evaluate (batch norm uses each chunk's statistics);
 * dropout is the identity.  Exact for built-in models and callback models
 * with an hvp callback; a finite-difference approximation otherwise.
 * Computed in the context's dtype.
 * @param u        [count] in `dtype`.
 * @param[out] out [count] in `dtype`: H u.  May not alias u.
 * @param count    the number of parameters (MGRAD_ERR_SIZE otherwise).
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_DTYPE; MGRAD_ERR_SIZE;
 *         MGRAD_ERR_ORDER (no θ_T: call mgrad_run_train first);
 *         MGRAD_ERR_NONFINITE (u or H u not finite); MGRAD_ERR_NOMEM;
 *         MGRAD_ERR_CALLBACK.
 */
MGRAD_API mgrad_status mgrad_run_hvp(mgrad_run *run, mgrad_dtype dtype, const void *u,
                                     void *out, int64_t count);

/** Largest number of parameters mgrad_run_hessian_spectrum accepts. */
#define MGRAD_HESSIAN_DENSE_MAX 4096

/**
 * All eigenvalues of the Hessian of mgrad_run_hvp's loss at θ_T, for small
 * models: H is built column by column from P products H e_j, symmetrised
 * ((H + Hᵀ)/2) and handed to LAPACKE_dsyev.  Costs P passes over the
 * training set and 8P² bytes.
 * @param[out] eigenvalues  [count] in ascending order.
 * @param count  the number of parameters P (MGRAD_ERR_SIZE otherwise).
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_SIZE; MGRAD_ERR_ORDER (no θ_T);
 *         MGRAD_ERR_UNSUPPORTED (P > MGRAD_HESSIAN_DENSE_MAX: use
 *         mgrad_run_hessian_lanczos); MGRAD_ERR_NONFINITE; MGRAD_ERR_NOMEM;
 *         MGRAD_ERR_INTERNAL (LAPACKE failed).
 */
MGRAD_API mgrad_status mgrad_run_hessian_spectrum(mgrad_run *run, double *eigenvalues,
                                                  int64_t count);

/**
 * Extreme eigenvalues of the same Hessian by the Lanczos method on H u
 * products only (any model size): `iterations` steps (at most P) from a
 * random unit start vector drawn from `seed`, with full reorthogonalisation;
 * the Ritz values come from LAPACKE_dstev.  With iterations = P (in exact
 * arithmetic) they are H's extreme eigenvalues; a few dozen iterations
 * usually resolve the extremes of a large model well.  Stops early when the
 * Krylov space becomes invariant.  Works in double precision on products in
 * the context's dtype; memory 8 · iterations · P bytes.
 * @param[out] out  [2]: the smallest and the largest Ritz value.
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_INVALID (iterations < 1);
 *         MGRAD_ERR_ORDER (no θ_T); MGRAD_ERR_NONFINITE; MGRAD_ERR_NOMEM;
 *         MGRAD_ERR_INTERNAL (LAPACKE failed).
 */
MGRAD_API mgrad_status mgrad_run_hessian_lanczos(mgrad_run *run, int64_t iterations,
                                                 uint64_t seed, double *out);

#ifdef __cplusplus
}
#endif

#endif /* METAGRAD_SMOOTH_H */
