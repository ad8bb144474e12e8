#!/bin/sh
# check_cli.sh PROGRAM [BAD-ARGS...] - the command-line contract of an example
# (examples/common/flags.h; argparse for the Python ones), for meson:
#   PROGRAM --help        exit 0, usage on stdout, nothing on stderr
#   PROGRAM --no-such-option, and PROGRAM with each BAD-ARGS (one string,
#   split on spaces)      exit 2, nothing on stdout, the usage on stderr
# Every run happens in an empty directory, which must stay empty: neither
# --help nor a refused command line may create a file (smoothness_study once
# wrote a file named "--help").  A PROGRAM ending in .py runs with $PYTHON.
set -u
prog=$1
shift
# absolute, since the runs happen in a directory of their own
case $prog in
/*) ;;
*) prog=$(pwd)/$prog ;;
esac
case $prog in
*.py) run="${PYTHON:-python3} $prog" ;;
*) run=$prog ;;
esac
work=$(mktemp -d) || exit 1
trap 'rm -rf "$work" "$work.out" "$work.err"' EXIT
cd "$work" || exit 1
fails=0

fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

leftovers() {
    if [ -n "$(ls -A .)" ]; then
        fail "$1 created files: $(ls -A . | tr '\n' ' ')"
        rm -rf ./* ./.[!.]* 2>/dev/null
    fi
}

# the captured output goes beside the directory, which must stay empty
$run --help >"$work.out" 2>"$work.err"
rc=$?
[ $rc -eq 0 ] || fail "--help exited $rc (want 0)"
head -n 1 "$work.out" | grep -q '^usage: ' || fail "--help printed no usage on stdout"
[ -s "$work.err" ] && fail "--help wrote to stderr: $(head -n 3 "$work.err")"
leftovers "--help"

check_refused() {
    # $1: the arguments, split on spaces on purpose
    # shellcheck disable=SC2086
    $run $1 >"$work.out" 2>"$work.err"
    rc=$?
    [ $rc -eq 2 ] || fail "'$1' exited $rc (want 2): $(head -n 3 "$work.err")"
    [ -s "$work.out" ] && fail "'$1' wrote to stdout: $(head -n 3 "$work.out")"
    grep -q '^usage: ' "$work.err" || fail "'$1' printed no usage on stderr"
    leftovers "'$1'"
}

check_refused "--no-such-option"
for args in "$@"; do
    check_refused "$args"
done
[ $fails -eq 0 ] && echo "ok: $prog (--help, unknown option and $# bad command lines)"
exit $((fails > 0))
