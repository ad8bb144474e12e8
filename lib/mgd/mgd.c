/*
 * mgd.c - metagradient descent: the loop, meta-optimizers, projections,
 * best-iterate tracking (see include/metagrad/mgd.h).
 *
 * Works on the metaparameter through its public value/grad functions in
 * double precision, whatever the context's dtype, so the update arithmetic is
 * the same for f32 and f64 runs.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "metagrad/mgd.h"
#include "metagrad/mpi.h"
#include "run/run_internal.h"

struct mgrad_mgd {
    mgrad_context *ctx;
    mgrad_meta *meta;
    mgrad_mgd_options opts;
    int64_t n;               /* size of the optimised variable */
    int64_t size;            /* size of the metaparameter */
    int64_t steps;
    double *z, *g, *m, *v;   /* optimised variable, its gradient, Adam moments */
    double *basis;           /* [size, n] or NULL: then z is the value itself */
    double *full, *gfull;    /* the value and dφ/dvalue [size] (alias z, g without basis) */
    double *best;            /* [size] */
    double best_score;
    double last_score;       /* score of the last iterate trained */
    int has_best;
    double *scratch;         /* sorting */
    struct keyed *pairs;     /* sorting indices by a key */
    int64_t *order;          /* indices by descending key (order_by) */
};

/* Sorting indices through (key, index) pairs keeps the comparator free of
   global state (contexts may be used from several threads). */
typedef struct keyed {
    double key;
    int64_t idx;
} keyed;

mgrad_status mgrad_mgd_options_init(mgrad_mgd_options *opts, uint32_t version)
{
    if (opts == NULL) return MGRAD_ERR_NULL;
    if (version != MGRAD_MGD_OPTIONS_VERSION) return MGRAD_ERR_VERSION;
    mgrad_mgd_options d = MGRAD_MGD_OPTIONS_INIT;
    *opts = d;
    return MGRAD_OK;
}

static mgrad_status check_options(mgrad_context *ctx, const mgrad_meta *meta,
                                  const mgrad_mgd_options *o)
{
    const char *fn = "mgrad_mgd_create";
    MGRAD_RETURN_IF(ctx, o->method < MGRAD_MGD_SIGN || o->method > MGRAD_MGD_EXCHANGE,
                    MGRAD_ERR_INVALID, "%s: options.method = %d is not an mgrad_mgd_method",
                    fn, (int)o->method);
    MGRAD_RETURN_IF(ctx, !(o->lr > 0 && isfinite(o->lr)), MGRAD_ERR_INVALID,
                    "%s: options.lr = %g must be positive", fn, o->lr);
    MGRAD_RETURN_IF(ctx, !(o->mask_prob > 0 && o->mask_prob <= 1), MGRAD_ERR_INVALID,
                    "%s: options.mask_prob = %g must be in (0, 1]", fn, o->mask_prob);
    MGRAD_RETURN_IF(ctx, !(o->beta1 >= 0 && o->beta1 < 1 && o->beta2 >= 0 && o->beta2 < 1 &&
                           o->eps > 0), MGRAD_ERR_INVALID,
                    "%s: options.beta1, beta2 must be in [0, 1) and eps > 0", fn);
    MGRAD_RETURN_IF(ctx, o->projection < MGRAD_PROJECT_NONE ||
                    o->projection > MGRAD_PROJECT_TOP_K, MGRAD_ERR_INVALID,
                    "%s: options.projection = %d is not an mgrad_projection", fn,
                    (int)o->projection);
    MGRAD_RETURN_IF(ctx, o->projection == MGRAD_PROJECT_BOX && !(o->lo <= o->hi),
                    MGRAD_ERR_INVALID, "%s: options.lo = %g must be <= options.hi = %g", fn,
                    o->lo, o->hi);
    MGRAD_RETURN_IF(ctx, o->projection == MGRAD_PROJECT_FIXED_SUM &&
                    !(o->sum > 0 && isfinite(o->sum)), MGRAD_ERR_INVALID,
                    "%s: options.sum = %g must be positive", fn, o->sum);
    int64_t n = o->basis != NULL ? o->basis_dim : meta->size;
    MGRAD_RETURN_IF(ctx, o->projection == MGRAD_PROJECT_TOP_K && (o->k < 1 || o->k > n),
                    MGRAD_ERR_INVALID, "%s: options.k = %lld must be in [1, %lld]", fn,
                    (long long)o->k, (long long)n);
    MGRAD_RETURN_IF(ctx, o->method == MGRAD_MGD_EXCHANGE &&
                    (o->exchange < 1 || 2 * o->exchange > meta->size), MGRAD_ERR_INVALID,
                    "%s: options.exchange = %lld must be in [1, size/2 = %lld]", fn,
                    (long long)o->exchange, (long long)(meta->size / 2));
    MGRAD_RETURN_IF(ctx, o->basis != NULL && (o->basis_dim < 1 || o->coefficients == NULL),
                    MGRAD_ERR_INVALID, "%s: with options.basis set options.basis_dim >= 1 "
                    "and options.coefficients", fn);
    MGRAD_RETURN_IF(ctx, o->basis != NULL && o->method == MGRAD_MGD_EXCHANGE,
                    MGRAD_ERR_INVALID, "%s: EXCHANGE works on counts, not on a basis", fn);
    MGRAD_RETURN_IF(ctx, o->basis != NULL && o->basis_dim > INT64_MAX / meta->size,
                    MGRAD_ERR_INVALID, "%s: options.basis_dim too large", fn);
    const mgrad_meta *gf = o->gradient_from;
    MGRAD_RETURN_IF(ctx, gf != NULL && (gf->run != meta->run || gf->size != meta->size),
                    MGRAD_ERR_INVALID, "%s: options.gradient_from must be a metaparameter "
                    "of the same run and size (%lld values)", fn, (long long)meta->size);
    MGRAD_RETURN_IF(ctx, o->maximize != 0 && o->maximize != 1, MGRAD_ERR_INVALID,
                    "%s: options.maximize must be 0 or 1", fn);
    MGRAD_RETURN_IF(ctx, o->reshuffle != 0 && o->reshuffle != 1, MGRAD_ERR_INVALID,
                    "%s: options.reshuffle must be 0 or 1", fn);
    MGRAD_RETURN_IF(ctx, o->reshuffle && meta->run->batches != NULL, MGRAD_ERR_INVALID,
                    "%s: options.reshuffle needs a run with shuffled batches, not "
                    "options.batches", fn);
    MGRAD_RETURN_IF(ctx, o->heldout != NULL && o->heldout->ctx != ctx, MGRAD_ERR_INVALID,
                    "%s: options.heldout comes from another context", fn);
    return MGRAD_OK;
}

