/*
 * plot.c - tiny PNG plots for the example programs (see plot.h).
 *
 * Everything is drawn on an 800x500 RGB canvas with an embedded 5x8 bitmap
 * font and written out as an 8-bit RGB PNG (zlib for deflate and CRC32).
 * Only libc, libm and zlib are used.
 */
#include "plot.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define CANVAS_W 800
#define CANVAS_H 500

/* 5x8 bitmap font, ASCII 32..126: 8 rows per glyph (row 7 = descender),
   bit 4 = leftmost column.  Generated from ASCII art. */
static const unsigned char font5x8[95][8] = {
    {0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00}, /* ' ' */
    {0x04,0x04,0x04,0x04,0x04,0x00,0x04,0x00}, /* '!' */
    {0x0a,0x0a,0x0a,0x00,0x00,0x00,0x00,0x00}, /* '"' */
    {0x0a,0x0a,0x1f,0x0a,0x1f,0x0a,0x0a,0x00}, /* '#' */
    {0x04,0x0f,0x14,0x0e,0x05,0x1e,0x04,0x00}, /* '$' */
    {0x18,0x19,0x02,0x04,0x08,0x13,0x03,0x00}, /* '%' */
    {0x0c,0x12,0x14,0x08,0x15,0x12,0x0d,0x00}, /* '&' */
    {0x04,0x04,0x08,0x00,0x00,0x00,0x00,0x00}, /* ''' */
    {0x02,0x04,0x08,0x08,0x08,0x04,0x02,0x00}, /* '(' */
    {0x08,0x04,0x02,0x02,0x02,0x04,0x08,0x00}, /* ')' */
    {0x00,0x04,0x15,0x0e,0x15,0x04,0x00,0x00}, /* '*' */
    {0x00,0x04,0x04,0x1f,0x04,0x04,0x00,0x00}, /* '+' */
    {0x00,0x00,0x00,0x00,0x0c,0x04,0x08,0x00}, /* ',' */
    {0x00,0x00,0x00,0x1f,0x00,0x00,0x00,0x00}, /* '-' */
    {0x00,0x00,0x00,0x00,0x00,0x0c,0x0c,0x00}, /* '.' */
    {0x00,0x01,0x02,0x04,0x08,0x10,0x00,0x00}, /* '/' */
    {0x0e,0x11,0x13,0x15,0x19,0x11,0x0e,0x00}, /* '0' */
    {0x04,0x0c,0x04,0x04,0x04,0x04,0x0e,0x00}, /* '1' */
    {0x0e,0x11,0x01,0x02,0x04,0x08,0x1f,0x00}, /* '2' */
    {0x1f,0x02,0x04,0x02,0x01,0x11,0x0e,0x00}, /* '3' */
    {0x02,0x06,0x0a,0x12,0x1f,0x02,0x02,0x00}, /* '4' */
    {0x1f,0x10,0x1e,0x01,0x01,0x11,0x0e,0x00}, /* '5' */
    {0x06,0x08,0x10,0x1e,0x11,0x11,0x0e,0x00}, /* '6' */
    {0x1f,0x01,0x02,0x04,0x08,0x08,0x08,0x00}, /* '7' */
    {0x0e,0x11,0x11,0x0e,0x11,0x11,0x0e,0x00}, /* '8' */
    {0x0e,0x11,0x11,0x0f,0x01,0x02,0x0c,0x00}, /* '9' */
    {0x00,0x0c,0x0c,0x00,0x0c,0x0c,0x00,0x00}, /* ':' */
    {0x00,0x0c,0x0c,0x00,0x0c,0x04,0x08,0x00}, /* ';' */
    {0x02,0x04,0x08,0x10,0x08,0x04,0x02,0x00}, /* '<' */
    {0x00,0x00,0x1f,0x00,0x1f,0x00,0x00,0x00}, /* '=' */
    {0x08,0x04,0x02,0x01,0x02,0x04,0x08,0x00}, /* '>' */
    {0x0e,0x11,0x01,0x02,0x04,0x00,0x04,0x00}, /* '?' */
    {0x0e,0x11,0x01,0x0d,0x15,0x15,0x0e,0x00}, /* '@' */
    {0x0e,0x11,0x11,0x1f,0x11,0x11,0x11,0x00}, /* 'A' */
    {0x1e,0x11,0x11,0x1e,0x11,0x11,0x1e,0x00}, /* 'B' */
    {0x0e,0x11,0x10,0x10,0x10,0x11,0x0e,0x00}, /* 'C' */
    {0x1c,0x12,0x11,0x11,0x11,0x12,0x1c,0x00}, /* 'D' */
    {0x1f,0x10,0x10,0x1e,0x10,0x10,0x1f,0x00}, /* 'E' */
    {0x1f,0x10,0x10,0x1e,0x10,0x10,0x10,0x00}, /* 'F' */
    {0x0e,0x11,0x10,0x17,0x11,0x11,0x0f,0x00}, /* 'G' */
    {0x11,0x11,0x11,0x1f,0x11,0x11,0x11,0x00}, /* 'H' */
    {0x0e,0x04,0x04,0x04,0x04,0x04,0x0e,0x00}, /* 'I' */
    {0x07,0x02,0x02,0x02,0x02,0x12,0x0c,0x00}, /* 'J' */
    {0x11,0x12,0x14,0x18,0x14,0x12,0x11,0x00}, /* 'K' */
    {0x10,0x10,0x10,0x10,0x10,0x10,0x1f,0x00}, /* 'L' */
    {0x11,0x1b,0x15,0x15,0x11,0x11,0x11,0x00}, /* 'M' */
    {0x11,0x11,0x19,0x15,0x13,0x11,0x11,0x00}, /* 'N' */
    {0x0e,0x11,0x11,0x11,0x11,0x11,0x0e,0x00}, /* 'O' */
    {0x1e,0x11,0x11,0x1e,0x10,0x10,0x10,0x00}, /* 'P' */
    {0x0e,0x11,0x11,0x11,0x15,0x12,0x0d,0x00}, /* 'Q' */
    {0x1e,0x11,0x11,0x1e,0x14,0x12,0x11,0x00}, /* 'R' */
    {0x0f,0x10,0x10,0x0e,0x01,0x01,0x1e,0x00}, /* 'S' */
    {0x1f,0x04,0x04,0x04,0x04,0x04,0x04,0x00}, /* 'T' */
    {0x11,0x11,0x11,0x11,0x11,0x11,0x0e,0x00}, /* 'U' */
    {0x11,0x11,0x11,0x11,0x11,0x0a,0x04,0x00}, /* 'V' */
    {0x11,0x11,0x11,0x15,0x15,0x15,0x0a,0x00}, /* 'W' */
    {0x11,0x11,0x0a,0x04,0x0a,0x11,0x11,0x00}, /* 'X' */
    {0x11,0x11,0x0a,0x04,0x04,0x04,0x04,0x00}, /* 'Y' */
    {0x1f,0x01,0x02,0x04,0x08,0x10,0x1f,0x00}, /* 'Z' */
    {0x0e,0x08,0x08,0x08,0x08,0x08,0x0e,0x00}, /* '[' */
    {0x00,0x10,0x08,0x04,0x02,0x01,0x00,0x00}, /* backslash */
    {0x0e,0x02,0x02,0x02,0x02,0x02,0x0e,0x00}, /* ']' */
    {0x04,0x0a,0x11,0x00,0x00,0x00,0x00,0x00}, /* '^' */
    {0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x1f}, /* '_' */
    {0x08,0x04,0x02,0x00,0x00,0x00,0x00,0x00}, /* '`' */
    {0x00,0x00,0x0e,0x01,0x0f,0x11,0x0f,0x00}, /* 'a' */
    {0x10,0x10,0x16,0x19,0x11,0x11,0x1e,0x00}, /* 'b' */
    {0x00,0x00,0x0e,0x10,0x10,0x11,0x0e,0x00}, /* 'c' */
    {0x01,0x01,0x0d,0x13,0x11,0x11,0x0f,0x00}, /* 'd' */
    {0x00,0x00,0x0e,0x11,0x1f,0x10,0x0e,0x00}, /* 'e' */
    {0x06,0x09,0x08,0x1c,0x08,0x08,0x08,0x00}, /* 'f' */
    {0x00,0x00,0x0f,0x11,0x11,0x0f,0x01,0x0e}, /* 'g' */
    {0x10,0x10,0x16,0x19,0x11,0x11,0x11,0x00}, /* 'h' */
    {0x04,0x00,0x0c,0x04,0x04,0x04,0x0e,0x00}, /* 'i' */
    {0x02,0x00,0x06,0x02,0x02,0x02,0x12,0x0c}, /* 'j' */
    {0x10,0x10,0x12,0x14,0x18,0x14,0x12,0x00}, /* 'k' */
    {0x0c,0x04,0x04,0x04,0x04,0x04,0x0e,0x00}, /* 'l' */
    {0x00,0x00,0x1a,0x15,0x15,0x11,0x11,0x00}, /* 'm' */
    {0x00,0x00,0x16,0x19,0x11,0x11,0x11,0x00}, /* 'n' */
    {0x00,0x00,0x0e,0x11,0x11,0x11,0x0e,0x00}, /* 'o' */
    {0x00,0x00,0x1e,0x11,0x11,0x1e,0x10,0x10}, /* 'p' */
    {0x00,0x00,0x0f,0x11,0x11,0x0f,0x01,0x01}, /* 'q' */
    {0x00,0x00,0x16,0x19,0x10,0x10,0x10,0x00}, /* 'r' */
    {0x00,0x00,0x0f,0x10,0x0e,0x01,0x1e,0x00}, /* 's' */
    {0x08,0x08,0x1c,0x08,0x08,0x09,0x06,0x00}, /* 't' */
    {0x00,0x00,0x11,0x11,0x11,0x13,0x0d,0x00}, /* 'u' */
    {0x00,0x00,0x11,0x11,0x11,0x0a,0x04,0x00}, /* 'v' */
    {0x00,0x00,0x11,0x11,0x15,0x15,0x0a,0x00}, /* 'w' */
    {0x00,0x00,0x11,0x0a,0x04,0x0a,0x11,0x00}, /* 'x' */
    {0x00,0x00,0x11,0x11,0x11,0x0f,0x01,0x0e}, /* 'y' */
    {0x00,0x00,0x1f,0x02,0x04,0x08,0x1f,0x00}, /* 'z' */
    {0x03,0x04,0x04,0x08,0x04,0x04,0x03,0x00}, /* '{' */
    {0x04,0x04,0x04,0x04,0x04,0x04,0x04,0x00}, /* '|' */
    {0x18,0x04,0x04,0x02,0x04,0x04,0x18,0x00}, /* '}' */
    {0x00,0x00,0x08,0x15,0x02,0x00,0x00,0x00}, /* '~' */
};

