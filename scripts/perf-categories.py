#!/usr/bin/env python3
"""Broker CPU by cause, from a perf profile with full call stacks (issue 22).

    perf record -F 299 --call-graph dwarf,16384 -p $(pidof riptide) -o broker.perf -- sleep 8
    perf script -i broker.perf -F comm,tid,ip,sym > broker.script
    scripts/perf-categories.py broker.script

Each sample goes to the first rule below that matches any frame of its stack (rules about
kernel work come before the user code that asked for it), grouped by thread name: `shard`
(shards, and compio's blocking pool, whose threads carry their shard's name), `iou-wrk`
(io_uring's workers). Percentages are of all samples. Not run in CI.
"""
import collections
import re
import sys

RULES = [
 ("engine sync ring (riptide_engine::io::uring)", r"riptide_engine::io::uring"),
 ("engine std write (pwrite)", r"riptide_engine::io::std_backend::write"),
 ("io-wq: fsync", r"io_fsync|ext4_sync_file"),
 ("io-wq: write", r"io_write|ext4_buffered_write|ext4_file_write"),
 ("io-wq: other", r"io_wq_worker"),
 ("cross-thread wake (eventfd_write)", r"eventfd_write"),
 ("syncfs (group commit, blocking pool)", r"syncfs|spawn_blocking"),
 ("tcp send", r"tcp_sendmsg|io_send|sock_sendmsg"),
 ("tcp recv", r"tcp_recvmsg|io_recv|sock_recvmsg"),
 ("splice/sendfile", r"splice|sendfile"),
 ("event loop wait (io_uring_enter wait)", r"io_cqring_wait"),
 ("io_uring submit other", r"io_submit_sqes|io_uring_enter"),
 ("engine append (user)", r"riptide_engine::log::append|riptide_engine::batch|crc32c"),
 ("partition append / waiters", r"riptide_server::partition::Partition::append|complete_sync|update_high_watermark"),
 ("fetch", r"riptide_server::api::fetch|Partition::read"),
 ("produce handler", r"riptide_server::api::produce"),
 ("request decode", r"riptide_server::api::decode|kafka_protocol"),
 ("malloc/free", r"malloc|free|realloc"),
 ("other syscalls", r"do_syscall_64"),
]
rules = [(n, re.compile(p)) for n, p in RULES]
count = collections.Counter(); bycomm = collections.Counter(); total = 0
comm = None; frames = []
def flush():
    global total
    if comm is None: return
    c = re.sub(r"-\d+$", "", comm)
    name = "other user/kernel"
    for n, r in rules:
        if any(r.search(f) for f in frames):
            name = n; break
    count[(c, name)] += 1; bycomm[c] += 1; total += 1
for line in open(sys.argv[1]):
    if not line.strip():
        flush(); comm = None; frames = []; continue
    if not line.startswith("\t") and not line.startswith(" "):
        comm = line.split()[0]; continue
    parts = line.strip().split(None, 1)
    frames.append(parts[1] if len(parts) > 1 else "")
flush()
for c, n in sorted(bycomm.items(), key=lambda x: -x[1]):
    print(f"{c}: {100*n/total:.1f}%")
    for (cc, name), k in sorted(count.items(), key=lambda x: -x[1]):
        if cc == c and 100*k/total >= 0.5:
            print(f"    {100*k/total:5.1f}%  {name}")
