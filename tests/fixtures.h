/*
 * fixtures.h - the whole-run fixtures shared by the suites (header-only,
 * like testutil.h): a data set drawn from a seed, the one-hidden-layer tanh
 * MLP, the optimizer fields of mgrad_run_options, a training and a
 * meta-parameter that must succeed, a check of the last error message, and
 * the teardown.
 *
 * One copy, so that the suites that compare against each other's set-ups
 * (test_callback.c's built-in twin, test_checkpoint.c's world, test_run.c,
 * test_mgd.c) draw the same data from the same seed by construction.
 */
#ifndef MGRAD_TEST_FIXTURES_H
#define MGRAD_TEST_FIXTURES_H

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "metagrad.h"
#include "testutil.h"

/* n rows of nf features uniform in [-1.5, 1.5) and labels uniform in
   [0, nc), from the SplitMix64 stream at seed.  draw_targets: n·nc targets in
   [-1, 1) are drawn between the features and the labels (so the labels are
   not those of draw_targets = 0 at the same seed); attach_targets (needs
   draw_targets): the data set gets the targets instead of the labels. */
static inline void tf_data(mgrad_context *ctx, int n, int nf, int nc, uint64_t seed,
                           int draw_targets, int attach_targets, mgrad_dataset **out)
{
    ck_assert(!attach_targets || draw_targets);
    double *x = malloc((size_t)n * (size_t)nf * sizeof *x);
    double *y = malloc((size_t)n * (size_t)nc * sizeof *y);
    int32_t *labels = malloc((size_t)n * sizeof *labels);
    ck_assert(x != NULL && y != NULL && labels != NULL);
    uint64_t s = seed;
    tu_fill(x, (size_t)n * (size_t)nf, &s, 1.5);
    if (draw_targets) tu_fill(y, (size_t)n * (size_t)nc, &s, 1.0);
    /* (r + 1)·nc/2 rounds once, as (r + 1)·1.5 did for nc = 3 */
    for (int i = 0; i < n; i++) labels[i] = (int32_t)((tu_rand(&s) + 1) * 0.5 * nc) % nc;
    int64_t shape[1] = {nf};
    ck_assert_int_eq(mgrad_dataset_create(out, ctx, n, 1, shape, MGRAD_DTYPE_F64, x), MGRAD_OK);
    if (attach_targets)
        ck_assert_int_eq(mgrad_dataset_set_targets(*out, MGRAD_DTYPE_F64, y, n, nc), MGRAD_OK);
    else
        ck_assert_int_eq(mgrad_dataset_set_labels(*out, labels, n, nc), MGRAD_OK);
    free(x);
    free(y);
    free(labels);
}

/* tf_data with labels only. */
static inline void tf_labelled_data(mgrad_context *ctx, int n, int nf, int nc, uint64_t seed,
                                    mgrad_dataset **out)
{
    tf_data(ctx, n, nf, nc, seed, 0, 0, out);
}

/* nf → dense(hidden) → tanh → dense(nc), default initialisation. */
static inline void tf_mlp(mgrad_context *ctx, int nf, int hidden, int nc, mgrad_model **out)
{
    int64_t shape[1] = {nf};
    ck_assert_int_eq(mgrad_model_create(out, ctx, 1, shape), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(*out, hidden, MGRAD_INIT_DEFAULT), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_activation(*out, MGRAD_ACTIVATION_TANH), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(*out, nc, MGRAD_INIT_DEFAULT), MGRAD_OK);
}

/* The optimizer fields of o.  `momentum` is SGD's momentum, or β1 for Adam
   and AdamW; SGD keeps β1 at its default, 0.9. */
static inline void tf_optimizer(mgrad_run_options *o, mgrad_optimizer opt, double lr,
                                double momentum, int nesterov, double weight_decay,
                                double eps_root)
{
    o->optimizer = opt;
    o->lr = lr;
    o->momentum = opt == MGRAD_OPTIMIZER_SGD ? momentum : 0;
    o->beta1 = opt == MGRAD_OPTIMIZER_SGD ? 0.9 : momentum;
    o->nesterov = nesterov;
    o->weight_decay = weight_decay;
    o->eps_root = eps_root;
}

/* Train run; the call must succeed (the message names the context's error).
   Returns φ. */
static inline double tf_train(mgrad_context *ctx, mgrad_run *run)
{
    double phi = 0;
    mgrad_status s = mgrad_run_train(run, &phi);
    ck_assert_msg(s == MGRAD_OK, "train: %s", mgrad_context_last_error(ctx));
    return phi;
}

/* A meta-parameter of run with options mo (NULL: the defaults); the call
   must succeed. */
static inline mgrad_meta *tf_add_meta(mgrad_context *ctx, mgrad_run *run, mgrad_meta_kind kind,
                                      const mgrad_meta_options *mo)
{
    mgrad_meta *m = NULL;
    mgrad_status s = mgrad_run_add_meta(&m, run, kind, mo);
    ck_assert_msg(s == MGRAD_OK, "add_meta: %s", mgrad_context_last_error(ctx));
    return m;
}

/* The context's last error message contains text. */
static inline void tf_assert_error_has(mgrad_context *ctx, const char *text)
{
    const char *msg = mgrad_context_last_error(ctx);
    ck_assert_msg(strstr(msg, text) != NULL, "message \"%s\" lacks \"%s\"", msg, text);
}

/* Destroy a fixture's handles; any may be NULL.  Every object keeps what it
   uses alive (docs/api.md), so any order frees everything. */
static inline void tf_destroy(mgrad_context *ctx, mgrad_model *model, mgrad_run *run,
                              mgrad_dataset *train, mgrad_dataset *val, mgrad_dataset *pool)
{
    mgrad_run_destroy(run);
    mgrad_dataset_destroy(train);
    mgrad_dataset_destroy(val);
    mgrad_dataset_destroy(pool);
    mgrad_model_destroy(model);
    mgrad_context_destroy(ctx);
}

#endif
