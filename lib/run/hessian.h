/*
 * hessian.h - Hessian-vector products of the training loss at θ_T (typed,
 * hessian.c), for the diagnostics of metagrad/smooth.h (smooth.c).
 *
 * The loss is that of the whole training set,
 *     L(θ) = (1/N) Σ_i w_i ℓ_i(θ),
 * with the set's own weights w (default 1), the current values of INPUTS
 * and SOFT_LABELS metaparameters (they define the training examples), and
 * neither DATA_WEIGHTS nor POOL_WEIGHTS (they belong to particular steps).
 * Rows are taken in order in chunks of max(B, 256), as mgrad_run_evaluate
 * does; batch norm uses each chunk's statistics and dropout is the identity.
 */
#ifndef MGRAD_RUN_HESSIAN_H
#define MGRAD_RUN_HESSIAN_H

#include "run/run_internal.h"

/* A product session: buffers and a copy of θ_T, so that the dense Hessian
   and Lanczos can apply H many times without reallocating.  Valid while the
   run's θ_T does not change (the caller does not train in between). */
typedef struct mgr_hvp_vt {
    /* Allocate a session for `run` (which must hold a θ_T). */
    mgrad_status (*create)(mgrad_run *run, void **out);
    void (*destroy)(mgrad_run *run, void *session); /* accepts NULL */
    /* hu[P] = H u; u and hu in the context's dtype, distinct buffers. */
    mgrad_status (*apply)(mgrad_run *run, void *session, const void *u, void *hu);
} mgr_hvp_vt;

extern const mgr_hvp_vt mgr_hvp_f32, mgr_hvp_f64;

static inline const mgr_hvp_vt *mgr_hvp_of(const mgrad_run *run)
{
    return run->ctx->dtype == MGRAD_DTYPE_F32 ? &mgr_hvp_f32 : &mgr_hvp_f64;
}

#endif
