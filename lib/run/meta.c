/*
 * meta.c - metaparameters: registration, values and gradients.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "run/run_internal.h"

mgrad_status mgrad_meta_options_init(mgrad_meta_options *opts, uint32_t version)
{
    if (opts == NULL) return MGRAD_ERR_NULL;
    if (version != MGRAD_META_OPTIONS_VERSION) return MGRAD_ERR_VERSION;
    mgrad_meta_options d = MGRAD_META_OPTIONS_INIT;
    *opts = d;
    return MGRAD_OK;
}

static const char *kind_name(mgrad_meta_kind kind)
{
    switch (kind) {
    case MGRAD_META_DATA_WEIGHTS: return "DATA_WEIGHTS";
    case MGRAD_META_POOL_WEIGHTS: return "POOL_WEIGHTS";
    case MGRAD_META_INPUTS: return "INPUTS";
    case MGRAD_META_SOFT_LABELS: return "SOFT_LABELS";
    case MGRAD_META_LR_SCHEDULE: return "LR_SCHEDULE";
    case MGRAD_META_WEIGHT_DECAY: return "WEIGHT_DECAY";
    case MGRAD_META_MOMENTUM: return "MOMENTUM";
    case MGRAD_META_BETA2: return "BETA2";
    case MGRAD_META_INITIAL_PARAMS: return "INITIAL_PARAMS";
    }
    return "unknown";
}

static mgrad_meta *find_kind(const mgrad_run *run, mgrad_meta_kind kind)
{
    for (int i = 0; i < run->metas.count; i++)
        if (run->metas.all[i]->kind == kind) return run->metas.all[i];
    return NULL;
}

/* Validate a registration; fills *size and *cols. */
static mgrad_status check_meta(mgrad_run *run, mgrad_meta_kind kind,
                               const mgrad_meta_options *o, int64_t *size, int64_t *cols)
{
    mgrad_context *ctx = run->ctx;
    const char *fn = "mgrad_run_add_meta";
    int64_t T = run->config.steps, N = run->config.train->n, F = run->config.train->features;
    *cols = 1;
    MGRAD_FORWARD(mgr_cb_check_meta(run, kind));
    switch (kind) {
    case MGRAD_META_DATA_WEIGHTS: {
        int64_t end = o->step_end < 0 ? T : o->step_end;
        MGRAD_RETURN_IF(ctx, o->step_begin < 0 || o->step_begin >= end || end > T,
                        MGRAD_ERR_INVALID, "%s: DATA_WEIGHTS window [%lld, %lld) must satisfy "
                        "0 <= step_begin < step_end <= T = %lld", fn,
                        (long long)o->step_begin, (long long)end, (long long)T);
        for (int i = 0; i < run->metas.count; i++) {
            const mgrad_meta *m = run->metas.all[i];
            MGRAD_RETURN_IF(ctx, m->kind == MGRAD_META_DATA_WEIGHTS &&
                            o->step_begin < m->step_end && m->step_begin < end,
                            MGRAD_ERR_INVALID, "%s: DATA_WEIGHTS window [%lld, %lld) "
                            "overlaps the registered window [%lld, %lld)", fn,
                            (long long)o->step_begin, (long long)end,
                            (long long)m->step_begin, (long long)m->step_end);
        }
        *size = N;
        return MGRAD_OK;
    }
    case MGRAD_META_POOL_WEIGHTS: {
        MGRAD_RETURN_IF(ctx, o->step < 0 || o->step >= T, MGRAD_ERR_INVALID,
                        "%s: POOL_WEIGHTS needs options.step in [0, T = %lld), got %lld", fn,
                        (long long)T, (long long)o->step);
        const mgrad_dataset *pool = o->pool != NULL ? o->pool : run->config.train;
        MGRAD_RETURN_IF(ctx, pool->ctx != ctx, MGRAD_ERR_INVALID,
                        "%s: the pool comes from another context", fn);
        MGRAD_RETURN_IF(ctx, pool->features != F, MGRAD_ERR_SHAPE,
                        "%s: the pool has %lld values per example but the model takes %lld",
                        fn, (long long)pool->features, (long long)F);
        if (run->config.opts.loss == MGRAD_LOSS_NEXT_TOKEN)
            MGRAD_FORWARD(mgr_run_check_tokens(ctx, fn, pool, "pool", F, run->model.classes));
        else if (run->config.opts.loss == MGRAD_LOSS_CROSS_ENTROPY)
            MGRAD_RETURN_IF(ctx, pool->labels == NULL ||
                            pool->num_classes != run->model.classes,
                            MGRAD_ERR_SHAPE, "%s: the pool needs labels of %lld classes",
                            fn, (long long)run->model.classes);
        else
            MGRAD_RETURN_IF(ctx, pool->targets == NULL ||
                            pool->target_dim != run->model.classes,
                            MGRAD_ERR_SHAPE, "%s: the pool needs targets of dimension %lld",
                            fn, (long long)run->model.classes);
        /* its chunks are evaluated in training mode, like the batch */
        MGRAD_FORWARD(mgr_run_check_norm_rows(run, fn, "the pool", pool->n, 1));
        *size = pool->n;
        return MGRAD_OK;
    }
    case MGRAD_META_INPUTS: {
        /* Token ids are integers: no derivative to take (and a meta-step
           would move them off the integers). */
        MGRAD_RETURN_IF(ctx, run->config.opts.loss == MGRAD_LOSS_NEXT_TOKEN ||
                        mgr_graph_reads_tokens(&run->model.graph), MGRAD_ERR_UNSUPPORTED,
                        "%s: INPUTS: the model's inputs are token ids, which have no "
                        "derivative; use DATA_WEIGHTS to weigh examples instead", fn);
        int64_t R = o->rows != NULL ? o->num_rows : N;
        MGRAD_RETURN_IF(ctx, o->rows != NULL && o->num_rows < 1, MGRAD_ERR_INVALID,
                        "%s: INPUTS: options.num_rows must be >= 1 with options.rows", fn);
        for (int64_t r = 0; o->rows != NULL && r < R; r++) {
            int64_t i = o->rows[r];
            MGRAD_RETURN_IF(ctx, i < 0 || i >= N, MGRAD_ERR_INVALID,
                            "%s: INPUTS: options.rows[%lld] = %lld is not a training row "
                            "(N = %lld)", fn, (long long)r, (long long)i, (long long)N);
            MGRAD_RETURN_IF(ctx, run->metas.input_meta != NULL && run->metas.input_meta[i] >= 0,
                            MGRAD_ERR_INVALID, "%s: INPUTS: training row %lld is already "
                            "part of a registered INPUTS metaparameter", fn, (long long)i);
            for (int64_t q = 0; q < r; q++)
                MGRAD_RETURN_IF(ctx, o->rows[q] == i, MGRAD_ERR_INVALID,
                                "%s: INPUTS: row %lld is listed twice", fn, (long long)i);
        }
        MGRAD_RETURN_IF(ctx, o->rows == NULL && run->metas.input_meta != NULL,
                        MGRAD_ERR_INVALID,
                        "%s: INPUTS of all rows overlaps a registered INPUTS "
                        "metaparameter", fn);
        *size = R * F;
        *cols = F;
        return MGRAD_OK;
    }
    case MGRAD_META_SOFT_LABELS:
        /* The next-token loss takes its targets from the inputs. */
        MGRAD_RETURN_IF(ctx, run->config.opts.loss == MGRAD_LOSS_NEXT_TOKEN,
                        MGRAD_ERR_UNSUPPORTED,
                        "%s: SOFT_LABELS: the next-token loss has no labels (its targets "
                        "are the input tokens); use DATA_WEIGHTS to weigh examples", fn);
        *size = N * run->model.classes;
        *cols = run->model.classes;
        break;
    case MGRAD_META_LR_SCHEDULE:
        *size = T;
        break;
    case MGRAD_META_WEIGHT_DECAY:
    case MGRAD_META_MOMENTUM:
        *size = 1;
        break;
    case MGRAD_META_BETA2:
        MGRAD_RETURN_IF(ctx, run->config.opts.optimizer == MGRAD_OPTIMIZER_SGD,
                        MGRAD_ERR_INVALID,
                        "%s: BETA2 applies to Adam and AdamW, not SGD", fn);
        *size = 1;
        break;
    case MGRAD_META_INITIAL_PARAMS:
        *size = run->model.num_params;
        break;
    default:
        return mgr_error(ctx, MGRAD_ERR_INVALID, "%s: kind %d is not an mgrad_meta_kind",
                         fn, (int)kind);
    }
    MGRAD_RETURN_IF(ctx, find_kind(run, kind) != NULL, MGRAD_ERR_INVALID,
                    "%s: a %s metaparameter is already registered on this run", fn,
                    kind_name(kind));
    return MGRAD_OK;
}

