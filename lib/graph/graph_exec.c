/*
 * graph_exec.c - typed execution of a graph: the workspace and the four
 * graph-level passes (see graph_exec.h for the contract), a driver over the
 * op table (op.h) that never asks for an op's kind.
 *
 * Buffers of node k are ws->val[k], ->tan[k], ->adj[k], ->tadj[k], each
 * [rows, size_k] row-major.  Node 0 (the input) owns no buffers: its value,
 * tangent, adjoint and adjoint tangent are the caller's x, xdot, xbar and
 * xbardot, any of which but x may be NULL.
 *
 * The adjoint tangents of the inner nodes share a few buffers: tadj[k] is
 * only read by node k's own tangent_backward, so it lives from the step of
 * the reverse sweep at which its last consumer accumulates into it down to
 * node k's step, and nodes whose intervals do not meet get the same memory
 * (tadj_slots).  A chain needs two such buffers, a residual block three,
 * instead of one per node: for the small CNN of examples/small_resnet.c a
 * fifth of the workspace.  tadj[last] is its own buffer (callers pass it as
 * obardot).
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "graph/graph_exec.h"

/* ---- workspace ---------------------------------------------------------- */

/* Buffers start on 64-byte boundaries (the allocator aligns the block). */
static size_t padded_count(size_t n)
{
    const size_t per_line = 64 / sizeof(real);
    return (n + per_line - 1) / per_line * per_line;
}

/* The reverse step at which tadj[k] of inner node k becomes live: that of
   its last consumer (which runs first in the reverse sweep), or k itself
   when nothing reads node k. */
static void tadj_zero_steps(const mgr_graph *g, int32_t *zero_at)
{
    int32_t last = g->num_nodes - 1;
    for (int32_t k = 0; k <= last; k++) zero_at[k] = k;
    for (int32_t c = 1; c <= last; c++) {
        const mgr_node *nd = &g->nodes[c];
        if (nd->in0 >= 1 && c > zero_at[nd->in0]) zero_at[nd->in0] = c;
        if (nd->in1 >= 1 && c > zero_at[nd->in1]) zero_at[nd->in1] = c;
    }
}

/* Gives each inner node a shared tadj buffer (slot[k]) so that nodes live
   at the same step of the reverse sweep never share one; returns the number
   of buffers.  free_list: scratch of num_nodes entries. */
static int32_t tadj_slots(const mgr_graph *g, const int32_t *zero_at, int32_t *slot,
                          int32_t *free_list)
{
    int32_t last = g->num_nodes - 1, nslots = 0, nfree = 0;
    for (int32_t k = 0; k <= last; k++) slot[k] = -1;
    for (int32_t c = last; c >= 1; c--) {
        /* Every inner node that becomes live at step c: c's inputs whose
           last consumer is c, or c itself when unread. */
        const mgr_node *nd = &g->nodes[c];
        int32_t starting[3] = {nd->in0, nd->in1, c};
        for (int t = 0; t < 3; t++) {
            int32_t k = starting[t];
            if (k < 1 || k >= last || zero_at[k] != c || slot[k] >= 0) continue;
            slot[k] = nfree > 0 ? free_list[--nfree] : nslots++;
        }
        /* node c reads its buffer during step c, after which it is free */
        if (c < last && slot[c] >= 0) free_list[nfree++] = slot[c];
    }
    return nslots;
}

/* Elements of the R-op block for `rows` rows: every non-input node's
   tangent and adjoint; SIZE_MAX on overflow. */
static size_t rop_block_count(const mgr_graph *g, size_t rows)
{
    size_t total = 0;
    for (int32_t k = 1; k < g->num_nodes; k++) {
        size_t size = (size_t)g->nodes[k].size;
        if (size != 0 && rows > SIZE_MAX / sizeof(real) / size) return SIZE_MAX;
        size_t per = padded_count(rows * size);
        if (per > (SIZE_MAX / sizeof(real) - total) / 2) return SIZE_MAX;
        total += 2 * per;
    }
    return total;
}

