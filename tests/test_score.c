/*
 * test_score.c - mgrad_score_run: bit-identical to the same retrainings made
 * by hand through the public API (f32 and f64, with settings and two
 * evaluation sets), deterministic, each redraw flag changes what it says,
 * explicit seed lists, the validation-set default, statistics as
 * documented, and refusals (status, message, caller data and the model's
 * θ0 unchanged, memory back to where it was).
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "metagrad.h"
#include "metagrad/score.h"
#include "testutil.h"

enum { N = 64, NV = 32, NT = 40, F = 5, C = 3, H = 12, T = 24, B = 8 };

typedef struct fixture {
    mgrad_context *ctx;
    mgrad_model *model;
    mgrad_dataset *train, *val, *test;
    mgrad_run_options ro;
    double weights[N], sched[T];
    mgrad_score_setting settings[2];
} fixture;

static void setup(fixture *fx, mgrad_dtype dtype)
{
    memset(fx, 0, sizeof *fx);
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = dtype;
    ck_assert_int_eq(mgrad_context_create(&fx->ctx, &co), MGRAD_OK);
    tf_mlp(fx->ctx, F, H, C, &fx->model);
    tf_labelled_data(fx->ctx, N, F, C, 3, &fx->train);
    tf_labelled_data(fx->ctx, NV, F, C, 4, &fx->val);
    tf_labelled_data(fx->ctx, NT, F, C, 5, &fx->test);
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = T;
    o.batch_size = B;
    o.lr = 0.1;
    o.momentum = 0.5;
    o.validation = fx->val;
    fx->ro = o;
    for (int i = 0; i < N; i++) fx->weights[i] = 0.25 + (double)(i % 7) / 4;
    for (int t = 0; t < T; t++) fx->sched[t] = 0.2 * (double)(T - t) / T;
    mgrad_score_setting w = {MGRAD_META_DATA_WEIGHTS, NULL, MGRAD_DTYPE_F64, fx->weights, N};
    mgrad_score_setting lr = {MGRAD_META_LR_SCHEDULE, NULL, MGRAD_DTYPE_F64, fx->sched, T};
    fx->settings[0] = w;
    fx->settings[1] = lr;
}

static void teardown(fixture *fx)
{
    mgrad_dataset_destroy(fx->test);
    tf_destroy(fx->ctx, fx->model, NULL, fx->train, fx->val, NULL);
}

static void theta0(const fixture *fx, double *out)
{
    int64_t p = 0;
    ck_assert_int_eq(mgrad_model_num_params(fx->model, &p), MGRAD_OK);
    ck_assert_int_le(p, 512);
    memset(out, 0, 512 * sizeof *out); /* the callers compare all 512 */
    ck_assert_int_eq(mgrad_model_get_params(fx->model, MGRAD_DTYPE_F64, out, p), MGRAD_OK);
}

/* The documented statistics, written out again. */
static void stats(const double *x, int n, int stride, double *mean, double *sd)
{
    double m = 0, v = 0;
    for (int i = 0; i < n; i++) m += x[i * stride];
    m /= n;
    for (int i = 0; i < n; i++) v += (x[i * stride] - m) * (x[i * stride] - m);
    *mean = m;
    *sd = n > 1 ? sqrt(v / (n - 1)) : 0;
}

enum { S = 3 };

/* The procedure of score.h by hand, on a second model of the same layers:
   per_seed[2 (e S + s)] as mgrad_score_run lays it out. */
static void by_hand(fixture *fx, uint64_t first_seed, double *per_seed)
{
    mgrad_model *m = NULL;
    tf_mlp(fx->ctx, F, H, C, &m);
    const mgrad_dataset *eval[2] = {fx->test, fx->val};
    for (int s = 0; s < S; s++) {
        uint64_t seed = first_seed + (uint64_t)s;
        ck_assert_int_eq(mgrad_model_init_params(m, seed), MGRAD_OK);
        mgrad_run_options o = fx->ro;
        o.shuffle_seed = seed ^ 0x5bd1e995u;
        mgrad_run *run = NULL;
        mgrad_meta *w = NULL, *lr = NULL;
        ck_assert_int_eq(mgrad_run_create(&run, m, fx->train, &o), MGRAD_OK);
        ck_assert_int_eq(mgrad_run_add_meta(&w, run, MGRAD_META_DATA_WEIGHTS, NULL), MGRAD_OK);
        ck_assert_int_eq(mgrad_meta_set_value(w, MGRAD_DTYPE_F64, fx->weights, N), MGRAD_OK);
        ck_assert_int_eq(mgrad_run_add_meta(&lr, run, MGRAD_META_LR_SCHEDULE, NULL), MGRAD_OK);
        ck_assert_int_eq(mgrad_meta_set_value(lr, MGRAD_DTYPE_F64, fx->sched, T), MGRAD_OK);
        ck_assert_int_eq(mgrad_run_train(run, NULL), MGRAD_OK);
        for (int e = 0; e < 2; e++) {
            double *v = per_seed + 2 * (e * S + s);
            ck_assert_int_eq(mgrad_run_evaluate(run, eval[e], &v[0], &v[1]), MGRAD_OK);
        }
        mgrad_run_destroy(run);
    }
    mgrad_model_destroy(m);
}

