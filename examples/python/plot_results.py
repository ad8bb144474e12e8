#!/usr/bin/env python3
"""plot_results.py - every figure of the examples, from the CSV files they write.

    plot_results.py [--out-dir DIR] INPUT...

INPUT is a results CSV or a directory (each results CSV in it).  The kind of
a CSV is read from its header:

  data_selection.csv  method,...,defective_share      -> data_selection.png
  poisoning.csv       attack,...,drop                 -> poisoning.png
  targeted_poisoning.csv  attack,target_class_accuracy_mean,...  -> targeted_poisoning.png
  lr_schedule.csv     schedule,...,seeds              -> lr_schedule.png
                      (with lr_schedule_steps.csv, the schedules per step)
  lr_schedule_curve.csv  method,seed,trainings,...    -> lr_schedule_curve.png
                      (lr_schedule --cnn: best held-out loss against the
                      trainings spent, per method)
  lm_data_selection.csv  method,documents,target_share,...  -> lm_data_selection.png
  X_progress.csv      meta_step,target_loss,...       -> X_progress.png
                      (drawn with its table X.csv, or when named itself)
  smoothness_study    model,width,...,error           -> the same name, .png
  (written by examples/smoothness_study)

Accuracies are drawn as mean ± standard deviation over the retrainings
with unseen seeds, on an axis zoomed to the spread of the results (a
difference of a point or two is what these figures are about); shares and
drops, which mean something from zero, start at zero.  Each PNG goes
beside its CSV, or into --out-dir.

The C programs (examples/*.c) and the Python ones (examples/python/*.py)
write the CSVs; the Python ones, and scripts/demo.sh, call this when
matplotlib is installed.  Needs matplotlib (Debian: python3-matplotlib);
without it, says so on stderr and exits 77 (meson's skip code).  Exits 2 on
a bad command line, 1 when an input holds no results CSV or a figure could
not be written.
"""

import argparse
import csv
import math
import os
import sys

EXIT_SKIP = 77

# The header of each kind of CSV, as the programs write it.
HEADERS = {
    "data_selection": "method,examples,test_accuracy_mean,test_accuracy_std,seeds,"
                      "defective_share",
    "poisoning": "attack,test_accuracy_mean,test_accuracy_std,seeds,drop",
    "targeted_poisoning": "attack,target_class_accuracy_mean,target_class_accuracy_std,"
                          "other_accuracy_mean,other_accuracy_std,seeds,"
                          "target_class_change_mean,target_class_change_std",
    "lr_schedule": "schedule,trainings,heldout_loss,test_accuracy_mean,test_accuracy_std,seeds",
    "lm_data_selection": "method,documents,target_share,test_loss_mean,test_loss_std,"
                         "perplexity_mean,perplexity_std,seeds",
    "lr_schedule_curve": "method,seed,trainings,reverse_passes,training_equivalents,"
                         "heldout_loss,best_heldout_loss",
    "progress": "meta_step,target_loss,heldout_loss",
    "smoothness": "model,width,out_scale,lr,batch,bn,pool,S,curvature,phi0,phi_best,"
                  "improvement,descent,seconds,error",
}

_plt = None


def matplotlib_available():
    """True when matplotlib can be imported (it is then set to Agg)."""
    global _plt
    if _plt is None:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return False
        _plt = plt
    return True


def kind_of(path):
    """The kind of a CSV from its header, or None."""
    try:
        with open(path, newline="") as f:
            header = f.readline().strip()
    except OSError:
        return None
    for kind, h in HEADERS.items():
        if header == h:
            return kind
    return None


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def stem(path):
    return path[:-4] if path.endswith(".csv") else path


def out_path(csv_path, out_dir):
    name = os.path.basename(stem(csv_path)) + ".png"
    return os.path.join(out_dir if out_dir else os.path.dirname(csv_path) or ".", name)


# ------------------------------------------------------------------ pieces

def zoomed_limits(lo, hi, pad=0.35, min_span=0.5):
    """Axis limits around [lo, hi] with room for labels; never a span below
    min_span (a single seed has no spread)."""
    span = max(hi - lo, min_span)
    return lo - pad * span, hi + pad * span


