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
//! memory, and so are the bytes of filled stages still in the tail cache (`cache.rs`); the
//! rest come from the file through the page cache. Every block below `start` is complete and
//! on disk, and is never written again, so a page-cache copy of it (a splice holding its page
//! in a pipe) can never go stale; the blocks a direct write rewrites are all at or above
//! `start`, whose bytes are never read from the file.
//!
//! The stage is shared with readers as `Bytes` slices of bytes below the end, which never
//! change; appends write only at or past the end. A filled stage goes to the tail cache and a
//! buffer from the free list (or a new one) takes its place; with the cache off it is reused
//! in place when no reader holds it.

mod buf;
pub mod cache;
pub mod landing;

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use buf::AlignedBuf;
use cache::Retired;
pub use landing::{Landed, LandingBuf};

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

/// A file keeps at most this many filled stages' ranges to look up (the cache may hold fewer;
/// ranges whose buffer the cache dropped are pruned at each retirement). Enough for a 4 GiB
/// `log.direct.cache.bytes` of 1 MiB stages on one segment.
const RETIRED_MAX: usize = 4096;

/// Stages grow only while `staged_bytes()` stays within this (`set_memory_budget`).
static BUDGET_BYTES: AtomicUsize = AtomicUsize::new(256 << 20);
/// Names each `DirectFile` in the tail cache.
static NEXT_FILE_ID: AtomicU64 = AtomicU64::new(1);

/// Sets how much memory all stages together may grow into (`log.direct.memory.bytes`). Each
/// direct-mode segment has at least a small stage (16 KiB) regardless; past the budget a stage
/// stops growing and is written more often.
pub fn set_memory_budget(bytes: usize) {
    BUDGET_BYTES.store(bytes, Ordering::Relaxed);
}

/// Memory held by stage buffers now (and by old ones readers still hold), apart from the tail
/// cache's and the free list's (`cache_bytes`).
pub fn staged_bytes() -> usize {
    buf::allocated_bytes().saturating_sub(cache_bytes())
}

/// Memory held by the tail cache and the free list of buffers for reuse.
pub fn cache_bytes() -> usize {
    cache::cached_bytes() + buf::free_bytes()
}

fn align_down(x: u64) -> u64 {
    x & !(BLOCK as u64 - 1)
}

fn align_up(x: u64) -> u64 {
    align_down(x + BLOCK as u64 - 1)
}

/// Where the bytes of a read are (`DirectFile::memory`).
pub enum Memory {
    /// All in the stage or in cached filled stages: shared, no copy.
    Shared(InMemory),
    /// Partly in memory (the stage, which must not be read from the file, or the tail cache),
    /// partly not, or across more than `PIECES_MAX` buffers: copy it together with `read_at`,
    /// which takes each part from where it is.
    Copy,
    /// Below the stage and not cached: read from the file.
    File,
}

/// A read range's bytes in memory, in order: one shared piece, or one per buffer when the
/// range crosses from one filled stage into the next (a consumer a few MiB behind the tail).
#[derive(Clone, Debug)]
pub enum InMemory {
    One(Bytes),
    Many(Vec<Bytes>),
}

impl InMemory {
    pub fn pieces(&self) -> &[Bytes] {
        match self {
            InMemory::One(b) => std::slice::from_ref(b),
            InMemory::Many(v) => v,
        }
    }

    pub fn len(&self) -> usize {
        self.pieces().iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies `buf.len()` bytes from `from` on into `buf`; `false` if the range is shorter.
    pub fn copy_to(&self, buf: &mut [u8], from: usize) -> bool {
        let (mut skip, mut done) = (from, 0);
        for piece in self.pieces() {
            if done == buf.len() {
                break;
            }
            if skip >= piece.len() {
                skip -= piece.len();
                continue;
            }
            let n = (piece.len() - skip).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&piece[skip..skip + n]);
            done += n;
            skip = 0;
        }
        done == buf.len()
    }
}

