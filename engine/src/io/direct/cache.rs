//! The tail cache: stage buffers that filled up, were written and were replaced keep serving
//! reads of their bytes from memory until newer ones push them out, so a consumer a little
//! behind the tail (more than one stage) is not sent to the disk: direct writes bypass the
//! page cache, so without this every read below the stage is a device read.
//!
//! One cache for the process, bounded by `log.direct.cache.bytes` and evicting the oldest
//! buffer first, so the memory goes to whichever partitions are being written now. Only the
//! stage puts buffers here: a read never adds to it, so a cold catch-up read (served from the
//! file) cannot evict the tail. Each `DirectFile` keeps weak references to the buffers it
//! retired (`Retired`) and finds its ranges there without touching the shared lock; the
//! cache holds the only strong ones apart from readers' in-flight `Bytes`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::buf::{self, AlignedBuf};

/// Default `log.direct.cache.bytes`.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

static BUDGET: AtomicUsize = AtomicUsize::new(DEFAULT_CACHE_BYTES);
static CACHE: Mutex<Cache> = Mutex::new(Cache::new());
/// `Cache::bytes` of `CACHE`, readable without its lock.
static CACHED_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Sets how much memory the tail cache may hold (`log.direct.cache.bytes`; 0 turns it off:
/// a full stage is then reused in place).
pub fn set_budget(bytes: usize) {
    BUDGET.store(bytes, Ordering::Relaxed);
}

pub(super) fn budget() -> usize {
    BUDGET.load(Ordering::Relaxed)
}

/// Bytes the cache holds now.
pub fn cached_bytes() -> usize {
    CACHED_BYTES.load(Ordering::Relaxed)
}

/// A filled stage buffer that a `DirectFile` handed to the cache: file positions
/// `[start, end)` are `buf[0..end - start]`.
#[derive(Debug)]
pub(super) struct Retired {
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) buf: Weak<AlignedBuf>,
}

/// Buffers in the order they were retired, each with the id of the file it came from.
pub(super) struct Cache {
    entries: VecDeque<(u64, Arc<AlignedBuf>)>,
    bytes: usize,
}

impl Cache {
    pub(super) const fn new() -> Cache {
        Cache { entries: VecDeque::new(), bytes: 0 }
    }

    /// Adds `buf` and returns what must go to stay within `budget` (oldest first; `buf`
    /// itself when it alone is larger than the budget).
    pub(super) fn keep(&mut self, file: u64, buf: Arc<AlignedBuf>, budget: usize) -> Vec<Arc<AlignedBuf>> {
        self.bytes += buf.cap;
        self.entries.push_back((file, buf));
        let mut evicted = Vec::new();
        while self.bytes > budget {
            let Some((_, old)) = self.entries.pop_front() else { break };
            self.bytes -= old.cap;
            evicted.push(old);
        }
        evicted
    }

    /// Removes every buffer of `file`.
    pub(super) fn forget(&mut self, file: u64) -> Vec<Arc<AlignedBuf>> {
        let mut gone = Vec::new();
        let mut kept = VecDeque::with_capacity(self.entries.len());
        for (id, b) in self.entries.drain(..) {
            if id == file {
                self.bytes -= b.cap;
                gone.push(b);
            } else {
                kept.push_back((id, b));
            }
        }
        self.entries = kept;
        gone
    }
}

/// Buffers leaving the cache: a buffer no reader holds any more goes to the free list for the
/// next stage; the others are freed when their last reader lets go.
fn release(bufs: Vec<Arc<AlignedBuf>>) {
    for b in bufs {
        if let Ok(b) = Arc::try_unwrap(b) {
            buf::give_back(b);
        }
    }
}

/// Hands a filled stage buffer of `file` to the cache (evicting the oldest past the budget).
pub(super) fn keep(file: u64, b: Arc<AlignedBuf>) {
    let evicted = match CACHE.lock() {
        Ok(mut c) => {
            let evicted = c.keep(file, b, budget());
            CACHED_BYTES.store(c.bytes, Ordering::Relaxed);
            evicted
        }
        Err(_) => Vec::new(),
    };
    release(evicted);
}

/// Drops the buffers of `file` (its segment was finished: reads go to the file from now on).
pub(super) fn forget(file: u64) {
    let gone = match CACHE.lock() {
        Ok(mut c) => {
            let gone = c.forget(file);
            CACHED_BYTES.store(c.bytes, Ordering::Relaxed);
            gone
        }
        Err(_) => Vec::new(),
    };
    release(gone);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::direct::BLOCK;

    fn buf(blocks: usize) -> Arc<AlignedBuf> {
        Arc::new(AlignedBuf::new(blocks * BLOCK).unwrap())
    }

    #[test]
    fn the_oldest_buffers_go_first_and_the_budget_holds() {
        let mut c = Cache::new();
        let (a, b, d) = (buf(1), buf(2), buf(1));
        let weak_a = Arc::downgrade(&a);
        assert!(c.keep(1, a, 4 * BLOCK).is_empty());
        assert!(c.keep(2, b, 4 * BLOCK).is_empty());
        assert!(c.keep(1, d, 4 * BLOCK).is_empty());
        assert_eq!(c.bytes, 4 * BLOCK);
        // One more block pushes out the oldest (file 1's first buffer), nothing else.
        let evicted = c.keep(3, buf(1), 4 * BLOCK);
        assert_eq!(evicted.len(), 1);
        assert_eq!(evicted[0].cap, BLOCK);
        drop(evicted);
        assert!(weak_a.upgrade().is_none(), "evicted and unreferenced: freed");
        assert_eq!(c.bytes, 4 * BLOCK);
        // A buffer larger than the whole budget is not kept.
        let big = c.keep(4, buf(8), 4 * BLOCK);
        assert_eq!(c.bytes, 0);
        assert_eq!(big.len(), 4);
    }

    #[test]
    fn forgetting_a_file_drops_only_its_buffers() {
        let mut c = Cache::new();
        for (file, blocks) in [(1, 1), (2, 1), (1, 2), (3, 1)] {
            assert!(c.keep(file, buf(blocks), 100 * BLOCK).is_empty());
        }
        let gone = c.forget(1);
        assert_eq!(gone.iter().map(|b| b.cap).sum::<usize>(), 3 * BLOCK);
        assert_eq!(c.bytes, 2 * BLOCK);
        assert_eq!(c.entries.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![2, 3]);
        assert!(c.forget(1).is_empty());
    }
}
