/*
 * bench_mpi.c - data-parallel speedup of one metagradient (train + reverse)
 * on a wide MLP, measured in one launch:
 *
 *     OPENBLAS_NUM_THREADS=1 mpirun --oversubscribe -np 2 bench_mpi [repeats] [width]
 *
 * Phase 1, rank 0 alone (rank 1 waits without spinning: it sleeps between
 * MPI_Test calls on a non-blocking barrier): the single-process run with 1
 * thread, then with P of the library's threads (mgrad_context_options.threads;
 * with OPENBLAS_NUM_THREADS=1 its products run in pieces on them: the fair
 * rival of P ranks on P cores).  Phase 2, all ranks: the same run
 * data-parallel, 1 thread per rank.  Each timing is the best and the median over `repeats`
 * (default 3) after one untimed warm-up; the best is the robust figure on a machine shared with
 * other work.  Prints the times, the speedups of the data-parallel run over both single-process
 * runs, the time rank 0 spent in reductions (waiting included) and the bytes reduced per
 * forward and per reverse step, per-rank peak memory, and the relative difference of the
 * metagradients (LR schedule) against the single-process run.
 *
 * Model: MLP F-width-width-10 (tanh), F = 784, batch 256, 8 steps, SGD with
 * momentum, f64, store-all checkpointing; generated data.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <metagrad.h>

#include "bench_util.h"

enum { F = 784, C = 10, N = 2048, NVAL = 512, B = 256, T = 8 };

static int rank, size;

#define CHECK(call, ctx)                                                            \
    do {                                                                            \
        mgrad_status s_ = (call);                                                   \
        if (s_ != MGRAD_OK) {                                                       \
            fprintf(stderr, "[rank %d] %s failed: %s\n", rank, #call,               \
                    mgrad_context_last_error(ctx));                                 \
            MPI_Abort(MPI_COMM_WORLD, 1);                                           \
        }                                                                           \
    } while (0)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double urand(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*s >> 11) / 9007199254740992.0 * 2 - 1;
}

typedef struct setup {
    mgrad_context *ctx;
    mgrad_model *model;
    mgrad_dataset *train, *val;
    mgrad_run *run;
    mgrad_meta *lr;
} setup;

static mgrad_dataset *make_data(mgrad_context *ctx, int n, uint64_t seed)
{
    double *x = malloc((size_t)n * F * sizeof *x);
    int32_t *y = malloc((size_t)n * sizeof *y);
    uint64_t s = seed;
    for (size_t i = 0; i < (size_t)n * F; i++) x[i] = urand(&s);
    for (int i = 0; i < n; i++) y[i] = (int32_t)((urand(&s) + 1) * 5) % C;
    int64_t shape[1] = {F};
    mgrad_dataset *d = NULL;
    CHECK(mgrad_dataset_create(&d, ctx, n, 1, shape, MGRAD_DTYPE_F64, x), ctx);
    CHECK(mgrad_dataset_set_labels(d, y, n, C), ctx);
    free(x);
    free(y);
    return d;
}

static void make(setup *s, int threads, int width, int parallel)
{
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = MGRAD_DTYPE_F64;
    co.threads = threads;
    co.seed = 3;
    if (mgrad_context_create(&s->ctx, &co) != MGRAD_OK) MPI_Abort(MPI_COMM_WORLD, 1);
    if (bench_mlp(s->ctx, F, width, 2, MGRAD_ACTIVATION_TANH, C, &s->model))
        MPI_Abort(MPI_COMM_WORLD, 1);
    s->train = make_data(s->ctx, N, 1);
    s->val = make_data(s->ctx, NVAL, 2);
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = T;
    o.batch_size = B;
    o.shuffle_seed = 1;
    o.lr = 0.05;
    o.momentum = 0.9;
    o.validation = s->val;
    o.checkpoint = MGRAD_CHECKPOINT_STORE_ALL;
    CHECK(mgrad_run_create(&s->run, s->model, s->train, &o), s->ctx);
    CHECK(mgrad_run_add_meta(&s->lr, s->run, MGRAD_META_LR_SCHEDULE, NULL), s->ctx);
    if (parallel) {
        MPI_Comm comm = MPI_COMM_WORLD;
        CHECK(mgrad_run_set_communicator(s->run, &comm), s->ctx);
    }
}

static void unmake(setup *s)
{
    mgrad_run_destroy(s->run);
    mgrad_dataset_destroy(s->train);
    mgrad_dataset_destroy(s->val);
    mgrad_model_destroy(s->model);
    mgrad_context_destroy(s->ctx);
}

typedef struct timing {
    double min, median; /* seconds of one train + reverse */
    double comm;        /* seconds in reductions over the timed repeats (rank 0) */
    double total;       /* seconds of the timed repeats */
} timing;

