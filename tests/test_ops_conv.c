/*
 * test_ops_conv.c - the conv2d op (lib/graph/ops_conv.c) in f64: its four
 * passes against central finite differences on random shapes, strides and
 * paddings (imageops.h), and its forward (and, on every small shape, its
 * backward) against the textbook convolution.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fdcheck.h"
#include "imageops.h"

/* conv2d forward against the textbook 7-loop convolution. */
START_TEST(test_conv_reference)
{
    for (uint64_t seed = 1; seed <= 6; seed++) {
        uint64_t st = seed * 31;
        mgrad_context *ctx = new_ctx();
        int64_t C = tu_rand_int(&st, 1, 3), H = tu_rand_int(&st, 2, 8), W = tu_rand_int(&st, 2, 8);
        int64_t shape[3] = {C, H, W};
        mgr_graph g;
        ck_assert_int_eq(mgr_graph_create(ctx, 3, shape, &g), MGRAD_OK);
        int32_t k = (int32_t)tu_rand_int(&st, 1, H < W ? H : W);
        int32_t s = (int32_t)tu_rand_int(&st, 1, 3), p = (int32_t)tu_rand_int(&st, 0, k - 1);
        int64_t OC = tu_rand_int(&st, 1, 4);
        add_conv(ctx, &g, 0, OC, k, s, p);
        const mgr_node *o = mgr_graph_output(&g);
        int64_t OH = o->shape[1], OW = o->shape[2];
        ck_assert_int_eq(OH, (H + 2 * p - k) / s + 1);
        ck_assert_int_eq(OW, (W + 2 * p - k) / s + 1);
        size_t rows = 2, P = (size_t)g.num_params;
        ck_assert_uint_eq(P, (size_t)(OC * C * k * k + OC));
        double *theta = dalloc(P), *x = dalloc(rows * (size_t)(C * H * W));
        tu_fill(theta, P, &st, 1.0);
        tu_fill(x, rows * (size_t)(C * H * W), &st, 1.0);
        mgr_graph_ws_f64 *ws = NULL;
        ck_assert_int_eq(mgr_graph_ws_create_f64(ctx, &g, rows, &ws), MGRAD_OK);
        mgr_graph_forward_f64(&g, ws, rows, theta, x);
        for (size_t r = 0; r < rows; r++)
            for (int64_t oc = 0; oc < OC; oc++)
                for (int64_t oh = 0; oh < OH; oh++)
                    for (int64_t ow = 0; ow < OW; ow++) {
                        double ref = theta[OC * C * k * k + oc], mag = fabs(ref);
                        for (int64_t c = 0; c < C; c++)
                            for (int64_t i = 0; i < k; i++)
                                for (int64_t j = 0; j < k; j++) {
                                    int64_t hh = oh * s - p + i, ww = ow * s - p + j;
                                    if (hh < 0 || hh >= H || ww < 0 || ww >= W) continue;
                                    double t = theta[((oc * C + c) * k + i) * k + j] *
                                               x[r * (size_t)(C * H * W) + (size_t)((c * H + hh) * W + ww)];
                                    ref += t;
                                    mag += fabs(t);
                                }
                        double got = ws->val[1][r * (size_t)(OC * OH * OW) +
                                                (size_t)((oc * OH + oh) * OW + ow)];
                        /* Both sum the bias and at most C k² products, in
                           different orders (the op through the BLAS, with
                           the kernel's blocking and FMA or not): each is
                           within γ_n Σ|terms| of the exact sum, n = C k² + 2,
                           γ_n = n u / (1 − n u) (Higham §3.5).  A wrong
                           index is off by O(|terms|). */
                        double n = (double)(C * k * k + 2), u = 0x1p-53;
                        double bound = 2 * n * u / (1 - n * u) * mag;
                        ck_assert_msg(fabs(got - ref) <= bound,
                                      "conv seed %llu: %.17g vs %.17g, bound %.3g",
                                      (unsigned long long)seed, got, ref, bound);
                    }
        mgr_graph_ws_destroy_f64(ctx, ws);
        mgr_graph_free(ctx, &g);
        free(theta);
        free(x);
        mgrad_context_destroy(ctx);
    }
}
END_TEST

/* conv2d's forward, x̄ and W̄ against the textbook sums on every small
   shape: kernel 1-3, stride 1-3, every padding below the kernel, images
   from the kernel's side to 6 x 7, and 11 and 16 on a side.  This reaches
   each special case of the im2col and col2im copies (stride 1 "same",
   stride 2, other strides, rows and columns entirely in the padding) at
   every image edge, and both block layouts (several small images per
   block; one image of MGR_CONV_ONE_EXAMPLE_N positions or more). */
