#!/bin/sh
# run_fuzzer.sh FUZZER SECONDS ARTIFACT_DIR DIR[=PREFIX]...
# run_fuzzer.sh --skip REASON
#
# Run a libFuzzer target for a bounded time on a scratch copy of its seed
# files (libFuzzer adds to its corpus directory; the source tree stays
# untouched).  Crashing inputs are kept in ARTIFACT_DIR.  Exit 77 (skipped)
# when the build has no libFuzzer-capable clang.
set -eu
if [ "$1" = "--skip" ]; then
    echo "skipped: $2"
    exit 77
fi
fuzzer=$1
seconds=$2
artifacts=$3
shift 3
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT INT TERM
for spec in "$@"; do
    dir=${spec%%=*}
    prefix=
    case "$spec" in *=*) prefix=${spec#*=} ;; esac
    for f in "$dir"/"$prefix"*; do
        [ -f "$f" ] && cp "$f" "$corpus/"
    done
done
mkdir -p "$artifacts"
# -rss_limit_mb bounds what a hostile header could make the loader allocate.
exec "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len=4096 -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus"