/* Point tan[k] and adj[k] into `block`, sized for `rows` rows. */
static void rop_block_layout(const mgr_graph *g, R(mgr_graph_ws) *ws, real *block, size_t rows)
{
    real *p = block;
    for (int32_t k = 1; k < g->num_nodes; k++) {
        size_t per = padded_count(rows * (size_t)g->nodes[k].size);
        ws->tan[k] = p;
        ws->adj[k] = p + per;
        p += 2 * per;
    }
    ws->rop_block = block;
    ws->rop_rows = rows;
}

mgrad_status R(mgr_graph_ws_reserve_rop)(mgrad_context *ctx, const mgr_graph *g,
                                         R(mgr_graph_ws) *ws, size_t rows)
{
    assert(rows <= ws->max_rows && ws->num_nodes == g->num_nodes);
    if (rows <= ws->rop_rows || g->num_nodes < 2) return MGRAD_OK;
    /* Grow to the workspace's largest chunk at once: only pools and H u
       sessions go past the batch, and they then use whole chunks. */
    size_t count = rop_block_count(g, ws->max_rows);
    real *block = count != SIZE_MAX ? mgr_alloc_small_pages(ctx, (count > 0 ? count : 1) *
                                                                     sizeof(real))
                                    : NULL;
    if (block == NULL)
        return mgr_error(ctx, MGRAD_ERR_NOMEM,
                         "out of memory growing the graph workspace's tangents and "
                         "adjoints to %zu rows",
                         ws->max_rows);
    mgr_free(ctx, ws->rop_block);
    rop_block_layout(g, ws, block, ws->max_rows);
    return MGRAD_OK;
}

mgrad_status R(mgr_graph_ws_create)(mgrad_context *ctx, const mgr_graph *g,
                                    size_t max_rows, R(mgr_graph_ws) **out)
{
    return R(mgr_graph_ws_create_rop)(ctx, g, max_rows, max_rows, out);
}

