/*
 * test_ops_seq.c - sequence models in f64: the token and positional
 * embeddings, the per-position dense layer and layer norm, causal
 * multi-head self-attention (with and without attention dropout) and a
 * whole 2-layer GPT graph, each with its four passes against central finite
 * differences (fdcheck.h); the next-token loss's four passes; then whole
 * training runs of a tiny 2-layer GPT through the public API: metagradients
 * of data and pool weights, the LR schedule, weight decay, momentum / β1,
 * β2 and θ0 against finite differences of whole runs, checkpoint schedules
 * bit-identical to store-all, and the refusals (INPUTS, SOFT_LABELS, bad
 * token ids, a model whose output is not a sequence).
 *
 * Graphs of single ops start from an input node marked as a sequence by
 * hand (positions = L), so that the ops' input tangents and adjoints are
 * checked too; a token embedding's input (ids) has no derivative, so graphs
 * that start with one are checked without input tangents.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fdcheck.h"
#include "fixtures.h"
#include "metagrad.h"

/* ---- graphs ---------------------------------------------------------------- */

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

static int32_t app(mgrad_context *ctx, mgr_graph *g, mgr_node n)
{
    mgrad_status s = mgr_graph_append(ctx, g, n);
    ck_assert_msg(s == MGRAD_OK, "append: %s", mgrad_context_last_error(ctx));
    return g->num_nodes - 1;
}

/* A graph whose input is a sequence [L, w]. */
static void seq_graph(mgrad_context *ctx, mgr_graph *g, int64_t L, int64_t w)
{
    int64_t shape[2] = {L, w};
    ck_assert_int_eq(mgr_graph_create(ctx, 2, shape, g), MGRAD_OK);
    g->nodes[0].positions = L;
}

static int32_t seq_dense(mgrad_context *ctx, mgr_graph *g, int32_t in0, int64_t units)
{
    mgr_node n = mk(MGR_OP_SEQ_DENSE, in0);
    n.shape[0] = units;
    return app(ctx, g, n);
}

enum {
    CASE_POS, CASE_DENSE, CASE_LN, CASE_ATT1, CASE_ATT2, CASE_ATT_DROP, CASE_GELU, CASE_ADD,
    NCASES
};
static const char *CASE_NAMES[NCASES] = {
    "positional embedding", "dense per position", "layer norm per position",
    "attention 1 head", "attention 2 heads", "attention dropout 0.4", "gelu on a sequence",
    "residual on a sequence",
};

/* Append the op of case c reading node in (a sequence of width w). */
static void add_case(mgrad_context *ctx, mgr_graph *g, int c, int32_t in, int64_t w)
{
    mgr_node n;
    switch (c) {
    case CASE_POS:
        app(ctx, g, mk(MGR_OP_POS_EMBEDDING, in));
        break;
    case CASE_DENSE:
        seq_dense(ctx, g, in, 3);
        break;
    case CASE_LN:
        n = mk(MGR_OP_SEQ_LAYER_NORM, in);
        n.eps = 1e-5;
        app(ctx, g, n);
        break;
    case CASE_ATT1:
    case CASE_ATT2:
    case CASE_ATT_DROP:
        /* the attention reads [Q | K | V] of width 3 d, d = w */
        in = seq_dense(ctx, g, in, 3 * w);
        n = mk(MGR_OP_ATTENTION, in);
        n.heads = c == CASE_ATT1 ? 1 : 2;
        n.rate = c == CASE_ATT_DROP ? 0.4 : 0;
        app(ctx, g, n);
        break;
    case CASE_GELU:
        app(ctx, g, mk(MGR_OP_GELU, in));
        break;
    case CASE_ADD:
        n = mk(MGR_OP_ADD, app(ctx, g, mk(MGR_OP_GELU, in)));
        n.in1 = in;
        app(ctx, g, n);
        break;
    }
    ck_assert_int_gt(mgr_graph_output(g)->positions, 0);
}

/* Case c alone on a sequence input, and between two dense layers per
   position (so that its input tangent comes from parameters), with and
   without input tangents. */
static void check_case(int c, uint64_t seed)
{
    uint64_t st = seed * 7777 + (uint64_t)c;
    int64_t L = tu_rand_int(&st, 1, 4), w = 2 * tu_rand_int(&st, 1, 2);
    size_t rows = (size_t)tu_rand_int(&st, 1, 3);
    for (int inner = 0; inner < 2; inner++) {
        mgrad_context *ctx = new_ctx();
        mgr_graph g;
        seq_graph(ctx, &g, L, w);
        int32_t in = inner ? seq_dense(ctx, &g, 0, w) : 0;
        add_case(ctx, &g, c, in, w);
        if (inner) seq_dense(ctx, &g, g.num_nodes - 1, 2);
        char label[128];
        snprintf(label, sizeof label, "%s%s L %lld seed %llu", inner ? "dense-" : "",
                 CASE_NAMES[c], (long long)L, (unsigned long long)seed);
        fd_problem pb;
        fd_setup(&pb, ctx, &g, rows, seed, 0.0);
        fd_check_graph(&pb, label, 1);
        fd_check_graph(&pb, label, 0);
        fd_teardown(&pb);
        mgr_graph_free(ctx, &g);
        finish_ctx(ctx);
    }
}

