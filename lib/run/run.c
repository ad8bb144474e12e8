/*
 * run.c - the public run API: validation of options, ownership, and
 * dispatch to the typed engine.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "graph/graph.h"
#include "optim/optim.h"
#include "run/run_internal.h"

mgrad_status mgrad_run_options_init(mgrad_run_options *opts, uint32_t version)
{
    if (opts == NULL) return MGRAD_ERR_NULL;
    if (version != MGRAD_RUN_OPTIONS_VERSION) return MGRAD_ERR_VERSION;
    mgrad_run_options d = MGRAD_RUN_OPTIONS_INIT;
    *opts = d;
    return MGRAD_OK;
}

static mgrad_status check_options(mgrad_context *ctx, const char *fn,
                                  const mgrad_run_options *o, const mgrad_dataset *train)
{
    MGRAD_RETURN_IF(ctx, o->steps < 1, MGRAD_ERR_INVALID,
                    "%s: options.steps = %lld; set the number of training steps T >= 1",
                    fn, (long long)o->steps);
    MGRAD_RETURN_IF(ctx, o->batch_size < 1, MGRAD_ERR_INVALID,
                    "%s: options.batch_size = %lld; set the batch size B >= 1", fn,
                    (long long)o->batch_size);
    MGRAD_RETURN_IF(ctx, o->steps > INT64_MAX / o->batch_size, MGRAD_ERR_INVALID,
                    "%s: options.steps * options.batch_size overflows", fn);
    MGRAD_RETURN_IF(ctx, o->loss != MGRAD_LOSS_CROSS_ENTROPY &&
                    o->loss != MGRAD_LOSS_SQUARED_ERROR &&
                    o->loss != MGRAD_LOSS_NEXT_TOKEN, MGRAD_ERR_INVALID,
                    "%s: options.loss = %d is not an mgrad_loss", fn, (int)o->loss);
    MGRAD_RETURN_IF(ctx, !(o->label_smoothing >= 0 && o->label_smoothing < 1),
                    MGRAD_ERR_INVALID, "%s: options.label_smoothing = %g must be in [0, 1)",
                    fn, o->label_smoothing);
    MGRAD_RETURN_IF(ctx, o->optimizer != MGRAD_OPTIMIZER_SGD &&
                    o->optimizer != MGRAD_OPTIMIZER_ADAM &&
                    o->optimizer != MGRAD_OPTIMIZER_ADAMW, MGRAD_ERR_INVALID,
                    "%s: options.optimizer = %d is not an mgrad_optimizer", fn,
                    (int)o->optimizer);
    if (o->lr_schedule == NULL) /* else options.lr is not read */
        MGRAD_FORWARD(mgr_check_lr(ctx, fn, "options.lr", o->lr));
    MGRAD_RETURN_IF(ctx, !(o->momentum >= 0 && o->momentum < 1), MGRAD_ERR_INVALID,
                    "%s: options.momentum = %g must be in [0, 1)", fn, o->momentum);
    MGRAD_RETURN_IF(ctx, o->nesterov != 0 && o->nesterov != 1, MGRAD_ERR_INVALID,
                    "%s: options.nesterov must be 0 or 1", fn);
    MGRAD_RETURN_IF(ctx, o->nesterov && o->optimizer != MGRAD_OPTIMIZER_SGD,
                    MGRAD_ERR_INVALID, "%s: options.nesterov applies to SGD only", fn);
    MGRAD_RETURN_IF(ctx, !(o->weight_decay >= 0 && isfinite(o->weight_decay)),
                    MGRAD_ERR_INVALID, "%s: options.weight_decay = %g must be >= 0", fn,
                    o->weight_decay);
    MGRAD_RETURN_IF(ctx, !(o->beta1 >= 0 && o->beta1 < 1), MGRAD_ERR_INVALID,
                    "%s: options.beta1 = %g must be in [0, 1)", fn, o->beta1);
    MGRAD_RETURN_IF(ctx, !(o->beta2 >= 0 && o->beta2 < 1), MGRAD_ERR_INVALID,
                    "%s: options.beta2 = %g must be in [0, 1)", fn, o->beta2);
    MGRAD_RETURN_IF(ctx, !(o->eps >= 0 && isfinite(o->eps)), MGRAD_ERR_INVALID,
                    "%s: options.eps = %g must be >= 0", fn, o->eps);
    MGRAD_RETURN_IF(ctx, !(o->eps_root >= 0 && isfinite(o->eps_root)), MGRAD_ERR_INVALID,
                    "%s: options.eps_root = %g must be >= 0", fn, o->eps_root);
    MGRAD_RETURN_IF(ctx, o->optimizer != MGRAD_OPTIMIZER_SGD && o->eps == 0 &&
                    o->eps_root == 0, MGRAD_ERR_INVALID,
                    "%s: Adam needs eps > 0 or eps_root > 0 (a zero second moment would "
                    "divide by zero)", fn);
    MGRAD_RETURN_IF(ctx, o->checkpoint < MGRAD_CHECKPOINT_STORE_ALL ||
                    o->checkpoint > MGRAD_CHECKPOINT_AUTO, MGRAD_ERR_INVALID,
                    "%s: options.checkpoint = %d is not an mgrad_checkpoint", fn,
                    (int)o->checkpoint);
    MGRAD_RETURN_IF(ctx, o->checkpoint_slots < 0, MGRAD_ERR_INVALID,
                    "%s: options.checkpoint_slots must be >= 0", fn);
    MGRAD_RETURN_IF(ctx, o->checkpoint_k < 0 || o->checkpoint_k == 1, MGRAD_ERR_INVALID,
                    "%s: options.checkpoint_k = %lld; use 0 (default 4) or >= 2", fn,
                    (long long)o->checkpoint_k);
    /* validation = NULL: a plain run (no output function until
       mgrad_run_set_output) */
    MGRAD_RETURN_IF(ctx, (o->validation != NULL && o->validation->ctx != ctx) ||
                    train->ctx != ctx, MGRAD_ERR_INVALID,
                    "%s: the model and datasets must come from the same context", fn);
    if (o->lr_schedule != NULL)
        for (int64_t t = 0; t < o->steps; t++) {
            char where[48];
            snprintf(where, sizeof where, "options.lr_schedule[%lld]", (long long)t);
            MGRAD_FORWARD(mgr_check_lr(ctx, fn, where, o->lr_schedule[t]));
        }
    if (o->batches != NULL)
        for (int64_t j = 0; j < o->steps * o->batch_size; j++)
            MGRAD_RETURN_IF(ctx, o->batches[j] < 0 || o->batches[j] >= train->n,
                            MGRAD_ERR_INVALID, "%s: options.batches[%lld] = %lld is not a "
                            "row of the training set (size %lld)", fn, (long long)j,
                            (long long)o->batches[j], (long long)train->n);
    return MGRAD_OK;
}

