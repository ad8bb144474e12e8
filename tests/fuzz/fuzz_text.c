/*
 * fuzz_text.c - libFuzzer target for the text corpus reader
 * (mgrad_text_corpus_add_file and _examples).  The input, as a file, is
 * read with each split rule; on success the documents must partition what
 * the rule keeps (no NUL, no empty document, no separator or headword
 * inside one) and the examples must be the documents' bytes; on failure
 * the corpus must be unchanged.  Memory and descriptors as fuzz_common.h.
 */
#include "fuzz_common.h"

/* Is line t[i, e) fortune's separator? (mirrors the documented rule) */
static int percent_line(const uint8_t *t, size_t i, size_t e)
{
    size_t n = e - i;
    if (n > 0 && t[e - 1] == '\n') n--;
    if (n > 0 && t[i + n - 1] == '\r') n--;
    return n == 1 && t[i] == '%';
}

static void check_document(const uint8_t *t, int64_t len, int split)
{
    FUZZ_CHECK(len >= 1, "an empty document");
    FUZZ_CHECK(memchr(t, 0, (size_t)len) == NULL, "a NUL byte in a document");
    size_t i = 0, n = (size_t)len;
    int prev_empty = 0;
    while (i < n) {
        const uint8_t *nl = memchr(t + i, '\n', n - i);
        size_t e = nl != NULL ? (size_t)(nl - t) + 1 : n;
        if (split == MGRAD_TEXT_SPLIT_PERCENT)
            FUZZ_CHECK(!percent_line(t, i, e), "a separator inside a document");
        if (split == MGRAD_TEXT_SPLIT_HEADWORD) {
            uint8_t b = t[i];
            FUZZ_CHECK(i == 0 || !prev_empty || b == ' ' || b == '\t' || b == '\r' || b == '\n',
                       "a headword inside a document");
            prev_empty = (e - i == 1 && t[i] == '\n') ||
                         (e - i == 2 && t[i] == '\r' && t[i + 1] == '\n');
        }
        i = e;
    }
}

static void run_split(const char *path, const uint8_t *data, size_t size, int split)
{
    mgrad_context *ctx = NULL;
    FUZZ_CHECK(mgrad_context_create(&ctx, NULL) == MGRAD_OK, "context");
    int fd_before = fuzz_lowest_fd();
    mgrad_text_corpus *c = NULL;
    FUZZ_CHECK(mgrad_text_corpus_create(&c, ctx) == MGRAD_OK, "corpus");
    int64_t added = -7, docs = -1, bytes = -1;
    mgrad_status s = mgrad_text_corpus_add_file(c, path, (mgrad_text_split)split, 0, &added);
    FUZZ_CHECK(mgrad_text_corpus_size(c, &docs, &bytes) == MGRAD_OK, "size");
    if (s != MGRAD_OK) {
        FUZZ_CHECK(s == MGRAD_ERR_FORMAT || s == MGRAD_ERR_IO || s == MGRAD_ERR_NOMEM,
                   "a status from the documented set");
        FUZZ_CHECK(mgrad_context_last_error(ctx)[0] != '\0', "failure without a message");
        FUZZ_CHECK(added == -7 && docs == 0 && bytes == 0, "a failed add changed the corpus");
    } else {
        FUZZ_CHECK(added == docs, "documents added");
        int64_t total = 0;
        int plain = !(size >= 2 && data[0] == 0x1f && data[1] == 0x8b);
        for (int64_t d = 0; d < docs; d++) {
            const uint8_t *t = NULL;
            int64_t len = 0, part = -1;
            FUZZ_CHECK(mgrad_text_corpus_document(c, d, NULL, &part, NULL, &t, &len) ==
                           MGRAD_OK && part == d, "document");
            check_document(t, len, split);
            total += len;
        }
        FUZZ_CHECK(total == bytes, "bytes");
        if (plain && split == MGRAD_TEXT_SPLIT_FILE) {
            const uint8_t *t = NULL;
            int64_t len = 0;
            FUZZ_CHECK(docs == (size > 0 ? 1 : 0), "one document per plain file");
            if (docs == 1)
                FUZZ_CHECK(mgrad_text_corpus_document(c, 0, NULL, NULL, NULL, &t, &len) ==
                               MGRAD_OK && (size_t)len == size && memcmp(t, data, size) == 0,
                           "the document is the file");
        }
        if (plain && split != MGRAD_TEXT_SPLIT_FILE)
            FUZZ_CHECK((size_t)bytes <= size, "documents longer than the file");
        /* Cut with a length from the input; the examples are the bytes. */
        int64_t length = 2 + (size > 0 ? data[size - 1] % 9 : 0), n = -1;
        FUZZ_CHECK(mgrad_text_corpus_count_examples(c, NULL, 0, length, 0, &n) == MGRAD_OK &&
                       n >= 0, "count");
        if (n > 0 && n <= 4096) {
            static int64_t doc[4096];
            static int32_t ids[4096 * 10];
            mgrad_dataset *ds = NULL;
            FUZZ_CHECK(mgrad_text_corpus_examples(&ds, c, NULL, 0, length, 0, doc, n) ==
                           MGRAD_OK, "examples");
            FUZZ_CHECK(mgrad_dataset_get_tokens(ds, ids, n * length) == MGRAD_OK, "tokens");
            int64_t prev = -1, j = 0;
            for (int64_t i = 0; i < n; i++) {
                j = doc[i] == prev ? j + 1 : 0;
                prev = doc[i];
                const uint8_t *t = NULL;
                int64_t len = 0;
                FUZZ_CHECK(mgrad_text_corpus_document(c, doc[i], NULL, NULL, NULL, &t, &len) ==
                               MGRAD_OK && j * (length - 1) + length <= len, "example fits");
                for (int64_t k = 0; k < length; k++)
                    FUZZ_CHECK(ids[i * length + k] == t[j * (length - 1) + k],
                               "an example is its document's bytes");
            }
            mgrad_dataset_destroy(ds);
        }
    }
    mgrad_text_corpus_destroy(c);
    uint64_t current = 1;
    mgrad_context_memory(ctx, &current, NULL);
    FUZZ_CHECK(current == 0, "memory leaked through the context");
    FUZZ_CHECK(fuzz_lowest_fd() == fd_before, "file descriptor leaked");
    mgrad_context_destroy(ctx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_memfile(data, size, path, sizeof path);
    for (int split = MGRAD_TEXT_SPLIT_FILE; split <= MGRAD_TEXT_SPLIT_HEADWORD; split++)
        run_split(path, data, size, split);
    close(fd);
    return 0;
}
