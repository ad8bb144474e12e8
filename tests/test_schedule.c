/*
 * test_schedule.c - checkpoint schedules, simulated on a fake state that is
 * just the step index.  No model: a schedule is correct when the simulator
 * accepts its action stream, and optimal when its cost matches the closed
 * forms computed here independently of lib/store/schedule.c.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metagrad/context.h"
#include "store/schedule.h"
#include "testutil.h"

Suite *make_suite(void);

/* ------------------------------------------------------------------------ */
/* Oracles. */

/* Uniform in [0, 1). */
static double tu01(uint64_t *state)
{
    return 0.5 * (tu_rand(state) + 1.0);
}

/* β(c, r) = C(c + r, c) for the small values the tests use (exact in
   double up to 2^53; asserted). */
static int64_t t_beta(int64_t c, int64_t r)
{
    if (c < 0 || r < 0) return 0;
    double b = 1;
    for (int64_t j = 1; j <= r; j++) b = b * (double)(c + j) / (double)j;
    ck_assert(b < 9.0e15);
    return (int64_t)(b + 0.5);
}

/* Griewank–Walther: forward steps of the optimal reversal of l steps with c
   checkpoints, t(l, c) = r·l − β(c+1, r−1), r least with β(c, r) >= l. */
static int64_t gw_forward(int64_t l, int64_t c)
{
    int64_t r = 0;
    while (t_beta(c, r) < l) r++;
    return r * l - t_beta(c + 1, r - 1);
}

/* Our driver reaches s_T before reversing: GW with a φ pseudo-step. */
static int64_t binomial_recomputed(int64_t T, int64_t s)
{
    return gw_forward(T + 1, s) - T;
}

/* The lazy k-ary tree, recursively: advances spent reversing [a, a+n) from
   its saved start (top: on the way to s_T in the forward phase). */
static int64_t replay_cost(int64_t n, int64_t k, int top)
{
    if (n == 1) return top ? 1 : 0;
    int64_t p = n < k ? n : k;
    int64_t cost = 0;
    for (int64_t i = 0; i < p; i++) {
        int64_t lo = i * n / p, hi = (i + 1) * n / p;
        if (i < p - 1) cost += hi - lo; /* forward through segment i */
        cost += replay_cost(hi - lo, k, top && i == p - 1);
    }
    return cost;
}

static int64_t ceil_log(int64_t T, int64_t k)
{
    int64_t d = 0, p = 1;
    while (p < T) {
        p *= k;
        d++;
    }
    return d;
}

/* ------------------------------------------------------------------------ */
/* Simulator. */

typedef struct sim {
    int64_t advanced;    /* forward steps in total */
    int64_t recomputed;  /* advanced - T */
    int64_t slots_used;  /* highest slot index + 1 */
    int64_t actions;
    int64_t restores, saves;
    char error[256];     /* "" when the stream is valid */
} sim;

/* Execute the schedule on state = step index.  Every rule of schedule.h is
   checked; the state after a REVERSE is treated as unknown so that a
   schedule may not rely on what the driver leaves there. */
static sim simulate(mgr_schedule *sch, int64_t T, int64_t slots)
{
    sim r;
    memset(&r, 0, sizeof r);
    int64_t *slot = malloc((size_t)slots * sizeof *slot);
    ck_assert_ptr_nonnull(slot);
    for (int64_t i = 0; i < slots; i++) slot[i] = -1;
    int64_t cur = 0, next_rev = T - 1;
    int reached_T = 0;
    mgr_action a;
#define FAIL(...) do { snprintf(r.error, sizeof r.error, __VA_ARGS__); goto done; } while (0)
    while (mgr_schedule_next(sch, &a)) {
        r.actions++;
        if (r.actions > 64 * T + 64) FAIL("more than %lld actions", (long long)(64 * T + 64));
        switch (a.kind) {
        case MGR_ACTION_ADVANCE:
            if (cur < 0) FAIL("ADVANCE from an unknown state");
            if (a.count < 1 || cur + a.count > T)
                FAIL("ADVANCE %lld from %lld leaves [0, T]", (long long)a.count, (long long)cur);
            cur += a.count;
            r.advanced += a.count;
            if (cur == T) reached_T = 1;
            break;
        case MGR_ACTION_SAVE:
            if (cur < 0) FAIL("SAVE of an unknown state");
            if (a.slot < 0 || a.slot >= slots)
                FAIL("SAVE to slot %lld of %lld", (long long)a.slot, (long long)slots);
            slot[a.slot] = cur;
            if (a.slot + 1 > r.slots_used) r.slots_used = a.slot + 1;
            r.saves++;
            break;
        case MGR_ACTION_RESTORE:
            if (a.slot < 0 || a.slot >= slots || slot[a.slot] < 0)
                FAIL("RESTORE of empty or invalid slot %lld", (long long)a.slot);
            cur = slot[a.slot];
            r.restores++;
            break;
        case MGR_ACTION_REVERSE:
            if (!reached_T) FAIL("REVERSE before the forward phase reached s_T");
            if (next_rev < 0) FAIL("REVERSE after step 0");
            if (cur != next_rev)
                FAIL("REVERSE of step %lld with s_%lld current", (long long)next_rev,
                     (long long)cur);
            next_rev--;
            cur = -1;
            break;
        default:
            FAIL("unknown action kind %d", (int)a.kind);
        }
    }
    if (next_rev != -1) FAIL("schedule ended with step %lld not reversed", (long long)next_rev);
    r.recomputed = r.advanced - T;
#undef FAIL
done:
    free(slot);
    return r;
}

