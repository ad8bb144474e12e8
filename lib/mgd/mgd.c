/*
 * mgd.c - metagradient descent: the loop, meta-optimizers, projections,
 * best-iterate tracking, settings (see include/metagrad/mgd.h).
 *
 * Built on the public run and metaparameter API only (plus the base
 * module's allocator, errors and RNG), as docs/architecture.md says: it works
 * on the metaparameter through its value/grad functions in double
 * precision, whatever the context's dtype, so the update arithmetic is the
 * same for f32 and f64 runs.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "base/rng.h"
#include "metagrad/mgd.h"
#include "metagrad/mpi.h"
#include "run/run_internal.h"

/* π (M_PI is not in C11) */
#define MGR_PI 3.14159265358979323846

/* Sorting indices through (key, index) pairs keeps the comparator free of
   global state (contexts may be used from several threads). */
typedef struct keyed {
    double key;
    int64_t idx;
} keyed;

/* The optimised variable and what has its size: replaced as a whole by
   mgrad_mgd_set_basis. */
typedef struct vars {
    int64_t n;             /* size of the optimised variable */
    mgrad_mgd_map map;     /* z = map(u), u = basis · c or c (mgrad_mgd_set_map) */
    double *gu;            /* dφ/du [size] (EXP only) */
    double *z, *g, *m, *v; /* optimised variable, its gradient, Adam moments */
    double *basis;         /* [size, n] or NULL: then z is the value itself */
    double *full, *gfull;  /* the value and dφ/dvalue [size] (alias z, g without basis or map) */
    double *scratch;       /* sorting */
    keyed *pairs;          /* sorting indices by a key */
    int64_t *order;        /* indices by descending key (order_by) */
} vars;

struct mgrad_mgd {
    mgrad_context *ctx;
    mgrad_meta *meta;
    mgrad_run *run;
    mgrad_mgd_method method;
    /* settings (mgrad_mgd_param) */
    double lr, mask_prob, beta1, beta2, eps;
    mgrad_mgd_lr_schedule schedule;
    double sched[2]; /* COSINE {total, floor}, STEP {every, gamma}, INV_SQRT {k0} */
    int64_t exchange, best_orders;
    int32_t maximize, reshuffle;
    uint64_t seed;
    mgrad_projection projection;
    double proj[2]; /* BOX {lo, hi}, FIXED_SUM {sum}, TOP_K {k} */
    const mgrad_meta *gradient_from;
    const mgrad_dataset *heldout;
    mgrad_mgd_progress_fn progress;
    void *user_data;
    /* state */
    vars x;
    int64_t size; /* size of the metaparameter */
    int64_t steps;
    double *best; /* [size] */
    double best_score;
    double last_score; /* score of the last iterate trained */
    int has_best;
};

/* ---- settings ------------------------------------------------------------ */

/* One row per mgrad_mgd_param, indexed by key - 1.  methods: a mask of
   M(method) bits, ALL for every method.  EXCHANGE's max is resolved per
   optimiser (size / 2). */
#define M(method) (1u << (method))
#define ALL (M(MGRAD_MGD_SIGN) | M(MGRAD_MGD_ADAM) | M(MGRAD_MGD_SGD) | M(MGRAD_MGD_EXCHANGE) | \
             M(MGRAD_MGD_KEEP_DROP))
typedef struct param_row {
    const char *name;
    int is_int;
    unsigned methods;
    double min, max;
    int min_open, max_open;
    double def;
} param_row;

static const param_row params[] = {
    /* KEEP_DROP swaps whole examples: it has no step size */
    {"lr", 0, ALL & ~M(MGRAD_MGD_KEEP_DROP), 0, INFINITY, 1, 1, 0.01},
    {"mask_prob", 0, M(MGRAD_MGD_SIGN), 0, 1, 1, 0, 1},
    {"beta1", 0, M(MGRAD_MGD_ADAM), 0, 1, 0, 1, 0.9},
    {"beta2", 0, M(MGRAD_MGD_ADAM), 0, 1, 0, 1, 0.999},
    {"eps", 0, M(MGRAD_MGD_ADAM), 0, INFINITY, 1, 1, 1e-8},
    {"exchange", 1, M(MGRAD_MGD_EXCHANGE) | M(MGRAD_MGD_KEEP_DROP), 1, 1, 0, 0, 1},
    {"maximize", 1, ALL, 0, 1, 0, 0, 0},
    {"reshuffle", 1, ALL, 0, 1, 0, 0, 0},
    {"best_orders", 1, ALL, 0, 64, 0, 0, 0},
};
enum { NPARAMS = (int)(sizeof params / sizeof params[0]) };

static const char *method_name(mgrad_mgd_method m)
{
    switch (m) {
    case MGRAD_MGD_SIGN:
        return "SIGN";
    case MGRAD_MGD_ADAM:
        return "ADAM";
    case MGRAD_MGD_SGD:
        return "SGD";
    case MGRAD_MGD_EXCHANGE:
        return "EXCHANGE";
    case MGRAD_MGD_KEEP_DROP:
        return "KEEP_DROP";
    }
    return "?";
}

/* The row of `key` with this optimiser's bounds, or an error naming `fn`. */
static mgrad_status row_of(const mgrad_mgd *mgd, const char *fn, mgrad_mgd_param key,
                           param_row *out)
{
    MGRAD_RETURN_IF(mgd->ctx, (int)key < 1 || (int)key > NPARAMS, MGRAD_ERR_INVALID,
                    "%s: key %d is not an mgrad_mgd_param", fn, (int)key);
    *out = params[key - 1];
    if (key == MGRAD_MGD_PARAM_EXCHANGE) out->max = (double)(mgd->size / 2);
    return MGRAD_OK;
}

static int in_range(const param_row *r, double v)
{
    return (r->min_open ? v > r->min : v >= r->min) && (r->max_open ? v < r->max : v <= r->max);
}

/* Validate a set of `key` to `v` (integer keys: is_int callers). */
static mgrad_status check_set(const mgrad_mgd *mgd, const char *fn, mgrad_mgd_param key,
                              int as_int, double v, param_row *r)
{
    mgrad_context *ctx = mgd->ctx;
    MGRAD_FORWARD(row_of(mgd, fn, key, r));
    MGRAD_RETURN_IF(ctx, r->is_int != as_int, MGRAD_ERR_INVALID,
                    "%s: %s is %s setting; use mgrad_mgd_set_%s", fn, r->name,
                    r->is_int ? "an integer" : "a real", r->is_int ? "int" : "real");
    if (!(r->methods & M(mgd->method))) {
        char readers[64] = "";
        for (int m = MGRAD_MGD_SIGN; m <= MGRAD_MGD_KEEP_DROP; m++)
            if (r->methods & M(m)) {
                if (readers[0] != '\0') strcat(readers, ", ");
                strcat(readers, method_name((mgrad_mgd_method)m));
            }
        return mgr_error(ctx, MGRAD_ERR_INVALID,
                         "%s: %s is a setting of method %s; this optimiser's method is %s", fn,
                         r->name, readers, method_name(mgd->method));
    }
    MGRAD_RETURN_IF(ctx, !in_range(r, v), MGRAD_ERR_INVALID,
                    "%s: %s = %g must be in %c%g, %g%c", fn, r->name, v,
                    r->min_open ? '(' : '[', r->min, r->max, r->max_open ? ')' : ']');
    return MGRAD_OK;
}