/* Write the run's current setting of the metaparameter into m->value. */
static void initial_value(mgrad_run *run, mgrad_meta *m, const mgrad_meta_options *o)
{
    mgrad_dtype dt = run->ctx->dtype;
    size_t es = mgr_dtype_size(dt);
    const mgrad_dataset *tr = run->config.train;
    size_t n = (size_t)m->size;
    double scalar = 0; /* small scalars go through a double */
    switch (m->kind) {
    case MGRAD_META_DATA_WEIGHTS:
        if (tr->weights != NULL) {
            memcpy(m->value, tr->weights, n * es);
            return;
        }
        for (size_t i = 0; i < n; i++) {
            double one = 1;
            mgr_convert((char *)m->value + i * es, dt, &one, MGRAD_DTYPE_F64, 1, 0);
        }
        return;
    case MGRAD_META_POOL_WEIGHTS:
        return; /* calloc'd: 0 */
    case MGRAD_META_INPUTS: {
        size_t F = (size_t)tr->features;
        size_t R = (size_t)(m->size / (int64_t)F);
        for (size_t r = 0; r < R; r++) {
            size_t i = o->rows != NULL ? (size_t)o->rows[r] : r;
            mgr_dataset_copy_row(tr, (int64_t)i, (char *)m->value + r * F * es);
        }
        return;
    }
    case MGRAD_META_SOFT_LABELS: {
        size_t C = (size_t)run->model.classes;
        if (run->config.opts.loss == MGRAD_LOSS_SQUARED_ERROR) {
            memcpy(m->value, tr->targets, n * es);
            return;
        }
        double a = run->config.opts.label_smoothing;
        for (size_t i = 0; i < (size_t)tr->n; i++)
            for (size_t j = 0; j < C; j++) {
                double q = a / (double)C + ((int32_t)j == tr->labels[i] ? 1 - a : 0);
                mgr_convert((char *)m->value + (i * C + j) * es, dt, &q, MGRAD_DTYPE_F64, 1, 0);
            }
        return;
    }
    case MGRAD_META_LR_SCHEDULE:
        mgr_convert(m->value, dt, run->config.lr, MGRAD_DTYPE_F64, n, 0);
        return;
    case MGRAD_META_WEIGHT_DECAY: scalar = run->config.opts.weight_decay; break;
    case MGRAD_META_MOMENTUM:
        scalar = run->config.opts.optimizer == MGRAD_OPTIMIZER_SGD ? run->config.opts.momentum
                                                                   : run->config.opts.beta1;
        break;
    case MGRAD_META_BETA2: scalar = run->config.opts.beta2; break;
    case MGRAD_META_INITIAL_PARAMS:
        memcpy(m->value, run->model.theta0, n * es);
        return;
    }
    mgr_convert(m->value, dt, &scalar, MGRAD_DTYPE_F64, 1, 0);
}