START_TEST(test_seq_op_fd)
{
    for (uint64_t seed = 1; seed <= 3; seed++) check_case(_i, seed);
}
END_TEST

/* Attention dropout drops (training steps, keyed by the step) and is the
   identity in evaluation passes: the FD checks above hold for any fixed
   mask, so this shows that the mask is there and when. */
START_TEST(test_attention_dropout_mask)
{
    mgrad_context *ctx = new_ctx();
    mgr_graph g;
    seq_graph(ctx, &g, 4, 6);
    mgr_node n = mk(MGR_OP_ATTENTION, 0);
    n.heads = 2;
    n.rate = 0.5;
    app(ctx, &g, n);
    fd_problem pb;
    fd_setup(&pb, ctx, &g, 2, 9, 0.0);
    size_t ny = pb.rows * pb.nout;
    double *y_off = dalloc(ny), *y_on = dalloc(ny), *y_step = dalloc(ny), *y_ref = dalloc(ny);
    pb.ws->training = 0;
    eval_forward(&pb, pb.theta, pb.x, y_off);
    pb.ws->training = 1;
    eval_forward(&pb, pb.theta, pb.x, y_on);
    pb.ws->step = 6;
    eval_forward(&pb, pb.theta, pb.x, y_step);
    g.nodes[1].rate = 0; /* the same op without dropout, in training mode */
    eval_forward(&pb, pb.theta, pb.x, y_ref);
    ck_assert(memcmp(y_off, y_ref, ny * sizeof(double)) == 0);
    ck_assert(memcmp(y_on, y_off, ny * sizeof(double)) != 0);
    ck_assert(memcmp(y_on, y_step, ny * sizeof(double)) != 0);
    free(y_off);
    free(y_on);
    free(y_step);
    free(y_ref);
    fd_teardown(&pb);
    mgr_graph_free(ctx, &g);
    finish_ctx(ctx);
}
END_TEST

/* Token ids in [0, V) into every input of pb (as the dataset holds them). */
static void fill_ids(fd_problem *pb, int64_t V, uint64_t seed)
{
    uint64_t st = seed;
    for (size_t i = 0; i < pb->rows * pb->nin; i++) pb->x[i] = (double)tu_rand_int(&st, 0, V - 1);
}

/* Token embedding (alone, and followed by the positional embedding and a
   dense layer) on inputs longer than the context: four passes in θ. */
START_TEST(test_token_embedding_fd)
{
    for (uint64_t seed = 1; seed <= 3; seed++) {
        uint64_t st = seed * 31;
        int64_t V = tu_rand_int(&st, 1, 5), L = tu_rand_int(&st, 1, 4), d = tu_rand_int(&st, 1, 3);
        for (int more = 0; more < 2; more++) {
            mgrad_context *ctx = new_ctx();
            mgr_graph g;
            int64_t shape[1] = {L + 1};
            ck_assert_int_eq(mgr_graph_create(ctx, 1, shape, &g), MGRAD_OK);
            mgr_node n = mk(MGR_OP_TOKEN_EMBEDDING, 0);
            n.vocab = V;
            n.positions = L;
            n.shape[1] = d;
            int32_t k = app(ctx, &g, n);
            if (more) seq_dense(ctx, &g, app(ctx, &g, mk(MGR_OP_POS_EMBEDDING, k)), 2);
            fd_problem pb;
            fd_setup(&pb, ctx, &g, 3, seed, 0.0);
            fill_ids(&pb, V, seed);
            fd_check_graph(&pb, more ? "token-pos-dense" : "token embedding", 0);

            /* ids have no derivative: x̄ untouched, ẏ = 0 along ẋ alone */
            double *xbar = dalloc(pb.rows * pb.nin);
            double *grad = dalloc(pb.P);
            mgr_graph_forward_f64(&g, pb.ws, pb.rows, pb.theta, pb.x);
            mgr_graph_backward_f64(&g, pb.ws, pb.rows, pb.theta, pb.x, pb.ob, grad, xbar);
            for (size_t i = 0; i < pb.rows * pb.nin; i++) ck_assert(xbar[i] == 0);
            mgr_graph_tangent_f64(&g, pb.ws, pb.rows, pb.theta, NULL, pb.x, pb.xd);
            for (size_t i = 0; i < pb.rows * pb.nout; i++)
                ck_assert(pb.ws->tan[g.num_nodes - 1][i] == 0);
            /* an id outside [0, V) gives NaN, not a read out of bounds */
            pb.x[0] = (double)V;
            pb.x[1 % (pb.rows * pb.nin)] = 0.5;
            mgr_graph_forward_f64(&g, pb.ws, pb.rows, pb.theta, pb.x);
            ck_assert(isnan(pb.ws->val[1][0]));
            free(xbar);
            free(grad);
            fd_teardown(&pb);
            mgr_graph_free(ctx, &g);
            finish_ctx(ctx);
        }
    }
}
END_TEST

