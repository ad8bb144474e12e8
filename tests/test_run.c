/*
 * test_run.c - whole-run metagradients against central finite differences
 * of whole training runs (f64), f32 against f64, determinism.
 *
 * For every optimizer and every metaparameter kind: train an MLP with two
 * hidden layers for 12 steps, take the metagradient g = dφ/dz, pick a random
 * direction v, and compare ⟨g, v⟩ with (φ(z + hv) − φ(z − hv)) / 2h.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "metagrad.h"
#include "run/run_internal.h" /* mgr_run_train_value */
#include "testutil.h"

enum { NTRAIN = 24, NVAL = 16, NPOOL = 10, F = 6, C = 3, T = 12, B = 6 };

typedef struct config {
    const char *name;
    mgrad_optimizer opt;
    double lr, momentum, weight_decay, eps_root;
    int nesterov;
    mgrad_loss loss;
    double smoothing;
    int residual;
    int relu;          /* ReLU for both hidden activations (else tanh, GELU) */
    int batch;         /* 0: B */
    int slots;         /* > 0: binomial checkpointing with these slots */
} config;

static const config CONFIGS[] = {
    {"sgd", MGRAD_OPTIMIZER_SGD, 0.3, 0.0, 0.01, 0, 0, MGRAD_LOSS_CROSS_ENTROPY, 0, 0, 0, 0, 0},
    {"momentum", MGRAD_OPTIMIZER_SGD, 0.2, 0.9, 0.01, 0, 0, MGRAD_LOSS_CROSS_ENTROPY, 0, 0, 0, 0, 0},
    {"nesterov", MGRAD_OPTIMIZER_SGD, 0.2, 0.8, 0.01, 0, 1, MGRAD_LOSS_CROSS_ENTROPY, 0, 0, 0, 0, 0},
    {"adam", MGRAD_OPTIMIZER_ADAM, 0.02, 0.9, 0.01, 1e-4, 0, MGRAD_LOSS_CROSS_ENTROPY, 0, 0, 0, 0, 0},
    {"adamw", MGRAD_OPTIMIZER_ADAMW, 0.02, 0.9, 0.05, 1e-4, 0, MGRAD_LOSS_CROSS_ENTROPY, 0, 0, 0, 0, 0},
};
#define NCONFIGS ((int)(sizeof CONFIGS / sizeof CONFIGS[0]))

static const config SQUARED = {"squared", MGRAD_OPTIMIZER_SGD, 0.1, 0.5, 0.01, 0, 0,
                               MGRAD_LOSS_SQUARED_ERROR, 0, 1, 0, 0, 0};
static const config SMOOTHED = {"smoothed", MGRAD_OPTIMIZER_SGD, 0.3, 0.5, 0.01, 0, 0,
                                MGRAD_LOSS_CROSS_ENTROPY, 0.1, 1, 0, 0, 0};

/* ReLU networks take the R-op's reduced backward (no input-side adjoints,
   graph_exec.c); with momentum the reverse also skips g (optim.h). */
static const config RELU_CONFIGS[] = {
    {"relu-mom-res", MGRAD_OPTIMIZER_SGD, 0.2, 0.9, 0.01, 0, 0, MGRAD_LOSS_CROSS_ENTROPY, 0, 1,
     1, 0, 0},
    {"relu-adam", MGRAD_OPTIMIZER_ADAM, 0.02, 0.9, 0.01, 1e-4, 0, MGRAD_LOSS_CROSS_ENTROPY, 0,
     0, 1, 0, 0},
    /* Batch 2 with momentum: the forward memo is on (a quarter of a state at
       most), and binomial checkpointing serves most forwards from it. */
    {"relu-memo", MGRAD_OPTIMIZER_SGD, 0.2, 0.9, 0.01, 0, 0, MGRAD_LOSS_CROSS_ENTROPY, 0, 1,
     1, 2, 3},
};
#define NRELU ((int)(sizeof RELU_CONFIGS / sizeof RELU_CONFIGS[0]))

typedef struct fixture {
    mgrad_context *ctx;
    mgrad_model *model;
    mgrad_dataset *train, *val, *pool;
    mgrad_run *run;
} fixture;

/* Targets are always drawn, so that both losses see the same features. */
static void make_data(mgrad_context *ctx, int n, uint64_t seed, mgrad_loss loss,
                      mgrad_dataset **out)
{
    tf_data(ctx, n, F, C, seed, 1, loss != MGRAD_LOSS_CROSS_ENTROPY, out);
}

