"""Failover as clients see it, on real processes (three combined nodes, topics with replication
factor 3), judged by the Jepsen-style checker in jepsen.py or by reading every value back:

  - a network partition: the nodes run in their own network namespaces (a veth pair each, the
    root ends on one bridge, 10.231.0.N); the leader of partition 0 is cut off past its broker
    session under an idempotent acks=all workload, the others elect a new leader and keep
    acknowledging, the link is healed: nothing acknowledged lost, nothing duplicated, nothing
    read vanished, every ISR full again and the replicas' logs identical on disk;
  - kcat and kafkajs (idempotent, acks=all) producing through a kill -9 of the partition
    leader and its restart: both finish with every message delivered, and the topic holds
    each value exactly once;
  - a rolling restart (SIGTERM, one node at a time, each back in every ISR before the next)
    under an idempotent acks=all workload: no delivery fails, nothing is lost or duplicated.

Node logs: <pytest tmp>/<test>/node-N.log (the paths are printed when a test fails)."""
import fcntl
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

import jepsen
from cluster import Cluster
from conftest import unique
from jepsen import (Workload, assert_ok, leader_of, state, wait_for, wait_isr_full, wait_leader_change,
                    wait_replicas_identical)

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_MODULES = os.path.join(HERE, "matrix", "node_modules")

o = lambda k, v: ["--override", f"{k}={v}"]  # noqa: E731
# Short sessions and lag time so that fencing and ISR shrinking show within the tests' patience.
EXTRA = [*o("broker.session.timeout.ms", 3000), *o("broker.heartbeat.interval.ms", 500),
         *o("replica.lag.time.max.ms", 3000), *o("default.replication.factor", 3)]


def say(line):
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


def stop_cluster(c):
    for n in c.nodes:
        if jepsen.paused(n):
            jepsen.resume(n)
    c.stop()


@pytest.fixture
def cluster(tmp_path):
    """A fresh 3-node loopback cluster per test."""
    c = Cluster(str(tmp_path), 3, EXTRA)
    say(f"node logs: {[n.log_path for n in c.nodes]}")
    try:
        c.start()
        wait_brokers(c)
        yield c
    finally:
        stop_cluster(c)


def wait_brokers(c, timeout=60):
    wait_for(lambda: all(len(AdminClient({"bootstrap.servers": n.bootstrap}).list_topics(timeout=10).brokers) == 3
                         for n in jepsen.usable(c)), timeout, "3 live brokers seen from every node")


def create(c, name, partitions, rf=3, config=None, timeout=30):
    a = AdminClient({"bootstrap.servers": jepsen.bootstrap_of(c)})
    fs = a.create_topics([NewTopic(name, partitions, rf, config=config or {})], operation_timeout=timeout)
    fs[name].result(timeout)
    wait_isr_full(c, name, rf, timeout=30)
    return name


def all_nodes(c):
    # Clients find the live brokers themselves.
    return ",".join(n.bootstrap for n in c.nodes)


def check_replicas(c, topic, partitions, rf=3):
    report, same = wait_replicas_identical(c, topic, partitions, rf=rf, timeout=30)
    assert same, f"replica logs differ on disk: {report}"
    return report


def progress(w, c, topic, more, timeout, what):
    """Asserts that the workload gets `more` further acknowledgements within `timeout` s; the
    failure tells what each node reports about the partitions and the producers' last errors."""
    if not w.wait_acked(more, timeout):
        raise AssertionError(
            f"no progress {what}: {w.acked_count()} acknowledged, {len(w.failed)} failed, fatal {w.fatal[:3]}; "
            f"last producer errors {w.errors[-3:]}; delivery errors {sorted(set(w.failed.values()))[:3]}; "
            f"partition state per node: {jepsen.describe_states(c, topic)}")


def crashed_nodes(c):
    """Nodes that exited on their own (a stopped node has no process)."""
    return [(n.id, n.proc.returncode, jepsen.log_tail(n)) for n in c.nodes
            if n.proc is not None and n.proc.poll() is not None]


