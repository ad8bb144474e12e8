/*
 * engine.c - the trajectory (typed): the chunk evaluator (evaluator.h), the
 * step function, the driver that executes a checkpoint schedule, and the
 * reverse pass.
 *
 * Training step t (docs/architecture.md, "The training step and the reverse
 * step"): the loss L_t is a sum of chunks,
 * each a set of rows of one dataset with weights and a scale:
 *     the batch B_t of the training set, weights w (DATA_WEIGHTS meta in its
 *     window, else the set's weights), scale 1/B;
 *     every POOL_WEIGHTS meta with k = t: its pool, weights z, scale 1/B.
 * g = Σ_chunks ∇(scale Σ w_i ℓ_i); then the optimizer steps.
 *
 * Reverse of step t (the same section; optimizer rules: docs/optimizers.md), with
 * s_t current and the adjoint of s_{t+1} in state_bar:
 *     1. recompute g at θ_t (forward + backward of every chunk); for SGD
 *        without Nesterov only the forward and the node adjoints, not the
 *        parameter gradients: the optimizer takes m_{t+1} from s_{t+1}
 *        instead (mgr_optim_reverse_needs_grad), kept in next_m;
 *     2. optimizer reverse_pre: u = ḡ, buffer adjoints, hyper adjoints;
 *     3. per chunk, one R-op pass along u: tangent + tangent-of-backward give
 *        H u, ℓ̇_i (data and pool weights), (x̄_i)˙ (inputs) and ȯ_i (soft
 *        labels); the batch chunk's forward values are still in the
 *        workspace from step 1, so it is not recomputed;
 *     4. optimizer reverse_post: θ̄_t += H u (+ λ u).
 *
 * Forward memo (docs/architecture.md): a step that starts from the state
 * of a checkpoint slot (just saved or restored) stores the batch's
 * GEMM-computed node values in that slot's memo, and a later step starting
 * from the same saved state, in an advance or a reverse, copies them back
 * instead of multiplying again.  Same θ, same rows, same code: same bits.
 * The driver passes the slot to the step; the step hands the memo to the
 * batch chunk's value pass.
 */
#include <string.h>

#include "base/pool.h"
#include "base/rng.h"
#include "optim/optim.h"
#include "run/evaluator.h"

typedef R(mgr_chunk) chunk;
typedef R(mgr_memo_use) memo_use;
typedef R(mgr_eval) evaluator;

enum { NO_SLOT = -1 };

/* The trajectory: optimizer states and their adjoints, the batches, the
   store and the schedule, and where the driver stands. */
typedef struct engine {
    evaluator *ev;
    real *state;          /* [S] current optimizer state */
    real *state_bar;      /* [S] its adjoint during the reverse */
    real *theta_T;        /* [P] */
    real *grad, *u, *hu;  /* [P] */
    real *buf_T;          /* [P] the momentum buffer of s_T (SGD, when the
                             reverse does not recompute g; else unused) */
    real *grad_T;         /* [P] ∇φ(θ_T) from the forward phase, when have_grad_T */
    bool have_grad_T;
    real *next_m;         /* [P] in the reverse of step t: m_{t+1} of s_{t+1} */
    bool reverse_grad;    /* the reverse recomputes g (mgr_optim_reverse_needs_grad) */
    int64_t *batch_rows;  /* [B] rows of a shuffled batch */
    int64_t *perm;        /* [N] permutation of epoch perm_epoch */
    int64_t perm_epoch;
    mgr_store *store;
    mgr_schedule *sched;
    int64_t cur;          /* step of the current state */
    int64_t cur_slot;     /* the slot the current state was saved to or
                             restored from; NO_SLOT once it has advanced */
    int64_t memo_hits;    /* forward passes served from a memo */
    int64_t next_rev;     /* next step to reverse */
    bool in_reverse;      /* the forward phase is done (s_T reached) */
    double hyper_wd, hyper_mom, hyper_beta2; /* accumulated hyper adjoints */
    double phi_early;     /* the forward phase: Σ ψ(θ_t)/K over the last K
                             states before θ_T (output.last_k > 1) */
} engine;

#define E(run) ((engine *)(run)->traj.engine)

/* ==== the chunk evaluator (evaluator.h) ================================== */

static void gather_row(const mgrad_run *run, evaluator *ev, const chunk *c, size_t r)
{
    const mgrad_dataset *ds = c->ds;
    size_t F = ev->features, C = ev->classes;
    int64_t i = c->rows[r];
    ev->rows[r] = i;
    if (c->train_rows && run->metas.input_meta != NULL && run->metas.input_meta[i] >= 0) {
        const mgrad_meta *m = run->metas.all[run->metas.input_meta[i]];
        memcpy(ev->x + r * F, (const real *)m->value + (size_t)run->metas.input_row[i] * F,
               F * sizeof(real));
    } else {
        mgr_dataset_copy_row(ds, i, ev->x + r * F);
    }
    const real *mw = c->wmeta != NULL ? c->wmeta->value : NULL;
    const real *dsw = ds->weights;
    ev->w[r] = mw != NULL ? mw[i] : (dsw != NULL ? dsw[i] : (real)1);
    const mgrad_meta *soft = c->train_rows ? run->metas.soft : NULL;
    if (soft != NULL)
        memcpy(ev->targets + r * C, (const real *)soft->value + (size_t)i * C,
               C * sizeof(real));
    else if (ds->targets != NULL && run->config.opts.loss == MGRAD_LOSS_SQUARED_ERROR)
        memcpy(ev->targets + r * C, (const real *)ds->targets + (size_t)i * C,
               C * sizeof(real));
    if (ds->labels != NULL) ev->labels[r] = ds->labels[i];
}

typedef struct gather_job {
    const mgrad_run *run;
    evaluator *ev;
    const chunk *c;
} gather_job;

/* Rows [lo, hi) of a chunk: each row is copied alone, so the rows are
   shared out among the context's threads with the same result. */
static void gather_rows(void *arg, size_t lo, size_t hi)
{
    const gather_job *j = arg;
    enum { AHEAD = 2 }; /* rows prefetched ahead of the one copied */
    for (size_t r = lo; r < lo + AHEAD && r < hi; r++)
        mgr_dataset_prefetch_row(j->c->ds, j->c->rows[r]);
    for (size_t r = lo; r < hi; r++) {
        if (r + AHEAD < hi) mgr_dataset_prefetch_row(j->c->ds, j->c->rows[r + AHEAD]);
        gather_row(j->run, j->ev, j->c, r);
    }
}

bool R(mgr_eval_gather)(const mgrad_run *run, evaluator *ev, const chunk *c)
{
    gather_job j = {run, ev, c};
    mgr_pool_items(mgr_context_pool(run->ctx), c->count, 2.0 * (double)ev->features,
                   gather_rows, &j);
    bool all_zero = true;
    for (size_t r = 0; r < c->count; r++)
        if (ev->w[r] != 0) all_zero = false;
    return all_zero;
}

chunk R(mgr_eval_dataset_chunk)(const mgrad_run *run, evaluator *ev, const mgrad_dataset *ds,
                                int64_t start, real scale, bool train_rows)
{
    int64_t count = ds->n - start;
    if (count > (int64_t)ev->max_rows) count = (int64_t)ev->max_rows;
    size_t lo = 0, hi = 0;
    mgr_shard(run, (size_t)count, &lo, &hi);
    for (size_t r = lo; r < hi; r++) ev->ids[r - lo] = start + (int64_t)r;
    return (chunk){.ds = ds, .rows = ev->ids, .count = hi - lo, .scale = scale,
                   .train_rows = train_rows, .row0 = lo};
}

