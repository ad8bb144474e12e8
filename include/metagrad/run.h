/*
 * metagrad/run.h - a training run: model + training data + loss + optimizer
 * + batch schedule + T steps + output function φ (by default the mean loss
 * over a validation set at θ_T; any combination of built-in terms or the
 * caller's function through mgrad_run_set_output), and the reverse pass that
 * gives dφ/dz for every registered metaparameter (metagrad/meta.h).
 *
 * The training program and the optimizers' update rules are those of
 * torch.optim; docs/api.md states them exactly.
 *
 * Typical use:
 *     mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
 *     o.steps = 100; o.batch_size = 32; o.lr = 0.1; o.validation = val;
 *     mgrad_run_create(&run, model, train, &o);
 *     mgrad_run_add_meta(&lr, run, MGRAD_META_LR_SCHEDULE, NULL);
 *     mgrad_run_train(run, &phi);
 *     mgrad_run_reverse(run);
 *     mgrad_meta_get_grad(lr, MGRAD_DTYPE_F64, grad, 100);
 *
 * Thread safety: as the run's context.
 */
#ifndef METAGRAD_RUN_H
#define METAGRAD_RUN_H

#include "dataset.h"
#include "model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mgrad_run mgrad_run;

#define MGRAD_RUN_OPTIONS_VERSION 1

/**
 * Run options.  Initialise with MGRAD_RUN_OPTIONS_INIT or
 * mgrad_run_options_init(); fields are only ever appended.  Arrays are
 * copied by mgrad_run_create.
 */
typedef struct mgrad_run_options {
    uint32_t version;          /**< MGRAD_RUN_OPTIONS_VERSION */
    int64_t steps;             /**< T, training steps (>= 1). Default 0: must be set */
    int64_t batch_size;        /**< B (>= 1). Default 0: must be set */
    /** Explicit batches: steps * batch_size indices into the training set,
        step-major.  NULL (default): seeded epoch shuffles. */
    const int64_t *batches;
    uint64_t shuffle_seed;     /**< seed of the epoch permutations; default 0 */
    mgrad_loss loss;           /**< default MGRAD_LOSS_CROSS_ENTROPY */
    double label_smoothing;    /**< α in [0, 1); cross-entropy only; default 0 */
    mgrad_optimizer optimizer; /**< default MGRAD_OPTIMIZER_SGD */
    double lr;                 /**< η >= 0 for every step; default 0.1 */
    /** Per-step η [steps], each finite and >= 0; NULL (default): lr (which
        is then not read).  Negative rates are refused (MGRAD_ERR_INVALID),
        as torch.optim refuses them. */
    const double *lr_schedule;
    double momentum;           /**< SGD μ, default 0 */
    int32_t nesterov;          /**< SGD: 1 for Nesterov momentum; default 0 */
    double weight_decay;       /**< λ, default 0 */
    double beta1;              /**< Adam β1, default 0.9 */
    double beta2;              /**< Adam β2, default 0.999 */
    double eps;                /**< Adam ε outside the root, default 1e-8 */
    double eps_root;           /**< Adam ε_root inside the root, default 0 */
    /** Validation set of the default output function φ = (1/N) Σ v_i
        ℓ_i(θ_T), with v the set's weights (default 1).  NULL: a plain run,
        which trains and evaluates but has no output function until
        mgrad_run_set_output gives it one. */
    const mgrad_dataset *validation;
    mgrad_checkpoint checkpoint; /**< default MGRAD_CHECKPOINT_STORE_ALL */
    int64_t checkpoint_slots;    /**< slots for BINOMIAL/REPLAY; 0: from the budget */
    int64_t checkpoint_k;        /**< REPLAY's branching factor k (>= 2); default 0: 4 */
    uint64_t checkpoint_budget_bytes; /**< byte budget for stored states; 0: unlimited */
    const char *spill_dir;       /**< directory for snapshots that do not fit in RAM;
                                      NULL (default): never spill */
} mgrad_run_options;

#define MGRAD_RUN_OPTIONS_INIT                                                    \
    { MGRAD_RUN_OPTIONS_VERSION, 0, 0, NULL, 0, MGRAD_LOSS_CROSS_ENTROPY, 0.0,     \
      MGRAD_OPTIMIZER_SGD, 0.1, NULL, 0.0, 0, 0.0, 0.9, 0.999, 1e-8, 0.0, NULL,   \
      MGRAD_CHECKPOINT_STORE_ALL, 0, 0, 0, NULL }

