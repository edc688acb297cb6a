"""Time to balance after a broker joins, and the latency clients see while partitions move.

A local 3-node cluster of release binaries holds a ballast topic (12 partitions, RF 3, --fill
MB in total) while riptide-bench produces and consumes at a fixed rate (open loop,
workloads/rebalance-6p-1kb.yaml, acks=all, RF 3). After --join-after seconds a 4th broker
(broker only) starts; the balancer moves replicas and leadership onto it under the replication
throttle. Reported per throttle value: seconds from the join until partitions and leaders are
even within one and no move runs, bytes copied, and the publish/end-to-end latency of the
samples before, during and after the moves (median and worst per-second p99).

    cargo build --release -p riptide-server -p riptide-bench
    .venv/bin/python scripts/bench_rebalance.py [--throttle-mib 20,100] [--fill 1200] [--duration 150]
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "compat"))
os.environ.setdefault("RIPTIDE_BIN", os.path.join(ROOT, "target", "release", "riptide"))
import subprocess  # noqa: E402

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from cluster import Cluster  # noqa: E402
from jepsen import partition_state, wait_for  # noqa: E402

o = lambda k, v: ["--override", f"{k}={v}"]  # noqa: E731


def fill(bootstrap, topic, partitions, mb):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20, "batch.size": 1 << 20,
                  "message.max.bytes": 2 << 20})
    value = os.urandom(100 * 1024)
    for i in range(mb * 10):
        while True:
            try:
                p.produce(topic, value, partition=i % partitions)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(120) == 0


def balanced(c, topics):
    """Every topic's replicas and leaders even within one over the live brokers, every ISR
    full: what the balancer aims for (per topic, then overall)."""
    live = [n.id for n in c.nodes if n.alive()]
    for t in topics:
        reps = {b: 0 for b in live}
        leads = {b: 0 for b in live}
        for _, (leader, replicas, isr) in partition_state(c.nodes[0], t).items():
            if sorted(replicas) != isr:
                return False
            for r in replicas:
                reps[r] = reps.get(r, 0) + 1
            leads[leader] = leads.get(leader, 0) + 1
        if max(reps.values()) - min(reps.values()) > 1 or max(leads.values()) - min(leads.values()) > 1:
            return False
    return True


def windows(result, t_join, t_done):
    """(window -> (median p99, worst p99)) for publish and end-to-end latency, by sample time."""
    r = json.load(open(result))
    start = r["startedAtUnixMs"] / 1000.0
    step = r["sampleSeconds"]
    out = {}
    for kind in ("publishLatency", "endToEndLatency"):
        p99 = r[kind]["p99"]
        groups = {"before": [], "during": [], "after": []}
        for i, v in enumerate(p99):
            if r["phase"][i] != "measure" or v is None:
                continue
            t = start + (i + 1) * step
            key = "before" if t < t_join else ("during" if t <= t_done else "after")
            groups[key].append(v)
        out[kind] = {k: (statistics.median(v), max(v), len(v)) if v else None for k, v in groups.items()}
    return out


def one_round(args, throttle_mib, base):
    extra = [*o("balancer.interval.ms", 2000), *o("follower.replication.throttled.rate", throttle_mib << 20),
             *o("default.replication.factor", 3)]
    c = Cluster(base, 3, extra).start()
    try:
        a = AdminClient({"bootstrap.servers": c.bootstrap})
        wait_for(lambda: len(a.list_topics(timeout=10).brokers) == 3, 60, "3 live brokers")
        a.create_topics([NewTopic("ballast", 12, 3)])["ballast"].result(30)
        t0 = time.time()
        fill(c.bootstrap, "ballast", 12, args.fill)
        print(f"filled {args.fill} MB in {time.time() - t0:.1f} s", flush=True)
        out = os.path.join(base, "bench")
        bench = subprocess.Popen(
            [os.path.join(ROOT, "target", "release", "riptide-bench"), "run", args.workload, "-b", c.bootstrap,
             "-o", out, "--replication-factor", "3", "--duration", str(args.duration)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(args.join_after)
        t_join = time.time()
        c.add_broker()
        print("broker 4 joined", flush=True)
        topics = list(a.list_topics(timeout=10).topics)
        got = wait_for(lambda: balanced(c, topics), args.duration, "balanced", interval=0.5)
        t_done = time.time()
        m = c.active_controller().metrics()
        print(f"throttle {throttle_mib} MiB/s: balanced {t_done - t_join:.1f} s after the join ({got}); "
              f"moves started {m.get('riptide_balancer_moves_started_total')}", flush=True)
        _, err = bench.communicate(timeout=args.duration + 120)
        assert bench.returncode == 0, err[-2000:]
        result = [os.path.join(out, f) for f in os.listdir(out) if f.endswith(".json")][0]
        copied = sum(int(n.metrics().get("riptide_replication_bytes_in_total", 0)) for n in c.nodes[3:])
        return {"throttle_mib": throttle_mib, "seconds": t_done - t_join, "copied_mb": copied / 1e6,
                "latency": windows(result, t_join, t_done)}
    finally:
        c.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--throttle-mib", default="20,100")
    ap.add_argument("--fill", type=int, default=1200, help="ballast MB")
    ap.add_argument("--duration", type=int, default=150)
    ap.add_argument("--join-after", type=int, default=30)
    ap.add_argument("--workload", default=os.path.join(ROOT, "workloads", "rebalance-6p-1kb.yaml"))
    args = ap.parse_args()
    rows = []
    for t in [int(x) for x in args.throttle_mib.split(",")]:
        rows.append(one_round(args, t, tempfile.mkdtemp(prefix=f"riptide-bench-rebalance-{t}-")))
    print("\n| throttle | time to balance | copied to broker 4 | publish p99 before / during / after (median, worst) | e2e p99 before / during / after (median, worst) |")
    print("|---|---|---|---|---|")
    for r in rows:
        def cell(kind):
            parts = []
            for w in ("before", "during", "after"):
                v = r["latency"][kind][w]
                parts.append("-" if v is None else f"{v[0]:.1f}, {v[1]:.1f}")
            return " / ".join(parts) + " ms"
        print(f"| {r['throttle_mib']} MiB/s | {r['seconds']:.1f} s | {r['copied_mb']:.0f} MB | "
              f"{cell('publishLatency')} | {cell('endToEndLatency')} |")


if __name__ == "__main__":
    main()
