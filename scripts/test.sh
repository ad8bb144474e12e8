#!/bin/sh
# Install dependencies, build, and run the whole test suite: the C suites,
# the header/ABI checks, the examples and the Python bindings; then the C
# suites again under AddressSanitizer + UndefinedBehaviorSanitizer, and a
# fast subset under valgrind memcheck.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-2}"

meson setup build --buildtype=release --wipe >/dev/null 2>&1 || meson setup build --buildtype=release
ninja -C build
meson test -C build --print-errorlogs

meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false \
    --buildtype=debugoptimized --wipe >/dev/null 2>&1 ||
    meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false --buildtype=debugoptimized
ninja -C build-asan
# Sanitizer findings fail the tests; leaks are reported by LeakSanitizer.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    CK_FORK=no meson test -C build-asan --suite c --print-errorlogs

# Valgrind memcheck on the release build: zero errors, zero definite or
# indirect leaks (the 'valgrind' test setup in meson.build).  A fast subset
# of the C suites, about 2 minutes; schedule, checkpoint, conv and data are
# left to the sanitizer run above.
if command -v valgrind >/dev/null 2>&1; then
    meson test -C build --setup valgrind --print-errorlogs \
        base graph model optim store run api reliability
else
    echo "valgrind not installed: memcheck run skipped" >&2
fi
echo "all tests passed"
