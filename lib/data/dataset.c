/*
 * dataset.c - datasets: inputs with labels or targets, optional weights.
 */
#include <string.h>

#include "data/dataset.h"

static void dataset_free(mgrad_dataset *ds)
{
    mgrad_context *ctx = ds->ctx;
    mgr_free(ctx, ds->inputs);
    mgr_free(ctx, ds->labels);
    mgr_free(ctx, ds->targets);
    mgr_free(ctx, ds->weights);
    mgr_free(ctx, ds);
    mgr_context_release(ctx);
}

void mgr_dataset_retain(mgrad_dataset *ds) { ds->refs++; }

void mgr_dataset_release(mgrad_dataset *ds)
{
    if (ds != NULL && --ds->refs == 0) dataset_free(ds);
}

void mgrad_dataset_destroy(mgrad_dataset *ds)
{
    if (ds == NULL || ds->destroyed) return;
    ds->destroyed = 1;
    mgr_dataset_release(ds);
}

static mgrad_status check_dtype(mgrad_context *ctx, mgrad_dtype dtype, const char *arg)
{
    MGRAD_RETURN_IF(ctx, dtype != MGRAD_DTYPE_F32 && dtype != MGRAD_DTYPE_F64,
                    MGRAD_ERR_DTYPE, "%s: unknown dtype %d (use MGRAD_DTYPE_F32 or "
                    "MGRAD_DTYPE_F64)", arg, (int)dtype);
    return MGRAD_OK;
}

