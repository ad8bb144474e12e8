"""_apputil.py - shared plumbing of the Python application examples
(data_selection.py, poisoning.py, lr_schedule.py); the counterpart of
examples/common/apputil.c and examples/common/flags.c.

Not part of the library: Fashion-MNIST loading with a helpful message (exit
77, meson's skip code, when the files are absent), datasets from arrays, the
default model, scoring by retraining with fresh seeds (metagrad's score),
statistics, the command line
shared by the three programs (the C programs' contract: --help exits 0, a
bad command line exits 2), the result files (the C programs' CSV and JSON
formats), and the figures, which plot_results.py draws from those files
when matplotlib is installed.
"""

import argparse
import collections
import json
import math
import os
import sys
import time

import numpy as np

import metagrad as mg
from metagrad import score as mg_score

import plot_results

#: Where the Debian package dataset-fashion-mnist installs its files (the
#: library's MGRAD_FASHION_MNIST_DIR).
FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
#: meson's exit code for a skipped test.
EXIT_SKIP = 77

#: The training setup shared by an application's inner runs and its final
#: retrainings (app_train in apputil.h); hidden: the MLP's hidden width.
TrainConfig = collections.namedtuple("TrainConfig", "steps batch lr momentum hidden")


def fmnist_present(directory=None):
    """True when the four Fashion-MNIST IDX files (gzip or plain) are there."""
    directory = FMNIST_DIR if directory is None else directory
    for prefix in ("train", "t10k"):
        for kind in ("images-idx3", "labels-idx1"):
            name = os.path.join(directory, "%s-%s-ubyte" % (prefix, kind))
            if not (os.path.exists(name + ".gz") or os.path.exists(name)):
                return False
    return True


def require_fmnist(program):
    """Exit with 77 (meson's skip code) and a message when the data is absent."""
    if not fmnist_present():
        print("%s: Fashion-MNIST is not installed (%s); install it with "
              "`apt-get install dataset-fashion-mnist`; skipping" % (program, FMNIST_DIR),
              file=sys.stderr)
        sys.exit(EXIT_SKIP)


def load_fmnist(ctx, split):
    """The Fashion-MNIST split ('train' or 'test'), pixels in [0, 1].  Exits
    77 when the files are absent, 1 when they cannot be read."""
    if not fmnist_present():
        require_fmnist(os.path.basename(sys.argv[0]))
    try:
        return mg.Dataset.load_fashion_mnist(ctx, split)
    except mg.MetagradError as e:
        print("cannot load Fashion-MNIST (%s): %s" % (split, e.message or e), file=sys.stderr)
        sys.exit(1)


