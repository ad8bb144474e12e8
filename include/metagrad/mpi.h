/*
 * metagrad/mpi.h - data-parallel runs over MPI ranks (docs/scale-out.md).
 *
 * A run given a communicator of P ranks computes, on each rank, its
 * contiguous share of every chunk of rows (rows [r·n/P, (r+1)·n/P) of the
 * batch of every step, of every pool chunk and validation chunk); the
 * global batch order is unchanged.  Gradients, Hessian-vector products,
 * losses and the gradient of the output function are summed over the ranks
 * in a fixed order (a binomial tree rooted at rank 0, then a broadcast), so
 *   - repeated runs on the same number of ranks are bit-identical;
 *   - on P = 1 the results are bit-identical to a run without communicator;
 *   - on P > 1 they agree with the single-process run to rounding (the
 *     partial sums change the association; about 1e-14 relative in f64).
 * θ_T, φ and the metagradients of the global metaparameters (LR_SCHEDULE,
 * WEIGHT_DECAY, MOMENTUM, BETA2, INITIAL_PARAMS) are identical on every
 * rank.  The per-example ones (DATA_WEIGHTS, POOL_WEIGHTS, INPUTS,
 * SOFT_LABELS) keep on each rank the contributions of the examples that
 * rank computed: mgrad_meta_get_grad returns that rank's part, and
 * mgrad_meta_gather_grad their sum.
 *
 * Rules for the caller:
 *   - Every rank creates the run with the same model, data, options and
 *     metaparameters, sets the same metaparameter values, and makes the same
 *     sequence of calls.  mgrad_run_train, mgrad_run_reverse,
 *     mgrad_run_evaluate, mgrad_run_example_losses, mgrad_meta_gather_grad
 *     and mgrad_run_set_communicator are then collective: every rank of the
 *     communicator must call them.  Other calls are local (mgrad_run_hvp and
 *     the diagnostics of metagrad/smooth.h compute the whole product on each
 *     rank).
 *   - A failure on one rank (a callback error, a spill-file error, NaN) is
 *     reported on every rank with the same status; the other ranks' message
 *     names the failing rank and repeats its message.  No rank hangs.
 *   - Destroy the run before MPI_Finalize (it frees its duplicate of the
 *     communicator).
 *   - Models that couple the rows of a batch (batch norm) are refused on
 *     more than one rank.  Callback models must give losses that are sums
 *     over rows, as metagrad/callback.h requires.
 *
 * This header does not need <mpi.h>: communicators are passed by address
 * (a `const MPI_Comm *`) or as a Fortran handle (MPI_Comm_c2f, mpi4py's
 * `comm.py2f()`).  A library built without MPI (Meson option -Dmpi) answers
 * MGRAD_ERR_UNSUPPORTED to mgrad_run_set_communicator*.
 * Thread safety: as the run's context.
 */
#ifndef METAGRAD_MPI_H
#define METAGRAD_MPI_H

#include "meta.h"
#include "run.h"

#ifdef __cplusplus
extern "C" {
#endif

/** 1 when this library was built with MPI, else 0. */
MGRAD_API int32_t mgrad_mpi_available(void);

/**
 * Make `run` data-parallel over the ranks of a communicator.  Collective
 * over that communicator; the run keeps its own duplicate (MPI_Comm_dup),
 * so the caller may free theirs.  The ranks check that their runs agree
 * (sizes, steps, batch, dtype, metaparameter kinds); the trajectory is
 * invalidated (train again).
 * @param mpi_comm  address of an MPI_Comm (`&comm`); NULL detaches the run
 *                  (local call), making it a single-process run again.
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_UNSUPPORTED (built without MPI,
 *         MPI not initialised, a batch-norm model on more than one rank);
 *         MGRAD_ERR_INVALID (the runs of the ranks differ; reported on every
 *         rank); MGRAD_ERR_NOMEM.
 */
MGRAD_API mgrad_status mgrad_run_set_communicator(mgrad_run *run, const void *mpi_comm);

/** As mgrad_run_set_communicator, with a Fortran handle (MPI_Comm_c2f). */
MGRAD_API mgrad_status mgrad_run_set_communicator_fortran(mgrad_run *run,
                                                          int64_t fortran_handle);

#define MGRAD_MPI_INFO_VERSION 1

/** The run's place in its communicator and what it sent. */
typedef struct mgrad_mpi_info {
    uint32_t version;      /**< MGRAD_MPI_INFO_VERSION */
    int32_t rank;          /**< this rank (0 without a communicator) */
    int32_t size;          /**< ranks (1 without a communicator) */
    int64_t reductions;    /**< fixed-order reductions since the communicator was set */
    uint64_t bytes_sent;   /**< payload bytes this rank sent in them */
    uint64_t bytes_reduced; /**< Σ over reductions of the vector's bytes */
    double seconds;        /**< wall-clock this rank spent in them (waiting included) */
} mgrad_mpi_info;

#define MGRAD_MPI_INFO_INIT { MGRAD_MPI_INFO_VERSION, 0, 1, 0, 0, 0, 0.0 }

/** Fill `out` (set its version).  MGRAD_ERR_NULL, MGRAD_ERR_VERSION.  Local. */
MGRAD_API mgrad_status mgrad_run_mpi_info(const mgrad_run *run, mgrad_mpi_info *out);

/**
 * dφ/dz summed over the ranks (fixed order: bit-identical across repeated
 * runs), converted to dtype.  Collective over the run's communicator.  For
 * the global kinds, which are identical on every rank, it is the local copy.
 * Without a communicator it equals mgrad_meta_get_grad.
 * @param root  the rank that receives the sum, or -1 for every rank; on
 *              other ranks `out` is not written (may be NULL).
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_DTYPE; MGRAD_ERR_SIZE;
 *         MGRAD_ERR_INVALID (root out of range); MGRAD_ERR_ORDER (no
 *         reverse pass yet); MGRAD_ERR_NOMEM.
 */
MGRAD_API mgrad_status mgrad_meta_gather_grad(const mgrad_meta *meta, int32_t root,
                                              mgrad_dtype dtype, void *out, int64_t count);

#ifdef __cplusplus
}
#endif

#endif /* METAGRAD_MPI_H */
