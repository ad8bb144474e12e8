/*
 * transform.c - normalisation, splits and subsets of datasets, and reading
 * a dataset's contents back.
 */
#include <string.h>

#include "base/rng.h"
#include "data/io.h"
#include "metagrad/data.h"

static mgrad_status check_writable(const mgrad_dataset *ds, const char *fn)
{
    MGRAD_RETURN_IF(ds->ctx, ds->refs > (ds->destroyed ? 0 : 1), MGRAD_ERR_ORDER,
                    "%s: the dataset is in use by a run and is read-only; create a new "
                    "dataset instead", fn);
    return MGRAD_OK;
}

/* Token ids are what the model embeds: scaling them would make them
   something else, so the value transforms refuse a token dataset. */
static mgrad_status check_not_tokens(const mgrad_dataset *ds, const char *fn)
{
    MGRAD_RETURN_IF(ds->ctx, ds->vocab > 0, MGRAD_ERR_INVALID,
                    "%s: the dataset holds token ids (vocabulary %d), which must stay "
                    "integers; it is unchanged", fn, (int)ds->vocab);
    return MGRAD_OK;
}

/* Input value i (row-major), dense or compact. */
static double input_value(const mgrad_dataset *ds, size_t i)
{
    mgrad_dtype dt = ds->ctx->dtype;
    return ds->codes != NULL ? mgr_get_real(ds->palette, dt, ds->codes[i])
                             : mgr_get_real(ds->inputs, dt, i);
}

/* What a transform does to an input value x of feature group g:
   (x - shift[g]) * mul[g], or scale * x + offset when shift is NULL. */
typedef struct value_map {
    const double *shift, *mul;
    double scale, offset;
    int64_t group_size, groups; /* g = (feature / group_size) % groups */
} value_map;

static double map_value(const value_map *m, int64_t g, double x)
{
    return m->shift != NULL ? (x - m->shift[g]) * m->mul[g] : m->scale * x + m->offset;
}

static mgrad_status not_finite(mgrad_dataset *ds, const char *fn, size_t i, double v)
{
    return mgr_error(ds->ctx, MGRAD_ERR_NONFINITE,
                     "%s: value %zu (example %lld) becomes "
                     "%g, not finite in %s; the dataset is unchanged",
                     fn, i, (long long)(i / (size_t)ds->features), v,
                     mgr_dtype_name(ds->ctx->dtype));
}

/* A map that is the same for every feature, applied to the palette of a
   compact dataset: each input then holds the bits the same map gives on
   the dense inputs, since it is a function of the value alone. */
static mgrad_status map_palette(mgrad_dataset *ds, const char *fn, const value_map *m)
{
    mgrad_context *ctx = ds->ctx;
    size_t len = (size_t)ds->palette_len;
    void *pal = mgr_alloc(ctx, len * mgr_dtype_size(ctx->dtype));
    MGRAD_RETURN_IF(ctx, pal == NULL, MGRAD_ERR_NOMEM, "%s: out of memory for a palette", fn);
    unsigned char bad[256] = {0};
    int any_bad = 0;
    for (size_t c = 0; c < len; c++) {
        double v = map_value(m, 0, mgr_get_real(ds->palette, ctx->dtype, c));
        if (!mgr_put_real(pal, ctx->dtype, c, v)) bad[c] = any_bad = 1;
    }
    if (any_bad) {
        /* An error only where an input holds that value: loaders keep
           palette entries no input uses. */
        size_t count = (size_t)(ds->n * ds->features);
        for (size_t i = 0; i < count; i++) {
            if (bad[ds->codes[i]]) {
                mgr_free(ctx, pal);
                return not_finite(ds, fn, i, map_value(m, 0, input_value(ds, i)));
            }
        }
        for (size_t c = 0; c < len; c++)
            if (bad[c]) mgr_put_real(pal, ctx->dtype, c, 0.0);
    }
    mgr_free(ctx, ds->palette);
    ds->palette = pal;
    return MGRAD_OK;
}

/* Apply m to every input value, into a new buffer swapped in only when
   every result is finite.  A compact dataset stays compact when m is the
   same for every feature, and becomes dense otherwise. */
