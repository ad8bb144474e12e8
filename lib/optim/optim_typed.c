/*
 * optim_typed.c - state initialisation and dispatch by optimizer kind; the
 * second half of every reverse step (it is the same for all optimizers).
 */
#include "optim/optim_impl.h"

#include "base/pool.h"

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

/* ---- the passes on the context's threads ---------------------------------
   Every pass runs on the chunks of mgr_pool_grid(P) (base/pool.h), each on
   its slice of θ, m, v and their adjoints; a chunk's hyperparameter
   adjoints go to its own mgr_hyper_grad, and those are added to the
   caller's in chunk order.  So the bits depend on P, never on the thread
   count; with P within one chunk they are those of one plain loop. */

typedef struct optim_job {
    const mgr_hyper *h;
    int64_t t;
    size_t n, chunk;
    real *state;
    const real *grad, *next_m;
    real *state_bar, *u;
    const real *theta, *hu;
    real *theta_bar;
    mgr_hyper_grad part[MGR_POOL_MAX_CHUNKS];
} optim_job;

static void hg_add_parts(mgr_hyper_grad *hg, const mgr_hyper_grad *part, size_t chunks)
{
    for (size_t c = 0; c < chunks; c++) {
        hg->lr += part[c].lr;
        hg->weight_decay += part[c].weight_decay;
        hg->momentum += part[c].momentum;
        hg->beta2 += part[c].beta2;
    }
}

static void step_chunk(void *arg, size_t c)
{
    optim_job *j = arg;
    size_t lo = c * j->chunk, count = j->n - lo < j->chunk ? j->n - lo : j->chunk;
    switch (j->h->kind) {
    case MGRAD_OPTIMIZER_SGD:
        R(mgr_sgd_step)(j->h, j->n, count, j->state + lo, j->grad + lo);
        break;
    case MGRAD_OPTIMIZER_ADAM:
    case MGRAD_OPTIMIZER_ADAMW:
        R(mgr_adam_step)(j->h, j->t, j->n, count, j->state + lo, j->grad + lo);
        break;
    default:
        assert(!"optimizer kind validated by the run");
    }
}

void R(mgr_optim_step)(struct mgr_pool *pool, const mgr_hyper *h, int64_t t,
                       size_t num_params, real *state, const real *grad)
{
    assert(t >= 0);
    optim_job j = {.h = h, .t = t, .n = num_params, .state = state, .grad = grad};
    size_t chunks = mgr_pool_grid(num_params, &j.chunk);
    mgr_pool_for(pool, chunks, 5.0 * (double)j.chunk, step_chunk, &j);
}

static void reverse_pre_chunk(void *arg, size_t c)
{
    optim_job *j = arg;
    size_t lo = c * j->chunk, count = j->n - lo < j->chunk ? j->n - lo : j->chunk;
    mgr_hyper_grad *hg = &j->part[c];
    memset(hg, 0, sizeof *hg);
    switch (j->h->kind) {
    case MGRAD_OPTIMIZER_SGD:
        R(mgr_sgd_reverse_pre)(j->h, j->n, count, j->state + lo,
                               j->grad != NULL ? j->grad + lo : NULL,
                               j->next_m != NULL ? j->next_m + lo : NULL, j->state_bar + lo,
                               j->u + lo, hg);
        break;
    case MGRAD_OPTIMIZER_ADAM:
    case MGRAD_OPTIMIZER_ADAMW:
        R(mgr_adam_reverse_pre)(j->h, j->t, j->n, count, j->state + lo, j->grad + lo,
                                j->state_bar + lo, j->u + lo, hg);
        break;
    default:
        assert(!"optimizer kind validated by the run");
    }
}

void R(mgr_optim_reverse_pre)(struct mgr_pool *pool, const mgr_hyper *h, int64_t t,
                              size_t num_params, const real *state, const real *grad,
                              const real *next_m, real *state_bar, real *u,
                              mgr_hyper_grad *hg)
{
    assert(t >= 0);
    assert(grad != NULL || (!mgr_optim_reverse_needs_grad(h) && next_m != NULL));
    optim_job j = {.h = h, .t = t, .n = num_params, .state = (real *)state, .grad = grad,
                   .next_m = next_m, .state_bar = state_bar, .u = u};
    size_t chunks = mgr_pool_grid(num_params, &j.chunk);
    mgr_pool_for(pool, chunks, 8.0 * (double)j.chunk, reverse_pre_chunk, &j);
    hg_add_parts(hg, j.part, chunks);
}

/*
 * g = ∇L(θ) (+ λθ with coupled decay) reaches θ through ∇L, giving H u,
 * and through λθ, giving λ u and λ̄ += ⟨u, θ⟩.  AdamW's decay acts on θ
 * directly and was handled by reverse_pre.
 */
static void reverse_post_chunk(void *arg, size_t c)
{
    optim_job *j = arg;
    const mgr_hyper *h = j->h;
    size_t lo = c * j->chunk, n = j->n - lo < j->chunk ? j->n - lo : j->chunk;
    const real *restrict th = j->theta + lo;
    const real *restrict ub = j->u + lo;
    const real *restrict hub = j->hu + lo;
    real *restrict tb = j->theta_bar + lo;
    memset(&j->part[c], 0, sizeof j->part[c]);

    if (h->kind == MGRAD_OPTIMIZER_ADAMW) {
        for (size_t i = 0; i < n; i++) tb[i] += hub[i];
        return;
    }
    const real wd = (real)h->weight_decay;
    for (size_t i = 0; i < n; i++) tb[i] += hub[i] + wd * ub[i];
    if (!(h->skip_adjoints & MGR_SKIP_WEIGHT_DECAY))
        j->part[c].weight_decay = R(mgr_dot)(n, ub, th);
}

void R(mgr_optim_reverse_post)(struct mgr_pool *pool, const mgr_hyper *h,
                               size_t num_params, const real *theta, const real *u,
                               const real *hu, real *theta_bar, mgr_hyper_grad *hg)
{
    optim_job j = {.h = h, .n = num_params, .theta = theta, .u = (real *)u, .hu = hu,
                   .theta_bar = theta_bar};
    size_t chunks = mgr_pool_grid(num_params, &j.chunk);
    mgr_pool_for(pool, chunks, 5.0 * (double)j.chunk, reverse_post_chunk, &j);
    hg_add_parts(hg, j.part, chunks);
}
