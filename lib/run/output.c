/*
 * output.c - the run's output function (metagrad/run.h, "output
 * functions"): validation and storage of mgrad_run_set_output.  The engine
 * (engine.c) evaluates it and seeds the reverse pass with its gradient.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "graph/graph.h"
#include "run/run_internal.h"

mgrad_status mgrad_output_init(mgrad_output *output, uint32_t version)
{
    if (output == NULL) return MGRAD_ERR_NULL;
    if (version != MGRAD_OUTPUT_VERSION) return MGRAD_ERR_VERSION;
    mgrad_output d = MGRAD_OUTPUT_INIT;
    *output = d;
    return MGRAD_OK;
}

static void free_terms(mgrad_context *ctx, mgr_output_term *terms, int64_t n)
{
    if (terms == NULL) return;
    for (int64_t k = 0; k < n; k++) {
        mgr_free(ctx, (void *)terms[k].rows);
        if (terms[k].ds != NULL) mgr_dataset_release(terms[k].ds);
    }
    mgr_free(ctx, terms);
}

void mgr_output_free(mgrad_run *run)
{
    mgr_run_output *o = &run->output;
    if (o->owned) free_terms(run->ctx, (mgr_output_term *)o->terms, o->num_terms);
    mgr_free(run->ctx, o->fn_grad);
    o->terms = NULL;
    o->num_terms = 0;
    o->fn_grad = NULL;
    o->owned = false;
}

/* Validate term k against the run, without writing anything. */
static mgrad_status check_term(const mgrad_run *run, const char *fn, int64_t k,
                               const mgrad_output_term *t)
{
    mgrad_context *ctx = run->ctx;
    char what[64];
    snprintf(what, sizeof what, "output.terms[%lld].dataset", (long long)k);
    MGRAD_RETURN_IF(ctx, t->dataset == NULL, MGRAD_ERR_NULL, "%s: %s is NULL", fn, what);
    MGRAD_RETURN_IF(ctx, t->kind != MGRAD_OUTPUT_LOSS && t->kind != MGRAD_OUTPUT_MARGIN,
                    MGRAD_ERR_INVALID, "%s: output.terms[%lld].kind = %d is not an "
                    "mgrad_output_kind", fn, (long long)k, (int)t->kind);
    MGRAD_RETURN_IF(ctx, !isfinite(t->weight), MGRAD_ERR_INVALID,
                    "%s: output.terms[%lld].weight = %g is not finite", fn, (long long)k,
                    t->weight);
    MGRAD_FORWARD(mgr_run_check_data(run, fn, what, t->dataset));
    const mgrad_dataset *ds = t->dataset;
    MGRAD_RETURN_IF(ctx, t->num_rows < 0 || t->num_classes < 0, MGRAD_ERR_INVALID,
                    "%s: output.terms[%lld]: num_rows and num_classes must be >= 0", fn,
                    (long long)k);
    MGRAD_RETURN_IF(ctx, (t->rows == NULL && t->num_rows > 0) ||
                    (t->classes == NULL && t->num_classes > 0), MGRAD_ERR_NULL,
                    "%s: output.terms[%lld]: rows or classes is NULL with a positive count",
                    fn, (long long)k);
    if (t->kind == MGRAD_OUTPUT_MARGIN) {
        MGRAD_RETURN_IF(ctx, run->model.kind == MGR_MODEL_CALLBACK, MGRAD_ERR_UNSUPPORTED,
                        "%s: output.terms[%lld]: a margin needs the model's outputs and "
                        "their backward pass, which a callback model does not give", fn,
                        (long long)k);
        MGRAD_RETURN_IF(ctx, mgr_graph_output(&run->model.graph)->positions > 0,
                        MGRAD_ERR_UNSUPPORTED, "%s: output.terms[%lld]: a margin of a "
                        "sequence output is not supported", fn, (long long)k);
    }
    MGRAD_RETURN_IF(ctx, (t->kind == MGRAD_OUTPUT_MARGIN || t->num_classes > 0) &&
                    ds->labels == NULL, MGRAD_ERR_ORDER,
                    "%s: output.terms[%lld]: %s needs labels; the dataset has none", fn,
                    (long long)k, t->kind == MGRAD_OUTPUT_MARGIN ? "a margin" : "classes");
    for (int64_t j = 0; j < t->num_classes; j++)
        MGRAD_RETURN_IF(ctx, t->classes[j] < 0 || t->classes[j] >= run->model.classes,
                        MGRAD_ERR_INVALID, "%s: output.terms[%lld].classes[%lld] = %d is not "
                        "one of the model's %lld classes", fn, (long long)k, (long long)j,
                        (int)t->classes[j], (long long)run->model.classes);
    for (int64_t j = 0; j < t->num_rows; j++)
        MGRAD_RETURN_IF(ctx, t->rows[j] < 0 || t->rows[j] >= ds->n, MGRAD_ERR_INVALID,
                        "%s: output.terms[%lld].rows[%lld] = %lld is not a row of the "
                        "dataset (size %lld)", fn, (long long)k, (long long)j,
                        (long long)t->rows[j], (long long)ds->n);
    return MGRAD_OK;
}

