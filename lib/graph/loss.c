/*
 * loss.c - the per-example loss and its four passes.
 *
 *     o [rows, C] model outputs, q [rows, C] targets, w [rows] weights
 *     L = scale Σ_i w_i ℓ_i
 *
 * Softmax cross-entropy, p = softmax(o):
 *     ℓ_i = −Σ_j q_ij log p_ij + (1 − Σ_j q_ij) log Z_i,   log Z_i = logsumexp(o_i)
 * The second term is zero when the targets sum to 1 (one-hot, label
 * smoothing q = (1−α) onehot + α/C, soft labels on the simplex).  It makes
 * ∂ℓ/∂o = p − q hold for every q, so that ∂²ℓ/∂o∂q = −I and the soft-label
 * metagradient q̄ = −(w/B) ȯ (docs/derivations.md) stays exact when q leaves the
 * simplex (as it does under finite differences).
 *     backward:  ō = scale w (p − q)
 *     tangent:   ℓ̇ = ⟨p − q, ȯ⟩,   ṗ = p ⊙ (ȯ − ⟨p, ȯ⟩)
 *     tan-back:  (ō)˙ = scale w ṗ
 * Squared error against targets t:
 *     ℓ_i = ½‖o_i − t_i‖²;  ō = scale w (o − t);  ℓ̇ = ⟨o − t, ȯ⟩;  (ō)˙ = scale w ȯ
 * Next token (sequence models): o_i is [L, V], one row of logits per
 * position p, and the target of position p is the token x_i[p + 1] of the
 * example's own inputs (smoothed like the labels when α > 0):
 *     ℓ_i = (1/L) Σ_p CE(o_ip, x_i[p + 1]);  every pass is cross-entropy's
 *     per position, times 1/L.  A target that is not an id in [0, V) gives
 *     a NaN loss (runs validate the ids first).
 *
 * Row reductions (log Z, ⟨p, ȯ⟩, ℓ) run in double so that f32 losses are as
 * accurate as the stored logits allow.
 * Derivation of the tangent: docs/derivations.md, "Softmax cross-entropy".
 */
#include <assert.h>
#include <math.h>

#include "graph/graph_exec.h"

static double row_weight(const R(mgr_loss_batch) *lb, size_t i)
{
    return lb->weights != NULL ? (double)lb->weights[i] : 1.0;
}

/* Target q_ij of cross-entropy (soft targets, or smoothed one-hot). */
static double ce_target(const R(mgr_loss_batch) *lb, size_t i, size_t j)
{
    if (lb->targets != NULL) return (double)lb->targets[i * lb->classes + j];
    double q = lb->smoothing / (double)lb->classes;
    if ((int32_t)j == lb->labels[i]) q += 1.0 - lb->smoothing;
    return q;
}

/* Next token: the target id of position p of row i, or -1 when the value
   is not an integer in [0, V). */
static int64_t nt_label(const R(mgr_loss_batch) *lb, size_t i, size_t p, size_t V)
{
    double v = (double)lb->tokens[i * lb->token_stride + p + 1];
    if (!(v >= 0 && v < (double)V) || v != floor(v)) return -1;
    return (int64_t)v;
}

/* Next token: the target q_j of class j at a position whose target id is
   `label` (NaN for an invalid id). */
static double nt_target(const R(mgr_loss_batch) *lb, int64_t label, size_t j, size_t V)
{
    if (label < 0) return NAN;
    double q = lb->smoothing / (double)V;
    if ((int64_t)j == label) q += 1.0 - lb->smoothing;
    return q;
}

/* log Z of one row of logits, shifted by the row maximum so exp never
   overflows and the largest term is exactly 1. */
static double row_logsumexp(const real *o, size_t c)
{
    double m = (double)o[0];
    for (size_t j = 1; j < c; j++)
        if ((double)o[j] > m) m = (double)o[j];
    double s = 0;
    for (size_t j = 0; j < c; j++) s += exp((double)o[j] - m);
    return m + log(s);
}

double R(mgr_loss_forward)(const R(mgr_loss_batch) *lb, const real *o, real *prob,
                           real *ell)
{
    size_t rows = lb->rows, c = lb->classes;
    double total = 0;
    for (size_t i = 0; i < rows; i++) {
        const real *oi = o + i * c;
        double li = 0;
        if (lb->kind == MGRAD_LOSS_NEXT_TOKEN) {
            assert(prob != NULL && lb->tokens != NULL && lb->positions > 0);
            size_t L = lb->positions, V = c / L;
            for (size_t p = 0; p < L; p++) {
                const real *op = oi + p * V;
                int64_t label = nt_label(lb, i, p, V);
                double lz = row_logsumexp(op, V), lp_sum = 0;
                for (size_t j = 0; j < V; j++) {
                    double lp = (double)op[j] - lz;
                    prob[i * c + p * V + j] = (real)exp(lp);
                    lp_sum -= nt_target(lb, label, j, V) * lp;
                }
                li += lp_sum;
            }
            li /= (double)L;
        } else if (lb->kind == MGRAD_LOSS_CROSS_ENTROPY) {
            assert(prob != NULL && (lb->targets != NULL || lb->labels != NULL));
            double lz = row_logsumexp(oi, c), qsum = 0;
            /* log p_j = o_j − log Z, each term formed directly (no log of a
               rounded probability, which underflows to −∞). */
            for (size_t j = 0; j < c; j++) {
                double lp = (double)oi[j] - lz;
                double q = ce_target(lb, i, j);
                prob[i * c + j] = (real)exp(lp);
                li -= q * lp;
                qsum += q;
            }
            li += (1.0 - qsum) * lz;
        } else {
            assert(lb->kind == MGRAD_LOSS_SQUARED_ERROR && lb->targets != NULL);
            const real *ti = lb->targets + i * c;
            for (size_t j = 0; j < c; j++) {
                double d = (double)oi[j] - (double)ti[j];
                li += 0.5 * d * d;
            }
        }
        if (ell != NULL) ell[i] = (real)li;
        total += row_weight(lb, i) * li;
    }
    return (double)lb->scale * total;
}

