/*
 * ops_conv.c - 2-D convolution (torch.nn.Conv2d, groups = 1, dilation 1):
 * four passes by im2col + GEMM.
 *
 *     x [rows, C, H, W]   W [OC, C, k, k]   b [OC]   y [rows, OC, OH, OW]
 *     OH = (H + 2p − k) / s + 1,  OW likewise  (stride s, zero padding p)
 *
 * Per example, with K = C k k, N = OH OW and col(x) [K, N] the im2col matrix
 * (col[(c k + i) k + j, oh OW + ow] = x[c, oh s − p + i, ow s − p + j], 0 in
 * the padding), the convolution is the dense layer
 *
 *     y [OC, N] = W [OC, K] · col(x) [K, N] + b        (b broadcast over N)
 *
 * col is linear in x and its adjoint col2im scatters-adds a [K, N] matrix
 * back onto the image.  So, with direction (U, u_b) on (W, b):
 *
 *     backward:  x̄ += col2im(Wᵀ ȳ);   W̄ += ȳ col(x)ᵀ;   b̄ += Σ_N ȳ
 *     tangent:   ẏ = W col(ẋ) + U col(x) + u_b
 *     tan-back:  (x̄)˙ += col2im(Wᵀ (ȳ)˙ + Uᵀ ȳ)
 *                (W̄)˙ += (ȳ)˙ col(x)ᵀ + ȳ col(ẋ)ᵀ;   (b̄)˙ += Σ_N (ȳ)˙
 *
 * Examples are processed in blocks of up to conv_block_rows of them, side
 * by side: col [K, nr N] holds the block's im2col matrices, and each pass
 * is one GEMM per block and term, with the activations moved between their
 * [rows, OC, N] layout and the GEMM's [OC, nr N] by rows of N elements.
 * Images of MGR_CONV_ONE_EXAMPLE_N positions or more go one example per
 * block, where the two layouts agree and nothing is copied; smaller ones
 * share a block, which pays the per-call cost once for several small
 * images.  A block is bounded
 * (MGR_CONV_BLOCK_ELEMS) because larger products than a cache holds ran
 * slower, and so that the scratch (a->scratch; see conv2d_scratch) does
 * not grow with the batch.  Each output element is the same dot product
 * as one example at a time; the parameter gradients sum over the block's
 * columns in one product, a different order than example by example.
 * Rules: docs/derivations.md, "Conv2d".
 *
 * Like every ops_<family>.c, this file is compiled three times: without
 * MGRAD_REAL_BITS it gives the op's definition (op.h), with 32 and 64 its
 * passes.
 */
#include <stddef.h>

/* Elements of scratch a block may use: 1 MiB in f32, about a core's L2.
   Measured on the small CNN and the ResNet-9-style net of
   bench/torch_compare.py (user time, 1 thread): blocks of 2^16, 2^18 and
   2^20 elements within 5 % of each other, the largest the slowest.
   Larger products leave OpenBLAS's in-cache small-matrix kernels (8 x 72 x
   784: 110 GFLOP/s; 8 x 72 x 11760, 15 examples: 45-65 GFLOP/s) and gain
   nothing from its second thread on 2 cores (docs/performance.md). */
#define MGR_CONV_BLOCK_ELEMS ((size_t)1 << 18)

/* Images of at least this many output positions are one example per
   block: then the GEMM layout [OC, N] is the activation's own, the GEMMs
   read and write the activations in place (no copies between layouts),
   and OpenBLAS's small-matrix kernels fit them.  Measured with
   bench/bench_rop (1 thread, f32, 64 rows): the small CNN's reverse step
   48 -> 45 ms against blocks of MGR_CONV_BLOCK_ELEMS, the ResNet-9-style
   net's 306 -> 301 ms with its 7 x 7 and 3 x 3 layers still in blocks (all
   its layers one example at a time: 326 ms). */
#define MGR_CONV_ONE_EXAMPLE_N 128

/* Groups of blocks that the context's threads share out (the passes'
   comment): 6 divides evenly among 1, 2 or 3 threads. */
#define MGR_CONV_GROUPS 6

/* Examples per block: one for images of MGR_CONV_ONE_EXAMPLE_N positions
   or more, else the most whose scratch, (K + 2 OC) N elements each
   (conv_scratch), fits in MGR_CONV_BLOCK_ELEMS; at least one (then the
   scratch is one example's, as large as the layer needs).  A function
   of the shapes only, so a chunk's blocks never depend on anything else. */