static void setup(fixture *fx, const config *cfg, mgrad_dtype dtype)
{
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = dtype;
    co.seed = 7;
    ck_assert_int_eq(mgrad_context_create(&fx->ctx, &co), MGRAD_OK);
    int64_t shape[1] = {F};
    ck_assert_int_eq(mgrad_model_create(&fx->model, fx->ctx, 1, shape), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(fx->model, 8, MGRAD_INIT_DEFAULT), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_activation(
                         fx->model, cfg->relu ? MGRAD_ACTIVATION_RELU : MGRAD_ACTIVATION_TANH),
                     MGRAD_OK);
    int32_t mark = 0;
    ck_assert_int_eq(mgrad_model_mark(fx->model, &mark), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(fx->model, 8, MGRAD_INIT_XAVIER_NORMAL), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_activation(
                         fx->model, cfg->relu ? MGRAD_ACTIVATION_RELU : MGRAD_ACTIVATION_GELU),
                     MGRAD_OK);
    if (cfg->residual)
        ck_assert_int_eq(mgrad_model_add_residual(fx->model, mark), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(fx->model, C, MGRAD_INIT_DEFAULT), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_scale(fx->model, 0.5), MGRAD_OK);
    make_data(fx->ctx, NTRAIN, 11, cfg->loss, &fx->train);
    make_data(fx->ctx, NVAL, 23, cfg->loss, &fx->val);
    make_data(fx->ctx, NPOOL, 37, cfg->loss, &fx->pool);

    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = T;
    o.batch_size = cfg->batch > 0 ? cfg->batch : B;
    if (cfg->slots > 0) {
        o.checkpoint = MGRAD_CHECKPOINT_BINOMIAL;
        o.checkpoint_slots = cfg->slots;
    }
    o.shuffle_seed = 5;
    tf_optimizer(&o, cfg->opt, cfg->lr, cfg->momentum, cfg->nesterov, cfg->weight_decay,
                 cfg->eps_root);
    o.loss = cfg->loss;
    o.label_smoothing = cfg->smoothing;
    o.validation = fx->val;
    ck_assert_int_eq(mgrad_run_create(&fx->run, fx->model, fx->train, &o), MGRAD_OK);
}

static void teardown(fixture *fx)
{
    tf_destroy(fx->ctx, fx->model, fx->run, fx->train, fx->val, fx->pool);
}

static mgrad_meta *add_meta(fixture *fx, mgrad_meta_kind kind, int variant)
{
    mgrad_meta_options mo = MGRAD_META_OPTIONS_INIT;
    static const int64_t rows[3] = {3, 17, 8};
    if (kind == MGRAD_META_DATA_WEIGHTS && variant == 1) {
        mo.step_begin = 4;
        mo.step_end = 9;
    }
    if (kind == MGRAD_META_POOL_WEIGHTS) {
        mo.step = 7;
        mo.pool = fx->pool;
    }
    if (kind == MGRAD_META_INPUTS) {
        mo.rows = rows;
        mo.num_rows = 3;
    }
    return tf_add_meta(fx->ctx, fx->run, kind, &mo);
}

static double train_phi(fixture *fx) { return tf_train(fx->ctx, fx->run); }

/* Relative error of the directional metagradient against central FD. */
static double fd_check(fixture *fx, mgrad_meta *m, uint64_t seed, double *out_dir)
{
    int64_t n = 0;
    ck_assert_int_eq(mgrad_meta_size(m, &n), MGRAD_OK);
    double *z = malloc((size_t)n * sizeof *z), *g = malloc((size_t)n * sizeof *g);
    double *v = malloc((size_t)n * sizeof *v), *zz = malloc((size_t)n * sizeof *zz);
    ck_assert_int_eq(mgrad_meta_get_value(m, MGRAD_DTYPE_F64, z, n), MGRAD_OK);
    train_phi(fx);
    mgrad_status s = mgrad_run_reverse(fx->run);
    ck_assert_msg(s == MGRAD_OK, "reverse: %s", mgrad_context_last_error(fx->ctx));
    ck_assert_int_eq(mgrad_meta_get_grad(m, MGRAD_DTYPE_F64, g, n), MGRAD_OK);
    uint64_t st = seed;
    tu_fill(v, (size_t)n, &st, 1.0);
    mgrad_meta_kind kind;
    mgrad_meta_kind_of(m, &kind);
    double scale = 1.0;
    if (kind == MGRAD_META_MOMENTUM || kind == MGRAD_META_BETA2) v[0] = -1.0; /* stay < 1 */
    if (kind == MGRAD_META_WEIGHT_DECAY) v[0] = 1.0;
    double dir = 0;
    for (int64_t i = 0; i < n; i++) dir += g[i] * v[i];
    double h = 1e-5 * scale, phi_p, phi_m;
    for (int64_t i = 0; i < n; i++) zz[i] = z[i] + h * v[i];
    ck_assert_int_eq(mgrad_meta_set_value(m, MGRAD_DTYPE_F64, zz, n), MGRAD_OK);
    phi_p = train_phi(fx);
    for (int64_t i = 0; i < n; i++) zz[i] = z[i] - h * v[i];
    ck_assert_int_eq(mgrad_meta_set_value(m, MGRAD_DTYPE_F64, zz, n), MGRAD_OK);
    phi_m = train_phi(fx);
    ck_assert_int_eq(mgrad_meta_set_value(m, MGRAD_DTYPE_F64, z, n), MGRAD_OK);
    double fd = (phi_p - phi_m) / (2 * h);
    free(z);
    free(g);
    free(v);
    free(zz);
    if (out_dir != NULL) *out_dir = dir;
    return tu_rel_err(dir, fd, 1e-8);
}

