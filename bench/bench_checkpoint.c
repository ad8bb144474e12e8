/*
 * bench_checkpoint.c - what each checkpoint schedule costs, measured in one
 * process on the same work.
 *
 * For T in {256, 1024, 4096} and budgets of b = 2⌈log2 T⌉ and 4⌈log2 T⌉
 * optimizer states, run one metagradient (mgrad_run_train + mgrad_run_reverse)
 * under
 *     store-all                 T states, the reference;
 *     REPLAY(k)                 the largest k whose 1 + E(T) states fit in b
 *                               (larger k stores more and recomputes less),
 *                               or reported as not fitting;
 *     binomial, b slots         everything the budget allows;
 *     binomial, REPLAY's slots  exactly REPLAY's memory, for the comparison;
 * and, as fixed points of reference, REPLAY with the paper's k = 2 and k = 4
 * next to binomial with the same slots.  Per schedule it prints the steps
 * recomputed (total and per training step), the wall-clock time of
 * train + reverse, its ratio to store-all's time in the same repeat (median
 * over repeats; every schedule of a T runs once per repeat, interleaved,
 * after one untimed warm-up that allocates the slots), the same ratio in CPU
 * time of the process (robust to other load on a shared machine), and the
 * peak bytes of stored states.  Then, at equal memory, binomial's recomputation against
 * REPLAY's.  Binomial is optimal, so it can tie a REPLAY tree that happens to
 * be optimal too, but never recompute more: the program fails if it does.
 *
 * Model: MLP 32-64-10 (tanh), batch 16, SGD with momentum, f32;
 * metaparameters LR schedule + data weights.
 *
 * Usage: bench_checkpoint [repeats=9] [width=64] [f32|f64]
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <metagrad.h>

#include "bench_util.h"

static mgrad_context *ctx;

#define CHECK(call) BENCH_CHECK(ctx, call)

/* The 1-minute load average, to print the conditions of the measurement. */
static double loadavg(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f != NULL) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}

static int64_t ceil_log2(int64_t T)
{
    int64_t d = 0;
    while (((int64_t)1 << d) < T) d++;
    return d;
}

/* States REPLAY(k) holds over T steps: 1 + E(T), E(1) = 0,
   E(n) = (min(k, n) − 1) + E(⌈n/k⌉)  (docs/checkpointing.md). */
static int64_t replay_slots(int64_t T, int64_t k)
{
    int64_t e = 0;
    for (int64_t n = T; n > 1; n = (n + k - 1) / k) e += (n < k ? n : k) - 1;
    return 1 + e;
}

/* The largest k whose states fit in `budget`, 0 if none does. */
static int64_t replay_k_for(int64_t T, int64_t budget)
{
    int64_t best = 0;
    for (int64_t k = 2; k <= budget + 1 && k <= T; k++)
        if (replay_slots(T, k) <= budget) best = k;
    return best;
}

enum { F = 32, C = 10, B = 16, N = 512, NV = 128, MAXCFG = 16, MAXREP = 100, NGROUPS = 4 };

typedef struct cfg {
    char name[40];
    int group;               /* 0 store-all, 1-2 budgets, 3-4 REPLAY k = 2, 4 */
    int64_t budget;          /* states; 0 for store-all */
    mgrad_checkpoint policy;
    int64_t slots, k;
    mgrad_run *run;
    double secs[MAXREP], ratio[MAXREP], cpu[MAXREP], cpu_ratio[MAXREP];
    mgrad_run_stats st;
} cfg;

static mgrad_run *make_run(mgrad_model *model, mgrad_dataset *train, mgrad_dataset *val,
                           int64_t T, const cfg *c)
{
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = T;
    o.batch_size = B;
    o.lr = 0.05;
    o.momentum = 0.9;
    o.validation = val;
    o.checkpoint = c->policy;
    o.checkpoint_slots = c->slots;
    o.checkpoint_k = c->k;
    mgrad_run *run = NULL;
    mgrad_meta *lr = NULL, *w = NULL;
    CHECK(mgrad_run_create(&run, model, train, &o));
    CHECK(mgrad_run_add_meta(&lr, run, MGRAD_META_LR_SCHEDULE, NULL));
    CHECK(mgrad_run_add_meta(&w, run, MGRAD_META_DATA_WEIGHTS, NULL));
    return run;
}

