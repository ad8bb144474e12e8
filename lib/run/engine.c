/*
 * engine.c - the trajectory (typed): batches, the step function, the driver
 * that executes a checkpoint schedule, and the reverse pass.
 *
 * Training step t (DESIGN.md section 2): the loss L_t is a sum of chunks,
 * each a set of rows of one dataset with weights and a scale:
 *     the batch B_t of the training set, weights w (DATA_WEIGHTS meta in its
 *     window, else the set's weights), scale 1/B;
 *     every POOL_WEIGHTS meta with k = t: its pool, weights z, scale 1/B.
 * g = Σ_chunks ∇(scale Σ w_i ℓ_i); then the optimizer steps.
 *
 * Reverse of step t (DESIGN.md section 4, DERIVATIONS.md section 1), with
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
 */
#include <string.h>

#include "base/rng.h"
#include "graph/graph_exec.h"
#include "optim/optim.h"
#include "run/run_internal.h"

typedef struct engine {
    R(mgr_graph_ws) *ws;
    size_t max_rows;
    size_t features;
    real *state;          /* [S] current optimizer state */
    real *state_bar;      /* [S] its adjoint during the reverse */
    real *theta_T;        /* [P] */
    real *grad, *u, *hu;  /* [P] */
    real *buf_T;          /* [P] the momentum buffer of s_T (SGD, when the
                             reverse does not recompute g; else unused) */
    real *next_m;         /* [P] in the reverse of step t: m_{t+1} of s_{t+1} */
    int reverse_grad;     /* the reverse recomputes g (mgr_optim_reverse_needs_grad) */
    real *x;              /* [max_rows, F] gathered inputs */
    real *xbardot;        /* [max_rows, F] tangent of the input adjoints */
    real *targets;        /* [max_rows, C] */
    int32_t *labels;      /* [max_rows] */
    real *w;              /* [max_rows] */
    int64_t *rows;        /* [max_rows] dataset rows of the chunk */
    real *prob, *obar, *obardot; /* [max_rows, C] */
    real *ell, *elldot;   /* [max_rows] */
    int64_t *batch_idx;   /* [B] for shuffled batches */
    int64_t *perm;        /* [N] permutation of epoch perm_epoch */
    int64_t perm_epoch;
    mgr_store *store;
    mgr_schedule *sched;
    int64_t cur;          /* step of the current state */
    int64_t cur_slot;     /* the slot the current state was saved to or
                             restored from, -1 once it has advanced */
    int64_t memo_slot;    /* the step being computed starts from this slot's
                             state (-1: from none) ... */
    int64_t memo_t;       /* ... and is step memo_t */
    int64_t memo_hits;    /* forward passes served from a memo */
    int64_t next_rev;     /* next step to reverse */
    int in_reverse;
    int have_pending;
    mgr_action pending;
    double hyper_wd, hyper_mom, hyper_beta2; /* accumulated hyper adjoints */
    const char *site;     /* where the seam is called, for callback failures */
    int64_t site_step;    /* its step, or -1 */
} engine;

/* A set of rows of one dataset entering a loss with weights and a scale. */
typedef struct chunk {
    const mgrad_dataset *ds;
    int is_train;               /* training-set rows: input / label metas apply */
    const int64_t *rows;        /* dataset rows */
    size_t count;
    real scale;
    const mgrad_meta *wmeta;    /* weights from this meta's value, else the set's */
    int is_batch;               /* the training batch B_t of the step */
    size_t row0;                /* scale-out: position of rows[0] in the whole chunk */
} chunk;

#define E(run) ((engine *)(run)->engine)

/* ---- batches ------------------------------------------------------------ */

static void epoch_perm(const mgrad_run *run, engine *e, int64_t epoch)
{
    if (e->perm_epoch == epoch) return;
    int64_t n = run->train->n;
    for (int64_t i = 0; i < n; i++) e->perm[i] = i;
    /* Fisher-Yates with counter-based draws: a pure function of
       (shuffle_seed, epoch). */
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)mgr_rng_below(run->opts.shuffle_seed,
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
    int64_t B = run->batch;
    if (run->batches != NULL) return run->batches + t * B;
    int64_t n = run->train->n;
    for (int64_t j = 0; j < B; j++) {
        int64_t p = t * B + j;
        epoch_perm(run, e, p / n);
        e->batch_idx[j] = e->perm[p % n];
    }
    return e->batch_idx;
}

/* ---- chunks ------------------------------------------------------------- */

static const mgrad_meta *data_weights_at(const mgrad_run *run, int64_t t)
{
    for (int i = 0; i < run->num_metas; i++) {
        const mgrad_meta *m = run->metas[i];
        if (m->kind == MGRAD_META_DATA_WEIGHTS && t >= m->step_begin && t < m->step_end)
            return m;
    }
    return NULL;
}

/* Gather inputs, targets and weights of a chunk into the engine buffers.
   Returns 1 when every weight is zero (the chunk adds nothing to g). */
