"""Metagradient descent (metagrad/mgd.h) through Python: a step is the
documented update of the metagradient computed by hand, the best iterate
and progress callable behave as in tests/test_mgd.c, exceptions raised by
the progress callable come back out of run(), bad input raises, settings
change between steps (all or nothing) and read back."""

import gc

import pytest

import metagrad as mg

np = pytest.importorskip("numpy")

N, NV, F, C, T, B = 64, 48, 5, 3, 20, 8


def data(ctx, n, seed, flip=0.0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, F))
    score = np.stack([x[:, 0] + x[:, 1], x[:, 2] - x[:, 3], x[:, 4]], axis=1)
    y = score.argmax(1).astype(np.int32)
    bad = int(flip * n)
    y[:bad] = (y[:bad] + 1) % C  # the first rows mislabelled
    return mg.Dataset(ctx, x, labels=y, num_classes=C)


class Fx:
    def __init__(self, flip=0.0):
        self.ctx = mg.Context(dtype="f64")
        self.model = mg.Model(self.ctx, F).dense(16).activation("tanh").dense(C)
        self.train = data(self.ctx, N, 3, flip)
        self.val = data(self.ctx, NV, 4)
        self.heldout = data(self.ctx, 20, 5)
        self.run = mg.Run(self.model, self.train, validation=self.val, steps=T, batch_size=B,
                          lr=0.05, momentum=0.5)

    def grad_at(self, meta):
        self.run.train()
        self.run.reverse()
        return meta.grad

    def close(self):
        for h in (self.run, self.train, self.val, self.heldout, self.model, self.ctx):
            h.close()


@pytest.fixture
def fx():
    f = Fx()
    yield f
    f.close()


def test_sgd_sign_adam_steps_by_hand(fx):
    lr = fx.run.add_meta("lr_schedule")
    z = lr.value
    phi0 = fx.run.train()
    g = fx.grad_at(lr)
    with mg.MGD(lr, method="sgd", lr=0.01) as mgd:
        assert mgd.step() == phi0
        np.testing.assert_allclose(lr.value, z - 0.01 * g, rtol=1e-15, atol=0)
        assert mgd.steps == 1
    lr.value = z
    with mg.MGD(lr, method="sign", lr=0.001) as mgd:
        mgd.step()
        np.testing.assert_allclose(lr.value, z - 0.001 * np.sign(g), rtol=1e-15, atol=0)
    lr.value = z
    with mg.MGD(lr, method=mg.MgdMethod.ADAM, lr=0.002, beta1=0.8, beta2=0.99, eps=1e-6) as mgd:
        mgd.step()
        m, v = 0.2 * g, 0.01 * g * g
        want = z - 0.002 * (m / 0.2) / (np.sqrt(v / 0.01) + 1e-6)
        np.testing.assert_allclose(lr.value, want, rtol=1e-14, atol=0)
    lr.value = z
    with mg.MGD(lr, method="sgd", lr=2.0, projection="box", lo=0.04, hi=0.06) as mgd:
        mgd.step()
        np.testing.assert_allclose(lr.value, np.clip(z - 2.0 * g, 0.04, 0.06), rtol=1e-15)
    lr.value = z
    with mg.MGD(lr, method="sgd", lr=0.01, maximize=True) as mgd:
        mgd.step()
        np.testing.assert_allclose(lr.value, z + 0.01 * g, rtol=1e-15, atol=0)


