/*
 * data_selection.c - choose a training subset by metagradient descent.
 *
 * A candidate pool of Fashion-MNIST images has realistic defects that the
 * method is not told about: a share of the labels is flipped and a share of
 * the images is replaced by noise.  Each method selects K of the N
 * candidates; a model is then trained from scratch on the selection with
 * seeds no method saw, and scored on the official test split.
 *
 *   whole pool    all N candidates
 *   random        K candidates drawn at random
 *   small loss    the K candidates with the lowest loss under a model
 *                 trained on the whole pool (a standard noisy-label filter)
 *   MGD           Algorithm 1 of Engstrom et al. (2025), fixed-budget
 *                 variant: counts over the pool as data weights, the
 *                 metagradient of the clean target split's loss through the
 *                 step-k relaxation, exchange of counts each meta-step, the
 *                 best iterate chosen on a held-out split
 *
 * --keep-drop 1 replaces MGD's exchange of counts by MGRAD_MGD_KEEP_DROP: a 0/1
 * selection of exactly K distinct candidates, swapping kept for dropped ones.
 * With --cnn the program also prints how well MGD's first metagradient
 * ranks the defective candidates (the AUC: the chance that a defective
 * candidate's dφ/dz is above a clean one's; 0.5 is chance), the paper's
 * metasmoothness point made measurable,
 * and, for information only (not a method: the defects are told), the
 * test accuracy of retraining on the clean candidates alone, the ceiling
 * of any selection (a line of the table and oracle_* fields of the JSON).
 *
 * --cnn runs the same experiment at convolutional scale: the small ResNet of
 * examples/common/apputil.h (APP_MODEL_RESNET), for the inner runs, the
 * small-loss filter's model and every retraining alike, with its own pool
 * sizes, training setup and MGD settings (see cnn_config below and
 * docs/applications.md); --cnn alone is the full run (under 30 minutes on
 * one core), --cnn --quick a few minutes, --cnn --smoke seconds.
 *
 * Prints a table and writes into --out: data_selection.csv (test accuracy
 * per method, mean and std over the retrainings, and the defective share of
 * each selection), data_selection_progress.csv (MGD's objective per
 * meta-step) and data_selection.json (a summary); with --cnn the files are
 * data_selection_cnn.csv, data_selection_cnn_progress.csv and
 * data_selection_cnn.json, so that both runs can share a directory.
 * examples/python/plot_results.py draws the figures from them.
 *
 * Usage: data_selection [--cnn] [--quick | --smoke] [--pool N] [--select K]
 *                       [--meta-steps M] [--seeds S] [--keep-drop 0|1] [--out DIR]
 *                       (--help: all options)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <metagrad.h>

#include "common/apputil.h"
#include "common/flags.h"

typedef struct options {
    int64_t pool, select, target, heldout;
    int meta_steps, seeds, exchange;
    double flip_share, noise_share;
    const char *out;
    app_train train;
    int keep_drop; /* MGD method KEEP_DROP instead of EXCHANGE */
} options;

/* Every draw of the program, in order, from one fixed seed. */
static app_rng rng = {0x853c49e6748fea9bull};

/* Retrain S times on the multiset `rows` and report test accuracy. */
static int score_selection(mgrad_context *ctx, const options *o, const mgrad_dataset *pool,
                           const int64_t *rows, int64_t n, const mgrad_dataset *test,
                           double *mean, double *std)
{
    mgrad_dataset *sel = NULL;
    if (app_dataset_from(ctx, pool, rows, n, NULL, NULL, &sel) ||
        app_score(ctx, &o->train, sel, test, 1000003u, 17, o->seeds, NULL, mean, std))
        return 1;
    mgrad_dataset_destroy(sel);
    return 0;
}

/* The chance that a defective candidate's metagradient is above a clean
   one's (ties count half): how well dφ/dz ranks the defects that MGD should
   drop.  O(N log N) by ranks. */
typedef struct scored {
    double g;
    int bad;
} scored;

static int by_g(const void *a, const void *b)
{
    double x = ((const scored *)a)->g, y = ((const scored *)b)->g;
    return (x > y) - (x < y);
}