#define GLYPH_W 5
#define GLYPH_H 8
#define CHAR_ADV 6 /* glyph width + 1 column of spacing */

typedef struct rgb {
    unsigned char r, g, b;
} rgb;

static const rgb COL_WHITE = {255, 255, 255};
static const rgb COL_BLACK = {0, 0, 0};
static const rgb COL_TEXT = {34, 34, 34};
static const rgb COL_GRID = {232, 232, 232};
static const rgb COL_LEGEND_BORDER = {180, 180, 180};

/* matplotlib's tab10 palette */
static const rgb PALETTE[10] = {
    {31, 119, 180}, {255, 127, 14}, {44, 160, 44},   {214, 39, 40},  {148, 103, 189},
    {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207},
};

typedef struct canvas {
    int w, h;
    unsigned char *px; /* w*h*3, row-major RGB */
    /* clip rectangle for plot elements (inclusive bounds) */
    int cx0, cy0, cx1, cy1;
} canvas;

static int canvas_init(canvas *c)
{
    c->w = CANVAS_W;
    c->h = CANVAS_H;
    c->px = malloc((size_t)c->w * (size_t)c->h * 3);
    if (!c->px) {
        errno = ENOMEM;
        return -1;
    }
    memset(c->px, 255, (size_t)c->w * (size_t)c->h * 3);
    c->cx0 = 0;
    c->cy0 = 0;
    c->cx1 = c->w - 1;
    c->cy1 = c->h - 1;
    return 0;
}