/* ---- the graph seam ---------------------------------------------------- */

static R(mgr_loss_batch) loss_of(const mgrad_run *run, const evaluator *ev, const chunk *c)
{
    bool soft = c->train_rows && run->metas.soft != NULL;
    return (R(mgr_loss_batch)){
        .kind = run->config.opts.loss,
        .rows = c->count,
        .classes = ev->classes,
        .smoothing = run->config.opts.label_smoothing,
        .labels = ev->labels,
        .targets = (soft || run->config.opts.loss == MGRAD_LOSS_SQUARED_ERROR) ? ev->targets
                                                                               : NULL,
        .weights = ev->w,
        .scale = c->scale,
        /* next token: the targets are the chunk's own input tokens */
        .positions = (size_t)mgr_graph_output(&run->model.graph)->positions,
        .token_stride = ev->features,
        .tokens = ev->x,
    };
}

static mgrad_status graph_value_grad(const mgrad_run *run, evaluator *ev, const chunk *c,
                                     const real *theta, mgr_backward bw, real *grad,
                                     memo_use memo, double *loss)
{
    const mgr_graph *g = &run->model.graph;
    if (bw == MGR_BACKWARD_FOR_ROP || bw == MGR_BACKWARD_GRAD_FOR_ROP)
        MGRAD_FORWARD(R(mgr_graph_ws_reserve_rop)(run->ctx, g, ev->ws, c->count));
    ev->ws->row0 = (int64_t)c->row0; /* dropout masks of the whole chunk's rows */
    R(mgr_graph_forward_memo)(g, ev->ws, c->count, theta, ev->x, memo.in, memo.out);
    const real *o = ev->ws->val[g->num_nodes - 1];
    R(mgr_loss_batch) lb = loss_of(run, ev, c);
    *loss = R(mgr_loss_forward)(&lb, o, ev->prob, ev->ell);
    if (bw == MGR_BACKWARD_NONE) return MGRAD_OK;
    R(mgr_loss_backward)(&lb, o, ev->prob, ev->obar);
    if (bw == MGR_BACKWARD_GRAD)
        R(mgr_graph_backward_grad)(g, ev->ws, c->count, theta, ev->x, ev->obar, grad, NULL);
    else if (bw == MGR_BACKWARD_GRAD_FOR_ROP)
        R(mgr_graph_backward)(g, ev->ws, c->count, theta, ev->x, ev->obar, grad, NULL);
    else /* only what the R-op pass along u reads (input adjoints: input metas) */
        R(mgr_graph_backward_rop)(g, ev->ws, c->count, theta, ev->x, ev->obar,
                                  c->train_rows && run->metas.input_meta != NULL);
    return MGRAD_OK;
}

static mgrad_status graph_rop(const mgrad_run *run, evaluator *ev, const chunk *c,
                              const real *theta, const real *u, bool all_zero, real *hu,
                              real *xbardot, const real **odot_out)
{
    const mgr_graph *g = &run->model.graph;
    size_t rows = c->count;
    /* A no-op: the workspace holds the R-op's chunks (mgr_eval_create,
       train_body); kept so that a chunk it does not hold fails cleanly. */
    MGRAD_FORWARD(R(mgr_graph_ws_reserve_rop)(run->ctx, g, ev->ws, rows));
    ev->ws->row0 = (int64_t)c->row0;
    R(mgr_graph_tangent)(g, ev->ws, rows, theta, u, ev->x, NULL);
    const real *o = ev->ws->val[g->num_nodes - 1];
    const real *odot = ev->ws->tan[g->num_nodes - 1];
    R(mgr_loss_batch) lb = loss_of(run, ev, c);
    R(mgr_loss_tangent)(&lb, o, ev->prob, odot, ev->elldot);
    if (!all_zero) {
        R(mgr_loss_tangent_backward)(&lb, o, ev->prob, odot, ev->obardot);
        if (xbardot != NULL) R(mgr_zero)(rows * ev->features, xbardot);
        R(mgr_graph_tangent_backward)(g, ev->ws, rows, theta, u, ev->x, NULL, ev->obardot,
                                      hu, xbardot);
    }
    *odot_out = odot;
    return MGRAD_OK;
}

static mgrad_status graph_outputs(const mgrad_run *run, evaluator *ev, const chunk *c,
                                  const real *theta, const real **out)
{
    (void)c;
    (void)theta;
    *out = ev->ws->val[run->model.graph.num_nodes - 1];
    return MGRAD_OK;
}

static const R(mgr_model_seam) graph_seam = {
    .value_grad = graph_value_grad,
    .rop = graph_rop,
    .outputs = graph_outputs,
    .rop_needs_value_pass = true,
};

/* ---- the callback seam (callback.c) ------------------------------------ */

static mgr_cb_chunk cb_chunk(const mgrad_run *run, const evaluator *ev, const chunk *c)
{
    return (mgr_cb_chunk){
        .rows = c->count,
        .x = ev->x,
        .labels = run->config.opts.loss == MGRAD_LOSS_CROSS_ENTROPY ? ev->labels : NULL,
        .targets = run->config.opts.loss == MGRAD_LOSS_SQUARED_ERROR ? ev->targets : NULL,
        .w = ev->w,
        .scale = (double)c->scale,
        .site = ev->site,
        .phase = ev->site_phase,
        .step = ev->site_step,
    };
}

static mgrad_status cb_value_grad(const mgrad_run *run, evaluator *ev, const chunk *c,
                                  const real *theta, mgr_backward bw, real *grad,
                                  memo_use memo, double *loss)
{
    (void)memo; /* callback runs have no memo (run.c sizes it for graphs) */
    mgr_cb_chunk k = cb_chunk(run, ev, c);
    bool want = bw == MGR_BACKWARD_GRAD || bw == MGR_BACKWARD_GRAD_FOR_ROP;
    return mgr_cb_value_grad(run, &k, theta, want ? grad : NULL, ev->ell, loss);
}

static mgrad_status cb_rop(const mgrad_run *run, evaluator *ev, const chunk *c,
                           const real *theta, const real *u, bool all_zero, real *hu,
                           real *xbardot, const real **odot_out)
{
    mgr_cb_chunk k = cb_chunk(run, ev, c);
    *odot_out = NULL;
    return mgr_cb_rop(run, &k, theta, u, all_zero ? NULL : hu, ev->elldot,
                      all_zero ? NULL : xbardot);
}

static mgrad_status cb_outputs(const mgrad_run *run, evaluator *ev, const chunk *c,
                               const real *theta, const real **out)
{
    mgr_cb_chunk k = cb_chunk(run, ev, c);
    int have = 0;
    MGRAD_FORWARD(mgr_cb_outputs(run, &k, theta, ev->prob, &have));
    *out = have ? ev->prob : NULL;
    return MGRAD_OK;
}

static const R(mgr_model_seam) callback_seam = {
    .value_grad = cb_value_grad,
    .rop = cb_rop,
    .outputs = cb_outputs,
    .rop_needs_value_pass = false, /* a callback's hvp evaluates the chunk itself */
};

