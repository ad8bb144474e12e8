/*
 * test_mgd.c - metagradient descent: updates and projections exactly as
 * documented, φ decreases on a learnable LR-schedule task, best-iterate
 * tracking, cancellation, count-based data selection, settings (ranges as
 * described, refusals change nothing, changes between steps keep the
 * state), misuse.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "metagrad.h"
#include "testutil.h"

enum { N = 64, NV = 48, F = 5, C = 3, T = 20, B = 8 };

typedef struct fixture {
    mgrad_context *ctx;
    mgrad_model *model;
    mgrad_dataset *train, *val;
    mgrad_run *run;
} fixture;

static void data(mgrad_context *ctx, int n, uint64_t seed, double flip, mgrad_dataset **out)
{
    double x[N * F];
    int32_t y[N];
    uint64_t s = seed;
    tu_fill(x, (size_t)n * F, &s, 1.0);
    for (int i = 0; i < n; i++) {
        double score[C] = {x[i * F] + x[i * F + 1], x[i * F + 2] - x[i * F + 3], x[i * F + 4]};
        y[i] = score[0] > score[1] ? (score[0] > score[2] ? 0 : 2) : (score[1] > score[2] ? 1 : 2);
        if (i < (int)(flip * n)) y[i] = (y[i] + 1) % C;  /* the first rows mislabelled */
    }
    int64_t shape[1] = {F};
    ck_assert_int_eq(mgrad_dataset_create(out, ctx, n, 1, shape, MGRAD_DTYPE_F64, x), MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_set_labels(*out, y, n, C), MGRAD_OK);
}

static void setup_with(fixture *fx, double flip, mgrad_dtype dtype, mgrad_log_fn log_fn,
                       void *log_user_data)
{
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = dtype;
    co.log_fn = log_fn;
    co.log_user_data = log_user_data;
    ck_assert_int_eq(mgrad_context_create(&fx->ctx, &co), MGRAD_OK);
    tf_mlp(fx->ctx, F, 16, C, &fx->model);
    data(fx->ctx, N, 3, flip, &fx->train);
    data(fx->ctx, NV, 4, 0, &fx->val);
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = T;
    o.batch_size = B;
    o.lr = 0.05;
    o.momentum = 0.5;
    o.validation = fx->val;
    ck_assert_int_eq(mgrad_run_create(&fx->run, fx->model, fx->train, &o), MGRAD_OK);
}

static void setup(fixture *fx, double flip) { setup_with(fx, flip, MGRAD_DTYPE_F64, NULL, NULL); }

/* A new optimiser of m by method; the call must succeed. */
static mgrad_mgd *new_mgd(mgrad_meta *m, mgrad_mgd_method method)
{
    mgrad_mgd *mgd = NULL;
    ck_assert_int_eq(mgrad_mgd_create(&mgd, m, method), MGRAD_OK);
    return mgd;
}

static void teardown(fixture *fx)
{
    tf_destroy(fx->ctx, fx->model, fx->run, fx->train, fx->val, NULL);
}

