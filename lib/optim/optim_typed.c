/*
 * optim_typed.c - state initialisation and dispatch by optimizer kind; the
 * second half of every reverse step (it is the same for all optimizers).
 */
#include "optim/optim_impl.h"

#include <assert.h>
#include <string.h>

void R(mgr_optim_init_state)(mgrad_optimizer kind, size_t num_params,
                             const real *theta0, real *state)
{
    const size_t len = mgr_optim_state_len(kind, num_params);
    assert(len > 0 || num_params == 0);
    memcpy(state, theta0, num_params * sizeof(real));
    /* Buffers start at 0 (torch's lazily created buffers behave the same). */
    for (size_t i = num_params; i < len; i++) state[i] = 0;
}

void R(mgr_optim_step)(const mgr_hyper *h, int64_t t, size_t num_params,
                       real *state, const real *grad)
{
    assert(t >= 0);
    switch (h->kind) {
    case MGRAD_OPTIMIZER_SGD:
        R(mgr_sgd_step)(h, num_params, state, grad);
        break;
    case MGRAD_OPTIMIZER_ADAM:
    case MGRAD_OPTIMIZER_ADAMW:
        R(mgr_adam_step)(h, t, num_params, state, grad);
        break;
    default:
        assert(!"optimizer kind validated by the run");
    }
}

void R(mgr_optim_reverse_pre)(const mgr_hyper *h, int64_t t, size_t num_params,
                              const real *state, const real *grad, const real *next_m,
                              real *state_bar, real *u, mgr_hyper_grad *hg)
{
    assert(t >= 0);
    assert(grad != NULL || (!mgr_optim_reverse_needs_grad(h) && next_m != NULL));
    switch (h->kind) {
    case MGRAD_OPTIMIZER_SGD:
        R(mgr_sgd_reverse_pre)(h, num_params, state, grad, next_m, state_bar, u, hg);
        break;
    case MGRAD_OPTIMIZER_ADAM:
    case MGRAD_OPTIMIZER_ADAMW:
        R(mgr_adam_reverse_pre)(h, t, num_params, state, grad, state_bar, u, hg);
        break;
    default:
        assert(!"optimizer kind validated by the run");
    }
}

/*
 * g = ∇L(θ) (+ λθ with coupled decay) reaches θ through ∇L, giving H u,
 * and through λθ, giving λ u and λ̄ += ⟨u, θ⟩.  AdamW's decay acts on θ
 * directly and was handled by reverse_pre.
 */
void R(mgr_optim_reverse_post)(const mgr_hyper *h, size_t num_params,
                               const real *theta, const real *u, const real *hu,
                               real *theta_bar, mgr_hyper_grad *hg)
{
    const size_t n = num_params;
    const real *restrict th = theta;
    const real *restrict ub = u;
    const real *restrict hub = hu;
    real *restrict tb = theta_bar;

    if (h->kind == MGRAD_OPTIMIZER_ADAMW) {
        for (size_t i = 0; i < n; i++) tb[i] += hub[i];
        return;
    }
    const real wd = (real)h->weight_decay;
    double s_wd = 0.0;
    for (size_t i = 0; i < n; i++) tb[i] += hub[i] + wd * ub[i];
    if (!(h->skip_adjoints & MGR_SKIP_WEIGHT_DECAY)) s_wd = R(mgr_dot)(n, ub, th);
    hg->weight_decay += s_wd;
}
