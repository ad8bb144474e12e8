#!/bin/sh
# Install dependencies, build, and run the whole test suite:
#  1. release build: the C suites, the header/ABI checks, the examples, the
#     data-loader fuzzers (libFuzzer, bounded time), the Python bindings and
#     the code blocks of README.md and docs/tutorial.md; then every
#     documented install route (tests/install/routes.sh);
#  2. the C suites again under other OpenBLAS kernels this CPU can execute
#     (OPENBLAS_CORETYPE): rounding differs between kernels, and a test must
#     not depend on it;
#  3. the C suites against the reference BLAS (-Dblas=reference);
#  4. the C suites, and the Python thread tests, under AddressSanitizer +
#     UndefinedBehaviorSanitizer;
#  5. a fast subset under valgrind memcheck.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-2}"
start=$(date +%s)
stage() { echo "=== test.sh [$(($(date +%s) - start)) s]: $*"; }

# setup DIR ARGS...: configure DIR afresh (a stale build dir is wiped).
setup() {
    dir=$1; shift
    meson setup "$dir" "$@" --wipe >/dev/null 2>&1 || meson setup "$dir" "$@"
}

stage "release build, every test"
# MPI is off by default (a program that does not ask for it does not link
# it); the test build turns it on so that the MPI suite runs.
setup build --buildtype=release -Dmpi=enabled
ninja -C build
meson test -C build --print-errorlogs
# The fuzzers skip themselves (exit 77) where clang cannot link libFuzzer;
# install-deps.sh installs it, so here a skip is a failure.
if ! /usr/bin/python3 - build/meson-logs/testlog.json <<'PY'
import json, sys
tests = [json.loads(line) for line in open(sys.argv[1])]
fuzz = [t for t in tests if t["name"].split(" / ")[-1].startswith("fuzz-")]
bad = [t["name"] + ": " + t["result"] for t in fuzz if t["result"] != "OK"]
sys.exit(1 if bad or len(fuzz) < 3 else 0)
PY
then
    echo "test.sh: the libFuzzer targets did not all run (is clang installed?)" >&2
    exit 1
fi

# Every documented install route, from a copy of this checkout: meson install
# to a prefix + pkg-config + the installed Python package, the default
# prefix's Python directory, pip install into a venv, and no MPI in a
# default build (docs/install.md).
stage "install routes"
./tests/install/routes.sh

# Debian's OpenBLAS selects its kernels at run time.  Force up to three
# other kernels whose instructions this CPU has, so that a test which holds
# only for this CPU's rounding fails here and not on a user's machine.
stage "C suites under other OpenBLAS kernels"
# (OpenBLAS names its kernel when it loads: any test program that links it,
# here test_graph with no suite run)
default_core=$(OPENBLAS_VERBOSE=2 CK_RUN_SUITE=none ./build/tests/test_graph 2>&1 \
    | sed -n 's/^Core: *//p' | head -n 1)
cpu_flags=$(grep -m 1 '^flags' /proc/cpuinfo 2>/dev/null || true)
forced=0
for pair in SandyBridge:avx Atom:ssse3 Haswell:avx2 Nehalem:sse4_2 Prescott:sse3; do
    core=${pair%%:*}
    flag=${pair#*:}
    [ "$forced" -lt 3 ] || break
    case " $cpu_flags " in *" $flag "*) ;; *) continue ;; esac
    if [ "$(echo "$core" | tr A-Z a-z)" = "$(echo "$default_core" | tr A-Z a-z)" ]; then
        continue
    fi
    stage "C suites with OPENBLAS_CORETYPE=$core (default kernel here: ${default_core:-unknown})"
    OPENBLAS_CORETYPE=$core meson test -C build --no-rebuild --suite c --suite mpi \
        --print-errorlogs
    # The bindings' tests compare against BLAS results too; once is enough.
    if [ "$forced" -eq 0 ]; then
        OPENBLAS_CORETYPE=$core meson test -C build --no-rebuild --print-errorlogs python
    fi
    forced=$((forced + 1))
done
if [ "$forced" -lt 2 ]; then
    echo "test.sh: only $forced other OpenBLAS kernel(s) can run on this CPU" >&2
fi

# The reference BLAS and LAPACK.  Debian's libblas.so.3 / liblapack.so.3 are
# alternatives that point at OpenBLAS when it is installed, so the loader is
# pointed at the reference libraries explicitly, and that is checked.
stage "C suites against the reference BLAS"
setup build-ref -Dblas=reference -Dexamples=false -Dbenchmarks=false --buildtype=release
ninja -C build-ref
multiarch=$(gcc -print-multiarch)
ref_path=/usr/lib/$multiarch/blas:/usr/lib/$multiarch/lapack
if LD_LIBRARY_PATH=$ref_path ldd build-ref/tests/test_run | grep -q openblas; then
    echo "test.sh: the reference-BLAS build still loads OpenBLAS:" >&2
    LD_LIBRARY_PATH=$ref_path ldd build-ref/tests/test_run >&2
    exit 1
fi
LD_LIBRARY_PATH=$ref_path meson test -C build-ref --suite c --print-errorlogs

stage "C suites under ASan + UBSan"
setup build-asan -Db_sanitize=address,undefined -Db_lundef=false --buildtype=debugoptimized \
    -Dexamples=false -Dbenchmarks=false
ninja -C build-asan
# Sanitizer findings fail the tests; leaks are reported by LeakSanitizer.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    CK_FORK=no meson test -C build-asan --suite c --print-errorlogs
# Python handles used from several threads, against the sanitized library
# (CPython itself leaks by design, so no leak check; --capture=sys keeps an
# ASan report visible).
stage "Python thread tests under ASan + UBSan"
LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" \
    ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    METAGRAD_LIBRARY="$PWD/build-asan/lib/libmetagrad.so" PYTHONPATH=bindings/python \
    PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 -m pytest -q -p no:cacheprovider --capture=sys \
    bindings/python/tests/test_threads.py

# Valgrind memcheck on the release build: zero errors, zero definite or
# indirect leaks (the 'valgrind' test setup in meson.build).  A fast subset
# of the C suites, about 2 minutes; schedule, checkpoint, the ops_* and
# run_cnn suites, data and text are left to the sanitizer run above.
if command -v valgrind >/dev/null 2>&1; then
    stage "valgrind memcheck"
    meson test -C build --setup valgrind --print-errorlogs \
        base graph model optim store run api alloc_fail numeric threads api_walk destroy_order
else
    echo "valgrind not installed: memcheck run skipped" >&2
fi
stage "all tests passed"
