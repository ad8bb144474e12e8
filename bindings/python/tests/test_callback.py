"""Runs whose model is Python code (metagrad/callback.h): tests/test_callback.c
through the bindings.

The built-in MLP 6-8-tanh-3 with softmax cross-entropy is re-implemented
below in numpy, with its exact forward-over-reverse product; as callbacks it
reproduces the built-in model's metagradients of every applicable kind to
1e-10 (f64, relative to the largest entry).  Also: approximate mode, f32
buffers, exceptions raised in callbacks, lifetimes, bad input."""

import gc

import pytest

import metagrad as mg
from _common import C, F, NTRAIN, T, B, make_data

np = pytest.importorskip("numpy")

H = 8
OW1, OB1 = 0, H * F
OW2 = OB1 + H
OB2 = OW2 + C * H
P = OB2 + C


def unpack(th):
    return (th[OW1:OB1].reshape(H, F), th[OB1:OW2], th[OW2:OB2].reshape(C, H), th[OB2:P])


class NumpyMLP:
    """h = tanh(W1 x + b1), o = W2 h + b2, ℓ = logsumexp(o) − o_y."""

    def __init__(self):
        self.loss_calls = self.hvp_calls = 0
        self.fail_loss_at = self.fail_hvp_at = 0
        self.dtypes = set()

    def _forward(self, th, X, y):
        W1, b1, W2, b2 = unpack(th)
        Hh = np.tanh(X @ W1.T + b1)
        O = Hh @ W2.T + b2
        m = O.max(1, keepdims=True)
        lz = m[:, 0] + np.log(np.exp(O - m).sum(1))
        Pr = np.exp(O - lz[:, None])
        Y = np.zeros_like(O)
        Y[np.arange(len(y)), y] = 1
        return Hh, O, Pr, Y, lz - O[np.arange(len(y)), y]

    def loss_grad(self, theta, inputs, labels, targets, weights, scale, grad, example_losses):
        self.loss_calls += 1
        self.dtypes.add(theta.dtype)
        if self.loss_calls == self.fail_loss_at:
            raise ValueError("loss_grad failed on purpose")
        assert targets is None and not inputs.flags.writeable
        th, X = theta.astype(np.float64), inputs.astype(np.float64)
        Hh, O, Pr, Y, ell = self._forward(th, X, labels)
        if example_losses is not None:
            example_losses[:] = ell
        if grad is not None:
            W1, b1, W2, b2 = unpack(th)
            dout = (scale * weights)[:, None] * (Pr - Y)
            da = (dout @ W2) * (1 - Hh * Hh)
            grad[OW2:OB2] += (dout.T @ Hh).ravel()
            grad[OB2:P] += dout.sum(0)
            grad[OW1:OB1] += (da.T @ X).ravel()
            grad[OB1:OW2] += da.sum(0)
        return scale * float(np.dot(weights, ell))

    def hvp(self, theta, u, inputs, labels, targets, weights, scale, hu, loss_tangents,
            input_grad_tangents):
        self.hvp_calls += 1
        if self.hvp_calls == self.fail_hvp_at:
            raise RuntimeError("hvp failed on purpose")
        th, X = theta.astype(np.float64), inputs.astype(np.float64)
        W1, b1, W2, b2 = unpack(th)
        U1, v1, U2, v2 = unpack(u.astype(np.float64))
        Hh, O, Pr, Y, _ = self._forward(th, X, labels)
        hd = (1 - Hh * Hh) * (X @ U1.T + v1)
        od = Hh @ U2.T + v2 + hd @ W2.T
        pod = (Pr * od).sum(1)
        loss_tangents[:] = ((Pr - Y) * od).sum(1)
        if hu is None and input_grad_tangents is None:
            return
        cw = (scale * weights)[:, None]
        dout = cw * (Pr - Y)
        doutd = cw * Pr * (od - pod[:, None])
        s = dout @ W2
        sd = dout @ U2 + doutd @ W2
        da = s * (1 - Hh * Hh)
        dad = sd * (1 - Hh * Hh) - s * 2 * Hh * hd
        if hu is not None:
            hu[OW2:OB2] += (doutd.T @ Hh + dout.T @ hd).ravel()
            hu[OB2:P] += doutd.sum(0)
            hu[OW1:OB1] += (dad.T @ X).ravel()
            hu[OB1:OW2] += dad.sum(0)
        if input_grad_tangents is not None:
            input_grad_tangents[:] = da @ U1 + dad @ W1

    def outputs(self, theta, inputs, out):
        W1, b1, W2, b2 = unpack(theta.astype(np.float64))
        out[:] = np.tanh(inputs @ W1.T + b1) @ W2.T + b2

    def model(self, exact=True, input_tangents=True):
        return mg.CallbackModel(P, F, C, self.loss_grad, hvp=self.hvp if exact else None,
                                outputs=self.outputs, input_tangents=input_tangents and exact)