def accuracy_panel(ax, names, mean, sd, seeds, highlight, title,
                   quantity="test accuracy (%%; axis zoomed)", fmt="%.2f ± %.2f",
                   min_span=0.5):
    """Mean ± std of the test accuracy (%), or of `quantity`, one row per
    method, on a zoomed axis; `highlight`: the index (or a set of indices)
    drawn in the accent colour."""
    n = len(names)
    ys = list(range(n))[::-1]  # the first method on top
    marked = set(highlight) if isinstance(highlight, (set, list, tuple)) else {highlight}
    for i in range(n):
        colour = "tab:red" if i in marked else "tab:blue"
        ax.errorbar([mean[i]], [ys[i]], xerr=[sd[i]], fmt="o", color=colour, ecolor=colour,
                    elinewidth=2, capsize=5, markersize=7)
        ax.annotate(fmt % (mean[i], sd[i]), (mean[i] + sd[i], ys[i]),
                    xytext=(6, 0), textcoords="offset points", va="center", fontsize=9)
    lo = min(m - s for m, s in zip(mean, sd))
    hi = max(m + s for m, s in zip(mean, sd))
    left, right = zoomed_limits(lo, hi, min_span=min_span)
    ax.set_xlim(left, right + 0.2 * (right - left))  # room for the value labels
    ax.set_yticks(ys)
    ax.set_yticklabels(names)
    ax.set_ylim(-0.6, n - 0.4)
    spread = ("mean ± std over %d retrainings with unseen seeds" % seeds if seeds > 1
              else "1 retraining: no spread measured")
    ax.set_xlabel("%s\n%s" % (quantity.replace("%%", "%"), spread))
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)


def save(fig, path):
    try:
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        _plt.close(fig)
    print("wrote " + path)
    return path


# ------------------------------------------------------------------ figures

def two_panels():
    """A figure of the results (left, wide) and a second panel (right)."""
    return _plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [1.7, 1]})


def share_panel(ax, names, share, xlabel, title):
    """Horizontal bars of a share in percent per method (MGD's in red),
    each labelled with its value."""
    ys = list(range(len(names)))[::-1]
    ax.barh(ys, share, color=["tab:red" if n == "MGD" else "tab:gray" for n in names])
    for y, v in zip(ys, share):
        ax.annotate("%.1f%%" % v, (v, y), xytext=(4, 0), textcoords="offset points",
                    va="center", fontsize=9)
    ax.set_yticks(ys)
    ax.set_yticklabels(names)
    ax.set_xlim(0, max(share) * 1.25 + 1)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)


def plot_data_selection(path, out_dir):
    rows = read_rows(path)
    names = [r["method"] for r in rows]
    mean = [100 * float(r["test_accuracy_mean"]) for r in rows]
    sd = [100 * float(r["test_accuracy_std"]) for r in rows]
    share = [100 * float(r["defective_share"]) for r in rows]
    seeds = int(float(rows[0]["seeds"]))
    fig, (ax, ax2) = two_panels()
    accuracy_panel(ax, names, mean, sd, seeds, names.index("MGD") if "MGD" in names else -1,
                   "Test accuracy after retraining on the selection")
    share_panel(ax2, names, share, "defective share of the selection (%)",
                "Flipped labels and noise images kept")
    fig.suptitle("Data selection on a defective Fashion-MNIST pool")
    return [save(fig, out_path(path, out_dir))]