static mgrad_context *new_ctx(void)
{
    mgrad_context *ctx = NULL;
    ck_assert_int_eq(mgrad_context_create(&ctx, NULL), MGRAD_OK);
    return ctx;
}

/* Plan + create + simulate; asserts validity, returns the simulation. */
static sim run_policy(mgrad_context *ctx, mgrad_checkpoint policy, int64_t T,
                      int64_t slots, int64_t max_slots, int64_t k, int64_t *plan_slots)
{
    mgrad_checkpoint resolved;
    int64_t ns = 0;
    mgrad_status st = mgr_schedule_plan(ctx, policy, T, slots, max_slots, k, &resolved, &ns);
    ck_assert_msg(st == MGRAD_OK, "plan T=%lld slots=%lld k=%lld: %s", (long long)T,
                  (long long)slots, (long long)k, mgrad_context_last_error(ctx));
    mgr_schedule *sch = NULL;
    st = mgr_schedule_create(ctx, resolved, T, ns, k, &sch);
    ck_assert_msg(st == MGRAD_OK, "create: %s", mgrad_context_last_error(ctx));
    sim r = simulate(sch, T, ns);
    ck_assert_msg(r.error[0] == '\0', "policy %d T=%lld slots=%lld k=%lld: %s", (int)resolved,
                  (long long)T, (long long)ns, (long long)k, r.error);
    ck_assert_int_le(r.slots_used, ns);

    /* reset replays the identical stream */
    mgr_schedule_reset(sch);
    sim again = simulate(sch, T, ns);
    ck_assert_int_eq(again.advanced, r.advanced);
    ck_assert_int_eq(again.actions, r.actions);
    mgr_schedule_destroy(ctx, sch);
    if (plan_slots) *plan_slots = ns;
    return r;
}

/* T values: small exhaustive, then powers and non-powers of k. */
static const int64_t big_T[] = {100, 127, 128, 129, 243, 255, 256, 257, 1000, 1023, 1024, 4096};
#define N_BIG_T (sizeof big_T / sizeof big_T[0])

/* ------------------------------------------------------------------------ */

/* The closed form itself, against brute-force dynamic programming over all
   first-checkpoint positions. */
START_TEST(test_gw_closed_form_matches_dp)
{
    enum { L = 80, C = 8 };
    static int64_t F[L + 1][C + 1];
    for (int64_t c = 1; c <= C; c++) {
        for (int64_t l = 1; l <= L; l++) {
            if (l == 1) {
                F[l][c] = 0;
            } else if (c == 1) {
                F[l][c] = l * (l - 1) / 2;
            } else {
                int64_t best = INT64_MAX;
                for (int64_t m = 1; m < l; m++) {
                    int64_t v = m + F[l - m][c - 1] + F[m][c];
                    if (v < best) best = v;
                }
                F[l][c] = best;
            }
            ck_assert_msg(F[l][c] == gw_forward(l, c), "l=%lld c=%lld dp=%lld gw=%lld",
                          (long long)l, (long long)c, (long long)F[l][c],
                          (long long)gw_forward(l, c));
        }
    }
}
END_TEST

