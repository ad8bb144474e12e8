/*
 * test_workers.c - the context's own threads (mgrad_context_options.threads,
 * lib/base/pool.h): training, the reverse pass, the metagradients and a
 * metagradient-descent step give the same bits with 1, 2 and 3 library
 * threads, for an MLP (SGD and Adam) and a CNN with batch norm (the BLAS
 * thread count is whatever the environment set, the same in every run); a
 * context with threads is destroyed while idle, before and after its
 * threads started; two contexts with threads run in two threads at once.
 *
 * The models are sized so that the passes cross the pool's thresholds
 * (several chunks of MGR_POOL_CHUNK parameters and activations): smaller
 * ones would run on the calling thread and prove nothing.
 */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "metagrad.h"
#include "testutil.h"

enum { NET_MLP = 0, NET_CNN = 1 };
enum { NTRAIN = 96, NVAL = 40, STEPS = 4, BATCH = 32, NMETA = 3 };

typedef struct job {
    int net;
    mgrad_dtype dtype;
    mgrad_optimizer optimizer;
    int32_t threads;
    /* results */
    double phi, phi_mgd;
    int64_t P, len[NMETA];
    double *theta;
    double *grad[NMETA];
    double *after_mgd; /* the data weights after one MGD step */
} job;

static void check(mgrad_context *ctx, mgrad_status s, const char *what)
{
    ck_assert_msg(s == MGRAD_OK, "%s: %s (%s)", what, mgrad_status_string(s),
                  mgrad_context_last_error(ctx));
}

static void build_model(mgrad_context *ctx, int net, mgrad_model **out)
{
    mgrad_model *m = NULL;
    if (net == NET_MLP) {
        int64_t shape[1] = {64};
        check(ctx, mgrad_model_create(&m, ctx, 1, shape), "model");
        check(ctx, mgrad_model_add_dense(m, 384, MGRAD_INIT_DEFAULT), "dense");
        check(ctx, mgrad_model_add_activation(m, MGRAD_ACTIVATION_TANH), "tanh");
        check(ctx, mgrad_model_add_dense(m, 10, MGRAD_INIT_DEFAULT), "dense");
    } else {
        int64_t shape[3] = {2, 12, 12};
        check(ctx, mgrad_model_create(&m, ctx, 3, shape), "model");
        check(ctx, mgrad_model_add_conv2d(m, 24, 3, 1, 1, MGRAD_INIT_DEFAULT), "conv");
        check(ctx, mgrad_model_add_batch_norm(m, 1e-5), "batch norm");
        check(ctx, mgrad_model_add_activation(m, MGRAD_ACTIVATION_RELU), "relu");
        check(ctx, mgrad_model_add_conv2d(m, 24, 3, 1, 1, MGRAD_INIT_DEFAULT), "conv");
        check(ctx, mgrad_model_add_batch_norm(m, 1e-5), "batch norm");
        check(ctx, mgrad_model_add_activation(m, MGRAD_ACTIVATION_GELU), "gelu");
        check(ctx, mgrad_model_add_avg_pool(m, 2, 0), "avg pool");
        check(ctx, mgrad_model_add_conv2d(m, 48, 3, 1, 1, MGRAD_INIT_DEFAULT), "conv");
        check(ctx, mgrad_model_add_activation(m, MGRAD_ACTIVATION_RELU), "relu");
        check(ctx, mgrad_model_add_global_avg_pool(m), "global pool");
        check(ctx, mgrad_model_add_dense(m, 10, MGRAD_INIT_DEFAULT), "dense");
    }
    *out = m;
}

static mgrad_dataset *make_data(mgrad_context *ctx, int net, int64_t n, uint64_t seed)
{
    int64_t f = net == NET_MLP ? 64 : 2 * 12 * 12;
    double *x = malloc((size_t)(n * f) * sizeof *x);
    int32_t *y = malloc((size_t)n * sizeof *y);
    uint64_t s = seed;
    tu_fill(x, (size_t)(n * f), &s, 1.0);
    for (int64_t i = 0; i < n; i++) y[i] = (int32_t)(i * 7 % 10);
    mgrad_dataset *ds = NULL;
    int64_t shape_mlp[1] = {64}, shape_cnn[3] = {2, 12, 12};
    if (net == NET_MLP)
        check(ctx, mgrad_dataset_create(&ds, ctx, n, 1, shape_mlp, MGRAD_DTYPE_F64, x), "data");
    else
        check(ctx, mgrad_dataset_create(&ds, ctx, n, 3, shape_cnn, MGRAD_DTYPE_F64, x), "data");
    check(ctx, mgrad_dataset_set_labels(ds, y, n, 10), "labels");
    free(x);
    free(y);
    return ds;
}

