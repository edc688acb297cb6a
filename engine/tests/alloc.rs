//! The append hot path allocates nothing per batch in steady state: a counting global
//! allocator shows 2000 appends cost only the amortized growth of the in-memory indexes (and,
//! in direct mode, a few allocations per filled 1 MiB stage).

mod common;

use riptide_model::LeaderEpoch;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use riptide_engine::Log;

struct Counting;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates to the system allocator; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_append_does_not_allocate_per_batch() {
    for io in BACKENDS {
        let dir = tmpdir(&format!("alloc-{io:?}"));
        let mut log = Log::open(&dir, config(io), 0).expect("open");
        let mut plain = batch(16, 1000, 1_000);
        let mut idem = idempotent_batch(4, 9, 0, 0);
        log.append(&mut plain, LeaderEpoch(0), 2_000).expect("warm up");
        log.append(&mut idem, LeaderEpoch(0), 2_000).expect("warm up");
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for seq in 1..=1000i32 {
            log.append(&mut plain, LeaderEpoch(0), 2_000).expect("append");
            idem[53..57].copy_from_slice(&(seq * 4).to_be_bytes()); // baseSequence is CRC-covered
            fix_crc(&mut idem);
            log.append(&mut idem, LeaderEpoch(0), 2_000).expect("idempotent append");
        }
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
        // Direct mode (RIPTIDE_LOG_IO=direct): a filled stage goes to the tail cache and is
        // replaced, not reused in place: the replacement buffer (new until the cache is full
        // and hands back what it evicts), its Arc and the cache's bookkeeping. That is per
        // stage (1 MiB), not per batch.
        let bytes = (plain.len() + idem.len()) * 1000;
        let per_stage = if log.is_direct() { 3 * bytes.div_ceil(log.config().direct_stage_bytes) } else { 0 };
        assert!(
            allocations <= 24 + per_stage,
            "{io:?}: {allocations} allocations for 2000 appends ({per_stage} allowed for filled stages)"
        );
        drop(log);
    }
}
