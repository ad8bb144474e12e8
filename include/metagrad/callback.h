/*
 * metagrad/callback.h - bring your own model: a run whose model and loss are
 * evaluated by the caller's functions (an external C or C++ trainer) while
 * the library keeps the trajectory, the optimizer, the checkpoint store and
 * the reverse pass.  Every metaparameter kind that does not look inside the
 * loss works unchanged (see "Metaparameters" below).
 *
 * The caller supplies, for a set of rows of a dataset (a "chunk": the batch
 * B_t, a pool of POOL_WEIGHTS, a slice of the validation set), with weights
 * w_i and a scale s (1/B for training chunks, 1/N for the validation set):
 *
 *   loss_grad   L = s Σ_i w_i ℓ_i(θ) and, when asked, grad += ∇_θ L and the
 *               unweighted per-example losses ℓ_i.
 *   hvp         (optional) the forward-over-reverse product along a
 *               direction u: hu += H u with H = ∇²_θ L, the per-example loss
 *               tangents ℓ̇_i = ⟨∇_θ ℓ_i, u⟩ and, when asked, the tangents of
 *               the input gradients s w_i ∂⟨∇_θ ℓ_i, u⟩/∂x_i.
 *   outputs     (optional) the model's outputs, for mgrad_run_evaluate's
 *               accuracy.
 *
 * The output function is φ(θ_T) = loss_grad on the validation set (scale
 * 1/N, its weights), and ∇φ is loss_grad's gradient there.
 *
 * Arguments that can grow: every callback receives the chunk as a
 * `const mgrad_chunk *` (rows, inputs, labels or targets, weights, scale,
 * and where the library is: the phase and the step), and loss_grad and hvp
 * receive what they fill as one struct (mgrad_loss_grad_out,
 * mgrad_hvp_out).  Each of these structs starts with a `version` and only
 * ever gains fields at its end, so a new library can pass more without
 * breaking a compiled callback.  A callback built against a newer header
 * than the library that calls it reads a field added in version v only when
 * the struct's version is at least v.  The structs, like every buffer they
 * point to, are valid only during the call.
 *
 * Buffers: every `void *` holds values of the context's dtype (float for
 * MGRAD_DTYPE_F32 contexts, double for F64), row-major: theta, u, grad, hu
 * [num_params]; inputs [rows, F] with F the product of input_shape;
 * targets [rows, num_outputs]; weights, example_losses, loss_tangents
 * [rows]; input_grad_tangents [rows, F]; outputs [rows, num_outputs].
 * Input buffers are valid only during the call; the callback must not keep
 * them.  Output buffers that are NULL are not wanted: skip that work.
 * Labels (int32, in [0, num_outputs)) are passed when the run's loss is
 * MGRAD_LOSS_CROSS_ENTROPY, targets when it is MGRAD_LOSS_SQUARED_ERROR; the
 * other pointer is NULL.  The callback defines ℓ itself: run options
 * `loss` only choose which of the two the datasets must carry, and
 * `label_smoothing` must be 0 (put smoothing into your loss).
 *
 * Return 0 for success.  Any other value makes the library stop and return
 * MGRAD_ERR_CALLBACK; the context's message names the callback, the value
 * and where it was called (training step t, the reverse of step t, or the
 * output function).  The run stays usable: the next mgrad_run_train starts
 * afresh.  C++ callers: exceptions must NOT propagate out of a callback
 * (the library is C and cannot unwind); catch everything and return nonzero.
 *
 * Determinism: the library's metagradients are exact only if the callbacks
 * are pure functions of their arguments: the checkpoint schedules recompute
 * steps and rely on getting the same bits again.
 *
 * Approximate mode (hvp == NULL): for callers that only have gradients.  The
 * library forms, per chunk, with δ = ε_m^(1/3) max(1, ‖θ‖₂) and ε = δ/‖u‖₂
 * (ε_m the dtype's machine epsilon):
 *     H u  ≈ (∇L(θ + εu) − ∇L(θ − εu)) / 2ε
 *     ℓ̇_i ≈ (ℓ_i(θ + εu) − ℓ_i(θ − εu)) / 2ε
 * at the cost of two loss_grad calls.  Error of each product:
 *     ‖error‖ ≤ (ε²/6) M ‖u‖³  +  ε_m (‖∇L(θ+εu)‖ + ‖∇L(θ−εu)‖) / 2ε  (roughly)
 * where M bounds the third derivative of the gradient (∇⁴L) near θ; with the
 * δ above both terms are of relative order ε_m^(2/3) (about 4e-11 in f64,
 * 2e-5 in f32) for a smooth loss of unit curvature scale.  The reverse pass
 * sums T such products, so whole-run metagradients carry relative errors of
 * roughly T ε_m^(2/3) times the run's sensitivity; docs/callbacks.md gives
 * measured numbers.  Runs in approximate mode report
 * mgrad_run_stats.approximate = 1.  INPUTS metaparameters need the exact
 * hvp (with input_tangents = 1).
 *
 * Metaparameters (metagrad/meta.h) of callback runs: DATA_WEIGHTS,
 * POOL_WEIGHTS, LR_SCHEDULE, WEIGHT_DECAY, MOMENTUM, BETA2 and
 * INITIAL_PARAMS work as for built-in models.  INPUTS needs an hvp with
 * input_tangents = 1 (else MGRAD_ERR_UNSUPPORTED at mgrad_run_add_meta).
 * SOFT_LABELS is MGRAD_ERR_UNSUPPORTED: the library does not see the
 * model's outputs inside the callback's loss.
 *
 * Thread safety: callbacks are called from the thread that called the run's
 * function, one at a time; as the run's context otherwise.
 */
