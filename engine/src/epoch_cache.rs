//! Leader-epoch cache: the start offset of every leader epoch seen in this log, persisted
//! as Kafka's `leader-epoch-checkpoint` text (`0`, entry count, `epoch startOffset` lines).
//! Answers OffsetForLeaderEpoch with Kafka's rule and follows truncations at both ends.
//! Entries are kept strictly increasing in both epoch and start offset.

use std::path::Path;

use crate::checkpoint::read_optional;

pub const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";

/// One (epoch, first offset written in it) pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct EpochCache {
    entries: Vec<EpochEntry>,
}

impl EpochCache {
    /// Loads the checkpoint: `Ok(empty)` if never written, `Err` if malformed.
    pub(crate) fn load(io: crate::io::Io, dir: &Path) -> std::io::Result<EpochCache> {
        let Some(bytes) = read_optional(io, &dir.join(LEADER_EPOCH_FILE))? else {
            return Ok(EpochCache::default());
        };
        Self::parse(&bytes).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed leader-epoch-checkpoint")
        })
    }

    fn parse(bytes: &[u8]) -> Option<EpochCache> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.lines();
        if lines.next()?.trim() != "0" {
            return None;
        }
        let count: usize = lines.next()?.trim().parse().ok()?;
        let mut cache = EpochCache::default();
        for _ in 0..count {
            let mut parts = lines.next()?.split_whitespace();
            let epoch = parts.next()?.parse().ok()?;
            let start_offset = parts.next()?.parse().ok()?;
            cache.assign(epoch, start_offset);
        }
        Some(cache)
    }

    pub(crate) fn encode(&self) -> String {
        let mut s = format!("0\n{}\n", self.entries.len());
        for e in &self.entries {
            s.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        s
    }

    pub(crate) fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub(crate) fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset` (Kafka's `assign`): ignored when it is
    /// the latest epoch already; entries that would break monotonicity are dropped first.
    /// Returns true if the cache changed.
    pub(crate) fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 {
            return false;
        }
        if let Some(last) = self.entries.last() {
            if last.epoch == epoch && last.start_offset <= start_offset {
                return false;
            }
        }
        self.entries.retain(|e| e.epoch < epoch && e.start_offset < start_offset);
        self.entries.push(EpochEntry { epoch, start_offset });
        true
    }

    /// Drops epochs that start at or after `end_offset` (log truncated to `end_offset`).
    pub(crate) fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        before != self.entries.len()
    }

    /// Log start moved to `start_offset`: entries before it collapse into the latest of them,
    /// which now starts at `start_offset`.
    pub(crate) fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let below = self.entries.iter().take_while(|e| e.start_offset < start_offset).count();
        if below == 0 {
            return false;
        }
        let mut kept = self.entries[below - 1];
        kept.start_offset = start_offset;
        self.entries.drain(..below);
        if self.entries.first().map(|e| e.start_offset) != Some(start_offset) {
            self.entries.insert(0, kept);
        }
        true
    }

    /// Kafka's OffsetForLeaderEpoch answer for `requested`: (largest epoch <= requested, start
    /// offset of the next higher epoch, or the log end for the latest epoch). `None` when
    /// the requested epoch is newer than any known (Kafka's UNDEFINED_EPOCH_OFFSET).
    pub(crate) fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        if requested < 0 {
            return None;
        }
        if self.latest_epoch() == Some(requested) {
            return Some((requested, log_end_offset));
        }
        let higher = self.entries.iter().find(|e| e.epoch > requested)?;
        match self.entries.iter().rev().find(|e| e.epoch <= requested) {
            Some(floor) => Some((floor.epoch, higher.start_offset)),
            None => Some((requested, higher.start_offset)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(pairs: &[(i32, i64)]) -> EpochCache {
        let mut c = EpochCache::default();
        for &(e, o) in pairs {
            assert!(c.assign(e, o));
        }
        c
    }

    #[test]
    fn end_offset_follows_kafka_rule() {
        let c = cache(&[(1, 0), (3, 100), (4, 250)]);
        assert_eq!(c.end_offset_for(4, 300), Some((4, 300)));
        assert_eq!(c.end_offset_for(3, 300), Some((3, 250)));
        assert_eq!(c.end_offset_for(2, 300), Some((1, 100)), "missing epoch: floor epoch, next start");
        assert_eq!(c.end_offset_for(0, 300), Some((0, 0)), "older than any: requested, first start");
        assert_eq!(c.end_offset_for(5, 300), None);
        assert_eq!(c.end_offset_for(-1, 300), None);
    }

    #[test]
    fn assign_is_monotonic_and_checkpoint_round_trips() {
        let mut c = cache(&[(1, 0), (3, 100)]);
        assert!(!c.assign(3, 150), "same epoch later offset is not news");
        assert!(c.assign(2, 50), "older epoch truncates the newer ones");
        assert_eq!(
            c.entries(),
            &[EpochEntry { epoch: 1, start_offset: 0 }, EpochEntry { epoch: 2, start_offset: 50 }]
        );
        let text = c.encode();
        assert_eq!(text, "0\n2\n1 0\n2 50\n");
        assert_eq!(EpochCache::parse(text.as_bytes()), Some(c));
        assert_eq!(EpochCache::parse(b"0\n3\n1 0\n"), None);
    }

    #[test]
    fn truncation_at_both_ends() {
        let mut c = cache(&[(1, 0), (3, 100), (4, 250)]);
        assert!(c.truncate_from_end(250));
        assert_eq!(c.latest_epoch(), Some(3));
        assert!(c.truncate_from_start(120));
        assert_eq!(c.entries(), &[EpochEntry { epoch: 3, start_offset: 120 }]);
        assert!(!c.truncate_from_start(120));
    }
}
