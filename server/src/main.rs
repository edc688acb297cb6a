//! The `riptide` binary. `riptide serve` with no arguments runs a single-node broker on
//! 0.0.0.0:9092 with its data in ./data.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use riptide_server::config::{self, Durability, FileConfig, IoMode, ServerConfig};
use riptide_server::server;

#[derive(Parser)]
#[command(name = "riptide", version, about = "Riptide: a Kafka-compatible streaming broker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker.
    #[command(
        after_help = "Examples:\n  riptide serve\n  riptide serve --data-dir /var/lib/riptide --listen 0.0.0.0:9092\n  riptide serve --config riptide.toml --shards 2"
    )]
    Serve(ServeArgs),
    #[command(flatten)]
    Client(riptide_cli::ClientCommand),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML config file (Kafka-style names, e.g. "num.partitions" = 3); flags override it.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Data directory (Kafka's log.dirs). Default ./data
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The first Kafka listener's address (more, with TLS or SASL: `listeners` in the config
    /// file). Default 0.0.0.0:9092
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// host:port announced to clients in Metadata. Default: the listen address.
    #[arg(long)]
    advertised_listener: Option<String>,
    /// Prometheus /metrics address, or "off". Default 0.0.0.0:9644
    #[arg(long)]
    metrics_listen: Option<String>,
    /// REST interface address (`rest.listeners`: http://host:port, host:port or "off").
    /// Default 0.0.0.0:8082
    #[arg(long)]
    rest_listen: Option<String>,
    /// Number of shards (one thread per core). Default: the number of cores.
    #[arg(long)]
    shards: Option<usize>,
    /// Event-loop I/O interface.
    #[arg(long, value_enum, env = "RIPTIDE_IO_MODE")]
    io: Option<IoMode>,
    #[arg(long)]
    node_id: Option<i32>,
    /// Default partition count for auto-created topics (num.partitions).
    #[arg(long)]
    num_partitions: Option<i32>,
    /// Default durability policy: fsync, replicated or none.
    #[arg(long)]
    durability: Option<String>,
    /// Do not pin shard threads to cores.
    #[arg(long)]
    no_pin: bool,
    /// Once the node answers Kafka requests, write this JSON file (atomically) with every bound
    /// listener address: how launchers that pass port 0 learn the ports.
    #[arg(long, value_name = "PATH")]
    ready_file: Option<PathBuf>,
    /// Any config by its Kafka name, as in the config file: --override process.roles=broker
    /// (repeatable; applied after the file and the other flags).
    #[arg(long = "override", value_name = "NAME=VALUE")]
    overrides: Vec<String>,
}

/// `name=value` pairs as a TOML document (a value that is not TOML is taken as a string).
fn overrides_file(overrides: &[String]) -> Result<FileConfig, String> {
    let mut doc = String::new();
    for o in overrides {
        let (k, v) = o.split_once('=').ok_or_else(|| format!("--override {o:?} is not NAME=VALUE"))?;
        let value = if toml::from_str::<toml::Table>(&format!("x = {v}")).is_ok() {
            v.to_string()
        } else {
            format!("{v:?}")
        };
        doc.push_str(&format!("{:?} = {value}\n", k.trim()));
    }
    toml::from_str(&doc).map_err(|e| format!("--override: {e}"))
}

fn build_config(args: ServeArgs) -> Result<ServerConfig, String> {
    let mut c = ServerConfig::default();
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file: FileConfig = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        c.apply_file(file)?;
    }
    if let Some(v) = args.data_dir {
        c.data_dir = v;
    }
    if let Some(v) = args.listen {
        c.listeners[0].addr = v;
    }
    if let Some(v) = args.advertised_listener {
        c.listeners[0].advertised = Some(v);
    }
    if let Some(v) = args.metrics_listen {
        c.metrics_listen = config::parse_optional_addr(&v)?;
    }
    if let Some(v) = args.rest_listen {
        c.rest.listen = config::parse_rest_listener(&v)?;
    }
    if let Some(v) = args.shards {
        c.shards = v;
    }
    if let Some(v) = args.io {
        c.io = v;
    }
    if let Some(v) = args.node_id {
        c.node_id = v;
    }
    if let Some(v) = args.num_partitions {
        c.num_partitions = v;
    }
    if let Some(v) = args.durability {
        c.log.durability = Durability::parse(&v).ok_or_else(|| format!("unknown durability {v:?}"))?;
    }
    if args.no_pin {
        c.pin_shards = false;
    }
    if !args.overrides.is_empty() {
        c.apply_file(overrides_file(&args.overrides)?)?;
    }
    c.validate()?;
    Ok(c)
}

fn main() -> ExitCode {
    let (args, env) = riptide_cli::leading_flags(std::env::args_os().collect());
    for (var, value) in env {
        // Before any other thread exists: setting the environment is not thread-safe.
        std::env::set_var(var, value);
    }
    let cli = Cli::parse_from(args);
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Client(command) => riptide_cli::run(command, <Cli as clap::CommandFactory>::command()),
    }
}

/// Keeps freed request-sized buffers (a 1 MiB produce frame, its response) in the heap instead
/// of returning them to the kernel. With glibc's defaults each large frame was a fresh mmap:
/// 256 page faults and page clears per MiB received, then an munmap. Measured (issue 18,
/// docs/BENCHMARKS.md): broker CPU per GB produced 0.62–0.68 → 0.48–0.53 CPU-s/GB and 30×
/// fewer page faults. The cost: up to `trim` bytes of freed memory per malloc arena stay
/// mapped. Set before any thread starts, as mallopt asks.
fn keep_large_buffers() {
    #[cfg(target_env = "gnu")]
    {
        const MMAP_THRESHOLD_BYTES: libc::c_int = 32 << 20;
        const TRIM_THRESHOLD_BYTES: libc::c_int = 64 << 20;
        // SAFETY: mallopt only sets allocator parameters; called before other threads exist.
        let ok = unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
        };
        if !ok {
            tracing::warn!("mallopt refused the large-buffer thresholds; large frames cost page faults");
        }
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let ready_file = args.ready_file.clone();
    let config = match build_config(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("riptide: {e}");
            return ExitCode::from(2);
        }
    };
    server::init_logging();
    keep_large_buffers();
    server::block_shutdown_signals();
    let data_dir = config.data_dir.clone();
    let shards = config.shards;
    let node_id = config.node_id;
    if !config.cluster.broker {
        let running = match server::start_controller(config) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("cannot start: {e}");
                return ExitCode::from(1);
            }
        };
        tracing::info!("controller running (data in {})", data_dir.display());
        if let Err(e) = running.bound.announce(node_id, ready_file.as_deref()) {
            tracing::error!("cannot start: {e}");
            running.shutdown();
            return ExitCode::from(1);
        }
        let sig = server::wait_for_signal();
        tracing::info!("signal {sig}: shutting down");
        running.shutdown();
        return ExitCode::SUCCESS;
    }
    let running = match server::start(config) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!("listening on {} ({} shard(s), data in {})", running.addr, shards, data_dir.display());
    if let Err(e) = running.bound.announce(node_id, ready_file.as_deref()) {
        tracing::error!("cannot start: {e}");
        running.shutdown();
        return ExitCode::from(1);
    }
    let sig = server::wait_for_signal();
    tracing::info!("signal {sig}: shutting down");
    running.shutdown();
    tracing::info!("stopped cleanly");
    ExitCode::SUCCESS
}
