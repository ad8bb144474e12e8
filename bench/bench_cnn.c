/*
 * bench_cnn.c - the cost of training and of the metagradient of a CNN,
 * in process CPU time as well as wall-clock, so that figures taken on a
 * shared machine are comparable between builds.
 *
 * The networks of bench/torch_compare.py --mode cnn: `small` (the network
 * of examples/small_resnet.c, 5194 parameters) and `resnet9` (ResNet-9's
 * layout at a quarter of its widths).  Random [1, 28, 28] images in [0, 1)
 * and labels (2048 training, 512 validation), SGD with momentum 0.9, lr
 * 0.05, f32; metaparameters: per-step LR and one weight per training
 * image.  Each repeat creates a fresh run (as the examples and
 * torch_compare.py do, so the run pays for first-touching its workspace
 * and slots), trains it and reverses it; with reuse = 1 the run is created
 * once and every repeat trains and reverses it again (as a metagradient
 * descent loop does: from the second repeat on, nothing is touched for
 * the first time).  The program prints every repeat's CPU and
 * wall seconds of mgrad_run_train and mgrad_run_reverse, the forward memo's
 * size and hits, and the medians.  Run with OPENBLAS_NUM_THREADS=1 to
 * compare one-thread figures (CPU time counts every thread); `threads` is
 * the library's own thread count (mgrad_context_options.threads), which
 * leaves OpenBLAS's as the environment set it.
 *
 * Usage: bench_cnn [small|resnet9] [steps=20] [repeats=3] [batch=64]
 *                  [budget_mib=0: no budget (auto: store-all)] [reuse=0]
 *                  [threads=0]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <metagrad.h>

#include "bench_util.h"

static mgrad_context *ctx;

#define CHECK(call) BENCH_CHECK(ctx, call)

enum { SIDE = 28, C = 10, N = 2048, NV = 512, MAX_REPEATS = 100 };

static mgrad_dataset *images(int64_t n, unsigned seed)
{
    float *x = malloc(sizeof(float) * (size_t)(n * SIDE * SIDE));
    int32_t *y = malloc(sizeof(int32_t) * (size_t)n);
    if (x == NULL || y == NULL) exit(EXIT_FAILURE);
    srand(seed);
    for (int64_t i = 0; i < n * SIDE * SIDE; i++) x[i] = (float)rand() / (float)RAND_MAX;
    for (int64_t i = 0; i < n; i++) y[i] = rand() % C;
    int64_t shape[3] = {1, SIDE, SIDE};
    mgrad_dataset *d = NULL;
    CHECK(mgrad_dataset_create(&d, ctx, n, 3, shape, MGRAD_DTYPE_F32, x));
    CHECK(mgrad_dataset_set_labels(d, y, n, C));
    free(x);
    free(y);
    return d;
}

/* A run of the benchmark's settings with its two metaparameters. */
static mgrad_run *make_run(const mgrad_model *model, mgrad_dataset *train, mgrad_dataset *val,
                           int steps, int B, double budget_mib)
{
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = steps;
    o.batch_size = B;
    o.lr = 0.05;
    o.momentum = 0.9;
    o.validation = val;
    o.checkpoint_budget_bytes = (uint64_t)(budget_mib * 1048576.0);
    mgrad_run *run = NULL;
    mgrad_meta *lr = NULL, *w = NULL;
    mgrad_meta_options mo = MGRAD_META_OPTIONS_INIT;
    CHECK(mgrad_run_create(&run, model, train, &o));
    CHECK(mgrad_run_add_meta(&lr, run, MGRAD_META_LR_SCHEDULE, &mo));
    CHECK(mgrad_run_add_meta(&w, run, MGRAD_META_DATA_WEIGHTS, &mo));
    return run;
}

int main(int argc, char **argv)
{
    const char *which = argc > 1 ? argv[1] : "small";
    int steps = argc > 2 ? atoi(argv[2]) : 20;
    int repeats = argc > 3 ? atoi(argv[3]) : 3;
    int B = argc > 4 ? atoi(argv[4]) : 64;
    double budget_mib = argc > 5 ? atof(argv[5]) : 0;
    int reuse = argc > 6 ? atoi(argv[6]) : 0;
    int threads = argc > 7 ? atoi(argv[7]) : 0;
    if ((strcmp(which, "small") != 0 && strcmp(which, "resnet9") != 0) || steps < 1 ||
        repeats < 1 || repeats > MAX_REPEATS || B < 2 || B > N || budget_mib < 0 ||
        threads < 0) {
        fprintf(stderr,
                "usage: %s [small|resnet9] [steps] [repeats<=%d] [batch 2..%d] "
                "[budget_mib] [reuse 0|1] [threads]\n",
                argv[0], MAX_REPEATS, N);
        return EXIT_FAILURE;
    }
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = MGRAD_DTYPE_F32;
    co.threads = threads;
    if (mgrad_context_create(&ctx, &co) != MGRAD_OK) return EXIT_FAILURE;
    mgrad_model *model = bench_cnn_model(ctx, which);
    mgrad_dataset *train = images(N, 11), *val = images(NV, 12);

    double cpu[2][MAX_REPEATS], wall[2][MAX_REPEATS];
    mgrad_run_stats st = MGRAD_RUN_STATS_INIT;
    mgrad_run *run = NULL;
    for (int r = 0; r < repeats; r++) {
        if (run == NULL) run = make_run(model, train, val, steps, B, budget_mib);
        double phi = 0, c0 = bench_cpu(), w0 = bench_wall();
        CHECK(mgrad_run_train(run, &phi));
        double c1 = bench_cpu(), w1 = bench_wall();
        CHECK(mgrad_run_reverse(run));
        double c2 = bench_cpu(), w2 = bench_wall();
        cpu[0][r] = c1 - c0;
        cpu[1][r] = c2 - c1;
        wall[0][r] = w1 - w0;
        wall[1][r] = w2 - w1;
        CHECK(mgrad_run_get_stats(run, &st));
        printf("repeat %d: train %.3f s CPU (%.3f wall), reverse %.3f s CPU (%.3f wall), "
               "phi %.6f\n",
               r, cpu[0][r], wall[0][r], cpu[1][r], wall[1][r], phi);
        if (!reuse) {
            mgrad_run_destroy(run);
            run = NULL;
        }
    }
    mgrad_run_destroy(run);
    double images_run = (double)steps * (double)B;
    printf("%s, T %d, B %d, %d library threads%s: %s, %lld slots, forward memo %.1f MiB per "
           "slot, %lld memo hits\n",
           which, steps, B, threads, reuse ? ", one run reused" : ", a fresh run per repeat",
           st.checkpoint == MGRAD_CHECKPOINT_STORE_ALL ? "store-all" : "binomial",
           (long long)st.checkpoint_slots, (double)st.memo_bytes / 1048576.0,
           (long long)st.memo_hits);
    double ct = bench_median(cpu[0], repeats), cr = bench_median(cpu[1], repeats);
    printf("median CPU: train %.3f s (%.0f images/s), reverse %.3f s (%.0f images/s), "
           "reverse/train %.2f\n",
           ct, images_run / ct, cr, images_run / cr, cr / ct);
    printf("median wall: train %.3f s, reverse %.3f s\n", bench_median(wall[0], repeats),
           bench_median(wall[1], repeats));
    mgrad_dataset_destroy(train);
    mgrad_dataset_destroy(val);
    mgrad_model_destroy(model);
    mgrad_context_destroy(ctx);
    return EXIT_SUCCESS;
}
