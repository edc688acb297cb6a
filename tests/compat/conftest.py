"""Fixtures for the real-client compatibility suite: a riptide broker started per test module
(fresh data directory, its own loopback address, ports from its ready file), and helpers to
restart or kill it."""
import os
import signal
import time

import pytest

from launch import BINARY, ROOT, log_tail, loopback_host, ports, wait_ready  # noqa: F401


class Broker:
    """A single-node broker on a loopback address of its own (launch.py says why). The first
    start binds port 0 for every listener and reads the ports from the ready file; a restart
    binds the same ports again, so clients keep their bootstrap address."""

    def __init__(self, data_dir, extra_args=()):
        self.data_dir = data_dir
        self.host = loopback_host()
        self.port = 0
        self.metrics_port = 0
        self.rest_port = 0
        self.extra_args = list(extra_args)
        self.proc = None
        self.log_path = os.path.normpath(data_dir) + ".log"
        self.ready_path = os.path.normpath(data_dir) + ".ready.json"

    @property
    def bootstrap(self):
        return f"{self.host}:{self.port}"

    @property
    def rest_url(self):
        return f"http://{self.host}:{self.rest_port}"

    @property
    def metrics_url(self):
        return f"http://{self.host}:{self.metrics_port}/metrics"

    def start(self):
        import subprocess
        h = self.host
        try:
            os.unlink(self.ready_path)
        except FileNotFoundError:
            pass
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [BINARY, "serve", "--data-dir", self.data_dir, "--listen", f"{h}:{self.port}",
             "--metrics-listen", f"{h}:{self.metrics_port}",
             "--override", f"rest.listeners=http://{h}:{self.rest_port}",
             "--ready-file", self.ready_path, *self.extra_args],
            stdout=self.log, stderr=self.log)
        ready = wait_ready(self.proc, self.ready_path, self.log_path, 60, "broker")
        self.port, self.metrics_port, self.rest_port = ports(ready)
        return self

    def read_log(self):
        return log_tail(self.log_path, 1 << 30)

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
