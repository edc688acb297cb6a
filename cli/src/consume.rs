//! `riptide consume TOPIC`: prints records and follows new ones until interrupted (Ctrl-C),
//! `--count` records were printed, or (`--exit-at-end`) the end of every partition is
//! reached. Without `--group` it reads the chosen partitions directly from `--from`; with
//! `--group` it joins the consumer group (range assignor), starts from the group's committed
//! offsets (`--from` applies where there are none), commits what it printed after every
//! fetch, and leaves the group on exit so the others rebalance at once.

use riptide_model::Offset;
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use riptide_client::{
    join_all, Client, ConsumedRecord, FetchOptions, FetchedPartition, GroupConfig, GroupMember, KafkaCode,
    OffsetSpec, TopicInfo, TopicPartition,
};

use super::output::{text, OutputFormat};
use super::{connect, CliError, CliResult, Conn};

pub const EXAMPLES: &str = concat!(
    "Examples:
  riptide consume events                       # follow new records
  riptide consume events --from beginning -n 10
  riptide consume events --from 42 --partition 0 --exit-at-end
  riptide consume events --from @1700000000000 # records since a time (ms since the epoch)
  riptide consume events --from @-15m          # records of the last 15 minutes
  riptide consume events --group billing --format json",
    super::exit_codes!()
);

/// How one record is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RecordFormat {
    /// The value only, one per line.
    Value,
    /// One JSON object per line: topic, partition, offset, timestamp, key, headers, value.
    Json,
}

#[derive(clap::Args, Debug)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Topic to read.
    pub topic: String,
    /// Where to start: beginning, end, an offset, @MS (timestamp in ms since the epoch) or
    /// @-DURATION (e.g. @-30s, @-15m, @-2h, @-1d). Default: end; with --group, the committed
    /// offsets first.
    #[arg(short, long, allow_hyphen_values = true)]
    pub from: Option<String>,
    /// Consume as a member of this consumer group, committing offsets.
    #[arg(short, long)]
    pub group: Option<String>,
    /// Stop after this many records.
    #[arg(short = 'n', long)]
    pub count: Option<u64>,
    /// Record format (default: json with --output json, else value).
    #[arg(long, value_enum)]
    pub format: Option<RecordFormat>,
    /// Only these partitions (repeatable; not with --group).
    #[arg(short, long = "partition")]
    pub partitions: Vec<i32>,
    /// Stop at the end of the partitions instead of following new records.
    #[arg(short, long)]
    pub exit_at_end: bool,
}

/// Where reading starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Spec(OffsetSpec),
    Offset(i64),
}

pub fn parse_start(s: &str, now_ms: i64) -> Result<Start, String> {
    match s {
        "beginning" | "earliest" | "start" => return Ok(Start::Spec(OffsetSpec::Earliest)),
        "end" | "latest" => return Ok(Start::Spec(OffsetSpec::Latest)),
        _ => {}
    }
    if let Some(rest) = s.strip_prefix("@-") {
        let (number, unit) = rest.split_at(rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len()));
        let n: i64 = number.parse().map_err(|_| format!("bad duration in {s:?}"))?;
        let unit_ms = match unit {
            "ms" => 1,
            "s" | "" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(format!("bad duration unit in {s:?} (ms, s, m, h, d)")),
        };
        return Ok(Start::Spec(OffsetSpec::Timestamp(now_ms - n * unit_ms)));
    }
    if let Some(ms) = s.strip_prefix('@') {
        let ms: i64 = ms.parse().map_err(|_| format!("bad timestamp in {s:?} (ms since the epoch)"))?;
        return Ok(Start::Spec(OffsetSpec::Timestamp(ms)));
    }
    match s.parse::<i64>() {
        Ok(offset) if offset >= 0 => Ok(Start::Offset(offset)),
        _ => Err(format!("--from must be beginning, end, an offset, @MS or @-DURATION, not {s:?}")),
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Consumer state shared by the plain and the group modes.
struct Reader<'c> {
    client: &'c Client,
    topic: TopicInfo,
    format: RecordFormat,
    remaining: Option<u64>,
    options: FetchOptions,
    positions: BTreeMap<i32, Offset>,
    /// With --exit-at-end: the end offsets to reach.
    ends: Option<BTreeMap<i32, Offset>>,
    stop: Rc<Cell<bool>>,
}