START_TEST(test_store_all)
{
    mgrad_context *ctx = new_ctx();
    for (int64_t T = 1; T <= 40; T++) {
        int64_t ns;
        sim r = run_policy(ctx, MGRAD_CHECKPOINT_STORE_ALL, T, 0, 0, 0, &ns);
        ck_assert_int_eq(ns, T);
        ck_assert_int_eq(r.recomputed, 0);
        ck_assert_int_eq(r.slots_used, T);
    }
    /* the documented stream for T = 2 */
    mgr_schedule *sch;
    ck_assert_int_eq(mgr_schedule_create(ctx, MGRAD_CHECKPOINT_STORE_ALL, 2, 0, 0, &sch), MGRAD_OK);
    const mgr_action_kind want[] = {MGR_ACTION_SAVE, MGR_ACTION_ADVANCE, MGR_ACTION_SAVE,
                                    MGR_ACTION_ADVANCE, MGR_ACTION_RESTORE, MGR_ACTION_REVERSE,
                                    MGR_ACTION_RESTORE, MGR_ACTION_REVERSE};
    const int64_t want_slot[] = {0, -1, 1, -1, 1, -1, 0, -1};
    mgr_action a;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ck_assert(mgr_schedule_next(sch, &a));
        ck_assert_int_eq(a.kind, want[i]);
        if (want_slot[i] >= 0) ck_assert_int_eq(a.slot, want_slot[i]);
    }
    ck_assert(!mgr_schedule_next(sch, &a));
    ck_assert(!mgr_schedule_next(sch, &a)); /* stays finished */
    mgr_schedule_destroy(ctx, sch);
    mgrad_context_destroy(ctx);
}
END_TEST

static void check_binomial(mgrad_context *ctx, int64_t T, int64_t s)
{
    int64_t ns;
    sim r = run_policy(ctx, MGRAD_CHECKPOINT_BINOMIAL, T, s, 0, 0, &ns);
    int64_t eff = s < T ? s : T;
    ck_assert_int_eq(ns, eff);
    ck_assert_msg(r.recomputed == binomial_recomputed(T, eff),
                  "binomial T=%lld s=%lld: recomputed %lld, Griewank-Walther %lld",
                  (long long)T, (long long)s, (long long)r.recomputed,
                  (long long)binomial_recomputed(T, eff));
}

START_TEST(test_binomial_small_exhaustive)
{
    mgrad_context *ctx = new_ctx();
    for (int64_t T = 1; T <= 70; T++)
        for (int64_t s = 1; s <= T + 2; s++) check_binomial(ctx, T, s);
    mgrad_context_destroy(ctx);
}
END_TEST

START_TEST(test_binomial_large)
{
    mgrad_context *ctx = new_ctx();
    const int64_t slots[] = {1, 2, 3, 4, 5, 8, 12, 24};
    for (size_t i = 0; i < N_BIG_T; i++) {
        int64_t T = big_T[i];
        for (size_t j = 0; j < sizeof slots / sizeof slots[0]; j++) check_binomial(ctx, T, slots[j]);
        check_binomial(ctx, T, T - 1);
        check_binomial(ctx, T, T);
        check_binomial(ctx, T, T + 5);
    }
    /* the acceptance configuration */
    check_binomial(ctx, 4096, 24);
    mgrad_context_destroy(ctx);
}
END_TEST

/* Closed form at a few points, worked by hand. */
START_TEST(test_binomial_known_values)
{
    mgrad_context *ctx = new_ctx();
    /* one slot: every step T-1..0 replayed from s_0 after the first
       forward pass: 0 + 1 + ... + (T-1) */
    sim r = run_policy(ctx, MGRAD_CHECKPOINT_BINOMIAL, 10, 1, 0, 0, NULL);
    ck_assert_int_eq(r.recomputed, 45);
    /* T slots: store-all, nothing recomputed; T-1 slots: one step */
    r = run_policy(ctx, MGRAD_CHECKPOINT_BINOMIAL, 10, 10, 0, 0, NULL);
    ck_assert_int_eq(r.recomputed, 0);
    r = run_policy(ctx, MGRAD_CHECKPOINT_BINOMIAL, 10, 9, 0, 0, NULL);
    ck_assert_int_eq(r.recomputed, 1);
    mgrad_context_destroy(ctx);
}
END_TEST

