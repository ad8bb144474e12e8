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