pub async fn run(args: ConsumeArgs) -> CliResult {
    let start = match &args.from {
        Some(s) => Some(parse_start(s, now_ms()).map_err(CliError::usage)?),
        None => None,
    };
    if args.group.is_some() && !args.partitions.is_empty() {
        return Err(CliError::usage(
            "--partition cannot be combined with --group (the group assigns partitions)",
        ));
    }
    if args.count == Some(0) {
        return Ok(());
    }
    let format = args.format.unwrap_or(match args.conn.output {
        OutputFormat::Json => RecordFormat::Json,
        OutputFormat::Table => RecordFormat::Value,
    });
    let client = connect(&args.conn).await?;
    let topic = client.topic(&args.topic).await?;
    let stop = Rc::new(Cell::new(false));
    let stop_on_signal = stop.clone();
    let _signal = compio::runtime::spawn(async move {
        if compio::signal::ctrl_c().await.is_ok() {
            stop_on_signal.set(true);
        }
    });
    let mut reader = Reader {
        client: &client,
        topic,
        format,
        remaining: args.count,
        options: FetchOptions::default(),
        positions: BTreeMap::new(),
        ends: None,
        stop,
    };
    match &args.group {
        None => {
            let partitions = reader.choose_partitions(&args.partitions)?;
            let start = start.unwrap_or(Start::Spec(OffsetSpec::Latest));
            reader.positions = reader.resolve(&partitions, start).await?;
            if args.exit_at_end {
                reader.ends =
                    Some(client.list_offsets(&reader.topic, &partitions, OffsetSpec::Latest).await?);
            }
            while reader.round().await? {}
            Ok(())
        }
        Some(group) => consume_in_group(&mut reader, group, start, args.exit_at_end).await,
    }
}

async fn consume_in_group(
    reader: &mut Reader<'_>,
    group: &str,
    start: Option<Start>,
    exit_at_end: bool,
) -> CliResult {
    let client = reader.client;
    let mut member =
        GroupMember::join(client, GroupConfig::new(group), &[reader.topic.name.as_str()]).await?;
    let fallback = start.unwrap_or(Start::Spec(OffsetSpec::Latest));
    'generation: loop {
        reader.assign(&member, group, fallback, exit_at_end).await?;
        // Like the Java consumer, commit every assigned partition's position on the first
        // round, including partitions that were only positioned by --from.
        let mut committed: BTreeMap<i32, Offset> = BTreeMap::new();
        loop {
            let more = if reader.positions.is_empty() {
                compio::time::sleep(Duration::from_millis(200)).await;
                !reader.stop.get()
            } else {
                reader.round().await?
            };
            let progress: BTreeMap<TopicPartition, Offset> = reader
                .positions
                .iter()
                .filter(|(p, o)| committed.get(p) != Some(o))
                .map(|(p, o)| (TopicPartition::new(reader.topic.name.as_str(), *p), *o))
                .collect();
            if !progress.is_empty() {
                member.commit(&progress).await?;
                committed = reader.positions.clone();
            }
            if !more {
                break 'generation;
            }
            if member.heartbeat_if_due().await? {
                member.rejoin().await?;
                continue 'generation;
            }
        }
    }
    member.leave().await?;
    Ok(())
}

