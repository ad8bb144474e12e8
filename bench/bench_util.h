/*
 * bench_util.h - small helpers shared by the benchmark programs: clocks
 * (wall and process CPU time), medians, peak RSS, the two CNNs of the
 * convolution benchmarks.  Header-only.
 */
#ifndef MGRAD_BENCH_UTIL_H
#define MGRAD_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <metagrad.h>

/* Exit with the library's message when `call` fails (benchmark programs
   only: the library itself never exits). */
#define BENCH_CHECK(ctx, call)                                                      \
    do {                                                                            \
        mgrad_status s_ = (call);                                                   \
        if (s_ != MGRAD_OK) {                                                       \
            fprintf(stderr, "%s failed: %s\n", #call, mgrad_context_last_error(ctx)); \
            exit(EXIT_FAILURE);                                                     \
        }                                                                           \
    } while (0)

static inline double bench_wall(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* CPU time of the whole process (all threads): robust to other load on a
   shared machine, but counts BLAS threads that spin while waiting. */
static inline double bench_cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n) (v is left untouched). */
static inline double bench_median(const double *v, int n)
{
    double tmp[256];
    if (n < 1 || n > 256) return 0;
    memcpy(tmp, v, (size_t)n * sizeof *v);
    qsort(tmp, (size_t)n, sizeof *tmp, bench_cmp_double);
    return n % 2 ? tmp[n / 2] : 0.5 * (tmp[n / 2 - 1] + tmp[n / 2]);
}

/* Peak resident set size of this process in bytes (VmHWM), or 0. */
static inline unsigned long long bench_peak_rss(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long long kb = 0;
    if (f == NULL) return 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "VmHWM:", 6) == 0) kb = strtoull(line + 6, NULL, 10);
    fclose(f);
    return kb * 1024ull;
}

/* The benchmarks' MLP: features -> `hidden` dense layers of `width` units,
   each followed by `activation` -> classes (default initialisers).
   Returns 0, or 1 after printing the library's message. */
static inline int bench_mlp(mgrad_context *ctx, int64_t features, int64_t width, int hidden,
                            mgrad_activation activation, int64_t classes, mgrad_model **out)
{
    int64_t shape[1] = {features};
    mgrad_status s = mgrad_model_create(out, ctx, 1, shape);
    for (int l = 0; l < hidden && s == MGRAD_OK; l++) {
        s = mgrad_model_add_dense(*out, width, MGRAD_INIT_DEFAULT);
        if (s == MGRAD_OK) s = mgrad_model_add_activation(*out, activation);
    }
    if (s == MGRAD_OK) s = mgrad_model_add_dense(*out, classes, MGRAD_INIT_DEFAULT);
    if (s == MGRAD_OK) return 0;
    fprintf(stderr, "bench model: %s\n", mgrad_context_last_error(ctx));
    return 1;
}

/* Random training and validation sets of `features` uniform [0, 1) inputs
   and labels in [0, classes), drawn with srand(seed) in a fixed order (so
   every benchmark of a given seed sees the same data).  Returns 0, or 1
   after printing the library's message. */
