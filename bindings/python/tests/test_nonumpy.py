"""The numpy-free path: plain sequences in, lists out.  Runs in a child
interpreter with METAGRAD_NO_NUMPY=1, which makes the package ignore numpy."""

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)

SCRIPT = r'''
import sys
import metagrad as mg
assert not mg.HAVE_NUMPY
assert "numpy" not in sys.modules
from _common import CONFIGS, F, NTRAIN, T, Fixture, rel_err
from test_fd import fd_check

fx = Fixture(CONFIGS[3])           # Adam, datasets built from nested lists
w = fx.add_meta("data_weights")
x = fx.add_meta("inputs")
beta2 = fx.add_meta("beta2")
phi = fx.run.train()
fx.run.reverse()
assert isinstance(phi, float)
assert isinstance(w.grad, list) and len(w.grad) == NTRAIN
assert isinstance(x.value, list) and len(x.value) == 3 and len(x.value[0]) == F
assert isinstance(beta2.grad, float)
assert isinstance(fx.run.params, list) and isinstance(fx.model.params, list)
fx.model.params = [0.0] * fx.model.num_params
assert fx.model.params == [0.0] * fx.model.num_params
loss, acc = fx.run.evaluate(fx.val)
assert 0 <= acc <= 1
direction, fd = fd_check(fx, w, 1234)
assert rel_err(direction, fd) <= 1e-6, (direction, fd)
fx.close()

ctx = mg.Context(dtype="f64")
for bad, exc in (([[1.0, "a"]], mg.DtypeError), ([[1.0, 2.0], [3.0]], mg.ShapeError),
                 ([[True, False]], mg.DtypeError), ([1.0, 2.0], mg.ShapeError),
                 ("abc", mg.DtypeError)):
    try:
        mg.Dataset(ctx, bad)
    except exc:
        pass
    else:
        raise AssertionError("no %s for %r" % (exc.__name__, bad))
ds = mg.Dataset(ctx, [[1, 2], [3, 4]], labels=(0, 1))
try:
    ds.set_weights([1.0, float("nan")])
except mg.NonFiniteError:
    pass
else:
    raise AssertionError("NaN weight accepted")
try:
    mg.Dataset(ctx, [[1.0, 2.0]], labels=[1.5])
except mg.DtypeError:
    pass
else:
    raise AssertionError("float label accepted")

# ---- new API without numpy: a pure-Python softmax regression as callbacks
import ctypes
import math
from _common import C, make_data
K = C
NP = K * F + K

def softmax_rows(theta, x):
    o = [theta[K * F + c] + sum(theta[c * F + j] * x[j] for j in range(F)) for c in range(K)]
    m = max(o)
    lz = m + math.log(sum(math.exp(v - m) for v in o))
    return o, [math.exp(v - lz) for v in o], lz

kinds = set()

def loss_grad(theta, inputs, labels, targets, weights, scale, grad, example_losses):
    kinds.add(type(inputs).__name__)
    assert isinstance(theta, ctypes.Array) and len(inputs[0]) == F and targets is None
    total = 0.0
    for i in range(len(labels)):
        o, p, lz = softmax_rows(theta, inputs[i])
        li = lz - o[labels[i]]
        total += weights[i] * li
        if example_losses is not None:
            example_losses[i] = li
        if grad is not None:
            for c in range(K):
                d = scale * weights[i] * (p[c] - (c == labels[i]))
                for j in range(F):
                    grad[c * F + j] += d * inputs[i][j]
                grad[K * F + c] += d
    return scale * total

def hvp(theta, u, inputs, labels, targets, weights, scale, hu, loss_tangents, igt):
    for i in range(len(labels)):
        x = inputs[i]
        o, p, lz = softmax_rows(theta, x)
        od = [u[K * F + c] + sum(u[c * F + j] * x[j] for j in range(F)) for c in range(K)]
        pod = sum(p[c] * od[c] for c in range(K))
        loss_tangents[i] = sum((p[c] - (c == labels[i])) * od[c] for c in range(K))
        if hu is not None:
            for c in range(K):
                dd = scale * weights[i] * p[c] * (od[c] - pod)
                for j in range(F):
                    hu[c * F + j] += dd * x[j]
                hu[K * F + c] += dd

ctx = mg.Context(dtype="f64", seed=2)
tr = make_data(ctx, 12, 11, "cross_entropy")
va = make_data(ctx, 8, 23, "cross_entropy")
m = mg.Model(ctx, F).dense(K)
opts = dict(validation=va, steps=5, batch_size=4, lr=0.3, momentum=0.5)
builtin = mg.Run(m, tr, **opts)
cb = mg.Run.from_callbacks(ctx, mg.CallbackModel(NP, F, K, loss_grad, hvp=hvp), m.params, tr,
                           **opts)
grads = []
for run in (builtin, cb):
    lr, w = run.add_meta("lr_schedule"), run.add_meta("data_weights")
    run.train()
    run.reverse()
    grads.append(lr.grad + w.grad)
    assert isinstance(run.hvp([1.0] * NP), list)
    assert isinstance(run.example_losses(va), list)
scale_ = max(abs(v) for v in grads[0])
assert max(abs(a - b) for a, b in zip(*grads)) <= 1e-10 * scale_, grads
assert kinds == {"c_double_Array_6_Array_4", "c_double_Array_6_Array_8"}, kinds  # [rows][F]

def bad(*args):
    raise ValueError("no")
badrun = mg.Run.from_callbacks(ctx, mg.CallbackModel(NP, F, K, bad), m.params, tr, **opts)
try:
    badrun.train()
except mg.CallbackError as e:
    assert isinstance(e.__cause__, ValueError)
else:
    raise AssertionError("no CallbackError")

# ---- MGD, loaders, get_inputs without numpy
mgd = mg.MGD(lr, method="sgd", lr=0.01, progress=lambda *a: False)
mgd.run(2)
value, score = mgd.best()
assert isinstance(value, list) and len(value) == 5 and isinstance(score, float)
import os, tempfile
with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "x.csv")
    with open(path, "w") as f:
        f.write("0.5,1,2\n1.5,0,1\n")
    ds = mg.Dataset.load_csv(ctx, path, label_column=2)
    assert ds.get_inputs() == [[0.5, 1.0], [1.5, 0.0]]
    assert ds.get_labels() == [2, 1] and ds.num_classes == 3
    a, b = tr.split(5, seed=1)
    assert len(a.get_inputs()) == 5 and len(tr.subset([0, 0]).get_labels()) == 2
print("ok")
'''


def test_plain_lists_without_numpy():
    env = dict(os.environ, METAGRAD_NO_NUMPY="1",
               PYTHONPATH=os.pathsep.join([PKG, HERE, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=HERE,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().endswith("ok")


def test_plain_lists_with_numpy():
    """Lists are accepted when numpy is present too; arrays come back."""
    np = pytest.importorskip("numpy")
    import metagrad as mg
    with mg.Context(dtype="f64") as ctx:
        m = mg.Model(ctx, 2).dense(2)
        m.params = [0.5] * m.num_params
        assert isinstance(m.params, np.ndarray) and m.params.tolist() == [0.5] * 6
        ds = mg.Dataset(ctx, [[1, 2], [3, 4]], targets=[0.5, 1.5])
        assert ds.features == 2 and len(ds) == 2
