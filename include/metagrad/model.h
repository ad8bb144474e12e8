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
 * Append a dense layer with `units` outputs; its input is flattened, except
 * on a sequence (below), where it applies to every position: [L, d] ->
 * [L, units] with W [units, d], b [units].  Its
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

/* ---- convolutional models ----------------------------------------------
 * Image features have the per-example shape [channels, height, width]
 * (create the model with a 3-D input shape, e.g. {1, 28, 28}); layouts are
 * torch's (NCHW, row-major).  Every layer below reads the model's current
 * output.  Statuses, unless stated: MGRAD_OK; MGRAD_ERR_NULL (model NULL);
 * MGRAD_ERR_INVALID (an argument out of range); MGRAD_ERR_SHAPE (the current
 * output has the wrong shape for the layer: the message says what to
 * change); MGRAD_ERR_NOMEM.  A failed call leaves the model unchanged.
 */

/**
 * Append a 2-D convolution (torch.nn.Conv2d with groups = 1, dilation 1,
 * bias): input [C, H, W], output [out_channels, OH, OW] with
 * OH = (H + 2 padding − kernel) / stride + 1 (rounded down), OW likewise.
 * Parameters: W [out_channels, C, kernel, kernel] then b [out_channels].
 * `init` as for dense layers with fan_in = C kernel², fan_out =
 * out_channels kernel²; MGRAD_INIT_DEFAULT is torch's default,
 * W, b ~ U(±1/sqrt(fan_in)).
 * @param kernel   side of the square window, >= 1
 * @param stride   >= 1
 * @param padding  zeros added on each side, 0 to kernel − 1
 */
MGRAD_API mgrad_status mgrad_model_add_conv2d(mgrad_model *model, int64_t out_channels,
                                              int32_t kernel, int32_t stride,
                                              int32_t padding, mgrad_init init);

/**
 * Append average pooling over kernel x kernel windows (torch.nn.AvgPool2d,
 * padding 0, floor mode): [C, H, W] -> [C, OH, OW], OH = (H − kernel) /
 * stride + 1.  `stride` 0 means stride = kernel (torch's default).
 */
MGRAD_API mgrad_status mgrad_model_add_avg_pool(mgrad_model *model, int32_t kernel,
                                                int32_t stride);

/**
 * Append max pooling (torch.nn.MaxPool2d, padding 0, floor mode); shapes
 * and `stride` as mgrad_model_add_avg_pool.  On ties the first maximum in
 * row-major window order receives the gradient, as in torch.
 */
MGRAD_API mgrad_status mgrad_model_add_max_pool(mgrad_model *model, int32_t kernel,
                                                int32_t stride);

/**
 * Append global average pooling: [C, H, W] (or [C, L]) -> [C], the mean of
 * each channel (torch's AdaptiveAvgPool2d(1) followed by flatten).
 */
MGRAD_API mgrad_status mgrad_model_add_global_avg_pool(mgrad_model *model);

/**
 * Append batch normalisation in training mode (MGRAD_ERR_SHAPE on a
 * sequence: use layer norm) (torch.nn.BatchNorm2d /
 * BatchNorm1d in train()): every channel (the first dimension of the
 * current output; each feature of a 1-D output) is normalised with the mean
 * and biased variance of its values over all rows of the chunk being
 * evaluated and all spatial positions, then scaled and shifted by learnable
 * γ, β [channels] (initially 1 and 0):  y = γ (x − μ) / sqrt(σ² + eps) + β.
 * Statistics are always those of the chunk: the training batch during
 * training, and chunks of up to max(batch_size, 256) rows of the validation
 * set (or pool) for their loss; there are no running averages.  Use it
 * before or after an activation.  Metagradients (of data weights and
 * inputs too) are exact through the coupling of the rows.
 * @param eps  > 0 (torch: 1e-5).
 */
MGRAD_API mgrad_status mgrad_model_add_batch_norm(mgrad_model *model, double eps);

/**
 * Append layer normalisation over each whole example (torch.nn.LayerNorm
 * with normalized_shape = the current output's shape): mean and biased
 * variance of the example's values, then elementwise γ, β of the output's
 * size (initially 1 and 0).  On a sequence [L, d] (below) it normalises
 * every position over its d values instead, with γ, β [d]
 * (torch.nn.LayerNorm(d)).
 * @param eps  > 0 (torch: 1e-5).
 */
MGRAD_API mgrad_status mgrad_model_add_layer_norm(mgrad_model *model, double eps);

/**
 * Append inverted dropout: during training steps each value is zeroed with
 * probability p and the others scaled by 1/(1 − p); in validation and
 * evaluation passes it is the identity.  The mask of a value is a pure
 * function of (the context's seed, the step, the layer, the row within the
 * batch, the element), so recomputed steps replay it exactly and the
 * metagradient is that of the very run trained.
 * @param p  in [0, 1).
 */
MGRAD_API mgrad_status mgrad_model_add_dropout(mgrad_model *model, double p);

/** Append a flatten: [C, H, W] -> [C H W] (values unchanged). */
MGRAD_API mgrad_status mgrad_model_add_flatten(mgrad_model *model);