static void check_replay(mgrad_context *ctx, int64_t T, int64_t k, sim *out, int64_t *out_slots)
{
    int64_t ns;
    sim r = run_policy(ctx, MGRAD_CHECKPOINT_REPLAY, T, 0, 0, k, &ns);
    int64_t kk = k == 0 ? 4 : k;
    int64_t expect = replay_cost(T, kk, 1) - T;
    ck_assert_msg(r.recomputed == expect, "REPLAY T=%lld k=%lld: recomputed %lld, expected %lld",
                  (long long)T, (long long)kk, (long long)r.recomputed, (long long)expect);
    ck_assert_msg(r.recomputed <= T * ceil_log(T, kk),
                  "REPLAY T=%lld k=%lld: recomputed %lld > T*ceil(log_k T) = %lld",
                  (long long)T, (long long)kk, (long long)r.recomputed,
                  (long long)(T * ceil_log(T, kk)));
    /* the plan asks for exactly the slots the tree holds */
    ck_assert_int_eq(r.slots_used, ns);
    /* memory O(k log_k T): at most 1 + (k-1)·ceil(log_k T) */
    ck_assert_int_le(ns, 1 + (kk - 1) * ceil_log(T, kk));
    if (out) *out = r;
    if (out_slots) *out_slots = ns;
}

START_TEST(test_replay_properties)
{
    mgrad_context *ctx = new_ctx();
    const int64_t ks[] = {0, 2, 3, 4, 5, 7, 10, 64};
    for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++) {
        for (int64_t T = 1; T <= 70; T++) check_replay(ctx, T, ks[j], NULL, NULL);
        for (size_t i = 0; i < N_BIG_T; i++) check_replay(ctx, big_T[i], ks[j], NULL, NULL);
    }
    mgrad_context_destroy(ctx);
}
END_TEST

/* Powers of k: the slot count and the recomputation have closed forms. */
START_TEST(test_replay_powers)
{
    mgrad_context *ctx = new_ctx();
    sim r;
    int64_t ns;
    /* T = k^d: slots 1 + d(k-1).  A lazy subtree over n = k^j steps replays
       P(n) = (k-1)/k · n · j steps; the spine costs nothing beyond the
       forward pass, so recomputed = (k-1) · Σ_{j<d} P(k^j).  For k = 2 that
       is (d-2)·T/2 + 1. */
    check_replay(ctx, 4096, 4, &r, &ns);
    ck_assert_int_eq(ns, 1 + 6 * 3);
    check_replay(ctx, 4096, 2, &r, &ns);
    ck_assert_int_eq(ns, 1 + 12);
    check_replay(ctx, 1024, 2, &r, &ns);
    ck_assert_int_eq(ns, 11);
    ck_assert_int_eq(r.recomputed, 8 * 512 + 1);
    /* in general T·((k-1)/k·d − 1) + 1, as docs/checkpointing.md states */
    for (int64_t k = 2; k <= 6; k++) {
        for (int64_t d = 1, T = k; T <= 5000; d++, T *= k) {
            check_replay(ctx, T, k, &r, &ns);
            ck_assert_int_eq(ns, 1 + d * (k - 1));
            ck_assert_int_eq(r.recomputed, T / k * (k - 1) * d - T + 1);
        }
    }
    check_replay(ctx, 81, 3, &r, &ns);
    ck_assert_int_eq(ns, 1 + 4 * 2);
    ck_assert_int_eq(r.recomputed, 2 * (54 + 12 + 2)); /* P(27), P(9), P(3) */
    mgrad_context_destroy(ctx);
}
END_TEST

START_TEST(test_binomial_beats_replay_at_equal_slots)
{
    mgrad_context *ctx = new_ctx();
    const int64_t ks[] = {2, 3, 4, 8};
    const int64_t Ts[] = {1, 2, 5, 17, 100, 256, 1000, 1024, 4096};
    for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++) {
        for (size_t i = 0; i < sizeof Ts / sizeof Ts[0]; i++) {
            sim rep;
            int64_t ns;
            check_replay(ctx, Ts[i], ks[j], &rep, &ns);
            sim bin = run_policy(ctx, MGRAD_CHECKPOINT_BINOMIAL, Ts[i], ns, 0, 0, NULL);
            ck_assert_msg(bin.recomputed <= rep.recomputed,
                          "T=%lld k=%lld slots=%lld: binomial %lld > REPLAY %lld",
                          (long long)Ts[i], (long long)ks[j], (long long)ns,
                          (long long)bin.recomputed, (long long)rep.recomputed);
        }
    }
    mgrad_context_destroy(ctx);
}
END_TEST

