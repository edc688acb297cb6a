"""Seeds the fuzz corpora from real clients.

Starts a broker whose advertised listener is a recording TCP proxy, runs the client matrix
(tests/compat/matrix: kcat, confluent-kafka, kafka-python, aiokafka, kafkajs, sarama) through
the proxy, and saves
  - every request frame a client sent (size prefix included) -> fuzz/corpus/request/<sha1>
  - every record batch the broker stored (split from the segment files; offsets assigned, CRC
    still valid) -> fuzz/corpus/record_batch/<sha1>, plus the record sets of the Produce
    requests' first batches as sent.
Frames are deduplicated by content and capped per API key and version so the corpus stays small.

Usage: RIPTIDE_BIN=target/debug/riptide .venv/bin/python fuzz/seeds/capture.py
"""
import glob
import hashlib
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "compat"))
from conftest import Broker, free_port  # noqa: E402

CORPUS = os.path.join(ROOT, "fuzz", "corpus")
PER_API_VERSION_MAX = 12


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.frames = {}  # sha1 -> bytes
        self.per_key = {}

    def add(self, frame):
        if len(frame) < 8:
            return
        key = frame[4:8]  # api key + version
        digest = hashlib.sha1(frame).hexdigest()
        with self.lock:
            if digest in self.frames or self.per_key.get(key, 0) >= PER_API_VERSION_MAX:
                return
            self.per_key[key] = self.per_key.get(key, 0) + 1
            self.frames[digest] = frame


def pump(src, dst, recorder=None):
    buf = b""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
            if recorder is not None:
                buf += data
                while len(buf) >= 4:
                    size = struct.unpack(">i", buf[:4])[0]
                    if len(buf) < 4 + size:
                        break
                    recorder.add(buf[:4 + size])
                    buf = buf[4 + size:]
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def proxy(listen_port, target_port, recorder):
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listen_port))
    server.listen(64)

    def loop():
        while True:
            client, _ = server.accept()
            upstream = socket.create_connection(("127.0.0.1", target_port))
            threading.Thread(target=pump, args=(client, upstream, recorder), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, client), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


def split_batches(path):
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">i", data[pos + 8:pos + 12])
        if length <= 0 or pos + 12 + length > len(data):
            break
        yield data[pos:pos + 12 + length]
        pos += 12 + length


def write(dirname, blobs):
    os.makedirs(dirname, exist_ok=True)
    n = 0
    for blob in blobs:
        path = os.path.join(dirname, hashlib.sha1(blob).hexdigest())
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(blob)
            n += 1
    return n


def main():
    recorder = Recorder()
    tmp = tempfile.mkdtemp(prefix="riptide-capture-")
    proxy_port = free_port()
    b = Broker(os.path.join(tmp, "data"),
               extra_args=["--shards", "2", "--no-pin", "--advertised-listener", f"127.0.0.1:{proxy_port}"])
    b.start()
    proxy(proxy_port, b.port, recorder)
    env = dict(os.environ, RIPTIDE_MATRIX_BOOTSTRAP=f"127.0.0.1:{proxy_port}")
    try:
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                            os.path.join(ROOT, "tests", "compat", "test_matrix.py")], env=env, cwd=ROOT)
        print("matrix exit code", r.returncode)
    finally:
        b.stop()
    frames = list(recorder.frames.values())
    batches = [bt for p in glob.glob(os.path.join(tmp, "data", "**", "*.log"), recursive=True)
               for bt in split_batches(p)]
    print("request frames:", write(os.path.join(CORPUS, "request"), frames), "new of", len(frames))
    print("record batches:", write(os.path.join(CORPUS, "record_batch"), batches[:400]), "new of", len(batches))


if __name__ == "__main__":
    main()
