//! One segment: a `.log` file of RecordBatch v2 bytes plus its two sparse indexes, all named
//! by the segment's 20-digit base offset. Owns the file handle (shared as `Arc<File>` with
//! readers on the real backends), the in-memory indexes, and the segment's size, next offset and max timestamp.
//! Only the owning `Log` writes; bytes below `size_bytes` are never rewritten except by an
//! explicit truncation.

use std::io;
use std::path::{Path, PathBuf};

use crate::batch::{BatchHeader, HEADER_BYTES};
use crate::config::LogConfig;
use crate::error::LogError;
use crate::index::{OffsetIndex, TimeIndex};
use crate::io::direct::{DirectFile, Landed};
use crate::io::{FileHandle, Io};

pub const LOG_SUFFIX: &str = "log";
pub const INDEX_SUFFIX: &str = "index";
pub const TIME_INDEX_SUFFIX: &str = "timeindex";
/// Suffix of the spare segment's files (`next.<suffix>.spare`): never a segment to recovery,
/// which removes them (see `log/spare.rs`).
pub const SPARE_SUFFIX: &str = "spare";
/// Read size used when scanning a segment sequentially.
pub const SCAN_CHUNK_BYTES: usize = 1 << 20;

/// `<dir>/<20-digit offset>.<suffix>`.
pub fn file_path(dir: &Path, offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{offset:020}.{suffix}"))
}

/// `<dir>/next.<suffix>.spare`: a file of the spare segment, created ahead of a roll.
pub fn spare_path(dir: &Path, suffix: &str) -> PathBuf {
    dir.join(format!("next.{suffix}.{SPARE_SUFFIX}"))
}

/// What the indexes need to know about an appended batch.
#[derive(Clone, Copy, Debug)]
pub struct BatchMeta {
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp_ms: i64,
    pub size_bytes: u32,
}

impl BatchMeta {
    pub fn from_header(h: &BatchHeader, size_bytes: u32) -> BatchMeta {
        BatchMeta {
            base_offset: h.base_offset,
            last_offset: h.last_offset(),
            max_timestamp_ms: h.max_timestamp,
            size_bytes,
        }
    }
}

pub struct Segment {
    pub base_offset: i64,
    pub log: FileHandle,
    pub size_bytes: u32,
    /// Offset after the last batch (== base_offset when empty).
    pub next_offset: i64,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    bytes_since_index: u32,
    index_interval_bytes: u32,
    /// Largest batch max timestamp, -1 if none; and the last offset of that batch.
    pub max_timestamp_ms: i64,
    pub offset_of_max_timestamp: i64,
    /// Time the segment.ms clock starts from: creation time (file mtime for a reopened segment).
    pub roll_base_ms: i64,
    /// Fallback for time retention when batches carry no timestamps (file mtime or append time).
    pub last_modified_ms: i64,
    /// The open `.index` and `.timeindex` files of a segment created by this process (`None`
    /// for a reopened one): a roll writes them without opening them again.
    index_files: Option<[FileHandle; 2]>,
    dir: PathBuf,
}

impl Segment {
    fn with_file(
        dir: &Path,
        base_offset: i64,
        log: FileHandle,
        size_bytes: u32,
        cfg: &LogConfig,
        now_ms: i64,
    ) -> Segment {
        Segment {
            base_offset,
            log,
            size_bytes,
            next_offset: base_offset,
            offset_index: OffsetIndex::new(base_offset, cfg.offset_index_entries_max()),
            time_index: TimeIndex::new(base_offset, cfg.time_index_entries_max()),
            bytes_since_index: 0,
            index_interval_bytes: cfg.index_interval_bytes,
            max_timestamp_ms: -1,
            offset_of_max_timestamp: base_offset,
            roll_base_ms: now_ms,
            last_modified_ms: now_ms,
            index_files: None,
            dir: dir.to_path_buf(),
        }
    }

