/*
 * fdcheck.h - the finite-difference harness shared by the op suites
 * (test_graph.c, test_ops_*.c through imageops.h), header-only, its helpers
 * inline so that a suite may use a few of them: a graph at random (θ, x) with
 * directions u, ẋ, ȳ, (ȳ)˙, and fd_check_graph, which checks all four
 * passes against central differences in f64.
 *
 * h = 1e-5: truncation error O(h²) ≈ 1e-10 relative, rounding O(ε/h) ≈
 * 1e-11, so the bound 1e-6 is three orders above the noise and far below any
 * wrong rule (which is off by O(1)).  MGRAD_TEST_VERBOSE=1 prints every
 * measured error; fd_worst_err keeps the largest of the current test.
 */
#ifndef MGRAD_FDCHECK_H
#define MGRAD_FDCHECK_H

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "graph/graph_exec.h"
#include "testutil.h"

#define FD_H 1e-5
#define FD_TOL 1e-6

static double fd_worst_err; /* largest error of the current test, for the log */

static inline void check_err(const char *what, double err, double tol)
{
    if (getenv("MGRAD_TEST_VERBOSE") != NULL)
        fprintf(stderr, "  %-60s rel err %.3e\n", what, err);
    if (err > fd_worst_err) fd_worst_err = err;
    ck_assert_msg(err <= tol, "%s: relative error %.3e > %.1e", what, err, tol);
}

static inline double *dalloc(size_t n)
{
    double *p = calloc(n > 0 ? n : 1, sizeof(double));
    ck_assert_ptr_nonnull(p);
    return p;
}

static inline mgrad_context *new_ctx(void)
{
    mgrad_context *ctx = NULL;
    ck_assert_int_eq(mgrad_context_create(&ctx, NULL), MGRAD_OK);
    return ctx;
}

/* Everything allocated through ctx was freed; destroy it. */
static inline void finish_ctx(mgrad_context *ctx)
{
    uint64_t cur = 1;
    ck_assert_int_eq(mgrad_context_memory(ctx, &cur, NULL), MGRAD_OK);
    ck_assert_msg(cur == 0, "leaked %llu bytes", (unsigned long long)cur);
    mgrad_context_destroy(ctx);
}

/* ---- the finite-difference harness for a graph --------------------------- */

/* A graph evaluated at (θ, x) with directions u on θ, ẋ on x, ȳ (output
   adjoint) and (ȳ)˙ (its tangent). */
typedef struct fd_problem {
    const mgr_graph *g;
    mgrad_context *ctx;
    mgr_graph_ws_f64 *ws;
    size_t rows, nin, nout, P;
    double *theta, *x, *u, *xd, *ob, *obd;
} fd_problem;

/* Random θ, x and directions for `g` on `rows` rows; ctx stays the
   caller's.  Inputs closer to 0 than xmin_abs are pushed out to it (kinks).
   The dropout key (seed, step) is fixed so that masks replay exactly. */
static inline void fd_setup(fd_problem *pb, mgrad_context *ctx, const mgr_graph *g,
                            size_t rows, uint64_t seed, double xmin_abs)
{
    uint64_t st = seed * 7919 + 17;
    memset(pb, 0, sizeof *pb);
    pb->g = g;
    pb->ctx = ctx;
    pb->rows = rows;
    pb->nin = (size_t)g->nodes[0].size;
    pb->nout = (size_t)mgr_graph_output(g)->size;
    pb->P = (size_t)g->num_params;
    ck_assert_int_eq(mgr_graph_ws_create_f64(ctx, g, rows, &pb->ws), MGRAD_OK);
    pb->ws->seed = 1234 + seed;
    pb->ws->step = 5;
    pb->theta = dalloc(pb->P);
    pb->u = dalloc(pb->P);
    pb->x = dalloc(rows * pb->nin);
    pb->xd = dalloc(rows * pb->nin);
    pb->ob = dalloc(rows * pb->nout);
    pb->obd = dalloc(rows * pb->nout);
    tu_fill(pb->theta, pb->P, &st, 0.7);
    tu_fill(pb->u, pb->P, &st, 1.0);
    tu_fill(pb->x, rows * pb->nin, &st, 1.5);
    tu_fill(pb->xd, rows * pb->nin, &st, 1.0);
    tu_fill(pb->ob, rows * pb->nout, &st, 1.0);
    tu_fill(pb->obd, rows * pb->nout, &st, 1.0);
    /* Keep inputs away from kinks (relu at 0) by more than any FD step. */
    for (size_t i = 0; i < rows * pb->nin; i++)
        if (fabs(pb->x[i]) < xmin_abs) pb->x[i] = pb->x[i] < 0 ? -xmin_abs : xmin_abs;
}

