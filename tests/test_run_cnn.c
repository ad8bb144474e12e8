/*
 * test_run_cnn.c - whole training runs of small CNNs through the public API
 * (conv, batch norm, pooling, layer norm, dropout, a ResNet block): input-
 * pixel and per-example-weight metagradients against finite differences of
 * whole runs (f64), f32 against f64, and dropout replay (two identical runs
 * agree bit for bit).
 *
 * The step h and the allocation helper: fdcheck.h.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fdcheck.h"
#include "fixtures.h"
#include "metagrad.h"

/* ---- whole runs through the public API ----------------------------------- */

enum { NTRAIN = 12, NVAL = 8, IMG = 6, NCLS = 3, T = 6, B = 4 };

typedef struct cnn {
    mgrad_context *ctx;
    mgrad_model *model;
    mgrad_dataset *train, *val;
    mgrad_run *run;
} cnn;

/* variant 0: conv-bn-tanh, conv-bn-gelu + residual, avg pool, flatten,
   dense, scale.  variant 1: conv-gelu-bn (bn after the activation),
   max pool, layer norm, dropout, dense, scale.  variant 2: a ResNet block
   (relu) with a projection, global average pooling. */
static void cnn_setup(cnn *f, int variant, mgrad_dtype dtype)
{
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = dtype;
    co.seed = 11;
    ck_assert_int_eq(mgrad_context_create(&f->ctx, &co), MGRAD_OK);
    int64_t shape[3] = {1, IMG, IMG};
    mgrad_model *m = NULL;
    ck_assert_int_eq(mgrad_model_create(&m, f->ctx, 3, shape), MGRAD_OK);
    f->model = m;
    int32_t mark = 0;
    switch (variant) {
    case 0:
        ck_assert_int_eq(mgrad_model_add_conv2d(m, 3, 3, 1, 1, MGRAD_INIT_DEFAULT), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_batch_norm(m, 1e-5), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_activation(m, MGRAD_ACTIVATION_TANH), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_mark(m, &mark), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_conv2d(m, 3, 3, 1, 1, MGRAD_INIT_DEFAULT), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_batch_norm(m, 1e-5), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_activation(m, MGRAD_ACTIVATION_GELU), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_residual(m, mark), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_avg_pool(m, 2, 2), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_flatten(m), MGRAD_OK);
        break;
    case 1:
        ck_assert_int_eq(mgrad_model_add_conv2d(m, 2, 3, 2, 1, MGRAD_INIT_DEFAULT), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_activation(m, MGRAD_ACTIVATION_GELU), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_batch_norm(m, 1e-5), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_max_pool(m, 2, 1), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_flatten(m), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_layer_norm(m, 1e-5), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_dropout(m, 0.25), MGRAD_OK);
        break;
    default:
        ck_assert_int_eq(mgrad_model_add_conv2d(m, 2, 3, 1, 1, MGRAD_INIT_DEFAULT), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_resnet_block(m, 3, 2), MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_global_avg_pool(m), MGRAD_OK);
        break;
    }
    ck_assert_int_eq(mgrad_model_add_dense(m, NCLS, MGRAD_INIT_DEFAULT), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_scale(m, 0.5), MGRAD_OK);

    for (int set = 0; set < 2; set++) {
        int n = set == 0 ? NTRAIN : NVAL;
        double x[NTRAIN * IMG * IMG];
        int32_t labels[NTRAIN];
        uint64_t st = 101 + (uint64_t)set;
        tu_fill(x, (size_t)n * IMG * IMG, &st, 1.0);
        for (int i = 0; i < n; i++) labels[i] = (int32_t)((tu_rand(&st) + 1) * 1.5) % NCLS;
        mgrad_dataset **ds = set == 0 ? &f->train : &f->val;
        ck_assert_int_eq(mgrad_dataset_create(ds, f->ctx, n, 3, shape, MGRAD_DTYPE_F64, x),
                         MGRAD_OK);
        ck_assert_int_eq(mgrad_dataset_set_labels(*ds, labels, n, NCLS), MGRAD_OK);
    }
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = T;
    o.batch_size = B;
    o.shuffle_seed = 5;
    o.optimizer = MGRAD_OPTIMIZER_SGD;
    o.lr = 0.3;
    o.momentum = 0.5;
    o.weight_decay = 0.01;
    o.validation = f->val;
    mgrad_status s = mgrad_run_create(&f->run, m, f->train, &o);
    ck_assert_msg(s == MGRAD_OK, "run_create: %s", mgrad_context_last_error(f->ctx));
}

