//! `riptide produce TOPIC`: one record per input line. A reader thread feeds lines (stdin
//! blocks, the runtime must not); records are batched per partition and sent pipelined, and a
//! partial batch goes out as soon as input pauses for `LINGER`, so interactive typing is
//! delivered at once. At the end every batch is acknowledged (per `--acks`) before the
//! per-partition summary is printed.

use riptide_model::Offset;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::json;

use riptide_client::{Acks, Compression, Delivery, ProduceRecord, Producer, ProducerConfig};

use super::output::{self, OutputFormat, Table};
use super::{connect, parse_key_value, CliError, CliResult, Conn};

pub const EXAMPLES: &str = concat!(
    "Examples:
  echo hello | riptide produce demo
  printf 'user1:clicked\\nuser2:viewed\\n' | riptide produce events --key-separator :
  riptide produce events --file events.txt --compression zstd --acks 1
  riptide produce events --header source=cli --header version=2 --partition 0
  seq 1 1000 | riptide produce numbers --rate 100",
    super::exit_codes!()
);

/// How long input may pause before a partial batch is sent.
const LINGER: Duration = Duration::from_millis(5);
/// Lines read ahead of the producer.
const LINES_QUEUED_MAX: usize = 10_000;

#[derive(clap::Args, Debug)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Topic to write to (created if the broker auto-creates topics).
    pub topic: String,
    /// Read records from this file instead of stdin.
    #[arg(short, long)]
    pub file: Option<PathBuf>,
    /// Split each line at the first SEP into key and value (lines without SEP have no key).
    #[arg(short, long, value_name = "SEP")]
    pub key_separator: Option<String>,
    /// Header for every record, key=value (repeatable).
    #[arg(short = 'H', long = "header", value_parser = parse_key_value)]
    pub headers: Vec<(String, String)>,
    /// Write every record to this partition instead of partitioning by key.
    #[arg(short, long)]
    pub partition: Option<i32>,
    /// Acknowledgements to wait for: 0, 1 or all.
    #[arg(long, default_value = "all", value_parser = ["0", "1", "all", "-1"])]
    pub acks: String,
    /// Batch compression.
    #[arg(short = 'z', long, default_value = "none", value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    pub compression: String,
    /// At most this many records per second.
    #[arg(long, value_name = "RECORDS_PER_SEC")]
    pub rate: Option<f64>,
}

pub async fn run(args: ProduceArgs) -> CliResult {
    let acks: Acks = args.acks.parse()?;
    let compression: Compression = args.compression.parse()?;
    if args.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
        return Err(CliError::usage("--rate must be a positive number of records per second"));
    }
    if args.key_separator.as_deref() == Some("") {
        return Err(CliError::usage("--key-separator must not be empty"));
    }
    let input: Box<dyn BufRead + Send> = match &args.file {
        Some(path) => Box::new(std::io::BufReader::new(
            std::fs::File::open(path).map_err(|e| CliError::usage(format!("{}: {e}", path.display())))?,
        )),
        None => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    let lines = spawn_reader(input);
    let client = connect(&args.conn).await?;
    let config = ProducerConfig { acks, compression, ..ProducerConfig::default() };
    let mut producer = Producer::new(&client, &args.topic, config).await?;
    let headers: Vec<(String, Option<Bytes>)> =
        args.headers.iter().map(|(k, v)| (k.clone(), Some(Bytes::from(v.clone())))).collect();
    let started = Instant::now();
    let mut sent: u64 = 0;
    let mut buffered = false;
    loop {
        let line = if buffered {
            match compio::time::timeout(LINGER, lines.recv_async()).await {
                Ok(line) => line,
                Err(_) => {
                    producer.send_buffered().await?;
                    buffered = false;
                    continue;
                }
            }
        } else {
            lines.recv_async().await
        };
        let line = match line {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => return Err(CliError::usage(format!("reading input: {e}"))),
            Err(_) => break, // end of input
        };
        if let Some(rate) = args.rate {
            let due = started + Duration::from_secs_f64(sent as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                producer.send_buffered().await?;
                compio::time::sleep(wait).await;
            }
        }
        let record = to_record(&line, args.key_separator.as_deref(), &headers);
        producer.send(args.partition, record).await?;
        buffered = true;
        sent += 1;
    }
    let deliveries = producer.flush().await?;
    summarize(args.conn.output, &args.topic, &deliveries)
}

/// Reads lines on a thread; each is sent without its line ending. The channel closes at EOF.
fn spawn_reader(mut input: Box<dyn BufRead + Send>) -> flume::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = flume::bounded(LINES_QUEUED_MAX);
    std::thread::spawn(move || loop {
        let mut line = Vec::new();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                if tx.send(Ok(line)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    });
    rx
}

fn to_record(line: &[u8], separator: Option<&str>, headers: &[(String, Option<Bytes>)]) -> ProduceRecord {
    let (key, value) = match separator.and_then(|sep| split_once(line, sep.as_bytes())) {
        Some((k, v)) => (Some(Bytes::copy_from_slice(k)), Bytes::copy_from_slice(v)),
        None => (None, Bytes::copy_from_slice(line)),
    };
    let timestamp_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    ProduceRecord { key, value: Some(value), headers: headers.to_vec(), timestamp_ms }
}

fn split_once<'a>(line: &'a [u8], sep: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let at = line.windows(sep.len()).position(|w| w == sep)?;
    Some((&line[..at], &line[at + sep.len()..]))
}

struct PartitionSummary {
    records: usize,
    first_offset: Option<i64>,
    last_offset: Option<i64>,
}

fn summarize(format: OutputFormat, topic: &str, deliveries: &[Delivery]) -> CliResult {
    let mut by_partition: BTreeMap<i32, PartitionSummary> = BTreeMap::new();
    for d in deliveries {
        let s = by_partition.entry(d.partition).or_insert(PartitionSummary {
            records: 0,
            first_offset: None,
            last_offset: None,
        });
        s.records += d.records;
        if d.base_offset >= Offset(0) {
            let last = d.base_offset.0 + d.records as i64 - 1;
            s.first_offset = Some(s.first_offset.map_or(d.base_offset.0, |f| f.min(d.base_offset.0)));
            s.last_offset = Some(s.last_offset.map_or(last, |l| l.max(last)));
        }
    }
    let total: usize = by_partition.values().map(|s| s.records).sum();
    match format {
        OutputFormat::Json => output::print_json(&json!({
            "topic": topic,
            "records": total,
            "partitions": by_partition.iter().map(|(p, s)| json!({
                "partition": p, "records": s.records,
                "first_offset": s.first_offset, "last_offset": s.last_offset,
            })).collect::<Vec<_>>(),
        }))?,
        OutputFormat::Table => {
            let mut t = Table::new(&["PARTITION", "RECORDS", "FIRST-OFFSET", "LAST-OFFSET"]);
            let show = |o: Option<i64>| o.map_or("-".to_string(), |v| v.to_string());
            for (p, s) in &by_partition {
                t.row(vec![p.to_string(), s.records.to_string(), show(s.first_offset), show(s.last_offset)]);
            }
            output::print(&t.render())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_the_first_separator() {
        let r = to_record(b"user1::a::b", Some("::"), &[]);
        assert_eq!(r.key.as_deref(), Some(&b"user1"[..]));
        assert_eq!(r.value.as_deref(), Some(&b"a::b"[..]));
        let r = to_record(b"no separator", Some(":"), &[]);
        assert_eq!(r.key, None);
        assert_eq!(r.value.as_deref(), Some(&b"no separator"[..]));
    }
}
