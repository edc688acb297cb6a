//! Open-loop send schedule. A producer at rate `r` intends to send message `i` at
//! `start + i / r`, whatever happened to earlier messages: when the broker (or the harness)
//! stalls, the messages that fell due meanwhile are sent as soon as possible afterwards, but
//! each keeps its intended time, and latency is measured from it. That is what keeps the
//! numbers free of coordinated omission: a stall shows up in the latency of every message
//! that should have been sent during it, not only the one that was waiting.
//!
//! The maths is integer (rates in milli-messages per second, times in ns) so that
//! `due(intended(i)) == i + 1` holds exactly; the tests check it.

use crate::clock::NS_PER_S;

/// Milli-messages per second per message per second.
const MILLI: u128 = 1000;
/// ns per second times MILLI: `i * SCALE / rate_milli` is the offset of message `i` in ns.
const SCALE: u128 = NS_PER_S as u128 * MILLI;

/// When each message of one producer is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    start_ns: u64,
    /// Messages per second times 1000; 0 means no schedule (as fast as possible).
    rate_milli: u64,
}

impl Schedule {
    /// Producer `index` of `count` sharing `total_rate` msgs/s: each gets `total_rate / count`,
    /// and their starts are staggered by one period of the total rate, so the merged stream is
    /// evenly spaced instead of arriving in bursts of `count`.
    pub fn for_producer(start_ns: u64, total_rate: f64, index: u32, count: u32) -> Schedule {
        assert!(count > 0 && index < count, "producer {index} of {count}");
        if total_rate <= 0.0 {
            return Schedule { start_ns, rate_milli: 0 };
        }
        let rate_milli = ((total_rate * MILLI as f64) / f64::from(count)).round().max(1.0) as u64;
        let stagger_ns = (u128::from(index) * SCALE / (total_rate * MILLI as f64).max(1.0) as u128) as u64;
        Schedule { start_ns: start_ns + stagger_ns, rate_milli }
    }

    /// A schedule at `rate` msgs/s from `start_ns` (0: unbounded).
    pub fn new(start_ns: u64, rate: f64) -> Schedule {
        Schedule::for_producer(start_ns, rate, 0, 1)
    }

    pub fn start_ns(&self) -> u64 {
        self.start_ns
    }

    /// No rate: messages go as fast as the producer can send them.
    pub fn is_unbounded(&self) -> bool {
        self.rate_milli == 0
    }

    /// Messages per second.
    pub fn rate(&self) -> f64 {
        self.rate_milli as f64 / MILLI as f64
    }

    /// Intended send time of message `i` (0-based).
    pub fn intended_ns(&self, i: u64) -> u64 {
        assert!(!self.is_unbounded(), "an unbounded schedule has no intended times");
        self.start_ns + (u128::from(i) * SCALE / u128::from(self.rate_milli)) as u64
    }

    /// How many messages are due at `now_ns`: those whose intended time is at or before it.
    pub fn due(&self, now_ns: u64) -> u64 {
        assert!(!self.is_unbounded(), "an unbounded schedule has no due count");
        if now_ns < self.start_ns {
            return 0;
        }
        // intended(i) <= now  <=>  floor(i*SCALE/r) <= d  <=>  i*SCALE < (d+1)*r.
        let d = u128::from(now_ns - self.start_ns);
        ((d + 1) * u128::from(self.rate_milli)).div_ceil(SCALE) as u64
    }
}

