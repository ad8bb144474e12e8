/*
 * ops_pool.c - pooling: average and max over k x k windows (stride s, no
 * padding, floor mode, as torch.nn.AvgPool2d / MaxPool2d with padding 0),
 * and global average pooling.  Four passes each.
 *
 *     x [rows, C, H, W]  ->  y [rows, C, OH, OW],  OH = (H − k) / s + 1
 *     global:  x [rows, C, S] (S = H W)  ->  y [rows, C]
 *
 * Average pooling is linear with constant coefficients 1/k² (1/S), so its
 * tangent is the op applied to ẋ and its tangent-of-backward is its backward
 * applied to (ȳ)˙.  Max pooling is y = x[m(y)] with m the index of the
 * window's maximum (the first one in row-major window order on ties, as
 * torch); m is piecewise constant in x, so away from ties
 *
 *     backward: x̄[m] += ȳ;   tangent: ẏ = ẋ[m];   tan-back: (x̄)˙[m] += (ȳ)˙
 *
 * The forward finds m and keeps it (the op's `saved` doubles, one index per
 * output element); the other passes of the chunk read it: finding a
 * window's maximum, a compare-and-branch per element on data the branch
 * predictor cannot guess, was a tenth of the ResNet-9-style net's time when
 * every pass repeated it.
 * Rules: docs/derivations.md, "Pooling".
 *
 * Like every ops_<family>.c, this file is compiled three times: without
 * MGRAD_REAL_BITS it gives the ops' definitions (op.h), with 32 and 64
 * their passes.  All three are linear in x for fixed window maxima, so none
 * reads ȳ in its tangent-of-backward (MGR_YBAR_NEVER).
 */
#ifndef MGRAD_REAL_BITS
/* ---- the definitions (untyped, compiled once) ---------------------------- */

#include "graph/graph.h"

/* The caller sets kernel and stride; there is no padding. */
static mgrad_status pool_infer(mgrad_context *ctx, const mgr_graph *g, mgr_node *node,
                               int64_t *param_count)
{
    int64_t oh = 0, ow = 0;
    node->padding = 0;
    MGRAD_FORWARD(mgr_infer_window(ctx, g, node, &oh, &ow));
    mgr_node_set_shape3(node, g->nodes[node->in0].shape[0], oh, ow);
    *param_count = 0;
    return MGRAD_OK;
}

const mgr_op_def mgr_op_avg_pool = {
    .name = "average pooling",
    .inputs = 1,
    .infer = pool_infer,
    .ybar_reads = MGR_YBAR_NEVER,
    MGR_OP_PASSES(avg_pool),
};

/* One window index per output element of the chunk (exact in a double:
   indices stay below 2^53). */
static size_t max_pool_saved(const mgr_graph *g, int32_t k, size_t max_rows)
{
    size_t out = (size_t)g->nodes[k].size;
    return out != 0 && max_rows > SIZE_MAX / out ? SIZE_MAX : max_rows * out;
}

const mgr_op_def mgr_op_max_pool = {
    .name = "max pooling",
    .inputs = 1,
    .infer = pool_infer,
    .saved = max_pool_saved,
    .ybar_reads = MGR_YBAR_NEVER,
    MGR_OP_PASSES(max_pool),
};

/* [C, H, W] (or [C, L]) -> [C] */
static mgrad_status global_avg_pool_infer(mgrad_context *ctx, const mgr_graph *g,
                                          mgr_node *node, int64_t *param_count)
{
    const mgr_node *x = &g->nodes[node->in0];
    MGRAD_RETURN_IF(ctx, x->ndim < 2, MGRAD_ERR_SHAPE,
                    "global average pooling: the input must be [channels, height, "
                    "width] (or [channels, length]) but node %d is 1-D; use it "
                    "after conv2d and before flatten or dense layers",
                    (int)node->in0);
    mgr_node_set_shape1(node, x->shape[0]);
    *param_count = 0;
    return MGRAD_OK;
}

const mgr_op_def mgr_op_global_avg_pool = {
    .name = "global average pooling",
    .inputs = 1,
    .infer = global_avg_pool_infer,
    .ybar_reads = MGR_YBAR_NEVER,
    MGR_OP_PASSES(global_avg_pool),
};

#else
/* ---- the passes (typed, compiled for f32 and f64) ------------------------ */

#include <assert.h>

#include "graph/ops.h"

typedef struct pool_dims {
    size_t C, H, W, OH, OW, k, s, in, out;
} pool_dims;

static pool_dims dims_of(const R(mgr_op_args) *a)
{
    const mgr_node *nd = a->node, *x = a->xnode;
    pool_dims d;
    d.C = (size_t)x->shape[0];
    d.H = (size_t)x->shape[1];
    d.W = (size_t)x->shape[2];
    d.OH = (size_t)nd->shape[1];
    d.OW = (size_t)nd->shape[2];
    d.k = (size_t)nd->kernel;
    d.s = (size_t)nd->stride;
    d.in = a->in_size;
    d.out = (size_t)nd->size;
    assert(d.in == d.C * d.H * d.W && d.out == d.C * d.OH * d.OW);
    return d;
}

