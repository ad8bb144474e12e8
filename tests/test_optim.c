/*
 * test_optim.c - optimizers: step against torch.optim's documented update
 * rules, reverse (reverse_pre + H u + reverse_post) against finite
 * differences in f64, f32 against f64.
 *
 * The gradient is that of a known test loss
 *     L(θ) = Σ a_i θ_i²/2 + Σ c_i θ_i⁴/4,   ∇L = a θ + c θ³,   H u = (a + 3cθ²) u
 * so that one step is an explicit function s_{t+1} = h(s_t; η, λ, μ/β1, β2)
 * and the reverse can be checked exactly on it.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "optim/optim.h"
#include "testutil.h"

/* The f32 variants, declared by hand: this file is compiled with
   MGRAD_REAL_BITS=64, so optim.h declares only the _f64 names. */
void mgr_optim_init_state_f32(mgrad_optimizer kind, size_t num_params,
                              const float *theta0, float *state);
void mgr_optim_step_f32(struct mgr_pool *pool, const mgr_hyper *h, int64_t t, size_t num_params,
                        float *state, const float *grad);
void mgr_optim_reverse_pre_f32(struct mgr_pool *pool, const mgr_hyper *h, int64_t t, size_t num_params,
                               const float *state, const float *grad,
                               const float *next_m, float *state_bar, float *u,
                               mgr_hyper_grad *hg);
void mgr_optim_reverse_post_f32(struct mgr_pool *pool, const mgr_hyper *h, size_t num_params,
                                const float *theta, const float *u, const float *hu,
                                float *theta_bar, mgr_hyper_grad *hg);

Suite *make_suite(void);

#define MAXP 16
#define MAXS (3 * MAXP)

typedef struct opt_case {
    const char *name;
    mgr_hyper h;
} opt_case;

/* kind, lr, weight_decay, momentum/β1, β2, eps, eps_root, nesterov, skip_adjoints */
static const opt_case CASES[] = {
    { "sgd", { MGRAD_OPTIMIZER_SGD, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0u } },
    { "sgd-momentum", { MGRAD_OPTIMIZER_SGD, 0.1, 0.0, 0.9, 0.0, 0.0, 0.0, 0, 0u } },
    { "sgd-nesterov", { MGRAD_OPTIMIZER_SGD, 0.05, 0.01, 0.8, 0.0, 0.0, 0.0, 1, 0u } },
    { "sgd-wd", { MGRAD_OPTIMIZER_SGD, 0.1, 0.05, 0.5, 0.0, 0.0, 0.0, 0, 0u } },
    { "adam-eps-root", { MGRAD_OPTIMIZER_ADAM, 0.05, 0.02, 0.9, 0.999, 1e-8, 1e-3, 0, 0u } },
    { "adam", { MGRAD_OPTIMIZER_ADAM, 0.05, 0.0, 0.9, 0.999, 1e-8, 0.0, 0, 0u } },
    { "adam-wd", { MGRAD_OPTIMIZER_ADAM, 0.05, 0.1, 0.8, 0.99, 1e-3, 0.0, 0, 0u } },
    { "adamw", { MGRAD_OPTIMIZER_ADAMW, 0.05, 0.1, 0.9, 0.999, 1e-8, 0.0, 0, 0u } },
    { "adamw-eps-root", { MGRAD_OPTIMIZER_ADAMW, 0.05, 0.3, 0.85, 0.98, 1e-6, 1e-4, 0, 0u } },
};
#define NCASES ((int)(sizeof(CASES) / sizeof(CASES[0])))

static int is_adam(const mgr_hyper *h) { return h->kind != MGRAD_OPTIMIZER_SGD; }

/* ---- the test loss ------------------------------------------------------ */

typedef struct quartic {
    size_t n;
    double a[MAXP], c[MAXP];
} quartic;

