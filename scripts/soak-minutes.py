#!/usr/bin/env python3
"""Per-minute table of a soak run with per-second windows (riptide-bench run ... --window 1):
for each minute of the measured phase, the worst second's publish p99 (and p99.9, and the
second it happened), against the median second's p99, with the segment rolls, deletions and
compactions the harness saw in that minute; then the whole run's publish p99 and p99.9, and the
seconds with a deletion (compaction, roll) against those without. Issue
22's flat-tails goal: no minute's worst per-second p99 above 3x the median per-second p99, and a
whole-run p99.9 under 10 ms.

Usage: scripts/soak-minutes.py RESULT.json [--markdown]
"""
import json
import statistics
import sys


def main():
    path = sys.argv[1]
    markdown = "--markdown" in sys.argv[2:]
    r = json.load(open(path))
    seconds = [w for w in r["windows"] if w["phase"] == "measure" and w["seconds"] == 1]
    if not seconds:
        sys.exit("no measured one-second windows: run with --window 1")
    p99s = [w["publishLatency"]["p99"] for w in seconds]
    median = statistics.median(p99s)
    first = seconds[0]["endSecond"]
    events = {}
    for e in r.get("segmentEvents", []):
        minute = (e["second"] - first) // 60
        kinds = events.setdefault(minute, {})
        kinds[e["kind"]] = kinds.get(e["kind"], 0) + e["segments"]
    minutes = {}
    for w in seconds:
        minutes.setdefault((w["endSecond"] - first) // 60, []).append(w)
    rows = []
    for m in sorted(minutes):
        ws = minutes[m]
        worst = max(ws, key=lambda w: w["publishLatency"]["p99"])
        kinds = events.get(m, {})
        rows.append((m + 1, worst["publishLatency"]["p99"], worst["publishLatency"]["p99"] / median,
                     worst["endSecond"], max(w["publishLatency"]["p999"] for w in ws),
                     sum(1 for w in ws if w["publishLatency"]["p99"] > 3 * median),
                     kinds.get("roll", 0), kinds.get("deletion", 0), kinds.get("compaction", 0)))
    agg = r["aggregatedPublishLatency"]
    if markdown:
        print("| minute | worst second's p99 (ms) | / median second | at second | worst p99.9 (ms) | seconds over 3x | rolls | deletions | compactions |")
        print("|---|---|---|---|---|---|---|---|---|")
        for row in rows:
            print("| %d | %.2f | %.2f | %d | %.2f | %d | %d | %d | %d |" % row)
    else:
        for row in rows:
            print("minute %3d: worst p99 %7.2f ms (%.2fx median) at %5d s, worst p99.9 %7.2f ms, %2d s over 3x; "
                  "rolled %d, deleted %d, compacted %d segments" % row)
    over = sum(row[5] for row in rows)
    print(f"\nmedian second's publish p99 {median:.2f} ms over {len(seconds)} seconds; "
          f"worst minute {max(row[2] for row in rows):.2f}x; minutes whose worst second is over 3x: "
          f"{sum(1 for row in rows if row[2] > 3)} of {len(rows)}; seconds over 3x: {over}")
    print(f"whole run publish p50 {agg['p50']:.2f} / p99 {agg['p99']:.2f} / p99.9 {agg['p999']:.2f} / "
          f"p99.99 {agg['p9999']:.2f} / max {agg['max']:.2f} ms")
    print_by_event(r, seconds, median, markdown)


def print_by_event(r, seconds, median, markdown):
    """Seconds with an event of each kind in that or the previous second, against those without:
    how many, their median p99, and the share over 3x the run's median second."""
    marked = {}
    for e in r.get("segmentEvents", []):
        for s in (e["second"], e["second"] + 1):
            marked.setdefault(e["kind"], set()).add(s)
    if markdown:
        print("\n| seconds | count | median p99 | share over 3x the median |\n|---|---|---|---|")
    for kind in ("deletion", "compaction", "roll"):
        if kind not in marked:
            continue
        for label, pick in (("with", True), ("without", False)):
            p99s = [w["publishLatency"]["p99"] for w in seconds if (w["endSecond"] in marked[kind]) == pick]
            if not p99s:
                continue
            share = 100 * sum(1 for p in p99s if p > 3 * median) / len(p99s)
            if markdown:
                print(f"| {label} a {kind} in that or the previous second | {len(p99s)} | "
                      f"{statistics.median(p99s):.1f} ms | {share:.1f} % |")
            else:
                print(f"{label:>7} a {kind:<10}: {len(p99s):4d} s, median p99 {statistics.median(p99s):6.2f} ms, "
                      f"{share:4.1f} % over 3x")


if __name__ == "__main__":
    main()
