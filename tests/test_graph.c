/*
 * test_graph.c - the graph module in f64: every op's four passes, the loss's
 * four passes and a whole MLP's Hessian-vector product against central
 * finite differences; the R-op's reduced backward against the full one
 * (MLPs, conv nets, a sequence graph); the BLAS seam against its naive
 * twin; the workspace.
 * The image forms of flatten and add (ops_linear.c) are imageops.h's cases;
 * the other image ops have one suite per family (test_ops_*.c).
 *
 * The finite-difference harness and its error budget: fdcheck.h.
 *
 * Graphs are built by hand (no model.c): node 0 is the input, parameters are
 * laid out node by node, a dense node holding W [out, in] then b [out].
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fdcheck.h"
#include "imageops.h"

#define MAX_NODES 16

/* ---- hand-built graphs --------------------------------------------------- */

typedef struct tgraph {
    mgr_graph g;
    mgr_node nodes[MAX_NODES];
} tgraph;

static void tg_init(tgraph *t, int64_t in_size)
{
    memset(t, 0, sizeof *t);
    t->g.nodes = t->nodes;
    t->g.capacity = MAX_NODES;
    t->g.num_nodes = 1;
    t->nodes[0].kind = MGR_OP_INPUT;
    t->nodes[0].in0 = t->nodes[0].in1 = -1;
    t->nodes[0].ndim = 1;
    t->nodes[0].shape[0] = in_size;
    t->nodes[0].size = in_size;
}

/* Append a node reading in0 (and in1); size is the output size of a dense
   node and ignored for the others (they keep their input's size). */
static int32_t tg_add(tgraph *t, mgr_op_kind kind, int32_t in0, int32_t in1,
                      int64_t size, double scale)
{
    ck_assert_int_lt(t->g.num_nodes, MAX_NODES);
    int32_t k = t->g.num_nodes++;
    mgr_node *nd = &t->nodes[k];
    int64_t in_size = t->nodes[in0].size;
    nd->kind = kind;
    nd->in0 = in0;
    nd->in1 = in1;
    nd->ndim = 1;
    nd->size = kind == MGR_OP_DENSE ? size : in_size;
    nd->shape[0] = nd->size;
    nd->param_offset = t->g.num_params;
    nd->param_count = kind == MGR_OP_DENSE ? size * in_size + size : 0;
    nd->scale = scale;
    t->g.num_params += nd->param_count;
    return k;
}


/* Build the one-op graph for `kind` with shapes drawn from seed, run the
   checks with and without input tangents. */
static void check_op(mgr_op_kind kind, const char *name, uint64_t seed)
{
    uint64_t st = seed * 1000003;
    size_t rows = (size_t)tu_rand_int(&st, 1, 5);
    int64_t in = tu_rand_int(&st, 1, 6), out = tu_rand_int(&st, 1, 6);
    tgraph t;
    tg_init(&t, in);
    switch (kind) {
    case MGR_OP_DENSE:
        tg_add(&t, MGR_OP_DENSE, 0, -1, out, 0);
        break;
    case MGR_OP_SCALE:
        tg_add(&t, MGR_OP_SCALE, 0, -1, 0, -1.75);
        break;
    case MGR_OP_ADD:
        /* y = tanh(x) + x: in0 is an inner node, in1 the input. */
        tg_add(&t, MGR_OP_TANH, 0, -1, 0, 0);
        tg_add(&t, MGR_OP_ADD, 1, 0, 0, 0);
        break;
    default:
        tg_add(&t, kind, 0, -1, 0, 0);
        break;
    }
    char label[64];
    snprintf(label, sizeof label, "%s seed %llu", name, (unsigned long long)seed);
    fd_problem pb;
    mgrad_context *ctx = new_ctx();
    fd_setup(&pb, ctx, &t.g, rows, seed, kind == MGR_OP_RELU ? 0.05 : 0.0);
    fd_check_graph(&pb, label, 1);
    fd_check_graph(&pb, label, 0);
    fd_teardown(&pb);
    finish_ctx(ctx);
}

/* Every op, behind a dense layer and followed by one, so that the op's
   input and output adjoints are workspace buffers and the parameters'
   second-order terms pass through it. */
static void check_op_inner(mgr_op_kind kind, const char *name, uint64_t seed)
{
    uint64_t st = seed * 15485863;
    size_t rows = (size_t)tu_rand_int(&st, 1, 4);
    int64_t in = tu_rand_int(&st, 1, 5), hid = tu_rand_int(&st, 1, 5);
    int64_t out = tu_rand_int(&st, 1, 4);
    tgraph t;
    tg_init(&t, in);
    int32_t d = tg_add(&t, MGR_OP_DENSE, 0, -1, hid, 0);
    int32_t k;
    if (kind == MGR_OP_ADD)
        k = tg_add(&t, MGR_OP_ADD, d, d, 0, 0); /* y = h + h: x̄ and x̄1 alias */
    else
        k = tg_add(&t, kind, d, -1, hid, 0.6);
    tg_add(&t, MGR_OP_DENSE, k, -1, out, 0);
    char label[64];
    snprintf(label, sizeof label, "dense-%s-dense seed %llu", name,
             (unsigned long long)seed);
    fd_problem pb;
    mgrad_context *ctx = new_ctx();
    fd_setup(&pb, ctx, &t.g, rows, seed, 0.0);
    fd_check_graph(&pb, label, 1);
    fd_check_graph(&pb, label, 0);
    fd_teardown(&pb);
    finish_ctx(ctx);
}

static const struct {
    mgr_op_kind kind;
    const char *name;
} all_ops[] = {
    { MGR_OP_DENSE, "dense" },     { MGR_OP_TANH, "tanh" },
    { MGR_OP_SIGMOID, "sigmoid" }, { MGR_OP_RELU, "relu" },
    { MGR_OP_GELU, "gelu" },       { MGR_OP_SOFTPLUS, "softplus" },
    { MGR_OP_SCALE, "scale" },     { MGR_OP_ADD, "add" },
};
#define NUM_OPS (sizeof all_ops / sizeof all_ops[0])

/* _i is the op index (a loop test). */
START_TEST(test_op_fd)
{
    for (uint64_t seed = 1; seed <= 4; seed++)
        check_op(all_ops[_i].kind, all_ops[_i].name, seed);
}
END_TEST

START_TEST(test_op_inner_fd)
{
    for (uint64_t seed = 1; seed <= 3; seed++)
        check_op_inner(all_ops[_i].kind, all_ops[_i].name, seed);
}
END_TEST

/* ---- activations: values and tails --------------------------------------- */

