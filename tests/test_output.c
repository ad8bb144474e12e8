/*
 * test_output.c - output functions (metagrad/run.h, mgrad_run_set_output)
 * against central finite differences of whole training runs (f64), the
 * built-in loss against the same loss given as the caller's function,
 * last-K averaging under checkpointing against store-all, plain runs
 * without a validation set, and the errors of mgrad_run_set_output.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "metagrad.h"
#include "testutil.h"

enum { NTRAIN = 24, NVAL = 16, NAUX = 10, F = 6, C = 3, T = 12, B = 6, H = 8 };

typedef struct world {
    mgrad_context *ctx;
    mgrad_model *model;
    mgrad_dataset *train, *val, *aux;
    mgrad_run *run;
} world;

/* SGD with momentum or Adam on the tanh MLP; checkpoint: 0 store-all, else
   binomial with that many slots; with_val: 0 makes a plain run. */
static void setup(world *w, mgrad_optimizer opt, int slots, int with_val)
{
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = MGRAD_DTYPE_F64;
    co.seed = 7;
    ck_assert_int_eq(mgrad_context_create(&w->ctx, &co), MGRAD_OK);
    tf_mlp(w->ctx, F, H, C, &w->model);
    tf_labelled_data(w->ctx, NTRAIN, F, C, 11, &w->train);
    tf_labelled_data(w->ctx, NVAL, F, C, 23, &w->val);
    tf_labelled_data(w->ctx, NAUX, F, C, 37, &w->aux);
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = T;
    o.batch_size = B;
    o.shuffle_seed = 5;
    if (opt == MGRAD_OPTIMIZER_SGD)
        tf_optimizer(&o, opt, 0.2, 0.9, 0, 0.01, 0);
    else
        tf_optimizer(&o, opt, 0.02, 0.9, 0, 0.01, 1e-4);
    if (slots > 0) {
        o.checkpoint = MGRAD_CHECKPOINT_BINOMIAL;
        o.checkpoint_slots = slots;
    }
    o.validation = with_val ? w->val : NULL;
    mgrad_status s = mgrad_run_create(&w->run, w->model, w->train, &o);
    ck_assert_msg(s == MGRAD_OK, "create: %s", mgrad_context_last_error(w->ctx));
}

static void teardown(world *w)
{
    tf_destroy(w->ctx, w->model, w->run, w->train, w->val, w->aux);
}

/* ---- the caller's function of the FD tests ------------------------------
   f(θ) = 0.05 Σ_i a_i sin(θ_i) + 0.02 Σ_i θ_i², a drawn once. */
typedef struct sin_fn {
    double a[512];
    int calls;
} sin_fn;

static int sin_output(const void *theta, int64_t count, double *value, void *grad,
                      void *user_data)
{
    sin_fn *sf = user_data;
    const double *th = theta;
    double *g = grad;
    double v = 0;
    ck_assert_int_le(count, 512);
    for (int64_t i = 0; i < count; i++) {
        v += 0.05 * sf->a[i] * sin(th[i]) + 0.02 * th[i] * th[i];
        if (g != NULL) g[i] = 0.05 * sf->a[i] * cos(th[i]) + 0.04 * th[i];
    }
    *value = v;
    sf->calls++;
    return 0;
}

static int failing_output(const void *theta, int64_t count, double *value, void *grad,
                          void *user_data)
{
    (void)theta, (void)count, (void)value, (void)grad, (void)user_data;
    return 3;
}

/* ---- the output functions under test ------------------------------------ */

enum { OUT_NEG_LOSS, OUT_SUM, OUT_RESTRICTED, OUT_MARGIN, OUT_LAST_K, OUT_FN, NOUTPUTS };
static const char *OUT_NAMES[] = {"-loss(val)", "0.7 val - 0.4 aux", "loss rows∩classes",
                                  "margin(val)", "last_k=4", "caller fn + loss"};

static const int64_t SOME_ROWS[] = {1, 4, 7, 9, 12, 15, 2};
static const int32_t SOME_CLASSES[] = {0, 2};

