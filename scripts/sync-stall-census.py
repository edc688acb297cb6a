#!/usr/bin/env python3
"""Issue 22: how often does this machine's disk stall on its own? With no broker running, one
thread overwrites a preallocated 1 GiB file in 32 KiB steps (no allocation, no block frees) and
calls syncfs after each, at most one per millisecond (~30 MB/s, the soak's rate), for SECONDS.
Prints the sync latency percentiles and how many seconds had their slowest sync above 10, 20, 50
and 100 ms, to set beside a soak's per-second publish p99 (a group commit is a syncfs).

--append   appends instead, as a broker does: new 16 MiB files one after the other, the oldest
           beyond 32 cut down 1 MiB at a time (at most every 10 ms) and unlinked, as the
           broker's retention does.
--direct   overwrites the preallocated, already written file with O_DIRECT and fdatasyncs it
           instead of calling syncfs: nothing but the data changes, so the sync is a device
           flush and never waits for a journal commit.
--fdatasync  the same through the page cache: overwrites (buffered) and fdatasyncs the file.
--churn    a second thread does a broker's metadata work beside the measured one, at the soak's
           pace of rolls: every 500 ms it creates a spare segment's four files, renames them,
           writes an index file and a checkpoint crash-safely (temp file, fdatasync, rename,
           directory fsync), and removes the files of the segment 64 rolls back.

Needs 1 GiB free in DIR. Not run in CI.

Usage: scripts/sync-stall-census.py [--seconds N] [--append | --direct | --fdatasync] [--churn] [DIR]
       (default 600 s, /work/bench-data/census)
"""
import ctypes
import mmap
import os
import sys
import threading
import time

libc = ctypes.CDLL("libc.so.6", use_errno=True)
SIZE, STEP = 1 << 30, 32 * 1024


def main():
    args = sys.argv[1:]
    seconds = 600
    if args[:1] == ["--seconds"]:
        seconds, args = int(args[1]), args[2:]
    flags = {"--append", "--direct", "--fdatasync", "--churn"}
    chosen = {a for a in args if a in flags}
    args = [a for a in args if a not in flags]
    d = args[0] if args else "/work/bench-data/census"
    os.makedirs(d, exist_ok=True)
    stop = threading.Event()
    churn = threading.Thread(target=churning, args=(d, stop)) if "--churn" in chosen else None
    try:
        if "--append" in chosen:
            if churn:
                churn.start()
            return report(*appending(d, seconds), seconds)
        direct, fdatasync = "--direct" in chosen, "--fdatasync" in chosen
        report(*overwriting(d, seconds, direct, direct or fdatasync, churn), seconds)
    finally:
        stop.set()
        if churn and churn.is_alive():
            churn.join()


def overwriting(d, seconds, direct, fdatasync, churn):
    """Overwrites a written 1 GiB file 32 KiB at a time, each write followed by a sync."""
    path = f"{d}/census"
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_TRUNC)
    chunk = os.urandom(1 << 20)
    for off in range(0, SIZE, len(chunk)):  # written once, so later writes only overwrite
        os.pwrite(fd, chunk, off)
    os.fsync(fd)
    if direct:
        os.close(fd)
        fd = os.open(path, os.O_RDWR | os.O_DIRECT)
    step = mmap.mmap(-1, STEP)  # page-aligned, as O_DIRECT wants
    step.write(os.urandom(STEP))
    lat, per_second = [], {}
    if churn:
        churn.start()
    start = time.monotonic()
    pos = 0
    while (now := time.monotonic()) - start < seconds:
        os.pwrite(fd, step, pos)
        pos = (pos + STEP) % SIZE
        timed_sync(fd, int(now - start), lat, per_second, os.fdatasync if fdatasync else syncfs)
    os.close(fd)
    os.unlink(path)
    return lat, per_second


def syncfs(fd):
    if libc.syncfs(fd) != 0:
        sys.exit(f"syncfs failed: errno {ctypes.get_errno()}")


def timed_sync(fd, second, lat, per_second, sync=syncfs):
    """A sync, its latency kept (and the slowest of its second), then the rest of a millisecond."""
    t = time.perf_counter()
    sync(fd)
    ms = (time.perf_counter() - t) * 1000
    lat.append(ms)
    per_second[second] = max(per_second.get(second, 0.0), ms)
    spare = 0.001 - (time.perf_counter() - t)
    if spare > 0:
        time.sleep(spare)


def churning(d, stop):
    """A broker's metadata work at the soak's pace of rolls (see the module docs)."""
    d = f"{d}/churn"
    os.makedirs(d, exist_ok=True)
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    index = os.urandom(8192)
    suffixes = ("log", "index", "timeindex", "snapshot")
    n = 0
    while not stop.wait(0.5):
        for suffix in suffixes:
            spare = f"{d}/next.{suffix}.spare"
            os.close(os.open(spare, os.O_CREAT | os.O_WRONLY | os.O_TRUNC))
            os.rename(spare, f"{d}/{n:020}.{suffix}")
        fd = os.open(f"{d}/{n:020}.index", os.O_WRONLY)
        os.pwrite(fd, index, 0)
        os.close(fd)
        tmp = f"{d}/checkpoint.tmp"
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC)
        os.write(fd, b"%d\n" % n)
        os.fdatasync(fd)
        os.close(fd)
        os.rename(tmp, f"{d}/checkpoint")
        os.fsync(dfd)
        if n >= 64:  # the oldest segment's files go, as retention removes them
            for suffix in suffixes:
                os.unlink(f"{d}/{n - 64:020}.{suffix}")
        n += 1
    for name in os.listdir(d):
        os.unlink(f"{d}/{name}")
    os.close(dfd)
    os.rmdir(d)


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
        timed_sync(fd, int(now - start), lat, per_second)
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
    print(f"{len(lat)} syncs in {seconds} s: p50 {q(.5):.2f} p99 {q(.99):.2f} p99.9 {q(.999):.2f} "
          f"p99.99 {q(.9999):.2f} max {lat[-1]:.2f} ms")
    worst = sorted(per_second.values())
    for limit in (10, 20, 50, 100):
        n = sum(1 for w in worst if w > limit)
        print(f"seconds whose slowest sync took over {limit:3d} ms: {n} of {len(worst)}")
    print("slowest ten seconds' worst sync (ms):", ", ".join(f"{w:.1f}" for w in worst[-10:]))


if __name__ == "__main__":
    main()
