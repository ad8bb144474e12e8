#!/bin/sh
# Install dependencies, build, and run the main demo: data selection by
# metagradient descent on a defective Fashion-MNIST pool (compact version,
# a few minutes on 2 cores), printing its progress and a results table; then
# draw its figures from the CSVs it wrote (matplotlib, when installed).
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
meson setup build --buildtype=release >/dev/null 2>&1 || true
ninja -C build
mkdir -p demo-output
./build/examples/data_selection --quick --out demo-output
# Debian's interpreter first: it has python3-matplotlib (a pyenv one may not)
py=/usr/bin/python3
[ -x "$py" ] || py=python3
if "$py" -c 'import matplotlib' 2>/dev/null; then
    MPLBACKEND=Agg "$py" examples/python/plot_results.py demo-output
else
    echo "matplotlib is not installed (apt-get install python3-matplotlib): no figures;" \
         "the results are in demo-output/*.csv and demo-output/data_selection.json"
fi