static void set_output(world *w, int which, sin_fn *sf)
{
    mgrad_output_term terms[2];
    memset(terms, 0, sizeof terms);
    mgrad_output out = MGRAD_OUTPUT_INIT;
    out.terms = terms;
    out.num_terms = 1;
    terms[0].kind = MGRAD_OUTPUT_LOSS;
    terms[0].dataset = w->val;
    terms[0].weight = 1.0;
    switch (which) {
    case OUT_NEG_LOSS: terms[0].weight = -1.0; break;
    case OUT_SUM:
        terms[0].weight = 0.7;
        terms[1] = (mgrad_output_term){MGRAD_OUTPUT_LOSS, w->aux, -0.4, NULL, 0, NULL, 0};
        out.num_terms = 2;
        break;
    case OUT_RESTRICTED:
        terms[0].rows = SOME_ROWS;
        terms[0].num_rows = 7;
        terms[0].classes = SOME_CLASSES;
        terms[0].num_classes = 2;
        break;
    case OUT_MARGIN: terms[0].kind = MGRAD_OUTPUT_MARGIN; break;
    case OUT_LAST_K: out.last_k = 4; break;
    case OUT_FN:
        out.fn = sin_output;
        out.user_data = sf;
        break;
    }
    mgrad_status s = mgrad_run_set_output(w->run, &out);
    ck_assert_msg(s == MGRAD_OK, "set_output: %s", mgrad_context_last_error(w->ctx));
}

static double train_phi(world *w) { return tf_train(w->ctx, w->run); }

static mgrad_meta *add_meta(world *w, mgrad_meta_kind kind)
{
    return tf_add_meta(w->ctx, w->run, kind, NULL);
}

/* Relative error of ⟨dφ/dz, v⟩ against central differences of whole runs. */
static double fd_check(world *w, mgrad_meta *m, uint64_t seed, double *out_dir)
{
    int64_t n = 0;
    ck_assert_int_eq(mgrad_meta_size(m, &n), MGRAD_OK);
    double *z = malloc((size_t)n * sizeof *z), *g = malloc((size_t)n * sizeof *g);
    double *v = malloc((size_t)n * sizeof *v), *zz = malloc((size_t)n * sizeof *zz);
    ck_assert(z != NULL && g != NULL && v != NULL && zz != NULL);
    ck_assert_int_eq(mgrad_meta_get_value(m, MGRAD_DTYPE_F64, z, n), MGRAD_OK);
    train_phi(w);
    mgrad_status s = mgrad_run_reverse(w->run);
    ck_assert_msg(s == MGRAD_OK, "reverse: %s", mgrad_context_last_error(w->ctx));
    ck_assert_int_eq(mgrad_meta_get_grad(m, MGRAD_DTYPE_F64, g, n), MGRAD_OK);
    uint64_t st = seed;
    tu_fill(v, (size_t)n, &st, 1.0);
    mgrad_meta_kind kind;
    mgrad_meta_kind_of(m, &kind);
    if (kind == MGRAD_META_WEIGHT_DECAY) v[0] = 1.0;
    double dir = 0;
    for (int64_t i = 0; i < n; i++) dir += g[i] * v[i];
    /* The five-point stencil (error O(h⁴)): some of these directional
       derivatives are small (10⁻³) against φ's curvature, where the
       three-point stencil's O(h²) error alone reaches 1e-6 relative. */
    double h = 1e-4, phi_at[4];
    static const double STEPS[4] = {2, 1, -1, -2};
    for (int j = 0; j < 4; j++) {
        for (int64_t i = 0; i < n; i++) zz[i] = z[i] + STEPS[j] * h * v[i];
        ck_assert_int_eq(mgrad_meta_set_value(m, MGRAD_DTYPE_F64, zz, n), MGRAD_OK);
        phi_at[j] = train_phi(w);
    }
    ck_assert_int_eq(mgrad_meta_set_value(m, MGRAD_DTYPE_F64, z, n), MGRAD_OK);
    double fd = (8 * (phi_at[1] - phi_at[2]) - (phi_at[0] - phi_at[3])) / (12 * h);
    free(z);
    free(g);
    free(v);
    free(zz);
    *out_dir = dir;
    return tu_rel_err(dir, fd, 1e-8);
}

