//! Watches a broker's data directory for segment rolls, deletions and compactions, so a soak run's
//! time-series plot can show them beside the latency they may cause. The broker is not asked
//! (any Kafka-compatible broker with Kafka's on-disk layout can be watched): once a second
//! the harness lists `<topic>-<partition>/*.log` under the data directory and compares with
//! the last listing by name and inode:
//! - a segment whose name stays but whose inode changed was rewritten in place: compaction
//!   (riptide writes `<base>.log.tmp` and renames it over the segment; Kafka swaps in a
//!   `.cleaned`/`.swap` file the same way), and segments that vanish in the same partition
//!   and second were merged into it;
//! - segments that vanish from a partition with no rewrite were deleted: retention.
//!
//! - a segment name that was not there before is a roll (a compaction keeps its names).
//!
//! A partition directory that appears (a topic created) or vanishes whole (a topic deleted)
//! is neither and is ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EventKind {
    /// Segments removed whole (retention by time or size).
    Deletion,
    /// Segments rewritten (cleanup.policy=compact).
    Compaction,
    /// New segments (the active segment rolled).
    Roll,
}

/// What the broker did to its segments in one second of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentEvent {
    /// Seconds since the start of the run (the listing that saw it).
    pub second: u64,
    pub kind: EventKind,
    /// Partitions it happened in, and segments deleted or rewritten.
    pub partitions: u32,
    pub segments: u32,
}

/// Partition directory name → segment file name → inode.
type Listing = BTreeMap<String, BTreeMap<String, u64>>;

pub struct SegmentWatcher {
    dir: PathBuf,
    last: Listing,
    events: Vec<SegmentEvent>,
}

impl SegmentWatcher {
    /// Starts from the directory as it is now.
    pub fn new(dir: &Path) -> SegmentWatcher {
        SegmentWatcher { dir: dir.to_path_buf(), last: list(dir), events: Vec::new() }
    }

    /// Lists again and records what changed as events of `second`.
    pub fn poll(&mut self, second: u64) {
        let now = list(&self.dir);
        self.events.extend(diff(&self.last, &now, second));
        self.last = now;
    }

    pub fn finish(self) -> Vec<SegmentEvent> {
        self.events
    }
}

fn list(dir: &Path) -> Listing {
    let mut out = Listing::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        // `<topic>-<partition>`: the partition number after the last dash.
        let is_partition = name.rsplit_once('-').is_some_and(|(_, p)| p.parse::<u32>().is_ok());
        if !is_partition || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(files) = std::fs::read_dir(entry.path()) else { continue };
        let segments = files
            .flatten()
            .filter_map(|f| {
                let file = f.file_name().to_string_lossy().to_string();
                let inode = f.metadata().ok()?.ino();
                file.ends_with(".log").then_some((file, inode))
            })
            .collect();
        out.insert(name, segments);
    }
    out
}

/// The events between two listings.
pub fn diff(before: &Listing, after: &Listing, second: u64) -> Vec<SegmentEvent> {
    let mut deleted = (0u32, 0u32);
    let mut compacted = (0u32, 0u32);
    let mut rolled = (0u32, 0u32);
    for (partition, old) in before {
        let Some(new) = after.get(partition) else { continue };
        let added = new.keys().filter(|f| !old.contains_key(*f)).count();
        if added > 0 {
            rolled.0 += 1;
            rolled.1 += added as u32;
        }
        let rewritten = old.iter().filter(|(f, inode)| new.get(*f).is_some_and(|n| n != *inode)).count();
        let gone: BTreeSet<&String> = old.keys().filter(|f| !new.contains_key(*f)).collect();
        if rewritten > 0 {
            compacted.0 += 1;
            compacted.1 += (rewritten + gone.len()) as u32;
        } else if !gone.is_empty() {
            deleted.0 += 1;
            deleted.1 += gone.len() as u32;
        }
    }
    let mut events = Vec::new();
    let kinds =
        [(EventKind::Deletion, deleted), (EventKind::Compaction, compacted), (EventKind::Roll, rolled)];
    for (kind, (partitions, segments)) in kinds {
        if partitions > 0 {
            events.push(SegmentEvent { second, kind, partitions, segments });
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(parts: &[(&str, &[(&str, u64)])]) -> Listing {
        parts
            .iter()
            .map(|(p, files)| (p.to_string(), files.iter().map(|(f, i)| (f.to_string(), *i)).collect()))
            .collect()
    }

    #[test]
    fn deletions_compactions_and_rolls_are_told_apart() {
        let before = listing(&[
            ("t-0", &[("00.log", 1), ("10.log", 2), ("20.log", 3)]),
            ("t-1", &[("00.log", 4), ("10.log", 5)]),
            ("c-0", &[("00.log", 6), ("10.log", 7), ("20.log", 8)]),
            ("gone-0", &[("00.log", 9)]),
        ]);
        let after = listing(&[
            // Retention took the two oldest segments; a new one rolled.
            ("t-0", &[("20.log", 3), ("30.log", 10)]),
            // Only a roll.
            ("t-1", &[("00.log", 4), ("10.log", 5), ("20.log", 11)]),
            // Compaction rewrote 00 (new inode) and merged 10 into it.
            ("c-0", &[("00.log", 12), ("20.log", 8)]),
        ]);
        let events = diff(&before, &after, 42);
        assert_eq!(
            events,
            vec![
                SegmentEvent { second: 42, kind: EventKind::Deletion, partitions: 1, segments: 2 },
                SegmentEvent { second: 42, kind: EventKind::Compaction, partitions: 1, segments: 2 },
                SegmentEvent { second: 42, kind: EventKind::Roll, partitions: 2, segments: 2 },
            ]
        );
        assert!(diff(&after, &after, 43).is_empty());
    }

    #[test]
    fn the_watcher_sees_a_real_directory_change() {
        let dir = std::env::temp_dir().join(format!("rb-segments-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let part = dir.join("topic-a-3");
        std::fs::create_dir_all(&part).expect("mkdir");
        std::fs::create_dir_all(dir.join("not-a-partition")).expect("mkdir");
        for f in ["00000000000000000000.log", "00000000000000000100.log", "00000000000000000100.index"] {
            std::fs::write(part.join(f), b"x").expect("write");
        }
        let mut w = SegmentWatcher::new(&dir);
        w.poll(1);
        std::fs::remove_file(part.join("00000000000000000000.log")).expect("rm");
        w.poll(2);
        // Rewritten in place the way a compaction installs its output.
        std::fs::write(part.join("00000000000000000100.log.tmp"), b"y").expect("write");
        std::fs::rename(part.join("00000000000000000100.log.tmp"), part.join("00000000000000000100.log"))
            .expect("rename");
        w.poll(3);
        std::fs::write(part.join("00000000000000000200.log"), b"z").expect("write");
        w.poll(4);
        let kinds: Vec<(u64, EventKind)> = w.finish().iter().map(|e| (e.second, e.kind)).collect();
        assert_eq!(kinds, vec![(2, EventKind::Deletion), (3, EventKind::Compaction), (4, EventKind::Roll)]);
        let _ = std::fs::remove_dir_all(dir);
    }
}
