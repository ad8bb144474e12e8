/*
 * test_reliability.c - failure modes of the whole public API (issue 9):
 *
 *   alloc     a caller allocator that fails at allocation k, for every k
 *             until a whole scenario succeeds: NOMEM and a message each time,
 *             no leak, out-pointers untouched, and the surviving handles keep
 *             working (the retried scenario is bit-identical to a clean one);
 *             also an allocator that keeps failing from k on;
 *   numeric   divergence in training and in the reverse pass is reported
 *             with the step, and the run stays reusable; non-finite values
 *             are refused and change nothing;
 *   threads   two contexts in two threads at once give the bits they give
 *             one after the other;
 *   nulls     every function of lib/libmetagrad.map given NULL handles, NULL
 *             outputs, wrong sizes, dtypes and order: a status, a message
 *             where a context is known, caller buffers untouched;
 *   destroy   every order of destroying six handles frees everything.
 *
 * docs/reliability.md describes the suite and its figures.
 */
#include <check.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metagrad.h"
#include "testutil.h"

/* ---- a counting allocator that can fail -------------------------------- */

typedef struct alloc_state {
    long attempts;   /* calls of malloc_fn, failed ones included */
    long allocs;     /* blocks handed out */
    long frees;      /* blocks given back */
    long fail_at;    /* attempt that fails; -1: none */
    int sticky;      /* fail every attempt from fail_at on */
    long failures;
} alloc_state;

static void *test_malloc(size_t size, void *user_data)
{
    alloc_state *a = user_data;
    long k = a->attempts++;
    if (a->fail_at >= 0 && (k == a->fail_at || (a->sticky && k > a->fail_at))) {
        a->failures++;
        return NULL;
    }
    void *p = malloc(size);
    if (p != NULL) a->allocs++;
    return p;
}

static void test_free(void *ptr, void *user_data)
{
    alloc_state *a = user_data;
    if (ptr == NULL) return;
    a->frees++;
    free(ptr);
}

/* ---- a world: everything a scenario creates ----------------------------- */

typedef struct world_config {
    mgrad_dtype dtype;
    uint64_t seed;
    int64_t features, hidden, classes, ntrain, nval, npool, steps, batch;
    mgrad_checkpoint checkpoint;
    int64_t slots;
} world_config;

static const world_config SMALL = {MGRAD_DTYPE_F64, 3, 4, 6, 3, 12, 8, 5, 6, 4,
                                   MGRAD_CHECKPOINT_BINOMIAL, 2};

#define NMETA 8
static const mgrad_meta_kind META_KINDS[NMETA] = {
    MGRAD_META_LR_SCHEDULE, MGRAD_META_WEIGHT_DECAY,  MGRAD_META_MOMENTUM,
    MGRAD_META_DATA_WEIGHTS, MGRAD_META_POOL_WEIGHTS, MGRAD_META_INPUTS,
    MGRAD_META_SOFT_LABELS,  MGRAD_META_INITIAL_PARAMS,
};
static const int64_t INPUT_ROWS[2] = {1, 3};

typedef struct world {
    world_config cfg;
    alloc_state *as;          /* NULL: the default allocator */
    mgrad_context *ctx;
    mgrad_model *model;
    mgrad_dataset *train, *val, *pool;
    mgrad_run *run;
    mgrad_meta *meta[NMETA];
    int next_meta;
    /* results */
    double phi, loss, acc;
    int64_t num_params;
    double *theta;            /* [P] θ_T */
    double *grad[NMETA];      /* dφ/dz */
    int64_t grad_len[NMETA];
} world;

/* A sentinel that no API call ever writes into a handle. */
#define SENTINEL_PTR ((void *)(uintptr_t)0x5e5e5e5e)
/* Status of a step that could not run because an earlier one failed. */
#define SKIPPED 1000

static void make_inputs(const world_config *c, uint64_t seed, int64_t n, double *x,
                        int32_t *labels)
{
    uint64_t s = seed;
    tu_fill(x, (size_t)(n * c->features), &s, 1.5);
    for (int64_t i = 0; i < n; i++)
        labels[i] = (int32_t)((tu_rand(&s) + 1) * 0.5 * (double)c->classes) %
                    (int32_t)c->classes;
}

