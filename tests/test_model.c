/*
 * test_model.c - the model API (metagrad/model.h), the graph's shape and
 * parameter bookkeeping (graph.c) and the initialisers (init.c); the image
 * layers' builders (conv, pooling, norms, dropout, ResNet block) refuse bad
 * shapes and count their parameters.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "base/rng.h"
#include "graph/graph.h"
#include "metagrad/model.h"
#include "testutil.h"

Suite *make_suite(void);

static mgrad_context *new_ctx(uint64_t seed)
{
    mgrad_context_options o = MGRAD_CONTEXT_OPTIONS_INIT;
    o.seed = seed;
    o.dtype = MGRAD_DTYPE_F64;
    mgrad_context *ctx = NULL;
    ck_assert_int_eq(mgrad_context_create(&ctx, &o), MGRAD_OK);
    return ctx;
}

static mgrad_model *new_model(mgrad_context *ctx, int64_t in)
{
    mgrad_model *m = NULL;
    int64_t shape[1];
    shape[0] = in;
    ck_assert_int_eq(mgrad_model_create(&m, ctx, 1, shape), MGRAD_OK);
    ck_assert_ptr_nonnull(m);
    return m;
}

static int64_t num_params(const mgrad_model *m)
{
    int64_t n = -1;
    ck_assert_int_eq(mgrad_model_num_params(m, &n), MGRAD_OK);
    return n;
}

static int64_t output_size(const mgrad_model *m)
{
    int64_t n = -1;
    ck_assert_int_eq(mgrad_model_output_size(m, &n), MGRAD_OK);
    return n;
}

static int32_t mark(const mgrad_model *m)
{
    int32_t id = -7;
    ck_assert_int_eq(mgrad_model_mark(m, &id), MGRAD_OK);
    return id;
}

/* θ0 as a malloc'ed double array (test-owned). */
static double *params(const mgrad_model *m, int64_t *n)
{
    *n = num_params(m);
    double *p = malloc((size_t)(*n > 0 ? *n : 1) * sizeof *p);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(mgrad_model_get_params(m, MGRAD_DTYPE_F64, p, *n), MGRAD_OK);
    return p;
}

/* A fingerprint of everything observable about a model, to show that a
   failed call changed nothing. */
typedef struct snapshot {
    int64_t params, out_size;
    int32_t mark;
    double *theta;
} snapshot;

static snapshot take(const mgrad_model *m)
{
    snapshot s;
    s.mark = mark(m);
    s.out_size = output_size(m);
    s.theta = params(m, &s.params);
    return s;
}

static void assert_unchanged(const mgrad_model *m, snapshot *s)
{
    snapshot now = take(m);
    ck_assert_int_eq(now.params, s->params);
    ck_assert_int_eq(now.out_size, s->out_size);
    ck_assert_int_eq(now.mark, s->mark);
    ck_assert(memcmp(now.theta, s->theta, (size_t)s->params * sizeof(double)) == 0);
    free(now.theta);
    free(s->theta);
    s->theta = NULL;
}

/* ---- shapes and layout ---------------------------------------------- */

START_TEST(test_shapes_chain)
{
    mgrad_context *ctx = new_ctx(1);
    mgrad_model *m = NULL;
    int64_t shape[3] = {1, 28, 28};
    ck_assert_int_eq(mgrad_model_create(&m, ctx, 3, shape), MGRAD_OK);
    ck_assert_int_eq(mark(m), 0);
    ck_assert_int_eq(output_size(m), 784);
    ck_assert_int_eq(num_params(m), 0);

    ck_assert_int_eq(mgrad_model_add_dense(m, 32, MGRAD_INIT_DEFAULT), MGRAD_OK);
    ck_assert_int_eq(output_size(m), 32);
    ck_assert_int_eq(num_params(m), 784 * 32 + 32);
    int32_t skip = mark(m);
    ck_assert_int_eq(skip, 1);
    ck_assert_int_eq(mgrad_model_add_activation(m, MGRAD_ACTIVATION_RELU), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(m, 32, MGRAD_INIT_KAIMING_UNIFORM), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_activation(m, MGRAD_ACTIVATION_GELU), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_residual(m, skip), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_scale(m, 0.1), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(m, 10, MGRAD_INIT_ZEROS), MGRAD_OK);
    ck_assert_int_eq(output_size(m), 10);
    ck_assert_int_eq(mark(m), 7);
    int64_t expect = (784 * 32 + 32) + (32 * 32 + 32) + (32 * 10 + 10);
    ck_assert_int_eq(num_params(m), expect);

    /* The internal graph: kinds, producers, layout node by node. */
    const mgr_graph *g = &m->graph;
    ck_assert_int_eq(g->num_nodes, 8);
    ck_assert_int_eq(g->nodes[0].kind, MGR_OP_INPUT);
    ck_assert_int_eq(g->nodes[0].ndim, 3);
    ck_assert_int_eq(g->nodes[0].shape[1], 28);
    ck_assert_int_eq(g->nodes[1].kind, MGR_OP_DENSE);
    ck_assert_int_eq(g->nodes[1].param_offset, 0);
    ck_assert_int_eq(g->nodes[1].param_count, 784 * 32 + 32);
    ck_assert_int_eq(g->nodes[2].kind, MGR_OP_RELU);
    ck_assert_int_eq(g->nodes[2].param_count, 0);
    ck_assert_int_eq(g->nodes[2].param_offset, 784 * 32 + 32);
    ck_assert_int_eq(g->nodes[3].param_offset, 784 * 32 + 32);
    ck_assert_int_eq(g->nodes[4].kind, MGR_OP_GELU);
    ck_assert_int_eq(g->nodes[5].kind, MGR_OP_ADD);
    ck_assert_int_eq(g->nodes[5].in0, 4);
    ck_assert_int_eq(g->nodes[5].in1, 1);
    ck_assert_int_eq(g->nodes[6].kind, MGR_OP_SCALE);
    ck_assert(g->nodes[6].scale == 0.1);
    ck_assert_int_eq(g->nodes[6].in1, -1);
    ck_assert_int_eq(g->nodes[7].param_offset, (784 * 32 + 32) + (32 * 32 + 32));
    ck_assert_int_eq(g->nodes[7].init, MGRAD_INIT_ZEROS);
    ck_assert_int_eq(g->num_params, expect);
    for (int32_t i = 1; i < g->num_nodes; i++) ck_assert_int_eq(g->nodes[i].in0, i - 1);

    mgrad_model_destroy(m);
    mgrad_context_destroy(ctx);
}
END_TEST

