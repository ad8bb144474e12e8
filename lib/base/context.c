/*
 * context.c - the context object, options, reference counting, dtype and
 * shape helpers.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "base/pool.h"
#include "mgrad_config.h"

mgrad_status mgrad_context_options_init(mgrad_context_options *opts, uint32_t version)
{
    if (opts == NULL) return MGRAD_ERR_NULL;
    if (version != MGRAD_CONTEXT_OPTIONS_VERSION) return MGRAD_ERR_VERSION;
    mgrad_context_options d = MGRAD_CONTEXT_OPTIONS_INIT;
    *opts = d;
    return MGRAD_OK;
}

mgrad_status mgrad_context_create(mgrad_context **out, const mgrad_context_options *opts)
{
    mgrad_context_options o = MGRAD_CONTEXT_OPTIONS_INIT;
    if (out == NULL) return MGRAD_ERR_NULL;
    if (opts != NULL) {
        if (opts->version != MGRAD_CONTEXT_OPTIONS_VERSION) return MGRAD_ERR_VERSION;
        o = *opts;
    }
    if (o.dtype != MGRAD_DTYPE_F32 && o.dtype != MGRAD_DTYPE_F64) return MGRAD_ERR_DTYPE;
    if (o.threads < 0 || o.threads > 256) return MGRAD_ERR_INVALID; /* pool.c: REG_COUNT */
    if ((o.malloc_fn == NULL) != (o.free_fn == NULL)) return MGRAD_ERR_INVALID;
    if (o.log_level < MGRAD_LOG_DEBUG || o.log_level > MGRAD_LOG_ERROR)
        return MGRAD_ERR_INVALID;

    size_t bytes = sizeof(mgrad_context);
    mgrad_context *ctx = o.malloc_fn != NULL ? o.malloc_fn(bytes, o.alloc_user_data)
                                             : malloc(bytes);
    if (ctx == NULL) return MGRAD_ERR_NOMEM;
    memset(ctx, 0, sizeof *ctx);
    ctx->refs = 1;
    ctx->dtype = o.dtype;
    ctx->threads = o.threads;
    ctx->seed = o.seed;
    ctx->malloc_fn = o.malloc_fn;
    ctx->free_fn = o.free_fn;
    ctx->alloc_user_data = o.alloc_user_data;
    ctx->log_fn = o.log_fn;
    ctx->log_user_data = o.log_user_data;
    ctx->log_level = o.log_level;
    *out = ctx;
    return MGRAD_OK;
}

static void context_free(mgrad_context *ctx)
{
    mgr_pool_destroy(ctx, ctx->pool);
    if (ctx->free_fn != NULL)
        ctx->free_fn(ctx, ctx->alloc_user_data);
    else
        free(ctx);
}

void mgr_context_retain(mgrad_context *ctx) { ctx->refs++; }

void mgr_context_release(mgrad_context *ctx)
{
    if (ctx != NULL && --ctx->refs == 0) context_free(ctx);
}

void mgrad_context_destroy(mgrad_context *ctx)
{
    if (ctx == NULL || ctx->destroyed) return;
    ctx->destroyed = 1;
    mgr_context_release(ctx);
}

mgrad_dtype mgrad_context_dtype(const mgrad_context *ctx)
{
    return ctx != NULL ? ctx->dtype : (mgrad_dtype)0;
}

mgrad_status mgrad_context_memory(const mgrad_context *ctx, uint64_t *current,
                                  uint64_t *peak)
{
    if (ctx == NULL) return MGRAD_ERR_NULL;
    if (current != NULL) *current = ctx->bytes_current;
    if (peak != NULL) *peak = ctx->bytes_peak;
    return MGRAD_OK;
}

size_t mgr_dtype_size(mgrad_dtype dtype)
{
    switch (dtype) {
    case MGRAD_DTYPE_F32: return sizeof(float);
    case MGRAD_DTYPE_F64: return sizeof(double);
    }
    return 0;
}

const char *mgr_dtype_name(mgrad_dtype dtype)
{
    switch (dtype) {
    case MGRAD_DTYPE_F32: return "f32";
    case MGRAD_DTYPE_F64: return "f64";
    }
    return "unknown";
}

int64_t mgr_convert(void *dst, mgrad_dtype dst_type, const void *src,
                    mgrad_dtype src_type, size_t n, int check_finite)
{
    if (check_finite) {
        for (size_t i = 0; i < n; i++) {
            double v = src_type == MGRAD_DTYPE_F32 ? (double)((const float *)src)[i]
                                                   : ((const double *)src)[i];
            /* A finite double beyond FLT_MAX would be stored as Inf. */
            if (!isfinite(v) || (dst_type == MGRAD_DTYPE_F32 && fabs(v) > FLT_MAX))
                return (int64_t)i;
        }
    }
    if (dst_type == src_type) {
        memmove(dst, src, n * mgr_dtype_size(src_type));
    } else if (dst_type == MGRAD_DTYPE_F32) {
        const double *s = src;
        float *d = dst;
        for (size_t i = 0; i < n; i++) d[i] = (float)s[i];
    } else {
        const float *s = src;
        double *d = dst;
        for (size_t i = 0; i < n; i++) d[i] = (double)s[i];
    }
    return -1;
}

double mgr_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int64_t mgr_shape_product(int32_t ndim, const int64_t *shape)
{
    int64_t p = 1;
    for (int32_t i = 0; i < ndim; i++) {
        if (shape[i] < 1 || p > INT64_MAX / shape[i]) return 0;
        p *= shape[i];
    }
    return p;
}
