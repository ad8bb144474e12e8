#!/usr/bin/env python3
"""data_selection.py - choose a training subset by metagradient descent;
examples/data_selection.c through the Python bindings.

A candidate pool of Fashion-MNIST images has realistic defects that the
method is not told about: a share of the labels is flipped and a share of
the images is replaced by noise.  Each method selects K of the N
candidates; a model is then trained from scratch on the selection with
seeds no method saw, and scored on the official test split.

  whole pool    all N candidates
  random        K candidates drawn at random
  small loss    the K candidates with the lowest loss under a model trained
                on the whole pool (a standard noisy-label filter)
  MGD           Algorithm 1 of Engstrom et al. (2025), fixed-budget variant:
                counts over the pool as data weights, the metagradient of
                the clean target split's loss through the step-k
                relaxation, exchange of counts each meta-step, the best
                iterate chosen on a held-out split

Step for step the C program, with the same sizes, defects, training setup,
MGD settings and library seeds; the random draws (the permutation of the
training split, which candidates get which defect, the random selection)
come from numpy's Generator with fixed seeds, so they are not the C
program's draws and the numbers differ a little from its numbers.

Prints a table; writes the C program's files (data_selection.csv: test
accuracy per method and the defective share of each selection;
data_selection_progress.csv: MGD's objective; data_selection.json) and,
when matplotlib is installed, the figures of plot_results.py
(data_selection.png, data_selection_progress.png).  Exits 77 (meson's skip code)
when Fashion-MNIST (Debian's dataset-fashion-mnist) is not installed.

Usage: data_selection.py [--quick | --smoke] [--pool N] [--select K]
                         [--meta-steps M] [--seeds S] [--out DIR]

Run from the source tree after building:
    METAGRAD_LIBRARY=build/lib/libmetagrad.so PYTHONPATH=bindings/python \\
        python3 examples/python/data_selection.py --quick
"""

import os
import sys

import numpy as np

import metagrad as mg

import _apputil as app

NAMES = ["whole pool", "random", "small loss", "MGD"]


def score_selection(ctx, o, pool, rows, test):
    """Retrain `seeds` times on the multiset `rows` of the pool; the test
    accuracy's mean and std."""
    with app.dataset_from(ctx, pool, rows) as sel:
        return app.score(ctx, o.train, sel, test, 1000003, 17, o.seeds)


def setup(a, hidden):
    """The experiment's sizes, defects, training and MGD settings, as a
    dict, for the mode of the parsed arguments `a` (torch_data_selection.py
    uses them too, so that both programs select from the same pool)."""
    # A smooth training setup (moderate step size, light momentum): the
    # metagradient is only informative when training is metasmooth.
    o = dict(pool=4000, select=2000, target=1000, heldout=1000, meta_steps=40, seeds=3,
             exchange=40, flip_share=0.25, noise_share=0.10,
             train=app.TrainConfig(steps=400, batch=64, lr=0.02, momentum=0.5, hidden=hidden))
    if a.quick:
        o.update(pool=2000, select=1000, meta_steps=25, exchange=25, target=500, heldout=500)
    if a.smoke:
        o.update(pool=200, select=100, meta_steps=2, exchange=10, target=100, heldout=100,
                 seeds=1, train=o["train"]._replace(steps=30))
    return o


def defective_pool(ctx, o, rng, all_set, shape=(784,)):
    """Disjoint rows of the official training split `all_set`: the pool
    (inputs of `shape` per image), the target and the held-out sets, and the
    pool's defects, flipped labels on one share and noise images on
    another.  Returns pool, target, heldout, defect (per pool row: 0 clean,
    1 flipped label, 2 noise image), nflip and nnoise."""
    N = o.pool
    perm = rng.permutation(all_set.size)
    target = app.dataset_from(ctx, all_set, perm[N:N + o.target])
    heldout = app.dataset_from(ctx, all_set, perm[N + o.target:N + o.target + o.heldout])
    clean = app.dataset_from(ctx, all_set, perm[:N])
    labels = clean.get_labels()
    x = clean.get_inputs("f32").reshape(N, 784)
    clean.close()
    nflip, nnoise = int(o.flip_share * N), int(o.noise_share * N)
    defect = np.zeros(N, dtype=np.int8)
    chosen = rng.choice(N, nflip + nnoise, replace=False)
    for i, r in enumerate(chosen):
        defect[r] = 1 if i < nflip else 2
        if defect[r] == 1:
            labels[r] = (labels[r] + 1 + rng.integers(0, 9)) % 10
        else:
            x[r] = rng.random(784, dtype=np.float32)
    pool = mg.Dataset(ctx, x.reshape((N,) + tuple(shape)), labels=labels, num_classes=10)
    return pool, target, heldout, defect, nflip, nnoise


