/*
 * test_callback.c - runs whose model is given by callbacks
 * (metagrad/callback.h).
 *
 * The callback model is the built-in MLP 6-8-tanh-3 with softmax
 * cross-entropy, written out by hand below with its own exact
 * forward-over-reverse product.  Checked:
 *   1. it reproduces the built-in model's metagradients for every applicable
 *      metaparameter kind (f64, relative to the largest entry, 1e-12);
 *   2. approximate mode (no hvp) agrees with exact mode to 1e-8 (measured:
 *      about 5e-11; docs/callbacks.md) and says so
 *      in the statistics;
 *   3. a failing callback gives MGRAD_ERR_CALLBACK naming where it failed,
 *      and the run stays usable and exact;
 *   4. whole-run metagradients of the callback model agree with central
 *      finite differences of whole training runs;
 * plus the API rules: defaults, unsupported kinds, stats versions, the
 * chunk every callback receives (its versions, phases and steps) and input
 * shapes of any rank.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

#include "fixtures.h"
#include "metagrad.h"
#include "testutil.h"

enum { NTRAIN = 24, NVAL = 16, NPOOL = 10, F = 6, H = 8, C = 3, T = 12, B = 6 };
/* θ = (W1 [H, F], b1 [H], W2 [C, H], b2 [C]), the built-in order */
enum { OW1 = 0, OB1 = H * F, OW2 = OB1 + H, OB2 = OW2 + C * H, P = OB2 + C };

/* ---- the hand-written model ---------------------------------------------- */

/* What a callback saw of its chunk (test_chunk_phases). */
typedef struct seen {
    char fn;                       /* 'l' loss_grad, 'h' hvp, 'o' outputs */
    uint32_t version, out_version; /* the chunk's and the output struct's */
    mgrad_callback_phase phase;
    int64_t step, rows;
    double scale;
    int grad; /* loss_grad: a gradient was asked for */
} seen;

enum { MAX_SEEN = 256 };

typedef struct mlp {
    int64_t loss_calls, hvp_calls;
    int64_t fail_loss_at, fail_hvp_at; /* fail on that call (1-based); 0: never */
    seen *log;                         /* NULL, or [MAX_SEEN]: every call's chunk */
    int64_t num_seen;
} mlp;

static void note(mlp *m, char fn, const mgrad_chunk *k, uint32_t out_version)
{
    if (m == NULL || m->log == NULL) return;
    ck_assert_int_lt(m->num_seen, MAX_SEEN);
    m->log[m->num_seen++] =
        (seen){fn, k->version, out_version, k->phase, k->step, k->rows, k->scale, 0};
}

/* h = tanh(W1 x + b1), o = W2 h + b2 */
static void mlp_forward(const double *th, const double *x, double *h, double *o)
{
    for (int k = 0; k < H; k++) {
        double a = th[OB1 + k];
        for (int j = 0; j < F; j++) a += th[OW1 + k * F + j] * x[j];
        h[k] = tanh(a);
    }
    for (int c = 0; c < C; c++) {
        double v = th[OB2 + c];
        for (int k = 0; k < H; k++) v += th[OW2 + c * H + k] * h[k];
        o[c] = v;
    }
}

/* p = softmax(o); returns ℓ = log Σ e^o − o_y */
static double softmax_ce(const double *o, int32_t y, double *p)
{
    double m = o[0];
    for (int c = 1; c < C; c++) m = fmax(m, o[c]);
    double s = 0;
    for (int c = 0; c < C; c++) s += exp(o[c] - m);
    double lz = m + log(s);
    for (int c = 0; c < C; c++) p[c] = exp(o[c] - lz);
    return lz - o[y];
}

static int mlp_loss_grad(const mgrad_chunk *chunk, const void *theta, mgrad_loss_grad_out *out,
                         void *user_data)
{
    mlp *m = user_data;
    const double *th = theta, *X = chunk->inputs, *w = chunk->weights;
    const int32_t *labels = chunk->labels;
    int64_t rows = chunk->rows;
    double scale = chunk->scale;
    double *g = out->grad, *ell = out->example_losses;
    note(m, 'l', chunk, out->version);
    if (m != NULL && m->log != NULL) m->log[m->num_seen - 1].grad = g != NULL;
    m->loss_calls++;
    if (m->fail_loss_at != 0 && m->loss_calls == m->fail_loss_at) return 42;
    double total = 0;
    for (int64_t i = 0; i < rows; i++) {
        const double *x = X + i * F;
        double h[H], o[C], p[C];
        mlp_forward(th, x, h, o);
        double li = softmax_ce(o, labels[i], p);
        if (ell != NULL) ell[i] = li;
        total += w[i] * li;
        if (g == NULL) continue;
        double cw = scale * w[i], dout[C], dh[H];
        for (int c = 0; c < C; c++) dout[c] = cw * (p[c] - (c == labels[i]));
        for (int k = 0; k < H; k++) {
            double s = 0;
            for (int c = 0; c < C; c++) s += th[OW2 + c * H + k] * dout[c];
            dh[k] = s * (1 - h[k] * h[k]);
        }
        for (int c = 0; c < C; c++) {
            for (int k = 0; k < H; k++) g[OW2 + c * H + k] += dout[c] * h[k];
            g[OB2 + c] += dout[c];
        }
        for (int k = 0; k < H; k++) {
            for (int j = 0; j < F; j++) g[OW1 + k * F + j] += dh[k] * x[j];
            g[OB1 + k] += dh[k];
        }
    }
    out->loss = scale * total;
    return 0;
}

