//! `riptide topic create|list|describe|delete|alter-config|add-partitions`.

use riptide_model::Offset;
use serde_json::{json, Value};

use riptide_client::{AlterConfig, Client, ConfigResource, KafkaCode, NewTopic, OffsetSpec, TopicInfo};

use super::output::{self, key_values, OutputFormat, Table};
use super::{connect, parse_key_value, CliError, CliResult, Conn};

pub const EXAMPLES: &str = concat!(
    "Examples:
  riptide topic create orders --partitions 6 --config retention.ms=86400000
  riptide topic list
  riptide topic describe orders
  riptide topic alter-config orders --set retention.ms=3600000 --delete segment.bytes
  riptide topic add-partitions orders --total 12
  riptide topic delete orders
  riptide topic list --output json",
    super::exit_codes!()
);

#[derive(clap::Args, Debug)]
pub struct TopicArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub command: TopicCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum TopicCommand {
    /// Create one or more topics.
    Create {
        /// Topic names.
        #[arg(required = true)]
        names: Vec<String>,
        /// Partition count (-1: the broker's num.partitions).
        #[arg(short, long, default_value_t = -1, allow_negative_numbers = true)]
        partitions: i32,
        /// Replication factor (-1: the broker's default).
        #[arg(short, long, default_value_t = -1, allow_negative_numbers = true)]
        replication_factor: i16,
        /// Topic config with Kafka's names, e.g. retention.ms=86400000 (repeatable).
        #[arg(short, long = "config", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
        /// Succeed when the topic already exists.
        #[arg(long)]
        if_not_exists: bool,
    },
    /// List topics.
    List {
        /// Include internal topics such as __consumer_offsets.
        #[arg(long)]
        internal: bool,
    },
    /// Partitions (leaders, replicas, offsets) and configs of a topic.
    Describe {
        /// Topic name.
        name: String,
        /// Show only configs set on the topic, not broker defaults.
        #[arg(long)]
        overrides_only: bool,
    },
    /// Delete one or more topics.
    Delete {
        /// Topic names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Set or remove topic configs (IncrementalAlterConfigs).
    AlterConfig {
        /// Topic name.
        name: String,
        /// key=value to set (repeatable).
        #[arg(long = "set", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
        /// Config to remove, back to the default (repeatable).
        #[arg(long = "delete")]
        delete: Vec<String>,
    },
    /// Grow a topic to more partitions.
    AddPartitions {
        /// Topic name.
        name: String,
        /// The new total partition count.
        #[arg(long)]
        total: i32,
    },
}

pub async fn run(args: TopicArgs) -> CliResult {
    let client = connect(&args.conn).await?;
    let format = args.conn.output;
    match args.command {
        TopicCommand::Create { names, partitions, replication_factor, configs, if_not_exists } => {
            let topics: Vec<NewTopic> = names
                .iter()
                .map(|name| NewTopic {
                    name: name.clone(),
                    partitions,
                    replication_factor,
                    configs: configs.clone(),
                })
                .collect();
            let results = client.create_topics(&topics, false).await?;
            let outcomes = names
                .iter()
                .zip(results)
                .map(|(n, r)| match r {
                    Err(e) if if_not_exists && e.code() == Some(KafkaCode::TOPIC_ALREADY_EXISTS) => {
                        (n.clone(), Ok("exists"))
                    }
                    other => (n.clone(), other.map(|()| "created")),
                })
                .collect();
            report(format, outcomes)
        }
        TopicCommand::List { internal } => list(&client, format, internal).await,
        TopicCommand::Describe { name, overrides_only } => {
            describe(&client, format, &name, overrides_only).await
        }
        TopicCommand::Delete { names } => {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let results = client.delete_topics(&refs).await?;
            report(
                format,
                names.into_iter().zip(results.into_iter().map(|r| r.map(|()| "deleted"))).collect(),
            )
        }
        TopicCommand::AlterConfig { name, set, delete } => {
            if set.is_empty() && delete.is_empty() {
                return Err(CliError::usage("nothing to change: give --set key=value or --delete key"));
            }
            let mut changes: Vec<AlterConfig> =
                set.iter().map(|(k, v)| AlterConfig::Set(k.clone(), v.clone())).collect();
            changes.extend(delete.iter().map(|k| AlterConfig::Delete(k.clone())));
            client.alter_configs(ConfigResource::Topic, &name, &changes).await?;
            let rows: Vec<(String, Option<String>)> = set
                .into_iter()
                .map(|(k, v)| (k, Some(v)))
                .chain(delete.into_iter().map(|k| (k, None)))
                .collect();
            match format {
                OutputFormat::Json => output::print_json(&json!({
                    "topic": name,
                    "set": rows.iter().filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), json!(v)))).collect::<serde_json::Map<_, _>>(),
                    "deleted": rows.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k.clone()).collect::<Vec<_>>(),
                }))?,
                OutputFormat::Table => {
                    let mut t = Table::new(&["CONFIG", "CHANGE"]);
                    for (k, v) in rows {
                        t.row(vec![k, v.map_or("deleted".to_string(), |v| format!("set to {v}"))]);
                    }
                    output::print(&t.render())?;
                }
            }
            Ok(())
        }
        TopicCommand::AddPartitions { name, total } => {
            client.create_partitions(&name, total).await?;
            report(format, vec![(name, Ok("partitions added"))])
        }
    }
}

