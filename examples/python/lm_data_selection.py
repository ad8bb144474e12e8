#!/usr/bin/env python3
"""lm_data_selection.py - choose the training documents of a small language
model by metagradient descent; examples/lm_data_selection.c through the
Python bindings.

A pool of text documents mixes four domains read from Debian packages:
fortunes (the target domain), man pages, dictionary entries (GCIDE) and
Python source.  The target is a sample of fortunes; the model is a tiny
byte-level GPT (2 layers, width 64, 4 heads, context 64) trained with Adam on
the next-token loss.  Each method selects K of the D pool documents; a model
is then trained from scratch on the selection with seeds no method saw, and
scored by its loss (nats per byte) and perplexity on fortunes no method saw.

  whole pool    all D documents
  random        K documents drawn at random
  perplexity    the K documents with the lowest loss under a model trained
                on the target sample (perplexity filtering)
  DSIR          importance resampling on hashed word unigrams and bigrams
                (Xie et al. 2023), K documents drawn without replacement by
                the Gumbel top-k trick
  MGD           the fixed-budget form of Algorithm 1 of Engstrom et al.
                (2025) on documents: 0/1 document weights expanded to the
                document's examples as data weights; the metagradient of the
                target loss through the step-k relaxation, summed over each
                document's examples (exact: the examples share the
                document's weight); each meta-step swaps the selected
                documents whose weight most raises φ for the unselected ones
                that most lower it; the best iterate by held-out loss

Every document contributes its first W windows of 64 bytes (shorter
documents are not used).  Step for step the C program, with the same sizes,
training setup, MGD settings and library seeds; the random draws (which
documents enter the pool and the splits, the random selection, DSIR's Gumbel
noise) come from numpy's Generator with fixed seeds, so the numbers differ a
little from the C program's.

Prints a table; writes the C program's files (lm_data_selection.csv,
lm_data_selection_progress.csv, lm_data_selection.json) and, when matplotlib
is installed, the figures of plot_results.py.  Exits 77 (meson's skip code)
when a corpus is not installed (Debian: fortunes, manpages, dict-gcide,
python3).

Usage: lm_data_selection.py [--quick | --smoke] [--pool D] [--select K]
                            [--meta-steps M] [--seeds S] [--out DIR]

Run from the source tree after building:
    METAGRAD_LIBRARY=build/lib/libmetagrad.so PYTHONPATH=bindings/python \\
        python3 examples/python/lm_data_selection.py --quick
"""

import collections
import glob
import json
import math
import os
import sys
import time

import numpy as np

import metagrad as mg

import _apputil as app

NAMES = ["whole pool", "random", "perplexity", "DSIR", "MGD"]
# (name, glob pattern, excluded names, split, Debian package); 0 is the target
DOMAINS = [
    ("fortunes", "/usr/share/games/fortunes/[a-z]*", "*.dat", "percent", "fortunes"),
    ("man pages", "/usr/share/man/man[457]/*.gz", None, "file", "manpages"),
    ("dictionary", "/usr/share/dictd/gcide.dict.dz", None, "headword", "dict-gcide"),
    ("Python source", "/usr/lib/python3*/[a-z]*.py", None, "file", "python3"),
]
HASH_BUCKETS = 10000

#: The GPT and its training, shared by every inner run and retraining.
LMTrain = collections.namedtuple("LMTrain", "steps batch width context layers heads lr")


def options():
    p = app.parser("Select the training documents of a tiny GPT by metagradient descent "
                   "(target: fortunes).")
    p.add_argument("--pool", type=int, default=None, metavar="D",
                   help="documents in the pool (1/8 of them fortunes)")
    p.add_argument("--select", type=int, default=None, metavar="K",
                   help="documents to select, fewer than D")
    a = p.parse_args()
    o = dict(pool=320, select=64, target=48, heldout=48, test=256, windows=4, meta_steps=16,
             seeds=3, exchange=6,
             train=LMTrain(steps=150, batch=16, width=64, context=64, layers=2, heads=4,
                           lr=2e-3))
    if a.quick:
        o.update(pool=160, select=32, meta_steps=8, exchange=4, target=32, heldout=32, test=128,
                 seeds=2, train=o["train"]._replace(steps=80))
    if a.smoke:
        o.update(pool=32, select=8, meta_steps=2, exchange=2, target=8, heldout=8, test=8,
                 seeds=1, windows=2, train=LMTrain(10, 8, 16, 16, 1, 2, 2e-3))
    for key in ("pool", "select", "meta_steps", "seeds"):
        if getattr(a, key) is not None:
            o[key] = getattr(a, key)
    o["out"] = a.out
    o["mode"] = "quick" if a.quick else "smoke" if a.smoke else "full"
    if not (16 <= o["pool"] <= 4000 and 1 <= o["select"] < o["pool"] and 1 <= o["seeds"] <= 16
            and 1 <= o["meta_steps"] <= 500):
        p.error("need 16 <= pool <= 4000, 1 <= select < pool, 1 <= seeds <= 16, "
                "1 <= meta-steps <= 500")
    return type("Options", (), o)


