/*
 * dataset.h - the dataset object (internal view).
 *
 * Data is held in the context's dtype.  Runs retain datasets they use
 * (mgr_dataset_retain) and mark them in use, which makes them read-only so
 * that a trajectory can always be replayed exactly.
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
    void *inputs;          /* [n, features] in ctx->dtype */
    int32_t *labels;       /* [n] or NULL */
    int32_t num_classes;   /* with labels */
    void *targets;         /* [n, target_dim] in ctx->dtype, or NULL */
    int64_t target_dim;
    void *weights;         /* [n] in ctx->dtype, or NULL (all 1) */
};

void mgr_dataset_retain(mgrad_dataset *ds);
void mgr_dataset_release(mgrad_dataset *ds);

#endif