static size_t conv_block_rows(size_t K, size_t OC, size_t N)
{
    if (N >= MGR_CONV_ONE_EXAMPLE_N) return 1;
    size_t per = (K + 2 * OC) * N;
    size_t nr = per > 0 ? MGR_CONV_BLOCK_ELEMS / per : 1;
    return nr > 0 ? nr : 1;
}

#ifndef MGRAD_REAL_BITS
/* ---- the definition (untyped, compiled once) ----------------------------- */

#include "graph/graph.h"

/* The caller sets shape[0] = out channels, kernel, stride, padding, init. */
static mgrad_status conv2d_infer(mgrad_context *ctx, const mgr_graph *g, mgr_node *node,
                                 int64_t *param_count)
{
    const mgr_node *x = &g->nodes[node->in0];
    int64_t oc = node->shape[0], oh = 0, ow = 0;
    MGRAD_RETURN_IF(ctx, oc < 1 || oc > INT32_MAX, MGRAD_ERR_INVALID,
                    "conv2d: out_channels must be 1 to %d (got %lld)", (int)INT32_MAX,
                    (long long)oc);
    MGRAD_RETURN_IF(ctx, !mgr_init_known(node->init), MGRAD_ERR_INVALID,
                    "conv2d: unknown initialiser %d (use an mgrad_init value)",
                    (int)node->init);
    MGRAD_FORWARD(mgr_infer_window(ctx, g, node, &oh, &ow));
    /* W [oc, ic, k, k] plus b [oc]; every factor is bounded by sizes that
       already fit, so only the products need checks. */
    int64_t kk = (int64_t)node->kernel * node->kernel;
    MGRAD_RETURN_IF(ctx, x->shape[0] > INT64_MAX / kk, MGRAD_ERR_INVALID,
                    "conv2d: kernel %d is too large", (int)node->kernel);
    int64_t fan_in = x->shape[0] * kk;
    MGRAD_RETURN_IF(ctx, fan_in > INT64_MAX / (oc + 1) || oh * ow > INT64_MAX / oc,
                    MGRAD_ERR_INVALID,
                    "conv2d: %lld output channels is too many for this input",
                    (long long)oc);
    int64_t count = oc * fan_in + oc;
    MGRAD_FORWARD(mgr_check_param_total(ctx, g, node, count));
    mgr_node_set_shape3(node, oc, oh, ow);
    *param_count = count;
    return MGRAD_OK;
}

/* A block's scratch (conv_scratch): col [K, nr N], two [OC, nr N] and
   [2 OC, K], K = in_c k k, N = oh ow, nr = conv_block_rows. */
static size_t conv2d_scratch(const mgr_graph *g, int32_t k)
{
    const mgr_node *nd = &g->nodes[k];
    size_t K = (size_t)g->nodes[nd->in0].shape[0];
    size_t kk = (size_t)nd->kernel * (size_t)nd->kernel;
    size_t N = (size_t)nd->shape[1] * (size_t)nd->shape[2];
    size_t OC = (size_t)nd->shape[0];
    if (kk != 0 && K > SIZE_MAX / kk) return SIZE_MAX;
    K *= kk;
    if (OC > SIZE_MAX / 2 - K) return SIZE_MAX;
    size_t rowsz = K + 2 * OC;
    if (N != 0 && rowsz > SIZE_MAX / N) return SIZE_MAX;
    size_t nr = conv_block_rows(K, OC, N);
    if (rowsz * N != 0 && nr > SIZE_MAX / (rowsz * N)) return SIZE_MAX;
    size_t blocks = nr * rowsz * N;
    if (OC > SIZE_MAX / 2 / (K + 1) || blocks > SIZE_MAX - 2 * OC * K) return SIZE_MAX;
    return blocks + 2 * OC * K;
}

/* The weight-gradient partials of the groups: MGR_CONV_GROUPS [OC, K]. */
static size_t conv2d_shared_scratch(const mgr_graph *g, int32_t k)
{
    const mgr_node *nd = &g->nodes[k];
    size_t K = (size_t)g->nodes[nd->in0].shape[0];
    size_t kk = (size_t)nd->kernel * (size_t)nd->kernel;
    size_t OC = (size_t)nd->shape[0];
    if (kk != 0 && K > SIZE_MAX / kk) return SIZE_MAX;
    K *= kk;
    if (K != 0 && OC > SIZE_MAX / MGR_CONV_GROUPS / K) return SIZE_MAX;
    return MGR_CONV_GROUPS * OC * K;
}

/* W as the matrix [out_c, in_c k k]: fan_in = in_c k k, fan_out = out_c k k
   (as torch). */
