/*
 * test_numeric.c - numeric failure modes of whole runs: divergence in
 * training and in the reverse pass is reported with the step, and the run
 * stays reusable; non-finite values are refused and change nothing.
 *
 * docs/reliability.md describes the failure-mode suites and their figures.
 */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "metagrad.h"
#include "testutil.h"

/* ---- 2. numeric failure modes ------------------------------------------ */

/* A squared-error run whose LR schedule is a metaparameter. */
typedef struct num_fixture {
    mgrad_context *ctx;
    mgrad_model *model;
    mgrad_dataset *train, *val;
    mgrad_run *run;
    mgrad_meta *lr, *wd;
} num_fixture;

enum { NF = 4, NN = 16, NT = 8 };

static void num_setup(num_fixture *fx, mgrad_dtype dtype)
{
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = dtype;
    co.seed = 9;
    ck_assert_int_eq(mgrad_context_create(&fx->ctx, &co), MGRAD_OK);
    tf_mlp(fx->ctx, NF, 5, 2, &fx->model);
    int64_t shape[1] = {NF};
    double x[NN * NF], y[NN * 2];
    uint64_t s = 77;
    tu_fill(x, NN * NF, &s, 1.0);
    tu_fill(y, NN * 2, &s, 1.0);
    ck_assert_int_eq(mgrad_dataset_create(&fx->train, fx->ctx, NN, 1, shape, MGRAD_DTYPE_F64, x),
                     MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_set_targets(fx->train, MGRAD_DTYPE_F64, y, NN, 2), MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_create(&fx->val, fx->ctx, NN, 1, shape, MGRAD_DTYPE_F64, x),
                     MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_set_targets(fx->val, MGRAD_DTYPE_F64, y, NN, 2), MGRAD_OK);
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = NT;
    o.batch_size = 4;
    o.loss = MGRAD_LOSS_SQUARED_ERROR;
    o.lr = 0.1;
    o.momentum = 0.5;
    o.validation = fx->val;
    o.checkpoint = MGRAD_CHECKPOINT_BINOMIAL;
    o.checkpoint_slots = 2;
    ck_assert_int_eq(mgrad_run_create(&fx->run, fx->model, fx->train, &o), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_add_meta(&fx->lr, fx->run, MGRAD_META_LR_SCHEDULE, NULL),
                     MGRAD_OK);
    ck_assert_int_eq(mgrad_run_add_meta(&fx->wd, fx->run, MGRAD_META_WEIGHT_DECAY, NULL),
                     MGRAD_OK);
}

static void num_teardown(num_fixture *fx)
{
    tf_destroy(fx->ctx, fx->model, fx->run, fx->train, fx->val, NULL);
}

/* Train and reverse; return φ, θ_T and dφ/dη. */
static void num_results(num_fixture *fx, double *phi, double *theta, int64_t P, double *glr)
{
    mgrad_status s = mgrad_run_train(fx->run, phi);
    ck_assert_msg(s == MGRAD_OK, "train: %s", mgrad_context_last_error(fx->ctx));
    s = mgrad_run_reverse(fx->run);
    ck_assert_msg(s == MGRAD_OK, "reverse: %s", mgrad_context_last_error(fx->ctx));
    ck_assert_int_eq(mgrad_run_get_params(fx->run, MGRAD_DTYPE_F64, theta, P), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(fx->lr, MGRAD_DTYPE_F64, glr, NT), MGRAD_OK);
}