static mgrad_status make_dataset(world *w, mgrad_dataset **slot, int64_t n, uint64_t seed)
{
    const world_config *c = &w->cfg;
    if (w->ctx == NULL) return SKIPPED;
    double *x = malloc((size_t)(n * c->features) * sizeof *x);
    int32_t *y = malloc((size_t)n * sizeof *y);
    make_inputs(c, seed, n, x, y);
    int64_t shape[1] = {c->features};
    mgrad_status s = MGRAD_OK;
    if (*slot == NULL) {
        mgrad_dataset *ds = SENTINEL_PTR;
        s = mgrad_dataset_create(&ds, w->ctx, n, 1, shape, MGRAD_DTYPE_F64, x);
        if (s != MGRAD_OK) {
            ck_assert_ptr_eq(ds, SENTINEL_PTR);
        } else {
            *slot = ds;
        }
    }
    if (s == MGRAD_OK) s = mgrad_dataset_set_labels(*slot, y, n, (int32_t)c->classes);
    free(x);
    free(y);
    return s;
}

/* The steps of the scenario.  Each is idempotent once it has succeeded, so
   that a step which failed can be retried. */

static mgrad_status step_context(world *w)
{
    mgrad_context_options o = MGRAD_CONTEXT_OPTIONS_INIT;
    o.dtype = w->cfg.dtype;
    o.seed = w->cfg.seed;
    if (w->as != NULL) {
        o.malloc_fn = test_malloc;
        o.free_fn = test_free;
        o.alloc_user_data = w->as;
    }
    mgrad_context *ctx = SENTINEL_PTR;
    mgrad_status s = mgrad_context_create(&ctx, &o);
    if (s != MGRAD_OK)
        ck_assert_ptr_eq(ctx, SENTINEL_PTR);
    else
        w->ctx = ctx;
    return s;
}

static mgrad_status step_model(world *w)
{
    if (w->ctx == NULL) return SKIPPED;
    int64_t shape[1] = {w->cfg.features};
    mgrad_model *m = SENTINEL_PTR;
    mgrad_status s = mgrad_model_create(&m, w->ctx, 1, shape);
    if (s != MGRAD_OK)
        ck_assert_ptr_eq(m, SENTINEL_PTR);
    else
        w->model = m;
    return s;
}

/* The layers are appended one per step; a failed append must leave the
   model as it was, so the retry appends exactly one layer. */
static mgrad_status step_layer(world *w, int which)
{
    if (w->model == NULL) return SKIPPED;
    switch (which) {
    case 0: return mgrad_model_add_dense(w->model, w->cfg.hidden, MGRAD_INIT_ORTHOGONAL);
    case 1: return mgrad_model_add_activation(w->model, MGRAD_ACTIVATION_TANH);
    case 2: return mgrad_model_add_dense(w->model, w->cfg.classes, MGRAD_INIT_XAVIER_NORMAL);
    default: return mgrad_model_add_scale(w->model, 0.5);
    }
}
static mgrad_status step_layer0(world *w) { return step_layer(w, 0); }
static mgrad_status step_layer1(world *w) { return step_layer(w, 1); }
static mgrad_status step_layer2(world *w) { return step_layer(w, 2); }
static mgrad_status step_layer3(world *w) { return step_layer(w, 3); }

static mgrad_status step_reinit(world *w)
{
    if (w->model == NULL) return SKIPPED;
    return mgrad_model_init_params(w->model, w->cfg.seed + 100);
}

static mgrad_status step_train_set(world *w)
{
    return make_dataset(w, &w->train, w->cfg.ntrain, 11);
}

static mgrad_status step_train_weights(world *w)
{
    if (w->train == NULL) return SKIPPED;
    double *v = malloc((size_t)w->cfg.ntrain * sizeof *v);
    for (int64_t i = 0; i < w->cfg.ntrain; i++) v[i] = 0.5 + 0.1 * (double)(i % 5);
    mgrad_status s = mgrad_dataset_set_weights(w->train, MGRAD_DTYPE_F64, v, w->cfg.ntrain);
    free(v);
    return s;
}

static mgrad_status step_val_set(world *w) { return make_dataset(w, &w->val, w->cfg.nval, 23); }
static mgrad_status step_pool_set(world *w)
{
    return make_dataset(w, &w->pool, w->cfg.npool, 37);
}

