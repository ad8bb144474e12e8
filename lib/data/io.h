/*
 * io.h - what the file loaders share: a bounded, checked reader over plain
 * or gzip files, a dataset allocator, and value stores with range checks.
 *
 * Every loader reads through mgr_reader so that each read is bounded (never
 * more than asked), checked (a short read is a truncated file, a zlib error
 * a corrupt one) and can be validated against the file's size before any
 * allocation that a header asks for.
 */
#ifndef MGRAD_DATA_IO_H
#define MGRAD_DATA_IO_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <zlib.h>

#include "data/dataset.h"

typedef struct mgr_reader {
    mgrad_context *ctx;
    const char *fn;          /* public function name, for messages */
    const char *path;        /* for messages */
    gzFile gz;               /* reads plain files transparently */
    int compressed;          /* starts with the gzip magic 1f 8b */
    uint64_t file_bytes;     /* size on disk */
    uint64_t bound;          /* most bytes the (decompressed) stream can hold */
    uint64_t offset;         /* bytes consumed so far */
} mgr_reader;

/* Open a regular file.  MGRAD_ERR_NULL, MGRAD_ERR_IO (missing, not a regular
   file, unreadable), MGRAD_ERR_NOMEM.  On failure nothing stays open. */
mgrad_status mgr_reader_open(mgr_reader *r, mgrad_context *ctx, const char *fn,
                             const char *path);
/* Close; safe on a reader that failed to open or was already closed. */
void mgr_reader_close(mgr_reader *r);
/* Read exactly n bytes or fail: MGRAD_ERR_FORMAT (truncated, corrupt gzip),
   MGRAD_ERR_IO (the system read failed).  `what` names the field. */
mgrad_status mgr_reader_read(mgr_reader *r, void *buf, size_t n, const char *what);
/* MGRAD_ERR_FORMAT unless `bytes` more bytes can still be in the stream:
   call before allocating what a header announces. */
mgrad_status mgr_reader_check_room(mgr_reader *r, uint64_t bytes, const char *what);
/* MGRAD_ERR_FORMAT unless the stream ends here (and, for gzip, its trailer
   and checksum are intact). */
mgrad_status mgr_reader_expect_end(mgr_reader *r);
/* Read the rest of the stream into a NUL-terminated buffer (mgr_alloc'ed,
   caller frees with mgr_free).  *len excludes the NUL. */
mgrad_status mgr_reader_read_all(mgr_reader *r, char **out, size_t *len);

/* A dataset of n examples of the given shape with zeroed inputs in the
   context's dtype, and zeroed labels when with_labels is set.  Destroy
   with mgrad_dataset_destroy. */
mgrad_status mgr_dataset_alloc(mgrad_context *ctx, const char *fn, int64_t n,
                               int32_t ndim, const int64_t *shape, int with_labels,
                               mgrad_dataset **out);
/* The same with compact inputs (data/dataset.h): uninitialised codes
   [n, features] and a palette of palette_len (1 to 256) values. */
mgrad_status mgr_dataset_alloc_compact(mgrad_context *ctx, const char *fn, int64_t n,
                                       int32_t ndim, const int64_t *shape, int with_labels,
                                       int32_t palette_len, mgrad_dataset **out);

/* Store v at index i of a buffer of dtype; returns 0 when the stored value
   is not finite (NaN, Inf, or too large for f32). */
static inline int mgr_put_real(void *buf, mgrad_dtype dtype, size_t i, double v)
{
    if (dtype == MGRAD_DTYPE_F32) {
        /* Out-of-range double-to-float conversion is undefined in ISO C. */
        int ok = fabs(v) <= (double)FLT_MAX;
        ((float *)buf)[i] = ok ? (float)v : 0.0f;
        return ok;
    }
    ((double *)buf)[i] = v;
    return isfinite(v);
}

static inline double mgr_get_real(const void *buf, mgrad_dtype dtype, size_t i)
{
    return dtype == MGRAD_DTYPE_F32 ? (double)((const float *)buf)[i]
                                    : ((const double *)buf)[i];
}

/* Check a num_classes argument (0 = automatic, else >= 2) and finish the
   labels of ds: labels already hold values >= 0; max_label is the largest.
   The message names `path` and the first label out of range. */
mgrad_status mgr_finish_labels(mgrad_dataset *ds, const char *fn, const char *path,
                               int32_t num_classes, int64_t max_label);
/* MGRAD_ERR_INVALID unless num_classes is 0 or >= 2. */
mgrad_status mgr_check_num_classes(mgrad_context *ctx, const char *fn,
                                   int32_t num_classes);

/* mgrad_dataset_load_idx with the public function name for messages
   (Fashion-MNIST reports as itself). */
mgrad_status mgr_load_idx(mgrad_dataset **out, mgrad_context *ctx, const char *fn,
                          const char *images_path, const char *labels_path,
                          int32_t num_classes, double scale);

/* Most bytes of the chunk buffer loaders stream payloads through. */
#define MGR_IO_CHUNK ((size_t)1 << 16)

/* A chunk size for payloads of at most `bytes`: MGR_IO_CHUNK or less,
   a multiple of 8, at least 8. */
static inline size_t mgr_chunk_bytes(uint64_t bytes)
{
    if (bytes >= MGR_IO_CHUNK) return MGR_IO_CHUNK;
    return ((size_t)bytes + 7) / 8 * 8 + 8;
}

/* Allocate the buffer a loader streams its two payloads through (inputs of
   `inputs_bytes`, labels of `labels_bytes`, 0 without labels): the larger
   of their chunk sizes.  *out is freed with mgr_free.  MGRAD_ERR_NOMEM with
   a message naming `fn`. */
mgrad_status mgr_chunk_alloc(mgrad_context *ctx, const char *fn, uint64_t inputs_bytes,
                             uint64_t labels_bytes, unsigned char **out, size_t *out_bytes);

#endif /* MGRAD_DATA_IO_H */
