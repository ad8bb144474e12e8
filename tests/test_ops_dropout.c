/*
 * test_ops_dropout.c - the dropout op (lib/graph/ops_dropout.c) in f64: its
 * four passes against central finite differences with the mask fixed by
 * (seed, step) (imageops.h), and the mask itself: its rate, its scale, its
 * replay and the identity outside training.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fdcheck.h"
#include "imageops.h"

/* Dropout: about p of the values are zeroed, the rest scaled by 1/(1−p);
   the mask depends on (seed, step) and nothing else; training = 0 is the
   identity. */
START_TEST(test_dropout_mask)
{
    mgrad_context *ctx = new_ctx();
    int64_t shape[1] = {1000};
    mgr_graph g;
    ck_assert_int_eq(mgr_graph_create(ctx, 1, shape, &g), MGRAD_OK);
    mgr_node n = mk(MGR_OP_DROPOUT, 0);
    n.rate = 0.3;
    add_node(ctx, &g, n);
    double *x = dalloc(2000), *y1 = dalloc(2000);
    for (int i = 0; i < 2000; i++) x[i] = 1.0;
    mgr_graph_ws_f64 *ws = NULL;
    ck_assert_int_eq(mgr_graph_ws_create_f64(ctx, &g, 2, &ws), MGRAD_OK);
    ck_assert_int_eq(ws->training, 1);
    ws->seed = 9;
    ws->step = 4;
    mgr_graph_forward_f64(&g, ws, 2, NULL, x);
    int zeros = 0;
    for (int i = 0; i < 2000; i++) {
        double v = ws->val[1][i];
        ck_assert(v == 0 || fabs(v - 1 / 0.7) < 1e-15);
        zeros += v == 0;
    }
    ck_assert_msg(zeros > 520 && zeros < 680, "%d of 2000 dropped at p = 0.3", zeros);
    memcpy(y1, ws->val[1], 2000 * sizeof(double));
    mgr_graph_forward_f64(&g, ws, 2, NULL, x);
    ck_assert(memcmp(y1, ws->val[1], 2000 * sizeof(double)) == 0); /* replay */
    ws->step = 5;
    mgr_graph_forward_f64(&g, ws, 2, NULL, x);
    ck_assert(memcmp(y1, ws->val[1], 2000 * sizeof(double)) != 0); /* another step */
    ws->training = 0;
    mgr_graph_forward_f64(&g, ws, 2, NULL, x);
    for (int i = 0; i < 2000; i++) ck_assert(ws->val[1][i] == 1.0);
    mgr_graph_ws_destroy_f64(ctx, ws);
    mgr_graph_free(ctx, &g);
    free(x);
    free(y1);
    mgrad_context_destroy(ctx);
}
END_TEST

Suite *make_suite(void); /* called by runner.c */

Suite *make_suite(void)
{
    Suite *s = suite_create("ops_dropout");
    TCase *tc = tcase_create("ops");
    tcase_add_loop_test(tc, test_image_op_fd, CASE_DROPOUT, CASE_FLATTEN);
    tcase_add_test(tc, test_dropout_mask);
    suite_add_tcase(s, tc);
    return s;
}
