/*
 * test_api_init.c - every *_OPTIONS_INIT macro equals what its
 * *_options_init() function fills in, field by field (padding bytes are not
 * compared), and the init functions refuse NULL and unknown versions.
 *
 * Linked against the public shared library only: it also shows that a
 * program using nothing but the installed headers links and runs.
 */
#include <check.h>
#include <string.h>

#include "metagrad.h"

Suite *make_suite(void);

/* Fill with a pattern no default has, so that unset fields show. */
#define SCRIBBLE(s) memset(&(s), 0xA5, sizeof(s))

/* init_fn refuses a NULL struct and the version after `version`, and leaves
   the scribbled f as it was; before_ keeps that pattern for further checks. */
#define EXPECT_INIT_REFUSALS(type, init_fn, version, f)                                        \
    SCRIBBLE(f);                                                                               \
    type before_ = (f);                                                                        \
    ck_assert_int_eq(init_fn(NULL, (version)), MGRAD_ERR_NULL);                                \
    ck_assert_int_eq(init_fn(&(f), (version) + 1), MGRAD_ERR_VERSION);                         \
    ck_assert(memcmp(&(f), &before_, sizeof(f)) == 0)

START_TEST(test_context_options)
{
    mgrad_context_options m = MGRAD_CONTEXT_OPTIONS_INIT, f;
    SCRIBBLE(f);
    ck_assert_int_eq(mgrad_context_options_init(&f, MGRAD_CONTEXT_OPTIONS_VERSION), MGRAD_OK);
    ck_assert_uint_eq(m.version, MGRAD_CONTEXT_OPTIONS_VERSION);
    ck_assert_uint_eq(f.version, m.version);
    ck_assert_int_eq(f.dtype, m.dtype);
    ck_assert_int_eq(f.threads, m.threads);
    ck_assert_uint_eq(f.seed, m.seed);
    ck_assert(f.malloc_fn == m.malloc_fn);
    ck_assert(f.free_fn == m.free_fn);
    ck_assert_ptr_eq(f.alloc_user_data, m.alloc_user_data);
    ck_assert(f.log_fn == m.log_fn);
    ck_assert_ptr_eq(f.log_user_data, m.log_user_data);
    ck_assert_int_eq(f.log_level, m.log_level);
    /* The documented defaults. */
    ck_assert_int_eq(m.dtype, MGRAD_DTYPE_F32);
    ck_assert_int_eq(m.log_level, MGRAD_LOG_WARNING);

    EXPECT_INIT_REFUSALS(mgrad_context_options, mgrad_context_options_init,
                         MGRAD_CONTEXT_OPTIONS_VERSION, f);
    ck_assert_int_eq(mgrad_context_options_init(&f, 0), MGRAD_ERR_VERSION);
    ck_assert(memcmp(&f, &before_, sizeof f) == 0);
}
END_TEST

START_TEST(test_run_options)
{
    mgrad_run_options m = MGRAD_RUN_OPTIONS_INIT, f;
    SCRIBBLE(f);
    ck_assert_int_eq(mgrad_run_options_init(&f, MGRAD_RUN_OPTIONS_VERSION), MGRAD_OK);
    ck_assert_uint_eq(m.version, MGRAD_RUN_OPTIONS_VERSION);
    ck_assert_uint_eq(f.version, m.version);
    ck_assert_int_eq(f.steps, m.steps);
    ck_assert_int_eq(f.batch_size, m.batch_size);
    ck_assert_ptr_eq(f.batches, m.batches);
    ck_assert_uint_eq(f.shuffle_seed, m.shuffle_seed);
    ck_assert_int_eq(f.loss, m.loss);
    ck_assert(f.label_smoothing == m.label_smoothing);
    ck_assert_int_eq(f.optimizer, m.optimizer);
    ck_assert(f.lr == m.lr);
    ck_assert_ptr_eq(f.lr_schedule, m.lr_schedule);
    ck_assert(f.momentum == m.momentum);
    ck_assert_int_eq(f.nesterov, m.nesterov);
    ck_assert(f.weight_decay == m.weight_decay);
    ck_assert(f.beta1 == m.beta1);
    ck_assert(f.beta2 == m.beta2);
    ck_assert(f.eps == m.eps);
    ck_assert(f.eps_root == m.eps_root);
    ck_assert_ptr_eq(f.validation, m.validation);
    ck_assert_int_eq(f.checkpoint, m.checkpoint);
    ck_assert_int_eq(f.checkpoint_slots, m.checkpoint_slots);
    ck_assert_int_eq(f.checkpoint_k, m.checkpoint_k);
    ck_assert_uint_eq(f.checkpoint_budget_bytes, m.checkpoint_budget_bytes);
    ck_assert_ptr_eq(f.spill_dir, m.spill_dir);
    /* The documented defaults (torch.optim's). */
    ck_assert(m.lr == 0.1);
    ck_assert(m.beta1 == 0.9);
    ck_assert(m.beta2 == 0.999);
    ck_assert(m.eps == 1e-8);
    ck_assert_int_eq(m.loss, MGRAD_LOSS_CROSS_ENTROPY);
    ck_assert_int_eq(m.optimizer, MGRAD_OPTIMIZER_SGD);

    EXPECT_INIT_REFUSALS(mgrad_run_options, mgrad_run_options_init, MGRAD_RUN_OPTIONS_VERSION,
                         f);
}
END_TEST