static mgrad_status step_run(world *w)
{
    if (w->model == NULL || w->train == NULL || w->val == NULL) return SKIPPED;
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = w->cfg.steps;
    o.batch_size = w->cfg.batch;
    o.shuffle_seed = 5;
    o.lr = 0.2;
    o.momentum = 0.5;
    o.weight_decay = 0.01;
    o.validation = w->val;
    o.checkpoint = w->cfg.checkpoint;
    o.checkpoint_slots = w->cfg.slots;
    mgrad_run *run = SENTINEL_PTR;
    mgrad_status s = mgrad_run_create(&run, w->model, w->train, &o);
    if (s != MGRAD_OK)
        ck_assert_ptr_eq(run, SENTINEL_PTR);
    else
        w->run = run;
    return s;
}

static mgrad_status step_metas(world *w)
{
    if (w->run == NULL || w->pool == NULL) return SKIPPED;
    while (w->next_meta < NMETA) {
        int i = w->next_meta;
        mgrad_meta_options mo = MGRAD_META_OPTIONS_INIT;
        if (META_KINDS[i] == MGRAD_META_DATA_WEIGHTS) {
            mo.step_begin = 1;
            mo.step_end = 4;
        }
        if (META_KINDS[i] == MGRAD_META_POOL_WEIGHTS) {
            mo.step = 2;
            mo.pool = w->pool;
        }
        if (META_KINDS[i] == MGRAD_META_INPUTS) {
            mo.rows = INPUT_ROWS;
            mo.num_rows = 2;
        }
        mgrad_meta *m = SENTINEL_PTR;
        mgrad_status s = mgrad_run_add_meta(&m, w->run, META_KINDS[i], &mo);
        if (s != MGRAD_OK) {
            ck_assert_ptr_eq(m, SENTINEL_PTR);
            return s;
        }
        w->meta[i] = m;
        w->next_meta++;
    }
    return MGRAD_OK;
}

static mgrad_status step_set_lr(world *w)
{
    if (w->meta[0] == NULL) return SKIPPED;
    double lr[64];
    for (int64_t t = 0; t < w->cfg.steps; t++) lr[t] = 0.3 - 0.02 * (double)t;
    return mgrad_meta_set_value(w->meta[0], MGRAD_DTYPE_F64, lr, w->cfg.steps);
}

static mgrad_status step_train(world *w)
{
    if (w->run == NULL) return SKIPPED;
    double phi = -12345;
    mgrad_status s = mgrad_run_train(w->run, &phi);
    if (s != MGRAD_OK) ck_assert(phi == -12345);
    else w->phi = phi;
    return s;
}

static mgrad_status step_reverse(world *w)
{
    if (w->run == NULL) return SKIPPED;
    return mgrad_run_reverse(w->run);
}

static mgrad_status step_get_params(world *w)
{
    if (w->run == NULL) return SKIPPED;
    int64_t P = 0;
    mgrad_status s = mgrad_run_num_params(w->run, &P);
    if (s != MGRAD_OK) return s;
    if (w->theta == NULL) {
        w->num_params = P;
        w->theta = malloc((size_t)P * sizeof *w->theta);
    }
    for (int64_t i = 0; i < P; i++) w->theta[i] = -7.5;
    s = mgrad_run_get_params(w->run, MGRAD_DTYPE_F64, w->theta, P);
    if (s != MGRAD_OK) {
        int64_t i = 0;
        while (i < P && w->theta[i] == -7.5) i++;
        ck_assert_msg(i == P, "a failed mgrad_run_get_params wrote θ[%lld]", (long long)i);
    }
    return s;
}

static mgrad_status step_get_grads(world *w)
{
    for (int i = 0; i < NMETA; i++) {
        if (w->meta[i] == NULL) return SKIPPED;
        int64_t n = 0;
        mgrad_status s = mgrad_meta_size(w->meta[i], &n);
        if (s != MGRAD_OK) return s;
        if (w->grad[i] == NULL) {
            w->grad[i] = malloc((size_t)n * sizeof(double));
            w->grad_len[i] = n;
        }
        s = mgrad_meta_get_grad(w->meta[i], MGRAD_DTYPE_F64, w->grad[i], n);
        if (s != MGRAD_OK) return s;
    }
    return MGRAD_OK;
}