/* Times of train + reverse over `repeats` after a warm-up; the LR
   metagradient into g [T]. */
static timing time_it(setup *s, int repeats, int parallel, double *g)
{
    double times[32];
    timing tm = {0, 0, 0, 0};
    for (int r = -1; r < repeats; r++) {
        if (parallel) MPI_Barrier(MPI_COMM_WORLD);
        mgrad_mpi_info a = MGRAD_MPI_INFO_INIT, b = MGRAD_MPI_INFO_INIT;
        CHECK(mgrad_run_mpi_info(s->run, &a), s->ctx);
        double t0 = now();
        CHECK(mgrad_run_train(s->run, NULL), s->ctx);
        CHECK(mgrad_run_reverse(s->run), s->ctx);
        double t = now() - t0;
        CHECK(mgrad_run_mpi_info(s->run, &b), s->ctx);
        if (r >= 0) {
            times[r] = t;
            tm.total += t;
            tm.comm += b.seconds - a.seconds;
        }
    }
    CHECK(mgrad_meta_gather_grad(s->lr, -1, MGRAD_DTYPE_F64, g, T), s->ctx);
    qsort(times, (size_t)repeats, sizeof *times, cmp_double);
    tm.min = times[0];
    tm.median = times[repeats / 2];
    return tm;
}

