//! `riptide group list|describe|reset-offsets|delete`. Describe joins three views: the
//! coordinator's members and their assignments (DescribeGroups), the committed offsets
//! (OffsetFetch) and the partitions' log end (ListOffsets), whose difference is the lag.
//! A share group (KIP-932) is described from ShareGroupDescribe and its share-partition start
//! offsets (DescribeShareGroupOffsets): its lag is what lies between the start offset and the
//! log end, records in flight included; its offsets are reset with AlterShareGroupOffsets.

use riptide_model::Offset;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use riptide_client::{Client, GroupDescription, OffsetSpec, TopicPartition};

use super::consume::{parse_start, Start};
use super::output::{self, key_values, OutputFormat, Table};
use super::{connect, CliError, CliResult, Conn};

pub const EXAMPLES: &str = concat!(
    "Examples:
  riptide group list
  riptide group describe billing
  riptide group reset-offsets billing --topic events --to beginning
  riptide group reset-offsets billing --topic events --partition 0 --to 1200 --dry-run
  riptide group reset-offsets billing --topic events --to @-1h
  riptide group delete billing",
    super::exit_codes!()
);

#[derive(clap::Args, Debug)]
pub struct GroupArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub command: GroupCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum GroupCommand {
    /// List groups (classic, consumer and share groups).
    List,
    /// Members, assignments, committed offsets and lag of a group.
    Describe {
        /// Group id.
        group: String,
        /// The consumers' isolation level: read_committed consumers stop at the last stable
        /// offset (below the first open transaction), so their lag is counted to it.
        #[arg(long, value_enum, default_value = "read-uncommitted")]
        isolation: Isolation,
    },
    /// Move a group's committed offsets, or a share group's start offsets (the group must
    /// have no active members).
    ResetOffsets {
        /// Group id.
        group: String,
        #[arg(short, long)]
        topic: String,
        /// Only these partitions (repeatable; default all).
        #[arg(short, long = "partition")]
        partitions: Vec<i32>,
        /// beginning, end, an offset, @MS or @-DURATION (as `consume --from`).
        #[arg(long, allow_hyphen_values = true)]
        to: String,
        /// Show the new offsets without committing them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete groups (they must have no active members).
    Delete {
        /// Group ids.
        #[arg(required = true)]
        groups: Vec<String>,
    },
}

/// A consumer's isolation level (Kafka's `isolation.level`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    ReadUncommitted,
    ReadCommitted,
}

pub async fn run(args: GroupArgs) -> CliResult {
    let client = connect(&args.conn).await?;
    let format = args.conn.output;
    match args.command {
        GroupCommand::List => list(&client, format).await,
        GroupCommand::Describe { group, isolation } => describe(&client, format, &group, isolation).await,
        GroupCommand::ResetOffsets { group, topic, partitions, to, dry_run } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let start = parse_start(&to, now).map_err(|e| CliError::usage(e.replace("--from", "--to")))?;
            reset(&client, format, &group, &topic, &partitions, start, dry_run).await
        }
        GroupCommand::Delete { groups } => {
            let refs: Vec<&str> = groups.iter().map(String::as_str).collect();
            let results = client.delete_groups(&refs).await?;
            let mut first_error = None;
            let mut table = Table::new(&["GROUP", "STATUS"]);
            let mut items = Vec::new();
            for (g, r) in groups.iter().zip(results) {
                match r {
                    Ok(()) => {
                        table.row(vec![g.clone(), "deleted".into()]);
                        items.push(json!({"group": g, "status": "deleted"}));
                    }
                    Err(e) => {
                        items.push(json!({"group": g, "status": "error", "error": e.to_string()}));
                        first_error.get_or_insert(CliError::from(e));
                    }
                }
            }
            match format {
                OutputFormat::Json => output::print_json(&Value::Array(items))?,
                OutputFormat::Table if !table.is_empty() => output::print(&table.render())?,
                OutputFormat::Table => {}
            }
            first_error.map_or(Ok(()), Err)
        }
    }
}

async fn list(client: &Client, format: OutputFormat) -> CliResult {
    let groups = client.list_groups().await?;
    match format {
        OutputFormat::Json => output::print_json(&Value::Array(
            groups
                .iter()
                .map(|g| json!({"group": g.group_id, "state": g.state, "protocol_type": g.protocol_type}))
                .collect(),
        ))?,
        OutputFormat::Table => {
            let mut t = Table::new(&["GROUP", "STATE", "PROTOCOL-TYPE"]);
            for g in groups {
                t.row(vec![g.group_id, g.state, g.protocol_type]);
            }
            output::print(&t.render())?;
        }
    }
    Ok(())
}