# ---------------------------------------------------------------------------------------------
# 1. A network partition, with network namespaces

NS_PREFIX = "rtfo"                 # namespaces rtfo-n1..3, veths rtfo-v1..3 / rtfo-p1..3, bridge rtfo-br
SUBNET = "10.231.0"
BRIDGE = f"{NS_PREFIX}-br"


def ip(*args, check=True):
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    if check and r.returncode != 0:
        raise subprocess.CalledProcessError(r.returncode, ["ip", *args], r.stdout, r.stderr)
    return r


def alive_pid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class NetnsNet:
    """n network namespaces, each with a veth pair whose root end is on one bridge:
    node i at SUBNET.i/24 in namespace rtfo-ni, the bridge (the root namespace's address, where
    the clients are) at SUBNET.254. cut(i)/heal(i) take the root end of node i's veth down/up."""

    def __init__(self, n=3):
        self.n = n

    def ns(self, i):
        return f"{NS_PREFIX}-n{i}"

    def veth(self, i):
        return f"{NS_PREFIX}-v{i}"

    def host(self, i):
        return f"{SUBNET}.{i}"

    def prefix(self, i):
        return ["ip", "netns", "exec", self.ns(i)]

    def cleanup(self):
        """Removes whatever an earlier (crashed) run left: processes still in the namespaces
        (by pid, they are that run's nodes), the namespaces, veths and the bridge."""
        for i in range(1, self.n + 1):
            ns = self.ns(i)
            if os.path.exists(f"/run/netns/{ns}"):
                pids = ip("netns", "pids", ns, check=False).stdout.split()
                for pid in pids:
                    try:
                        os.kill(int(pid), 9)
                    except (ProcessLookupError, ValueError):
                        pass
                for pid in pids:  # bounded wait for them to go (or be zombies)
                    for _ in range(50):
                        if not alive_pid(pid):
                            break
                        time.sleep(0.1)
                ip("netns", "del", ns, check=False)
            ip("link", "del", self.veth(i), check=False)
        ip("link", "del", BRIDGE, check=False)

    def setup(self):
        self.cleanup()
        ip("link", "add", BRIDGE, "type", "bridge")
        ip("addr", "add", f"{SUBNET}.254/24", "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")
        for i in range(1, self.n + 1):
            ns, veth, peer = self.ns(i), self.veth(i), f"{NS_PREFIX}-p{i}"
            ip("netns", "add", ns)
            ip("link", "add", veth, "type", "veth", "peer", "name", peer)
            ip("link", "set", peer, "netns", ns)
            ip("link", "set", veth, "master", BRIDGE)
            ip("link", "set", veth, "up")
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "addr", "add", f"{self.host(i)}/24", "dev", peer)
            ip("-n", ns, "link", "set", peer, "up")
        # Reachable from the root namespace (the clients' side) and between namespaces.
        for i in range(1, self.n + 1):
            wait_for(lambda: reachable(self.host(i)), 10, f"{self.host(i)} reachable", interval=0.2)
            for j in range(1, self.n + 1):
                if j != i:
                    wait_for(lambda: reachable(self.host(j), ns=self.ns(i)), 10,
                             f"{self.host(j)} reachable from {self.ns(i)}", interval=0.2)
        return self

    def cut(self, i):
        ip("link", "set", self.veth(i), "down")

    def heal(self, i):
        ip("link", "set", self.veth(i), "up")


PROBE = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], 1), timeout=1).close()
except ConnectionRefusedError:
    pass  # a RST from the address: reachable
except OSError:
    sys.exit(1)
