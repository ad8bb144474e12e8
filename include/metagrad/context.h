/*
 * metagrad/context.h - the context: dtype, threads, seed, allocator, logging
 * and the last error message.
 *
 * Every other object is created from a context and keeps it alive: a context
 * is freed when mgrad_context_destroy has been called and the last object
 * created from it is destroyed.
 *
 * Thread safety: a context and everything created from it may be used by one
 * thread at a time.  Different contexts may be used from different threads
 * at once, each with its own worker threads (see threads).  The library
 * never changes BLAS's (process-wide) thread count.
 */
#ifndef METAGRAD_CONTEXT_H
#define METAGRAD_CONTEXT_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mgrad_context mgrad_context;

/** Allocation hook: return `size` bytes aligned to 16, or NULL on failure. */
typedef void *(*mgrad_malloc_fn)(size_t size, void *user_data);
/** Release hook for memory returned by the matching mgrad_malloc_fn. */
typedef void (*mgrad_free_fn)(void *ptr, void *user_data);

typedef enum mgrad_log_level {
    MGRAD_LOG_DEBUG = 0,
    MGRAD_LOG_INFO = 1,
    MGRAD_LOG_WARNING = 2,
    MGRAD_LOG_ERROR = 3
} mgrad_log_level;

/** Log hook.  `message` is valid only during the call. */
typedef void (*mgrad_log_fn)(mgrad_log_level level, const char *message,
                             void *user_data);

#define MGRAD_CONTEXT_OPTIONS_VERSION 1

/**
 * Context options.  Initialise with MGRAD_CONTEXT_OPTIONS_INIT or
 * mgrad_context_options_init(); fields are only ever appended.
 */
typedef struct mgrad_context_options {
    uint32_t version;       /**< MGRAD_CONTEXT_OPTIONS_VERSION */
    mgrad_dtype dtype;      /**< computation dtype; default MGRAD_DTYPE_F32 */
    /** The library's own threads, the calling one included: 0 (default) or
        1 runs everything on the calling thread; n > 1 starts n − 1 worker
        threads owned by the context (on its first run, joined when the
        context is freed) that share the passes outside BLAS (optimizer
        steps and their reverses, activations, batch norm, convolutions'
        im2col/col2im, pooling, finiteness checks) and, while OpenBLAS is
        set to one thread, the matrix products, cut into pieces.  Work is
        cut into pieces fixed by the problem's sizes, never by the thread
        count, so results are bit-identical for every value of `threads`
        (with BLAS's own thread count held fixed).  BLAS is left as
        configured (OPENBLAS_NUM_THREADS): set it to 1 to have the
        products on these threads.  At most 256; if the threads cannot be
        started the context runs on the calling thread (a warning is
        logged). */
    int32_t threads;
    uint64_t seed;          /**< default seed for initialisers and shuffles; default 0 */
    mgrad_malloc_fn malloc_fn; /**< NULL (default): malloc */
    mgrad_free_fn free_fn;     /**< NULL (default): free; set both or neither */
    void *alloc_user_data;
    mgrad_log_fn log_fn;       /**< NULL (default): the library never logs */
    void *log_user_data;
    mgrad_log_level log_level; /**< least severe level passed to log_fn; default WARNING */
} mgrad_context_options;

#define MGRAD_CONTEXT_OPTIONS_INIT \
    { MGRAD_CONTEXT_OPTIONS_VERSION, MGRAD_DTYPE_F32, 0, 0, NULL, NULL, NULL, \
      NULL, NULL, MGRAD_LOG_WARNING }

/**
 * Fill `opts` with the defaults of MGRAD_CONTEXT_OPTIONS_INIT.
 * @return MGRAD_OK; MGRAD_ERR_NULL if opts is NULL; MGRAD_ERR_VERSION if
 *         `version` is not one this library knows.
 */
MGRAD_API mgrad_status mgrad_context_options_init(mgrad_context_options *opts,
                                                  uint32_t version);

/**
 * Create a context.
 * @param[out] out  the new context, owned by the caller (mgrad_context_destroy).
 * @param opts      options, or NULL for the defaults.
 * @return MGRAD_OK; MGRAD_ERR_NULL (out), MGRAD_ERR_VERSION, MGRAD_ERR_DTYPE,
 *         MGRAD_ERR_INVALID (threads < 0 or > 256, only one of malloc_fn/free_fn),
 *         MGRAD_ERR_NOMEM.  No message is kept when creation fails.
 */
MGRAD_API mgrad_status mgrad_context_create(mgrad_context **out,
                                            const mgrad_context_options *opts);

/** Release the caller's reference.  Accepts NULL. */
MGRAD_API void mgrad_context_destroy(mgrad_context *ctx);

/**
 * The message of the last failed call on this context or on an object
 * created from it; "" when none failed.  Borrowed: valid until the next call
 * on the context.  Returns "" for NULL.
 */
MGRAD_API const char *mgrad_context_last_error(const mgrad_context *ctx);

/** Clear the last error message. Accepts NULL. */
MGRAD_API void mgrad_context_clear_error(mgrad_context *ctx);

/** The context's computation dtype (0 for NULL). */
MGRAD_API mgrad_dtype mgrad_context_dtype(const mgrad_context *ctx);

/**
 * Bytes currently allocated through the context and the peak so far.
 * Either output may be NULL.
 * @return MGRAD_OK; MGRAD_ERR_NULL if ctx is NULL.
 */
MGRAD_API mgrad_status mgrad_context_memory(const mgrad_context *ctx,
                                            uint64_t *current, uint64_t *peak);

#ifdef __cplusplus
}
#endif

#endif /* METAGRAD_CONTEXT_H */