static const mgrad_meta_kind KINDS[] = {
    MGRAD_META_DATA_WEIGHTS, MGRAD_META_DATA_WEIGHTS, MGRAD_META_POOL_WEIGHTS,
    MGRAD_META_INPUTS, MGRAD_META_SOFT_LABELS, MGRAD_META_LR_SCHEDULE,
    MGRAD_META_WEIGHT_DECAY, MGRAD_META_MOMENTUM, MGRAD_META_BETA2,
    MGRAD_META_INITIAL_PARAMS,
};
static const char *KIND_NAMES[] = {
    "data_weights", "data_weights[4,9)", "pool_weights@7", "inputs[3 rows]", "soft_labels",
    "lr_schedule", "weight_decay", "momentum/beta1", "beta2", "initial_params",
};
#define NKINDS ((int)(sizeof KINDS / sizeof KINDS[0]))

static void check_config(const config *cfg)
{
    for (int k = 0; k < NKINDS; k++) {
        if (KINDS[k] == MGRAD_META_BETA2 && cfg->opt == MGRAD_OPTIMIZER_SGD) continue;
        if (KINDS[k] == MGRAD_META_MOMENTUM && cfg->opt == MGRAD_OPTIMIZER_SGD &&
            cfg->momentum == 0)
            continue; /* μ = 0 sits on the boundary of its range */
        fixture fx;
        setup(&fx, cfg, MGRAD_DTYPE_F64);
        mgrad_meta *m = add_meta(&fx, KINDS[k], k == 1);
        double dir = 0;
        double err = fd_check(&fx, m, 1000 + (uint64_t)k, &dir);
        /* the statistics of a train + reverse (fd_check ends on a train) */
        ck_assert_int_eq(mgrad_run_train(fx.run, NULL), MGRAD_OK);
        ck_assert_int_eq(mgrad_run_reverse(fx.run), MGRAD_OK);
        mgrad_run_stats st = MGRAD_RUN_STATS_INIT;
        ck_assert_int_eq(mgrad_run_get_stats(fx.run, &st), MGRAD_OK);
        printf("fd %-9s %-18s <g,v> = %+.10e  rel err %.2e  (memo hits %lld)\n", cfg->name,
               KIND_NAMES[k], dir, err, (long long)st.memo_hits);
        if (cfg->batch > 0 && cfg->batch < B)
            ck_assert_msg(st.memo_bytes > 0 && st.memo_hits > 0, "%s: memo %lld B, %lld hits",
                          cfg->name, (long long)st.memo_bytes, (long long)st.memo_hits);
        ck_assert_msg(err <= 1e-6, "%s / %s: metagradient %.12e vs finite differences, "
                      "relative error %.3e", cfg->name, KIND_NAMES[k], dir, err);
        teardown(&fx);
    }
}

START_TEST(test_fd_optimizers)
{
    check_config(&CONFIGS[_i]);
}
END_TEST

START_TEST(test_fd_squared_error_residual)
{
    check_config(&SQUARED);
}
END_TEST

START_TEST(test_fd_relu)
{
    check_config(&RELU_CONFIGS[_i]);
}
END_TEST

START_TEST(test_fd_label_smoothing)
{
    check_config(&SMOOTHED);
}
END_TEST

/* All metaparameters registered at once give the gradients each gives
   alone (the soft-label path replaces the label path, hence 1e-12). */