static inline void fd_teardown(fd_problem *pb)
{
    mgr_graph_ws_destroy_f64(pb->ctx, pb->ws);
    free(pb->theta);
    free(pb->u);
    free(pb->x);
    free(pb->xd);
    free(pb->ob);
    free(pb->obd);
}

/* y = f(θ, x) */
static inline void eval_forward(fd_problem *pb, const double *theta, const double *x,
                                double *y)
{
    mgr_graph_forward_f64(pb->g, pb->ws, pb->rows, theta, x);
    memcpy(y, pb->ws->val[pb->g->num_nodes - 1], pb->rows * pb->nout * sizeof(double));
}

/* (θ̄, x̄) at (θ, x) for output adjoint ob; zeroed first. xbar may be NULL. */
static inline void eval_backward(fd_problem *pb, const double *theta, const double *x,
                                 const double *ob, double *grad, double *xbar)
{
    memset(grad, 0, pb->P * sizeof(double));
    if (xbar != NULL) memset(xbar, 0, pb->rows * pb->nin * sizeof(double));
    mgr_graph_forward_f64(pb->g, pb->ws, pb->rows, theta, x);
    mgr_graph_backward_f64(pb->g, pb->ws, pb->rows, theta, x, ob, grad, xbar);
}

/* The four-pass checks.  use_xdot = 0 runs the passes with ẋ = NULL and
   x̄, (x̄)˙ not wanted (the first layer of a training step). */
