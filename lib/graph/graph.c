/*
 * graph.c - the untyped model graph: creation, deep copy and validated
 * appends that fill each node's shape and parameter layout.
 *
 * Callers of mgr_graph_append describe a node by kind, in0 (and in1 for
 * MGR_OP_ADD), and the kind's own fields: shape[0] = units for MGR_OP_DENSE
 * (with init), scale for MGR_OP_SCALE, shape[0] = out channels, kernel,
 * stride, padding and init for MGR_OP_CONV2D, kernel and stride for the
 * pools, eps for the norms, rate for dropout.  Everything else (ndim, shape, size,
 * param_offset, param_count, and in1 of single-input ops) is computed here,
 * so a node built with a designated initialiser that leaves in1 at 0 still
 * means what it says.
 */
#include <math.h>
#include <string.h>

#include "graph/graph.h"

/* Large enough for a typical MLP without regrowth; growth doubles. */
#define MGR_GRAPH_INITIAL_CAPACITY 8

static const char *op_name(mgr_op_kind kind)
{
    switch (kind) {
    case MGR_OP_INPUT: return "input";
    case MGR_OP_DENSE: return "dense layer";
    case MGR_OP_TANH: return "tanh";
    case MGR_OP_SIGMOID: return "sigmoid";
    case MGR_OP_RELU: return "relu";
    case MGR_OP_GELU: return "gelu";
    case MGR_OP_SOFTPLUS: return "softplus";
    case MGR_OP_SCALE: return "scale";
    case MGR_OP_ADD: return "residual add";
    case MGR_OP_CONV2D: return "conv2d";
    case MGR_OP_AVG_POOL: return "average pooling";
    case MGR_OP_MAX_POOL: return "max pooling";
    case MGR_OP_GLOBAL_AVG_POOL: return "global average pooling";
    case MGR_OP_BATCH_NORM: return "batch norm";
    case MGR_OP_LAYER_NORM: return "layer norm";
    case MGR_OP_DROPOUT: return "dropout";
    case MGR_OP_FLATTEN: return "flatten";
    case MGR_OP_COUNT: break;
    }
    return "unknown op";
}

mgrad_status mgr_graph_create(mgrad_context *ctx, int32_t ndim, const int64_t *shape,
                              mgr_graph *out)
{
    MGRAD_RETURN_IF(ctx, shape == NULL || out == NULL, MGRAD_ERR_NULL,
                    "graph: the input shape must not be NULL");
    MGRAD_RETURN_IF(ctx, ndim < 1 || ndim > MGR_MAX_NDIM, MGRAD_ERR_INVALID,
                    "input shape: ndim must be 1 to %d (got %d)", MGR_MAX_NDIM,
                    (int)ndim);
    for (int32_t d = 0; d < ndim; d++)
        MGRAD_RETURN_IF(ctx, shape[d] < 1, MGRAD_ERR_INVALID,
                        "input shape: dimension %d must be at least 1 (got %lld)",
                        (int)d, (long long)shape[d]);
    int64_t size = mgr_shape_product(ndim, shape);
    MGRAD_RETURN_IF(ctx, size < 1, MGRAD_ERR_INVALID,
                    "input shape: the product of the dimensions overflows int64");

    mgr_node *nodes = mgr_calloc(ctx, MGR_GRAPH_INITIAL_CAPACITY, sizeof *nodes);
    MGRAD_RETURN_IF(ctx, nodes == NULL, MGRAD_ERR_NOMEM,
                    "out of memory allocating the model graph");
    mgr_node *in = &nodes[0];
    in->kind = MGR_OP_INPUT;
    in->in0 = -1;
    in->in1 = -1;
    in->ndim = ndim;
    for (int32_t d = 0; d < ndim; d++) in->shape[d] = shape[d];
    in->size = size;
    in->scale = 1.0;
    in->init = MGRAD_INIT_DEFAULT;

    out->num_nodes = 1;
    out->capacity = MGR_GRAPH_INITIAL_CAPACITY;
    out->nodes = nodes;
    out->num_params = 0;
    return MGRAD_OK;
}

void mgr_graph_free(mgrad_context *ctx, mgr_graph *g)
{
    if (g == NULL) return;
    mgr_free(ctx, g->nodes);
    memset(g, 0, sizeof *g);
}

