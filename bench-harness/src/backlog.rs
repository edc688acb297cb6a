//! OMB's backlog-drain test (`consumerBacklogSizeGB`): consumers stay paused while the
//! producers build a backlog of the given size, then they are released and the harness
//! measures how fast they drain it while the producers go on at their rate. This is the
//! catch-up read of a consumer that fell behind: reads from older segments (page cache or
//! disk) competing with the producers' appends, which a tail-reading run never exercises.
//!
//! The tracker follows OMB's rules: the backlog is `subscriptions × published − consumed`
//! messages times `messageSize`; it counts as drained once it is at most
//! `max(1000, (1 − backlogDrainRatio) × backlog size in messages)` messages. It acts on the
//! runner's per-second totals, so its times are whole seconds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// OMB's floor: a backlog of this many messages or fewer is drained.
const DRAINED_MSGS_MIN: u64 = 1_000;

/// Consumers read only while this is clear; shared by every consumer of the run.
#[derive(Debug, Clone, Default)]
pub struct Pause(Arc<AtomicBool>);

impl Pause {
    pub fn paused() -> Pause {
        Pause(Arc::new(AtomicBool::new(true)))
    }

    pub fn is_paused(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    pub fn release(&self) {
        self.0.store(false, Ordering::Release);
    }
}

/// What the backlog phase measured (seconds since the start of the run).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BacklogDrain {
    pub target_bytes: u64,
    /// When the consumers were released and how large the backlog was then.
    pub released_at_second: Option<u64>,
    pub backlog_at_release_bytes: u64,
    /// When the backlog was down to the drained level (`None`: not within the run).
    pub drained_at_second: Option<u64>,
    pub drain_seconds: Option<u64>,
    /// While draining: what the consumers read and the producers wrote, per second.
    pub drain_consume_rate: f64,
    #[serde(rename = "drainConsumeMBps")]
    pub drain_consume_mbps: f64,
    pub drain_publish_rate: f64,
    /// How fast the backlog shrank: consumption above production, msgs/s.
    pub net_drain_rate: f64,
}

/// Follows the backlog second by second and says when to release the consumers.
#[derive(Debug)]
pub struct Tracker {
    result: BacklogDrain,
    message_bytes: u64,
    drained_msgs_max: u64,
    /// Totals since the release: consumed msgs and bytes, published msgs.
    since_release: (u64, u64, u64),
}

impl Tracker {
    pub fn new(target_bytes: u64, drain_ratio: f64, message_bytes: u32) -> Tracker {
        assert!(target_bytes > 0 && message_bytes > 0);
        let capacity_msgs = target_bytes / u64::from(message_bytes);
        let empty_level = ((1.0 - drain_ratio) * capacity_msgs as f64).round() as u64;
        Tracker {
            result: BacklogDrain { target_bytes, ..BacklogDrain::default() },
            message_bytes: u64::from(message_bytes),
            drained_msgs_max: empty_level.max(DRAINED_MSGS_MIN),
            since_release: (0, 0, 0),
        }
    }

    /// Second `second` ended with `backlog_msgs` outstanding, after `consumed`/`published`
    /// messages in it; true when the consumers are to be released now.
    pub fn second(&mut self, second: u64, backlog_msgs: u64, consumed: (u64, u64), published: u64) -> bool {
        let r = &mut self.result;
        let Some(released) = r.released_at_second else {
            if backlog_msgs * self.message_bytes >= r.target_bytes {
                r.released_at_second = Some(second);
                r.backlog_at_release_bytes = backlog_msgs * self.message_bytes;
                return true;
            }
            return false;
        };
        if r.drained_at_second.is_some() {
            return false;
        }
        self.since_release.0 += consumed.0;
        self.since_release.1 += consumed.1;
        self.since_release.2 += published;
        if backlog_msgs <= self.drained_msgs_max {
            let seconds = second - released;
            let per_s = |n: u64| n as f64 / seconds.max(1) as f64;
            r.drained_at_second = Some(second);
            r.drain_seconds = Some(seconds);
            r.drain_consume_rate = per_s(self.since_release.0);
            r.drain_consume_mbps = per_s(self.since_release.1) / 1e6;
            r.drain_publish_rate = per_s(self.since_release.2);
            let shrunk = (r.backlog_at_release_bytes / self.message_bytes).saturating_sub(backlog_msgs);
            r.net_drain_rate = per_s(shrunk);
        }
        false
    }

    pub fn finish(self) -> BacklogDrain {
        self.result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_builds_releases_and_drains_by_omb_s_rules() {
        // 1 MB target of 100-byte messages: released at 10,000 messages outstanding.
        let mut t = Tracker::new(1_000_000, 1.0, 100);
        assert!(!t.second(1, 4_000, (0, 0), 4_000));
        assert!(!t.second(2, 8_000, (0, 0), 4_000));
        assert!(t.second(3, 12_000, (0, 0), 4_000), "12,000 x 100 B >= 1 MB: release");
        // Consumers read 9,000/s while producers add 4,000/s: 5,000/s net.
        assert!(!t.second(4, 7_000, (9_000, 900_000), 4_000));
        assert!(!t.second(5, 2_000, (9_000, 900_000), 4_000));
        assert!(!t.second(6, 900, (5_100, 510_000), 4_000), "at most 1,000 left: drained");
        assert!(!t.second(7, 0, (4_900, 490_000), 4_000), "after the drain nothing changes");
        let d = t.finish();
        assert_eq!((d.released_at_second, d.drained_at_second, d.drain_seconds), (Some(3), Some(6), Some(3)));
        assert_eq!(d.backlog_at_release_bytes, 1_200_000);
        assert_eq!((d.drain_consume_rate, d.drain_publish_rate), (7_700.0, 4_000.0));
        assert!((d.drain_consume_mbps - 0.77).abs() < 1e-9);
        assert_eq!(d.net_drain_rate, (12_000.0 - 900.0) / 3.0);
    }

    #[test]
    fn a_partial_drain_ratio_ends_earlier_and_an_undrained_run_says_so() {
        // 10 MB of 100 B = 100,000 messages; ratio 0.9: drained at 10,000 left.
        let mut t = Tracker::new(10_000_000, 0.9, 100);
        assert!(t.second(1, 100_000, (0, 0), 100_000));
        t.second(2, 10_000, (90_000, 9_000_000), 0);
        assert_eq!(t.finish().drained_at_second, Some(2));
        let mut t = Tracker::new(10_000_000, 1.0, 100);
        t.second(1, 50_000, (0, 0), 50_000);
        let d = t.finish();
        assert_eq!((d.released_at_second, d.drained_at_second), (None, None), "never built");
        let p = Pause::paused();
        let q = p.clone();
        assert!(q.is_paused());
        p.release();
        assert!(!q.is_paused());
    }
}
