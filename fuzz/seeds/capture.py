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
from conftest import Broker  # noqa: E402
from launch import loopback_host  # noqa: E402

CORPUS = os.path.join(ROOT, "fuzz", "corpus")
PER_API_VERSION_MAX = 12
PRODUCE_PER_VERSION_MAX = 48  # Produce frames also seed the record_batch corpus


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
            cap = PRODUCE_PER_VERSION_MAX if key[:2] == b"\x00\x00" else PER_API_VERSION_MAX
            if digest in self.frames or self.per_key.get(key, 0) >= cap:
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


def listening_socket():
    """The proxy's listener on a loopback address reserved for it (launch.py): a fixed port
    there is free by construction, so nothing is picked and nothing can race for it."""
    server = socket.socket()
    server.bind((loopback_host(), 9092))
    server.listen(64)
    return server


def proxy(server, target, recorder):
    def loop():
        while True:
            client, _ = server.accept()
            upstream = socket.create_connection(target)
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


class Reader:
    def __init__(self, data, pos):
        self.data, self.pos = data, pos

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return v[0]

    def uvarint(self):
        shift = value = 0
        while True:
            b = self.data[self.pos]
            self.pos += 1
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7

    def skip_tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.pos += self.uvarint()

    def string(self, flexible):
        n = self.uvarint() - 1 if flexible else self.take(">h")
        start = self.pos
        self.pos += max(n, 0)
        return self.data[start:self.pos]

    def array_len(self, flexible):
        return self.uvarint() - 1 if flexible else self.take(">i")


def produce_record_sets(frame):
    """The record sets (partition data) of a Produce request frame, size prefix included."""
    api_key, version = struct.unpack_from(">hh", frame, 4)
    if api_key != 0:
        return []
    flexible = version >= 9
    r = Reader(frame, 12)
    r.string(False)  # client id (always an int16 string)
    if flexible:
        r.skip_tags()
    r.string(flexible)  # transactional id
    r.take(">h")
    r.take(">i")
    sets = []
    for _ in range(r.array_len(flexible)):
        r.string(flexible)
        for _ in range(r.array_len(flexible)):
            r.take(">i")
            sets.append(r.string(flexible) if flexible else r.data[r.pos + 4:r.pos + 4 + r.take(">i")])
            if not flexible:
                r.pos += len(sets[-1])
            if flexible:
                r.skip_tags()
        if flexible:
            r.skip_tags()
    return [s for s in sets if s]


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
    server = listening_socket()
    proxy_addr = "%s:%d" % server.getsockname()
    b = Broker(os.path.join(tmp, "data"),
               extra_args=["--shards", "2", "--no-pin", "--advertised-listener", proxy_addr])
    b.start()
    proxy(server, (b.host, b.port), recorder)
    env = dict(os.environ, RIPTIDE_MATRIX_BOOTSTRAP=proxy_addr)
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
    sent = []
    for f in frames:
        try:
            sent.extend(produce_record_sets(f))
        except (struct.error, IndexError) as e:
            print("could not parse a Produce frame:", e)
    blobs = sent + batches
    print("record sets and batches:", write(os.path.join(CORPUS, "record_batch"), blobs[:400]),
          "new of", len(blobs), f"({len(sent)} sent in Produce requests, {len(batches)} stored)")


if __name__ == "__main__":
    main()
