/*
 * lr_schedule.c - learn a per-step learning-rate schedule by metagradient
 * descent, and compare it with hand-designed schedules of the same length.
 *
 * Every schedule trains the same model (MLP 784-128-10, SGD with momentum)
 * for the same T steps on a Fashion-MNIST subset.  Baselines, each tuned on
 * a held-out split: the best constant rate, step decay (×0.1 at 50% and 75%),
 * cosine decay, and the best of a grid of one-cycle schedules (linear warm-up
 * to a peak, then linear decay to 0).  MGD starts from a flat schedule and
 * runs Adam on a piecewise-linear schedule (11 knots) with the metagradient
 * dφ/dη_t mapped onto the knots, each meta-step on a new batch order (φ:
 * loss on a target split; the best iterate chosen on the held-out split).  Each schedule is
 * then retrained with seeds no method saw and scored on the official test split.
 *
 * Prints a table and writes into --out: lr_schedule.csv (per schedule: the
 * trainings used to tune it, its held-out loss, test accuracy mean and std
 * over the retrainings), lr_schedule_steps.csv (the schedules, per step),
 * lr_schedule_progress.csv (MGD's objective per meta-step) and
 * lr_schedule.json (a summary); examples/python/plot_results.py draws the
 * figures from them.
 *
 * Usage: lr_schedule [--quick | --smoke] [--meta-steps M] [--seeds S] [--out DIR]
 *        (--help: all options)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <metagrad.h>

#include "common/apputil.h"
#include "common/flags.h"

enum { NMETHODS = 5 };

typedef struct setup {
    mgrad_context *ctx;
    app_train cfg;
    mgrad_dataset *train, *target, *heldout, *test;
} setup;

/* Held-out loss after training with `schedule` (seed 1, fixed batches). */
static int heldout_loss(const setup *s, const double *schedule, double *loss)
{
    mgrad_model *m = NULL;
    mgrad_run *run = NULL;
    if (app_run(s->ctx, &s->cfg, s->train, s->target, 1, 1, schedule, &m, &run)) return 1;
    mgrad_status st = mgrad_run_train(run, NULL);
    if (st == MGRAD_ERR_NONFINITE) {
        *loss = INFINITY;  /* diverged: a bad schedule, not an error */
    } else {
        APP_CHECK(s->ctx, st);
        APP_CHECK(s->ctx, mgrad_run_evaluate(run, s->heldout, loss, NULL));
    }
    mgrad_run_destroy(run);
    mgrad_model_destroy(m);
    return 0;
}

typedef void (*shape_fn)(double *sched, int64_t T, double peak, double param);

static void constant(double *s, int64_t T, double peak, double p)
{
    (void)p;
    for (int64_t t = 0; t < T; t++) s[t] = peak;
}

static void step_decay(double *s, int64_t T, double peak, double p)
{
    (void)p;
    for (int64_t t = 0; t < T; t++) s[t] = peak * (t < T / 2 ? 1 : t < 3 * T / 4 ? 0.1 : 0.01);
}

static void cosine(double *s, int64_t T, double peak, double p)
{
    (void)p;
    for (int64_t t = 0; t < T; t++) s[t] = 0.5 * peak * (1 + cos(3.14159265358979323846 * (double)t / (double)T));
}

/* p: the share of steps spent warming up */
static void one_cycle(double *s, int64_t T, double peak, double p)
{
    int64_t w = (int64_t)(p * (double)T);
    if (w < 1) w = 1;
    for (int64_t t = 0; t < T; t++)
        s[t] = t < w ? peak * (double)(t + 1) / (double)w
                     : peak * (double)(T - t) / (double)(T - w);
}

/* The best schedule of a family over a grid, by held-out loss. */
static int tune(const setup *s, shape_fn shape, const double *peaks, int npeaks,
                const double *params, int nparams, double *best, double *best_loss,
                int *tried)
{
    int64_t T = s->cfg.steps;
    double *cand = malloc(sizeof(double) * (size_t)T);
    *best_loss = INFINITY;
    for (int i = 0; i < npeaks; i++)
        for (int j = 0; j < nparams; j++) {
            double loss = 0;
            shape(cand, T, peaks[i], params[j]);
            if (heldout_loss(s, cand, &loss)) return 1;
            (*tried)++;
            if (loss < *best_loss) {
                *best_loss = loss;
                memcpy(best, cand, sizeof(double) * (size_t)T);
            }
        }
    free(cand);
    return 0;
}