START_TEST(test_all_metas_together)
{
    const config *cfg = &CONFIGS[3];
    fixture all;
    setup(&all, cfg, MGRAD_DTYPE_F64);
    mgrad_meta *ms[NKINDS];
    for (int k = 0; k < NKINDS; k++) {
        if (k == 1) { /* a second DATA_WEIGHTS window may not overlap the first */
            mgrad_meta_options mo = MGRAD_META_OPTIONS_INIT;
            mo.step_begin = 4;
            mo.step_end = 9;
            mgrad_meta *m = NULL;
            ck_assert_int_eq(mgrad_run_add_meta(&m, all.run, KINDS[k], &mo), MGRAD_ERR_INVALID);
            ck_assert_ptr_null(m);
            ms[k] = NULL;
            continue;
        }
        ms[k] = add_meta(&all, KINDS[k], 0);
    }
    train_phi(&all);
    ck_assert_int_eq(mgrad_run_reverse(all.run), MGRAD_OK);
    for (int k = 0; k < NKINDS; k++) {
        if (ms[k] == NULL) continue;
        fixture one;
        setup(&one, cfg, MGRAD_DTYPE_F64);
        mgrad_meta *m = add_meta(&one, KINDS[k], 0);
        train_phi(&one);
        ck_assert_int_eq(mgrad_run_reverse(one.run), MGRAD_OK);
        int64_t n = 0;
        mgrad_meta_size(m, &n);
        double *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
        ck_assert_int_eq(mgrad_meta_get_grad(ms[k], MGRAD_DTYPE_F64, a, n), MGRAD_OK);
        ck_assert_int_eq(mgrad_meta_get_grad(m, MGRAD_DTYPE_F64, b, n), MGRAD_OK);
        for (int64_t i = 0; i < n; i++)
            ck_assert_msg(tu_rel_err(a[i], b[i], 1e-10) < 1e-12, "%s[%lld]: %.17g vs %.17g",
                          KIND_NAMES[k], (long long)i, a[i], b[i]);
        free(a);
        free(b);
        teardown(&one);
    }
    teardown(&all);
}
END_TEST

static void metagrads(const config *cfg, mgrad_dtype dtype, double *theta_out,
                      double *lr_grad, double *w_grad, double *x_grad)
{
    fixture fx;
    setup(&fx, cfg, dtype);
    mgrad_meta *lr = add_meta(&fx, MGRAD_META_LR_SCHEDULE, 0);
    mgrad_meta *w = add_meta(&fx, MGRAD_META_DATA_WEIGHTS, 0);
    mgrad_meta *x = add_meta(&fx, MGRAD_META_INPUTS, 0);
    train_phi(&fx);
    ck_assert_int_eq(mgrad_run_reverse(fx.run), MGRAD_OK);
    int64_t P = 0;
    mgrad_run_num_params(fx.run, &P);
    if (theta_out != NULL)
        ck_assert_int_eq(mgrad_run_get_params(fx.run, MGRAD_DTYPE_F64, theta_out, P), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(lr, MGRAD_DTYPE_F64, lr_grad, T), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(w, MGRAD_DTYPE_F64, w_grad, NTRAIN), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(x, MGRAD_DTYPE_F64, x_grad, 3 * F), MGRAD_OK);
    teardown(&fx);
}

static double rel_norm_err(const double *a, const double *b, int n)
{
    double d = 0, s = 0;
    for (int i = 0; i < n; i++) {
        d += (a[i] - b[i]) * (a[i] - b[i]);
        s += b[i] * b[i];
    }
    return sqrt(d / s);
}

START_TEST(test_f32_matches_f64)
{
    const config *cfg = &CONFIGS[_i];
    double lr32[T], lr64[T], w32[NTRAIN], w64[NTRAIN], x32[3 * F], x64[3 * F];
    metagrads(cfg, MGRAD_DTYPE_F32, NULL, lr32, w32, x32);
    metagrads(cfg, MGRAD_DTYPE_F64, NULL, lr64, w64, x64);
    double e1 = rel_norm_err(lr32, lr64, T), e2 = rel_norm_err(w32, w64, NTRAIN),
           e3 = rel_norm_err(x32, x64, 3 * F);
    printf("f32 vs f64 %-9s lr %.2e  weights %.2e  inputs %.2e\n", cfg->name, e1, e2, e3);
    ck_assert_msg(e1 < 1e-3 && e2 < 1e-3 && e3 < 1e-3,
                  "%s: f32 and f64 metagradients differ: %.3e %.3e %.3e", cfg->name, e1, e2,
                  e3);
}
END_TEST