    /// Creates an empty segment (replacing leftovers of the same name) with preallocated
    /// index files. The caller fsyncs the directory.
    pub fn create(io: Io, dir: &Path, base_offset: i64, cfg: &LogConfig, now_ms: i64) -> io::Result<Segment> {
        let [log, index, time_index] =
            create_files(io, cfg.segment_index_bytes, |suffix| file_path(dir, base_offset, suffix))?;
        let mut seg = Segment::with_file(dir, base_offset, log, 0, cfg, now_ms);
        seg.index_files = Some([index, time_index]);
        Ok(seg)
    }

    /// The segment at `base_offset` made of a spare's files (already renamed to its names by
    /// the caller): `files` are the open log, index and time-index files, all empty.
    pub fn from_spare(
        dir: &Path,
        base_offset: i64,
        files: [FileHandle; 3],
        cfg: &LogConfig,
        now_ms: i64,
    ) -> Segment {
        let [log, index, time_index] = files;
        let mut seg = Segment::with_file(dir, base_offset, log, 0, cfg, now_ms);
        seg.index_files = Some([index, time_index]);
        seg
    }

    /// Opens an existing `.log`; indexes empty, next offset unknown until recovery or load.
    pub fn open(io: Io, dir: &Path, base_offset: i64, cfg: &LogConfig, now_ms: i64) -> io::Result<Segment> {
        let log = io.open_rw(&file_path(dir, base_offset, LOG_SUFFIX), false)?;
        let size = u32::try_from(io.file_len(&log)?)
            .map_err(|_| io::Error::other("segment file larger than 2 GiB"))?;
        let mtime_ms = io.modified_ms(&log).unwrap_or(now_ms);
        let mut seg = Segment::with_file(dir, base_offset, log, size, cfg, now_ms);
        seg.last_modified_ms = mtime_ms;
        seg.roll_base_ms = mtime_ms;
        Ok(seg)
    }

    pub fn is_empty(&self) -> bool {
        self.size_bytes == 0
    }

    /// Forgets everything the indexes and counters know (before a full rescan).
    pub fn reset_tracking(&mut self) {
        self.offset_index.clear();
        self.time_index.clear();
        self.bytes_since_index = 0;
        self.next_offset = self.base_offset;
        self.max_timestamp_ms = -1;
        self.offset_of_max_timestamp = self.base_offset;
    }

    /// Rewinds tracking to just before the batch at `position`, whose base offset is
    /// `base_offset`, keeping index state for the bytes before it; the batch and those after
    /// it are re-tracked by the caller. Used for tail scans from the last index entry.
    pub fn rewind_to(&mut self, position: u32, base_offset: i64) {
        self.offset_index.truncate_to_position(position);
        self.time_index.truncate_to_offset(base_offset);
        self.next_offset = base_offset;
        self.bytes_since_index = if position == 0 { 0 } else { self.index_interval_bytes.saturating_add(1) };
        match self.time_index.last() {
            Some((ts, off)) => {
                self.max_timestamp_ms = ts;
                self.offset_of_max_timestamp = off;
            }
            None => {
                self.max_timestamp_ms = -1;
                self.offset_of_max_timestamp = self.base_offset;
            }
        }
    }

    /// Index bookkeeping for a batch stored at `position` (Kafka's LogSegment.append rule).
    pub fn track(&mut self, b: &BatchMeta, position: u32) {
        assert!(b.base_offset >= self.next_offset, "offsets must increase within a segment");
        if b.max_timestamp_ms > self.max_timestamp_ms {
            self.max_timestamp_ms = b.max_timestamp_ms;
            self.offset_of_max_timestamp = b.last_offset;
        }
        if self.bytes_since_index > self.index_interval_bytes && !self.index_full() {
            self.offset_index.append(b.last_offset, position);
            self.time_index.maybe_append(self.max_timestamp_ms, self.offset_of_max_timestamp, false);
            self.bytes_since_index = 0;
        }
        self.bytes_since_index = self.bytes_since_index.saturating_add(b.size_bytes);
        self.next_offset = b.last_offset + 1;
        self.size_bytes = position + b.size_bytes;
    }

    /// True when neither index can take another entry.
    pub fn index_full(&self) -> bool {
        self.offset_index.is_full() || self.time_index.is_full()
    }