/* Does `ds` carry what the loss needs for `classes` outputs? */
static mgrad_status check_data(mgrad_context *ctx, const char *fn, const mgrad_dataset *ds,
                               const char *name, mgrad_loss loss, int64_t features,
                               int64_t classes)
{
    MGRAD_RETURN_IF(ctx, ds->features != features, MGRAD_ERR_SHAPE,
                    "%s: the %s set has %lld values per example but the model takes %lld",
                    fn, name, (long long)ds->features, (long long)features);
    if (loss == MGRAD_LOSS_NEXT_TOKEN) {
        return mgr_run_check_tokens(ctx, fn, ds, name, features, classes);
    } else if (loss == MGRAD_LOSS_CROSS_ENTROPY) {
        MGRAD_RETURN_IF(ctx, ds->labels == NULL, MGRAD_ERR_ORDER,
                        "%s: the %s set has no labels; did you forget "
                        "mgrad_dataset_set_labels?", fn, name);
        MGRAD_RETURN_IF(ctx, ds->num_classes != classes, MGRAD_ERR_SHAPE,
                        "%s: the %s set has %d classes but the model has %lld outputs", fn,
                        name, (int)ds->num_classes, (long long)classes);
    } else {
        MGRAD_RETURN_IF(ctx, ds->targets == NULL, MGRAD_ERR_ORDER,
                        "%s: the %s set has no targets; did you forget "
                        "mgrad_dataset_set_targets?", fn, name);
        MGRAD_RETURN_IF(ctx, ds->target_dim != classes, MGRAD_ERR_SHAPE,
                        "%s: the %s set has %lld targets per example but the model has "
                        "%lld outputs", fn, name, (long long)ds->target_dim,
                        (long long)classes);
    }
    return MGRAD_OK;
}

mgrad_status mgr_run_check_tokens(mgrad_context *ctx, const char *fn, const mgrad_dataset *ds,
                                  const char *name, int64_t features, int64_t classes)
{
    /* The model reads tokens 0 .. L-1 and predicts 1 .. L (mgr_run_build
       checked features = L + 1 and classes = L V), so every value is a target
       and must be an id in [0, V). */
    int64_t L = features - 1, V = L > 0 ? classes / L : 0;
    MGRAD_RETURN_IF(ctx, L < 1 || V < 1, MGRAD_ERR_SHAPE,
                    "%s: the next-token loss needs examples of L + 1 >= 2 tokens", fn);
    size_t esize = mgr_dtype_size(ctx->dtype);
    void *row = NULL;
    MGRAD_FORWARD(mgr_alloc_or_fail(ctx, &row, (size_t)features, esize, "a token row"));
    mgrad_status s = MGRAD_OK;
    for (int64_t i = 0; i < ds->n && s == MGRAD_OK; i++) {
        mgr_dataset_copy_row(ds, i, row);
        for (int64_t p = 0; p < features; p++) {
            double v = ctx->dtype == MGRAD_DTYPE_F32 ? (double)((const float *)row)[p]
                                                      : ((const double *)row)[p];
            if (v >= 0 && v < (double)V && v == floor(v)) continue;
            s = mgr_error(ctx, MGRAD_ERR_INVALID,
                          "%s: the %s set's example %lld holds %g at position %lld, which "
                          "is not a token id in [0, %lld) (the model's output has %lld "
                          "classes per position)", fn, name, (long long)i, v, (long long)p,
                          (long long)V, (long long)V);
            break;
        }
    }
    mgr_free(ctx, row);
    return s;
}

