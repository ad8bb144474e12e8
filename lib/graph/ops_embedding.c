/*
 * ops_embedding.c - the sequence ops other than attention: token embedding,
 * learned positional embedding, and the position-wise dense layer and layer
 * norm.  Four passes each.
 *
 * A sequence is an output [L, d] whose node has positions = L (graph.h);
 * only the token embedding starts one, and the ops that keep their input's
 * shape (activations, dropout, scale, residual add) keep it a sequence.
 *
 *   token embedding  x [rows, F] integer token ids (exact values in the
 *                    run's dtype), E [V, d]:  y[p] = E[x[p]] for p < L <= F.
 *                    Ids are constants: the tangent along ẋ is zero and no
 *                    x̄ is written.  An id outside [0, V) or not an integer
 *                    gives a NaN row (runs validate ids first, run.c).
 *                    Ē[x[p]] += ȳ[p];  ẏ[p] = U_E[x[p]];  (Ē)˙[x[p]] += (ȳ)˙[p]
 *   positional       y = x + P, P [L, d]:  x̄ += ȳ, P̄ += Σ_rows ȳ;
 *                    ẏ = ẋ + U_P;  (x̄)˙ += (ȳ)˙, (P̄)˙ += Σ_rows (ȳ)˙
 *   sequence dense   the dense layer (ops_dense.c) on every position:
 *                    [rows, L, d] is [rows L, d] to it; W [units, d], b [units]
 *   sequence layer   the layer norm (ops_norm.c) over the last axis of every
 *   norm             position: [rows L, d] rows of d; γ, β [d]
 *
 * The last two call the dense and layer-norm passes on a view of the node
 * (rows L rows of d values), so their arithmetic is the very code of those
 * ops, and the dense and layer-norm ops on non-sequences are unchanged.
 * Rules: docs/derivations.md, "Sequence models".
 *
 * Like every ops_<family>.c, this file is compiled three times: without
 * MGRAD_REAL_BITS it gives the ops' definitions (op.h), with 32 and 64
 * their passes.
 */
#ifndef MGRAD_REAL_BITS
/* ---- the definitions (untyped, compiled once) ---------------------------- */

#include <math.h>
#include <string.h>

#include "base/rng.h"
#include "graph/graph.h"

/* The output [L, d] of a sequence op, with overflow checks. */
static mgrad_status set_sequence(mgrad_context *ctx, mgr_node *node, int64_t L, int64_t d)
{
    MGRAD_RETURN_IF(ctx, L > INT64_MAX / d, MGRAD_ERR_INVALID,
                    "%s: %lld positions x %lld values overflow int64",
                    mgr_op_name(node->kind), (long long)L, (long long)d);
    node->ndim = 2;
    node->shape[0] = L;
    node->shape[1] = d;
    node->shape[2] = 0;
    node->size = L * d;
    node->positions = L;
    return MGRAD_OK;
}

/* The input must be a sequence [L, d]. */
static mgrad_status need_sequence(mgrad_context *ctx, const mgr_graph *g,
                                  const mgr_node *node)
{
    const mgr_node *x = &g->nodes[node->in0];
    MGRAD_RETURN_IF(ctx, x->positions < 1 || x->ndim != 2, MGRAD_ERR_SHAPE,
                    "%s: the input (node %d) must be a sequence [positions, width]; "
                    "start the model with a token embedding",
                    mgr_op_name(node->kind), (int)node->in0);
    return MGRAD_OK;
}

/* The caller sets vocab, positions = L and shape[1] = d. */
static mgrad_status token_embedding_infer(mgrad_context *ctx, const mgr_graph *g,
                                          mgr_node *node, int64_t *param_count)
{
    const mgr_node *x = &g->nodes[node->in0];
    int64_t V = node->vocab, L = node->positions, d = node->shape[1];
    MGRAD_RETURN_IF(ctx, node->in0 != 0 || x->ndim != 1, MGRAD_ERR_SHAPE,
                    "token embedding: it must read the model's input, a 1-D sequence "
                    "of token ids (create the model with input shape {context + 1})");
    MGRAD_RETURN_IF(ctx, V < 1, MGRAD_ERR_INVALID,
                    "token embedding: vocab must be at least 1 (got %lld)", (long long)V);
    MGRAD_RETURN_IF(ctx, d < 1, MGRAD_ERR_INVALID,
                    "token embedding: width must be at least 1 (got %lld)", (long long)d);
    MGRAD_RETURN_IF(ctx, L < 1 || L > x->size, MGRAD_ERR_SHAPE,
                    "token embedding: context must be 1 to the input size %lld (got "
                    "%lld)", (long long)x->size, (long long)L);
    MGRAD_RETURN_IF(ctx, V > INT64_MAX / d, MGRAD_ERR_INVALID,
                    "token embedding: %lld x %lld is too many parameters", (long long)V,
                    (long long)d);
    MGRAD_FORWARD(mgr_check_param_total(ctx, g, node, V * d));
    MGRAD_FORWARD(set_sequence(ctx, node, L, d));
    *param_count = V * d;
    return MGRAD_OK;
}

