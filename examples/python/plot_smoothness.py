#!/usr/bin/env python3
"""plot_smoothness.py - scatter plot of the CSV written by smoothness_study.

    plot_smoothness.py [study.csv] [out.png]

Left: metasmoothness S against the relative improvement MGD reached on the
validation loss; right: S against the share of meta-steps that lowered the
loss.  MLPs are circles (filled: output scale 1, hollow: 0.1), CNNs squares
(labelled batch-norm place / pooling on the left).
Needs matplotlib (Debian: python3-matplotlib); without it, says so and
exits 0, so that a build never depends on it.
"""

import csv
import sys


def main(argv):
    path = argv[1] if len(argv) > 1 else "smoothness_study.csv"
    out = argv[2] if len(argv) > 2 else "smoothness_study.png"
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (apt-get install python3-matplotlib); "
              "no plot drawn")
        return 0
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if not r["error"]]
    if not rows:
        print("no measured rows in " + path)
        return 1

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    panels = (("improvement", "MGD improvement of the validation loss (%)", 100.0),
              ("descent", "share of meta-steps that lowered the loss", 1.0))
    for ax, (key, label, factor) in zip(axes, panels):
        for r in rows:
            cnn = r["model"] == "cnn"
            s, y = float(r["S"]), float(r[key]) * factor
            colour = "tab:red" if cnn else ("tab:blue" if float(r["lr"]) >= 0.5
                                            else "tab:green")
            filled = cnn or float(r["out_scale"]) == 1.0
            ax.scatter([s], [y], marker="s" if cnn else "o", s=40,
                       facecolors=colour if filled else "none", edgecolors=colour)
            if cnn and key == "improvement":
                ax.annotate(r["bn"] + "/" + r["pool"], (s, y), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("metasmoothness S (LR schedule direction)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    handles = [
        plt.Line2D([], [], marker="o", ls="", color="tab:green", label="MLP, lr 0.05"),
        plt.Line2D([], [], marker="o", ls="", color="tab:blue", label="MLP, lr 0.5"),
        plt.Line2D([], [], marker="o", ls="", mfc="none", color="gray",
                   label="hollow: output scale 0.1"),
        plt.Line2D([], [], marker="s", ls="", color="tab:red", label="CNN (bn/pool)"),
    ]
    axes[0].legend(handles=handles, fontsize=8)
    fig.suptitle("Metasmoothness vs what 8 steps of MGD on the LR schedule reach")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print("wrote " + out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