    /// Direct mode: switches the log file to staged O_DIRECT appends (see `io/direct/mod.rs`);
    /// nothing to do if it already is. Returns false where direct writes are unavailable
    /// (the simulated backend, or a file system that refuses O_DIRECT), and the file stays
    /// buffered.
    pub fn attach_direct(&mut self, io: Io, stage_bytes: usize) -> bool {
        let FileHandle::Real(file) = &self.log else {
            return matches!(self.log, FileHandle::Direct(_));
        };
        if io.is_sim() {
            return false;
        }
        let path = file_path(&self.dir, self.base_offset, LOG_SUFFIX);
        match DirectFile::open(&path, file.clone(), u64::from(self.size_bytes), stage_bytes) {
            Ok(d) => {
                self.log = FileHandle::Direct(std::sync::Arc::new(d));
                true
            }
            Err(e) => {
                tracing::warn!(
                    "direct writes unavailable for {} ({e}); writing through the page cache",
                    path.display()
                );
                false
            }
        }
    }

    /// Ends direct mode for this segment: the staged bytes are written and the file cut to
    /// its exact size (direct writes pad the last block). No-op for a buffered file.
    pub fn detach_direct(&mut self) -> io::Result<()> {
        if let FileHandle::Direct(d) = &self.log {
            self.log = FileHandle::Real(d.finish()?);
        }
        Ok(())
    }

    /// Direct mode: copies `bytes` to the end of the log's stage and `patch`es the copy there
    /// (see `DirectFile::append_with`); returns the position they start at. `None` for a
    /// buffered file, which takes only finished bytes (`write`).
    pub fn write_patched(&mut self, bytes: &[u8], patch: impl FnOnce(&mut [u8])) -> Option<io::Result<u32>> {
        let FileHandle::Direct(d) = &self.log else { return None };
        let position = self.size_bytes;
        Some(d.append_with(bytes, u64::from(position), patch).map(|()| position))
    }

    /// Direct mode: appends a received batch, its buffer taken over as the stage when it can
    /// be (see `DirectFile::append_landed`); returns the position it starts at. `None` for a
    /// buffered file.
    pub fn write_landed(
        &mut self,
        landed: &Landed,
        patch: impl FnOnce(&mut [u8]),
    ) -> Option<io::Result<u32>> {
        let FileHandle::Direct(d) = &self.log else { return None };
        let position = self.size_bytes;
        Some(d.append_landed(landed, u64::from(position), patch).map(|_| position))
    }

    /// Whether appends go to a direct stage (which can take landed batches over).
    pub fn takes_landed(&self) -> bool {
        matches!(self.log, FileHandle::Direct(_))
    }

    /// Writes `bytes` at the end of the log file; returns the position they start at.
    pub fn write(&mut self, io: Io, bytes: &[u8]) -> io::Result<u32> {
        let position = self.size_bytes;
        io.write_all_at(&self.log, bytes, u64::from(position))?;
        Ok(position)
    }

    /// The batch header at `position`, `None` at or past the end.
    pub fn header_at(&self, io: Io, position: u32) -> Result<Option<BatchHeader>, LogError> {
        if position >= self.size_bytes {
            return Ok(None);
        }
        let mut buf = [0u8; HEADER_BYTES];
        let n = io.read_full_at(&self.log, &mut buf, u64::from(position))?;
        let h = BatchHeader::parse(&buf[..n]).ok_or_else(|| self.damaged(position))?;
        let size = h.size_bytes().ok_or_else(|| self.damaged(position))?;
        if u64::from(position) + size as u64 > u64::from(self.size_bytes) {
            return Err(self.damaged(position));
        }
        Ok(Some(h))
    }

    fn damaged(&self, position: u32) -> LogError {
        LogError::Storage(format!(
            "damaged batch header in segment {} at position {position}",
            self.base_offset
        ))
    }

    /// Position and header of the first batch whose last offset is >= `offset`.
    pub fn find_batch(&self, io: Io, offset: i64) -> Result<Option<(u32, BatchHeader)>, LogError> {
        let (_, mut position) = self.offset_index.lookup(offset);
        while let Some(h) = self.header_at(io, position)? {
            if h.last_offset() >= offset {
                return Ok(Some((position, h)));
            }
            position += h.batch_length as u32 + crate::batch::LOG_OVERHEAD_BYTES as u32;
        }
        Ok(None)
    }

