/*
 * sgd.c - SGD with momentum μ (dampening 0), optional Nesterov, coupled
 * weight decay λ; torch.optim.SGD semantics.  State: θ [P], m [P].
 *
 * Forward (docs/optimizers.md):
 *     g  = ∇L(θ) + λθ
 *     m' = μ m + g                  (m starts at 0, so m'_0 = g as in torch)
 *     d  = g + μ m'  (Nesterov)  or  m'
 *     θ' = θ − η d
 * Reverse: docs/optimizers.md, "SGD"; the H u + λ u part is in optim_typed.c.
 */
#include "optim/optim_impl.h"

void R(mgr_sgd_step)(const mgr_hyper *h, size_t stride, size_t count, real *state,
                     const real *grad)
{
    const size_t n = count;
    real *restrict th = state;
    real *restrict m = state + stride;
    const real *restrict gr = grad;
    const real lr = (real)h->lr, wd = (real)h->weight_decay, mu = (real)h->momentum;

    /* Two loops rather than a branch inside one, so each vectorises. */
    if (h->nesterov) {
        for (size_t i = 0; i < n; i++) {
            real g = gr[i] + wd * th[i];
            real mn = mu * m[i] + g;
            m[i] = mn;
            th[i] -= lr * (g + mu * mn);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            real g = gr[i] + wd * th[i];
            real mn = mu * m[i] + g;
            m[i] = mn;
            th[i] -= lr * mn;
        }
    }
}

/*
 * Reverse of the step, without the Hessian part:
 *     θ̄  = θ̄'                 (H u + λ u added by reverse_post)
 *     d̄  = −η θ̄'              η̄ += −⟨θ̄', d⟩
 *     Nesterov: ḡ = d̄;  M = m̄' + μ d̄;  μ̄ += ⟨d̄, m'⟩
 *     plain:    ḡ = 0;  M = m̄' + d̄
 *     m̄  = μ M                μ̄ += ⟨M, m⟩;   ḡ += M;   u = ḡ
 * state_bar is updated in place: θ̄' and m̄' of element i are read before
 * m̄ of element i is written, and no other element is touched.
 *
 * Without Nesterov, g enters only through m' = μ m + g + λθ, so with grad ==
 * NULL m' is read from next_m (the buffer of s_{t+1}): the very values the
 * step computed, hence the same result as recomputing it from g.
 */
void R(mgr_sgd_reverse_pre)(const mgr_hyper *h, size_t stride, size_t count,
                            const real *state, const real *grad, const real *next_m,
                            real *state_bar, real *u, mgr_hyper_grad *hg)
{
    const size_t n = count;
    const real *restrict th = state;
    const real *restrict m = state + stride;
    const real *restrict gr = grad;
    real *restrict mbar = state_bar + stride;
    real *restrict ub = u;
    const real lr = (real)h->lr, wd = (real)h->weight_decay, mu = (real)h->momentum;
    const real *restrict abar = state_bar; /* θ̄' = θ̄: the θ part stays as is */
    /* Reductions in double in a fixed order (index order, or mgr_dot's fixed
       lanes): results do not depend on how the loops are compiled.  Sums
       nobody reads are skipped. */
    double s_lr = 0.0, s_mu = 0.0;
    const int want_lr = !(h->skip_adjoints & MGR_SKIP_LR);
    const int want_mu = !(h->skip_adjoints & MGR_SKIP_MOMENTUM);

    if (h->nesterov) {
        MGR_LANES(l_lr);
        MGR_LANES(l_mu);
        for (size_t i = 0; i < n; i++) {
            real a = abar[i];
            real g = gr[i] + wd * th[i];
            real mn = mu * m[i] + g;
            real d = g + mu * mn;
            real dbar = -lr * a;
            real mm = mbar[i] + mu * dbar;
            if (want_lr) MGR_LANE_ADD(l_lr, i, (double)a * (double)d);
            if (want_mu)
                MGR_LANE_ADD(l_mu, i, (double)dbar * (double)mn + (double)mm * (double)m[i]);
            mbar[i] = mu * mm;
            ub[i] = dbar + mm;
        }
        s_lr = MGR_LANE_SUM(l_lr);
        s_mu = MGR_LANE_SUM(l_mu);
    } else {
        /* m' from s_{t+1}, or recomputed from g into u (used as scratch
           until M overwrites it); the same bits either way. */
        const real *mn = next_m;
        if (gr != NULL) {
            for (size_t i = 0; i < n; i++) ub[i] = mu * m[i] + (gr[i] + wd * th[i]);
            mn = ub;
        }
        if (want_lr) s_lr = R(mgr_dot)(n, abar, mn);     /* η̄ = −⟨θ̄', m'⟩ */
        for (size_t i = 0; i < n; i++) {
            real mm = mbar[i] - lr * abar[i];
            mbar[i] = mu * mm;
            ub[i] = mm;
        }
        if (want_mu) s_mu = R(mgr_dot)(n, ub, m);         /* μ̄ = ⟨M, m⟩ */
    }
    hg->lr -= s_lr;
    hg->momentum += s_mu;
}
