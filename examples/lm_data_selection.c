/*
 * lm_data_selection.c - choose the training documents of a small language
 * model by metagradient descent.
 *
 * A pool of text documents mixes four domains read from Debian packages:
 * fortunes (the target domain), man pages, dictionary entries (GCIDE) and
 * Python source.  The target is a sample of fortunes; the model is a tiny
 * byte-level GPT (2 layers, width 64, 4 heads, context 64) trained with
 * Adam on the next-token loss.  Each method selects K of the D pool
 * documents; a model is then trained from scratch on the selection with
 * seeds no method saw, and scored by its loss (nats per byte) and
 * perplexity on fortunes that no method saw.
 *
 *   whole pool    all D documents
 *   random        K documents drawn at random
 *   perplexity    the K documents with the lowest loss under a model trained
 *                 on the target sample (perplexity filtering)
 *   DSIR          importance resampling on hashed word unigrams and bigrams
 *                 (Xie et al. 2023): weights p_target / p_pool of bag-of-
 *                 n-gram models, K documents drawn without replacement by
 *                 the Gumbel top-k trick
 *   MGD           the fixed-budget form of Algorithm 1 of Engstrom et al.
 *                 (2025) on documents: 0/1 document weights expanded to the
 *                 document's examples as data weights; the metagradient of
 *                 the target loss through the step-k relaxation, summed over
 *                 each document's examples (exact: a document's weight is
 *                 shared by its examples); each meta-step swaps the selected
 *                 documents whose weight most raises φ for the unselected
 *                 ones that most lower it; the best iterate by held-out loss
 *
 * Every document contributes its first W windows of 64 bytes (documents
 * shorter than that are not used), so a document is W examples of 65 bytes.
 *
 * Prints a table and writes into --out: lm_data_selection.csv (test loss and
 * perplexity per method, mean and std over the retrainings, and the target
 * domain's share of each selection), lm_data_selection_progress.csv (MGD's
 * objective per meta-step) and lm_data_selection.json (a summary);
 * examples/python/plot_results.py draws the figures from them.  Exits 77
 * when a corpus is not installed (Debian: fortunes, manpages, dict-gcide,
 * python3).
 *
 * Usage: lm_data_selection [--quick | --smoke] [--pool D] [--select K]
 *                          [--meta-steps M] [--seeds S] [--out DIR]
 *                          (--help: all options)
 */
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <metagrad.h>

#include "common/apputil.h"
#include "common/flags.h"

/* The domains, in this order; 0 is the target. */
enum { NDOMAINS = 4 };
static const struct {
    const char *name, *pattern, *exclude, *package;
    mgrad_text_split split;
} DOMAINS[NDOMAINS] = {
    {"fortunes", "/usr/share/games/fortunes/[a-z]*", "*.dat", "fortunes",
     MGRAD_TEXT_SPLIT_PERCENT},
    {"man pages", "/usr/share/man/man[457]/*.gz", NULL, "manpages", MGRAD_TEXT_SPLIT_FILE},
    {"dictionary", "/usr/share/dictd/gcide.dict.dz", NULL, "dict-gcide",
     MGRAD_TEXT_SPLIT_HEADWORD},
    {"Python source", "/usr/lib/python3*/[a-z]*.py", NULL, "python3", MGRAD_TEXT_SPLIT_FILE},
};

/* The GPT and its training, shared by every inner run and retraining. */
typedef struct lm_train {
    int64_t steps, batch, width, context;
    int32_t layers, heads;
    double lr;
} lm_train;

typedef struct options {
    int64_t pool, select, target, heldout, test, windows;
    int meta_steps, seeds, exchange;
    const char *out;
    lm_train train;
} options;

enum { NMETHODS = 5, HASH_BUCKETS = 10000 };

/* Every draw of the program, in order, from one fixed seed. */
static app_rng rng = {0x2545f4914f6cdd1dull};