CONFIGS = {
    "momentum": dict(optimizer="sgd", lr=0.2, momentum=0.9, weight_decay=0.01),
    "nesterov": dict(optimizer="sgd", lr=0.2, momentum=0.8, nesterov=True, weight_decay=0.01),
    "adam": dict(optimizer="adam", lr=0.02, beta1=0.9, weight_decay=0.01, eps_root=1e-4),
    "adamw": dict(optimizer="adamw", lr=0.02, beta1=0.9, weight_decay=0.05, eps_root=1e-4),
}


class Fx:
    """variant: 'builtin', 'exact' or 'approx'."""

    def __init__(self, cfg, variant, dtype="f64", mlp=None, **extra):
        self.ctx = mg.Context(dtype=dtype, seed=7)
        self.model = mg.Model(self.ctx, F).dense(H).activation("tanh").dense(C)
        self.train = make_data(self.ctx, NTRAIN, 11, "cross_entropy")
        self.val = make_data(self.ctx, 16, 23, "cross_entropy")
        self.pool = make_data(self.ctx, 10, 37, "cross_entropy")
        opts = dict(CONFIGS[cfg], validation=self.val, steps=T, batch_size=B, shuffle_seed=5)
        opts.update(extra)
        self.mlp = mlp or NumpyMLP()
        if variant == "builtin":
            self.run = mg.Run(self.model, self.train, **opts)
        else:
            self.run = mg.Run.from_callbacks(self.ctx, self.mlp.model(variant == "exact"),
                                             self.model.params, self.train, **opts)

    def add_all(self, cfg, inputs=True):
        metas = {"data_weights": self.run.add_meta("data_weights"),
                 "pool_weights": self.run.add_meta("pool_weights", step=7, pool=self.pool),
                 "lr_schedule": self.run.add_meta("lr_schedule"),
                 "weight_decay": self.run.add_meta("weight_decay"),
                 "momentum": self.run.add_meta("momentum"),
                 "initial_params": self.run.add_meta("initial_params")}
        if inputs:
            metas["inputs"] = self.run.add_meta("inputs", rows=[3, 17, 8])
        if CONFIGS[cfg]["optimizer"] != "sgd":
            metas["beta2"] = self.run.add_meta("beta2")
        return metas

    def close(self):
        for h in (self.run, self.train, self.val, self.pool, self.model, self.ctx):
            h.close()


def max_rel(a, b):
    a, b = np.atleast_1d(a), np.atleast_1d(b)
    s = np.abs(b).max()
    return np.abs(a - b).max() / s if s > 0 else np.abs(a - b).max()


def metagrads(cfg, variant, inputs=True, dtype="f64"):
    fx = Fx(cfg, variant, dtype)
    try:
        metas = fx.add_all(cfg, inputs)
        phi = fx.run.train()
        fx.run.reverse()
        return phi, {k: m.grad for k, m in metas.items()}, fx.run.stats, \
            fx.run.evaluate(fx.val), fx.run.params
    finally:
        fx.close()


@pytest.mark.parametrize("cfg", list(CONFIGS))
def test_python_mlp_reproduces_builtin(cfg):
    phi_a, ga, st_a, ev_a, th_a = metagrads(cfg, "builtin")
    phi_b, gb, st_b, ev_b, th_b = metagrads(cfg, "exact")
    assert abs(phi_a - phi_b) <= 1e-12 * abs(phi_a)
    assert max_rel(th_b, th_a) <= 1e-12
    assert ev_b[1] == ev_a[1] and abs(ev_b[0] - ev_a[0]) <= 1e-12  # accuracy via outputs()
    worst = 0.0
    for kind in ga:
        err = max_rel(gb[kind], ga[kind])
        print("callback %-8s %-14s max rel diff %.2e" % (cfg, kind, err))
        assert err <= 1e-10, (cfg, kind, err)
        worst = max(worst, err)
    assert st_a["approximate"] is False and st_b["approximate"] is False


def test_approximate_mode():
    _, exact, _, _, _ = metagrads("adam", "exact", inputs=False)
    _, approx, st, _, _ = metagrads("adam", "approx", inputs=False)
    assert st["approximate"] is True
    for kind in exact:
        assert max_rel(approx[kind], exact[kind]) <= 1e-8, kind
    fx = Fx("adam", "approx")
    try:
        with pytest.raises(mg.UnsupportedError):
            fx.run.add_meta("inputs")
        with pytest.raises(mg.UnsupportedError):
            fx.run.add_meta("soft_labels")
    finally:
        fx.close()


