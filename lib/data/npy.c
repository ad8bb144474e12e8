/*
 * npy.c - NumPy's .npy format, versions 1.0, 2.0 and 3.0, C order.
 *
 * Layout: "\x93NUMPY", major, minor, a little-endian header length (uint16
 * in 1.0, uint32 in 2.0 and 3.0), then that many bytes of header: a Python
 * dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (N, ...), }
 * padded with spaces and ended by "\n"; then the data and nothing after it.
 * The dict is parsed strictly: the three keys exactly once each, nothing
 * else, every token checked, every number bounded.
 */
#include <string.h>

#include "data/io.h"
#include "metagrad/data.h"

#define NPY_MAX_HEADER 65536u
#define NPY_MAX_RANK 8     /* more than any loader accepts; bounds the parse */

typedef enum npy_type { NPY_F4 = 1, NPY_F8, NPY_U1, NPY_I8, NPY_I4 } npy_type;

typedef struct npy_header {
    npy_type type;
    size_t esize;
    int rank;
    int64_t dims[NPY_MAX_RANK];
    uint64_t count;
} npy_header;

/* A cursor over the header text, with the reader for messages. */
typedef struct npy_parser {
    const mgr_reader *r;
    const char *start, *p, *end;
} npy_parser;

static mgrad_status npy_bad(const npy_parser *ps, const char *what)
{
    const mgr_reader *r = ps->r;
    return mgr_error(r->ctx, MGRAD_ERR_FORMAT,
                     "%s: %s: malformed NPY header: %s at header byte %ld", r->fn, r->path,
                     what, (long)(ps->p - ps->start));
}

static void skip_ws(npy_parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t')) ps->p++;
}

static int accept(npy_parser *ps, char c)
{
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == c) {
        ps->p++;
        return 1;
    }
    return 0;
}

/* A quoted string ('...' or "...") without escapes, into buf. */
static int parse_string(npy_parser *ps, char *buf, size_t cap)
{
    skip_ws(ps);
    if (ps->p >= ps->end || (*ps->p != '\'' && *ps->p != '"')) return 0;
    char q = *ps->p++;
    size_t n = 0;
    while (ps->p < ps->end && *ps->p != q) {
        if (*ps->p == '\\' || n + 1 >= cap) return 0;
        buf[n++] = *ps->p++;
    }
    if (ps->p >= ps->end) return 0;
    ps->p++;
    buf[n] = '\0';
    return 1;
}

static int parse_word(npy_parser *ps, const char *word)
{
    skip_ws(ps);
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) return 0;
    ps->p += n;
    return 1;
}

/* A non-negative decimal integer that fits in int64 ("L" suffix of old
   Python 2 files allowed). */
static int parse_int(npy_parser *ps, int64_t *out)
{
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') return 0;
    int64_t v = 0;
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
        int d = *ps->p++ - '0';
        if (v > (INT64_MAX - d) / 10) return 0;
        v = v * 10 + d;
    }
    if (ps->p < ps->end && *ps->p == 'L') ps->p++;
    *out = v;
    return 1;
}

static mgrad_status npy_descr(const mgr_reader *r, const char *d, npy_header *h)
{
    static const struct { const char *name; npy_type type; size_t esize; } known[] = {
        {"<f4", NPY_F4, 4}, {"<f8", NPY_F8, 8}, {"|u1", NPY_U1, 1}, {"<u1", NPY_U1, 1},
        {"<i8", NPY_I8, 8}, {"<i4", NPY_I4, 4},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strcmp(d, known[i].name) == 0) {
            h->type = known[i].type;
            h->esize = known[i].esize;
            return MGRAD_OK;
        }
    }
    MGRAD_RETURN_IF(r->ctx, d[0] == '>', MGRAD_ERR_UNSUPPORTED,
                    "%s: %s: big-endian dtype '%s' is not supported; save with the "
                    "little-endian dtype ('<%s')", r->fn, r->path, d, d + 1);
    return mgr_error(r->ctx, MGRAD_ERR_UNSUPPORTED,
                     "%s: %s: dtype '%s' is not supported (use <f4, <f8, |u1 or <i8; "
                     "labels may also be <i4)", r->fn, r->path, d);
}

