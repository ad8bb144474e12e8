/*
 * callback.c - runs whose model is given by the caller's callbacks
 * (metagrad/callback.h): creation, and the model seam of engine.c for them.
 *
 * Untyped: buffers are in the context's dtype and reach the callbacks as
 * they are, described by an mgrad_chunk and filled through an
 * mgrad_loss_grad_out / mgrad_hvp_out of this library's versions.  Only
 * approximate mode does arithmetic on them, elementwise, in double.
 *
 * Approximate mode (no hvp): along u, with δ = ε_m^(1/3) max(1, ‖θ‖) and
 * ε = δ / ‖u‖,
 *     H u ≈ (g(θ + εu) − g(θ − εu)) / 2ε,   ℓ̇_i ≈ (ℓ_i(θ + εu) − ℓ_i(θ − εu)) / 2ε.
 * Taylor: g(θ ± εu) = g ± εHu + ε²/2 D²g[u,u] ± ε³/6 D³g[u,u,u] + O(ε⁴), so
 * the truncation error is ε²/6 D³g[u,u,u] (D³g = ∇⁴L), while rounding the
 * two gradients costs about ε_m ‖g‖ / ε; δ ∝ ε_m^(1/3) balances the two.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "run/run_internal.h"

typedef struct cb_scratch {
    void *theta;   /* [P] θ ± εu */
    void *gp, *gm; /* [P] gradients at θ + εu, θ − εu */
    void *lp, *lm; /* [max_rows] per-example losses there */
} cb_scratch;

mgrad_status mgrad_callback_model_init(mgrad_callback_model *model, uint32_t version)
{
    if (model == NULL) return MGRAD_ERR_NULL;
    if (version != MGRAD_CALLBACK_MODEL_VERSION) return MGRAD_ERR_VERSION;
    mgrad_callback_model d = MGRAD_CALLBACK_MODEL_INIT;
    *model = d;
    return MGRAD_OK;
}