static mgrad_status conv2d_init(mgrad_context *ctx, const mgr_graph *g, int32_t k,
                                uint64_t seed, double *theta)
{
    const mgr_node *nd = &g->nodes[k];
    int64_t kk = (int64_t)nd->kernel * nd->kernel;
    int64_t rows = nd->shape[0], cols = g->nodes[nd->in0].shape[0] * kk;
    return mgr_init_weights(ctx, nd->init, k, rows, cols, rows * kk, seed,
                            theta + nd->param_offset);
}

const mgr_op_def mgr_op_conv2d = {
    .name = "conv2d",
    .inputs = 1,
    .flags = MGR_OP_FLAG_MEMOISED,
    .infer = conv2d_infer,
    .scratch = conv2d_scratch,
    .shared_scratch = conv2d_shared_scratch,
    /* Bilinear in (θ, x) like the dense layer: its tangent_backward reads ȳ
       only for (x̄)˙ (Uᵀ ȳ) and, with ẋ ≠ 0, for (W̄)˙ (ȳ col(ẋ)ᵀ); (b̄)˙
       reads (ȳ)˙ alone (conv2d_tangent_backward, need_yb). */
    .ybar_reads = MGR_YBAR_FOR_XBARDOT_OR_XDOT,
    .init = conv2d_init,
    MGR_OP_PASSES(conv2d),
};

#else
/* ---- the passes (typed, compiled for f32 and f64) ------------------------ */

#include <assert.h>
#include <string.h>

#include "graph/ops.h"

typedef struct conv_dims {
    size_t C, H, W;       /* input image */
    size_t OC, OH, OW;    /* output image */
    size_t k, s, p;       /* kernel side, stride, padding */
    size_t K, N;          /* C k k, OH OW */
    size_t in, out;       /* per-example sizes C H W, OC N */
    size_t block;         /* examples per block (conv_block_rows) */
} conv_dims;

static conv_dims dims_of(const R(mgr_op_args) *a)
{
    const mgr_node *nd = a->node, *x = a->xnode;
    conv_dims d;
    d.C = (size_t)x->shape[0];
    d.H = (size_t)x->shape[1];
    d.W = (size_t)x->shape[2];
    d.OC = (size_t)nd->shape[0];
    d.OH = (size_t)nd->shape[1];
    d.OW = (size_t)nd->shape[2];
    d.k = (size_t)nd->kernel;
    d.s = (size_t)nd->stride;
    d.p = (size_t)nd->padding;
    d.K = d.C * d.k * d.k;
    d.N = d.OH * d.OW;
    d.in = a->in_size;
    d.out = (size_t)nd->size;
    d.block = conv_block_rows(d.K, d.OC, d.N);
    assert(d.in == d.C * d.H * d.W && d.out == d.OC * d.N);
    return d;
}

/* The output columns ow whose input column w = ow s + j − p lies inside the
   image: [*lo, *hi).  Outside them im2col reads padding. */
static void valid_cols(const conv_dims *d, size_t j, size_t *lo, size_t *hi)
{
    size_t a = d->p > j ? (d->p - j + d->s - 1) / d->s : 0;  /* ceil((p − j)/s) */
    size_t b = d->W + d->p > j ? (d->W + d->p - j - 1) / d->s + 1 : 0;
    if (b > d->OW) b = d->OW;
    if (a > b) a = b;
    *lo = a;
    *hi = b;
}

/* The output rows oh whose input row h = oh s + i − p lies inside the
   image: [*lo, *hi). */
static void valid_rows(const conv_dims *d, size_t i, size_t *lo, size_t *hi)
{
    size_t a = d->p > i ? (d->p - i + d->s - 1) / d->s : 0;  /* ceil((p − i)/s) */
    size_t b = d->H + d->p > i ? (d->H + d->p - i - 1) / d->s + 1 : 0;
    if (b > d->OH) b = d->OH;
    if (a > b) a = b;
    *lo = a;
    *hi = b;
}

/* dst = src, n elements: rows here are short (an image row), where a loop
   the compiler vectorises beats a call to memcpy. */
static inline void copy_row(size_t n, const real *restrict src, real *restrict dst)
{
    for (size_t t = 0; t < n; t++) dst[t] = src[t];
}

/* Zero the columns [c0, c1) of the rows [r0, r1) of a matrix with row
   length ld: the padding columns of im2col rows (at most p of them on each
   side).  Column by column, so that the compiler does not turn the short
   runs of a row-by-row loop into one memset call per row (which cost more
   than the copies around them). */
