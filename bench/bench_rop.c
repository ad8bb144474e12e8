/*
 * bench_rop.c - the graph passes of one reverse step of a CNN, timed one by
 * one: forward, the full backward (every node adjoint, no parameter
 * gradients: what the R-op ran before conv2d and the norms answered their
 * ybar rule), the R-op's reduced backward (mgr_graph_backward_rop, only the
 * adjoints that tangent_backward reads), tangent and tangent_backward.
 *
 * The networks of bench_cnn.c (`small`: examples/small_resnet.c; `resnet9`)
 * built through the public model API, θ0 from their initialisers, f32,
 * random inputs in [0, 1) and random output adjoints, `rows` rows.  Every
 * iteration runs the five passes in turn (so the two backwards see the
 * same caches), the first two iterations are warm-up, and the program
 * prints the median thread CPU time of each pass.  This links the library's
 * internals (lib/graph), like the tests.
 *
 * Usage: OPENBLAS_NUM_THREADS=1 bench_rop [small|resnet9] [iterations=40] [rows=64]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "graph/graph.h"
#include "graph/graph_exec.h"

#include "bench_util.h"

static mgrad_context *ctx;

#define CHECK(call) BENCH_CHECK(ctx, call)

enum { PASSES = 5, MAX_ITERS = 256 };
static const char *pass_names[PASSES] = {"forward", "full backward", "backward_rop", "tangent",
                                         "tangent_backward"};

static double thread_cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float *random_floats(size_t n, float lo, float hi)
{
    float *v = malloc(n * sizeof *v);
    if (v == NULL) exit(EXIT_FAILURE);
    for (size_t i = 0; i < n; i++) v[i] = lo + (hi - lo) * (float)rand() / (float)RAND_MAX;
    return v;
}

int main(int argc, char **argv)
{
    const char *which = argc > 1 ? argv[1] : "small";
    int iters = argc > 2 ? atoi(argv[2]) : 40;
    int rows_arg = argc > 3 ? atoi(argv[3]) : 64;
    if ((strcmp(which, "small") != 0 && strcmp(which, "resnet9") != 0) || iters < 3 ||
        iters > MAX_ITERS || rows_arg < 2) {
        fprintf(stderr, "usage: %s [small|resnet9] [iterations 3..%d] [rows >= 2]\n", argv[0],
                MAX_ITERS);
        return EXIT_FAILURE;
    }
    size_t rows = (size_t)rows_arg;
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = MGRAD_DTYPE_F32;
    if (mgrad_context_create(&ctx, &co) != MGRAD_OK) return EXIT_FAILURE;
    mgrad_model *model = bench_cnn_model(ctx, which);
    const mgr_graph *g = &model->graph;
    mgr_graph_ws_f32 *ws = NULL;
    CHECK(mgr_graph_ws_create_f32(ctx, g, rows, &ws));

    size_t P = (size_t)g->num_params, nx = rows * (size_t)g->nodes[0].size;
    size_t no = rows * (size_t)mgr_graph_output(g)->size;
    srand(7);
    float *theta = malloc(P * sizeof *theta), *hu = malloc(P * sizeof *hu);
    if (theta == NULL || hu == NULL) return EXIT_FAILURE;
    for (size_t i = 0; i < P; i++) theta[i] = (float)model->theta[i];
    float *u = random_floats(P, -0.5f, 0.5f), *x = random_floats(nx, 0, 1);
    float *obar = random_floats(no, -0.5f, 0.5f), *obardot = random_floats(no, -0.5f, 0.5f);

    double t[PASSES][MAX_ITERS];
    int kept = 0;
    for (int it = 0; it < iters; it++) {
        double c[PASSES + 1];
        c[0] = thread_cpu();
        mgr_graph_forward_f32(g, ws, rows, theta, x);
        c[1] = thread_cpu();
        mgr_graph_backward_f32(g, ws, rows, theta, x, obar, NULL, NULL);
        c[2] = thread_cpu();
        mgr_graph_backward_rop_f32(g, ws, rows, theta, x, obar, 0);
        c[3] = thread_cpu();
        mgr_graph_tangent_f32(g, ws, rows, theta, u, x, NULL);
        c[4] = thread_cpu();
        memset(hu, 0, P * sizeof *hu);
        mgr_graph_tangent_backward_f32(g, ws, rows, theta, u, x, NULL, obardot, hu, NULL);
        c[5] = thread_cpu();
        if (it < 2) continue; /* warm-up: first touch, OpenBLAS buffers */
        for (int p = 0; p < PASSES; p++) t[p][kept] = c[p + 1] - c[p];
        kept++;
    }
    double med[PASSES];
    printf("%s, %zu rows, f32, %d iterations (median thread CPU ms):", which, rows, kept);
    for (int p = 0; p < PASSES; p++) {
        med[p] = bench_median(t[p], kept);
        printf(" %s %.2f%s", pass_names[p], 1e3 * med[p], p + 1 < PASSES ? "," : "\n");
    }
    /* A reverse step's graph passes: forward, the R-op's backward, tangent,
       tangent_backward (the loss and the optimizer are not included). */
    double step_full = med[0] + med[1] + med[3] + med[4];
    double step_rop = med[0] + med[2] + med[3] + med[4];
    printf("reverse step's graph passes: %.2f ms with the full backward, %.2f ms with "
           "backward_rop (%.1f %% less)\n",
           1e3 * step_full, 1e3 * step_rop, 100 * (step_full - step_rop) / step_full);
    free(theta);
    free(hu);
    free(u);
    free(x);
    free(obar);
    free(obardot);
    mgr_graph_ws_destroy_f32(ctx, ws);
    mgrad_model_destroy(model);
    mgrad_context_destroy(ctx);
    return EXIT_SUCCESS;
}
