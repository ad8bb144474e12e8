/*
 * metagrad/dataset.h - datasets: inputs [N, features...] with integer labels
 * or real targets, and optional per-example weights.  All data is copied in
 * (converted to the context's dtype); the caller's buffers are never kept.
 *
 * A dataset becomes read-only once a run uses it (setters then return
 * MGRAD_ERR_ORDER), so that a trajectory can always be replayed exactly.
 *
 * Thread safety: as the dataset's context.
 */
#ifndef METAGRAD_DATASET_H
#define METAGRAD_DATASET_H

#include "context.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mgrad_dataset mgrad_dataset;

/**
 * Create a dataset of `n` examples of shape `shape` (`ndim` = 1 to 3) from
 * row-major `inputs` of `dtype` (n * prod(shape) values).
 * @param[out] out  the dataset, owned by the caller (mgrad_dataset_destroy).
 * @return MGRAD_OK; MGRAD_ERR_NULL, MGRAD_ERR_INVALID (n < 1, bad shape),
 *         MGRAD_ERR_DTYPE, MGRAD_ERR_NONFINITE (an input is NaN or Inf),
 *         MGRAD_ERR_NOMEM.
 */
MGRAD_API mgrad_status mgrad_dataset_create(mgrad_dataset **out, mgrad_context *ctx,
                                            int64_t n, int32_t ndim,
                                            const int64_t *shape, mgrad_dtype dtype,
                                            const void *inputs);

/** Destroy the caller's handle (runs using it keep it alive).  Accepts NULL. */
MGRAD_API void mgrad_dataset_destroy(mgrad_dataset *dataset);

/**
 * Set class labels (0 <= label < num_classes) for cross-entropy.
 * @return MGRAD_OK; MGRAD_ERR_NULL, MGRAD_ERR_SIZE (n differs from the
 *         dataset's), MGRAD_ERR_INVALID (a label or num_classes out of range;
 *         the message names the first bad row), MGRAD_ERR_ORDER (in use).
 */
MGRAD_API mgrad_status mgrad_dataset_set_labels(mgrad_dataset *dataset,
                                                const int32_t *labels, int64_t n,
                                                int32_t num_classes);

/** Set real targets [n, dim] for squared error.  Statuses as set_labels. */
MGRAD_API mgrad_status mgrad_dataset_set_targets(mgrad_dataset *dataset,
                                                 mgrad_dtype dtype,
                                                 const void *targets, int64_t n,
                                                 int64_t dim);

/**
 * Set fixed per-example loss weights w [n] (default 1).  On a training set
 * they weight L_t; on a validation set they weight the output function.
 */
MGRAD_API mgrad_status mgrad_dataset_set_weights(mgrad_dataset *dataset,
                                                 mgrad_dtype dtype,
                                                 const void *weights, int64_t n);

/** Number of examples. */
MGRAD_API mgrad_status mgrad_dataset_size(const mgrad_dataset *dataset, int64_t *out);

/** Values per example (the product of the shape). */
MGRAD_API mgrad_status mgrad_dataset_features(const mgrad_dataset *dataset,
                                              int64_t *out);

#ifdef __cplusplus
}
#endif

#endif /* METAGRAD_DATASET_H */
