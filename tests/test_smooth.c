/*
 * test_smooth.c - metasmoothness and the Hessian diagnostics (metagrad/smooth.h).
 *
 *   - Ŝ is 1 for a training map affine in z (a linear model, squared error,
 *     SGD: θ_T is affine in θ0 and in the targets), and the curvature form
 *     equals the exact second derivative of φ along v, computed by hand;
 *   - Ŝ and the curvature match the formula evaluated on θ's from three
 *     trainings done by the test itself; the call restores z and leaves the
 *     run trained at z; the call is deterministic;
 *   - H u is linear and symmetric, and matches central differences of the
 *     exact training-loss gradient (a twin run with lr 0 and validation =
 *     training set, whose metagradient for θ0 is ∇L(θ0)), and second
 *     differences of the training loss itself;
 *   - the dense spectrum (dsyev) agrees with Lanczos extremes;
 *   - misuse statuses.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "metagrad.h"
#include "testutil.h"

enum { NTRAIN = 12, NVAL = 8, MAXF = 6, MAXC = 3 };

typedef struct fixture {
    mgrad_context *ctx;
    mgrad_model *model;
    mgrad_dataset *train, *val;
    mgrad_run *run;
    int64_t P;
} fixture;

typedef struct spec {
    int64_t F, C, hidden;        /* hidden 0: one dense layer (linear model) */
    mgrad_loss loss;
    double lr, momentum;
    int64_t steps, batch;
    int weighted;                /* non-uniform training weights */
    mgrad_dtype dtype;
} spec;

static void make_data(mgrad_context *ctx, const spec *sp, int n, uint64_t seed,
                      int weighted, mgrad_dataset **out)
{
    double x[NTRAIN * MAXF], y[NTRAIN * MAXC], w[NTRAIN];
    int32_t labels[NTRAIN];
    uint64_t s = seed;
    tu_fill(x, (size_t)n * (size_t)sp->F, &s, 1.5);
    tu_fill(y, (size_t)n * (size_t)sp->C, &s, 1.0);
    for (int i = 0; i < n; i++) labels[i] = (int32_t)((tu_rand(&s) + 1) * 7) % (int32_t)sp->C;
    for (int i = 0; i < n; i++) w[i] = 0.5 + 0.5 * (tu_rand(&s) + 1);
    int64_t shape[1] = {sp->F};
    ck_assert_int_eq(mgrad_dataset_create(out, ctx, n, 1, shape, MGRAD_DTYPE_F64, x), MGRAD_OK);
    if (sp->loss == MGRAD_LOSS_CROSS_ENTROPY)
        ck_assert_int_eq(mgrad_dataset_set_labels(*out, labels, n, (int32_t)sp->C), MGRAD_OK);
    else
        ck_assert_int_eq(mgrad_dataset_set_targets(*out, MGRAD_DTYPE_F64, y, n, sp->C),
                         MGRAD_OK);
    if (weighted)
        ck_assert_int_eq(mgrad_dataset_set_weights(*out, MGRAD_DTYPE_F64, w, n), MGRAD_OK);
}

static void run_options(const fixture *fx, const spec *sp, const mgrad_dataset *val,
                        mgrad_run_options *o)
{
    (void)fx;
    mgrad_run_options d = MGRAD_RUN_OPTIONS_INIT;
    *o = d;
    o->steps = sp->steps;
    o->batch_size = sp->batch;
    o->shuffle_seed = 3;
    o->loss = sp->loss;
    o->lr = sp->lr;
    o->momentum = sp->momentum;
    o->validation = val;
}