    /// Position of the first batch whose base offset is >= `offset` (segment end if none).
    pub fn position_of_first_batch_from(&self, io: Io, offset: i64) -> Result<u32, LogError> {
        Ok(match self.find_batch(io, offset)? {
            None => self.size_bytes,
            Some((pos, h)) if h.base_offset >= offset => pos,
            Some((pos, h)) => pos + h.batch_length as u32 + crate::batch::LOG_OVERHEAD_BYTES as u32,
        })
    }

    /// The largest batch boundary in (start, limit] reachable from the batch at `start`,
    /// or `start` if the first batch alone ends past `limit`; with the base offset of the
    /// batch starting at that boundary when it was read.
    pub fn last_boundary_within(
        &self,
        io: Io,
        start: u32,
        limit: u32,
    ) -> Result<(u32, Option<i64>), LogError> {
        let mut position = match self.offset_index.lookup_position(limit) {
            Some((_, p)) if p > start => p,
            _ => start,
        };
        while position < limit {
            let Some(h) = self.header_at(io, position)? else { break };
            let end = position + h.batch_length as u32 + crate::batch::LOG_OVERHEAD_BYTES as u32;
            if end > limit {
                return Ok((position, Some(h.base_offset)));
            }
            position = end;
        }
        Ok((position, None))
    }

    /// Adds the final time-index entry carrying the segment's max timestamp (done when the
    /// segment stops being active), so a reopened log knows it without a scan.
    pub fn seal(&mut self) {
        if self.next_offset > self.base_offset && self.max_timestamp_ms >= 0 {
            self.time_index.maybe_append(self.max_timestamp_ms, self.offset_of_max_timestamp, true);
        }
    }

    /// Writes both index files trimmed to their entries; fdatasyncs them when `sync`.
    /// A segment created by this process writes through the index files it holds (no open).
    pub fn persist_indexes(&self, io: Io, sync: bool) -> io::Result<Vec<FileHandle>> {
        let files =
            [(INDEX_SUFFIX, self.offset_index.encode()), (TIME_INDEX_SUFFIX, self.time_index.encode())];
        let mut opened = Vec::with_capacity(2);
        for (i, (suffix, bytes)) in files.into_iter().enumerate() {
            let f = match &self.index_files {
                Some(held) => held[i].clone(),
                None => io.open_rw(&file_path(&self.dir, self.base_offset, suffix), false)?,
            };
            io.write_all_at(&f, &bytes, 0)?;
            io.set_len(&f, bytes.len() as u64)?;
            opened.push(f);
        }
        if sync {
            let refs: Vec<&FileHandle> = opened.iter().collect();
            io.datasync_all(&refs)?;
        }
        Ok(opened)
    }

    /// Reads both index files; false if either is missing or fails its sanity checks.
    pub fn load_indexes(&mut self, io: Io, cfg: &LogConfig) -> bool {
        let read = |suffix| io.read_file(&file_path(&self.dir, self.base_offset, suffix)).ok();
        let (Some(ob), Some(tb)) = (read(INDEX_SUFFIX), read(TIME_INDEX_SUFFIX)) else {
            return false;
        };
        let off = OffsetIndex::decode(self.base_offset, cfg.offset_index_entries_max(), &ob, self.size_bytes);
        let time = TimeIndex::decode(self.base_offset, usize::MAX, &tb, i64::MAX);
        match (off, time) {
            (Some(o), Some(t)) => {
                self.offset_index = o;
                self.time_index = t;
                self.time_index_limit(cfg);
                true
            }
            _ => false,
        }
    }

    fn time_index_limit(&mut self, cfg: &LogConfig) {
        let mut t = TimeIndex::new(self.base_offset, cfg.time_index_entries_max());
        for e in self.time_index.entries() {
            t.maybe_append(e.timestamp_ms, self.base_offset + i64::from(e.relative_offset), true);
        }
        self.time_index = t;
    }

