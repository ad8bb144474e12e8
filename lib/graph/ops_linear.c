/*
 * ops_linear.c - parameter-free linear ops, four passes each.
 *
 *     scale:  y = c x          x, y [rows, size], c = node->scale
 *     add:    y = x + x1       x, x1, y [rows, size]  (residual connection;
 *                              any shape, both inputs alike)
 *     flatten: y = x           [rows, C H W]: only the node's shape changes
 *
 * Being linear, each op's tangent is the op applied to the tangents and its
 * tangent-of-backward is its backward applied to (ȳ)˙: no second-order term.
 * Rules: docs/derivations.md, "Scale and residual add".
 */
#include <assert.h>

#include "graph/ops.h"

/* y = c x */
void R(mgr_scale_forward)(const R(mgr_op_args) *a)
{
    assert(a->in_size == (size_t)a->node->size);
    size_t n = a->rows * a->in_size;
    real c = (real)a->node->scale;
    const real *x = a->x;
    real *y = a->y;
    for (size_t i = 0; i < n; i++) y[i] = c * x[i];
}

/* x̄ += c ȳ */
void R(mgr_scale_backward)(const R(mgr_op_args) *a)
{
    if (a->xbar == NULL) return;
    R(mgr_axpy)(a->rows * a->in_size, (real)a->node->scale, a->ybar, a->xbar);
}

/* ẏ = c ẋ */
void R(mgr_scale_tangent)(const R(mgr_op_args) *a)
{
    size_t n = a->rows * a->in_size;
    if (a->xdot == NULL) {
        R(mgr_zero)(n, a->ydot);
        return;
    }
    real c = (real)a->node->scale;
    const real *xd = a->xdot;
    real *yd = a->ydot;
    for (size_t i = 0; i < n; i++) yd[i] = c * xd[i];
}

/* (x̄)˙ += c (ȳ)˙ */
void R(mgr_scale_tangent_backward)(const R(mgr_op_args) *a)
{
    if (a->xbardot == NULL) return;
    R(mgr_axpy)(a->rows * a->in_size, (real)a->node->scale, a->ybardot, a->xbardot);
}

/* y = x + x1 */
void R(mgr_add_forward)(const R(mgr_op_args) *a)
{
    assert(a->in_size == (size_t)a->node->size && a->x1 != NULL);
    size_t n = a->rows * a->in_size;
    const real *x = a->x, *x1 = a->x1;
    real *y = a->y;
    for (size_t i = 0; i < n; i++) y[i] = x[i] + x1[i];
}

/* x̄ += ȳ;  x̄1 += ȳ.  Both may be one buffer (y = x + x): two separate
   accumulations handle that. */
void R(mgr_add_backward)(const R(mgr_op_args) *a)
{
    size_t n = a->rows * a->in_size;
    if (a->xbar != NULL) R(mgr_axpy)(n, 1, a->ybar, a->xbar);
    if (a->x1bar != NULL) R(mgr_axpy)(n, 1, a->ybar, a->x1bar);
}

/* ẏ = ẋ + ẋ1  (NULL tangents are zero) */
void R(mgr_add_tangent)(const R(mgr_op_args) *a)
{
    size_t n = a->rows * a->in_size;
    const real *xd = a->xdot, *x1d = a->x1dot;
    real *yd = a->ydot;
    if (xd != NULL && x1d != NULL) {
        for (size_t i = 0; i < n; i++) yd[i] = xd[i] + x1d[i];
    } else if (xd != NULL || x1d != NULL) {
        R(mgr_copy)(n, xd != NULL ? xd : x1d, yd);
    } else {
        R(mgr_zero)(n, yd);
    }
}

/* (x̄)˙ += (ȳ)˙;  (x̄1)˙ += (ȳ)˙ */
void R(mgr_add_tangent_backward)(const R(mgr_op_args) *a)
{
    size_t n = a->rows * a->in_size;
    if (a->xbardot != NULL) R(mgr_axpy)(n, 1, a->ybardot, a->xbardot);
    if (a->x1bardot != NULL) R(mgr_axpy)(n, 1, a->ybardot, a->x1bardot);
}

/* flatten: y = x, only the shape changes ([C, H, W] -> [C H W]). */
void R(mgr_flatten_forward)(const R(mgr_op_args) *a)
{
    assert(a->in_size == (size_t)a->node->size);
    R(mgr_copy)(a->rows * a->in_size, a->x, a->y);
}

/* x̄ += ȳ */
void R(mgr_flatten_backward)(const R(mgr_op_args) *a)
{
    if (a->xbar != NULL) R(mgr_axpy)(a->rows * a->in_size, 1, a->ybar, a->xbar);
}

/* ẏ = ẋ */
void R(mgr_flatten_tangent)(const R(mgr_op_args) *a)
{
    size_t n = a->rows * a->in_size;
    if (a->xdot != NULL)
        R(mgr_copy)(n, a->xdot, a->ydot);
    else
        R(mgr_zero)(n, a->ydot);
}

/* (x̄)˙ += (ȳ)˙ */
void R(mgr_flatten_tangent_backward)(const R(mgr_op_args) *a)
{
    if (a->xbardot != NULL) R(mgr_axpy)(a->rows * a->in_size, 1, a->ybardot, a->xbardot);
}
