//! `riptide acl`: add, list and delete ACLs (CreateAcls / DescribeAcls / DeleteAcls) in Kafka's
//! model: a principal, a host, a resource (topic, group, cluster, transactional id) named
//! literally or by prefix, an operation, allow or deny.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;
use serde_json::json;

use super::output::{self, OutputFormat, Table};
use super::{connect, CliError, CliResult, Conn};
use riptide_client::security::{op, pattern, permission, resource, CLUSTER_NAME};

pub const EXAMPLES: &str = concat!(
    "Examples:
  riptide acl add --principal User:alice --operation read --topic orders
  riptide acl add --principal User:alice --operation read --group orders-app
  riptide acl add --principal User:etl --operation write --topic logs- --prefixed
  riptide acl add --principal User:mallory --operation all --topic orders --deny
  riptide acl add --principal User:ops --operation alter --cluster
  riptide acl list
  riptide acl list --principal User:alice
  riptide acl delete --principal User:alice --topic orders",
    super::exit_codes!()
);

#[derive(clap::Args, Debug)]
pub struct AclArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub command: AclCommand,
}

/// Which ACLs: every flag narrows the selection (`add` needs a principal, a resource and an
/// operation).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Selector {
    /// `User:name` (`User:*` for everyone).
    #[arg(long)]
    pub principal: Option<String>,
    /// The client's address (`*`, the default for add, is any).
    #[arg(long)]
    pub host: Option<String>,
    #[arg(long, conflicts_with_all = ["group", "cluster", "transactional_id"])]
    pub topic: Option<String>,
    #[arg(long, conflicts_with_all = ["cluster", "transactional_id"])]
    pub group: Option<String>,
    #[arg(long, conflicts_with = "transactional_id")]
    pub cluster: bool,
    #[arg(long)]
    pub transactional_id: Option<String>,
    /// The name is a prefix (PREFIXED pattern) rather than a literal name.
    #[arg(long)]
    pub prefixed: bool,
    /// read, write, create, delete, alter, describe, cluster-action, describe-configs,
    /// alter-configs, idempotent-write, all.
    #[arg(long)]
    pub operation: Option<String>,
    /// A DENY rather than an ALLOW.
    #[arg(long)]
    pub deny: bool,
}

#[derive(clap::Subcommand, Debug)]
pub enum AclCommand {
    /// Add an ACL.
    Add(Selector),
    /// ACLs matching the flags (all without flags).
    List(Selector),
    /// Delete the ACLs matching the flags.
    Delete(Selector),
}

fn operation_code(name: &str) -> Result<i8, CliError> {
    Ok(match name.to_ascii_lowercase().replace('_', "-").as_str() {
        "all" => op::ALL,
        "read" => op::READ,
        "write" => op::WRITE,
        "create" => op::CREATE,
        "delete" => op::DELETE,
        "alter" => op::ALTER,
        "describe" => op::DESCRIBE,
        "cluster-action" => op::CLUSTER_ACTION,
        "describe-configs" => op::DESCRIBE_CONFIGS,
        "alter-configs" => op::ALTER_CONFIGS,
        "idempotent-write" => op::IDEMPOTENT_WRITE,
        other => return Err(CliError::usage(format!("--operation {other}: unknown operation"))),
    })
}

fn operation_name(code: i8) -> &'static str {
    match code {
        op::ALL => "all",
        op::READ => "read",
        op::WRITE => "write",
        op::CREATE => "create",
        op::DELETE => "delete",
        op::ALTER => "alter",
        op::DESCRIBE => "describe",
        op::CLUSTER_ACTION => "cluster-action",
        op::DESCRIBE_CONFIGS => "describe-configs",
        op::ALTER_CONFIGS => "alter-configs",
        op::IDEMPOTENT_WRITE => "idempotent-write",
        _ => "other",
    }
}

fn resource_name(code: i8) -> &'static str {
    match code {
        resource::TOPIC => "topic",
        resource::GROUP => "group",
        resource::CLUSTER => "cluster",
        resource::TRANSACTIONAL_ID => "transactional-id",
        resource::USER => "user",
        _ => "other",
    }
}

impl Selector {
    /// The resource type and name, if one was named.
    fn resource(&self) -> Option<(i8, String)> {
        if let Some(t) = &self.topic {
            Some((resource::TOPIC, t.clone()))
        } else if let Some(g) = &self.group {
            Some((resource::GROUP, g.clone()))
        } else if self.cluster {
            Some((resource::CLUSTER, CLUSTER_NAME.to_string()))
        } else {
            self.transactional_id.clone().map(|t| (resource::TRANSACTIONAL_ID, t))
        }
    }

