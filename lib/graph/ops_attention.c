/*
 * ops_attention.c - the core of causal multi-head self-attention: from the
 * projected queries, keys and values to the heads' outputs.  Four passes.
 *
 *     x [rows, L, 3d] = [Q | K | V] (the per-position dense layer before it),
 *     H heads of width e = d / H; head h reads columns h e .. of each block
 *     S = c Q_h K_hᵀ  (c = 1/√e),  P = softmax over j <= i of S_ij (P_ij = 0
 *     for j > i: the causal mask),  P' = D ⊙ P (attention dropout: D_ij = μ_ij
 *     / (1 − p), μ from the counter RNG, or D = 1),  y_h = P' V_h
 *     y [rows, L, d]: the heads side by side (the output projection is the
 *     per-position dense layer after it)
 *
 * With Ō = ȳ_h, G = Ō V_hᵀ, P̄ = D ⊙ G, r_i = Σ_j P̄_ij P_ij, S̄ = P ⊙ (P̄ − r):
 *     backward:  V̄ += P'ᵀ Ō;  Q̄ += c S̄ K;  K̄ += c S̄ᵀ Q
 *     tangent:   Ṡ = c (Q̇ Kᵀ + Q K̇ᵀ);  Ṗ = P ⊙ (Ṡ − Σ_j P_ij Ṡ_ij);
 *                ẏ = D ⊙ Ṗ V + P' V̇
 *     tan-back:  Ġ = (Ō)˙ Vᵀ + Ō V̇ᵀ;  (P̄)˙ = D ⊙ Ġ;
 *                ṙ_i = Σ_j ((P̄)˙_ij P_ij + P̄_ij Ṗ_ij);
 *                (S̄)˙ = Ṗ ⊙ (P̄ − r) + P ⊙ ((P̄)˙ − ṙ);
 *                (V̄)˙ += (D ⊙ Ṗ)ᵀ Ō + P'ᵀ (Ō)˙;
 *                (Q̄)˙ += c ((S̄)˙ K + S̄ K̇);  (K̄)˙ += c ((S̄)˙ᵀ Q + S̄ᵀ Q̇)
 * With ẋ = 0 (NULL) the tangent is zero and tan-back is the backward of (ȳ)˙.
 *
 * Every product is a GEMM on the strided blocks of x (no copies); P is
 * recomputed from x in every pass (the op keeps no state between passes, so
 * the forward memo and recomputed steps see the same values); row sums and
 * the softmax accumulate in double.  The dropout mask is a pure function of
 * (seed, step, node, row, head, i, j), keyed like the dropout op's
 * (ops_dropout.c), so a recomputed step replays it bit for bit; evaluation
 * passes (training = 0) and p = 0 use D = 1.
 * Derivation: docs/derivations.md, "Causal self-attention".
 *
 * Like every ops_<family>.c, this file is compiled three times: without
 * MGRAD_REAL_BITS it gives the op's definition (op.h), with 32 and 64 its
 * passes.
 */
#ifndef MGRAD_REAL_BITS
/* ---- the definition (untyped, compiled once) ----------------------------- */

#include "graph/graph.h"

/* The caller sets heads and rate. */
static mgrad_status attention_infer(mgrad_context *ctx, const mgr_graph *g, mgr_node *node,
                                    int64_t *param_count)
{
    const mgr_node *x = &g->nodes[node->in0];
    MGRAD_RETURN_IF(ctx, x->positions < 1 || x->ndim != 2 || x->shape[1] % 3 != 0,
                    MGRAD_ERR_SHAPE,
                    "attention: the input (node %d) must be a sequence [positions, 3 "
                    "width] of queries, keys and values", (int)node->in0);
    int64_t L = x->positions, d = x->shape[1] / 3;
    MGRAD_RETURN_IF(ctx, node->heads < 1 || d % node->heads != 0, MGRAD_ERR_INVALID,
                    "attention: heads must divide the width %lld (got %d)", (long long)d,
                    (int)node->heads);
    MGRAD_RETURN_IF(ctx, !(node->rate >= 0 && node->rate < 1), MGRAD_ERR_INVALID,
                    "attention: dropout must be in [0, 1) (got %g)", node->rate);
    /* Scratch of 8 L² (one head of one row at a time) must be countable. */
    MGRAD_RETURN_IF(ctx, L > 1000000, MGRAD_ERR_INVALID,
                    "attention: %lld positions is too many (at most 1000000)",
                    (long long)L);
    node->ndim = 2;
    node->shape[0] = L;
    node->shape[1] = d;
    node->shape[2] = 0;
    node->size = L * d;
    node->positions = L;
    *param_count = 0;
    return MGRAD_OK;
}

