/*
 * csv.c - numeric CSV: one example per line, comma-separated decimal
 * numbers, the same number of columns on every line, an optional header
 * line and an optional integer label column.
 *
 * The file is read whole (bounded by its size, or for gzip by the maximum
 * deflate ratio) into a NUL-terminated buffer, then parsed in two passes:
 * the first counts rows and columns, the second converts.  Every error names
 * the 1-based line and column.
 */
#include <stdlib.h>
#include <string.h>

#include "data/io.h"
#include "metagrad/data.h"

typedef struct csv_line {
    const char *p, *end;      /* without the "\n" or "\r\n" */
} csv_line;

/* The line starting at *pos; advances *pos past its newline. */
static csv_line next_line(const char **pos, const char *end)
{
    csv_line l;
    l.p = *pos;
    const char *nl = memchr(*pos, '\n', (size_t)(end - *pos));
    l.end = nl != NULL ? nl : end;
    *pos = nl != NULL ? nl + 1 : end;
    if (l.end > l.p && l.end[-1] == '\r') l.end--;
    return l;
}

/* Columns of a line, or -1 beyond what an int32 counts. */
static int32_t count_columns(csv_line l)
{
    int32_t cols = 1;
    for (const char *q = l.p; q < l.end; q++)
        if (*q == ',' && cols++ == INT32_MAX - 1) return -1;
    return cols;
}

/* Parse one field of line `line_no` at column `col` (both 1-based) from
   *q, leaving *q on the separator.  The buffer is NUL-terminated and a
   number never extends over "," or a newline, so strtod stays in the line. */
static mgrad_status parse_field(const mgr_reader *r, const char **q, const char *end,
                                long long line_no, int col, double *out)
{
    mgrad_context *ctx = r->ctx;
    const char *p = *q;
    while (p < end && (*p == ' ' || *p == '\t')) p++;
    MGRAD_RETURN_IF(ctx, p < end && *p == '"', MGRAD_ERR_UNSUPPORTED,
                    "%s: %s: line %lld, column %d: quoted fields are not supported", r->fn,
                    r->path, line_no, col);
    MGRAD_RETURN_IF(ctx, p == end || *p == ',', MGRAD_ERR_FORMAT,
                    "%s: %s: line %lld, column %d: empty field", r->fn, r->path, line_no,
                    col);
    /* strtod skips leading white space, including newlines: rule it out. */
    MGRAD_RETURN_IF(ctx, *p == '\r' || *p == '\v' || *p == '\f' || *p == '\n',
                    MGRAD_ERR_FORMAT, "%s: %s: line %lld, column %d: stray control "
                    "character", r->fn, r->path, line_no, col);
    char *after = NULL;
    double v = strtod(p, &after);
    const char *a = after;
    while (a < end && (*a == ' ' || *a == '\t')) a++;
    if (a == p || after == p || a > end || (a < end && *a != ',')) {
        const char *fe = p;
        while (fe < end && *fe != ',') fe++;
        int shown = (int)(fe - p) > 40 ? 40 : (int)(fe - p);
        return mgr_error(ctx, MGRAD_ERR_FORMAT, "%s: %s: line %lld, column %d: '%.*s%s' is "
                         "not a number", r->fn, r->path, line_no, col, shown, p,
                         shown < (int)(fe - p) ? "..." : "");
    }
    MGRAD_RETURN_IF(ctx, !isfinite(v), MGRAD_ERR_NONFINITE,
                    "%s: %s: line %lld, column %d: %g is not finite", r->fn, r->path,
                    line_no, col, v);
    *q = a;
    *out = v;
    return MGRAD_OK;
}