START_TEST(test_determinism)
{
    const config *cfg = &CONFIGS[_i];
    enum { PMAX = 1024 };
    double th1[PMAX], th2[PMAX], lr1[T], lr2[T], w1[NTRAIN], w2[NTRAIN], x1[3 * F], x2[3 * F];
    metagrads(cfg, MGRAD_DTYPE_F32, th1, lr1, w1, x1);
    metagrads(cfg, MGRAD_DTYPE_F32, th2, lr2, w2, x2);
    ck_assert(memcmp(lr1, lr2, sizeof lr1) == 0);
    ck_assert(memcmp(w1, w2, sizeof w1) == 0);
    ck_assert(memcmp(x1, x2, sizeof x1) == 0);
    metagrads(cfg, MGRAD_DTYPE_F64, th1, lr1, w1, x1);
    metagrads(cfg, MGRAD_DTYPE_F64, th2, lr2, w2, x2);
    ck_assert(memcmp(lr1, lr2, sizeof lr1) == 0);
    ck_assert(memcmp(w1, w2, sizeof w1) == 0);
    ck_assert(memcmp(x1, x2, sizeof x1) == 0);
}
END_TEST

/* Reverse twice (the second replays the trajectory) gives the same bits. */
START_TEST(test_reverse_repeatable)
{
    fixture fx;
    setup(&fx, &CONFIGS[1], MGRAD_DTYPE_F64);
    mgrad_meta *lr = add_meta(&fx, MGRAD_META_LR_SCHEDULE, 0);
    double g1[T], g2[T];
    train_phi(&fx);
    ck_assert_int_eq(mgrad_run_reverse(fx.run), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(lr, MGRAD_DTYPE_F64, g1, T), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_reverse(fx.run), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(lr, MGRAD_DTYPE_F64, g2, T), MGRAD_OK);
    ck_assert(memcmp(g1, g2, sizeof g1) == 0);
    mgrad_run_stats st = MGRAD_RUN_STATS_INIT;
    ck_assert_int_eq(mgrad_run_get_stats(fx.run, &st), MGRAD_OK);
    ck_assert_int_eq(st.reverse_steps, T);
    ck_assert_int_eq(st.steps_run, T);
    ck_assert_int_eq(st.steps_recomputed, 0);
    teardown(&fx);
}
END_TEST

/* A run with metaparameters computes ∇φ(θ_T) in mgrad_run_train and its
   reverse starts from it; after a train for φ alone (mgr_run_train_value,
   as MGD's BEST_ORDERS and the smoothness probe train) the reverse
   evaluates it itself.  Both give the same φ and the same bits, in f32 and
   f64, for every optimizer configuration. */
START_TEST(test_reverse_after_value_only_train)
{
    for (int d = 0; d < 2; d++) {
        mgrad_dtype dt = d ? MGRAD_DTYPE_F64 : MGRAD_DTYPE_F32;
        fixture fx;
        setup(&fx, &CONFIGS[_i], dt);
        mgrad_meta *lr = add_meta(&fx, MGRAD_META_LR_SCHEDULE, 0);
        mgrad_meta *w = add_meta(&fx, MGRAD_META_DATA_WEIGHTS, 0);
        double g1[T], g2[T], w1[NTRAIN], w2[NTRAIN], phi1 = 0, phi2 = 0;
        ck_assert_int_eq(mgrad_run_train(fx.run, &phi1), MGRAD_OK);
        ck_assert_int_eq(mgrad_run_reverse(fx.run), MGRAD_OK);
        ck_assert_int_eq(mgrad_meta_get_grad(lr, MGRAD_DTYPE_F64, g1, T), MGRAD_OK);
        ck_assert_int_eq(mgrad_meta_get_grad(w, MGRAD_DTYPE_F64, w1, NTRAIN), MGRAD_OK);
        ck_assert_int_eq(mgr_run_train_value(fx.run, &phi2), MGRAD_OK);
        ck_assert_int_eq(mgrad_run_reverse(fx.run), MGRAD_OK);
        ck_assert_int_eq(mgrad_meta_get_grad(lr, MGRAD_DTYPE_F64, g2, T), MGRAD_OK);
        ck_assert_int_eq(mgrad_meta_get_grad(w, MGRAD_DTYPE_F64, w2, NTRAIN), MGRAD_OK);
        ck_assert(memcmp(&phi1, &phi2, sizeof phi1) == 0);
        ck_assert(memcmp(g1, g2, sizeof g1) == 0);
        ck_assert(memcmp(w1, w2, sizeof w1) == 0);
        teardown(&fx);
    }
}
END_TEST