/* ---- average pooling ---------------------------------------------------- */

/* y = avg over each window of x (rows·C images); the linear map of every
   pass: y from x (forward, tangent). */
static void avg_apply(const pool_dims *d, size_t im0, size_t im1, const real *x, real *y)
{
    real inv = (real)1 / (real)(d->k * d->k);
    for (size_t im = im0; im < im1; im++) {
        const real *xi = x + im * d->H * d->W;
        real *yi = y + im * d->OH * d->OW;
        for (size_t oh = 0; oh < d->OH; oh++) {
            for (size_t ow = 0; ow < d->OW; ow++) {
                double acc = 0;
                for (size_t i = 0; i < d->k; i++) {
                    const real *xr = xi + (oh * d->s + i) * d->W + ow * d->s;
                    for (size_t j = 0; j < d->k; j++) acc += xr[j];
                }
                yi[oh * d->OW + ow] = (real)acc * inv;
            }
        }
    }
}

/* x̄ += avgᵀ ȳ: every window element gets ȳ / k² */
static void avg_adjoint(const pool_dims *d, size_t im0, size_t im1, const real *yb, real *xb)
{
    real inv = (real)1 / (real)(d->k * d->k);
    for (size_t im = im0; im < im1; im++) {
        real *xi = xb + im * d->H * d->W;
        const real *yi = yb + im * d->OH * d->OW;
        for (size_t oh = 0; oh < d->OH; oh++) {
            for (size_t ow = 0; ow < d->OW; ow++) {
                real g = yi[oh * d->OW + ow] * inv;
                for (size_t i = 0; i < d->k; i++) {
                    real *xr = xi + (oh * d->s + i) * d->W + ow * d->s;
                    for (size_t j = 0; j < d->k; j++) xr[j] += g;
                }
            }
        }
    }
}

/* Every pass of the three ops works image by image (an image: one
   channel of one example), each image alone, so the images are shared out
   among the context's threads (mgr_pool_items) with the same bits. */
enum { AVG_APPLY, AVG_ADJOINT, MAX_FIND, MAX_GATHER, MAX_SCATTER, GAP_APPLY, GAP_ADJOINT };

typedef struct image_job {
    const R(mgr_op_args) *a;
    pool_dims d;
    int kind;
    const real *src;
    real *dst;
    size_t S; /* global pooling: elements per image */
} image_job;

static void max_images(const image_job *j, size_t im0, size_t im1);
static void gap_apply(size_t im0, size_t im1, size_t S, const real *x, real *y);
static void gap_adjoint(size_t im0, size_t im1, size_t S, const real *yb, real *xb);

static void image_range(void *arg, size_t lo, size_t hi)
{
    const image_job *j = arg;
    switch (j->kind) {
    case AVG_APPLY: avg_apply(&j->d, lo, hi, j->src, j->dst); break;
    case AVG_ADJOINT: avg_adjoint(&j->d, lo, hi, j->src, j->dst); break;
    case MAX_FIND:
    case MAX_GATHER:
    case MAX_SCATTER: max_images(j, lo, hi); break;
    case GAP_APPLY: gap_apply(lo, hi, j->S, j->src, j->dst); break;
    default: gap_adjoint(lo, hi, j->S, j->src, j->dst); break;
    }
}

static void run_images(const R(mgr_op_args) *a, int kind, const real *src, real *dst)
{
    image_job j;
    j.a = a;
    j.kind = kind;
    j.src = src;
    j.dst = dst;
    size_t images;
    if (kind == GAP_APPLY || kind == GAP_ADJOINT) {
        size_t C = (size_t)a->node->size;
        j.S = a->in_size / C;
        images = a->rows * C;
    } else {
        j.d = dims_of(a);
        j.S = 0;
        images = a->rows * j.d.C;
    }
    mgr_pool_items(a->pool, images, 2.0 * (double)(a->in_size * a->rows) / (double)images,
                   image_range, &j);
}

static void avg_pool_forward(const R(mgr_op_args) *a) { run_images(a, AVG_APPLY, a->x, a->y); }

static void avg_pool_backward(const R(mgr_op_args) *a)
{
    if (a->xbar != NULL) run_images(a, AVG_ADJOINT, a->ybar, a->xbar);
}

static void avg_pool_tangent(const R(mgr_op_args) *a)
{
    if (a->xdot == NULL)
        R(mgr_zero)(a->rows * (size_t)a->node->size, a->ydot);
    else
        run_images(a, AVG_APPLY, a->xdot, a->ydot);
}

static void avg_pool_tangent_backward(const R(mgr_op_args) *a)
{
    if (a->xbardot != NULL) run_images(a, AVG_ADJOINT, a->ybardot, a->xbardot);
}

MGR_OP_PASS_TABLE(avg_pool, avg_pool);

/* ---- max pooling -------------------------------------------------------- */

/* Index within image xi [H, W] of the maximum of window (oh, ow): the first
   in row-major window order on ties (strict >), as torch.  NaN propagates:
   a NaN element is taken as the maximum, again as torch. */
