"""A short run through an installed metagrad (tests/install/routes.sh).

    python smoke.py PREFIX

Imports metagrad as a user would (no METAGRAD_* variables, working directory
outside the source tree), checks that the package and the library it loaded
both come from under PREFIX (the install being tested, not a source tree or
another install), and differentiates a 4-step run with respect to its
learning-rate schedule.  Plain lists only: numpy is optional for metagrad.
"""
import math
import os
import sys

prefix = os.path.realpath(sys.argv[1])
for var in ("METAGRAD_LIBRARY", "METAGRAD_BUILD_DIR"):
    if os.environ.get(var):
        sys.exit("smoke.py: %s is set; the route must work without it" % var)

import metagrad as mg  # noqa: E402


def under(path):
    return os.path.commonpath([os.path.realpath(path), prefix]) == prefix


print("package: %s" % os.path.dirname(mg.__file__))
print("library: %s (libmetagrad %s)" % (mg.library_path, mg.library_version()))
if not under(mg.__file__):
    sys.exit("smoke.py: metagrad was imported from outside %s" % prefix)
if not under(mg.library_path):
    sys.exit("smoke.py: libmetagrad was loaded from outside %s" % prefix)

n, f, c, steps = 16, 3, 2, 4
x = [[((i * f + j) * 37 + 11) % 64 / 32.0 - 1.0 for j in range(f)] for i in range(n)]
y = [int(row[0] > 0) for row in x]
with mg.Context(dtype="f64", seed=0) as ctx:
    model = mg.Model(ctx, f).dense(4).activation("tanh").dense(c)
    data = mg.Dataset(ctx, x, labels=y, num_classes=c)
    with mg.Run(model, data, validation=data, steps=steps, batch_size=4, lr=0.1) as run:
        lr = run.add_meta("lr_schedule")
        phi = run.train()
        run.reverse()
        grad = [float(g) for g in lr.grad]
if not math.isfinite(phi) or len(grad) != steps or not all(math.isfinite(g) for g in grad):
    sys.exit("smoke.py: phi = %r, dphi/deta = %r" % (phi, grad))
print("phi = %.6f, dphi/deta_0 = %.6f" % (phi, grad[0]))
