"""metagrad.torch: torch.nn.Modules as callback models (skipped without torch).

- A torch MLP 6-8-tanh-3 through the bridge reproduces the built-in MLP's
  metagradients (same θ0, mapped through the documented layouts) to 1e-10
  relative in f64, for every kind a callback run supports, on SGD,
  momentum, Nesterov, Adam, AdamW and squared error; SOFT_LABELS is refused.
- A small CNN (conv, batch norm with batch statistics, tanh, pooling,
  dense) through the bridge agrees with an unrolled create_graph
  computation in PyTorch (1e-10) and with central finite differences of
  whole runs (1e-6).
- Checkpoint schedules give bits identical to store-all through the bridge.
- The callables themselves against finite differences (tied and frozen
  parameters, a custom loss); f32 contexts; purity checks and bad input;
  importing metagrad does not import torch.
"""

import os
import subprocess
import sys

import pytest

import metagrad as mg
from _common import C, F, NTRAIN, T, B, make_data

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")
from metagrad.torch import TorchModel  # noqa: E402  (after the skip)

nn = torch.nn
H = 8


def max_rel(a, b):
    a, b = np.atleast_1d(np.asarray(a, dtype=np.float64)), np.atleast_1d(np.asarray(b, dtype=np.float64))
    s = np.abs(b).max()
    return np.abs(a - b).max() / s if s > 0 else np.abs(a - b).max()


# ---------------------------------------------------------------- the MLP against the built-in

CONFIGS = {
    "sgd": dict(optimizer="sgd", lr=0.3, weight_decay=0.01),
    "momentum": dict(optimizer="sgd", lr=0.2, momentum=0.9, weight_decay=0.01),
    "nesterov": dict(optimizer="sgd", lr=0.2, momentum=0.8, nesterov=True, weight_decay=0.01),
    "adam": dict(optimizer="adam", lr=0.02, beta1=0.9, weight_decay=0.01, eps_root=1e-4),
    "adamw": dict(optimizer="adamw", lr=0.02, beta1=0.9, weight_decay=0.05, eps_root=1e-4),
    "squared": dict(optimizer="sgd", lr=0.1, momentum=0.5, weight_decay=0.01,
                    loss="squared_error"),
}


def torch_mlp(theta):
    """The built-in dense(H)-tanh-dense(C) in torch, θ mapped by hand: the
    built-in dense layer stores W [units, in] row-major, then b (docs/api.md),
    as nn.Linear's weight and bias."""
    net = nn.Sequential(nn.Linear(F, H), nn.Tanh(), nn.Linear(H, C)).double()
    th = torch.tensor(np.asarray(theta, dtype=np.float64))
    o = 0
    with torch.no_grad():
        for p, shape in ((net[0].weight, (H, F)), (net[0].bias, (H,)), (net[2].weight, (C, H)),
                         (net[2].bias, (C,))):
            n = int(np.prod(shape))
            p.copy_(th[o:o + n].reshape(shape))
            o += n
    return net


def mlp_metagrads(cfg, bridge):
    opts = dict(CONFIGS[cfg])
    loss = opts.get("loss", "cross_entropy")
    with mg.Context(dtype="f64", seed=7) as ctx:
        model = mg.Model(ctx, F).dense(H).activation("tanh").dense(C)
        train = make_data(ctx, NTRAIN, 11, loss)
        val = make_data(ctx, 16, 23, loss)
        pool = make_data(ctx, 10, 37, loss)
        opts.update(validation=val, steps=T, batch_size=B, shuffle_seed=5)
        if bridge:
            tm = TorchModel(torch_mlp(model.params), F, loss=loss)
            assert np.array_equal(tm.theta0, model.params)  # the layouts agree
            assert [s.name for s in tm.layout] == ["0.weight", "0.bias", "2.weight", "2.bias"]
            run = tm.run(ctx, train, **opts)
        else:
            run = mg.Run(model, train, **opts)
        metas = {"data_weights": run.add_meta("data_weights"),
                 "pool_weights": run.add_meta("pool_weights", step=7, pool=pool),
                 "inputs": run.add_meta("inputs", rows=[3, 17, 8]),
                 "lr_schedule": run.add_meta("lr_schedule"),
                 "weight_decay": run.add_meta("weight_decay"),
                 "momentum": run.add_meta("momentum"),
                 "initial_params": run.add_meta("initial_params")}
        if opts["optimizer"] != "sgd":
            metas["beta2"] = run.add_meta("beta2")
        if bridge:
            # the loss is inside the module's callbacks: the library cannot
            # differentiate with respect to the targets (docs/callbacks.md)
            with pytest.raises(mg.UnsupportedError):
                run.add_meta("soft_labels")
        phi = run.train()
        run.reverse()
        out = (phi, {k: m.grad for k, m in metas.items()}, run.params, run.evaluate(val))
        for h in (run, train, val, pool, model):
            h.close()
        return out


