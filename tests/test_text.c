/*
 * test_text.c - token datasets (lib/data/tokens.c) and text corpora
 * (lib/data/text.c): ids stored exactly and compactly (one byte per token
 * for a byte vocabulary), invalid ids refused naming example and position,
 * token-ness kept by subsets and splits and guarded from value transforms;
 * documents cut by each split rule from plain and gzip files, examples and
 * their document ids checked against cuts made here by hand; globs (order,
 * exclude, links, directories); every failure with its status, a message
 * naming the file, the corpus and *out untouched, no memory or descriptor
 * leaked; a failing allocator at every allocation; the Debian text packages
 * when installed.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "data/dataset.h"
#include "metagrad.h"
#include "testutil.h"
#include "tmpfiles.h"

Suite *make_suite(void);

static void setup(void) { tmpfiles_make("text-test"); }

static void teardown(void) { tmpfiles_teardown(); }

/* ---- token datasets ------------------------------------------------------ */

static void random_ids(int32_t *ids, int64_t count, int32_t vocab, uint64_t seed)
{
    for (int64_t i = 0; i < count; i++) ids[i] = (int32_t)tu_rand_int(&seed, 0, vocab - 1);
}

/* The dataset's ids through get_tokens and get_inputs (f32 and f64) equal
   `ids` exactly. */
static void same_ids(const mgrad_dataset *ds, const int32_t *ids, int64_t count)
{
    int32_t *t = malloc((size_t)count * sizeof *t);
    double *x = malloc((size_t)count * sizeof *x);
    float *xf = malloc((size_t)count * sizeof *xf);
    ck_assert_int_eq(mgrad_dataset_get_tokens(ds, t, count), MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_get_inputs(ds, MGRAD_DTYPE_F64, x, count), MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_get_inputs(ds, MGRAD_DTYPE_F32, xf, count), MGRAD_OK);
    for (int64_t i = 0; i < count; i++) {
        ck_assert_int_eq(t[i], ids[i]);
        ck_assert(x[i] == (double)ids[i]);
        if (ids[i] <= (1 << 24)) ck_assert(xf[i] == (float)ids[i]);
    }
    free(t);
    free(x);
    free(xf);
}

START_TEST(test_tokens_exact_and_compact)
{
    for (int d = 0; d < 2; d++) {
        mgrad_dtype dt = d == 0 ? MGRAD_DTYPE_F32 : MGRAD_DTYPE_F64;
        int64_t es = d == 0 ? 4 : 8;
        mgrad_context *ctx = new_ctx(dt);
        enum { N = 7, LEN = 13 };
        int32_t ids[N * LEN];
        /* byte-level: every byte value, one byte per token */
        for (int64_t i = 0; i < N * LEN; i++) ids[i] = (int32_t)((i * 37 + 11) % 256);
        ids[0] = 0;
        ids[1] = 255;
        mgrad_dataset *ds = NULL;
        ck_assert_int_eq(mgrad_dataset_create_tokens(&ds, ctx, N, LEN, ids, 256), MGRAD_OK);
        int32_t vocab = -1, ndim = 0;
        int64_t n = 0, f = 0, shape[3], bytes = 0;
        ck_assert_int_eq(mgrad_dataset_vocab(ds, &vocab), MGRAD_OK);
        ck_assert_int_eq(vocab, 256);
        ck_assert_int_eq(mgrad_dataset_size(ds, &n), MGRAD_OK);
        ck_assert_int_eq(mgrad_dataset_features(ds, &f), MGRAD_OK);
        ck_assert_int_eq(mgrad_dataset_shape(ds, &ndim, shape), MGRAD_OK);
        ck_assert_int_eq(n, N);
        ck_assert_int_eq(f, LEN);
        ck_assert_int_eq(ndim, 1);
        ck_assert_int_eq(shape[0], LEN);
        same_ids(ds, ids, N * LEN);
        /* compact already: the codes are the bytes themselves */
        ck_assert_ptr_nonnull(ds->codes);
        ck_assert_ptr_null(ds->inputs);
        for (int64_t i = 0; i < N * LEN; i++) ck_assert_int_eq(ds->codes[i], ids[i]);
        ck_assert_int_eq(mgrad_dataset_compact(ds, &bytes), MGRAD_OK);
        ck_assert_int_eq(bytes, N * LEN + 256 * es);
        /* a row as the run reads it */
        double row[LEN];
        float rowf[LEN];
        if (d == 0) {
            mgr_dataset_copy_row(ds, 3, rowf);
            for (int j = 0; j < LEN; j++) ck_assert(rowf[j] == (float)ids[3 * LEN + j]);
        } else {
            mgr_dataset_copy_row(ds, 3, row);
            for (int j = 0; j < LEN; j++) ck_assert(row[j] == (double)ids[3 * LEN + j]);
        }
        mgrad_dataset_destroy(ds);

        /* a small vocabulary: still one byte per token, palette of vocab */
        random_ids(ids, N * LEN, 5, 3);
        ck_assert_int_eq(mgrad_dataset_create_tokens(&ds, ctx, N, LEN, ids, 5), MGRAD_OK);
        ck_assert_int_eq(mgrad_dataset_compact(ds, &bytes), MGRAD_OK);
        ck_assert_int_eq(bytes, N * LEN + 5 * es);
        same_ids(ds, ids, N * LEN);
        mgrad_dataset_destroy(ds);

        /* beyond bytes: dense and exact, up to the largest id the dtype
           holds (2^24 - 1 in f32) */
        int32_t big = d == 0 ? (1 << 24) : INT32_MAX;
        random_ids(ids, N * LEN, big, 5);
        ids[2] = big - 1;
        ids[5] = big - 2;
        ck_assert_int_eq(mgrad_dataset_create_tokens(&ds, ctx, N, LEN, ids, big), MGRAD_OK);
        ck_assert_ptr_null(ds->codes);
        ck_assert_int_eq(mgrad_dataset_vocab(ds, &vocab), MGRAD_OK);
        ck_assert_int_eq(vocab, big);
        int32_t t[N * LEN];
        ck_assert_int_eq(mgrad_dataset_get_tokens(ds, t, N * LEN), MGRAD_OK);
        ck_assert(memcmp(t, ids, sizeof t) == 0);
        mgrad_dataset_destroy(ds);

        /* not a token dataset: vocab 0, get_tokens refused */
        double x[6] = {0, 1, 2, 3, 4, 5};
        int64_t sh[1] = {3};
        ck_assert_int_eq(mgrad_dataset_create(&ds, ctx, 2, 1, sh, MGRAD_DTYPE_F64, x),
                         MGRAD_OK);
        ck_assert_int_eq(mgrad_dataset_vocab(ds, &vocab), MGRAD_OK);
        ck_assert_int_eq(vocab, 0);
        ck_assert_int_eq(mgrad_dataset_get_tokens(ds, t, 6), MGRAD_ERR_ORDER);
        mgrad_dataset_destroy(ds);
        ck_assert_uint_eq(ctx_bytes(ctx), 0);
        mgrad_context_destroy(ctx);
    }
}
END_TEST