static void setup(fixture *fx, const spec *sp)
{
    memset(fx, 0, sizeof *fx);
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = sp->dtype;
    co.seed = 9;
    ck_assert_int_eq(mgrad_context_create(&fx->ctx, &co), MGRAD_OK);
    int64_t shape[1] = {sp->F};
    ck_assert_int_eq(mgrad_model_create(&fx->model, fx->ctx, 1, shape), MGRAD_OK);
    if (sp->hidden > 0) {
        ck_assert_int_eq(mgrad_model_add_dense(fx->model, sp->hidden, MGRAD_INIT_DEFAULT),
                         MGRAD_OK);
        ck_assert_int_eq(mgrad_model_add_activation(fx->model, MGRAD_ACTIVATION_TANH),
                         MGRAD_OK);
    }
    ck_assert_int_eq(mgrad_model_add_dense(fx->model, sp->C, MGRAD_INIT_DEFAULT), MGRAD_OK);
    make_data(fx->ctx, sp, NTRAIN, 11, sp->weighted, &fx->train);
    make_data(fx->ctx, sp, NVAL, 23, 0, &fx->val);
    mgrad_run_options o;
    run_options(fx, sp, fx->val, &o);
    ck_assert_int_eq(mgrad_run_create(&fx->run, fx->model, fx->train, &o), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_num_params(fx->run, &fx->P), MGRAD_OK);
}

static void teardown(fixture *fx)
{
    tf_destroy(fx->ctx, fx->model, fx->run, fx->train, fx->val, NULL);
}

static mgrad_meta *add_meta(fixture *fx, mgrad_meta_kind kind)
{
    return tf_add_meta(fx->ctx, fx->run, kind, NULL);
}

static double train(fixture *fx) { return tf_train(fx->ctx, fx->run); }

static int64_t meta_size(const mgrad_meta *m)
{
    int64_t n = 0;
    ck_assert_int_eq(mgrad_meta_size(m, &n), MGRAD_OK);
    return n;
}

static double sgn(double x) { return (double)((x > 0) - (x < 0)); }

/* ---- Ŝ ------------------------------------------------------------------- */

/* Linear model, squared error, SGD with momentum. */
static const spec LINEAR = {4, 2, 0, MGRAD_LOSS_SQUARED_ERROR, 0.1, 0.5, 10, 4, 1,
                            MGRAD_DTYPE_F64};

/* For θ_T affine in z, Ŝ = 1; φ is quadratic in θ_T, so the second difference
   is exact: curvature = (1/N_val) Σ_j ‖δW x_j + δb‖² / h², with
   δ = θ_T(z + hv) − θ_T(z) = h A v. */
static void check_affine(mgrad_meta_kind kind)
{
    fixture fx;
    setup(&fx, &LINEAR);
    mgrad_meta *m = add_meta(&fx, kind);
    int64_t n = meta_size(m), P = fx.P, F = LINEAR.F, C = LINEAR.C;
    double h = 0.05, S = -2, curv = -1;
    mgrad_status s = mgrad_meta_metasmoothness(m, NULL, 17, h, &S, &curv);
    ck_assert_msg(s == MGRAD_OK, "%s", mgrad_context_last_error(fx.ctx));
    ck_assert_msg(fabs(S - 1) < 1e-12, "Ŝ = %.17g for an affine training map", S);

    /* δ from two trainings along the same direction: draw it by asking for
       Ŝ with an explicit direction instead (the random one is internal). */
    double *v = malloc((size_t)n * sizeof *v), *z = malloc((size_t)n * sizeof *z);
    double *zz = malloc((size_t)n * sizeof *zz);
    double *t0 = malloc((size_t)P * sizeof *t0), *t1 = malloc((size_t)P * sizeof *t1);
    uint64_t st = 5;
    tu_fill(v, (size_t)n, &st, 1.0);
    s = mgrad_meta_metasmoothness(m, v, 0, h, &S, &curv);
    ck_assert_msg(s == MGRAD_OK, "%s", mgrad_context_last_error(fx.ctx));
    ck_assert_msg(fabs(S - 1) < 1e-12, "Ŝ = %.17g for an affine training map", S);
    ck_assert_int_eq(mgrad_meta_get_value(m, MGRAD_DTYPE_F64, z, n), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_get_params(fx.run, MGRAD_DTYPE_F64, t0, P), MGRAD_OK);
    for (int64_t i = 0; i < n; i++) zz[i] = z[i] + h * v[i];
    ck_assert_int_eq(mgrad_meta_set_value(m, MGRAD_DTYPE_F64, zz, n), MGRAD_OK);
    train(&fx);
    ck_assert_int_eq(mgrad_run_get_params(fx.run, MGRAD_DTYPE_F64, t1, P), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_set_value(m, MGRAD_DTYPE_F64, z, n), MGRAD_OK);

    /* the validation set, regenerated exactly as make_data draws it */
    double x[NVAL * MAXF];
    uint64_t ds = 23;
    tu_fill(x, (size_t)NVAL * (size_t)F, &ds, 1.5);
    double q = 0;
    for (int j = 0; j < NVAL; j++)
        for (int64_t c = 0; c < C; c++) {
            double o = t1[F * C + c] - t0[F * C + c];      /* δb */
            for (int64_t f = 0; f < F; f++)
                o += (t1[c * F + f] - t0[c * F + f]) * x[j * F + f];
            q += o * o;
        }
    double expect = q / NVAL / (h * h);
    ck_assert_msg(tu_rel_err(curv, expect, 1e-12) < 1e-6,
                  "curvature %.12g, by hand %.12g", curv, expect);
    free(v);
    free(z);
    free(zz);
    free(t0);
    free(t1);
    teardown(&fx);
}