static void quartic_init(quartic *q, size_t n, uint64_t *rng)
{
    q->n = n;
    for (size_t i = 0; i < n; i++) {
        q->a[i] = 1.25 + 0.75 * tu_rand(rng); /* [0.5, 2] */
        q->c[i] = 0.5 + 0.5 * tu_rand(rng);   /* [0, 1] */
    }
}

static void quartic_grad(const quartic *q, const double *th, double *g)
{
    for (size_t i = 0; i < q->n; i++) g[i] = q->a[i] * th[i] + q->c[i] * th[i] * th[i] * th[i];
}

static void quartic_hvp(const quartic *q, const double *th, const double *u, double *hu)
{
    for (size_t i = 0; i < q->n; i++) hu[i] = (q->a[i] + 3.0 * q->c[i] * th[i] * th[i]) * u[i];
}

/* A state with all buffers in a plausible range; v > 0 so that Adam's step is
   smooth in every component. */
static void random_state(const mgr_hyper *h, size_t n, uint64_t *rng, double *s)
{
    tu_fill(s, n, rng, 1.0);
    tu_fill(s + n, n, rng, 0.3);
    if (is_adam(h))
        for (size_t i = 0; i < n; i++) s[2 * n + i] = 0.155 + 0.145 * tu_rand(rng);
}

/* ---- one step as a function, and its reverse ----------------------------- */

/* ⟨ā, h(s)⟩ for one step t with gradient ∇L(θ). */
static double step_dot(const quartic *q, const mgr_hyper *h, int64_t t,
                       const double *s, const double *abar)
{
    const size_t n = q->n, len = mgr_optim_state_len(h->kind, n);
    double s1[MAXS], g[MAXP], acc = 0.0;
    memcpy(s1, s, len * sizeof(double));
    quartic_grad(q, s, g);
    mgr_optim_step_f64(NULL, h, t, n, s1, g);
    for (size_t i = 0; i < len; i++) acc += abar[i] * s1[i];
    return acc;
}

/* Full reverse of one step: sbar = ∂⟨ā, h(s)⟩/∂s, hg = ∂⟨ā, h(s)⟩/∂hyper. */
static void step_reverse(const quartic *q, const mgr_hyper *h, int64_t t,
                         const double *s, const double *abar, double *sbar,
                         mgr_hyper_grad *hg)
{
    const size_t n = q->n, len = mgr_optim_state_len(h->kind, n);
    double g[MAXP], u[MAXP], hu[MAXP];
    memcpy(sbar, abar, len * sizeof(double));
    quartic_grad(q, s, g);
    mgr_optim_reverse_pre_f64(NULL, h, t, n, s, g, NULL, sbar, u, hg);
    quartic_hvp(q, s, u, hu);
    mgr_optim_reverse_post_f64(NULL, h, n, s, u, hu, sbar, hg);
}

/* Fourth-order central difference: truncation O(δ⁴), so δ can be large enough
   (1e-4) that rounding stays near 1e-12 of ⟨ā, h(s)⟩. */
#define FD_DELTA 1e-4

static double fd_state(const quartic *q, const mgr_hyper *h, int64_t t,
                       const double *s, const double *abar, size_t j)
{
    double sp[MAXS];
    const size_t len = mgr_optim_state_len(h->kind, q->n);
    double f[4];
    static const double off[4] = { -2.0, -1.0, 1.0, 2.0 };
    double delta = FD_DELTA;
    /* sqrt(v) varies on the scale v: shrink the step for small v. */
    if (is_adam(h) && j >= 2 * q->n) delta *= fmin(1.0, 10.0 * s[j]);
    for (int k = 0; k < 4; k++) {
        memcpy(sp, s, len * sizeof(double));
        sp[j] += off[k] * delta;
        f[k] = step_dot(q, h, t, sp, abar);
    }
    return (f[0] - 8.0 * f[1] + 8.0 * f[2] - f[3]) / (12.0 * delta);
}