/* The next-token loss on a graph model: its output must be a sequence of L
   positions for inputs of L + 1 tokens, and a token embedding must know
   every id of the output's vocabulary.  Callback models cannot carry it. */
static mgrad_status check_next_token_model(mgrad_context *ctx, const char *fn,
                                           const mgr_graph *graph, int64_t features)
{
    MGRAD_RETURN_IF(ctx, graph == NULL, MGRAD_ERR_UNSUPPORTED,
                    "%s: the next-token loss needs a built-in model (mgrad_model_add_"
                    "token_embedding ...); callback models give per-example losses on "
                    "labels or targets", fn);
    const mgr_node *out = mgr_graph_output(graph);
    MGRAD_RETURN_IF(ctx, out->positions < 1 || out->positions != features - 1,
                    MGRAD_ERR_SHAPE,
                    "%s: the next-token loss needs a model whose output is a sequence of "
                    "L positions for inputs of L + 1 tokens; the output has %lld "
                    "position(s) and the input %lld values (build it with "
                    "mgrad_model_create_gpt, or end with a dense layer on a sequence)",
                    fn, (long long)out->positions, (long long)features);
    int64_t V = out->size / out->positions;
    for (int32_t k = 1; k < graph->num_nodes; k++) {
        const mgr_node *nd = &graph->nodes[k];
        MGRAD_RETURN_IF(ctx, (mgr_op_def_of(nd->kind)->flags & MGR_OP_FLAG_READS_TOKENS) &&
                             nd->vocab < V,
                        MGRAD_ERR_SHAPE,
                        "%s: the token embedding (node %d) knows %lld ids but the output "
                        "predicts %lld", fn, (int)k, (long long)nd->vocab, (long long)V);
    }
    return MGRAD_OK;
}

mgrad_status mgr_check_lr(mgrad_context *ctx, const char *fn, const char *where, double lr)
{
    MGRAD_RETURN_IF(ctx, !isfinite(lr), MGRAD_ERR_INVALID, "%s: %s = %g: a learning rate "
                    "must be finite", fn, where, lr);
    /* η < 0 steps uphill; torch.optim refuses it too.  Optimising a schedule
       by MGD keeps it >= 0 with a projection (metagrad/mgd.h). */
    MGRAD_RETURN_IF(ctx, lr < 0, MGRAD_ERR_INVALID, "%s: %s = %g: a learning rate must be "
                    ">= 0", fn, where, lr);
    return MGRAD_OK;
}

/* Values per channel of a row at the batch-norm node with the fewest: its
   spatial positions (1 after a dense layer); 0 without batch norm. */
static int64_t norm_positions(const mgr_graph *g)
{
    int64_t fewest = 0;
    for (int32_t k = 0; k < g->num_nodes; k++) {
        const mgr_node *n = &g->nodes[k];
        if (n->kind != MGR_OP_BATCH_NORM) continue;
        int64_t per_row = n->size / n->shape[0];
        if (fewest == 0 || per_row < fewest) fewest = per_row;
    }
    return fewest;
}

mgrad_status mgr_run_check_norm_rows(const mgrad_run *run, const char *fn, const char *what,
                                     int64_t rows, int chunked)
{
    if (norm_positions(&run->model.graph) != 1) return MGRAD_OK;
    int64_t per = (int64_t)mgr_run_chunk_rows(&run->config);
    int64_t last = chunked && rows > per ? rows % per : rows;
    MGRAD_RETURN_IF(run->ctx, rows == 1, MGRAD_ERR_INVALID,
                    "%s: %s = 1 row: batch norm needs more than 1 value per channel (it "
                    "normalises each channel over the rows of a chunk; with one value the "
                    "output is constant and every gradient through it is zero)", fn, what);
    MGRAD_RETURN_IF(run->ctx, last == 1, MGRAD_ERR_INVALID,
                    "%s: %s = %lld rows, taken in chunks of %lld, leaves a last chunk of 1 "
                    "row: batch norm needs more than 1 value per channel (it normalises each "
                    "channel over the rows of a chunk)", fn, what, (long long)rows,
                    (long long)per);
    return MGRAD_OK;
}

