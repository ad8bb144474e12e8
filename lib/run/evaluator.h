/*
 * evaluator.h - the chunk evaluator (typed; defined in engine.c): the one
 * piece of code that turns rows of a dataset into a loss, its gradient and
 * its R-op along u.  Training, the reverse pass, the dataset passes
 * (validation loss, evaluation, per-example losses) and the H u sessions of
 * hessian.c all evaluate chunks through it.
 *
 * It owns the gathered buffers of one chunk (inputs, targets, labels,
 * weights, and what the loss passes write) and the *model seam*: the three
 * things asked of a model on a gathered chunk (value and gradient, R-op,
 * outputs).  The seam is chosen once, when the evaluator is created: the
 * built-in graph (graph_exec.h with the loss) or the caller's callbacks
 * (callback.c); nothing else branches on the model kind.
 */
#ifndef MGRAD_RUN_EVALUATOR_H
#define MGRAD_RUN_EVALUATOR_H

#include <stdbool.h>

#include "graph/graph_exec.h"
#include "run/run_internal.h"

/* A set of rows of one dataset entering a loss with weights and a scale. */
typedef struct R(mgr_chunk) {
    const mgrad_dataset *ds;
    const int64_t *rows;        /* dataset rows */
    size_t count;
    real scale;
    const mgrad_meta *wmeta;    /* weights from this meta's value, else the set's */
    bool train_rows;            /* rows of the training set: INPUTS and
                                   SOFT_LABELS metaparameters apply */
    bool is_batch;              /* the training batch B_t of the step */
    size_t row0;                /* scale-out: position of rows[0] in the whole chunk */
} R(mgr_chunk);

/* How far a value pass goes after the forward pass and the loss. */
typedef enum mgr_backward {
    MGR_BACKWARD_NONE = 0,      /* forward and loss only */
    MGR_BACKWARD_FOR_ROP,       /* the node adjoints the R-op pass reads; no
                                   parameter gradient */
    MGR_BACKWARD_GRAD,          /* grad += the chunk's gradient; the node
                                   adjoints are not kept (graph models:
                                   mgr_graph_backward_grad) */
    MGR_BACKWARD_GRAD_FOR_ROP   /* both: grad += the chunk's gradient, and the
                                   node adjoints kept for the R-op pass */
} mgr_backward;

/* The forward memo of one checkpoint slot for the batch of one step
   (docs/checkpointing.md): read `in` when the slot already holds the step's
   node values, else fill `out`; both NULL: no memo. */
typedef struct R(mgr_memo_use) {
    const real *in;
    real *out;
} R(mgr_memo_use);

typedef struct R(mgr_eval) R(mgr_eval);

/* The model seam. */
typedef struct R(mgr_model_seam) {
    /* Forward (and backward as `bw` says) of the gathered chunk at theta:
       *loss = scale Σ w_i ℓ_i, ev->ell = ℓ_i; leaves what rop needs. */
    mgrad_status (*value_grad)(const mgrad_run *run, R(mgr_eval) *ev, const R(mgr_chunk) *c,
                               const real *theta, mgr_backward bw, real *grad,
                               R(mgr_memo_use) memo, double *loss);
    /* The R-op along u on the chunk last passed to value_grad (for a model
       that evaluates the R-op itself, rop_needs_value_pass is false):
       ev->elldot = ℓ̇_i; unless all_zero, hu += H u and xbardot (may be
       NULL) = (x̄_i)˙.  *odot = ȯ [rows, classes], NULL when the model does
       not expose it. */
    mgrad_status (*rop)(const mgrad_run *run, R(mgr_eval) *ev, const R(mgr_chunk) *c,
                        const real *theta, const real *u, bool all_zero, real *hu,
                        real *xbardot, const real **odot);
    /* The outputs [rows, classes] of the chunk last evaluated; NULL when the
       model gives none. */
    mgrad_status (*outputs)(const mgrad_run *run, R(mgr_eval) *ev, const R(mgr_chunk) *c,
                            const real *theta, const real **out);
    bool rop_needs_value_pass;  /* rop reads what value_grad left */
} R(mgr_model_seam);

struct R(mgr_eval) {
    const R(mgr_model_seam) *seam;
    R(mgr_graph_ws) *ws;  /* graph models; NULL for callbacks */
    size_t max_rows;      /* mgr_run_chunk_rows */
    size_t features, classes;
    real *x;              /* [max_rows, F] gathered inputs */
    real *xbardot;        /* [max_rows, F] tangent of the input adjoints */
    real *targets;        /* [max_rows, C] */
    int32_t *labels;      /* [max_rows] */
    real *w;              /* [max_rows] */
    int64_t *rows;        /* [max_rows] dataset rows of the chunk */
    int64_t *ids;         /* [max_rows] the rows of a pool or dataset chunk */
    real *prob, *obar, *obardot; /* [max_rows, C] */
    real *ell, *elldot;   /* [max_rows] */
    const char *site;     /* where the seam is called, for callback failures */
    mgrad_callback_phase site_phase; /* the same, for the callbacks (callback.h) */
    int64_t site_step;    /* its step, or -1 */
};

/* Buffers for chunks of up to mgr_run_chunk_rows(&run->config) rows, and the seam of
   the run's model.  A graph workspace starts in evaluation mode (dropout
   off), with room for the R-op's passes on rop_rows rows (the batch for the
   engine, whole chunks for H u sessions; mgr_graph_ws_reserve_rop grows it). */
mgrad_status R(mgr_eval_create)(mgrad_run *run, size_t rop_rows, R(mgr_eval) **out);
void R(mgr_eval_destroy)(mgrad_run *run, R(mgr_eval) *ev); /* accepts NULL */

/* The rows [start, start + max_rows) of `ds` that this rank evaluates, as
   a chunk with `scale` and the set's own weights, in ev->ids (count 0: an
   empty share).  train_rows: INPUTS and SOFT_LABELS apply. */
R(mgr_chunk) R(mgr_eval_dataset_chunk)(const mgrad_run *run, R(mgr_eval) *ev,
                                       const mgrad_dataset *ds, int64_t start, real scale,
                                       bool train_rows);

/* Gather the chunk's inputs, targets and weights; true when every weight is
   zero (the chunk adds nothing to g or H u). */
bool R(mgr_eval_gather)(const mgrad_run *run, R(mgr_eval) *ev, const R(mgr_chunk) *c);

#endif