START_TEST(test_activation_keeps_shape)
{
    mgrad_context *ctx = new_ctx(1);
    mgrad_model *m = NULL;
    int64_t shape[2] = {3, 5};
    ck_assert_int_eq(mgrad_model_create(&m, ctx, 2, shape), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_activation(m, MGRAD_ACTIVATION_TANH), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_scale(m, -2.0), MGRAD_OK);
    const mgr_node *out = mgr_graph_output(&m->graph);
    ck_assert_int_eq(out->ndim, 2);
    ck_assert_int_eq(out->shape[0], 3);
    ck_assert_int_eq(out->shape[1], 5);
    ck_assert_int_eq(out->size, 15);
    /* A residual onto the input itself is legal when sizes agree. */
    ck_assert_int_eq(mgrad_model_add_residual(m, 0), MGRAD_OK);
    ck_assert_int_eq(output_size(m), 15);
    /* Dense flattens its input. */
    ck_assert_int_eq(mgrad_model_add_dense(m, 4, MGRAD_INIT_DEFAULT), MGRAD_OK);
    ck_assert_int_eq(num_params(m), 15 * 4 + 4);
    mgrad_model_destroy(m);
    mgrad_context_destroy(ctx);
}
END_TEST

START_TEST(test_residual_size_mismatch)
{
    mgrad_context *ctx = new_ctx(1);
    mgrad_model *m = new_model(ctx, 16);
    ck_assert_int_eq(mgrad_model_add_dense(m, 24, MGRAD_INIT_DEFAULT), MGRAD_OK);
    int32_t from = mark(m);
    ck_assert_int_eq(mgrad_model_add_dense(m, 8, MGRAD_INIT_DEFAULT), MGRAD_OK);
    snapshot s = take(m);
    ck_assert_int_eq(mgrad_model_add_residual(m, from), MGRAD_ERR_SHAPE);
    const char *msg = mgrad_context_last_error(ctx);
    ck_assert_ptr_nonnull(strstr(msg, "8"));
    ck_assert_ptr_nonnull(strstr(msg, "24"));
    ck_assert_ptr_nonnull(strstr(msg, "residual"));
    assert_unchanged(m, &s);

    s = take(m);
    ck_assert_int_eq(mgrad_model_add_residual(m, 3), MGRAD_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(mgrad_context_last_error(ctx), "3"));
    ck_assert_int_eq(mgrad_model_add_residual(m, -1), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_model_add_residual(m, INT32_MAX), MGRAD_ERR_INVALID);
    assert_unchanged(m, &s);
    mgrad_model_destroy(m);
    mgrad_context_destroy(ctx);
}
END_TEST

START_TEST(test_param_overflow_refused)
{
    mgrad_context *ctx = new_ctx(1);
    int64_t shape[3] = {INT64_C(1) << 20, INT64_C(1) << 20, INT64_C(1) << 10};
    mgrad_model *m = NULL;
    ck_assert_int_eq(mgrad_model_create(&m, ctx, 3, shape), MGRAD_OK);
    snapshot s = take(m);
    /* 2^50 inputs x 2^20 units overflows int64. */
    ck_assert_int_eq(mgrad_model_add_dense(m, INT64_C(1) << 20, MGRAD_INIT_ZEROS),
                     MGRAD_ERR_INVALID);
    ck_assert_str_ne(mgrad_context_last_error(ctx), "");
    assert_unchanged(m, &s);
    /* Input shapes whose product overflows are refused at creation. */
    int64_t huge[3] = {INT64_C(1) << 40, INT64_C(1) << 40, 2};
    mgrad_model *m2 = (mgrad_model *)&s;  /* sentinel: must stay as is */
    ck_assert_int_eq(mgrad_model_create(&m2, ctx, 3, huge), MGRAD_ERR_INVALID);
    ck_assert_ptr_eq(m2, (mgrad_model *)&s);
    mgrad_model_destroy(m);
    mgrad_context_destroy(ctx);
}
END_TEST

