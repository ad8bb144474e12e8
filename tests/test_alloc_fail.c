/*
 * test_alloc_fail.c - allocation failure across the whole public API: a
 * caller allocator that fails at allocation k, for every k until a whole
 * scenario succeeds: NOMEM and a message each time, no leak, out-pointers
 * untouched, and the surviving handles keep working (the retried scenario is
 * bit-identical to a clean one); also an allocator that keeps failing from k
 * on.
 *
 * The allocator and the scenario: scenario.h.  docs/reliability.md
 * describes the failure-mode suites and their figures.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metagrad.h"
#include "scenario.h"
#include "testutil.h"

/* ---- 1. allocation failure at every allocation point -------------------- */

START_TEST(test_alloc_fail_each_point)
{
    /* A clean pass: the reference results and the number of attempts. */
    alloc_state ref_as = {0, 0, 0, -1, 0, 0};
    world ref;
    world_init(&ref, &SMALL, &ref_as);
    world_run_all(&ref);
    long points = ref_as.attempts;
    ck_assert_int_gt(points, 20);

    int failed_in[NSTEPS];
    memset(failed_in, 0, sizeof failed_in);
    long k;
    for (k = 0;; k++) {
        alloc_state as = {0, 0, 0, k, 0, 0};
        world w;
        world_init(&w, &SMALL, &as);
        int failed = -1;
        for (int i = 0; i < NSTEPS; i++) {
            if (w.ctx != NULL) mgrad_context_clear_error(w.ctx);
            long before = as.failures;
            mgrad_status s = STEPS[i].fn(&w);
            if (s != MGRAD_OK) {
                ck_assert_msg(as.failures == before + 1,
                              "k=%ld: %s failed with %s without an allocation failure (%s)",
                              k, STEPS[i].name, mgrad_status_string(s),
                              mgrad_context_last_error(w.ctx));
                ck_assert_msg(s == MGRAD_ERR_NOMEM, "k=%ld: %s returned %s, not NOMEM", k,
                              STEPS[i].name, mgrad_status_string(s));
                if (w.ctx != NULL) {
                    const char *msg = mgrad_context_last_error(w.ctx);
                    ck_assert_msg(strstr(msg, "memory") != NULL,
                                  "k=%ld: %s: message \"%s\" does not say out of memory", k,
                                  STEPS[i].name, msg);
                }
                failed = i;
                failed_in[i]++;
                /* The surviving handles keep working: retry with memory. */
                as.fail_at = -1;
                s = STEPS[i].fn(&w);
                ck_assert_msg(s == MGRAD_OK, "k=%ld: retrying %s after NOMEM: %s (%s)", k,
                              STEPS[i].name, mgrad_status_string(s),
                              mgrad_context_last_error(w.ctx));
            }
        }
        if (failed >= 0) {
            /* The retried scenario computed exactly the clean one's bits. */
            char what[96];
            snprintf(what, sizeof what, "after NOMEM at allocation %ld in %s", k,
                     STEPS[failed].name);
            world_compare(&ref, &w, what);
        }
        uint64_t current = 1;
        ck_assert_int_eq(mgrad_context_memory(w.ctx, &current, NULL), MGRAD_OK);
        ck_assert(current > 0);
        world_destroy(&w);
        ck_assert_msg(as.allocs == as.frees, "k=%ld: %ld blocks allocated, %ld freed", k,
                      as.allocs, as.frees);
        if (failed < 0) {
            ck_assert_int_eq(as.failures, 0);
            break;
        }
        ck_assert_int_eq(as.failures, 1);
    }
    /* Every attempt of the clean run was made to fail once. */
    ck_assert_int_eq(k, points);
    printf("reliability: %ld allocation points failed in turn; per step:", points);
    for (int i = 0; i < NSTEPS; i++)
        if (failed_in[i] > 0) printf(" %s=%d", STEPS[i].name, failed_in[i]);
    printf("\n");
    world_destroy(&ref);
    ck_assert_int_eq(ref_as.allocs, ref_as.frees);
}
END_TEST

/* From allocation k on, every allocation fails.  Whatever still exists must
   answer each later call with OK or a clean error, and destroying it must
   free everything. */
START_TEST(test_alloc_fail_sticky)
{
    long k;
    for (k = 0;; k++) {
        alloc_state as = {0, 0, 0, k, 1, 0};
        world w;
        world_init(&w, &SMALL, &as);
        int any_failed = 0;
        for (int i = 0; i < NSTEPS; i++) {
            mgrad_status s = STEPS[i].fn(&w);
            if (s == SKIPPED) continue;
            ck_assert_msg(s == MGRAD_OK || s == MGRAD_ERR_NOMEM || s == MGRAD_ERR_ORDER,
                          "k=%ld: %s returned %s (%s)", k, STEPS[i].name,
                          mgrad_status_string(s), mgrad_context_last_error(w.ctx));
            if (s != MGRAD_OK) any_failed = 1;
        }
        world_destroy(&w);
        ck_assert_msg(as.allocs == as.frees, "k=%ld: %ld blocks allocated, %ld freed", k,
                      as.allocs, as.frees);
        if (!any_failed) break;
    }
    ck_assert_int_gt(k, 20);
    printf("reliability: sticky failure from each of %ld allocation points\n", k);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("alloc_fail");
    TCase *tc = tcase_create("alloc");
    tcase_add_test(tc, test_alloc_fail_each_point);
    tcase_add_test(tc, test_alloc_fail_sticky);
    suite_add_tcase(s, tc);
    return s;
}
