/*
 * test_api_walk.c - every function of lib/libmetagrad.map given NULL
 * handles, NULL outputs, wrong sizes, dtypes and order: a status, a message
 * where a context is known, caller buffers untouched.  One walk per exported
 * function, each a Check test on a fresh fixture; test_walk_covers_map fails
 * when an exported function has no walk here.
 *
 * The fixture is built by the scenario's steps: scenario.h.
 * docs/reliability.md describes the failure-mode suites.
 */
#include <check.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metagrad.h"
#include "metagrad/score.h"
#include "scenario.h"
#include "testutil.h"

/* ---- 4. every public function with NULLs and bad arguments -------------- */

typedef struct api_fixture {
    mgrad_context *ctx;
    mgrad_model *model;
    mgrad_dataset *train, *val;
    mgrad_run *run;
    mgrad_meta *lr;
} api_fixture;

static api_fixture A;

static void api_setup(void)
{
    world w;
    world_init(&w, &SMALL, NULL);
    ck_assert_int_eq(step_context(&w), MGRAD_OK);
    ck_assert_int_eq(step_model(&w), MGRAD_OK);
    ck_assert_int_eq(step_layer0(&w), MGRAD_OK);
    ck_assert_int_eq(step_layer1(&w), MGRAD_OK);
    ck_assert_int_eq(step_layer2(&w), MGRAD_OK);
    ck_assert_int_eq(step_train_set(&w), MGRAD_OK);
    ck_assert_int_eq(step_val_set(&w), MGRAD_OK);
    ck_assert_int_eq(step_run(&w), MGRAD_OK);
    A.ctx = w.ctx;
    A.model = w.model;
    A.train = w.train;
    A.val = w.val;
    A.run = w.run;
    ck_assert_int_eq(mgrad_run_add_meta(&A.lr, A.run, MGRAD_META_LR_SCHEDULE, NULL), MGRAD_OK);
}

static void api_teardown(void)
{
    mgrad_run_destroy(A.run);
    mgrad_dataset_destroy(A.train);
    mgrad_dataset_destroy(A.val);
    mgrad_model_destroy(A.model);
    mgrad_context_destroy(A.ctx);
    memset(&A, 0, sizeof A);
}

/* The call fails with `status`; with a context known, it records a message. */
#define FAILS(call, status)                                                         \
    do {                                                                            \
        mgrad_context_clear_error(A.ctx);                                           \
        mgrad_status s_ = (call);                                                   \
        ck_assert_msg(s_ == (status), "%s returned %s, expected %s", #call,         \
                      mgrad_status_string(s_), mgrad_status_string(status));        \
    } while (0)
