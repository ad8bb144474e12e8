/*
 * test_checkpoint.c - whole runs under every checkpoint schedule give
 * metagradients bit-identical to store-all's.
 *
 * For SGD, SGD + momentum and Adam (eps_root > 0), in f32 and f64, and for
 * T = 37 (a power of no k used) and T = 1: register every metaparameter kind
 * at once (two disjoint DATA_WEIGHTS windows, pool weights on a separate pool
 * and on the training set, input rows, soft labels, LR schedule, weight
 * decay, momentum/β1, β2 for Adam, θ0), train and reverse under store-all,
 * REPLAY(k = 2, 3, 4), binomial with 1, 2, 5 and T − 1 slots, AUTO with a
 * byte budget that forces binomial, and store-all spilling to a mkdtemp
 * directory; compare φ, θ_T and every gradient with memcmp.  The run's
 * statistics are checked against the schedules: steps recomputed (the
 * Griewank–Walther closed form for binomial, a simulation of the schedule
 * for REPLAY), reverse steps, the policy and slots reported, peak bytes.
 *
 * Every (optimizer, dtype, T) runs twice: with batch 6, where the forward
 * memo is off (it would cost more than a quarter of a state), and with
 * batch 2, where every slot carries one (docs/checkpointing.md, "Forward
 * memo"); the memo's size and hits are checked against the schedule.
 *
 * Also: budgets too small are MGRAD_ERR_BUDGET at mgrad_run_create with a
 * message naming the minimum, and the "done when" run: T = 4096 with
 * 24 binomial slots on an 8-16-3 MLP (batch 4) equals store-all bit for bit.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fixtures.h"
#include "metagrad.h"
#include "optim/optim.h"
#include "store/schedule.h"
#include "testutil.h"

enum { NTRAIN = 24, NVAL = 16, NPOOL = 10, F = 6, H = 8, C = 3, B = 6, MAXMETAS = 12 };
/* The batch sizes of the two worlds: no memo, memo. */
static const int64_t BATCHES[] = {B, 2};

typedef struct config {
    const char *name;
    mgrad_optimizer opt;
    double lr, momentum, weight_decay, eps_root;
} config;

static const config CONFIGS[] = {
    {"sgd", MGRAD_OPTIMIZER_SGD, 0.3, 0.0, 0.01, 0},
    {"momentum", MGRAD_OPTIMIZER_SGD, 0.2, 0.9, 0.01, 0},
    {"adam", MGRAD_OPTIMIZER_ADAM, 0.02, 0.9, 0.01, 1e-4},
};
#define NCONFIGS ((int)(sizeof CONFIGS / sizeof CONFIGS[0]))

static const int64_t STEPS[] = {37, 1};
#define NSTEPS ((int)(sizeof STEPS / sizeof STEPS[0]))

static const mgrad_dtype DTYPES[] = {MGRAD_DTYPE_F32, MGRAD_DTYPE_F64};

/* ---- fixtures ----------------------------------------------------------- */

/* Context, model and data shared by the runs of one (config, dtype, T). */
typedef struct world {
    mgrad_context *ctx;
    mgrad_model *model;
    mgrad_dataset *train, *val, *pool;
    const config *cfg;
    mgrad_dtype dtype;
    int64_t T;
    int64_t batch;
    uint64_t state_bytes;   /* one optimizer state */
    uint64_t memo_bytes;    /* the forward memo each RAM slot carries */
    uint64_t slot_bytes;    /* a RAM slot: state + memo */
} world;

static void world_init(world *w, const config *cfg, mgrad_dtype dtype, int64_t T)
{
    memset(w, 0, sizeof *w);
    w->cfg = cfg;
    w->dtype = dtype;
    w->T = T;
    w->batch = B;
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = dtype;
    co.seed = 7;
    ck_assert_int_eq(mgrad_context_create(&w->ctx, &co), MGRAD_OK);
    tf_mlp(w->ctx, F, H, C, &w->model);
    tf_labelled_data(w->ctx, NTRAIN, F, C, 11, &w->train);
    tf_labelled_data(w->ctx, NVAL, F, C, 23, &w->val);
    tf_labelled_data(w->ctx, NPOOL, F, C, 37, &w->pool);
}

static void world_free(world *w)
{
    tf_destroy(w->ctx, w->model, NULL, w->train, w->val, w->pool);
}

static mgrad_run_options base_options(const world *w)
{
    const config *cfg = w->cfg;
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = w->T;
    o.batch_size = w->batch;
    o.shuffle_seed = 5;
    tf_optimizer(&o, cfg->opt, cfg->lr, cfg->momentum, 0, cfg->weight_decay, cfg->eps_root);
    o.validation = w->val;
    return o;
}

/* One schedule to try. */
typedef struct sched {
    char name[48];
    mgrad_checkpoint policy;
    int64_t slots, k;
    int64_t budget_states;  /* checkpoint_budget_bytes in states; 0: none */
    int spill;              /* spill_dir = a fresh mkdtemp directory */
} sched;

/* What a run produced. */
typedef struct result {
    double phi;
    double *theta;
    int nmetas;
    int64_t size[MAXMETAS];
    double *grad[MAXMETAS];
    const char *what[MAXMETAS];
    mgrad_run_stats stats;
} result;

static void result_free(result *r)
{
    free(r->theta);
    for (int i = 0; i < r->nmetas; i++) free(r->grad[i]);
    memset(r, 0, sizeof *r);
}

