/*
 * metagrad/mgd.h - metagradient descent (MGD): optimise a metaparameter by
 * repeated train → metagradient → update, with projections, the paper's
 * count-based data selection, tracking of the best iterate on held-out data,
 * and a progress callback that can cancel.
 *
 * One meta-step (mgrad_mgd_step):
 *     φ = train(z);  score = held-out loss of θ_T (or φ);  keep z if best;
 *     g = dφ/dz (from the gradient source, default the metaparameter itself);
 *     z ← project(update(z, g))
 * Updates (minimising φ; with MAXIMIZE = 1 the gradient's sign is flipped and
 * the best iterate is the highest-scoring one; lr is LR times the factor of
 * the meta step-size schedule at this step, mgrad_mgd_set_lr_schedule):
 *     SIGN      z ← z − lr · sign(g) ⊙ m,  m_i ~ Bernoulli(mask_prob)
 *     ADAM      Adam on g with lr, beta1, beta2, eps (bias-corrected)
 *     SGD       z ← z − lr · g
 *     EXCHANGE  fixed-budget data selection on counts: pair the r-th largest
 *               g among the entries that can give (z > lo) with the r-th
 *               smallest among those that can take (z < hi), r < `exchange`,
 *               and move min(round(lr) (>= 1), z_give − lo, hi − z_take)
 *               units of count within each pair; lo = 0 and hi = ∞, or the
 *               BOX's bounds (lo at least 0).  The total is unchanged (exactly
 *               for integer counts) under every projection EXCHANGE accepts
 *               (NONE, NONNEGATIVE, BOX; a step from a value outside the BOX
 *               is refused).  Counts are a multiset: an entry may gain
 *               several units, so the number of distinct examples selected
 *               (nonzero counts) can fall below the total.
 *     KEEP_DROP exact-size subset selection: z is a 0/1 vector (a step from
 *               any other value is refused) whose K ones are the selected
 *               examples; swap the kept entry with the largest g for the
 *               dropped entry with the smallest g, up to `exchange` pairs,
 *               while g_dropped < g_kept (the swap lowers φ to first order).
 *               K is unchanged and no example is selected twice.  No step
 *               size (LR and its schedule are refused), no projection.
 *
 * Data selection.  The paper's Algorithm 1 (Engstrom et al. 2025) is
 *     c ← max(0, c − sign(g) ⊙ m),  m_i ~ Bernoulli(p),
 * with c the training set's DATA_WEIGHTS used as integer counts and g from a
 * POOL_WEIGHTS metaparameter over the training set at a step k
 * (mgrad_mgd_set_gradient_from): method SIGN, LR 1, MASK_PROB p, projection
 * NONNEGATIVE.  Its total count drifts.  The paper's fixed-budget variant is
 * EXCHANGE (LR 1, EXCHANGE = entries swapped per step), which keeps the total
 * exactly; examples/data_selection.c and examples/python/data_selection.py
 * use EXCHANGE, because their selection must hold exactly K examples to be
 * compared with baselines that select K (docs/applications.md).  EXCHANGE's
 * K units may sit on fewer than K distinct examples; KEEP_DROP selects
 * exactly K distinct ones.
 *
 * Configuration.  The method is fixed when the optimiser is created; every
 * other setting has a default and a typed setter:
 *     mgrad_mgd_create(&mgd, meta, MGRAD_MGD_ADAM);
 *     mgrad_mgd_set_real(mgd, MGRAD_MGD_PARAM_LR, 0.02);
 *     mgrad_mgd_set_projection(mgd, MGRAD_PROJECT_BOX, (double[]){0, 1}, 2);
 *     mgrad_mgd_run(mgd, 50);
 * Scalar settings are keys (mgrad_mgd_param) set with mgrad_mgd_set_real or
 * mgrad_mgd_set_int, read with the matching getter, and described (type,
 * accepted range, default, whether the optimiser's method reads it) by
 * mgrad_mgd_get_param_info.  Settings that are not one number (projection,
 * gradient source, held-out set, progress hook, basis, seed) have their own
 * setters.  Every setter validates first: a refused value returns a status
 * with a message (mgrad_context_last_error) and changes nothing.
 *
 * Changing settings between meta-steps.  Every setter may be called between
 * steps (also from the progress hook); the change applies from the next
 * step on and the optimiser's state is kept: the step count, the current
 * iterate, Adam's moments m and v (a new BETA1/BETA2 applies to the next
 * moment update, and bias correction uses the new β with the total step
 * count), and the best iterate, except where a change makes scores
 * incomparable: a new held-out set, MAXIMIZE or BEST_ORDERS forgets the best
 * iterate (mgrad_mgd_best then fails with MGRAD_ERR_ORDER until the next step
 * scores one).  A new projection is applied after the next update; the
 * current iterate is not re-projected.  The basis can only be set before
 * the first step (it changes the optimised variable).
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
    MGRAD_MGD_EXCHANGE = 4,
    MGRAD_MGD_KEEP_DROP = 5
} mgrad_mgd_method;

typedef enum mgrad_projection {
    MGRAD_PROJECT_NONE = 0,        /**< no parameters */
    MGRAD_PROJECT_BOX = 1,         /**< clip to [lo, hi]; parameters {lo, hi}, default {0, 1} */
    MGRAD_PROJECT_NONNEGATIVE = 2, /**< max(z, 0); no parameters */
    MGRAD_PROJECT_FIXED_SUM = 3,   /**< Euclidean projection onto {z >= 0, Σ z = sum};
                                        parameters {sum}, default {1} */
    MGRAD_PROJECT_TOP_K = 4        /**< keep the k largest entries, zero the rest;
                                        parameters {k}, default {1} */
} mgrad_projection;