static bool class_selected(const mgrad_output_term *t, int32_t label)
{
    if (t->num_classes == 0) return true;
    for (int64_t j = 0; j < t->num_classes; j++)
        if (t->classes[j] == label) return true;
    return false;
}

/* The selected rows of a checked term into *out (the library's copy; NULL
   when every row is selected) and their number into *count.  `mark` [n]
   is scratch of the dataset's size, zero on entry and on return. */
static mgrad_status select_rows(const mgrad_run *run, const char *fn, int64_t k,
                                const mgrad_output_term *t, unsigned char *mark,
                                int64_t **out, int64_t *count)
{
    mgrad_context *ctx = run->ctx;
    const mgrad_dataset *ds = t->dataset;
    *out = NULL;
    *count = 0;
    int64_t n = t->rows != NULL && t->num_rows > 0 ? t->num_rows : ds->n;
    for (int64_t j = 0; j < t->num_rows; j++) {
        int64_t i = t->rows[j];
        if (mark[i]) {
            for (int64_t q = 0; q < j; q++) mark[t->rows[q]] = 0;
            return mgr_error(ctx, MGRAD_ERR_INVALID, "%s: output.terms[%lld].rows[%lld] = "
                             "%lld is repeated", fn, (long long)k, (long long)j, (long long)i);
        }
        mark[i] = 1;
    }
    for (int64_t j = 0; j < t->num_rows; j++) mark[t->rows[j]] = 0;
    int64_t m = 0;
    for (int64_t j = 0; j < n; j++) {
        int64_t i = t->num_rows > 0 ? t->rows[j] : j;
        if (class_selected(t, ds->labels != NULL ? ds->labels[i] : -1)) m++;
    }
    MGRAD_RETURN_IF(ctx, m == 0, MGRAD_ERR_INVALID,
                    "%s: output.terms[%lld] selects no row (no row of the given classes)",
                    fn, (long long)k);
    MGRAD_FORWARD(mgr_run_check_norm_rows(run, fn, "the selected rows of an output term", m, 1));
    if (t->num_rows == 0 && t->num_classes == 0) {
        *count = m;
        return MGRAD_OK;
    }
    int64_t *rows = NULL;
    MGRAD_FORWARD(mgr_alloc_or_fail(ctx, (void **)&rows, (size_t)m, sizeof *rows,
                                    "the rows of an output term"));
    m = 0;
    for (int64_t j = 0; j < n; j++) {
        int64_t i = t->num_rows > 0 ? t->rows[j] : j;
        if (class_selected(t, ds->labels != NULL ? ds->labels[i] : -1)) rows[m++] = i;
    }
    *out = rows;
    *count = m;
    return MGRAD_OK;
}