START_TEST(test_activation_values)
{
    /* Reference values from the closed forms in long double; the tails
       check the stable formulations (no overflow, no cancellation). */
    static const double xs[] = { -40.0, -8.0, -1.3, -1e-3, 0.0, 0.7, 5.0, 40.0, 800.0 };
    size_t n = sizeof xs / sizeof xs[0];
    tgraph t;
    tg_init(&t, (int64_t)n);
    int32_t kinds[] = { MGR_OP_TANH, MGR_OP_SIGMOID, MGR_OP_RELU, MGR_OP_GELU,
                        MGR_OP_SOFTPLUS };
    for (size_t a = 0; a < 5; a++) tg_add(&t, (mgr_op_kind)kinds[a], 0, -1, 0, 0);
    mgrad_context *ctx = new_ctx();
    mgr_graph_ws_f64 *ws = NULL;
    ck_assert_int_eq(mgr_graph_ws_create_f64(ctx, &t.g, 1, &ws), MGRAD_OK);
    mgr_graph_forward_f64(&t.g, ws, 1, NULL, xs);
    for (size_t i = 0; i < n; i++) {
        long double x = xs[i];
        long double ref[5];
        ref[0] = tanhl(x);
        ref[1] = 1.0L / (1.0L + expl(-x));
        ref[2] = x > 0 ? x : 0;
        ref[3] = x * 0.5L * erfcl(-x / sqrtl(2.0L));
        ref[4] = x > 30 ? x + log1pl(expl(-x)) : log1pl(expl(x));
        for (size_t a = 0; a < 5; a++) {
            double got = ws->val[a + 1][i];
            ck_assert_msg(isfinite(got), "activation %zu not finite at %g", a, xs[i]);
            ck_assert_msg(tu_rel_err(got, (double)ref[a], 1e-300) <= 1e-13,
                          "activation %zu at %g: %.17g vs %.17Lg", a, xs[i], got,
                          ref[a]);
        }
    }
    mgr_graph_ws_destroy_f64(ctx, ws);
    mgrad_context_destroy(ctx);
}
END_TEST

/* ---- loss ---------------------------------------------------------------- */

enum { LOSS_CE_HARD, LOSS_CE_SMOOTH, LOSS_CE_SOFT, LOSS_CE_SOFT_OFF, LOSS_SE, LOSS_CASES };
static const char *loss_names[LOSS_CASES] = {
    "CE hard labels", "CE label smoothing", "CE soft targets",
    "CE soft targets off the simplex", "squared error"
};

typedef struct loss_problem {
    mgr_loss_batch_f64 lb;
    size_t rows, c;
    int32_t *labels;
    double *targets, *weights, *o, *od;
} loss_problem;

static void loss_setup(loss_problem *lp, int which, uint64_t seed, double logit_scale)
{
    uint64_t st = seed * 2654435761u + (uint64_t)which;
    memset(lp, 0, sizeof *lp);
    lp->rows = (size_t)tu_rand_int(&st, 1, 5);
    lp->c = (size_t)tu_rand_int(&st, 2, 7);
    size_t n = lp->rows * lp->c;
    lp->labels = calloc(lp->rows, sizeof(int32_t));
    lp->targets = dalloc(n);
    lp->weights = dalloc(lp->rows);
    lp->o = dalloc(n);
    lp->od = dalloc(n);
    ck_assert_ptr_nonnull(lp->labels);
    for (size_t i = 0; i < lp->rows; i++) {
        lp->labels[i] = (int32_t)(size_t)tu_rand_int(&st, 0, lp->c - 1);
        lp->weights[i] = 0.25 + 0.75 * (tu_rand(&st) + 1.0);
    }
    tu_fill(lp->o, n, &st, logit_scale);
    tu_fill(lp->od, n, &st, 1.0);
    for (size_t i = 0; i < lp->rows; i++) {
        double s = 0;
        for (size_t j = 0; j < lp->c; j++) {
            lp->targets[i * lp->c + j] =
                which == LOSS_SE ? 2 * tu_rand(&st) : 1.0 + tu_rand(&st) + 0.01;
            s += lp->targets[i * lp->c + j];
        }
        if (which == LOSS_CE_SOFT)
            for (size_t j = 0; j < lp->c; j++) lp->targets[i * lp->c + j] /= s;
    }
    lp->lb.kind = which == LOSS_SE ? MGRAD_LOSS_SQUARED_ERROR : MGRAD_LOSS_CROSS_ENTROPY;
    lp->lb.rows = lp->rows;
    lp->lb.classes = lp->c;
    lp->lb.smoothing = which == LOSS_CE_SMOOTH ? 0.15 : 0.0;
    lp->lb.labels = lp->labels;
    lp->lb.targets = which == LOSS_CE_HARD || which == LOSS_CE_SMOOTH ? NULL : lp->targets;
    lp->lb.weights = lp->weights;
    lp->lb.scale = 1.0 / (double)lp->rows;
}

static void loss_teardown(loss_problem *lp)
{
    free(lp->labels);
    free(lp->targets);
    free(lp->weights);
    free(lp->o);
    free(lp->od);
}

/* ℓ_i from the textbook formula in long double: −Σ q log softmax(o), or
   ½‖o − t‖², plus (1 − Σq) log Z off the simplex. */
static long double loss_reference(const loss_problem *lp, size_t i)
{
    const double *oi = lp->o + i * lp->c;
    long double l = 0;
    if (lp->lb.kind == MGRAD_LOSS_SQUARED_ERROR) {
        for (size_t j = 0; j < lp->c; j++) {
            long double d = (long double)oi[j] - lp->targets[i * lp->c + j];
            l += 0.5L * d * d;
        }
        return l;
    }
    long double z = 0, qs = 0;
    for (size_t j = 0; j < lp->c; j++) z += expl((long double)oi[j]);
    for (size_t j = 0; j < lp->c; j++) {
        long double q;
        if (lp->lb.targets != NULL)
            q = lp->targets[i * lp->c + j];
        else
            q = lp->lb.smoothing / lp->c + ((int32_t)j == lp->labels[i] ? 1 - lp->lb.smoothing : 0);
        l -= q * logl(expl((long double)oi[j]) / z);
        qs += q;
    }
    return l + (1 - qs) * logl(z);
}

