/*
 * score.c - retrain from scratch over several seeds and score θ_T on
 * evaluation sets (see include/metagrad/score.h).
 *
 * Built on the public model, run and metaparameter API only (plus the base
 * module's allocator and errors), like lib/mgd: a retraining is the calls a
 * caller would make by hand, in the same order, so its numbers are those of
 * the hand-written loop bit for bit.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "metagrad/score.h"

#define FN "mgrad_score_run"
/* Enough for every use, small enough that seeds × sets × 2 cannot overflow. */
#define MAX_SEEDS 100000

mgrad_status mgrad_score_options_init(mgrad_score_options *opts, uint32_t version)
{
    if (opts == NULL) return MGRAD_ERR_NULL;
    if (version != MGRAD_SCORE_OPTIONS_VERSION) return MGRAD_ERR_VERSION;
    mgrad_score_options d = MGRAD_SCORE_OPTIONS_INIT;
    *opts = d;
    return MGRAD_OK;
}

/* Prefix the message of the call that just failed with where it happened.
   The message is copied first: mgr_error writes into the same buffer. */
static mgrad_status annotate(mgrad_context *ctx, mgrad_status status, const char *where)
{
    char inner[MGRAD_ERROR_CAPACITY];
    snprintf(inner, sizeof inner, "%s", mgrad_context_last_error(ctx));
    return mgr_error(ctx, status, FN ": %s: %s", where, inner);
}

static uint64_t seed_of(const mgrad_score_options *o, int32_t s)
{
    return o->seed_list != NULL ? o->seed_list[s] : o->first_seed + (uint64_t)s;
}

/* The options of retraining s: the caller's, with the shuffle seed of the
   retraining when asked.  The validation set is the caller's too: NULL
   makes a plain run (no φ, which the scores do not use; the validation set
   never affects θ_T). */
static mgrad_run_options retrain_options(const mgrad_run_options *run_opts,
                                         const mgrad_score_options *o, uint64_t seed)
{
    mgrad_run_options ro = *run_opts;
    if (o->redraw_order) ro.shuffle_seed = seed ^ (uint64_t)MGRAD_SCORE_SHUFFLE_MIX;
    return ro;
}

/* Register and set every setting on `run`.  `what` names the retraining in
   messages. */
static mgrad_status apply_settings(mgrad_context *ctx, mgrad_run *run,
                                   const mgrad_score_options *o, const char *what)
{
    for (int32_t k = 0; k < o->num_settings; k++) {
        const mgrad_score_setting *st = &o->settings[k];
        mgrad_meta *meta = NULL;
        char where[96];
        snprintf(where, sizeof where, "%s, setting %d (kind %d)", what, (int)k, (int)st->kind);
        mgrad_status s = mgrad_run_add_meta(&meta, run, st->kind, st->options);
        if (s == MGRAD_OK) s = mgrad_meta_set_value(meta, st->dtype, st->values, st->count);
        if (s != MGRAD_OK) return annotate(ctx, s, where);
    }
    return MGRAD_OK;
}

/* Everything that can be refused without training, on the run `probe`
   (created from the caller's options, never trained). */