/** Fill `opts` with the defaults.  MGRAD_ERR_NULL, MGRAD_ERR_VERSION. */
MGRAD_API mgrad_status mgrad_run_options_init(mgrad_run_options *opts,
                                              uint32_t version);

/**
 * Create a run.  It copies the model's layers and θ0, and keeps references
 * to `train` and opts->validation (the caller may destroy all its handles
 * afterwards); those datasets become read-only while the run lives.
 * @param[out] out  the run, owned by the caller (mgrad_run_destroy).
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_VERSION; MGRAD_ERR_INVALID (a
 *         value out of range, e.g. a negative learning rate; the message
 *         names the field; batch norm in the model with one value per channel
 *         in a chunk: batch_size = 1 after a dense layer, or a validation set
 *         whose last chunk of max(batch_size, 256) rows has one row);
 *         MGRAD_ERR_SHAPE
 *         (model input/output sizes do not fit the data); MGRAD_ERR_ORDER
 *         (empty model, labels or targets missing);
 *         MGRAD_ERR_BUDGET; MGRAD_ERR_NOMEM.
 */
MGRAD_API mgrad_status mgrad_run_create(mgrad_run **out, const mgrad_model *model,
                                        mgrad_dataset *train,
                                        const mgrad_run_options *opts);

/** Destroy a run and its metaparameters.  Accepts NULL. */
MGRAD_API void mgrad_run_destroy(mgrad_run *run);

/**
 * Run the T training steps from θ0 with the current metaparameter values and
 * evaluate φ (the output function: the validation loss at θ_T, or the one
 * set by mgrad_run_set_output).  Keeps what the reverse pass needs: on a run
 * with metaparameters that includes ∇φ(θ_T), so the output function's
 * backward runs here and mgrad_run_reverse does not evaluate it again.
 * @param[out] out  φ; NaN on a plain run (no validation set, no output set);
 *                  may be NULL.
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_NONFINITE (the message names
 *         the step; the run stays usable); MGRAD_ERR_NOMEM; MGRAD_ERR_IO.
 */
MGRAD_API mgrad_status mgrad_run_train(mgrad_run *run, double *out);

/**
 * Reverse pass: fill the gradient dφ/dz of every registered metaparameter.
 * Needs a completed mgrad_run_train since the last change of a
 * metaparameter value or registration of a metaparameter (MGRAD_ERR_ORDER
 * otherwise, with a message naming the call that invalidated the
 * trajectory, or naming mgrad_run_set_output on a plain run without an
 * output function); may be repeated.  A failure (MGRAD_ERR_NONFINITE: the message
 * names the step and a remedy that fits the run's optimizer) leaves the run
 * needing mgrad_run_train again.
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_ORDER; MGRAD_ERR_NONFINITE;
 *         MGRAD_ERR_NOMEM; MGRAD_ERR_IO.
 */
MGRAD_API mgrad_status mgrad_run_reverse(mgrad_run *run);

/** Number of parameters (the length of θ). */
MGRAD_API mgrad_status mgrad_run_num_params(const mgrad_run *run, int64_t *out);

/**
 * Copy θ_T (after mgrad_run_train, else MGRAD_ERR_ORDER) converted to dtype;
 * `count` must equal the number of parameters.
 */
MGRAD_API mgrad_status mgrad_run_get_params(const mgrad_run *run, mgrad_dtype dtype,
                                            void *out, int64_t count);

/**
 * Mean loss (weighted by the set's weights) and accuracy (cross-entropy
 * only; NaN otherwise) of θ_T on `dataset`.  Either output may be NULL.
 */
MGRAD_API mgrad_status mgrad_run_evaluate(mgrad_run *run, const mgrad_dataset *dataset,
                                          double *loss, double *accuracy);

/**
 * Change the seed of the epoch shuffles (runs created without explicit
 * batches), e.g. to average over batch orders across meta-steps.  Like a
 * metaparameter change, it invalidates the trajectory: train again.
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_INVALID (the run has explicit
 *         batches).
 */
MGRAD_API mgrad_status mgrad_run_set_shuffle_seed(mgrad_run *run, uint64_t seed);

/**
 * The context the run was created in (borrowed: valid while the run lives),
 * e.g. to allocate through it or read its last error.
 * @return MGRAD_OK; MGRAD_ERR_NULL.
 */