@pytest.mark.parametrize("cfg", list(CONFIGS))
def test_torch_mlp_reproduces_builtin(cfg):
    phi_a, ga, th_a, ev_a = mlp_metagrads(cfg, False)
    phi_b, gb, th_b, ev_b = mlp_metagrads(cfg, True)
    assert abs(phi_b - phi_a) <= 1e-12 * abs(phi_a)
    assert max_rel(th_b, th_a) <= 1e-12
    assert abs(ev_b[0] - ev_a[0]) <= 1e-12 * abs(ev_a[0])
    if cfg != "squared":
        assert ev_b[1] == ev_a[1]  # accuracy from the bridge's outputs()
    for kind in ga:
        err = max_rel(gb[kind], ga[kind])
        print("torch %-9s %-14s max rel diff %.2e" % (cfg, kind, err))
        assert np.abs(ga[kind]).max() > 0, kind  # a comparison of zeros proves nothing
        assert err <= 1e-10, (cfg, kind, err)


# ---------------------------------------------------------------- a CNN

CN, CV, CT, CB, LR, MU, WD = 16, 8, 5, 4, 0.1, 0.9, 0.01
SHAPE = (1, 5, 5)


def cnn():
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1),
                         nn.BatchNorm2d(3, track_running_stats=False), nn.Tanh(),
                         nn.AvgPool2d(2), nn.Flatten(), nn.Linear(12, C)).double()


def cnn_data():
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, (CN,) + SHAPE)
    y = rng.integers(0, C, CN).astype(np.int32)
    xv = rng.uniform(-1, 1, (CV,) + SHAPE)
    yv = rng.integers(0, C, CV).astype(np.int32)
    batches = np.concatenate([rng.permutation(CN)[:CB] for _ in range(CT)]).astype(np.int64)
    return x, y, xv, yv, batches


class CnnRun:
    def __init__(self, checkpoint="store_all", steps=CT, **extra):
        self.x, self.y, self.xv, self.yv, self.batches = cnn_data()
        self.ctx = mg.Context(dtype="f64")
        self.train = mg.Dataset(self.ctx, self.x, labels=self.y, num_classes=C)
        self.val = mg.Dataset(self.ctx, self.xv, labels=self.yv, num_classes=C)
        self.tm = TorchModel(cnn(), SHAPE)
        batches = self.batches if steps == CT else \
            np.random.default_rng(9).integers(0, CN, steps * CB).astype(np.int64)
        self.run = self.tm.run(self.ctx, self.train, validation=self.val, steps=steps,
                               batch_size=CB, lr=LR, momentum=MU, weight_decay=WD,
                               batches=batches, checkpoint=checkpoint, **extra)
        self.metas = {"data_weights": self.run.add_meta("data_weights"),
                      "lr_schedule": self.run.add_meta("lr_schedule"),
                      "inputs": self.run.add_meta("inputs"),
                      "initial_params": self.run.add_meta("initial_params"),
                      "weight_decay": self.run.add_meta("weight_decay"),
                      "momentum": self.run.add_meta("momentum")}

    def metagrads(self):
        phi = self.run.train()
        self.run.reverse()
        return phi, {k: m.grad for k, m in self.metas.items()}

    def close(self):
        for h in (self.run, self.train, self.val, self.ctx):
            h.close()


