/*
 * metagrad/data.h - loading datasets from files (IDX, NPY, CSV,
 * Fashion-MNIST, text corpora), normalising them and splitting them.  Reading a dataset
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

/* ---- text corpora ----------------------------------------------------------
 *
 * A text corpus is a list of documents of bytes read from text files, each
 * with a domain label; it cuts them into a token dataset of fixed-length
 * byte sequences (vocabulary 256, one byte per token, see
 * mgrad_dataset_create_tokens) and says which document every example came
 * from, so that whole documents can be weighted or selected.  A mixed pool
 * is built by adding several files or globs with different domains.
 *
 *     mgrad_text_corpus *c;
 *     mgrad_text_corpus_create(&c, ctx);
 *     mgrad_text_corpus_add_glob(c, "/usr/share/man/man2/[a-z]*.gz", NULL,
 *                                MGRAD_TEXT_SPLIT_FILE, 0, NULL);      (man pages)
 *     mgrad_text_corpus_add_glob(c, "/usr/share/games/fortunes/[a-z]*", "*.dat",
 *                                MGRAD_TEXT_SPLIT_PERCENT, 1, NULL);   (fortunes)
 *     int64_t n;
 *     mgrad_text_corpus_count_examples(c, NULL, 0, 65, 0, &n);
 *     int64_t *doc = malloc(n * sizeof *doc);
 *     mgrad_dataset *ds;
 *     mgrad_text_corpus_examples(&ds, c, NULL, 0, 65, 0, doc, n);
 * *
 * Files are read whole through the loaders' bounded reader (plain or gzip,
 * every read checked, a gzip stream's CRC verified).  A file is text when it
 * holds no NUL byte; one that does (a binary file such as fortune's .dat
 * index) is refused.  Each file enters a corpus once: a file already added,
 * under any name (a symbolic or hard link), is skipped, with the domain it
 * was first added with.
 */

/** A list of text documents; thread safety as its context. */
typedef struct mgrad_text_corpus mgrad_text_corpus;

/** How a file is cut into documents.  Empty documents are skipped. */
typedef enum mgrad_text_split {
    /** The whole file is one document (a man page, a license, a source
        file). */
    MGRAD_TEXT_SPLIT_FILE = 1,
    /** fortune's format: documents are separated by lines holding only "%"
        ("%\n" or "%\r\n"); the separator lines belong to no document. */
    MGRAD_TEXT_SPLIT_PERCENT = 2,
    /** dictd dictionaries (dict-gcide's gcide.dict.dz): a document starts at
        the file's first byte and at every line that follows an empty line
        and begins with a byte other than space, tab, CR or LF (a headword;
        definitions are indented).  The empty lines before a headword end
        the previous document. */
    MGRAD_TEXT_SPLIT_HEADWORD = 3
} mgrad_text_split;

/**
 * Create an empty corpus.
 * @param[out] out  the corpus, owned by the caller (mgrad_text_corpus_destroy).
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_NOMEM.
 */
MGRAD_API mgrad_status mgrad_text_corpus_create(mgrad_text_corpus **out,
                                                mgrad_context *ctx);

/** Destroy a corpus (datasets made from it are independent).  Accepts NULL. */
MGRAD_API void mgrad_text_corpus_destroy(mgrad_text_corpus *corpus);

/**
 * Read one text file (plain or gzip) and add its documents.
 * @param path       the file.
 * @param split      an mgrad_text_split value.
 * @param domain     a label >= 0 given to each of its documents.
 * @param[out] documents_added  may be NULL: the documents added (0 for a
 *                   file already in the corpus or without text).
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_INVALID (split, domain);
 *         MGRAD_ERR_IO (missing, not a regular file, unreadable: the message
 *         names the file); MGRAD_ERR_FORMAT (corrupt or truncated gzip, a
 *         NUL byte: not text); MGRAD_ERR_NOMEM.  On failure the corpus is
 *         unchanged.
 */
MGRAD_API mgrad_status mgrad_text_corpus_add_file(mgrad_text_corpus *corpus,
                                                  const char *path, mgrad_text_split split,
                                                  int32_t domain, int64_t *documents_added);