mgrad_status mgrad_run_add_meta(mgrad_meta **out, mgrad_run *run, mgrad_meta_kind kind,
                                const mgrad_meta_options *opts)
{
    if (run == NULL) return MGRAD_ERR_NULL;
    mgrad_context *ctx = run->ctx;
    MGRAD_RETURN_IF(ctx, out == NULL, MGRAD_ERR_NULL, "mgrad_run_add_meta: out is NULL");
    mgrad_meta_options o = MGRAD_META_OPTIONS_INIT;
    if (opts != NULL) {
        MGRAD_RETURN_IF(ctx, opts->version != MGRAD_META_OPTIONS_VERSION, MGRAD_ERR_VERSION,
                        "mgrad_run_add_meta: options version %u unknown; initialise with "
                        "MGRAD_META_OPTIONS_INIT", (unsigned)opts->version);
        o = *opts;
    }
    MGRAD_RETURN_IF(ctx, run->metas.count >= MGR_MAX_METAS, MGRAD_ERR_INVALID,
                    "mgrad_run_add_meta: at most %d metaparameters per run", MGR_MAX_METAS);
    int64_t size = 0, cols = 1;
    MGRAD_FORWARD(check_meta(run, kind, &o, &size, &cols));

    size_t es = mgr_dtype_size(ctx->dtype);
    mgrad_meta *m = NULL;
    MGRAD_FORWARD(mgr_alloc_or_fail(ctx, (void **)&m, 1, sizeof *m, "a metaparameter"));
    mgrad_status s = mgr_alloc_or_fail(ctx, &m->value, (size_t)size, es, "its value");
    if (s == MGRAD_OK) s = mgr_alloc_or_fail(ctx, &m->grad, (size_t)size, es, "its gradient");
    if (s == MGRAD_OK && kind == MGRAD_META_INPUTS) {
        int64_t R = size / cols;
        s = mgr_alloc_or_fail(ctx, (void **)&m->rows, (size_t)R, sizeof(int64_t), "rows");
        if (s == MGRAD_OK && run->metas.input_meta == NULL) {
            size_t N = (size_t)run->config.train->n;
            s = mgr_alloc_or_fail(ctx, (void **)&run->metas.input_meta, N, sizeof(int32_t),
                                  "the input map");
            if (s == MGRAD_OK)
                s = mgr_alloc_or_fail(ctx, (void **)&run->metas.input_row, N, sizeof(int64_t),
                                      "the input map");
            if (s == MGRAD_OK)
                for (size_t i = 0; i < N; i++) run->metas.input_meta[i] = -1;
            else {
                mgr_free(ctx, run->metas.input_meta);
                run->metas.input_meta = NULL;
            }
        }
    }
    if (s != MGRAD_OK) {
        mgr_free(ctx, m->value);
        mgr_free(ctx, m->grad);
        mgr_free(ctx, m->rows);
        mgr_free(ctx, m);
        return s;
    }
    m->run = run;
    m->kind = kind;
    m->size = size;
    m->cols = cols;
    m->step_begin = o.step_begin;
    m->step_end = o.step_end < 0 ? run->config.steps : o.step_end;
    m->step = o.step;
    initial_value(run, m, &o);

    int idx = run->metas.count++;
    run->metas.all[idx] = m;
    switch (kind) {
    case MGRAD_META_POOL_WEIGHTS:
        m->pool = o.pool != NULL ? (mgrad_dataset *)o.pool : run->config.train;
        mgr_dataset_retain(m->pool);
        break;
    case MGRAD_META_INPUTS:
        for (int64_t r = 0; r < size / cols; r++) {
            int64_t i = o.rows != NULL ? o.rows[r] : r;
            m->rows[r] = i;
            run->metas.input_meta[i] = idx;
            run->metas.input_row[i] = r;
        }
        break;
    case MGRAD_META_SOFT_LABELS: run->metas.soft = m; break;
    case MGRAD_META_LR_SCHEDULE: run->metas.lr = m; break;
    case MGRAD_META_WEIGHT_DECAY: run->metas.wd = m; break;
    case MGRAD_META_MOMENTUM: run->metas.momentum = m; break;
    case MGRAD_META_BETA2: run->metas.beta2 = m; break;
    case MGRAD_META_INITIAL_PARAMS: run->metas.theta0 = m; break;
    default: break;
    }
    mgr_run_invalidate(run, MGR_STALE_META_ADDED);
    *out = m;
    return MGRAD_OK;
}

