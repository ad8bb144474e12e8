/*
 * run_internal.h - the run and metaparameter objects (internal view), and
 * the typed engine's entry points.
 *
 * run.c / meta.c (untyped) own validation and the public API; engine.c
 * (typed) owns the trajectory: batches, the step function, the driver that
 * executes a checkpoint schedule, and the reverse pass; it evaluates every
 * chunk through the chunk evaluator (evaluator.h), which hessian.c uses
 * too.  The run itself is split into parts with one writer each ("the
 * parts of a run" below; docs/architecture.md).
 */
#ifndef MGRAD_RUN_INTERNAL_H
#define MGRAD_RUN_INTERNAL_H

#include <stdbool.h>

#include "base/base.h"
#include "data/dataset.h"
#include "graph/graph.h"
#include "metagrad/callback.h"
#include "metagrad/meta.h"
#include "store/schedule.h"
#include "store/store.h"

struct mgrad_meta {
    mgrad_run *run;
    mgrad_meta_kind kind;
    int64_t size;          /* number of values */
    int64_t cols;          /* values per row (INPUTS, SOFT_LABELS), else 1 */
    void *value;           /* [size] in the context's dtype */
    void *grad;            /* [size] in the context's dtype */
    int64_t step_begin, step_end;  /* DATA_WEIGHTS window */
    int64_t step;          /* POOL_WEIGHTS step k */
    mgrad_dataset *pool;   /* POOL_WEIGHTS (retained) */
    int64_t *rows;         /* INPUTS: training rows of the value's rows */
};

#define MGR_MAX_METAS 64

/* The model of a run: the built-in graph, or the caller's callbacks
   (callback.c).  Fixed at creation; the chunk evaluator picks its model
   seam from it once (evaluator.h). */
typedef enum mgr_model_kind {
    MGR_MODEL_GRAPH = 0,
    MGR_MODEL_CALLBACK = 1
} mgr_model_kind;

/* Where the run stands: metagradients need a trajectory of the current
   metaparameter values. */
typedef enum mgr_run_phase {
    MGR_PHASE_FRESH = 0,    /* nothing trained, or values changed since */
    MGR_PHASE_TRAINED = 1,  /* forward phase done; schedule paused at s_T */
    MGR_PHASE_REVERSED = 2  /* reverse done; the metaparameters' gradients are
                               valid (and only then) */
} mgr_run_phase;

/* Why a run has no trajectory for its current metaparameters (phase
   FRESH): the calls that need one name the cause in their message. */
typedef enum mgr_stale_cause {
    MGR_STALE_UNTRAINED = 0,     /* never trained */
    MGR_STALE_VALUE_SET,         /* a metaparameter value changed */
    MGR_STALE_META_ADDED,        /* a metaparameter was registered */
    MGR_STALE_SHUFFLE_SEED,      /* the batch order changed */
    MGR_STALE_COMMUNICATOR,      /* the ranks of the run changed */
    MGR_STALE_OUTPUT,            /* the output function changed */
    MGR_STALE_FAILED             /* the last train or reverse failed */
} mgr_stale_cause;

/* ---- the parts of a run --------------------------------------------------
   A run is six parts (the output function: mgr_run_output below), each
   with one writer; the type says which parts a
   function may change.  The model and the configuration are const members,
   so that the compiler refuses every write but two: mgr_run_build fills
   them and run_free releases them (run.c), through a non-const view of the
   same storage; the run is allocated (mgr_alloc), not defined const, so
   that view is well defined.  Their arrays are const too. */

/* The model: the built-in graph or the caller's callbacks, its shape and
   θ0.  Written once by mgr_run_build; read-only afterwards. */
typedef struct mgr_run_model {
    mgr_model_kind kind;      /* which model seam the engine uses (evaluator.h) */
    mgr_graph graph;          /* built-in model; empty for callback runs */
    mgrad_callback_model cb;  /* copy, callback runs; input_shape is cb_shape */
    const int64_t *cb_shape;  /* [cb.ndim] the run's copy of the input shape */
    int64_t features;         /* values per example */
    int64_t classes;          /* output size of the model */
    int64_t num_params;
    const void *theta0;       /* [P] in ctx dtype */
} mgr_run_model;

/* The validated configuration: the data, the options, the schedules and the
   checkpoint policy resolved from them.  Written once by mgr_run_build;
   read-only afterwards. */
