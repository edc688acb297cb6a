#!/usr/bin/env python3
"""Share groups against classic consumer groups, same broker, same run (issue 34): for 1 and 4
partitions and 1, 4 and 16 consumers, each a process with librdkafka's consumer (confluent-kafka's
`ShareConsumer` in implicit-acknowledgement mode, or `Consumer` in a classic group with
auto-commit), two phases on one topic:

1. throughput: once the group is ready (a record per partition consumed), BACKLOG records of
   1 KiB produced as fast as one producer goes and consumed as they arrive: records/s from the
   first produced to the last consumed, and the broker's CPU per record over that time (from
   /proc; produce included, the same for both kinds: for a share group every record is also
   acquired, acknowledged and its state persisted);
2. latency: RATE records/s for SECONDS seconds produced while the consumers keep up: end-to-end
   latency from the record's CreateTime to its delivery to the application.

Not run in CI. Usage (from the repository root, after `cargo build --release`):
    .venv/bin/python scripts/bench-share-groups.py [--backlog 50000] [--rate 2000] [--seconds 5]
The consumers are Python processes on the same 2 cores as the broker: the client side is the
limit of most points, for both kinds of group alike, which is why they are compared in one run.
"""
import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "compat"))
os.environ.setdefault("RIPTIDE_BIN", os.path.join(ROOT, "target", "release", "riptide"))

from confluent_kafka import Consumer, Producer, ShareConsumer  # noqa: E402
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,  # noqa: E402
                                   NewTopic, ResourceType)

from conftest import Broker  # noqa: E402

VALUE = b"x" * 1024


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker(kind, bootstrap, group, topic, counts, slot, stop, out):
    if kind == "share":
        c = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group, "max.poll.records": 500})
    else:
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                      "enable.auto.commit": True})
    c.subscribe([topic])
    first_a = last_a = None
    latencies = []
    n = 0
    while not stop.is_set():
        # A share consumer hands out what one fetch acquired; the classic one a record at a time
        # (consume(n, timeout) would wait for n records or the timeout, adding latency).
        batch = c.poll(0.1) if kind == "share" else [c.poll(0.1)]
        now_ms = time.time() * 1000
        got = 0
        for m in batch:
            if m is None or m.error():
                continue
            got += 1
            if m.key() == b"b":
                latencies.append(now_ms - m.timestamp()[1])
            elif m.key() == b"a":
                first_a = first_a or now_ms
                last_a = now_ms
        if got:
            n += got
            counts[slot] = n
    c.close()
    out.put({"first_a": first_a, "last_a": last_a, "latencies": latencies})


def run(broker, pid, kind, partitions, consumers, backlog, rate, seconds):
    tag = f"{kind}-{partitions}p-{consumers}c-{int(time.time() * 1000) % 100000}"
    topic, group = f"bench-{tag}", f"g-{tag}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)
    if kind == "share":
        res = ConfigResource(ResourceType.GROUP, group, incremental_configs=[
            ConfigEntry("share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET)])
        admin.incremental_alter_configs([res])[res].result(30)
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, "batch.num.messages": 1000})
    counts = mp.Array("q", consumers, lock=False)
    stop, out = mp.Event(), mp.Queue()
    procs = [mp.Process(target=worker, args=(kind, broker.bootstrap, group, topic, counts, i, stop, out),
                        daemon=True)
             for i in range(consumers)]
    for w in procs:
        w.start()
    deadline = time.time() + 180
    # Ready: one record per partition consumed (the classic group has rebalanced, the share
    # group's partitions are initialized).
    for i in range(partitions):
        p.produce(topic, value=VALUE, key=b"w", partition=i)
    p.flush(30)
    while sum(counts) < partitions and time.time() < deadline:
        time.sleep(0.01)
    # Throughput: the backlog produced as fast as the producer goes, consumed as it arrives.
    cpu0, t0 = cpu_seconds(pid), time.time()
    for i in range(backlog):
        while True:
            try:
                p.produce(topic, value=VALUE, key=b"a", partition=i % partitions)
                break
            except BufferError:  # the producer's queue is full: let it drain
                p.poll(0.01)
        if i % 1000 == 0:
            p.poll(0)
    p.flush(60)
    while sum(counts) < partitions + backlog and time.time() < deadline:
        time.sleep(0.005)
    drain_s, drain_cpu = time.time() - t0, cpu_seconds(pid) - cpu0
    drained = sum(counts) - partitions
    # Latency phase: a steady rate, CreateTime stamped at send.
    cpu1 = cpu_seconds(pid)
    start = time.time()
    for i in range(rate * seconds):
        due = start + i / rate
        while time.time() < due:
            time.sleep(max(0.0, min(0.001, due - time.time())))
        p.produce(topic, value=VALUE, key=b"b", partition=i % partitions)
        p.poll(0)
    p.flush(30)
    while sum(counts) < partitions + backlog + rate * seconds and time.time() < deadline:
        time.sleep(0.01)
    rate_cpu = cpu_seconds(pid) - cpu1
    stop.set()
    results = [out.get(timeout=60) for _ in procs]
    for w in procs:
        w.join(30)
        if w.is_alive():
            w.kill()
    lat = sorted(x for r in results for x in r["latencies"])
    q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] if lat else float("nan")  # noqa: E731
    active = sum(1 for r in results if r["first_a"] is not None)
    return {
        "kind": kind, "partitions": partitions, "consumers": consumers, "active_consumers": active,
        "drained": drained, "drain_records_per_s": drained / drain_s if drain_s else 0,
        "drain_seconds": drain_s,
        "drain_broker_cpu_us_per_record": drain_cpu / max(drained, 1) * 1e6,
        "rate_broker_cpu_us_per_record": rate_cpu / max(rate * seconds, 1) * 1e6,
        "e2e_p50_ms": q(0.5), "e2e_p99_ms": q(0.99), "e2e_max_ms": lat[-1] if lat else float("nan"),
        "delivered": sum(counts) - partitions, "expected": backlog + rate * seconds,
        "e2e_mean_ms": statistics.fmean(lat) if lat else float("nan"),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backlog", type=int, default=50000)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--partitions", default="1,4")
    ap.add_argument("--consumers", default="1,4,16")
    ap.add_argument("--out", default="results/share-groups.json")
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="bench-share-")
    broker = Broker(os.path.join(base, "data"), extra_args=["--shards", "2", "--no-pin"]).start()
    rows = []
    try:
        for partitions in [int(x) for x in args.partitions.split(",")]:
            for consumers in [int(x) for x in args.consumers.split(",")]:
                for kind in ("share", "classic"):
                    r = run(broker, broker.proc.pid, kind, partitions, consumers, args.backlog, args.rate,
                            args.seconds)
                    rows.append(r)
                    print(json.dumps(r), flush=True)
    finally:
        broker.stop()
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=1)
    print("\n| partitions | consumers | group | active | drain records/s | broker µs/record (drain) | "
          "broker µs/record (steady rate) | e2e p50 ms | e2e p99 ms | delivered/expected |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['partitions']} | {r['consumers']} | {r['kind']} | {r['active_consumers']} | "
              f"{r['drain_records_per_s']:,.0f} | {r['drain_broker_cpu_us_per_record']:.1f} | "
              f"{r['rate_broker_cpu_us_per_record']:.1f} | {r['e2e_p50_ms']:.1f} | {r['e2e_p99_ms']:.1f} | "
              f"{r['delivered']}/{r['expected']} |")


if __name__ == "__main__":
    main()