START_TEST(test_graph_copy_and_growth)
{
    mgrad_context *ctx = new_ctx(1);
    mgr_graph g, c;
    int64_t shape[1] = {3};
    ck_assert_int_eq(mgr_graph_create(ctx, 1, shape, &g), MGRAD_OK);
    for (int i = 0; i < 100; i++) {
        mgr_node n;
        memset(&n, 0, sizeof n);
        n.kind = (i % 2) ? MGR_OP_TANH : MGR_OP_DENSE;
        n.in0 = g.num_nodes - 1;  /* in1 left at 0: ignored for these kinds */
        n.shape[0] = 3;
        n.init = MGRAD_INIT_DEFAULT;
        ck_assert_int_eq(mgr_graph_append(ctx, &g, n), MGRAD_OK);
    }
    ck_assert_int_eq(g.num_nodes, 101);
    ck_assert_int_eq(g.num_params, 50 * 12);
    ck_assert_int_eq(g.nodes[2].in1, -1);
    ck_assert_int_eq(mgr_graph_copy(ctx, &g, &c), MGRAD_OK);
    ck_assert_int_eq(c.num_nodes, g.num_nodes);
    ck_assert_int_eq(c.num_params, g.num_params);
    ck_assert(memcmp(c.nodes, g.nodes, (size_t)g.num_nodes * sizeof(mgr_node)) == 0);
    ck_assert_ptr_ne(c.nodes, g.nodes);
    mgr_graph_free(ctx, &g);
    ck_assert_int_eq(c.nodes[100].kind, MGR_OP_TANH);  /* the copy is independent */
    mgr_graph_free(ctx, &c);
    mgr_graph_free(ctx, NULL);

    uint64_t cur = 1;
    ck_assert_int_eq(mgrad_context_memory(ctx, &cur, NULL), MGRAD_OK);
    ck_assert_uint_eq(cur, 0);
    mgrad_context_destroy(ctx);
}
END_TEST

START_TEST(test_graph_append_refuses)
{
    mgrad_context *ctx = new_ctx(1);
    mgr_graph g;
    int64_t shape[1] = {3};
    ck_assert_int_eq(mgr_graph_create(ctx, 1, shape, &g), MGRAD_OK);
    mgr_node n;
    memset(&n, 0, sizeof n);
    n.kind = MGR_OP_INPUT;
    ck_assert_int_eq(mgr_graph_append(ctx, &g, n), MGRAD_ERR_INVALID);
    n.kind = MGR_OP_COUNT;
    ck_assert_int_eq(mgr_graph_append(ctx, &g, n), MGRAD_ERR_INVALID);
    n.kind = MGR_OP_RELU;
    n.in0 = 1;
    ck_assert_int_eq(mgr_graph_append(ctx, &g, n), MGRAD_ERR_INVALID);
    n.kind = MGR_OP_DENSE;
    n.in0 = 0;
    n.shape[0] = 0;
    ck_assert_int_eq(mgr_graph_append(ctx, &g, n), MGRAD_ERR_INVALID);
    n.shape[0] = 2;
    n.init = (mgrad_init)42;
    ck_assert_int_eq(mgr_graph_append(ctx, &g, n), MGRAD_ERR_INVALID);
    n.kind = MGR_OP_SCALE;
    n.scale = NAN;
    ck_assert_int_eq(mgr_graph_append(ctx, &g, n), MGRAD_ERR_INVALID);
    n.kind = MGR_OP_ADD;
    n.in1 = -1;
    ck_assert_int_eq(mgr_graph_append(ctx, &g, n), MGRAD_ERR_INVALID);
    ck_assert_int_eq(g.num_nodes, 1);
    ck_assert_int_eq(g.num_params, 0);
    int64_t bad[2] = {2, 0};
    mgr_graph g2;
    ck_assert_int_eq(mgr_graph_create(ctx, 2, bad, &g2), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgr_graph_create(ctx, 0, bad, &g2), MGRAD_ERR_INVALID);
    mgr_graph_free(ctx, &g);
    mgrad_context_destroy(ctx);
}
END_TEST

/* ---- initialisers ---------------------------------------------------- */

/* The documented draw, recomputed here independently of init.c. */
static uint64_t stream_of(int32_t node)
{
    return (uint64_t)MGR_STREAM_INIT + ((uint64_t)node << 8);
}

START_TEST(test_default_init_exact_draw)
{
    uint64_t seed = 1234;
    mgrad_context *ctx = new_ctx(seed);
    mgrad_model *m = new_model(ctx, 7);
    ck_assert_int_eq(mgrad_model_add_activation(m, MGRAD_ACTIVATION_TANH), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(m, 5, MGRAD_INIT_DEFAULT), MGRAD_OK);
    int64_t n;
    double *p = params(m, &n);
    ck_assert_int_eq(n, 7 * 5 + 5);
    double a = 1.0 / sqrt(7.0);
    uint64_t s = stream_of(2);  /* the dense layer is node 2 */
    for (int64_t i = 0; i < 5; i++) {
        for (int64_t j = 0; j < 7; j++) {
            double w = a * (2.0 * mgr_rng_uniform(seed, s, (uint64_t)(i * 7 + j)) - 1.0);
            ck_assert(p[i * 7 + j] == w);
        }
        double b = a * (2.0 * mgr_rng_uniform(seed, s, (uint64_t)(35 + i)) - 1.0);
        ck_assert(p[35 + i] == b);
    }
    free(p);
    mgrad_model_destroy(m);
    mgrad_context_destroy(ctx);
}
END_TEST

typedef struct init_case {
    mgrad_init init;
    int normal;           /* 0 uniform, 1 normal */
    double spread;        /* uniform: a; normal: σ  (for fan_in 400, fan_out 600) */
} init_case;

