"""Turns the output of bench-compare.sh into the markdown tables of docs/BENCHMARKS.md (medians)."""
import re
import statistics
import sys
from collections import defaultdict

runs = defaultdict(list)  # (who, label) -> [MiB/s]
lat = defaultdict(list)  # (who, label) -> [(p50, p99, p999, max)]
other = []
for line in open(sys.argv[1]):
    line = line.strip()
    m = re.match(r"(fio|engine)\s+([^:]+): .*?([\d.]+) MiB/s", line)
    if not m:
        continue
    who, label = m.group(1), m.group(2).strip()
    if label in ("recovery",):
        other.append(line)
        continue
    mib = float(re.findall(r"([\d.]+) MiB/s", line)[-1])
    runs[(who, label)].append(mib)
    p = re.search(r"p50 (\d+) us p99 (\d+) us p99.9 (\d+) us max (\d+) us", line)
    if p:
        lat[(who, label)].append(tuple(int(x) for x in p.groups()))

def med(xs):
    return statistics.median(xs) if xs else float("nan")

pairs = []
for kib in (16, 64, 1024):
    per = max(1, 1024 // kib)
    pairs.append((f"{kib} KiB, no fsync", f"bs={kib}k no-fsync", f"bs={kib}k no-fsync"))
    pairs.append((f"{kib} KiB, fdatasync per MiB (group commit)", f"bs={kib}k fdatasync/{per}", f"bs={kib}k group-commit"))
    pairs.append((f"{kib} KiB, fdatasync per batch (until durable)", f"bs={kib}k fdatasync-every-write", f"bs={kib}k durable"))
print("| workload | fio MiB/s (runs) | engine MiB/s (runs) | engine / fio (median) |")
print("|---|---|---|---|")
for name, f, e in pairs:
    fr, er = runs[("fio", f)], runs[("engine", e)]
    print(f"| {name} | **{med(fr):.0f}** ({', '.join(f'{x:.0f}' for x in fr)}) | **{med(er):.0f}** ({', '.join(f'{x:.0f}' for x in er)}) | {med(er) / med(fr) * 100:.0f} % |")
for f in ("read bs=1m psync", "read bs=1m io_uring"):
    fr, er = runs[("fio", f)], runs[("engine", "read")]
    print(f"| sequential read, 1 MiB ({f.split()[-1]} fio) | **{med(fr):.0f}** ({', '.join(f'{x:.0f}' for x in fr)}) | **{med(er):.0f}** ({', '.join(f'{x:.0f}' for x in er)}) | {med(er) / med(fr) * 100:.0f} % |")
print()
print("| append-until-durable | engine p50 / p99 / p99.9 / max (µs) | fio fdatasync p50 / p99 / p99.9 / max (µs) |")
print("|---|---|---|")
for kib in (16, 64, 1024):
    e, f = lat[("engine", f"bs={kib}k durable")], lat[("fio", f"bs={kib}k fdatasync-every-write")]
    fmt = lambda rows: "; ".join(" / ".join(str(v) for v in r) for r in rows)
    print(f"| {kib} KiB | {fmt(e)} | {fmt(f)} |")
print()
for o in other:
    print("-", o)