/* P, P', Ṗ, D ⊙ Ṗ, P̄, (P̄)˙, S̄, (S̄)˙: eight L x L matrices. */
static size_t attention_scratch(const mgr_graph *g, int32_t k)
{
    size_t L = (size_t)g->nodes[k].positions;
    return 8 * L * L;
}

const mgr_op_def mgr_op_attention = {
    .name = "attention",
    .inputs = 1,
    .infer = attention_infer,
    .scratch = attention_scratch,
    /* ȳ enters tan-back only through Ō V̇ᵀ and (D ⊙ Ṗ)ᵀ Ō, which feed (x̄)˙
       (the op has no parameters). */
    .ybar_reads = MGR_YBAR_FOR_XBARDOT,
    MGR_OP_PASSES(attention),
};

#else
/* ---- the passes (typed, compiled for f32 and f64) ------------------------ */

#include <math.h>

#include "base/rng.h"
#include "graph/ops.h"

/* The geometry of one (row, head) and its scratch. */
typedef struct head {
    size_t L, d, e, ld;         /* positions, width, head width, 3 d */
    real c;                     /* 1/√e */
    const real *Q, *K, *V;      /* [L, e] blocks of x, row stride ld */
    real *P, *Pd, *T, *Td, *Pb, *Pbd, *Sb, *Sbd; /* [L, L] scratch */
    int dropout;                /* D ≠ 1 */
    uint64_t stream, e0;        /* the mask's key: element e0 + i L + j */
    real keep;                  /* 1/(1 − p) */
    double p;
} head;

static head head_of(const R(mgr_op_args) *a, size_t r, size_t h)
{
    head hd;
    size_t L = (size_t)a->node->positions, d = (size_t)a->node->shape[1];
    size_t H = (size_t)a->node->heads;
    hd.L = L;
    hd.d = d;
    hd.e = d / H;
    hd.ld = 3 * d;
    hd.c = (real)(1.0 / sqrt((double)hd.e));
    const real *x = a->x + r * L * hd.ld;
    hd.Q = x + h * hd.e;
    hd.K = x + d + h * hd.e;
    hd.V = x + 2 * d + h * hd.e;
    size_t LL = L * L;
    hd.P = a->scratch;
    hd.Pd = hd.P + LL;
    hd.T = hd.P + 2 * LL;
    hd.Td = hd.P + 3 * LL;
    hd.Pb = hd.P + 4 * LL;
    hd.Pbd = hd.P + 5 * LL;
    hd.Sb = hd.P + 6 * LL;
    hd.Sbd = hd.P + 7 * LL;
    hd.p = a->node->rate;
    hd.dropout = a->training && hd.p > 0;
    hd.keep = (real)(1.0 / (1.0 - hd.p));
    /* The dropout op's stream for this node (ops_dropout.c). */
    hd.stream = (uint64_t)MGR_STREAM_DROPOUT +
                ((((uint64_t)a->step << 16) | (uint64_t)a->index) << 8);
    hd.e0 = (((uint64_t)a->row0 + (uint64_t)r) * (uint64_t)H + (uint64_t)h) * (uint64_t)LL;
    return hd;
}

/* The offset of (row r, head h) in a [rows, L, d] or [rows, L, 3d] buffer. */
static size_t out_offset(const head *hd, size_t r, size_t h)
{
    return r * hd->L * hd->d + h * hd->e;
}
static size_t in_offset(const head *hd, size_t r, size_t h)
{
    return r * hd->L * hd->ld + h * hd->e;
}

/* dst = D ⊙ src (dst may be src). */
static void mask_mul(const R(mgr_op_args) *a, const head *hd, const real *src, real *dst)
{
    size_t LL = hd->L * hd->L;
    if (!hd->dropout) {
        if (dst != src) R(mgr_copy)(LL, src, dst);
        return;
    }
    for (size_t k = 0; k < LL; k++) {
        int kept = mgr_rng_uniform(a->seed, hd->stream, hd->e0 + (uint64_t)k) >= hd->p;
        dst[k] = kept ? hd->keep * src[k] : 0;
    }
}

/* P = causal softmax of c Q Kᵀ (0 above the diagonal), and P' = D ⊙ P. */
static void probs(const R(mgr_op_args) *a, const head *hd)
{
    size_t L = hd->L;
    real *P = hd->P;
    R(mgr_gemm)(0, 1, L, L, hd->e, hd->c, hd->Q, hd->ld, hd->K, hd->ld, 0, P, L);
    for (size_t i = 0; i < L; i++) {
        real *row = P + i * L;
        double m = (double)row[0];
        for (size_t j = 1; j <= i; j++)
            if ((double)row[j] > m) m = (double)row[j];
        double s = 0;
        for (size_t j = 0; j <= i; j++) s += exp((double)row[j] - m);
        for (size_t j = 0; j <= i; j++) row[j] = (real)(exp((double)row[j] - m) / s);
        for (size_t j = i + 1; j < L; j++) row[j] = 0;
    }
    mask_mul(a, hd, P, hd->Pd);
}

