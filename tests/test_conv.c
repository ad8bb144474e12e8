/*
 * test_conv.c - the convolutional ops (conv2d, average / max / global
 * average pooling, batch norm, layer norm, dropout, flatten, residual add on
 * images) in f64: every op's four passes against central finite differences
 * on random shapes with several seeds, alone and between parameterised
 * layers; then whole training runs through the public API of small CNNs
 * with batch norm: input-pixel and per-example-weight metagradients against
 * finite differences of whole runs, f32 against f64, dropout replay.
 *
 * The finite-difference harness and its error budget: fdcheck.h.
 * Graphs are built with mgr_graph_append, so that shapes come from the same
 * validation the public API uses.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fdcheck.h"
#include "metagrad.h"

/* ---- graphs built through mgr_graph_append ------------------------------- */

static mgr_node mk(mgr_op_kind kind, int32_t in0)
{
    mgr_node n;
    memset(&n, 0, sizeof n);
    n.kind = kind;
    n.in0 = in0;
    n.in1 = -1;
    n.scale = 1.0;
    n.init = MGRAD_INIT_DEFAULT;
    return n;
}

static int32_t add_node(mgrad_context *ctx, mgr_graph *g, mgr_node n)
{
    mgrad_status s = mgr_graph_append(ctx, g, n);
    ck_assert_msg(s == MGRAD_OK, "append: %s", mgrad_context_last_error(ctx));
    return g->num_nodes - 1;
}

static int32_t add_conv(mgrad_context *ctx, mgr_graph *g, int32_t in0, int64_t oc,
                        int32_t k, int32_t s, int32_t p)
{
    mgr_node n = mk(MGR_OP_CONV2D, in0);
    n.shape[0] = oc;
    n.kernel = k;
    n.stride = s;
    n.padding = p;
    return add_node(ctx, g, n);
}

static int32_t add_window(mgrad_context *ctx, mgr_graph *g, mgr_op_kind kind, int32_t in0,
                          int32_t k, int32_t s)
{
    mgr_node n = mk(kind, in0);
    n.kernel = k;
    n.stride = s;
    return add_node(ctx, g, n);
}

static int32_t add_norm(mgrad_context *ctx, mgr_graph *g, mgr_op_kind kind, int32_t in0,
                        double eps)
{
    mgr_node n = mk(kind, in0);
    n.eps = eps;
    return add_node(ctx, g, n);
}

static int32_t add_simple(mgrad_context *ctx, mgr_graph *g, mgr_op_kind kind, int32_t in0)
{
    return add_node(ctx, g, mk(kind, in0));
}

static int32_t add_dense(mgrad_context *ctx, mgr_graph *g, int32_t in0, int64_t units)
{
    mgr_node n = mk(MGR_OP_DENSE, in0);
    n.shape[0] = units;
    return add_node(ctx, g, n);
}

/* ---- the op cases --------------------------------------------------------- */

typedef enum op_case {
    CASE_CONV,
    CASE_AVG_POOL,
    CASE_MAX_POOL,
    CASE_GLOBAL_AVG_POOL,
    CASE_BATCH_NORM,
    CASE_BATCH_NORM_1D,
    CASE_LAYER_NORM,
    CASE_DROPOUT,
    CASE_FLATTEN,
    CASE_ADD_3D,
    NUM_CASES
} op_case;

static const char *CASE_NAMES[NUM_CASES] = {
    "conv2d", "avg_pool", "max_pool", "global_avg_pool", "batch_norm",
    "batch_norm (1-D features)", "layer_norm", "dropout", "flatten", "add (3-D)",
};

/* Build the graph of `c` on a random [C, H, W] input (or 1-D for
   CASE_BATCH_NORM_1D).  inner = 0: the op reads the input.  inner = 1: a
   conv2d (or dense) layer feeds the op and a dense layer reads it, so that
   the op's adjoints are workspace buffers and second-order terms of the
   parameters pass through it. */
