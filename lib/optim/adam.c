/*
 * adam.c - Adam (coupled weight decay, torch.optim.Adam) and AdamW
 * (decoupled, torch.optim.AdamW), with bias correction, ε outside the root
 * and ε_root inside it.  State: θ [P], m [P], v [P].
 *
 * Forward at step t (docs/optimizers.md), k = t + 1, c1 = 1 − β1^k, c2 = 1 − β2^k:
 *     Adam:  g = ∇L(θ) + λθ;  θa = θ
 *     AdamW: g = ∇L(θ);       θa = θ (1 − ηλ)
 *     m' = β1 m + (1−β1) g
 *     v' = β2 v + (1−β2) g ⊙ g
 *     m̂ = m'/c1,  v̂ = v'/c2,  r = sqrt(v̂ + ε_root),  D = r + ε
 *     θ' = θa − η m̂ / D
 * With ε_root = 0 this is torch's update.  Reverse: docs/optimizers.md,
 * "Adam / AdamW".
 */
#include "optim/optim_impl.h"

#include <math.h>

/* Per-step constants, computed in double whatever `real` is. */
typedef struct adam_consts {
    double c1, c2;    /* bias corrections 1 − β^k */
    double dc1, dc2;  /* d(β^k)/dβ = k β^(k−1) */
    double wd_grad;   /* λ in g (Adam), 0 (AdamW) */
    double decay;     /* 1 − ηλ (AdamW), 1 (Adam) */
} adam_consts;

static adam_consts adam_consts_at(const mgr_hyper *h, int64_t t)
{
    adam_consts c;
    const double k = (double)(t + 1);
    c.c1 = 1.0 - pow(h->momentum, k);
    c.c2 = 1.0 - pow(h->beta2, k);
    c.dc1 = k * pow(h->momentum, k - 1.0);
    c.dc2 = k * pow(h->beta2, k - 1.0);
    if (h->kind == MGRAD_OPTIMIZER_ADAMW) {
        c.wd_grad = 0.0;
        c.decay = 1.0 - h->lr * h->weight_decay;
    } else {
        c.wd_grad = h->weight_decay;
        c.decay = 1.0;
    }
    return c;
}

void R(mgr_adam_step)(const mgr_hyper *h, int64_t t, size_t stride, size_t count,
                      real *state, const real *grad)
{
    const size_t n = count;
    real *restrict th = state;
    real *restrict m = state + stride;
    real *restrict v = state + 2 * stride;
    const real *restrict gr = grad;
    const adam_consts c = adam_consts_at(h, t);
    const real lr = (real)h->lr, eps = (real)h->eps, eps_root = (real)h->eps_root;
    const real b1 = (real)h->momentum, omb1 = (real)(1.0 - h->momentum);
    const real b2 = (real)h->beta2, omb2 = (real)(1.0 - h->beta2);
    const real ic1 = (real)(1.0 / c.c1), ic2 = (real)(1.0 / c.c2);
    const real wd = (real)c.wd_grad, decay = (real)c.decay;

    for (size_t i = 0; i < n; i++) {
        real g = gr[i] + wd * th[i];
        real mn = b1 * m[i] + omb1 * g;
        real vn = b2 * v[i] + omb2 * g * g;
        real r = RSQRT(vn * ic2 + eps_root);
        m[i] = mn;
        v[i] = vn;
        th[i] = decay * th[i] - lr * (mn * ic1) / (r + eps);
    }
}

/*
 * Reverse of the step, without the Hessian part (a = θ̄'):
 *     η̄  += −⟨a, m̂/D⟩
 *     m̂̄  = −η a / D           r̄ = η a ⊙ m̂ / D²
 *     v̂̄  = r̄ / (2r)           (0 where r = 0)
 *     M   = m̄' + m̂̄/c1         V = v̄' + v̂̄/c2
 *     β̄1 += k β1^(k−1) ⟨m̂̄, m'⟩ / c1² + ⟨M, m − g⟩;   m̄ = β1 M
 *     β̄2 += k β2^(k−1) ⟨v̂̄, v'⟩ / c2² + ⟨V, v − g⊙g⟩; v̄ = β2 V
 *     u   = (1−β1) M + 2 (1−β2) g ⊙ V
 *     Adam:  θ̄ = a                (H u + λ u added by reverse_post)
 *     AdamW: θ̄ = a (1 − ηλ);  η̄ += −λ⟨a, θ⟩;  λ̄ += −η⟨a, θ⟩
 * state_bar is updated in place element by element: all three incoming
 * adjoints of element i are read before any of them is written.
 */