/* ---- evaluator lifetime ------------------------------------------------ */

void R(mgr_eval_destroy)(mgrad_run *run, evaluator *ev)
{
    if (ev == NULL) return;
    mgrad_context *ctx = run->ctx;
    R(mgr_graph_ws_destroy)(ctx, ev->ws);
    void *bufs[] = {ev->x, ev->xbardot, ev->targets, ev->labels, ev->w, ev->rows, ev->ids,
                    ev->prob, ev->obar, ev->obardot, ev->ell, ev->elldot};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) mgr_free(ctx, bufs[i]);
    mgr_free(ctx, ev);
}

mgrad_status R(mgr_eval_create)(mgrad_run *run, size_t rop_rows, evaluator **out)
{
    mgrad_context *ctx = run->ctx;
    evaluator *ev = NULL;
    *out = NULL;
    MGRAD_FORWARD(mgr_alloc_or_fail(ctx, (void **)&ev, 1, sizeof *ev, "a chunk evaluator"));
    size_t rows = mgr_run_chunk_rows(&run->config), C = (size_t)run->model.classes;
    size_t F = (size_t)run->config.train->features;
    ev->seam = run->model.kind == MGR_MODEL_CALLBACK ? &callback_seam : &graph_seam;
    ev->max_rows = rows;
    ev->features = F;
    ev->classes = C;
    ev->site_step = -1;
    struct { void **p; size_t n, size; const char *what; } allocs[] = {
        {(void **)&ev->x, rows * F, sizeof(real), "chunk inputs"},
        {(void **)&ev->xbardot, rows * F, sizeof(real), "input adjoint tangents"},
        {(void **)&ev->targets, rows * C, sizeof(real), "chunk targets"},
        {(void **)&ev->labels, rows, sizeof(int32_t), "chunk labels"},
        {(void **)&ev->w, rows, sizeof(real), "chunk weights"},
        {(void **)&ev->rows, rows, sizeof(int64_t), "chunk rows"},
        {(void **)&ev->ids, rows, sizeof(int64_t), "chunk row indices"},
        {(void **)&ev->prob, rows * C, sizeof(real), "probabilities"},
        {(void **)&ev->obar, rows * C, sizeof(real), "output adjoints"},
        {(void **)&ev->obardot, rows * C, sizeof(real), "output adjoint tangents"},
        {(void **)&ev->ell, rows, sizeof(real), "losses"},
        {(void **)&ev->elldot, rows, sizeof(real), "loss tangents"},
    };
    mgrad_status s = MGRAD_OK;
    for (size_t i = 0; i < sizeof allocs / sizeof allocs[0] && s == MGRAD_OK; i++)
        s = mgr_alloc_or_fail(ctx, allocs[i].p, allocs[i].n, allocs[i].size, allocs[i].what);
    if (s == MGRAD_OK && ev->seam == &graph_seam) {
        s = R(mgr_graph_ws_create_rop)(ctx, &run->model.graph, rows, rop_rows, &ev->ws);
        if (s == MGRAD_OK) {
            ev->ws->seed = ctx->seed; /* dropout masks */
            ev->ws->training = 0;
        }
    }
    if (s != MGRAD_OK) {
        R(mgr_eval_destroy)(run, ev);
        return s;
    }
    *out = ev;
    return MGRAD_OK;
}

/* Dropout's mode and key: masks of step t in training mode, or none. */
static void set_training(evaluator *ev, bool training, int64_t t)
{
    if (ev->ws == NULL) return;
    ev->ws->training = training;
    if (training) ev->ws->step = t;
}

/* ==== the chunks of a step ============================================== */

static void epoch_perm(const mgrad_run *run, engine *e, int64_t epoch)
{
    if (e->perm_epoch == epoch) return;
    int64_t n = run->config.train->n;
    for (int64_t i = 0; i < n; i++) e->perm[i] = i;
    /* Fisher-Yates with counter-based draws: a pure function of
       (shuffle_seed, epoch). */
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)mgr_rng_below(run->shuffle_seed,
                                           MGR_STREAM_SHUFFLE + ((uint64_t)epoch << 8),
                                           (uint64_t)i, (uint64_t)i + 1);
        int64_t tmp = e->perm[i];
        e->perm[i] = e->perm[j];
        e->perm[j] = tmp;
    }
    e->perm_epoch = epoch;
}

/* Rows of batch t: explicit, or cut consecutively from the stream of epoch
   permutations (a batch may straddle two epochs). */
static const int64_t *batch_rows(const mgrad_run *run, engine *e, int64_t t)
{
    int64_t B = run->config.batch;
    if (run->config.batches != NULL) return run->config.batches + t * B;
    int64_t n = run->config.train->n;
    for (int64_t j = 0; j < B; j++) {
        int64_t p = t * B + j;
        epoch_perm(run, e, p / n);
        e->batch_rows[j] = e->perm[p % n];
    }
    return e->batch_rows;
}

static const mgrad_meta *data_weights_at(const mgrad_run *run, int64_t t)
{
    for (int i = 0; i < run->metas.count; i++) {
        const mgrad_meta *m = run->metas.all[i];
        if (m->kind == MGRAD_META_DATA_WEIGHTS && t >= m->step_begin && t < m->step_end)
            return m;
    }
    return NULL;
}

/* The batch B_t: this rank's share of it (scale-out; all of it without a
   communicator). */
static chunk batch_chunk(const mgrad_run *run, engine *e, int64_t t)
{
    size_t lo = 0, hi = 0;
    mgr_shard(run, (size_t)run->config.batch, &lo, &hi);
    return (chunk){.ds = run->config.train, .rows = batch_rows(run, e, t) + lo,
                   .count = hi - lo,
                   .scale = (real)(1.0 / (double)run->config.batch),
                   .wmeta = data_weights_at(run, t), .train_rows = true, .is_batch = true,
                   .row0 = lo};
}

/* Position in the POOL_WEIGHTS chunks of a step. */
typedef struct pool_cursor {
    int meta;        /* index into run->metas */
    int64_t start;   /* first pool row of the next chunk */
} pool_cursor;

/* The next nonempty share of a POOL_WEIGHTS chunk of step t (rows in
   ev->ids); false after the last. */
static bool next_pool_chunk(const mgrad_run *run, evaluator *ev, int64_t t, pool_cursor *pc,
                            chunk *out)
{
    for (; pc->meta < run->metas.count; pc->meta++, pc->start = 0) {
        const mgrad_meta *m = run->metas.all[pc->meta];
        if (m->kind != MGRAD_META_POOL_WEIGHTS || m->step != t) continue;
        while (pc->start < m->pool->n) {
            chunk c = R(mgr_eval_dataset_chunk)(run, ev, m->pool, pc->start,
                                                (real)(1.0 / (double)run->config.batch),
                                                m->pool == run->config.train);
            pc->start += (int64_t)ev->max_rows;
            if (c.count == 0) continue;
            c.wmeta = m;
            *out = c;
            return true;
        }
    }
    return false;
}

/* ==== forward ============================================================ */

/* The forward memo of checkpoint slot `slot` for chunk c of step t: only
   the batch has one (none for NO_SLOT or a slot without memo); read it when
   the slot holds step t's values, else fill it. */