void R(mgr_loss_backward)(const R(mgr_loss_batch) *lb, const real *o,
                          const real *prob, real *obar)
{
    size_t rows = lb->rows, c = lb->classes;
    for (size_t i = 0; i < rows; i++) {
        double sw = (double)lb->scale * row_weight(lb, i);
        real *ob = obar + i * c;
        if (lb->kind == MGRAD_LOSS_NEXT_TOKEN) {
            size_t L = lb->positions, V = c / L;
            const real *pi = prob + i * c;
            double f = sw / (double)L;
            for (size_t p = 0; p < L; p++) {
                int64_t label = nt_label(lb, i, p, V);
                for (size_t j = 0; j < V; j++)
                    ob[p * V + j] =
                        (real)(f * ((double)pi[p * V + j] - nt_target(lb, label, j, V)));
            }
        } else if (lb->kind == MGRAD_LOSS_CROSS_ENTROPY) {
            const real *pi = prob + i * c;
            for (size_t j = 0; j < c; j++)
                ob[j] = (real)(sw * ((double)pi[j] - ce_target(lb, i, j)));
        } else {
            const real *oi = o + i * c, *ti = lb->targets + i * c;
            for (size_t j = 0; j < c; j++)
                ob[j] = (real)(sw * ((double)oi[j] - (double)ti[j]));
        }
    }
}

void R(mgr_loss_tangent)(const R(mgr_loss_batch) *lb, const real *o,
                         const real *prob, const real *odot, real *elldot)
{
    size_t rows = lb->rows, c = lb->classes;
    for (size_t i = 0; i < rows; i++) {
        const real *od = odot + i * c;
        double acc = 0;
        if (lb->kind == MGRAD_LOSS_NEXT_TOKEN) {
            size_t L = lb->positions, V = c / L;
            const real *pi = prob + i * c;
            for (size_t p = 0; p < L; p++) {
                int64_t label = nt_label(lb, i, p, V);
                for (size_t j = 0; j < V; j++)
                    acc += ((double)pi[p * V + j] - nt_target(lb, label, j, V)) *
                           (double)od[p * V + j];
            }
            acc /= (double)L;
        } else if (lb->kind == MGRAD_LOSS_CROSS_ENTROPY) {
            const real *pi = prob + i * c;
            for (size_t j = 0; j < c; j++)
                acc += ((double)pi[j] - ce_target(lb, i, j)) * (double)od[j];
        } else {
            const real *oi = o + i * c, *ti = lb->targets + i * c;
            for (size_t j = 0; j < c; j++)
                acc += ((double)oi[j] - (double)ti[j]) * (double)od[j];
        }
        elldot[i] = (real)acc;
    }
}

void R(mgr_loss_tangent_backward)(const R(mgr_loss_batch) *lb, const real *o,
                                  const real *prob, const real *odot,
                                  real *obardot)
{
    (void)o; /* neither loss's Hessian depends on o beyond p */
    size_t rows = lb->rows, c = lb->classes;
    for (size_t i = 0; i < rows; i++) {
        double sw = (double)lb->scale * row_weight(lb, i);
        const real *od = odot + i * c;
        real *obd = obardot + i * c;
        if (lb->kind == MGRAD_LOSS_NEXT_TOKEN) {
            /* per position: (ō)˙ = (scale w / L) ṗ */
            size_t L = lb->positions, V = c / L;
            double f = sw / (double)L;
            for (size_t p = 0; p < L; p++) {
                const real *pp = prob + i * c + p * V, *odp = od + p * V;
                double pod = 0;
                for (size_t j = 0; j < V; j++) pod += (double)pp[j] * (double)odp[j];
                for (size_t j = 0; j < V; j++)
                    obd[p * V + j] = (real)(f * (double)pp[j] * ((double)odp[j] - pod));
            }
        } else if (lb->kind == MGRAD_LOSS_CROSS_ENTROPY) {
            /* (ō)˙ = scale w ṗ,  ṗ = p ⊙ (ȯ − ⟨p, ȯ⟩)  (the targets are constant) */
            const real *pi = prob + i * c;
            double pod = 0;
            for (size_t j = 0; j < c; j++) pod += (double)pi[j] * (double)od[j];
            for (size_t j = 0; j < c; j++)
                obd[j] = (real)(sw * (double)pi[j] * ((double)od[j] - pod));
        } else {
            for (size_t j = 0; j < c; j++) obd[j] = (real)(sw * (double)od[j]);
        }
    }
}