/* A whole 2-layer GPT graph from the public builders (with attention
   dropout in the second block), four passes in θ. */
START_TEST(test_gpt_graph_fd)
{
    mgrad_context *ctx = new_ctx();
    mgrad_model *m = NULL;
    int64_t shape[1] = {4};
    ck_assert_int_eq(mgrad_model_create(&m, ctx, 1, shape), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_token_embedding(m, 5, 4, 3), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_positional_embedding(m), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_transformer_block(m, 2, 2, 0.0), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_transformer_block(m, 2, 2, 0.3), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_layer_norm(m, 1e-5), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(m, 5, MGRAD_INIT_DEFAULT), MGRAD_OK);
    const mgr_graph *g = &m->graph;
    ck_assert_int_eq(mgr_graph_output(g)->positions, 3);
    ck_assert_int_eq(mgr_graph_output(g)->size, 15);
    fd_problem pb;
    fd_setup(&pb, ctx, g, 2, 3, 0.0);
    fill_ids(&pb, 5, 3);
    fd_check_graph(&pb, "2-layer GPT graph", 0);
    fd_teardown(&pb);
    mgrad_model_destroy(m);
    finish_ctx(ctx);
}
END_TEST

/* The builders: shapes, parameter counts, and refusals that leave the
   model unchanged. */
START_TEST(test_builders)
{
    mgrad_context *ctx = new_ctx();
    mgrad_model *m = NULL;
    int64_t V = 7, L = 5, d = 8;
    ck_assert_int_eq(mgrad_model_create_gpt(&m, ctx, V, L, d, 2, 2), MGRAD_OK);
    int64_t np = 0, out = 0;
    ck_assert_int_eq(mgrad_model_num_params(m, &np), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_output_size(m, &out), MGRAD_OK);
    int64_t block = 2 * d + 3 * d * (d + 1) + d * (d + 1) + 2 * d + 4 * d * (d + 1) +
                    d * (4 * d + 1);
    ck_assert_int_eq(np, V * d + L * d + 2 * block + 2 * d + V * (d + 1));
    ck_assert_int_eq(out, L * V);
    mgrad_model_destroy(m);

    int64_t shape[1] = {L + 1};
    ck_assert_int_eq(mgrad_model_create(&m, ctx, 1, shape), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_positional_embedding(m), MGRAD_ERR_SHAPE);
    ck_assert_int_eq(mgrad_model_add_causal_self_attention(m, 1, 0), MGRAD_ERR_SHAPE);
    ck_assert_int_eq(mgrad_model_add_token_embedding(m, V, d, L + 2), MGRAD_ERR_SHAPE);
    ck_assert_int_eq(mgrad_model_add_token_embedding(m, 0, d, L), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_model_add_token_embedding(m, V, d, L), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_token_embedding(m, V, d, L), MGRAD_ERR_ORDER);
    ck_assert_int_eq(mgrad_model_add_batch_norm(m, 1e-5), MGRAD_ERR_SHAPE);
    ck_assert_int_eq(mgrad_model_num_params(m, &np), MGRAD_OK);
    /* heads must divide d; dropout in [0, 1); a failed block appends nothing */
    ck_assert_int_eq(mgrad_model_add_causal_self_attention(m, 3, 0), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_model_add_transformer_block(m, 3, 4, 0), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_model_add_transformer_block(m, 2, 4, 1.0), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_model_add_transformer_block(m, 2, 0, 0), MGRAD_ERR_INVALID);
    int64_t np2 = 0;
    ck_assert_int_eq(mgrad_model_num_params(m, &np2), MGRAD_OK);
    ck_assert_int_eq(np2, np);
    ck_assert_int_eq(m->graph.num_nodes, 2);
    /* dense on a sequence is per position; flatten ends the sequence */
    ck_assert_int_eq(mgrad_model_add_dense(m, 3, MGRAD_INIT_DEFAULT), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_output_size(m, &out), MGRAD_OK);
    ck_assert_int_eq(out, L * 3);
    ck_assert_int_eq(mgrad_model_add_flatten(m), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(m, 2, MGRAD_INIT_DEFAULT), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_output_size(m, &out), MGRAD_OK);
    ck_assert_int_eq(out, 2);
    mgrad_model_destroy(m);
    ck_assert_int_eq(mgrad_model_create_gpt(&m, ctx, V, L, d, 1, 3), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_model_create_gpt(&m, ctx, V, 0, d, 1, 2), MGRAD_ERR_INVALID);
    finish_ctx(ctx);
}
END_TEST