static memo_use memo_for(engine *e, int64_t slot, const chunk *c, int64_t t)
{
    memo_use none = {NULL, NULL};
    if (!c->is_batch || slot == NO_SLOT) return none;
    int64_t held = -1;
    real *memo = mgr_store_memo(e->store, slot, &held);
    if (memo == NULL) return none;
    if (held == t) {
        e->memo_hits++;
        return (memo_use){.in = memo};
    }
    mgr_store_memo_set(e->store, slot, t);
    return (memo_use){.out = memo};
}

/* One chunk of the gradient pass at θ_t = e->state: *loss += its loss; with
   want_grad e->grad += its gradient, else only the node adjoints the R-op
   pass reads (with both, for_rop: the node adjoints kept for it too).  A
   chunk whose weights are all zero adds nothing and is not evaluated
   (*evaluated = false).  memo_slot: the checkpoint slot whose
   forward memo serves this chunk (the batch's), or NO_SLOT. */
static mgrad_status grad_chunk(const mgrad_run *run, engine *e, const chunk *c, int64_t t,
                               bool want_grad, bool for_rop, int64_t memo_slot, double *loss,
                               bool *evaluated)
{
    evaluator *ev = e->ev;
    *evaluated = false;
    if (R(mgr_eval_gather)(run, ev, c)) return MGRAD_OK;
    double l = 0;
    mgr_backward bw = !want_grad ? MGR_BACKWARD_FOR_ROP
                      : for_rop  ? MGR_BACKWARD_GRAD_FOR_ROP
                                 : MGR_BACKWARD_GRAD;
    MGRAD_FORWARD(ev->seam->value_grad(run, ev, c, e->state, bw, e->grad,
                                       memo_for(e, memo_slot, c, t), &l));
    *loss += l;
    *evaluated = true;
    return MGRAD_OK;
}

/* g = ∇L_t(θ_t) into e->grad (want_grad; else only what the R-op pass
   reads) and *loss = L_t.  The batch goes last, so that its passes stay in
   the workspace for the R-op pass (for_rop: the reverse step's, which
   keeps the batch's node adjoints too); *batch_resident says they are there.
   slot: the checkpoint slot θ_t came from (the batch's memo), or NO_SLOT. */
static mgrad_status compute_grad(mgrad_run *run, engine *e, int64_t t, bool want_grad,
                                 bool for_rop, int64_t slot, double *loss,
                                 bool *batch_resident)
{
    evaluator *ev = e->ev;
    size_t P = want_grad ? (size_t)run->model.num_params : 0;
    R(mgr_zero_pool)(mgr_context_pool(run->ctx), P, e->grad);
    *loss = 0;
    *batch_resident = false;
    set_training(ev, true, t);
    mgrad_status s = MGRAD_OK;
    bool evaluated = false;
    chunk c;
    pool_cursor pc = {0, 0};
    while (s == MGRAD_OK && next_pool_chunk(run, ev, t, &pc, &c))
        s = grad_chunk(run, e, &c, t, want_grad, false, NO_SLOT, loss, &evaluated);
    chunk batch = batch_chunk(run, e, t);
    if (s == MGRAD_OK && batch.count > 0) {
        s = grad_chunk(run, e, &batch, t, want_grad, for_rop, slot, loss, &evaluated);
        *batch_resident = s == MGRAD_OK && evaluated;
    }
    return mgr_reduce_sum(run, e->grad, P, loss, 1, s); /* scale-out seam */
}

static mgr_hyper hyper_at(const mgrad_run *run, int64_t t)
{
    const mgrad_run_options *o = &run->config.opts;
    const real *lr = run->metas.lr != NULL ? run->metas.lr->value : NULL;
    const real *wd = run->metas.wd != NULL ? run->metas.wd->value : NULL;
    const real *mom = run->metas.momentum != NULL ? run->metas.momentum->value : NULL;
    const real *beta2 = run->metas.beta2 != NULL ? run->metas.beta2->value : NULL;
    double mom0 = o->optimizer == MGRAD_OPTIMIZER_SGD ? o->momentum : o->beta1;
    mgr_hyper h;
    memset(&h, 0, sizeof h);
    h.kind = o->optimizer;
    h.lr = lr != NULL ? (double)lr[t] : run->config.lr[t];
    h.weight_decay = wd != NULL ? (double)wd[0] : o->weight_decay;
    h.momentum = mom != NULL ? (double)mom[0] : mom0;
    h.beta2 = beta2 != NULL ? (double)beta2[0] : o->beta2;
    h.eps = o->eps;
    h.eps_root = o->eps_root;
    h.nesterov = o->nesterov;
    h.skip_adjoints = (lr == NULL ? MGR_SKIP_LR : 0u) | (mom == NULL ? MGR_SKIP_MOMENTUM : 0u) |
                      (wd == NULL ? MGR_SKIP_WEIGHT_DECAY : 0u) |
                      (beta2 == NULL ? MGR_SKIP_BETA2 : 0u);
    return h;
}

/* s_{t+1} = step(s_t) in e->state; `slot`: the checkpoint slot s_t came
   from (its memo), or NO_SLOT. */
static mgrad_status forward_step(mgrad_run *run, engine *e, int64_t t, int64_t slot)
{
    size_t P = (size_t)run->model.num_params;
    e->ev->site = "training step";
    e->ev->site_phase = MGRAD_CALLBACK_PHASE_TRAIN;
    e->ev->site_step = t;
    double loss = 0;
    bool resident = false;
    MGRAD_FORWARD(compute_grad(run, e, t, true, false, slot, &loss, &resident));
    MGRAD_RETURN_IF(run->ctx, !isfinite(loss), MGRAD_ERR_NONFINITE,
                    "training diverged at step %lld: the batch loss is %g (try a smaller "
                    "learning rate)", (long long)t, loss);
    mgr_hyper h = hyper_at(run, t);
    mgr_pool *pool = mgr_context_pool(run->ctx);
    R(mgr_optim_step)(pool, &h, t, P, e->state, e->grad);
    long long bad = R(mgr_first_nonfinite_pool)(pool, P, e->state);
    MGRAD_RETURN_IF(run->ctx, bad >= 0, MGRAD_ERR_NONFINITE,
                    "training diverged at step %lld: parameter %lld is NaN or Inf after "
                    "the update (learning rate %g too large?)", (long long)t, bad, h.lr);
    return MGRAD_OK;
}

/* ==== reverse ============================================================ */

/* One chunk's R-op pass along e->u at θ_t: H u into e->hu, and the
   metagradients of the chunk's weights, inputs and soft labels.
   resident: the chunk's value pass is still in the workspace. */
