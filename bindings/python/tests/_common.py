"""Shared fixtures of the test suite: the data and model of tests/test_run.c,
rebuilt through the Python API with the same SplitMix64 draws."""

import collections

import metagrad as mg

NTRAIN, NVAL, NPOOL, F, C, T, B = 24, 16, 10, 6, 3, 12, 6
_MASK = (1 << 64) - 1


class SplitMix:
    """tu_rand of tests/testutil.h: doubles in [-1, 1)."""

    def __init__(self, seed):
        self.state = seed & _MASK

    def rand(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        z ^= z >> 31
        return (z >> 11) * (2.0 / 9007199254740992.0) - 1.0

    def fill(self, n, scale):
        return [scale * self.rand() for _ in range(n)]


def rel_err(a, b, floor=1e-8):
    return abs(a - b) / max(abs(a), abs(b), floor)


Config = collections.namedtuple(
    "Config", "name opt lr momentum weight_decay eps_root nesterov loss smoothing residual")

CONFIGS = [
    Config("sgd", "sgd", 0.3, 0.0, 0.01, 0, False, "cross_entropy", 0, False),
    Config("momentum", "sgd", 0.2, 0.9, 0.01, 0, False, "cross_entropy", 0, False),
    Config("nesterov", "sgd", 0.2, 0.8, 0.01, 0, True, "cross_entropy", 0, False),
    Config("adam", "adam", 0.02, 0.9, 0.01, 1e-4, False, "cross_entropy", 0, False),
    Config("adamw", "adamw", 0.02, 0.9, 0.05, 1e-4, False, "cross_entropy", 0, False),
    Config("squared", "sgd", 0.1, 0.5, 0.01, 0, False, "squared_error", 0, True),
    Config("smoothed", "sgd", 0.3, 0.5, 0.01, 0, False, "cross_entropy", 0.1, True),
]


def make_data(ctx, n, seed, loss):
    """make_data of test_run.c, as nested lists (works without numpy)."""
    s = SplitMix(seed)
    x = s.fill(n * F, 1.5)
    y = s.fill(n * C, 1.0)
    labels = [int((s.rand() + 1) * 1.5) % C for _ in range(n)]
    rows = [x[i * F:(i + 1) * F] for i in range(n)]
    if loss == "cross_entropy":
        return mg.Dataset(ctx, rows, labels=labels, num_classes=C)
    return mg.Dataset(ctx, rows, targets=[y[i * C:(i + 1) * C] for i in range(n)])


class Fixture:
    def __init__(self, cfg, dtype="f64"):
        self.ctx = mg.Context(dtype=dtype, seed=7)
        m = mg.Model(self.ctx, F).dense(8, "default").activation("tanh")
        mark = m.mark()
        m.dense(8, "xavier_normal").activation("gelu")
        if cfg.residual:
            m.residual(mark)
        m.dense(C, "default").scale(0.5)
        self.model = m
        self.train = make_data(self.ctx, NTRAIN, 11, cfg.loss)
        self.val = make_data(self.ctx, NVAL, 23, cfg.loss)
        self.pool = make_data(self.ctx, NPOOL, 37, cfg.loss)
        sgd = cfg.opt == "sgd"
        self.run = mg.Run(
            m, self.train, validation=self.val, steps=T, batch_size=B, shuffle_seed=5,
            optimizer=cfg.opt, lr=cfg.lr, momentum=cfg.momentum if sgd else 0.0,
            beta1=0.9 if sgd else cfg.momentum, nesterov=cfg.nesterov,
            weight_decay=cfg.weight_decay, eps_root=cfg.eps_root, loss=cfg.loss,
            label_smoothing=cfg.smoothing)

    def add_meta(self, kind, variant=0):
        if kind == "data_weights" and variant == 1:
            return self.run.add_meta(kind, step_begin=4, step_end=9)
        if kind == "pool_weights":
            return self.run.add_meta(kind, step=7, pool=self.pool)
        if kind == "inputs":
            return self.run.add_meta(kind, rows=[3, 17, 8])
        return self.run.add_meta(kind)

    def close(self):
        for h in (self.run, self.train, self.val, self.pool, self.model, self.ctx):
            h.close()
