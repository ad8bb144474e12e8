/*
 * graph_exec.h - typed execution of a graph and of the loss: the four passes.
 *
 * For a batch of `rows` examples every node has four buffers [rows, size]:
 *   val   forward values            y
 *   tan   tangents                  ẏ   (direction u on θ, ẋ on the input)
 *   adj   adjoints                  ȳ
 *   tadj  tangents of the adjoints  (ȳ)˙  (inner nodes' share memory: valid
 *         only inside tangent_backward; the output's is its own)
 * The passes, run in this order (each reads what the earlier ones wrote):
 *   forward           val from θ and x
 *   backward          adj from the output adjoint; θ̄ += ..., x̄ += ...
 *   tangent           tan from u and ẋ
 *   tangent_backward  tadj from (ō)˙; (θ̄)˙ += ... (= H u), (x̄)˙ += ...
 * A training step runs forward + backward; the Hessian-vector product of
 * the reverse pass adds tangent + tangent_backward on the same buffers.
 * Per-op rules: docs/derivations.md.
 */
#ifndef MGRAD_GRAPH_EXEC_H
#define MGRAD_GRAPH_EXEC_H

#include "base/pool.h"
#include "graph/graph.h"
#include "kernels/kernels.h"
#include "metagrad/common.h"

/* Arguments of one op pass.  Pointers are for the op's node; the input
   pointers come from node in0 (x*) and in1 (x1*, MGR_OP_ADD only).
   A NULL input tangent means zero.  A NULL adjoint output (xbar, x1bar,
   xbardot, x1bardot) means not wanted.  Outputs y, ydot, tadj of the node
   are overwritten; xbar, xbardot, pbar, pbardot are accumulated (+=). */
typedef struct R(mgr_op_args) {
    const mgr_node *node;
    size_t rows, in_size;
    const real *x, *x1;           /* [rows, in_size] */
    const real *xdot, *x1dot;     /* NULL = 0 */
    real *y, *ydot;               /* [rows, size] */
    const real *ybar, *ybardot;   /* [rows, size] */
    real *xbar, *x1bar;           /* += , NULL = not wanted */
    real *xbardot, *x1bardot;     /* += , NULL = not wanted */
    const real *p;                /* the node's parameters */
    const real *u;                /* the direction on them; NULL = 0 */
    real *pbar, *pbardot;         /* += ; NULL = not wanted */
    /* Appended for the conv/pool/norm/dropout ops: */
    const mgr_node *xnode;        /* node in0 (its shape) */
    real *scratch;                /* op-private scratch of mgr_op_scratch elements
                                     (thread 0's; thread w's at w scratch_stride) */
    int32_t index;                /* the node's id (dropout's RNG stream) */
    uint64_t seed;                /* from the workspace: dropout's key ... */
    int64_t step;                 /* ... the training step ... */
    int training;                 /* ... and 0 when dropout is the identity */
    int64_t row0;                 /* dropout: mask row of the chunk's row 0 */
    struct mgr_pool *pool;        /* the context's threads (base/pool.h); NULL: none */
    size_t scratch_stride;        /* elements between two threads' scratch */
    real *shared;                 /* mgr_op_shared_scratch elements */
    double *saved;                /* mgr_op_saved doubles: the forward writes
                                     them, the other passes of the same chunk
                                     read them */
} R(mgr_op_args);

/* An op's four passes (its definition, op.h, points at the f32 and f64
   tables).  Each op's file defines them with MGR_OP_PASS_TABLE. */
typedef struct R(mgr_op_passes) {
    void (*forward)(const R(mgr_op_args) *a);
    void (*backward)(const R(mgr_op_args) *a);
    void (*tangent)(const R(mgr_op_args) *a);
    void (*tangent_backward)(const R(mgr_op_args) *a);
} R(mgr_op_passes);

/* The pass table of op `name` from its four functions, named
   <prefix>_forward, _backward, _tangent and _tangent_backward. */
