//! Prometheus metrics: lock-free counters and fixed-bucket histograms updated by the shards,
//! rendered in the text exposition format by a small HTTP listener on its own thread
//! (`/metrics`, default port 9644), so scraping never touches a shard's event loop.

use riptide_model::TopicPartition;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds of the latency buckets, in microseconds.
const BUCKETS_US: [u64; 17] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// A cumulative-on-render histogram: one atomic per bucket plus sum and count.
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn record_us(&self, us: u64) {
        let i = BUCKETS_US.iter().position(|b| us <= *b).unwrap_or(BUCKETS_US.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in BUCKETS_US.iter().enumerate() {
            cumulative += self.buckets[i].load(Relaxed);
            let le = *b as f64 / 1e6;
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}");
        }
        cumulative += self.buckets[BUCKETS_US.len()].load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_us.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count.load(Relaxed));
    }
}

/// Highest Kafka API key we keep a histogram for (keys above are counted in the last slot).
const API_SLOTS: usize = 96;

pub struct Metrics {
    request_latency: Vec<Histogram>,
    pub fsync_latency: Histogram,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Of `bytes_out`, those sent by io_uring zero-copy send (`socket.send.zerocopy`).
    pub zerocopy_bytes_out: AtomicU64,
    pub messages_in: AtomicU64,
    /// Partition appends (one per partition per Produce request): the unit of per-batch cost.
    pub appends: AtomicU64,
    pub messages_out: AtomicU64,
    pub connections: AtomicI64,
    pub connections_rejected: AtomicU64,
    pub frames_rejected: AtomicU64,
    log_end_offsets: Mutex<BTreeMap<TopicPartition, Arc<AtomicI64>>>,
    /// Where each partition's next produced batch should land (`api::landing`): published by
    /// the owners like the log-end gauges, read by every connection's reader.
    pub landing: LandingHints,
    /// The metadata log offset this broker has applied.
    pub metadata_applied: AtomicU64,
    cluster: Mutex<Option<ClusterSources>>,
    /// Bytes followers fetched from this broker's leaders / this broker's followers appended.
    pub replication_bytes_out: AtomicU64,
    pub replication_bytes_in: AtomicU64,
    pub isr_shrinks: AtomicU64,
    pub isr_expands: AtomicU64,
    /// Follower appends that failed (a full or failing disk): the follower stops acknowledging
    /// and its leader drops it from the ISR.
    pub replica_append_failures: AtomicU64,
    /// Per shard: (partitions led, of them under-replicated, largest follower lag in offsets).
    replication: Mutex<BTreeMap<usize, ReplicationGauges>>,
    /// Partitions of the cluster without a leader (as this broker's metadata says).
    pub offline_partitions: AtomicU64,
    /// Transactions this broker's coordinator committed, aborted, and aborted on timeout.
    pub txn_committed: AtomicU64,
    pub txn_aborted: AtomicU64,
    pub txn_timed_out: AtomicU64,
    /// Transactions open now on this broker's coordinator (a gauge).
    pub txn_open: AtomicI64,
    /// Fetch sessions cached (Kafka's NumIncrementalFetchSessions), sessions evicted, and
    /// incremental fetch requests answered.
    pub fetch_sessions: AtomicI64,
    pub fetch_session_evictions: AtomicU64,
    pub incremental_fetches: AtomicU64,
    /// What clients push (KIP-714), exposed with the broker's own metrics.
    pub telemetry: crate::telemetry::Telemetry,
    /// Answers that carried a client-quota throttle, and the milliseconds they asked for.
    pub produce_throttled: AtomicU64,
    pub produce_throttle_ms: AtomicU64,
    pub fetch_throttled: AtomicU64,
    pub fetch_throttle_ms: AtomicU64,
}

/// What one shard reports of the partitions it leads.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReplicationGauges {
    pub leaders: u64,
    pub under_replicated: u64,
    pub under_min_isr: u64,
    pub max_follower_lag: i64,
}

