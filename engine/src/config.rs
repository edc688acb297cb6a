//! Per-partition log configuration (`LogConfig`) with Kafka's topic-config defaults, and the
//! choice of I/O backend. Values are plain numbers with their unit last in the name; `Log`
//! clamps them to what the on-disk format can express (see `LogConfig::sanitized`).

/// Which timestamp a batch carries once stored (Kafka's `message.timestamp.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampType {
    /// Keep the producer's timestamps.
    CreateTime,
    /// Overwrite the batch's max timestamp with the broker's clock at append.
    LogAppendTime,
}

/// Kernel I/O interface used for writes, reads on the engine's own paths and fdatasync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoBackend {
    /// io_uring when a probe ring can be created on this machine, otherwise `Std`.
    /// The environment variable `RIPTIDE_IO=std` forces `Std` (`RIPTIDE_IO=uring` forces `Uring`).
    Auto,
    /// io_uring (via the `io-uring` crate); opening fails if no ring can be created.
    Uring,
    /// Plain `pwrite`/`pread`/`fdatasync` system calls.
    Std,
    /// The simulated file system of `io::sim` installed on the opening thread (deterministic
    /// simulation tests only, with the `sim` feature; see `docs/ENGINE.md`).
    #[cfg(feature = "sim")]
    Sim,
}

/// How appends reach the active segment's file (`log.io`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoMode {
    /// Buffered writes through the page cache at each append.
    Buffered,
    /// Staged in memory and written with O_DIRECT at each sync (see `io/direct/mod.rs`). Only for
    /// logs that are synced before appends are acknowledged: until a sync, appended bytes
    /// live only in this process. Falls back to `Buffered` where O_DIRECT is refused.
    Direct,
}

impl IoMode {
    pub fn parse(s: &str) -> Option<IoMode> {
        match s {
            "buffered" => Some(IoMode::Buffered),
            "direct" => Some(IoMode::Direct),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            IoMode::Buffered => "buffered",
            IoMode::Direct => "direct",
        }
    }
}

/// Environment variable that sets the default append mode (`direct` or `buffered`), so that
/// a whole test suite can run in either.
pub const LOG_IO_ENV: &str = "RIPTIDE_LOG_IO";

/// The append mode `RIPTIDE_LOG_IO` names, if any.
pub fn io_mode_from_env() -> Option<IoMode> {
    static MODE: std::sync::OnceLock<Option<IoMode>> = std::sync::OnceLock::new();
    *MODE.get_or_init(|| std::env::var(LOG_IO_ENV).ok().and_then(|v| IoMode::parse(&v)))
}

/// Topic-level settings that govern one partition log.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// `segment.bytes`: roll the active segment before it would exceed this size.
    pub segment_bytes: u64,
    /// `segment.ms`: roll the active segment once its first batch is this old.
    pub segment_ms: i64,
    /// `segment.index.bytes`: size of each index file; a full index rolls the segment.
    pub segment_index_bytes: u32,
    /// `index.interval.bytes`: bytes of log between two sparse index entries.
    pub index_interval_bytes: u32,
    /// `retention.ms`: delete segments whose newest timestamp is older than this; -1 = forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete the oldest segments while the log is larger; -1 = no limit.
    pub retention_bytes: i64,
    /// `max.message.bytes`: the largest record batch accepted (whole batch, header included).
    pub max_message_bytes: u32,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `message.timestamp.before.max.ms`: how far in the past a CreateTime timestamp may be.
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: how far in the future a CreateTime timestamp may be.
    pub timestamp_after_max_ms: i64,
    /// `cleanup.policy` has `compact`: produced records without a key are refused.
    pub keys_required: bool,
    /// Kernel I/O interface.
    pub io: IoBackend,
    /// Buffered or direct appends.
    pub io_mode: IoMode,
    /// Direct mode: the most bytes staged in memory per active segment before a write.
    pub direct_stage_bytes: usize,
    /// `producer.id.expiration.ms`: a producer with no transaction open and no batch newer
    /// than this is forgotten (`Log::expire_producers`), as Kafka bounds producer state.
    pub producer_id_expiration_ms: i64,
}

/// Largest segment the format allows: positions in `.index` are signed 32-bit.
pub const SEGMENT_BYTES_MAX: u64 = i32::MAX as u64;
/// Smallest segment accepted (Kafka's lower bound for `segment.bytes` is 14 bytes; we
/// need room for at least one batch header).
pub const SEGMENT_BYTES_MIN: u64 = 61;
/// Smallest index file: room for a handful of entries.
pub const SEGMENT_INDEX_BYTES_MIN: u32 = 8 * 12;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            retention_ms: 604_800_000,
            retention_bytes: -1,
            max_message_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: i64::MAX,
            keys_required: false,
            io: IoBackend::Auto,
            io_mode: io_mode_from_env().unwrap_or(IoMode::Buffered),
            direct_stage_bytes: 1 << 20,
            producer_id_expiration_ms: 86_400_000,
        }
    }
}

impl LogConfig {
    /// A copy with every value clamped into the range the format and the engine support.
    pub fn sanitized(&self) -> LogConfig {
        let mut c = self.clone();
        c.segment_bytes = c.segment_bytes.clamp(SEGMENT_BYTES_MIN, SEGMENT_BYTES_MAX);
        c.segment_index_bytes = c.segment_index_bytes.max(SEGMENT_INDEX_BYTES_MIN);
        c.segment_ms = c.segment_ms.max(1);
        c.timestamp_before_max_ms = c.timestamp_before_max_ms.max(0);
        c.timestamp_after_max_ms = c.timestamp_after_max_ms.max(0);
        c
    }

    /// Entries that fit in one `.index` file (8 bytes each).
    pub fn offset_index_entries_max(&self) -> usize {
        (self.segment_index_bytes / 8) as usize
    }

    /// Entries that fit in one `.timeindex` file (12 bytes each).
    pub fn time_index_entries_max(&self) -> usize {
        (self.segment_index_bytes / 12) as usize
    }
}
