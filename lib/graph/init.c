/*
 * init.c - the seeded initialisers of dense and conv2d layers, and the
 * constant initial values of the norms (γ = 1, β = 0).
 *
 * Every draw is a pure function of (seed, node index, element index), so a
 * layer's initial parameters do not depend on the layers before it or on the
 * order of calls, and any θ0 can be rebuilt from the seed alone.  The exact
 * draw (also in docs/api.md, "Initialisers"):
 *
 *   stream  s = MGR_STREAM_INIT + (node << 8), node = the dense node's id
 *   W[i, j] uses counter c = i * fan_in + j      (row-major element index)
 *   b[i]    uses counter c = fan_out * fan_in + i
 *   U(-a, a):  a * (2 * mgr_rng_uniform(seed, s, c) - 1)
 *   N(0, σ²):  σ * mgr_rng_normal(seed, s, c)
 *
 *   DEFAULT           W, b ~ U(-a, a),  a = 1 / sqrt(fan_in)
 *   KAIMING_UNIFORM   W ~ U(-a, a),     a = sqrt(6 / fan_in);           b = 0
 *   KAIMING_NORMAL    W ~ N(0, σ²),     σ = sqrt(2 / fan_in);           b = 0
 *   XAVIER_UNIFORM    W ~ U(-a, a),     a = sqrt(6 / (fan_in + fan_out)); b = 0
 *   XAVIER_NORMAL     W ~ N(0, σ²),     σ = sqrt(2 / (fan_in + fan_out)); b = 0
 *   ORTHOGONAL        G[i, j] = mgr_rng_normal(seed, s, i * fan_in + j); then
 *                     as torch.nn.init.orthogonal_: A = G if fan_out >= fan_in
 *                     else Gᵀ; A = QR; Q's columns times sign(R_jj) (+1 where
 *                     R_jj = 0); W = Q or Qᵀ.  So WᵀW = I when fan_out >=
 *                     fan_in, else W Wᵀ = I;  b = 0
 *   ZEROS             W = 0, b = 0
 *
 * A conv2d layer is the same with W seen as the matrix [out_c, in_c k k]
 * (torch's layout flattened): fan_in = in_c k k, fan_out = out_c k k, b has
 * out_c values drawn at counters out_c * fan_in + i; so DEFAULT is torch.nn.Conv2d's default, U(±1/sqrt(fan_in))
 * for W and b.  Batch and layer norm: γ = 1, β = 0 (no draws).
 *
 * Which initialiser a node gets is its op's (op.h, mgr_op_def.init): the
 * dense and conv2d definitions call mgr_init_weights with their matrix
 * shape and fans, the norms' fill γ and β themselves.
 */
#include <lapacke.h>
#include <math.h>
#include <string.h>

#include "base/rng.h"
#include "graph/graph.h"

static uint64_t init_stream(int32_t node)
{
    return (uint64_t)MGR_STREAM_INIT + ((uint64_t)node << 8);
}

static void fill_uniform(double *x, int64_t n, double a, uint64_t seed,
                         uint64_t stream, uint64_t first_counter)
{
    for (int64_t k = 0; k < n; k++)
        x[k] = a * (2.0 * mgr_rng_uniform(seed, stream, first_counter + (uint64_t)k) - 1.0);
}

static void fill_normal(double *x, int64_t n, double sigma, uint64_t seed,
                        uint64_t stream, uint64_t first_counter)
{
    for (int64_t k = 0; k < n; k++)
        x[k] = sigma * mgr_rng_normal(seed, stream, first_counter + (uint64_t)k);
}

/*
 * W [rows, cols] with orthonormal columns (rows >= cols) or rows (rows <
 * cols).  QR of the tall orientation A [m, n], m >= n, in column-major
 * order, where LAPACKE's _work calls neither transpose nor allocate: the
 * workspace comes from the context's allocator.
 */
