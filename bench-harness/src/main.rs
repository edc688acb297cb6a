//! `riptide-bench`: run OMB-style workloads against a Kafka-compatible broker (or a riptide
//! it starts itself), compare results, and measure the machine's limits.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use riptide_bench::baseline::{self, Baseline};
use riptide_bench::compare;
use riptide_bench::error::{Error, Result};
use riptide_bench::runner::{self, slug, RunOptions, Target};
use riptide_bench::side_by_side::{self, NamedBroker};
use riptide_bench::spawn::{riptide_binary, ChildBroker, RiptideOptions};
use riptide_bench::workload::{self, Rate, Workload};
use riptide_bench::{discard, driver, sweep};

#[derive(Parser)]
#[command(
    name = "riptide-bench",
    version,
    about = "Open-loop benchmark harness for Kafka-compatible brokers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run workloads; writes RESULTS/<workload>.json and SVG plots.
    #[command(
        after_help = "Examples:\n  riptide-bench run workloads/1-topic-1-partition-1kb-max.yaml --spawn\n  \
        riptide-bench run workloads/*.yaml --brokers localhost:9092 --duration 30\n  \
        riptide-bench run workloads/harness-ceiling-100b.yaml --discard"
    )]
    Run(Box<RunArgs>),
    /// Run workloads against two or more brokers in interleaved rounds (A, B, A, B, ...):
    /// medians, spreads and ratios as Markdown tables, with broker CPU-s per GB and peak RSS.
    #[command(after_help = "Brokers: NAME=spawn[:RIPTIDE_BINARY], NAME=discard, NAME=HOST:PORT[@PID].\n\
        Example:\n  riptide-bench compare-brokers workloads/small-batches-keyed-16p-30mbps.yaml \\\n    \
        --broker riptide=spawn --broker other=localhost:9093@$(pgrep -n other) --rounds 3 --duration 20")]
    CompareBrokers(Box<CompareBrokersArgs>),
    /// Put result files side by side: a Markdown table on stdout and a plot.
    Compare {
        #[arg(required = true)]
        results: Vec<PathBuf>,
        /// Where to write the comparison plot.
        #[arg(long, default_value = "compare.svg")]
        plot: PathBuf,
        /// Machine limits for the "of limit" column (default: the runs' own).
        #[arg(long)]
        baseline: Option<PathBuf>,
    },
    /// Measure the machine's limits: disk (fio, io_uring) and loopback (iperf3), if installed.
    Baseline {
        /// Directory for fio's scratch file (the disk the broker's data will be on).
        #[arg(long, default_value = "/tmp")]
        dir: PathBuf,
        #[arg(long, default_value_t = 5)]
        seconds: u32,
        #[arg(long, default_value = "baseline.json")]
        out: PathBuf,
    },
    /// Check workload files without running them.
    Check {
        #[arg(required = true)]
        workloads: Vec<PathBuf>,
    },
    /// Re-draw the plots of a result file.
    Plot {
        result: PathBuf,
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// A Kafka "broker" that answers Produce at once and keeps nothing (the harness's ceiling).
    DiscardBroker {
        #[arg(long, default_value = "127.0.0.1:9092")]
        listen: String,
        /// Partitions of topics nobody created.
        #[arg(long, default_value_t = 1)]
        partitions: u32,
        /// Write the bound address here (as `riptide serve --ready-file`) once listening.
        #[arg(long)]
        ready_file: Option<std::path::PathBuf>,
    },
}