mgrad_status mgr_graph_copy(mgrad_context *ctx, const mgr_graph *src, mgr_graph *out)
{
    MGRAD_RETURN_IF(ctx, src == NULL || out == NULL || src->nodes == NULL,
                    MGRAD_ERR_NULL, "graph copy: source or destination is NULL");
    mgr_node *nodes = mgr_calloc(ctx, (size_t)src->num_nodes, sizeof *nodes);
    MGRAD_RETURN_IF(ctx, nodes == NULL, MGRAD_ERR_NOMEM,
                    "out of memory copying the model graph (%d nodes)",
                    (int)src->num_nodes);
    memcpy(nodes, src->nodes, (size_t)src->num_nodes * sizeof *nodes);
    out->num_nodes = src->num_nodes;
    out->capacity = src->num_nodes;
    out->nodes = nodes;
    out->num_params = src->num_params;
    return MGRAD_OK;
}

/* Make room for one more node; the graph is unchanged on failure. */
static mgrad_status graph_reserve_one(mgrad_context *ctx, mgr_graph *g)
{
    if (g->num_nodes < g->capacity) return MGRAD_OK;
    MGRAD_RETURN_IF(ctx, g->capacity > INT32_MAX / 2, MGRAD_ERR_INVALID,
                    "model graph: too many layers (%d)", (int)g->num_nodes);
    int32_t capacity = g->capacity > 0 ? 2 * g->capacity : MGR_GRAPH_INITIAL_CAPACITY;
    mgr_node *nodes = mgr_calloc(ctx, (size_t)capacity, sizeof *nodes);
    MGRAD_RETURN_IF(ctx, nodes == NULL, MGRAD_ERR_NOMEM,
                    "out of memory growing the model graph to %d nodes", (int)capacity);
    if (g->num_nodes > 0) memcpy(nodes, g->nodes, (size_t)g->num_nodes * sizeof *nodes);
    mgr_free(ctx, g->nodes);
    g->nodes = nodes;
    g->capacity = capacity;
    return MGRAD_OK;
}

static void copy_shape(mgr_node *dst, const mgr_node *src)
{
    dst->ndim = src->ndim;
    for (int32_t d = 0; d < MGR_MAX_NDIM; d++)
        dst->shape[d] = d < src->ndim ? src->shape[d] : 0;
    dst->size = src->size;
}

static void set_shape3(mgr_node *dst, int64_t c, int64_t h, int64_t w)
{
    dst->ndim = 3;
    dst->shape[0] = c;
    dst->shape[1] = h;
    dst->shape[2] = w;
    dst->size = c * h * w;
}

/* Checks shared by conv2d and the pools: a [C, H, W] input, a window that
   fits in the (padded) input, and the output size.  Computes *oh, *ow. */
static mgrad_status check_window(mgrad_context *ctx, const mgr_node *node,
                                 const mgr_node *x, int64_t *oh, int64_t *ow)
{
    const char *name = op_name(node->kind);
    MGRAD_RETURN_IF(ctx, x->ndim != 3, MGRAD_ERR_SHAPE,
                    "%s: the input must be 3-D [channels, height, width] but node %d "
                    "has %d dimension(s); create the model with an input shape such as "
                    "{1, 28, 28} and put %s before any flatten or dense layer",
                    name, (int)node->in0, (int)x->ndim, name);
    MGRAD_RETURN_IF(ctx, node->kernel < 1, MGRAD_ERR_INVALID,
                    "%s: kernel must be at least 1 (got %d)", name, (int)node->kernel);
    MGRAD_RETURN_IF(ctx, node->stride < 1, MGRAD_ERR_INVALID,
                    "%s: stride must be at least 1 (got %d)", name, (int)node->stride);
    MGRAD_RETURN_IF(ctx, node->padding < 0 || node->padding >= node->kernel,
                    MGRAD_ERR_INVALID,
                    "%s: padding must be 0 to kernel - 1 = %d (got %d)", name,
                    (int)(node->kernel - 1), (int)node->padding);
    int64_t k = node->kernel, p = node->padding;
    int64_t h = x->shape[1] + 2 * p, w = x->shape[2] + 2 * p;
    MGRAD_RETURN_IF(ctx, h < k || w < k, MGRAD_ERR_SHAPE,
                    "%s: the %lldx%lld window does not fit the %lldx%lld input of node "
                    "%d (with padding %lld); use a smaller kernel or more padding",
                    name, (long long)k, (long long)k, (long long)x->shape[1],
                    (long long)x->shape[2], (int)node->in0, (long long)p);
    *oh = (h - k) / node->stride + 1;
    *ow = (w - k) / node->stride + 1;
    return MGRAD_OK;
}

/* Parameter count check shared by the ops that have parameters. */
static mgrad_status check_param_total(mgrad_context *ctx, const mgr_graph *g,
                                      mgr_op_kind kind, int64_t count)
{
    MGRAD_RETURN_IF(ctx, g->num_params > INT64_MAX - count, MGRAD_ERR_INVALID,
                    "%s: the model's parameter count overflows int64", op_name(kind));
    return MGRAD_OK;
}

