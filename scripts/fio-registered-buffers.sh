#!/usr/bin/env bash
# Registered (fixed) buffers for O_DIRECT writes, measured with fio (issue 18; docs/BENCHMARKS.md):
#   1. overwrite: 1 GiB of sequential O_DIRECT writes through io_uring at queue depth 1 into a
#      file fio lays out first, --fixedbufs=0 against 1, CPU-s per GB from fio's usr+sys;
#   2. append: the same writes into a file that grows (nothing preallocated), as the broker's
#      segment appends do: pwrite (psync) against io_uring with and without registered buffers,
#      whole-process CPU (io-wq workers included) and context switches from GNU time.
# Needs fio and GNU time. Not run in CI.
# Usage: scripts/fio-registered-buffers.sh [--rounds R] [DIR]
set -euo pipefail
ROUNDS=2 DIR=/work/bench-data
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift ;;
        *) DIR=$1 ;;
    esac
    shift
done
mkdir -p "$DIR"
F="$DIR/fio-registered.tmp" OUT="$DIR/fio-registered.json" TIME="$DIR/fio-registered.time"
trap 'rm -f "$F" "$OUT" "$TIME"' EXIT
bytes() { case "$1" in 16k) echo 16384 ;; 64k) echo 65536 ;; 256k) echo 262144 ;; 1m) echo 1048576 ;; esac; }
for round in $(seq "$ROUNDS"); do
    for bs in 16k 64k 256k 1m; do
        for fixed in 0 1; do
            fio --name=t --filename="$F" --size=1g --bs=$bs --rw=write --ioengine=io_uring --direct=1 \
                --fixedbufs=$fixed --iodepth=1 --output-format=json > "$OUT"
            python3 - "$OUT" "$round" "$bs" "$fixed" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]; w = j["write"]
cpu = (j["usr_cpu"] + j["sys_cpu"]) / 100 * w["runtime"] / 1000
print(f"overwrite, round {sys.argv[2]}, {sys.argv[3]:>4} writes, fixedbufs {sys.argv[4]}: "
      f"{w['bw_bytes'] / 1e6:.0f} MB/s, {cpu / (w['io_bytes'] / 1e9):.3f} CPU-s/GB")
PY
        done
    done
    for bs in 256k 1m; do
        for mode in "psync 0" "io_uring 0" "io_uring 1"; do
            set -- $mode
            rm -f "$F"
            extra=()
            [ "$1" = io_uring ] && extra=(--fixedbufs="$2" --iodepth=1)
            /usr/bin/time -o "$TIME" -f "%U %S %w %c" fio --name=t --filename="$F" --size=1g --bs=$bs \
                --rw=write --ioengine="$1" --direct=1 --fallocate=none --create_on_open=1 "${extra[@]}" \
                --output-format=json > "$OUT"
            python3 - "$OUT" "$TIME" "$round" "$bs" "$(bytes $bs)" "$1" "$2" <<'PY'
import json, sys
out, tfile, rnd, bs, size, engine, fixed = sys.argv[1:]
w = json.load(open(out))["jobs"][0]["write"]
u, s, vol, invol = open(tfile).read().split()
gb, writes = w["io_bytes"] / 1e9, w["io_bytes"] / int(size)
print(f"append, round {rnd}, {bs:>4} writes, {engine} fixedbufs {fixed}: {w['bw_bytes'] / 1e6:.0f} MB/s, "
      f"process CPU {(float(u) + float(s)) / gb:.3f} s/GB, {(int(vol) + int(invol)) / writes:.1f} context switches per write")
PY
        done
    done
done
