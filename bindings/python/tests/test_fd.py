"""Whole-run metagradients against central finite differences of whole
training runs, in f64, through the Python API: tests/test_run.c repeated.

For every optimizer and metaparameter kind: train the MLP of test_run.c for
12 steps, take g = dφ/dz, pick a random direction v and compare <g, v> with
(φ(z + hv) − φ(z − hv)) / 2h.  Relative error must be <= 1e-6.
"""

import math

import pytest

import metagrad as mg
from _common import B, C, CONFIGS, NTRAIN, T, F, Fixture, SplitMix, rel_err

KINDS = [
    ("data_weights", 0), ("data_weights[4,9)", 1), ("pool_weights@7", 0),
    ("inputs[3 rows]", 0), ("soft_labels", 0), ("lr_schedule", 0), ("weight_decay", 0),
    ("momentum", 0), ("beta2", 0), ("initial_params", 0),
]
FD_ERRORS = {}


def flat(x):
    if isinstance(x, float):
        return [x]
    if mg.HAVE_NUMPY:
        import numpy as np
        if isinstance(x, np.ndarray):
            return x.ravel().tolist()
    out = []
    for item in x:
        out.extend(flat(item) if isinstance(item, (list, tuple)) else [float(item)])
    return out


def cases():
    for cfg in CONFIGS:
        for k, (label, variant) in enumerate(KINDS):
            kind = label.split("[")[0].split("@")[0]
            if kind == "beta2" and cfg.opt == "sgd":
                continue
            if kind == "momentum" and cfg.opt == "sgd" and cfg.momentum == 0:
                continue  # μ = 0 sits on the boundary of its range
            yield pytest.param(cfg, kind, variant, 1000 + k, id="%s-%s" % (cfg.name, label))


def fd_check(fx, meta, seed):
    z = flat(meta.value)
    n = len(z)
    assert n == meta.size
    fx.run.train()
    fx.run.reverse()
    g = flat(meta.grad)
    v = SplitMix(seed).fill(n, 1.0)
    if meta.kind in ("momentum", "beta2"):
        v[0] = -1.0  # stay < 1
    if meta.kind == "weight_decay":
        v[0] = 1.0
    direction = math.fsum(a * b for a, b in zip(g, v))
    h = 1e-5
    meta.value = [zi + h * vi for zi, vi in zip(z, v)]
    phi_p = fx.run.train()
    meta.value = [zi - h * vi for zi, vi in zip(z, v)]
    phi_m = fx.run.train()
    meta.value = z
    fd = (phi_p - phi_m) / (2 * h)
    return direction, fd


@pytest.mark.parametrize("cfg,kind,variant,seed", list(cases()))
def test_fd_whole_run(cfg, kind, variant, seed):
    fx = Fixture(cfg, "f64")
    try:
        meta = fx.add_meta(kind, variant)
        direction, fd = fd_check(fx, meta, seed)
    finally:
        fx.close()
    err = rel_err(direction, fd)
    FD_ERRORS["%s/%s%s" % (cfg.name, kind, "[4,9)" if variant else "")] = err
    print("fd %-9s %-16s <g,v> = %+.10e  fd = %+.10e  rel err %.2e"
          % (cfg.name, kind, direction, fd, err))
    assert err <= 1e-6, "%s / %s: metagradient %.12e vs finite differences %.12e" % (
        cfg.name, kind, direction, fd)


def _metagrads(cfg, dtype):
    fx = Fixture(cfg, dtype)
    try:
        lr = fx.add_meta("lr_schedule")
        w = fx.add_meta("data_weights")
        x = fx.add_meta("inputs")
        fx.run.train()
        fx.run.reverse()
        return flat(fx.run.params), flat(lr.grad), flat(w.grad), flat(x.grad)
    finally:
        fx.close()


def _rel_norm_err(a, b):
    d = math.fsum((x - y) ** 2 for x, y in zip(a, b))
    s = math.fsum(y * y for y in b)
    return math.sqrt(d / s)