START_TEST(affine_initial_params) { check_affine(MGRAD_META_INITIAL_PARAMS); }
END_TEST

START_TEST(affine_targets) { check_affine(MGRAD_META_SOFT_LABELS); }
END_TEST

/* A nonlinear case against the formula on three trainings done here. */
static const spec MLP = {4, 3, 5, MGRAD_LOSS_CROSS_ENTROPY, 0.5, 0.0, 12, 4, 0,
                         MGRAD_DTYPE_F64};

START_TEST(hand_computation)
{
    fixture fx;
    setup(&fx, &MLP);
    mgrad_meta *m = add_meta(&fx, MGRAD_META_LR_SCHEDULE);
    int64_t n = meta_size(m), P = fx.P;
    double *z = malloc((size_t)n * sizeof *z), *v = malloc((size_t)n * sizeof *v);
    double *zz = malloc((size_t)n * sizeof *zz), *th[3], phi[3];
    for (int k = 0; k < 3; k++) th[k] = malloc((size_t)P * sizeof *th[k]);
    ck_assert_int_eq(mgrad_meta_get_value(m, MGRAD_DTYPE_F64, z, n), MGRAD_OK);
    uint64_t st = 77;
    tu_fill(v, (size_t)n, &st, 1.0);
    double h = 0.2;
    for (int k = 0; k < 3; k++) {
        for (int64_t i = 0; i < n; i++) zz[i] = z[i] + k * h * v[i];
        ck_assert_int_eq(mgrad_meta_set_value(m, MGRAD_DTYPE_F64, zz, n), MGRAD_OK);
        phi[k] = train(&fx);
        ck_assert_int_eq(mgrad_run_get_params(fx.run, MGRAD_DTYPE_F64, th[k], P), MGRAD_OK);
    }
    ck_assert_int_eq(mgrad_meta_set_value(m, MGRAD_DTYPE_F64, z, n), MGRAD_OK);
    double num = 0, den = 0;
    for (int64_t i = 0; i < P; i++) {
        double d = fabs(th[2][i] - th[0][i]);
        num += d * sgn(th[1][i] - th[0][i]) * sgn(th[2][i] - th[1][i]);
        den += d;
    }
    double S_hand = num / den, curv_hand = fabs(phi[2] - 2 * phi[1] + phi[0]) / (h * h);

    double S = 0, curv = 0;
    mgrad_status s = mgrad_meta_metasmoothness(m, v, 0, h, &S, &curv);
    ck_assert_msg(s == MGRAD_OK, "%s", mgrad_context_last_error(fx.ctx));
    ck_assert_msg(fabs(S - S_hand) < 1e-14, "Ŝ %.17g, by hand %.17g", S, S_hand);
    ck_assert_msg(tu_rel_err(curv, curv_hand, 1e-300) < 1e-12, "curvature %.17g, by hand %.17g",
                  curv, curv_hand);
    ck_assert(S >= -1 && S < 1);   /* a nonlinear map: below 1 at this h */

    /* the value is z again and the run is trained at z */
    ck_assert_int_eq(mgrad_meta_get_value(m, MGRAD_DTYPE_F64, zz, n), MGRAD_OK);
    ck_assert(memcmp(zz, z, (size_t)n * sizeof *z) == 0);
    double *t = malloc((size_t)P * sizeof *t);
    ck_assert_int_eq(mgrad_run_get_params(fx.run, MGRAD_DTYPE_F64, t, P), MGRAD_OK);
    ck_assert(memcmp(t, th[0], (size_t)P * sizeof *t) == 0);
    ck_assert_int_eq(mgrad_run_reverse(fx.run), MGRAD_OK);
    free(t);
    free(z);
    free(v);
    free(zz);
    for (int k = 0; k < 3; k++) free(th[k]);
    teardown(&fx);
}
END_TEST