static void canvas_free(canvas *c)
{
    free(c->px);
    c->px = NULL;
}

static void put_px(canvas *c, int x, int y, rgb col)
{
    if (x < c->cx0 || x > c->cx1 || y < c->cy0 || y > c->cy1)
        return;
    unsigned char *p = c->px + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
    p[0] = col.r;
    p[1] = col.g;
    p[2] = col.b;
}

static void fill_rect(canvas *c, int x0, int y0, int x1, int y1, rgb col)
{
    if (x0 > x1) { int t = x0; x0 = x1; x1 = t; }
    if (y0 > y1) { int t = y0; y0 = y1; y1 = t; }
    if (x0 < c->cx0) x0 = c->cx0;
    if (y0 < c->cy0) y0 = c->cy0;
    if (x1 > c->cx1) x1 = c->cx1;
    if (y1 > c->cy1) y1 = c->cy1;
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++)
            put_px(c, x, y, col);
}

static void rect_outline(canvas *c, int x0, int y0, int x1, int y1, rgb col)
{
    fill_rect(c, x0, y0, x1, y0, col);
    fill_rect(c, x0, y1, x1, y1, col);
    fill_rect(c, x0, y0, x0, y1, col);
    fill_rect(c, x1, y0, x1, y1, col);
}

/* 2-pixel-wide Bresenham line: every step plots a 2x2 block. */
static void thick_line(canvas *c, int x0, int y0, int x1, int y1, rgb col)
{
    int dx = abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
    int dy = -abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    for (;;) {
        put_px(c, x0, y0, col);
        put_px(c, x0 + 1, y0, col);
        put_px(c, x0, y0 + 1, col);
        put_px(c, x0 + 1, y0 + 1, col);
        if (x0 == x1 && y0 == y1)
            break;
        int e2 = 2 * err;
        if (e2 >= dy) {
            err += dy;
            x0 += sx;
        }
        if (e2 <= dx) {
            err += dx;
            y0 += sy;
        }
    }
}