static mgrad_status step_evaluate(world *w)
{
    if (w->run == NULL || w->val == NULL) return SKIPPED;
    return mgrad_run_evaluate(w->run, w->val, &w->loss, &w->acc);
}

typedef struct step {
    const char *name;
    mgrad_status (*fn)(world *w);
} step;

static const step STEPS[] = {
    {"mgrad_context_create", step_context},
    {"mgrad_model_create", step_model},
    {"mgrad_model_add_dense(ORTHOGONAL)", step_layer0},
    {"mgrad_model_add_activation", step_layer1},
    {"mgrad_model_add_dense(XAVIER)", step_layer2},
    {"mgrad_model_add_scale", step_layer3},
    {"mgrad_model_init_params", step_reinit},
    {"training set", step_train_set},
    {"mgrad_dataset_set_weights", step_train_weights},
    {"validation set", step_val_set},
    {"pool", step_pool_set},
    {"mgrad_run_create", step_run},
    {"mgrad_run_add_meta", step_metas},
    {"mgrad_meta_set_value", step_set_lr},
    {"mgrad_run_train", step_train},
    {"mgrad_run_reverse", step_reverse},
    {"mgrad_run_reverse (again)", step_reverse},
    {"mgrad_run_get_params", step_get_params},
    {"mgrad_meta_get_grad", step_get_grads},
    {"mgrad_run_evaluate", step_evaluate},
};
#define NSTEPS ((int)(sizeof STEPS / sizeof STEPS[0]))

static void world_init(world *w, const world_config *cfg, alloc_state *as)
{
    memset(w, 0, sizeof *w);
    w->cfg = *cfg;
    w->as = as;
}

/* Destroy the handles (context first: the others keep it alive) and free
   the result buffers. */
static void world_destroy(world *w)
{
    mgrad_context_destroy(w->ctx);
    mgrad_model_destroy(w->model);
    mgrad_dataset_destroy(w->pool);
    mgrad_dataset_destroy(w->train);
    mgrad_run_destroy(w->run);
    mgrad_dataset_destroy(w->val);
    free(w->theta);
    for (int i = 0; i < NMETA; i++) free(w->grad[i]);
    memset(w, 0, sizeof *w);
}

/* Run every step; each must succeed. */
static void world_run_all(world *w)
{
    for (int i = 0; i < NSTEPS; i++) {
        mgrad_status s = STEPS[i].fn(w);
        ck_assert_msg(s == MGRAD_OK, "%s: %s (%s)", STEPS[i].name, mgrad_status_string(s),
                      mgrad_context_last_error(w->ctx));
    }
}

/* The two worlds computed the same bits. */
static void world_compare(const world *a, const world *b, const char *what)
{
    ck_assert_msg(memcmp(&a->phi, &b->phi, sizeof a->phi) == 0, "%s: φ differs", what);
    ck_assert_msg(memcmp(&a->loss, &b->loss, sizeof a->loss) == 0, "%s: loss differs", what);
    ck_assert_int_eq(a->num_params, b->num_params);
    ck_assert_msg(memcmp(a->theta, b->theta, (size_t)a->num_params * sizeof(double)) == 0,
                  "%s: θ_T differs", what);
    for (int i = 0; i < NMETA; i++) {
        ck_assert_int_eq(a->grad_len[i], b->grad_len[i]);
        ck_assert_msg(memcmp(a->grad[i], b->grad[i], (size_t)a->grad_len[i] * sizeof(double))
                      == 0, "%s: metagradient %d differs", what, i);
    }
}

/* ---- 1. allocation failure at every allocation point -------------------- */