/* Forward-over-reverse along u = (U1, v1, U2, v2), input tangents 0. */
static int mlp_hvp(const mgrad_chunk *chunk, const void *theta, const void *dir,
                   mgrad_hvp_out *out, void *user_data)
{
    mlp *m = user_data;
    const double *th = theta, *u = dir, *X = chunk->inputs, *w = chunk->weights;
    const int32_t *labels = chunk->labels;
    int64_t rows = chunk->rows;
    double scale = chunk->scale;
    double *hv = out->hu, *ld = out->loss_tangents, *xd = out->input_grad_tangents;
    note(m, 'h', chunk, out->version);
    m->hvp_calls++;
    if (m->fail_hvp_at != 0 && m->hvp_calls == m->fail_hvp_at) return -3;
    for (int64_t i = 0; i < rows; i++) {
        const double *x = X + i * F;
        double h[H], o[C], p[C], hd[H], od[C];
        mlp_forward(th, x, h, o);
        softmax_ce(o, labels[i], p);
        /* tangents of the forward */
        for (int k = 0; k < H; k++) {
            double a = u[OB1 + k];
            for (int j = 0; j < F; j++) a += u[OW1 + k * F + j] * x[j];
            hd[k] = (1 - h[k] * h[k]) * a;
        }
        double pod = 0, lt = 0;
        for (int c = 0; c < C; c++) {
            double v = u[OB2 + c];
            for (int k = 0; k < H; k++)
                v += u[OW2 + c * H + k] * h[k] + th[OW2 + c * H + k] * hd[k];
            od[c] = v;
            pod += p[c] * v;
            lt += (p[c] - (c == labels[i])) * v;
        }
        ld[i] = lt;
        if (hv == NULL && xd == NULL) continue;
        /* the backward and its tangent */
        double cw = scale * w[i], dout[C], doutd[C], dh[H], dhd[H], da[H], dad[H];
        for (int c = 0; c < C; c++) {
            dout[c] = cw * (p[c] - (c == labels[i]));
            doutd[c] = cw * p[c] * (od[c] - pod);
        }
        for (int k = 0; k < H; k++) {
            double s = 0, sd = 0;
            for (int c = 0; c < C; c++) {
                s += th[OW2 + c * H + k] * dout[c];
                sd += u[OW2 + c * H + k] * dout[c] + th[OW2 + c * H + k] * doutd[c];
            }
            dh[k] = s;
            dhd[k] = sd;
            da[k] = s * (1 - h[k] * h[k]);
            dad[k] = sd * (1 - h[k] * h[k]) - s * 2 * h[k] * hd[k];
        }
        if (hv != NULL) {
            for (int c = 0; c < C; c++) {
                for (int k = 0; k < H; k++)
                    hv[OW2 + c * H + k] += doutd[c] * h[k] + dout[c] * hd[k];
                hv[OB2 + c] += doutd[c];
            }
            for (int k = 0; k < H; k++) {
                for (int j = 0; j < F; j++) hv[OW1 + k * F + j] += dad[k] * x[j];
                hv[OB1 + k] += dad[k];
            }
        }
        if (xd != NULL)
            for (int j = 0; j < F; j++) {
                double s = 0;
                for (int k = 0; k < H; k++)
                    s += u[OW1 + k * F + j] * da[k] + th[OW1 + k * F + j] * dad[k];
                xd[i * F + j] = s;
            }
        (void)dh;
        (void)dhd;
    }
    return 0;
}

static int mlp_outputs(const mgrad_chunk *chunk, const void *theta, void *outputs,
                       void *user_data)
{
    note(user_data, 'o', chunk, 0);
    const double *X = chunk->inputs;
    double *O = outputs, h[H];
    for (int64_t i = 0; i < chunk->rows; i++) mlp_forward(theta, X + i * F, h, O + i * C);
    return 0;
}

/* ---- fixtures ------------------------------------------------------------ */

typedef struct config {
    const char *name;
    mgrad_optimizer opt;
    double lr, momentum, weight_decay, eps_root;
    int nesterov;
} config;

static const config CONFIGS[] = {
    {"momentum", MGRAD_OPTIMIZER_SGD, 0.2, 0.9, 0.01, 0, 0},
    {"nesterov", MGRAD_OPTIMIZER_SGD, 0.2, 0.8, 0.01, 0, 1},
    {"adam", MGRAD_OPTIMIZER_ADAM, 0.02, 0.9, 0.01, 1e-4, 0},
    {"adamw", MGRAD_OPTIMIZER_ADAMW, 0.02, 0.9, 0.05, 1e-4, 0},
};
#define NCONFIGS ((int)(sizeof CONFIGS / sizeof CONFIGS[0]))

typedef enum variant { BUILTIN, EXACT, APPROX, EXACT_NO_X } variant;

typedef struct fixture {
    mgrad_context *ctx;
    mgrad_model *model;
    mgrad_dataset *train, *val, *pool;
    mgrad_run *run;
    mlp user;
} fixture;

static mgrad_callback_model callback_model(mlp *user, variant v)
{
    mgrad_callback_model cb = MGRAD_CALLBACK_MODEL_INIT;
    cb.num_params = P;
    static const int64_t shape[1] = {F};
    cb.ndim = 1;
    cb.input_shape = shape;
    cb.num_outputs = C;
    cb.loss_grad = mlp_loss_grad;
    cb.hvp = v == APPROX ? NULL : mlp_hvp;
    cb.input_tangents = v == EXACT;
    cb.outputs = mlp_outputs;
    cb.user_data = user;
    return cb;
}

static mgrad_run_options run_options(const fixture *fx, const config *cfg)
{
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = T;
    o.batch_size = B;
    o.shuffle_seed = 5;
    tf_optimizer(&o, cfg->opt, cfg->lr, cfg->momentum, cfg->nesterov, cfg->weight_decay,
                 cfg->eps_root);
    o.validation = fx->val;
    return o;
}

