//! The brake on password guessing: every failed login from an address makes that address's
//! next failure answer later (100 ms, doubling per recent failure, at most 5 s), and every
//! failure is logged with the address. The wait is asynchronous: other connections on the
//! shard are not held up. Successful logins are never delayed, and they do not clear the
//! record either (an attacker holding one valid account could otherwise reset the brake
//! between guesses); a record is forgotten a minute after its last failure.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures older than this are forgotten.
const WINDOW: Duration = Duration::from_secs(60);
const DELAY_BASE: Duration = Duration::from_millis(100);
const DELAY_MAX: Duration = Duration::from_secs(5);
/// Addresses remembered at most (the oldest are dropped first): bounded memory under a flood.
const ADDRESSES_MAX: usize = 10_000;

#[derive(Default)]
pub struct FailedLogins {
    by_peer: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl FailedLogins {
    /// Records a failure; how long to wait before answering it.
    pub fn failed(&self, peer: IpAddr) -> Duration {
        let mut map = self.by_peer.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if map.len() >= ADDRESSES_MAX {
            map.retain(|_, (_, at)| now.duration_since(*at) < WINDOW);
            if map.len() >= ADDRESSES_MAX {
                if let Some(oldest) = map.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| *k) {
                    map.remove(&oldest);
                }
            }
        }
        let entry = map.entry(peer).or_insert((0, now));
        if now.duration_since(entry.1) >= WINDOW {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        DELAY_BASE.saturating_mul(1u32 << (entry.0 - 1).min(6)).min(DELAY_MAX)
    }

    /// Recent failures from `peer` (for the log line).
    pub fn count(&self, peer: IpAddr) -> u32 {
        self.by_peer.lock().unwrap_or_else(|e| e.into_inner()).get(&peer).map_or(0, |e| e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_grows_per_failure_per_address() {
        let f = FailedLogins::default();
        let ip = IpAddr::from([10, 0, 0, 1]);
        let delays: Vec<_> = (0..10).map(|_| f.failed(ip)).collect();
        assert_eq!(delays[0], Duration::from_millis(100));
        assert_eq!(delays[1], Duration::from_millis(200));
        assert_eq!(*delays.last().expect("some"), DELAY_MAX);
        assert_eq!(f.failed(IpAddr::from([10, 0, 0, 2])), DELAY_BASE, "another address is not slowed");
        assert_eq!(f.count(ip), 10);
    }
}
