#!/usr/bin/env bash
# Runs the tests over and over and counts failures per test, to find flaky ones before CI does.
#
#   scripts/flake-hunt.sh N [--hog] [--python M] [--rust-only] [--python-only] [-- PYTEST ARGS]
#
#   N              rounds of the Rust tests (cargo test --workspace: unit and integration)
#   --python M     rounds of the Python suite (tests/compat; default N)
#   --hog          keep every core busy with a CPU hog while the tests run (timing assumptions
#                  show up much more often on a loaded machine)
#   --rust-only / --python-only
#
# Prints, per suite, the rounds, how many failed, and each failing test with its failure count;
# exits 1 if anything failed. Logs of failed rounds are kept under $FLAKE_DIR (default
# /tmp/riptide-flake-hunt). Not run in CI (it takes as long as N CI runs).
set -uo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-}
[[ "$rounds" =~ ^[0-9]+$ ]] || { sed -n '2,16p' "$0"; exit 2; }
shift
py_rounds=$rounds hog=0 rust=1 python=1 pytest_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --hog) hog=1 ;;
        --python) py_rounds=$2; shift ;;
        --rust-only) python=0 ;;
        --python-only) rust=0 ;;
        --) shift; pytest_args=("$@"); break ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

dir=${FLAKE_DIR:-/tmp/riptide-flake-hunt}
mkdir -p "$dir"
tally=$(mktemp)
hogs=()
cleanup() {
    for p in "${hogs[@]}"; do kill "$p" 2>/dev/null; done
    rm -f "$tally"
}
trap cleanup EXIT

export RIPTIDE_BIN=${RIPTIDE_BIN:-${CARGO_TARGET_DIR:-target}/debug/riptide}
cargo build --workspace --all-targets --quiet || exit 1
cargo test --workspace --no-run --quiet 2>/dev/null || exit 1
if [ "$python" = 1 ]; then
    ./scripts/test-deps.sh >/dev/null || exit 1
fi

if [ "$hog" = 1 ]; then
    for _ in $(seq 1 "$(nproc)"); do
        (while :; do :; done) &
        hogs+=($!)
    done
    echo "CPU hog: ${#hogs[@]} busy loop(s)"
fi

started=$SECONDS
if [ "$rust" = 1 ]; then
    for r in $(seq 1 "$rounds"); do
        log="$dir/rust-$r.log"
        t0=$SECONDS
        if cargo test --workspace --quiet >"$log" 2>&1; then
            echo "rust round $r/$rounds: ok ($((SECONDS - t0)) s)"
            rm -f "$log"
            echo "rust round ok" >>"$tally"
        else
            failed=$(grep -E '^test .* \.\.\. FAILED$' "$log" | sed -E 's/^test (.*) \.\.\. FAILED$/\1/')
            [ -n "$failed" ] || failed="(build or harness failure: see $log)"
            echo "rust round $r/$rounds: FAILED ($((SECONDS - t0)) s): $(echo "$failed" | tr '\n' ' ') [log: $log]"
            echo "rust round failed" >>"$tally"
            while IFS= read -r t; do echo "rust test $t" >>"$tally"; done <<<"$failed"
        fi
    done
fi
if [ "$python" = 1 ]; then
    for r in $(seq 1 "$py_rounds"); do
        log="$dir/python-$r.log"
        t0=$SECONDS
        # Not -x: one failure should not hide the others of the round.
        if .venv/bin/python -m pytest -q -rf -p no:cacheprovider tests/compat "${pytest_args[@]}" >"$log" 2>&1; then
            echo "python round $r/$py_rounds: ok ($((SECONDS - t0)) s, $(grep -Eo '[0-9]+ passed' "$log" | tail -1))"
            rm -f "$log"
            echo "python round ok" >>"$tally"
        else
            failed=$(grep -E '^(FAILED|ERROR) tests/' "$log" | awk '{print $2}')
            [ -n "$failed" ] || failed="(harness failure: see $log)"
            echo "python round $r/$py_rounds: FAILED ($((SECONDS - t0)) s): $(echo "$failed" | tr '\n' ' ') [log: $log]"
            echo "python round failed" >>"$tally"
            while IFS= read -r t; do echo "python test $t" >>"$tally"; done <<<"$failed"
        fi
    done
fi

echo "== flake hunt: $((SECONDS - started)) s$([ "$hog" = 1 ] && echo ", under a CPU hog") =="
bad=0
for suite in rust python; do
    ok=$(grep -c "^$suite round ok" "$tally")
    failed=$(grep -c "^$suite round failed" "$tally")
    [ $((ok + failed)) -gt 0 ] || continue
    echo "$suite: $((ok + failed)) round(s), $failed failed"
    grep "^$suite test " "$tally" | cut -d' ' -f3- | sort | uniq -c | sort -rn | sed 's/^/    /'
    [ "$failed" = 0 ] || bad=1
done
exit $bad
