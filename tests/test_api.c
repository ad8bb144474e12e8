/*
 * test_api.c - API misuse: every public function of the run, dataset and
 * metaparameter API given NULLs, bad sizes, bad dtypes or the wrong call
 * order returns its documented status, records a message and leaves the
 * caller's data untouched.  (Model functions: test_model.c.)
 */
#include <check.h>
#include <math.h>
#include <string.h>

#include "metagrad.h"

static mgrad_context *ctx;
static mgrad_model *model;
static mgrad_dataset *train, *val;
static double X[20 * 4];
static int32_t Y[20];

static void setup(void)
{
    ck_assert_int_eq(mgrad_context_create(&ctx, NULL), MGRAD_OK);
    int64_t shape[1] = {4};
    ck_assert_int_eq(mgrad_model_create(&model, ctx, 1, shape), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(model, 3, MGRAD_INIT_DEFAULT), MGRAD_OK);
    for (int i = 0; i < 80; i++) X[i] = sin(i);
    for (int i = 0; i < 20; i++) Y[i] = i % 3;
    ck_assert_int_eq(mgrad_dataset_create(&train, ctx, 20, 1, shape, MGRAD_DTYPE_F64, X), MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_set_labels(train, Y, 20, 3), MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_create(&val, ctx, 20, 1, shape, MGRAD_DTYPE_F64, X), MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_set_labels(val, Y, 20, 3), MGRAD_OK);
}

static void teardown(void)
{
    mgrad_dataset_destroy(train);
    mgrad_dataset_destroy(val);
    mgrad_model_destroy(model);
    mgrad_context_destroy(ctx);
}

static mgrad_run_options good_options(void)
{
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = 5;
    o.batch_size = 4;
    o.validation = val;
    return o;
}

/* The message is non-empty and mentions `word`. */
static void expect_message(const char *word)
{
    const char *m = mgrad_context_last_error(ctx);
    ck_assert_msg(strstr(m, word) != NULL, "message \"%s\" lacks \"%s\"", m, word);
}

START_TEST(test_dataset_misuse)
{
    mgrad_dataset *ds = (mgrad_dataset *)0x1;
    int64_t shape[1] = {4}, zero[1] = {0};
    ck_assert_int_eq(mgrad_dataset_create(&ds, NULL, 20, 1, shape, MGRAD_DTYPE_F64, X), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_dataset_create(NULL, ctx, 20, 1, shape, MGRAD_DTYPE_F64, X), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_dataset_create(&ds, ctx, 20, 1, shape, MGRAD_DTYPE_F64, NULL), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_dataset_create(&ds, ctx, 0, 1, shape, MGRAD_DTYPE_F64, X), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_dataset_create(&ds, ctx, 20, 4, shape, MGRAD_DTYPE_F64, X), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_dataset_create(&ds, ctx, 20, 1, zero, MGRAD_DTYPE_F64, X), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_dataset_create(&ds, ctx, 20, 1, shape, (mgrad_dtype)9, X), MGRAD_ERR_DTYPE);
    double bad[8] = {1, 2, 3, NAN, 5, 6, 7, 8};
    ck_assert_int_eq(mgrad_dataset_create(&ds, ctx, 2, 1, shape, MGRAD_DTYPE_F64, bad), MGRAD_ERR_NONFINITE);
    expect_message("example 0");
    ck_assert_ptr_eq(ds, (mgrad_dataset *)0x1);

    ck_assert_int_eq(mgrad_dataset_create(&ds, ctx, 20, 1, shape, MGRAD_DTYPE_F64, X), MGRAD_OK);
    int32_t y[20];
    memcpy(y, Y, sizeof y);
    ck_assert_int_eq(mgrad_dataset_set_labels(NULL, y, 20, 3), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_dataset_set_labels(ds, NULL, 20, 3), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_dataset_set_labels(ds, y, 19, 3), MGRAD_ERR_SIZE);
    ck_assert_int_eq(mgrad_dataset_set_labels(ds, y, 20, 1), MGRAD_ERR_INVALID);
    y[5] = 3;
    ck_assert_int_eq(mgrad_dataset_set_labels(ds, y, 20, 3), MGRAD_ERR_INVALID);
    expect_message("example 5");
    ck_assert_int_eq(mgrad_dataset_set_targets(ds, MGRAD_DTYPE_F64, X, 20, 0), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_dataset_set_weights(ds, MGRAD_DTYPE_F32, NULL, 20), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_dataset_set_weights(ds, MGRAD_DTYPE_F64, X, 21), MGRAD_ERR_SIZE);
    int64_t n = -5;
    ck_assert_int_eq(mgrad_dataset_size(ds, NULL), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_dataset_size(NULL, &n), MGRAD_ERR_NULL);
    ck_assert_int_eq(n, -5);
    ck_assert_int_eq(mgrad_dataset_size(ds, &n), MGRAD_OK);
    ck_assert_int_eq(n, 20);
    ck_assert_int_eq(mgrad_dataset_features(ds, &n), MGRAD_OK);
    ck_assert_int_eq(n, 4);
    mgrad_dataset_destroy(ds);
    mgrad_dataset_destroy(NULL);
}
END_TEST