/* Indices 0..n-1 ordered by key, ascending (ties by index: deterministic). */
static const double *sort_key;
static int by_key(const void *a, const void *b)
{
    int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    if (sort_key[i] != sort_key[j]) return sort_key[i] < sort_key[j] ? -1 : 1;
    return (i > j) - (i < j);
}
static void argsort(const double *key, int64_t n, int64_t *out)
{
    for (int64_t i = 0; i < n; i++) out[i] = i;
    sort_key = key;
    qsort(out, (size_t)n, sizeof *out, by_key);
}

/* 0 when every domain's files are there; else says which package to
   install and returns APP_EXIT_SKIP. */
static int require_corpora(const char *program)
{
    for (int d = 0; d < NDOMAINS; d++) {
        glob_t g;
        int r = glob(DOMAINS[d].pattern, 0, NULL, &g);
        size_t n = r == 0 ? g.gl_pathc : 0;
        if (r == 0) globfree(&g);
        if (n == 0) {
            fprintf(stderr, "%s: the %s corpus is not installed (nothing matches %s); "
                    "install it with `apt-get install %s`; skipping\n", program,
                    DOMAINS[d].name, DOMAINS[d].pattern, DOMAINS[d].package);
            return APP_EXIT_SKIP;
        }
    }
    return 0;
}

/* The examples of documents docs[0..n): each document's first W windows
   (W = o->windows) of context + 1 bytes, W per document, in that order. */
static int doc_examples(mgrad_context *ctx, const mgrad_text_corpus *c, const options *o,
                        const int64_t *docs, int64_t n, mgrad_dataset **out)
{
    int64_t length = o->train.context + 1, count = 0;
    APP_CHECK(ctx, mgrad_text_corpus_count_examples(c, docs, n, length, 0, &count));
    int64_t *doc = malloc(sizeof(int64_t) * (size_t)count);
    int64_t *rows = malloc(sizeof(int64_t) * (size_t)(n * o->windows));
    mgrad_dataset *all = NULL;
    if (doc == NULL || rows == NULL) return 1;
    APP_CHECK(ctx, mgrad_text_corpus_examples(&all, c, docs, n, length, 0, doc, count));
    int64_t kept = 0, within = 0;
    for (int64_t e = 0; e < count; e++) {
        within = e > 0 && doc[e] == doc[e - 1] ? within + 1 : 0;
        if (within < o->windows) rows[kept++] = e;
    }
    if (kept != n * o->windows) { /* every document was chosen long enough */
        fprintf(stderr, "internal: %lld examples for %lld documents\n", (long long)kept,
                (long long)n);
        return 1;
    }
    APP_CHECK(ctx, mgrad_dataset_subset(out, all, rows, kept));
    mgrad_dataset_destroy(all);
    free(doc);
    free(rows);
    return 0;
}

/* A GPT run on `train`, φ on `validation`; θ0 from seed, batch order from
   shuffle_seed. */
static int lm_run(mgrad_context *ctx, const lm_train *t, mgrad_dataset *train,
                  const mgrad_dataset *validation, uint64_t seed, uint64_t shuffle_seed,
                  mgrad_run **run)
{
    mgrad_model *m = NULL;
    APP_CHECK(ctx, mgrad_model_create_gpt(&m, ctx, 256, t->context, t->width, t->layers,
                                          t->heads));
    APP_CHECK(ctx, mgrad_model_init_params(m, seed));
    mgrad_run_options ro = MGRAD_RUN_OPTIONS_INIT;
    ro.steps = t->steps;
    ro.batch_size = t->batch;
    ro.loss = MGRAD_LOSS_NEXT_TOKEN;
    ro.optimizer = MGRAD_OPTIMIZER_ADAM;
    ro.lr = t->lr;
    ro.shuffle_seed = shuffle_seed;
    ro.validation = validation;
    APP_CHECK(ctx, mgrad_run_create(run, m, train, &ro));
    mgrad_model_destroy(m); /* the run copied it */
    return 0;
}