/* The built-in model 6-8-tanh-3 is created in every variant: it supplies θ0. */
static void setup_opts(fixture *fx, const config *cfg, variant v, const mgrad_run_options *ro)
{
    memset(fx, 0, sizeof *fx);
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = MGRAD_DTYPE_F64; /* the callbacks below compute in double */
    co.seed = 7;
    ck_assert_int_eq(mgrad_context_create(&fx->ctx, &co), MGRAD_OK);
    tf_mlp(fx->ctx, F, H, C, &fx->model);
    tf_labelled_data(fx->ctx, NTRAIN, F, C, 11, &fx->train);
    tf_labelled_data(fx->ctx, NVAL, F, C, 23, &fx->val);
    tf_labelled_data(fx->ctx, NPOOL, F, C, 37, &fx->pool);
    mgrad_run_options o = ro != NULL ? *ro : run_options(fx, cfg);
    o.validation = fx->val;
    mgrad_status s;
    if (v == BUILTIN) {
        s = mgrad_run_create(&fx->run, fx->model, fx->train, &o);
    } else {
        double theta0[P];
        int64_t np = 0;
        ck_assert_int_eq(mgrad_model_num_params(fx->model, &np), MGRAD_OK);
        ck_assert_int_eq(np, P);
        ck_assert_int_eq(mgrad_model_get_params(fx->model, MGRAD_DTYPE_F64, theta0, P),
                         MGRAD_OK);
        mgrad_callback_model cb = callback_model(&fx->user, v);
        s = mgrad_run_create_callback(&fx->run, fx->ctx, &cb, theta0, fx->train, &o);
    }
    ck_assert_msg(s == MGRAD_OK, "create: %s", mgrad_context_last_error(fx->ctx));
}

static void setup(fixture *fx, const config *cfg, variant v)
{
    setup_opts(fx, cfg, v, NULL);
}

static void teardown(fixture *fx)
{
    tf_destroy(fx->ctx, fx->model, fx->run, fx->train, fx->val, fx->pool);
}

static const mgrad_meta_kind KINDS[] = {
    MGRAD_META_DATA_WEIGHTS, MGRAD_META_DATA_WEIGHTS, MGRAD_META_POOL_WEIGHTS,
    MGRAD_META_INPUTS, MGRAD_META_LR_SCHEDULE, MGRAD_META_WEIGHT_DECAY,
    MGRAD_META_MOMENTUM, MGRAD_META_BETA2, MGRAD_META_INITIAL_PARAMS,
};
static const char *KIND_NAMES[] = {
    "data_weights", "data_weights[4,9)", "pool_weights@7", "inputs[3 rows]",
    "lr_schedule", "weight_decay", "momentum/beta1", "beta2", "initial_params",
};
#define NKINDS ((int)(sizeof KINDS / sizeof KINDS[0]))

static mgrad_meta *add_meta(fixture *fx, int k)
{
    mgrad_meta_options mo = MGRAD_META_OPTIONS_INIT;
    static const int64_t rows[3] = {3, 17, 8};
    if (k == 1) {
        mo.step_begin = 4;
        mo.step_end = 9;
    }
    if (KINDS[k] == MGRAD_META_POOL_WEIGHTS) {
        mo.step = 7;
        mo.pool = fx->pool;
    }
    if (KINDS[k] == MGRAD_META_INPUTS) {
        mo.rows = rows;
        mo.num_rows = 3;
    }
    mgrad_meta *m = NULL;
    mgrad_status s = mgrad_run_add_meta(&m, fx->run, KINDS[k], &mo);
    ck_assert_msg(s == MGRAD_OK, "add_meta %s: %s", KIND_NAMES[k],
                  mgrad_context_last_error(fx->ctx));
    return m;
}

static int applicable(const config *cfg, int k)
{
    return !(KINDS[k] == MGRAD_META_BETA2 && cfg->opt == MGRAD_OPTIMIZER_SGD);
}

static double train_phi(fixture *fx) { return tf_train(fx->ctx, fx->run); }

static void train_reverse(fixture *fx)
{
    train_phi(fx);
    mgrad_status s = mgrad_run_reverse(fx->run);
    ck_assert_msg(s == MGRAD_OK, "reverse: %s", mgrad_context_last_error(fx->ctx));
}

/* max |a − b| / max |b| */
static double max_rel(const double *a, const double *b, int64_t n)
{
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs(a[i] - b[i]));
        s = fmax(s, fabs(b[i]));
    }
    return s > 0 ? d / s : d;
}

/* Every metaparameter of every applicable kind registered at once on two
   runs of the given variants; returns the worst max_rel over the kinds. */
static double compare_variants(const config *cfg, variant va, variant vb, int with_inputs,
                               int print)
{
    fixture a, b;
    setup(&a, cfg, va);
    setup(&b, cfg, vb);
    mgrad_meta *ma[NKINDS], *mb[NKINDS];
    for (int k = 0; k < NKINDS; k++) {
        ma[k] = mb[k] = NULL;
        if (!applicable(cfg, k) || k == 1) continue; /* windows may not overlap */
        if (KINDS[k] == MGRAD_META_INPUTS && !with_inputs) continue;
        ma[k] = add_meta(&a, k);
        mb[k] = add_meta(&b, k);
    }
    double phi_a = train_phi(&a), phi_b = train_phi(&b);
    ck_assert_int_eq(mgrad_run_reverse(a.run), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_reverse(b.run), MGRAD_OK);
    double worst = tu_rel_err(phi_a, phi_b, 1e-300);
    if (print) printf("callback %-9s φ rel diff %.2e\n", cfg->name, worst);
    for (int k = 0; k < NKINDS; k++) {
        if (ma[k] == NULL) continue;
        int64_t n = 0;
        mgrad_meta_size(ma[k], &n);
        double *ga = malloc((size_t)n * sizeof *ga), *gb = malloc((size_t)n * sizeof *gb);
        ck_assert_int_eq(mgrad_meta_get_grad(ma[k], MGRAD_DTYPE_F64, ga, n), MGRAD_OK);
        ck_assert_int_eq(mgrad_meta_get_grad(mb[k], MGRAD_DTYPE_F64, gb, n), MGRAD_OK);
        double e = max_rel(ga, gb, n);
        if (print) printf("callback %-9s %-18s max rel diff %.2e\n", cfg->name, KIND_NAMES[k], e);
        worst = fmax(worst, e);
        free(ga);
        free(gb);
    }
    teardown(&a);
    teardown(&b);
    return worst;
}

