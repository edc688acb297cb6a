//! The everyday client commands of the `riptide` binary: `topic`, `produce`, `consume`,
//! `group`, `cluster`, `user`, `acl` and `completions`. They talk to any Kafka-compatible broker through
//! `riptide-client`, using standard APIs only. Each command runs on a single-threaded compio
//! runtime, prints a table (or JSON with `--output json`) and fails with one line on stderr
//! and a non-zero exit code:
//!
//! - 1: the broker refused the request (unknown topic, bad config name, ...)
//! - 2: bad usage or input
//! - 3: the broker could not be reached or the connection broke

/// Appended to every command's examples in `--help`.
macro_rules! exit_codes {
    () => {
        "\n\nExit codes: 0 ok, 1 refused by the broker, 2 bad usage or input, 3 broker unreachable.\nBrokers: -b/--brokers or RIPTIDE_BROKERS (default localhost:9092).\nTLS and SASL: --security-protocol SASL_SSL --ssl-ca ca.pem --sasl-user alice, password in RIPTIDE_SASL_PASSWORD."
    };
}
pub(crate) use exit_codes;

pub mod acl;
pub mod balance;
pub mod cluster;
pub mod consume;
pub mod group;
pub mod output;
pub mod produce;
pub mod topic;
pub mod txn;
pub mod user;

use std::process::ExitCode;

use riptide_client::{Client, ClientConfig};

pub use output::OutputFormat;

const BROKERS_ENV: &str = "RIPTIDE_BROKERS";
const OUTPUT_ENV: &str = "RIPTIDE_OUTPUT";

/// The connection flags a user may put before the subcommand (`riptide -b host:9092 topic
/// list`), taken out of `args` and returned as the environment variables they stand for.
/// clap takes global flags only after the subcommand that defines them, and every client
/// subcommand defines its own; a flag given again after the subcommand still wins, as any flag
/// over its environment variable. Stops at the first argument that is not one of these flags.
pub fn leading_flags(
    args: Vec<std::ffi::OsString>,
) -> (Vec<std::ffi::OsString>, Vec<(&'static str, String)>) {
    let env_of = |flag: &str| match flag {
        "-b" | "--brokers" | "--bootstrap-server" => Some(BROKERS_ENV),
        "-o" | "--output" => Some(OUTPUT_ENV),
        _ => None,
    };
    let mut env = Vec::new();
    let mut i = 1;
    while let Some(text) = args.get(i).and_then(|a| a.to_str()) {
        let (flag, inline) = match text.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (text, None),
        };
        let Some(var) = env_of(flag) else { break };
        match inline {
            Some(v) => {
                env.push((var, v));
                i += 1;
            }
            // A flag without its value is left for clap to report.
            None => match args.get(i + 1).and_then(|v| v.to_str()) {
                Some(v) => {
                    env.push((var, v.to_string()));
                    i += 2;
                }
                None => break,
            },
        }
    }
    let kept = args.iter().take(1).chain(args.iter().skip(i)).cloned().collect();
    (kept, env)
}

/// Connection and output flags shared by every client command.
#[derive(clap::Args, Debug, Clone)]
pub struct Conn {
    /// Bootstrap brokers, comma-separated host:port (also --bootstrap-server, as Kafka's tools).
    #[arg(
        short = 'b',
        long,
        visible_alias = "bootstrap-server",
        env = BROKERS_ENV,
        default_value = "localhost:9092",
        global = true
    )]
    pub brokers: String,
    /// Output format: aligned tables or JSON for scripts.
    #[arg(short = 'o', long, value_enum, env = OUTPUT_ENV, default_value = "table", global = true)]
    pub output: OutputFormat,
    /// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (the listener's protocol).
    #[arg(long, env = "RIPTIDE_SECURITY_PROTOCOL", default_value = "PLAINTEXT", global = true)]
    pub security_protocol: String,
    /// PEM file of the CA that signed the broker's certificate (SSL, SASL_SSL).
    #[arg(long, env = "RIPTIDE_SSL_CA", global = true)]
    pub ssl_ca: Option<std::path::PathBuf>,
    /// PEM certificate chain and key for mTLS.
    #[arg(long, env = "RIPTIDE_SSL_CERT", global = true, requires = "ssl_key")]
    pub ssl_cert: Option<std::path::PathBuf>,
    #[arg(long, env = "RIPTIDE_SSL_KEY", global = true, requires = "ssl_cert")]
    pub ssl_key: Option<std::path::PathBuf>,
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_PLAINTEXT, SASL_SSL).
    #[arg(long, env = "RIPTIDE_SASL_MECHANISM", default_value = "SCRAM-SHA-512", global = true)]
    pub sasl_mechanism: String,
    /// The SASL user; the password comes from RIPTIDE_SASL_PASSWORD.
    #[arg(long, env = "RIPTIDE_SASL_USER", global = true)]
    pub sasl_user: Option<String>,
    /// PLAINTEXT or SSL: the controller listener's protocol, for the commands that speak to
    /// the controllers (`cluster balance`, `cluster decommission`); SSL shows --ssl-cert.
    #[arg(long, env = "RIPTIDE_CONTROLLER_SECURITY_PROTOCOL", default_value = "PLAINTEXT", global = true)]
    pub controller_security_protocol: String,
}

