#!/usr/bin/env python3
"""Broker throughput and latency with a librdkafka client (confluent-kafka), for
docs/BENCHMARKS.md (issue 4). Not run in CI.

Starts a release riptide on a fresh data dir (or uses --brokers), then measures:
  * producer throughput of N x SIZE-byte messages with acks=1 and acks=all;
  * consumer throughput reading them back;
  * produce latency percentiles (send -> delivery report) at a fixed rate;
  * the broker's CPU seconds (utime+stime from /proc) per GB moved, and the client's.

Usage: .venv/bin/python scripts/bench_broker.py [--messages 1000000] [--size 1024]
"""
import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "compat"))
import launch  # noqa: E402  (tests/compat/launch.py: ready files, no port races)

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def self_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def start_broker(args, rest=False):
    """A release riptide on port 0 of 127.0.0.1 (REST too when asked), ready once it answers
    ApiVersions; returns (process, its ready file's addresses, data dir)."""
    data = tempfile.mkdtemp(prefix="riptide-bench-", dir=getattr(args, "data_parent", None))
    binary = os.environ.get("RIPTIDE_BIN", os.path.join(ROOT, "target", "release", "riptide"))
    node = launch.Process(data + ".ready.json", data + ".log").spawn([
        binary, "serve", "--data-dir", data, "--listen", "127.0.0.1:0", "--metrics-listen", "off",
        "--rest-listen", "127.0.0.1:0" if rest else "off", "--shards", str(args.shards)])
    return node.proc, node.wait(120, "riptide"), data


def produce(bootstrap, topic, n, size, acks):
    payload = os.urandom(size)
    p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 5,
                  "batch.size": 1_000_000, "queue.buffering.max.messages": 1_000_000,
                  "queue.buffering.max.kbytes": 2_000_000, "enable.idempotence": acks == "all"})
    failed = [0]

    def report(err, _msg):
        if err is not None:
            failed[0] += 1

    t0 = time.perf_counter()
    for _ in range(n):
        while True:
            try:
                p.produce(topic, payload, partition=0, on_delivery=report)
                break
            except BufferError:
                p.poll(0.001)
    p.flush(120)
    return time.perf_counter() - t0, failed[0]


def consume(bootstrap, topic, n):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False,
                  "fetch.max.bytes": 52428800, "max.partition.fetch.bytes": 10485760})
    c.assign([TopicPartition(topic, 0, 0)])
    got = 0
    t0 = time.perf_counter()
    while got < n:
        msgs = c.consume(10000, 1.0)
        got += sum(1 for m in msgs if m.error() is None)
    dt = time.perf_counter() - t0
    c.close()
    return dt


def latency(bootstrap, topic, rate, seconds, size, acks):
    p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 0})
    payload = os.urandom(size)
    lat = []
    interval = 1.0 / rate
    start = time.perf_counter()
    total = int(rate * seconds)
    for i in range(total):
        intended = start + i * interval  # open loop: latency from the intended send time
        now = time.perf_counter()
        if now < intended:
            time.sleep(intended - now)
        p.produce(topic, payload, partition=0,
                  on_delivery=lambda e, m, t=intended: lat.append(time.perf_counter() - t))
        p.poll(0)
    p.flush(60)
    lat.sort()
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1e3
    return {"count": len(lat), "p50_ms": pick(0.5), "p99_ms": pick(0.99), "p999_ms": pick(0.999),
            "max_ms": lat[-1] * 1e3}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--data-parent", default=None)
    args = ap.parse_args()
    proc, ready, data = start_broker(args)
    bootstrap = ready["kafka"]
    results = {"messages": args.messages, "size": args.size, "shards": args.shards}
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for acks in ["1", "all"]:
            topic = f"bench-acks-{acks}"
            admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(10)
            b0, c0 = cpu_seconds(proc.pid), self_cpu()
            dt, failed = produce(bootstrap, topic, args.messages, args.size, acks)
            b1, c1 = cpu_seconds(proc.pid), self_cpu()
            gb = args.messages * args.size / 1e9
            results[f"produce_acks_{acks}"] = {
                "seconds": dt, "msgs_per_s": args.messages / dt, "mb_per_s": gb * 1e3 / dt,
                "failed": failed, "broker_cpu_s_per_gb": (b1 - b0) / gb, "client_cpu_s_per_gb": (c1 - c0) / gb,
                "broker_cpu_util": (b1 - b0) / dt, "client_cpu_util": (c1 - c0) / dt}
            print(json.dumps({acks: results[f"produce_acks_{acks}"]}), flush=True)
        b0, c0 = cpu_seconds(proc.pid), self_cpu()
        dt = consume(bootstrap, "bench-acks-1", args.messages)
        b1, c1 = cpu_seconds(proc.pid), self_cpu()
        gb = args.messages * args.size / 1e9
        results["consume"] = {"seconds": dt, "msgs_per_s": args.messages / dt, "mb_per_s": gb * 1e3 / dt,
                              "broker_cpu_s_per_gb": (b1 - b0) / gb, "client_cpu_s_per_gb": (c1 - c0) / gb,
                              "broker_cpu_util": (b1 - b0) / dt, "client_cpu_util": (c1 - c0) / dt}
        print(json.dumps({"consume": results["consume"]}), flush=True)
        for acks in ["1", "all"]:
            topic = f"bench-lat-{acks}"
            admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(10)
            results[f"latency_acks_{acks}"] = latency(bootstrap, topic, args.rate, 10, args.size, acks)
            print(json.dumps({f"latency_acks_{acks}": results[f"latency_acks_{acks}"]}), flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(data, ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.exit(main())
