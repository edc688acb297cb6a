#!/usr/bin/env bash
# Broker CPU per partition-batch and per GB for a workload (default: issue 22's small-batch one),
# with P partitions. Starts a release riptide on a free port, runs riptide-bench against it, and
# reads the broker's CPU time (/proc) and riptide_partition_appends_total (/metrics) before and
# after. Not run in CI.
#
# Usage: scripts/batch-cost.sh [--bin RIPTIDE] [--partitions P] [--duration S] [--durability D]
#                              [--keyed RATE] [--config FILE] [WORKLOAD]
#   --keyed RATE  drive the load with librdkafka and random keys (scripts/keyed-load.py, RATE
#                 msgs/s of 1 KiB over P partitions, default 16) instead of riptide-bench, whose
#                 sticky partitioner sends one partition per request: keyed records make every
#                 request carry all partitions with a record or two each.
#   --config FILE broker settings (riptide serve --config), e.g. "log.flush.method" = "fdatasync"
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CARGO_TARGET_DIR:-target}/release/riptide
BENCH=${CARGO_TARGET_DIR:-target}/release/riptide-bench
PARTS="" DURATION=30 DURABILITY=fsync WORKLOAD=workloads/small-batches-16p-30mbps.yaml KEYED="" CONFIG=()
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) BIN=$2; shift ;;
        --partitions) PARTS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --durability) DURABILITY=$2; shift ;;
        --keyed) KEYED=$2; shift ;;
        --config) CONFIG=(--config "$2"); shift ;;
        *) WORKLOAD=$1 ;;
    esac
    shift
done
[ -x "$BENCH" ] || cargo build --release -p riptide-bench
W=$WORKLOAD
if [ -n "$PARTS" ]; then
    W=$(mktemp --suffix=.yaml)
    sed "s/^partitionsPerTopic: .*/partitionsPerTopic: $PARTS/" "$WORKLOAD" > "$W"
fi
DATA=$(mktemp -d)
PORT=$((20000 + RANDOM % 20000)) MPORT=$((40000 + RANDOM % 20000))
"$BIN" serve --data-dir "$DATA" --listen "127.0.0.1:$PORT" --metrics-listen "127.0.0.1:$MPORT" \
    --durability "$DURABILITY" "${CONFIG[@]}" 2>"$DATA.log" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA" "$DATA.log"' EXIT
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$MPORT/metrics" >/dev/null && break
    sleep 0.1
done
cpu() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
metric() { curl -s "http://127.0.0.1:$MPORT/metrics" | awk -v n="$1" '$1 == n {print $2}'; }
TICKS=$(getconf CLK_TCK)
c0=$(cpu) a0=$(metric riptide_partition_appends_total) b0=$(metric riptide_bytes_in_total)
if [ -n "$KEYED" ]; then
    ${PYTHON:-.venv/bin/python} scripts/keyed-load.py "127.0.0.1:$PORT" keyed "${PARTS:-16}" "$KEYED" "$DURATION"
else
    "$BENCH" run "$W" --brokers "127.0.0.1:$PORT" --duration "$DURATION" --warmup 3 --out "$DATA-results" 2>/dev/null | tail -n 8
fi
c1=$(cpu) a1=$(metric riptide_partition_appends_total) b1=$(metric riptide_bytes_in_total)
rm -rf "$DATA-results"
awk -v c=$((c1 - c0)) -v t="$TICKS" -v a=$((a1 - a0)) -v b=$((b1 - b0)) 'BEGIN {
    s = c / t
    printf "broker cpu %.2f s, %d partition-batches (%.1f KiB each), %.2f GB in\n", s, a, b / a / 1024, b / 1e9
    printf "per partition-batch %.1f us, per GB %.2f cpu-s\n", s / a * 1e6, s / (b / 1e9)
}'
