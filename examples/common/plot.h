/*
 * plot.h - tiny PNG plots for the example programs (not part of the
 * library): line plots and bar charts with axes, ticks, a title and a
 * legend, drawn with an embedded bitmap font and written as PNG through zlib.
 */
#ifndef EXAMPLES_PLOT_H
#define EXAMPLES_PLOT_H

typedef struct ex_series {
    const char *label;   /* legend text */
    const double *x;     /* [n] */
    const double *y;     /* [n] */
    int n;
} ex_series;

/* Line plot of `nseries` series (colours assigned in order).  Returns 0 on
   success, -1 on failure (errno says why). */
int ex_plot_lines(const char *path, const char *title, const char *xlabel,
                  const char *ylabel, const ex_series *series, int nseries);

/* Bar chart: one bar per label, with error bars when errors is not NULL. */
int ex_plot_bars(const char *path, const char *title, const char *ylabel,
                 const char *const *labels, const double *values, const double *errors,
                 int n);

#endif