/* which: 0 lr, 1 weight_decay, 2 momentum/β1, 3 β2 */
static double *hyper_field(mgr_hyper *h, int which)
{
    switch (which) {
    case 0: return &h->lr;
    case 1: return &h->weight_decay;
    case 2: return &h->momentum;
    default: return &h->beta2;
    }
}

static double hyper_grad_field(const mgr_hyper_grad *hg, int which)
{
    switch (which) {
    case 0: return hg->lr;
    case 1: return hg->weight_decay;
    case 2: return hg->momentum;
    default: return hg->beta2;
    }
}

static double fd_hyper(const quartic *q, const mgr_hyper *h, int64_t t,
                       const double *s, const double *abar, int which)
{
    double f[4];
    static const double off[4] = { -2.0, -1.0, 1.0, 2.0 };
    double delta = FD_DELTA;
    /* β^k varies on the scale 1 − β (at t = 0, c2 = 1 − β2 = 1e-3): shrink
       the step for β close to 1 so that truncation stays negligible. */
    if (which >= 2) {
        mgr_hyper hv = *h;
        delta *= fmin(1.0, 10.0 * (1.0 - *hyper_field(&hv, which)));
    }
    for (int k = 0; k < 4; k++) {
        mgr_hyper hp = *h;
        *hyper_field(&hp, which) += off[k] * delta;
        f[k] = step_dot(q, &hp, t, s, abar);
    }
    return (f[0] - 8.0 * f[1] + 8.0 * f[2] - f[3]) / (12.0 * delta);
}

/* Largest errors of one reverse check, relative to max(|analytic|, |fd|,
   1e-4 · the largest state adjoint): a component that is tiny next to the
   others is held to an absolute error, not to one below rounding. */
typedef struct fd_errors {
    double state;    /* over every state component */
    double hyper[4]; /* lr, weight_decay, momentum/β1, β2 */
} fd_errors;

static void fd_check(const mgr_hyper *h, int64_t t, uint64_t seed, size_t n,
                     fd_errors *out)
{
    uint64_t rng = seed;
    quartic q;
    double s[MAXS], abar[MAXS], sbar[MAXS];
    mgr_hyper_grad hg = { 0, 0, 0, 0 };
    const size_t len = mgr_optim_state_len(h->kind, n);

    quartic_init(&q, n, &rng);
    random_state(h, n, &rng, s);
    tu_fill(abar, len, &rng, 1.0);
    step_reverse(&q, h, t, s, abar, sbar, &hg);

    double scale = 0.0;
    for (size_t j = 0; j < len; j++) scale = fmax(scale, fabs(sbar[j]));
    const double floor_ = 1e-4 * scale;

    out->state = 0.0;
    for (size_t j = 0; j < len; j++)
        out->state = fmax(out->state, tu_rel_err(sbar[j], fd_state(&q, h, t, s, abar, j), floor_));
    for (int w = 0; w < 4; w++)
        out->hyper[w] = tu_rel_err(hyper_grad_field(&hg, w), fd_hyper(&q, h, t, s, abar, w), floor_);
}

/* ---- tests --------------------------------------------------------------- */

START_TEST(test_state_len)
{
    ck_assert_uint_eq(mgr_optim_state_len(MGRAD_OPTIMIZER_SGD, 7), 14);
    ck_assert_uint_eq(mgr_optim_state_len(MGRAD_OPTIMIZER_ADAM, 7), 21);
    ck_assert_uint_eq(mgr_optim_state_len(MGRAD_OPTIMIZER_ADAMW, 7), 21);
    ck_assert_uint_eq(mgr_optim_state_len((mgrad_optimizer)99, 7), 0);
    ck_assert_uint_eq(mgr_optim_state_len(MGRAD_OPTIMIZER_ADAM, SIZE_MAX / 2), 0);
}
END_TEST

