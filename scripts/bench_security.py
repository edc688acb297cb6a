#!/usr/bin/env python3
"""What security costs, in one run on one broker (issue 15, docs/BENCHMARKS.md): produce and
consume throughput and the broker's CPU per GB over PLAINTEXT, SSL (user-space TLS, rustls),
SASL_SSL with SCRAM-SHA-512, and to an encrypted topic (encryption.at.rest) over PLAINTEXT.
Not run in CI.

Usage: .venv/bin/python scripts/bench_security.py [--messages 300000] [--size 1024] [--rounds 3]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "compat"))
import launch  # noqa: E402
from bench_broker import cpu_seconds  # noqa: E402  (scripts/ is on sys.path when run as a script)


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def certificates(d):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem",
            "-days", "2", "-subj", "/CN=bench CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{d}/broker.key", "-out", f"{d}/broker.csr",
            "-subj", "/CN=localhost")
    with open(f"{d}/san.ext", "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", f"{d}/broker.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key",
            "-CAcreateserial", "-out", f"{d}/broker.pem", "-days", "2", "-extfile", f"{d}/san.ext")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=300_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--shards", type=int, default=2)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="riptide-bench-sec-")
    certificates(work)
    with open(f"{work}/keys", "w") as f:
        f.write(f"k1={os.urandom(32).hex()}\n")
    os.chmod(f"{work}/keys", 0o600)
    with open(f"{work}/riptide.toml", "w") as f:
        f.write(f'''listeners = "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,SASL_SSL://127.0.0.1:0"
"ssl.certificate.location" = "{work}/broker.pem"
"ssl.key.location" = "{work}/broker.key"
"encryption.key.file" = "{work}/keys"
"durability.policy" = "none"
''')
    binary = os.environ.get("RIPTIDE_BIN", os.path.join(ROOT, "target", "release", "riptide"))
    data = f"{work}/data"
    node = launch.Process(data + ".ready.json", data + ".log").spawn([
        binary, "serve", "-c", f"{work}/riptide.toml", "--data-dir", data, "--metrics-listen", "off",
        "--rest-listen", "off", "--shards", str(args.shards)])
    ready = node.wait(120, "riptide")
    pid = node.proc.pid
    listeners = ready["listeners"]
    plain = listeners["PLAINTEXT"]
    subprocess.run([binary, "user", "add", "bench", "-b", plain], check=True, capture_output=True,
                   env={**os.environ, "RIPTIDE_PASSWORD": "bench-secret"})
    tls = {"security.protocol": "SSL", "ssl.ca.location": f"{work}/ca.pem"}
    sasl = {"security.protocol": "SASL_SSL", "ssl.ca.location": f"{work}/ca.pem", "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": "bench", "sasl.password": "bench-secret"}
    cases = [
        ("PLAINTEXT", plain, {}, {}),
        ("SSL (rustls, user-space)", listeners["SSL"], tls, {}),
        ("SASL_SSL SCRAM-SHA-512", listeners["SASL_SSL"], sasl, {}),
        ("encrypted topic, PLAINTEXT", plain, {}, {"encryption.at.rest": "true"}),
    ]
    admin = AdminClient({"bootstrap.servers": plain})
    payload = os.urandom(args.size)
    gb = args.messages * args.size / 1e9
    results = {name: {"produce": [], "consume": [], "produce_cpu": [], "consume_cpu": []} for name, *_ in cases}
    for r in range(args.rounds):
        for name, bootstrap, conf, topic_conf in cases:
            topic = f"bench-{r}-{len(results[name]['produce'])}-{abs(hash(name)) % 10000}"
            admin.create_topics([NewTopic(topic, 1, 1, config={"retention.ms": "-1", **topic_conf})])[topic].result(30)
            p = Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 5, "batch.size": 1_000_000,
                          "queue.buffering.max.messages": 1_000_000, "queue.buffering.max.kbytes": 2_000_000, **conf})
            c0, t0 = cpu_seconds(pid), time.time()
            for _ in range(args.messages):
                while True:
                    try:
                        p.produce(topic, payload, partition=0)
                        break
                    except BufferError:
                        p.poll(0.01)
            p.flush(300)
            t1, c1 = time.time(), cpu_seconds(pid)
            cons = Consumer({"bootstrap.servers": bootstrap, "group.id": topic, "enable.auto.commit": False,
                             "fetch.max.bytes": 52428800, "max.partition.fetch.bytes": 10485760, **conf})
            cons.assign([TopicPartition(topic, 0, 0)])
            got, deadline = 0, time.time() + 300
            t2, c2 = time.time(), cpu_seconds(pid)
            while got < args.messages and time.time() < deadline:
                got += sum(1 for m in cons.consume(10000, 1.0) if m.error() is None)
            t3, c3 = time.time(), cpu_seconds(pid)
            cons.close()
            assert got == args.messages, f"{name}: consumed {got} of {args.messages}"
            res = results[name]
            res["produce"].append(gb * 1000 / (t1 - t0))
            res["consume"].append(gb * 1000 / (t3 - t2))
            res["produce_cpu"].append((c1 - c0) / gb)
            res["consume_cpu"].append((c3 - c2) / gb)
            print(f"round {r + 1} {name}: produce {res['produce'][-1]:.0f} MB/s, consume {res['consume'][-1]:.0f} MB/s, "
                  f"broker {res['produce_cpu'][-1]:.2f} / {res['consume_cpu'][-1]:.2f} CPU-s/GB", flush=True)
    node.proc.terminate()
    node.proc.wait(30)
    shutil.rmtree(work, ignore_errors=True)

    def med(v):
        return sorted(v)[len(v) // 2]
    print("\n| path | produce MB/s | consume MB/s | broker CPU-s/GB produce | consume |")
    print("|---|---|---|---|---|")
    for name, *_ in cases:
        r = results[name]
        print(f"| {name} | {med(r['produce']):.0f} | {med(r['consume']):.0f} | {med(r['produce_cpu']):.2f} | "
              f"{med(r['consume_cpu']):.2f} |")
    print(json.dumps({k: {m: [round(x, 2) for x in v] for m, v in r.items()} for k, r in results.items()}))


if __name__ == "__main__":
    main()