static const init_case init_cases[] = {
    {MGRAD_INIT_DEFAULT, 0, 0.05},                          /* 1/sqrt(400) */
    {MGRAD_INIT_KAIMING_UNIFORM, 0, 0.12247448713915890},   /* sqrt(6/400) */
    {MGRAD_INIT_KAIMING_NORMAL, 1, 0.070710678118654752},   /* sqrt(2/400) */
    {MGRAD_INIT_XAVIER_UNIFORM, 0, 0.077459666924148338},   /* sqrt(6/1000) */
    {MGRAD_INIT_XAVIER_NORMAL, 1, 0.044721359549995794},    /* sqrt(2/1000) */
};

/* Mean and variance within 6 standard errors of their expectations
   (n = 240000 draws; false alarms at ~1e-9). */
START_TEST(test_init_statistics)
{
    const init_case *c = &init_cases[_i];
    const int64_t fan_in = 400, fan_out = 600, nw = fan_in * fan_out;
    mgrad_context *ctx = new_ctx(99);
    mgrad_model *m = new_model(ctx, fan_in);
    ck_assert_int_eq(mgrad_model_add_dense(m, fan_out, c->init), MGRAD_OK);
    int64_t n;
    double *p = params(m, &n);
    ck_assert_int_eq(n, nw + fan_out);

    double sum = 0.0, sumsq = 0.0, maxabs = 0.0;
    for (int64_t k = 0; k < nw; k++) {
        sum += p[k];
        sumsq += p[k] * p[k];
        maxabs = fmax(maxabs, fabs(p[k]));
    }
    double mean = sum / (double)nw;
    double var = sumsq / (double)nw - mean * mean;
    double s2 = c->normal ? c->spread * c->spread : c->spread * c->spread / 3.0;
    /* Var(x²): 2σ⁴ for a normal; a⁴/5 − a⁴/9 = 4a⁴/45 for U(−a, a). */
    double var_of_sq = c->normal ? 2.0 * s2 * s2
                                 : 4.0 * pow(c->spread, 4) / 45.0;
    ck_assert_msg(fabs(mean) < 6.0 * sqrt(s2 / (double)nw), "init %d: mean %g", c->init,
                  mean);
    ck_assert_msg(fabs(var - s2) < 6.0 * sqrt(var_of_sq / (double)nw),
                  "init %d: variance %g, expected %g", c->init, var, s2);
    if (!c->normal) {
        ck_assert(maxabs <= c->spread);
        ck_assert(maxabs > 0.99 * c->spread);
    } else {
        ck_assert(maxabs > 3.0 * c->spread);  /* tails exist */
    }

    if (c->init == MGRAD_INIT_DEFAULT) {
        double bsum = 0.0;
        for (int64_t k = nw; k < n; k++) {
            ck_assert(fabs(p[k]) <= c->spread);
            bsum += p[k];
        }
        ck_assert(fabs(bsum / (double)fan_out) < 6.0 * c->spread / sqrt(3.0 * (double)fan_out));
        ck_assert(p[nw] != 0.0);
    } else {
        for (int64_t k = nw; k < n; k++) ck_assert(p[k] == 0.0);
    }
    free(p);
    mgrad_model_destroy(m);
    mgrad_context_destroy(ctx);
}
END_TEST

START_TEST(test_init_zeros)
{
    mgrad_context *ctx = new_ctx(5);
    mgrad_model *m = new_model(ctx, 9);
    ck_assert_int_eq(mgrad_model_add_dense(m, 4, MGRAD_INIT_ZEROS), MGRAD_OK);
    int64_t n;
    double *p = params(m, &n);
    for (int64_t k = 0; k < n; k++) ck_assert(p[k] == 0.0);
    free(p);
    mgrad_model_destroy(m);
    mgrad_context_destroy(ctx);
}
END_TEST

/* max |W Wᵀ − I| (rows_side = 1) or max |WᵀW − I| over W [rows, cols]. */
static double gram_error(const double *w, int64_t rows, int64_t cols, int rows_side)
{
    double err = 0.0;
    int64_t k = rows_side ? rows : cols;
    for (int64_t a = 0; a < k; a++) {
        for (int64_t b = 0; b < k; b++) {
            double s = 0.0;
            if (rows_side)
                for (int64_t j = 0; j < cols; j++) s += w[a * cols + j] * w[b * cols + j];
            else
                for (int64_t i = 0; i < rows; i++) s += w[i * cols + a] * w[i * cols + b];
            err = fmax(err, fabs(s - (a == b ? 1.0 : 0.0)));
        }
    }
    return err;
}

/* R(x, y) of the QR that produced an orthogonal W [rows, cols] of node 1
   from the Gaussian G [rows, cols] drawn as documented. */
static double r_entry(const double *w, int64_t rows, int64_t cols, uint64_t seed,
                      int64_t x, int64_t y)
{
    uint64_t s = stream_of(1);
    double r = 0.0;
    if (rows >= cols)   /* Σ_i W[i, x] G[i, y] */
        for (int64_t i = 0; i < rows; i++)
            r += w[i * cols + x] * mgr_rng_normal(seed, s, (uint64_t)(i * cols + y));
    else                /* Σ_j W[x, j] G[y, j] */
        for (int64_t j = 0; j < cols; j++)
            r += w[x * cols + j] * mgr_rng_normal(seed, s, (uint64_t)(y * cols + j));
    return r;
}

