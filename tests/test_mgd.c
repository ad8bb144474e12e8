/*
 * test_mgd.c - metagradient descent: updates and projections exactly as
 * documented, φ decreases on a learnable LR-schedule task, best-iterate
 * tracking, cancellation, count-based data selection, misuse.
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

static void setup(fixture *fx, double flip)
{
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = MGRAD_DTYPE_F64;
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

static void teardown(fixture *fx)
{
    tf_destroy(fx->ctx, fx->model, fx->run, fx->train, fx->val, NULL);
}

/* The metagradient of the LR schedule at value z (on a twin run). */
static void lr_grad_at(const double *z, double *g)
{
    fixture fx;
    setup(&fx, 0);
    mgrad_meta *lr = NULL;
    ck_assert_int_eq(mgrad_run_add_meta(&lr, fx.run, MGRAD_META_LR_SCHEDULE, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_set_value(lr, MGRAD_DTYPE_F64, z, T), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_train(fx.run, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_reverse(fx.run), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(lr, MGRAD_DTYPE_F64, g, T), MGRAD_OK);
    teardown(&fx);
}

/* One meta-step with `o` from the flat schedule 0.05; returns the new value
   and, through y, z − lr·g computed here from the twin run's gradient. */
static void one_step(const mgrad_mgd_options *o, double *znew, double *y)
{
    double z[T], g[T];
    for (int t = 0; t < T; t++) z[t] = 0.05;
    lr_grad_at(z, g);
    for (int t = 0; t < T; t++) y[t] = z[t] - o->lr * g[t];
    fixture fx;
    setup(&fx, 0);
    mgrad_meta *lr = NULL;
    ck_assert_int_eq(mgrad_run_add_meta(&lr, fx.run, MGRAD_META_LR_SCHEDULE, NULL), MGRAD_OK);
    mgrad_mgd *mgd = NULL;
    ck_assert_int_eq(mgrad_mgd_create(&mgd, lr, o), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_step(mgd, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_value(lr, MGRAD_DTYPE_F64, znew, T), MGRAD_OK);
    mgrad_mgd_destroy(mgd);
    teardown(&fx);
}

START_TEST(test_sgd_update_exact)
{
    mgrad_mgd_options o = MGRAD_MGD_OPTIONS_INIT;
    o.method = MGRAD_MGD_SGD;
    o.lr = 0.01;
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
    for (int t = 0; t < T; t++) z[t] = 0.05;  /* basis · c: hats sum to 1 */
    lr_grad_at(z, g);
    double gc[J] = {0};
    for (int t = 0; t < T; t++)
        for (int j = 0; j < J; j++) gc[j] += basis[t * J + j] * g[t];
    for (int t = 0; t < T; t++) {
        want[t] = 0;
        for (int j = 0; j < J; j++) want[t] += basis[t * J + j] * (c[j] - 0.01 * gc[j]);
    }
    mgrad_mgd_options o = MGRAD_MGD_OPTIONS_INIT;
    o.method = MGRAD_MGD_SGD;
    o.lr = 0.01;
    o.basis = basis;
    o.basis_dim = J;
    o.coefficients = c;
    fixture fx;
    setup(&fx, 0);
    mgrad_meta *lr = NULL;
    ck_assert_int_eq(mgrad_run_add_meta(&lr, fx.run, MGRAD_META_LR_SCHEDULE, NULL), MGRAD_OK);
    mgrad_mgd *mgd = NULL;
    ck_assert_int_eq(mgrad_mgd_create(&mgd, lr, &o), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_step(mgd, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_value(lr, MGRAD_DTYPE_F64, z, T), MGRAD_OK);
    for (int t = 0; t < T; t++) ck_assert(fabs(z[t] - want[t]) < 1e-15);
    double best[T];
    ck_assert_int_eq(mgrad_mgd_best(mgd, MGRAD_DTYPE_F64, best, T, NULL), MGRAD_OK);
    for (int t = 0; t < T; t++) ck_assert(fabs(best[t] - 0.05) < 1e-15);
    mgrad_mgd_destroy(mgd);
    o.coefficients = NULL;
    ck_assert_int_eq(mgrad_mgd_create(&mgd, lr, &o), MGRAD_ERR_INVALID);
    teardown(&fx);
}
END_TEST

START_TEST(test_projections)
{
    mgrad_mgd_options o = MGRAD_MGD_OPTIONS_INIT;
    o.method = MGRAD_MGD_SGD;
    o.lr = 2.0;  /* large, so that the projections bind */
    double z[T], y[T];
    /* box */
    o.projection = MGRAD_PROJECT_BOX;
    o.lo = 0.04;
    o.hi = 0.06;
    one_step(&o, z, y);
    for (int t = 0; t < T; t++) ck_assert_double_eq(z[t], fmin(fmax(y[t], 0.04), 0.06));
    /* fixed sum: compare with τ found by bisection on Σ max(y − τ, 0) = S */
    o.projection = MGRAD_PROJECT_FIXED_SUM;
    o.sum = 1.0;
    one_step(&o, z, y);
    double lo = -10, hi = 10;
    for (int it = 0; it < 200; it++) {
        double tau = 0.5 * (lo + hi), s = 0;
        for (int t = 0; t < T; t++) s += fmax(y[t] - tau, 0);
        if (s > 1.0) lo = tau; else hi = tau;
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
    o.k = 5;
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
    mgrad_meta *lr = NULL;
    ck_assert_int_eq(mgrad_run_add_meta(&lr, fx.run, MGRAD_META_LR_SCHEDULE, NULL), MGRAD_OK);
    progress_log log = {0, 0, {0}};
    mgrad_mgd_options o = MGRAD_MGD_OPTIONS_INIT;
    o.method = MGRAD_MGD_ADAM;
    o.lr = 0.02;
    o.projection = MGRAD_PROJECT_BOX;
    o.lo = 0;
    o.hi = 1;
    o.progress = on_progress;
    o.user_data = &log;
    mgrad_mgd *mgd = NULL;
    ck_assert_int_eq(mgrad_mgd_create(&mgd, lr, &o), MGRAD_OK);
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
    ck_assert_int_eq(mgrad_run_add_meta(&la, a.run, MGRAD_META_LR_SCHEDULE, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_add_meta(&lb, b.run, MGRAD_META_LR_SCHEDULE, NULL), MGRAD_OK);
    mgrad_mgd_options o = MGRAD_MGD_OPTIONS_INIT;
    o.method = MGRAD_MGD_SGD;
    mgrad_mgd *ma = NULL, *mb = NULL;
    ck_assert_int_eq(mgrad_mgd_create(&ma, la, &o), MGRAD_OK);
    o.reshuffle = 1;
    ck_assert_int_eq(mgrad_mgd_create(&mb, lb, &o), MGRAD_OK);
    double pa = 0, pb = 0;
    ck_assert_int_eq(mgrad_mgd_step(ma, &pa), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_step(mb, &pb), MGRAD_OK);
    ck_assert(pa != pb);  /* another batch order gives another φ */
    /* determinism: the same reshuffled step again gives the same φ */
    fixture c;
    setup(&c, 0);
    mgrad_meta *lc = NULL;
    mgrad_mgd *mc = NULL;
    double pc = 0;
    ck_assert_int_eq(mgrad_run_add_meta(&lc, c.run, MGRAD_META_LR_SCHEDULE, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_create(&mc, lc, &o), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_step(mc, &pc), MGRAD_OK);
    ck_assert_double_eq(pb, pc);
    mgrad_mgd_destroy(ma);
    mgrad_mgd_destroy(mb);
    mgrad_mgd_destroy(mc);
    ck_assert_int_eq(mgrad_run_set_shuffle_seed(NULL, 3), MGRAD_ERR_NULL);
    teardown(&a);
    teardown(&b);
    teardown(&c);
}
END_TEST

START_TEST(test_cancel)
{
    fixture fx;
    setup(&fx, 0);
    mgrad_meta *lr = NULL;
    ck_assert_int_eq(mgrad_run_add_meta(&lr, fx.run, MGRAD_META_LR_SCHEDULE, NULL), MGRAD_OK);
    progress_log log = {0, 3, {0}};
    mgrad_mgd_options o = MGRAD_MGD_OPTIONS_INIT;
    o.progress = on_progress;
    o.user_data = &log;
    mgrad_mgd *mgd = NULL;
    ck_assert_int_eq(mgrad_mgd_create(&mgd, lr, &o), MGRAD_OK);
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
    ck_assert_int_eq(mgrad_run_add_meta(&counts, fx.run, MGRAD_META_DATA_WEIGHTS, NULL), MGRAD_OK);
    mgrad_meta_options mo = MGRAD_META_OPTIONS_INIT;
    mo.step = T - 5;
    ck_assert_int_eq(mgrad_run_add_meta(&pool, fx.run, MGRAD_META_POOL_WEIGHTS, &mo), MGRAD_OK);
    mgrad_mgd_options o = MGRAD_MGD_OPTIONS_INIT;
    o.method = MGRAD_MGD_SIGN;
    o.lr = 1;
    o.mask_prob = 0.5;
    o.seed = 9;
    o.projection = MGRAD_PROJECT_NONNEGATIVE;
    o.gradient_from = pool;
    mgrad_mgd *mgd = NULL;
    ck_assert_int_eq(mgrad_mgd_create(&mgd, counts, &o), MGRAD_OK);
    ck_assert_int_eq(mgrad_mgd_run(mgd, 6), MGRAD_OK);
    double c[N];
    ck_assert_int_eq(mgrad_meta_get_value(counts, MGRAD_DTYPE_F64, c, N), MGRAD_OK);
    double bad = 0, good = 0;
    for (int i = 0; i < N; i++) {
        ck_assert(c[i] >= 0 && c[i] == floor(c[i]));
        if (i < N / 4) bad += c[i]; else good += c[i];
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
    ck_assert_int_eq(mgrad_run_add_meta(&counts, fx.run, MGRAD_META_DATA_WEIGHTS, NULL), MGRAD_OK);
    mgrad_mgd_options o = MGRAD_MGD_OPTIONS_INIT;
    o.method = MGRAD_MGD_EXCHANGE;
    o.lr = 1;
    o.exchange = 4;
    mgrad_mgd *mgd = NULL;
    ck_assert_int_eq(mgrad_mgd_create(&mgd, counts, &o), MGRAD_OK);
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

START_TEST(test_misuse)
{
    fixture fx;
    setup(&fx, 0);
    mgrad_meta *lr = NULL, *wd = NULL;
    ck_assert_int_eq(mgrad_run_add_meta(&lr, fx.run, MGRAD_META_LR_SCHEDULE, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_add_meta(&wd, fx.run, MGRAD_META_WEIGHT_DECAY, NULL), MGRAD_OK);
    mgrad_mgd *mgd = (mgrad_mgd *)0x1;
    mgrad_mgd_options o = MGRAD_MGD_OPTIONS_INIT, d;
    ck_assert_int_eq(mgrad_mgd_options_init(&d, MGRAD_MGD_OPTIONS_VERSION), MGRAD_OK);
    ck_assert(d.method == o.method && d.lr == o.lr && d.mask_prob == o.mask_prob &&
              d.beta1 == o.beta1 && d.beta2 == o.beta2 && d.eps == o.eps &&
              d.seed == o.seed && d.projection == o.projection && d.lo == o.lo &&
              d.hi == o.hi && d.sum == o.sum && d.k == o.k && d.exchange == o.exchange &&
              d.gradient_from == o.gradient_from && d.heldout == o.heldout &&
              d.progress == o.progress && d.user_data == o.user_data &&
              d.maximize == o.maximize && d.basis == o.basis &&
              d.basis_dim == o.basis_dim && d.coefficients == o.coefficients &&
              d.reshuffle == o.reshuffle);
    ck_assert_int_eq(mgrad_mgd_options_init(NULL, 1), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_mgd_options_init(&d, 5), MGRAD_ERR_VERSION);
    ck_assert_int_eq(mgrad_mgd_create(NULL, lr, &o), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_mgd_create(&mgd, NULL, &o), MGRAD_ERR_NULL);
    o.lr = -1;
    ck_assert_int_eq(mgrad_mgd_create(&mgd, lr, &o), MGRAD_ERR_INVALID);
    o = (mgrad_mgd_options)MGRAD_MGD_OPTIONS_INIT;
    o.gradient_from = wd;
    ck_assert_int_eq(mgrad_mgd_create(&mgd, lr, &o), MGRAD_ERR_INVALID);
    o = (mgrad_mgd_options)MGRAD_MGD_OPTIONS_INIT;
    o.projection = MGRAD_PROJECT_TOP_K;
    o.k = T + 1;
    ck_assert_int_eq(mgrad_mgd_create(&mgd, lr, &o), MGRAD_ERR_INVALID);
    ck_assert_ptr_eq(mgd, (mgrad_mgd *)0x1);
    ck_assert_int_eq(mgrad_mgd_create(&mgd, lr, NULL), MGRAD_OK);
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
    tcase_add_test(tc, test_misuse);
    suite_add_tcase(s, tc);
    return s;
}