static void check_loss(int which, uint64_t seed)
{
    char what[128];
    double h = FD_H;
    loss_problem lp;
    loss_setup(&lp, which, seed, 3.0);
    size_t n = lp.rows * lp.c;
    const mgr_loss_batch_f64 *lb = &lp.lb;
    double *prob = dalloc(n), *ell = dalloc(lp.rows), *obar = dalloc(n);
    double *op = dalloc(n), *om = dalloc(n), *fd = dalloc(n), *ellp = dalloc(lp.rows);
    double *ellm = dalloc(lp.rows), *elld = dalloc(lp.rows), *obd = dalloc(n);
    double *obp = dalloc(n), *obm = dalloc(n);

    /* Forward against the reference formula, and the returned total. */
    double L = mgr_loss_forward_f64(lb, lp.o, prob, ell);
    double total = 0;
    for (size_t i = 0; i < lp.rows; i++) {
        double ref = (double)loss_reference(&lp, i);
        ck_assert_msg(tu_rel_err(ell[i], ref, 1e-12) <= 1e-12, "%s: ell[%zu] %.17g vs %.17g",
                      loss_names[which], i, ell[i], ref);
        total += lp.weights[i] * ref;
    }
    snprintf(what, sizeof what, "%s forward total seed %llu", loss_names[which],
             (unsigned long long)seed);
    check_err(what, tu_rel_err(L, total / (double)lp.rows, 1e-12), 1e-12);

    /* Backward: ō against the FD of L. */
    mgr_loss_backward_f64(lb, lp.o, prob, obar);
    for (size_t j = 0; j < n; j++) {
        memcpy(op, lp.o, n * sizeof(double));
        op[j] += h;
        double lpv = mgr_loss_forward_f64(lb, op, prob, NULL);
        op[j] -= 2 * h;
        double lmv = mgr_loss_forward_f64(lb, op, prob, NULL);
        fd[j] = (lpv - lmv) / (2 * h);
    }
    snprintf(what, sizeof what, "%s backward seed %llu", loss_names[which],
             (unsigned long long)seed);
    check_err(what, tu_vec_rel_err(obar, fd, n, 1e-10), FD_TOL);

    /* Tangent: ℓ̇ against the FD of ℓ along ȯ. */
    tu_axpy_to(op, lp.o, h, lp.od, n);
    tu_axpy_to(om, lp.o, -h, lp.od, n);
    mgr_loss_forward_f64(lb, op, prob, ellp);
    mgr_loss_forward_f64(lb, om, prob, ellm);
    for (size_t i = 0; i < lp.rows; i++) fd[i] = (ellp[i] - ellm[i]) / (2 * h);
    mgr_loss_forward_f64(lb, lp.o, prob, ell);
    mgr_loss_tangent_f64(lb, lp.o, prob, lp.od, elld);
    snprintf(what, sizeof what, "%s tangent seed %llu", loss_names[which],
             (unsigned long long)seed);
    check_err(what, tu_vec_rel_err(elld, fd, lp.rows, 1e-10), FD_TOL);

    /* Tangent of backward: (ō)˙ against the FD of ō along ȯ. */
    mgr_loss_tangent_backward_f64(lb, lp.o, prob, lp.od, obd);
    mgr_loss_forward_f64(lb, op, prob, NULL);
    mgr_loss_backward_f64(lb, op, prob, obp);
    mgr_loss_forward_f64(lb, om, prob, NULL);
    mgr_loss_backward_f64(lb, om, prob, obm);
    for (size_t j = 0; j < n; j++) fd[j] = (obp[j] - obm[j]) / (2 * h);
    snprintf(what, sizeof what, "%s tangent_backward seed %llu", loss_names[which],
             (unsigned long long)seed);
    check_err(what, tu_vec_rel_err(obd, fd, n, 1e-10), FD_TOL);

    free(prob);
    free(ell);
    free(obar);
    free(op);
    free(om);
    free(fd);
    free(ellp);
    free(ellm);
    free(elld);
    free(obd);
    free(obp);
    free(obm);
    loss_teardown(&lp);
}

START_TEST(test_loss_fd)
{
    for (uint64_t seed = 1; seed <= 5; seed++) check_loss(_i, seed);
}
END_TEST

/* Cross-entropy with targets on the simplex is shift-invariant per row; huge logits must neither
   overflow nor lose the loss to cancellation. */
START_TEST(test_loss_ce_stable)
{
    loss_problem lp;
    loss_setup(&lp, _i, 3, 3.0);
    size_t n = lp.rows * lp.c;
    double *prob = dalloc(n), *ell = dalloc(lp.rows), *ell2 = dalloc(lp.rows);
    double *shifted = dalloc(n);
    mgr_loss_forward_f64(&lp.lb, lp.o, prob, ell);
    for (int sgn = -1; sgn <= 1; sgn += 2) {
        for (size_t j = 0; j < n; j++) shifted[j] = lp.o[j] + sgn * 1000.0;
        mgr_loss_forward_f64(&lp.lb, shifted, prob, ell2);
        for (size_t i = 0; i < lp.rows; i++) {
            ck_assert(isfinite(ell2[i]));
            /* The shift rounds each logit by up to ulp(1000) ≈ 1e-13. */
            ck_assert_msg(fabs(ell2[i] - ell[i]) <= 1e-11, "%s shifted by %d000: %.17g vs %.17g",
                          loss_names[_i], sgn, ell2[i], ell[i]);
        }
        for (size_t j = 0; j < n; j++) ck_assert(isfinite(prob[j]));
    }
    free(prob);
    free(ell);
    free(ell2);
    free(shifted);
    loss_teardown(&lp);
}
END_TEST

/* ---- whole graph: MLP + cross-entropy, the Hessian-vector product -------- */

typedef struct mlp {
    tgraph t;
    size_t rows, nin, C, P;
    int32_t *labels;
    double *weights;
    mgr_loss_batch_f64 lb;
    mgrad_context *ctx;
    mgr_graph_ws_f64 *ws;
    double *prob, *ell;
} mlp;

/* variant 0: tanh, GELU, softplus; variant 1: ReLU for all three (the R-op's
   reduced backward then skips the input-side adjoints). */
static void mlp_setup_variant(mlp *m, uint64_t seed, int variant)
{
    uint64_t st = seed * 31337;
    memset(m, 0, sizeof *m);
    m->rows = (size_t)tu_rand_int(&st, 2, 4);
    m->nin = (size_t)tu_rand_int(&st, 2, 5);
    m->C = (size_t)tu_rand_int(&st, 2, 4);
    int64_t hid = tu_rand_int(&st, 3, 6);
    tg_init(&m->t, (int64_t)m->nin);
    int32_t d1 = tg_add(&m->t, MGR_OP_DENSE, 0, -1, hid, 0);
    int32_t a1 = tg_add(&m->t, variant ? MGR_OP_RELU : MGR_OP_TANH, d1, -1, 0, 0);
    int32_t d2 = tg_add(&m->t, MGR_OP_DENSE, a1, -1, hid, 0);
    int32_t r = tg_add(&m->t, MGR_OP_ADD, d2, a1, 0, 0);
    int32_t a2 = tg_add(&m->t, variant ? MGR_OP_RELU : MGR_OP_GELU, r, -1, 0, 0);
    int32_t s = tg_add(&m->t, MGR_OP_SCALE, a2, -1, 0, 0.8);
    int32_t a3 = tg_add(&m->t, variant ? MGR_OP_RELU : MGR_OP_SOFTPLUS, s, -1, 0, 0);
    tg_add(&m->t, MGR_OP_DENSE, a3, -1, (int64_t)m->C, 0);
    m->P = (size_t)m->t.g.num_params;
    m->labels = calloc(m->rows, sizeof(int32_t));
    m->weights = dalloc(m->rows);
    ck_assert_ptr_nonnull(m->labels);
    for (size_t i = 0; i < m->rows; i++) {
        m->labels[i] = (int32_t)(size_t)tu_rand_int(&st, 0, m->C - 1);
        m->weights[i] = 0.5 + 0.5 * (tu_rand(&st) + 1.0);
    }
    m->lb.kind = MGRAD_LOSS_CROSS_ENTROPY;
    m->lb.rows = m->rows;
    m->lb.classes = m->C;
    m->lb.smoothing = 0.1;
    m->lb.labels = m->labels;
    m->lb.weights = m->weights;
    m->lb.scale = 1.0 / (double)m->rows;
    m->ctx = new_ctx();
    ck_assert_int_eq(mgr_graph_ws_create_f64(m->ctx, &m->t.g, m->rows, &m->ws), MGRAD_OK);
    m->prob = dalloc(m->rows * m->C);
    m->ell = dalloc(m->rows);
}

