/*
 * metagrad/score.h - scoring metaparameter values: retrain from scratch over
 * several seeds and report the loss and accuracy on evaluation sets as mean
 * ± standard deviation, with the value of every retraining.
 *
 * This is what every application does after metagradient descent (or any
 * other method) has chosen metaparameter values: data weights, an LR
 * schedule, poisoned inputs, ... are judged by training fresh models with
 * seeds the method never saw.  Plain training only: no metagradient is
 * computed, and the runs are destroyed before the call returns.
 *
 * Retraining s (s = 0 … seeds − 1) with seed_s = seed_list[s], or
 * first_seed + s when seed_list is NULL:
 *     1. a fresh run (mgrad_run_create) of `model` on `train` with the run
 *        options, where, when asked (the defaults):
 *          θ0           = the model's initialisers drawn with seed_s
 *                         (mgrad_model_init_params(model, seed_s)),
 *          shuffle_seed = seed_s XOR MGRAD_SCORE_SHUFFLE_MIX, so that θ0 and
 *                         the batch order of a retraining come from
 *                         different seeds;
 *     2. each setting in order: mgrad_run_add_meta(kind, options), then
 *        mgrad_meta_set_value(dtype, values, count);
 *     3. mgrad_run_train;
 *     4. mgrad_run_evaluate on every evaluation set: loss and accuracy.
 * Each step is the public call named, with the caller's arguments, so a
 * retraining is bit-identical to the same calls made by hand.  Dropout masks
 * come from the context's seed (metagrad/model.h), not from seed_s.
 *
 * Statistics over the n = seeds retrainings, in seed order: the mean
 * (Σ x_s) / n, and the sample standard deviation sqrt(Σ (x_s − mean)² /
 * (n − 1)), 0 when n = 1.  Accuracy is NaN for losses that have none
 * (squared error, next-token), and so are its mean and deviation.
 *
 * The validation set: run_opts->validation as given; NULL (plain runs)
 * is fine, since the scores do not use φ.
 *
 * Typical use (test accuracy of data weights w over 5 seeds):
 *     mgrad_score_setting w_set = {MGRAD_META_DATA_WEIGHTS, NULL,
 *                                  MGRAD_DTYPE_F64, w, n};
 *     mgrad_score_options so = MGRAD_SCORE_OPTIONS_INIT;
 *     mgrad_score res = MGRAD_SCORE_INIT;
 *     so.seeds = 5; so.first_seed = 1000; so.settings = &w_set; so.num_settings = 1;
 *     mgrad_score_run(model, train, &run_opts, &so, &test, 1, &res, NULL);
 *     printf("%.2f%% ± %.2f%%\n", 100 * res.accuracy_mean, 100 * res.accuracy_std);
 *
 * Thread safety: as the model's context.
 */
#ifndef METAGRAD_SCORE_H
#define METAGRAD_SCORE_H

#include "meta.h"