mgrad_status R(mgr_graph_ws_create_rop)(mgrad_context *ctx, const mgr_graph *g,
                                        size_t max_rows, size_t rop_rows,
                                        R(mgr_graph_ws) **out)
{
    assert(g != NULL && g->num_nodes >= 1 && out != NULL);
    *out = NULL;
    size_t n = (size_t)g->num_nodes;
    int32_t last = g->num_nodes - 1;

    /* Which shared buffer holds each inner node's tadj (the file comment). */
    int32_t *zero_at = mgr_calloc(ctx, 3 * n, sizeof(int32_t));
    if (zero_at == NULL)
        return mgr_error(ctx, MGRAD_ERR_NOMEM, "out of memory planning the graph workspace");
    int32_t *slot = zero_at + n;
    tadj_zero_steps(g, zero_at);
    size_t nslots = (size_t)tadj_slots(g, zero_at, slot, slot + n);

    /* Elements of the buffers: val of every non-input node, tan and adj of
       them in the R-op block (for rop_rows rows), tadj of the last, and
       nslots shared tadj buffers of the largest inner node's size; with
       overflow checks, since the sizes come from the caller's model and
       batch size. */
    if (rop_rows > max_rows) rop_rows = max_rows;
    size_t rop_count = rop_block_count(g, rop_rows);
    if (rop_count == SIZE_MAX) goto too_large;
    size_t total = 0, max_inner = 0;
    for (size_t k = 1; k < n; k++) {
        size_t size = (size_t)g->nodes[k].size;
        if (size != 0 && max_rows > SIZE_MAX / sizeof(real) / size)
            goto too_large;
        size_t per = padded_count(max_rows * size);
        size_t copies = (int32_t)k == last ? 2 : 1;
        if (per > (SIZE_MAX / sizeof(real) - total) / copies) goto too_large;
        total += copies * per;
        if ((int32_t)k < last && per > max_inner) max_inner = per;
    }
    if (nslots > 0 && max_inner > (SIZE_MAX / sizeof(real) - total) / nslots) goto too_large;
    total += nslots * max_inner;
    /* One scratch area, shared by the nodes in turn (ops run one at a time). */
    size_t scratch = 0;
    for (size_t k = 1; k < n; k++) {
        size_t need = mgr_op_scratch(g, (int32_t)k);
        /* SIZE_MAX: the op's count overflows; the margin keeps the padding
           to a cache line below from overflowing too. */
        if (need > SIZE_MAX / sizeof(real) - 64) goto too_large;
        if (need > scratch) scratch = need;
    }
    scratch = padded_count(scratch);
    /* one area per thread of the context's pool, and the shared part */
    mgr_pool *pool = mgr_context_pool(ctx);
    size_t threads = (size_t)mgr_pool_threads(pool);
    if (scratch > (SIZE_MAX / sizeof(real) - total) / threads) goto too_large;
    total += threads * scratch;
    size_t shared = 0;
    for (size_t k = 1; k < n; k++) {
        size_t need = mgr_op_shared_scratch(g, (int32_t)k);
        if (need > SIZE_MAX / sizeof(real) - 64) goto too_large;
        if (need > shared) shared = need;
    }
    shared = padded_count(shared);
    if (shared > SIZE_MAX / sizeof(real) - total) goto too_large;
    total += shared;
    /* What the ops' forwards keep for their other passes (doubles). */
    size_t saved = 0;
    for (size_t k = 1; k < n; k++) {
        size_t need = mgr_op_saved(g, (int32_t)k, max_rows);
        if (need > SIZE_MAX / sizeof(double) - saved) goto too_large;
        saved += need;
    }

    R(mgr_graph_ws) *ws = mgr_calloc(ctx, 1, sizeof *ws);
    real **ptrs = mgr_calloc(ctx, 4 * n, sizeof(real *));
    unsigned char *need = mgr_calloc(ctx, n, 1);
    double **saved_ptrs = mgr_calloc(ctx, n, sizeof(double *));
    double *saved_data = mgr_calloc(ctx, saved > 0 ? saved : 1, sizeof(double));
    /* One block for every buffer; at least one element so that val[1] (which
       destroy frees) is a real block even for max_rows = 0. */
    /* Small pages: the passes of the batch touch the first B rows of each
       node's buffers, the dataset passes more; with 2 MiB pages (mgr_alloc's
       advice for large blocks) a fresh small-CNN run faulted in 255 MiB
       instead of 178 and ran 5-10 % slower (bench_cnn, 1 thread). */
    real *data = n > 1 ? mgr_alloc_small_pages(ctx, (total > 0 ? total : 1) * sizeof(real))
                       : NULL;
    real *rop = n > 1 ? mgr_alloc_small_pages(ctx, (rop_count > 0 ? rop_count : 1) *
                                                       sizeof(real))
                      : NULL;
    if (ws == NULL || ptrs == NULL || need == NULL || saved_ptrs == NULL ||
        saved_data == NULL || (n > 1 && (data == NULL || rop == NULL))) {
        mgr_free(ctx, zero_at);
        mgr_free(ctx, rop);
        mgr_free(ctx, saved_ptrs);
        mgr_free(ctx, saved_data);
        mgr_free(ctx, need);
        mgr_free(ctx, data);
        mgr_free(ctx, ptrs);
        mgr_free(ctx, ws);
        return mgr_error(ctx, MGRAD_ERR_NOMEM,
                         "out of memory allocating the graph workspace "
                         "(%zu nodes, %zu rows, %zu bytes)",
                         n, max_rows, total * sizeof(real));
    }
    ws->max_rows = max_rows;
    ws->num_nodes = g->num_nodes;
    ws->val = ptrs;
    ws->tan = ptrs + n;
    ws->adj = ptrs + 2 * n;
    ws->tadj = ptrs + 3 * n;
    ws->saved = saved_ptrs;
    ws->saved[0] = saved_data; /* node 0 keeps nothing: [0] owns the block */
    double *sp = saved_data;
    for (size_t k = 1; k < n; k++) {
        size_t keep = mgr_op_saved(g, (int32_t)k, max_rows);
        ws->saved[k] = keep > 0 ? sp : NULL;
        sp += keep;
    }
    ws->seed = 0;
    ws->step = 0;
    ws->training = 1;
    ws->row0 = 0;
    ws->need = need;
    ws->tadj_zero_at = zero_at; /* slot (after it) is not kept */
    ws->pool = pool;
    real *p = data;
    for (size_t k = 1; k < n; k++) {
        size_t per = padded_count(max_rows * (size_t)g->nodes[k].size);
        ws->val[k] = p;
        p += per;
        if ((int32_t)k == last) {
            ws->tadj[k] = p;
            p += per;
        }
    }
    for (size_t k = 1; k < (size_t)last; k++) ws->tadj[k] = p + (size_t)slot[k] * max_inner;
    p += nslots * max_inner;
    ws->scratch = scratch > 0 ? p : NULL;
    ws->scratch_stride = scratch;
    p += threads * scratch;
    ws->shared = shared > 0 ? p : NULL;
    if (n > 1) rop_block_layout(g, ws, rop, rop_rows);
    *out = ws;
    return MGRAD_OK;

too_large:
    mgr_free(ctx, zero_at);
    return mgr_error(ctx, MGRAD_ERR_NOMEM,
                     "graph workspace for %zu rows does not fit in memory", max_rows);
}