/* Divergence is reported with the step and leaves the run reusable. */
START_TEST(test_divergence_reported)
{
    fixture fx;
    config cfg = CONFIGS[0];
    cfg.lr = 1e300;
    setup(&fx, &cfg, MGRAD_DTYPE_F64);
    double phi = 123;
    mgrad_status s = mgrad_run_train(fx.run, &phi);
    ck_assert_int_eq(s, MGRAD_ERR_NONFINITE);
    ck_assert_double_eq(phi, 123);
    ck_assert_ptr_nonnull(strstr(mgrad_context_last_error(fx.ctx), "step "));
    ck_assert_int_eq(mgrad_run_reverse(fx.run), MGRAD_ERR_ORDER);
    teardown(&fx);
}
END_TEST

/* The last error contains `text`. */
/* A negative learning rate is refused wherever it enters: options.lr,
   options.lr_schedule, an LR_SCHEDULE value.  Failed calls change nothing. */
START_TEST(test_negative_lr_refused)
{
    fixture fx;
    setup(&fx, &CONFIGS[0], MGRAD_DTYPE_F64);
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = T;
    o.batch_size = B;
    o.validation = fx.val;
    o.lr = -0.25;
    mgrad_run *sentinel = (mgrad_run *)&o, *r = sentinel;
    ck_assert_int_eq(mgrad_run_create(&r, fx.model, fx.train, &o), MGRAD_ERR_INVALID);
    ck_assert_ptr_eq(r, sentinel);
    tf_assert_error_has(fx.ctx, "options.lr = -0.25");
    tf_assert_error_has(fx.ctx, ">= 0");
    double sched[T];
    for (int t = 0; t < T; t++) sched[t] = 0.1;
    sched[4] = -0.5;
    o.lr = 0.1;
    o.lr_schedule = sched;
    ck_assert_int_eq(mgrad_run_create(&r, fx.model, fx.train, &o), MGRAD_ERR_INVALID);
    ck_assert_ptr_eq(r, sentinel);
    tf_assert_error_has(fx.ctx, "options.lr_schedule[4] = -0.5");
    sched[4] = 0; /* a zero rate is a legitimate step (no update) */
    ck_assert_int_eq(mgrad_run_create(&r, fx.model, fx.train, &o), MGRAD_OK);
    mgrad_run_destroy(r);

    /* through the metaparameter: refused before anything is written, so the
       trajectory of the old values stays valid */
    mgrad_meta *lr = add_meta(&fx, MGRAD_META_LR_SCHEDULE, 0);
    train_phi(&fx);
    double before[T], z[T], after[T];
    ck_assert_int_eq(mgrad_meta_get_value(lr, MGRAD_DTYPE_F64, before, T), MGRAD_OK);
    memcpy(z, before, sizeof z);
    z[7] = -1e-3;
    ck_assert_int_eq(mgrad_meta_set_value(lr, MGRAD_DTYPE_F64, z, T), MGRAD_ERR_INVALID);
    tf_assert_error_has(fx.ctx, "LR_SCHEDULE value 7");
    tf_assert_error_has(fx.ctx, "-0.001");
    ck_assert_int_eq(mgrad_meta_get_value(lr, MGRAD_DTYPE_F64, after, T), MGRAD_OK);
    ck_assert(memcmp(before, after, sizeof before) == 0);
    ck_assert_int_eq(mgrad_run_reverse(fx.run), MGRAD_OK);
    teardown(&fx);
}
END_TEST

/* Batch norm over one value per channel (one row, no spatial positions)
   is refused for the training batch, a pool and a dataset's last chunk;
   one row with spatial positions is not. */
