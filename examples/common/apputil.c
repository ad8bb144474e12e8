/*
 * apputil.c - shared plumbing of the application examples.
 */
#include "apputil.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef APP_FMNIST_DIR
#define APP_FMNIST_DIR MGRAD_FASHION_MNIST_DIR
#endif

/* dir/name.gz or dir/name exists (what the library's loader accepts). */
static int fmnist_file_present(const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.gz", APP_FMNIST_DIR, name);
    if (access(path, F_OK) == 0) return 1;
    snprintf(path, sizeof path, "%s/%s", APP_FMNIST_DIR, name);
    return access(path, F_OK) == 0;
}

int app_require_fmnist(const char *program)
{
    static const char *const files[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    for (int i = 0; i < 4; i++)
        if (!fmnist_file_present(files[i])) {
            fprintf(stderr, "%s: Fashion-MNIST is not installed (%s/%s missing); install it "
                    "with `apt-get install dataset-fashion-mnist`; skipping\n", program,
                    APP_FMNIST_DIR, files[i]);
            return APP_EXIT_SKIP;
        }
    return 0;
}

int app_load_fmnist(mgrad_context *ctx, const char *split, mgrad_dataset **out)
{
    mgrad_status s = mgrad_dataset_load_fashion_mnist(out, ctx, split, NULL);
    if (s != MGRAD_OK) {
        fprintf(stderr, "cannot load Fashion-MNIST (%s): %s\n", split,
                mgrad_context_last_error(ctx));
        return 1;
    }
    return 0;
}

int app_dataset_from(mgrad_context *ctx, const mgrad_dataset *src, const int64_t *rows,
                     int64_t n, const int32_t *labels, const float *inputs,
                     mgrad_dataset **out)
{
    mgrad_dataset *sub = NULL;
    APP_CHECK(ctx, mgrad_dataset_subset(&sub, src, rows, n));
    if (labels == NULL && inputs == NULL) {
        *out = sub;
        return 0;
    }
    int64_t F = 0;
    int32_t C = 0;
    APP_CHECK(ctx, mgrad_dataset_features(sub, &F));
    APP_CHECK(ctx, mgrad_dataset_num_classes(sub, &C));
    float *x = malloc(sizeof(float) * (size_t)(n * F));
    int32_t *y = malloc(sizeof(int32_t) * (size_t)n);
    if (x == NULL || y == NULL) return 1;
    APP_CHECK(ctx, mgrad_dataset_get_inputs(sub, MGRAD_DTYPE_F32, x, n * F));
    APP_CHECK(ctx, mgrad_dataset_get_labels(sub, y, n));
    if (inputs != NULL) memcpy(x, inputs, sizeof(float) * (size_t)(n * F));
    if (labels != NULL) memcpy(y, labels, sizeof(int32_t) * (size_t)n);
    int64_t shape[1] = {F};
    mgrad_dataset_destroy(sub);
    APP_CHECK(ctx, mgrad_dataset_create(out, ctx, n, 1, shape, MGRAD_DTYPE_F32, x));
    APP_CHECK(ctx, mgrad_dataset_set_labels(*out, y, n, C));
    free(x);
    free(y);
    return 0;
}

int app_model(mgrad_context *ctx, const app_train *cfg, uint64_t seed, mgrad_model **out)
{
    if (cfg->model == APP_MODEL_RESNET) {
        /* The flat 784-pixel rows are read as 1x28x28 images (the feature
           counts agree).  Batch norm before each activation, average pooling
           and a scaled-down last layer: the choices that make training
           metasmooth (docs/smoothness.md). */
        int64_t shape[3] = {1, 28, 28};
        APP_CHECK(ctx, mgrad_model_create(out, ctx, 3, shape));
        APP_CHECK(ctx, mgrad_model_add_conv2d(*out, cfg->hidden, 3, 1, 1, MGRAD_INIT_DEFAULT));
        APP_CHECK(ctx, mgrad_model_add_batch_norm(*out, 1e-5));
        APP_CHECK(ctx, mgrad_model_add_activation(*out, MGRAD_ACTIVATION_RELU));
        APP_CHECK(ctx, mgrad_model_add_resnet_block(*out, cfg->hidden, 1));
        APP_CHECK(ctx, mgrad_model_add_resnet_block(*out, 2 * cfg->hidden, 2));
        APP_CHECK(ctx, mgrad_model_add_avg_pool(*out, 2, 2));
        /* the dense layer reads all 2·hidden×7×7 values: global average
           pooling to 2·hidden values cost 11 points of test accuracy here
           (4,000 images, 400 steps: 75% against 86-87%) at the same speed */
        APP_CHECK(ctx, mgrad_model_add_dense(*out, 10, MGRAD_INIT_DEFAULT));
        APP_CHECK(ctx, mgrad_model_add_scale(*out, 0.5));
    } else {
        int64_t shape[1] = {784};
        APP_CHECK(ctx, mgrad_model_create(out, ctx, 1, shape));
        APP_CHECK(ctx, mgrad_model_add_dense(*out, cfg->hidden, MGRAD_INIT_DEFAULT));
        APP_CHECK(ctx, mgrad_model_add_activation(*out, MGRAD_ACTIVATION_TANH));
        APP_CHECK(ctx, mgrad_model_add_dense(*out, 10, MGRAD_INIT_DEFAULT));
    }
    APP_CHECK(ctx, mgrad_model_init_params(*out, seed));
    return 0;
}

const char *app_model_name(const app_train *cfg)
{
    static char name[64];
    if (cfg->model == APP_MODEL_RESNET)
        snprintf(name, sizeof name, "small ResNet (%d/%d channels, BN, ReLU)",
                 cfg->hidden, 2 * cfg->hidden);
    else
        snprintf(name, sizeof name, "MLP 784-%d-10 (tanh)", cfg->hidden);
    return name;
}

/* The run options of cfg: shared by app_run and app_score. */
static mgrad_run_options run_options(const app_train *cfg, const mgrad_dataset *validation,
                                     uint64_t shuffle_seed, const double *lr_schedule)
{
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = cfg->steps;
    o.batch_size = cfg->batch;
    o.lr = cfg->lr;
    o.lr_schedule = lr_schedule;
    o.momentum = cfg->momentum;
    o.weight_decay = cfg->weight_decay;
    o.shuffle_seed = shuffle_seed;
    o.validation = validation;
    return o;
}

int app_score(mgrad_context *ctx, const app_train *cfg, mgrad_dataset *train,
              const mgrad_dataset *test, uint64_t seed_mult, int seed_offset, int seeds,
              const double *lr_schedule, double *mean, double *std)
{
    return app_score_sets(ctx, cfg, train, &test, 1, seed_mult, seed_offset, seeds,
                          lr_schedule, mean, std, NULL);
}

int app_score_sets(mgrad_context *ctx, const app_train *cfg, mgrad_dataset *train,
                   const mgrad_dataset *const *eval, int neval, uint64_t seed_mult,
                   int seed_offset, int seeds, const double *lr_schedule, double *mean,
                   double *std, double *per_seed)
{
    uint64_t list[APP_MAX_SEEDS];
    mgrad_score res[APP_MAX_EVAL];
    if (seeds < 1 || seeds > APP_MAX_SEEDS) {
        fprintf(stderr, "app_score: %d seeds; 1 to %d\n", seeds, APP_MAX_SEEDS);
        return 1;
    }
    if (neval < 1 || neval > APP_MAX_EVAL) {
        fprintf(stderr, "app_score: %d evaluation sets; 1 to %d\n", neval, APP_MAX_EVAL);
        return 1;
    }
    for (int s = 0; s < seeds; s++) list[s] = seed_mult * (uint64_t)(s + seed_offset);
    for (int e = 0; e < neval; e++) res[e] = (mgrad_score)MGRAD_SCORE_INIT;
    mgrad_model *model = NULL;
    if (app_model(ctx, cfg, list[0], &model)) return 1;
    mgrad_run_options o = run_options(cfg, NULL, 0, lr_schedule);
    mgrad_score_options so = MGRAD_SCORE_OPTIONS_INIT;
    so.seeds = seeds;
    so.seed_list = list;
    double losses_acc[APP_MAX_EVAL * APP_MAX_SEEDS * 2];
    APP_CHECK(ctx, mgrad_score_run(model, train, &o, &so, eval, neval, res, losses_acc));
    if (per_seed != NULL)
        for (int e = 0; e < neval; e++)
            for (int s = 0; s < seeds; s++)
                per_seed[e * seeds + s] = losses_acc[2 * (e * seeds + s) + 1];
    mgrad_model_destroy(model);
    for (int e = 0; e < neval; e++) {
        mean[e] = res[e].accuracy_mean;
        std[e] = res[e].accuracy_std;
    }
    return 0;
}

int app_splits(mgrad_context *ctx, const mgrad_dataset *all, int64_t ntrain,
               int64_t ntarget, int64_t nheldout, uint64_t seed, mgrad_dataset **train,
               mgrad_dataset **target, mgrad_dataset **heldout)
{
    mgrad_dataset *a = NULL, *rest = NULL, *b = NULL, *rest2 = NULL, *c = NULL, *rest3 = NULL;
    int64_t n = 0;
    APP_CHECK(ctx, mgrad_dataset_size(all, &n));
    if (ntrain + ntarget + nheldout >= n) {
        fprintf(stderr, "the splits need more than %lld rows\n", (long long)n);
        return 1;
    }
    APP_CHECK(ctx, mgrad_dataset_split(&a, &rest, all, ntrain, seed));
    APP_CHECK(ctx, mgrad_dataset_split(&b, &rest2, rest, ntarget, seed + 1));
    APP_CHECK(ctx, mgrad_dataset_split(&c, &rest3, rest2, nheldout, seed + 2));
    mgrad_dataset_destroy(rest);
    mgrad_dataset_destroy(rest2);
    mgrad_dataset_destroy(rest3);
    *train = a;
    *target = b;
    *heldout = c;
    return 0;
}

int app_run(mgrad_context *ctx, const app_train *cfg, mgrad_dataset *train,
            const mgrad_dataset *validation, uint64_t seed, uint64_t shuffle_seed,
            const double *lr_schedule, mgrad_model **model, mgrad_run **run)
{
    if (app_model(ctx, cfg, seed, model)) return 1;
    mgrad_run_options o = run_options(cfg, validation, shuffle_seed, lr_schedule);
    APP_CHECK(ctx, mgrad_run_create(run, *model, train, &o));
    return 0;
}

int app_progress(int64_t step, double phi, double score, double seconds, void *log)
{
    double *rec = log;
    rec[2 * step] = phi;
    rec[2 * step + 1] = score;
    printf("  meta-step %3lld  target loss %.4f  held-out loss %.4f  (%.2f s)\n",
           (long long)step, phi, score, seconds);
    fflush(stdout);
    return 0;
}

int app_prepare_out(const char *dir)
{
    char path[4096];
    int n = snprintf(path, sizeof path, "%s", dir);
    if (n <= 0 || (size_t)n >= sizeof path) {
        fprintf(stderr, "output directory name too long or empty: \"%s\"\n", dir);
        return -1;
    }
    /* mkdir -p: each prefix ending before a '/', then the whole path */
    for (char *p = path + 1; ; p++) {
        if (*p != '/' && *p != '\0') continue;
        char c = *p;
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST) {
            fprintf(stderr, "cannot create output directory %s: %s\n", path, strerror(errno));
            return -1;
        }
        *p = c;
        if (c == '\0') break;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "output directory %s is not a directory\n", dir);
        return -1;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        fprintf(stderr, "cannot write to output directory %s: %s\n", dir, strerror(errno));
        return -1;
    }
    return 0;
}