def dataset_from(ctx, src, rows, labels=None, inputs=None):
    """A dataset of `rows` of `src`, with labels replaced by `labels` (None:
    keep) and inputs by `inputs` (None: keep; n x 784 floats)."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    sub = src.subset(rows)
    if labels is None and inputs is None:
        return sub
    n = len(rows)
    classes = sub.num_classes
    x = sub.get_inputs("f32").reshape(n, -1) if inputs is None else inputs
    y = sub.get_labels() if labels is None else labels
    sub.close()
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(n, -1)
    y = np.ascontiguousarray(y, dtype=np.int32)
    return mg.Dataset(ctx, x, labels=y, num_classes=classes)


def make_model(ctx, hidden, seed):
    """The default model: MLP 784-hidden-10 with tanh, θ0 drawn from `seed`."""
    return mg.Model(ctx, 784).dense(hidden).activation("tanh").dense(10).init_params(seed)


def run_options(cfg, lr_schedule=None):
    """The run options of `cfg` (shared by make_run and score)."""
    return dict(steps=cfg.steps, batch_size=cfg.batch, lr=cfg.lr, lr_schedule=lr_schedule,
                momentum=cfg.momentum)


def make_run(ctx, cfg, train, validation, seed, shuffle_seed, lr_schedule=None):
    """A run of the default model on `train` with `cfg`, φ on `validation`;
    θ0 from `seed`, batch order from `shuffle_seed`."""
    model = make_model(ctx, cfg.hidden, seed)
    run = mg.Run(model, train, validation=validation, shuffle_seed=shuffle_seed,
                 **run_options(cfg, lr_schedule))
    model.close()  # the run copied what it needs
    return run


def score(ctx, cfg, train, test, seed_mult, seed_offset, seeds, lr_schedule=None):
    """Test accuracy of the default model trained from scratch on `train`
    with `cfg` (per-step rates `lr_schedule`, or None for cfg.lr): (mean,
    sample std) over `seeds` retrainings, retraining s with seed
    seed_mult * (s + seed_offset) (seeds no method saw) for θ0 and, XORed
    with 0x5bd1e995, the batch order (metagrad's score, as app_score)."""
    seed_list = [seed_mult * (s + seed_offset) for s in range(seeds)]
    with make_model(ctx, cfg.hidden, seed_list[0]) as model:
        result = mg_score(model, train, test, seed_list=seed_list,
                          **run_options(cfg, lr_schedule))
    return result.accuracy_mean, result.accuracy_std


def splits(all_set, ntrain, ntarget, nheldout, seed):
    """Disjoint random rows of `all_set` (seeded): train, target and held-out."""
    n = all_set.size
    if ntrain + ntarget + nheldout >= n:
        print("the splits need more than %d rows" % n, file=sys.stderr)
        sys.exit(1)
    a, rest = all_set.split(ntrain, seed)
    b, rest2 = rest.split(ntarget, seed + 1)
    c, rest3 = rest2.split(nheldout, seed + 2)
    for d in (rest, rest2, rest3):
        d.close()
    return a, b, c


def mean_std(xs):
    """Mean and sample standard deviation (0 for a single value)."""
    xs = np.asarray(xs, dtype=np.float64)
    return float(xs.mean()), float(xs.std(ddof=1)) if len(xs) > 1 else 0.0


def write_csv(path, header, rows):
    """A CSV: the header, then rows whose first item may be a name (written
    as is: no comma or quote in it) and whose numbers are written as %.10g.
    Prints the error and returns False when the file cannot be written."""
    try:
        with open(path, "w") as f:
            f.write(header + "\n")
            for row in rows:
                f.write(",".join(v if isinstance(v, str) else "%.10g" % v for v in row) + "\n")
        return True
    except OSError as e:
        print("%s: %s" % (path, e), file=sys.stderr)
        return False


def write_progress(path, log):
    """What a Progress recorded, as apputil.c's app_write_progress writes it."""
    return write_csv(path, "meta_step,target_loss,heldout_loss",
                     [(k, p, s) for k, (p, s) in enumerate(zip(log.phi, log.score))])


def write_summary(path, program, mode, fields, names, mean, sd):
    """The JSON summary, as apputil.c's app_write_summary writes it."""
    def number(v):
        return v if math.isfinite(v) else None
    doc = {"program": program, "mode": mode}
    doc.update((k, number(float(v))) for k, v in fields)
    doc["results"] = [{"name": n, "test_accuracy_mean": number(m), "test_accuracy_std": number(d)}
                      for n, m, d in zip(names, mean, sd)]
    try:
        with open(path, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        return True
    except OSError as e:
        print("%s: %s" % (path, e), file=sys.stderr)
        return False


def draw_figures(table):
    """The figures of the results CSV `table` (and its siblings), by
    plot_results.py; says so when matplotlib is absent.  Returns the names
    of the PNGs written."""
    if not plot_results.matplotlib_available():
        print("note: matplotlib is not installed (apt-get install python3-matplotlib); "
              "no figures drawn (the CSVs are written)")
        return []
    try:
        written = plot_results.render_file(table)
    except (OSError, ValueError, KeyError, IndexError) as e:
        print("%s: no figure: %s" % (table, e), file=sys.stderr)
        return []
    return [os.path.basename(w) for w in written]


class Progress:
    """The MGD progress callable: records (φ, held-out score) per meta-step
    and prints a line for each."""

    def __init__(self, meta_steps, digits=2):
        self.phi = [float("nan")] * meta_steps
        self.score = [float("nan")] * meta_steps
        self.digits = digits

    def __call__(self, step, phi, score, seconds):
        if step < len(self.phi):
            self.phi[step] = phi
            self.score[step] = score
        print("  meta-step %3d  target loss %.4f  held-out loss %.4f  (%.*f s)"
              % (step, phi, score, self.digits, seconds), flush=True)
        return False


def parser(description):
    """The command line shared by the three programs."""
    p = argparse.ArgumentParser(description=description)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="a smaller configuration (minutes), as the C program's --quick")
    mode.add_argument("--smoke", action="store_true",
                      help="a tiny configuration that finishes in seconds (a smoke test)")
    p.add_argument("--meta-steps", type=int, default=None, metavar="M")
    p.add_argument("--seeds", type=int, default=None, metavar="S",
                   help="retrainings per method, with seeds no method saw")
    p.add_argument("--out", default=".", metavar="DIR", type=plot_results.not_an_option,
                   help="where the CSV, JSON and PNG files go (created if absent)")
    return p


def finish_options(p, a, o, max_meta_steps):
    """Apply --meta-steps, --seeds and --out to the defaults `o`, check
    them, and return them as an object with attributes."""
    for key in ("meta_steps", "seeds"):
        if getattr(a, key) is not None:
            o[key] = getattr(a, key)
    o["out"] = a.out
    o["mode"] = "quick" if a.quick else "smoke" if a.smoke else "full"
    if not (1 <= o["meta_steps"] <= max_meta_steps and 1 <= o["seeds"] <= 16):
        p.error("need 1 <= meta-steps <= %d and 1 <= seeds <= 16" % max_meta_steps)
    return type("Options", (), o)


def prepare_out(out):
    """Create the output directory; exit 2 (a bad --out, as in C) when it
    cannot be created or written."""
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        print("%s: %s" % (out, e), file=sys.stderr)
        sys.exit(2)
    if not os.access(out, os.W_OK | os.X_OK):
        print("cannot write to output directory %s" % out, file=sys.stderr)
        sys.exit(2)


class Timer:
    def __init__(self):
        self.t0 = time.monotonic()

    def __str__(self):
        return "%.1f s" % (time.monotonic() - self.t0)