START_TEST(test_init_state)
{
    double th[5] = { 1, -2, 3, -4, 5 }, s[15];
    for (int i = 0; i < 15; i++) s[i] = NAN;
    mgr_optim_init_state_f64(MGRAD_OPTIMIZER_ADAMW, 5, th, s);
    for (int i = 0; i < 5; i++) ck_assert(s[i] == th[i]);
    for (int i = 5; i < 15; i++) ck_assert(s[i] == 0.0);
    for (int i = 0; i < 15; i++) s[i] = NAN;
    mgr_optim_init_state_f64(MGRAD_OPTIMIZER_SGD, 5, th, s);
    for (int i = 5; i < 10; i++) ck_assert(s[i] == 0.0);
    ck_assert(isnan(s[10])); /* nothing written past the SGD state */
}
END_TEST

/* Reverse of one step against finite differences, for every state component
   and every hyperparameter, at several steps (Adam's bias correction depends
   on t) and seeds. */
START_TEST(test_reverse_fd)
{
    const mgr_hyper *h = &CASES[_i].h;
    static const int64_t steps[] = { 0, 1, 4, 29 };
    static const size_t sizes[] = { 1, 7, 13 };
    for (int ti = 0; ti < 4; ti++)
        for (uint64_t seed = 1; seed <= 3; seed++) {
            fd_errors e;
            fd_check(h, steps[ti], 1000 * seed + (uint64_t)_i, sizes[seed - 1], &e);
            ck_assert_msg(e.state <= 1e-7, "%s t=%lld seed=%llu: state rel err %g",
                          CASES[_i].name, (long long)steps[ti], (unsigned long long)seed,
                          e.state);
            static const char *const names[4] = { "lr", "weight_decay", "momentum/beta1",
                                                  "beta2" };
            for (int w = 0; w < 4; w++)
                ck_assert_msg(e.hyper[w] <= 1e-7, "%s t=%lld seed=%llu: %s rel err %g",
                              CASES[_i].name, (long long)steps[ti],
                              (unsigned long long)seed, names[w], e.hyper[w]);
        }
}
END_TEST

/* A reverse problem of size n: loss q, state s, adjoint abar of the next
   state, g = ∇q(θ). */
static void reverse_problem(const mgr_hyper *h, uint64_t seed, size_t n, quartic *q,
                            double *s, double *abar, double *g)
{
    uint64_t rng = seed;
    quartic_init(q, n, &rng);
    random_state(h, n, &rng, s);
    tu_fill(abar, mgr_optim_state_len(h->kind, n), &rng, 1.0);
    quartic_grad(q, s, g);
}

/* Where the reverse does not need g (SGD without Nesterov), reverse_pre given
   m_{t+1} from s_{t+1} instead of g returns what it returns given g: the
   adjoints bit for bit, η̄ included (the recomputed m_{t+1} has the step's
   bits: the two expressions are the same and nothing is contracted into an
   FMA on x86-64's baseline). */
START_TEST(test_reverse_from_next_state)
{
    const mgr_hyper *h = &CASES[_i].h;
    ck_assert_int_eq(mgr_optim_reverse_needs_grad(h), is_adam(h) || h->nesterov);
    if (mgr_optim_reverse_needs_grad(h)) return;
    const size_t n = 11, len = mgr_optim_state_len(h->kind, n);
    quartic q;
    double s[MAXS], s1[MAXS], g[MAXP], abar[MAXS];
    reverse_problem(h, 4242 + (uint64_t)_i, n, &q, s, abar, g);
    memcpy(s1, s, len * sizeof(double));
    mgr_optim_step_f64(NULL, h, 3, n, s1, g);
    double sbar_a[MAXS], sbar_b[MAXS], u_a[MAXP], u_b[MAXP];
    memcpy(sbar_a, abar, len * sizeof(double));
    memcpy(sbar_b, abar, len * sizeof(double));
    mgr_hyper_grad ha = { 0.5, 0, 0, 0 }, hb = { 0.5, 0, 0, 0 };
    mgr_optim_reverse_pre_f64(NULL, h, 3, n, s, g, NULL, sbar_a, u_a, &ha);
    mgr_optim_reverse_pre_f64(NULL, h, 3, n, s, NULL, s1 + n, sbar_b, u_b, &hb);
    ck_assert_msg(memcmp(sbar_a, sbar_b, len * sizeof(double)) == 0, "%s: state adjoint",
                  CASES[_i].name);
    ck_assert_msg(memcmp(u_a, u_b, n * sizeof(double)) == 0, "%s: u", CASES[_i].name);
    ck_assert_msg(ha.lr == hb.lr, "%s: lr adjoint %.17g vs %.17g", CASES[_i].name, ha.lr,
                  hb.lr);
    ck_assert(ha.momentum == hb.momentum && ha.weight_decay == hb.weight_decay &&
              ha.beta2 == hb.beta2);
}
END_TEST

