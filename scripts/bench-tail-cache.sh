#!/usr/bin/env bash
# The tail cache of direct appends (issue 18 item 2; engine/src/io/direct/cache.rs), on and off,
# same session, interleaved rounds. Per round and setting, a fresh release broker (1 shard,
# log.io=direct, durability fsync) and data directory: kcat produces N x 1 KiB to one partition
# (acks=all, 1 MB batches: every group commit flush is a direct write, which leaves nothing in
# the page cache), then a consumer a little behind the tail reads the last LAG records: consume
# throughput, broker CPU-s per GB consumed, and the bytes the broker read from the device
# (read_bytes in /proc/PID/io). The page cache is dropped before each consume where allowed, so
# that a leftover of the producer run cannot serve the off case.
# Needs kcat, GNU time. Not run in CI.
# Usage: scripts/bench-tail-cache.sh [--rounds R] [--messages N] [--lag L] [DATA_PARENT]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=2 MESSAGES=200000 LAG=40000 PARENT=/work/bench-data
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift ;;
        --messages) MESSAGES=$2; shift ;;
        --lag) LAG=$2; shift ;;
        *) PARENT=$1 ;;
    esac
    shift
done
BIN=${RIPTIDE_BIN:-target/release/riptide}
PORT=19099
mkdir -p "$PARENT"
LINES="$PARENT/lines-1k-$MESSAGES.txt"
. scripts/lib/lines.sh
lines_1k "$LINES" "$MESSAGES"
tick=$(getconf CLK_TCK)
PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null || true' EXIT
cpu() { awk '{print $14+$15}' "/proc/$PID/stat"; }
disk_reads() { awk '/^read_bytes/ {print $2}' "/proc/$PID/io"; }
for round in $(seq 1 "$ROUNDS"); do
    for cache in 0 67108864; do
        rm -rf "$PARENT/broker"
        printf '"log.direct.cache.bytes" = %s\n' "$cache" > "$PARENT/tail-cache.toml"
        RIPTIDE_LOG_IO=direct "$BIN" serve --data-dir "$PARENT/broker" --listen 127.0.0.1:$PORT \
            --metrics-listen off --rest-listen off --shards 1 --durability fsync \
            --config "$PARENT/tail-cache.toml" 2>/dev/null &
        PID=$!
        for _ in $(seq 1 100); do kcat -b 127.0.0.1:$PORT -L -t none >/dev/null 2>&1 && break; sleep 0.1; done
        kcat -b 127.0.0.1:$PORT -X linger.ms=5 -X batch.size=1000000 -X acks=all -P -t t -p 0 -l "$LINES"
        sync
        echo 1 > /proc/sys/vm/drop_caches 2>/dev/null || echo "(page cache not dropped: not allowed here)"
        c0=$(cpu) r0=$(disk_reads) t0=$(date +%s.%N)
        /usr/bin/time -o "$PARENT/client-time" -f "%U %S" kcat -b 127.0.0.1:$PORT -C -t t -p 0 -o "-$LAG" -e -q \
            -X fetch.max.bytes=52428800 -X max.partition.fetch.bytes=1048576 > "$PARENT/consumed"
        t1=$(date +%s.%N) c1=$(cpu) r1=$(disk_reads)
        got=$(wc -l < "$PARENT/consumed")
        bytes=$(stat -c %s "$PARENT/consumed")
        python3 -c "
b=$bytes; dt=$t1-$t0; cpu=($c1-$c0)/$tick
print(f'round $round, log.direct.cache.bytes=$cache: consumed $got records ({b/1e6:.0f} MB) in {dt:.2f} s, {b/dt/1e6:.0f} MB/s, broker {cpu/(b/1e9):.2f} CPU-s/GB, device reads {($r1-$r0)/1e6:.1f} MB')"
        kill $PID; wait $PID 2>/dev/null || true
        PID=
    done
done
rm -f "$PARENT/consumed" "$PARENT/tail-cache.toml"