mgrad_status mgr_run_need_trajectory(const mgrad_run *run, const char *fn)
{
    if (run->traj.phase != MGR_PHASE_FRESH) return MGRAD_OK;
    const char *why = "the run has not been trained; did you forget mgrad_run_train?";
    switch (run->traj.stale) {
    case MGR_STALE_UNTRAINED: break;
    case MGR_STALE_VALUE_SET:
        why = "a metaparameter value changed (mgrad_meta_set_value) after the last "
              "mgrad_run_train; call mgrad_run_train again";
        break;
    case MGR_STALE_META_ADDED:
        why = "a metaparameter was registered (mgrad_run_add_meta) after the last "
              "mgrad_run_train, which invalidates the trajectory; call mgrad_run_train "
              "again";
        break;
    case MGR_STALE_SHUFFLE_SEED:
        why = "the shuffle seed changed (mgrad_run_set_shuffle_seed) after the last "
              "mgrad_run_train; call mgrad_run_train again";
        break;
    case MGR_STALE_COMMUNICATOR:
        why = "the communicator changed (mgrad_run_set_communicator) after the last "
              "mgrad_run_train; call mgrad_run_train again";
        break;
    case MGR_STALE_OUTPUT:
        why = "the output function changed (mgrad_run_set_output) after the last "
              "mgrad_run_train; call mgrad_run_train again";
        break;
    case MGR_STALE_FAILED:
        why = "the last mgrad_run_train or mgrad_run_reverse failed; call mgrad_run_train "
              "again";
        break;
    }
    return mgr_error(run->ctx, MGRAD_ERR_ORDER, "%s: no trajectory for the current "
                     "metaparameters: %s", fn, why);
}

static void run_free(mgrad_run *run)
{
    mgrad_context *ctx = run->ctx;
    if (run->traj.engine != NULL) mgr_engine_of(run)->destroy(run);
    mgr_comm_free(run);
    mgr_output_free(run);
    for (int i = 0; i < run->metas.count; i++) {
        mgrad_meta *m = run->metas.all[i];
        mgr_free(ctx, m->value);
        mgr_free(ctx, m->grad);
        mgr_free(ctx, m->rows);
        if (m->pool != NULL) mgr_dataset_release(m->pool);
        mgr_free(ctx, m);
    }
    mgr_free(ctx, run->metas.input_meta);
    mgr_free(ctx, run->metas.input_row);
    /* The writable view of the run's read-only parts (run_internal.h), to
       release them. */
    mgr_run_model *model = (mgr_run_model *)&run->model;
    mgr_run_config *cfg = (mgr_run_config *)&run->config;
    mgr_free(ctx, (void *)cfg->batches);
    mgr_free(ctx, (void *)cfg->lr);
    mgr_free(ctx, (void *)model->theta0);
    mgr_free(ctx, (void *)model->cb_shape);
    mgr_graph_free(ctx, &model->graph);
    if (run->config.train != NULL) mgr_dataset_release(run->config.train);
    if (run->config.val != NULL) mgr_dataset_release(run->config.val);
    mgr_free(ctx, run);
    mgr_context_release(ctx);
}

mgrad_status mgrad_run_create(mgrad_run **out, const mgrad_model *model, mgrad_dataset *train,
                              const mgrad_run_options *opts)
{
    if (model == NULL) return train != NULL ? mgr_error(train->ctx, MGRAD_ERR_NULL,
                                              "mgrad_run_create: model is NULL")
                                            : MGRAD_ERR_NULL;
    mgrad_context *ctx = model->ctx;
    MGRAD_RETURN_IF(ctx, out == NULL || train == NULL || opts == NULL, MGRAD_ERR_NULL,
                    "mgrad_run_create: out, train and opts must not be NULL");
    MGRAD_RETURN_IF(ctx, opts->version != MGRAD_RUN_OPTIONS_VERSION, MGRAD_ERR_VERSION,
                    "mgrad_run_create: options version %u unknown (this library knows %d); "
                    "initialise with MGRAD_RUN_OPTIONS_INIT", (unsigned)opts->version,
                    MGRAD_RUN_OPTIONS_VERSION);
    MGRAD_RETURN_IF(ctx, model->graph.num_nodes < 2, MGRAD_ERR_ORDER,
                    "mgrad_run_create: the model has no layers; did you forget "
                    "mgrad_model_add_dense?");
    return mgr_run_build(out, ctx, "mgrad_run_create", &model->graph, NULL, model->theta,
                         model->graph.num_params, model->graph.nodes[0].size,
                         mgr_graph_output(&model->graph)->size, train, opts);
}