int app_outputs_done(const char *dir, const char *files, int failures)
{
    if (failures == 0) {
        printf("wrote %s/%s\n", dir, files);
        return 0;
    }
    fprintf(stderr, "%d output file(s) in %s could not be written (see above)\n", failures,
            dir);
    return 1;
}

int app_write_progress(const char *dir, const char *name, const double *log, int steps)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    fprintf(f, "meta_step,target_loss,heldout_loss\n");
    for (int i = 0; i < steps; i++)
        fprintf(f, "%d,%.10g,%.10g\n", i, log[2 * i], log[2 * i + 1]);
    if (fclose(f) != 0) {
        perror(path);
        return -1;
    }
    return 0;
}

void app_mean_std(const double *x, int n, double *mean, double *std)
{
    double m = 0, v = 0;
    for (int i = 0; i < n; i++) m += x[i];
    m /= n;
    for (int i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
    *mean = m;
    *std = n > 1 ? sqrt(v / (n - 1)) : 0;
}

double app_urand(app_rng *rng)
{
    uint64_t z = (rng->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

void app_shuffle(app_rng *rng, int64_t *a, int64_t n)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(app_urand(rng) * (double)(i + 1));
        int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

int app_write_csv(const char *path, const char *header, const double *rows, int nrows,
                  int ncols)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) return -1;
    fprintf(f, "%s\n", header);
    for (int r = 0; r < nrows; r++)
        for (int c = 0; c < ncols; c++)
            fprintf(f, "%.10g%s", rows[r * ncols + c], c + 1 < ncols ? "," : "\n");
    return fclose(f) == 0 ? 0 : -1;
}

int app_write_named_csv(const char *path, const char *header, const char *const *names,
                        const double *rows, int nrows, int ncols)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    fprintf(f, "%s\n", header);
    for (int r = 0; r < nrows; r++) {
        fprintf(f, "%s", names[r]);
        for (int c = 0; c < ncols; c++) fprintf(f, ",%.10g", rows[r * ncols + c]);
        fprintf(f, "\n");
    }
    if (fclose(f) != 0) {
        perror(path);
        return -1;
    }
    return 0;
}