typedef struct mgr_run_config {
    mgrad_dataset *train;     /* retained; read-only while the run lives */
    mgrad_dataset *val;       /* retained; the output function's set */
    mgrad_run_options opts;   /* copy; its arrays are NULL (the pointers below
                                 replace them), and its shuffle_seed is the
                                 one at creation: the batch order follows
                                 run->shuffle_seed */
    int64_t steps, batch;
    const int64_t *batches;   /* [T*B] explicit batches, or NULL */
    const double *lr;         /* [T] base schedule */
    mgrad_checkpoint policy;  /* resolved (never AUTO) */
    int64_t slots;
    size_t state_len;         /* reals per optimizer state */
    size_t memo_bytes;        /* per checkpoint slot: the forward memo of the
                                 batch (0: none; engine.c "Forward memo") */
} mgr_run_config;

/* The metaparameter registry.  Registration (mgrad_run_add_meta, meta.c)
   is its only writer; every other file reads it.  The metaparameters' own
   values are written by mgrad_meta_set_value (meta.c) and their gradients
   by the reverse pass (engine.c). */
typedef struct mgr_run_metas {
    int count;
    mgrad_meta *all[MGR_MAX_METAS];  /* in registration order */
    mgrad_meta *lr, *wd, *momentum, *beta2, *theta0, *soft; /* by kind, or NULL */
    int32_t *input_meta;      /* [N]: index into all of the INPUTS meta, or -1 */
    int64_t *input_row;       /* [N]: row within that meta */
} mgr_run_metas;

/* The trajectory and what it is made with.  engine.c writes the engine
   state and the statistics (the engine's train and reverse; mgr_run_build
   fills the statistics' fixed fields); callback.c writes its scratch
   (created and destroyed with the engine).  The phase and stale cause
   change only in run.c: mgrad_run_train and mgrad_run_reverse advance the
   phase, and every change that makes the trajectory stale goes through
   mgr_run_invalidate. */
typedef struct mgr_run_trajectory {
    mgr_run_phase phase;
    mgr_stale_cause stale;    /* why, while phase == MGR_PHASE_FRESH */
    mgrad_run_stats stats;
    void *engine;             /* typed engine state (engine.c) */
    void *cb_scratch;         /* callback.c's buffers (approximate mode) */
} mgr_run_trajectory;

/* One built-in term c_k φ_k of the output function (metagrad/run.h). */
typedef struct mgr_output_term {
    mgrad_output_kind kind;
    mgrad_dataset *ds;        /* retained (output.c), or the run's validation set */
    double weight;            /* c_k */
    const int64_t *rows;      /* [count] the selected rows R, ascending as given;
                                 NULL: all rows 0 … ds->n − 1 */
    int64_t count;            /* |R| */
} mgr_output_term;

/* The output function φ = (1/K) Σ_{t=T−K+1}^{T} ψ(θ_t), ψ = Σ_k c_k φ_k + f.
   Written by mgr_run_build (the default: the validation loss, when there is
   a validation set) and mgrad_run_set_output (output.c, which invalidates
   the trajectory); the engine reads it. */
typedef struct mgr_run_output {
    int64_t num_terms;        /* 0 with fn NULL: a plain run (no φ) */
    const mgr_output_term *terms; /* [num_terms]: &dflt or output.c's array */
    mgr_output_term dflt;     /* the validation loss (mgr_run_build) */
    mgrad_output_fn fn;
    void *user_data;
    int64_t last_k;           /* K >= 1 */
    void *fn_grad;            /* [P] ctx dtype: fn's gradient (fn != NULL) */
    bool owned;               /* terms (and their rows) belong to output.c */
} mgr_run_output;

/* Is there an output function?  (Plain runs have none.) */
static inline bool mgr_run_has_output(const mgr_run_output *o)
{
    return o->num_terms > 0 || o->fn != NULL;
}

/* Free what mgrad_run_set_output allocated (run destruction). */
void mgr_output_free(mgrad_run *run);

