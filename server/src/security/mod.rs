//! Security (ARCHITECTURE.md §6): TLS on listeners (`tls`), who a connection is and where its
//! SASL exchange stands (`session`), SCRAM (`scram`), ACLs and the authorizer (`acl`), the
//! brake on repeated failed logins (`throttle`). Knows configs and metadata records, nothing
//! of sockets or request handlers.

pub mod acl;
pub mod at_rest;
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
}

impl Security {
    pub fn new(config: &crate::config::SecurityConfig) -> Result<Security, String> {
        Ok(Security {
            authorizer: acl::Authorizer::from_config(config),
            failed_logins: throttle::FailedLogins::default(),
            fake_salt_secret: scram::random_bytes(32),
            keyring: at_rest::Keyring::load(config)?,
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