/* Sb = P ⊙ (Pb − r), r_i = Σ_j Pb_ij P_ij: the softmax's backward. */
static void softmax_back(const head *hd, const real *P, const real *Pb, real *Sb)
{
    size_t L = hd->L;
    for (size_t i = 0; i < L; i++) {
        const real *pr = P + i * L, *gr = Pb + i * L;
        double rs = 0;
        for (size_t j = 0; j <= i; j++) rs += (double)gr[j] * (double)pr[j];
        for (size_t j = 0; j < L; j++) Sb[i * L + j] = j <= i ? pr[j] * (gr[j] - (real)rs) : 0;
    }
}

/* The backward of one head from Ō (ob, row stride d) into xb (stride 3d):
   V̄ += P'ᵀ Ō;  P̄ = D ⊙ Ō Vᵀ;  S̄ = P ⊙ (P̄ − r);  Q̄ += c S̄ K;  K̄ += c S̄ᵀ Q.
   Leaves P̄ in hd->Pb and S̄ in hd->Sb. */
static void head_backward(const R(mgr_op_args) *a, const head *hd, const real *ob, real *xb)
{
    size_t L = hd->L, e = hd->e, d = hd->d, ld = hd->ld;
    R(mgr_gemm)(1, 0, L, e, L, 1, hd->Pd, L, ob, d, 1, xb + 2 * d, ld);
    R(mgr_gemm)(0, 1, L, L, e, 1, ob, d, hd->V, ld, 0, hd->Pb, L);
    mask_mul(a, hd, hd->Pb, hd->Pb);
    softmax_back(hd, hd->P, hd->Pb, hd->Sb);
    R(mgr_gemm)(0, 0, L, e, L, hd->c, hd->Sb, L, hd->K, ld, 1, xb, ld);
    R(mgr_gemm)(1, 0, L, e, L, hd->c, hd->Sb, L, hd->Q, ld, 1, xb + d, ld);
}

/* y_h = P' V_h */
static void attention_forward(const R(mgr_op_args) *a)
{
    size_t H = (size_t)a->node->heads;
    for (size_t r = 0; r < a->rows; r++)
        for (size_t h = 0; h < H; h++) {
            head hd = head_of(a, r, h);
            probs(a, &hd);
            R(mgr_gemm)(0, 0, hd.L, hd.e, hd.L, 1, hd.Pd, hd.L, hd.V, hd.ld, 0,
                        a->y + out_offset(&hd, r, h), hd.d);
        }
}

static void attention_backward(const R(mgr_op_args) *a)
{
    if (a->xbar == NULL) return;
    size_t H = (size_t)a->node->heads;
    for (size_t r = 0; r < a->rows; r++)
        for (size_t h = 0; h < H; h++) {
            head hd = head_of(a, r, h);
            probs(a, &hd);
            head_backward(a, &hd, a->ybar + out_offset(&hd, r, h),
                          a->xbar + in_offset(&hd, r, h));
        }
}

/* Ṗ = P ⊙ (Ṡ − Σ_j P_ij Ṡ_ij), Ṡ = c (Q̇ Kᵀ + Q K̇ᵀ), into hd->T; D ⊙ Ṗ into
   hd->Td.  xd: the tangent of this row's [L, 3d] block. */
static void probs_tangent(const R(mgr_op_args) *a, const head *hd, const real *xd)
{
    size_t L = hd->L, e = hd->e, d = hd->d, ld = hd->ld;
    real *T = hd->T;
    R(mgr_gemm)(0, 1, L, L, e, hd->c, xd, ld, hd->K, ld, 0, T, L);
    R(mgr_gemm)(0, 1, L, L, e, hd->c, hd->Q, ld, xd + d, ld, 1, T, L);
    for (size_t i = 0; i < L; i++) {
        const real *pr = hd->P + i * L;
        real *tr = T + i * L;
        double rs = 0;
        for (size_t j = 0; j <= i; j++) rs += (double)pr[j] * (double)tr[j];
        for (size_t j = 0; j < L; j++) tr[j] = j <= i ? pr[j] * (tr[j] - (real)rs) : 0;
    }
    mask_mul(a, hd, T, hd->Td);
}