static mgrad_status rop_chunk(mgrad_run *run, engine *e, const chunk *c, bool resident)
{
    evaluator *ev = e->ev;
    bool all_zero = false; /* a resident chunk was evaluated, so not all zero */
    if (!resident) {
        all_zero = R(mgr_eval_gather)(run, ev, c);
        double loss = 0;
        if (ev->seam->rop_needs_value_pass)
            MGRAD_FORWARD(ev->seam->value_grad(
                run, ev, c, e->state, all_zero ? MGR_BACKWARD_NONE : MGR_BACKWARD_FOR_ROP,
                NULL, (memo_use){NULL, NULL}, &loss));
    }
    size_t rows = c->count, C = (size_t)run->model.classes, F = ev->features;
    bool want_x = c->train_rows && run->metas.input_meta != NULL && !all_zero;
    const real *odot = NULL;
    MGRAD_FORWARD(ev->seam->rop(run, ev, c, e->state, e->u, all_zero, e->hu,
                                want_x ? ev->xbardot : NULL, &odot));
    /* weights: w̄_i += scale ℓ̇_i */
    if (c->wmeta != NULL) {
        real *wg = c->wmeta->grad;
        for (size_t r = 0; r < rows; r++) wg[ev->rows[r]] += c->scale * ev->elldot[r];
    }
    /* inputs: x̄_i += (x̄_i)˙ */
    if (want_x) {
        for (size_t r = 0; r < rows; r++) {
            int64_t i = ev->rows[r];
            if (run->metas.input_meta[i] < 0) continue;
            const mgrad_meta *m = run->metas.all[run->metas.input_meta[i]];
            R(mgr_axpy)(F, 1, ev->xbardot + r * F,
                        (real *)m->grad + (size_t)run->metas.input_row[i] * F);
        }
    }
    /* soft labels / targets: q̄_i += −scale w_i ȯ_i */
    if (c->train_rows && run->metas.soft != NULL) {
        real *qg = run->metas.soft->grad;
        for (size_t r = 0; r < rows; r++)
            R(mgr_axpy)(C, -c->scale * ev->w[r], odot + r * C, qg + (size_t)ev->rows[r] * C);
    }
    return MGRAD_OK;
}

/* Reverse step t with s_t in e->state (from checkpoint `slot`, or NO_SLOT)
   and the adjoint of s_{t+1} in e->state_bar; leaves that of s_t. */
static mgrad_status reverse_step(mgrad_run *run, engine *e, int64_t t, int64_t slot)
{
    size_t P = (size_t)run->model.num_params;
    evaluator *ev = e->ev;
    ev->site = "the reverse of step";
    ev->site_phase = MGRAD_CALLBACK_PHASE_REVERSE;
    ev->site_step = t;
    /* 1. the gradient pass (batch last) */
    double loss = 0;
    bool resident = false;
    MGRAD_FORWARD(compute_grad(run, e, t, e->reverse_grad, true, slot, &loss, &resident));
    /* 2. the optimizer's part: u = ḡ */
    mgr_hyper h = hyper_at(run, t);
    mgr_hyper_grad hg = {0, 0, 0, 0};
    mgr_pool *pool = mgr_context_pool(run->ctx);
    R(mgr_optim_reverse_pre)(pool, &h, t, P, e->state, e->reverse_grad ? e->grad : NULL,
                             e->next_m, e->state_bar, e->u, &hg);
    if (!e->reverse_grad) /* m_{t+1} of step t-1 */
        R(mgr_copy_pool)(pool, P, e->state + P, e->next_m);
    /* 3. the R-op pass along u (batch first, while resident) */
    R(mgr_zero_pool)(pool, P, e->hu);
    mgrad_status s = MGRAD_OK;
    chunk batch = batch_chunk(run, e, t);
    if (batch.count > 0) s = rop_chunk(run, e, &batch, resident);
    chunk c;
    pool_cursor pc = {0, 0};
    while (s == MGRAD_OK && next_pool_chunk(run, ev, t, &pc, &c)) s = rop_chunk(run, e, &c, false);
    MGRAD_FORWARD(mgr_reduce_sum(run, e->hu, P, NULL, 0, s)); /* scale-out seam */
    /* 4. θ̄_t += H u */
    R(mgr_optim_reverse_post)(pool, &h, P, e->state, e->u, e->hu, e->state_bar, &hg);
    if (run->metas.lr != NULL) ((real *)run->metas.lr->grad)[t] = (real)hg.lr;
    e->hyper_wd += hg.weight_decay;
    e->hyper_mom += hg.momentum;
    e->hyper_beta2 += hg.beta2;
    long long bad = R(mgr_first_nonfinite_pool)(pool, run->config.state_len, e->state_bar);
    if (bad >= 0) {
        /* Adam without eps_root divides by √v̂, whose derivative is unbounded
           where v̂ = 0; otherwise the adjoint grows through products of
           (I − η H) over the steps. */
        bool adam_root = run->config.opts.optimizer != MGRAD_OPTIMIZER_SGD &&
                         run->config.opts.eps_root == 0;
        return mgr_error(run->ctx, MGRAD_ERR_NONFINITE,
                         "the reverse pass diverged at step %lld: an adjoint is NaN or Inf "
                         "(%s)", (long long)t,
                         adam_root ? "Adam's √v̂ has an unbounded derivative at 0: set "
                                     "options.eps_root > 0"
                                   : "the adjoint grows with the learning rate, the "
                                     "curvature and the number of steps: try a smaller "
                                     "learning rate or fewer steps");
    }
    return MGRAD_OK;
}

/* ==== dataset passes ===================================================== */

/* *out = mean weighted loss of `ds` at theta; with grad != NULL (zero on
   entry on a data-parallel run) also += its gradient.  correct (may be NULL)
   counts argmax hits, or becomes -1 when the model gives no outputs.  Each
   rank takes its share of every chunk; one reduction sums the shares. */
static mgrad_status dataset_pass(mgrad_run *run, evaluator *ev, const mgrad_dataset *ds,
                                 const real *theta, real *grad, int64_t *correct,
                                 double *out)
{
    double total = 0, hits = 0, no_outputs = 0;
    size_t C = (size_t)run->model.classes;
    mgrad_status s = MGRAD_OK;
    set_training(ev, false, -1); /* dropout is the identity here */
    mgr_backward bw = grad != NULL ? MGR_BACKWARD_GRAD : MGR_BACKWARD_NONE;
    for (int64_t start = 0; start < ds->n && s == MGRAD_OK; start += (int64_t)ev->max_rows) {
        chunk c = R(mgr_eval_dataset_chunk)(run, ev, ds, start, (real)(1.0 / (double)ds->n),
                                            false);
        if (c.count == 0) continue;
        R(mgr_eval_gather)(run, ev, &c);
        double loss = 0;
        s = ev->seam->value_grad(run, ev, &c, theta, bw, grad, (memo_use){NULL, NULL}, &loss);
        if (s != MGRAD_OK) break;
        total += loss;
        if (correct != NULL && no_outputs == 0 && ds->labels != NULL) {
            const real *o = NULL;
            s = ev->seam->outputs(run, ev, &c, theta, &o);
            if (s != MGRAD_OK) break;
            if (o == NULL) {
                no_outputs = 1;
                continue;
            }
            for (size_t r = 0; r < c.count; r++) {
                size_t best = 0;
                for (size_t j = 1; j < C; j++)
                    if (o[r * C + j] > o[r * C + best]) best = j;
                if ((int32_t)best == ds->labels[c.rows[r]]) hits++;
            }
        }
    }
    double sums[3] = {total, hits, no_outputs};
    MGRAD_FORWARD(mgr_reduce_sum(run, grad, grad != NULL ? (size_t)run->model.num_params : 0,
                                 sums, 3, s)); /* scale-out seam */
    if (correct != NULL) *correct = sums[2] > 0 ? -1 : *correct + (int64_t)sums[1];
    *out = sums[0];
    return MGRAD_OK;
}

/* ==== the output function (run.h, "output functions") =================== */