/// One row of the offsets view.
struct OffsetRow {
    topic: String,
    partition: i32,
    committed: Option<i64>,
    log_end: Option<i64>,
    member: Option<String>,
}

impl OffsetRow {
    fn lag(&self) -> Option<i64> {
        Some((self.log_end? - self.committed?).max(0))
    }
}

async fn describe(client: &Client, format: OutputFormat, group: &str, isolation: Isolation) -> CliResult {
    let description = client.describe_group(group).await?;
    if description.protocol_type == "share" {
        return describe_share(client, format, group, isolation).await;
    }
    let committed = client.committed_offsets(group, None).await?;
    if description.state == "Dead" && description.members.is_empty() && committed.is_empty() {
        return Err(CliError::failed(format!(
            "group {group}: GROUP_ID_NOT_FOUND (69): the group does not exist"
        )));
    }
    let end = match isolation {
        Isolation::ReadUncommitted => OffsetSpec::Latest,
        Isolation::ReadCommitted => OffsetSpec::LastStable,
    };
    let rows = offset_rows(client, &description, &committed, end).await?;
    match format {
        OutputFormat::Json => output::print_json(&json!({
            "group": description.group_id,
            "state": description.state,
            "protocol_type": description.protocol_type,
            "protocol": description.protocol,
            "isolation": match isolation {
                Isolation::ReadUncommitted => "read_uncommitted",
                Isolation::ReadCommitted => "read_committed",
            },
            "members": description.members.iter().map(|m| json!({
                "member_id": m.member_id, "instance_id": m.instance_id, "client_id": m.client_id,
                "host": m.client_host,
                "assignment": m.assignment.iter().map(|(t, ps)| json!({"topic": t, "partitions": ps})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "offsets": rows.iter().map(|r| json!({
                "topic": r.topic, "partition": r.partition, "committed": r.committed,
                "log_end": r.log_end, "lag": r.lag(), "member": r.member,
            })).collect::<Vec<_>>(),
        }))?,
        OutputFormat::Table => {
            let protocol = if description.protocol.is_empty() {
                description.protocol_type.clone()
            } else {
                format!("{}/{}", description.protocol_type, description.protocol)
            };
            let mut text = key_values(&[
                ("GROUP", description.group_id.clone()),
                ("STATE", description.state.clone()),
                ("PROTOCOL", protocol),
                ("MEMBERS", description.members.len().to_string()),
            ]);
            if !description.members.is_empty() {
                let mut members = Table::new(&["MEMBER-ID", "CLIENT-ID", "HOST", "ASSIGNMENT"]);
                for m in &description.members {
                    let assignment: Vec<String> =
                        m.assignment.iter().map(|(t, ps)| format!("{t}:{}", output::list(ps))).collect();
                    members.row(vec![
                        m.member_id.clone(),
                        m.client_id.clone(),
                        m.client_host.clone(),
                        assignment.join(" "),
                    ]);
                }
                text.push('\n');
                text.push_str(&members.render());
            }
            let end_column = if isolation == Isolation::ReadCommitted { "LAST-STABLE" } else { "LOG-END" };
            let mut offsets = Table::new(&["TOPIC", "PARTITION", "COMMITTED", end_column, "LAG", "MEMBER"]);
            let show = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
            for r in &rows {
                offsets.row(vec![
                    r.topic.clone(),
                    r.partition.to_string(),
                    show(r.committed),
                    show(r.log_end),
                    show(r.lag()),
                    r.member.clone().unwrap_or_else(|| "-".into()),
                ]);
            }
            if !rows.is_empty() {
                text.push('\n');
                text.push_str(&offsets.render());
            }
            output::print(&text)?;
        }
    }
    Ok(())
}

async fn describe_share(
    client: &Client,
    format: OutputFormat,
    group: &str,
    isolation: Isolation,
) -> CliResult {
    let d = client.describe_share_group(group).await?;
    let starts = client.share_group_offsets(group).await?;
    let end = match isolation {
        Isolation::ReadUncommitted => OffsetSpec::Latest,
        Isolation::ReadCommitted => OffsetSpec::LastStable,
    };
    // The readers of each partition (a share group's members may share one).
    let mut readers: BTreeMap<TopicPartition, Vec<String>> = BTreeMap::new();
    for m in &d.members {
        for (t, ps) in &m.assignment {
            for p in ps {
                readers.entry(TopicPartition::new(t.as_str(), *p)).or_default().push(m.member_id.clone());
            }
        }
    }
    let keys: BTreeSet<TopicPartition> = starts.keys().chain(readers.keys()).cloned().collect();
    let ends: BTreeMap<TopicPartition, i64> =
        log_ends(client, &keys, end).await.into_iter().map(|(k, o)| (k, o.0)).collect();
    let lag = |k: &TopicPartition| Some((ends.get(k)? - starts.get(k)?).max(0));
    match format {
        OutputFormat::Json => output::print_json(&json!({
            "group": d.group_id,
            "type": "share",
            "state": d.state,
            "group_epoch": d.group_epoch,
            "assignor": d.assignor,
            "members": d.members.iter().map(|m| json!({
                "member_id": m.member_id, "client_id": m.client_id, "host": m.client_host,
                "member_epoch": m.member_epoch, "subscribed": m.subscribed,
                "assignment": m.assignment.iter().map(|(t, ps)| json!({"topic": t, "partitions": ps})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "offsets": keys.iter().map(|k| json!({
                "topic": k.topic, "partition": k.partition, "start_offset": starts.get(k),
                "log_end": ends.get(k), "lag": lag(k), "members": readers.get(k).cloned().unwrap_or_default(),
            })).collect::<Vec<_>>(),
        }))?,
        OutputFormat::Table => {
            let mut text = key_values(&[
                ("GROUP", d.group_id.clone()),
                ("TYPE", "share".into()),
                ("STATE", d.state.clone()),
                ("ASSIGNOR", d.assignor.clone()),
                ("MEMBERS", d.members.len().to_string()),
            ]);
            if !d.members.is_empty() {
                let mut members = Table::new(&["MEMBER-ID", "CLIENT-ID", "HOST", "ASSIGNMENT"]);
                for m in &d.members {
                    let assignment: Vec<String> =
                        m.assignment.iter().map(|(t, ps)| format!("{t}:{}", output::list(ps))).collect();
                    members.row(vec![
                        m.member_id.clone(),
                        m.client_id.clone(),
                        m.client_host.clone(),
                        assignment.join(" "),
                    ]);
                }
                text.push('\n');
                text.push_str(&members.render());
            }
            let end_column = if isolation == Isolation::ReadCommitted { "LAST-STABLE" } else { "LOG-END" };
            let mut offsets =
                Table::new(&["TOPIC", "PARTITION", "START-OFFSET", end_column, "LAG", "MEMBERS"]);
            let show = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
            for k in &keys {
                offsets.row(vec![
                    k.topic.clone(),
                    k.partition.to_string(),
                    show(starts.get(k).copied()),
                    show(ends.get(k).copied()),
                    show(lag(k)),
                    readers.get(k).map_or("-".into(), |r| r.len().to_string()),
                ]);
            }
            if !keys.is_empty() {
                text.push('\n');
                text.push_str(&offsets.render());
            }
            output::print(&text)?;
        }
    }
    Ok(())
}

/// The log end offsets (`end`: the high watermark or the last stable offset) of `keys`; a
/// deleted topic or partition (which may keep committed offsets) has none.
async fn log_ends(
    client: &Client,
    keys: &BTreeSet<TopicPartition>,
    end: OffsetSpec,
) -> BTreeMap<TopicPartition, Offset> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in keys {
        by_topic.entry(tp.topic.as_str()).or_default().push(tp.partition);
    }
    let mut ends = BTreeMap::new();
    for (t, ps) in by_topic {
        let Ok(info) = client.topic(t).await else { continue };
        let present: Vec<i32> = ps.into_iter().filter(|p| info.leader_of(*p).is_some()).collect();
        if let Ok(found) = client.list_offsets(&info, &present, end).await {
            ends.extend(found.into_iter().map(|(p, o)| (TopicPartition::new(t, p), o)));
        }
    }
    ends
}

/// Committed and assigned partitions, with their log end offsets (`end`: the high watermark
/// or the last stable offset).
async fn offset_rows(
    client: &Client,
    description: &GroupDescription,
    committed: &BTreeMap<TopicPartition, Offset>,
    end: OffsetSpec,
) -> Result<Vec<OffsetRow>, CliError> {
    let mut owners: BTreeMap<TopicPartition, String> = BTreeMap::new();
    for m in &description.members {
        for (t, ps) in &m.assignment {
            for p in ps {
                owners.insert(TopicPartition::new(t.as_str(), *p), m.member_id.clone());
            }
        }
    }
    let keys: BTreeSet<TopicPartition> = committed.keys().chain(owners.keys()).cloned().collect();
    let ends = log_ends(client, &keys, end).await;
    Ok(keys
        .into_iter()
        .map(|key| OffsetRow {
            committed: committed.get(&key).map(|o| o.0),
            log_end: ends.get(&key).map(|o| o.0),
            member: owners.get(&key).cloned(),
            topic: key.topic,
            partition: key.partition,
        })
        .collect())
}

async fn reset(
    client: &Client,
    format: OutputFormat,
    group: &str,
    topic: &str,
    partitions: &[i32],
    start: Start,
    dry_run: bool,
) -> CliResult {
    // A group that does not exist yet gets its offsets, as Kafka's tool does.
    let description = match client.describe_group(group).await {
        Err(e) if e.code() == Some(riptide_client::KafkaCode::GROUP_ID_NOT_FOUND) => None,
        found => Some(found?),
    };
    let share = description.as_ref().is_some_and(|d| d.protocol_type == "share");
    if let Some(description) = description.filter(|d| !d.members.is_empty()) {
        return Err(CliError::failed(format!(
            "group {group} has {} active member(s) (state {}): stop its consumers before resetting offsets",
            description.members.len(),
            description.state
        )));
    }
    let info = client.topic(topic).await?;
    let all: Vec<i32> = info.partitions.iter().map(|p| p.partition).collect();
    let chosen: Vec<i32> = if partitions.is_empty() { all.clone() } else { partitions.to_vec() };
    if let Some(p) = chosen.iter().find(|p| !all.contains(p)) {
        return Err(CliError::failed(format!("{topic}/{p}: UNKNOWN_TOPIC_OR_PARTITION (3)")));
    }
    let targets = resolve(client, &info, &chosen, start).await?;
    let keys: Vec<TopicPartition> = chosen.iter().map(|p| TopicPartition::new(topic, *p)).collect();
    let new: BTreeMap<TopicPartition, Offset> =
        targets.iter().map(|(p, o)| (TopicPartition::new(topic, *p), *o)).collect();
    let before: BTreeMap<TopicPartition, Offset> = if share {
        let starts = client.share_group_offsets(group).await?;
        keys.iter().filter_map(|k| Some((k.clone(), Offset(*starts.get(k)?)))).collect()
    } else {
        client.committed_offsets(group, Some(&keys)).await?
    };
    if !dry_run && share {
        let starts = new.iter().map(|(k, o)| (k.clone(), o.0)).collect();
        client.alter_share_group_offsets(group, &starts).await?;
    } else if !dry_run {
        client.commit_offsets(group, -1, "", &new).await?;
    }
    match format {
        OutputFormat::Json => output::print_json(&json!({
            "group": group,
            "dry_run": dry_run,
            "offsets": new.iter().map(|(k, o)| json!({
                "topic": k.topic, "partition": k.partition, "previous": before.get(k), "new": o,
            })).collect::<Vec<_>>(),
        }))?,
        OutputFormat::Table => {
            let mut t = Table::new(&["TOPIC", "PARTITION", "PREVIOUS", "NEW"]);
            for (k, o) in &new {
                t.row(vec![
                    k.topic.clone(),
                    k.partition.to_string(),
                    before.get(k).map_or("-".into(), Offset::to_string),
                    o.to_string(),
                ]);
            }
            let mut text = t.render();
            if dry_run {
                text.push_str("(dry run: nothing committed)\n");
            }
            output::print(&text)?;
        }
    }
    Ok(())
}

/// Target offsets as `consume --from` resolves them (explicit offsets clamped into the log).
async fn resolve(
    client: &Client,
    info: &riptide_client::TopicInfo,
    partitions: &[i32],
    start: Start,
) -> Result<BTreeMap<i32, Offset>, CliError> {
    let earliest = client.list_offsets(info, partitions, OffsetSpec::Earliest).await?;
    let latest = client.list_offsets(info, partitions, OffsetSpec::Latest).await?;
    let out = match start {
        Start::Spec(OffsetSpec::Earliest) => earliest,
        Start::Spec(OffsetSpec::Latest) => latest,
        Start::Spec(spec) => {
            let found = client.list_offsets(info, partitions, spec).await?;
            found
                .into_iter()
                .map(|(p, o)| {
                    (p, if o < Offset(0) { latest.get(&p).copied().unwrap_or(Offset(0)) } else { o })
                })
                .collect()
        }
        Start::Offset(offset) => partitions
            .iter()
            .map(|p| {
                let lo = earliest.get(p).copied().unwrap_or(Offset(0));
                (*p, Offset(offset).clamp(lo, latest.get(p).copied().unwrap_or(lo).max(lo)))
            })
            .collect(),
    };
    Ok(out)
}
