/*
 * targeted_poisoning.c - make one chosen class fail by changing 2.5% of the
 * training images (metagradient descent on a signed output function).
 *
 * The attacker changes the pixels (kept in [0, 1]) of 2.5% of the training
 * images, labels unchanged, drawn among the images of the other classes, so
 * that the trained model misclassifies the target class (--class) while the
 * other classes keep their accuracy.  The run's output function, on the
 * attacker's target split, is two loss terms restricted to classes
 * (mgrad_run_set_output):
 *     φ = −(mean loss on the target class's rows) + λ · (mean loss on the
 *         other classes' rows),
 * and MGD minimises φ over the poisoned images' pixels (the INPUTS
 * metaparameter), signed steps projected onto [0, 1], twice: from the clean
 * images, and from the naive attack's images below (MGD refining the
 * obvious attack).  It keeps the iterate with the lowest φ on a held-out split
 * (the same formula through per-row weights: −N/n_c on the target class's
 * n_c rows, λ·N/n_o on the other n_o rows, so that the weighted mean loss
 * MGD scores is φ's formula).
 *
 * Baselines with the same budget (the same rows, labels unchanged):
 *   noise images   the rows' images replaced by uniform noise;
 *   naive          the rows' images replaced by images of the target class
 *                  (from the attacker's own splits): target-class pictures
 *                  carrying other classes' labels, the obvious way to teach
 *                  the model that the target class is something else when
 *                  only pixels may change.
 * A victim then retrains from scratch with seeds and batch orders the
 * attacker never saw; the table reports its test accuracy on the target
 * class and on the other classes (Fashion-MNIST's test split is balanced,
 * so the latter is the mean of the nine per-class accuracies).
 *
 * Writes into --out: targeted_poisoning.csv (per attack: the target class's
 * and the other classes' test accuracy, mean and std over the retrainings,
 * and the target class's change against clean, paired by seed),
 * targeted_poisoning_progress.csv (φ on the target split and on the
 * held-out split per meta-step of MGD from the naive images; the columns
 * keep the other programs' names)
 * and targeted_poisoning.json; examples/python/plot_results.py draws the
 * figures.
 *
 * Usage: targeted_poisoning [--quick | --smoke] [--class C] [--lambda L]
 *        [--meta-steps M] [--seeds S] [--out DIR]   (--help: all options)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <metagrad.h>

#include "common/apputil.h"
#include "common/flags.h"

enum { F = 784, NCLASS = 10, NATTACKS = 5 };

static const char *const CLASS_NAMES[NCLASS] = {
    "T-shirt/top", "trouser", "pullover", "dress", "coat",
    "sandal",      "shirt",   "sneaker",  "bag",   "ankle boot"};

/* Every draw of the program, in order, from one fixed seed. */
static app_rng rng = {0x9E3779B97F4A7C15ull};

/* Rows of `ds` whose label is (want_class = 1) or is not (0) `cls`: a new
   array in *rows, its length in *n. */