/* Wall-clock seconds of train + reverse; CPU seconds of the process into *cpu. */
static double metagradient(cfg *c, double *cpu)
{
    double t0 = bench_wall(), c0 = bench_cpu();
    CHECK(mgrad_run_train(c->run, NULL));
    CHECK(mgrad_run_reverse(c->run));
    double t = bench_wall() - t0;
    *cpu = bench_cpu() - c0;
    c->st.version = MGRAD_RUN_STATS_VERSION;
    CHECK(mgrad_run_get_stats(c->run, &c->st));
    return t;
}

static void add_cfg(cfg *cs, int *n, const char *name, int group, int64_t budget,
                    mgrad_checkpoint p, int64_t slots, int64_t k)
{
    cfg *c = &cs[(*n)++];
    memset(c, 0, sizeof *c);
    c->group = group;
    snprintf(c->name, sizeof c->name, "%s", name);
    c->budget = budget;
    c->policy = p;
    c->slots = slots;
    c->k = k;
}

int main(int argc, char **argv)
{
    int repeats = argc > 1 ? atoi(argv[1]) : 9;
    int width = argc > 2 ? atoi(argv[2]) : 64;
    mgrad_dtype dtype = argc > 3 && strcmp(argv[3], "f64") == 0 ? MGRAD_DTYPE_F64
                                                                : MGRAD_DTYPE_F32;
    if (repeats < 1 || repeats > MAXREP || width < 1) {
        fprintf(stderr, "usage: %s [repeats<=100] [width] [f32|f64]\n", argv[0]);
        return EXIT_FAILURE;
    }

    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = dtype;
    if (mgrad_context_create(&ctx, &co) != MGRAD_OK) return EXIT_FAILURE;
    mgrad_model *model = NULL;
    mgrad_dataset *train = NULL, *val = NULL;
    if (bench_mlp(ctx, F, width, 1, MGRAD_ACTIVATION_TANH, C, &model)) return EXIT_FAILURE;
    if (bench_random_datasets(ctx, N, NV, F, C, 3, &train, &val)) return EXIT_FAILURE;

    printf("MLP %d-%d-%d tanh, batch %d, SGD momentum, %s, metaparameters LR schedule + "
           "data weights; %d repeats (median), schedules interleaved in each repeat\n",
           F, width, C, B, dtype == MGRAD_DTYPE_F32 ? "f32" : "f64", repeats);
    printf("time = wall-clock of mgrad_run_train + mgrad_run_reverse; ratio = time / "
           "store-all's time in the same repeat; CPU ratio: the same with the process's "
           "CPU time (robust to other load on the machine)\n");
    printf("load average at start: %.2f\n\n", loadavg());
    printf("| T | budget (states) | schedule | slots | steps recomputed | recomputed per "
           "step | time (s) | wall-clock ratio to store-all | CPU-time ratio | peak state "
           "memory |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|\n");

    static const int64_t TS[] = {256, 1024, 4096};
    char cmp[3][NGROUPS][256];
    int ok = 1, fewer = 0, ties = 0;
    for (int ti = 0; ti < 3; ti++) {
        int64_t T = TS[ti];
        cfg cs[MAXCFG];
        int n = 0;
        add_cfg(cs, &n, "store-all", 0, 0, MGRAD_CHECKPOINT_STORE_ALL, 0, 0);
        /* Groups 1, 2: the budgets, REPLAY with the largest k that fits;
           groups 3, 4: REPLAY with k = 2 and k = 4 whatever their slots. */
        int replay_idx[NGROUPS], same_idx[NGROUPS];
        for (int g = 1; g <= NGROUPS; g++) {
            int64_t b = g <= 2 ? g * 2 * ceil_log2(T) : 0;
            int64_t k = g <= 2 ? replay_k_for(T, b) : (g == 3 ? 2 : 4);
            char name[40];
            replay_idx[g - 1] = same_idx[g - 1] = -1;
            if (k > 0) {
                snprintf(name, sizeof name, "REPLAY k=%lld", (long long)k);
                replay_idx[g - 1] = n;
                add_cfg(cs, &n, name, g, b, MGRAD_CHECKPOINT_REPLAY, 0, k);
            }
            if (b > 0) {
                same_idx[g - 1] = n;
                add_cfg(cs, &n, "binomial", g, b, MGRAD_CHECKPOINT_BINOMIAL, b, 0);
            }
            if (k > 0 && replay_slots(T, k) != b) {
                same_idx[g - 1] = n;
                add_cfg(cs, &n, "binomial, REPLAY's slots", g, b, MGRAD_CHECKPOINT_BINOMIAL,
                        replay_slots(T, k), 0);
            }
        }
        for (int i = 0; i < n; i++) {
            cs[i].run = make_run(model, train, val, T, &cs[i]);
            double ignored;
            metagradient(&cs[i], &ignored); /* warm-up: allocates the slots */
        }
        for (int r = 0; r < repeats; r++) {
            for (int i = 0; i < n; i++) cs[i].secs[r] = metagradient(&cs[i], &cs[i].cpu[r]);
            for (int i = 0; i < n; i++) {
                cs[i].ratio[r] = cs[i].secs[r] / cs[0].secs[r];
                cs[i].cpu_ratio[r] = cs[i].cpu[r] / cs[0].cpu[r];
            }
        }
        for (int g = 0; g <= NGROUPS; g++) {
            for (int i = 0; i < n; i++) {
                cfg *c = &cs[i];
                if (c->group != g) continue;
                char budget[32];
                if (g == 0)
                    snprintf(budget, sizeof budget, "%lld (all)", (long long)T);
                else if (c->budget > 0)
                    snprintf(budget, sizeof budget, "%lld", (long long)c->budget);
                else
                    snprintf(budget, sizeof budget, "(k fixed)");
                printf("| %lld | %s | %s | %lld | %lld | %.2f | %.3f | %.2fx | %.2fx | "
                       "%.1f KiB |\n",
                       (long long)T, budget, c->name, (long long)c->st.checkpoint_slots,
                       (long long)c->st.steps_recomputed,
                       (double)c->st.steps_recomputed / (double)T, bench_median(c->secs, repeats),
                       bench_median(c->ratio, repeats), bench_median(c->cpu_ratio, repeats),
                       c->st.peak_state_bytes / 1024.0);
            }
            if (g >= 1 && g <= 2 && replay_idx[g - 1] < 0)
                printf("| %lld | %lld | REPLAY: does not fit (k = 2 needs %lld) | | | | | "
                       "| | |\n", (long long)T, (long long)(g * 2 * ceil_log2(T)),
                       (long long)replay_slots(T, 2));
        }
        for (int g = 0; g < NGROUPS; g++) {
            cmp[ti][g][0] = 0;
            if (replay_idx[g] < 0) continue;
            const cfg *rp = &cs[replay_idx[g]], *bn = &cs[same_idx[g]];
            int64_t rr = rp->st.steps_recomputed, br = bn->st.steps_recomputed;
            if (bn->st.checkpoint_slots != rp->st.checkpoint_slots || br > rr) ok = 0;
            if (br < rr) fewer++;
            else ties++;
            snprintf(cmp[ti][g], sizeof cmp[ti][g],
                     "T = %lld, %lld slots: binomial recomputes %lld steps, %s %lld: %s "
                     "(ratio to store-all: wall %.2fx vs %.2fx, CPU %.2fx vs %.2fx)",
                     (long long)T, (long long)rp->st.checkpoint_slots, (long long)br,
                     rp->name, (long long)rr,
                     br < rr ? "binomial fewer" : br == rr ? "equal" : "BINOMIAL MORE",
                     bench_median(bn->ratio, repeats), bench_median(rp->ratio, repeats),
                     bench_median(bn->cpu_ratio, repeats), bench_median(rp->cpu_ratio, repeats));
        }
        for (int i = 0; i < n; i++) mgrad_run_destroy(cs[i].run);
        fflush(stdout);
    }
    printf("\nload average at end: %.2f\n", loadavg());
    printf("\nAt equal memory (REPLAY's slot count):\n");
    for (int ti = 0; ti < 3; ti++)
        for (int g = 0; g < NGROUPS; g++)
            if (cmp[ti][g][0]) printf("- %s\n", cmp[ti][g]);
    if (ok)
        printf("binomial recomputes fewer steps than REPLAY in %d of %d comparisons at "
               "equal memory, as many in %d, more in none\n", fewer, fewer + ties, ties);
    else
        printf("FAIL: binomial recomputed more steps than REPLAY at equal memory\n");

    mgrad_dataset_destroy(train);
    mgrad_dataset_destroy(val);
    mgrad_model_destroy(model);
    mgrad_context_destroy(ctx);
    return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