    fn filter(&self) -> Result<DeleteAclsFilter, CliError> {
        let (rt, name) = self.resource().map_or((resource::ANY, None), |(t, n)| (t, Some(n)));
        let pat = match (self.prefixed, name.is_some()) {
            (true, _) => pattern::PREFIXED,
            (false, true) => pattern::LITERAL,
            (false, false) => pattern::ANY,
        };
        let op = self.operation.as_deref().map(operation_code).transpose()?.unwrap_or(op::ANY);
        let perm = if self.deny { permission::DENY } else { permission::ANY };
        Ok(DeleteAclsFilter::default()
            .with_resource_type_filter(rt)
            .with_resource_name_filter(name.map(StrBytes::from_string))
            .with_pattern_type_filter(pat)
            .with_principal_filter(self.principal.clone().map(StrBytes::from_string))
            .with_host_filter(self.host.clone().map(StrBytes::from_string))
            .with_operation(op)
            .with_permission_type(perm))
    }
}

pub async fn run(args: AclArgs) -> CliResult {
    let client = connect(&args.conn).await?;
    let connection = client.any_broker().await?;
    match args.command {
        AclCommand::Add(s) => {
            let principal = s.principal.clone().ok_or_else(|| CliError::usage("--principal is required"))?;
            let (rt, name) = s.resource().ok_or_else(|| {
                CliError::usage("name a resource: --topic, --group, --cluster or --transactional-id")
            })?;
            let operation = operation_code(
                s.operation.as_deref().ok_or_else(|| CliError::usage("--operation is required"))?,
            )?;
            let creation = AclCreation::default()
                .with_resource_type(rt)
                .with_resource_name(StrBytes::from_string(name.clone()))
                .with_resource_pattern_type(if s.prefixed { pattern::PREFIXED } else { pattern::LITERAL })
                .with_principal(StrBytes::from_string(principal.clone()))
                .with_host(StrBytes::from_string(s.host.clone().unwrap_or_else(|| "*".into())))
                .with_operation(operation)
                .with_permission_type(if s.deny { permission::DENY } else { permission::ALLOW });
            let r = connection.send(&CreateAclsRequest::default().with_creations(vec![creation])).await?;
            if let Some(e) = r.results.iter().find(|r| r.error_code != 0) {
                return Err(riptide_client::Error::kafka(
                    e.error_code,
                    "CreateAcls",
                    e.error_message.as_deref(),
                )
                .into());
            }
            output::print(&format!(
                "{} {principal} {} on {} {name}\n",
                if s.deny { "denied" } else { "allowed" },
                operation_name(operation),
                resource_name(rt)
            ))?;
        }
        AclCommand::List(s) => {
            let f = s.filter()?;
            let request = DescribeAclsRequest::default()
                .with_resource_type_filter(f.resource_type_filter)
                .with_resource_name_filter(f.resource_name_filter)
                .with_pattern_type_filter(f.pattern_type_filter)
                .with_principal_filter(f.principal_filter)
                .with_host_filter(f.host_filter)
                .with_operation(f.operation)
                .with_permission_type(f.permission_type);
            let r = connection.send(&request).await?;
            if r.error_code != 0 {
                return Err(riptide_client::Error::kafka(
                    r.error_code,
                    "DescribeAcls",
                    r.error_message.as_deref(),
                )
                .into());
            }
            let mut rows = Vec::new();
            for res in &r.resources {
                for a in &res.acls {
                    rows.push((
                        a.principal.to_string(),
                        if a.permission_type == permission::DENY { "deny" } else { "allow" },
                        operation_name(a.operation),
                        resource_name(res.resource_type),
                        res.resource_name.to_string(),
                        if res.pattern_type == pattern::PREFIXED { "prefixed" } else { "literal" },
                        a.host.to_string(),
                    ));
                }
            }
            match args.conn.output {
                OutputFormat::Json => output::print_json(&json!(rows
                    .iter()
                    .map(|r| json!({"principal": r.0, "permission": r.1, "operation": r.2, "resource_type": r.3, "resource": r.4, "pattern": r.5, "host": r.6}))
                    .collect::<Vec<_>>()))?,
                OutputFormat::Table => {
                    let mut t = Table::new(&["PRINCIPAL", "PERMISSION", "OPERATION", "TYPE", "RESOURCE", "PATTERN", "HOST"]);
                    for r in rows {
                        t.row(vec![r.0, r.1.into(), r.2.into(), r.3.into(), r.4, r.5.into(), r.6]);
                    }
                    output::print(&t.render())?;
                }
            }
        }
        AclCommand::Delete(s) => {
            let r = connection.send(&DeleteAclsRequest::default().with_filters(vec![s.filter()?])).await?;
            let mut deleted = 0;
            for f in &r.filter_results {
                if f.error_code != 0 {
                    return Err(riptide_client::Error::kafka(
                        f.error_code,
                        "DeleteAcls",
                        f.error_message.as_deref(),
                    )
                    .into());
                }
                deleted += f.matching_acls.len();
            }
            output::print(&format!("{deleted} ACL(s) deleted\n"))?;
        }
    }
    Ok(())
}