impl Conn {
    /// TLS and SASL settings for the connections, from the flags.
    pub fn security(
        &self,
    ) -> Result<(Option<std::sync::Arc<rustls::ClientConfig>>, Option<riptide_client::sasl::Login>), CliError>
    {
        let protocol = riptide_client::security::SecurityProtocol::parse(&self.security_protocol)
            .ok_or_else(|| {
                CliError::usage(format!(
                    "--security-protocol {}: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
                    self.security_protocol
                ))
            })?;
        let tls = if protocol.tls() {
            let ca = self
                .ssl_ca
                .as_deref()
                .ok_or_else(|| CliError::usage("SSL needs --ssl-ca (or RIPTIDE_SSL_CA)"))?;
            let identity = self.ssl_cert.as_deref().zip(self.ssl_key.as_deref());
            Some(riptide_client::tls::client_config(ca, identity).map_err(CliError::usage)?)
        } else {
            None
        };
        let sasl = if protocol.sasl() {
            let user = self
                .sasl_user
                .clone()
                .ok_or_else(|| CliError::usage("SASL needs --sasl-user (or RIPTIDE_SASL_USER)"))?;
            let password = std::env::var("RIPTIDE_SASL_PASSWORD")
                .map_err(|_| CliError::usage("SASL needs the password in RIPTIDE_SASL_PASSWORD"))?;
            Some(riptide_client::sasl::Login {
                mechanism: self.sasl_mechanism.to_ascii_uppercase(),
                user,
                password,
            })
        } else {
            None
        };
        Ok((tls, sasl))
    }

    /// How to reach the controllers, from --controller-security-protocol and the TLS flags.
    pub fn controller_transport(&self) -> Result<riptide_quorum::Transport, CliError> {
        match self.controller_security_protocol.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(riptide_quorum::Transport::default()),
            "SSL" => {
                let ca = self.ssl_ca.as_deref().ok_or_else(|| CliError::usage("SSL needs --ssl-ca"))?;
                let identity = self.ssl_cert.as_deref().zip(self.ssl_key.as_deref()).ok_or_else(|| {
                    CliError::usage(
                        "the SSL controller listener needs a client certificate: --ssl-cert and --ssl-key",
                    )
                })?;
                let config =
                    riptide_client::tls::client_config(ca, Some(identity)).map_err(CliError::usage)?;
                Ok(riptide_quorum::Transport::tls_client(config))
            }
            other => {
                Err(CliError::usage(format!("--controller-security-protocol {other}: PLAINTEXT or SSL")))
            }
        }
    }
}

/// The client subcommands, flattened into the binary's top-level commands.
#[derive(clap::Subcommand, Debug)]
pub enum ClientCommand {
    /// Create, list, describe, delete and configure topics.
    #[command(after_help = topic::EXAMPLES)]
    Topic(topic::TopicArgs),
    /// Write records to a topic, one per line of stdin or a file.
    #[command(after_help = produce::EXAMPLES)]
    Produce(produce::ProduceArgs),
    /// Read records from a topic and follow new ones until interrupted.
    #[command(after_help = consume::EXAMPLES)]
    Consume(consume::ConsumeArgs),
    /// List, describe, reset and delete consumer groups.
    #[command(after_help = group::EXAMPLES)]
    Group(group::GroupArgs),
    /// Show the cluster: id, controller, brokers, protocol versions.
    #[command(after_help = cluster::EXAMPLES)]
    Cluster(cluster::ClusterArgs),
    /// List and describe transactions (transactional ids and their state).
    #[command(after_help = txn::EXAMPLES)]
    Txn(txn::TxnArgs),
    /// Add, list and delete SCRAM users.
    #[command(after_help = user::EXAMPLES)]
    User(user::UserArgs),
    /// Add, list and delete ACLs.
    #[command(after_help = acl::EXAMPLES)]
    Acl(acl::AclArgs),
    /// Print a shell completion script (bash, zsh, fish, ...).
    #[command(
        after_help = "Examples:\n  riptide completions bash > /etc/bash_completion.d/riptide\n  riptide completions zsh > ~/.zfunc/_riptide\n  riptide completions fish > ~/.config/fish/completions/riptide.fish"
    )]
    Completions(CompletionsArgs),
}

