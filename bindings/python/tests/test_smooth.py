"""Smoothness diagnostics and the Hessian at θ_T (metagrad/smooth.h), and
per-example losses (mgrad_run_example_losses), through Python: each against
what it is defined to be, computed here from other calls."""

import pytest

import metagrad as mg
from _common import C, F, make_data

np = pytest.importorskip("numpy")


class Fx:
    def __init__(self, dtype="f64", hidden=4, **opts):
        self.ctx = mg.Context(dtype=dtype, seed=3)
        self.model = mg.Model(self.ctx, F).dense(hidden).activation("tanh").dense(C)
        self.train = make_data(self.ctx, 24, 11, "cross_entropy")
        self.val = make_data(self.ctx, 16, 23, "cross_entropy")
        kw = dict(steps=8, batch_size=6, lr=0.3, momentum=0.5, shuffle_seed=1)
        kw.update(opts)
        self.run = mg.Run(self.model, self.train, validation=self.val, **kw)

    def close(self):
        for h in (self.run, self.train, self.val, self.model, self.ctx):
            h.close()


@pytest.fixture
def fx():
    f = Fx()
    yield f
    f.close()


def test_hvp_spectrum_lanczos_agree(fx):
    with pytest.raises(mg.OrderError):
        fx.run.hvp(np.zeros(fx.run.num_params))
    fx.run.train()
    n = fx.run.num_params
    H = np.stack([fx.run.hvp(e) for e in np.eye(n)], axis=1)
    assert np.abs(H - H.T).max() <= 1e-12 * np.abs(H).max()  # symmetric
    u = np.random.default_rng(0).standard_normal(n)
    np.testing.assert_allclose(fx.run.hvp(u), H @ u, atol=1e-12 * np.abs(H).max() * n)
    np.testing.assert_array_equal(fx.run.hvp(u.astype(np.float32)),
                                  fx.run.hvp(u.astype(np.float32).astype(np.float64)))
    lam = fx.run.hessian_spectrum()
    assert lam.shape == (n,) and (np.diff(lam) >= 0).all()
    scale = np.abs(lam).max()
    np.testing.assert_allclose(lam, np.linalg.eigvalsh((H + H.T) / 2), atol=1e-10 * scale)
    lo, hi = fx.run.hessian_lanczos(n, seed=4)
    assert abs(lo - lam[0]) <= 1e-8 * scale and abs(hi - lam[-1]) <= 1e-8 * scale
    lo5, hi5 = fx.run.hessian_lanczos(5)
    assert lam[0] - 1e-12 <= lo5 <= hi5 <= lam[-1] + 1e-12
    with pytest.raises(mg.ShapeError):
        fx.run.hvp(np.zeros(n + 1))
    with pytest.raises(mg.NonFiniteError):
        fx.run.hvp(np.full(n, np.nan))
    with pytest.raises(mg.InvalidError):
        fx.run.hessian_lanczos(0)


def test_spectrum_refuses_large_models():
    f = Fx(hidden=600, steps=1)  # 6*600 + 600 + 600*3 + 3 = 6003 > 4096 parameters
    try:
        f.run.train()
        with pytest.raises(mg.UnsupportedError):
            f.run.hessian_spectrum()
        lo, hi = f.run.hessian_lanczos(4)
        assert lo <= hi
    finally:
        f.close()


def test_metasmoothness_by_hand(fx):
    lr = fx.run.add_meta("lr_schedule")
    z = lr.value
    v = np.random.default_rng(1).standard_normal(z.size)
    h = 0.01
    S, curv = lr.metasmoothness(h, direction=v)
    np.testing.assert_array_equal(lr.value, z)  # z again, and trained at z
    theta_end = fx.run.params
    thetas, phis = [], []
    for k in (0, 1, 2):
        lr.value = z + k * h * v
        phis.append(fx.run.train())
        thetas.append(fx.run.params)
    lr.value = z
    np.testing.assert_array_equal(theta_end, thetas[0])
    d = np.abs(thetas[2] - thetas[0])
    want_S = np.sum(d * np.sign(thetas[1] - thetas[0]) * np.sign(thetas[2] - thetas[1])) / d.sum()
    want_curv = abs(phis[2] - 2 * phis[1] + phis[0]) / h ** 2
    assert S == pytest.approx(want_S, abs=1e-12)
    assert curv == pytest.approx(want_curv, rel=1e-9, abs=1e-9)
    S1, c1 = lr.metasmoothness(h, seed=5)  # a random unit direction
    assert -1 <= S1 <= 1 and c1 >= 0
    assert lr.metasmoothness(h, seed=5) == (S1, c1)
    wd = fx.run.add_meta("weight_decay")
    S2, _ = wd.metasmoothness(1e-3, direction=1.0)  # scalar kinds take a float
    assert -1 <= S2 <= 1
    with pytest.raises(mg.InvalidError):
        lr.metasmoothness(0.0)
    with pytest.raises(mg.InvalidError):
        lr.metasmoothness(h, direction=np.zeros(z.size))
    with pytest.raises(mg.ShapeError):
        lr.metasmoothness(h, direction=np.ones(z.size + 1))
    mom = fx.run.add_meta("momentum")
    with pytest.raises(mg.InvalidError):
        mom.metasmoothness(0.5, direction=1.0)  # μ + 2h >= 1


def test_example_losses(fx):
    with pytest.raises(mg.OrderError):
        fx.run.example_losses(fx.val)
    fx.run.train()
    ell = fx.run.example_losses(fx.val)
    assert ell.shape == (len(fx.val),) and (ell > 0).all()
    loss, _ = fx.run.evaluate(fx.val)
    assert ell.mean() == pytest.approx(loss, rel=1e-12)
    assert fx.run.example_losses(fx.train).shape == (24,)
    wrong = mg.Dataset(fx.ctx, np.zeros((3, F + 1)), labels=[0, 1, 2])
    with pytest.raises(mg.ShapeError):
        fx.run.example_losses(wrong)
    with pytest.raises(TypeError):
        fx.run.example_losses(np.zeros((3, F)))


def test_callback_run_hvp_matches_builtin():
    from test_callback import P, NumpyMLP
    f = Fx(hidden=8)
    try:
        mlp = NumpyMLP()
        run = mg.Run.from_callbacks(f.ctx, mlp.model(), f.model.params, f.train,
                                    validation=f.val, steps=8, batch_size=6, lr=0.3,
                                    momentum=0.5, shuffle_seed=1)
        with run:
            assert run.train() == pytest.approx(f.run.train(), rel=1e-13)
            u = np.random.default_rng(2).standard_normal(P)
            hu = f.run.hvp(u)
            np.testing.assert_allclose(run.hvp(u), hu, atol=1e-12 * np.abs(hu).max())
            np.testing.assert_allclose(run.example_losses(f.val), f.run.example_losses(f.val),
                                       rtol=1e-12)
    finally:
        f.close()
