//! OMB's backlog-drain test (`consumerBacklogSizeGB`): consumers stay paused while the
//! producers build a backlog of the given size, then they are released and the harness
//! measures how fast they drain it while the producers go on at their rate. This is the
//! catch-up read of a consumer that fell behind: reads from older segments (page cache or
//! disk) competing with the producers' appends, which a tail-reading run never exercises.
//!
//! The tracker follows OMB's rules: the backlog is `subscriptions × published − consumed`
//! messages times `messageSize`; it counts as drained once it is at most
//! `max(1000, (1 − backlogDrainRatio) × backlog size in messages)` messages. A backlog held
//! in the page cache drains in well under a second, so the per-second totals are too coarse:
//! producers and consumers also count into the `Gate`'s atomics, and the main thread looks
//! at them every few milliseconds while the test is on.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::NS_PER_S;

/// OMB's floor: a backlog of this many messages or fewer is drained.
const DRAINED_MSGS_MIN: u64 = 1_000;

#[derive(Debug, Default)]
struct GateState {
    paused: AtomicBool,
    published: AtomicU64,
    consumed: AtomicU64,
}

/// Shared by every producer and consumer of a backlog run: consumers read only while it is
/// open; producers count acknowledged messages into it and consumers received ones.
#[derive(Debug, Clone, Default)]
pub struct Gate(Arc<GateState>);

impl Gate {
    /// A closed gate: consumers wait.
    pub fn closed() -> Gate {
        let g = Gate::default();
        g.0.paused.store(true, Ordering::Release);
        g
    }

    pub fn is_closed(&self) -> bool {
        self.0.paused.load(Ordering::Acquire)
    }

    pub fn open(&self) {
        self.0.paused.store(false, Ordering::Release);
    }

    pub fn published(&self, messages: u64) {
        self.0.published.fetch_add(messages, Ordering::Relaxed);
    }

    pub fn consumed(&self, messages: u64) {
        self.0.consumed.fetch_add(messages, Ordering::Relaxed);
    }

    /// Messages published and consumed so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.0.published.load(Ordering::Relaxed), self.0.consumed.load(Ordering::Relaxed))
    }
}

/// What the backlog phase measured (times in seconds since the start of the run).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BacklogDrain {
    pub target_bytes: u64,
    /// When the consumers were released and how large the backlog was then.
    pub released_at_second: Option<f64>,
    pub backlog_at_release_bytes: u64,
    /// When the backlog was down to the drained level (`None`: not within the run).
    pub drained_at_second: Option<f64>,
    pub drain_seconds: Option<f64>,
    /// While draining: what the consumers read and the producers wrote, per second.
    pub drain_consume_rate: f64,
    #[serde(rename = "drainConsumeMBps")]
    pub drain_consume_mbps: f64,
    pub drain_publish_rate: f64,
    /// How fast the backlog shrank: consumption above production, msgs/s.
    pub net_drain_rate: f64,
}

/// Follows the backlog and says when to release the consumers.
#[derive(Debug)]
pub struct Tracker {
    result: BacklogDrain,
    subscriptions: u64,
    message_bytes: u64,
    drained_msgs_max: u64,
    start_ns: u64,
    /// At the release: time and counts.
    released: Option<(u64, u64, u64)>,
}

impl Tracker {
    pub fn new(
        target_bytes: u64,
        drain_ratio: f64,
        message_bytes: u32,
        subscriptions: u32,
        start_ns: u64,
    ) -> Tracker {
        assert!(target_bytes > 0 && message_bytes > 0 && subscriptions > 0);
        let capacity_msgs = target_bytes / u64::from(message_bytes);
        let empty_level = ((1.0 - drain_ratio) * capacity_msgs as f64).round() as u64;
        Tracker {
            result: BacklogDrain { target_bytes, ..BacklogDrain::default() },
            subscriptions: u64::from(subscriptions),
            message_bytes: u64::from(message_bytes),
            drained_msgs_max: empty_level.max(DRAINED_MSGS_MIN),
            start_ns,
            released: None,
        }
    }

    /// True while there is something left to watch.
    pub fn active(&self) -> bool {
        self.result.drained_at_second.is_none()
    }

    fn second_of(&self, ns: u64) -> f64 {
        ns.saturating_sub(self.start_ns) as f64 / NS_PER_S as f64
    }