#ifndef METAGRAD_CALLBACK_H
#define METAGRAD_CALLBACK_H

#include "meta.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Where the library is when it calls a callback (mgrad_chunk.phase). */
typedef enum mgrad_callback_phase {
    /** Training step `step`: its gradient (also when a checkpoint schedule
        recomputes the step during the reverse pass). */
    MGRAD_CALLBACK_PHASE_TRAIN = 0,
    /** The reverse of step `step`: the products along u, and the step's
        losses or gradient again where the reverse pass needs them. */
    MGRAD_CALLBACK_PHASE_REVERSE = 1,
    /** The output function ψ or its gradient at one of the states it
        averages (θ_T, or θ_t of the last K), on any of its terms' datasets
        (the validation set by default; mgrad_run_set_output). */
    MGRAD_CALLBACK_PHASE_OUTPUT = 2,
    /** A query at θ_T: mgrad_run_evaluate, mgrad_run_example_losses,
        mgrad_run_hvp and what builds on them. */
    MGRAD_CALLBACK_PHASE_EVAL = 3
} mgrad_callback_phase;

#define MGRAD_CHUNK_VERSION 1

/**
 * One chunk of examples, as every callback receives it (filled by the
 * library; valid only during the call).  Fields are only ever appended;
 * `version` is the version of the library's struct (see above).
 */
typedef struct mgrad_chunk {
    uint32_t version;           /**< MGRAD_CHUNK_VERSION of the calling library */
    int64_t rows;               /**< examples in the chunk (>= 1) */
    const void *inputs;         /**< [rows, F] the examples' inputs */
    const int32_t *labels;      /**< [rows] class labels, or NULL (squared error) */
    const void *targets;        /**< [rows, num_outputs] targets, or NULL
                                     (cross-entropy) */
    const void *weights;        /**< [rows] w_i (may be 0; never NULL) */
    double scale;               /**< s, exactly representable in the dtype */
    mgrad_callback_phase phase; /**< where the library is */
    int64_t step;               /**< the step t of PHASE_TRAIN and PHASE_REVERSE;
                                     -1 otherwise */
} mgrad_chunk;

#define MGRAD_LOSS_GRAD_OUT_VERSION 1

/**
 * What loss_grad fills (the library sets `loss` to 0 and the pointers
 * before the call; a NULL pointer is not wanted).  Fields are only ever
 * appended; `version` is the version of the library's struct.
 */
typedef struct mgrad_loss_grad_out {
    uint32_t version;     /**< MGRAD_LOSS_GRAD_OUT_VERSION of the calling library */
    double loss;          /**< SET to scale Σ_i w_i ℓ_i(theta) */
    void *grad;           /**< NULL, or [num_params] to ADD
                               ∇_θ (scale Σ w_i ℓ_i) to */
    void *example_losses; /**< NULL, or [rows] to SET to the unweighted ℓ_i */
} mgrad_loss_grad_out;

#define MGRAD_HVP_OUT_VERSION 1

/**
 * What hvp fills (a NULL pointer is not wanted).  Fields are only ever
 * appended; `version` is the version of the library's struct.
 */
typedef struct mgrad_hvp_out {
    uint32_t version;          /**< MGRAD_HVP_OUT_VERSION of the calling library */
    void *hu;                  /**< NULL, or [num_params] to ADD H u to, with
                                    H = ∇²_θ (scale Σ w_i ℓ_i) */
    void *loss_tangents;       /**< [rows] to SET to ℓ̇_i = ⟨∇_θ ℓ_i, u⟩
                                    (unweighted, unscaled); never NULL */
    void *input_grad_tangents; /**< NULL, or [rows, F] to SET to
                                    scale w_i ∂⟨∇_θ ℓ_i, u⟩/∂x_i (only
                                    requested when the model sets
                                    input_tangents = 1 and an INPUTS
                                    metaparameter is registered) */
} mgrad_hvp_out;