void mgrad_mgd_destroy(mgrad_mgd *mgd)
{
    if (mgd == NULL) return;
    mgrad_context *ctx = mgd->ctx;
    void *bufs[] = {mgd->z, mgd->g, mgd->m, mgd->v, mgd->best, mgd->scratch, mgd->order,
                    mgd->pairs, mgd->basis,
                    mgd->full != mgd->z ? mgd->full : NULL,
                    mgd->gfull != mgd->g ? mgd->gfull : NULL};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) mgr_free(ctx, bufs[i]);
    mgr_free(ctx, mgd);
    mgr_context_release(ctx);
}

mgrad_status mgrad_mgd_create(mgrad_mgd **out, mgrad_meta *meta,
                              const mgrad_mgd_options *opts)
{
    if (meta == NULL) return MGRAD_ERR_NULL;
    mgrad_context *ctx = meta->run->ctx;
    MGRAD_RETURN_IF(ctx, out == NULL, MGRAD_ERR_NULL, "mgrad_mgd_create: out is NULL");
    mgrad_mgd_options o = MGRAD_MGD_OPTIONS_INIT;
    if (opts != NULL) {
        MGRAD_RETURN_IF(ctx, opts->version != MGRAD_MGD_OPTIONS_VERSION, MGRAD_ERR_VERSION,
                        "mgrad_mgd_create: options version %u unknown; initialise with "
                        "MGRAD_MGD_OPTIONS_INIT", (unsigned)opts->version);
        o = *opts;
    }
    MGRAD_FORWARD(check_options(ctx, meta, &o));
    mgrad_mgd *mgd = NULL;
    MGRAD_FORWARD(mgr_alloc_or_fail(ctx, (void **)&mgd, 1, sizeof *mgd, "an MGD optimiser"));
    mgd->ctx = ctx;
    mgr_context_retain(ctx);
    size_t size = (size_t)meta->size;
    size_t n = o.basis != NULL ? (size_t)o.basis_dim : size;
    mgrad_status s = MGRAD_OK;
    double **dbufs[] = {&mgd->z, &mgd->g, &mgd->m, &mgd->v, &mgd->scratch};
    for (size_t i = 0; i < sizeof dbufs / sizeof dbufs[0] && s == MGRAD_OK; i++)
        s = mgr_alloc_or_fail(ctx, (void **)dbufs[i], n, sizeof(double), "MGD state");
    if (s == MGRAD_OK)
        s = mgr_alloc_or_fail(ctx, (void **)&mgd->best, size, sizeof(double), "MGD state");
    if (s == MGRAD_OK && o.basis != NULL) {
        s = mgr_alloc_or_fail(ctx, (void **)&mgd->basis, size * n, sizeof(double), "the basis");
        if (s == MGRAD_OK)
            s = mgr_alloc_or_fail(ctx, (void **)&mgd->full, size, sizeof(double), "MGD state");
        if (s == MGRAD_OK)
            s = mgr_alloc_or_fail(ctx, (void **)&mgd->gfull, size, sizeof(double), "MGD state");
        if (s == MGRAD_OK) {
            memcpy(mgd->basis, o.basis, size * n * sizeof(double));
            memcpy(mgd->z, o.coefficients, n * sizeof(double));
        }
    } else {
        mgd->full = mgd->z;
        mgd->gfull = mgd->g;
    }
    if (s == MGRAD_OK)
        s = mgr_alloc_or_fail(ctx, (void **)&mgd->order, n, sizeof(int64_t), "MGD state");
    if (s == MGRAD_OK)
        s = mgr_alloc_or_fail(ctx, (void **)&mgd->pairs, n, sizeof(keyed), "MGD state");
    if (s != MGRAD_OK) {
        mgrad_mgd_destroy(mgd);
        return s;
    }
    mgd->meta = meta;
    mgd->opts = o;
    mgd->n = (int64_t)n;
    mgd->size = meta->size;
    mgd->opts.basis = NULL;          /* copied; the caller's arrays are not kept */
    mgd->opts.coefficients = NULL;
    *out = mgd;
    return MGRAD_OK;
}