/* Train, reverse, read θ_T and three metagradients, then one MGD step on
   the data weights (a second train + reverse), all on one context. */
static void *run_job(void *arg)
{
    job *j = arg;
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = j->dtype;
    co.seed = 7;
    co.threads = j->threads;
    mgrad_context *ctx = NULL;
    ck_assert_int_eq(mgrad_context_create(&ctx, &co), MGRAD_OK);
    mgrad_model *model = NULL;
    build_model(ctx, j->net, &model);
    mgrad_dataset *train = make_data(ctx, j->net, NTRAIN, 11);
    mgrad_dataset *val = make_data(ctx, j->net, NVAL, 23);

    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = STEPS;
    o.batch_size = BATCH;
    o.shuffle_seed = 5;
    o.optimizer = j->optimizer;
    o.lr = j->optimizer == MGRAD_OPTIMIZER_SGD ? 0.1 : 0.01;
    o.momentum = 0.9;
    o.weight_decay = 0.01;
    o.validation = val;
    o.checkpoint = MGRAD_CHECKPOINT_BINOMIAL;
    o.checkpoint_slots = 2;
    mgrad_run *run = NULL;
    check(ctx, mgrad_run_create(&run, model, train, &o), "run");
    static const mgrad_meta_kind kinds[NMETA] = {
        MGRAD_META_LR_SCHEDULE, MGRAD_META_DATA_WEIGHTS, MGRAD_META_INITIAL_PARAMS};
    mgrad_meta *meta[NMETA];
    for (int i = 0; i < NMETA; i++) {
        meta[i] = NULL;
        check(ctx, mgrad_run_add_meta(&meta[i], run, kinds[i], NULL), "meta");
    }
    check(ctx, mgrad_run_train(run, &j->phi), "train");
    check(ctx, mgrad_run_reverse(run), "reverse");
    check(ctx, mgrad_run_num_params(run, &j->P), "num params");
    j->theta = malloc((size_t)j->P * sizeof(double));
    check(ctx, mgrad_run_get_params(run, MGRAD_DTYPE_F64, j->theta, j->P), "params");
    for (int i = 0; i < NMETA; i++) {
        check(ctx, mgrad_meta_size(meta[i], &j->len[i]), "meta size");
        j->grad[i] = malloc((size_t)j->len[i] * sizeof(double));
        check(ctx, mgrad_meta_get_grad(meta[i], MGRAD_DTYPE_F64, j->grad[i], j->len[i]),
              "grad");
    }
    mgrad_mgd *mgd = NULL;
    check(ctx, mgrad_mgd_create(&mgd, meta[1], MGRAD_MGD_ADAM), "mgd");
    check(ctx, mgrad_mgd_step(mgd, &j->phi_mgd), "mgd step");
    j->after_mgd = malloc((size_t)j->len[1] * sizeof(double));
    check(ctx, mgrad_meta_get_value(meta[1], MGRAD_DTYPE_F64, j->after_mgd, j->len[1]),
          "mgd value");
    mgrad_mgd_destroy(mgd);
    mgrad_run_destroy(run);
    mgrad_dataset_destroy(val);
    mgrad_dataset_destroy(train);
    mgrad_model_destroy(model);
    mgrad_context_destroy(ctx);
    return NULL;
}

static void job_free(job *j)
{
    free(j->theta);
    free(j->after_mgd);
    for (int i = 0; i < NMETA; i++) free(j->grad[i]);
}

static void same_bits(const job *a, const job *b)
{
    const char *what = a->net == NET_MLP ? "MLP" : "CNN";
    ck_assert_msg(memcmp(&a->phi, &b->phi, sizeof a->phi) == 0,
                  "%s: φ differs between %d and %d threads (%.17g, %.17g)", what, a->threads,
                  b->threads, a->phi, b->phi);
    ck_assert_int_eq(a->P, b->P);
    ck_assert_msg(memcmp(a->theta, b->theta, (size_t)a->P * sizeof(double)) == 0,
                  "%s: θ_T differs between %d and %d threads", what, a->threads, b->threads);
    for (int i = 0; i < NMETA; i++) {
        ck_assert_int_eq(a->len[i], b->len[i]);
        ck_assert_msg(memcmp(a->grad[i], b->grad[i], (size_t)a->len[i] * sizeof(double)) == 0,
                      "%s: metagradient %d differs between %d and %d threads", what, i,
                      a->threads, b->threads);
    }
    ck_assert_msg(memcmp(&a->phi_mgd, &b->phi_mgd, sizeof a->phi_mgd) == 0,
                  "%s: φ of the MGD step differs between %d and %d threads", what, a->threads,
                  b->threads);
    ck_assert_msg(memcmp(a->after_mgd, b->after_mgd, (size_t)a->len[1] * sizeof(double)) == 0,
                  "%s: the MGD step differs between %d and %d threads", what, a->threads,
                  b->threads);
}