START_TEST(test_batch_norm_needs_two_values)
{
    fixture fx;
    setup(&fx, &CONFIGS[0], MGRAD_DTYPE_F64);
    mgrad_context *ctx = fx.ctx;
    int64_t shape[1] = {F};
    mgrad_model *m = NULL;
    ck_assert_int_eq(mgrad_model_create(&m, ctx, 1, shape), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(m, 4, MGRAD_INIT_DEFAULT), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_batch_norm(m, 1e-5), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(m, C, MGRAD_INIT_DEFAULT), MGRAD_OK);
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = 3;
    o.batch_size = 1;
    o.validation = fx.val;
    mgrad_run *sentinel = (mgrad_run *)&o, *r = sentinel;
    ck_assert_int_eq(mgrad_run_create(&r, m, fx.train, &o), MGRAD_ERR_INVALID);
    ck_assert_ptr_eq(r, sentinel);
    tf_assert_error_has(ctx, "options.batch_size");
    tf_assert_error_has(ctx, "more than 1 value per channel");

    o.batch_size = 2;
    ck_assert_int_eq(mgrad_run_create(&r, m, fx.train, &o), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_train(r, NULL), MGRAD_OK);
    /* a pool of one row, and one of 257 rows (chunks of 256: the last has 1) */
    double x[257 * F];
    int32_t labels[257];
    for (int i = 0; i < 257 * F; i++) x[i] = (double)(i % 7) - 3;
    for (int i = 0; i < 257; i++) labels[i] = i % C;
    mgrad_dataset *p1 = NULL, *p257 = NULL;
    ck_assert_int_eq(mgrad_dataset_create(&p1, ctx, 1, 1, shape, MGRAD_DTYPE_F64, x), MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_set_labels(p1, labels, 1, C), MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_create(&p257, ctx, 257, 1, shape, MGRAD_DTYPE_F64, x),
                     MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_set_labels(p257, labels, 257, C), MGRAD_OK);
    mgrad_meta_options mo = MGRAD_META_OPTIONS_INIT;
    mo.step = 1;
    mo.pool = p1;
    mgrad_meta *msent = (mgrad_meta *)&mo, *pm = msent;
    ck_assert_int_eq(mgrad_run_add_meta(&pm, r, MGRAD_META_POOL_WEIGHTS, &mo),
                     MGRAD_ERR_INVALID);
    ck_assert_ptr_eq(pm, msent);
    tf_assert_error_has(ctx, "the pool = 1 row");
    mo.pool = p257;
    ck_assert_int_eq(mgrad_run_add_meta(&pm, r, MGRAD_META_POOL_WEIGHTS, &mo),
                     MGRAD_ERR_INVALID);
    ck_assert_ptr_eq(pm, msent);
    tf_assert_error_has(ctx, "last chunk of 1 row");
    /* the failed registrations left the trajectory valid */
    ck_assert_int_eq(mgrad_run_reverse(r), MGRAD_OK);
    double loss = 7, acc = 7;
    ck_assert_int_eq(mgrad_run_evaluate(r, p257, &loss, &acc), MGRAD_ERR_INVALID);
    ck_assert_double_eq(loss, 7);
    tf_assert_error_has(ctx, "mgrad_run_evaluate");
    mgrad_run_destroy(r);

    /* one row of a 2x2 image: 4 values per channel */
    int64_t img[3] = {1, 2, 2};
    mgrad_model *cm = NULL;
    ck_assert_int_eq(mgrad_model_create(&cm, ctx, 3, img), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_conv2d(cm, 2, 1, 1, 0, MGRAD_INIT_DEFAULT), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_batch_norm(cm, 1e-5), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_flatten(cm), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(cm, C, MGRAD_INIT_DEFAULT), MGRAD_OK);
    mgrad_dataset *imgs = NULL;
    ck_assert_int_eq(mgrad_dataset_create(&imgs, ctx, 8, 3, img, MGRAD_DTYPE_F64, x),
                     MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_set_labels(imgs, labels, 8, C), MGRAD_OK);
    o.validation = imgs;
    o.batch_size = 1;
    ck_assert_int_eq(mgrad_run_create(&r, cm, imgs, &o), MGRAD_OK);
    mgrad_run_destroy(r);
    mgrad_dataset_destroy(imgs);
    mgrad_model_destroy(cm);
    mgrad_dataset_destroy(p1);
    mgrad_dataset_destroy(p257);
    mgrad_model_destroy(m);
    teardown(&fx);
}
END_TEST

/* SGD whose adjoint overflows f32 while training stays finite (linear
   model, η = 3: the state and its adjoint double every step, θ0 = 1e-10):
   the message speaks of the learning rate, not of Adam. */