/* ---- 1. the callback MLP reproduces the built-in one -------------------- */

START_TEST(test_matches_builtin)
{
    const config *cfg = &CONFIGS[_i];
    double e = compare_variants(cfg, EXACT, BUILTIN, 1, 1);
    ck_assert_msg(e <= 1e-12, "%s: callback vs built-in metagradients differ by %.3e",
                  cfg->name, e);
    /* the window variant alone (it cannot share a run with all-steps weights) */
    fixture a, b;
    setup(&a, cfg, EXACT);
    setup(&b, cfg, BUILTIN);
    mgrad_meta *ma = add_meta(&a, 1), *mb = add_meta(&b, 1);
    train_reverse(&a);
    train_reverse(&b);
    double ga[NTRAIN], gb[NTRAIN];
    ck_assert_int_eq(mgrad_meta_get_grad(ma, MGRAD_DTYPE_F64, ga, NTRAIN), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(mb, MGRAD_DTYPE_F64, gb, NTRAIN), MGRAD_OK);
    e = max_rel(ga, gb, NTRAIN);
    ck_assert_msg(e <= 1e-12, "%s: data weights [4,9): %.3e", cfg->name, e);
    /* θ_T, evaluation and accuracy */
    double ta[P], tb[P], la, lb, aa, ab;
    ck_assert_int_eq(mgrad_run_get_params(a.run, MGRAD_DTYPE_F64, ta, P), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_get_params(b.run, MGRAD_DTYPE_F64, tb, P), MGRAD_OK);
    ck_assert(max_rel(ta, tb, P) <= 1e-13);
    ck_assert_int_eq(mgrad_run_evaluate(a.run, a.train, &la, &aa), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_evaluate(b.run, b.train, &lb, &ab), MGRAD_OK);
    ck_assert(tu_rel_err(la, lb, 1e-300) <= 1e-13);
    ck_assert_double_eq(aa, ab);
    mgrad_run_stats st = MGRAD_RUN_STATS_INIT;
    ck_assert_int_eq(mgrad_run_get_stats(a.run, &st), MGRAD_OK);
    ck_assert_int_eq(st.approximate, 0);
    teardown(&a);
    teardown(&b);
}
END_TEST

/* Replay is bit-exact for callback models too: binomial checkpointing with
   2 slots gives the store-all bits. */
START_TEST(test_checkpointing_bit_exact)
{
    const config *cfg = &CONFIGS[2];
    fixture a, b;
    setup(&a, cfg, EXACT);
    mgrad_run_options o = run_options(&a, cfg);
    o.checkpoint = MGRAD_CHECKPOINT_BINOMIAL;
    o.checkpoint_slots = 2;
    setup_opts(&b, cfg, EXACT, &o);
    mgrad_meta *ma = add_meta(&a, 4), *mb = add_meta(&b, 4);
    mgrad_meta *wa = add_meta(&a, 0), *wb = add_meta(&b, 0);
    train_reverse(&a);
    train_reverse(&b);
    double ga[T], gb[T], va[NTRAIN], vb[NTRAIN];
    ck_assert_int_eq(mgrad_meta_get_grad(ma, MGRAD_DTYPE_F64, ga, T), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(mb, MGRAD_DTYPE_F64, gb, T), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(wa, MGRAD_DTYPE_F64, va, NTRAIN), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(wb, MGRAD_DTYPE_F64, vb, NTRAIN), MGRAD_OK);
    ck_assert(memcmp(ga, gb, sizeof ga) == 0);
    ck_assert(memcmp(va, vb, sizeof va) == 0);
    mgrad_run_stats st = MGRAD_RUN_STATS_INIT;
    ck_assert_int_eq(mgrad_run_get_stats(b.run, &st), MGRAD_OK);
    ck_assert_int_gt(st.steps_recomputed, 0);
    teardown(&a);
    teardown(&b);
}
END_TEST

/* ---- 2. approximate mode -------------------------------------------------- */

START_TEST(test_approximate_mode)
{
    const config *cfg = &CONFIGS[_i];
    double e = compare_variants(cfg, APPROX, EXACT_NO_X, 0, 1);
    ck_assert_msg(e <= 1e-8, "%s: approximate vs exact metagradients differ by %.3e",
                  cfg->name, e);
    fixture fx;
    setup(&fx, cfg, APPROX);
    mgrad_run_stats st = MGRAD_RUN_STATS_INIT;
    ck_assert_int_eq(mgrad_run_get_stats(fx.run, &st), MGRAD_OK);
    ck_assert_int_eq(st.approximate, 1);
    mgrad_meta *m = NULL;
    ck_assert_int_eq(mgrad_run_add_meta(&m, fx.run, MGRAD_META_INPUTS, NULL),
                     MGRAD_ERR_UNSUPPORTED);
    ck_assert_ptr_null(m);
    ck_assert_ptr_nonnull(strstr(mgrad_context_last_error(fx.ctx), "approximate"));
    teardown(&fx);
}
END_TEST

/* ---- 3. failing callbacks ------------------------------------------------- */

static void get_lr_grad(fixture *fx, mgrad_meta *m, double *g)
{
    ck_assert_int_eq(mgrad_meta_get_grad(m, MGRAD_DTYPE_F64, g, T), MGRAD_OK);
}

