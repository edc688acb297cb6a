//! Crash-safe small files and Kafka's offset-checkpoint text format.
//!
//! Every small file (checkpoints, leader-epoch cache, producer snapshots) is replaced
//! atomically: write `<name>.tmp`, fdatasync it, rename over `<name>`, fsync the directory.
//! A reader therefore sees the old or the new contents, never a mix. A missing file ("never
//! written") is `Ok(None)`; an unreadable one is an error the caller degrades from safely.
//!
//! Offset checkpoints use Kafka's layout (`0`, entry count, then `topic partition offset`
//! lines). Kafka keeps one such file per log directory; Riptide keeps one per partition
//! directory (`recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`) so a
//! partition is self-contained and owned by one shard.

use std::io;
use std::path::Path;

use crate::io::{FileHandle, Io};

pub const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint";
pub const LOG_START_FILE: &str = "log-start-offset-checkpoint";
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";

/// Atomically replaces `dir/name` with `contents` (temp, fsync, rename, fsync dir).
pub(crate) fn write_atomic(io: Io, dir: &Path, name: &str, contents: &[u8]) -> io::Result<()> {
    write_atomic_via(io, dir, name, "tmp", contents)
}

/// `write_atomic` through the temp file `<name>.<tmp_suffix>` (a writer on another thread uses
/// its own; recovery removes leftover `*.tmp` files).
pub(crate) fn write_atomic_via(
    io: Io,
    dir: &Path,
    name: &str,
    tmp_suffix: &str,
    contents: &[u8],
) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.{tmp_suffix}"));
    let file = io.open_rw(&tmp, true)?;
    io.write_all_at_sync(&file, contents, 0)?;
    drop(file);
    io.rename(&tmp, &dir.join(name))?;
    io.sync_dir(dir)
}

/// Replaces `dir/name` with `contents` through a temp file and a rename, without waiting for
/// the disk: after a power loss the old contents, the new, or a torn file may be found, so only
/// for files that are checksummed and optional (producer snapshots).
/// Returns the file, for the caller to sync later.
pub(crate) fn write_replacing(io: Io, dir: &Path, name: &str, contents: &[u8]) -> io::Result<FileHandle> {
    let tmp = dir.join(format!("{name}.tmp"));
    let file = io.open_rw(&tmp, true)?;
    io.write_all_at(&file, contents, 0)?;
    io.rename(&tmp, &dir.join(name))?;
    Ok(file)
}

/// Reads a whole small file; `Ok(None)` if it does not exist.
pub(crate) fn read_optional(io: Io, path: &Path) -> io::Result<Option<Vec<u8>>> {
    match io.read_file(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes a file if present, then fsyncs the directory.
pub(crate) fn remove_durably(io: Io, dir: &Path, name: &str) -> io::Result<()> {
    match io.remove_file(&dir.join(name)) {
        Ok(()) => io.sync_dir(dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Topic and partition named by a `<topic>-<partition>` directory (Kafka's layout); a
/// directory named otherwise is used whole as the topic with partition 0.
pub(crate) fn topic_partition(dir: &Path) -> (String, i32) {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if let Some((topic, part)) = name.rsplit_once('-') {
        if let Ok(p) = part.parse::<i32>() {
            if !topic.is_empty() {
                return (topic.to_string(), p);
            }
        }
    }
    (name, 0)
}

/// Kafka's offset checkpoint text for a single partition.
pub(crate) fn encode_offset(topic: &str, partition: i32, offset: i64) -> String {
    format!("0\n1\n{topic} {partition} {offset}\n")
}

/// Parses an offset checkpoint and returns the offset recorded for `partition` (the last
/// entry whose partition matches; topic names with spaces are not valid in Kafka).
pub(crate) fn parse_offset(text: &[u8], partition: i32) -> Option<i64> {
    let text = std::str::from_utf8(text).ok()?;
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut found = None;
    for _ in 0..count {
        let mut parts = lines.next()?.split_whitespace();
        let (_topic, p, off) = (parts.next()?, parts.next()?, parts.next()?);
        if p.parse::<i32>().ok()? == partition {
            found = Some(off.parse::<i64>().ok()?);
        }
    }
    found
}

/// Reads an offset checkpoint: `Ok(None)` if never written, `Err` if unreadable or malformed.
pub(crate) fn read_offset(io: Io, dir: &Path, name: &str, partition: i32) -> io::Result<Option<i64>> {
    match read_optional(io, &dir.join(name))? {
        None => Ok(None),
        Some(b) => parse_offset(&b, partition)
            .map(Some)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("malformed {name}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_checkpoint_round_trips_in_kafka_format() {
        let text = encode_offset("orders", 3, 12345);
        assert_eq!(text, "0\n1\norders 3 12345\n");
        assert_eq!(parse_offset(text.as_bytes(), 3), Some(12345));
        assert_eq!(parse_offset(b"0\n2\na 1 5\nb 3 7\n", 3), Some(7));
        assert_eq!(parse_offset(b"1\n1\na 3 5\n", 3), None);
        assert_eq!(parse_offset(b"0\n2\na 3 5\n", 3), None, "truncated file");
    }

    #[test]
    fn topic_partition_from_dir_name() {
        assert_eq!(topic_partition(Path::new("/d/my-topic-12")), ("my-topic".into(), 12));
        assert_eq!(topic_partition(Path::new("/d/plain")), ("plain".into(), 0));
    }
}
