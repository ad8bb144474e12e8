/*
 * text.c - text corpora: documents of bytes read from text files (plain or
 * gzip), with a domain each, cut into fixed-length token datasets whose
 * examples remember their document.
 *
 * Storage: every document's bytes live in one growing buffer (`text`); a
 * document is an (offset, length) in it plus its file, its index in that
 * file and its domain.  Adding is all or nothing: the counts before the call
 * are remembered and restored on failure, so a failed add leaves the corpus
 * as it was (the buffers may have grown, which no caller can see).
 */
#include <fnmatch.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/io.h"
#include "metagrad/data.h"

typedef struct text_file {
    char *path;
    uint64_t dev, ino; /* a file enters once, whatever its name */
} text_file;

typedef struct text_doc {
    int64_t offset; /* into text */
    int64_t bytes;  /* >= 1 */
    int64_t file;   /* into files */
    int64_t part;   /* index among its file's documents */
    int32_t domain;
} text_doc;

struct mgrad_text_corpus {
    mgrad_context *ctx;
    text_file *files;
    int64_t nfiles, files_cap;
    text_doc *docs;
    int64_t ndocs, docs_cap;
    uint8_t *text;
    int64_t text_len, text_cap;
};

/* Grow *buf (count elements of size, capacity *cap) to hold `need`,
   doubling; the old contents are kept. */
static mgrad_status grow(mgrad_context *ctx, void **buf, int64_t *cap, int64_t count,
                         int64_t need, size_t size, const char *what)
{
    if (need <= *cap) return MGRAD_OK;
    int64_t c = *cap > 0 ? *cap : 16;
    while (c < need) {
        MGRAD_RETURN_IF(ctx, c > INT64_MAX / 2 || (uint64_t)c * 2 > SIZE_MAX / size,
                        MGRAD_ERR_NOMEM, "text corpus: %s too large", what);
        c *= 2;
    }
    void *bigger = NULL;
    MGRAD_FORWARD(mgr_alloc_or_fail(ctx, &bigger, (size_t)c, size, what));
    if (count > 0) memcpy(bigger, *buf, (size_t)count * size);
    mgr_free(ctx, *buf);
    *buf = bigger;
    *cap = c;
    return MGRAD_OK;
}

