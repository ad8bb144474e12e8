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
 * --cnn: the same question at convolutional scale, asked as a
 * trainings-to-tune curve.  The small ResNet (app_model, 8/16 channels; SGD
 * momentum 0.5, weight decay 5e-4; N = 2000 training images, T = 150,
 * B = 32; target and held-out splits of 1000) is tuned three ways, and the
 * best held-out loss found is recorded after every training spent:
 *   grid search    the 48 schedules of the MLP's grids in a fixed order:
 *                  constant, step decay, cosine (6 peaks 0.01 ... 0.4 each,
 *                  ascending), then one-cycle (each peak with warm-up shares
 *                  0.1 ... 0.5);
 *   random search  48 draws of the same families (family uniform, peak
 *                  log-uniform in [0.01, 0.4], warm-up share uniform in
 *                  [0.1, 0.5]), for each of 5 random-search seeds;
 *   MGD            20 meta-steps of Adam from a flat 0.05, once on the
 *                  cosine family {peak, floor, warm-up} (mgrad_mgd_set_map
 *                  COSINE) and once on the 11-knot schedule in log scale
 *                  (basis + EXP); a meta-step costs one training and one
 *                  reverse pass, whose cost in trainings is measured (CPU
 *                  time) and reported.
 * Every point is scored the same way: trained with θ0 seed 1 and batch
 * order 1, mean loss on the held-out split (MGD without reshuffling, so
 * that its score is the same measurement).  Each method's best schedule is
 * then retrained with unseen seeds and scored on the test split.  Writes
 * lr_schedule.csv (the table, as above; the random-search row is the seed
 * with the median final loss), lr_schedule_steps.csv, lr_schedule_curve.csv
 * (method, seed, trainings, reverse passes, training-equivalents, the
 * point's held-out loss and the best so far) and lr_schedule.json (mode
 * "cnn-full", "cnn-quick" or "cnn-smoke"; the trainings each method needed
 * to come within 1% of the best loss found).  --cnn --quick: N = 1000,
 * splits of 500, T = 100, 16 random draws × 3 seeds, 6 meta-steps, 3
 * retrainings; --cnn --smoke: seconds.  --steps, --train and
 * --search-seeds change the --cnn configuration.
 *
 * Usage: lr_schedule [--quick | --smoke] [--meta-steps M] [--seeds S] [--out DIR]
 *        lr_schedule --cnn [--quick | --smoke] [--search-seeds R] [--steps T]
 *                    [--train N] [--meta-steps M] [--seeds S] [--out DIR]
 *        (--help: all options)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* out/lr_schedule_steps.csv: a row per step t, "step" then each method's
   η_t (header names them).  0, or 1 after perror. */
static int write_steps_csv(const char *out, const char *header, double *const *sched,
                           int methods, int64_t T)
{
    char path[1024];
    double *rows = malloc(sizeof(double) * (size_t)(T * (methods + 1)));
    if (rows == NULL) return 1;
    for (int64_t t = 0; t < T; t++) {
        rows[t * (methods + 1)] = (double)t;
        for (int m = 0; m < methods; m++) rows[t * (methods + 1) + 1 + m] = sched[m][t];
    }
    snprintf(path, sizeof path, "%s/lr_schedule_steps.csv", out);
    int rc = app_write_csv(path, header, rows, (int)T, methods + 1) != 0;
    if (rc) perror(path);
    free(rows);
    return rc;
}

/* ------------------------------------------------------------------ --cnn
   The trainings-to-tune curves: the best held-out loss found against the
   number of trainings spent, for grid search, random search and MGD over
   the same schedule families, on the small ResNet. */

enum { CNN_METHODS = 4, CNN_KNOTS = 11, CNN_GRID = 48, CNN_MAX_SEARCH_SEEDS = 16 };

/* CPU seconds of this process: with one OpenBLAS thread a training's CPU
   time is its cost, whatever else runs on the machine (wall time is not). */