/* Retrain S times on the documents sel[0..k) of the pool (rows
   W·d .. W·d + W − 1 of pool_set) and score on `test`: loss and
   perplexity, mean and std. */
static int score_selection(mgrad_context *ctx, const options *o, const mgrad_dataset *pool_set,
                           const int64_t *sel, int64_t k, const mgrad_dataset *val,
                           const mgrad_dataset *test, double *stats)
{
    int64_t W = o->windows, *rows = malloc(sizeof(int64_t) * (size_t)(k * W));
    if (rows == NULL) return 1;
    for (int64_t j = 0; j < k; j++)
        for (int64_t w = 0; w < W; w++) rows[j * W + w] = sel[j] * W + w;
    mgrad_dataset *train = NULL;
    APP_CHECK(ctx, mgrad_dataset_subset(&train, pool_set, rows, k * W));
    double loss[16], ppl[16];
    for (int s = 0; s < o->seeds; s++) {
        uint64_t seed = 1000003u * (uint64_t)(s + 17);
        mgrad_run *run = NULL;
        if (lm_run(ctx, &o->train, train, val, seed, seed ^ 0x5bd1e995u, &run)) return 1;
        APP_CHECK(ctx, mgrad_run_train(run, NULL));
        APP_CHECK(ctx, mgrad_run_evaluate(run, test, &loss[s], NULL));
        ppl[s] = exp(loss[s]); /* ℓ is the mean over positions: nats per byte */
        mgrad_run_destroy(run);
    }
    app_mean_std(loss, o->seeds, &stats[0], &stats[1]);
    app_mean_std(ppl, o->seeds, &stats[2], &stats[3]);
    mgrad_dataset_destroy(train);
    free(rows);
    return 0;
}

/* DSIR's features: words (maximal runs of ASCII letters and digits,
   lower-cased) and pairs of consecutive words, hashed (FNV-1a) into
   HASH_BUCKETS counts, added to hist. */
static void ngram_counts(const uint8_t *text, int64_t n, double *hist)
{
    uint64_t prev = 0;
    int have_prev = 0;
    for (int64_t i = 0; i < n;) {
        while (i < n && !((text[i] | 32) >= 'a' && (text[i] | 32) <= 'z') &&
               !(text[i] >= '0' && text[i] <= '9'))
            i++;
        if (i >= n) break;
        uint64_t h = 1469598103934665603ull;
        while (i < n && (((text[i] | 32) >= 'a' && (text[i] | 32) <= 'z') ||
                         (text[i] >= '0' && text[i] <= '9'))) {
            uint8_t ch = text[i] >= 'A' && text[i] <= 'Z' ? (uint8_t)(text[i] | 32) : text[i];
            h = (h ^ ch) * 1099511628211ull;
            i++;
        }
        hist[h % HASH_BUCKETS] += 1;
        if (have_prev) hist[((prev * 31) ^ h) * 1099511628211ull % HASH_BUCKETS] += 1;
        prev = h;
        have_prev = 1;
    }
}

/* The part of document `doc` that its examples hold. */
static int doc_text(mgrad_context *ctx, const mgrad_text_corpus *c, const options *o,
                    int64_t doc, const uint8_t **text, int64_t *n)
{
    APP_CHECK(ctx, mgrad_text_corpus_document(c, doc, NULL, NULL, NULL, text, n));
    int64_t used = o->windows * o->train.context + 1;
    if (*n > used) *n = used;
    return 0;
}