static mgrad_status fill_orthogonal(mgrad_context *ctx, double *w, int64_t rows,
                                    int64_t cols, uint64_t seed, uint64_t stream)
{
    int64_t m = rows >= cols ? rows : cols;
    int64_t n = rows >= cols ? cols : rows;
    lapack_int lm = (lapack_int)m, ln = (lapack_int)n;
    MGRAD_RETURN_IF(ctx, (int64_t)lm != m || (int64_t)ln != n, MGRAD_ERR_INVALID,
                    "orthogonal init: a %lld x %lld layer is too large for LAPACK's "
                    "integer type; choose another initialiser",
                    (long long)rows, (long long)cols);

    mgrad_status status = MGRAD_OK;
    double *a = NULL, *tau = NULL, *work = NULL;
    double *sign = NULL;
    a = mgr_alloc(ctx, (size_t)m * (size_t)n * sizeof *a);
    tau = mgr_alloc(ctx, (size_t)n * sizeof *tau);
    sign = mgr_alloc(ctx, (size_t)n * sizeof *sign);
    if (a == NULL || tau == NULL || sign == NULL) {
        status = mgr_error(ctx, MGRAD_ERR_NOMEM,
                           "out of memory for the orthogonal init of a %lld x %lld layer",
                           (long long)rows, (long long)cols);
        goto done;
    }

    /* G[i, j] is drawn at W's row-major index; A = G or Gᵀ, column-major:
       A(r, c) = a[r + c * m]. */
    for (int64_t i = 0; i < rows; i++) {
        for (int64_t j = 0; j < cols; j++) {
            double g = mgr_rng_normal(seed, stream, (uint64_t)(i * cols + j));
            if (rows >= cols)
                a[i + j * m] = g;   /* A(i, j) = G(i, j) */
            else
                a[j + i * m] = g;   /* A(j, i) = G(i, j) */
        }
    }

    double query_qr = 0.0, query_q = 0.0;
    lapack_int info = LAPACKE_dgeqrf_work(LAPACK_COL_MAJOR, lm, ln, a, lm, tau,
                                          &query_qr, -1);
    if (info == 0)
        info = LAPACKE_dorgqr_work(LAPACK_COL_MAJOR, lm, ln, ln, a, lm, tau, &query_q, -1);
    if (info != 0) {
        status = mgr_error(ctx, MGRAD_ERR_INTERNAL,
                           "orthogonal init: LAPACK workspace query failed (info %d)",
                           (int)info);
        goto done;
    }
    lapack_int lwork = (lapack_int)fmax(fmax(query_qr, query_q), (double)n);
    work = mgr_alloc(ctx, (size_t)lwork * sizeof *work);
    if (work == NULL) {
        status = mgr_error(ctx, MGRAD_ERR_NOMEM,
                           "out of memory for the orthogonal init of a %lld x %lld layer",
                           (long long)rows, (long long)cols);
        goto done;
    }
    info = LAPACKE_dgeqrf_work(LAPACK_COL_MAJOR, lm, ln, a, lm, tau, work, lwork);
    if (info != 0) {
        status = mgr_error(ctx, MGRAD_ERR_INTERNAL,
                           "orthogonal init: LAPACK dgeqrf failed (info %d)", (int)info);
        goto done;
    }
    /* diag(R) must be read before dorgqr overwrites R with Q.  The sign
       correction makes Q unique, hence Haar-distributed (torch does the
       same); sign(0) = +1 keeps every column a unit vector. */
    for (int64_t j = 0; j < n; j++) sign[j] = a[j + j * m] < 0.0 ? -1.0 : 1.0;
    info = LAPACKE_dorgqr_work(LAPACK_COL_MAJOR, lm, ln, ln, a, lm, tau, work, lwork);
    if (info != 0) {
        status = mgr_error(ctx, MGRAD_ERR_INTERNAL,
                           "orthogonal init: LAPACK dorgqr failed (info %d)", (int)info);
        goto done;
    }

    for (int64_t i = 0; i < rows; i++) {
        for (int64_t j = 0; j < cols; j++) {
            if (rows >= cols)
                w[i * cols + j] = a[i + j * m] * sign[j];   /* W = Q */
            else
                w[i * cols + j] = a[j + i * m] * sign[i];   /* W = Qᵀ */
        }
    }

done:
    mgr_free(ctx, work);
    mgr_free(ctx, sign);
    mgr_free(ctx, tau);
    mgr_free(ctx, a);
    return status;
}

