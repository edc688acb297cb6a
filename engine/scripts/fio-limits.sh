#!/usr/bin/env bash
# fio limits for the storage-engine benchmarks: the same block sizes and fdatasync rates as
# examples/engine_bench.rs, io_uring engine, buffered I/O, on a fresh file each run (an append-only
# log also grows its file, so every fdatasync also commits block allocation and the file size).
# Usage: engine/scripts/fio-limits.sh [DIR] ; env SIZE (default 1g), LAT_SECONDS (default 10).
set -euo pipefail
DIR=${1:-/work/bench-engine}
SIZE=${SIZE:-1g}
LAT_SECONDS=${LAT_SECONDS:-10}
mkdir -p "$DIR"
F="$DIR/fio.dat"

summary() { python3 "$(dirname "$0")/fio-summary.py" "$1"; }

run_write() { # name, extra fio args...
  local name=$1; shift
  rm -f "$F"
  fio --name="$name" --filename="$F" --ioengine=io_uring --direct=0 --fallocate=none --rw=write \
      --output-format=json --percentile_list=50:99:99.9 "$@" | summary "$name"
}

for bs in 16k 64k 1m; do
  bytes=$(( $(numfmt --from=iec "${bs^^}") ))
  per_mib=$(( 1048576 / bytes )); [ "$per_mib" -lt 1 ] && per_mib=1
  echo "# fio --name=X --filename=$F --ioengine=io_uring --direct=0 --fallocate=none --rw=write --bs=$bs --size=$SIZE [--fdatasync=$per_mib | --fdatasync=1 --time_based --runtime=$LAT_SECONDS]"
  run_write "write bs=$bs no fsync" --bs="$bs" --size="$SIZE"
  run_write "write bs=$bs fdatasync every $per_mib writes (1 MiB)" --bs="$bs" --size="$SIZE" --fdatasync="$per_mib"
  run_write "write bs=$bs fdatasync every write" --bs="$bs" --size="$SIZE" --fdatasync=1 --time_based --runtime="$LAT_SECONDS"
done

# Sequential read from the page cache (the engine's read benchmark reads a warm log too).
rm -f "$F"
fio --name=layout --filename="$F" --ioengine=io_uring --rw=write --bs=1m --size="$SIZE" --output-format=json >/dev/null
for i in 1 2; do
  fio --name="read bs=1m (pass $i)" --filename="$F" --ioengine=io_uring --direct=0 --rw=read --bs=1m --size="$SIZE" \
      --output-format=json | summary "read bs=1m buffered (pass $i)"
done
echo "# fio --name=X --filename=$F --ioengine=io_uring --direct=0 --rw=read --bs=1m --size=$SIZE"
rm -f "$F"