struct mgrad_run {
    mgrad_context *ctx;               /* retained */
    const mgr_run_model model;        /* mgr_run_build */
    const mgr_run_config config;      /* mgr_run_build */
    uint64_t shuffle_seed;            /* the batch order: mgr_run_build, then
                                         mgrad_run_set_shuffle_seed (which
                                         invalidates the trajectory) */
    mgr_run_metas metas;              /* meta.c */
    mgr_run_trajectory traj;          /* engine.c, callback.c; phase: run.c */
    mgr_run_output output;            /* mgr_run_build, then output.c (which
                                         invalidates the trajectory) */
    struct mgr_comm *comm;            /* reduce.c: MPI communicator; NULL = one
                                         process (its setter invalidates the
                                         trajectory) */
};

/* Typed engine (engine.c), dispatched by the context's dtype. */
typedef struct mgr_engine_vt {
    mgrad_status (*create)(mgrad_run *run);
    void (*destroy)(mgrad_run *run);
    /* grad_T: also ∇φ(θ_T), which the next reverse starts from instead of
       evaluating the output function again (a run about to be reversed) */
    mgrad_status (*train)(mgrad_run *run, double *phi, bool grad_T);
    mgrad_status (*reverse)(mgrad_run *run);
    mgrad_status (*get_params)(const mgrad_run *run, void *out); /* θ_T in ctx dtype */
    mgrad_status (*evaluate)(mgrad_run *run, const mgrad_dataset *ds, double *loss,
                             double *accuracy);
    /* per-example losses at θ_T into out [ds->n] in ctx dtype */
    mgrad_status (*example_losses)(mgrad_run *run, const mgrad_dataset *ds, void *out);
} mgr_engine_vt;

extern const mgr_engine_vt mgr_engine_f32, mgr_engine_f64;

static inline const mgr_engine_vt *mgr_engine_of(const mgrad_run *run)
{
    return run->ctx->dtype == MGRAD_DTYPE_F32 ? &mgr_engine_f32 : &mgr_engine_f64;
}

/* mgrad_run_train for φ alone: no ∇φ(θ_T) for a reverse (callers that
   train several times to compare values, and reverse at most after a last
   mgrad_run_train: MGD's BEST_ORDERS, the smoothness probe). */
mgrad_status mgr_run_train_value(mgrad_run *run, double *out);

/* The trajectory no longer matches the run: train again. */
void mgr_run_invalidate(mgrad_run *run, mgr_stale_cause why);

/* MGRAD_ERR_ORDER, with a message naming `fn` and why there is no
   trajectory, unless the run has one (phase TRAINED or REVERSED). */
mgrad_status mgr_run_need_trajectory(const mgrad_run *run, const char *fn);

/* Rows per chunk of the evaluation passes and of POOL_WEIGHTS pools:
   max(B, 256).  The engine and the H u sessions size their buffers by it. */
static inline size_t mgr_run_chunk_rows(const mgr_run_config *config)
{
    return config->batch > 256 ? (size_t)config->batch : 256;
}

/* Batch norm normalises each channel over the values of one chunk (rows ×
   spatial positions): with a single value, x̂ = 0, the output is β whatever
   the input, and every gradient through it vanishes.  MGRAD_ERR_INVALID,
   naming `fn` and `what` (e.g. "options.batch_size"), when the graph has
   batch norm and a chunk of `rows` rows would give it one value per
   channel; chunked = 1: a dataset of `rows` rows cut into chunks of
   mgr_run_chunk_rows (the last may hold one row). */
/* The checks of mgrad_run_check_dataset (same context, fit to the model,
   labels or targets, batch-norm chunks), with `fn` and `what` naming the
   call and the set in messages. */
mgrad_status mgr_run_check_data(const mgrad_run *run, const char *fn, const char *what,
                                const mgrad_dataset *ds);

/* The next-token loss (common.h): every value of `ds` ([n, features], the
   set called `name` in messages) is a token id in [0, classes / (features −
   1)).  MGRAD_ERR_INVALID naming the first that is not; MGRAD_ERR_NOMEM. */
mgrad_status mgr_run_check_tokens(mgrad_context *ctx, const char *fn, const mgrad_dataset *ds,
                                  const char *name, int64_t features, int64_t classes);
mgrad_status mgr_run_check_norm_rows(const mgrad_run *run, const char *fn, const char *what,
                                     int64_t rows, int chunked);

/* MGRAD_ERR_INVALID when the learning rate `lr` is negative or not finite
   (message: `fn`, then `where`, e.g. "options.lr_schedule[3]"). */
