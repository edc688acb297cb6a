//! The main thread's side of a run: it merges the workers' per-second intervals, and once a
//! second is complete (every thread reported it) prints the progress line, keeps the
//! second's summary, folds it into the soak window, follows the backlog (releasing the paused
//! consumers when it is built), lists the broker's segments for deletions and compactions,
//! and samples the broker's memory. Whole-second histograms are dropped as soon as they are
//! folded, so memory stays flat however long the run.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};

use crate::backlog::{BacklogDrain, Gate, Tracker};
use crate::clock::now_ns;
use crate::error::{Error, Result};
use crate::report::Sample;
use crate::segments::{SegmentEvent, SegmentWatcher};
use crate::stats::{Interval, Totals};
use crate::sys::pid_rss_bytes;
use crate::windows::{WindowStats, Windows};
use crate::worker::{phase_of, Event, Timeline};

/// What the main thread watches besides the workers.
pub struct Watch {
    pub subscriptions: u32,
    pub message_bytes: u32,
    pub window_seconds: u64,
    /// The backlog test: its tracker and the gate the consumers wait at.
    pub backlog: Option<(Tracker, Gate)>,
    pub segments: Option<SegmentWatcher>,
    pub broker_pid: Option<u32>,
}

/// OMB reports its statistics every 10 s (`statsIntervalSeconds`); its charting script puts
/// sample n at 10·n seconds.
pub const OMB_STATS_SECONDS: u64 = 10;

/// How often the backlog's live counts are looked at while the test is on.
const BACKLOG_POLL: std::time::Duration = std::time::Duration::from_millis(2);

/// Everything gathered over the run.
pub struct Collected {
    pub samples: Vec<Sample>,
    pub totals: Totals,
    pub windows: Vec<WindowStats>,
    /// Windows of OMB's stats interval, for its result file.
    pub omb_windows: Vec<WindowStats>,
    pub backlog: Option<BacklogDrain>,
    pub segment_events: Vec<SegmentEvent>,
    /// The broker's largest RSS seen at a second's end.
    pub broker_rss_max_bytes: Option<u64>,
}

struct Collector {
    watch: Watch,
    samples: Vec<Sample>,
    windows: Windows,
    omb_windows: Windows,
    /// Messages published and consumed so far.
    cumulative: (u64, u64),
    rss_max: Option<u64>,
    tty: bool,
}

impl Collector {
    fn second(&mut self, k: u64, t: &Timeline, i: Interval) {
        let phase = phase_of(k, t);
        self.cumulative.0 += i.published_msgs;
        self.cumulative.1 += i.consumed_msgs;
        let owed = self.cumulative.0 * u64::from(self.watch.subscriptions);
        let backlog = owed.saturating_sub(self.cumulative.1);
        if let Some(w) = self.watch.segments.as_mut() {
            w.poll(k);
        }
        if let Some((rss, _)) = self.watch.broker_pid.and_then(pid_rss_bytes) {
            self.rss_max = Some(self.rss_max.unwrap_or(0).max(rss));
        }
        self.windows.add(k, phase, &i);
        self.omb_windows.add(k, phase, &i);
        let sample = Sample::of(phase, &i);
        progress(self.tty, &progress_line(k, t.seconds(), &sample, backlog));
        self.samples.push(sample);
    }

    /// Looks at the backlog test's live counts (every few ms while it is on).
    fn watch_backlog(&mut self, t: &Timeline) {
        let Some((tracker, gate)) = self.watch.backlog.as_mut() else { return };
        if !tracker.active() {
            return;
        }
        let (published, consumed) = gate.counts();
        if tracker.observe(now_ns(), published, consumed) {
            gate.open();
            let backlog = (published * u64::from(self.watch.subscriptions)).saturating_sub(consumed);
            let mb = backlog as f64 * f64::from(self.watch.message_bytes) / 1e6;
            let at = now_ns().saturating_sub(t.start_ns) as f64 / 1e9;
            self.note(&format!(
                "[{at:.2} s] backlog of {backlog} messages ({mb:.0} MB) built: consumers released"
            ));
        }
    }

    /// The next report from the workers; `None` when the backlog test wants a look at its
    /// counts first (it is polled every `BACKLOG_POLL` while on).
    fn next_event(&self, events: &flume::Receiver<Event>) -> Option<Result<Event, flume::RecvError>> {
        if !self.watch.backlog.as_ref().is_some_and(|(tracker, _)| tracker.active()) {
            return Some(events.recv());
        }
        match events.recv_timeout(BACKLOG_POLL) {
            Err(flume::RecvTimeoutError::Timeout) => None,
            Err(flume::RecvTimeoutError::Disconnected) => Some(Err(flume::RecvError::Disconnected)),
            Ok(e) => Some(Ok(e)),
        }
    }

