#!/usr/bin/env bash
# Deterministic simulation: the storage engine on a simulated disk (engine/tests/simulation.rs)
# and replication between three brokers on simulated disks and a simulated network
# (server/tests/replication_sim/). Runs seeds of each for half of DURATION seconds of wall
# time (default 60; the build is not counted), from a random seed unless RIPTIDE_SIM_SEED_START
# is set. Each seed's run depends on the seed alone (virtual time, seeded randomness), so a
# failure prints its seed and a one-line command replaying it.
#
#   scripts/simulate.sh [DURATION_SECONDS]
set -euo pipefail

duration=${1:-60}
half=$(( (duration + 1) / 2 ))
start=${RIPTIDE_SIM_SEED_START:-$(( ((RANDOM << 15) | RANDOM) * 1000 ))}
cd "$(dirname "$0")/.."

cargo test -p riptide-engine --test simulation --no-run --quiet
cargo test -p riptide-server --test replication_sim --no-run --quiet
out=$(mktemp)
trap 'rm -f "$out"' EXIT

echo "simulating storage for ${half}s from seed ${start}"
if RUST_BACKTRACE=0 RIPTIDE_SIM_SECONDS="$half" RIPTIDE_SIM_SEED_START="$start" \
    cargo test -p riptide-engine --test simulation --quiet -- --nocapture --exact seeds >"$out" 2>&1; then
    grep '^simulation:' "$out"
else
    grep -E '^simulation:|^seed [0-9]+ failed|^replay:' "$out" || tail -n 40 "$out"
    exit 1
fi

echo "simulating replication for ${half}s from seed ${start}"
if RUST_BACKTRACE=0 RIPTIDE_NETSIM_SECONDS="$half" RIPTIDE_NETSIM_SEED_START="$start" \
    cargo test -p riptide-server --test replication_sim --quiet -- --nocapture --exact seeds >"$out" 2>&1; then
    grep '^replication simulation:' "$out"
else
    grep -E -A12 '^replication simulation:|^seed [0-9]+ failed' "$out" | grep -v '^ *[0-9]* ms' | head -40 || tail -n 40 "$out"
    grep -E '^replay:' "$out" || true
    exit 1
fi
