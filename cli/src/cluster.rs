//! `riptide cluster` (status): brokers with address, rack and state (live or fenced), the
//! controllers of the metadata quorum, the active one, and metadata offsets (DescribeCluster v2
//! and DescribeQuorum); `add-controller` / `remove-controller` change the quorum online
//! (AddRaftVoter / RemoveRaftVoter); `balance` and `decommission` drive the balancer
//! (`cli::balance`). `riptide cluster info`: cluster id, controller, brokers and
//! what the broker speaks. Kafka has no API that reports a broker's software version, so
//! "version" is what the protocol reveals: the API version ranges from ApiVersions and the
//! finalized features (`metadata.version`), plus this CLI's own version.

use std::time::Duration;

use serde_json::json;

use riptide_client::versions::api_name;

use super::output::{self, key_values, OutputFormat, Table};
use super::{connect, CliResult, Conn};

pub const EXAMPLES: &str = concat!(
    "Examples:
  riptide cluster
  riptide cluster status --output json
  riptide cluster add-controller 4 localhost:49093
  riptide cluster remove-controller 3
  riptide cluster balance --dry-run
  riptide cluster balance --wait
  riptide cluster decommission 3 --wait
  riptide cluster decommission 3 --cancel
  riptide cluster unregister 3
  riptide cluster info
  riptide cluster info --apis
  RIPTIDE_BROKERS=kafka1:9092,kafka2:9092 riptide cluster info --output json",
    super::exit_codes!()
);

#[derive(clap::Args, Debug)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub command: Option<ClusterCommand>,
}

#[derive(clap::Subcommand, Debug)]
pub enum ClusterCommand {
    /// Brokers (state, rack, metadata offset), controllers and the active controller (default).
    Status,
    /// Make a controller started with controller.quorum.bootstrap.servers a voter.
    AddController {
        /// Its node.id.
        id: i32,
        /// host:port of its CONTROLLER listener.
        address: String,
    },
    /// Remove a voter from the metadata quorum.
    RemoveController {
        /// Its node.id.
        id: i32,
    },
    /// Load per broker, moves running (progress, ETA) and the balancer's plan; starts the
    /// planned moves now unless --dry-run.
    Balance {
        /// Only show the plan.
        #[arg(long)]
        dry_run: bool,
        /// Follow the moves until nothing is running or planned.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
    },
    /// Drain a broker: its replicas move to the others; says when it can be stopped.
    Decommission {
        /// Its node.id.
        id: i32,
        /// Put it back in service instead.
        #[arg(long)]
        cancel: bool,
        /// Follow the drain until the broker holds no replicas.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
    },
    /// Forget a broker that is gone for good (stopped, and drained by decommission).
    Unregister {
        /// Its node.id.
        id: i32,
    },
    /// Cluster id, controller, brokers and protocol versions.
    Info {
        /// Also list every API the bootstrap broker supports with its version range.
        #[arg(long)]
        apis: bool,
    },
}

