/*
 * test_destroy_order.c - every order of destroying the six handles of a
 * scenario (context, model, three data sets, run) frees everything, and a
 * run whose other handles are gone still trains and reverses.
 *
 * The allocator and the scenario: scenario.h.  docs/reliability.md
 * describes the failure-mode suites.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "metagrad.h"
#include "scenario.h"
#include "testutil.h"

/* ---- 5. destroy order --------------------------------------------------- */

enum { NH = 6 };

static void destroy_handle(world *w, int which)
{
    switch (which) {
    case 0: mgrad_context_destroy(w->ctx); w->ctx = NULL; break;
    case 1: mgrad_model_destroy(w->model); w->model = NULL; break;
    case 2: mgrad_dataset_destroy(w->train); w->train = NULL; break;
    case 3: mgrad_dataset_destroy(w->val); w->val = NULL; break;
    case 4: mgrad_dataset_destroy(w->pool); w->pool = NULL; break;
    default: mgrad_run_destroy(w->run); w->run = NULL; break;
    }
}

static int next_permutation(int *a, int n)
{
    int i = n - 2;
    while (i >= 0 && a[i] >= a[i + 1]) i--;
    if (i < 0) return 0;
    int j = n - 1;
    while (a[j] <= a[i]) j--;
    int t = a[i];
    a[i] = a[j];
    a[j] = t;
    for (int l = i + 1, r = n - 1; l < r; l++, r--) {
        t = a[l];
        a[l] = a[r];
        a[r] = t;
    }
    return 1;
}

START_TEST(test_destroy_orders)
{
    int order[NH] = {0, 1, 2, 3, 4, 5};
    long count = 0;
    /* Only the run's creation and registrations: training is shared by
       every order and adds nothing to what destruction frees. */
    do {
        alloc_state as = {0, 0, 0, -1, 0, 0};
        world w;
        world_init(&w, &SMALL, &as);
        for (int i = 0; i <= 12; i++) ck_assert_int_eq(STEPS[i].fn(&w), MGRAD_OK);
        for (int i = 0; i < NH; i++) {
            /* The run outlives the others' handles and still works. */
            if (w.run != NULL && i == NH - 1) {
                mgrad_status s = mgrad_run_train(w.run, NULL);
                ck_assert_msg(s == MGRAD_OK, "train with only the run left: %s",
                              mgrad_status_string(s));
                ck_assert_int_eq(mgrad_run_reverse(w.run), MGRAD_OK);
            }
            destroy_handle(&w, order[i]);
        }
        ck_assert_msg(as.allocs == as.frees, "order %d%d%d%d%d%d: %ld allocated, %ld freed",
                      order[0], order[1], order[2], order[3], order[4], order[5], as.allocs,
                      as.frees);
        count++;
    } while (next_permutation(order, NH));
    ck_assert_int_eq(count, 720);
    printf("reliability: %ld destroy orders of %d handles\n", count, NH);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("destroy_order");
    TCase *tc = tcase_create("destroy");
    tcase_add_test(tc, test_destroy_orders);
    suite_add_tcase(s, tc);
    return s;
}
