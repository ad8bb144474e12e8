/*
 * metagrad/mgd.h - metagradient descent (MGD): optimise a metaparameter by
 * repeated train → metagradient → update, with projections, the paper's
 * count-based data selection, tracking of the best iterate on held-out data,
 * and a progress callback that can cancel.
 *
 * One meta-step (mgrad_mgd_step):
 *     φ = train(z);  score = held-out loss of θ_T (or φ);  keep z if best;
 *     g = dφ/dz (from `gradient_from`, default the metaparameter itself);
 *     z ← project(update(z, g))
 * Updates (minimising φ; with options.maximize the gradient's sign is
 * flipped and the best iterate is the highest-scoring one):
 *     SIGN      z ← z − lr · sign(g) ⊙ m,  m_i ~ Bernoulli(mask_prob)
 *     ADAM      Adam on g with lr, beta1, beta2, eps (bias-corrected)
 *     SGD       z ← z − lr · g
 *     EXCHANGE  fixed-budget data selection: move `lr` (rounded, >= 1) units
 *               of count from each of the `exchange` entries with the largest
 *               g (among those with count > 0) to each of the `exchange`
 *               entries with the smallest g; the total is unchanged
 * Data selection (Algorithm 1 of the paper): the metaparameter is the
 * training set's DATA_WEIGHTS used as integer counts, the gradient comes
 * from a POOL_WEIGHTS metaparameter over the training set at a step k
 * (gradient_from), method SIGN with lr 1 and projection NONNEGATIVE.
 *
 * Thread safety: as the metaparameter's run.
 */
#ifndef METAGRAD_MGD_H
#define METAGRAD_MGD_H

#include "meta.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mgrad_mgd mgrad_mgd;

typedef enum mgrad_mgd_method {
    MGRAD_MGD_SIGN = 1,
    MGRAD_MGD_ADAM = 2,
    MGRAD_MGD_SGD = 3,
    MGRAD_MGD_EXCHANGE = 4
} mgrad_mgd_method;

typedef enum mgrad_projection {
    MGRAD_PROJECT_NONE = 0,
    MGRAD_PROJECT_BOX = 1,         /**< clip to [lo, hi] */
    MGRAD_PROJECT_NONNEGATIVE = 2, /**< max(z, 0) */
    MGRAD_PROJECT_FIXED_SUM = 3,   /**< Euclidean projection onto {z >= 0, Σ z = sum} */
    MGRAD_PROJECT_TOP_K = 4        /**< keep the k largest entries, zero the rest */
} mgrad_projection;

/**
 * Progress hook, called after every meta-step with the step index, φ, the
 * held-out score (φ when no held-out set) and the step's seconds.  Return
 * nonzero to stop: mgrad_mgd_run then returns MGRAD_ERR_CANCELLED.
 */
typedef int (*mgrad_mgd_progress_fn)(int64_t step, double phi, double score,
                                     double seconds, void *user_data);

#define MGRAD_MGD_OPTIONS_VERSION 1