void R(mgr_graph_ws_destroy)(mgrad_context *ctx, R(mgr_graph_ws) *ws)
{
    if (ws == NULL) return;
    /* The data block starts at val[1]; a one-node graph has none. */
    if (ws->num_nodes > 1) mgr_free(ctx, ws->val[1]);
    mgr_free(ctx, ws->rop_block);
    mgr_free(ctx, ws->val);
    mgr_free(ctx, ws->saved[0]);
    mgr_free(ctx, ws->saved);
    mgr_free(ctx, ws->need);
    mgr_free(ctx, ws->tadj_zero_at);
    mgr_free(ctx, ws);
}

/* ---- graph-level passes ------------------------------------------------- */

/* The buffers of node k as seen by its consumers; node 0 is the caller's. */
static const real *node_val(const R(mgr_graph_ws) *ws, int32_t k, const real *x)
{
    return k == 0 ? x : ws->val[k];
}

/* Depth bound of the known-zero search: residual graphs make the search a
   DAG walk that could revisit nodes, so it gives up (answers "not known")
   beyond a few levels.  Real graphs hit a dense node within one or two. */
#define MGR_ZERO_DEPTH 8

/* Whether node k's tangent is known to be zero: no parameter direction
   reaches it and its inputs' tangents are zero.  Conservative. */
static int tan_known_zero(const mgr_graph *g, int32_t k, int has_u, int has_xdot, int depth)
{
    if (k == 0) return !has_xdot;
    if (depth >= MGR_ZERO_DEPTH) return 0;
    const mgr_node *nd = &g->nodes[k];
    if (has_u && nd->param_count > 0) return 0;
    if (!tan_known_zero(g, nd->in0, has_u, has_xdot, depth + 1)) return 0;
    return nd->in1 < 0 || tan_known_zero(g, nd->in1, has_u, has_xdot, depth + 1);
}

/* The tangent of node k's output as its consumers see it: the caller's xdot
   for the input, NULL when known zero. */
static const real *node_tan(const mgr_graph *g, const R(mgr_graph_ws) *ws, int32_t k,
                            const real *u, const real *xdot)
{
    if (k == 0) return xdot;
    return tan_known_zero(g, k, u != NULL, xdot != NULL, 0) ? NULL : ws->tan[k];
}