/* ---- the next-token loss ----------------------------------------------------- */

/* The loss's four passes against central differences, and ℓ against the
   definition in long double. */
START_TEST(test_next_token_loss_fd)
{
    for (uint64_t seed = 1; seed <= 4; seed++) {
        uint64_t st = seed * 101;
        size_t rows = (size_t)tu_rand_int(&st, 1, 3), L = (size_t)tu_rand_int(&st, 1, 4);
        size_t V = (size_t)tu_rand_int(&st, 2, 5), C = L * V, F = L + 1;
        double alpha = seed % 2 ? 0.0 : 0.1;
        double *o = dalloc(rows * C), *od = dalloc(rows * C), *tok = dalloc(rows * F);
        double *w = dalloc(rows), *prob = dalloc(rows * C), *ell = dalloc(rows);
        double *ob = dalloc(rows * C), *obd = dalloc(rows * C), *elld = dalloc(rows);
        double *op = dalloc(rows * C), *om = dalloc(rows * C), *obp = dalloc(rows * C);
        double *obm = dalloc(rows * C), *ep = dalloc(rows), *em = dalloc(rows);
        double *fd = dalloc(rows * C);
        tu_fill(o, rows * C, &st, 2.0);
        tu_fill(od, rows * C, &st, 1.0);
        tu_fill(w, rows, &st, 1.0);
        for (size_t i = 0; i < rows * F; i++) tok[i] = (double)tu_rand_int(&st, 0, (int64_t)V - 1);
        mgr_loss_batch_f64 lb = {.kind = MGRAD_LOSS_NEXT_TOKEN, .rows = rows, .classes = C,
                                 .smoothing = alpha, .weights = w, .scale = 0.7,
                                 .positions = L, .token_stride = F, .tokens = tok};
        double total = mgr_loss_forward_f64(&lb, o, prob, ell);
        long double ref_total = 0;
        for (size_t i = 0; i < rows; i++) {
            long double li = 0;
            for (size_t p = 0; p < L; p++) {
                const double *z = o + i * C + p * V;
                long double m = z[0], s = 0;
                for (size_t j = 1; j < V; j++) m = z[j] > m ? z[j] : m;
                for (size_t j = 0; j < V; j++) s += expl(z[j] - m);
                size_t t = (size_t)tok[i * F + p + 1];
                for (size_t j = 0; j < V; j++) {
                    long double q = alpha / V + (j == t ? 1 - alpha : 0);
                    li -= q * (z[j] - m - logl(s));
                }
            }
            li /= L;
            ck_assert_msg(tu_rel_err(ell[i], (double)li, 1e-300) <= 1e-14, "ℓ %.17g vs %.17Lg",
                          ell[i], li);
            ref_total += 0.7L * w[i] * li;
        }
        ck_assert(tu_rel_err(total, (double)ref_total, 1e-300) <= 1e-14);
        mgr_loss_backward_f64(&lb, o, prob, ob);
        mgr_loss_tangent_f64(&lb, o, prob, od, elld);
        mgr_loss_tangent_backward_f64(&lb, o, prob, od, obd);
        double h = FD_H;
        /* backward: ō_k = ∂L/∂o_k */
        for (size_t k = 0; k < rows * C; k++) {
            memcpy(op, o, rows * C * sizeof *o);
            op[k] += h;
            double lp = mgr_loss_forward_f64(&lb, op, prob, ep);
            op[k] -= 2 * h;
            double lm = mgr_loss_forward_f64(&lb, op, prob, em);
            fd[k] = (lp - lm) / (2 * h);
        }
        check_err("next-token loss backward", tu_vec_rel_err(ob, fd, rows * C, 1e-10), FD_TOL);
        /* tangent and tangent-of-backward along ȯ */
        tu_axpy_to(op, o, h, od, rows * C);
        tu_axpy_to(om, o, -h, od, rows * C);
        mgr_loss_forward_f64(&lb, op, prob, ep);
        mgr_loss_backward_f64(&lb, op, prob, obp);
        mgr_loss_forward_f64(&lb, om, prob, em);
        mgr_loss_backward_f64(&lb, om, prob, obm);
        for (size_t i = 0; i < rows; i++) fd[i] = (ep[i] - em[i]) / (2 * h);
        check_err("next-token loss tangent", tu_vec_rel_err(elld, fd, rows, 1e-10), FD_TOL);
        for (size_t k = 0; k < rows * C; k++) fd[k] = (obp[k] - obm[k]) / (2 * h);
        check_err("next-token loss tangent_backward", tu_vec_rel_err(obd, fd, rows * C, 1e-10),
                  FD_TOL);
        /* a target that is not an id gives NaN */
        tok[1] = (double)V;
        mgr_loss_forward_f64(&lb, o, prob, ell);
        ck_assert(isnan(ell[0]));
        double *bufs[] = {o, od, tok, w, prob, ell, ob, obd, elld, op, om, obp, obm, ep, em, fd};
        for (size_t b = 0; b < sizeof bufs / sizeof bufs[0]; b++) free(bufs[b]);
    }
}
END_TEST

