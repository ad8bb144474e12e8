/*
 * test_store.c - the snapshot store: round trips in RAM and through the
 * spill file, identical bytes either way, no files left behind, I/O errors
 * reported as MGRAD_ERR_IO, peak-byte accounting, and the memo that RAM
 * slots carry (invalidated by a save, none on spilled slots, counted in the
 * budget and the peak).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "metagrad/context.h"
#include "store/store.h"
#include "testutil.h"

Suite *make_suite(void);

static mgrad_context *new_ctx(void)
{
    mgrad_context *ctx = NULL;
    ck_assert_int_eq(mgrad_context_create(&ctx, NULL), MGRAD_OK);
    return ctx;
}

/* A fresh private directory; the caller removes it (it must be empty). */
static void make_tmpdir(char *buf, size_t cap)
{
    const char *base = getenv("TMPDIR");
    snprintf(buf, cap, "%s/mgrad-store-test-XXXXXX", base != NULL ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(buf));
}

static int dir_entries(const char *path)
{
    DIR *d = opendir(path);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

/* An odd size, so that slots are not page- or alignment-friendly. */
#define NDBL 1021
#define BYTES (NDBL * sizeof(double))

START_TEST(test_ram_round_trip)
{
    mgrad_context *ctx = new_ctx();
    mgr_store *st;
    ck_assert_int_eq(mgr_store_create(ctx, 4, BYTES, 0, 0, NULL, &st), MGRAD_OK);
    ck_assert_uint_eq(mgr_store_peak_bytes(st), 0); /* nothing until first use */

    uint64_t rng = 1;
    double a[NDBL], b[NDBL], out[NDBL];
    tu_fill(a, NDBL, &rng, 1.0);
    tu_fill(b, NDBL, &rng, 1.0);
    ck_assert_int_eq(mgr_store_save(st, 0, 7, a), MGRAD_OK);
    ck_assert_int_eq(mgr_store_save(st, 2, 9, b), MGRAD_OK);
    ck_assert_uint_eq(mgr_store_peak_bytes(st), 2 * BYTES);

    int64_t step = -1;
    ck_assert_int_eq(mgr_store_load(st, 2, &step, out), MGRAD_OK);
    ck_assert_int_eq(step, 9);
    ck_assert(memcmp(out, b, BYTES) == 0);
    ck_assert_int_eq(mgr_store_load(st, 0, &step, out), MGRAD_OK);
    ck_assert_int_eq(step, 7);
    ck_assert(memcmp(out, a, BYTES) == 0);
    /* loading keeps the slot: load again */
    ck_assert_int_eq(mgr_store_load(st, 0, NULL, out), MGRAD_OK);
    ck_assert(memcmp(out, a, BYTES) == 0);

    /* overwriting reuses the buffer: peak unchanged */
    ck_assert_int_eq(mgr_store_save(st, 0, 11, b), MGRAD_OK);
    ck_assert_int_eq(mgr_store_load(st, 0, &step, out), MGRAD_OK);
    ck_assert_int_eq(step, 11);
    ck_assert(memcmp(out, b, BYTES) == 0);
    ck_assert_uint_eq(mgr_store_peak_bytes(st), 2 * BYTES);
    ck_assert_uint_eq(mgr_store_spilled_bytes(st), 0);

    /* engine bugs are reported, not crashed on */
    ck_assert_int_eq(mgr_store_load(st, 1, &step, out), MGRAD_ERR_INTERNAL);
    ck_assert(strstr(mgrad_context_last_error(ctx), "before it was saved") != NULL);
    ck_assert_int_eq(mgr_store_save(st, 4, 0, a), MGRAD_ERR_INTERNAL);
    ck_assert_int_eq(mgr_store_load(st, -1, &step, out), MGRAD_ERR_INTERNAL);
    ck_assert_int_eq(mgr_store_save(st, 0, 0, NULL), MGRAD_ERR_NULL);

    /* the slot buffers go through the context's allocator */
    uint64_t cur;
    ck_assert_int_eq(mgrad_context_memory(ctx, &cur, NULL), MGRAD_OK);
    ck_assert_uint_ge(cur, 2 * BYTES);
    mgr_store_destroy(st);
    ck_assert_int_eq(mgrad_context_memory(ctx, &cur, NULL), MGRAD_OK);
    ck_assert_uint_eq(cur, 0);
    mgr_store_destroy(NULL);
    mgrad_context_destroy(ctx);
}
END_TEST

/* Drive two stores through the same random saves and loads; every load must
   give the same bytes from both. */
static void same_as_ram(mgr_store *ram, mgr_store *spill, int64_t slots)
{
    uint64_t rng = 42;
    double x[NDBL], y[NDBL], z[NDBL];
    int saved[16] = {0};
    ck_assert_int_le(slots, 16);
    for (int it = 0; it < 400; it++) {
        int64_t slot = (int64_t)((tu_rand(&rng) + 1.0) * 0.5 * (double)slots);
        if (slot >= slots) slot = slots - 1;
        if (!saved[slot] || tu_rand(&rng) < 0.0) {
            tu_fill(x, NDBL, &rng, 1e3);
            x[it % NDBL] = -0.0; /* bytes, not values, must survive */
            ck_assert_int_eq(mgr_store_save(ram, slot, it, x), MGRAD_OK);
            ck_assert_int_eq(mgr_store_save(spill, slot, it, x), MGRAD_OK);
            saved[slot] = 1;
        } else {
            int64_t s1 = -1, s2 = -2;
            ck_assert_int_eq(mgr_store_load(ram, slot, &s1, y), MGRAD_OK);
            ck_assert_int_eq(mgr_store_load(spill, slot, &s2, z), MGRAD_OK);
            ck_assert_int_eq(s1, s2);
            ck_assert(memcmp(y, z, BYTES) == 0);
        }
    }
}

START_TEST(test_spill_identical)
{
    mgrad_context *ctx = new_ctx();
    char dir[512];
    make_tmpdir(dir, sizeof dir);

    mgr_store *ram, *spill;
    ck_assert_int_eq(mgr_store_create(ctx, 6, BYTES, 0, 0, NULL, &ram), MGRAD_OK);
    /* room for 2 slots (and a bit) in RAM: 4 spill */
    ck_assert_int_eq(mgr_store_create(ctx, 6, BYTES, 0, 2 * BYTES + 100, dir, &spill), MGRAD_OK);
    /* the spill file is unlinked at once: nothing visible, even mid-run */
    ck_assert_int_eq(dir_entries(dir), 0);
    same_as_ram(ram, spill, 6);
    ck_assert_int_eq(dir_entries(dir), 0);

    ck_assert_uint_le(mgr_store_peak_bytes(spill), 2 * BYTES);
    ck_assert_uint_eq(mgr_store_peak_bytes(ram), 6 * BYTES);
    ck_assert_uint_gt(mgr_store_spilled_bytes(spill), 0);
    ck_assert_uint_le(mgr_store_spilled_bytes(spill), 4 * BYTES);

    mgr_store_destroy(spill);
    mgr_store_destroy(ram);
    ck_assert_int_eq(dir_entries(dir), 0);
    ck_assert_int_eq(rmdir(dir), 0); /* fails if anything was left behind */
    mgrad_context_destroy(ctx);
}
END_TEST

/* A budget below one state: every slot lives in the file. */
START_TEST(test_spill_everything)
{
    mgrad_context *ctx = new_ctx();
    char dir[512];
    make_tmpdir(dir, sizeof dir);
    mgr_store *ram, *spill;
    ck_assert_int_eq(mgr_store_create(ctx, 3, BYTES, 0, 0, NULL, &ram), MGRAD_OK);
    ck_assert_int_eq(mgr_store_create(ctx, 3, BYTES, 0, 1, dir, &spill), MGRAD_OK);
    same_as_ram(ram, spill, 3);
    ck_assert_uint_eq(mgr_store_peak_bytes(spill), 0);
    ck_assert_uint_eq(mgr_store_spilled_bytes(spill), 3 * BYTES);
    mgr_store_destroy(spill);
    mgr_store_destroy(ram);
    ck_assert_int_eq(rmdir(dir), 0);
    mgrad_context_destroy(ctx);
}
END_TEST

/* A spill directory that is never needed creates no file. */
START_TEST(test_spill_dir_unused)
{
    mgrad_context *ctx = new_ctx();
    mgr_store *st;
    ck_assert_int_eq(mgr_store_create(ctx, 3, BYTES, 0, 0, "/nonexistent/mgrad", &st), MGRAD_OK);
    double a[NDBL] = {1.0};
    ck_assert_int_eq(mgr_store_save(st, 2, 1, a), MGRAD_OK);
    ck_assert_uint_eq(mgr_store_spilled_bytes(st), 0);
    mgr_store_destroy(st);
    mgrad_context_destroy(ctx);
}
END_TEST

START_TEST(test_unwritable_dir)
{
    mgrad_context *ctx = new_ctx();
    mgr_store *st = (mgr_store *)1;
    /* missing directory */
    ck_assert_int_eq(mgr_store_create(ctx, 4, BYTES, 0, BYTES, "/nonexistent/mgrad-spill", &st),
                     MGRAD_ERR_IO);
    ck_assert_ptr_null(st);
    const char *msg = mgrad_context_last_error(ctx);
    ck_assert_msg(strstr(msg, "/nonexistent/mgrad-spill") != NULL, "%s", msg);
    ck_assert_msg(strstr(msg, strerror(ENOENT)) != NULL, "%s", msg);

    /* a path through a regular file (fails even for root) */
    char dir[512], file[600];
    make_tmpdir(dir, sizeof dir);
    snprintf(file, sizeof file, "%s/plain", dir);
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    ck_assert_int_eq(mgr_store_create(ctx, 4, BYTES, 0, BYTES, file, &st), MGRAD_ERR_IO);
    msg = mgrad_context_last_error(ctx);
    ck_assert_msg(strstr(msg, strerror(ENOTDIR)) != NULL, "%s", msg);

    /* a read-only directory (permissions do not bind root) */
    if (geteuid() != 0) {
        char ro[600];
        snprintf(ro, sizeof ro, "%s/ro", dir);
        ck_assert_int_eq(mkdir(ro, 0500), 0);
        ck_assert_int_eq(mgr_store_create(ctx, 4, BYTES, 0, BYTES, ro, &st), MGRAD_ERR_IO);
        msg = mgrad_context_last_error(ctx);
        ck_assert_msg(strstr(msg, strerror(EACCES)) != NULL, "%s", msg);
        ck_assert_int_eq(rmdir(ro), 0);
    }
    ck_assert_int_eq(unlink(file), 0);
    ck_assert_int_eq(rmdir(dir), 0);
    mgrad_context_destroy(ctx);
}
END_TEST

/* A write that fails mid-run (here: the file size limit, as a full disk
   would) is MGRAD_ERR_IO, and the slot does not pretend to hold a state. */
START_TEST(test_failed_write)
{
    mgrad_context *ctx = new_ctx();
    char dir[512];
    make_tmpdir(dir, sizeof dir);
    mgr_store *st;
    ck_assert_int_eq(mgr_store_create(ctx, 3, BYTES, 0, BYTES, dir, &st), MGRAD_OK);

    double a[NDBL], out[NDBL];
    uint64_t rng = 3;
    tu_fill(a, NDBL, &rng, 1.0);
    ck_assert_int_eq(mgr_store_save(st, 1, 5, a), MGRAD_OK); /* file offset 0 */

    struct rlimit old, lim;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = BYTES + 100; /* slot 2 ends at 2·BYTES */
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    mgrad_status s = mgr_store_save(st, 2, 6, a);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);

    ck_assert_int_eq(s, MGRAD_ERR_IO);
    const char *msg = mgrad_context_last_error(ctx);
    ck_assert_msg(strstr(msg, dir) != NULL, "%s", msg);
    ck_assert_msg(strstr(msg, strerror(EFBIG)) != NULL, "%s", msg);
    ck_assert_int_eq(mgr_store_load(st, 2, NULL, out), MGRAD_ERR_INTERNAL);
    /* the earlier slot is intact, and the store still works */
    int64_t step;
    ck_assert_int_eq(mgr_store_load(st, 1, &step, out), MGRAD_OK);
    ck_assert_int_eq(step, 5);
    ck_assert(memcmp(out, a, BYTES) == 0);
    ck_assert_int_eq(mgr_store_save(st, 2, 6, a), MGRAD_OK);
    ck_assert_int_eq(mgr_store_load(st, 2, &step, out), MGRAD_OK);
    ck_assert(memcmp(out, a, BYTES) == 0);

    mgr_store_destroy(st);
    ck_assert_int_eq(rmdir(dir), 0);
    mgrad_context_destroy(ctx);
}
END_TEST

