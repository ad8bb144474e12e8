/*
 * metagrad.h - libmetagrad, exact metagradients through training runs.
 *
 * Umbrella header: include this, or the one header per concern under
 * metagrad/.  Link with `pkg-config --libs metagrad`.
 *
 * Usage (examples/quickstart.c is this program, built and run by CI):
 *
 *     mgrad_context *ctx;  mgrad_model *m;  mgrad_dataset *tr, *va;
 *     mgrad_run *run;  mgrad_meta *lr;  double phi, g[100];
 *     int64_t shape[1] = {16};
 *     mgrad_context_create(&ctx, NULL);
 *     mgrad_model_create(&m, ctx, 1, shape);
 *     mgrad_model_add_dense(m, 32, MGRAD_INIT_DEFAULT);
 *     mgrad_model_add_activation(m, MGRAD_ACTIVATION_TANH);
 *     mgrad_model_add_dense(m, 4, MGRAD_INIT_DEFAULT);
 *     mgrad_dataset_create(&tr, ctx, n, 1, shape, MGRAD_DTYPE_F64, x);
 *     mgrad_dataset_set_labels(tr, y, n, 4);
 *     ... the same for the validation set va ...
 *     mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
 *     o.steps = 100; o.batch_size = 32; o.lr = 0.1; o.validation = va;
 *     mgrad_run_create(&run, m, tr, &o);
 *     mgrad_run_add_meta(&lr, run, MGRAD_META_LR_SCHEDULE, NULL);
 *     mgrad_run_train(run, &phi);          (φ = validation loss at θ_T)
 *     mgrad_run_reverse(run);              (dφ/dz for every metaparameter)
 *     mgrad_meta_get_grad(lr, MGRAD_DTYPE_F64, g, 100);
 *     mgrad_run_destroy(run); ... destroy the rest ...
 *
 * Every fallible call returns an mgrad_status; on failure
 * mgrad_context_last_error(ctx) says what to fix and nothing the caller owns
 * has been changed.
 */
#ifndef METAGRAD_H
#define METAGRAD_H

#include "metagrad/common.h"
#include "metagrad/context.h"
#include "metagrad/model.h"
#include "metagrad/dataset.h"
#include "metagrad/run.h"
#include "metagrad/meta.h"
#include "metagrad/callback.h"
#include "metagrad/mgd.h"
#include "metagrad/data.h"
#include "metagrad/smooth.h"
#include "metagrad/mpi.h"
#include "metagrad/score.h"

#endif /* METAGRAD_H */
