"""Failover time of a 3-node cluster, measured on real processes (not a test: numbers for
docs/BENCHMARKS.md). One topic, replication factor 3, one partition; an idempotent acks=all
producer sends a record every 2 ms. Each round stops the partition leader (kill -9, or SIGTERM
for a controlled shutdown) and measures the time from the signal to the first acknowledgement
of a record sent after it; then the node is restarted and the round waits for a full ISR.

    .venv/bin/python tests/compat/failover_time.py [--rounds 20] [--mode kill|term] [node overrides...]

Prints each round and p50 / max. Every wait is bounded."""
import argparse
import os
import signal
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from cluster import Cluster  # noqa: E402
from jepsen import leader_of, wait_for, wait_isr_full  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--mode", choices=["kill", "term"], default="kill")
    ap.add_argument("overrides", nargs="*", help="name=value node configs")
    args = ap.parse_args()
    extra = [x for o in args.overrides for x in ("--override", o)]
    base = tempfile.mkdtemp(prefix="riptide-failover-")
    cluster = Cluster(base, 3, extra).start()
    topic = "failover"
    try:
        a = AdminClient({"bootstrap.servers": cluster.bootstrap})
        wait_for(lambda: len(a.list_topics(timeout=10).brokers) == 3, 60, "3 live brokers")
        a.create_topics([NewTopic(topic, 1, 3)])[topic].result(30)
        wait_isr_full(cluster, topic, 3, timeout=60)
        acks = []  # (send time, ack time)
        lock = threading.Lock()
        stop = threading.Event()

        def produce():
            p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "enable.idempotence": True,
                          "linger.ms": 0, "message.timeout.ms": 120000, "retry.backoff.ms": 20,
                          "retry.backoff.max.ms": 100, "topic.metadata.refresh.interval.ms": 250})
            while not stop.is_set():
                sent = time.monotonic()

                def cb(err, _msg, sent=sent):
                    if err is None:
                        with lock:
                            acks.append((sent, time.monotonic()))
                p.produce(topic, b"x" * 100, partition=0, on_delivery=cb)
                p.poll(0.002)
            p.flush(60)

        t = threading.Thread(target=produce, daemon=True)
        t.start()
        time.sleep(3)
        results = []
        for r in range(args.rounds):
            leader = leader_of(cluster, topic, 0)
            node = cluster.node(leader)
            at = time.monotonic()
            if args.mode == "kill":
                node.kill9()
            else:
                node.stop(signal.SIGTERM)

            def first_ack_after():
                with lock:
                    after = [ack for sent, ack in acks if sent >= at]
                return min(after) if after else None
            first = wait_for(first_ack_after, 120, "an acknowledgement after the failover", interval=0.05)
            results.append(first - at)
            print(f"round {r + 1}: leader {leader} {args.mode}: first ack after {1000 * (first - at):.0f} ms",
                  flush=True)
            node.spawn().wait_listening()
            wait_isr_full(cluster, topic, 3, timeout=120)
            time.sleep(1)
        stop.set()
        t.join(90)
        ms = sorted(1000 * x for x in results)
        print(f"failover ({args.mode}, {len(ms)} rounds, {' '.join(args.overrides) or 'defaults'}): "
              f"p50 {statistics.median(ms):.0f} ms, min {ms[0]:.0f} ms, max {ms[-1]:.0f} ms")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
