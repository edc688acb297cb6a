#!/usr/bin/env bash
# Zero-copy sends of memory-served fetches (issue 18 item 2; socket.send.zerocopy), on and off,
# same session, interleaved rounds. Per round and setting, a fresh release broker (1 shard,
# log.io=direct, durability fsync, a tail cache big enough for the whole topic, so every fetch
# is served from memory): kcat produces N x 1 KiB to one partition (acks=all, 1 MB batches),
# then READS consumers each read the whole partition from the start. Reported: consume
# throughput, broker CPU-s and whole-machine CPU-s (/proc/stat, every process and softirq) per
# GB consumed, and the bytes the broker sent zero-copy (its metrics).
#
# --netns puts the consumers in a network namespace of their own behind a veth pair
# (10.213.0.1 <-> 10.213.0.2), so the broker's peer is not a loopback address; without it they
# dial 127.0.0.1. Both stay on this machine: the kernel copies zero-copy pages when it delivers
# them to a local socket, so neither shows what a NIC would save; they show what the pinning and
# completion notices cost. Needs root for --netns, kcat, curl. Not run in CI.
# Usage: scripts/bench-zerocopy-send.sh [--rounds R] [--messages N] [--reads K] [--netns] [DATA_PARENT]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=2 MESSAGES=300000 READS=3 NETNS= PARENT=/work/bench-data
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift ;;
        --messages) MESSAGES=$2; shift ;;
        --reads) READS=$2; shift ;;
        --netns) NETNS=rtzc ;;
        *) PARENT=$1 ;;
    esac
    shift
done
BIN=${RIPTIDE_BIN:-target/release/riptide}
PORT=19098 METRICS=19097
mkdir -p "$PARENT"
LINES="$PARENT/lines-1k-$MESSAGES.txt"
. scripts/lib/lines.sh
lines_1k "$LINES" "$MESSAGES"
tick=$(getconf CLK_TCK)
PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null || true
    if [ -n "$NETNS" ]; then
        ip link del rtzc0 2>/dev/null || true
        ip netns del "$NETNS" 2>/dev/null || true
    fi
}
trap cleanup EXIT
ADDR=127.0.0.1
CONSUMER=()
if [ -n "$NETNS" ]; then
    cleanup
    ip netns add "$NETNS"
    ip link add rtzc0 type veth peer name rtzc1
    ip link set rtzc1 netns "$NETNS"
    ip addr add 10.213.0.1/24 dev rtzc0
    ip link set rtzc0 up
    ip netns exec "$NETNS" ip addr add 10.213.0.2/24 dev rtzc1
    ip netns exec "$NETNS" ip link set rtzc1 up
    ip netns exec "$NETNS" ip link set lo up
    ADDR=10.213.0.1
    CONSUMER=(ip netns exec "$NETNS")
fi
cpu() { awk '{print $14+$15}' "/proc/$PID/stat"; }
busy() { awk '/^cpu / {print $2+$3+$4+$7+$8}' /proc/stat; }
zc_bytes() { curl -s "http://127.0.0.1:$METRICS/metrics" | awk '/^riptide_zerocopy_bytes_out_total/ {v=$2} END {print v+0}'; }
for round in $(seq 1 "$ROUNDS"); do
    for mode in off on; do
        rm -rf "$PARENT/broker"
        "$BIN" serve --data-dir "$PARENT/broker" --listen "$ADDR:$PORT" \
            --metrics-listen "127.0.0.1:$METRICS" --rest-listen off --shards 1 --durability fsync \
            --override log.io=direct --override log.direct.cache.bytes=1073741824 \
            --override "socket.send.zerocopy=$mode" 2>/dev/null &
        PID=$!
        for _ in $(seq 1 100); do kcat -b "$ADDR:$PORT" -L -t none >/dev/null 2>&1 && break; sleep 0.1; done
        kcat -b "$ADDR:$PORT" -X linger.ms=5 -X batch.size=1000000 -X acks=all -P -t t -p 0 -l "$LINES"
        z0=$(zc_bytes) c0=$(cpu) s0=$(busy) t0=$(date +%s.%N)
        bytes=0
        for _ in $(seq 1 "$READS"); do
            "${CONSUMER[@]}" kcat -b "$ADDR:$PORT" -C -t t -p 0 -o beginning -e -q \
                -X fetch.max.bytes=52428800 -X max.partition.fetch.bytes=4194304 > "$PARENT/consumed"
            got=$(wc -l < "$PARENT/consumed")
            [ "$got" = "$MESSAGES" ] || { echo "consumed $got of $MESSAGES" >&2; exit 1; }
            bytes=$((bytes + $(stat -c %s "$PARENT/consumed")))
        done
        t1=$(date +%s.%N) c1=$(cpu) s1=$(busy) z1=$(zc_bytes)
        python3 -c "
b=$bytes; dt=$t1-$t0; cpu=($c1-$c0)/$tick; machine=($s1-$s0)/$tick
print(f'round $round, socket.send.zerocopy=$mode${NETNS:+ (netns)}: {b/1e6:.0f} MB consumed in {dt:.2f} s, {b/dt/1e6:.0f} MB/s, broker {cpu/(b/1e9):.3f} CPU-s/GB, machine {machine/(b/1e9):.3f} CPU-s/GB, zero-copy {(float(\"$z1\")-float(\"$z0\"))/1e6:.0f} MB')"
        kill $PID; wait $PID 2>/dev/null || true
        PID=
    done
done
rm -f "$PARENT/consumed"
