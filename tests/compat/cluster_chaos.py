"""Cluster chaos rounds (outside CI): a 3-node cluster under a steady acks=all producer while
each round kills one node (kill -9, or SIGTERM every third round), checks that the cluster
reports its partitions offline (never served elsewhere), restarts it and waits until every
partition is led again. At the end every acknowledged record must be read back exactly once.

Usage: scripts/cluster-chaos.sh [ROUNDS]   (bounded: ROUNDS rounds, at most 90 s each)
"""
import os
import random
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from confluent_kafka import Consumer, Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from cluster import Cluster  # noqa: E402

PARTITIONS = 6


def leaders(bootstrap, topic):
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    return {p.id: p.leader for p in md.topics[topic].partitions.values()}


def wait(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if pred():
                return
        except Exception:  # noqa: BLE001
            pass
        time.sleep(0.25)
    raise SystemExit(f"FAILED: {what} within {timeout}s")


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    rng = random.Random(int(os.environ.get("SEED", time.time())))
    base = tempfile.mkdtemp(prefix="riptide-chaos-")
    fast = ["--override", "broker.session.timeout.ms=3000", "--override", "broker.heartbeat.interval.ms=500"]
    c = Cluster(base, 3, fast).start()
    topic = "chaos"
    a = AdminClient({"bootstrap.servers": c.bootstrap})
    a.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(30)
    acked, failed, stop = [], [0], threading.Event()

    def produce():
        p = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", "enable.idempotence": True,
                      "message.timeout.ms": 120000, "linger.ms": 5})
        i = 0

        def cb(err, msg):
            if err is None:
                acked.append(msg.value())
            else:
                failed[0] += 1
        while not stop.is_set():
            p.produce(topic, value=f"m{i}".encode(), partition=i % PARTITIONS, on_delivery=cb)
            i += 1
            p.poll(0)
            time.sleep(0.002)
        p.flush(120)

    t = threading.Thread(target=produce)
    t.start()
    started = time.time()
    try:
        for r in range(rounds):
            victim = rng.choice(c.nodes)
            sig = signal.SIGTERM if r % 3 == 2 else signal.SIGKILL
            theirs = [p for p, l in leaders(c.bootstrap, topic).items() if l == victim.id]
            victim.stop(sig)
            others = [n for n in c.nodes if n.alive()]
            wait(lambda: all(leaders(others[0].bootstrap, topic)[p] == -1 for p in theirs), 30,
                 f"round {r}: node {victim.id}'s partitions offline")
            victim.spawn().wait_listening(90)
            wait(lambda: all(l > 0 for l in leaders(victim.bootstrap, topic).values()), 60,
                 f"round {r}: every partition led again")
            print(f"round {r + 1}/{rounds}: {sig.name} node {victim.id} ({len(theirs)} partition(s) offline, "
                  f"then back); {len(acked)} acked so far", flush=True)
    finally:
        stop.set()
        t.join(180)
    consumer = Consumer({"bootstrap.servers": c.bootstrap, "group.id": "chaos-check",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    seen = []
    deadline = time.time() + 120
    want = set(acked)
    while time.time() < deadline and not want.issubset(set(seen)):
        m = consumer.poll(0.5)
        if m is not None and not m.error():
            seen.append(m.value())
    consumer.close()
    c.stop()
    lost = want - set(seen)
    dup = len(seen) - len(set(seen))
    print(f"{rounds} rounds in {time.time() - started:.0f}s: {len(acked)} acked, {failed[0]} failed deliveries, "
          f"{len(lost)} acknowledged lost, {dup} duplicates")
    if lost or dup:
        raise SystemExit("FAILED: acknowledged records lost or duplicated")
    print("OK")


if __name__ == "__main__":
    main()
