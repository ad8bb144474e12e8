/* optim.c - the untyped part of the optimizers: state sizes. */
#include "optim/optim.h"

#include <stdint.h>

size_t mgr_optim_state_len(mgrad_optimizer kind, size_t num_params)
{
    size_t buffers;
    switch (kind) {
    case MGRAD_OPTIMIZER_SGD: buffers = 2; break;   /* θ, m */
    case MGRAD_OPTIMIZER_ADAM:
    case MGRAD_OPTIMIZER_ADAMW: buffers = 3; break; /* θ, m, v */
    default: return 0;
    }
    /* 0 doubles as "does not fit": callers check for it. */
    if (num_params > SIZE_MAX / buffers) return 0;
    return buffers * num_params;
}

int mgr_optim_reverse_needs_grad(const mgr_hyper *h)
{
    return !(h->kind == MGRAD_OPTIMIZER_SGD && !h->nesterov);
}
