#!/usr/bin/env bash
# Bounded fuzzing for CI (.ci/run): installs cargo-fuzz if needed, replays every kept regression
# input, then fuzzes each target for FUZZ_SECONDS (default 60) from the committed corpus with a
# fixed seed (FUZZ_SEED, default 1) so a CI run is reproducible. New inputs go to fuzz/work/
# (not committed); a crash fails the run and prints the input in hex.
# cargo-fuzz needs nightly flags: RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")"
if [ -n "${RIPTIDE_SKIP_FUZZ:-}" ]; then
    echo "fuzz: skipped (RIPTIDE_SKIP_FUZZ is set)"
    exit 0
fi
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_SEED=${FUZZ_SEED:-1}
CARGO_FUZZ_VERSION=0.13.2
TARGETS=(request record_batch security)
export RUSTC_BOOTSTRAP=1
# The sanitizer build of the server and its dependencies is the slow part; keep it outside the
# checkout so a machine that ran CI before rebuilds only what changed.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/riptide/fuzz-target}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION from crates.io"
    if ! cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked >/tmp/cargo-fuzz-install.log 2>&1; then
        tail -20 /tmp/cargo-fuzz-install.log
        echo "fuzz: SKIPPED: cargo-fuzz could not be installed (see above); the decoder regression tests still ran in cargo test"
        exit 0
    fi
fi
if ! cargo fuzz build --debug-assertions >/tmp/cargo-fuzz-build.log 2>&1; then
    tail -40 /tmp/cargo-fuzz-build.log
    echo "fuzz: FAILED to build the fuzz targets"
    exit 1
fi
status=0
passed=0
failed=0
for t in "${TARGETS[@]}"; do
    mkdir -p "work/$t" "corpus/$t" "artifacts/$t"
    shopt -s nullglob
    kept=(regressions/"$t"/*)
    shopt -u nullglob
    if ((${#kept[@]})); then
        echo "fuzz: $t: replaying ${#kept[@]} regression input(s)"
        cargo fuzz run --debug-assertions "$t" "${kept[@]}" -- -runs=1 >/dev/null 2>"/tmp/fuzz-$t-regressions.log" \
            || { tail -40 "/tmp/fuzz-$t-regressions.log"; status=1; failed=$((failed + 1)); continue; }
    fi
    echo "fuzz: $t: ${FUZZ_SECONDS}s from $(ls "corpus/$t" | wc -l) corpus inputs, seed $FUZZ_SEED"
    if cargo fuzz run --debug-assertions "$t" "work/$t" "corpus/$t" -- -max_total_time="$FUZZ_SECONDS" \
        -seed="$FUZZ_SEED" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1 \
        >"/tmp/fuzz-$t.log" 2>&1; then
        grep -E "^stat::(number_of_executed_units|peak_rss_mb|new_units_added)|^#[0-9]+ *DONE" "/tmp/fuzz-$t.log" | sed "s/^/fuzz: $t: /"
        passed=$((passed + 1))
    else
        tail -60 "/tmp/fuzz-$t.log"
        for a in artifacts/"$t"/*; do echo "fuzz: $t: crash input $a: $(od -An -tx1 -v "$a" | tr -d ' \n')"; done
        echo "fuzz: $t: FAILED (keep the input in fuzz/regressions/$t/ with a #[test] once fixed)"
        status=1
        failed=$((failed + 1))
    fi
done
echo "fuzz: ${passed} passed, ${failed} failed"
exit $status