START_TEST(deterministic)
{
    fixture fx;
    setup(&fx, &MLP);
    mgrad_meta *m = add_meta(&fx, MGRAD_META_INITIAL_PARAMS);
    double S1, c1, S2, c2, S3, c3;
    ck_assert_int_eq(mgrad_meta_metasmoothness(m, NULL, 42, 0.3, &S1, &c1), MGRAD_OK);
    ck_assert_int_eq(mgrad_meta_metasmoothness(m, NULL, 42, 0.3, &S2, &c2), MGRAD_OK);
    ck_assert(memcmp(&S1, &S2, sizeof S1) == 0 && memcmp(&c1, &c2, sizeof c1) == 0);
    ck_assert(S1 >= -1 && S1 <= 1);
    /* another seed gives another direction */
    ck_assert_int_eq(mgrad_meta_metasmoothness(m, NULL, 43, 0.3, &S3, &c3), MGRAD_OK);
    ck_assert(S3 != S1 || c3 != c1);
    /* both outputs may be NULL */
    ck_assert_int_eq(mgrad_meta_metasmoothness(m, NULL, 42, 0.3, NULL, NULL), MGRAD_OK);
    teardown(&fx);
}
END_TEST

/* ---- H u ----------------------------------------------------------------- */

/* P = 3·3 + 3 + 3·2 + 2 = 20 parameters, CE, weighted training set. */
static const spec TINY = {3, 2, 3, MGRAD_LOSS_CROSS_ENTROPY, 0.5, 0.0, 8, 4, 1,
                          MGRAD_DTYPE_F64};

/* A twin that computes the training loss L(θ) and its exact gradient:
   T = 1 step with lr 0 (θ_T = θ0), validation = the training set, and θ0 a
   metaparameter, so φ = L(θ0) and dφ/dθ0 = ∇L(θ0). */
typedef struct twin {
    mgrad_run *run;
    mgrad_meta *theta0;
} twin;

static void twin_create(twin *tw, fixture *fx, const spec *sp)
{
    mgrad_run_options o;
    run_options(fx, sp, fx->train, &o);
    o.steps = 1;
    o.lr = 0;
    o.momentum = 0;
    ck_assert_int_eq(mgrad_run_create(&tw->run, fx->model, fx->train, &o), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_add_meta(&tw->theta0, tw->run, MGRAD_META_INITIAL_PARAMS,
                                        NULL), MGRAD_OK);
}

static double twin_loss(twin *tw, const double *theta, double *grad, int64_t P)
{
    double phi = 0;
    ck_assert_int_eq(mgrad_meta_set_value(tw->theta0, MGRAD_DTYPE_F64, theta, P), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_train(tw->run, &phi), MGRAD_OK);
    if (grad != NULL) {
        ck_assert_int_eq(mgrad_run_reverse(tw->run), MGRAD_OK);
        ck_assert_int_eq(mgrad_meta_get_grad(tw->theta0, MGRAD_DTYPE_F64, grad, P), MGRAD_OK);
    }
    return phi;
}