/**
 * Scalar settings.  Type, range and default (for an optimiser of a
 * metaparameter of `size` values, optimising n values: n = size, or the
 * basis dimension):
 *   key         type  methods   range                  default
 *   LR          real  all but   (0, ∞)                 0.01
 *                     KEEP_DROP
 *   MASK_PROB   real  SIGN      (0, 1]                 1
 *   BETA1       real  ADAM      [0, 1)                 0.9
 *   BETA2       real  ADAM      [0, 1)                 0.999
 *   EPS         real  ADAM      (0, ∞)                 1e-8
 *   EXCHANGE    int   EXCHANGE, [1, size/2]            1   pairs exchanged per step
 *                     KEEP_DROP
 *   MAXIMIZE    int   all       {0, 1}                 0   1: maximise φ (e.g. data
 *                                                          poisoning); the best
 *                                                          iterate is the highest
 *   RESHUFFLE   int   all       {0, 1}                 0   1: train every meta-step
 *                     with a new batch order (the run's shuffle seed becomes a
 *                     function of the seed and the step), so that the result
 *                     does not fit one batch order; iterates are then scored on
 *                     different orders (see BEST_ORDERS).  Needs a run without
 *                     explicit batches.
 *   BEST_ORDERS int   all       [0, 64]                0   0: score each iterate on the
 *                     training that gives its metagradient (with RESHUFFLE, a
 *                     different order per iterate).  k > 0 (needs RESHUFFLE = 1;
 *                     RESHUFFLE cannot be turned off while k > 0): score every
 *                     iterate by the mean score of k extra trainings on k fixed
 *                     batch orders (the same for every iterate, drawn from the
 *                     seed), so that the best iterate compares like with like.
 *                     Costs k more trainings per meta-step (and k for the final
 *                     iterate of mgrad_mgd_run).  A change forgets the best
 *                     iterate.
 * A key of another method is refused (MGRAD_ERR_INVALID), so that a setting
 * cannot be silently ignored.
 */
typedef enum mgrad_mgd_param {
    MGRAD_MGD_PARAM_LR = 1,
    MGRAD_MGD_PARAM_MASK_PROB = 2,
    MGRAD_MGD_PARAM_BETA1 = 3,
    MGRAD_MGD_PARAM_BETA2 = 4,
    MGRAD_MGD_PARAM_EPS = 5,
    MGRAD_MGD_PARAM_EXCHANGE = 6,
    MGRAD_MGD_PARAM_MAXIMIZE = 7,
    MGRAD_MGD_PARAM_RESHUFFLE = 8,
    MGRAD_MGD_PARAM_BEST_ORDERS = 9
} mgrad_mgd_param;

/**
 * Progress hook, called by mgrad_mgd_run after every meta-step with the
 * step index, φ, the held-out score (φ when no held-out set) and the step's
 * seconds.  Return nonzero to stop: mgrad_mgd_run then returns
 * MGRAD_ERR_CANCELLED.  The hook may change settings (a schedule of the step
 * size, say): the next step uses them.
 */
typedef int (*mgrad_mgd_progress_fn)(int64_t step, double phi, double score,
                                     double seconds, void *user_data);