MGRAD_API mgrad_status mgrad_run_context(const mgrad_run *run, mgrad_context **out);

/**
 * 1 when the run trains on explicit batches (options.batches), 0 when it
 * draws seeded epoch shuffles (then mgrad_run_set_shuffle_seed applies).
 * @return MGRAD_OK; MGRAD_ERR_NULL.
 */
MGRAD_API mgrad_status mgrad_run_has_batches(const mgrad_run *run, int32_t *out);

/**
 * Check, without training, that mgrad_run_evaluate can evaluate `dataset`
 * on this run: same context, the model's input size, labels (cross-entropy;
 * as many classes as outputs) or targets (squared error; as many as
 * outputs), and no chunk that gives batch norm one value per channel.
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_INVALID (another context, or
 *         the batch-norm chunk); MGRAD_ERR_SHAPE; MGRAD_ERR_ORDER (labels or
 *         targets missing).  The message names the problem.
 */
MGRAD_API mgrad_status mgrad_run_check_dataset(const mgrad_run *run,
                                               const mgrad_dataset *dataset);

/**
 * Per-example losses ℓ_i(θ_T) of `dataset` (unweighted; with label smoothing
 * for cross-entropy as in training), converted to dtype; `count` must equal
 * the dataset's size.  Useful for loss-based data selection baselines.
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_DTYPE; MGRAD_ERR_SIZE;
 *         MGRAD_ERR_ORDER (before mgrad_run_train); MGRAD_ERR_SHAPE (the
 *         dataset does not fit the model); MGRAD_ERR_NOMEM.
 */
MGRAD_API mgrad_status mgrad_run_example_losses(mgrad_run *run, const mgrad_dataset *dataset,
                                                mgrad_dtype dtype, void *out, int64_t count);

/* ---- output functions ------------------------------------------------------
 * φ = (1/K) Σ_{t=T−K+1}^{T} ψ(θ_t), K = last_k (default 1: φ = ψ(θ_T)),
 * ψ(θ) = Σ_k c_k φ_k(θ) + f(θ): a weighted sum of built-in terms and the
 * caller's function f.  The formulas are in docs/api.md ("Output
 * functions").  Set with mgrad_run_set_output; without it, a run with a
 * validation set has ψ = the validation set's weighted mean loss. */

/** The kind of a built-in output term. */
typedef enum mgrad_output_kind {
    /** φ_k = (1/|R|) Σ_{i∈R} v_i ℓ_i(θ): the weighted mean of the run's loss
        (with its label smoothing) over the selected rows R. */
    MGRAD_OUTPUT_LOSS = 0,
    /** φ_k = (1/|R|) Σ_{i∈R} v_i (o_{i,y_i} − max_{j≠y_i} o_{i,j}): the
        weighted mean margin of the model's outputs o (the logits for
        cross-entropy).  Needs labels, a built-in model (not callbacks) and
        outputs that are not a sequence; differentiable where the largest
        other output is unique. */
    MGRAD_OUTPUT_MARGIN = 1
} mgrad_output_kind;

/**
 * One term c_k φ_k of the output function.  Its layout belongs to
 * MGRAD_OUTPUT_VERSION: a later version may append fields, and the library
 * reads the terms of a version-1 mgrad_output with the version-1 layout.
 */
typedef struct mgrad_output_term {
    mgrad_output_kind kind;
    const mgrad_dataset *dataset; /**< of the run's context, fitting the model */
    double weight;        /**< c_k, finite, any sign: −1 maximises the term */
    /** Rows of the dataset [num_rows], each once; NULL (num_rows 0): all. */
    const int64_t *rows;
    int64_t num_rows;
    /** Keep only the selected rows whose label is one of classes
        [num_classes] (needs labels); NULL (num_classes 0): every class. */
    const int32_t *classes;
    int64_t num_classes;
} mgrad_output_term;

/**
 * The caller's part f of ψ.  `theta` holds the `count` parameters θ in the
 * context's dtype.  Write f(θ) to *value and, unless `grad` is NULL (only
 * the value is needed), ∇f(θ) to grad [count] in the context's dtype.  On a
 * data-parallel run every rank calls it with the same θ and must return the
 * same numbers.
 * @return 0 on success; nonzero for failure (MGRAD_ERR_CALLBACK).
 */
typedef int (*mgrad_output_fn)(const void *theta, int64_t count, double *value, void *grad,
                               void *user_data);

#define MGRAD_OUTPUT_VERSION 1