/**
 * The loss of one chunk at theta [num_params]: fills `out` (see
 * mgrad_loss_grad_out).
 * @return 0 on success; nonzero for failure (MGRAD_ERR_CALLBACK).
 */
typedef int (*mgrad_loss_grad_fn)(const mgrad_chunk *chunk, const void *theta,
                                  mgrad_loss_grad_out *out, void *user_data);

/**
 * The forward-over-reverse product of one chunk at theta along u (both
 * [num_params]): fills `out` (see mgrad_hvp_out).
 * @return 0 on success; nonzero for failure (MGRAD_ERR_CALLBACK).
 */
typedef int (*mgrad_hvp_fn)(const mgrad_chunk *chunk, const void *theta, const void *u,
                            mgrad_hvp_out *out, void *user_data);

/**
 * The model's outputs for the chunk's examples: SET `outputs` [rows,
 * num_outputs] (logits for cross-entropy; the accuracy of
 * mgrad_run_evaluate takes their argmax).  One buffer, never NULL: other
 * kinds of outputs would come as other callbacks of mgrad_callback_model.
 * @return 0 on success; nonzero for failure (MGRAD_ERR_CALLBACK).
 */
typedef int (*mgrad_outputs_fn)(const mgrad_chunk *chunk, const void *theta, void *outputs,
                                void *user_data);

#define MGRAD_CALLBACK_MODEL_VERSION 2

/**
 * A model given by callbacks.  Initialise with MGRAD_CALLBACK_MODEL_INIT or
 * mgrad_callback_model_init(); fields are only ever appended.  The run copies
 * the struct and the input_shape array; user_data is passed to every
 * callback and must stay valid while the run lives.
 */
typedef struct mgrad_callback_model {
    uint32_t version;            /**< MGRAD_CALLBACK_MODEL_VERSION */
    int64_t num_params;          /**< P, the length of θ (>= 1) */
    int32_t ndim;                /**< dimensions of one example's input (>= 1) */
    const int64_t *input_shape;  /**< [ndim] its shape, each >= 1 (copied) */
    int64_t num_outputs;         /**< classes (cross-entropy) or target size */
    mgrad_loss_grad_fn loss_grad; /**< required */
    mgrad_hvp_fn hvp;            /**< NULL: approximate mode (see above) */
    int32_t input_tangents;      /**< 1: hvp fills input_grad_tangents; default 0 */
    mgrad_outputs_fn outputs;    /**< optional; NULL: evaluate's accuracy is NaN */
    void *user_data;             /**< passed to every callback, last */
} mgrad_callback_model;

#define MGRAD_CALLBACK_MODEL_INIT \
    { MGRAD_CALLBACK_MODEL_VERSION, 0, 0, NULL, 0, NULL, NULL, 0, NULL, NULL }

/** Fill `model` with the defaults.  MGRAD_ERR_NULL, MGRAD_ERR_VERSION. */
MGRAD_API mgrad_status mgrad_callback_model_init(mgrad_callback_model *model,
                                                 uint32_t version);

/**
 * Create a run whose model is `model` (copied, input_shape included), with
 * initial parameters `theta0` ([model->num_params] doubles, copied and
 * converted to the context's dtype).  Options, datasets and checkpointing
 * as in mgrad_run_create; `train` and opts->validation must come from `ctx`
 * and have F = Π input_shape values per example (their own shapes may
 * differ) and labels of num_outputs classes (cross-entropy) or targets of
 * num_outputs values (squared error).  Creating the run calls no callback.
 * @param[out] out  the run, owned by the caller (mgrad_run_destroy).
 * @return MGRAD_OK; MGRAD_ERR_NULL (out, ctx, model, model->loss_grad,
 *         model->input_shape, theta0, train or opts NULL);
 *         MGRAD_ERR_VERSION (also for a model of version 1: its callbacks
 *         took positional arguments); MGRAD_ERR_INVALID
 *         (a model field or option out of range, label_smoothing != 0;
 *         the message names the field); MGRAD_ERR_NONFINITE (theta0);
 *         MGRAD_ERR_SHAPE; MGRAD_ERR_ORDER; MGRAD_ERR_BUDGET;
 *         MGRAD_ERR_NOMEM.
 * Thread safety: as `ctx`.
 */
MGRAD_API mgrad_status mgrad_run_create_callback(mgrad_run **out, mgrad_context *ctx,
                                                 const mgrad_callback_model *model,
                                                 const double *theta0,
                                                 mgrad_dataset *train,
                                                 const mgrad_run_options *opts);

#ifdef __cplusplus
}
#endif

#endif /* METAGRAD_CALLBACK_H */