pub async fn run(args: ClusterArgs) -> CliResult {
    let apis = match args.command.unwrap_or(ClusterCommand::Status) {
        ClusterCommand::Info { apis } => apis,
        ClusterCommand::Status => return status(&args.conn).await,
        ClusterCommand::Balance { dry_run, wait, timeout } => {
            return super::balance::balance(&args.conn, dry_run, wait, Duration::from_secs(timeout)).await
        }
        ClusterCommand::Decommission { id, cancel, wait, timeout } => {
            return super::balance::decommission(&args.conn, id, cancel, wait, Duration::from_secs(timeout))
                .await
        }
        ClusterCommand::AddController { id, address } => {
            let (host, port) = address
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
                .ok_or_else(|| super::CliError::usage(format!("{address:?} is not host:port")))?;
            connect(&args.conn).await?.add_controller(id, &host, port).await?;
            return Ok(output::print(&format!(
                "controller {id} ({address}) is a voter of the metadata quorum\n"
            ))?);
        }
        ClusterCommand::Unregister { id } => {
            connect(&args.conn).await?.unregister_broker(id).await?;
            return Ok(output::print(&format!("broker {id} unregistered\n"))?);
        }
        ClusterCommand::RemoveController { id } => {
            connect(&args.conn).await?.remove_controller(id).await?;
            return Ok(output::print(&format!("controller {id} removed from the metadata quorum\n"))?);
        }
    };
    let client = connect(&args.conn).await?;
    let cluster = client.describe_cluster().await?;
    let connection = client.any_broker().await?;
    let versions = connection.api_versions();
    let ranges = versions.ranges();
    let cli_version = env!("CARGO_PKG_VERSION");
    match args.conn.output {
        OutputFormat::Json => output::print_json(&json!({
            "cluster_id": cluster.cluster_id,
            "controller_id": cluster.controller_id,
            "brokers": cluster.brokers.iter().map(|b| json!({
                "id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack,
            })).collect::<Vec<_>>(),
            "bootstrap": connection.addr(),
            "features": versions.finalized_features.iter().map(|(n, v)| (n.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "apis": ranges.iter().map(|(k, min, max)| json!({
                "key": k, "name": api_name(*k), "min_version": min, "max_version": max,
            })).collect::<Vec<_>>(),
            "cli_version": cli_version,
        }))?,
        OutputFormat::Table => {
            let features: Vec<String> =
                versions.finalized_features.iter().map(|(n, v)| format!("{n}={v}")).collect();
            let mut text = key_values(&[
                ("CLUSTER-ID", cluster.cluster_id.clone().unwrap_or_else(|| "-".into())),
                ("CONTROLLER", cluster.controller_id.to_string()),
                ("BROKERS", cluster.brokers.len().to_string()),
                ("APIS", format!("{} (ApiVersions of {})", ranges.len(), connection.addr())),
                ("FEATURES", if features.is_empty() { "-".into() } else { features.join(" ") }),
                ("CLI-VERSION", format!("riptide {cli_version}")),
            ]);
            let mut brokers = Table::new(&["ID", "HOST", "PORT", "RACK", "CONTROLLER"]);
            for b in &cluster.brokers {
                brokers.row(vec![
                    b.node_id.to_string(),
                    b.host.clone(),
                    b.port.to_string(),
                    b.rack.clone().unwrap_or_else(|| "-".into()),
                    if b.node_id == cluster.controller_id { "yes".into() } else { String::new() },
                ]);
            }
            text.push('\n');
            text.push_str(&brokers.render());
            if apis {
                let mut table = Table::new(&["KEY", "API", "VERSIONS"]);
                for (k, min, max) in &ranges {
                    table.row(vec![k.to_string(), api_name(*k), format!("{min}-{max}")]);
                }
                text.push('\n');
                text.push_str(&table.render());
            }
            output::print(&text)?;
        }
    }
    Ok(())
}

async fn status(conn: &Conn) -> CliResult {
    let client = connect(conn).await?;
    let cluster = client.describe_cluster().await?;
    let brokers = client.describe_brokers().await?;
    let quorum = client.describe_quorum().await?;
    let offset_of = |id: i32| {
        quorum.voters.iter().chain(quorum.observers.iter()).find(|(n, _)| *n == id).map(|(_, o)| *o)
    };
    let addr_of = |id: i32| quorum.controller_addrs.iter().find(|(n, _)| *n == id).map(|(_, a)| a.clone());
    match conn.output {
        OutputFormat::Json => output::print_json(&json!({
            "cluster_id": cluster.cluster_id,
            "active_controller": quorum.leader_id,
            "leader_epoch": quorum.leader_epoch,
            "metadata_offset": quorum.high_watermark,
            "brokers": brokers.iter().map(|b| json!({
                "id": b.broker.node_id, "host": b.broker.host, "port": b.broker.port,
                "rack": b.broker.rack, "state": if b.fenced { "fenced" } else { "live" },
                "metadata_offset": offset_of(b.broker.node_id),
            })).collect::<Vec<_>>(),
            "controllers": quorum.voters.iter().map(|(id, leo)| json!({
                "id": id, "address": addr_of(*id), "log_end_offset": leo,
                "active": *id == quorum.leader_id,
            })).collect::<Vec<_>>(),
        }))?,
        OutputFormat::Table => {
            let mut text = key_values(&[
                ("CLUSTER-ID", cluster.cluster_id.clone().unwrap_or_else(|| "-".into())),
                ("ACTIVE-CONTROLLER", quorum.leader_id.to_string()),
                ("LEADER-EPOCH", quorum.leader_epoch.to_string()),
                ("METADATA-OFFSET", quorum.high_watermark.to_string()),
            ]);
            let mut t = Table::new(&["BROKER", "ADDRESS", "RACK", "STATE", "METADATA-OFFSET"]);
            for b in &brokers {
                t.row(vec![
                    b.broker.node_id.to_string(),
                    format!("{}:{}", b.broker.host, b.broker.port),
                    b.broker.rack.clone().unwrap_or_else(|| "-".into()),
                    if b.fenced { "fenced".into() } else { "live".into() },
                    offset_of(b.broker.node_id).map_or("-".into(), |o| o.to_string()),
                ]);
            }
            text.push('\n');
            text.push_str(&t.render());
            let mut c = Table::new(&["CONTROLLER", "ADDRESS", "ROLE", "LOG-END-OFFSET", "LAG"]);
            for (id, leo) in &quorum.voters {
                c.row(vec![
                    id.to_string(),
                    addr_of(*id).unwrap_or_else(|| "-".into()),
                    if *id == quorum.leader_id { "active".into() } else { "follower".into() },
                    if *leo < 0 { "-".into() } else { leo.to_string() },
                    if *leo < 0 { "-".into() } else { (quorum.high_watermark - leo).max(0).to_string() },
                ]);
            }
            text.push('\n');
            text.push_str(&c.render());
            output::print(&text)?;
        }
    }
    Ok(())
}