/* ---- projections --------------------------------------------------------- */

static int cmp_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* Descending key; ties by index, so the order is deterministic. */
static int cmp_keyed_desc(const void *a, const void *b)
{
    const keyed *p = a, *q = b;
    if (p->key != q->key) return p->key < q->key ? 1 : -1;
    return (p->idx > q->idx) - (p->idx < q->idx);
}

static void order_by(mgrad_mgd *mgd, const double *key)
{
    for (int64_t i = 0; i < mgd->n; i++) mgd->pairs[i] = (keyed){key[i], i};
    qsort(mgd->pairs, (size_t)mgd->n, sizeof(keyed), cmp_keyed_desc);
    for (int64_t i = 0; i < mgd->n; i++) mgd->order[i] = mgd->pairs[i].idx;
}

static void project(mgrad_mgd *mgd)
{
    const mgrad_mgd_options *o = &mgd->opts;
    double *z = mgd->z;
    int64_t n = mgd->n;
    switch (o->projection) {
    case MGRAD_PROJECT_NONE: break;
    case MGRAD_PROJECT_BOX:
        for (int64_t i = 0; i < n; i++) z[i] = fmin(fmax(z[i], o->lo), o->hi);
        break;
    case MGRAD_PROJECT_NONNEGATIVE:
        for (int64_t i = 0; i < n; i++) z[i] = fmax(z[i], 0.0);
        break;
    case MGRAD_PROJECT_FIXED_SUM: {
        /* Euclidean projection onto the scaled simplex (Held et al.; Duchi
           et al. 2008): τ from the sorted values, z = max(z − τ, 0). */
        double *u = mgd->scratch;
        memcpy(u, z, (size_t)n * sizeof *u);
        qsort(u, (size_t)n, sizeof *u, cmp_desc);
        double cum = 0, tau = 0;
        for (int64_t j = 0; j < n; j++) {
            cum += u[j];
            double t = (cum - o->sum) / (double)(j + 1);
            if (u[j] - t > 0) tau = t;
        }
        for (int64_t i = 0; i < n; i++) z[i] = fmax(z[i] - tau, 0.0);
        break;
    }
    case MGRAD_PROJECT_TOP_K:
        order_by(mgd, z);
        for (int64_t r = o->k; r < n; r++) z[mgd->order[r]] = 0;
        break;
    }
}

