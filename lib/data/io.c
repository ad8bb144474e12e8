/*
 * io.c - the bounded reader, the dataset allocator and label checks shared
 * by the file loaders (see io.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/io.h"

/* Deflate expands at most 1032:1; a gzip file cannot hold more. */
#define GZIP_MAX_RATIO 1032u

mgrad_status mgr_reader_open(mgr_reader *r, mgrad_context *ctx, const char *fn,
                             const char *path)
{
    memset(r, 0, sizeof *r);
    r->ctx = ctx;
    r->fn = fn;
    r->path = path;
    MGRAD_RETURN_IF(ctx, path == NULL, MGRAD_ERR_NULL, "%s: a file path is NULL", fn);
    /* Non-blocking, so that opening a FIFO without a writer returns at once
       (and is then refused as not a regular file) instead of hanging. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    MGRAD_RETURN_IF(ctx, fd < 0, MGRAD_ERR_IO, "%s: %s: cannot open: %s", fn, path,
                    strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return mgr_error(ctx, MGRAD_ERR_IO, "%s: %s: cannot stat: %s", fn, path,
                         strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return mgr_error(ctx, MGRAD_ERR_IO, "%s: %s: not a regular file", fn, path);
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        int err = errno;
        close(fd);
        return mgr_error(ctx, MGRAD_ERR_IO, "%s: %s: cannot read: %s", fn, path,
                         strerror(err));
    }
    r->file_bytes = (uint64_t)st.st_size;
    unsigned char magic[2] = {0, 0};
    ssize_t got = pread(fd, magic, 2, 0);
    if (got < 0) {
        int err = errno;
        close(fd);
        return mgr_error(ctx, MGRAD_ERR_IO, "%s: %s: cannot read: %s", fn, path,
                         strerror(err));
    }
    r->compressed = got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    if (r->compressed)
        r->bound = r->file_bytes > UINT64_MAX / GZIP_MAX_RATIO
                       ? UINT64_MAX
                       : r->file_bytes * GZIP_MAX_RATIO;
    else
        r->bound = r->file_bytes;
    /* gzdopen takes the descriptor; gzclose closes it. */
    r->gz = gzdopen(fd, "rb");
    if (r->gz == NULL) {
        close(fd);
        return mgr_error(ctx, MGRAD_ERR_NOMEM, "%s: %s: out of memory opening the file",
                         fn, path);
    }
    gzbuffer(r->gz, 1u << 15); /* small enough to stay off mmap per open */
    return MGRAD_OK;
}

void mgr_reader_close(mgr_reader *r)
{
    if (r->gz != NULL) gzclose(r->gz);
    r->gz = NULL;
}

/* A short read: either the system failed, the gzip stream is damaged, or
   the file simply ends. */
static mgrad_status short_read(mgr_reader *r, const char *what, size_t wanted,
                               size_t got, int gz_result)
{
    int errnum = Z_OK;
    const char *msg = gzerror(r->gz, &errnum);
    if (errnum == Z_ERRNO)
        return mgr_error(r->ctx, MGRAD_ERR_IO, "%s: %s: read failed at byte %llu: %s",
                         r->fn, r->path, (unsigned long long)r->offset, strerror(errno));
    if (gz_result < 0 || (errnum != Z_OK && errnum != Z_BUF_ERROR))
        return mgr_error(r->ctx, MGRAD_ERR_FORMAT,
                         "%s: %s: corrupt gzip data while reading %s: %s", r->fn,
                         r->path, what, msg != NULL ? msg : "unknown zlib error");
    return mgr_error(r->ctx, MGRAD_ERR_FORMAT,
                     "%s: %s: truncated%s: %s needs %zu bytes at offset %llu, only %zu "
                     "left", r->fn, r->path, r->compressed ? " gzip stream" : " file",
                     what, wanted, (unsigned long long)(r->offset - got), got);
}