/// Where the cluster gauges are read from at render time.
#[derive(Clone)]
pub struct ClusterSources {
    pub controller: Option<Arc<riptide_quorum::ControllerMetrics>>,
    pub agent: Option<Arc<riptide_quorum::BrokerAgent>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            request_latency: (0..API_SLOTS).map(|_| Histogram::default()).collect(),
            fsync_latency: Histogram::default(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            zerocopy_bytes_out: AtomicU64::new(0),
            messages_in: AtomicU64::new(0),
            appends: AtomicU64::new(0),
            messages_out: AtomicU64::new(0),
            connections: AtomicI64::new(0),
            connections_rejected: AtomicU64::new(0),
            frames_rejected: AtomicU64::new(0),
            log_end_offsets: Mutex::new(BTreeMap::new()),
            landing: LandingHints::default(),
            metadata_applied: AtomicU64::new(0),
            cluster: Mutex::new(None),
            replication_bytes_out: AtomicU64::new(0),
            replication_bytes_in: AtomicU64::new(0),
            isr_shrinks: AtomicU64::new(0),
            isr_expands: AtomicU64::new(0),
            replica_append_failures: AtomicU64::new(0),
            replication: Mutex::new(BTreeMap::new()),
            offline_partitions: AtomicU64::new(0),
            txn_committed: AtomicU64::new(0),
            txn_aborted: AtomicU64::new(0),
            txn_timed_out: AtomicU64::new(0),
            txn_open: AtomicI64::new(0),
            fetch_sessions: AtomicI64::new(0),
            fetch_session_evictions: AtomicU64::new(0),
            incremental_fetches: AtomicU64::new(0),
            telemetry: Default::default(),
            produce_throttled: AtomicU64::new(0),
            produce_throttle_ms: AtomicU64::new(0),
            fetch_throttled: AtomicU64::new(0),
            fetch_throttle_ms: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    pub fn record_request(&self, api_key: i16, us: u64) {
        let slot = usize::try_from(api_key).unwrap_or(API_SLOTS - 1).min(API_SLOTS - 1);
        self.request_latency[slot].record_us(us);
    }

    /// The gauge a partition owner updates after each append; created on first use.
    pub fn log_end_offset_gauge(&self, topic: &str, partition: i32) -> Arc<AtomicI64> {
        let mut map = self.log_end_offsets.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(TopicPartition::new(topic, partition)).or_default().clone()
    }

    pub fn set_replication(&self, shard: usize, g: ReplicationGauges) {
        self.replication.lock().unwrap_or_else(|e| e.into_inner()).insert(shard, g);
    }

    /// The gauges summed over shards (lag: the largest).
    pub fn replication(&self) -> ReplicationGauges {
        let map = self.replication.lock().unwrap_or_else(|e| e.into_inner());
        map.values().fold(ReplicationGauges::default(), |a, g| ReplicationGauges {
            leaders: a.leaders + g.leaders,
            under_replicated: a.under_replicated + g.under_replicated,
            under_min_isr: a.under_min_isr + g.under_min_isr,
            max_follower_lag: a.max_follower_lag.max(g.max_follower_lag),
        })
    }

    pub fn set_metadata_applied(&self, offset: u64) {
        self.metadata_applied.store(offset, Relaxed);
    }

    pub fn set_cluster_sources(&self, sources: ClusterSources) {
        *self.cluster.lock().unwrap_or_else(|e| e.into_inner()) = Some(sources);
    }

    fn render_cluster(&self, out: &mut String) {
        let applied = self.metadata_applied.load(Relaxed);
        let _ = writeln!(
            out,
            "# TYPE riptide_metadata_applied_offset gauge\nriptide_metadata_applied_offset {applied}"
        );
        let Some(src) = self.cluster.lock().unwrap_or_else(|e| e.into_inner()).clone() else { return };
        if let Some(a) = &src.agent {
            let lag = a.leader_applied.load(Relaxed).saturating_sub(applied);
            let _ = writeln!(out, "# TYPE riptide_metadata_lag gauge\nriptide_metadata_lag {lag}");
            let _ = writeln!(
                out,
                "# TYPE riptide_broker_fenced gauge\nriptide_broker_fenced {}",
                u8::from(a.is_fenced())
            );
        }
        if let Some(c) = &src.controller {
            let gauges = [
                ("riptide_controller_active", "gauge", u64::from(c.active.load(Relaxed))),
                ("riptide_controller_elections_total", "counter", c.elections.load(Relaxed)),
                ("riptide_controller_fenced_brokers", "gauge", c.fenced_brokers.load(Relaxed)),
                // Fencings by cause, and those that hit a live broker (unfenced, same epoch).
                ("riptide_controller_fences_session_total", "counter", c.fences_session.load(Relaxed)),
                ("riptide_controller_fences_disconnect_total", "counter", c.fences_disconnect.load(Relaxed)),
                ("riptide_controller_unfences_live_total", "counter", c.unfences_live.load(Relaxed)),
                ("riptide_controller_metadata_last_offset", "gauge", c.last_log_index.load(Relaxed)),
                ("riptide_controller_metadata_applied_offset", "gauge", c.last_applied.load(Relaxed)),
                // The balancer's, as the active controller last saw them.
                ("riptide_reassignments_in_progress", "gauge", c.moves_in_progress.load(Relaxed)),
                ("riptide_reassignment_bytes_left", "gauge", c.move_bytes_left.load(Relaxed)),
                ("riptide_balancer_moves_started_total", "counter", c.moves_started.load(Relaxed)),
                ("riptide_reassignments_completed_total", "counter", c.moves_completed.load(Relaxed)),
                ("riptide_reassignments_cancelled_total", "counter", c.moves_cancelled.load(Relaxed)),
                ("riptide_balancer_replica_spread", "gauge", c.replica_spread.load(Relaxed)),
                ("riptide_balancer_leader_spread", "gauge", c.leader_spread.load(Relaxed)),
            ];
            for (name, kind, v) in gauges {
                let _ = writeln!(out, "# TYPE {name} {kind}\n{name} {v}");
            }
            let imbalance = c.bytes_imbalance_milli.load(Relaxed) as f64 / 1000.0;
            let _ = writeln!(
                out,
                "# TYPE riptide_balancer_bytes_in_imbalance gauge\nriptide_balancer_bytes_in_imbalance {imbalance}"
            );
        }
    }

    pub fn forget_topic(&self, topic: &str) {
        let mut map = self.log_end_offsets.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|tp, _| tp.topic != topic);
    }