mgrad_status mgrad_text_corpus_create(mgrad_text_corpus **out, mgrad_context *ctx)
{
    if (ctx == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(ctx, out == NULL, MGRAD_ERR_NULL,
                    "mgrad_text_corpus_create: out must not be NULL");
    mgrad_text_corpus *c = NULL;
    MGRAD_FORWARD(mgr_alloc_or_fail(ctx, (void **)&c, 1, sizeof *c, "a text corpus"));
    c->ctx = ctx;
    mgr_context_retain(ctx);
    *out = c;
    return MGRAD_OK;
}

/* Drop the files past nfiles (a rollback, or destroy with 0). */
static void truncate_files(mgrad_text_corpus *c, int64_t nfiles)
{
    for (int64_t i = nfiles; i < c->nfiles; i++) mgr_free(c->ctx, c->files[i].path);
    c->nfiles = nfiles;
}

void mgrad_text_corpus_destroy(mgrad_text_corpus *c)
{
    if (c == NULL) return;
    mgrad_context *ctx = c->ctx;
    truncate_files(c, 0);
    mgr_free(ctx, c->files);
    mgr_free(ctx, c->docs);
    mgr_free(ctx, c->text);
    mgr_free(ctx, c);
    mgr_context_release(ctx);
}

static mgrad_status check_add_args(mgrad_text_corpus *c, const char *fn, const void *path,
                                   mgrad_text_split split, int32_t domain)
{
    MGRAD_RETURN_IF(c->ctx, path == NULL, MGRAD_ERR_NULL, "%s: the path must not be NULL",
                    fn);
    MGRAD_RETURN_IF(c->ctx, split < MGRAD_TEXT_SPLIT_FILE || split > MGRAD_TEXT_SPLIT_HEADWORD,
                    MGRAD_ERR_INVALID,
                    "%s: unknown split %d (use an mgrad_text_split value)", fn, (int)split);
    MGRAD_RETURN_IF(c->ctx, domain < 0, MGRAD_ERR_INVALID, "%s: domain = %d, must be >= 0",
                    fn, (int)domain);
    return MGRAD_OK;
}

/* Append the document text[start, end) of file `file` when it is not
   empty; *part counts the file's documents. */
static mgrad_status add_doc(mgrad_text_corpus *c, const char *text, size_t start, size_t end,
                            int64_t file, int32_t domain, int64_t *part)
{
    if (end <= start) return MGRAD_OK;
    int64_t bytes = (int64_t)(end - start);
    MGRAD_FORWARD(grow(c->ctx, (void **)&c->docs, &c->docs_cap, c->ndocs, c->ndocs + 1,
                       sizeof *c->docs, "documents"));
    MGRAD_RETURN_IF(c->ctx, bytes > INT64_MAX - c->text_len, MGRAD_ERR_NOMEM,
                    "text corpus: text too large");
    MGRAD_FORWARD(grow(c->ctx, (void **)&c->text, &c->text_cap, c->text_len,
                       c->text_len + bytes, 1, "corpus text"));
    memcpy(c->text + c->text_len, text + start, (size_t)bytes);
    text_doc *d = &c->docs[c->ndocs++];
    d->offset = c->text_len;
    d->bytes = bytes;
    d->file = file;
    d->part = (*part)++;
    d->domain = domain;
    c->text_len += bytes;
    return MGRAD_OK;
}

/* Where the line starting at i ends: past its '\n', or at len. */
static size_t line_end(const char *t, size_t len, size_t i)
{
    const char *nl = memchr(t + i, '\n', len - i);
    return nl != NULL ? (size_t)(nl - t) + 1 : len;
}

/* Is t[i, e) an empty line ("\n", "\r\n")?  A last line without '\n' that
   is empty has i == e and starts nothing. */
static int empty_line(const char *t, size_t i, size_t e)
{
    return (e - i == 1 && t[i] == '\n') || (e - i == 2 && t[i] == '\r' && t[i + 1] == '\n');
}

/* Is t[i, e) fortune's separator: "%" alone, with "\n", "\r\n" or the end
   of the file after it? */
static int percent_line(const char *t, size_t i, size_t e)
{
    size_t n = e - i;
    if (n > 0 && t[e - 1] == '\n') n--;
    if (n > 0 && t[i + n - 1] == '\r') n--;
    return n == 1 && t[i] == '%';
}

static mgrad_status split_text(mgrad_text_corpus *c, const char *t, size_t len,
                               mgrad_text_split split, int64_t file, int32_t domain,
                               int64_t *part)
{
    if (split == MGRAD_TEXT_SPLIT_FILE) return add_doc(c, t, 0, len, file, domain, part);
    size_t start = 0, i = 0;
    int prev_empty = 0;
    while (i < len) {
        size_t e = line_end(t, len, i);
        if (split == MGRAD_TEXT_SPLIT_PERCENT) {
            if (percent_line(t, i, e)) {
                MGRAD_FORWARD(add_doc(c, t, start, i, file, domain, part));
                start = e;
            }
        } else {
            char b = t[i];
            if (prev_empty && b != ' ' && b != '\t' && b != '\r' && b != '\n') {
                MGRAD_FORWARD(add_doc(c, t, start, i, file, domain, part));
                start = i;
            }
            prev_empty = empty_line(t, i, e);
        }
        i = e;
    }
    return add_doc(c, t, start, len, file, domain, part);
}

/* Add one file (the caller rolls back on failure).  *added counts
   documents. */
static mgrad_status add_one(mgrad_text_corpus *c, const char *fn, const char *path,
                            mgrad_text_split split, int32_t domain, int64_t *added)
{
    mgrad_context *ctx = c->ctx;
    mgr_reader r;
    MGRAD_FORWARD(mgr_reader_open(&r, ctx, fn, path));
    struct stat st;
    /* The reader opened a regular file; stat again for its identity (the
       reader keeps no descriptor of its own we could fstat). */
    if (stat(path, &st) != 0) {
        mgr_reader_close(&r);
        return mgr_error(ctx, MGRAD_ERR_IO, "%s: %s: cannot stat", fn, path);
    }
    for (int64_t i = 0; i < c->nfiles; i++) {
        if (c->files[i].dev == (uint64_t)st.st_dev && c->files[i].ino == (uint64_t)st.st_ino) {
            mgr_reader_close(&r);
            return MGRAD_OK; /* already in the corpus */
        }
    }
    char *text = NULL;
    size_t len = 0;
    mgrad_status s = mgr_reader_read_all(&r, &text, &len);
    mgr_reader_close(&r);
    MGRAD_FORWARD(s);
    const char *nul = memchr(text, '\0', len);
    if (nul != NULL) {
        mgr_free(ctx, text);
        return mgr_error(ctx, MGRAD_ERR_FORMAT,
                         "%s: %s: a NUL byte at offset %lld: not a text file", fn, path,
                         (long long)(nul - text));
    }
    size_t plen = strlen(path);
    char *copy = NULL;
    s = grow(ctx, (void **)&c->files, &c->files_cap, c->nfiles, c->nfiles + 1,
             sizeof *c->files, "file list");
    if (s == MGRAD_OK) s = mgr_alloc_or_fail(ctx, (void **)&copy, plen + 1, 1, "a path");
    if (s != MGRAD_OK) {
        mgr_free(ctx, text);
        return s;
    }
    memcpy(copy, path, plen + 1);
    text_file *f = &c->files[c->nfiles++];
    f->path = copy;
    f->dev = (uint64_t)st.st_dev;
    f->ino = (uint64_t)st.st_ino;
    int64_t before = c->ndocs, part = 0;
    s = split_text(c, text, len, split, c->nfiles - 1, domain, &part);
    mgr_free(ctx, text);
    *added += c->ndocs - before;
    return s;
}

/* Restore the counts remembered before a failed add. */
static void rollback(mgrad_text_corpus *c, int64_t nfiles, int64_t ndocs, int64_t text_len)
{
    truncate_files(c, nfiles);
    c->ndocs = ndocs;
    c->text_len = text_len;
}

mgrad_status mgrad_text_corpus_add_file(mgrad_text_corpus *c, const char *path,
                                        mgrad_text_split split, int32_t domain,
                                        int64_t *documents_added)
{
    static const char fn[] = "mgrad_text_corpus_add_file";
    if (c == NULL) return MGRAD_ERR_NULL;
    MGRAD_FORWARD(check_add_args(c, fn, path, split, domain));
    int64_t nfiles = c->nfiles, ndocs = c->ndocs, text_len = c->text_len, added = 0;
    mgrad_status s = add_one(c, fn, path, split, domain, &added);
    if (s != MGRAD_OK) {
        rollback(c, nfiles, ndocs, text_len);
        return s;
    }
    if (documents_added != NULL) *documents_added = added;
    return MGRAD_OK;
}

static int compare_paths(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

mgrad_status mgrad_text_corpus_add_glob(mgrad_text_corpus *c, const char *pattern,
                                        const char *exclude, mgrad_text_split split,
                                        int32_t domain, int64_t *documents_added)
{
    static const char fn[] = "mgrad_text_corpus_add_glob";
    if (c == NULL) return MGRAD_ERR_NULL;
    mgrad_context *ctx = c->ctx;
    MGRAD_FORWARD(check_add_args(c, fn, pattern, split, domain));
    glob_t g;
    memset(&g, 0, sizeof g);
    /* Sorted here with strcmp, not by glob's collation: the same corpus
       (and document indices) in every locale. */
    int rc = glob(pattern, GLOB_NOSORT, NULL, &g);
    if (rc == GLOB_NOSPACE) {
        globfree(&g);
        return mgr_error(ctx, MGRAD_ERR_NOMEM, "%s: out of memory expanding \"%s\"", fn,
                         pattern);
    }
    if (rc == GLOB_ABORTED) {
        globfree(&g);
        return mgr_error(ctx, MGRAD_ERR_IO, "%s: \"%s\": a directory cannot be read", fn,
                         pattern);
    }
    if (rc == 0) qsort(g.gl_pathv, g.gl_pathc, sizeof *g.gl_pathv, compare_paths);
    int64_t nfiles = c->nfiles, ndocs = c->ndocs, text_len = c->text_len, added = 0;
    size_t matched = 0;
    mgrad_status s = MGRAD_OK;
    for (size_t i = 0; rc == 0 && i < g.gl_pathc && s == MGRAD_OK; i++) {
        const char *path = g.gl_pathv[i];
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        const char *base = strrchr(path, '/');
        base = base != NULL ? base + 1 : path;
        if (exclude != NULL && fnmatch(exclude, base, 0) == 0) continue;
        matched++;
        s = add_one(c, fn, path, split, domain, &added);
    }
    globfree(&g);
    if (s == MGRAD_OK && matched == 0)
        s = mgr_error(ctx, MGRAD_ERR_IO, "%s: \"%s\" matches no regular file%s%s%s", fn,
                      pattern, exclude != NULL ? " outside \"" : "",
                      exclude != NULL ? exclude : "", exclude != NULL ? "\"" : "");
    if (s != MGRAD_OK) {
        rollback(c, nfiles, ndocs, text_len);
        return s;
    }
    if (documents_added != NULL) *documents_added = added;
    return MGRAD_OK;
}

mgrad_status mgrad_text_corpus_size(const mgrad_text_corpus *c, int64_t *documents,
                                    int64_t *bytes)
{
    if (c == NULL) return MGRAD_ERR_NULL;
    if (documents != NULL) *documents = c->ndocs;
    if (bytes != NULL) *bytes = c->text_len;
    return MGRAD_OK;
}

mgrad_status mgrad_text_corpus_document(const mgrad_text_corpus *c, int64_t document,
                                        const char **path, int64_t *part, int32_t *domain,
                                        const uint8_t **text, int64_t *bytes)
{
    if (c == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(c->ctx, document < 0 || document >= c->ndocs, MGRAD_ERR_INVALID,
                    "mgrad_text_corpus_document: document %lld is outside [0, %lld)",
                    (long long)document, (long long)c->ndocs);
    const text_doc *d = &c->docs[document];
    if (path != NULL) *path = c->files[d->file].path;
    if (part != NULL) *part = d->part;
    if (domain != NULL) *domain = d->domain;
    if (text != NULL) *text = c->text + d->offset;
    if (bytes != NULL) *bytes = d->bytes;
    return MGRAD_OK;
}

/* The examples of a document of b bytes: (b - length) / stride + 1, or
   none when it is shorter than length. */
static int64_t doc_examples(int64_t b, int64_t length, int64_t stride)
{
    return b >= length ? (b - length) / stride + 1 : 0;
}

/* Check the selection and cut parameters; *stride_out gets the stride in
   use and *count the examples (possibly 0). */
static mgrad_status plan(const mgrad_text_corpus *c, const char *fn, const int64_t *docs,
                         int64_t ndocs, int64_t length, int64_t stride, int64_t *stride_out,
                         int64_t *count)
{
    mgrad_context *ctx = c->ctx;
    MGRAD_RETURN_IF(ctx, length < 2, MGRAD_ERR_INVALID,
                    "%s: length = %lld; an example holds L + 1 >= 2 bytes", fn,
                    (long long)length);
    MGRAD_RETURN_IF(ctx, stride < 0, MGRAD_ERR_INVALID,
                    "%s: stride = %lld; pass >= 1, or 0 for length - 1", fn, (long long)stride);
    if (stride == 0) stride = length - 1;
    MGRAD_RETURN_IF(ctx, docs != NULL && ndocs < 1, MGRAD_ERR_INVALID,
                    "%s: ndocuments = %lld, need at least 1 (or documents NULL for all)", fn,
                    (long long)ndocs);
    int64_t nsel = docs != NULL ? ndocs : c->ndocs, total = 0;
    for (int64_t k = 0; k < nsel; k++) {
        int64_t d = docs != NULL ? docs[k] : k;
        MGRAD_RETURN_IF(ctx, d < 0 || d >= c->ndocs, MGRAD_ERR_INVALID,
                        "%s: documents[%lld] = %lld is outside [0, %lld)", fn, (long long)k,
                        (long long)d, (long long)c->ndocs);
        int64_t e = doc_examples(c->docs[d].bytes, length, stride);
        /* Repeated documents can make the sum exceed the text's size. */
        MGRAD_RETURN_IF(ctx, e > INT64_MAX - total, MGRAD_ERR_INVALID,
                        "%s: the example count overflows", fn);
        total += e;
    }
    *stride_out = stride;
    *count = total;
    return MGRAD_OK;
}

mgrad_status mgrad_text_corpus_count_examples(const mgrad_text_corpus *c,
                                              const int64_t *documents, int64_t ndocuments,
                                              int64_t length, int64_t stride, int64_t *out)
{
    static const char fn[] = "mgrad_text_corpus_count_examples";
    if (c == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(c->ctx, out == NULL, MGRAD_ERR_NULL, "%s: out must not be NULL", fn);
    int64_t count = 0;
    MGRAD_FORWARD(plan(c, fn, documents, ndocuments, length, stride, &stride, &count));
    *out = count;
    return MGRAD_OK;
}

/* The error for a selection without examples: name the longest document. */
static mgrad_status no_examples(const mgrad_text_corpus *c, const char *fn,
                                const int64_t *docs, int64_t ndocs, int64_t length)
{
    MGRAD_RETURN_IF(c->ctx, c->ndocs == 0, MGRAD_ERR_INVALID,
                    "%s: the corpus holds no document", fn);
    int64_t nsel = docs != NULL ? ndocs : c->ndocs;
    int64_t longest = docs != NULL ? docs[0] : 0;
    for (int64_t k = 0; k < nsel; k++) {
        int64_t d = docs != NULL ? docs[k] : k;
        if (c->docs[d].bytes > c->docs[longest].bytes) longest = d;
    }
    const text_doc *L = &c->docs[longest];
    return mgr_error(c->ctx, MGRAD_ERR_INVALID,
                     "%s: no document holds length = %lld bytes; the longest (%s, part %lld) "
                     "has %lld", fn, (long long)length, c->files[L->file].path,
                     (long long)L->part, (long long)L->bytes);
}

mgrad_status mgrad_text_corpus_examples(mgrad_dataset **out, const mgrad_text_corpus *c,
                                        const int64_t *documents, int64_t ndocuments,
                                        int64_t length, int64_t stride, int64_t *document,
                                        int64_t n)
{
    static const char fn[] = "mgrad_text_corpus_examples";
    if (c == NULL) return MGRAD_ERR_NULL;
    mgrad_context *ctx = c->ctx;
    MGRAD_RETURN_IF(ctx, out == NULL, MGRAD_ERR_NULL, "%s: out must not be NULL", fn);
    int64_t count = 0;
    MGRAD_FORWARD(plan(c, fn, documents, ndocuments, length, stride, &stride, &count));
    if (count == 0) return no_examples(c, fn, documents, ndocuments, length);
    MGRAD_RETURN_IF(ctx, document != NULL && n != count, MGRAD_ERR_SIZE,
                    "%s: n = %lld but the documents give %lld examples "
                    "(mgrad_text_corpus_count_examples)", fn, (long long)n, (long long)count);
    int64_t shape[1] = {length};
    mgrad_dataset *ds = NULL;
    MGRAD_FORWARD(mgr_dataset_alloc_compact(ctx, fn, count, 1, shape, 0, 256, &ds));
    /* A byte is its own id: the identity palette, as for any byte-level
       token dataset. */
    for (int32_t v = 0; v < 256; v++) mgr_put_real(ds->palette, ctx->dtype, (size_t)v, v);
    int64_t nsel = documents != NULL ? ndocuments : c->ndocs, row = 0;
    for (int64_t k = 0; k < nsel; k++) {
        int64_t d = documents != NULL ? documents[k] : k;
        const text_doc *doc = &c->docs[d];
        int64_t e = doc_examples(doc->bytes, length, stride);
        for (int64_t j = 0; j < e; j++) {
            memcpy(ds->codes + (size_t)(row * length), c->text + doc->offset + j * stride,
                   (size_t)length);
            if (document != NULL) document[row] = d;
            row++;
        }
    }
    ds->vocab = 256;
    *out = ds;
    return MGRAD_OK;
}
