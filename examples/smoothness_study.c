/*
 * smoothness_study.c - metasmoothness against what metagradient descent
 * achieves, over a grid of training choices (docs/smoothness.md).
 *
 * For every configuration (an MLP: width, output scale, learning rate,
 * batch size; a small CNN: batch norm before or after the activation,
 * average or max pooling):
 *   1. Ŝ and the curvature form along a random unit direction of the
 *      learning-rate schedule (mgrad_meta_metasmoothness), with the step
 *      h = 0.1 η √T, i.e. a perturbation of 10% of η per step (RMS);
 *   2. MGD on the same schedule: Adam with step 0.2 η for META_STEPS
 *      meta-steps, projected onto η_t >= 0; the improvement is the relative
 *      decrease of the validation loss φ from the starting schedule to the
 *      best iterate, (φ_0 − φ_best) / φ_0, and the descent fraction is the
 *      share of meta-steps that lowered φ (how reliable each metagradient
 *      step is, whatever the room left to improve).
 * Then the table, the Spearman rank correlations of Ŝ and of the curvature
 * with the improvement and with the descent fraction; the rows go to a CSV
 * and the correlations to a JSON summary beside it (the CSV's name with
 * .json for .csv), and examples/python/plot_results.py draws the figure
 * from the CSV.
 *
 * Data: subsets of Fashion-MNIST (N_TRAIN training and N_VAL validation
 * images from the training split), average-pooled 2x2 to 14x14 so that the
 * whole study takes a few minutes on two cores; when the dataset is not
 * installed (Debian package dataset-fashion-mnist) it falls back to
 * generated data and says so.
 *
 * Usage: smoothness_study [OUT.csv] [DIR]
 *        (default smoothness_study.csv; DIR: the Fashion-MNIST files, by
 *        default the dataset's directory; --help: this)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <metagrad.h>

#include "common/apputil.h"
#include "common/flags.h"

enum {
    N_TRAIN = 1024, N_VAL = 512, SIDE = 14, CLASSES = 10, STEPS = 64, META_STEPS = 8
};

typedef enum { BN_NONE = 0, BN_BEFORE = 1, BN_AFTER = 2 } bn_place;
typedef enum { POOL_NONE = 0, POOL_AVG = 1, POOL_MAX = 2 } pool_kind;

typedef struct config {
    const char *model;   /* "mlp" or "cnn" */
    int64_t width;       /* MLP hidden units; CNN channels of the first conv */
    double out_scale;    /* factor of the final mgrad_model_add_scale */
    double lr;
    int64_t batch;
    bn_place bn;
    pool_kind pool;
} config;

typedef struct result {
    int ok;
    double S, curvature, phi0, best, improvement, descent, seconds;
    double phis[META_STEPS + 1];   /* φ of the MGD iterates */
    char error[160];
} result;

#define CHECK(call)                                                              \
    do {                                                                         \
        mgrad_status s_ = (call);                                                \
        if (s_ != MGRAD_OK) {                                                    \
            snprintf(res->error, sizeof res->error, "%s: %s", mgrad_status_string(s_), \
                     mgrad_context_last_error(ctx));                             \
            goto done;                                                           \
        }                                                                        \
    } while (0)

/* ---- data --------------------------------------------------------------- */

/* n images of 28x28 (inputs [n, 784]) average-pooled to SIDE x SIDE. */
static void pool_images(const double *in, int64_t n, double *out)
{
    for (int64_t i = 0; i < n; i++)
        for (int r = 0; r < SIDE; r++)
            for (int c = 0; c < SIDE; c++) {
                const double *p = in + i * 784 + (2 * r) * 28 + 2 * c;
                out[i * SIDE * SIDE + r * SIDE + c] = 0.25 * (p[0] + p[1] + p[28] + p[29]);
            }
}

/* Generated stand-in: blobs whose class sets a pattern of stripes. */
static void generated(int64_t n, uint64_t seed, double *x, int32_t *y)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        y[i] = (int32_t)((s >> 33) % CLASSES);
        for (int j = 0; j < SIDE * SIDE; j++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            double noise = (double)(s >> 11) / 9007199254740992.0 - 0.5;
            int r = j / SIDE, c = j % SIDE;
            x[i * SIDE * SIDE + j] = 0.5 * sin(0.4 * (y[i] + 1) * r + 0.3 * y[i] * c) + noise;
        }
    }
}

