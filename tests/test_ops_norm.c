/*
 * test_ops_norm.c - the normalisation ops (lib/graph/ops_norm.c: batch norm
 * on images and on 1-D features, layer norm) in f64: their four passes
 * against central finite differences on random shapes (imageops.h), and
 * batch norm's output statistics against the direct formula.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fdcheck.h"
#include "imageops.h"

/* Batch norm output has per-channel mean β and variance γ² v/(v+ε). */
START_TEST(test_batch_norm_values)
{
    mgrad_context *ctx = new_ctx();
    mgr_graph g;
    mgr_graph_ws_f64 *ws = NULL;
    /* batch norm on [2, 1, 3] features, 4 rows */
    int64_t s2[3] = {2, 1, 3};
    ck_assert_int_eq(mgr_graph_create(ctx, 3, s2, &g), MGRAD_OK);
    add_norm(ctx, &g, MGR_OP_BATCH_NORM, 0, 1e-5);
    ck_assert_int_eq(g.num_params, 4);
    double theta[4] = {1.5, -0.5, 0.25, 2.0}; /* γ then β */
    double xb[24];
    uint64_t st = 3;
    tu_fill(xb, 24, &st, 2.0);
    ck_assert_int_eq(mgr_graph_ws_create_f64(ctx, &g, 4, &ws), MGRAD_OK);
    mgr_graph_forward_f64(&g, ws, 4, theta, xb);
    for (int c = 0; c < 2; c++) {
        double mx = 0, vx = 0, my = 0, vy = 0;
        for (int r = 0; r < 4; r++)
            for (int j = 0; j < 3; j++) mx += xb[r * 6 + c * 3 + j] / 12;
        for (int r = 0; r < 4; r++)
            for (int j = 0; j < 3; j++) vx += pow(xb[r * 6 + c * 3 + j] - mx, 2) / 12;
        for (int r = 0; r < 4; r++)
            for (int j = 0; j < 3; j++) my += ws->val[1][r * 6 + c * 3 + j] / 12;
        for (int r = 0; r < 4; r++)
            for (int j = 0; j < 3; j++) vy += pow(ws->val[1][r * 6 + c * 3 + j] - my, 2) / 12;
        ck_assert(fabs(my - theta[2 + c]) < 1e-12);
        ck_assert(fabs(vy - theta[c] * theta[c] * vx / (vx + 1e-5)) < 1e-12);
    }
    mgr_graph_ws_destroy_f64(ctx, ws);
    mgr_graph_free(ctx, &g);
    mgrad_context_destroy(ctx);
}
END_TEST

Suite *make_suite(void); /* called by runner.c */

Suite *make_suite(void)
{
    Suite *s = suite_create("ops_norm");
    TCase *tc = tcase_create("ops");
    tcase_add_loop_test(tc, test_image_op_fd, CASE_BATCH_NORM, CASE_DROPOUT);
    tcase_add_test(tc, test_batch_norm_values);
    suite_add_tcase(s, tc);
    return s;
}