/**
 * Append a residual block of ResNet (He et al. 2016, "BasicBlock"):
 *
 *     h = relu(bn(conv3x3(x, channels, stride, padding 1)))
 *     h = bn(conv3x3(h, channels, 1, padding 1))
 *     y = relu(h + shortcut(x))
 *
 * shortcut(x) = x when stride is 1 and x has `channels` channels, else
 * bn(conv1x1(x, channels, stride)) (a projection).  Convolutions use
 * MGRAD_INIT_DEFAULT, batch norms eps = 1e-5.  The current output must be
 * [C, H, W].  A small ResNet is a conv-bn-relu stem, a few blocks,
 * global average pooling, a dense layer and a scale: see
 * examples/small_resnet.c.  Appends 7 layers (9 with a projection); a
 * failed call appends none.
 */
MGRAD_API mgrad_status mgrad_model_add_resnet_block(mgrad_model *model, int64_t channels,
                                                    int32_t stride);

/* ---- sequence models ------------------------------------------------------
 * An example is L + 1 integer token ids (input shape {L + 1}; the values
 * are exact integers in the context's dtype, e.g. from
 * mgrad_dataset_create_tokens).  A token embedding reads the first L of
 * them and starts a *sequence*: an output of shape [L, d] whose positions
 * are treated alike.  On a sequence, mgrad_model_add_dense and
 * mgrad_model_add_layer_norm apply to each position (the last axis), and
 * activations, dropout, scale and residual connections keep it a sequence;
 * flatten ends it.  With the loss MGRAD_LOSS_NEXT_TOKEN (common.h) the
 * model's output [L, V] gives the logits of token p + 1 at position p, so
 * the dataset needs no labels.  Token ids have no derivative: the INPUTS
 * metaparameter is refused with MGRAD_ERR_UNSUPPORTED for such models.
 * Statuses, unless stated: MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_INVALID (an
 * argument out of range); MGRAD_ERR_SHAPE (the current output is not what
 * the layer needs: the message says what to change); MGRAD_ERR_NOMEM.  A
 * failed call leaves the model unchanged.
 */

/**
 * Append a token embedding (torch.nn.Embedding(vocab, width)) as the
 * model's first layer: y[p] = E[x[p]] for p < context, E [vocab, width]
 * drawn from N(0, 1) (torch's default; counter = element index, stream of
 * the layer as in docs/api.md "Initialisers").  Output: a sequence
 * [context, width].  The model's input must be 1-D with at least `context`
 * values; an id outside [0, vocab) makes its position's output NaN (runs
 * with the next-token loss refuse such data when they are created).
 * MGRAD_ERR_ORDER when the model already has layers.
 */
MGRAD_API mgrad_status mgrad_model_add_token_embedding(mgrad_model *model, int64_t vocab,
                                                       int64_t width, int64_t context);

/**
 * Append a learned positional embedding: y = x + P on the current sequence
 * [L, d], P [L, d] drawn from N(0, 1) like the token embedding's table.
 */
MGRAD_API mgrad_status mgrad_model_add_positional_embedding(mgrad_model *model);

/**
 * Append causal multi-head self-attention on the current sequence [L, d]
 * (3 layers): [Q | K | V] = a dense layer to 3d on every position; for each
 * of `heads` heads of width e = d / heads, P = softmax(Q Kᵀ / √e) over the
 * positions j <= i (the causal mask), attention dropout P' = P ⊙ mask /
 * (1 − dropout) during training steps (masks keyed like
 * mgrad_model_add_dropout's, so recomputed steps replay them), y = P' V;
 * the heads side by side, then the output projection, a dense layer to d.
 * As torch's nn.MultiheadAttention(d, heads, dropout, batch_first=True)
 * with a causal mask: the first dense layer's W holds in_proj_weight (rows
 * Q, K, V), the second out_proj.  Dense layers use MGRAD_INIT_DEFAULT.
 * @param heads    divides d
 * @param dropout  in [0, 1)
 */
MGRAD_API mgrad_status mgrad_model_add_causal_self_attention(mgrad_model *model,
                                                             int32_t heads, double dropout);

/**
 * Append a pre-norm transformer block on the current sequence [L, d]
 * (10 layers):
 *
 *     h = x + attn(LN(x))              (mgrad_model_add_causal_self_attention)
 *     y = h + W2 gelu(W1 LN(h) + b1) + b2,   W1 [mlp_ratio d, d]
 *
 * Layer norms with eps = 1e-5, exact GELU, dense layers MGRAD_INIT_DEFAULT.
 * @param mlp_ratio  >= 1 (GPT: 4)
 */
MGRAD_API mgrad_status mgrad_model_add_transformer_block(mgrad_model *model, int32_t heads,
                                                         int32_t mlp_ratio, double dropout);

/**
 * Create a small GPT for the next-token loss: input {context + 1} token ids;
 * token embedding (vocab, width), positional embedding, `layers` transformer
 * blocks (heads, mlp_ratio 4, no dropout), a final layer norm and a dense
 * layer to vocab on every position: output [context, vocab].  Parameters in
 * that order (docs/api.md, "Sequence models").
 * @param[out] out  the model, owned by the caller (mgrad_model_destroy).
 * @param layers    >= 0; heads divides width.
 */
MGRAD_API mgrad_status mgrad_model_create_gpt(mgrad_model **out, mgrad_context *ctx,
                                              int64_t vocab, int64_t context, int64_t width,
                                              int32_t layers, int32_t heads);

#ifdef __cplusplus
}
#endif

#endif /* METAGRAD_MODEL_H */
