/*
 * scenario.h - the scenario shared by the failure-mode suites (header-only,
 * like testutil.h): a counting caller allocator that can fail at attempt k
 * (or from k on), and a "world", everything one scenario creates, built by
 * idempotent steps so that a step which failed can be retried.
 *
 * Used by test_alloc_fail.c, test_threads.c, test_api_walk.c and
 * test_destroy_order.c; docs/reliability.md describes those suites.
 */
#ifndef MGRAD_TEST_SCENARIO_H
#define MGRAD_TEST_SCENARIO_H

#include <check.h>
#include <stdint.h>
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

static inline void *test_malloc(size_t size, void *user_data)
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

static inline void test_free(void *ptr, void *user_data)
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

/* Status of a step that could not run because an earlier one failed. */
#define SKIPPED 1000

static inline void make_inputs(const world_config *c, uint64_t seed, int64_t n, double *x,
                               int32_t *labels)
{
    uint64_t s = seed;
    tu_fill(x, (size_t)(n * c->features), &s, 1.5);
    for (int64_t i = 0; i < n; i++)
        labels[i] = (int32_t)((tu_rand(&s) + 1) * 0.5 * (double)c->classes) %
                    (int32_t)c->classes;
}

static inline mgrad_status make_dataset(world *w, mgrad_dataset **slot, int64_t n,
                                        uint64_t seed)
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

static inline mgrad_status step_context(world *w)
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

static inline mgrad_status step_model(world *w)
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
static inline mgrad_status step_layer(world *w, int which)
{
    if (w->model == NULL) return SKIPPED;
    switch (which) {
    case 0: return mgrad_model_add_dense(w->model, w->cfg.hidden, MGRAD_INIT_ORTHOGONAL);
    case 1: return mgrad_model_add_activation(w->model, MGRAD_ACTIVATION_TANH);
    case 2: return mgrad_model_add_dense(w->model, w->cfg.classes, MGRAD_INIT_XAVIER_NORMAL);
    default: return mgrad_model_add_scale(w->model, 0.5);
    }
}
static inline mgrad_status step_layer0(world *w) { return step_layer(w, 0); }
static inline mgrad_status step_layer1(world *w) { return step_layer(w, 1); }
static inline mgrad_status step_layer2(world *w) { return step_layer(w, 2); }
static inline mgrad_status step_layer3(world *w) { return step_layer(w, 3); }

static inline mgrad_status step_reinit(world *w)
{
    if (w->model == NULL) return SKIPPED;
    return mgrad_model_init_params(w->model, w->cfg.seed + 100);
}

static inline mgrad_status step_train_set(world *w)
{
    return make_dataset(w, &w->train, w->cfg.ntrain, 11);
}

static inline mgrad_status step_train_weights(world *w)
{
    if (w->train == NULL) return SKIPPED;
    double *v = malloc((size_t)w->cfg.ntrain * sizeof *v);
    for (int64_t i = 0; i < w->cfg.ntrain; i++) v[i] = 0.5 + 0.1 * (double)(i % 5);
    mgrad_status s = mgrad_dataset_set_weights(w->train, MGRAD_DTYPE_F64, v, w->cfg.ntrain);
    free(v);
    return s;
}

static inline mgrad_status step_val_set(world *w)
{
    return make_dataset(w, &w->val, w->cfg.nval, 23);
}
static inline mgrad_status step_pool_set(world *w)
{
    return make_dataset(w, &w->pool, w->cfg.npool, 37);
}

static inline mgrad_status step_run(world *w)
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

static inline mgrad_status step_metas(world *w)
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

static inline mgrad_status step_set_lr(world *w)
{
    if (w->meta[0] == NULL) return SKIPPED;
    double lr[64];
    for (int64_t t = 0; t < w->cfg.steps; t++) lr[t] = 0.3 - 0.02 * (double)t;
    return mgrad_meta_set_value(w->meta[0], MGRAD_DTYPE_F64, lr, w->cfg.steps);
}

static inline mgrad_status step_train(world *w)
{
    if (w->run == NULL) return SKIPPED;
    double phi = -12345;
    mgrad_status s = mgrad_run_train(w->run, &phi);
    if (s != MGRAD_OK) ck_assert(phi == -12345);
    else w->phi = phi;
    return s;
}

static inline mgrad_status step_reverse(world *w)
{
    if (w->run == NULL) return SKIPPED;
    return mgrad_run_reverse(w->run);
}

static inline mgrad_status step_get_params(world *w)
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

static inline mgrad_status step_get_grads(world *w)
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

static inline mgrad_status step_evaluate(world *w)
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

static inline void world_init(world *w, const world_config *cfg, alloc_state *as)
{
    memset(w, 0, sizeof *w);
    w->cfg = *cfg;
    w->as = as;
}

/* Destroy the handles (context first: the others keep it alive) and free
   the result buffers. */
static inline void world_destroy(world *w)
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
static inline void world_run_all(world *w)
{
    for (int i = 0; i < NSTEPS; i++) {
        mgrad_status s = STEPS[i].fn(w);
        ck_assert_msg(s == MGRAD_OK, "%s: %s (%s)", STEPS[i].name, mgrad_status_string(s),
                      mgrad_context_last_error(w->ctx));
    }
}

/* The two worlds computed the same bits. */
static inline void world_compare(const world *a, const world *b, const char *what)
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

#endif