static size_t max_index(const pool_dims *d, const real *xi, size_t oh, size_t ow)
{
    size_t best = (oh * d->s) * d->W + ow * d->s;
    real bv = xi[best];
    for (size_t i = 0; i < d->k; i++) {
        for (size_t j = 0; j < d->k; j++) {
            size_t idx = (oh * d->s + i) * d->W + ow * d->s + j;
            real v = xi[idx];
            if (v > bv || (v != v && bv == bv)) {
                best = idx;
                bv = v;
            }
        }
    }
    return best;
}

/* max_index for 2 x 2 windows with stride 2 (the usual pooling), the same
   comparisons in the same order without the general loop's index
   arithmetic. */
static inline size_t max_index_2x2(size_t W, const real *xi, size_t oh, size_t ow)
{
    size_t best = (2 * oh) * W + 2 * ow;
    const size_t cand[3] = {best + 1, best + W, best + W + 1};
    real bv = xi[best];
    for (int t = 0; t < 3; t++) {
        real v = xi[cand[t]];
        if (v > bv || (v != v && bv == bv)) {
            best = cand[t];
            bv = v;
        }
    }
    return best;
}

/* The four passes share one loop (run_images): for every output element o with window
   maximum m, mode 0: y[o] = src[m];  mode 1: dst[m] += src[o].  The forward
   (MAX_FIND) finds m in x and keeps it in a->saved; the other passes read it
   there. */
static void max_images(const image_job *j, size_t im0, size_t im1)
{
    const R(mgr_op_args) *a = j->a;
    const pool_dims d = j->d;
    const int mode = j->kind == MAX_SCATTER;
    const real *src = j->src;
    real *dst = j->dst;
    double *saved = a->saved;
    if (j->kind != MAX_FIND) {
        for (size_t o = im0 * d.OH * d.OW; o < im1 * d.OH * d.OW; o++) {
            size_t m = (size_t)saved[o];
            if (mode == 0)
                dst[o] = src[m];
            else
                dst[m] += src[o];
        }
        return;
    }
    int k2 = d.k == 2 && d.s == 2;
    for (size_t im = im0; im < im1; im++) {
        const real *xi = a->x + im * d.H * d.W;
        size_t ib = im * d.H * d.W, ob = im * d.OH * d.OW;
        for (size_t oh = 0; oh < d.OH; oh++) {
            for (size_t ow = 0; ow < d.OW; ow++) {
                size_t m = ib + (k2 ? max_index_2x2(d.W, xi, oh, ow) : max_index(&d, xi, oh, ow));
                size_t o = ob + oh * d.OW + ow;
                saved[o] = (double)m;
                dst[o] = src[m];
            }
        }
    }
}

static void max_pool_forward(const R(mgr_op_args) *a) { run_images(a, MAX_FIND, a->x, a->y); }

static void max_pool_backward(const R(mgr_op_args) *a)
{
    if (a->xbar != NULL) run_images(a, MAX_SCATTER, a->ybar, a->xbar);
}

static void max_pool_tangent(const R(mgr_op_args) *a)
{
    if (a->xdot == NULL)
        R(mgr_zero)(a->rows * (size_t)a->node->size, a->ydot);
    else
        run_images(a, MAX_GATHER, a->xdot, a->ydot);
}

static void max_pool_tangent_backward(const R(mgr_op_args) *a)
{
    if (a->xbardot != NULL) run_images(a, MAX_SCATTER, a->ybardot, a->xbardot);
}

MGR_OP_PASS_TABLE(max_pool, max_pool);

/* ---- global average pooling --------------------------------------------- */

/* x [rows, C, S] -> y [rows, C]: y = mean over S.  (Any input of ndim >= 2:
   S is the product of the dimensions after the first.) */
static void gap_apply(size_t im0, size_t im1, size_t S, const real *x, real *y)
{
    for (size_t i = im0; i < im1; i++) y[i] = (real)(R(mgr_sum)(S, x + i * S) / (double)S);
}

static void gap_adjoint(size_t im0, size_t im1, size_t S, const real *yb, real *xb)
{
    real inv = (real)1 / (real)S;
    for (size_t i = im0; i < im1; i++) {
        real g = yb[i] * inv;
        real *xi = xb + i * S;
        for (size_t j = 0; j < S; j++) xi[j] += g;
    }
}

static void global_avg_pool_forward(const R(mgr_op_args) *a)
{
    run_images(a, GAP_APPLY, a->x, a->y);
}

static void global_avg_pool_backward(const R(mgr_op_args) *a)
{
    if (a->xbar != NULL) run_images(a, GAP_ADJOINT, a->ybar, a->xbar);
}

static void global_avg_pool_tangent(const R(mgr_op_args) *a)
{
    if (a->xdot == NULL)
        R(mgr_zero)(a->rows * (size_t)a->node->size, a->ydot);
    else
        run_images(a, GAP_APPLY, a->xdot, a->ydot);
}

static void global_avg_pool_tangent_backward(const R(mgr_op_args) *a)
{
    if (a->xbardot != NULL) run_images(a, GAP_ADJOINT, a->ybardot, a->xbardot);
}

MGR_OP_PASS_TABLE(global_avg_pool, global_avg_pool);

#endif