    /// A transaction completed (its markers and Complete state are written).
    pub fn txn_completed(&self, committed: bool) {
        let c = if committed { &self.txn_committed } else { &self.txn_aborted };
        c.fetch_add(1, Relaxed);
    }

    pub fn txn_timed_out(&self) {
        self.txn_timed_out.fetch_add(1, Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        out.push_str("# TYPE riptide_request_latency_seconds histogram\n");
        for (key, h) in self.request_latency.iter().enumerate() {
            if h.count.load(Relaxed) == 0 {
                continue;
            }
            let api = api_name(key as i16);
            h.render(&mut out, "riptide_request_latency_seconds", &format!("api=\"{api}\""));
        }
        out.push_str("# TYPE riptide_fsync_latency_seconds histogram\n");
        self.fsync_latency.render(&mut out, "riptide_fsync_latency_seconds", "");
        let counters = [
            ("riptide_bytes_in_total", &self.bytes_in),
            ("riptide_bytes_out_total", &self.bytes_out),
            ("riptide_zerocopy_bytes_out_total", &self.zerocopy_bytes_out),
            ("riptide_messages_in_total", &self.messages_in),
            ("riptide_partition_appends_total", &self.appends),
            ("riptide_messages_out_total", &self.messages_out),
            ("riptide_connections_rejected_total", &self.connections_rejected),
            ("riptide_frames_rejected_total", &self.frames_rejected),
            ("riptide_replication_bytes_out_total", &self.replication_bytes_out),
            ("riptide_replication_bytes_in_total", &self.replication_bytes_in),
            ("riptide_isr_shrinks_total", &self.isr_shrinks),
            ("riptide_isr_expands_total", &self.isr_expands),
            ("riptide_replica_append_failures_total", &self.replica_append_failures),
            ("riptide_transactions_committed_total", &self.txn_committed),
            ("riptide_transactions_aborted_total", &self.txn_aborted),
            ("riptide_transactions_timed_out_total", &self.txn_timed_out),
            ("riptide_fetch_session_evictions_total", &self.fetch_session_evictions),
            ("riptide_incremental_fetches_total", &self.incremental_fetches),
            ("riptide_produce_throttled_total", &self.produce_throttled),
            ("riptide_produce_throttle_ms_total", &self.produce_throttle_ms),
            ("riptide_fetch_throttled_total", &self.fetch_throttled),
            ("riptide_fetch_throttle_ms_total", &self.fetch_throttle_ms),
        ];
        for (name, c) in counters {
            let _ = writeln!(out, "# TYPE {name} counter\n{name} {}", c.load(Relaxed));
        }
        let _ = writeln!(
            out,
            "# TYPE riptide_connections gauge\nriptide_connections {}",
            self.connections.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# TYPE riptide_transactions_open gauge\nriptide_transactions_open {}",
            self.txn_open.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# TYPE riptide_fetch_sessions gauge\nriptide_fetch_sessions {}",
            self.fetch_sessions.load(Relaxed)
        );
        // Memory of the direct-append stages (bounded by log.direct.memory.bytes plus 16 KiB
        // per direct-mode partition).
        let _ = writeln!(
            out,
            "# TYPE riptide_direct_stage_bytes gauge\nriptide_direct_stage_bytes {}",
            riptide_engine::io::direct::staged_bytes()
        );
        // Memory of the tail cache of filled stages and their free list (log.direct.cache.bytes
        // plus at most 8 free stage buffers).
        let _ = writeln!(
            out,
            "# TYPE riptide_direct_cache_bytes gauge\nriptide_direct_cache_bytes {}",
            riptide_engine::io::direct::cache_bytes()
        );
        // Produced record sets received straight into landing buffers (`api::landing`): taken
        // over by a direct stage, or copied after all (a stale phase hint).
        let _ = writeln!(
            out,
            "# TYPE riptide_produce_landed_bytes_total counter\n\
             riptide_produce_landed_bytes_total{{outcome=\"adopted\"}} {}\n\
             riptide_produce_landed_bytes_total{{outcome=\"copied\"}} {}",
            riptide_engine::io::direct::landing::adopted_bytes(),
            riptide_engine::io::direct::landing::copied_bytes()
        );
        self.render_cluster(&mut out);
        let r = self.replication();
        let gauges = [
            ("riptide_leader_partitions", r.leaders as i64),
            ("riptide_under_replicated_partitions", r.under_replicated as i64),
            ("riptide_under_min_isr_partitions", r.under_min_isr as i64),
            ("riptide_offline_partitions", self.offline_partitions.load(Relaxed) as i64),
            ("riptide_max_follower_lag", r.max_follower_lag),
        ];
        for (name, v) in gauges {
            let _ = writeln!(out, "# TYPE {name} gauge\n{name} {v}");
        }
        out.push_str("# TYPE riptide_log_end_offset gauge\n");
        let map = self.log_end_offsets.lock().unwrap_or_else(|e| e.into_inner());
        for (TopicPartition { topic, partition }, leo) in map.iter() {
            let _ = writeln!(
                out,
                "riptide_log_end_offset{{topic=\"{topic}\",partition=\"{partition}\"}} {}",
                leo.load(Relaxed)
            );
        }
        drop(map);
        self.telemetry.render(&mut out);
        out
    }
}

/// Serves `GET /metrics` until the process exits. Plain blocking HTTP/1.0 on its own thread:
/// a scrape every few seconds does not deserve a place in the shards' loops. Returns the bound
/// address (port 0 asks the kernel for one).
pub fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<SocketAddr> {
    let listener = crate::bind::bind_retrying(addr)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut req = [0u8; 1024];
            let n = stream.read(&mut req).unwrap_or(0);
            let head = String::from_utf8_lossy(&req[..n]);
            let (status, body) = if head.starts_with("GET /metrics") {
                ("200 OK", metrics.render())
            } else {
                ("404 Not Found", "try /metrics\n".to_string())
            };
            let _ = write!(
                stream,
                "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    })?;
    Ok(bound)
}

/// Kafka's name of an API key (`Produce`, `Fetch`, ...), as the metric label.
pub fn api_name(key: i16) -> String {
    kafka_protocol::messages::ApiKey::try_from(key)
        .map_or_else(|_| format!("unknown_{key}"), |k| format!("{k:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.record_us(10);
        h.record_us(2_000);
        h.record_us(u64::MAX / 4);
        let mut s = String::new();
        h.render(&mut s, "x", "");
        assert!(s.contains("x_bucket{le=\"0.00005\"} 1"), "{s}");
        assert!(s.contains("x_bucket{le=\"0.0025\"} 2"), "{s}");
        assert!(s.contains("x_bucket{le=\"+Inf\"} 3"), "{s}");
        assert!(s.contains("x_count{} 3"), "{s}");
    }
}

/// Where each partition's next append goes in its active segment, kept by the partitions'
/// owners for every connection's reader: a landing buffer places the next batch at that
/// position's block phase so that the direct stage can take it over (`api::landing`). A hint:
/// a stale one costs a copy.
#[derive(Default)]
pub struct LandingHints {
    by_topic: Mutex<HashMap<String, HashMap<i32, Arc<AtomicU64>>>>,
}

/// Counts, when dropped, one more of a connection's Produce requests for a partition as done
/// with by the partition's owner (appended, refused or dropped): the connection's reader
/// then knows which of its pipelined requests a `LandingHints` point already includes.
pub struct LandingMark(pub Arc<AtomicU64>);

impl Drop for LandingMark {
    fn drop(&mut self) {
        // Release: after the owner's point store, which the reader reads after this count.
        self.0.fetch_add(1, std::sync::atomic::Ordering::Release);
    }
}

/// Set in a stored position (0: none).
const KNOWN: u64 = 1 << 32;

impl LandingHints {
    /// The cell a partition's owner updates (`store`), created on first use.
    pub fn cell(&self, topic: &str, partition: i32) -> Arc<AtomicU64> {
        let mut map = self.by_topic.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(topic.to_string()).or_default().entry(partition).or_default().clone()
    }

    /// Where `topic`-`partition`'s next batch goes in its segment, if its owner said.
    pub fn position(&self, topic: &str, partition: i32) -> Option<u32> {
        let map = self.by_topic.lock().unwrap_or_else(|e| e.into_inner());
        let stored = map.get(topic)?.get(&partition)?.load(Relaxed);
        (stored & KNOWN != 0).then_some(stored as u32)
    }

    /// Records a partition's append position (`Log::landing_position`; `None`: its log takes
    /// no landed batches).
    pub fn store(cell: &AtomicU64, position: Option<u32>) {
        cell.store(position.map_or(0, |p| KNOWN | u64::from(p)), Relaxed);
    }
}

#[cfg(test)]
mod landing_tests {
    use super::LandingHints;

    #[test]
    fn hints_say_nothing_until_an_owner_stores_a_position() {
        let hints = LandingHints::default();
        assert_eq!(hints.position("t", 0), None);
        let cell = hints.cell("t", 0);
        assert_eq!(hints.position("t", 0), None);
        LandingHints::store(&cell, Some(0));
        assert_eq!(hints.position("t", 0), Some(0));
        LandingHints::store(&cell, Some(u32::MAX));
        assert_eq!(hints.position("t", 0), Some(u32::MAX));
        LandingHints::store(&cell, None);
        assert_eq!(hints.position("t", 0), None);
        assert_eq!(hints.position("t", 1), None);
    }
}