mgrad_status mgr_run_build(mgrad_run **out, mgrad_context *ctx, const char *fn,
                           const mgr_graph *graph, const mgrad_callback_model *cb,
                           const double *theta0, int64_t num_params, int64_t features,
                           int64_t classes, mgrad_dataset *train,
                           const mgrad_run_options *opts)
{
    MGRAD_FORWARD(check_options(ctx, fn, opts, train));
    if (opts->loss == MGRAD_LOSS_NEXT_TOKEN)
        MGRAD_FORWARD(check_next_token_model(ctx, fn, graph, features));
    MGRAD_FORWARD(check_data(ctx, fn, train, "training", opts->loss, features, classes));
    if (opts->validation != NULL)
        MGRAD_FORWARD(check_data(ctx, fn, opts->validation, "validation", opts->loss,
                                 features, classes));

    mgrad_run *run = NULL;
    MGRAD_FORWARD(mgr_alloc_or_fail(ctx, (void **)&run, 1, sizeof *run, "a run"));
    mgr_context_retain(ctx);
    run->ctx = ctx;
    /* The writable view of the run's read-only parts (run_internal.h): this
       function and run_free are the only ones to take it. */
    mgr_run_model *model = (mgr_run_model *)&run->model;
    mgr_run_config *cfg = (mgr_run_config *)&run->config;
    cfg->opts = *opts;
    cfg->opts.batches = NULL;
    cfg->opts.lr_schedule = NULL;
    cfg->opts.spill_dir = NULL;   /* not kept: the store copies the path */
    run->shuffle_seed = opts->shuffle_seed;
    cfg->steps = opts->steps;
    cfg->batch = opts->batch_size;
    model->classes = classes;
    model->features = features;
    model->num_params = num_params;
    if (cb != NULL) {
        model->kind = MGR_MODEL_CALLBACK;
        model->cb = *cb;
        run->traj.stats.approximate = cb->hvp == NULL;
    }
    cfg->state_len = mgr_optim_state_len(opts->optimizer, (size_t)model->num_params);
    cfg->train = train;
    mgr_dataset_retain(train);
    cfg->val = (mgrad_dataset *)opts->validation;
    if (cfg->val != NULL) {
        mgr_dataset_retain(cfg->val);
        /* the default output function: the validation loss at θ_T */
        run->output.dflt = (mgr_output_term){.kind = MGRAD_OUTPUT_LOSS, .ds = cfg->val,
                                             .weight = 1.0, .rows = NULL, .count = cfg->val->n};
        run->output.terms = &run->output.dflt;
        run->output.num_terms = 1;
    }
    run->output.last_k = 1;
    run->traj.stats.version = MGRAD_RUN_STATS_VERSION;

    size_t esize = mgr_dtype_size(ctx->dtype);
    size_t T = (size_t)cfg->steps, P = (size_t)model->num_params;
    mgrad_status s = graph != NULL ? mgr_graph_copy(ctx, graph, &model->graph) : MGRAD_OK;
    /* batch norm on the training batch (and POOL_WEIGHTS pools, meta.c) and on
       the chunks of the validation set */
    if (s == MGRAD_OK)
        s = mgr_run_check_norm_rows(run, fn, "options.batch_size", cfg->batch, 0);
    if (s == MGRAD_OK && cfg->val != NULL)
        s = mgr_run_check_norm_rows(run, fn, "the validation set", cfg->val->n, 1);
    /* The run's arrays are read-only once built: fill them here, through
       these writable pointers. */
    double *lr = NULL;
    void *theta0_copy = NULL;
    int64_t *cb_shape = NULL, *batches = NULL;
    if (s == MGRAD_OK)
        s = mgr_alloc_or_fail(ctx, (void **)&lr, T, sizeof(double), "the LR schedule");
    if (s == MGRAD_OK)
        s = mgr_alloc_or_fail(ctx, &theta0_copy, P, esize, "θ0");
    /* The caller's input_shape array need not outlive the call. */
    if (s == MGRAD_OK && cb != NULL)
        s = mgr_alloc_or_fail(ctx, (void **)&cb_shape, (size_t)cb->ndim, sizeof(int64_t),
                              "the input shape");
    if (s == MGRAD_OK && opts->batches != NULL)
        s = mgr_alloc_or_fail(ctx, (void **)&batches, T * (size_t)cfg->batch,
                              sizeof(int64_t), "the batches");
    cfg->lr = lr; /* run_free frees what was allocated */
    model->theta0 = theta0_copy;
    model->cb_shape = cb_shape;
    cfg->batches = batches;
    if (s == MGRAD_OK) {
        for (size_t t = 0; t < T; t++)
            lr[t] = opts->lr_schedule != NULL ? opts->lr_schedule[t] : opts->lr;
        mgr_convert(theta0_copy, ctx->dtype, theta0, MGRAD_DTYPE_F64, P, 0);
        if (cb != NULL) {
            memcpy(cb_shape, cb->input_shape, (size_t)cb->ndim * sizeof(int64_t));
            model->cb.input_shape = cb_shape;
        }
        if (opts->batches != NULL)
            memcpy(batches, opts->batches, T * (size_t)cfg->batch * sizeof(int64_t));
    }
    /* The forward memo of each checkpoint slot (engine.c): the batch's
       GEMM-computed node values, kept only while they cost at most a
       quarter of a state, so that they never crowd out many slots. */
    if (s == MGRAD_OK && graph != NULL) {
        size_t memo = mgr_graph_memo_elems(&model->graph, (size_t)cfg->batch) * esize;
        if (memo > 0 && memo <= cfg->state_len * esize / 4) cfg->memo_bytes = memo;
    }
    run->traj.stats.memo_bytes = (int64_t)cfg->memo_bytes;
    /* Checkpointing: the budget counts whole slots (an optimizer state and
       its memo).  With a spill directory the budget limits RAM only, so the
       schedule is unconstrained. */
    if (s == MGRAD_OK) {
        uint64_t slot_bytes = (uint64_t)cfg->state_len * esize + cfg->memo_bytes;
        int64_t max_slots = 0;
        if (opts->checkpoint_budget_bytes > 0 && opts->spill_dir == NULL) {
            max_slots = (int64_t)(opts->checkpoint_budget_bytes / slot_bytes);
            if (max_slots == 0)
                s = mgr_error(ctx, MGRAD_ERR_BUDGET, "%s: "
                              "options.checkpoint_budget_bytes = %llu holds no checkpoint "
                              "slot; one slot takes %llu bytes (optimizer state %llu, "
                              "forward memo %llu) and at least 1 slot is needed", fn,
                              (unsigned long long)opts->checkpoint_budget_bytes,
                              (unsigned long long)slot_bytes,
                              (unsigned long long)(cfg->state_len * esize),
                              (unsigned long long)cfg->memo_bytes);
        }
        if (s == MGRAD_OK)
            s = mgr_schedule_plan(ctx, opts->checkpoint, cfg->steps, opts->checkpoint_slots,
                                  max_slots,
                                  opts->checkpoint_k > 0 ? opts->checkpoint_k : 4,
                                  &cfg->policy, &cfg->slots);
        run->traj.stats.checkpoint = cfg->policy;
        run->traj.stats.checkpoint_slots = cfg->slots;
        if (s == MGRAD_OK) {
            /* the store copies spill_dir */
            cfg->opts.spill_dir = opts->spill_dir;
            s = mgr_engine_of(run)->create(run);
            cfg->opts.spill_dir = NULL;
        }
    }
    if (s != MGRAD_OK) {
        run_free(run);
        return s;
    }
    *out = run;
    return MGRAD_OK;
}

