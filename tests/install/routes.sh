#!/bin/sh
# tests/install/routes.sh [SOURCE_DIR]
#
# Every install route of docs/install.md, followed as a new user would, from
# a copy of the source tree (the working tree's tracked and untracked files,
# without build directories) in a temporary directory:
#
#   a  meson setup + meson install to a custom prefix; a C program built with
#      nothing but `pkg-config --cflags --libs metagrad`, run with
#      LD_LIBRARY_PATH and, built again, with an rpath; `import metagrad` from
#      the installed package with /usr/bin/python3 and a short run; the same
#      after moving the whole prefix elsewhere.
#   b  the default prefix (and --prefix=/usr): the directory meson would put
#      the Python package in is on /usr/bin/python3's sys.path (read with
#      `meson introspect --installed`; nothing is installed there).
#   c  python3 -m venv --system-site-packages; pip install
#      --no-build-isolation --no-index of the source tree (offline); import
#      and a short run in the venv, with no environment variables.
#   d  the default build links no MPI (ldd); `pkg-config --cflags --libs
#      metagrad` works with only metagrad.pc visible (no other package's .pc
#      file); a static link with `pkg-config --static` flags runs.
#
# Needs what scripts/install-deps.sh installs (meson, ninja, pkg-config, cc,
# python3-venv, python3-pip, python3-mesonpy); no network.  Builds with
# -Dtests=false -Dexamples=false -Dbenchmarks=false: about 3 minutes on two
# cores.  Ends with "N passed, N failed"; exit status 1 when any route failed.
# ROUTES_KEEP=1 keeps the temporary directory.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "${1:-$here/../..}" && pwd)
python=/usr/bin/python3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/metagrad-routes.XXXXXX")
if [ "${ROUTES_KEEP:-0}" = 1 ]; then
    echo "keeping $tmp"
else
    trap 'rm -rf "$tmp"' EXIT INT TERM
fi
# What a user has: none of the test suite's variables.
unset METAGRAD_LIBRARY METAGRAD_BUILD_DIR PYTHONPATH LD_LIBRARY_PATH PKG_CONFIG_PATH \
    PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR 2>/dev/null || true
cc=${CC:-cc}
noopts="-Dtests=false -Dexamples=false -Dbenchmarks=false"

# The source as a user has it: git's view of the working tree when it is a
# checkout (no build directories, no ignored files), else the whole tree.
mkdir "$tmp/src"
if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$src" && git ls-files -z --cached --others --exclude-standard |
        xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
        tar --null -T - -cf -) | tar -xf - -C "$tmp/src"
else
    cp -R "$src/." "$tmp/src"
fi
src="$tmp/src"
cd "$tmp"

# run CMD...: print it, then run it.
run() {
    echo "+ $*"
    "$@"
}
# quiet LOG CMD...: print it, run it with its output in LOG, shown on failure.
quiet() {
    log=$1
    shift
    echo "+ $* >$(basename "$log")"
    "$@" >"$log" 2>&1 || { tail -n 40 "$log"; return 1; }
}
fail() {
    echo "FAIL: $*"
    return 1
}

route_a() {
    prefix="$tmp/prefix"
    quiet "$tmp/a-setup.log" meson setup "$tmp/build" "$src" --prefix="$prefix" $noopts
    quiet "$tmp/a-build.log" ninja -C "$tmp/build"
    quiet "$tmp/a-install.log" meson install -C "$tmp/build"
    pc=$(find "$prefix" -name metagrad.pc)
    [ -n "$pc" ] || fail "no metagrad.pc under $prefix"
    export PKG_CONFIG_PATH="$(dirname "$pc")"
    echo "PKG_CONFIG_PATH=$PKG_CONFIG_PATH"
    run pkg-config --cflags --libs metagrad
    libdir=$(pkg-config --variable=libdir metagrad)
    # shellcheck disable=SC2046  # the flags are a list of words
    run "$cc" -o use_metagrad "$src/tests/pkgconfig/use_metagrad.c" \
        $(pkg-config --cflags --libs metagrad)
    # Without LD_LIBRARY_PATH the loader would not find the library (127),
    # unless some other libmetagrad is installed system-wide: check where it
    # resolves, not only that it runs.
    echo "+ LD_LIBRARY_PATH=$libdir ./use_metagrad"
    LD_LIBRARY_PATH="$libdir" ldd ./use_metagrad | grep libmetagrad
    LD_LIBRARY_PATH="$libdir" ldd ./use_metagrad | grep -q "=> $libdir/libmetagrad" ||
        fail "libmetagrad does not resolve into $libdir"
    LD_LIBRARY_PATH="$libdir" ./use_metagrad
    # shellcheck disable=SC2046
    run "$cc" -o use_metagrad_rpath "$src/tests/pkgconfig/use_metagrad.c" \
        $(pkg-config --cflags --libs metagrad) -Wl,-rpath,"$libdir"
    ldd ./use_metagrad_rpath | grep -q "=> $libdir/libmetagrad" ||
        fail "rpath: libmetagrad does not resolve into $libdir"
    run ./use_metagrad_rpath

    # The Python package: where the install put it (a prefix unknown to
    # /usr/bin/python3, so on PYTHONPATH, as docs/install.md says).
    pkgdir=$(dirname "$(find "$prefix" -path '*/metagrad/_lib.py')")
    echo "+ PYTHONPATH=$(dirname "$pkgdir") $python $here/smoke.py $prefix"
    PYTHONPATH="$(dirname "$pkgdir")" "$python" "$here/smoke.py" "$prefix"
    # A prefix moved as a whole (a staging tree): the package finds the
    # library relative to itself.
    run mv "$prefix" "$tmp/moved"
    moved_pkg=$(dirname "$(find "$tmp/moved" -path '*/metagrad/_lib.py')")
    echo "+ PYTHONPATH=$(dirname "$moved_pkg") $python $here/smoke.py $tmp/moved"
    PYTHONPATH="$(dirname "$moved_pkg")" "$python" "$here/smoke.py" "$tmp/moved"
    run mv "$tmp/moved" "$prefix"
}