START_TEST(test_run_create_misuse)
{
    mgrad_run *run = (mgrad_run *)0x1;
    mgrad_run_options o = good_options();
    ck_assert_int_eq(mgrad_run_create(NULL, model, train, &o), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_run_create(&run, NULL, train, &o), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_run_create(&run, model, NULL, &o), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_run_create(&run, model, train, NULL), MGRAD_ERR_NULL);
    o.version = 77;
    ck_assert_int_eq(mgrad_run_create(&run, model, train, &o), MGRAD_ERR_VERSION);
    o = good_options();
    o.steps = 0;
    ck_assert_int_eq(mgrad_run_create(&run, model, train, &o), MGRAD_ERR_INVALID);
    expect_message("options.steps");
    o = good_options();
    o.batch_size = 0;
    ck_assert_int_eq(mgrad_run_create(&run, model, train, &o), MGRAD_ERR_INVALID);
    expect_message("options.batch_size");
    o = good_options();
    o.validation = NULL; /* a plain run: it trains, but has no φ to differentiate */
    ck_assert_int_eq(mgrad_run_create(&run, model, train, &o), MGRAD_OK);
    double phi = 0;
    ck_assert_int_eq(mgrad_run_train(run, &phi), MGRAD_OK);
    ck_assert(isnan(phi));
    ck_assert_int_eq(mgrad_run_reverse(run), MGRAD_ERR_ORDER);
    expect_message("mgrad_run_set_output");
    mgrad_run_destroy(run);
    run = (mgrad_run *)0x1;
    o = good_options();
    o.momentum = 1.0;
    ck_assert_int_eq(mgrad_run_create(&run, model, train, &o), MGRAD_ERR_INVALID);
    o = good_options();
    o.optimizer = (mgrad_optimizer)42;
    ck_assert_int_eq(mgrad_run_create(&run, model, train, &o), MGRAD_ERR_INVALID);
    o = good_options();
    o.optimizer = MGRAD_OPTIMIZER_ADAM;
    o.eps = 0;
    ck_assert_int_eq(mgrad_run_create(&run, model, train, &o), MGRAD_ERR_INVALID);
    o = good_options();
    int64_t batches[5 * 4] = {0};
    batches[7] = 20;
    o.batches = batches;
    ck_assert_int_eq(mgrad_run_create(&run, model, train, &o), MGRAD_ERR_INVALID);
    expect_message("options.batches[7]");
    o = good_options();
    o.loss = MGRAD_LOSS_SQUARED_ERROR;
    ck_assert_int_eq(mgrad_run_create(&run, model, train, &o), MGRAD_ERR_ORDER);
    expect_message("mgrad_dataset_set_targets");
    ck_assert_ptr_eq(run, (mgrad_run *)0x1);

    /* model output does not fit the labels */
    mgrad_model *m2 = NULL;
    int64_t shape[1] = {4}, wrong[1] = {5};
    ck_assert_int_eq(mgrad_model_create(&m2, ctx, 1, shape), MGRAD_OK);
    o = good_options();
    ck_assert_int_eq(mgrad_run_create(&run, m2, train, &o), MGRAD_ERR_ORDER);
    expect_message("no layers");
    ck_assert_int_eq(mgrad_model_add_dense(m2, 5, MGRAD_INIT_DEFAULT), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_create(&run, m2, train, &o), MGRAD_ERR_SHAPE);
    expect_message("5 outputs");
    mgrad_model_destroy(m2);
    ck_assert_int_eq(mgrad_model_create(&m2, ctx, 1, wrong), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(m2, 3, MGRAD_INIT_DEFAULT), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_create(&run, m2, train, &o), MGRAD_ERR_SHAPE);
    mgrad_model_destroy(m2);
    ck_assert_ptr_eq(run, (mgrad_run *)0x1);
    mgrad_run_destroy(NULL);
}
END_TEST

