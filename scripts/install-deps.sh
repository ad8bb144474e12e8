#!/bin/sh
# Install what building, testing and the demos need on Debian 12 (as root).
# Skips apt when every package is already installed.
set -eu
PACKAGES="build-essential g++ meson ninja-build pkg-config libopenblas-dev liblapacke-dev
check zlib1g-dev python3 python3-numpy python3-pytest python3-setuptools
python3-matplotlib valgrind dataset-fashion-mnist
libopenmpi-dev openmpi-bin"
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
