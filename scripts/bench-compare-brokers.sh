#!/usr/bin/env bash
# Side by side (issue 21): riptide against another Kafka-compatible broker running on this
# machine, in interleaved rounds (riptide, other, other, riptide, ...), with ratios and their
# spread, broker CPU-s per GB and peak RSS. Not run in CI.
#
# The other broker is started here from OTHER_CMD and must listen on OTHER_ADDR; by default
# Tansu (a Rust Kafka-compatible broker on crates.io), installed once with cargo install
# outside the workspace, with `dynostore` (its in-memory storage needs it). Check
# `tansu broker --help` of the installed version: its flags change between releases.
#
# Usage: scripts/bench-compare-brokers.sh [--rounds N] [--duration S] WORKLOAD...
# Example: scripts/bench-compare-brokers.sh --rounds 3 --duration 30 \
#            workloads/1-topic-16-partitions-1kb-50mbps.yaml workloads/small-batches-keyed-16p-30mbps.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=3 DURATION=30
WORKLOADS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        *) WORKLOADS+=("$1") ;;
    esac
    shift
done
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release -p riptide-server -p riptide-bench
TANSU_ROOT=${TANSU_ROOT:-$HOME/.cache/riptide/tansu}
OTHER_ADDR=${OTHER_ADDR:-127.0.0.1:19092}
if [ -z "${OTHER_CMD:-}" ]; then
    [ -x "$TANSU_ROOT/bin/tansu" ] || cargo install --locked tansu --version 0.6.0 --features dynostore --root "$TANSU_ROOT"
    OTHER_CMD="$TANSU_ROOT/bin/tansu broker --storage-engine memory://tansu/ \
        --listener-url tcp://$OTHER_ADDR --advertised-listener-url tcp://$OTHER_ADDR"
fi
LOG=$(mktemp /tmp/other-broker.XXXXXX.log)
$OTHER_CMD >"$LOG" 2>&1 &
OTHER_PID=$!
trap 'kill $OTHER_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/${OTHER_ADDR%:*}/${OTHER_ADDR#*:}") 2>/dev/null && break
    sleep 0.2
done
"$TARGET/release/riptide-bench" compare-brokers "${WORKLOADS[@]}" \
    --broker riptide=spawn:"$TARGET/release/riptide" --broker other="$OTHER_ADDR@$OTHER_PID" \
    --rounds "$ROUNDS" --alternate --duration "$DURATION" --out results/compare-brokers