/* ---- whole runs of a tiny GPT ------------------------------------------------ */

enum { GV = 5, GL = 4, GD = 4, GN = 10, GNVAL = 6, GNPOOL = 5, GT = 6, GB = 3 };

typedef struct gcfg {
    const char *name;
    mgrad_optimizer opt;
    double lr, momentum, weight_decay;
    double dropout;    /* attention dropout of both blocks */
    double smoothing;
} gcfg;

static const gcfg GCFGS[] = {
    {"sgd-momentum", MGRAD_OPTIMIZER_SGD, 0.3, 0.8, 0.01, 0, 0},
    {"adam", MGRAD_OPTIMIZER_ADAM, 0.02, 0.9, 0.01, 0, 0},
    {"adamw-dropout-smoothing", MGRAD_OPTIMIZER_ADAMW, 0.02, 0.8, 0.05, 0.25, 0.1},
};
#define NGCFGS ((int)(sizeof GCFGS / sizeof GCFGS[0]))

typedef struct gfix {
    mgrad_context *ctx;
    mgrad_model *model;
    mgrad_dataset *train, *val, *pool;
    mgrad_run *run;
} gfix;

/* n sequences of GL + 1 ids in [0, GV), as reals (the token contract). */
static void token_data(mgrad_context *ctx, int n, uint64_t seed, mgrad_dataset **out)
{
    double *x = malloc((size_t)n * (GL + 1) * sizeof *x);
    ck_assert_ptr_nonnull(x);
    uint64_t st = seed;
    for (int i = 0; i < n * (GL + 1); i++) x[i] = (double)tu_rand_int(&st, 0, GV - 1);
    int64_t shape[1] = {GL + 1};
    ck_assert_int_eq(mgrad_dataset_create(out, ctx, n, 1, shape, MGRAD_DTYPE_F64, x), MGRAD_OK);
    free(x);
}

/* The 2-layer GPT: token and positional embeddings, two blocks (2 heads,
   MLP ratio 2), final layer norm, dense to GV. */
static void gpt_model(mgrad_context *ctx, double dropout, mgrad_model **out)
{
    int64_t shape[1] = {GL + 1};
    ck_assert_int_eq(mgrad_model_create(out, ctx, 1, shape), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_token_embedding(*out, GV, GD, GL), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_positional_embedding(*out), MGRAD_OK);
    for (int l = 0; l < 2; l++)
        ck_assert_int_eq(mgrad_model_add_transformer_block(*out, 2, 2, dropout), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_layer_norm(*out, 1e-5), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(*out, GV, MGRAD_INIT_DEFAULT), MGRAD_OK);
}

static void gsetup(gfix *fx, const gcfg *cfg, mgrad_checkpoint ck, int slots)
{
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = MGRAD_DTYPE_F64;
    co.seed = 3;
    ck_assert_int_eq(mgrad_context_create(&fx->ctx, &co), MGRAD_OK);
    gpt_model(fx->ctx, cfg->dropout, &fx->model);
    token_data(fx->ctx, GN, 11, &fx->train);
    token_data(fx->ctx, GNVAL, 23, &fx->val);
    token_data(fx->ctx, GNPOOL, 37, &fx->pool);
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = GT;
    o.batch_size = GB;
    o.shuffle_seed = 5;
    o.checkpoint = ck;
    o.checkpoint_slots = slots;
    tf_optimizer(&o, cfg->opt, cfg->lr, cfg->momentum, 0, cfg->weight_decay, 1e-4);
    o.loss = MGRAD_LOSS_NEXT_TOKEN;
    o.label_smoothing = cfg->smoothing;
    o.validation = fx->val;
    mgrad_status s = mgrad_run_create(&fx->run, fx->model, fx->train, &o);
    ck_assert_msg(s == MGRAD_OK, "run: %s", mgrad_context_last_error(fx->ctx));
}