static const int64_t ortho_shapes[][2] = {{48, 20}, {20, 48}, {33, 33}, {1, 5}, {5, 1}};

START_TEST(test_init_orthogonal)
{
    int64_t rows = ortho_shapes[_i][0], cols = ortho_shapes[_i][1];
    mgrad_context *ctx = new_ctx(77);
    mgrad_model *m = new_model(ctx, cols);
    ck_assert_int_eq(mgrad_model_add_dense(m, rows, MGRAD_INIT_ORTHOGONAL), MGRAD_OK);
    int64_t n;
    double *p = params(m, &n);
    ck_assert_int_eq(n, rows * cols + rows);
    if (rows >= cols)
        ck_assert_double_le(gram_error(p, rows, cols, 0), 1e-10);
    if (rows <= cols)
        ck_assert_double_le(gram_error(p, rows, cols, 1), 1e-10);
    for (int64_t k = rows * cols; k < n; k++) ck_assert(p[k] == 0.0);

    /* W is the Q of a QR with positive diag(R), as in torch:
       tall W: G = W R, so R = WᵀG; wide W: Gᵀ = Wᵀ R, so R = W Gᵀ.
       R must be upper triangular with a positive diagonal. */
    int64_t k = rows < cols ? rows : cols;
    for (int64_t x = 0; x < k; x++) {
        ck_assert_double_gt(r_entry(p, rows, cols, 77, x, x), 0.0);
        for (int64_t y = 0; y < x; y++)
            ck_assert_double_le(fabs(r_entry(p, rows, cols, 77, x, y)), 1e-9);
    }

    /* Reproducible. */
    ck_assert_int_eq(mgrad_model_init_params(m, 77), MGRAD_OK);
    int64_t n2;
    double *q = params(m, &n2);
    ck_assert(memcmp(p, q, (size_t)n * sizeof *p) == 0);
    free(q);
    free(p);
    mgrad_model_destroy(m);
    mgrad_context_destroy(ctx);
}
END_TEST

/* ---- determinism ------------------------------------------------------ */

static mgrad_model *mlp(mgrad_context *ctx, mgrad_init first)
{
    mgrad_model *m = new_model(ctx, 6);
    ck_assert_int_eq(mgrad_model_add_dense(m, 5, first), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_activation(m, MGRAD_ACTIVATION_SIGMOID), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(m, 4, MGRAD_INIT_XAVIER_NORMAL), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(m, 3, MGRAD_INIT_ORTHOGONAL), MGRAD_OK);
    return m;
}

START_TEST(test_determinism_by_seed)
{
    mgrad_context *c1 = new_ctx(42), *c2 = new_ctx(42), *c3 = new_ctx(43);
    mgrad_model *a = mlp(c1, MGRAD_INIT_DEFAULT);
    mgrad_model *b = mlp(c2, MGRAD_INIT_DEFAULT);
    mgrad_model *c = mlp(c3, MGRAD_INIT_DEFAULT);
    mgrad_model *d = mlp(c1, MGRAD_INIT_KAIMING_NORMAL);
    int64_t n;
    double *pa = params(a, &n), *pb = params(b, &n), *pc = params(c, &n),
           *pd = params(d, &n);
    ck_assert(memcmp(pa, pb, (size_t)n * sizeof *pa) == 0);
    ck_assert(memcmp(pa, pc, (size_t)n * sizeof *pa) != 0);
    /* Later layers do not depend on earlier ones' initialisers. */
    int64_t first = 6 * 5 + 5;
    ck_assert(memcmp(pa, pd, (size_t)first * sizeof *pa) != 0);
    ck_assert(memcmp(pa + first, pd + first, (size_t)(n - first) * sizeof *pa) == 0);

    /* init_params(seed) is what a context with that seed draws. */
    ck_assert_int_eq(mgrad_model_init_params(c, 42), MGRAD_OK);
    double *pc2 = params(c, &n);
    ck_assert(memcmp(pa, pc2, (size_t)n * sizeof *pa) == 0);

    free(pa); free(pb); free(pc); free(pd); free(pc2);
    mgrad_model_destroy(a);
    mgrad_model_destroy(b);
    mgrad_model_destroy(c);
    mgrad_model_destroy(d);
    mgrad_context_destroy(c1);
    mgrad_context_destroy(c2);
    mgrad_context_destroy(c3);
}
END_TEST

START_TEST(test_add_dense_keeps_set_params)
{
    mgrad_context *ctx = new_ctx(3);
    mgrad_model *m = new_model(ctx, 4);
    ck_assert_int_eq(mgrad_model_add_dense(m, 3, MGRAD_INIT_DEFAULT), MGRAD_OK);
    double v[15];
    for (int i = 0; i < 15; i++) v[i] = 0.5 * i - 3.0;
    ck_assert_int_eq(mgrad_model_set_params(m, MGRAD_DTYPE_F64, v, 15), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(m, 2, MGRAD_INIT_DEFAULT), MGRAD_OK);
    int64_t n;
    double *p = params(m, &n);
    ck_assert_int_eq(n, 15 + 3 * 2 + 2);
    ck_assert(memcmp(p, v, sizeof v) == 0);
    /* The new layer holds its seeded draw. */
    uint64_t s = stream_of(2);
    double a = 1.0 / sqrt(3.0);
    ck_assert(p[15] == a * (2.0 * mgr_rng_uniform(3, s, 0) - 1.0));
    free(p);
    mgrad_model_destroy(m);
    mgrad_context_destroy(ctx);
}
END_TEST

