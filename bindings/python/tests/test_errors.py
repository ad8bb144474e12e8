"""Bad input raises the right exception, with the library's message, and
never crashes: wrong dtypes and shapes, non-contiguous arrays, NaN, closed
handles, calls in the wrong order."""

import gc

import pytest

import metagrad as mg
from _common import CONFIGS, C, F, NTRAIN, T, Fixture

np = pytest.importorskip("numpy")


@pytest.fixture
def ctx():
    with mg.Context(dtype="f64", seed=3) as c:
        yield c


def small(ctx, n=8):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, F))
    y = (np.arange(n) % C).astype(np.int32)
    return x, y


def model(ctx):
    return mg.Model(ctx, F).dense(5).activation("tanh").dense(C)


def run_of(ctx, **kw):
    x, y = small(ctx)
    tr = mg.Dataset(ctx, x, labels=y, num_classes=C)
    va = mg.Dataset(ctx, x, labels=y, num_classes=C)
    opts = dict(validation=va, steps=4, batch_size=2)
    opts.update(kw)
    return mg.Run(model(ctx), tr, **opts)


def test_hierarchy():
    for cls in (mg.NullError, mg.InvalidError, mg.SizeError, mg.ShapeError, mg.OrderError,
                mg.NonFiniteError, mg.NoMemoryError, mg.DtypeError, mg.BudgetError,
                mg.FileIOError, mg.CallbackError, mg.CancelledError, mg.UnsupportedError,
                mg.FormatError, mg.VersionError, mg.InternalError, mg.ClosedError):
        assert issubclass(cls, mg.MetagradError)
        assert isinstance(cls.status, int) and cls.status < 0
    statuses = {cls.status for cls in mg.MetagradError.__subclasses__()}
    assert statuses == set(range(-16, 0))
    assert issubclass(mg.ClosedError, mg.OrderError)
    assert mg.status_string(-5)


def test_error_carries_library_message(ctx):
    m = model(ctx)
    with pytest.raises(mg.ShapeError) as e:
        m.residual(1)  # node 1 has 5 values, the output 3
    assert e.value.status == mg.Status.ERR_SHAPE
    assert e.value.function == "mgrad_model_add_residual"
    assert "differ" in e.value.message and e.value.message == ctx.last_error
    with pytest.raises(mg.InvalidError) as e:
        m.residual(99)
    assert e.value.status == -2
    with pytest.raises(mg.InvalidError):
        m.dense(0)


def test_unknown_names(ctx):
    m = mg.Model(ctx, F)
    with pytest.raises(mg.InvalidError, match="choose one of"):
        m.activation("swish")
    with pytest.raises(mg.InvalidError):
        m.dense(3, init="he")
    with pytest.raises(mg.InvalidError):
        run_of(ctx, optimizer="lbfgs")
    with pytest.raises(mg.DtypeError):
        mg.Context(dtype="f16")
    with pytest.raises(mg.InvalidError):
        run_of(ctx).add_meta("learning_rate")


def test_wrong_dtype(ctx):
    x, y = small(ctx)
    with pytest.raises(mg.DtypeError):
        mg.Dataset(ctx, x.astype(np.complex128), labels=y)
    with pytest.raises(mg.DtypeError):
        mg.Dataset(ctx, np.array([["a"] * F] * 4), labels=y[:4])
    with pytest.raises(mg.DtypeError):
        mg.Dataset(ctx, x, labels=y.astype(np.float64))
    with pytest.raises(mg.DtypeError):
        mg.Dataset(ctx, x.astype(object), labels=y)
    with pytest.raises(mg.DtypeError):
        mg.Model(ctx, F).dense(2.5)
    with pytest.raises(mg.DtypeError):
        mg.Model(ctx, F).scale("big")
    # float32 and integer inputs are fine (no copy / converted)
    assert mg.Dataset(ctx, x.astype(np.float32), labels=y).size == len(x)
    assert mg.Dataset(ctx, (x * 10).astype(np.int16), labels=y.astype(np.uint8)).size == len(x)


def test_wrong_shape(ctx):
    x, y = small(ctx)
    with pytest.raises(mg.ShapeError):
        mg.Dataset(ctx, x.ravel(), labels=y)  # no example dimension
    with pytest.raises(mg.ShapeError):
        mg.Dataset(ctx, x.reshape(8, 1, 1, 2, 3), labels=y)  # 4 example dims
    with pytest.raises(mg.ShapeError):
        mg.Dataset(ctx, x, labels=y[:5])
    with pytest.raises(mg.ShapeError):
        mg.Dataset(ctx, x, weights=np.ones(3))
    with pytest.raises(mg.ShapeError):
        mg.Dataset(ctx, x, targets=np.ones((3, 2)))
    with pytest.raises(mg.ShapeError):
        mg.Dataset(ctx, [[1.0, 2.0], [3.0]], labels=[0, 1])  # ragged
    m = model(ctx)
    with pytest.raises(mg.ShapeError):
        m.params = np.zeros(m.num_params + 1)
    with pytest.raises(mg.InvalidError):
        mg.Model(ctx, (1, 2, 3, 4))
    # model and data that do not fit: found by C
    tr = mg.Dataset(ctx, np.ascontiguousarray(x[:, :4]), labels=y)
    with pytest.raises(mg.ShapeError):
        mg.Run(m, tr, validation=tr, steps=2, batch_size=2)