START_TEST(test_alloc_fail_each_point)
{
    /* A clean pass: the reference results and the number of attempts. */
    alloc_state ref_as = {0, 0, 0, -1, 0, 0};
    world ref;
    world_init(&ref, &SMALL, &ref_as);
    world_run_all(&ref);
    long points = ref_as.attempts;
    ck_assert_int_gt(points, 20);

    int failed_in[NSTEPS];
    memset(failed_in, 0, sizeof failed_in);
    long k;
    for (k = 0;; k++) {
        alloc_state as = {0, 0, 0, k, 0, 0};
        world w;
        world_init(&w, &SMALL, &as);
        int failed = -1;
        for (int i = 0; i < NSTEPS; i++) {
            if (w.ctx != NULL) mgrad_context_clear_error(w.ctx);
            long before = as.failures;
            mgrad_status s = STEPS[i].fn(&w);
            if (s != MGRAD_OK) {
                ck_assert_msg(as.failures == before + 1,
                              "k=%ld: %s failed with %s without an allocation failure (%s)",
                              k, STEPS[i].name, mgrad_status_string(s),
                              mgrad_context_last_error(w.ctx));
                ck_assert_msg(s == MGRAD_ERR_NOMEM, "k=%ld: %s returned %s, not NOMEM", k,
                              STEPS[i].name, mgrad_status_string(s));
                if (w.ctx != NULL) {
                    const char *msg = mgrad_context_last_error(w.ctx);
                    ck_assert_msg(strstr(msg, "memory") != NULL,
                                  "k=%ld: %s: message \"%s\" does not say out of memory", k,
                                  STEPS[i].name, msg);
                }
                failed = i;
                failed_in[i]++;
                /* The surviving handles keep working: retry with memory. */
                as.fail_at = -1;
                s = STEPS[i].fn(&w);
                ck_assert_msg(s == MGRAD_OK, "k=%ld: retrying %s after NOMEM: %s (%s)", k,
                              STEPS[i].name, mgrad_status_string(s),
                              mgrad_context_last_error(w.ctx));
            }
        }
        if (failed >= 0) {
            /* The retried scenario computed exactly the clean one's bits. */
            char what[96];
            snprintf(what, sizeof what, "after NOMEM at allocation %ld in %s", k,
                     STEPS[failed].name);
            world_compare(&ref, &w, what);
        }
        uint64_t current = 1;
        ck_assert_int_eq(mgrad_context_memory(w.ctx, &current, NULL), MGRAD_OK);
        ck_assert(current > 0);
        world_destroy(&w);
        ck_assert_msg(as.allocs == as.frees, "k=%ld: %ld blocks allocated, %ld freed", k,
                      as.allocs, as.frees);
        if (failed < 0) {
            ck_assert_int_eq(as.failures, 0);
            break;
        }
        ck_assert_int_eq(as.failures, 1);
    }
    /* Every attempt of the clean run was made to fail once. */
    ck_assert_int_eq(k, points);
    printf("reliability: %ld allocation points failed in turn; per step:", points);
    for (int i = 0; i < NSTEPS; i++)
        if (failed_in[i] > 0) printf(" %s=%d", STEPS[i].name, failed_in[i]);
    printf("\n");
    world_destroy(&ref);
    ck_assert_int_eq(ref_as.allocs, ref_as.frees);
}
END_TEST

/* From allocation k on, every allocation fails.  Whatever still exists must
   answer each later call with OK or a clean error, and destroying it must
   free everything. */
START_TEST(test_alloc_fail_sticky)
{
    long k;
    for (k = 0;; k++) {
        alloc_state as = {0, 0, 0, k, 1, 0};
        world w;
        world_init(&w, &SMALL, &as);
        int any_failed = 0;
        for (int i = 0; i < NSTEPS; i++) {
            mgrad_status s = STEPS[i].fn(&w);
            if (s == SKIPPED) continue;
            ck_assert_msg(s == MGRAD_OK || s == MGRAD_ERR_NOMEM || s == MGRAD_ERR_ORDER,
                          "k=%ld: %s returned %s (%s)", k, STEPS[i].name,
                          mgrad_status_string(s), mgrad_context_last_error(w.ctx));
            if (s != MGRAD_OK) any_failed = 1;
        }
        world_destroy(&w);
        ck_assert_msg(as.allocs == as.frees, "k=%ld: %ld blocks allocated, %ld freed", k,
                      as.allocs, as.frees);
        if (!any_failed) break;
    }
    ck_assert_int_gt(k, 20);
    printf("reliability: sticky failure from each of %ld allocation points\n", k);
}
END_TEST

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
    int64_t shape[1] = {NF};
    ck_assert_int_eq(mgrad_model_create(&fx->model, fx->ctx, 1, shape), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(fx->model, 5, MGRAD_INIT_DEFAULT), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_activation(fx->model, MGRAD_ACTIVATION_TANH), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(fx->model, 2, MGRAD_INIT_DEFAULT), MGRAD_OK);
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
    mgrad_run_destroy(fx->run);
    mgrad_dataset_destroy(fx->train);
    mgrad_dataset_destroy(fx->val);
    mgrad_model_destroy(fx->model);
    mgrad_context_destroy(fx->ctx);
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

