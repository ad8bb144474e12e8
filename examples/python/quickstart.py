#!/usr/bin/env python3
"""quickstart.py - examples/quickstart.c through the Python bindings.

Trains an MLP (16-32-4, tanh) on generated data for 100 steps of SGD with
momentum, then prints φ (the validation loss at θ_T), the accuracy, and the
metagradient of φ with respect to the learning-rate schedule: dφ/dη_t for
every step.  A negative entry says that a larger learning rate at that step
would have lowered the validation loss.

On glibc the data comes from the C library's srand()/rand(), exactly as in
quickstart.c, so both programs print the same numbers.  Needs no numpy.

Run from the source tree after building:
    METAGRAD_LIBRARY=build/lib/libmetagrad.so PYTHONPATH=bindings/python \\
        python3 examples/python/quickstart.py
"""

import argparse
import ctypes
import ctypes.util
import math
import random

import metagrad as mg

N_TRAIN, N_VAL, FEATURES, CLASSES, STEPS, BATCH = 512, 256, 16, 4, 100, 32


def uniform_source(seed):
    """rand() / RAND_MAX of the C library when it is glibc, else Python's."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # glibc: RAND_MAX = 2^31 - 1
        libc.srand(seed)
        return lambda: libc.rand() / 2147483647.0
    except (OSError, AttributeError):
        rng = random.Random(seed)
        return rng.random


def make_data(n, seed):
    """The class is the index of the largest of four random projections of a
    uniform input, so the task is learnable but not trivial."""
    u = uniform_source(seed)
    x, y = [], []
    for _ in range(n):
        row = [u() * 2 - 1 for _ in range(FEATURES)]
        scores = [sum(row[j] * math.sin(1.0 + c * FEATURES + j) for j in range(FEATURES))
                  for c in range(CLASSES)]
        x.append(row)
        y.append(max(range(CLASSES), key=lambda c: (scores[c], -c)))
    return x, y


def main():
    # no options: --help prints the usage (exit 0), anything else exits 2
    argparse.ArgumentParser(
        description="Train a small MLP on generated data and print the metagradient of the "
                    "validation loss with respect to the learning-rate schedule.").parse_args()
    x_train, y_train = make_data(N_TRAIN, 1)
    x_val, y_val = make_data(N_VAL, 2)

    with mg.Context() as ctx:
        model = (mg.Model(ctx, FEATURES)
                 .dense(32).activation("tanh")
                 .dense(CLASSES))
        train = mg.Dataset(ctx, x_train, labels=y_train, num_classes=CLASSES)
        val = mg.Dataset(ctx, x_val, labels=y_val, num_classes=CLASSES)
        with mg.Run(model, train, validation=val, steps=STEPS, batch_size=BATCH,
                    lr=0.1, momentum=0.9) as run:
            lr = run.add_meta("lr_schedule")
            phi = run.train()
            run.reverse()
            grad = lr.grad
            _, accuracy = run.evaluate(val)
            st = run.stats

        print("libmetagrad %s: MLP %d-32-%d, SGD momentum 0.9, lr 0.1, T = %d, B = %d"
              % (mg.library_version(), FEATURES, CLASSES, STEPS, BATCH))
        print("validation loss phi = %.6f, accuracy %.1f%%" % (phi, 100 * accuracy))
        print("train %.3f s, metagradient %.3f s (%.2fx)"
              % (st["seconds_forward"], st["seconds_reverse"],
                 st["seconds_reverse"] / st["seconds_forward"]))
        print("d phi / d lr_t:")
        for t in range(STEPS):
            print("  t=%3d %+.6e" % (t, grad[t]), end="\n" if t % 4 == 3 else "")
        print()


if __name__ == "__main__":
    main()
