/*
 * poisoning.c - accuracy-degrading data poisoning by metagradient ascent.
 *
 * The attacker changes the pixels (kept in [0, 1]) of 2.5% of the training
 * images, labels unchanged, to raise the loss of the trained model on a
 * target split: the run's output function is φ = −(mean target loss), a
 * loss term of weight −1 (mgrad_run_set_output), and MGD minimises φ over
 * those images' pixels (the INPUTS metaparameter), signed steps projected
 * onto [0, 1], keeping the iterate that does most harm on a held-out split
 * (scored by the same formula: the held-out rows weighted −1).  Baselines with the same budget:
 * the same images replaced by uniform noise, and the same examples' labels
 * flipped.  A victim then retrains from scratch with seeds and batch orders
 * the attacker never saw; the table reports its test accuracy and the drop
 * against clean data.
 *
 * Writes into --out: poisoning.csv (victim accuracy per attack, mean and std
 * over the retrainings, and the drop against clean data),
 * poisoning_progress.csv (the attacker's objective per meta-step) and
 * poisoning.json (a summary); examples/python/plot_results.py draws the
 * figures from them.
 *
 * Usage: poisoning [--quick | --smoke] [--meta-steps M] [--seeds S] [--out DIR]
 *        (--help: all options)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <metagrad.h>

#include "common/apputil.h"
#include "common/flags.h"

enum { F = 784, NATTACKS = 4 };

/* Every draw of the program, in order, from one fixed seed. */
static app_rng rng = {0x2545F4914F6CDD1Dull};

/* MGD's progress hook on φ = −(target loss) and the score −(held-out loss):
   log and print the losses themselves (the negation is exact). */
static int progress_losses(int64_t step, double phi, double score, double seconds, void *log)
{
    return app_progress(step, -phi, -score, seconds, log);
}