static mgrad_meta *add(mgrad_run *run, mgrad_context *ctx, result *r, const char *what,
                       mgrad_meta_kind kind, const mgrad_meta_options *mo)
{
    mgrad_meta *m = NULL;
    mgrad_status s = mgrad_run_add_meta(&m, run, kind, mo);
    ck_assert_msg(s == MGRAD_OK, "add %s: %s", what, mgrad_context_last_error(ctx));
    ck_assert_int_lt(r->nmetas, MAXMETAS);
    r->what[r->nmetas] = what;
    ck_assert_int_eq(mgrad_meta_size(m, &r->size[r->nmetas]), MGRAD_OK);
    r->nmetas++;
    return m;
}

/* Register every metaparameter kind on `run`; metas[i] pairs with r->what[i]. */
static int register_all(const world *w, mgrad_run *run, result *r, mgrad_meta **metas)
{
    mgrad_context *ctx = w->ctx;
    int64_t T = w->T;
    int n = 0;
    mgrad_meta_options mo = MGRAD_META_OPTIONS_INIT;

    /* Two disjoint DATA_WEIGHTS windows [0, h) and [h, T) (one when T = 1). */
    int64_t h = T > 1 ? T / 2 : 1;
    mo.step_begin = 0;
    mo.step_end = h;
    metas[n++] = add(run, ctx, r, "data_weights[0,h)", MGRAD_META_DATA_WEIGHTS, &mo);
    if (h < T) {
        mo = (mgrad_meta_options)MGRAD_META_OPTIONS_INIT;
        mo.step_begin = h;
        mo.step_end = T;
        metas[n++] = add(run, ctx, r, "data_weights[h,T)", MGRAD_META_DATA_WEIGHTS, &mo);
    }
    /* Pool weights on a separate pool at step T/3 and on the training set at
       step T − 1, both nonzero so the pool chunks change the trajectory. */
    mo = (mgrad_meta_options)MGRAD_META_OPTIONS_INIT;
    mo.step = T / 3;
    mo.pool = w->pool;
    metas[n] = add(run, ctx, r, "pool_weights@T/3", MGRAD_META_POOL_WEIGHTS, &mo);
    {
        double z[NPOOL];
        uint64_t s = 99;
        for (int i = 0; i < NPOOL; i++) z[i] = 0.5 * (tu_rand(&s) + 1);
        ck_assert_int_eq(mgrad_meta_set_value(metas[n], MGRAD_DTYPE_F64, z, NPOOL), MGRAD_OK);
    }
    n++;
    mo = (mgrad_meta_options)MGRAD_META_OPTIONS_INIT;
    mo.step = T - 1;
    metas[n] = add(run, ctx, r, "pool_weights(train)@T-1", MGRAD_META_POOL_WEIGHTS, &mo);
    {
        double z[NTRAIN];
        uint64_t s = 101;
        for (int i = 0; i < NTRAIN; i++) z[i] = 0.25 * (tu_rand(&s) + 1);
        ck_assert_int_eq(mgrad_meta_set_value(metas[n], MGRAD_DTYPE_F64, z, NTRAIN), MGRAD_OK);
    }
    n++;
    static const int64_t rows[3] = {3, 17, 8};
    mo = (mgrad_meta_options)MGRAD_META_OPTIONS_INIT;
    mo.rows = rows;
    mo.num_rows = 3;
    metas[n++] = add(run, ctx, r, "inputs[3 rows]", MGRAD_META_INPUTS, &mo);
    metas[n++] = add(run, ctx, r, "soft_labels", MGRAD_META_SOFT_LABELS, NULL);
    metas[n++] = add(run, ctx, r, "lr_schedule", MGRAD_META_LR_SCHEDULE, NULL);
    metas[n++] = add(run, ctx, r, "weight_decay", MGRAD_META_WEIGHT_DECAY, NULL);
    metas[n++] = add(run, ctx, r, "momentum/beta1", MGRAD_META_MOMENTUM, NULL);
    if (w->cfg->opt != MGRAD_OPTIMIZER_SGD)
        metas[n++] = add(run, ctx, r, "beta2", MGRAD_META_BETA2, NULL);
    metas[n++] = add(run, ctx, r, "initial_params", MGRAD_META_INITIAL_PARAMS, NULL);
    return n;
}

/* Create a run with schedule `sc`, register everything, train, reverse. */
static void run_schedule(const world *w, const sched *sc, result *r)
{
    memset(r, 0, sizeof *r);
    mgrad_run_options o = base_options(w);
    o.checkpoint = sc->policy;
    o.checkpoint_slots = sc->slots;
    o.checkpoint_k = sc->k;
    o.checkpoint_budget_bytes = (uint64_t)sc->budget_states * w->slot_bytes;
    char dir[] = "/tmp/mgrad-ckpt-test-XXXXXX";
    if (sc->spill) {
        ck_assert_ptr_nonnull(mkdtemp(dir));
        o.spill_dir = dir;
    }
    mgrad_run *run = NULL;
    mgrad_status s = mgrad_run_create(&run, w->model, w->train, &o);
    ck_assert_msg(s == MGRAD_OK, "%s: create: %s", sc->name, mgrad_context_last_error(w->ctx));
    mgrad_meta *metas[MAXMETAS];
    int n = register_all(w, run, r, metas);
    s = mgrad_run_train(run, &r->phi);
    ck_assert_msg(s == MGRAD_OK, "%s: train: %s", sc->name, mgrad_context_last_error(w->ctx));
    s = mgrad_run_reverse(run);
    ck_assert_msg(s == MGRAD_OK, "%s: reverse: %s", sc->name, mgrad_context_last_error(w->ctx));
    int64_t P = 0;
    ck_assert_int_eq(mgrad_run_num_params(run, &P), MGRAD_OK);
    r->theta = malloc((size_t)P * sizeof(double));
    ck_assert_ptr_nonnull(r->theta);
    /* f32 → f64 is exact, so comparing the f64 copies compares the bits. */
    ck_assert_int_eq(mgrad_run_get_params(run, MGRAD_DTYPE_F64, r->theta, P), MGRAD_OK);
    for (int i = 0; i < n; i++) {
        r->grad[i] = malloc((size_t)r->size[i] * sizeof(double));
        ck_assert_ptr_nonnull(r->grad[i]);
        ck_assert_int_eq(mgrad_meta_get_grad(metas[i], MGRAD_DTYPE_F64, r->grad[i],
                                             r->size[i]), MGRAD_OK);
    }
    r->stats.version = MGRAD_RUN_STATS_VERSION;
    ck_assert_int_eq(mgrad_run_get_stats(run, &r->stats), MGRAD_OK);
    mgrad_run_destroy(run);
    if (sc->spill) {
        /* The spill file is gone with the run: the directory is empty. */
        ck_assert_msg(rmdir(dir) == 0, "%s: spill directory %s not empty after destroy: %s",
                      sc->name, dir, strerror(errno));
    }
}