static mgrad_status npy_parse_dict(const mgr_reader *r, const char *text, size_t len,
                                   npy_header *h)
{
    npy_parser ps = {r, text, text, text + len};
    char key[32], descr[32];
    int have_descr = 0, have_order = 0, have_shape = 0, fortran = 0;
    if (!accept(&ps, '{')) return npy_bad(&ps, "expected '{'");
    for (;;) {
        if (accept(&ps, '}')) break;
        if (!parse_string(&ps, key, sizeof key)) return npy_bad(&ps, "expected a key");
        if (!accept(&ps, ':')) return npy_bad(&ps, "expected ':'");
        if (strcmp(key, "descr") == 0 && !have_descr) {
            if (!parse_string(&ps, descr, sizeof descr))
                return npy_bad(&ps, "'descr' is not a simple dtype string");
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0 && !have_order) {
            if (parse_word(&ps, "True")) fortran = 1;
            else if (!parse_word(&ps, "False"))
                return npy_bad(&ps, "'fortran_order' is not True or False");
            have_order = 1;
        } else if (strcmp(key, "shape") == 0 && !have_shape) {
            if (!accept(&ps, '(')) return npy_bad(&ps, "'shape' is not a tuple");
            h->rank = 0;
            while (!accept(&ps, ')')) {
                if (h->rank == NPY_MAX_RANK)
                    return npy_bad(&ps, "'shape' has too many dimensions");
                if (!parse_int(&ps, &h->dims[h->rank]))
                    return npy_bad(&ps, "a 'shape' entry is not a non-negative integer");
                h->rank++;
                if (!accept(&ps, ',')) {
                    if (!accept(&ps, ')')) return npy_bad(&ps, "expected ',' or ')'");
                    if (h->rank == 1) return npy_bad(&ps, "a 1-tuple needs a comma");
                    break;
                }
            }
            have_shape = 1;
        } else {
            return mgr_error(r->ctx, MGRAD_ERR_FORMAT,
                             "%s: %s: malformed NPY header: unexpected or repeated key "
                             "'%s'", r->fn, r->path, key);
        }
        if (!accept(&ps, ',')) {
            if (!accept(&ps, '}')) return npy_bad(&ps, "expected ',' or '}'");
            break;
        }
    }
    skip_ws(&ps);
    if (ps.p != ps.end) return npy_bad(&ps, "unexpected text after the dictionary");
    if (!have_descr || !have_order || !have_shape)
        return mgr_error(r->ctx, MGRAD_ERR_FORMAT,
                         "%s: %s: malformed NPY header: missing key '%s'", r->fn, r->path,
                         !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");
    MGRAD_FORWARD(npy_descr(r, descr, h));
    MGRAD_RETURN_IF(r->ctx, fortran, MGRAD_ERR_UNSUPPORTED,
                    "%s: %s: Fortran-order arrays are not supported; save a C-order "
                    "array (numpy.ascontiguousarray)", r->fn, r->path);
    return MGRAD_OK;
}

/* Read the header text (hlen bytes) into `text` and parse it. */
static mgrad_status npy_check_text(mgr_reader *r, char *text, uint32_t hlen, npy_header *h)
{
    mgrad_context *ctx = r->ctx;
    MGRAD_FORWARD(mgr_reader_read(r, text, hlen, "the NPY header"));
    MGRAD_RETURN_IF(ctx, text[hlen - 1] != '\n', MGRAD_ERR_FORMAT,
                    "%s: %s: malformed NPY header: it does not end with a newline",
                    r->fn, r->path);
    for (uint32_t i = 0; i + 1 < hlen; i++)
        MGRAD_RETURN_IF(ctx, (unsigned char)text[i] < 0x20 && text[i] != '\t',
                        MGRAD_ERR_FORMAT, "%s: %s: malformed NPY header: control byte "
                        "0x%02x at header byte %u", r->fn, r->path,
                        (unsigned char)text[i], (unsigned)i);
    return npy_parse_dict(r, text, hlen - 1, h);
}

static mgrad_status npy_read_header(mgr_reader *r, npy_header *h)
{
    mgrad_context *ctx = r->ctx;
    unsigned char m[10];
    MGRAD_FORWARD(mgr_reader_read(r, m, 8, "the NPY magic and version"));
    MGRAD_RETURN_IF(ctx, memcmp(m, "\x93NUMPY", 6) != 0, MGRAD_ERR_FORMAT,
                    "%s: %s: not an NPY file (bad magic)", r->fn, r->path);
    MGRAD_RETURN_IF(ctx, m[6] < 1 || m[6] > 3 || m[7] != 0, MGRAD_ERR_FORMAT,
                    "%s: %s: NPY format version %d.%d; this library reads 1.0, 2.0 and "
                    "3.0", r->fn, r->path, m[6], m[7]);
    uint32_t hlen;
    if (m[6] == 1) {
        MGRAD_FORWARD(mgr_reader_read(r, m + 8, 2, "the NPY header length"));
        hlen = (uint32_t)m[8] | (uint32_t)m[9] << 8;
    } else {
        MGRAD_FORWARD(mgr_reader_read(r, m + 6, 4, "the NPY header length"));
        hlen = (uint32_t)m[6] | (uint32_t)m[7] << 8 | (uint32_t)m[8] << 16 |
               (uint32_t)m[9] << 24;
    }
    MGRAD_RETURN_IF(ctx, hlen < 2 || hlen > NPY_MAX_HEADER, MGRAD_ERR_FORMAT,
                    "%s: %s: NPY header length %u is out of range (2 to %u)", r->fn,
                    r->path, (unsigned)hlen, NPY_MAX_HEADER);
    MGRAD_FORWARD(mgr_reader_check_room(r, hlen, "the NPY header"));
    char *text = mgr_alloc(ctx, hlen);
    MGRAD_RETURN_IF(ctx, text == NULL, MGRAD_ERR_NOMEM,
                    "%s: %s: out of memory for the NPY header", r->fn, r->path);
    mgrad_status s = npy_check_text(r, text, hlen, h);
    mgr_free(ctx, text);
    MGRAD_FORWARD(s);
    h->count = 1;
    for (int i = 0; i < h->rank; i++) {
        MGRAD_RETURN_IF(ctx, h->dims[i] != 0 && h->count > UINT64_MAX / (uint64_t)h->dims[i],
                        MGRAD_ERR_FORMAT, "%s: %s: the NPY shape overflows", r->fn, r->path);
        h->count *= (uint64_t)h->dims[i];
    }
    MGRAD_RETURN_IF(ctx, h->count > UINT64_MAX / h->esize, MGRAD_ERR_FORMAT,
                    "%s: %s: the NPY shape overflows", r->fn, r->path);
    return MGRAD_OK;
}

static double npy_value(const unsigned char *p, npy_type type)
{
    uint64_t u = 0;
    switch (type) {
    case NPY_U1: return (double)p[0];
    case NPY_F4: case NPY_I4: {
        uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24;
        if (type == NPY_I4) return (double)(int32_t)v;
        float f;
        memcpy(&f, &v, sizeof f);
        return (double)f;
    }
    case NPY_F8: case NPY_I8:
        for (int i = 7; i >= 0; i--) u = u << 8 | p[i];
        if (type == NPY_I8) return (double)(int64_t)u;
        double d;
        memcpy(&d, &u, sizeof d);
        return d;
    }
    return 0.0;
}

/* Labels: 64-bit integers are checked exactly, not through a double. */
static int64_t npy_int(const unsigned char *p, npy_type type)
{
    uint64_t u = 0;
    switch (type) {
    case NPY_U1: return p[0];
    case NPY_I4:
        return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                         (uint32_t)p[3] << 24);
    default:
        for (int i = 7; i >= 0; i--) u = u << 8 | p[i];
        return (int64_t)u;
    }
}