static double defect_auc(const double *g, const char *defect, int64_t n)
{
    scored *v = malloc(sizeof(scored) * (size_t)n);
    if (v == NULL) return NAN;
    for (int64_t i = 0; i < n; i++) v[i] = (scored){g[i], defect[i] != 0};
    qsort(v, (size_t)n, sizeof *v, by_g);
    double rank_sum = 0, nbad = 0;
    for (int64_t a = 0; a < n;) { /* a tie group [a, b) shares its mean rank */
        int64_t b = a;
        while (b < n && v[b].g == v[a].g) b++;
        double rank = 0.5 * (double)(a + 1 + b);
        for (int64_t c = a; c < b; c++)
            if (v[c].bad) {
                rank_sum += rank;
                nbad++;
            }
        a = b;
    }
    free(v);
    double ngood = (double)n - nbad;
    if (nbad == 0 || ngood == 0) return NAN;
    return (rank_sum - nbad * (nbad + 1) / 2) / (nbad * ngood);
}

/* The CNN-scale configuration (--cnn): the small ResNet, and sizes that fit
   the full run into 30 minutes on one core (a meta-step is a training and a
   reverse pass, about 3.4 trainings).  The training setup is a smooth one:
   the first metagradient ranks the defective candidates only while the
   effective step lr / (1 − momentum) stays small (at K = N / 2: AUC about
   0.93 at 0.02, 0.83 at 0.04 (used here), near chance from 0.06 up;
   docs/applications.md), and the edge moves with the run (at K = 0.65 N
   the full run's first metagradient was at chance, 0.48, and later ones
   still lowered the held-out loss).  The retrainings use the same setup,
   so that every method is scored under one setup.  K is the clean share
   of the pool (65%), so that a perfect selection could drop exactly the
   defects: the oracle row (the clean candidates, for information) then
   bounds what a selection can reach.
   Chosen at the --quick size on MGD's held-out loss: K = 0.65 N beat
   K = N / 2; EXCHANGE beat KEEP_DROP; momentum 0.5 beat momentum 0 (the
   smoother metagradient, AUC 0.93, but a model that trains less well);
   docs/applications.md has the figures. */
static void cnn_config(options *o, int quick, int smoke)
{
    o->train = (app_train){.steps = 300, .batch = 64, .lr = 0.02, .momentum = 0.5, .hidden = 8,
                           .model = APP_MODEL_RESNET};
    o->pool = 2000;
    o->select = 1300;
    o->target = 500;
    o->heldout = 500;
    o->meta_steps = 30;
    o->exchange = 30;
    o->seeds = 5;
    if (quick) {
        o->pool = 1000;
        o->select = 650;
        o->train.steps = 200;
        o->meta_steps = 8;
        o->exchange = 30;
        o->seeds = 2;
    } else if (smoke) {
        o->pool = 200;
        o->select = 130;
        o->target = 100;
        o->heldout = 100;
        o->train.steps = 20;
        o->meta_steps = 2;
        o->exchange = 10;
        o->seeds = 1;
    }
}