static inline void zero_cols(real *m, size_t ld, size_t r0, size_t r1, size_t c0, size_t c1)
{
    for (size_t c = c0; c < c1; c++)
        for (size_t r = r0; r < r1; r++) m[r * ld + c] = 0;
}

/* Row (c, i, j) of im2col for stride 1 and OW = W ("same" padding): entry
   n = oh W + ow is x[c, oh + i − p, ow + j − p], i.e. the image shifted by
   the constant (i − p) W + j − p.  So the rows oh in [oh_lo, oh_hi) whose
   input row exists are one contiguous copy, after which the columns outside
   [lo, hi) (which the shift filled from the neighbouring image row) and
   the padding rows are zeroed: one long copy instead of OH short ones. */
static void im2col_row_same(const conv_dims *d, const real *xc, size_t i, size_t j,
                            size_t lo, size_t hi, real *row)
{
    size_t W = d->W;
    size_t oh_lo, oh_hi;
    valid_rows(d, i, &oh_lo, &oh_hi);
    if (oh_lo >= oh_hi) {
        for (size_t n = 0; n < d->N; n++) row[n] = 0;
        return;
    }
    for (size_t n = 0; n < oh_lo * W; n++) row[n] = 0;
    for (size_t n = oh_hi * W; n < d->N; n++) row[n] = 0;
    /* entries oh_lo W + lo .. (oh_hi − 1) W + hi, read from inside the image */
    size_t first = oh_lo * W + lo, last = (oh_hi - 1) * W + hi;
    if (last > first) {
        const real *src = xc + (oh_lo + i - d->p) * W + lo + j - d->p;
        memcpy(row + first, src, (last - first) * sizeof(real));
    }
    zero_cols(row, W, oh_lo, oh_hi, 0, lo);
    zero_cols(row, W, oh_lo, oh_hi, hi, W);
}

/* col [K, N] = im2col(x [C, H, W]); row q of col starts at col + q ld */
static void im2col(const conv_dims *d, const real *x, real *col, size_t ld)
{
    for (size_t c = 0; c < d->C; c++) {
        for (size_t i = 0; i < d->k; i++) {
            for (size_t j = 0; j < d->k; j++) {
                real *row = col + ((c * d->k + i) * d->k + j) * ld;
                size_t lo, hi;
                valid_cols(d, j, &lo, &hi);
                if (d->s == 1 && d->OW == d->W) {
                    im2col_row_same(d, x + c * d->H * d->W, i, j, lo, hi, row);
                    continue;
                }
                /* input row h = oh s + i − p lies in [0, H) for oh in [oh_lo, oh_hi);
                   the other rows read padding */
                size_t oh_lo, oh_hi;
                valid_rows(d, i, &oh_lo, &oh_hi);
                for (size_t n = 0; n < oh_lo * d->OW; n++) row[n] = 0;
                for (size_t n = oh_hi * d->OW; n < d->N; n++) row[n] = 0;
                if (hi > lo) {
                    for (size_t oh = oh_lo; oh < oh_hi; oh++) {
                        /* x[c, h, ow s + j − p] for ow in [lo, hi); ow s + j >= p there */
                        const real *xr = x + (c * d->H + oh * d->s + i - d->p) * d->W +
                                         (lo * d->s + j - d->p);
                        real *out = row + oh * d->OW + lo;
                        size_t n = hi - lo;
                        if (d->s == 1) {
                            copy_row(n, xr, out);
                        } else if (d->s == 2) { /* a constant stride the compiler vectorises */
                            for (size_t t = 0; t < n; t++) out[t] = xr[2 * t];
                        } else {
                            for (size_t t = 0; t < n; t++) out[t] = xr[t * d->s];
                        }
                    }
                }
                zero_cols(row, d->OW, oh_lo, oh_hi, 0, lo);
                zero_cols(row, d->OW, oh_lo, oh_hi, hi > lo ? hi : lo, d->OW);
            }
        }
    }
}

/* The adjoint of im2col_row_same: xc += row shifted back.  The entries of
   the span that im2col filled from the neighbouring image row (columns
   outside [lo, hi)) are set to zero first, so that one contiguous loop
   adds every entry and those add nothing (x + 0 = x).  row is scratch that
   the caller does not read again. */
