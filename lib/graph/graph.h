/*
 * graph.h - the model graph (untyped): nodes in topological order, their
 * shapes and parameter layout, and the initialisers.
 *
 * Node 0 is the input.  Every other node reads the output of node in0 (and,
 * for MGR_OP_ADD, of in1) for the same rows of a batch.  Parameters are laid
 * out node by node; a dense node holds W [size, in_size] row-major, then
 * b [size]; a conv2d node W [out_c, in_c, k, k] then b [out_c] (torch's
 * layout); batch norm γ [channels] then β [channels]; layer norm γ [size]
 * then β [size].  Shapes per example are [C, H, W] for image features.
 * What each op is (shapes, parameters, passes) is its definition in the op
 * table (op.h); the code here and in graph_exec.c never asks for a kind.
 */
#ifndef MGRAD_GRAPH_H
#define MGRAD_GRAPH_H

#include <stdint.h>

#include "base/base.h"
#include "graph/op.h"
#include "metagrad/model.h"


#define MGR_MAX_NDIM 3

struct mgr_node {
    mgr_op_kind kind;
    int32_t in0, in1;             /* producer nodes, -1 when unused */
    int32_t ndim;                 /* output shape per example */
    int64_t shape[MGR_MAX_NDIM];
    int64_t size;                 /* product of shape */
    int64_t param_offset;         /* first parameter of this node */
    int64_t param_count;          /* 0 for parameter-free ops */
    double scale;                 /* MGR_OP_SCALE: the factor */
    mgrad_init init;              /* MGR_OP_DENSE, MGR_OP_CONV2D: the initialiser */
    int32_t kernel;               /* CONV2D, AVG_POOL, MAX_POOL: square window side */
    int32_t stride;               /* CONV2D, AVG_POOL, MAX_POOL */
    int32_t padding;              /* CONV2D: zero padding on each side */
    double eps;                   /* BATCH_NORM, LAYER_NORM: added to the variance */
    double rate;                  /* DROPOUT, ATTENTION: probability p of zeroing an element */
    /* Sequences (ops_embedding.c, ops_attention.c): positions > 0 says that
       the output is a sequence [positions, shape[1]] whose positions the
       position-wise ops treat alike; 0 for every other output. */
    int64_t positions;
    int64_t vocab;                /* TOKEN_EMBEDDING: number of token ids */
    int32_t heads;                /* ATTENTION: number of heads */
};

struct mgr_graph {
    int32_t num_nodes;
    int32_t capacity;
    mgr_node *nodes;              /* nodes[0] is the input */
    int64_t num_params;
};

/* The model object (internal view).  A run copies graph (mgr_graph_copy)
   and theta at creation, so the model is never frozen by runs. */
struct mgrad_model {
    mgrad_context *ctx;           /* retained */
    mgr_graph graph;
    double *theta;                /* θ0 [graph.num_params]; NULL while empty */
};

/* Create a graph holding only the input node of the given shape. */
mgrad_status mgr_graph_create(mgrad_context *ctx, int32_t ndim, const int64_t *shape,
                              mgr_graph *out);
void mgr_graph_free(mgrad_context *ctx, mgr_graph *g);
/* Deep copy (runs copy the graph so that models can change or go away). */
mgrad_status mgr_graph_copy(mgrad_context *ctx, const mgr_graph *src, mgr_graph *out);
/* Append a node (fills size, parameter layout); validates shapes and
   records a message on failure.  The caller sets kind, in0, in1 (ADD only),
   shape[0] = units and init (DENSE), scale (SCALE), shape[0] = out channels,
   kernel, stride, padding and init (CONV2D), kernel and stride (pools), eps
   (norms), rate (DROPOUT); the rest is computed. */
mgrad_status mgr_graph_append(mgrad_context *ctx, mgr_graph *g, mgr_node node);
/* The output node. */
static inline const mgr_node *mgr_graph_output(const mgr_graph *g)
{
    return &g->nodes[g->num_nodes - 1];
}
/* The forward memo (docs/architecture.md, "Forward memo"): a node is
   memoised when its op says so (MGR_OP_FLAG_MEMOISED: its forward is a
   GEMM, dense or conv2d, with no other side effects), so that copying its
   values back replaces the product.  Elements of a memo for `rows`
   examples: Σ over memoised nodes of rows × size, laid out in node order. */
static inline int mgr_node_memoised(const mgr_node *nd)
{
    const mgr_op_def *def = mgr_op_def_of(nd->kind);
    return def != NULL && (def->flags & MGR_OP_FLAG_MEMOISED) != 0;
}
size_t mgr_graph_memo_elems(const mgr_graph *g, size_t rows);
/* Fill theta[num_params] with every node's initialiser from `seed`.
   MGRAD_ERR_NOMEM or MGRAD_ERR_INTERNAL (LAPACKE failure) on error. */
mgrad_status mgr_graph_init_params(mgrad_context *ctx, const mgr_graph *g,
                                   uint64_t seed, double *theta);
/* Fill only node `node`'s parameters (theta[param_offset ...]) from `seed`;
   a no-op for parameter-free nodes.  Same draws as mgr_graph_init_params. */
mgrad_status mgr_graph_init_node(mgrad_context *ctx, const mgr_graph *g, int32_t node,
                                 uint64_t seed, double *theta);

/* Whether a token embedding reads the graph's input (its inputs are then
   token ids, which have no derivative); 0 for an empty graph. */
int mgr_graph_reads_tokens(const mgr_graph *g);

/* The first node whose op couples the rows of a batch
   (MGR_OP_FLAG_COUPLES_ROWS: batch norm), or -1 when none does. */
int32_t mgr_graph_first_row_coupling(const mgr_graph *g);

#endif /* MGRAD_GRAPH_H */