START_TEST(test_conv_all_small_shapes)
{
    uint64_t st = 99;
    int cases = 0;
    for (int32_t k = 1; k <= 3; k++)
        for (int32_t s = 1; s <= 3; s++)
            for (int32_t p = 0; p < k; p++)
                for (int64_t H = k; H <= 16; H += H < 6 ? 1 : 5)
                    for (int64_t W = k; W <= 16; W += W < 7 ? 1 : 9) {
                        mgrad_context *ctx = new_ctx();
                        int64_t C = 2, OC = 2, shape[3] = {C, H, W};
                        mgr_graph g;
                        ck_assert_int_eq(mgr_graph_create(ctx, 3, shape, &g), MGRAD_OK);
                        add_conv(ctx, &g, 0, OC, k, s, p);
                        const mgr_node *o = mgr_graph_output(&g);
                        int64_t OH = o->shape[1], OW = o->shape[2];
                        size_t rows = 3, P = (size_t)g.num_params, in = (size_t)(C * H * W);
                        size_t out = (size_t)(OC * OH * OW);
                        double *theta = dalloc(P), *x = dalloc(rows * in);
                        double *yb = dalloc(rows * out), *xb = dalloc(rows * in), *pb = dalloc(P);
                        double *ref_y = dalloc(rows * out), *mag_y = dalloc(rows * out);
                        double *ref_xb = dalloc(rows * in), *mag_xb = dalloc(rows * in);
                        double *ref_pb = dalloc(P), *mag_pb = dalloc(P);
                        tu_fill(theta, P, &st, 1.0);
                        tu_fill(x, rows * in, &st, 1.0);
                        tu_fill(yb, rows * out, &st, 1.0);
                        memset(xb, 0, rows * in * sizeof *xb);
                        memset(pb, 0, P * sizeof *pb);
                        memset(ref_xb, 0, rows * in * sizeof *xb);
                        memset(mag_xb, 0, rows * in * sizeof *xb);
                        memset(ref_pb, 0, P * sizeof *pb);
                        memset(mag_pb, 0, P * sizeof *pb);
                        const double *b = theta + OC * C * k * k;
                        for (size_t r = 0; r < rows; r++)
                            for (int64_t oc = 0; oc < OC; oc++)
                                for (int64_t oh = 0; oh < OH; oh++)
                                    for (int64_t ow = 0; ow < OW; ow++) {
                                        size_t yi = r * out + (size_t)((oc * OH + oh) * OW + ow);
                                        ref_y[yi] = b[oc];
                                        mag_y[yi] = fabs(b[oc]);
                                        ref_pb[OC * C * k * k + oc] += yb[yi];
                                        mag_pb[OC * C * k * k + oc] += fabs(yb[yi]);
                                        for (int64_t c = 0; c < C; c++)
                                            for (int64_t i = 0; i < k; i++)
                                                for (int64_t j = 0; j < k; j++) {
                                                    int64_t hh = oh * s - p + i, ww = ow * s - p + j;
                                                    if (hh < 0 || hh >= H || ww < 0 || ww >= W) continue;
                                                    size_t wi = (size_t)(((oc * C + c) * k + i) * k + j);
                                                    size_t xi = r * in + (size_t)((c * H + hh) * W + ww);
                                                    ref_y[yi] += theta[wi] * x[xi];
                                                    mag_y[yi] += fabs(theta[wi] * x[xi]);
                                                    ref_xb[xi] += theta[wi] * yb[yi];
                                                    mag_xb[xi] += fabs(theta[wi] * yb[yi]);
                                                    ref_pb[wi] += yb[yi] * x[xi];
                                                    mag_pb[wi] += fabs(yb[yi] * x[xi]);
                                                }
                                    }
                        mgr_graph_ws_f64 *ws = NULL;
                        ck_assert_int_eq(mgr_graph_ws_create_f64(ctx, &g, rows, &ws), MGRAD_OK);
                        mgr_graph_forward_f64(&g, ws, rows, theta, x);
                        mgr_graph_backward_f64(&g, ws, rows, theta, x, yb, pb, xb);
                        /* Each side sums at most n terms in its own order:
                           within 2 γ_n Σ|terms| of each other (as above);
                           n bounds the terms of any entry (a weight
                           gradient sums over every row and position). */
                        double n = (double)(rows * out + C * k * k + 2), u = 0x1p-53;
                        double g2 = 2 * n * u / (1 - n * u);
                        for (size_t t = 0; t < rows * out; t++)
                            ck_assert_msg(fabs(ws->val[1][t] - ref_y[t]) <= g2 * mag_y[t],
                                          "y: k %d s %d p %d H %lld W %lld", k, s, p,
                                          (long long)H, (long long)W);
                        for (size_t t = 0; t < rows * in; t++)
                            ck_assert_msg(fabs(xb[t] - ref_xb[t]) <= g2 * mag_xb[t],
                                          "xbar: k %d s %d p %d H %lld W %lld", k, s, p,
                                          (long long)H, (long long)W);
                        for (size_t t = 0; t < P; t++)
                            ck_assert_msg(fabs(pb[t] - ref_pb[t]) <= g2 * mag_pb[t],
                                          "wbar: k %d s %d p %d H %lld W %lld", k, s, p,
                                          (long long)H, (long long)W);
                        cases++;
                        mgr_graph_ws_destroy_f64(ctx, ws);
                        mgr_graph_free(ctx, &g);
                        free(theta), free(x), free(yb), free(xb), free(pb);
                        free(ref_y), free(mag_y), free(ref_xb), free(mag_xb);
                        free(ref_pb), free(mag_pb);
                        mgrad_context_destroy(ctx);
                    }
    ck_assert_int_gt(cases, 300);
}
END_TEST

Suite *make_suite(void); /* called by runner.c */

Suite *make_suite(void)
{
    Suite *s = suite_create("ops_conv");
    TCase *tc = tcase_create("ops");
    tcase_add_loop_test(tc, test_image_op_fd, CASE_CONV, CASE_AVG_POOL);
    tcase_add_test(tc, test_conv_reference);
    tcase_add_test(tc, test_conv_all_small_shapes);
    suite_add_tcase(s, tc);
    return s;
}