static void mlp_setup(mlp *m, uint64_t seed)
{
    mlp_setup_variant(m, seed, 0);
}

static void mlp_teardown(mlp *m)
{
    mgr_graph_ws_destroy_f64(m->ctx, m->ws);
    mgrad_context_destroy(m->ctx);
    free(m->labels);
    free(m->weights);
    free(m->prob);
    free(m->ell);
}

/* grad = ∇_θ L(θ, x) (overwritten); the output adjoint is written straight
   into ws->adj[last], which backward allows. */
static void mlp_grad(mlp *m, const double *theta, const double *x, double *grad)
{
    int32_t last = m->t.g.num_nodes - 1;
    memset(grad, 0, m->P * sizeof(double));
    mgr_graph_forward_f64(&m->t.g, m->ws, m->rows, theta, x);
    mgr_loss_forward_f64(&m->lb, m->ws->val[last], m->prob, m->ell);
    mgr_loss_backward_f64(&m->lb, m->ws->val[last], m->prob, m->ws->adj[last]);
    mgr_graph_backward_f64(&m->t.g, m->ws, m->rows, theta, x, m->ws->adj[last], grad,
                           NULL);
}

START_TEST(test_mlp_hvp)
{
    uint64_t seed = (uint64_t)_i + 1;
    mlp m;
    mlp_setup(&m, seed);
    size_t P = m.P, nx = m.rows * m.nin, C = m.C;
    int32_t last = m.t.g.num_nodes - 1;
    double h = FD_H;
    uint64_t st = seed * 977;
    double *theta = dalloc(P), *u = dalloc(P), *x = dalloc(nx);
    double *grad = dalloc(P), *hu = dalloc(P), *xbd = dalloc(nx), *fd = dalloc(P > nx ? P : nx);
    double *tp = dalloc(P), *gp = dalloc(P), *gm = dalloc(P), *xp = dalloc(nx);
    double *elld = dalloc(m.rows), *ellp = dalloc(m.rows), *ellm = dalloc(m.rows);
    double *obd = dalloc(m.rows * C);
    tu_fill(theta, P, &st, 0.6);
    tu_fill(u, P, &st, 1.0);
    tu_fill(x, nx, &st, 1.5);

    /* The R-op pass of a reverse step: input tangents 0, direction u. */
    mlp_grad(&m, theta, x, grad);
    mgr_graph_tangent_f64(&m.t.g, m.ws, m.rows, theta, u, x, NULL);
    mgr_loss_tangent_f64(&m.lb, m.ws->val[last], m.prob, m.ws->tan[last], elld);
    mgr_loss_tangent_backward_f64(&m.lb, m.ws->val[last], m.prob, m.ws->tan[last], obd);
    mgr_graph_tangent_backward_f64(&m.t.g, m.ws, m.rows, theta, u, x, NULL, obd, hu, xbd);

    char what[128];
    /* H u against the FD of the gradient along u. */
    tu_axpy_to(tp, theta, h, u, P);
    mlp_grad(&m, tp, x, gp);
    memcpy(ellp, m.ell, m.rows * sizeof(double));
    tu_axpy_to(tp, theta, -h, u, P);
    mlp_grad(&m, tp, x, gm);
    memcpy(ellm, m.ell, m.rows * sizeof(double));
    for (size_t j = 0; j < P; j++) fd[j] = (gp[j] - gm[j]) / (2 * h);
    snprintf(what, sizeof what, "MLP H u seed %llu", (unsigned long long)seed);
    check_err(what, tu_vec_rel_err(hu, fd, P, 1e-10), FD_TOL);

    /* ℓ̇_i = ⟨∇_θ ℓ_i, u⟩ against the FD of ℓ_i along u. */
    for (size_t i = 0; i < m.rows; i++) fd[i] = (ellp[i] - ellm[i]) / (2 * h);
    snprintf(what, sizeof what, "MLP loss tangent seed %llu", (unsigned long long)seed);
    check_err(what, tu_vec_rel_err(elld, fd, m.rows, 1e-10), FD_TOL);

    /* (x̄)˙ = ∂⟨u, ∇_θ L⟩/∂x against its FD, one input at a time. */
    for (size_t j = 0; j < nx; j++) {
        memcpy(xp, x, nx * sizeof(double));
        xp[j] += h;
        mlp_grad(&m, theta, xp, gp);
        xp[j] -= 2 * h;
        mlp_grad(&m, theta, xp, gm);
        double d = 0;
        for (size_t k = 0; k < P; k++) d += u[k] * (gp[k] - gm[k]);
        fd[j] = d / (2 * h);
    }
    snprintf(what, sizeof what, "MLP input metagradient seed %llu", (unsigned long long)seed);
    check_err(what, tu_vec_rel_err(xbd, fd, nx, 1e-10), FD_TOL);

    free(theta);
    free(u);
    free(x);
    free(grad);
    free(hu);
    free(xbd);
    free(fd);
    free(tp);
    free(gp);
    free(gm);
    free(xp);
    free(elld);
    free(ellp);
    free(ellm);
    free(obd);
    mlp_teardown(&m);
}
END_TEST

/* The R-op's reduced backward (mgr_graph_backward_rop) leaves tangent_backward
   exactly what the full backward does: H u and (x̄)˙ bit for bit, with every
   adjoint it skips poisoned with NaN beforehand (so one read would show). */
START_TEST(test_backward_rop)
{
    for (int variant = 0; variant < 2; variant++)
        for (int want_x = 0; want_x < 2; want_x++) {
            mlp m;
            mlp_setup_variant(&m, (uint64_t)_i + 11, variant);
            size_t P = m.P, nx = m.rows * m.nin, C = m.C;
            int32_t last = m.t.g.num_nodes - 1;
            uint64_t st = (uint64_t)_i * 7919 + 3;
            double *theta = dalloc(P), *u = dalloc(P), *x = dalloc(nx), *grad = dalloc(P);
            double *hu[2] = {dalloc(P), dalloc(P)}, *xbd[2] = {dalloc(nx), dalloc(nx)};
            double *obd = dalloc(m.rows * C), *obar = dalloc(m.rows * C);
            tu_fill(theta, P, &st, 0.8);
            tu_fill(u, P, &st, 1.0);
            tu_fill(x, nx, &st, 1.5);
            for (int pass = 0; pass < 2; pass++) {
                mgr_graph_forward_f64(&m.t.g, m.ws, m.rows, theta, x);
                mgr_loss_forward_f64(&m.lb, m.ws->val[last], m.prob, m.ell);
                mgr_loss_backward_f64(&m.lb, m.ws->val[last], m.prob, obar);
                if (pass == 0) {
                    memset(grad, 0, P * sizeof(double));
                    mgr_graph_backward_f64(&m.t.g, m.ws, m.rows, theta, x, obar, grad, NULL);
                } else {
                    for (int32_t k = 1; k < last; k++)
                        for (size_t j = 0; j < m.rows * (size_t)m.t.g.nodes[k].size; j++)
                            m.ws->adj[k][j] = NAN;
                    mgr_graph_backward_rop_f64(&m.t.g, m.ws, m.rows, theta, x, obar, want_x);
                }
                mgr_graph_tangent_f64(&m.t.g, m.ws, m.rows, theta, u, x, NULL);
                mgr_loss_tangent_backward_f64(&m.lb, m.ws->val[last], m.prob, m.ws->tan[last],
                                              obd);
                memset(hu[pass], 0, P * sizeof(double));
                memset(xbd[pass], 0, nx * sizeof(double));
                mgr_graph_tangent_backward_f64(&m.t.g, m.ws, m.rows, theta, u, x, NULL, obd,
                                               hu[pass], want_x ? xbd[pass] : NULL);
            }
            ck_assert_msg(memcmp(hu[0], hu[1], P * sizeof(double)) == 0,
                          "variant %d want_x %d: H u differs", variant, want_x);
            ck_assert_msg(memcmp(xbd[0], xbd[1], nx * sizeof(double)) == 0,
                          "variant %d want_x %d: input adjoint tangent differs", variant, want_x);
            for (size_t j = 0; j < P; j++) ck_assert(isfinite(hu[1][j]));
            double *bufs[] = {theta, u, x, grad, hu[0], hu[1], xbd[0], xbd[1], obd, obar};
            for (size_t j = 0; j < sizeof bufs / sizeof bufs[0]; j++) free(bufs[j]);
            mlp_teardown(&m);
        }
}
END_TEST

