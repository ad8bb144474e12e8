/*
 * dataset.c - datasets: inputs with labels or targets, optional weights;
 * the compact (palette) storage of inputs.
 */
#include <string.h>

#include "data/dataset.h"

static void dataset_free(mgrad_dataset *ds)
{
    mgrad_context *ctx = ds->ctx;
    mgr_free(ctx, ds->inputs);
    mgr_free(ctx, ds->codes);
    mgr_free(ctx, ds->palette);
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

void mgr_dataset_copy_row(const mgrad_dataset *ds, int64_t i, void *dst)
{
    size_t F = (size_t)ds->features, es = mgr_dtype_size(ds->ctx->dtype);
    if (ds->codes == NULL) {
        memcpy(dst, (const char *)ds->inputs + (size_t)i * F * es, F * es);
        return;
    }
    const uint8_t *code = ds->codes + (size_t)i * F;
    const unsigned char *pal = ds->palette;
    unsigned char *d = dst;
    /* Fixed-size byte copies compile to integer moves: every bit pattern
       (signed zeros, NaN payloads) comes back exactly as stored. */
    if (es == 4)
        for (size_t j = 0; j < F; j++) memcpy(d + 4 * j, pal + 4 * (size_t)code[j], 4);
    else
        for (size_t j = 0; j < F; j++) memcpy(d + 8 * j, pal + 8 * (size_t)code[j], 8);
}

void mgr_dataset_prefetch_row(const mgrad_dataset *ds, int64_t i)
{
#if defined(__GNUC__)
    size_t F = (size_t)ds->features;
    const char *p;
    size_t bytes;
    if (ds->codes != NULL) {
        p = (const char *)(ds->codes + (size_t)i * F);
        bytes = F;
    } else {
        size_t es = mgr_dtype_size(ds->ctx->dtype);
        p = (const char *)ds->inputs + (size_t)i * F * es;
        bytes = F * es;
    }
    for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(p + off, 0, 0);
    __builtin_prefetch(p + bytes - 1, 0, 0);
#else
    (void)ds;
    (void)i;
#endif
}

int64_t mgr_dataset_input_bytes(const mgrad_dataset *ds)
{
    int64_t es = (int64_t)mgr_dtype_size(ds->ctx->dtype), count = ds->n * ds->features;
    return ds->codes != NULL ? count + (int64_t)ds->palette_len * es : count * es;
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

/* ---- compact storage ----------------------------------------------------- */

/* The distinct bit patterns of a buffer, at most 256, numbered in order of
   first appearance: open addressing over 1024 slots, a quarter full at most. */
#define PALETTE_SLOTS 1024
typedef struct palette_table {
    uint64_t key[PALETTE_SLOTS];
    int16_t code[PALETTE_SLOTS]; /* -1: empty */
    uint64_t value[256];         /* the bit pattern of each code */
    int len;
} palette_table;

/* The code of `bits`, numbering it when new; -1 for a 257th pattern. */
static int palette_code(palette_table *t, uint64_t bits)
{
    size_t s = (size_t)((bits * 0x9E3779B97F4A7C15ull) >> 54); /* 10 bits */
    while (t->code[s] >= 0) {
        if (t->key[s] == bits) return t->code[s];
        s = (s + 1) & (PALETTE_SLOTS - 1);
    }
    if (t->len == 256) return -1;
    t->key[s] = bits;
    t->code[s] = (int16_t)t->len;
    t->value[t->len] = bits;
    return t->len++;
}

/* Element i of a buffer of 4- or 8-byte values, as its bit pattern. */
static uint64_t bits_at(const unsigned char *p, size_t es, size_t i)
{
    if (es == 4) {
        uint32_t u;
        memcpy(&u, p + 4 * i, 4);
        return u;
    }
    uint64_t u;
    memcpy(&u, p + 8 * i, 8);
    return u;
}

/* Number every value of x [count] into t, or return 0 at the 257th distinct
   bit pattern.  With codes non-NULL (every pattern already numbered), write
   each value's code.  Runs of one value (background pixels) skip the table. */
static int palette_scan(palette_table *t, const unsigned char *x, size_t es, size_t count,
                        uint8_t *codes)
{
    uint64_t last = bits_at(x, es, 0);
    int code = palette_code(t, last);
    for (size_t i = 0; i < count; i++) {
        uint64_t b = bits_at(x, es, i);
        if (b != last) {
            code = palette_code(t, b);
            if (code < 0) return 0;
            last = b;
        }
        if (codes != NULL) codes[i] = (uint8_t)code;
    }
    return 1;
}

mgrad_status mgrad_dataset_compact(mgrad_dataset *ds, int64_t *input_bytes)
{
    static const char fn[] = "mgrad_dataset_compact";
    if (ds == NULL) return MGRAD_ERR_NULL;
    mgrad_context *ctx = ds->ctx;
    MGRAD_FORWARD(check_settable(ds, fn));
    if (ds->codes == NULL) {
        size_t es = mgr_dtype_size(ctx->dtype), count = (size_t)(ds->n * ds->features);
        palette_table *t = NULL;
        MGRAD_FORWARD(mgr_alloc_or_fail(ctx, (void **)&t, 1, sizeof *t, "a palette table"));
        for (size_t s = 0; s < PALETTE_SLOTS; s++) t->code[s] = -1;
        if (palette_scan(t, ds->inputs, es, count, NULL)) {
            uint8_t *codes = mgr_alloc(ctx, count);
            unsigned char *palette = mgr_alloc(ctx, (size_t)t->len * es);
            if (codes == NULL || palette == NULL) {
                mgr_free(ctx, codes);
                mgr_free(ctx, palette);
                mgr_free(ctx, t);
                return mgr_error(ctx, MGRAD_ERR_NOMEM,
                                 "%s: out of memory for %zu codes; "
                                 "the dataset is unchanged",
                                 fn, count);
            }
            palette_scan(t, ds->inputs, es, count, codes);
            for (int c = 0; c < t->len; c++) {
                if (es == 4) {
                    uint32_t u = (uint32_t)t->value[c];
                    memcpy(palette + 4 * (size_t)c, &u, 4);
                } else {
                    memcpy(palette + 8 * (size_t)c, &t->value[c], 8);
                }
            }
            mgr_free(ctx, ds->inputs);
            ds->inputs = NULL;
            ds->codes = codes;
            ds->palette = palette;
            ds->palette_len = t->len;
        }
        mgr_free(ctx, t);
    }
    if (input_bytes != NULL) *input_bytes = mgr_dataset_input_bytes(ds);
    return MGRAD_OK;
}
