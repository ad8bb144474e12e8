/*
 * small_resnet.c - a small ResNet on Fashion-MNIST, and the metagradient of
 * its validation loss with respect to every training example's weight.
 *
 * The network, in a few calls (include/metagrad/model.h):
 *
 *     conv 3x3, 8 channels - batch norm - relu           (stem, 8x28x28)
 *     resnet block, 8 channels                           (8x28x28)
 *     resnet block, 16 channels, stride 2 (projection)   (16x14x14)
 *     average pooling 2x2                                (16x7x7)
 *     global average pooling                             (16)
 *     dense 10, scale 0.5                                (the logits)
 *
 * It trains with SGD + momentum in f32, prints the validation loss φ and
 * accuracy, then runs the reverse pass for dφ/dw_i over the training
 * weights and lists the examples whose up-weighting would lower φ most and
 * raise it most (often mislabelled or atypical images).  Throughput of the
 * forward (training) and reverse (metagradient) phases is printed in images
 * per second.
 *
 * Data: /usr/share/datasets/fashion-mnist (Debian package
 * dataset-fashion-mnist).  Without it, or with --synthetic, generated
 * images stand in (a bright bar whose position is the class), so that the
 * program runs anywhere.
 *
 * Usage: small_resnet [--quick] [--synthetic] [--train N] [--steps T] [--batch B]
 *        (--help: all options)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <metagrad.h>

#include "common/flags.h"

#define CHECK(call)                                                            \
    do {                                                                       \
        mgrad_status s_ = (call);                                              \
        if (s_ != MGRAD_OK) {                                                  \
            fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, \
                    #call, mgrad_status_string(s_), mgrad_context_last_error(ctx)); \
            return EXIT_FAILURE;                                               \
        }                                                                      \
    } while (0)

enum { SIDE = 28, CLASSES = 10 };

/* Generated stand-in: class c is a bright horizontal bar at rows 2c..2c+3
   (plus noise), so a small CNN learns it within a few dozen steps. */
static mgrad_status synthetic(mgrad_dataset **out, mgrad_context *ctx, int64_t n,
                              unsigned seed)
{
    int64_t shape[3] = {1, SIDE, SIDE};
    float *x = malloc((size_t)n * SIDE * SIDE * sizeof *x);
    int32_t *y = malloc((size_t)n * sizeof *y);
    mgrad_status s = MGRAD_ERR_NOMEM;
    if (x != NULL && y != NULL) {
        srand(seed);
        for (int64_t i = 0; i < n; i++) {
            y[i] = rand() % CLASSES;
            for (int p = 0; p < SIDE * SIDE; p++) {
                int row = p / SIDE;
                float bar = row >= 2 * y[i] + 2 && row < 2 * y[i] + 6 ? 1.0f : 0.0f;
                x[i * SIDE * SIDE + p] = bar + 0.3f * ((float)rand() / (float)RAND_MAX);
            }
        }
        s = mgrad_dataset_create(out, ctx, n, 3, shape, MGRAD_DTYPE_F32, x);
        if (s == MGRAD_OK) s = mgrad_dataset_set_labels(*out, y, n, CLASSES);
    }
    free(x);
    free(y);
    return s;
}