/* ---- parameters in and out -------------------------------------------- */

START_TEST(test_params_round_trip)
{
    mgrad_context *ctx = new_ctx(8);
    mgrad_model *m = mlp(ctx, MGRAD_INIT_DEFAULT);
    int64_t n = num_params(m);
    double *v = malloc((size_t)n * sizeof *v), *w = malloc((size_t)n * sizeof *w);
    float *f = malloc((size_t)n * sizeof *f), *g = malloc((size_t)n * sizeof *g);
    uint64_t st = 11;
    tu_fill(v, (size_t)n, &st, 3.0);
    v[0] = 1e300;
    v[1] = -4.9e-324;

    ck_assert_int_eq(mgrad_model_set_params(m, MGRAD_DTYPE_F64, v, n), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_get_params(m, MGRAD_DTYPE_F64, w, n), MGRAD_OK);
    ck_assert(memcmp(v, w, (size_t)n * sizeof *v) == 0);

    for (int64_t k = 0; k < n; k++) f[k] = (float)(2.0 * tu_rand(&st));
    f[0] = 3.0e38f;
    f[1] = -1.0e-45f;  /* a subnormal */
    ck_assert_int_eq(mgrad_model_set_params(m, MGRAD_DTYPE_F32, f, n), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_get_params(m, MGRAD_DTYPE_F32, g, n), MGRAD_OK);
    ck_assert(memcmp(f, g, (size_t)n * sizeof *f) == 0);
    ck_assert_int_eq(mgrad_model_get_params(m, MGRAD_DTYPE_F64, w, n), MGRAD_OK);
    for (int64_t k = 0; k < n; k++) ck_assert(w[k] == (double)f[k]);

    free(v); free(w); free(f); free(g);
    mgrad_model_destroy(m);
    mgrad_context_destroy(ctx);
}
END_TEST

START_TEST(test_set_params_refuses_nonfinite)
{
    mgrad_context *ctx = new_ctx(8);
    mgrad_model *m = mlp(ctx, MGRAD_INIT_DEFAULT);
    int64_t n = num_params(m);
    double *v = calloc((size_t)n, sizeof *v);
    float *f = calloc((size_t)n, sizeof *f);
    snapshot s = take(m);
    v[17] = NAN;
    ck_assert_int_eq(mgrad_model_set_params(m, MGRAD_DTYPE_F64, v, n), MGRAD_ERR_NONFINITE);
    ck_assert_ptr_nonnull(strstr(mgrad_context_last_error(ctx), "17"));
    v[17] = 0.0;
    v[n - 1] = -INFINITY;
    ck_assert_int_eq(mgrad_model_set_params(m, MGRAD_DTYPE_F64, v, n), MGRAD_ERR_NONFINITE);
    f[3] = INFINITY;
    ck_assert_int_eq(mgrad_model_set_params(m, MGRAD_DTYPE_F32, f, n), MGRAD_ERR_NONFINITE);
    assert_unchanged(m, &s);
    free(v);
    free(f);
    mgrad_model_destroy(m);
    mgrad_context_destroy(ctx);
}
END_TEST

START_TEST(test_empty_model_params)
{
    mgrad_context *ctx = new_ctx(8);
    mgrad_model *m = new_model(ctx, 3);
    double x = 5.0;
    ck_assert_int_eq(mgrad_model_get_params(m, MGRAD_DTYPE_F64, &x, 0), MGRAD_OK);
    ck_assert(x == 5.0);
    ck_assert_int_eq(mgrad_model_set_params(m, MGRAD_DTYPE_F64, &x, 0), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_init_params(m, 1), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_get_params(m, MGRAD_DTYPE_F64, &x, 1), MGRAD_ERR_SIZE);
    mgrad_model_destroy(m);
    mgrad_context_destroy(ctx);
}
END_TEST

/* ---- argument validation: documented statuses, nothing changed ---------- */

START_TEST(test_null_arguments)
{
    mgrad_context *ctx = new_ctx(1);
    int64_t shape[1] = {4};
    mgrad_model *sentinel = (mgrad_model *)&shape, *m = sentinel;
    ck_assert_int_eq(mgrad_model_create(NULL, ctx, 1, shape), MGRAD_ERR_NULL);
    ck_assert_str_ne(mgrad_context_last_error(ctx), "");
    mgrad_context_clear_error(ctx);
    ck_assert_int_eq(mgrad_model_create(&m, NULL, 1, shape), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_model_create(&m, ctx, 1, NULL), MGRAD_ERR_NULL);
    ck_assert_str_ne(mgrad_context_last_error(ctx), "");
    ck_assert_ptr_eq(m, sentinel);

    double d = 1.0;
    int64_t i64 = -99;
    int32_t i32 = -99;
    ck_assert_int_eq(mgrad_model_add_dense(NULL, 3, MGRAD_INIT_DEFAULT), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_model_add_activation(NULL, MGRAD_ACTIVATION_TANH), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_model_add_scale(NULL, 1.0), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_model_mark(NULL, &i32), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_model_add_residual(NULL, 0), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_model_num_params(NULL, &i64), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_model_output_size(NULL, &i64), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_model_get_params(NULL, MGRAD_DTYPE_F64, &d, 0), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_model_set_params(NULL, MGRAD_DTYPE_F64, &d, 0), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_model_init_params(NULL, 0), MGRAD_ERR_NULL);
    ck_assert_int_eq(i32, -99);
    ck_assert_int_eq(i64, -99);
    ck_assert(d == 1.0);
    mgrad_model_destroy(NULL);

    m = new_model(ctx, 4);
    ck_assert_int_eq(mgrad_model_add_dense(m, 2, MGRAD_INIT_DEFAULT), MGRAD_OK);
    snapshot s = take(m);
    mgrad_context_clear_error(ctx);
    ck_assert_int_eq(mgrad_model_mark(m, NULL), MGRAD_ERR_NULL);
    ck_assert_str_ne(mgrad_context_last_error(ctx), "");
    ck_assert_int_eq(mgrad_model_num_params(m, NULL), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_model_output_size(m, NULL), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_model_get_params(m, MGRAD_DTYPE_F64, NULL, 10), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_model_set_params(m, MGRAD_DTYPE_F64, NULL, 10), MGRAD_ERR_NULL);
    assert_unchanged(m, &s);
    mgrad_model_destroy(m);
    mgrad_context_destroy(ctx);
}
END_TEST

