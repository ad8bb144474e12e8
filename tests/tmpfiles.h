/*
 * tmpfiles.h - a temporary directory per test and files written into it,
 * for the suites that read files (data, text).  Check runs each test with
 * the fixture below around it: tmpfiles_setup makes tmpdir, tmpfiles_teardown
 * removes it and what the test put in it.  Also the checks of a failing
 * call that these suites share: EXPECT_FAIL (status, message, nothing
 * written, leaked or left open) and an allocator that fails on demand.
 */
#ifndef MGRAD_TESTS_TMPFILES_H
#define MGRAD_TESTS_TMPFILES_H

#include <check.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "metagrad.h"

static char tmpdir[512];

/* A new directory $TMPDIR/mgrad-<what>-XXXXXX in tmpdir. */
static inline void tmpfiles_make(const char *what)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/mgrad-%s-XXXXXX", base != NULL ? base : "/tmp", what);
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

/* Remove dir and what the tests put in it (files, links, FIFOs,
   subdirectories). */
static inline void tmpfiles_remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) return;
    struct dirent *e;
    char path[1024];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) continue;
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            tmpfiles_remove_tree(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static inline void tmpfiles_teardown(void) { tmpfiles_remove_tree(tmpdir); }

static inline mgrad_context *new_ctx(mgrad_dtype dtype)
{
    mgrad_context_options o = MGRAD_CONTEXT_OPTIONS_INIT;
    o.dtype = dtype;
    mgrad_context *ctx = NULL;
    ck_assert_int_eq(mgrad_context_create(&ctx, &o), MGRAD_OK);
    return ctx;
}

/* tmpdir/name, in a static ring so that a few can be live at once. */
static inline const char *tmp_path(const char *name)
{
    static char ring[32][1024];
    static int next;
    char *p = ring[next++ % 32];
    snprintf(p, 1024, "%s/%s", tmpdir, name);
    return p;
}

static inline const char *write_file(const char *name, const void *data, size_t len)
{
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    fclose(f);
    return path;
}

static inline const char *write_gz(const char *name, const void *data, size_t len)
{
    const char *path = tmp_path(name);
    gzFile g = gzopen(path, "wb");
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(gzwrite(g, data, (unsigned)len), (int)len);
    ck_assert_int_eq(gzclose(g), Z_OK);
    return path;
}

/* The lowest free descriptor: equal before and after a call means the call
   closed every descriptor it opened. */
static inline int lowest_fd(void)
{
    int fd = dup(0);
    ck_assert_int_ge(fd, 0);
    close(fd);
    return fd;
}

static inline uint64_t ctx_bytes(const mgrad_context *ctx)
{
    uint64_t cur = 0;
    mgrad_context_memory(ctx, &cur, NULL);
    return cur;
}

/* Run `call` (which writes through &out_) and check that it fails with
   `status`, a message containing `needle`, *out untouched, no memory or
   descriptor leaked. */
#define EXPECT_FAIL(ctx, status, needle, call)                                          \
    do {                                                                                \
        mgrad_dataset *const sentinel_ = (mgrad_dataset *)&tmpdir;                      \
        mgrad_dataset *out_ = sentinel_;                                                \
        uint64_t mem_ = ctx_bytes(ctx);                                                 \
        int fd_ = lowest_fd();                                                          \
        mgrad_context_clear_error(ctx);                                                 \
        mgrad_status s_ = (call);                                                       \
        const char *msg_ = mgrad_context_last_error(ctx);                               \
        ck_assert_msg(s_ == (status), "%s: status %d, expected %d: %s", #call, (int)s_, \
                      (int)(status), msg_);                                             \
        ck_assert_msg(strstr(msg_, (needle)) != NULL, "message '%s' lacks '%s'", msg_,  \
                      (needle));                                                        \
        ck_assert_ptr_eq(out_, sentinel_);                                              \
        ck_assert_uint_eq(ctx_bytes(ctx), mem_);                                        \
        ck_assert_int_eq(lowest_fd(), fd_);                                             \
    } while (0)

/* An allocator (context malloc_fn/free_fn, user data a fail_alloc) whose
   attempt number fail_at fails; fail_at = -1: none fails. */
typedef struct fail_alloc {
    long attempts, fail_at;
} fail_alloc;

static inline void *fail_malloc(size_t size, void *user_data)
{
    fail_alloc *a = user_data;
    return a->attempts++ == a->fail_at ? NULL : malloc(size);
}

static inline void fail_free(void *ptr, void *user_data)
{
    (void)user_data;
    free(ptr);
}

#endif /* MGRAD_TESTS_TMPFILES_H */
