#!/usr/bin/env bash
# The cost curve over message sizes (issue 18, item 5): riptide-bench producing records of S bytes
# (default 100 B, 1 KiB, 16 KiB, 128 KiB, 1 MiB) at the most it can (producerRate 0), one topic of
# 16 partitions, acks=all, 1 MiB batches, linger 1 ms, 5 in flight (--in-flight N), no consumer, against a fresh
# release broker (2 shards, durability.policy=fsync, the default log.io) per point. Reports the
# publish rate (msgs/s and MB/s), p50/p99, the broker's CPU per GB from /proc over warm-up + run,
# its CPU % and RSS at the end, and riptide-bench's own CPU % (the client's), beside fio's limits
# for the same disk (1 MiB sequential writes, buffered + fdatasync each and O_DIRECT + fdatasync
# each), measured at the start of each round. Retention is capped (64 MiB per partition, 16 MiB
# segments, checked every 2 s): a point kept ~2 GB on disk here; each data directory
# is removed after its point. Before each point it waits (at most 2 min) until no rustc runs.
# Not run in CI.
# Usage: scripts/cost-curve-sizes.sh [--rounds R] [--duration S] [--shards N] [--in-flight N] [SIZE...]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=2 DURATION=8 SHARDS=2 IN_FLIGHT=5 SIZES=()
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --shards) SHARDS=$2; shift ;;
        --in-flight) IN_FLIGHT=$2; shift ;;
        *) SIZES+=("$1") ;;
    esac
    shift
done
[ ${#SIZES[@]} -gt 0 ] || SIZES=(100 1024 16384 131072 1048576)
BIN=${RIPTIDE_BIN:-${CARGO_TARGET_DIR:-target}/release/riptide}
BENCH=${CARGO_TARGET_DIR:-target}/release/riptide-bench
TICKS=$(getconf CLK_TCK)
PID="" DATA="" W=""
cleanup() {
    if [ -n "$PID" ]; then
        kill "$PID" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    if [ -n "$DATA" ]; then rm -rf "$DATA" "$DATA.log" "$DATA-results"; fi
    if [ -n "$W" ]; then rm -f "$W"; fi
    PID="" DATA="" W=""
}
trap cleanup EXIT

wait_quiet() {  # other work on this shared machine: wait for builds to finish, 2 min at most
    for _ in $(seq 120); do pgrep -x rustc >/dev/null || return 0; sleep 1; done
    echo "rustc still running after 2 min; measuring anyway" >&2
}

fio_mbps() {  # $1 = 0 (buffered) or 1 (O_DIRECT): 1 GiB of 1 MiB writes, fdatasync after each
    local f
    f=$(mktemp -p "${TMPDIR:-/tmp}" fio.XXXXXX)
    fio --name=w --filename="$f" --size=1g --bs=1m --rw=write --ioengine=psync --direct="$1" \
        --fdatasync=1 --output-format=json 2>/dev/null | python3 -c \
        'import json,sys; print(round(json.load(sys.stdin)["jobs"][0]["write"]["bw_bytes"] / 1e6))'
    rm -f "$f"
}

point() {  # $1 = round, $2 = record size in bytes
    local round=$1 size=$2
    wait_quiet
    W=$(mktemp --suffix=.yaml)
    cat > "$W" <<EOF
name: size-$size
topics: 1
partitionsPerTopic: 16
messageSize: $size
payload: random
producersPerTopic: 1
subscriptionsPerTopic: 0
consumerPerSubscription: 1
producerRate: 0
acks: all
compression: none
batchSizeBytes: 1048576
lingerMs: 1
maxInFlight: $IN_FLIGHT
warmupDurationSeconds: 2
testDurationSeconds: $DURATION
topicConfig:
  max.message.bytes: 2097152
  retention.bytes: 67108864
  segment.bytes: 16777216
EOF
    DATA=$(mktemp -d)
    PORT=$((20000 + RANDOM % 20000))
    "$BIN" serve --data-dir "$DATA" --listen "127.0.0.1:$PORT" --metrics-listen off --rest-listen off \
        --shards "$SHARDS" --override log.retention.check.interval.ms=2000 2>"$DATA.log" &
    PID=$!
    for _ in $(seq 100); do kcat -b "127.0.0.1:$PORT" -L -t none >/dev/null 2>&1 && break; sleep 0.1; done
    local c0 c1 t0 t1 rss disk
    c0=$(awk '{print $14 + $15}' "/proc/$PID/stat") t0=$(date +%s.%N)
    timeout 120 "$BENCH" run "$W" --brokers "127.0.0.1:$PORT" --keep-topics --out "$DATA-results" \
        >/dev/null 2>&1 || echo "size $size: riptide-bench failed" >&2
    c1=$(awk '{print $14 + $15}' "/proc/$PID/stat") t1=$(date +%s.%N)
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
    # Retention may delete a file while du walks the directory: du still prints the total.
    disk=$(du -sm "$DATA" 2>/dev/null | cut -f1) || true
    python3 - "$DATA-results/size-$size.json" "$c0" "$c1" "$t0" "$t1" "$TICKS" "$rss" "$disk" "$round" <<'EOF'
import json, sys
path, c0, c1, t0, t1, ticks, rss, disk, rnd = sys.argv[1:]
r = json.load(open(path))
cfg = r["config"]
cpu = (int(c1) - int(c0)) / int(ticks)
wall = float(t1) - float(t0)
# The CPU window covers start-up, warm-up and the run; count the bytes of warm-up and run.
gb = r["aggregatedPublishMBps"] * (cfg["testDurationSeconds"] + cfg["warmupSeconds"]) / 1e3
lat = r["aggregatedPublishLatency"]
print(json.dumps({"round": int(rnd), "size": cfg["messageSize"], "in_flight": cfg.get("maxInFlight"), "msgs_s": round(r["aggregatedPublishRate"]),
                  "mb_s": round(r["aggregatedPublishMBps"], 1), "p50_ms": lat["p50"], "p99_ms": lat["p99"],
                  "broker_cpu_s_per_gb": round(cpu / gb, 2) if gb else None,
                  "broker_cpu_pct": round(cpu / wall * 100), "client_cpu_pct": round(r["cpu"]["harnessCpuSeconds"]
                  / r["cpu"]["wallSeconds"] * 100), "rss_mib": int(rss) // 1024, "disk_mib": int(disk),
                  "errors": r["errors"]}))
EOF
    cleanup
}

for round in $(seq "$ROUNDS"); do
    wait_quiet
    echo "{\"round\": $round, \"fio_1mib_buffered_fdatasync_mb_s\": $(fio_mbps 0), \"fio_1mib_direct_fdatasync_mb_s\": $(fio_mbps 1)}"
    for size in "${SIZES[@]}"; do point "$round" "$size"; done
done
