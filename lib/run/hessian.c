/*
 * hessian.c - H u for the training loss at θ_T (typed; hessian.h states
 * which loss).
 *
 * One pass per chunk of training rows through the chunk evaluator
 * (evaluator.h), as the reverse pass's R-op does, but at θ_T and with the
 * chunk's scale 1/N: value pass with the adjoints the R-op reads, then the
 * R-op along u, whose tangent-of-backward gives H u.  The model seam
 * decides how (the graph's four passes, or a callback model's hvp or its
 * finite-difference stand-in, callback.c).  The session has its own
 * evaluator, so the run's engine state is never touched.
 */
#include "run/evaluator.h"
#include "run/hessian.h"

typedef struct session {
    R(mgr_eval) *ev;
    real *theta;          /* [P] θ_T */
} session;

static mgrad_status hvp_apply(mgrad_run *run, void *handle, const void *u_, void *hu_)
{
    session *s = handle;
    R(mgr_eval) *ev = s->ev;
    const real *u = u_;
    real *hu = hu_;
    const mgrad_dataset *ds = run->config.train;
    real scale = (real)(1.0 / (double)ds->n);
    ev->site = "mgrad_run_hvp";
    ev->site_phase = MGRAD_CALLBACK_PHASE_EVAL;
    ev->site_step = -1;
    R(mgr_zero)((size_t)run->model.num_params, hu);
    for (int64_t start = 0; start < ds->n; start += (int64_t)ev->max_rows) {
        /* every row on every rank: this product is not reduced (smooth.h) */
        size_t count = (size_t)(ds->n - start);
        if (count > ev->max_rows) count = ev->max_rows;
        for (size_t r = 0; r < count; r++) ev->ids[r] = start + (int64_t)r;
        R(mgr_chunk) c = {.ds = ds, .rows = ev->ids, .count = count, .scale = scale,
                          .train_rows = true};
        if (R(mgr_eval_gather)(run, ev, &c)) continue; /* adds nothing */
        double loss = 0;
        if (ev->seam->rop_needs_value_pass)
            MGRAD_FORWARD(ev->seam->value_grad(run, ev, &c, s->theta, MGR_BACKWARD_FOR_ROP,
                                               NULL, (R(mgr_memo_use)){NULL, NULL}, &loss));
        const real *odot = NULL;
        MGRAD_FORWARD(ev->seam->rop(run, ev, &c, s->theta, u, false, hu, NULL, &odot));
    }
    long long bad = R(mgr_first_nonfinite)((size_t)run->model.num_params, hu);
    MGRAD_RETURN_IF(run->ctx, bad >= 0, MGRAD_ERR_NONFINITE,
                    "mgrad_run_hvp: entry %lld of H u is NaN or Inf", bad);
    return MGRAD_OK;
}

static void hvp_destroy(mgrad_run *run, void *handle)
{
    session *s = handle;
    if (s == NULL) return;
    R(mgr_eval_destroy)(run, s->ev);
    mgr_free(run->ctx, s->theta);
    mgr_free(run->ctx, s);
}

static mgrad_status hvp_create(mgrad_run *run, void **out)
{
    mgrad_context *ctx = run->ctx;
    session *s = NULL;
    *out = NULL;
    MGRAD_FORWARD(mgr_alloc_or_fail(ctx, (void **)&s, 1, sizeof *s, "an H u session"));
    /* the evaluator starts in evaluation mode: the loss is deterministic */
    /* H u runs the R-op on whole chunks */
    mgrad_status st = R(mgr_eval_create)(run, mgr_run_chunk_rows(&run->config), &s->ev);
    if (st == MGRAD_OK)
        st = mgr_alloc_or_fail(ctx, (void **)&s->theta, (size_t)run->model.num_params,
                               sizeof(real), "θ_T");
    if (st == MGRAD_OK) st = mgr_engine_of(run)->get_params(run, s->theta);
    if (st != MGRAD_OK) {
        hvp_destroy(run, s);
        return st;
    }
    *out = s;
    return MGRAD_OK;
}

const mgr_hvp_vt R(mgr_hvp) = {
    .create = hvp_create,
    .destroy = hvp_destroy,
    .apply = hvp_apply,
};