/* Wait for rank 0 without burning a core. */
static void idle_barrier(void)
{
    MPI_Request req;
    MPI_Ibarrier(MPI_COMM_WORLD, &req);
    int done = 0;
    struct timespec ms = {0, 1000000};
    while (!done) {
        MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        if (!done) nanosleep(&ms, NULL);
    }
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int repeats = argc > 1 ? atoi(argv[1]) : 3;
    int width = argc > 2 ? atoi(argv[2]) : 1024;
    if (repeats < 1) repeats = 1;
    if (repeats > 32) repeats = 32;
    double g1[T], g2[T], gp[T];
    timing t1 = {0, 0, 0, 0}, t2 = {0, 0, 0, 0};
    /* phase 1: rank 0 alone */
    if (rank == 0) {
        setup s;
        make(&s, 1, width, 0);
        int64_t np = 0;
        mgrad_run_num_params(s.run, &np);
        printf("bench_mpi: MLP %d-%d-%d-%d (%lld parameters, f64), batch %d, %d steps, "
               "store-all; median of %d\n", F, width, width, C, (long long)np, B, T,
               repeats);
        t1 = time_it(&s, repeats, 0, g1);
        mgrad_run_stats st1 = MGRAD_RUN_STATS_INIT;
        CHECK(mgrad_run_get_stats(s.run, &st1), s.ctx);
        printf("  one process, 1 BLAS thread, last repeat: forward %.1f ms per step, reverse "
               "%.1f ms per step (phi and its gradient included)\n",
               1e3 * st1.seconds_forward / T, 1e3 * st1.seconds_reverse / T);
        unmake(&s);
        make(&s, size, width, 0);
        t2 = time_it(&s, repeats, 0, g2);
        unmake(&s);
        printf("  one process, 1 BLAS thread:    best %8.3f s  median %8.3f s\n", t1.min,
               t1.median);
        printf("  one process, %d lib. threads:   best %8.3f s  median %8.3f s\n", size, t2.min,
               t2.median);
        fflush(stdout);
    }
    if (size > 1) idle_barrier();
    /* phase 2: data-parallel, 1 BLAS thread per rank */
    setup s;
    make(&s, 1, width, 1);
    timing tp = time_it(&s, repeats, 1, gp);
    mgrad_mpi_info info = MGRAD_MPI_INFO_INIT;
    CHECK(mgrad_run_mpi_info(s.run, &info), s.ctx);
    mgrad_run_stats st = MGRAD_RUN_STATS_INIT;
    CHECK(mgrad_run_get_stats(s.run, &st), s.ctx);
    uint64_t cur = 0, peak = 0;
    mgrad_context_memory(s.ctx, &cur, &peak);
    uint64_t peaks[64] = {0};
    MPI_Gather(&peak, 1, MPI_UINT64_T, peaks, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    int64_t np = 0;
    mgrad_run_num_params(s.run, &np);
    if (rank == 0) {
        double d = 0, m = 0;
        for (int t = 0; t < T; t++) {
            if (fabs(gp[t] - g1[t]) > d) d = fabs(gp[t] - g1[t]);
            if (fabs(g1[t]) > m) m = fabs(g1[t]);
        }
        printf("  %d ranks, 1 BLAS thread each:  best %8.3f s  median %8.3f s\n", size,
               tp.min, tp.median);
        printf("  speedup of %d ranks (best/best): %.2fx over 1 thread, %.2fx over %d "
               "threads; (median/median): %.2fx, %.2fx\n", size, t1.min / tp.min,
               t2.min / tp.min, size, t1.median / tp.median, t2.median / tp.median);
        printf("  rank 0 in reductions: %.3f s per train+reverse (%.0f%% of its time, "
               "waiting for the other ranks included); %lld reductions per train+reverse, "
               "%.1f MB each (P = %lld values, f64): 1 per forward step, 2 per reverse "
               "step, 1 for the gradient of phi, and 3 header-only exchanges (phi, two call ends)\n", tp.comm / repeats,
               100 * tp.comm / tp.total, (long long)(info.reductions / (repeats + 1)),
               (double)np * 8 / 1e6, (long long)np);
        printf("  peak bytes per rank (context):");
        for (int r = 0; r < size && r < 64; r++)
            printf(" %.1f MB", (double)peaks[r] / 1e6);
        printf("; stored states %.1f MB per rank\n", (double)st.peak_state_bytes / 1e6);
        printf("  LR metagradient vs one process: max rel diff %.2e\n", m > 0 ? d / m : d);
    }
    unmake(&s);
    /* the transport's bandwidth for one vector of P doubles (ping-pong) */
    if (size > 1 && rank < 2) {
        size_t n = (size_t)np;
        double *v = calloc(n, sizeof *v);
        double best = 1e300;
        for (int r = 0; r < 6; r++) {
            double t0 = now();
            if (rank == 0) {
                MPI_Send(v, (int)n, MPI_DOUBLE, 1, 9, MPI_COMM_WORLD);
                MPI_Recv(v, (int)n, MPI_DOUBLE, 1, 9, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            } else {
                MPI_Recv(v, (int)n, MPI_DOUBLE, 0, 9, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                MPI_Send(v, (int)n, MPI_DOUBLE, 0, 9, MPI_COMM_WORLD);
            }
            double t = (now() - t0) / 2;
            if (r > 0 && t < best) best = t;
        }
        if (rank == 0)
            printf("  transport: one message of %.1f MB takes %.2f ms (%.2f GB/s, best of 5 "
                   "ping-pongs)\n", (double)n * 8 / 1e6, best * 1e3,
                   (double)n * 8 / best / 1e9);
        free(v);
    }
    MPI_Finalize();
    return 0;
}