/* The rows [start, start + max_rows) of term k's selection that this rank
   evaluates, in ev->ids.  For a term over a whole dataset these are the
   chunks of mgr_eval_dataset_chunk. */
static chunk term_chunk(const mgrad_run *run, evaluator *ev, const mgr_output_term *term,
                        int64_t start, real scale)
{
    int64_t count = term->count - start;
    if (count > (int64_t)ev->max_rows) count = (int64_t)ev->max_rows;
    size_t lo = 0, hi = 0;
    mgr_shard(run, (size_t)count, &lo, &hi);
    for (size_t r = lo; r < hi; r++)
        ev->ids[r - lo] = term->rows != NULL ? term->rows[start + (int64_t)r]
                                             : start + (int64_t)r;
    return (chunk){.ds = term->ds, .rows = ev->ids, .count = hi - lo, .scale = scale,
                   .train_rows = false, .row0 = lo};
}

/* A margin chunk (graph models only, output.c): *value = scale Σ w_i m_i
   with m_i = o_{i,y_i} − max_{j≠y_i} o_{i,j}; grad (may be NULL) += its
   gradient, by the graph's backward pass from ō_{i,y_i} = scale w_i,
   ō_{i,j*} = −scale w_i (j* the first largest other output). */
static mgrad_status margin_chunk(const mgrad_run *run, evaluator *ev, const chunk *c,
                                 const real *theta, real *grad, double *value)
{
    double loss = 0;
    MGRAD_FORWARD(ev->seam->value_grad(run, ev, c, theta, MGR_BACKWARD_NONE, NULL,
                                       (memo_use){NULL, NULL}, &loss));
    const real *o = NULL;
    MGRAD_FORWARD(ev->seam->outputs(run, ev, c, theta, &o));
    size_t C = ev->classes;
    double total = 0;
    if (grad != NULL) R(mgr_zero)(c->count * C, ev->obar);
    for (size_t r = 0; r < c->count; r++) {
        const real *orow = o + r * C;
        size_t y = (size_t)ev->labels[r], best = y == 0 ? 1 : 0;
        for (size_t j = 0; j < C; j++)
            if (j != y && orow[j] > orow[best]) best = j;
        real sw = c->scale * ev->w[r];
        total += (double)(sw * (orow[y] - orow[best]));
        if (grad != NULL) {
            ev->obar[r * C + y] = sw;
            ev->obar[r * C + best] = -sw;
        }
    }
    if (grad != NULL)
        R(mgr_graph_backward_grad)(&run->model.graph, ev->ws, c->count, theta, ev->x,
                                   ev->obar, grad, NULL);
    *value = total;
    return MGRAD_OK;
}

/* ψ(θ)/K at theta (state t, for messages) into *value; with grad != NULL
   (zero on entry) also += its gradient.  The terms go in order, each in
   chunks of its rows; one reduction sums the ranks' shares; then the
   caller's function, on every rank. */
static mgrad_status output_pass(mgrad_run *run, engine *e, const real *theta, real *grad,
                                int64_t t, double *value)
{
    const mgr_run_output *out = &run->output;
    evaluator *ev = e->ev;
    size_t P = (size_t)run->model.num_params;
    double K = (double)out->last_k, total = 0;
    mgrad_status s = MGRAD_OK;
    ev->site = grad != NULL ? "the gradient of the output function" : "the output function";
    ev->site_phase = MGRAD_CALLBACK_PHASE_OUTPUT;
    ev->site_step = -1; /* callback.h: the output phase has no step */
    set_training(ev, false, -1); /* dropout is the identity here */
    mgr_backward bw = grad != NULL ? MGR_BACKWARD_GRAD : MGR_BACKWARD_NONE;
    for (int64_t k = 0; k < out->num_terms && s == MGRAD_OK; k++) {
        const mgr_output_term *term = &out->terms[k];
        /* weight 1, K = 1: the scale 1/N of the validation loss */
        real scale = (real)(term->weight / ((double)term->count * K));
        for (int64_t start = 0; start < term->count && s == MGRAD_OK;
             start += (int64_t)ev->max_rows) {
            chunk c = term_chunk(run, ev, term, start, scale);
            if (c.count == 0) continue;
            R(mgr_eval_gather)(run, ev, &c);
            double l = 0;
            s = term->kind == MGRAD_OUTPUT_MARGIN
                    ? margin_chunk(run, ev, &c, theta, grad, &l)
                    : ev->seam->value_grad(run, ev, &c, theta, bw, grad,
                                           (memo_use){NULL, NULL}, &l);
            total += l;
        }
    }
    MGRAD_FORWARD(mgr_reduce_sum(run, grad, grad != NULL ? P : 0, &total, 1, s));
    if (out->fn != NULL) {
        double f = 0;
        int rc = out->fn(theta, (int64_t)P, &f, grad != NULL ? out->fn_grad : NULL,
                         out->user_data);
        MGRAD_RETURN_IF(run->ctx, rc != 0, MGRAD_ERR_CALLBACK,
                        "the caller's output function (mgrad_output.fn) returned %d at "
                        "θ_%lld", rc, (long long)t);
        MGRAD_RETURN_IF(run->ctx, !isfinite(f), MGRAD_ERR_NONFINITE,
                        "the caller's output function (mgrad_output.fn) returned %g at "
                        "θ_%lld", f, (long long)t);
        total += f / K;
        if (grad != NULL) R(mgr_axpy)(P, (real)(1.0 / K), out->fn_grad, grad);
    }
    *value = total;
    return MGRAD_OK;
}

/* Is θ_t one of the states the output averages over, before θ_T? */
static bool early_output_state(const mgrad_run *run, int64_t t)
{
    return t < run->config.steps && t > run->config.steps - run->output.last_k &&
           mgr_run_has_output(&run->output);
}

/* The reverse pass at state t (s_t current, its adjoint in state_bar): a
   state the output averages over adds ∇ψ(θ_t)/K to θ̄_t. */
static mgrad_status output_adjoint(mgrad_run *run, engine *e, int64_t t)
{
    if (!early_output_state(run, t)) return MGRAD_OK;
    size_t P = (size_t)run->model.num_params;
    double value = 0;
    R(mgr_zero_pool)(mgr_context_pool(run->ctx), P, e->grad);
    MGRAD_FORWARD(output_pass(run, e, e->state, e->grad, t, &value));
    R(mgr_axpy)(P, 1, e->grad, e->state_bar);
    return MGRAD_OK;
}

/* ==== the driver ========================================================= */

/* Execute schedule actions: to s_T (the forward phase, !e->in_reverse), or
   to the end (the reverse phase).  The driver tracks which checkpoint slot
   the current state came from and passes it to the step that starts there. */