static void col2im_row_same(const conv_dims *d, real *row, size_t i, size_t j, size_t lo,
                            size_t hi, real *xc)
{
    size_t W = d->W;
    size_t oh_lo, oh_hi;
    valid_rows(d, i, &oh_lo, &oh_hi);
    if (oh_lo >= oh_hi) return;
    size_t first = oh_lo * W + lo, last = (oh_hi - 1) * W + hi;
    if (last <= first) return;
    zero_cols(row, W, oh_lo, oh_hi - 1, hi, W);
    zero_cols(row, W, oh_lo + 1, oh_hi, 0, lo);
    real *restrict xo = xc + (oh_lo + i - d->p) * W + lo + j - d->p;
    const real *restrict io = row + first;
    for (size_t t = 0; t < last - first; t++) xo[t] += io[t];
}

/* x [C, H, W] += col2im(col [K, N]), row q of col at col + q ld: the
   adjoint of im2col.  Stride-1 "same" convolutions overwrite parts of col
   (col2im_row_same). */
static void col2im_add(const conv_dims *d, real *col, size_t ld, real *x)
{
    for (size_t c = 0; c < d->C; c++) {
        for (size_t i = 0; i < d->k; i++) {
            for (size_t j = 0; j < d->k; j++) {
                real *row = col + ((c * d->k + i) * d->k + j) * ld;
                size_t lo, hi;
                valid_cols(d, j, &lo, &hi);
                if (d->s == 1 && d->OW == d->W) {
                    col2im_row_same(d, row, i, j, lo, hi, x + c * d->H * d->W);
                    continue;
                }
                size_t oh_lo, oh_hi;
                valid_rows(d, i, &oh_lo, &oh_hi);
                if (hi <= lo) continue;
                for (size_t oh = oh_lo; oh < oh_hi; oh++) {
                    const real *restrict io = row + oh * d->OW + lo;
                    real *restrict xo = x + (c * d->H + oh * d->s + i - d->p) * d->W +
                                        (lo * d->s + j - d->p);
                    size_t n = hi - lo;
                    if (d->s == 1) { /* contiguous: a loop the compiler vectorises */
                        for (size_t t = 0; t < n; t++) xo[t] += io[t];
                    } else if (d->s == 2) {
                        for (size_t t = 0; t < n; t++) xo[2 * t] += io[t];
                    } else {
                        for (size_t t = 0; t < n; t++) xo[t * d->s] += io[t];
                    }
                }
            }
        }
    }
}

/* The examples [r0, r0 + nr) of a chunk side by side, as the GEMMs see them:
   a matrix [rows_of_it, nr N] whose column block b (N columns) belongs to
   example r0 + b.  The activations are stored [rows, OC, N] (example-major),
   so values move between the two layouts by whole rows of N elements. */

/* col [K, nr N] = im2col of the nr examples of x */
static void im2col_block(const conv_dims *d, size_t nr, const real *x, real *col)
{
    /* example b's [K, N] is the column block at b N, row stride nr N */
    for (size_t b = 0; b < nr; b++) im2col(d, x + b * d->in, col + b * d->N, nr * d->N);
}

/* x += col2im(col [K, nr N]) for the nr examples of x (col is scratch,
   partly overwritten: col2im_add) */
static void col2im_block(const conv_dims *d, size_t nr, real *col, real *x)
{
    for (size_t b = 0; b < nr; b++) col2im_add(d, col + b * d->N, nr * d->N, x + b * d->in);
}

/* t [OC, nr N] = v [nr, OC, N] (activation layout to GEMM layout) */
static void to_gemm(const conv_dims *d, size_t nr, const real *v, real *t)
{
    for (size_t b = 0; b < nr; b++)
        for (size_t o = 0; o < d->OC; o++)
            copy_row(d->N, v + b * d->out + o * d->N, t + o * nr * d->N + b * d->N);
}

/* v [nr, OC, N] = t [OC, nr N] (GEMM layout to activation layout) */
static void from_gemm(const conv_dims *d, size_t nr, const real *t, real *v)
{
    for (size_t b = 0; b < nr; b++)
        for (size_t o = 0; o < d->OC; o++)
            copy_row(d->N, t + o * nr * d->N + b * d->N, v + b * d->out + o * d->N);
}

/* A block's matrix [OC, nr N] in the GEMM layout: for one example
   (nr = 1) the two layouts agree and the activation itself is used (no
   copy); else the scratch t, filled from v. */
static const real *gemm_in(const conv_dims *d, size_t nr, const real *v, real *t)
{
    if (nr == 1) return v;
    to_gemm(d, nr, v, t);
    return t;
}

static real *gemm_out(size_t nr, real *v, real *t)
{
    return nr == 1 ? v : t;
}

/* v = t after a GEMM into gemm_out(nr, v, t) */
static void gemm_done(const conv_dims *d, size_t nr, const real *t, real *v)
{
    if (nr != 1) from_gemm(d, nr, t, v);
}