/**
 * An output function.  Initialise with MGRAD_OUTPUT_INIT or
 * mgrad_output_init(); fields are only ever appended.  The terms and their
 * arrays are copied by mgrad_run_set_output; user_data is borrowed.
 */
typedef struct mgrad_output {
    uint32_t version;                 /**< MGRAD_OUTPUT_VERSION */
    const mgrad_output_term *terms;   /**< [num_terms]; may be NULL with 0 */
    int64_t num_terms;
    mgrad_output_fn fn;               /**< f; NULL: none */
    void *user_data;                  /**< passed to fn */
    /** K: average ψ over θ_{T−K+1} … θ_T (1 <= K <= T); 0 (default): 1. */
    int64_t last_k;
} mgrad_output;

#define MGRAD_OUTPUT_INIT { MGRAD_OUTPUT_VERSION, NULL, 0, NULL, NULL, 0 }

/** Fill `output` with the defaults.  MGRAD_ERR_NULL, MGRAD_ERR_VERSION. */
MGRAD_API mgrad_status mgrad_output_init(mgrad_output *output, uint32_t version);

/**
 * Set the run's output function φ (replacing the default validation loss or
 * an earlier output); NULL restores the default (none on a plain run).  Like
 * a metaparameter change, it invalidates the trajectory: train again.
 * Each term's dataset becomes read-only while the run holds it.
 * @return MGRAD_OK; MGRAD_ERR_NULL (a term without a dataset, rows or
 *         classes NULL with a positive count); MGRAD_ERR_VERSION;
 *         MGRAD_ERR_INVALID (no term and no fn, a weight not finite, a row
 *         out of range or repeated, a class out of range, no row selected,
 *         last_k out of [0, T], a dataset of another context, an unknown
 *         kind); MGRAD_ERR_SHAPE; MGRAD_ERR_ORDER (labels or targets the
 *         term needs are missing); MGRAD_ERR_UNSUPPORTED (a margin on a
 *         callback model or a sequence output); MGRAD_ERR_NOMEM.  The message
 *         names the term and field; on failure the run keeps its output.
 */
MGRAD_API mgrad_status mgrad_run_set_output(mgrad_run *run, const mgrad_output *output);

#define MGRAD_RUN_STATS_VERSION 3

/**
 * What a run did.  Set `version` before the call; fields only appended.
 * Version 1 callers (without `approximate`) are still served: only the
 * fields of version 1 are written.
 */
typedef struct mgrad_run_stats {
    uint32_t version;          /**< MGRAD_RUN_STATS_VERSION */
    int64_t steps_run;         /**< forward steps of the last train + reverse */
    int64_t steps_recomputed;  /**< forward steps rerun by the checkpoint schedule */
    int64_t reverse_steps;     /**< steps reversed */
    uint64_t peak_state_bytes; /**< peak bytes of stored optimizer states */
    double seconds_forward;    /**< wall-clock of the last mgrad_run_train */
    double seconds_reverse;    /**< wall-clock of the last mgrad_run_reverse */
    mgrad_checkpoint checkpoint; /**< the schedule used (AUTO resolved) */
    int64_t checkpoint_slots;  /**< state slots the schedule used */
    int64_t spilled_bytes;     /**< bytes written to the spill directory */
    /** Version 2: 1 when second-order products are approximated by finite
        differences of gradients (a callback model without hvp,
        metagrad/callback.h); 0 for exact metagradients. */
    int32_t approximate;
    /** Version 3: bytes of the forward memo each checkpoint slot carries
        (0: none; docs/checkpointing.md, "Forward memo"), counted in
        peak_state_bytes and in the budget. */
    int64_t memo_bytes;
    /** Version 3: forward passes of the batch, in the last train + reverse,
        that copied their GEMM outputs from a memo instead of recomputing
        them. */
    int64_t memo_hits;
} mgrad_run_stats;

#define MGRAD_RUN_STATS_INIT { MGRAD_RUN_STATS_VERSION, 0, 0, 0, 0, 0.0, 0.0, \
                               MGRAD_CHECKPOINT_STORE_ALL, 0, 0, 0, 0, 0 }

/** Copy the statistics (version 1, 2 or 3).  MGRAD_ERR_NULL, MGRAD_ERR_VERSION. */
MGRAD_API mgrad_status mgrad_run_get_stats(const mgrad_run *run, mgrad_run_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* METAGRAD_RUN_H */