static mgrad_status drive(mgrad_run *run, engine *e)
{
    for (;;) {
        if (!e->in_reverse && e->cur == run->config.steps) return MGRAD_OK; /* s_T reached */
        mgr_action a;
        if (!mgr_schedule_next(e->sched, &a)) break;
        switch (a.kind) {
        case MGR_ACTION_ADVANCE:
            MGRAD_RETURN_IF(run->ctx, a.count < 1 || e->cur + a.count > run->config.steps,
                            MGRAD_ERR_INTERNAL, "checkpoint schedule advanced past T");
            for (int64_t i = 0; i < a.count; i++) {
                int64_t slot = e->cur_slot; /* only the first step starts from it */
                e->cur_slot = NO_SLOT;
                MGRAD_FORWARD(forward_step(run, e, e->cur, slot));
                e->cur++;
                run->traj.stats.steps_run++;
                if (e->in_reverse) run->traj.stats.steps_recomputed++;
                if (!e->in_reverse && early_output_state(run, e->cur)) {
                    /* the forward phase passes each state once, in order */
                    double v = 0;
                    MGRAD_FORWARD(output_pass(run, e, e->state, NULL, e->cur, &v));
                    e->phi_early += v;
                }
            }
            break;
        case MGR_ACTION_SAVE:
            MGRAD_FORWARD(mgr_store_save(e->store, a.slot, e->cur, e->state));
            e->cur_slot = a.slot;
            break;
        case MGR_ACTION_RESTORE: {
            int64_t step = -1;
            e->cur_slot = NO_SLOT;
            MGRAD_FORWARD(mgr_store_load(e->store, a.slot, &step, e->state));
            e->cur = step;
            e->cur_slot = a.slot;
            break;
        }
        case MGR_ACTION_REVERSE: {
            MGRAD_RETURN_IF(run->ctx, !e->in_reverse || e->cur != e->next_rev,
                            MGRAD_ERR_INTERNAL, "checkpoint schedule reversed step %lld "
                            "with state %lld current", (long long)e->next_rev,
                            (long long)e->cur);
            int64_t slot = e->cur_slot;
            e->cur_slot = NO_SLOT;
            MGRAD_FORWARD(reverse_step(run, e, e->next_rev, slot));
            MGRAD_FORWARD(output_adjoint(run, e, e->next_rev));
            e->next_rev--;
            run->traj.stats.reverse_steps++;
            break;
        }
        }
    }
    MGRAD_RETURN_IF(run->ctx, !e->in_reverse || e->next_rev != -1, MGRAD_ERR_INTERNAL,
                    "checkpoint schedule ended early (next step to reverse: %lld)",
                    (long long)e->next_rev);
    return MGRAD_OK;
}

/* The forward phase: θ0 → s_T through the schedule (adding ψ(θ_t)/K of
   the last K − 1 states before θ_T on the way), then ψ(θ_T)/K. */
static mgrad_status train_body(mgrad_run *run, double *phi, bool grad_T)
{
    engine *e = E(run);
    size_t P = (size_t)run->model.num_params;
    double t0 = mgr_seconds();
    mgr_schedule_reset(e->sched);
    const real *theta0 =
        run->metas.theta0 != NULL ? run->metas.theta0->value : run->model.theta0;
    R(mgr_optim_init_state)(run->config.opts.optimizer, P, theta0, e->state);
    e->cur = 0;
    e->cur_slot = NO_SLOT;
    e->perm_epoch = -1;   /* the shuffle seed may have changed since */
    e->next_rev = run->config.steps - 1;
    e->in_reverse = false;
    run->traj.stats.steps_run = 0;
    run->traj.stats.steps_recomputed = 0;
    run->traj.stats.reverse_steps = 0;
    e->memo_hits = 0;
    e->phi_early = 0;
    e->have_grad_T = false;
    /* A POOL_WEIGHTS pool's R-op runs on whole chunks: make room here, where
       running out of memory fails before anything is computed (the
       reverse, which must not fail halfway, then never allocates). */
    if (e->ev->ws != NULL)
        for (int i = 0; i < run->metas.count; i++)
            if (run->metas.all[i]->kind == MGRAD_META_POOL_WEIGHTS)
                MGRAD_FORWARD(R(mgr_graph_ws_reserve_rop)(run->ctx, &run->model.graph,
                                                           e->ev->ws, e->ev->max_rows));
    MGRAD_FORWARD(drive(run, e));
    R(mgr_copy)(P, e->state, e->theta_T);
    if (!e->reverse_grad) R(mgr_copy)(P, e->state + P, e->buf_T);
    double value = NAN; /* a plain run has no output function */
    if (mgr_run_has_output(&run->output)) {
        /* With grad_T the output's value pass also runs its backward, so
           that the reverse need not evaluate it again (the same bits). */
        if (grad_T) R(mgr_zero_pool)(mgr_context_pool(run->ctx), P, e->grad_T);
        MGRAD_FORWARD(output_pass(run, e, e->theta_T, grad_T ? e->grad_T : NULL,
                                  run->config.steps, &value));
        e->have_grad_T = grad_T;
        value += e->phi_early;
        MGRAD_RETURN_IF(run->ctx, !isfinite(value), MGRAD_ERR_NONFINITE,
                        "the output function is %g at θ_T", value);
    }
    e->in_reverse = true;
    run->traj.stats.seconds_forward = mgr_seconds() - t0;
    run->traj.stats.peak_state_bytes = mgr_store_peak_bytes(e->store);
    run->traj.stats.memo_hits = e->memo_hits;
    if (phi != NULL) *phi = value;
    return MGRAD_OK;
}

/* The reverse phase: θ̄_T = ∇ψ(θ_T)/K (buffer adjoints 0), then the
   reverse steps T−1 … 0 through the schedule, each of the last K − 1
   adding ∇ψ(θ_t)/K to θ̄_t; the metagradients are left in the
   metaparameters. */
static mgrad_status reverse_body(mgrad_run *run)
{
    engine *e = E(run);
    size_t P = (size_t)run->model.num_params;
    double t0 = mgr_seconds();
    for (int i = 0; i < run->metas.count; i++)
        R(mgr_zero)((size_t)run->metas.all[i]->size, run->metas.all[i]->grad);
    e->hyper_wd = e->hyper_mom = e->hyper_beta2 = 0;
    R(mgr_zero)(run->config.state_len, e->state_bar);
    if (!e->reverse_grad) R(mgr_copy)(P, e->buf_T, e->next_m);
    double value = 0;
    /* θ̄_T = ∇ψ(θ_T)/K into the zeroed adjoint: from the forward phase when
       it computed it, else evaluated here */
    if (e->have_grad_T)
        R(mgr_copy)(P, e->grad_T, e->state_bar);
    else
        MGRAD_FORWARD(
            output_pass(run, e, e->theta_T, e->state_bar, run->config.steps, &value));
    MGRAD_FORWARD(drive(run, e));
    if (run->metas.theta0 != NULL) R(mgr_copy)(P, e->state_bar, run->metas.theta0->grad);
    if (run->metas.wd != NULL) ((real *)run->metas.wd->grad)[0] = (real)e->hyper_wd;
    if (run->metas.momentum != NULL)
        ((real *)run->metas.momentum->grad)[0] = (real)e->hyper_mom;
    if (run->metas.beta2 != NULL) ((real *)run->metas.beta2->grad)[0] = (real)e->hyper_beta2;
    run->traj.stats.seconds_reverse = mgr_seconds() - t0;
    uint64_t peak = mgr_store_peak_bytes(e->store);
    if (peak > run->traj.stats.peak_state_bytes) run->traj.stats.peak_state_bytes = peak;
    run->traj.stats.spilled_bytes = (int64_t)mgr_store_spilled_bytes(e->store);
    run->traj.stats.memo_hits = e->memo_hits;
    return MGRAD_OK;
}

/* ==== entry points (run_internal.h) ====================================== */

