#!/usr/bin/env python3
"""Consumer-group measurements (issue 5): rebalance time and offset-commit throughput/latency.

  rebalance: N members consume a topic of 2N partitions; one more member joins (at a random
             point of the heartbeat cycle); the time from its subscribe() until every member has
             a non-empty assignment covering all partitions (i.e. everyone consuming again). Classic protocol (range, eager) with
             librdkafka's default heartbeat interval, and KIP-848 (group.protocol=consumer).
  commits:   synchronous OffsetCommit round trips from one consumer (latency percentiles), and
             from C concurrent consumers (aggregate commits/s). Each commit is fsynced in
             __consumer_offsets before it is answered.

Usage: scripts/bench_groups.py --bootstrap 127.0.0.1:9092 [--members 3 30] [--seconds 5]
Needs confluent-kafka (the .venv of the compat suite)."""
import argparse
import random
import statistics
import threading
import time
import uuid

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def create(bootstrap, topic, partitions):
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(30)


class Member:
    def __init__(self, bootstrap, group, topic, protocol):
        conf = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest"}
        if protocol == "consumer":
            conf["group.protocol"] = "consumer"
        else:
            conf.update({"partition.assignment.strategy": "range", "session.timeout.ms": 10000})
        self.consumer = Consumer(conf)
        self.consumer.subscribe([topic])

    def assigned(self):
        return len(self.consumer.assignment())


def wait(members, cond, timeout):
    """Polls every member in turn (one thread: librdkafka callbacks run in poll) until cond()."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for m in members:
            m.consumer.poll(0)
        if cond():
            return True
        time.sleep(0.005)
    return False


def rebalance(bootstrap, n, protocol):
    topic, group = f"bench-rb-{uuid.uuid4().hex[:8]}", f"bench-rb-{uuid.uuid4().hex[:8]}"
    partitions = 2 * n
    create(bootstrap, topic, partitions)
    members = [Member(bootstrap, group, topic, protocol) for _ in range(n)]

    def settled():
        sizes = [m.assigned() for m in members]
        return all(s > 0 for s in sizes) and sum(sizes) == partitions

    if not wait(members, settled, 120):
        raise SystemExit(f"{n} members never settled")
    # Join at a random moment of the members' heartbeat cycle.
    wait(members, lambda: False, 1 + random.uniform(0, 3))
    started = time.time()
    members.append(Member(bootstrap, group, topic, protocol))
    ok = wait(members, settled, 120)
    took = time.time() - started
    for m in members:
        m.consumer.close()
    return took if ok else float("nan")


def commit_latency(bootstrap, seconds):
    topic = f"bench-commit-{uuid.uuid4().hex[:8]}"
    create(bootstrap, topic, 1)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-c-{uuid.uuid4().hex[:8]}"})
    lat = []
    deadline = time.time() + seconds
    i = 0
    while time.time() < deadline:
        i += 1
        t = time.perf_counter()
        c.commit(offsets=[TopicPartition(topic, 0, i)], asynchronous=False)
        lat.append((time.perf_counter() - t) * 1000)
    c.close()
    lat.sort()
    return len(lat) / seconds, lat[len(lat) // 2], lat[int(len(lat) * 0.99)], lat[-1]


def commit_throughput(bootstrap, clients, seconds):
    topic = f"bench-commit-{uuid.uuid4().hex[:8]}"
    create(bootstrap, topic, 1)
    counts = [0] * clients

    def worker(k):
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-c{k}-{uuid.uuid4().hex[:8]}"})
        deadline = time.time() + seconds
        while time.time() < deadline:
            counts[k] += 1
            c.commit(offsets=[TopicPartition(topic, 0, counts[k])], asynchronous=False)
        c.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--members", type=int, nargs="+", default=[3, 30])
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    for protocol in ("classic", "consumer"):
        for n in args.members:
            runs = [rebalance(args.bootstrap, n, protocol) for _ in range(args.runs)]
            print(f"rebalance {protocol:8} {n:3} members + 1 joiner: "
                  f"median {statistics.median(runs):.2f}s  runs {[round(r, 2) for r in runs]}")
    rate, p50, p99, worst = commit_latency(args.bootstrap, args.seconds)
    print(f"commit, 1 client sync: {rate:.0f} commits/s  p50 {p50:.2f} ms  p99 {p99:.2f} ms  max {worst:.2f} ms")
    for clients in (8, 32):
        print(f"commit, {clients} clients sync: {commit_throughput(args.bootstrap, clients, args.seconds):.0f} commits/s")


if __name__ == "__main__":
    main()