START_TEST(test_tokens_invalid)
{
    mgrad_context *ctx = new_ctx(MGRAD_DTYPE_F32);
    enum { N = 3, LEN = 5 };
    int32_t ids[N * LEN], copy[N * LEN];
    random_ids(ids, N * LEN, 256, 9);
    ids[1 * LEN + 2] = 300; /* example 1, position 2 */
    memcpy(copy, ids, sizeof ids);
    EXPECT_FAIL(ctx, MGRAD_ERR_INVALID, "token 300 at example 1, position 2 is outside [0, 256)",
                mgrad_dataset_create_tokens(&out_, ctx, N, LEN, ids, 256));
    ck_assert(memcmp(ids, copy, sizeof ids) == 0);
    ids[1 * LEN + 2] = 7;
    ids[2 * LEN + 4] = -1;
    EXPECT_FAIL(ctx, MGRAD_ERR_INVALID, "token -1 at example 2, position 4",
                mgrad_dataset_create_tokens(&out_, ctx, N, LEN, ids, 256));
    ids[2 * LEN + 4] = 0;
    /* an id equal to vocab is out */
    ids[0] = 100;
    EXPECT_FAIL(ctx, MGRAD_ERR_INVALID, "token 100 at example 0, position 0",
                mgrad_dataset_create_tokens(&out_, ctx, N, LEN, ids, 100));
    ids[0] = 1;
    EXPECT_FAIL(ctx, MGRAD_ERR_INVALID, "vocab = 1",
                mgrad_dataset_create_tokens(&out_, ctx, N, LEN, ids, 1));
    EXPECT_FAIL(ctx, MGRAD_ERR_INVALID, "vocab = 16777217",
                mgrad_dataset_create_tokens(&out_, ctx, N, LEN, ids, (1 << 24) + 1));
    EXPECT_FAIL(ctx, MGRAD_ERR_INVALID, "length = 1",
                mgrad_dataset_create_tokens(&out_, ctx, N, 1, ids, 256));
    EXPECT_FAIL(ctx, MGRAD_ERR_INVALID, "n = 0",
                mgrad_dataset_create_tokens(&out_, ctx, 0, LEN, ids, 256));
    EXPECT_FAIL(ctx, MGRAD_ERR_INVALID, "overflow",
                mgrad_dataset_create_tokens(&out_, ctx, INT64_MAX / 2, LEN, ids, 256));
    EXPECT_FAIL(ctx, MGRAD_ERR_NULL, "must not be NULL",
                mgrad_dataset_create_tokens(&out_, ctx, N, LEN, NULL, 256));
    EXPECT_FAIL(ctx, MGRAD_ERR_NULL, "must not be NULL",
                mgrad_dataset_create_tokens(NULL, ctx, N, LEN, ids, 256));
    ck_assert_int_eq(mgrad_dataset_create_tokens(NULL, NULL, N, LEN, ids, 256), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_dataset_vocab(NULL, NULL), MGRAD_ERR_NULL);
    mgrad_dataset *ds = NULL;
    ck_assert_int_eq(mgrad_dataset_create_tokens(&ds, ctx, N, LEN, ids, 256), MGRAD_OK);
    int32_t t[N * LEN];
    ck_assert_int_eq(mgrad_dataset_vocab(ds, NULL), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_dataset_get_tokens(ds, t, N * LEN - 1), MGRAD_ERR_SIZE);
    ck_assert_int_eq(mgrad_dataset_get_tokens(ds, NULL, N * LEN), MGRAD_ERR_NULL);
    mgrad_dataset_destroy(ds);
    ck_assert_uint_eq(ctx_bytes(ctx), 0);
    mgrad_context_destroy(ctx);
}
END_TEST

