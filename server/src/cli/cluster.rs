//! `riptide cluster info`: cluster id, controller, brokers and what the broker speaks. Kafka
//! has no API that reports a broker's software version, so "version" is what the protocol
//! reveals: the API version ranges from ApiVersions and the finalized features
//! (`metadata.version`), plus this CLI's own version.

use serde_json::json;

use riptide_client::versions::api_name;

use super::output::{self, key_values, OutputFormat, Table};
use super::{connect, CliResult, Conn};

pub const EXAMPLES: &str = concat!(
    "Examples:
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
    pub command: ClusterCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum ClusterCommand {
    /// Cluster id, controller, brokers and protocol versions.
    Info {
        /// Also list every API the bootstrap broker supports with its version range.
        #[arg(long)]
        apis: bool,
    },
}

pub async fn run(args: ClusterArgs) -> CliResult {
    let ClusterCommand::Info { apis } = args.command;
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
