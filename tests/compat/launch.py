"""Starting riptide processes for tests and scripts without racing anyone for a port: the one
Python helper (the Rust one is riptide_client::launch; both share the lock directory).

Ports in tests (the one place that says why; docs/TESTING.md has the long form):
- Every listener a test does not need to know in advance binds port 0, and the node reports
  the ports in its ready file (`riptide serve --ready-file PATH`), written atomically once the
  node answers ApiVersions. A port picked by binding to 0 and closing the socket lies in the
  kernel's ephemeral range, where any client's outgoing connection can take it before the
  broker binds it: CI failed that way.
- Every node listens on a loopback address of its own (127.100-199.x.y, reserved with a lock
  file for as long as the reserving process lives). Outgoing connections take their source
  ports on 127.0.0.1, and a socket bound to another address never conflicts with them, so
  (a) a restarted node gets the same ports back (clients keep their bootstrap address, as with
  a real broker), and (b) a controller can have a fixed port, CONTROLLER_PORT, known to the
  other voters before it runs (a Raft quorum's voters dial each other by configured address).
- Ready means an ApiVersions answer: a bare TCP connect proves nothing, since a process killed
  a moment ago can still complete handshakes on its io_uring-held listener.
"""
import fcntl
import json
import os
import random
import socket
import struct
import subprocess
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BINARY = os.environ.get("RIPTIDE_BIN", os.path.join(ROOT, "target", "debug", "riptide"))

# A controller's port on its node's own loopback address: below the ephemeral range (no
# outgoing connection ever gets it) and on an address nobody else binds.
CONTROLLER_PORT = 19093

_LOCK_DIR = os.path.join(os.environ.get("TMPDIR", "/tmp"), "riptide-loopback-hosts")
_held = {}


def loopback_host():
    """Reserves an address 127.A.B.C (A in 100..199) for this process's lifetime; the lock
    file's flock is released by the kernel when the process dies, so it never goes stale."""
    os.makedirs(_LOCK_DIR, exist_ok=True)
    rng = random.Random(os.getpid() ^ time.time_ns())
    for _ in range(4096):
        ip = f"127.{rng.randint(100, 199)}.{rng.randint(1, 254)}.{rng.randint(1, 254)}"
        if ip in _held:
            continue
        f = open(os.path.join(_LOCK_DIR, ip), "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        _held[ip] = f
        return ip
    raise RuntimeError("no free loopback host after 4096 tries")


def probe_api_versions(host, port, timeout=2.0):
    """True when host:port answers ApiVersions v0 with error 0 and at least one API."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            client_id = b"riptide-probe"
            body = struct.pack(">hhih", 18, 0, 0x52495054, len(client_id)) + client_id
            s.sendall(struct.pack(">i", len(body)) + body)
            size = struct.unpack(">i", _read_exact(s, 4))[0]
            if not 8 <= size <= 1 << 20:
                return False
            resp = _read_exact(s, size)
            correlation, error, count = struct.unpack(">ihi", resp[:10])
            return correlation == 0x52495054 and error == 0 and count > 0
    except (OSError, struct.error):
        return False


def _read_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise OSError("closed")
        out += chunk
    return out


def log_tail(path, size=3000):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")[-size:]
    except OSError:
        return "(no log)"


def wait_ready(proc, ready_path, log_path, timeout=60, what="riptide"):
    """Waits until `proc` has written its ready file and its Kafka listener answers ApiVersions
    (a controller-only node: until the file exists); returns the file's contents. Fails at
    once, with the log tail, if the process exits first."""
    deadline = time.time() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log_tail(log_path)}")
        try:
            with open(ready_path) as f:
                ready = json.load(f)
        except (OSError, ValueError):
            ready = None
        if ready is not None:
            kafka = ready.get("kafka")
            if kafka is None:
                return ready
            host, port = kafka.rsplit(":", 1)
            if probe_api_versions(host, int(port)):
                return ready
        if time.time() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout} s: {log_tail(log_path)}")
        time.sleep(0.02)


def split_addr(addr):
    host, port = addr.rsplit(":", 1)
    return host, int(port)


def ports(ready):
    """(kafka, metrics, rest) ports of a ready file, 0 for a listener that is off: what a
    launcher binds again when it restarts the node."""
    port = lambda name: split_addr(ready[name])[1] if ready.get(name) else 0
    return port("kafka"), port("metrics"), port("rest")


class Process:
    """One `riptide serve` (or another Kafka-speaking server with --ready-file) started with a
    ready file; `start(args)` spawns and waits, `ready` holds the reported addresses."""

    def __init__(self, ready_path, log_path):
        self.ready_path = ready_path
        self.log_path = log_path
        self.proc = None
        self.ready = None

    def spawn(self, args):
        try:
            os.unlink(self.ready_path)
        except FileNotFoundError:
            pass
        os.makedirs(os.path.dirname(self.log_path) or ".", exist_ok=True)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([*args, "--ready-file", self.ready_path],
                                     stdout=self.log, stderr=self.log)
        return self

    def wait(self, timeout=60, what="riptide"):
        self.ready = wait_ready(self.proc, self.ready_path, self.log_path, timeout, what)
        return self.ready