def unrolled(tm, x, y, xv, yv, batches):
    """The same T steps unrolled in PyTorch (create_graph=True), then
    φ.backward(): the metagradients of the data weights, per-step rates,
    inputs, θ0, weight decay and momentum."""
    net = tm.module
    names = [s.name for s in tm.layout]
    X = torch.tensor(x, requires_grad=True)
    Y = torch.tensor(y, dtype=torch.int64)
    w = torch.ones(CN, dtype=torch.float64, requires_grad=True)
    lrs = torch.full((CT,), LR, dtype=torch.float64, requires_grad=True)
    mu = torch.tensor(MU, dtype=torch.float64, requires_grad=True)
    wd = torch.tensor(WD, dtype=torch.float64, requires_grad=True)
    p0 = [v.clone().requires_grad_() for v in tm.unflatten(tm.theta0).values()]
    ps, ms = p0, [torch.zeros_like(p) for p in p0]
    fc = torch.nn.utils.stateless.functional_call
    for t in range(CT):
        idx = torch.from_numpy(batches[t * CB:(t + 1) * CB])
        ell = nn.functional.cross_entropy(fc(net, dict(zip(names, ps)), (X[idx],)), Y[idx],
                                          reduction="none")
        g = torch.autograd.grad((w[idx] * ell).sum() / CB, ps, create_graph=True)
        ms = [mu * m + gi + wd * p for m, gi, p in zip(ms, g, ps)]
        ps = [p - lrs[t] * m for p, m in zip(ps, ms)]
    phi = nn.functional.cross_entropy(fc(net, dict(zip(names, ps)), (torch.tensor(xv),)),
                                      torch.tensor(yv, dtype=torch.int64))
    phi.backward()
    return float(phi), {"data_weights": w.grad.numpy(), "lr_schedule": lrs.grad.numpy(),
                        "inputs": X.grad.numpy().reshape(CN, -1),
                        "initial_params": torch.cat([p.grad.reshape(-1) for p in p0]).numpy(),
                        "weight_decay": wd.grad.numpy(), "momentum": mu.grad.numpy()}


def test_torch_cnn_matches_unrolled_pytorch():
    r = CnnRun()
    try:
        phi, ours = r.metagrads()
        phi_t, theirs = unrolled(r.tm, r.x, r.y, r.xv, r.yv, r.batches)
    finally:
        r.close()
    assert abs(phi - phi_t) <= 1e-12 * abs(phi_t)
    for kind in theirs:
        err = max_rel(np.asarray(ours[kind]).reshape(np.shape(theirs[kind])), theirs[kind])
        print("cnn vs unrolled %-14s max rel diff %.2e" % (kind, err))
        assert np.abs(theirs[kind]).max() > 0, kind
        assert err <= 1e-10, (kind, err)


def test_torch_cnn_finite_differences():
    r = CnnRun()
    try:
        _, ours = r.metagrads()
        h = 1e-5
        worst = 0.0
        used = list(dict.fromkeys(r.batches.tolist()))  # rows in some batch, first seen first
        for kind, entries in (("data_weights", used[:3]), ("lr_schedule", [0, 2, 4]),
                              ("inputs", [(used[3], 3), (used[4], 12), (used[5], 24)])):
            meta = r.metas[kind]
            base = np.array(meta.value)
            g = np.asarray(ours[kind])
            for e in entries:
                phis = []
                for sign in (1, -1):
                    z = base.copy()
                    z[e] += sign * h
                    meta.value = z
                    phis.append(r.run.train())
                meta.value = base
                fd = (phis[0] - phis[1]) / (2 * h)
                err = abs(fd - g[e]) / max(abs(g[e]), 1e-3 * np.abs(g).max())
                assert g[e] != 0, (kind, e)
                print("cnn fd %-12s %-8s grad %+.10e fd %+.10e rel %.1e"
                      % (kind, e, g[e], fd, err))
                worst = max(worst, err)
        assert worst <= 1e-6, worst
    finally:
        r.close()


@pytest.mark.parametrize("schedule", [dict(checkpoint="replay"),
                                      dict(checkpoint="binomial", checkpoint_slots=2)])
def test_checkpoint_schedules_bit_identical(schedule):
    ref = CnnRun("store_all", steps=12)
    other = CnnRun(steps=12, **schedule)
    try:
        phi_a, ga = ref.metagrads()
        phi_b, gb = other.metagrads()
        assert other.run.stats["steps_recomputed"] > 0  # the schedule did recompute
        assert phi_a == phi_b
        for kind in ga:
            assert np.array_equal(np.asarray(ga[kind]), np.asarray(gb[kind])), kind
    finally:
        ref.close()
        other.close()


# ---------------------------------------------------------------- the callables themselves

