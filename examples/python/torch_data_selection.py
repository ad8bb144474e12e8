#!/usr/bin/env python3
"""torch_data_selection.py - data_selection.py with a model defined in
PyTorch: choose a training subset by metagradient descent, where the
network is a small torch.nn CNN run through metagrad.torch (exact
metagradients by double backward, memory-bounded by the library's
checkpointing).

A candidate pool of Fashion-MNIST images has realistic defects that the
method is not told about: a share of the labels is flipped and a share of
the images is replaced by noise.  Each method selects K of the N
candidates; the CNN is then trained from scratch on the selection with
seeds no method saw, and scored on the official test split.

  whole pool    all N candidates
  random        K candidates drawn at random
  small loss    the K candidates with the lowest loss under a CNN trained
                on the whole pool (a standard noisy-label filter)
  MGD           Algorithm 1 of Engstrom et al. (2025), fixed-budget variant:
                counts over the pool as data weights, the metagradient of
                the clean target split's loss through the step-k
                relaxation, exchange of counts each meta-step, the best
                iterate chosen on a held-out split

The CNN: conv 5x5 (8 channels, stride 2), tanh, 2x2 average pooling,
dense to 10 classes (3098 parameters); θ0 from torch.manual_seed.
Everything else (sizes, defects, training setup, MGD settings, draws) is
data_selection.py's, so the two tables compare an MLP and a CNN on the same
pool.

Prints the same table as data_selection.py; writes torch_data_selection.csv
(test accuracy per method and the defective share of each selection),
torch_data_selection_progress.csv (MGD's objective),
torch_data_selection.json and, when matplotlib is installed, the figures of
plot_results.py.  Exits 77 (meson's skip code) when PyTorch (Debian's
python3-torch) or Fashion-MNIST (dataset-fashion-mnist) is not installed.

Usage: torch_data_selection.py [--quick | --smoke] [--pool N] [--select K]
                               [--meta-steps M] [--seeds S] [--out DIR]

Run from the source tree after building:
    METAGRAD_LIBRARY=build/lib/libmetagrad.so PYTHONPATH=bindings/python \\
        python3 examples/python/torch_data_selection.py --quick
"""

import os
import sys

import numpy as np

import metagrad as mg

import _apputil as app

NAMES = ["whole pool", "random", "small loss", "MGD"]
PROGRAM = "torch_data_selection"


def require_torch():
    """metagrad.torch, or exit 77 (meson's skip code) with a message."""
    try:
        import torch
        import metagrad.torch as mgt
    except ImportError as e:
        print("%s: %s; skipping" % (os.path.basename(sys.argv[0]), e), file=sys.stderr)
        sys.exit(app.EXIT_SKIP)
    # One torch thread: the library's threads run beside it, and on a small
    # machine two pools of threads only slow each other down (bench/torch_bridge.py).
    torch.set_num_threads(1)
    return torch, mgt


def make_cnn(torch, seed):
    """The CNN, θ0 drawn by torch from `seed`."""
    nn = torch.nn
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 8, 5, stride=2), nn.Tanh(), nn.AvgPool2d(2),
                         nn.Flatten(), nn.Linear(8 * 6 * 6, 10))


def make_run(ctx, mgt, torch, cfg, train, validation, seed, shuffle_seed):
    """A run of the CNN through the bridge (app.make_run with the CNN)."""
    tm = mgt.TorchModel(make_cnn(torch, seed), (1, 28, 28))
    return tm.run(ctx, train, validation=validation, steps=cfg.steps, batch_size=cfg.batch,
                  lr=cfg.lr, momentum=cfg.momentum, shuffle_seed=shuffle_seed)


def score_selection(ctx, mgt, torch, o, pool, rows, val, test):
    """Retrain `seeds` times on the multiset `rows` of the pool; the test
    accuracy's mean and std (app.retrain_accuracy with the CNN)."""
    sel = app.dataset_from(ctx, pool, rows)
    acc = []
    for s in range(o.seeds):
        seed = 1000003 * (s + 17)
        with make_run(ctx, mgt, torch, o.train, sel, val, seed % 2**31,
                      seed ^ 0x5bd1e995) as run:
            run.train()
            acc.append(run.evaluate(test)[1])
    sel.close()
    return app.mean_std(acc)


def options():
    p = app.parser("Data selection on a defective Fashion-MNIST pool by MGD, with a CNN "
                   "defined in PyTorch (metagrad.torch).")
    p.add_argument("--pool", type=int, default=None, metavar="N")
    p.add_argument("--select", type=int, default=None, metavar="K")
    a = p.parse_args()
    # data_selection.py's setup (hidden is unused: the model is the CNN)
    o = dict(pool=4000, select=2000, target=1000, heldout=1000, meta_steps=40, seeds=3,
             exchange=40, flip_share=0.25, noise_share=0.10,
             train=app.TrainConfig(steps=400, batch=64, lr=0.02, momentum=0.5, hidden=0))
    if a.quick:
        o.update(pool=2000, select=1000, meta_steps=25, exchange=25, target=500, heldout=500)
    if a.smoke:
        o.update(pool=200, select=100, meta_steps=2, exchange=10, target=100, heldout=100,
                 seeds=1, train=o["train"]._replace(steps=30))
    for key in ("pool", "select"):
        if getattr(a, key) is not None:
            o[key] = getattr(a, key)
    if not 1 <= o["select"] < o["pool"]:
        p.error("need 1 <= select < pool")
    return app.finish_options(p, a, o, 500)