int main(int argc, char **argv)
{
    int64_t n_train = 2048, n_val = 512, steps = 200, batch = 64;
    int64_t train_flag = 0, steps_flag = 0, batch_flag = 0; /* 0: the mode's default */
    int quick = 0, use_synthetic = 0;
    const app_flag flags[] = {
        {"--quick", APP_FLAG_SWITCH, &quick, NULL, "a few steps on 256 images (seconds)", 0, 0},
        {"--synthetic", APP_FLAG_SWITCH, &use_synthetic, NULL,
         "generated images even when Fashion-MNIST is installed", 0, 0},
        {"--train", APP_FLAG_INT, &train_flag, "N", "training images", 1, 50000},
        {"--steps", APP_FLAG_INT, &steps_flag, "T", "training steps", 1, 100000},
        {"--batch", APP_FLAG_INT, &batch_flag, "B", "batch size, at most N", 1, 50000},
    };
    const app_cmdline cmd = {"Train a small ResNet and compute the metagradient of its "
                             "validation loss with respect to every training example's weight.",
                             flags, (int)(sizeof flags / sizeof *flags), NULL, 0};
    int rc = app_parse_flags(&cmd, argc, argv);
    if (rc != APP_FLAGS_RUN) return rc;
    if (quick) {
        n_train = 256;
        n_val = 128;
        steps = 12;
        batch = 16;
    }
    if (train_flag) n_train = train_flag;
    if (steps_flag) steps = steps_flag;
    if (batch_flag) batch = batch_flag;
    if (batch > n_train) return app_usage_error(&cmd, argv[0], "need --batch at most --train");

    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = MGRAD_DTYPE_F32;
    co.seed = 1;
    mgrad_context *ctx = NULL;
    if (mgrad_context_create(&ctx, &co) != MGRAD_OK) return EXIT_FAILURE;

    /* ---- data: a training subset and a validation split ---- */
    mgrad_dataset *train = NULL, *val = NULL;
    const char *source = "Fashion-MNIST";
    mgrad_dataset *all = NULL;
    if (!use_synthetic && mgrad_dataset_load_fashion_mnist(&all, ctx, "train", NULL) != MGRAD_OK) {
        fprintf(stderr, "note: %s\n      using generated images instead\n",
                mgrad_context_last_error(ctx));
        use_synthetic = 1;
    }
    if (use_synthetic) {
        source = "generated bars";
        CHECK(synthetic(&train, ctx, n_train, 1));
        CHECK(synthetic(&val, ctx, n_val, 2));
    } else {
        int64_t *rows = malloc((size_t)(n_train + n_val) * sizeof *rows);
        if (rows == NULL) return EXIT_FAILURE;
        for (int64_t i = 0; i < n_train + n_val; i++) rows[i] = i;
        CHECK(mgrad_dataset_subset(&train, all, rows, n_train));
        CHECK(mgrad_dataset_subset(&val, all, rows + n_train, n_val));
        free(rows);
        mgrad_dataset_destroy(all);
        /* standardise both with the training set's statistics */
        CHECK(mgrad_dataset_normalize(val, train, MGRAD_NORMALIZE_GLOBAL));
        CHECK(mgrad_dataset_normalize(train, NULL, MGRAD_NORMALIZE_GLOBAL));
    }

    /* ---- the model ---- */
    mgrad_model *model = NULL;
    int64_t shape[3] = {1, SIDE, SIDE}, params = 0;
    CHECK(mgrad_model_create(&model, ctx, 3, shape));
    CHECK(mgrad_model_add_conv2d(model, 8, 3, 1, 1, MGRAD_INIT_DEFAULT));
    CHECK(mgrad_model_add_batch_norm(model, 1e-5));
    CHECK(mgrad_model_add_activation(model, MGRAD_ACTIVATION_RELU));
    CHECK(mgrad_model_add_resnet_block(model, 8, 1));
    CHECK(mgrad_model_add_resnet_block(model, 16, 2));
    CHECK(mgrad_model_add_avg_pool(model, 2, 2));
    CHECK(mgrad_model_add_global_avg_pool(model));
    CHECK(mgrad_model_add_dense(model, CLASSES, MGRAD_INIT_DEFAULT));
    CHECK(mgrad_model_add_scale(model, 0.5));
    CHECK(mgrad_model_num_params(model, &params));

    /* ---- train, then the metagradient of φ w.r.t. the data weights ---- */
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = steps;
    o.batch_size = batch;
    o.lr = 0.05;
    o.momentum = 0.9;
    o.weight_decay = 5e-4;
    o.validation = val;
    mgrad_run *run = NULL;
    mgrad_meta *weights = NULL;
    CHECK(mgrad_run_create(&run, model, train, &o));
    mgrad_meta_options mo = MGRAD_META_OPTIONS_INIT;
    CHECK(mgrad_run_add_meta(&weights, run, MGRAD_META_DATA_WEIGHTS, &mo));

    double phi = 0, accuracy = 0;
    CHECK(mgrad_run_train(run, &phi));
    CHECK(mgrad_run_evaluate(run, val, NULL, &accuracy));
    CHECK(mgrad_run_reverse(run));
    mgrad_run_stats st = MGRAD_RUN_STATS_INIT;
    CHECK(mgrad_run_get_stats(run, &st));

    double *g = malloc((size_t)n_train * sizeof *g);
    if (g == NULL) return EXIT_FAILURE;
    CHECK(mgrad_meta_get_grad(weights, MGRAD_DTYPE_F64, g, n_train));

    double images = (double)steps * (double)batch;
    printf("small ResNet (%lld parameters) on %s: %lld training images, %lld steps of %lld\n",
           (long long)params, source, (long long)n_train, (long long)steps, (long long)batch);
    printf("validation loss phi = %.4f, accuracy = %.1f%%\n", phi, 100 * accuracy);
    printf("training:      %8.1f images/s (%.2f s)\n", images / st.seconds_forward,
           st.seconds_forward);
    printf("metagradient:  %8.1f images/s (%.2f s for the reverse pass)\n",
           images / st.seconds_reverse, st.seconds_reverse);
    int64_t lo = 0, hi = 0;
    for (int64_t i = 1; i < n_train; i++) {
        if (g[i] < g[lo]) lo = i;
        if (g[i] > g[hi]) hi = i;
    }
    printf("dphi/dw: most helpful example %lld (%+.3e), most harmful %lld (%+.3e)\n",
           (long long)lo, g[lo], (long long)hi, g[hi]);

    free(g);
    mgrad_run_destroy(run);
    mgrad_model_destroy(model);
    mgrad_dataset_destroy(train);
    mgrad_dataset_destroy(val);
    mgrad_context_destroy(ctx);
    return EXIT_SUCCESS;
}