static const mgrad_meta_kind KINDS[] = {MGRAD_META_DATA_WEIGHTS, MGRAD_META_LR_SCHEDULE,
                                        MGRAD_META_INITIAL_PARAMS, MGRAD_META_WEIGHT_DECAY};
static const char *KIND_NAMES[] = {"data_weights", "lr_schedule", "initial_params",
                                   "weight_decay"};
static const mgrad_optimizer OPTS[] = {MGRAD_OPTIMIZER_SGD, MGRAD_OPTIMIZER_ADAM};
static const char *OPT_NAMES[] = {"momentum", "adam"};

/* Every output function × {SGD momentum, Adam} × four metaparameter kinds. */
START_TEST(test_fd_outputs)
{
    int which = _i;
    for (int o = 0; o < 2; o++)
        for (int k = 0; k < 4; k++) {
            world w;
            setup(&w, OPTS[o], 0, 1);
            sin_fn sf;
            uint64_t st = 99;
            tu_fill(sf.a, 512, &st, 1.0);
            sf.calls = 0;
            set_output(&w, which, &sf);
            mgrad_meta *m = add_meta(&w, KINDS[k]);
            double dir = 0;
            double err = fd_check(&w, m, 2000 + (uint64_t)(10 * o + k), &dir);
            printf("fd %-18s %-8s %-14s <g,v> = %+.10e  rel err %.2e\n", OUT_NAMES[which],
                   OPT_NAMES[o], KIND_NAMES[k], dir, err);
            ck_assert_msg(fabs(dir) > 1e-8, "%s: a vanishing metagradient tests nothing",
                          OUT_NAMES[which]);
            ck_assert_msg(err <= 1e-6, "%s / %s / %s: metagradient %.12e vs finite "
                          "differences, relative error %.3e", OUT_NAMES[which], OPT_NAMES[o],
                          KIND_NAMES[k], dir, err);
            if (which == OUT_FN) ck_assert_int_gt(sf.calls, 0);
            teardown(&w);
        }
}
END_TEST

/* φ and the metagradients of a run (all of θ0's), for comparisons. */
static double phi_and_grad(world *w, mgrad_meta *m, double *g, int64_t n)
{
    double phi = train_phi(w);
    mgrad_status s = mgrad_run_reverse(w->run);
    ck_assert_msg(s == MGRAD_OK, "reverse: %s", mgrad_context_last_error(w->ctx));
    ck_assert_int_eq(mgrad_meta_get_grad(m, MGRAD_DTYPE_F64, g, n), MGRAD_OK);
    return phi;
}

/* Weight −1 negates every value and gradient exactly (a sign flip rounds
   nothing), so maximising through the signed output is bit-identical to
   negating by hand. */
START_TEST(test_negated_is_exact)
{
    world w;
    setup(&w, MGRAD_OPTIMIZER_ADAM, 0, 1);
    mgrad_meta *m = add_meta(&w, MGRAD_META_LR_SCHEDULE);
    double g0[T], g1[T];
    double phi0 = phi_and_grad(&w, m, g0, T);
    set_output(&w, OUT_NEG_LOSS, NULL);
    double phi1 = phi_and_grad(&w, m, g1, T);
    ck_assert(phi1 == -phi0);
    for (int t = 0; t < T; t++) ck_assert(g1[t] == -g0[t]);
    /* NULL restores the default: the same bits again */
    ck_assert_int_eq(mgrad_run_set_output(w.run, NULL), MGRAD_OK);
    ck_assert(phi_and_grad(&w, m, g1, T) == phi0);
    ck_assert(memcmp(g0, g1, sizeof g0) == 0);
    teardown(&w);
}
END_TEST