START_TEST(test_callback_failure)
{
    const config *cfg = &CONFIGS[0];
    fixture ref, fx;
    setup(&ref, cfg, EXACT);
    mgrad_meta *mr = add_meta(&ref, 4);
    train_reverse(&ref);
    double gref[T], g[T];
    get_lr_grad(&ref, mr, gref);

    setup(&fx, cfg, EXACT);
    mgrad_meta *m = add_meta(&fx, 4);
    double phi = 123;
    /* loss_grad fails on its 4th call: training step 3 */
    fx.user.fail_loss_at = 4;
    ck_assert_int_eq(mgrad_run_train(fx.run, &phi), MGRAD_ERR_CALLBACK);
    ck_assert_double_eq(phi, 123);
    const char *msg = mgrad_context_last_error(fx.ctx);
    ck_assert_msg(strstr(msg, "loss_grad") && strstr(msg, "returned 42") &&
                  strstr(msg, "training step 3"), "message: %s", msg);
    ck_assert_int_eq(mgrad_run_reverse(fx.run), MGRAD_ERR_ORDER);
    /* the output function: T calls of the steps, then the validation set */
    fx.user.loss_calls = 0;
    fx.user.fail_loss_at = T + 1;
    ck_assert_int_eq(mgrad_run_train(fx.run, &phi), MGRAD_ERR_CALLBACK);
    msg = mgrad_context_last_error(fx.ctx);
    ck_assert_msg(strstr(msg, "output function") != NULL, "message: %s", msg);
    /* hvp fails on its 2nd call: the reverse of step T − 2 */
    fx.user.fail_loss_at = 0;
    train_phi(&fx);
    fx.user.hvp_calls = 0;
    fx.user.fail_hvp_at = 2;
    ck_assert_int_eq(mgrad_run_reverse(fx.run), MGRAD_ERR_CALLBACK);
    msg = mgrad_context_last_error(fx.ctx);
    char want[64];
    snprintf(want, sizeof want, "the reverse of step %d", T - 2);
    ck_assert_msg(strstr(msg, "hvp") && strstr(msg, "returned -3") && strstr(msg, want),
                  "message: %s", msg);
    ck_assert_int_eq(mgrad_meta_get_grad(m, MGRAD_DTYPE_F64, g, T), MGRAD_ERR_ORDER);
    /* the run is still usable and exact */
    fx.user.fail_hvp_at = 0;
    train_reverse(&fx);
    get_lr_grad(&fx, m, g);
    ck_assert(memcmp(g, gref, sizeof g) == 0);
    teardown(&fx);
    teardown(&ref);
}
END_TEST

/* ---- 4. whole-run finite differences ------------------------------------- */

static double fd_check(fixture *fx, mgrad_meta *m, uint64_t seed, double *out_dir)
{
    int64_t n = 0;
    ck_assert_int_eq(mgrad_meta_size(m, &n), MGRAD_OK);
    double *z = malloc((size_t)n * sizeof *z), *g = malloc((size_t)n * sizeof *g);
    double *v = malloc((size_t)n * sizeof *v), *zz = malloc((size_t)n * sizeof *zz);
    ck_assert_int_eq(mgrad_meta_get_value(m, MGRAD_DTYPE_F64, z, n), MGRAD_OK);
    train_reverse(fx);
    ck_assert_int_eq(mgrad_meta_get_grad(m, MGRAD_DTYPE_F64, g, n), MGRAD_OK);
    uint64_t st = seed;
    tu_fill(v, (size_t)n, &st, 1.0);
    mgrad_meta_kind kind;
    mgrad_meta_kind_of(m, &kind);
    if (kind == MGRAD_META_MOMENTUM || kind == MGRAD_META_BETA2) v[0] = -1.0;
    if (kind == MGRAD_META_WEIGHT_DECAY) v[0] = 1.0;
    double dir = 0;
    for (int64_t i = 0; i < n; i++) dir += g[i] * v[i];
    double h = 1e-5;
    for (int64_t i = 0; i < n; i++) zz[i] = z[i] + h * v[i];
    ck_assert_int_eq(mgrad_meta_set_value(m, MGRAD_DTYPE_F64, zz, n), MGRAD_OK);
    double phi_p = train_phi(fx);
    for (int64_t i = 0; i < n; i++) zz[i] = z[i] - h * v[i];
    ck_assert_int_eq(mgrad_meta_set_value(m, MGRAD_DTYPE_F64, zz, n), MGRAD_OK);
    double phi_m = train_phi(fx);
    ck_assert_int_eq(mgrad_meta_set_value(m, MGRAD_DTYPE_F64, z, n), MGRAD_OK);
    double fd = (phi_p - phi_m) / (2 * h);
    free(z);
    free(g);
    free(v);
    free(zz);
    *out_dir = dir;
    return tu_rel_err(dir, fd, 1e-8);
}

START_TEST(test_fd_whole_run)
{
    const config *cfg = &CONFIGS[_i];
    for (int k = 0; k < NKINDS; k++) {
        if (!applicable(cfg, k)) continue;
        fixture fx;
        setup(&fx, cfg, EXACT);
        mgrad_meta *m = add_meta(&fx, k);
        double dir = 0, err = fd_check(&fx, m, 1000 + (uint64_t)k, &dir);
        printf("callback fd %-9s %-18s <g,v> = %+.10e  rel err %.2e\n", cfg->name,
               KIND_NAMES[k], dir, err);
        ck_assert_msg(err <= 1e-6, "%s / %s: metagradient %.12e vs finite differences, "
                      "relative error %.3e", cfg->name, KIND_NAMES[k], dir, err);
        teardown(&fx);
    }
}
END_TEST

/* ---- API rules ------------------------------------------------------------ */