static mgrad_status validate(mgrad_context *ctx, mgrad_run *probe, const mgrad_score_options *o,
                             const mgrad_run_options *run_opts,
                             const mgrad_dataset *const *eval, int32_t num_eval,
                             const mgrad_score *out)
{
    MGRAD_RETURN_IF(ctx, o->version != MGRAD_SCORE_OPTIONS_VERSION, MGRAD_ERR_VERSION,
                    FN ": options.version = %u; this library knows %d "
                    "(use MGRAD_SCORE_OPTIONS_INIT)", (unsigned)o->version,
                    MGRAD_SCORE_OPTIONS_VERSION);
    MGRAD_RETURN_IF(ctx, o->seeds < 1 || o->seeds > MAX_SEEDS, MGRAD_ERR_INVALID,
                    FN ": options.seeds = %d; retrain 1 to %d times", (int)o->seeds,
                    MAX_SEEDS);
    MGRAD_RETURN_IF(ctx, o->redraw_init != 0 && o->redraw_init != 1, MGRAD_ERR_INVALID,
                    FN ": options.redraw_init = %d; use 0 or 1", (int)o->redraw_init);
    MGRAD_RETURN_IF(ctx, o->redraw_order != 0 && o->redraw_order != 1, MGRAD_ERR_INVALID,
                    FN ": options.redraw_order = %d; use 0 or 1", (int)o->redraw_order);
    MGRAD_RETURN_IF(ctx, o->num_settings < 0, MGRAD_ERR_INVALID,
                    FN ": options.num_settings = %d is negative", (int)o->num_settings);
    MGRAD_RETURN_IF(ctx, o->num_settings > 0 && o->settings == NULL, MGRAD_ERR_NULL,
                    FN ": options.settings is NULL with num_settings = %d",
                    (int)o->num_settings);
    MGRAD_RETURN_IF(ctx, num_eval < 1, MGRAD_ERR_INVALID,
                    FN ": num_eval = %d; give at least one evaluation set", (int)num_eval);
    for (int32_t e = 0; e < num_eval; e++)
        MGRAD_RETURN_IF(ctx, out[e].version != MGRAD_SCORE_VERSION, MGRAD_ERR_VERSION,
                        FN ": out[%d].version = %u; this library knows %d "
                        "(use MGRAD_SCORE_INIT)", (int)e, (unsigned)out[e].version,
                        MGRAD_SCORE_VERSION);
    MGRAD_RETURN_IF(ctx, o->redraw_order && run_opts->batches != NULL, MGRAD_ERR_INVALID,
                    FN ": the run options have explicit batches, so the batch order cannot "
                    "be redrawn; set options.redraw_order = 0");
    for (int32_t k = 0; k < o->num_settings; k++)
        MGRAD_RETURN_IF(ctx, o->redraw_init && o->settings[k].kind ==
                        MGRAD_META_INITIAL_PARAMS, MGRAD_ERR_INVALID,
                        FN ": setting %d gives θ0 (INITIAL_PARAMS) while options.redraw_init "
                        "= 1 redraws it; set redraw_init = 0", (int)k);
    for (int32_t e = 0; e < num_eval; e++) {
        mgrad_status s = mgrad_run_check_dataset(probe, eval[e]);
        if (s != MGRAD_OK) {
            char where[48];
            snprintf(where, sizeof where, "evaluation set %d", (int)e);
            return annotate(ctx, s, where);
        }
    }
    return apply_settings(ctx, probe, o, "settings");
}

/* Mean and sample standard deviation, summed in index order (the examples'
   app_mean_std, whose numbers this reproduces). */
static void mean_std(const double *x, int32_t n, int32_t stride, double *mean, double *std)
{
    double m = 0, v = 0;
    for (int32_t i = 0; i < n; i++) m += x[i * stride];
    m /= n;
    for (int32_t i = 0; i < n; i++) v += (x[i * stride] - m) * (x[i * stride] - m);
    *mean = m;
    *std = n > 1 ? sqrt(v / (n - 1)) : 0;
}

