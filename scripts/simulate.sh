#!/usr/bin/env bash
# Deterministic simulation of the storage engine (engine/tests/simulation.rs): runs seeds for
# DURATION seconds of wall time (default 60; the build is not counted), starting from a random
# seed unless RIPTIDE_SIM_SEED_START is set. Each seed's run depends on the seed alone (virtual
# time, seeded randomness), so a failure prints its seed and a one-line command replaying it.
#
#   scripts/simulate.sh [DURATION_SECONDS]
set -euo pipefail

duration=${1:-60}
start=${RIPTIDE_SIM_SEED_START:-$(( ((RANDOM << 15) | RANDOM) * 1000 ))}
cd "$(dirname "$0")/.."

cargo test -p riptide-engine --test simulation --no-run --quiet
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "simulating for ${duration}s from seed ${start}"
if RUST_BACKTRACE=0 RIPTIDE_SIM_SECONDS="$duration" RIPTIDE_SIM_SEED_START="$start" \
    cargo test -p riptide-engine --test simulation --quiet -- --nocapture --exact seeds >"$out" 2>&1; then
    grep '^simulation:' "$out"
else
    grep -E '^simulation:|^seed [0-9]+ failed|^replay:' "$out" || tail -n 40 "$out"
    exit 1
fi