/// A range may be served from at most this many buffers without a copy (the stage's 1 MiB
/// limit makes a 4 MiB fetch five at most).
const PIECES_MAX: usize = 16;

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
    /// Filled stages handed to the tail cache, oldest first (their buffers may be gone).
    retired: VecDeque<Retired>,
}

/// The active segment's file in direct mode: the buffered descriptor (reads, splice, sync,
/// truncation), an O_DIRECT descriptor of the same file for writes, and the stage.
pub struct DirectFile {
    buffered: Arc<File>,
    direct: File,
    stage: Mutex<Stage>,
    /// This file's name in the tail cache.
    id: u64,
}

impl Drop for DirectFile {
    fn drop(&mut self) {
        cache::forget(self.id);
    }
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
            retired: VecDeque::new(),
        };
        let id = NEXT_FILE_ID.fetch_add(1, Ordering::Relaxed);
        let file = DirectFile { buffered, direct, stage: Mutex::new(stage), id };
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
                self.restart(&mut st)?;
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
                self.restart(&mut st)?;
            }
        }
        // Larger than the stage can become: patched in a temporary copy, staged in pieces.
        drop(st);
        let mut copy = src.to_vec();
        patch(&mut copy);
        self.append(&copy, pos)
    }

    /// Appends a received batch (starting at the logical end) and `patch`es it in place. When
    /// it landed at the block phase the stage ends at, its buffer becomes the stage: what is
    /// staged is written out, the partial last block copied in front of the batch, and the
    /// filled stage retired as when it fills up. Otherwise the batch is copied as by
    /// `append_with`. Returns whether the buffer was taken over.
    ///
    /// The caller does not read `landed.bytes()` during the call: the patch writes them.
    pub fn append_landed(
        &self,
        landed: &Landed,
        pos: u64,
        patch: impl FnOnce(&mut [u8]),
    ) -> io::Result<bool> {
        let mut st = self.lock()?;
        if pos != st.end {
            return Err(io::Error::other(format!("direct append at {pos}, but the file ends at {}", st.end)));
        }
        let phase = (st.end - align_down(st.end)) as usize;
        if landed.at != phase {
            drop(st);
            landing::count(false, landed.len);
            return self.append_with(landed.slice(), pos, patch).map(|()| false);
        }
        self.flush_locked(&mut st)?;
        let start = align_down(st.end);
        let from = (start - st.start) as usize;
        // `[0, phase)` is the landing buffer's free lead: no `Bytes` covers it.
        landed.buf.write(0, st.buf.slice(from, from + phase));
        self.retire(&mut st);
        let (at, len) = (landed.at, landed.len);
        patch(landed.buf.slice_mut(at, at + len));
        let old = std::mem::replace(&mut st.buf, landed.buf.clone());
        if let Ok(unused) = Arc::try_unwrap(old) {
            buf::give_back(unused); // the tail cache is off and no reader holds it
        }
        st.start = start;
        st.end += len as u64;
        landing::count(true, len);
        Ok(true)
    }

    /// Hands the filled stage to the tail cache (unless it is off) before another buffer
    /// takes its place.
    fn retire(&self, st: &mut Stage) {
        if cache::budget() < st.buf.cap {
            return;
        }
        st.retired.retain(|r| r.buf.strong_count() > 0);
        if st.retired.len() == RETIRED_MAX {
            st.retired.pop_front();
        }
        st.retired.push_back(Retired { start: st.start, end: st.end, buf: Arc::downgrade(&st.buf) });
        cache::keep(self.id, st.buf.clone());
    }

    /// The block phase the next append starts at (where a landing buffer should put it).
    pub fn end_phase(&self) -> io::Result<usize> {
        let st = self.lock()?;
        Ok((st.end - align_down(st.end)) as usize)
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
        st.retired.clear();
        cache::forget(self.id);
        Ok(self.buffered.clone())
    }

    /// Where a reader finds `[pos, pos + len)`, in one look under the stage's lock: shared
    /// pieces of the stage and of the filled stages the tail cache holds when they cover it.
    pub fn memory(&self, pos: u64, len: u64) -> io::Result<Memory> {
        let st = self.lock()?;
        let end = pos + len;
        // The first piece apart, so that the usual one-piece range allocates nothing.
        let mut first = None;
        let mut more = Vec::new();
        let mut at = pos;
        while at < end {
            let found =
                if at >= st.start { Some((st.buf.clone(), st.start, st.end)) } else { Self::cached(&st, at) };
            let Some((buf, start, stop)) = found else {
                return Ok(if at == pos && end <= st.start { Memory::File } else { Memory::Copy });
            };
            let to = end.min(stop);
            if to <= at || more.len() + 1 == PIECES_MAX {
                return Ok(Memory::Copy);
            }
            let from = (at - start) as usize;
            let piece = Bytes::from_owner(StageSlice { buf, from, to: from + (to - at) as usize });
            match first {
                None => first = Some(piece),
                Some(_) => more.push(piece),
            }
            at = to;
        }
        Ok(match first {
            None => Memory::File,
            Some(one) if more.is_empty() => Memory::Shared(InMemory::One(one)),
            Some(one) => {
                more.insert(0, one);
                Memory::Shared(InMemory::Many(more))
            }
        })
    }

    /// The bytes `[pos, pos + len)` from memory, if they all lie in the stage or in filled
    /// stages the tail cache still holds.
    pub fn staged(&self, pos: u64, len: u64) -> Option<InMemory> {
        match self.memory(pos, len) {
            Ok(Memory::Shared(m)) => Some(m),
            _ => None,
        }
    }

    /// The filled stage still in the tail cache that holds the byte at `pos` (below the
    /// stage), with the file range it holds: the newest such, as ranges overlap at a partial
    /// block.
    fn cached(st: &Stage, pos: u64) -> Option<(Arc<AlignedBuf>, u64, u64)> {
        // Stages retire in file order, so starts and ends both ascend: the last range that
        // starts at or before `pos` is the newest that can hold it.
        let i = st.retired.partition_point(|r| r.start <= pos).checked_sub(1)?;
        let r = &st.retired[i];
        if pos >= r.end {
            return None;
        }
        debug_assert!(i == 0 || st.retired[i - 1].start <= r.start);
        Some((r.buf.upgrade()?, r.start, r.end))
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
            if let Some((cached, start, end)) = Self::cached(&st, pos) {
                let n = n.min((end - pos) as usize);
                let from = (pos - start) as usize;
                buf[..n].copy_from_slice(cached.slice(from, from + n));
                return Ok(n);
            }
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
            st.buf = Arc::new(buf::take(st.buf.cap)?);
        }
        st.buf.zero(0, BLOCK);
        st.buf.write(0, &block[..keep]);
        st.start = start;
        st.end = len;
        st.flushed = len;
        // A truncation: cached bytes at or past `len` are no longer the file's.
        for r in st.retired.iter_mut() {
            r.end = r.end.min(len);
        }
        st.retired.retain(|r| r.start < r.end);
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
        let bigger = buf::take(cap)?;
        bigger.write(0, st.buf.slice(0, used));
        st.buf = Arc::new(bigger);
        Ok(())
    }

    /// Starts a fresh stage at the (flushed) end, keeping the partial last block. The filled
    /// buffer goes to the tail cache (unless it is off).
    fn restart(&self, st: &mut Stage) -> io::Result<()> {
        debug_assert_eq!(st.flushed, st.end, "restart before flush");
        let start = align_down(st.end);
        let (from, keep) = ((start - st.start) as usize, (st.end - start) as usize);
        if cache::budget() >= st.buf.cap {
            let filled = st.buf.clone();
            // Retire first: what the cache evicts for it may come back as the fresh buffer.
            self.retire(st);
            let fresh = buf::take(st.buf.cap)?;
            fresh.write(0, filled.slice(from, from + keep));
            st.buf = Arc::new(fresh);
        } else {
            match Arc::get_mut(&mut st.buf) {
                Some(buf) => buf.move_to_front(from, keep),
                None => {
                    let fresh = buf::take(st.buf.cap)?;
                    fresh.write(0, st.buf.slice(from, from + keep));
                    st.buf = Arc::new(fresh);
                }
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
        assert_eq!(flat(&tail), &expect[start as usize..]);
        if let Some(across) = d.staged(start.saturating_sub(1), 2) {
            // Served by a filled stage in the tail cache, which also holds those bytes.
            assert_eq!(flat(&across), &expect[start as usize - 1..start as usize + 1]);
        }
        // A held slice keeps its bytes while the stage moves on.
        let held = d.staged(start, 10).unwrap();
        let before = flat(&held);
        d.append(&pattern(20_000, 9), expect.len() as u64).unwrap();
        assert_eq!(flat(&held), before);
        expect.extend_from_slice(&pattern(20_000, 9));
        // Finishing leaves exactly the appended bytes in the file.
        let f = d.finish().unwrap();
        assert_eq!(f.metadata().unwrap().len(), expect.len() as u64);
        assert_eq!(std::fs::read(&path).unwrap(), expect);
    }

    fn flat(m: &InMemory) -> Vec<u8> {
        let mut out = vec![0u8; m.len()];
        assert!(m.copy_to(&mut out, 0));
        out
    }

    fn read_all(d: &DirectFile, len: usize) -> Vec<u8> {
        let mut got = vec![0u8; len];
        let mut done = 0;
        while done < len {
            let n = d.read_at(&mut got[done..], done as u64).unwrap();
            assert!(n > 0, "short read at {done} of {len}");
            done += n;
        }
        got
    }

    #[test]
    fn filled_stages_serve_reads_from_the_tail_cache() {
        let (path, file) = temp_file("tail-cache");
        let Ok(d) = DirectFile::open(&path, file, 0, 2 * BLOCK) else { return };
        let mut expect = Vec::new();
        for i in 0..30u8 {
            let chunk = pattern(3000, i);
            d.append(&chunk, expect.len() as u64).unwrap();
            expect.extend_from_slice(&chunk);
        }
        let start = d.stage_start().unwrap();
        assert!(start >= 10 * BLOCK as u64, "the stage restarted many times (start {start})");
        // Bytes far below the stage, within one filled stage: from memory, and right.
        let old = d.staged(100, 4000).expect("a filled stage still cached");
        assert_eq!(flat(&old), &expect[100..4100]);
        let mid = d.staged(5 * BLOCK as u64 + 10, 3000).expect("cached");
        assert_eq!(flat(&mid), &expect[5 * BLOCK + 10..5 * BLOCK + 3010]);
        // Across several filled stages: one shared piece per buffer, in order, no copy.
        let across = d.staged(100, 20_000).expect("cached stages cover it");
        assert!(matches!(&across, InMemory::Many(p) if p.len() >= 3), "{across:?}");
        assert_eq!(flat(&across), &expect[100..20_100]);
        // Across more buffers than a range may take: copied instead (not shared).
        assert!(d.staged(100, (PIECES_MAX * 2 * BLOCK) as u64).is_none());
        // Reads across filled stages, the file and the stage see every byte; a read never
        // adds to the cache or takes from it, so the old range is still served after them.
        assert_eq!(read_all(&d, expect.len()), expect);
        let mut via_file = vec![0u8; 4000];
        crate::io::std_backend::read_at(d.buffered(), &mut via_file, 100).unwrap();
        assert_eq!(&via_file[..], &expect[100..4100], "the file holds the same bytes");
        assert!(d.staged(100, 4000).is_some());
        // A finished file is read from the file only: its cached stages are dropped.
        d.finish().unwrap();
        assert!(d.staged(100, 4000).is_none());
        assert_eq!(std::fs::read(&path).unwrap(), expect);
    }

    #[test]
    fn truncation_drops_cached_bytes_past_the_new_end() {
        let (path, file) = temp_file("cache-truncate");
        let Ok(d) = DirectFile::open(&path, file, 0, 2 * BLOCK) else { return };
        let data = pattern(50_000, 5);
        for piece in data.chunks(2500) {
            d.append(piece, d.logical_len().unwrap()).unwrap();
        }
        d.set_len(20_000).unwrap();
        assert!(d.staged(19_000, 1000).is_none_or(|b| flat(&b) == data[19_000..20_000]));
        assert!(d.staged(19_500, 1000).is_none(), "nothing past the new end");
        let fresh = pattern(30_000, 6);
        for piece in fresh.chunks(2500) {
            d.append(piece, d.logical_len().unwrap()).unwrap();
        }
        let mut expect = data[..20_000].to_vec();
        expect.extend_from_slice(&fresh);
        assert_eq!(read_all(&d, expect.len()), expect);
        for pos in (0..expect.len() - 1000).step_by(777) {
            if let Some(b) = d.staged(pos as u64, 1000) {
                assert_eq!(flat(&b), &expect[pos..pos + 1000], "memory at {pos}");
            }
        }
        d.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expect);
    }

    fn land(phase: usize, src: &[u8]) -> Landed {
        let mut l = LandingBuf::new(phase, src.len()).unwrap();
        l.region_mut()[..src.len()].copy_from_slice(src);
        l.set_received(src.len());
        l.finish().unwrap()
    }

    #[test]
    fn landed_batches_become_the_stage_at_their_phase_and_are_copied_otherwise() {
        let (path, file) = temp_file("landed");
        let Ok(d) = DirectFile::open(&path, file.clone(), 0, 1 << 20) else { return };
        let mut expect = pattern(5000, 1);
        d.append(&expect, 0).unwrap();
        let before = (landing::adopted_bytes(), landing::copied_bytes());
        // Right phase: taken over (the stage's partial block copied in front), patched in place.
        for (i, n) in [300_000usize, 7, 700_000].into_iter().enumerate() {
            let src = pattern(n, 10 + i as u8);
            let phase = d.end_phase().unwrap();
            assert_eq!(phase, expect.len() % BLOCK);
            let landed = land(phase, &src);
            let view = landed.bytes();
            assert!(d.append_landed(&landed, expect.len() as u64, |dst| dst[0] = 0xEE).unwrap());
            let mut patched = src.clone();
            patched[0] = 0xEE;
            assert_eq!(&view[..], &patched[..], "the caller's view shows the patched bytes");
            expect.extend_from_slice(&patched);
            let got = d.staged(0, expect.len() as u64);
            if let Some(m) = got {
                let mut all = vec![0u8; expect.len()];
                assert!(m.copy_to(&mut all, 0));
                assert_eq!(all, expect);
            }
            let mut tail = vec![0u8; 100.min(expect.len())];
            let at = expect.len() - tail.len();
            let n = d.read_at(&mut tail, at as u64).unwrap();
            assert_eq!(&tail[..n], &expect[at..at + n]);
        }
        // Wrong phase (a stale hint): copied, same bytes.
        let src = pattern(50_000, 30);
        let wrong = (d.end_phase().unwrap() + 1) % BLOCK;
        assert!(!d.append_landed(&land(wrong, &src), expect.len() as u64, |_| {}).unwrap());
        expect.extend_from_slice(&src);
        // Small appends after a takeover go on in the landed buffer.
        let src = pattern(3000, 40);
        d.append(&src, expect.len() as u64).unwrap();
        expect.extend_from_slice(&src);
        d.sync().unwrap();
        let adopted = landing::adopted_bytes() - before.0;
        let copied = landing::copied_bytes() - before.1;
        assert!(adopted >= 1_000_007 && copied >= 50_000, "adopted {adopted}, copied {copied}");
        assert_eq!(std::fs::read(&path).unwrap()[..expect.len()], expect[..]);
        d.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expect);
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