START_TEST(hvp_linear_symmetric)
{
    fixture fx;
    setup(&fx, &MLP);
    train(&fx);
    int64_t P = fx.P;
    double *u1 = malloc((size_t)P * sizeof *u1), *u2 = malloc((size_t)P * sizeof *u2);
    double *u3 = malloc((size_t)P * sizeof *u3), *h1 = malloc((size_t)P * sizeof *h1);
    double *h2 = malloc((size_t)P * sizeof *h2), *h3 = malloc((size_t)P * sizeof *h3);
    uint64_t st = 1;
    tu_fill(u1, (size_t)P, &st, 1.0);
    tu_fill(u2, (size_t)P, &st, 1.0);
    for (int64_t i = 0; i < P; i++) u3[i] = 2.5 * u1[i] - 0.75 * u2[i];
    ck_assert_int_eq(mgrad_run_hvp(fx.run, MGRAD_DTYPE_F64, u1, h1, P), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_hvp(fx.run, MGRAD_DTYPE_F64, u2, h2, P), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_hvp(fx.run, MGRAD_DTYPE_F64, u3, h3, P), MGRAD_OK);
    double norm = 0, err = 0, a = 0, b = 0;
    for (int64_t i = 0; i < P; i++) {
        double lin = 2.5 * h1[i] - 0.75 * h2[i];
        err = fmax(err, fabs(h3[i] - lin));
        norm = fmax(norm, fabs(lin));
        a += u1[i] * h2[i];
        b += u2[i] * h1[i];
    }
    ck_assert_msg(norm > 0 && err <= 1e-12 * norm, "linearity: %g of %g", err, norm);
    ck_assert_msg(tu_rel_err(a, b, 1e-12) < 1e-11, "u1ᵀHu2 %.17g, u2ᵀHu1 %.17g", a, b);
    /* out may be u itself */
    memcpy(h3, u1, (size_t)P * sizeof *h3);
    ck_assert_int_eq(mgrad_run_hvp(fx.run, MGRAD_DTYPE_F64, h3, h3, P), MGRAD_OK);
    ck_assert(memcmp(h3, h1, (size_t)P * sizeof *h3) == 0);
    free(u1);
    free(u2);
    free(u3);
    free(h1);
    free(h2);
    free(h3);
    teardown(&fx);
}
END_TEST

START_TEST(hvp_finite_differences)
{
    fixture fx;
    setup(&fx, &TINY);
    ck_assert_int_eq(fx.P, 20);
    train(&fx);
    enum { P = 20 };
    double theta[P], e[P], col[P], gp[P], gm[P], tp[P], H[P][P];
    ck_assert_int_eq(mgrad_run_get_params(fx.run, MGRAD_DTYPE_F64, theta, P), MGRAD_OK);
    twin tw;
    twin_create(&tw, &fx, &TINY);

    /* the twin's loss at θ_T is the training loss the run evaluates */
    double L_run = 0;
    ck_assert_int_eq(mgrad_run_evaluate(fx.run, fx.train, &L_run, NULL), MGRAD_OK);
    ck_assert(tu_rel_err(twin_loss(&tw, theta, NULL, P), L_run, 1e-300) < 1e-14);

    /* column j: H e_j against (∇L(θ + εe_j) − ∇L(θ − εe_j)) / 2ε */
    double eps = 1e-5, worst = 0, hmax = 0;
    for (int j = 0; j < P; j++) {
        memset(e, 0, sizeof e);
        e[j] = 1;
        ck_assert_int_eq(mgrad_run_hvp(fx.run, MGRAD_DTYPE_F64, e, col, P), MGRAD_OK);
        memcpy(tp, theta, sizeof tp);
        tp[j] += eps;
        twin_loss(&tw, tp, gp, P);
        tp[j] = theta[j] - eps;
        twin_loss(&tw, tp, gm, P);
        for (int i = 0; i < P; i++) {
            H[i][j] = col[i];
            hmax = fmax(hmax, fabs(col[i]));
            worst = fmax(worst, fabs(col[i] - (gp[i] - gm[i]) / (2 * eps)));
        }
    }
    ck_assert_msg(hmax > 1e-3 && worst < 1e-7 * hmax, "H u vs FD of gradients: %g of %g",
                  worst, hmax);

    /* a few entries against second differences of the loss itself */
    static const int pairs[][2] = {{0, 0}, {3, 3}, {19, 19}, {0, 5}, {7, 14}, {12, 18}};
    double d = 1e-4, L0 = twin_loss(&tw, theta, NULL, P);
    for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
        int i = pairs[k][0], j = pairs[k][1];
        double fd;
        if (i == j) {
            memcpy(tp, theta, sizeof tp);
            tp[i] += d;
            double Lp = twin_loss(&tw, tp, NULL, P);
            tp[i] = theta[i] - d;
            double Lm = twin_loss(&tw, tp, NULL, P);
            fd = (Lp - 2 * L0 + Lm) / (d * d);
        } else {
            double L4[4];
            int sgn_i[4] = {1, 1, -1, -1}, sgn_j[4] = {1, -1, 1, -1};
            for (int q = 0; q < 4; q++) {
                memcpy(tp, theta, sizeof tp);
                tp[i] += sgn_i[q] * d;
                tp[j] += sgn_j[q] * d;
                L4[q] = twin_loss(&tw, tp, NULL, P);
            }
            fd = (L4[0] - L4[1] - L4[2] + L4[3]) / (4 * d * d);
        }
        ck_assert_msg(fabs(H[i][j] - fd) < 1e-5 * fmax(hmax, 1),
                      "H[%d][%d] = %.10g, second difference %.10g", i, j, H[i][j], fd);
    }
    mgrad_run_destroy(tw.run);
    teardown(&fx);
}
END_TEST