def test_f32_buffers():
    mlp = NumpyMLP()
    fx = Fx("momentum", "exact", dtype="f32", mlp=mlp)
    try:
        lr = fx.run.add_meta("lr_schedule")
        fx.run.train()
        fx.run.reverse()
        g32 = lr.grad
    finally:
        fx.close()
    assert mlp.dtypes == {np.dtype(np.float32)}
    _, g64, _, _, _ = metagrads("momentum", "builtin")
    assert max_rel(g32, g64["lr_schedule"]) < 1e-3


def test_loss_grad_exception_becomes_callback_error():
    fx = Fx("momentum", "exact")
    ref = Fx("momentum", "exact")
    try:
        fx.mlp.fail_loss_at = 3
        with pytest.raises(mg.CallbackError) as e:
            fx.run.train()
        assert isinstance(e.value.__cause__, ValueError)
        assert "on purpose" in str(e.value.__cause__)
        assert "loss_grad" in e.value.message and e.value.function == "mgrad_run_train"
        assert e.value.message == fx.ctx.last_error
        # the run stays usable and exact
        w, wr = fx.run.add_meta("data_weights"), ref.run.add_meta("data_weights")
        assert fx.run.train() == ref.run.train()
        fx.mlp.fail_hvp_at = fx.mlp.hvp_calls + 2
        with pytest.raises(mg.CallbackError) as e:
            fx.run.reverse()
        assert isinstance(e.value.__cause__, RuntimeError) and "hvp" in e.value.message
        assert fx.run.train() == ref.run.train()  # the next train starts afresh
        fx.run.reverse()
        ref.run.reverse()
        assert max_rel(w.grad, wr.grad) == 0
    finally:
        fx.close()
        ref.close()


def test_bad_callback_results():
    """A callable returning garbage fails like one that raises, never crashes."""
    def bad_loss(theta, inputs, labels, targets, weights, scale, grad, example_losses):
        return "not a number"

    def bad_outputs(theta, inputs, out):
        out[:] = np.zeros((2, 2))  # wrong shape: broadcast error

    with mg.Context(dtype="f64") as ctx:
        tr = make_data(ctx, 8, 1, "cross_entropy")
        model = mg.CallbackModel(P, F, C, bad_loss, outputs=bad_outputs)
        run = mg.Run.from_callbacks(ctx, model, np.zeros(P), tr, validation=tr, steps=2,
                                    batch_size=4)
        with pytest.raises(mg.CallbackError) as e:
            run.train()
        assert isinstance(e.value.__cause__, ValueError)
        run.close()

        def interrupted(*args):
            raise KeyboardInterrupt

        run = mg.Run.from_callbacks(ctx, mg.CallbackModel(P, F, C, interrupted), np.zeros(P),
                                    tr, validation=tr, steps=2, batch_size=4)
        with pytest.raises(KeyboardInterrupt):
            run.train()
        run.close()


def test_callback_error_through_mgd():
    fx = Fx("momentum", "exact")
    try:
        lr = fx.run.add_meta("lr_schedule")
        mgd = mg.MGD(lr, method="sgd", lr=0.01)
        mgd.step()
        fx.mlp.fail_loss_at = fx.mlp.loss_calls + 1
        with pytest.raises(mg.CallbackError) as e:
            mgd.step()
        assert isinstance(e.value.__cause__, ValueError)
        mgd.step()
        assert mgd.steps == 2
        mgd.close()
    finally:
        fx.close()


def test_callables_kept_alive():
    def make(ctx, tr):
        mlp = NumpyMLP()
        # bound methods of an object referenced from nowhere else
        model = mg.CallbackModel(P, F, C, mlp.loss_grad, hvp=mlp.hvp)
        theta = mg.Model(ctx, F).dense(H).activation("tanh").dense(C).params
        return mg.Run.from_callbacks(ctx, model, theta, tr, validation=tr, steps=3, batch_size=4,
                                     lr=0.1)

    with mg.Context(dtype="f64") as ctx:
        tr = make_data(ctx, 8, 1, "cross_entropy")
        run = make(ctx, tr)
        gc.collect()
        w = run.add_meta("data_weights")
        assert np.isfinite(run.train())
        run.reverse()
        assert w.grad.shape == (8,)
        loss, acc = run.evaluate(tr)
        assert np.isfinite(loss) and np.isnan(acc)  # no outputs callable
        del run, w
        gc.collect()


