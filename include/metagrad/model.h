/*
 * metagrad/model.h - building a model: a sequence of layers with optional
 * residual connections, and its initial parameters θ0.
 *
 * Parameters are ordered layer by layer, W before b; a dense layer holds
 * W [out, in] (row-major) and b [out], and computes y = x Wᵀ + b.
 * The model keeps θ0 in double precision; runs convert it to their dtype.
 *
 * Thread safety: as the model's context.
 */
#ifndef METAGRAD_MODEL_H
#define METAGRAD_MODEL_H

#include "context.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mgrad_model mgrad_model;

/**
 * Weight initialisers of a dense layer (fan_in = inputs, fan_out = units).
 * Biases start at 0 except with MGRAD_INIT_DEFAULT.  Draws are a pure
 * function of (seed, layer index, element index): see docs/api.md.
 */
typedef enum mgrad_init {
    /** torch.nn.Linear's default: W and b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) */
    MGRAD_INIT_DEFAULT = 0,
    /** W ~ U(-a, a), a = sqrt(6 / fan_in) (He, for ReLU) */
    MGRAD_INIT_KAIMING_UNIFORM = 1,
    /** W ~ N(0, 2 / fan_in) */
    MGRAD_INIT_KAIMING_NORMAL = 2,
    /** W ~ U(-a, a), a = sqrt(6 / (fan_in + fan_out)) (Glorot) */
    MGRAD_INIT_XAVIER_UNIFORM = 3,
    /** W ~ N(0, 2 / (fan_in + fan_out)) */
    MGRAD_INIT_XAVIER_NORMAL = 4,
    /** W with orthonormal rows or columns (QR of a Gaussian matrix, LAPACKE) */
    MGRAD_INIT_ORTHOGONAL = 5,
    /** W = 0 */
    MGRAD_INIT_ZEROS = 6
} mgrad_init;

typedef enum mgrad_activation {
    MGRAD_ACTIVATION_TANH = 1,
    MGRAD_ACTIVATION_SIGMOID = 2,
    MGRAD_ACTIVATION_RELU = 3,
    MGRAD_ACTIVATION_GELU = 4,      /**< exact form x Φ(x) with erf */
    MGRAD_ACTIVATION_SOFTPLUS = 5   /**< log(1 + e^x) */
} mgrad_activation;

/**
 * Create an empty model whose examples have shape `input_shape` (`ndim`
 * dimensions, 1 to 3, e.g. {784} or {1, 28, 28}).
 * @param[out] out  the model, owned by the caller (mgrad_model_destroy).
 * @return MGRAD_OK; MGRAD_ERR_NULL, MGRAD_ERR_INVALID (ndim or a dimension
 *         out of range), MGRAD_ERR_NOMEM.
 */
MGRAD_API mgrad_status mgrad_model_create(mgrad_model **out, mgrad_context *ctx,
                                          int32_t ndim, const int64_t *input_shape);

/** Destroy a model (runs made from it keep what they need).  Accepts NULL. */
MGRAD_API void mgrad_model_destroy(mgrad_model *model);

/**
 * Append a dense layer with `units` outputs; its input is flattened.  Its
 * parameters are drawn now with `init` from the context's seed; those of
 * earlier layers are kept.  Runs copy the model, so it may grow at any time.
 * @return MGRAD_OK; MGRAD_ERR_NULL, MGRAD_ERR_INVALID (units < 1, unknown
 *         init, too many parameters), MGRAD_ERR_NOMEM.
 */
MGRAD_API mgrad_status mgrad_model_add_dense(mgrad_model *model, int64_t units,
                                             mgrad_init init);

/** Append an elementwise activation. Statuses as mgrad_model_add_dense. */
MGRAD_API mgrad_status mgrad_model_add_activation(mgrad_model *model,
                                                  mgrad_activation activation);

/**
 * Append y = factor * x (e.g. 0.1 to scale the output down, which makes
 * training smoother).  MGRAD_ERR_INVALID if factor is not finite.
 */
MGRAD_API mgrad_status mgrad_model_add_scale(mgrad_model *model, double factor);

/**
 * The id of the model's current output (0 is the input), to be used later
 * by mgrad_model_add_residual.
 * @param[out] out  the node id.
 */
MGRAD_API mgrad_status mgrad_model_mark(const mgrad_model *model, int32_t *out);

/**
 * Append y = x + (output of node `from`), a residual connection.
 * @return MGRAD_OK; MGRAD_ERR_INVALID (unknown node id); MGRAD_ERR_SHAPE
 *         (sizes differ: the message gives both).
 */
MGRAD_API mgrad_status mgrad_model_add_residual(mgrad_model *model, int32_t from);

/** Number of parameters. */
MGRAD_API mgrad_status mgrad_model_num_params(const mgrad_model *model, int64_t *out);

/** Number of outputs per example (classes, or regression targets). */
MGRAD_API mgrad_status mgrad_model_output_size(const mgrad_model *model, int64_t *out);

/**
 * Copy θ0 out, converted to `dtype`.  `count` must equal the number of
 * parameters (MGRAD_ERR_SIZE otherwise).
 */
MGRAD_API mgrad_status mgrad_model_get_params(const mgrad_model *model,
                                              mgrad_dtype dtype, void *out,
                                              int64_t count);

/**
 * Set θ0 from `values` (converted from `dtype`).  `count` must equal the
 * number of parameters; non-finite values are refused (MGRAD_ERR_NONFINITE).
 * Runs already created keep the θ0 they copied.
 */
MGRAD_API mgrad_status mgrad_model_set_params(mgrad_model *model, mgrad_dtype dtype,
                                              const void *values, int64_t count);

/** Redraw every layer's parameters with its initialiser and `seed`. */
MGRAD_API mgrad_status mgrad_model_init_params(mgrad_model *model, uint64_t seed);

#ifdef __cplusplus
}
#endif

#endif /* METAGRAD_MODEL_H */