def plot_poisoning(path, out_dir):
    rows = read_rows(path)
    names = [r["attack"] for r in rows]
    mean = [100 * float(r["test_accuracy_mean"]) for r in rows]
    sd = [100 * float(r["test_accuracy_std"]) for r in rows]
    drop = [100 * float(r["drop"]) for r in rows]
    seeds = int(float(rows[0]["seeds"]))
    mgd = next((i for i, n in enumerate(names) if n.startswith("MGD")), -1)
    fig, (ax, ax2) = two_panels()
    accuracy_panel(ax, names, mean, sd, seeds, mgd, "Victim's test accuracy")
    ys = list(range(len(names)))[::-1]
    ax2.barh(ys, drop, color=["tab:red" if i == mgd else "tab:gray" for i in range(len(names))])
    for y, v in zip(ys, drop):
        ax2.annotate("%+.2f" % v, (v, y), xytext=(-4 if v <= 0 else 4, 0),
                     textcoords="offset points", va="center",
                     ha="right" if v <= 0 else "left", fontsize=9)
    ax2.axvline(0, color="black", linewidth=0.8)
    # The rows are those of the accuracy panel, in the same order: repeating
    # their names here left the narrow panel too little width for its axis
    # label once the names grew long (the CNN figure's victim variants).
    ax2.set_yticks(ys)
    ax2.set_yticklabels([])
    ax2.tick_params(axis="y", length=0)
    ax2.set_ylim(ax.get_ylim())
    low, high = min(drop + [0.0]), max(drop + [0.0])
    ax2.set_xlim(low - 0.3 * (high - low) - 0.3, high + 0.2 * (high - low) + 0.1)
    ax2.set_xlabel("change of the mean against clean (points)")
    ax2.set_title("Damage")
    ax2.grid(axis="x", alpha=0.3)
    fig.suptitle("Poisoning 2.5% of the training images (labels unchanged)")
    return [save(fig, out_path(path, out_dir))]


def plot_targeted_poisoning(path, out_dir):
    """The target class's accuracy (what the attack lowers), its change
    against clean paired by seed, and the other classes' accuracy (what it
    must keep), per attack."""
    rows = read_rows(path)
    names = [r["attack"] for r in rows]
    seeds = int(float(rows[0]["seeds"]))
    mgd = max((i for i, n in enumerate(names) if n.startswith("MGD")), default=-1)
    fig, axes = _plt.subplots(1, 3, figsize=(16, 4.2), sharey=True)
    panels = (("target_class_accuracy", "Target class (lower: attack works)", None),
              ("target_class_change", "Target class: change vs clean, paired by seed",
               "change (points; axis zoomed)"),
              ("other_accuracy", "Other classes (should not move)", None))
    for axis, (key, title, quantity) in zip(axes, panels):
        mean = [100 * float(r[key + "_mean"]) for r in rows]
        sd = [100 * float(r[key + "_std"]) for r in rows]
        if quantity is None:
            accuracy_panel(axis, names, mean, sd, seeds, mgd, title)
        else:
            accuracy_panel(axis, names, mean, sd, seeds, mgd, title, quantity=quantity,
                           fmt="%+.2f ± %.2f")
            axis.axvline(0, color="black", linewidth=0.8)
    fig.suptitle("Targeted poisoning of 2.5% of the training images (labels unchanged)")
    return [save(fig, out_path(path, out_dir))]


def plot_lr_schedule(path, out_dir):
    rows = read_rows(path)
    names = [r["schedule"] for r in rows]
    mean = [100 * float(r["test_accuracy_mean"]) for r in rows]
    sd = [100 * float(r["test_accuracy_std"]) for r in rows]
    seeds = int(float(rows[0]["seeds"]))
    steps_path = stem(path) + "_steps.csv"
    have_steps = os.path.exists(steps_path)
    if have_steps:
        fig, (ax2, ax) = _plt.subplots(1, 2, figsize=(12, 4),
                                       gridspec_kw={"width_ratios": [1.3, 1]})
        steps = read_rows(steps_path)
        t = [float(r["step"]) for r in steps]
        columns = [c for c in steps[0] if c != "step"]
        baseline_colours = iter(["tab:blue", "tab:orange", "tab:green", "tab:purple",
                                 "tab:brown", "tab:gray"])
        # one MGD column ("mgd") in the MLP table; "mgd_cosine", "mgd_knots" with --cnn
        mgd_styles = iter([("tab:red", "-"), ("darkred", "--"), ("salmon", ":")])
        for c, label in zip(columns, names):
            mgd = c == "mgd" or c.startswith("mgd_")
            colour, style = (next(mgd_styles, ("tab:red", "-")) if mgd
                             else (next(baseline_colours, "black"), "-"))
            ax2.plot(t, [float(r[c]) for r in steps], label=label,
                     linewidth=2.4 if mgd else 1.4, color=colour, linestyle=style,
                     zorder=3 if mgd else 2)
        ax2.set_xlabel("training step")
        ax2.set_ylabel("learning rate")
        ax2.set_title("Schedules (baselines tuned on held-out data)")
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize=9)
    else:
        fig, ax = _plt.subplots(figsize=(7, 4))
    mgd = [i for i, n in enumerate(names) if n == "MGD" or n.startswith("MGD ")]
    accuracy_panel(ax, names, mean, sd, seeds, mgd, "Test accuracy of each schedule")
    fig.suptitle("Learning-rate schedules on Fashion-MNIST")
    return [save(fig, out_path(path, out_dir))]


