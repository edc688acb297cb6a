#!/usr/bin/env python3
"""Issue 22: how often does this machine's disk stall on its own? With no broker running, one
thread overwrites a preallocated 1 GiB file in 32 KiB steps (no allocation, no block frees) and
calls syncfs after each, at most one per millisecond (~30 MB/s, the soak's rate), for SECONDS.
Prints the syncfs latency percentiles and how many seconds had their slowest syncfs above 10,
20, 50 and 100 ms, to set beside a soak's per-second publish p99 (a group commit is a syncfs).
With --append, it appends instead, as a broker does: new 16 MiB files one after the other, the
oldest beyond 32 cut down 1 MiB at a time (at most every 10 ms) and unlinked, as the broker's
retention does. Needs 1 GiB free in DIR. Not run in CI.

Usage: scripts/sync-stall-census.py [--seconds N] [--append] [DIR]   (default 600 s, /work/bench-data/census)
"""
import ctypes
import os
import sys
import time

libc = ctypes.CDLL("libc.so.6", use_errno=True)
SIZE, STEP = 1 << 30, 32 * 1024


def main():
    args = sys.argv[1:]
    seconds = 600
    if args[:1] == ["--seconds"]:
        seconds, args = int(args[1]), args[2:]
    append = args[:1] == ["--append"]
    if append:
        args = args[1:]
    d = args[0] if args else "/work/bench-data/census"
    os.makedirs(d, exist_ok=True)
    if append:
        return report(*appending(d, seconds), seconds)
    path = f"{d}/census"
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_TRUNC)
    chunk = os.urandom(1 << 20)
    for off in range(0, SIZE, len(chunk)):  # written once, so later writes only overwrite
        os.pwrite(fd, chunk, off)
    os.fsync(fd)
    step = os.urandom(STEP)
    lat, per_second = [], {}
    start = time.monotonic()
    pos = 0
    while (now := time.monotonic()) - start < seconds:
        os.pwrite(fd, step, pos)
        pos = (pos + STEP) % SIZE
        timed_syncfs(fd, int(now - start), lat, per_second)
    os.close(fd)
    os.unlink(path)
    report(lat, per_second, seconds)


def timed_syncfs(fd, second, lat, per_second):
    """syncfs, its latency kept (and the slowest of its second), then the rest of a millisecond."""
    t = time.perf_counter()
    if libc.syncfs(fd) != 0:
        sys.exit(f"syncfs failed: errno {ctypes.get_errno()}")
    ms = (time.perf_counter() - t) * 1000
    lat.append(ms)
    per_second[second] = max(per_second.get(second, 0.0), ms)
    spare = 0.001 - (time.perf_counter() - t)
    if spare > 0:
        time.sleep(spare)


def appending(d, seconds):
    """Appends 32 KiB + syncfs, rolling to a new file every 16 MiB and freeing the oldest."""
    step = os.urandom(STEP)
    files, cutting = [], None  # cutting: (fd, path, length left)
    lat, per_second = [], {}
    start = time.monotonic()
    last_cut = 0.0
    n, fd, pos = 0, None, 16 << 20
    while (now := time.monotonic()) - start < seconds:
        if pos >= 16 << 20:
            if fd is not None:
                os.close(fd)
            path = f"{d}/seg{n:06}"
            n += 1
            fd, pos = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC), 0
            files.append(path)
        os.pwrite(fd, step, pos)
        pos += STEP
        if cutting is None and len(files) > 32:
            old = files.pop(0)
            cutting = [os.open(old, os.O_WRONLY), old, 16 << 20]
        if cutting is not None and now - last_cut >= 0.01:
            last_cut = now
            cutting[2] = max(0, cutting[2] - (1 << 20))
            os.ftruncate(cutting[0], cutting[2])
            if cutting[2] == 0:
                os.close(cutting[0])
                os.unlink(cutting[1])
                cutting = None
        timed_syncfs(fd, int(now - start), lat, per_second)
    os.close(fd)
    if cutting is not None:
        os.close(cutting[0])
        files.append(cutting[1])
    for p in files:
        os.unlink(p)
    return lat, per_second


def report(lat, per_second, seconds):
    lat.sort()
    q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))]
    print(f"{len(lat)} syncfs in {seconds} s: p50 {q(.5):.2f} p99 {q(.99):.2f} p99.9 {q(.999):.2f} "
          f"p99.99 {q(.9999):.2f} max {lat[-1]:.2f} ms")
    worst = sorted(per_second.values())
    for limit in (10, 20, 50, 100):
        n = sum(1 for w in worst if w > limit)
        print(f"seconds whose slowest syncfs took over {limit:3d} ms: {n} of {len(worst)}")
    print("slowest ten seconds' worst syncfs (ms):", ", ".join(f"{w:.1f}" for w in worst[-10:]))


if __name__ == "__main__":
    main()