def test_bad_sizes_never_reach_c(ctx):
    with pytest.raises(mg.SizeError):
        run_of(ctx, lr_schedule=[0.1, 0.1])  # steps = 4
    with pytest.raises(mg.SizeError):
        run_of(ctx, batches=np.zeros((4, 3), dtype=np.int64))  # batch_size = 2
    with pytest.raises(mg.SizeError):
        run_of(ctx, batches=np.zeros(7, dtype=np.int64))
    with pytest.raises(mg.DtypeError):
        run_of(ctx, batches=np.zeros((4, 2)))
    with pytest.raises(mg.InvalidError):
        run_of(ctx, batches=np.full((4, 2), 99, dtype=np.int64))  # row out of range: C
    r = run_of(ctx, batches=np.zeros((4, 2), dtype=np.int64), lr_schedule=np.full(4, 0.05))
    assert np.isfinite(r.train())
    lr = r.add_meta("lr_schedule")
    assert np.allclose(lr.value, 0.05)
    with pytest.raises(mg.ShapeError):
        lr.value = np.zeros(5)
    with pytest.raises(mg.ShapeError):
        r.add_meta("inputs", rows=[[0, 1]])


def test_non_contiguous(ctx):
    x, y = small(ctx, 16)
    with pytest.raises(mg.InvalidError, match="contiguous"):
        mg.Dataset(ctx, x[::2], labels=y[::2])
    with pytest.raises(mg.InvalidError, match="contiguous"):
        mg.Dataset(ctx, np.asfortranarray(x), labels=y)
    with pytest.raises(mg.InvalidError, match="contiguous"):
        mg.Dataset(ctx, x[:8], labels=(np.arange(16, dtype=np.int32) % C)[::2])
    m = model(ctx)
    with pytest.raises(mg.InvalidError):
        m.params = np.zeros(2 * m.num_params)[::2]
    r = run_of(ctx)
    lr = r.add_meta("lr_schedule")
    with pytest.raises(mg.InvalidError):
        lr.value = np.zeros(8)[::2]
    assert isinstance(mg.InvalidError("x"), ValueError)


def test_nan(ctx):
    x, y = small(ctx)
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(mg.NonFiniteError, match="example 3"):
        mg.Dataset(ctx, bad, labels=y)
    with pytest.raises(mg.NonFiniteError):
        mg.Dataset(ctx, x, weights=np.full(len(x), np.inf))
    m = model(ctx)
    p = m.params
    p[0] = np.nan
    with pytest.raises(mg.NonFiniteError):
        m.params = p
    with pytest.raises(mg.NonFiniteError):
        m.scale(float("nan"))
    r = run_of(ctx)
    lr = r.add_meta("lr_schedule")
    with pytest.raises(mg.NonFiniteError):
        lr.value = np.full(4, np.nan)
    wd = r.add_meta("weight_decay")
    with pytest.raises(mg.InvalidError):
        wd.value = -1.0
    with pytest.raises(mg.NonFiniteError):
        wd.value = float("inf")


def test_divergence(ctx):
    fx = Fixture(CONFIGS[0]._replace(lr=1e300))
    try:
        with pytest.raises(mg.NonFiniteError, match="step "):
            fx.run.train()
        with pytest.raises(mg.OrderError):
            fx.run.reverse()
    finally:
        fx.close()


def test_bad_run_input_surfaces(ctx):
    """Refused input reaches Python as the right exception with the library's
    message, and the failed call changes nothing."""
    with pytest.raises(mg.InvalidError, match=r"options\.lr = -0\.1: a learning rate must be >= 0"):
        run_of(ctx, lr=-0.1)
    r = run_of(ctx)
    lr = r.add_meta("lr_schedule")
    r.train()
    before = lr.value.copy()
    bad = before.copy()
    bad[2] = -0.5
    with pytest.raises(mg.InvalidError, match="LR_SCHEDULE value 2"):
        lr.value = bad
    assert np.array_equal(lr.value, before)
    r.reverse()  # the failed set left the trajectory valid
    r.add_meta("weight_decay")
    with pytest.raises(mg.OrderError, match="mgrad_run_add_meta") as e:
        r.reverse()
    assert "mgrad_meta_set_value" not in e.value.message
    x, y = small(ctx)
    tr = mg.Dataset(ctx, x, labels=y, num_classes=C)
    bn = mg.Model(ctx, F).dense(4).batch_norm().dense(C)
    with pytest.raises(mg.InvalidError, match="more than 1 value per channel"):
        mg.Run(bn, tr, validation=tr, steps=2, batch_size=1)


