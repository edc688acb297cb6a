"""Prints one line per fio JSON result: bandwidth and, when fdatasync ran, its latency percentiles."""
import json
import sys

job = json.load(sys.stdin)["jobs"][0]
rw = "read" if job["read"]["io_bytes"] > 0 else "write"
line = f"{sys.argv[1]}: {job[rw]['bw_bytes'] / 2**20:.1f} MiB/s"
sync = job.get("sync", {}).get("lat_ns", {})
if sync.get("N", 0) > 0:
    p = sync["percentile"]
    line += (
        f"; fdatasync lat p50 {p['50.000000'] / 1000:.0f} us p99 {p['99.000000'] / 1000:.0f} us"
        f" p99.9 {p['99.900000'] / 1000:.0f} us max {sync['max'] / 1000:.0f} us"
    )
    clat = job["write"]["clat_ns"]["percentile"]
    line += f"; write clat p50 {clat['50.000000'] / 1000:.0f} us"
print(line)
