#!/usr/bin/env python3
"""Produce over REST against the Kafka protocol, same broker, same run (issue 16), for
docs/BENCHMARKS.md. Not run in CI.

Starts a release riptide with its REST listener on a fresh data dir and, in interleaved rounds
(Kafka, REST batched, REST one record per request, ...), measures for SIZE-byte records with
acks=all:
  * throughput: Kafka protocol (confluent-kafka, linger 5 ms) vs REST v3 with BATCH records per
    request (newline-separated JSON, BINARY values) over CONNS keep-alive connections;
  * one record per request, sequential: Kafka produce()+flush() vs one REST POST, latency
    p50/p99 and requests per second;
  * the broker's CPU seconds (utime+stime) per phase.

Usage: .venv/bin/python scripts/bench_rest.py [--records 100000] [--size 1024] [--rounds 3]
"""
import argparse
import base64
import http.client
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bench_broker import cpu_seconds, launch, start_broker  # same directory

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def start(args):
    proc, ready, data = start_broker(args, rest=True)
    return proc, ready["kafka"], launch.split_addr(ready["rest"]), data


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def kafka_throughput(bootstrap, topic, n, size):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                  "batch.size": 1 << 20, "queue.buffering.max.messages": 1_000_000})
    payload = os.urandom(size)
    t0 = time.perf_counter()
    for _ in range(n):
        while True:
            try:
                p.produce(topic, payload)
                break
            except BufferError:
                p.poll(0.01)
    p.flush(120)
    return time.perf_counter() - t0


def rest_throughput(rest, cluster, topic, n, size, batch, conns):
    value = base64.b64encode(os.urandom(size)).decode()
    line = json.dumps({"value": {"type": "BINARY", "data": value}}) + "\n"
    body = (line * batch).encode()
    per = n // (batch * conns)
    errors = []

    def worker():
        c = http.client.HTTPConnection(*rest, timeout=60)
        for _ in range(per):
            c.request("POST", f"/v3/clusters/{cluster}/topics/{topic}/records", body,
                      {"Content-Type": "application/json"})
            r = c.getresponse()
            text = r.read()
            if r.status != 200 or b'"error_code":200' not in text[:200]:
                errors.append(text[:200])
        c.close()
    t0 = time.perf_counter()
    ts = [threading.Thread(target=worker) for _ in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[:3]
    return time.perf_counter() - t0, per * batch * conns


def kafka_one_by_one(bootstrap, topic, n, size):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    payload = os.urandom(size)
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        p.produce(topic, payload)
        p.flush(10)
        lat.append(time.perf_counter() - t)
    return lat


def rest_one_by_one(rest, cluster, topic, n, size):
    body = json.dumps({"value": {"type": "BINARY", "data": base64.b64encode(os.urandom(size)).decode()}})
    c = http.client.HTTPConnection(*rest, timeout=30)
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        c.request("POST", f"/v3/clusters/{cluster}/topics/{topic}/records", body,
                  {"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        assert r.status == 200, r.status
        lat.append(time.perf_counter() - t)
    return lat


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--conns", type=int, default=2)
    ap.add_argument("--single", type=int, default=2000, help="records for the one-per-request phases")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--shards", type=int, default=2)
    args = ap.parse_args()
    proc, bootstrap, rest, data = start(args)
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})  # alive until the result is in
        admin.create_topics([NewTopic("bench", 1, 1)])["bench"].result(30)
        c = http.client.HTTPConnection(*rest, timeout=10)
        c.request("GET", "/v3/clusters")
        cluster = json.loads(c.getresponse().read())["data"][0]["cluster_id"]
        results = {k: [] for k in ("kafka_mbs", "rest_mbs", "kafka_cpu", "rest_cpu",
                                   "kafka_p50", "kafka_p99", "rest_p50", "rest_p99")}
        mb = lambda recs: recs * args.size / 1e6  # noqa: E731
        for r in range(args.rounds):
            cpu = cpu_seconds(proc.pid)
            secs = kafka_throughput(bootstrap, "bench", args.records, args.size)
            results["kafka_cpu"].append((cpu_seconds(proc.pid) - cpu) / (mb(args.records) / 1000))
            results["kafka_mbs"].append(mb(args.records) / secs)
            cpu = cpu_seconds(proc.pid)
            secs, sent = rest_throughput(rest, cluster, "bench", args.records, args.size, args.batch, args.conns)
            results["rest_cpu"].append((cpu_seconds(proc.pid) - cpu) / (mb(sent) / 1000))
            results["rest_mbs"].append(mb(sent) / secs)
            lat = kafka_one_by_one(bootstrap, "bench", args.single, args.size)
            results["kafka_p50"].append(pct(lat, 0.5) * 1e3)
            results["kafka_p99"].append(pct(lat, 0.99) * 1e3)
            lat = rest_one_by_one(rest, cluster, "bench", args.single, args.size)
            results["rest_p50"].append(pct(lat, 0.5) * 1e3)
            results["rest_p99"].append(pct(lat, 0.99) * 1e3)
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in results.items()), flush=True)
        print("median over rounds:")
        for k, v in results.items():
            print(f"  {k:10s} {statistics.median(v):9.2f}   (all: {', '.join(f'{x:.2f}' for x in v)})")
        ratio = [r / k for r, k in zip(results["rest_mbs"], results["kafka_mbs"])]
        print(f"  REST/Kafka throughput ratio: median {statistics.median(ratio):.2f} "
              f"(range {min(ratio):.2f}-{max(ratio):.2f})")
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
