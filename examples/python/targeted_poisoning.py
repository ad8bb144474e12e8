#!/usr/bin/env python3
"""targeted_poisoning.py - make one chosen class fail by changing 2.5% of the
training images; examples/targeted_poisoning.c through the Python bindings.

The attacker changes the pixels (kept in [0, 1]) of 2.5% of the training
images, labels unchanged, drawn among the images of the other classes, so
that the trained model misclassifies the target class (--class) while the
other classes keep their accuracy.  The run's output function, on the
attacker's target split, is two loss terms restricted to classes
(Run.set_output):
    φ = −(mean loss on the target class's rows) + λ · (mean loss on the
        other classes' rows),
and MGD minimises φ over the poisoned images' pixels (signed steps projected
onto [0, 1]), once from the clean images and once from the naive attack's,
keeping the iterate with the lowest φ on a held-out split (the same formula
through per-row weights).  Baselines with the same budget: uniform noise on
the same rows, and the naive attack (the rows' images replaced by
target-class images of the attacker's splits).  A victim retrains with
unseen seeds; the table gives its test accuracy on the target class and on
the other classes.

Step for step the C program, with the same splits, training setup, MGD
settings and library seeds; the random draws (which images are poisoned,
the noise images) come from numpy's Generator with fixed seeds, so the
numbers differ a little from the C program's.

Writes the C program's files (targeted_poisoning.csv,
targeted_poisoning_progress.csv, targeted_poisoning.json) and, when
matplotlib is installed, the figures of plot_results.py.  Exits 77 (meson's
skip code) when Fashion-MNIST is not installed.

Usage: targeted_poisoning.py [--quick | --smoke] [--class C] [--lambda L]
                             [--meta-steps M] [--seeds S] [--out DIR]
"""

import json
import math
import os
import sys

import numpy as np

import metagrad as mg

import _apputil as app

F = 784
NAMES = ["clean", "noise images", "naive", "MGD from clean", "MGD from naive"]
CLASSES = ["T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
           "sneaker", "bag", "ankle boot"]


def options():
    p = app.parser("Make one Fashion-MNIST class fail, the others intact, by changing 2.5% "
                   "of the training images (metagradient descent on a signed output).")
    p.add_argument("--class", dest="cls", type=int, default=0, metavar="C",
                   help="the class to make fail, 0-9 (default 0, T-shirt/top)")
    p.add_argument("--lambda", dest="lam", type=float, default=1.0, metavar="L",
                   help="weight of the other classes' loss in φ (default 1)")
    a = p.parse_args()
    if not 0 <= a.cls <= 9:
        p.error("--class must be in 0-9")
    if not (math.isfinite(a.lam) and 0 <= a.lam <= 1000):
        p.error("--lambda must be in [0, 1000]")
    o = dict(meta_steps=40, seeds=10, N=4000, share=0.025, cls=a.cls, lam=a.lam,
             cfg=app.TrainConfig(steps=400, batch=64, lr=0.02, momentum=0.5, hidden=128))
    if a.quick:
        o.update(meta_steps=20, N=2000, seeds=3, cfg=o["cfg"]._replace(steps=250))
    if a.smoke:
        o.update(meta_steps=2, N=200, seeds=1, cfg=o["cfg"]._replace(steps=30))
    return app.finish_options(p, a, o, 2000)


def attack(ctx, cfg, train, target, heldout, rows, c, lam, meta_steps, init, log):
    """MGD minimising φ over the poison pixels; the best iterate [rows, F]."""
    others = [k for k in range(10) if k != c]
    with app.make_run(ctx, cfg, train, None, 5, 5) as run:
        run.set_output([{"dataset": target, "weight": -1.0, "classes": [c]},
                        {"dataset": target, "weight": lam, "classes": others}])
        yh = heldout.get_labels()
        n, nc = len(yh), int(np.sum(yh == c))
        heldout.set_weights(np.where(yh == c, -n / nc, lam * n / (n - nc)))
        pix = run.add_meta("inputs", rows=rows)
        if init is not None:
            pix.value = init
        mgd = mg.MGD(pix, method="sign", lr=0.05,  # per-pixel step, like a PGD attack
                     projection="box", lo=0, hi=1, heldout=heldout, progress=log)
        print("MGD from the %s images (%d meta-steps, minimising φ; 'target loss' below is "
              "φ on the target split, 'held-out loss' φ on the held-out split):"
              % ("naive attack's" if init is not None else "clean", meta_steps), flush=True)
        mgd.run(meta_steps)
        poison, best = mgd.best()
        print("best iterate: φ on the held-out split %.4f" % best)
        mgd.close()
    return np.asarray(poison, dtype=np.float32).reshape(len(rows), F)


