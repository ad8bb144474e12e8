/*
 * mpi_train.c - a data-parallel metagradient over MPI ranks
 * (metagrad/mpi.h, docs/scale-out.md).
 *
 *     OPENBLAS_NUM_THREADS=1 mpirun -np 2 ./mpi_train
 *
 * Every rank builds the same run (model, data, options, metaparameters);
 * mgrad_run_set_communicator makes it data-parallel: each rank computes its
 * share of every batch, and the library sums gradients and Hessian-vector
 * products across the ranks in a fixed order.  Global metagradients (here
 * the LR schedule) are identical on every rank; per-example ones (here the
 * data weights) are gathered on request, to rank 0.  Each rank reports its
 * own peak memory.
 */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include <metagrad.h>

#include "common/flags.h"

enum { F = 32, C = 4, N = 512, NVAL = 128, B = 64, T = 20, WIDTH = 128 };

static int rank, size;

#define CHECK(call)                                                                  \
    do {                                                                             \
        mgrad_status s_ = (call);                                                    \
        if (s_ != MGRAD_OK) {                                                        \
            fprintf(stderr, "[rank %d] %s: %s\n", rank, #call,                       \
                    mgrad_context_last_error(ctx));                                  \
            MPI_Abort(MPI_COMM_WORLD, 1);                                            \
        }                                                                            \
    } while (0)

static double urand(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*s >> 11) / 9007199254740992.0 * 2 - 1;
}

/* A separable-ish problem: the label is the argmax of a fixed projection. */
static mgrad_dataset *make_data(mgrad_context *ctx, int n, uint64_t seed)
{
    static double x[N * F];
    static int32_t y[N];
    uint64_t s = seed;
    for (int i = 0; i < n * F; i++) x[i] = urand(&s);
    for (int i = 0; i < n; i++) {
        int best = 0;
        double bv = -1e300;
        for (int c = 0; c < C; c++) {
            double v = 0;
            for (int f = c; f < F; f += C) v += x[i * F + f];
            if (v > bv) {
                bv = v;
                best = c;
            }
        }
        y[i] = best;
    }
    int64_t shape[1] = {F};
    mgrad_dataset *d = NULL;
    mgrad_dataset_create(&d, ctx, n, 1, shape, MGRAD_DTYPE_F64, x);
    mgrad_dataset_set_labels(d, y, n, C);
    return d;
}