    /// Cuts the log file at `position` (a batch boundary).
    pub fn truncate_file(&mut self, io: Io, position: u32) -> io::Result<()> {
        io.set_len(&self.log, u64::from(position))?;
        self.size_bytes = position;
        self.offset_index.truncate_to_position(position);
        Ok(())
    }

    /// Closes the index files held since creation (the segment is no longer active).
    pub fn release_index_files(&mut self) {
        self.index_files = None;
    }

    /// The segment's three file paths.
    pub fn file_paths(&self) -> [PathBuf; 3] {
        [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX]
            .map(|suffix| file_path(&self.dir, self.base_offset, suffix))
    }

    /// Removes the segment's three files (open handles stay readable until dropped).
    pub fn delete_files(&self, io: Io) -> io::Result<()> {
        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            match io.remove_file(&file_path(&self.dir, self.base_offset, suffix)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Creates (emptying leftovers) a segment's log, index and time-index files, named by `path`
/// for each suffix, with the index files sized to `index_bytes` (sparse: no blocks written).
/// The caller fsyncs the directory.
pub fn create_files(io: Io, index_bytes: u32, path: impl Fn(&str) -> PathBuf) -> io::Result<[FileHandle; 3]> {
    let log = io.open_rw(&path(LOG_SUFFIX), true)?;
    let index = io.open_rw(&path(INDEX_SUFFIX), true)?;
    io.set_len(&index, u64::from(index_bytes) / 8 * 8)?;
    let time_index = io.open_rw(&path(TIME_INDEX_SUFFIX), true)?;
    io.set_len(&time_index, u64::from(index_bytes) / 12 * 12)?;
    Ok([log, index, time_index])
}

/// Why a sequential scan stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanStop {
    /// Reached `end` exactly on a batch boundary.
    End,
    /// Bytes from this position on do not form a whole batch (torn or garbage length).
    Torn(u32),
    /// The callback refused the batch at this position.
    Rejected(u32),
}

/// Reads `file` sequentially from `start` to `end`, framing batches by their length fields and
/// handing each whole batch to `f(position, bytes)`; `f` returns false to stop there.
pub fn scan_batches(
    io: Io,
    file: &FileHandle,
    start: u32,
    end: u32,
    buf: &mut Vec<u8>,
    mut f: impl FnMut(u32, &[u8]) -> Result<bool, LogError>,
) -> Result<ScanStop, LogError> {
    let mut pos = start;
    let mut buf_start = start;
    buf.clear();
    while pos < end {
        let avail = end - pos;
        if (avail as usize) < HEADER_BYTES {
            return Ok(ScanStop::Torn(pos));
        }
        if fill(io, file, buf, &mut buf_start, pos, end, HEADER_BYTES)? < HEADER_BYTES {
            return Ok(ScanStop::Torn(pos));
        }
        let off = (pos - buf_start) as usize;
        let size = BatchHeader::parse(&buf[off..]).and_then(|h| h.size_bytes());
        let Some(size) = size.filter(|&s| s as u64 <= u64::from(avail)) else {
            return Ok(ScanStop::Torn(pos));
        };
        if fill(io, file, buf, &mut buf_start, pos, end, size)? < size {
            return Ok(ScanStop::Torn(pos));
        }
        let off = (pos - buf_start) as usize;
        if !f(pos, &buf[off..off + size])? {
            return Ok(ScanStop::Rejected(pos));
        }
        pos += size as u32;
    }
    Ok(ScanStop::End)
}

/// Ensures `buf` holds at least `want` bytes from `pos` (refilling from `pos` if not);
/// returns how many bytes from `pos` are buffered.
fn fill(
    io: Io,
    file: &FileHandle,
    buf: &mut Vec<u8>,
    buf_start: &mut u32,
    pos: u32,
    end: u32,
    want: usize,
) -> io::Result<usize> {
    let off = (pos - *buf_start) as usize;
    if buf.len() >= off + want {
        return Ok(buf.len() - off);
    }
    let len = want.max(SCAN_CHUNK_BYTES).min((end - pos) as usize);
    buf.clear();
    buf.resize(len, 0);
    let n = io.read_full_at(file, buf, u64::from(pos))?;
    buf.truncate(n);
    *buf_start = pos;
    Ok(n)
}