/* Standardise with the training set's global mean and deviation. */
static void standardise(double *tr, int64_t ntr, double *va, int64_t nva)
{
    double mean = 0, var = 0;
    int64_t m = ntr * SIDE * SIDE;
    for (int64_t i = 0; i < m; i++) mean += tr[i];
    mean /= (double)m;
    for (int64_t i = 0; i < m; i++) var += (tr[i] - mean) * (tr[i] - mean);
    double sd = sqrt(var / (double)m);
    if (sd == 0) sd = 1;
    for (int64_t i = 0; i < m; i++) tr[i] = (tr[i] - mean) / sd;
    for (int64_t i = 0; i < nva * SIDE * SIDE; i++) va[i] = (va[i] - mean) / sd;
}

/* Fill x [n_train + n_val, SIDE²] and y; returns 1 for Fashion-MNIST. */
static int load_data(mgrad_context *ctx, const char *dir, double *x, int32_t *y)
{
    mgrad_dataset *all = NULL;
    int64_t n = N_TRAIN + N_VAL;
    if (mgrad_dataset_load_fashion_mnist(&all, ctx, "train", dir) == MGRAD_OK) {
        int64_t size = 0;
        mgrad_dataset_size(all, &size);
        double *full = malloc((size_t)size * 784 * sizeof *full);
        int32_t *labels = malloc((size_t)size * sizeof *labels);
        int ok = full != NULL && labels != NULL &&
                 mgrad_dataset_get_inputs(all, MGRAD_DTYPE_F64, full, size * 784) == MGRAD_OK &&
                 mgrad_dataset_get_labels(all, labels, size) == MGRAD_OK;
        if (ok) {
            /* a fixed subset: every (size / n)-th image */
            int64_t stride = size / n;
            double *pick = malloc((size_t)n * 784 * sizeof *pick);
            ok = pick != NULL;
            for (int64_t i = 0; ok && i < n; i++) {
                memcpy(pick + i * 784, full + i * stride * 784, 784 * sizeof *pick);
                y[i] = labels[i * stride];
            }
            if (ok) pool_images(pick, n, x);
            free(pick);
        }
        free(full);
        free(labels);
        mgrad_dataset_destroy(all);
        if (ok) return 1;
    }
    fprintf(stderr, "Fashion-MNIST not available (%s); using generated data\n",
            mgrad_context_last_error(ctx));
    generated(n, 1, x, y);
    return 0;
}

/* ---- one configuration --------------------------------------------------- */

static mgrad_status build_model(mgrad_context *ctx, const config *c, mgrad_model **out)
{
    mgrad_model *m = NULL;
    mgrad_status s;
    if (strcmp(c->model, "mlp") == 0) {
        int64_t shape[1] = {SIDE * SIDE};
        if ((s = mgrad_model_create(&m, ctx, 1, shape)) != MGRAD_OK) return s;
        s = mgrad_model_add_dense(m, c->width, MGRAD_INIT_KAIMING_UNIFORM);
        if (s == MGRAD_OK) s = mgrad_model_add_activation(m, MGRAD_ACTIVATION_RELU);
        if (s == MGRAD_OK) s = mgrad_model_add_dense(m, CLASSES, MGRAD_INIT_DEFAULT);
    } else {
        /* conv3x3(w) [bn] relu [bn] pool2 → conv3x3(2w) [bn] relu [bn] pool2 →
           flatten → dense(10) */
        int64_t shape[3] = {1, SIDE, SIDE};
        if ((s = mgrad_model_create(&m, ctx, 3, shape)) != MGRAD_OK) return s;
        for (int layer = 0; layer < 2 && s == MGRAD_OK; layer++) {
            s = mgrad_model_add_conv2d(m, c->width << layer, 3, 1, 1,
                                       MGRAD_INIT_KAIMING_UNIFORM);
            if (s == MGRAD_OK && c->bn == BN_BEFORE) s = mgrad_model_add_batch_norm(m, 1e-5);
            if (s == MGRAD_OK) s = mgrad_model_add_activation(m, MGRAD_ACTIVATION_RELU);
            if (s == MGRAD_OK && c->bn == BN_AFTER) s = mgrad_model_add_batch_norm(m, 1e-5);
            if (s == MGRAD_OK)
                s = c->pool == POOL_MAX ? mgrad_model_add_max_pool(m, 2, 0)
                                        : mgrad_model_add_avg_pool(m, 2, 0);
        }
        if (s == MGRAD_OK) s = mgrad_model_add_flatten(m);
        if (s == MGRAD_OK) s = mgrad_model_add_dense(m, CLASSES, MGRAD_INIT_DEFAULT);
    }
    if (s == MGRAD_OK && c->out_scale != 1) s = mgrad_model_add_scale(m, c->out_scale);
    if (s != MGRAD_OK) {
        mgrad_model_destroy(m);
        return s;
    }
    *out = m;
    return MGRAD_OK;
}