/* ---- updates ------------------------------------------------------------ */

static void update(mgrad_mgd *mgd)
{
    const mgrad_mgd_options *o = &mgd->opts;
    double *z = mgd->z, *g = mgd->g;
    int64_t n = mgd->n;
    switch (o->method) {
    case MGRAD_MGD_SIGN:
        for (int64_t i = 0; i < n; i++) {
            int keep = o->mask_prob >= 1 ||
                       mgr_rng_uniform(o->seed, MGR_STREAM_USER + ((uint64_t)mgd->steps << 8),
                                       (uint64_t)i) < o->mask_prob;
            double sg = (g[i] > 0) - (g[i] < 0);
            if (keep) z[i] -= o->lr * sg;
        }
        break;
    case MGRAD_MGD_ADAM: {
        double k = (double)(mgd->steps + 1);
        double c1 = 1 - pow(o->beta1, k), c2 = 1 - pow(o->beta2, k);
        for (int64_t i = 0; i < n; i++) {
            mgd->m[i] = o->beta1 * mgd->m[i] + (1 - o->beta1) * g[i];
            mgd->v[i] = o->beta2 * mgd->v[i] + (1 - o->beta2) * g[i] * g[i];
            z[i] -= o->lr * (mgd->m[i] / c1) / (sqrt(mgd->v[i] / c2) + o->eps);
        }
        break;
    }
    case MGRAD_MGD_SGD:
        for (int64_t i = 0; i < n; i++) z[i] -= o->lr * g[i];
        break;
    case MGRAD_MGD_EXCHANGE: {
        /* Move units of count from the entries whose increase would raise φ
           most (largest g, count > 0) to those where it lowers φ most. */
        double units = fmax(1.0, round(o->lr));
        order_by(mgd, g);
        double pool = 0;
        int64_t donors = 0, r = 0;
        for (; r < n && donors < o->exchange; r++) {
            int64_t i = mgd->order[r];
            if (z[i] <= 0) continue;
            double take = fmin(units, z[i]);
            z[i] -= take;
            pool += take;
            donors++;
        }
        for (int64_t q = n - 1, given = 0; q >= r && given < o->exchange && pool > 0;
             q--, given++) {
            double give = fmin(units, pool);
            z[mgd->order[q]] += give;
            pool -= give;
        }
        /* whatever could not be placed goes back to the last donor */
        if (pool > 0 && r > 0) z[mgd->order[r - 1]] += pool;
        break;
    }
    }
}

/* full = basis · z  ([size, n] · [n]) */
static void expand(mgrad_mgd *mgd)
{
    for (int64_t i = 0; i < mgd->size; i++) {
        double acc = 0;
        for (int64_t j = 0; j < mgd->n; j++) acc += mgd->basis[i * mgd->n + j] * mgd->z[j];
        mgd->full[i] = acc;
    }
}

/* Train the current value, score it, keep it if best.  Without a basis the
   value is read from the metaparameter (the caller may have changed it);
   with one it is basis · z. */
static mgrad_status train_and_score(mgrad_mgd *mgd, double *phi)
{
    mgrad_run *run = mgd->meta->run;
    if (mgd->opts.reshuffle)
        MGRAD_FORWARD(mgrad_run_set_shuffle_seed(
            run, mgr_rng_u64(mgd->opts.seed, MGR_STREAM_SHUFFLE, (uint64_t)mgd->steps)));
    if (mgd->basis != NULL) {
        expand(mgd);
        MGRAD_FORWARD(mgrad_meta_set_value(mgd->meta, MGRAD_DTYPE_F64, mgd->full, mgd->size));
    } else {
        MGRAD_FORWARD(mgrad_meta_get_value(mgd->meta, MGRAD_DTYPE_F64, mgd->z, mgd->n));
    }
    MGRAD_FORWARD(mgrad_run_train(run, phi));
    double score = *phi;
    if (mgd->opts.heldout != NULL)
        MGRAD_FORWARD(mgrad_run_evaluate(run, mgd->opts.heldout, &score, NULL));
    mgd->last_score = score;
    int better = mgd->opts.maximize ? score > mgd->best_score : score < mgd->best_score;
    if (!mgd->has_best || better) {
        memcpy(mgd->best, mgd->full, (size_t)mgd->size * sizeof(double));
        mgd->best_score = score;
        mgd->has_best = 1;
    }
    return MGRAD_OK;
}