static void gteardown(gfix *fx)
{
    tf_destroy(fx->ctx, fx->model, fx->run, fx->train, fx->val, fx->pool);
}

static mgrad_meta *gmeta(gfix *fx, mgrad_meta_kind kind)
{
    mgrad_meta_options mo = MGRAD_META_OPTIONS_INIT;
    if (kind == MGRAD_META_POOL_WEIGHTS) {
        mo.step = 2;
        mo.pool = fx->pool;
    }
    return tf_add_meta(fx->ctx, fx->run, kind, &mo);
}

static double gtrain(gfix *fx) { return tf_train(fx->ctx, fx->run); }

/* ⟨∇φ, v⟩ against (φ(z + hv) − φ(z − hv)) / 2h for a random v. */
static double gfd(gfix *fx, mgrad_meta *m, mgrad_meta_kind kind, uint64_t seed, double *dir)
{
    int64_t n = 0;
    ck_assert_int_eq(mgrad_meta_size(m, &n), MGRAD_OK);
    double *z = malloc((size_t)n * sizeof *z), *g = malloc((size_t)n * sizeof *g);
    double *v = malloc((size_t)n * sizeof *v), *zz = malloc((size_t)n * sizeof *zz);
    ck_assert_int_eq(mgrad_meta_get_value(m, MGRAD_DTYPE_F64, z, n), MGRAD_OK);
    gtrain(fx);
    mgrad_status s = mgrad_run_reverse(fx->run);
    ck_assert_msg(s == MGRAD_OK, "reverse: %s", mgrad_context_last_error(fx->ctx));
    ck_assert_int_eq(mgrad_meta_get_grad(m, MGRAD_DTYPE_F64, g, n), MGRAD_OK);
    uint64_t st = seed;
    tu_fill(v, (size_t)n, &st, 1.0);
    if (kind == MGRAD_META_MOMENTUM || kind == MGRAD_META_BETA2) v[0] = -1.0;
    if (kind == MGRAD_META_WEIGHT_DECAY) v[0] = 1.0;
    /* h = 1e-6, not fdcheck.h's 1e-5: φ of these runs is strongly curved
       along v (Adam on the LR schedule, θ0); the FD error measured at h =
       1e-5, 3e-6, 1e-6 falls as h² (2.6e-5, 2.3e-6, 2.6e-7 for Adam's LR
       schedule), i.e. it is truncation, and rounding at 1e-6 is ~1e-10. */
    double d = 0, h = 1e-6;
    for (int64_t i = 0; i < n; i++) d += g[i] * v[i];
    for (int64_t i = 0; i < n; i++) zz[i] = z[i] + h * v[i];
    ck_assert_int_eq(mgrad_meta_set_value(m, MGRAD_DTYPE_F64, zz, n), MGRAD_OK);
    double pp = gtrain(fx);
    for (int64_t i = 0; i < n; i++) zz[i] = z[i] - h * v[i];
    ck_assert_int_eq(mgrad_meta_set_value(m, MGRAD_DTYPE_F64, zz, n), MGRAD_OK);
    double pm = gtrain(fx);
    ck_assert_int_eq(mgrad_meta_set_value(m, MGRAD_DTYPE_F64, z, n), MGRAD_OK);
    free(z);
    free(g);
    free(v);
    free(zz);
    *dir = d;
    return tu_rel_err(d, (pp - pm) / (2 * h), 1e-8);
}

static const mgrad_meta_kind GKINDS[] = {
    MGRAD_META_DATA_WEIGHTS, MGRAD_META_POOL_WEIGHTS, MGRAD_META_LR_SCHEDULE,
    MGRAD_META_WEIGHT_DECAY, MGRAD_META_MOMENTUM, MGRAD_META_BETA2,
    MGRAD_META_INITIAL_PARAMS,
};
static const char *GKIND_NAMES[] = {
    "data_weights", "pool_weights@2", "lr_schedule", "weight_decay", "momentum/beta1",
    "beta2", "initial_params",
};
#define NGKINDS ((int)(sizeof GKINDS / sizeof GKINDS[0]))

START_TEST(test_gpt_run_fd)
{
    const gcfg *cfg = &GCFGS[_i];
    for (int k = 0; k < NGKINDS; k++) {
        if (GKINDS[k] == MGRAD_META_BETA2 && cfg->opt == MGRAD_OPTIMIZER_SGD) continue;
        gfix fx;
        gsetup(&fx, cfg, MGRAD_CHECKPOINT_STORE_ALL, 0);
        mgrad_meta *m = gmeta(&fx, GKINDS[k]);
        double dir = 0;
        double err = gfd(&fx, m, GKINDS[k], 500 + (uint64_t)k, &dir);
        printf("gpt fd %-24s %-15s <g,v> = %+.10e  rel err %.2e\n", cfg->name,
               GKIND_NAMES[k], dir, err);
        ck_assert_msg(err <= 1e-6, "%s / %s: metagradient %.12e, relative error %.3e vs "
                      "finite differences", cfg->name, GKIND_NAMES[k], dir, err);
        gteardown(&fx);
    }
}
END_TEST