static double now(void)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int record_phi(int64_t step, double phi, double score, double seconds,
                      void *user_data)
{
    (void)score;
    (void)seconds;
    if (step >= 0 && step <= META_STEPS) ((double *)user_data)[step] = phi;
    return 0;
}

static void measure(mgrad_context *ctx, mgrad_dataset *train, mgrad_dataset *val,
                    const config *c, result *res)
{
    mgrad_model *model = NULL;
    mgrad_run *run = NULL;
    mgrad_meta *lr = NULL;
    mgrad_mgd *mgd = NULL;
    memset(res, 0, sizeof *res);
    res->S = res->curvature = res->improvement = res->descent = NAN;
    double *best = malloc(STEPS * sizeof *best);
    double t0 = now();
    CHECK(build_model(ctx, c, &model));
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = STEPS;
    o.batch_size = c->batch;
    o.lr = c->lr;
    o.shuffle_seed = 1;
    o.validation = val;
    CHECK(mgrad_run_create(&run, model, train, &o));
    CHECK(mgrad_run_add_meta(&lr, run, MGRAD_META_LR_SCHEDULE, NULL));

    double h = 0.1 * c->lr * sqrt((double)STEPS);
    CHECK(mgrad_meta_metasmoothness(lr, NULL, 1, h, &res->S, &res->curvature));

    CHECK(mgrad_mgd_create(&mgd, lr, MGRAD_MGD_ADAM));
    CHECK(mgrad_mgd_set_real(mgd, MGRAD_MGD_PARAM_LR, 0.2 * c->lr));
    CHECK(mgrad_mgd_set_projection(mgd, MGRAD_PROJECT_NONNEGATIVE, NULL, 0));
    CHECK(mgrad_mgd_set_progress(mgd, record_phi, res->phis));
    CHECK(mgrad_mgd_run(mgd, META_STEPS));
    CHECK(mgrad_mgd_best(mgd, MGRAD_DTYPE_F64, best, STEPS, &res->best));
    /* mgrad_mgd_run ends with the run trained at the last iterate */
    CHECK(mgrad_run_evaluate(run, val, &res->phis[META_STEPS], NULL));
    res->phi0 = res->phis[0];
    res->improvement = (res->phi0 - res->best) / res->phi0;
    int down = 0;
    for (int k = 0; k < META_STEPS; k++) down += res->phis[k + 1] < res->phis[k];
    res->descent = (double)down / META_STEPS;
    res->ok = 1;
done:
    res->seconds = now() - t0;
    free(best);
    mgrad_mgd_destroy(mgd);
    mgrad_run_destroy(run);
    mgrad_model_destroy(model);
}

/* ---- statistics ---------------------------------------------------------- */

/* Ranks 1..n with ties averaged. */
static void ranks(const double *x, int n, double *r)
{
    for (int i = 0; i < n; i++) {
        int below = 0, equal = 0;
        for (int j = 0; j < n; j++) {
            if (x[j] < x[i]) below++;
            else if (x[j] == x[i]) equal++;
        }
        r[i] = below + 0.5 * (equal + 1);
    }
}

/* Spearman's ρ: Pearson correlation of the ranks. */
static double spearman(const double *x, const double *y, int n)
{
    double *rx = malloc((size_t)n * sizeof *rx), *ry = malloc((size_t)n * sizeof *ry);
    ranks(x, n, rx);
    ranks(y, n, ry);
    double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
    for (int i = 0; i < n; i++) mx += rx[i], my += ry[i];
    mx /= n;
    my /= n;
    for (int i = 0; i < n; i++) {
        sxy += (rx[i] - mx) * (ry[i] - my);
        sxx += (rx[i] - mx) * (rx[i] - mx);
        syy += (ry[i] - my) * (ry[i] - my);
    }
    free(rx);
    free(ry);
    return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : NAN;
}

