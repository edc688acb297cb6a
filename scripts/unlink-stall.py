#!/usr/bin/env python3
"""Issue 22 lead: does deleting 16 MiB files stall a concurrent append + syncfs loop (a group
commit's shape), and does the way of deleting matter? Per mode, 30 s: one thread appends 32 KiB
and calls syncfs in a loop (latency of each syncfs kept); another deletes 48 prepared 16 MiB
files: none (no deletions), burst (8 unlinks every 5 s, as a retention tick does), steps (the
same, each file truncated down 1 MiB at a time before its unlink), spread (one unlink every
0.625 s). Two rounds. Needs 800 MB free in DIR. Not run in CI.

Usage: scripts/unlink-stall.py [DIR]   (default /work/bench-data/unlink-exp)
"""
import ctypes, os, sys, threading, time
libc = ctypes.CDLL("libc.so.6", use_errno=True)
D = sys.argv[1] if len(sys.argv) > 1 else "/work/bench-data/unlink-exp"
MB = 1 << 20
def prep(n):
    os.makedirs(D, exist_ok=True)
    names = []
    buf = os.urandom(MB)
    for i in range(n):
        p = f"{D}/seg{i}"
        fd = os.open(p, os.O_CREAT | os.O_WRONLY | os.O_TRUNC)
        for _ in range(16):
            os.write(fd, buf)
        os.fsync(fd); os.close(fd)
        names.append(p)
    return names
def run(mode, seconds=30):
    files = prep(48)
    lat = []
    stop = time.time() + seconds
    def writer():
        fd = os.open(f"{D}/log", os.O_CREAT | os.O_WRONLY | os.O_TRUNC)
        chunk = os.urandom(32 * 1024); pos = 0
        while time.time() < stop:
            os.pwrite(fd, chunk, pos); pos += len(chunk)
            t = time.perf_counter(); libc.syncfs(fd); lat.append(time.perf_counter() - t)
        os.close(fd)
    def deleter():
        while time.time() < stop and files and mode != "none":
            if mode == "spread":
                time.sleep(0.625)
                batch = [files.pop()]
            else:
                time.sleep(5)
                batch = [files.pop() for _ in range(min(8, len(files)))]
            for p in batch:
                if mode == "steps":
                    fd = os.open(p, os.O_WRONLY)
                    for size in range(15, -1, -1):
                        os.ftruncate(fd, size * MB)
                    os.close(fd)
                os.unlink(p)
    w = threading.Thread(target=writer); d = threading.Thread(target=deleter)
    w.start(); d.start(); w.join(); d.join()
    for p in files: os.unlink(p)
    os.unlink(f"{D}/log")
    ms = sorted(x * 1000 for x in lat)
    q = lambda f: ms[min(len(ms) - 1, int(f * len(ms)))]
    print(f"{mode:>6}: {len(ms)} syncs, p50 {q(.5):.2f} p99 {q(.99):.2f} p99.9 {q(.999):.2f} max {ms[-1]:.2f} ms", flush=True)
for rnd in range(2):
    for mode in ["none", "burst", "steps", "spread"]:
        run(mode)