void R(mgr_adam_reverse_pre)(const mgr_hyper *h, int64_t t, size_t stride, size_t count,
                             const real *state, const real *grad, real *state_bar,
                             real *u, mgr_hyper_grad *hg)
{
    const size_t n = count;
    const real *restrict th = state;
    const real *restrict m = state + stride;
    const real *restrict v = state + 2 * stride;
    const real *restrict gr = grad;
    real *restrict thbar = state_bar;
    real *restrict mbar = state_bar + stride;
    real *restrict vbar = state_bar + 2 * stride;
    real *restrict ub = u;
    const adam_consts c = adam_consts_at(h, t);
    const real lr = (real)h->lr, eps = (real)h->eps, eps_root = (real)h->eps_root;
    const real b1 = (real)h->momentum, omb1 = (real)(1.0 - h->momentum);
    const real b2 = (real)h->beta2, omb2 = (real)(1.0 - h->beta2);
    const real ic1 = (real)(1.0 / c.c1), ic2 = (real)(1.0 / c.c2);
    const real wd = (real)c.wd_grad, decay = (real)c.decay;
    /* Reductions in double in fixed lanes (deterministic); those of
       adjoints nobody reads are skipped. */
    MGR_LANES(s_lr);
    MGR_LANES(s_c1);
    MGR_LANES(s_c2);
    MGR_LANES(s_b1);
    MGR_LANES(s_b2);
    MGR_LANES(s_at);
    const int want_lr = !(h->skip_adjoints & MGR_SKIP_LR);
    const int want_b1 = !(h->skip_adjoints & MGR_SKIP_MOMENTUM);
    const int want_b2 = !(h->skip_adjoints & MGR_SKIP_BETA2);
    const int want_wd = !(h->skip_adjoints & MGR_SKIP_WEIGHT_DECAY);
    const int want_at = h->kind == MGRAD_OPTIMIZER_ADAMW && (want_lr || want_wd);

    for (size_t i = 0; i < n; i++) {
        const real a = thbar[i], mb = mbar[i], vb = vbar[i];
        const real g = gr[i] + wd * th[i];
        const real mn = b1 * m[i] + omb1 * g;
        const real vn = b2 * v[i] + omb2 * g * g;
        const real mh = mn * ic1;
        const real r = RSQRT(vn * ic2 + eps_root);
        const real inv_d = 1 / (r + eps);
        const real q = mh * inv_d;             /* m̂ / D */
        const real mhb = -lr * a * inv_d;      /* m̂̄ */
        const real rb = lr * a * q * inv_d;    /* r̄ */
        /* d sqrt / dv̂ is unbounded at r = 0; there m̂ = 0 too (v' = 0 means
           every gradient so far was 0) and the continuous extension is 0.
           Divide unconditionally and select, so the loop stays branch-free. */
        real vhb = rb / (2 * r);
        vhb = r > 0 ? vhb : 0;
        const real mm = mb + mhb * ic1;        /* M */
        const real vv = vb + vhb * ic2;        /* V */

        if (want_lr) MGR_LANE_ADD(s_lr, i, (double)a * (double)q);
        if (want_b1) {
            MGR_LANE_ADD(s_c1, i, (double)mhb * (double)mn);
            MGR_LANE_ADD(s_b1, i, (double)mm * ((double)m[i] - (double)g));
        }
        if (want_b2) {
            MGR_LANE_ADD(s_c2, i, (double)vhb * (double)vn);
            MGR_LANE_ADD(s_b2, i, (double)vv * ((double)v[i] - (double)g * (double)g));
        }
        if (want_at) MGR_LANE_ADD(s_at, i, (double)a * (double)th[i]);

        thbar[i] = a * decay;
        mbar[i] = b1 * mm;
        vbar[i] = b2 * vv;
        ub[i] = omb1 * mm + 2 * omb2 * g * vv;
    }

    if (want_lr) hg->lr -= MGR_LANE_SUM(s_lr);
    if (want_b1) hg->momentum += c.dc1 * MGR_LANE_SUM(s_c1) / (c.c1 * c.c1) + MGR_LANE_SUM(s_b1);
    if (want_b2) hg->beta2 += c.dc2 * MGR_LANE_SUM(s_c2) / (c.c2 * c.c2) + MGR_LANE_SUM(s_b2);
    if (want_at) {
        if (want_lr) hg->lr -= h->weight_decay * MGR_LANE_SUM(s_at);
        if (want_wd) hg->weight_decay -= h->lr * MGR_LANE_SUM(s_at);
    }
}