#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}

/// A command's failure: the line to print and the exit code.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub exit: u8,
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError { message: message.into(), exit: 2 }
    }

    pub fn failed(message: impl Into<String>) -> CliError {
        CliError { message: message.into(), exit: 1 }
    }
}

impl From<riptide_client::Error> for CliError {
    fn from(e: riptide_client::Error) -> CliError {
        use riptide_client::Error as E;
        let exit = match &e {
            E::Unreachable { .. } | E::Disconnected { .. } | E::Timeout { .. } => 3,
            E::Invalid(_) => 2,
            _ => 1,
        };
        CliError { message: e.to_string(), exit }
    }
}

/// A closed stdout (`| head`) is the reader's choice, not an error: exit 0 quietly.
impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> CliError {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            CliError { message: String::new(), exit: 0 }
        } else {
            CliError { message: format!("output: {e}"), exit: 1 }
        }
    }
}

pub type CliResult = Result<(), CliError>;

/// Connects to the bootstrap brokers of `conn`.
pub async fn connect(conn: &Conn) -> Result<Client, CliError> {
    let mut config = ClientConfig::new(&conn.brokers)?;
    config.connect.client_id = "riptide-cli".to_string();
    (config.connect.tls, config.connect.sasl) = conn.security()?;
    Ok(Client::connect(config).await?)
}

/// Runs one client command; `cli` is the whole binary's clap command (for completions).
pub fn run(command: ClientCommand, cli: clap::Command) -> ExitCode {
    if let ClientCommand::Completions(args) = &command {
        let mut cli = cli;
        clap_complete::generate(args.shell, &mut cli, "riptide", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    let runtime = match compio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("riptide: cannot start the I/O runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        match command {
            ClientCommand::Topic(args) => topic::run(args).await,
            ClientCommand::Produce(args) => produce::run(args).await,
            ClientCommand::Consume(args) => consume::run(args).await,
            ClientCommand::Group(args) => group::run(args).await,
            ClientCommand::Cluster(args) => cluster::run(args).await,
            ClientCommand::Txn(args) => txn::run(args).await,
            ClientCommand::User(args) => user::run(args).await,
            ClientCommand::Acl(args) => acl::run(args).await,
            ClientCommand::Completions(_) => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !e.message.is_empty() {
                eprintln!("riptide: {}", e.message);
            }
            ExitCode::from(e.exit)
        }
    }
}

/// Splits `key=value` (for `--config`, `--header`, `--set`).
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected key=value, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> (Vec<String>, Vec<(&'static str, String)>) {
        let (args, env) = leading_flags(line.split(' ').map(std::ffi::OsString::from).collect());
        (args.into_iter().map(|a| a.into_string().expect("utf-8")).collect(), env)
    }

    #[test]
    fn connection_flags_before_the_subcommand_become_their_environment() {
        let (args, env) = split("riptide -b h:1 --output=json topic list -b h:2");
        assert_eq!(args, ["riptide", "topic", "list", "-b", "h:2"]);
        assert_eq!(env, [(BROKERS_ENV, "h:1".to_string()), (OUTPUT_ENV, "json".to_string())]);
        let (args, env) = split("riptide --bootstrap-server h:3 cluster");
        assert_eq!(
            (args, env),
            (vec!["riptide".to_string(), "cluster".into()], vec![(BROKERS_ENV, "h:3".into())])
        );
        // Anything else, and a flag missing its value, is left to clap.
        let (args, env) = split("riptide serve -b h:1");
        assert_eq!((args.len(), env.len()), (4, 0));
        let (args, env) = split("riptide -b");
        assert_eq!((args, env.len()), (vec!["riptide".to_string(), "-b".into()], 0));
    }
}
