/*
 * test_base.c - context, errors, accounted allocation, counter RNG, dtype
 * conversion.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "base/rng.h"
#include "metagrad.h"

START_TEST(test_context_options)
{
    mgrad_context_options o;
    ck_assert_int_eq(mgrad_context_options_init(&o, MGRAD_CONTEXT_OPTIONS_VERSION), MGRAD_OK);
    mgrad_context_options d = MGRAD_CONTEXT_OPTIONS_INIT;
    /* field by field: padding bytes may differ */
    ck_assert_uint_eq(o.version, d.version);
    ck_assert_int_eq(o.dtype, d.dtype);
    ck_assert_int_eq(o.threads, d.threads);
    ck_assert_uint_eq(o.seed, d.seed);
    ck_assert(o.malloc_fn == d.malloc_fn && o.free_fn == d.free_fn);
    ck_assert(o.alloc_user_data == d.alloc_user_data && o.log_fn == d.log_fn);
    ck_assert(o.log_user_data == d.log_user_data && o.log_level == d.log_level);
    ck_assert_int_eq(mgrad_context_options_init(&o, 999), MGRAD_ERR_VERSION);
    ck_assert_int_eq(mgrad_context_options_init(NULL, 1), MGRAD_ERR_NULL);
    mgrad_context *ctx = (mgrad_context *)0x1;
    o.dtype = (mgrad_dtype)7;
    ck_assert_int_eq(mgrad_context_create(&ctx, &o), MGRAD_ERR_DTYPE);
    ck_assert_ptr_eq(ctx, (mgrad_context *)0x1);  /* untouched on failure */
    o.dtype = MGRAD_DTYPE_F64;
    o.threads = -1;
    ck_assert_int_eq(mgrad_context_create(&ctx, &o), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_context_create(NULL, NULL), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_context_create(&ctx, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_context_dtype(ctx), MGRAD_DTYPE_F32);
    ck_assert_str_eq(mgrad_context_last_error(ctx), "");
    mgrad_context_destroy(ctx);
    mgrad_context_destroy(NULL);
    ck_assert_str_eq(mgrad_context_last_error(NULL), "");
}
END_TEST

START_TEST(test_status_strings)
{
    for (int s = 0; s >= MGRAD_ERR_INTERNAL; s--) {
        const char *m = mgrad_status_string((mgrad_status)s);
        ck_assert_ptr_nonnull(m);
        ck_assert_str_ne(m, "unknown status");
    }
    ck_assert_str_eq(mgrad_status_string((mgrad_status)-999), "unknown status");
    ck_assert_int_eq(mgrad_version_number(), MGRAD_VERSION_NUMBER);
    ck_assert_str_eq(mgrad_version_string(), "0.2.0");
}
END_TEST

typedef struct counting { int allocs, frees, fail_at; } counting;

static void *count_malloc(size_t size, void *user_data)
{
    counting *c = user_data;
    if (c->fail_at >= 0 && c->allocs == c->fail_at) return NULL;
    c->allocs++;
    return malloc(size);
}

static void count_free(void *p, void *user_data)
{
    counting *c = user_data;
    c->frees++;
    free(p);
}

START_TEST(test_allocator_accounting)
{
    counting cnt = {0, 0, -1};
    mgrad_context_options o = MGRAD_CONTEXT_OPTIONS_INIT;
    o.malloc_fn = count_malloc;
    o.free_fn = count_free;
    o.alloc_user_data = &cnt;
    mgrad_context *ctx = NULL;
    ck_assert_int_eq(mgrad_context_create(&ctx, &o), MGRAD_OK);
    double *a = mgr_alloc(ctx, 1000);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq((uintptr_t)a % 64, 0);
    uint64_t cur = 0, peak = 0;
    mgrad_context_memory(ctx, &cur, &peak);
    ck_assert_uint_eq(cur, 1000);
    void *b = mgr_calloc(ctx, 10, 10);
    mgrad_context_memory(ctx, &cur, &peak);
    ck_assert_uint_eq(cur, 1100);
    mgr_free(ctx, a);
    mgr_free(ctx, b);
    mgrad_context_memory(ctx, &cur, &peak);
    ck_assert_uint_eq(cur, 0);
    ck_assert_uint_eq(peak, 1100);
    ck_assert_ptr_null(mgr_calloc(ctx, SIZE_MAX / 2, 4));  /* overflow refused */
    mgrad_context_destroy(ctx);
    ck_assert_int_eq(cnt.allocs, cnt.frees);
    /* a failing allocator: context creation reports NOMEM, nothing leaks */
    counting fail = {0, 0, 0};
    o.alloc_user_data = &fail;
    ctx = NULL;
    ck_assert_int_eq(mgrad_context_create(&ctx, &o), MGRAD_ERR_NOMEM);
    ck_assert_ptr_null(ctx);
}
END_TEST