int main(int argc, char **argv)
{
    /* A smooth training setup (moderate step size, light momentum): the
       metagradient is only informative when training is metasmooth. */
    options o = {4000, 2000, 1000, 1000, 40, 3, 40, 0.25, 0.10, ".",
                 {.steps = 400, .batch = 64, .lr = 0.02, .momentum = 0.5, .hidden = 128}, 0};
    int quick = 0, smoke = 0, cnn = 0;
    int64_t pool_flag = 0, select_flag = 0, meta_flag = 0, seeds_flag = 0, exchange_flag = 0,
            steps_flag = 0; /* 0: the mode's default */
    int64_t keep_drop_flag = -1;            /* -1: the mode's default (0 and 1 are values) */
    double lr_flag = 0, momentum_flag = -1; /* likewise */
    const app_flag flags[] = {
        {"--cnn", APP_FLAG_SWITCH, &cnn, NULL,
         "the small ResNet and the CNN-scale configuration (with --quick or --smoke: their "
         "CNN versions)", 0, 0},
        APP_FLAG_QUICK(&quick),
        APP_FLAG_SMOKE(&smoke),
        {"--pool", APP_FLAG_INT, &pool_flag, "N", "candidates in the pool", 2, 50000},
        {"--select", APP_FLAG_INT, &select_flag, "K", "candidates to select, fewer than N", 1,
         49999},
        {"--meta-steps", APP_FLAG_INT, &meta_flag, "M", "MGD meta-steps", 1, 500},
        {"--seeds", APP_FLAG_INT, &seeds_flag, "S", "retrainings per method, with unseen seeds",
         1, 16},
        {"--keep-drop", APP_FLAG_INT, &keep_drop_flag, "0|1",
         "1: MGD selects exactly K distinct candidates (KEEP_DROP); 0: it exchanges counts "
         "(EXCHANGE, the default)", 0, 1},
        {"--exchange", APP_FLAG_INT, &exchange_flag, "E",
         "units of count moved (or candidates swapped) per meta-step", 1, 25000},
        {"--train-steps", APP_FLAG_INT, &steps_flag, "T", "SGD steps of every training", 1,
         100000},
        {"--lr", APP_FLAG_REAL, &lr_flag, "LR", "SGD step size of every training", 1e-6, 10},
        {"--momentum", APP_FLAG_REAL, &momentum_flag, "MU", "SGD momentum of every training", 0,
         0.99},
        APP_FLAG_OUT(&o.out),
    };
    const app_cmdline cmd = {"Select a training subset of a defective Fashion-MNIST pool by "
                             "metagradient descent.",
                             flags, (int)(sizeof flags / sizeof *flags), NULL, 0};
    int rc = app_parse_app_flags(&cmd, argc, argv, &quick, &smoke);
    if (rc != APP_FLAGS_RUN) return rc;
    if (cnn) {
        cnn_config(&o, quick, smoke);
    } else if (quick) {
        o.pool = 2000;
        o.select = 1000;
        o.meta_steps = 25;
        o.exchange = 25;
        o.target = 500;
        o.heldout = 500;
    } else if (smoke) { /* a tiny configuration: seconds */
        o.pool = 200;
        o.select = 100;
        o.meta_steps = 2;
        o.exchange = 10;
        o.target = 100;
        o.heldout = 100;
        o.seeds = 1;
        o.train.steps = 30;
    }
    if (pool_flag) o.pool = pool_flag;
    if (select_flag) o.select = select_flag;
    if (meta_flag) o.meta_steps = (int)meta_flag;
    if (seeds_flag) o.seeds = (int)seeds_flag;
    if (exchange_flag) o.exchange = (int)exchange_flag;
    if (steps_flag) o.train.steps = steps_flag;
    if (lr_flag > 0) o.train.lr = lr_flag;
    if (momentum_flag >= 0) o.train.momentum = momentum_flag;
    if (keep_drop_flag >= 0) o.keep_drop = (int)keep_drop_flag;
    if (o.select >= o.pool) return app_usage_error(&cmd, argv[0], "need --select below --pool");
    if (o.exchange > (o.keep_drop ? (o.select < o.pool - o.select ? o.select
                                                                   : o.pool - o.select)
                                  : o.pool / 2))
        return app_usage_error(&cmd, argv[0],
                               "--exchange too large for the pool (at most N/2, or with "
                               "--keep-drop min(K, N - K))");
    mgrad_context *ctx = NULL;
    mgrad_dataset *all = NULL, *test = NULL;
    if ((rc = app_start_fmnist(argv[0], o.out, &ctx, &all, &test)) != 0) return rc;

    /* Disjoint rows of the official training split: pool, target, held-out. */
    int64_t N = o.pool, K = o.select, total = 0;
    APP_CHECK(ctx, mgrad_dataset_size(all, &total));
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)total);
    for (int64_t i = 0; i < total; i++) perm[i] = i;
    app_shuffle(&rng, perm, total);
    mgrad_dataset *target = NULL, *heldout = NULL, *pool = NULL;
    if (app_dataset_from(ctx, all, perm + N, o.target, NULL, NULL, &target) ||
        app_dataset_from(ctx, all, perm + N + o.target, o.heldout, NULL, NULL, &heldout))
        return 1;
    /* Defects: flipped labels on one share, noise images on another. */
    int32_t *labels = malloc(sizeof(int32_t) * (size_t)N);
    float *x = malloc(sizeof(float) * (size_t)N * 784);
    mgrad_dataset *clean = NULL;
    if (app_dataset_from(ctx, all, perm, N, NULL, NULL, &clean)) return 1;
    APP_CHECK(ctx, mgrad_dataset_get_labels(clean, labels, N));
    APP_CHECK(ctx, mgrad_dataset_get_inputs(clean, MGRAD_DTYPE_F32, x, N * 784));
    int64_t nflip = (int64_t)(o.flip_share * N), nnoise = (int64_t)(o.noise_share * N);
    char *defect = calloc((size_t)N, 1);
    for (int64_t i = 0; i < nflip + nnoise; i++) {
        int64_t r = (int64_t)(app_urand(&rng) * N);
        while (defect[r]) r = (r + 1) % N;
        defect[r] = i < nflip ? 1 : 2;
        if (defect[r] == 1)
            labels[r] = (labels[r] + 1 + (int32_t)(app_urand(&rng) * 9)) % 10;
        else
            for (int j = 0; j < 784; j++) x[r * 784 + j] = (float)app_urand(&rng);
    }
    int64_t *ident = malloc(sizeof(int64_t) * (size_t)N);
    for (int64_t i = 0; i < N; i++) ident[i] = i;
    if (app_dataset_from(ctx, clean, ident, N, labels, x, &pool)) return 1;
    mgrad_dataset_destroy(clean);
    if (cnn)
        printf("Fashion-MNIST data selection: pool %lld (%lld labels flipped, %lld images "
               "noise), select %lld; target %lld, held-out %lld; %s, T = %lld, B = %lld, "
               "lr %g, momentum %g\n", (long long)N, (long long)nflip, (long long)nnoise,
               (long long)K, (long long)o.target, (long long)o.heldout,
               app_model_name(&o.train), (long long)o.train.steps, (long long)o.train.batch,
               o.train.lr, o.train.momentum);
    else /* the MLP's line as it always was */
        printf("Fashion-MNIST data selection: pool %lld (%lld labels flipped, %lld images "
               "noise), select %lld; target %lld, held-out %lld; MLP 784-%d-10, T = %lld, "
               "B = %lld\n", (long long)N, (long long)nflip, (long long)nnoise, (long long)K,
               (long long)o.target, (long long)o.heldout, o.train.hidden,
               (long long)o.train.steps, (long long)o.train.batch);

    const char *names[4] = {"whole pool", "random", "small loss", "MGD"};
    double mean[4], sd[4], bad_share[4];
    int64_t *sel = malloc(sizeof(int64_t) * (size_t)N);

    /* whole pool and random */
    if (score_selection(ctx, &o, pool, ident, N, test, &mean[0], &sd[0])) return 1;
    bad_share[0] = (double)(nflip + nnoise) / (double)N;
    /* With --cnn, an oracle for information, not a method: the clean
       candidates only (the defects told), the ceiling a selection could
       reach.  No draw of rng, so the methods below are unaffected. */
    double oracle_mean = NAN, oracle_sd = NAN;
    int64_t nclean = 0;
    if (cnn) {
        int64_t *clean_rows = malloc(sizeof(int64_t) * (size_t)N);
        for (int64_t i = 0; i < N; i++)
            if (!defect[i]) clean_rows[nclean++] = i;
        if (score_selection(ctx, &o, pool, clean_rows, nclean, test, &oracle_mean, &oracle_sd))
            return 1;
        free(clean_rows);
        printf("oracle (the %lld clean candidates; for information, not a method): "
               "%.2f%% ± %.2f%%; whole pool %.2f%% ± %.2f%%\n",
               (long long)nclean, 100 * oracle_mean, 100 * oracle_sd, 100 * mean[0],
               100 * sd[0]);
        fflush(stdout);
    }
    memcpy(sel, ident, sizeof(int64_t) * (size_t)N);
    app_shuffle(&rng, sel, N);
    int64_t *random_sel = malloc(sizeof(int64_t) * (size_t)K);
    memcpy(random_sel, sel, sizeof(int64_t) * (size_t)K);
    if (score_selection(ctx, &o, pool, random_sel, K, test, &mean[1], &sd[1])) return 1;

    /* small loss: the K lowest per-example losses after training on the pool */
    {
        mgrad_model *m = NULL;
        mgrad_run *run = NULL;
        if (app_run(ctx, &o.train, pool, target, 7, 0, NULL, &m, &run)) return 1;
        APP_CHECK(ctx, mgrad_run_train(run, NULL));
        double *loss = malloc(sizeof(double) * (size_t)N);
        APP_CHECK(ctx, mgrad_run_example_losses(run, pool, MGRAD_DTYPE_F64, loss, N));
        /* selection sort of the K smallest is fine at this size */
        memcpy(sel, ident, sizeof(int64_t) * (size_t)N);
        for (int64_t a = 0; a < K; a++) {
            int64_t best = a;
            for (int64_t b = a + 1; b < N; b++)
                if (loss[sel[b]] < loss[sel[best]]) best = b;
            int64_t t = sel[a];
            sel[a] = sel[best];
            sel[best] = t;
        }
        free(loss);
        mgrad_run_destroy(run);
        mgrad_model_destroy(m);
    }
    int64_t bad = 0;
    for (int64_t a = 0; a < K; a++) bad += defect[sel[a]] != 0;
    bad_share[2] = (double)bad / (double)K;
    if (score_selection(ctx, &o, pool, sel, K, test, &mean[2], &sd[2])) return 1;
    bad = 0;
    for (int64_t a = 0; a < K; a++) bad += defect[random_sel[a]] != 0;
    bad_share[1] = (double)bad / (double)K;

    /* MGD: counts over the pool, gradient through the step-k relaxation */
    double *log = calloc((size_t)(2 * o.meta_steps), sizeof(double));
    double *counts = calloc((size_t)N, sizeof(double));
    double first_auc = NAN;
    {
        mgrad_model *m = NULL;
        mgrad_run *run = NULL;
        mgrad_meta *cm = NULL, *pm = NULL;
        mgrad_mgd *mgd = NULL;
        if (app_run(ctx, &o.train, pool, target, 7, 0, NULL, &m, &run)) return 1;
        APP_CHECK(ctx, mgrad_run_add_meta(&cm, run, MGRAD_META_DATA_WEIGHTS, NULL));
        mgrad_meta_options mo = MGRAD_META_OPTIONS_INIT;
        mo.step = o.train.steps * 9 / 10;
        APP_CHECK(ctx, mgrad_run_add_meta(&pm, run, MGRAD_META_POOL_WEIGHTS, &mo));
        for (int64_t a = 0; a < K; a++) counts[random_sel[a]] = 1;  /* start: random */
        APP_CHECK(ctx, mgrad_meta_set_value(cm, MGRAD_DTYPE_F64, counts, N));
        if (cnn) {
            /* The metagradient MGD's first step will follow, taken here once
               more (a training and a reverse pass) because MGD's update
               replaces it: how well does it rank the defective candidates? */
            double *g = malloc(sizeof(double) * (size_t)N);
            APP_CHECK(ctx, mgrad_run_train(run, NULL));
            APP_CHECK(ctx, mgrad_run_reverse(run));
            APP_CHECK(ctx, mgrad_meta_get_grad(pm, MGRAD_DTYPE_F64, g, N));
            first_auc = defect_auc(g, defect, N);
            printf("first metagradient: AUC %.3f for the defective candidates (0.5: chance)\n",
                   first_auc);
            free(g);
        }
        if (o.keep_drop) { /* a 0/1 selection: no step size */
            APP_CHECK(ctx, mgrad_mgd_create(&mgd, cm, MGRAD_MGD_KEEP_DROP));
        } else {
            APP_CHECK(ctx, mgrad_mgd_create(&mgd, cm, MGRAD_MGD_EXCHANGE));
            APP_CHECK(ctx, mgrad_mgd_set_real(mgd, MGRAD_MGD_PARAM_LR, 1));
        }
        APP_CHECK(ctx, mgrad_mgd_set_int(mgd, MGRAD_MGD_PARAM_EXCHANGE, o.exchange));
        APP_CHECK(ctx, mgrad_mgd_set_gradient_from(mgd, pm));
        APP_CHECK(ctx, mgrad_mgd_set_heldout(mgd, heldout));
        APP_CHECK(ctx, mgrad_mgd_set_progress(mgd, app_progress, log));
        printf("MGD (%d meta-steps):\n", o.meta_steps);
        APP_CHECK(ctx, mgrad_mgd_run(mgd, o.meta_steps));
        double best_score = 0;
        APP_CHECK(ctx, mgrad_mgd_best(mgd, MGRAD_DTYPE_F64, counts, N, &best_score));
        printf("best iterate: held-out loss %.4f\n", best_score);
        mgrad_mgd_destroy(mgd);
        mgrad_run_destroy(run);
        mgrad_model_destroy(m);
    }
    int64_t n = 0, distinct = 0;
    bad = 0;
    for (int64_t i = 0; i < N; i++) {
        distinct += counts[i] > 0;
        for (int c = 0; c < (int)counts[i]; c++) {
            sel[n++] = i;
            bad += defect[i] != 0;
        }
    }
    bad_share[3] = (double)bad / (double)n;
    if (cnn)
        printf("MGD's selection: %lld units on %lld distinct candidates\n", (long long)n,
               (long long)distinct);
    if (score_selection(ctx, &o, pool, sel, n, test, &mean[3], &sd[3])) return 1;

    printf("\n%-12s %10s  %s  %s\n", "method", "examples", "test accuracy (mean ± std, "
           "retrained with unseen seeds)", "defective share");
    double rows[4 * 5];
    for (int k = 0; k < 4; k++) {
        int64_t size = k == 0 ? N : K;
        printf("%-12s %10lld  %6.2f%% ± %.2f%%  (%d seeds)            %5.1f%%\n", names[k],
               (long long)size, 100 * mean[k], 100 * sd[k], o.seeds, 100 * bad_share[k]);
        rows[5 * k] = (double)size;
        rows[5 * k + 1] = mean[k];
        rows[5 * k + 2] = sd[k];
        rows[5 * k + 3] = o.seeds;
        rows[5 * k + 4] = bad_share[k];
    }
    if (cnn)
        printf("%-12s %10lld  %6.2f%% ± %.2f%%  (%d seeds)            %5.1f%%  (oracle: the "
               "defects told; for information, not a method)\n",
               "clean only", (long long)nclean, 100 * oracle_mean, 100 * oracle_sd, o.seeds,
               0.0);
    char path[4096];
    int failures = 0;
    const char *base = cnn ? "data_selection_cnn" : "data_selection";
    snprintf(path, sizeof path, "%s/%s.csv", o.out, base);
    failures += app_write_named_csv(path,
                                    "method,examples,test_accuracy_mean,"
                                    "test_accuracy_std,seeds,defective_share",
                                    names, rows, 4, 5) != 0;
    snprintf(path, sizeof path, "%s_progress.csv", base);
    failures += app_write_progress(o.out, path, log, o.meta_steps) != 0;
    const app_number fields[] = {{"pool", (double)N},
                                 {"select", (double)K},
                                 {"flipped_labels", (double)nflip},
                                 {"noise_images", (double)nnoise},
                                 {"meta_steps", o.meta_steps},
                                 {"seeds", o.seeds},
                                 {"train_steps", (double)o.train.steps},
                                 {"batch", (double)o.train.batch},
                                 /* the CNN runs' summary only: the MLP's stays as it was */
                                 {"lr", o.train.lr},
                                 {"momentum", o.train.momentum},
                                 {"keep_drop", o.keep_drop},
                                 {"exchange", o.exchange},
                                 {"mgd_distinct_selected", (double)distinct},
                                 {"first_metagradient_auc", first_auc},
                                 {"oracle_clean_examples", (double)nclean},
                                 {"oracle_clean_accuracy_mean", oracle_mean},
                                 {"oracle_clean_accuracy_std", oracle_sd}};
    snprintf(path, sizeof path, "%s/%s.json", o.out, base);
    const char *mode = quick ? "quick" : smoke ? "smoke" : "full";
    char cnn_mode[16];
    snprintf(cnn_mode, sizeof cnn_mode, "cnn-%s", mode);
    failures += app_write_summary(path, "data_selection", cnn ? cnn_mode : mode, fields,
                                  cnn ? 17 : 8, names, mean, sd, 4) != 0;
    char files[160];
    snprintf(files, sizeof files, "%s.csv, %s_progress.csv, %s.json", base, base, base);
    int status = app_outputs_done(o.out, files, failures);

    free(log); free(counts); free(sel); free(random_sel);
    free(ident); free(defect); free(labels); free(x); free(perm);
    mgrad_dataset_destroy(pool);
    mgrad_dataset_destroy(target);
    mgrad_dataset_destroy(heldout);
    mgrad_dataset_destroy(all);
    mgrad_dataset_destroy(test);
    mgrad_context_destroy(ctx);
    return status;
}