/* last_k under binomial checkpointing: the reverse evaluates ∇ψ(θ_t) at
   restored or recomputed states, which are bit-identical to the stored
   ones, so the metagradients are too. */
START_TEST(test_last_k_checkpointing)
{
    int64_t P = 0;
    double *g[3] = {NULL, NULL, NULL}, phi[3];
    static const int SLOTS[3] = {0, 2, 3};
    for (int c = 0; c < 3; c++) {
        world w;
        setup(&w, MGRAD_OPTIMIZER_SGD, SLOTS[c], 1);
        set_output(&w, OUT_LAST_K, NULL);
        mgrad_meta *m = add_meta(&w, MGRAD_META_INITIAL_PARAMS);
        ck_assert_int_eq(mgrad_meta_size(m, &P), MGRAD_OK);
        g[c] = malloc((size_t)P * sizeof(double));
        phi[c] = phi_and_grad(&w, m, g[c], P);
        mgrad_run_stats st = MGRAD_RUN_STATS_INIT;
        ck_assert_int_eq(mgrad_run_get_stats(w.run, &st), MGRAD_OK);
        if (SLOTS[c] > 0) ck_assert_int_gt(st.steps_recomputed, 0);
        teardown(&w);
    }
    for (int c = 1; c < 3; c++) {
        ck_assert(phi[c] == phi[0]);
        ck_assert_msg(memcmp(g[c], g[0], (size_t)P * sizeof(double)) == 0,
                      "binomial with %d slots differs from store-all", SLOTS[c]);
        free(g[c]);
    }
    free(g[0]);
}
END_TEST

/* ---- the built-in loss against the same loss as the caller's function ----
   A linear softmax model o = W x + b (W [C, F] row-major, then b): the
   caller computes the mean cross-entropy of the validation set itself. */
typedef struct ce_fn {
    const double *x;   /* [NVAL, F] */
    const int32_t *y;  /* [NVAL] */
} ce_fn;

static int ce_output(const void *theta, int64_t count, double *value, void *grad,
                     void *user_data)
{
    const ce_fn *cf = user_data;
    const double *W = theta, *b = W + C * F;
    double *gW = grad, *gb = gW != NULL ? gW + C * F : NULL;
    ck_assert_int_eq(count, C * F + C);
    if (gW != NULL) memset(gW, 0, (size_t)count * sizeof *gW);
    double total = 0;
    for (int i = 0; i < NVAL; i++) {
        double o[C], mx = -INFINITY, z = 0;
        for (int c = 0; c < C; c++) {
            o[c] = b[c];
            for (int f = 0; f < F; f++) o[c] += W[c * F + f] * cf->x[i * F + f];
            mx = fmax(mx, o[c]);
        }
        for (int c = 0; c < C; c++) z += exp(o[c] - mx);
        total += mx + log(z) - o[cf->y[i]];
        if (gW == NULL) continue;
        for (int c = 0; c < C; c++) {
            double d = (exp(o[c] - mx) / z - (c == cf->y[i])) / NVAL;
            gb[c] += d;
            for (int f = 0; f < F; f++) gW[c * F + f] += d * cf->x[i * F + f];
        }
    }
    *value = total / NVAL;
    return 0;
}