/**
 * Create an MGD optimiser of `meta` (which must outlive it, like its run)
 * with update rule `method` and every other setting at its default.
 * @param[out] out  owned by the caller (mgrad_mgd_destroy).
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_INVALID (not an
 *         mgrad_mgd_method; EXCHANGE or KEEP_DROP on a metaparameter of
 *         fewer than 2 values); MGRAD_ERR_NOMEM.
 */
MGRAD_API mgrad_status mgrad_mgd_create(mgrad_mgd **out, mgrad_meta *meta,
                                        mgrad_mgd_method method);

/** Destroy.  Accepts NULL.  The metaparameter keeps its last value. */
MGRAD_API void mgrad_mgd_destroy(mgrad_mgd *mgd);

/** The update rule given to mgrad_mgd_create. */
MGRAD_API mgrad_status mgrad_mgd_method_of(const mgrad_mgd *mgd, mgrad_mgd_method *out);

#define MGRAD_MGD_PARAM_INFO_VERSION 1

/**
 * What mgrad_mgd_get_param_info says about a key.  Set `version` before the
 * call; fields are only appended.
 */
typedef struct mgrad_mgd_param_info {
    uint32_t version;     /**< MGRAD_MGD_PARAM_INFO_VERSION */
    const char *name;     /**< "lr", "mask_prob", ... (static storage) */
    int32_t is_int;       /**< 1: mgrad_mgd_set_int / get_int; 0: the _real pair */
    int32_t applies;      /**< 1 when this optimiser's method reads the key */
    double min, max;      /**< accepted range (±INFINITY where unbounded) */
    int32_t min_open;     /**< 1: min itself is refused */
    int32_t max_open;     /**< 1: max itself is refused */
    double default_value; /**< the value a new optimiser starts with */
} mgrad_mgd_param_info;

#define MGRAD_MGD_PARAM_INFO_INIT { MGRAD_MGD_PARAM_INFO_VERSION, NULL, 0, 0, 0.0, 0.0, 0, 0, 0.0 }

/**
 * Describe `key` for this optimiser (ranges that depend on the
 * metaparameter's size are resolved).  The setters accept exactly the values
 * in [min, max] (without an open end) when `applies`.
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_VERSION; MGRAD_ERR_INVALID
 *         (not an mgrad_mgd_param).
 */
MGRAD_API mgrad_status mgrad_mgd_get_param_info(const mgrad_mgd *mgd, mgrad_mgd_param key,
                                                mgrad_mgd_param_info *out);

/**
 * Set a real-valued key (LR, MASK_PROB, BETA1, BETA2, EPS).
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_INVALID (unknown key, an
 *         integer key, a key of another method, or a value out of range; the
 *         message names the key and its range).  Nothing changes on failure.
 */
MGRAD_API mgrad_status mgrad_mgd_set_real(mgrad_mgd *mgd, mgrad_mgd_param key, double value);

/** Read a real-valued key (also one the method does not read: its default). */
MGRAD_API mgrad_status mgrad_mgd_get_real(const mgrad_mgd *mgd, mgrad_mgd_param key,
                                          double *out);

/**
 * Set an integer key (EXCHANGE, MAXIMIZE, RESHUFFLE, BEST_ORDERS).
 * RESHUFFLE = 1 on a run with explicit batches is refused, and so are
 * BEST_ORDERS > 0 without RESHUFFLE and RESHUFFLE = 0 with BEST_ORDERS > 0.
 * @return as mgrad_mgd_set_real.  Nothing changes on failure.
 */
MGRAD_API mgrad_status mgrad_mgd_set_int(mgrad_mgd *mgd, mgrad_mgd_param key, int64_t value);

/** Read an integer key. */
MGRAD_API mgrad_status mgrad_mgd_get_int(const mgrad_mgd *mgd, mgrad_mgd_param key,
                                         int64_t *out);

/**
 * Schedules of the meta step size: the step of meta-step k (k = 0, 1, ...,
 * the optimiser's step count, kept when settings change) is LR · f(k):
 *   CONSTANT  f = 1; no parameters (the default)
 *   COSINE    {total, floor}: f = floor + (1 − floor)(1 + cos(π min(k, total)/total))/2;
 *             total >= 1 finite, floor in [0, 1]; default {100, 0}
 *   STEP      {every, gamma}: f = gamma^floor(k / every); every an integer
 *             >= 1, gamma in (0, 1]; default {10, 0.5}
 *   INV_SQRT  {k0}: f = 1 / sqrt(1 + k / k0); k0 > 0 finite; default {1}
 * For EXCHANGE the step is the units moved, round(LR · f) but at least 1.
 */