#define FAILS_MSG(call, status)                                                     \
    do {                                                                            \
        FAILS(call, status);                                                        \
        ck_assert_msg(mgrad_context_last_error(A.ctx)[0] != '\0',                   \
                      "%s recorded no message", #call);                             \
    } while (0)

/* A buffer filled with a byte pattern, checked after failed calls. */
#define SENT 0xA5
static unsigned char buf[4096];
static void sentinel_fill(void) { memset(buf, SENT, sizeof buf); }
static void sentinel_check(const char *what)
{
    size_t i = 0;
    while (i < sizeof buf && buf[i] == SENT) i++;   /* one assertion, not 4096 */
    ck_assert_msg(i == sizeof buf, "%s wrote into the caller's buffer (byte %zu)", what, i);
}
#define UNTOUCHED(call, status)                                                     \
    do {                                                                            \
        sentinel_fill();                                                            \
        FAILS_MSG(call, status);                                                    \
        sentinel_check(#call);                                                      \
    } while (0)
/* The same for calls that cannot know a context (NULL handle). */
#define UNTOUCHED_NOCTX(call, status)                                               \
    do {                                                                            \
        sentinel_fill();                                                            \
        FAILS(call, status);                                                        \
        sentinel_check(#call);                                                      \
    } while (0)

typedef void (*walk_fn)(void);
typedef struct walk {
    const char *name;
    walk_fn fn;
} walk;

static void w_status_string(void)
{
    for (int st = -20; st <= 2; st++) {
        const char *m = mgrad_status_string((mgrad_status)st);
        ck_assert_ptr_nonnull(m);
        ck_assert(m[0] != '\0');
    }
    ck_assert_ptr_nonnull(mgrad_status_string((mgrad_status)INT_MIN));
    ck_assert_ptr_nonnull(mgrad_status_string((mgrad_status)INT_MAX));
}
static void w_version_string(void)
{
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.%d", MGRAD_VERSION_MAJOR, MGRAD_VERSION_MINOR,
             MGRAD_VERSION_PATCH);
    ck_assert_str_eq(mgrad_version_string(), expect);
}
static void w_version_number(void)
{
    ck_assert_int_eq(mgrad_version_number(), MGRAD_VERSION_NUMBER);
}
static void w_context_options_init(void)
{
    mgrad_context_options *o = (mgrad_context_options *)buf;
    FAILS(mgrad_context_options_init(NULL, MGRAD_CONTEXT_OPTIONS_VERSION), MGRAD_ERR_NULL);
    UNTOUCHED_NOCTX(mgrad_context_options_init(o, 0), MGRAD_ERR_VERSION);
    UNTOUCHED_NOCTX(mgrad_context_options_init(o, UINT32_MAX), MGRAD_ERR_VERSION);
}
static void w_context_create(void)
{
    mgrad_context **out = (mgrad_context **)buf;
    mgrad_context_options o = MGRAD_CONTEXT_OPTIONS_INIT;
    FAILS(mgrad_context_create(NULL, NULL), MGRAD_ERR_NULL);
    FAILS(mgrad_context_create(NULL, &o), MGRAD_ERR_NULL);
    o.version = 0;
    UNTOUCHED_NOCTX(mgrad_context_create(out, &o), MGRAD_ERR_VERSION);
    o = (mgrad_context_options)MGRAD_CONTEXT_OPTIONS_INIT;
    o.dtype = (mgrad_dtype)0;
    UNTOUCHED_NOCTX(mgrad_context_create(out, &o), MGRAD_ERR_DTYPE);
    o = (mgrad_context_options)MGRAD_CONTEXT_OPTIONS_INIT;
    o.threads = -1;
    UNTOUCHED_NOCTX(mgrad_context_create(out, &o), MGRAD_ERR_INVALID);
    o = (mgrad_context_options)MGRAD_CONTEXT_OPTIONS_INIT;
    o.malloc_fn = test_malloc;
    UNTOUCHED_NOCTX(mgrad_context_create(out, &o), MGRAD_ERR_INVALID);
    o = (mgrad_context_options)MGRAD_CONTEXT_OPTIONS_INIT;
    o.log_level = (mgrad_log_level)9;
    UNTOUCHED_NOCTX(mgrad_context_create(out, &o), MGRAD_ERR_INVALID);
}
static void w_context_destroy(void)
{
    mgrad_context_destroy(NULL);
    /* A second destroy of the caller's handle is ignored while children
       keep the context alive (detectable), not a double free. */
    mgrad_context *c = NULL;
    mgrad_model *m = NULL;
    int64_t shape[1] = {2};
    ck_assert_int_eq(mgrad_context_create(&c, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_create(&m, c, 1, shape), MGRAD_OK);
    mgrad_context_destroy(c);
    mgrad_context_destroy(c);
    int64_t n = -1;
    ck_assert_int_eq(mgrad_model_num_params(m, &n), MGRAD_OK);
    mgrad_model_destroy(m);
}
static void w_context_last_error(void)
{
    ck_assert_ptr_nonnull(mgrad_context_last_error(NULL));
    ck_assert_str_eq(mgrad_context_last_error(NULL), "");
}
static void w_context_clear_error(void)
{
    mgrad_context_clear_error(NULL);
    FAILS_MSG(mgrad_model_num_params(A.model, NULL), MGRAD_ERR_NULL);
    mgrad_context_clear_error(A.ctx);
    ck_assert_str_eq(mgrad_context_last_error(A.ctx), "");
}
static void w_context_dtype(void)
{
    ck_assert_int_eq(mgrad_context_dtype(NULL), 0);
    ck_assert_int_eq(mgrad_context_dtype(A.ctx), SMALL.dtype);
}
static void w_context_memory(void)
{
    uint64_t *u = (uint64_t *)buf;
    UNTOUCHED_NOCTX(mgrad_context_memory(NULL, u, u + 1), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_context_memory(A.ctx, NULL, NULL), MGRAD_OK);
}
static void w_model_create(void)
{
    mgrad_model **out = (mgrad_model **)buf;
    int64_t shape[3] = {2, 3, 4}, bad[1] = {0};
    UNTOUCHED_NOCTX(mgrad_model_create(out, NULL, 1, shape), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_model_create(NULL, A.ctx, 1, shape), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_model_create(out, A.ctx, 1, NULL), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_model_create(out, A.ctx, 0, shape), MGRAD_ERR_INVALID);
    UNTOUCHED(mgrad_model_create(out, A.ctx, 4, shape), MGRAD_ERR_INVALID);
    UNTOUCHED(mgrad_model_create(out, A.ctx, 1, bad), MGRAD_ERR_INVALID);
    int64_t huge[3] = {INT64_MAX, INT64_MAX, 2};
    UNTOUCHED(mgrad_model_create(out, A.ctx, 3, huge), MGRAD_ERR_INVALID);
}
static void w_model_destroy(void) { mgrad_model_destroy(NULL); }
static void w_model_add_dense(void)
{
    int64_t P0 = 0, P1 = 0;
    FAILS(mgrad_model_add_dense(NULL, 3, MGRAD_INIT_DEFAULT), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_model_num_params(A.model, &P0), MGRAD_OK);
    FAILS_MSG(mgrad_model_add_dense(A.model, 0, MGRAD_INIT_DEFAULT), MGRAD_ERR_INVALID);
    FAILS_MSG(mgrad_model_add_dense(A.model, -5, MGRAD_INIT_DEFAULT), MGRAD_ERR_INVALID);
    FAILS_MSG(mgrad_model_add_dense(A.model, 3, (mgrad_init)99), MGRAD_ERR_INVALID);
    FAILS_MSG(mgrad_model_add_dense(A.model, INT64_MAX, MGRAD_INIT_DEFAULT), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_model_num_params(A.model, &P1), MGRAD_OK);
    ck_assert_int_eq(P0, P1);
}
static void w_model_add_activation(void)
{
    FAILS(mgrad_model_add_activation(NULL, MGRAD_ACTIVATION_TANH), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_model_add_activation(A.model, (mgrad_activation)0), MGRAD_ERR_INVALID);
    FAILS_MSG(mgrad_model_add_activation(A.model, (mgrad_activation)77), MGRAD_ERR_INVALID);
}
static void w_model_add_scale(void)
{
    FAILS(mgrad_model_add_scale(NULL, 1.0), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_model_add_scale(A.model, NAN), MGRAD_ERR_INVALID);
    FAILS_MSG(mgrad_model_add_scale(A.model, INFINITY), MGRAD_ERR_INVALID);
}
static void w_model_mark(void)
{
    UNTOUCHED_NOCTX(mgrad_model_mark(NULL, (int32_t *)buf), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_model_mark(A.model, NULL), MGRAD_ERR_NULL);
}
static void w_model_add_residual(void)
{
    FAILS(mgrad_model_add_residual(NULL, 0), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_model_add_residual(A.model, -1), MGRAD_ERR_INVALID);
    FAILS_MSG(mgrad_model_add_residual(A.model, INT32_MAX), MGRAD_ERR_INVALID);
    FAILS_MSG(mgrad_model_add_residual(A.model, 0), MGRAD_ERR_SHAPE); /* 4 vs 3 values */
}
static void w_model_num_params(void)
{
    UNTOUCHED_NOCTX(mgrad_model_num_params(NULL, (int64_t *)buf), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_model_num_params(A.model, NULL), MGRAD_ERR_NULL);
}
static void w_model_output_size(void)
{
    UNTOUCHED_NOCTX(mgrad_model_output_size(NULL, (int64_t *)buf), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_model_output_size(A.model, NULL), MGRAD_ERR_NULL);
}
static void w_model_get_params(void)
{
    int64_t P = 0;
    ck_assert_int_eq(mgrad_model_num_params(A.model, &P), MGRAD_OK);
    UNTOUCHED_NOCTX(mgrad_model_get_params(NULL, MGRAD_DTYPE_F64, buf, P), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_model_get_params(A.model, MGRAD_DTYPE_F64, NULL, P), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_model_get_params(A.model, MGRAD_DTYPE_F64, buf, P - 1), MGRAD_ERR_SIZE);
    UNTOUCHED(mgrad_model_get_params(A.model, MGRAD_DTYPE_F64, buf, 0), MGRAD_ERR_SIZE);
    UNTOUCHED(mgrad_model_get_params(A.model, MGRAD_DTYPE_F64, buf, -1), MGRAD_ERR_SIZE);
    UNTOUCHED(mgrad_model_get_params(A.model, MGRAD_DTYPE_F64, buf, INT64_MAX), MGRAD_ERR_SIZE);
    UNTOUCHED(mgrad_model_get_params(A.model, (mgrad_dtype)7, buf, P), MGRAD_ERR_DTYPE);
}
static void w_model_set_params(void)
{
    int64_t P = 0;
    ck_assert_int_eq(mgrad_model_num_params(A.model, &P), MGRAD_OK);
    double v[256], before[256], after[256];
    ck_assert_int_le(P, 256);
    ck_assert_int_eq(mgrad_model_get_params(A.model, MGRAD_DTYPE_F64, before, P), MGRAD_OK);
    for (int64_t i = 0; i < P; i++) v[i] = 0.25;
    FAILS(mgrad_model_set_params(NULL, MGRAD_DTYPE_F64, v, P), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_model_set_params(A.model, MGRAD_DTYPE_F64, NULL, P), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_model_set_params(A.model, MGRAD_DTYPE_F64, v, P + 1), MGRAD_ERR_SIZE);
    FAILS_MSG(mgrad_model_set_params(A.model, (mgrad_dtype)0, v, P), MGRAD_ERR_DTYPE);
    v[P / 2] = INFINITY;
    FAILS_MSG(mgrad_model_set_params(A.model, MGRAD_DTYPE_F64, v, P), MGRAD_ERR_NONFINITE);
    ck_assert_int_eq(mgrad_model_get_params(A.model, MGRAD_DTYPE_F64, after, P), MGRAD_OK);
    ck_assert(memcmp(before, after, (size_t)P * sizeof(double)) == 0);
}
static void w_model_init_params(void)
{
    FAILS(mgrad_model_init_params(NULL, 1), MGRAD_ERR_NULL);
}
static void w_dataset_create(void)
{
    mgrad_dataset **out = (mgrad_dataset **)buf;
    int64_t shape[1] = {SMALL.features};
    double x[64] = {0};
    UNTOUCHED_NOCTX(mgrad_dataset_create(out, NULL, 2, 1, shape, MGRAD_DTYPE_F64, x),
                    MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_dataset_create(NULL, A.ctx, 2, 1, shape, MGRAD_DTYPE_F64, x),
              MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_dataset_create(out, A.ctx, 2, 1, NULL, MGRAD_DTYPE_F64, x), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_dataset_create(out, A.ctx, 2, 1, shape, MGRAD_DTYPE_F64, NULL),
              MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_dataset_create(out, A.ctx, -1, 1, shape, MGRAD_DTYPE_F64, x),
              MGRAD_ERR_INVALID);
    UNTOUCHED(mgrad_dataset_create(out, A.ctx, INT64_MAX, 1, shape, MGRAD_DTYPE_F64, x),
              MGRAD_ERR_INVALID);
    UNTOUCHED(mgrad_dataset_create(out, A.ctx, 2, 0, shape, MGRAD_DTYPE_F64, x),
              MGRAD_ERR_INVALID);
    UNTOUCHED(mgrad_dataset_create(out, A.ctx, 2, 1, shape, (mgrad_dtype)5, x),
              MGRAD_ERR_DTYPE);
}
static void w_dataset_destroy(void) { mgrad_dataset_destroy(NULL); }
static void w_dataset_set_labels(void)
{
    int32_t y[64] = {0};
    FAILS(mgrad_dataset_set_labels(NULL, y, SMALL.ntrain, 3), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_dataset_set_labels(A.train, NULL, SMALL.ntrain, 3), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_dataset_set_labels(A.train, y, -1, 3), MGRAD_ERR_SIZE);
    FAILS_MSG(mgrad_dataset_set_labels(A.train, y, INT64_MAX, 3), MGRAD_ERR_SIZE);
    /* in use by the run: read-only */
    FAILS_MSG(mgrad_dataset_set_labels(A.train, y, SMALL.ntrain, 3), MGRAD_ERR_ORDER);
}
static void w_dataset_set_targets(void)
{
    double t[64] = {0};
    FAILS(mgrad_dataset_set_targets(NULL, MGRAD_DTYPE_F64, t, SMALL.ntrain, 1), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_dataset_set_targets(A.train, MGRAD_DTYPE_F64, NULL, SMALL.ntrain, 1),
              MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_dataset_set_targets(A.train, (mgrad_dtype)3, t, SMALL.ntrain, 1),
              MGRAD_ERR_DTYPE);
    FAILS_MSG(mgrad_dataset_set_targets(A.train, MGRAD_DTYPE_F64, t, SMALL.ntrain, INT64_MAX),
              MGRAD_ERR_INVALID);
    FAILS_MSG(mgrad_dataset_set_targets(A.train, MGRAD_DTYPE_F64, t, SMALL.ntrain, 1),
              MGRAD_ERR_ORDER);
}
static void w_dataset_set_weights(void)
{
    double v[64] = {0};
    FAILS(mgrad_dataset_set_weights(NULL, MGRAD_DTYPE_F64, v, SMALL.ntrain), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_dataset_set_weights(A.train, MGRAD_DTYPE_F64, NULL, SMALL.ntrain),
              MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_dataset_set_weights(A.train, MGRAD_DTYPE_F64, v, 0), MGRAD_ERR_SIZE);
    FAILS_MSG(mgrad_dataset_set_weights(A.train, MGRAD_DTYPE_F64, v, SMALL.ntrain),
              MGRAD_ERR_ORDER);
}
static void w_dataset_compact(void)
{
    int64_t *bytes = (int64_t *)buf;
    UNTOUCHED_NOCTX(mgrad_dataset_compact(NULL, bytes), MGRAD_ERR_NULL);
    /* in use by the run (train and validation): read-only */
    UNTOUCHED(mgrad_dataset_compact(A.train, bytes), MGRAD_ERR_ORDER);
    UNTOUCHED(mgrad_dataset_compact(A.val, bytes), MGRAD_ERR_ORDER);
}
static void w_dataset_size(void)
{
    UNTOUCHED_NOCTX(mgrad_dataset_size(NULL, (int64_t *)buf), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_dataset_size(A.train, NULL), MGRAD_ERR_NULL);
}
static void w_dataset_features(void)
{
    UNTOUCHED_NOCTX(mgrad_dataset_features(NULL, (int64_t *)buf), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_dataset_features(A.train, NULL), MGRAD_ERR_NULL);
}
static void w_run_options_init(void)
{
    FAILS(mgrad_run_options_init(NULL, MGRAD_RUN_OPTIONS_VERSION), MGRAD_ERR_NULL);
    UNTOUCHED_NOCTX(mgrad_run_options_init((mgrad_run_options *)buf, 2), MGRAD_ERR_VERSION);
}
static void w_run_create(void)
{
    mgrad_run **out = (mgrad_run **)buf;
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = 3;
    o.batch_size = 2;
    o.validation = A.val;
    FAILS(mgrad_run_create(out, NULL, NULL, &o), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_run_create(out, NULL, A.train, &o), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_run_create(NULL, A.model, A.train, &o), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_run_create(out, A.model, NULL, &o), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_run_create(out, A.model, A.train, NULL), MGRAD_ERR_NULL);
    o.steps = INT64_MAX;
    o.batch_size = INT64_MAX;
    UNTOUCHED(mgrad_run_create(out, A.model, A.train, &o), MGRAD_ERR_INVALID);
    o.steps = -3;
    UNTOUCHED(mgrad_run_create(out, A.model, A.train, &o), MGRAD_ERR_INVALID);
    o.steps = 3;
    o.batch_size = 2;
    o.lr = NAN;
    UNTOUCHED(mgrad_run_create(out, A.model, A.train, &o), MGRAD_ERR_INVALID);
    o.lr = 0.1;
    o.checkpoint_budget_bytes = 1;
    UNTOUCHED(mgrad_run_create(out, A.model, A.train, &o), MGRAD_ERR_BUDGET);
    o.checkpoint_budget_bytes = 0;
    o.validation = A.train; /* fine as a validation set */
    o.loss = MGRAD_LOSS_SQUARED_ERROR; /* but it has no targets */
    UNTOUCHED(mgrad_run_create(out, A.model, A.train, &o), MGRAD_ERR_ORDER);
}
static void w_run_destroy(void) { mgrad_run_destroy(NULL); }
static void w_run_train(void)
{
    double *phi = (double *)buf;
    UNTOUCHED_NOCTX(mgrad_run_train(NULL, phi), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_run_train(A.run, NULL), MGRAD_OK);
}
static void w_run_reverse(void)
{
    FAILS(mgrad_run_reverse(NULL), MGRAD_ERR_NULL);
    /* the fixture's run is fresh after add_meta */
    mgrad_run *r = NULL;
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = 2;
    o.batch_size = 2;
    o.validation = A.val;
    ck_assert_int_eq(mgrad_run_create(&r, A.model, A.train, &o), MGRAD_OK);
    mgrad_context_clear_error(A.ctx);
    ck_assert_int_eq(mgrad_run_reverse(r), MGRAD_ERR_ORDER);
    ck_assert(mgrad_context_last_error(A.ctx)[0] != '\0');
    mgrad_run_destroy(r);
}
static void w_run_num_params(void)
{
    UNTOUCHED_NOCTX(mgrad_run_num_params(NULL, (int64_t *)buf), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_run_num_params(A.run, NULL), MGRAD_ERR_NULL);
}
static void w_run_get_params(void)
{
    int64_t P = 0;
    ck_assert_int_eq(mgrad_run_num_params(A.run, &P), MGRAD_OK);
    UNTOUCHED_NOCTX(mgrad_run_get_params(NULL, MGRAD_DTYPE_F64, buf, P), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_run_get_params(A.run, MGRAD_DTYPE_F64, NULL, P), MGRAD_ERR_NULL);
    /* no θ_T yet */
    UNTOUCHED(mgrad_run_get_params(A.run, MGRAD_DTYPE_F64, buf, P), MGRAD_ERR_ORDER);
    ck_assert_int_eq(mgrad_run_train(A.run, NULL), MGRAD_OK);
    UNTOUCHED(mgrad_run_get_params(A.run, MGRAD_DTYPE_F64, buf, P + 1), MGRAD_ERR_SIZE);
    UNTOUCHED(mgrad_run_get_params(A.run, MGRAD_DTYPE_F32, buf, -P), MGRAD_ERR_SIZE);
    UNTOUCHED(mgrad_run_get_params(A.run, (mgrad_dtype)-1, buf, P), MGRAD_ERR_DTYPE);
}
static void w_run_evaluate(void)
{
    double *lo = (double *)buf;
    UNTOUCHED_NOCTX(mgrad_run_evaluate(NULL, A.val, lo, lo + 1), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_run_evaluate(A.run, NULL, lo, lo + 1), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_run_evaluate(A.run, A.val, lo, lo + 1), MGRAD_ERR_ORDER);
    ck_assert_int_eq(mgrad_run_train(A.run, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_evaluate(A.run, A.val, NULL, NULL), MGRAD_OK);
    /* a dataset of another context */
    mgrad_context *c2 = NULL;
    mgrad_dataset *d2 = NULL;
    int64_t shape[1] = {SMALL.features};
    double x[4 * 8] = {0};
    ck_assert_int_eq(mgrad_context_create(&c2, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_create(&d2, c2, 2, 1, shape, MGRAD_DTYPE_F64, x), MGRAD_OK);
    UNTOUCHED(mgrad_run_evaluate(A.run, d2, lo, lo + 1), MGRAD_ERR_INVALID);
    mgrad_dataset_destroy(d2);
    mgrad_context_destroy(c2);
}
static void w_run_get_stats(void)
{
    mgrad_run_stats *st = (mgrad_run_stats *)buf;
    UNTOUCHED_NOCTX(mgrad_run_get_stats(NULL, st), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_run_get_stats(A.run, NULL), MGRAD_ERR_NULL);
    /* the version field is the sentinel: unknown */
    UNTOUCHED(mgrad_run_get_stats(A.run, st), MGRAD_ERR_VERSION);
}
static void w_meta_options_init(void)
{
    FAILS(mgrad_meta_options_init(NULL, MGRAD_META_OPTIONS_VERSION), MGRAD_ERR_NULL);
    UNTOUCHED_NOCTX(mgrad_meta_options_init((mgrad_meta_options *)buf, 99), MGRAD_ERR_VERSION);
}
static void w_run_add_meta(void)
{
    mgrad_meta **out = (mgrad_meta **)buf;
    UNTOUCHED_NOCTX(mgrad_run_add_meta(out, NULL, MGRAD_META_MOMENTUM, NULL), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_run_add_meta(NULL, A.run, MGRAD_META_MOMENTUM, NULL), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_run_add_meta(out, A.run, (mgrad_meta_kind)-4, NULL), MGRAD_ERR_INVALID);
    UNTOUCHED(mgrad_run_add_meta(out, A.run, MGRAD_META_LR_SCHEDULE, NULL), MGRAD_ERR_INVALID);
    mgrad_meta_options mo = MGRAD_META_OPTIONS_INIT;
    int64_t rows[1] = {INT64_MAX};
    mo.rows = rows;
    mo.num_rows = 1;
    UNTOUCHED(mgrad_run_add_meta(out, A.run, MGRAD_META_INPUTS, &mo), MGRAD_ERR_INVALID);
    mo.num_rows = -1;
    UNTOUCHED(mgrad_run_add_meta(out, A.run, MGRAD_META_INPUTS, &mo), MGRAD_ERR_INVALID);
    mo = (mgrad_meta_options)MGRAD_META_OPTIONS_INIT;
    mo.step = INT64_MAX;
    UNTOUCHED(mgrad_run_add_meta(out, A.run, MGRAD_META_POOL_WEIGHTS, &mo), MGRAD_ERR_INVALID);
    mo.step = 0;
    mo.pool = A.val;
    ck_assert_int_eq(mgrad_run_add_meta(out, A.run, MGRAD_META_POOL_WEIGHTS, &mo), MGRAD_OK);
}
static void w_meta_kind_of(void)
{
    UNTOUCHED_NOCTX(mgrad_meta_kind_of(NULL, (mgrad_meta_kind *)buf), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_meta_kind_of(A.lr, NULL), MGRAD_ERR_NULL);
}
static void w_meta_size(void)
{
    UNTOUCHED_NOCTX(mgrad_meta_size(NULL, (int64_t *)buf), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_meta_size(A.lr, NULL), MGRAD_ERR_NULL);
}
static void w_meta_get_value(void)
{
    int64_t T = SMALL.steps;
    UNTOUCHED_NOCTX(mgrad_meta_get_value(NULL, MGRAD_DTYPE_F64, buf, T), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_meta_get_value(A.lr, MGRAD_DTYPE_F64, NULL, T), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_meta_get_value(A.lr, MGRAD_DTYPE_F64, buf, T + 1), MGRAD_ERR_SIZE);
    UNTOUCHED(mgrad_meta_get_value(A.lr, MGRAD_DTYPE_F64, buf, INT64_MIN), MGRAD_ERR_SIZE);
    UNTOUCHED(mgrad_meta_get_value(A.lr, (mgrad_dtype)0, buf, T), MGRAD_ERR_DTYPE);
}
static void w_meta_set_value(void)
{
    int64_t T = SMALL.steps;
    double v[64], before[64], after[64];
    for (int i = 0; i < 64; i++) v[i] = 0.05;
    ck_assert_int_eq(mgrad_meta_get_value(A.lr, MGRAD_DTYPE_F64, before, T), MGRAD_OK);
    FAILS(mgrad_meta_set_value(NULL, MGRAD_DTYPE_F64, v, T), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_meta_set_value(A.lr, MGRAD_DTYPE_F64, NULL, T), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_meta_set_value(A.lr, MGRAD_DTYPE_F64, v, T - 1), MGRAD_ERR_SIZE);
    FAILS_MSG(mgrad_meta_set_value(A.lr, (mgrad_dtype)9, v, T), MGRAD_ERR_DTYPE);
    v[1] = NAN;
    FAILS_MSG(mgrad_meta_set_value(A.lr, MGRAD_DTYPE_F64, v, T), MGRAD_ERR_NONFINITE);
    ck_assert_int_eq(mgrad_meta_get_value(A.lr, MGRAD_DTYPE_F64, after, T), MGRAD_OK);
    ck_assert(memcmp(before, after, (size_t)T * sizeof(double)) == 0);
}
static void w_meta_get_grad(void)
{
    int64_t T = SMALL.steps;
    UNTOUCHED_NOCTX(mgrad_meta_get_grad(NULL, MGRAD_DTYPE_F64, buf, T), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_meta_get_grad(A.lr, MGRAD_DTYPE_F64, NULL, T), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_meta_get_grad(A.lr, MGRAD_DTYPE_F64, buf, T), MGRAD_ERR_ORDER);
    ck_assert_int_eq(mgrad_run_train(A.run, NULL), MGRAD_OK);
    UNTOUCHED(mgrad_meta_get_grad(A.lr, MGRAD_DTYPE_F64, buf, T), MGRAD_ERR_ORDER);
    ck_assert_int_eq(mgrad_run_reverse(A.run), MGRAD_OK);
    UNTOUCHED(mgrad_meta_get_grad(A.lr, MGRAD_DTYPE_F32, buf, T - 1), MGRAD_ERR_SIZE);
    UNTOUCHED(mgrad_meta_get_grad(A.lr, (mgrad_dtype)3, buf, T), MGRAD_ERR_DTYPE);
    ck_assert_int_eq(mgrad_meta_get_grad(A.lr, MGRAD_DTYPE_F32, buf, T), MGRAD_OK);
}

/* Newer headers (callback.h, mgd.h, data.h): NULL handles and outputs. */
static void w_callback_model_init(void)
{
    FAILS(mgrad_callback_model_init(NULL, MGRAD_CALLBACK_MODEL_VERSION), MGRAD_ERR_NULL);
    UNTOUCHED_NOCTX(mgrad_callback_model_init((mgrad_callback_model *)buf, 0),
                    MGRAD_ERR_VERSION);
}
static void w_run_create_callback(void)
{
    mgrad_run **out = (mgrad_run **)buf;
    mgrad_callback_model cm;
    ck_assert_int_eq(mgrad_callback_model_init(&cm, MGRAD_CALLBACK_MODEL_VERSION), MGRAD_OK);
    double theta0[4] = {0};
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = 2;
    o.batch_size = 2;
    o.validation = A.val;
    UNTOUCHED_NOCTX(mgrad_run_create_callback(out, NULL, &cm, theta0, A.train, &o),
                    MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_run_create_callback(NULL, A.ctx, &cm, theta0, A.train, &o), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_run_create_callback(out, A.ctx, NULL, theta0, A.train, &o), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_run_create_callback(out, A.ctx, &cm, NULL, A.train, &o), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_run_create_callback(out, A.ctx, &cm, theta0, NULL, &o), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_run_create_callback(out, A.ctx, &cm, theta0, A.train, NULL), MGRAD_ERR_NULL);
    /* loss_grad is required */
    UNTOUCHED(mgrad_run_create_callback(out, A.ctx, &cm, theta0, A.train, &o), MGRAD_ERR_NULL);
}
static void w_mgd_create(void)
{
    mgrad_mgd **out = (mgrad_mgd **)buf;
    UNTOUCHED_NOCTX(mgrad_mgd_create(out, NULL, MGRAD_MGD_SIGN), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_mgd_create(NULL, A.lr, MGRAD_MGD_SIGN), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_mgd_create(out, A.lr, (mgrad_mgd_method)0), MGRAD_ERR_INVALID);
}
/* An optimiser of the fixture's LR schedule for the walks of its setters. */
static mgrad_mgd *walk_mgd(void)
{
    mgrad_mgd *mgd = NULL;
    ck_assert_int_eq(mgrad_mgd_create(&mgd, A.lr, MGRAD_MGD_SGD), MGRAD_OK);
    return mgd;
}
static void w_mgd_method_of(void)
{
    UNTOUCHED_NOCTX(mgrad_mgd_method_of(NULL, (mgrad_mgd_method *)buf), MGRAD_ERR_NULL);
    mgrad_mgd *mgd = walk_mgd();
    FAILS_MSG(mgrad_mgd_method_of(mgd, NULL), MGRAD_ERR_NULL);
    mgrad_mgd_destroy(mgd);
}
static void w_mgd_get_param_info(void)
{
    mgrad_mgd_param_info in = MGRAD_MGD_PARAM_INFO_INIT;
    FAILS(mgrad_mgd_get_param_info(NULL, MGRAD_MGD_PARAM_LR, &in), MGRAD_ERR_NULL);
    mgrad_mgd *mgd = walk_mgd();
    FAILS_MSG(mgrad_mgd_get_param_info(mgd, MGRAD_MGD_PARAM_LR, NULL), MGRAD_ERR_NULL);
    mgrad_mgd_destroy(mgd);
}
static void w_mgd_set_real(void)
{
    FAILS(mgrad_mgd_set_real(NULL, MGRAD_MGD_PARAM_LR, 0.1), MGRAD_ERR_NULL);
    mgrad_mgd *mgd = walk_mgd();
    FAILS_MSG(mgrad_mgd_set_real(mgd, MGRAD_MGD_PARAM_LR, -0.1), MGRAD_ERR_INVALID);
    mgrad_mgd_destroy(mgd);
}
static void w_mgd_get_real(void)
{
    UNTOUCHED_NOCTX(mgrad_mgd_get_real(NULL, MGRAD_MGD_PARAM_LR, (double *)buf),
                    MGRAD_ERR_NULL);
    mgrad_mgd *mgd = walk_mgd();
    FAILS_MSG(mgrad_mgd_get_real(mgd, MGRAD_MGD_PARAM_LR, NULL), MGRAD_ERR_NULL);
    mgrad_mgd_destroy(mgd);
}
static void w_mgd_set_int(void)
{
    FAILS(mgrad_mgd_set_int(NULL, MGRAD_MGD_PARAM_MAXIMIZE, 1), MGRAD_ERR_NULL);
    mgrad_mgd *mgd = walk_mgd();
    FAILS_MSG(mgrad_mgd_set_int(mgd, MGRAD_MGD_PARAM_MAXIMIZE, 2), MGRAD_ERR_INVALID);
    mgrad_mgd_destroy(mgd);
}
static void w_mgd_get_int(void)
{
    UNTOUCHED_NOCTX(mgrad_mgd_get_int(NULL, MGRAD_MGD_PARAM_MAXIMIZE, (int64_t *)buf),
                    MGRAD_ERR_NULL);
    mgrad_mgd *mgd = walk_mgd();
    FAILS_MSG(mgrad_mgd_get_int(mgd, MGRAD_MGD_PARAM_MAXIMIZE, NULL), MGRAD_ERR_NULL);
    mgrad_mgd_destroy(mgd);
}
static void w_mgd_set_seed(void) { FAILS(mgrad_mgd_set_seed(NULL, 1), MGRAD_ERR_NULL); }
static void w_mgd_get_seed(void)
{
    UNTOUCHED_NOCTX(mgrad_mgd_get_seed(NULL, (uint64_t *)buf), MGRAD_ERR_NULL);
    mgrad_mgd *mgd = walk_mgd();
    FAILS_MSG(mgrad_mgd_get_seed(mgd, NULL), MGRAD_ERR_NULL);
    mgrad_mgd_destroy(mgd);
}
static void w_mgd_set_projection(void)
{
    FAILS(mgrad_mgd_set_projection(NULL, MGRAD_PROJECT_NONE, NULL, 0), MGRAD_ERR_NULL);
    mgrad_mgd *mgd = walk_mgd();
    FAILS_MSG(mgrad_mgd_set_projection(mgd, MGRAD_PROJECT_BOX, NULL, 2), MGRAD_ERR_NULL);
    mgrad_mgd_destroy(mgd);
}
static void w_mgd_get_projection(void)
{
    UNTOUCHED_NOCTX(mgrad_mgd_get_projection(NULL, (mgrad_projection *)buf, NULL, 0),
                    MGRAD_ERR_NULL);
    mgrad_mgd *mgd = walk_mgd();
    FAILS_MSG(mgrad_mgd_get_projection(mgd, NULL, NULL, 0), MGRAD_ERR_NULL);
    mgrad_mgd_destroy(mgd);
}
static void w_mgd_set_gradient_from(void)
{
    FAILS(mgrad_mgd_set_gradient_from(NULL, A.lr), MGRAD_ERR_NULL);
}
static void w_mgd_set_heldout(void)
{
    FAILS(mgrad_mgd_set_heldout(NULL, A.val), MGRAD_ERR_NULL);
}
static void w_mgd_set_progress(void)
{
    FAILS(mgrad_mgd_set_progress(NULL, NULL, NULL), MGRAD_ERR_NULL);
}
static void w_mgd_set_basis(void)
{
    FAILS(mgrad_mgd_set_basis(NULL, NULL, 0, NULL), MGRAD_ERR_NULL);
    mgrad_mgd *mgd = walk_mgd();
    double basis[1] = {1};
    FAILS_MSG(mgrad_mgd_set_basis(mgd, basis, 1, NULL), MGRAD_ERR_NULL);
    mgrad_mgd_destroy(mgd);
}
static void w_mgd_destroy(void) { mgrad_mgd_destroy(NULL); }
static void w_mgd_step(void)
{
    UNTOUCHED_NOCTX(mgrad_mgd_step(NULL, (double *)buf), MGRAD_ERR_NULL);
}
static void w_mgd_run(void) { FAILS(mgrad_mgd_run(NULL, 3), MGRAD_ERR_NULL); }
static void w_mgd_best(void)
{
    double *score = (double *)buf;
    UNTOUCHED_NOCTX(mgrad_mgd_best(NULL, MGRAD_DTYPE_F64, buf + 64, 1, score), MGRAD_ERR_NULL);
}
static void w_mgd_steps(void)
{
    UNTOUCHED_NOCTX(mgrad_mgd_steps(NULL, (int64_t *)buf), MGRAD_ERR_NULL);
}
static void w_mgd_set_lr_schedule(void)
{
    FAILS(mgrad_mgd_set_lr_schedule(NULL, MGRAD_MGD_LR_CONSTANT, NULL, 0), MGRAD_ERR_NULL);
    mgrad_mgd *mgd = walk_mgd();
    FAILS_MSG(mgrad_mgd_set_lr_schedule(mgd, MGRAD_MGD_LR_COSINE, NULL, 2), MGRAD_ERR_NULL);
    double one[1] = {1};
    FAILS_MSG(mgrad_mgd_set_lr_schedule(mgd, MGRAD_MGD_LR_COSINE, one, 1), MGRAD_ERR_SIZE);
    FAILS_MSG(mgrad_mgd_set_lr_schedule(mgd, (mgrad_mgd_lr_schedule)9, NULL, 0),
              MGRAD_ERR_INVALID);
    mgrad_mgd_destroy(mgd);
}
static void w_mgd_get_lr_schedule(void)
{
    UNTOUCHED_NOCTX(mgrad_mgd_get_lr_schedule(NULL, (mgrad_mgd_lr_schedule *)buf, NULL, 0),
                    MGRAD_ERR_NULL);
    mgrad_mgd *mgd = walk_mgd();
    FAILS_MSG(mgrad_mgd_get_lr_schedule(mgd, NULL, NULL, 0), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_mgd_set_lr_schedule(mgd, MGRAD_MGD_LR_STEP, NULL, 0), MGRAD_OK);
    UNTOUCHED(mgrad_mgd_get_lr_schedule(mgd, (mgrad_mgd_lr_schedule *)buf, (double *)(buf + 64),
                                        1),
              MGRAD_ERR_SIZE);
    mgrad_mgd_destroy(mgd);
}
static void w_mgd_set_map(void)
{
    FAILS(mgrad_mgd_set_map(NULL, MGRAD_MGD_MAP_EXP, NULL, 0), MGRAD_ERR_NULL);
    mgrad_mgd *mgd = walk_mgd();
    FAILS_MSG(mgrad_mgd_set_map(mgd, MGRAD_MGD_MAP_COSINE, NULL, 3), MGRAD_ERR_NULL);
    double c[3] = {0.1, 0, 0.2};
    FAILS_MSG(mgrad_mgd_set_map(mgd, MGRAD_MGD_MAP_COSINE, c, 2), MGRAD_ERR_SIZE);
    mgrad_mgd_destroy(mgd);
}
static void w_mgd_get_map(void)
{
    UNTOUCHED_NOCTX(mgrad_mgd_get_map(NULL, (mgrad_mgd_map *)buf, NULL), MGRAD_ERR_NULL);
    mgrad_mgd *mgd = walk_mgd();
    FAILS_MSG(mgrad_mgd_get_map(mgd, NULL, NULL), MGRAD_ERR_NULL);
    mgrad_mgd_destroy(mgd);
}
static void w_mgd_trust_check(void)
{
    mgrad_trust_report r = MGRAD_TRUST_REPORT_INIT;
    FAILS(mgrad_mgd_trust_check(NULL, NULL, 0, 1, &r), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_mgd_trust_check(A.lr, NULL, 0, 1, NULL), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_mgd_trust_check(A.lr, A.lr, 0, 1, &r), MGRAD_ERR_INVALID);
    r.version = 0;
    FAILS_MSG(mgrad_mgd_trust_check(A.lr, NULL, 0, 1, &r), MGRAD_ERR_VERSION);
}
static void w_mgd_step_size(void)
{
    UNTOUCHED_NOCTX(mgrad_mgd_step_size(NULL, (double *)buf), MGRAD_ERR_NULL);
    mgrad_mgd *mgd = walk_mgd();
    FAILS_MSG(mgrad_mgd_step_size(mgd, NULL), MGRAD_ERR_NULL);
    mgrad_mgd_destroy(mgd);
}
static void w_dataset_load_idx(void)
{
    mgrad_dataset **out = (mgrad_dataset **)buf;
    UNTOUCHED_NOCTX(mgrad_dataset_load_idx(out, NULL, "a", "b", 10, 1.0), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_dataset_load_idx(NULL, A.ctx, "a", "b", 10, 1.0), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_dataset_load_idx(out, A.ctx, NULL, "b", 10, 1.0), MGRAD_ERR_NULL);
}
static void w_dataset_load_npy(void)
{
    mgrad_dataset **out = (mgrad_dataset **)buf;
    UNTOUCHED_NOCTX(mgrad_dataset_load_npy(out, NULL, "a", "b", 10), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_dataset_load_npy(NULL, A.ctx, "a", "b", 10), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_dataset_load_npy(out, A.ctx, NULL, "b", 10), MGRAD_ERR_NULL);
}
static void w_dataset_load_csv(void)
{
    mgrad_dataset **out = (mgrad_dataset **)buf;
    UNTOUCHED_NOCTX(mgrad_dataset_load_csv(out, NULL, "a", 0, 0, 2), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_dataset_load_csv(NULL, A.ctx, "a", 0, 0, 2), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_dataset_load_csv(out, A.ctx, NULL, 0, 0, 2), MGRAD_ERR_NULL);
}
static void w_dataset_load_fashion_mnist(void)
{
    mgrad_dataset **out = (mgrad_dataset **)buf;
    UNTOUCHED_NOCTX(mgrad_dataset_load_fashion_mnist(out, NULL, "train", "."), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_dataset_load_fashion_mnist(NULL, A.ctx, "train", "."), MGRAD_ERR_NULL);
}
static void w_dataset_normalize(void)
{
    FAILS(mgrad_dataset_normalize(NULL, A.val, (mgrad_normalize)1), MGRAD_ERR_NULL);
}
static void w_dataset_scale(void) { FAILS(mgrad_dataset_scale(NULL, 1.0, 0.0), MGRAD_ERR_NULL); }
static void w_dataset_split(void)
{
    mgrad_dataset **out = (mgrad_dataset **)buf;
    UNTOUCHED_NOCTX(mgrad_dataset_split(out, out + 1, NULL, 1, 0), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_dataset_split(NULL, out + 1, A.val, 1, 0), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_dataset_split(out, NULL, A.val, 1, 0), MGRAD_ERR_NULL);
}
static void w_dataset_subset(void)
{
    mgrad_dataset **out = (mgrad_dataset **)buf;
    int64_t rows[1] = {0};
    UNTOUCHED_NOCTX(mgrad_dataset_subset(out, NULL, rows, 1), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_dataset_subset(NULL, A.val, rows, 1), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_dataset_subset(out, A.val, NULL, 1), MGRAD_ERR_NULL);
}
static void w_dataset_shape(void)
{
    int32_t *nd = (int32_t *)buf;
    UNTOUCHED_NOCTX(mgrad_dataset_shape(NULL, nd, (int64_t *)(buf + 64)), MGRAD_ERR_NULL);
}
static void w_dataset_num_classes(void)
{
    UNTOUCHED_NOCTX(mgrad_dataset_num_classes(NULL, (int32_t *)buf), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_dataset_num_classes(A.val, NULL), MGRAD_ERR_NULL);
}
static void w_dataset_get_inputs(void)
{
    int64_t n = SMALL.nval * SMALL.features;
    UNTOUCHED_NOCTX(mgrad_dataset_get_inputs(NULL, MGRAD_DTYPE_F64, buf, n), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_dataset_get_inputs(A.val, MGRAD_DTYPE_F64, NULL, n), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_dataset_get_inputs(A.val, MGRAD_DTYPE_F64, buf, n - 1), MGRAD_ERR_SIZE);
}
static void w_dataset_get_labels(void)
{
    int64_t n = SMALL.nval;
    UNTOUCHED_NOCTX(mgrad_dataset_get_labels(NULL, (int32_t *)buf, n), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_dataset_get_labels(A.val, NULL, n), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_dataset_get_labels(A.val, (int32_t *)buf, n + 1), MGRAD_ERR_SIZE);
}

/* Token datasets and text corpora (dataset.h, data.h). */
static void w_dataset_create_tokens(void)
{
    mgrad_dataset **out = (mgrad_dataset **)buf;
    int32_t ids[6] = {0, 1, 2, 3, 4, 5};
    UNTOUCHED_NOCTX(mgrad_dataset_create_tokens(out, NULL, 2, 3, ids, 256), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_dataset_create_tokens(NULL, A.ctx, 2, 3, ids, 256), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_dataset_create_tokens(out, A.ctx, 2, 3, NULL, 256), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_dataset_create_tokens(out, A.ctx, 0, 3, ids, 256), MGRAD_ERR_INVALID);
    UNTOUCHED(mgrad_dataset_create_tokens(out, A.ctx, 2, 1, ids, 256), MGRAD_ERR_INVALID);
    UNTOUCHED(mgrad_dataset_create_tokens(out, A.ctx, INT64_MAX, 3, ids, 256),
              MGRAD_ERR_INVALID);
    UNTOUCHED(mgrad_dataset_create_tokens(out, A.ctx, 2, 3, ids, 1), MGRAD_ERR_INVALID);
    UNTOUCHED(mgrad_dataset_create_tokens(out, A.ctx, 2, 3, ids, 5), MGRAD_ERR_INVALID);
}
static void w_dataset_vocab(void)
{
    UNTOUCHED_NOCTX(mgrad_dataset_vocab(NULL, (int32_t *)buf), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_dataset_vocab(A.val, NULL), MGRAD_ERR_NULL);
}
static void w_dataset_get_tokens(void)
{
    UNTOUCHED_NOCTX(mgrad_dataset_get_tokens(NULL, (int32_t *)buf, 1), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_dataset_get_tokens(A.val, NULL, 1), MGRAD_ERR_NULL);
    /* not a token dataset */
    UNTOUCHED(mgrad_dataset_get_tokens(A.val, (int32_t *)buf, SMALL.nval * SMALL.features),
              MGRAD_ERR_ORDER);
}
static void w_text_corpus_create(void)
{
    mgrad_text_corpus **out = (mgrad_text_corpus **)buf;
    UNTOUCHED_NOCTX(mgrad_text_corpus_create(out, NULL), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_text_corpus_create(NULL, A.ctx), MGRAD_ERR_NULL);
}
static void w_text_corpus_destroy(void) { mgrad_text_corpus_destroy(NULL); }
static void w_text_corpus_add_file(void)
{
    mgrad_text_corpus *c = NULL;
    ck_assert_int_eq(mgrad_text_corpus_create(&c, A.ctx), MGRAD_OK);
    int64_t *added = (int64_t *)buf;
    UNTOUCHED_NOCTX(mgrad_text_corpus_add_file(NULL, "a", MGRAD_TEXT_SPLIT_FILE, 0, added),
                    MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_text_corpus_add_file(c, NULL, MGRAD_TEXT_SPLIT_FILE, 0, added),
              MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_text_corpus_add_file(c, "a", (mgrad_text_split)0, 0, added),
              MGRAD_ERR_INVALID);
    UNTOUCHED(mgrad_text_corpus_add_file(c, "a", MGRAD_TEXT_SPLIT_FILE, -1, added),
              MGRAD_ERR_INVALID);
    UNTOUCHED(mgrad_text_corpus_add_file(c, "/nonexistent/mgrad", MGRAD_TEXT_SPLIT_FILE, 0,
                                         added), MGRAD_ERR_IO);
    mgrad_text_corpus_destroy(c);
}
static void w_text_corpus_add_glob(void)
{
    mgrad_text_corpus *c = NULL;
    ck_assert_int_eq(mgrad_text_corpus_create(&c, A.ctx), MGRAD_OK);
    int64_t *added = (int64_t *)buf;
    UNTOUCHED_NOCTX(mgrad_text_corpus_add_glob(NULL, "a", NULL, MGRAD_TEXT_SPLIT_FILE, 0, added),
                    MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_text_corpus_add_glob(c, NULL, NULL, MGRAD_TEXT_SPLIT_FILE, 0, added),
              MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_text_corpus_add_glob(c, "a", NULL, (mgrad_text_split)9, 0, added),
              MGRAD_ERR_INVALID);
    UNTOUCHED(mgrad_text_corpus_add_glob(c, "/nonexistent/mgrad*", NULL, MGRAD_TEXT_SPLIT_FILE,
                                         0, added), MGRAD_ERR_IO);
    mgrad_text_corpus_destroy(c);
}
static void w_text_corpus_size(void)
{
    UNTOUCHED_NOCTX(mgrad_text_corpus_size(NULL, (int64_t *)buf, (int64_t *)buf + 1),
                    MGRAD_ERR_NULL);
}
static void w_text_corpus_document(void)
{
    mgrad_text_corpus *c = NULL;
    ck_assert_int_eq(mgrad_text_corpus_create(&c, A.ctx), MGRAD_OK);
    const char **path = (const char **)buf;
    UNTOUCHED_NOCTX(mgrad_text_corpus_document(NULL, 0, path, NULL, NULL, NULL, NULL),
                    MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_text_corpus_document(c, 0, path, NULL, NULL, NULL, NULL), MGRAD_ERR_INVALID);
    mgrad_text_corpus_destroy(c);
}
static void w_text_corpus_count_examples(void)
{
    mgrad_text_corpus *c = NULL;
    ck_assert_int_eq(mgrad_text_corpus_create(&c, A.ctx), MGRAD_OK);
    int64_t *n = (int64_t *)buf;
    UNTOUCHED_NOCTX(mgrad_text_corpus_count_examples(NULL, NULL, 0, 5, 0, n), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_text_corpus_count_examples(c, NULL, 0, 5, 0, NULL), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_text_corpus_count_examples(c, NULL, 0, 1, 0, n), MGRAD_ERR_INVALID);
    UNTOUCHED(mgrad_text_corpus_count_examples(c, NULL, 0, 5, -1, n), MGRAD_ERR_INVALID);
    mgrad_text_corpus_destroy(c);
}
static void w_text_corpus_examples(void)
{
    mgrad_text_corpus *c = NULL;
    ck_assert_int_eq(mgrad_text_corpus_create(&c, A.ctx), MGRAD_OK);
    mgrad_dataset **out = (mgrad_dataset **)buf;
    UNTOUCHED_NOCTX(mgrad_text_corpus_examples(out, NULL, NULL, 0, 5, 0, NULL, 0),
                    MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_text_corpus_examples(NULL, c, NULL, 0, 5, 0, NULL, 0), MGRAD_ERR_NULL);
    /* an empty corpus */
    UNTOUCHED(mgrad_text_corpus_examples(out, c, NULL, 0, 5, 0, NULL, 0), MGRAD_ERR_INVALID);
    mgrad_text_corpus_destroy(c);
}

/* Layer types, per-example losses and smoothness (model.h, run.h,
   smooth.h): NULL handles and outputs. */
static void w_model_add_conv2d(void)
{
    FAILS(mgrad_model_add_conv2d(NULL, 4, 3, 1, 1, MGRAD_INIT_DEFAULT), MGRAD_ERR_NULL);
}
static void w_model_add_avg_pool(void) { FAILS(mgrad_model_add_avg_pool(NULL, 2, 2), MGRAD_ERR_NULL); }
static void w_model_add_max_pool(void) { FAILS(mgrad_model_add_max_pool(NULL, 2, 2), MGRAD_ERR_NULL); }
static void w_model_add_global_avg_pool(void)
{
    FAILS(mgrad_model_add_global_avg_pool(NULL), MGRAD_ERR_NULL);
}
static void w_model_add_batch_norm(void)
{
    FAILS(mgrad_model_add_batch_norm(NULL, 1e-5), MGRAD_ERR_NULL);
}
static void w_model_add_layer_norm(void)
{
    FAILS(mgrad_model_add_layer_norm(NULL, 1e-5), MGRAD_ERR_NULL);
}
static void w_model_add_dropout(void) { FAILS(mgrad_model_add_dropout(NULL, 0.5), MGRAD_ERR_NULL); }
static void w_model_add_flatten(void) { FAILS(mgrad_model_add_flatten(NULL), MGRAD_ERR_NULL); }
static void w_model_add_resnet_block(void)
{
    FAILS(mgrad_model_add_resnet_block(NULL, 4, 1), MGRAD_ERR_NULL);
}
static void w_model_add_token_embedding(void)
{
    FAILS(mgrad_model_add_token_embedding(NULL, 5, 4, 3), MGRAD_ERR_NULL);
    /* the fixture's model already has layers */
    FAILS_MSG(mgrad_model_add_token_embedding(A.model, 5, 4, 3), MGRAD_ERR_ORDER);
}
static void w_model_add_positional_embedding(void)
{
    FAILS(mgrad_model_add_positional_embedding(NULL), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_model_add_positional_embedding(A.model), MGRAD_ERR_SHAPE);
}
static void w_model_add_causal_self_attention(void)
{
    FAILS(mgrad_model_add_causal_self_attention(NULL, 1, 0), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_model_add_causal_self_attention(A.model, 1, 0), MGRAD_ERR_SHAPE);
}
static void w_model_add_transformer_block(void)
{
    FAILS(mgrad_model_add_transformer_block(NULL, 1, 4, 0), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_model_add_transformer_block(A.model, 1, 4, 0), MGRAD_ERR_SHAPE);
}
static void w_model_create_gpt(void)
{
    mgrad_model **out = (mgrad_model **)buf;
    UNTOUCHED_NOCTX(mgrad_model_create_gpt(out, NULL, 5, 3, 4, 1, 2), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_model_create_gpt(NULL, A.ctx, 5, 3, 4, 1, 2), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_model_create_gpt(out, A.ctx, 5, 0, 4, 1, 2), MGRAD_ERR_INVALID);
    UNTOUCHED(mgrad_model_create_gpt(out, A.ctx, 0, 3, 4, 1, 2), MGRAD_ERR_INVALID);
    UNTOUCHED(mgrad_model_create_gpt(out, A.ctx, 5, 3, 4, 1, 3), MGRAD_ERR_INVALID);
    UNTOUCHED(mgrad_model_create_gpt(out, A.ctx, 5, 3, 4, -1, 2), MGRAD_ERR_INVALID);
}
static void w_run_example_losses(void)
{
    int64_t n = SMALL.nval;
    UNTOUCHED_NOCTX(mgrad_run_example_losses(NULL, A.val, MGRAD_DTYPE_F64, buf, n),
                    MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_run_example_losses(A.run, NULL, MGRAD_DTYPE_F64, buf, n), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_run_example_losses(A.run, A.val, MGRAD_DTYPE_F64, NULL, n), MGRAD_ERR_NULL);
}
static void w_run_context(void)
{
    UNTOUCHED_NOCTX(mgrad_run_context(NULL, (mgrad_context **)buf), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_run_context(A.run, NULL), MGRAD_ERR_NULL);
}
static void w_run_has_batches(void)
{
    UNTOUCHED_NOCTX(mgrad_run_has_batches(NULL, (int32_t *)buf), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_run_has_batches(A.run, NULL), MGRAD_ERR_NULL);
}
static void w_run_check_dataset(void)
{
    FAILS(mgrad_run_check_dataset(NULL, A.val), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_run_check_dataset(A.run, NULL), MGRAD_ERR_NULL);
}
static void w_output_init(void)
{
    mgrad_output *o = (mgrad_output *)buf;
    FAILS(mgrad_output_init(NULL, MGRAD_OUTPUT_VERSION), MGRAD_ERR_NULL);
    UNTOUCHED_NOCTX(mgrad_output_init(o, 0), MGRAD_ERR_VERSION);
    UNTOUCHED_NOCTX(mgrad_output_init(o, UINT32_MAX), MGRAD_ERR_VERSION);
}
static void w_run_set_output(void)
{
    mgrad_output o = MGRAD_OUTPUT_INIT;
    FAILS(mgrad_run_set_output(NULL, &o), MGRAD_ERR_NULL);
    o.num_terms = 1; /* terms NULL */
    FAILS_MSG(mgrad_run_set_output(A.run, &o), MGRAD_ERR_NULL);
    o.num_terms = 0; /* no term, no fn */
    FAILS_MSG(mgrad_run_set_output(A.run, &o), MGRAD_ERR_INVALID);
    o.version = 0;
    FAILS_MSG(mgrad_run_set_output(A.run, &o), MGRAD_ERR_VERSION);
}
static void w_meta_run(void)
{
    UNTOUCHED_NOCTX(mgrad_meta_run(NULL, (mgrad_run **)buf), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_meta_run(A.lr, NULL), MGRAD_ERR_NULL);
}
static void w_run_set_shuffle_seed(void)
{
    FAILS(mgrad_run_set_shuffle_seed(NULL, 1), MGRAD_ERR_NULL);
}
static void w_meta_metasmoothness(void)
{
    double *o = (double *)buf;
    UNTOUCHED_NOCTX(mgrad_meta_metasmoothness(NULL, NULL, 1, 1e-3, o, o + 1), MGRAD_ERR_NULL);
}
static void w_run_hvp(void)
{
    double u[4] = {0};
    UNTOUCHED_NOCTX(mgrad_run_hvp(NULL, MGRAD_DTYPE_F64, u, buf, 4), MGRAD_ERR_NULL);
}
static void w_run_hessian_spectrum(void)
{
    UNTOUCHED_NOCTX(mgrad_run_hessian_spectrum(NULL, (double *)buf, 4), MGRAD_ERR_NULL);
}
static void w_run_hessian_lanczos(void)
{
    UNTOUCHED_NOCTX(mgrad_run_hessian_lanczos(NULL, 4, 1, (double *)buf), MGRAD_ERR_NULL);
}
/* metagrad/mpi.h: without MPI_Init (or without MPI in the build) a
   communicator is refused; gathering without one equals mgrad_meta_get_grad. */
static void w_mpi_available(void)
{
    int32_t a = mgrad_mpi_available();
    ck_assert(a == 0 || a == 1);
}
static void w_run_set_communicator(void)
{
    FAILS(mgrad_run_set_communicator(NULL, buf), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_run_set_communicator(A.run, buf), MGRAD_ERR_UNSUPPORTED);
    ck_assert_int_eq(mgrad_run_set_communicator(A.run, NULL), MGRAD_OK);
}
static void w_run_set_communicator_fortran(void)
{
    FAILS(mgrad_run_set_communicator_fortran(NULL, 0), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_run_set_communicator_fortran(A.run, 0), MGRAD_ERR_UNSUPPORTED);
}
static void w_run_mpi_info(void)
{
    mgrad_mpi_info *info = (mgrad_mpi_info *)buf;
    UNTOUCHED_NOCTX(mgrad_run_mpi_info(NULL, info), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_run_mpi_info(A.run, NULL), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_run_mpi_info(A.run, info), MGRAD_ERR_VERSION);
    mgrad_mpi_info ok = MGRAD_MPI_INFO_INIT;
    ck_assert_int_eq(mgrad_run_mpi_info(A.run, &ok), MGRAD_OK);
    ck_assert_int_eq(ok.rank, 0);
    ck_assert_int_eq(ok.size, 1);
}
static void w_meta_gather_grad(void)
{
    int64_t T = SMALL.steps;
    UNTOUCHED_NOCTX(mgrad_meta_gather_grad(NULL, -1, MGRAD_DTYPE_F64, buf, T), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_meta_gather_grad(A.lr, -1, MGRAD_DTYPE_F64, NULL, T), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_meta_gather_grad(A.lr, -1, MGRAD_DTYPE_F64, buf, T), MGRAD_ERR_ORDER);
    UNTOUCHED(mgrad_meta_gather_grad(A.lr, 1, MGRAD_DTYPE_F64, buf, T), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_run_train(A.run, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_reverse(A.run), MGRAD_OK);
    UNTOUCHED(mgrad_meta_gather_grad(A.lr, 0, MGRAD_DTYPE_F32, buf, T - 1), MGRAD_ERR_SIZE);
    UNTOUCHED(mgrad_meta_gather_grad(A.lr, 0, (mgrad_dtype)3, buf, T), MGRAD_ERR_DTYPE);
    double *g = (double *)buf, ref[64];
    ck_assert(T <= 64);
    ck_assert_int_eq(mgrad_meta_get_grad(A.lr, MGRAD_DTYPE_F64, ref, T), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_gather_grad(A.lr, 0, MGRAD_DTYPE_F64, g, T), MGRAD_OK);
    ck_assert(memcmp(g, ref, (size_t)T * sizeof *g) == 0);
}

/* metagrad/score.h */
static void w_score_options_init(void)
{
    FAILS(mgrad_score_options_init(NULL, MGRAD_SCORE_OPTIONS_VERSION), MGRAD_ERR_NULL);
    UNTOUCHED_NOCTX(mgrad_score_options_init((mgrad_score_options *)buf, 2),
                    MGRAD_ERR_VERSION);
}
static void w_score_run(void)
{
    /* out and per_seed live in the sentinel buffer: its version word is the
       sentinel, so a call that got past validation would be refused there */
    mgrad_score *out = (mgrad_score *)buf;
    double *per_seed = (double *)(buf + 256);
    const mgrad_dataset *eval[1] = {A.val};
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = 3;
    o.batch_size = 2;
    mgrad_score_options so = MGRAD_SCORE_OPTIONS_INIT;
    so.seeds = 2;
    UNTOUCHED_NOCTX(mgrad_score_run(NULL, A.train, &o, &so, eval, 1, out, per_seed),
                    MGRAD_ERR_NULL);
    UNTOUCHED_NOCTX(mgrad_score_run(A.model, NULL, &o, &so, eval, 1, out, per_seed),
                    MGRAD_ERR_NULL);
    UNTOUCHED_NOCTX(mgrad_score_run(A.model, A.train, NULL, &so, eval, 1, out, per_seed),
                    MGRAD_ERR_NULL);
    UNTOUCHED_NOCTX(mgrad_score_run(A.model, A.train, &o, &so, NULL, 1, out, per_seed),
                    MGRAD_ERR_NULL);
    FAILS(mgrad_score_run(A.model, A.train, &o, &so, eval, 1, NULL, per_seed), MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_score_run(A.model, A.train, &o, &so, eval, 1, out, per_seed),
              MGRAD_ERR_VERSION);
    so.seeds = 0;
    UNTOUCHED(mgrad_score_run(A.model, A.train, &o, &so, eval, 1, out, per_seed),
              MGRAD_ERR_INVALID);
    so.seeds = 2;
    o.steps = 0;
    UNTOUCHED(mgrad_score_run(A.model, A.train, &o, &so, eval, 1, out, per_seed),
              MGRAD_ERR_INVALID);
}

#define W(name) {"mgrad_" #name, w_##name}
static const walk WALKS[] = {
    W(status_string),
    W(version_string),
    W(version_number),
    W(context_options_init),
    W(context_create),
    W(context_destroy),
    W(context_last_error),
    W(context_clear_error),
    W(context_dtype),
    W(context_memory),
    W(model_create),
    W(model_destroy),
    W(model_add_dense),
    W(model_add_activation),
    W(model_add_scale),
    W(model_mark),
    W(model_add_residual),
    W(model_num_params),
    W(model_output_size),
    W(model_get_params),
    W(model_set_params),
    W(model_init_params),
    W(dataset_create),
    W(dataset_destroy),
    W(dataset_set_labels),
    W(dataset_set_targets),
    W(dataset_set_weights),
    W(dataset_size),
    W(dataset_features),
    W(dataset_compact),
    W(run_options_init),
    W(run_create),
    W(run_destroy),
    W(run_train),
    W(run_reverse),
    W(run_num_params),
    W(run_get_params),
    W(run_evaluate),
    W(run_get_stats),
    W(meta_options_init),
    W(run_add_meta),
    W(meta_kind_of),
    W(meta_size),
    W(meta_get_value),
    W(meta_set_value),
    W(meta_get_grad),
    W(callback_model_init),
    W(run_create_callback),
    W(mgd_create),
    W(mgd_destroy),
    W(mgd_method_of),
    W(mgd_get_param_info),
    W(mgd_set_real),
    W(mgd_get_real),
    W(mgd_set_int),
    W(mgd_get_int),
    W(mgd_set_seed),
    W(mgd_get_seed),
    W(mgd_set_projection),
    W(mgd_get_projection),
    W(mgd_set_gradient_from),
    W(mgd_set_heldout),
    W(mgd_set_progress),
    W(mgd_set_basis),
    W(mgd_step),
    W(mgd_run),
    W(mgd_best),
    W(mgd_steps),
    W(mgd_set_lr_schedule),
    W(mgd_get_lr_schedule),
    W(mgd_step_size),
    W(mgd_set_map),
    W(mgd_get_map),
    W(mgd_trust_check),
    W(dataset_load_idx),
    W(dataset_load_npy),
    W(dataset_load_csv),
    W(dataset_load_fashion_mnist),
    W(dataset_normalize),
    W(dataset_scale),
    W(dataset_split),
    W(dataset_subset),
    W(dataset_shape),
    W(dataset_num_classes),
    W(dataset_get_inputs),
    W(dataset_get_labels),
    W(dataset_create_tokens),
    W(dataset_vocab),
    W(dataset_get_tokens),
    W(text_corpus_create),
    W(text_corpus_destroy),
    W(text_corpus_add_file),
    W(text_corpus_add_glob),
    W(text_corpus_size),
    W(text_corpus_document),
    W(text_corpus_count_examples),
    W(text_corpus_examples),
    W(model_add_conv2d),
    W(model_add_avg_pool),
    W(model_add_max_pool),
    W(model_add_global_avg_pool),
    W(model_add_batch_norm),
    W(model_add_layer_norm),
    W(model_add_dropout),
    W(model_add_flatten),
    W(model_add_resnet_block),
    W(model_add_token_embedding),
    W(model_add_positional_embedding),
    W(model_add_causal_self_attention),
    W(model_add_transformer_block),
    W(model_create_gpt),
    W(run_example_losses),
    W(run_set_shuffle_seed),
    W(run_context),
    W(run_has_batches),
    W(run_check_dataset),
    W(output_init),
    W(run_set_output),
    W(meta_run),
    W(meta_metasmoothness),
    W(run_hvp),
    W(run_hessian_spectrum),
    W(run_hessian_lanczos),
    W(mpi_available),
    W(run_set_communicator),
    W(run_set_communicator_fortran),
    W(run_mpi_info),
    W(meta_gather_grad),
    W(score_options_init),
    W(score_run),
};
#define NWALKS ((int)(sizeof WALKS / sizeof WALKS[0]))

/* Each walk runs on a fresh fixture (as its own Check test, via the loop). */
START_TEST(test_walk)
{
    api_setup();
    WALKS[_i].fn();
    api_teardown();
}
END_TEST

/* Every function of the version script has a walk.  The map is found
   through MGRAD_SOURCE_ROOT (set by tests/meson.build). */
START_TEST(test_walk_covers_map)
{
    const char *root = getenv("MGRAD_SOURCE_ROOT");
    if (root == NULL || root[0] == '\0') {
        printf("reliability: MGRAD_SOURCE_ROOT unset; map coverage not checked\n");
        return;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/lib/libmetagrad.map", root);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char line[512];
    int exported = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        char name[256];
        if (sscanf(line, " %255[a-z0-9_];", name) != 1 || strncmp(name, "mgrad_", 6) != 0)
            continue;
        exported++;
        int found = 0;
        for (int i = 0; i < NWALKS; i++)
            if (strcmp(WALKS[i].name, name) == 0) found = 1;
        ck_assert_msg(found, "%s is exported but has no walk in test_api_walk.c", name);
    }
    fclose(f);
    ck_assert_int_eq(exported, NWALKS);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("api_walk");
    TCase *tc = tcase_create("nulls");
    tcase_add_loop_test(tc, test_walk, 0, NWALKS);
    tcase_add_test(tc, test_walk_covers_map);
    suite_add_tcase(s, tc);
    return s;
}