mgrad_status mgrad_run_create_callback(mgrad_run **out, mgrad_context *ctx,
                                       const mgrad_callback_model *model,
                                       const double *theta0, mgrad_dataset *train,
                                       const mgrad_run_options *opts)
{
    const char *fn = "mgrad_run_create_callback";
    if (ctx == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(ctx, out == NULL || model == NULL || theta0 == NULL || train == NULL ||
                    opts == NULL, MGRAD_ERR_NULL,
                    "%s: out, model, theta0, train and opts must not be NULL", fn);
    MGRAD_RETURN_IF(ctx, model->version == 1, MGRAD_ERR_VERSION,
                    "%s: callback model version 1 is no longer accepted: since version "
                    "%d the callbacks receive a const mgrad_chunk * and an output struct "
                    "and input_shape is a pointer (metagrad/callback.h)",
                    fn, MGRAD_CALLBACK_MODEL_VERSION);
    MGRAD_RETURN_IF(ctx, model->version != MGRAD_CALLBACK_MODEL_VERSION, MGRAD_ERR_VERSION,
                    "%s: callback model version %u unknown (this library knows %d); "
                    "initialise with MGRAD_CALLBACK_MODEL_INIT",
                    fn, (unsigned)model->version, MGRAD_CALLBACK_MODEL_VERSION);
    MGRAD_RETURN_IF(ctx, opts->version != MGRAD_RUN_OPTIONS_VERSION, MGRAD_ERR_VERSION,
                    "%s: options version %u unknown (this library knows %d); "
                    "initialise with MGRAD_RUN_OPTIONS_INIT", fn, (unsigned)opts->version,
                    MGRAD_RUN_OPTIONS_VERSION);
    MGRAD_RETURN_IF(ctx, model->loss_grad == NULL, MGRAD_ERR_NULL,
                    "%s: model->loss_grad is NULL; it is required", fn);
    /* 3 reals per parameter (Adam's state) and the byte counts must fit. */
    MGRAD_RETURN_IF(ctx, model->num_params < 1 || model->num_params > INT64_MAX / 64,
                    MGRAD_ERR_INVALID, "%s: model->num_params = %lld is out of range", fn,
                    (long long)model->num_params);
    MGRAD_RETURN_IF(ctx, model->ndim < 1, MGRAD_ERR_INVALID,
                    "%s: model->ndim = %d must be at least 1", fn, (int)model->ndim);
    MGRAD_RETURN_IF(ctx, model->input_shape == NULL, MGRAD_ERR_NULL,
                    "%s: model->input_shape is NULL; it must hold model->ndim = %d sizes", fn,
                    (int)model->ndim);
    int64_t features = mgr_shape_product(model->ndim, model->input_shape);
    MGRAD_RETURN_IF(ctx, features < 1, MGRAD_ERR_INVALID,
                    "%s: model->input_shape has a dimension < 1 or its product overflows",
                    fn);
    MGRAD_RETURN_IF(ctx, model->num_outputs < 1 || model->num_outputs > INT32_MAX,
                    MGRAD_ERR_INVALID, "%s: model->num_outputs = %lld is out of range", fn,
                    (long long)model->num_outputs);
    MGRAD_RETURN_IF(ctx, model->input_tangents != 0 && model->input_tangents != 1,
                    MGRAD_ERR_INVALID, "%s: model->input_tangents must be 0 or 1", fn);
    MGRAD_RETURN_IF(ctx, model->input_tangents && model->hvp == NULL, MGRAD_ERR_INVALID,
                    "%s: model->input_tangents = 1 needs an hvp callback", fn);
    MGRAD_RETURN_IF(ctx, opts->label_smoothing != 0, MGRAD_ERR_INVALID,
                    "%s: options.label_smoothing must be 0 for a callback model: the "
                    "callback defines the loss, so smooth the labels there", fn);
    for (int64_t j = 0; j < model->num_params; j++)
        MGRAD_RETURN_IF(ctx, !isfinite(theta0[j]), MGRAD_ERR_NONFINITE,
                        "%s: theta0[%lld] is NaN or Inf", fn, (long long)j);
    return mgr_run_build(out, ctx, fn, NULL, model, theta0, model->num_params, features,
                         model->num_outputs, train, opts);
}

mgrad_status mgr_cb_check_meta(mgrad_run *run, mgrad_meta_kind kind)
{
    if (run->model.kind != MGR_MODEL_CALLBACK) return MGRAD_OK;
    const char *fn = "mgrad_run_add_meta";
    MGRAD_RETURN_IF(run->ctx, kind == MGRAD_META_SOFT_LABELS, MGRAD_ERR_UNSUPPORTED,
                    "%s: SOFT_LABELS is not available for callback models: their loss "
                    "is inside the callback, where the library cannot differentiate with "
                    "respect to its targets", fn);
    MGRAD_RETURN_IF(run->ctx, kind == MGRAD_META_INPUTS && run->model.cb.hvp == NULL,
                    MGRAD_ERR_UNSUPPORTED, "%s: INPUTS needs the exact hvp callback; this "
                    "callback model runs in approximate mode (hvp is NULL)", fn);
    MGRAD_RETURN_IF(run->ctx, kind == MGRAD_META_INPUTS && !run->model.cb.input_tangents,
                    MGRAD_ERR_UNSUPPORTED, "%s: INPUTS needs input gradient tangents; set "
                    "input_tangents = 1 in the callback model and fill "
                    "input_grad_tangents in hvp", fn);
    return MGRAD_OK;
}

/* ---- scratch ------------------------------------------------------------ */

mgrad_status mgr_cb_scratch_create(mgrad_run *run, size_t max_rows)
{
    mgrad_context *ctx = run->ctx;
    if (run->model.cb.hvp != NULL) return MGRAD_OK; /* exact mode needs none */
    cb_scratch *s = NULL;
    MGRAD_FORWARD(mgr_alloc_or_fail(ctx, (void **)&s, 1, sizeof *s, "callback scratch"));
    run->traj.cb_scratch = s;
    size_t P = (size_t)run->model.num_params, es = mgr_dtype_size(ctx->dtype);
    struct { void **p; size_t n; const char *what; } allocs[] = {
        {&s->theta, P, "θ ± εu"},
        {&s->gp, P, "the gradient at θ + εu"},
        {&s->gm, P, "the gradient at θ − εu"},
        {&s->lp, max_rows, "losses at θ + εu"},
        {&s->lm, max_rows, "losses at θ − εu"},
    };
    mgrad_status st = MGRAD_OK;
    for (size_t i = 0; i < sizeof allocs / sizeof allocs[0] && st == MGRAD_OK; i++)
        st = mgr_alloc_or_fail(ctx, allocs[i].p, allocs[i].n, es, allocs[i].what);
    if (st != MGRAD_OK) mgr_cb_scratch_destroy(run);
    return st;
}

void mgr_cb_scratch_destroy(mgrad_run *run)
{
    cb_scratch *s = run->traj.cb_scratch;
    if (s == NULL) return;
    mgr_free(run->ctx, s->theta);
    mgr_free(run->ctx, s->gp);
    mgr_free(run->ctx, s->gm);
    mgr_free(run->ctx, s->lp);
    mgr_free(run->ctx, s->lm);
    mgr_free(run->ctx, s);
    run->traj.cb_scratch = NULL;
}

/* ---- the seam ----------------------------------------------------------- */

static double get(const void *p, mgrad_dtype dt, size_t i)
{
    return dt == MGRAD_DTYPE_F32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

static void put(void *p, mgrad_dtype dt, size_t i, double v)
{
    if (dt == MGRAD_DTYPE_F32)
        ((float *)p)[i] = (float)v;
    else
        ((double *)p)[i] = v;
}

/* The chunk as the callbacks see it. */
static mgrad_chunk public_chunk(const mgr_cb_chunk *c)
{
    mgrad_chunk k;
    memset(&k, 0, sizeof k);
    k.version = MGRAD_CHUNK_VERSION;
    k.rows = (int64_t)c->rows;
    k.inputs = c->x;
    k.labels = c->labels;
    k.targets = c->targets;
    k.weights = c->w;
    k.scale = c->scale;
    k.phase = c->phase;
    k.step = c->step;
    return k;
}

static mgrad_status failed(const mgrad_run *run, const mgr_cb_chunk *c, const char *which,
                           int rc)
{
    if (c->step >= 0)
        return mgr_error(run->ctx, MGRAD_ERR_CALLBACK, "the callback model's %s returned "
                         "%d in %s %lld (a chunk of %zu rows); the run stays usable", which,
                         rc, c->site, (long long)c->step, c->rows);
    return mgr_error(run->ctx, MGRAD_ERR_CALLBACK, "the callback model's %s returned %d "
                     "in %s (a chunk of %zu rows); the run stays usable", which, rc,
                     c->site, c->rows);
}

/* loss_grad on the chunk at theta; *loss is written only on success. */
static int call_loss_grad(const mgrad_run *run, const mgr_cb_chunk *c, const void *theta,
                          void *grad, void *ell, double *loss)
{
    const mgrad_callback_model *m = &run->model.cb;
    mgrad_chunk k = public_chunk(c);
    mgrad_loss_grad_out out;
    memset(&out, 0, sizeof out);
    out.version = MGRAD_LOSS_GRAD_OUT_VERSION;
    out.loss = 0;
    out.grad = grad;
    out.example_losses = ell;
    int rc = m->loss_grad(&k, theta, &out, m->user_data);
    if (rc == 0) *loss = out.loss;
    return rc;
}

mgrad_status mgr_cb_value_grad(const mgrad_run *run, const mgr_cb_chunk *c,
                               const void *theta, void *grad, void *ell, double *loss)
{
    double l = 0;
    int rc = call_loss_grad(run, c, theta, grad, ell, &l);
    if (rc != 0) return failed(run, c, "loss_grad", rc);
    *loss = l;
    return MGRAD_OK;
}

/* Approximate mode: central differences of gradients (see the top). */
static mgrad_status rop_approx(const mgrad_run *run, const mgr_cb_chunk *c,
                               const void *theta, const void *u, void *hu, void *elldot)
{
    mgrad_dtype dt = run->ctx->dtype;
    cb_scratch *s = run->traj.cb_scratch;
    size_t P = (size_t)run->model.num_params, rows = c->rows;
    double nt = 0, nu = 0;
    for (size_t j = 0; j < P; j++) {
        double a = get(theta, dt, j), b = get(u, dt, j);
        nt += a * a;
        nu += b * b;
    }
    nt = sqrt(nt);
    nu = sqrt(nu);
    if (nu == 0) { /* H 0 = 0 and ℓ̇ = 0, exactly */
        for (size_t r = 0; r < rows; r++) put(elldot, dt, r, 0);
        return MGRAD_OK;
    }
    double em = dt == MGRAD_DTYPE_F32 ? (double)FLT_EPSILON : DBL_EPSILON;
    double eps = cbrt(em) * fmax(1.0, nt) / nu;
    void *gp = hu != NULL ? s->gp : NULL, *gm = hu != NULL ? s->gm : NULL;
    double l = 0;
    for (int side = 0; side < 2; side++) {
        double sgn = side == 0 ? 1.0 : -1.0;
        for (size_t j = 0; j < P; j++)
            put(s->theta, dt, j, get(theta, dt, j) + sgn * eps * get(u, dt, j));
        void *g = side == 0 ? gp : gm;
        if (g != NULL) memset(g, 0, P * mgr_dtype_size(dt));
        int rc = call_loss_grad(run, c, s->theta, g, side == 0 ? s->lp : s->lm, &l);
        if (rc != 0) return failed(run, c, "loss_grad (approximate H u)", rc);
    }
    double inv = 1.0 / (2 * eps);
    for (size_t r = 0; r < rows; r++)
        put(elldot, dt, r, (get(s->lp, dt, r) - get(s->lm, dt, r)) * inv);
    if (hu != NULL)
        for (size_t j = 0; j < P; j++)
            put(hu, dt, j, get(hu, dt, j) + (get(gp, dt, j) - get(gm, dt, j)) * inv);
    return MGRAD_OK;
}

mgrad_status mgr_cb_rop(const mgrad_run *run, const mgr_cb_chunk *c, const void *theta,
                        const void *u, void *hu, void *elldot, void *xbardot)
{
    const mgrad_callback_model *m = &run->model.cb;
    if (m->hvp == NULL) {
        MGRAD_RETURN_IF(run->ctx, xbardot != NULL, MGRAD_ERR_INTERNAL,
                        "input tangents requested from an approximate callback model");
        return rop_approx(run, c, theta, u, hu, elldot);
    }
    mgrad_chunk k = public_chunk(c);
    mgrad_hvp_out out;
    memset(&out, 0, sizeof out);
    out.version = MGRAD_HVP_OUT_VERSION;
    out.hu = hu;
    out.loss_tangents = elldot;
    out.input_grad_tangents = xbardot;
    int rc = m->hvp(&k, theta, u, &out, m->user_data);
    if (rc != 0) return failed(run, c, "hvp", rc);
    return MGRAD_OK;
}

mgrad_status mgr_cb_outputs(const mgrad_run *run, const mgr_cb_chunk *c, const void *theta,
                            void *outputs, int *have)
{
    const mgrad_callback_model *m = &run->model.cb;
    *have = 0;
    if (m->outputs == NULL) return MGRAD_OK;
    mgrad_chunk k = public_chunk(c);
    int rc = m->outputs(&k, theta, outputs, m->user_data);
    if (rc != 0) return failed(run, c, "outputs", rc);
    *have = 1;
    return MGRAD_OK;
}