/* The score of the fixture's settings over S seeds from first_seed. */
static mgrad_status score(fixture *fx, mgrad_score_options *so, mgrad_score out[2],
                          double *per_seed)
{
    const mgrad_dataset *eval[2] = {fx->test, fx->val};
    out[0].version = out[1].version = MGRAD_SCORE_VERSION;
    return mgrad_score_run(fx->model, fx->train, &fx->ro, so, eval, 2, out, per_seed);
}

START_TEST(test_matches_by_hand)
{
    fixture fx;
    setup(&fx, _i == 0 ? MGRAD_DTYPE_F64 : MGRAD_DTYPE_F32);
    double before[512], after[512], got[2 * 2 * S], want[2 * 2 * S];
    theta0(&fx, before);
    uint64_t mem0 = 0, mem1 = 0;
    ck_assert_int_eq(mgrad_context_memory(fx.ctx, &mem0, NULL), MGRAD_OK);
    mgrad_score_options so = MGRAD_SCORE_OPTIONS_INIT;
    so.seeds = S;
    so.first_seed = 1000;
    so.settings = fx.settings;
    so.num_settings = 2;
    mgrad_score out[2];
    ck_assert_int_eq(score(&fx, &so, out, got), MGRAD_OK);
    ck_assert_int_eq(mgrad_context_memory(fx.ctx, &mem1, NULL), MGRAD_OK);
    ck_assert_uint_eq(mem1, mem0);
    theta0(&fx, after);
    ck_assert(memcmp(before, after, sizeof before) == 0); /* θ0 given back exactly */
    by_hand(&fx, 1000, want);
    ck_assert(memcmp(got, want, sizeof got) == 0);
    for (int e = 0; e < 2; e++) {
        double lm, ls, am, as;
        stats(want + 2 * e * S, S, 2, &lm, &ls);
        stats(want + 2 * e * S + 1, S, 2, &am, &as);
        ck_assert_int_eq(out[e].version, MGRAD_SCORE_VERSION);
        ck_assert_int_eq(out[e].n, S);
        ck_assert(out[e].loss_mean == lm && out[e].loss_std == ls);
        ck_assert(out[e].accuracy_mean == am && out[e].accuracy_std == as);
        ck_assert(ls > 0 && isfinite(lm) && am >= 0 && am <= 1);
    }
    teardown(&fx);
}
END_TEST

/* Same seeds, same bits; and the settings matter (they are applied). */
START_TEST(test_deterministic)
{
    fixture fx;
    setup(&fx, MGRAD_DTYPE_F32);
    mgrad_score_options so = MGRAD_SCORE_OPTIONS_INIT;
    so.seeds = S;
    so.settings = fx.settings;
    so.num_settings = 2;
    mgrad_score a[2], b[2], c[2];
    double pa[4 * S], pb[4 * S], pc[4 * S];
    ck_assert_int_eq(score(&fx, &so, a, pa), MGRAD_OK);
    ck_assert_int_eq(score(&fx, &so, b, pb), MGRAD_OK);
    ck_assert(memcmp(pa, pb, sizeof pa) == 0);
    ck_assert(memcmp(a, b, sizeof a) == 0);
    so.num_settings = 0;
    ck_assert_int_eq(score(&fx, &so, c, pc), MGRAD_OK);
    for (int s = 0; s < S; s++) ck_assert(pa[2 * s] != pc[2 * s]);
    teardown(&fx);
}
END_TEST

/* Each redraw flag makes the retrainings differ; with neither, they are
   one training repeated (std 0). */
