#!/bin/sh
# check_pkgconfig.sh MESON PKG_CONFIG BUILD_ROOT PROGRAM.c CC [CC ARGS...]
#
# Install the build into a temporary DESTDIR, compile PROGRAM.c with nothing
# but `pkg-config --cflags --libs metagrad` from that install, and run it
# against the installed shared library.
set -eu
meson=$1 pkgconfig=$2 build=$3 prog=$4
shift 4
tmp=$(mktemp -d "${TMPDIR:-/tmp}/metagrad-pc.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
dest="$tmp/root"

"$meson" install -C "$build" --no-rebuild --quiet --destdir "$dest" >"$tmp/install.log" 2>&1 || {
    cat "$tmp/install.log" >&2
    echo "check_pkgconfig: meson install failed" >&2
    exit 1
}
pc=$(find "$dest" -name metagrad.pc -path '*pkgconfig*' | head -n 1)
if [ -z "$pc" ]; then
    echo "check_pkgconfig: metagrad.pc was not installed" >&2
    exit 1
fi
pcdir=$(dirname "$pc")
echo "installed $pc"

# Only the installed .pc: no source or build tree paths.  PKG_CONFIG_LIBDIR
# replaces the system's search path, so no other package's .pc file is
# visible: linking against libmetagrad.so needs none (it records its own
# dependencies), and a Requires or Requires.private on openblas, lapacke,
# zlib or MPI would make even `pkg-config --cflags metagrad` fail here.
export PKG_CONFIG_PATH="$pcdir"
export PKG_CONFIG_LIBDIR="$pcdir"
export PKG_CONFIG_SYSROOT_DIR="$dest"
flags=$("$pkgconfig" --cflags --libs metagrad)
echo "pkg-config --cflags --libs metagrad: $flags"
case "$flags" in
    *"$build"*) echo "check_pkgconfig: flags point into the build tree" >&2; exit 1 ;;
esac

# shellcheck disable=SC2086  # $flags is a list of words
"$@" -std=c99 -Wall -Wextra -Werror -o "$tmp/use_metagrad" "$prog" $flags

# The library sits beside the pkgconfig directory (libdir/pkgconfig).  Replace
# LD_LIBRARY_PATH, not extend it: meson test points it at the build tree.
export LD_LIBRARY_PATH="$(dirname "$pcdir")"
# The program must load the installed library, not one from elsewhere.
if command -v ldd >/dev/null 2>&1; then
    resolved=$(ldd "$tmp/use_metagrad" | sed -n 's/.*libmetagrad\.so[^ ]* => \([^ ]*\).*/\1/p')
    echo "libmetagrad resolves to $resolved"
    case "$resolved" in
        "$dest"/*) ;;
        *) echo "check_pkgconfig: libmetagrad resolves outside the install" >&2; exit 1 ;;
    esac
fi
"$tmp/use_metagrad"