static mgrad_status map_inputs(mgrad_dataset *ds, const char *fn, const value_map *m)
{
    if (ds->codes != NULL && m->groups == 1) return map_palette(ds, fn, m);
    mgrad_context *ctx = ds->ctx;
    size_t count = (size_t)(ds->n * ds->features);
    void *buf = mgr_alloc(ctx, count * mgr_dtype_size(ctx->dtype));
    MGRAD_RETURN_IF(ctx, buf == NULL, MGRAD_ERR_NOMEM,
                    "%s: out of memory for %zu values", fn, count);
    for (size_t i = 0; i < count; i++) {
        int64_t g = ((int64_t)(i % (size_t)ds->features) / m->group_size) % m->groups;
        double v = map_value(m, g, input_value(ds, i));
        if (!mgr_put_real(buf, ctx->dtype, i, v)) {
            mgr_free(ctx, buf);
            return not_finite(ds, fn, i, v);
        }
    }
    mgr_free(ctx, ds->inputs);
    mgr_free(ctx, ds->codes);
    mgr_free(ctx, ds->palette);
    ds->inputs = buf;
    ds->codes = NULL;
    ds->palette = NULL;
    ds->palette_len = 0;
    return MGRAD_OK;
}

mgrad_status mgrad_dataset_scale(mgrad_dataset *ds, double scale, double offset)
{
    static const char fn[] = "mgrad_dataset_scale";
    if (ds == NULL) return MGRAD_ERR_NULL;
    MGRAD_FORWARD(check_not_tokens(ds, fn));
    MGRAD_RETURN_IF(ds->ctx, !isfinite(scale) || !isfinite(offset), MGRAD_ERR_INVALID,
                    "%s: scale (%g) and offset (%g) must be finite", fn, scale, offset);
    MGRAD_FORWARD(check_writable(ds, fn));
    value_map m = {NULL, NULL, scale, offset, ds->features, 1};
    return map_inputs(ds, fn, &m);
}

mgrad_status mgrad_dataset_normalize(mgrad_dataset *ds, const mgrad_dataset *ref,
                                     mgrad_normalize mode)
{
    static const char fn[] = "mgrad_dataset_normalize";
    if (ds == NULL) return MGRAD_ERR_NULL;
    mgrad_context *ctx = ds->ctx;
    MGRAD_FORWARD(check_not_tokens(ds, fn));
    if (ref == NULL) ref = ds;
    MGRAD_RETURN_IF(ctx, ref->ctx != ctx, MGRAD_ERR_INVALID,
                    "%s: reference belongs to another context", fn);
    int same = ref->ndim == ds->ndim;
    for (int32_t i = 0; same && i < ds->ndim; i++) same = ref->shape[i] == ds->shape[i];
    MGRAD_RETURN_IF(ctx, !same, MGRAD_ERR_SHAPE,
                    "%s: reference examples have another shape", fn);
    int64_t groups, group_size;
    switch (mode) {
    case MGRAD_NORMALIZE_GLOBAL: groups = 1; group_size = ds->features; break;
    case MGRAD_NORMALIZE_PER_FEATURE: groups = ds->features; group_size = 1; break;
    case MGRAD_NORMALIZE_PER_CHANNEL:
        groups = ds->shape[0];
        group_size = ds->features / ds->shape[0];
        break;
    default:
        return mgr_error(ctx, MGRAD_ERR_INVALID, "%s: unknown mode %d", fn, (int)mode);
    }
    MGRAD_FORWARD(check_writable(ds, fn));
    double *stats = NULL;
    MGRAD_FORWARD(mgr_alloc_or_fail(ctx, (void **)&stats, (size_t)groups * 2,
                                    sizeof *stats, "normalisation statistics"));
    double *mean = stats, *mul = stats + groups;
    size_t count = (size_t)(ref->n * ref->features);
    /* Two passes (mean, then squared deviations) for accuracy, over every
       value in index order, compact or not: the same sums either way. */
    for (size_t i = 0; i < count; i++)
        mean[(i % (size_t)ref->features) / (size_t)group_size] += input_value(ref, i);
    double per_group = (double)count / (double)groups;
    for (int64_t g = 0; g < groups; g++) mean[g] /= per_group;
    for (size_t i = 0; i < count; i++) {
        size_t g = (i % (size_t)ref->features) / (size_t)group_size;
        double d = input_value(ref, i) - mean[g];
        mul[g] += d * d;
    }
    for (int64_t g = 0; g < groups; g++) {
        double sd = sqrt(mul[g] / per_group);
        /* A constant group: rounding leaves a tiny sd; centre it only. */
        mul[g] = sd > 1e-10 * fabs(mean[g]) && sd > 0 ? 1.0 / sd : 1.0;
    }
    value_map m = {mean, mul, 0, 0, group_size, groups};
    mgrad_status s = map_inputs(ds, fn, &m);
    mgr_free(ctx, stats);
    return s;
}

/* A new dataset of `rows` of ds, in order; compact when ds is, with a copy
   of its palette. */