/* Scale-out: each entry point ends with mgr_reduce_finish, so that a rank's
   local failure reaches every rank (reduce.c). */
static mgrad_status engine_train(mgrad_run *run, double *phi, bool grad_T)
{
    return mgr_reduce_finish(run, train_body(run, phi, grad_T));
}

static mgrad_status engine_reverse(mgrad_run *run)
{
    return mgr_reduce_finish(run, reverse_body(run));
}

static mgrad_status engine_get_params(const mgrad_run *run, void *out)
{
    R(mgr_copy)((size_t)run->model.num_params, E(run)->theta_T, out);
    return MGRAD_OK;
}

static mgrad_status engine_evaluate(mgrad_run *run, const mgrad_dataset *ds, double *loss,
                                    double *accuracy)
{
    engine *e = E(run);
    int64_t correct = 0;
    double l = 0;
    e->ev->site = "mgrad_run_evaluate";
    e->ev->site_phase = MGRAD_CALLBACK_PHASE_EVAL;
    e->ev->site_step = -1;
    MGRAD_FORWARD(mgr_reduce_finish(run, dataset_pass(run, e->ev, ds, e->theta_T, NULL,
                                                      &correct, &l)));
    if (loss != NULL) *loss = l;
    if (accuracy != NULL)
        *accuracy = ds->labels != NULL && correct >= 0 ? (double)correct / (double)ds->n
                                                       : NAN;
    return MGRAD_OK;
}

/* Per-example losses ℓ_i (unweighted) of `ds` at θ_T into out [ds->n]. */
static mgrad_status engine_example_losses(mgrad_run *run, const mgrad_dataset *ds,
                                          void *out)
{
    engine *e = E(run);
    evaluator *ev = e->ev;
    real *dst = out;
    ev->site = "mgrad_run_example_losses";
    ev->site_phase = MGRAD_CALLBACK_PHASE_EVAL;
    ev->site_step = -1;
    set_training(ev, false, -1); /* an evaluation pass: no dropout */
    /* Scale-out: each rank fills its shares, zeros elsewhere; the sum of the
       ranks' vectors is then exact. */
    if (run->comm != NULL) R(mgr_zero)((size_t)ds->n, dst);
    mgrad_status s = MGRAD_OK;
    for (int64_t start = 0; start < ds->n && s == MGRAD_OK; start += (int64_t)ev->max_rows) {
        chunk c = R(mgr_eval_dataset_chunk)(run, ev, ds, start, (real)(1.0 / (double)ds->n),
                                            false);
        if (c.count == 0) continue;
        R(mgr_eval_gather)(run, ev, &c);
        double loss = 0;
        s = ev->seam->value_grad(run, ev, &c, e->theta_T, MGR_BACKWARD_NONE, NULL,
                                 (memo_use){NULL, NULL}, &loss);
        if (s == MGRAD_OK) R(mgr_copy)(c.count, ev->ell, dst + c.rows[0]);
    }
    s = mgr_reduce_sum(run, dst, (size_t)ds->n, NULL, 0, s);
    return mgr_reduce_finish(run, s);
}

static void engine_destroy(mgrad_run *run)
{
    engine *e = E(run);
    if (e == NULL) return;
    mgrad_context *ctx = run->ctx;
    R(mgr_eval_destroy)(run, e->ev);
    mgr_store_destroy(e->store);
    mgr_schedule_destroy(ctx, e->sched);
    mgr_cb_scratch_destroy(run);
    void *bufs[] = {e->state, e->state_bar, e->theta_T, e->grad, e->u, e->hu, e->buf_T,
                    e->grad_T, e->next_m, e->batch_rows, e->perm};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) mgr_free(ctx, bufs[i]);
    mgr_free(ctx, e);
    run->traj.engine = NULL;
}

static mgrad_status engine_create(mgrad_run *run)
{
    mgrad_context *ctx = run->ctx;
    engine *e = NULL;
    MGRAD_FORWARD(mgr_alloc_or_fail(ctx, (void **)&e, 1, sizeof *e, "the run engine"));
    run->traj.engine = e;
    size_t P = (size_t)run->model.num_params, S = run->config.state_len;
    size_t B = (size_t)run->config.batch;
    e->perm_epoch = -1;
    e->cur_slot = NO_SLOT;
    mgr_hyper h0; /* the kind and Nesterov flag are all it reads; fixed per run */
    memset(&h0, 0, sizeof h0);
    h0.kind = run->config.opts.optimizer;
    h0.nesterov = run->config.opts.nesterov;
    e->reverse_grad = mgr_optim_reverse_needs_grad(&h0);
    size_t PM = e->reverse_grad ? 1 : P;
    mgrad_status s = MGRAD_OK;
    struct { void **p; size_t n, size; const char *what; } allocs[] = {
        {(void **)&e->state, S, sizeof(real), "the optimizer state"},
        {(void **)&e->state_bar, S, sizeof(real), "the state adjoint"},
        {(void **)&e->theta_T, P, sizeof(real), "θ_T"},
        {(void **)&e->grad, P, sizeof(real), "the gradient"},
        {(void **)&e->u, P, sizeof(real), "the direction u"},
        {(void **)&e->hu, P, sizeof(real), "H u"},
        {(void **)&e->buf_T, PM, sizeof(real), "the momentum of s_T"},
        {(void **)&e->grad_T, P, sizeof(real), "the output's gradient at θ_T"},
        {(void **)&e->next_m, PM, sizeof(real), "the momentum of s_{t+1}"},
        {(void **)&e->batch_rows, B, sizeof(int64_t), "batch indices"},
        {(void **)&e->perm, (size_t)run->config.train->n, sizeof(int64_t),
         "the epoch permutation"},
    };
    for (size_t i = 0; i < sizeof allocs / sizeof allocs[0] && s == MGRAD_OK; i++)
        s = mgr_alloc_or_fail(ctx, allocs[i].p, allocs[i].n, allocs[i].size, allocs[i].what);
    /* The engine's R-op runs on the batch, and on whole chunks only for a
       POOL_WEIGHTS pool (train_body reserves them): its tangents and node
       adjoints start at B rows. */
    if (s == MGRAD_OK) s = R(mgr_eval_create)(run, (size_t)run->config.batch, &e->ev);
    if (s == MGRAD_OK && run->model.kind == MGR_MODEL_CALLBACK)
        s = mgr_cb_scratch_create(run, mgr_run_chunk_rows(&run->config));
    if (s == MGRAD_OK)
        s = mgr_schedule_create(ctx, run->config.policy, run->config.steps, run->config.slots,
                                run->config.opts.checkpoint_k > 0
                                    ? run->config.opts.checkpoint_k
                                    : 4,
                                &e->sched);
    if (s == MGRAD_OK)
        s = mgr_store_create(ctx, run->config.slots, S * sizeof(real), run->config.memo_bytes,
                             run->config.opts.checkpoint_budget_bytes,
                             run->config.opts.spill_dir, &e->store);
    if (s != MGRAD_OK) engine_destroy(run);
    return s;
}

const mgr_engine_vt R(mgr_engine) = {
    .create = engine_create,
    .destroy = engine_destroy,
    .train = engine_train,
    .reverse = engine_reverse,
    .get_params = engine_get_params,
    .evaluate = engine_evaluate,
    .example_losses = engine_example_losses,
};