#[derive(Args)]
struct RunArgs {
    #[arg(required = true)]
    workloads: Vec<PathBuf>,
    /// Brokers to measure, host:port[,host:port...].
    #[arg(short = 'b', long, conflicts_with_all = ["spawn", "discard"])]
    brokers: Option<String>,
    /// Start a local riptide (fresh data directory, free port) for each workload, stop it after.
    #[arg(long, conflicts_with = "discard")]
    spawn: bool,
    /// Measure against the built-in discard broker (producers only): the harness's ceiling.
    #[arg(long)]
    discard: bool,
    /// riptide binary for --spawn (default: $RIPTIDE_BIN, beside this binary, or on PATH).
    #[arg(long)]
    riptide_bin: Option<PathBuf>,
    /// riptide TOML config for --spawn.
    #[arg(long)]
    broker_config: Option<PathBuf>,
    /// riptide shards for --spawn.
    #[arg(long)]
    shards: Option<usize>,
    /// Extra `riptide serve` argument for --spawn (repeatable).
    #[arg(long = "broker-arg", allow_hyphen_values = true)]
    broker_args: Vec<String>,
    /// Parent of the spawned broker's data directory.
    #[arg(long, default_value = "/tmp")]
    data_dir: PathBuf,
    /// Results directory.
    #[arg(short, long, default_value = "results")]
    out: PathBuf,
    /// Worker threads (default: the number of cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Override the measured duration (seconds).
    #[arg(long)]
    duration: Option<f64>,
    /// Override the warm-up (seconds).
    #[arg(long)]
    warmup: Option<f64>,
    /// Override the producer rate (msgs/s over all producers; 0 = max).
    #[arg(long)]
    rate: Option<f64>,
    /// Override the replication factor of the topics the harness creates.
    #[arg(long)]
    replication_factor: Option<i16>,
    /// Override a sweep's max-rate probe (seconds).
    #[arg(long)]
    probe: Option<f64>,
    /// Machine limits (from `riptide-bench baseline`) to state results against.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Seconds consumers read on after the end to receive the last messages.
    #[arg(long, default_value_t = 2.0)]
    drain: f64,
    /// Leave the benchmark topics on the broker.
    #[arg(long)]
    keep_topics: bool,
    /// The broker's data directory, watched for segment deletions and compactions (marked on
    /// the time-series plot); a spawned riptide's is watched without asking.
    #[arg(long)]
    watch_dir: Option<PathBuf>,
    /// Seconds per soak window: latency percentiles are kept per window and the stability
    /// figure compares them.
    #[arg(long, default_value_t = 60)]
    window: u64,
    /// An OMB Kafka driver file (driver-kafka/*.yaml): its producerConfig, replicationFactor,
    /// topicConfig and bootstrap.servers apply to every workload.
    #[arg(long)]
    driver: Option<PathBuf>,
    /// PID of a broker given by --brokers, for its CPU time and peak memory.
    #[arg(long, requires = "brokers")]
    broker_pid: Option<u32>,
}