int main(int argc, char **argv)
{
    int meta_steps = 40, seeds = 3;
    int64_t N = 4000;
    double share = 0.025;
    const char *out = ".";
    app_train cfg = {.steps = 400, .batch = 64, .lr = 0.02, .momentum = 0.5, .hidden = 128};
    int quick = 0, smoke = 0;
    int64_t meta_flag = 0, seeds_flag = 0; /* 0: the mode's default */
    const app_flag flags[] = {
        APP_FLAG_QUICK(&quick),
        APP_FLAG_SMOKE(&smoke),
        {"--meta-steps", APP_FLAG_INT, &meta_flag, "M", "MGD meta-steps of the attack", 1,
         2000},
        {"--seeds", APP_FLAG_INT, &seeds_flag, "S", "victim retrainings, with unseen seeds", 1,
         16},
        APP_FLAG_OUT(&out),
    };
    const app_cmdline cmd = {
        "Degrade a victim's accuracy by changing 2.5% of its Fashion-MNIST "
        "training images (metagradient ascent).",
        flags, (int)(sizeof flags / sizeof *flags), NULL, 0};
    int rc = app_parse_app_flags(&cmd, argc, argv, &quick, &smoke);
    if (rc != APP_FLAGS_RUN) return rc;
    if (quick) {
        meta_steps = 20;
        N = 2000;
        cfg.steps = 250;
    } else if (smoke) { /* a tiny configuration: seconds */
        meta_steps = 2;
        N = 200;
        seeds = 1;
        cfg.steps = 30;
    }
    if (meta_flag) meta_steps = (int)meta_flag;
    if (seeds_flag) seeds = (int)seeds_flag;
    mgrad_context *ctx = NULL;
    mgrad_dataset *all = NULL, *test = NULL, *train = NULL, *target = NULL, *heldout = NULL;
    if ((rc = app_start_fmnist(argv[0], out, &ctx, &all, &test)) != 0) return rc;
    if (app_splits(ctx, all, N, 1000, 1000, 23, &train, &target, &heldout)) return 1;

    int64_t npoison = (int64_t)(share * (double)N + 0.5);
    int64_t *rows = malloc(sizeof(int64_t) * (size_t)npoison);
    app_draw_distinct(&rng, N, npoison, rows);
    printf("Fashion-MNIST poisoning: %lld of %lld training images (%.1f%%) may change, labels "
           "unchanged; MLP 784-%d-10, T = %lld, B = %lld, SGD momentum %.1f lr %.2f\n",
           (long long)npoison, (long long)N, 100 * share, cfg.hidden, (long long)cfg.steps,
           (long long)cfg.batch, cfg.momentum, cfg.lr);

    float *x = malloc(sizeof(float) * (size_t)(N * F));
    int32_t *y = malloc(sizeof(int32_t) * (size_t)N);
    int64_t *ident = malloc(sizeof(int64_t) * (size_t)N);
    for (int64_t i = 0; i < N; i++) ident[i] = i;
    APP_CHECK(ctx, mgrad_dataset_get_inputs(train, MGRAD_DTYPE_F32, x, N * F));
    APP_CHECK(ctx, mgrad_dataset_get_labels(train, y, N));

    /* The attack: maximise the target loss over the poison pixels, i.e.
       minimise φ = −(mean target loss), the output function of a plain run:
       one loss term of weight −1.  The held-out rows get weight −1 too, so
       that MGD scores each iterate by φ's formula on the held-out split and
       keeps the lowest (the most harmful). */
    double *log = calloc((size_t)(2 * meta_steps), sizeof(double));
    double *poison = malloc(sizeof(double) * (size_t)(npoison * F));
    {
        mgrad_model *m = NULL;
        mgrad_run *run = NULL;
        mgrad_meta *pix = NULL;
        mgrad_mgd *mgd = NULL;
        if (app_run(ctx, &cfg, train, NULL, 5, 5, NULL, &m, &run)) return 1;
        const mgrad_output_term raise = {MGRAD_OUTPUT_LOSS, target, -1.0, NULL, 0, NULL, 0};
        mgrad_output phi = MGRAD_OUTPUT_INIT;
        phi.terms = &raise;
        phi.num_terms = 1;
        APP_CHECK(ctx, mgrad_run_set_output(run, &phi));
        int64_t nheld = 0;
        APP_CHECK(ctx, mgrad_dataset_size(heldout, &nheld));
        double *minus = malloc(sizeof(double) * (size_t)nheld);
        for (int64_t i = 0; i < nheld; i++) minus[i] = -1.0;
        APP_CHECK(ctx, mgrad_dataset_set_weights(heldout, MGRAD_DTYPE_F64, minus, nheld));
        free(minus);
        mgrad_meta_options mo = MGRAD_META_OPTIONS_INIT;
        mo.rows = rows;
        mo.num_rows = npoison;
        APP_CHECK(ctx, mgrad_run_add_meta(&pix, run, MGRAD_META_INPUTS, &mo));
        double box[2] = {0, 1};
        APP_CHECK(ctx, mgrad_mgd_create(&mgd, pix, MGRAD_MGD_SIGN));
        /* per-pixel step, like a PGD attack */
        APP_CHECK(ctx, mgrad_mgd_set_real(mgd, MGRAD_MGD_PARAM_LR, 0.05));
        APP_CHECK(ctx, mgrad_mgd_set_projection(mgd, MGRAD_PROJECT_BOX, box, 2));
        APP_CHECK(ctx, mgrad_mgd_set_heldout(mgd, heldout));
        APP_CHECK(ctx, mgrad_mgd_set_progress(mgd, progress_losses, log));
        printf("MGD poisoning (%d meta-steps, maximising the target loss):\n", meta_steps);
        APP_CHECK(ctx, mgrad_mgd_run(mgd, meta_steps));
        double best = 0;
        APP_CHECK(ctx, mgrad_mgd_best(mgd, MGRAD_DTYPE_F64, poison, npoison * F, &best));
        printf("best iterate: held-out loss %.4f\n", -best);
        mgrad_mgd_destroy(mgd);
        mgrad_run_destroy(run);
        mgrad_model_destroy(m);
    }

    /* The four training sets the victim may get. */
    const char *names[NATTACKS] = {"clean", "noise images", "label flips", "MGD poisons"};
    mgrad_dataset *sets[NATTACKS] = {train, NULL, NULL, NULL};
    float *xa = malloc(sizeof(float) * (size_t)(N * F));
    int32_t *ya = malloc(sizeof(int32_t) * (size_t)N);
    memcpy(xa, x, sizeof(float) * (size_t)(N * F));
    for (int64_t r = 0; r < npoison; r++)
        for (int j = 0; j < F; j++) xa[rows[r] * F + j] = (float)app_urand(&rng);
    if (app_dataset_from(ctx, train, ident, N, NULL, xa, &sets[1])) return 1;
    memcpy(ya, y, sizeof(int32_t) * (size_t)N);
    for (int64_t r = 0; r < npoison; r++)
        ya[rows[r]] = (ya[rows[r]] + 1 + (int32_t)(app_urand(&rng) * 9)) % 10;
    if (app_dataset_from(ctx, train, ident, N, ya, NULL, &sets[2])) return 1;
    memcpy(xa, x, sizeof(float) * (size_t)(N * F));
    for (int64_t r = 0; r < npoison; r++)
        for (int j = 0; j < F; j++) xa[rows[r] * F + j] = (float)poison[r * F + j];
    if (app_dataset_from(ctx, train, ident, N, NULL, xa, &sets[3])) return 1;

    double mean[NATTACKS], sd[NATTACKS];
    printf("\n%-13s  %s  %s\n", "training set", "victim test accuracy (mean ± std, unseen seeds)",
           "drop vs clean");
    for (int k = 0; k < NATTACKS; k++) {
        if (app_score(ctx, &cfg, sets[k], test, 104729u, 3, seeds, NULL, &mean[k], &sd[k]))
            return 1;
        printf("%-13s  %6.2f%% ± %.2f%%  (%d seeds)                     %+6.2f points\n",
               names[k], 100 * mean[k], 100 * sd[k], seeds, 100 * (mean[k] - mean[0]));
    }

    char path[4096];
    double table[NATTACKS * 4];
    for (int k = 0; k < NATTACKS; k++) {
        table[4 * k] = mean[k];
        table[4 * k + 1] = sd[k];
        table[4 * k + 2] = seeds;
        table[4 * k + 3] = mean[k] - mean[0];
    }
    int failures = 0;
    snprintf(path, sizeof path, "%s/poisoning.csv", out);
    failures += app_write_named_csv(path,
                                    "attack,test_accuracy_mean,test_accuracy_std,seeds,"
                                    "drop",
                                    names, table, NATTACKS, 4) != 0;
    failures += app_write_progress(out, "poisoning_progress.csv", log, meta_steps) != 0;
    const app_number fields[] = {
        {"train", (double)N}, {"poisoned", (double)npoison},      {"meta_steps", meta_steps},
        {"seeds", seeds},     {"train_steps", (double)cfg.steps}, {"batch", (double)cfg.batch}};
    snprintf(path, sizeof path, "%s/poisoning.json", out);
    failures += app_write_summary(path, "poisoning",
                                  quick   ? "quick"
                                  : smoke ? "smoke"
                                          : "full",
                                  fields, 6, names, mean, sd, NATTACKS) != 0;
    int status = app_outputs_done(out, "poisoning.csv, poisoning_progress.csv, poisoning.json",
                                  failures);

    for (int k = 1; k < NATTACKS; k++) mgrad_dataset_destroy(sets[k]);
    free(xa); free(ya); free(poison); free(log);
    free(x); free(y); free(ident); free(rows);
    mgrad_dataset_destroy(train);
    mgrad_dataset_destroy(target);
    mgrad_dataset_destroy(heldout);
    mgrad_dataset_destroy(test);
    mgrad_dataset_destroy(all);
    mgrad_context_destroy(ctx);
    return status;
}
