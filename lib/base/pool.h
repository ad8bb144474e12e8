/*
 * pool.h - the context's own worker threads (docs/architecture.md,
 * "Threads").
 *
 * Work is cut into a FIXED grid of chunks whose boundaries depend on the
 * problem's size only, never on the thread count: mgr_pool_for runs
 * fn(arg, c) once for every chunk c in [0, chunks), on the calling thread
 * and the pool's workers, and returns when all have run.  A chunk's result
 * is therefore computed by the same code on the same data whatever the
 * thread count, and a reduction that keeps one partial per chunk and adds
 * the partials in chunk order (mgr_pool_sum) has the same bits on 1, 2 or
 * 3 threads.  Chunks must write disjoint memory.
 *
 * Thread c of T takes the contiguous run of chunks [c·n/T, (c+1)·n/T), so
 * passes over the same grid keep each part of a buffer on one core.
 *
 * A pool belongs to one context and is driven by the one thread that uses
 * the context at a time; a NULL pool (threads <= 1, or the workers could
 * not be started) runs every chunk on the calling thread, in order, with
 * the same results.
 */
#ifndef MGRAD_POOL_H
#define MGRAD_POOL_H

#include <stddef.h>

typedef struct mgr_pool mgr_pool;
typedef struct mgrad_context mgrad_context;

typedef void (*mgr_pool_fn)(void *arg, size_t chunk);

/* The context's pool, started on first use (NULL when ctx->threads <= 1 or
   starting failed: the library then runs on the calling thread alone). */
mgr_pool *mgr_context_pool(mgrad_context *ctx);
/* Join the workers and free the pool (context destruction). */
void mgr_pool_destroy(mgrad_context *ctx, mgr_pool *pool);

/* Threads of the pool, the caller included; 1 for NULL. */
int mgr_pool_threads(const mgr_pool *pool);

/* fn(arg, c) for c in [0, chunks).  With work_per_chunk * chunks below
   MGR_POOL_MIN_WORK (in elements touched, roughly), or a NULL pool, the
   chunks run on the calling thread in order: waking the workers costs more
   than such a pass.  The result is the same either way. */
#define MGR_POOL_MIN_WORK 32768.0
void mgr_pool_for(mgr_pool *pool, size_t chunks, double work_per_chunk, mgr_pool_fn fn,
                  void *arg);

/* The same, telling fn which thread runs the chunk (0 = the caller, up to
   mgr_pool_threads - 1), for per-thread scratch.  Nothing a chunk computes
   may depend on `worker`. */
typedef void (*mgr_pool_worker_fn)(void *arg, size_t chunk, int worker);
void mgr_pool_for_worker(mgr_pool *pool, size_t chunks, double work_per_chunk,
                         mgr_pool_worker_fn fn, void *arg);

/* The fixed grid of a pass over n elements: chunks of *chunk elements
   (the last one shorter), at least MGR_POOL_CHUNK and a multiple of 64 --
   chunks start on cache lines and on mgr_dot's four lanes -- and at most
   MGR_POOL_MAX_CHUNKS of them, so that a reduction's per-chunk partials fit
   on the stack.  Depends on n only.  Returns the number of chunks. */
#define MGR_POOL_CHUNK      8192
#define MGR_POOL_MAX_CHUNKS 64
static inline size_t mgr_pool_grid(size_t n, size_t *chunk)
{
    size_t c = (n + MGR_POOL_MAX_CHUNKS - 1) / MGR_POOL_MAX_CHUNKS;
    c = (c + 63) / 64 * 64;
    if (c < MGR_POOL_CHUNK) c = MGR_POOL_CHUNK;
    *chunk = c;
    return n == 0 ? 0 : (n + c - 1) / c;
}

/* Σ_c partial[c] in chunk order (the deterministic combination). */
static inline double mgr_pool_sum(size_t chunks, const double *partial)
{
    double s = 0.0;
    for (size_t c = 0; c < chunks; c++) s += partial[c];
    return s;
}

/* A pass over [0, n) on the fixed grid: fn(arg, lo, hi) for every chunk
   [lo, hi) of mgr_pool_grid(n).  work_per_elem: elements touched per
   element of the range (for the serial threshold). */
typedef void (*mgr_range_fn)(void *arg, size_t lo, size_t hi);
void mgr_pool_range(mgr_pool *pool, size_t n, double work_per_elem, mgr_range_fn fn, void *arg);
/* A pass over n independent items (images, say) of work_per_item each,
   cut into at most MGR_POOL_MAX_CHUNKS ranges [n c / chunks, n (c+1) /
   chunks): for work whose every item is computed alone, the same bits on
   any grid. */
void mgr_pool_items(mgr_pool *pool, size_t n, double work_per_item, mgr_range_fn fn, void *arg);
/* memcpy(dst, src, bytes) in ranges on the pool (a copy is the same bytes
   whoever copies them). */
void mgr_pool_memcpy(mgr_pool *pool, void *dst, const void *src, size_t bytes);
/* The same for a reduction: returns Σ over the chunks, in chunk order, of
   what fn returned for each (see the file comment). */
typedef double (*mgr_range_sum_fn)(void *arg, size_t lo, size_t hi);
double mgr_pool_range_sum(mgr_pool *pool, size_t n, double work_per_elem, mgr_range_sum_fn fn,
                          void *arg);

#endif /* MGRAD_POOL_H */
