/*
 * alloc.c - allocation through the context's hooks with byte accounting.
 *
 * Every block carries a 64-byte header holding its size, so that frees can
 * be accounted and the payload stays 64-byte aligned (cache lines, SIMD),
 * assuming the hook returns 16-byte aligned memory and we over-allocate to
 * realign.
 */
#define _DEFAULT_SOURCE /* madvise, MADV_HUGEPAGE */
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "base/base.h"

#define MGR_ALIGN 64

typedef struct block_header {
    size_t bytes;      /* payload bytes */
    void *raw;         /* what the hook returned */
} block_header;

static void *alloc_block(mgrad_context *ctx, size_t bytes, int huge_pages)
{
    if (bytes > SIZE_MAX - 2 * MGR_ALIGN) return NULL;
    size_t total = bytes + 2 * MGR_ALIGN;
    void *raw = ctx->malloc_fn != NULL ? ctx->malloc_fn(total, ctx->alloc_user_data)
                                       : malloc(total);
    if (raw == NULL) return NULL;
    uintptr_t p = ((uintptr_t)raw + sizeof(block_header) + MGR_ALIGN - 1) &
                  ~(uintptr_t)(MGR_ALIGN - 1);
    block_header *h = (block_header *)(p - sizeof(block_header));
    h->bytes = bytes;
    h->raw = raw;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    /* Large blocks (checkpoint slots, optimizer state) ask for transparent
       huge pages: first touch then faults once per 2 MiB rather than per
       4 KiB, which matters on virtual machines where a fault is expensive.
       Blocks touched only in part opt out (mgr_alloc_small_pages).  Only whole huge pages inside the payload are advised; a
       kernel that refuses leaves the block as it was. */
    if (huge_pages && ctx->malloc_fn == NULL && bytes >= ((size_t)4 << 20)) {
        const uintptr_t huge = (uintptr_t)2 << 20;
        uintptr_t lo = (p + huge - 1) & ~(huge - 1), hi = (p + bytes) & ~(huge - 1);
        if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
    }
#endif
    ctx->bytes_current += bytes;
    if (ctx->bytes_current > ctx->bytes_peak) ctx->bytes_peak = ctx->bytes_current;
    return (void *)p;
}

void *mgr_alloc(mgrad_context *ctx, size_t bytes)
{
    return alloc_block(ctx, bytes, 1);
}

void *mgr_alloc_small_pages(mgrad_context *ctx, size_t bytes)
{
    return alloc_block(ctx, bytes, 0);
}

void *mgr_calloc(mgrad_context *ctx, size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size) return NULL;
    void *p = mgr_alloc(ctx, count * size);
    if (p != NULL) memset(p, 0, count * size);
    return p;
}

void mgr_free(mgrad_context *ctx, void *ptr)
{
    if (ptr == NULL) return;
    block_header *h = (block_header *)((uintptr_t)ptr - sizeof(block_header));
    ctx->bytes_current -= h->bytes;
    if (ctx->free_fn != NULL)
        ctx->free_fn(h->raw, ctx->alloc_user_data);
    else
        free(h->raw);
}

mgrad_status mgr_alloc_or_fail(mgrad_context *ctx, void **out, size_t count,
                               size_t size, const char *what)
{
    void *p = mgr_calloc(ctx, count, size);
    if (p == NULL)
        return mgr_error(ctx, MGRAD_ERR_NOMEM,
                         "out of memory allocating %s (%zu x %zu bytes)", what, count,
                         size);
    *out = p;
    return MGRAD_OK;
}