mgrad_status mgrad_run_set_output(mgrad_run *run, const mgrad_output *output)
{
    if (run == NULL) return MGRAD_ERR_NULL;
    mgrad_context *ctx = run->ctx;
    const char *fn = "mgrad_run_set_output";
    mgr_run_output *o = &run->output;
    if (output == NULL) { /* back to the default */
        mgr_output_free(run);
        o->fn = NULL;
        o->user_data = NULL;
        o->last_k = 1;
        o->num_terms = run->config.val != NULL ? 1 : 0;
        o->terms = run->config.val != NULL ? &o->dflt : NULL;
        mgr_run_invalidate(run, MGR_STALE_OUTPUT);
        return MGRAD_OK;
    }
    MGRAD_RETURN_IF(ctx, output->version != MGRAD_OUTPUT_VERSION, MGRAD_ERR_VERSION,
                    "%s: output version %u unknown (this library knows %d); initialise "
                    "with MGRAD_OUTPUT_INIT", fn, (unsigned)output->version,
                    MGRAD_OUTPUT_VERSION);
    MGRAD_RETURN_IF(ctx, output->num_terms < 0 || (output->terms == NULL &&
                    output->num_terms > 0), output->num_terms < 0 ? MGRAD_ERR_INVALID
                                                                  : MGRAD_ERR_NULL,
                    "%s: output.terms is NULL or num_terms = %lld is negative", fn,
                    (long long)output->num_terms);
    MGRAD_RETURN_IF(ctx, output->num_terms == 0 && output->fn == NULL, MGRAD_ERR_INVALID,
                    "%s: the output has no term and no function fn", fn);
    MGRAD_RETURN_IF(ctx, output->last_k < 0 || output->last_k > run->config.steps,
                    MGRAD_ERR_INVALID, "%s: output.last_k = %lld must be in [0, T = %lld] "
                    "(0: the last state only)", fn, (long long)output->last_k,
                    (long long)run->config.steps);
    int64_t n = output->num_terms;
    int64_t max_n = 0;
    for (int64_t k = 0; k < n; k++) {
        MGRAD_FORWARD(check_term(run, fn, k, &output->terms[k]));
        if (output->terms[k].dataset->n > max_n) max_n = output->terms[k].dataset->n;
    }
    /* Everything validated but duplicates and empty selections: build the
       new output aside, then swap it in. */
    mgr_output_term *terms = NULL;
    unsigned char *mark = NULL;
    void *fn_grad = NULL;
    mgrad_status s = MGRAD_OK;
    if (n > 0)
        s = mgr_alloc_or_fail(ctx, (void **)&terms, (size_t)n, sizeof *terms,
                              "the output terms");
    if (s == MGRAD_OK && max_n > 0)
        s = mgr_alloc_or_fail(ctx, (void **)&mark, (size_t)max_n, 1, "row marks");
    if (s == MGRAD_OK && output->fn != NULL)
        s = mgr_alloc_or_fail(ctx, &fn_grad, (size_t)run->model.num_params,
                              mgr_dtype_size(ctx->dtype), "the output function's gradient");
    if (mark != NULL) memset(mark, 0, (size_t)max_n);
    int64_t built = 0;
    for (; s == MGRAD_OK && built < n; built++) {
        const mgrad_output_term *t = &output->terms[built];
        int64_t *rows = NULL, count = 0;
        s = select_rows(run, fn, built, t, mark, &rows, &count);
        if (s != MGRAD_OK) break;
        terms[built] = (mgr_output_term){.kind = t->kind, .ds = (mgrad_dataset *)t->dataset,
                                         .weight = t->weight, .rows = rows, .count = count};
        mgr_dataset_retain(terms[built].ds);
    }
    mgr_free(ctx, mark);
    if (s != MGRAD_OK) {
        free_terms(ctx, terms, built);
        mgr_free(ctx, fn_grad);
        return s;
    }
    mgr_output_free(run);
    o->terms = terms;
    o->num_terms = n;
    o->owned = true;
    o->fn = output->fn;
    o->user_data = output->user_data;
    o->fn_grad = fn_grad;
    o->last_k = output->last_k > 0 ? output->last_k : 1;
    mgr_run_invalidate(run, MGR_STALE_OUTPUT);
    return MGRAD_OK;
}