typedef enum mgrad_mgd_lr_schedule {
    MGRAD_MGD_LR_CONSTANT = 0,
    MGRAD_MGD_LR_COSINE = 1,
    MGRAD_MGD_LR_STEP = 2,
    MGRAD_MGD_LR_INV_SQRT = 3
} mgrad_mgd_lr_schedule;

/**
 * Set the schedule of the meta step size with its parameters (see
 * mgrad_mgd_lr_schedule); `params` NULL with `count` 0: the kind's
 * defaults.  May be set between steps: f is a function of the total step
 * count, so a schedule set after 20 steps continues at f(20).
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_SIZE (count is not the kind's
 *         number of parameters); MGRAD_ERR_INVALID (unknown kind, a parameter
 *         out of range, a KEEP_DROP optimiser).  Nothing changes on failure.
 */
MGRAD_API mgrad_status mgrad_mgd_set_lr_schedule(mgrad_mgd *mgd, mgrad_mgd_lr_schedule kind,
                                                 const double *params, int64_t count);

/**
 * The schedule and its parameters (`count` at least their number; params
 * NULL with count 0 reads the kind only).
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_SIZE.
 */
MGRAD_API mgrad_status mgrad_mgd_get_lr_schedule(const mgrad_mgd *mgd,
                                                 mgrad_mgd_lr_schedule *kind, double *params,
                                                 int64_t count);

/**
 * The step size the next meta-step uses: LR · f(steps taken) (0 for
 * KEEP_DROP).
 * @return MGRAD_OK; MGRAD_ERR_NULL.
 */
MGRAD_API mgrad_status mgrad_mgd_step_size(const mgrad_mgd *mgd, double *out);

/**
 * Seed of SIGN's mask draws and of RESHUFFLE's batch orders (both are
 * functions of the seed and the step index), and of BEST_ORDERS' fixed
 * orders; default 0.
 */
MGRAD_API mgrad_status mgrad_mgd_set_seed(mgrad_mgd *mgd, uint64_t seed);

/** Read the seed. */
MGRAD_API mgrad_status mgrad_mgd_get_seed(const mgrad_mgd *mgd, uint64_t *out);

/**
 * Set the projection applied after every update, with its parameters
 * (see mgrad_projection): BOX {lo, hi} with lo <= hi; FIXED_SUM {sum} with
 * sum > 0 and finite; TOP_K {k}, an integer in [1, n]; NONE and NONNEGATIVE
 * none.  `params` NULL with `count` 0: the kind's defaults.  Default
 * projection: NONE.  EXCHANGE accepts NONE, NONNEGATIVE and BOX (its
 * update keeps the total and the bounds, so the projection never cuts the
 * budget); KEEP_DROP only NONE.
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_SIZE (count is not the kind's
 *         number of parameters); MGRAD_ERR_INVALID (unknown kind, a
 *         parameter out of range, a kind the method refuses).  Nothing
 *         changes on failure.
 */
MGRAD_API mgrad_status mgrad_mgd_set_projection(mgrad_mgd *mgd, mgrad_projection kind,
                                                const double *params, int64_t count);

/**
 * The projection and its parameters.  `params` receives the kind's
 * parameters (`count` must be at least their number; params may be NULL
 * with count 0 to read the kind only).
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_SIZE.
 */
MGRAD_API mgrad_status mgrad_mgd_get_projection(const mgrad_mgd *mgd, mgrad_projection *kind,
                                                double *params, int64_t count);

/**
 * Take the gradient from `source` (same run, same size; e.g. the POOL_WEIGHTS
 * relaxation of data selection) instead of the metaparameter itself; NULL:
 * the metaparameter itself (the default).  `source` must outlive the
 * optimiser, like its run.
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_INVALID (another run or
 *         size).  Nothing changes on failure.
 */
MGRAD_API mgrad_status mgrad_mgd_set_gradient_from(mgrad_mgd *mgd, const mgrad_meta *source);

/**
 * Score each iterate by the mean loss of θ_T on `heldout` instead of by φ;
 * NULL: by φ (the default).  The set is kept by reference and must outlive
 * the optimiser or be replaced.  A different set forgets the best iterate
 * (its score was on the other set).
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_INVALID (another context);
 *         MGRAD_ERR_SHAPE or MGRAD_ERR_ORDER (the set does not fit the
 *         model or the loss: see mgrad_run_check_dataset).  Nothing changes
 *         on failure.
 */