/* Skipping unwanted hyperparameter adjoints changes nothing else: state
   adjoints, u and the wanted adjoints are bit-identical, and a skipped one
   receives nothing. */
START_TEST(test_skip_adjoints)
{
    const mgr_hyper *h = &CASES[_i].h;
    const size_t n = 9, len = mgr_optim_state_len(h->kind, n);
    quartic q;
    double s[MAXS], g[MAXP], abar[MAXS], hu[MAXP];
    reverse_problem(h, 515 + (uint64_t)_i, n, &q, s, abar, g);
    for (unsigned skip = 1; skip < 16; skip++) {
        mgr_hyper hs = *h;
        hs.skip_adjoints = skip;
        double sb[2][MAXS], u[2][MAXP];
        mgr_hyper_grad hg[2] = {{0, 0, 0, 0}, {0, 0, 0, 0}};
        for (int k = 0; k < 2; k++) {
            const mgr_hyper *hk = k == 0 ? h : &hs;
            memcpy(sb[k], abar, len * sizeof(double));
            mgr_optim_reverse_pre_f64(NULL, hk, 2, n, s, g, NULL, sb[k], u[k], &hg[k]);
            quartic_hvp(&q, s, u[k], hu);
            mgr_optim_reverse_post_f64(NULL, hk, n, s, u[k], hu, sb[k], &hg[k]);
        }
        ck_assert(memcmp(sb[0], sb[1], len * sizeof(double)) == 0);
        ck_assert(memcmp(u[0], u[1], n * sizeof(double)) == 0);
        ck_assert(hg[1].lr == ((skip & MGR_SKIP_LR) ? 0.0 : hg[0].lr));
        ck_assert(hg[1].momentum == ((skip & MGR_SKIP_MOMENTUM) ? 0.0 : hg[0].momentum));
        double wd_want = (skip & MGR_SKIP_WEIGHT_DECAY) ? 0.0 : hg[0].weight_decay;
        ck_assert(hg[1].weight_decay == wd_want);
        ck_assert(hg[1].beta2 == ((skip & MGR_SKIP_BETA2) ? 0.0 : hg[0].beta2));
    }
}
END_TEST

/* hg is accumulated into, never overwritten; SGD leaves β̄2 alone. */
START_TEST(test_reverse_accumulates)
{
    const mgr_hyper *h = &CASES[_i].h;
    uint64_t rng = 77 + (uint64_t)_i;
    const size_t n = 6, len = mgr_optim_state_len(h->kind, n);
    quartic q;
    double s[MAXS], abar[MAXS], sbar[MAXS];
    quartic_init(&q, n, &rng);
    random_state(h, n, &rng, s);
    tu_fill(abar, len, &rng, 1.0);

    mgr_hyper_grad fresh = { 0, 0, 0, 0 }, acc = { 1.5, -2.5, 3.5, -4.5 };
    step_reverse(&q, h, 3, s, abar, sbar, &fresh);
    step_reverse(&q, h, 3, s, abar, sbar, &acc);
    ck_assert_double_eq_tol(acc.lr, 1.5 + fresh.lr, 1e-12);
    ck_assert_double_eq_tol(acc.weight_decay, -2.5 + fresh.weight_decay, 1e-12);
    ck_assert_double_eq_tol(acc.momentum, 3.5 + fresh.momentum, 1e-12);
    ck_assert_double_eq_tol(acc.beta2, -4.5 + fresh.beta2, 1e-12);
    if (!is_adam(h)) ck_assert(fresh.beta2 == 0.0);
}
END_TEST