    /// At `now_ns`, `published` and `consumed` messages so far; true when the consumers are
    /// to be released now.
    pub fn observe(&mut self, now_ns: u64, published: u64, consumed: u64) -> bool {
        let backlog = (published * self.subscriptions).saturating_sub(consumed);
        let Some((at_ns, published0, consumed0)) = self.released else {
            if backlog * self.message_bytes >= self.result.target_bytes {
                self.released = Some((now_ns, published, consumed));
                self.result.released_at_second = Some(self.second_of(now_ns));
                self.result.backlog_at_release_bytes = backlog * self.message_bytes;
                return true;
            }
            return false;
        };
        if self.active() && backlog <= self.drained_msgs_max {
            let seconds = (now_ns - at_ns) as f64 / NS_PER_S as f64;
            let per_s = |n: u64| n as f64 / seconds.max(1e-9);
            let drained_at = self.second_of(now_ns);
            let r = &mut self.result;
            r.drained_at_second = Some(drained_at);
            r.drain_seconds = Some(seconds);
            r.drain_consume_rate = per_s(consumed - consumed0);
            r.drain_consume_mbps = per_s((consumed - consumed0) * self.message_bytes) / 1e6;
            r.drain_publish_rate = per_s(published - published0);
            let shrunk = (r.backlog_at_release_bytes / self.message_bytes).saturating_sub(backlog);
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

    const MS: u64 = 1_000_000;

    #[test]
    fn the_backlog_builds_releases_and_drains_by_omb_s_rules() {
        // 1 MB target of 100-byte messages, one subscription: released at 10,000 outstanding.
        let start = 5 * NS_PER_S;
        let mut t = Tracker::new(1_000_000, 1.0, 100, 1, start);
        assert!(!t.observe(start + 1000 * MS, 4_000, 0));
        assert!(!t.observe(start + 2000 * MS, 8_000, 0));
        assert!(t.observe(start + 2500 * MS, 12_000, 0), "12,000 x 100 B >= 1 MB: release");
        // 250 ms later: 2,000 more published, 13,500 consumed, 500 left: drained.
        assert!(!t.observe(start + 2600 * MS, 12_500, 6_000));
        assert!(!t.observe(start + 2750 * MS, 14_000, 13_500));
        assert!(!t.observe(start + 3000 * MS, 15_000, 15_000), "after the drain nothing changes");
        assert!(!t.active());
        let d = t.finish();
        assert_eq!(
            (d.released_at_second, d.drained_at_second, d.drain_seconds),
            (Some(2.5), Some(2.75), Some(0.25))
        );
        assert_eq!(d.backlog_at_release_bytes, 1_200_000);
        assert_eq!((d.drain_consume_rate, d.drain_publish_rate), (54_000.0, 8_000.0));
        assert!((d.drain_consume_mbps - 5.4).abs() < 1e-9);
        assert_eq!(d.net_drain_rate, (12_000.0 - 500.0) / 0.25);
    }

    #[test]
    fn subscriptions_a_partial_drain_ratio_and_an_undrained_run() {
        // Two subscriptions owe every message twice: 5,000 published = 10,000 outstanding.
        let mut t = Tracker::new(1_000_000, 1.0, 100, 2, 0);
        assert!(t.observe(NS_PER_S, 5_000, 0));
        // 10 MB of 100 B = 100,000 messages; ratio 0.9: drained at 10,000 left.
        let mut t = Tracker::new(10_000_000, 0.9, 100, 1, 0);
        assert!(t.observe(NS_PER_S, 100_000, 0));
        t.observe(2 * NS_PER_S, 100_000, 90_000);
        assert_eq!(t.finish().drained_at_second, Some(2.0));
        let mut t = Tracker::new(10_000_000, 1.0, 100, 1, 0);
        t.observe(NS_PER_S, 50_000, 0);
        let d = t.finish();
        assert_eq!((d.released_at_second, d.drained_at_second), (None, None), "never built");
        let g = Gate::closed();
        let h = g.clone();
        assert!(h.is_closed());
        g.open();
        g.published(3);
        h.consumed(2);
        assert!(!h.is_closed());
        assert_eq!(g.counts(), (3, 2));
    }
}
