/*
 * ops_activation.c - elementwise activations y = σ(x), four passes each.
 *
 *     x, y [rows, size]
 *     backward:  x̄ += ȳ ⊙ σ'(x)
 *     tangent:   ẏ = σ'(x) ⊙ ẋ
 *     tan-back:  (x̄)˙ += (ȳ)˙ ⊙ σ'(x) + ȳ ⊙ σ''(x) ⊙ ẋ
 *
 * Each activation supplies σ, σ' and σ'' as inline functions of x and of
 * y = σ(x) (whichever is cheaper and more accurate); one macro stamps out the
 * four passes so that every loop is the same simple loop, another the op's
 * definition.  Adding one: docs/architecture.md, "Ops".
 * Rules: docs/derivations.md, "Elementwise activations".
 *
 * Like every ops_<family>.c, this file is compiled three times: without
 * MGRAD_REAL_BITS it gives the ops' definitions (op.h), with 32 and 64
 * their passes.
 */
/* Whether σ'' can be nonzero (both halves read this).  tangent_backward
   reads ȳ only in ȳ σ''(x) ẋ, so an activation with σ'' = 0 (ReLU) never
   reads it and the R-op's backward can skip computing it. */
#define tanh_has_d2 1
#define sigmoid_has_d2 1
#define relu_has_d2 0
#define gelu_has_d2 1
#define softplus_has_d2 1

#ifndef MGRAD_REAL_BITS
/* ---- the definitions (untyped, compiled once) ---------------------------- */

#include "graph/graph.h"

/* An activation: same shape as its input, no parameters, no scratch.
   `activation` is the MGRAD_ACTIVATION_* value that selects it in
   mgrad_model_add_activation (0: none). */
#define MGR_ACTIVATION_DEF(op, label, activation_value)                         \
    const mgr_op_def mgr_op_##op = {                                            \
        .name = label,                                                          \
        .inputs = 1,                                                            \
        .activation = activation_value,                                         \
        .infer = mgr_infer_same_shape,                                          \
        .ybar_reads = op##_has_d2 ? MGR_YBAR_FOR_XBARDOT : MGR_YBAR_NEVER,      \
        MGR_OP_PASSES(op),                                                      \
    };

MGR_ACTIVATION_DEF(tanh, "tanh", MGRAD_ACTIVATION_TANH)
MGR_ACTIVATION_DEF(sigmoid, "sigmoid", MGRAD_ACTIVATION_SIGMOID)
MGR_ACTIVATION_DEF(relu, "relu", MGRAD_ACTIVATION_RELU)
MGR_ACTIVATION_DEF(gelu, "gelu", MGRAD_ACTIVATION_GELU)
MGR_ACTIVATION_DEF(softplus, "softplus", MGRAD_ACTIVATION_SOFTPLUS)

#else
/* ---- the passes (typed, compiled for f32 and f64) ------------------------ */

#include <assert.h>

#include "graph/ops.h"

#if MGRAD_REAL_BITS == 32
#define RERFC erfcf
#else
#define RERFC erfc
#endif

/* tanh: σ' = 1 − y², σ'' = −2y(1 − y²) */
static inline real tanh_f(real x) { return RTANH(x); }
static inline real tanh_d1(real x, real y) { (void)x; return 1 - y * y; }
static inline real tanh_d2(real x, real y) { (void)x; return -2 * y * (1 - y * y); }

/* sigmoid: e^{-|x|} never overflows, and each branch divides by 1 + e ≥ 1.
   σ' = y(1 − y), σ'' = y(1 − y)(1 − 2y) */
static inline real sigmoid_f(real x)
{
    real e = REXP(-RFABS(x));
    return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}
static inline real sigmoid_d1(real x, real y) { (void)x; return y * (1 - y); }
static inline real sigmoid_d2(real x, real y) { (void)x; return y * (1 - y) * (1 - 2 * y); }

/* relu: the derivative at 0 is taken as 0 (PyTorch's choice). */
static inline real relu_f(real x) { return x > 0 ? x : 0; }
static inline real relu_d1(real x, real y) { (void)y; return (real)(x > 0); }
static inline real relu_d2(real x, real y) { (void)x; (void)y; return 0; }

/* gelu, exact: y = x Φ(x).  Φ(x) = ½ erfc(−x/√2) keeps relative accuracy in
   the left tail, where ½(1 + erf(x/√2)) would cancel.
   σ' = Φ(x) + x φ(x),  σ'' = φ(x)(2 − x²),  φ(x) = e^{−x²/2}/√(2π) */
#define MGR_SQRT1_2 ((real)0.70710678118654752440)
#define MGR_INV_SQRT_2PI ((real)0.39894228040143267794)
static inline real gelu_phi(real x) { return MGR_INV_SQRT_2PI * REXP(-x * x / 2); }
static inline real gelu_Phi(real x) { return RERFC(-x * MGR_SQRT1_2) / 2; }
static inline real gelu_f(real x) { return x * gelu_Phi(x); }
static inline real gelu_d1(real x, real y) { (void)y; return gelu_Phi(x) + x * gelu_phi(x); }
static inline real gelu_d2(real x, real y) { (void)y; return gelu_phi(x) * (2 - x * x); }

