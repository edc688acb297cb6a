//! Opening a partition directory: find the segments, trust what is known durable, re-scan
//! and validate everything after the recovery point, truncate a torn or corrupt tail, and
//! rebuild indexes that are missing or fail their sanity checks.
//!
//! Trust rule: a segment lies wholly below the recovery point when the next segment's base
//! is <= the recovery point; such segments (and all segments after a clean shutdown) load
//! their index files and only re-scan the bytes after the last index entry. Every other
//! segment is scanned from position 0 with every batch's CRC checked. The first invalid byte
//! ends the log: the file is cut there and any later segment is deleted.

use std::io;
use std::path::Path;

use crate::batch::check_stored;
use crate::config::LogConfig;
use crate::epoch_cache::EpochCache;
use crate::error::LogError;
use crate::io::Io;
use crate::segment::{file_path, scan_batches, BatchMeta, ScanStop, Segment, LOG_SUFFIX};

/// Segments after loading, and whether any needed a full scan (then the caller makes the
/// recovered data durable and moves the recovery point to the log end).
pub(crate) struct Loaded {
    pub segments: Vec<Segment>,
    pub rescanned: bool,
}

/// Base offsets of the `.log` files in `dir`, ascending; removes leftover temp and spare files.
pub(crate) fn list_segments(io: Io, dir: &Path) -> io::Result<Vec<i64>> {
    let mut bases = Vec::new();
    let mut names = io.list_dir(dir)?;
    names.sort_unstable();
    for name in names {
        // `*.spare`: a spare segment prepared ahead of a roll (`log/spare.rs`), never data.
        if name.ends_with(".tmp") || name.ends_with(".deleted") || name.ends_with(".spare") {
            io.remove_file(&dir.join(&name))?;
            continue;
        }
        if let Some(stem) = name.strip_suffix(".log") {
            if stem.len() == 20 {
                if let Ok(base) = stem.parse::<i64>() {
                    bases.push(base);
                }
            }
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// What the checkpoints read at open say about the segments.
#[derive(Clone, Copy)]
pub(crate) struct Trust {
    /// Every offset below this was durable (`i64::MIN`: trust nothing).
    pub recovery_point: i64,
    /// The recovery point came from a readable checkpoint (not a default): only then can a
    /// segment above it be told to have lost its tail (compaction leaves gaps, but only in
    /// segments the checkpoint trusts).
    pub recovery_point_known: bool,
    /// The durable log start, if its checkpoint was written.
    pub log_start: Option<i64>,
    /// The previous close completed (all segments trusted).
    pub clean: bool,
}

/// Loads and recovers every segment in `dir`.
pub(crate) fn load_segments(
    dir: &Path,
    cfg: &LogConfig,
    io: Io,
    trust: &Trust,
    epochs: &mut EpochCache,
    now_ms: i64,
) -> Result<Loaded, LogError> {
    let Trust { recovery_point, recovery_point_known, log_start, clean } = *trust;
    let mut bases = list_segments(io, dir)?;
    // Segments wholly below the durable log start are leftovers of a retention pass cut short
    // by a crash: delete them unread. Recovering them first let damage in one (a torn batch)
    // truncate the log there and delete every later segment (simulator, seed 207).
    let below_start = bases.windows(2).take_while(|w| log_start.is_some_and(|s| w[1] <= s)).count();
    if below_start > 0 {
        delete_later(io, dir, &bases[..below_start])?;
        bases.drain(..below_start);
    }
    let mut out = Loaded { segments: Vec::with_capacity(bases.len()), rescanned: false };
    let mut buf = Vec::new();
    for (i, &base) in bases.iter().enumerate() {
        let mut seg = Segment::open(io, dir, base, cfg, now_ms)?;
        if let Some(prev) = out.segments.last() {
            if base < prev.next_offset {
                return Err(LogError::Storage(format!("segment {base} overlaps the previous segment")));
            }
        }
        let trusted = clean || bases.get(i + 1).is_some_and(|&next| next <= recovery_point);
        let truncated = if trusted && seg.load_indexes(io, cfg) {
            load_trusted(&mut seg, io, &mut buf, epochs)?
        } else {
            out.rescanned = true;
            let mut t = recover_full(&mut seg, io, &mut buf, epochs)?;
            // An untrusted segment that ends before its successor begins lost its tail to a
            // power loss, while the successor's bytes survived (a roll does not wait for the
            // closed segment's fsync): the log ends here, as after a torn batch.
            let lost_tail = !trusted
                && recovery_point_known
                && bases.get(i + 1).is_some_and(|&next| seg.next_offset < next);
            t |= lost_tail;
            if !clean {
                rewrite(&seg, io, &mut buf)?;
            }
            if i + 1 < bases.len() && !t {
                seg.seal();
                seg.persist_indexes(io, true)?;
            }
            t
        };
        out.segments.push(seg);
        if truncated {
            out.rescanned = true;
            delete_later(io, dir, &bases[i + 1..])?;
            break;
        }
    }
    Ok(out)
}

/// Writes the recovered bytes of an untrusted segment back in place, so the fdatasync that
/// follows recovery really makes them durable. After a failed fdatasync Linux marks the dirty
/// pages clean while they stay readable: a restart without a reboot then recovers bytes that
/// are not on disk, and no later fdatasync writes them ("fsyncgate"). Found by the simulator
/// (seed 486: a close failed in fdatasync, the reopen claimed the segment durable, and a
/// later power loss tore acknowledged batches out of its middle). Costs one rewrite of the
/// unflushed segments per unclean open; they were just read, so the bytes come from the cache.
fn rewrite(seg: &Segment, io: Io, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut pos = 0u32;
    while pos < seg.size_bytes {
        let len = (seg.size_bytes - pos).min(crate::segment::SCAN_CHUNK_BYTES as u32) as usize;
        buf.clear();
        buf.resize(len, 0);
        let n = io.read_full_at(&seg.log, buf, u64::from(pos))?;
        if n < len {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        io.write_all_at(&seg.log, buf, u64::from(pos))?;
        pos += len as u32;
    }
    Ok(())
}

/// Deletes the files of the segments at `bases` and fsyncs the directory.
fn delete_later(io: Io, dir: &Path, bases: &[i64]) -> io::Result<()> {
    for &base in bases.iter().rev() {
        for suffix in [LOG_SUFFIX, crate::segment::INDEX_SUFFIX, crate::segment::TIME_INDEX_SUFFIX] {
            match io.remove_file(&file_path(dir, base, suffix)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    io.sync_dir(dir)
}

/// Loads a trusted segment: tail scan after the last index entry; falls back to a full scan
/// when the tail or the time index disagrees with the log. Returns true if truncated.
fn load_trusted(
    seg: &mut Segment,
    io: Io,
    buf: &mut Vec<u8>,
    epochs: &mut EpochCache,
) -> Result<bool, LogError> {
    match recover_tail(seg, io, buf, epochs) {
        Ok(false) if time_index_consistent(seg) => Ok(false),
        _ => recover_full(seg, io, buf, epochs),
    }
}

fn time_index_consistent(seg: &Segment) -> bool {
    seg.time_index.last().is_none_or(|(_, off)| off < seg.next_offset)
}

/// Scans the whole segment, rebuilding its indexes; truncates at the first bad batch.
pub(crate) fn recover_full(
    seg: &mut Segment,
    io: Io,
    buf: &mut Vec<u8>,
    epochs: &mut EpochCache,
) -> Result<bool, LogError> {
    seg.reset_tracking();
    scan_and_track(seg, 0, io, buf, epochs)
}

/// Re-tracks the segment from its last offset-index entry to the end of the file.
pub(crate) fn recover_tail(
    seg: &mut Segment,
    io: Io,
    buf: &mut Vec<u8>,
    epochs: &mut EpochCache,
) -> Result<bool, LogError> {
    let (last_entry, start) = seg.offset_index.last().unwrap_or((seg.base_offset, 0));
    if start == 0 {
        seg.reset_tracking();
    } else {
        let h =
            seg.header_at(io, start)?.ok_or_else(|| LogError::Storage("index points past log end".into()))?;
        // The entry names the last offset of the batch at its position; a header that says
        // otherwise (damaged, outside the CRC) would rewind below the index and trip its
        // ordering assertion (simulator, seed 77519: a panic). The caller rescans fully.
        if h.last_offset() != last_entry {
            return Err(LogError::Storage(format!(
                "segment {}: index disagrees with the log",
                seg.base_offset
            )));
        }
        seg.rewind_to(start, h.base_offset);
    }
    scan_and_track(seg, start, io, buf, epochs)
}

fn scan_and_track(
    seg: &mut Segment,
    start: u32,
    io: Io,
    buf: &mut Vec<u8>,
    epochs: &mut EpochCache,
) -> Result<bool, LogError> {
    let end = io.file_len(&seg.log)?.min(u64::from(u32::MAX)) as u32;
    let file = seg.log.clone();
    let stop = scan_batches(io, &file, start, end, buf, |pos, bytes| {
        let Ok(h) = check_stored(bytes) else { return Ok(false) };
        let rel_last = h.last_offset() - seg.base_offset;
        if h.base_offset < seg.next_offset || rel_last > i64::from(i32::MAX) {
            return Ok(false);
        }
        seg.track(&BatchMeta::from_header(&h, bytes.len() as u32), pos);
        if epochs.latest_epoch().is_none_or(|latest| h.partition_leader_epoch > latest) {
            epochs.assign(h.partition_leader_epoch, h.base_offset);
        }
        Ok(true)
    })?;
    seg.size_bytes = match stop {
        ScanStop::End => end,
        ScanStop::Torn(pos) | ScanStop::Rejected(pos) => pos,
    };
    if stop == ScanStop::End {
        return Ok(false);
    }
    seg.truncate_file(io, seg.size_bytes)?;
    Ok(true)
}