static mgrad_status csv_parse(const mgr_reader *r, const char *text, size_t len,
                              int32_t label_column, int32_t has_header,
                              int32_t num_classes, mgrad_dataset **out)
{
    mgrad_context *ctx = r->ctx;
    const char *fn = r->fn, *path = r->path;
    const char *end = text + len, *pos = text;
    MGRAD_RETURN_IF(ctx, memchr(text, '\0', len) != NULL, MGRAD_ERR_FORMAT,
                    "%s: %s: the file contains a NUL byte; it is not a text CSV file", fn,
                    path);
    long long first_line = 1;
    if (has_header) {
        MGRAD_RETURN_IF(ctx, len == 0, MGRAD_ERR_INVALID, "%s: %s: the file is empty", fn,
                        path);
        next_line(&pos, end);
        first_line = 2;
    }
    /* Pass 1: rows and columns.  Empty lines are allowed only at the end. */
    const char *data = pos;
    int64_t rows = 0;
    int32_t cols = 0;
    long long line_no = first_line, empty_at = 0;
    while (pos < end) {
        csv_line l = next_line(&pos, end);
        if (l.p == l.end) {
            if (empty_at == 0) empty_at = line_no;
        } else {
            MGRAD_RETURN_IF(ctx, empty_at != 0, MGRAD_ERR_FORMAT,
                            "%s: %s: line %lld is empty but more rows follow", fn, path,
                            empty_at);
            int32_t c = count_columns(l);
            MGRAD_RETURN_IF(ctx, c < 0, MGRAD_ERR_FORMAT, "%s: %s: line %lld has too "
                            "many columns", fn, path, line_no);
            if (rows == 0) cols = c;
            MGRAD_RETURN_IF(ctx, c != cols, MGRAD_ERR_FORMAT,
                            "%s: %s: line %lld has %d columns but line %lld has %d", fn,
                            path, line_no, (int)c, first_line, (int)cols);
            rows++;
        }
        line_no++;
    }
    MGRAD_RETURN_IF(ctx, rows == 0, MGRAD_ERR_INVALID, "%s: %s: the file has no data rows",
                    fn, path);
    MGRAD_RETURN_IF(ctx, label_column >= cols, MGRAD_ERR_INVALID,
                    "%s: %s: label_column = %d but the file has %d columns (0-based)", fn,
                    path, (int)label_column, (int)cols);
    int64_t features = cols - (label_column >= 0 ? 1 : 0);
    MGRAD_RETURN_IF(ctx, features < 1, MGRAD_ERR_INVALID,
                    "%s: %s: the only column is the label; there are no inputs", fn, path);

    mgrad_dataset *ds = NULL;
    MGRAD_FORWARD(mgr_dataset_alloc(ctx, fn, rows, 1, &features, label_column >= 0, &ds));
    /* Pass 2: convert. */
    mgrad_status s = MGRAD_OK;
    int64_t max_label = -1, row = 0;
    pos = data;
    line_no = first_line;
    while (pos < end && row < rows) {
        csv_line l = next_line(&pos, end);
        if (l.p == l.end) {
            line_no++;
            continue;
        }
        const char *q = l.p;
        int64_t f = 0;
        for (int32_t c = 0; c < cols; c++) {
            double v = 0.0;
            if (c > 0) q++; /* the ',' */
            s = parse_field(r, &q, l.end, line_no, c + 1, &v);
            if (s != MGRAD_OK) goto fail;
            if (c == label_column) {
                if (v < 0 || v >= (double)INT32_MAX || v != (double)(int64_t)v) {
                    s = mgr_error(ctx, MGRAD_ERR_FORMAT, "%s: %s: line %lld, column %d: "
                                  "label %g is not a non-negative integer", fn, path,
                                  line_no, (int)c + 1, v);
                    goto fail;
                }
                ds->labels[row] = (int32_t)v;
                if (ds->labels[row] > max_label) max_label = ds->labels[row];
            } else if (!mgr_put_real(ds->inputs, ctx->dtype,
                                     (size_t)(row * features + f++), v)) {
                s = mgr_error(ctx, MGRAD_ERR_NONFINITE, "%s: %s: line %lld, column %d: %g "
                              "overflows %s", fn, path, line_no, (int)c + 1, v,
                              mgr_dtype_name(ctx->dtype));
                goto fail;
            }
        }
        row++;
        line_no++;
    }
    if (label_column >= 0) {
        s = mgr_finish_labels(ds, fn, path, num_classes, max_label);
        if (s != MGRAD_OK) goto fail;
    }
    *out = ds;
    return MGRAD_OK;
fail:
    mgrad_dataset_destroy(ds);
    return s;
}

mgrad_status mgrad_dataset_load_csv(mgrad_dataset **out, mgrad_context *ctx,
                                    const char *path, int32_t label_column,
                                    int32_t has_header, int32_t num_classes)
{
    static const char fn[] = "mgrad_dataset_load_csv";
    if (ctx == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(ctx, out == NULL || path == NULL, MGRAD_ERR_NULL,
                    "%s: out and path must not be NULL", fn);
    MGRAD_RETURN_IF(ctx, label_column < -1, MGRAD_ERR_INVALID,
                    "%s: label_column = %d; pass -1 for none or a 0-based column", fn,
                    (int)label_column);
    MGRAD_FORWARD(mgr_check_num_classes(ctx, fn, num_classes));
    mgr_reader r;
    MGRAD_FORWARD(mgr_reader_open(&r, ctx, fn, path));
    char *text = NULL;
    size_t len = 0;
    mgrad_status s = mgr_reader_read_all(&r, &text, &len);
    mgr_reader_close(&r);
    if (s != MGRAD_OK) return s;
    mgrad_dataset *ds = NULL;
    s = csv_parse(&r, text, len, label_column, has_header, num_classes, &ds);
    mgr_free(ctx, text);
    if (s != MGRAD_OK) return s;
    *out = ds;
    return MGRAD_OK;
}