/* Every checkpoint schedule gives the store-all metagradients bit for bit
   (same code, same inputs: the recomputed steps replay the same dropout). */
START_TEST(test_gpt_checkpoint_bit_identical)
{
    const gcfg *cfg = &GCFGS[2];
    static const struct {
        mgrad_checkpoint ck;
        int slots;
    } SCHED[] = {{MGRAD_CHECKPOINT_STORE_ALL, 0},
                 {MGRAD_CHECKPOINT_BINOMIAL, 2},
                 {MGRAD_CHECKPOINT_REPLAY, 0}};
    double *ref[2] = {NULL, NULL};
    int64_t sizes[2] = {0, 0};
    for (size_t c = 0; c < sizeof SCHED / sizeof SCHED[0]; c++) {
        gfix fx;
        gsetup(&fx, cfg, SCHED[c].ck, SCHED[c].slots);
        mgrad_meta *m[2] = {gmeta(&fx, MGRAD_META_LR_SCHEDULE),
                            gmeta(&fx, MGRAD_META_DATA_WEIGHTS)};
        gtrain(&fx);
        ck_assert_int_eq(mgrad_run_reverse(fx.run), MGRAD_OK);
        for (int j = 0; j < 2; j++) {
            int64_t n = 0;
            ck_assert_int_eq(mgrad_meta_size(m[j], &n), MGRAD_OK);
            double *g = malloc((size_t)n * sizeof *g);
            ck_assert_int_eq(mgrad_meta_get_grad(m[j], MGRAD_DTYPE_F64, g, n), MGRAD_OK);
            if (c == 0) {
                ref[j] = g;
                sizes[j] = n;
            } else {
                ck_assert_int_eq(n, sizes[j]);
                ck_assert_msg(memcmp(g, ref[j], (size_t)n * sizeof *g) == 0,
                              "schedule %zu: metagradient %d differs from store-all", c, j);
                free(g);
            }
        }
        gteardown(&fx);
    }
    free(ref[0]);
    free(ref[1]);
}
END_TEST

/* INPUTS and SOFT_LABELS are refused on a next-token run (and INPUTS on any
   model reading token ids); bad ids and a model without a sequence output
   are refused when the run is created. */
START_TEST(test_next_token_refusals)
{
    gfix fx;
    gsetup(&fx, &GCFGS[0], MGRAD_CHECKPOINT_STORE_ALL, 0);
    mgrad_meta_options mo = MGRAD_META_OPTIONS_INIT;
    mgrad_meta *m = NULL;
    ck_assert_int_eq(mgrad_run_add_meta(&m, fx.run, MGRAD_META_INPUTS, &mo),
                     MGRAD_ERR_UNSUPPORTED);
    tf_assert_error_has(fx.ctx, "token ids");
    ck_assert_int_eq(mgrad_run_add_meta(&m, fx.run, MGRAD_META_SOFT_LABELS, &mo),
                     MGRAD_ERR_UNSUPPORTED);
    tf_assert_error_has(fx.ctx, "SOFT_LABELS");
    ck_assert_ptr_null(m);

    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = 2;
    o.batch_size = 2;
    o.loss = MGRAD_LOSS_NEXT_TOKEN;
    o.validation = fx.val;
    mgrad_run *run = NULL;
    /* an id outside the output's vocabulary */
    double bad[2 * (GL + 1)];
    for (int i = 0; i < 2 * (GL + 1); i++) bad[i] = i % GV;
    bad[7] = GV;
    mgrad_dataset *ds = NULL;
    int64_t shape[1] = {GL + 1};
    ck_assert_int_eq(mgrad_dataset_create(&ds, fx.ctx, 2, 1, shape, MGRAD_DTYPE_F64, bad),
                     MGRAD_OK);
    ck_assert_int_eq(mgrad_run_create(&run, fx.model, ds, &o), MGRAD_ERR_INVALID);
    tf_assert_error_has(fx.ctx, "not a token id");
    ck_assert_ptr_null(run);
    double ev = 0;
    gtrain(&fx);
    ck_assert_int_eq(mgrad_run_evaluate(fx.run, ds, &ev, NULL), MGRAD_ERR_INVALID);
    bad[7] = 1.5;
    mgrad_dataset_destroy(ds);
    ck_assert_int_eq(mgrad_dataset_create(&ds, fx.ctx, 2, 1, shape, MGRAD_DTYPE_F64, bad),
                     MGRAD_OK);
    ck_assert_int_eq(mgrad_run_create(&run, fx.model, ds, &o), MGRAD_ERR_INVALID);
    mgrad_dataset_destroy(ds);

    /* a model whose output is not a sequence: flatten + dense */
    mgrad_model *flat = NULL;
    ck_assert_int_eq(mgrad_model_create(&flat, fx.ctx, 1, shape), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_token_embedding(flat, GV, 2, GL), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_flatten(flat), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(flat, GL * GV, MGRAD_INIT_DEFAULT), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_create(&run, flat, fx.train, &o), MGRAD_ERR_SHAPE);
    tf_assert_error_has(fx.ctx, "sequence");
    /* ... which with labels and cross-entropy trains, but INPUTS is refused */
    int32_t labels[GN];
    for (int i = 0; i < GN; i++) labels[i] = i % 3;
    mgrad_model_destroy(flat);
    ck_assert_int_eq(mgrad_model_create(&flat, fx.ctx, 1, shape), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_token_embedding(flat, GV, 2, GL), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_flatten(flat), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(flat, 3, MGRAD_INIT_DEFAULT), MGRAD_OK);
    mgrad_dataset *lab = NULL;
    token_data(fx.ctx, GN, 11, &lab);
    ck_assert_int_eq(mgrad_dataset_set_labels(lab, labels, GN, 3), MGRAD_OK);
    o.loss = MGRAD_LOSS_CROSS_ENTROPY;
    o.validation = lab;
    ck_assert_int_eq(mgrad_run_create(&run, flat, lab, &o), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_add_meta(&m, run, MGRAD_META_INPUTS, &mo),
                     MGRAD_ERR_UNSUPPORTED);
    ck_assert_int_eq(mgrad_run_train(run, NULL), MGRAD_OK);
    mgrad_run_destroy(run);
    mgrad_dataset_destroy(lab);
    mgrad_model_destroy(flat);
    gteardown(&fx);
}
END_TEST