START_TEST(test_builtin_matches_caller_fn)
{
    mgrad_context *ctx = NULL;
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = MGRAD_DTYPE_F64;
    ck_assert_int_eq(mgrad_context_create(&ctx, &co), MGRAD_OK);
    double xv[NVAL * F];
    int32_t yv[NVAL];
    uint64_t st = 41;
    tu_fill(xv, NVAL * F, &st, 1.5);
    for (int i = 0; i < NVAL; i++) yv[i] = (int32_t)(i * 7 % C);
    mgrad_dataset *train = NULL, *val = NULL;
    tf_labelled_data(ctx, NTRAIN, F, C, 11, &train);
    int64_t shape[1] = {F};
    ck_assert_int_eq(mgrad_dataset_create(&val, ctx, NVAL, 1, shape, MGRAD_DTYPE_F64, xv),
                     MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_set_labels(val, yv, NVAL, C), MGRAD_OK);
    mgrad_model *model = NULL;
    ck_assert_int_eq(mgrad_model_create(&model, ctx, 1, shape), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(model, C, MGRAD_INIT_DEFAULT), MGRAD_OK);
    double phi[2], gl[2][T], gw[2][NTRAIN];
    for (int pass = 0; pass < 2; pass++) {
        mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
        o.steps = T;
        o.batch_size = B;
        tf_optimizer(&o, MGRAD_OPTIMIZER_ADAM, 0.05, 0.9, 0, 0.01, 1e-4);
        o.validation = pass == 0 ? val : NULL; /* the caller's run is a plain run */
        mgrad_run *run = NULL;
        ck_assert_int_eq(mgrad_run_create(&run, model, train, &o), MGRAD_OK);
        ce_fn cf = {xv, yv};
        if (pass == 1) {
            mgrad_output out = MGRAD_OUTPUT_INIT;
            out.fn = ce_output;
            out.user_data = &cf;
            ck_assert_int_eq(mgrad_run_set_output(run, &out), MGRAD_OK);
        }
        mgrad_meta *lr = NULL, *dw = NULL;
        ck_assert_int_eq(mgrad_run_add_meta(&lr, run, MGRAD_META_LR_SCHEDULE, NULL), MGRAD_OK);
        ck_assert_int_eq(mgrad_run_add_meta(&dw, run, MGRAD_META_DATA_WEIGHTS, NULL), MGRAD_OK);
        ck_assert_int_eq(mgrad_run_train(run, &phi[pass]), MGRAD_OK);
        ck_assert_int_eq(mgrad_run_reverse(run), MGRAD_OK);
        ck_assert_int_eq(mgrad_meta_get_grad(lr, MGRAD_DTYPE_F64, gl[pass], T), MGRAD_OK);
        ck_assert_int_eq(mgrad_meta_get_grad(dw, MGRAD_DTYPE_F64, gw[pass], NTRAIN),
                         MGRAD_OK);
        mgrad_run_destroy(run);
    }
    /* Same function, different summation order: agreement to rounding. */
    double worst = tu_rel_err(phi[0], phi[1], 1e-300);
    double ng = 0, nd = 0;
    for (int t = 0; t < T; t++) {
        ng = fmax(ng, fabs(gl[0][t]));
        nd = fmax(nd, fabs(gl[0][t] - gl[1][t]));
    }
    double lr_err = nd / ng;
    ng = nd = 0;
    for (int i = 0; i < NTRAIN; i++) {
        ng = fmax(ng, fabs(gw[0][i]));
        nd = fmax(nd, fabs(gw[0][i] - gw[1][i]));
    }
    double w_err = nd / ng;
    printf("built-in vs caller fn: phi %.2e, lr grads %.2e, weight grads %.2e (max-norm "
           "relative)\n", worst, lr_err, w_err);
    ck_assert_msg(worst <= 1e-14 && lr_err <= 1e-12 && w_err <= 1e-12,
                  "built-in and caller output differ: %.3e %.3e %.3e", worst, lr_err, w_err);
    mgrad_model_destroy(model);
    mgrad_dataset_destroy(train);
    mgrad_dataset_destroy(val);
    mgrad_context_destroy(ctx);
}
END_TEST

/* A plain run trains and evaluates; φ is NaN and the reverse pass refuses
   until an output function is set. */
