/*
 * hessian.c - H u for the training loss at θ_T (typed; hessian.h states
 * which loss).
 *
 * One pass per chunk of training rows, as in the reverse pass's R-op
 * (engine.c), but at θ_T and with the chunk's scale 1/N:
 *     forward            o = f(x; θ)
 *     loss forward       ℓ_i, softmax
 *     loss backward      ō = (1/N) w_i ∂ℓ_i/∂o
 *     backward           ȳ of every node (θ̄ itself is not wanted)
 *     tangent            ẏ along u, ȯ
 *     loss tangent-bwd   (ō)˙ = (1/N) w_i ∂²ℓ_i/∂o² ȯ
 *     tangent-backward   (θ̄)˙ += ...  =  H u
 * Callback models answer through their hvp callback (or its finite-
 * difference stand-in, callback.c).  The session keeps its own graph
 * workspace, so the run's engine state is never touched.
 */
#include <string.h>

#include "graph/graph_exec.h"
#include "run/hessian.h"

typedef struct session {
    R(mgr_graph_ws) *ws;  /* NULL for callback runs */
    size_t max_rows;
    real *theta;          /* [P] θ_T */
    real *x;              /* [max_rows, F] */
    real *targets;        /* [max_rows, C] */
    int32_t *labels;      /* [max_rows] */
    real *w;              /* [max_rows] */
    real *prob, *obar, *obardot; /* [max_rows, C] */
    real *ell, *elldot;   /* [max_rows] */
} session;

/* Rows [start, start + count) of the training set into the session's
   buffers, with INPUTS and SOFT_LABELS metaparameters applied.  Returns 1
   when every weight is zero. */
static int gather_rows(const mgrad_run *run, session *s, int64_t start, size_t count)
{
    const mgrad_dataset *ds = run->train;
    size_t F = (size_t)run->features, C = (size_t)run->classes;
    const real *dsw = ds->weights;
    const mgrad_meta *soft = run->meta_soft;
    int all_zero = 1;
    for (size_t r = 0; r < count; r++) {
        int64_t i = start + (int64_t)r;
        if (run->input_meta != NULL && run->input_meta[i] >= 0) {
            const mgrad_meta *m = run->metas[run->input_meta[i]];
            memcpy(s->x + r * F, (const real *)m->value + (size_t)run->input_row[i] * F,
                   F * sizeof(real));
        } else {
            mgr_dataset_copy_row(ds, i, s->x + r * F);
        }
        s->w[r] = dsw != NULL ? dsw[i] : (real)1;
        if (s->w[r] != 0) all_zero = 0;
        if (soft != NULL)
            memcpy(s->targets + r * C, (const real *)soft->value + (size_t)i * C,
                   C * sizeof(real));
        else if (ds->targets != NULL && run->opts.loss == MGRAD_LOSS_SQUARED_ERROR)
            memcpy(s->targets + r * C, (const real *)ds->targets + (size_t)i * C,
                   C * sizeof(real));
        if (ds->labels != NULL) s->labels[r] = ds->labels[i];
    }
    return all_zero;
}

static mgrad_status chunk_hvp(mgrad_run *run, session *s, size_t rows, real scale,
                              const real *u, real *hu)
{
    if (run->is_callback) {
        mgr_cb_chunk k;
        k.rows = rows;
        k.x = s->x;
        k.labels = run->opts.loss == MGRAD_LOSS_CROSS_ENTROPY ? s->labels : NULL;
        k.targets = run->opts.loss == MGRAD_LOSS_SQUARED_ERROR ? s->targets : NULL;
        k.w = s->w;
        k.scale = (double)scale;
        k.site = "mgrad_run_hvp";
        k.step = -1;
        return mgr_cb_rop(run, &k, s->theta, u, hu, s->elldot, NULL);
    }
    const mgr_graph *g = &run->graph;
    R(mgr_loss_batch) lb;
    memset(&lb, 0, sizeof lb);
    lb.kind = run->opts.loss;
    lb.rows = rows;
    lb.classes = (size_t)run->classes;
    lb.smoothing = run->opts.label_smoothing;
    lb.labels = s->labels;
    lb.targets = (run->meta_soft != NULL || run->opts.loss == MGRAD_LOSS_SQUARED_ERROR)
                     ? s->targets : NULL;
    lb.weights = s->w;
    lb.scale = scale;
    R(mgr_graph_forward)(g, s->ws, rows, s->theta, s->x);
    const real *o = s->ws->val[g->num_nodes - 1];
    (void)R(mgr_loss_forward)(&lb, o, s->prob, s->ell);
    R(mgr_loss_backward)(&lb, o, s->prob, s->obar);
    R(mgr_graph_backward)(g, s->ws, rows, s->theta, s->x, s->obar, NULL, NULL);
    R(mgr_graph_tangent)(g, s->ws, rows, s->theta, u, s->x, NULL);
    const real *odot = s->ws->tan[g->num_nodes - 1];
    R(mgr_loss_tangent_backward)(&lb, o, s->prob, odot, s->obardot);
    R(mgr_graph_tangent_backward)(g, s->ws, rows, s->theta, u, s->x, NULL, s->obardot, hu,
                                  NULL);
    return MGRAD_OK;
}

