/*
 * model.c - the public model API (metagrad/model.h): a graph under
 * construction plus θ0 in double precision.
 *
 * A run copies the graph and θ0 when it is created (mgr_graph_copy), so a
 * model is never frozen: it may keep growing, or be destroyed, while runs
 * made from it live on.  Every call validates its arguments first and
 * commits its changes last, so a failed call leaves the model and the
 * caller's outputs exactly as they were.
 */
#include <math.h>
#include <string.h>

#include "base/base.h"
#include "graph/graph.h"
#include "metagrad/model.h"

mgrad_status mgrad_model_create(mgrad_model **out, mgrad_context *ctx, int32_t ndim,
                                const int64_t *input_shape)
{
    if (ctx == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(ctx, out == NULL, MGRAD_ERR_NULL,
                    "mgrad_model_create: out must not be NULL");
    MGRAD_RETURN_IF(ctx, input_shape == NULL, MGRAD_ERR_NULL,
                    "mgrad_model_create: input_shape must not be NULL");

    mgrad_model *model = mgr_calloc(ctx, 1, sizeof *model);
    MGRAD_RETURN_IF(ctx, model == NULL, MGRAD_ERR_NOMEM,
                    "mgrad_model_create: out of memory");
    mgrad_status status = mgr_graph_create(ctx, ndim, input_shape, &model->graph);
    if (status != MGRAD_OK) {
        mgr_free(ctx, model);
        return status;
    }
    model->ctx = ctx;
    model->theta = NULL;
    mgr_context_retain(ctx);
    *out = model;
    return MGRAD_OK;
}

void mgrad_model_destroy(mgrad_model *model)
{
    if (model == NULL) return;
    mgrad_context *ctx = model->ctx;
    mgr_graph_free(ctx, &model->graph);
    mgr_free(ctx, model->theta);
    mgr_free(ctx, model);
    /* Last: releasing may free the context whose allocator freed the above. */
    mgr_context_release(ctx);
}

/* Undo the last append (the node is dropped, capacity kept). */
static void graph_pop(mgr_graph *g)
{
    g->num_nodes--;
    g->num_params -= g->nodes[g->num_nodes].param_count;
}

/*
 * Append `node`; for a dense node also grow θ0 and draw the new layer's
 * parameters from the context's seed.  Earlier parameters are kept as they
 * are (they may have been set by the caller).
 */
static mgrad_status model_append(mgrad_model *model, mgr_node node)
{
    mgrad_context *ctx = model->ctx;
    mgr_graph *g = &model->graph;
    int64_t old_params = g->num_params;
    MGRAD_FORWARD(mgr_graph_append(ctx, g, node));
    if (g->num_params == old_params) return MGRAD_OK;

    int64_t new_params = g->num_params;
    double *theta = mgr_alloc(ctx, (size_t)new_params * sizeof *theta);
    if (theta == NULL) {
        graph_pop(g);
        return mgr_error(ctx, MGRAD_ERR_NOMEM,
                         "out of memory growing the model to %lld parameters",
                         (long long)new_params);
    }
    if (old_params > 0) memcpy(theta, model->theta, (size_t)old_params * sizeof *theta);
    mgrad_status status = mgr_graph_init_node(ctx, g, g->num_nodes - 1, ctx->seed, theta);
    if (status != MGRAD_OK) {
        mgr_free(ctx, theta);
        graph_pop(g);
        return status;
    }
    mgr_free(ctx, model->theta);
    model->theta = theta;
    return MGRAD_OK;
}

static mgr_node node_after_output(const mgrad_model *model, mgr_op_kind kind)
{
    mgr_node node;
    memset(&node, 0, sizeof node);
    node.kind = kind;
    node.in0 = model->graph.num_nodes - 1;
    node.in1 = -1;
    node.scale = 1.0;
    node.init = MGRAD_INIT_DEFAULT;
    return node;
}

mgrad_status mgrad_model_add_dense(mgrad_model *model, int64_t units, mgrad_init init)
{
    if (model == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(model->ctx, units < 1, MGRAD_ERR_INVALID,
                    "mgrad_model_add_dense: units must be at least 1 (got %lld)",
                    (long long)units);
    MGRAD_RETURN_IF(model->ctx, (int)init < MGRAD_INIT_DEFAULT || (int)init > MGRAD_INIT_ZEROS,
                    MGRAD_ERR_INVALID,
                    "mgrad_model_add_dense: unknown initialiser %d (use an MGRAD_INIT_* "
                    "value)", (int)init);
    /* On a sequence, the dense layer applies to every position. */
    int seq = mgr_graph_output(&model->graph)->positions > 0;
    mgr_node node = node_after_output(model, seq ? MGR_OP_SEQ_DENSE : MGR_OP_DENSE);
    node.ndim = 1;
    node.shape[0] = units;
    node.init = init;
    return model_append(model, node);
}

mgrad_status mgrad_model_add_activation(mgrad_model *model, mgrad_activation activation)
{
    if (model == NULL) return MGRAD_ERR_NULL;
    /* The op whose definition offers this activation (op.h). */
    mgr_op_kind kind = MGR_OP_INPUT;
    for (int k = MGR_OP_INPUT + 1; k < MGR_OP_COUNT && kind == MGR_OP_INPUT; k++)
        if (activation != 0 && mgr_op_def_of((mgr_op_kind)k)->activation == (int32_t)activation)
            kind = (mgr_op_kind)k;
    MGRAD_RETURN_IF(model->ctx, kind == MGR_OP_INPUT, MGRAD_ERR_INVALID,
                    "mgrad_model_add_activation: unknown activation %d (use an "
                    "MGRAD_ACTIVATION_* value)", (int)activation);
    return model_append(model, node_after_output(model, kind));
}

mgrad_status mgrad_model_add_scale(mgrad_model *model, double factor)
{
    if (model == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(model->ctx, !isfinite(factor), MGRAD_ERR_INVALID,
                    "mgrad_model_add_scale: factor must be finite (got %g)", factor);
    mgr_node node = node_after_output(model, MGR_OP_SCALE);
    node.scale = factor;
    return model_append(model, node);
}

mgrad_status mgrad_model_mark(const mgrad_model *model, int32_t *out)
{
    if (model == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(model->ctx, out == NULL, MGRAD_ERR_NULL,
                    "mgrad_model_mark: out must not be NULL");
    *out = model->graph.num_nodes - 1;
    return MGRAD_OK;
}

mgrad_status mgrad_model_add_residual(mgrad_model *model, int32_t from)
{
    if (model == NULL) return MGRAD_ERR_NULL;
    /* Messages for a bad `from` and for a size mismatch come from
       mgr_graph_append, which checks the same thing for every caller. */
    mgr_node node = node_after_output(model, MGR_OP_ADD);
    node.in1 = from;
    return model_append(model, node);
}

mgrad_status mgrad_model_num_params(const mgrad_model *model, int64_t *out)
{
    if (model == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(model->ctx, out == NULL, MGRAD_ERR_NULL,
                    "mgrad_model_num_params: out must not be NULL");
    *out = model->graph.num_params;
    return MGRAD_OK;
}

mgrad_status mgrad_model_output_size(const mgrad_model *model, int64_t *out)
{
    if (model == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(model->ctx, out == NULL, MGRAD_ERR_NULL,
                    "mgrad_model_output_size: out must not be NULL");
    *out = mgr_graph_output(&model->graph)->size;
    return MGRAD_OK;
}

/* Shared checks of get/set_params: dtype known, count matching. */
static mgrad_status check_param_buffer(const mgrad_model *model, const char *fn,
                                       mgrad_dtype dtype, const void *buf, int64_t count)
{
    MGRAD_RETURN_IF(model->ctx, buf == NULL, MGRAD_ERR_NULL,
                    "%s: the buffer must not be NULL", fn);
    MGRAD_RETURN_IF(model->ctx, mgr_dtype_size(dtype) == 0, MGRAD_ERR_DTYPE,
                    "%s: unknown dtype %d (use MGRAD_DTYPE_F32 or MGRAD_DTYPE_F64)", fn,
                    (int)dtype);
    MGRAD_RETURN_IF(model->ctx, count != model->graph.num_params, MGRAD_ERR_SIZE,
                    "%s: count is %lld but the model has %lld parameters", fn,
                    (long long)count, (long long)model->graph.num_params);
    return MGRAD_OK;
}

mgrad_status mgrad_model_get_params(const mgrad_model *model, mgrad_dtype dtype,
                                    void *out, int64_t count)
{
    if (model == NULL) return MGRAD_ERR_NULL;
    MGRAD_FORWARD(check_param_buffer(model, "mgrad_model_get_params", dtype, out, count));
    if (count > 0)
        mgr_convert(out, dtype, model->theta, MGRAD_DTYPE_F64, (size_t)count, 0);
    return MGRAD_OK;
}

mgrad_status mgrad_model_set_params(mgrad_model *model, mgrad_dtype dtype,
                                    const void *values, int64_t count)
{
    if (model == NULL) return MGRAD_ERR_NULL;
    MGRAD_FORWARD(check_param_buffer(model, "mgrad_model_set_params", dtype, values, count));
    if (count == 0) return MGRAD_OK;
    /* mgr_convert writes nothing unless every value is finite. */
    int64_t bad = mgr_convert(model->theta, MGRAD_DTYPE_F64, values, dtype, (size_t)count, 1);
    MGRAD_RETURN_IF(model->ctx, bad >= 0, MGRAD_ERR_NONFINITE,
                    "mgrad_model_set_params: value %lld is not finite; θ0 is unchanged",
                    (long long)bad);
    return MGRAD_OK;
}

mgrad_status mgrad_model_init_params(mgrad_model *model, uint64_t seed)
{
    if (model == NULL) return MGRAD_ERR_NULL;
    int64_t n = model->graph.num_params;
    if (n == 0) return MGRAD_OK;
    /* Draw into a scratch buffer so that a failure leaves θ0 untouched. */
    double *theta = mgr_alloc(model->ctx, (size_t)n * sizeof *theta);
    MGRAD_RETURN_IF(model->ctx, theta == NULL, MGRAD_ERR_NOMEM,
                    "mgrad_model_init_params: out of memory for %lld parameters",
                    (long long)n);
    mgrad_status status = mgr_graph_init_params(model->ctx, &model->graph, seed, theta);
    if (status != MGRAD_OK) {
        mgr_free(model->ctx, theta);
        return status;
    }
    mgr_free(model->ctx, model->theta);
    model->theta = theta;
    return MGRAD_OK;
}

/* ---- convolutional models ----------------------------------------------- */

mgrad_status mgrad_model_add_conv2d(mgrad_model *model, int64_t out_channels,
                                    int32_t kernel, int32_t stride, int32_t padding,
                                    mgrad_init init)
{
    if (model == NULL) return MGRAD_ERR_NULL;
    /* Ranges, shapes and the initialiser are checked by mgr_graph_append,
       whose messages name the layer. */
    mgr_node node = node_after_output(model, MGR_OP_CONV2D);
    node.shape[0] = out_channels;
    node.kernel = kernel;
    node.stride = stride;
    node.padding = padding;
    node.init = init;
    return model_append(model, node);
}

static mgrad_status add_pool(mgrad_model *model, mgr_op_kind kind, int32_t kernel,
                             int32_t stride)
{
    if (model == NULL) return MGRAD_ERR_NULL;
    mgr_node node = node_after_output(model, kind);
    node.kernel = kernel;
    node.stride = stride == 0 ? kernel : stride;
    return model_append(model, node);
}

mgrad_status mgrad_model_add_avg_pool(mgrad_model *model, int32_t kernel, int32_t stride)
{
    return add_pool(model, MGR_OP_AVG_POOL, kernel, stride);
}

mgrad_status mgrad_model_add_max_pool(mgrad_model *model, int32_t kernel, int32_t stride)
{
    return add_pool(model, MGR_OP_MAX_POOL, kernel, stride);
}

mgrad_status mgrad_model_add_global_avg_pool(mgrad_model *model)
{
    if (model == NULL) return MGRAD_ERR_NULL;
    return model_append(model, node_after_output(model, MGR_OP_GLOBAL_AVG_POOL));
}

static mgrad_status add_norm(mgrad_model *model, mgr_op_kind kind, double eps)
{
    if (model == NULL) return MGRAD_ERR_NULL;
    mgr_node node = node_after_output(model, kind);
    node.eps = eps;
    return model_append(model, node);
}

static int output_is_sequence(const mgrad_model *model)
{
    return mgr_graph_output(&model->graph)->positions > 0;
}

mgrad_status mgrad_model_add_batch_norm(mgrad_model *model, double eps)
{
    if (model == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(model->ctx, output_is_sequence(model), MGRAD_ERR_SHAPE,
                    "mgrad_model_add_batch_norm: the current output is a sequence; "
                    "normalise sequences with mgrad_model_add_layer_norm");
    return add_norm(model, MGR_OP_BATCH_NORM, eps);
}

mgrad_status mgrad_model_add_layer_norm(mgrad_model *model, double eps)
{
    if (model == NULL) return MGRAD_ERR_NULL;
    /* On a sequence, over the last axis of every position. */
    return add_norm(model, output_is_sequence(model) ? MGR_OP_SEQ_LAYER_NORM
                                                     : MGR_OP_LAYER_NORM, eps);
}

mgrad_status mgrad_model_add_dropout(mgrad_model *model, double p)
{
    if (model == NULL) return MGRAD_ERR_NULL;
    mgr_node node = node_after_output(model, MGR_OP_DROPOUT);
    node.rate = p;
    return model_append(model, node);
}

mgrad_status mgrad_model_add_flatten(mgrad_model *model)
{
    if (model == NULL) return MGRAD_ERR_NULL;
    return model_append(model, node_after_output(model, MGR_OP_FLATTEN));
}

/* Append a node reading node `in0` (not necessarily the current output). */
static mgrad_status append_from(mgrad_model *model, int32_t in0, mgr_node node)
{
    node.in0 = in0;
    return model_append(model, node);
}

static mgr_node conv_node(const mgrad_model *model, int64_t channels, int32_t kernel,
                          int32_t stride, int32_t padding)
{
    mgr_node node = node_after_output(model, MGR_OP_CONV2D);
    node.shape[0] = channels;
    node.kernel = kernel;
    node.stride = stride;
    node.padding = padding;
    node.init = MGRAD_INIT_DEFAULT;
    return node;
}

#define MGR_RESNET_BN_EPS 1e-5

mgrad_status mgrad_model_add_resnet_block(mgrad_model *model, int64_t channels,
                                          int32_t stride)
{
    if (model == NULL) return MGRAD_ERR_NULL;
    mgrad_context *ctx = model->ctx;
    mgr_graph *g = &model->graph;
    int32_t in = g->num_nodes - 1;
    const mgr_node *x = &g->nodes[in];
    MGRAD_RETURN_IF(ctx, channels < 1, MGRAD_ERR_INVALID,
                    "mgrad_model_add_resnet_block: channels must be at least 1 (got %lld)",
                    (long long)channels);
    MGRAD_RETURN_IF(ctx, stride < 1, MGRAD_ERR_INVALID,
                    "mgrad_model_add_resnet_block: stride must be at least 1 (got %d)",
                    (int)stride);
    MGRAD_RETURN_IF(ctx, x->ndim != 3, MGRAD_ERR_SHAPE,
                    "mgrad_model_add_resnet_block: the current output must be [channels, "
                    "height, width] but has %d dimension(s); create the model with a "
                    "3-D input shape and add blocks before any flatten or dense layer",
                    (int)x->ndim);
    int projection = stride != 1 || x->shape[0] != channels;
    int32_t saved_nodes = g->num_nodes;
    int64_t saved_params = g->num_params;

    mgrad_status s = model_append(model, conv_node(model, channels, 3, stride, 1));
    if (s == MGRAD_OK) s = add_norm(model, MGR_OP_BATCH_NORM, MGR_RESNET_BN_EPS);
    if (s == MGRAD_OK) s = model_append(model, node_after_output(model, MGR_OP_RELU));
    if (s == MGRAD_OK) s = model_append(model, conv_node(model, channels, 3, 1, 1));
    if (s == MGRAD_OK) s = add_norm(model, MGR_OP_BATCH_NORM, MGR_RESNET_BN_EPS);
    int32_t main_out = g->num_nodes - 1;
    int32_t shortcut = in;
    if (s == MGRAD_OK && projection) {
        s = append_from(model, in, conv_node(model, channels, 1, stride, 0));
        if (s == MGRAD_OK) s = add_norm(model, MGR_OP_BATCH_NORM, MGR_RESNET_BN_EPS);
        shortcut = g->num_nodes - 1;
    }
    if (s == MGRAD_OK) {
        mgr_node add = node_after_output(model, MGR_OP_ADD);
        add.in0 = projection ? shortcut : main_out;
        add.in1 = projection ? main_out : in;
        s = model_append(model, add);
    }
    if (s == MGRAD_OK) s = model_append(model, node_after_output(model, MGR_OP_RELU));
    if (s != MGRAD_OK) {
        /* Drop what was appended; θ0 keeps its (larger) buffer, of which
           only the first num_params values are used. */
        g->num_nodes = saved_nodes;
        g->num_params = saved_params;
    }
    return s;
}

/* ---- sequence models ------------------------------------------------------ */

/* Multi-node builders append all their nodes or none: the graph returns to
   its saved size (θ0 keeps its larger buffer, of which only the first
   num_params values are used, as in mgrad_model_add_resnet_block). */
typedef struct saved_graph {
    int32_t nodes;
    int64_t params;
} saved_graph;

static saved_graph save_graph(const mgrad_model *model)
{
    return (saved_graph){model->graph.num_nodes, model->graph.num_params};
}

static mgrad_status restore_on_failure(mgrad_model *model, saved_graph saved, mgrad_status s)
{
    if (s != MGRAD_OK) {
        model->graph.num_nodes = saved.nodes;
        model->graph.num_params = saved.params;
    }
    return s;
}

#define MGR_GPT_LN_EPS 1e-5

mgrad_status mgrad_model_add_token_embedding(mgrad_model *model, int64_t vocab, int64_t width,
                                             int64_t context)
{
    if (model == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(model->ctx, model->graph.num_nodes != 1, MGRAD_ERR_ORDER,
                    "mgrad_model_add_token_embedding: the token embedding must be the "
                    "model's first layer (it reads the input's token ids)");
    mgr_node node = node_after_output(model, MGR_OP_TOKEN_EMBEDDING);
    node.vocab = vocab;
    node.positions = context;
    node.shape[1] = width;
    return model_append(model, node);
}

mgrad_status mgrad_model_add_positional_embedding(mgrad_model *model)
{
    if (model == NULL) return MGRAD_ERR_NULL;
    return model_append(model, node_after_output(model, MGR_OP_POS_EMBEDDING));
}

mgrad_status mgrad_model_add_causal_self_attention(mgrad_model *model, int32_t heads,
                                                   double dropout)
{
    if (model == NULL) return MGRAD_ERR_NULL;
    const mgr_node *x = mgr_graph_output(&model->graph);
    MGRAD_RETURN_IF(model->ctx, x->positions < 1, MGRAD_ERR_SHAPE,
                    "mgrad_model_add_causal_self_attention: the current output must be a "
                    "sequence [positions, width]; start the model with "
                    "mgrad_model_add_token_embedding");
    int64_t d = x->shape[1];
    MGRAD_RETURN_IF(model->ctx, heads < 1 || d % heads != 0, MGRAD_ERR_INVALID,
                    "mgrad_model_add_causal_self_attention: heads must divide the width "
                    "%lld (got %d)", (long long)d, (int)heads);
    MGRAD_RETURN_IF(model->ctx, !(dropout >= 0 && dropout < 1), MGRAD_ERR_INVALID,
                    "mgrad_model_add_causal_self_attention: dropout must be in [0, 1) (got "
                    "%g)", dropout);
    MGRAD_RETURN_IF(model->ctx, d > INT64_MAX / 3, MGRAD_ERR_INVALID,
                    "mgrad_model_add_causal_self_attention: width %lld is too large",
                    (long long)d);
    saved_graph saved = save_graph(model);
    /* [Q | K | V] = x W_qkvᵀ + b, the heads, then the output projection. */
    mgrad_status s = mgrad_model_add_dense(model, 3 * d, MGRAD_INIT_DEFAULT);
    if (s == MGRAD_OK) {
        mgr_node core = node_after_output(model, MGR_OP_ATTENTION);
        core.heads = heads;
        core.rate = dropout;
        s = model_append(model, core);
    }
    if (s == MGRAD_OK) s = mgrad_model_add_dense(model, d, MGRAD_INIT_DEFAULT);
    return restore_on_failure(model, saved, s);
}

mgrad_status mgrad_model_add_transformer_block(mgrad_model *model, int32_t heads,
                                               int32_t mlp_ratio, double dropout)
{
    if (model == NULL) return MGRAD_ERR_NULL;
    const mgr_node *x = mgr_graph_output(&model->graph);
    MGRAD_RETURN_IF(model->ctx, x->positions < 1, MGRAD_ERR_SHAPE,
                    "mgrad_model_add_transformer_block: the current output must be a "
                    "sequence [positions, width]; start the model with "
                    "mgrad_model_add_token_embedding");
    MGRAD_RETURN_IF(model->ctx, mlp_ratio < 1, MGRAD_ERR_INVALID,
                    "mgrad_model_add_transformer_block: mlp_ratio must be at least 1 (got "
                    "%d)", (int)mlp_ratio);
    int64_t d = x->shape[1];
    MGRAD_RETURN_IF(model->ctx, d > INT64_MAX / mlp_ratio, MGRAD_ERR_INVALID,
                    "mgrad_model_add_transformer_block: width %lld x mlp_ratio %d is too "
                    "large", (long long)d, (int)mlp_ratio);
    saved_graph saved = save_graph(model);
    int32_t in = model->graph.num_nodes - 1;
    /* x + attn(LN(x)) */
    mgrad_status s = mgrad_model_add_layer_norm(model, MGR_GPT_LN_EPS);
    if (s == MGRAD_OK) s = mgrad_model_add_causal_self_attention(model, heads, dropout);
    if (s == MGRAD_OK) s = mgrad_model_add_residual(model, in);
    /* h + MLP(LN(h)), MLP = dense(ratio d), GELU, dense(d) */
    int32_t mid = model->graph.num_nodes - 1;
    if (s == MGRAD_OK) s = mgrad_model_add_layer_norm(model, MGR_GPT_LN_EPS);
    if (s == MGRAD_OK) s = mgrad_model_add_dense(model, mlp_ratio * d, MGRAD_INIT_DEFAULT);
    if (s == MGRAD_OK) s = mgrad_model_add_activation(model, MGRAD_ACTIVATION_GELU);
    if (s == MGRAD_OK) s = mgrad_model_add_dense(model, d, MGRAD_INIT_DEFAULT);
    if (s == MGRAD_OK) s = mgrad_model_add_residual(model, mid);
    return restore_on_failure(model, saved, s);
}

mgrad_status mgrad_model_create_gpt(mgrad_model **out, mgrad_context *ctx, int64_t vocab,
                                    int64_t context, int64_t width, int32_t layers,
                                    int32_t heads)
{
    if (ctx == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(ctx, out == NULL, MGRAD_ERR_NULL,
                    "mgrad_model_create_gpt: out must not be NULL");
    MGRAD_RETURN_IF(ctx, context < 1 || context == INT64_MAX, MGRAD_ERR_INVALID,
                    "mgrad_model_create_gpt: context must be at least 1 (got %lld)",
                    (long long)context);
    MGRAD_RETURN_IF(ctx, layers < 0, MGRAD_ERR_INVALID,
                    "mgrad_model_create_gpt: layers must be >= 0 (got %d)", (int)layers);
    int64_t shape[1] = {context + 1};
    mgrad_model *model = NULL;
    MGRAD_FORWARD(mgrad_model_create(&model, ctx, 1, shape));
    mgrad_status s = mgrad_model_add_token_embedding(model, vocab, width, context);
    if (s == MGRAD_OK) s = mgrad_model_add_positional_embedding(model);
    for (int32_t l = 0; l < layers && s == MGRAD_OK; l++)
        s = mgrad_model_add_transformer_block(model, heads, 4, 0.0);
    if (s == MGRAD_OK) s = mgrad_model_add_layer_norm(model, MGR_GPT_LN_EPS);
    if (s == MGRAD_OK) s = mgrad_model_add_dense(model, vocab, MGRAD_INIT_DEFAULT);
    if (s != MGRAD_OK) {
        mgrad_model_destroy(model);
        return s;
    }
    *out = model;
    return MGRAD_OK;
}
