"""Handle lifetimes: each C object is freed exactly once, in any order of
closing, and thousands of handles created and dropped do not grow memory."""

import gc
import os

import pytest

import metagrad as mg
from _common import C, F


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def data(n=8):
    x = [[((i * 7 + j * 3) % 11) / 11.0 - 0.5 for j in range(F)] for i in range(n)]
    y = [i % C for i in range(n)]
    return x, y


def one_cycle(i):
    """Every kind of handle, closed in one of three ways."""
    x, y = data()
    ctx = mg.Context(dtype="f64" if i % 2 else "f32", seed=i)
    m = mg.Model(ctx, F).dense(4).activation("relu").dense(C)
    tr = mg.Dataset(ctx, x, labels=y, num_classes=C)
    run = mg.Run(m, tr, validation=tr, steps=2, batch_size=4, momentum=0.5)
    lr = run.add_meta("lr_schedule")
    w = run.add_meta("data_weights")
    run.train()
    run.reverse()
    lr.grad, w.grad, run.stats  # noqa: B018
    mode = i % 3
    if mode == 0:  # explicit, children first
        run.close()
        tr.close()
        m.close()
        ctx.close()
    elif mode == 1:  # explicit, context first
        ctx.close()
        m.close()
        tr.close()
        run.close()
    else:  # dropped: __del__ does it
        del ctx, m, tr, run, lr, w