/* Every parameter ~ N(0, 1), torch.nn.Embedding's default; counter = the
   element's index, stream of the node as in init.c. */
static mgrad_status embedding_init(mgrad_context *ctx, const mgr_graph *g, int32_t k,
                                   uint64_t seed, double *theta)
{
    (void)ctx;
    const mgr_node *nd = &g->nodes[k];
    uint64_t stream = (uint64_t)MGR_STREAM_INIT + ((uint64_t)k << 8);
    double *w = theta + nd->param_offset;
    for (int64_t i = 0; i < nd->param_count; i++)
        w[i] = mgr_rng_normal(seed, stream, (uint64_t)i);
    return MGRAD_OK;
}

const mgr_op_def mgr_op_token_embedding = {
    .name = "token embedding",
    .inputs = 1,
    .flags = MGR_OP_FLAG_READS_TOKENS,
    .infer = token_embedding_infer,
    /* Linear in E: no second-order term. */
    .ybar_reads = MGR_YBAR_NEVER,
    .init = embedding_init,
    MGR_OP_PASSES(token_embedding),
};

static mgrad_status pos_embedding_infer(mgrad_context *ctx, const mgr_graph *g,
                                        mgr_node *node, int64_t *param_count)
{
    MGRAD_FORWARD(need_sequence(ctx, g, node));
    const mgr_node *x = &g->nodes[node->in0];
    MGRAD_FORWARD(mgr_check_param_total(ctx, g, node, x->size));
    MGRAD_FORWARD(mgr_infer_same_shape(ctx, g, node, param_count));
    *param_count = x->size;
    return MGRAD_OK;
}

const mgr_op_def mgr_op_pos_embedding = {
    .name = "positional embedding",
    .inputs = 1,
    .infer = pos_embedding_infer,
    .ybar_reads = MGR_YBAR_NEVER,
    .init = embedding_init,
    MGR_OP_PASSES(pos_embedding),
};

/* The caller sets shape[0] = units and init. */
static mgrad_status seq_dense_infer(mgrad_context *ctx, const mgr_graph *g, mgr_node *node,
                                    int64_t *param_count)
{
    MGRAD_FORWARD(need_sequence(ctx, g, node));
    const mgr_node *x = &g->nodes[node->in0];
    int64_t units = node->shape[0], d = x->shape[1];
    MGRAD_RETURN_IF(ctx, units < 1, MGRAD_ERR_INVALID,
                    "dense layer: units must be at least 1 (got %lld)", (long long)units);
    MGRAD_RETURN_IF(ctx, !mgr_init_known(node->init), MGRAD_ERR_INVALID,
                    "dense layer: unknown initialiser %d (use an mgrad_init value)",
                    (int)node->init);
    MGRAD_RETURN_IF(ctx, d > INT64_MAX - 1 || units > INT64_MAX / (d + 1), MGRAD_ERR_INVALID,
                    "dense layer: %lld units x %lld inputs is too many parameters",
                    (long long)units, (long long)d);
    int64_t count = units * (d + 1);
    MGRAD_FORWARD(mgr_check_param_total(ctx, g, node, count));
    MGRAD_FORWARD(set_sequence(ctx, node, x->positions, units));
    *param_count = count;
    return MGRAD_OK;
}

/* As the dense layer's: W [units, d], fan_in = d, fan_out = units. */
static mgrad_status seq_dense_init(mgrad_context *ctx, const mgr_graph *g, int32_t k,
                                   uint64_t seed, double *theta)
{
    const mgr_node *nd = &g->nodes[k];
    int64_t rows = nd->shape[1], cols = g->nodes[nd->in0].shape[1];
    return mgr_init_weights(ctx, nd->init, k, rows, cols, rows, seed,
                            theta + nd->param_offset);
}

