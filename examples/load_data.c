/*
 * load_data.c - the usage example of include/metagrad/data.h as a program:
 * load Fashion-MNIST, split off a validation set, standardise with the
 * training set's statistics, and print what was loaded.
 *
 * Exits 77 (skipped) when the dataset is not installed
 * (apt-get install dataset-fashion-mnist).
 */
#include <stdio.h>
#include <stdlib.h>

#include <metagrad.h>

#include "common/flags.h"

int main(int argc, char **argv)
{
    const app_cmdline cmd = {"Load Fashion-MNIST, split off a validation set, standardise, and "
                             "print what was loaded.",
                             NULL, 0, NULL, 0};
    int rc = app_parse_flags(&cmd, argc, argv);
    if (rc != APP_FLAGS_RUN) return rc;
    mgrad_context *ctx = NULL;
    mgrad_dataset *all = NULL, *train = NULL, *val = NULL, *test = NULL;
    if (mgrad_context_create(&ctx, NULL) != MGRAD_OK) return EXIT_FAILURE;
    mgrad_status s = mgrad_dataset_load_fashion_mnist(&all, ctx, "train", NULL);
    if (s == MGRAD_ERR_IO) {
        fprintf(stderr, "skipped: %s\n", mgrad_context_last_error(ctx));
        mgrad_context_destroy(ctx);
        return 77;
    }
    if (s != MGRAD_OK ||
        (s = mgrad_dataset_split(&train, &val, all, 50000, 42)) != MGRAD_OK ||
        (s = mgrad_dataset_load_fashion_mnist(&test, ctx, "test", NULL)) != MGRAD_OK ||
        (s = mgrad_dataset_normalize(val, train, MGRAD_NORMALIZE_GLOBAL)) != MGRAD_OK ||
        (s = mgrad_dataset_normalize(test, train, MGRAD_NORMALIZE_GLOBAL)) != MGRAD_OK ||
        (s = mgrad_dataset_normalize(train, NULL, MGRAD_NORMALIZE_GLOBAL)) != MGRAD_OK) {
        fprintf(stderr, "%s: %s\n", mgrad_status_string(s), mgrad_context_last_error(ctx));
        return EXIT_FAILURE;
    }
    mgrad_dataset *sets[3] = {train, val, test};
    const char *names[3] = {"train", "validation", "test"};
    for (int k = 0; k < 3; k++) {
        int64_t n = 0, shape[3] = {0};
        int32_t ndim = 0, classes = 0;
        mgrad_dataset_size(sets[k], &n);
        mgrad_dataset_shape(sets[k], &ndim, shape);
        mgrad_dataset_num_classes(sets[k], &classes);
        float first[4];
        float *x = malloc(sizeof(float) * (size_t)n * 784);
        if (x == NULL) return EXIT_FAILURE;
        mgrad_dataset_get_inputs(sets[k], MGRAD_DTYPE_F32, x, n * 784);
        double mean = 0;
        for (int64_t i = 0; i < n * 784; i++) mean += x[i];
        for (int j = 0; j < 4; j++) first[j] = x[j];
        printf("%-10s %6lld examples of shape %lldx%lldx%lld, %d classes, mean input %+.4f "
               "(first values %.3f %.3f %.3f %.3f)\n", names[k], (long long)n,
               (long long)shape[0], (long long)shape[1], (long long)shape[2], (int)classes,
               mean / (double)(n * 784), first[0], first[1], first[2], first[3]);
        free(x);
    }
    mgrad_dataset_destroy(all);
    mgrad_dataset_destroy(train);
    mgrad_dataset_destroy(val);
    mgrad_dataset_destroy(test);
    mgrad_context_destroy(ctx);
    return EXIT_SUCCESS;
}