MGRAD_API mgrad_status mgrad_mgd_set_heldout(mgrad_mgd *mgd, const mgrad_dataset *heldout);

/** Set (or with NULL, remove) the progress hook; the default is none. */
MGRAD_API mgrad_status mgrad_mgd_set_progress(mgrad_mgd *mgd, mgrad_mgd_progress_fn progress,
                                              void *user_data);

/**
 * Optimise c in the linear parametrisation z = basis · c instead of z
 * itself: `basis` [size, dim] row-major (e.g. hat functions for a
 * piecewise-linear LR schedule), starting from `coefficients` [dim].  The
 * gradient is then basisᵀ dφ/dz and the projection applies to c.  Both
 * arrays are copied.  `basis` NULL (with dim 0, coefficients NULL): z
 * itself again.  Only before the first step.
 * @return MGRAD_OK; MGRAD_ERR_NULL (a basis without coefficients, or dim or
 *         coefficients without a basis); MGRAD_ERR_ORDER (after the first
 *         step); MGRAD_ERR_INVALID (dim < 1 or dim · size too large, a method
 *         EXCHANGE or KEEP_DROP optimiser (they work on counts), or a TOP_K
 *         projection whose k exceeds dim); MGRAD_ERR_ORDER (also: a map is
 *         set, mgrad_mgd_set_map); MGRAD_ERR_NOMEM.  Nothing changes on
 *         failure.
 */
MGRAD_API mgrad_status mgrad_mgd_set_basis(mgrad_mgd *mgd, const double *basis, int64_t dim,
                                           const double *coefficients);

/**
 * Nonlinear parametrisations z = map(c) of the optimised variable c; the
 * gradient is Jᵀ dφ/dz with the map's exact Jacobian J, the update and the
 * projection apply to c.
 *   IDENTITY   z = u, where u = basis · c with a basis (mgrad_mgd_set_basis)
 *              or u = c (the default)
 *   EXP        z = exp(u) elementwise: a log-scale parametrisation (u as
 *              for IDENTITY, so it composes with a basis: a piecewise-linear
 *              log schedule); keeps z > 0 and makes steps relative
 *   COSINE     an LR schedule over the metaparameter's size T entries,
 *              s = t / (T − 1), c = {peak, floor, warmup}:
 *                s < warmup:  z = peak · s / warmup
 *                otherwise:   z = floor + (peak − floor)(1 + cos(π v))/2,
 *                             v = (s − warmup) / (1 − warmup)
 *   ONE_CYCLE  c = {peak, start, end, pct}:
 *                s < pct:     z = peak + (start − peak)(1 + cos(π s / pct))/2
 *                otherwise:   z = end + (peak − end)(1 + cos(π v))/2,
 *                             v = (s − pct) / (1 − pct)
 * The families keep their coefficients in their domain after every update
 * (and projection): peak, floor, start, end >= 0; warmup in [0, 0.99]; pct
 * in [0.01, 0.99].  At the kinks s = warmup and s = pct the Jacobian is the
 * right-hand one.
 */
typedef enum mgrad_mgd_map {
    MGRAD_MGD_MAP_IDENTITY = 0,
    MGRAD_MGD_MAP_EXP = 1,
    MGRAD_MGD_MAP_COSINE = 2,
    MGRAD_MGD_MAP_ONE_CYCLE = 3
} mgrad_mgd_map;

/**
 * Optimise c in z = map(c) (see mgrad_mgd_map), starting from
 * `coefficients` [dim] (copied), reset Adam moments.  Only before the first
 * step; set a basis first (mgrad_mgd_set_basis refuses while a map is set).
 *   IDENTITY: coefficients NULL, dim 0: back to u (a basis keeps its
 *             coefficients).
 *   EXP: dim = the basis dimension (coefficients required) or the
 *        metaparameter's size; coefficients NULL with dim 0 (no basis):
 *        c = log of the metaparameter's current value, which must be > 0.
 *   COSINE: dim 3; ONE_CYCLE: dim 4; coefficients in the domain above; no
 *        basis.
 * @return MGRAD_OK; MGRAD_ERR_NULL (coefficients NULL where required);
 *         MGRAD_ERR_SIZE (dim); MGRAD_ERR_ORDER (after the first step);
 *         MGRAD_ERR_INVALID (unknown kind, a method EXCHANGE or KEEP_DROP
 *         optimiser, a family with a basis, a coefficient out of its domain
 *         or not finite, a value <= 0 for EXP's logarithm, a TOP_K
 *         projection whose k exceeds dim); MGRAD_ERR_NOMEM.  Nothing changes
 *         on failure.
 */