static void fill_args(R(mgr_op_args) *a, const mgr_graph *g, const R(mgr_graph_ws) *ws,
                      int32_t k, size_t rows, const real *theta, const real *x)
{
    const mgr_node *nd = &g->nodes[k];
    memset(a, 0, sizeof *a);
    a->node = nd;
    a->rows = rows;
    a->in_size = (size_t)g->nodes[nd->in0].size;
    a->x = node_val(ws, nd->in0, x);
    a->x1 = nd->in1 >= 0 ? node_val(ws, nd->in1, x) : NULL;
    a->y = ws->val[k];
    a->ydot = ws->tan[k];
    a->p = nd->param_count > 0 ? theta + nd->param_offset : NULL;
    a->xnode = &g->nodes[nd->in0];
    a->scratch = ws->scratch;
    a->index = k;
    a->seed = ws->seed;
    a->step = ws->step;
    a->training = ws->training;
    a->row0 = ws->row0;
    a->pool = ws->pool;
    a->scratch_stride = ws->scratch_stride;
    a->shared = ws->shared;
    a->saved = ws->saved[k];
}

void R(mgr_graph_forward_memo)(const mgr_graph *g, R(mgr_graph_ws) *ws, size_t rows,
                               const real *theta, const real *x, const real *memo_in,
                               real *memo_out)
{
    assert(rows <= ws->max_rows && ws->num_nodes == g->num_nodes);
    R(mgr_op_args) a;
    size_t off = 0;
    for (int32_t k = 1; k < g->num_nodes; k++) {
        const mgr_node *nd = &g->nodes[k];
        size_t n = mgr_node_memoised(nd) ? rows * (size_t)nd->size : 0;
        if (n > 0 && memo_in != NULL) {
            R(mgr_copy_pool)(ws->pool, n, memo_in + off, ws->val[k]);
        } else {
            fill_args(&a, g, ws, k, rows, theta, x);
            R(mgr_op_passes_of)(nd->kind)->forward(&a);
        }
        if (n > 0 && memo_out != NULL) R(mgr_copy_pool)(ws->pool, n, ws->val[k], memo_out + off);
        off += n;
    }
}

void R(mgr_graph_forward)(const mgr_graph *g, R(mgr_graph_ws) *ws, size_t rows,
                          const real *theta, const real *x)
{
    R(mgr_graph_forward_memo)(g, ws, rows, theta, x, NULL, NULL);
}

/* Inner nodes' tadj buffers are shared (the file comment): at reverse step
   k, zero those that become live there, before anything accumulates into
   them. */
static void zero_shared_at(const mgr_graph *g, R(mgr_graph_ws) *ws, size_t rows, int32_t k)
{
    const mgr_node *nd = &g->nodes[k];
    int32_t last = g->num_nodes - 1;
    int32_t starting[3] = {nd->in0, nd->in1 != nd->in0 ? nd->in1 : -1, k};
    for (int t = 0; t < 3; t++) {
        int32_t j = starting[t];
        if (j >= 1 && j < last && ws->tadj_zero_at[j] == k)
            R(mgr_zero_pool)(ws->pool, rows * (size_t)g->nodes[j].size, ws->tadj[j]);
    }
}

/* The full backward.  kept: the inner nodes' adjoints in ws->adj (one
   buffer each, all zeroed first), where a tangent_backward can read them;
   else in the shared buffers of the adjoint tangents (ws->tadj: by the same
   liveness, an adjoint is only read by its node's own backward), each zeroed
   at the step it becomes live, and the output's adjoint read from obar. */
static void backward_pass(const mgr_graph *g, R(mgr_graph_ws) *ws, size_t rows,
                          const real *theta, const real *x, const real *obar, real *grad,
                          real *xbar, int kept)
{
    assert(rows <= (kept ? ws->rop_rows : ws->max_rows) && ws->num_nodes == g->num_nodes);
    int32_t last = g->num_nodes - 1;
    if (last == 0) {
        /* The output is the input: x̄ += ō. */
        if (xbar != NULL) R(mgr_axpy)(rows * (size_t)g->nodes[0].size, 1, obar, xbar);
        return;
    }
    real **adj = kept ? ws->adj : ws->tadj;
    if (kept) {
        /* Inner nodes accumulate the adjoints of all their consumers.  The
           output's adjoint is kept in adj[last] because tangent_backward
           reads it from there; obar may already be that buffer. */
        for (int32_t k = 1; k < last; k++)
            R(mgr_zero_pool)(ws->pool, rows * (size_t)g->nodes[k].size, ws->adj[k]);
        if (obar != ws->adj[last])
            R(mgr_copy)(rows * (size_t)g->nodes[last].size, obar, ws->adj[last]);
    }

    R(mgr_op_args) a;
    for (int32_t k = last; k >= 1; k--) {
        const mgr_node *nd = &g->nodes[k];
        if (!kept) zero_shared_at(g, ws, rows, k);
        fill_args(&a, g, ws, k, rows, theta, x);
        a.ybar = k == last && !kept ? obar : adj[k];
        a.xbar = nd->in0 == 0 ? xbar : adj[nd->in0];
        a.x1bar = nd->in1 < 0 ? NULL : nd->in1 == 0 ? xbar : adj[nd->in1];
        a.pbar = nd->param_count > 0 && grad != NULL ? grad + nd->param_offset : NULL;
        R(mgr_op_passes_of)(nd->kind)->backward(&a);
    }
}

