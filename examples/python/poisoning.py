#!/usr/bin/env python3
"""poisoning.py - accuracy-degrading data poisoning by metagradient ascent;
examples/poisoning.c through the Python bindings.

The attacker changes the pixels (kept in [0, 1]) of 2.5% of the training
images, labels unchanged, to raise the loss of the trained model on a
target split: the run's output function is φ = −(mean target loss), a
loss term of weight −1 (Run.set_output), and MGD minimises φ over those
images' pixels (the INPUTS metaparameter), signed steps projected onto
[0, 1], keeping the iterate that does most harm on a held-out split (scored
by the same formula: the held-out rows weighted −1).  Baselines with the same budget:
the same images replaced by uniform noise, and the same examples' labels
flipped.  A victim then retrains from scratch with seeds and batch orders
the attacker never saw; the table reports its test accuracy and the drop
against clean data.

Step for step the C program, with the same splits (the library's seeded
split), training setup, MGD settings and library seeds; the random draws
(which images are poisoned, the noise images, the flipped labels) come from
numpy's Generator with fixed seeds, so they are not the C program's draws
and the numbers differ a little from its numbers.

Writes the C program's files (poisoning.csv: victim accuracy per attack
and the drop against clean data; poisoning_progress.csv: the attacker's
objective; poisoning.json) and, when matplotlib is installed, the figures
of plot_results.py (poisoning.png, poisoning_progress.png).  Exits 77 (meson's skip code) when
Fashion-MNIST (Debian's dataset-fashion-mnist) is not installed.

Usage: poisoning.py [--quick | --smoke] [--meta-steps M] [--seeds S] [--out DIR]
"""

import os
import sys

import numpy as np

import metagrad as mg

import _apputil as app

F = 784
NAMES = ["clean", "noise images", "label flips", "MGD poisons"]


def options():
    p = app.parser("Data poisoning of Fashion-MNIST by metagradient ascent.")
    a = p.parse_args()
    o = dict(meta_steps=40, seeds=3, N=4000, share=0.025,
             cfg=app.TrainConfig(steps=400, batch=64, lr=0.02, momentum=0.5, hidden=128))
    if a.quick:
        o.update(meta_steps=20, N=2000, cfg=o["cfg"]._replace(steps=250))
    if a.smoke:
        o.update(meta_steps=2, N=200, seeds=1, cfg=o["cfg"]._replace(steps=30))
    return app.finish_options(p, a, o, 2000)


def main():
    o = options()
    app.require_fmnist(os.path.basename(sys.argv[0]))
    app.prepare_out(o.out)
    timer = app.Timer()
    cfg, N = o.cfg, o.N
    rng = np.random.default_rng(0x2545F4914F6CDD1D)
    ctx = mg.Context()
    all_set = app.load_fmnist(ctx, "train")
    test = app.load_fmnist(ctx, "test")
    train, target, heldout = app.splits(all_set, N, 1000, 1000, 23)

    npoison = int(o.share * N + 0.5)
    rows = np.sort(rng.choice(N, npoison, replace=False)).astype(np.int64)
    print("Fashion-MNIST poisoning: %d of %d training images (%.1f%%) may change, labels "
          "unchanged; MLP 784-%d-10, T = %d, B = %d, SGD momentum %.1f lr %.2f"
          % (npoison, N, 100 * o.share, cfg.hidden, cfg.steps, cfg.batch, cfg.momentum,
             cfg.lr), flush=True)
    x = train.get_inputs("f32").reshape(N, F)
    y = train.get_labels()
    ident = np.arange(N, dtype=np.int64)

    # The attack: maximise the target loss over the poison pixels, i.e.
    # minimise φ = −(mean target loss), the output function of a plain run:
    # one loss term of weight −1.  The held-out rows get weight −1 too, so
    # that MGD scores each iterate by φ's formula on the held-out split and
    # keeps the lowest (the most harmful).
    log = app.Progress(o.meta_steps)
    with app.make_run(ctx, cfg, train, None, 5, 5) as run:
        run.set_output([{"dataset": target, "weight": -1.0}])
        heldout.set_weights(-np.ones(len(heldout)))
        pix = run.add_meta("inputs", rows=rows)
        mgd = mg.MGD(pix, method="sign", lr=0.05,  # per-pixel step, like a PGD attack
                     projection="box", lo=0, hi=1, heldout=heldout,
                     # record and print the losses themselves (exact negation)
                     progress=lambda k, phi, score, t: log(k, -phi, -score, t))
        print("MGD poisoning (%d meta-steps, maximising the target loss):" % o.meta_steps,
              flush=True)
        mgd.run(o.meta_steps)
        poison, best = mgd.best()
        print("best iterate: held-out loss %.4f" % -best)
        mgd.close()

    # The four training sets the victim may get.
    sets = [train]
    xa = x.copy()
    xa[rows] = rng.random((npoison, F), dtype=np.float32)
    sets.append(app.dataset_from(ctx, train, ident, inputs=xa))
    ya = y.copy()
    ya[rows] = (ya[rows] + 1 + rng.integers(0, 9, size=npoison)) % 10
    sets.append(app.dataset_from(ctx, train, ident, labels=ya))
    xa = x.copy()
    xa[rows] = np.asarray(poison, dtype=np.float32).reshape(npoison, F)
    sets.append(app.dataset_from(ctx, train, ident, inputs=xa))

    mean, sd = [0.0] * len(NAMES), [0.0] * len(NAMES)
    print("\n%-13s  %s  %s" % ("training set", "victim test accuracy (mean ± std, unseen seeds)",
                               "drop vs clean"))
    for k, ds in enumerate(sets):
        mean[k], sd[k] = app.score(ctx, cfg, ds, test, 104729, 3, o.seeds)
        print("%-13s  %6.2f%% ± %.2f%%  (%d seeds)                     %+6.2f points"
              % (NAMES[k], 100 * mean[k], 100 * sd[k], o.seeds, 100 * (mean[k] - mean[0])),
              flush=True)

    table = os.path.join(o.out, "poisoning.csv")
    ok = app.write_csv(table, "attack,test_accuracy_mean,test_accuracy_std,seeds,drop",
                       [(NAMES[k], mean[k], sd[k], o.seeds, mean[k] - mean[0])
                        for k in range(len(NAMES))])
    ok &= app.write_progress(os.path.join(o.out, "poisoning_progress.csv"), log)
    ok &= app.write_summary(os.path.join(o.out, "poisoning.json"), "poisoning", o.mode,
                            [("train", N), ("poisoned", npoison), ("meta_steps", o.meta_steps),
                             ("seeds", o.seeds), ("train_steps", cfg.steps),
                             ("batch", cfg.batch)], NAMES, mean, sd)
    figures = app.draw_figures(table) if ok else []
    print("wrote %s/%s (%s)" % (o.out, ", ".join(
        ["poisoning.csv", "poisoning_progress.csv", "poisoning.json"] + figures), timer))
    for d in sets[1:] + [train, target, heldout, test, all_set]:
        d.close()
    ctx.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