"""


def reachable(addr, ns=None):
    """A TCP connect to a closed port of addr (from namespace ns, or the root one) is refused."""
    cmd = (["ip", "netns", "exec", ns] if ns else []) + [sys.executable, "-c", PROBE, addr]
    return subprocess.run(cmd, capture_output=True, timeout=10).returncode == 0


@pytest.fixture
def netns_cluster(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if not shutil.which("ip"):
        pytest.skip("needs iproute2 (ip)")
    # The namespaces, veths and bridge have fixed names: one test on this machine at a time
    # (two suites run side by side would tear down each other's nodes), waited for with a bound.
    lock = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), "riptide-netns.lock"), "w")
    deadline = time.time() + 900
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError:
            if time.time() > deadline:
                pytest.fail("another run held the network-namespace lock for 15 minutes")
            time.sleep(1)
    net = NetnsNet(3)
    try:
        net.setup()
    except (subprocess.CalledProcessError, AssertionError, OSError) as e:
        detail = getattr(e, "stderr", "") or ""
        net.cleanup()
        pytest.skip(f"cannot set up network namespaces: {e} {detail.strip()}")
    c = None
    try:
        c = Cluster(str(tmp_path), 3, EXTRA, ports=[(9092, 9093, 9100)] * 3,
                    hosts=[net.host(i) for i in (1, 2, 3)], prefixes=[net.prefix(i) for i in (1, 2, 3)])
        c.net = net
        say(f"node logs: {[n.log_path for n in c.nodes]}")
        c.start()
        wait_brokers(c)
        yield c
    finally:
        try:
            if c is not None:
                for i in (1, 2, 3):  # links up first: a controlled shutdown needs the quorum
                    net.heal(i)
                    c.node(i).isolated = False
                stop_cluster(c)
        finally:
            net.cleanup()
            lock.close()


def test_network_partition_of_the_leader(netns_cluster):
    c = netns_cluster
    net = c.net
    topic = create(c, unique("netsplit"), 3, 3, {"min.insync.replicas": "2"})
    w = Workload(all_nodes(c), topic, 3, producers=2, consumers=1, log=say).start()
    victim = None
    try:
        progress(w, c, topic, 200, 30, "before the fault")
        victim = c.node(leader_of(c, topic, 0))
        say(f"cutting node {victim.id} ({victim.host}), leader of {topic}-0 (active controller: node "
            f"{c.active_controller(timeout=10).id}); state {state(c, topic)}")
        t0 = time.time()
        net.cut(victim.id)
        victim.isolated = True
        new = wait_leader_change(c, topic, 0, victim.id, timeout=30)
        say(f"new leader of {topic}-0: {new} after {time.time() - t0:.1f}s")
        # The majority side takes acks=all writes without the cut-off node (ISR of 2 >=
        # min.insync.replicas).
        wait_for(lambda: all(victim.id not in isr for _, _, isr in state(c, topic).values()), 30,
                 f"node {victim.id} out of every ISR")
        progress(w, c, topic, 200, 40, f"after the failover (node {victim.id} cut off)")
        # Cut for well past the session timeout (3 s): a zombie leader, its connections open.
        time.sleep(max(0.0, 10 - (time.time() - t0)))
        assert victim.alive(), "the cut-off node exited"
        net.heal(victim.id)
        victim.isolated = False
        say(f"healed node {victim.id} after {time.time() - t0:.1f}s cut")
        wait_isr_full(c, topic, 3, timeout=60)
        progress(w, c, topic, 100, 30, "after the heal")
    finally:
        if victim is not None:
            net.heal(victim.id)
            victim.isolated = False
        w.stop(flush_timeout=60)
    assert not crashed_nodes(c), crashed_nodes(c)
    r = w.check(jepsen.bootstrap_of(c), timeout=60)
    assert_ok(r)
    assert r["acknowledged"] > 0
    wait_isr_full(c, topic, 3, timeout=30)
    report = check_replicas(c, topic, 3)
    say(f"replica logs identical: {[(p, v['lengths']) for p, v in report.items()]}")
    on_disk = {v for p in range(3) for _, v in jepsen.replica_log(victim.data_dir, topic, p)}
    missing = [v for v in w.acked if v not in on_disk]
    assert not missing, f"{len(missing)} acknowledged values not on the healed node's disk, e.g. {missing[:5]}"


# ---------------------------------------------------------------------------------------------
# 2. kcat and kafkajs through a leader kill

KAFKAJS_PRODUCER = r"""
'use strict'
// Idempotent acks=all kafkajs producer: COUNT values PREFIX-000000.. to partition 0 of TOPIC,
// one send per value at RATE per second; one JSON line per delivery result on stdout.
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'
const { Kafka, logLevel } = require('kafkajs')
const [brokers, topic, count, rate, prefix] = process.argv.slice(2)
const logCreator = () => ({ namespace, level, log }) => {
  const { message, ...extra } = log
  process.stderr.write(`[kafkajs ${namespace}] ${message} ${JSON.stringify(extra)}\n`)
}
const kafka = new Kafka({
  clientId: 'riptide-failover',
  brokers: brokers.split(','),
  logLevel: logLevel.WARN,
  logCreator,
  connectionTimeout: 3000,
  requestTimeout: 10000,
  retry: { retries: 1000, initialRetryTime: 100, maxRetryTime: 1000 }
})
const producer = kafka.producer({
  idempotent: true,
  maxInFlightRequests: 1,
  retry: { retries: 1000, initialRetryTime: 100, maxRetryTime: 1000 }
})
const out = o => process.stdout.write(JSON.stringify(o) + '\n')
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
async function main () {
  await producer.connect()
  const n = Number(count)
  const interval = 1000 / Number(rate)
  const t0 = Date.now()
  let failed = 0
  for (let i = 0; i < n; i++) {
    const value = `${prefix}-${String(i).padStart(6, '0')}`
    const ahead = t0 + i * interval - Date.now()
    if (ahead > 0) await sleep(ahead)
    try {
      const res = await producer.send({ topic, acks: -1, timeout: 30000, messages: [{ value, partition: 0 }] })
      out({ acked: value, offset: res[0].baseOffset })
    } catch (e) {
      failed++
      out({ failed: value, error: `${e.name}: ${e.message}` })
    }
  }
  await producer.disconnect()
  out({ done: n, failed })
  process.exit(failed ? 1 : 0)
}
main().catch(e => { out({ crashed: `${e.name}: ${e.message}` }); process.exit(2) })
"""


class ClientProcess:
    """A client run as a process (`proc`), its stderr in `err_path`."""

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def _after_exit(self):
        pass

    def wait(self, timeout):
        """The exit code, or None when it had to be killed after `timeout` seconds."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
            self._after_exit()
            self.err.close()