/* torch.optim's documented algorithms, written out plainly (ε_root added
   inside the root as in docs/optimizers.md, "ε_root"; with ε_root = 0 it
   is torch's line).
   Steps are 1-based here as in torch's docs; lr[t] is η of step t. */
static void torch_reference(const mgr_hyper *h, const quartic *q, int steps,
                            const double *lr, double *th, double *buf, double *exp_avg_sq)
{
    const size_t n = q->n;
    double g[MAXP];
    for (int t = 1; t <= steps; t++) {
        const double gamma = lr[t - 1], lambda = h->weight_decay;
        quartic_grad(q, th, g);
        if (h->kind == MGRAD_OPTIMIZER_SGD) {
            const double mu = h->momentum;
            for (size_t i = 0; i < n; i++) {
                double gi = g[i];
                if (lambda != 0) gi = gi + lambda * th[i];
                if (mu != 0) {
                    if (t > 1) buf[i] = mu * buf[i] + gi; /* dampening τ = 0 */
                    else buf[i] = gi;
                    if (h->nesterov) gi = gi + mu * buf[i];
                    else gi = buf[i];
                }
                th[i] = th[i] - gamma * gi;
            }
        } else {
            const double b1 = h->momentum, b2 = h->beta2;
            for (size_t i = 0; i < n; i++) {
                double gi = g[i];
                if (h->kind == MGRAD_OPTIMIZER_ADAMW) th[i] = th[i] - gamma * lambda * th[i];
                else if (lambda != 0) gi = gi + lambda * th[i];
                buf[i] = b1 * buf[i] + (1 - b1) * gi;
                exp_avg_sq[i] = b2 * exp_avg_sq[i] + (1 - b2) * gi * gi;
                double mhat = buf[i] / (1 - pow(b1, t));
                double vhat = exp_avg_sq[i] / (1 - pow(b2, t));
                th[i] = th[i] - gamma * mhat / (sqrt(vhat + h->eps_root) + h->eps);
            }
        }
    }
}

START_TEST(test_step_matches_torch)
{
    const mgr_hyper *h0 = &CASES[_i].h;
    enum { STEPS = 8 };
    uint64_t rng = 500 + (uint64_t)_i;
    const size_t n = 11;
    quartic q;
    double th0[MAXP], s[MAXS], g[MAXP], lr[STEPS];
    double ref_th[MAXP], ref_buf[MAXP] = { 0 }, ref_sq[MAXP] = { 0 };

    quartic_init(&q, n, &rng);
    tu_fill(th0, n, &rng, 1.0);
    for (int t = 0; t < STEPS; t++) lr[t] = h0->lr * (1.0 + 0.5 * tu_rand(&rng));
    memcpy(ref_th, th0, sizeof th0);
    torch_reference(h0, &q, STEPS, lr, ref_th, ref_buf, ref_sq);

    mgr_optim_init_state_f64(h0->kind, n, th0, s);
    for (int t = 0; t < STEPS; t++) {
        mgr_hyper h = *h0;
        h.lr = lr[t];
        quartic_grad(&q, s, g);
        mgr_optim_step_f64(NULL, &h, t, n, s, g);
    }
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(fabs(s[i] - ref_th[i]) <= 1e-13 * fmax(1.0, fabs(ref_th[i])),
                      "%s theta[%zu]: %.17g vs torch %.17g", CASES[_i].name, i, s[i],
                      ref_th[i]);
        /* torch keeps no momentum buffer when μ = 0 */
        if (is_adam(h0) || h0->momentum != 0)
            ck_assert_double_eq_tol(s[n + i], ref_buf[i], 1e-13 * fmax(1.0, fabs(ref_buf[i])));
        if (is_adam(h0))
            ck_assert_double_eq_tol(s[2 * n + i], ref_sq[i], 1e-13 * fmax(1.0, fabs(ref_sq[i])));
    }
    /* The optimizer moved θ: the comparison above is not between two copies
       of θ0. */
    double moved = 0.0;
    for (size_t i = 0; i < n; i++) moved = fmax(moved, fabs(s[i] - th0[i]));
    ck_assert(moved > 1e-3);
}
END_TEST

