/*
 * use_metagrad.c - a caller that knows libmetagrad only through its
 * installed headers and pkg-config file (tests/pkgconfig/check_pkgconfig.sh):
 * a two-layer MLP, a learning-rate schedule metaparameter, train, reverse.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <metagrad.h>

#define CHECK(call)                                                              \
    do {                                                                         \
        mgrad_status s_ = (call);                                                \
        if (s_ != MGRAD_OK) {                                                    \
            fprintf(stderr, "%s: %s (%s)\n", #call, mgrad_status_string(s_),     \
                    mgrad_context_last_error(ctx));                              \
            return 1;                                                            \
        }                                                                        \
    } while (0)

enum { N = 16, F = 3, C = 2, T = 4 };

int main(void)
{
    mgrad_context *ctx = NULL;
    mgrad_model *model = NULL;
    mgrad_dataset *data = NULL;
    mgrad_run *run = NULL;
    mgrad_meta *lr = NULL;
    double x[N * F], phi = 0, g[T];
    int32_t y[N];
    int64_t shape[1] = {F};

    if (mgrad_version_number() != MGRAD_VERSION_NUMBER ||
        strcmp(mgrad_version_string(), "") == 0) {
        fprintf(stderr, "installed header and library disagree on the version\n");
        return 1;
    }
    /* inputs in [-1, 1) without libm: only pkg-config's flags are linked */
    for (int i = 0; i < N * F; i++) x[i] = (double)((i * 37 + 11) % 64) / 32.0 - 1.0;
    for (int i = 0; i < N; i++) y[i] = x[i * F] > 0;

    CHECK(mgrad_context_create(&ctx, NULL));
    CHECK(mgrad_model_create(&model, ctx, 1, shape));
    CHECK(mgrad_model_add_dense(model, 4, MGRAD_INIT_DEFAULT));
    CHECK(mgrad_model_add_activation(model, MGRAD_ACTIVATION_TANH));
    CHECK(mgrad_model_add_dense(model, C, MGRAD_INIT_DEFAULT));
    CHECK(mgrad_dataset_create(&data, ctx, N, 1, shape, MGRAD_DTYPE_F64, x));
    CHECK(mgrad_dataset_set_labels(data, y, N, C));

    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = T;
    o.batch_size = 4;
    o.validation = data;
    CHECK(mgrad_run_create(&run, model, data, &o));
    CHECK(mgrad_run_add_meta(&lr, run, MGRAD_META_LR_SCHEDULE, NULL));
    CHECK(mgrad_run_train(run, &phi));
    CHECK(mgrad_run_reverse(run));
    CHECK(mgrad_meta_get_grad(lr, MGRAD_DTYPE_F64, g, T));
    for (int t = 0; t < T; t++)
        if (!isfinite(g[t])) {
            fprintf(stderr, "dphi/deta[%d] is not finite\n", t);
            return 1;
        }
    printf("libmetagrad %s via pkg-config: phi = %.6f, dphi/deta_0 = %.6f\n",
           mgrad_version_string(), phi, g[0]);

    mgrad_run_destroy(run);
    mgrad_dataset_destroy(data);
    mgrad_model_destroy(model);
    mgrad_context_destroy(ctx);
    return 0;
}