START_TEST(test_memo)
{
    mgrad_context *ctx = new_ctx();
    char dir[256];
    make_tmpdir(dir, sizeof dir);
    enum { MEMO = 40 };
    /* Budget: two slots of state + memo in RAM, the third spills. */
    mgr_store *st;
    ck_assert_int_eq(mgr_store_create(ctx, 3, BYTES, MEMO, 2 * (BYTES + MEMO) + 1, dir, &st),
                     MGRAD_OK);
    uint64_t rng = 3;
    double a[NDBL], out[NDBL];
    tu_fill(a, NDBL, &rng, 1.0);
    int64_t held = 7;
    ck_assert_ptr_null(mgr_store_memo(st, 0, &held)); /* never saved */
    ck_assert_int_eq(held, -1);
    for (int64_t k = 0; k < 3; k++) ck_assert_int_eq(mgr_store_save(st, k, 10 + k, a), MGRAD_OK);
    ck_assert_uint_eq(mgr_store_peak_bytes(st), 2 * (BYTES + MEMO));
    ck_assert_uint_eq(mgr_store_spilled_bytes(st), BYTES); /* the memo never spills */
    ck_assert_ptr_null(mgr_store_memo(st, 2, &held));
    ck_assert_int_eq(held, -1);
    ck_assert_ptr_null(mgr_store_memo(st, 3, &held)); /* outside the store */

    /* A fresh save holds no memo; a memo round-trips with its step; it
       does not touch the state; a new save invalidates it. */
    unsigned char *m = mgr_store_memo(st, 1, &held);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(held, -1);
    for (int i = 0; i < MEMO; i++) m[i] = (unsigned char)(3 * i + 1);
    mgr_store_memo_set(st, 1, 11);
    unsigned char *m2 = mgr_store_memo(st, 1, &held);
    ck_assert_ptr_eq(m2, m);
    ck_assert_int_eq(held, 11);
    for (int i = 0; i < MEMO; i++) ck_assert_uint_eq(m2[i], (unsigned char)(3 * i + 1));
    int64_t step = -1;
    ck_assert_int_eq(mgr_store_load(st, 1, &step, out), MGRAD_OK);
    ck_assert_int_eq(step, 11);
    ck_assert(memcmp(out, a, BYTES) == 0);
    ck_assert_ptr_nonnull(mgr_store_memo(st, 1, &held)); /* loading keeps it */
    ck_assert_int_eq(held, 11);
    ck_assert_int_eq(mgr_store_save(st, 1, 12, a), MGRAD_OK);
    ck_assert_ptr_nonnull(mgr_store_memo(st, 1, &held));
    ck_assert_int_eq(held, -1);
    mgr_store_memo_set(st, 2, 5); /* a spilled slot: ignored */
    ck_assert_ptr_null(mgr_store_memo(st, 2, &held));
    ck_assert_int_eq(held, -1);
    mgr_store_destroy(st);
    ck_assert_int_eq(rmdir(dir), 0);

    /* Without a spill directory the memo counts in the budget. */
    ck_assert_int_eq(mgr_store_create(ctx, 2, BYTES, MEMO, 2 * BYTES, NULL, &st),
                     MGRAD_ERR_BUDGET);
    ck_assert_int_eq(mgr_store_create(ctx, 2, BYTES, MEMO, 2 * (BYTES + MEMO), NULL, &st),
                     MGRAD_OK);
    mgr_store_destroy(st);
    /* No memo: mgr_store_memo is always NULL. */
    ck_assert_int_eq(mgr_store_create(ctx, 1, BYTES, 0, 0, NULL, &st), MGRAD_OK);
    ck_assert_int_eq(mgr_store_save(st, 0, 0, a), MGRAD_OK);
    ck_assert_ptr_null(mgr_store_memo(st, 0, &held));
    mgr_store_destroy(st);
    mgrad_context_destroy(ctx);
}
END_TEST