START_TEST(test_auto)
{
    mgrad_context *ctx = new_ctx();
    mgrad_checkpoint p;
    int64_t ns;
    /* unlimited or enough: store-all */
    ck_assert_int_eq(mgr_schedule_plan(ctx, MGRAD_CHECKPOINT_AUTO, 100, 0, 0, 0, &p, &ns), MGRAD_OK);
    ck_assert_int_eq(p, MGRAD_CHECKPOINT_STORE_ALL);
    ck_assert_int_eq(ns, 100);
    ck_assert_int_eq(mgr_schedule_plan(ctx, MGRAD_CHECKPOINT_AUTO, 100, 0, 100, 0, &p, &ns), MGRAD_OK);
    ck_assert_int_eq(p, MGRAD_CHECKPOINT_STORE_ALL);
    /* too few for store-all: binomial with every slot that fits */
    ck_assert_int_eq(mgr_schedule_plan(ctx, MGRAD_CHECKPOINT_AUTO, 100, 0, 7, 0, &p, &ns), MGRAD_OK);
    ck_assert_int_eq(p, MGRAD_CHECKPOINT_BINOMIAL);
    ck_assert_int_eq(ns, 7);
    /* the caller's slot request caps it further */
    ck_assert_int_eq(mgr_schedule_plan(ctx, MGRAD_CHECKPOINT_AUTO, 100, 3, 7, 0, &p, &ns), MGRAD_OK);
    ck_assert_int_eq(p, MGRAD_CHECKPOINT_BINOMIAL);
    ck_assert_int_eq(ns, 3);
    /* a budget of one slot still works (binomial needs 1) */
    sim r = run_policy(ctx, MGRAD_CHECKPOINT_AUTO, 50, 0, 1, 0, NULL);
    ck_assert_int_eq(r.recomputed, binomial_recomputed(50, 1));
    r = run_policy(ctx, MGRAD_CHECKPOINT_AUTO, 1, 0, 1, 0, NULL);
    ck_assert_int_eq(r.recomputed, 0);
    mgrad_context_destroy(ctx);
}
END_TEST

static void expect_error(mgrad_context *ctx, mgrad_checkpoint policy, int64_t T, int64_t slots,
                         int64_t max_slots, int64_t k, mgrad_status want, const char *needle)
{
    mgrad_checkpoint p;
    int64_t ns;
    mgrad_context_clear_error(ctx);
    mgrad_status st = mgr_schedule_plan(ctx, policy, T, slots, max_slots, k, &p, &ns);
    ck_assert_int_eq(st, want);
    const char *msg = mgrad_context_last_error(ctx);
    ck_assert_msg(strstr(msg, needle) != NULL, "message \"%s\" lacks \"%s\"", msg, needle);
    /* create validates the same way (without a budget) */
    if (max_slots == 0) {
        mgr_schedule *sch = (mgr_schedule *)1;
        ck_assert_int_eq(mgr_schedule_create(ctx, policy, T, slots, k, &sch), want);
        ck_assert_ptr_null(sch);
    }
}