def test_basis_chain_rule(fx):
    lr = fx.run.add_meta("lr_schedule")
    J = 3
    pos = np.arange(T) / (T - 1) * (J - 1)
    basis = np.maximum(0, 1 - np.abs(pos[:, None] - np.arange(J)[None, :]))
    c = np.full(J, 0.05)
    g = fx.grad_at(lr)  # at z = basis · c = 0.05 everywhere
    with mg.MGD(lr, method="sgd", lr=0.01, basis=basis, coefficients=c) as mgd:
        mgd.step()
        np.testing.assert_allclose(lr.value, basis @ (c - 0.01 * basis.T @ g), atol=1e-15)
        best, _ = mgd.best()
        np.testing.assert_allclose(best, 0.05, atol=1e-15)
    with pytest.raises(mg.ShapeError):
        mg.MGD(lr, basis=basis[:-1], coefficients=c)
    with pytest.raises(mg.ShapeError):
        mg.MGD(lr, basis=basis, coefficients=c[:-1])
    with pytest.raises(mg.InvalidError, match="together"):
        mg.MGD(lr, coefficients=c)


def test_run_progress_and_best(fx):
    lr = fx.run.add_meta("lr_schedule")
    seen = []

    def progress(step, phi, score, seconds):
        seen.append((step, phi, score))
        assert seconds >= 0
        return False

    mgd = mg.MGD(lr, method="adam", lr=0.02, projection="box", lo=0, hi=1, progress=progress,
                 heldout=fx.heldout)
    del progress
    gc.collect()  # the callable lives on through the MGD
    mgd.run(6)
    assert [s for s, _, _ in seen] == list(range(6)) and mgd.steps == 6
    best, score = mgd.best()
    assert best.shape == (T,) and score <= min(s for _, _, s in seen)
    lr.value = best
    fx.run.train()
    assert fx.run.evaluate(fx.heldout)[0] == score  # scored on the held-out set
    assert seen[0][2] != seen[0][1]
    mgd.close()
    mgd.close()
    with pytest.raises(mg.ClosedError):
        mgd.step()


def test_progress_cancel(fx):
    lr = fx.run.add_meta("lr_schedule")
    calls = []
    mgd = mg.MGD(lr, progress=lambda *a: calls.append(a) or len(calls) >= 3)
    with pytest.raises(mg.CancelledError, match="cancelled"):
        mgd.run(10)
    assert len(calls) == 3 and mgd.steps == 3