/* ---- text ---------------------------------------------------------------- */

static int text_width(const char *s, int scale)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0)
        return 0;
    if (n > 1000)
        n = 1000;
    return ((int)n * CHAR_ADV - 1) * scale;
}

/* Draw `s` with its top-left corner at (x, y).  Non-printable bytes are drawn
   as '?'. */
static void draw_text(canvas *c, int x, int y, const char *s, int scale, rgb col)
{
    if (!s)
        return;
    for (; *s; s++, x += CHAR_ADV * scale) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 32 || ch > 126)
            ch = '?';
        const unsigned char *gl = font5x8[ch - 32];
        for (int row = 0; row < GLYPH_H; row++)
            for (int colm = 0; colm < GLYPH_W; colm++)
                if (gl[row] & (0x10 >> colm))
                    for (int dy = 0; dy < scale; dy++)
                        for (int dx = 0; dx < scale; dx++)
                            put_px(c, x + colm * scale + dx, y + row * scale + dy, col);
        if (x > c->w)
            break;
    }
}

/* Copy at most `maxw` pixels' worth of `s` into buf (size bufsz). */
static void fit_text(char *buf, size_t bufsz, const char *s, int maxw, int scale)
{
    size_t maxc = 0;
    if (maxw > 0)
        maxc = (size_t)((maxw / scale + 1) / CHAR_ADV);
    if (maxc > bufsz - 1)
        maxc = bufsz - 1;
    size_t n = s ? strlen(s) : 0;
    if (n > maxc)
        n = maxc;
    if (n)
        memcpy(buf, s, n);
    buf[n] = '\0';
}

/* ---- axes ---------------------------------------------------------------- */

typedef struct axis {
    double lo, hi;   /* data range mapped onto the pixel span */
    double step;     /* tick step (1, 2 or 5 x 10^k) */
    double t0;       /* first tick index: ticks are (t0 + i)*step */
    int nticks;      /* i in [0, nticks) */
} axis;

/* %g, then compacted: "1e+06" -> "1e6", "2.5e-05" -> "2.5e-5", "-0" -> "0". */
static void fmt_num(char *buf, size_t sz, double v)
{
    snprintf(buf, sz, "%g", v);
    if (strcmp(buf, "-0") == 0)
        snprintf(buf, sz, "0");
    char *e = strchr(buf, 'e');
    if (e) {
        char *src = e + 1, *dst = e + 1;
        if (*src == '+')
            src++;
        else if (*src == '-')
            *dst++ = *src++;
        while (*src == '0' && src[1] != '\0')
            src++;
        memmove(dst, src, strlen(src) + 1);
    }
}

/* Make [lo, hi] a usable, non-degenerate, finite range padded by `pad`
   (fraction of the span) on each side. */