/* t [OC, M] = bias broadcast over the M columns */
static void fill_bias(const conv_dims *d, size_t M, const real *bias, real *t)
{
    for (size_t o = 0; o < d->OC; o++) {
        real v = bias[o];
        real *to = t + o * M;
        for (size_t n = 0; n < M; n++) to[n] = v;
    }
}

/* out[o] += Σ_N y[o, :] over the rows of y [rows, OC, N] */
static void add_channel_sums(const conv_dims *d, size_t rows, const real *y, real *out)
{
    for (size_t r = 0; r < rows; r++)
        for (size_t o = 0; o < d->OC; o++)
            out[o] += (real)R(mgr_sum)(d->N, y + r * d->out + o * d->N);
}

/* The scratch of one block of nr examples: col [K, nr N] and two matrices
   [OC, nr N] in the GEMM layout, t1 right after t0 (so that together they
   are one [2 OC, nr N]), and wu [2 OC, K] (conv2d_scratch sizes them for
   block_rows), in the area of the thread that runs the block. */
typedef struct conv_scratch {
    real *col, *t0, *t1, *wu;
} conv_scratch;

static conv_scratch scratch_of(const R(mgr_op_args) *a, const conv_dims *d, size_t nr,
                               int worker)
{
    conv_scratch s;
    s.col = a->scratch + (size_t)worker * a->scratch_stride;
    s.t0 = s.col + d->K * nr * d->N;
    s.t1 = s.t0 + d->OC * nr * d->N;
    s.wu = s.col + d->block * (d->K + 2 * d->OC) * d->N;
    return s;
}

/* The passes run on the context's threads in MGR_CONV_GROUPS groups of
   consecutive blocks (fewer when there are fewer blocks), a grid fixed by
   the shapes and the rows alone.  A block writes its own rows of y, ẏ, x̄,
   (x̄)˙; the weight gradients W̄, (W̄)˙ of a group's blocks accumulate in
   the group's partial (shared scratch, zeroed first), and the partials
   are added to the caller's in group order after the pass: the same bits
   whatever the thread count. */
typedef struct conv_job {
    const R(mgr_op_args) *a;
    conv_dims d;
    size_t blocks, groups;
    real *part; /* [groups][OC K] weight-gradient partials, or NULL */
} conv_job;

static conv_job job_of(const R(mgr_op_args) *a, int want_part)
{
    conv_job j;
    j.a = a;
    j.d = dims_of(a);
    /* With fewer blocks than groups, smaller blocks: ceil(rows / groups)
       examples each, so that every group has work (still a function of
       the shapes and the rows alone). */
    size_t even = (a->rows + MGR_CONV_GROUPS - 1) / MGR_CONV_GROUPS;
    if (even > 0 && even < j.d.block) j.d.block = even;
    j.blocks = (a->rows + j.d.block - 1) / j.d.block;
    j.groups = j.blocks < MGR_CONV_GROUPS ? j.blocks : MGR_CONV_GROUPS;
    j.part = want_part ? a->shared : NULL;
    return j;
}

/* Blocks [*b0, *b1) of group g. */
static void group_blocks(const conv_job *j, size_t g, size_t *b0, size_t *b1)
{
    *b0 = j->blocks * g / j->groups;
    *b1 = j->blocks * (g + 1) / j->groups;
}

static void run_conv_groups(const conv_job *j, double work_per_elem, mgr_pool_worker_fn fn)
{
    double work = work_per_elem * (double)(j->a->rows * (j->d.K + j->d.OC) * j->d.N);
    mgr_pool_for_worker(j->a->pool, j->groups, j->groups > 0 ? work / (double)j->groups : 0,
                        fn, (void *)j);
}

/* out[OC K] += the partials, in group order */
static void add_parts(const conv_job *j, real *out)
{
    if (j->part == NULL) return;
    size_t n = j->d.OC * j->d.K;
    for (size_t g = 0; g < j->groups; g++) R(mgr_axpy)(n, 1, j->part + g * n, out);
}

