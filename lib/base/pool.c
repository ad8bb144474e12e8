/*
 * pool.c - the context's worker threads (pool.h).
 *
 * One job at a time.  The driving thread publishes (fn, arg, chunks), bumps
 * the generation and runs chunks itself.  Thread w owns the contiguous
 * range of chunks [w n/T, (w+1) n/T) and takes them from its front; a
 * thread that has finished its own takes the chunks left in the others'
 * ranges, so a worker that the operating system has not scheduled (a busy
 * machine) delays nothing: the driver runs its chunks.  Which thread runs
 * a chunk never changes what the chunk computes.
 *
 * A worker takes part in a job only after registering for it (`reg`
 * holds the job's generation, a closed bit and the count of registered
 * workers); when every chunk is done the driver closes the job, so a
 * worker that wakes up late finds it closed and never reads the job's
 * fields, and the driver waits only for the workers that registered (and
 * are running) to leave.  Workers spin briefly before sleeping on a
 * condition variable, because a pass often follows the last one within
 * microseconds and a futex wake-up costs tens of them on a VM.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#include "base/base.h"
#include "base/pool.h"

/* Iterations of a spin before sleeping or yielding (a few microseconds). */
#define SPIN 200

/* reg = generation << REG_SHIFT | REG_CLOSED | registered workers */
#define REG_SHIFT  16
#define REG_CLOSED 0x8000ul
#define REG_COUNT  0x7ffful

typedef struct worker_arg {
    mgr_pool *pool;
    int index;
} worker_arg;

struct mgr_pool {
    int threads;         /* the driving thread + workers */
    int started;         /* workers running (threads - 1 once started) */
    pthread_t *tids;     /* [threads]; [0] unused (the driving thread) */
    worker_arg *args;    /* [threads] */
    atomic_size_t *next; /* [threads] front of each thread's range of chunks */
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    atomic_ulong gen;        /* job generation; bumped under mu */
    atomic_ulong reg;        /* see the file comment */
    atomic_int exited;       /* registered workers that left the job */
    atomic_size_t remaining; /* chunks not yet done */
    int stop;                /* under mu */
    /* A job is running: a pass started from inside a chunk (a worker's or
       the driving thread's) runs on its own thread, serially, instead of
       waiting for workers that are busy with the outer job.  Written by
       the driving thread around a job, read by the threads running it. */
    atomic_int busy;
    /* the current job: written before gen is bumped, read after
       registering */
    mgr_pool_fn fn;
    mgr_pool_worker_fn wfn; /* set instead of fn by mgr_pool_for_worker */
    void *arg;
    size_t chunks;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Run chunks, own range first, then what is left of the others'. */
static void run_chunks(mgr_pool *p, int index)
{
    size_t n = p->chunks, T = (size_t)p->threads;
    for (size_t k = 0; k < T; k++) {
        size_t v = ((size_t)index + k) % T, hi = n * (v + 1) / T;
        for (;;) {
            size_t c = atomic_fetch_add_explicit(&p->next[v], 1, memory_order_relaxed);
            if (c >= hi) break;
            if (p->wfn != NULL)
                p->wfn(p->arg, c, index);
            else
                p->fn(p->arg, c);
            atomic_fetch_sub_explicit(&p->remaining, 1, memory_order_release);
        }
    }
}

/* Register for job `g`; 0 if it is closed or not the current one. */
static int register_for(mgr_pool *p, unsigned long g)
{
    unsigned long w = atomic_load_explicit(&p->reg, memory_order_acquire);
    while ((w >> REG_SHIFT) == g && !(w & REG_CLOSED)) {
        if (atomic_compare_exchange_weak_explicit(&p->reg, &w, w + 1, memory_order_acq_rel,
                                                  memory_order_acquire))
            return 1;
    }
    return 0;
}

static void *worker_main(void *varg)
{
    worker_arg *wa = varg;
    mgr_pool *p = wa->pool;
    const int index = wa->index;
    unsigned long seen = 0;
    for (;;) {
        for (int spin = 0; spin < SPIN; spin++) {
            if (atomic_load_explicit(&p->gen, memory_order_acquire) != seen) break;
            cpu_relax();
        }
        pthread_mutex_lock(&p->mu);
        while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen && !p->stop)
            pthread_cond_wait(&p->wake, &p->mu);
        const int stop = p->stop;
        seen = atomic_load_explicit(&p->gen, memory_order_acquire);
        pthread_mutex_unlock(&p->mu);
        if (stop) break;
        if (!register_for(p, seen)) continue; /* closed before we woke */
        run_chunks(p, index);
        atomic_fetch_add_explicit(&p->exited, 1, memory_order_acq_rel);
        pthread_mutex_lock(&p->mu);
        pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
    return NULL;
}

void mgr_pool_destroy(mgrad_context *ctx, mgr_pool *p)
{
    if (p == NULL) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_acq_rel);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i <= p->started; i++) pthread_join(p->tids[i], NULL);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    mgr_free(ctx, p->next);
    mgr_free(ctx, p->args);
    mgr_free(ctx, p->tids);
    mgr_free(ctx, p);
}