START_TEST(test_redraw_flags)
{
    fixture fx;
    setup(&fx, MGRAD_DTYPE_F64);
    for (int flags = 0; flags < 4; flags++) {
        mgrad_score_options so = MGRAD_SCORE_OPTIONS_INIT;
        so.seeds = S;
        so.redraw_init = flags & 1;
        so.redraw_order = flags >> 1;
        mgrad_score out[2];
        double p[4 * S];
        ck_assert_int_eq(score(&fx, &so, out, p), MGRAD_OK);
        for (int s = 1; s < S; s++) {
            if (flags == 0)
                ck_assert(p[2 * s] == p[0] && p[2 * s + 1] == p[1]);
            else
                ck_assert_msg(p[2 * s] != p[0], "flags %d: retrainings 0 and %d agree", flags,
                              s);
        }
        if (flags == 0) ck_assert(out[0].loss_std == 0 && out[0].accuracy_std == 0);
    }
    teardown(&fx);
}
END_TEST

/* An explicit seed list gives each seed's retraining, in the list's order;
   the validation set (not scored) may be left to the first evaluation set. */
START_TEST(test_seed_list_and_validation)
{
    fixture fx;
    setup(&fx, MGRAD_DTYPE_F64);
    const uint64_t list[2] = {77, 5};
    mgrad_score_options so = MGRAD_SCORE_OPTIONS_INIT;
    so.seeds = 2;
    so.seed_list = list;
    mgrad_score out[2];
    double p[8], one[4];
    ck_assert_int_eq(score(&fx, &so, out, p), MGRAD_OK);
    so.seed_list = NULL;
    so.seeds = 1;
    for (int k = 0; k < 2; k++) {
        so.first_seed = list[k];
        ck_assert_int_eq(score(&fx, &so, out, one), MGRAD_OK);
        ck_assert(p[2 * k] == one[0] && p[2 * k + 1] == one[1]);         /* test set */
        ck_assert(p[4 + 2 * k] == one[2] && p[4 + 2 * k + 1] == one[3]); /* val set */
        ck_assert(out[0].loss_std == 0 && out[0].loss_mean == one[0]);
    }
    fx.ro.validation = NULL;
    ck_assert_int_eq(score(&fx, &so, out, one), MGRAD_OK);
    ck_assert(one[0] == p[2] && one[2] == p[6]);
    teardown(&fx);
}
END_TEST

/* Squared error has no accuracy: NaN, and so are its statistics. */
START_TEST(test_squared_error)
{
    fixture fx;
    setup(&fx, MGRAD_DTYPE_F64);
    mgrad_dataset *tr = NULL, *te = NULL;
    tf_data(fx.ctx, N, F, C, 8, 1, 1, &tr);
    tf_data(fx.ctx, NT, F, C, 9, 1, 1, &te);
    mgrad_run_options o = fx.ro;
    o.loss = MGRAD_LOSS_SQUARED_ERROR;
    o.validation = NULL;
    mgrad_score_options so = MGRAD_SCORE_OPTIONS_INIT;
    so.seeds = 2;
    mgrad_score out = MGRAD_SCORE_INIT;
    const mgrad_dataset *eval[1] = {te};
    ck_assert_int_eq(mgrad_score_run(fx.model, tr, &o, &so, eval, 1, &out, NULL), MGRAD_OK);
    ck_assert(isfinite(out.loss_mean) && out.loss_std > 0);
    ck_assert(isnan(out.accuracy_mean) && isnan(out.accuracy_std));
    mgrad_dataset_destroy(tr);
    mgrad_dataset_destroy(te);
    teardown(&fx);
}
END_TEST

/* A refused call: the status, a message containing `needle`, the outputs
   and θ0 unchanged, and the context's memory where it was. */
static void refused(fixture *fx, mgrad_model *model, const mgrad_run_options *ro,
                    const mgrad_score_options *so, const mgrad_dataset *const *eval, int n_eval,
                    mgrad_status status, const char *needle)
{
    double before[512], after[512];
    theta0(fx, before);
    uint64_t mem0 = 0, mem1 = 0;
    ck_assert_int_eq(mgrad_context_memory(fx->ctx, &mem0, NULL), MGRAD_OK);
    mgrad_score out[2], keep[2];
    memset(out, 0xA5, sizeof out);
    out[0].version = out[1].version = MGRAD_SCORE_VERSION;
    memcpy(keep, out, sizeof out);
    double p[64], pkeep[64];
    memset(p, 0xA5, sizeof p);
    memcpy(pkeep, p, sizeof p);
    mgrad_context_clear_error(fx->ctx);
    mgrad_status s = mgrad_score_run(model, fx->train, ro, so, eval, n_eval, out, p);
    ck_assert_msg(s == status, "got %s, expected %s (%s)", mgrad_status_string(s),
                  mgrad_status_string(status), mgrad_context_last_error(fx->ctx));
    if (needle != NULL)
        ck_assert_msg(strstr(mgrad_context_last_error(fx->ctx), needle) != NULL,
                      "message \"%s\" lacks \"%s\"", mgrad_context_last_error(fx->ctx),
                      needle);
    ck_assert(memcmp(out, keep, sizeof out) == 0);
    ck_assert(memcmp(p, pkeep, sizeof p) == 0);
    theta0(fx, after);
    ck_assert(memcmp(before, after, sizeof before) == 0);
    ck_assert_int_eq(mgrad_context_memory(fx->ctx, &mem1, NULL), MGRAD_OK);
    ck_assert_uint_eq(mem1, mem0);
}

