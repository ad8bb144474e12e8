/*
 * metagrad/data.h - loading datasets from files (IDX, NPY, CSV,
 * Fashion-MNIST), normalising them and splitting them.  Reading a dataset
 * back (shape, labels, inputs) is in dataset.h with the other getters.
 *
 * Loaders copy the file's values into a new mgrad_dataset in the context's
 * dtype.  Every read is bounded and checked: a truncated, corrupt or
 * inconsistent file fails with a status and a message (on the context) that
 * names the file and what is wrong.  On any failure *out is left untouched,
 * every file opened is closed and nothing is leaked.
 *
 * Compressed files: every loader reads gzip-compressed files (detected by
 * their magic bytes 1f 8b) as well as plain ones.
 *
 * Usage (examples/load_data.c is this program, run by CI):
 *
 *     mgrad_dataset *all, *train, *val, *test;
 *     mgrad_dataset_load_fashion_mnist(&all, ctx, "train", NULL);
 *     mgrad_dataset_split(&train, &val, all, 50000, 42);
 *     mgrad_dataset_load_fashion_mnist(&test, ctx, "test", NULL);
 *     mgrad_dataset_normalize(val, train, MGRAD_NORMALIZE_GLOBAL);
 *     mgrad_dataset_normalize(test, train, MGRAD_NORMALIZE_GLOBAL);
 *     mgrad_dataset_normalize(train, NULL, MGRAD_NORMALIZE_GLOBAL);
 *     mgrad_dataset_destroy(all);
 *
 * Thread safety: as the datasets' context.  The loaders themselves keep no
 * global state.
 */
#ifndef METAGRAD_DATA_H
#define METAGRAD_DATA_H

