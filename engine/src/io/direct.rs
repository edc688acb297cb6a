//! Direct appends (`log.io = direct`): the active segment's new bytes are staged in an
//! aligned memory buffer and written to the file with O_DIRECT (DMA, no page-cache copy) when
//! the log is synced or the stage is full, the partial last 4 KiB block rewritten each time.
//!
//! Why staged: on this machine a direct write costs more CPU per byte than a buffered one
//! below about 256 KiB (docs/BENCHMARKS.md, fio), so writing each small batch directly would
//! lose; the group commit writes everything staged since the last one in one request, and
//! when that is still under 256 KiB (many partitions, small batches) it is one buffered write.
//!
//! Reads: bytes in the stage (from `start`, a block boundary, to the end) are served from
//! memory, the rest from the file through the page cache. Every block below `start` is
//! complete and on disk, and is never written again, so a page-cache copy of it (a splice
//! holding its page in a pipe) can never go stale; the blocks a direct write rewrites are all
//! at or above `start`, whose bytes are never read from the file.
//!
//! The stage is shared with readers as `Bytes` slices of bytes below the end, which never
//! change; appends write only at or past the end, and the buffer is reused in place only when
//! no reader holds it (otherwise a new one is allocated).

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

/// Alignment of direct writes: offsets, lengths and memory (the page size; the device's
/// logical block is 512 bytes here, 4 KiB covers every common device).
pub const BLOCK: usize = 4096;
/// Staged bytes fewer than this are written through the page cache: below about 256 KiB a
/// direct write costs more CPU per byte than a buffered one here (fio in docs/BENCHMARKS.md:
/// 64 KiB 0.67 against 0.36 CPU-s/GB, 1 MiB 0.21 against 0.31), and a group commit over many
/// partitions with small batches flushes small stages.
const DIRECT_WRITE_MIN_BYTES: usize = 256 * 1024;

/// The stage starts this small and doubles up to its limit while the process-wide budget
/// allows, so idle partitions cost little.
const STAGE_INITIAL_BYTES: usize = 16 * 1024;

/// Bytes of stage buffers allocated now (readers may keep an old buffer alive a little longer).
static STAGED_BYTES: AtomicUsize = AtomicUsize::new(0);
/// Stages grow only while `STAGED_BYTES` stays within this (`set_memory_budget`).
static BUDGET_BYTES: AtomicUsize = AtomicUsize::new(256 << 20);

/// Sets how much memory all stages together may grow into (`log.direct.memory.bytes`). Each
/// direct-mode segment has at least a small stage (16 KiB) regardless; past the budget a stage
/// stops growing and is written more often.
pub fn set_memory_budget(bytes: usize) {
    BUDGET_BYTES.store(bytes, Ordering::Relaxed);
}

/// Memory held by stage buffers now.
pub fn staged_bytes() -> usize {
    STAGED_BYTES.load(Ordering::Relaxed)
}

fn align_down(x: u64) -> u64 {
    x & !(BLOCK as u64 - 1)
}

fn align_up(x: u64) -> u64 {
    align_down(x + BLOCK as u64 - 1)
}

/// A zeroed, block-aligned heap buffer.
struct AlignedBuf {
    ptr: NonNull<u8>,
    cap: usize,
}