static void check_divergence(mgrad_dtype dtype, double huge)
{
    num_fixture clean, fx;
    num_setup(&clean, dtype);
    num_setup(&fx, dtype);
    int64_t P = 0;
    ck_assert_int_eq(mgrad_run_num_params(fx.run, &P), MGRAD_OK);
    double phi0, phi1, theta0[64], theta1[64], g0[NT], g1[NT];
    ck_assert_int_le(P, 64);
    num_results(&clean, &phi0, theta0, P, g0);

    /* A good trajectory first, so that its gradients exist. */
    num_results(&fx, &phi1, theta1, P, g1);
    /* η_3 huge: θ_4 is huge but finite, and step 4 overflows (its loss in
       f64, its update in f32). */
    double lr[NT], good[NT];
    ck_assert_int_eq(mgrad_meta_get_value(fx.lr, MGRAD_DTYPE_F64, good, NT), MGRAD_OK);
    memcpy(lr, good, sizeof lr);
    lr[3] = huge;
    ck_assert_int_eq(mgrad_meta_set_value(fx.lr, MGRAD_DTYPE_F64, lr, NT), MGRAD_OK);
    double phi = -3;
    mgrad_status s = mgrad_run_train(fx.run, &phi);
    const char *msg = mgrad_context_last_error(fx.ctx);
    ck_assert_msg(s == MGRAD_ERR_NONFINITE, "train returned %s (%s)", mgrad_status_string(s),
                  msg);
    ck_assert_msg(strstr(msg, "step 4") != NULL, "message \"%s\" does not name step 4", msg);
    ck_assert(phi == -3);
    printf("reliability: %s training divergence: %s\n",
           dtype == MGRAD_DTYPE_F64 ? "f64" : "f32", msg);
    /* Nothing from the diverged trajectory can be read. */
    double sentinel[64];
    for (int i = 0; i < 64; i++) sentinel[i] = 42;
    ck_assert_int_eq(mgrad_run_reverse(fx.run), MGRAD_ERR_ORDER);
    ck_assert_int_eq(mgrad_meta_get_grad(fx.lr, MGRAD_DTYPE_F64, sentinel, NT), MGRAD_ERR_ORDER);
    ck_assert_int_eq(mgrad_run_get_params(fx.run, MGRAD_DTYPE_F64, sentinel, P),
                     MGRAD_ERR_ORDER);
    for (int i = 0; i < 64; i++) ck_assert(sentinel[i] == 42);

    /* Reusable: a sane LR gives exactly the clean run's bits. */
    ck_assert_int_eq(mgrad_meta_set_value(fx.lr, MGRAD_DTYPE_F64, good, NT), MGRAD_OK);
    num_results(&fx, &phi1, theta1, P, g1);
    ck_assert(memcmp(&phi0, &phi1, sizeof phi0) == 0);
    ck_assert(memcmp(theta0, theta1, (size_t)P * sizeof(double)) == 0);
    ck_assert(memcmp(g0, g1, sizeof g0) == 0);
    num_teardown(&fx);
    num_teardown(&clean);
}

START_TEST(test_train_divergence_f64) { check_divergence(MGRAD_DTYPE_F64, 1e306); }
END_TEST

START_TEST(test_train_divergence_f32) { check_divergence(MGRAD_DTYPE_F32, 1e36); }
END_TEST

/* Adam with ε_root = 0 and a tiny ε: a training feature of size 1e-156 gives
   gradients whose second moment r is ~1e-160, so the forward update m̂/(r+ε)
   stays O(1) while the reverse's r̄/(2r) overflows.  Replacing the feature
   through an INPUTS metaparameter makes the same run reversible again. */
