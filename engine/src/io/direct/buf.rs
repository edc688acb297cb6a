//! The stage's memory: block-aligned heap buffers (what O_DIRECT writes need), how much of it
//! is allocated, a few freed buffers kept for reuse, and the streaming copy that fills them.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::BLOCK;

/// Bytes of aligned buffers alive now: stages, the tail cache, the free list, and old buffers
/// readers still hold.
static ALLOCATED_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Buffers evicted from the tail cache with no reader left, kept for the next stage that
/// fills up (at most `FREE_MAX`): in a steady stream every full stage is replaced by the
/// buffer the cache just evicted, with no allocation, zeroing or page faults.
static FREE: Mutex<Vec<AlignedBuf>> = Mutex::new(Vec::new());
const FREE_MAX: usize = 8;
/// Bytes on `FREE`, readable without its lock.
static FREE_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Memory held by aligned buffers of any use.
pub(super) fn allocated_bytes() -> usize {
    ALLOCATED_BYTES.load(Ordering::Relaxed)
}

/// Bytes on the free list.
pub(super) fn free_bytes() -> usize {
    FREE_BYTES.load(Ordering::Relaxed)
}

/// A buffer of `cap` bytes: one from the free list (holding old bytes, which the stage never
/// exposes: it writes every byte it serves or writes out) or a new zeroed one.
pub(super) fn take(cap: usize) -> io::Result<AlignedBuf> {
    if let Ok(mut free) = FREE.lock() {
        if let Some(i) = free.iter().position(|b| b.cap == cap) {
            FREE_BYTES.fetch_sub(cap, Ordering::Relaxed);
            return Ok(free.swap_remove(i));
        }
    }
    AlignedBuf::new(cap)
}

/// Keeps `buf` for reuse, or frees it when the list is full.
pub(super) fn give_back(buf: AlignedBuf) {
    if let Ok(mut free) = FREE.lock() {
        if free.len() < FREE_MAX {
            FREE_BYTES.fetch_add(buf.cap, Ordering::Relaxed);
            free.push(buf);
        }
    }
}

/// A zeroed, block-aligned heap buffer.
pub(super) struct AlignedBuf {
    ptr: NonNull<u8>,
    pub(super) cap: usize,
}

// SAFETY: the buffer is plain memory; the stage writes only bytes no `Bytes` slice covers
// (at or past the stage end) and only while holding the stage's lock.
unsafe impl Send for AlignedBuf {}
// SAFETY: as above; shared access reads only bytes that are no longer written.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    pub(super) fn new(cap: usize) -> io::Result<AlignedBuf> {
        assert!(cap > 0 && cap.is_multiple_of(BLOCK), "stage size must be whole blocks");
        let layout = Layout::from_size_align(cap, BLOCK).map_err(io::Error::other)?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        ALLOCATED_BYTES.fetch_add(cap, Ordering::Relaxed);
        Ok(AlignedBuf { ptr, cap })
    }

    /// The bytes `[from, to)`. Callers only ask for bytes nobody writes any more.
    pub(super) fn slice(&self, from: usize, to: usize) -> &[u8] {
        assert!(from <= to && to <= self.cap);
        // SAFETY: in bounds (asserted); see the type's Sync note for why nobody writes them.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(from), to - from) }
    }

    /// Copies `src` to `at`. Only the stage calls this, under its lock, past every slice
    /// handed out.
    pub(super) fn write(&self, at: usize, src: &[u8]) {
        assert!(at + src.len() <= self.cap);
        // SAFETY: in bounds (asserted); the destination is not covered by any shared slice.
        unsafe { copy_streaming(src.as_ptr(), self.ptr.as_ptr().add(at), src.len()) }
    }

    /// The bytes `[from, to)` for writing: only the stage calls this, under its lock, for bytes
    /// past its end (which no shared slice covers).
    #[allow(clippy::mut_from_ref)]
    pub(super) fn slice_mut(&self, from: usize, to: usize) -> &mut [u8] {
        assert!(from <= to && to <= self.cap);
        // SAFETY: in bounds (asserted); not covered by any shared slice, and the stage's lock
        // makes this the only writer.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(from), to - from) }
    }

    /// Moves `[from, from + len)` to the front (a reused stage keeps its partial block).
    pub(super) fn move_to_front(&mut self, from: usize, len: usize) {
        assert!(from + len <= self.cap);
        // SAFETY: in bounds; `&mut self` proves no slice of this buffer is alive.
        unsafe { std::ptr::copy(self.ptr.as_ptr().add(from), self.ptr.as_ptr(), len) }
    }

    pub(super) fn zero(&self, from: usize, to: usize) {
        assert!(from <= to && to <= self.cap);
        // SAFETY: in bounds; padding past the stage end, which no slice covers.
        unsafe { std::ptr::write_bytes(self.ptr.as_ptr().add(from), 0, to - from) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        ALLOCATED_BYTES.fetch_sub(self.cap, Ordering::Relaxed);
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), Layout::from_size_align_unchecked(self.cap, BLOCK)) }
    }
}