/* f32 trains the same GPT: metagradients within f32 accuracy of f64's. */
START_TEST(test_gpt_f32)
{
    double g64[GT], g32[GT];
    for (int pass = 0; pass < 2; pass++) {
        mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
        co.dtype = pass == 0 ? MGRAD_DTYPE_F64 : MGRAD_DTYPE_F32;
        co.seed = 3;
        gfix fx;
        memset(&fx, 0, sizeof fx);
        ck_assert_int_eq(mgrad_context_create(&fx.ctx, &co), MGRAD_OK);
        gpt_model(fx.ctx, 0.0, &fx.model);
        token_data(fx.ctx, GN, 11, &fx.train);
        token_data(fx.ctx, GNVAL, 23, &fx.val);
        mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
        o.steps = GT;
        o.batch_size = GB;
        o.lr = 0.3;
        o.loss = MGRAD_LOSS_NEXT_TOKEN;
        o.validation = fx.val;
        ck_assert_int_eq(mgrad_run_create(&fx.run, fx.model, fx.train, &o), MGRAD_OK);
        mgrad_meta *m = gmeta(&fx, MGRAD_META_LR_SCHEDULE);
        gtrain(&fx);
        ck_assert_int_eq(mgrad_run_reverse(fx.run), MGRAD_OK);
        ck_assert_int_eq(mgrad_meta_get_grad(m, MGRAD_DTYPE_F64, pass == 0 ? g64 : g32, GT),
                         MGRAD_OK);
        gteardown(&fx);
    }
    double err = tu_vec_rel_err(g32, g64, GT, 1e-12);
    printf("gpt f32 vs f64 LR-schedule metagradient: rel err %.2e\n", err);
    ck_assert_msg(err < 1e-3, "f32 vs f64: %.3e", err);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("ops_seq");
    TCase *tc = tcase_create("ops");
    tcase_add_loop_test(tc, test_seq_op_fd, 0, NCASES);
    tcase_add_test(tc, test_attention_dropout_mask);
    tcase_add_test(tc, test_token_embedding_fd);
    tcase_add_test(tc, test_gpt_graph_fd);
    tcase_add_test(tc, test_builders);
    tcase_add_test(tc, test_next_token_loss_fd);
    suite_add_tcase(s, tc);
    TCase *runs = tcase_create("runs");
    tcase_add_loop_test(runs, test_gpt_run_fd, 0, NGCFGS);
    tcase_add_test(runs, test_gpt_checkpoint_bit_identical);
    tcase_add_test(runs, test_next_token_refusals);
    tcase_add_test(runs, test_gpt_f32);
    suite_add_tcase(s, runs);
    return s;
}