static int gather(const mgrad_run *run, engine *e, const chunk *c)
{
    const mgrad_dataset *ds = c->ds;
    size_t F = e->features, C = (size_t)run->classes;
    const real *dsw = ds->weights;
    const real *mw = c->wmeta != NULL ? c->wmeta->value : NULL;
    const mgrad_meta *soft = c->is_train ? run->meta_soft : NULL;
    int all_zero = 1;
    enum { AHEAD = 2 }; /* rows prefetched ahead of the one copied */
    for (size_t r = 0; r < AHEAD && r < c->count; r++)
        mgr_dataset_prefetch_row(ds, c->rows[r]);
    for (size_t r = 0; r < c->count; r++) {
        int64_t i = c->rows[r];
        e->rows[r] = i;
        if (r + AHEAD < c->count) mgr_dataset_prefetch_row(ds, c->rows[r + AHEAD]);
        if (c->is_train && run->input_meta != NULL && run->input_meta[i] >= 0) {
            const mgrad_meta *m = run->metas[run->input_meta[i]];
            memcpy(e->x + r * F, (const real *)m->value + (size_t)run->input_row[i] * F,
                   F * sizeof(real));
        } else {
            mgr_dataset_copy_row(ds, i, e->x + r * F);
        }
        e->w[r] = mw != NULL ? mw[i] : (dsw != NULL ? dsw[i] : (real)1);
        if (e->w[r] != 0) all_zero = 0;
        if (soft != NULL)
            memcpy(e->targets + r * C, (const real *)soft->value + (size_t)i * C,
                   C * sizeof(real));
        else if (ds->targets != NULL && run->opts.loss == MGRAD_LOSS_SQUARED_ERROR)
            memcpy(e->targets + r * C, (const real *)ds->targets + (size_t)i * C,
                   C * sizeof(real));
        if (ds->labels != NULL) e->labels[r] = ds->labels[i];
    }
    return all_zero;
}

static R(mgr_loss_batch) loss_of(const mgrad_run *run, const engine *e, const chunk *c)
{
    R(mgr_loss_batch) lb;
    memset(&lb, 0, sizeof lb);
    lb.kind = run->opts.loss;
    lb.rows = c->count;
    lb.classes = (size_t)run->classes;
    lb.smoothing = run->opts.label_smoothing;
    lb.labels = e->labels;
    int soft = c->is_train && run->meta_soft != NULL;
    lb.targets = (soft || run->opts.loss == MGRAD_LOSS_SQUARED_ERROR) ? e->targets : NULL;
    lb.weights = e->w;
    lb.scale = c->scale;
    return lb;
}

/* ---- the model seam -----------------------------------------------------
   Everything the trajectory asks of the model and its loss on a gathered
   chunk (e->x, e->labels, e->targets, e->w) goes through these three
   functions; a model of another kind plugs in here.  Callback models
   (metagrad/callback.h) branch to callback.c. */

static mgr_cb_chunk cb_chunk(const mgrad_run *run, const engine *e, const chunk *c)
{
    mgr_cb_chunk k;
    k.rows = c->count;
    k.x = e->x;
    k.labels = run->opts.loss == MGRAD_LOSS_CROSS_ENTROPY ? e->labels : NULL;
    k.targets = run->opts.loss == MGRAD_LOSS_SQUARED_ERROR ? e->targets : NULL;
    k.w = e->w;
    k.scale = (double)c->scale;
    k.site = e->site;
    k.step = e->site_step;
    return k;
}

/* The forward memo for chunk c: *in when the slot the step starts from
   already holds this step's values, else *out to fill it (both NULL: the
   chunk is not the batch, the step starts from no slot, or the slot has no
   memo). */
static void batch_memo(engine *e, const chunk *c, const real **in, real **out)
{
    *in = NULL;
    *out = NULL;
    if (!c->is_batch || e->memo_slot < 0) return;
    int64_t held = -1;
    real *memo = mgr_store_memo(e->store, e->memo_slot, &held);
    if (memo == NULL) return;
    if (held == e->memo_t) {
        *in = memo;
        e->memo_hits++;
    } else {
        *out = memo;
        mgr_store_memo_set(e->store, e->memo_slot, e->memo_t);
    }
}

/* Forward (and, unless skip_backward, backward into grad += ..., or with
   grad == NULL only the adjoints the R-op pass reads) of one chunk at
   theta.  *loss = the chunk's weighted loss scale Σ w_i ℓ_i; leaves what
   model_rop needs in the workspace. */