static mgrad_status copy_rows(const mgrad_dataset *ds, const char *fn, const int64_t *rows,
                              int64_t n, mgrad_dataset **out)
{
    mgrad_context *ctx = ds->ctx;
    mgrad_dataset *c = NULL;
    size_t esize = mgr_dtype_size(ctx->dtype), F = (size_t)ds->features;
    if (ds->codes != NULL) {
        MGRAD_FORWARD(mgr_dataset_alloc_compact(ctx, fn, n, ds->ndim, ds->shape,
                                                ds->labels != NULL, ds->palette_len, &c));
        memcpy(c->palette, ds->palette, (size_t)ds->palette_len * esize);
    } else {
        MGRAD_FORWARD(
            mgr_dataset_alloc(ctx, fn, n, ds->ndim, ds->shape, ds->labels != NULL, &c));
    }
    if (ds->targets != NULL)
        c->targets = mgr_alloc(ctx, (size_t)n * (size_t)ds->target_dim * esize);
    if (ds->weights != NULL) c->weights = mgr_alloc(ctx, (size_t)n * esize);
    if ((ds->targets != NULL && c->targets == NULL) ||
        (ds->weights != NULL && c->weights == NULL)) {
        mgrad_dataset_destroy(c);
        return mgr_error(ctx, MGRAD_ERR_NOMEM, "%s: out of memory copying %lld rows", fn,
                         (long long)n);
    }
    size_t tbytes = (size_t)ds->target_dim * esize;
    for (int64_t i = 0; i < n; i++) {
        int64_t r = rows[i];
        if (ds->codes != NULL)
            memcpy(c->codes + (size_t)i * F, ds->codes + (size_t)r * F, F);
        else
            mgr_dataset_copy_row(ds, r, (char *)c->inputs + (size_t)i * F * esize);
        if (ds->labels != NULL) c->labels[i] = ds->labels[r];
        if (ds->targets != NULL)
            memcpy((char *)c->targets + (size_t)i * tbytes,
                   (const char *)ds->targets + (size_t)r * tbytes, tbytes);
        if (ds->weights != NULL)
            memcpy((char *)c->weights + (size_t)i * esize,
                   (const char *)ds->weights + (size_t)r * esize, esize);
    }
    c->num_classes = ds->num_classes;
    c->target_dim = ds->target_dim;
    c->vocab = ds->vocab;
    *out = c;
    return MGRAD_OK;
}

