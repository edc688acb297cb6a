#!/usr/bin/env bash
# Broker throughput beside the machine's limits, in one session (issue 4, docs/BENCHMARKS.md):
#   * loopback limit: iperf3, 5 s;
#   * disk limit: fio, io_uring, 1 MiB sequential appends to a fresh file with fdatasync after each
#     (the broker's group commit syncs about once per produce request of ~1 MiB here);
#   * riptide (release, 1 shard) with kcat (librdkafka): 1,000,000 x 1 KiB produced with acks=1 and
#     acks=all, then consumed, timing each and the broker's CPU time (utime+stime from /proc);
#   * produce latency percentiles at a fixed rate with confluent-kafka (scripts/bench_broker.py).
# Needs: kcat, fio, iperf3, GNU time (apt-get install kcat fio iperf3 time), the .venv of .ci/run.
# Usage: scripts/bench_broker.sh [DATA_PARENT]   (default /work/bench-data; not run in CI)
set -euo pipefail
cd "$(dirname "$0")/.."
PARENT=${1:-/work/bench-data}
BIN=${RIPTIDE_BIN:-target/release/riptide}
PORT=19097
mkdir -p "$PARENT"
[ -x "$BIN" ] || cargo build --release -p riptide-server
LINES="$PARENT/lines-1k.txt"
. scripts/lib/lines.sh
lines_1k "$LINES" 1000000
BYTES=$(stat -c %s "$LINES")

echo "## loopback (iperf3 -t 5)"
iperf3 -s -D -1 >/dev/null; sleep 0.3
iperf3 -c 127.0.0.1 -t 5 -J | python3 -c "import json,sys; e=json.load(sys.stdin)['end']; print('iperf3_MBps', round(e['sum_received']['bits_per_second']/8e6))"

echo "## disk (fio write 1 MiB + fdatasync each, fresh file)"
rm -f "$PARENT/fio.dat"
fio --name=gc --filename="$PARENT/fio.dat" --ioengine=io_uring --rw=write --bs=1m --size=512m \
    --fdatasync=1 --fallocate=none --end_fsync=1 --output-format=json \
  | python3 -c "import json,sys; j=json.load(sys.stdin)['jobs'][0]['write']; print('fio_MBps', round(j['bw_bytes']/1e6))"
rm -f "$PARENT/fio.dat"

rm -rf "$PARENT/broker"
"$BIN" serve --data-dir "$PARENT/broker" --listen 127.0.0.1:$PORT --metrics-listen off --shards 1 2>/dev/null &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
sleep 0.5
cpu() { awk '{print $14+$15}' /proc/$PID/stat; }
tick=$(getconf CLK_TCK)
run() { # name, command...
    local name=$1; shift
    local c0 t0 t1 c1
    c0=$(cpu); t0=$(date +%s.%N)
    /usr/bin/time -o "$PARENT/client-time" -f "%U %S" "$@"
    t1=$(date +%s.%N); c1=$(cpu)
    read -r cu cs < "$PARENT/client-time"
    python3 -c "
b=$BYTES; dt=$t1-$t0; cpu=($c1-$c0)/$tick; client=$cu+$cs
print(f'$name: {dt:.2f} s, {1e6/dt:,.0f} msgs/s, {b/dt/1e6:.0f} MB/s, broker CPU {cpu/(b/1e9):.2f} s/GB ({100*cpu/dt:.0f}% of a core), client CPU {100*client/dt:.0f}% of a core')"
}
KC=(kcat -b 127.0.0.1:$PORT -X linger.ms=5 -X batch.size=1000000)
run "produce acks=1  " "${KC[@]}" -P -t acks1 -p 0 -X acks=1 -l "$LINES"
run "produce acks=all" "${KC[@]}" -P -t acksall -p 0 -X acks=all -l "$LINES"
run "consume         " sh -c "kcat -b 127.0.0.1:$PORT -C -t acks1 -p 0 -o beginning -e -q -X fetch.max.bytes=52428800 -X max.partition.fetch.bytes=10485760 > /dev/null"
kill $PID; wait $PID 2>/dev/null || true
trap - EXIT

echo "## produce latency (confluent-kafka, 5000 msgs/s, 10 s, open loop)"
RIPTIDE_BIN=$BIN .venv/bin/python scripts/bench_broker.py --messages 10000 --rate 5000 --data-parent "$PARENT" 2>/dev/null \
  | grep -E '^\{"latency'