START_TEST(test_call_order)
{
    mgrad_run *run = NULL;
    mgrad_run_options o = good_options();
    ck_assert_int_eq(mgrad_run_create(&run, model, train, &o), MGRAD_OK);
    /* datasets in use are read-only */
    ck_assert_int_eq(mgrad_dataset_set_labels(train, Y, 20, 3), MGRAD_ERR_ORDER);
    expect_message("read-only");
    mgrad_meta *lr = NULL;
    ck_assert_int_eq(mgrad_run_add_meta(&lr, run, MGRAD_META_LR_SCHEDULE, NULL), MGRAD_OK);
    double g[5] = {9, 9, 9, 9, 9}, p[64];
    ck_assert_int_eq(mgrad_run_reverse(run), MGRAD_ERR_ORDER);
    expect_message("mgrad_run_train");
    ck_assert_int_eq(mgrad_meta_get_grad(lr, MGRAD_DTYPE_F64, g, 5), MGRAD_ERR_ORDER);
    ck_assert(g[0] == 9 && g[4] == 9);
    ck_assert_int_eq(mgrad_run_get_params(run, MGRAD_DTYPE_F64, p, 15), MGRAD_ERR_ORDER);
    double loss = 5;
    ck_assert_int_eq(mgrad_run_evaluate(run, val, &loss, NULL), MGRAD_ERR_ORDER);
    ck_assert(loss == 5);
    ck_assert_int_eq(mgrad_run_train(run, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(lr, MGRAD_DTYPE_F64, g, 5), MGRAD_ERR_ORDER);
    ck_assert_int_eq(mgrad_run_reverse(run), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(lr, MGRAD_DTYPE_F64, g, 5), MGRAD_OK);
    /* changing a value invalidates the gradient and the trajectory */
    double v[5] = {0.1, 0.1, 0.1, 0.1, 0.2};
    ck_assert_int_eq(mgrad_meta_set_value(lr, MGRAD_DTYPE_F64, v, 5), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(lr, MGRAD_DTYPE_F64, g, 5), MGRAD_ERR_ORDER);
    ck_assert_int_eq(mgrad_run_reverse(run), MGRAD_ERR_ORDER);
    /* getters */
    int64_t P = 0;
    ck_assert_int_eq(mgrad_run_num_params(run, &P), MGRAD_OK);
    ck_assert_int_eq(P, 15);
    ck_assert_int_eq(mgrad_run_num_params(run, NULL), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_run_train(run, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_get_params(run, MGRAD_DTYPE_F64, p, 14), MGRAD_ERR_SIZE);
    ck_assert_int_eq(mgrad_run_get_params(run, (mgrad_dtype)0, p, 15), MGRAD_ERR_DTYPE);
    ck_assert_int_eq(mgrad_run_get_params(run, MGRAD_DTYPE_F64, NULL, 15), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_run_get_params(run, MGRAD_DTYPE_F64, p, 15), MGRAD_OK);
    mgrad_run_stats st = MGRAD_RUN_STATS_INIT;
    st.version = 0;
    ck_assert_int_eq(mgrad_run_get_stats(run, &st), MGRAD_ERR_VERSION);
    ck_assert_int_eq(mgrad_run_get_stats(run, NULL), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_run_train(NULL, NULL), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_run_reverse(NULL), MGRAD_ERR_NULL);
    double acc = 0;
    ck_assert_int_eq(mgrad_run_evaluate(run, NULL, NULL, &acc), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_run_evaluate(run, val, &loss, &acc), MGRAD_OK);
    ck_assert(acc >= 0 && acc <= 1 && isfinite(loss));
    /* per-example losses average to the evaluated loss */
    double ell[20] = {0}, mean = 0;
    ck_assert_int_eq(mgrad_run_example_losses(run, val, MGRAD_DTYPE_F64, ell, 19), MGRAD_ERR_SIZE);
    ck_assert_int_eq(mgrad_run_example_losses(run, val, (mgrad_dtype)0, ell, 20), MGRAD_ERR_DTYPE);
    ck_assert_int_eq(mgrad_run_example_losses(run, NULL, MGRAD_DTYPE_F64, ell, 20), MGRAD_ERR_NULL);
    ck_assert(ell[0] == 0);
    ck_assert_int_eq(mgrad_run_example_losses(run, val, MGRAD_DTYPE_F64, ell, 20), MGRAD_OK);
    for (int i = 0; i < 20; i++) {
        ck_assert(ell[i] > 0);
        mean += ell[i] / 20;
    }
    ck_assert(fabs(mean - loss) < 1e-6 * loss);
    mgrad_run_destroy(run);
    /* after the run is gone the datasets are writable again */
    ck_assert_int_eq(mgrad_dataset_set_labels(train, Y, 20, 3), MGRAD_OK);
}
END_TEST

START_TEST(test_meta_misuse)
{
    mgrad_run *run = NULL;
    mgrad_run_options o = good_options();
    ck_assert_int_eq(mgrad_run_create(&run, model, train, &o), MGRAD_OK);
    mgrad_meta *m = (mgrad_meta *)0x1;
    mgrad_meta_options mo = MGRAD_META_OPTIONS_INIT;
    ck_assert_int_eq(mgrad_run_add_meta(NULL, run, MGRAD_META_LR_SCHEDULE, NULL), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_run_add_meta(&m, NULL, MGRAD_META_LR_SCHEDULE, NULL), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_run_add_meta(&m, run, (mgrad_meta_kind)0, NULL), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_run_add_meta(&m, run, MGRAD_META_BETA2, NULL), MGRAD_ERR_INVALID);
    expect_message("Adam");
    ck_assert_int_eq(mgrad_run_add_meta(&m, run, MGRAD_META_POOL_WEIGHTS, NULL), MGRAD_ERR_INVALID);
    expect_message("options.step");
    mo.step_begin = 3;
    mo.step_end = 2;
    ck_assert_int_eq(mgrad_run_add_meta(&m, run, MGRAD_META_DATA_WEIGHTS, &mo), MGRAD_ERR_INVALID);
    mo = (mgrad_meta_options)MGRAD_META_OPTIONS_INIT;
    int64_t rows[2] = {1, 20};
    mo.rows = rows;
    mo.num_rows = 2;
    ck_assert_int_eq(mgrad_run_add_meta(&m, run, MGRAD_META_INPUTS, &mo), MGRAD_ERR_INVALID);
    expect_message("rows[1]");
    rows[1] = 1;
    ck_assert_int_eq(mgrad_run_add_meta(&m, run, MGRAD_META_INPUTS, &mo), MGRAD_ERR_INVALID);
    expect_message("twice");
    mo.version = 3;
    ck_assert_int_eq(mgrad_run_add_meta(&m, run, MGRAD_META_INPUTS, &mo), MGRAD_ERR_VERSION);
    ck_assert_ptr_eq(m, (mgrad_meta *)0x1);

    ck_assert_int_eq(mgrad_run_add_meta(&m, run, MGRAD_META_MOMENTUM, NULL), MGRAD_OK);
    mgrad_meta *again = NULL;
    ck_assert_int_eq(mgrad_run_add_meta(&again, run, MGRAD_META_MOMENTUM, NULL), MGRAD_ERR_INVALID);
    expect_message("already registered");
    double v = 0.5, out = 7;
    ck_assert_int_eq(mgrad_meta_set_value(m, MGRAD_DTYPE_F64, &v, 2), MGRAD_ERR_SIZE);
    ck_assert_int_eq(mgrad_meta_set_value(m, MGRAD_DTYPE_F64, NULL, 1), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_meta_set_value(NULL, MGRAD_DTYPE_F64, &v, 1), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_meta_set_value(m, (mgrad_dtype)3, &v, 1), MGRAD_ERR_DTYPE);
    v = 1.0;
    ck_assert_int_eq(mgrad_meta_set_value(m, MGRAD_DTYPE_F64, &v, 1), MGRAD_ERR_INVALID);
    v = NAN;
    ck_assert_int_eq(mgrad_meta_set_value(m, MGRAD_DTYPE_F64, &v, 1), MGRAD_ERR_NONFINITE);
    ck_assert_int_eq(mgrad_meta_get_value(m, MGRAD_DTYPE_F64, &out, 1), MGRAD_OK);
    ck_assert(out == 0.0);  /* the failed sets changed nothing */
    float f = 0.25f;
    ck_assert_int_eq(mgrad_meta_set_value(m, MGRAD_DTYPE_F32, &f, 1), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_value(m, MGRAD_DTYPE_F64, &out, 1), MGRAD_OK);
    ck_assert(out == 0.25);
    int64_t n = 0;
    mgrad_meta_kind k;
    ck_assert_int_eq(mgrad_meta_size(m, &n), MGRAD_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(mgrad_meta_kind_of(m, &k), MGRAD_OK);
    ck_assert_int_eq(k, MGRAD_META_MOMENTUM);
    ck_assert_int_eq(mgrad_meta_size(NULL, &n), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_meta_kind_of(m, NULL), MGRAD_ERR_NULL);
    mgrad_meta_options oi;
    ck_assert_int_eq(mgrad_meta_options_init(&oi, MGRAD_META_OPTIONS_VERSION), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_options_init(&oi, 0), MGRAD_ERR_VERSION);
    mgrad_run_destroy(run);
}
END_TEST

/* The caller may destroy its handles in any order; the run keeps what it
   needs alive. */
START_TEST(test_lifetimes)
{
    mgrad_run *run = NULL;
    mgrad_run_options o = good_options();
    ck_assert_int_eq(mgrad_run_create(&run, model, train, &o), MGRAD_OK);
    mgrad_model_destroy(model);
    mgrad_dataset_destroy(train);
    mgrad_dataset_destroy(val);
    mgrad_context_destroy(ctx);
    model = NULL;
    train = val = NULL;
    double phi = 0;
    ck_assert_int_eq(mgrad_run_train(run, &phi), MGRAD_OK);
    ck_assert(isfinite(phi));
    mgrad_run_destroy(run);
    ctx = NULL;
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("misuse");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_dataset_misuse);
    tcase_add_test(tc, test_run_create_misuse);
    tcase_add_test(tc, test_call_order);
    tcase_add_test(tc, test_meta_misuse);
    tcase_add_test(tc, test_lifetimes);
    suite_add_tcase(s, tc);
    return s;
}