/// Prints one status per topic; fails with the first error after printing them all.
fn report(format: OutputFormat, outcomes: Vec<(String, riptide_client::Result<&'static str>)>) -> CliResult {
    let mut first_error = None;
    match format {
        OutputFormat::Json => {
            let items: Vec<Value> = outcomes
                .iter()
                .map(|(name, r)| match r {
                    Ok(status) => json!({"topic": name, "status": status}),
                    Err(e) => json!({"topic": name, "status": "error", "error": e.to_string(),
                                     "error_code": e.code().map(|c| c.0)}),
                })
                .collect();
            output::print_json(&Value::Array(items))?;
        }
        OutputFormat::Table => {
            let mut t = Table::new(&["TOPIC", "STATUS"]);
            for (name, r) in &outcomes {
                if let Ok(status) = r {
                    t.row(vec![name.clone(), status.to_string()]);
                }
            }
            if !t.is_empty() {
                output::print(&t.render())?;
            }
        }
    }
    for (_, r) in outcomes {
        if let Err(e) = r {
            first_error.get_or_insert(CliError::from(e));
        }
    }
    first_error.map_or(Ok(()), Err)
}

async fn list(client: &Client, format: OutputFormat, internal: bool) -> CliResult {
    let metadata = client.metadata(None, false).await?;
    let mut topics: Vec<&TopicInfo> = metadata.topics.iter().filter(|t| internal || !t.is_internal).collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    match format {
        OutputFormat::Json => output::print_json(&Value::Array(
            topics
                .iter()
                .map(|t| {
                    json!({"name": t.name, "partitions": t.partitions.len(),
                           "replication_factor": replication_factor(t), "internal": t.is_internal})
                })
                .collect(),
        ))?,
        OutputFormat::Table => {
            let mut table = Table::new(&["NAME", "PARTITIONS", "REPLICAS"]);
            for t in topics {
                table.row(vec![
                    t.name.clone(),
                    t.partitions.len().to_string(),
                    replication_factor(t).to_string(),
                ]);
            }
            output::print(&table.render())?;
        }
    }
    Ok(())
}

fn replication_factor(t: &TopicInfo) -> usize {
    t.partitions.first().map_or(0, |p| p.replicas.len())
}

async fn describe(client: &Client, format: OutputFormat, name: &str, overrides_only: bool) -> CliResult {
    let topic = client.topic(name).await?;
    let ids: Vec<i32> = topic.partitions.iter().map(|p| p.partition).collect();
    let starts = client.list_offsets(&topic, &ids, OffsetSpec::Earliest).await?;
    let ends = client.list_offsets(&topic, &ids, OffsetSpec::Latest).await?;
    let mut configs = client.describe_configs(ConfigResource::Topic, name, None).await?;
    // Each replica's lag as its broker reports it; a broker that does not answer shows "?".
    let mut replica_lag: std::collections::BTreeMap<(i32, i32), i64> = std::collections::BTreeMap::new();
    let brokers: std::collections::BTreeSet<i32> =
        topic.partitions.iter().flat_map(|p| p.replicas.iter().copied()).collect();
    for b in brokers {
        if let Ok(logs) = client.describe_log_dirs(b).await {
            for (tp, log) in logs {
                if tp.topic == topic.name {
                    replica_lag.insert((tp.partition, b), log.offset_lag);
                }
            }
        }
    }
    let lag_of = |p: &riptide_client::PartitionInfo| -> Vec<String> {
        p.replicas
            .iter()
            .map(|r| {
                format!("{r}:{}", replica_lag.get(&(p.partition, *r)).map_or("?".into(), i64::to_string))
            })
            .collect()
    };
    if overrides_only {
        configs.retain(|c| c.source == 1);
    }
    match format {
        OutputFormat::Json => output::print_json(&json!({
            "name": topic.name,
            "internal": topic.is_internal,
            "replication_factor": replication_factor(&topic),
            "partitions": topic.partitions.iter().map(|p| json!({
                "partition": p.partition, "leader": p.leader, "leader_epoch": p.leader_epoch,
                "replicas": p.replicas, "isr": p.isr,
                "log_start_offset": starts.get(&p.partition), "high_watermark": ends.get(&p.partition),
                "replica_lag": p.replicas.iter().map(|r| json!({
                    "replica": r, "offset_lag": replica_lag.get(&(p.partition, *r)),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "configs": configs.iter().map(|c| json!({
                "name": c.name, "value": c.value, "source": c.source_name(),
                "read_only": c.read_only, "sensitive": c.sensitive,
            })).collect::<Vec<_>>(),
        }))?,
        OutputFormat::Table => {
            let mut text = key_values(&[
                ("NAME", topic.name.clone()),
                ("PARTITIONS", topic.partitions.len().to_string()),
                ("REPLICAS", replication_factor(&topic).to_string()),
                ("INTERNAL", topic.is_internal.to_string()),
            ]);
            let mut partitions = Table::new(&[
                "PARTITION",
                "LEADER",
                "EPOCH",
                "REPLICAS",
                "ISR",
                "LOG-START",
                "HIGH-WATERMARK",
                "REPLICA:LAG",
            ]);
            for p in &topic.partitions {
                partitions.row(vec![
                    p.partition.to_string(),
                    p.leader.to_string(),
                    p.leader_epoch.to_string(),
                    output::list(&p.replicas),
                    output::list(&p.isr),
                    starts.get(&p.partition).map_or("-".into(), Offset::to_string),
                    ends.get(&p.partition).map_or("-".into(), Offset::to_string),
                    lag_of(p).join(","),
                ]);
            }
            text.push('\n');
            text.push_str(&partitions.render());
            if !configs.is_empty() {
                let mut table = Table::new(&["CONFIG", "VALUE", "SOURCE"]);
                for c in &configs {
                    let value = if c.sensitive {
                        "(sensitive)".to_string()
                    } else {
                        c.value.clone().unwrap_or_default()
                    };
                    table.row(vec![c.name.clone(), value, c.source_name().to_string()]);
                }
                text.push('\n');
                text.push_str(&table.render());
            }
            output::print(&text)?;
        }
    }
    Ok(())
}