// SAFETY: the buffer is plain memory; the stage writes only bytes no `Bytes` slice covers
// (at or past the stage end) and only while holding the stage's lock.
unsafe impl Send for AlignedBuf {}
// SAFETY: as above; shared access reads only bytes that are no longer written.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    fn new(cap: usize) -> io::Result<AlignedBuf> {
        assert!(cap > 0 && cap.is_multiple_of(BLOCK), "stage size must be whole blocks");
        let layout = Layout::from_size_align(cap, BLOCK).map_err(io::Error::other)?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        STAGED_BYTES.fetch_add(cap, Ordering::Relaxed);
        Ok(AlignedBuf { ptr, cap })
    }

    /// The bytes `[from, to)`. Callers only ask for bytes nobody writes any more.
    fn slice(&self, from: usize, to: usize) -> &[u8] {
        assert!(from <= to && to <= self.cap);
        // SAFETY: in bounds (asserted); see the type's Sync note for why nobody writes them.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(from), to - from) }
    }

    /// Copies `src` to `at`. Only the stage calls this, under its lock, past every slice
    /// handed out.
    fn write(&self, at: usize, src: &[u8]) {
        assert!(at + src.len() <= self.cap);
        // SAFETY: in bounds (asserted); the destination is not covered by any shared slice.
        unsafe { copy_streaming(src.as_ptr(), self.ptr.as_ptr().add(at), src.len()) }
    }

    /// The bytes `[from, to)` for writing: only the stage calls this, under its lock, for bytes
    /// past its end (which no shared slice covers).
    #[allow(clippy::mut_from_ref)]
    fn slice_mut(&self, from: usize, to: usize) -> &mut [u8] {
        assert!(from <= to && to <= self.cap);
        // SAFETY: in bounds (asserted); not covered by any shared slice, and the stage's lock
        // makes this the only writer.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(from), to - from) }
    }

    /// Moves `[from, from + len)` to the front (a reused stage keeps its partial block).
    fn move_to_front(&mut self, from: usize, len: usize) {
        assert!(from + len <= self.cap);
        // SAFETY: in bounds; `&mut self` proves no slice of this buffer is alive.
        unsafe { std::ptr::copy(self.ptr.as_ptr().add(from), self.ptr.as_ptr(), len) }
    }

    fn zero(&self, from: usize, to: usize) {
        assert!(from <= to && to <= self.cap);
        // SAFETY: in bounds; padding past the stage end, which no slice covers.
        unsafe { std::ptr::write_bytes(self.ptr.as_ptr().add(from), 0, to - from) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        STAGED_BYTES.fetch_sub(self.cap, Ordering::Relaxed);
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
unsafe fn copy_streaming(src: *const u8, dst: *mut u8, len: usize) {
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

/// A reader's view of stage bytes (the owner behind a `Bytes`).
struct StageSlice {
    buf: Arc<AlignedBuf>,
    from: usize,
    to: usize,
}

impl AsRef<[u8]> for StageSlice {
    fn as_ref(&self) -> &[u8] {
        self.buf.slice(self.from, self.to)
    }
}

struct Stage {
    buf: Arc<AlignedBuf>,
    /// File position of `buf[0]` (a block boundary).
    start: u64,
    /// The file's logical end: bytes below it are valid (in the stage from `start` on).
    end: u64,
    /// Bytes below this are written to the file.
    flushed: u64,
    /// Largest buffer the stage may grow to.
    limit: usize,
}

/// The active segment's file in direct mode: the buffered descriptor (reads, splice, sync,
/// truncation), an O_DIRECT descriptor of the same file for writes, and the stage.
pub struct DirectFile {
    buffered: Arc<File>,
    direct: File,
    stage: Mutex<Stage>,
}

impl std::fmt::Debug for DirectFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectFile").finish_non_exhaustive()
    }
}

impl DirectFile {
    /// Opens `path` (the file behind `buffered`) for direct writes after its first `len`
    /// bytes, staging at most `limit` bytes. Fails where the file system refuses O_DIRECT.
    pub fn open(path: &Path, buffered: Arc<File>, len: u64, limit: usize) -> io::Result<DirectFile> {
        #[cfg(feature = "sim")]
        super::fault::on_open_direct()?;
        let direct = std::fs::OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(path)?;
        let limit = align_up(limit.max(2 * BLOCK) as u64) as usize;
        let stage = Stage {
            buf: Arc::new(AlignedBuf::new(STAGE_INITIAL_BYTES.min(limit))?),
            start: 0,
            end: 0,
            flushed: 0,
            limit,
        };
        let file = DirectFile { buffered, direct, stage: Mutex::new(stage) };
        {
            let mut st = file.lock()?;
            file.reload(&mut st, len)?;
        }
        Ok(file)
    }

    fn lock(&self) -> io::Result<MutexGuard<'_, Stage>> {
        self.stage.lock().map_err(|_| io::Error::other("direct file stage poisoned"))
    }

    /// The buffered descriptor (shared with readers and the group commit).
    pub fn buffered(&self) -> &Arc<File> {
        &self.buffered
    }

    /// The file's logical length (what was appended, flushed or not).
    pub fn logical_len(&self) -> io::Result<u64> {
        Ok(self.lock()?.end)
    }

    /// Appends `src`, which must start at the logical end.
    pub fn append(&self, src: &[u8], pos: u64) -> io::Result<()> {
        let mut st = self.lock()?;
        if pos != st.end {
            return Err(io::Error::other(format!("direct append at {pos}, but the file ends at {}", st.end)));
        }
        let mut rest = src;
        while !rest.is_empty() {
            let used = (st.end - st.start) as usize;
            let mut room = st.buf.cap - used;
            if room < rest.len() {
                self.grow(&mut st, used + rest.len())?;
                room = st.buf.cap - used;
            }
            if room == 0 {
                self.flush_locked(&mut st)?;
                Self::restart(&mut st)?;
                continue;
            }
            let n = room.min(rest.len());
            st.buf.write(used, &rest[..n]);
            st.end += n as u64;
            rest = &rest[n..];
        }
        Ok(())
    }

    /// Appends `src` (starting at the logical end) and lets `patch` change the staged copy
    /// before anyone can see it: the one copy of bytes the caller cannot modify in place
    /// (offsets are assigned in the stage). Bytes larger than the stage go through a
    /// temporary buffer.
    pub fn append_with(&self, src: &[u8], pos: u64, patch: impl FnOnce(&mut [u8])) -> io::Result<()> {
        let mut st = self.lock()?;
        if pos != st.end {
            return Err(io::Error::other(format!("direct append at {pos}, but the file ends at {}", st.end)));
        }
        for round in 0..2 {
            let used = (st.end - st.start) as usize;
            if st.buf.cap - used < src.len() {
                self.grow(&mut st, used + src.len())?;
            }
            if st.buf.cap - used >= src.len() {
                st.buf.write(used, src);
                patch(st.buf.slice_mut(used, used + src.len()));
                st.end += src.len() as u64;
                return Ok(());
            }
            if round == 0 {
                self.flush_locked(&mut st)?;
                Self::restart(&mut st)?;
            }
        }
        // Larger than the stage can become: patched in a temporary copy, staged in pieces.
        drop(st);
        let mut copy = src.to_vec();
        patch(&mut copy);
        self.append(&copy, pos)
    }

    /// Writes what is staged and not yet on the file (no fdatasync).
    pub fn flush(&self) -> io::Result<()> {
        let mut st = self.lock()?;
        self.flush_locked(&mut st)
    }

    /// Flushes, then fdatasyncs.
    pub fn sync(&self) -> io::Result<()> {
        self.flush()?;
        #[cfg(feature = "sim")]
        super::fault::on_sync()?;
        self.buffered.sync_data()
    }

    /// Flushes, sets the file's length, and restarts the stage at the new end (a truncation).
    pub fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.lock()?;
        self.flush_locked(&mut st)?;
        self.buffered.set_len(len)?;
        self.reload(&mut st, len)
    }

    /// Flushes and cuts the block padding off the file: it becomes an ordinary file of
    /// exactly its logical length (the segment stops being active, or the log closes).
    pub fn finish(&self) -> io::Result<Arc<File>> {
        let mut st = self.lock()?;
        self.flush_locked(&mut st)?;
        self.buffered.set_len(st.end)?;
        Ok(self.buffered.clone())
    }

    /// The bytes `[pos, pos + len)` from memory, if they all lie in the stage.
    pub fn staged(&self, pos: u64, len: u64) -> Option<Bytes> {
        let st = self.lock().ok()?;
        if pos < st.start || pos + len > st.end {
            return None;
        }
        let from = (pos - st.start) as usize;
        Some(Bytes::from_owner(StageSlice { buf: st.buf.clone(), from, to: from + len as usize }))
    }

    /// The first position served from memory (bytes below it are read from the file).
    pub fn stage_start(&self) -> io::Result<u64> {
        Ok(self.lock()?.start)
    }

    /// Reads up to `buf.len()` bytes at `pos` (0 at the end): the file below the stage, the
    /// stage from its start.
    pub fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let st = self.lock()?;
        if pos >= st.end || buf.is_empty() {
            return Ok(0);
        }
        if pos < st.start {
            let n = buf.len().min((st.start - pos) as usize);
            return super::std_backend::read_at(&self.buffered, &mut buf[..n], pos);
        }
        let from = (pos - st.start) as usize;
        let n = buf.len().min((st.end - pos) as usize);
        buf[..n].copy_from_slice(st.buf.slice(from, from + n));
        Ok(n)
    }

    /// Restarts the stage at `len` with the file's partial last block read back into it.
    fn reload(&self, st: &mut Stage, len: u64) -> io::Result<()> {
        let start = align_down(len);
        let keep = (len - start) as usize;
        let mut block = [0u8; BLOCK];
        let mut done = 0;
        while done < keep {
            let n = super::std_backend::read_at(&self.buffered, &mut block[done..keep], start + done as u64)?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            }
            done += n;
        }
        if Arc::strong_count(&st.buf) > 1 {
            st.buf = Arc::new(AlignedBuf::new(st.buf.cap)?);
        }
        st.buf.zero(0, BLOCK);
        st.buf.write(0, &block[..keep]);
        st.start = start;
        st.end = len;
        st.flushed = len;
        Ok(())
    }

    /// A larger buffer holding the stage's bytes (the old one stays with its readers), when
    /// the memory budget has room for it; otherwise the stage stays as it is.
    fn grow(&self, st: &mut Stage, want: usize) -> io::Result<()> {
        let cap = (align_up(want as u64) as usize).next_power_of_two().min(st.limit);
        if cap <= st.buf.cap || staged_bytes() + (cap - st.buf.cap) > BUDGET_BYTES.load(Ordering::Relaxed) {
            return Ok(());
        }
        let used = (st.end - st.start) as usize;
        let bigger = AlignedBuf::new(cap)?;
        bigger.write(0, st.buf.slice(0, used));
        st.buf = Arc::new(bigger);
        Ok(())
    }

    /// Starts a fresh stage at the (flushed) end, keeping the partial last block.
    fn restart(st: &mut Stage) -> io::Result<()> {
        debug_assert_eq!(st.flushed, st.end, "restart before flush");
        let start = align_down(st.end);
        let (from, keep) = ((start - st.start) as usize, (st.end - start) as usize);
        match Arc::get_mut(&mut st.buf) {
            Some(buf) => buf.move_to_front(from, keep),
            None => {
                let fresh = AlignedBuf::new(st.buf.cap)?;
                fresh.write(0, st.buf.slice(from, from + keep));
                st.buf = Arc::new(fresh);
            }
        }
        st.start = start;
        Ok(())
    }

    fn flush_locked(&self, st: &mut Stage) -> io::Result<()> {
        if st.flushed == st.end {
            return Ok(());
        }
        #[cfg(feature = "sim")]
        super::fault::on_write()?;
        let pending = (st.end - st.flushed) as usize;
        if pending < DIRECT_WRITE_MIN_BYTES {
            // Through the page cache: still one write per sync for all the batches staged
            // since the last one, not one per batch. A later direct write over the same
            // block is kept coherent by the kernel (it writes back and drops those pages).
            let (lo, hi) = ((st.flushed - st.start) as usize, (st.end - st.start) as usize);
            self.buffered.write_all_at(st.buf.slice(lo, hi), st.flushed)?;
        } else {
            let from = align_down(st.flushed);
            let to = align_up(st.end);
            let (lo, hi) = ((from - st.start) as usize, (to - st.start) as usize);
            st.buf.zero((st.end - st.start) as usize, hi);
            self.direct.write_all_at(st.buf.slice(lo, hi), from)?;
        }
        st.flushed = st.end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str) -> (std::path::PathBuf, Arc<File>) {
        let dir = std::env::temp_dir().join(format!("riptide-direct-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.log");
        let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path);
        (path, Arc::new(f.unwrap()))
    }

    fn pattern(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    #[test]
    fn appends_survive_flushes_restarts_and_reads() {
        let (path, file) = temp_file("appends");
        let Ok(d) = DirectFile::open(&path, file.clone(), 0, 3 * BLOCK) else {
            eprintln!("O_DIRECT not supported here; skipped");
            return;
        };
        let mut expect = Vec::new();
        for (i, n) in [100usize, 5000, 1, 4095, 12_000, 333].into_iter().enumerate() {
            let chunk = pattern(n, i as u8);
            d.append(&chunk, expect.len() as u64).unwrap();
            expect.extend_from_slice(&chunk);
            if i % 2 == 1 {
                d.flush().unwrap();
            }
        }
        // Reads across the file/stage boundary see every byte.
        let mut got = vec![0u8; expect.len()];
        let mut done = 0;
        while done < got.len() {
            let n = d.read_at(&mut got[done..], done as u64).unwrap();
            assert!(n > 0);
            done += n;
        }
        assert_eq!(got, expect);
        let start = d.stage_start().unwrap();
        assert_eq!(start % BLOCK as u64, 0);
        let tail = d.staged(start, expect.len() as u64 - start).unwrap();
        assert_eq!(&tail[..], &expect[start as usize..]);
        assert!(d.staged(start.saturating_sub(1), 2).is_none() || start == 0);
        // A held slice keeps its bytes while the stage moves on.
        let held = d.staged(start, 10).unwrap();
        let before = held.to_vec();
        d.append(&pattern(20_000, 9), expect.len() as u64).unwrap();
        assert_eq!(held.to_vec(), before);
        expect.extend_from_slice(&pattern(20_000, 9));
        // Finishing leaves exactly the appended bytes in the file.
        let f = d.finish().unwrap();
        assert_eq!(f.metadata().unwrap().len(), expect.len() as u64);
        assert_eq!(std::fs::read(&path).unwrap(), expect);
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

    #[test]
    fn patched_appends_land_patched() {
        let (path, file) = temp_file("patched");
        let Ok(d) = DirectFile::open(&path, file, 0, 4 * BLOCK) else { return };
        let mut expect = Vec::new();
        for (i, n) in [10usize, 9000, 3 * BLOCK, 20_000].into_iter().enumerate() {
            let src = pattern(n, i as u8);
            d.append_with(&src, expect.len() as u64, |dst| dst[0] = 0xEE).unwrap();
            let mut patched = src.clone();
            patched[0] = 0xEE;
            expect.extend_from_slice(&patched);
        }
        d.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expect);
    }

    #[test]
    fn past_the_budget_stages_stay_small_and_bytes_stay_right() {
        let (path, file) = temp_file("budget");
        let Ok(d) = DirectFile::open(&path, file, 0, 1 << 20) else { return };
        // Other tests in this process only flush more often while the budget is zero.
        set_memory_budget(0);
        let mut expect = Vec::new();
        for (i, n) in [3000usize, 40_000, 100_000, 7].into_iter().enumerate() {
            let src = pattern(n, i as u8);
            d.append_with(&src, expect.len() as u64, |dst| dst[n - 1] = 1).unwrap();
            let mut patched = src;
            patched[n - 1] = 1;
            expect.extend_from_slice(&patched);
        }
        let cap = d.lock().unwrap().buf.cap;
        set_memory_budget(256 << 20);
        assert_eq!(cap, STAGE_INITIAL_BYTES, "no growth past the budget");
        d.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expect);
    }

    #[test]
    fn small_flushes_buffered_and_large_ones_direct_interleave() {
        let (path, file) = temp_file("mixed");
        let Ok(d) = DirectFile::open(&path, file.clone(), 0, 1 << 20) else { return };
        let mut expect = Vec::new();
        for (i, n) in [1000usize, 300_000, 10, 5000, 500_000, 77, 270_000].into_iter().enumerate() {
            let src = pattern(n, i as u8);
            d.append(&src, expect.len() as u64).unwrap();
            expect.extend_from_slice(&src);
            d.flush().unwrap();
            // What a reader of the file sees below the stage, and through `read_at`, agrees.
            let mut back = vec![0u8; expect.len()];
            let mut done = 0;
            while done < back.len() {
                done += d.read_at(&mut back[done..], done as u64).unwrap();
            }
            assert_eq!(back, expect, "after flush {i}");
        }
        d.sync().unwrap();
        d.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expect);
    }

    #[test]
    fn truncation_restarts_the_stage_from_the_file() {
        let (path, file) = temp_file("truncate");
        let Ok(d) = DirectFile::open(&path, file, 0, 64 * 1024) else { return };
        let data = pattern(10_000, 1);
        d.append(&data, 0).unwrap();
        d.set_len(6000).unwrap();
        assert_eq!(d.logical_len().unwrap(), 6000);
        d.append(&pattern(100, 2), 6000).unwrap();
        d.finish().unwrap();
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(&on_disk[..6000], &data[..6000]);
        assert_eq!(&on_disk[6000..], &pattern(100, 2)[..]);
        assert!(d.append(b"x", 1).is_err(), "appends must start at the end");
    }

    #[test]
    fn reopening_keeps_the_existing_bytes() {
        let (path, file) = temp_file("reopen");
        let head = pattern(5000, 3);
        file.write_all_at(&head, 0).unwrap();
        let Ok(d) = DirectFile::open(&path, file, head.len() as u64, 8 * BLOCK) else { return };
        d.append(&pattern(7000, 4), 5000).unwrap();
        d.sync().unwrap();
        d.finish().unwrap();
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(&on_disk[..5000], &head[..]);
        assert_eq!(&on_disk[5000..], &pattern(7000, 4)[..]);
    }
}