START_TEST(spectrum_vs_lanczos)
{
    fixture fx;
    setup(&fx, &MLP);
    train(&fx);
    int64_t P = fx.P;
    double *ev = malloc((size_t)P * sizeof *ev), ext[2];
    mgrad_status s = mgrad_run_hessian_spectrum(fx.run, ev, P);
    ck_assert_msg(s == MGRAD_OK, "%s", mgrad_context_last_error(fx.ctx));
    for (int64_t i = 1; i < P; i++) ck_assert(ev[i - 1] <= ev[i]);
    double scale = fmax(fabs(ev[0]), fabs(ev[P - 1]));
    ck_assert(scale > 0);
    /* the trace is Σ_j e_jᵀ H e_j */
    double *e = calloc((size_t)P, sizeof *e), *col = malloc((size_t)P * sizeof *col);
    double tr = 0, sum = 0;
    for (int64_t j = 0; j < P; j++) {
        e[j] = 1;
        ck_assert_int_eq(mgrad_run_hvp(fx.run, MGRAD_DTYPE_F64, e, col, P), MGRAD_OK);
        e[j] = 0;
        tr += col[j];
        sum += ev[j];
    }
    ck_assert_msg(fabs(tr - sum) < 1e-10 * scale * (double)P, "trace %g, Σλ %g", tr, sum);
    /* Lanczos with full reorthogonalisation, P steps: the extremes */
    s = mgrad_run_hessian_lanczos(fx.run, P, 3, ext);
    ck_assert_msg(s == MGRAD_OK, "%s", mgrad_context_last_error(fx.ctx));
    ck_assert_msg(fabs(ext[0] - ev[0]) <= 1e-8 * scale, "λmin %.15g, Lanczos %.15g", ev[0],
                  ext[0]);
    ck_assert_msg(fabs(ext[1] - ev[P - 1]) <= 1e-8 * scale, "λmax %.15g, Lanczos %.15g",
                  ev[P - 1], ext[1]);
    /* more iterations than P are clamped; few iterations stay inside */
    ck_assert_int_eq(mgrad_run_hessian_lanczos(fx.run, 10 * P, 3, ext), MGRAD_OK);
    ck_assert(fabs(ext[1] - ev[P - 1]) <= 1e-8 * scale);
    ck_assert_int_eq(mgrad_run_hessian_lanczos(fx.run, 5, 4, ext), MGRAD_OK);
    ck_assert(ext[0] >= ev[0] - 1e-10 * scale && ext[1] <= ev[P - 1] + 1e-10 * scale);
    free(ev);
    free(e);
    free(col);
    teardown(&fx);
}
END_TEST