/* The image and sequence graphs of test_backward_rop_images: the ops whose
   rule is "ȳ for (x̄)˙ or when ẋ ≠ 0" (conv2d, batch and layer norm, per
   position too), the pools (never) and residual adds, built through
   mgr_graph_append.  *rows >= 2 (batch norm). */
enum { ROP_CONV_BN_POOL, ROP_RESNET, ROP_PROJECTION, ROP_INPUT_NORM, ROP_SEQUENCE, ROP_GRAPHS };
static const char *ROP_GRAPH_NAMES[ROP_GRAPHS] = {
    "conv-bn-relu x2, pools", "resnet block", "stride-2 block with projection, layer norm",
    "batch norm and pooling on the input", "sequence: layer norm, attention"};

static void rop_graph(mgrad_context *ctx, mgr_graph *g, int which, uint64_t *st, size_t *rows)
{
    *rows = (size_t)tu_rand_int(st, 2, 3);
    int64_t C = tu_rand_int(st, 1, 2), H = tu_rand_int(st, 6, 8), W = tu_rand_int(st, 6, 8);
    int64_t oc = tu_rand_int(st, 2, 3), classes = tu_rand_int(st, 2, 4);
    int64_t shape[3] = {C, H, W};
    if (which == ROP_SEQUENCE) {
        int64_t L = tu_rand_int(st, 2, 4), w = 2 * tu_rand_int(st, 1, 2);
        int64_t sshape[2] = {L, w};
        ck_assert_int_eq(mgr_graph_create(ctx, 2, sshape, g), MGRAD_OK);
        g->nodes[0].positions = L;
        mgr_node n = mk(MGR_OP_SEQ_LAYER_NORM, 0);
        n.eps = 1e-3;
        int32_t ln = add_node(ctx, g, n);
        n = mk(MGR_OP_SEQ_DENSE, ln);
        n.shape[0] = w;
        int32_t d0 = add_node(ctx, g, n);
        n = mk(MGR_OP_SEQ_LAYER_NORM, d0);
        n.eps = 1e-3;
        int32_t ln1 = add_node(ctx, g, n);
        n = mk(MGR_OP_SEQ_DENSE, ln1);
        n.shape[0] = 3 * w;
        int32_t qkv = add_node(ctx, g, n);
        n = mk(MGR_OP_ATTENTION, qkv);
        n.heads = 2;
        int32_t att = add_node(ctx, g, n);
        n = mk(MGR_OP_ADD, att);
        n.in1 = d0;
        int32_t r = add_node(ctx, g, n);
        n = mk(MGR_OP_SEQ_DENSE, add_simple(ctx, g, MGR_OP_RELU, r));
        n.shape[0] = classes;
        add_node(ctx, g, n);
        return;
    }
    ck_assert_int_eq(mgr_graph_create(ctx, 3, shape, g), MGRAD_OK);
    int32_t h = 0;
    switch (which) {
    case ROP_CONV_BN_POOL:
        h = add_conv(ctx, g, 0, oc, 3, 1, 1);
        h = add_simple(ctx, g, MGR_OP_RELU, add_norm(ctx, g, MGR_OP_BATCH_NORM, h, 1e-3));
        h = add_conv(ctx, g, h, oc, 3, 1, 1);
        h = add_simple(ctx, g, MGR_OP_RELU, add_norm(ctx, g, MGR_OP_BATCH_NORM, h, 1e-3));
        h = add_window(ctx, g, MGR_OP_AVG_POOL, h, 2, 2);
        h = add_window(ctx, g, MGR_OP_MAX_POOL, h, 2, 1);
        h = add_simple(ctx, g, MGR_OP_GLOBAL_AVG_POOL, h);
        break;
    case ROP_RESNET: {
        int32_t a = add_conv(ctx, g, 0, oc, 3, 1, 1);
        a = add_simple(ctx, g, MGR_OP_RELU, add_norm(ctx, g, MGR_OP_BATCH_NORM, a, 1e-3));
        h = add_conv(ctx, g, a, oc, 3, 1, 1);
        h = add_simple(ctx, g, MGR_OP_RELU, add_norm(ctx, g, MGR_OP_BATCH_NORM, h, 1e-3));
        h = add_norm(ctx, g, MGR_OP_BATCH_NORM, add_conv(ctx, g, h, oc, 3, 1, 1), 1e-3);
        mgr_node n = mk(MGR_OP_ADD, h);
        n.in1 = a;
        h = add_simple(ctx, g, MGR_OP_RELU, add_node(ctx, g, n));
        h = add_simple(ctx, g, MGR_OP_FLATTEN, add_window(ctx, g, MGR_OP_MAX_POOL, h, 2, 2));
        break;
    }
    case ROP_PROJECTION: {
        int32_t a = add_conv(ctx, g, 0, oc, 3, 1, 1);
        a = add_simple(ctx, g, MGR_OP_TANH, add_norm(ctx, g, MGR_OP_LAYER_NORM, a, 1e-3));
        h = add_conv(ctx, g, a, 2 * oc, 3, 2, 1);
        h = add_simple(ctx, g, MGR_OP_RELU, add_norm(ctx, g, MGR_OP_BATCH_NORM, h, 1e-3));
        h = add_norm(ctx, g, MGR_OP_BATCH_NORM, add_conv(ctx, g, h, 2 * oc, 3, 1, 1), 1e-3);
        int32_t p =
            add_norm(ctx, g, MGR_OP_BATCH_NORM, add_conv(ctx, g, a, 2 * oc, 1, 2, 0), 1e-3);
        mgr_node n = mk(MGR_OP_ADD, h);
        n.in1 = p;
        h = add_simple(ctx, g, MGR_OP_GELU, add_node(ctx, g, n));
        h = add_simple(ctx, g, MGR_OP_GLOBAL_AVG_POOL, h);
        break;
    }
    case ROP_INPUT_NORM:
        h = add_norm(ctx, g, MGR_OP_BATCH_NORM, 0, 1e-3);
        h = add_window(ctx, g, MGR_OP_AVG_POOL, h, 2, 1);
        h = add_conv(ctx, g, h, oc, 3, 1, 1);
        h = add_simple(ctx, g, MGR_OP_SOFTPLUS, add_norm(ctx, g, MGR_OP_BATCH_NORM, h, 1e-3));
        h = add_simple(ctx, g, MGR_OP_FLATTEN, h);
        break;
    }
    add_dense(ctx, g, h, classes);
}