/* softplus: y = log(1 + e^x) = max(x, 0) + log1p(e^{−|x|}), which neither
   overflows for large x nor loses the tail for very negative x.
   σ' = sigmoid(x), σ'' = s(1 − s) */
static inline real softplus_f(real x) { return (x > 0 ? x : 0) + RLOG1P(REXP(-RFABS(x))); }
static inline real softplus_d1(real x, real y) { (void)y; return sigmoid_f(x); }
static inline real softplus_d2(real x, real y)
{
    (void)y;
    real s = sigmoid_f(x);
    return s * (1 - s);
}

/* Each pass is a range function run on the context's threads over the
   fixed grid of base/pool.h; an element's value does not depend on the
   range it falls in. */
#define MGR_ELEMENTWISE_OP(name)                                                  \
    static void name##_forward_range(void *arg, size_t lo, size_t hi)             \
    {                                                                             \
        const R(mgr_op_args) *a = arg;                                            \
        const real *restrict x = a->x;                                            \
        real *restrict y = a->y;                                                  \
        for (size_t i = lo; i < hi; i++) y[i] = name##_f(x[i]);                   \
    }                                                                             \
    static void name##_forward(const R(mgr_op_args) *a)                           \
    {                                                                             \
        assert(a->in_size == (size_t)a->node->size);                              \
        mgr_pool_range(a->pool, a->rows * a->in_size, 2, name##_forward_range,    \
                       (void *)a);                                                \
    }                                                                             \
    static void name##_backward_range(void *arg, size_t lo, size_t hi)            \
    {                                                                             \
        const R(mgr_op_args) *a = arg;                                            \
        const real *restrict x = a->x, *restrict y = a->y;                        \
        const real *restrict yb = a->ybar;                                        \
        real *restrict xb = a->xbar;                                              \
        for (size_t i = lo; i < hi; i++) xb[i] += yb[i] * name##_d1(x[i], y[i]);  \
    }                                                                             \
    static void name##_backward(const R(mgr_op_args) *a)                          \
    {                                                                             \
        if (a->xbar == NULL) return;                                              \
        mgr_pool_range(a->pool, a->rows * a->in_size, 4, name##_backward_range,   \
                       (void *)a);                                                \
    }                                                                             \
    static void name##_tangent_range(void *arg, size_t lo, size_t hi)             \
    {                                                                             \
        const R(mgr_op_args) *a = arg;                                            \
        const real *restrict x = a->x, *restrict y = a->y;                        \
        const real *restrict xd = a->xdot;                                        \
        real *restrict yd = a->ydot;                                              \
        for (size_t i = lo; i < hi; i++) yd[i] = name##_d1(x[i], y[i]) * xd[i];   \
    }                                                                             \
    static void name##_tangent(const R(mgr_op_args) *a)                           \
    {                                                                             \
        size_t n = a->rows * a->in_size;                                          \
        if (a->xdot == NULL) {                                                    \
            R(mgr_zero)(n, a->ydot);                                              \
            return;                                                               \
        }                                                                         \
        mgr_pool_range(a->pool, n, 4, name##_tangent_range, (void *)a);           \
    }                                                                             \
    static void name##_tangent_backward_range(void *arg, size_t lo, size_t hi)    \
    {                                                                             \
        const R(mgr_op_args) *a = arg;                                            \
        const real *restrict x = a->x, *restrict y = a->y;                        \
        const real *restrict yb = a->ybar, *restrict ybd = a->ybardot;            \
        const real *restrict xd = a->xdot;                                        \
        real *restrict xbd = a->xbardot;                                          \
        if (xd == NULL || !name##_has_d2) {                                       \
            for (size_t i = lo; i < hi; i++)                                      \
                xbd[i] += ybd[i] * name##_d1(x[i], y[i]);                         \
            return;                                                               \
        }                                                                         \
        for (size_t i = lo; i < hi; i++)                                          \
            xbd[i] += ybd[i] * name##_d1(x[i], y[i]) +                            \
                      yb[i] * name##_d2(x[i], y[i]) * xd[i];                      \
    }                                                                             \
    static void name##_tangent_backward(const R(mgr_op_args) *a)                  \
    {                                                                             \
        if (a->xbardot == NULL) return;                                           \
        mgr_pool_range(a->pool, a->rows * a->in_size, 6,                          \
                       name##_tangent_backward_range, (void *)a);                 \
    }                                                                             \
    MGR_OP_PASS_TABLE(name, name);

MGR_ELEMENTWISE_OP(tanh)
MGR_ELEMENTWISE_OP(sigmoid)
MGR_ELEMENTWISE_OP(relu)
MGR_ELEMENTWISE_OP(gelu)
MGR_ELEMENTWISE_OP(softplus)

#endif