#ifdef __cplusplus
extern "C" {
#endif

/** XORed into a retraining's seed to give its shuffle seed. */
#define MGRAD_SCORE_SHUFFLE_MIX 0x5bd1e995UL

/**
 * A metaparameter value applied to every retraining: registered with
 * mgrad_run_add_meta(kind, options) and set with
 * mgrad_meta_set_value(dtype, values, count).  Arrays are read during the
 * call only.
 */
typedef struct mgrad_score_setting {
    mgrad_meta_kind kind;               /**< any kind (metagrad/meta.h) */
    const mgrad_meta_options *options;  /**< NULL: the defaults */
    mgrad_dtype dtype;                  /**< of `values` */
    const void *values;                 /**< the value, `count` entries */
    int64_t count;                      /**< the metaparameter's size */
} mgrad_score_setting;

#define MGRAD_SCORE_OPTIONS_VERSION 1

/**
 * Options of mgrad_score_run.  Initialise with MGRAD_SCORE_OPTIONS_INIT or
 * mgrad_score_options_init(); fields are only ever appended.
 */
typedef struct mgrad_score_options {
    uint32_t version;      /**< MGRAD_SCORE_OPTIONS_VERSION */
    int32_t seeds;         /**< retrainings n, 1 to 100000; default 5 */
    uint64_t first_seed;   /**< seed_s = first_seed + s; default 0 */
    /** [seeds] the seed of each retraining, read during the call; NULL
        (default): first_seed + s. */
    const uint64_t *seed_list;
    /** 1 (default): θ0 of retraining s = mgrad_model_init_params(seed_s);
        0: the model's θ0 as it is, for every retraining. */
    int32_t redraw_init;
    /** 1 (default): shuffle_seed = seed_s XOR MGRAD_SCORE_SHUFFLE_MIX;
        0: run_opts->shuffle_seed (or run_opts->batches) for every
        retraining.  A run with explicit batches needs 0. */
    int32_t redraw_order;
    const mgrad_score_setting *settings; /**< [num_settings]; NULL (default): none */
    int32_t num_settings;                /**< default 0 */
} mgrad_score_options;

#define MGRAD_SCORE_OPTIONS_INIT { MGRAD_SCORE_OPTIONS_VERSION, 5, 0, NULL, 1, 1, NULL, 0 }

/** Fill `opts` with the defaults.  MGRAD_ERR_NULL, MGRAD_ERR_VERSION. */
MGRAD_API mgrad_status mgrad_score_options_init(mgrad_score_options *opts,
                                                uint32_t version);

#define MGRAD_SCORE_VERSION 1

/**
 * The score on one evaluation set.  An output struct: set `version`
 * (MGRAD_SCORE_INIT) before the call; fields are only ever appended.
 */
typedef struct mgrad_score {
    uint32_t version;     /**< MGRAD_SCORE_VERSION */
    int32_t n;            /**< retrainings */
    double loss_mean;     /**< mean loss (weighted by the set's weights) */
    double loss_std;      /**< sample standard deviation (n − 1); 0 when n = 1 */
    double accuracy_mean; /**< mean accuracy in [0, 1]; NaN without accuracy */
    double accuracy_std;  /**< as loss_std */
} mgrad_score;

#define MGRAD_SCORE_INIT { MGRAD_SCORE_VERSION, 0, 0.0, 0.0, 0.0, 0.0 }

/**
 * Retrain `model` from scratch on `train` once per seed, with the run
 * options and the settings, and score θ_T on each evaluation set (the
 * procedure is at the top of this header).
 *
 * @param model     the model; with redraw_init its θ0 is redrawn before
 *                  each run is created and restored right after (bit for
 *                  bit: the model keeps θ0 in double), also on failure.
 * @param train     the training set.
 * @param run_opts  the run options of every retraining (validation may be
 *                  NULL: plain runs).
 * @param opts      NULL for the defaults.
 * @param eval      [num_eval >= 1] evaluation sets.
 * @param[out] out  [num_eval] scores, each with its version set.
 * @param[out] per_seed  NULL, or [num_eval × seeds × 2]: for set e and
 *                  retraining s, per_seed[2 (e seeds + s)] is the loss and
 *                  the next entry the accuracy.
 * Every retraining is validated before any training: the run options, the
 * evaluation sets (mgrad_run_check_dataset) and the settings are tried on a
 * run that is never trained.  On failure the message names the retraining
 * or the setting, the model has its θ0 back, and `out` and `per_seed` are
 * unchanged.
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_VERSION (opts or an out);
 *         MGRAD_ERR_INVALID (seeds out of range, redraw flags not 0 or 1,
 *         num_eval < 1, num_settings < 0, redraw_order with explicit
 *         batches, an INITIAL_PARAMS setting with redraw_init, an evaluation
 *         set of another context); the statuses of mgrad_run_create,
 *         mgrad_run_check_dataset, mgrad_run_add_meta, mgrad_meta_set_value,
 *         mgrad_run_train (MGRAD_ERR_NONFINITE: a retraining diverged) and
 *         mgrad_run_evaluate; MGRAD_ERR_NOMEM.
 */
MGRAD_API mgrad_status mgrad_score_run(mgrad_model *model, mgrad_dataset *train,
                                       const mgrad_run_options *run_opts,
                                       const mgrad_score_options *opts,
                                       const mgrad_dataset *const *eval, int32_t num_eval,
                                       mgrad_score *out, double *per_seed);

#ifdef __cplusplus
}
#endif

#endif /* METAGRAD_SCORE_H */