/* f32 runs serve the same products in single precision. */
START_TEST(hvp_f32)
{
    fixture f64, f32;
    spec sp = MLP;
    setup(&f64, &sp);
    sp.dtype = MGRAD_DTYPE_F32;
    setup(&f32, &sp);
    train(&f64);
    train(&f32);
    int64_t P = f64.P;
    double *u = malloc((size_t)P * sizeof *u), *a = malloc((size_t)P * sizeof *a);
    float *uf = malloc((size_t)P * sizeof *uf), *bf = malloc((size_t)P * sizeof *bf);
    uint64_t st = 8;
    tu_fill(u, (size_t)P, &st, 1.0);
    for (int64_t i = 0; i < P; i++) uf[i] = (float)u[i];
    ck_assert_int_eq(mgrad_run_hvp(f64.run, MGRAD_DTYPE_F64, u, a, P), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_hvp(f32.run, MGRAD_DTYPE_F32, uf, bf, P), MGRAD_OK);
    double err = 0, norm = 0;
    for (int64_t i = 0; i < P; i++) {
        err = fmax(err, fabs(a[i] - (double)bf[i]));
        norm = fmax(norm, fabs(a[i]));
    }
    ck_assert_msg(err < 1e-3 * norm, "f32 vs f64 H u: %g of %g", err, norm);
    free(u);
    free(a);
    free(uf);
    free(bf);
    teardown(&f64);
    teardown(&f32);
}
END_TEST

/* ---- misuse --------------------------------------------------------------- */

START_TEST(misuse)
{
    fixture fx;
    spec sp = MLP;
    sp.momentum = 0.9;
    setup(&fx, &sp);
    int64_t P = fx.P;
    double *u = calloc((size_t)P, sizeof *u), *o = calloc((size_t)P, sizeof *o), ext[2];
    /* before train */
    ck_assert_int_eq(mgrad_run_hvp(fx.run, MGRAD_DTYPE_F64, u, o, P), MGRAD_ERR_ORDER);
    ck_assert_int_eq(mgrad_run_hessian_spectrum(fx.run, o, P), MGRAD_ERR_ORDER);
    ck_assert_int_eq(mgrad_run_hessian_lanczos(fx.run, 4, 0, ext), MGRAD_ERR_ORDER);
    train(&fx);
    ck_assert_int_eq(mgrad_run_hvp(NULL, MGRAD_DTYPE_F64, u, o, P), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_run_hvp(fx.run, MGRAD_DTYPE_F64, NULL, o, P), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_run_hvp(fx.run, MGRAD_DTYPE_F64, u, NULL, P), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_run_hvp(fx.run, (mgrad_dtype)7, u, o, P), MGRAD_ERR_DTYPE);
    ck_assert_int_eq(mgrad_run_hvp(fx.run, MGRAD_DTYPE_F64, u, o, P - 1), MGRAD_ERR_SIZE);
    u[2] = NAN;
    ck_assert_int_eq(mgrad_run_hvp(fx.run, MGRAD_DTYPE_F64, u, o, P), MGRAD_ERR_NONFINITE);
    u[2] = 0;
    ck_assert_int_eq(mgrad_run_hessian_spectrum(NULL, o, P), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_run_hessian_spectrum(fx.run, NULL, P), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_run_hessian_spectrum(fx.run, o, P + 1), MGRAD_ERR_SIZE);
    ck_assert_int_eq(mgrad_run_hessian_lanczos(fx.run, 0, 0, ext), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_run_hessian_lanczos(fx.run, 4, 0, NULL), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_run_hessian_lanczos(NULL, 4, 0, ext), MGRAD_ERR_NULL);

    /* metasmoothness: h, direction, range */
    mgrad_meta *mom = add_meta(&fx, MGRAD_META_MOMENTUM);
    double one = 1, zero = 0, nan1 = NAN, S = 5, c = 5, z = 0;
    ck_assert_int_eq(mgrad_meta_metasmoothness(NULL, NULL, 0, 0.1, &S, &c), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_meta_metasmoothness(mom, NULL, 0, 0, &S, &c), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_meta_metasmoothness(mom, NULL, 0, -1, &S, &c), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_meta_metasmoothness(mom, NULL, 0, INFINITY, &S, &c),
                     MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_meta_metasmoothness(mom, &zero, 0, 0.01, &S, &c), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_meta_metasmoothness(mom, &nan1, 0, 0.01, &S, &c), MGRAD_ERR_INVALID);
    /* μ = 0.9: z + 2hv = 1.1 is out of range; nothing trains, z is kept */
    ck_assert_int_eq(mgrad_meta_metasmoothness(mom, &one, 0, 0.1, &S, &c), MGRAD_ERR_INVALID);
    ck_assert(strstr(mgrad_context_last_error(fx.ctx), "z + 2hv") != NULL);
    ck_assert(S == 5 && c == 5);
    ck_assert_int_eq(mgrad_meta_get_value(mom, MGRAD_DTYPE_F64, &z, 1), MGRAD_OK);
    ck_assert(z == 0.9);
    ck_assert_int_eq(mgrad_run_hvp(fx.run, MGRAD_DTYPE_F64, u, o, P), MGRAD_ERR_ORDER);
    /* inward it works */
    double down = -1;
    ck_assert_int_eq(mgrad_meta_metasmoothness(mom, &down, 0, 0.1, &S, &c), MGRAD_OK);
    ck_assert(S >= -1 && S <= 1 && c >= 0);
    ck_assert_int_eq(mgrad_run_hvp(fx.run, MGRAD_DTYPE_F64, u, o, P), MGRAD_OK);
    free(u);
    free(o);
    teardown(&fx);
}
END_TEST