def compare(o, program, rng, timer, pool, heldout, defect, nflip, nnoise, score_rows,
            pool_run):
    """The four methods on the pool, their table on stdout and the result
    files PROGRAM.csv, PROGRAM_progress.csv and PROGRAM.json in o.out.
    score_rows(rows): test accuracy (mean, std) of retrainings on the
    multiset `rows` of the pool; pool_run(): a run of the model on the whole
    pool, φ on the target set.  Returns whether every file was written."""
    N, K = o.pool, o.select
    ident = np.arange(N, dtype=np.int64)
    mean, sd, bad_share = [0.0] * 4, [0.0] * 4, [0.0] * 4
    # whole pool and random
    mean[0], sd[0] = score_rows(ident)
    bad_share[0] = (nflip + nnoise) / N
    random_sel = rng.permutation(N)[:K]
    mean[1], sd[1] = score_rows(random_sel)
    bad_share[1] = float(np.mean(defect[random_sel] != 0))

    # small loss: the K lowest per-example losses after training on the pool
    with pool_run() as run:
        run.train()
        loss = run.example_losses(pool)
    small_sel = np.argsort(loss, kind="stable")[:K]
    bad_share[2] = float(np.mean(defect[small_sel] != 0))
    mean[2], sd[2] = score_rows(small_sel)
    print("baselines done (%s)" % timer, flush=True)

    # MGD: counts over the pool, gradient through the step-k relaxation
    log = app.Progress(o.meta_steps, digits=1)
    with pool_run() as run:
        cm = run.add_meta("data_weights")
        pm = run.add_meta("pool_weights", step=o.train.steps * 9 // 10)
        counts = np.zeros(N)
        counts[random_sel] = 1  # start: the random selection
        cm.value = counts
        mgd = mg.MGD(cm, method="exchange", lr=1, exchange=o.exchange, gradient_from=pm,
                     heldout=heldout, progress=log)
        print("MGD (%d meta-steps):" % o.meta_steps, flush=True)
        mgd.run(o.meta_steps)
        counts, best_score = mgd.best()
        print("best iterate: held-out loss %.4f" % best_score)
        mgd.close()
    mgd_sel = np.repeat(ident, counts.astype(np.int64))
    bad_share[3] = float(np.mean(defect[mgd_sel] != 0))
    mean[3], sd[3] = score_rows(mgd_sel)

    print("\n%-12s %10s  %s  %s" % ("method", "examples",
                                    "test accuracy (mean ± std, retrained with unseen seeds)",
                                    "defective share"))
    rows = []
    for k in range(4):
        size = N if k == 0 else K
        print("%-12s %10d  %6.2f%% ± %.2f%%  (%d seeds)            %5.1f%%"
              % (NAMES[k], size, 100 * mean[k], 100 * sd[k], o.seeds, 100 * bad_share[k]))
        rows.append((NAMES[k], size, mean[k], sd[k], o.seeds, bad_share[k]))
    table = os.path.join(o.out, program + ".csv")
    ok = app.write_csv(table, "method,examples,test_accuracy_mean,test_accuracy_std,seeds,"
                       "defective_share", rows)
    ok &= app.write_progress(os.path.join(o.out, program + "_progress.csv"), log)
    ok &= app.write_summary(os.path.join(o.out, program + ".json"), program,
                            o.mode, [("pool", N), ("select", K), ("flipped_labels", nflip),
                                     ("noise_images", nnoise), ("meta_steps", o.meta_steps),
                                     ("seeds", o.seeds), ("train_steps", o.train.steps),
                                     ("batch", o.train.batch)], NAMES, mean, sd)
    figures = app.draw_figures(table) if ok else []
    print("wrote %s/%s (%s)" % (o.out, ", ".join(
        [program + ".csv", program + "_progress.csv", program + ".json"] + figures), timer))
    return ok


def options():
    p = app.parser("Data selection on a defective Fashion-MNIST pool by MGD.")
    p.add_argument("--pool", type=int, default=None, metavar="N")
    p.add_argument("--select", type=int, default=None, metavar="K")
    a = p.parse_args()
    o = setup(a, hidden=128)
    for key in ("pool", "select", "meta_steps", "seeds"):
        if getattr(a, key) is not None:
            o[key] = getattr(a, key)
    o["out"] = a.out
    o["mode"] = "quick" if a.quick else "smoke" if a.smoke else "full"
    if not (1 <= o["select"] < o["pool"] and 1 <= o["seeds"] <= 16
            and 1 <= o["meta_steps"] <= 500):
        p.error("need 1 <= select < pool, 1 <= seeds <= 16, 1 <= meta-steps <= 500")
    return type("Options", (), o)


def main():
    o = options()
    app.require_fmnist(os.path.basename(sys.argv[0]))
    app.prepare_out(o.out)
    timer = app.Timer()
    rng = np.random.default_rng(0x853C49E6748FEA9B)
    ctx = mg.Context()
    all_set = app.load_fmnist(ctx, "train")
    test = app.load_fmnist(ctx, "test")

    # Disjoint rows of the official training split: pool, target, held-out;
    # defects in the pool.
    pool, target, heldout, defect, nflip, nnoise = defective_pool(ctx, o, rng, all_set)
    N, K = o.pool, o.select
    print("Fashion-MNIST data selection: pool %d (%d labels flipped, %d images noise), "
          "select %d; target %d, held-out %d; MLP 784-%d-10, T = %d, B = %d"
          % (N, nflip, nnoise, K, o.target, o.heldout, o.train.hidden, o.train.steps,
             o.train.batch), flush=True)

    ok = compare(o, "data_selection", rng, timer, pool, heldout, defect, nflip, nnoise,
                 lambda rows: score_selection(ctx, o, pool, rows, test),
                 lambda: app.make_run(ctx, o.train, pool, target, 7, 0))
    for d in (pool, target, heldout, all_set, test):
        d.close()
    ctx.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