START_TEST(test_plain_run)
{
    world w;
    setup(&w, MGRAD_OPTIMIZER_SGD, 0, 0);
    mgrad_meta *m = add_meta(&w, MGRAD_META_LR_SCHEDULE);
    double phi = 0;
    ck_assert_int_eq(mgrad_run_train(w.run, &phi), MGRAD_OK);
    ck_assert(isnan(phi));
    double loss = NAN, acc = NAN;
    ck_assert_int_eq(mgrad_run_evaluate(w.run, w.val, &loss, &acc), MGRAD_OK);
    ck_assert(isfinite(loss) && acc >= 0 && acc <= 1);
    ck_assert_int_eq(mgrad_run_reverse(w.run), MGRAD_ERR_ORDER);
    tf_assert_error_has(w.ctx, "mgrad_run_set_output");
    /* the validation loss as an output: φ = the evaluated loss, same bits */
    mgrad_output_term term = {MGRAD_OUTPUT_LOSS, w.val, 1.0, NULL, 0, NULL, 0};
    mgrad_output out = MGRAD_OUTPUT_INIT;
    out.terms = &term;
    out.num_terms = 1;
    ck_assert_int_eq(mgrad_run_set_output(w.run, &out), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_reverse(w.run), MGRAD_ERR_ORDER);
    tf_assert_error_has(w.ctx, "mgrad_run_set_output");
    ck_assert_int_eq(mgrad_run_train(w.run, &phi), MGRAD_OK);
    ck_assert(phi == loss);
    ck_assert_int_eq(mgrad_run_reverse(w.run), MGRAD_OK);
    double g[T];
    ck_assert_int_eq(mgrad_meta_get_grad(m, MGRAD_DTYPE_F64, g, T), MGRAD_OK);
    /* NULL: back to none */
    ck_assert_int_eq(mgrad_run_set_output(w.run, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_train(w.run, &phi), MGRAD_OK);
    ck_assert(isnan(phi));
    ck_assert_int_eq(mgrad_run_reverse(w.run), MGRAD_ERR_ORDER);
    teardown(&w);
}
END_TEST

/* Refusals: a clear status and message, and the run keeps its output and
   its trajectory (a reverse still works and gives the same bits). */
START_TEST(test_set_output_errors)
{
    world w;
    setup(&w, MGRAD_OPTIMIZER_SGD, 0, 1);
    mgrad_meta *m = add_meta(&w, MGRAD_META_LR_SCHEDULE);
    double g0[T], g1[T];
    double phi0 = phi_and_grad(&w, m, g0, T);
    mgrad_context *other = NULL;
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = MGRAD_DTYPE_F64;
    ck_assert_int_eq(mgrad_context_create(&other, &co), MGRAD_OK);
    mgrad_dataset *foreign = NULL;
    tf_labelled_data(other, NVAL, F, C, 23, &foreign);
    static const int64_t bad_rows[] = {3, NVAL};
    static const int64_t dup_rows[] = {3, 5, 3};
    static const int32_t bad_classes[] = {1, C};
    static const int32_t absent_class[] = {0};
    static const int64_t row_of_class1[] = {0};
    struct {
        mgrad_output_term term;
        int64_t last_k;
        int no_terms, fn;
        mgrad_status want;
        const char *text;
    } cases[] = {
        {{MGRAD_OUTPUT_LOSS, w.val, 1, bad_rows, 2, NULL, 0}, 0, 0, 0, MGRAD_ERR_INVALID,
         "rows[1]"},
        {{MGRAD_OUTPUT_LOSS, w.val, 1, dup_rows, 3, NULL, 0}, 0, 0, 0, MGRAD_ERR_INVALID,
         "repeated"},
        {{MGRAD_OUTPUT_LOSS, w.val, 1, NULL, 0, bad_classes, 2}, 0, 0, 0, MGRAD_ERR_INVALID,
         "classes[1]"},
        {{MGRAD_OUTPUT_LOSS, w.val, 1, NULL, 3, NULL, 0}, 0, 0, 0, MGRAD_ERR_NULL, "rows"},
        {{MGRAD_OUTPUT_LOSS, NULL, 1, NULL, 0, NULL, 0}, 0, 0, 0, MGRAD_ERR_NULL, "dataset"},
        {{MGRAD_OUTPUT_LOSS, foreign, 1, NULL, 0, NULL, 0}, 0, 0, 0, MGRAD_ERR_INVALID,
         "another context"},
        {{MGRAD_OUTPUT_LOSS, w.val, NAN, NULL, 0, NULL, 0}, 0, 0, 0, MGRAD_ERR_INVALID,
         "weight"},
        {{(mgrad_output_kind)7, w.val, 1, NULL, 0, NULL, 0}, 0, 0, 0, MGRAD_ERR_INVALID,
         "kind"},
        {{MGRAD_OUTPUT_LOSS, w.val, 1, NULL, 0, NULL, 0}, T + 1, 0, 0, MGRAD_ERR_INVALID,
         "last_k"},
        {{MGRAD_OUTPUT_LOSS, w.val, 1, NULL, 0, NULL, 0}, -1, 0, 0, MGRAD_ERR_INVALID,
         "last_k"},
        {{MGRAD_OUTPUT_LOSS, w.val, 1, NULL, 0, NULL, 0}, 0, 1, 0, MGRAD_ERR_INVALID,
         "no term and no function"},
        {{MGRAD_OUTPUT_LOSS, w.val, 1, row_of_class1, 1, absent_class, 1}, 0, 0, 0,
         MGRAD_ERR_INVALID, "selects no row"},
    };
    /* the last case needs a row whose label is not 0 */
    int32_t labels[NVAL];
    ck_assert_int_eq(mgrad_dataset_get_labels(w.val, labels, NVAL), MGRAD_OK);
    int64_t r = 0;
    while (labels[r] == 0) r++;
    int64_t not_zero[1] = {r};
    cases[11].term.rows = not_zero;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mgrad_output out = MGRAD_OUTPUT_INIT;
        out.terms = cases[i].no_terms ? NULL : &cases[i].term;
        out.num_terms = cases[i].no_terms ? 0 : 1;
        out.last_k = cases[i].last_k;
        mgrad_status s = mgrad_run_set_output(w.run, &out);
        ck_assert_msg(s == cases[i].want, "case %zu: %d (%s)", i, (int)s,
                      mgrad_context_last_error(w.ctx));
        tf_assert_error_has(w.ctx, cases[i].text);
    }
    mgrad_output bad_version = MGRAD_OUTPUT_INIT;
    bad_version.version = 99;
    ck_assert_int_eq(mgrad_run_set_output(w.run, &bad_version), MGRAD_ERR_VERSION);
    ck_assert_int_eq(mgrad_run_set_output(NULL, &bad_version), MGRAD_ERR_NULL);
    /* nothing changed: the trajectory and the output are the old ones */
    ck_assert_int_eq(mgrad_run_reverse(w.run), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_get_grad(m, MGRAD_DTYPE_F64, g1, T), MGRAD_OK);
    ck_assert(memcmp(g0, g1, sizeof g0) == 0);
    ck_assert(train_phi(&w) == phi0);
    /* a caller's function that fails: MGRAD_ERR_CALLBACK, then train again */
    mgrad_output out = MGRAD_OUTPUT_INIT;
    out.fn = failing_output;
    ck_assert_int_eq(mgrad_run_set_output(w.run, &out), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_reverse(w.run), MGRAD_ERR_ORDER); /* the output changed */
    tf_assert_error_has(w.ctx, "mgrad_run_set_output");
    ck_assert_int_eq(mgrad_run_train(w.run, NULL), MGRAD_ERR_CALLBACK);
    tf_assert_error_has(w.ctx, "returned 3");
    mgrad_dataset_destroy(foreign);
    mgrad_context_destroy(other);
    teardown(&w);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("output");
    TCase *tc = tcase_create("output");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_fd_outputs, 0, NOUTPUTS);
    tcase_add_test(tc, test_negated_is_exact);
    tcase_add_test(tc, test_last_k_checkpointing);
    tcase_add_test(tc, test_builtin_matches_caller_fn);
    tcase_add_test(tc, test_plain_run);
    tcase_add_test(tc, test_set_output_errors);
    suite_add_tcase(s, tc);
    return s;
}