/**
 * Add every regular file that a glob(3) pattern matches, in byte order of
 * their paths (independent of the locale).  Matches that are not regular
 * files (directories) are skipped, and so are those whose last path
 * component matches `exclude` (an fnmatch(3) pattern such as "*.dat", or
 * NULL for none).  All or nothing: when one file fails, no file of this
 * call stays in the corpus.
 * @param[out] documents_added  may be NULL: the documents added.
 * @return as mgrad_text_corpus_add_file, and MGRAD_ERR_IO when the pattern
 *         matches no file (after `exclude`) or cannot be read.
 */
MGRAD_API mgrad_status mgrad_text_corpus_add_glob(mgrad_text_corpus *corpus,
                                                  const char *pattern, const char *exclude,
                                                  mgrad_text_split split, int32_t domain,
                                                  int64_t *documents_added);

/**
 * The corpus's size.
 * @param[out] documents  may be NULL: the number of documents.
 * @param[out] bytes      may be NULL: their total length.
 * @return MGRAD_OK; MGRAD_ERR_NULL (corpus).
 */
MGRAD_API mgrad_status mgrad_text_corpus_size(const mgrad_text_corpus *corpus,
                                              int64_t *documents, int64_t *bytes);

/**
 * One document: where it comes from, its domain and its text.  Every
 * output may be NULL.  The pointers stay valid until the corpus is
 * destroyed or a file is added to it.
 * @param document    0 <= document < the number of documents (in the order
 *                    they were added; within a file, in file order).
 * @param[out] path   the file's path, as it was given or matched.
 * @param[out] part   the document's index among its file's documents.
 * @param[out] domain the domain it was added with.
 * @param[out] text   its bytes (not NUL-terminated).
 * @param[out] bytes  its length, >= 1.
 * @return MGRAD_OK; MGRAD_ERR_NULL (corpus); MGRAD_ERR_INVALID (document
 *         out of range).
 */
MGRAD_API mgrad_status mgrad_text_corpus_document(const mgrad_text_corpus *corpus,
                                                  int64_t document, const char **path,
                                                  int64_t *part, int32_t *domain,
                                                  const uint8_t **text, int64_t *bytes);

/**
 * The number of examples mgrad_text_corpus_examples makes with the same
 * arguments.  A document of B >= length bytes gives
 * (B - length) / stride + 1 examples; a shorter one gives none, and 0 is a
 * valid count (an empty corpus, documents all too short).
 * @param documents   the documents to cut, in this order (repeats allowed),
 *                    or NULL for all of them.
 * @param ndocuments  their count (ignored when documents is NULL).
 * @param length      bytes per example, L + 1 >= 2.
 * @param stride      bytes between the starts of consecutive examples of a
 *                    document, >= 1, or 0 for length - 1 (L): consecutive
 *                    examples then share one byte, and every byte after a
 *                    document's first is predicted exactly once up to the
 *                    dropped tail.
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_INVALID (length, stride, a
 *         document index out of range, ndocuments < 1).
 */
MGRAD_API mgrad_status mgrad_text_corpus_count_examples(const mgrad_text_corpus *corpus,
                                                        const int64_t *documents,
                                                        int64_t ndocuments, int64_t length,
                                                        int64_t stride, int64_t *out);

/**
 * Cut documents into a token dataset (vocabulary 256, one byte per token):
 * each document of B bytes gives the examples that start at bytes 0,
 * stride, 2 stride, ... and hold `length` bytes, in document order; the
 * last (B - length) mod stride bytes of a document (fewer than stride) and
 * documents shorter than `length` give no example (nothing is padded).
 * @param[out] out       the dataset, owned by the caller.
 * @param[out] document  may be NULL: for each example, the index of its
 *                       document in the corpus.
 * @param n              the number of examples (mgrad_text_corpus_count_examples);
 *                       checked when document is not NULL.
 * Other parameters as mgrad_text_corpus_count_examples.
 * @return MGRAD_OK; MGRAD_ERR_NULL; MGRAD_ERR_INVALID (as
 *         count_examples; an empty corpus; no selected document holds
 *         `length` bytes: the message names the longest); MGRAD_ERR_SIZE (n);
 *         MGRAD_ERR_NOMEM.  On failure neither *out nor document is written.
 */
MGRAD_API mgrad_status mgrad_text_corpus_examples(mgrad_dataset **out,
                                                  const mgrad_text_corpus *corpus,
                                                  const int64_t *documents,
                                                  int64_t ndocuments, int64_t length,
                                                  int64_t stride, int64_t *document,
                                                  int64_t n);

#ifdef __cplusplus
}
#endif

#endif /* METAGRAD_DATA_H */