START_TEST(test_tokens_subset_split_weights)
{
    mgrad_context *ctx = new_ctx(MGRAD_DTYPE_F64);
    enum { N = 10, LEN = 6 };
    int32_t ids[N * LEN];
    random_ids(ids, N * LEN, 256, 17);
    mgrad_dataset *ds = NULL, *sub = NULL, *a = NULL, *b = NULL;
    ck_assert_int_eq(mgrad_dataset_create_tokens(&ds, ctx, N, LEN, ids, 256), MGRAD_OK);
    double w[N];
    for (int i = 0; i < N; i++) w[i] = 0.5 * i;
    ck_assert_int_eq(mgrad_dataset_set_weights(ds, MGRAD_DTYPE_F64, w, N), MGRAD_OK);
    int64_t rows[4] = {7, 2, 2, 9};
    ck_assert_int_eq(mgrad_dataset_subset(&sub, ds, rows, 4), MGRAD_OK);
    int32_t vocab = 0, expect[4 * LEN];
    ck_assert_int_eq(mgrad_dataset_vocab(sub, &vocab), MGRAD_OK);
    ck_assert_int_eq(vocab, 256);
    ck_assert_ptr_nonnull(sub->codes);
    for (int r = 0; r < 4; r++) memcpy(expect + r * LEN, ids + rows[r] * LEN, LEN * sizeof *ids);
    same_ids(sub, expect, 4 * LEN);
    for (int r = 0; r < 4; r++) ck_assert(((double *)sub->weights)[r] == w[rows[r]]);
    ck_assert_int_eq(mgrad_dataset_split(&a, &b, ds, 6, 3), MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_vocab(a, &vocab), MGRAD_OK);
    ck_assert_int_eq(vocab, 256);
    ck_assert_int_eq(mgrad_dataset_vocab(b, &vocab), MGRAD_OK);
    ck_assert_int_eq(vocab, 256);
    ck_assert_ptr_nonnull(a->codes);
    ck_assert_ptr_nonnull(b->codes);
    /* value transforms refuse ids and change nothing */
    mgrad_context_clear_error(ctx);
    ck_assert_int_eq(mgrad_dataset_scale(ds, 2.0, 0.0), MGRAD_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(mgrad_context_last_error(ctx), "token ids"));
    ck_assert_int_eq(mgrad_dataset_normalize(ds, NULL, MGRAD_NORMALIZE_GLOBAL),
                     MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_dataset_normalize(ds, NULL, MGRAD_NORMALIZE_PER_FEATURE),
                     MGRAD_ERR_INVALID);
    same_ids(ds, ids, N * LEN);
    mgrad_dataset_destroy(ds);
    mgrad_dataset_destroy(sub);
    mgrad_dataset_destroy(a);
    mgrad_dataset_destroy(b);
    ck_assert_uint_eq(ctx_bytes(ctx), 0);
    mgrad_context_destroy(ctx);
}
END_TEST

/* ---- text corpora -------------------------------------------------------- */

/* A hand-made corpus: what each file holds and the documents it gives. */
static const char plain_text[] = "The quick brown fox jumps over the lazy dog.\n";
static const char gz_text[] = "Pack my box with five dozen liquor jugs.\nTwice.\n";
/* Separators: "%\n", "%\r\n", and "%" ending the file; "%%", " %" and
   one-byte lines are text. */
static const char fortune_text[] = "A fortune of some length, to be cut.\n%\nshort\nx\n%%\n %\n"
                                   "%\r\n%\nLast one, with\ntwo lines.\n%\nno newline\n%";
static const char *const fortune_docs[] = {"A fortune of some length, to be cut.\n",
                                           "short\nx\n%%\n %\n", "Last one, with\ntwo lines.\n",
                                           "no newline\n"};
static const char dict_text[] = "head\n   preamble line\n\n"
                                "apple \\ap\"ple\\ n.\n   1. A fruit.\n\n   Syn: pome\n\n"
                                "banana n.\n   A long fruit.\n\n\n"
                                "cherry n.\n   Small.\n";
static const char *const dict_docs[] = {
    "head\n   preamble line\n\n",
    "apple \\ap\"ple\\ n.\n   1. A fruit.\n\n   Syn: pome\n\n",
    "banana n.\n   A long fruit.\n\n\n",
    "cherry n.\n   Small.\n",
};

typedef struct want_doc {
    const char *text;
    int32_t domain;
    int64_t part;
    const char *path;
} want_doc;

static int64_t build_corpus(mgrad_text_corpus *c, want_doc *want)
{
    const char *p1 = write_file("a.txt", plain_text, strlen(plain_text));
    const char *p2 = write_gz("b.txt.gz", gz_text, strlen(gz_text));
    const char *p3 = write_file("fortunes", fortune_text, strlen(fortune_text));
    const char *p4 = write_gz("gcide.dict.dz", dict_text, strlen(dict_text));
    int64_t added = -1, k = 0;
    ck_assert_int_eq(mgrad_text_corpus_add_file(c, p1, MGRAD_TEXT_SPLIT_FILE, 0, &added),
                     MGRAD_OK);
    ck_assert_int_eq(added, 1);
    want[k++] = (want_doc){plain_text, 0, 0, p1};
    ck_assert_int_eq(mgrad_text_corpus_add_file(c, p2, MGRAD_TEXT_SPLIT_FILE, 0, &added),
                     MGRAD_OK);
    ck_assert_int_eq(added, 1);
    want[k++] = (want_doc){gz_text, 0, 0, p2};
    ck_assert_int_eq(mgrad_text_corpus_add_file(c, p3, MGRAD_TEXT_SPLIT_PERCENT, 1, &added),
                     MGRAD_OK);
    ck_assert_int_eq(added, 4);
    for (int i = 0; i < 4; i++) want[k++] = (want_doc){fortune_docs[i], 1, i, p3};
    ck_assert_int_eq(mgrad_text_corpus_add_file(c, p4, MGRAD_TEXT_SPLIT_HEADWORD, 2, &added),
                     MGRAD_OK);
    ck_assert_int_eq(added, 4);
    for (int i = 0; i < 4; i++) want[k++] = (want_doc){dict_docs[i], 2, i, p4};
    return k;
}