def main():
    o = options()
    torch, mgt = require_torch()
    app.require_fmnist(os.path.basename(sys.argv[0]))
    app.prepare_out(o.out)
    timer = app.Timer()
    rng = np.random.default_rng(0x853C49E6748FEA9B)
    ctx = mg.Context()
    all_set = app.load_fmnist(ctx, "train")
    test = app.load_fmnist(ctx, "test")

    # Disjoint rows of the official training split: pool, target, held-out.
    N, K, total = o.pool, o.select, all_set.size
    perm = rng.permutation(total)
    target = app.dataset_from(ctx, all_set, perm[N:N + o.target])
    heldout = app.dataset_from(ctx, all_set, perm[N + o.target:N + o.target + o.heldout])
    # Defects: flipped labels on one share, noise images on another.
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
    # [N, 1, 28, 28]: the CNN's input shape (the same 784 values per image)
    pool = mg.Dataset(ctx, x.reshape(N, 1, 28, 28), labels=labels, num_classes=10)
    ident = np.arange(N, dtype=np.int64)
    print("Fashion-MNIST data selection: pool %d (%d labels flipped, %d images noise), "
          "select %d; target %d, held-out %d; PyTorch CNN conv5x5(8, stride 2)-tanh-avgpool2-"
          "dense(10) through metagrad.torch, T = %d, B = %d"
          % (N, nflip, nnoise, K, o.target, o.heldout, o.train.steps, o.train.batch),
          flush=True)

    mean, sd, bad_share = [0.0] * 4, [0.0] * 4, [0.0] * 4
    # whole pool and random
    mean[0], sd[0] = score_selection(ctx, mgt, torch, o, pool, ident, target, test)
    bad_share[0] = (nflip + nnoise) / N
    random_sel = rng.permutation(N)[:K]
    mean[1], sd[1] = score_selection(ctx, mgt, torch, o, pool, random_sel, target, test)
    bad_share[1] = float(np.mean(defect[random_sel] != 0))

    # small loss: the K lowest per-example losses after training on the pool
    with make_run(ctx, mgt, torch, o.train, pool, target, 7, 0) as run:
        run.train()
        loss = run.example_losses(pool)
    small_sel = np.argsort(loss, kind="stable")[:K]
    bad_share[2] = float(np.mean(defect[small_sel] != 0))
    mean[2], sd[2] = score_selection(ctx, mgt, torch, o, pool, small_sel, target, test)
    print("baselines done (%s)" % timer, flush=True)

    # MGD: counts over the pool, gradient through the step-k relaxation
    log = app.Progress(o.meta_steps, digits=1)
    with make_run(ctx, mgt, torch, o.train, pool, target, 7, 0) as run:
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
    mean[3], sd[3] = score_selection(ctx, mgt, torch, o, pool, mgd_sel, target, test)

    print("\n%-12s %10s  %s  %s" % ("method", "examples",
                                    "test accuracy (mean ± std, retrained with unseen seeds)",
                                    "defective share"))
    rows = []
    for k in range(4):
        size = N if k == 0 else K
        print("%-12s %10d  %6.2f%% ± %.2f%%  (%d seeds)            %5.1f%%"
              % (NAMES[k], size, 100 * mean[k], 100 * sd[k], o.seeds, 100 * bad_share[k]))
        rows.append((NAMES[k], size, mean[k], sd[k], o.seeds, bad_share[k]))
    table = os.path.join(o.out, PROGRAM + ".csv")
    ok = app.write_csv(table, "method,examples,test_accuracy_mean,test_accuracy_std,seeds,"
                       "defective_share", rows)
    ok &= app.write_progress(os.path.join(o.out, PROGRAM + "_progress.csv"), log)
    ok &= app.write_summary(os.path.join(o.out, PROGRAM + ".json"), PROGRAM,
                            o.mode, [("pool", N), ("select", K), ("flipped_labels", nflip),
                                     ("noise_images", nnoise), ("meta_steps", o.meta_steps),
                                     ("seeds", o.seeds), ("train_steps", o.train.steps),
                                     ("batch", o.train.batch)], NAMES, mean, sd)
    figures = app.draw_figures(table) if ok else []
    print("wrote %s/%s (%s)" % (o.out, ", ".join(
        [PROGRAM + ".csv", PROGRAM + "_progress.csv", PROGRAM + ".json"] + figures), timer))
    for d in (pool, target, heldout, all_set, test):
        d.close()
    ctx.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