static void build_case(mgrad_context *ctx, mgr_graph *g, op_case c, int inner,
                       uint64_t *st, size_t *rows)
{
    int64_t C = tu_rand_int(st, 1, 3), H = tu_rand_int(st, 3, 7), W = tu_rand_int(st, 3, 7);
    *rows = (size_t)tu_rand_int(st, 1, 3);
    if (c == CASE_BATCH_NORM || c == CASE_BATCH_NORM_1D) *rows = (size_t)tu_rand_int(st, 2, 4);
    if (c == CASE_BATCH_NORM_1D) {
        int64_t shape[1] = {tu_rand_int(st, 1, 5)};
        ck_assert_int_eq(mgr_graph_create(ctx, 1, shape, g), MGRAD_OK);
    } else {
        int64_t shape[3] = {C, H, W};
        ck_assert_int_eq(mgr_graph_create(ctx, 3, shape, g), MGRAD_OK);
    }
    int32_t in = 0;
    if (inner) {
        if (c == CASE_BATCH_NORM_1D)
            in = add_dense(ctx, g, 0, tu_rand_int(st, 1, 4));
        else
            in = add_conv(ctx, g, 0, tu_rand_int(st, 1, 3), 3, 1, 1); /* keeps H, W */
    }
    const mgr_node *x = &g->nodes[in];
    int64_t h = x->shape[1], w = x->shape[2];
    int64_t hw = h < w ? h : w;
    int32_t k;
    switch (c) {
    case CASE_CONV: {
        k = (int32_t)tu_rand_int(st, 1, 3);
        int32_t s = (int32_t)tu_rand_int(st, 1, 2), p = (int32_t)tu_rand_int(st, 0, k - 1);
        add_conv(ctx, g, in, tu_rand_int(st, 1, 3), k, s, p);
        break;
    }
    case CASE_AVG_POOL:
    case CASE_MAX_POOL:
        k = (int32_t)tu_rand_int(st, 1, hw < 3 ? hw : 3);
        add_window(ctx, g, c == CASE_AVG_POOL ? MGR_OP_AVG_POOL : MGR_OP_MAX_POOL, in, k,
                   (int32_t)tu_rand_int(st, 1, 3));
        break;
    case CASE_GLOBAL_AVG_POOL: add_simple(ctx, g, MGR_OP_GLOBAL_AVG_POOL, in); break;
    case CASE_BATCH_NORM:
    case CASE_BATCH_NORM_1D: add_norm(ctx, g, MGR_OP_BATCH_NORM, in, 1e-3); break;
    case CASE_LAYER_NORM: add_norm(ctx, g, MGR_OP_LAYER_NORM, in, 1e-3); break;
    case CASE_DROPOUT: {
        mgr_node n = mk(MGR_OP_DROPOUT, in);
        n.rate = 0.4;
        add_node(ctx, g, n);
        break;
    }
    case CASE_FLATTEN: add_simple(ctx, g, MGR_OP_FLATTEN, in); break;
    case CASE_ADD_3D: {
        /* y = conv(x) + x: a same-shape conv (3x3, padding 1) feeds in0. */
        int32_t cv = add_conv(ctx, g, in, g->nodes[in].shape[0], 3, 1, 1);
        mgr_node n = mk(MGR_OP_ADD, cv);
        n.in1 = in;
        add_node(ctx, g, n);
        break;
    }
    case NUM_CASES: break;
    }
    if (inner) add_dense(ctx, g, g->num_nodes - 1, tu_rand_int(st, 1, 3));
}

static void check_case(op_case c, int inner, uint64_t seed)
{
    uint64_t st = seed * 1000003 + (uint64_t)c * 7 + (uint64_t)inner;
    mgrad_context *ctx = new_ctx();
    mgr_graph g;
    size_t rows = 0;
    build_case(ctx, &g, c, inner, &st, &rows);
    char label[128];
    const mgr_node *o = &g.nodes[inner ? g.num_nodes - 2 : g.num_nodes - 1];
    const mgr_node *x = &g.nodes[o->in0];
    snprintf(label, sizeof label, "%s%s seed %llu [%zu x %lldx%lldx%lld -> %lldx%lldx%lld]",
             inner ? "inner " : "", CASE_NAMES[c], (unsigned long long)seed, rows,
             (long long)x->shape[0], (long long)x->shape[1], (long long)x->shape[2],
             (long long)o->shape[0], (long long)o->shape[1], (long long)o->shape[2]);
    fd_problem pb;
    fd_setup(&pb, ctx, &g, rows, seed, 0.0);
    fd_check_graph(&pb, label, 1);
    fd_check_graph(&pb, label, 0);
    fd_teardown(&pb);
    mgr_graph_free(ctx, &g);
    finish_ctx(ctx);
}