class Tied(nn.Module):
    """A frozen first layer, two layers sharing one weight, a softplus."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.frozen = nn.Linear(F, 4)
        self.frozen.requires_grad_(False)
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)
        self.b.weight = self.a.weight  # tied
        self.out = nn.Linear(4, C)

    def forward(self, x):
        h = torch.tanh(self.frozen(x))
        h = nn.functional.softplus(self.a(h))
        return self.out(torch.tanh(self.b(h)))


def test_callables_against_finite_differences():
    net = Tied().double()
    # a custom per-example loss: squared error weighted per output
    scale_k = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    tm = TorchModel(net, F, loss=lambda o, t: (scale_k * (o - t) ** 2).sum(1))
    names = [s.name for s in tm.layout]
    assert names == ["a.weight", "a.bias", "b.bias", "out.weight", "out.bias"]
    assert tm.num_params == 16 + 4 + 4 + 4 * C + C
    cm = tm.callback_model
    rng = np.random.default_rng(2)
    rows = 5
    theta = tm.theta0 + 0.1 * rng.standard_normal(tm.num_params)
    x = rng.uniform(-1, 1, (rows, F))
    tgt = rng.standard_normal((rows, C))
    w = rng.uniform(0.5, 1.5, rows)
    s = 1.0 / rows
    u = rng.standard_normal(tm.num_params)

    def lg(th, xx):
        g, ell = np.zeros(tm.num_params), np.zeros(rows)
        L = cm.loss_grad(th, xx, None, tgt, w, s, g, ell)
        return L, g, ell

    L, g, ell = lg(theta, x)
    hu, lt, igt = np.zeros(tm.num_params), np.zeros(rows), np.zeros((rows, F))
    cm.hvp(theta, u, x, None, tgt, w, s, hu, lt, igt)
    assert abs(L - s * np.dot(w, ell)) <= 1e-14
    eps = 1e-6
    fd_g = np.array([(lg(theta + eps * e, x)[0] - lg(theta - eps * e, x)[0]) / (2 * eps)
                     for e in np.eye(tm.num_params)])
    fd_hu = (lg(theta + eps * u, x)[1] - lg(theta - eps * u, x)[1]) / (2 * eps)
    fd_lt = (lg(theta + eps * u, x)[2] - lg(theta - eps * u, x)[2]) / (2 * eps)
    fd_igt = np.zeros((rows, F))
    for i in range(rows):
        for j in range(F):
            xp, xm = x.copy(), x.copy()
            xp[i, j] += eps
            xm[i, j] -= eps
            fd_igt[i, j] = (np.dot(lg(theta, xp)[1], u) - np.dot(lg(theta, xm)[1], u)) / (2 * eps)
    for name, a, b in (("grad", g, fd_g), ("hu", hu, fd_hu), ("loss tangents", lt, fd_lt),
                       ("input tangents", igt, fd_igt)):
        err = max_rel(a, b)
        print("callables %-15s rel %.1e" % (name, err))
        assert err <= 1e-7, (name, err)
    # hu accumulates (+=), the zero-weight path (hu None) still gives ℓ̇
    hu2, lt2 = hu.copy(), np.zeros(rows)
    cm.hvp(theta, u, x, None, tgt, w, s, hu2, lt2, None)
    assert np.allclose(hu2, 2 * hu, rtol=1e-14, atol=0) and np.array_equal(lt2, lt)
    lt3 = np.zeros(rows)
    cm.hvp(theta, u, x, None, tgt, np.zeros(rows), s, None, lt3, None)
    assert max_rel(lt3, lt) <= 1e-14
    # the module's own parameters are untouched by the calls
    assert np.array_equal(tm.theta0, TorchModel(Tied().double(), F,
                                                loss=lambda o, t: ((o - t) ** 2).sum(1)).theta0)


def test_load_unflatten_and_outputs():
    net = cnn()
    tm = TorchModel(net, SHAPE)
    theta = tm.theta0
    parts = tm.unflatten(np.arange(tm.num_params, dtype=np.float64))
    assert list(parts) == [s.name for s in tm.layout] == [n for n, _ in net.named_parameters()]
    assert [tuple(v.shape) for v in parts.values()] == [tuple(p.shape) for p in net.parameters()]
    assert float(parts["0.bias"][0]) == tm.layout[1].offset
    tm.load(theta + 1.0)
    assert np.array_equal(tm.theta0, theta + 1.0)
    with pytest.raises(mg.ShapeError):
        tm.unflatten(theta[:-1])
    x = np.random.default_rng(0).uniform(-1, 1, (6,) + SHAPE)
    out = np.zeros((6, C))
    tm.callback_model.outputs(theta + 1.0, x, out)
    assert np.array_equal(out, net(torch.tensor(x)).detach().numpy())


def test_f32_context():
    seen = []

    def ce(o, y):
        seen.append(o.dtype)
        return nn.functional.cross_entropy(o, y, reduction="none")

    grads = []
    for dtype in ("f32", "f64"):
        with mg.Context(dtype=dtype, seed=7) as ctx:
            model = mg.Model(ctx, F).dense(H).activation("tanh").dense(C)
            net = torch_mlp(model.params).float()  # the module's own dtype does not matter
            before = [p.detach().clone() for p in net.parameters()]
            tm = TorchModel(net, F, loss=ce)
            tr = make_data(ctx, NTRAIN, 11, "cross_entropy")
            val = make_data(ctx, 16, 23, "cross_entropy")
            run = tm.run(ctx, tr, validation=val, steps=T, batch_size=B, lr=0.2, momentum=0.9,
                         shuffle_seed=5)
            lr = run.add_meta("lr_schedule")
            run.train()
            run.reverse()
            grads.append(lr.grad)
            assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
            assert all(p.dtype == torch.float32 for p in net.parameters())
            for hd in (run, tr, val, model):
                hd.close()
        if dtype == "f32":
            assert set(seen) == {torch.float32}
            seen.clear()
    assert set(seen) == {torch.float64}
    assert max_rel(grads[0], grads[1]) < 1e-3


# ---------------------------------------------------------------- refusals and bad input

class Noisy(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(F, C)

    def forward(self, x):
        return self.lin(x + 0.01 * torch.randn_like(x))


class Counting(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(F, C)
        self.register_buffer("calls", torch.zeros(1))

    def forward(self, x):
        self.calls += 1
        return self.lin(x)


def test_impure_modules_refused():
    bn = nn.Sequential(nn.Linear(F, 4), nn.BatchNorm1d(4), nn.Linear(4, C))
    with pytest.raises(mg.UnsupportedError, match="track_running_stats=False"):
        TorchModel(bn, F)
    TorchModel(bn.eval(), F)  # fixed running statistics: a pure function
    drop = nn.Sequential(nn.Linear(F, 4), nn.Dropout(0.5), nn.Linear(4, C))
    with pytest.raises(mg.UnsupportedError, match="dropout|Dropout"):
        TorchModel(drop, F)
    TorchModel(drop.eval(), F)
    with pytest.raises(mg.UnsupportedError, match="random generator"):
        TorchModel(Noisy(), F)
    with pytest.raises(mg.UnsupportedError, match="buffer calls"):
        TorchModel(Counting(), F)


def test_bad_input():
    lin = nn.Linear(F, C)
    with pytest.raises(TypeError):
        TorchModel(lambda x: x, F)
    with pytest.raises(mg.InvalidError):
        TorchModel(lin, (F, 0))
    with pytest.raises(mg.ShapeError):  # the module cannot take [rows, 1, 2, 3, 4]
        TorchModel(lin, (1, 2, 3, 4))
    # Shapes of any rank, as the library takes them.
    assert TorchModel(nn.Sequential(nn.Flatten(), nn.Linear(24, C)), (1, 2, 3, 4)).num_outputs == C
    with pytest.raises(mg.InvalidError):
        TorchModel(lin, F, loss="hinge")
    with pytest.raises(mg.ShapeError):
        TorchModel(lin, F, num_outputs=C + 1)
    with pytest.raises(mg.ShapeError):
        TorchModel(nn.Sequential(nn.Linear(F, C), nn.Flatten(0)), F)  # [rows * C]
    with pytest.raises(mg.InvalidError, match="no trainable"):
        TorchModel(nn.Linear(F, C).requires_grad_(False), F)
    with pytest.raises(mg.ShapeError, match="mat1 and mat2"):  # with torch's own message
        TorchModel(nn.Linear(F + 1, C), F)
    # a loss that is not per example fails the call, which raises CallbackError
    tm = TorchModel(lin.double(), F, loss=lambda o, y: nn.functional.cross_entropy(o, y))
    with mg.Context(dtype="f64") as ctx:
        tr = make_data(ctx, 8, 1, "cross_entropy")
        run = tm.run(ctx, tr, validation=tr, steps=2, batch_size=4)
        with pytest.raises(mg.CallbackError) as e:
            run.train()
        assert isinstance(e.value.__cause__, mg.ShapeError)
        with pytest.raises(TypeError):
            tm.run("not a context", tr, validation=tr, steps=2, batch_size=4)
        run.close()
        tr.close()


def test_import_is_optional():
    """`import metagrad` does not import torch; metagrad.torch without torch
    raises ImportError naming what to install."""
    code = ("import sys\n"
            "import metagrad\n"
            "assert 'torch' not in sys.modules, 'import metagrad imported torch'\n"
            "sys.modules['torch'] = None  # as if torch were not installed\n"
            "try:\n"
            "    import metagrad.torch\n"
            "except ImportError as e:\n"
            "    print('ImportError:', e)\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))] +
        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "ImportError:" in r.stdout and "PyTorch" in r.stdout and "python3-torch" in r.stdout
