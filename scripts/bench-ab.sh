#!/usr/bin/env bash
# A/B comparison of two riptide binaries in one session: each round runs every workload against
# A, then B (fresh broker and data directory each time), so both see the same machine noise;
# then `riptide-bench compare` puts the results side by side. Not run in CI.
#
# Usage: scripts/bench-ab.sh A_BIN B_BIN [--rounds N] [--duration S] [--out DIR]
#                            [--broker-config TOML] WORKLOAD...
# Example: scripts/bench-ab.sh /tmp/before/riptide target/release/riptide \
#            workloads/1-topic-16-partitions-1kb-50mbps.yaml workloads/1-topic-1-partition-1kb-max.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1 B=$2
shift 2
ROUNDS=2 DURATION=10 OUT=bench-ab
WORKLOADS=()
EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --out) OUT=$2; shift ;;
        --broker-config) EXTRA=(--broker-config "$2"); shift ;;
        *) WORKLOADS+=("$1") ;;
    esac
    shift
done
BENCH=${CARGO_TARGET_DIR:-target}/release/riptide-bench
[ -x "$BENCH" ] || cargo build --release -p riptide-bench
for round in $(seq 1 "$ROUNDS"); do
    for w in "${WORKLOADS[@]}"; do
        for side in A B; do
            bin=$A
            [ "$side" = B ] && bin=$B
            echo "== round $round $side $(basename "$w")"
            "$BENCH" run "$w" --spawn --riptide-bin "$bin" --out "$OUT/$side$round" \
                --duration "$DURATION" --warmup 3 --data-dir "${TMPDIR:-/tmp}" "${EXTRA[@]}" | tail -n 3
        done
    done
done
for w in "${WORKLOADS[@]}"; do
    name=$(basename "$w" .yaml)
    files=()
    for round in $(seq 1 "$ROUNDS"); do
        files+=("$OUT/A$round/$name.json" "$OUT/B$round/$name.json")
    done
    echo "### $name (A = $A, B = $B; rounds alternate A, B)"
    "$BENCH" compare --plot "$OUT/$name-ab.svg" "${files[@]}"
done