static mgrad_status model_value_grad(const mgrad_run *run, engine *e, const chunk *c,
                                     const real *theta, real *grad, int skip_backward,
                                     double *loss)
{
    if (run->is_callback) {
        mgr_cb_chunk k = cb_chunk(run, e, c);
        return mgr_cb_value_grad(run, &k, theta, skip_backward ? NULL : grad, e->ell, loss);
    }
    e->ws->row0 = (int64_t)c->row0; /* dropout masks of the whole chunk's rows */
    const real *memo_in = NULL;
    real *memo_out = NULL;
    batch_memo(e, c, &memo_in, &memo_out);
    R(mgr_graph_forward_memo)(&run->graph, e->ws, c->count, theta, e->x, memo_in, memo_out);
    const real *o = e->ws->val[run->graph.num_nodes - 1];
    R(mgr_loss_batch) lb = loss_of(run, e, c);
    *loss = R(mgr_loss_forward)(&lb, o, e->prob, e->ell);
    if (!skip_backward) {
        R(mgr_loss_backward)(&lb, o, e->prob, e->obar);
        if (grad != NULL)
            R(mgr_graph_backward)(&run->graph, e->ws, c->count, theta, e->x, e->obar, grad,
                                  NULL);
        else /* only what the R-op pass along u reads (input adjoints: input metas) */
            R(mgr_graph_backward_rop)(&run->graph, e->ws, c->count, theta, e->x, e->obar,
                                      c->is_train && run->input_meta != NULL);
    }
    return MGRAD_OK;
}

/* The R-op pass along u on the chunk last passed to model_value_grad:
   e->elldot = ℓ̇_i (unweighted); unless the chunk's weights are all zero
   (then its backward was skipped and adds nothing), hu += H u and, when
   xbardot is not NULL, xbardot = (x̄_i)˙.  *odot = ȯ, the outputs' tangent
   [rows, classes] (NULL for callback models, which do not expose it). */
static mgrad_status model_rop(const mgrad_run *run, engine *e, const chunk *c,
                              const real *theta, const real *u, int all_zero, real *hu,
                              real *xbardot, const real **odot_out)
{
    if (run->is_callback) {
        mgr_cb_chunk k = cb_chunk(run, e, c);
        *odot_out = NULL;
        return mgr_cb_rop(run, &k, theta, u, all_zero ? NULL : hu, e->elldot,
                          all_zero ? NULL : xbardot);
    }
    const mgr_graph *g = &run->graph;
    size_t rows = c->count;
    e->ws->row0 = (int64_t)c->row0;
    R(mgr_graph_tangent)(g, e->ws, rows, theta, u, e->x, NULL);
    const real *o = e->ws->val[g->num_nodes - 1];
    const real *odot = e->ws->tan[g->num_nodes - 1];
    R(mgr_loss_batch) lb = loss_of(run, e, c);
    R(mgr_loss_tangent)(&lb, o, e->prob, odot, e->elldot);
    if (!all_zero) {
        R(mgr_loss_tangent_backward)(&lb, o, e->prob, odot, e->obardot);
        if (xbardot != NULL) R(mgr_zero)(rows * e->features, xbardot);
        R(mgr_graph_tangent_backward)(g, e->ws, rows, theta, u, e->x, NULL, e->obardot, hu,
                                      xbardot);
    }
    *odot_out = odot;
    return MGRAD_OK;
}

/* The model's outputs [rows, classes] for the chunk last evaluated (at
   theta); *out = NULL when a callback model gives no outputs. */
static mgrad_status model_outputs(const mgrad_run *run, engine *e, const chunk *c,
                                  const real *theta, const real **out)
{
    if (run->is_callback) {
        mgr_cb_chunk k = cb_chunk(run, e, c);
        int have = 0;
        MGRAD_FORWARD(mgr_cb_outputs(run, &k, theta, e->prob, &have));
        *out = have ? e->prob : NULL;
        return MGRAD_OK;
    }
    *out = e->ws->val[run->graph.num_nodes - 1];
    return MGRAD_OK;
}

/* Visit the chunks of step t.  The gradient pass visits the batch last and
   the R-op pass visits it first, so that the batch's forward values stay
   resident in the workspace between the two.  fn returns a status. */
typedef mgrad_status (*chunk_fn)(mgrad_run *run, engine *e, const chunk *c, int64_t t,
                                 void *arg);

static mgrad_status for_each_chunk(mgrad_run *run, engine *e, int64_t t, int batch_first,
                                   chunk_fn fn, void *arg)
{
    /* Scale-out: each rank visits its share [lo, hi) of every chunk (all of
       it without a communicator); empty shares are skipped. */
    size_t lo = 0, hi = 0;
    mgr_shard(run, (size_t)run->batch, &lo, &hi);
    chunk batch = {run->train, 1, batch_rows(run, e, t) + lo, hi - lo,
                   (real)(1.0 / (double)run->batch), data_weights_at(run, t), 1, lo};
    if (batch_first && batch.count > 0) MGRAD_FORWARD(fn(run, e, &batch, t, arg));
    for (int i = 0; i < run->num_metas; i++) {
        const mgrad_meta *m = run->metas[i];
        if (m->kind != MGRAD_META_POOL_WEIGHTS || m->step != t) continue;
        const mgrad_dataset *pool = m->pool;
        for (int64_t start = 0; start < pool->n; start += (int64_t)e->max_rows) {
            int64_t count = pool->n - start;
            if (count > (int64_t)e->max_rows) count = (int64_t)e->max_rows;
            size_t plo = 0, phi = 0;
            mgr_shard(run, (size_t)count, &plo, &phi);
            if (phi == plo) continue;
            int64_t *ids = e->batch_idx + run->batch; /* scratch after the batch */
            for (size_t r = plo; r < phi; r++) ids[r - plo] = start + (int64_t)r;
            chunk c = {pool, pool == run->train, ids, phi - plo,
                       (real)(1.0 / (double)run->batch), m, 0, plo};
            MGRAD_FORWARD(fn(run, e, &c, t, arg));
        }
    }
    return batch_first || batch.count == 0 ? MGRAD_OK : fn(run, e, &batch, t, arg);
}