START_TEST(test_errors)
{
    fixture fx;
    setup(&fx, MGRAD_DTYPE_F64);
    const mgrad_dataset *eval[2] = {fx.test, fx.val};
    const mgrad_dataset *null_eval[1] = {NULL};
    mgrad_score out[2] = {MGRAD_SCORE_INIT, MGRAD_SCORE_INIT};
    mgrad_score_options so = MGRAD_SCORE_OPTIONS_INIT;
    so.seeds = 2;
    /* NULLs: no context to write to */
    ck_assert_int_eq(mgrad_score_run(NULL, fx.train, &fx.ro, &so, eval, 1, out, NULL),
                     MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_score_run(fx.model, NULL, &fx.ro, &so, eval, 1, out, NULL),
                     MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_score_run(fx.model, fx.train, NULL, &so, eval, 1, out, NULL),
                     MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_score_run(fx.model, fx.train, &fx.ro, &so, NULL, 1, out, NULL),
                     MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_score_run(fx.model, fx.train, &fx.ro, &so, eval, 1, NULL, NULL),
                     MGRAD_ERR_NULL);
    refused(&fx, fx.model, &fx.ro, &so, null_eval, 1, MGRAD_ERR_NULL, NULL);

    mgrad_score_options bad = so;
    bad.version = 99;
    refused(&fx, fx.model, &fx.ro, &bad, eval, 2, MGRAD_ERR_VERSION, "options.version");
    bad = so;
    bad.seeds = 0;
    refused(&fx, fx.model, &fx.ro, &bad, eval, 2, MGRAD_ERR_INVALID, "options.seeds");
    bad = so;
    bad.redraw_init = 2;
    refused(&fx, fx.model, &fx.ro, &bad, eval, 2, MGRAD_ERR_INVALID, "redraw_init");
    bad = so;
    bad.redraw_order = -1;
    refused(&fx, fx.model, &fx.ro, &bad, eval, 2, MGRAD_ERR_INVALID, "redraw_order");
    bad = so;
    bad.num_settings = 1;
    refused(&fx, fx.model, &fx.ro, &bad, eval, 2, MGRAD_ERR_NULL, "options.settings");
    refused(&fx, fx.model, &fx.ro, &so, eval, 0, MGRAD_ERR_INVALID, "num_eval");

    /* explicit batches need redraw_order = 0 */
    int64_t batches[T * B];
    for (int i = 0; i < T * B; i++) batches[i] = (i * 7) % N;
    mgrad_run_options ro = fx.ro;
    ro.batches = batches;
    refused(&fx, fx.model, &ro, &so, eval, 2, MGRAD_ERR_INVALID, "redraw_order = 0");
    bad = so;
    bad.redraw_order = 0;
    mgrad_score ok[1] = {MGRAD_SCORE_INIT};
    ck_assert_int_eq(mgrad_score_run(fx.model, fx.train, &ro, &bad, eval, 1, ok, NULL),
                     MGRAD_OK);

    /* θ0 given and redrawn */
    double th[512];
    theta0(&fx, th);
    int64_t np = 0;
    ck_assert_int_eq(mgrad_model_num_params(fx.model, &np), MGRAD_OK);
    mgrad_score_setting init = {MGRAD_META_INITIAL_PARAMS, NULL, MGRAD_DTYPE_F64, th, np};
    bad = so;
    bad.settings = &init;
    bad.num_settings = 1;
    refused(&fx, fx.model, &fx.ro, &bad, eval, 2, MGRAD_ERR_INVALID, "INITIAL_PARAMS");

    /* a setting refused by the library: named, before any training */
    double neg[T];
    for (int t = 0; t < T; t++) neg[t] = t == 3 ? -0.1 : 0.1;
    mgrad_score_setting lr = {MGRAD_META_LR_SCHEDULE, NULL, MGRAD_DTYPE_F64, neg, T};
    bad.settings = &lr;
    refused(&fx, fx.model, &fx.ro, &bad, eval, 2, MGRAD_ERR_INVALID, "setting 0");
    lr.values = fx.sched;
    lr.count = T - 1;
    refused(&fx, fx.model, &fx.ro, &bad, eval, 2, MGRAD_ERR_SIZE, "setting 0");
    lr.dtype = (mgrad_dtype)7;
    lr.count = T;
    refused(&fx, fx.model, &fx.ro, &bad, eval, 2, MGRAD_ERR_DTYPE, "setting 0");

    /* an evaluation set that does not fit the model */
    mgrad_dataset *wide = NULL;
    tf_labelled_data(fx.ctx, NT, F + 1, C, 6, &wide);
    const mgrad_dataset *eval_wide[2] = {fx.test, wide};
    refused(&fx, fx.model, &fx.ro, &so, eval_wide, 2, MGRAD_ERR_SHAPE, "evaluation set 1");
    mgrad_dataset_destroy(wide);

    /* bad run options: mgrad_run_create's status and message */
    ro = fx.ro;
    ro.steps = 0;
    refused(&fx, fx.model, &ro, &so, eval, 2, MGRAD_ERR_INVALID, "steps");

    /* an out without its version */
    mgrad_score unversioned[2] = {MGRAD_SCORE_INIT, MGRAD_SCORE_INIT};
    unversioned[1].version = 0;
    ck_assert_int_eq(mgrad_score_run(fx.model, fx.train, &fx.ro, &so, eval, 2, unversioned,
                                     NULL), MGRAD_ERR_VERSION);
    ck_assert_int_eq(unversioned[0].n, 0);

    /* a retraining that diverges (squared error, a huge rate: the outputs
       overflow in the first steps, as in test_numeric.c) after the model was
       redrawn, so θ0 must come back; the message names the retraining */
    mgrad_dataset *tr = NULL, *te = NULL;
    tf_data(fx.ctx, N, F, C, 8, 1, 1, &tr);
    tf_data(fx.ctx, NT, F, C, 9, 1, 1, &te);
    mgrad_dataset *keep_train = fx.train;
    fx.train = tr;
    const mgrad_dataset *eval_se[1] = {te};
    ro = fx.ro;
    ro.loss = MGRAD_LOSS_SQUARED_ERROR;
    ro.validation = NULL;
    ro.lr = 1e306;
    refused(&fx, fx.model, &ro, &so, eval_se, 1, MGRAD_ERR_NONFINITE, "retraining 0 (seed 0)");
    fx.train = keep_train;
    mgrad_dataset_destroy(tr);
    mgrad_dataset_destroy(te);
    teardown(&fx);
}
END_TEST

