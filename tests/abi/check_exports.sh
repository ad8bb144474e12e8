#!/bin/sh
# check_exports.sh NM LIBRARY MAPFILE HEADER...
#
# The exported ABI must be exactly the public API, three ways:
#   the library's defined dynamic text symbols   (nm -D --defined-only, type T)
#   the version script's global list              (lib/libmetagrad.map)
#   the functions declared MGRAD_API in the public headers
# Prints each difference and exits 1 if any; 0 when all three agree.
set -eu

if [ "$#" -lt 4 ]; then
    echo "usage: $0 NM LIBRARY MAPFILE HEADER..." >&2
    exit 2
fi
nm_prog=$1
library=$2
mapfile=$3
shift 3

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# Dynamic symbols carry their version ("name@@MGRAD_0.2"); keep the name.
"$nm_prog" -D --defined-only "$library" |
    awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }' | sort -u >"$tmp/exported"

# The names between "global:" and "local:", without comments and ";".
sed -e 's:/\*.*\*/::g' "$mapfile" |
    awk '/global:/ { on = 1; next } /local:/ { on = 0 } on' |
    tr -d ' \t;' | grep -v '^$' | sort -u >"$tmp/mapped"

# "MGRAD_API <type> [*]name(" - the name is the last word before "(".
cat "$@" | grep -v '#define' | grep 'MGRAD_API' |
    sed -e 's/(.*//' | awk '{ print $NF }' | tr -d '*' | sort -u >"$tmp/declared"

status=0
report() {
    # report FILE_A FILE_B MESSAGE: names in A but not in B
    missing=$(comm -23 "$1" "$2")
    if [ -n "$missing" ]; then
        echo "$3:"
        echo "$missing" | sed 's/^/    /'
        status=1
    fi
}
report "$tmp/declared" "$tmp/mapped" "declared in a public header but missing from $mapfile"
report "$tmp/mapped" "$tmp/declared" "listed in $mapfile but declared in no public header"
report "$tmp/mapped" "$tmp/exported" "listed in $mapfile but not exported by $library (not defined, or not MGRAD_API)"
report "$tmp/exported" "$tmp/mapped" "exported by $library but not in $mapfile"

if [ "$status" -eq 0 ]; then
    echo "ABI ok: $(wc -l <"$tmp/exported" | tr -d ' ') functions exported, as declared and listed"
fi
exit "$status"
