"""Kafka's wire format by hand, for tests that must send what no client sends (malformed
frames, exact versions, protocols no installed client speaks): varints, compact strings, a
response reader, CRC-32C, record batches, and one request on a fresh connection."""
import socket
import struct
import time


def uvarint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if not n:
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def compact_string(s):
    b = s.encode()
    return uvarint(len(b) + 1) + b


def crc32c(data):
    """CRC-32C (Castagnoli), as RecordBatch v2 uses; table-driven, pure Python."""
    table = crc32c.table
    if table is None:
        table = crc32c.table = []
        for n in range(256):
            c = n
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            table.append(c)
    crc = 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


crc32c.table = None


def varint(n):
    n = (n << 1) ^ (n >> 63)  # zig-zag
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def record_batch(values, ts_ms=None, producer=(-1, -1, -1), attributes=0):
    """A RecordBatch v2 (uncompressed) with one record per value; `producer` is (producer id,
    epoch, base sequence), -1s for a plain batch; `attributes` e.g. 0x10 for a transactional
    one."""
    ts_ms = ts_ms if ts_ms is not None else int(time.time() * 1000)
    records = b""
    for i, v in enumerate(values):
        body = b"\x00" + varint(0) + varint(i) + varint(-1) + varint(len(v)) + v + varint(0)
        records += varint(len(body)) + body
    after_crc = struct.pack(">hiqqqhii", attributes, len(values) - 1, ts_ms, ts_ms, *producer, len(values)) + records
    crc = crc32c(after_crc)
    batch_len = 4 + 1 + 4 + len(after_crc)  # leader epoch, magic, crc, rest
    return struct.pack(">qiibI", 0, batch_len, -1, 2, crc) + after_crc


def recv_frame(s, timeout=10):
    """One whole response frame, or b"" if the broker closed the connection."""
    s.settimeout(timeout)
    buf = b""
    while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return b""
        if not chunk:
            return b""
        buf += chunk
    return buf


class Reader:
    def __init__(self, data, pos=0):
        self.data, self.pos = data, pos

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def uvarint(self):
        n = shift = 0
        while True:
            b = self.data[self.pos]
            self.pos += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n

    def compact_string(self):
        n = self.uvarint()
        s = None if n == 0 else self.data[self.pos:self.pos + n - 1].decode()
        self.pos += max(n - 1, 0)
        return s

    def tags(self):
        """{tag: Reader over its bytes}."""
        out = {}
        for _ in range(self.uvarint()):
            tag, size = self.uvarint(), self.uvarint()
            out[tag] = Reader(self.data[self.pos:self.pos + size])
            self.pos += size
        return out


def call(addr, api_key, version, body, flexible):
    """One request on a fresh connection to `addr` (host:port); a Reader over the answer's
    body (past the correlation id and, for flexible versions, the header's tagged fields)."""
    cid = b"riptide-tests"
    header = struct.pack(">hhih", api_key, version, 1, len(cid)) + cid + (uvarint(0) if flexible else b"")
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
        frame = recv_frame(s, timeout=30)
    assert frame, f"{addr} closed the connection"
    r = Reader(frame, 8)  # size, correlation id
    if flexible:
        r.tags()
    return r
