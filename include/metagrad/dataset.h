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

/**
 * The shape of one example.
 * @param[out] ndim   1 to 3.
 * @param[out] shape  ndim dimensions; room for 3.  Entries past ndim are set to 1.
 * @return MGRAD_OK; MGRAD_ERR_NULL.
 */
MGRAD_API mgrad_status mgrad_dataset_shape(const mgrad_dataset *dataset, int32_t *ndim,
                                           int64_t *shape);

/**
 * The number of classes, 0 when the dataset has no labels.
 * @return MGRAD_OK; MGRAD_ERR_NULL.
 */
MGRAD_API mgrad_status mgrad_dataset_num_classes(const mgrad_dataset *dataset,
                                                 int32_t *out);

/**
 * Copy all inputs ([size, features], row-major) into the caller's buffer,
 * converted to `dtype`.
 * @param[out] out  room for `count` values.
 * @param count     size * features.
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_DTYPE; MGRAD_ERR_SIZE (count).
 */
MGRAD_API mgrad_status mgrad_dataset_get_inputs(const mgrad_dataset *dataset,
                                                mgrad_dtype dtype, void *out,
                                                int64_t count);

/**
 * Copy the labels into the caller's buffer.
 * @param[out] out  room for n labels.
 * @param n         the dataset's size.
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_SIZE (n); MGRAD_ERR_ORDER (the
 *         dataset has no labels).
 */
MGRAD_API mgrad_status mgrad_dataset_get_labels(const mgrad_dataset *dataset,
                                                int32_t *out, int64_t n);

/**
 * Store the inputs compactly when they take at most 256 distinct values
 * (compared bit for bit in the context's dtype, so -0.0 and 0.0 differ):
 * one byte per value indexing a palette of those values.  Exact: every
 * value read back, by runs and by mgrad_dataset_get_inputs, is the value
 * stored before, bit for bit, so training and metagradients are unchanged.
 * Fashion-MNIST's training inputs drop from 188 MB (f32) to 47 MB.  With
 * more distinct values the dataset is left as it is (not an error).  One
 * pass over the inputs, a second to encode; the dense copy is freed after.
 * The IDX and Fashion-MNIST loaders already store byte images compactly;
 * normalisation, scaling, splits and subsets keep a dataset compact where
 * that is exact (mgrad_dataset_normalize per feature or per channel makes it
 * dense again).  Calling it on a compact dataset does nothing.
 * @param[out] input_bytes  may be NULL: the bytes the inputs now occupy
 *                          (codes and palette, or the dense array).
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_ORDER (in use by a run);
 *         MGRAD_ERR_NOMEM (the dataset is unchanged).
 */
MGRAD_API mgrad_status mgrad_dataset_compact(mgrad_dataset *dataset, int64_t *input_bytes);

/* ---- token datasets -------------------------------------------------------
 *
 * A token dataset's examples are sequences of `length` = L + 1 integer ids
 * in [0, vocab), held as its inputs (shape {length}) exactly in the
 * context's dtype.  A sequence model reads the first L ids and its loss
 * (MGRAD_LOSS_NEXT_TOKEN) predicts the id at position p + 1 from position
 * p, so the labels come from the sequence itself: a token dataset needs
 * none.  Weights (mgrad_dataset_set_weights) weight whole sequences, as any
 * example.  Subsets and splits are token datasets with the same
 * vocabulary; mgrad_dataset_normalize and mgrad_dataset_scale refuse them
 * (MGRAD_ERR_INVALID), since scaled ids are no longer ids.
 */

/**
 * Create a token dataset of `n` sequences of `length` ids each.  Every id is
 * checked to lie in [0, vocab) before anything is stored.  With vocab <= 256
 * (a byte-level vocabulary) the ids are stored compactly, one byte per token
 * (a palette of the values 0..vocab-1, see mgrad_dataset_compact), so
 * reading them back, by runs or mgrad_dataset_get_inputs, gives exactly
 * (real)id; larger vocabularies are stored densely, also exactly.
 * @param[out] out  the dataset, owned by the caller (mgrad_dataset_destroy).
 * @param n         sequences, >= 1.
 * @param length    ids per sequence (L + 1), >= 2.
 * @param tokens    n * length ids, row-major (sequence after sequence);
 *                  copied in.
 * @param vocab     the vocabulary size: 2 to 2^24 in an f32 context (the
 *                  integers f32 holds exactly), 2 to INT32_MAX in f64.
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_INVALID (n, length or vocab
 *         out of range; an id outside [0, vocab): the message names its
 *         example, position and value); MGRAD_ERR_NOMEM.  On failure *out
 *         is untouched.
 */
MGRAD_API mgrad_status mgrad_dataset_create_tokens(mgrad_dataset **out, mgrad_context *ctx,
                                                   int64_t n, int64_t length,
                                                   const int32_t *tokens, int32_t vocab);

/**
 * The vocabulary of a token dataset, 0 for any other dataset (so that a run
 * can check a sequence model's vocabulary against its data).
 * @return MGRAD_OK; MGRAD_ERR_NULL.
 */
MGRAD_API mgrad_status mgrad_dataset_vocab(const mgrad_dataset *dataset, int32_t *out);

/**
 * Copy the ids of a token dataset ([size, length], row-major) into the
 * caller's buffer.
 * @param[out] out  room for `count` ids.
 * @param count     size * length.
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_ORDER (not a token dataset);
 *         MGRAD_ERR_SIZE (count).
 */
MGRAD_API mgrad_status mgrad_dataset_get_tokens(const mgrad_dataset *dataset, int32_t *out,
                                                int64_t count);

#ifdef __cplusplus
}
#endif

#endif /* METAGRAD_DATASET_H */