START_TEST(test_options_init)
{
    mgrad_score_options a, b = MGRAD_SCORE_OPTIONS_INIT;
    memset(&a, 0x5A, sizeof a);
    ck_assert_int_eq(mgrad_score_options_init(&a, MGRAD_SCORE_OPTIONS_VERSION), MGRAD_OK);
    ck_assert(a.version == b.version && a.seeds == b.seeds && a.first_seed == b.first_seed &&
              a.seed_list == b.seed_list && a.redraw_init == b.redraw_init &&
              a.redraw_order == b.redraw_order && a.settings == b.settings &&
              a.num_settings == b.num_settings);
    ck_assert_int_eq(a.seeds, 5);
    ck_assert_int_eq(mgrad_score_options_init(NULL, MGRAD_SCORE_OPTIONS_VERSION),
                     MGRAD_ERR_NULL);
    memset(&a, 0x5A, sizeof a);
    memcpy(&b, &a, sizeof a);
    ck_assert_int_eq(mgrad_score_options_init(&a, 99), MGRAD_ERR_VERSION);
    ck_assert(memcmp(&a, &b, sizeof a) == 0);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("score");
    TCase *tc = tcase_create("score");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_matches_by_hand, 0, 2);
    tcase_add_test(tc, test_deterministic);
    tcase_add_test(tc, test_redraw_flags);
    tcase_add_test(tc, test_seed_list_and_validation);
    tcase_add_test(tc, test_squared_error);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_options_init);
    suite_add_tcase(s, tc);
    return s;
}
