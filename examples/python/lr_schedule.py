#!/usr/bin/env python3
"""lr_schedule.py - learn a per-step learning-rate schedule by metagradient
descent, and compare it with hand-designed schedules of the same length;
examples/lr_schedule.c through the Python bindings.

Every schedule trains the same model (MLP 784-128-10, SGD with momentum)
for the same T steps on a Fashion-MNIST subset.  Baselines, each tuned on a
held-out split: the best constant rate, step decay (x0.1 at 50% and 75%),
cosine decay, and the best of a grid of one-cycle schedules (linear warm-up
to a peak, then linear decay to 0).  MGD starts from a flat schedule and
runs Adam on a piecewise-linear schedule (11 knots) with the metagradient
dφ/dη_t mapped onto the knots, each meta-step on a new batch order (φ:
loss on a target split; the best iterate chosen on the held-out split).
Each schedule is then retrained with seeds no method saw and scored on the
official test split.

Step for step the C program, with the same splits (the library's seeded
split), grids, training setup, MGD settings and library seeds.  This
program draws no random numbers of its own (every draw is the library's,
from the same seeds as in C), so it should print the C program's numbers up
to floating-point summation order.

Prints a table; writes the C program's files (lr_schedule.csv: per
schedule the trainings used to tune it, its held-out loss and test
accuracy; lr_schedule_steps.csv: the schedules per step;
lr_schedule_progress.csv: MGD's objective; lr_schedule.json) and, when
matplotlib is installed, the figures of plot_results.py (lr_schedule.png,
lr_schedule_progress.png).  Exits 77 (meson's skip code) when
Fashion-MNIST (Debian's dataset-fashion-mnist) is not installed.

Usage: lr_schedule.py [--quick | --smoke] [--meta-steps M] [--seeds S] [--out DIR]
"""

import math
import os
import sys

import numpy as np

import metagrad as mg

import _apputil as app

NAMES = ["constant", "step decay", "cosine", "one-cycle", "MGD"]
KNOTS = 11


def heldout_loss(s, schedule):
    """Held-out loss after training with `schedule` (seed 1, fixed batches);
    infinity when training diverges (a bad schedule, not an error)."""
    with app.make_run(s.ctx, s.cfg, s.train, s.target, 1, 1, schedule) as run:
        try:
            run.train()
        except mg.NonFiniteError:
            return math.inf
        return run.evaluate(s.heldout)[0]


def constant(T, peak, p):
    return np.full(T, peak)