def main():
    o = options()
    app.require_fmnist(os.path.basename(sys.argv[0]))
    app.prepare_out(o.out)
    timer = app.Timer()
    cfg, N, c = o.cfg, o.N, o.cls
    rng = np.random.default_rng(0x9E3779B97F4A7C15)
    ctx = mg.Context()
    all_set = app.load_fmnist(ctx, "train")
    test = app.load_fmnist(ctx, "test")
    train, target, heldout = app.splits(all_set, N, 1000, 1000, 23)

    x = train.get_inputs("f32").reshape(N, F)
    y = train.get_labels()
    cand = np.flatnonzero(y != c)
    npoison = min(int(o.share * N + 0.5), len(cand))
    rows = np.sort(rng.choice(cand, npoison, replace=False)).astype(np.int64)
    print("Fashion-MNIST targeted poisoning: make class %d (%s) fail; %d of %d training "
          "images (%.1f%%, none of class %d) may change, labels unchanged; φ = −loss(class %d)"
          " + %g · loss(others); MLP 784-%d-10, T = %d, B = %d, SGD momentum %.1f lr %.2f"
          % (c, CLASSES[c], npoison, N, 100 * o.share, c, c, o.lam, cfg.hidden, cfg.steps,
             cfg.batch, cfg.momentum, cfg.lr), flush=True)
    ident = np.arange(N, dtype=np.int64)

    # The naive attack: target-class images of the attacker's splits.
    pool = np.concatenate([d.get_inputs("f32").reshape(len(d), F)[d.get_labels() == c]
                           for d in (target, heldout)])
    if len(pool) < npoison:
        print("only %d images of class %d for the naive attack" % (len(pool), c),
              file=sys.stderr)
        return 1
    naive = pool[:npoison]

    log = app.Progress(o.meta_steps)
    poisons = [attack(ctx, cfg, train, target, heldout, rows, c, o.lam, o.meta_steps, init,
                      log) for init in (None, naive)]

    images = [None, rng.random((npoison, F), dtype=np.float32), naive] + poisons
    sets = [train]
    for img in images[1:]:
        xa = x.copy()
        xa[rows] = img
        sets.append(app.dataset_from(ctx, train, ident, inputs=xa))

    test_y = test.get_labels()
    test_c = test.subset(np.flatnonzero(test_y == c).astype(np.int64))
    test_o = test.subset(np.flatnonzero(test_y != c).astype(np.int64))
    seed_list = [104729 * (s + 3) for s in range(o.seeds)]
    # Every row retrains with the same seeds, so the change against clean is
    # also given per seed (paired): mean ± std of the differences.
    table, clean = [], None
    print("\nvictim's test accuracy, mean ± std over %d retrainings with unseen seeds "
          "(the same seeds for every row; change: per seed against clean):" % o.seeds)
    print("%-14s  %-18s  %-16s  %s" % ("training set", "target class", "change",
                                       "other classes"))
    for name, ds in zip(NAMES, sets):
        with app.make_model(ctx, cfg.hidden, seed_list[0]) as model:
            rc, ro = mg.score(model, ds, [test_c, test_o], seed_list=seed_list,
                              **app.run_options(cfg))
        acc = list(rc.accuracies)
        clean = acc if clean is None else clean
        dmean, dsd = app.mean_std([a - b for a, b in zip(acc, clean)])
        table.append((name, rc.accuracy_mean, rc.accuracy_std, ro.accuracy_mean,
                      ro.accuracy_std, o.seeds, dmean, dsd))
        print("%-14s  %6.2f%% ± %5.2f%%  %+6.2f ± %4.2f pts  %6.2f%% ± %5.2f%%"
              % (name, 100 * rc.accuracy_mean, 100 * rc.accuracy_std, 100 * dmean, 100 * dsd,
                 100 * ro.accuracy_mean, 100 * ro.accuracy_std), flush=True)

    path = os.path.join(o.out, "targeted_poisoning.csv")
    ok = app.write_csv(path, "attack,target_class_accuracy_mean,target_class_accuracy_std,"
                       "other_accuracy_mean,other_accuracy_std,seeds,"
                       "target_class_change_mean,target_class_change_std", table)
    ok &= app.write_progress(os.path.join(o.out, "targeted_poisoning_progress.csv"), log)
    columns = ["target_class_accuracy_mean", "target_class_accuracy_std",
               "other_accuracy_mean", "other_accuracy_std", "seeds",
               "target_class_change_mean", "target_class_change_std"]
    doc = {"program": "targeted_poisoning", "mode": o.mode, "target_class": c,
           "lambda": o.lam, "train": N, "poisoned": npoison, "meta_steps": o.meta_steps,
           "seeds": o.seeds, "train_steps": cfg.steps, "batch": cfg.batch,
           "results": [dict(name=r[0], **dict(zip(columns, r[1:]))) for r in table]}
    try:
        with open(os.path.join(o.out, "targeted_poisoning.json"), "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
    except OSError as e:
        print(e, file=sys.stderr)
        ok = False
    figures = app.draw_figures(path) if ok else []
    print("wrote %s/%s (%s)" % (o.out, ", ".join(
        ["targeted_poisoning.csv", "targeted_poisoning_progress.csv",
         "targeted_poisoning.json"] + figures), timer))
    for d in sets[1:] + [test_c, test_o, train, target, heldout, test, all_set]:
        d.close()
    ctx.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
