"""Failover time of a 3-node cluster, measured on real processes (not a test: numbers for
docs/BENCHMARKS.md). One topic, replication factor 3, min.insync.replicas 2, one partition (three
for kill-controller); an
idempotent acks=all producer sends a record every 2 ms. Each round injects one fault and
measures the time from it to the first acknowledgement of a record sent after it; then the
fault is undone and the round waits for a full ISR. Modes:

  kill           kill -9 of the partition leader (restarted after the round)
  kill-controller  kill -9 of the active controller's node while it leads the partition
                 produced to (three partitions, one led by each node)
  term           SIGTERM of the leader: a controlled shutdown (restarted after the round)
  stop           SIGSTOP of the leader, a hung process (SIGCONT after the round)
  follower-stop  SIGSTOP of one follower (not the active controller when the other follower
                 is): the produce stall while acks=all waits for it to leave the ISR
  netsplit       the leader's network cut off: each node in a network namespace of its own
                 (as tests/compat/test_failover_clients.py, under its machine-wide lock; needs
                 root and iproute2); healed after the round

    .venv/bin/python tests/compat/failover_time.py [--rounds 20] [--mode MODE] [node overrides...]

Per round, two times from the fault: when a live node's metadata shows the cluster reacted (a
new leader; for follower-stop the follower out of the ISR) and the first acknowledgement. The
second includes the client: librdkafka's idempotent producer moves a partition only after its
in-flight requests to the old leader are answered or time out (`socket.timeout.ms`, 60 s), so
against a hung or cut-off leader pass e.g. `--producer socket.timeout.ms=1000` to see the
brokers' part. Prints each round and p50 / p99 / min / max. Every wait is bounded."""
import argparse
import fcntl
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

import jepsen  # noqa: E402
from cluster import Cluster  # noqa: E402
from jepsen import leader_of, partition_state, wait_for, wait_isr_full  # noqa: E402

MODES = ["kill", "kill-controller", "term", "stop", "follower-stop", "netsplit"]


def percentile(sorted_ms, q):
    """Nearest-rank percentile of an ascending list."""
    k = max(0, min(len(sorted_ms) - 1, int(round(q / 100 * len(sorted_ms) + 0.5)) - 1))
    return sorted_ms[k]


def netns_lock(timeout=900):
    """The machine-wide lock of the fixed-name namespaces (test_failover_clients.netns_cluster)."""
    lock = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), "riptide-netns.lock"), "w")
    deadline = time.time() + timeout
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return lock
        except OSError:
            if time.time() > deadline:
                raise RuntimeError("another run held the network-namespace lock for 15 minutes")
            time.sleep(1)


def make_cluster(base, mode, extra):
    if mode != "netsplit":
        return Cluster(base, 3, extra).start(), None, None
    from test_failover_clients import NetnsNet
    lock = netns_lock()
    net = NetnsNet(3)
    try:
        net.setup()
        c = Cluster(base, 3, extra, ports=[(9092, 9093, 9100)] * 3,
                    hosts=[net.host(i) for i in (1, 2, 3)], prefixes=[net.prefix(i) for i in (1, 2, 3)])
        return c.start(), net, lock
    except BaseException:
        net.cleanup()
        lock.close()
        raise


def preferred_leads(cluster, topic):
    return all(leader == replicas[0]
               for leader, replicas, _ in partition_state(jepsen.usable(cluster)[0], topic).values())


def pick_victim(cluster, topic, mode, target):
    """The node to fault: the partition leader, or for follower-stop one of its followers
    (preferring one that is not the active controller, so the stall measured is the ISR's).
    kill-controller: the active controller, and the partition it leads becomes the target."""
    if mode == "kill-controller":
        controller = cluster.active_controller(timeout=10).id
        led = [p for p, (leader, _, _) in partition_state(jepsen.usable(cluster)[0], topic).items()
               if leader == controller]
        target["partition"] = led[0]
        time.sleep(0.5)  # the producer sends to it by now
        return cluster.node(controller)
    leader, replicas, _ = partition_state(jepsen.usable(cluster)[0], topic)[target["partition"]]
    if mode != "follower-stop":
        return cluster.node(leader)
    followers = [r for r in replicas if r != leader]
    controller = cluster.active_controller(timeout=10).id
    choice = [f for f in followers if f != controller] or followers
    return cluster.node(choice[0])


def inject(node, mode, net):
    if mode in ("kill", "kill-controller"):
        node.kill9()
    elif mode == "term":
        node.stop(signal.SIGTERM)
    elif mode in ("stop", "follower-stop"):
        jepsen.pause(node)
    else:
        net.cut(node.id)
        node.isolated = True