/* test_backward_rop on conv nets: the R-op's reduced backward leaves
   tangent_backward exactly what the full backward does (H u and (x̄)˙ bit
   for bit), with the adjoints it skips poisoned with NaN; and without
   input metaparameters it does skip some (so a graph that fell back to
   the full backward would fail here). */
START_TEST(test_backward_rop_images)
{
    for (int which = 0; which < ROP_GRAPHS; which++)
        for (int want_x = 0; want_x < 2; want_x++) {
            uint64_t st = (uint64_t)_i * 6151 + (uint64_t)which * 97 + (uint64_t)want_x;
            mgrad_context *ctx = new_ctx();
            mgr_graph g;
            size_t rows = 0;
            rop_graph(ctx, &g, which, &st, &rows);
            int32_t last = g.num_nodes - 1;
            size_t P = (size_t)g.num_params, nx = rows * (size_t)g.nodes[0].size;
            size_t no = rows * (size_t)g.nodes[last].size;
            mgr_graph_ws_f64 *ws = NULL;
            ck_assert_int_eq(mgr_graph_ws_create_f64(ctx, &g, rows, &ws), MGRAD_OK);
            double *theta = dalloc(P), *u = dalloc(P), *x = dalloc(nx), *grad = dalloc(P);
            double *hu[2] = {dalloc(P), dalloc(P)}, *xbd[2] = {dalloc(nx), dalloc(nx)};
            double *obar = dalloc(no), *obd = dalloc(no);
            tu_fill(theta, P, &st, 0.8);
            tu_fill(u, P, &st, 1.0);
            tu_fill(x, nx, &st, 1.5);
            tu_fill(obar, no, &st, 1.0);
            tu_fill(obd, no, &st, 1.0);
            int skipped = 0;
            for (int pass = 0; pass < 2; pass++) {
                mgr_graph_forward_f64(&g, ws, rows, theta, x);
                if (pass == 0) {
                    memset(grad, 0, P * sizeof(double));
                    mgr_graph_backward_f64(&g, ws, rows, theta, x, obar, grad, NULL);
                } else {
                    for (int32_t k = 1; k < last; k++)
                        for (size_t j = 0; j < rows * (size_t)g.nodes[k].size; j++)
                            ws->adj[k][j] = NAN;
                    mgr_graph_backward_rop_f64(&g, ws, rows, theta, x, obar, want_x);
                    for (int32_t k = 1; k < last; k++) skipped += isnan(ws->adj[k][0]) != 0;
                }
                mgr_graph_tangent_f64(&g, ws, rows, theta, u, x, NULL);
                memset(hu[pass], 0, P * sizeof(double));
                memset(xbd[pass], 0, nx * sizeof(double));
                mgr_graph_tangent_backward_f64(&g, ws, rows, theta, u, x, NULL, obd, hu[pass],
                                               want_x ? xbd[pass] : NULL);
            }
            const char *name = ROP_GRAPH_NAMES[which];
            ck_assert_msg(memcmp(hu[0], hu[1], P * sizeof(double)) == 0,
                          "%s, want_x %d: H u differs", name, want_x);
            ck_assert_msg(memcmp(xbd[0], xbd[1], nx * sizeof(double)) == 0,
                          "%s, want_x %d: input adjoint tangent differs", name, want_x);
            for (size_t j = 0; j < P; j++) ck_assert(isfinite(hu[1][j]));
            for (size_t j = 0; j < nx; j++) ck_assert(isfinite(xbd[1][j]));
            if (!want_x)
                ck_assert_msg(skipped > 0, "%s: the R-op's backward skipped no adjoint", name);
            double *bufs[] = {theta, u, x, grad, hu[0], hu[1], xbd[0], xbd[1], obar, obd};
            for (size_t j = 0; j < sizeof bufs / sizeof bufs[0]; j++) free(bufs[j]);
            mgr_graph_ws_destroy_f64(ctx, ws);
            mgr_graph_free(ctx, &g);
            finish_ctx(ctx);
        }
}
END_TEST

/* The forward memo (mgr_graph_forward_memo): memo_out records the dense
   nodes' values; memo_in replaces their products, so a forward at another θ
   with the memo reproduces every node of the first forward bit for bit
   (the other nodes depend on θ only through the dense ones here). */
START_TEST(test_forward_memo)
{
    for (int variant = 0; variant < 2; variant++) {
        mlp m;
        mlp_setup_variant(&m, (uint64_t)_i + 23, variant);
        const mgr_graph *g = &m.t.g;
        size_t P = m.P, nx = m.rows * m.nin, want = 0;
        for (int32_t k = 1; k < g->num_nodes; k++)
            if (g->nodes[k].kind == MGR_OP_DENSE) want += m.rows * (size_t)g->nodes[k].size;
        ck_assert_uint_eq(mgr_graph_memo_elems(g, m.rows), want);
        uint64_t st = (uint64_t)_i * 104729 + 17;
        double *theta = dalloc(P), *other = dalloc(P), *x = dalloc(nx), *memo = dalloc(want);
        tu_fill(theta, P, &st, 0.8);
        tu_fill(x, nx, &st, 1.5);
        for (size_t j = 0; j < P; j++) other[j] = theta[j] + 0.25;
        /* plain forward: the reference values of every node */
        mgr_graph_forward_f64(g, m.ws, m.rows, theta, x);
        double *ref[MAX_NODES] = {0};
        for (int32_t k = 1; k < g->num_nodes; k++) {
            size_t n = m.rows * (size_t)g->nodes[k].size;
            ref[k] = dalloc(n);
            memcpy(ref[k], m.ws->val[k], n * sizeof(double));
        }
        /* memo_out: same values, and the memo holds the dense ones in order */
        for (size_t j = 0; j < want; j++) memo[j] = NAN;
        mgr_graph_forward_memo_f64(g, m.ws, m.rows, theta, x, NULL, memo);
        size_t off = 0;
        for (int32_t k = 1; k < g->num_nodes; k++) {
            size_t n = m.rows * (size_t)g->nodes[k].size;
            ck_assert(memcmp(m.ws->val[k], ref[k], n * sizeof(double)) == 0);
            if (g->nodes[k].kind != MGR_OP_DENSE) continue;
            ck_assert(memcmp(memo + off, ref[k], n * sizeof(double)) == 0);
            off += n;
        }
        /* memo_in at another θ: the products are not recomputed */
        mgr_graph_forward_memo_f64(g, m.ws, m.rows, other, x, memo, NULL);
        for (int32_t k = 1; k < g->num_nodes; k++) {
            size_t n = m.rows * (size_t)g->nodes[k].size;
            ck_assert_msg(memcmp(m.ws->val[k], ref[k], n * sizeof(double)) == 0,
                          "variant %d: node %d differs with the memo", variant, (int)k);
        }
        /* without it, the other θ gives other values (the test can fail) */
        mgr_graph_forward_f64(g, m.ws, m.rows, other, x);
        int32_t last = g->num_nodes - 1;
        ck_assert(memcmp(m.ws->val[last], ref[last],
                         m.rows * (size_t)g->nodes[last].size * sizeof(double)) != 0);
        for (int32_t k = 1; k < g->num_nodes; k++) free(ref[k]);
        free(theta);
        free(other);
        free(x);
        free(memo);
        mlp_teardown(&m);
    }
}
END_TEST