static void axis_range(axis *a, double lo, double hi, double pad_lo, double pad_hi)
{
    if (!(lo <= hi) || !isfinite(lo) || !isfinite(hi)) { /* no data */
        lo = 0.0;
        hi = 1.0;
    }
    if (hi - lo == 0.0 || !isfinite(hi - lo)) {
        if (hi - lo == 0.0) {
            double d = fabs(lo) * 0.1;
            if (d == 0.0 || !isfinite(d))
                d = 1.0;
            lo -= d;
            hi += d;
        }
        if (!isfinite(hi - lo)) { /* span overflows a double */
            lo = -(DBL_MAX / 4);
            hi = DBL_MAX / 4;
        }
    } else {
        double span = hi - lo;
        double nlo = lo - span * pad_lo, nhi = hi + span * pad_hi;
        if (isfinite(nlo) && isfinite(nhi) && isfinite(nhi - nlo)) {
            lo = nlo;
            hi = nhi;
        }
    }
    a->lo = lo;
    a->hi = hi;

    /* nice step: 1/2/5 x 10^k giving about 5-8 ticks */
    double raw = (hi - lo) / 6.0;
    double mag = pow(10.0, floor(log10(raw)));
    double norm = raw / mag;
    double m = norm < 1.5 ? 1.0 : norm < 3.0 ? 2.0 : norm < 7.0 ? 5.0 : 10.0;
    a->step = m * mag;
    if (!(a->step > 0.0) || !isfinite(a->step)) {
        a->step = 0.0;
        a->t0 = 0.0;
        a->nticks = 0;
        return;
    }
    a->t0 = ceil(lo / a->step - 1e-9);
    double t1 = floor(hi / a->step + 1e-9);
    double cnt = t1 - a->t0 + 1.0;
    /* cannot exceed ~12 with a sane step; be safe with huge magnitudes */
    a->nticks = cnt >= 1.0 && cnt <= 50.0 ? (int)cnt : 0;
}

static double tick_value(const axis *a, int i)
{
    double v = (a->t0 + i) * a->step;
    if (fabs(v) < a->step * 1e-9)
        v = 0.0;
    return v;
}

/* map a data value onto [p0, p1] pixels (p0 <-> lo) */
static int axis_map(const axis *a, double v, int p0, int p1)
{
    double t = (v - a->lo) / (a->hi - a->lo);
    double p = p0 + t * (double)(p1 - p0);
    if (!(p > -1e6))
        p = -1e6;
    if (p > 1e6)
        p = 1e6;
    return (int)lround(p);
}

/* widest y tick label in pixels */
static int ytick_label_width(const axis *a)
{
    int w = 0;
    char buf[64];
    for (int k = 0; k < a->nticks; k++) {
        fmt_num(buf, sizeof buf, tick_value(a, k));
        int tw = text_width(buf, 1);
        if (tw > w)
            w = tw;
    }
    return w;
}

typedef struct frame {
    int x0, y0, x1, y1; /* plot area, inclusive, y0 = top */
} frame;

static void draw_title_and_ylabel(canvas *c, const frame *f, const char *title,
                                  const char *ylabel)
{
    char buf[256];
    if (title && *title) {
        fit_text(buf, sizeof buf, title, c->w - 20, 2);
        int tw = text_width(buf, 2);
        draw_text(c, (c->w - tw) / 2, 10, buf, 2, COL_BLACK);
    }
    if (ylabel && *ylabel) {
        int x = f->x0 - 40 < 6 ? 6 : f->x0 - 40;
        fit_text(buf, sizeof buf, ylabel, c->w - x - 10, 1);
        draw_text(c, x, f->y0 - 14, buf, 1, COL_TEXT);
    }
}

/* Horizontal grid lines, left ticks and their labels for the y axis. */
static void draw_yaxis(canvas *c, const frame *f, const axis *ay)
{
    char buf[64];
    for (int k = 0; k < ay->nticks; k++) {
        double v = tick_value(ay, k);
        int py = axis_map(ay, v, f->y1, f->y0);
        if (py < f->y0 || py > f->y1)
            continue;
        fill_rect(c, f->x0 + 1, py, f->x1 - 1, py, COL_GRID);
        fill_rect(c, f->x0 - 5, py, f->x0 - 1, py, COL_BLACK);
        fmt_num(buf, sizeof buf, v);
        int tw = text_width(buf, 1);
        draw_text(c, f->x0 - 8 - tw, py - 3, buf, 1, COL_TEXT);
    }
}

static void draw_xaxis(canvas *c, const frame *f, const axis *ax)
{
    char buf[64];
    for (int k = 0; k < ax->nticks; k++) {
        double v = tick_value(ax, k);
        int px = axis_map(ax, v, f->x0, f->x1);
        if (px < f->x0 || px > f->x1)
            continue;
        fill_rect(c, px, f->y0 + 1, px, f->y1 - 1, COL_GRID);
        fill_rect(c, px, f->y1 + 1, px, f->y1 + 5, COL_BLACK);
        fmt_num(buf, sizeof buf, v);
        int tw = text_width(buf, 1);
        draw_text(c, px - tw / 2, f->y1 + 9, buf, 1, COL_TEXT);
    }
}