static mgrad_status hvp_apply(mgrad_run *run, void *handle, const void *u_, void *hu_)
{
    session *s = handle;
    const real *u = u_;
    real *hu = hu_;
    const mgrad_dataset *ds = run->train;
    real scale = (real)(1.0 / (double)ds->n);
    R(mgr_zero)((size_t)run->num_params, hu);
    for (int64_t start = 0; start < ds->n; start += (int64_t)s->max_rows) {
        int64_t count = ds->n - start;
        if (count > (int64_t)s->max_rows) count = (int64_t)s->max_rows;
        if (gather_rows(run, s, start, (size_t)count)) continue;
        MGRAD_FORWARD(chunk_hvp(run, s, (size_t)count, scale, u, hu));
    }
    long long bad = R(mgr_first_nonfinite)((size_t)run->num_params, hu);
    MGRAD_RETURN_IF(run->ctx, bad >= 0, MGRAD_ERR_NONFINITE,
                    "mgrad_run_hvp: entry %lld of H u is NaN or Inf", bad);
    return MGRAD_OK;
}

static void hvp_destroy(mgrad_run *run, void *handle)
{
    session *s = handle;
    if (s == NULL) return;
    mgrad_context *ctx = run->ctx;
    if (s->ws != NULL) R(mgr_graph_ws_destroy)(ctx, s->ws);
    void *bufs[] = {s->theta, s->x, s->targets, s->labels, s->w, s->prob, s->obar,
                    s->obardot, s->ell, s->elldot};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) mgr_free(ctx, bufs[i]);
    mgr_free(ctx, s);
}

static mgrad_status hvp_create(mgrad_run *run, void **out)
{
    mgrad_context *ctx = run->ctx;
    session *s = NULL;
    *out = NULL;
    MGRAD_FORWARD(mgr_alloc_or_fail(ctx, (void **)&s, 1, sizeof *s, "an H u session"));
    memset(s, 0, sizeof *s);
    /* The engine sizes a callback run's scratch for max(B, 256) rows. */
    size_t B = (size_t)run->batch, C = (size_t)run->classes, F = (size_t)run->features;
    size_t rows = B > 256 ? B : 256;
    s->max_rows = rows;
    struct { void **p; size_t n, size; const char *what; } allocs[] = {
        {(void **)&s->theta, (size_t)run->num_params, sizeof(real), "θ_T"},
        {(void **)&s->x, rows * F, sizeof(real), "chunk inputs"},
        {(void **)&s->targets, rows * C, sizeof(real), "chunk targets"},
        {(void **)&s->labels, rows, sizeof(int32_t), "chunk labels"},
        {(void **)&s->w, rows, sizeof(real), "chunk weights"},
        {(void **)&s->prob, rows * C, sizeof(real), "probabilities"},
        {(void **)&s->obar, rows * C, sizeof(real), "output adjoints"},
        {(void **)&s->obardot, rows * C, sizeof(real), "output adjoint tangents"},
        {(void **)&s->ell, rows, sizeof(real), "losses"},
        {(void **)&s->elldot, rows, sizeof(real), "loss tangents"},
    };
    mgrad_status st = MGRAD_OK;
    for (size_t i = 0; i < sizeof allocs / sizeof allocs[0] && st == MGRAD_OK; i++)
        st = mgr_alloc_or_fail(ctx, allocs[i].p, allocs[i].n, allocs[i].size,
                               allocs[i].what);
    if (st == MGRAD_OK && !run->is_callback) {
        st = R(mgr_graph_ws_create)(ctx, &run->graph, rows, &s->ws);
        /* the loss is deterministic: dropout is the identity here */
        if (st == MGRAD_OK) s->ws->training = 0;
    }
    if (st == MGRAD_OK) st = mgr_engine_of(run)->get_params(run, s->theta);
    if (st != MGRAD_OK) {
        hvp_destroy(run, s);
        return st;
    }
    *out = s;
    return MGRAD_OK;
}

const mgr_hvp_vt R(mgr_hvp) = {hvp_create, hvp_destroy, hvp_apply};