typedef struct mgrad_mgd_options {
    uint32_t version;            /**< MGRAD_MGD_OPTIONS_VERSION */
    mgrad_mgd_method method;     /**< default MGRAD_MGD_SIGN */
    double lr;                   /**< step size; default 0.01 */
    double mask_prob;            /**< SIGN: probability of updating an entry; default 1 */
    double beta1, beta2, eps;    /**< ADAM; defaults 0.9, 0.999, 1e-8 */
    uint64_t seed;               /**< mask draws; default 0 */
    mgrad_projection projection; /**< default MGRAD_PROJECT_NONE */
    double lo, hi;               /**< BOX bounds; default 0, 1 */
    double sum;                  /**< FIXED_SUM total; default 1 */
    int64_t k;                   /**< TOP_K; default 1 */
    int64_t exchange;            /**< EXCHANGE: entries moved per step; default 1 */
    /** Where the gradient comes from (same run); NULL: the metaparameter itself.
        Must have the same size. */
    const mgrad_meta *gradient_from;
    /** Held-out set scoring each iterate (mean loss of θ_T); NULL: φ. */
    const mgrad_dataset *heldout;
    mgrad_mgd_progress_fn progress;
    void *user_data;
    /** 1: maximise φ instead (e.g. data poisoning); the best iterate is then
        the one with the highest score.  Default 0. */
    int32_t maximize;
    /** Optional linear parametrisation z = basis · c, basis [size, basis_dim]
        row-major (e.g. hat functions for a piecewise-linear LR schedule):
        MGD then optimises c (gradient basisᵀ dφ/dz; the projection applies to
        c), starting from `coefficients` [basis_dim].  Both are copied.  NULL
        (default): z itself. */
    const double *basis;
    int64_t basis_dim;
    const double *coefficients;
    /** 1: train every meta-step with a new batch order (the run's shuffle
        seed becomes a function of `seed` and the step), so that the result
        does not fit one batch order; iterates are then scored on different
        orders.  Needs a run with shuffled batches.  Default 0. */
    int32_t reshuffle;
} mgrad_mgd_options;

#define MGRAD_MGD_OPTIONS_INIT                                                   \
    { MGRAD_MGD_OPTIONS_VERSION, MGRAD_MGD_SIGN, 0.01, 1.0, 0.9, 0.999, 1e-8, 0, \
      MGRAD_PROJECT_NONE, 0.0, 1.0, 1.0, 1, 1, NULL, NULL, NULL, NULL, 0, NULL, 0, NULL, 0 }

/** Fill `opts` with the defaults.  MGRAD_ERR_NULL, MGRAD_ERR_VERSION. */
MGRAD_API mgrad_status mgrad_mgd_options_init(mgrad_mgd_options *opts, uint32_t version);

/**
 * Create an MGD optimiser of `meta` (which must outlive it, like its run).
 * @param[out] out  owned by the caller (mgrad_mgd_destroy).
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_VERSION; MGRAD_ERR_INVALID (a
 *         value out of range, gradient_from of another run or size);
 *         MGRAD_ERR_NOMEM.
 */
MGRAD_API mgrad_status mgrad_mgd_create(mgrad_mgd **out, mgrad_meta *meta,
                                        const mgrad_mgd_options *opts);

/** Destroy.  Accepts NULL.  The metaparameter keeps its last value. */
MGRAD_API void mgrad_mgd_destroy(mgrad_mgd *mgd);

/**
 * One meta-step (see the top of this header).
 * @param[out] phi  φ of the iterate before the update; may be NULL.
 * @return MGRAD_OK or the status of the failing train / reverse; on failure
 *         the metaparameter keeps its value.
 */
MGRAD_API mgrad_status mgrad_mgd_step(mgrad_mgd *mgd, double *phi);

/**
 * `steps` meta-steps with the progress hook, then one more training of the
 * final iterate so that it is scored too.
 * @return MGRAD_OK; MGRAD_ERR_CANCELLED when the hook asked to stop; or the
 *         status of a failing step.
 */
MGRAD_API mgrad_status mgrad_mgd_run(mgrad_mgd *mgd, int64_t steps);

/**
 * The best iterate so far (lowest score, or highest with maximize) as the
 * metaparameter's value z, and its score; `count` must equal the
 * metaparameter's size.  MGRAD_ERR_ORDER before the first step.
 */
MGRAD_API mgrad_status mgrad_mgd_best(const mgrad_mgd *mgd, mgrad_dtype dtype, void *out,
                                      int64_t count, double *score);

/** Meta-steps taken. */
MGRAD_API mgrad_status mgrad_mgd_steps(const mgrad_mgd *mgd, int64_t *out);

#ifdef __cplusplus
}
#endif

#endif /* METAGRAD_MGD_H */
