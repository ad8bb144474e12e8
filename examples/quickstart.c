/*
 * quickstart.c - the usage example of include/metagrad.h as a program.
 *
 * Trains an MLP (16-32-4, tanh) on generated data for 100 steps of SGD with
 * momentum, then prints φ (the validation loss at θ_T) and the metagradient
 * of φ with respect to the learning-rate schedule: dφ/dη_t for every step.
 * A negative entry says that a larger learning rate at that step would have
 * lowered the validation loss.
 *
 * Build against an installed library (from examples/; common/flags.c is the
 * examples' command line, here only --help):
 *     cc quickstart.c common/flags.c $(pkg-config --cflags --libs metagrad)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <metagrad.h>

#include "common/flags.h"

enum { N_TRAIN = 512, N_VAL = 256, FEATURES = 16, CLASSES = 4, STEPS = 100, BATCH = 32 };

#define CHECK(call)                                                            \
    do {                                                                       \
        mgrad_status s_ = (call);                                              \
        if (s_ != MGRAD_OK) {                                                  \
            fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, \
                    #call, mgrad_status_string(s_), mgrad_context_last_error(ctx)); \
            return EXIT_FAILURE;                                               \
        }                                                                      \
    } while (0)

/* Generated data: the class is the index of the largest of four random
   projections of a Gaussian input, so the task is learnable but not trivial. */
static void make_data(int n, unsigned seed, double *x, int32_t *y)
{
    srand(seed);
    for (int i = 0; i < n; i++) {
        double best = -INFINITY;
        for (int j = 0; j < FEATURES; j++)
            x[i * FEATURES + j] = (double)rand() / RAND_MAX * 2 - 1;
        for (int c = 0; c < CLASSES; c++) {
            double score = 0;
            for (int j = 0; j < FEATURES; j++)
                score += x[i * FEATURES + j] * sin(1.0 + c * FEATURES + j);
            if (score > best) {
                best = score;
                y[i] = c;
            }
        }
    }
}

int main(int argc, char **argv)
{
    const app_cmdline cmd = {
        "Train a small MLP on generated data and print the metagradient "
        "of the validation loss with respect to the learning-rate schedule.",
        NULL, 0, NULL, 0};
    int rc = app_parse_flags(&cmd, argc, argv);
    if (rc != APP_FLAGS_RUN) return rc;

    static double x_train[N_TRAIN * FEATURES], x_val[N_VAL * FEATURES];
    static int32_t y_train[N_TRAIN], y_val[N_VAL];
    make_data(N_TRAIN, 1, x_train, y_train);
    make_data(N_VAL, 2, x_val, y_val);

    mgrad_context *ctx = NULL;
    mgrad_model *model = NULL;
    mgrad_dataset *train = NULL, *val = NULL;
    mgrad_run *run = NULL;
    mgrad_meta *lr = NULL;
    double phi = 0, accuracy = 0, grad[STEPS];
    int64_t shape[1] = {FEATURES};

    if (mgrad_context_create(&ctx, NULL) != MGRAD_OK) return EXIT_FAILURE;
    CHECK(mgrad_model_create(&model, ctx, 1, shape));
    CHECK(mgrad_model_add_dense(model, 32, MGRAD_INIT_DEFAULT));
    CHECK(mgrad_model_add_activation(model, MGRAD_ACTIVATION_TANH));
    CHECK(mgrad_model_add_dense(model, CLASSES, MGRAD_INIT_DEFAULT));
    CHECK(mgrad_dataset_create(&train, ctx, N_TRAIN, 1, shape, MGRAD_DTYPE_F64, x_train));
    CHECK(mgrad_dataset_set_labels(train, y_train, N_TRAIN, CLASSES));
    CHECK(mgrad_dataset_create(&val, ctx, N_VAL, 1, shape, MGRAD_DTYPE_F64, x_val));
    CHECK(mgrad_dataset_set_labels(val, y_val, N_VAL, CLASSES));

    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = STEPS;
    o.batch_size = BATCH;
    o.lr = 0.1;
    o.momentum = 0.9;
    o.validation = val;
    CHECK(mgrad_run_create(&run, model, train, &o));
    CHECK(mgrad_run_add_meta(&lr, run, MGRAD_META_LR_SCHEDULE, NULL));
    CHECK(mgrad_run_train(run, &phi));
    CHECK(mgrad_run_reverse(run));
    CHECK(mgrad_meta_get_grad(lr, MGRAD_DTYPE_F64, grad, STEPS));
    CHECK(mgrad_run_evaluate(run, val, NULL, &accuracy));

    mgrad_run_stats st = MGRAD_RUN_STATS_INIT;
    CHECK(mgrad_run_get_stats(run, &st));
    printf("libmetagrad %s: MLP %d-32-%d, SGD momentum 0.9, lr 0.1, T = %d, B = %d\n",
           mgrad_version_string(), FEATURES, CLASSES, STEPS, BATCH);
    printf("validation loss phi = %.6f, accuracy %.1f%%\n", phi, 100 * accuracy);
    printf("train %.3f s, metagradient %.3f s (%.2fx)\n", st.seconds_forward,
           st.seconds_reverse, st.seconds_reverse / st.seconds_forward);
    printf("d phi / d lr_t:\n");
    for (int t = 0; t < STEPS; t++)
        printf("  t=%3d %+.6e%s", t, grad[t], t % 4 == 3 ? "\n" : "");
    printf("\n");

    mgrad_run_destroy(run);
    mgrad_dataset_destroy(train);
    mgrad_dataset_destroy(val);
    mgrad_model_destroy(model);
    mgrad_context_destroy(ctx);
    return EXIT_SUCCESS;
}