def test_stress_no_growth():
    for i in range(300):  # warm up allocator and caches
        one_cycle(i)
    gc.collect()
    before = rss_bytes()
    for i in range(3000):
        one_cycle(i)
    gc.collect()
    grown = rss_bytes() - before
    print("RSS growth over 3000 cycles (18000 handles): %d KiB" % (grown // 1024))
    assert grown < 8 * 1024 * 1024


def test_many_live_then_dropped():
    with mg.Context() as ctx:
        x, y = data()
        before = ctx.memory()[0]
        models = [mg.Model(ctx, F).dense(16) for _ in range(2000)]
        sets = [mg.Dataset(ctx, x, labels=y) for _ in range(2000)]
        assert ctx.memory()[0] > before
        del models, sets
        gc.collect()
        assert ctx.memory()[0] == before


def test_context_memory_returns_to_baseline():
    with mg.Context(dtype="f64") as ctx:
        base = ctx.memory()[0]
        x, y = data()
        with mg.Model(ctx, F).dense(4).dense(C) as m, \
                mg.Dataset(ctx, x, labels=y) as tr:
            with mg.Run(m, tr, validation=tr, steps=3, batch_size=2) as run:
                run.add_meta("initial_params")
                run.train()
                run.reverse()
                assert ctx.memory()[0] > base
        assert ctx.memory()[0] == base
        assert ctx.memory()[1] > base


class _Counter:
    """Wraps a C destroy function; counts the calls per pointer."""

    def __init__(self, fn):
        self.fn, self.seen = fn, []

    def __call__(self, ptr):
        self.seen.append(ptr.value if hasattr(ptr, "value") else ptr)
        self.fn(ptr)

    def count(self, ptr):
        return self.seen.count(ptr.value)


@pytest.mark.parametrize("cls", [mg.Model, mg.Dataset, mg.Run])
def test_destroy_exactly_once(monkeypatch, cls):
    counter = _Counter(cls._destroy)
    monkeypatch.setattr(cls, "_destroy", staticmethod(counter))
    ctx = mg.Context()
    x, y = data()
    m = mg.Model(ctx, F).dense(C)
    tr = mg.Dataset(ctx, x, labels=y)
    run = mg.Run(m, tr, validation=tr, steps=1, batch_size=1)
    obj = {mg.Model: m, mg.Dataset: tr, mg.Run: run}[cls]
    ptr = obj._ptr
    obj.close()
    obj.close()
    obj.__del__()
    empty = cls.__new__(cls)  # a handle whose constructor never ran
    empty.close()
    del obj, m, tr, run, empty
    gc.collect()
    assert counter.count(ptr) == 1
    ctx.close()


def test_context_destroyed_once_after_last_child(monkeypatch):
    from metagrad import _api
    counter = _Counter(_api._ContextCore._destroy)
    monkeypatch.setattr(_api._ContextCore, "_destroy", staticmethod(counter))
    ctx = mg.Context()
    ptr = ctx._ptr
    m = mg.Model(ctx, F).dense(2)
    ctx.close()
    assert counter.count(ptr) == 0  # the model still uses it
    ctx.close()
    m.close()
    assert counter.count(ptr) == 1
    del m, ctx
    gc.collect()
    assert counter.count(ptr) == 1


def test_meta_keeps_run_alive():
    ctx = mg.Context()
    x, y = data()
    m = mg.Model(ctx, F).dense(C)
    tr = mg.Dataset(ctx, x, labels=y)
    run = mg.Run(m, tr, validation=tr, steps=2, batch_size=2)
    lr = run.add_meta("lr_schedule")
    del run, m, tr, ctx
    gc.collect()
    assert lr.run.train() > 0  # the Meta held its Run, which held the context
    lr.run.reverse()
    assert len(lr.grad) == 2


def test_failed_constructor_releases_context(monkeypatch):
    from metagrad import _api
    counter = _Counter(_api._ContextCore._destroy)
    monkeypatch.setattr(_api._ContextCore, "_destroy", staticmethod(counter))
    ctx = mg.Context()
    ptr = ctx._ptr
    with pytest.raises(mg.InvalidError):
        mg.Model(ctx, (0,))
    x, y = data()
    with pytest.raises(mg.NonFiniteError):
        mg.Dataset(ctx, [[float("nan")] * F], labels=[0])
    ctx.close()
    assert counter.count(ptr) == 1


def test_log_callback_kept_alive():
    seen = []

    def make():
        return mg.Context(log=lambda level, msg: seen.append(level), log_level="error")

    ctx = make()
    gc.collect()  # the lambda is referenced only through the Context
    with pytest.raises(mg.InvalidError):
        mg.Model(ctx, F).dense(0)
    assert seen == ["error"]
    ctx.close()


def test_handles_alive_at_interpreter_exit(tmp_path):
    """Handles left open (in globals and in a reference cycle, context closed
    first) are freed or abandoned at exit without errors."""
    import subprocess
    import sys
    script = tmp_path / "exit.py"
    script.write_text(
        "import metagrad as mg\n"
        "ctx = mg.Context(log=lambda level, msg: None)\n"
        "m = mg.Model(ctx, 3).dense(2)\n"
        "ds = mg.Dataset(ctx, [[1.0, 2.0, 3.0], [0.0, 1.0, 2.0]], labels=[0, 1])\n"
        "run = mg.Run(m, ds, validation=ds, steps=2, batch_size=1)\n"
        "meta = run.add_meta('lr_schedule')\n"
        "class Cycle: pass\n"
        "c = Cycle(); c.self = c; c.run = run; c.meta = meta\n"
        "ctx.close()\n"
        "run.train(); run.reverse()\n"
        "mgd = mg.MGD(meta, method='sgd', lr=0.01, progress=lambda *a: False)\n"
        "mgd.run(1)\n"
        "c.mgd = mgd\n"
        "ctx2 = mg.Context(dtype='f64')\n"
        "ds2 = mg.Dataset(ctx2, [[1.0, 2.0, 3.0], [0.0, 1.0, 2.0]], labels=[0, 1])\n"
        "def lg(theta, x, y, t, w, s, g, ell):\n"
        "    return 0.5 * s * sum(wi * sum(v * v for v in theta) for wi in w)\n"
        "cbm = mg.CallbackModel(8, 3, 2, lg)\n"
        "cbrun = mg.Run.from_callbacks(ctx2, cbm, [0.1] * 8, ds2, validation=ds2, steps=1,\n"
        "                              batch_size=1)\n"
        "cbrun.train()\n"
        "c.cbrun = cbrun\n")
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-X", "dev", str(script)], cwd=str(tmp_path),
                         env=dict(os.environ, PYTHONPATH=pkg), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stderr == "", out.stderr
