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
import data_selection as ds

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
    o = ds.setup(a, hidden=0)
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

    # data_selection.py's pool, target and held-out sets; [N, 1, 28, 28] is
    # the CNN's input shape (the same 784 values per image).
    pool, target, heldout, defect, nflip, nnoise = ds.defective_pool(ctx, o, rng, all_set,
                                                                     (1, 28, 28))
    N, K = o.pool, o.select
    print("Fashion-MNIST data selection: pool %d (%d labels flipped, %d images noise), "
          "select %d; target %d, held-out %d; PyTorch CNN conv5x5(8, stride 2)-tanh-avgpool2-"
          "dense(10) through metagrad.torch, T = %d, B = %d"
          % (N, nflip, nnoise, K, o.target, o.heldout, o.train.steps, o.train.batch),
          flush=True)

    ok = ds.compare(o, PROGRAM, rng, timer, pool, heldout, defect, nflip, nnoise,
                    lambda rows: score_selection(ctx, mgt, torch, o, pool, rows, target, test),
                    lambda: make_run(ctx, mgt, torch, o.train, pool, target, 7, 0))
    for d in (pool, target, heldout, all_set, test):
        d.close()
    ctx.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