def plot_lr_schedule_curve(path, out_dir):
    """Best held-out loss so far against the trainings spent, one line per
    method (lr_schedule --cnn).  A method with several seeds (random search)
    is drawn as the median over its seeds with a min-max band; a method
    that spends reverse passes (MGD) also dashed against training-
    equivalents (a reverse pass counted as the measured share of a
    training)."""
    rows = read_rows(path)
    methods = []
    for r in rows:
        if r["method"] not in methods:
            methods.append(r["method"])
    fig, ax = _plt.subplots(figsize=(8.5, 4.6))
    colours = iter(["tab:blue", "tab:green", "tab:red", "darkorange", "tab:purple",
                    "tab:brown"])
    best_all = min(float(r["best_heldout_loss"]) for r in rows)
    tops = []
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        colour = next(colours, "black")
        seeds = []
        for r in mine:
            if r["seed"] not in seeds:
                seeds.append(r["seed"])
        if len(seeds) > 1:
            per = [[r for r in mine if r["seed"] == s] for s in seeds]
            n = min(len(p) for p in per)
            xs = [float(per[0][i]["trainings"]) for i in range(n)]
            cols = [sorted(float(p[i]["best_heldout_loss"]) for p in per) for i in range(n)]
            med = [c[len(c) // 2] if len(c) % 2 else (c[len(c) // 2 - 1] + c[len(c) // 2]) / 2
                   for c in cols]
            ax.fill_between(xs, [c[0] for c in cols], [c[-1] for c in cols], step="post",
                            color=colour, alpha=0.2, linewidth=0)
            ax.step(xs, med, where="post", color=colour, linewidth=1.8,
                    label="%s (median of %d seeds; band: min–max)" % (m, len(seeds)))
            tops += [c[-1] for x, c in zip(xs, cols) if x >= 2]
            continue
        xs = [float(r["trainings"]) for r in mine]
        ys = [float(r["best_heldout_loss"]) for r in mine]
        mgd = any(float(r["reverse_passes"]) > 0 for r in mine)
        ax.step(xs, ys, where="post", color=colour, linewidth=2.2 if mgd else 1.8,
                marker="o" if mgd and len(xs) <= 40 else None, markersize=3,
                label=m + (" (x: trainings; each meta-step also one reverse pass)" if mgd
                           else ""))
        if mgd:
            eq = [float(r["training_equivalents"]) for r in mine]
            ax.step(eq, ys, where="post", color=colour, linewidth=1.2, linestyle="--",
                    label=m + " (x: training-equivalents)")
        tops += [y for x, y in zip(xs, ys) if x >= 2]
    ax.axhline(1.01 * best_all, color="gray", linestyle=":", linewidth=1,
               label="within 1%% of the best loss found (%.4f)" % best_all)
    finite = [y for y in tops if math.isfinite(y)]
    top = min(max(finite), best_all * 1.6) if finite else best_all * 1.6
    span = top - best_all
    ax.set_ylim(best_all - 0.08 * span, top + 0.05 * span)
    ax.set_xlabel("trainings spent")
    ax.set_ylabel("best held-out loss so far (axis zoomed)")
    ax.set_title("Tuning the learning-rate schedule: what each training buys")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return [save(fig, out_path(path, out_dir))]


def plot_lm_data_selection(path, out_dir):
    """Test loss on the target domain (nats per byte) after retraining on
    each selection, and the target domain's share of each selection."""
    rows = read_rows(path)
    names = [r["method"] for r in rows]
    mean = [float(r["test_loss_mean"]) for r in rows]
    sd = [float(r["test_loss_std"]) for r in rows]
    share = [100 * float(r["target_share"]) for r in rows]
    seeds = int(float(rows[0]["seeds"]))
    fig, (ax, ax2) = two_panels()
    accuracy_panel(ax, names, mean, sd, seeds, names.index("MGD") if "MGD" in names else -1,
                   "Target-domain test loss after retraining on the selection (lower is "
                   "better)", quantity="test loss (nats per byte; axis zoomed)",
                   fmt="%.3f ± %.3f", min_span=0.02)
    share_panel(ax2, names, share, "target-domain share of the selected documents (%)",
                "Target-domain documents kept")
    fig.suptitle("Selecting the training documents of a tiny GPT")
    return [save(fig, out_path(path, out_dir))]


def plot_progress(path, out_dir, maximize=None):
    """Target and held-out loss per meta-step; the marked point is the
    iterate MGD keeps (best held-out loss: lowest, or highest for an attack)."""
    if maximize is None:
        # the untargeted attack raises its loss; targeted_poisoning lowers its φ
        maximize = os.path.basename(path).startswith("poisoning")
    rows = read_rows(path)
    k = [int(float(r["meta_step"])) for r in rows]
    phi = [float(r["target_loss"]) for r in rows]
    held = [float(r["heldout_loss"]) for r in rows]
    fig, ax = _plt.subplots(figsize=(7, 4))
    marker = "o" if len(k) <= 40 else None
    ax.plot(k, phi, marker=marker, markersize=3, label="target loss φ (what MGD optimises)")
    ax.plot(k, held, marker=marker, markersize=3, label="held-out loss (picks the iterate)")
    finite = [i for i, v in enumerate(held) if math.isfinite(v)]
    if finite:
        best = (max if maximize else min)(finite, key=lambda i: held[i])
        ax.plot([k[best]], [held[best]], "*", color="black", markersize=12,
                label="kept iterate (meta-step %d)" % k[best])
    ax.set_xlabel("meta-step")
    ax.set_ylabel("loss (axis zoomed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    name = os.path.basename(stem(path))
    title = {"data_selection_progress": "MGD data selection",
             "poisoning_progress": "MGD poisoning: the loss the attacker raises",
             "targeted_poisoning_progress":
                 "MGD targeted poisoning: φ = −loss(class) + λ·loss(others)",
             "lr_schedule_progress": "MGD on the learning-rate schedule",
             "lm_data_selection_progress": "MGD document selection for a tiny GPT"
             }.get(name, name)
    ax.set_title(title)
    return [save(fig, out_path(path, out_dir))]


def _ranks(xs):
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    r = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for m in range(i, j + 1):
            r[order[m]] = (i + j) / 2 + 1
        i = j + 1
    return r


def spearman(x, y):
    """Spearman's rank correlation (ties averaged), as smoothness_study prints."""
    rx, ry = _ranks(x), _ranks(y)
    n = len(x)
    mx, my = sum(rx) / n, sum(ry) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else float("nan")


def plot_smoothness(path, out_dir):
    """Ŝ against the MGD improvement (left) and the share of meta-steps that
    lowered φ (right).  MLPs are circles (green: lr 0.05, blue: lr 0.5;
    hollow: output scale 0.1), CNNs red squares labelled bn/pool."""
    rows = [r for r in read_rows(path) if not r["error"]]
    if not rows:
        raise ValueError("no measured rows")
    fig, axes = _plt.subplots(1, 2, figsize=(11, 4.3))
    panels = (("improvement", "MGD improvement of the validation loss (%)", 100.0),
              ("descent", "share of meta-steps that lowered the loss", 1.0))
    S = [float(r["S"]) for r in rows]
    for ax, (key, label, factor) in zip(axes, panels):
        ys = [float(r[key]) * factor for r in rows]
        for r, s, y in zip(rows, S, ys):
            cnn = r["model"] == "cnn"
            colour = "tab:red" if cnn else ("tab:blue" if float(r["lr"]) >= 0.5
                                            else "tab:green")
            filled = cnn or float(r["out_scale"]) == 1.0
            ax.scatter([s], [y], marker="s" if cnn else "o", s=40,
                       facecolors=colour if filled else "none", edgecolors=colour)
            if cnn and key == "improvement":
                ax.annotate(r["bn"] + "/" + r["pool"], (s, y), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("metasmoothness Ŝ (LR schedule direction)")
        ax.set_ylabel(label)
        ax.set_title("Spearman ρ = %+.2f (%d configurations)" % (spearman(S, ys), len(rows)),
                     fontsize=10)
        ax.grid(alpha=0.3)
    handles = [
        _plt.Line2D([], [], marker="o", ls="", color="tab:green", label="MLP, lr 0.05"),
        _plt.Line2D([], [], marker="o", ls="", color="tab:blue", label="MLP, lr 0.5"),
        _plt.Line2D([], [], marker="o", ls="", mfc="none", color="gray",
                    label="hollow: output scale 0.1"),
        _plt.Line2D([], [], marker="s", ls="", color="tab:red", label="CNN (bn/pool)"),
    ]
    axes[0].legend(handles=handles, fontsize=8)
    fig.suptitle("Metasmoothness vs what MGD on the learning-rate schedule reaches")
    return [save(fig, out_path(path, out_dir))]


TABLES = {"data_selection": plot_data_selection, "poisoning": plot_poisoning,
          "targeted_poisoning": plot_targeted_poisoning,
          "lr_schedule": plot_lr_schedule, "lr_schedule_curve": plot_lr_schedule_curve,
          "smoothness": plot_smoothness,
          "lm_data_selection": plot_lm_data_selection}


def render_file(path, out_dir=None):
    """The figures of one CSV (a table also draws its X_progress.csv);
    returns the PNG paths.  Raises ValueError for a CSV of no known kind."""
    kind = kind_of(path)
    if kind == "progress":
        return plot_progress(path, out_dir)
    if kind not in TABLES:
        raise ValueError("not a results CSV of the examples (unknown header)")
    written = TABLES[kind](path, out_dir)
    progress = stem(path) + "_progress.csv"
    if kind != "smoothness" and kind_of(progress) == "progress":
        written += plot_progress(progress, out_dir, maximize=kind == "poisoning")
    return written


def render(inputs, out_dir=None):
    """Draw the figures of every input (CSV or directory); returns (written
    PNG paths, error messages).  matplotlib_available() must be true."""
    written, errors = [], []
    for inp in inputs:
        if os.path.isdir(inp):
            tables = sorted(os.path.join(inp, f) for f in os.listdir(inp)
                            if f.endswith(".csv") and kind_of(os.path.join(inp, f))
                            in TABLES)
            if not tables:
                errors.append("%s: no results CSV in this directory" % inp)
            files = tables
        else:
            files = [inp]
        for f in files:
            try:
                written += render_file(f, out_dir)
            except (OSError, ValueError, KeyError, IndexError) as e:
                errors.append("%s: %s" % (f, e))
    return written, errors


def not_an_option(text):
    if text.startswith("-") or not text:
        raise argparse.ArgumentTypeError(
            "'%s' is not a path (one starting with '-' is taken for a mistyped option; "
            "write ./%s)" % (text, text))
    return text


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Draw the examples' figures from the CSV files they write.")
    p.add_argument("inputs", nargs="+", type=not_an_option, metavar="INPUT",
                   help="a results CSV, or a directory of them")
    p.add_argument("--out-dir", type=not_an_option, metavar="DIR", default=None,
                   help="where the PNGs go (default: beside each CSV)")
    a = p.parse_args(argv)
    if not matplotlib_available():
        print("plot_results.py: matplotlib is not installed (apt-get install "
              "python3-matplotlib); no figures drawn", file=sys.stderr)
        return EXIT_SKIP
    if a.out_dir:
        try:
            os.makedirs(a.out_dir, exist_ok=True)
        except OSError as e:
            print("plot_results.py: %s: %s" % (a.out_dir, e), file=sys.stderr)
            return 1
    written, errors = render(a.inputs, a.out_dir)
    for e in errors:
        print("plot_results.py: " + e, file=sys.stderr)
    return 1 if errors or not written else 0


if __name__ == "__main__":
    sys.exit(main())