static frame make_frame(const canvas *c, const axis *ay)
{
    frame f;
    int lw = ytick_label_width(ay);
    f.x0 = lw + 16;
    if (f.x0 < 56)
        f.x0 = 56;
    if (f.x0 > 300)
        f.x0 = 300;
    f.x1 = c->w - 25;
    f.y0 = 52;
    f.y1 = c->h - 52;
    return f;
}

/* ---- PNG ----------------------------------------------------------------- */

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static int write_chunk(FILE *fp, const char type[4], const unsigned char *data, uint32_t len)
{
    unsigned char hdr[8], tail[4];
    put_be32(hdr, len);
    memcpy(hdr + 4, type, 4);
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, (const Bytef *)type, 4);
    /* crc32() takes a uInt length: feed large payloads in pieces */
    for (uint32_t off = 0; off < len;) {
        uint32_t part = len - off > 0x40000000u ? 0x40000000u : len - off;
        crc = crc32(crc, data + off, (uInt)part);
        off += part;
    }
    put_be32(tail, (uint32_t)crc);
    if (fwrite(hdr, 1, 8, fp) != 8)
        return -1;
    if (len && fwrite(data, 1, len, fp) != len)
        return -1;
    if (fwrite(tail, 1, 4, fp) != 4)
        return -1;
    return 0;
}

static int write_png(const canvas *c, const char *path)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    size_t stride = (size_t)c->w * 3 + 1;
    size_t rawlen = stride * (size_t)c->h;
    unsigned char *raw = malloc(rawlen);
    uLongf zlen = compressBound((uLong)rawlen);
    unsigned char *z = malloc(zlen);
    if (!raw || !z) {
        free(raw);
        free(z);
        errno = ENOMEM;
        return -1;
    }
    for (int y = 0; y < c->h; y++) {
        unsigned char *row = raw + (size_t)y * stride;
        row[0] = 0; /* filter type: none */
        memcpy(row + 1, c->px + (size_t)y * (size_t)c->w * 3, (size_t)c->w * 3);
    }
    int zrc = compress2(z, &zlen, raw, (uLong)rawlen, 9);
    free(raw);
    if (zrc != Z_OK) {
        free(z);
        errno = zrc == Z_MEM_ERROR ? ENOMEM : EIO;
        return -1;
    }

    unsigned char ihdr[13];
    put_be32(ihdr, (uint32_t)c->w);
    put_be32(ihdr + 4, (uint32_t)c->h);
    ihdr[8] = 8;  /* bit depth */
    ihdr[9] = 2;  /* colour type: RGB */
    ihdr[10] = 0; /* deflate */
    ihdr[11] = 0; /* adaptive filtering */
    ihdr[12] = 0; /* no interlace */

    FILE *fp = fopen(path, "wb");
    if (!fp) {
        int e = errno ? errno : EIO;
        free(z);
        errno = e;
        return -1;
    }
    errno = 0;
    int rc = 0;
    if (fwrite(sig, 1, 8, fp) != 8 || write_chunk(fp, "IHDR", ihdr, 13) != 0)
        rc = -1;
    /* IDAT chunks of at most 1 MiB each */
    for (size_t off = 0; rc == 0 && off < (size_t)zlen;) {
        size_t part = (size_t)zlen - off > (1u << 20) ? (1u << 20) : (size_t)zlen - off;
        if (write_chunk(fp, "IDAT", z + off, (uint32_t)part) != 0)
            rc = -1;
        off += part;
    }
    if (rc == 0 && write_chunk(fp, "IEND", NULL, 0) != 0)
        rc = -1;
    int e = errno ? errno : EIO;
    free(z);
    if (fclose(fp) != 0 && rc == 0) {
        rc = -1;
        e = errno ? errno : EIO;
    }
    if (rc != 0) {
        remove(path);
        errno = e;
    }
    return rc;
}

/* ---- line plot ----------------------------------------------------------- */