/* ---- expected statistics ------------------------------------------------ */

/* C(n, k) in exact integer arithmetic (small arguments only). */
static int64_t binom(int64_t n, int64_t k)
{
    if (k < 0 || k > n) return 0;
    if (k > n - k) k = n - k;
    int64_t b = 1;
    for (int64_t j = 1; j <= k; j++) b = b * (n - k + j) / j;
    return b;
}

/* Griewank–Walther: t(l, s) = r·l − β(s+1, r−1), β(c, r) = C(c + r, c),
   r least with β(s, r) >= l; steps recomputed = t(T + 1, s) − T. */
static int64_t binomial_recomputed(int64_t T, int64_t s)
{
    int64_t l = T + 1, r = 0;
    while (binom(s + r, s) < l) r++;
    int64_t t = r * l - (r >= 1 ? binom(s + 1 + r - 1, s + 1) : 0);
    return t - T;
}

/* Steps advanced after the forward phase reached s_T, and the highest slot
   used + 1, by executing the schedule's actions on "state = step index". */
static void simulate(mgrad_context *ctx, mgrad_checkpoint policy, int64_t T, int64_t slots,
                     int64_t k, int64_t *recomputed, int64_t *slots_used)
{
    mgr_schedule *sch = NULL;
    ck_assert_int_eq(mgr_schedule_create(ctx, policy, T, slots, k, &sch), MGRAD_OK);
    int64_t *slot = calloc((size_t)slots, sizeof *slot);
    ck_assert_ptr_nonnull(slot);
    int64_t cur = 0, rec = 0, used = 0;
    int reached = 0;
    mgr_action a;
    while (mgr_schedule_next(sch, &a)) {
        switch (a.kind) {
        case MGR_ACTION_ADVANCE:
            cur += a.count;
            if (reached) rec += a.count;
            if (cur == T) reached = 1;
            break;
        case MGR_ACTION_SAVE:
            ck_assert_int_lt(a.slot, slots);
            slot[a.slot] = cur;
            if (a.slot + 1 > used) used = a.slot + 1;
            break;
        case MGR_ACTION_RESTORE:
            cur = slot[a.slot];
            break;
        case MGR_ACTION_REVERSE:
            break;
        }
    }
    free(slot);
    mgr_schedule_destroy(ctx, sch);
    *recomputed = rec;
    *slots_used = used;
}

static int64_t ceil_log(int64_t T, int64_t k)
{
    int64_t d = 0, p = 1;
    while (p < T) {
        p *= k;
        d++;
    }
    return d;
}

