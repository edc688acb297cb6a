"""Transactional produce against idempotent produce, same run (issue 17, item 6): a single-node
broker (release binary unless RIPTIDE_BIN says otherwise), one partition, 1 KiB records, acks=all.
For each transaction size N, interleaved in rounds (A, B, A, B, ...):

  txn   begin_transaction, N records, commit_transaction (confluent-kafka, librdkafka);
        the commit latency is the commit_transaction call (it flushes the N records, then
        EndTxn: the coordinator's PrepareCommit write, the markers, CompleteCommit)
  idem  the same N records from an idempotent producer, then flush(): the time to make N
        records durable without a transaction

Prints records/s and MB/s per mode and size, and p50 / p99 of the per-transaction (per-flush)
latency. Not a test: numbers for docs/BENCHMARKS.md. Every loop is bounded by count and time.

    cargo build --release -p riptide-server
    .venv/bin/python scripts/bench_transactions.py [--sizes 1,10,100,1000] [--seconds 5] [--rounds 3]
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "compat"))
os.environ.setdefault("RIPTIDE_BIN", os.path.join(ROOT, "target", "release", "riptide"))
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from conftest import Broker  # noqa: E402

VALUE = b"x" * 1024


def percentile(xs, q):
    xs = sorted(xs)
    return xs[max(0, min(len(xs) - 1, int(round(q / 100 * len(xs) + 0.5)) - 1))]


def run(producer, topic, n, seconds, transactional):
    """Units of n records for `seconds` (at most 100 000 units); (records, seconds, latencies)."""
    lat = []
    records = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline and len(lat) < 100_000:
        if transactional:
            producer.begin_transaction()
        for _ in range(n):
            while True:
                try:
                    producer.produce(topic, VALUE, partition=0)
                    break
                except BufferError:
                    producer.poll(0.001)
        t0 = time.perf_counter()
        if transactional:
            producer.commit_transaction(30)
        else:
            assert producer.flush(30) == 0
        lat.append((time.perf_counter() - t0) * 1000)
        records += n
    return records, time.perf_counter() - start, lat


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,10,100,1000")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    base = tempfile.mkdtemp(prefix="riptide-bench-txn-")
    broker = Broker(os.path.join(base, "data"), extra_args=["--no-pin"]).start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        topic = "bench-txn"
        admin.create_topics([NewTopic(topic, 1, 1)], operation_timeout=30)[topic].result(30)
        common = {"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5,
                  "enable.idempotence": True}
        txn = Producer({**common, "transactional.id": "bench-txn"})
        txn.init_transactions(30)
        idem = Producer(common)
        results = {}
        for rnd in range(args.rounds):
            for n in sizes:
                for mode, p in (("txn", txn), ("idem", idem)):
                    recs, secs, lat = run(p, topic, n, args.seconds, mode == "txn")
                    r = results.setdefault((mode, n), {"rate": [], "lat": []})
                    r["rate"].append(recs / secs)
                    r["lat"].extend(lat)
                    print(f"round {rnd + 1} {mode:4} n={n:5}: {recs / secs:9.0f} records/s, "
                          f"p50 {percentile(lat, 50):7.2f} ms", flush=True)
        print(f"\n{'size':>6} {'mode':>5} {'records/s (rounds)':>30} {'MB/s':>7} {'p50 ms':>8} {'p99 ms':>8}")
        for n in sizes:
            for mode in ("txn", "idem"):
                r = results[(mode, n)]
                rate = statistics.median(r["rate"])
                rounds = "/".join(f"{x:.0f}" for x in r["rate"])
                print(f"{n:6} {mode:>5} {rounds:>30} {rate * 1024 / 1e6:7.1f} "
                      f"{percentile(r['lat'], 50):8.2f} {percentile(r['lat'], 99):8.2f}")
            t, i = statistics.median(results[("txn", n)]["rate"]), statistics.median(results[("idem", n)]["rate"])
            print(f"{n:6} ratio txn/idem throughput {t / i:.2f}")
    finally:
        broker.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