static void draw_legend(canvas *c, const frame *f, const ex_series *series, int nseries)
{
    if (nseries <= 0)
        return;
    int shown = nseries;
    int maxrows = (f->y1 - f->y0 - 20) / 12;
    if (shown > maxrows)
        shown = maxrows < 0 ? 0 : maxrows;
    char buf[48];
    int lw = 0;
    for (int i = 0; i < shown; i++) {
        fit_text(buf, sizeof buf, series[i].label ? series[i].label : "", 40 * CHAR_ADV, 1);
        int tw = text_width(buf, 1);
        if (tw > lw)
            lw = tw;
    }
    int bw = 8 + 18 + 6 + lw + 8;
    int bh = 8 + shown * 12 + 4;
    int bx1 = f->x1 - 8, bx0 = bx1 - bw;
    int by0 = f->y0 + 8, by1 = by0 + bh;
    if (bx0 < f->x0 + 2)
        bx0 = f->x0 + 2;
    fill_rect(c, bx0, by0, bx1, by1, COL_WHITE);
    rect_outline(c, bx0, by0, bx1, by1, COL_LEGEND_BORDER);
    for (int i = 0; i < shown; i++) {
        int y = by0 + 8 + i * 12;
        rgb col = PALETTE[i % 10];
        fill_rect(c, bx0 + 8, y + 2, bx0 + 8 + 18, y + 3, col);
        fit_text(buf, sizeof buf, series[i].label ? series[i].label : "",
                 bx1 - (bx0 + 32) - 4, 1);
        draw_text(c, bx0 + 32, y - 1, buf, 1, COL_TEXT);
    }
}

int ex_plot_lines(const char *path, const char *title, const char *xlabel,
                  const char *ylabel, const ex_series *series, int nseries)
{
    if (!path || nseries < 0 || (nseries > 0 && !series)) {
        errno = EINVAL;
        return -1;
    }
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int s = 0; s < nseries; s++) {
        const ex_series *S = &series[s];
        if (!S->x || !S->y || S->n <= 0)
            continue;
        for (int i = 0; i < S->n; i++) {
            double x = S->x[i], y = S->y[i];
            if (!isfinite(x) || !isfinite(y))
                continue;
            if (x < xlo) xlo = x;
            if (x > xhi) xhi = x;
            if (y < ylo) ylo = y;
            if (y > yhi) yhi = y;
        }
    }
    axis ax, ay;
    axis_range(&ax, xlo, xhi, 0.02, 0.02);
    axis_range(&ay, ylo, yhi, 0.05, 0.05);

    canvas c;
    if (canvas_init(&c) != 0)
        return -1;
    frame f = make_frame(&c, &ay);

    draw_yaxis(&c, &f, &ay);
    draw_xaxis(&c, &f, &ax);

    /* series, clipped to the inside of the frame */
    c.cx0 = f.x0 + 1;
    c.cy0 = f.y0 + 1;
    c.cx1 = f.x1 - 1;
    c.cy1 = f.y1 - 1;
    for (int s = 0; s < nseries; s++) {
        const ex_series *S = &series[s];
        if (!S->x || !S->y || S->n <= 0)
            continue;
        rgb col = PALETTE[s % 10];
        int have_prev = 0, px = 0, py = 0, run = 0;
        for (int i = 0; i <= S->n; i++) {
            int ok = i < S->n && isfinite(S->x[i]) && isfinite(S->y[i]);
            if (!ok) {
                /* end of a run: mark isolated points with a small dot */
                if (have_prev && run == 1)
                    fill_rect(&c, px - 1, py - 1, px + 2, py + 2, col);
                have_prev = 0;
                run = 0;
                continue;
            }
            int qx = axis_map(&ax, S->x[i], f.x0, f.x1);
            int qy = axis_map(&ay, S->y[i], f.y1, f.y0);
            if (have_prev)
                thick_line(&c, px, py, qx, qy, col);
            px = qx;
            py = qy;
            have_prev = 1;
            run++;
        }
    }
    c.cx0 = 0;
    c.cy0 = 0;
    c.cx1 = c.w - 1;
    c.cy1 = c.h - 1;

    rect_outline(&c, f.x0, f.y0, f.x1, f.y1, COL_BLACK);
    draw_legend(&c, &f, series, nseries);
    draw_title_and_ylabel(&c, &f, title, ylabel);
    if (xlabel && *xlabel) {
        char buf[256];
        fit_text(buf, sizeof buf, xlabel, c.w - 20, 1);
        int tw = text_width(buf, 1);
        draw_text(&c, (f.x0 + f.x1 - tw) / 2, f.y1 + 26, buf, 1, COL_TEXT);
    }

    int rc = write_png(&c, path);
    int e = errno;
    canvas_free(&c);
    errno = e;
    return rc;
}

