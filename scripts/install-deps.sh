#!/bin/sh
# Install what building, testing and the demos need on Debian 12 (as root).
# Skips apt when every package is already installed.
set -eu
# clang + libclang-rt-14-dev: the libFuzzer targets (tests/fuzz).
# libblas-dev, libblas3, liblapack3: the reference-BLAS build the tests also run.
# python3-mesonpy, python3-venv, python3-pip: `pip install` of the bindings.
# python3-torch: metagrad.torch (the PyTorch bridge) and its tests.
# manpages, fortunes, dict-gcide: text corpora for the sequence-model
# application (examples/lm_data_selection) and the text loader's tests.
PACKAGES="build-essential g++ meson ninja-build pkg-config libopenblas-dev liblapacke-dev
check zlib1g-dev python3 python3-numpy python3-pytest python3-setuptools
python3-matplotlib valgrind dataset-fashion-mnist
libopenmpi-dev openmpi-bin
clang libclang-rt-14-dev libblas-dev libblas3 liblapack3
python3-mesonpy python3-venv python3-pip python3-torch
manpages fortunes dict-gcide"
missing=""
for p in $PACKAGES; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: missing packages:$missing (run as root, or install them)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends $missing
fi