/* ---- 3. thread safety ---------------------------------------------------- */

static const world_config THREAD_CFG[2] = {
    {MGRAD_DTYPE_F64, 1, 16, 48, 4, 64, 32, 16, 10, 16, MGRAD_CHECKPOINT_REPLAY, 6},
    {MGRAD_DTYPE_F32, 2, 12, 40, 5, 48, 24, 12, 12, 8, MGRAD_CHECKPOINT_STORE_ALL, 0},
};

typedef struct thread_job {
    const world_config *cfg;
    world w;
    alloc_state as;
} thread_job;

static void *thread_main(void *arg)
{
    thread_job *j = arg;
    memset(&j->as, 0, sizeof j->as);
    j->as.fail_at = -1;
    world_init(&j->w, j->cfg, &j->as);
    world_run_all(&j->w);
    return NULL;
}

START_TEST(test_two_contexts_two_threads)
{
    thread_job seq[2], par[2];
    for (int i = 0; i < 2; i++) {
        seq[i].cfg = &THREAD_CFG[i];
        thread_main(&seq[i]);
    }
    for (int rep = 0; rep < 3; rep++) {
        pthread_t th[2];
        for (int i = 0; i < 2; i++) {
            par[i].cfg = &THREAD_CFG[i];
            ck_assert_int_eq(pthread_create(&th[i], NULL, thread_main, &par[i]), 0);
        }
        for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        for (int i = 0; i < 2; i++) {
            world_compare(&seq[i].w, &par[i].w, i == 0 ? "thread 0" : "thread 1");
            world_destroy(&par[i].w);
            ck_assert_int_eq(par[i].as.allocs, par[i].as.frees);
        }
    }
    for (int i = 0; i < 2; i++) world_destroy(&seq[i].w);
}
END_TEST

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
static void w_mgd_options_init(void)
{
    FAILS(mgrad_mgd_options_init(NULL, MGRAD_MGD_OPTIONS_VERSION), MGRAD_ERR_NULL);
    UNTOUCHED_NOCTX(mgrad_mgd_options_init((mgrad_mgd_options *)buf, 0), MGRAD_ERR_VERSION);
}
static void w_mgd_create(void)
{
    mgrad_mgd **out = (mgrad_mgd **)buf;
    UNTOUCHED_NOCTX(mgrad_mgd_create(out, NULL, NULL), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_mgd_create(NULL, A.lr, NULL), MGRAD_ERR_NULL);
    mgrad_mgd_options o = MGRAD_MGD_OPTIONS_INIT;
    o.version = 0;
    UNTOUCHED(mgrad_mgd_create(out, A.lr, &o), MGRAD_ERR_VERSION);
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
static void w_run_example_losses(void)
{
    int64_t n = SMALL.nval;
    UNTOUCHED_NOCTX(mgrad_run_example_losses(NULL, A.val, MGRAD_DTYPE_F64, buf, n),
                    MGRAD_ERR_NULL);
    UNTOUCHED(mgrad_run_example_losses(A.run, NULL, MGRAD_DTYPE_F64, buf, n), MGRAD_ERR_NULL);
    FAILS_MSG(mgrad_run_example_losses(A.run, A.val, MGRAD_DTYPE_F64, NULL, n), MGRAD_ERR_NULL);
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
    W(mgd_options_init),
    W(mgd_create),
    W(mgd_destroy),
    W(mgd_step),
    W(mgd_run),
    W(mgd_best),
    W(mgd_steps),
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
    W(model_add_conv2d),
    W(model_add_avg_pool),
    W(model_add_max_pool),
    W(model_add_global_avg_pool),
    W(model_add_batch_norm),
    W(model_add_layer_norm),
    W(model_add_dropout),
    W(model_add_flatten),
    W(model_add_resnet_block),
    W(run_example_losses),
    W(run_set_shuffle_seed),
    W(meta_metasmoothness),
    W(run_hvp),
    W(run_hessian_spectrum),
    W(run_hessian_lanczos),
    W(mpi_available),
    W(run_set_communicator),
    W(run_set_communicator_fortran),
    W(run_mpi_info),
    W(meta_gather_grad),
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
        ck_assert_msg(found, "%s is exported but has no walk in test_reliability.c", name);
    }
    fclose(f);
    ck_assert_int_eq(exported, NWALKS);
}
END_TEST

