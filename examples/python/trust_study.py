"""The trust check (mgrad_mgd_trust_check) over the settings docs/smoothness.md
reports: activation (tanh, ReLU), momentum (0, 0.9), learning rate, horizon
T, for the LR schedule and the data weights, each in an f64 run with an f32
twin.  Synthetic data (a fixed teacher network's labels), an MLP
10-64-64-4; one seed; about a minute on one core.

    METAGRAD_LIBRARY=build/lib/libmetagrad.so PYTHONPATH=bindings/python \\
        /usr/bin/python3 examples/python/trust_study.py
"""
import sys

import numpy as np

import metagrad as mg

F, C, N, NV, B = 10, 4, 512, 256, 32


def data(ctx, n, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, F))
    teacher = np.random.default_rng(0).standard_normal((F, C))
    y = np.tanh(x @ teacher).argmax(1).astype(np.int32)
    return mg.Dataset(ctx, x, labels=y, num_classes=C)


def build(dtype, act, momentum, lr, steps):
    ctx = mg.Context(dtype=dtype, seed=1)
    model = mg.Model(ctx, F).dense(64).activation(act).dense(64).activation(act).dense(C)
    tr, va = data(ctx, N, 1), data(ctx, NV, 2)
    run = mg.Run(model, tr, validation=va, steps=steps, batch_size=B, lr=lr,
                 momentum=momentum)
    return ctx, model, tr, va, run


def main():
    print("%-5s %4s %5s %4s %-13s | %7s %8s %7s %s" % (
        "act", "mom", "lr", "T", "meta", "S", "f32 diff", "cosine", "trusted"))
    for act in ("tanh", "relu"):
        for mom in (0.0, 0.9):
            for lr, steps in ((0.05, 100), (0.2, 100), (0.05, 400)):
                for kind in ("lr_schedule", "data_weights"):
                    a = build("f64", act, mom, lr, steps)
                    b = build("f32", act, mom, lr, steps)
                    m64, m32 = a[4].add_meta(kind), b[4].add_meta(kind)
                    r = mg.MGD.trust_check(m64, m32, seed=7)
                    print("%-5s %4.1f %5.2f %4d %-13s | %7.3f %7.1f%% %7.3f %s" % (
                        act, mom, lr, steps, kind, r["S"], 100 * r["rel_diff"], r["cosine"],
                        "yes" if r["trusted"] else "NO"))
                    sys.stdout.flush()
                    for h in reversed(a + b):
                        h.close()


if __name__ == "__main__":
    main()