/* y = W col(x) + b, a block of examples per GEMM */
static void forward_group(void *arg, size_t g, int worker)
{
    const conv_job *j = arg;
    const R(mgr_op_args) *a = j->a;
    const conv_dims *d = &j->d;
    const real *W = a->p, *b = W + d->OC * d->K;
    size_t b0, b1;
    group_blocks(j, g, &b0, &b1);
    for (size_t blk = b0; blk < b1; blk++) {
        size_t r0 = blk * d->block;
        size_t nr = a->rows - r0 < d->block ? a->rows - r0 : d->block, M = nr * d->N;
        conv_scratch s = scratch_of(a, d, nr, worker);
        real *y = a->y + r0 * d->out, *t = gemm_out(nr, y, s.t0);
        im2col_block(d, nr, a->x + r0 * d->in, s.col);
        fill_bias(d, M, b, t);
        /* t[OC,M] += W[OC,K] · col[K,M] */
        R(mgr_gemm)(0, 0, d->OC, M, d->K, 1, W, d->K, s.col, M, 1, t, M);
        gemm_done(d, nr, t, y);
    }
}

static void conv2d_forward(const R(mgr_op_args) *a)
{
    conv_job j = job_of(a, 0);
    run_conv_groups(&j, 3, forward_group);
}

/* x̄ += col2im(Wᵀ ȳ);  W̄ += ȳ col(x)ᵀ (into the group's partial) */
static void backward_group(void *arg, size_t g, int worker)
{
    const conv_job *j = arg;
    const R(mgr_op_args) *a = j->a;
    const conv_dims *d = &j->d;
    const real *W = a->p;
    real *part = j->part != NULL ? j->part + g * d->OC * d->K : NULL;
    if (part != NULL) R(mgr_zero)(d->OC * d->K, part);
    size_t b0, b1;
    group_blocks(j, g, &b0, &b1);
    for (size_t blk = b0; blk < b1; blk++) {
        size_t r0 = blk * d->block;
        size_t nr = a->rows - r0 < d->block ? a->rows - r0 : d->block, M = nr * d->N;
        conv_scratch s = scratch_of(a, d, nr, worker);
        const real *yb = gemm_in(d, nr, a->ybar + r0 * d->out, s.t0);
        if (part != NULL) {
            im2col_block(d, nr, a->x + r0 * d->in, s.col);
            /* part[OC,K] += ȳ[OC,M] · colᵀ[M,K] */
            R(mgr_gemm)(0, 1, d->OC, d->K, M, 1, yb, M, s.col, M, 1, part, d->K);
        }
        if (a->xbar != NULL) {
            /* col[K,M] = Wᵀ[K,OC] · ȳ[OC,M] */
            R(mgr_gemm)(1, 0, d->K, M, d->OC, 1, W, d->K, yb, M, 0, s.col, M);
            col2im_block(d, nr, s.col, a->xbar + r0 * d->in);
        }
    }
}

/* x̄ += col2im(Wᵀ ȳ);  W̄ += ȳ col(x)ᵀ;  b̄ += Σ_N ȳ */
static void conv2d_backward(const R(mgr_op_args) *a)
{
    if (a->pbar == NULL && a->xbar == NULL) return;
    conv_job j = job_of(a, a->pbar != NULL);
    run_conv_groups(&j, 6, backward_group);
    if (a->pbar != NULL) {
        add_parts(&j, a->pbar);
        add_channel_sums(&j.d, a->rows, a->ybar, a->pbar + j.d.OC * j.d.K);
    }
}

/* ẏ = W col(ẋ) + U col(x) + u_b */
static void tangent_group(void *arg, size_t g, int worker)
{
    const conv_job *j = arg;
    const R(mgr_op_args) *a = j->a;
    const conv_dims *d = &j->d;
    const real *W = a->p, *U = a->u;
    size_t b0, b1;
    group_blocks(j, g, &b0, &b1);
    for (size_t blk = b0; blk < b1; blk++) {
        size_t r0 = blk * d->block;
        size_t nr = a->rows - r0 < d->block ? a->rows - r0 : d->block, M = nr * d->N;
        conv_scratch s = scratch_of(a, d, nr, worker);
        real *yd = a->ydot + r0 * d->out, *t = gemm_out(nr, yd, s.t0);
        /* t = u_b, then += U col(x), then += W col(ẋ): the order of the
           per-example passes this replaced */
        if (U != NULL) {
            im2col_block(d, nr, a->x + r0 * d->in, s.col);
            fill_bias(d, M, U + d->OC * d->K, t);
            R(mgr_gemm)(0, 0, d->OC, M, d->K, 1, U, d->K, s.col, M, 1, t, M);
        } else {
            R(mgr_zero)(d->OC * M, t);
        }
        if (a->xdot != NULL) {
            im2col_block(d, nr, a->xdot + r0 * d->in, s.col);
            R(mgr_gemm)(0, 0, d->OC, M, d->K, 1, W, d->K, s.col, M, 1, t, M);
        }
        gemm_done(d, nr, t, yd);
    }
}