/* DSIR: K of the pool's documents by importance resampling. */
static int dsir_select(mgrad_context *ctx, const mgrad_text_corpus *c, const options *o,
                       const int64_t *pool_docs, const int64_t *target_docs, int64_t *sel)
{
    int64_t D = o->pool;
    double *pt = calloc(HASH_BUCKETS, sizeof(double)), *pr = calloc(HASH_BUCKETS, sizeof(double));
    double *h = calloc(HASH_BUCKETS, sizeof(double)), *key = malloc(sizeof(double) * (size_t)D);
    int64_t *order = malloc(sizeof(int64_t) * (size_t)D);
    if (!pt || !pr || !h || !key || !order) return 1;
    const uint8_t *text;
    int64_t n;
    for (int64_t j = 0; j < o->target; j++) {
        if (doc_text(ctx, c, o, target_docs[j], &text, &n)) return 1;
        ngram_counts(text, n, pt);
    }
    for (int64_t j = 0; j < D; j++) {
        if (doc_text(ctx, c, o, pool_docs[j], &text, &n)) return 1;
        ngram_counts(text, n, pr);
    }
    /* add-one smoothed bucket distributions, as log p */
    double st = 0, sr = 0;
    for (int b = 0; b < HASH_BUCKETS; b++) {
        st += pt[b] + 1;
        sr += pr[b] + 1;
    }
    for (int b = 0; b < HASH_BUCKETS; b++) {
        pt[b] = log((pt[b] + 1) / st);
        pr[b] = log((pr[b] + 1) / sr);
    }
    for (int64_t j = 0; j < D; j++) {
        memset(h, 0, sizeof(double) * HASH_BUCKETS);
        if (doc_text(ctx, c, o, pool_docs[j], &text, &n)) return 1;
        ngram_counts(text, n, h);
        double logw = 0;
        for (int b = 0; b < HASH_BUCKETS; b++)
            if (h[b] != 0) logw += h[b] * (pt[b] - pr[b]);
        /* Gumbel top-k: the K largest log w + Gumbel noise are a draw of K
           without replacement with probabilities ∝ w */
        double u = app_urand(&rng);
        key[j] = -(logw - log(-log(u > 0 ? u : 1e-300)));
    }
    argsort(key, D, order);
    memcpy(sel, order, sizeof(int64_t) * (size_t)o->select);
    free(pt); free(pr); free(h); free(key); free(order);
    return 0;
}

/* The time since t0, in seconds. */
static double since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

/* MGD over document weights (see the top of the file): on return sel
   holds the best iterate's K documents; log receives (φ, held-out loss)
   per meta-step and for the final iterate. */