MGRAD_API mgrad_status mgrad_mgd_set_map(mgrad_mgd *mgd, mgrad_mgd_map kind,
                                         const double *coefficients, int64_t dim);

/**
 * The map and the number of optimised values (`dim` may be NULL).
 * @return MGRAD_OK; MGRAD_ERR_NULL.
 */
MGRAD_API mgrad_status mgrad_mgd_get_map(const mgrad_mgd *mgd, mgrad_mgd_map *kind,
                                         int64_t *dim);

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
 * The best iterate so far (lowest score, or highest with MAXIMIZE) as the
 * metaparameter's value z, and its score; `count` must equal the
 * metaparameter's size.  MGRAD_ERR_ORDER before the first step (or after a
 * change of held-out set or MAXIMIZE, until the next step).
 */
MGRAD_API mgrad_status mgrad_mgd_best(const mgrad_mgd *mgd, mgrad_dtype dtype, void *out,
                                      int64_t count, double *score);

/** Meta-steps taken. */
MGRAD_API mgrad_status mgrad_mgd_steps(const mgrad_mgd *mgd, int64_t *out);

/* ---- trust check ------------------------------------------------------- */

#define MGRAD_TRUST_REPORT_VERSION 1

/**
 * What mgrad_mgd_trust_check measured.  Set `version` before the call;
 * fields are only appended.
 */
typedef struct mgrad_trust_report {
    uint32_t version;     /**< MGRAD_TRUST_REPORT_VERSION */
    double h;             /**< the step Ŝ was measured with */
    double S;             /**< Ŝ along a random unit direction (metagrad/smooth.h) */
    double curvature;     /**< |φ(z+2hv) − 2φ(z+hv) + φ(z)| / h² */
    double rel_diff;      /**< ‖g − g_twin‖ / ‖g_f64‖; NaN without a twin */
    double cosine;        /**< cosine of the angle between g and g_twin; NaN without */
    int32_t smooth_ok;    /**< S >= 0.6 */
    int32_t precision_ok; /**< rel_diff <= 0.2 (1 without a twin) */
    int32_t trusted;      /**< smooth_ok and precision_ok */
} mgrad_trust_report;

#define MGRAD_TRUST_REPORT_INIT { MGRAD_TRUST_REPORT_VERSION, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0, 0 }

/**
 * A check before MGD: are the metagradients of `meta` at its current value
 * worth following?  Measures
 *   - Ŝ and the curvature (mgrad_meta_metasmoothness) along a random unit
 *     direction drawn from `seed`, with step `h`; h = 0: the default,
 *     0.1 ‖z‖₂ (each entry moves by 10% of the value's RMS along a unit
 *     direction: 0.1 η √T for a constant LR schedule η over T steps,
 *     0.1 √N for N data weights of 1), or 0.01 when z = 0; and
 *   - with a `twin` (the same run built in a context of the other dtype,
 *     with a metaparameter of the same kind and size): both metagradients
 *     at z (the twin's value is set to z), their relative difference
 *     ‖g − g_twin‖ / ‖g_f64‖ and the cosine of their angle.  NULL: no
 *     precision check.
 * It sets smooth_ok (S >= 0.6), precision_ok (rel_diff <= 0.2) and trusted,
 * and logs each failed check at MGRAD_LOG_WARNING through the context's
 * log hook.  docs/smoothness.md gives the measurements behind the
 * thresholds and the default h.  Costs 3 trainings, plus 2 trainings and 2
 * reverse passes with a twin.  On success `meta` holds z and its run (and
 * the twin's) is trained and reversed at z.
 * @param[out] out  set on success only.
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_VERSION; MGRAD_ERR_INVALID (h
 *         negative or not finite; a twin of another kind or size or of the
 *         same dtype; z + 2hv out of the metaparameter's range, as
 *         mgrad_meta_metasmoothness); the status of a failing training or
 *         reverse pass.
 */
MGRAD_API mgrad_status mgrad_mgd_trust_check(mgrad_meta *meta, mgrad_meta *twin, double h,
                                             uint64_t seed, mgrad_trust_report *out);

#ifdef __cplusplus
}
#endif

#endif /* METAGRAD_MGD_H */