static inline int bench_random_datasets(mgrad_context *ctx, int64_t n, int64_t nval,
                                        int64_t features, int32_t classes, unsigned seed,
                                        mgrad_dataset **train, mgrad_dataset **val)
{
    float *x = malloc(sizeof(float) * (size_t)(n * features));
    float *xv = malloc(sizeof(float) * (size_t)(nval * features));
    int32_t *y = malloc(sizeof(int32_t) * (size_t)n), *yv = malloc(sizeof(int32_t) * (size_t)nval);
    int rc = 1;
    if (x != NULL && xv != NULL && y != NULL && yv != NULL) {
        srand(seed);
        for (int64_t i = 0; i < n * features; i++) x[i] = (float)rand() / (float)RAND_MAX;
        for (int64_t i = 0; i < nval * features; i++) xv[i] = (float)rand() / (float)RAND_MAX;
        for (int64_t i = 0; i < n; i++) y[i] = rand() % classes;
        for (int64_t i = 0; i < nval; i++) yv[i] = rand() % classes;
        int64_t shape[1] = {features};
        mgrad_status s = mgrad_dataset_create(train, ctx, n, 1, shape, MGRAD_DTYPE_F32, x);
        if (s == MGRAD_OK) s = mgrad_dataset_set_labels(*train, y, n, classes);
        if (s == MGRAD_OK) s = mgrad_dataset_create(val, ctx, nval, 1, shape, MGRAD_DTYPE_F32, xv);
        if (s == MGRAD_OK) s = mgrad_dataset_set_labels(*val, yv, nval, classes);
        if (s == MGRAD_OK)
            rc = 0;
        else
            fprintf(stderr, "bench data: %s\n", mgrad_context_last_error(ctx));
    }
    free(x);
    free(xv);
    free(y);
    free(yv);
    return rc;
}

/* conv 3x3 (padding 1, stride 1) - batch norm - ReLU */
static inline void bench_conv_bn_relu(mgrad_context *ctx, mgrad_model *m, int64_t channels)
{
    BENCH_CHECK(ctx, mgrad_model_add_conv2d(m, channels, 3, 1, 1, MGRAD_INIT_DEFAULT));
    BENCH_CHECK(ctx, mgrad_model_add_batch_norm(m, 1e-5));
    BENCH_CHECK(ctx, mgrad_model_add_activation(m, MGRAD_ACTIVATION_RELU));
}

/* The two networks of bench_cnn and bench_rop (and bench/torch_compare.py
   --mode cnn) on 1x28x28 images, 10 classes: "small" (the small CNN of
   examples/small_resnet.c) or anything else (the ResNet-9-style net). */
static inline mgrad_model *bench_cnn_model(mgrad_context *ctx, const char *which)
{
    mgrad_model *m = NULL;
    int64_t shape[3] = {1, 28, 28};
    BENCH_CHECK(ctx, mgrad_model_create(&m, ctx, 3, shape));
    if (strcmp(which, "small") == 0) {
        bench_conv_bn_relu(ctx, m, 8);
        BENCH_CHECK(ctx, mgrad_model_add_resnet_block(m, 8, 1));
        BENCH_CHECK(ctx, mgrad_model_add_resnet_block(m, 16, 2));
        BENCH_CHECK(ctx, mgrad_model_add_avg_pool(m, 2, 2));
        BENCH_CHECK(ctx, mgrad_model_add_global_avg_pool(m));
        BENCH_CHECK(ctx, mgrad_model_add_dense(m, 10, MGRAD_INIT_DEFAULT));
        BENCH_CHECK(ctx, mgrad_model_add_scale(m, 0.5));
    } else {
        bench_conv_bn_relu(ctx, m, 16);
        bench_conv_bn_relu(ctx, m, 32);
        BENCH_CHECK(ctx, mgrad_model_add_max_pool(m, 2, 2));
        BENCH_CHECK(ctx, mgrad_model_add_resnet_block(m, 32, 1));
        bench_conv_bn_relu(ctx, m, 64);
        BENCH_CHECK(ctx, mgrad_model_add_max_pool(m, 2, 2));
        bench_conv_bn_relu(ctx, m, 128);
        BENCH_CHECK(ctx, mgrad_model_add_max_pool(m, 2, 2));
        BENCH_CHECK(ctx, mgrad_model_add_resnet_block(m, 128, 1));
        BENCH_CHECK(ctx, mgrad_model_add_global_avg_pool(m));
        BENCH_CHECK(ctx, mgrad_model_add_dense(m, 10, MGRAD_INIT_DEFAULT));
        BENCH_CHECK(ctx, mgrad_model_add_scale(m, 0.125));
    }
    return m;
}

#endif /* MGRAD_BENCH_UTIL_H */
