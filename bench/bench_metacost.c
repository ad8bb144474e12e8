/*
 * bench_metacost.c - the cost of a metagradient over the cost of training,
 * measured in one process on the same work.
 *
 * MLP 784-1024-1024-10 (ReLU), batch 256, SGD with momentum, f32, random
 * inputs and labels; metaparameters: per-step LR schedule + data weights.
 * Per repeat, interleaved:
 *     plain      mgrad_run_train with binomial checkpointing and one slot
 *                (T steps storing only s_0, plus the validation loss): the
 *                cost of training;
 *     store-all  mgrad_run_train + mgrad_run_reverse, every state kept;
 *     binomial   the same with 2⌈log2 T⌉ slots.
 * For each metagradient schedule it prints, as medians over repeats of
 * per-repeat ratios to `plain` of the same repeat:
 *     reverse / train        the reverse pass alone
 *     (train + reverse) / train   the whole metagradient (the forward phase
 *                            of the metagradient run stores states, so it
 *                            costs a little more than plain training)
 * in wall-clock and in process CPU time, plus steps recomputed and the peak
 * bytes of stored states, and the wall-clock meta/train of every repeat:
 * the runs are created once, so repeat 0 pays for first-touching the
 * checkpoint slots and later repeats show the steady state of a run that
 * is reused (as in an MGD loop).
 *
 * Memory: store-all keeps T optimizer states (θ and the momentum, 2P floats,
 * 14.2 MiB here): 14.2 GiB at T = 1024.  With a spill directory, states
 * beyond budget_mib of RAM go to an unlinked file there.
 *
 * Usage: bench_metacost [steps=1024] [repeats=3] [spill_dir|-] [budget_mib=4096]
 *                       [width=1024] [batch=256]
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <metagrad.h>

#include "bench_util.h"

static mgrad_context *ctx;

#define CHECK(call) BENCH_CHECK(ctx, call)

enum { F = 784, C = 10, N = 8192, NV = 256 };
enum { PLAIN, STORE_ALL, BINOMIAL, KINDS };
static const char *names[KINDS] = {"plain training", "store-all", "binomial"};

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 1024;
    int repeats = argc > 2 ? atoi(argv[2]) : 3;
    const char *spill = argc > 3 && strcmp(argv[3], "-") != 0 ? argv[3] : NULL;
    double budget_mib = argc > 4 ? atof(argv[4]) : 4096;
    int width = argc > 5 ? atoi(argv[5]) : 1024;
    int B = argc > 6 ? atoi(argv[6]) : 256;
    if (steps < 1 || repeats < 1 || repeats > 100 || width < 1 || B < 1 || B > N) {
        fprintf(stderr, "usage: %s [steps] [repeats<=100] [spill_dir|-] [budget_mib] "
                        "[width] [batch]\n", argv[0]);
        return EXIT_FAILURE;
    }
    int log2T = 0;
    while ((1L << log2T) < steps) log2T++;
    int64_t slots = 2 * (log2T > 0 ? log2T : 1);


    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = MGRAD_DTYPE_F32;
    if (mgrad_context_create(&ctx, &co) != MGRAD_OK) return EXIT_FAILURE;
    mgrad_model *model = NULL;
    mgrad_dataset *train = NULL, *val = NULL;
    if (bench_mlp(ctx, F, width, 2, MGRAD_ACTIVATION_RELU, C, &model)) return EXIT_FAILURE;
    if (bench_random_datasets(ctx, N, NV, F, C, 11, &train, &val)) return EXIT_FAILURE;

    mgrad_run *runs[KINDS];
    for (int k = 0; k < KINDS; k++) {
        mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
        o.steps = steps;
        o.batch_size = B;
        o.lr = 0.01;
        o.momentum = 0.9;
        o.validation = val;
        o.checkpoint = k == STORE_ALL ? MGRAD_CHECKPOINT_STORE_ALL : MGRAD_CHECKPOINT_BINOMIAL;
        o.checkpoint_slots = k == PLAIN ? 1 : k == BINOMIAL ? slots : 0;
        if (k == STORE_ALL && spill != NULL) {
            o.spill_dir = spill;
            o.checkpoint_budget_bytes = (uint64_t)(budget_mib * 1048576.0);
        }
        CHECK(mgrad_run_create(&runs[k], model, train, &o));
        if (k != PLAIN) {
            mgrad_meta *lr = NULL, *w = NULL;
            CHECK(mgrad_run_add_meta(&lr, runs[k], MGRAD_META_LR_SCHEDULE, NULL));
            CHECK(mgrad_run_add_meta(&w, runs[k], MGRAD_META_DATA_WEIGHTS, NULL));
        }
    }

    double tt[KINDS][100], tr[KINDS][100], ct[KINDS][100], cr[KINDS][100];
    mgrad_run_stats st[KINDS];
    for (int r = 0; r < repeats; r++) {
        for (int k = 0; k < KINDS; k++) {
            double c0 = bench_cpu(), t0 = bench_wall();
            CHECK(mgrad_run_train(runs[k], NULL));
            tt[k][r] = bench_wall() - t0;
            ct[k][r] = bench_cpu() - c0;
            tr[k][r] = cr[k][r] = 0;
            if (k != PLAIN) {
                c0 = bench_cpu();
                t0 = bench_wall();
                CHECK(mgrad_run_reverse(runs[k]));
                tr[k][r] = bench_wall() - t0;
                cr[k][r] = bench_cpu() - c0;
            }
            st[k] = (mgrad_run_stats)MGRAD_RUN_STATS_INIT;
            CHECK(mgrad_run_get_stats(runs[k], &st[k]));
            fprintf(stderr, "repeat %d %-15s train %.2f s reverse %.2f s\n", r, names[k],
                    tt[k][r], tr[k][r]);
        }
    }

    printf("metagradient cost: MLP %d-%d-%d-%d ReLU, batch %d, T = %d, SGD momentum, f32, "
           "metas LR schedule + data weights, %d repeats (medians of per-repeat ratios)\n",
           F, width, width, C, B, steps, repeats);
    printf("  plain training: %.2f s wall (%.1f ms per step)\n", bench_median(tt[PLAIN], repeats),
           1e3 * bench_median(tt[PLAIN], repeats) / steps);
    printf("  %-10s %6s %10s %8s %9s %9s %9s %11s %11s\n", "schedule", "slots", "recomputed",
           "train s", "reverse s", "rev/train", "meta/train", "rev/tr CPU", "meta/tr CPU");
    for (int k = STORE_ALL; k < KINDS; k++) {
        double a[100], b[100], c[100], d[100];
        for (int r = 0; r < repeats; r++) {
            a[r] = tr[k][r] / tt[PLAIN][r];
            b[r] = (tt[k][r] + tr[k][r]) / tt[PLAIN][r];
            c[r] = cr[k][r] / ct[PLAIN][r];
            d[r] = (ct[k][r] + cr[k][r]) / ct[PLAIN][r];
        }
        printf("  %-10s %6lld %10lld %8.2f %9.2f %9.2f %9.2f %11.2f %11.2f\n", names[k],
               (long long)st[k].checkpoint_slots, (long long)st[k].steps_recomputed,
               bench_median(tt[k], repeats), bench_median(tr[k], repeats),
               bench_median(a, repeats), bench_median(b, repeats), bench_median(c, repeats),
               bench_median(d, repeats));
    }
    /* Repeat 0 is the first metagradient of a fresh run: its slots are
       first-touched then (expensive on VMs); later repeats reuse the run,
       as an MGD loop does. */
    for (int k = STORE_ALL; k < KINDS; k++) {
        printf("  %-10s meta/train per repeat:", names[k]);
        for (int r = 0; r < repeats; r++)
            printf(" %.2f", (tt[k][r] + tr[k][r]) / tt[PLAIN][r]);
        printf("  (repeat 0: fresh run)\n");
    }
    for (int k = STORE_ALL; k < KINDS; k++)
        printf("  %-10s peak stored states %.1f MiB, spilled %.1f MiB\n", names[k],
               st[k].peak_state_bytes / 1048576.0, st[k].spilled_bytes / 1048576.0);
    printf("  targets: store-all <= 4.0, binomial <= 6.0\n");
    printf("  process peak RSS %.1f MiB\n", bench_peak_rss() / 1048576.0);

    for (int k = 0; k < KINDS; k++) mgrad_run_destroy(runs[k]);
    mgrad_dataset_destroy(train);
    mgrad_dataset_destroy(val);
    mgrad_model_destroy(model);
    mgrad_context_destroy(ctx);
    return EXIT_SUCCESS;
}