mgrad_status mgr_check_lr(mgrad_context *ctx, const char *fn, const char *where, double lr);

/* The creation path shared by mgrad_run_create and
   mgrad_run_create_callback (run.c): validates options and data against
   `features` inputs and `classes` outputs, and builds the run.  Exactly one
   of graph / cb is non-NULL; theta0 holds num_params doubles.  fn names the
   public function in messages. */
mgrad_status mgr_run_build(mgrad_run **out, mgrad_context *ctx, const char *fn,
                           const mgr_graph *graph, const mgrad_callback_model *cb,
                           const double *theta0, int64_t num_params, int64_t features,
                           int64_t classes, mgrad_dataset *train,
                           const mgrad_run_options *opts);

/* ---- callback models (callback.c) -----------------------------------------
   The model seam of engine.c calls these for callback runs.  Buffers are in
   the context's dtype.  `site` and `step` say where the call happens, for
   the message of a failing callback; `phase` says it to the callback. */
typedef struct mgr_cb_chunk {
    size_t rows;
    const void *x;           /* [rows, F] */
    const int32_t *labels;   /* [rows] or NULL */
    const void *targets;     /* [rows, C] or NULL */
    const void *w;           /* [rows] */
    double scale;
    const char *site;        /* "training step", "the reverse of step", ... */
    int64_t step;            /* or -1 */
    mgrad_callback_phase phase;
} mgr_cb_chunk;

mgrad_status mgr_cb_scratch_create(mgrad_run *run, size_t max_rows);
void mgr_cb_scratch_destroy(mgrad_run *run);
/* *loss = scale Σ w ℓ; grad (may be NULL) += its gradient; ell [rows] = ℓ_i. */
mgrad_status mgr_cb_value_grad(const mgrad_run *run, const mgr_cb_chunk *c,
                               const void *theta, void *grad, void *ell, double *loss);
/* elldot = ℓ̇_i; hu (may be NULL) += H u; xbardot (may be NULL) = (x̄_i)˙. */
mgrad_status mgr_cb_rop(const mgrad_run *run, const mgr_cb_chunk *c, const void *theta,
                        const void *u, void *hu, void *elldot, void *xbardot);
/* outputs [rows, C]; *have = 0 when the model has no outputs callback. */
mgrad_status mgr_cb_outputs(const mgrad_run *run, const mgr_cb_chunk *c, const void *theta,
                            void *outputs, int *have);
/* MGRAD_ERR_UNSUPPORTED when a callback run cannot serve the kind. */
mgrad_status mgr_cb_check_meta(mgrad_run *run, mgrad_meta_kind kind);

/* ---- scale-out (reduce.c, docs/scale-out.md) -------------------------------
   The one seam between the engine and MPI.  Without a communicator every
   function is the identity of the single-process run, bit for bit.

   Collectives: the engine calls mgr_reduce_sum at the same points on every
   rank (once per forward step, twice per reverse step, once per dataset
   pass) and every engine entry point (train, reverse, evaluate,
   example_losses) ends with mgr_reduce_finish.  A rank that fails locally
   joins exactly one collective with its failure, so the ranks' sequences of
   collectives stay matched and a failure reaches every rank. */

/* This rank's contiguous share [lo, hi) of `count` rows: [r·count/P,
   (r+1)·count/P); [0, count) without a communicator. */
void mgr_shard(const mgrad_run *run, size_t count, size_t *lo, size_t *hi);

/* Sum buf [n] (context dtype) and extra [nextra <= 4] (double) over the
   ranks in a fixed order (binomial tree rooted at rank 0, then broadcast):
   bit-identical on every rank and across repeated runs.  `local` is this
   rank's status so far (a failed rank's buf is not read).  Returns `local`
   when it is a failure; else the status of the first failing rank with a
   message naming it; else MGRAD_OK.  Without a communicator: returns local. */
mgrad_status mgr_reduce_sum(mgrad_run *run, void *buf, size_t n, double *extra,
                            size_t nextra, mgrad_status local);

/* End of an engine entry point: returns s, after one status exchange unless
   a failure was already exchanged in this call. */
mgrad_status mgr_reduce_finish(mgrad_run *run, mgrad_status s);

/* Free the communicator state (run destruction). */
void mgr_comm_free(mgrad_run *run);

#endif
