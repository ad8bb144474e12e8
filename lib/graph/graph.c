/*
 * graph.c - the untyped model graph: creation, deep copy and validated
 * appends that fill each node's shape and parameter layout, and the op
 * table (op.h) with the helpers its definitions share.
 *
 * Callers of mgr_graph_append describe a node by kind, in0 (and in1 for
 * two-input ops), and the kind's own fields (graph.h).  The op's definition
 * validates them and computes ndim, shape, size and the parameter count;
 * the append computes param_offset, and in1 = -1 for single-input ops, so a
 * node built with a designated initialiser that leaves in1 at 0 still
 * means what it says.
 */
#include <string.h>

#include "graph/graph.h"

/* Large enough for a typical MLP without regrowth; growth doubles. */
#define MGR_GRAPH_INITIAL_CAPACITY 8

const mgr_op_def *const mgr_op_defs[MGR_OP_COUNT] = {
    [MGR_OP_INPUT] = NULL,
#define MGR_OP_ENTRY_(kind, name) [MGR_OP_##kind] = &mgr_op_##name,
    MGR_OPS(MGR_OP_ENTRY_)
#undef MGR_OP_ENTRY_
};

const char *mgr_op_name(mgr_op_kind kind)
{
    if (kind == MGR_OP_INPUT) return "input";
    if ((int)kind < 0 || kind >= MGR_OP_COUNT) return "unknown op";
    return mgr_op_defs[kind]->name;
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

/* ---- helpers of the op definitions --------------------------------------- */

mgrad_status mgr_infer_same_shape(mgrad_context *ctx, const mgr_graph *g, mgr_node *node,
                                  int64_t *param_count)
{
    (void)ctx;
    const mgr_node *x = &g->nodes[node->in0];
    node->ndim = x->ndim;
    for (int32_t d = 0; d < MGR_MAX_NDIM; d++)
        node->shape[d] = d < x->ndim ? x->shape[d] : 0;
    node->size = x->size;
    node->positions = x->positions; /* a sequence stays one */
    *param_count = 0;
    return MGRAD_OK;
}

void mgr_node_set_shape3(mgr_node *node, int64_t c, int64_t h, int64_t w)
{
    node->ndim = 3;
    node->shape[0] = c;
    node->shape[1] = h;
    node->shape[2] = w;
    node->size = c * h * w;
}

void mgr_node_set_shape1(mgr_node *node, int64_t n)
{
    node->ndim = 1;
    node->shape[0] = n;
    node->shape[1] = node->shape[2] = 0;
    node->size = n;
}

int mgr_init_known(mgrad_init init)
{
    return (int)init >= MGRAD_INIT_DEFAULT && (int)init <= MGRAD_INIT_ZEROS;
}

mgrad_status mgr_infer_window(mgrad_context *ctx, const mgr_graph *g, const mgr_node *node,
                              int64_t *oh, int64_t *ow)
{
    const char *name = mgr_op_name(node->kind);
    const mgr_node *x = &g->nodes[node->in0];
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

mgrad_status mgr_check_param_total(mgrad_context *ctx, const mgr_graph *g,
                                   const mgr_node *node, int64_t count)
{
    MGRAD_RETURN_IF(ctx, g->num_params > INT64_MAX - count, MGRAD_ERR_INVALID,
                    "%s: the model's parameter count overflows int64",
                    mgr_op_name(node->kind));
    return MGRAD_OK;
}

/* ---- the generic append -------------------------------------------------- */

/* A definition that leaves a question unanswered is a bug in the op's file:
   refuse it loudly instead of guessing (docs/architecture.md, "Ops"). */
static mgrad_status check_def(mgrad_context *ctx, mgr_op_kind kind, const mgr_op_def *def)
{
    MGRAD_RETURN_IF(ctx,
                    def == NULL || def->name == NULL || def->infer == NULL ||
                        (def->inputs != 1 && def->inputs != 2) ||
                        def->ybar_reads == MGR_YBAR_UNANSWERED ||
                        def->passes_f32 == NULL || def->passes_f64 == NULL,
                    MGRAD_ERR_INTERNAL,
                    "graph append: the definition of op kind %d is incomplete (name, "
                    "inputs, infer, ybar_reads and both pass tables are required)",
                    (int)kind);
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
    const mgr_op_def *def = mgr_op_def_of(node.kind);
    MGRAD_FORWARD(check_def(ctx, node.kind, def));
    MGRAD_RETURN_IF(ctx, node.in0 < 0 || node.in0 >= g->num_nodes, MGRAD_ERR_INVALID,
                    "%s: input node %d does not exist (valid ids are 0 to %d)",
                    def->name, (int)node.in0, (int)(g->num_nodes - 1));
    /* Two-input ops check in1 themselves (their message says how to get one). */
    if (def->inputs == 1) node.in1 = -1;

    int64_t param_count = 0;
    MGRAD_FORWARD(def->infer(ctx, g, &node, &param_count));
    /* A parameter count that only an initialiser can fill. */
    MGRAD_RETURN_IF(ctx, param_count > 0 && def->init == NULL, MGRAD_ERR_INTERNAL,
                    "%s: the op has parameters but no initialiser", def->name);

    MGRAD_FORWARD(graph_reserve_one(ctx, g));
    node.param_offset = g->num_params;
    node.param_count = param_count;
    g->nodes[g->num_nodes++] = node;
    g->num_params += param_count;
    return MGRAD_OK;
}

int32_t mgr_graph_first_row_coupling(const mgr_graph *g)
{
    for (int32_t k = 1; k < g->num_nodes; k++)
        if (mgr_op_def_of(g->nodes[k].kind)->flags & MGR_OP_FLAG_COUPLES_ROWS) return k;
    return -1;
}

int mgr_graph_reads_tokens(const mgr_graph *g)
{
    for (int32_t k = 1; k < g->num_nodes; k++)
        if ((mgr_op_def_of(g->nodes[k].kind)->flags & MGR_OP_FLAG_READS_TOKENS) &&
            g->nodes[k].in0 == 0)
            return 1;
    return 0;
}

size_t mgr_graph_memo_elems(const mgr_graph *g, size_t rows)
{
    size_t n = 0;
    for (int32_t k = 1; k < g->num_nodes; k++)
        if (mgr_node_memoised(&g->nodes[k])) n += rows * (size_t)g->nodes[k].size;
    return n;
}