int main(int argc, char **argv)
{
    int meta_steps = 50, seeds = 3;
    int64_t ntrain = 4000;
    const char *out = ".";
    setup s = {NULL, {.steps = 300, .batch = 64, .lr = 0.05, .momentum = 0.9, .hidden = 128}, NULL, NULL, NULL, NULL};
    int quick = 0, smoke = 0;
    int64_t meta_flag = 0, seeds_flag = 0; /* 0: the mode's default */
    const app_flag flags[] = {
        APP_FLAG_QUICK(&quick),
        APP_FLAG_SMOKE(&smoke),
        {"--meta-steps", APP_FLAG_INT, &meta_flag, "M", "MGD meta-steps on the schedule", 1,
         1000},
        {"--seeds", APP_FLAG_INT, &seeds_flag, "S",
         "retrainings per schedule, with unseen seeds", 1, 16},
        APP_FLAG_OUT(&out),
    };
    const app_cmdline cmd = {"Learn a learning-rate schedule by metagradient descent and "
                             "compare it with tuned hand-designed schedules (Fashion-MNIST).",
                             flags, (int)(sizeof flags / sizeof *flags), NULL, 0};
    int rc = app_parse_app_flags(&cmd, argc, argv, &quick, &smoke);
    if (rc != APP_FLAGS_RUN) return rc;
    if (quick) {
        meta_steps = 25;
        ntrain = 2000;
        s.cfg.steps = 200;
    } else if (smoke) { /* a tiny configuration: seconds */
        meta_steps = 2;
        ntrain = 200;
        seeds = 1;
        s.cfg.steps = 30;
    }
    if (meta_flag) meta_steps = (int)meta_flag;
    if (seeds_flag) seeds = (int)seeds_flag;
    mgrad_dataset *all = NULL;
    if ((rc = app_start_fmnist(argv[0], out, &s.ctx, &all, &s.test)) != 0) return rc;
    mgrad_context *ctx = s.ctx;
    if (app_splits(ctx, all, ntrain, 1000, 1000, 11, &s.train, &s.target, &s.heldout)) return 1;
    int64_t T = s.cfg.steps;
    printf("Fashion-MNIST LR schedules: train %lld, target 1000, held-out 1000; MLP 784-128-10, "
           "SGD momentum 0.9, T = %lld, B = %lld\n", (long long)ntrain, (long long)T,
           (long long)s.cfg.batch);

    const char *names[NMETHODS] = {"constant", "step decay", "cosine", "one-cycle", "MGD"};
    double *sched[NMETHODS], tuned_loss[NMETHODS];
    int tried[NMETHODS] = {0};
    for (int k = 0; k < NMETHODS; k++) sched[k] = malloc(sizeof(double) * (size_t)T);
    const double peaks[] = {0.01, 0.02, 0.05, 0.1, 0.2, 0.4};
    const double none[] = {0};
    const double warmups[] = {0.1, 0.2, 0.3, 0.4, 0.5};
    if (tune(&s, constant, peaks, 6, none, 1, sched[0], &tuned_loss[0], &tried[0]) ||
        tune(&s, step_decay, peaks, 6, none, 1, sched[1], &tuned_loss[1], &tried[1]) ||
        tune(&s, cosine, peaks, 6, none, 1, sched[2], &tuned_loss[2], &tried[2]) ||
        tune(&s, one_cycle, peaks, 6, warmups, 5, sched[3], &tuned_loss[3], &tried[3]))
        return 1;

    /* MGD from a flat start at the middle of the grid, on a piecewise-linear
       schedule (KNOTS hat functions): a per-step schedule would fit the one
       batch order MGD sees; a few knots generalise to unseen seeds. */
    enum { KNOTS = 11 };
    double *log = calloc((size_t)(2 * meta_steps), sizeof(double));
    double *basis = malloc(sizeof(double) * (size_t)T * KNOTS), knots[KNOTS];
    for (int64_t t = 0; t < T; t++) {
        double pos = (double)t / (double)(T - 1) * (KNOTS - 1);
        for (int j = 0; j < KNOTS; j++) basis[t * KNOTS + j] = fmax(0, 1 - fabs(pos - j));
    }
    for (int j = 0; j < KNOTS; j++) knots[j] = s.cfg.lr;
    {
        mgrad_model *m = NULL;
        mgrad_run *run = NULL;
        mgrad_meta *lr = NULL;
        mgrad_mgd *mgd = NULL;
        if (app_run(ctx, &s.cfg, s.train, s.target, 1, 1, NULL, &m, &run)) return 1;
        APP_CHECK(ctx, mgrad_run_add_meta(&lr, run, MGRAD_META_LR_SCHEDULE, NULL));
        double box[2] = {0, 0.5};
        APP_CHECK(ctx, mgrad_mgd_create(&mgd, lr, MGRAD_MGD_ADAM));
        APP_CHECK(ctx, mgrad_mgd_set_real(mgd, MGRAD_MGD_PARAM_LR, 0.005));
        APP_CHECK(ctx, mgrad_mgd_set_projection(mgd, MGRAD_PROJECT_BOX, box, 2));
        APP_CHECK(ctx, mgrad_mgd_set_basis(mgd, basis, KNOTS, knots));
        /* a new batch order every meta-step: fit no single one */
        APP_CHECK(ctx, mgrad_mgd_set_int(mgd, MGRAD_MGD_PARAM_RESHUFFLE, 1));
        APP_CHECK(ctx, mgrad_mgd_set_heldout(mgd, s.heldout));
        APP_CHECK(ctx, mgrad_mgd_set_progress(mgd, app_progress, log));
        printf("MGD from a flat schedule at %.3f, %d knots (%d meta-steps):\n", s.cfg.lr,
               KNOTS, meta_steps);
        APP_CHECK(ctx, mgrad_mgd_run(mgd, meta_steps));
        APP_CHECK(ctx, mgrad_mgd_best(mgd, MGRAD_DTYPE_F64, sched[4], T, &tuned_loss[4]));
        tried[4] = meta_steps + 1;
        mgrad_mgd_destroy(mgd);
        mgrad_run_destroy(run);
        mgrad_model_destroy(m);
    }

    printf("\n%-11s %9s %14s  %s\n", "schedule", "trainings", "held-out loss",
           "test accuracy (mean ± std over unseen seeds)");
    double mean[NMETHODS], sd[NMETHODS], table[NMETHODS * 5];
    for (int k = 0; k < NMETHODS; k++) {
        if (app_score(ctx, &s.cfg, s.train, s.test, 7919u, 101, seeds, sched[k], &mean[k],
                      &sd[k]))
            return 1;
        printf("%-11s %9d %14.4f  %6.2f%% ± %.2f%%\n", names[k], tried[k], tuned_loss[k],
               100 * mean[k], 100 * sd[k]);
        table[5 * k] = tried[k];
        table[5 * k + 1] = tuned_loss[k];
        table[5 * k + 2] = mean[k];
        table[5 * k + 3] = sd[k];
        table[5 * k + 4] = seeds;
    }

    char path[4096];
    int failures = 0;
    snprintf(path, sizeof path, "%s/lr_schedule.csv", out);
    failures += app_write_named_csv(path,
                                    "schedule,trainings,heldout_loss,test_accuracy_mean,"
                                    "test_accuracy_std,seeds",
                                    names, table, NMETHODS, 5) != 0;
    double *rows = malloc(sizeof(double) * (size_t)(T * (NMETHODS + 1)));
    if (rows == NULL) return 1;
    for (int64_t t = 0; t < T; t++) {
        rows[t * (NMETHODS + 1)] = (double)t;
        for (int k = 0; k < NMETHODS; k++) rows[t * (NMETHODS + 1) + 1 + k] = sched[k][t];
    }
    snprintf(path, sizeof path, "%s/lr_schedule_steps.csv", out);
    if (app_write_csv(path, "step,constant,step_decay,cosine,one_cycle,mgd", rows, (int)T,
                      NMETHODS + 1) != 0) {
        perror(path);
        failures++;
    }
    failures += app_write_progress(out, "lr_schedule_progress.csv", log, meta_steps) != 0;
    const app_number fields[] = {
        {"train", (double)ntrain},  {"train_steps", (double)T}, {"batch", (double)s.cfg.batch},
        {"meta_steps", meta_steps}, {"knots", KNOTS},           {"seeds", seeds}};
    snprintf(path, sizeof path, "%s/lr_schedule.json", out);
    failures += app_write_summary(path, "lr_schedule",
                                  quick   ? "quick"
                                  : smoke ? "smoke"
                                          : "full",
                                  fields, 6, names, mean, sd, NMETHODS) != 0;
    int status = app_outputs_done(out,
                                  "lr_schedule.csv, lr_schedule_steps.csv, "
                                  "lr_schedule_progress.csv, lr_schedule.json",
                                  failures);

    for (int k = 0; k < NMETHODS; k++) free(sched[k]);
    free(basis);
    free(rows);
    free(log);
    mgrad_dataset_destroy(s.train);
    mgrad_dataset_destroy(s.target);
    mgrad_dataset_destroy(s.heldout);
    mgrad_dataset_destroy(s.test);
    mgrad_dataset_destroy(all);
    mgrad_context_destroy(ctx);
    return status;
}