class Kcat(ClientProcess):
    """kcat -P fed `count` lines PREFIX-000000.. through its stdin at `rate` per second
    (bounded: count lines); -vv reports each delivery on stderr."""

    def __init__(self, bootstrap, topic, count, rate, prefix, log_dir):
        self.count, self.rate, self.prefix = count, rate, prefix
        self.values = [f"{prefix}-{i:06d}" for i in range(count)]
        self.fed = 0
        self.err_path = os.path.join(log_dir, "kcat.stderr")
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(
            ["kcat", "-P", "-b", bootstrap, "-t", topic, "-p", "0", "-vv",
             "-X", "acks=all", "-X", "enable.idempotence=true", "-X", "message.timeout.ms=60000",
             "-X", "topic.metadata.refresh.interval.ms=2000", "-X", "linger.ms=5"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.err)
        self.feeder = threading.Thread(target=self._feed, daemon=True, name="kcat-feeder")
        self.feeder.start()

    def _feed(self):
        t0 = time.monotonic()
        try:
            for i, v in enumerate(self.values):
                ahead = t0 + i / self.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
                self.proc.stdin.write((v + "\n").encode())
                self.proc.stdin.flush()
                self.fed = i + 1
        except (BrokenPipeError, ValueError):
            pass
        finally:
            try:
                self.proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass


    def delivered(self):
        return self.stderr().count("Message delivered to partition")

    def failures(self):
        return [l for l in self.stderr().splitlines() if "Delivery failed" in l or "ERROR" in l]



class KafkaJs(ClientProcess):
    def __init__(self, bootstrap, topic, count, rate, prefix, log_dir):
        script = os.path.join(log_dir, "kafkajs_producer.js")
        with open(script, "w") as f:
            f.write(KAFKAJS_PRODUCER)
        self.values = [f"{prefix}-{i:06d}" for i in range(count)]
        self.acked, self.failed, self.other = {}, {}, []
        self.err_path = os.path.join(log_dir, "kafkajs.stderr")
        self.err = open(self.err_path, "wb")
        env = dict(os.environ, NODE_PATH=NODE_MODULES)
        self.proc = subprocess.Popen(["node", script, bootstrap, topic, str(count), str(rate), prefix],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.err, env=env)
        self.reader = threading.Thread(target=self._read, daemon=True, name="kafkajs-reader")
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:  # ends with the process
            try:
                m = json.loads(line)
            except ValueError:
                self.other.append(line)
                continue
            if not isinstance(m, dict):
                self.other.append(m)
            elif "acked" in m:
                self.acked[m["acked"]] = m["offset"]
            elif "error" in m:
                self.failed[m["failed"]] = m["error"]
            else:  # {"done": n, "failed": k} or {"crashed": ...}
                self.other.append(m)


    def _after_exit(self):
        self.reader.join(10)


def test_kcat_and_kafkajs_ride_through_a_leader_kill(cluster, tmp_path):
    if not shutil.which("kcat"):
        pytest.skip("kcat not installed")
    if not shutil.which("node") or not os.path.isdir(os.path.join(NODE_MODULES, "kafkajs")):
        pytest.skip("needs node and `npm ci` in tests/compat/matrix")
    c = cluster
    topic = create(c, unique("clients-kill"), 1, 3, {"min.insync.replicas": "2"})
    boot = all_nodes(c)
    kc = Kcat(boot, topic, 1200, 50, "kcat", str(tmp_path))
    js = KafkaJs(boot, topic, 800, 40, "js", str(tmp_path))
    victim = None
    try:
        wait_for(lambda: kc.delivered() >= 100 and len(js.acked) >= 100, 30,
                 "kcat and kafkajs both delivering", interval=0.2)
        victim = c.node(leader_of(c, topic, 0))
        before = (kc.delivered(), len(js.acked))
        say(f"kill -9 node {victim.id}, leader of {topic}-0 (kcat delivered {before[0]}, kafkajs acked {before[1]})")
        t0 = time.time()
        victim.kill9()
        new = wait_leader_change(c, topic, 0, victim.id, timeout=30)
        say(f"new leader {new} after {time.time() - t0:.1f}s")
        try:
            wait_for(lambda: kc.delivered() >= before[0] + 50 and len(js.acked) >= before[1] + 50, 40,
                     "kcat and kafkajs both delivering after the failover", interval=0.2)
        except AssertionError as e:
            raise AssertionError(
                f"{e}: kcat delivered {kc.delivered()} (before the kill {before[0]}), kafkajs acked "
                f"{len(js.acked)} (before {before[1]}); partition state per node: "
                f"{jepsen.describe_states(c, topic)}; kafkajs log tail:\n"
                + "\n".join(js.stderr().splitlines()[-3:])) from None
        say(f"both delivering again after {time.time() - t0:.1f}s "
            f"(kcat {kc.delivered()}, kafkajs {len(js.acked)})")
        victim.spawn().wait_listening()
        wait_isr_full(c, topic, 3, timeout=60)
        say(f"node {victim.id} back in the ISR after {time.time() - t0:.1f}s")
    finally:
        try:
            if victim is not None and not victim.alive():
                victim.spawn().wait_listening()
        finally:  # bounded either way: the clients are killed 60 s from here
            deadline = time.monotonic() + 60
            kc_rc = kc.wait(max(1.0, deadline - time.monotonic()))
            js_rc = js.wait(max(1.0, deadline - time.monotonic()))
    say(f"kcat exit {kc_rc}, delivered {kc.delivered()}/{len(kc.values)}; "
        f"kafkajs exit {js_rc}, acked {len(js.acked)}/{len(js.values)}, failed {len(js.failed)}")
    if kc_rc is None or js_rc is None:
        raise AssertionError(
            f"the clients did not finish within 60 s of the recovery (None: killed): kcat {kc_rc} delivered "
            f"{kc.delivered()}/{len(kc.values)}, kafkajs {js_rc} acked {len(js.acked)}/{len(js.values)}; "
            f"partition state per node: {jepsen.describe_states(c, topic)}; kafkajs log tail:\n"
            + "\n".join(js.stderr().splitlines()[-5:]))
    assert kc_rc == 0, f"kcat exited with {kc_rc}: {kc.failures()[:10]}\n{kc.stderr()[-3000:]}"
    assert kc.fed == len(kc.values)
    assert kc.delivered() == len(kc.values), (kc.delivered(), kc.failures()[:10])
    assert js_rc == 0, f"kafkajs exited with {js_rc}: failed {list(js.failed.items())[:5]} other {js.other[:5]}\n" \
                       f"{js.stderr()[-3000:]}"
    assert not js.failed, list(js.failed.items())[:10]
    assert sorted(js.acked) == js.values
    assert not crashed_nodes(c), crashed_nodes(c)

    # Everything sent, exactly once, and nothing else.
    final, complete = jepsen.read_log(jepsen.bootstrap_of(c), topic, 1, timeout=60)
    assert complete, "the final read did not reach the high watermark"
    values = [v.decode() for _, v in final[0]]
    counts = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    sent = kc.values + js.values
    missing = [v for v in sent if v not in counts]
    dups = sorted(v for v, n in counts.items() if n > 1)
    unknown = sorted(set(counts) - set(sent))
    assert not missing and not dups and not unknown, \
        f"missing {len(missing)} e.g. {missing[:5]}; duplicated {len(dups)} e.g. {dups[:5]}; " \
        f"unknown {unknown[:5]}"
    assert len(values) == len(sent)
    # Each client's values in its own order, and kafkajs's at the offsets it was told.
    for prefix, vals in (("kcat", kc.values), ("js", js.values)):
        assert [v for v in values if v.startswith(prefix + "-")] == vals, f"{prefix} values out of order"
    at = {v.decode(): off for off, v in final[0]}
    wrong = [(v, off, at[v]) for v, off in js.acked.items() if int(off) != at[v]]
    assert not wrong, f"kafkajs values not at their acknowledged offsets: {wrong[:5]}"
    wait_isr_full(c, topic, 3, timeout=30)
    check_replicas(c, topic, 1)


# ---------------------------------------------------------------------------------------------
# 3. Rolling restart under load


def test_rolling_restart_under_load(cluster):
    c = cluster
    topic = create(c, unique("rolling"), 3, 3, {"min.insync.replicas": "2"})
    w = Workload(all_nodes(c), topic, 3, producers=2, consumers=1, log=say).start()
    try:
        progress(w, c, topic, 200, 30, "before the restarts")
        for n in c.nodes:
            t0 = time.time()
            led = [p for p, (l, _, _) in state(c, topic).items() if l == n.id]
            rc = n.stop()  # SIGTERM: controlled shutdown
            took = time.time() - t0
            say(f"node {n.id} (led {led}) stopped with {rc} in {took:.1f}s")
            assert rc == 0, f"node {n.id} exited with {rc} on SIGTERM: {jepsen.log_tail(n)}"
            # Its partitions are led elsewhere (moved before it went, not after a session timeout).
            wait_for(lambda: all(l not in (n.id, -1) for l, _, _ in state(c, topic).values()), 10,
                     f"every partition of {topic} led by a live node after node {n.id} stopped")
            progress(w, c, topic, 100, 30, f"with node {n.id} down")
            n.spawn().wait_listening()
            wait_brokers(c)
            wait_isr_full(c, topic, 3, timeout=60)
            progress(w, c, topic, 100, 30, f"after node {n.id} came back")
            say(f"node {n.id} restarted and back in every ISR in {time.time() - t0:.1f}s; "
                f"{w.acked_count()} acked, {len(w.failed)} failed")
    finally:
        w.stop(flush_timeout=60)
    assert not crashed_nodes(c), crashed_nodes(c)
    r = w.check(jepsen.bootstrap_of(c), timeout=60)
    assert_ok(r)
    # No delivery failed or went unanswered: a rolling restart is invisible to the producers.
    assert r["failed"] == 0 and r["indeterminate"] == 0 and r["unflushed"] == 0, \
        f"{jepsen.summary(r)}; failures: {r['examples']['failed']}; producer errors: {w.errors[:10]}"
    assert r["acknowledged"] == r["sent"]
    # Every follower still following: the ISRs full and the replicas' logs identical.
    wait_isr_full(c, topic, 3, timeout=30)
    check_replicas(c, topic, 3)


@pytest.fixture
def small_disk_cluster(tmp_path):
    """A 3-node cluster whose node 3 keeps its partition logs on a 24 MiB tmpfs (its metadata
    log elsewhere), so that it runs out of space long before the others."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    c = Cluster(str(tmp_path), 3, EXTRA)
    small = c.node(3)
    os.makedirs(small.data_dir, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", small.data_dir],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.strip()}")
    small.extra += ["--override", f"metadata.log.dir={tmp_path}/node-3-metadata"]
    say(f"node logs: {[n.log_path for n in c.nodes]}")
    try:
        c.start()
        wait_brokers(c)
        yield c
    finally:
        stop_cluster(c)
        subprocess.run(["umount", "-l", small.data_dir], capture_output=True)


def test_a_follower_whose_disk_fills_leaves_the_isr(small_disk_cluster):
    """Node 3 follows a partition until its disk is full: its appends fail (ENOSPC), it says so
    in its log and metrics and stops acknowledging, its leader drops it from the ISR, and
    acks=all producers go on with the other two; nothing acknowledged is lost."""
    from confluent_kafka import Producer
    c = small_disk_cluster
    topic = unique("diskfull")
    a = AdminClient({"bootstrap.servers": jepsen.bootstrap_of(c)})
    # Led by node 1 (first in the assignment), followed by the small disk's node 3.
    new = NewTopic(topic, num_partitions=1, replica_assignment=[[1, 2, 3]],
                   config={"min.insync.replicas": "2"})
    a.create_topics([new], operation_timeout=30)[topic].result(30)
    wait_isr_full(c, topic, 3, timeout=30)
    assert leader_of(c, topic, 0) == 1
    acked, failed = [], []
    p = Producer({"bootstrap.servers": all_nodes(c), "acks": "all", "enable.idempotence": True,
                  "linger.ms": 5, "message.timeout.ms": 60000})
    value = os.urandom(16 * 1024)
    for i in range(2400):  # 37.5 MiB, over the 24 MiB the follower has
        p.produce(topic, value=value, key=str(i).encode(), partition=0,
                  on_delivery=lambda e, m: (failed if e else acked).append(e or m.offset()))
        p.poll(0)
        if i % 200 == 0:
            p.flush(60)
    assert p.flush(90) == 0
    assert not failed, f"{len(failed)} deliveries failed: {failed[:3]}"
    assert len(acked) == 2400
    wait_for(lambda: c.node(3).metrics().get("riptide_replica_append_failures_total", 0) > 0, 30,
             "node 3 counting failed follower appends")
    wait_for(lambda: 3 not in state(c, topic)[0][2], 30, "node 3 out of the ISR")
    assert "follower append failed" in c.node(3).read_log()
    got, complete = jepsen.read_log(jepsen.bootstrap_of(c), topic, 1, min_end={0: max(acked) + 1}, timeout=60)
    assert complete
    offsets = {off for off, _ in got[0]}
    assert set(acked) <= offsets, "acknowledged records lost"
