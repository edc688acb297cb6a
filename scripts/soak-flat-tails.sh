#!/usr/bin/env bash
# Issue 22's flat-tails soak: issue 22's small-batch workload (keyed, 16 partitions, 30 MB/s,
# 16 MiB segments, 60 s retention) for an hour with per-second percentiles, against one release
# riptide (2 shards, durability.policy=fsync, retention and compaction checked every 5 s), with a
# compacted topic written beside it (unless --no-compaction). The measured run's JSON, plots and
# summary go to OUT (default results/soak-flat-tails/), with every segment roll (N), deletion (D)
# and compaction (C) of the broker marked on the time series. Not run in CI: it occupies the
# machine for the whole run; build first (cargo build --release -p riptide-server -p riptide-bench).
#
# Usage: scripts/soak-flat-tails.sh [--minutes N] [--out DIR] [--no-compaction] [--data-parent DIR]
#                                   [--config FILE]   (broker settings; default the soak's own)
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=60 OUT=results/soak-flat-tails COMPACTION=1 DATA_PARENT=/tmp CONFIG=bench-harness/workloads/soak-broker.toml
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) MINUTES=$2; shift ;;
        --out) OUT=$2; shift ;;
        --no-compaction) COMPACTION=0 ;;
        --data-parent) DATA_PARENT=$2; shift ;;
        --config) CONFIG=$2; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
TARGET=${CARGO_TARGET_DIR:-target}
BIN=${RIPTIDE_BIN:-$TARGET/release/riptide}
BENCH=$TARGET/release/riptide-bench
mkdir -p "$OUT"
DATA=$(mktemp -d "$DATA_PARENT/soak-flat-tails.XXXXXX")
READY=$DATA.ready.json
"$BIN" serve --data-dir "$DATA" --listen 127.0.0.1:0 --metrics-listen off --rest-listen off \
    --ready-file "$READY" --config "$CONFIG" >"$OUT/broker.log" 2>&1 &
PID=$!
BESIDE=
cleanup() {
    [ -n "$BESIDE" ] && kill "$BESIDE" 2>/dev/null || true
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    rm -rf "$DATA" "$READY"
}
trap cleanup EXIT
ADDR=
for _ in $(seq 300); do
    ADDR=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["kafka"])' "$READY" 2>/dev/null) && break
    sleep 0.1
done
[ -n "$ADDR" ] || { echo "riptide did not report its address" >&2; exit 1; }
echo "riptide pid $PID at $ADDR, data $DATA"
SECONDS_MEASURED=$((MINUTES * 60))
if [ "$COMPACTION" = 1 ]; then
    # Starts first and runs a minute longer, so compaction is going on for the whole measured run.
    "$BENCH" run bench-harness/workloads/soak-compacted-beside.yaml --brokers "$ADDR" \
        --duration $((SECONDS_MEASURED + 60)) --window 60 --out "$OUT/beside" >"$OUT/beside.log" 2>&1 &
    BESIDE=$!
    sleep 10
fi
"$BENCH" run bench-harness/workloads/soak-small-batches-keyed.yaml --brokers "$ADDR" --broker-pid "$PID" \
    --watch-dir "$DATA" --duration "$SECONDS_MEASURED" --window 1 --out "$OUT" | tee "$OUT/summary.txt"
if [ -n "$BESIDE" ]; then
    wait "$BESIDE" || echo "the compacted workload beside failed: see $OUT/beside.log" >&2
    BESIDE=
fi