static int mgd_select(mgrad_context *ctx, const options *o, mgrad_dataset *pool_set,
                      const mgrad_dataset *target, const mgrad_dataset *heldout,
                      const int64_t *start, int64_t *sel, double *log, double *best_out)
{
    int64_t D = o->pool, K = o->select, W = o->windows, N = D * W;
    mgrad_run *run = NULL;
    mgrad_meta *cm = NULL, *pm = NULL;
    if (lm_run(ctx, &o->train, pool_set, target, 7, 0, &run)) return 1;
    APP_CHECK(ctx, mgrad_run_add_meta(&cm, run, MGRAD_META_DATA_WEIGHTS, NULL));
    mgrad_meta_options mo = MGRAD_META_OPTIONS_INIT;
    mo.step = o->train.steps * 9 / 10;
    APP_CHECK(ctx, mgrad_run_add_meta(&pm, run, MGRAD_META_POOL_WEIGHTS, &mo));
    char *in = calloc((size_t)D, 1), *best = calloc((size_t)D, 1);
    double *w = malloc(sizeof(double) * (size_t)N), *g = malloc(sizeof(double) * (size_t)N);
    double *gd = malloc(sizeof(double) * (size_t)D), *key = malloc(sizeof(double) * (size_t)D);
    int64_t *order = malloc(sizeof(int64_t) * (size_t)D);
    int64_t *out_of = malloc(sizeof(int64_t) * (size_t)D), *into = malloc(sizeof(int64_t) * (size_t)D);
    if (!in || !best || !w || !g || !gd || !key || !order || !out_of || !into) return 1;
    for (int64_t j = 0; j < K; j++) in[start[j]] = 1;
    double best_score = INFINITY;
    for (int step = 0; step <= o->meta_steps; step++) {
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int64_t i = 0; i < N; i++) w[i] = in[i / W];
        double phi = 0, score = 0;
        APP_CHECK(ctx, mgrad_meta_set_value(cm, MGRAD_DTYPE_F64, w, N));
        APP_CHECK(ctx, mgrad_run_train(run, &phi));
        APP_CHECK(ctx, mgrad_run_evaluate(run, heldout, &score, NULL));
        if (score < best_score) {
            best_score = score;
            memcpy(best, in, (size_t)D);
        }
        log[2 * step] = phi;
        log[2 * step + 1] = score;
        if (step == o->meta_steps) { /* the final iterate: scored, not updated */
            printf("  final iterate  target loss %.4f  held-out loss %.4f  (%.1f s)\n", phi,
                   score, since(&t0));
            break;
        }
        APP_CHECK(ctx, mgrad_run_reverse(run));
        APP_CHECK(ctx, mgrad_meta_get_grad(pm, MGRAD_DTYPE_F64, g, N));
        /* a document's weight is shared by its W examples: its derivative
           is the sum of theirs */
        for (int64_t d = 0; d < D; d++) {
            gd[d] = 0;
            for (int64_t k = 0; k < W; k++) gd[d] += g[d * W + k];
        }
        /* selected documents by g descending, unselected by g ascending */
        int64_t nout = 0, ninto = 0;
        for (int64_t d = 0; d < D; d++) key[d] = -gd[d];
        argsort(key, D, order);
        for (int64_t j = 0; j < D; j++)
            if (in[order[j]]) out_of[nout++] = order[j];
        for (int64_t j = D - 1; j >= 0; j--)
            if (!in[order[j]]) into[ninto++] = order[j];
        /* swap while the first-order change of φ, gd[into] − gd[out], is
           negative */
        int swaps = 0;
        for (int64_t j = 0; j < o->exchange && j < nout && j < ninto; j++) {
            if (gd[into[j]] >= gd[out_of[j]]) break;
            in[out_of[j]] = 0;
            in[into[j]] = 1;
            swaps++;
        }
        printf("  meta-step %3d  target loss %.4f  held-out loss %.4f  swapped %d  (%.1f s)\n",
               step, phi, score, swaps, since(&t0));
        fflush(stdout);
    }
    int64_t k = 0;
    for (int64_t d = 0; d < D; d++)
        if (best[d]) sel[k++] = d;
    *best_out = best_score;
    free(in); free(best); free(w); free(g); free(gd); free(key); free(order);
    free(out_of); free(into);
    mgrad_run_destroy(run);
    return 0;
}