static void cnn_teardown(cnn *f)
{
    tf_destroy(f->ctx, f->model, f->run, f->train, f->val, NULL);
}

static double train_phi(cnn *f) { return tf_train(f->ctx, f->run); }

/* ⟨dφ/dz, v⟩ against (φ(z + hv) − φ(z − hv)) / 2h for a random v; with
   coord >= 0, v is that coordinate alone. */
static double fd_meta(cnn *f, mgrad_meta *m, uint64_t seed, int64_t coord, double *dir_out)
{
    int64_t n = 0;
    ck_assert_int_eq(mgrad_meta_size(m, &n), MGRAD_OK);
    double *z = dalloc((size_t)n), *g = dalloc((size_t)n), *v = dalloc((size_t)n);
    double *zz = dalloc((size_t)n);
    ck_assert_int_eq(mgrad_meta_get_value(m, MGRAD_DTYPE_F64, z, n), MGRAD_OK);
    train_phi(f);
    mgrad_status s = mgrad_run_reverse(f->run);
    ck_assert_msg(s == MGRAD_OK, "reverse: %s", mgrad_context_last_error(f->ctx));
    ck_assert_int_eq(mgrad_meta_get_grad(m, MGRAD_DTYPE_F64, g, n), MGRAD_OK);
    uint64_t st = seed;
    if (coord >= 0)
        v[coord] = 1.0;
    else
        tu_fill(v, (size_t)n, &st, 1.0);
    double dir = 0;
    for (int64_t i = 0; i < n; i++) dir += g[i] * v[i];
    double h = FD_H;
    for (int64_t i = 0; i < n; i++) zz[i] = z[i] + h * v[i];
    ck_assert_int_eq(mgrad_meta_set_value(m, MGRAD_DTYPE_F64, zz, n), MGRAD_OK);
    double pp = train_phi(f);
    for (int64_t i = 0; i < n; i++) zz[i] = z[i] - h * v[i];
    ck_assert_int_eq(mgrad_meta_set_value(m, MGRAD_DTYPE_F64, zz, n), MGRAD_OK);
    double pm = train_phi(f);
    ck_assert_int_eq(mgrad_meta_set_value(m, MGRAD_DTYPE_F64, z, n), MGRAD_OK);
    free(z);
    free(g);
    free(v);
    free(zz);
    if (dir_out != NULL) *dir_out = dir;
    return tu_rel_err(dir, (pp - pm) / (2 * h), 1e-8);
}

static const char *VARIANT_NAMES[] = {
    "conv-bn-tanh/conv-bn-gelu+res, avgpool",
    "conv(s2)-gelu-bn, maxpool, layernorm, dropout",
    "resnet block (projection), global avgpool",
};

/* _i: the network variant.  Data weights (all rows), input pixels of three
   training rows, and single-coordinate checks of one weight and one pixel. */