/* ---- forward ------------------------------------------------------------ */

typedef struct grad_acc {
    double loss;
    int batch_resident;   /* the batch chunk's passes are in the workspace */
    int want_grad;        /* accumulate g; else forward + node adjoints only */
} grad_acc;

static mgrad_status grad_chunk(mgrad_run *run, engine *e, const chunk *c, int64_t t,
                               void *arg)
{
    grad_acc *acc = arg;
    (void)t;
    int all_zero = gather(run, e, c);
    acc->batch_resident = 0;
    if (all_zero) return MGRAD_OK;
    double loss = 0;
    MGRAD_FORWARD(model_value_grad(run, e, c, e->state, acc->want_grad ? e->grad : NULL, 0,
                                   &loss));
    acc->loss += loss;
    acc->batch_resident = c->is_batch;
    return MGRAD_OK;
}

/* g = ∇L_t(θ_t) into e->grad; without want_grad only the passes that the
   R-op pass reads (forward values and node adjoints) and the loss. */
static mgrad_status compute_grad(mgrad_run *run, engine *e, int64_t t, int want_grad,
                                 grad_acc *acc)
{
    size_t P = want_grad ? (size_t)run->num_params : 0;
    R(mgr_zero)(P, e->grad);
    acc->loss = 0;
    acc->batch_resident = 0;
    acc->want_grad = want_grad;
    if (e->ws != NULL) { /* dropout's key: masks of step t, in training mode */
        e->ws->step = t;
        e->ws->training = 1;
    }
    mgrad_status s = for_each_chunk(run, e, t, 0, grad_chunk, acc);
    return mgr_reduce_sum(run, e->grad, P, &acc->loss, 1, s); /* scale-out seam */
}

static mgr_hyper hyper_at(const mgrad_run *run, int64_t t)
{
    const mgrad_run_options *o = &run->opts;
    mgr_hyper h;
    memset(&h, 0, sizeof h);
    h.kind = o->optimizer;
    h.lr = run->meta_lr != NULL ? (double)((const real *)run->meta_lr->value)[t] : run->lr[t];
    h.weight_decay = run->meta_wd != NULL ? (double)((const real *)run->meta_wd->value)[0]
                                          : o->weight_decay;
    double mom = o->optimizer == MGRAD_OPTIMIZER_SGD ? o->momentum : o->beta1;
    h.momentum = run->meta_momentum != NULL
                     ? (double)((const real *)run->meta_momentum->value)[0] : mom;
    h.beta2 = run->meta_beta2 != NULL ? (double)((const real *)run->meta_beta2->value)[0]
                                      : o->beta2;
    h.eps = o->eps;
    h.eps_root = o->eps_root;
    h.nesterov = o->nesterov;
    h.skip_adjoints = (run->meta_lr == NULL ? MGR_SKIP_LR : 0u) |
                      (run->meta_momentum == NULL ? MGR_SKIP_MOMENTUM : 0u) |
                      (run->meta_wd == NULL ? MGR_SKIP_WEIGHT_DECAY : 0u) |
                      (run->meta_beta2 == NULL ? MGR_SKIP_BETA2 : 0u);
    return h;
}

static mgrad_status forward_step(mgrad_run *run, engine *e, int64_t t)
{
    size_t P = (size_t)run->num_params;
    grad_acc acc;
    e->site = "training step";
    e->site_step = t;
    MGRAD_FORWARD(compute_grad(run, e, t, 1, &acc));
    MGRAD_RETURN_IF(run->ctx, !isfinite(acc.loss), MGRAD_ERR_NONFINITE,
                    "training diverged at step %lld: the batch loss is %g (try a smaller "
                    "learning rate)", (long long)t, acc.loss);
    mgr_hyper h = hyper_at(run, t);
    R(mgr_optim_step)(&h, t, P, e->state, e->grad);
    long long bad = R(mgr_first_nonfinite)(P, e->state);
    MGRAD_RETURN_IF(run->ctx, bad >= 0, MGRAD_ERR_NONFINITE,
                    "training diverged at step %lld: parameter %lld is NaN or Inf after "
                    "the update (learning rate %g too large?)", (long long)t, bad, h.lr);
    return MGRAD_OK;
}

/* ---- reverse ------------------------------------------------------------ */

typedef struct rop_arg {
    int batch_resident;   /* the batch's passes are still in the workspace */
} rop_arg;