def step_decay(T, peak, p):
    t = np.arange(T)
    return peak * np.where(t < T // 2, 1.0, np.where(t < 3 * T // 4, 0.1, 0.01))


def cosine(T, peak, p):
    return 0.5 * peak * (1 + np.cos(math.pi * np.arange(T) / T))


def one_cycle(T, peak, p):
    """p: the share of steps spent warming up."""
    w = max(int(p * T), 1)
    t = np.arange(T)
    return np.where(t < w, peak * (t + 1) / w, peak * (T - t) / (T - w))


def tune(s, shape, peaks, params):
    """The best schedule of a family over a grid, by held-out loss:
    (schedule, loss, trainings)."""
    best, best_loss, tried = None, math.inf, 0
    for peak in peaks:
        for param in params:
            cand = shape(s.cfg.steps, peak, param)
            loss = heldout_loss(s, cand)
            tried += 1
            if loss < best_loss:
                best, best_loss = cand, loss
    if best is None:  # every candidate diverged: keep the last, as C keeps garbage
        best = cand
    return best, best_loss, tried


def options():
    p = app.parser("Learning-rate schedules on Fashion-MNIST: hand-designed vs MGD.")
    a = p.parse_args()
    o = dict(meta_steps=50, seeds=3, ntrain=4000,
             cfg=app.TrainConfig(steps=300, batch=64, lr=0.05, momentum=0.9, hidden=128))
    if a.quick:
        o.update(meta_steps=25, ntrain=2000, cfg=o["cfg"]._replace(steps=200))
    if a.smoke:
        o.update(meta_steps=2, ntrain=200, seeds=1, cfg=o["cfg"]._replace(steps=30))
    return app.finish_options(p, a, o, 1000)


def main():
    o = options()
    app.require_fmnist(os.path.basename(sys.argv[0]))
    app.prepare_out(o.out)
    timer = app.Timer()
    s = type("Setup", (), {})()
    s.cfg = o.cfg
    s.ctx = ctx = mg.Context()
    all_set = app.load_fmnist(ctx, "train")
    s.test = app.load_fmnist(ctx, "test")
    s.train, s.target, s.heldout = app.splits(all_set, o.ntrain, 1000, 1000, 11)
    T = s.cfg.steps
    print("Fashion-MNIST LR schedules: train %d, target 1000, held-out 1000; MLP 784-128-10, "
          "SGD momentum 0.9, T = %d, B = %d" % (o.ntrain, T, s.cfg.batch), flush=True)

    peaks = [0.01, 0.02, 0.05, 0.1, 0.2, 0.4]
    warmups = [0.1, 0.2, 0.3, 0.4, 0.5]
    sched, tuned_loss, tried = [], [], []
    for shape, params in ((constant, [0]), (step_decay, [0]), (cosine, [0]),
                          (one_cycle, warmups)):
        best, loss, n = tune(s, shape, peaks, params)
        sched.append(best)
        tuned_loss.append(loss)
        tried.append(n)
    print("baselines tuned: %d trainings (%s)" % (sum(tried), timer), flush=True)

    # MGD from a flat start at the middle of the grid, on a piecewise-linear
    # schedule (KNOTS hat functions): a per-step schedule would fit the one
    # batch order MGD sees; a few knots generalise to unseen seeds.
    pos = np.arange(T) / (T - 1) * (KNOTS - 1)
    basis = np.maximum(0.0, 1 - np.abs(pos[:, None] - np.arange(KNOTS)[None, :]))
    knots = np.full(KNOTS, s.cfg.lr)
    log = app.Progress(o.meta_steps)
    with app.make_run(ctx, s.cfg, s.train, s.target, 1, 1) as run:
        lr = run.add_meta("lr_schedule")
        mgd = mg.MGD(lr, method="adam", lr=0.005, projection="box", lo=0, hi=0.5,
                     basis=basis, coefficients=knots,
                     reshuffle=True,  # a new batch order every meta-step: fit no single one
                     heldout=s.heldout, progress=log)
        print("MGD from a flat schedule at %.3f, %d knots (%d meta-steps):"
              % (s.cfg.lr, KNOTS, o.meta_steps), flush=True)
        mgd.run(o.meta_steps)
        best, score = mgd.best()
        sched.append(np.asarray(best, dtype=np.float64))
        tuned_loss.append(score)
        tried.append(o.meta_steps + 1)
        mgd.close()

    print("\n%-11s %9s %14s  %s" % ("schedule", "trainings", "held-out loss",
                                    "test accuracy (mean ± std over unseen seeds)"))
    mean, sd = [0.0] * len(NAMES), [0.0] * len(NAMES)
    for k in range(len(NAMES)):
        mean[k], sd[k] = app.score(ctx, s.cfg, s.train, s.test, 7919, 101, o.seeds, sched[k])
        print("%-11s %9d %14.4f  %6.2f%% ± %.2f%%"
              % (NAMES[k], tried[k], tuned_loss[k], 100 * mean[k], 100 * sd[k]), flush=True)

    table = os.path.join(o.out, "lr_schedule.csv")
    ok = app.write_csv(table, "schedule,trainings,heldout_loss,test_accuracy_mean,"
                       "test_accuracy_std,seeds",
                       [(NAMES[k], tried[k], tuned_loss[k], mean[k], sd[k], o.seeds)
                        for k in range(len(NAMES))])
    ok &= app.write_csv(os.path.join(o.out, "lr_schedule_steps.csv"),
                        "step,constant,step_decay,cosine,one_cycle,mgd",
                        [[t] + [sched[k][t] for k in range(len(NAMES))] for t in range(T)])
    ok &= app.write_progress(os.path.join(o.out, "lr_schedule_progress.csv"), log)
    ok &= app.write_summary(os.path.join(o.out, "lr_schedule.json"), "lr_schedule", o.mode,
                            [("train", o.ntrain), ("train_steps", T), ("batch", s.cfg.batch),
                             ("meta_steps", o.meta_steps), ("knots", KNOTS),
                             ("seeds", o.seeds)], NAMES, mean, sd)
    figures = app.draw_figures(table) if ok else []
    print("wrote %s/%s (%s)" % (o.out, ", ".join(
        ["lr_schedule.csv", "lr_schedule_steps.csv", "lr_schedule_progress.csv",
         "lr_schedule.json"] + figures), timer))
    for d in (s.train, s.target, s.heldout, s.test, all_set):
        d.close()
    ctx.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
