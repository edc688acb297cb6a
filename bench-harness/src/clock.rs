//! One monotonic clock for the whole process: nanoseconds since an anchor taken once, before
//! any worker thread starts. Producers stamp each message's *intended* send time with it and
//! consumers subtract it from their own reading, so end-to-end latency needs no wall clock
//! (producers and consumers of a run live in the same process).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static ANCHOR: OnceLock<Instant> = OnceLock::new();

fn anchor() -> Instant {
    *ANCHOR.get_or_init(Instant::now)
}

/// Fixes the anchor; call before starting threads (later calls are no-ops).
pub fn init() {
    let _ = anchor();
}

/// Nanoseconds since the anchor.
pub fn now_ns() -> u64 {
    anchor().elapsed().as_nanos() as u64
}

/// The `Instant` of a clock reading, for sleeping until it.
pub fn instant_at(ns: u64) -> Instant {
    anchor() + Duration::from_nanos(ns)
}

/// Milliseconds since the Unix epoch (record timestamps and report dates).
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

pub const NS_PER_S: u64 = 1_000_000_000;