#[derive(Args)]
struct CompareBrokersArgs {
    #[arg(required = true)]
    workloads: Vec<PathBuf>,
    /// A broker to compare (repeat, two or more; the first is the base of the ratios).
    #[arg(long = "broker", required = true)]
    brokers: Vec<String>,
    /// Rounds: each workload runs this many times against each broker.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Reverse the brokers' order every other round (A, B, B, A, ...) so drift cancels.
    #[arg(long)]
    alternate: bool,
    /// Override the measured duration (seconds).
    #[arg(long)]
    duration: Option<f64>,
    /// Override the warm-up (seconds).
    #[arg(long)]
    warmup: Option<f64>,
    /// Results directory (each run's JSON, the tables and their JSON summary).
    #[arg(short, long, default_value = "results/compare-brokers")]
    out: PathBuf,
    /// Parent of spawned brokers' data directories.
    #[arg(long, default_value = "/tmp")]
    data_dir: PathBuf,
    /// riptide TOML config for the spawned riptides.
    #[arg(long)]
    broker_config: Option<PathBuf>,
    /// Worker threads (default: the number of cores).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(&args),
        Command::CompareBrokers(args) => compare_brokers(&args),
        Command::Compare { results, plot, baseline } => compare_cmd(&results, &plot, baseline.as_deref()),
        Command::Baseline { dir, seconds, out } => baseline_cmd(&dir, seconds, &out),
        Command::Check { workloads } => check(&workloads),
        Command::Plot { result, out } => plot(&result, &out),
        Command::DiscardBroker { listen, partitions, ready_file } => {
            discard::serve(&listen, partitions, ready_file.as_deref())
                .map_err(|e| Error::Process(format!("discard broker: {e}")))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("riptide-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn seconds(s: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| Error::Invalid(format!("--{what} must be a non-negative number of seconds")))
}

fn apply_overrides(mut w: Workload, a: &RunArgs) -> Result<Workload> {
    if let Some(d) = a.duration {
        w.duration = seconds(d, "duration")?;
    }
    if let Some(d) = a.warmup {
        w.warmup = seconds(d, "warmup")?;
    }
    if let Some(r) = a.rate {
        if !(r >= 0.0 && r.is_finite()) {
            return Err(Error::Invalid("--rate must be 0 (max) or a positive number of msgs/s".into()));
        }
        w.rate = if r == 0.0 { Rate::Max } else { Rate::PerSecond(r) };
        w.sweep = None;
    }
    if let Some(rf) = a.replication_factor {
        if !(1..=16).contains(&rf) {
            return Err(Error::Invalid("--replication-factor must be between 1 and 16".into()));
        }
        w.replication_factor = rf;
    }
    if let (Some(p), Some(s)) = (a.probe, w.sweep.as_mut()) {
        s.probe = seconds(p, "probe")?;
    }
    if a.discard && w.subscriptions_per_topic > 0 {
        eprintln!("{}: the discard broker serves producers only; running without consumers", w.name);
        w.subscriptions_per_topic = 0;
    }
    Ok(w)
}

fn run(a: &RunArgs) -> Result<()> {
    let baseline = a.baseline.as_deref().map(Baseline::load).transpose()?;
    let driver = a.driver.as_deref().map(driver::load).transpose()?;
    let mut notes = Vec::new();
    if let (Some(d), Some(path)) = (&driver, &a.driver) {
        notes.push(format!("OMB driver {} ({})", d.name, path.display()));
        if !d.ignored.is_empty() {
            notes.push(format!("driver settings not applied: {}", d.ignored.join(", ")));
        }
    }
    let loaded: Vec<(PathBuf, Workload)> = a
        .workloads
        .iter()
        .map(|p| {
            let mut w = workload::load(p)?;
            if let Some(d) = &driver {
                w = d.apply(w).map_err(|reason| Error::Workload { path: p.display().to_string(), reason })?;
            }
            Ok((p.clone(), apply_overrides(w, a)?))
        })
        .collect::<Result<_>>()?;
    let driver_brokers = driver.and_then(|d| d.bootstrap_servers);
    for (path, w) in &loaded {
        let (broker, target) = start_target(a, w, driver_brokers.as_deref())?;
        let options = RunOptions {
            threads: a.threads,
            baseline: baseline.clone(),
            keep_topics: a.keep_topics,
            drain: seconds(a.drain, "drain")?,
            notes: notes.clone(),
            window_seconds: a.window.max(1),
        };
        let file = path.display().to_string();
        eprintln!("{}: against {} ({})", w.name, target.label, target.brokers);
        let outcome = if w.sweep.is_some() {
            sweep::run(w, &file, &target, &options, &a.out).map(|_| ())
        } else {
            runner::run(w, &file, &target, &options).and_then(|r| {
                let written = runner::write_outputs(&r, &a.out, &slug(&w.name))?;
                eprint!("{}", runner::summary(&r));
                eprintln!(
                    "  wrote     {}",
                    written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                );
                Ok(())
            })
        };
        if let Some(b) = broker {
            b.stop();
        }
        outcome?;
    }
    Ok(())
}

fn start_target(
    a: &RunArgs,
    w: &Workload,
    driver_brokers: Option<&str>,
) -> Result<(Option<ChildBroker>, Target)> {
    let broker = if a.spawn {
        let binary = riptide_binary(a.riptide_bin.as_deref());
        Some(ChildBroker::riptide(&RiptideOptions {
            binary,
            config: a.broker_config.as_deref(),
            shards: a.shards,
            data_parent: &a.data_dir,
            extra_args: &a.broker_args,
        })?)
    } else if a.discard {
        Some(ChildBroker::discard(w.partitions_per_topic, &a.data_dir)?)
    } else {
        None
    };
    let target = match &broker {
        Some(b) => Target {
            brokers: b.addr.clone(),
            label: b.label.clone(),
            broker_pid: Some(b.pid()),
            data_dir: a.watch_dir.clone().or_else(|| b.data_dir().map(Path::to_path_buf)),
        },
        None => {
            let brokers = a.brokers.as_deref().or(driver_brokers).unwrap_or("localhost:9092").to_string();
            Target {
                label: brokers.clone(),
                brokers,
                broker_pid: a.broker_pid,
                data_dir: a.watch_dir.clone(),
            }
        }
    };
    Ok((broker, target))
}

fn compare_brokers(a: &CompareBrokersArgs) -> Result<()> {
    let brokers: Vec<NamedBroker> = a
        .brokers
        .iter()
        .map(|b| side_by_side::parse_broker(b).map_err(|e| Error::Invalid(format!("--broker {e}"))))
        .collect::<Result<_>>()?;
    if a.rounds == 0 {
        return Err(Error::Invalid("--rounds must be at least 1".into()));
    }
    let mut workloads = Vec::new();
    for path in &a.workloads {
        let mut w = workload::load(path)?;
        if let Some(d) = a.duration {
            w.duration = seconds(d, "duration")?;
        }
        if let Some(d) = a.warmup {
            w.warmup = seconds(d, "warmup")?;
        }
        w.sweep = None;
        workloads.push((path.clone(), w));
    }
    std::fs::create_dir_all(&a.out).map_err(|e| Error::file(&a.out, e))?;
    let options = RunOptions {
        threads: a.threads,
        baseline: None,
        keep_topics: false,
        drain: Duration::from_secs(2),
        notes: Vec::new(),
        window_seconds: 60,
    };
    let order = if a.alternate { side_by_side::Order::Alternating } else { side_by_side::Order::Fixed };
    let plan = side_by_side::Plan {
        brokers: &brokers,
        workloads: &workloads,
        rounds: a.rounds,
        order,
        options: &options,
        out: &a.out,
        data_parent: &a.data_dir,
        riptide_config: a.broker_config.as_deref(),
    };
    let results = side_by_side::run(&plan)?;
    let (markdown, written) = side_by_side::write_report(&plan, &results)?;
    print!("{markdown}");
    eprintln!("wrote {}", written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
    Ok(())
}

fn compare_cmd(results: &[PathBuf], plot_path: &Path, baseline: Option<&Path>) -> Result<()> {
    let baseline = baseline.map(Baseline::load).transpose()?;
    let rows = compare::load(results)?;
    print!("{}", compare::table(&rows, baseline.as_ref()));
    let _ = std::io::Write::flush(&mut std::io::stdout());
    std::fs::write(plot_path, compare::plot(&rows)).map_err(|e| Error::file(plot_path, e))?;
    eprintln!("wrote {}", plot_path.display());
    Ok(())
}

fn baseline_cmd(dir: &Path, secs: u32, out: &Path) -> Result<()> {
    let b = baseline::measure(dir, secs)?;
    let show = |v: Option<f64>| v.map_or("not measured".to_string(), |v| format!("{v:.0} MB/s"));
    println!("machine:                      {}", b.machine);
    println!("disk, 1 MiB + fdatasync (fio): {}", show(b.fio_write_fdatasync_mbps));
    println!("disk, 1 MiB buffered (fio):    {}", show(b.fio_write_mbps));
    println!("loopback TCP (iperf3):         {}", show(b.iperf3_loopback_mbps));
    for n in &b.notes {
        println!("note: {n}");
    }
    b.save(out)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

fn check(paths: &[PathBuf]) -> Result<()> {
    for p in paths {
        let w = workload::load(p)?;
        let backlog = if w.backlog_bytes > 0 {
            format!(
                ", backlog {:.0} MB drained to {:.0} %",
                w.backlog_bytes as f64 / 1e6,
                w.backlog_drain_ratio * 100.0
            )
        } else {
            String::new()
        };
        println!(
            "{}: {} ({} topic(s) x {} partition(s), {} B, {}, {} producer(s), {} consumer(s), rate {}{backlog})",
            p.display(),
            w.name,
            w.topics,
            w.partitions_per_topic,
            w.message_bytes,
            w.key_distributor.name(),
            w.producers(),
            w.consumers(),
            if w.rate == Rate::Max { "max".to_string() } else { format!("{:.0} msgs/s", w.rate_per_s()) }
        );
    }
    Ok(())
}

fn plot(result: &Path, out: &Path) -> Result<()> {
    let stem = result.file_stem().map_or("result".into(), |s| s.to_string_lossy().to_string());
    std::fs::create_dir_all(out).map_err(|e| Error::file(out, e))?;
    let plots = match sweep::SweepResult::load(result)? {
        Some(s) => vec![("sweep", riptide_bench::plots::sweep(&s.workload, &s.steps))],
        None => {
            let r = riptide_bench::report::RunResult::load(result)?;
            vec![
                ("latency", riptide_bench::plots::latency_curve(&r)),
                ("timeseries", riptide_bench::plots::timeseries(&r)),
            ]
        }
    };
    for (name, svg) in plots {
        let path = out.join(format!("{stem}-{name}.svg"));
        std::fs::write(&path, svg).map_err(|e| Error::file(&path, e))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
