#!/usr/bin/env bash
# Reproduces the headline table of docs/BENCHMARKS.md ("Harness (riptide-bench)") with one
# command: machine limits (fio, iperf3), the harness's own ceiling against its discard broker,
# then every workload in workloads/ against a freshly spawned release riptide, and the table.
#
# Usage: scripts/bench.sh [--long] [--update-docs] [--out DIR] [--data DIR]
#   default   short runs (about 4-5 minutes in all): 10 s measured + 3 s warm-up per workload,
#             a 5 s probe and 5 s steps for the latency sweep
#   --long    the durations written in the workload files (60 s per workload; ~25 minutes)
#   --update-docs  rewrite the generated part of docs/BENCHMARKS.md and docs/bench/*.svg
# Needs fio and iperf3 for the limits (apt-get install fio iperf3); runs without them, with
# the "of limit" column empty. Not run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."

LONG=0 UPDATE_DOCS=0 OUT=bench-results DATA=${TMPDIR:-/tmp}
while [ $# -gt 0 ]; do
    case "$1" in
        --long) LONG=1 ;;
        --update-docs) UPDATE_DOCS=1 ;;
        --out) OUT=$2; shift ;;
        --data) DATA=$2; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release -p riptide-server -p riptide-bench
BENCH="$TARGET_DIR/release/riptide-bench"
export RIPTIDE_BIN="$TARGET_DIR/release/riptide"
mkdir -p "$OUT"

SHORT=()
SWEEP=()
if [ "$LONG" = 0 ]; then
    SHORT=(--duration 10 --warmup 3)
    SWEEP=(--duration 5 --warmup 2 --probe 5)
fi

echo "== machine limits"
"$BENCH" baseline --dir "$DATA" --seconds 5 --out "$OUT/baseline.json"

echo "== harness ceiling (discard broker, 1,000,000 msgs/s x 100 B)"
"$BENCH" run workloads/harness-ceiling-100b.yaml --discard --out "$OUT" --baseline "$OUT/baseline.json" --data-dir "$DATA"

WORKLOADS=(
    1-topic-1-partition-1kb-max
    1-topic-16-partitions-1kb-50mbps
    1-topic-8-partitions-100b-max
    1-topic-1-partition-64kb-max
    fanout-1-producer-4-groups
)
for w in "${WORKLOADS[@]}"; do
    echo "== $w"
    "$BENCH" run "workloads/$w.yaml" --spawn --out "$OUT" --baseline "$OUT/baseline.json" --data-dir "$DATA" "${SHORT[@]}"
done
echo "== latency-sweep-1kb"
"$BENCH" run workloads/latency-sweep-1kb.yaml --spawn --out "$OUT" --baseline "$OUT/baseline.json" --data-dir "$DATA" "${SWEEP[@]}"

RESULTS=()
for w in "${WORKLOADS[@]}"; do RESULTS+=("$OUT/$w.json"); done
RESULTS+=("$OUT/latency-sweep-1kb.json")
"$BENCH" compare "${RESULTS[@]}" --baseline "$OUT/baseline.json" --plot "$OUT/compare-all.svg" > "$OUT/headline.md"
# The plot shows the workloads and the sweep's probe; the sweep's steps have their own plot.
MAIN=()
for w in "${WORKLOADS[@]}"; do MAIN+=("$OUT/$w.json"); done
"$BENCH" compare "${MAIN[@]}" "$OUT/latency-sweep-1kb-probe.json" --plot "$OUT/compare.svg" > /dev/null
"$BENCH" compare "$OUT/harness-ceiling-100b.json" --plot "$OUT/ceiling-compare.svg" > "$OUT/ceiling.md"

python3 - "$OUT" <<'PY' > "$OUT/generated.md"
import json, sys, datetime
out = sys.argv[1]
b = json.load(open(f"{out}/baseline.json"))
c = json.load(open(f"{out}/harness-ceiling-100b.json"))
when = datetime.datetime.fromtimestamp(b["measuredAtUnixMs"] / 1000, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
fmt = lambda v: "not measured" if v is None else f"{v:,.0f} MB/s"
print(f"Run {when} on {b['machine']}.\n")
print(f"**Machine limits** (`riptide-bench baseline`): disk {fmt(b.get('fioWriteFdatasyncMBps'))} "
      f"(fio, io_uring, 1 MiB appends + fdatasync each), {fmt(b.get('fioWriteMBps'))} without syncs; "
      f"loopback {fmt(b.get('iperf3LoopbackMBps'))} (iperf3, one TCP stream).\n")
p = c["aggregatedPublishLatency"]
behind = max(c["producerLag"] or [0])
print(f"**Harness ceiling** (discard broker, target {c['config']['targetRate']:,.0f} msgs/s of 100 B, "
      f"{c['config']['testDurationSeconds']:.0f} s): published **{c['aggregatedPublishRate']:,.0f} msgs/s** "
      f"({c['aggregatedPublishMBps']:.0f} MB/s), publish p50 {p['p50']:.2f} ms, p99 {p['p99']:.2f} ms, "
      f"max {p['max']:.1f} ms; most messages behind schedule in any second: {behind:,}; harness CPU "
      f"{c['cpu']['harnessCpuSeconds']:.1f} s over {c['cpu']['wallSeconds']:.1f} s wall, discard broker "
      f"{(c['cpu']['brokerCpuSeconds'] or 0):.1f} s; errors {c['errors']}.\n")
print(open(f"{out}/headline.md").read())
names = ["1-topic-1-partition-1kb-max", "1-topic-16-partitions-1kb-50mbps", "1-topic-8-partitions-100b-max",
         "1-topic-1-partition-64kb-max", "fanout-1-producer-4-groups", "harness-ceiling-100b"]
print("Plots (in `docs/bench/`): " + "; ".join(
    f"{n}: [percentiles](bench/{n}-latency.svg), [over time](bench/{n}-timeseries.svg)" for n in names) + ".\n")
print("![latency against throughput](bench/latency-sweep-1kb-sweep.svg)\n")
print("![all runs: percentile curves and throughput](bench/compare.svg)")
PY
cat "$OUT/generated.md"

if [ "$UPDATE_DOCS" = 1 ]; then
    mkdir -p docs/bench
    cp "$OUT"/*-latency.svg "$OUT"/*-timeseries.svg "$OUT"/*-sweep.svg "$OUT/compare.svg" docs/bench/ 2>/dev/null || true
    rm -f docs/bench/*-probe-*.svg docs/bench/*pct-*.svg
    python3 - "$OUT/generated.md" docs/BENCHMARKS.md <<'PY'
import sys, re
generated, doc = open(sys.argv[1]).read(), sys.argv[2]
text = open(doc).read()
begin, end = "<!-- bench.sh:begin -->", "<!-- bench.sh:end -->"
if begin not in text:
    sys.exit("docs/BENCHMARKS.md has no bench.sh markers")
text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: f"{begin}\n{generated}\n{end}", text, flags=re.S)
open(doc, "w").write(text)
PY
    echo "updated docs/BENCHMARKS.md and docs/bench/"
fi
