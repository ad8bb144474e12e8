/*
 * op.h - what an op is (untyped): the list of ops, the op definition and
 * the table that holds one definition per op.
 *
 * Every op lives in one file, ops_<family>.c, which is compiled three times
 * (lib/graph/meson.build): once without MGRAD_REAL_BITS, giving the op's
 * definition below (name, shape and parameter inference, scratch, which
 * adjoints its passes read, initialisation), and once each for f32 and f64,
 * giving its four typed passes (R(mgr_op_passes), graph_exec.h).  The
 * definition points at both pass tables, so this one table lists every op
 * once; the graph code (graph.c, init.c, graph_exec.c) is a driver over it.
 * Adding an op: docs/architecture.md, "Ops".
 */
#ifndef MGRAD_GRAPH_OP_H
#define MGRAD_GRAPH_OP_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "metagrad/model.h"

/*
 * The ops, one line each: X(KIND, name) gives the enum constant MGR_OP_KIND
 * and the definition mgr_op_<name> (defined in the file named on its line).
 * The order fixes the enum's values; append new ops at the end.
 */
#define MGR_OPS(X)                                                          \
    X(DENSE, dense)                     /* ops_dense.c */                   \
    X(TANH, tanh)                       /* ops_activation.c */              \
    X(SIGMOID, sigmoid)                 /* ops_activation.c */              \
    X(RELU, relu)                       /* ops_activation.c */              \
    X(GELU, gelu)                       /* ops_activation.c */              \
    X(SOFTPLUS, softplus)               /* ops_activation.c */              \
    X(SCALE, scale)                     /* ops_linear.c */                  \
    X(ADD, add)                         /* ops_linear.c */                  \
    X(CONV2D, conv2d)                   /* ops_conv.c */                    \
    X(AVG_POOL, avg_pool)               /* ops_pool.c */                    \
    X(MAX_POOL, max_pool)               /* ops_pool.c */                    \
    X(GLOBAL_AVG_POOL, global_avg_pool) /* ops_pool.c */                    \
    X(BATCH_NORM, batch_norm)           /* ops_norm.c */                    \
    X(LAYER_NORM, layer_norm)           /* ops_norm.c */                    \
    X(DROPOUT, dropout)                 /* ops_dropout.c */                 \
    X(FLATTEN, flatten)                 /* ops_linear.c */                  \
    X(TOKEN_EMBEDDING, token_embedding) /* ops_embedding.c */               \
    X(POS_EMBEDDING, pos_embedding)     /* ops_embedding.c */               \
    X(SEQ_DENSE, seq_dense)             /* ops_embedding.c */               \
    X(SEQ_LAYER_NORM, seq_layer_norm)   /* ops_embedding.c */               \
    X(ATTENTION, attention)             /* ops_attention.c */

/* Node 0 is the input (MGR_OP_INPUT, no definition); the ops follow. */
typedef enum mgr_op_kind {
    MGR_OP_INPUT = 0,
#define MGR_OP_ENUM_(kind, name) MGR_OP_##kind,
    MGR_OPS(MGR_OP_ENUM_)
#undef MGR_OP_ENUM_
    MGR_OP_COUNT
} mgr_op_kind;

typedef struct mgr_node mgr_node;
typedef struct mgr_graph mgr_graph;
/* The typed pass tables, R(mgr_op_passes) in graph_exec.h. */
struct mgr_op_passes_f32;
struct mgr_op_passes_f64;

/*
 * Which adjoints an op's passes read, beyond the obvious (backward reads ȳ
 * to give x̄; tangent_backward reads (ȳ)˙).  The question is whether
 * tangent_backward reads the primal adjoint ȳ when run by the R-op (u on
 * every parameter, hu wanted, no input tangent): if no op on a path needs
 * ȳ, the backward pass that precedes the R-op does not compute it
 * (R(mgr_graph_backward_rop), docs/architecture.md).  Every op must answer:
 * 0 is not an answer, and mgr_graph_append refuses an op that gives it.
 */
typedef enum mgr_ybar_reads {
    MGR_YBAR_UNANSWERED = 0,
    /* Never: linear ops and ReLU (f'' = 0), whose second-order terms vanish. */
    MGR_YBAR_NEVER = 1,
    /* Only for (x̄)˙: smooth activations, (x̄)˙ += ȳ f''(x) ẋ. */
    MGR_YBAR_FOR_XBARDOT = 2,
    /* For (x̄)˙ and, when ẋ may be nonzero, for (θ̄)˙: bilinear ops such as
       the dense layer and conv2d, (x̄)˙ += ȳ U and (W̄)˙ += ȳᵀ ẋ; also the
       normalisations, whose ȳ terms feed (x̄)˙ and, through x̂˙, (γ̄)˙. */
    MGR_YBAR_FOR_XBARDOT_OR_XDOT = 3,
    /* Not analysed: the R-op's backward computes every node's adjoint.  No
       op answers it today; it is the safe answer for a new op until a test
       poisons the adjoints a finer one would skip (tests/test_graph.c). */
    MGR_YBAR_ALL = 4
} mgr_ybar_reads;

/* Flags of an op definition. */
enum {
    /* The forward is a GEMM with no other side effect: the forward memo
       keeps its values (graph.h, mgr_node_memoised). */
    MGR_OP_FLAG_MEMOISED = 1,
    /* The op couples the rows of a batch (batch statistics): a rank of a
       data-parallel run cannot compute its share alone. */
    MGR_OP_FLAG_COUPLES_ROWS = 2,
    /* The op reads its input as integer token ids (token embedding): the
       input has no derivative, and node->vocab says how many ids it knows. */
    MGR_OP_FLAG_READS_TOKENS = 4
};