mgrad_status mgrad_dataset_subset(mgrad_dataset **out, const mgrad_dataset *ds,
                                  const int64_t *rows, int64_t n)
{
    static const char fn[] = "mgrad_dataset_subset";
    if (ds == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(ds->ctx, out == NULL || rows == NULL, MGRAD_ERR_NULL,
                    "%s: out and rows must not be NULL", fn);
    MGRAD_RETURN_IF(ds->ctx, n < 1, MGRAD_ERR_INVALID, "%s: n = %lld, need at least 1",
                    fn, (long long)n);
    for (int64_t i = 0; i < n; i++)
        MGRAD_RETURN_IF(ds->ctx, rows[i] < 0 || rows[i] >= ds->n, MGRAD_ERR_INVALID,
                        "%s: rows[%lld] = %lld is outside [0, %lld)", fn, (long long)i,
                        (long long)rows[i], (long long)ds->n);
    return copy_rows(ds, fn, rows, n, out);
}

mgrad_status mgrad_dataset_split(mgrad_dataset **first, mgrad_dataset **second,
                                 const mgrad_dataset *ds, int64_t n_first, uint64_t seed)
{
    static const char fn[] = "mgrad_dataset_split";
    if (ds == NULL) return MGRAD_ERR_NULL;
    mgrad_context *ctx = ds->ctx;
    MGRAD_RETURN_IF(ctx, first == NULL || second == NULL || first == second,
                    MGRAD_ERR_NULL, "%s: first and second must be distinct non-NULL "
                    "pointers", fn);
    MGRAD_RETURN_IF(ctx, n_first < 1 || n_first > ds->n - 1, MGRAD_ERR_INVALID,
                    "%s: n_first = %lld; need 1 <= n_first <= %lld (size - 1)", fn,
                    (long long)n_first, (long long)ds->n - 1);
    int64_t *perm = NULL, *rows = NULL;
    MGRAD_FORWARD(mgr_alloc_or_fail(ctx, (void **)&perm, (size_t)ds->n, sizeof *perm,
                                    "a permutation"));
    mgrad_status s = mgr_alloc_or_fail(ctx, (void **)&rows, (size_t)ds->n, sizeof *rows,
                                       "row indices");
    mgrad_dataset *a = NULL, *b = NULL;
    if (s != MGRAD_OK) goto done;
    /* Fisher-Yates over a counter-based stream: pure function of the seed. */
    for (int64_t i = 0; i < ds->n; i++) perm[i] = i;
    for (int64_t i = ds->n - 1; i > 0; i--) {
        int64_t j = (int64_t)mgr_rng_below(seed, MGR_STREAM_USER, (uint64_t)i,
                                           (uint64_t)i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    /* Mark the first n_first, then list each part in the original order. */
    for (int64_t i = 0; i < ds->n; i++) rows[i] = 0;
    for (int64_t i = 0; i < n_first; i++) rows[perm[i]] = 1;
    int64_t na = 0, nb = n_first;
    for (int64_t i = 0; i < ds->n; i++) {
        if (rows[i]) perm[na++] = i;
        else perm[nb++] = i;
    }
    if ((s = copy_rows(ds, fn, perm, n_first, &a)) != MGRAD_OK) goto done;
    if ((s = copy_rows(ds, fn, perm + n_first, ds->n - n_first, &b)) != MGRAD_OK) goto done;
done:
    mgr_free(ctx, perm);
    mgr_free(ctx, rows);
    if (s != MGRAD_OK) {
        mgrad_dataset_destroy(a);
        return s;
    }
    *first = a;
    *second = b;
    return MGRAD_OK;
}

mgrad_status mgrad_dataset_shape(const mgrad_dataset *ds, int32_t *ndim, int64_t *shape)
{
    if (ds == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(ds->ctx, ndim == NULL || shape == NULL, MGRAD_ERR_NULL,
                    "mgrad_dataset_shape: ndim and shape must not be NULL");
    *ndim = ds->ndim;
    for (int32_t i = 0; i < 3; i++) shape[i] = i < ds->ndim ? ds->shape[i] : 1;
    return MGRAD_OK;
}

mgrad_status mgrad_dataset_num_classes(const mgrad_dataset *ds, int32_t *out)
{
    if (ds == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(ds->ctx, out == NULL, MGRAD_ERR_NULL,
                    "mgrad_dataset_num_classes: out must not be NULL");
    *out = ds->labels != NULL ? ds->num_classes : 0;
    return MGRAD_OK;
}

mgrad_status mgrad_dataset_get_inputs(const mgrad_dataset *ds, mgrad_dtype dtype,
                                      void *out, int64_t count)
{
    static const char fn[] = "mgrad_dataset_get_inputs";
    if (ds == NULL) return MGRAD_ERR_NULL;
    mgrad_context *ctx = ds->ctx;
    MGRAD_RETURN_IF(ctx, out == NULL, MGRAD_ERR_NULL, "%s: out must not be NULL", fn);
    MGRAD_RETURN_IF(ctx, dtype != MGRAD_DTYPE_F32 && dtype != MGRAD_DTYPE_F64,
                    MGRAD_ERR_DTYPE, "%s: unknown dtype %d", fn, (int)dtype);
    MGRAD_RETURN_IF(ctx, count != ds->n * ds->features, MGRAD_ERR_SIZE,
                    "%s: count = %lld but the dataset holds %lld values", fn,
                    (long long)count, (long long)(ds->n * ds->features));
    if (ds->codes == NULL) {
        mgr_convert(out, dtype, ds->inputs, ctx->dtype, (size_t)count, 0);
        return MGRAD_OK;
    }
    /* Convert the palette, then look each value up: the same conversion of
       the same bits as on dense inputs. */
    unsigned char pal[256 * sizeof(double)];
    size_t es = mgr_dtype_size(dtype);
    mgr_convert(pal, dtype, ds->palette, ctx->dtype, (size_t)ds->palette_len, 0);
    unsigned char *o = out;
    for (size_t i = 0; i < (size_t)count; i++)
        memcpy(o + i * es, pal + (size_t)ds->codes[i] * es, es);
    return MGRAD_OK;
}

mgrad_status mgrad_dataset_get_labels(const mgrad_dataset *ds, int32_t *out, int64_t n)
{
    static const char fn[] = "mgrad_dataset_get_labels";
    if (ds == NULL) return MGRAD_ERR_NULL;
    mgrad_context *ctx = ds->ctx;
    MGRAD_RETURN_IF(ctx, out == NULL, MGRAD_ERR_NULL, "%s: out must not be NULL", fn);
    MGRAD_RETURN_IF(ctx, ds->labels == NULL, MGRAD_ERR_ORDER, "%s: the dataset has no "
                    "labels", fn);
    MGRAD_RETURN_IF(ctx, n != ds->n, MGRAD_ERR_SIZE, "%s: n = %lld but the dataset holds "
                    "%lld examples", fn, (long long)n, (long long)ds->n);
    memcpy(out, ds->labels, (size_t)n * sizeof *out);
    return MGRAD_OK;
}