/* One retraining: run, settings, train, evaluate into vals[2 (e n + s)]. */
static mgrad_status retrain(mgrad_context *ctx, mgrad_model *model, mgrad_dataset *train,
                            const mgrad_run_options *run_opts, const mgrad_score_options *o,
                            const double *theta0, int64_t num_params,
                            const mgrad_dataset *const *eval, int32_t num_eval, int32_t s,
                            double *vals)
{
    uint64_t seed = seed_of(o, s);
    char what[64];
    snprintf(what, sizeof what, "retraining %d (seed %llu)", (int)s, (unsigned long long)seed);
    mgrad_run_options ro = retrain_options(run_opts, o, seed);
    mgrad_run *run = NULL;
    mgrad_status st = MGRAD_OK;
    if (o->redraw_init) st = mgrad_model_init_params(model, seed);
    if (st == MGRAD_OK) st = mgrad_run_create(&run, model, train, &ro);
    if (o->redraw_init) {
        /* The run copied θ0: give the model its own back at once. */
        mgrad_status r = mgrad_model_set_params(model, MGRAD_DTYPE_F64, theta0, num_params);
        if (r != MGRAD_OK && st == MGRAD_OK) st = r;
    }
    if (st != MGRAD_OK) {
        mgrad_run_destroy(run);
        return annotate(ctx, st, what);
    }
    st = apply_settings(ctx, run, o, what);
    if (st == MGRAD_OK) {
        st = mgrad_run_train(run, NULL);
        if (st != MGRAD_OK) st = annotate(ctx, st, what);
    }
    for (int32_t e = 0; e < num_eval && st == MGRAD_OK; e++) {
        double *v = vals + 2 * ((int64_t)e * o->seeds + s);
        st = mgrad_run_evaluate(run, eval[e], &v[0], &v[1]);
        if (st != MGRAD_OK) st = annotate(ctx, st, what);
    }
    mgrad_run_destroy(run);
    return st;
}

mgrad_status mgrad_score_run(mgrad_model *model, mgrad_dataset *train,
                             const mgrad_run_options *run_opts, const mgrad_score_options *opts,
                             const mgrad_dataset *const *eval, int32_t num_eval,
                             mgrad_score *out, double *per_seed)
{
    if (model == NULL || train == NULL || run_opts == NULL || eval == NULL || out == NULL)
        return MGRAD_ERR_NULL;
    for (int32_t e = 0; e < num_eval; e++)
        if (eval[e] == NULL) return MGRAD_ERR_NULL;
    mgrad_score_options defaults = MGRAD_SCORE_OPTIONS_INIT;
    const mgrad_score_options *o = opts != NULL ? opts : &defaults;

    /* A run from the caller's options gives the context (the public API has
       no other way to it from a model) and validates the options and data
       before the model is touched or anything is trained. */
    mgrad_run *probe = NULL;
    mgrad_status st = mgrad_run_create(&probe, model, train, run_opts);
    if (st != MGRAD_OK) return st;
    mgrad_context *ctx = NULL;
    st = mgrad_run_context(probe, &ctx);
    if (st == MGRAD_OK) st = validate(ctx, probe, o, run_opts, eval, num_eval, out);
    mgrad_run_destroy(probe);
    if (st != MGRAD_OK) return st;

    int64_t num_params = 0;
    double *theta0 = NULL, *vals = NULL;
    MGRAD_FORWARD(mgrad_model_num_params(model, &num_params));
    if (o->redraw_init) {
        st = mgr_alloc_or_fail(ctx, (void **)&theta0, (size_t)num_params, sizeof(double),
                               FN ": a copy of θ0");
        if (st == MGRAD_OK)
            st = mgrad_model_get_params(model, MGRAD_DTYPE_F64, theta0, num_params);
    }
    if (st == MGRAD_OK)
        st = mgr_alloc_or_fail(ctx, (void **)&vals, (size_t)num_eval * (size_t)o->seeds * 2,
                               sizeof(double), FN ": the scores");
    for (int32_t s = 0; s < o->seeds && st == MGRAD_OK; s++)
        st = retrain(ctx, model, train, run_opts, o, theta0, num_params, eval, num_eval, s,
                     vals);
    if (st == MGRAD_OK) {
        for (int32_t e = 0; e < num_eval; e++) {
            const double *v = vals + 2 * (int64_t)e * o->seeds;
            mgrad_score r = MGRAD_SCORE_INIT;
            r.n = o->seeds;
            mean_std(v, o->seeds, 2, &r.loss_mean, &r.loss_std);
            mean_std(v + 1, o->seeds, 2, &r.accuracy_mean, &r.accuracy_std);
            out[e] = r;
        }
        if (per_seed != NULL)
            memcpy(per_seed, vals, sizeof(double) * 2 * (size_t)num_eval * (size_t)o->seeds);
    }
    mgr_free(ctx, theta0);
    mgr_free(ctx, vals);
    return st;
}
