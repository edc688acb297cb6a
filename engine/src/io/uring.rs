//! io_uring backend. One ring per thread (a shard drives many logs from one thread), created
//! on first use. Every operation is pushed, submitted and waited for before the function
//! returns, so the buffers and file descriptors handed to the kernel outlive the request —
//! that is the invariant behind each `unsafe` push below.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use io_uring::{opcode, squeue, types, IoUring};

const RING_ENTRIES: u32 = 64;
/// Largest single read/write request (the opcode length is 32-bit).
const IO_CHUNK_BYTES: usize = 1 << 30;

thread_local! {
    static RING: RefCell<Option<IoUring>> = const { RefCell::new(None) };
}

/// Creates this thread's ring if needed; errors if io_uring is unavailable.
pub(super) fn probe() -> io::Result<()> {
    with_ring(|_| Ok(()))
}

fn with_ring<T>(f: impl FnOnce(&mut IoUring) -> io::Result<T>) -> io::Result<T> {
    RING.with(|cell| {
        let mut slot = cell.try_borrow_mut().map_err(|_| io::Error::other("io_uring ring re-entered"))?;
        if slot.is_none() {
            *slot = Some(IoUring::new(RING_ENTRIES)?);
        }
        match slot.as_mut() {
            Some(ring) => f(ring),
            None => Err(io::Error::other("io_uring ring missing")),
        }
    })
}

/// Pushes `entries`, submits, and waits for all their completions; returns their results
/// in push order (user_data = index).
fn run(ring: &mut IoUring, entries: &[squeue::Entry]) -> io::Result<[i32; RING_ENTRIES as usize]> {
    assert!(entries.len() <= RING_ENTRIES as usize, "batch larger than the ring");
    // Drop completions left by an earlier failed submit so indices cannot be confused.
    ring.completion().for_each(drop);
    for (i, e) in entries.iter().enumerate() {
        let e = e.clone().user_data(i as u64);
        // SAFETY: every pointer inside `e` refers to a buffer or fd that the caller keeps
        // alive until this function returns, and we do not return before all completions
        // for these entries have been reaped (the loop below).
        unsafe { ring.submission().push(&e) }
            .map_err(|_| io::Error::other("io_uring submission queue full"))?;
    }
    let mut results = [i32::MIN; RING_ENTRIES as usize];
    let mut seen = 0;
    while seen < entries.len() {
        match ring.submit_and_wait(entries.len() - seen) {
            Ok(_) => {}
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::EBUSY)) => {
            }
            Err(e) => return Err(e),
        }
        for cqe in ring.completion() {
            let i = cqe.user_data() as usize;
            if i < entries.len() && results[i] == i32::MIN {
                results[i] = cqe.result();
                seen += 1;
            }
        }
    }
    Ok(results)
}

fn check(res: i32) -> io::Result<usize> {
    if res < 0 {
        Err(io::Error::from_raw_os_error(-res))
    } else {
        Ok(res as usize)
    }
}

fn write_entry(file: &File, buf: &[u8], pos: u64) -> squeue::Entry {
    let len = buf.len().min(IO_CHUNK_BYTES) as u32;
    opcode::Write::new(types::Fd(file.as_raw_fd()), buf.as_ptr(), len).offset(pos).build()
}

fn datasync_entry(file: &File) -> squeue::Entry {
    opcode::Fsync::new(types::Fd(file.as_raw_fd())).flags(types::FsyncFlags::DATASYNC).build()
}

pub(super) fn write_all_at(file: &File, buf: &[u8], pos: u64) -> io::Result<()> {
    with_ring(|ring| {
        let mut done = 0usize;
        while done < buf.len() {
            let rest = &buf[done..];
            let n = check(run(ring, &[write_entry(file, rest, pos + done as u64)])?[0])?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::WriteZero));
            }
            done += n;
        }
        Ok(())
    })
}

/// Write linked to fdatasync: one submission, one wait. A short write cancels the link, in
/// which case the rest is written and synced with separate requests.
pub(super) fn write_all_at_sync(file: &File, buf: &[u8], pos: u64) -> io::Result<()> {
    if buf.len() > IO_CHUNK_BYTES {
        write_all_at(file, buf, pos)?;
        return datasync_all(&[file]);
    }
    let written = with_ring(|ring| {
        let w = write_entry(file, buf, pos).flags(squeue::Flags::IO_LINK);
        let res = run(ring, &[w, datasync_entry(file)])?;
        let n = check(res[0])?;
        if n == buf.len() {
            check(res[1])?;
        }
        Ok(n)
    })?;
    if written < buf.len() {
        write_all_at(file, &buf[written..], pos + written as u64)?;
        datasync_all(&[file])?;
    }
    Ok(())
}

pub(super) fn read_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    let len = buf.len().min(IO_CHUNK_BYTES) as u32;
    let e = opcode::Read::new(types::Fd(file.as_raw_fd()), buf.as_mut_ptr(), len).offset(pos).build();
    with_ring(|ring| check(run(ring, &[e])?[0]))
}

pub(super) fn datasync_all(files: &[&File]) -> io::Result<()> {
    with_ring(|ring| {
        for chunk in files.chunks(RING_ENTRIES as usize) {
            let entries: Vec<squeue::Entry> = chunk.iter().map(|f| datasync_entry(f)).collect();
            for res in &run(ring, &entries)?[..entries.len()] {
                check(*res)?;
            }
        }
        Ok(())
    })
}