impl Reader<'_> {
    fn choose_partitions(&self, wanted: &[i32]) -> Result<Vec<i32>, CliError> {
        let all: Vec<i32> = self.topic.partitions.iter().map(|p| p.partition).collect();
        if wanted.is_empty() {
            return Ok(all);
        }
        for p in wanted {
            if !all.contains(p) {
                return Err(CliError::failed(format!(
                    "{}/{p}: UNKNOWN_TOPIC_OR_PARTITION (3): the topic has partitions {}",
                    self.topic.name,
                    super::output::list(&all)
                )));
            }
        }
        let set: BTreeSet<i32> = wanted.iter().copied().collect();
        Ok(set.into_iter().collect())
    }

    /// Start offsets for `partitions` from `start`; explicit offsets are clamped into the log.
    async fn resolve(&self, partitions: &[i32], start: Start) -> Result<BTreeMap<i32, Offset>, CliError> {
        if partitions.is_empty() {
            return Ok(BTreeMap::new());
        }
        let topic = &self.topic;
        match start {
            Start::Spec(OffsetSpec::Timestamp(ms)) => {
                let found = self.client.list_offsets(topic, partitions, OffsetSpec::Timestamp(ms)).await?;
                let ends = self.client.list_offsets(topic, partitions, OffsetSpec::Latest).await?;
                Ok(found
                    .into_iter()
                    .map(|(p, o)| {
                        (p, if o < Offset(0) { ends.get(&p).copied().unwrap_or(Offset(0)) } else { o })
                    })
                    .collect())
            }
            Start::Spec(spec) => Ok(self.client.list_offsets(topic, partitions, spec).await?),
            Start::Offset(offset) => {
                let starts = self.client.list_offsets(topic, partitions, OffsetSpec::Earliest).await?;
                let ends = self.client.list_offsets(topic, partitions, OffsetSpec::Latest).await?;
                Ok(partitions
                    .iter()
                    .map(|p| {
                        let lo = starts.get(p).copied().unwrap_or(Offset(0));
                        let hi = ends.get(p).copied().unwrap_or(lo).max(lo);
                        (*p, Offset(offset).clamp(lo, hi))
                    })
                    .collect())
            }
        }
    }

    /// Takes this member's partitions of our topic, from committed offsets or `fallback`.
    async fn assign(
        &mut self,
        member: &GroupMember<'_>,
        group: &str,
        fallback: Start,
        exit_at_end: bool,
    ) -> Result<(), CliError> {
        self.topic = self.client.topic(&self.topic.name).await?;
        let owned: Vec<i32> = member
            .assignment()
            .iter()
            .filter(|(t, _)| *t == self.topic.name)
            .flat_map(|(_, ps)| ps.iter().copied())
            .collect();
        let keys: Vec<TopicPartition> =
            owned.iter().map(|p| TopicPartition::new(self.topic.name.as_str(), *p)).collect();
        let committed = self.client.committed_offsets(group, Some(&keys)).await?;
        let missing: Vec<i32> = owned
            .iter()
            .copied()
            .filter(|p| !committed.contains_key(&TopicPartition::new(self.topic.name.as_str(), *p)))
            .collect();
        let mut positions = self.resolve(&missing, fallback).await?;
        for (tp, offset) in committed {
            positions.insert(tp.partition, offset);
        }
        self.positions = positions;
        if exit_at_end {
            self.ends = Some(self.client.list_offsets(&self.topic, &owned, OffsetSpec::Latest).await?);
        }
        Ok(())
    }

    fn at_end(&self) -> bool {
        match &self.ends {
            Some(ends) => self.positions.iter().all(|(p, o)| ends.get(p).is_none_or(|end| o >= end)),
            None => false,
        }
    }

    /// One fetch from every leader; prints what came back. `Ok(false)`: stop now.
    async fn round(&mut self) -> Result<bool, CliError> {
        if self.stop.get() || self.at_end() {
            return Ok(false);
        }
        let mut by_leader: BTreeMap<i32, Vec<(i32, Offset)>> = BTreeMap::new();
        for (p, offset) in &self.positions {
            if self.ends.as_ref().is_some_and(|e| e.get(p).is_some_and(|end| offset >= end)) {
                continue; // this partition is done
            }
            let leader = self.topic.leader_of(*p).unwrap_or(-1);
            by_leader.entry(leader).or_default().push((*p, *offset));
        }
        if by_leader.contains_key(&-1) {
            return self.refresh("a partition has no leader").await;
        }
        let name = self.topic.name.clone();
        let fetches = by_leader
            .iter()
            .map(|(leader, ps)| self.client.fetch(*leader, &name, ps, self.options))
            .collect();
        let mut answers = Vec::new();
        for result in join_all(fetches).await {
            answers.extend(result?);
        }
        for answer in answers {
            if !self.take(answer).await? {
                return Ok(false);
            }
        }
        Ok(!self.stop.get() && !self.at_end())
    }

    /// Handles one partition's answer. `Ok(false)`: `--count` is reached.
    async fn take(&mut self, answer: FetchedPartition) -> Result<bool, CliError> {
        let p = answer.partition;
        match KafkaCode(answer.error) {
            KafkaCode::NONE => {}
            KafkaCode::OFFSET_OUT_OF_RANGE => {
                let reset = self.client.list_offsets(&self.topic, &[p], OffsetSpec::Earliest).await?;
                eprintln!(
                    "riptide: {}/{p}: offset out of range, restarting at the log start",
                    self.topic.name
                );
                self.positions.extend(reset);
                return Ok(true);
            }
            code if code.is_retriable() => {
                self.refresh(&code.name()).await?;
                return Ok(true);
            }
            code => {
                return Err(riptide_client::Error::kafka(
                    code.0,
                    format!("fetch {}/{p}", self.topic.name),
                    None,
                )
                .into())
            }
        }
        if answer.incomplete {
            self.options.partition_max_bytes =
                (self.options.partition_max_bytes.saturating_mul(2)).min(256 << 20);
        }
        let mut out = std::io::stdout().lock();
        for record in &answer.records {
            if let Some(remaining) = self.remaining {
                if remaining == 0 {
                    break;
                }
                self.remaining = Some(remaining - 1);
            }
            print_record(&mut out, self.format, &self.topic.name, p, record)?;
            self.positions.insert(p, record.offset.plus(1));
        }
        out.flush()?;
        if self.remaining == Some(0) {
            return Ok(false);
        }
        if let Some(next) = answer.next_offset {
            let position = self.positions.entry(p).or_insert(next);
            *position = (*position).max(next);
        }
        Ok(true)
    }

    /// Re-reads the topic's metadata after a leader change, pausing briefly.
    async fn refresh(&mut self, why: &str) -> Result<bool, CliError> {
        compio::time::sleep(Duration::from_millis(200)).await;
        self.topic =
            self.client.topic(&self.topic.name).await.map_err(|e| CliError::from(e).with_context(why))?;
        Ok(!self.stop.get())
    }
}