const mgr_op_def mgr_op_seq_dense = {
    .name = "dense layer (per position)",
    .inputs = 1,
    .flags = MGR_OP_FLAG_MEMOISED,
    .infer = seq_dense_infer,
    .ybar_reads = MGR_YBAR_FOR_XBARDOT_OR_XDOT,
    .init = seq_dense_init,
    MGR_OP_PASSES(seq_dense),
};

/* The caller sets eps. */
static mgrad_status seq_layer_norm_infer(mgrad_context *ctx, const mgr_graph *g,
                                         mgr_node *node, int64_t *param_count)
{
    MGRAD_FORWARD(need_sequence(ctx, g, node));
    MGRAD_RETURN_IF(ctx, !(node->eps > 0) || !isfinite(node->eps), MGRAD_ERR_INVALID,
                    "layer norm: eps must be positive and finite (got %g; torch uses 1e-5)",
                    node->eps);
    int64_t count = 2 * g->nodes[node->in0].shape[1];
    MGRAD_FORWARD(mgr_check_param_total(ctx, g, node, count));
    MGRAD_FORWARD(mgr_infer_same_shape(ctx, g, node, param_count));
    *param_count = count;
    return MGRAD_OK;
}

/* The layer norm's μ and s (ops_norm.c) of each of the rows L positions. */
static size_t seq_layer_norm_saved(const mgr_graph *g, int32_t k, size_t max_rows)
{
    size_t L = (size_t)g->nodes[k].positions;
    if (L != 0 && max_rows > SIZE_MAX / 2 / L) return SIZE_MAX;
    return 2 * max_rows * L;
}

const mgr_op_def mgr_op_seq_layer_norm = {
    .name = "layer norm (per position)",
    .inputs = 1,
    .infer = seq_layer_norm_infer,
    .saved = seq_layer_norm_saved,
    /* the layer norm's passes on a view of the node, so its rule */
    .ybar_reads = MGR_YBAR_FOR_XBARDOT_OR_XDOT,
    .init = mgr_init_gamma_beta,
    MGR_OP_PASSES(seq_layer_norm),
};

#else
/* ---- the passes (typed, compiled for f32 and f64) ------------------------ */

#include <math.h>

#include "graph/ops.h"

/* ---- token embedding ---- */

/* The id at position p of row r, or -1 when it is not one of [0, V). */
static int64_t token_at(const R(mgr_op_args) *a, size_t r, size_t p)
{
    double v = (double)a->x[r * a->in_size + p];
    int64_t V = a->node->vocab;
    if (!(v >= 0 && v < (double)V) || v != floor(v)) return -1;
    return (int64_t)v;
}

static void token_embedding_forward(const R(mgr_op_args) *a)
{
    size_t L = (size_t)a->node->positions, d = (size_t)a->node->shape[1];
    for (size_t r = 0; r < a->rows; r++)
        for (size_t p = 0; p < L; p++) {
            int64_t id = token_at(a, r, p);
            real *y = a->y + (r * L + p) * d;
            if (id >= 0) {
                R(mgr_copy)(d, a->p + (size_t)id * d, y);
            } else {
                for (size_t j = 0; j < d; j++) y[j] = (real)NAN;
            }
        }
}

/* dst[x[p]] += src[p] for every row and position (E's rows). */
static void scatter_rows(const R(mgr_op_args) *a, const real *src, real *dst)
{
    size_t L = (size_t)a->node->positions, d = (size_t)a->node->shape[1];
    for (size_t r = 0; r < a->rows; r++)
        for (size_t p = 0; p < L; p++) {
            int64_t id = token_at(a, r, p);
            if (id >= 0) R(mgr_axpy)(d, 1, src + (r * L + p) * d, dst + (size_t)id * d);
        }
}

/* Ē[x[p]] += ȳ[p]; the ids get no adjoint. */
static void token_embedding_backward(const R(mgr_op_args) *a)
{
    if (a->pbar != NULL) scatter_rows(a, a->ybar, a->pbar);
}