typedef struct mgr_op_def {
    /* The op in messages ("dense layer"). */
    const char *name;
    /* 1, or 2 when the node also reads in1 (residual add). */
    int32_t inputs;
    /* MGR_OP_FLAG_* */
    unsigned flags;
    /* The mgrad_activation value that selects this op in
       mgrad_model_add_activation; 0 for ops that are not activations. */
    int32_t activation;
    /* Shape and parameter inference.  node is the caller's description
       (kind, in0, in1, and the op's own fields: graph.h) with in0 (and in1)
       already checked to exist; validate it, and fill node->ndim, ->shape,
       ->size (and ->padding or ->in1 where the op ignores the caller's)
       and *param_count.  Record a message and change nothing else on
       failure. */
    mgrad_status (*infer)(mgrad_context *ctx, const mgr_graph *g, mgr_node *node,
                          int64_t *param_count);
    /* Elements of scratch the passes of node k need, whatever the number of
       rows (per-row work reuses it); SIZE_MAX when the count overflows.
       NULL: none. */
    size_t (*scratch)(const mgr_graph *g, int32_t k);
    /* Elements of scratch shared by the context's threads during one pass
       (conv2d's per-group weight-gradient partials), beyond the per-thread
       `scratch` above, which the workspace holds once per thread.  NULL:
       none. */
    size_t (*shared_scratch)(const mgr_graph *g, int32_t k);
    /* Doubles the op's forward keeps for the other passes of the same
       chunk, for up to max_rows rows (batch norm's channel means); the
       graph passes run a chunk's forward before its other passes (they read
       its values), so those passes may read what it kept (graph_exec.h,
       mgr_op_args.saved).  SIZE_MAX on overflow; NULL: none. */
    size_t (*saved)(const mgr_graph *g, int32_t k, size_t max_rows);
    /* The answer described at mgr_ybar_reads. */
    mgr_ybar_reads ybar_reads;
    /* θ0 of node k: fill theta[param_offset, + param_count) from seed (a pure
       function of seed, k and the element; init.c).  NULL exactly when the
       op has no parameters. */
    mgrad_status (*init)(mgrad_context *ctx, const mgr_graph *g, int32_t k,
                         uint64_t seed, double *theta);
    /* The four passes (forward, backward, tangent, tangent_backward). */
    const struct mgr_op_passes_f32 *passes_f32;
    const struct mgr_op_passes_f64 *passes_f64;
} mgr_op_def;

/* Each op's definition mgr_op_<name> and its pass tables
   mgr_<name>_passes_f32 / _f64 (defined by its file's typed half). */
#define MGR_OP_DECLARE_(kind, name)                                     \
    extern const mgr_op_def mgr_op_##name;                              \
    extern const struct mgr_op_passes_f32 mgr_##name##_passes_f32;      \
    extern const struct mgr_op_passes_f64 mgr_##name##_passes_f64;
MGR_OPS(MGR_OP_DECLARE_)
#undef MGR_OP_DECLARE_

/* In a definition: the pointers to op `name`'s two pass tables. */
#define MGR_OP_PASSES(name)                                             \
    .passes_f32 = &mgr_##name##_passes_f32, .passes_f64 = &mgr_##name##_passes_f64

/* The table: mgr_op_defs[kind] for kind 1 .. MGR_OP_COUNT - 1 ([0], the
   input, is NULL). */
extern const mgr_op_def *const mgr_op_defs[MGR_OP_COUNT];

static inline const mgr_op_def *mgr_op_def_of(mgr_op_kind kind)
{
    return mgr_op_defs[kind];
}

/* The op's name for messages; "input" for the input, "unknown op" for a
   kind outside the table. */
const char *mgr_op_name(mgr_op_kind kind);

/* ---- helpers for the definitions (graph.c) ------------------------------ */

/* infer for ops whose output has their input's shape (node in0). */
mgrad_status mgr_infer_same_shape(mgrad_context *ctx, const mgr_graph *g, mgr_node *node,
                                  int64_t *param_count);
/* Checks shared by conv2d and the pools: a [C, H, W] input, a kernel,
   stride and padding that make sense, a window that fits in the (padded)
   input.  Computes the output's *oh, *ow. */
mgrad_status mgr_infer_window(mgrad_context *ctx, const mgr_graph *g, const mgr_node *node,
                              int64_t *oh, int64_t *ow);
/* An error unless the model's parameter count plus `count` fits int64. */
mgrad_status mgr_check_param_total(mgrad_context *ctx, const mgr_graph *g,
                                   const mgr_node *node, int64_t count);
/* Set a node's output shape: [c, h, w], or [n]. */
void mgr_node_set_shape3(mgr_node *node, int64_t c, int64_t h, int64_t w);
void mgr_node_set_shape1(mgr_node *node, int64_t n);
/* Whether init is a known mgrad_init value. */
int mgr_init_known(mgrad_init init);

/* ---- helpers for the initialisers (init.c) ------------------------------ */

/* W [rows, cols] row-major then b [rows], from the initialiser `init` of
   node k (the draws of init.c); fan_in = cols. */
mgrad_status mgr_init_weights(mgrad_context *ctx, mgrad_init init, int32_t k, int64_t rows,
                              int64_t cols, int64_t fan_out, uint64_t seed, double *w);

/* γ = 1 then β = 0 (torch's affine normalisation, no draws), for node k's
   parameters [γ | β]: the init of every normalisation op (ops_norm.c). */
mgrad_status mgr_init_gamma_beta(mgrad_context *ctx, const mgr_graph *g, int32_t k,
                                 uint64_t seed, double *theta);

#endif /* MGRAD_GRAPH_OP_H */