START_TEST(dense_limit)
{
    mgrad_context *ctx = NULL;
    ck_assert_int_eq(mgrad_context_create(&ctx, NULL), MGRAD_OK);
    mgrad_model *model = NULL;
    int64_t shape[1] = {64};
    ck_assert_int_eq(mgrad_model_create(&model, ctx, 1, shape), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(model, 64, MGRAD_INIT_DEFAULT), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(model, 2, MGRAD_INIT_DEFAULT), MGRAD_OK);
    double x[4 * 64] = {0};
    int32_t y[4] = {0, 1, 0, 1};
    mgrad_dataset *ds = NULL;
    ck_assert_int_eq(mgrad_dataset_create(&ds, ctx, 4, 1, shape, MGRAD_DTYPE_F64, x), MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_set_labels(ds, y, 4, 2), MGRAD_OK);
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = 1;
    o.batch_size = 2;
    o.validation = ds;
    mgrad_run *run = NULL;
    ck_assert_int_eq(mgrad_run_create(&run, model, ds, &o), MGRAD_OK);
    int64_t P = 0;
    ck_assert_int_eq(mgrad_run_num_params(run, &P), MGRAD_OK);
    ck_assert(P > MGRAD_HESSIAN_DENSE_MAX);
    double *ev = malloc((size_t)P * sizeof *ev), ext[2];
    ck_assert_int_eq(mgrad_run_hessian_spectrum(run, ev, P), MGRAD_ERR_UNSUPPORTED);
    ck_assert_int_eq(mgrad_run_train(run, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_hessian_lanczos(run, 8, 1, ext), MGRAD_OK);
    ck_assert(ext[0] <= ext[1]);
    free(ev);
    mgrad_run_destroy(run);
    mgrad_dataset_destroy(ds);
    mgrad_model_destroy(model);
    mgrad_context_destroy(ctx);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("smooth");
    TCase *tc = tcase_create("metasmoothness");
    tcase_add_test(tc, affine_initial_params);
    tcase_add_test(tc, affine_targets);
    tcase_add_test(tc, hand_computation);
    tcase_add_test(tc, deterministic);
    suite_add_tcase(s, tc);
    tc = tcase_create("hessian");
    tcase_add_test(tc, hvp_linear_symmetric);
    tcase_add_test(tc, hvp_finite_differences);
    tcase_add_test(tc, spectrum_vs_lanczos);
    tcase_add_test(tc, hvp_f32);
    suite_add_tcase(s, tc);
    tc = tcase_create("misuse");
    tcase_add_test(tc, misuse);
    tcase_add_test(tc, dense_limit);
    suite_add_tcase(s, tc);
    return s;
}