mgrad_status mgrad_mgd_get_param_info(const mgrad_mgd *mgd, mgrad_mgd_param key,
                                      mgrad_mgd_param_info *out)
{
    if (mgd == NULL) return MGRAD_ERR_NULL;
    const char *fn = "mgrad_mgd_get_param_info";
    MGRAD_RETURN_IF(mgd->ctx, out == NULL, MGRAD_ERR_NULL, "%s: out is NULL", fn);
    MGRAD_RETURN_IF(mgd->ctx, out->version != MGRAD_MGD_PARAM_INFO_VERSION, MGRAD_ERR_VERSION,
                    "%s: out->version = %u unknown; initialise with "
                    "MGRAD_MGD_PARAM_INFO_INIT",
                    fn, (unsigned)out->version);
    param_row r = params[0]; /* overwritten by row_of; quiets -Wmaybe-uninitialized */
    MGRAD_FORWARD(row_of(mgd, fn, key, &r));
    out->name = r.name;
    out->is_int = r.is_int;
    out->applies = (r.methods & M(mgd->method)) != 0;
    out->min = r.min;
    out->max = r.max;
    out->min_open = r.min_open;
    out->max_open = r.max_open;
    out->default_value = r.def;
    return MGRAD_OK;
}

static double *real_slot(mgrad_mgd *mgd, mgrad_mgd_param key)
{
    switch (key) {
    case MGRAD_MGD_PARAM_LR:
        return &mgd->lr;
    case MGRAD_MGD_PARAM_MASK_PROB:
        return &mgd->mask_prob;
    case MGRAD_MGD_PARAM_BETA1:
        return &mgd->beta1;
    case MGRAD_MGD_PARAM_BETA2:
        return &mgd->beta2;
    case MGRAD_MGD_PARAM_EPS:
        return &mgd->eps;
    default:
        return NULL;
    }
}

mgrad_status mgrad_mgd_set_real(mgrad_mgd *mgd, mgrad_mgd_param key, double value)
{
    if (mgd == NULL) return MGRAD_ERR_NULL;
    param_row r = params[0]; /* overwritten by row_of; quiets -Wmaybe-uninitialized */
    MGRAD_FORWARD(check_set(mgd, "mgrad_mgd_set_real", key, 0, value, &r));
    *real_slot(mgd, key) = value;
    return MGRAD_OK;
}

mgrad_status mgrad_mgd_get_real(const mgrad_mgd *mgd, mgrad_mgd_param key, double *out)
{
    if (mgd == NULL) return MGRAD_ERR_NULL;
    const char *fn = "mgrad_mgd_get_real";
    MGRAD_RETURN_IF(mgd->ctx, out == NULL, MGRAD_ERR_NULL, "%s: out is NULL", fn);
    param_row r = params[0]; /* overwritten by row_of; quiets -Wmaybe-uninitialized */
    MGRAD_FORWARD(row_of(mgd, fn, key, &r));
    MGRAD_RETURN_IF(mgd->ctx, r.is_int, MGRAD_ERR_INVALID,
                    "%s: %s is an integer setting; use mgrad_mgd_get_int", fn, r.name);
    *out = *real_slot((mgrad_mgd *)mgd, key);
    return MGRAD_OK;
}

mgrad_status mgrad_mgd_set_int(mgrad_mgd *mgd, mgrad_mgd_param key, int64_t value)
{
    if (mgd == NULL) return MGRAD_ERR_NULL;
    const char *fn = "mgrad_mgd_set_int";
    param_row r = params[0]; /* overwritten by row_of; quiets -Wmaybe-uninitialized */
    /* the ranges are small: a value beyond them stays beyond them as a double */
    MGRAD_FORWARD(check_set(mgd, fn, key, 1, (double)value, &r));
    switch (key) {
    case MGRAD_MGD_PARAM_EXCHANGE:
        mgd->exchange = value;
        break;
    case MGRAD_MGD_PARAM_MAXIMIZE:
        /* scores of the other sense do not compare */
        if (mgd->maximize != (int32_t)value) mgd->has_best = 0;
        mgd->maximize = (int32_t)value;
        break;
    case MGRAD_MGD_PARAM_RESHUFFLE: {
        int32_t explicit_batches = 0;
        MGRAD_FORWARD(mgrad_run_has_batches(mgd->run, &explicit_batches));
        MGRAD_RETURN_IF(mgd->ctx, value && explicit_batches, MGRAD_ERR_INVALID,
                        "%s: reshuffle needs a run with shuffled batches, not "
                        "options.batches",
                        fn);
        MGRAD_RETURN_IF(mgd->ctx, !value && mgd->best_orders > 0, MGRAD_ERR_INVALID,
                        "%s: reshuffle = 0 with best_orders = %lld; set best_orders to 0 "
                        "first",
                        fn, (long long)mgd->best_orders);
        mgd->reshuffle = (int32_t)value;
        break;
    }
    case MGRAD_MGD_PARAM_BEST_ORDERS:
        /* without reshuffle every iterate trains on the run's one order, so
           scores compare already; the run's seed could not be restored */
        MGRAD_RETURN_IF(mgd->ctx, value > 0 && !mgd->reshuffle, MGRAD_ERR_INVALID,
                        "%s: best_orders scores iterates trained with reshuffle; set "
                        "reshuffle to 1 first",
                        fn);
        if (mgd->best_orders != value) mgd->has_best = 0; /* scored another way */
        mgd->best_orders = value;
        break;
    default:
        break;
    }
    return MGRAD_OK;
}

mgrad_status mgrad_mgd_get_int(const mgrad_mgd *mgd, mgrad_mgd_param key, int64_t *out)
{
    if (mgd == NULL) return MGRAD_ERR_NULL;
    const char *fn = "mgrad_mgd_get_int";
    MGRAD_RETURN_IF(mgd->ctx, out == NULL, MGRAD_ERR_NULL, "%s: out is NULL", fn);
    param_row r = params[0]; /* overwritten by row_of; quiets -Wmaybe-uninitialized */
    MGRAD_FORWARD(row_of(mgd, fn, key, &r));
    MGRAD_RETURN_IF(mgd->ctx, !r.is_int, MGRAD_ERR_INVALID,
                    "%s: %s is a real setting; use mgrad_mgd_get_real", fn, r.name);
    *out = key == MGRAD_MGD_PARAM_EXCHANGE      ? mgd->exchange
           : key == MGRAD_MGD_PARAM_MAXIMIZE    ? mgd->maximize
           : key == MGRAD_MGD_PARAM_BEST_ORDERS ? mgd->best_orders
                                                : mgd->reshuffle;
    return MGRAD_OK;
}

mgrad_status mgrad_mgd_set_seed(mgrad_mgd *mgd, uint64_t seed)
{
    if (mgd == NULL) return MGRAD_ERR_NULL;
    mgd->seed = seed;
    return MGRAD_OK;
}