/* The same pass on one buffer set twice gives identical results: backward
   and tangent_backward zero what they accumulate into. */
START_TEST(test_mlp_repeatable)
{
    mlp m;
    mlp_setup(&m, 7);
    size_t P = m.P, nx = m.rows * m.nin;
    int32_t last = m.t.g.num_nodes - 1;
    uint64_t st = 5;
    double *theta = dalloc(P), *u = dalloc(P), *x = dalloc(nx), *grad = dalloc(P);
    double *hu[2] = { dalloc(P), dalloc(P) }, *xbd[2] = { dalloc(nx), dalloc(nx) };
    double *obd = dalloc(m.rows * m.C);
    tu_fill(theta, P, &st, 0.6);
    tu_fill(u, P, &st, 1.0);
    tu_fill(x, nx, &st, 1.0);
    for (int rep = 0; rep < 2; rep++) {
        mlp_grad(&m, theta, x, grad);
        mgr_graph_tangent_f64(&m.t.g, m.ws, m.rows, theta, u, x, NULL);
        mgr_loss_tangent_backward_f64(&m.lb, m.ws->val[last], m.prob, m.ws->tan[last],
                                      m.ws->tadj[last]);
        mgr_graph_tangent_backward_f64(&m.t.g, m.ws, m.rows, theta, u, x, NULL,
                                       m.ws->tadj[last], hu[rep], xbd[rep]);
    }
    ck_assert(memcmp(hu[0], hu[1], P * sizeof(double)) == 0);
    ck_assert(memcmp(xbd[0], xbd[1], nx * sizeof(double)) == 0);
    free(theta);
    free(u);
    free(x);
    free(grad);
    free(hu[0]);
    free(hu[1]);
    free(xbd[0]);
    free(xbd[1]);
    free(obd);
    mlp_teardown(&m);
}
END_TEST

/* NULL directions mean zero: the passes with u = NULL (or ẋ = NULL) give
   what explicit zero vectors give, though they skip the work. */
START_TEST(test_null_directions)
{
    mlp m;
    mlp_setup(&m, 11);
    size_t P = m.P, nx = m.rows * m.nin, ny = m.rows * m.C;
    int32_t last = m.t.g.num_nodes - 1;
    uint64_t st = 8;
    double *theta = dalloc(P), *u = dalloc(P), *x = dalloc(nx), *xd = dalloc(nx);
    double *zp = dalloc(P), *zx = dalloc(nx), *grad = dalloc(P), *obd = dalloc(ny);
    double *tan[2] = { dalloc(ny), dalloc(ny) };
    double *hu[2] = { dalloc(P), dalloc(P) }, *xbd[2] = { dalloc(nx), dalloc(nx) };
    tu_fill(theta, P, &st, 0.6);
    tu_fill(u, P, &st, 1.0);
    tu_fill(x, nx, &st, 1.0);
    tu_fill(xd, nx, &st, 1.0);
    tu_fill(obd, ny, &st, 1.0);
    for (int dir = 0; dir < 2; dir++) { /* 0: u = 0, 1: ẋ = 0 */
        for (int rep = 0; rep < 2; rep++) {
            const double *uu = dir == 0 ? (rep == 0 ? NULL : zp) : u;
            const double *xx = dir == 1 ? (rep == 0 ? NULL : zx) : xd;
            mlp_grad(&m, theta, x, grad);
            mgr_graph_tangent_f64(&m.t.g, m.ws, m.rows, theta, uu, x, xx);
            memcpy(tan[rep], m.ws->tan[last], ny * sizeof(double));
            memset(hu[rep], 0, P * sizeof(double));
            memset(xbd[rep], 0, nx * sizeof(double));
            mgr_graph_tangent_backward_f64(&m.t.g, m.ws, m.rows, theta, uu, x, xx, obd,
                                           hu[rep], xbd[rep]);
        }
        check_err(dir == 0 ? "u = NULL vs 0: tangent" : "xdot = NULL vs 0: tangent",
                  tu_vec_rel_err(tan[0], tan[1], ny, 1e-300), 1e-14);
        check_err(dir == 0 ? "u = NULL vs 0: (theta bar)dot" : "xdot = NULL vs 0: (theta bar)dot",
                  tu_vec_rel_err(hu[0], hu[1], P, 1e-300), 1e-14);
        check_err(dir == 0 ? "u = NULL vs 0: (x bar)dot" : "xdot = NULL vs 0: (x bar)dot",
                  tu_vec_rel_err(xbd[0], xbd[1], nx, 1e-300), 1e-14);
    }
    free(theta);
    free(u);
    free(x);
    free(xd);
    free(zp);
    free(zx);
    free(grad);
    free(obd);
    for (int i = 0; i < 2; i++) {
        free(tan[i]);
        free(hu[i]);
        free(xbd[i]);
    }
    mlp_teardown(&m);
}
END_TEST

/* ---- BLAS seam ------------------------------------------------------------ */

