#!/bin/sh
# Optional: what the PyTorch comparison benchmarks (bench/torch_compare.py)
# need on Debian 12, as root.  Not needed to build or test the library;
# scripts/install-deps.sh installs those dependencies.
set -eu
PACKAGES="python3 python3-numpy python3-torch linux-perf"
missing=""
for p in $PACKAGES; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-bench-deps: missing packages:$missing (run as root, or install them)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends $missing
fi
