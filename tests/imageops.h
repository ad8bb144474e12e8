/*
 * imageops.h - the image-op cases shared by the op suites (header-only):
 * graphs built through mgr_graph_append, so that shapes come from the same
 * validation the public API uses, and test_image_op_fd, which checks one
 * op's four passes against central finite differences on random shapes with
 * five seeds, alone and between two parameterised layers.  Each suite
 * registers the cases of its op family (a range of op_case) as a loop test:
 *
 *     test_ops_conv.c     conv2d                     (ops_conv.c)
 *     test_ops_pool.c     avg / max / global pooling (ops_pool.c)
 *     test_ops_norm.c     batch norm, layer norm     (ops_norm.c)
 *     test_ops_dropout.c  dropout                    (ops_dropout.c)
 *     test_graph.c        flatten, add on images     (ops_linear.c)
 *
 * The finite-difference harness and its error budget: fdcheck.h.
 */
#ifndef MGRAD_TEST_IMAGEOPS_H
#define MGRAD_TEST_IMAGEOPS_H

#include <check.h>
#include <stdio.h>
#include <string.h>

#include "fdcheck.h"

/* ---- graphs built through mgr_graph_append ------------------------------- */

static inline mgr_node mk(mgr_op_kind kind, int32_t in0)
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

static inline int32_t add_node(mgrad_context *ctx, mgr_graph *g, mgr_node n)
{
    mgrad_status s = mgr_graph_append(ctx, g, n);
    ck_assert_msg(s == MGRAD_OK, "append: %s", mgrad_context_last_error(ctx));
    return g->num_nodes - 1;
}

static inline int32_t add_conv(mgrad_context *ctx, mgr_graph *g, int32_t in0, int64_t oc,
                               int32_t k, int32_t s, int32_t p)
{
    mgr_node n = mk(MGR_OP_CONV2D, in0);
    n.shape[0] = oc;
    n.kernel = k;
    n.stride = s;
    n.padding = p;
    return add_node(ctx, g, n);
}

static inline int32_t add_window(mgrad_context *ctx, mgr_graph *g, mgr_op_kind kind,
                                 int32_t in0, int32_t k, int32_t s)
{
    mgr_node n = mk(kind, in0);
    n.kernel = k;
    n.stride = s;
    return add_node(ctx, g, n);
}

static inline int32_t add_norm(mgrad_context *ctx, mgr_graph *g, mgr_op_kind kind,
                               int32_t in0, double eps)
{
    mgr_node n = mk(kind, in0);
    n.eps = eps;
    return add_node(ctx, g, n);
}

static inline int32_t add_simple(mgrad_context *ctx, mgr_graph *g, mgr_op_kind kind,
                                 int32_t in0)
{
    return add_node(ctx, g, mk(kind, in0));
}

static inline int32_t add_dense(mgrad_context *ctx, mgr_graph *g, int32_t in0, int64_t units)
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
static inline void build_case(mgrad_context *ctx, mgr_graph *g, op_case c, int inner,
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

static inline void check_case(op_case c, int inner, uint64_t seed)
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
START_TEST(test_image_op_fd)
{
    fd_worst_err = 0;
    for (uint64_t seed = 1; seed <= 5; seed++) {
        check_case((op_case)_i, 0, seed);
        check_case((op_case)_i, 1, seed);
    }
    printf("fd %-26s worst rel err %.2e\n", CASE_NAMES[_i], fd_worst_err);
}
END_TEST

#endif