/// When a producer with `sent` messages out should wake next: when its open batch is due to
/// leave, i.e. the earlier of "the batch is full" (the intended time of the message that fills
/// it) and "the first message has waited `linger_ns`"; never after `end_ns`.
/// `batch_first_ns` is the intended time of the open batch's first message (`None`: empty,
/// so its first message will be message `sent`); `room` is how many more messages fit.
pub fn next_wake_ns(
    schedule: &Schedule,
    sent: u64,
    batch_first_ns: Option<u64>,
    room: u64,
    linger_ns: u64,
    end_ns: u64,
) -> u64 {
    let first = batch_first_ns.unwrap_or_else(|| schedule.intended_ns(sent));
    let full = schedule.intended_ns(sent + room.max(1) - 1);
    first.saturating_add(linger_ns).min(full).min(end_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intended_times_are_evenly_spaced_from_the_start() {
        let s = Schedule::new(1_000, 1000.0);
        assert_eq!(s.intended_ns(0), 1_000);
        assert_eq!(s.intended_ns(1), 1_001_000);
        assert_eq!(s.intended_ns(1000), 1_000_001_000);
        // A rate that does not divide a second: 3 msgs/s are 333,333,333.3 ns apart.
        let s = Schedule::new(0, 3.0);
        assert_eq!(s.intended_ns(1), 333_333_333);
        assert_eq!(s.intended_ns(2), 666_666_666);
        assert_eq!(s.intended_ns(3), NS_PER_S);
        assert_eq!(s.intended_ns(300), 100 * NS_PER_S, "no drift over many periods");
    }

    #[test]
    fn due_counts_agree_with_intended_times_exactly() {
        for rate in [1.0, 3.0, 7.5, 999.0, 50_000.0, 1_000_000.0, 3_333_333.0] {
            let s = Schedule::new(12_345, rate);
            assert_eq!(s.due(0), 0);
            assert_eq!(s.due(12_344), 0);
            for i in (0..5_000u64).chain([1 << 20, 1 << 30]) {
                let t = s.intended_ns(i);
                assert_eq!(s.due(t), i + 1, "rate {rate}, message {i} is due at its own time");
                if i > 0 && t > s.intended_ns(i - 1) {
                    assert_eq!(s.due(t - 1), i, "rate {rate}, message {i} is not due a ns early");
                }
            }
        }
    }

    #[test]
    fn producers_split_the_rate_and_interleave() {
        // 4 producers sharing 1000 msgs/s: 250 msgs/s each, starts 1 ms apart.
        let all: Vec<Schedule> = (0..4).map(|i| Schedule::for_producer(0, 1000.0, i, 4)).collect();
        assert!(all.iter().all(|s| (s.rate() - 250.0).abs() < 1e-9));
        let mut times: Vec<u64> = all.iter().flat_map(|s| (0..250).map(move |i| s.intended_ns(i))).collect();
        times.sort_unstable();
        assert_eq!(times.len(), 1000);
        assert!(times.windows(2).all(|w| w[1] - w[0] == 1_000_000), "one message every ms overall");
        assert!(Schedule::for_producer(0, 0.0, 1, 2).is_unbounded());
    }

    #[test]
    fn a_stalled_producer_owes_every_message_of_the_stall() {
        // 10,000 msgs/s; the producer sent 10 messages, then stalled for 50 ms.
        let s = Schedule::new(0, 10_000.0);
        let now = 10 * 100_000 + 50 * 1_000_000;
        let owed = s.due(now) - 10;
        assert_eq!(owed, 501, "messages 10..=510 fell due during the stall");
        // Each keeps its own intended time: the first owed one has waited 50 ms, the last none.
        assert_eq!(now - s.intended_ns(10), 50_000_000);
        assert_eq!(now - s.intended_ns(510), 0);
    }

    #[test]
    fn wakes_when_the_batch_fills_or_lingers_out() {
        let s = Schedule::new(0, 1000.0); // one message per ms
                                          // Empty batch with room for 100: full at message 99 (99 ms), linger 5 ms wins.
        assert_eq!(next_wake_ns(&s, 0, None, 100, 5_000_000, u64::MAX), 5_000_000);
        // Room for 3 from message 10: full when message 12 is due.
        assert_eq!(next_wake_ns(&s, 10, Some(9_000_000), 3, 50_000_000, u64::MAX), 12_000_000);
        // An open batch lingers from its first message, not from the next one.
        assert_eq!(next_wake_ns(&s, 10, Some(8_000_000), 100, 1_000_000, u64::MAX), 9_000_000);
        // Never past the end of the run; linger 0 means "at the next message".
        assert_eq!(next_wake_ns(&s, 0, None, 100, 5_000_000, 2_000_000), 2_000_000);
        assert_eq!(next_wake_ns(&s, 7, None, 100, 0, u64::MAX), 7_000_000);
    }
}
