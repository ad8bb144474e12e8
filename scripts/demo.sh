#!/bin/sh
# Install dependencies, build, and run the main demo.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
meson setup build --buildtype=release >/dev/null 2>&1 || true
ninja -C build
./build/examples/quickstart