START_TEST(test_model_init)
{
    mgrad_callback_model a = MGRAD_CALLBACK_MODEL_INIT, b;
    memset(&b, 0xff, sizeof b);
    ck_assert_int_eq(mgrad_callback_model_init(&b, MGRAD_CALLBACK_MODEL_VERSION), MGRAD_OK);
    ck_assert_uint_eq(a.version, b.version);
    ck_assert(a.num_params == b.num_params && a.ndim == b.ndim && a.num_outputs == b.num_outputs);
    ck_assert_ptr_null(a.input_shape);
    ck_assert_ptr_null(b.input_shape);
    ck_assert(a.loss_grad == b.loss_grad && a.hvp == b.hvp && a.outputs == b.outputs);
    ck_assert(a.input_tangents == b.input_tangents && a.user_data == b.user_data);
    ck_assert_int_eq(mgrad_callback_model_init(&b, 99), MGRAD_ERR_VERSION);
    ck_assert_int_eq(mgrad_callback_model_init(NULL, MGRAD_CALLBACK_MODEL_VERSION),
                     MGRAD_ERR_NULL);
}
END_TEST

START_TEST(test_create_validation)
{
    fixture fx;
    setup(&fx, &CONFIGS[0], EXACT);
    mlp user;
    memset(&user, 0, sizeof user);
    double theta0[P];
    memset(theta0, 0, sizeof theta0);
    mgrad_run_options o = run_options(&fx, &CONFIGS[0]);
    mgrad_run *run = NULL;
    mgrad_callback_model cb = callback_model(&user, EXACT);
    ck_assert_int_eq(mgrad_run_create_callback(&run, NULL, &cb, theta0, fx.train, &o),
                     MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_run_create_callback(&run, fx.ctx, &cb, NULL, fx.train, &o),
                     MGRAD_ERR_NULL);
    cb.loss_grad = NULL;
    ck_assert_int_eq(mgrad_run_create_callback(&run, fx.ctx, &cb, theta0, fx.train, &o),
                     MGRAD_ERR_NULL);
    cb = callback_model(&user, EXACT);
    cb.version = 7;
    ck_assert_int_eq(mgrad_run_create_callback(&run, fx.ctx, &cb, theta0, fx.train, &o),
                     MGRAD_ERR_VERSION);
    cb = callback_model(&user, EXACT);
    cb.num_params = 0;
    ck_assert_int_eq(mgrad_run_create_callback(&run, fx.ctx, &cb, theta0, fx.train, &o),
                     MGRAD_ERR_INVALID);
    cb = callback_model(&user, EXACT);
    cb.version = 1; /* the positional callbacks of 0.1 */
    ck_assert_int_eq(mgrad_run_create_callback(&run, fx.ctx, &cb, theta0, fx.train, &o),
                     MGRAD_ERR_VERSION);
    ck_assert_ptr_nonnull(strstr(mgrad_context_last_error(fx.ctx), "mgrad_chunk"));
    cb = callback_model(&user, EXACT);
    cb.ndim = 0;
    ck_assert_int_eq(mgrad_run_create_callback(&run, fx.ctx, &cb, theta0, fx.train, &o),
                     MGRAD_ERR_INVALID);
    cb = callback_model(&user, EXACT);
    cb.input_shape = NULL;
    ck_assert_int_eq(mgrad_run_create_callback(&run, fx.ctx, &cb, theta0, fx.train, &o),
                     MGRAD_ERR_NULL);
    ck_assert_ptr_nonnull(strstr(mgrad_context_last_error(fx.ctx), "input_shape"));
    const int64_t wider[1] = {F + 1}, zero_dim[4] = {1, 2, 0, 3};
    const int64_t huge[4] = {INT64_MAX / 2, 1, 1, 3}; /* the product overflows */
    cb = callback_model(&user, EXACT);
    cb.input_shape = wider;
    ck_assert_int_eq(mgrad_run_create_callback(&run, fx.ctx, &cb, theta0, fx.train, &o),
                     MGRAD_ERR_SHAPE);
    cb.ndim = 4;
    cb.input_shape = zero_dim;
    ck_assert_int_eq(mgrad_run_create_callback(&run, fx.ctx, &cb, theta0, fx.train, &o),
                     MGRAD_ERR_INVALID);
    cb.input_shape = huge;
    ck_assert_int_eq(mgrad_run_create_callback(&run, fx.ctx, &cb, theta0, fx.train, &o),
                     MGRAD_ERR_INVALID);
    cb = callback_model(&user, EXACT);
    cb.num_outputs = C + 1;
    ck_assert_int_eq(mgrad_run_create_callback(&run, fx.ctx, &cb, theta0, fx.train, &o),
                     MGRAD_ERR_SHAPE);
    cb = callback_model(&user, APPROX);
    cb.input_tangents = 1;
    ck_assert_int_eq(mgrad_run_create_callback(&run, fx.ctx, &cb, theta0, fx.train, &o),
                     MGRAD_ERR_INVALID);
    cb = callback_model(&user, EXACT);
    o.label_smoothing = 0.1;
    ck_assert_int_eq(mgrad_run_create_callback(&run, fx.ctx, &cb, theta0, fx.train, &o),
                     MGRAD_ERR_INVALID);
    o.label_smoothing = 0;
    theta0[5] = NAN;
    ck_assert_int_eq(mgrad_run_create_callback(&run, fx.ctx, &cb, theta0, fx.train, &o),
                     MGRAD_ERR_NONFINITE);
    theta0[5] = 0;
    o.steps = 0;
    ck_assert_int_eq(mgrad_run_create_callback(&run, fx.ctx, &cb, theta0, fx.train, &o),
                     MGRAD_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(mgrad_context_last_error(fx.ctx),
                                 "mgrad_run_create_callback"));
    ck_assert_ptr_null(run);
    ck_assert_int_eq(user.loss_calls + user.hvp_calls, 0); /* creation calls nothing */
    teardown(&fx);
}
END_TEST

/* A caller of stats `version`, whose struct ends at byte `end` (where the
   next version's fields begin): the call fills its fields and writes nothing
   from `end` on (the 0xab guard bytes survive). */