#define MGR_OP_PASS_TABLE(name, prefix)                                    \
    const R(mgr_op_passes) R(mgr_##name##_passes) = {                      \
        prefix##_forward, prefix##_backward, prefix##_tangent,             \
        prefix##_tangent_backward }

/* The passes of op `kind` (not the input). */
static inline const R(mgr_op_passes) *R(mgr_op_passes_of)(mgr_op_kind kind)
{
    return mgr_op_def_of(kind)->R(passes);
}

/* Elements of shared scratch node k needs (op.h), 0 for ops that need
   none, SIZE_MAX on overflow. */
static inline size_t mgr_op_shared_scratch(const mgr_graph *g, int32_t k)
{
    const mgr_op_def *def = mgr_op_def_of(g->nodes[k].kind);
    return def->shared_scratch != NULL ? def->shared_scratch(g, k) : 0;
}

/* Doubles node k's forward keeps for its other passes (op.h), 0 for ops
   that keep none, SIZE_MAX on overflow. */
static inline size_t mgr_op_saved(const mgr_graph *g, int32_t k, size_t max_rows)
{
    const mgr_op_def *def = mgr_op_def_of(g->nodes[k].kind);
    return def->saved != NULL ? def->saved(g, k, max_rows) : 0;
}

/* Workspace for batches of up to max_rows rows; the tangents and node
   adjoints (tan, adj), which only the R-op's passes use, for up to
   rop_rows of them (mgr_graph_ws_reserve_rop grows them). */
typedef struct R(mgr_graph_ws) {
    size_t max_rows;
    size_t rop_rows;              /* rows tan[k] and adj[k] hold */
    real *rop_block;              /* the allocation behind tan and adj */
    int32_t num_nodes;
    real **val, **tan, **adj, **tadj; /* per node; [0] unused (input) */
    double **saved;               /* per node: mgr_op_saved doubles, or NULL;
                                     [0] (the input keeps none) owns the block */
    /* Dropout's key, set by the caller before the passes (replay is exact
       because a mask is a pure function of seed, step, node, element):
       training = 1 (default) applies dropout, 0 makes it the identity. */
    uint64_t seed;
    int64_t step;
    int training;
    real *scratch;                /* op scratch (conv's im2col blocks), one area
                                     of scratch_stride elements per thread */
    size_t scratch_stride;
    real *shared;                 /* scratch the threads share (mgr_op_shared_scratch) */
    /* Dropout's mask row of the passes' row 0 (default 0): a rank of a
       data-parallel run computing rows [lo, hi) of a chunk sets lo, so the
       masks are those of the whole chunk (docs/scale-out.md). */
    int64_t row0;
    unsigned char *need;          /* [num_nodes] scratch of mgr_graph_backward_rop */
    int32_t *tadj_zero_at;        /* [num_nodes] reverse step at which an inner
                                     node's shared tadj buffer is zeroed */
    /* The context's threads, which the ops run their passes on
       (base/pool.h: results do not depend on how many there are); NULL
       runs everything on the calling thread. */
    struct mgr_pool *pool;
} R(mgr_graph_ws);

/* Elements of scratch node k needs, whatever the number of rows (work on
   a bounded block of rows reuses it; conv2d keeps the im2col matrices of a
   block of examples): its op's answer (op.h), 0 for ops that need none,
   SIZE_MAX on overflow. */
static inline size_t mgr_op_scratch(const mgr_graph *g, int32_t k)
{
    const mgr_op_def *def = mgr_op_def_of(g->nodes[k].kind);
    return def->scratch != NULL ? def->scratch(g, k) : 0;
}

mgrad_status R(mgr_graph_ws_create)(mgrad_context *ctx, const mgr_graph *g,
                                    size_t max_rows, R(mgr_graph_ws) **out);
/* A workspace whose tangents and node adjoints hold rop_rows rows (at most
   max_rows): the evaluator's, whose R-op runs on the batch unless a pool
   or an H u session asks for more.  mgr_graph_ws_create is this with
   rop_rows = max_rows. */
mgrad_status R(mgr_graph_ws_create_rop)(mgrad_context *ctx, const mgr_graph *g,
                                        size_t max_rows, size_t rop_rows,
                                        R(mgr_graph_ws) **out);
/* Before the R-op's passes (mgr_graph_backward, _backward_rop, _tangent,
   _tangent_backward) on `rows` rows (at most max_rows): grow tan and adj
   to max_rows when they hold fewer (their contents are not kept).
   MGRAD_ERR_NOMEM leaves the workspace as it was. */
mgrad_status R(mgr_graph_ws_reserve_rop)(mgrad_context *ctx, const mgr_graph *g,
                                         R(mgr_graph_ws) *ws, size_t rows);
void R(mgr_graph_ws_destroy)(mgrad_context *ctx, R(mgr_graph_ws) *ws);

/* x [rows, input size]. Output values: ws->val[g->num_nodes - 1]. */
void R(mgr_graph_forward)(const mgr_graph *g, R(mgr_graph_ws) *ws, size_t rows,
                          const real *theta, const real *x);
/* The forward pass with the memo (graph.h, mgr_graph_memo_elems): with
   memo_in, the memoised nodes take their values from it instead of
   computing them (the caller guarantees they are those values: same θ, x,
   rows); with memo_out, their values are also copied there.  Either may be
   NULL; both NULL is mgr_graph_forward. */
void R(mgr_graph_forward_memo)(const mgr_graph *g, R(mgr_graph_ws) *ws, size_t rows,
                               const real *theta, const real *x, const real *memo_in,
                               real *memo_out);
/* obar [rows, output size]: the loss adjoint.  grad[P] += θ̄ (NULL: not
   wanted); xbar [rows, input size] += x̄ (NULL: not wanted). */
void R(mgr_graph_backward)(const mgr_graph *g, R(mgr_graph_ws) *ws, size_t rows,
                           const real *theta, const real *x, const real *obar,
                           real *grad, real *xbar);
/* mgr_graph_backward for the gradients alone: the inner nodes' adjoints
   live in the few shared buffers of the adjoint tangents (the file
   comment of graph_exec.c) instead of one buffer per node, so that a
   gradient pass over a large chunk touches a fraction of the workspace.
   ws->adj is left as it was: a mgr_graph_tangent_backward cannot follow
   (use mgr_graph_backward or mgr_graph_backward_rop there). */
void R(mgr_graph_backward_grad)(const mgr_graph *g, R(mgr_graph_ws) *ws, size_t rows,
                                const real *theta, const real *x, const real *obar,
                                real *grad, real *xbar);
/* The backward pass as the R-op needs it: with the direction u covering every
   parameter and xdot = NULL, compute only the node adjoints that
   mgr_graph_tangent_backward (with hu, and with xbardot iff want_xbardot)
   will read, and no parameter gradients.  For an MLP with ReLU this is just
   the adjoint of the last layer's output: no GEMM of the input-side layers;
   for a conv net every adjoint before the first op whose input is an inner
   node (the stem's).  Each op's rule: op.h, mgr_ybar_reads; a graph with an
   op that answers MGR_YBAR_ALL (none today) gets the full adjoint pass,
   still without parameter gradients. */
void R(mgr_graph_backward_rop)(const mgr_graph *g, R(mgr_graph_ws) *ws, size_t rows,
                               const real *theta, const real *x, const real *obar,
                               int want_xbardot);
/* u [P] (NULL = 0), xdot [rows, input size] (NULL = 0).  Output tangent:
   ws->tan[g->num_nodes - 1]. */
void R(mgr_graph_tangent)(const mgr_graph *g, R(mgr_graph_ws) *ws, size_t rows,
                          const real *theta, const real *u, const real *x,
                          const real *xdot);
/* obardot: tangent of the loss adjoint.  hu[P] += (θ̄)˙ (NULL: not wanted);
   xbardot += (x̄)˙ (NULL: not wanted). */
void R(mgr_graph_tangent_backward)(const mgr_graph *g, R(mgr_graph_ws) *ws,
                                   size_t rows, const real *theta, const real *u,
                                   const real *x, const real *xdot,
                                   const real *obardot, real *hu, real *xbardot);

/* The loss on a batch: ℓ_i per example, L = scale Σ_i w_i ℓ_i. */
typedef struct R(mgr_loss_batch) {
    mgrad_loss kind;
    size_t rows, classes;       /* classes = output size */
    double smoothing;           /* label smoothing α (cross-entropy) */
    const int32_t *labels;      /* [rows] class labels, used when targets is NULL */
    const real *targets;        /* [rows, classes] soft labels / regression targets */
    const real *weights;        /* [rows] w_i; NULL = 1 */
    real scale;                 /* e.g. 1/B */
    /* MGRAD_LOSS_NEXT_TOKEN: the output is [positions, classes / positions]
       per row; the target of position p is tokens[i * token_stride + p + 1]
       (the chunk's inputs). */
    size_t positions, token_stride;
    const real *tokens;
} R(mgr_loss_batch);

/* Per-example losses ell[rows] (unweighted) and, for cross-entropy, the
   softmax prob[rows, classes] kept for the other passes.  Returns
   scale Σ w_i ℓ_i, accumulated in double. */
double R(mgr_loss_forward)(const R(mgr_loss_batch) *lb, const real *o, real *prob,
                           real *ell);
/* obar[rows, classes] = scale w_i ∂ℓ_i/∂o_i  (overwritten). */
void R(mgr_loss_backward)(const R(mgr_loss_batch) *lb, const real *o,
                          const real *prob, real *obar);
/* elldot[rows] = ⟨∂ℓ_i/∂o_i, ȯ_i⟩  (unweighted; overwritten). */
void R(mgr_loss_tangent)(const R(mgr_loss_batch) *lb, const real *o,
                         const real *prob, const real *odot, real *elldot);
/* obardot[rows, classes] = tangent of obar along ȯ  (overwritten). */
void R(mgr_loss_tangent_backward)(const R(mgr_loss_batch) *lb, const real *o,
                                  const real *prob, const real *odot,
                                  real *obardot);

#endif /* MGRAD_GRAPH_EXEC_H */