def test_progress_exception_propagates(fx):
    lr = fx.run.add_meta("lr_schedule")

    class Boom(Exception):
        pass

    def progress(step, phi, score, seconds):
        if step == 1:
            raise Boom("step %d" % step)

    mgd = mg.MGD(lr, method="sgd", lr=0.001, progress=progress)
    with pytest.raises(Boom, match="step 1") as e:
        mgd.run(5)
    assert e.value.__traceback__ is not None
    assert mgd.steps == 2                 # stopped right after the failing call
    mgd.run(0)                            # usable afterwards; nothing pending
    assert mgd.steps == 2
    interrupt = mg.MGD(lr, progress=lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        interrupt.run(2)


def test_data_selection_counts():
    fx = Fx(flip=0.25)
    try:
        counts = fx.run.add_meta("data_weights")
        pool = fx.run.add_meta("pool_weights", step=T - 5)
        mgd = mg.MGD(counts, method="sign", lr=1, mask_prob=0.5, seed=9,
                     projection="nonnegative", gradient_from=pool)
        mgd.run(6)
        c = counts.value
        assert (c >= 0).all() and (c == np.floor(c)).all()
        assert c[:N // 4].mean() < c[N // 4:].mean()
        ex = mg.MGD(counts, method="exchange", lr=1, exchange=4)
        counts.value = np.ones(N)
        ex.run(3)
        assert counts.value.sum() == N
    finally:
        fx.close()


def test_scalar_meta(fx):
    wd = fx.run.add_meta("weight_decay")
    g = fx.grad_at(wd)
    with mg.MGD(wd, method="sgd", lr=0.1, projection="nonnegative") as mgd:
        mgd.step()
        assert wd.value == pytest.approx(max(0.0 - 0.1 * g, 0.0), abs=1e-17)
        best, score = mgd.best()
        assert isinstance(best, float) and best == 0.0


def test_bad_input(fx):
    lr = fx.run.add_meta("lr_schedule")
    wd = fx.run.add_meta("weight_decay")
    with pytest.raises(mg.InvalidError, match="choose one of"):
        mg.MGD(lr, method="lbfgs")
    with pytest.raises(mg.InvalidError, match="choose one of"):
        mg.MGD(lr, projection="simplex")
    with pytest.raises(mg.InvalidError) as e:
        mg.MGD(lr, lr=-1.0)
    assert e.value.function == "mgrad_mgd_set_real" and e.value.message == fx.ctx.last_error
    with pytest.raises(mg.InvalidError, match="gradient_from"):
        mg.MGD(lr, gradient_from=wd)
    with pytest.raises(mg.InvalidError):
        mg.MGD(lr, projection="top_k", k=T + 1)
    with pytest.raises(TypeError):
        mg.MGD(lr, progress=3)
    with pytest.raises(TypeError):
        mg.MGD("lr")
    with pytest.raises(TypeError):
        mg.MGD(lr, heldout=fx.run)
    with pytest.raises(mg.DtypeError):
        mg.MGD(lr, k=1.5)
    mgd = mg.MGD(lr)
    with pytest.raises(mg.OrderError):
        mgd.best()
    with pytest.raises(mg.InvalidError):
        mgd.run(-1)
    with mg.Context(dtype="f64") as other:
        foreign = data(other, 8, 1)
        with pytest.raises(mg.InvalidError, match="another context"):
            mg.MGD(lr, heldout=foreign)


def test_lifetimes(fx):
    lr = fx.run.add_meta("lr_schedule")
    held = data(fx.ctx, 10, 7)
    mgd = mg.MGD(lr, method="sgd", lr=0.001, heldout=held)
    mgd.step()
    held.close()
    with pytest.raises(mg.ClosedError, match="heldout"):
        mgd.step()  # C holds a plain pointer to it: refused, never dangling
    mgd2 = mg.MGD(lr, method="sgd", lr=0.001)
    fx.run.close()
    with pytest.raises(mg.ClosedError):
        mgd2.step()
    mgd2.close()  # after its run: fine
    mgd.close()


def test_mgd_keeps_meta_and_run_alive():
    f = Fx()
    lr = f.run.add_meta("lr_schedule")
    mgd = mg.MGD(lr, method="sgd", lr=0.001)
    del lr
    f.run = None  # drop the fixture's references; the MGD holds its Meta and Run
    gc.collect()
    mgd.step()
    assert mgd.meta.run.steps == T
    mgd.close()
    f.run = mgd.meta.run
    f.close()


def test_destroy_exactly_once(monkeypatch, fx):
    seen = []
    real = mg.MGD._destroy
    monkeypatch.setattr(mg.MGD, "_destroy",
                        staticmethod(lambda p: (seen.append(p.value), real(p))))
    lr = fx.run.add_meta("lr_schedule")
    mgd = mg.MGD(lr)
    ptr = mgd._ptr.value
    mgd.close()
    mgd.close()
    mgd.__del__()
    del mgd
    gc.collect()
    assert seen.count(ptr) == 1


def test_set_between_steps(fx):
    lr = fx.run.add_meta("lr_schedule")
    z0 = lr.value
    with mg.MGD(lr, method="sgd", lr=0.01) as mgd:
        mgd.step()
        z1 = lr.value
        g1 = fx.grad_at(lr)  # at z1: the step left the run trained at z0, so train again
        mgd.set(lr=0.02)
        assert mgd.get("lr") == 0.02
        mgd.step()
        np.testing.assert_allclose(lr.value, z1 - 0.02 * g1, rtol=1e-15, atol=0)
        assert mgd.steps == 2 and not np.array_equal(z0, z1)


def test_set_is_all_or_nothing(fx):
    lr = fx.run.add_meta("lr_schedule")
    mgd = mg.MGD(lr, method="adam", lr=0.02, projection="box", lo=0.0, hi=1.0)
    # documented defaults, from the optimiser and from param_info
    want = {"mask_prob": 1.0, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "exchange": 1}
    for name, value in want.items():
        assert mgd.param_info(name)["default"] == value
    assert (mgd.get("beta1"), mgd.get("beta2"), mgd.get("eps"), mgd.get("seed")) == \
        (0.9, 0.999, 1e-8, 0)
    assert mgd.get("method") == mg.MgdMethod.ADAM and mgd.get("maximize") is False
    info = mgd.param_info("beta1")
    assert info["min"] == 0 and info["max"] == 1 and info["max_open"] and info["applies"]
    assert not mgd.param_info("mask_prob")["applies"]
    with pytest.raises(mg.InvalidError, match="beta2"):
        mgd.set(lr=0.5, beta1=0.5, hi=0.7, beta2=1.0)  # beta2 out of [0, 1)
    assert (mgd.get("lr"), mgd.get("beta1"), mgd.get("hi")) == (0.02, 0.9, 1.0)
    held = data(fx.ctx, 10, 7)
    wrong = mg.Dataset(fx.ctx, np.zeros((4, F + 1)), labels=np.zeros(4, np.int32),
                       num_classes=C)
    with pytest.raises(mg.ShapeError):
        mgd.set(lr=0.5, projection="fixed_sum", sum=2.0, heldout=wrong)
    assert mgd.get("lr") == 0.02 and mgd.get("projection") == mg.Projection.BOX
    assert mgd.get("heldout") is None
    mgd.set(hi=0.5, heldout=held, seed=2 ** 64 - 1)  # one parameter of the projection
    assert (mgd.get("lo"), mgd.get("hi"), mgd.get("seed")) == (0.0, 0.5, 2 ** 64 - 1)
    assert mgd.get("heldout") is held
    with pytest.raises(mg.InvalidError, match="sum"):
        mgd.set(sum=1.0)  # not a parameter of 'box'
    with pytest.raises(mg.InvalidError, match="ADAM|SIGN"):
        mg.MGD(lr, method="sign", beta1=0.5)  # a setting the method does not read
    with pytest.raises(mg.InvalidError):
        mgd.get("momentum")
    mgd.step()
    best, _ = mgd.best()
    mgd.set(heldout=None)  # another way to score: the best iterate is forgotten
    with pytest.raises(mg.OrderError):
        mgd.best()
    with pytest.raises(mg.OrderError):
        mgd.set(basis=np.ones((T, 1)), coefficients=[0.05])  # after the first step
    mgd.close()
    wrong.close()
    held.close()


def test_meta_step_schedule(fx):
    lr = fx.run.add_meta("lr_schedule")
    with mg.MGD(lr, method="sgd", lr=0.01, lr_schedule="step",
                lr_schedule_params=(1, 0.5)) as mgd:
        assert mgd.get("lr_schedule") == mg._lib.MgdLrSchedule.STEP
        assert mgd.get("lr_schedule_params") == [1.0, 0.5]
        assert mgd.get("step_size") == 0.01
        mgd.step()
        assert mgd.get("step_size") == 0.005
        # a new lr keeps the schedule's position (the step count)
        mgd.set(lr=0.04)
        assert mgd.get("step_size") == 0.02
        mgd.set(lr_schedule="cosine")  # defaults (100, 0)
        assert mgd.get("lr_schedule_params") == [100.0, 0.0]
        with pytest.raises(mg.InvalidError):
            mgd.set(lr_schedule="inv_sqrt", lr_schedule_params=(0,))
        assert mgd.get("lr_schedule") == mg._lib.MgdLrSchedule.COSINE


def test_keep_drop_exact_size():
    f = Fx(flip=0.25)
    try:
        w = f.run.add_meta("data_weights")
        pool = f.run.add_meta("pool_weights", step=T - 5)
        z = np.zeros(N)
        z[:40:2] = 1
        w.value = z
        with mg.MGD(w, method="keep_drop", exchange=4, gradient_from=pool) as mgd:
            swapped = 0
            for _ in range(5):
                before = w.value
                mgd.step()
                after = w.value
                assert set(np.unique(after)) <= {0.0, 1.0}  # a set: no example twice
                assert after.sum() == 20
                swapped += int((before != after).sum()) // 2
            assert swapped > 0
            with pytest.raises(mg.InvalidError):
                mgd.set(lr=1.0)
            with pytest.raises(mg.InvalidError):
                mgd.set(projection="box")
        # EXCHANGE with a box keeps its budget
        w.value = z
        with mg.MGD(w, method="exchange", lr=1, exchange=6, projection="box") as mgd:
            mgd.run(3)
            v = w.value
            assert v.sum() == 20 and v.max() == 1
            with pytest.raises(mg.InvalidError):
                mgd.set(projection="top_k", k=3)
    finally:
        f.close()


def test_best_orders(fx):
    lr = fx.run.add_meta("lr_schedule")
    with mg.MGD(lr, method="sgd") as mgd:
        with pytest.raises(mg.InvalidError):
            mgd.set(best_orders=2)  # needs reshuffle
        mgd.set(reshuffle=True, best_orders=2)
        assert mgd.get("best_orders") == 2
        scores = []
        z0 = lr.value
        mgd.set(progress=lambda step, phi, score, sec: scores.append(score))
        mgd.run(1)
        lr.value = z0
        mgd.run(1)
        assert scores[0] == scores[1]  # the same iterate, the same fixed orders
        mgd.set(reshuffle=False, best_orders=0)
        assert mgd.get("reshuffle") is False


def test_maps_exp_and_families(fx):
    lr = fx.run.add_meta("lr_schedule")
    with mg.MGD(lr, method="adam", lr=0.05, map="exp") as mgd:
        assert mgd.get("map") == mg._lib.MgdMap.EXP
        mgd.run(2)
        assert (lr.value > 0).all()
    with mg.MGD(lr, method="sgd", lr=1e-4, map="one_cycle",
                map_coefficients=[0.1, 0.01, 0.001, 0.3]) as mgd:
        mgd.step()
        v = lr.value
        assert v.shape == (T,) and v[0] < v[int(0.3 * (T - 1))] and v[-1] < v[6]
    with pytest.raises(mg.InvalidError):
        mg.MGD(lr, method="sgd", map="cosine", map_coefficients=[0.1, 0.0, 1.5])


def test_trust_check():
    a, b = Fx(), Fx()
    try:
        ctx32 = mg.Context(dtype="f32")
        model32 = mg.Model(ctx32, F).dense(16).activation("tanh").dense(C)
        tr = data(ctx32, N, 3)
        va = data(ctx32, NV, 4)
        run32 = mg.Run(model32, tr, validation=va, steps=T, batch_size=B, lr=0.05,
                       momentum=0.5)
        lr = a.run.add_meta("lr_schedule")
        lr32 = run32.add_meta("lr_schedule")
        r = mg.MGD.trust_check(lr, lr32, seed=3)
        assert set(r) >= {"h", "S", "rel_diff", "cosine", "trusted"}
        assert abs(r["h"] - 0.1 * np.linalg.norm(lr.value)) <= 1e-15 * r["h"]
        assert r["smooth_ok"] == (r["S"] >= 0.6)
        assert r["precision_ok"] == (r["rel_diff"] <= 0.2)
        assert r["trusted"] == (r["smooth_ok"] and r["precision_ok"])
        r1 = mg.MGD.trust_check(lr)
        assert np.isnan(r1["rel_diff"]) and r1["precision_ok"]
        with pytest.raises(mg.InvalidError):
            mg.MGD.trust_check(lr, lr)
        for h in (run32, tr, va, model32, ctx32):
            h.close()
    finally:
        a.close()
        b.close()