START_TEST(test_bad_values)
{
    mgrad_context *ctx = new_ctx(1);
    mgrad_model *sentinel = (mgrad_model *)&ctx, *m = sentinel;
    int64_t shape[4] = {2, 3, 4, 5}, zero[2] = {3, 0}, neg[1] = {-1};
    ck_assert_int_eq(mgrad_model_create(&m, ctx, 0, shape), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_model_create(&m, ctx, 4, shape), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_model_create(&m, ctx, -1, shape), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_model_create(&m, ctx, 2, zero), MGRAD_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(mgrad_context_last_error(ctx), "dimension 1"));
    ck_assert_int_eq(mgrad_model_create(&m, ctx, 1, neg), MGRAD_ERR_INVALID);
    ck_assert_ptr_eq(m, sentinel);

    m = new_model(ctx, 6);
    ck_assert_int_eq(mgrad_model_add_dense(m, 3, MGRAD_INIT_DEFAULT), MGRAD_OK);
    snapshot s = take(m);
    ck_assert_int_eq(mgrad_model_add_dense(m, 0, MGRAD_INIT_DEFAULT), MGRAD_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(mgrad_context_last_error(ctx), "units"));
    ck_assert_int_eq(mgrad_model_add_dense(m, -5, MGRAD_INIT_DEFAULT), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_model_add_dense(m, 3, (mgrad_init)7), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_model_add_dense(m, 3, (mgrad_init)-1), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_model_add_activation(m, (mgrad_activation)0), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_model_add_activation(m, (mgrad_activation)6), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_model_add_scale(m, NAN), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_model_add_scale(m, INFINITY), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_model_add_scale(m, -INFINITY), MGRAD_ERR_INVALID);

    int64_t n = s.params;
    double *buf = malloc((size_t)(n + 1) * sizeof *buf);
    for (int64_t k = 0; k <= n; k++) buf[k] = 7.0;
    ck_assert_int_eq(mgrad_model_get_params(m, MGRAD_DTYPE_F64, buf, n - 1), MGRAD_ERR_SIZE);
    ck_assert_ptr_nonnull(strstr(mgrad_context_last_error(ctx), "21"));
    ck_assert_int_eq(mgrad_model_get_params(m, MGRAD_DTYPE_F64, buf, n + 1), MGRAD_ERR_SIZE);
    ck_assert_int_eq(mgrad_model_get_params(m, MGRAD_DTYPE_F64, buf, -1), MGRAD_ERR_SIZE);
    ck_assert_int_eq(mgrad_model_get_params(m, (mgrad_dtype)0, buf, n), MGRAD_ERR_DTYPE);
    ck_assert_int_eq(mgrad_model_get_params(m, (mgrad_dtype)3, buf, n), MGRAD_ERR_DTYPE);
    for (int64_t k = 0; k <= n; k++) ck_assert(buf[k] == 7.0);
    ck_assert_int_eq(mgrad_model_set_params(m, MGRAD_DTYPE_F64, buf, n + 1), MGRAD_ERR_SIZE);
    ck_assert_int_eq(mgrad_model_set_params(m, MGRAD_DTYPE_F64, buf, 0), MGRAD_ERR_SIZE);
    ck_assert_int_eq(mgrad_model_set_params(m, (mgrad_dtype)9, buf, n), MGRAD_ERR_DTYPE);
    free(buf);
    assert_unchanged(m, &s);
    mgrad_model_destroy(m);
    mgrad_context_destroy(ctx);
}
END_TEST

/* An allocator that fails once `budget` allocations have succeeded. */
typedef struct failing_alloc {
    int budget;
} failing_alloc;

static void *failing_malloc(size_t size, void *user_data)
{
    failing_alloc *f = user_data;
    if (f->budget <= 0) return NULL;
    f->budget--;
    return malloc(size);
}

static void failing_free(void *ptr, void *user_data)
{
    (void)user_data;
    free(ptr);
}