static int rows_of_class(mgrad_context *ctx, const mgrad_dataset *ds, int32_t cls,
                         int want_class, int64_t **rows, int64_t *n)
{
    int64_t size = 0;
    APP_CHECK(ctx, mgrad_dataset_size(ds, &size));
    int32_t *y = malloc(sizeof(int32_t) * (size_t)size);
    int64_t *r = malloc(sizeof(int64_t) * (size_t)(size > 0 ? size : 1));
    if (y == NULL || r == NULL) {
        free(y);
        free(r);
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    APP_CHECK(ctx, mgrad_dataset_get_labels(ds, y, size));
    int64_t k = 0;
    for (int64_t i = 0; i < size; i++)
        if ((y[i] == cls) == (want_class != 0)) r[k++] = i;
    free(y);
    *rows = r;
    *n = k;
    return 0;
}

/* The attack: MGD minimising φ over the poison pixels of `rows`, from
   their clean images (init NULL) or from `init` [npoison × F]; the best
   iterate into poison [npoison × F], φ per meta-step into log. */
static int attack(mgrad_context *ctx, const app_train *cfg, mgrad_dataset *train,
                  mgrad_dataset *target, mgrad_dataset *heldout, const int64_t *rows,
                  int64_t npoison, int32_t c, const int32_t *others, double lambda,
                  int meta_steps, const double *init, double *log, double *poison)
{
    mgrad_model *m = NULL;
    mgrad_run *run = NULL;
    mgrad_meta *pix = NULL;
    mgrad_mgd *mgd = NULL;
    if (app_run(ctx, cfg, train, NULL, 5, 5, NULL, &m, &run)) return 1;
    const mgrad_output_term terms[2] = {
        {MGRAD_OUTPUT_LOSS, target, -1.0, NULL, 0, &c, 1},
        {MGRAD_OUTPUT_LOSS, target, lambda, NULL, 0, others, NCLASS - 1}};
    mgrad_output phi = MGRAD_OUTPUT_INIT;
    phi.terms = terms;
    phi.num_terms = 2;
    APP_CHECK(ctx, mgrad_run_set_output(run, &phi));
    /* the held-out score: φ's formula on the held-out split */
    int64_t nheld = 0;
    APP_CHECK(ctx, mgrad_dataset_size(heldout, &nheld));
    int32_t *yh = malloc(sizeof(int32_t) * (size_t)nheld);
    double *wh = malloc(sizeof(double) * (size_t)nheld);
    APP_CHECK(ctx, mgrad_dataset_get_labels(heldout, yh, nheld));
    int64_t nc = 0;
    for (int64_t i = 0; i < nheld; i++) nc += yh[i] == c;
    if (nc == 0 || nc == nheld) {
        fprintf(stderr, "the held-out split needs rows of class %d and of the others\n", c);
        return 1;
    }
    for (int64_t i = 0; i < nheld; i++)
        wh[i] = yh[i] == c ? -(double)nheld / (double)nc
                           : lambda * (double)nheld / (double)(nheld - nc);
    APP_CHECK(ctx, mgrad_dataset_set_weights(heldout, MGRAD_DTYPE_F64, wh, nheld));
    free(wh);
    free(yh);
    mgrad_meta_options mo = MGRAD_META_OPTIONS_INIT;
    mo.rows = rows;
    mo.num_rows = npoison;
    APP_CHECK(ctx, mgrad_run_add_meta(&pix, run, MGRAD_META_INPUTS, &mo));
    if (init != NULL)
        APP_CHECK(ctx, mgrad_meta_set_value(pix, MGRAD_DTYPE_F64, init, npoison * F));
    double box[2] = {0, 1};
    APP_CHECK(ctx, mgrad_mgd_create(&mgd, pix, MGRAD_MGD_SIGN));
    /* per-pixel step, like a PGD attack */
    APP_CHECK(ctx, mgrad_mgd_set_real(mgd, MGRAD_MGD_PARAM_LR, 0.05));
    APP_CHECK(ctx, mgrad_mgd_set_projection(mgd, MGRAD_PROJECT_BOX, box, 2));
    APP_CHECK(ctx, mgrad_mgd_set_heldout(mgd, heldout));
    APP_CHECK(ctx, mgrad_mgd_set_progress(mgd, app_progress, log));
    printf("MGD from the %s images (%d meta-steps, minimising φ; 'target loss' below is φ on "
           "the target split, 'held-out loss' φ on the held-out split):\n",
           init != NULL ? "naive attack's" : "clean", meta_steps);
    APP_CHECK(ctx, mgrad_mgd_run(mgd, meta_steps));
    double best = 0;
    APP_CHECK(ctx, mgrad_mgd_best(mgd, MGRAD_DTYPE_F64, poison, npoison * F, &best));
    printf("best iterate: φ on the held-out split %.4f\n", best);
    mgrad_mgd_destroy(mgd);
    mgrad_run_destroy(run);
    mgrad_model_destroy(m);
    return 0;
}

int main(int argc, char **argv)
{
    int meta_steps = 40, seeds = 10;
    int64_t N = 4000, cls = 0;
    double share = 0.025, lambda = 1.0;
    const char *out = ".";
    app_train cfg = {.steps = 400, .batch = 64, .lr = 0.02, .momentum = 0.5, .hidden = 128};
    int quick = 0, smoke = 0;
    int64_t meta_flag = 0, seeds_flag = 0; /* 0: the mode's default */
    const app_flag flags[] = {
        APP_FLAG_QUICK(&quick),
        APP_FLAG_SMOKE(&smoke),
        {"--class", APP_FLAG_INT, &cls, "C",
         "the class to make fail, 0-9 (default 0, T-shirt/top)", 0, 9},
        {"--lambda", APP_FLAG_REAL, &lambda, "L",
         "weight of the other classes' loss in φ (default 1)", 0, 1000},
        {"--meta-steps", APP_FLAG_INT, &meta_flag, "M", "MGD meta-steps of the attack", 1,
         2000},
        {"--seeds", APP_FLAG_INT, &seeds_flag, "S", "victim retrainings, with unseen seeds", 1,
         16},
        APP_FLAG_OUT(&out),
    };
    const app_cmdline cmd = {
        "Make one Fashion-MNIST class fail, the others intact, by changing 2.5% of the "
        "training images (metagradient descent on a signed output function).",
        flags, (int)(sizeof flags / sizeof *flags), NULL, 0};
    int rc = app_parse_app_flags(&cmd, argc, argv, &quick, &smoke);
    if (rc != APP_FLAGS_RUN) return rc;
    if (quick) {
        meta_steps = 20;
        N = 2000;
        seeds = 3;
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
    const int32_t c = (int32_t)cls;
    int32_t others[NCLASS - 1];
    for (int32_t k = 0, j = 0; k < NCLASS; k++)
        if (k != c) others[j++] = k;

    /* The poisoned rows: drawn among the training images of the other
       classes (the same rows for every attack). */
    int64_t *cand = NULL, ncand = 0;
    if (rows_of_class(ctx, train, c, 0, &cand, &ncand)) return 1;
    int64_t npoison = (int64_t)(share * (double)N + 0.5);
    if (npoison > ncand) npoison = ncand;
    int64_t *rows = malloc(sizeof(int64_t) * (size_t)npoison);
    app_draw_distinct(&rng, ncand, npoison, rows);
    for (int64_t r = 0; r < npoison; r++) rows[r] = cand[rows[r]];
    printf(
        "Fashion-MNIST targeted poisoning: make class %d (%s) fail; %lld of %lld training "
        "images (%.1f%%, none of class %d) may change, labels unchanged; φ = −loss(class %d) "
        "+ %g · loss(others); MLP 784-%d-10, T = %lld, B = %lld, SGD momentum %.1f lr %.2f\n",
        c, CLASS_NAMES[c], (long long)npoison, (long long)N, 100 * share, c, c, lambda,
        cfg.hidden, (long long)cfg.steps, (long long)cfg.batch, cfg.momentum, cfg.lr);

    float *x = malloc(sizeof(float) * (size_t)(N * F));
    int64_t *ident = malloc(sizeof(int64_t) * (size_t)N);
    for (int64_t i = 0; i < N; i++) ident[i] = i;
    APP_CHECK(ctx, mgrad_dataset_get_inputs(train, MGRAD_DTYPE_F32, x, N * F));

    /* The naive attack's images: target-class images of the attacker's
       splits (target, then held-out), each used once while they last. */
    double *naive = malloc(sizeof(double) * (size_t)(npoison * F));
    {
        const mgrad_dataset *pools[2] = {target, heldout};
        int64_t used = 0;
        for (int p = 0; p < 2 && used < npoison; p++) {
            int64_t *cr = NULL, ncr = 0, size = 0;
            if (rows_of_class(ctx, pools[p], c, 1, &cr, &ncr)) return 1;
            APP_CHECK(ctx, mgrad_dataset_size(pools[p], &size));
            float *px = malloc(sizeof(float) * (size_t)(size * F));
            APP_CHECK(ctx, mgrad_dataset_get_inputs(pools[p], MGRAD_DTYPE_F32, px, size * F));
            for (int64_t k = 0; k < ncr && used < npoison; k++, used++)
                for (int j = 0; j < F; j++) naive[used * F + j] = px[cr[k] * F + j];
            free(px);
            free(cr);
        }
        if (used < npoison) {
            fprintf(stderr, "only %lld images of class %d for the naive attack\n",
                    (long long)used, c);
            return 1;
        }
    }

    /* MGD twice: from the clean images, and from the naive attack's (the
       progress file records the second). */
    double *log = calloc((size_t)(2 * meta_steps), sizeof(double));
    double *poison[2];
    for (int a = 0; a < 2; a++) {
        poison[a] = malloc(sizeof(double) * (size_t)(npoison * F));
        if (attack(ctx, &cfg, train, target, heldout, rows, npoison, c, others, lambda,
                   meta_steps, a == 0 ? NULL : naive, log, poison[a]))
            return 1;
    }

    /* The training sets the victim may get. */
    const char *names[NATTACKS] = {"clean", "noise images", "naive", "MGD from clean",
                                   "MGD from naive"};
    const double *images[NATTACKS] = {NULL, NULL, naive, poison[0], poison[1]};
    mgrad_dataset *sets[NATTACKS] = {train, NULL, NULL, NULL, NULL};
    float *xa = malloc(sizeof(float) * (size_t)(N * F));
    for (int k = 1; k < NATTACKS; k++) {
        memcpy(xa, x, sizeof(float) * (size_t)(N * F));
        for (int64_t r = 0; r < npoison; r++)
            for (int j = 0; j < F; j++)
                xa[rows[r] * F + j] =
                    (float)(images[k] != NULL ? images[k][r * F + j] : app_urand(&rng));
        if (app_dataset_from(ctx, train, ident, N, NULL, xa, &sets[k])) return 1;
    }

    /* The test split by class: the target class and the others. */
    mgrad_dataset *test_c = NULL, *test_o = NULL;
    {
        int64_t *tr = NULL, ntr = 0;
        if (rows_of_class(ctx, test, c, 1, &tr, &ntr)) return 1;
        APP_CHECK(ctx, mgrad_dataset_subset(&test_c, test, tr, ntr));
        free(tr);
        if (rows_of_class(ctx, test, c, 0, &tr, &ntr)) return 1;
        APP_CHECK(ctx, mgrad_dataset_subset(&test_o, test, tr, ntr));
        free(tr);
    }
    const mgrad_dataset *const eval[2] = {test_c, test_o};

    /* Every row retrains with the same seeds, so the change against clean
       is also given per seed (paired): mean ± std of the differences. */
    enum { NCOL = 7 };
    double table[NATTACKS * NCOL], clean_acc[2 * APP_MAX_SEEDS];
    printf("\nvictim's test accuracy, mean ± std over %d retrainings with unseen seeds "
           "(the same seeds for every row; change: per seed against clean):\n",
           seeds);
    printf("%-14s  %-18s  %-16s  %s\n", "training set", "target class", "change",
           "other classes");
    for (int k = 0; k < NATTACKS; k++) {
        double mean[2], sd[2], acc[2 * APP_MAX_SEEDS], diff[APP_MAX_SEEDS], dmean, dsd;
        if (app_score_sets(ctx, &cfg, sets[k], eval, 2, 104729u, 3, seeds, NULL, mean, sd, acc))
            return 1;
        if (k == 0) memcpy(clean_acc, acc, sizeof acc);
        for (int s = 0; s < seeds; s++) diff[s] = acc[s] - clean_acc[s];
        app_mean_std(diff, seeds, &dmean, &dsd);
        printf("%-14s  %6.2f%% ± %5.2f%%  %+6.2f ± %4.2f pts  %6.2f%% ± %5.2f%%\n", names[k],
               100 * mean[0], 100 * sd[0], 100 * dmean, 100 * dsd, 100 * mean[1], 100 * sd[1]);
        fflush(stdout);
        double *t = table + NCOL * k;
        t[0] = mean[0];
        t[1] = sd[0];
        t[2] = mean[1];
        t[3] = sd[1];
        t[4] = seeds;
        t[5] = dmean;
        t[6] = dsd;
    }

    char path[4096];
    int failures = 0;
    snprintf(path, sizeof path, "%s/targeted_poisoning.csv", out);
    failures += app_write_named_csv(path,
                                    "attack,target_class_accuracy_mean,"
                                    "target_class_accuracy_std,other_accuracy_mean,"
                                    "other_accuracy_std,seeds,target_class_change_mean,"
                                    "target_class_change_std",
                                    names, table, NATTACKS, NCOL) != 0;
    failures +=
        app_write_progress(out, "targeted_poisoning_progress.csv", log, meta_steps) != 0;
    const app_number fields[] = {
        {"target_class", (double)c},        {"lambda", lambda},          {"train", (double)N},
        {"poisoned", (double)npoison},      {"meta_steps", meta_steps},  {"seeds", seeds},
        {"train_steps", (double)cfg.steps}, {"batch", (double)cfg.batch}};
    const char *columns[NCOL] = {"target_class_accuracy_mean",
                                 "target_class_accuracy_std",
                                 "other_accuracy_mean",
                                 "other_accuracy_std",
                                 "seeds",
                                 "target_class_change_mean",
                                 "target_class_change_std"};
    snprintf(path, sizeof path, "%s/targeted_poisoning.json", out);
    failures +=
        app_write_summary_columns(path, "targeted_poisoning",
                                  quick   ? "quick"
                                  : smoke ? "smoke"
                                          : "full",
                                  fields, 8, names, NATTACKS, columns, NCOL, table) != 0;
    int status = app_outputs_done(
        out, "targeted_poisoning.csv, targeted_poisoning_progress.csv, targeted_poisoning.json",
        failures);

    for (int k = 1; k < NATTACKS; k++) mgrad_dataset_destroy(sets[k]);
    mgrad_dataset_destroy(test_c);
    mgrad_dataset_destroy(test_o);
    free(xa);
    free(poison[0]);
    free(poison[1]);
    free(naive);
    free(log);
    free(x);
    free(ident);
    free(rows);
    free(cand);
    mgrad_dataset_destroy(train);
    mgrad_dataset_destroy(target);
    mgrad_dataset_destroy(heldout);
    mgrad_dataset_destroy(test);
    mgrad_dataset_destroy(all);
    mgrad_context_destroy(ctx);
    return status;
}
