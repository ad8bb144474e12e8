/*
 * apputil.h - shared plumbing of the application examples (not part of the
 * library): Fashion-MNIST loading with a helpful message, datasets from
 * arrays, the default model, scoring by retraining with fresh seeds
 * (mgrad_score_run), statistics, and the result files (CSV and a JSON
 * summary; examples/python/plot_results.py draws the figures from them).
 */
#ifndef EXAMPLES_APPUTIL_H
#define EXAMPLES_APPUTIL_H

#include <metagrad.h>
#include <metagrad/score.h>
#include <stdio.h>

/* Print the failing call's message and return from main with failure. */
#define APP_CHECK(ctx, call)                                                       \
    do {                                                                           \
        mgrad_status s_ = (call);                                                  \
        if (s_ != MGRAD_OK) {                                                      \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__,                 \
                    mgrad_status_string(s_), mgrad_context_last_error(ctx));       \
            return 1;                                                              \
        }                                                                          \
    } while (0)

/* The applications' models: the default MLP, or the small ResNet of
   examples/small_resnet.c for the CNN-scale configurations (--cnn). */
typedef enum app_model_kind {
    APP_MODEL_MLP = 0, /* 784-hidden-10, tanh */
    APP_MODEL_RESNET   /* conv-BN-ReLU stem of `hidden` channels, a resnet block of
                          `hidden`, one of 2·hidden with stride 2, 2x2 average
                          pooling, dense 10 on the 2·hidden×7×7 values, scaled
                          by 0.5 */
} app_model_kind;

/* The training setup shared by an application's inner runs and its final
   retrainings. */
typedef struct app_train {
    int64_t steps, batch;
    double lr, momentum;
    int hidden;           /* MLP hidden width; the ResNet's stem channels */
    app_model_kind model; /* zero: the MLP */
    double weight_decay;  /* zero: none */
} app_train;

/* Exit code of a skipped test (meson). */
#define APP_EXIT_SKIP 77

/* 0 when the Fashion-MNIST files are installed (APP_FMNIST_DIR, by default
   the library's MGRAD_FASHION_MNIST_DIR); otherwise prints how to install
   them and returns APP_EXIT_SKIP, for main to return. */
int app_require_fmnist(const char *program);

/* Load the Fashion-MNIST split ("train" or "test") scaled to [0, 1].
   Returns 0, or prints how to install the data and returns 1. */
int app_load_fmnist(mgrad_context *ctx, const char *split, mgrad_dataset **out);

/* The start every Fashion-MNIST application shares: prepare the --out
   directory, check that the data are installed, create a context (default
   options) and load the training split (*all) and the test split (*test).
   Returns 0 to go on, else the exit status for main: 2 (bad --out),
   APP_EXIT_SKIP (no data), 1 (a failure). */
int app_start_fmnist(const char *program, const char *out, mgrad_context **ctx,
                     mgrad_dataset **all, mgrad_dataset **test);

/* A dataset from rows of `src`, with labels replaced by `labels` (NULL:
   keep) and inputs by `inputs` (NULL: keep; n × 784 floats). */
int app_dataset_from(mgrad_context *ctx, const mgrad_dataset *src, const int64_t *rows,
                     int64_t n, const int32_t *labels, const float *inputs,
                     mgrad_dataset **out);

/* The model of cfg (cfg->model, width cfg->hidden), θ0 drawn from `seed`. */
int app_model(mgrad_context *ctx, const app_train *cfg, uint64_t seed, mgrad_model **out);

/* "MLP 784-128-10 (tanh)" or "small ResNet (8/16 channels)": for the
   programs' headers; a static buffer. */
const char *app_model_name(const app_train *cfg);

/* Most retrainings app_score takes (the programs' --seeds range). */
#define APP_MAX_SEEDS 16

/* Test accuracy of the default model trained from scratch on `train` with
   `cfg` (per-step rates lr_schedule, or NULL for cfg->lr): mean and sample
   std over `seeds` retrainings, retraining s with seed
   seed_mult · (s + seed_offset) (seeds no method saw) for θ0 and, XORed
   with MGRAD_SCORE_SHUFFLE_MIX, the batch order (mgrad_score_run). */
int app_score(mgrad_context *ctx, const app_train *cfg, mgrad_dataset *train,
              const mgrad_dataset *test, uint64_t seed_mult, int seed_offset, int seeds,
              const double *lr_schedule, double *mean, double *std);

/* Most evaluation sets app_score_sets takes. */
#define APP_MAX_EVAL 8