mgrad_status mgrad_dataset_load_npy(mgrad_dataset **out, mgrad_context *ctx,
                                    const char *inputs_path, const char *labels_path,
                                    int32_t num_classes)
{
    static const char fn[] = "mgrad_dataset_load_npy";
    if (ctx == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(ctx, out == NULL || inputs_path == NULL, MGRAD_ERR_NULL,
                    "%s: out and inputs_path must not be NULL", fn);
    MGRAD_FORWARD(mgr_check_num_classes(ctx, fn, num_classes));

    mgr_reader in, lab;
    memset(&lab, 0, sizeof lab);
    npy_header hi, hl;
    mgrad_dataset *ds = NULL;
    unsigned char *chunk = NULL;
    mgrad_status s = mgr_reader_open(&in, ctx, fn, inputs_path);
    if (s != MGRAD_OK) return s;
    if (labels_path != NULL && (s = mgr_reader_open(&lab, ctx, fn, labels_path)) != MGRAD_OK)
        goto done;
    if ((s = npy_read_header(&in, &hi)) != MGRAD_OK) goto done;
    if (hi.rank < 1 || hi.rank > 4) {
        s = mgr_error(ctx, hi.rank < 1 ? MGRAD_ERR_FORMAT : MGRAD_ERR_UNSUPPORTED,
                      "%s: %s: inputs have %d dimensions; expected (N,) up to "
                      "(N, d1, d2, d3)", fn, inputs_path, hi.rank);
        goto done;
    }
    if (hi.count == 0) {
        s = mgr_error(ctx, MGRAD_ERR_INVALID, "%s: %s: the array is empty (a dimension of "
                      "its shape is 0)", fn, inputs_path);
        goto done;
    }
    if ((s = mgr_reader_check_room(&in, hi.count * hi.esize, "the inputs")) != MGRAD_OK)
        goto done;
    if (labels_path != NULL) {
        if ((s = npy_read_header(&lab, &hl)) != MGRAD_OK) goto done;
        if (hl.type == NPY_F4 || hl.type == NPY_F8 || hl.rank != 1) {
            s = mgr_error(ctx, MGRAD_ERR_FORMAT, "%s: %s: labels must be a 1-D integer "
                          "array (<i8, <i4 or |u1)", fn, labels_path);
            goto done;
        }
        if (hl.dims[0] != hi.dims[0]) {
            s = mgr_error(ctx, MGRAD_ERR_FORMAT, "%s: %s holds %lld labels but %s holds "
                          "%lld examples", fn, labels_path, (long long)hl.dims[0],
                          inputs_path, (long long)hi.dims[0]);
            goto done;
        }
        if ((s = mgr_reader_check_room(&lab, hl.count * hl.esize, "the labels")) != MGRAD_OK)
            goto done;
    }
    size_t chunk_bytes = 0;
    s = mgr_chunk_alloc(ctx, fn, hi.count * hi.esize,
                        labels_path != NULL ? hl.count * hl.esize : 0, &chunk, &chunk_bytes);
    if (s != MGRAD_OK) goto done;
    {
        int64_t one = 1;
        s = mgr_dataset_alloc(ctx, fn, hi.dims[0], hi.rank > 1 ? hi.rank - 1 : 1,
                              hi.rank > 1 ? hi.dims + 1 : &one, labels_path != NULL, &ds);
        if (s != MGRAD_OK) goto done;
    }
    size_t per_chunk = chunk_bytes / hi.esize;
    for (uint64_t done_n = 0; done_n < hi.count;) {
        size_t k = hi.count - done_n < per_chunk ? (size_t)(hi.count - done_n) : per_chunk;
        if ((s = mgr_reader_read(&in, chunk, k * hi.esize, "the inputs")) != MGRAD_OK)
            goto done;
        for (size_t j = 0; j < k; j++) {
            double v = npy_value(chunk + j * hi.esize, hi.type);
            if (!mgr_put_real(ds->inputs, ctx->dtype, (size_t)(done_n + j), v)) {
                s = mgr_error(ctx, MGRAD_ERR_NONFINITE, "%s: %s: value %llu (example "
                              "%llu) is %g, not finite in %s", fn, inputs_path,
                              (unsigned long long)(done_n + j),
                              (unsigned long long)((done_n + j) / (uint64_t)ds->features),
                              v, mgr_dtype_name(ctx->dtype));
                goto done;
            }
        }
        done_n += k;
    }
    if ((s = mgr_reader_expect_end(&in)) != MGRAD_OK) goto done;
    if (labels_path != NULL) {
        int64_t max_label = -1;
        per_chunk = chunk_bytes / hl.esize;
        for (uint64_t done_n = 0; done_n < hl.count;) {
            size_t k = hl.count - done_n < per_chunk ? (size_t)(hl.count - done_n)
                                                     : per_chunk;
            if ((s = mgr_reader_read(&lab, chunk, k * hl.esize, "the labels")) != MGRAD_OK)
                goto done;
            for (size_t j = 0; j < k; j++) {
                int64_t v = npy_int(chunk + j * hl.esize, hl.type);
                if (v < 0 || v >= INT32_MAX) {
                    s = mgr_error(ctx, MGRAD_ERR_FORMAT, "%s: %s: label %lld of example "
                                  "%llu is %s", fn, labels_path, (long long)v,
                                  (unsigned long long)(done_n + j),
                                  v < 0 ? "negative" : "too large");
                    goto done;
                }
                ds->labels[done_n + j] = (int32_t)v;
                if (v > max_label) max_label = v;
            }
            done_n += k;
        }
        if ((s = mgr_reader_expect_end(&lab)) != MGRAD_OK) goto done;
        s = mgr_finish_labels(ds, fn, labels_path, num_classes, max_label);
    }
done:
    mgr_free(ctx, chunk);
    mgr_reader_close(&in);
    mgr_reader_close(&lab);
    if (s != MGRAD_OK) {
        mgrad_dataset_destroy(ds);
        return s;
    }
    *out = ds;
    return MGRAD_OK;
}