/* _i: the case.  Each op alone, then between two layers, on 5 seeds. */
START_TEST(test_op_fd)
{
    fd_worst_err = 0;
    for (uint64_t seed = 1; seed <= 5; seed++) {
        check_case((op_case)_i, 0, seed);
        check_case((op_case)_i, 1, seed);
    }
    printf("fd %-26s worst rel err %.2e\n", CASE_NAMES[_i], fd_worst_err);
}
END_TEST

/* ---- op values against direct formulas ---------------------------------- */

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

/* Max pooling: the first maximum of a window takes the gradient on ties
   (torch); batch norm output has per-channel mean β and variance γ² v/(v+ε). */
START_TEST(test_pool_norm_values)
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

/* ---- shape validation and the public builders ----------------------------- */

START_TEST(test_shapes_and_api)
{
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.seed = 3;
    mgrad_context *ctx = NULL;
    ck_assert_int_eq(mgrad_context_create(&ctx, &co), MGRAD_OK);
    mgrad_model *m = NULL;
    int64_t shape[3] = {1, 28, 28}, n = 0;
    ck_assert_int_eq(mgrad_model_create(&m, ctx, 3, shape), MGRAD_OK);
    /* refusals leave the model unchanged and say what to fix */
    ck_assert_int_eq(mgrad_model_add_conv2d(m, 0, 3, 1, 1, MGRAD_INIT_DEFAULT), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_model_add_conv2d(m, 4, 3, 0, 1, MGRAD_INIT_DEFAULT), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_model_add_conv2d(m, 4, 3, 1, 3, MGRAD_INIT_DEFAULT), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_model_add_conv2d(m, 4, 29, 1, 0, MGRAD_INIT_DEFAULT), MGRAD_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(mgrad_context_last_error(ctx), "window"));
    ck_assert_int_eq(mgrad_model_add_batch_norm(m, 0), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_model_add_layer_norm(m, NAN), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_model_add_dropout(m, 1.0), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_model_add_dropout(m, -0.1), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_model_add_max_pool(m, 0, 0), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_model_add_resnet_block(m, 0, 1), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_model_num_params(m, &n), MGRAD_OK);
    ck_assert_int_eq(n, 0);

    /* a small ResNet: stem, two blocks (the second with a projection), head */
    ck_assert_int_eq(mgrad_model_add_conv2d(m, 4, 3, 1, 1, MGRAD_INIT_DEFAULT), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_batch_norm(m, 1e-5), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_activation(m, MGRAD_ACTIVATION_RELU), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_max_pool(m, 2, 0), MGRAD_OK);   /* 4x14x14 */
    ck_assert_int_eq(mgrad_model_add_resnet_block(m, 4, 1), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_resnet_block(m, 8, 2), MGRAD_OK); /* 8x7x7 */
    int32_t mark = -1;
    ck_assert_int_eq(mgrad_model_mark(m, &mark), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_avg_pool(m, 7, 0), MGRAD_OK);   /* 8x1x1 */
    ck_assert_int_eq(mgrad_model_add_residual(m, mark), MGRAD_ERR_SHAPE);
    ck_assert_int_eq(mgrad_model_add_flatten(m), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_global_avg_pool(m), MGRAD_ERR_SHAPE); /* 1-D now */
    ck_assert_int_eq(mgrad_model_add_conv2d(m, 4, 1, 1, 0, MGRAD_INIT_DEFAULT), MGRAD_ERR_SHAPE);
    ck_assert_int_eq(mgrad_model_add_layer_norm(m, 1e-5), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dropout(m, 0.1), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(m, 10, MGRAD_INIT_DEFAULT), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_scale(m, 0.5), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_output_size(m, &n), MGRAD_OK);
    ck_assert_int_eq(n, 10);
    /* stem 4·9+4, bn 8; block1 2·(4·36+4) + 2·8; block2 (8·36+8) + 16 +
       (8·72+8) + 16 + projection (8·4+8) + 16; ln 16; dense 8·10+10 */
    int64_t want = 40 + 8 + 2 * 148 + 16 + 296 + 16 + 584 + 16 + 40 + 16 + 16 + 90;
    ck_assert_int_eq(mgrad_model_num_params(m, &n), MGRAD_OK);
    ck_assert_int_eq(n, want);
    /* γ = 1, β = 0 for the stem's batch norm; conv weights in ±1/sqrt(9) */
    double *theta = dalloc((size_t)n);
    ck_assert_int_eq(mgrad_model_get_params(m, MGRAD_DTYPE_F64, theta, n), MGRAD_OK);
    for (int i = 0; i < 40; i++) ck_assert(fabs(theta[i]) <= 1.0 / 3.0);
    for (int i = 40; i < 44; i++) ck_assert(theta[i] == 1.0);
    for (int i = 44; i < 48; i++) ck_assert(theta[i] == 0.0);
    /* redrawing with the same seed reproduces θ0 */
    double *again = dalloc((size_t)n);
    ck_assert_int_eq(mgrad_model_init_params(m, 3), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_get_params(m, MGRAD_DTYPE_F64, again, n), MGRAD_OK);
    ck_assert(memcmp(theta, again, (size_t)n * sizeof(double)) == 0);
    free(theta);
    free(again);
    mgrad_model_destroy(m);
    mgrad_context_destroy(ctx);
}
END_TEST