START_TEST(test_error_message)
{
    mgrad_context *ctx = NULL;
    ck_assert_int_eq(mgrad_context_create(&ctx, NULL), MGRAD_OK);
    ck_assert_int_eq(mgr_error(ctx, MGRAD_ERR_SIZE, "got %d want %d", 3, 4), MGRAD_ERR_SIZE);
    ck_assert_str_eq(mgrad_context_last_error(ctx), "got 3 want 4");
    mgrad_context_clear_error(ctx);
    ck_assert_str_eq(mgrad_context_last_error(ctx), "");
    mgrad_context_destroy(ctx);
}
END_TEST

START_TEST(test_rng)
{
    /* pure function of its arguments */
    ck_assert_uint_eq(mgr_rng_u64(1, 2, 3), mgr_rng_u64(1, 2, 3));
    ck_assert_uint_ne(mgr_rng_u64(1, 2, 3), mgr_rng_u64(1, 2, 4));
    ck_assert_uint_ne(mgr_rng_u64(1, 2, 3), mgr_rng_u64(1, 3, 3));
    ck_assert_uint_ne(mgr_rng_u64(1, 2, 3), mgr_rng_u64(2, 2, 3));
    /* moments of 100k draws: mean 1/2 ± 5σ, normal mean 0 and variance 1 */
    enum { N = 100000 };
    double su = 0, sn = 0, sn2 = 0;
    int counts[7] = {0};
    for (uint64_t i = 0; i < N; i++) {
        double u = mgr_rng_uniform(9, 1, i);
        ck_assert(u >= 0 && u < 1);
        su += u;
        double z = mgr_rng_normal(9, 2, i);
        sn += z;
        sn2 += z * z;
        counts[mgr_rng_below(9, 3, i, 7)]++;
    }
    ck_assert(fabs(su / N - 0.5) < 5 * sqrt(1.0 / 12 / N));
    ck_assert(fabs(sn / N) < 5 / sqrt((double)N));
    ck_assert(fabs(sn2 / N - 1) < 5 * sqrt(2.0 / N));
    for (int k = 0; k < 7; k++) ck_assert(abs(counts[k] - N / 7) < 5 * 120);
}
END_TEST

START_TEST(test_convert)
{
    double d[3] = {1.5, -2.25, 3};
    float f[3] = {0};
    ck_assert_int_eq(mgr_convert(f, MGRAD_DTYPE_F32, d, MGRAD_DTYPE_F64, 3, 1), -1);
    ck_assert(f[0] == 1.5f && f[1] == -2.25f && f[2] == 3.0f);
    d[1] = NAN;
    float g[3] = {7, 7, 7};
    ck_assert_int_eq(mgr_convert(g, MGRAD_DTYPE_F32, d, MGRAD_DTYPE_F64, 3, 1), 1);
    ck_assert(g[0] == 7 && g[1] == 7 && g[2] == 7);  /* untouched on failure */
    int64_t shape[3] = {2, 3, 4}, bad[2] = {2, 0};
    ck_assert_int_eq(mgr_shape_product(3, shape), 24);
    ck_assert_int_eq(mgr_shape_product(2, bad), 0);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("base");
    TCase *tc = tcase_create("base");
    tcase_add_test(tc, test_context_options);
    tcase_add_test(tc, test_status_strings);
    tcase_add_test(tc, test_allocator_accounting);
    tcase_add_test(tc, test_error_message);
    tcase_add_test(tc, test_rng);
    tcase_add_test(tc, test_convert);
    suite_add_tcase(s, tc);
    return s;
}