/* ẏ_h = (D ⊙ Ṗ) V + P' V̇ */
static void attention_tangent(const R(mgr_op_args) *a)
{
    size_t H = (size_t)a->node->heads;
    if (a->xdot == NULL) {
        R(mgr_zero)(a->rows * a->in_size / 3, a->ydot);
        return;
    }
    for (size_t r = 0; r < a->rows; r++)
        for (size_t h = 0; h < H; h++) {
            head hd = head_of(a, r, h);
            const real *xd = a->xdot + in_offset(&hd, r, h);
            real *yd = a->ydot + out_offset(&hd, r, h);
            probs(a, &hd);
            probs_tangent(a, &hd, xd);
            R(mgr_gemm)(0, 0, hd.L, hd.e, hd.L, 1, hd.Td, hd.L, hd.V, hd.ld, 0, yd, hd.d);
            R(mgr_gemm)(0, 0, hd.L, hd.e, hd.L, 1, hd.Pd, hd.L, xd + 2 * hd.d, hd.ld, 1, yd,
                        hd.d);
        }
}

static void attention_tangent_backward(const R(mgr_op_args) *a)
{
    if (a->xbardot == NULL) return;
    size_t H = (size_t)a->node->heads;
    for (size_t r = 0; r < a->rows; r++)
        for (size_t h = 0; h < H; h++) {
            head hd = head_of(a, r, h);
            size_t L = hd.L, e = hd.e, d = hd.d, ld = hd.ld;
            const real *obd = a->ybardot + out_offset(&hd, r, h);
            real *xbd = a->xbardot + in_offset(&hd, r, h);
            probs(a, &hd);
            if (a->xdot == NULL) { /* a linear map of (ȳ)˙ */
                head_backward(a, &hd, obd, xbd);
                continue;
            }
            const real *ob = a->ybar + out_offset(&hd, r, h);
            const real *xd = a->xdot + in_offset(&hd, r, h);
            probs_tangent(a, &hd, xd);
            /* P̄ = D ⊙ Ō Vᵀ, (P̄)˙ = D ⊙ ((Ō)˙ Vᵀ + Ō V̇ᵀ) */
            R(mgr_gemm)(0, 1, L, L, e, 1, ob, d, hd.V, ld, 0, hd.Pb, L);
            mask_mul(a, &hd, hd.Pb, hd.Pb);
            R(mgr_gemm)(0, 1, L, L, e, 1, obd, d, hd.V, ld, 0, hd.Pbd, L);
            R(mgr_gemm)(0, 1, L, L, e, 1, ob, d, xd + 2 * d, ld, 1, hd.Pbd, L);
            mask_mul(a, &hd, hd.Pbd, hd.Pbd);
            /* S̄ = P ⊙ (P̄ − r);  (S̄)˙ = Ṗ ⊙ (P̄ − r) + P ⊙ ((P̄)˙ − ṙ) */
            for (size_t i = 0; i < L; i++) {
                const real *pr = hd.P + i * L, *tr = hd.T + i * L;
                const real *gr = hd.Pb + i * L, *gdr = hd.Pbd + i * L;
                double rs = 0, rsd = 0;
                for (size_t j = 0; j <= i; j++) {
                    rs += (double)gr[j] * (double)pr[j];
                    rsd += (double)gdr[j] * (double)pr[j] + (double)gr[j] * (double)tr[j];
                }
                for (size_t j = 0; j < L; j++) {
                    size_t k = i * L + j;
                    if (j > i) {
                        hd.Sb[k] = hd.Sbd[k] = 0;
                        continue;
                    }
                    hd.Sb[k] = pr[j] * (gr[j] - (real)rs);
                    hd.Sbd[k] = tr[j] * (gr[j] - (real)rs) + pr[j] * (gdr[j] - (real)rsd);
                }
            }
            /* (V̄)˙ += (D ⊙ Ṗ)ᵀ Ō + P'ᵀ (Ō)˙ */
            R(mgr_gemm)(1, 0, L, e, L, 1, hd.Td, L, ob, d, 1, xbd + 2 * d, ld);
            R(mgr_gemm)(1, 0, L, e, L, 1, hd.Pd, L, obd, d, 1, xbd + 2 * d, ld);
            /* (Q̄)˙ += c ((S̄)˙ K + S̄ K̇);  (K̄)˙ += c ((S̄)˙ᵀ Q + S̄ᵀ Q̇) */
            R(mgr_gemm)(0, 0, L, e, L, hd.c, hd.Sbd, L, hd.K, ld, 1, xbd, ld);
            R(mgr_gemm)(0, 0, L, e, L, hd.c, hd.Sb, L, xd + d, ld, 1, xbd, ld);
            R(mgr_gemm)(1, 0, L, e, L, hd.c, hd.Sbd, L, hd.Q, ld, 1, xbd + d, ld);
            R(mgr_gemm)(1, 0, L, e, L, hd.c, hd.Sb, L, xd, ld, 1, xbd + d, ld);
        }
}

MGR_OP_PASS_TABLE(attention, attention);

#endif
