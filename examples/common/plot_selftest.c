/*
 * plot_selftest.c - self-check for examples/common/plot.c.
 *
 * Draws line plots and bar charts (normal data plus edge cases: NaN/Inf,
 * empty and constant data) into a fresh temporary directory and checks each
 * PNG: signature, chunk CRCs, IHDR (800x500, 8-bit RGB), that the IDAT
 * stream inflates to exactly height*(1+3*width) bytes, and that the plot
 * area holds pixels of the series/bar colours.
 *
 * Usage: plot_selftest [DIR]   (with DIR, the images are written there and
 * kept; without, a temporary directory is used and removed afterwards).
 */
#define _POSIX_C_SOURCE 200809L
#include "plot.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define W 800
#define H 500

static int failures;

#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                 \
            fputc('\n', stderr);                                          \
            failures++;                                                   \
        }                                                                 \
    } while (0)

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            unsigned char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, fp);
        n += got;
        if (got == 0)
            break;
    }
    fclose(fp);
    *len = n;
    return buf;
}

/* Validate the PNG at `path`; on success return its pixels (W*H*3 bytes,
   caller frees), else NULL. */
static unsigned char *load_png(const char *path)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    size_t len = 0;
    unsigned char *f = read_all(path, &len);
    CHECK(f != NULL, "cannot read %s", path);
    if (!f)
        return NULL;
    unsigned char *idat = NULL, *pixels = NULL;
    size_t idat_len = 0;
    int ok = 0, seen_ihdr = 0, seen_iend = 0;

    if (len < 8 || memcmp(f, sig, 8) != 0) {
        CHECK(0, "%s: bad PNG signature", path);
        goto out;
    }
    size_t off = 8;
    while (off + 12 <= len && !seen_iend) {
        uint32_t clen = be32(f + off);
        if (clen > len - off - 12) {
            CHECK(0, "%s: chunk length %u overruns file", path, (unsigned)clen);
            goto out;
        }
        const unsigned char *type = f + off + 4, *data = f + off + 8;
        uLong crc = crc32(crc32(0L, Z_NULL, 0), type, 4);
        crc = crc32(crc, data, clen);
        if ((uint32_t)crc != be32(data + clen)) {
            CHECK(0, "%s: bad CRC in %.4s chunk", path, (const char *)type);
            goto out;
        }
        if (memcmp(type, "IHDR", 4) == 0) {
            CHECK(off == 8 && clen == 13, "%s: IHDR must come first, 13 bytes", path);
            CHECK(be32(data) == W && be32(data + 4) == H, "%s: IHDR size %ux%u", path,
                  (unsigned)be32(data), (unsigned)be32(data + 4));
            CHECK(data[8] == 8 && data[9] == 2 && data[10] == 0 && data[11] == 0 &&
                      data[12] == 0,
                  "%s: IHDR depth/colour/method fields", path);
            seen_ihdr = 1;
        } else if (memcmp(type, "IDAT", 4) == 0) {
            unsigned char *nb = realloc(idat, idat_len + clen + 1);
            if (!nb) {
                CHECK(0, "out of memory");
                goto out;
            }
            idat = nb;
            memcpy(idat + idat_len, data, clen);
            idat_len += clen;
        } else if (memcmp(type, "IEND", 4) == 0) {
            CHECK(clen == 0, "%s: IEND with data", path);
            seen_iend = 1;
        }
        off += 12 + (size_t)clen;
    }
    CHECK(seen_ihdr && seen_iend && idat_len > 0, "%s: missing IHDR/IDAT/IEND", path);
    CHECK(off == len, "%s: trailing bytes after IEND", path);
    if (!seen_ihdr || !seen_iend || idat_len == 0)
        goto out;

    {
        size_t stride = (size_t)W * 3 + 1, expect = stride * H;
        uLongf rawlen = (uLongf)expect + 16; /* room to detect an oversized stream */
        unsigned char *raw = malloc(rawlen);
        if (!raw) {
            CHECK(0, "out of memory");
            goto out;
        }
        int zrc = uncompress(raw, &rawlen, idat, (uLong)idat_len);
        CHECK(zrc == Z_OK, "%s: uncompress failed (%d)", path, zrc);
        CHECK(rawlen == expect, "%s: inflated %lu bytes, want %zu", path,
              (unsigned long)rawlen, expect);
        if (zrc == Z_OK && rawlen == expect) {
            pixels = malloc((size_t)W * H * 3);
            if (pixels) {
                ok = 1;
                for (int y = 0; y < H; y++) {
                    const unsigned char *row = raw + (size_t)y * stride;
                    if (row[0] != 0) { /* the writer only uses filter 0 */
                        CHECK(0, "%s: row %d has filter %d", path, y, row[0]);
                        ok = 0;
                        break;
                    }
                    memcpy(pixels + (size_t)y * W * 3, row + 1, (size_t)W * 3);
                }
            }
        }
        free(raw);
    }
