//! `riptide txn list|describe`: the transaction coordinators' view of transactional ids
//! (ListTransactions on every broker, DescribeTransactions on an id's coordinator).

use serde_json::{json, Value};

use riptide_client::Client;

use super::output::{self, key_values, OutputFormat, Table};
use super::{connect, CliResult, Conn};

pub const EXAMPLES: &str = concat!(
    "Examples:
  riptide txn list
  riptide txn describe my-transactional-id
  riptide txn list --output json",
    super::exit_codes!()
);

#[derive(clap::Args, Debug)]
pub struct TxnArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub command: TxnCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum TxnCommand {
    /// List transactional ids with their producer id and state.
    List,
    /// State, producer id and epoch, timeout and partitions of one transactional id.
    Describe {
        /// Transactional id.
        transactional_id: String,
    },
}

pub async fn run(args: TxnArgs) -> CliResult {
    let client = connect(&args.conn).await?;
    let format = args.conn.output;
    match args.command {
        TxnCommand::List => list(&client, format).await,
        TxnCommand::Describe { transactional_id } => describe(&client, format, &transactional_id).await,
    }
}

async fn list(client: &Client, format: OutputFormat) -> CliResult {
    let txns = client.list_transactions().await?;
    match format {
        OutputFormat::Json => output::print_json(&Value::Array(
            txns.iter()
                .map(|t| {
                    json!({"transactional_id": t.transactional_id, "producer_id": t.producer_id,
                           "state": t.state, "coordinator": t.coordinator})
                })
                .collect(),
        ))?,
        OutputFormat::Table => {
            let mut table = Table::new(&["TRANSACTIONAL-ID", "PRODUCER-ID", "STATE", "COORDINATOR"]);
            for t in txns {
                table.row(vec![
                    t.transactional_id,
                    t.producer_id.to_string(),
                    t.state,
                    t.coordinator.to_string(),
                ]);
            }
            output::print(&table.render())?;
        }
    }
    Ok(())
}

async fn describe(client: &Client, format: OutputFormat, transactional_id: &str) -> CliResult {
    let d = client.describe_transaction(transactional_id).await?;
    let partitions: Vec<String> = d.partitions.iter().map(|(t, p)| format!("{t}-{p}")).collect();
    match format {
        OutputFormat::Json => output::print_json(&json!({
            "transactional_id": d.transactional_id,
            "coordinator": d.coordinator,
            "state": d.state,
            "producer_id": d.producer_id,
            "producer_epoch": d.producer_epoch,
            "timeout_ms": d.timeout_ms,
            "start_time_ms": d.start_time_ms,
            "partitions": partitions,
        }))?,
        OutputFormat::Table => output::print(&key_values(&[
            ("transactional id", d.transactional_id.clone()),
            ("coordinator", d.coordinator.to_string()),
            ("state", d.state.clone()),
            ("producer id", d.producer_id.to_string()),
            ("producer epoch", d.producer_epoch.to_string()),
            ("timeout ms", d.timeout_ms.to_string()),
            ("started ms", d.start_time_ms.to_string()),
            ("partitions", partitions.join(", ")),
        ]))?,
    }
    Ok(())
}