static void check_stats(const world *w, const sched *sc, const mgrad_run_stats *st)
{
    int64_t T = w->T;
    const char *nm = sc->name;
    ck_assert_msg(st->reverse_steps == T, "%s: reverse_steps %lld, T = %lld", nm,
                  (long long)st->reverse_steps, (long long)T);
    ck_assert_msg(st->steps_run == T + st->steps_recomputed, "%s: steps_run %lld", nm,
                  (long long)st->steps_run);
    /* The policy and slots the run planned. */
    mgrad_checkpoint want_policy = sc->policy;
    int64_t want_slots = 0;
    switch (sc->policy) {
    case MGRAD_CHECKPOINT_STORE_ALL: want_slots = T; break;
    case MGRAD_CHECKPOINT_BINOMIAL: want_slots = sc->slots < T ? sc->slots : T; break;
    case MGRAD_CHECKPOINT_REPLAY: {
        mgrad_checkpoint p;
        ck_assert_int_eq(mgr_schedule_plan(w->ctx, MGRAD_CHECKPOINT_REPLAY, T, 0, 0, sc->k,
                                           &p, &want_slots), MGRAD_OK);
        break;
    }
    case MGRAD_CHECKPOINT_AUTO:
        if (sc->budget_states >= T) {
            want_policy = MGRAD_CHECKPOINT_STORE_ALL;
            want_slots = T;
        } else {
            want_policy = MGRAD_CHECKPOINT_BINOMIAL;
            want_slots = sc->budget_states;
        }
        break;
    }
    ck_assert_msg(st->checkpoint == want_policy, "%s: policy %d, want %d", nm,
                  (int)st->checkpoint, (int)want_policy);
    ck_assert_msg(st->checkpoint_slots == want_slots, "%s: slots %lld, want %lld", nm,
                  (long long)st->checkpoint_slots, (long long)want_slots);

    /* Steps recomputed: the closed forms, and a simulation of the schedule. */
    int64_t sim_rec = 0, sim_used = 0;
    simulate(w->ctx, st->checkpoint, T, st->checkpoint_slots, sc->k > 0 ? sc->k : 4, &sim_rec,
             &sim_used);
    int64_t want_rec = sim_rec;
    if (st->checkpoint == MGRAD_CHECKPOINT_STORE_ALL) want_rec = 0;
    if (st->checkpoint == MGRAD_CHECKPOINT_BINOMIAL)
        want_rec = binomial_recomputed(T, st->checkpoint_slots);
    ck_assert_msg(sim_rec == want_rec, "%s: simulated %lld recomputed, closed form %lld", nm,
                  (long long)sim_rec, (long long)want_rec);
    ck_assert_msg(st->steps_recomputed == want_rec, "%s: steps_recomputed %lld, want %lld",
                  nm, (long long)st->steps_recomputed, (long long)want_rec);
    if (st->checkpoint == MGRAD_CHECKPOINT_REPLAY)
        ck_assert_msg(st->steps_recomputed <= T * ceil_log(T, sc->k),
                      "%s: %lld recomputed > T·⌈log_k T⌉", nm,
                      (long long)st->steps_recomputed);

    /* Memory: never more than the slots, exactly the slots the schedule
       touched when nothing spills, within the RAM budget when spilling. */
    uint64_t sb = w->slot_bytes;
    ck_assert_msg(st->memo_bytes == (int64_t)w->memo_bytes, "%s: memo %lld bytes, want %llu",
                  nm, (long long)st->memo_bytes, (unsigned long long)w->memo_bytes);
    ck_assert_msg(st->peak_state_bytes <= (uint64_t)st->checkpoint_slots * sb,
                  "%s: peak %llu bytes > %lld slots × %llu", nm,
                  (unsigned long long)st->peak_state_bytes, (long long)st->checkpoint_slots,
                  (unsigned long long)sb);
    if (sc->spill) {
        int64_t ram = sc->budget_states < T ? sc->budget_states : T;
        ck_assert_msg(st->peak_state_bytes == (uint64_t)ram * sb,
                      "%s: peak RAM %llu, budget %lld states", nm,
                      (unsigned long long)st->peak_state_bytes, (long long)ram);
        ck_assert_msg(st->spilled_bytes == (int64_t)((uint64_t)(T - ram) * w->state_bytes),
                      "%s: spilled %lld bytes, want %lld states", nm,
                      (long long)st->spilled_bytes, (long long)(T - ram));
    } else {
        ck_assert_msg(st->peak_state_bytes == (uint64_t)sim_used * sb,
                      "%s: peak %llu bytes, schedule used %lld slots", nm,
                      (unsigned long long)st->peak_state_bytes, (long long)sim_used);
        ck_assert_int_eq(st->spilled_bytes, 0);
    }

    /* Memo hits.  Store-all: every reverse step starts from a restored slot
       whose memo its forward phase filled; spilled slots carry none.  Every
       other schedule starts its advances and reverses from slots too. */
    int64_t hits = st->memo_hits;
    if (w->memo_bytes == 0)
        ck_assert_msg(hits == 0, "%s: %lld memo hits without a memo", nm, (long long)hits);
    else if (st->checkpoint == MGRAD_CHECKPOINT_STORE_ALL)
        ck_assert_msg(hits == (sc->spill ? (sc->budget_states < T ? sc->budget_states : T) : T),
                      "%s: %lld memo hits", nm, (long long)hits);
    else
        ck_assert_msg(hits > 0 && hits <= st->steps_run + st->reverse_steps,
                      "%s: %lld memo hits", nm, (long long)hits);
}

/* ‖∂φ/∂θ‖₁ at θ = theta (P values): the θ0-metagradient of a one-step SGD
   run with η = 0 started from theta.  There θ_1 = θ_0 and u = −η θ̄_1 = 0, so
   dφ/dθ0 = ∂φ/∂θ_1 (no Hessian term).  The world's model gets its
   parameters back. */