out:
    free(f);
    free(idat);
    if (!ok) {
        free(pixels);
        pixels = NULL;
    }
    return pixels;
}

/* pixels of colour (r,g,b) inside [x0,x1) x [y0,y1) */
static long count_colour(const unsigned char *px, int x0, int y0, int x1, int y1, int r,
                         int g, int b)
{
    long n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            const unsigned char *p = px + ((size_t)y * W + (size_t)x) * 3;
            if (p[0] == r && p[1] == g && p[2] == b)
                n++;
        }
    return n;
}

/* tab10: blue, orange, green */
static const int C0[3] = {31, 119, 180}, C1[3] = {255, 127, 14}, C2[3] = {44, 160, 44};

static void path_join(char *out, size_t sz, const char *dir, const char *name)
{
    snprintf(out, sz, "%s/%s", dir, name);
}

int main(int argc, char **argv)
{
    char tmpl[] = "/tmp/plot_selftest.XXXXXX";
    const char *dir;
    int keep = argc > 1;
    if (keep) {
        dir = argv[1];
    } else {
        const char *td = getenv("TMPDIR");
        static char tbuf[4096];
        if (td && *td && strlen(td) < sizeof tbuf - 32) {
            snprintf(tbuf, sizeof tbuf, "%s/plot_selftest.XXXXXX", td);
            dir = mkdtemp(tbuf);
        } else {
            dir = mkdtemp(tmpl);
        }
        if (!dir) {
            perror("mkdtemp");
            return 1;
        }
    }
    char p_lines[4200], p_bars[4200], p_edge[4200], p_edge2[4200], p_edge3[4200];
    path_join(p_lines, sizeof p_lines, dir, "lines.png");
    path_join(p_bars, sizeof p_bars, dir, "bars.png");
    path_join(p_edge, sizeof p_edge, dir, "lines_edge.png");
    path_join(p_edge2, sizeof p_edge2, dir, "bars_edge.png");
    path_join(p_edge3, sizeof p_edge3, dir, "empty.png");

    /* ---- line plot: two curves and a noisy one with gaps ---- */
    enum { N = 200 };
    double x[N], y0[N], y1[N], y2[N];
    for (int i = 0; i < N; i++) {
        x[i] = i * 0.05;
        y0[i] = sin(x[i]) * exp(-x[i] / 8.0);
        y1[i] = cos(x[i]) * 0.8;
        y2[i] = 0.3 * sin(3.0 * x[i]) - 0.2;
    }
    y2[50] = NAN;
    y2[51] = INFINITY;
    y2[120] = -INFINITY;
    x[130] = NAN;
    ex_series ser[3] = {
        {"damped sin(x)", x, y0, N},
        {"0.8*cos(x)", x, y1, N},
        {"0.3 sin(3x) - 0.2 [gaps]", x, y2, N},
    };
    int rc = ex_plot_lines(p_lines, "Line plot: loss vs. step (test)", "step",
                           "value (a.u.)", ser, 3);
    CHECK(rc == 0, "ex_plot_lines failed: %s", strerror(errno));
    unsigned char *px = load_png(p_lines);
    if (px) {
        /* the plot area is roughly x in [56,775], y in [52,448] */
        long n0 = count_colour(px, 60, 56, 770, 444, C0[0], C0[1], C0[2]);
        long n1 = count_colour(px, 60, 56, 770, 444, C1[0], C1[1], C1[2]);
        long n2 = count_colour(px, 60, 56, 770, 444, C2[0], C2[1], C2[2]);
        CHECK(n0 > 500 && n1 > 500 && n2 > 300,
              "series colours in plot area: %ld %ld %ld", n0, n1, n2);
        /* outside the plot area (title band, margins) no series colour */
        CHECK(count_colour(px, 0, 0, W, 40, C0[0], C0[1], C0[2]) == 0, "colour in title band");
        /* background is white */
        CHECK(count_colour(px, 0, 0, 10, 10, 255, 255, 255) == 100, "white background");
        /* some dark text pixels in the title band */
        CHECK(count_colour(px, 0, 0, W, 40, 0, 0, 0) > 50, "title text missing");
        free(px);
    } else {
        CHECK(0, "lines.png invalid");
    }

    /* ---- bar chart with error bars ---- */
    const char *labels[] = {"baseline", "dropout", "batchnorm",
                            "a very long label that must be truncated", "adam", "sgd"};
    double vals[] = {0.82, 0.87, 0.91, 0.78, 0.93, 0.71};
    double errs[] = {0.02, 0.015, 0.01, 0.04, 0.012, NAN};
    rc = ex_plot_bars(p_bars, "Bar chart: accuracy by model", "accuracy", labels, vals, errs,
                      6);
    CHECK(rc == 0, "ex_plot_bars failed: %s", strerror(errno));
    px = load_png(p_bars);
    if (px) {
        long b0 = count_colour(px, 60, 56, 770, 449, C0[0], C0[1], C0[2]);
        long b1 = count_colour(px, 60, 56, 770, 449, C1[0], C1[1], C1[2]);
        CHECK(b0 > 2000 && b1 > 2000, "bar colours in plot area: %ld %ld", b0, b1);
        free(px);
    } else {
        CHECK(0, "bars.png invalid");
    }

    /* ---- edge cases: must not crash, must still give valid PNGs ---- */
    double cx[3] = {1, 2, 3}, cy[3] = {5, 5, 5};
    double nx[2] = {NAN, INFINITY}, ny[2] = {1, 2};
    double one_x[1] = {2.0}, one_y[1] = {-1e6};
    ex_series edge[5] = {
        {"constant", cx, cy, 3},
        {"all non-finite", nx, ny, 2},
        {"empty", NULL, NULL, 0},
        {NULL, one_x, one_y, 1},
        {"huge", cx, (double[]){1e300, -1e300, 1e-300}, 3},
    };
    rc = ex_plot_lines(p_edge, NULL, NULL, NULL, edge, 5);
    CHECK(rc == 0, "edge lines failed: %s", strerror(errno));
    px = load_png(p_edge);
    CHECK(px != NULL, "lines_edge.png invalid");
    free(px);

    rc = ex_plot_lines(p_edge3, "", "", "", NULL, 0);
    CHECK(rc == 0, "empty lines failed: %s", strerror(errno));
    px = load_png(p_edge3);
    CHECK(px != NULL, "empty.png invalid");
    free(px);

    double bv[4] = {-3.0, NAN, 0.0, 2.0}, be[4] = {1.0, 1.0, -0.5, INFINITY};
    rc = ex_plot_bars(p_edge2, "negative, NaN and zero bars", NULL, NULL, bv, be, 4);
    CHECK(rc == 0, "edge bars failed: %s", strerror(errno));
    px = load_png(p_edge2);
    CHECK(px != NULL, "bars_edge.png invalid");
    free(px);

    /* constant, single and zero-bar charts */
    double cv[1] = {7.0};
    char p_tmp[4200];
    path_join(p_tmp, sizeof p_tmp, dir, "bars_one.png");
    CHECK(ex_plot_bars(p_tmp, "one", "v", (const char *const[]){"x"}, cv, NULL, 1) == 0,
          "one bar failed");
    px = load_png(p_tmp);
    CHECK(px != NULL, "bars_one.png invalid");
    free(px);
    if (!keep)
        remove(p_tmp);
    path_join(p_tmp, sizeof p_tmp, dir, "bars_none.png");
    CHECK(ex_plot_bars(p_tmp, "none", "v", NULL, NULL, NULL, 0) == 0, "zero bars failed");
    px = load_png(p_tmp);
    CHECK(px != NULL, "bars_none.png invalid");
    free(px);
    if (!keep)
        remove(p_tmp);

    /* ---- errors are reported as -1 + errno ---- */
    path_join(p_tmp, sizeof p_tmp, dir, "no/such/dir/x.png");
    errno = 0;
    rc = ex_plot_lines(p_tmp, "t", "x", "y", ser, 3);
    CHECK(rc == -1 && errno == ENOENT, "unwritable path: rc=%d errno=%d", rc, errno);
    errno = 0;
    rc = ex_plot_bars(p_tmp, "t", "y", labels, vals, NULL, 6);
    CHECK(rc == -1 && errno == ENOENT, "unwritable path (bars): rc=%d errno=%d", rc, errno);
    errno = 0;
    CHECK(ex_plot_lines(NULL, "t", "x", "y", ser, 3) == -1 && errno == EINVAL, "NULL path");
    errno = 0;
    CHECK(ex_plot_bars(p_bars, "t", "y", labels, NULL, NULL, 3) == -1 && errno == EINVAL,
          "NULL values");
#ifdef __linux__
    if (access("/dev/full", W_OK) == 0) {
        errno = 0;
        rc = ex_plot_lines("/dev/full", "t", "x", "y", ser, 3);
        CHECK(rc == -1 && errno == ENOSPC, "/dev/full: rc=%d errno=%d", rc, errno);
    }
#endif

    if (keep) {
        printf("images written to %s\n", dir);
    } else {
        remove(p_lines);
        remove(p_bars);
        remove(p_edge);
        remove(p_edge2);
        remove(p_edge3);
        if (rmdir(dir) != 0)
            perror("rmdir");
    }
    if (failures) {
        fprintf(stderr, "plot_selftest: %d failure(s)\n", failures);
        return 1;
    }
    printf("plot_selftest: all checks passed\n");
    return 0;
}