/* The f32 variant follows the f64 one to float precision over a few steps,
   and its reverse agrees with the f64 reverse. */
START_TEST(test_f32_matches_f64)
{
    const mgr_hyper *h = &CASES[_i].h;
    enum { STEPS = 6 };
    uint64_t rng = 900 + (uint64_t)_i;
    const size_t n = 13, len = mgr_optim_state_len(h->kind, n);
    quartic q;
    double th0[MAXP], s[MAXS], g[MAXP];
    float th0f[MAXP], sf[MAXS], gf[MAXP];

    quartic_init(&q, n, &rng);
    tu_fill(th0, n, &rng, 1.0);
    for (size_t i = 0; i < n; i++) th0f[i] = (float)th0[i];
    for (size_t i = 0; i < n; i++) th0[i] = th0f[i];
    mgr_optim_init_state_f64(h->kind, n, th0, s);
    mgr_optim_init_state_f32(h->kind, n, th0f, sf);
    for (int t = 0; t < STEPS; t++) {
        quartic_grad(&q, s, g);
        mgr_optim_step_f64(NULL, h, t, n, s, g);
        double sd[MAXS];
        for (size_t i = 0; i < n; i++) sd[i] = sf[i];
        quartic_grad(&q, sd, g); /* gradient of the f32 trajectory */
        for (size_t i = 0; i < n; i++) gf[i] = (float)g[i];
        mgr_optim_step_f32(NULL, h, t, n, sf, gf);
    }
    for (size_t i = 0; i < len; i++)
        ck_assert_msg(fabs(sf[i] - s[i]) <= 1e-5 * fmax(1.0, fabs(s[i])),
                      "%s state[%zu]: f32 %.9g vs f64 %.17g", CASES[_i].name, i, sf[i], s[i]);

    /* Reverse of one step from the same (float-representable) state. */
    double abar[MAXS], sbar[MAXS], u[MAXP], hu[MAXP];
    float sbarf[MAXS], uf[MAXP], huf[MAXP];
    for (size_t i = 0; i < len; i++) s[i] = sf[i];
    tu_fill(abar, len, &rng, 1.0);
    for (size_t i = 0; i < len; i++) {
        sbarf[i] = (float)abar[i];
        sbar[i] = sbarf[i];
    }
    quartic_grad(&q, s, g);
    for (size_t i = 0; i < n; i++) gf[i] = (float)g[i];
    for (size_t i = 0; i < n; i++) g[i] = gf[i];
    mgr_hyper_grad hg = { 0, 0, 0, 0 }, hgf = { 0, 0, 0, 0 };
    mgr_optim_reverse_pre_f64(NULL, h, STEPS, n, s, g, NULL, sbar, u, &hg);
    mgr_optim_reverse_pre_f32(NULL, h, STEPS, n, sf, gf, NULL, sbarf, uf, &hgf);
    quartic_hvp(&q, s, u, hu);
    for (size_t i = 0; i < n; i++) huf[i] = (float)hu[i];
    for (size_t i = 0; i < n; i++) hu[i] = huf[i];
    mgr_optim_reverse_post_f64(NULL, h, n, s, u, hu, sbar, &hg);
    mgr_optim_reverse_post_f32(NULL, h, n, sf, uf, huf, sbarf, &hgf);

    double scale = 0.0;
    for (size_t i = 0; i < len; i++) scale = fmax(scale, fabs(sbar[i]));
    for (size_t i = 0; i < len; i++)
        ck_assert_msg(fabs(sbarf[i] - sbar[i]) <= 1e-5 * scale, "%s sbar[%zu]: %.9g vs %.17g",
                      CASES[_i].name, i, sbarf[i], sbar[i]);
    for (size_t i = 0; i < n; i++) ck_assert(fabs(uf[i] - u[i]) <= 1e-5 * scale);
    for (int w = 0; w < 4; w++) {
        double a = hyper_grad_field(&hg, w), b = hyper_grad_field(&hgf, w);
        ck_assert_msg(fabs(a - b) <= 1e-5 * fmax(1.0, fabs(a)), "%s hyper %d: %.9g vs %.17g",
                      CASES[_i].name, w, b, a);
    }
}
END_TEST

