/*
 * test_threads.c - thread safety: two contexts in two threads at once give
 * the bits they give one after the other, and each frees everything.
 *
 * The scenario each thread runs: scenario.h.  docs/reliability.md describes
 * the failure-mode suites.
 */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "metagrad.h"
#include "scenario.h"
#include "testutil.h"

/* ---- 3. thread safety ---------------------------------------------------- */

static const world_config THREAD_CFG[2] = {
    {MGRAD_DTYPE_F64, 1, 16, 48, 4, 64, 32, 16, 10, 16, MGRAD_CHECKPOINT_REPLAY, 6},
    {MGRAD_DTYPE_F32, 2, 12, 40, 5, 48, 24, 12, 12, 8, MGRAD_CHECKPOINT_STORE_ALL, 0},
};

typedef struct thread_job {
    const world_config *cfg;
    world w;
    alloc_state as;
} thread_job;

static void *thread_main(void *arg)
{
    thread_job *j = arg;
    memset(&j->as, 0, sizeof j->as);
    j->as.fail_at = -1;
    world_init(&j->w, j->cfg, &j->as);
    world_run_all(&j->w);
    return NULL;
}

START_TEST(test_two_contexts_two_threads)
{
    thread_job seq[2], par[2];
    for (int i = 0; i < 2; i++) {
        seq[i].cfg = &THREAD_CFG[i];
        thread_main(&seq[i]);
    }
    for (int rep = 0; rep < 3; rep++) {
        pthread_t th[2];
        for (int i = 0; i < 2; i++) {
            par[i].cfg = &THREAD_CFG[i];
            ck_assert_int_eq(pthread_create(&th[i], NULL, thread_main, &par[i]), 0);
        }
        for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        for (int i = 0; i < 2; i++) {
            world_compare(&seq[i].w, &par[i].w, i == 0 ? "thread 0" : "thread 1");
            world_destroy(&par[i].w);
            ck_assert_int_eq(par[i].as.allocs, par[i].as.frees);
        }
    }
    for (int i = 0; i < 2; i++) world_destroy(&seq[i].w);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("threads");
    tcase_add_test(tc, test_two_contexts_two_threads);
    suite_add_tcase(s, tc);
    return s;
}