/* ẏ[p] = U[x[p]] (ẋ does not move a token). */
static void token_embedding_tangent(const R(mgr_op_args) *a)
{
    size_t L = (size_t)a->node->positions, d = (size_t)a->node->shape[1];
    if (a->u == NULL) {
        R(mgr_zero)(a->rows * L * d, a->ydot);
        return;
    }
    for (size_t r = 0; r < a->rows; r++)
        for (size_t p = 0; p < L; p++) {
            int64_t id = token_at(a, r, p);
            real *yd = a->ydot + (r * L + p) * d;
            if (id >= 0) {
                R(mgr_copy)(d, a->u + (size_t)id * d, yd);
            } else {
                for (size_t j = 0; j < d; j++) yd[j] = (real)NAN;
            }
        }
}

/* (Ē)˙[x[p]] += (ȳ)˙[p] */
static void token_embedding_tangent_backward(const R(mgr_op_args) *a)
{
    if (a->pbardot != NULL) scatter_rows(a, a->ybardot, a->pbardot);
}

MGR_OP_PASS_TABLE(token_embedding, token_embedding);

/* ---- positional embedding ---- */

/* y = x + P */
static void pos_embedding_forward(const R(mgr_op_args) *a)
{
    size_t n = a->in_size;
    for (size_t r = 0; r < a->rows; r++) {
        const real *x = a->x + r * n;
        real *y = a->y + r * n;
        for (size_t i = 0; i < n; i++) y[i] = x[i] + a->p[i];
    }
}

/* dx += src;  dp += Σ_rows src  (either may be NULL) */
static void pos_embedding_adjoint(const R(mgr_op_args) *a, const real *src, real *dx,
                                  real *dp)
{
    size_t n = a->in_size;
    if (dx != NULL) R(mgr_axpy)(a->rows * n, 1, src, dx);
    if (dp != NULL) R(mgr_add_colsum)(a->rows, n, src, dp);
}

static void pos_embedding_backward(const R(mgr_op_args) *a)
{
    pos_embedding_adjoint(a, a->ybar, a->xbar, a->pbar);
}

/* ẏ = ẋ + U */
static void pos_embedding_tangent(const R(mgr_op_args) *a)
{
    size_t n = a->in_size;
    for (size_t r = 0; r < a->rows; r++) {
        real *yd = a->ydot + r * n;
        if (a->xdot != NULL)
            R(mgr_copy)(n, a->xdot + r * n, yd);
        else
            R(mgr_zero)(n, yd);
        if (a->u != NULL) R(mgr_axpy)(n, 1, a->u, yd);
    }
}

static void pos_embedding_tangent_backward(const R(mgr_op_args) *a)
{
    pos_embedding_adjoint(a, a->ybardot, a->xbardot, a->pbardot);
}

MGR_OP_PASS_TABLE(pos_embedding, pos_embedding);

/* ---- the position-wise views of the dense layer and the layer norm ---- */

/* b = a seen as rows L rows of d inputs, its node `view` a node of `kind`
   with out values per row. */
static void per_position(const R(mgr_op_args) *a, R(mgr_op_args) *b, mgr_node *view,
                         mgr_op_kind kind)
{
    size_t L = (size_t)a->node->positions;
    size_t out = (size_t)a->node->shape[1];
    *view = *a->node;
    view->kind = kind;
    view->ndim = 1;
    view->shape[0] = (int64_t)out;
    view->shape[1] = view->shape[2] = 0;
    view->size = (int64_t)out;
    view->positions = 0;
    *b = *a;
    b->node = view;
    b->rows = a->rows * L;
    b->in_size = a->in_size / L;
}

#define MGR_PER_POSITION_PASS(name, kind, inner, pass)                          \
    static void name##_##pass(const R(mgr_op_args) *a)                          \
    {                                                                           \
        R(mgr_op_args) b;                                                       \
        mgr_node view;                                                          \
        per_position(a, &b, &view, kind);                                       \
        R(mgr_##inner##_passes).pass(&b);                                       \
    }

#define MGR_PER_POSITION_OP(name, kind, inner)                                  \
    MGR_PER_POSITION_PASS(name, kind, inner, forward)                           \
    MGR_PER_POSITION_PASS(name, kind, inner, backward)                          \
    MGR_PER_POSITION_PASS(name, kind, inner, tangent)                           \
    MGR_PER_POSITION_PASS(name, kind, inner, tangent_backward)                  \
    MGR_OP_PASS_TABLE(name, name);

MGR_PER_POSITION_OP(seq_dense, MGR_OP_DENSE, dense)
MGR_PER_POSITION_OP(seq_layer_norm, MGR_OP_LAYER_NORM, layer_norm)

#endif