def test_input_shape_any_rank():
    """A 4-D input_shape holding F values gives the 1-D model's bits (the
    library sees only F; the callables get [rows, 1, 2, 3, 1] views)."""
    mlp = NumpyMLP()
    shape = (1, 2, 3, 1)

    def flat(a):
        return None if a is None else a.reshape(a.shape[0], -1)  # a view: writes go through

    def loss_grad(theta, inputs, labels, targets, weights, scale, grad, example_losses):
        assert inputs.shape[1:] == shape
        return mlp.loss_grad(theta, flat(inputs), labels, targets, weights, scale, grad,
                             example_losses)

    def hvp(theta, u, inputs, labels, targets, weights, scale, hu, loss_tangents, igt):
        assert inputs.shape[1:] == shape and (igt is None or igt.shape[1:] == shape)
        mlp.hvp(theta, u, flat(inputs), labels, targets, weights, scale, hu, loss_tangents,
                flat(igt))

    def outputs(theta, inputs, out):
        mlp.outputs(theta, flat(inputs), out)

    class FourD:
        def model(self, exact):
            return mg.CallbackModel(P, shape, C, loss_grad, hvp=hvp, outputs=outputs,
                                    input_tangents=True)

    results = []
    for fx in (Fx("adam", "exact"), Fx("adam", "exact", mlp=FourD())):
        try:
            metas = fx.add_all("adam")
            phi = fx.run.train()
            fx.run.reverse()
            results.append((phi, {k: m.grad for k, m in metas.items()}, fx.run.evaluate(fx.val)))
        finally:
            fx.close()
    (phi1, g1, ev1), (phi4, g4, ev4) = results
    assert phi4 == phi1 and ev4 == ev1
    for kind in g1:
        assert np.array_equal(g4[kind], g1[kind]), kind
    assert "(1, 2, 3, 1)" in repr(FourD().model(True))


def test_bad_input():
    with mg.Context(dtype="f64") as ctx:
        tr = make_data(ctx, 8, 1, "cross_entropy")
        mlp = NumpyMLP()
        good = mlp.model()
        with pytest.raises(TypeError):
            mg.CallbackModel(P, F, C, None)
        with pytest.raises(TypeError):
            mg.CallbackModel(P, F, C, mlp.loss_grad, hvp=3)
        with pytest.raises(mg.InvalidError):
            mg.CallbackModel(P, (), C, mlp.loss_grad)
        with pytest.raises(mg.InvalidError):
            mg.CallbackModel(P, "six", C, mlp.loss_grad)
        with pytest.raises(mg.InvalidError):  # C: a dimension < 1
            mg.Run.from_callbacks(ctx, mg.CallbackModel(P, (F, 0), C, mlp.loss_grad),
                                  np.zeros(P), tr, validation=tr, steps=2, batch_size=2)
        with pytest.raises(mg.SizeError):
            mg.Run.from_callbacks(ctx, good, np.zeros(P - 1), tr, validation=tr, steps=2,
                                  batch_size=2)
        with pytest.raises(mg.NonFiniteError):
            mg.Run.from_callbacks(ctx, good, np.full(P, np.nan), tr, validation=tr, steps=2,
                                  batch_size=2)
        with pytest.raises(mg.InvalidError, match="label_smoothing"):
            mg.Run.from_callbacks(ctx, good, np.zeros(P), tr, validation=tr, steps=2,
                                  batch_size=2, label_smoothing=0.1)
        with pytest.raises(mg.ShapeError):
            mg.Run.from_callbacks(ctx, mg.CallbackModel(P, F + 1, C, mlp.loss_grad),
                                  np.zeros(P), tr, validation=tr, steps=2, batch_size=2)
        with pytest.raises(TypeError):
            mg.Run.from_callbacks(ctx, mlp.loss_grad, np.zeros(P), tr, validation=tr, steps=2,
                                  batch_size=2)
        with pytest.raises(TypeError):
            mg.Run.from_callbacks(ctx, good, np.zeros(P), tr, validation=tr, steps=2,
                                  batch_size=2, learning_rate=0.1)
        with mg.Context(dtype="f64") as other:
            with pytest.raises(mg.InvalidError, match="another context"):
                mg.Run.from_callbacks(other, good, np.zeros(P), tr, validation=tr, steps=2,
                                      batch_size=2)
        run = mg.Run.from_callbacks(ctx, good, np.zeros(P), tr, validation=tr, steps=2,
                                    batch_size=2)
        assert run.num_params == P and mlp.loss_calls == 0  # creating calls nothing
        run.close()
