//! Time as the partition and replication rules see it: wall-clock milliseconds since the Unix
//! epoch (what Kafka stores: LogAppendTime, retention) and a monotonic instant (ISR lag). The
//! rules take a `Clock` instead of reading the system's, so that unit tests (and a simulation)
//! drive time themselves; the broker passes `SystemClock`.

use std::sync::Arc;
use std::time::Instant;

pub trait Clock: Send + Sync {
    fn wall_ms(&self) -> i64;
    fn monotonic(&self) -> Instant;
}

/// The system's clocks.
pub struct SystemClock;

impl Clock for SystemClock {
    fn wall_ms(&self) -> i64 {
        now_ms()
    }

    fn monotonic(&self) -> Instant {
        Instant::now()
    }
}

/// The broker's clock.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// A clock that moves only when told (tests).
#[cfg(test)]
pub struct ManualClock {
    start: Instant,
    wall_start_ms: i64,
    elapsed_ms: std::sync::atomic::AtomicU64,
}

#[cfg(test)]
impl ManualClock {
    pub fn new(wall_start_ms: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            start: Instant::now(),
            wall_start_ms,
            elapsed_ms: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub fn advance(&self, d: std::time::Duration) {
        self.elapsed_ms.fetch_add(d.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    fn elapsed(&self) -> u64 {
        self.elapsed_ms.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
impl Clock for ManualClock {
    fn wall_ms(&self) -> i64 {
        self.wall_start_ms + self.elapsed() as i64
    }

    fn monotonic(&self) -> Instant {
        self.start + std::time::Duration::from_millis(self.elapsed())
    }
}