START_TEST(test_reverse_divergence)
{
    mgrad_context *ctx = NULL;
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = MGRAD_DTYPE_F64;
    co.seed = 4;
    ck_assert_int_eq(mgrad_context_create(&ctx, &co), MGRAD_OK);
    enum { N = 8, FF = 3, CC = 2, TT = 5 };
    int64_t shape[1] = {FF};
    mgrad_model *model = NULL;
    ck_assert_int_eq(mgrad_model_create(&model, ctx, 1, shape), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(model, CC, MGRAD_INIT_DEFAULT), MGRAD_OK);
    double x[N * FF], xfix[N * FF];
    int32_t y[N];
    uint64_t st = 5;
    tu_fill(x, N * FF, &st, 1.0);
    memcpy(xfix, x, sizeof x);
    for (int i = 0; i < N; i++) {
        x[i * FF + 2] = 1e-156 * (1 + 0.1 * i);
        y[i] = i % CC;
    }
    mgrad_dataset *train = NULL, *val = NULL;
    ck_assert_int_eq(mgrad_dataset_create(&train, ctx, N, 1, shape, MGRAD_DTYPE_F64, x),
                     MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_set_labels(train, y, N, CC), MGRAD_OK);
    /* ordinary validation inputs: θ̄_T of the tiny feature's weights is O(1) */
    ck_assert_int_eq(mgrad_dataset_create(&val, ctx, N, 1, shape, MGRAD_DTYPE_F64, xfix),
                     MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_set_labels(val, y, N, CC), MGRAD_OK);
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = TT;
    o.batch_size = N;
    o.optimizer = MGRAD_OPTIMIZER_ADAM;
    o.lr = 0.5;
    o.eps = 1e-300;
    o.eps_root = 0;
    o.validation = val;
    mgrad_run *run = NULL;
    ck_assert_int_eq(mgrad_run_create(&run, model, train, &o), MGRAD_OK);
    mgrad_meta *inputs = NULL, *lr = NULL;
    ck_assert_int_eq(mgrad_run_add_meta(&inputs, run, MGRAD_META_INPUTS, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_add_meta(&lr, run, MGRAD_META_LR_SCHEDULE, NULL), MGRAD_OK);
    double phi = 0;
    mgrad_status s = mgrad_run_train(run, &phi);
    ck_assert_msg(s == MGRAD_OK, "train: %s", mgrad_context_last_error(ctx));
    ck_assert(isfinite(phi));
    s = mgrad_run_reverse(run);
    const char *msg = mgrad_context_last_error(ctx);
    ck_assert_msg(s == MGRAD_ERR_NONFINITE, "reverse returned %s (%s)", mgrad_status_string(s),
                  msg);
    ck_assert_msg(strstr(msg, "reverse") != NULL && strstr(msg, "step ") != NULL,
                  "message \"%s\" does not name the reverse step", msg);
    printf("reliability: reverse divergence: %s\n", msg);
    double g[TT] = {42, 42, 42, 42, 42};
    ck_assert_int_eq(mgrad_meta_get_grad(lr, MGRAD_DTYPE_F64, g, TT), MGRAD_ERR_ORDER);
    ck_assert(g[0] == 42 && g[TT - 1] == 42);
    /* The run is reusable: θ_T is still readable after a new train, and with
       ordinary inputs the reverse pass succeeds. */
    ck_assert_int_eq(mgrad_run_reverse(run), MGRAD_ERR_ORDER);
    ck_assert_int_eq(mgrad_meta_set_value(inputs, MGRAD_DTYPE_F64, xfix, N * FF), MGRAD_OK);
    s = mgrad_run_train(run, &phi);
    ck_assert_msg(s == MGRAD_OK, "train: %s", mgrad_context_last_error(ctx));
    s = mgrad_run_reverse(run);
    ck_assert_msg(s == MGRAD_OK, "reverse: %s", mgrad_context_last_error(ctx));
    ck_assert_int_eq(mgrad_meta_get_grad(lr, MGRAD_DTYPE_F64, g, TT), MGRAD_OK);
    for (int t = 0; t < TT; t++) ck_assert(isfinite(g[t]));
    mgrad_run_destroy(run);
    mgrad_dataset_destroy(train);
    mgrad_dataset_destroy(val);
    mgrad_model_destroy(model);
    mgrad_context_destroy(ctx);
}
END_TEST

/* Non-finite values are refused, name the index, and change nothing: not
   the value, and not the gradients of the current trajectory. */
START_TEST(test_nonfinite_values_refused)
{
    num_fixture fx;
    num_setup(&fx, MGRAD_DTYPE_F64);
    double phi, theta[64], g[NT], g2[NT];
    int64_t P = 0;
    ck_assert_int_eq(mgrad_run_num_params(fx.run, &P), MGRAD_OK);
    num_results(&fx, &phi, theta, P, g);
    double before[NT], after[NT], bad[NT];
    ck_assert_int_eq(mgrad_meta_get_value(fx.lr, MGRAD_DTYPE_F64, before, NT), MGRAD_OK);
    memcpy(bad, before, sizeof bad);
    bad[5] = NAN;
    ck_assert_int_eq(mgrad_meta_set_value(fx.lr, MGRAD_DTYPE_F64, bad, NT), MGRAD_ERR_NONFINITE);
    ck_assert_msg(strstr(mgrad_context_last_error(fx.ctx), "5") != NULL, "%s",
                  mgrad_context_last_error(fx.ctx));
    float badf[NT];
    for (int t = 0; t < NT; t++) badf[t] = 0.1f;
    badf[NT - 1] = -INFINITY;
    ck_assert_int_eq(mgrad_meta_set_value(fx.lr, MGRAD_DTYPE_F32, badf, NT), MGRAD_ERR_NONFINITE);
    double wd = INFINITY;
    ck_assert_int_eq(mgrad_meta_set_value(fx.wd, MGRAD_DTYPE_F64, &wd, 1), MGRAD_ERR_NONFINITE);
    ck_assert_int_eq(mgrad_meta_get_value(fx.lr, MGRAD_DTYPE_F64, after, NT), MGRAD_OK);
    ck_assert(memcmp(before, after, sizeof before) == 0);
    /* The gradients of the trajectory are still there. */
    ck_assert_int_eq(mgrad_meta_get_grad(fx.lr, MGRAD_DTYPE_F64, g2, NT), MGRAD_OK);
    ck_assert(memcmp(g, g2, sizeof g) == 0);
    ck_assert_int_eq(mgrad_run_reverse(fx.run), MGRAD_OK);

    /* θ0 of a model: NaN refused, θ0 unchanged. */
    int64_t MP = 0;
    ck_assert_int_eq(mgrad_model_num_params(fx.model, &MP), MGRAD_OK);
    double t0[64], t1[64], tb[64];
    ck_assert_int_eq(mgrad_model_get_params(fx.model, MGRAD_DTYPE_F64, t0, MP), MGRAD_OK);
    memcpy(tb, t0, sizeof tb);
    tb[MP - 1] = NAN;
    ck_assert_int_eq(mgrad_model_set_params(fx.model, MGRAD_DTYPE_F64, tb, MP),
                     MGRAD_ERR_NONFINITE);
    ck_assert_int_eq(mgrad_model_get_params(fx.model, MGRAD_DTYPE_F64, t1, MP), MGRAD_OK);
    ck_assert(memcmp(t0, t1, (size_t)MP * sizeof(double)) == 0);
    num_teardown(&fx);
}
END_TEST

/* A double that is finite but beyond FLT_MAX would become Inf in an f32
   context: refused like Inf, and nothing changes. */
START_TEST(test_f32_overflow_refused)
{
    num_fixture fx;
    num_setup(&fx, MGRAD_DTYPE_F32);
    int64_t shape[1] = {NF};
    double x[2 * NF] = {0.5, 0.5, 0.5, 0.5, 0.5, 1e300, 0.5, 0.5};
    mgrad_dataset *ds = SENTINEL_PTR;
    ck_assert_int_eq(mgrad_dataset_create(&ds, fx.ctx, 2, 1, shape, MGRAD_DTYPE_F64, x),
                     MGRAD_ERR_NONFINITE);
    ck_assert_ptr_eq(ds, SENTINEL_PTR);
    ck_assert_msg(strstr(mgrad_context_last_error(fx.ctx), "example 1") != NULL, "%s",
                  mgrad_context_last_error(fx.ctx));
    double before[NT], after[NT], big[NT];
    ck_assert_int_eq(mgrad_meta_get_value(fx.lr, MGRAD_DTYPE_F64, before, NT), MGRAD_OK);
    memcpy(big, before, sizeof big);
    big[2] = -1e39;
    ck_assert_int_eq(mgrad_meta_set_value(fx.lr, MGRAD_DTYPE_F64, big, NT), MGRAD_ERR_NONFINITE);
    ck_assert_int_eq(mgrad_meta_get_value(fx.lr, MGRAD_DTYPE_F64, after, NT), MGRAD_OK);
    ck_assert(memcmp(before, after, sizeof before) == 0);
    big[2] = (double)FLT_MAX;   /* the largest f32 is fine */
    ck_assert_int_eq(mgrad_meta_set_value(fx.lr, MGRAD_DTYPE_F64, big, NT), MGRAD_OK);
    num_teardown(&fx);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("numeric");
    TCase *tc = tcase_create("numeric");
    tcase_add_test(tc, test_train_divergence_f64);
    tcase_add_test(tc, test_train_divergence_f32);
    tcase_add_test(tc, test_reverse_divergence);
    tcase_add_test(tc, test_nonfinite_values_refused);
    tcase_add_test(tc, test_f32_overflow_refused);
    suite_add_tcase(s, tc);
    return s;
}
