/*
 * bench_throughput.c - training throughput against the machine's GEMM speed,
 * measured in one process on the same shapes.
 *
 * MLP 784-1024-1024-10 (ReLU), batch 256, SGD with momentum, f32, softmax
 * cross-entropy; random inputs and labels (the speed does not depend on the
 * values).  Per repeat, interleaved:
 *     library   mgrad_run_train of T steps (binomial checkpointing with one
 *               slot, so training stores s_0 once and nothing else), plus
 *               the validation loss on 256 rows;
 *     bare      the same sequence of cblas_sgemm calls (same shapes,
 *               transposes and beta) on preallocated buffers, nothing else.
 * FLOPs counted are those of the GEMMs of a training step (2 m n k each):
 *     forward  y = x Wᵀ                    every layer
 *     backward W̄ += ȳᵀ x                   every layer
 *              x̄ += ȳ W                    every layer but the first
 * plus the validation forward.  Achieved GFLOP/s = FLOPs / wall time; the
 * fraction = bare time / library time in the same repeat (median over
 * repeats).  Everything the library does beyond the GEMMs (bias, ReLU,
 * softmax, gather, optimizer, copies) shows up as the gap to 100%.
 *
 * Usage: bench_throughput [steps=20] [repeats=7] [width=1024] [batch=256]
 * BLAS threads: as OpenBLAS is configured (OPENBLAS_NUM_THREADS).
 */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <metagrad.h>

#include "bench_util.h"

int openblas_get_num_threads(void);

static mgrad_context *ctx;

#define CHECK(call) BENCH_CHECK(ctx, call)

enum { F = 784, C = 10, N = 8192, NV = 256, L = 3 };