/* The metagradient of the LR schedule at value z (on a twin run). */
static void lr_grad_at(const double *z, double *g)
{
    fixture fx;
    setup(&fx, 0);
    mgrad_meta *lr = tf_add_meta(fx.ctx, fx.run, MGRAD_META_LR_SCHEDULE, NULL);
    ck_assert_int_eq(mgrad_meta_set_value(lr, MGRAD_DTYPE_F64, z, T), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_train(fx.run, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_reverse(fx.run), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(lr, MGRAD_DTYPE_F64, g, T), MGRAD_OK);
    teardown(&fx);
}

/* The settings of one_step: a method, its step size and a projection. */
typedef struct step_cfg {
    mgrad_mgd_method method;
    double lr;
    mgrad_projection projection;
    double proj[2];
} step_cfg;

static void configure(mgrad_mgd *mgd, const step_cfg *o)
{
    static const int64_t nparams[] = {0, 2, 0, 1, 1};
    ck_assert_int_eq(mgrad_mgd_set_real(mgd, MGRAD_MGD_PARAM_LR, o->lr), MGRAD_OK);
    ck_assert_int_eq(
        mgrad_mgd_set_projection(mgd, o->projection, o->proj, nparams[o->projection]),
        MGRAD_OK);
}

/* One meta-step with `o` from the flat schedule 0.05; returns the new value
   and, through y, z − lr·g computed here from the twin run's gradient. */
static void one_step(const step_cfg *o, double *znew, double *y)
{
    double z[T], g[T];
    for (int t = 0; t < T; t++) z[t] = 0.05;
    lr_grad_at(z, g);
    for (int t = 0; t < T; t++) y[t] = z[t] - o->lr * g[t];
    fixture fx;
    setup(&fx, 0);
    mgrad_meta *lr = tf_add_meta(fx.ctx, fx.run, MGRAD_META_LR_SCHEDULE, NULL);
    mgrad_mgd *mgd = NULL;
    ck_assert_int_eq(mgrad_mgd_create(&mgd, lr, o->method), MGRAD_OK);
    configure(mgd, o);
    ck_assert_int_eq(mgrad_mgd_step(mgd, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_value(lr, MGRAD_DTYPE_F64, znew, T), MGRAD_OK);
    mgrad_mgd_destroy(mgd);
    teardown(&fx);
}

START_TEST(test_sgd_update_exact)
{
    step_cfg o = {MGRAD_MGD_SGD, 0.01, MGRAD_PROJECT_NONE, {0, 0}};
    double z[T], y[T];
    one_step(&o, z, y);
    for (int t = 0; t < T; t++) ck_assert_double_eq(z[t], y[t]);
}
END_TEST

/* A piecewise-linear schedule through a hat basis: the value is basis · c
   and c moves along basisᵀ dφ/dz. */
START_TEST(test_basis_chain_rule)
{
    enum { J = 3 };
    double basis[T * J], c[J] = {0.05, 0.05, 0.05}, z[T], g[T], want[T];
    for (int t = 0; t < T; t++) {
        double pos = (double)t / (T - 1) * (J - 1);
        for (int j = 0; j < J; j++) basis[t * J + j] = fmax(0, 1 - fabs(pos - j));
    }
    for (int t = 0; t < T; t++) z[t] = 0.05; /* basis · c: hats sum to 1 */
    lr_grad_at(z, g);
    double gc[J] = {0};
    for (int t = 0; t < T; t++)
        for (int j = 0; j < J; j++) gc[j] += basis[t * J + j] * g[t];
    for (int t = 0; t < T; t++) {
        want[t] = 0;
        for (int j = 0; j < J; j++) want[t] += basis[t * J + j] * (c[j] - 0.01 * gc[j]);
    }
    fixture fx;
    setup(&fx, 0);
    mgrad_meta *lr = tf_add_meta(fx.ctx, fx.run, MGRAD_META_LR_SCHEDULE, NULL);
    mgrad_mgd *mgd = new_mgd(lr, MGRAD_MGD_SGD);
    ck_assert_int_eq(mgrad_mgd_set_real(mgd, MGRAD_MGD_PARAM_LR, 0.01), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_set_basis(mgd, basis, J, c), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_step(mgd, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_value(lr, MGRAD_DTYPE_F64, z, T), MGRAD_OK);
    for (int t = 0; t < T; t++) ck_assert(fabs(z[t] - want[t]) < 1e-15);
    double best[T];
    ck_assert_int_eq(mgrad_mgd_best(mgd, MGRAD_DTYPE_F64, best, T, NULL), MGRAD_OK);
    for (int t = 0; t < T; t++) ck_assert(fabs(best[t] - 0.05) < 1e-15);
    /* the optimised variable is fixed once stepping started */
    ck_assert_int_eq(mgrad_mgd_set_basis(mgd, NULL, 0, NULL), MGRAD_ERR_ORDER);
    mgrad_mgd_destroy(mgd);
    ck_assert_int_eq(mgrad_mgd_create(&mgd, lr, MGRAD_MGD_SGD), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_set_basis(mgd, basis, J, NULL), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_mgd_set_basis(mgd, basis, 0, c), MGRAD_ERR_INVALID);
    /* TOP_K's k must fit the optimised variable, whichever is set first */
    double k[1] = {J + 1};
    ck_assert_int_eq(mgrad_mgd_set_projection(mgd, MGRAD_PROJECT_TOP_K, k, 1), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_set_basis(mgd, basis, J, c), MGRAD_ERR_INVALID);
    mgrad_mgd_destroy(mgd);
    ck_assert_int_eq(mgrad_mgd_create(&mgd, lr, MGRAD_MGD_EXCHANGE), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_set_basis(mgd, basis, J, c), MGRAD_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(mgrad_context_last_error(fx.ctx), "EXCHANGE"));
    mgrad_mgd_destroy(mgd);
    teardown(&fx);
}
END_TEST

START_TEST(test_projections)
{
    step_cfg o = {MGRAD_MGD_SGD, 2.0, MGRAD_PROJECT_NONE, {0, 0}}; /* large lr: they bind */
    double z[T], y[T];
    /* box */
    o.projection = MGRAD_PROJECT_BOX;
    o.proj[0] = 0.04;
    o.proj[1] = 0.06;
    one_step(&o, z, y);
    for (int t = 0; t < T; t++) ck_assert_double_eq(z[t], fmin(fmax(y[t], 0.04), 0.06));
    /* fixed sum: compare with τ found by bisection on Σ max(y − τ, 0) = S */
    o.projection = MGRAD_PROJECT_FIXED_SUM;
    o.proj[0] = 1.0;
    one_step(&o, z, y);
    double lo = -10, hi = 10;
    for (int it = 0; it < 200; it++) {
        double tau = 0.5 * (lo + hi), s = 0;
        for (int t = 0; t < T; t++) s += fmax(y[t] - tau, 0);
        if (s > 1.0)
            lo = tau;
        else
            hi = tau;
    }
    double sum = 0;
    for (int t = 0; t < T; t++) {
        ck_assert(z[t] >= 0);
        ck_assert(fabs(z[t] - fmax(y[t] - lo, 0)) < 1e-12);
        sum += z[t];
    }
    ck_assert(fabs(sum - 1.0) < 1e-12);
    /* top-k: the k largest of y kept, the rest zero */
    o.projection = MGRAD_PROJECT_TOP_K;
    o.proj[0] = 5;
    one_step(&o, z, y);
    int nonzero = 0;
    for (int t = 0; t < T; t++) {
        int larger = 0;
        for (int q = 0; q < T; q++) larger += y[q] > y[t] || (y[q] == y[t] && q < t);
        ck_assert_double_eq(z[t], larger < 5 ? y[t] : 0.0);
        nonzero += z[t] != 0;
    }
    ck_assert_int_le(nonzero, 5);
    /* non-negative */
    o.projection = MGRAD_PROJECT_NONNEGATIVE;
    one_step(&o, z, y);
    for (int t = 0; t < T; t++) ck_assert_double_eq(z[t], fmax(y[t], 0));
}
END_TEST

typedef struct progress_log {
    int calls;
    int stop_after;
    double phi[64];
} progress_log;

static int on_progress(int64_t step, double phi, double score, double seconds, void *ud)
{
    progress_log *p = ud;
    ck_assert_int_eq(step, p->calls);
    ck_assert(isfinite(phi) && isfinite(score) && seconds >= 0);
    p->phi[p->calls++] = phi;
    return p->stop_after > 0 && p->calls >= p->stop_after;
}

/* Adam on the LR schedule lowers the validation loss; the best iterate's
   score is the lowest seen; the progress hook sees every step. */
START_TEST(test_lr_schedule_improves)
{
    fixture fx;
    setup(&fx, 0);
    mgrad_meta *lr = tf_add_meta(fx.ctx, fx.run, MGRAD_META_LR_SCHEDULE, NULL);
    progress_log log = {0, 0, {0}};
    mgrad_mgd *mgd = new_mgd(lr, MGRAD_MGD_ADAM);
    ck_assert_int_eq(mgrad_mgd_set_real(mgd, MGRAD_MGD_PARAM_LR, 0.02), MGRAD_OK);
    double box[2] = {0, 1};
    ck_assert_int_eq(mgrad_mgd_set_projection(mgd, MGRAD_PROJECT_BOX, box, 2), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_set_progress(mgd, on_progress, &log), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_run(mgd, 15), MGRAD_OK);
    ck_assert_int_eq(log.calls, 15);
    double best[T], score = 0, phi_end = 0;
    ck_assert_int_eq(mgrad_mgd_best(mgd, MGRAD_DTYPE_F64, best, T, &score), MGRAD_OK);
    for (int i = 0; i < log.calls; i++) ck_assert(score <= log.phi[i]);
    ck_assert_msg(score < 0.9 * log.phi[0], "MGD did not improve: %g -> %g", log.phi[0], score);
    ck_assert_int_eq(mgrad_meta_set_value(lr, MGRAD_DTYPE_F64, best, T), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_train(fx.run, &phi_end), MGRAD_OK);
    ck_assert_double_eq(phi_end, score);
    int64_t steps = 0;
    ck_assert_int_eq(mgrad_mgd_steps(mgd, &steps), MGRAD_OK);
    ck_assert_int_eq(steps, 15);
    mgrad_mgd_destroy(mgd);
    teardown(&fx);
}
END_TEST

/* With reshuffle every meta-step trains on a new batch order: the run's
   trajectory differs from a fixed-order twin, and reshuffle is refused for
   runs with explicit batches. */
START_TEST(test_reshuffle)
{
    fixture a, b;
    setup(&a, 0);
    setup(&b, 0);
    mgrad_meta *la = NULL, *lb = NULL;
    la = tf_add_meta(a.ctx, a.run, MGRAD_META_LR_SCHEDULE, NULL);
    lb = tf_add_meta(b.ctx, b.run, MGRAD_META_LR_SCHEDULE, NULL);
    mgrad_mgd *ma = NULL, *mb = NULL;
    ck_assert_int_eq(mgrad_mgd_create(&ma, la, MGRAD_MGD_SGD), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_create(&mb, lb, MGRAD_MGD_SGD), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_set_int(mb, MGRAD_MGD_PARAM_RESHUFFLE, 1), MGRAD_OK);
    double pa = 0, pb = 0;
    ck_assert_int_eq(mgrad_mgd_step(ma, &pa), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_step(mb, &pb), MGRAD_OK);
    ck_assert(pa != pb); /* another batch order gives another φ */
    /* determinism: the same reshuffled step again gives the same φ */
    fixture c;
    setup(&c, 0);
    mgrad_meta *lc = NULL;
    mgrad_mgd *mc = NULL;
    double pc = 0;
    lc = tf_add_meta(c.ctx, c.run, MGRAD_META_LR_SCHEDULE, NULL);
    ck_assert_int_eq(mgrad_mgd_create(&mc, lc, MGRAD_MGD_SGD), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_set_int(mc, MGRAD_MGD_PARAM_RESHUFFLE, 1), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_step(mc, &pc), MGRAD_OK);
    ck_assert_double_eq(pb, pc);
    mgrad_mgd_destroy(ma);
    mgrad_mgd_destroy(mb);
    mgrad_mgd_destroy(mc);
    ck_assert_int_eq(mgrad_run_set_shuffle_seed(NULL, 3), MGRAD_ERR_NULL);
    /* explicit batches: refused, and the setting stays off */
    int64_t batches[T * B];
    for (int i = 0; i < T * B; i++) batches[i] = i % N;
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = T;
    o.batch_size = B;
    o.batches = batches;
    o.validation = a.val;
    mgrad_run *fixed = NULL;
    mgrad_meta *lf = NULL;
    mgrad_mgd *mf = NULL;
    int32_t has = -1;
    ck_assert_int_eq(mgrad_run_create(&fixed, a.model, a.train, &o), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_has_batches(fixed, &has), MGRAD_OK);
    ck_assert_int_eq(has, 1);
    ck_assert_int_eq(mgrad_run_has_batches(a.run, &has), MGRAD_OK);
    ck_assert_int_eq(has, 0);
    ck_assert_int_eq(mgrad_run_add_meta(&lf, fixed, MGRAD_META_LR_SCHEDULE, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_create(&mf, lf, MGRAD_MGD_SGD), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_set_int(mf, MGRAD_MGD_PARAM_RESHUFFLE, 1), MGRAD_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(mgrad_context_last_error(a.ctx), "reshuffle"));
    int64_t on = -1;
    ck_assert_int_eq(mgrad_mgd_get_int(mf, MGRAD_MGD_PARAM_RESHUFFLE, &on), MGRAD_OK);
    ck_assert_int_eq(on, 0);
    mgrad_mgd_destroy(mf);
    mgrad_run_destroy(fixed);
    teardown(&a);
    teardown(&b);
    teardown(&c);
}
END_TEST

START_TEST(test_cancel)
{
    fixture fx;
    setup(&fx, 0);
    mgrad_meta *lr = tf_add_meta(fx.ctx, fx.run, MGRAD_META_LR_SCHEDULE, NULL);
    progress_log log = {0, 3, {0}};
    mgrad_mgd *mgd = new_mgd(lr, MGRAD_MGD_SIGN);
    ck_assert_int_eq(mgrad_mgd_set_progress(mgd, on_progress, &log), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_run(mgd, 10), MGRAD_ERR_CANCELLED);
    ck_assert_ptr_nonnull(strstr(mgrad_context_last_error(fx.ctx), "cancelled"));
    ck_assert_int_eq(log.calls, 3);
    mgrad_mgd_destroy(mgd);
    teardown(&fx);
}
END_TEST

/* Algorithm 1: counts as data weights, gradient from the step-k relaxation
   over the training set; counts stay non-negative integers, and the
   mislabelled rows lose more count than the clean ones. */
START_TEST(test_data_selection_counts)
{
    fixture fx;
    setup(&fx, 0.25);
    mgrad_meta *counts = NULL, *pool = NULL;
    ck_assert_int_eq(mgrad_run_add_meta(&counts, fx.run, MGRAD_META_DATA_WEIGHTS, NULL),
                     MGRAD_OK);
    mgrad_meta_options mo = MGRAD_META_OPTIONS_INIT;
    mo.step = T - 5;
    ck_assert_int_eq(mgrad_run_add_meta(&pool, fx.run, MGRAD_META_POOL_WEIGHTS, &mo), MGRAD_OK);
    mgrad_mgd *mgd = new_mgd(counts, MGRAD_MGD_SIGN);
    ck_assert_int_eq(mgrad_mgd_set_real(mgd, MGRAD_MGD_PARAM_LR, 1), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_set_real(mgd, MGRAD_MGD_PARAM_MASK_PROB, 0.5), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_set_seed(mgd, 9), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_set_projection(mgd, MGRAD_PROJECT_NONNEGATIVE, NULL, 0),
                     MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_set_gradient_from(mgd, pool), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_run(mgd, 6), MGRAD_OK);
    double c[N];
    ck_assert_int_eq(mgrad_meta_get_value(counts, MGRAD_DTYPE_F64, c, N), MGRAD_OK);
    double bad = 0, good = 0;
    for (int i = 0; i < N; i++) {
        ck_assert(c[i] >= 0 && c[i] == floor(c[i]));
        if (i < N / 4)
            bad += c[i];
        else
            good += c[i];
    }
    ck_assert_msg(bad / (N / 4) < good / (N - N / 4),
                  "mislabelled rows kept %g per row, clean rows %g", bad / (N / 4),
                  good / (N - N / 4));
    mgrad_mgd_destroy(mgd);
    teardown(&fx);
}
END_TEST

START_TEST(test_exchange_keeps_total)
{
    fixture fx;
    setup(&fx, 0.25);
    mgrad_meta *counts = NULL;
    ck_assert_int_eq(mgrad_run_add_meta(&counts, fx.run, MGRAD_META_DATA_WEIGHTS, NULL),
                     MGRAD_OK);
    mgrad_mgd *mgd = new_mgd(counts, MGRAD_MGD_EXCHANGE);
    ck_assert_int_eq(mgrad_mgd_set_real(mgd, MGRAD_MGD_PARAM_LR, 1), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_set_int(mgd, MGRAD_MGD_PARAM_EXCHANGE, 4), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_run(mgd, 5), MGRAD_OK);
    double c[N], total = 0;
    ck_assert_int_eq(mgrad_meta_get_value(counts, MGRAD_DTYPE_F64, c, N), MGRAD_OK);
    int changed = 0;
    for (int i = 0; i < N; i++) {
        ck_assert(c[i] >= 0 && c[i] == floor(c[i]));
        total += c[i];
        changed += c[i] != 1;
    }
    ck_assert_double_eq(total, N);
    ck_assert_int_gt(changed, 0);
    mgrad_mgd_destroy(mgd);
    teardown(&fx);
}
END_TEST

/* Every key as mgrad_mgd_get_param_info describes it: a new optimiser holds
   the default; the setter accepts the closed ends and refuses the open ones
   and the values just outside; a refusal names the key and keeps the value;
   keys of another method are refused. */
START_TEST(test_settings_ranges)
{
    fixture fx;
    setup(&fx, 0);
    mgrad_meta *counts = NULL;
    ck_assert_int_eq(mgrad_run_add_meta(&counts, fx.run, MGRAD_META_DATA_WEIGHTS, NULL),
                     MGRAD_OK);
    const mgrad_mgd_method methods[] = {MGRAD_MGD_SIGN, MGRAD_MGD_ADAM, MGRAD_MGD_SGD,
                                        MGRAD_MGD_EXCHANGE, MGRAD_MGD_KEEP_DROP};
    const char *names[] = {"lr",       "mask_prob", "beta1",      "beta2",      "eps",
                           "exchange", "maximize",  "reshuffle", "best_orders"};
    for (int mi = 0; mi < 5; mi++) {
        mgrad_mgd *mgd = NULL;
        ck_assert_int_eq(mgrad_mgd_create(&mgd, counts, methods[mi]), MGRAD_OK);
        mgrad_mgd_method got = 0;
        ck_assert_int_eq(mgrad_mgd_method_of(mgd, &got), MGRAD_OK);
        ck_assert_int_eq(got, methods[mi]);
        for (int key = MGRAD_MGD_PARAM_LR; key <= MGRAD_MGD_PARAM_BEST_ORDERS; key++) {
            mgrad_mgd_param_info in = MGRAD_MGD_PARAM_INFO_INIT;
            /* BEST_ORDERS > 0 needs RESHUFFLE on (the fixture allows it) */
            if (key == MGRAD_MGD_PARAM_BEST_ORDERS)
                ck_assert_int_eq(mgrad_mgd_set_int(mgd, MGRAD_MGD_PARAM_RESHUFFLE, 1), MGRAD_OK);
            ck_assert_int_eq(mgrad_mgd_get_param_info(mgd, key, &in), MGRAD_OK);
            ck_assert_str_eq(in.name, names[key - 1]);
            double now = 0;
            int64_t inow = 0;
            if (in.is_int) {
                ck_assert_int_eq(mgrad_mgd_get_int(mgd, key, &inow), MGRAD_OK);
                now = (double)inow;
            } else {
                ck_assert_int_eq(mgrad_mgd_get_real(mgd, key, &now), MGRAD_OK);
            }
            ck_assert_double_eq(now, in.default_value);
            ck_assert(in.min < in.max);
            double lo_bad = in.is_int     ? in.min - 1
                            : in.min_open ? in.min
                                          : nextafter(in.min, -INFINITY);
            double hi_bad = in.is_int     ? in.max + 1
                            : in.max_open ? in.max
                                          : nextafter(in.max, INFINITY);
            double probes[4] = {in.min, in.max, lo_bad, hi_bad};
            for (int p = 0; p < 4; p++) {
                double v = probes[p];
                if (isinf(v)) continue;
                int want_ok =
                    in.applies && p < 2 && !(p == 0 && in.min_open) && !(p == 1 && in.max_open);
                /* RESHUFFLE = 1 needs shuffled batches: the fixture has them */
                mgrad_status s = in.is_int ? mgrad_mgd_set_int(mgd, key, (int64_t)v)
                                           : mgrad_mgd_set_real(mgd, key, v);
                ck_assert_msg(s == (want_ok ? MGRAD_OK : MGRAD_ERR_INVALID),
                              "method %d key %s value %g: status %d", (int)methods[mi], in.name,
                              v, (int)s);
                if (!want_ok) {
                    ck_assert_ptr_nonnull(strstr(mgrad_context_last_error(fx.ctx), in.name));
                    double after = 0;
                    if (in.is_int) {
                        ck_assert_int_eq(mgrad_mgd_get_int(mgd, key, &inow), MGRAD_OK);
                        after = (double)inow;
                    } else {
                        ck_assert_int_eq(mgrad_mgd_get_real(mgd, key, &after), MGRAD_OK);
                    }
                    ck_assert_double_eq(after, now);
                } else {
                    now = v;
                }
            }
            /* NaN is in no range; the wrong-typed setter is refused */
            if (!in.is_int) {
                ck_assert_int_eq(mgrad_mgd_set_real(mgd, key, NAN), MGRAD_ERR_INVALID);
                ck_assert_int_eq(mgrad_mgd_set_int(mgd, key, 1), MGRAD_ERR_INVALID);
            } else {
                ck_assert_int_eq(mgrad_mgd_set_real(mgd, key, 1), MGRAD_ERR_INVALID);
            }
            ck_assert_int_eq(in.applies,
                             key == MGRAD_MGD_PARAM_MASK_PROB ? methods[mi] == MGRAD_MGD_SIGN
                             : key >= MGRAD_MGD_PARAM_BETA1 && key <= MGRAD_MGD_PARAM_EPS
                                 ? methods[mi] == MGRAD_MGD_ADAM
                             : key == MGRAD_MGD_PARAM_EXCHANGE
                                 ? methods[mi] == MGRAD_MGD_EXCHANGE ||
                                       methods[mi] == MGRAD_MGD_KEEP_DROP
                             : key == MGRAD_MGD_PARAM_LR ? methods[mi] != MGRAD_MGD_KEEP_DROP
                                                         : 1);
            if (key == MGRAD_MGD_PARAM_EXCHANGE) ck_assert_double_eq(in.max, N / 2);
        }
        /* the documented defaults */
        mgrad_mgd_param_info in = MGRAD_MGD_PARAM_INFO_INIT;
        const double defaults[] = {0.01, 1, 0.9, 0.999, 1e-8, 1, 0, 0, 0};
        mgrad_mgd *fresh = NULL;
        ck_assert_int_eq(mgrad_mgd_create(&fresh, counts, methods[mi]), MGRAD_OK);
        for (int key = MGRAD_MGD_PARAM_LR; key <= MGRAD_MGD_PARAM_BEST_ORDERS; key++) {
            ck_assert_int_eq(mgrad_mgd_get_param_info(fresh, key, &in), MGRAD_OK);
            ck_assert_double_eq(in.default_value, defaults[key - 1]);
        }
        uint64_t seed = 1;
        ck_assert_int_eq(mgrad_mgd_get_seed(fresh, &seed), MGRAD_OK);
        ck_assert_uint_eq(seed, 0);
        ck_assert_int_eq(mgrad_mgd_set_seed(fresh, UINT64_MAX), MGRAD_OK);
        ck_assert_int_eq(mgrad_mgd_get_seed(fresh, &seed), MGRAD_OK);
        ck_assert(seed == UINT64_MAX);
        mgrad_projection kind = MGRAD_PROJECT_BOX;
        ck_assert_int_eq(mgrad_mgd_get_projection(fresh, &kind, NULL, 0), MGRAD_OK);
        ck_assert_int_eq(kind, MGRAD_PROJECT_NONE);
        mgrad_mgd_destroy(fresh);
        mgrad_mgd_destroy(mgd);
    }
    teardown(&fx);
}
END_TEST

/* Projection settings: defaults, counts, ranges; a refusal keeps the old. */
START_TEST(test_projection_settings)
{
    fixture fx;
    setup(&fx, 0);
    mgrad_meta *lr = tf_add_meta(fx.ctx, fx.run, MGRAD_META_LR_SCHEDULE, NULL);
    mgrad_mgd *mgd = new_mgd(lr, MGRAD_MGD_SGD);
    mgrad_projection kind = MGRAD_PROJECT_NONE;
    double p[2] = {-1, -1};
    ck_assert_int_eq(mgrad_mgd_set_projection(mgd, MGRAD_PROJECT_BOX, NULL, 0), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_get_projection(mgd, &kind, p, 2), MGRAD_OK);
    ck_assert(kind == MGRAD_PROJECT_BOX && p[0] == 0 && p[1] == 1);
    ck_assert_int_eq(mgrad_mgd_get_projection(mgd, &kind, p, 1), MGRAD_ERR_SIZE);
    double box[2] = {0.2, 0.1}, one[1] = {0};
    ck_assert_int_eq(mgrad_mgd_set_projection(mgd, MGRAD_PROJECT_BOX, box, 2),
                     MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_mgd_set_projection(mgd, MGRAD_PROJECT_BOX, box, 1), MGRAD_ERR_SIZE);
    ck_assert_int_eq(mgrad_mgd_set_projection(mgd, MGRAD_PROJECT_FIXED_SUM, one, 1),
                     MGRAD_ERR_INVALID);
    one[0] = 2.5;
    ck_assert_int_eq(mgrad_mgd_set_projection(mgd, MGRAD_PROJECT_TOP_K, one, 1),
                     MGRAD_ERR_INVALID);
    one[0] = T + 1;
    ck_assert_int_eq(mgrad_mgd_set_projection(mgd, MGRAD_PROJECT_TOP_K, one, 1),
                     MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_mgd_set_projection(mgd, (mgrad_projection)9, NULL, 0),
                     MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_mgd_set_projection(mgd, MGRAD_PROJECT_NONNEGATIVE, one, 1),
                     MGRAD_ERR_SIZE);
    ck_assert_int_eq(mgrad_mgd_get_projection(mgd, &kind, p, 2), MGRAD_OK);
    ck_assert(kind == MGRAD_PROJECT_BOX && p[0] == 0 && p[1] == 1);
    one[0] = T;
    ck_assert_int_eq(mgrad_mgd_set_projection(mgd, MGRAD_PROJECT_TOP_K, one, 1), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_get_projection(mgd, &kind, p, 2), MGRAD_OK);
    ck_assert(kind == MGRAD_PROJECT_TOP_K && p[0] == T);
    mgrad_mgd_destroy(mgd);
    teardown(&fx);
}
END_TEST

/* Settings changed between steps apply from the next step and keep the
   state: two Adam steps with another lr and β1 for the second equal the
   update written out here with the moments of both gradients. */
START_TEST(test_change_between_steps)
{
    double z0[T], z1[T], z2[T], g1[T], g2[T];
    for (int t = 0; t < T; t++) z0[t] = 0.05;
    lr_grad_at(z0, g1);
    fixture fx;
    setup(&fx, 0);
    mgrad_meta *lr = tf_add_meta(fx.ctx, fx.run, MGRAD_META_LR_SCHEDULE, NULL);
    mgrad_mgd *mgd = new_mgd(lr, MGRAD_MGD_ADAM);
    ck_assert_int_eq(mgrad_mgd_set_real(mgd, MGRAD_MGD_PARAM_LR, 0.002), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_step(mgd, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_value(lr, MGRAD_DTYPE_F64, z1, T), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_set_real(mgd, MGRAD_MGD_PARAM_LR, 0.001), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_set_real(mgd, MGRAD_MGD_PARAM_BETA1, 0.5), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_step(mgd, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_value(lr, MGRAD_DTYPE_F64, z2, T), MGRAD_OK);
    lr_grad_at(z1, g2);
    double c1 = 1 - pow(0.5, 2), c2 = 1 - pow(0.999, 2);
    for (int t = 0; t < T; t++) {
        double m = 0.9 * 0 + (1 - 0.9) * g1[t], v = 0.999 * 0 + (1 - 0.999) * g1[t] * g1[t];
        m = 0.5 * m + (1 - 0.5) * g2[t];
        v = 0.999 * v + (1 - 0.999) * g2[t] * g2[t];
        double want = z1[t] - 0.001 * (m / c1) / (sqrt(v / c2) + 1e-8);
        ck_assert_msg(fabs(z2[t] - want) <= 1e-15 * fabs(want), "t %d: %.17g vs %.17g", t,
                      z2[t], want);
    }
    /* a new held-out set forgets the best iterate (scores on another set);
       the same set again does not */
    double best[T];
    ck_assert_int_eq(mgrad_mgd_best(mgd, MGRAD_DTYPE_F64, best, T, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_set_heldout(mgd, fx.val), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_best(mgd, MGRAD_DTYPE_F64, best, T, NULL), MGRAD_ERR_ORDER);
    ck_assert_int_eq(mgrad_mgd_step(mgd, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_set_heldout(mgd, fx.val), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_best(mgd, MGRAD_DTYPE_F64, best, T, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_set_int(mgd, MGRAD_MGD_PARAM_MAXIMIZE, 1), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_best(mgd, MGRAD_DTYPE_F64, best, T, NULL), MGRAD_ERR_ORDER);
    int64_t steps = 0;
    ck_assert_int_eq(mgrad_mgd_steps(mgd, &steps), MGRAD_OK);
    ck_assert_int_eq(steps, 3);
    mgrad_mgd_destroy(mgd);
    teardown(&fx);
}
END_TEST

/* A held-out set is checked when it is set: another context, another
   number of features, no labels; the old one stays. */
START_TEST(test_heldout_checked)
{
    fixture fx, other;
    setup(&fx, 0);
    setup(&other, 0);
    mgrad_meta *lr = tf_add_meta(fx.ctx, fx.run, MGRAD_META_LR_SCHEDULE, NULL);
    mgrad_mgd *mgd = new_mgd(lr, MGRAD_MGD_SGD);
    ck_assert_int_eq(mgrad_mgd_set_heldout(mgd, other.val), MGRAD_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(mgrad_context_last_error(fx.ctx), "another context"));
    double x[2 * (F + 1)] = {0};
    int64_t wide[1] = {F + 1}, narrow[1] = {F};
    mgrad_dataset *bad = NULL, *unlabelled = NULL;
    ck_assert_int_eq(mgrad_dataset_create(&bad, fx.ctx, 2, 1, wide, MGRAD_DTYPE_F64, x),
                     MGRAD_OK);
    ck_assert_int_eq(
        mgrad_dataset_create(&unlabelled, fx.ctx, 2, 1, narrow, MGRAD_DTYPE_F64, x), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_set_heldout(mgd, bad), MGRAD_ERR_SHAPE);
    ck_assert_int_eq(mgrad_mgd_set_heldout(mgd, unlabelled), MGRAD_ERR_ORDER);
    ck_assert_int_eq(mgrad_run_check_dataset(fx.run, fx.val), MGRAD_OK);
    /* nothing was set: the iterate is scored by φ */
    double phi = 0, score = 0, best[T];
    ck_assert_int_eq(mgrad_mgd_step(mgd, &phi), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_best(mgd, MGRAD_DTYPE_F64, best, T, &score), MGRAD_OK);
    ck_assert_double_eq(score, phi);
    mgrad_mgd_destroy(mgd);
    mgrad_dataset_destroy(bad);
    mgrad_dataset_destroy(unlabelled);
    teardown(&fx);
    teardown(&other);
}
END_TEST

/* Schedules of the meta step: mgrad_mgd_step_size follows f(k) as written
   in mgd.h, the update uses it (two SGD steps written out here), and the
   schedule continues from the step count when LR changes between steps. */
static double factor_of(int kind, const double *p, int k)
{
    if (kind == MGRAD_MGD_LR_COSINE)
        return p[1] + (1 - p[1]) * 0.5 * (1 + cos(3.14159265358979323846 * fmin(k, p[0]) / p[0]));
    if (kind == MGRAD_MGD_LR_STEP) return pow(p[1], floor(k / p[0]));
    if (kind == MGRAD_MGD_LR_INV_SQRT) return 1 / sqrt(1 + k / p[0]);
    return 1;
}

START_TEST(test_meta_lr_schedules)
{
    double z0[T], z1[T], z2[T], g0[T], g1[T];
    for (int t = 0; t < T; t++) z0[t] = 0.05;
    lr_grad_at(z0, g0);
    fixture fx;
    setup(&fx, 0);
    mgrad_meta *lr = tf_add_meta(fx.ctx, fx.run, MGRAD_META_LR_SCHEDULE, NULL);
    mgrad_mgd *mgd = new_mgd(lr, MGRAD_MGD_SGD);
    double cosp[2] = {3, 0.2};
    ck_assert_int_eq(mgrad_mgd_set_real(mgd, MGRAD_MGD_PARAM_LR, 0.01), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_set_lr_schedule(mgd, MGRAD_MGD_LR_COSINE, cosp, 2), MGRAD_OK);
    double step = 0;
    ck_assert_int_eq(mgrad_mgd_step_size(mgd, &step), MGRAD_OK);
    ck_assert_double_eq(step, 0.01);
    ck_assert_int_eq(mgrad_mgd_step(mgd, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_value(lr, MGRAD_DTYPE_F64, z1, T), MGRAD_OK);
    for (int t = 0; t < T; t++) ck_assert_double_eq(z1[t], z0[t] - 0.01 * g0[t]);
    /* a new LR keeps the schedule's position: step 1 uses 0.02 · f(1) */
    ck_assert_int_eq(mgrad_mgd_set_real(mgd, MGRAD_MGD_PARAM_LR, 0.02), MGRAD_OK);
    double f1 = factor_of(MGRAD_MGD_LR_COSINE, cosp, 1);
    ck_assert(f1 < 1 && f1 > 0.2);
    ck_assert_int_eq(mgrad_mgd_step_size(mgd, &step), MGRAD_OK);
    ck_assert(fabs(step - 0.02 * f1) <= 1e-17);
    ck_assert_int_eq(mgrad_mgd_step(mgd, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_value(lr, MGRAD_DTYPE_F64, z2, T), MGRAD_OK);
    lr_grad_at(z1, g1);
    for (int t = 0; t < T; t++) ck_assert(fabs(z2[t] - (z1[t] - step * g1[t])) <= 1e-17);
    /* each kind's factor over the steps, from the current step count (2) on */
    const int kinds[] = {MGRAD_MGD_LR_CONSTANT, MGRAD_MGD_LR_COSINE, MGRAD_MGD_LR_STEP,
                         MGRAD_MGD_LR_INV_SQRT};
    const double params[4][2] = {{0, 0}, {4, 0.1}, {2, 0.5}, {3, 0}};
    const int64_t counts[4] = {0, 2, 2, 1};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(mgrad_mgd_set_lr_schedule(mgd, kinds[i], counts[i] ? params[i] : NULL,
                                                   counts[i]),
                         MGRAD_OK);
        mgrad_mgd_lr_schedule kind = 0;
        double got[2] = {-1, -1};
        ck_assert_int_eq(mgrad_mgd_get_lr_schedule(mgd, &kind, got, 2), MGRAD_OK);
        ck_assert_int_eq(kind, kinds[i]);
        for (int j = 0; j < counts[i]; j++) ck_assert_double_eq(got[j], params[i][j]);
        ck_assert_int_eq(mgrad_mgd_step_size(mgd, &step), MGRAD_OK);
        ck_assert_double_eq(step, 0.02 * factor_of(kinds[i], params[i], 2));
    }
    /* the documented defaults, and refusals that keep the schedule */
    const double defaults[4][2] = {{0, 0}, {100, 0}, {10, 0.5}, {1, 0}};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(mgrad_mgd_set_lr_schedule(mgd, kinds[i], NULL, 0), MGRAD_OK);
        double got[2] = {-1, -1};
        mgrad_mgd_lr_schedule kind = 0;
        ck_assert_int_eq(mgrad_mgd_get_lr_schedule(mgd, &kind, got, 2), MGRAD_OK);
        for (int j = 0; j < counts[i]; j++) ck_assert_double_eq(got[j], defaults[i][j]);
    }
    double bad[][2] = {{0.5, 0}, {4, 1.5}, {NAN, 0}};
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(mgrad_mgd_set_lr_schedule(mgd, MGRAD_MGD_LR_COSINE, bad[i], 2),
                         MGRAD_ERR_INVALID);
    double bstep[][2] = {{1.5, 0.5}, {2, 0}, {2, 1.5}};
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(mgrad_mgd_set_lr_schedule(mgd, MGRAD_MGD_LR_STEP, bstep[i], 2),
                         MGRAD_ERR_INVALID);
    double k0[1] = {0};
    ck_assert_int_eq(mgrad_mgd_set_lr_schedule(mgd, MGRAD_MGD_LR_INV_SQRT, k0, 1),
                     MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_mgd_set_lr_schedule(mgd, MGRAD_MGD_LR_INV_SQRT, cosp, 2),
                     MGRAD_ERR_SIZE);
    mgrad_mgd_lr_schedule kind = 0;
    ck_assert_int_eq(mgrad_mgd_get_lr_schedule(mgd, &kind, NULL, 0), MGRAD_OK);
    ck_assert_int_eq(kind, MGRAD_MGD_LR_INV_SQRT);
    mgrad_mgd_destroy(mgd);
    teardown(&fx);
}
END_TEST

/* A 0/1 start of K ones over the training rows (every other of the first
   2K), as data weights. */
static void start_subset(mgrad_meta *w, int K, double *z)
{
    for (int i = 0; i < N; i++) z[i] = i < 2 * K && i % 2 == 0;
    ck_assert_int_eq(mgrad_meta_set_value(w, MGRAD_DTYPE_F64, z, N), MGRAD_OK);
}

/* KEEP_DROP: each step is the swap rule of mgd.h computed here from the
   same gradient; the selection keeps exactly K distinct examples; values
   that are not 0/1, projections and step sizes are refused. */
START_TEST(test_keep_drop)
{
    enum { K = 20, M = 4 };
    fixture fx;
    setup(&fx, 0.25);
    mgrad_meta *w = NULL, *pool = NULL;
    w = tf_add_meta(fx.ctx, fx.run, MGRAD_META_DATA_WEIGHTS, NULL);
    mgrad_meta_options mo = MGRAD_META_OPTIONS_INIT;
    mo.step = T - 5;
    ck_assert_int_eq(mgrad_run_add_meta(&pool, fx.run, MGRAD_META_POOL_WEIGHTS, &mo), MGRAD_OK);
    double z[N], g[N], after[N];
    start_subset(w, K, z);
    mgrad_mgd *mgd = new_mgd(w, MGRAD_MGD_KEEP_DROP);
    ck_assert_int_eq(mgrad_mgd_set_int(mgd, MGRAD_MGD_PARAM_EXCHANGE, M), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_set_gradient_from(mgd, pool), MGRAD_OK);
    int total_swaps = 0;
    for (int step = 0; step < 6; step++) {
        /* the gradient the step will see (same value, same batch order) */
        ck_assert_int_eq(mgrad_meta_get_value(w, MGRAD_DTYPE_F64, z, N), MGRAD_OK);
        ck_assert_int_eq(mgrad_run_train(fx.run, NULL), MGRAD_OK);
        ck_assert_int_eq(mgrad_run_reverse(fx.run), MGRAD_OK);
        ck_assert_int_eq(mgrad_meta_get_grad(pool, MGRAD_DTYPE_F64, g, N), MGRAD_OK);
        ck_assert_int_eq(mgrad_mgd_step(mgd, NULL), MGRAD_OK);
        ck_assert_int_eq(mgrad_meta_get_value(w, MGRAD_DTYPE_F64, after, N), MGRAD_OK);
        /* expected: kept by descending g, dropped by ascending g, ties by
           index; swap pairwise while g_dropped < g_kept */
        int kept[N], dropped[N], nk = 0, nd = 0;
        for (int i = 0; i < N; i++) {
            if (z[i] == 1)
                kept[nk++] = i;
            else
                dropped[nd++] = i;
        }
        for (int a = 0; a < nk; a++)
            for (int b = a + 1; b < nk; b++)
                if (g[kept[b]] > g[kept[a]] || (g[kept[b]] == g[kept[a]] && kept[b] < kept[a])) {
                    int t = kept[a];
                    kept[a] = kept[b];
                    kept[b] = t;
                }
        for (int a = 0; a < nd; a++)
            for (int b = a + 1; b < nd; b++)
                if (g[dropped[b]] < g[dropped[a]] ||
                    (g[dropped[b]] == g[dropped[a]] && dropped[b] > dropped[a])) {
                    int t = dropped[a];
                    dropped[a] = dropped[b];
                    dropped[b] = t;
                }
        double want[N];
        memcpy(want, z, sizeof want);
        for (int p = 0; p < M && p < nk && p < nd && g[dropped[p]] < g[kept[p]]; p++) {
            want[kept[p]] = 0;
            want[dropped[p]] = 1;
            total_swaps++;
        }
        int ones = 0;
        for (int i = 0; i < N; i++) {
            ck_assert_double_eq(after[i], want[i]);
            ck_assert(after[i] == 0 || after[i] == 1); /* a set: no example twice */
            ones += after[i] == 1;
        }
        ck_assert_int_eq(ones, K);
    }
    ck_assert_int_gt(total_swaps, 0);
    /* no step size, no projection; a start that is not 0/1 is refused and kept */
    ck_assert_int_eq(mgrad_mgd_set_real(mgd, MGRAD_MGD_PARAM_LR, 1), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_mgd_set_lr_schedule(mgd, MGRAD_MGD_LR_STEP, NULL, 0),
                     MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_mgd_set_projection(mgd, MGRAD_PROJECT_BOX, NULL, 0),
                     MGRAD_ERR_INVALID);
    double step = -1;
    ck_assert_int_eq(mgrad_mgd_step_size(mgd, &step), MGRAD_OK);
    ck_assert_double_eq(step, 0);
    z[3] = 2;
    ck_assert_int_eq(mgrad_meta_set_value(w, MGRAD_DTYPE_F64, z, N), MGRAD_OK);
    int64_t steps_before = 0, steps_after = 0;
    ck_assert_int_eq(mgrad_mgd_steps(mgd, &steps_before), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_step(mgd, NULL), MGRAD_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(mgrad_context_last_error(fx.ctx), "entry 3"));
    ck_assert_int_eq(mgrad_mgd_steps(mgd, &steps_after), MGRAD_OK);
    ck_assert_int_eq(steps_after, steps_before);
    ck_assert_int_eq(mgrad_meta_get_value(w, MGRAD_DTYPE_F64, after, N), MGRAD_OK);
    ck_assert_double_eq(after[3], 2);
    mgrad_mgd_destroy(mgd);
    teardown(&fx);
}
END_TEST

/* EXCHANGE under a BOX keeps the budget: a 0/1 start of K with BOX {0, 1}
   ends with K (the clipping projection used to cut it: 400 → 394 in the
   issue); a start outside the box is refused; FIXED_SUM and TOP_K are
   refused.  Without a box, counts form a multiset: fewer distinct
   examples than units. */
START_TEST(test_exchange_budget_under_projection)
{
    enum { K = 20 };
    fixture fx;
    setup(&fx, 0.25);
    mgrad_meta *w = tf_add_meta(fx.ctx, fx.run, MGRAD_META_DATA_WEIGHTS, NULL);
    double z[N];
    for (int box = 0; box < 2; box++) {
        start_subset(w, K, z);
        mgrad_mgd *mgd = new_mgd(w, MGRAD_MGD_EXCHANGE);
        ck_assert_int_eq(mgrad_mgd_set_real(mgd, MGRAD_MGD_PARAM_LR, 1), MGRAD_OK);
        ck_assert_int_eq(mgrad_mgd_set_int(mgd, MGRAD_MGD_PARAM_EXCHANGE, 6), MGRAD_OK);
        if (box)
            ck_assert_int_eq(mgrad_mgd_set_projection(mgd, MGRAD_PROJECT_BOX, NULL, 0),
                             MGRAD_OK);
        ck_assert_int_eq(mgrad_mgd_run(mgd, 4), MGRAD_OK);
        ck_assert_int_eq(mgrad_meta_get_value(w, MGRAD_DTYPE_F64, z, N), MGRAD_OK);
        double total = 0, top = 0;
        int distinct = 0;
        for (int i = 0; i < N; i++) {
            ck_assert(z[i] >= 0 && z[i] == floor(z[i]));
            total += z[i];
            top = fmax(top, z[i]);
            distinct += z[i] > 0;
        }
        ck_assert_double_eq(total, K);
        if (box) {
            ck_assert_double_eq(top, 1);
            ck_assert_int_eq(distinct, K);
            /* a start outside the box: refused before training, value kept */
            z[0] = 3;
            ck_assert_int_eq(mgrad_meta_set_value(w, MGRAD_DTYPE_F64, z, N), MGRAD_OK);
            ck_assert_int_eq(mgrad_mgd_step(mgd, NULL), MGRAD_ERR_INVALID);
            ck_assert_ptr_nonnull(strstr(mgrad_context_last_error(fx.ctx), "BOX"));
            double again[N];
            ck_assert_int_eq(mgrad_meta_get_value(w, MGRAD_DTYPE_F64, again, N), MGRAD_OK);
            ck_assert_double_eq(again[0], 3);
        } else {
            /* the multiset: some example holds several units */
            ck_assert(top > 1);
            ck_assert_int_lt(distinct, K);
        }
        double one[1] = {K};
        ck_assert_int_eq(mgrad_mgd_set_projection(mgd, MGRAD_PROJECT_FIXED_SUM, one, 1),
                         MGRAD_ERR_INVALID);
        ck_assert_int_eq(mgrad_mgd_set_projection(mgd, MGRAD_PROJECT_TOP_K, one, 1),
                         MGRAD_ERR_INVALID);
        ck_assert_int_eq(mgrad_mgd_set_projection(mgd, MGRAD_PROJECT_NONNEGATIVE, NULL, 0),
                         MGRAD_OK);
        mgrad_mgd_destroy(mgd);
    }
    teardown(&fx);
}
END_TEST

typedef struct score_log {
    int calls;
    double score[8];
} score_log;

static int on_score(int64_t step, double phi, double score, double seconds, void *ud)
{
    (void)step, (void)phi, (void)seconds;
    score_log *p = ud;
    p->score[p->calls++] = score;
    return 0;
}

/* BEST_ORDERS: with reshuffle, the same iterate scored at two different
   steps gets the same score when it is scored on fixed orders, and
   different scores without (each step trains on its own order). */
START_TEST(test_best_orders)
{
    fixture fx;
    setup(&fx, 0);
    mgrad_meta *lr = tf_add_meta(fx.ctx, fx.run, MGRAD_META_LR_SCHEDULE, NULL);
    double z0[T], best[T];
    ck_assert_int_eq(mgrad_meta_get_value(lr, MGRAD_DTYPE_F64, z0, T), MGRAD_OK);
    for (int orders = 0; orders <= 2; orders += 2) {
        mgrad_mgd *mgd = new_mgd(lr, MGRAD_MGD_SGD);
        /* without reshuffle there is nothing to fix: refused */
        ck_assert_int_eq(mgrad_mgd_set_int(mgd, MGRAD_MGD_PARAM_BEST_ORDERS, 1),
                         MGRAD_ERR_INVALID);
        ck_assert_int_eq(mgrad_mgd_set_int(mgd, MGRAD_MGD_PARAM_RESHUFFLE, 1), MGRAD_OK);
        ck_assert_int_eq(mgrad_mgd_set_int(mgd, MGRAD_MGD_PARAM_BEST_ORDERS, orders), MGRAD_OK);
        ck_assert_int_eq(mgrad_mgd_set_heldout(mgd, fx.val), MGRAD_OK);
        score_log log = {0, {0}};
        ck_assert_int_eq(mgrad_mgd_set_progress(mgd, on_score, &log), MGRAD_OK);
        ck_assert_int_eq(mgrad_mgd_run(mgd, 1), MGRAD_OK); /* step 0 scores z0 */
        ck_assert_int_eq(mgrad_meta_set_value(lr, MGRAD_DTYPE_F64, z0, T), MGRAD_OK);
        ck_assert_int_eq(mgrad_mgd_run(mgd, 1), MGRAD_OK); /* step 1 scores z0 again */
        ck_assert_int_eq(log.calls, 2);
        if (orders)
            ck_assert_double_eq(log.score[0], log.score[1]);
        else
            ck_assert(log.score[0] != log.score[1]);
        double s_best = 0;
        ck_assert_int_eq(mgrad_mgd_best(mgd, MGRAD_DTYPE_F64, best, T, &s_best), MGRAD_OK);
        ck_assert(s_best <= log.score[0] && s_best <= log.score[1]);
        if (orders)
            ck_assert_int_eq(mgrad_mgd_set_int(mgd, MGRAD_MGD_PARAM_RESHUFFLE, 0),
                             MGRAD_ERR_INVALID);
        mgrad_mgd_destroy(mgd);
        ck_assert_int_eq(mgrad_meta_set_value(lr, MGRAD_DTYPE_F64, z0, T), MGRAD_OK);
    }
    teardown(&fx);
}
END_TEST

/* The maps' values written out here from mgd.h (independent of mgd.c). */
static void map_value(int kind, const double *basis, int J, const double *c, double *z)
{
    const double pi = 3.14159265358979323846;
    for (int t = 0; t < T; t++) {
        double s = (double)t / (T - 1), u = 0;
        if (kind == MGRAD_MGD_MAP_EXP) {
            if (basis != NULL)
                for (int j = 0; j < J; j++) u += basis[t * J + j] * c[j];
            else
                u = c[t];
            z[t] = exp(u);
        } else if (kind == MGRAD_MGD_MAP_COSINE) {
            z[t] = s < c[2] ? c[0] * s / c[2]
                            : c[1] + (c[0] - c[1]) * 0.5 *
                                         (1 + cos(pi * (s - c[2]) / (1 - c[2])));
        } else {
            z[t] = s < c[3] ? c[0] + (c[1] - c[0]) * 0.5 * (1 + cos(pi * s / c[3]))
                            : c[2] + (c[0] - c[2]) * 0.5 *
                                         (1 + cos(pi * (s - c[3]) / (1 - c[3])));
        }
    }
}

/* φ at map(c), trained on a twin run. */
static double phi_at_map(int kind, const double *basis, int J, const double *c)
{
    double z[T], phi = 0;
    map_value(kind, basis, J, c, z);
    fixture fx;
    setup(&fx, 0);
    mgrad_meta *lr = tf_add_meta(fx.ctx, fx.run, MGRAD_META_LR_SCHEDULE, NULL);
    ck_assert_int_eq(mgrad_meta_set_value(lr, MGRAD_DTYPE_F64, z, T), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_train(fx.run, &phi), MGRAD_OK);
    teardown(&fx);
    return phi;
}

/* Each map's chain rule against central differences of φ(map(c)) in f64:
   one SGD step of tiny size gives g = (c − c_new) / lr; the value after the
   step is map(c_new).  No entry of the schedule sits near a family's kink. */
START_TEST(test_maps_chain_rule)
{
    enum { J = 3 };
    double basis[T * J];
    for (int t = 0; t < T; t++) {
        double pos = (double)t / (T - 1) * (J - 1);
        for (int j = 0; j < J; j++) basis[t * J + j] = fmax(0, 1 - fabs(pos - j));
    }
    struct {
        int kind, with_basis, dim;
        double c[T];
    } cases[4] = {{MGRAD_MGD_MAP_EXP, 0, T, {0}},
                  {MGRAD_MGD_MAP_EXP, 1, J, {0}},
                  {MGRAD_MGD_MAP_COSINE, 0, 3, {0.08, 0.01, 0.3}},
                  {MGRAD_MGD_MAP_ONE_CYCLE, 0, 4, {0.1, 0.02, 0.005, 0.4}}};
    for (int t = 0; t < T; t++) cases[0].c[t] = log(0.05) + 0.01 * t;
    for (int j = 0; j < J; j++) cases[1].c[j] = log(0.04) + 0.2 * j;
    for (int ci = 0; ci < 4; ci++) {
        const double *Bs = cases[ci].with_basis ? basis : NULL;
        int dim = cases[ci].dim;
        double *c = cases[ci].c, cnew[T], z[T], want[T];
        fixture fx;
        setup(&fx, 0);
        mgrad_meta *lr = NULL;
        ck_assert_int_eq(mgrad_run_add_meta(&lr, fx.run, MGRAD_META_LR_SCHEDULE, NULL),
                         MGRAD_OK);
        mgrad_mgd *mgd = new_mgd(lr, MGRAD_MGD_SGD);
        ck_assert_int_eq(mgrad_mgd_set_real(mgd, MGRAD_MGD_PARAM_LR, 1e-6), MGRAD_OK);
        if (Bs != NULL) ck_assert_int_eq(mgrad_mgd_set_basis(mgd, Bs, J, c), MGRAD_OK);
        if (ci == 0) {
            /* no coefficients: c = log of the current value */
            map_value(MGRAD_MGD_MAP_EXP, NULL, 0, c, z);
            ck_assert_int_eq(mgrad_meta_set_value(lr, MGRAD_DTYPE_F64, z, T), MGRAD_OK);
            ck_assert_int_eq(mgrad_mgd_set_map(mgd, cases[ci].kind, NULL, 0), MGRAD_OK);
        } else {
            ck_assert_int_eq(mgrad_mgd_set_map(mgd, cases[ci].kind, c, dim), MGRAD_OK);
        }
        mgrad_mgd_map kind = 0;
        int64_t got_dim = 0;
        ck_assert_int_eq(mgrad_mgd_get_map(mgd, &kind, &got_dim), MGRAD_OK);
        ck_assert_int_eq(kind, cases[ci].kind);
        ck_assert_int_eq(got_dim, dim);
        ck_assert_int_eq(mgrad_mgd_step(mgd, NULL), MGRAD_OK);
        double best[T];
        ck_assert_int_eq(mgrad_mgd_best(mgd, MGRAD_DTYPE_F64, best, T, NULL), MGRAD_OK);
        map_value(cases[ci].kind, Bs, J, c, want);
        for (int t = 0; t < T; t++)
            ck_assert_msg(fabs(best[t] - want[t]) <= 1e-14 * fabs(want[t]), "map %d t %d: %.17g vs %.17g", cases[ci].kind, t, best[t], want[t]);
        /* the value after the step is map(c_new), c_new = c − lr·g */
        ck_assert_int_eq(mgrad_meta_get_value(lr, MGRAD_DTYPE_F64, z, T), MGRAD_OK);
        double gmax = 0, fd[T];
        for (int j = 0; j < dim; j++) {
            double h = 1e-5, cp[T], cm[T];
            memcpy(cp, c, sizeof cp);
            memcpy(cm, c, sizeof cm);
            cp[j] += h;
            cm[j] -= h;
            fd[j] = (phi_at_map(cases[ci].kind, Bs, J, cp) - phi_at_map(cases[ci].kind, Bs, J, cm)) /
                    (2 * h);
            gmax = fmax(gmax, fabs(fd[j]));
        }
        ck_assert(gmax > 0);
        /* the library's step used Jᵀ dφ/dz; the test's uses the FD gradient
           through its own map: the two new values agree */
        for (int j = 0; j < dim; j++) cnew[j] = c[j] - 1e-6 * fd[j];
        map_value(cases[ci].kind, Bs, J, cnew, want);
        double zscale = 0;
        for (int t = 0; t < T; t++) zscale = fmax(zscale, fabs(z[t] - best[t]));
        ck_assert(zscale > 0); /* the step moved the value */
        for (int t = 0; t < T; t++)
            ck_assert_msg(fabs(z[t] - want[t]) <= 1e-5 * zscale,
                          "map %d entry %d: value %.12g, from FD gradient %.12g (moved %.3g)",
                          cases[ci].kind, t, z[t], want[t], zscale);
        /* once stepping started the optimised variable is fixed */
        ck_assert_int_eq(mgrad_mgd_set_map(mgd, MGRAD_MGD_MAP_IDENTITY, NULL, 0),
                         MGRAD_ERR_ORDER);
        mgrad_mgd_destroy(mgd);
        teardown(&fx);
    }
}
END_TEST

/* set_map refusals change nothing. */
START_TEST(test_map_refusals)
{
    fixture fx;
    setup(&fx, 0);
    mgrad_meta *lr = NULL, *w = NULL;
    lr = tf_add_meta(fx.ctx, fx.run, MGRAD_META_LR_SCHEDULE, NULL);
    w = tf_add_meta(fx.ctx, fx.run, MGRAD_META_DATA_WEIGHTS, NULL);
    mgrad_mgd *mgd = new_mgd(lr, MGRAD_MGD_ADAM);
    double c[4] = {0.1, 0.0, 0.3, 0.5}, bad[4] = {0.1, 0.0, 1.0, 0};
    ck_assert_int_eq(mgrad_mgd_set_map(mgd, (mgrad_mgd_map)7, NULL, 0), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_mgd_set_map(mgd, MGRAD_MGD_MAP_COSINE, c, 4), MGRAD_ERR_SIZE);
    ck_assert_int_eq(mgrad_mgd_set_map(mgd, MGRAD_MGD_MAP_COSINE, NULL, 0), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_mgd_set_map(mgd, MGRAD_MGD_MAP_COSINE, bad, 3), MGRAD_ERR_INVALID);
    bad[2] = 0.3;
    bad[0] = -1;
    ck_assert_int_eq(mgrad_mgd_set_map(mgd, MGRAD_MGD_MAP_COSINE, bad, 3), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_mgd_set_map(mgd, MGRAD_MGD_MAP_ONE_CYCLE, c, 3), MGRAD_ERR_SIZE);
    c[3] = 0; /* pct below 0.01 */
    ck_assert_int_eq(mgrad_mgd_set_map(mgd, MGRAD_MGD_MAP_ONE_CYCLE, c, 4), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_mgd_set_map(mgd, MGRAD_MGD_MAP_EXP, c, 4), MGRAD_ERR_SIZE);
    /* EXP of a value with a zero entry */
    double z[T];
    for (int t = 0; t < T; t++) z[t] = t == 7 ? 0 : 0.05;
    ck_assert_int_eq(mgrad_meta_set_value(lr, MGRAD_DTYPE_F64, z, T), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_set_map(mgd, MGRAD_MGD_MAP_EXP, NULL, 0), MGRAD_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(mgrad_context_last_error(fx.ctx), "entry 7"));
    mgrad_mgd_map kind = 9;
    int64_t dim = 0;
    ck_assert_int_eq(mgrad_mgd_get_map(mgd, &kind, &dim), MGRAD_OK);
    ck_assert(kind == MGRAD_MGD_MAP_IDENTITY && dim == T);
    /* a family with a basis; a basis after a map */
    c[3] = 0.5;
    ck_assert_int_eq(mgrad_mgd_set_map(mgd, MGRAD_MGD_MAP_ONE_CYCLE, c, 4), MGRAD_OK);
    double basis[T];
    for (int t = 0; t < T; t++) basis[t] = 1;
    ck_assert_int_eq(mgrad_mgd_set_basis(mgd, basis, 1, c), MGRAD_ERR_ORDER);
    ck_assert_int_eq(mgrad_mgd_set_map(mgd, MGRAD_MGD_MAP_IDENTITY, NULL, 0), MGRAD_OK);
    /* back to u = the value: T optimised values, not the family's 4, and a
       step runs on them */
    ck_assert_int_eq(mgrad_mgd_get_map(mgd, &kind, &dim), MGRAD_OK);
    ck_assert(kind == MGRAD_MGD_MAP_IDENTITY && dim == T);
    for (int t = 0; t < T; t++) z[t] = 0.05;
    ck_assert_int_eq(mgrad_meta_set_value(lr, MGRAD_DTYPE_F64, z, T), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_step(mgd, NULL), MGRAD_OK);
    mgrad_mgd_destroy(mgd);
    mgd = new_mgd(lr, MGRAD_MGD_ADAM);
    ck_assert_int_eq(mgrad_mgd_set_basis(mgd, basis, 1, c), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_set_map(mgd, MGRAD_MGD_MAP_COSINE, c, 3), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_mgd_set_map(mgd, MGRAD_MGD_MAP_EXP, NULL, 0), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_mgd_get_map(mgd, &kind, &dim), MGRAD_OK);
    ck_assert(kind == MGRAD_MGD_MAP_IDENTITY && dim == 1);
    mgrad_mgd_destroy(mgd);
    ck_assert_int_eq(mgrad_mgd_create(&mgd, w, MGRAD_MGD_KEEP_DROP), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_set_map(mgd, MGRAD_MGD_MAP_EXP, NULL, 0), MGRAD_ERR_INVALID);
    mgrad_mgd_destroy(mgd);
    teardown(&fx);
}
END_TEST

static void count_warnings(mgrad_log_level level, const char *message, void *ud)
{
    if (level == MGRAD_LOG_WARNING && strstr(message, "mgrad_mgd_trust_check") != NULL)
        ++*(int *)ud;
}

/* The trust check reports what its parts compute: Ŝ as
   mgrad_meta_metasmoothness with the documented default h, the relative
   difference of the f64 and f32 metagradients as computed here, flags by
   the documented thresholds, and one warning per failed check. */
START_TEST(test_trust_check)
{
    int warnings = 0;
    fixture a, b;
    setup_with(&a, 0, MGRAD_DTYPE_F64, count_warnings, &warnings);
    setup_with(&b, 0, MGRAD_DTYPE_F32, NULL, NULL);
    mgrad_meta *la = NULL, *lb = NULL;
    la = tf_add_meta(a.ctx, a.run, MGRAD_META_LR_SCHEDULE, NULL);
    lb = tf_add_meta(b.ctx, b.run, MGRAD_META_LR_SCHEDULE, NULL);
    double z[T], ga[T], gb[T];
    for (int t = 0; t < T; t++) z[t] = 0.05 + 0.001 * t;
    ck_assert_int_eq(mgrad_meta_set_value(la, MGRAD_DTYPE_F64, z, T), MGRAD_OK);
    mgrad_trust_report r = MGRAD_TRUST_REPORT_INIT;
    ck_assert_int_eq(mgrad_mgd_trust_check(la, lb, 0, 5, &r), MGRAD_OK);
    double norm = 0;
    for (int t = 0; t < T; t++) norm += z[t] * z[t];
    ck_assert(fabs(r.h - 0.1 * sqrt(norm)) <= 1e-15 * r.h);
    double S = 0, curv = 0;
    ck_assert_int_eq(mgrad_meta_metasmoothness(la, NULL, 5, r.h, &S, &curv), MGRAD_OK);
    ck_assert_double_eq(r.S, S);
    ck_assert_double_eq(r.curvature, curv);
    /* the metagradients at z in both precisions, here */
    ck_assert_int_eq(mgrad_meta_set_value(lb, MGRAD_DTYPE_F64, z, T), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_train(a.run, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_reverse(a.run), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(la, MGRAD_DTYPE_F64, ga, T), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_train(b.run, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_reverse(b.run), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(lb, MGRAD_DTYPE_F64, gb, T), MGRAD_OK);
    double dd = 0, rr = 0;
    for (int t = 0; t < T; t++) {
        dd += (ga[t] - gb[t]) * (ga[t] - gb[t]);
        rr += ga[t] * ga[t];
    }
    ck_assert(fabs(r.rel_diff - sqrt(dd / rr)) <= 1e-12 * r.rel_diff + 1e-300);
    ck_assert(r.rel_diff > 0 && r.cosine <= 1 && r.cosine > -1);
    ck_assert_int_eq(r.smooth_ok, r.S >= 0.6);
    ck_assert_int_eq(r.precision_ok, r.rel_diff <= 0.2);
    ck_assert_int_eq(r.trusted, r.smooth_ok && r.precision_ok);
    ck_assert_int_eq(warnings, !r.smooth_ok + !r.precision_ok);
    /* this small smooth-enough MLP in f32 agrees with f64 */
    ck_assert_msg(r.precision_ok, "f32 vs f64: %g", r.rel_diff);
    /* without a twin: no precision check; a given h is used as is */
    mgrad_trust_report r2 = MGRAD_TRUST_REPORT_INIT;
    warnings = 0;
    ck_assert_int_eq(mgrad_mgd_trust_check(la, NULL, 0.02, 3, &r2), MGRAD_OK);
    ck_assert(isnan(r2.rel_diff) && isnan(r2.cosine) && r2.precision_ok == 1);
    ck_assert_double_eq(r2.h, 0.02);
    ck_assert_int_eq(warnings, !r2.smooth_ok);
    /* misuse: nothing written */
    mgrad_trust_report bad = MGRAD_TRUST_REPORT_INIT;
    ck_assert_int_eq(mgrad_mgd_trust_check(la, la, 0, 1, &bad), MGRAD_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(mgrad_context_last_error(a.ctx), "dtype"));
    mgrad_meta *wd = tf_add_meta(b.ctx, b.run, MGRAD_META_WEIGHT_DECAY, NULL);
    ck_assert_int_eq(mgrad_mgd_trust_check(la, wd, 0, 1, &bad), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_mgd_trust_check(la, NULL, -1, 1, &bad), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_mgd_trust_check(la, NULL, NAN, 1, &bad), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_mgd_trust_check(NULL, NULL, 0, 1, &bad), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_mgd_trust_check(la, NULL, 0, 1, NULL), MGRAD_ERR_NULL);
    bad.version = 99;
    ck_assert_int_eq(mgrad_mgd_trust_check(la, NULL, 0, 1, &bad), MGRAD_ERR_VERSION);
    ck_assert_double_eq(bad.h, 0);
    ck_assert_double_eq(bad.S, 0);
    teardown(&a);
    teardown(&b);
}
END_TEST

START_TEST(test_misuse)
{
    fixture fx;
    setup(&fx, 0);
    mgrad_meta *lr = NULL, *wd = NULL;
    lr = tf_add_meta(fx.ctx, fx.run, MGRAD_META_LR_SCHEDULE, NULL);
    wd = tf_add_meta(fx.ctx, fx.run, MGRAD_META_WEIGHT_DECAY, NULL);
    mgrad_mgd *mgd = (mgrad_mgd *)0x1;
    mgrad_run *run = NULL;
    ck_assert_int_eq(mgrad_meta_run(lr, &run), MGRAD_OK);
    ck_assert_ptr_eq(run, fx.run);
    mgrad_context *ctx = NULL;
    ck_assert_int_eq(mgrad_run_context(fx.run, &ctx), MGRAD_OK);
    ck_assert_ptr_eq(ctx, fx.ctx);
    ck_assert_int_eq(mgrad_mgd_create(NULL, lr, MGRAD_MGD_SIGN), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_mgd_create(&mgd, NULL, MGRAD_MGD_SIGN), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_mgd_create(&mgd, lr, (mgrad_mgd_method)0), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_mgd_create(&mgd, wd, MGRAD_MGD_EXCHANGE), MGRAD_ERR_INVALID);
    ck_assert_ptr_eq(mgd, (mgrad_mgd *)0x1);
    ck_assert_int_eq(mgrad_mgd_create(&mgd, lr, MGRAD_MGD_SIGN), MGRAD_OK);
    mgrad_mgd_param_info in = MGRAD_MGD_PARAM_INFO_INIT;
    ck_assert_int_eq(mgrad_mgd_get_param_info(mgd, MGRAD_MGD_PARAM_LR, NULL), MGRAD_ERR_NULL);
    in.version = 5;
    ck_assert_int_eq(mgrad_mgd_get_param_info(mgd, MGRAD_MGD_PARAM_LR, &in), MGRAD_ERR_VERSION);
    in.version = MGRAD_MGD_PARAM_INFO_VERSION;
    ck_assert_int_eq(mgrad_mgd_get_param_info(mgd, (mgrad_mgd_param)99, &in),
                     MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_mgd_set_real(mgd, MGRAD_MGD_PARAM_LR, -1), MGRAD_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(mgrad_context_last_error(fx.ctx), "lr"));
    ck_assert_int_eq(mgrad_mgd_set_real(mgd, MGRAD_MGD_PARAM_BETA1, 0.5), MGRAD_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(mgrad_context_last_error(fx.ctx), "ADAM"));
    ck_assert_int_eq(mgrad_mgd_set_gradient_from(mgd, wd), MGRAD_ERR_INVALID);
    double k[1] = {T + 1};
    ck_assert_int_eq(mgrad_mgd_set_projection(mgd, MGRAD_PROJECT_TOP_K, k, 1),
                     MGRAD_ERR_INVALID);
    double best[T];
    ck_assert_int_eq(mgrad_mgd_best(mgd, MGRAD_DTYPE_F64, best, T, NULL), MGRAD_ERR_ORDER);
    ck_assert_int_eq(mgrad_mgd_run(mgd, -1), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_mgd_step(NULL, NULL), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_mgd_step(mgd, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_best(mgd, MGRAD_DTYPE_F64, best, T - 1, NULL), MGRAD_ERR_SIZE);
    mgrad_mgd_destroy(mgd);
    mgrad_mgd_destroy(NULL);
    teardown(&fx);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("mgd");
    TCase *tc = tcase_create("mgd");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_sgd_update_exact);
    tcase_add_test(tc, test_projections);
    tcase_add_test(tc, test_basis_chain_rule);
    tcase_add_test(tc, test_lr_schedule_improves);
    tcase_add_test(tc, test_cancel);
    tcase_add_test(tc, test_reshuffle);
    tcase_add_test(tc, test_data_selection_counts);
    tcase_add_test(tc, test_exchange_keeps_total);
    tcase_add_test(tc, test_settings_ranges);
    tcase_add_test(tc, test_projection_settings);
    tcase_add_test(tc, test_change_between_steps);
    tcase_add_test(tc, test_heldout_checked);
    tcase_add_test(tc, test_meta_lr_schedules);
    tcase_add_test(tc, test_keep_drop);
    tcase_add_test(tc, test_exchange_budget_under_projection);
    tcase_add_test(tc, test_best_orders);
    tcase_add_test(tc, test_maps_chain_rule);
    tcase_add_test(tc, test_map_refusals);
    tcase_add_test(tc, test_trust_check);
    tcase_add_test(tc, test_misuse);
    suite_add_tcase(s, tc);
    return s;
}
