#!/usr/bin/env python3
"""check_plots.py PLOTTER WORKDIR STUDY_CSV PROGRAM... - the test 'plot-results'.

Runs each application PROGRAM (data_selection, poisoning, targeted_poisoning,
lr_schedule, lm_data_selection) with --smoke into WORKDIR/<program> (and
lr_schedule also with --cnn --smoke, whose curves are a figure of their
own, into WORKDIR/lr_schedule-cnn), then PLOTTER (examples/python/plot_results.py)
on those directories and on STUDY_CSV (a CSV written by smoothness_study;
its PNG goes into WORKDIR/study), and checks that every figure came out as a
PNG of a sensible size, and that the plotter refuses a directory without
results (exit 1).  Exits 77 (skipped) without matplotlib or when a
program's data are absent (Fashion-MNIST, or the text corpora: the programs
exit 77).
"""

import os
import shutil
import struct
import subprocess
import sys

SKIP = 77


def png_size(path):
    """(width, height) from the PNG header, or None when it is not a PNG."""
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def main(argv):
    plotter, work, study = argv[1], argv[2], argv[3]
    programs = argv[4:]
    try:
        import matplotlib  # noqa: F401  (the plotter's only dependency)
    except ImportError:
        print("matplotlib is not installed: skipped")
        return SKIP
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    dirs, expected = [], []
    for prog in programs:
        name = os.path.basename(prog)
        out = os.path.join(work, name)
        r = subprocess.run([prog, "--smoke", "--out", out], stdout=subprocess.DEVNULL)
        if r.returncode == SKIP:
            print("%s skipped (its data are not installed): skipped" % name)
            return SKIP
        if r.returncode != 0:
            print("FAIL: %s --smoke exited %d" % (name, r.returncode))
            return 1
        dirs.append(out)
        expected += [os.path.join(out, name + ".png"), os.path.join(out, name + "_progress.png")]
        if name == "lr_schedule":
            # the CNN-scale run writes the trainings-to-tune curves instead
            # of MGD's progress
            out = os.path.join(work, name + "-cnn")
            r = subprocess.run([prog, "--cnn", "--smoke", "--out", out], stdout=subprocess.DEVNULL)
            if r.returncode != 0:
                print("FAIL: %s --cnn --smoke exited %d" % (name, r.returncode))
                return 1
            dirs.append(out)
            expected += [os.path.join(out, name + ".png"), os.path.join(out, name + "_curve.png")]
    study_out = os.path.join(work, "study")
    expected.append(os.path.join(study_out, os.path.basename(study)[:-4] + ".png"))

    fails = 0
    r = subprocess.run([sys.executable, plotter] + dirs)
    if r.returncode != 0:
        print("FAIL: plot_results.py on the smoke outputs exited %d" % r.returncode)
        fails += 1
    r = subprocess.run([sys.executable, plotter, "--out-dir", study_out, study])
    if r.returncode != 0:
        print("FAIL: plot_results.py on %s exited %d" % (study, r.returncode))
        fails += 1
    for png in expected:
        size = png_size(png) if os.path.exists(png) else None
        if size is None:
            print("FAIL: %s is missing or not a PNG" % png)
            fails += 1
        elif size[0] < 500 or size[1] < 300:
            print("FAIL: %s is only %dx%d" % (png, size[0], size[1]))
            fails += 1
        else:
            print("ok: %s (%dx%d)" % (png, size[0], size[1]))
    empty = os.path.join(work, "empty")
    os.makedirs(empty)
    r = subprocess.run([sys.executable, plotter, empty], stderr=subprocess.DEVNULL)
    if r.returncode != 1 or os.listdir(empty):
        print("FAIL: plot_results.py on a directory without results exited %d (want 1)"
              % r.returncode)
        fails += 1
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
