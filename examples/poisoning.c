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
 * Default: the MLP 784-128-10 (tanh) on 4,000 images, 40 signed steps of
 * 0.05.  --cnn: the small ResNet of examples/common (app_model) on 1,000
 * images (25 poisons), trained metasmoothly by attacker and victim alike
 * (plain SGD: lr 0.1 decaying linearly to 0, momentum 0, weight decay
 * 5e-4, T = 150, B = 32); 60 signed steps of 0.1 halved every 15
 * (mgrad_mgd_set_lr_schedule, STEP), a new batch order per meta-step and
 * the best iterate chosen on 2 fixed orders (RESHUFFLE, BEST_ORDERS), 5
 * victim retrainings, also scored on the held-out split (printed only: the
 * figure the settings were chosen on); and two more rows: the clean and
 * MGD sets against a victim that trains with lr 0.05 (decaying likewise)
 * and momentum 0.9 (poisons made on the smooth training, used on a
 * standard one).  --adam, --reshuffle, --best-orders, --lr-decay,
 * --meta-lr, --halve-every, --lr and --momentum change the attack or every
 * training (docs/applications.md compares them; --lr-decay 0
 * --best-orders 0 --meta-steps 120 is the first CNN configuration).
 *
 * Writes into --out: poisoning.csv (victim accuracy per attack, mean and std
 * over the retrainings, and the drop against clean data, or with --cnn the
 * momentum-0.9 rows against their own clean row),
 * poisoning_progress.csv (the attacker's objective per meta-step) and
 * poisoning.json (a summary); examples/python/plot_results.py draws the
 * figures from them.
 *
 * Usage: poisoning [--cnn] [--quick | --smoke] [--meta-steps M] [--seeds S] [--out DIR]
 *        (--help: all options)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <metagrad.h>

#include "common/apputil.h"
#include "common/flags.h"

/* NATTACKS training sets; --cnn adds NTRANSFER rows: the clean and MGD sets
   again, for a victim that trains with heavy momentum (TRANSFER_*) */
enum { F = 784, NATTACKS = 4, NTRANSFER = 2, NROWS = NATTACKS + NTRANSFER };
static const double TRANSFER_LR = 0.05, TRANSFER_MOMENTUM = 0.9;

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
    int64_t N = 4000, ntarget = 1000, nheld = 1000;
    double share = 0.025;
    const char *out = ".";
    app_train cfg = {.steps = 400, .batch = 64, .lr = 0.02, .momentum = 0.5, .hidden = 128};
    /* the attack: signed steps of meta_lr, halved every decay_every
       meta-steps (0: constant) */
    double meta_lr = 0.05;
    int decay_every = 0;
    int quick = 0, smoke = 0, cnn = 0, adam = 0, reshuffle = 0;
    int lr_decay = 0, best_orders = 0;
    int64_t meta_flag = 0, seeds_flag = 0; /* 0: the mode's default */
    double meta_lr_flag = 0, lr_flag = 0, momentum_flag = -1; /* momentum 0 is a value */
    int64_t halve_flag = -1;                                   /* and so is 0 here */
    int64_t decay_flag = -1, orders_flag = -1; /* -1: the mode's default */
    const app_flag flags[] = {
        {"--cnn", APP_FLAG_SWITCH, &cnn, NULL,
         "the small ResNet on 1,000 images, 60 meta-steps with a halving step (with --quick "
         "or --smoke: smaller)",
         0, 0},
        APP_FLAG_QUICK(&quick),
        APP_FLAG_SMOKE(&smoke),
        {"--meta-steps", APP_FLAG_INT, &meta_flag, "M", "MGD meta-steps of the attack", 1,
         2000},
        {"--seeds", APP_FLAG_INT, &seeds_flag, "S", "victim retrainings, with unseen seeds", 1,
         16},
        {"--meta-lr", APP_FLAG_REAL, &meta_lr_flag, "ETA",
         "meta step size per pixel (default 0.05; --cnn 0.1)",
         1e-6, 1},
        {"--halve-every", APP_FLAG_INT, &halve_flag, "K",
         "halve the meta step size every K meta-steps, 0: constant (default constant; --cnn "
         "a quarter of the meta-steps)",
         0, 2000},
        {"--adam", APP_FLAG_SWITCH, &adam, NULL, "Adam on the pixels instead of signed steps",
         0, 0},
        {"--reshuffle", APP_FLAG_SWITCH, &reshuffle, NULL,
         "the attacker trains on a new batch order every meta-step", 0, 0},
        {"--best-orders", APP_FLAG_INT, &orders_flag, "K",
         "keep the iterate with the best mean held-out score over K fixed batch orders "
         "(implies --reshuffle; K more trainings per meta-step; default 0; --cnn 2)",
         0, 64},
        {"--lr-decay", APP_FLAG_INT, &decay_flag, "0|1",
         "1: every training's step size decays linearly from LR towards 0 over its T steps "
         "(default 0; --cnn 1)",
         0, 1},
        {"--lr", APP_FLAG_REAL, &lr_flag, "LR",
         "SGD step size of every training (attacker and victim)", 1e-6, 10},
        {"--momentum", APP_FLAG_REAL, &momentum_flag, "MU",
         "SGD momentum of every training (attacker and victim)", 0, 0.99},
        APP_FLAG_OUT(&out),
    };
    const app_cmdline cmd = {
        "Degrade a victim's accuracy by changing 2.5% of its Fashion-MNIST "
        "training images (metagradient ascent).",
        flags, (int)(sizeof flags / sizeof *flags), NULL, 0};
    int rc = app_parse_app_flags(&cmd, argc, argv, &quick, &smoke);
    if (rc != APP_FLAGS_RUN) return rc;
    if (cnn) {
        /* The small ResNet, trained metasmoothly: plain SGD (momentum 0;
           momentum 0.5 at the same effective rate made the attacker's
           objective jumpy and its poisons transferred half as well to
           unseen seeds), 4.8 epochs of 1,000 images.  The step size decays
           linearly to 0: with a constant one the clean victim's test
           accuracy varied by ±3.2 points over 5 seeds and the attacker's
           objective jumped between end-of-training loss spikes, one of
           which was kept as the best iterate; with the decay the objective
           rises smoothly.  The best iterate is chosen on 2 fixed batch
           orders (BEST_ORDERS, a new order per meta-step), which did more
           harm on the held-out split than one order in the --quick runs.
           A meta-step then costs about 13 s on one core; 60 fit in the
           budget on the shared 2-core machine (--lr-decay 0 --best-orders 0
           --meta-steps 120 reruns the first configuration). */
        cfg = (app_train){.steps = 150, .batch = 32, .lr = 0.1, .momentum = 0, .hidden = 8,
                          .model = APP_MODEL_RESNET, .weight_decay = 5e-4};
        N = 1000;
        meta_lr = 0.1;
        meta_steps = 60;
        seeds = 5;
        lr_decay = 1;
        best_orders = 2;
        if (quick) {
            meta_steps = 16;
            seeds = 2;
        } else if (smoke) {
            N = 200;
            ntarget = nheld = 100;
            cfg.steps = 10;
            meta_steps = 2;
            seeds = 1;
        }
    } else if (quick) {
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
    if (meta_lr_flag > 0) meta_lr = meta_lr_flag;
    if (lr_flag > 0) cfg.lr = lr_flag;
    if (momentum_flag >= 0) cfg.momentum = momentum_flag;
    if (decay_flag >= 0) lr_decay = (int)decay_flag;
    if (orders_flag >= 0) best_orders = (int)orders_flag;
    if (best_orders > 0) reshuffle = 1; /* BEST_ORDERS needs RESHUFFLE */
    /* step decay: a quarter of the meta-steps at each of 4 sizes, so that
       the last ones refine rather than jump */
    if (cnn) decay_every = meta_steps >= 4 ? meta_steps / 4 : 1;
    if (halve_flag >= 0) decay_every = (int)halve_flag;
    mgrad_context *ctx = NULL;
    mgrad_dataset *all = NULL, *test = NULL, *train = NULL, *target = NULL, *heldout = NULL;
    if ((rc = app_start_fmnist(argv[0], out, &ctx, &all, &test)) != 0) return rc;
    if (app_splits(ctx, all, N, ntarget, nheld, 23, &train, &target, &heldout)) return 1;
    if (cnn && smoke) { /* the CNN's smoke test scores on 1,000 test images: seconds */
        int64_t first[1000];
        for (int64_t i = 0; i < 1000; i++) first[i] = i;
        mgrad_dataset *part = NULL;
        if (app_dataset_from(ctx, test, first, 1000, NULL, NULL, &part)) return 1;
        mgrad_dataset_destroy(test);
        test = part;
    }

    /* --lr-decay: the step size of training step t is lr · (1 − t/T), for
       the attacker and every victim (the momentum-0.9 victim from its own
       lr); NULL: constant */
    double *sched = NULL, *std_sched = NULL;
    if (lr_decay) {
        sched = malloc(sizeof(double) * (size_t)cfg.steps);
        std_sched = malloc(sizeof(double) * (size_t)cfg.steps);
        for (int64_t t = 0; t < cfg.steps; t++) {
            double f = 1.0 - (double)t / (double)cfg.steps;
            sched[t] = cfg.lr * f;
            std_sched[t] = TRANSFER_LR * f;
        }
    }

    int64_t npoison = (int64_t)(share * (double)N + 0.5);
    int64_t *rows = malloc(sizeof(int64_t) * (size_t)npoison);
    app_draw_distinct(&rng, N, npoison, rows);
    if (cnn)
        printf("Fashion-MNIST poisoning: %lld of %lld training images (%.1f%%) may change, "
               "labels unchanged; %s, T = %lld, B = %lld, SGD momentum %.2g lr %.3g%s weight "
               "decay %.2g\n",
               (long long)npoison, (long long)N, 100 * share, app_model_name(&cfg),
               (long long)cfg.steps, (long long)cfg.batch, cfg.momentum, cfg.lr,
               lr_decay ? " decaying linearly to 0" : "", cfg.weight_decay);
    else
        printf(
            "Fashion-MNIST poisoning: %lld of %lld training images (%.1f%%) may change, labels "
            "unchanged; MLP 784-%d-10, T = %lld, B = %lld, SGD momentum %.1f lr %.2f%s\n",
            (long long)npoison, (long long)N, 100 * share, cfg.hidden, (long long)cfg.steps,
            (long long)cfg.batch, cfg.momentum, cfg.lr, lr_decay ? " decaying linearly to 0" : "");

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
        if (app_run(ctx, &cfg, train, NULL, 5, 5, sched, &m, &run)) return 1;
        const mgrad_output_term raise = {MGRAD_OUTPUT_LOSS, target, -1.0, NULL, 0, NULL, 0};
        mgrad_output phi = MGRAD_OUTPUT_INIT;
        phi.terms = &raise;
        phi.num_terms = 1;
        APP_CHECK(ctx, mgrad_run_set_output(run, &phi));
        double *minus = malloc(sizeof(double) * (size_t)nheld);
        for (int64_t i = 0; i < nheld; i++) minus[i] = -1.0;
        APP_CHECK(ctx, mgrad_dataset_set_weights(heldout, MGRAD_DTYPE_F64, minus, nheld));
        free(minus);
        mgrad_meta_options mo = MGRAD_META_OPTIONS_INIT;
        mo.rows = rows;
        mo.num_rows = npoison;
        APP_CHECK(ctx, mgrad_run_add_meta(&pix, run, MGRAD_META_INPUTS, &mo));
        double box[2] = {0, 1};
        APP_CHECK(ctx, mgrad_mgd_create(&mgd, pix, adam ? MGRAD_MGD_ADAM : MGRAD_MGD_SIGN));
        /* per-pixel step, like a PGD attack */
        APP_CHECK(ctx, mgrad_mgd_set_real(mgd, MGRAD_MGD_PARAM_LR, meta_lr));
        if (decay_every > 0) {
            double sp[2] = {decay_every, 0.5};
            APP_CHECK(ctx, mgrad_mgd_set_lr_schedule(mgd, MGRAD_MGD_LR_STEP, sp, 2));
        }
        if (reshuffle) APP_CHECK(ctx, mgrad_mgd_set_int(mgd, MGRAD_MGD_PARAM_RESHUFFLE, 1));
        if (best_orders > 0)
            APP_CHECK(ctx, mgrad_mgd_set_int(mgd, MGRAD_MGD_PARAM_BEST_ORDERS, best_orders));
        APP_CHECK(ctx, mgrad_mgd_set_projection(mgd, MGRAD_PROJECT_BOX, box, 2));
        APP_CHECK(ctx, mgrad_mgd_set_heldout(mgd, heldout));
        APP_CHECK(ctx, mgrad_mgd_set_progress(mgd, progress_losses, log));
        if (cnn || adam || reshuffle || meta_lr != 0.05 || decay_every > 0) {
            char decay[64] = "";
            if (decay_every > 0)
                snprintf(decay, sizeof decay, " halved every %d", decay_every);
            char orders[64] = "";
            if (best_orders > 0)
                snprintf(orders, sizeof orders, ", best iterate on %d fixed orders",
                         best_orders);
            printf("MGD poisoning (%d meta-steps of %s, step %g%s%s%s, maximising the target "
                   "loss):\n",
                   meta_steps, adam ? "Adam" : "signed steps", meta_lr, decay,
                   reshuffle ? ", a new batch order each" : "", orders);
        }
        else
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

    const char *row_names[NROWS] = {names[0], names[1], names[2], names[3],
                                    "clean (victim momentum 0.9)",
                                    "MGD poisons (victim momentum 0.9)"};
    int nrows = cnn ? NROWS : NATTACKS;
    double mean[NROWS], sd[NROWS];
    printf("\n%-13s  %s  %s\n", "training set", "victim test accuracy (mean ± std, unseen seeds)",
           "drop vs clean");
    /* With --cnn the same retrainings are also scored on the attacker's
       held-out split (stdout only): the attack's settings are chosen on
       that figure, never on the test split. */
    const mgrad_dataset *eval[2] = {test, heldout};
    double held[NROWS];
    for (int k = 0; k < NATTACKS; k++) {
        if (cnn) {
            double m2[2], s2[2];
            if (app_score_sets(ctx, &cfg, sets[k], eval, 2, 104729u, 3, seeds, sched, m2, s2,
                               NULL))
                return 1;
            mean[k] = m2[0], sd[k] = s2[0], held[k] = m2[1];
        } else if (app_score(ctx, &cfg, sets[k], test, 104729u, 3, seeds, sched, &mean[k],
                             &sd[k]))
            return 1;
        printf("%-13s  %6.2f%% ± %.2f%%  (%d seeds)                     %+6.2f points",
               names[k], 100 * mean[k], 100 * sd[k], seeds, 100 * (mean[k] - mean[0]));
        if (cnn) printf("  (held-out split: %.2f%%, %+.2f)", 100 * held[k], 100 * (held[k] - held[0]));
        printf("\n");
    }
    if (cnn) {
        /* Poisons made against the smooth training, used against a victim
           that trains the usual way (the paper's smooth-to-standard
           transfer): lr 0.05, momentum 0.9, same model, steps and seeds. */
        app_train std_cfg = cfg;
        std_cfg.lr = TRANSFER_LR;
        std_cfg.momentum = TRANSFER_MOMENTUM;
        printf("victim trained with SGD lr %.2g%s momentum %.2g:\n", TRANSFER_LR,
               lr_decay ? " decaying linearly to 0" : "", TRANSFER_MOMENTUM);
        for (int k = NATTACKS; k < NROWS; k++) {
            mgrad_dataset *set = k == NATTACKS ? sets[0] : sets[3];
            double m2[2], s2[2];
            if (app_score_sets(ctx, &std_cfg, set, eval, 2, 104729u, 3, seeds, std_sched, m2,
                               s2, NULL))
                return 1;
            mean[k] = m2[0], sd[k] = s2[0], held[k] = m2[1];
            printf("%-13s  %6.2f%% ± %.2f%%  (%d seeds)                     %+6.2f points"
                   "  (held-out split: %.2f%%, %+.2f)\n",
                   k == NATTACKS ? names[0] : names[3], 100 * mean[k], 100 * sd[k], seeds,
                   100 * (mean[k] - mean[NATTACKS]), 100 * held[k],
                   100 * (held[k] - held[NATTACKS]));
        }
    }

    char path[4096];
    double table[NROWS * 4];
    for (int k = 0; k < nrows; k++) {
        table[4 * k] = mean[k];
        table[4 * k + 1] = sd[k];
        table[4 * k + 2] = seeds;
        table[4 * k + 3] = mean[k] - mean[k < NATTACKS ? 0 : NATTACKS];
    }
    int failures = 0;
    snprintf(path, sizeof path, "%s/poisoning.csv", out);
    failures += app_write_named_csv(path,
                                    "attack,test_accuracy_mean,test_accuracy_std,seeds,"
                                    "drop",
                                    row_names, table, nrows, 4) != 0;
    failures += app_write_progress(out, "poisoning_progress.csv", log, meta_steps) != 0;
    /* the CNN runs also record the training and attack settings (the MLP's
       summary keeps its six fields) */
    const app_number fields[] = {
        {"train", (double)N},
        {"poisoned", (double)npoison},
        {"meta_steps", meta_steps},
        {"seeds", seeds},
        {"train_steps", (double)cfg.steps},
        {"batch", (double)cfg.batch},
        {"lr", cfg.lr},
        {"momentum", cfg.momentum},
        {"weight_decay", cfg.weight_decay},
        {"meta_lr", meta_lr},
        {"meta_lr_halved_every", decay_every},
        {"adam", adam},
        {"reshuffle", reshuffle},
        {"best_orders", best_orders},
        {"lr_decay", lr_decay}};
    snprintf(path, sizeof path, "%s/poisoning.json", out);
    const char *mode = quick ? "quick" : smoke ? "smoke" : "full";
    if (cnn) mode = quick ? "cnn-quick" : smoke ? "cnn-smoke" : "cnn-full";
    failures += app_write_summary(path, "poisoning", mode, fields, cnn ? 15 : 6, row_names, mean, sd,
                                  nrows) != 0;
    int status = app_outputs_done(out, "poisoning.csv, poisoning_progress.csv, poisoning.json",
                                  failures);

    for (int k = 1; k < NATTACKS; k++) mgrad_dataset_destroy(sets[k]);
    free(xa); free(ya); free(poison); free(log); free(sched); free(std_sched);
    free(x); free(y); free(ident); free(rows);
    mgrad_dataset_destroy(train);
    mgrad_dataset_destroy(target);
    mgrad_dataset_destroy(heldout);
    mgrad_dataset_destroy(test);
    mgrad_dataset_destroy(all);
    mgrad_context_destroy(ctx);
    return status;
}