void mgrad_run_destroy(mgrad_run *run)
{
    if (run != NULL) run_free(run);
}

void mgr_run_invalidate(mgrad_run *run, mgr_stale_cause why)
{
    run->traj.phase = MGR_PHASE_FRESH;
    run->traj.stale = why;
}

static mgrad_status train(mgrad_run *run, double *out, bool grad_T)
{
    if (run == NULL) return MGRAD_ERR_NULL;
    double phi = 0;
    mgr_run_invalidate(run, MGR_STALE_FAILED); /* until it succeeds */
    mgrad_status s = mgr_engine_of(run)->train(run, &phi, grad_T);
    if (s != MGRAD_OK) return s;
    run->traj.phase = MGR_PHASE_TRAINED;
    if (out != NULL) *out = phi;
    return MGRAD_OK;
}

/* A run with metaparameters is trained to be reversed: its forward phase
   also computes ∇φ(θ_T), which the reverse then starts from (one backward
   over the validation set now instead of a forward and a backward then). */
mgrad_status mgrad_run_train(mgrad_run *run, double *out)
{
    return train(run, out, run != NULL && run->metas.count > 0 &&
                               mgr_run_has_output(&run->output));
}

mgrad_status mgr_run_train_value(mgrad_run *run, double *out)
{
    return train(run, out, false);
}