mgrad_status mgrad_meta_kind_of(const mgrad_meta *meta, mgrad_meta_kind *out)
{
    if (meta == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(meta->run->ctx, out == NULL, MGRAD_ERR_NULL,
                    "mgrad_meta_kind_of: out is NULL");
    *out = meta->kind;
    return MGRAD_OK;
}

mgrad_status mgrad_meta_run(const mgrad_meta *meta, mgrad_run **out)
{
    if (meta == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(meta->run->ctx, out == NULL, MGRAD_ERR_NULL,
                    "mgrad_meta_run: out is NULL");
    *out = meta->run;
    return MGRAD_OK;
}

mgrad_status mgrad_meta_size(const mgrad_meta *meta, int64_t *out)
{
    if (meta == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(meta->run->ctx, out == NULL, MGRAD_ERR_NULL,
                    "mgrad_meta_size: out is NULL");
    *out = meta->size;
    return MGRAD_OK;
}

static mgrad_status check_buffer(const mgrad_meta *meta, const char *fn, mgrad_dtype dtype,
                                 const void *buf, int64_t count)
{
    mgrad_context *ctx = meta->run->ctx;
    MGRAD_RETURN_IF(ctx, buf == NULL, MGRAD_ERR_NULL, "%s: the buffer is NULL", fn);
    MGRAD_RETURN_IF(ctx, dtype != MGRAD_DTYPE_F32 && dtype != MGRAD_DTYPE_F64,
                    MGRAD_ERR_DTYPE, "%s: unknown dtype %d", fn, (int)dtype);
    MGRAD_RETURN_IF(ctx, count != meta->size, MGRAD_ERR_SIZE,
                    "%s: count = %lld but the %s metaparameter has %lld values", fn,
                    (long long)count, kind_name(meta->kind), (long long)meta->size);
    return MGRAD_OK;
}

mgrad_status mgrad_meta_get_value(const mgrad_meta *meta, mgrad_dtype dtype, void *out,
                                  int64_t count)
{
    if (meta == NULL) return MGRAD_ERR_NULL;
    MGRAD_FORWARD(check_buffer(meta, "mgrad_meta_get_value", dtype, out, count));
    mgr_convert(out, dtype, meta->value, meta->run->ctx->dtype, (size_t)count, 0);
    return MGRAD_OK;
}

mgrad_status mgrad_meta_set_value(mgrad_meta *meta, mgrad_dtype dtype, const void *values,
                                  int64_t count)
{
    if (meta == NULL) return MGRAD_ERR_NULL;
    mgrad_context *ctx = meta->run->ctx;
    const char *fn = "mgrad_meta_set_value";
    MGRAD_FORWARD(check_buffer(meta, fn, dtype, values, count));
    /* Check everything before writing, so that a failed call changes nothing. */
    for (int64_t i = 0; i < count; i++) {
        double v = dtype == MGRAD_DTYPE_F32 ? (double)((const float *)values)[i]
                                            : ((const double *)values)[i];
        MGRAD_RETURN_IF(ctx, !isfinite(v), MGRAD_ERR_NONFINITE,
                        "%s: value %lld is NaN or Inf", fn, (long long)i);
        MGRAD_RETURN_IF(ctx, ctx->dtype == MGRAD_DTYPE_F32 && fabs(v) > FLT_MAX,
                        MGRAD_ERR_NONFINITE, "%s: value %lld = %g overflows the context's "
                        "f32", fn, (long long)i, v);
        switch (meta->kind) {
        case MGRAD_META_LR_SCHEDULE:
            /* as options.lr (run.c, mgr_check_lr); MGD reaches here too */
            MGRAD_RETURN_IF(ctx, v < 0, MGRAD_ERR_INVALID,
                            "%s: LR_SCHEDULE value %lld (the learning rate of step %lld) = "
                            "%g: a learning rate must be >= 0 (metagradient descent on a "
                            "schedule keeps it so with a projection, e.g. "
                            "MGRAD_PROJECT_NONNEGATIVE)", fn, (long long)i, (long long)i, v);
            break;
        case MGRAD_META_WEIGHT_DECAY:
            MGRAD_RETURN_IF(ctx, v < 0, MGRAD_ERR_INVALID,
                            "%s: weight decay %g must be >= 0", fn, v);
            break;
        case MGRAD_META_MOMENTUM:
        case MGRAD_META_BETA2:
            MGRAD_RETURN_IF(ctx, v < 0 || v >= 1, MGRAD_ERR_INVALID,
                            "%s: %s %g must be in [0, 1)", fn, kind_name(meta->kind), v);
            break;
        default: break;
        }
    }
    mgr_convert(meta->value, ctx->dtype, values, dtype, (size_t)count, 0);
    mgr_run_invalidate(meta->run, MGR_STALE_VALUE_SET);
    return MGRAD_OK;
}

mgrad_status mgrad_meta_get_grad(const mgrad_meta *meta, mgrad_dtype dtype, void *out,
                                 int64_t count)
{
    if (meta == NULL) return MGRAD_ERR_NULL;
    MGRAD_FORWARD(check_buffer(meta, "mgrad_meta_get_grad", dtype, out, count));
    MGRAD_RETURN_IF(meta->run->ctx, meta->run->traj.phase != MGR_PHASE_REVERSED,
                    MGRAD_ERR_ORDER,
                    "mgrad_meta_get_grad: no gradient for the current values; did you "
                    "forget mgrad_run_train and mgrad_run_reverse?");
    mgr_convert(out, dtype, meta->grad, meta->run->ctx->dtype, (size_t)count, 0);
    return MGRAD_OK;
}