def test_wrong_order(ctx):
    x, y = small(ctx)
    tr = mg.Dataset(ctx, x, labels=y, num_classes=C)
    va = mg.Dataset(ctx, x, labels=y, num_classes=C)
    empty = mg.Model(ctx, F)
    with pytest.raises(mg.OrderError):
        mg.Run(empty, tr, validation=va, steps=2, batch_size=2)  # empty model
    unlabelled = mg.Dataset(ctx, x)
    with pytest.raises(mg.OrderError):
        mg.Run(model(ctx), unlabelled, validation=va, steps=2, batch_size=2)
    r = mg.Run(model(ctx), tr, validation=va, steps=4, batch_size=2)
    lr = r.add_meta("lr_schedule")
    with pytest.raises(mg.OrderError):
        r.reverse()  # before train
    with pytest.raises(mg.OrderError):
        r.params
    with pytest.raises(mg.OrderError):
        lr.grad  # before reverse
    with pytest.raises(mg.OrderError):
        tr.set_weights(np.ones(len(x)))  # in use by a run: read-only
    r.train()
    lr.value = lr.value * 0.5  # invalidates the trajectory
    with pytest.raises(mg.OrderError):
        r.reverse()
    r.train()
    r.reverse()
    assert len(lr.grad) == 4
    with pytest.raises(mg.InvalidError):
        r.add_meta("lr_schedule")  # registered once


def test_closed_handles(ctx):
    x, y = small(ctx)
    m = model(ctx)
    tr = mg.Dataset(ctx, x, labels=y, num_classes=C)
    r = mg.Run(m, tr, validation=tr, steps=4, batch_size=2)
    lr = r.add_meta("lr_schedule")
    m.close()
    m.close()  # idempotent
    with pytest.raises(mg.ClosedError):
        m.dense(3)
    with pytest.raises(mg.ClosedError):
        m.num_params
    with pytest.raises(mg.ClosedError):
        mg.Run(m, tr, validation=tr, steps=4, batch_size=2)
    assert r.train() > 0  # the run copied the model
    tr.close()
    with pytest.raises(mg.ClosedError):
        r.evaluate(tr)
    with pytest.raises(mg.ClosedError):
        len(tr)
    r.reverse()  # the run kept the datasets
    r.close()
    for f in (r.train, r.reverse, lambda: r.stats, lambda: lr.grad, lambda: lr.value,
              lambda: r.add_meta("momentum")):
        with pytest.raises(mg.ClosedError):
            f()
    with pytest.raises(mg.ClosedError):
        lr.value = [0.1] * 4
    with pytest.raises(mg.OrderError):  # ClosedError is an OrderError
        r.train()
    with pytest.raises(mg.ClosedError):
        with r:
            pass


def test_context_closed_first():
    msgs = []
    ctx = mg.Context(dtype="f64", log=lambda lvl, msg: msgs.append((lvl, msg)))
    m = model(ctx)
    ctx.close()
    ctx.close()
    with pytest.raises(mg.ClosedError):
        mg.Model(ctx, F)
    with pytest.raises(mg.ClosedError):
        ctx.last_error
    gc.collect()
    # the model keeps the C context, its messages and its log callback alive
    with pytest.raises(mg.ShapeError, match="differ"):
        m.residual(1)
    assert msgs and msgs[-1][0] == "error" and "differ" in msgs[-1][1]
    m.close()


def test_mixed_contexts():
    with mg.Context() as a, mg.Context() as b:
        x = np.zeros((4, F))
        ds = mg.Dataset(b, x, labels=[0, 1, 2, 0])
        with pytest.raises(mg.InvalidError, match="different contexts"):
            mg.Run(model(a), ds, validation=ds, steps=1, batch_size=1)


def test_wrong_types(ctx):
    with pytest.raises(TypeError):
        mg.Model("ctx", F)
    with pytest.raises(TypeError):
        mg.Run(model(ctx), "train", validation=None, steps=1, batch_size=1)
    with pytest.raises(TypeError):
        mg.Context(log=42)
    with pytest.raises(mg.InvalidError):
        mg.Context(threads=-1)
    with pytest.raises(mg.InvalidError):
        mg.Context(seed=-1)


def test_log_callback_exceptions_swallowed():
    def bad(level, msg):
        raise RuntimeError("boom")
    with mg.Context(log=bad) as ctx:
        with pytest.raises(mg.InvalidError):
            mg.Model(ctx, F).dense(-1)