START_TEST(test_out_of_memory_changes_nothing)
{
    failing_alloc fa = {1000000};
    mgrad_context_options o = MGRAD_CONTEXT_OPTIONS_INIT;
    o.malloc_fn = failing_malloc;
    o.free_fn = failing_free;
    o.alloc_user_data = &fa;
    o.seed = 4;
    mgrad_context *ctx = NULL;
    ck_assert_int_eq(mgrad_context_create(&ctx, &o), MGRAD_OK);
    mgrad_model *m = new_model(ctx, 12);
    for (int i = 0; i < 15; i++)  /* 16 nodes: the next append regrows the array */
        ck_assert_int_eq(mgrad_model_add_dense(m, 12, MGRAD_INIT_DEFAULT), MGRAD_OK);

    static const mgrad_init inits[] = {MGRAD_INIT_ORTHOGONAL, MGRAD_INIT_DEFAULT};
    for (int w = 0; w < 2; w++) {
        int budget = 0, ok = 0;
        for (; budget < 20 && !ok; budget++) {
            snapshot s = take(m);
            fa.budget = budget;
            mgrad_status st = mgrad_model_add_dense(m, 7, inits[w]);
            fa.budget = 1000000;
            if (st == MGRAD_OK) {
                ok = 1;
                free(s.theta);
            } else {
                ck_assert_int_eq(st, MGRAD_ERR_NOMEM);
                ck_assert_ptr_nonnull(strstr(mgrad_context_last_error(ctx), "memory"));
                assert_unchanged(m, &s);
            }
        }
        ck_assert(ok);
        ck_assert_int_gt(budget, 1);  /* at least one failure was exercised */
    }

    /* init_params under failure: θ0 unchanged. */
    snapshot s = take(m);
    fa.budget = 0;
    ck_assert_int_eq(mgrad_model_init_params(m, 99), MGRAD_ERR_NOMEM);
    fa.budget = 1000000;
    assert_unchanged(m, &s);
    mgrad_model_destroy(m);
    mgrad_context_destroy(ctx);
}
END_TEST

START_TEST(test_context_lifetime)
{
    mgrad_context *ctx = new_ctx(1);
    mgrad_model *m = new_model(ctx, 5);
    ck_assert_int_eq(mgrad_model_add_dense(m, 3, MGRAD_INIT_DEFAULT), MGRAD_OK);
    uint64_t cur = 0;
    ck_assert_int_eq(mgrad_context_memory(ctx, &cur, NULL), MGRAD_OK);
    ck_assert_uint_gt(cur, 0);
    mgrad_model *m2 = new_model(ctx, 2);
    mgrad_model_destroy(m2);
    /* The model keeps the context alive after the caller destroys it. */
    mgrad_context_destroy(ctx);
    ck_assert_int_eq(mgrad_model_add_dense(m, 2, MGRAD_INIT_DEFAULT), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_residual(m, 0), MGRAD_ERR_SHAPE);
    ck_assert_int_eq(num_params(m), 5 * 3 + 3 + 3 * 2 + 2);
    mgrad_model_destroy(m);  /* frees the context; valgrind/ASan check the rest */
}
END_TEST

START_TEST(test_memory_returned)
{
    mgrad_context *ctx = new_ctx(1);
    mgrad_model *m = mlp(ctx, MGRAD_INIT_ORTHOGONAL);
    ck_assert_int_eq(mgrad_model_init_params(m, 5), MGRAD_OK);
    mgrad_model_destroy(m);
    uint64_t cur = 1;
    ck_assert_int_eq(mgrad_context_memory(ctx, &cur, NULL), MGRAD_OK);
    ck_assert_uint_eq(cur, 0);
    mgrad_context_destroy(ctx);
}
END_TEST

/* A zeroed double buffer (as fdcheck.h's, whose new_ctx this suite's
   would clash with). */
static double *dalloc(size_t n)
{
    double *p = calloc(n > 0 ? n : 1, sizeof(double));
    ck_assert_ptr_nonnull(p);
    return p;
}

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

Suite *make_suite(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("graph");
    tcase_add_test(tc, test_shapes_chain);
    tcase_add_test(tc, test_activation_keeps_shape);
    tcase_add_test(tc, test_residual_size_mismatch);
    tcase_add_test(tc, test_param_overflow_refused);
    tcase_add_test(tc, test_graph_copy_and_growth);
    tcase_add_test(tc, test_graph_append_refuses);
    suite_add_tcase(s, tc);

    tc = tcase_create("init");
    tcase_add_test(tc, test_default_init_exact_draw);
    tcase_add_loop_test(tc, test_init_statistics, 0,
                        (int)(sizeof init_cases / sizeof init_cases[0]));
    tcase_add_test(tc, test_init_zeros);
    tcase_add_loop_test(tc, test_init_orthogonal, 0,
                        (int)(sizeof ortho_shapes / sizeof ortho_shapes[0]));
    tcase_add_test(tc, test_determinism_by_seed);
    tcase_add_test(tc, test_add_dense_keeps_set_params);
    suite_add_tcase(s, tc);

    tc = tcase_create("params");
    tcase_add_test(tc, test_params_round_trip);
    tcase_add_test(tc, test_set_params_refuses_nonfinite);
    tcase_add_test(tc, test_empty_model_params);
    suite_add_tcase(s, tc);

    tc = tcase_create("api");
    tcase_add_test(tc, test_null_arguments);
    tcase_add_test(tc, test_bad_values);
    tcase_add_test(tc, test_out_of_memory_changes_nothing);
    tcase_add_test(tc, test_context_lifetime);
    tcase_add_test(tc, test_memory_returned);
    suite_add_tcase(s, tc);

    tc = tcase_create("image");
    tcase_add_test(tc, test_shapes_and_api);
    suite_add_tcase(s, tc);
    return s;
}