static float *frand(size_t n, float lo, float hi)
{
    float *p = malloc(n * sizeof *p);
    if (p == NULL) exit(EXIT_FAILURE);
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * (float)rand() / (float)RAND_MAX;
    return p;
}

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 20;
    int repeats = argc > 2 ? atoi(argv[2]) : 7;
    int width = argc > 3 ? atoi(argv[3]) : 1024;
    int B = argc > 4 ? atoi(argv[4]) : 256;
    if (steps < 1 || repeats < 1 || repeats > 100 || width < 1 || B < 1 || B > NV * 64) {
        fprintf(stderr, "usage: %s [steps] [repeats<=100] [width] [batch]\n", argv[0]);
        return EXIT_FAILURE;
    }
    size_t dims[L + 1] = {F, (size_t)width, (size_t)width, C};

    srand(7);
    float *x = frand((size_t)N * F, 0, 1), *xv = frand((size_t)NV * F, 0, 1);
    int32_t *y = malloc(sizeof(int32_t) * N), *yv = malloc(sizeof(int32_t) * NV);
    if (!y || !yv) return EXIT_FAILURE;
    for (int i = 0; i < N; i++) y[i] = rand() % C;
    for (int i = 0; i < NV; i++) yv[i] = rand() % C;

    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = MGRAD_DTYPE_F32;
    if (mgrad_context_create(&ctx, &co) != MGRAD_OK) return EXIT_FAILURE;
    mgrad_model *model = NULL;
    mgrad_dataset *train = NULL, *val = NULL;
    mgrad_run *run = NULL;
    int64_t shape[1] = {F};
    CHECK(mgrad_model_create(&model, ctx, 1, shape));
    for (int l = 0; l < L; l++) {
        CHECK(mgrad_model_add_dense(model, (int64_t)dims[l + 1], MGRAD_INIT_DEFAULT));
        if (l + 1 < L) CHECK(mgrad_model_add_activation(model, MGRAD_ACTIVATION_RELU));
    }
    CHECK(mgrad_dataset_create(&train, ctx, N, 1, shape, MGRAD_DTYPE_F32, x));
    CHECK(mgrad_dataset_set_labels(train, y, N, C));
    CHECK(mgrad_dataset_create(&val, ctx, NV, 1, shape, MGRAD_DTYPE_F32, xv));
    CHECK(mgrad_dataset_set_labels(val, yv, NV, C));
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = steps;
    o.batch_size = B;
    o.lr = 0.01;
    o.momentum = 0.9;
    o.validation = val;
    o.checkpoint = MGRAD_CHECKPOINT_BINOMIAL;
    o.checkpoint_slots = 1;
    CHECK(mgrad_run_create(&run, model, train, &o));

    /* The bare GEMMs: buffers per layer, sized for batch B. */
    float *W[L], *G[L], *act[L + 1], *adj[L + 1];
    act[0] = frand((size_t)B * F, 0, 1);
    adj[0] = NULL;
    for (int l = 0; l < L; l++) {
        W[l] = frand(dims[l + 1] * dims[l], -0.05f, 0.05f);
        G[l] = frand(dims[l + 1] * dims[l], 0, 0);
        act[l + 1] = frand((size_t)B * dims[l + 1], 0, 1);
        adj[l + 1] = frand((size_t)B * dims[l + 1], -1, 1);
    }
    double flops_step = 0, flops_val = 0;
    for (int l = 0; l < L; l++) {
        double mnk = (double)dims[l] * (double)dims[l + 1];
        flops_step += 2 * (double)B * mnk * (l == 0 ? 2 : 3);
        flops_val += 2 * (double)NV * mnk;
    }
    double flops_run = steps * flops_step + flops_val;

    double t_lib[100], t_bare[100], frac[100], c_lib[100], c_bare[100], cfrac[100];
    CHECK(mgrad_run_train(run, NULL)); /* warm-up: first-touch of buffers */
    for (int r = 0; r < repeats; r++) {
        double c0 = bench_cpu(), t0 = bench_wall();
        for (int s = 0; s < steps; s++) {
            for (int l = 0; l < L; l++) /* forward */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, (int)dims[l + 1],
                            (int)dims[l], 1, act[l], (int)dims[l], W[l], (int)dims[l], 1,
                            act[l + 1], (int)dims[l + 1]);
            for (int l = L - 1; l >= 0; l--) { /* backward */
                if (l > 0)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, (int)dims[l],
                                (int)dims[l + 1], 1, adj[l + 1], (int)dims[l + 1], W[l],
                                (int)dims[l], 1, adj[l], (int)dims[l]);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)dims[l + 1],
                            (int)dims[l], B, 1, adj[l + 1], (int)dims[l + 1], act[l],
                            (int)dims[l], 1, G[l], (int)dims[l]);
            }
        }
        for (int l = 0; l < L; l++) /* the validation forward, as rows of B */
            for (int done = 0; done < NV; done += B)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
                            NV - done < B ? NV - done : B, (int)dims[l + 1], (int)dims[l], 1,
                            act[l], (int)dims[l], W[l], (int)dims[l], 1, act[l + 1],
                            (int)dims[l + 1]);
        t_bare[r] = bench_wall() - t0;
        c_bare[r] = bench_cpu() - c0;
        c0 = bench_cpu();
        t0 = bench_wall();
        CHECK(mgrad_run_train(run, NULL));
        t_lib[r] = bench_wall() - t0;
        c_lib[r] = bench_cpu() - c0;
        frac[r] = t_bare[r] / t_lib[r];
        cfrac[r] = c_bare[r] / c_lib[r];
    }
    mgrad_run_stats st = MGRAD_RUN_STATS_INIT;
    CHECK(mgrad_run_get_stats(run, &st));

    printf("training throughput: MLP %d-%d-%d-%d ReLU, batch %d, T = %d, SGD momentum, "
           "f32, %d BLAS threads, %d repeats (medians)\n",
           F, width, width, C, B, steps, openblas_get_num_threads(), repeats);
    printf("  GEMM FLOPs per training step      %.3f GFLOP\n", flops_step / 1e9);
    printf("  bare sgemm, same shapes           %.1f GFLOP/s  (%.1f ms per step)\n",
           flops_run / bench_median(t_bare, repeats) / 1e9,
           1e3 * bench_median(t_bare, repeats) / steps);
    printf("  library training                  %.1f GFLOP/s  (%.1f ms per step, %.0f "
           "examples/s)\n",
           flops_run / bench_median(t_lib, repeats) / 1e9,
           1e3 * bench_median(t_lib, repeats) / steps,
           steps * (double)B / bench_median(t_lib, repeats));
    printf("  fraction of bare sgemm (wall)     %.1f%%  (target >= 60%%)\n",
           100 * bench_median(frac, repeats));
    printf("  fraction of bare sgemm (CPU time) %.1f%%\n", 100 * bench_median(cfrac, repeats));
    printf("  stored states                     %.1f MiB\n", st.peak_state_bytes / 1048576.0);

    mgrad_run_destroy(run);
    mgrad_dataset_destroy(train);
    mgrad_dataset_destroy(val);
    mgrad_model_destroy(model);
    mgrad_context_destroy(ctx);
    for (int l = 0; l <= L; l++) {
        free(act[l]);
        free(adj[l]);
    }
    for (int l = 0; l < L; l++) {
        free(W[l]);
        free(G[l]);
    }
    free(x);
    free(xv);
    free(y);
    free(yv);
    return EXIT_SUCCESS;
}