mgrad_status mgr_reader_read(mgr_reader *r, void *buf, size_t n, const char *what)
{
    unsigned char *p = buf;
    size_t done = 0;
    while (done < n) {
        size_t left = n - done;
        unsigned chunk = left > (1u << 30) ? (1u << 30) : (unsigned)left;
        int got = gzread(r->gz, p + done, chunk);
        if (got <= 0) return short_read(r, what, n, done, got);
        done += (size_t)got;
        r->offset += (uint64_t)got;
    }
    return MGRAD_OK;
}

mgrad_status mgr_reader_check_room(mgr_reader *r, uint64_t bytes, const char *what)
{
    uint64_t left = r->bound >= r->offset ? r->bound - r->offset : 0;
    MGRAD_RETURN_IF(r->ctx, bytes > left, MGRAD_ERR_FORMAT,
                    "%s: %s: %s needs %llu bytes but the file (%llu bytes%s) cannot hold "
                    "them: the header is corrupt or the file truncated", r->fn, r->path,
                    what, (unsigned long long)bytes, (unsigned long long)r->file_bytes,
                    r->compressed ? ", gzip" : "");
    return MGRAD_OK;
}

mgrad_status mgr_reader_expect_end(mgr_reader *r)
{
    unsigned char extra;
    int got = gzread(r->gz, &extra, 1);
    if (got == 1)
        return mgr_error(r->ctx, MGRAD_ERR_FORMAT,
                         "%s: %s: unexpected bytes after the data at offset %llu (the "
                         "header's sizes are wrong or the file is corrupt)", r->fn, r->path,
                         (unsigned long long)r->offset);
    int errnum = Z_OK;
    const char *msg = gzerror(r->gz, &errnum);
    if (errnum == Z_ERRNO)
        return mgr_error(r->ctx, MGRAD_ERR_IO, "%s: %s: read failed: %s", r->fn, r->path,
                         strerror(errno));
    if (got < 0 || errnum != Z_OK)
        return mgr_error(r->ctx, MGRAD_ERR_FORMAT,
                         "%s: %s: corrupt or truncated gzip stream after the data: %s",
                         r->fn, r->path, msg != NULL ? msg : "unknown zlib error");
    return MGRAD_OK;
}

mgrad_status mgr_reader_read_all(mgr_reader *r, char **out, size_t *len)
{
    mgrad_context *ctx = r->ctx;
    size_t cap = r->compressed ? (size_t)1 << 16 : (size_t)r->file_bytes + 1;
    MGRAD_RETURN_IF(ctx, r->file_bytes >= SIZE_MAX / 2, MGRAD_ERR_NOMEM,
                    "%s: %s: file too large", r->fn, r->path);
    char *buf = mgr_alloc(ctx, cap);
    MGRAD_RETURN_IF(ctx, buf == NULL, MGRAD_ERR_NOMEM,
                    "%s: %s: out of memory reading the file (%zu bytes)", r->fn, r->path,
                    cap);
    size_t used = 0;
    for (;;) {
        if (used + 1 == cap) {
            /* Full: is there more?  Only a gzip stream (or a file growing
               under us) gets here with data left; the bound stops bombs. */
            unsigned char probe;
            int got = gzread(r->gz, &probe, 1);
            if (got < 0) {
                mgrad_status s = short_read(r, "the contents", 1, 0, got);
                mgr_free(ctx, buf);
                return s;
            }
            if (got == 0) break;
            if ((uint64_t)used >= r->bound || cap > SIZE_MAX / 2) {
                mgr_free(ctx, buf);
                return mgr_error(ctx, MGRAD_ERR_FORMAT, "%s: %s: holds more than the %llu "
                                 "bytes its size allows", r->fn, r->path,
                                 (unsigned long long)r->bound);
            }
            char *bigger = mgr_alloc(ctx, cap * 2);
            if (bigger == NULL) {
                mgr_free(ctx, buf);
                return mgr_error(ctx, MGRAD_ERR_NOMEM, "%s: %s: out of memory reading "
                                 "the file (%zu bytes)", r->fn, r->path, cap * 2);
            }
            memcpy(bigger, buf, used);
            mgr_free(ctx, buf);
            buf = bigger;
            cap *= 2;
            buf[used++] = (char)probe;
            r->offset++;
            continue;
        }
        size_t want = cap - 1 - used;
        unsigned chunk = want > (1u << 30) ? (1u << 30) : (unsigned)want;
        int got = gzread(r->gz, buf + used, chunk);
        if (got < 0) {
            mgrad_status s = short_read(r, "the contents", want, 0, got);
            mgr_free(ctx, buf);
            return s;
        }
        if (got == 0) break;
        used += (size_t)got;
        r->offset += (uint64_t)got;
    }
    mgrad_status s = mgr_reader_expect_end(r);
    if (s != MGRAD_OK) {
        mgr_free(ctx, buf);
        return s;
    }
    buf[used] = '\0';
    *out = buf;
    *len = used;
    return MGRAD_OK;
}