START_TEST(test_create_errors)
{
    mgrad_context *ctx = new_ctx();
    mgr_store *st = NULL;
    /* over budget without a spill directory: the message names the need */
    ck_assert_int_eq(mgr_store_create(ctx, 10, 1000, 0, 5000, NULL, &st), MGRAD_ERR_BUDGET);
    ck_assert_ptr_null(st);
    const char *msg = mgrad_context_last_error(ctx);
    ck_assert_msg(strstr(msg, "10 state slots of 1000 bytes") != NULL, "%s", msg);
    ck_assert_msg(strstr(msg, "10000 bytes") != NULL, "%s", msg);
    ck_assert_msg(strstr(msg, "options.spill_dir") != NULL, "%s", msg);
    /* exactly enough is fine */
    ck_assert_int_eq(mgr_store_create(ctx, 10, 1000, 0, 10000, NULL, &st), MGRAD_OK);
    mgr_store_destroy(st);

    ck_assert_int_eq(mgr_store_create(ctx, 0, 1000, 0, 0, NULL, &st), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgr_store_create(ctx, 4, 0, 0, 0, NULL, &st), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgr_store_create(ctx, 4, 8, 0, 0, NULL, NULL), MGRAD_ERR_NULL);
    ck_assert_uint_eq(mgr_store_peak_bytes(NULL), 0);
    ck_assert_uint_eq(mgr_store_spilled_bytes(NULL), 0);
    mgrad_context_destroy(ctx);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_ram_round_trip);
    tcase_add_test(tc, test_spill_identical);
    tcase_add_test(tc, test_spill_everything);
    tcase_add_test(tc, test_spill_dir_unused);
    tcase_add_test(tc, test_unwritable_dir);
    tcase_add_test(tc, test_failed_write);
    tcase_add_test(tc, test_create_errors);
    tcase_add_test(tc, test_memo);
    suite_add_tcase(s, tc);
    return s;
}
