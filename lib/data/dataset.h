/*
 * dataset.h - the dataset object (internal view).
 *
 * Data is held in the context's dtype.  Runs retain datasets they use
 * (mgr_dataset_retain) and mark them in use, which makes them read-only so
 * that a trajectory can always be replayed exactly.
 *
 * Inputs are stored one of two ways (mgrad_dataset_compact):
 *   dense    inputs [n, features] in ctx->dtype; codes and palette NULL,
 *            palette_len 0;
 *   compact  inputs NULL; codes [n, features] index palette [palette_len]
 *            (1 to 256 values in ctx->dtype): value i is palette[codes[i]],
 *            bit for bit.  Every code is < palette_len; palette values need
 *            not be distinct nor all used (the IDX loader indexes by the
 *            file's byte).
 * Outside lib/data, read inputs only through mgr_dataset_copy_row.
 *
 * A token dataset (mgrad_dataset_create_tokens, the text loader) has vocab
 * >= 2: every input is an integer id in [0, vocab), held exactly in the
 * context's dtype (compact with the identity palette 0..vocab-1 when vocab
 * <= 256).  Transforms that would change the values refuse it; subsets and
 * splits keep vocab.  Other datasets have vocab 0.
 */
#ifndef MGRAD_DATASET_INTERNAL_H
#define MGRAD_DATASET_INTERNAL_H

#include "base/base.h"
#include "metagrad/dataset.h"

struct mgrad_dataset {
    mgrad_context *ctx;
    int refs;              /* caller's handle + runs */
    int destroyed;         /* caller called mgrad_dataset_destroy */
    int64_t n;
    int32_t ndim;
    int64_t shape[3];
    int64_t features;      /* product of shape */
    void *inputs;          /* dense: [n, features] in ctx->dtype; else NULL */
    uint8_t *codes;        /* compact: [n, features] palette indices; else NULL */
    void *palette;         /* compact: [palette_len] in ctx->dtype; else NULL */
    int32_t palette_len;   /* compact: 1 to 256; dense: 0 */
    int32_t *labels;       /* [n] or NULL */
    int32_t num_classes;   /* with labels */
    void *targets;         /* [n, target_dim] in ctx->dtype, or NULL */
    int64_t target_dim;
    void *weights;         /* [n] in ctx->dtype, or NULL (all 1) */
    int32_t vocab;         /* token dataset: ids are in [0, vocab); else 0 */
};

void mgr_dataset_retain(mgrad_dataset *ds);
void mgr_dataset_release(mgrad_dataset *ds);

/* Write input row i ([features] values in ctx->dtype) to dst, bit for bit:
   a copy when dense, a palette lookup when compact. */
void mgr_dataset_copy_row(const mgrad_dataset *ds, int64_t i, void *dst);

/* Ask the cache for input row i ahead of mgr_dataset_copy_row: batches
   read rows scattered over the set, and a row's first lines would
   otherwise each wait for memory. */
void mgr_dataset_prefetch_row(const mgrad_dataset *ds, int64_t i);

/* Bytes the inputs occupy: n * features * dtype size when dense, n *
   features + palette_len * dtype size when compact. */
int64_t mgr_dataset_input_bytes(const mgrad_dataset *ds);

#endif
