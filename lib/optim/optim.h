/*
 * optim.h - differentiable optimizers: SGD (momentum, Nesterov, coupled
 * weight decay), Adam and AdamW, each with step and step_reverse.
 *
 * Update rules: torch.optim's; reverse rules derived from them: both in
 * docs/optimizers.md.
 *
 * The optimizer state s_t is one array of reals:
 *     SGD        θ [P], m [P]
 *     Adam(W)    θ [P], m [P], v [P]
 * (SGD keeps m even with μ = 0 so that μ can be a metaparameter.)
 *
 * The reverse of a step is split around the Hessian-vector product that the
 * graph computes:
 *     reverse_pre   adjoint of s_{t+1} → u = ḡ, buffer adjoints of s_t, the
 *                   direct part of θ̄_t, and the hyperparameter adjoints;
 *     (graph)       H u and the graph-input metagradients, direction u;
 *     reverse_post  θ̄_t += H u (+ λ u with coupled decay), λ̄ += ⟨u, θ_t⟩.
 */
#ifndef MGRAD_OPTIM_H
#define MGRAD_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "metagrad/common.h"

/* Hyperparameters of one step. */
typedef struct mgr_hyper {
    mgrad_optimizer kind;
    double lr;            /* η_t */
    double weight_decay;  /* λ */
    double momentum;      /* SGD μ, or Adam β1 */
    double beta2;
    double eps;
    double eps_root;
    int nesterov;
    /* MGR_SKIP_* bits: adjoints nobody reads (their hyperparameter is not a
       metaparameter), whose O(P) double-precision sums the reverse may then
       skip.  0, the default, computes every adjoint. */
    unsigned skip_adjoints;
} mgr_hyper;

enum { MGR_SKIP_LR = 1u, MGR_SKIP_MOMENTUM = 2u, MGR_SKIP_WEIGHT_DECAY = 4u, MGR_SKIP_BETA2 = 8u };

/* Adjoints of the hyperparameters, accumulated (+=) by the reverse. */
typedef struct mgr_hyper_grad {
    double lr;            /* η̄_t of this step */
    double weight_decay;  /* λ̄ */
    double momentum;      /* μ̄ or β̄1 */
    double beta2;         /* β̄2 */
} mgr_hyper_grad;

/* Number of reals in the state for P parameters. */
size_t mgr_optim_state_len(mgrad_optimizer kind, size_t num_params);

/* Whether the reverse of a step needs g = ∇L_t(θ_t).  Plain SGD and SGD with
   momentum do not: what they use of g is m_{t+1} = μ m_t + g + λ θ_t, which
   the caller can take from s_{t+1} (the buffer of the state reversed just
   before).  Not computing g saves the parameter-gradient GEMMs of the
   reverse step's backward pass (about a quarter of its work for an MLP).
   Nesterov and Adam(W) use g itself. */
int mgr_optim_reverse_needs_grad(const mgr_hyper *h);

#endif /* MGRAD_OPTIM_H */

#ifdef MGRAD_REAL_BITS
#ifndef MGRAD_OPTIM_TYPED_H
#define MGRAD_OPTIM_TYPED_H
#include "kernels/real.h"

/* state = (θ0, zero buffers). */
void R(mgr_optim_init_state)(mgrad_optimizer kind, size_t num_params,
                             const real *theta0, real *state);

/* The passes below run on the context's threads `pool` (NULL: the calling
   thread), over the fixed grid of base/pool.h: their results depend on
   num_params, never on the thread count. */
struct mgr_pool;

/* One step t (0-based) in place.  grad = ∇_θ L_t(θ_t), without decay. */
void R(mgr_optim_step)(struct mgr_pool *pool, const mgr_hyper *h, int64_t t,
                       size_t num_params, real *state, const real *grad);

/* First half of the reverse of step t.
   state      s_t (unchanged)
   grad       ∇_θ L_t(θ_t) (as passed to step), or NULL when
              !mgr_optim_reverse_needs_grad(h)
   next_m     with grad == NULL: the momentum buffer m_{t+1} of s_{t+1}, i.e.
              exactly what step wrote there (ignored otherwise; may be NULL)
   state_bar  in: adjoint of s_{t+1}; out: adjoint of s_t, except that its θ
              part still lacks H u and the coupled-decay term λ u
   u          out [P]: ḡ, the direction for the Hessian-vector product
   hg         += adjoints of η_t, λ (all but ⟨u, θ⟩), μ / β1, β2 */
void R(mgr_optim_reverse_pre)(struct mgr_pool *pool, const mgr_hyper *h, int64_t t,
                              size_t num_params, const real *state, const real *grad,
                              const real *next_m, real *state_bar, real *u,
                              mgr_hyper_grad *hg);

/* Second half: theta_bar += hu (+ λ u and λ̄ += ⟨u, θ⟩ for coupled decay). */
void R(mgr_optim_reverse_post)(struct mgr_pool *pool, const mgr_hyper *h,
                               size_t num_params, const real *theta, const real *u,
                               const real *hu, real *theta_bar, mgr_hyper_grad *hg);
#endif /* MGRAD_OPTIM_TYPED_H */
#endif /* MGRAD_REAL_BITS */