/* palette_len 0: dense inputs. */
static mgrad_status dataset_alloc(mgrad_context *ctx, const char *fn, int64_t n, int32_t ndim,
                                  const int64_t *shape, int with_labels, int32_t palette_len,
                                  mgrad_dataset **out)
{
    MGRAD_RETURN_IF(ctx, n < 1, MGRAD_ERR_INVALID, "%s: the data has no examples", fn);
    MGRAD_RETURN_IF(ctx, ndim < 1 || ndim > 3, MGRAD_ERR_INTERNAL,
                    "%s: example rank %d", fn, (int)ndim);
    int64_t features = mgr_shape_product(ndim, shape);
    MGRAD_RETURN_IF(ctx, features == 0, MGRAD_ERR_INVALID,
                    "%s: the example shape has a zero dimension or overflows", fn);
    MGRAD_RETURN_IF(ctx, n > INT64_MAX / features, MGRAD_ERR_INVALID,
                    "%s: %lld examples of %lld values overflow", fn, (long long)n,
                    (long long)features);
    MGRAD_RETURN_IF(ctx, palette_len > 256, MGRAD_ERR_INTERNAL, "%s: palette of %d values", fn,
                    (int)palette_len);
    size_t esize = mgr_dtype_size(ctx->dtype);
    size_t value_bytes = palette_len > 0 ? 1 : esize;
    MGRAD_RETURN_IF(ctx, (uint64_t)(n * features) > SIZE_MAX / value_bytes, MGRAD_ERR_NOMEM,
                    "%s: %lld values do not fit in memory", fn, (long long)(n * features));
    mgrad_dataset *ds = NULL;
    MGRAD_FORWARD(mgr_alloc_or_fail(ctx, (void **)&ds, 1, sizeof *ds, "a dataset"));
    /* Not zeroed: every loader writes each value. */
    if (palette_len > 0) {
        ds->codes = mgr_alloc(ctx, (size_t)(n * features));
        ds->palette = mgr_alloc(ctx, (size_t)palette_len * esize);
        ds->palette_len = palette_len;
    } else {
        ds->inputs = mgr_alloc(ctx, (size_t)(n * features) * esize);
    }
    if (palette_len > 0 ? ds->codes == NULL || ds->palette == NULL : ds->inputs == NULL) {
        mgr_free(ctx, ds->codes);
        mgr_free(ctx, ds->palette);
        mgr_free(ctx, ds->inputs);
        mgr_free(ctx, ds);
        return mgr_error(ctx, MGRAD_ERR_NOMEM, "%s: out of memory for %lld input values",
                         fn, (long long)(n * features));
    }
    if (with_labels) {
        ds->labels = mgr_calloc(ctx, (size_t)n, sizeof *ds->labels);
        if (ds->labels == NULL) {
            mgr_free(ctx, ds->codes);
            mgr_free(ctx, ds->palette);
            mgr_free(ctx, ds->inputs);
            mgr_free(ctx, ds);
            return mgr_error(ctx, MGRAD_ERR_NOMEM, "%s: out of memory for %lld labels",
                             fn, (long long)n);
        }
    }
    ds->ctx = ctx;
    ds->refs = 1;
    ds->n = n;
    ds->ndim = ndim;
    for (int32_t i = 0; i < 3; i++) ds->shape[i] = i < ndim ? shape[i] : 0;
    ds->features = features;
    mgr_context_retain(ctx);
    *out = ds;
    return MGRAD_OK;
}