/* ---- whole runs through the public API ----------------------------------- */

enum { NTRAIN = 12, NVAL = 8, IMG = 6, NCLS = 3, T = 6, B = 4 };

typedef struct cnn {
    mgrad_context *ctx;
    mgrad_model *model;
    mgrad_dataset *train, *val;
    mgrad_run *run;
} cnn;

/* variant 0: conv-bn-tanh, conv-bn-gelu + residual, avg pool, flatten,
   dense, scale.  variant 1: conv-gelu-bn (bn after the activation),
   max pool, layer norm, dropout, dense, scale.  variant 2: a ResNet block
   (relu) with a projection, global average pooling. */
static void cnn_setup(cnn *f, int variant, mgrad_dtype dtype)
{
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = dtype;
    co.seed = 11;
    ck_assert_int_eq(mgrad_context_create(&f->ctx, &co), MGRAD_OK);
    int64_t shape[3] = {1, IMG, IMG};
    mgrad_model *m = NULL;
    ck_assert_int_eq(mgrad_model_create(&m, f->ctx, 3, shape), MGRAD_OK);
    f->model = m;
    int32_t mark = 0;
    switch (variant) {
    case 0:
        ck_assert_int_eq(mgrad_model_add_conv2d(m, 3, 3, 1, 1, MGRAD_INIT_DEFAULT), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_batch_norm(m, 1e-5), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_activation(m, MGRAD_ACTIVATION_TANH), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_mark(m, &mark), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_conv2d(m, 3, 3, 1, 1, MGRAD_INIT_DEFAULT), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_batch_norm(m, 1e-5), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_activation(m, MGRAD_ACTIVATION_GELU), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_residual(m, mark), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_avg_pool(m, 2, 2), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_flatten(m), MGRAD_OK);
        break;
    case 1:
        ck_assert_int_eq(mgrad_model_add_conv2d(m, 2, 3, 2, 1, MGRAD_INIT_DEFAULT), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_activation(m, MGRAD_ACTIVATION_GELU), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_batch_norm(m, 1e-5), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_max_pool(m, 2, 1), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_flatten(m), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_layer_norm(m, 1e-5), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_dropout(m, 0.25), MGRAD_OK);
        break;
    default:
        ck_assert_int_eq(mgrad_model_add_conv2d(m, 2, 3, 1, 1, MGRAD_INIT_DEFAULT), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_resnet_block(m, 3, 2), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_global_avg_pool(m), MGRAD_OK);
        break;
    }
    ck_assert_int_eq(mgrad_model_add_dense(m, NCLS, MGRAD_INIT_DEFAULT), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_scale(m, 0.5), MGRAD_OK);

    for (int set = 0; set < 2; set++) {
        int n = set == 0 ? NTRAIN : NVAL;
        double x[NTRAIN * IMG * IMG];
        int32_t labels[NTRAIN];
        uint64_t st = 101 + (uint64_t)set;
        tu_fill(x, (size_t)n * IMG * IMG, &st, 1.0);
        for (int i = 0; i < n; i++) labels[i] = (int32_t)((tu_rand(&st) + 1) * 1.5) % NCLS;
        mgrad_dataset **ds = set == 0 ? &f->train : &f->val;
        ck_assert_int_eq(mgrad_dataset_create(ds, f->ctx, n, 3, shape, MGRAD_DTYPE_F64, x),
                         MGRAD_OK);
        ck_assert_int_eq(mgrad_dataset_set_labels(*ds, labels, n, NCLS), MGRAD_OK);
    }
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = T;
    o.batch_size = B;
    o.shuffle_seed = 5;
    o.optimizer = MGRAD_OPTIMIZER_SGD;
    o.lr = 0.3;
    o.momentum = 0.5;
    o.weight_decay = 0.01;
    o.validation = f->val;
    mgrad_status s = mgrad_run_create(&f->run, m, f->train, &o);
    ck_assert_msg(s == MGRAD_OK, "run_create: %s", mgrad_context_last_error(f->ctx));
}