static mgr_pool *pool_create(mgrad_context *ctx, int threads)
{
    mgr_pool *p = mgr_calloc(ctx, 1, sizeof *p);
    if (p == NULL) return NULL;
    p->threads = threads;
    p->tids = mgr_calloc(ctx, (size_t)threads, sizeof *p->tids);
    p->args = mgr_calloc(ctx, (size_t)threads, sizeof *p->args);
    p->next = mgr_calloc(ctx, (size_t)threads, sizeof *p->next);
    int have_mu = 0, have_wake = 0;
    if (p->tids == NULL || p->args == NULL || p->next == NULL) goto fail;
    for (int i = 0; i < threads; i++) atomic_init(&p->next[i], 0);
    if (pthread_mutex_init(&p->mu, NULL) != 0) goto fail;
    have_mu = 1;
    if (pthread_cond_init(&p->wake, NULL) != 0) goto fail;
    have_wake = 1;
    if (pthread_cond_init(&p->done, NULL) != 0) goto fail;
    atomic_init(&p->gen, 0);
    atomic_init(&p->reg, 0);
    atomic_init(&p->exited, 0);
    atomic_init(&p->remaining, 0);
    atomic_init(&p->busy, 0);
    /* Workers block every signal: the caller's handlers run on its own
       threads, as they would without the library's. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 1; i < threads; i++) {
        p->args[i].pool = p;
        p->args[i].index = i;
        if (pthread_create(&p->tids[i], NULL, worker_main, &p->args[i]) != 0) break;
        p->started = i;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (p->started < threads - 1) {
        /* Fewer threads than asked would change no result but surprise
           in the timings: run on the caller alone instead. */
        mgr_pool_destroy(ctx, p);
        return NULL;
    }
    return p;
fail:
    if (have_wake) pthread_cond_destroy(&p->wake);
    if (have_mu) pthread_mutex_destroy(&p->mu);
    mgr_free(ctx, p->next);
    mgr_free(ctx, p->args);
    mgr_free(ctx, p->tids);
    mgr_free(ctx, p);
    return NULL;
}

mgr_pool *mgr_context_pool(mgrad_context *ctx)
{
    if (ctx == NULL || ctx->threads <= 1) return NULL;
    if (ctx->pool == NULL && !ctx->pool_failed) {
        ctx->pool = pool_create(ctx, ctx->threads);
        if (ctx->pool == NULL) {
            ctx->pool_failed = 1;
            mgr_log(ctx, MGRAD_LOG_WARNING,
                    "could not start %d worker threads; running on the caller's thread",
                    (int)ctx->threads - 1);
        }
    }
    return ctx->pool;
}

int mgr_pool_threads(const mgr_pool *pool)
{
    return pool != NULL ? pool->threads : 1;
}