static double cpu_seconds(void)
{
    return (double)clock() / CLOCKS_PER_SEC;
}

/* One point of a curve: after `trainings` trainings and `reverses` reverse
   passes, the point scored `loss`, and the best so far is `best`. */
typedef struct curve_row {
    int method, seed;
    double trainings, reverses, loss, best;
} curve_row;

typedef struct curves {
    const setup *s;
    curve_row *rows;
    int nrows, cap;
    double train_cpu; /* CPU seconds of the searches' trainings ... */
    int ntimed;       /* ... and how many */
} curves;

static void add_point(curves *c, int method, int seed, double trainings, double reverses,
                      double loss, double *best)
{
    if (loss < *best) *best = loss;
    if (c->nrows < c->cap)
        c->rows[c->nrows++] = (curve_row){method, seed, trainings, reverses, loss, *best};
}

/* A schedule of the searches: family f of {constant, step decay, cosine,
   one-cycle} with its peak and warm-up share (one-cycle only). */
static void family_schedule(double *sched, int64_t T, int f, double peak, double warmup)
{
    static const shape_fn shapes[4] = {constant, step_decay, cosine, one_cycle};
    shapes[f](sched, T, peak, warmup);
}

/* Train one candidate of a search, record its point, keep it if best. */
static int search_point(curves *c, int method, int seed, int index, const double *cand,
                        double *best, double *best_sched)
{
    double loss = 0, before = *best, t0 = cpu_seconds();
    if (heldout_loss(c->s, cand, &loss)) return 1;
    c->train_cpu += cpu_seconds() - t0;
    c->ntimed++;
    add_point(c, method, seed, index + 1, 0, loss, best);
    if (index == 0 || loss < before)
        memcpy(best_sched, cand, sizeof(double) * (size_t)c->s->cfg.steps);
    return 0;
}

/* The grid of the MLP table in its fixed order: constant (6 peaks
   ascending), step decay, cosine (6 each), then one-cycle (each peak with
   warm-up shares 0.1 ... 0.5). */
static const double grid_peaks[6] = {0.01, 0.02, 0.05, 0.1, 0.2, 0.4};
static const double grid_warmups[5] = {0.1, 0.2, 0.3, 0.4, 0.5};

static int grid_search(curves *c, int method, double *best_sched, double *best)
{
    int64_t T = c->s->cfg.steps;
    double *cand = malloc(sizeof(double) * (size_t)T);
    int index = 0;
    *best = INFINITY;
    for (int f = 0; f < 4; f++)
        for (int i = 0; i < 6; i++)
            for (int j = 0; j < (f == 3 ? 5 : 1); j++) {
                family_schedule(cand, T, f, grid_peaks[i], grid_warmups[j]);
                if (search_point(c, method, 0, index++, cand, best, best_sched)) return 1;
            }
    free(cand);
    return 0;
}

/* Random search over the same families and ranges: the family uniform, the
   peak log-uniform in [0.01, 0.4], the warm-up share uniform in [0.1, 0.5]
   (drawn for every candidate, used by one-cycle). */
static int random_search(curves *c, int method, int seed, int n, double *best_sched,
                         double *best)
{
    int64_t T = c->s->cfg.steps;
    double *cand = malloc(sizeof(double) * (size_t)T);
    app_rng rng = {0x6c72u * 1000003u + (uint64_t)seed};
    *best = INFINITY;
    for (int k = 0; k < n; k++) {
        int f = (int)(4 * app_urand(&rng));
        double peak = 0.01 * exp(log(40.0) * app_urand(&rng));
        double warmup = 0.1 + 0.4 * app_urand(&rng);
        family_schedule(cand, T, f, peak, warmup);
        if (search_point(c, method, seed, k, cand, best, best_sched)) return 1;
    }
    free(cand);
    return 0;
}

typedef struct mgd_log {
    curves *c;
    int method, steps;
    double best, cpu_mark, step_cpu;
} mgd_log;