/* As app_score, scoring the same retrainings on each of `neval` evaluation
   sets: mean[e] and std[e] are the test accuracy on eval[e] (one
   mgrad_score_run, so every set sees the same trained models), and unless
   per_seed is NULL, per_seed[e * seeds + s] that of retraining s. */
int app_score_sets(mgrad_context *ctx, const app_train *cfg, mgrad_dataset *train,
                   const mgrad_dataset *const *eval, int neval, uint64_t seed_mult,
                   int seed_offset, int seeds, const double *lr_schedule, double *mean,
                   double *std, double *per_seed);

/* Disjoint random rows of `all` (seeded): train, target and held-out sets. */
int app_splits(mgrad_context *ctx, const mgrad_dataset *all, int64_t ntrain,
               int64_t ntarget, int64_t nheldout, uint64_t seed, mgrad_dataset **train,
               mgrad_dataset **target, mgrad_dataset **heldout);

/* A run of the default model on `train` with `cfg`, φ on `validation`;
   θ0 from `seed`, batch order from shuffle_seed. */
int app_run(mgrad_context *ctx, const app_train *cfg, mgrad_dataset *train,
            const mgrad_dataset *validation, uint64_t seed, uint64_t shuffle_seed,
            const double *lr_schedule, mgrad_model **model, mgrad_run **run);

/* MGD progress hook (mgrad_mgd_set_progress with user_data = a double
   array of 2 × meta-steps): prints the step, records φ and the held-out
   score. */
int app_progress(int64_t step, double phi, double score, double seconds, void *log);

/* Write what app_progress recorded into DIR/NAME as a CSV
   (meta_step,target_loss,heldout_loss); returns 0, or -1 after perror. */
int app_write_progress(const char *dir, const char *name, const double *log, int steps);

void app_mean_std(const double *x, int n, double *mean, double *std);

/* The applications' random numbers: splitmix64 from a fixed seed per
   program, so that a program draws the same numbers on every machine. */
typedef struct app_rng {
    uint64_t state;
} app_rng;

/* Uniform in [0, 1), 53 bits. */
double app_urand(app_rng *rng);

/* Fisher-Yates shuffle of a[0 .. n-1] with draws from `rng`. */
void app_shuffle(app_rng *rng, int64_t *a, int64_t n);

/* k distinct indices in [0, n) into out[k]: each a uniform draw moved to the
   next free index (wrapping) when taken.  k <= n. */
void app_draw_distinct(app_rng *rng, int64_t n, int64_t k, int64_t *out);

/* Make DIR and its parents if missing and check that files can be created
   in it, so that a bad --out fails before the computation rather than after;
   prints why not to stderr and returns -1. */
int app_prepare_out(const char *dir);

/* After writing the outputs FILES (for the message) into DIR: "wrote ..." when
   failures == 0, else a line naming the directory (perror said why).
   Returns the program's exit status: 0, or 1 when something was not
   written. */
int app_outputs_done(const char *dir, const char *files, int failures);

/* Write a CSV (header + rows of doubles); returns 0 or -1. */
int app_write_csv(const char *path, const char *header, const double *rows, int nrows,
                  int ncols);

/* Write a CSV whose first column is a name: the header, then per row
   names[r] and ncols doubles.  Names must need no quoting (no comma or
   quote).  Returns 0, or -1 after perror. */
int app_write_named_csv(const char *path, const char *header, const char *const *names,
                        const double *rows, int nrows, int ncols);

/* A number of the JSON summary. */
typedef struct app_number {
    const char *key;
    double value;
} app_number;

/* Write the JSON summary of a program's results to PATH (MODE names the
   configuration: "full", "quick", "smoke", or the data used):
     {"program": P, "mode": M, KEY: VALUE for each of fields,
      "results": [{"name": names[k], "test_accuracy_mean": mean[k],
                   "test_accuracy_std": sd[k]}, ...]}
   ("results" only when n > 0; a non-finite number is written as null).
   Names and keys must need no escaping.  Returns 0, or -1 after perror. */
int app_write_summary(const char *path, const char *program, const char *mode,
                      const app_number *fields, int nfields, const char *const *names,
                      const double *mean, const double *sd, int n);

/* As app_write_summary, for results that are not accuracies: each result is
   {"name": names[k], columns[c]: values[k * ncolumns + c] for each c}.
   Returns 0, or -1 after perror. */
int app_write_summary_columns(const char *path, const char *program, const char *mode,
                              const app_number *fields, int nfields, const char *const *names,
                              int n, const char *const *columns, int ncolumns,
                              const double *values);

#endif