static void conv2d_tangent(const R(mgr_op_args) *a)
{
    if (a->u == NULL && a->xdot == NULL) {
        R(mgr_zero_pool)(a->pool, a->rows * (size_t)a->node->size, a->ydot);
        return;
    }
    conv_job j = job_of(a, 0);
    run_conv_groups(&j, 6, tangent_group);
}

/* (x̄)˙ += col2im(Wᵀ (ȳ)˙ + Uᵀ ȳ);  (W̄)˙ += (ȳ)˙ col(x)ᵀ + ȳ col(ẋ)ᵀ into the
   group's partial */
static void tangent_backward_group(void *arg, size_t g, int worker)
{
    const conv_job *j = arg;
    const R(mgr_op_args) *a = j->a;
    const conv_dims *d = &j->d;
    const real *W = a->p, *U = a->u;
    real *part = j->part != NULL ? j->part + g * d->OC * d->K : NULL;
    if (part != NULL) R(mgr_zero)(d->OC * d->K, part);
    /* ȳ in the GEMM layout is read by Uᵀ ȳ and by ȳ col(ẋ)ᵀ only */
    int need_yb = (a->xbardot != NULL && U != NULL) || (part != NULL && a->xdot != NULL);
    size_t b0, b1;
    group_blocks(j, g, &b0, &b1);
    for (size_t blk = b0; blk < b1; blk++) {
        size_t r0 = blk * d->block;
        size_t nr = a->rows - r0 < d->block ? a->rows - r0 : d->block, M = nr * d->N;
        conv_scratch s = scratch_of(a, d, nr, worker);
        const real *ybd, *yb = NULL;
        if (a->xbardot != NULL && U != NULL) {
            /* col[K,M] = [W; U]ᵀ [(ȳ)˙; ȳ] = Wᵀ (ȳ)˙ + Uᵀ ȳ: one product of
               inner size 2 OC, the two matrices stacked in t0, t1 and wu
               (a product of inner size OC is far from the BLAS's speed, and
               a second one would read and write col again) */
            to_gemm(d, nr, a->ybardot + r0 * d->out, s.t0);
            to_gemm(d, nr, a->ybar + r0 * d->out, s.t1);
            ybd = s.t0;
            yb = s.t1;
            if (blk == b0) {
                R(mgr_copy)(d->OC * d->K, W, s.wu);
                R(mgr_copy)(d->OC * d->K, U, s.wu + d->OC * d->K);
            }
            R(mgr_gemm)(1, 0, d->K, M, 2 * d->OC, 1, s.wu, d->K, s.t0, M, 0, s.col, M);
            col2im_block(d, nr, s.col, a->xbardot + r0 * d->in);
        } else {
            ybd = gemm_in(d, nr, a->ybardot + r0 * d->out, s.t0);
            if (need_yb) yb = gemm_in(d, nr, a->ybar + r0 * d->out, s.t1);
            if (a->xbardot != NULL) {
                /* col[K,M] = Wᵀ (ȳ)˙ */
                R(mgr_gemm)(1, 0, d->K, M, d->OC, 1, W, d->K, ybd, M, 0, s.col, M);
                col2im_block(d, nr, s.col, a->xbardot + r0 * d->in);
            }
        }
        if (part != NULL) {
            im2col_block(d, nr, a->x + r0 * d->in, s.col);
            R(mgr_gemm)(0, 1, d->OC, d->K, M, 1, ybd, M, s.col, M, 1, part, d->K);
            if (a->xdot != NULL) {
                im2col_block(d, nr, a->xdot + r0 * d->in, s.col);
                R(mgr_gemm)(0, 1, d->OC, d->K, M, 1, yb, M, s.col, M, 1, part, d->K);
            }
        }
    }
}

/* (x̄)˙ += col2im(Wᵀ (ȳ)˙ + Uᵀ ȳ);  (W̄)˙ += (ȳ)˙ col(x)ᵀ + ȳ col(ẋ)ᵀ;
   (b̄)˙ += Σ_N (ȳ)˙ */
static void conv2d_tangent_backward(const R(mgr_op_args) *a)
{
    if (a->xbardot == NULL && a->pbardot == NULL) return;
    conv_job j = job_of(a, a->pbardot != NULL);
    run_conv_groups(&j, 9, tangent_backward_group);
    if (a->pbardot != NULL) {
        add_parts(&j, a->pbardot);
        add_channel_sums(&j.d, a->rows, a->ybardot, a->pbardot + j.d.OC * j.d.K);
    }
}

MGR_OP_PASS_TABLE(conv2d, conv2d);

#endif