/* MGD progress: meta-step k scored iterate k after k + 1 trainings and k
   reverse passes (its own reverse pass comes after the score). */
static int mgd_point(int64_t step, double phi, double score, double seconds, void *user_data)
{
    mgd_log *l = user_data;
    double now = cpu_seconds();
    l->step_cpu += now - l->cpu_mark;
    l->cpu_mark = now;
    l->steps++;
    add_point(l->c, l->method, 0, (double)step + 1, (double)step, score, &l->best);
    printf("  meta-step %3lld  target loss %.4f  held-out loss %.4f  best %.4f  (%.1f s)\n",
           (long long)step, phi, score, l->best, seconds);
    fflush(stdout);
    return 0;
}

/* MGD over a schedule family: `map` COSINE from a flat start at cfg.lr
   ({peak, floor, warm-up} = {lr, lr, 0}), or EXP on the 11-knot
   piecewise-linear basis (a log-scale schedule, flat at lr).  No reshuffle:
   every iterate trains on the batch order of the searches' trainings, so
   its score is the same measurement as theirs.  A diverged training ends
   the run (its point is recorded as infinite). */
static int mgd_search(curves *c, int method, mgrad_mgd_map map, double meta_lr, int meta_steps,
                      double *best_sched, double *best, mgd_log *rec)
{
    const setup *s = c->s;
    mgrad_context *ctx = s->ctx;
    int64_t T = s->cfg.steps;
    mgrad_model *m = NULL;
    mgrad_run *run = NULL;
    mgrad_meta *lr = NULL;
    mgrad_mgd *mgd = NULL;
    if (app_run(ctx, &s->cfg, s->train, s->target, 1, 1, NULL, &m, &run)) return 1;
    APP_CHECK(ctx, mgrad_run_add_meta(&lr, run, MGRAD_META_LR_SCHEDULE, NULL));
    APP_CHECK(ctx, mgrad_mgd_create(&mgd, lr, MGRAD_MGD_ADAM));
    APP_CHECK(ctx, mgrad_mgd_set_real(mgd, MGRAD_MGD_PARAM_LR, meta_lr));
    if (map == MGRAD_MGD_MAP_COSINE) {
        const double start[3] = {s->cfg.lr, s->cfg.lr, 0};
        APP_CHECK(ctx, mgrad_mgd_set_map(mgd, MGRAD_MGD_MAP_COSINE, start, 3));
    } else {
        double *basis = malloc(sizeof(double) * (size_t)T * CNN_KNOTS), knots[CNN_KNOTS];
        if (basis == NULL) return 1;
        for (int64_t t = 0; t < T; t++) {
            double pos = (double)t / (double)(T - 1) * (CNN_KNOTS - 1);
            for (int j = 0; j < CNN_KNOTS; j++)
                basis[t * CNN_KNOTS + j] = fmax(0, 1 - fabs(pos - j));
        }
        for (int j = 0; j < CNN_KNOTS; j++) knots[j] = log(s->cfg.lr);
        APP_CHECK(ctx, mgrad_mgd_set_basis(mgd, basis, CNN_KNOTS, knots));
        APP_CHECK(ctx, mgrad_mgd_set_map(mgd, MGRAD_MGD_MAP_EXP, knots, CNN_KNOTS));
        free(basis);
    }
    APP_CHECK(ctx, mgrad_mgd_set_heldout(mgd, s->heldout));
    *rec = (mgd_log){c, method, 0, INFINITY, cpu_seconds(), 0};
    APP_CHECK(ctx, mgrad_mgd_set_progress(mgd, mgd_point, rec));
    mgrad_status st = mgrad_mgd_run(mgd, meta_steps);
    if (st == MGRAD_OK) {
        /* mgrad_mgd_run trained the final iterate last: its held-out loss */
        double loss = 0;
        APP_CHECK(ctx, mgrad_run_evaluate(run, s->heldout, &loss, NULL));
        add_point(c, method, 0, meta_steps + 1, meta_steps, loss, &rec->best);
        printf("  final iterate   held-out loss %.4f  best %.4f\n", loss, rec->best);
    } else if (st == MGRAD_ERR_NONFINITE) {
        add_point(c, method, 0, rec->steps + 1, rec->steps, INFINITY, &rec->best);
        printf("  meta-step %d diverged; MGD stops there\n", rec->steps);
    } else {
        APP_CHECK(ctx, st);
    }
    APP_CHECK(ctx, mgrad_mgd_best(mgd, MGRAD_DTYPE_F64, best_sched, T, best));
    mgrad_mgd_destroy(mgd);
    mgrad_run_destroy(run);
    mgrad_model_destroy(m);
    return 0;
}

