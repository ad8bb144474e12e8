/*
 * test_ops_pool.c - the pooling ops (lib/graph/ops_pool.c: average, max,
 * global average) in f64: their four passes against central finite
 * differences on random shapes (imageops.h), and max pooling's tie rule.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fdcheck.h"
#include "imageops.h"

/* Max pooling: the first maximum of a window takes the gradient on ties
   (torch). */
START_TEST(test_max_pool_values)
{
    mgrad_context *ctx = new_ctx();
    int64_t shape[3] = {1, 2, 4};
    mgr_graph g;
    ck_assert_int_eq(mgr_graph_create(ctx, 3, shape, &g), MGRAD_OK);
    add_window(ctx, &g, MGR_OP_MAX_POOL, 0, 2, 2);
    double x[8] = {1, 3, 5, 5, 3, 2, 5, 0}; /* windows {1,3,3,2}, {5,5,5,0} */
    double ob[2] = {10, 20}, xbar[8] = {0};
    mgr_graph_ws_f64 *ws = NULL;
    ck_assert_int_eq(mgr_graph_ws_create_f64(ctx, &g, 1, &ws), MGRAD_OK);
    mgr_graph_forward_f64(&g, ws, 1, NULL, x);
    ck_assert(ws->val[1][0] == 3 && ws->val[1][1] == 5);
    mgr_graph_backward_f64(&g, ws, 1, NULL, x, ob, NULL, xbar);
    double want[8] = {0, 10, 20, 0, 0, 0, 0, 0};
    for (int i = 0; i < 8; i++) ck_assert_msg(xbar[i] == want[i], "xbar[%d] = %g", i, xbar[i]);
    mgr_graph_ws_destroy_f64(ctx, ws);
    mgr_graph_free(ctx, &g);
    mgrad_context_destroy(ctx);
}
END_TEST

Suite *make_suite(void); /* called by runner.c */

Suite *make_suite(void)
{
    Suite *s = suite_create("ops_pool");
    TCase *tc = tcase_create("ops");
    tcase_add_loop_test(tc, test_image_op_fd, CASE_AVG_POOL, CASE_BATCH_NORM);
    tcase_add_test(tc, test_max_pool_values);
    suite_add_tcase(s, tc);
    return s;
}