/* JSON has no NaN or infinity: null stands for them. */
static void json_number(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.10g", v);
    else
        fprintf(f, "null");
}

int app_write_summary(const char *path, const char *program, const char *mode,
                      const app_number *fields, int nfields, const char *const *names,
                      const double *mean, const double *sd, int n)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    fprintf(f, "{\n  \"program\": \"%s\",\n  \"mode\": \"%s\"", program, mode);
    for (int i = 0; i < nfields; i++) {
        fprintf(f, ",\n  \"%s\": ", fields[i].key);
        json_number(f, fields[i].value);
    }
    if (n > 0) {
        fprintf(f, ",\n  \"results\": [");
        for (int k = 0; k < n; k++) {
            fprintf(f, "%s\n    {\"name\": \"%s\", \"test_accuracy_mean\": ", k ? "," : "",
                    names[k]);
            json_number(f, mean[k]);
            fprintf(f, ", \"test_accuracy_std\": ");
            json_number(f, sd[k]);
            fprintf(f, "}");
        }
        fprintf(f, "\n  ]");
    }
    fprintf(f, "\n}\n");
    if (fclose(f) != 0) {
        perror(path);
        return -1;
    }
    return 0;
}

int app_write_summary_columns(const char *path, const char *program, const char *mode,
                              const app_number *fields, int nfields, const char *const *names,
                              int n, const char *const *columns, int ncolumns,
                              const double *values)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    fprintf(f, "{\n  \"program\": \"%s\",\n  \"mode\": \"%s\"", program, mode);
    for (int i = 0; i < nfields; i++) {
        fprintf(f, ",\n  \"%s\": ", fields[i].key);
        json_number(f, fields[i].value);
    }
    if (n > 0) {
        fprintf(f, ",\n  \"results\": [");
        for (int k = 0; k < n; k++) {
            fprintf(f, "%s\n    {\"name\": \"%s\"", k ? "," : "", names[k]);
            for (int c = 0; c < ncolumns; c++) {
                fprintf(f, ", \"%s\": ", columns[c]);
                json_number(f, values[k * ncolumns + c]);
            }
            fprintf(f, "}");
        }
        fprintf(f, "\n  ]");
    }
    fprintf(f, "\n}\n");
    if (fclose(f) != 0) {
        perror(path);
        return -1;
    }
    return 0;
}

int app_start_fmnist(const char *program, const char *out, mgrad_context **ctx,
                     mgrad_dataset **all, mgrad_dataset **test)
{
    if (app_prepare_out(out) != 0) return 2;
    if (app_require_fmnist(program) != 0) return APP_EXIT_SKIP;
    if (mgrad_context_create(ctx, NULL) != MGRAD_OK) return 1;
    if (app_load_fmnist(*ctx, "train", all) || app_load_fmnist(*ctx, "test", test)) return 1;
    return 0;
}

void app_draw_distinct(app_rng *rng, int64_t n, int64_t k, int64_t *out)
{
    char *taken = calloc((size_t)n, 1);
    for (int64_t r = 0; r < k; r++) {
        int64_t i = (int64_t)(app_urand(rng) * (double)n);
        while (taken[i]) i = (i + 1) % n;
        taken[i] = 1;
        out[r] = i;
    }
    free(taken);
}