static const char *BN_NAMES[] = {"none", "before", "after"};
static const char *POOL_NAMES[] = {"-", "avg", "max"};

int main(int argc, char **argv)
{
    const char *csv_path = "smoothness_study.csv";
    const char *dir = NULL;
    const app_positional args[] = {
        {"OUT.csv", &csv_path,
         "the table, one row per configuration (default "
         "smoothness_study.csv; the summary goes to OUT.json)"},
        {"DIR", &dir, "the Fashion-MNIST files (default: the dataset's directory)"},
    };
    const app_cmdline cmd = {
        "Metasmoothness against what metagradient descent achieves, over a "
        "grid of training choices (minutes).",
        NULL, 0, args, 2};
    int rc = app_parse_flags(&cmd, argc, argv);
    if (rc != APP_FLAGS_RUN) return rc;
    /* the summary: OUT.json beside OUT.csv */
    char json_path[4096];
    size_t len = strlen(csv_path);
    if (len >= 4 && strcmp(csv_path + len - 4, ".csv") == 0) len -= 4;
    if (len + 6 > sizeof json_path)
        return app_usage_error(&cmd, argv[0], "OUT.csv: name too long");
    snprintf(json_path, sizeof json_path, "%.*s.json", (int)len, csv_path);
    mgrad_context *ctx = NULL;
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = MGRAD_DTYPE_F32;
    co.seed = 3;
    if (mgrad_context_create(&ctx, &co) != MGRAD_OK) return EXIT_FAILURE;

    int64_t n = N_TRAIN + N_VAL;
    double *x = malloc((size_t)n * SIDE * SIDE * sizeof *x);
    int32_t *y = malloc((size_t)n * sizeof *y);
    if (x == NULL || y == NULL) return EXIT_FAILURE;
    int real_data = load_data(ctx, dir, x, y);
    standardise(x, N_TRAIN, x + N_TRAIN * SIDE * SIDE, N_VAL);
    mgrad_dataset *train = NULL, *val = NULL;
    int64_t shape[3] = {1, SIDE, SIDE};
    if (mgrad_dataset_create(&train, ctx, N_TRAIN, 3, shape, MGRAD_DTYPE_F64, x) != MGRAD_OK ||
        mgrad_dataset_set_labels(train, y, N_TRAIN, CLASSES) != MGRAD_OK ||
        mgrad_dataset_create(&val, ctx, N_VAL, 3, shape, MGRAD_DTYPE_F64,
                             x + N_TRAIN * SIDE * SIDE) != MGRAD_OK ||
        mgrad_dataset_set_labels(val, y + N_TRAIN, N_VAL, CLASSES) != MGRAD_OK) {
        fprintf(stderr, "datasets: %s\n", mgrad_context_last_error(ctx));
        return EXIT_FAILURE;
    }
    free(x);
    free(y);

    config configs[32];
    int nc = 0;
    static const int64_t widths[] = {32, 128}, batches[] = {32, 128};
    static const double scales[] = {1, 0.1}, lrs[] = {0.05, 0.5};
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            for (int l = 0; l < 2; l++)
                for (int d = 0; d < 2; d++)
                    configs[nc++] = (config){"mlp", widths[a], scales[b], lrs[l], batches[d],
                                             BN_NONE, POOL_NONE};
    for (int bn = BN_NONE; bn <= BN_AFTER; bn++)
        for (int p = POOL_AVG; p <= POOL_MAX; p++)
            configs[nc++] = (config){"cnn", 8, 1, 0.1, 32, (bn_place)bn, (pool_kind)p};

    printf("libmetagrad %s: metasmoothness vs MGD on the LR schedule\n",
           mgrad_version_string());
    printf("data: %s, %d train / %d validation images at %dx%d; T = %d, SGD, f32;\n"
           "Ŝ along a random unit direction of the LR schedule, h = 0.1 lr sqrt(T);\n"
           "MGD: Adam (step 0.2 lr), %d meta-steps, improvement = (phi0 - best) / phi0,\n"
           "descent = share of meta-steps that lowered phi\n\n",
           real_data ? "Fashion-MNIST" : "GENERATED (Fashion-MNIST not installed)", N_TRAIN,
           N_VAL, SIDE, SIDE, STEPS, META_STEPS);
    printf("%-5s %5s %5s %5s %5s %6s %4s | %7s %10s %7s %7s %8s %7s %5s\n", "model",
           "width", "scale", "lr", "batch", "bn", "pool", "S", "curvature", "phi0", "best",
           "improve", "descent", "sec");
    FILE *csv = fopen(csv_path, "w");
    if (csv == NULL) {
        fprintf(stderr, "cannot write %s\n", csv_path);
        return EXIT_FAILURE;
    }
    fprintf(csv, "model,width,out_scale,lr,batch,bn,pool,S,curvature,phi0,phi_best,"
                 "improvement,descent,seconds,error\n");
    double S[32], curv[32], imp[32], desc[32];
    int nok = 0, nmlp = 0;   /* the MLP rows come first */
    for (int i = 0; i < nc; i++) {
        const config *c = &configs[i];
        result r;
        measure(ctx, train, val, c, &r);
        printf("%-5s %5lld %5.2g %5.2g %5lld %6s %4s | ", c->model, (long long)c->width,
               c->out_scale, c->lr, (long long)c->batch, BN_NAMES[c->bn],
               POOL_NAMES[c->pool]);
        if (r.ok)
            printf("%7.4f %10.4g %7.4f %7.4f %7.2f%% %7.3f %5.1f\n", r.S, r.curvature,
                   r.phi0, r.best, 100 * r.improvement, r.descent, r.seconds);
        else
            printf("failed: %s\n", r.error);
        fflush(stdout);
        fprintf(csv, "%s,%lld,%g,%g,%lld,%s,%s,%.17g,%.17g,%.17g,%.17g,%.17g,%.4g,%.3f,"
                "\"%s\"\n", c->model, (long long)c->width, c->out_scale, c->lr,
                (long long)c->batch, BN_NAMES[c->bn], POOL_NAMES[c->pool], r.S, r.curvature,
                r.phi0, r.best, r.improvement, r.descent, r.seconds, r.ok ? "" : r.error);
        if (r.ok) {
            S[nok] = r.S;
            curv[nok] = r.curvature;
            imp[nok] = r.improvement;
            desc[nok] = r.descent;
            nok++;
            if (strcmp(c->model, "mlp") == 0) nmlp = nok;
        }
    }
    int csv_failed = fclose(csv) != 0;
    if (csv_failed) perror(csv_path);
    printf("\n%d of %d configurations measured\n", nok, nc);
    printf("Spearman rank correlation (all %d):\n", nok);
    printf("  S         vs improvement: %+.3f    S         vs descent: %+.3f\n",
           spearman(S, imp, nok), spearman(S, desc, nok));
    printf("  curvature vs improvement: %+.3f    curvature vs descent: %+.3f\n",
           spearman(curv, imp, nok), spearman(curv, desc, nok));
    printf("Spearman rank correlation (the %d MLPs):\n", nmlp);
    printf("  S         vs improvement: %+.3f    S         vs descent: %+.3f\n",
           spearman(S, imp, nmlp), spearman(S, desc, nmlp));
    printf("  curvature vs improvement: %+.3f    curvature vs descent: %+.3f\n",
           spearman(curv, imp, nmlp), spearman(curv, desc, nmlp));
    const app_number corr[] = {
        {"configurations", nc},
        {"measured", nok},
        {"mlps_measured", nmlp},
        {"spearman_S_improvement", spearman(S, imp, nok)},
        {"spearman_S_descent", spearman(S, desc, nok)},
        {"spearman_curvature_improvement", spearman(curv, imp, nok)},
        {"spearman_curvature_descent", spearman(curv, desc, nok)},
        {"mlp_spearman_S_improvement", spearman(S, imp, nmlp)},
        {"mlp_spearman_S_descent", spearman(S, desc, nmlp)},
        {"mlp_spearman_curvature_improvement", spearman(curv, imp, nmlp)},
        {"mlp_spearman_curvature_descent", spearman(curv, desc, nmlp)},
    };
    int status = csv_failed ? EXIT_FAILURE : EXIT_SUCCESS;
    if (app_write_summary(json_path, "smoothness_study",
                          real_data ? "fashion-mnist" : "generated", corr,
                          (int)(sizeof corr / sizeof *corr), NULL, NULL, NULL, 0) != 0)
        status = EXIT_FAILURE;
    printf("CSV: %s, summary: %s\n", csv_path, json_path);

    mgrad_dataset_destroy(train);
    mgrad_dataset_destroy(val);
    mgrad_context_destroy(ctx);
    return status;
}
