//! Landing buffers: a large produced batch received from the socket straight into block-aligned
//! memory, placed at the block phase its partition's stage ends at (a hint the broker keeps per
//! partition), so that the stage takes the buffer over (`DirectFile::append_landed`) instead of
//! copying the batch into itself: the only user-space copy left on the produce path.
//!
//! The hint can be stale (another producer appended meanwhile, a roll started a new segment):
//! the batch is then copied into the stage as any other, and nothing else changes.
//!
//! Layout: the batch is at `[phase, phase + len)`; `[0, phase)` is free for the stage's
//! partial last block, copied there at the takeover, so that the buffer's start is the
//! stage's (a block boundary of the file).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::buf::{self, AlignedBuf};
use super::{StageSlice, BLOCK};

/// Bytes of landed batches a stage took over (not copied).
static ADOPTED_BYTES: AtomicU64 = AtomicU64::new(0);
/// Bytes of landed batches copied after all (stale phase hint, a roll, a buffered segment).
static COPIED_BYTES: AtomicU64 = AtomicU64::new(0);

/// Landed bytes a stage took over, since start.
pub fn adopted_bytes() -> u64 {
    ADOPTED_BYTES.load(Ordering::Relaxed)
}

/// Landed bytes that were copied after all, since start.
pub fn copied_bytes() -> u64 {
    COPIED_BYTES.load(Ordering::Relaxed)
}

pub(super) fn count(adopted: bool, len: usize) {
    let counter = if adopted { &ADOPTED_BYTES } else { &COPIED_BYTES };
    counter.fetch_add(len as u64, Ordering::Relaxed);
}

/// Smallest landing buffer: the stage's initial size, so that buffers move between the free
/// list, stages and landings by size.
const LANDING_MIN_BYTES: usize = 16 * 1024;
/// Landing buffers up to this size are powers of two (the stages' default limit,
/// `log.direct.stage.bytes`).
const POWER_OF_TWO_MAX_BYTES: usize = 1 << 20;

/// A landing buffer being received into (owned, not yet shared).
pub struct LandingBuf {
    buf: AlignedBuf,
    at: usize,
    len: usize,
    received: usize,
}

impl LandingBuf {
    /// A buffer for a `len`-byte batch whose first byte will sit at block phase `phase` of
    /// the file. Up to the largest stage it is sized to a power of two like the stages, so the
    /// free list serves both; beyond, to whole blocks (no more memory than the batch needs).
    pub fn new(phase: usize, len: usize) -> io::Result<LandingBuf> {
        assert!(phase < BLOCK, "a block phase is below the block size");
        let need = (phase + len).max(LANDING_MIN_BYTES);
        let cap = if need <= POWER_OF_TWO_MAX_BYTES {
            need.next_power_of_two()
        } else {
            need.next_multiple_of(BLOCK)
        };
        Ok(LandingBuf { buf: buf::take(cap)?, at: phase, len, received: 0 })
    }

    /// The batch's length.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes received so far.
    pub fn received(&self) -> &[u8] {
        self.buf.slice(self.at, self.at + self.received)
    }

    /// The batch's whole region, received or not, for the receive to write into.
    pub fn region_mut(&mut self) -> &mut [u8] {
        // `&mut self`: the buffer is not shared yet.
        self.buf.slice_mut(self.at, self.at + self.len)
    }

    /// Says that the first `n` bytes of the region hold received bytes.
    pub fn set_received(&mut self, n: usize) {
        assert!(n <= self.len, "received {n} of a {}-byte batch", self.len);
        self.received = n;
    }

    /// The received batch, ready to be decoded and appended. `None` unless all of it arrived.
    pub fn finish(self) -> Option<Landed> {
        (self.received == self.len).then(|| Landed { buf: Arc::new(self.buf), at: self.at, len: self.len })
    }
}

/// A received batch in its landing buffer. `bytes()` are shared views of it; the append that
/// takes the buffer over assigns offsets in place, so nobody reads those views during it.
pub struct Landed {
    pub(super) buf: Arc<AlignedBuf>,
    pub(super) at: usize,
    pub(super) len: usize,
}

impl std::fmt::Debug for Landed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Landed").field("phase", &self.at).field("len", &self.len).finish()
    }
}

impl Landed {
    /// The batch bytes, shared.
    pub fn bytes(&self) -> Bytes {
        Bytes::from_owner(StageSlice { buf: self.buf.clone(), from: self.at, to: self.at + self.len })
    }

    /// Whether `bytes` are this batch's own (the same memory, not a copy).
    pub fn is(&self, bytes: &[u8]) -> bool {
        let own = self.slice();
        std::ptr::eq(own.as_ptr(), bytes.as_ptr()) && own.len() == bytes.len()
    }

    /// The block phase the batch was placed at.
    pub fn phase(&self) -> usize {
        self.at
    }

    pub(super) fn slice(&self) -> &[u8] {
        self.buf.slice(self.at, self.at + self.len)
    }
}