mgrad_status mgr_dataset_alloc(mgrad_context *ctx, const char *fn, int64_t n, int32_t ndim,
                               const int64_t *shape, int with_labels, mgrad_dataset **out)
{
    return dataset_alloc(ctx, fn, n, ndim, shape, with_labels, 0, out);
}

mgrad_status mgr_dataset_alloc_compact(mgrad_context *ctx, const char *fn, int64_t n,
                                       int32_t ndim, const int64_t *shape, int with_labels,
                                       int32_t palette_len, mgrad_dataset **out)
{
    MGRAD_RETURN_IF(ctx, palette_len < 1, MGRAD_ERR_INTERNAL, "%s: empty palette", fn);
    return dataset_alloc(ctx, fn, n, ndim, shape, with_labels, palette_len, out);
}

mgrad_status mgr_check_num_classes(mgrad_context *ctx, const char *fn, int32_t num_classes)
{
    MGRAD_RETURN_IF(ctx, num_classes < 0 || num_classes == 1, MGRAD_ERR_INVALID,
                    "%s: num_classes = %d; pass 0 (largest label + 1) or at least 2", fn,
                    (int)num_classes);
    return MGRAD_OK;
}

mgrad_status mgr_finish_labels(mgrad_dataset *ds, const char *fn, const char *path,
                               int32_t num_classes, int64_t max_label)
{
    mgrad_context *ctx = ds->ctx;
    if (num_classes == 0) {
        MGRAD_RETURN_IF(ctx, max_label >= INT32_MAX, MGRAD_ERR_FORMAT,
                        "%s: %s: label %lld is too large", fn, path, (long long)max_label);
        MGRAD_RETURN_IF(ctx, max_label < 1, MGRAD_ERR_INVALID,
                        "%s: %s: every label is 0, so the class count cannot be inferred; "
                        "pass num_classes", fn, path);
        ds->num_classes = (int32_t)(max_label + 1);
        return MGRAD_OK;
    }
    if (max_label >= num_classes) {
        for (int64_t i = 0; i < ds->n; i++)
            MGRAD_RETURN_IF(ctx, ds->labels[i] >= num_classes, MGRAD_ERR_INVALID,
                            "%s: %s: label %d of example %lld is outside [0, %d) (the "
                            "num_classes passed)", fn, path, (int)ds->labels[i],
                            (long long)i, (int)num_classes);
    }
    ds->num_classes = num_classes;
    return MGRAD_OK;
}

mgrad_status mgr_chunk_alloc(mgrad_context *ctx, const char *fn, uint64_t inputs_bytes,
                             uint64_t labels_bytes, unsigned char **out, size_t *out_bytes)
{
    size_t bytes = mgr_chunk_bytes(inputs_bytes);
    if (labels_bytes > 0 && mgr_chunk_bytes(labels_bytes) > bytes)
        bytes = mgr_chunk_bytes(labels_bytes);
    unsigned char *chunk = mgr_alloc(ctx, bytes);
    if (chunk == NULL)
        return mgr_error(ctx, MGRAD_ERR_NOMEM, "%s: out of memory for a read buffer", fn);
    *out = chunk;
    *out_bytes = bytes;
    return MGRAD_OK;
}