def undo(node, mode, net):
    if mode in ("kill", "kill-controller", "term"):
        node.spawn().wait_listening()
    elif mode in ("stop", "follower-stop"):
        jepsen.resume(node)
    else:
        net.heal(node.id)
        node.isolated = False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--mode", choices=MODES, default="kill")
    ap.add_argument("--producer", action="append", default=[], metavar="NAME=VALUE",
                    help="an extra librdkafka producer setting (e.g. socket.timeout.ms=1000)")
    ap.add_argument("overrides", nargs="*", help="name=value node configs")
    args = ap.parse_args()
    producer_extra = dict(kv.split("=", 1) for kv in args.producer)
    extra = [x for o in args.overrides for x in ("--override", o)]
    base = tempfile.mkdtemp(prefix="riptide-failover-")
    cluster, net, lock = make_cluster(base, args.mode, extra)
    topic = "failover"
    try:
        bootstrap = ",".join(n.bootstrap for n in cluster.nodes)
        a = AdminClient({"bootstrap.servers": bootstrap})
        wait_for(lambda: len(a.list_topics(timeout=10).brokers) == 3, 60, "3 live brokers")
        # kill-controller: one partition led by each node (whichever is the active controller
        # leads one); else one partition.
        spec = (dict(num_partitions=3, replica_assignment=[[1, 2, 3], [2, 3, 1], [3, 1, 2]])
                if args.mode == "kill-controller"
                else dict(num_partitions=1, replication_factor=3))
        a.create_topics([NewTopic(topic, config={"min.insync.replicas": "2"}, **spec)])[topic].result(30)
        wait_isr_full(cluster, topic, 3, timeout=60)
        target = {"partition": 0}  # the partition produced to and faulted
        acks = []  # (send time, ack time)
        lock_acks = threading.Lock()
        stop = threading.Event()

        def produce():
            p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                          "linger.ms": 0, "message.timeout.ms": 120000, "retry.backoff.ms": 20,
                          "retry.backoff.max.ms": 100, "topic.metadata.refresh.interval.ms": 250,
                          **producer_extra})
            while not stop.is_set():
                sent = time.monotonic()

                def cb(err, _msg, sent=sent):
                    if err is None:
                        with lock_acks:
                            acks.append((sent, time.monotonic()))
                p.produce(topic, b"x" * 100, partition=target["partition"], on_delivery=cb)
                p.poll(0.002)
            p.flush(60)

        t = threading.Thread(target=produce, daemon=True)
        t.start()
        time.sleep(3)
        results, reacted = [], []
        for r in range(args.rounds):
            node = pick_victim(cluster, topic, args.mode, target)
            part = target["partition"]
            role = "follower" if args.mode == "follower-stop" else "leader"
            if cluster.active_controller(timeout=10).id == node.id:
                role += " (and active controller)"
            at = time.monotonic()
            inject(node, args.mode, net)
            if args.mode == "netsplit":
                # `ip link set down` is a subprocess: records sent while it starts still get
                # through, so the cut counts from when it returned.
                at = time.monotonic()

            def first_ack_after():
                with lock_acks:
                    after = [ack for sent, ack in acks if sent >= at]
                return min(after) if after else None

            def cluster_moved():
                # What the brokers did, whatever the client waits for: a new leader, or the
                # stopped follower out of the ISR (as a live node's metadata says).
                try:
                    leader, _, isr = partition_state(jepsen.usable(cluster)[0], topic, timeout=2)[part]
                except Exception:  # noqa: BLE001 - a node between states; ask again
                    return None
                moved = node.id not in isr if args.mode == "follower-stop" else leader not in (-1, node.id)
                return time.monotonic() if moved else None
            try:
                moved = wait_for(cluster_moved, 120, "the cluster to react to the fault", interval=0.02)
                first = wait_for(first_ack_after, 120, "an acknowledgement after the fault", interval=0.02)
            finally:
                undo(node, args.mode, net)
            results.append(first - at)
            reacted.append(moved - at)
            what = "out of the ISR" if args.mode == "follower-stop" else "new leader"
            print(f"round {r + 1}: {role} {node.id} {args.mode}: {what} after {1000 * (moved - at):.0f} ms, "
                  f"first ack after {1000 * (first - at):.0f} ms", flush=True)
            wait_isr_full(cluster, topic, 3, timeout=120)
            # The controller moves leadership back to the preferred replica every 5 s: let it,
            # or that move would pass for the next round's failover.
            wait_for(lambda: preferred_leads(cluster, topic), 30, "the preferred replica leading", interval=0.2)
            time.sleep(1)
        stop.set()
        t.join(90)
        settings = " ".join(args.overrides) or "defaults"
        if args.producer:
            settings += f"; producer {' '.join(args.producer)}"
        for label, xs in (("cluster reacted", reacted), ("first ack", results)):
            ms = sorted(1000 * x for x in xs)
            print(f"{label} ({args.mode}, {len(ms)} rounds, {settings}): p50 {statistics.median(ms):.0f} ms, "
                  f"p99 {percentile(ms, 99):.0f} ms, min {ms[0]:.0f} ms, max {ms[-1]:.0f} ms")
    finally:
        for n in cluster.nodes:
            if jepsen.paused(n):
                jepsen.resume(n)
        if net is not None:
            for i in (1, 2, 3):
                net.heal(i)
        cluster.stop()
        if net is not None:
            net.cleanup()
            lock.close()


if __name__ == "__main__":
    main()