def require_corpora(program):
    for name, pattern, _, _, package in DOMAINS:
        if not glob.glob(pattern):
            print("%s: the %s corpus is not installed (nothing matches %s); install it with "
                  "`apt-get install %s`; skipping" % (program, name, pattern, package),
                  file=sys.stderr)
            sys.exit(app.EXIT_SKIP)


def lm_run(ctx, t, train, validation, seed, shuffle_seed):
    """A GPT run on `train`, φ on `validation`; θ0 from seed, batch order
    from shuffle_seed."""
    model = mg.Model.gpt(ctx, 256, t.context, t.width, t.layers, t.heads).init_params(seed)
    run = mg.Run(model, train, validation=validation, steps=t.steps, batch_size=t.batch,
                 loss="next_token", optimizer="adam", lr=t.lr, shuffle_seed=shuffle_seed)
    model.close()  # the run copied it
    return run


def doc_examples(corpus, o, docs):
    """The first W windows of each document, W per document, in order."""
    ds, doc = corpus.examples(o.train.context + 1, documents=np.asarray(docs, dtype=np.int64))
    doc = np.asarray(doc)
    starts = np.r_[0, np.flatnonzero(doc[1:] != doc[:-1]) + 1]
    rows = (starts[:, None] + np.arange(o.windows)[None, :]).ravel()
    assert len(starts) == len(docs)  # every document was chosen long enough
    sub = ds.subset(rows)
    ds.close()
    return sub


def score_selection(ctx, o, pool_set, sel, val, test):
    """Retrain `seeds` times on the documents `sel` of the pool; the test
    loss's and perplexity's mean and std."""
    W = o.windows
    rows = (np.asarray(sel, dtype=np.int64)[:, None] * W + np.arange(W)[None, :]).ravel()
    train = pool_set.subset(rows)
    loss = []
    for s in range(o.seeds):
        seed = 1000003 * (s + 17)
        with lm_run(ctx, o.train, train, val, seed, seed ^ 0x5bd1e995) as run:
            run.train()
            loss.append(run.evaluate(test)[0])
    train.close()
    # ℓ is the mean over positions: nats per byte
    return app.mean_std(loss) + app.mean_std([math.exp(v) for v in loss])