START_TEST(test_whole_run_fd)
{
    static const int64_t rows[3] = {1, 6, 10};
    struct { mgrad_meta_kind kind; int64_t coord; const char *name; } checks[] = {
        {MGRAD_META_DATA_WEIGHTS, -1, "data weights"},
        {MGRAD_META_DATA_WEIGHTS, 6, "data weight of row 6"},
        {MGRAD_META_INPUTS, -1, "input pixels (3 rows)"},
        {MGRAD_META_INPUTS, IMG * IMG + 14, "one pixel of row 6"},
    };
    for (size_t k = 0; k < sizeof checks / sizeof checks[0]; k++) {
        cnn f;
        cnn_setup(&f, _i, MGRAD_DTYPE_F64);
        mgrad_meta_options mo = MGRAD_META_OPTIONS_INIT;
        if (checks[k].kind == MGRAD_META_INPUTS) {
            mo.rows = rows;
            mo.num_rows = 3;
        }
        mgrad_meta *m = tf_add_meta(f.ctx, f.run, checks[k].kind, &mo);
        double dir = 0;
        double err = fd_meta(&f, m, 500 + k, checks[k].coord, &dir);
        printf("fd whole run %-46s %-22s <g,v> = %+.10e  rel err %.2e\n",
               VARIANT_NAMES[_i], checks[k].name, dir, err);
        ck_assert_msg(err <= 1e-6, "%s / %s: metagradient %.12e vs finite differences, "
                      "relative error %.3e", VARIANT_NAMES[_i], checks[k].name, dir, err);
        ck_assert(dir != 0);
        cnn_teardown(&f);
    }
}
END_TEST

/* The same metagradients in f32 agree with f64 (all four passes of every op
   run in f32 here); two identical runs agree bit for bit (dropout replay). */
static void cnn_metagrads(int variant, mgrad_dtype dtype, double *wg, double *xg)
{
    static const int64_t rows[2] = {2, 9};
    cnn f;
    cnn_setup(&f, variant, dtype);
    mgrad_meta_options mo = MGRAD_META_OPTIONS_INIT;
    mgrad_meta *w = NULL, *x = NULL;
    ck_assert_int_eq(mgrad_run_add_meta(&w, f.run, MGRAD_META_DATA_WEIGHTS, &mo), MGRAD_OK);
    mo.rows = rows;
    mo.num_rows = 2;
    ck_assert_int_eq(mgrad_run_add_meta(&x, f.run, MGRAD_META_INPUTS, &mo), MGRAD_OK);
    train_phi(&f);
    ck_assert_int_eq(mgrad_run_reverse(f.run), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(w, MGRAD_DTYPE_F64, wg, NTRAIN), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(x, MGRAD_DTYPE_F64, xg, 2 * IMG * IMG), MGRAD_OK);
    cnn_teardown(&f);
}

START_TEST(test_f32_and_replay)
{
    double w64[NTRAIN], x64[2 * IMG * IMG], w32[NTRAIN], x32[2 * IMG * IMG];
    double w64b[NTRAIN], x64b[2 * IMG * IMG];
    cnn_metagrads(_i, MGRAD_DTYPE_F64, w64, x64);
    cnn_metagrads(_i, MGRAD_DTYPE_F64, w64b, x64b);
    ck_assert(memcmp(w64, w64b, sizeof w64) == 0);
    ck_assert(memcmp(x64, x64b, sizeof x64) == 0);
    cnn_metagrads(_i, MGRAD_DTYPE_F32, w32, x32);
    double ew = tu_vec_rel_err(w32, w64, NTRAIN, 1e-12);
    double ex = tu_vec_rel_err(x32, x64, 2 * IMG * IMG, 1e-12);
    printf("f32 vs f64 %-46s weights %.2e  inputs %.2e\n", VARIANT_NAMES[_i], ew, ex);
    ck_assert_msg(ew < 1e-3 && ex < 1e-3, "f32 vs f64: %.3e %.3e", ew, ex);
}
END_TEST

Suite *make_suite(void); /* called by runner.c */

Suite *make_suite(void)
{
    Suite *s = suite_create("run_cnn");
    TCase *tc = tcase_create("runs");
    tcase_add_loop_test(tc, test_whole_run_fd, 0, 3);
    tcase_add_loop_test(tc, test_f32_and_replay, 0, 3);
    suite_add_tcase(s, tc);
    return s;
}