static void cnn_teardown(cnn *f)
{
    mgrad_run_destroy(f->run);
    mgrad_dataset_destroy(f->train);
    mgrad_dataset_destroy(f->val);
    mgrad_model_destroy(f->model);
    mgrad_context_destroy(f->ctx);
}

static double train_phi(cnn *f)
{
    double phi = 0;
    mgrad_status s = mgrad_run_train(f->run, &phi);
    ck_assert_msg(s == MGRAD_OK, "train: %s", mgrad_context_last_error(f->ctx));
    return phi;
}

/* ⟨dφ/dz, v⟩ against (φ(z + hv) − φ(z − hv)) / 2h for a random v; with
   coord >= 0, v is that coordinate alone. */
static double fd_meta(cnn *f, mgrad_meta *m, uint64_t seed, int64_t coord, double *dir_out)
{
    int64_t n = 0;
    ck_assert_int_eq(mgrad_meta_size(m, &n), MGRAD_OK);
    double *z = dalloc((size_t)n), *g = dalloc((size_t)n), *v = dalloc((size_t)n);
    double *zz = dalloc((size_t)n);
    ck_assert_int_eq(mgrad_meta_get_value(m, MGRAD_DTYPE_F64, z, n), MGRAD_OK);
    train_phi(f);
    mgrad_status s = mgrad_run_reverse(f->run);
    ck_assert_msg(s == MGRAD_OK, "reverse: %s", mgrad_context_last_error(f->ctx));
    ck_assert_int_eq(mgrad_meta_get_grad(m, MGRAD_DTYPE_F64, g, n), MGRAD_OK);
    uint64_t st = seed;
    if (coord >= 0)
        v[coord] = 1.0;
    else
        tu_fill(v, (size_t)n, &st, 1.0);
    double dir = 0;
    for (int64_t i = 0; i < n; i++) dir += g[i] * v[i];
    double h = FD_H;
    for (int64_t i = 0; i < n; i++) zz[i] = z[i] + h * v[i];
    ck_assert_int_eq(mgrad_meta_set_value(m, MGRAD_DTYPE_F64, zz, n), MGRAD_OK);
    double pp = train_phi(f);
    for (int64_t i = 0; i < n; i++) zz[i] = z[i] - h * v[i];
    ck_assert_int_eq(mgrad_meta_set_value(m, MGRAD_DTYPE_F64, zz, n), MGRAD_OK);
    double pm = train_phi(f);
    ck_assert_int_eq(mgrad_meta_set_value(m, MGRAD_DTYPE_F64, z, n), MGRAD_OK);
    free(z);
    free(g);
    free(v);
    free(zz);
    if (dir_out != NULL) *dir_out = dir;
    return tu_rel_err(dir, (pp - pm) / (2 * h), 1e-8);
}

static const char *VARIANT_NAMES[] = {
    "conv-bn-tanh/conv-bn-gelu+res, avgpool",
    "conv(s2)-gelu-bn, maxpool, layernorm, dropout",
    "resnet block (projection), global avgpool",
};

/* _i: the network variant.  Data weights (all rows), input pixels of three
   training rows, and single-coordinate checks of one weight and one pixel. */