impl CliError {
    fn with_context(mut self, why: &str) -> CliError {
        self.message = format!("{} (after {why})", self.message);
        self
    }
}

fn print_record(
    out: &mut impl Write,
    format: RecordFormat,
    topic: &str,
    partition: i32,
    record: &ConsumedRecord,
) -> std::io::Result<()> {
    match format {
        RecordFormat::Value => {
            out.write_all(record.value.as_deref().unwrap_or_default())?;
            out.write_all(b"\n")
        }
        RecordFormat::Json => {
            let headers: Map<String, Value> = record
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.as_deref().map_or(Value::Null, |v| json!(text(v)))))
                .collect();
            let line = json!({
                "topic": topic,
                "partition": partition,
                "offset": record.offset,
                "timestamp": record.timestamp_ms,
                "timestamp_type": if record.log_append_time { "LogAppendTime" } else { "CreateTime" },
                "key": record.key.as_deref().map(text),
                "headers": headers,
                "value": record.value.as_deref().map(text),
            });
            serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::other)?;
            out.write_all(b"\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_positions_parse() {
        assert_eq!(parse_start("beginning", 0), Ok(Start::Spec(OffsetSpec::Earliest)));
        assert_eq!(parse_start("end", 0), Ok(Start::Spec(OffsetSpec::Latest)));
        assert_eq!(parse_start("42", 0), Ok(Start::Offset(42)));
        assert_eq!(
            parse_start("@1700000000000", 0),
            Ok(Start::Spec(OffsetSpec::Timestamp(1_700_000_000_000)))
        );
        assert_eq!(parse_start("@-15m", 1_000_000), Ok(Start::Spec(OffsetSpec::Timestamp(100_000))));
        assert_eq!(parse_start("@-2s", 5_000), Ok(Start::Spec(OffsetSpec::Timestamp(3_000))));
        assert!(parse_start("-3", 0).is_err());
        assert!(parse_start("@-5y", 0).is_err());
        assert!(parse_start("yesterday", 0).is_err());
    }
}