START_TEST(test_corpus_documents)
{
    mgrad_context *ctx = new_ctx(MGRAD_DTYPE_F32);
    mgrad_text_corpus *c = NULL;
    ck_assert_int_eq(mgrad_text_corpus_create(&c, ctx), MGRAD_OK);
    want_doc want[16];
    int64_t nd = build_corpus(c, want), docs = 0, bytes = 0, total = 0;
    ck_assert_int_eq(mgrad_text_corpus_size(c, &docs, &bytes), MGRAD_OK);
    ck_assert_int_eq(docs, nd);
    for (int64_t d = 0; d < nd; d++) {
        const char *path = NULL;
        const uint8_t *text = NULL;
        int64_t part = -1, len = -1;
        int32_t domain = -1;
        ck_assert_int_eq(mgrad_text_corpus_document(c, d, &path, &part, &domain, &text, &len),
                         MGRAD_OK);
        ck_assert_str_eq(path, want[d].path);
        ck_assert_int_eq(part, want[d].part);
        ck_assert_int_eq(domain, want[d].domain);
        ck_assert_int_eq(len, (int64_t)strlen(want[d].text));
        ck_assert(memcmp(text, want[d].text, (size_t)len) == 0);
        total += len;
    }
    ck_assert_int_eq(bytes, total);
    /* the same file again (and through a link) is not added twice */
    int64_t added = -1;
    ck_assert_int_eq(mgrad_text_corpus_add_file(c, want[0].path, MGRAD_TEXT_SPLIT_FILE, 5,
                                                &added), MGRAD_OK);
    ck_assert_int_eq(added, 0);
    const char *link = tmp_path("link.txt");
    ck_assert_int_eq(symlink(want[0].path, link), 0);
    ck_assert_int_eq(mgrad_text_corpus_add_file(c, link, MGRAD_TEXT_SPLIT_FILE, 5, &added),
                     MGRAD_OK);
    ck_assert_int_eq(added, 0);
    /* an empty file has no document */
    const char *empty = write_file("empty", "", 0);
    ck_assert_int_eq(mgrad_text_corpus_add_file(c, empty, MGRAD_TEXT_SPLIT_FILE, 0, &added),
                     MGRAD_OK);
    ck_assert_int_eq(added, 0);
    ck_assert_int_eq(mgrad_text_corpus_size(c, &docs, NULL), MGRAD_OK);
    ck_assert_int_eq(docs, nd);
    mgrad_text_corpus_destroy(c);
    ck_assert_uint_eq(ctx_bytes(ctx), 0);
    mgrad_context_destroy(ctx);
}
END_TEST

/* The examples of `docs` (NULL: all) cut by hand from the expected texts:
   starts 0, stride, ... while a whole example fits. */
static int64_t cut_by_hand(const want_doc *want, int64_t nd, const int64_t *docs, int64_t ns,
                           int64_t length, int64_t stride, uint8_t *bytes, int64_t *doc_of)
{
    int64_t n = 0;
    for (int64_t k = 0; k < (docs != NULL ? ns : nd); k++) {
        int64_t d = docs != NULL ? docs[k] : k;
        int64_t b = (int64_t)strlen(want[d].text);
        for (int64_t s = 0; s + length <= b; s += stride) {
            if (bytes != NULL) memcpy(bytes + n * length, want[d].text + s, (size_t)length);
            if (doc_of != NULL) doc_of[n] = d;
            n++;
        }
    }
    return n;
}

static void check_examples(mgrad_text_corpus *c, const want_doc *want, int64_t nd,
                           const int64_t *docs, int64_t ns, int64_t length, int64_t stride)
{
    int64_t step = stride == 0 ? length - 1 : stride;
    int64_t n = cut_by_hand(want, nd, docs, ns, length, step, NULL, NULL), count = -1;
    ck_assert_int_gt(n, 0);
    ck_assert_int_eq(mgrad_text_corpus_count_examples(c, docs, ns, length, stride, &count),
                     MGRAD_OK);
    ck_assert_int_eq(count, n);
    uint8_t *bytes = malloc((size_t)(n * length));
    int64_t *doc_of = malloc((size_t)n * sizeof *doc_of), *got = malloc((size_t)n * sizeof *got);
    int32_t *ids = malloc((size_t)(n * length) * sizeof *ids);
    cut_by_hand(want, nd, docs, ns, length, step, bytes, doc_of);
    mgrad_dataset *ds = NULL;
    ck_assert_int_eq(mgrad_text_corpus_examples(&ds, c, docs, ns, length, stride, got, n),
                     MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_get_tokens(ds, ids, n * length), MGRAD_OK);
    for (int64_t i = 0; i < n * length; i++) ck_assert_int_eq(ids[i], bytes[i]);
    for (int64_t i = 0; i < n; i++) ck_assert_int_eq(got[i], doc_of[i]);
    /* one byte per token */
    int64_t in_bytes = 0;
    ck_assert_int_eq(mgrad_dataset_compact(ds, &in_bytes), MGRAD_OK);
    ck_assert_int_eq(in_bytes, n * length + 256 * 4);
    int32_t vocab = 0;
    ck_assert_int_eq(mgrad_dataset_vocab(ds, &vocab), MGRAD_OK);
    ck_assert_int_eq(vocab, 256);
    mgrad_dataset_destroy(ds);
    /* document ids are optional */
    ck_assert_int_eq(mgrad_text_corpus_examples(&ds, c, docs, ns, length, stride, NULL, 0),
                     MGRAD_OK);
    mgrad_dataset_destroy(ds);
    free(bytes);
    free(doc_of);
    free(got);
    free(ids);
}