mgrad_status mgrad_run_reverse(mgrad_run *run)
{
    if (run == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(run->ctx, !mgr_run_has_output(&run->output), MGRAD_ERR_ORDER,
                    "mgrad_run_reverse: the run has no output function to differentiate "
                    "(created without a validation set); give it one with "
                    "mgrad_run_set_output");
    MGRAD_FORWARD(mgr_run_need_trajectory(run, "mgrad_run_reverse"));
    const mgr_engine_vt *vt = mgr_engine_of(run);
    if (run->traj.phase == MGR_PHASE_REVERSED) {
        /* The schedule consumed its checkpoints: replay the forward phase,
           which is bit-exact, then reverse again. */
        MGRAD_FORWARD(vt->train(run, NULL, true));
    }
    run->traj.phase = MGR_PHASE_TRAINED; /* the gradients are being overwritten */
    mgrad_status s = vt->reverse(run);
    if (s != MGRAD_OK) {
        mgr_run_invalidate(run, MGR_STALE_FAILED);
        return s;
    }
    run->traj.phase = MGR_PHASE_REVERSED;
    return MGRAD_OK;
}

mgrad_status mgrad_run_num_params(const mgrad_run *run, int64_t *out)
{
    if (run == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(run->ctx, out == NULL, MGRAD_ERR_NULL,
                    "mgrad_run_num_params: out must not be NULL");
    *out = run->model.num_params;
    return MGRAD_OK;
}

mgrad_status mgrad_run_get_params(const mgrad_run *run, mgrad_dtype dtype, void *out,
                                  int64_t count)
{
    if (run == NULL) return MGRAD_ERR_NULL;
    mgrad_context *ctx = run->ctx;
    MGRAD_RETURN_IF(ctx, out == NULL, MGRAD_ERR_NULL,
                    "mgrad_run_get_params: out must not be NULL");
    MGRAD_RETURN_IF(ctx, dtype != MGRAD_DTYPE_F32 && dtype != MGRAD_DTYPE_F64,
                    MGRAD_ERR_DTYPE, "mgrad_run_get_params: unknown dtype %d", (int)dtype);
    MGRAD_RETURN_IF(ctx, count != run->model.num_params, MGRAD_ERR_SIZE,
                    "mgrad_run_get_params: count = %lld but the model has %lld parameters",
                    (long long)count, (long long)run->model.num_params);
    MGRAD_FORWARD(mgr_run_need_trajectory(run, "mgrad_run_get_params"));
    void *tmp = NULL;
    MGRAD_FORWARD(mgr_alloc_or_fail(ctx, &tmp, (size_t)count, mgr_dtype_size(ctx->dtype),
                                    "a parameter copy"));
    mgr_engine_of(run)->get_params(run, tmp);
    mgr_convert(out, dtype, tmp, ctx->dtype, (size_t)count, 0);
    mgr_free(ctx, tmp);
    return MGRAD_OK;
}

mgrad_status mgrad_run_evaluate(mgrad_run *run, const mgrad_dataset *ds, double *loss,
                                double *accuracy)
{
    if (run == NULL) return MGRAD_ERR_NULL;
    mgrad_context *ctx = run->ctx;
    MGRAD_RETURN_IF(ctx, ds == NULL, MGRAD_ERR_NULL,
                    "mgrad_run_evaluate: dataset must not be NULL");
    MGRAD_RETURN_IF(ctx, ds->ctx != ctx, MGRAD_ERR_INVALID,
                    "mgrad_run_evaluate: the dataset comes from another context");
    MGRAD_FORWARD(mgr_run_need_trajectory(run, "mgrad_run_evaluate"));
    MGRAD_FORWARD(check_data(ctx, "mgrad_run_evaluate", ds, "evaluation", run->config.opts.loss,
                             run->model.features, run->model.classes));
    MGRAD_FORWARD(mgr_run_check_norm_rows(run, "mgrad_run_evaluate", "the dataset", ds->n,
                                          1));
    double l = 0, a = 0;
    MGRAD_FORWARD(mgr_engine_of(run)->evaluate(run, ds, &l, &a));
    if (loss != NULL) *loss = l;
    if (accuracy != NULL) *accuracy = a;
    return MGRAD_OK;
}

mgrad_status mgrad_run_set_shuffle_seed(mgrad_run *run, uint64_t seed)
{
    if (run == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(run->ctx, run->config.batches != NULL, MGRAD_ERR_INVALID,
                    "mgrad_run_set_shuffle_seed: the run has explicit batches "
                    "(options.batches); there is no shuffle to reseed");
    run->shuffle_seed = seed;
    mgr_run_invalidate(run, MGR_STALE_SHUFFLE_SEED);
    return MGRAD_OK;
}

mgrad_status mgrad_run_context(const mgrad_run *run, mgrad_context **out)
{
    if (run == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(run->ctx, out == NULL, MGRAD_ERR_NULL,
                    "mgrad_run_context: out must not be NULL");
    *out = run->ctx;
    return MGRAD_OK;
}

mgrad_status mgrad_run_has_batches(const mgrad_run *run, int32_t *out)
{
    if (run == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(run->ctx, out == NULL, MGRAD_ERR_NULL,
                    "mgrad_run_has_batches: out must not be NULL");
    *out = run->config.batches != NULL;
    return MGRAD_OK;
}

mgrad_status mgr_run_check_data(const mgrad_run *run, const char *fn, const char *what,
                                const mgrad_dataset *ds)
{
    mgrad_context *ctx = run->ctx;
    MGRAD_RETURN_IF(ctx, ds->ctx != ctx, MGRAD_ERR_INVALID,
                    "%s: %s comes from another context", fn, what);
    MGRAD_FORWARD(check_data(ctx, fn, ds, "evaluation", run->config.opts.loss,
                             run->model.features, run->model.classes));
    return mgr_run_check_norm_rows(run, fn, what, ds->n, 1);
}

/* The checks of mgrad_run_evaluate that need no trajectory, in its order. */
mgrad_status mgrad_run_check_dataset(const mgrad_run *run, const mgrad_dataset *ds)
{
    if (run == NULL) return MGRAD_ERR_NULL;
    const char *fn = "mgrad_run_check_dataset";
    MGRAD_RETURN_IF(run->ctx, ds == NULL, MGRAD_ERR_NULL, "%s: dataset must not be NULL", fn);
    return mgr_run_check_data(run, fn, "the dataset", ds);
}

mgrad_status mgrad_run_example_losses(mgrad_run *run, const mgrad_dataset *ds,
                                      mgrad_dtype dtype, void *out, int64_t count)
{
    if (run == NULL) return MGRAD_ERR_NULL;
    mgrad_context *ctx = run->ctx;
    const char *fn = "mgrad_run_example_losses";
    MGRAD_RETURN_IF(ctx, ds == NULL || out == NULL, MGRAD_ERR_NULL,
                    "%s: dataset and out must not be NULL", fn);
    MGRAD_RETURN_IF(ctx, ds->ctx != ctx, MGRAD_ERR_INVALID,
                    "%s: the dataset comes from another context", fn);
    MGRAD_RETURN_IF(ctx, dtype != MGRAD_DTYPE_F32 && dtype != MGRAD_DTYPE_F64,
                    MGRAD_ERR_DTYPE, "%s: unknown dtype %d", fn, (int)dtype);
    MGRAD_RETURN_IF(ctx, count != ds->n, MGRAD_ERR_SIZE,
                    "%s: count = %lld but the dataset has %lld examples", fn,
                    (long long)count, (long long)ds->n);
    MGRAD_FORWARD(mgr_run_need_trajectory(run, fn));
    MGRAD_FORWARD(check_data(ctx, fn, ds, "evaluation", run->config.opts.loss,
                             run->model.features, run->model.classes));
    MGRAD_FORWARD(mgr_run_check_norm_rows(run, fn, "the dataset", ds->n, 1));
    void *tmp = NULL;
    mgrad_status s = mgr_alloc_or_fail(ctx, &tmp, (size_t)count, mgr_dtype_size(ctx->dtype),
                                       "per-example losses");
    /* on a data-parallel run the other ranks must hear of a failure here */
    if (s != MGRAD_OK) return mgr_reduce_finish(run, s);
    s = mgr_engine_of(run)->example_losses(run, ds, tmp);
    if (s == MGRAD_OK) mgr_convert(out, dtype, tmp, ctx->dtype, (size_t)count, 0);
    mgr_free(ctx, tmp);
    return s;
}

mgrad_status mgrad_run_get_stats(const mgrad_run *run, mgrad_run_stats *out)
{
    if (run == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(run->ctx, out == NULL, MGRAD_ERR_NULL,
                    "mgrad_run_get_stats: out must not be NULL");
    MGRAD_RETURN_IF(run->ctx, out->version < 1 || out->version > MGRAD_RUN_STATS_VERSION,
                    MGRAD_ERR_VERSION, "mgrad_run_get_stats: stats version %u unknown; "
                    "initialise with MGRAD_RUN_STATS_INIT", (unsigned)out->version);
    if (out->version < MGRAD_RUN_STATS_VERSION) {
        /* An older caller's struct ends before the fields of later versions
           (version 1 before `approximate`, version 2 before `memo_bytes`). */
        const mgrad_run_stats *st = &run->traj.stats;
        out->steps_run = st->steps_run;
        out->steps_recomputed = st->steps_recomputed;
        out->reverse_steps = st->reverse_steps;
        out->peak_state_bytes = st->peak_state_bytes;
        out->seconds_forward = st->seconds_forward;
        out->seconds_reverse = st->seconds_reverse;
        out->checkpoint = st->checkpoint;
        out->checkpoint_slots = st->checkpoint_slots;
        out->spilled_bytes = st->spilled_bytes;
        if (out->version >= 2) out->approximate = st->approximate;
        return MGRAD_OK;
    }
    *out = run->traj.stats;
    return MGRAD_OK;
}
