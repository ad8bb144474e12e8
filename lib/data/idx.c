/*
 * idx.c - the IDX format of MNIST and Fashion-MNIST, plain or gzip.
 *
 * Layout: two zero bytes, an element type byte, a rank byte, then `rank`
 * big-endian uint32 dimensions, then the elements, big-endian, row-major,
 * and nothing after them.  Types: 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32,
 * 0x0D f32, 0x0E f64.
 */
#include <string.h>

#include "data/io.h"
#include "metagrad/data.h"

#define IDX_MAX_RANK 4

typedef struct idx_header {
    uint8_t type;
    uint8_t rank;
    size_t esize;
    int64_t dims[IDX_MAX_RANK];
    uint64_t count;          /* product of dims */
} idx_header;

static size_t idx_esize(uint8_t type)
{
    switch (type) {
    case 0x08: case 0x09: return 1;
    case 0x0B: return 2;
    case 0x0C: case 0x0D: return 4;
    case 0x0E: return 8;
    }
    return 0;
}

static const char *idx_type_name(uint8_t type)
{
    switch (type) {
    case 0x08: return "u8";
    case 0x09: return "i8";
    case 0x0B: return "i16";
    case 0x0C: return "i32";
    case 0x0D: return "f32";
    case 0x0E: return "f64";
    }
    return "unknown";
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const unsigned char *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* Element i of a big-endian buffer of `type`, as a double. */
static double idx_value(const unsigned char *p, uint8_t type)
{
    switch (type) {
    case 0x08: return (double)p[0];
    case 0x09: return (double)(int8_t)p[0];
    case 0x0B: return (double)(int16_t)(uint16_t)((unsigned)p[0] << 8 | p[1]);
    case 0x0C: return (double)(int32_t)be32(p);
    case 0x0D: {
        uint32_t u = be32(p);
        float f;
        memcpy(&f, &u, sizeof f);
        return (double)f;
    }
    default: {
        uint64_t u = be64(p);
        double d;
        memcpy(&d, &u, sizeof d);
        return d;
    }
    }
}

/* Read and validate a header; `max_rank` 1 for labels.  The payload it
   announces is checked against what the file can hold. */
static mgrad_status idx_read_header(mgr_reader *r, int max_rank, const char *what,
                                    idx_header *h)
{
    mgrad_context *ctx = r->ctx;
    unsigned char m[4];
    MGRAD_FORWARD(mgr_reader_read(r, m, 4, "the IDX magic"));
    MGRAD_RETURN_IF(ctx, m[0] != 0 || m[1] != 0, MGRAD_ERR_FORMAT,
                    "%s: %s: not an IDX file (starts with %02x %02x, expected 00 00)",
                    r->fn, r->path, m[0], m[1]);
    h->type = m[2];
    h->rank = m[3];
    h->esize = idx_esize(h->type);
    MGRAD_RETURN_IF(ctx, h->esize == 0, MGRAD_ERR_FORMAT,
                    "%s: %s: unknown IDX element type 0x%02x (expected 08, 09, 0b, 0c, "
                    "0d or 0e)", r->fn, r->path, h->type);
    MGRAD_RETURN_IF(ctx, h->rank < 1 || h->rank > max_rank, MGRAD_ERR_FORMAT,
                    "%s: %s: %s have %d dimensions in the IDX header; expected 1 to %d",
                    r->fn, r->path, what, h->rank, max_rank);
    unsigned char d[4 * IDX_MAX_RANK];
    MGRAD_FORWARD(mgr_reader_read(r, d, 4u * h->rank, "the IDX dimensions"));
    h->count = 1;
    for (int i = 0; i < h->rank; i++) {
        uint32_t v = be32(d + 4 * i);
        MGRAD_RETURN_IF(ctx, v == 0, MGRAD_ERR_FORMAT,
                        "%s: %s: dimension %d of the IDX header is 0", r->fn, r->path, i);
        h->dims[i] = v;
        MGRAD_RETURN_IF(ctx, h->count > UINT64_MAX / v, MGRAD_ERR_FORMAT,
                        "%s: %s: the IDX dimensions overflow", r->fn, r->path);
        h->count *= v;
    }
    MGRAD_RETURN_IF(ctx, h->count > UINT64_MAX / h->esize, MGRAD_ERR_FORMAT,
                    "%s: %s: the IDX dimensions overflow", r->fn, r->path);
    return mgr_reader_check_room(r, h->count * h->esize, what);
}

/* Stream h->count elements into the dataset's inputs, scaled.  Byte types
   go into a compact dataset (data/dataset.h): the code of an element is its
   byte, and palette[b] the value the dense path would store for byte b, so
   both hold the same bits. */
static mgrad_status idx_read_images(mgr_reader *r, const idx_header *h, double scale,
                                    mgrad_dataset *ds, unsigned char *chunk,
                                    size_t chunk_bytes)
{
    mgrad_context *ctx = r->ctx;
    unsigned char ok[256] = {0};
    if (ds->codes != NULL) {
        for (int b = 0; b < 256; b++) {
            unsigned char elem[8] = {(unsigned char)b}; /* room for idx_value */
            ok[b] = (unsigned char)mgr_put_real(ds->palette, ctx->dtype, (size_t)b,
                                                idx_value(elem, h->type) * scale);
            if (!ok[b]) mgr_put_real(ds->palette, ctx->dtype, (size_t)b, 0.0);
        }
    }
    size_t per_chunk = chunk_bytes / h->esize;
    uint64_t done = 0;
    while (done < h->count) {
        size_t k = h->count - done < per_chunk ? (size_t)(h->count - done) : per_chunk;
        MGRAD_FORWARD(mgr_reader_read(r, chunk, k * h->esize, "the images"));
        for (size_t j = 0; j < k; j++) {
            const unsigned char *p = chunk + j * h->esize;
            double v = idx_value(p, h->type);
            int stored;
            if (ds->codes != NULL) {
                ds->codes[done + j] = p[0];
                stored = ok[p[0]];
            } else {
                stored = mgr_put_real(ds->inputs, ctx->dtype, (size_t)(done + j), v * scale);
            }
            if (!stored)
                return mgr_error(ctx, MGRAD_ERR_NONFINITE,
                                 "%s: %s: value %llu (example %llu) is %g, which scaled "
                                 "by %g is not finite in %s", r->fn, r->path,
                                 (unsigned long long)(done + j),
                                 (unsigned long long)((done + j) / (uint64_t)ds->features),
                                 v, scale, mgr_dtype_name(ctx->dtype));
        }
        done += k;
    }
    return mgr_reader_expect_end(r);
}

static mgrad_status idx_read_labels(mgr_reader *r, const idx_header *h, mgrad_dataset *ds,
                                    unsigned char *chunk, size_t chunk_bytes,
                                    int64_t *max_label)
{
    mgrad_context *ctx = r->ctx;
    MGRAD_RETURN_IF(ctx, h->type == 0x0D || h->type == 0x0E, MGRAD_ERR_FORMAT,
                    "%s: %s: labels are of IDX type %s; expected an integer type",
                    r->fn, r->path, idx_type_name(h->type));
    size_t per_chunk = chunk_bytes / h->esize;
    uint64_t done = 0;
    *max_label = -1;
    while (done < h->count) {
        size_t k = h->count - done < per_chunk ? (size_t)(h->count - done) : per_chunk;
        MGRAD_FORWARD(mgr_reader_read(r, chunk, k * h->esize, "the labels"));
        for (size_t j = 0; j < k; j++) {
            double v = idx_value(chunk + j * h->esize, h->type);
            MGRAD_RETURN_IF(ctx, v < 0, MGRAD_ERR_FORMAT,
                            "%s: %s: label %lld of example %llu is negative", r->fn,
                            r->path, (long long)v, (unsigned long long)(done + j));
            int32_t label = (int32_t)v;
            ds->labels[done + j] = label;
            if (label > *max_label) *max_label = label;
        }
        done += k;
    }
    return mgr_reader_expect_end(r);
}

mgrad_status mgr_load_idx(mgrad_dataset **out, mgrad_context *ctx, const char *fn,
                          const char *images_path, const char *labels_path,
                          int32_t num_classes, double scale)
{
    if (ctx == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(ctx, out == NULL || images_path == NULL, MGRAD_ERR_NULL,
                    "%s: out and images_path must not be NULL", fn);
    MGRAD_RETURN_IF(ctx, !isfinite(scale) || scale == 0.0, MGRAD_ERR_INVALID,
                    "%s: scale = %g; must be finite and non-zero", fn, scale);
    MGRAD_FORWARD(mgr_check_num_classes(ctx, fn, num_classes));

    mgr_reader images, labels;
    memset(&labels, 0, sizeof labels);
    mgrad_dataset *ds = NULL;
    unsigned char *chunk = NULL;
    idx_header hi, hl;
    mgrad_status s = mgr_reader_open(&images, ctx, fn, images_path);
    if (s != MGRAD_OK) return s;
    if (labels_path != NULL) {
        s = mgr_reader_open(&labels, ctx, fn, labels_path);
        if (s != MGRAD_OK) goto done;
    }
    s = idx_read_header(&images, IDX_MAX_RANK, "images", &hi);
    if (s != MGRAD_OK) goto done;
    if (labels_path != NULL) {
        s = idx_read_header(&labels, 1, "labels", &hl);
        if (s != MGRAD_OK) goto done;
        if (hl.dims[0] != hi.dims[0]) {
            s = mgr_error(ctx, MGRAD_ERR_FORMAT, "%s: %s holds %lld labels but %s holds "
                          "%lld images", fn, labels_path, (long long)hl.dims[0],
                          images_path, (long long)hi.dims[0]);
            goto done;
        }
    }
    size_t chunk_bytes = 0;
    s = mgr_chunk_alloc(ctx, fn, hi.count * hi.esize,
                        labels_path != NULL ? hl.count * hl.esize : 0, &chunk, &chunk_bytes);
    if (s != MGRAD_OK) goto done;
    {
        int64_t one = 1;
        int32_t ndim = hi.rank > 1 ? hi.rank - 1 : 1;
        const int64_t *shape = hi.rank > 1 ? hi.dims + 1 : &one;
        /* Byte images: one code per value and a palette of 256 values. */
        s = hi.esize == 1
                ? mgr_dataset_alloc_compact(ctx, fn, hi.dims[0], ndim, shape,
                                            labels_path != NULL, 256, &ds)
                : mgr_dataset_alloc(ctx, fn, hi.dims[0], ndim, shape, labels_path != NULL, &ds);
        if (s != MGRAD_OK) goto done;
    }
    s = idx_read_images(&images, &hi, scale, ds, chunk, chunk_bytes);
    if (s != MGRAD_OK) goto done;
    if (labels_path != NULL) {
        int64_t max_label = -1;
        s = idx_read_labels(&labels, &hl, ds, chunk, chunk_bytes, &max_label);
        if (s != MGRAD_OK) goto done;
        s = mgr_finish_labels(ds, fn, labels_path, num_classes, max_label);
    }
done:
    mgr_free(ctx, chunk);
    mgr_reader_close(&images);
    mgr_reader_close(&labels);
    if (s != MGRAD_OK) {
        mgrad_dataset_destroy(ds);
        return s;
    }
    *out = ds;
    return MGRAD_OK;
}

mgrad_status mgrad_dataset_load_idx(mgrad_dataset **out, mgrad_context *ctx,
                                    const char *images_path, const char *labels_path,
                                    int32_t num_classes, double scale)
{
    return mgr_load_idx(out, ctx, "mgrad_dataset_load_idx", images_path, labels_path,
                        num_classes, scale);
}