static inline void fd_check_graph(fd_problem *pb, const char *name, int use_xdot)
{
    char what[256];
    size_t nx = pb->rows * pb->nin, ny = pb->rows * pb->nout, P = pb->P;
    const double *xd = use_xdot ? pb->xd : NULL;
    double h = FD_H;
    double *yp = dalloc(ny), *ym = dalloc(ny), *fd = dalloc(ny > nx ? (ny > P ? ny : P)
                                                                    : (nx > P ? nx : P));
    double *tp = dalloc(P), *tm = dalloc(P), *xp = dalloc(nx), *xm = dalloc(nx);
    double *obp = dalloc(ny), *obm = dalloc(ny);
    double *grad = dalloc(P), *xbar = dalloc(nx), *gp = dalloc(P), *gm = dalloc(P);
    double *xbp = dalloc(nx), *xbm = dalloc(nx), *hu = dalloc(P), *xbd = dalloc(nx);
    uint64_t st = 99;

    /* Tangent: ẏ against (f(θ+hu, x+hẋ) − f(θ−hu, x−hẋ)) / 2h. */
    tu_axpy_to(tp, pb->theta, h, pb->u, P);
    tu_axpy_to(tm, pb->theta, -h, pb->u, P);
    tu_axpy_to(xp, pb->x, h, xd, nx);
    tu_axpy_to(xm, pb->x, -h, xd, nx);
    eval_forward(pb, tp, xp, yp);
    eval_forward(pb, tm, xm, ym);
    for (size_t i = 0; i < ny; i++) fd[i] = (yp[i] - ym[i]) / (2 * h);
    mgr_graph_forward_f64(pb->g, pb->ws, pb->rows, pb->theta, pb->x);
    mgr_graph_tangent_f64(pb->g, pb->ws, pb->rows, pb->theta, pb->u, pb->x, xd);
    snprintf(what, sizeof what, "%s tangent%s", name, use_xdot ? "" : " (xdot NULL)");
    check_err(what, tu_vec_rel_err(pb->ws->tan[pb->g->num_nodes - 1], fd, ny, 1e-10),
              FD_TOL);

    /* Backward: each θ̄_j and x̄_j against the FD of G = ⟨ȳ, f(θ, x)⟩.
       Outputs start non-zero to check that the passes accumulate. */
    double *g0 = dalloc(P), *x0 = dalloc(nx);
    tu_fill(g0, P, &st, 1.0);
    tu_fill(x0, nx, &st, 1.0);
    memcpy(grad, g0, P * sizeof(double));
    memcpy(xbar, x0, nx * sizeof(double));
    mgr_graph_forward_f64(pb->g, pb->ws, pb->rows, pb->theta, pb->x);
    mgr_graph_backward_f64(pb->g, pb->ws, pb->rows, pb->theta, pb->x, pb->ob, grad,
                           use_xdot ? xbar : NULL);
    for (size_t j = 0; j < P; j++) grad[j] -= g0[j];
    for (size_t j = 0; j < nx; j++) xbar[j] -= x0[j];
    if (!use_xdot) {
        for (size_t j = 0; j < nx; j++)
            ck_assert_msg(xbar[j] == 0, "x̄ written although not wanted");
    }
    for (size_t j = 0; j < P; j++) {
        memcpy(tp, pb->theta, P * sizeof(double));
        tp[j] += h;
        eval_forward(pb, tp, pb->x, yp);
        tp[j] -= 2 * h;
        eval_forward(pb, tp, pb->x, ym);
        double gpv = 0;
        for (size_t i = 0; i < ny; i++) gpv += pb->ob[i] * (yp[i] - ym[i]);
        fd[j] = gpv / (2 * h);
    }
    snprintf(what, sizeof what, "%s backward theta", name);
    if (P > 0) check_err(what, tu_vec_rel_err(grad, fd, P, 1e-10), FD_TOL);
    if (use_xdot) {
        for (size_t j = 0; j < nx; j++) {
            memcpy(xp, pb->x, nx * sizeof(double));
            xp[j] += h;
            eval_forward(pb, pb->theta, xp, yp);
            xp[j] -= 2 * h;
            eval_forward(pb, pb->theta, xp, ym);
            double gpv = 0;
            for (size_t i = 0; i < ny; i++) gpv += pb->ob[i] * (yp[i] - ym[i]);
            fd[j] = gpv / (2 * h);
        }
        snprintf(what, sizeof what, "%s backward x", name);
        check_err(what, tu_vec_rel_err(xbar, fd, nx, 1e-10), FD_TOL);
    }

    /* Tangent of backward: (θ̄)˙, (x̄)˙ against the FD of the backward pass's
       outputs along (u, ẋ, (ȳ)˙). */
    tu_axpy_to(tp, pb->theta, h, pb->u, P);
    tu_axpy_to(tm, pb->theta, -h, pb->u, P);
    tu_axpy_to(xp, pb->x, h, xd, nx);
    tu_axpy_to(xm, pb->x, -h, xd, nx);
    tu_axpy_to(obp, pb->ob, h, pb->obd, ny);
    tu_axpy_to(obm, pb->ob, -h, pb->obd, ny);
    eval_backward(pb, tp, xp, obp, gp, use_xdot ? xbp : NULL);
    eval_backward(pb, tm, xm, obm, gm, use_xdot ? xbm : NULL);
    memcpy(hu, g0, P * sizeof(double));
    memcpy(xbd, x0, nx * sizeof(double));
    memset(grad, 0, P * sizeof(double));
    mgr_graph_forward_f64(pb->g, pb->ws, pb->rows, pb->theta, pb->x);
    mgr_graph_backward_f64(pb->g, pb->ws, pb->rows, pb->theta, pb->x, pb->ob, grad, NULL);
    mgr_graph_tangent_f64(pb->g, pb->ws, pb->rows, pb->theta, pb->u, pb->x, xd);
    mgr_graph_tangent_backward_f64(pb->g, pb->ws, pb->rows, pb->theta, pb->u, pb->x, xd,
                                   pb->obd, hu, use_xdot ? xbd : NULL);
    for (size_t j = 0; j < P; j++) {
        hu[j] -= g0[j];
        fd[j] = (gp[j] - gm[j]) / (2 * h);
    }
    snprintf(what, sizeof what, "%s tangent_backward theta%s", name,
             use_xdot ? "" : " (xdot NULL)");
    if (P > 0) check_err(what, tu_vec_rel_err(hu, fd, P, 1e-10), FD_TOL);
    for (size_t j = 0; j < nx; j++) xbd[j] -= x0[j];
    if (use_xdot) {
        for (size_t j = 0; j < nx; j++) fd[j] = (xbp[j] - xbm[j]) / (2 * h);
        snprintf(what, sizeof what, "%s tangent_backward x", name);
        check_err(what, tu_vec_rel_err(xbd, fd, nx, 1e-10), FD_TOL);
    } else {
        for (size_t j = 0; j < nx; j++)
            ck_assert_msg(xbd[j] == 0, "(x̄)˙ written although not wanted");
    }

    free(g0);
    free(x0);
    free(yp);
    free(ym);
    free(fd);
    free(tp);
    free(tm);
    free(xp);
    free(xm);
    free(obp);
    free(obm);
    free(grad);
    free(xbar);
    free(gp);
    free(gm);
    free(xbp);
    free(xbm);
    free(hu);
    free(xbd);
}

#endif /* MGRAD_FDCHECK_H */
