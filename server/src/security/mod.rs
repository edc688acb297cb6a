//! Security (ARCHITECTURE.md §6): TLS on listeners (`tls`), who a connection is and where its
//! SASL exchange stands (`session`), SCRAM (`scram`), ACLs and the authorizer (`acl`), the
//! brake on repeated failed logins (`throttle`). Knows configs and metadata records, nothing
//! of sockets or request handlers.

pub mod acl;
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
}

impl Security {
    pub fn new(config: &crate::config::SecurityConfig) -> Security {
        Security {
            authorizer: acl::Authorizer::from_config(config),
            failed_logins: throttle::FailedLogins::default(),
            fake_salt_secret: scram::random_bytes(32),
        }
    }
}