START_TEST(test_whole_run_fd)
{
    static const int64_t rows[3] = {1, 6, 10};
    struct { mgrad_meta_kind kind; int64_t coord; const char *name; } checks[] = {
        {MGRAD_META_DATA_WEIGHTS, -1, "data weights"},
        {MGRAD_META_DATA_WEIGHTS, 6, "data weight of row 6"},
        {MGRAD_META_INPUTS, -1, "input pixels (3 rows)"},
        {MGRAD_META_INPUTS, IMG * IMG + 14, "one pixel of row 6"},
    };
    for (size_t k = 0; k < sizeof checks / sizeof checks[0]; k++) {
        cnn f;
        cnn_setup(&f, _i, MGRAD_DTYPE_F64);
        mgrad_meta_options mo = MGRAD_META_OPTIONS_INIT;
        if (checks[k].kind == MGRAD_META_INPUTS) {
            mo.rows = rows;
            mo.num_rows = 3;
        }
        mgrad_meta *m = NULL;
        mgrad_status s = mgrad_run_add_meta(&m, f.run, checks[k].kind, &mo);
        ck_assert_msg(s == MGRAD_OK, "add_meta: %s", mgrad_context_last_error(f.ctx));
        double dir = 0;
        double err = fd_meta(&f, m, 500 + k, checks[k].coord, &dir);
        printf("fd whole run %-46s %-22s <g,v> = %+.10e  rel err %.2e\n",
               VARIANT_NAMES[_i], checks[k].name, dir, err);
        ck_assert_msg(err <= 1e-6, "%s / %s: metagradient %.12e vs finite differences, "
                      "relative error %.3e", VARIANT_NAMES[_i], checks[k].name, dir, err);
        ck_assert(dir != 0);
        cnn_teardown(&f);
    }
}
END_TEST

/* The same metagradients in f32 agree with f64 (all four passes of every op
   run in f32 here); two identical runs agree bit for bit (dropout replay). */
static void cnn_metagrads(int variant, mgrad_dtype dtype, double *wg, double *xg)
{
    static const int64_t rows[2] = {2, 9};
    cnn f;
    cnn_setup(&f, variant, dtype);
    mgrad_meta_options mo = MGRAD_META_OPTIONS_INIT;
    mgrad_meta *w = NULL, *x = NULL;
    ck_assert_int_eq(mgrad_run_add_meta(&w, f.run, MGRAD_META_DATA_WEIGHTS, &mo), MGRAD_OK);
    mo.rows = rows;
    mo.num_rows = 2;
    ck_assert_int_eq(mgrad_run_add_meta(&x, f.run, MGRAD_META_INPUTS, &mo), MGRAD_OK);
    train_phi(&f);
    ck_assert_int_eq(mgrad_run_reverse(f.run), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(w, MGRAD_DTYPE_F64, wg, NTRAIN), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(x, MGRAD_DTYPE_F64, xg, 2 * IMG * IMG), MGRAD_OK);
    cnn_teardown(&f);
}

START_TEST(test_f32_and_replay)
{
    double w64[NTRAIN], x64[2 * IMG * IMG], w32[NTRAIN], x32[2 * IMG * IMG];
    double w64b[NTRAIN], x64b[2 * IMG * IMG];
    cnn_metagrads(_i, MGRAD_DTYPE_F64, w64, x64);
    cnn_metagrads(_i, MGRAD_DTYPE_F64, w64b, x64b);
    ck_assert(memcmp(w64, w64b, sizeof w64) == 0);
    ck_assert(memcmp(x64, x64b, sizeof x64) == 0);
    cnn_metagrads(_i, MGRAD_DTYPE_F32, w32, x32);
    double ew = tu_vec_rel_err(w32, w64, NTRAIN, 1e-12);
    double ex = tu_vec_rel_err(x32, x64, 2 * IMG * IMG, 1e-12);
    printf("f32 vs f64 %-46s weights %.2e  inputs %.2e\n", VARIANT_NAMES[_i], ew, ex);
    ck_assert_msg(ew < 1e-3 && ex < 1e-3, "f32 vs f64: %.3e %.3e", ew, ex);
}
END_TEST

Suite *make_suite(void); /* called by runner.c */

Suite *make_suite(void)
{
    Suite *s = suite_create("conv");
    TCase *tc = tcase_create("ops");
    tcase_add_loop_test(tc, test_op_fd, 0, NUM_CASES);
    tcase_add_test(tc, test_conv_reference);
    tcase_add_test(tc, test_pool_norm_values);
    tcase_add_test(tc, test_dropout_mask);
    tcase_add_test(tc, test_shapes_and_api);
    suite_add_tcase(s, tc);
    tc = tcase_create("runs");
    tcase_add_loop_test(tc, test_whole_run_fd, 0, 3);
    tcase_add_loop_test(tc, test_f32_and_replay, 0, 3);
    suite_add_tcase(s, tc);
    return s;
}
