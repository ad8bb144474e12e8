/*
 * fuzz_common.h - what the loader fuzz targets share (header-only).
 *
 * Each target writes the input to an anonymous in-memory file (memfd) and
 * calls the public loader on its /proc/self/fd path, so the whole path a
 * user's file takes (open, gzip detection, bounded reads) is exercised.
 * After every call it checks the contract and aborts (which libFuzzer and
 * tests/fuzz/replay.c report) when it is broken:
 *   - success gives a sane dataset, failure leaves *out untouched and a message;
 *   - every byte allocated through the context is freed;
 *   - no file descriptor is left open.
 */
#ifndef MGRAD_FUZZ_COMMON_H
#define MGRAD_FUZZ_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* memfd_create */
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "metagrad/context.h"
#include "metagrad/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifdef MGRAD_FUZZ_NO_BLAS
/* The clang fuzz build compiles the library sources without BLAS. */
void openblas_set_num_threads(int num_threads);
void openblas_set_num_threads(int num_threads) { (void)num_threads; }
#endif

#define FUZZ_CHECK(cond, what)                                                    \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "fuzz contract broken: %s (%s:%d)\n", what, __FILE__, \
                    __LINE__);                                                    \
            abort();                                                              \
        }                                                                         \
    } while (0)

/* An in-memory file holding data; *path names it.  Returns the fd. */
static inline int fuzz_memfile(const uint8_t *data, size_t size, char *path, size_t cap)
{
    int fd = memfd_create("mgrad-fuzz", MFD_CLOEXEC);
    FUZZ_CHECK(fd >= 0, "memfd_create");
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(fd, data + done, size - done);
        FUZZ_CHECK(w > 0, "write to memfd");
        done += (size_t)w;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

/* The lowest free descriptor: equal before and after a call unless the
   call leaked one. */
static inline int fuzz_lowest_fd(void)
{
    int fd = dup(0);
    FUZZ_CHECK(fd >= 0, "dup");
    close(fd);
    return fd;
}

typedef mgrad_status (*fuzz_load_fn)(mgrad_dataset **out, mgrad_context *ctx,
                                     const void *arg);

/* Run one load and check the contract. */
static inline void fuzz_run(fuzz_load_fn load, const void *arg)
{
    mgrad_context *ctx = NULL;
    FUZZ_CHECK(mgrad_context_create(&ctx, NULL) == MGRAD_OK, "context");
    int fd_before = fuzz_lowest_fd();
    mgrad_dataset *sentinel = (mgrad_dataset *)&sentinel;
    mgrad_dataset *ds = sentinel;
    mgrad_status s = load(&ds, ctx, arg);
    if (s == MGRAD_OK) {
        FUZZ_CHECK(ds != NULL && ds != sentinel, "success without a dataset");
        int64_t n = 0, f = 0;
        int32_t ndim = 0, classes = 0;
        int64_t shape[3];
        FUZZ_CHECK(mgrad_dataset_size(ds, &n) == MGRAD_OK && n >= 1, "size");
        FUZZ_CHECK(mgrad_dataset_features(ds, &f) == MGRAD_OK && f >= 1, "features");
        FUZZ_CHECK(mgrad_dataset_shape(ds, &ndim, shape) == MGRAD_OK && ndim >= 1 &&
                       ndim <= 3 && shape[0] * shape[1] * shape[2] == f,
                   "shape");
        FUZZ_CHECK(mgrad_dataset_num_classes(ds, &classes) == MGRAD_OK, "classes");
        if (classes != 0 && n <= 4096) {
            int32_t labels[4096];
            FUZZ_CHECK(mgrad_dataset_get_labels(ds, labels, n) == MGRAD_OK, "labels");
            for (int64_t i = 0; i < n; i++)
                FUZZ_CHECK(labels[i] >= 0 && labels[i] < classes, "label range");
        }
        mgrad_dataset_destroy(ds);
    } else {
        FUZZ_CHECK(s < 0 && s >= MGRAD_ERR_INTERNAL && s != MGRAD_ERR_INTERNAL,
                   "a status from the documented set");
        FUZZ_CHECK(ds == sentinel, "out written on failure");
        FUZZ_CHECK(mgrad_context_last_error(ctx)[0] != '\0', "failure without a message");
    }
    uint64_t current = 1;
    mgrad_context_memory(ctx, &current, NULL);
    FUZZ_CHECK(current == 0, "memory leaked through the context");
    FUZZ_CHECK(fuzz_lowest_fd() == fd_before, "file descriptor leaked");
    mgrad_context_destroy(ctx);
}

#endif /* MGRAD_FUZZ_COMMON_H */