int main(int argc, char **argv)
{
    /* before MPI_Init: --help and a bad command line need no MPI (every rank
       answers alike under mpirun) */
    const app_cmdline cmd = {"A data-parallel metagradient over MPI ranks; run it under "
                             "mpirun -np R.",
                             NULL, 0, NULL, 0};
    int rc = app_parse_flags(&cmd, argc, argv);
    if (rc != APP_FLAGS_RUN) return rc;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    mgrad_context *ctx = NULL;
    if (!mgrad_mpi_available()) {
        if (rank == 0) fprintf(stderr, "this libmetagrad was built without MPI\n");
        MPI_Finalize();
        return 1;
    }
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = MGRAD_DTYPE_F64;
    co.threads = 1; /* one library thread per rank (run with OPENBLAS_NUM_THREADS=1):
                       the ranks are the parallelism */
    co.seed = 1;
    if (mgrad_context_create(&ctx, &co) != MGRAD_OK) MPI_Abort(MPI_COMM_WORLD, 1);

    /* the same run on every rank */
    int64_t shape[1] = {F};
    mgrad_model *model = NULL;
    CHECK(mgrad_model_create(&model, ctx, 1, shape));
    CHECK(mgrad_model_add_dense(model, WIDTH, MGRAD_INIT_DEFAULT));
    CHECK(mgrad_model_add_activation(model, MGRAD_ACTIVATION_GELU));
    CHECK(mgrad_model_add_dense(model, C, MGRAD_INIT_DEFAULT));
    mgrad_dataset *train = make_data(ctx, N, 11), *val = make_data(ctx, NVAL, 12);
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = T;
    o.batch_size = B;
    o.shuffle_seed = 3;
    o.optimizer = MGRAD_OPTIMIZER_ADAM;
    o.lr = 0.01;
    o.eps_root = 1e-8;
    o.validation = val;
    o.checkpoint = MGRAD_CHECKPOINT_BINOMIAL; /* schedules work unchanged per rank */
    o.checkpoint_slots = 4;
    mgrad_run *run = NULL;
    CHECK(mgrad_run_create(&run, model, train, &o));
    mgrad_meta *lr = NULL, *dw = NULL;
    CHECK(mgrad_run_add_meta(&lr, run, MGRAD_META_LR_SCHEDULE, NULL));
    CHECK(mgrad_run_add_meta(&dw, run, MGRAD_META_DATA_WEIGHTS, NULL));

    MPI_Comm comm = MPI_COMM_WORLD;
    CHECK(mgrad_run_set_communicator(run, &comm));

    double phi = 0;
    CHECK(mgrad_run_train(run, &phi));
    CHECK(mgrad_run_reverse(run));

    /* global: identical on every rank, no communication needed */
    double glr[T];
    CHECK(mgrad_meta_get_grad(lr, MGRAD_DTYPE_F64, glr, T));
    /* per-example: each rank holds the part of the examples it computed;
       their sum goes to rank 0 */
    double *gdw = rank == 0 ? malloc(N * sizeof(double)) : NULL;
    CHECK(mgrad_meta_gather_grad(dw, 0, MGRAD_DTYPE_F64, gdw, N));
    double acc = 0;
    CHECK(mgrad_run_evaluate(run, val, NULL, &acc));

    mgrad_run_stats st = MGRAD_RUN_STATS_INIT;
    CHECK(mgrad_run_get_stats(run, &st));
    mgrad_mpi_info info = MGRAD_MPI_INFO_INIT;
    CHECK(mgrad_run_mpi_info(run, &info));
    uint64_t cur = 0, peak = 0;
    mgrad_context_memory(ctx, &cur, &peak);
    uint64_t mine[2] = {peak, st.peak_state_bytes}, all[2 * 64];
    MPI_Gather(mine, 2, MPI_UINT64_T, rank == 0 ? all : NULL, 2, MPI_UINT64_T, 0,
               MPI_COMM_WORLD);

    if (rank == 0) {
        printf("mpi_train: %d rank(s), MLP %d-%d-%d, Adam, %d steps of batch %d "
               "(%d rows per rank), binomial checkpointing with %lld slots\n",
               size, F, WIDTH, C, T, B, B / size, (long long)st.checkpoint_slots);
        printf("  phi = validation loss after training: %.6f (accuracy %.3f)\n", phi, acc);
        printf("  dphi/d(lr_t), t = 0..4:");
        for (int t = 0; t < 5; t++) printf(" %+.4e", glr[t]);
        printf("\n");
        int most = 0, least = 0;
        for (int i = 1; i < N; i++) {
            if (gdw[i] > gdw[most]) most = i;
            if (gdw[i] < gdw[least]) least = i;
        }
        printf("  data weights (gathered to rank 0): most harmful example %d (%+.3e), most "
               "helpful %d (%+.3e)\n", most, gdw[most], least, gdw[least]);
        printf("  communication: %lld reductions, %.2f MB reduced, %.3f s on rank 0\n",
               (long long)info.reductions, (double)info.bytes_reduced / 1e6, info.seconds);
        for (int r = 0; r < size && r < 64; r++)
            printf("  rank %d: peak %.2f MB allocated, %.2f MB of stored states\n", r,
                   (double)all[2 * r] / 1e6, (double)all[2 * r + 1] / 1e6);
        free(gdw);
    }
    mgrad_run_destroy(run); /* before MPI_Finalize: it frees its communicator */
    mgrad_dataset_destroy(train);
    mgrad_dataset_destroy(val);
    mgrad_model_destroy(model);
    mgrad_context_destroy(ctx);
    MPI_Finalize();
    return 0;
}
