#!/bin/sh
# Install dependencies, build, and run the main demo: data selection by
# metagradient descent on a defective Fashion-MNIST pool (compact version,
# a few minutes on 2 cores), printing its progress and a results table.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
meson setup build --buildtype=release >/dev/null 2>&1 || true
ninja -C build
mkdir -p demo-output
./build/examples/data_selection --quick --out demo-output