START_TEST(test_corpus_examples)
{
    mgrad_context *ctx = new_ctx(MGRAD_DTYPE_F32);
    mgrad_text_corpus *c = NULL;
    ck_assert_int_eq(mgrad_text_corpus_create(&c, ctx), MGRAD_OK);
    want_doc want[16];
    int64_t nd = build_corpus(c, want);
    /* stride L (default), overlapping, sparse; lengths that drop short
       documents ("short\n") and tails */
    int64_t lengths[] = {2, 5, 9, 17, 33};
    for (int i = 0; i < 5; i++) {
        check_examples(c, want, nd, NULL, 0, lengths[i], 0);
        check_examples(c, want, nd, NULL, 0, lengths[i], 1);
        check_examples(c, want, nd, NULL, 0, lengths[i], lengths[i] + 3);
    }
    /* a selection, in the caller's order, with repeats */
    int64_t sel[5] = {9, 0, 3, 0, 6};
    check_examples(c, want, nd, sel, 5, 7, 0);
    check_examples(c, want, nd, sel, 5, 7, 3);
    mgrad_text_corpus_destroy(c);
    ck_assert_uint_eq(ctx_bytes(ctx), 0);
    mgrad_context_destroy(ctx);
}
END_TEST

START_TEST(test_corpus_glob)
{
    mgrad_context *ctx = new_ctx(MGRAD_DTYPE_F64);
    char sub[600];
    snprintf(sub, sizeof sub, "%s/g", tmpdir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    const char *pb = write_file("g/b", "bbbbbbbb\n", 9);
    const char *pa = write_gz("g/a", "aaaaaaaa\n", 9);
    const char *pc = write_file("g/c", "cccc\n%\ncccc\n", 12);
    write_file("g/c.dat", "\0\0\0\2binary", 10);
    ck_assert_int_eq(symlink(pb, tmp_path("g/b.u8")), 0);
    char dir2[700];
    snprintf(dir2, sizeof dir2, "%s/g/z.dir", tmpdir);
    ck_assert_int_eq(mkdir(dir2, 0700), 0);
    char pattern[700];
    snprintf(pattern, sizeof pattern, "%s/g/*", tmpdir);

    mgrad_text_corpus *c = NULL;
    ck_assert_int_eq(mgrad_text_corpus_create(&c, ctx), MGRAD_OK);
    /* without the exclusion the binary .dat file fails the whole glob */
    mgrad_context_clear_error(ctx);
    ck_assert_int_eq(mgrad_text_corpus_add_glob(c, pattern, NULL, MGRAD_TEXT_SPLIT_PERCENT, 3,
                                                NULL), MGRAD_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(mgrad_context_last_error(ctx), "c.dat: a NUL byte at offset 0"));
    int64_t docs = -1, bytes = -1, added = -1;
    ck_assert_int_eq(mgrad_text_corpus_size(c, &docs, &bytes), MGRAD_OK);
    ck_assert_int_eq(docs, 0);
    ck_assert_int_eq(bytes, 0);
    ck_assert_int_eq(mgrad_text_corpus_add_glob(c, pattern, "*.dat", MGRAD_TEXT_SPLIT_PERCENT,
                                                3, &added), MGRAD_OK);
    /* a, b, c in byte order; b.u8 is b (a link); z.dir is a directory */
    ck_assert_int_eq(added, 4);
    const char *expect_path[4] = {pa, pb, pc, pc};
    const char *expect_text[4] = {"aaaaaaaa\n", "bbbbbbbb\n", "cccc\n", "cccc\n"};
    for (int d = 0; d < 4; d++) {
        const char *path = NULL;
        const uint8_t *text = NULL;
        int64_t part = -1, len = 0;
        int32_t domain = -1;
        ck_assert_int_eq(mgrad_text_corpus_document(c, d, &path, &part, &domain, &text, &len),
                         MGRAD_OK);
        ck_assert_str_eq(path, expect_path[d]);
        ck_assert_int_eq(part, d == 3 ? 1 : 0);
        ck_assert_int_eq(domain, 3);
        ck_assert_int_eq(len, (int64_t)strlen(expect_text[d]));
        ck_assert(memcmp(text, expect_text[d], (size_t)len) == 0);
    }
    /* again: every file is in already */
    ck_assert_int_eq(mgrad_text_corpus_add_glob(c, pattern, "*.dat", MGRAD_TEXT_SPLIT_FILE, 4,
                                                &added), MGRAD_OK);
    ck_assert_int_eq(added, 0);
    /* no match */
    char none[700];
    snprintf(none, sizeof none, "%s/g/nothing-*", tmpdir);
    mgrad_context_clear_error(ctx);
    ck_assert_int_eq(mgrad_text_corpus_add_glob(c, none, NULL, MGRAD_TEXT_SPLIT_FILE, 0, NULL),
                     MGRAD_ERR_IO);
    ck_assert_ptr_nonnull(strstr(mgrad_context_last_error(ctx), "matches no regular file"));
    ck_assert_int_eq(mgrad_text_corpus_add_glob(c, pattern, "*", MGRAD_TEXT_SPLIT_FILE, 0, NULL),
                     MGRAD_ERR_IO);
    ck_assert_int_eq(mgrad_text_corpus_size(c, &docs, NULL), MGRAD_OK);
    ck_assert_int_eq(docs, 4);
    mgrad_text_corpus_destroy(c);
    ck_assert_uint_eq(ctx_bytes(ctx), 0);
    mgrad_context_destroy(ctx);
}
END_TEST

/* A failed add leaves the corpus as it was: documents, bytes, memory (these
   failures come before any list grows), descriptors, *documents_added. */
#define EXPECT_ADD_FAIL(ctx, c, status, needle, call)                                   \
    do {                                                                                \
        int64_t d0_ = -1, b0_ = -1, d1_ = -2, b1_ = -2;                                 \
        mgrad_text_corpus_size(c, &d0_, &b0_);                                          \
        int64_t added_ = -7;                                                            \
        (void)added_;                                                                   \
        uint64_t mem_ = ctx_bytes(ctx);                                                 \
        int fd_ = lowest_fd();                                                          \
        mgrad_context_clear_error(ctx);                                                 \
        mgrad_status s_ = (call);                                                       \
        const char *msg_ = mgrad_context_last_error(ctx);                               \
        ck_assert_msg(s_ == (status), "%s: status %d, expected %d: %s", #call, (int)s_, \
                      (int)(status), msg_);                                             \
        ck_assert_msg(strstr(msg_, (needle)) != NULL, "message '%s' lacks '%s'", msg_,  \
                      (needle));                                                        \
        mgrad_text_corpus_size(c, &d1_, &b1_);                                          \
        ck_assert_int_eq(d1_, d0_);                                                     \
        ck_assert_int_eq(b1_, b0_);                                                     \
        ck_assert_int_eq(added_, -7);                                                   \
        ck_assert_uint_eq(ctx_bytes(ctx), mem_);                                        \
        ck_assert_int_eq(lowest_fd(), fd_);                                             \
    } while (0)

START_TEST(test_corpus_errors)
{
    mgrad_context *ctx = new_ctx(MGRAD_DTYPE_F32);
    mgrad_text_corpus *c = NULL;
    ck_assert_int_eq(mgrad_text_corpus_create(NULL, ctx), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_text_corpus_create(&c, NULL), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_text_corpus_create(&c, ctx), MGRAD_OK);
    mgrad_text_corpus_destroy(NULL);

    /* an empty corpus: no examples, and a count of 0 */
    int64_t count = -1;
    ck_assert_int_eq(mgrad_text_corpus_count_examples(c, NULL, 0, 5, 0, &count), MGRAD_OK);
    ck_assert_int_eq(count, 0);
    EXPECT_FAIL(ctx, MGRAD_ERR_INVALID, "holds no document",
                mgrad_text_corpus_examples(&out_, c, NULL, 0, 5, 0, NULL, 0));

    const char *missing = tmp_path("missing.txt");
    EXPECT_ADD_FAIL(ctx, c, MGRAD_ERR_IO, missing,
                    mgrad_text_corpus_add_file(c, missing, MGRAD_TEXT_SPLIT_FILE, 0, &added_));
    EXPECT_ADD_FAIL(ctx, c, MGRAD_ERR_IO, "not a regular file",
                    mgrad_text_corpus_add_file(c, tmpdir, MGRAD_TEXT_SPLIT_FILE, 0, &added_));
    /* a FIFO without a writer: refused at once, not a hang */
    const char *fifo = tmp_path("fifo");
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    EXPECT_ADD_FAIL(ctx, c, MGRAD_ERR_IO, "fifo: not a regular file",
                    mgrad_text_corpus_add_file(c, fifo, MGRAD_TEXT_SPLIT_FILE, 0, &added_));
    const char *secret = write_file("secret.txt", "secret text\n", 12);
    ck_assert_int_eq(chmod(secret, 0), 0);
    if (geteuid() != 0) /* root reads anything */
        EXPECT_ADD_FAIL(ctx, c, MGRAD_ERR_IO, "secret.txt: cannot open",
                        mgrad_text_corpus_add_file(c, secret, MGRAD_TEXT_SPLIT_FILE, 0,
                                                   &added_));
    const char *bin = write_file("bin", "text\0more", 9);
    EXPECT_ADD_FAIL(ctx, c, MGRAD_ERR_FORMAT, "bin: a NUL byte at offset 4: not a text file",
                    mgrad_text_corpus_add_file(c, bin, MGRAD_TEXT_SPLIT_FILE, 0, &added_));
    /* gzip: truncated, and a damaged CRC */
    static const char body[] = "Some text long enough to compress into a stream.\n";
    const char *gz = write_gz("ok.gz", body, strlen(body));
    unsigned char raw[256];
    FILE *f = fopen(gz, "rb");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(raw, 1, sizeof raw, f);
    fclose(f);
    const char *trunc = write_file("trunc.gz", raw, n - 6);
    EXPECT_ADD_FAIL(ctx, c, MGRAD_ERR_FORMAT, "trunc.gz",
                    mgrad_text_corpus_add_file(c, trunc, MGRAD_TEXT_SPLIT_FILE, 0, &added_));
    raw[n - 6] ^= 0x55; /* the CRC */
    const char *crc = write_file("crc.gz", raw, n);
    EXPECT_ADD_FAIL(ctx, c, MGRAD_ERR_FORMAT, "crc.gz",
                    mgrad_text_corpus_add_file(c, crc, MGRAD_TEXT_SPLIT_FILE, 0, &added_));
    /* arguments */
    const char *ok = write_file("ok.txt", "0123456789\n", 11);
    EXPECT_ADD_FAIL(ctx, c, MGRAD_ERR_INVALID, "unknown split 0",
                    mgrad_text_corpus_add_file(c, ok, (mgrad_text_split)0, 0, &added_));
    EXPECT_ADD_FAIL(ctx, c, MGRAD_ERR_INVALID, "unknown split 4",
                    mgrad_text_corpus_add_glob(c, ok, NULL, (mgrad_text_split)4, 0, &added_));
    EXPECT_ADD_FAIL(ctx, c, MGRAD_ERR_INVALID, "domain = -1",
                    mgrad_text_corpus_add_file(c, ok, MGRAD_TEXT_SPLIT_FILE, -1, &added_));
    EXPECT_ADD_FAIL(ctx, c, MGRAD_ERR_NULL, "must not be NULL",
                    mgrad_text_corpus_add_file(c, NULL, MGRAD_TEXT_SPLIT_FILE, 0, &added_));
    EXPECT_ADD_FAIL(ctx, c, MGRAD_ERR_NULL, "must not be NULL",
                    mgrad_text_corpus_add_glob(c, NULL, NULL, MGRAD_TEXT_SPLIT_FILE, 0,
                                               &added_));
    ck_assert_int_eq(mgrad_text_corpus_add_file(NULL, ok, MGRAD_TEXT_SPLIT_FILE, 0, NULL),
                     MGRAD_ERR_NULL);

    /* too-short documents: the message names the longest */
    ck_assert_int_eq(mgrad_text_corpus_add_file(c, ok, MGRAD_TEXT_SPLIT_FILE, 0, NULL),
                     MGRAD_OK);
    ck_assert_int_eq(mgrad_text_corpus_count_examples(c, NULL, 0, 12, 0, &count), MGRAD_OK);
    ck_assert_int_eq(count, 0);
    EXPECT_FAIL(ctx, MGRAD_ERR_INVALID, "ok.txt, part 0) has 11",
                mgrad_text_corpus_examples(&out_, c, NULL, 0, 12, 0, NULL, 0));
    ck_assert_int_eq(mgrad_text_corpus_count_examples(c, NULL, 0, 11, 0, &count), MGRAD_OK);
    ck_assert_int_eq(count, 1);
    /* cut parameters, selections and the document buffer */
    int64_t ids[4] = {-5, -5, -5, -5}, bad[2] = {0, 1};
    EXPECT_FAIL(ctx, MGRAD_ERR_INVALID, "length = 1",
                mgrad_text_corpus_examples(&out_, c, NULL, 0, 1, 0, ids, 1));
    EXPECT_FAIL(ctx, MGRAD_ERR_INVALID, "stride = -1",
                mgrad_text_corpus_examples(&out_, c, NULL, 0, 5, -1, ids, 1));
    EXPECT_FAIL(ctx, MGRAD_ERR_INVALID, "documents[1] = 1 is outside [0, 1)",
                mgrad_text_corpus_examples(&out_, c, bad, 2, 5, 0, ids, 2));
    EXPECT_FAIL(ctx, MGRAD_ERR_INVALID, "ndocuments = 0",
                mgrad_text_corpus_examples(&out_, c, bad, 0, 5, 0, ids, 2));
    EXPECT_FAIL(ctx, MGRAD_ERR_SIZE, "n = 4 but the documents give 2",
                mgrad_text_corpus_examples(&out_, c, NULL, 0, 5, 0, ids, 4));
    EXPECT_FAIL(ctx, MGRAD_ERR_NULL, "out must not be NULL",
                mgrad_text_corpus_examples(NULL, c, NULL, 0, 5, 0, ids, 2));
    for (int i = 0; i < 4; i++) ck_assert_int_eq(ids[i], -5);
    ck_assert_int_eq(mgrad_text_corpus_count_examples(c, NULL, 0, 5, 0, NULL), MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_text_corpus_count_examples(NULL, NULL, 0, 5, 0, &count),
                     MGRAD_ERR_NULL);
    ck_assert_int_eq(mgrad_text_corpus_document(c, 1, NULL, NULL, NULL, NULL, NULL),
                     MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_text_corpus_document(c, -1, NULL, NULL, NULL, NULL, NULL),
                     MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_text_corpus_size(NULL, NULL, NULL), MGRAD_ERR_NULL);
    mgrad_text_corpus_destroy(c);
    ck_assert_uint_eq(ctx_bytes(ctx), 0);
    mgrad_context_destroy(ctx);
}
END_TEST

/* ---- a failing allocator ------------------------------------------------- */

/* Allocation k of each call fails, k = 0, 1, ...: every failure is NOMEM
   and leaves the corpus as it was; then the call succeeds. */
START_TEST(test_corpus_nomem)
{
    fail_alloc fa = {0, -1};
    mgrad_context_options o = MGRAD_CONTEXT_OPTIONS_INIT;
    o.malloc_fn = fail_malloc;
    o.free_fn = fail_free;
    o.alloc_user_data = &fa;
    mgrad_context *ctx = NULL;
    ck_assert_int_eq(mgrad_context_create(&ctx, &o), MGRAD_OK);
    mgrad_text_corpus *c = NULL;
    ck_assert_int_eq(mgrad_text_corpus_create(&c, ctx), MGRAD_OK);
    /* many documents, so that the lists grow several times */
    char text[4096];
    size_t len = 0;
    for (int i = 0; i < 40; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "fortune %d of forty\n%%\n", i);
    const char *p = write_file("many", text, len);
    const char *q = write_gz("more.gz", text, len);
    const char *paths[2] = {p, q};
    long failures = 0;
    for (int f = 0; f < 2; f++) {
        for (long k = 0;; k++) {
            int64_t d0 = 0, b0 = 0, d1 = 0, b1 = 0, added = -1;
            mgrad_text_corpus_size(c, &d0, &b0);
            fa.fail_at = fa.attempts + k;
            mgrad_status s = mgrad_text_corpus_add_file(c, paths[f], MGRAD_TEXT_SPLIT_PERCENT,
                                                        f, &added);
            fa.fail_at = -1;
            mgrad_text_corpus_size(c, &d1, &b1);
            if (s == MGRAD_OK) {
                ck_assert_int_eq(added, 40);
                ck_assert_int_eq(d1, d0 + 40);
                break;
            }
            ck_assert_int_eq(s, MGRAD_ERR_NOMEM);
            ck_assert_int_eq(added, -1);
            ck_assert_int_eq(d1, d0);
            ck_assert_int_eq(b1, b0);
            failures++;
        }
    }
    ck_assert_int_gt(failures, 4);
    int64_t n = 0;
    ck_assert_int_eq(mgrad_text_corpus_count_examples(c, NULL, 0, 8, 0, &n), MGRAD_OK);
    int64_t *doc = malloc((size_t)n * sizeof *doc);
    for (long k = 0;; k++) {
        uint64_t mem = ctx_bytes(ctx);
        mgrad_dataset *ds = (mgrad_dataset *)&fa;
        fa.fail_at = fa.attempts + k;
        mgrad_status s = mgrad_text_corpus_examples(&ds, c, NULL, 0, 8, 0, doc, n);
        fa.fail_at = -1;
        if (s == MGRAD_OK) {
            ck_assert_int_ge(k, 2);
            mgrad_dataset_destroy(ds);
            break;
        }
        ck_assert_int_eq(s, MGRAD_ERR_NOMEM);
        ck_assert_ptr_eq(ds, (mgrad_dataset *)&fa);
        ck_assert_uint_eq(ctx_bytes(ctx), mem);
    }
    free(doc);
    mgrad_text_corpus_destroy(c);
    ck_assert_uint_eq(ctx_bytes(ctx), 0);
    mgrad_context_destroy(ctx);
}
END_TEST

/* ---- the Debian text packages, when installed ----------------------------- */

static int installed(const char *path) { return access(path, R_OK) == 0; }

/* Every example of a real corpus is its document's bytes at the expected
   offsets; the pool mixes domains. */
START_TEST(test_debian_text)
{
    mgrad_context *ctx = new_ctx(MGRAD_DTYPE_F32);
    mgrad_text_corpus *c = NULL;
    ck_assert_int_eq(mgrad_text_corpus_create(&c, ctx), MGRAD_OK);
    int64_t added = 0, domains = 0;
    if (installed("/usr/share/games/fortunes/computers")) {
        ck_assert_int_eq(mgrad_text_corpus_add_glob(c, "/usr/share/games/fortunes/[a-z]*",
                                                    "*.dat", MGRAD_TEXT_SPLIT_PERCENT, 0,
                                                    &added), MGRAD_OK);
        ck_assert_int_gt(added, 1000);
        domains++;
    }
    if (installed("/usr/share/common-licenses/GPL-3")) {
        ck_assert_int_eq(mgrad_text_corpus_add_glob(c, "/usr/share/common-licenses/[A-Z]*",
                                                    NULL, MGRAD_TEXT_SPLIT_FILE, 1, &added),
                         MGRAD_OK);
        ck_assert_int_gt(added, 5);
        domains++;
    }
    if (installed("/usr/share/man/man2/open.2.gz")) {
        ck_assert_int_eq(mgrad_text_corpus_add_glob(c, "/usr/share/man/man2/[a-c]*.gz", NULL,
                                                    MGRAD_TEXT_SPLIT_FILE, 2, &added),
                         MGRAD_OK);
        ck_assert_int_gt(added, 10);
        domains++;
    }
    if (domains == 0) {
        mgrad_text_corpus_destroy(c);
        mgrad_context_destroy(ctx);
        return;
    }
    const int64_t L1 = 65;
    int64_t n = 0, docs = 0;
    ck_assert_int_eq(mgrad_text_corpus_size(c, &docs, NULL), MGRAD_OK);
    ck_assert_int_eq(mgrad_text_corpus_count_examples(c, NULL, 0, L1, 0, &n), MGRAD_OK);
    ck_assert_int_gt(n, 100);
    int64_t *doc = malloc((size_t)n * sizeof *doc);
    int32_t *ids = malloc((size_t)(n * L1) * sizeof *ids);
    mgrad_dataset *ds = NULL;
    ck_assert_int_eq(mgrad_text_corpus_examples(&ds, c, NULL, 0, L1, 0, doc, n), MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_get_tokens(ds, ids, n * L1), MGRAD_OK);
    int64_t prev = -1, j = 0;
    int seen[3] = {0, 0, 0};
    for (int64_t i = 0; i < n; i++) {
        ck_assert(doc[i] >= prev && doc[i] < docs);
        j = doc[i] == prev ? j + 1 : 0;
        prev = doc[i];
        const uint8_t *text = NULL;
        int64_t bytes = 0;
        int32_t domain = -1;
        ck_assert_int_eq(mgrad_text_corpus_document(c, doc[i], NULL, NULL, &domain, &text,
                                                    &bytes), MGRAD_OK);
        ck_assert_int_le(j * (L1 - 1) + L1, bytes);
        for (int64_t t = 0; t < L1; t++) ck_assert_int_eq(ids[i * L1 + t], text[j * (L1 - 1) + t]);
        seen[domain] = 1;
    }
    ck_assert_int_eq(seen[0] + seen[1] + seen[2], domains);
    free(doc);
    free(ids);
    mgrad_dataset_destroy(ds);
    mgrad_text_corpus_destroy(c);
    ck_assert_uint_eq(ctx_bytes(ctx), 0);
    mgrad_context_destroy(ctx);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("text");
    TCase *tk = tcase_create("tokens");
    tcase_add_test(tk, test_tokens_exact_and_compact);
    tcase_add_test(tk, test_tokens_invalid);
    tcase_add_test(tk, test_tokens_subset_split_weights);
    suite_add_tcase(s, tk);

    TCase *tc = tcase_create("corpus");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_corpus_documents);
    tcase_add_test(tc, test_corpus_examples);
    tcase_add_test(tc, test_corpus_glob);
    tcase_add_test(tc, test_corpus_errors);
    tcase_add_test(tc, test_corpus_nomem);
    tcase_add_test(tc, test_debian_text);
    suite_add_tcase(s, tc);
    return s;
}
