//! Security (ARCHITECTURE.md §6): TLS on listeners (`tls`), who a connection is and where its
//! SASL exchange stands (`session`), SCRAM (`scram`), ACLs and the authorizer (`acl`), the
//! brake on repeated failed logins (`throttle`). Knows configs and metadata records, nothing
//! of sockets or request handlers.

pub mod acl;
pub mod at_rest;
pub mod controller_tls;
pub mod scram;
pub mod session;
pub mod throttle;
pub mod tls;

pub use session::{Listener, Session};

/// The broker-wide security state.
pub struct Security {
    pub authorizer: acl::Authorizer,
    pub failed_logins: throttle::FailedLogins,
    /// Salts made up for unknown SCRAM users derive from this (random per process).
    pub fake_salt_secret: Vec<u8>,
    /// The keys of encryption at rest, if any were given.
    pub keyring: Option<std::sync::Arc<at_rest::Keyring>>,
    /// How replica fetchers reach the inter-broker listener: TLS (trusting
    /// `ssl.truststore.location`, showing this broker's own certificate) and a SASL login.
    pub inter_broker_tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    pub inter_broker_login: Option<riptide_client::sasl::Login>,
}

impl Security {
    pub fn new(
        config: &crate::config::SecurityConfig,
        inter: crate::config::SecurityProtocol,
    ) -> Result<Security, String> {
        // Config validation made sure a cluster has what it needs; a single node (no followers)
        // may lack the truststore or the login.
        let inter_broker_tls = match (&config.tls, inter.tls()) {
            (Some(t), true) => match t.truststore.as_deref() {
                Some(ca) => {
                    let identity = Some((t.certificate.as_path(), t.key.as_path()));
                    let config = riptide_client::tls::client_config(ca, identity)
                        .map_err(|e| format!("inter-broker TLS: {e}"))?;
                    Some(config)
                }
                None => None,
            },
            _ => None,
        };
        let inter_broker_login = match (&config.inter_broker_user, inter.sasl()) {
            (Some(user), true) => {
                let password = config
                    .inter_broker_password
                    .clone()
                    .or_else(|| std::env::var("RIPTIDE_INTER_BROKER_SASL_PASSWORD").ok())
                    .ok_or("inter.broker.sasl.password (or RIPTIDE_INTER_BROKER_SASL_PASSWORD) is not set")?;
                Some(riptide_client::sasl::Login {
                    mechanism: config.inter_broker_mechanism.name().to_string(),
                    user: user.clone(),
                    password,
                })
            }
            _ => None,
        };
        Ok(Security {
            authorizer: acl::Authorizer::from_config(config),
            failed_logins: throttle::FailedLogins::default(),
            fake_salt_secret: scram::random_bytes(32),
            keyring: at_rest::Keyring::load(config)?,
            inter_broker_tls,
            inter_broker_login,
        })
    }

    /// The sealer for a topic whose `encryption.at.rest` is `setting` (`None`: off; `Some("")`:
    /// the current key; `Some(id)`: that key).
    pub fn sealer_for(
        &self,
        setting: Option<&str>,
    ) -> Result<Option<std::sync::Arc<dyn riptide_engine::BatchSealer>>, String> {
        let Some(setting) = setting else { return Ok(None) };
        let keyring = self.keyring.clone().ok_or_else(|| {
            "encryption.at.rest is set but no keys are loaded (encryption.key.file or RIPTIDE_ENCRYPTION_KEYS)".to_string()
        })?;
        let id = (!setting.is_empty()).then_some(setting);
        Ok(Some(std::sync::Arc::new(at_rest::TopicSealer::new(keyring, id)?)))
    }
}
