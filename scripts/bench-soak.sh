#!/usr/bin/env bash
# A soak run of riptide (issue 21): the keyed 50-producer workload with 1-minute retention for
# an hour (or --minutes N) against a spawned release riptide that applies retention every 5 s.
# Writes results/soak/ (JSON with per-minute percentiles and the stability figure, OMB's JSON,
# and the time-series plot with the broker's segment deletions marked). Not run in CI: it
# occupies the machine for the whole run.
#
# Usage: scripts/bench-soak.sh [--minutes N] [--out DIR] [--window S]
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=60 OUT=results/soak WINDOW=60
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) MINUTES=$2; shift ;;
        --out) OUT=$2; shift ;;
        --window) WINDOW=$2; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release -p riptide-server -p riptide-bench
"$TARGET/release/riptide-bench" run bench-harness/workloads/soak-keyed-50-producers.yaml \
    --spawn --riptide-bin "$TARGET/release/riptide" \
    --broker-config bench-harness/workloads/soak-broker.toml \
    --duration $((MINUTES * 60)) --window "$WINDOW" --out "$OUT"