/* ---- 5. destroy order --------------------------------------------------- */

enum { NH = 6 };

static void destroy_handle(world *w, int which)
{
    switch (which) {
    case 0: mgrad_context_destroy(w->ctx); w->ctx = NULL; break;
    case 1: mgrad_model_destroy(w->model); w->model = NULL; break;
    case 2: mgrad_dataset_destroy(w->train); w->train = NULL; break;
    case 3: mgrad_dataset_destroy(w->val); w->val = NULL; break;
    case 4: mgrad_dataset_destroy(w->pool); w->pool = NULL; break;
    default: mgrad_run_destroy(w->run); w->run = NULL; break;
    }
}

static int next_permutation(int *a, int n)
{
    int i = n - 2;
    while (i >= 0 && a[i] >= a[i + 1]) i--;
    if (i < 0) return 0;
    int j = n - 1;
    while (a[j] <= a[i]) j--;
    int t = a[i];
    a[i] = a[j];
    a[j] = t;
    for (int l = i + 1, r = n - 1; l < r; l++, r--) {
        t = a[l];
        a[l] = a[r];
        a[r] = t;
    }
    return 1;
}

START_TEST(test_destroy_orders)
{
    int order[NH] = {0, 1, 2, 3, 4, 5};
    long count = 0;
    /* Only the run's creation and registrations: training is shared by
       every order and adds nothing to what destruction frees. */
    do {
        alloc_state as = {0, 0, 0, -1, 0, 0};
        world w;
        world_init(&w, &SMALL, &as);
        for (int i = 0; i <= 12; i++) ck_assert_int_eq(STEPS[i].fn(&w), MGRAD_OK);
        for (int i = 0; i < NH; i++) {
            /* The run outlives the others' handles and still works. */
            if (w.run != NULL && i == NH - 1) {
                mgrad_status s = mgrad_run_train(w.run, NULL);
                ck_assert_msg(s == MGRAD_OK, "train with only the run left: %s",
                              mgrad_status_string(s));
                ck_assert_int_eq(mgrad_run_reverse(w.run), MGRAD_OK);
            }
            destroy_handle(&w, order[i]);
        }
        ck_assert_msg(as.allocs == as.frees, "order %d%d%d%d%d%d: %ld allocated, %ld freed",
                      order[0], order[1], order[2], order[3], order[4], order[5], as.allocs,
                      as.frees);
        count++;
    } while (next_permutation(order, NH));
    ck_assert_int_eq(count, 720);
    printf("reliability: %ld destroy orders of %d handles\n", count, NH);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("reliability");
    TCase *tc = tcase_create("alloc");
    tcase_add_test(tc, test_alloc_fail_each_point);
    tcase_add_test(tc, test_alloc_fail_sticky);
    suite_add_tcase(s, tc);

    tc = tcase_create("numeric");
    tcase_add_test(tc, test_train_divergence_f64);
    tcase_add_test(tc, test_train_divergence_f32);
    tcase_add_test(tc, test_reverse_divergence);
    tcase_add_test(tc, test_nonfinite_values_refused);
    tcase_add_test(tc, test_f32_overflow_refused);
    suite_add_tcase(s, tc);

    tc = tcase_create("threads");
    tcase_add_test(tc, test_two_contexts_two_threads);
    suite_add_tcase(s, tc);

    tc = tcase_create("nulls");
    tcase_add_loop_test(tc, test_walk, 0, NWALKS);
    tcase_add_test(tc, test_walk_covers_map);
    suite_add_tcase(s, tc);

    tc = tcase_create("destroy");
    tcase_add_test(tc, test_destroy_orders);
    suite_add_tcase(s, tc);
    return s;
}
