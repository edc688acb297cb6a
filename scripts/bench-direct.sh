#!/usr/bin/env bash
# Direct (O_DIRECT, `log.io=direct`) against buffered appends, same session, interleaved rounds
# (buffered, direct, buffered, direct, ...), for docs/BENCHMARKS.md (issue 18). Per round and
# mode, a fresh release broker (1 shard, durability fsync) and data directory:
#   * produce N x 1 KiB with kcat, acks=all, to 1 and to 16 partitions: throughput, broker
#     CPU-s per GB (utime+stime from /proc) and kcat's CPU;
#   * consume the 1-partition topic back: the same figures;
#   * (with --latency) acks=all latency at 5,000 msgs/s, linger 0 (scripts/bench_broker.py).
# The disk's limits come first: fio, 1 MiB sequential writes with fdatasync each, buffered and
# O_DIRECT, with fio's own CPU per GB.
# Needs kcat, fio, GNU time. Not run in CI.
# With --landing the two modes are direct appends with and without `socket.receive.landing`
# (record sets received straight into the stage against copied there) instead.
# Usage: scripts/bench-direct.sh [--rounds R] [--messages N] [--latency] [--landing] [DATA_PARENT]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=2 MESSAGES=500000 LATENCY=0 PARENT=/work/bench-data MODES=${MODES:-"buffered direct"}
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift ;;
        --messages) MESSAGES=$2; shift ;;
        --latency) LATENCY=1 ;;
        --landing) MODES="direct-copy direct-landing" ;;
        *) PARENT=$1 ;;
    esac
    shift
done
BIN=${RIPTIDE_BIN:-target/release/riptide}
PORT=19098
mkdir -p "$PARENT"
[ -x "$BIN" ] || cargo build --release -p riptide-server
LINES="$PARENT/lines-1k-$MESSAGES.txt"
. scripts/lib/lines.sh
lines_1k "$LINES" "$MESSAGES"
BYTES=$(stat -c %s "$LINES")
tick=$(getconf CLK_TCK)

echo "## disk limits (fio, 1 MiB writes, fdatasync after each, 512 MiB)"
for direct in 0 1; do
    rm -f "$PARENT/fio.dat"
    fio --name=gc --filename="$PARENT/fio.dat" --ioengine=psync --rw=write --bs=1m --size=512m \
        --direct=$direct --fdatasync=1 --output-format=json \
      | python3 -c "
import json, sys
j = json.load(sys.stdin)['jobs'][0]; w = j['write']; rt = j['job_runtime'] / 1000
cpu = (j['usr_cpu'] + j['sys_cpu']) / 100 * rt
print(f\"fio direct=$direct: {w['bw_bytes']/1e6:.0f} MB/s, fio CPU {cpu/(w['io_bytes']/1e9):.2f} s/GB\")"
done
rm -f "$PARENT/fio.dat"

PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null || true' EXIT
cpu() { awk '{print $14+$15}' "/proc/$PID/stat"; }
measure() { # label, command...
    local name=$1; shift
    local c0 t0 t1 c1 cu cs
    c0=$(cpu); t0=$(date +%s.%N)
    /usr/bin/time -o "$PARENT/client-time" -f "%U %S" "$@"
    t1=$(date +%s.%N); c1=$(cpu)
    read -r cu cs < "$PARENT/client-time"
    python3 -c "
b=$BYTES; dt=$t1-$t0; cpu=($c1-$c0)/$tick; client=$cu+$cs
print(f'$name: {b/dt/1e6:.0f} MB/s, broker {cpu/(b/1e9):.2f} CPU-s/GB ({100*cpu/dt:.0f}% of a core), kcat {100*client/dt:.0f}% of a core')"
}
KC=(kcat -b 127.0.0.1:$PORT -X linger.ms=5 -X batch.size=1000000)
for round in $(seq 1 "$ROUNDS"); do
    for mode in $MODES; do
        echo "## round $round, $mode"
        rm -rf "$PARENT/broker"
        io=${mode%%-*}
        extra=()
        case "$mode" in
            direct-copy) extra=(--override socket.receive.landing=false) ;;
            direct-landing) extra=(--override socket.receive.landing=true) ;;
        esac
        RIPTIDE_LOG_IO=$io "$BIN" serve --data-dir "$PARENT/broker" --listen 127.0.0.1:$PORT \
            --metrics-listen off --rest-listen off --shards 1 --durability fsync "${extra[@]}" 2>/dev/null &
        PID=$!
        for _ in $(seq 1 50); do kcat -b 127.0.0.1:$PORT -L -t none >/dev/null 2>&1 && break; sleep 0.1; done
        measure "$mode produce acks=all, 1 partition  " "${KC[@]}" -P -t p1 -p 0 -X acks=all -l "$LINES"
        "$BIN" topic create p16 --partitions 16 -b 127.0.0.1:$PORT >/dev/null
        measure "$mode produce acks=all, 16 partitions" "${KC[@]}" -P -t p16 -X acks=all -l "$LINES"
        measure "$mode consume, 1 partition           " sh -c "kcat -b 127.0.0.1:$PORT -C -t p1 -p 0 -o beginning -e -q \
            -X fetch.max.bytes=52428800 -X max.partition.fetch.bytes=10485760 > /dev/null"
        kill $PID; wait $PID 2>/dev/null || true
        PID=
        if [ "$LATENCY" = 1 ]; then
            echo "$mode latency (confluent-kafka, 5000 msgs/s, linger 0, acks=all):"
            RIPTIDE_LOG_IO=$io RIPTIDE_BIN=$BIN .venv/bin/python scripts/bench_broker.py --messages 20000 \
                --rate 5000 --data-parent "$PARENT" 2>/dev/null | grep -E '^\{"latency' || true
        fi
    done
done