/// Copies `len` bytes with non-temporal stores where the CPU has them.
///
/// Why: the stage is the source of the direct writes, and on this machine (a VM: the device's
/// "DMA" is the host reading guest memory) an ordinary copy into a buffer the device has just
/// read runs at ~2.4 GB/s against ~25 GB/s elsewhere, every cache line fetched back for
/// ownership; streaming stores skip that (measured with a C probe, docs/BENCHMARKS.md: 2.4 →
/// 28 GB/s for 1 MiB, 2.3 → 9.5 GB/s in 2 KiB pieces). The bytes are headed for the device,
/// not for this core's cache, either way.
///
/// # Safety
/// `src` and `dst` valid for `len` bytes and not overlapping.
pub(super) unsafe fn copy_streaming(src: *const u8, dst: *mut u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_sfence, _mm_stream_si128};
        const SMALL: usize = 256;
        if len >= SMALL {
            // Head up to a 16-byte boundary of the destination, ordinary stores.
            let head = dst.align_offset(16).min(len);
            // SAFETY: within both ranges (head <= len).
            unsafe { std::ptr::copy_nonoverlapping(src, dst, head) };
            let mut i = head;
            while i + 64 <= len {
                // SAFETY: i + 64 <= len keeps every access in bounds; `dst + i` is 16-byte
                // aligned (head aligned it and i advances by 64), as the streaming store needs;
                // the loads are unaligned. SSE2 is part of x86_64.
                unsafe {
                    let s = src.add(i) as *const __m128i;
                    let d = dst.add(i) as *mut __m128i;
                    let (a, b) = (_mm_loadu_si128(s), _mm_loadu_si128(s.add(1)));
                    let (c, e) = (_mm_loadu_si128(s.add(2)), _mm_loadu_si128(s.add(3)));
                    _mm_stream_si128(d, a);
                    _mm_stream_si128(d.add(1), b);
                    _mm_stream_si128(d.add(2), c);
                    _mm_stream_si128(d.add(3), e);
                }
                i += 64;
            }
            // SAFETY: the rest of both ranges; the fence orders the streaming stores before
            // anything after the copy (the write system call that hands the buffer over).
            unsafe {
                std::ptr::copy_nonoverlapping(src.add(i), dst.add(i), len - i);
                _mm_sfence();
            }
            return;
        }
    }
    // SAFETY: the caller's contract.
    unsafe { std::ptr::copy_nonoverlapping(src, dst, len) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    #[test]
    fn streaming_copy_copies_every_length_at_every_alignment() {
        let src = pattern(1200, 7);
        for dst_off in 0..33 {
            for len in (0..700).chain([1024, 1151]) {
                let mut dst = vec![0xAAu8; 1300];
                // SAFETY: both ranges in bounds, distinct buffers.
                unsafe { copy_streaming(src.as_ptr().add(3), dst.as_mut_ptr().add(dst_off), len) };
                assert_eq!(&dst[dst_off..dst_off + len], &src[3..3 + len], "off {dst_off} len {len}");
                assert!(dst[..dst_off].iter().all(|&b| b == 0xAA), "before, off {dst_off} len {len}");
                assert!(dst[dst_off + len..].iter().all(|&b| b == 0xAA), "after, off {dst_off} len {len}");
            }
        }
    }
}