static void pool_run(mgr_pool *p, size_t chunks, mgr_pool_fn fn, mgr_pool_worker_fn wfn,
                     void *arg)
{
    atomic_store_explicit(&p->busy, 1, memory_order_relaxed);
    p->fn = fn;
    p->wfn = wfn;
    p->arg = arg;
    p->chunks = chunks;
    size_t T = (size_t)p->threads;
    for (size_t w = 0; w < T; w++)
        atomic_store_explicit(&p->next[w], chunks * w / T, memory_order_relaxed);
    atomic_store_explicit(&p->remaining, chunks, memory_order_relaxed);
    atomic_store_explicit(&p->exited, 0, memory_order_relaxed);
    unsigned long g = atomic_load_explicit(&p->gen, memory_order_relaxed) + 1;
    atomic_store_explicit(&p->reg, g << REG_SHIFT, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    atomic_store_explicit(&p->gen, g, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);

    run_chunks(p, 0);
    /* The chunks still running were taken by registered, running workers. */
    for (int spin = 0; atomic_load_explicit(&p->remaining, memory_order_acquire) != 0; spin++) {
        if (spin < SPIN)
            cpu_relax();
        else
            sched_yield();
    }
    unsigned long w = atomic_fetch_or_explicit(&p->reg, REG_CLOSED, memory_order_acq_rel);
    int entered = (int)(w & REG_COUNT);
    for (int spin = 0; spin < SPIN; spin++) {
        if (atomic_load_explicit(&p->exited, memory_order_acquire) == entered) goto done;
        cpu_relax();
    }
    pthread_mutex_lock(&p->mu);
    while (atomic_load_explicit(&p->exited, memory_order_acquire) != entered)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
done:
    atomic_store_explicit(&p->busy, 0, memory_order_relaxed);
}

/* Whether a pass may use the workers now (not from inside a job). */
static int pool_free(mgr_pool *p)
{
    return p != NULL && atomic_load_explicit(&p->busy, memory_order_relaxed) == 0;
}

void mgr_pool_for(mgr_pool *p, size_t chunks, double work_per_chunk, mgr_pool_fn fn, void *arg)
{
    if (!pool_free(p) || chunks < 2 || work_per_chunk * (double)chunks < MGR_POOL_MIN_WORK) {
        for (size_t c = 0; c < chunks; c++) fn(arg, c);
        return;
    }
    pool_run(p, chunks, fn, NULL, arg);
}

void mgr_pool_for_worker(mgr_pool *p, size_t chunks, double work_per_chunk,
                         mgr_pool_worker_fn fn, void *arg)
{
    if (!pool_free(p) || chunks < 2 || work_per_chunk * (double)chunks < MGR_POOL_MIN_WORK) {
        for (size_t c = 0; c < chunks; c++) fn(arg, c, 0);
        return;
    }
    pool_run(p, chunks, NULL, fn, arg);
}

typedef struct range_job {
    size_t n, chunk;
    mgr_range_fn fn;
    mgr_range_sum_fn sum_fn;
    void *arg;
    double *partial;
} range_job;

static void range_chunk(void *varg, size_t c)
{
    const range_job *j = varg;
    size_t lo = c * j->chunk, hi = lo + j->chunk < j->n ? lo + j->chunk : j->n;
    if (j->fn != NULL)
        j->fn(j->arg, lo, hi);
    else
        j->partial[c] = j->sum_fn(j->arg, lo, hi);
}

void mgr_pool_range(mgr_pool *pool, size_t n, double work_per_elem, mgr_range_fn fn, void *arg)
{
    range_job j = {n, 0, fn, NULL, arg, NULL};
    size_t chunks = mgr_pool_grid(n, &j.chunk);
    mgr_pool_for(pool, chunks, work_per_elem * (double)j.chunk, range_chunk, &j);
}

double mgr_pool_range_sum(mgr_pool *pool, size_t n, double work_per_elem, mgr_range_sum_fn fn,
                          void *arg)
{
    double partial[MGR_POOL_MAX_CHUNKS];
    range_job j = {n, 0, NULL, fn, arg, partial};
    size_t chunks = mgr_pool_grid(n, &j.chunk);
    mgr_pool_for(pool, chunks, work_per_elem * (double)j.chunk, range_chunk, &j);
    return mgr_pool_sum(chunks, partial);
}

typedef struct items_job {
    size_t n, chunks;
    mgr_range_fn fn;
    void *arg;
} items_job;

static void items_chunk(void *varg, size_t c)
{
    const items_job *j = varg;
    size_t lo = j->n * c / j->chunks, hi = j->n * (c + 1) / j->chunks;
    if (hi > lo) j->fn(j->arg, lo, hi);
}

void mgr_pool_items(mgr_pool *pool, size_t n, double work_per_item, mgr_range_fn fn, void *arg)
{
    if (n == 0) return;
    items_job j = {n, n < MGR_POOL_MAX_CHUNKS ? n : MGR_POOL_MAX_CHUNKS, fn, arg};
    mgr_pool_for(pool, j.chunks, work_per_item * (double)n / (double)j.chunks, items_chunk, &j);
}

typedef struct memcpy_job {
    char *dst;
    const char *src;
} memcpy_job;

static void memcpy_range(void *arg, size_t lo, size_t hi)
{
    const memcpy_job *j = arg;
    memcpy(j->dst + lo, j->src + lo, hi - lo);
}

void mgr_pool_memcpy(mgr_pool *pool, void *dst, const void *src, size_t bytes)
{
    memcpy_job j = {dst, src};
    /* work in elements of 4 bytes, the unit of the other passes */
    mgr_pool_range(pool, bytes, 0.5, memcpy_range, &j);
}