mgrad_status mgr_init_weights(mgrad_context *ctx, mgrad_init init, int32_t node,
                              int64_t rows, int64_t cols, int64_t fan_out, uint64_t seed,
                              double *w)
{
    int64_t fan_in = cols;
    int64_t nw = rows * cols;
    double *b = w + nw;
    int64_t nb = rows;
    uint64_t s = init_stream(node);
    double dfi = (double)fan_in, dfo = (double)fan_out;

    switch (init) {
    case MGRAD_INIT_DEFAULT:
        fill_uniform(w, nw, 1.0 / sqrt(dfi), seed, s, 0);
        fill_uniform(b, nb, 1.0 / sqrt(dfi), seed, s, (uint64_t)nw);
        return MGRAD_OK;
    case MGRAD_INIT_KAIMING_UNIFORM:
        fill_uniform(w, nw, sqrt(6.0 / dfi), seed, s, 0);
        break;
    case MGRAD_INIT_KAIMING_NORMAL:
        fill_normal(w, nw, sqrt(2.0 / dfi), seed, s, 0);
        break;
    case MGRAD_INIT_XAVIER_UNIFORM:
        fill_uniform(w, nw, sqrt(6.0 / (dfi + dfo)), seed, s, 0);
        break;
    case MGRAD_INIT_XAVIER_NORMAL:
        fill_normal(w, nw, sqrt(2.0 / (dfi + dfo)), seed, s, 0);
        break;
    case MGRAD_INIT_ORTHOGONAL:
        MGRAD_FORWARD(fill_orthogonal(ctx, w, rows, cols, seed, s));
        break;
    case MGRAD_INIT_ZEROS:
        memset(w, 0, (size_t)nw * sizeof *w);
        break;
    default:
        return mgr_error(ctx, MGRAD_ERR_INTERNAL, "init: node %d has unknown initialiser %d",
                         (int)node, (int)init);
    }
    memset(b, 0, (size_t)nb * sizeof *b);
    return MGRAD_OK;
}

mgrad_status mgr_graph_init_node(mgrad_context *ctx, const mgr_graph *g, int32_t node,
                                 uint64_t seed, double *theta)
{
    MGRAD_RETURN_IF(ctx, g == NULL, MGRAD_ERR_NULL, "init: graph is NULL");
    MGRAD_RETURN_IF(ctx, node < 0 || node >= g->num_nodes, MGRAD_ERR_INTERNAL,
                    "init: node %d out of range", (int)node);
    const mgr_node *nd = &g->nodes[node];
    if (nd->param_count == 0) return MGRAD_OK;
    MGRAD_RETURN_IF(ctx, theta == NULL, MGRAD_ERR_NULL, "init: parameter buffer is NULL");
    const mgr_op_def *def = mgr_op_def_of(nd->kind);
    MGRAD_RETURN_IF(ctx, def == NULL || def->init == NULL, MGRAD_ERR_INTERNAL,
                    "init: node %d has parameters but no initialiser", (int)node);
    return def->init(ctx, g, node, seed, theta);
}

mgrad_status mgr_graph_init_params(mgrad_context *ctx, const mgr_graph *g,
                                   uint64_t seed, double *theta)
{
    MGRAD_RETURN_IF(ctx, g == NULL || (theta == NULL && g->num_params > 0),
                    MGRAD_ERR_NULL, "init: graph or parameter buffer is NULL");
    for (int32_t i = 1; i < g->num_nodes; i++)
        MGRAD_FORWARD(mgr_graph_init_node(ctx, g, i, seed, theta));
    return MGRAD_OK;
}
