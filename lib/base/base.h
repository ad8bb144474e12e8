/*
 * base.h - internals shared by every module: the context object, error
 * recording, the accounted allocator, reference counting.
 *
 * Error plumbing (see CODING_STYLE.md):
 *   MGRAD_RETURN_IF(ctx, cond, status, fmt, ...)  record a message and return
 *   MGRAD_FORWARD(expr)                           return a failed status as is
 * The library never aborts, exits or prints because of caller input.
 */
#ifndef MGRAD_BASE_H
#define MGRAD_BASE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "metagrad/context.h"

#define MGRAD_ERROR_CAPACITY 512

struct mgrad_context {
    int refs;                 /* caller's handle + every live child object */
    int destroyed;            /* the caller called mgrad_context_destroy */
    mgrad_dtype dtype;
    int32_t threads;          /* the library's threads (pool.h); <= 1: none */
    struct mgr_pool *pool;    /* started on first use; joined when freed */
    int pool_failed;          /* starting it failed: run on the caller */
    uint64_t seed;
    mgrad_malloc_fn malloc_fn;
    mgrad_free_fn free_fn;
    void *alloc_user_data;
    mgrad_log_fn log_fn;
    void *log_user_data;
    mgrad_log_level log_level;
    uint64_t bytes_current;
    uint64_t bytes_peak;
    char last_error[MGRAD_ERROR_CAPACITY];
};

/* Record a formatted message as the context's last error; return status.
   ctx may be NULL (then only the status is returned). */
mgrad_status mgr_error(mgrad_context *ctx, mgrad_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Send a message to the caller's log hook if its level passes. */
void mgr_log(mgrad_context *ctx, mgrad_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#define MGRAD_RETURN_IF(ctx, cond, status, ...)              \
    do {                                                     \
        if (cond) return mgr_error((ctx), (status), __VA_ARGS__); \
    } while (0)

#define MGRAD_FORWARD(expr)                \
    do {                                   \
        mgrad_status mgr_s_ = (expr);      \
        if (mgr_s_ != MGRAD_OK) return mgr_s_; \
    } while (0)

/* Accounted allocation through the context's hooks, 64-byte aligned.
   mgr_alloc returns NULL on failure without recording an error; callers
   report MGRAD_ERR_NOMEM with what they were allocating (mgr_alloc_or_fail
   does so).  Sizes are checked for overflow. */
void *mgr_alloc(mgrad_context *ctx, size_t bytes);
/* mgr_alloc without the transparent-huge-page advice that mgr_alloc gives
   large blocks: for blocks of which a run may touch only a part (the graph
   workspace, sized for the largest chunk while most passes use the batch),
   where 2 MiB pages would fault in memory nobody reads. */
void *mgr_alloc_small_pages(mgrad_context *ctx, size_t bytes);
void *mgr_calloc(mgrad_context *ctx, size_t count, size_t size);
void mgr_free(mgrad_context *ctx, void *ptr);
/* Allocate count*size zeroed bytes into *out or record MGRAD_ERR_NOMEM
   naming `what`. */
mgrad_status mgr_alloc_or_fail(mgrad_context *ctx, void **out, size_t count,
                               size_t size, const char *what);

/* Reference counting of the context by child objects. */
void mgr_context_retain(mgrad_context *ctx);
void mgr_context_release(mgrad_context *ctx);

/* Bytes of one element of a dtype, 0 if unknown. */
size_t mgr_dtype_size(mgrad_dtype dtype);
const char *mgr_dtype_name(mgrad_dtype dtype);

/* Convert n values between buffers of (possibly) different dtypes.
   Returns the index of the first non-finite value (or, into f32, one
   beyond FLT_MAX) or -1 when check_finite is set; conversion still happens only when all values pass, so a failed
   call leaves dst untouched. */
int64_t mgr_convert(void *dst, mgrad_dtype dst_type, const void *src,
                    mgrad_dtype src_type, size_t n, int check_finite);

/* Monotonic wall-clock seconds. */
double mgr_seconds(void);

/* Product of dims with overflow check; returns 0 on overflow or dim < 1. */
int64_t mgr_shape_product(int32_t ndim, const int64_t *shape);

#endif /* MGRAD_BASE_H */