START_TEST(test_reverse_divergence_message)
{
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = MGRAD_DTYPE_F32;
    mgrad_context *ctx = NULL;
    ck_assert_int_eq(mgrad_context_create(&ctx, &co), MGRAD_OK);
    int64_t shape[1] = {1};
    mgrad_model *m = NULL;
    ck_assert_int_eq(mgrad_model_create(&m, ctx, 1, shape), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(m, 1, MGRAD_INIT_DEFAULT), MGRAD_OK);
    double p[2] = {1e-10, 0}, x[4] = {1, 1, 1, 1}, y[4] = {0, 0, 0, 0};
    ck_assert_int_eq(mgrad_model_set_params(m, MGRAD_DTYPE_F64, p, 2), MGRAD_OK);
    mgrad_dataset *d = NULL;
    ck_assert_int_eq(mgrad_dataset_create(&d, ctx, 4, 1, shape, MGRAD_DTYPE_F64, x), MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_set_targets(d, MGRAD_DTYPE_F64, y, 4, 1), MGRAD_OK);
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = 60;
    o.batch_size = 2;
    o.lr = 3;
    o.loss = MGRAD_LOSS_SQUARED_ERROR;
    o.validation = d;
    mgrad_run *r = NULL;
    ck_assert_int_eq(mgrad_run_create(&r, m, d, &o), MGRAD_OK);
    mgrad_meta *lr = NULL;
    ck_assert_int_eq(mgrad_run_add_meta(&lr, r, MGRAD_META_LR_SCHEDULE, NULL), MGRAD_OK);
    double phi = 0;
    ck_assert_int_eq(mgrad_run_train(r, &phi), MGRAD_OK);
    ck_assert(isfinite(phi));
    ck_assert_int_eq(mgrad_run_reverse(r), MGRAD_ERR_NONFINITE);
    tf_assert_error_has(ctx, "the reverse pass diverged at step");
    tf_assert_error_has(ctx, "smaller learning rate");
    ck_assert_ptr_null(strstr(mgrad_context_last_error(ctx), "Adam"));
    double g[60];
    ck_assert_int_eq(mgrad_meta_get_grad(lr, MGRAD_DTYPE_F64, g, 60), MGRAD_ERR_ORDER);
    mgrad_run_destroy(r);
    mgrad_dataset_destroy(d);
    mgrad_model_destroy(m);
    mgrad_context_destroy(ctx);
}
END_TEST

/* Registering a metaparameter after training invalidates the trajectory;
   the calls that need one say so, not that a value was set. */
START_TEST(test_add_meta_after_train)
{
    fixture fx;
    setup(&fx, &CONFIGS[1], MGRAD_DTYPE_F64);
    mgrad_meta *lr = add_meta(&fx, MGRAD_META_LR_SCHEDULE, 0);
    train_phi(&fx);
    add_meta(&fx, MGRAD_META_WEIGHT_DECAY, 0);
    ck_assert_int_eq(mgrad_run_reverse(fx.run), MGRAD_ERR_ORDER);
    tf_assert_error_has(fx.ctx, "mgrad_run_reverse");
    tf_assert_error_has(fx.ctx, "mgrad_run_add_meta");
    tf_assert_error_has(fx.ctx, "mgrad_run_train again");
    ck_assert_ptr_null(strstr(mgrad_context_last_error(fx.ctx), "mgrad_meta_set_value"));
    double theta[256];
    int64_t P = 0;
    ck_assert_int_eq(mgrad_run_num_params(fx.run, &P), MGRAD_OK);
    ck_assert_int_le(P, 256);
    ck_assert_int_eq(mgrad_run_get_params(fx.run, MGRAD_DTYPE_F64, theta, P), MGRAD_ERR_ORDER);
    tf_assert_error_has(fx.ctx, "mgrad_run_add_meta");
    /* a changed value names mgrad_meta_set_value */
    train_phi(&fx);
    double z[T];
    ck_assert_int_eq(mgrad_meta_get_value(lr, MGRAD_DTYPE_F64, z, T), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_set_value(lr, MGRAD_DTYPE_F64, z, T), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_reverse(fx.run), MGRAD_ERR_ORDER);
    tf_assert_error_has(fx.ctx, "mgrad_meta_set_value");
    train_phi(&fx);
    ck_assert_int_eq(mgrad_run_reverse(fx.run), MGRAD_OK);
    teardown(&fx);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("run");
    TCase *tc = tcase_create("whole-run");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_fd_optimizers, 0, NCONFIGS);
    tcase_add_test(tc, test_fd_squared_error_residual);
    tcase_add_test(tc, test_fd_label_smoothing);
    tcase_add_loop_test(tc, test_fd_relu, 0, NRELU);
    tcase_add_loop_test(tc, test_f32_matches_f64, 0, NCONFIGS);
    tcase_add_loop_test(tc, test_determinism, 0, NCONFIGS);
    tcase_add_test(tc, test_all_metas_together);
    tcase_add_test(tc, test_reverse_repeatable);
    tcase_add_loop_test(tc, test_reverse_after_value_only_train, 0, NCONFIGS);
    tcase_add_test(tc, test_divergence_reported);
    tcase_add_test(tc, test_negative_lr_refused);
    tcase_add_test(tc, test_batch_norm_needs_two_values);
    tcase_add_test(tc, test_reverse_divergence_message);
    tcase_add_test(tc, test_add_meta_after_train);
    suite_add_tcase(s, tc);
    return s;
}
