"""A local N-node riptide cluster of real processes on loopback (combined broker+controller
nodes, each with its own ports and data directory), for the cluster tests and
scripts/cluster.sh."""
import os
import signal
import subprocess
import time
import urllib.request

from launch import BINARY, CONTROLLER_PORT, log_tail, loopback_host, ports, wait_ready
from conftest import IO_ARGS


class Node:
    """host: the address the node listens on (Kafka, controller, REST and metrics listeners)
    and clients connect to: by default a loopback address of its own (launch.py says why);
    prefix: a command prefix the node runs under (e.g. `ip netns exec NS`, which execs rather
    than forks, so signals still reach riptide). Ports given as None (the default for all but
    the controller's) are bound as 0 at the first start and read from the ready file; a
    restart binds the same ones again."""

    def __init__(self, node_id, base, kafka_port, controller_port, metrics_port, voters, extra,
                 host="127.0.0.1", prefix=(), controller=True):
        self.id = node_id
        # A broker-only node (controller=False) has no CONTROLLER listener and reaches the
        # quorum through the voters.
        self.controller = controller
        self.host = host
        self.prefix = list(prefix)
        self.data_dir = os.path.join(base, f"node-{node_id}")
        self.kafka_port = kafka_port or 0
        self.controller_port = controller_port
        self.metrics_port = metrics_port or 0
        self.rest_port = 0
        self.voters = voters
        self.extra = list(extra)
        self.proc = None
        self.log_path = self.data_dir + ".log"
        self.ready_path = self.data_dir + ".ready.json"

    @property
    def bootstrap(self):
        return f"{self.host}:{self.kafka_port}"

    @property
    def rest_url(self):
        return f"http://{self.host}:{self.rest_port}"

    def args(self):
        o = lambda k, v: ["--override", f"{k}={v}"]
        h = self.host
        return [
            *self.prefix,
            BINARY, "serve", "--data-dir", self.data_dir, "--node-id", str(self.id),
            "--metrics-listen", f"{h}:{self.metrics_port}", "--shards", "2", "--no-pin", *IO_ARGS,
            *o("process.roles", "broker,controller" if self.controller else "broker"),
            *o("controller.quorum.voters", self.voters),
            *o("listeners", f"PLAINTEXT://{h}:{self.kafka_port},CONTROLLER://{h}:{self.controller_port}"
               if self.controller else f"PLAINTEXT://{h}:{self.kafka_port}"),
            *o("broker.rack", f"rack-{self.id % 3}"),
            *o("rest.listeners", f"http://{h}:{self.rest_port}"),
            "--ready-file", self.ready_path,
            *self.extra,
        ]

    def spawn(self):
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        try:
            os.unlink(self.ready_path)
        except FileNotFoundError:
            pass
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args(), stdout=self.log, stderr=self.log)
        return self

    def wait_listening(self, timeout=60):
        """Waits for the ready file and an ApiVersions answer (the node has caught up with the
        metadata log by then); fails at once if the node exits."""
        ready = wait_ready(self.proc, self.ready_path, self.log_path, timeout, f"node {self.id}")
        self.kafka_port, self.metrics_port, self.rest_port = ports(ready)
        return self

    def read_log(self):
        return log_tail(self.log_path, 1 << 30)

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=timeout)
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        return rc

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def metrics(self):
        with urllib.request.urlopen(f"http://{self.host}:{self.metrics_port}/metrics", timeout=2) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#") and "{" not in line:
                k, v = line.split()
                out[k] = float(v)
        return out


class Cluster:
    """hosts: one listen address per node (default: a loopback address of its own each);
    ports: (kafka, controller, metrics) per node (default: 0, CONTROLLER_PORT, 0);
    prefixes: one command prefix per node (see Node)."""

    def __init__(self, base, n=3, extra=(), ports=None, hosts=None, prefixes=None):
        self.base = base
        ports = ports or [(0, CONTROLLER_PORT, 0)] * n
        hosts = hosts or [loopback_host() for _ in ports]
        prefixes = prefixes or [()] * len(ports)
        voters = ",".join(f"{i + 1}@{hosts[i]}:{p[1]}" for i, p in enumerate(ports))
        self.voters = voters
        self.extra = list(extra)
        self.nodes = [Node(i + 1, base, p[0], p[1], p[2], voters, extra, hosts[i], prefixes[i])
                      for i, p in enumerate(ports)]

    def add_broker(self, extra=()):
        """Starts one more node, broker only (the quorum stays the first nodes'), with the next
        node id; returns it once it listens."""
        n = Node(len(self.nodes) + 1, self.base, 0, None, 0, self.voters,
                 [*self.extra, *extra], host=loopback_host(), controller=False)
        self.nodes.append(n)
        return n.spawn().wait_listening()

    def start(self):
        for n in self.nodes:
            n.spawn()
        for n in self.nodes:
            n.wait_listening()
        return self

    def exited_report(self):
        """The log tail of every node that exited although nobody stopped it (for a failure
        message: a node that cannot bind a port or panics is otherwise only seen as missing)."""
        out = []
        for n in self.nodes:
            if n.proc is not None and n.proc.poll() is not None:
                out.append(f"node {n.id} exited with {n.proc.returncode}:\n{n.read_log()[-3000:]}")
        return "\n".join(out) or "(every started node is still running)"

    def node(self, node_id):
        return self.nodes[node_id - 1]

    @property
    def bootstrap(self):
        return ",".join(n.bootstrap for n in self.nodes if n.alive())

    def active_controller(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for n in self.nodes:
                if n.alive():
                    try:
                        if n.metrics().get("riptide_controller_active") == 1:
                            return n
                    except OSError:
                        pass
            time.sleep(0.2)
        raise RuntimeError("no active controller")

    def stop(self):
        # All at once, as an operator stopping the cluster would: one by one, the last nodes
        # would wait for a quorum that is already gone.
        for n in self.nodes:
            if n.alive():
                n.proc.send_signal(signal.SIGTERM)
        for n in self.nodes:
            try:
                n.stop()
            except subprocess.TimeoutExpired:
                n.kill9()