static void check_old_stats(mgrad_run *run, uint32_t version, size_t end)
{
    struct {
        mgrad_run_stats st;
        char guard[64];
    } s;
    memset(&s, 0xab, sizeof s);
    s.st.version = version;
    ck_assert_int_eq(mgrad_run_get_stats(run, &s.st), MGRAD_OK);
    ck_assert_int_eq(s.st.steps_run, T);
    if (version >= 2) ck_assert_int_eq(s.st.approximate, 0);
    const unsigned char *bytes = (const unsigned char *)&s;
    for (size_t i = end; i < sizeof s; i++) ck_assert_uint_eq(bytes[i], 0xab);
}

START_TEST(test_unsupported_and_stats_versions)
{
    fixture fx;
    setup(&fx, &CONFIGS[0], EXACT_NO_X);
    mgrad_meta *m = NULL;
    ck_assert_int_eq(mgrad_run_add_meta(&m, fx.run, MGRAD_META_SOFT_LABELS, NULL),
                     MGRAD_ERR_UNSUPPORTED);
    ck_assert_int_eq(mgrad_run_add_meta(&m, fx.run, MGRAD_META_INPUTS, NULL),
                     MGRAD_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(mgrad_context_last_error(fx.ctx), "input_tangents"));
    train_phi(&fx);
    /* older callers get their fields and nothing beyond */
    check_old_stats(fx.run, 1, offsetof(mgrad_run_stats, approximate));
    check_old_stats(fx.run, 2, offsetof(mgrad_run_stats, approximate) + sizeof(int32_t));
    mgrad_run_stats v3 = MGRAD_RUN_STATS_INIT;
    ck_assert_uint_eq(v3.version, 3);
    ck_assert_int_eq(mgrad_run_get_stats(fx.run, &v3), MGRAD_OK);
    ck_assert_int_eq(v3.steps_run, T);
    ck_assert_int_eq(v3.memo_bytes, 0); /* a callback model has no memo */
    ck_assert_int_eq(v3.memo_hits, 0);
    v3.version = 4;
    ck_assert_int_eq(mgrad_run_get_stats(fx.run, &v3), MGRAD_ERR_VERSION);
    v3.version = 0;
    ck_assert_int_eq(mgrad_run_get_stats(fx.run, &v3), MGRAD_ERR_VERSION);
    teardown(&fx);
}
END_TEST

/* Without an outputs callback, evaluate gives the loss and NaN accuracy. */
START_TEST(test_evaluate_without_outputs)
{
    fixture fx;
    setup(&fx, &CONFIGS[0], EXACT);
    double theta0[P];
    ck_assert_int_eq(mgrad_model_get_params(fx.model, MGRAD_DTYPE_F64, theta0, P), MGRAD_OK);
    mgrad_callback_model cb = callback_model(&fx.user, EXACT);
    cb.outputs = NULL;
    mgrad_run_options o = run_options(&fx, &CONFIGS[0]);
    mgrad_run *run = NULL;
    ck_assert_int_eq(mgrad_run_create_callback(&run, fx.ctx, &cb, theta0, fx.train, &o),
                     MGRAD_OK);
    double phi = 0, loss = 0, acc = 0, loss_ref = 0, acc_ref = 0;
    ck_assert_int_eq(mgrad_run_train(run, &phi), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_evaluate(run, fx.val, &loss, &acc), MGRAD_OK);
    ck_assert(isnan(acc));
    ck_assert_double_eq(loss, phi);
    train_phi(&fx);
    ck_assert_int_eq(mgrad_run_evaluate(fx.run, fx.val, &loss_ref, &acc_ref), MGRAD_OK);
    ck_assert_double_eq(loss, loss_ref);
    ck_assert(acc_ref >= 0 && acc_ref <= 1);
    mgrad_run_destroy(run);
    teardown(&fx);
}
END_TEST

/* ---- the chunk the callbacks see ----------------------------------------- */

/* Every call passes a chunk and an output struct of this library's versions,
   and says where the library is: training steps 0 … T−1 in order, then the
   output function (with ∇φ, since the run has a metaparameter to reverse:
   mgrad_run_train); in the reverse pass the products of steps T−1 … 0 (∇φ
   is not evaluated again); the queries at θ_T (evaluate, H u). */
