/*
 * optim_impl.h - private to lib/optim: the per-optimizer functions that
 * optim_typed.c dispatches to by mgr_hyper.kind.  Their contracts are those
 * of the R(mgr_optim_*) functions in optim.h, on `count` elements of a
 * state whose buffers (θ, m, v) lie `stride` elements apart: optim_typed.c
 * runs them on the chunks of the fixed grid of base/pool.h, each chunk's
 * hyperparameter adjoints in its own mgr_hyper_grad (starting at 0).
 */
#ifndef MGRAD_OPTIM_IMPL_H
#define MGRAD_OPTIM_IMPL_H

#include "kernels/kernels.h"
#include "optim/optim.h"

void R(mgr_sgd_step)(const mgr_hyper *h, size_t stride, size_t count, real *state,
                     const real *grad);
void R(mgr_sgd_reverse_pre)(const mgr_hyper *h, size_t stride, size_t count,
                            const real *state, const real *grad, const real *next_m,
                            real *state_bar, real *u, mgr_hyper_grad *hg);

/* Adam and AdamW (h->kind says which). */
void R(mgr_adam_step)(const mgr_hyper *h, int64_t t, size_t stride, size_t count,
                      real *state, const real *grad);
void R(mgr_adam_reverse_pre)(const mgr_hyper *h, int64_t t, size_t stride, size_t count,
                             const real *state, const real *grad, real *state_bar,
                             real *u, mgr_hyper_grad *hg);

#endif /* MGRAD_OPTIM_IMPL_H */