@pytest.mark.parametrize("cfg", CONFIGS[:5], ids=lambda c: c.name)
def test_f32_matches_f64(cfg):
    r32 = _metagrads(cfg, "f32")
    r64 = _metagrads(cfg, "f64")
    for a, b in zip(r32[1:], r64[1:]):
        assert _rel_norm_err(a, b) < 1e-3


@pytest.mark.parametrize("cfg", CONFIGS[:5], ids=lambda c: c.name)
def test_determinism(cfg):
    for dtype in ("f32", "f64"):
        assert _metagrads(cfg, dtype) == _metagrads(cfg, dtype)


def test_sizes_and_shapes():
    fx = Fixture(CONFIGS[3])
    try:
        assert fx.add_meta("lr_schedule").size == T
        assert fx.add_meta("data_weights").size == NTRAIN
        x = fx.add_meta("inputs")
        assert x.size == 3 * F and x.shape == (3, F)
        assert isinstance(fx.add_meta("beta2").value, float)
        assert fx.run.stats["checkpoint"] == "store_all"
    finally:
        fx.close()


@pytest.mark.parametrize("checkpoint,extra", [
    ("replay", {"checkpoint_slots": 6}), ("binomial", {"checkpoint_slots": 3}),
    ("auto", {"checkpoint_budget_bytes": 8000})], ids=["replay", "binomial", "auto"])
def test_checkpoint_schedules_bit_identical(checkpoint, extra):
    """All schedules give bit-identical metagradients (docs/api.md)."""
    cfg = CONFIGS[1]
    ref = Fixture(cfg)
    try:
        g_ref = flat(_lr_grad(ref))
    finally:
        ref.close()
    fx = Fixture(cfg)
    try:
        g, st = _lr_grad_of_run(fx, cfg, checkpoint, B, **extra)
        assert g == g_ref
        assert st["reverse_steps"] == T
        assert st["checkpoint"] in ("store_all", "replay", "binomial")
        if checkpoint != "auto":
            assert st["checkpoint"] == checkpoint and st["steps_recomputed"] > 0
    finally:
        fx.close()


def _lr_grad_of_run(fx, cfg, checkpoint, batch_size, **extra):
    """dφ/dη of a new run on fx's model and data, and the run's stats."""
    run = mg.Run(fx.model, fx.train, validation=fx.val, steps=T, batch_size=batch_size,
                 shuffle_seed=5, lr=cfg.lr, momentum=cfg.momentum,
                 weight_decay=cfg.weight_decay, checkpoint=checkpoint, **extra)
    with run:
        lr = run.add_meta("lr_schedule")
        run.train()
        run.reverse()
        return flat(lr.grad), run.stats


def _lr_grad(fx):
    lr = fx.add_meta("lr_schedule")
    fx.run.train()
    fx.run.reverse()
    return lr.grad


def test_forward_memo_stats():
    """Batch 2: every slot carries a forward memo (docs/checkpointing.md);
    store-all serves every reverse step from it, binomial most restores, and
    the metagradients stay bit-identical."""
    cfg = CONFIGS[1]
    fx = Fixture(cfg)
    grads, stats = {}, {}
    try:
        for checkpoint, extra in (("store_all", {}), ("binomial", {"checkpoint_slots": 3})):
            grads[checkpoint], stats[checkpoint] = _lr_grad_of_run(fx, cfg, checkpoint, 2,
                                                                   **extra)
    finally:
        fx.close()
    memo = 2 * (8 + 8 + C) * 8  # batch × dense outputs × f64
    for st in stats.values():
        assert st["memo_bytes"] == memo
    assert stats["store_all"]["memo_hits"] == T
    assert 0 < stats["binomial"]["memo_hits"] <= T + stats["binomial"]["steps_recomputed"]
    assert grads["binomial"] == grads["store_all"]
    assert any(g != 0 for g in grads["store_all"])