    fn note(&self, line: &str) {
        if self.tty {
            eprintln!();
        }
        eprintln!("{line}");
    }
}

/// Gathers the run's reports from `threads` workers until each is done.
pub fn gather(
    events: &flume::Receiver<Event>,
    threads: usize,
    t: &Timeline,
    watch: Watch,
) -> Result<Collected> {
    let seconds = t.seconds();
    // Seconds some threads have reported and others not yet (few at a time).
    let mut pending: BTreeMap<u64, (usize, Interval)> = BTreeMap::new();
    let mut totals = Totals::default();
    let window_seconds = watch.window_seconds;
    let mut c = Collector {
        watch,
        samples: Vec::with_capacity(seconds as usize),
        windows: Windows::new(window_seconds),
        omb_windows: Windows::new(OMB_STATS_SECONDS),
        cumulative: (0, 0),
        rss_max: None,
        tty: std::io::stderr().is_terminal(),
    };
    let mut done = 0;
    while done < threads {
        c.watch_backlog(t);
        let event = match c.next_event(events) {
            Some(e) => e,
            None => continue,
        };
        match event {
            Ok(Event::Second { second, interval, .. }) => {
                let slot = pending.entry(second).or_insert_with(|| (0, Interval::default()));
                slot.0 += 1;
                slot.1.add(&interval);
                loop {
                    let next = c.samples.len() as u64 + 1;
                    if next > seconds || pending.get(&next).is_none_or(|s| s.0 < threads) {
                        break;
                    }
                    let (_, i) = pending.remove(&next).expect("complete second");
                    c.second(next, t, i);
                }
            }
            Ok(Event::Done { totals: part, .. }) => {
                totals.add(&part);
                done += 1;
            }
            Ok(Event::Failed { thread, error }) => {
                return Err(Error::Process(format!("worker {thread}: {error}")))
            }
            Ok(Event::Ready { .. }) => {}
            Err(_) => return Err(Error::Process("a worker thread ended without reporting".into())),
        }
    }
    if c.tty {
        eprintln!();
    }
    Ok(Collected {
        samples: c.samples,
        totals,
        windows: c.windows.finish(),
        omb_windows: c.omb_windows.finish(),
        backlog: c.watch.backlog.map(|(tracker, gate)| {
            gate.open();
            tracker.finish()
        }),
        segment_events: c.watch.segments.map(SegmentWatcher::finish).unwrap_or_default(),
        broker_rss_max_bytes: c.rss_max,
    })
}

/// The live progress line for one second.
pub fn progress_line(second: u64, seconds: u64, s: &Sample, backlog: u64) -> String {
    let (p, e) = (&s.publish, &s.e2e);
    let mut line = format!(
        "[{second:>3}/{seconds} s {:<7}] pub {:>9} msg/s {:>7.1} MB/s p50 {:.2} p99 {:.2} max {:.1} ms",
        s.phase,
        s.published_msgs,
        s.published_bytes as f64 / 1e6,
        p.p50,
        p.p99,
        p.max
    );
    if s.consumed_msgs > 0 || backlog != 0 {
        line += &format!(" | cons {:>9} msg/s e2e p99 {:.2} ms backlog {backlog}", s.consumed_msgs, e.p99);
    }
    if s.behind_msgs > 0 {
        line += &format!(" | behind {}", s.behind_msgs);
    }
    if s.errors > 0 {
        line += &format!(" | ERRORS {}", s.errors);
    }
    line
}

fn progress(tty: bool, line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = if tty { write!(err, "\r\x1b[2K{line}") } else { writeln!(err, "{line}") };
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_shows_rates_latency_and_errors() {
        let mut i =
            Interval { published_msgs: 1000, published_bytes: 1_000_000, errors: 2, ..Interval::default() };
        i.publish.record_n(1500, 1000).expect("in range");
        let line = progress_line(3, 10, &Sample::of("measure", &i), 0);
        assert!(
            line.contains("1000 msg/s") && line.contains("1.0 MB/s") && line.contains("p99 1.50"),
            "{line}"
        );
        assert!(line.contains("ERRORS 2") && !line.contains("cons"), "{line}");
    }
}
