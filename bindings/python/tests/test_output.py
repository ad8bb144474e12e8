"""Run.set_output and plain runs (validation=None): the caller's Python
function against the built-in loss, the signed loss, errors."""

import math

import numpy as np
import pytest

import metagrad as mg

N, NV, F, C, T, B = 24, 16, 6, 3, 12, 6


def _world(validation=True):
    ctx = mg.Context(dtype="f64", seed=7)
    rng = np.random.default_rng(3)
    xt, xv = rng.uniform(-1.5, 1.5, (N, F)), rng.uniform(-1.5, 1.5, (NV, F))
    yt, yv = rng.integers(0, C, N).astype(np.int32), (np.arange(NV) * 7 % C).astype(np.int32)
    train = mg.Dataset(ctx, xt, labels=yt, num_classes=C)
    val = mg.Dataset(ctx, xv, labels=yv, num_classes=C)
    model = mg.Model(ctx, (F,))
    model.dense(C)  # o = W x + b, W [C, F] row-major, then b
    run = mg.Run(model, train, validation=val if validation else None, steps=T,
                 batch_size=B, optimizer="adam", lr=0.05, weight_decay=0.01, eps_root=1e-4)
    return ctx, run, val, xv, yv


def _ce(theta, xv, yv):
    """Mean cross-entropy of the linear model and its gradient, in numpy."""
    W, b = theta[:C * F].reshape(C, F), theta[C * F:]
    o = xv @ W.T + b
    m = o.max(axis=1, keepdims=True)
    p = np.exp(o - m)
    z = p.sum(axis=1, keepdims=True)
    value = float(np.mean(m[:, 0] + np.log(z[:, 0]) - o[np.arange(len(yv)), yv]))
    d = p / z
    d[np.arange(len(yv)), yv] -= 1
    d /= len(yv)
    return value, np.concatenate([(d.T @ xv).ravel(), d.sum(axis=0)])


def _metagrads(run):
    lr = run.add_meta("lr_schedule")
    phi = run.train()
    run.reverse()
    return phi, np.asarray(lr.grad)


def test_callable_matches_builtin():
    _, run, _, xv, yv = _world()
    phi0, g0 = _metagrads(run)
    _, plain, _, xv, yv = _world(validation=False)
    calls = []

    def fn(theta):
        calls.append(theta.flags.writeable)
        return _ce(np.array(theta), xv, yv)

    plain.set_output(fn=fn)
    phi1, g1 = _metagrads(plain)
    assert calls and not any(calls)  # θ is a read-only view
    # the same function summed in another order: agreement to rounding
    assert abs(phi1 - phi0) <= 1e-14 * abs(phi0)
    assert np.max(np.abs(g1 - g0)) <= 1e-12 * np.max(np.abs(g0))


def test_plain_run_and_signed_loss():
    _, run, val, _, _ = _world(validation=False)
    lr = run.add_meta("lr_schedule")
    assert math.isnan(run.train())
    with pytest.raises(mg.OrderError, match="set_output"):
        run.reverse()
    run.set_output([{"dataset": val}])
    phi = run.train()
    run.reverse()
    g = np.asarray(lr.grad)
    run.set_output([{"dataset": val, "weight": -1.0}])
    assert run.train() == -phi  # a sign flip rounds nothing
    run.reverse()
    assert np.array_equal(np.asarray(lr.grad), -g)
    run.set_output([{"dataset": val, "rows": [0, 3, 5], "classes": [0, 1]},
                    {"dataset": val, "kind": "margin", "weight": 0.5}], last_k=3)
    assert math.isfinite(run.train())
    run.reverse()


def test_errors():
    _, run, val, _, _ = _world()
    with pytest.raises(mg.InvalidError, match="rows"):
        run.set_output([{"dataset": val, "rows": [0, NV]}])
    with pytest.raises(mg.InvalidError, match="last_k"):
        run.set_output([{"dataset": val}], last_k=T + 1)
    with pytest.raises(TypeError):
        run.set_output([{"dataset": val, "wieght": 1}])

    def broken(theta):
        raise ValueError("no output today")

    run.set_output(fn=broken)
    with pytest.raises(mg.CallbackError) as info:
        run.train()
    assert isinstance(info.value.__cause__, ValueError)
    run.set_output()  # back to the validation loss
    assert math.isfinite(run.train())