mgrad_status mgrad_mgd_step(mgrad_mgd *mgd, double *phi)
{
    if (mgd == NULL) return MGRAD_ERR_NULL;
    double value = 0;
    MGRAD_FORWARD(train_and_score(mgd, &value));
    MGRAD_FORWARD(mgrad_run_reverse(mgd->meta->run));
    const mgrad_meta *src = mgd->opts.gradient_from != NULL ? mgd->opts.gradient_from
                                                            : mgd->meta;
    /* the sum over the ranks on a data-parallel run (metagrad/mpi.h), so that
       every rank takes the same step; mgrad_meta_get_grad otherwise */
    MGRAD_FORWARD(mgrad_meta_gather_grad(src, -1, MGRAD_DTYPE_F64, mgd->gfull, mgd->size));
    if (mgd->basis != NULL) {
        /* chain rule: dφ/dc = basisᵀ dφ/dz */
        for (int64_t j = 0; j < mgd->n; j++) mgd->g[j] = 0;
        for (int64_t i = 0; i < mgd->size; i++)
            for (int64_t j = 0; j < mgd->n; j++)
                mgd->g[j] += mgd->basis[i * mgd->n + j] * mgd->gfull[i];
    }
    if (mgd->opts.maximize)
        for (int64_t i = 0; i < mgd->n; i++) mgd->g[i] = -mgd->g[i];
    update(mgd);
    project(mgd);
    if (mgd->basis != NULL) expand(mgd);
    MGRAD_FORWARD(mgrad_meta_set_value(mgd->meta, MGRAD_DTYPE_F64, mgd->full, mgd->size));
    mgd->steps++;
    if (phi != NULL) *phi = value;
    return MGRAD_OK;
}

mgrad_status mgrad_mgd_run(mgrad_mgd *mgd, int64_t steps)
{
    if (mgd == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(mgd->ctx, steps < 0, MGRAD_ERR_INVALID,
                    "mgrad_mgd_run: steps = %lld must be >= 0", (long long)steps);
    for (int64_t s = 0; s < steps; s++) {
        double t0 = mgr_seconds(), phi = 0;
        int64_t step = mgd->steps;
        MGRAD_FORWARD(mgrad_mgd_step(mgd, &phi));
        if (mgd->opts.progress != NULL) {
            if (mgd->opts.progress(step, phi, mgd->last_score, mgr_seconds() - t0,
                                   mgd->opts.user_data) != 0)
                return mgr_error(mgd->ctx, MGRAD_ERR_CANCELLED,
                                 "mgrad_mgd_run: cancelled by the progress callback after "
                                 "meta-step %lld", (long long)step);
        }
    }
    double phi = 0;
    return train_and_score(mgd, &phi);
}

mgrad_status mgrad_mgd_best(const mgrad_mgd *mgd, mgrad_dtype dtype, void *out,
                            int64_t count, double *score)
{
    if (mgd == NULL) return MGRAD_ERR_NULL;
    mgrad_context *ctx = mgd->ctx;
    MGRAD_RETURN_IF(ctx, out == NULL, MGRAD_ERR_NULL, "mgrad_mgd_best: out is NULL");
    MGRAD_RETURN_IF(ctx, dtype != MGRAD_DTYPE_F32 && dtype != MGRAD_DTYPE_F64,
                    MGRAD_ERR_DTYPE, "mgrad_mgd_best: unknown dtype %d", (int)dtype);
    MGRAD_RETURN_IF(ctx, count != mgd->size, MGRAD_ERR_SIZE,
                    "mgrad_mgd_best: count = %lld but the metaparameter has %lld values",
                    (long long)count, (long long)mgd->size);
    MGRAD_RETURN_IF(ctx, !mgd->has_best, MGRAD_ERR_ORDER,
                    "mgrad_mgd_best: no iterate scored yet; did you forget mgrad_mgd_step?");
    mgr_convert(out, dtype, mgd->best, MGRAD_DTYPE_F64, (size_t)count, 0);
    if (score != NULL) *score = mgd->best_score;
    return MGRAD_OK;
}

mgrad_status mgrad_mgd_steps(const mgrad_mgd *mgd, int64_t *out)
{
    if (mgd == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(mgd->ctx, out == NULL, MGRAD_ERR_NULL, "mgrad_mgd_steps: out is NULL");
    *out = mgd->steps;
    return MGRAD_OK;
}
