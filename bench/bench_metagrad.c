/*
 * bench_metagrad.c - cost of one metagradient relative to one training run,
 * measured in the same process on the same work.
 *
 * MLP 784-256-256-10 (tanh), batch 128, SGD with momentum, f32, metaparameters
 * LR schedule + data weights, store-all checkpointing.  For each repeat: time
 * mgrad_run_train (T steps + validation loss) and mgrad_run_reverse; print the
 * median of each and the median of the per-repeat ratios.
 *
 * Usage: bench_metagrad [steps=200] [width=256] [repeats=5] [f32|f64]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <metagrad.h>

#include "bench_util.h"

#define CHECK(call) BENCH_CHECK(ctx, call)

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 200;
    int width = argc > 2 ? atoi(argv[2]) : 256;
    int repeats = argc > 3 ? atoi(argv[3]) : 5;
    mgrad_dtype dtype = argc > 4 && strcmp(argv[4], "f64") == 0 ? MGRAD_DTYPE_F64
                                                                : MGRAD_DTYPE_F32;
    if (steps < 1 || width < 1 || repeats < 1 || repeats > 100) {
        fprintf(stderr, "usage: %s [steps] [width] [repeats<=100] [f32|f64]\n", argv[0]);
        return EXIT_FAILURE;
    }
    enum { F = 784, C = 10, B = 128, N = 4096, NV = 1024 };

    mgrad_context *ctx = NULL;
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = dtype;
    if (mgrad_context_create(&ctx, &co) != MGRAD_OK) return EXIT_FAILURE;
    mgrad_model *model = NULL;
    mgrad_dataset *train = NULL, *val = NULL;
    mgrad_run *run = NULL;
    mgrad_meta *lr = NULL, *w = NULL;
    if (bench_mlp(ctx, F, width, 2, MGRAD_ACTIVATION_TANH, C, &model)) return EXIT_FAILURE;
    if (bench_random_datasets(ctx, N, NV, F, C, 3, &train, &val)) return EXIT_FAILURE;
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = steps;
    o.batch_size = B;
    o.lr = 0.05;
    o.momentum = 0.9;
    o.validation = val;
    CHECK(mgrad_run_create(&run, model, train, &o));
    CHECK(mgrad_run_add_meta(&lr, run, MGRAD_META_LR_SCHEDULE, NULL));
    CHECK(mgrad_run_add_meta(&w, run, MGRAD_META_DATA_WEIGHTS, NULL));

    double tf[100], tr[100], ratio[100];
    mgrad_run_stats st = MGRAD_RUN_STATS_INIT;
    for (int r = 0; r < repeats; r++) {
        CHECK(mgrad_run_train(run, NULL));
        CHECK(mgrad_run_reverse(run));
        CHECK(mgrad_run_get_stats(run, &st));
        tf[r] = st.seconds_forward;
        tr[r] = st.seconds_reverse;
        ratio[r] = tr[r] / tf[r];
    }
    printf("MLP %d-%d-%d-%d tanh, batch %d, T = %d, SGD momentum, %s, store-all, "
           "%d repeats\n", F, width, width, C, B, steps,
           dtype == MGRAD_DTYPE_F32 ? "f32" : "f64", repeats);
    printf("train (T steps + validation) median %.3f s\n", bench_median(tf, repeats));
    printf("metagradient (reverse pass)  median %.3f s\n", bench_median(tr, repeats));
    printf("metagradient / training      median %.2fx\n", bench_median(ratio, repeats));
    printf("peak stored state            %.1f MiB\n", st.peak_state_bytes / 1048576.0);

    mgrad_run_destroy(run);
    mgrad_dataset_destroy(train);
    mgrad_dataset_destroy(val);
    mgrad_model_destroy(model);
    mgrad_context_destroy(ctx);
    return EXIT_SUCCESS;
}