#include "dataset.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Where the Debian package dataset-fashion-mnist installs its files. */
#define MGRAD_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/**
 * Load an IDX pair (the MNIST format): images of shape [N, d1 (, d2 (, d3))]
 * of any IDX element type (u8, i8, i16, i32, f32, f64; big-endian as the
 * format requires) and optional labels of shape [N] of an integer type.
 * Each input value is multiplied by `scale` (1.0/255 maps u8 pixels to
 * [0, 1]).  Images of shape [N] give examples of shape {1}.  Byte images
 * (u8, i8) are stored compactly as they are read (see
 * mgrad_dataset_compact), with the same values bit for bit.
 *
 * @param[out] out      the dataset, owned by the caller (mgrad_dataset_destroy).
 * @param images_path   the images file.
 * @param labels_path   the labels file, or NULL for a dataset without labels.
 * @param num_classes   the number of classes, or 0 for (largest label + 1).
 * @param scale         a finite, non-zero factor applied to every input.
 * @return MGRAD_OK; MGRAD_ERR_NULL (ctx, out, images_path);
 *         MGRAD_ERR_INVALID (scale, num_classes < 0 or 1, a label >=
 *         num_classes, fewer than 2 classes found, no examples);
 *         MGRAD_ERR_IO (a file cannot be opened or read);
 *         MGRAD_ERR_FORMAT (bad magic, element type or dimensions, sizes that
 *         disagree with the file's length, truncated or corrupt data, trailing
 *         bytes, negative labels, image and label counts that differ);
 *         MGRAD_ERR_NONFINITE (a value is NaN or Inf, or overflows the
 *         context's dtype once scaled); MGRAD_ERR_NOMEM.
 */
MGRAD_API mgrad_status mgrad_dataset_load_idx(mgrad_dataset **out, mgrad_context *ctx,
                                              const char *images_path,
                                              const char *labels_path,
                                              int32_t num_classes, double scale);

/**
 * Load NPY files (format versions 1.0, 2.0 and 3.0, C order): inputs of
 * shape (N,), (N, d1), (N, d1, d2) or (N, d1, d2, d3) and dtype <f4, <f8,
 * |u1 or <i8, and optional labels of shape (N,) and dtype <i8, <i4 or |u1.
 * Values are converted as they are (no scaling; see mgrad_dataset_scale).
 *
 * @param[out] out      the dataset, owned by the caller.
 * @param inputs_path   the inputs file.
 * @param labels_path   the labels file, or NULL for no labels.
 * @param num_classes   the number of classes, or 0 for (largest label + 1).
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_INVALID (num_classes, labels
 *         out of range, no examples); MGRAD_ERR_IO; MGRAD_ERR_FORMAT (bad
 *         magic, version, header dictionary, shape, sizes, truncated or
 *         trailing data, negative labels); MGRAD_ERR_UNSUPPORTED (Fortran
 *         order, big-endian or other dtypes, more than 4 dimensions);
 *         MGRAD_ERR_NONFINITE; MGRAD_ERR_NOMEM.
 */
MGRAD_API mgrad_status mgrad_dataset_load_npy(mgrad_dataset **out, mgrad_context *ctx,
                                              const char *inputs_path,
                                              const char *labels_path,
                                              int32_t num_classes);

/**
 * Load a numeric CSV file: comma-separated decimal numbers, one example per
 * line, every line with the same number of columns, optionally a header
 * line (skipped unread).  Lines may end in "\n" or "\r\n"; spaces and tabs
 * around a number are allowed; quoted fields, empty fields, empty lines
 * before the last row, NaN and Inf are errors.  Numbers are read with the C
 * library's strtod, so the process's LC_NUMERIC must use "." (the default
 * "C" locale does).  Examples have shape {columns - (label ? 1 : 0)}.
 *
 * @param[out] out      the dataset, owned by the caller.
 * @param path          the file.
 * @param label_column  0-based column of the integer class label, or -1 for
 *                      none (all columns are inputs).
 * @param has_header    non-zero: the first line is a header and is skipped.
 * @param num_classes   the number of classes, or 0 for (largest label + 1).
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_INVALID (label_column or
 *         num_classes out of range, no rows, no input columns, a label >=
 *         num_classes); MGRAD_ERR_IO; MGRAD_ERR_FORMAT (the message names the
 *         1-based line and column: not a number, ragged row, empty field,
 *         label not a non-negative integer); MGRAD_ERR_UNSUPPORTED (quoted
 *         fields); MGRAD_ERR_NONFINITE; MGRAD_ERR_NOMEM.
 */
MGRAD_API mgrad_status mgrad_dataset_load_csv(mgrad_dataset **out, mgrad_context *ctx,
                                              const char *path, int32_t label_column,
                                              int32_t has_header, int32_t num_classes);

/**
 * Load Fashion-MNIST as installed by the Debian package
 * dataset-fashion-mnist: `split` "train" (60000 images) or "test" (10000),
 * from the files <split>-images-idx3-ubyte.gz and
 * <split>-labels-idx1-ubyte.gz ("t10k" for the test split; the same names
 * without ".gz" are used when only those exist).  Pixels are scaled to
 * [0, 1]; examples have shape {1, 28, 28} (channels, height, width); labels
 * are 0..9 with num_classes 10.
 *
 * @param[out] out  the dataset, owned by the caller.
 * @param split     "train" or "test".
 * @param dir       the directory of the files, or NULL for
 *                  MGRAD_FASHION_MNIST_DIR.
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_INVALID (split);
 *         MGRAD_ERR_IO when the files are missing (the message says how to
 *         install them) or unreadable; the statuses of mgrad_dataset_load_idx.
 */
MGRAD_API mgrad_status mgrad_dataset_load_fashion_mnist(mgrad_dataset **out,
                                                        mgrad_context *ctx,
                                                        const char *split,
                                                        const char *dir);

/** How mgrad_dataset_normalize groups input values into one statistic. */
typedef enum mgrad_normalize {
    MGRAD_NORMALIZE_GLOBAL = 1,      /**< one mean and deviation for all values */
    MGRAD_NORMALIZE_PER_FEATURE = 2, /**< one per position in the example */
    MGRAD_NORMALIZE_PER_CHANNEL = 3  /**< one per index of the example's first
                                          dimension (C of {C, H, W}) */
} mgrad_normalize;

/**
 * Standardise inputs in place: x <- (x - mean) / std, with the means and
 * (population) standard deviations of `reference`'s inputs, so that a
 * validation or test set can be normalised with its training set's
 * statistics.  A group whose deviation is zero (up to rounding) is centred
 * but not scaled.  Labels, targets and weights are not touched.
 *
 * @param dataset    the dataset to change.
 * @param reference  where the statistics come from (same shape), or NULL for
 *                   `dataset` itself.  Statistics are computed before any
 *                   value changes, so reference may equal dataset.
 * @param mode       an mgrad_normalize value.
 * @return MGRAD_OK; MGRAD_ERR_NULL (dataset); MGRAD_ERR_INVALID (mode, a
 *         reference from another context); MGRAD_ERR_SHAPE (reference has
 *         another example shape); MGRAD_ERR_ORDER (dataset in use by a run);
 *         MGRAD_ERR_NONFINITE (a result overflows; nothing is changed);
 *         MGRAD_ERR_NOMEM.  On failure the dataset is unchanged.
 */
MGRAD_API mgrad_status mgrad_dataset_normalize(mgrad_dataset *dataset,
                                               const mgrad_dataset *reference,
                                               mgrad_normalize mode);

/**
 * Apply x <- scale * x + offset to every input value in place.
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_INVALID (scale or offset not
 *         finite); MGRAD_ERR_ORDER (in use); MGRAD_ERR_NONFINITE (a result
 *         overflows; nothing is changed); MGRAD_ERR_NOMEM.
 */
MGRAD_API mgrad_status mgrad_dataset_scale(mgrad_dataset *dataset, double scale,
                                           double offset);

/**
 * Split a dataset in two by a seeded random permutation of its rows:
 * `first` gets n_first rows and `second` the other n - n_first.  Each part
 * keeps its rows in their original order.  The same seed always gives the
 * same split.  Labels, targets and weights travel with their rows.
 *
 * @param[out] first   n_first rows, owned by the caller.
 * @param[out] second  the remaining rows, owned by the caller.
 * @param dataset      the source; not changed.
 * @param n_first      1 <= n_first <= n - 1.
 * @param seed         any value.
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_INVALID (n_first out of
 *         range); MGRAD_ERR_NOMEM.  On failure neither output is written.
 */
MGRAD_API mgrad_status mgrad_dataset_split(mgrad_dataset **first, mgrad_dataset **second,
                                           const mgrad_dataset *dataset, int64_t n_first,
                                           uint64_t seed);

/**
 * A new dataset of the given rows, in the given order (a row may appear more
 * than once, e.g. for a bootstrap sample).
 *
 * @param[out] out  the new dataset, owned by the caller.
 * @param rows      n row indices, each in [0, size).
 * @param n         n >= 1.
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_INVALID (n < 1, a row out of
 *         range: the message names it); MGRAD_ERR_NOMEM.
 */
MGRAD_API mgrad_status mgrad_dataset_subset(mgrad_dataset **out,
                                            const mgrad_dataset *dataset,
                                            const int64_t *rows, int64_t n);

#ifdef __cplusplus
}
#endif

#endif /* METAGRAD_DATA_H */