START_TEST(test_meta_options)
{
    mgrad_meta_options m = MGRAD_META_OPTIONS_INIT, f;
    SCRIBBLE(f);
    ck_assert_int_eq(mgrad_meta_options_init(&f, MGRAD_META_OPTIONS_VERSION), MGRAD_OK);
    ck_assert_uint_eq(m.version, MGRAD_META_OPTIONS_VERSION);
    ck_assert_uint_eq(f.version, m.version);
    ck_assert_int_eq(f.step_begin, m.step_begin);
    ck_assert_int_eq(f.step_end, m.step_end);
    ck_assert_int_eq(f.step, m.step);
    ck_assert_ptr_eq(f.pool, m.pool);
    ck_assert_ptr_eq(f.rows, m.rows);
    ck_assert_int_eq(f.num_rows, m.num_rows);
    ck_assert_int_eq(m.step_end, -1);
    ck_assert_int_eq(m.step, -1);

    EXPECT_INIT_REFUSALS(mgrad_meta_options, mgrad_meta_options_init,
                         MGRAD_META_OPTIONS_VERSION, f);
}
END_TEST

START_TEST(test_score_options)
{
    mgrad_score_options m = MGRAD_SCORE_OPTIONS_INIT, f;
    SCRIBBLE(f);
    ck_assert_int_eq(mgrad_score_options_init(&f, MGRAD_SCORE_OPTIONS_VERSION), MGRAD_OK);
    ck_assert_uint_eq(m.version, MGRAD_SCORE_OPTIONS_VERSION);
    ck_assert_uint_eq(f.version, m.version);
    ck_assert_int_eq(f.seeds, m.seeds);
    ck_assert_uint_eq(f.first_seed, m.first_seed);
    ck_assert_ptr_eq(f.seed_list, m.seed_list);
    ck_assert_int_eq(f.redraw_init, m.redraw_init);
    ck_assert_int_eq(f.redraw_order, m.redraw_order);
    ck_assert_ptr_eq(f.settings, m.settings);
    ck_assert_int_eq(f.num_settings, m.num_settings);

    EXPECT_INIT_REFUSALS(mgrad_score_options, mgrad_score_options_init,
                         MGRAD_SCORE_OPTIONS_VERSION, f);
}
END_TEST

START_TEST(test_run_stats_init)
{
    /* No init function: the macro alone must carry the version. */
    mgrad_run_stats s = MGRAD_RUN_STATS_INIT;
    ck_assert_uint_eq(s.version, MGRAD_RUN_STATS_VERSION);
    ck_assert_int_eq(s.steps_run, 0);
    ck_assert_int_eq(s.checkpoint, MGRAD_CHECKPOINT_STORE_ALL);
}
END_TEST

START_TEST(test_version_agrees)
{
    ck_assert_int_eq(mgrad_version_number(), MGRAD_VERSION_NUMBER);
    ck_assert_ptr_nonnull(mgrad_version_string());
    ck_assert_ptr_nonnull(mgrad_status_string(MGRAD_ERR_SHAPE));
    ck_assert_ptr_nonnull(mgrad_status_string((mgrad_status)-1000));
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("api_init");
    TCase *tc = tcase_create("options");
    tcase_add_test(tc, test_context_options);
    tcase_add_test(tc, test_run_options);
    tcase_add_test(tc, test_meta_options);
    tcase_add_test(tc, test_score_options);
    tcase_add_test(tc, test_run_stats_init);
    tcase_add_test(tc, test_version_agrees);
    suite_add_tcase(s, tc);
    return s;
}