mgrad_status mgrad_dataset_create(mgrad_dataset **out, mgrad_context *ctx, int64_t n,
                                  int32_t ndim, const int64_t *shape, mgrad_dtype dtype,
                                  const void *inputs)
{
    if (ctx == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(ctx, out == NULL || shape == NULL || inputs == NULL, MGRAD_ERR_NULL,
                    "mgrad_dataset_create: out, shape and inputs must not be NULL");
    MGRAD_RETURN_IF(ctx, n < 1, MGRAD_ERR_INVALID,
                    "mgrad_dataset_create: n = %lld, need at least 1 example", (long long)n);
    MGRAD_RETURN_IF(ctx, ndim < 1 || ndim > 3, MGRAD_ERR_INVALID,
                    "mgrad_dataset_create: ndim = %d, must be 1, 2 or 3", (int)ndim);
    int64_t features = mgr_shape_product(ndim, shape);
    MGRAD_RETURN_IF(ctx, features == 0, MGRAD_ERR_INVALID,
                    "mgrad_dataset_create: every dimension of shape must be >= 1 "
                    "(and their product must fit in 64 bits)");
    MGRAD_FORWARD(check_dtype(ctx, dtype, "mgrad_dataset_create"));
    MGRAD_RETURN_IF(ctx, n > INT64_MAX / features, MGRAD_ERR_INVALID,
                    "mgrad_dataset_create: n * features overflows");
    size_t count = (size_t)(n * features);

    mgrad_dataset *ds = NULL;
    MGRAD_FORWARD(mgr_alloc_or_fail(ctx, (void **)&ds, 1, sizeof *ds, "a dataset"));
    mgrad_status s = mgr_alloc_or_fail(ctx, &ds->inputs, count, mgr_dtype_size(ctx->dtype),
                                       "dataset inputs");
    if (s != MGRAD_OK) {
        mgr_free(ctx, ds);
        return s;
    }
    int64_t bad = mgr_convert(ds->inputs, ctx->dtype, inputs, dtype, count, 1);
    if (bad >= 0) {
        mgr_free(ctx, ds->inputs);
        mgr_free(ctx, ds);
        return mgr_error(ctx, MGRAD_ERR_NONFINITE,
                         "mgrad_dataset_create: input value %lld (example %lld) is NaN or Inf",
                         (long long)bad, (long long)(bad / features));
    }
    ds->ctx = ctx;
    ds->refs = 1;
    ds->n = n;
    ds->ndim = ndim;
    for (int32_t i = 0; i < ndim; i++) ds->shape[i] = shape[i];
    ds->features = features;
    mgr_context_retain(ctx);
    *out = ds;
    return MGRAD_OK;
}

static mgrad_status check_settable(const mgrad_dataset *ds, const char *fn)
{
    MGRAD_RETURN_IF(ds->ctx, ds->refs > (ds->destroyed ? 0 : 1), MGRAD_ERR_ORDER,
                    "%s: the dataset is in use by a run and is read-only; create a new "
                    "dataset instead", fn);
    return MGRAD_OK;
}

mgrad_status mgrad_dataset_set_labels(mgrad_dataset *ds, const int32_t *labels, int64_t n,
                                      int32_t num_classes)
{
    if (ds == NULL) return MGRAD_ERR_NULL;
    mgrad_context *ctx = ds->ctx;
    MGRAD_RETURN_IF(ctx, labels == NULL, MGRAD_ERR_NULL,
                    "mgrad_dataset_set_labels: labels must not be NULL");
    MGRAD_RETURN_IF(ctx, n != ds->n, MGRAD_ERR_SIZE,
                    "mgrad_dataset_set_labels: got %lld labels for %lld examples",
                    (long long)n, (long long)ds->n);
    MGRAD_RETURN_IF(ctx, num_classes < 2, MGRAD_ERR_INVALID,
                    "mgrad_dataset_set_labels: num_classes = %d, need at least 2",
                    (int)num_classes);
    MGRAD_FORWARD(check_settable(ds, "mgrad_dataset_set_labels"));
    for (int64_t i = 0; i < n; i++)
        MGRAD_RETURN_IF(ctx, labels[i] < 0 || labels[i] >= num_classes, MGRAD_ERR_INVALID,
                        "mgrad_dataset_set_labels: label %d of example %lld is outside "
                        "[0, %d)", (int)labels[i], (long long)i, (int)num_classes);
    int32_t *copy = NULL;
    MGRAD_FORWARD(mgr_alloc_or_fail(ctx, (void **)&copy, (size_t)n, sizeof *copy, "labels"));
    memcpy(copy, labels, (size_t)n * sizeof *copy);
    mgr_free(ctx, ds->labels);
    ds->labels = copy;
    ds->num_classes = num_classes;
    return MGRAD_OK;
}

/* Copy n*dim values of dtype into a fresh buffer of the context's dtype. */
static mgrad_status copy_real(mgrad_dataset *ds, const char *fn, const char *what,
                              mgrad_dtype dtype, const void *src, int64_t n, int64_t dim,
                              void **out)
{
    mgrad_context *ctx = ds->ctx;
    MGRAD_RETURN_IF(ctx, src == NULL, MGRAD_ERR_NULL, "%s: %s must not be NULL", fn, what);
    MGRAD_FORWARD(check_dtype(ctx, dtype, fn));
    MGRAD_RETURN_IF(ctx, n != ds->n, MGRAD_ERR_SIZE, "%s: got %lld rows of %s for %lld "
                    "examples", fn, (long long)n, what, (long long)ds->n);
    MGRAD_RETURN_IF(ctx, dim < 1 || dim > INT64_MAX / n, MGRAD_ERR_INVALID,
                    "%s: dimension %lld out of range", fn, (long long)dim);
    MGRAD_FORWARD(check_settable(ds, fn));
    size_t count = (size_t)(n * dim);
    void *buf = NULL;
    MGRAD_FORWARD(mgr_alloc_or_fail(ctx, &buf, count, mgr_dtype_size(ctx->dtype), what));
    int64_t bad = mgr_convert(buf, ctx->dtype, src, dtype, count, 1);
    if (bad >= 0) {
        mgr_free(ctx, buf);
        return mgr_error(ctx, MGRAD_ERR_NONFINITE, "%s: %s value %lld (example %lld) is "
                         "NaN or Inf", fn, what, (long long)bad, (long long)(bad / dim));
    }
    *out = buf;
    return MGRAD_OK;
}

mgrad_status mgrad_dataset_set_targets(mgrad_dataset *ds, mgrad_dtype dtype,
                                       const void *targets, int64_t n, int64_t dim)
{
    if (ds == NULL) return MGRAD_ERR_NULL;
    void *buf = NULL;
    MGRAD_FORWARD(copy_real(ds, "mgrad_dataset_set_targets", "targets", dtype, targets, n,
                            dim, &buf));
    mgr_free(ds->ctx, ds->targets);
    ds->targets = buf;
    ds->target_dim = dim;
    return MGRAD_OK;
}

mgrad_status mgrad_dataset_set_weights(mgrad_dataset *ds, mgrad_dtype dtype,
                                       const void *weights, int64_t n)
{
    if (ds == NULL) return MGRAD_ERR_NULL;
    void *buf = NULL;
    MGRAD_FORWARD(copy_real(ds, "mgrad_dataset_set_weights", "weights", dtype, weights, n,
                            1, &buf));
    mgr_free(ds->ctx, ds->weights);
    ds->weights = buf;
    return MGRAD_OK;
}

mgrad_status mgrad_dataset_size(const mgrad_dataset *ds, int64_t *out)
{
    if (ds == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(ds->ctx, out == NULL, MGRAD_ERR_NULL,
                    "mgrad_dataset_size: out must not be NULL");
    *out = ds->n;
    return MGRAD_OK;
}

mgrad_status mgrad_dataset_features(const mgrad_dataset *ds, int64_t *out)
{
    if (ds == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(ds->ctx, out == NULL, MGRAD_ERR_NULL,
                    "mgrad_dataset_features: out must not be NULL");
    *out = ds->features;
    return MGRAD_OK;
}