route_b() {
    for p in default /usr; do
        if [ "$p" = default ]; then set --; else set -- --prefix="$p"; fi
        rm -rf "$tmp/build-b"
        quiet "$tmp/b-setup.log" meson setup "$tmp/build-b" "$src" "$@" $noopts
        prefix=$(meson introspect --buildoptions "$tmp/build-b" |
            "$python" -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"][0])')
        init=$(meson introspect --installed "$tmp/build-b" |
            "$python" -c 'import json,sys; print([d for d in json.load(sys.stdin).values() if d.endswith("/metagrad/__init__.py")][0])')
        site=$(dirname "$(dirname "$init")")
        echo "prefix $prefix: the package would go to $(dirname "$init")"
        "$python" -c 'import os, sys; sys.exit(0 if sys.argv[1] in [os.path.normpath(p) for p in sys.path] else 1)' "$site" ||
            fail "$site is not on the sys.path of $python: $("$python" -c 'import sys; print(sys.path)')"
        echo "  $site is on the sys.path of $python"
        # The recorded libdir is the one the library is installed to.
        lib=$(meson introspect --installed "$tmp/build-b" |
            "$python" -c 'import json,sys; print([d for d in json.load(sys.stdin).values() if "/libmetagrad.so." in d][0])')
        grep -q "^LIBDIR = '$(dirname "$lib")'\$" "$tmp/build-b/bindings/_installed.py" ||
            fail "metagrad/_installed.py does not record $(dirname "$lib")"
        echo "  metagrad/_installed.py records $(dirname "$lib")"
    done
}

route_c() {
    quiet "$tmp/c-venv.log" "$python" -m venv --system-site-packages "$tmp/venv"
    quiet "$tmp/c-pip.log" "$tmp/venv/bin/pip" install --no-build-isolation --no-index "$src"
    grep -E "^(Successfully|  Created wheel)" "$tmp/c-pip.log" | sed 's/ size=.*//'
    echo "+ $tmp/venv/bin/python $here/smoke.py $tmp/venv"
    "$tmp/venv/bin/python" "$here/smoke.py" "$tmp/venv"
}

route_d() {
    lib=$(find "$tmp/prefix" -name 'libmetagrad.so.0')
    bundled=$(find "$tmp/venv" -name 'libmetagrad.so' 2>/dev/null || true)
    for l in $lib $bundled; do
        echo "+ ldd $l | grep -E 'mpi|open-rte|open-pal|hwloc'"
        if ldd "$l" | grep -E 'mpi|open-rte|open-pal|hwloc'; then
            fail "$l links MPI"
        fi
        echo "  (none)"
    done
    # Only the installed metagrad.pc visible: PKG_CONFIG_LIBDIR replaces the
    # system's search path, so a Requires(.private) on any other package
    # (openblas, lapacke, zlib, ompi-c) would fail here.
    pcdir=$(dirname "$(find "$tmp/prefix" -name metagrad.pc)")
    export PKG_CONFIG_LIBDIR="$pcdir" PKG_CONFIG_PATH=
    echo "PKG_CONFIG_LIBDIR=$pcdir PKG_CONFIG_PATH="
    run pkg-config --cflags metagrad
    run pkg-config --libs metagrad
    run pkg-config --print-requires --print-requires-private metagrad
    [ -z "$(pkg-config --print-requires --print-requires-private metagrad)" ] ||
        fail "metagrad.pc requires other packages"
    run pkg-config --static --libs metagrad
    # libmetagrad.a with the Libs.private flags: nothing else is needed.
    flags=$(pkg-config --static --libs metagrad | sed 's/-lmetagrad/-Wl,-Bstatic -lmetagrad -Wl,-Bdynamic/')
    # shellcheck disable=SC2046,SC2086
    run "$cc" -o use_metagrad_static "$src/tests/pkgconfig/use_metagrad.c" \
        $(pkg-config --cflags metagrad) $flags
    if ldd ./use_metagrad_static | grep libmetagrad; then
        fail "the static program still loads libmetagrad.so"
    fi
    run ./use_metagrad_static
}

passed=0 failed=0
for r in a b c d; do
    echo "=== route $r"
    # Not in an `if`: there the shell would ignore set -e inside the route.
    set +e
    (set -e; "route_$r")
    rc=$?
    set -e
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        echo "=== route $r: ok"
    else
        failed=$((failed + 1))
        echo "=== route $r: FAILED"
    fi
done
echo "install routes: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
