"""Fixtures for the real-client compatibility suite: a riptide broker started per test module
(fresh data directory, free ports), and helpers to restart or kill it."""
import os
import random
import re
import signal
import socket
import subprocess
import tempfile
import time
import shutil

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BINARY = os.environ.get("RIPTIDE_BIN", os.path.join(ROOT, "target", "debug", "riptide"))


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


_EPHEMERAL = _ephemeral_range()
_handed_out = set()


def free_port():
    """A port that is free now and outside the kernel's ephemeral range: a port the kernel picked
    (bind to 0) is released before the broker binds it, and in that gap any client's outgoing
    connection may take it as its local port, so the broker fails to start. Ports below the
    ephemeral range are never given to outgoing connections."""
    lo, hi = _EPHEMERAL
    first, last = (20000, lo - 1) if lo > 21000 else (hi + 1, 65535)
    rng = random.Random(os.getpid() ^ time.time_ns())
    for _ in range(1000):
        port = rng.randint(first, last)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {first}..{last}")


class Broker:
    def __init__(self, data_dir, extra_args=()):
        self.data_dir = data_dir
        self.port = free_port()
        self.metrics_port = free_port()
        self.rest_port = free_port()
        self.extra_args = list(extra_args)
        self.proc = None
        self.log_path = os.path.normpath(data_dir) + ".log"

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    @property
    def rest_url(self):
        return f"http://127.0.0.1:{self.rest_port}"

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [BINARY, "serve", "--data-dir", self.data_dir, "--listen", f"127.0.0.1:{self.port}",
             "--metrics-listen", f"127.0.0.1:{self.metrics_port}",
             "--override", f"rest.listeners=http://127.0.0.1:{self.rest_port}", *self.extra_args],
            stdout=self.log, stderr=self.log)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited with {self.proc.returncode}: {self.read_log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("broker did not start: " + self.read_log())

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=timeout)
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        return rc

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        return self.start()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


# RIPTIDE_TEST_IO=poll runs the whole suite on the epoll fallback.
IO_ARGS = ["--io", os.environ["RIPTIDE_TEST_IO"]] if os.environ.get("RIPTIDE_TEST_IO") else []


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    base = tmp_path_factory.mktemp("riptide")
    b = Broker(str(base / "data"), extra_args=["--shards", "2", "--no-pin", *IO_ARGS]).start()
    yield b
    b.stop()


@pytest.fixture
def fresh_broker(tmp_path):
    b = Broker(str(tmp_path / "data"), extra_args=["--shards", "2", "--no-pin", *IO_ARGS]).start()
    yield b
    b.stop()


def unique(name):
    return f"{name}-{os.getpid()}-{int(time.time() * 1000) % 10_000_000}"