/* Trainings (and training-equivalents) after which `method` (and `seed`,
   -1: any) first came within 1% of `target`; INFINITY if never. */
static void reach(const curves *c, int method, int seed, double target, double ratio,
                  double *trainings, double *equivalents)
{
    *trainings = *equivalents = INFINITY;
    for (int r = 0; r < c->nrows; r++) {
        const curve_row *p = &c->rows[r];
        if (p->method == method && (seed < 0 || p->seed == seed) && p->best <= 1.01 * target) {
            *trainings = p->trainings;
            *equivalents = p->trainings + ratio * p->reverses;
            return;
        }
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct cnn_conf {
    const char *mode;
    int64_t ntrain, nsplit;
    int meta_steps, seeds, search_seeds, search_n;
} cnn_conf;

static int cnn_main(setup *s, mgrad_dataset *all, const cnn_conf *k, const char *out)
{
    mgrad_context *ctx = s->ctx;
    if (app_splits(ctx, all, k->ntrain, k->nsplit, k->nsplit, 11, &s->train, &s->target,
                   &s->heldout))
        return 1;
    int64_t T = s->cfg.steps;
    printf(
        "Fashion-MNIST LR schedules, trainings-to-tune curves (%s): train %lld, target %lld, "
        "held-out %lld; %s, SGD momentum %.2g, weight decay %.0e, T = %lld, B = %lld\n",
        k->mode, (long long)k->ntrain, (long long)k->nsplit, (long long)k->nsplit,
        app_model_name(&s->cfg), s->cfg.momentum, s->cfg.weight_decay, (long long)T,
        (long long)s->cfg.batch);
    const char *names[CNN_METHODS] = {"grid search", "random search", "MGD cosine",
                                      "MGD 11 knots"};
    curves c = {s, NULL, 0, 0, 0, 0};
    c.cap = CNN_GRID + k->search_seeds * k->search_n + 2 * (k->meta_steps + 1);
    c.rows = malloc(sizeof(curve_row) * (size_t)c.cap);
    double *sched[CNN_METHODS],
        *rs_sched = malloc(sizeof(double) * (size_t)T * (size_t)k->search_seeds);
    double found[CNN_METHODS], rs_best[CNN_MAX_SEARCH_SEEDS];
    int tried[CNN_METHODS];
    if (c.rows == NULL || rs_sched == NULL) return 1;
    for (int m = 0; m < CNN_METHODS; m++) sched[m] = malloc(sizeof(double) * (size_t)T);

    double t0 = cpu_seconds();
    printf("grid search (%d trainings) ...\n", CNN_GRID);
    fflush(stdout);
    if (grid_search(&c, 0, sched[0], &found[0])) return 1;
    tried[0] = CNN_GRID;
    printf("  best held-out loss %.4f (%.1f CPU s)\n", found[0], cpu_seconds() - t0);
    for (int r = 0; r < k->search_seeds; r++) {
        t0 = cpu_seconds();
        if (random_search(&c, 1, r, k->search_n, rs_sched + (size_t)r * (size_t)T, &rs_best[r]))
            return 1;
        printf("random search seed %d (%d trainings): best held-out loss %.4f (%.1f CPU s)\n",
               r, k->search_n, rs_best[r], cpu_seconds() - t0);
        fflush(stdout);
    }
    /* the table's random-search row: the seed of the median final loss */
    {
        double sorted[CNN_MAX_SEARCH_SEEDS];
        memcpy(sorted, rs_best, sizeof(double) * (size_t)k->search_seeds);
        qsort(sorted, (size_t)k->search_seeds, sizeof(double), cmp_double);
        int med = 0;
        for (int r = 0; r < k->search_seeds; r++)
            if (rs_best[r] == sorted[(k->search_seeds - 1) / 2]) med = r;
        memcpy(sched[1], rs_sched + (size_t)med * (size_t)T, sizeof(double) * (size_t)T);
        found[1] = rs_best[med];
        tried[1] = k->search_n;
    }
    mgd_log logs[2];
    /* Adam's step: 0.005 on the cosine family's coefficients (a tenth of
       the start's peak; 0.01 overshot in a quick run), 0.1 on the log knots
       (10% relative changes) */
    const double cosine_lr = 0.005, knots_lr = 0.1;
    printf(
        "MGD cosine family {peak, floor, warm-up} from a flat %.3g (Adam %g, %d meta-steps):\n",
        s->cfg.lr, cosine_lr, k->meta_steps);
    if (mgd_search(&c, 2, MGRAD_MGD_MAP_COSINE, cosine_lr, k->meta_steps, sched[2], &found[2],
                   &logs[0]))
        return 1;
    printf("MGD 11-knot log-scale schedule from a flat %.3g (Adam %g, %d meta-steps):\n",
           s->cfg.lr, knots_lr, k->meta_steps);
    if (mgd_search(&c, 3, MGRAD_MGD_MAP_EXP, knots_lr, k->meta_steps, sched[3], &found[3],
                   &logs[1]))
        return 1;
    tried[2] = logs[0].steps + 1;
    tried[3] = logs[1].steps + 1;

    /* a reverse pass in trainings: (meta-step − training) / training, CPU time */
    double train_cpu = c.train_cpu / c.ntimed;
    double step_cpu =
        (logs[0].step_cpu + logs[1].step_cpu) / fmax(1, logs[0].steps + logs[1].steps);
    double ratio = fmax(0, step_cpu / train_cpu - 1);
    printf(
        "\nCPU seconds: a training %.2f, a meta-step %.2f: a reverse pass = %.2f trainings\n",
        train_cpu, step_cpu, ratio);

    double best_all = INFINITY;
    for (int r = 0; r < c.nrows; r++) best_all = fmin(best_all, c.rows[r].best);
    printf("best held-out loss found: %.4f; trainings to come within 1%% of it "
           "(training-equivalents):\n",
           best_all);
    double to1[CNN_METHODS], eq1[CNN_METHODS];
    for (int m = 0; m < CNN_METHODS; m++) {
        if (m == 1) {
            double tr[CNN_MAX_SEARCH_SEEDS], eq[CNN_MAX_SEARCH_SEEDS];
            printf("  %-13s", names[m]);
            for (int r = 0; r < k->search_seeds; r++) {
                reach(&c, m, r, best_all, ratio, &tr[r], &eq[r]);
                printf(" %g", tr[r]);
            }
            qsort(tr, (size_t)k->search_seeds, sizeof(double), cmp_double);
            to1[m] = eq1[m] = tr[(k->search_seeds - 1) / 2];
            printf(" (median %g)\n", to1[m]);
        } else {
            reach(&c, m, -1, best_all, ratio, &to1[m], &eq1[m]);
            printf("  %-13s %g (%.1f)\n", names[m], to1[m], eq1[m]);
        }
    }

    printf("\n%-13s %9s %14s  %s\n", "method", "trainings", "held-out loss",
           "test accuracy (mean ± std over unseen seeds)");
    double mean[CNN_METHODS], sd[CNN_METHODS], table[CNN_METHODS * 5];
    for (int m = 0; m < CNN_METHODS; m++) {
        if (app_score(ctx, &s->cfg, s->train, s->test, 7919u, 101, k->seeds, sched[m], &mean[m],
                      &sd[m]))
            return 1;
        printf("%-13s %9d %14.4f  %6.2f%% ± %.2f%%\n", names[m], tried[m], found[m],
               100 * mean[m], 100 * sd[m]);
        fflush(stdout);
        table[5 * m] = tried[m];
        table[5 * m + 1] = found[m];
        table[5 * m + 2] = mean[m];
        table[5 * m + 3] = sd[m];
        table[5 * m + 4] = k->seeds;
    }

    char path[4096];
    int failures = 0;
    snprintf(path, sizeof path, "%s/lr_schedule.csv", out);
    failures += app_write_named_csv(path,
                                    "schedule,trainings,heldout_loss,test_accuracy_mean,"
                                    "test_accuracy_std,seeds",
                                    names, table, CNN_METHODS, 5) != 0;
    failures += write_steps_csv(out, "step,grid_search,random_search,mgd_cosine,mgd_knots",
                                sched, CNN_METHODS, T);
    double *rows = malloc(sizeof(double) * (size_t)c.nrows * 6);
    const char **labels = malloc(sizeof(char *) * (size_t)c.nrows);
    if (rows == NULL || labels == NULL) return 1;
    for (int r = 0; r < c.nrows; r++) {
        const curve_row *p = &c.rows[r];
        double *row = rows + 6 * r;
        labels[r] = names[p->method];
        row[0] = p->seed;
        row[1] = p->trainings;
        row[2] = p->reverses;
        row[3] = p->trainings + ratio * p->reverses;
        row[4] = p->loss;
        row[5] = p->best;
    }
    snprintf(path, sizeof path, "%s/lr_schedule_curve.csv", out);
    failures += app_write_named_csv(path,
                                    "method,seed,trainings,reverse_passes,training_equivalents,"
                                    "heldout_loss,best_heldout_loss",
                                    labels, rows, c.nrows, 6) != 0;
    const app_number fields[] = {{"train", (double)k->ntrain},
                                 {"train_steps", (double)T},
                                 {"batch", (double)s->cfg.batch},
                                 {"momentum", s->cfg.momentum},
                                 {"weight_decay", s->cfg.weight_decay},
                                 {"grid_trainings", CNN_GRID},
                                 {"random_search_seeds", k->search_seeds},
                                 {"random_search_trainings", k->search_n},
                                 {"meta_steps", k->meta_steps},
                                 {"knots", CNN_KNOTS},
                                 {"seeds", k->seeds},
                                 {"training_cpu_seconds", train_cpu},
                                 {"meta_step_cpu_seconds", step_cpu},
                                 {"reverse_pass_in_trainings", ratio},
                                 {"best_heldout_loss", best_all},
                                 {"to_1pct_grid_search", to1[0]},
                                 {"to_1pct_random_search_median", to1[1]},
                                 {"to_1pct_mgd_cosine", to1[2]},
                                 {"to_1pct_mgd_knots", to1[3]},
                                 {"to_1pct_mgd_cosine_equivalents", eq1[2]},
                                 {"to_1pct_mgd_knots_equivalents", eq1[3]}};
    snprintf(path, sizeof path, "%s/lr_schedule.json", out);
    failures += app_write_summary(path, "lr_schedule", k->mode, fields,
                                  (int)(sizeof fields / sizeof *fields), names, mean, sd,
                                  CNN_METHODS) != 0;
    int status = app_outputs_done(out,
                                  "lr_schedule.csv, lr_schedule_steps.csv, "
                                  "lr_schedule_curve.csv, lr_schedule.json",
                                  failures);
    for (int m = 0; m < CNN_METHODS; m++) free(sched[m]);
    free(rs_sched);
    free(rows);
    free(labels);
    free(c.rows);
    return status;
}

int main(int argc, char **argv)
{
    int meta_steps = 50, seeds = 3;
    int64_t ntrain = 4000;
    const char *out = ".";
    setup s = {NULL, {.steps = 300, .batch = 64, .lr = 0.05, .momentum = 0.9, .hidden = 128}, NULL, NULL, NULL, NULL};
    int quick = 0, smoke = 0, cnn = 0;
    int64_t meta_flag = 0, seeds_flag = 0; /* 0: the mode's default */
    int64_t search_seeds_flag = 0, steps_flag = 0, train_flag = 0;
    const app_flag flags[] = {
        APP_FLAG_QUICK(&quick),
        APP_FLAG_SMOKE(&smoke),
        {"--cnn", APP_FLAG_SWITCH, &cnn, NULL,
         "the small ResNet: trainings-to-tune curves of grid search, random search and MGD "
         "(with --quick or --smoke: smaller)",
         0, 0},
        {"--search-seeds", APP_FLAG_INT, &search_seeds_flag, "R",
         "with --cnn: random-search seeds", 1, CNN_MAX_SEARCH_SEEDS},
        {"--steps", APP_FLAG_INT, &steps_flag, "T", "with --cnn: training steps T", 2, 100000},
        {"--train", APP_FLAG_INT, &train_flag, "N", "with --cnn: training images", 100, 50000},
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
    if (!cnn && (search_seeds_flag || steps_flag || train_flag))
        return app_usage_error(&cmd, argv[0], "--search-seeds, --steps and --train need --cnn");
    if (cnn) {
        /* The ResNet with momentum 0.5 and weight decay 5e-4: at a flat 0.05
           its metasmoothness Ŝ along two random directions was 0.29 / 0.25
           against 0.14 / 0.07 with momentum 0.9 (mgrad_mgd_trust_check,
           N = 2000, T = 150); N, T and B chosen so that a training takes
           about 3 CPU seconds and the full run about 20 CPU minutes. */
        cnn_conf k = {"cnn-full", 2000, 1000, 20, 5, 5, CNN_GRID};
        s.cfg = (app_train){.steps = 150,
                            .batch = 32,
                            .lr = 0.05,
                            .momentum = 0.5,
                            .hidden = 8,
                            .model = APP_MODEL_RESNET,
                            .weight_decay = 5e-4};
        if (quick) {
            k = (cnn_conf){"cnn-quick", 1000, 500, 6, 3, 3, 16};
            s.cfg.steps = 100;
        } else if (smoke) {
            k = (cnn_conf){"cnn-smoke", 200, 100, 2, 1, 2, 6};
            s.cfg.steps = 10;
            s.cfg.batch = 16;
        }
        if (meta_flag) k.meta_steps = (int)meta_flag;
        if (seeds_flag) k.seeds = (int)seeds_flag;
        if (search_seeds_flag) k.search_seeds = (int)search_seeds_flag;
        if (steps_flag) s.cfg.steps = steps_flag;
        if (train_flag) k.ntrain = train_flag;
        mgrad_dataset *all = NULL;
        if ((rc = app_start_fmnist(argv[0], out, &s.ctx, &all, &s.test)) != 0) return rc;
        rc = cnn_main(&s, all, &k, out);
        mgrad_dataset_destroy(s.train);
        mgrad_dataset_destroy(s.target);
        mgrad_dataset_destroy(s.heldout);
        mgrad_dataset_destroy(s.test);
        mgrad_dataset_destroy(all);
        mgrad_context_destroy(s.ctx);
        return rc;
    }
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
    failures += write_steps_csv(out, "step,constant,step_decay,cosine,one_cycle,mgd", sched,
                                NMETHODS, T);
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
    free(log);
    mgrad_dataset_destroy(s.train);
    mgrad_dataset_destroy(s.target);
    mgrad_dataset_destroy(s.heldout);
    mgrad_dataset_destroy(s.test);
    mgrad_dataset_destroy(all);
    mgrad_context_destroy(ctx);
    return status;
}