/* Adam with ε_root = 0 where v' = 0 (all gradients so far 0): r = 0, the
   adjoint takes the continuous extension v̂̄ = 0 and stays finite. */
START_TEST(test_adam_r_zero)
{
    const mgr_hyper h = { MGRAD_OPTIMIZER_ADAM, 0.01, 0.0, 0.9, 0.999, 1e-8, 0.0, 0, 0u };
    const size_t n = 4;
    /* θ, m, v; elements 0 and 2 have θ = m = v = 0, hence g = 0 and r = 0 */
    double s[12] = { 0, 0.5, 0, -0.3, 0, 0.1, 0, 0.2, 0, 0.01, 0, 0.3 };
    double g[4] = { 0, 0.4, 0, -0.2 };
    double sbar[12], u[4];
    for (int i = 0; i < 12; i++) sbar[i] = 0.1 * (i + 1);
    const double vbar_in[4] = { sbar[8], sbar[9], sbar[10], sbar[11] };
    mgr_hyper_grad hg = { 0, 0, 0, 0 };
    mgr_optim_reverse_pre_f64(NULL, &h, 0, n, s, g, NULL, sbar, u, &hg);
    for (int i = 0; i < 12; i++) ck_assert(isfinite(sbar[i]));
    for (int i = 0; i < 4; i++) ck_assert(isfinite(u[i]));
    ck_assert(isfinite(hg.lr) && isfinite(hg.momentum) && isfinite(hg.beta2));
    ck_assert(sbar[8] == h.beta2 * vbar_in[0]);
    ck_assert(sbar[10] == h.beta2 * vbar_in[2]);
    ck_assert(sbar[9] != h.beta2 * vbar_in[1]); /* r > 0 there: v̂̄ ≠ 0 */

    double s1[12];
    memcpy(s1, s, sizeof s);
    mgr_optim_step_f64(NULL, &h, 0, n, s1, g);
    ck_assert(s1[0] == 0.0 && s1[4] == 0.0 && s1[8] == 0.0);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_state_len);
    tcase_add_test(tc, test_init_state);
    tcase_add_loop_test(tc, test_reverse_fd, 0, NCASES);
    tcase_add_loop_test(tc, test_reverse_accumulates, 0, NCASES);
    tcase_add_loop_test(tc, test_reverse_from_next_state, 0, NCASES);
    tcase_add_loop_test(tc, test_skip_adjoints, 0, NCASES);
    tcase_add_loop_test(tc, test_step_matches_torch, 0, NCASES);
    tcase_add_loop_test(tc, test_f32_matches_f64, 0, NCASES);
    tcase_add_test(tc, test_adam_r_zero);
    suite_add_tcase(s, tc);
    return s;
}