static void across_thread_counts(int net, mgrad_dtype dtype, mgrad_optimizer opt)
{
    job j[3];
    for (int k = 0; k < 3; k++) {
        memset(&j[k], 0, sizeof j[k]);
        j[k].net = net;
        j[k].dtype = dtype;
        j[k].optimizer = opt;
        j[k].threads = k + 1;
        run_job(&j[k]);
    }
    /* the metagradients are not all zero (else equality proves little) */
    int nonzero = 0;
    for (int64_t i = 0; i < j[0].len[1]; i++) nonzero += j[0].grad[1][i] != 0;
    ck_assert_int_gt(nonzero, 0);
    same_bits(&j[0], &j[1]);
    same_bits(&j[0], &j[2]);
    for (int k = 0; k < 3; k++) job_free(&j[k]);
}

START_TEST(test_mlp_sgd_f32)
{
    across_thread_counts(NET_MLP, MGRAD_DTYPE_F32, MGRAD_OPTIMIZER_SGD);
}
END_TEST
START_TEST(test_mlp_adam_f64)
{
    across_thread_counts(NET_MLP, MGRAD_DTYPE_F64, MGRAD_OPTIMIZER_ADAM);
}
END_TEST
START_TEST(test_cnn_sgd_f32)
{
    across_thread_counts(NET_CNN, MGRAD_DTYPE_F32, MGRAD_OPTIMIZER_SGD);
}
END_TEST
START_TEST(test_cnn_adamw_f64)
{
    across_thread_counts(NET_CNN, MGRAD_DTYPE_F64, MGRAD_OPTIMIZER_ADAMW);
}
END_TEST

/* Destroyed while idle: never started, and started then idle. */
START_TEST(test_destroy_idle)
{
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    mgrad_context *ctx = SENTINEL_PTR;
    co.threads = 257;
    ck_assert_int_eq(mgrad_context_create(&ctx, &co), MGRAD_ERR_INVALID);
    ck_assert_ptr_eq(ctx, SENTINEL_PTR);
    co.threads = 3;
    ctx = NULL;
    ck_assert_int_eq(mgrad_context_create(&ctx, &co), MGRAD_OK);
    mgrad_context_destroy(ctx);

    job j;
    memset(&j, 0, sizeof j);
    j.net = NET_MLP;
    j.dtype = MGRAD_DTYPE_F32;
    j.optimizer = MGRAD_OPTIMIZER_SGD;
    j.threads = 3;
    run_job(&j); /* its context is destroyed last, its threads idle */
    job_free(&j);
}
END_TEST

/* Two contexts with threads, used from two threads at once. */
START_TEST(test_two_contexts_two_threads)
{
    job seq[2], par[2];
    for (int i = 0; i < 2; i++) {
        memset(&seq[i], 0, sizeof seq[i]);
        seq[i].net = i == 0 ? NET_MLP : NET_CNN;
        seq[i].dtype = MGRAD_DTYPE_F32;
        seq[i].optimizer = MGRAD_OPTIMIZER_SGD;
        seq[i].threads = 2;
        par[i] = seq[i];
        run_job(&seq[i]);
    }
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, run_job, &par[i]), 0);
    for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < 2; i++) {
        same_bits(&seq[i], &par[i]);
        job_free(&seq[i]);
        job_free(&par[i]);
    }
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("workers");
    TCase *tc = tcase_create("workers");
    tcase_add_test(tc, test_mlp_sgd_f32);
    tcase_add_test(tc, test_mlp_adam_f64);
    tcase_add_test(tc, test_cnn_sgd_f32);
    tcase_add_test(tc, test_cnn_adamw_f64);
    tcase_add_test(tc, test_destroy_idle);
    tcase_add_test(tc, test_two_contexts_two_threads);
    suite_add_tcase(s, tc);
    return s;
}
