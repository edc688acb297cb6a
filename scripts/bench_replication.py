"""RF=1 against RF=3 on one local 3-node cluster of release binaries, interleaved rounds
(RF1, RF3, RF1, RF3, ...) in one session: publish and end-to-end latency, throughput, and the
three brokers' CPU per GB produced (from /proc), with riptide-bench and
workloads/replication-3p-1kb.yaml (fixed rate) or --rate 0 (max).

    cargo build --release -p riptide-server -p riptide-bench
    .venv/bin/python scripts/bench_replication.py [--rounds 2] [--rate MSGS] [--duration S]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "compat"))
os.environ.setdefault("RIPTIDE_BIN", os.path.join(ROOT, "target", "release", "riptide"))
from cluster import Cluster  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--rate", type=float, help="msgs/s override (0 = max)")
    ap.add_argument("--duration", type=float)
    ap.add_argument("--workload", default=os.path.join(ROOT, "workloads", "replication-3p-1kb.yaml"))
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="riptide-bench-repl-")
    cluster = Cluster(base, 3).start()
    rows = []
    try:
        from confluent_kafka.admin import AdminClient
        from jepsen import wait_for
        a = AdminClient({"bootstrap.servers": cluster.bootstrap})
        wait_for(lambda: len(a.list_topics(timeout=10).brokers) == 3, 60, "3 live brokers")
        for r in range(args.rounds):
            for rf in (1, 3):
                out = os.path.join(base, f"results-rf{rf}-{r}")
                cmd = [os.path.join(ROOT, "target", "release", "riptide-bench"), "run", args.workload,
                       "-b", cluster.bootstrap, "-o", out, "--replication-factor", str(rf)]
                if args.rate is not None:
                    cmd += ["--rate", str(args.rate)]
                if args.duration is not None:
                    cmd += ["--duration", str(args.duration)]
                before = sum(cpu_seconds(n.proc.pid) for n in cluster.nodes)
                # Follower lag (offsets behind the leader's log end, the largest over the
                # brokers' gauges), sampled every 100 ms while the run goes.
                lags, done = [], threading.Event()

                def sample():
                    while not done.wait(0.1):
                        try:
                            lags.append(max(n.metrics().get("riptide_max_follower_lag", 0) for n in cluster.nodes))
                        except OSError:
                            pass
                t = threading.Thread(target=sample, daemon=True)
                t.start()
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                done.set()
                t.join(5)
                after = sum(cpu_seconds(n.proc.pid) for n in cluster.nodes)
                lags.sort()
                res = json.load(open(next(os.path.join(out, f) for f in os.listdir(out) if f.endswith(".json"))))
                mb = res["aggregatedPublishMBps"]
                wall = res["cpu"]["wallSeconds"]
                gb = mb * wall / 1024
                pl, e2e = res["aggregatedPublishLatency"], res["aggregatedEndToEndLatency"]
                row = (f"RF{rf} round {r + 1}: {mb:.1f} MB/s, publish p50 {pl['p50']:.2f} p99 {pl['p99']:.2f} "
                       f"p99.9 {pl['p999']:.2f} ms, end-to-end p50 {e2e['p50']:.2f} p99 {e2e['p99']:.2f} ms, "
                       f"brokers {after - before:.1f} CPU-s = {(after - before) / gb:.1f} CPU-s/GB, "
                       f"errors {res['errors']}, follower lag p50 {lags[len(lags) // 2] if lags else 0:.0f} "
                       f"max {lags[-1] if lags else 0:.0f} offsets")
                print(row, flush=True)
                rows.append(row)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