void R(mgr_graph_backward)(const mgr_graph *g, R(mgr_graph_ws) *ws, size_t rows,
                           const real *theta, const real *x, const real *obar,
                           real *grad, real *xbar)
{
    backward_pass(g, ws, rows, theta, x, obar, grad, xbar, 1);
}

void R(mgr_graph_backward_grad)(const mgr_graph *g, R(mgr_graph_ws) *ws, size_t rows,
                                const real *theta, const real *x, const real *obar,
                                real *grad, real *xbar)
{
    backward_pass(g, ws, rows, theta, x, obar, grad, xbar, 0);
}

/* Whether node k's tangent_backward reads its primal adjoint ȳ when run by
   the R-op (u on every parameter, hu wanted, xdot = NULL): 1 = yes,
   0 = no, -1 = not analysed (the caller then runs the full adjoint pass).
   Each op answers with a rule (op.h, mgr_ybar_reads); this applies it to
   the node: (x̄)˙ is wanted unless the node reads the input and the caller
   does not want x̄˙, and ẋ is zero when no parameter direction reaches the
   input. */
static int tb_reads_ybar(const mgr_graph *g, int32_t k, int want_xbardot)
{
    const mgr_node *nd = &g->nodes[k];
    int has_xbardot = nd->in0 != 0 || want_xbardot;
    switch (mgr_op_def_of(nd->kind)->ybar_reads) {
    case MGR_YBAR_NEVER:
        return 0;
    case MGR_YBAR_FOR_XBARDOT:
        return has_xbardot;
    case MGR_YBAR_FOR_XBARDOT_OR_XDOT:
        return has_xbardot || !tan_known_zero(g, nd->in0, 1, 0, 0);
    case MGR_YBAR_ALL:
    case MGR_YBAR_UNANSWERED: /* refused by mgr_graph_append; be safe anyway */
        break;
    }
    return -1;
}

void R(mgr_graph_backward_rop)(const mgr_graph *g, R(mgr_graph_ws) *ws, size_t rows,
                               const real *theta, const real *x, const real *obar,
                               int want_xbardot)
{
    assert(rows <= ws->rop_rows && ws->num_nodes == g->num_nodes);
    int32_t last = g->num_nodes - 1;
    if (last == 0) return;
    /* need[k]: adj[k] is read by node k's tangent_backward, or feeds the
       adjoint of an input that is needed.  Inputs precede their consumers,
       so one pass in index order decides every node. */
    unsigned char *need = ws->need;
    need[0] = 0; /* x̄ is not wanted */
    for (int32_t k = 1; k <= last; k++) {
        const mgr_node *nd = &g->nodes[k];
        int reads = tb_reads_ybar(g, k, want_xbardot);
        if (reads < 0) {
            R(mgr_graph_backward)(g, ws, rows, theta, x, obar, NULL, NULL);
            return;
        }
        need[k] = (unsigned char)(reads || need[nd->in0] || (nd->in1 >= 0 && need[nd->in1]));
    }
    for (int32_t k = 1; k < last; k++)
        if (need[k]) R(mgr_zero_pool)(ws->pool, rows * (size_t)g->nodes[k].size, ws->adj[k]);
    if (obar != ws->adj[last])
        R(mgr_copy)(rows * (size_t)g->nodes[last].size, obar, ws->adj[last]);
    R(mgr_op_args) a;
    for (int32_t k = last; k >= 1; k--) {
        const mgr_node *nd = &g->nodes[k];
        real *xb = need[nd->in0] ? ws->adj[nd->in0] : NULL;
        real *x1b = nd->in1 >= 0 && need[nd->in1] ? ws->adj[nd->in1] : NULL;
        if (xb == NULL && x1b == NULL) continue;
        fill_args(&a, g, ws, k, rows, theta, x);
        a.ybar = ws->adj[k];
        a.xbar = xb;
        a.x1bar = x1b;
        R(mgr_op_passes_of)(nd->kind)->backward(&a);
    }
}

