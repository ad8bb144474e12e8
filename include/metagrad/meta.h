/*
 * metagrad/meta.h - metaparameters: tensors z registered on a run whose
 * gradient dφ/dz the reverse pass fills.
 *
 * A metaparameter handle belongs to its run: it stays valid until the run is
 * destroyed and has no destroy function of its own.
 *
 * Kinds, their sizes and where they enter training (docs/api.md):
 *   DATA_WEIGHTS    [N]        w_i in L_t = (1/B) Σ w_i ℓ_i on the steps of the
 *                              window [step_begin, step_end); outside it the
 *                              training set's own weights apply.  Initial value:
 *                              those weights.  Windows may not overlap.
 *   POOL_WEIGHTS    [N_pool]   adds (1/B) Σ_{i∈pool} z_i ℓ_i(θ) to L_k at step
 *                              k = opts->step (the paper's relaxation for data
 *                              selection; initial value 0).
 *   INPUTS          [R, F]     the inputs of R training rows (opts->rows, or all
 *                              N rows when rows is NULL); F = features.
 *   SOFT_LABELS     [N, C]     target distributions replacing the labels (or
 *                              targets, for squared error).
 *   LR_SCHEDULE     [T]        η_t (>= 0).
 *   WEIGHT_DECAY    [1]        λ.
 *   MOMENTUM        [1]        SGD μ, or Adam β1.
 *   BETA2           [1]        Adam β2.
 *   INITIAL_PARAMS  [P]        θ0.
 * Each kind may be registered once, except DATA_WEIGHTS (disjoint windows),
 * POOL_WEIGHTS (any number, any steps) and INPUTS (disjoint rows).
 *
 * Setting a value, or registering a metaparameter, invalidates the
 * trajectory: train again before reverse (mgrad_run_reverse otherwise fails
 * with MGRAD_ERR_ORDER, naming the call).  A refused set or registration
 * changes nothing.
 * Thread safety: as the run's context.
 */
#ifndef METAGRAD_META_H
#define METAGRAD_META_H

#include "run.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mgrad_meta mgrad_meta;

typedef enum mgrad_meta_kind {
    MGRAD_META_DATA_WEIGHTS = 1,
    MGRAD_META_POOL_WEIGHTS = 2,
    MGRAD_META_INPUTS = 3,
    MGRAD_META_SOFT_LABELS = 4,
    MGRAD_META_LR_SCHEDULE = 5,
    MGRAD_META_WEIGHT_DECAY = 6,
    MGRAD_META_MOMENTUM = 7,
    MGRAD_META_BETA2 = 8,
    MGRAD_META_INITIAL_PARAMS = 9
} mgrad_meta_kind;

#define MGRAD_META_OPTIONS_VERSION 1

/** Options of mgrad_run_add_meta; only the fields of the kind are read. */
typedef struct mgrad_meta_options {
    uint32_t version;       /**< MGRAD_META_OPTIONS_VERSION */
    int64_t step_begin;     /**< DATA_WEIGHTS window start; default 0 */
    int64_t step_end;       /**< DATA_WEIGHTS window end (exclusive); default -1: T */
    int64_t step;           /**< POOL_WEIGHTS: the step k; default -1: must be set */
    const mgrad_dataset *pool; /**< POOL_WEIGHTS: candidate pool; NULL: training set */
    const int64_t *rows;    /**< INPUTS: training rows (copied); NULL: all rows */
    int64_t num_rows;       /**< INPUTS: length of rows */
} mgrad_meta_options;

#define MGRAD_META_OPTIONS_INIT { MGRAD_META_OPTIONS_VERSION, 0, -1, -1, NULL, NULL, 0 }

/** Fill `opts` with the defaults.  MGRAD_ERR_NULL, MGRAD_ERR_VERSION. */
MGRAD_API mgrad_status mgrad_meta_options_init(mgrad_meta_options *opts,
                                               uint32_t version);

/**
 * Register a metaparameter on `run`.  Its value starts at the run's current
 * setting (the LR schedule, θ0, the dataset's inputs, ...).
 * @param[out] out  borrowed handle, valid until the run is destroyed.
 * @param opts      NULL for the defaults.
 * Registering invalidates the run's trajectory, like setting a value: call
 * mgrad_run_train before mgrad_run_reverse.
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_INVALID (unknown kind, window or
 *         step out of range, a row out of range, a kind not applicable to the
 *         run's optimizer or loss, an overlap with a registered one; a
 *         POOL_WEIGHTS pool that gives batch norm one value per channel in a
 *         chunk: one row, or a last chunk of one row);
 *         MGRAD_ERR_VERSION; MGRAD_ERR_NOMEM.
 */
MGRAD_API mgrad_status mgrad_run_add_meta(mgrad_meta **out, mgrad_run *run,
                                          mgrad_meta_kind kind,
                                          const mgrad_meta_options *opts);

/** The kind. */
MGRAD_API mgrad_status mgrad_meta_kind_of(const mgrad_meta *meta, mgrad_meta_kind *out);

/** The run the metaparameter is registered on (borrowed, like the handle). */
MGRAD_API mgrad_status mgrad_meta_run(const mgrad_meta *meta, mgrad_run **out);

/** Number of values. */
MGRAD_API mgrad_status mgrad_meta_size(const mgrad_meta *meta, int64_t *out);

/** Copy the value out, converted to dtype; count must equal the size. */
MGRAD_API mgrad_status mgrad_meta_get_value(const mgrad_meta *meta, mgrad_dtype dtype,
                                            void *out, int64_t count);

/**
 * Set the value (converted from dtype); count must equal the size.  Refuses
 * non-finite values (MGRAD_ERR_NONFINITE) and values outside their range
 * (MGRAD_ERR_INVALID: learning rates η_t >= 0, λ >= 0, 0 <= μ, β < 1; the
 * message names the entry).  There is no opt-in to negative learning rates:
 * metagradient descent on a schedule keeps it >= 0 with a projection
 * (metagrad/mgd.h).  A refused call changes nothing (the value, and the
 * trajectory trained with it, stay valid).
 */
MGRAD_API mgrad_status mgrad_meta_set_value(mgrad_meta *meta, mgrad_dtype dtype,
                                            const void *values, int64_t count);

/**
 * Copy dφ/dz from the last mgrad_run_reverse (MGRAD_ERR_ORDER before one).
 */
MGRAD_API mgrad_status mgrad_meta_get_grad(const mgrad_meta *meta, mgrad_dtype dtype,
                                           void *out, int64_t count);

#ifdef __cplusplus
}
#endif

#endif /* METAGRAD_META_H */