def ngram_counts(text, hist):
    """DSIR's features, as the C program hashes them: words (runs of ASCII
    letters and digits, lower-cased) and pairs of consecutive words, FNV-1a
    into HASH_BUCKETS counts."""
    prev = None
    for word in bytes(c if (48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122) else 32
                      for c in text).lower().split():
        h = 1469598103934665603
        for ch in word:
            h = ((h ^ ch) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
        hist[h % HASH_BUCKETS] += 1
        if prev is not None:
            hist[((((prev * 31) & 0xFFFFFFFFFFFFFFFF) ^ h) * 1099511628211
                  & 0xFFFFFFFFFFFFFFFF) % HASH_BUCKETS] += 1
        prev = h


def dsir_select(texts_pool, texts_target, K, rng):
    pt, pr = np.zeros(HASH_BUCKETS), np.zeros(HASH_BUCKETS)
    for t in texts_target:
        ngram_counts(t, pt)
    feats = []
    for t in texts_pool:
        h = np.zeros(HASH_BUCKETS)
        ngram_counts(t, h)
        feats.append(h)
        pr += h
    log_ratio = np.log((pt + 1) / (pt + 1).sum()) - np.log((pr + 1) / (pr + 1).sum())
    logw = np.array([h @ log_ratio for h in feats])
    # Gumbel top-k: K draws without replacement with probabilities ∝ w
    key = logw - np.log(-np.log(rng.random(len(logw))))
    return np.argsort(-key, kind="stable")[:K]


def mgd_select(ctx, o, pool_set, target, heldout, start):
    """MGD over document weights (see the top of the file).  Returns the
    best iterate's documents, its held-out loss and the (φ, held-out loss)
    per meta-step and for the final iterate."""
    D, W = o.pool, o.windows
    log = app.Progress(o.meta_steps + 1, digits=1)
    best, best_score = None, math.inf
    with lm_run(ctx, o.train, pool_set, target, 7, 0) as run:
        cm = run.add_meta("data_weights")
        pm = run.add_meta("pool_weights", step=o.train.steps * 9 // 10)
        sel = np.zeros(D, dtype=bool)
        sel[start] = True
        for step in range(o.meta_steps + 1):
            t0 = time.monotonic()
            cm.value = np.repeat(sel.astype(np.float64), W)
            phi = run.train()
            score = run.evaluate(heldout)[0]
            if score < best_score:
                best, best_score = sel.copy(), score
            log.phi[step], log.score[step] = phi, score
            if step == o.meta_steps:  # the final iterate: scored, not updated
                print("  final iterate  target loss %.4f  held-out loss %.4f  (%.1f s)"
                      % (phi, score, time.monotonic() - t0), flush=True)
                break
            run.reverse()
            # a document's weight is shared by its W examples: its
            # derivative is the sum of theirs
            gd = np.asarray(pm.grad).reshape(D, W).sum(axis=1)
            order = np.argsort(-gd, kind="stable")
            out_of = [d for d in order if sel[d]]          # g descending
            into = [d for d in order[::-1] if not sel[d]]  # g ascending
            swaps = 0
            for a, b in zip(out_of[:o.exchange], into[:o.exchange]):
                if gd[b] >= gd[a]:  # no first-order gain left
                    break
                sel[a], sel[b] = False, True
                swaps += 1
            print("  meta-step %3d  target loss %.4f  held-out loss %.4f  swapped %d  (%.1f s)"
                  % (step, phi, score, swaps, time.monotonic() - t0), flush=True)
    return np.flatnonzero(best), best_score, log


def main():
    o = options()
    require_corpora(os.path.basename(sys.argv[0]))
    app.prepare_out(o.out)
    timer = app.Timer()
    rng = np.random.default_rng(0x2545F4914F6CDD1D)
    ctx = mg.Context()
    corpus = mg.TextCorpus(ctx)
    for d, (_, pattern, exclude, split, _) in enumerate(DOMAINS):
        corpus.add(pattern, split=split, domain=d, exclude=exclude)
    domains = np.asarray(corpus.domains())

    # The documents long enough for W windows, by domain, in a seeded random
    # order; the pool takes D/8 fortunes and splits the rest evenly among the
    # other domains; target, held-out and test are further fortunes.
    D, K, need = o.pool, o.select, o.windows * o.train.context + 1
    texts = {}

    def text(i):
        if i not in texts:
            texts[i] = corpus.document(int(i))["text"][:need]
        return texts[i]

    lengths = np.array([corpus.document(i)["text"].__len__() for i in range(len(corpus))])
    quota = [D // 8] + [(D - D // 8) // 3 + (d <= (D - D // 8) % 3) for d in (1, 2, 3)]
    pool_docs, pool_domain, target_docs = [], [], None
    for d in range(len(DOMAINS)):
        eligible = np.flatnonzero((domains == d) & (lengths >= need))
        want = quota[d] + (o.target + o.heldout + o.test if d == 0 else 0)
        if len(eligible) < want:
            print("the %s corpus has %d documents of %d bytes or more; %d are needed "
                  "(a smaller --pool?)" % (DOMAINS[d][0], len(eligible), need, want),
                  file=sys.stderr)
            return 1
        eligible = rng.permutation(eligible)
        pool_docs += list(eligible[:quota[d]])
        pool_domain += [d] * quota[d]
        if d == 0:
            target_docs = eligible[quota[0]:quota[0] + o.target]
            heldout_docs = eligible[quota[0] + o.target:quota[0] + o.target + o.heldout]
            test_docs = eligible[quota[0] + o.target + o.heldout:want]
    pool_domain = np.array(pool_domain)
    pool_set = doc_examples(corpus, o, pool_docs)
    target = doc_examples(corpus, o, target_docs)
    heldout = doc_examples(corpus, o, heldout_docs)
    test = doc_examples(corpus, o, test_docs)
    t = o.train
    print("LM data selection: pool %d documents (%d fortunes, %d man pages, %d dictionary "
          "entries, %d Python files; %d windows of %d bytes each), select %d; target %d "
          "fortunes, held-out %d, test %d; GPT: layers %d, width %d, heads %d, context %d; "
          "Adam lr %g, T = %d, B = %d"
          % (D, quota[0], quota[1], quota[2], quota[3], o.windows, t.context, K, o.target,
             o.heldout, o.test, t.layers, t.width, t.heads, t.context, t.lr, t.steps, t.batch),
          flush=True)

    sel = [np.arange(D), rng.permutation(D)[:K], None, None, None]
    # perplexity: the K pool documents with the lowest mean loss under a model
    # trained on the target sample (scored on the held-out split)
    with lm_run(ctx, t, target, heldout, 11, 12) as run:
        run.train()
        doc_loss = np.asarray(run.example_losses(pool_set)).reshape(D, o.windows).sum(axis=1)
    sel[2] = np.argsort(doc_loss, kind="stable")[:K]
    sel[3] = dsir_select([text(i) for i in pool_docs], [text(i) for i in target_docs], K, rng)
    print("baselines selected (%s)" % timer, flush=True)

    print("MGD (%d meta-steps, up to %d swaps each):" % (o.meta_steps, o.exchange), flush=True)
    sel[4], best_score, log = mgd_select(ctx, o, pool_set, target, heldout, sel[1])
    print("best iterate: held-out loss %.4f (%s)" % (best_score, timer), flush=True)

    stats = [score_selection(ctx, o, pool_set, s, heldout, test) for s in sel]
    share = [float(np.mean(pool_domain[s] == 0)) for s in sel]
    seconds = time.monotonic() - timer.t0

    print("\n%-11s %9s  %-26s %-22s %s" % ("method", "documents", "test loss (nats/byte)",
                                           "test perplexity", "fortunes share"))
    rows = []
    for m, name in enumerate(NAMES):
        lm, ls, pm, ps = stats[m]
        print("%-11s %9d  %.4f ± %.4f (%d seeds)   %.3f ± %.3f          %5.1f%%"
              % (name, len(sel[m]), lm, ls, o.seeds, pm, ps, 100 * share[m]))
        rows.append((name, len(sel[m]), share[m], lm, ls, pm, ps, o.seeds))
    print("(%.1f s in all)" % seconds)
    table = os.path.join(o.out, "lm_data_selection.csv")
    ok = app.write_csv(table, "method,documents,target_share,test_loss_mean,test_loss_std,"
                       "perplexity_mean,perplexity_std,seeds", rows)
    ok &= app.write_progress(os.path.join(o.out, "lm_data_selection_progress.csv"), log)
    summary = {"program": "lm_data_selection", "mode": o.mode, "pool": D, "select": K,
               "pool_target_documents": quota[0], "windows_per_document": o.windows,
               "meta_steps": o.meta_steps, "seeds": o.seeds, "train_steps": t.steps,
               "batch": t.batch, "seconds": seconds,
               "results": [dict(zip(("name", "documents", "target_share", "test_loss_mean",
                                     "test_loss_std", "perplexity_mean", "perplexity_std"),
                                    r[:7])) for r in rows]}
    try:
        with open(os.path.join(o.out, "lm_data_selection.json"), "w") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")
    except OSError as e:
        print("%s: %s" % (o.out, e), file=sys.stderr)
        ok = False
    figures = app.draw_figures(table) if ok else []
    print("wrote %s/%s (%s)" % (o.out, ", ".join(
        ["lm_data_selection.csv", "lm_data_selection_progress.csv", "lm_data_selection.json"]
        + figures), timer))
    for ds in (pool_set, target, heldout, test):
        ds.close()
    corpus.close()
    ctx.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