void R(mgr_graph_tangent)(const mgr_graph *g, R(mgr_graph_ws) *ws, size_t rows,
                          const real *theta, const real *u, const real *x,
                          const real *xdot)
{
    assert(rows <= ws->rop_rows && ws->num_nodes == g->num_nodes);
    R(mgr_op_args) a;
    for (int32_t k = 1; k < g->num_nodes; k++) {
        const mgr_node *nd = &g->nodes[k];
        if (tan_known_zero(g, k, u != NULL, xdot != NULL, 0)) {
            /* Consumers see NULL; the buffer is still defined for readers of
               ws->tan (the output tangent in particular). */
            R(mgr_zero_pool)(ws->pool, rows * (size_t)nd->size, ws->tan[k]);
            continue;
        }
        fill_args(&a, g, ws, k, rows, theta, x);
        a.xdot = node_tan(g, ws, nd->in0, u, xdot);
        a.x1dot = nd->in1 >= 0 ? node_tan(g, ws, nd->in1, u, xdot) : NULL;
        a.u = nd->param_count > 0 && u != NULL ? u + nd->param_offset : NULL;
        R(mgr_op_passes_of)(nd->kind)->tangent(&a);
    }
}

/* The adjoint tangent buffer node k's consumers accumulate into. */
static real *node_tadj(R(mgr_graph_ws) *ws, int32_t k, real *xbardot)
{
    return k == 0 ? xbardot : ws->tadj[k];
}

void R(mgr_graph_tangent_backward)(const mgr_graph *g, R(mgr_graph_ws) *ws,
                                   size_t rows, const real *theta, const real *u,
                                   const real *x, const real *xdot,
                                   const real *obardot, real *hu, real *xbardot)
{
    assert(rows <= ws->rop_rows && ws->num_nodes == g->num_nodes);
    int32_t last = g->num_nodes - 1;
    if (last == 0) {
        if (xbardot != NULL)
            R(mgr_axpy)(rows * (size_t)g->nodes[0].size, 1, obardot, xbardot);
        return;
    }
    if (obardot != ws->tadj[last])
        R(mgr_copy)(rows * (size_t)g->nodes[last].size, obardot, ws->tadj[last]);

    R(mgr_op_args) a;
    for (int32_t k = last; k >= 1; k--) {
        const mgr_node *nd = &g->nodes[k];
        zero_shared_at(g, ws, rows, k);
        fill_args(&a, g, ws, k, rows, theta, x);
        a.xdot = node_tan(g, ws, nd->in0, u, xdot);
        a.x1dot = nd->in1 >= 0 ? node_tan(g, ws, nd->in1, u, xdot) : NULL;
        a.ybar = ws->adj[k];
        a.ybardot = ws->tadj[k];
        a.xbardot = node_tadj(ws, nd->in0, xbardot);
        a.x1bardot = nd->in1 >= 0 ? node_tadj(ws, nd->in1, xbardot) : NULL;
        a.u = nd->param_count > 0 && u != NULL ? u + nd->param_offset : NULL;
        a.pbardot = nd->param_count > 0 && hu != NULL ? hu + nd->param_offset : NULL;
        R(mgr_op_passes_of)(nd->kind)->tangent_backward(&a);
    }
}
