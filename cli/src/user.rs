//! `riptide user`: SCRAM users (AlterUserScramCredentials / DescribeUserScramCredentials). The
//! password is salted and hashed here, as Kafka's tools do: only the salted password crosses
//! the wire, and the broker keeps only keys derived from it.

use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::{AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest};
use kafka_protocol::protocol::StrBytes;
use serde_json::json;

use super::output::{self, OutputFormat, Table};
use super::{connect, CliError, CliResult, Conn};
use riptide_client::scram;
use riptide_client::scram::Mechanism;

pub const EXAMPLES: &str = concat!(
    "Examples:
  riptide user add alice --password-stdin < alice.pw
  RIPTIDE_PASSWORD=s3cret riptide user add alice --mechanism SCRAM-SHA-512
  riptide user list
  riptide user delete alice",
    super::exit_codes!()
);

#[derive(clap::Args, Debug)]
pub struct UserArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub command: UserCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user or change its password (both SCRAM mechanisms unless one is named).
    Add {
        name: String,
        /// The password (prefer --password-stdin or RIPTIDE_PASSWORD: a flag shows in `ps`).
        #[arg(long, env = "RIPTIDE_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
        /// SCRAM-SHA-256 or SCRAM-SHA-512 (default both).
        #[arg(long)]
        mechanism: Option<String>,
        #[arg(long, default_value_t = scram::ITERATIONS_MIN)]
        iterations: u32,
    },
    /// Users and their SCRAM mechanisms.
    List,
    /// Delete a user's credentials (both mechanisms unless one is named).
    Delete {
        name: String,
        #[arg(long)]
        mechanism: Option<String>,
    },
}

fn mechanisms(named: Option<&str>) -> Result<Vec<Mechanism>, CliError> {
    match named {
        None => Ok(vec![Mechanism::ScramSha256, Mechanism::ScramSha512]),
        Some(m) => match Mechanism::parse(&m.to_ascii_uppercase()) {
            Some(Mechanism::Plain) | None => {
                Err(CliError::usage(format!("--mechanism {m}: SCRAM-SHA-256 or SCRAM-SHA-512")))
            }
            Some(m) => Ok(vec![m]),
        },
    }
}

fn code(m: Mechanism) -> i8 {
    m.scram_code().unwrap_or(0)
}

pub async fn run(args: UserArgs) -> CliResult {
    let client = connect(&args.conn).await?;
    let connection = client.any_broker().await?;
    match args.command {
        UserCommand::Add { name, password, password_stdin, mechanism, iterations } => {
            let password = match (password, password_stdin) {
                (_, true) => {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .map_err(|e| CliError::usage(format!("stdin: {e}")))?;
                    line.trim_end_matches(['\n', '\r']).to_string()
                }
                (Some(p), false) => p,
                (None, false) => {
                    return Err(CliError::usage(
                        "give the password with --password-stdin or RIPTIDE_PASSWORD",
                    ))
                }
            };
            if password.is_empty() {
                return Err(CliError::usage("the password is empty"));
            }
            let upsertions = mechanisms(mechanism.as_deref())?
                .into_iter()
                .map(|m| {
                    let (salt, salted) = scram::new_salted(m, &password, iterations);
                    ScramCredentialUpsertion::default()
                        .with_name(StrBytes::from_string(name.clone()))
                        .with_mechanism(code(m))
                        .with_iterations(iterations as i32)
                        .with_salt(salt.into())
                        .with_salted_password(salted.into())
                })
                .collect();
            let r = connection
                .send(&AlterUserScramCredentialsRequest::default().with_upsertions(upsertions))
                .await?;
            check(r.results)?;
            output::print(&format!("user {name} saved\n"))?;
        }
        UserCommand::Delete { name, mechanism } => {
            let deletions = mechanisms(mechanism.as_deref())?
                .into_iter()
                .map(|m| {
                    ScramCredentialDeletion::default()
                        .with_name(StrBytes::from_string(name.clone()))
                        .with_mechanism(code(m))
                })
                .collect();
            let mut r = connection
                .send(&AlterUserScramCredentialsRequest::default().with_deletions(deletions))
                .await?;
            // Deleting both when the user has one: the missing one is not an error.
            if mechanism.is_none() && r.results.iter().any(|x| x.error_code == 0) {
                r.results.retain(|x| x.error_code == 0);
            }
            check(r.results)?;
            output::print(&format!("user {name} deleted\n"))?;
        }
        UserCommand::List => {
            let r = connection.send(&DescribeUserScramCredentialsRequest::default().with_users(None)).await?;
            if r.error_code != 0 {
                return Err(riptide_client::Error::kafka(
                    r.error_code,
                    "DescribeUserScramCredentials",
                    r.error_message.as_deref(),
                )
                .into());
            }
            let users: Vec<(String, Vec<String>)> = r
                .results
                .iter()
                .map(|u| {
                    let mechs = u
                        .credential_infos
                        .iter()
                        .map(|c| {
                            let name =
                                Mechanism::from_scram_code(c.mechanism).map_or("unknown", Mechanism::name);
                            format!("{name} ({} iterations)", c.iterations)
                        })
                        .collect();
                    (u.user.to_string(), mechs)
                })
                .collect();
            match args.conn.output {
                OutputFormat::Json => output::print_json(&json!(users
                    .iter()
                    .map(|(u, m)| json!({"user": u, "mechanisms": m}))
                    .collect::<Vec<_>>()))?,
                OutputFormat::Table => {
                    let mut t = Table::new(&["USER", "MECHANISMS"]);
                    for (u, m) in users {
                        t.row(vec![u, m.join(", ")]);
                    }
                    output::print(&t.render())?;
                }
            }
        }
    }
    Ok(())
}

fn check(
    results: Vec<
        kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult,
    >,
) -> CliResult {
    match results.into_iter().find(|r| r.error_code != 0) {
        Some(r) => Err(riptide_client::Error::kafka(
            r.error_code,
            format!("user {}", r.user.as_str()),
            r.error_message.as_deref(),
        )
        .into()),
        None => Ok(()),
    }
}
