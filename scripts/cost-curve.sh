#!/usr/bin/env bash
# The cost curve over partitions (issue 18, item 5): one topic with P partitions (default 1, 16,
# 256, 4096), a fixed produce rate of 1 KiB records with one consumer (workload
# workloads/1-topic-16-partitions-1kb-50mbps.yaml with its partition count replaced), against a
# fresh release broker per point. Reports what riptide-bench measured (publish rate, p50/p99)
# beside the broker's CPU per GB (/proc), its RSS at the end and its peak RSS, and the idle
# broker's CPU over 10 s after the load (with all P partitions open). Not run in CI.
# Usage: scripts/cost-curve.sh [--duration S] [--shards N] [P...]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=15 SHARDS=2 PARTS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift ;;
        --shards) SHARDS=$2; shift ;;
        *) PARTS+=("$1") ;;
    esac
    shift
done
[ ${#PARTS[@]} -gt 0 ] || PARTS=(1 16 256 4096)
BIN=${RIPTIDE_BIN:-${CARGO_TARGET_DIR:-target}/release/riptide}
BENCH=${CARGO_TARGET_DIR:-target}/release/riptide-bench
[ -x "$BIN" ] || cargo build --release -p riptide-server
[ -x "$BENCH" ] || cargo build --release -p riptide-bench
TICKS=$(getconf CLK_TCK)
printf '| partitions | publish msgs/s | publish p50 / p99 ms | broker CPU-s/GB | RSS end / peak MiB | idle CPU %% (10 s) |\n|---|---|---|---|---|---|\n'
for P in "${PARTS[@]}"; do
    W=$(mktemp --suffix=.yaml)
    sed -e "s/^partitionsPerTopic: .*/partitionsPerTopic: $P/" -e "s/^name: .*/name: cost-$P/" \
        workloads/1-topic-16-partitions-1kb-50mbps.yaml > "$W"
    DATA=$(mktemp -d)
    PORT=$((20000 + RANDOM % 20000))
    "$BIN" serve --data-dir "$DATA" --listen "127.0.0.1:$PORT" --metrics-listen off --rest-listen off \
        --shards "$SHARDS" 2>"$DATA.log" &
    PID=$!
    for _ in $(seq 100); do kcat -b "127.0.0.1:$PORT" -L -t none >/dev/null 2>&1 && break; sleep 0.1; done
    c0=$(awk '{print $14 + $15}' "/proc/$PID/stat")
    "$BENCH" run "$W" --brokers "127.0.0.1:$PORT" --duration "$DURATION" --warmup 3 --out "$DATA-results" \
        >/dev/null 2>&1 || echo "P=$P: riptide-bench failed" >&2
    c1=$(awk '{print $14 + $15}' "/proc/$PID/stat")
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status") peak=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")
    sleep 10
    c2=$(awk '{print $14 + $15}' "/proc/$PID/stat")
    kill $PID; wait $PID 2>/dev/null || true
    python3 - "$DATA-results/cost-$P.json" "$c0" "$c1" "$c2" "$TICKS" "$rss" "$peak" "$P" <<'EOF'
import json, sys
path, c0, c1, c2, ticks, rss, peak, parts = sys.argv[1:]
r = json.load(open(path))
rate = r["aggregatedPublishRate"]
lat = r["aggregatedPublishLatency"]
cpu = (int(c1) - int(c0)) / int(ticks)
idle = (int(c2) - int(c1)) / int(ticks) / 10 * 100
# The CPU window covers the warm-up and drain as well; count the bytes of both.
gb = r["aggregatedPublishMBps"] * (r["config"]["testDurationSeconds"] + r["config"]["warmupSeconds"]) / 1e3
per_gb = f"{cpu / gb:.2f}" if gb else f"{cpu:.1f} CPU-s"
p50, p99 = lat["p50"], lat["p99"]
print(f"| {parts} | {rate:,.0f} | {p50} / {p99} | {per_gb} | {int(rss)//1024} / {int(peak)//1024} | {idle:.1f} |")
EOF
    rm -rf "$DATA" "$DATA.log" "$DATA-results" "$W"
done
