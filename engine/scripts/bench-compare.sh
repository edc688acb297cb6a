#!/usr/bin/env bash
# Storage engine vs fio, interleaved: for each block size and mode, fio then the engine,
# REPEAT times, so both see the same (noisy, shared) disk. Prints every run; the medians go
# into docs/BENCHMARKS.md. Needs a release build of the example:
#   CARGO_TARGET_DIR=/work/target-engine cargo build --release -p riptide-engine --example engine_bench
# Usage: engine/scripts/bench-compare.sh [DIR]; env REPEAT (3), SIZE_MIB (512), LAT_SECONDS (10), BENCH (path).
set -euo pipefail
DIR=${1:-/work/bench-engine}
REPEAT=${REPEAT:-3}
SIZE_MIB=${SIZE_MIB:-512}
LAT_SECONDS=${LAT_SECONDS:-10}
BENCH=${BENCH:-${CARGO_TARGET_DIR:-/work/target-engine}/release/examples/engine_bench}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$DIR"
F="$DIR/fio.dat"
GIB=$(python3 -c "print($SIZE_MIB/1024)")

fio_write() { # label, fio args...
  local label=$1; shift
  rm -f "$F"
  fio --name=x --filename="$F" --ioengine=io_uring --direct=0 --fallocate=none --rw=write \
      --output-format=json --percentile_list=50:99:99.9 "$@" | python3 "$HERE/fio-summary.py" "fio    $label"
  rm -f "$F"
}

engine() { # label, engine_bench args...
  local label=$1; shift
  "$BENCH" --dir "$DIR" --gib "$GIB" --seconds "$LAT_SECONDS" "$@" | grep -v '^engine_bench:' | sed "s/^/engine $label: /"
}

for kib in 16 64 1024; do
  per_mib=$(( 1024 / kib )); [ "$per_mib" -lt 1 ] && per_mib=1
  for r in $(seq "$REPEAT"); do
    fio_write "bs=${kib}k no-fsync" --bs="${kib}k" --size="${SIZE_MIB}m"
    engine "bs=${kib}k no-fsync" --only append-nofsync --batch-kib "$kib"
    fio_write "bs=${kib}k fdatasync/${per_mib}" --bs="${kib}k" --size="${SIZE_MIB}m" --fdatasync="$per_mib"
    engine "bs=${kib}k group-commit" --only append-gc --batch-kib "$kib"
    # Time-based with a file larger than what 10 s can write: fio must append, never wrap.
    fio_write "bs=${kib}k fdatasync-every-write" --bs="${kib}k" --size=16g --fdatasync=1 --time_based --runtime="$LAT_SECONDS"
    engine "bs=${kib}k durable" --only latency --batch-kib "$kib"
  done
done

for r in $(seq "$REPEAT"); do
  rm -f "$F"
  fio --name=layout --filename="$F" --ioengine=io_uring --rw=write --bs=64k --size="${SIZE_MIB}m" --output-format=json >/dev/null
  fio --name=warm --filename="$F" --ioengine=psync --invalidate=0 --rw=read --bs=1m --size="${SIZE_MIB}m" --output-format=json >/dev/null
  fio --name=x --filename="$F" --ioengine=io_uring --direct=0 --invalidate=0 --rw=read --bs=1m --size="${SIZE_MIB}m" \
      --output-format=json | python3 "$HERE/fio-summary.py" "fio    read bs=1m io_uring"
  fio --name=x --filename="$F" --ioengine=psync --direct=0 --invalidate=0 --rw=read --bs=1m --size="${SIZE_MIB}m" \
      --output-format=json | python3 "$HERE/fio-summary.py" "fio    read bs=1m psync"
  rm -f "$F"
  engine "read" --only read
done
engine "recovery" --only recovery --recovery-gib 1 --drop-caches