mgrad_status mgrad_mgd_get_seed(const mgrad_mgd *mgd, uint64_t *out)
{
    if (mgd == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(mgd->ctx, out == NULL, MGRAD_ERR_NULL, "mgrad_mgd_get_seed: out is NULL");
    *out = mgd->seed;
    return MGRAD_OK;
}

/* ---- the schedule of the meta step size ---------------------------------- */

static int64_t schedule_params(mgrad_mgd_lr_schedule kind)
{
    return kind == MGRAD_MGD_LR_COSINE || kind == MGRAD_MGD_LR_STEP ? 2
           : kind == MGRAD_MGD_LR_INV_SQRT                          ? 1
                                                                    : 0;
}

/* The factor of LR at meta-step k (mgd.h). */
static double schedule_factor(const mgrad_mgd *mgd, int64_t k)
{
    const double *p = mgd->sched;
    switch (mgd->schedule) {
    case MGRAD_MGD_LR_COSINE: {
        double u = fmin((double)k, p[0]) / p[0];
        return p[1] + (1 - p[1]) * 0.5 * (1 + cos(MGR_PI * u));
    }
    case MGRAD_MGD_LR_STEP:
        return pow(p[1], floor((double)k / p[0]));
    case MGRAD_MGD_LR_INV_SQRT:
        return 1 / sqrt(1 + (double)k / p[0]);
    case MGRAD_MGD_LR_CONSTANT:
        break;
    }
    return 1;
}

static double lr_now(const mgrad_mgd *mgd) { return mgd->lr * schedule_factor(mgd, mgd->steps); }

mgrad_status mgrad_mgd_set_lr_schedule(mgrad_mgd *mgd, mgrad_mgd_lr_schedule kind,
                                       const double *values, int64_t count)
{
    if (mgd == NULL) return MGRAD_ERR_NULL;
    mgrad_context *ctx = mgd->ctx;
    const char *fn = "mgrad_mgd_set_lr_schedule";
    MGRAD_RETURN_IF(ctx, (int)kind < MGRAD_MGD_LR_CONSTANT || (int)kind > MGRAD_MGD_LR_INV_SQRT,
                    MGRAD_ERR_INVALID, "%s: kind %d is not an mgrad_mgd_lr_schedule", fn,
                    (int)kind);
    MGRAD_RETURN_IF(ctx, mgd->method == MGRAD_MGD_KEEP_DROP, MGRAD_ERR_INVALID,
                    "%s: KEEP_DROP has no step size to schedule", fn);
    int64_t need = schedule_params(kind);
    /* the defaults */
    double p[2] = {kind == MGRAD_MGD_LR_COSINE ? 100.0 : kind == MGRAD_MGD_LR_STEP ? 10.0 : 1.0,
                   kind == MGRAD_MGD_LR_STEP ? 0.5 : 0.0};
    if (values == NULL) {
        MGRAD_RETURN_IF(ctx, count != 0, MGRAD_ERR_NULL, "%s: values is NULL but count = %lld",
                        fn, (long long)count);
    } else {
        MGRAD_RETURN_IF(ctx, count != need, MGRAD_ERR_SIZE,
                        "%s: count = %lld but schedule %d takes %lld parameters", fn,
                        (long long)count, (int)kind, (long long)need);
        for (int64_t i = 0; i < need; i++) p[i] = values[i];
    }
    if (kind == MGRAD_MGD_LR_COSINE)
        MGRAD_RETURN_IF(ctx, !(p[0] >= 1 && isfinite(p[0]) && p[1] >= 0 && p[1] <= 1),
                        MGRAD_ERR_INVALID,
                        "%s: COSINE total = %g must be finite and >= 1, floor = %g in [0, 1]",
                        fn, p[0], p[1]);
    if (kind == MGRAD_MGD_LR_STEP)
        MGRAD_RETURN_IF(ctx, !(p[0] >= 1 && isfinite(p[0]) && p[0] == floor(p[0]) && p[1] > 0 &&
                               p[1] <= 1),
                        MGRAD_ERR_INVALID,
                        "%s: STEP every = %g must be an integer >= 1, gamma = %g in (0, 1]", fn,
                        p[0], p[1]);
    if (kind == MGRAD_MGD_LR_INV_SQRT)
        MGRAD_RETURN_IF(ctx, !(p[0] > 0 && isfinite(p[0])), MGRAD_ERR_INVALID,
                        "%s: INV_SQRT k0 = %g must be positive and finite", fn, p[0]);
    mgd->schedule = kind;
    mgd->sched[0] = p[0];
    mgd->sched[1] = p[1];
    return MGRAD_OK;
}

mgrad_status mgrad_mgd_get_lr_schedule(const mgrad_mgd *mgd, mgrad_mgd_lr_schedule *kind,
                                       double *values, int64_t count)
{
    if (mgd == NULL) return MGRAD_ERR_NULL;
    mgrad_context *ctx = mgd->ctx;
    const char *fn = "mgrad_mgd_get_lr_schedule";
    MGRAD_RETURN_IF(ctx, kind == NULL, MGRAD_ERR_NULL, "%s: kind is NULL", fn);
    int64_t need = schedule_params(mgd->schedule);
    if (count > 0 || values != NULL) {
        MGRAD_RETURN_IF(ctx, values == NULL, MGRAD_ERR_NULL,
                        "%s: values is NULL but count = %lld", fn, (long long)count);
        MGRAD_RETURN_IF(ctx, count < need, MGRAD_ERR_SIZE,
                        "%s: count = %lld but the schedule has %lld parameters", fn,
                        (long long)count, (long long)need);
        for (int64_t i = 0; i < need; i++) values[i] = mgd->sched[i];
    }
    *kind = mgd->schedule;
    return MGRAD_OK;
}

mgrad_status mgrad_mgd_step_size(const mgrad_mgd *mgd, double *out)
{
    if (mgd == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(mgd->ctx, out == NULL, MGRAD_ERR_NULL, "mgrad_mgd_step_size: out is NULL");
    *out = mgd->method == MGRAD_MGD_KEEP_DROP ? 0 : lr_now(mgd);
    return MGRAD_OK;
}

static int64_t projection_params(mgrad_projection kind)
{
    return kind == MGRAD_PROJECT_BOX                                        ? 2
           : kind == MGRAD_PROJECT_FIXED_SUM || kind == MGRAD_PROJECT_TOP_K ? 1
                                                                            : 0;
}

/* Is {kind, p} valid for an optimised variable of n values? */
static mgrad_status check_projection(mgrad_context *ctx, const char *fn, mgrad_projection kind,
                                     const double *p, int64_t n)
{
    if (kind == MGRAD_PROJECT_BOX)
        MGRAD_RETURN_IF(ctx, !(p[0] <= p[1]) || isnan(p[0]) || isnan(p[1]), MGRAD_ERR_INVALID,
                        "%s: BOX lo = %g must be <= hi = %g", fn, p[0], p[1]);
    if (kind == MGRAD_PROJECT_FIXED_SUM)
        MGRAD_RETURN_IF(ctx, !(p[0] > 0 && isfinite(p[0])), MGRAD_ERR_INVALID,
                        "%s: FIXED_SUM sum = %g must be positive and finite", fn, p[0]);
    if (kind == MGRAD_PROJECT_TOP_K)
        MGRAD_RETURN_IF(ctx, !(p[0] >= 1 && p[0] <= (double)n && p[0] == floor(p[0])),
                        MGRAD_ERR_INVALID, "%s: TOP_K k = %g must be an integer in [1, %lld]",
                        fn, p[0], (long long)n);
    return MGRAD_OK;
}

mgrad_status mgrad_mgd_set_projection(mgrad_mgd *mgd, mgrad_projection kind,
                                      const double *values, int64_t count)
{
    if (mgd == NULL) return MGRAD_ERR_NULL;
    mgrad_context *ctx = mgd->ctx;
    const char *fn = "mgrad_mgd_set_projection";
    MGRAD_RETURN_IF(ctx, (int)kind < MGRAD_PROJECT_NONE || (int)kind > MGRAD_PROJECT_TOP_K,
                    MGRAD_ERR_INVALID, "%s: kind %d is not an mgrad_projection", fn, (int)kind);
    int64_t need = projection_params(kind);
    double p[2] = {kind == MGRAD_PROJECT_BOX ? 0.0 : 1.0, 1.0}; /* the defaults */
    if (values == NULL) {
        MGRAD_RETURN_IF(ctx, count != 0, MGRAD_ERR_NULL, "%s: values is NULL but count = %lld",
                        fn, (long long)count);
    } else {
        MGRAD_RETURN_IF(ctx, count != need, MGRAD_ERR_SIZE,
                        "%s: count = %lld but projection %d takes %lld parameters", fn,
                        (long long)count, (int)kind, (long long)need);
        for (int64_t i = 0; i < need; i++) p[i] = values[i];
    }
    MGRAD_FORWARD(check_projection(ctx, fn, kind, p, mgd->x.n));
    /* Both move count between entries and keep the total themselves; a
       projection that rescales or zeroes entries would change it silently. */
    MGRAD_RETURN_IF(ctx,
                    mgd->method == MGRAD_MGD_EXCHANGE &&
                        (kind == MGRAD_PROJECT_FIXED_SUM || kind == MGRAD_PROJECT_TOP_K),
                    MGRAD_ERR_INVALID,
                    "%s: EXCHANGE keeps the total count itself and moves it within the bounds "
                    "of NONE, NONNEGATIVE or BOX; FIXED_SUM and TOP_K would change the total",
                    fn);
    MGRAD_RETURN_IF(ctx, mgd->method == MGRAD_MGD_KEEP_DROP && kind != MGRAD_PROJECT_NONE,
                    MGRAD_ERR_INVALID,
                    "%s: KEEP_DROP keeps a 0/1 selection of a fixed size itself; it takes no "
                    "projection",
                    fn);
    mgd->projection = kind;
    mgd->proj[0] = p[0];
    mgd->proj[1] = p[1];
    return MGRAD_OK;
}

mgrad_status mgrad_mgd_get_projection(const mgrad_mgd *mgd, mgrad_projection *kind,
                                      double *values, int64_t count)
{
    if (mgd == NULL) return MGRAD_ERR_NULL;
    mgrad_context *ctx = mgd->ctx;
    const char *fn = "mgrad_mgd_get_projection";
    MGRAD_RETURN_IF(ctx, kind == NULL, MGRAD_ERR_NULL, "%s: kind is NULL", fn);
    int64_t need = projection_params(mgd->projection);
    if (count > 0 || values != NULL) {
        MGRAD_RETURN_IF(ctx, values == NULL, MGRAD_ERR_NULL,
                        "%s: values is NULL but count = %lld", fn, (long long)count);
        MGRAD_RETURN_IF(ctx, count < need, MGRAD_ERR_SIZE,
                        "%s: count = %lld but the projection has %lld parameters", fn,
                        (long long)count, (long long)need);
        for (int64_t i = 0; i < need; i++) values[i] = mgd->proj[i];
    }
    *kind = mgd->projection;
    return MGRAD_OK;
}

mgrad_status mgrad_mgd_set_gradient_from(mgrad_mgd *mgd, const mgrad_meta *source)
{
    if (mgd == NULL) return MGRAD_ERR_NULL;
    if (source != NULL) {
        mgrad_run *run = NULL;
        int64_t size = 0;
        MGRAD_FORWARD(mgrad_meta_run(source, &run));
        MGRAD_FORWARD(mgrad_meta_size(source, &size));
        MGRAD_RETURN_IF(mgd->ctx, run != mgd->run || size != mgd->size, MGRAD_ERR_INVALID,
                        "mgrad_mgd_set_gradient_from: gradient_from must be a metaparameter "
                        "of the same run and size (%lld values)",
                        (long long)mgd->size);
    }
    mgd->gradient_from = source;
    return MGRAD_OK;
}

mgrad_status mgrad_mgd_set_heldout(mgrad_mgd *mgd, const mgrad_dataset *heldout)
{
    if (mgd == NULL) return MGRAD_ERR_NULL;
    if (heldout != NULL) MGRAD_FORWARD(mgrad_run_check_dataset(mgd->run, heldout));
    if (heldout != mgd->heldout) mgd->has_best = 0; /* scores on another set */
    mgd->heldout = heldout;
    return MGRAD_OK;
}

mgrad_status mgrad_mgd_set_progress(mgrad_mgd *mgd, mgrad_mgd_progress_fn progress,
                                    void *user_data)
{
    if (mgd == NULL) return MGRAD_ERR_NULL;
    mgd->progress = progress;
    mgd->user_data = user_data;
    return MGRAD_OK;
}

mgrad_status mgrad_mgd_method_of(const mgrad_mgd *mgd, mgrad_mgd_method *out)
{
    if (mgd == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(mgd->ctx, out == NULL, MGRAD_ERR_NULL, "mgrad_mgd_method_of: out is NULL");
    *out = mgd->method;
    return MGRAD_OK;
}

/* ---- creation ------------------------------------------------------------ */

static void free_vars(mgrad_context *ctx, vars *x)
{
    void *bufs[] = {x->z,
                    x->g,
                    x->m,
                    x->v,
                    x->scratch,
                    x->order,
                    x->pairs,
                    x->basis,
                    x->gu,
                    x->full != x->z ? x->full : NULL,
                    x->gfull != x->g ? x->gfull : NULL};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) mgr_free(ctx, bufs[i]);
    memset(x, 0, sizeof *x);
}

/* The buffers of an optimised variable of n values (basis [size, n] and its
   coefficients, or NULL: n = size, z the value itself, unless a map other
   than IDENTITY is given: then its coefficients); zeroed moments. */
static mgrad_status alloc_vars(mgrad_context *ctx, int64_t size, int64_t n, const double *basis,
                               const double *coefficients, mgrad_mgd_map map, vars *x)
{
    memset(x, 0, sizeof *x);
    x->n = n;
    x->map = map;
    mgrad_status s = MGRAD_OK;
    double **dbufs[] = {&x->z, &x->g, &x->m, &x->v, &x->scratch};
    for (size_t i = 0; i < sizeof dbufs / sizeof dbufs[0] && s == MGRAD_OK; i++)
        s = mgr_alloc_or_fail(ctx, (void **)dbufs[i], (size_t)n, sizeof(double), "MGD state");
    if (s == MGRAD_OK)
        s = mgr_alloc_or_fail(ctx, (void **)&x->order, (size_t)n, sizeof(int64_t), "MGD state");
    if (s == MGRAD_OK)
        s = mgr_alloc_or_fail(ctx, (void **)&x->pairs, (size_t)n, sizeof(keyed), "MGD state");
    if (s == MGRAD_OK && map == MGRAD_MGD_MAP_EXP)
        s = mgr_alloc_or_fail(ctx, (void **)&x->gu, (size_t)size, sizeof(double), "MGD state");
    if (s == MGRAD_OK && (basis != NULL || map != MGRAD_MGD_MAP_IDENTITY)) {
        if (basis != NULL)
            s = mgr_alloc_or_fail(ctx, (void **)&x->basis, (size_t)size * (size_t)n,
                                  sizeof(double), "the basis");
        if (s == MGRAD_OK)
            s = mgr_alloc_or_fail(ctx, (void **)&x->full, (size_t)size, sizeof(double),
                                  "MGD state");
        if (s == MGRAD_OK)
            s = mgr_alloc_or_fail(ctx, (void **)&x->gfull, (size_t)size, sizeof(double),
                                  "MGD state");
        if (s == MGRAD_OK) {
            if (basis != NULL)
                memcpy(x->basis, basis, (size_t)size * (size_t)n * sizeof(double));
            memcpy(x->z, coefficients, (size_t)n * sizeof(double));
        }
    } else if (s == MGRAD_OK) {
        x->full = x->z;
        x->gfull = x->g;
    }
    if (s != MGRAD_OK) free_vars(ctx, x);
    return s;
}

void mgrad_mgd_destroy(mgrad_mgd *mgd)
{
    if (mgd == NULL) return;
    mgrad_context *ctx = mgd->ctx;
    free_vars(ctx, &mgd->x);
    mgr_free(ctx, mgd->best);
    mgr_free(ctx, mgd);
    mgr_context_release(ctx);
}

mgrad_status mgrad_mgd_create(mgrad_mgd **out, mgrad_meta *meta, mgrad_mgd_method method)
{
    if (meta == NULL) return MGRAD_ERR_NULL;
    mgrad_run *run = NULL;
    mgrad_context *ctx = NULL;
    int64_t size = 0;
    MGRAD_FORWARD(mgrad_meta_run(meta, &run));
    MGRAD_FORWARD(mgrad_run_context(run, &ctx));
    MGRAD_FORWARD(mgrad_meta_size(meta, &size));
    const char *fn = "mgrad_mgd_create";
    MGRAD_RETURN_IF(ctx, out == NULL, MGRAD_ERR_NULL, "%s: out is NULL", fn);
    MGRAD_RETURN_IF(ctx, (int)method < MGRAD_MGD_SIGN || (int)method > MGRAD_MGD_KEEP_DROP,
                    MGRAD_ERR_INVALID, "%s: method = %d is not an mgrad_mgd_method", fn,
                    (int)method);
    MGRAD_RETURN_IF(ctx, (method == MGRAD_MGD_EXCHANGE || method == MGRAD_MGD_KEEP_DROP) &&
                             size < 2,
                    MGRAD_ERR_INVALID,
                    "%s: %s moves count between entries; the metaparameter has %lld", fn,
                    method_name(method), (long long)size);
    mgrad_mgd *mgd = NULL;
    MGRAD_FORWARD(mgr_alloc_or_fail(ctx, (void **)&mgd, 1, sizeof *mgd, "an MGD optimiser"));
    mgd->ctx = ctx;
    mgr_context_retain(ctx);
    mgrad_status s = alloc_vars(ctx, size, size, NULL, NULL, MGRAD_MGD_MAP_IDENTITY, &mgd->x);
    if (s == MGRAD_OK)
        s = mgr_alloc_or_fail(ctx, (void **)&mgd->best, (size_t)size, sizeof(double),
                              "MGD state");
    if (s != MGRAD_OK) {
        mgrad_mgd_destroy(mgd);
        return s;
    }
    mgd->meta = meta;
    mgd->run = run;
    mgd->method = method;
    mgd->size = size;
    mgd->lr = params[MGRAD_MGD_PARAM_LR - 1].def;
    mgd->mask_prob = params[MGRAD_MGD_PARAM_MASK_PROB - 1].def;
    mgd->beta1 = params[MGRAD_MGD_PARAM_BETA1 - 1].def;
    mgd->beta2 = params[MGRAD_MGD_PARAM_BETA2 - 1].def;
    mgd->eps = params[MGRAD_MGD_PARAM_EPS - 1].def;
    mgd->exchange = (int64_t)params[MGRAD_MGD_PARAM_EXCHANGE - 1].def;
    mgd->projection = MGRAD_PROJECT_NONE;
    mgd->proj[0] = 0;
    mgd->proj[1] = 1;
    *out = mgd;
    return MGRAD_OK;
}

mgrad_status mgrad_mgd_set_basis(mgrad_mgd *mgd, const double *basis, int64_t dim,
                                 const double *coefficients)
{
    if (mgd == NULL) return MGRAD_ERR_NULL;
    mgrad_context *ctx = mgd->ctx;
    const char *fn = "mgrad_mgd_set_basis";
    MGRAD_RETURN_IF(ctx, mgd->steps > 0, MGRAD_ERR_ORDER,
                    "%s: after %lld meta-steps; a basis changes the optimised variable, so "
                    "set it before the first",
                    fn, (long long)mgd->steps);
    MGRAD_RETURN_IF(ctx, basis == NULL && (dim != 0 || coefficients != NULL), MGRAD_ERR_NULL,
                    "%s: basis is NULL but dim or coefficients given", fn);
    int64_t n = mgd->size;
    if (basis != NULL) {
        MGRAD_RETURN_IF(ctx, coefficients == NULL, MGRAD_ERR_NULL,
                        "%s: a basis needs its starting coefficients", fn);
        MGRAD_RETURN_IF(ctx, dim < 1 || dim > INT64_MAX / mgd->size, MGRAD_ERR_INVALID,
                        "%s: dim = %lld must be >= 1 and dim * size representable", fn,
                        (long long)dim);
        MGRAD_RETURN_IF(ctx,
                        mgd->method == MGRAD_MGD_EXCHANGE || mgd->method == MGRAD_MGD_KEEP_DROP,
                        MGRAD_ERR_INVALID, "%s: %s works on counts, not on a basis", fn,
                        method_name(mgd->method));
        n = dim;
    }
    MGRAD_RETURN_IF(ctx, mgd->projection == MGRAD_PROJECT_TOP_K && mgd->proj[0] > (double)n,
                    MGRAD_ERR_INVALID,
                    "%s: the TOP_K projection's k = %g exceeds the %lld "
                    "optimised values",
                    fn, mgd->proj[0], (long long)n);
    vars x;
    MGRAD_RETURN_IF(ctx, mgd->x.map != MGRAD_MGD_MAP_IDENTITY, MGRAD_ERR_ORDER,
                    "%s: a map is set; set the basis first, then the map", fn);
    MGRAD_FORWARD(alloc_vars(ctx, mgd->size, n, basis, coefficients, MGRAD_MGD_MAP_IDENTITY, &x));
    free_vars(ctx, &mgd->x);
    mgd->x = x;
    return MGRAD_OK;
}

mgrad_status mgrad_mgd_set_map(mgrad_mgd *mgd, mgrad_mgd_map kind, const double *coefficients,
                              int64_t dim)
{
    if (mgd == NULL) return MGRAD_ERR_NULL;
    mgrad_context *ctx = mgd->ctx;
    const char *fn = "mgrad_mgd_set_map";
    vars *cur = &mgd->x;
    MGRAD_RETURN_IF(ctx, mgd->steps > 0, MGRAD_ERR_ORDER,
                    "%s: after %lld meta-steps; a map changes the optimised variable, so set "
                    "it before the first",
                    fn, (long long)mgd->steps);
    MGRAD_RETURN_IF(ctx, (int)kind < MGRAD_MGD_MAP_IDENTITY || (int)kind > MGRAD_MGD_MAP_ONE_CYCLE,
                    MGRAD_ERR_INVALID, "%s: kind %d is not an mgrad_mgd_map", fn, (int)kind);
    MGRAD_RETURN_IF(ctx,
                    mgd->method == MGRAD_MGD_EXCHANGE || mgd->method == MGRAD_MGD_KEEP_DROP,
                    MGRAD_ERR_INVALID, "%s: %s works on counts, not through a map", fn,
                    method_name(mgd->method));
    MGRAD_RETURN_IF(ctx, coefficients == NULL && dim != 0, MGRAD_ERR_NULL,
                    "%s: coefficients is NULL but dim = %lld", fn, (long long)dim);
    const double *basis = cur->basis;
    int64_t n = basis != NULL ? cur->n : mgd->size;
    double *logs = NULL;
    if (kind == MGRAD_MGD_MAP_IDENTITY) {
        MGRAD_RETURN_IF(ctx, coefficients != NULL, MGRAD_ERR_INVALID,
                        "%s: IDENTITY takes no coefficients (the basis keeps its own)", fn);
        /* with a basis, its coefficients (n = the basis dimension); without
           one, u is the value itself (n = size, read at each step), whatever
           a family's n was */
        coefficients = cur->z;
    } else if (kind == MGRAD_MGD_MAP_EXP) {
        if (coefficients == NULL) {
            MGRAD_RETURN_IF(ctx, basis != NULL, MGRAD_ERR_NULL,
                            "%s: EXP over a basis needs its starting coefficients", fn);
            MGRAD_FORWARD(mgr_alloc_or_fail(ctx, (void **)&logs, (size_t)n, sizeof(double),
                                            "MGD state"));
            mgrad_status s = mgrad_meta_get_value(mgd->meta, MGRAD_DTYPE_F64, logs, n);
            for (int64_t i = 0; i < n && s == MGRAD_OK; i++) {
                if (!(logs[i] > 0 && isfinite(logs[i])))
                    s = mgr_error(ctx, MGRAD_ERR_INVALID,
                                  "%s: EXP starts from log of the value; entry %lld is %g, "
                                  "not positive",
                                  fn, (long long)i, logs[i]);
                else
                    logs[i] = log(logs[i]);
            }
            if (s != MGRAD_OK) {
                mgr_free(ctx, logs);
                return s;
            }
            coefficients = logs;
        } else {
            MGRAD_RETURN_IF(ctx, dim != n, MGRAD_ERR_SIZE,
                            "%s: dim = %lld but EXP here takes %lld coefficients (%s)", fn,
                            (long long)dim, (long long)n,
                            basis != NULL ? "the basis dimension" : "the metaparameter's size");
        }
    } else {
        int64_t need = kind == MGRAD_MGD_MAP_COSINE ? 3 : 4;
        MGRAD_RETURN_IF(ctx, basis != NULL, MGRAD_ERR_INVALID,
                        "%s: a schedule family is its own parametrisation; remove the basis", fn);
        MGRAD_RETURN_IF(ctx, coefficients == NULL, MGRAD_ERR_NULL,
                        "%s: a schedule family needs its starting coefficients", fn);
        MGRAD_RETURN_IF(ctx, dim != need, MGRAD_ERR_SIZE, "%s: dim = %lld but %s takes %lld",
                        fn, (long long)dim, kind == MGRAD_MGD_MAP_COSINE ? "COSINE" : "ONE_CYCLE",
                        (long long)need);
        double lo = kind == MGRAD_MGD_MAP_COSINE ? 0.0 : 0.01;
        for (int64_t j = 0; j < need - 1; j++)
            MGRAD_RETURN_IF(ctx, !(coefficients[j] >= 0 && isfinite(coefficients[j])),
                            MGRAD_ERR_INVALID, "%s: coefficient %lld = %g must be >= 0 and finite",
                            fn, (long long)j, coefficients[j]);
        MGRAD_RETURN_IF(ctx, !(coefficients[need - 1] >= lo && coefficients[need - 1] <= 0.99),
                        MGRAD_ERR_INVALID, "%s: the share (coefficient %lld) = %g must be in [%g, 0.99]",
                        fn, (long long)(need - 1), coefficients[need - 1], lo);
        n = need;
    }
    if (kind == MGRAD_MGD_MAP_EXP)
        for (int64_t j = 0; j < n; j++)
            MGRAD_RETURN_IF(ctx, !isfinite(coefficients[j]), MGRAD_ERR_INVALID,
                            "%s: coefficient %lld = %g is not finite", fn, (long long)j,
                            coefficients[j]);
    MGRAD_RETURN_IF(ctx, mgd->projection == MGRAD_PROJECT_TOP_K && mgd->proj[0] > (double)n,
                    MGRAD_ERR_INVALID,
                    "%s: the TOP_K projection's k = %g exceeds the %lld optimised values", fn,
                    mgd->proj[0], (long long)n);
    vars x;
    mgrad_status s = alloc_vars(ctx, mgd->size, n, basis, coefficients, kind, &x);
    mgr_free(ctx, logs);
    MGRAD_FORWARD(s);
    free_vars(ctx, cur);
    mgd->x = x;
    return MGRAD_OK;
}

mgrad_status mgrad_mgd_get_map(const mgrad_mgd *mgd, mgrad_mgd_map *kind, int64_t *dim)
{
    if (mgd == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(mgd->ctx, kind == NULL, MGRAD_ERR_NULL, "mgrad_mgd_get_map: kind is NULL");
    *kind = mgd->x.map;
    if (dim != NULL) *dim = mgd->x.n;
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

static void order_by(vars *x, const double *key)
{
    for (int64_t i = 0; i < x->n; i++) x->pairs[i] = (keyed){key[i], i};
    qsort(x->pairs, (size_t)x->n, sizeof(keyed), cmp_keyed_desc);
    for (int64_t i = 0; i < x->n; i++) x->order[i] = x->pairs[i].idx;
}

static void project(mgrad_mgd *mgd)
{
    vars *x = &mgd->x;
    double *z = x->z;
    int64_t n = x->n;
    switch (mgd->projection) {
    case MGRAD_PROJECT_NONE:
        break;
    case MGRAD_PROJECT_BOX:
        for (int64_t i = 0; i < n; i++) z[i] = fmin(fmax(z[i], mgd->proj[0]), mgd->proj[1]);
        break;
    case MGRAD_PROJECT_NONNEGATIVE:
        for (int64_t i = 0; i < n; i++) z[i] = fmax(z[i], 0.0);
        break;
    case MGRAD_PROJECT_FIXED_SUM: {
        /* Euclidean projection onto the scaled simplex (Held et al.; Duchi
           et al. 2008): τ from the sorted values, z = max(z − τ, 0). */
        double *u = x->scratch, sum = mgd->proj[0];
        memcpy(u, z, (size_t)n * sizeof *u);
        qsort(u, (size_t)n, sizeof *u, cmp_desc);
        double cum = 0, tau = 0;
        for (int64_t j = 0; j < n; j++) {
            cum += u[j];
            double t = (cum - sum) / (double)(j + 1);
            if (u[j] - t > 0) tau = t;
        }
        for (int64_t i = 0; i < n; i++) z[i] = fmax(z[i] - tau, 0.0);
        break;
    }
    case MGRAD_PROJECT_TOP_K:
        order_by(x, z);
        for (int64_t r = (int64_t)mgd->proj[0]; r < n; r++) z[x->order[r]] = 0;
        break;
    }
}

/* ---- updates ------------------------------------------------------------ */

static void update(mgrad_mgd *mgd)
{
    vars *x = &mgd->x;
    double *z = x->z, *g = x->g, lr = lr_now(mgd);
    int64_t n = x->n;
    switch (mgd->method) {
    case MGRAD_MGD_SIGN:
        for (int64_t i = 0; i < n; i++) {
            int keep = mgd->mask_prob >= 1 ||
                       mgr_rng_uniform(mgd->seed, MGR_STREAM_USER + ((uint64_t)mgd->steps << 8),
                                       (uint64_t)i) < mgd->mask_prob;
            double sg = (g[i] > 0) - (g[i] < 0);
            if (keep) z[i] -= lr * sg;
        }
        break;
    case MGRAD_MGD_ADAM: {
        /* bias correction with the current β and the total step count, so
           that a β changed between steps keeps the moments (mgd.h) */
        double k = (double)(mgd->steps + 1);
        double b1 = mgd->beta1, b2 = mgd->beta2;
        double c1 = 1 - pow(b1, k), c2 = 1 - pow(b2, k);
        for (int64_t i = 0; i < n; i++) {
            x->m[i] = b1 * x->m[i] + (1 - b1) * g[i];
            x->v[i] = b2 * x->v[i] + (1 - b2) * g[i] * g[i];
            z[i] -= lr * (x->m[i] / c1) / (sqrt(x->v[i] / c2) + mgd->eps);
        }
        break;
    }
    case MGRAD_MGD_SGD:
        for (int64_t i = 0; i < n; i++) z[i] -= lr * g[i];
        break;
    case MGRAD_MGD_EXCHANGE: {
        /* Pair the r-th largest g among the entries that can give (z > lo)
           with the r-th smallest among those that can take (z < hi), the
           two disjoint; each pair moves min(units, z_d - lo, hi - z_r).
           The total is unchanged and the bounds hold, so the projection
           after it (NONE, NONNEGATIVE or BOX) changes nothing. */
        double units = fmax(1.0, round(lr)), lo = 0, hi = INFINITY;
        if (mgd->projection == MGRAD_PROJECT_BOX) {
            lo = fmax(lo, mgd->proj[0]);
            hi = mgd->proj[1];
        }
        order_by(x, g);
        int64_t d = 0, r = n - 1;
        for (int64_t pair = 0; pair < mgd->exchange; pair++, d++, r--) {
            while (d < r && !(z[x->order[d]] > lo)) d++;
            while (r > d && !(z[x->order[r]] < hi)) r--;
            if (d >= r) break;
            int64_t i = x->order[d], j = x->order[r];
            double amount = fmin(units, fmin(z[i] - lo, hi - z[j]));
            z[i] -= amount;
            z[j] += amount;
        }
        break;
    }
    case MGRAD_MGD_KEEP_DROP: {
        /* Swap the kept entry with the largest g for the dropped one with
           the smallest, pair by pair while the swap lowers the linearised
           φ (g_dropped < g_kept): a selection that no single swap improves
           stays put instead of cycling.  Order is by descending g, so an
           entry swapped once cannot qualify again this step. */
        order_by(x, g);
        int64_t d = 0, r = n - 1;
        for (int64_t pair = 0; pair < mgd->exchange; pair++, d++, r--) {
            while (d < n && z[x->order[d]] != 1) d++;
            while (r >= 0 && z[x->order[r]] != 0) r--;
            if (d >= n || r < 0) break;
            int64_t i = x->order[d], j = x->order[r];
            if (!(g[j] < g[i])) break;
            z[i] = 0;
            z[j] = 1;
        }
        break;
    }
    }
}

/* Position s_t = t / (size − 1) of entry t of a schedule family. */
static double family_pos(int64_t t, int64_t size)
{
    return size > 1 ? (double)t / (double)(size - 1) : 0.0;
}

/* A schedule family's value at s and its derivatives d[0..dim) by the
   coefficients c (mgd.h gives the formulas; docs/architecture.md). */
static double family(mgrad_mgd_map map, const double *c, double s, double *d)
{
    if (map == MGRAD_MGD_MAP_COSINE) {
        double P = c[0], F = c[1], w = c[2];
        if (s < w) {
            d[0] = s / w;
            d[1] = 0;
            d[2] = -P * s / (w * w);
            return P * s / w;
        }
        double v = (s - w) / (1 - w), cv = 0.5 * (1 + cos(MGR_PI * v));
        double dcv = -0.5 * MGR_PI * sin(MGR_PI * v);
        d[0] = cv;
        d[1] = 1 - cv;
        d[2] = (P - F) * dcv * (s - 1) / ((1 - w) * (1 - w));
        return F + (P - F) * cv;
    }
    /* ONE_CYCLE {peak, start, end, pct} */
    double P = c[0], S = c[1], E = c[2], p = c[3];
    if (s < p) {
        double v = s / p, cv = 0.5 * (1 + cos(MGR_PI * v));
        double dcv = -0.5 * MGR_PI * sin(MGR_PI * v);
        d[0] = 1 - cv;
        d[1] = cv;
        d[2] = 0;
        d[3] = (S - P) * dcv * (-s / (p * p));
        return P + (S - P) * cv;
    }
    double v = (s - p) / (1 - p), cv = 0.5 * (1 + cos(MGR_PI * v));
    double dcv = -0.5 * MGR_PI * sin(MGR_PI * v);
    d[0] = cv;
    d[1] = 0;
    d[2] = 1 - cv;
    d[3] = (P - E) * dcv * (s - 1) / ((1 - p) * (1 - p));
    return E + (P - E) * cv;
}

static int is_family(mgrad_mgd_map map)
{
    return map == MGRAD_MGD_MAP_COSINE || map == MGRAD_MGD_MAP_ONE_CYCLE;
}

/* full = map(u), u = basis · z ([size, n] · [n]) or z */
static void expand(mgrad_mgd *mgd)
{
    vars *x = &mgd->x;
    if (is_family(x->map)) {
        double d[4];
        for (int64_t t = 0; t < mgd->size; t++)
            x->full[t] = family(x->map, x->z, family_pos(t, mgd->size), d);
        return;
    }
    for (int64_t i = 0; i < mgd->size; i++) {
        double acc = x->z[i < x->n ? i : 0];
        if (x->basis != NULL) {
            acc = 0;
            for (int64_t j = 0; j < x->n; j++) acc += x->basis[i * x->n + j] * x->z[j];
        }
        x->full[i] = x->map == MGRAD_MGD_MAP_EXP ? exp(acc) : acc;
    }
}

/* g = Jᵀ gfull for z = map(basis · c): the chain rule through the map (exact
   Jacobians), then basisᵀ. */
static void pullback(mgrad_mgd *mgd)
{
    vars *x = &mgd->x;
    if (is_family(x->map)) {
        double d[4];
        for (int64_t j = 0; j < x->n; j++) x->g[j] = 0;
        for (int64_t t = 0; t < mgd->size; t++) {
            (void)family(x->map, x->z, family_pos(t, mgd->size), d);
            for (int64_t j = 0; j < x->n; j++) x->g[j] += d[j] * x->gfull[t];
        }
        return;
    }
    const double *gu = x->gfull;
    if (x->map == MGRAD_MGD_MAP_EXP) {
        /* d exp(u)/du = exp(u), the value itself */
        for (int64_t i = 0; i < mgd->size; i++) x->gu[i] = x->full[i] * x->gfull[i];
        gu = x->gu;
    }
    if (x->basis != NULL) {
        for (int64_t j = 0; j < x->n; j++) x->g[j] = 0;
        for (int64_t i = 0; i < mgd->size; i++)
            for (int64_t j = 0; j < x->n; j++) x->g[j] += x->basis[i * x->n + j] * gu[i];
    } else {
        memcpy(x->g, gu, (size_t)x->n * sizeof(double));
    }
}

/* A family's coefficients kept in its domain after an update (mgd.h). */
static void family_domain(vars *x)
{
    if (!is_family(x->map)) return;
    for (int64_t j = 0; j < x->n - 1; j++) x->z[j] = fmax(x->z[j], 0.0);
    double *share = &x->z[x->n - 1];
    *share = x->map == MGRAD_MGD_MAP_COSINE ? fmin(fmax(*share, 0.0), 0.99)
                                            : fmin(fmax(*share, 0.01), 0.99);
}

/* The value a step starts from must be one the method keeps its promise
   on: KEEP_DROP a 0/1 vector, EXCHANGE a value inside the BOX (the total
   would change when the projection clips it). */
static mgrad_status check_start(mgrad_mgd *mgd, const double *z)
{
    mgrad_context *ctx = mgd->ctx;
    for (int64_t i = 0; i < mgd->size; i++) {
        MGRAD_RETURN_IF(ctx, mgd->method == MGRAD_MGD_KEEP_DROP && z[i] != 0 && z[i] != 1,
                        MGRAD_ERR_INVALID,
                        "mgrad_mgd_step: KEEP_DROP selects with a 0/1 vector; entry %lld of "
                        "the metaparameter is %g",
                        (long long)i, z[i]);
        MGRAD_RETURN_IF(ctx,
                        mgd->method == MGRAD_MGD_EXCHANGE &&
                            mgd->projection == MGRAD_PROJECT_BOX &&
                            !(z[i] >= mgd->proj[0] && z[i] <= mgd->proj[1]),
                        MGRAD_ERR_INVALID,
                        "mgrad_mgd_step: entry %lld = %g is outside the BOX [%g, %g]; EXCHANGE "
                        "keeps the total only for a value inside it",
                        (long long)i, z[i], mgd->proj[0], mgd->proj[1]);
    }
    return MGRAD_OK;
}

/* The score of the trained run: mean held-out loss of θ_T, or φ. */
static mgrad_status score_of(mgrad_mgd *mgd, double phi, double *out)
{
    *out = phi;
    if (mgd->heldout != NULL) MGRAD_FORWARD(mgrad_run_evaluate(mgd->run, mgd->heldout, out, NULL));
    return MGRAD_OK;
}

/* Train the current value, score it, keep it if best.  Without a basis the
   value is read from the metaparameter (the caller may have changed it);
   with one it is basis · z.  With BEST_ORDERS = k > 0 the score is the mean
   over k extra trainings on fixed batch orders (the same for every
   iterate), and the training for the metagradient comes last. */
static mgrad_status train_and_score(mgrad_mgd *mgd, double *phi)
{
    vars *x = &mgd->x;
    if (x->full != x->z) {
        expand(mgd);
        MGRAD_FORWARD(mgrad_meta_set_value(mgd->meta, MGRAD_DTYPE_F64, x->full, mgd->size));
    } else {
        MGRAD_FORWARD(mgrad_meta_get_value(mgd->meta, MGRAD_DTYPE_F64, x->z, x->n));
        MGRAD_FORWARD(check_start(mgd, x->z));
    }
    double score = 0;
    for (int64_t j = 0; j < mgd->best_orders; j++) {
        double p = 0, sj = 0;
        MGRAD_FORWARD(mgrad_run_set_shuffle_seed(
            mgd->run, mgr_rng_u64(mgd->seed, MGR_STREAM_SHUFFLE + (1u << 8), (uint64_t)j)));
        MGRAD_FORWARD(mgr_run_train_value(mgd->run, &p));
        MGRAD_FORWARD(score_of(mgd, p, &sj));
        score += sj;
    }
    if (mgd->reshuffle)
        MGRAD_FORWARD(mgrad_run_set_shuffle_seed(
            mgd->run, mgr_rng_u64(mgd->seed, MGR_STREAM_SHUFFLE, (uint64_t)mgd->steps)));
    MGRAD_FORWARD(mgrad_run_train(mgd->run, phi));
    if (mgd->best_orders > 0)
        score /= (double)mgd->best_orders;
    else
        MGRAD_FORWARD(score_of(mgd, *phi, &score));
    mgd->last_score = score;
    int better = mgd->maximize ? score > mgd->best_score : score < mgd->best_score;
    if (!mgd->has_best || better) {
        memcpy(mgd->best, x->full, (size_t)mgd->size * sizeof(double));
        mgd->best_score = score;
        mgd->has_best = 1;
    }
    return MGRAD_OK;
}

mgrad_status mgrad_mgd_step(mgrad_mgd *mgd, double *phi)
{
    if (mgd == NULL) return MGRAD_ERR_NULL;
    vars *x = &mgd->x;
    double value = 0;
    MGRAD_FORWARD(train_and_score(mgd, &value));
    MGRAD_FORWARD(mgrad_run_reverse(mgd->run));
    const mgrad_meta *src = mgd->gradient_from != NULL ? mgd->gradient_from : mgd->meta;
    /* the sum over the ranks on a data-parallel run (metagrad/mpi.h), so that
       every rank takes the same step; mgrad_meta_get_grad otherwise */
    MGRAD_FORWARD(mgrad_meta_gather_grad(src, -1, MGRAD_DTYPE_F64, x->gfull, mgd->size));
    if (x->full != x->z) pullback(mgd); /* dφ/dc from dφ/dz */
    if (mgd->maximize)
        for (int64_t i = 0; i < x->n; i++) x->g[i] = -x->g[i];
    update(mgd);
    project(mgd);
    family_domain(x);
    if (x->full != x->z) expand(mgd);
    MGRAD_FORWARD(mgrad_meta_set_value(mgd->meta, MGRAD_DTYPE_F64, x->full, mgd->size));
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
        /* read after the step: the hook may replace itself */
        if (mgd->progress != NULL) {
            if (mgd->progress(step, phi, mgd->last_score, mgr_seconds() - t0, mgd->user_data) !=
                0)
                return mgr_error(mgd->ctx, MGRAD_ERR_CANCELLED,
                                 "mgrad_mgd_run: cancelled by the progress callback after "
                                 "meta-step %lld",
                                 (long long)step);
        }
    }
    double phi = 0;
    return train_and_score(mgd, &phi);
}

mgrad_status mgrad_mgd_best(const mgrad_mgd *mgd, mgrad_dtype dtype, void *out, int64_t count,
                            double *score)
{
    if (mgd == NULL) return MGRAD_ERR_NULL;
    mgrad_context *ctx = mgd->ctx;
    MGRAD_RETURN_IF(ctx, out == NULL, MGRAD_ERR_NULL, "mgrad_mgd_best: out is NULL");
    MGRAD_RETURN_IF(ctx, dtype != MGRAD_DTYPE_F32 && dtype != MGRAD_DTYPE_F64, MGRAD_ERR_DTYPE,
                    "mgrad_mgd_best: unknown dtype %d", (int)dtype);
    MGRAD_RETURN_IF(ctx, count != mgd->size, MGRAD_ERR_SIZE,
                    "mgrad_mgd_best: count = %lld but the metaparameter has %lld values",
                    (long long)count, (long long)mgd->size);
    MGRAD_RETURN_IF(ctx, !mgd->has_best, MGRAD_ERR_ORDER,
                    "mgrad_mgd_best: no iterate scored yet (or since the held-out set or "
                    "MAXIMIZE changed); did you forget mgrad_mgd_step?");
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