START_TEST(test_errors)
{
    mgrad_context *ctx = new_ctx();
    expect_error(ctx, MGRAD_CHECKPOINT_BINOMIAL, 0, 0, 0, 0, MGRAD_ERR_INVALID, "options.steps");
    expect_error(ctx, MGRAD_CHECKPOINT_BINOMIAL, -5, 0, 0, 0, MGRAD_ERR_INVALID, "options.steps");
    expect_error(ctx, MGRAD_CHECKPOINT_BINOMIAL, 10, -1, 0, 0, MGRAD_ERR_INVALID,
                 "options.checkpoint_slots");
    expect_error(ctx, MGRAD_CHECKPOINT_REPLAY, 10, 0, 0, 1, MGRAD_ERR_INVALID,
                 "options.checkpoint_k");
    expect_error(ctx, MGRAD_CHECKPOINT_REPLAY, 10, 0, 0, -3, MGRAD_ERR_INVALID,
                 "options.checkpoint_k");
    expect_error(ctx, MGRAD_CHECKPOINT_REPLAY, 10, 0, 0, (int64_t)1 << 40, MGRAD_ERR_INVALID,
                 "options.checkpoint_k");
    expect_error(ctx, (mgrad_checkpoint)99, 10, 0, 0, 0, MGRAD_ERR_INVALID, "options.checkpoint");
    expect_error(ctx, MGRAD_CHECKPOINT_AUTO, 10, 0, -1, 0, MGRAD_ERR_INVALID, "budget");

    /* budget too small: the message names the minimum */
    expect_error(ctx, MGRAD_CHECKPOINT_STORE_ALL, 100, 0, 99, 0, MGRAD_ERR_BUDGET,
                 "needs 100 state slots");
    /* REPLAY(4) over 4096 steps needs 1 + 6·3 = 19 */
    expect_error(ctx, MGRAD_CHECKPOINT_REPLAY, 4096, 0, 18, 4, MGRAD_ERR_BUDGET,
                 "needs at least 19 state slots");
    expect_error(ctx, MGRAD_CHECKPOINT_REPLAY, 4096, 10, 0, 4, MGRAD_ERR_BUDGET,
                 "needs at least 19 state slots");
    expect_error(ctx, MGRAD_CHECKPOINT_BINOMIAL, 100, 20, 10, 0, MGRAD_ERR_BUDGET,
                 "the minimum is 1");

    /* ... and exactly the minimum works */
    mgrad_checkpoint p;
    int64_t ns;
    ck_assert_int_eq(mgr_schedule_plan(ctx, MGRAD_CHECKPOINT_REPLAY, 4096, 0, 19, 4, &p, &ns),
                     MGRAD_OK);
    ck_assert_int_eq(ns, 19);
    ck_assert_int_eq(mgr_schedule_plan(ctx, MGRAD_CHECKPOINT_STORE_ALL, 100, 0, 100, 0, &p, &ns),
                     MGRAD_OK);

    /* NULL outputs */
    ck_assert_int_eq(mgr_schedule_plan(ctx, MGRAD_CHECKPOINT_AUTO, 10, 0, 0, 0, NULL, &ns),
                     MGRAD_ERR_NULL);
    ck_assert_int_eq(mgr_schedule_create(ctx, MGRAD_CHECKPOINT_AUTO, 10, 0, 0, NULL),
                     MGRAD_ERR_NULL);
    /* NULL-tolerant helpers */
    mgr_schedule_destroy(ctx, NULL);
    mgr_schedule_reset(NULL);
    mgr_action a;
    ck_assert_int_eq(mgr_schedule_next(NULL, &a), 0);
    mgrad_context_destroy(ctx);
}
END_TEST

/* Random (T, slots, k), beyond the hand-picked grids. */
START_TEST(test_random_configurations)
{
    mgrad_context *ctx = new_ctx();
    uint64_t rng = 12345;
    for (int it = 0; it < 60; it++) {
        int64_t T = 1 + (int64_t)((tu01(&rng)) * 20000.0);
        int64_t s = 1 + (int64_t)(tu01(&rng) * 40.0);
        int64_t k = 2 + (int64_t)(tu01(&rng) * 8.0);
        check_binomial(ctx, T, s);
        check_replay(ctx, T, k, NULL, NULL);
    }
    mgrad_context_destroy(ctx);
}
END_TEST

/* Long runs stay cheap to generate: the generators keep O(slots + log T)
   state, not an action list. */
START_TEST(test_long_run)
{
    mgrad_context *ctx = new_ctx();
    const int64_t T = 1000000;
    uint64_t before, peak;
    ck_assert_int_eq(mgrad_context_memory(ctx, &before, NULL), MGRAD_OK);
    check_replay(ctx, T, 10, NULL, NULL);
    check_binomial(ctx, T, 20);
    ck_assert_int_eq(mgrad_context_memory(ctx, NULL, &peak), MGRAD_OK);
    ck_assert_uint_lt(peak - before, 64 * 1024);
    mgrad_context_destroy(ctx);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("schedule");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_gw_closed_form_matches_dp);
    tcase_add_test(tc, test_store_all);
    tcase_add_test(tc, test_binomial_small_exhaustive);
    tcase_add_test(tc, test_binomial_large);
    tcase_add_test(tc, test_binomial_known_values);
    tcase_add_test(tc, test_replay_properties);
    tcase_add_test(tc, test_replay_powers);
    tcase_add_test(tc, test_binomial_beats_replay_at_equal_slots);
    tcase_add_test(tc, test_auto);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_random_configurations);
    tcase_add_test(tc, test_long_run);
    suite_add_tcase(s, tc);
    return s;
}