int main(int argc, char **argv)
{
    options o = {320, 64, 48, 48, 256, 4, 16, 3, 6, ".", {150, 16, 64, 64, 2, 4, 2e-3}};
    int quick = 0, smoke = 0;
    int64_t pool_flag = 0, select_flag = 0, meta_flag = 0, seeds_flag = 0; /* 0: mode's */
    const app_flag flags[] = {
        APP_FLAG_QUICK(&quick),
        APP_FLAG_SMOKE(&smoke),
        {"--pool", APP_FLAG_INT, &pool_flag, "D", "documents in the pool (1/8 of them fortunes)",
         16, 4000},
        {"--select", APP_FLAG_INT, &select_flag, "K", "documents to select, fewer than D", 1,
         3999},
        {"--meta-steps", APP_FLAG_INT, &meta_flag, "M", "MGD meta-steps", 1, 500},
        {"--seeds", APP_FLAG_INT, &seeds_flag, "S", "retrainings per method, with unseen seeds",
         1, 16},
        APP_FLAG_OUT(&o.out),
    };
    const app_cmdline cmd = {"Select the training documents of a tiny GPT by metagradient "
                             "descent (target: fortunes).",
                             flags, (int)(sizeof flags / sizeof *flags), NULL, 0};
    int rc = app_parse_app_flags(&cmd, argc, argv, &quick, &smoke);
    if (rc != APP_FLAGS_RUN) return rc;
    if (quick) {
        o.pool = 160;
        o.select = 32;
        o.meta_steps = 8;
        o.exchange = 4;
        o.target = 32;
        o.heldout = 32;
        o.test = 128;
        o.seeds = 2;
        o.train.steps = 80;
    } else if (smoke) { /* a smaller GPT on a tiny pool: seconds */
        o.pool = 32;
        o.select = 8;
        o.meta_steps = 2;
        o.exchange = 2;
        o.target = 8;
        o.heldout = 8;
        o.test = 8;
        o.seeds = 1;
        o.windows = 2;
        o.train = (lm_train){10, 8, 16, 16, 1, 2, 2e-3};
    }
    if (pool_flag) o.pool = pool_flag;
    if (select_flag) o.select = select_flag;
    if (meta_flag) o.meta_steps = (int)meta_flag;
    if (seeds_flag) o.seeds = (int)seeds_flag;
    if (o.select >= o.pool) return app_usage_error(&cmd, argv[0], "need --select below --pool");
    if (app_prepare_out(o.out) != 0) return 2;
    if (require_corpora(argv[0]) != 0) return APP_EXIT_SKIP;
    struct timespec t_start;
    clock_gettime(CLOCK_MONOTONIC, &t_start);

    mgrad_context *ctx = NULL;
    if (mgrad_context_create(&ctx, NULL) != MGRAD_OK) return 1;
    mgrad_text_corpus *corpus = NULL;
    APP_CHECK(ctx, mgrad_text_corpus_create(&corpus, ctx));
    for (int d = 0; d < NDOMAINS; d++)
        APP_CHECK(ctx, mgrad_text_corpus_add_glob(corpus, DOMAINS[d].pattern, DOMAINS[d].exclude,
                                                  DOMAINS[d].split, d, NULL));
    int64_t ndocs = 0;
    APP_CHECK(ctx, mgrad_text_corpus_size(corpus, &ndocs, NULL));

    /* The documents long enough for W windows, by domain, in a seeded random
       order; the pool takes D/8 fortunes and splits the rest evenly among
       the other domains; target, held-out and test are further fortunes. */
    int64_t D = o.pool, K = o.select, need = o.windows * o.train.context + 1;
    int64_t *by_domain[NDOMAINS], count[NDOMAINS] = {0};
    for (int d = 0; d < NDOMAINS; d++) {
        by_domain[d] = malloc(sizeof(int64_t) * (size_t)ndocs);
        if (by_domain[d] == NULL) return 1;
    }
    for (int64_t i = 0; i < ndocs; i++) {
        int32_t dom = 0;
        int64_t bytes = 0;
        APP_CHECK(ctx, mgrad_text_corpus_document(corpus, i, NULL, NULL, &dom, NULL, &bytes));
        if (bytes >= need) by_domain[dom][count[dom]++] = i;
    }
    int64_t quota[NDOMAINS];
    quota[0] = D / 8;
    for (int d = 1; d < NDOMAINS; d++)
        quota[d] = (D - quota[0]) / (NDOMAINS - 1) + (d <= (D - quota[0]) % (NDOMAINS - 1));
    int64_t *pool_docs = malloc(sizeof(int64_t) * (size_t)D), *pool_domain =
        malloc(sizeof(int64_t) * (size_t)D);
    if (pool_docs == NULL || pool_domain == NULL) return 1;
    int64_t np = 0;
    for (int d = 0; d < NDOMAINS; d++) {
        int64_t want = quota[d] + (d == 0 ? o.target + o.heldout + o.test : 0);
        if (count[d] < want) {
            fprintf(stderr, "the %s corpus has %lld documents of %lld bytes or more; "
                    "%lld are needed (a smaller --pool?)\n", DOMAINS[d].name,
                    (long long)count[d], (long long)need, (long long)want);
            return 1;
        }
        app_shuffle(&rng, by_domain[d], count[d]);
        for (int64_t j = 0; j < quota[d]; j++) {
            pool_docs[np] = by_domain[d][j];
            pool_domain[np++] = d;
        }
    }
    const int64_t *target_docs = by_domain[0] + quota[0];
    const int64_t *heldout_docs = target_docs + o.target, *test_docs = heldout_docs + o.heldout;
    mgrad_dataset *pool_set = NULL, *target = NULL, *heldout = NULL, *test = NULL;
    if (doc_examples(ctx, corpus, &o, pool_docs, D, &pool_set) ||
        doc_examples(ctx, corpus, &o, target_docs, o.target, &target) ||
        doc_examples(ctx, corpus, &o, heldout_docs, o.heldout, &heldout) ||
        doc_examples(ctx, corpus, &o, test_docs, o.test, &test))
        return 1;
    printf("LM data selection: pool %lld documents (%lld fortunes, %lld man pages, %lld "
           "dictionary entries, %lld Python files; %lld windows of %lld bytes each), select "
           "%lld; target %lld fortunes, held-out %lld, test %lld; GPT %d layers, width %lld, "
           "%d heads, context %lld; Adam lr %g, T = %lld, B = %lld\n",
           (long long)D, (long long)quota[0], (long long)quota[1], (long long)quota[2],
           (long long)quota[3], (long long)o.windows, (long long)o.train.context,
           (long long)K, (long long)o.target, (long long)o.heldout, (long long)o.test,
           o.train.layers, (long long)o.train.width, o.train.heads,
           (long long)o.train.context, o.train.lr, (long long)o.train.steps,
           (long long)o.train.batch);
    fflush(stdout);

    const char *names[NMETHODS] = {"whole pool", "random", "perplexity", "DSIR", "MGD"};
    int64_t *sel[NMETHODS], size[NMETHODS] = {D, K, K, K, K};
    for (int m = 0; m < NMETHODS; m++) {
        sel[m] = malloc(sizeof(int64_t) * (size_t)D);
        if (sel[m] == NULL) return 1;
    }
    for (int64_t j = 0; j < D; j++) sel[0][j] = j;
    /* random */
    memcpy(sel[1], sel[0], sizeof(int64_t) * (size_t)D);
    app_shuffle(&rng, sel[1], D);
    /* perplexity: the K pool documents with the lowest mean loss under a
       model trained on the target sample (scored on the held-out split) */
    {
        mgrad_run *run = NULL;
        double *loss = malloc(sizeof(double) * (size_t)(D * o.windows));
        double *doc_loss = malloc(sizeof(double) * (size_t)D);
        int64_t *order = malloc(sizeof(int64_t) * (size_t)D);
        if (loss == NULL || doc_loss == NULL || order == NULL) return 1;
        if (lm_run(ctx, &o.train, target, heldout, 11, 12, &run)) return 1;
        APP_CHECK(ctx, mgrad_run_train(run, NULL));
        APP_CHECK(ctx, mgrad_run_example_losses(run, pool_set, MGRAD_DTYPE_F64, loss,
                                                D * o.windows));
        for (int64_t d = 0; d < D; d++) {
            doc_loss[d] = 0;
            for (int64_t w = 0; w < o.windows; w++) doc_loss[d] += loss[d * o.windows + w];
        }
        argsort(doc_loss, D, order);
        memcpy(sel[2], order, sizeof(int64_t) * (size_t)K);
        mgrad_run_destroy(run);
        free(loss); free(doc_loss); free(order);
    }
    if (dsir_select(ctx, corpus, &o, pool_docs, target_docs, sel[3])) return 1;
    printf("baselines selected (%.1f s)\n", since(&t_start));

    /* MGD, from the random selection */
    double *log = calloc((size_t)(2 * (o.meta_steps + 1)), sizeof(double));
    double best_score = 0;
    if (log == NULL) return 1;
    printf("MGD (%d meta-steps, up to %d swaps each):\n", o.meta_steps, o.exchange);
    if (mgd_select(ctx, &o, pool_set, target, heldout, sel[1], sel[4], log, &best_score))
        return 1;
    printf("best iterate: held-out loss %.4f (%.1f s)\n", best_score, since(&t_start));

    double stats[NMETHODS][4], share[NMETHODS];
    for (int m = 0; m < NMETHODS; m++) {
        int64_t t = 0;
        for (int64_t j = 0; j < size[m]; j++) t += pool_domain[sel[m][j]] == 0;
        share[m] = (double)t / (double)size[m];
        if (score_selection(ctx, &o, pool_set, sel[m], size[m], heldout, test, stats[m]))
            return 1;
    }
    double seconds = since(&t_start);

    printf("\n%-11s %9s  %-26s %-22s %s\n", "method", "documents",
           "test loss (nats/byte)", "test perplexity", "fortunes share");
    double rows[NMETHODS * 7];
    for (int m = 0; m < NMETHODS; m++) {
        printf("%-11s %9lld  %.4f ± %.4f (%d seeds)   %.3f ± %.3f          %5.1f%%\n",
               names[m], (long long)size[m], stats[m][0], stats[m][1], o.seeds, stats[m][2],
               stats[m][3], 100 * share[m]);
        double r[7] = {(double)size[m], share[m], stats[m][0], stats[m][1], stats[m][2],
                       stats[m][3], o.seeds};
        memcpy(rows + 7 * m, r, sizeof r);
    }
    printf("(%.1f s in all)\n", seconds);
    char path[4096];
    int failures = 0;
    snprintf(path, sizeof path, "%s/lm_data_selection.csv", o.out);
    failures += app_write_named_csv(path,
                                    "method,documents,target_share,test_loss_mean,"
                                    "test_loss_std,perplexity_mean,perplexity_std,seeds",
                                    names, rows, NMETHODS, 7) != 0;
    failures += app_write_progress(o.out, "lm_data_selection_progress.csv", log,
                                   o.meta_steps + 1) != 0;
    const app_number fields[] = {{"pool", (double)D},
                                 {"select", (double)K},
                                 {"pool_target_documents", (double)quota[0]},
                                 {"windows_per_document", (double)o.windows},
                                 {"meta_steps", o.meta_steps},
                                 {"seeds", o.seeds},
                                 {"train_steps", (double)o.train.steps},
                                 {"batch", (double)o.train.batch},
                                 {"seconds", seconds}};
    const char *columns[] = {"documents", "target_share", "test_loss_mean", "test_loss_std",
                             "perplexity_mean", "perplexity_std"};
    double values[NMETHODS * 6];
    for (int m = 0; m < NMETHODS; m++) memcpy(values + 6 * m, rows + 7 * m, 6 * sizeof(double));
    snprintf(path, sizeof path, "%s/lm_data_selection.json", o.out);
    failures += app_write_summary_columns(path, "lm_data_selection",
                                          quick   ? "quick"
                                          : smoke ? "smoke"
                                                  : "full",
                                          fields, 9, names, NMETHODS, columns, 6, values) != 0;
    int status = app_outputs_done(o.out,
                                  "lm_data_selection.csv, lm_data_selection_progress.csv, "
                                  "lm_data_selection.json",
                                  failures);

    free(log);
    for (int m = 0; m < NMETHODS; m++) free(sel[m]);
    for (int d = 0; d < NDOMAINS; d++) free(by_domain[d]);
    free(pool_docs);
    free(pool_domain);
    mgrad_dataset_destroy(pool_set);
    mgrad_dataset_destroy(target);
    mgrad_dataset_destroy(heldout);
    mgrad_dataset_destroy(test);
    mgrad_text_corpus_destroy(corpus);
    mgrad_context_destroy(ctx);
    return status;
}