/* One chunk's R-op pass along e->u: H u into e->hu, and the graph-input
   metagradients. */
static mgrad_status rop_chunk(mgrad_run *run, engine *e, const chunk *c, int64_t t,
                              void *arg)
{
    rop_arg *ra = arg;
    (void)t;
    int all_zero;
    if (c->is_batch && ra->batch_resident) {
        all_zero = 0;    /* resident means it was computed, so not all zero */
    } else {
        all_zero = gather(run, e, c);
        double loss = 0;
        /* a callback's hvp evaluates the chunk itself */
        if (!run->is_callback)
            MGRAD_FORWARD(model_value_grad(run, e, c, e->state, NULL, all_zero, &loss));
    }
    size_t rows = c->count, C = (size_t)run->classes, F = e->features;
    int want_x = c->is_train && run->input_meta != NULL && !all_zero;
    const real *odot = NULL;
    MGRAD_FORWARD(model_rop(run, e, c, e->state, e->u, all_zero, e->hu,
                            want_x ? e->xbardot : NULL, &odot));
    /* weights: w̄_i += scale ℓ̇_i */
    if (c->wmeta != NULL) {
        real *wg = c->wmeta->grad;
        for (size_t r = 0; r < rows; r++) wg[e->rows[r]] += c->scale * e->elldot[r];
    }
    /* inputs: x̄_i += (x̄_i)˙ */
    if (want_x) {
        for (size_t r = 0; r < rows; r++) {
            int64_t i = e->rows[r];
            if (run->input_meta[i] < 0) continue;
            const mgrad_meta *m = run->metas[run->input_meta[i]];
            R(mgr_axpy)(F, 1, e->xbardot + r * F,
                        (real *)m->grad + (size_t)run->input_row[i] * F);
        }
    }
    /* soft labels / targets: q̄_i += −scale w_i ȯ_i */
    if (c->is_train && run->meta_soft != NULL) {
        real *qg = run->meta_soft->grad;
        for (size_t r = 0; r < rows; r++)
            R(mgr_axpy)(C, -c->scale * e->w[r], odot + r * C, qg + (size_t)e->rows[r] * C);
    }
    return MGRAD_OK;
}