START_TEST(test_chunk_phases)
{
    fixture fx;
    setup(&fx, &CONFIGS[0], EXACT);
    seen log[MAX_SEEN];
    fx.user.log = log;
    add_meta(&fx, 4); /* lr_schedule */
    train_phi(&fx);
    int64_t n = fx.user.num_seen, val_rows = 0;
    ck_assert_int_gt(n, T);
    for (int64_t i = 0; i < n; i++) {
        const seen *s = &log[i];
        ck_assert_int_eq(s->fn, 'l');
        ck_assert_uint_eq(s->version, MGRAD_CHUNK_VERSION);
        ck_assert_uint_eq(s->out_version, MGRAD_LOSS_GRAD_OUT_VERSION);
        if (i < T) { /* one chunk per step: the batch (no pools here) */
            ck_assert_int_eq(s->phase, MGRAD_CALLBACK_PHASE_TRAIN);
            ck_assert_int_eq(s->step, i);
            ck_assert_int_eq(s->rows, B);
            ck_assert_double_eq(s->scale, 1.0 / B);
        } else {
            ck_assert_int_eq(s->phase, MGRAD_CALLBACK_PHASE_OUTPUT);
            ck_assert_int_eq(s->step, -1);
            ck_assert_double_eq(s->scale, 1.0 / NVAL);
            ck_assert(s->grad); /* ∇φ for the reverse */
            val_rows += s->rows;
        }
    }
    ck_assert_int_eq(val_rows, NVAL);

    fx.user.num_seen = 0;
    ck_assert_int_eq(mgrad_run_reverse(fx.run), MGRAD_OK);
    int64_t next = T - 1, grad_rows = 0;
    for (int64_t i = 0; i < fx.user.num_seen; i++) {
        const seen *s = &log[i];
        ck_assert_uint_eq(s->version, MGRAD_CHUNK_VERSION);
        if (s->fn == 'h') {
            ck_assert_uint_eq(s->out_version, MGRAD_HVP_OUT_VERSION);
            ck_assert_int_eq(s->phase, MGRAD_CALLBACK_PHASE_REVERSE);
            ck_assert_int_eq(s->step, next);
            ck_assert_int_eq(s->rows, B);
            ck_assert_double_eq(s->scale, 1.0 / B);
            next--;
            continue;
        }
        ck_assert_int_eq(s->fn, 'l');
        ck_assert_uint_eq(s->out_version, MGRAD_LOSS_GRAD_OUT_VERSION);
        if (s->phase == MGRAD_CALLBACK_PHASE_OUTPUT) { /* not expected: see above */
            grad_rows += s->rows;
        } else { /* the gradient of a step again, or a step recomputed */
            ck_assert(s->phase == MGRAD_CALLBACK_PHASE_REVERSE ||
                      s->phase == MGRAD_CALLBACK_PHASE_TRAIN);
            ck_assert(s->step >= 0 && s->step < T);
        }
    }
    ck_assert_int_eq(next, -1);
    ck_assert_int_eq(grad_rows, 0);

    fx.user.num_seen = 0;
    double loss = 0, acc = 0, u[P], hu[P];
    ck_assert_int_eq(mgrad_run_evaluate(fx.run, fx.train, &loss, &acc), MGRAD_OK);
    for (int p = 0; p < P; p++) u[p] = 1.0 / (1 + p);
    ck_assert_int_eq(mgrad_run_hvp(fx.run, MGRAD_DTYPE_F64, u, hu, P), MGRAD_OK);
    int64_t rows_of[3] = {0, 0, 0}; /* loss_grad, outputs, hvp */
    for (int64_t i = 0; i < fx.user.num_seen; i++) {
        const seen *s = &log[i];
        ck_assert_uint_eq(s->version, MGRAD_CHUNK_VERSION);
        ck_assert_int_eq(s->phase, MGRAD_CALLBACK_PHASE_EVAL);
        ck_assert_int_eq(s->step, -1);
        ck_assert_double_eq(s->scale, 1.0 / NTRAIN);
        rows_of[s->fn == 'l' ? 0 : s->fn == 'o' ? 1 : 2] += s->rows;
    }
    ck_assert_int_eq(rows_of[0], NTRAIN);
    ck_assert_int_eq(rows_of[1], NTRAIN);
    ck_assert_int_eq(rows_of[2], NTRAIN);
    teardown(&fx);
}
END_TEST

/* Input shapes of any rank: a 4-D shape with F values per example gives the
   1-D run's bits (the library sees only F), and the run keeps its own copy
   of the shape (the caller's array is freed before training; ASan builds
   would catch a read of it). */
START_TEST(test_input_shape_any_rank)
{
    const config *cfg = &CONFIGS[2];
    fixture a, b;
    setup(&a, cfg, EXACT);
    setup(&b, cfg, EXACT);
    mgrad_run_destroy(b.run);
    b.run = NULL;
    double theta0[P];
    ck_assert_int_eq(mgrad_model_get_params(b.model, MGRAD_DTYPE_F64, theta0, P), MGRAD_OK);
    mgrad_callback_model cb = callback_model(&b.user, EXACT);
    int64_t *shape = malloc(4 * sizeof *shape);
    ck_assert_ptr_nonnull(shape);
    shape[0] = 1;
    shape[1] = 2;
    shape[2] = 3;
    shape[3] = 1;
    cb.ndim = 4;
    cb.input_shape = shape;
    mgrad_run_options o = run_options(&b, cfg);
    mgrad_status s = mgrad_run_create_callback(&b.run, b.ctx, &cb, theta0, b.train, &o);
    ck_assert_msg(s == MGRAD_OK, "create: %s", mgrad_context_last_error(b.ctx));
    free(shape);
    mgrad_meta *ma = add_meta(&a, 4), *mb = add_meta(&b, 4);
    mgrad_meta *xa = add_meta(&a, 3), *xb = add_meta(&b, 3); /* inputs: [3, F] */
    double phi_a = train_phi(&a), phi_b = train_phi(&b);
    ck_assert(memcmp(&phi_a, &phi_b, sizeof phi_a) == 0);
    ck_assert_int_eq(mgrad_run_reverse(a.run), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_reverse(b.run), MGRAD_OK);
    double ga[T], gb[T], xga[3 * F], xgb[3 * F];
    ck_assert_int_eq(mgrad_meta_get_grad(ma, MGRAD_DTYPE_F64, ga, T), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(mb, MGRAD_DTYPE_F64, gb, T), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(xa, MGRAD_DTYPE_F64, xga, 3 * F), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(xb, MGRAD_DTYPE_F64, xgb, 3 * F), MGRAD_OK);
    ck_assert(memcmp(ga, gb, sizeof ga) == 0);
    ck_assert(memcmp(xga, xgb, sizeof xga) == 0);
    teardown(&a);
    teardown(&b);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("callback");
    TCase *tc = tcase_create("callback");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_model_init);
    tcase_add_test(tc, test_create_validation);
    tcase_add_test(tc, test_unsupported_and_stats_versions);
    tcase_add_test(tc, test_evaluate_without_outputs);
    tcase_add_test(tc, test_chunk_phases);
    tcase_add_test(tc, test_input_shape_any_rank);
    tcase_add_loop_test(tc, test_matches_builtin, 0, NCONFIGS);
    tcase_add_test(tc, test_checkpointing_bit_exact);
    tcase_add_loop_test(tc, test_approximate_mode, 0, NCONFIGS);
    tcase_add_test(tc, test_callback_failure);
    tcase_add_loop_test(tc, test_fd_whole_run, 0, NCONFIGS);
    suite_add_tcase(s, tc);
    return s;
}