mgrad_status mgr_graph_append(mgrad_context *ctx, mgr_graph *g, mgr_node node)
{
    MGRAD_RETURN_IF(ctx, g == NULL || g->nodes == NULL, MGRAD_ERR_NULL,
                    "graph append: the graph is NULL");
    MGRAD_RETURN_IF(ctx, node.kind <= MGR_OP_INPUT || node.kind >= MGR_OP_COUNT,
                    MGRAD_ERR_INVALID,
                    "graph append: unknown op kind %d (the input node is implicit)",
                    (int)node.kind);
    MGRAD_RETURN_IF(ctx, node.in0 < 0 || node.in0 >= g->num_nodes, MGRAD_ERR_INVALID,
                    "%s: input node %d does not exist (valid ids are 0 to %d)",
                    op_name(node.kind), (int)node.in0, (int)(g->num_nodes - 1));
    const mgr_node *x = &g->nodes[node.in0];

    int64_t param_count = 0;
    switch (node.kind) {
    case MGR_OP_DENSE: {
        int64_t units = node.shape[0];
        MGRAD_RETURN_IF(ctx, units < 1, MGRAD_ERR_INVALID,
                        "dense layer: units must be at least 1 (got %lld)",
                        (long long)units);
        MGRAD_RETURN_IF(ctx, (int)node.init < MGRAD_INIT_DEFAULT ||
                                 (int)node.init > MGRAD_INIT_ZEROS,
                        MGRAD_ERR_INVALID,
                        "dense layer: unknown initialiser %d (use an mgrad_init value)",
                        (int)node.init);
        /* W [units, in] plus b [units]: units * (in + 1) must fit. */
        MGRAD_RETURN_IF(ctx, x->size > INT64_MAX - 1 || units > INT64_MAX / (x->size + 1),
                        MGRAD_ERR_INVALID,
                        "dense layer: %lld units x %lld inputs is too many parameters",
                        (long long)units, (long long)x->size);
        param_count = units * (x->size + 1);
        MGRAD_RETURN_IF(ctx, g->num_params > INT64_MAX - param_count, MGRAD_ERR_INVALID,
                        "dense layer: the model's parameter count overflows int64");
        node.ndim = 1;
        node.shape[0] = units;
        node.shape[1] = node.shape[2] = 0;
        node.size = units;
        node.in1 = -1;
        break;
    }
    case MGR_OP_TANH:
    case MGR_OP_SIGMOID:
    case MGR_OP_RELU:
    case MGR_OP_GELU:
    case MGR_OP_SOFTPLUS:
        copy_shape(&node, x);
        node.in1 = -1;
        break;
    case MGR_OP_SCALE:
        MGRAD_RETURN_IF(ctx, !isfinite(node.scale), MGRAD_ERR_INVALID,
                        "scale: the factor must be finite (got %g)", node.scale);
        copy_shape(&node, x);
        node.in1 = -1;
        break;
    case MGR_OP_ADD: {
        MGRAD_RETURN_IF(ctx, node.in1 < 0 || node.in1 >= g->num_nodes, MGRAD_ERR_INVALID,
                        "residual: node %d does not exist (valid ids are 0 to %d; "
                        "use mgrad_model_mark to get one)",
                        (int)node.in1, (int)(g->num_nodes - 1));
        const mgr_node *x1 = &g->nodes[node.in1];
        MGRAD_RETURN_IF(ctx, x->size != x1->size, MGRAD_ERR_SHAPE,
                        "residual: sizes differ: the current output (node %d) has "
                        "%lld values per example but node %d has %lld; add a dense "
                        "layer so that they match",
                        (int)node.in0, (long long)x->size, (int)node.in1,
                        (long long)x1->size);
        int same = x->ndim == x1->ndim;
        for (int32_t d = 0; same && d < x->ndim; d++) same = x->shape[d] == x1->shape[d];
        MGRAD_RETURN_IF(ctx, !same && (x->ndim > 1 || x1->ndim > 1), MGRAD_ERR_SHAPE,
                        "residual: shapes differ: node %d is %lldx%lldx%lld but node %d "
                        "is %lldx%lldx%lld (same size, different layout); use conv2d "
                        "or pooling so that channels and spatial sizes match, or "
                        "flatten both",
                        (int)node.in0, (long long)x->shape[0], (long long)x->shape[1],
                        (long long)x->shape[2], (int)node.in1, (long long)x1->shape[0],
                        (long long)x1->shape[1], (long long)x1->shape[2]);
        copy_shape(&node, x);
        break;
    }
    case MGR_OP_CONV2D: {
        int64_t oc = node.shape[0], oh = 0, ow = 0;
        MGRAD_RETURN_IF(ctx, oc < 1 || oc > INT32_MAX, MGRAD_ERR_INVALID,
                        "conv2d: out_channels must be 1 to %d (got %lld)", (int)INT32_MAX,
                        (long long)oc);
        MGRAD_RETURN_IF(ctx, (int)node.init < MGRAD_INIT_DEFAULT ||
                                 (int)node.init > MGRAD_INIT_ZEROS,
                        MGRAD_ERR_INVALID,
                        "conv2d: unknown initialiser %d (use an mgrad_init value)",
                        (int)node.init);
        MGRAD_FORWARD(check_window(ctx, &node, x, &oh, &ow));
        /* W [oc, ic, k, k] plus b [oc]; every factor is bounded by sizes that
           already fit, so only the products need checks. */
        int64_t kk = (int64_t)node.kernel * node.kernel;
        MGRAD_RETURN_IF(ctx, x->shape[0] > INT64_MAX / kk, MGRAD_ERR_INVALID,
                        "conv2d: kernel %d is too large", (int)node.kernel);
        int64_t fan_in = x->shape[0] * kk;
        MGRAD_RETURN_IF(ctx, fan_in > INT64_MAX / (oc + 1) ||
                                 oh * ow > INT64_MAX / oc,
                        MGRAD_ERR_INVALID,
                        "conv2d: %lld output channels is too many for this input",
                        (long long)oc);
        param_count = oc * fan_in + oc;
        MGRAD_FORWARD(check_param_total(ctx, g, node.kind, param_count));
        set_shape3(&node, oc, oh, ow);
        node.in1 = -1;
        break;
    }
    case MGR_OP_AVG_POOL:
    case MGR_OP_MAX_POOL: {
        int64_t oh = 0, ow = 0;
        node.padding = 0;
        MGRAD_FORWARD(check_window(ctx, &node, x, &oh, &ow));
        set_shape3(&node, x->shape[0], oh, ow);
        node.in1 = -1;
        break;
    }
    case MGR_OP_GLOBAL_AVG_POOL:
        MGRAD_RETURN_IF(ctx, x->ndim < 2, MGRAD_ERR_SHAPE,
                        "global average pooling: the input must be [channels, height, "
                        "width] (or [channels, length]) but node %d is 1-D; use it "
                        "after conv2d and before flatten or dense layers",
                        (int)node.in0);
        node.ndim = 1;
        node.shape[0] = x->shape[0];
        node.shape[1] = node.shape[2] = 0;
        node.size = x->shape[0];
        node.in1 = -1;
        break;
    case MGR_OP_BATCH_NORM:
    case MGR_OP_LAYER_NORM:
        MGRAD_RETURN_IF(ctx, !(node.eps > 0) || !isfinite(node.eps), MGRAD_ERR_INVALID,
                        "%s: eps must be positive and finite (got %g; torch uses 1e-5)",
                        op_name(node.kind), node.eps);
        /* batch norm: γ, β per channel (the first dimension); layer norm:
           per element of the example. */
        param_count = 2 * (node.kind == MGR_OP_BATCH_NORM ? x->shape[0] : x->size);
        MGRAD_FORWARD(check_param_total(ctx, g, node.kind, param_count));
        copy_shape(&node, x);
        node.in1 = -1;
        break;
    case MGR_OP_DROPOUT:
        MGRAD_RETURN_IF(ctx, !(node.rate >= 0 && node.rate < 1), MGRAD_ERR_INVALID,
                        "dropout: p must be in [0, 1) (got %g)", node.rate);
        copy_shape(&node, x);
        node.in1 = -1;
        break;
    case MGR_OP_FLATTEN:
        node.ndim = 1;
        node.shape[0] = x->size;
        node.shape[1] = node.shape[2] = 0;
        node.size = x->size;
        node.in1 = -1;
        break;
    case MGR_OP_INPUT:
    case MGR_OP_COUNT:
        return mgr_error(ctx, MGRAD_ERR_INTERNAL, "graph append: unreachable op kind");
    }

    MGRAD_FORWARD(graph_reserve_one(ctx, g));
    node.param_offset = g->num_params;
    node.param_count = param_count;
    g->nodes[g->num_nodes++] = node;
    g->num_params += param_count;
    return MGRAD_OK;
}

size_t mgr_graph_memo_elems(const mgr_graph *g, size_t rows)
{
    size_t n = 0;
    for (int32_t k = 1; k < g->num_nodes; k++)
        if (mgr_node_memoised(&g->nodes[k])) n += rows * (size_t)g->nodes[k].size;
    return n;
}
