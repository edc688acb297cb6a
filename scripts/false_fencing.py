"""False fencings under full load (issue 32): a local 3-node cluster of release binaries with the
default failover settings, riptide-bench at its maximum rate (acks=all, RF=3,
workloads/replication-3p-1kb.yaml) for --duration seconds, then each node's fencing counters.
Nobody is faulted, so every fencing is a false one (a heartbeat that did not get through in
time), and so is every "unfenced live" count; ISR shrinks are reported beside them.

    cargo build --release -p riptide-server -p riptide-bench
    .venv/bin/python scripts/false_fencing.py [--duration 600] [node overrides...]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "compat"))
os.environ.setdefault("RIPTIDE_BIN", os.path.join(ROOT, "target", "release", "riptide"))
from cluster import Cluster  # noqa: E402

COUNTERS = ["riptide_controller_fences_session_total", "riptide_controller_fences_disconnect_total",
            "riptide_controller_unfences_live_total", "riptide_controller_elections_total",
            "riptide_isr_shrinks_total", "riptide_isr_expands_total"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--bench", default=os.path.join(ROOT, "target", "release", "riptide-bench"))
    ap.add_argument("--workload", default=os.path.join(ROOT, "workloads", "replication-3p-1kb.yaml"))
    ap.add_argument("overrides", nargs="*", help="name=value node configs")
    args = ap.parse_args()
    # At full load three replicas write ~750 MB/s: without a size bound a 10-minute run fills
    # the disk (it did, at 77 s). Keep each partition to a few segments.
    bounded = ["log.segment.bytes=67108864", "log.retention.bytes=268435456", "log.retention.check.interval.ms=1000"]
    extra = [x for o in bounded + args.overrides for x in ("--override", o)]
    base = tempfile.mkdtemp(prefix="riptide-false-fencing-")
    cluster = Cluster(base, 3, extra).start()
    try:
        from confluent_kafka.admin import AdminClient
        from jepsen import wait_for
        a = AdminClient({"bootstrap.servers": cluster.bootstrap})
        wait_for(lambda: len(a.list_topics(timeout=10).brokers) == 3, 60, "3 live brokers")
        out = os.path.join(base, "results")
        cmd = [args.bench, "run", args.workload, "-b", cluster.bootstrap, "-o", out,
               "--replication-factor", "3", "--rate", "0", "--duration", str(args.duration)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=args.duration + 600)
        totals = dict.fromkeys(COUNTERS, 0)
        for n in cluster.nodes:
            m = n.metrics()
            print(f"node {n.id}: " + ", ".join(f"{k} {m.get(k, 0):.0f}" for k in COUNTERS), flush=True)
            for k in COUNTERS:
                totals[k] += m.get(k, 0)
        fences = totals[COUNTERS[0]] + totals[COUNTERS[1]]
        print(f"{args.duration:.0f} s at full load ({' '.join(args.overrides) or 'defaults'}): {fences:.0f} "
              f"fencing(s) (session {totals[COUNTERS[0]]:.0f}, disconnect {totals[COUNTERS[1]]:.0f}), "
              f"{totals[COUNTERS[2]]:.0f} live broker(s) unfenced, {totals[COUNTERS[3]]:.0f} election(s) seen, "
              f"ISR shrinks {totals[COUNTERS[4]]:.0f} / expands {totals[COUNTERS[5]]:.0f}")
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