/* ---- bar chart ----------------------------------------------------------- */

int ex_plot_bars(const char *path, const char *title, const char *ylabel,
                 const char *const *labels, const double *values, const double *errors,
                 int n)
{
    if (!path || n < 0 || (n > 0 && !values)) {
        errno = EINVAL;
        return -1;
    }
    double lo = 0.0, hi = 0.0; /* bars start at 0, so 0 is always in range */
    int any = 0;
    for (int i = 0; i < n; i++) {
        double v = values[i];
        if (!isfinite(v))
            continue;
        double e = errors && isfinite(errors[i]) ? fabs(errors[i]) : 0.0;
        double a = v - e, b = v + e;
        if (!isfinite(a) || !isfinite(b))
            a = b = v;
        if (a < lo) lo = a;
        if (b > hi) hi = b;
        any = 1;
    }
    axis ay;
    if (!any || lo == hi)
        axis_range(&ay, 0.0, 1.0, 0.0, 0.05);
    else
        axis_range(&ay, lo, hi, lo < 0.0 ? 0.05 : 0.0, hi > 0.0 ? 0.05 : 0.0);

    canvas c;
    if (canvas_init(&c) != 0)
        return -1;
    frame f = make_frame(&c, &ay);
    draw_yaxis(&c, &f, &ay);

    int pw = f.x1 - f.x0;
    int base = axis_map(&ay, 0.0, f.y1, f.y0);
    c.cx0 = f.x0 + 1;
    c.cy0 = f.y0 + 1;
    c.cx1 = f.x1 - 1;
    c.cy1 = f.y1 - 1;
    for (int i = 0; i < n; i++) {
        double slot = (double)pw / n;
        int sx0 = f.x0 + (int)lround(slot * i);
        int sx1 = f.x0 + (int)lround(slot * (i + 1));
        int cx = (sx0 + sx1) / 2;
        int half = (int)(slot * 0.35);
        if (half < 1)
            half = 1;
        double v = values[i];
        if (!isfinite(v))
            continue;
        int top = axis_map(&ay, v, f.y1, f.y0);
        fill_rect(&c, cx - half, top, cx + half - 1, base, PALETTE[i % 10]);
        if (errors && isfinite(errors[i]) && errors[i] != 0.0) {
            double e = fabs(errors[i]);
            int ya = axis_map(&ay, v - e, f.y1, f.y0);
            int yb = axis_map(&ay, v + e, f.y1, f.y0);
            int cap = half / 2 > 2 ? half / 2 : 2;
            if (cap > 12)
                cap = 12;
            fill_rect(&c, cx - 1, yb, cx, ya, COL_BLACK);
            fill_rect(&c, cx - cap, ya - 1, cx + cap - 1, ya, COL_BLACK);
            fill_rect(&c, cx - cap, yb, cx + cap - 1, yb + 1, COL_BLACK);
        }
    }
    c.cx0 = 0;
    c.cy0 = 0;
    c.cx1 = c.w - 1;
    c.cy1 = c.h - 1;
    if (ay.lo < 0.0 && ay.hi > 0.0)
        fill_rect(&c, f.x0, base, f.x1, base, COL_BLACK);

    /* labels under the bars, truncated to their slot */
    for (int i = 0; i < n; i++) {
        double slot = (double)pw / n;
        int sx0 = f.x0 + (int)lround(slot * i);
        int sx1 = f.x0 + (int)lround(slot * (i + 1));
        int cx = (sx0 + sx1) / 2;
        char buf[128], num[24];
        const char *lab = labels ? labels[i] : NULL;
        if (!lab) {
            snprintf(num, sizeof num, "%d", i);
            lab = num;
        }
        fit_text(buf, sizeof buf, lab, sx1 - sx0 - 4, 1);
        int tw = text_width(buf, 1);
        fill_rect(&c, cx, f.y1 + 1, cx, f.y1 + 4, COL_BLACK);
        draw_text(&c, cx - tw / 2, f.y1 + 9, buf, 1, COL_TEXT);
    }

    rect_outline(&c, f.x0, f.y0, f.x1, f.y1, COL_BLACK);
    draw_title_and_ylabel(&c, &f, title, ylabel);

    int rc = write_png(&c, path);
    int e = errno;
    canvas_free(&c);
    errno = e;
    return rc;
}