START_TEST(test_gemm_vs_naive)
{
    int ta = _i & 1, tb = (_i >> 1) & 1;
    /* Products between OpenBLAS's one-thread size and 2 M multiply-adds,
       which mgr_gemm cuts into pieces: by rows, by rows with a short last
       piece, by columns, and a single row. */
    static const size_t big[][3] = {{128, 10, 256}, {33, 257, 97}, {10, 300, 128},
                                    {1, 2000, 600}};
    for (uint64_t seed = 1; seed <= 10; seed++) {
        uint64_t st = seed * 104729 + (uint64_t)_i;
        size_t m = (size_t)tu_rand_int(&st, 1, 9), n = (size_t)tu_rand_int(&st, 1, 9), k = (size_t)tu_rand_int(&st, 1, 9);
        if (seed > 6) {
            m = big[seed - 7][0];
            n = big[seed - 7][1];
            k = big[seed - 7][2];
        }
        /* Row strides larger than needed check lda/ldb/ldc handling. */
        size_t arows = ta ? k : m, acols = ta ? m : k;
        size_t brows = tb ? n : k, bcols = tb ? k : n;
        size_t lda = acols + (size_t)tu_rand_int(&st, 0, 3), ldb = bcols + (size_t)tu_rand_int(&st, 0, 3);
        size_t ldc = n + (size_t)tu_rand_int(&st, 0, 3);
        double *a = dalloc(arows * lda), *b = dalloc(brows * ldb);
        double *c1 = dalloc(m * ldc), *c2 = dalloc(m * ldc), *c0 = dalloc(m * ldc);
        tu_fill(a, arows * lda, &st, 1.0);
        tu_fill(b, brows * ldb, &st, 1.0);
        /* Both sides compute α Σ_p a_ip b_pj + β c_ij with k products, k − 1
           additions in some order (OpenBLAS: blocked, vectorised, with FMA
           or not, depending on the kernel; the naive twin: index order, in
           double), the scalings and the final addition: each is within
           γ_{k+4} (|α| Σ_p |a_ip b_pj| + |β c_ij|) of the exact value,
           γ_n = n u / (1 − n u) (Higham, Accuracy and Stability of Numerical
           Algorithms, §3.5), so they differ by at most twice that.  This
           holds for every kernel and blocking; a wrong index, transpose,
           stride or piece is off by O(|c_ij|), orders of magnitude more. */
        const double alpha = -0.7, u = 0x1p-53;
        const double gam = (double)(k + 4) * u / (1 - (double)(k + 4) * u);
        for (int pass = 0; pass < 2; pass++) {
            double beta = pass == 0 ? 0.35 : 0.0;
            tu_fill(c1, m * ldc, &st, 1.0);
            if (pass == 1) /* beta = 0 must ignore C, even NaN */
                for (size_t i = 0; i < m * ldc; i++) c1[i] = NAN;
            memcpy(c2, c1, m * ldc * sizeof(double));
            memcpy(c0, c1, m * ldc * sizeof(double));
            mgr_gemm_f64(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c1, ldc);
            mgr_gemm_naive_f64(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c2, ldc);
            for (size_t i = 0; i < m; i++)
                for (size_t j = 0; j < n; j++) {
                    double mag = 0;
                    for (size_t p = 0; p < k; p++)
                        mag += fabs((ta ? a[p * lda + i] : a[i * lda + p]) *
                                    (tb ? b[j * ldb + p] : b[p * ldb + j]));
                    mag *= fabs(alpha);
                    if (beta != 0) mag += fabs(beta * c0[i * ldc + j]);
                    double d = fabs(c1[i * ldc + j] - c2[i * ldc + j]);
                    ck_assert_msg(d <= 2 * gam * mag,
                                  "gemm ta=%d tb=%d [%zu,%zu]: %.17g vs %.17g, bound %.3g",
                                  ta, tb, i, j, c1[i * ldc + j], c2[i * ldc + j],
                                  2 * gam * mag);
                }
            /* Padding between rows is never written. */
            for (size_t i = 0; i < m; i++)
                for (size_t j = n; j < ldc; j++)
                    ck_assert(c1[i * ldc + j] == c2[i * ldc + j] ||
                              (isnan(c1[i * ldc + j]) && isnan(c2[i * ldc + j])));
        }
        free(a);
        free(b);
        free(c1);
        free(c2);
        free(c0);
    }
}
END_TEST

/* ---- workspace ------------------------------------------------------------ */

typedef struct fail_alloc {
    int armed;
    int allow; /* allocations that still succeed once armed */
} fail_alloc;

static void *failing_malloc(size_t size, void *user_data)
{
    fail_alloc *f = user_data;
    if (f->armed && f->allow-- <= 0) return NULL;
    return malloc(size);
}

static void plain_free(void *ptr, void *user_data)
{
    (void)user_data;
    free(ptr);
}

START_TEST(test_ws_nomem)
{
    fail_alloc f = { 0, 0 };
    mgrad_context_options o = MGRAD_CONTEXT_OPTIONS_INIT;
    o.malloc_fn = failing_malloc;
    o.free_fn = plain_free;
    o.alloc_user_data = &f;
    mgrad_context *ctx = NULL;
    ck_assert_int_eq(mgrad_context_create(&ctx, &o), MGRAD_OK);
    tgraph t;
    tg_init(&t, 4);
    tg_add(&t, MGR_OP_DENSE, 0, -1, 3, 0);
    tg_add(&t, MGR_OP_TANH, 1, -1, 0, 0);
    /* Fail the first, second and third allocation in turn: each must report
       NOMEM with a message and leave nothing allocated. */
    for (int allow = 0; allow < 3; allow++) {
        f.armed = 1;
        f.allow = allow;
        mgr_graph_ws_f64 *ws = (mgr_graph_ws_f64 *)&f; /* must be reset to NULL */
        ck_assert_int_eq(mgr_graph_ws_create_f64(ctx, &t.g, 8, &ws), MGRAD_ERR_NOMEM);
        ck_assert_ptr_null(ws);
        ck_assert(strlen(mgrad_context_last_error(ctx)) > 0);
        uint64_t cur = 1;
        mgrad_context_memory(ctx, &cur, NULL);
        ck_assert_uint_eq(cur, 0);
    }
    f.armed = 0;
    /* Sizes whose byte count overflows size_t. */
    mgr_graph_ws_f64 *ws = NULL;
    ck_assert_int_eq(mgr_graph_ws_create_f64(ctx, &t.g, SIZE_MAX / 2, &ws), MGRAD_ERR_NOMEM);
    ck_assert_ptr_null(ws);
    /* Zero rows and a graph holding only the input are valid. */
    ck_assert_int_eq(mgr_graph_ws_create_f64(ctx, &t.g, 0, &ws), MGRAD_OK);
    mgr_graph_ws_destroy_f64(ctx, ws);
    tgraph t1;
    tg_init(&t1, 4);
    ck_assert_int_eq(mgr_graph_ws_create_f64(ctx, &t1.g, 3, &ws), MGRAD_OK);
    mgr_graph_ws_destroy_f64(ctx, ws);
    mgr_graph_ws_destroy_f64(ctx, NULL);
    uint64_t cur = 1;
    mgrad_context_memory(ctx, &cur, NULL);
    ck_assert_uint_eq(cur, 0);
    mgrad_context_destroy(ctx);
}
END_TEST

Suite *make_suite(void); /* called by runner.c */

Suite *make_suite(void)
{
    Suite *s = suite_create("graph");
    TCase *tc = tcase_create("ops");
    tcase_add_loop_test(tc, test_op_fd, 0, (int)NUM_OPS);
    tcase_add_loop_test(tc, test_op_inner_fd, 0, (int)NUM_OPS);
    tcase_add_test(tc, test_activation_values);
    tcase_add_loop_test(tc, test_image_op_fd, CASE_FLATTEN, NUM_CASES); /* imageops.h */
    suite_add_tcase(s, tc);

    tc = tcase_create("loss");
    tcase_add_loop_test(tc, test_loss_fd, 0, LOSS_CASES);
    tcase_add_loop_test(tc, test_loss_ce_stable, 0, LOSS_CE_SOFT_OFF);
    suite_add_tcase(s, tc);

    tc = tcase_create("graph");
    tcase_add_loop_test(tc, test_backward_rop, 0, 4);
    tcase_add_loop_test(tc, test_backward_rop_images, 0, 4);
    tcase_add_loop_test(tc, test_forward_memo, 0, 4);
    tcase_add_loop_test(tc, test_mlp_hvp, 0, 4);
    tcase_add_test(tc, test_mlp_repeatable);
    tcase_add_test(tc, test_null_directions);
    tcase_add_loop_test(tc, test_gemm_vs_naive, 0, 4);
    tcase_add_test(tc, test_ws_nomem);
    suite_add_tcase(s, tc);
    return s;
}