static mgrad_status reverse_step(mgrad_run *run, engine *e, int64_t t)
{
    size_t P = (size_t)run->num_params;
    grad_acc acc;
    e->site = "the reverse of step";
    e->site_step = t;
    MGRAD_FORWARD(compute_grad(run, e, t, e->reverse_grad, &acc));
    mgr_hyper h = hyper_at(run, t);
    mgr_hyper_grad hg = {0, 0, 0, 0};
    R(mgr_optim_reverse_pre)(&h, t, P, e->state, e->reverse_grad ? e->grad : NULL, e->next_m,
                             e->state_bar, e->u, &hg);
    /* m_t is m_{t+1} of the step reversed next */
    if (!e->reverse_grad) R(mgr_copy)(P, e->state + P, e->next_m);
    R(mgr_zero)(P, e->hu);
    rop_arg ra = {acc.batch_resident};
    mgrad_status s = for_each_chunk(run, e, t, 1, rop_chunk, &ra);
    MGRAD_FORWARD(mgr_reduce_sum(run, e->hu, P, NULL, 0, s)); /* scale-out seam */
    R(mgr_optim_reverse_post)(&h, P, e->state, e->u, e->hu, e->state_bar, &hg);
    if (run->meta_lr != NULL) ((real *)run->meta_lr->grad)[t] = (real)hg.lr;
    e->hyper_wd += hg.weight_decay;
    e->hyper_mom += hg.momentum;
    e->hyper_beta2 += hg.beta2;
    long long bad = R(mgr_first_nonfinite)(run->state_len, e->state_bar);
    if (bad >= 0) {
        /* Adam without eps_root divides by √v̂, whose derivative is unbounded
           where v̂ = 0; otherwise the adjoint grows through products of
           (I − η H) over the steps. */
        int adam_root = run->opts.optimizer != MGRAD_OPTIMIZER_SGD && run->opts.eps_root == 0;
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

/* ---- validation --------------------------------------------------------- */

/* The rows [start, start + max_rows) of `ds` that this rank evaluates, as a
   chunk with scale 1/N and no metaparameters (count 0: an empty share). */
static chunk eval_chunk(const mgrad_run *run, engine *e, const mgrad_dataset *ds,
                        int64_t start)
{
    int64_t count = ds->n - start;
    if (count > (int64_t)e->max_rows) count = (int64_t)e->max_rows;
    size_t lo = 0, hi = 0;
    mgr_shard(run, (size_t)count, &lo, &hi);
    int64_t *ids = e->batch_idx + run->batch;
    for (size_t r = lo; r < hi; r++) ids[r - lo] = start + (int64_t)r;
    chunk c = {ds, 0, ids, hi - lo, (real)(1.0 / (double)ds->n), NULL, 0, lo};
    return c;
}

/* *out = mean weighted loss of `ds` at theta; with grad != NULL (zero on
   entry on a data-parallel run) also += its gradient.  correct (may be NULL)
   counts argmax hits, or becomes -1 when the model gives no outputs.  Each
   rank takes its share of every chunk; one reduction sums the shares. */
static mgrad_status dataset_pass(mgrad_run *run, engine *e, const mgrad_dataset *ds,
                                 const real *theta, real *grad, int64_t *correct,
                                 double *out)
{
    double total = 0, hits = 0, no_outputs = 0;
    size_t C = (size_t)run->classes;
    mgrad_status s = MGRAD_OK;
    if (e->ws != NULL) e->ws->training = 0; /* dropout is the identity here */
    for (int64_t start = 0; start < ds->n && s == MGRAD_OK; start += (int64_t)e->max_rows) {
        chunk c = eval_chunk(run, e, ds, start);
        if (c.count == 0) continue;
        gather(run, e, &c);
        double loss = 0;
        s = model_value_grad(run, e, &c, theta, grad, grad == NULL, &loss);
        if (s != MGRAD_OK) break;
        total += loss;
        if (correct != NULL && no_outputs == 0 && ds->labels != NULL) {
            const real *o = NULL;
            s = model_outputs(run, e, &c, theta, &o);
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
    MGRAD_FORWARD(mgr_reduce_sum(run, grad, grad != NULL ? (size_t)run->num_params : 0, sums,
                                 3, s)); /* scale-out seam */
    if (correct != NULL) *correct = sums[2] > 0 ? -1 : *correct + (int64_t)sums[1];
    *out = sums[0];
    return MGRAD_OK;
}

/* ---- the driver --------------------------------------------------------- */

/* Execute schedule actions.  In the forward phase (!e->in_reverse) stop as
   soon as s_T is current; in the reverse phase run to the end. */
static mgrad_status drive(mgrad_run *run, engine *e)
{
    for (;;) {
        mgr_action a;
        if (e->have_pending) {
            a = e->pending;
            e->have_pending = 0;
        } else if (!mgr_schedule_next(e->sched, &a)) {
            break;
        }
        switch (a.kind) {
        case MGR_ACTION_ADVANCE:
            MGRAD_RETURN_IF(run->ctx, a.count < 1 || e->cur + a.count > run->steps,
                            MGRAD_ERR_INTERNAL, "checkpoint schedule advanced past T");
            for (int64_t i = 0; i < a.count; i++) {
                e->memo_slot = i == 0 ? e->cur_slot : -1;
                e->memo_t = e->cur;
                mgrad_status st = forward_step(run, e, e->cur);
                e->memo_slot = e->cur_slot = -1;
                MGRAD_FORWARD(st);
                e->cur++;
                run->stats.steps_run++;
                if (e->in_reverse) run->stats.steps_recomputed++;
            }
            break;
        case MGR_ACTION_SAVE:
            MGRAD_FORWARD(mgr_store_save(e->store, a.slot, e->cur, e->state));
            e->cur_slot = a.slot;
            break;
        case MGR_ACTION_RESTORE: {
            int64_t step = -1;
            e->cur_slot = -1;
            MGRAD_FORWARD(mgr_store_load(e->store, a.slot, &step, e->state));
            e->cur = step;
            e->cur_slot = a.slot;
            break;
        }
        case MGR_ACTION_REVERSE:
            MGRAD_RETURN_IF(run->ctx, !e->in_reverse || e->cur != e->next_rev,
                            MGRAD_ERR_INTERNAL, "checkpoint schedule reversed step %lld "
                            "with state %lld current", (long long)e->next_rev,
                            (long long)e->cur);
            e->memo_slot = e->cur_slot;
            e->memo_t = e->next_rev;
            mgrad_status st = reverse_step(run, e, e->next_rev);
            e->memo_slot = e->cur_slot = -1;
            MGRAD_FORWARD(st);
            e->next_rev--;
            run->stats.reverse_steps++;
            break;
        }
        if (!e->in_reverse && e->cur == run->steps) return MGRAD_OK;
    }
    MGRAD_RETURN_IF(run->ctx, !e->in_reverse || e->next_rev != -1, MGRAD_ERR_INTERNAL,
                    "checkpoint schedule ended early (next step to reverse: %lld)",
                    (long long)e->next_rev);
    return MGRAD_OK;
}

static mgrad_status train_body(mgrad_run *run, double *phi)
{
    engine *e = E(run);
    size_t P = (size_t)run->num_params;
    double t0 = mgr_seconds();
    mgr_schedule_reset(e->sched);
    const real *theta0 = run->meta_theta0 != NULL ? run->meta_theta0->value : run->theta0;
    R(mgr_optim_init_state)(run->opts.optimizer, P, theta0, e->state);
    e->cur = 0;
    e->cur_slot = e->memo_slot = -1;
    e->perm_epoch = -1;   /* the shuffle seed may have changed since */
    e->next_rev = run->steps - 1;
    e->in_reverse = 0;
    e->have_pending = 0;
    run->stats.steps_run = 0;
    run->stats.steps_recomputed = 0;
    run->stats.reverse_steps = 0;
    e->memo_hits = 0;
    MGRAD_FORWARD(drive(run, e));
    R(mgr_copy)(P, e->state, e->theta_T);
    if (!e->reverse_grad) R(mgr_copy)(P, e->state + P, e->buf_T);
    double value = 0;
    e->site = "the output function";
    e->site_step = -1;
    MGRAD_FORWARD(dataset_pass(run, e, run->val, e->theta_T, NULL, NULL, &value));
    MGRAD_RETURN_IF(run->ctx, !isfinite(value), MGRAD_ERR_NONFINITE,
                    "the output function (validation loss) is %g at θ_T", value);
    e->in_reverse = 1;
    run->stats.seconds_forward = mgr_seconds() - t0;
    run->stats.peak_state_bytes = mgr_store_peak_bytes(e->store);
    run->stats.memo_hits = e->memo_hits;
    if (phi != NULL) *phi = value;
    return MGRAD_OK;
}

static void zero_meta_grads(mgrad_run *run)
{
    for (int i = 0; i < run->num_metas; i++)
        R(mgr_zero)((size_t)run->metas[i]->size, run->metas[i]->grad);
}

static mgrad_status reverse_body(mgrad_run *run)
{
    engine *e = E(run);
    size_t P = (size_t)run->num_params;
    double t0 = mgr_seconds();
    zero_meta_grads(run);
    e->hyper_wd = e->hyper_mom = e->hyper_beta2 = 0;
    R(mgr_zero)(run->state_len, e->state_bar);
    if (!e->reverse_grad) R(mgr_copy)(P, e->buf_T, e->next_m);
    /* θ̄_T = ∇φ(θ_T); buffer adjoints start at 0. */
    double value = 0;
    e->site = "the gradient of the output function";
    e->site_step = -1;
    MGRAD_FORWARD(dataset_pass(run, e, run->val, e->theta_T, e->state_bar, NULL, &value));
    MGRAD_FORWARD(drive(run, e));
    if (run->meta_theta0 != NULL) R(mgr_copy)(P, e->state_bar, run->meta_theta0->grad);
    if (run->meta_wd != NULL) ((real *)run->meta_wd->grad)[0] = (real)e->hyper_wd;
    if (run->meta_momentum != NULL) ((real *)run->meta_momentum->grad)[0] = (real)e->hyper_mom;
    if (run->meta_beta2 != NULL) ((real *)run->meta_beta2->grad)[0] = (real)e->hyper_beta2;
    run->stats.seconds_reverse = mgr_seconds() - t0;
    uint64_t peak = mgr_store_peak_bytes(e->store);
    if (peak > run->stats.peak_state_bytes) run->stats.peak_state_bytes = peak;
    run->stats.spilled_bytes = (int64_t)mgr_store_spilled_bytes(e->store);
    run->stats.memo_hits = e->memo_hits;
    return MGRAD_OK;
}

/* Scale-out: each entry point ends with mgr_reduce_finish, so that a rank's
   local failure reaches every rank (reduce.c). */
static mgrad_status engine_train(mgrad_run *run, double *phi)
{
    return mgr_reduce_finish(run, train_body(run, phi));
}

static mgrad_status engine_reverse(mgrad_run *run)
{
    return mgr_reduce_finish(run, reverse_body(run));
}

static mgrad_status engine_get_params(const mgrad_run *run, void *out)
{
    R(mgr_copy)((size_t)run->num_params, E(run)->theta_T, out);
    return MGRAD_OK;
}

static mgrad_status engine_evaluate(mgrad_run *run, const mgrad_dataset *ds, double *loss,
                                    double *accuracy)
{
    engine *e = E(run);
    int64_t correct = 0;
    double l = 0;
    e->site = "mgrad_run_evaluate";
    e->site_step = -1;
    MGRAD_FORWARD(mgr_reduce_finish(run, dataset_pass(run, e, ds, e->theta_T, NULL,
                                                      &correct, &l)));
    if (loss != NULL) *loss = l;
    if (accuracy != NULL)
        *accuracy = ds->labels != NULL && correct >= 0 ? (double)correct / (double)ds->n
                                                       : NAN;
    return MGRAD_OK;
}

/* ---- lifetime ----------------------------------------------------------- */

static void engine_destroy(mgrad_run *run)
{
    engine *e = E(run);
    if (e == NULL) return;
    mgrad_context *ctx = run->ctx;
    R(mgr_graph_ws_destroy)(ctx, e->ws);
    mgr_store_destroy(e->store);
    mgr_schedule_destroy(ctx, e->sched);
    mgr_cb_scratch_destroy(run);
    void *bufs[] = {e->state, e->state_bar, e->theta_T, e->grad, e->u, e->hu, e->buf_T,
                    e->next_m, e->x,
                    e->xbardot, e->targets, e->labels, e->w, e->rows, e->prob, e->obar,
                    e->obardot, e->ell, e->elldot, e->batch_idx, e->perm};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) mgr_free(ctx, bufs[i]);
    mgr_free(ctx, e);
    run->engine = NULL;
}

static mgrad_status engine_create(mgrad_run *run)
{
    mgrad_context *ctx = run->ctx;
    engine *e = NULL;
    MGRAD_FORWARD(mgr_alloc_or_fail(ctx, (void **)&e, 1, sizeof *e, "the run engine"));
    run->engine = e;
    size_t P = (size_t)run->num_params, S = run->state_len;
    size_t B = (size_t)run->batch, C = (size_t)run->classes;
    size_t F = (size_t)run->train->features;
    size_t rows = B > 256 ? B : 256;
    e->max_rows = rows;
    e->features = F;
    e->perm_epoch = -1;
    e->cur_slot = e->memo_slot = -1;
    mgr_hyper h0; /* the kind and Nesterov flag are all it reads; fixed per run */
    memset(&h0, 0, sizeof h0);
    h0.kind = run->opts.optimizer;
    h0.nesterov = run->opts.nesterov;
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
        {(void **)&e->next_m, PM, sizeof(real), "the momentum of s_{t+1}"},
        {(void **)&e->x, rows * F, sizeof(real), "batch inputs"},
        {(void **)&e->xbardot, rows * F, sizeof(real), "input adjoint tangents"},
        {(void **)&e->targets, rows * C, sizeof(real), "batch targets"},
        {(void **)&e->labels, rows, sizeof(int32_t), "batch labels"},
        {(void **)&e->w, rows, sizeof(real), "batch weights"},
        {(void **)&e->rows, rows, sizeof(int64_t), "batch rows"},
        {(void **)&e->prob, rows * C, sizeof(real), "probabilities"},
        {(void **)&e->obar, rows * C, sizeof(real), "output adjoints"},
        {(void **)&e->obardot, rows * C, sizeof(real), "output adjoint tangents"},
        {(void **)&e->ell, rows, sizeof(real), "losses"},
        {(void **)&e->elldot, rows, sizeof(real), "loss tangents"},
        {(void **)&e->batch_idx, B + rows, sizeof(int64_t), "batch indices"},
        {(void **)&e->perm, (size_t)run->train->n, sizeof(int64_t), "the epoch permutation"},
    };
    for (size_t i = 0; i < sizeof allocs / sizeof allocs[0] && s == MGRAD_OK; i++)
        s = mgr_alloc_or_fail(ctx, allocs[i].p, allocs[i].n, allocs[i].size, allocs[i].what);
    if (s == MGRAD_OK)
        s = run->is_callback ? mgr_cb_scratch_create(run, rows)
                             : R(mgr_graph_ws_create)(ctx, &run->graph, rows, &e->ws);
    if (s == MGRAD_OK && e->ws != NULL) e->ws->seed = ctx->seed; /* dropout masks */
    if (s == MGRAD_OK)
        s = mgr_schedule_create(ctx, run->policy, run->steps, run->slots,
                                run->opts.checkpoint_k > 0 ? run->opts.checkpoint_k : 4,
                                &e->sched);
    if (s == MGRAD_OK)
        s = mgr_store_create(ctx, run->slots, S * sizeof(real), run->memo_bytes,
                             run->opts.checkpoint_budget_bytes, run->opts.spill_dir,
                             &e->store);
    if (s != MGRAD_OK) engine_destroy(run);
    return s;
}

/* Per-example losses ℓ_i (unweighted) of `ds` at θ_T into out [ds->n]. */
static mgrad_status engine_example_losses(mgrad_run *run, const mgrad_dataset *ds,
                                          void *out)
{
    engine *e = E(run);
    real *dst = out;
    e->site = "mgrad_run_example_losses";
    e->site_step = -1;
    if (e->ws != NULL) e->ws->training = 0; /* an evaluation pass: no dropout */
    /* Scale-out: each rank fills its shares, zeros elsewhere; the sum of the
       ranks' vectors is then exact. */
    if (run->comm != NULL) R(mgr_zero)((size_t)ds->n, dst);
    mgrad_status s = MGRAD_OK;
    for (int64_t start = 0; start < ds->n && s == MGRAD_OK; start += (int64_t)e->max_rows) {
        chunk c = eval_chunk(run, e, ds, start);
        if (c.count == 0) continue;
        gather(run, e, &c);
        double loss = 0;
        s = model_value_grad(run, e, &c, e->theta_T, NULL, 1, &loss);
        if (s == MGRAD_OK) R(mgr_copy)(c.count, e->ell, dst + c.rows[0]);
    }
    s = mgr_reduce_sum(run, dst, (size_t)ds->n, NULL, 0, s);
    return mgr_reduce_finish(run, s);
}

const mgr_engine_vt R(mgr_engine) = {
    engine_create, engine_destroy, engine_train, engine_reverse, engine_get_params,
    engine_evaluate, engine_example_losses,
};