static double phi_grad_l1(world *w, const double *theta, int64_t P)
{
    double *theta0 = malloc((size_t)P * sizeof(double));
    double *a = malloc((size_t)P * sizeof(double));
    ck_assert_ptr_nonnull(theta0);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(mgrad_model_get_params(w->model, MGRAD_DTYPE_F64, theta0, P), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_set_params(w->model, MGRAD_DTYPE_F64, theta, P), MGRAD_OK);
    world probe = *w;
    config sgd0 = {"sgd, lr 0", MGRAD_OPTIMIZER_SGD, 0.0, 0.0, 0.0, 0};
    probe.cfg = &sgd0;
    probe.T = 1;
    mgrad_run_options o = base_options(&probe);
    mgrad_run *run = NULL;
    ck_assert_int_eq(mgrad_run_create(&run, w->model, w->train, &o), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_set_params(w->model, MGRAD_DTYPE_F64, theta0, P), MGRAD_OK);
    mgrad_meta *t0 = NULL;
    ck_assert_int_eq(mgrad_run_add_meta(&t0, run, MGRAD_META_INITIAL_PARAMS, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_train(run, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_reverse(run), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(t0, MGRAD_DTYPE_F64, a, P), MGRAD_OK);
    mgrad_run_destroy(run);
    double l1 = 0;
    for (int64_t i = 0; i < P; i++) l1 += fabs(a[i]);
    free(a);
    free(theta0);
    return l1;
}

/* ---- bit-identity ------------------------------------------------------- */

static void assert_same(const sched *sc, const result *ref, const result *r, int64_t P)
{
    ck_assert_msg(memcmp(&ref->phi, &r->phi, sizeof r->phi) == 0, "%s: φ %.17g vs %.17g",
                  sc->name, r->phi, ref->phi);
    for (int64_t i = 0; i < P; i++)
        ck_assert_msg(memcmp(&ref->theta[i], &r->theta[i], sizeof(double)) == 0,
                      "%s: θ_T[%lld] %.17g vs store-all %.17g", sc->name, (long long)i,
                      r->theta[i], ref->theta[i]);
    ck_assert_int_eq(r->nmetas, ref->nmetas);
    for (int m = 0; m < r->nmetas; m++) {
        ck_assert_int_eq(r->size[m], ref->size[m]);
        for (int64_t i = 0; i < r->size[m]; i++)
            ck_assert_msg(memcmp(&ref->grad[m][i], &r->grad[m][i], sizeof(double)) == 0,
                          "%s: d phi/d %s[%lld] = %.17g, store-all %.17g", sc->name,
                          r->what[m], (long long)i, r->grad[m][i], ref->grad[m][i]);
    }
}

static int make_schedules(int64_t T, sched *out)
{
    int n = 0;
    static const int64_t ks[] = {2, 3, 4};
    for (int i = 0; i < 3; i++) {
        memset(&out[n], 0, sizeof out[n]);
        snprintf(out[n].name, sizeof out[n].name, "REPLAY k=%lld", (long long)ks[i]);
        out[n].policy = MGRAD_CHECKPOINT_REPLAY;
        out[n].k = ks[i];
        n++;
    }
    int64_t slots[] = {1, 2, 5, T - 1};
    for (int i = 0; i < 4; i++) {
        if (slots[i] < 1) continue;
        memset(&out[n], 0, sizeof out[n]);
        snprintf(out[n].name, sizeof out[n].name, "binomial s=%lld", (long long)slots[i]);
        out[n].policy = MGRAD_CHECKPOINT_BINOMIAL;
        out[n].slots = slots[i];
        n++;
    }
    memset(&out[n], 0, sizeof out[n]);
    snprintf(out[n].name, sizeof out[n].name, "auto budget=3 states");
    out[n].policy = MGRAD_CHECKPOINT_AUTO;
    out[n].budget_states = 3;
    n++;
    memset(&out[n], 0, sizeof out[n]);
    snprintf(out[n].name, sizeof out[n].name, "store-all spill, RAM 2 states");
    out[n].policy = MGRAD_CHECKPOINT_STORE_ALL;
    out[n].budget_states = 2;
    out[n].spill = 1;
    n++;
    return n;
}

/* _i = config × dtype × T × batch. */
START_TEST(test_bit_identical)
{
    const config *cfg = &CONFIGS[_i % NCONFIGS];
    mgrad_dtype dtype = DTYPES[(_i / NCONFIGS) % 2];
    int64_t T = STEPS[(_i / (2 * NCONFIGS)) % NSTEPS];
    world w;
    world_init(&w, cfg, dtype, T);
    w.batch = BATCHES[_i / (2 * NCONFIGS * NSTEPS)];
    int64_t P = 0;
    ck_assert_int_eq(mgrad_model_num_params(w.model, &P), MGRAD_OK);
    uint64_t es = dtype == MGRAD_DTYPE_F32 ? 4u : 8u;
    w.state_bytes = (uint64_t)mgr_optim_state_len(cfg->opt, (size_t)P) * es;
    /* The memo: both dense layers' outputs for the batch, when at most a
       quarter of a state. */
    uint64_t memo = (uint64_t)w.batch * (H + C) * es;
    w.memo_bytes = 4 * memo <= w.state_bytes ? memo : 0;
    w.slot_bytes = w.state_bytes + w.memo_bytes;
    ck_assert_msg((w.memo_bytes > 0) == (w.batch != B), "batch %lld: memo %llu bytes",
                  (long long)w.batch, (unsigned long long)w.memo_bytes);

    sched ref_s;
    memset(&ref_s, 0, sizeof ref_s);
    snprintf(ref_s.name, sizeof ref_s.name, "store-all");
    ref_s.policy = MGRAD_CHECKPOINT_STORE_ALL;
    result ref;
    run_schedule(&w, &ref_s, &ref);
    check_stats(&w, &ref_s, &ref.stats);
    ck_assert(isfinite(ref.phi));
    /* The gradients are not trivially zero (a vacuous comparison), except
       when T = 1 for SGD's μ: μ̄ = ⟨M, m_0⟩ with m_0 = 0, exactly 0; and for
       Adam's β1 and β2, where m̂_1 = (1 − β1) g / (1 − β1) = g and
       v̂_1 = (1 − β2) g² / (1 − β2) = g² whatever β1, β2 are: each of β̄1,
       β̄2 is zero in exact arithmetic, two sums whose terms cancel pairwise
       (lib/optim/adam.c), and what is left is rounding, exactly 0 or not
       depending on the bits of g (on the BLAS kernel).  Bound it.  With
       a = ∂φ/∂θ_1, D = √(v̂ + ε_root) + ε ≥ |g| and m̂̄ = −η a / D, each term
       of β̄1 is |m̂̄ g| / c1 ≤ η|a_i| / c1 (c1 = 1 − β1), each term of β̄2 is
       |v̂̄ g²| / c2 = η|a_i| |m̂| g² / (2 √(v̂+ε_root) D² c2) ≤ η|a_i| / (2 c2)
       (c2 = 1 − β2); so the terms sum to at most S = 2η‖a‖₁/c1, resp.
       η‖a‖₁/c2.  The two terms of a pair differ by about ten roundings in
       the run's precision u (the casts of 1 − β and 1/c, the products, the
       divisions by c²); the double sums over P terms in lanes add at most
       P u_64 of S.  The bound (16 u + (P + 3) u_64) S is several times
       those, and far below any wrong rule, which is off by O(S). */
    const int adam_t1 = T == 1 && cfg->opt == MGRAD_OPTIMIZER_ADAM;
    const double a_l1 = adam_t1 ? phi_grad_l1(&w, ref.theta, P) : 0;
    const double u_run = dtype == MGRAD_DTYPE_F32 ? 0x1p-24 : 0x1p-53;
    for (int m = 0; m < ref.nmetas; m++) {
        double norm = 0;
        for (int64_t i = 0; i < ref.size[m]; i++) norm += fabs(ref.grad[m][i]);
        ck_assert_msg(isfinite(norm), "d phi/d %s is not finite", ref.what[m]);
        const int is_b1 = strcmp(ref.what[m], "momentum/beta1") == 0;
        const int is_b2 = strcmp(ref.what[m], "beta2") == 0;
        if (T == 1 && cfg->opt == MGRAD_OPTIMIZER_SGD && is_b1) {
            ck_assert_msg(norm == 0, "SGD, T = 1: d phi/d mu = %g, want 0", norm);
        } else if (adam_t1 && (is_b1 || is_b2)) {
            const double scale = is_b1 ? 2 * cfg->lr * a_l1 / (1 - cfg->momentum)
                                       : cfg->lr * a_l1 / (1 - base_options(&w).beta2);
            const double bound = (16 * u_run + (double)(P + 3) * 0x1p-53) * scale;
            ck_assert_msg(a_l1 > 0 && norm <= bound,
                          "Adam, T = 1: d phi/d %s = %g, want 0 up to rounding (<= %g)",
                          ref.what[m], norm, bound);
        } else {
            ck_assert_msg(norm > 0, "d phi/d %s is zero", ref.what[m]);
        }
    }

    sched scheds[16];
    int ns = make_schedules(T, scheds);
    for (int i = 0; i < ns; i++) {
        result r;
        run_schedule(&w, &scheds[i], &r);
        check_stats(&w, &scheds[i], &r.stats);
        assert_same(&scheds[i], &ref, &r, P);
        printf("%-8s %s T=%-3lld B=%lld %-30s slots %3lld  recomputed %5lld  memo hits %4lld  "
               "peak %7llu B  spilled %lld B: bit-identical\n", cfg->name,
               dtype == MGRAD_DTYPE_F32 ? "f32" : "f64", (long long)T, (long long)w.batch,
               scheds[i].name, (long long)r.stats.checkpoint_slots,
               (long long)r.stats.steps_recomputed, (long long)r.stats.memo_hits,
               (unsigned long long)r.stats.peak_state_bytes, (long long)r.stats.spilled_bytes);
        result_free(&r);
    }
    result_free(&ref);
    world_free(&w);
}
END_TEST

/* A second reverse (which replays the forward phase) under binomial gives
   the same bits again. */
START_TEST(test_reverse_twice_binomial)
{
    world w;
    world_init(&w, &CONFIGS[2], MGRAD_DTYPE_F32, 37);
    mgrad_run_options o = base_options(&w);
    o.checkpoint = MGRAD_CHECKPOINT_BINOMIAL;
    o.checkpoint_slots = 3;
    mgrad_run *run = NULL;
    ck_assert_int_eq(mgrad_run_create(&run, w.model, w.train, &o), MGRAD_OK);
    mgrad_meta *lr = NULL;
    ck_assert_int_eq(mgrad_run_add_meta(&lr, run, MGRAD_META_LR_SCHEDULE, NULL), MGRAD_OK);
    double g1[37], g2[37];
    ck_assert_int_eq(mgrad_run_train(run, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_reverse(run), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(lr, MGRAD_DTYPE_F64, g1, 37), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_reverse(run), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(lr, MGRAD_DTYPE_F64, g2, 37), MGRAD_OK);
    ck_assert(memcmp(g1, g2, sizeof g1) == 0);
    mgrad_run_stats st = MGRAD_RUN_STATS_INIT;
    ck_assert_int_eq(mgrad_run_get_stats(run, &st), MGRAD_OK);
    ck_assert_int_eq(st.reverse_steps, 37);
    ck_assert_int_eq(st.steps_recomputed, binomial_recomputed(37, 3));
    mgrad_run_destroy(run);
    world_free(&w);
}
END_TEST

/* ---- budgets too small -------------------------------------------------- */

static void expect_budget_error(world *w, mgrad_run_options *o, const char *want,
                                const char *what)
{
    mgrad_run *run = NULL;
    mgrad_status s = mgrad_run_create(&run, w->model, w->train, o);
    const char *msg = mgrad_context_last_error(w->ctx);
    ck_assert_msg(s == MGRAD_ERR_BUDGET, "%s: status %d (%s)", what, (int)s, msg);
    ck_assert_msg(run == NULL, "%s: run not NULL", what);
    ck_assert_msg(strstr(msg, want) != NULL, "%s: message \"%s\" does not name \"%s\"", what,
                  msg, want);
    printf("budget error (%s): %s\n", what, msg);
}

static void expect_ok(world *w, mgrad_run_options *o, const char *what)
{
    mgrad_run *run = NULL;
    mgrad_status s = mgrad_run_create(&run, w->model, w->train, o);
    ck_assert_msg(s == MGRAD_OK, "%s: %s", what, mgrad_context_last_error(w->ctx));
    mgrad_run_destroy(run);
}

START_TEST(test_budget_too_small)
{
    world w;
    world_init(&w, &CONFIGS[1], MGRAD_DTYPE_F64, 37);
    int64_t P = 0;
    ck_assert_int_eq(mgrad_model_num_params(w.model, &P), MGRAD_OK);
    uint64_t sb = (uint64_t)mgr_optim_state_len(MGRAD_OPTIMIZER_SGD, (size_t)P) * 8u;
    char want[96];
    mgrad_run_options o = base_options(&w);

    /* Less than one state: every policy fails, naming one state's size. */
    static const mgrad_checkpoint all[] = {MGRAD_CHECKPOINT_STORE_ALL, MGRAD_CHECKPOINT_REPLAY,
                                           MGRAD_CHECKPOINT_BINOMIAL, MGRAD_CHECKPOINT_AUTO};
    for (int i = 0; i < 4; i++) {
        o.checkpoint = all[i];
        o.checkpoint_budget_bytes = sb - 1;
        snprintf(want, sizeof want, "%llu bytes", (unsigned long long)sb);
        expect_budget_error(&w, &o, want, "under one state");
        ck_assert_ptr_nonnull(strstr(mgrad_context_last_error(w.ctx), "at least 1 slot"));
    }
    /* One state is enough for binomial and auto. */
    o.checkpoint_budget_bytes = sb;
    o.checkpoint = MGRAD_CHECKPOINT_BINOMIAL;
    expect_ok(&w, &o, "binomial, 1 state");
    o.checkpoint = MGRAD_CHECKPOINT_AUTO;
    expect_ok(&w, &o, "auto, 1 state");

    /* Store-all needs T. */
    o.checkpoint = MGRAD_CHECKPOINT_STORE_ALL;
    o.checkpoint_budget_bytes = 36 * sb + sb - 1;
    expect_budget_error(&w, &o, "needs 37 state slots", "store-all, T - 1 states");
    o.checkpoint_budget_bytes = 37 * sb;
    expect_ok(&w, &o, "store-all, T states");

    /* REPLAY needs 1 + E(T); both the byte budget and checkpoint_slots. */
    for (int64_t k = 2; k <= 4; k++) {
        mgrad_checkpoint p;
        int64_t need = 0;
        ck_assert_int_eq(mgr_schedule_plan(w.ctx, MGRAD_CHECKPOINT_REPLAY, 37, 0, 0, k, &p,
                                           &need), MGRAD_OK);
        o.checkpoint = MGRAD_CHECKPOINT_REPLAY;
        o.checkpoint_k = k;
        o.checkpoint_slots = 0;
        o.checkpoint_budget_bytes = (uint64_t)(need - 1) * sb;
        snprintf(want, sizeof want, "needs at least %lld state slots", (long long)need);
        expect_budget_error(&w, &o, want, "REPLAY, 1 + E(T) - 1 states");
        o.checkpoint_budget_bytes = (uint64_t)need * sb;
        expect_ok(&w, &o, "REPLAY, 1 + E(T) states");
        o.checkpoint_budget_bytes = 0;
        o.checkpoint_slots = need - 1;
        expect_budget_error(&w, &o, want, "REPLAY, checkpoint_slots too small");
    }
    o.checkpoint_k = 0;
    o.checkpoint_slots = 0;

    /* Binomial asking for more slots than the budget holds. */
    o.checkpoint = MGRAD_CHECKPOINT_BINOMIAL;
    o.checkpoint_slots = 5;
    o.checkpoint_budget_bytes = 4 * sb;
    expect_budget_error(&w, &o, "the minimum is 1", "binomial, 5 slots in 4 states");

    /* With a spill directory the budget limits RAM only: store-all fits. */
    char dir[] = "/tmp/mgrad-ckpt-test-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    o.checkpoint = MGRAD_CHECKPOINT_STORE_ALL;
    o.checkpoint_slots = 0;
    o.checkpoint_budget_bytes = 2 * sb;
    o.spill_dir = dir;
    expect_ok(&w, &o, "store-all spilling");
    ck_assert_int_eq(rmdir(dir), 0);
    world_free(&w);
}
END_TEST

/* ---- the "done when": T = 4096, 24 binomial slots --------------- */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

enum { LT = 4096, LF = 8, LH = 16, LC = 3, LB = 4, LN = 64, LNV = 32 };

static void long_run(mgrad_dtype dtype, mgrad_checkpoint policy, int64_t slots, double *phi,
                     double *theta, double *lr_grad, double *w_grad, double *t0_grad,
                     double *hyper, mgrad_run_stats *st)
{
    mgrad_context *ctx = NULL;
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = dtype;
    co.seed = 3;
    ck_assert_int_eq(mgrad_context_create(&ctx, &co), MGRAD_OK);
    int64_t shape[1] = {LF};
    mgrad_model *model = NULL;
    ck_assert_int_eq(mgrad_model_create(&model, ctx, 1, shape), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(model, LH, MGRAD_INIT_DEFAULT), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_activation(model, MGRAD_ACTIVATION_TANH), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(model, LC, MGRAD_INIT_DEFAULT), MGRAD_OK);
    double x[LN * LF], xv[LNV * LF];
    int32_t y[LN], yv[LNV];
    uint64_t s = 17;
    tu_fill(x, LN * LF, &s, 1.0);
    tu_fill(xv, LNV * LF, &s, 1.0);
    for (int i = 0; i < LN; i++) y[i] = (int32_t)((tu_rand(&s) + 1) * 1.5) % LC;
    for (int i = 0; i < LNV; i++) yv[i] = (int32_t)((tu_rand(&s) + 1) * 1.5) % LC;
    mgrad_dataset *train = NULL, *val = NULL;
    ck_assert_int_eq(mgrad_dataset_create(&train, ctx, LN, 1, shape, MGRAD_DTYPE_F64, x),
                     MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_set_labels(train, y, LN, LC), MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_create(&val, ctx, LNV, 1, shape, MGRAD_DTYPE_F64, xv),
                     MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_set_labels(val, yv, LNV, LC), MGRAD_OK);
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = LT;
    o.batch_size = LB;
    o.shuffle_seed = 9;
    o.lr = 0.02;
    o.momentum = 0.9;
    o.weight_decay = 1e-3;
    o.validation = val;
    o.checkpoint = policy;
    o.checkpoint_slots = slots;
    mgrad_run *run = NULL;
    ck_assert_msg(mgrad_run_create(&run, model, train, &o) == MGRAD_OK, "%s",
                  mgrad_context_last_error(ctx));
    mgrad_meta *lr = NULL, *w = NULL, *t0 = NULL, *wd = NULL, *mom = NULL;
    ck_assert_int_eq(mgrad_run_add_meta(&lr, run, MGRAD_META_LR_SCHEDULE, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_add_meta(&w, run, MGRAD_META_DATA_WEIGHTS, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_add_meta(&t0, run, MGRAD_META_INITIAL_PARAMS, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_add_meta(&wd, run, MGRAD_META_WEIGHT_DECAY, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_add_meta(&mom, run, MGRAD_META_MOMENTUM, NULL), MGRAD_OK);
    ck_assert_msg(mgrad_run_train(run, phi) == MGRAD_OK, "%s", mgrad_context_last_error(ctx));
    ck_assert_msg(mgrad_run_reverse(run) == MGRAD_OK, "%s", mgrad_context_last_error(ctx));
    int64_t P = 0;
    ck_assert_int_eq(mgrad_run_num_params(run, &P), MGRAD_OK);
    ck_assert_int_eq(P, LF * LH + LH + LH * LC + LC);
    ck_assert_int_eq(mgrad_run_get_params(run, MGRAD_DTYPE_F64, theta, P), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(lr, MGRAD_DTYPE_F64, lr_grad, LT), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(w, MGRAD_DTYPE_F64, w_grad, LN), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(t0, MGRAD_DTYPE_F64, t0_grad, P), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(wd, MGRAD_DTYPE_F64, &hyper[0], 1), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(mom, MGRAD_DTYPE_F64, &hyper[1], 1), MGRAD_OK);
    st->version = MGRAD_RUN_STATS_VERSION;
    ck_assert_int_eq(mgrad_run_get_stats(run, st), MGRAD_OK);
    mgrad_run_destroy(run);
    mgrad_dataset_destroy(train);
    mgrad_dataset_destroy(val);
    mgrad_model_destroy(model);
    mgrad_context_destroy(ctx);
}

START_TEST(test_T4096_binomial_24)
{
    enum { P = LF * LH + LH + LH * LC + LC };
    mgrad_dtype dtype = _i == 0 ? MGRAD_DTYPE_F64 : MGRAD_DTYPE_F32;
    static double phi[2], theta[2][P], lrg[2][LT], wg[2][LN], t0g[2][P], hyp[2][2];
    mgrad_run_stats st[2];
    double t_start = now_seconds();
    long_run(dtype, MGRAD_CHECKPOINT_STORE_ALL, 0, &phi[0], theta[0], lrg[0], wg[0], t0g[0],
             hyp[0], &st[0]);
    double t_mid = now_seconds();
    long_run(dtype, MGRAD_CHECKPOINT_BINOMIAL, 24, &phi[1], theta[1], lrg[1], wg[1], t0g[1],
             hyp[1], &st[1]);
    double t_end = now_seconds();
    const char *dt = dtype == MGRAD_DTYPE_F32 ? "f32" : "f64";
    printf("T = 4096 %s: store-all %.2f s (peak %llu B), binomial 24 slots %.2f s "
           "(peak %llu B, %lld steps recomputed)\n", dt, t_mid - t_start,
           (unsigned long long)st[0].peak_state_bytes, t_end - t_mid,
           (unsigned long long)st[1].peak_state_bytes, (long long)st[1].steps_recomputed);
    ck_assert(isfinite(phi[0]));
    ck_assert(memcmp(&phi[0], &phi[1], sizeof phi[0]) == 0);
    ck_assert(memcmp(theta[0], theta[1], sizeof theta[0]) == 0);
    ck_assert(memcmp(lrg[0], lrg[1], sizeof lrg[0]) == 0);
    ck_assert(memcmp(wg[0], wg[1], sizeof wg[0]) == 0);
    ck_assert(memcmp(t0g[0], t0g[1], sizeof t0g[0]) == 0);
    ck_assert(memcmp(hyp[0], hyp[1], sizeof hyp[0]) == 0);
    double norm = 0;
    for (int i = 0; i < LT; i++) norm += fabs(lrg[0][i]);
    ck_assert(norm > 0 && isfinite(norm));
    ck_assert_int_eq(st[0].steps_recomputed, 0);
    ck_assert_int_eq(st[1].checkpoint, MGRAD_CHECKPOINT_BINOMIAL);
    ck_assert_int_eq(st[1].checkpoint_slots, 24);
    ck_assert_int_eq(st[1].steps_recomputed, binomial_recomputed(LT, 24));
    ck_assert_int_eq(st[1].steps_recomputed, 9016); /* docs/checkpointing.md */
    ck_assert_int_eq(st[1].reverse_steps, LT);
    uint64_t sb = st[0].peak_state_bytes / LT;
    ck_assert_int_eq(st[0].peak_state_bytes, (uint64_t)LT * sb);
    ck_assert(st[1].peak_state_bytes <= 24 * sb);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("bit-identical");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_bit_identical, 0, NCONFIGS * 2 * NSTEPS * 2);
    tcase_add_test(tc, test_reverse_twice_binomial);
    tcase_add_test(tc, test_budget_too_small);
    suite_add_tcase(s, tc);
    TCase *lt = tcase_create("long");
    tcase_set_timeout(lt, 600);
    tcase_add_loop_test(lt, test_T4096_binomial_24, 0, 2);
    suite_add_tcase(s, lt);
    return s;
}
