//! The TLS identity of the broker's SSL and SASL_SSL listeners: a rustls server config built
//! from PEM files (`ssl.*`), rebuilt when those files change so that a renewed certificate is
//! served without a restart. A file that fails to load on a reload keeps the old config (and
//! says so in the log); at start-up it stops the broker.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;

use crate::config::security::{ClientAuth, TlsSettings};

/// How often an accepted connection may look at the files' modification times.
const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

pub struct TlsAcceptor {
    settings: TlsSettings,
    state: Mutex<State>,
}

struct State {
    config: Arc<ServerConfig>,
    stamp: Vec<Option<(SystemTime, u64)>>,
    checked: Instant,
}

impl TlsAcceptor {
    pub fn new(settings: TlsSettings) -> Result<TlsAcceptor, String> {
        let stamp = stamp(&settings);
        let config = Arc::new(load(&settings)?);
        Ok(TlsAcceptor { settings, state: Mutex::new(State { config, stamp, checked: Instant::now() }) })
    }

    /// The config for a new connection, reloaded first if a file changed since the last look.
    pub fn config(&self) -> Arc<ServerConfig> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.checked.elapsed() >= RELOAD_CHECK_INTERVAL {
            state.checked = Instant::now();
            let now = stamp(&self.settings);
            if now != state.stamp {
                state.stamp = now;
                match load(&self.settings) {
                    Ok(c) => {
                        state.config = Arc::new(c);
                        tracing::info!(
                            "TLS certificate reloaded from {}",
                            self.settings.certificate.display()
                        );
                    }
                    Err(e) => {
                        tracing::error!("TLS reload failed, still serving the previous certificate: {e}")
                    }
                }
            }
        }
        state.config.clone()
    }
}

fn files(s: &TlsSettings) -> Vec<&PathBuf> {
    let mut v = vec![&s.certificate, &s.key];
    v.extend(s.truststore.as_ref());
    v
}

fn stamp(s: &TlsSettings) -> Vec<Option<(SystemTime, u64)>> {
    files(s)
        .into_iter()
        .map(|p| std::fs::metadata(p).ok().and_then(|m| Some((m.modified().ok()?, m.len()))))
        .collect()
}

/// The crypto provider of every TLS config: ring. rustls marks it deprecated because it lacks
/// post-quantum key exchange; aws-lc-rs, which has it, needs a cmake C build that costs
/// minutes on every fresh 2-core CI machine.
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn load(s: &TlsSettings) -> Result<ServerConfig, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&s.certificate)
        .map_err(|e| format!("{}: {e}", s.certificate.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", s.certificate.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", s.certificate.display()));
    }
    let key =
        PrivateKeyDer::from_pem_file(&s.key).map_err(|e| format!("{}: private key: {e}", s.key.display()))?;
    let mut versions = Vec::new();
    if s.tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if s.tls12 {
        versions.push(&rustls::version::TLS12);
    }
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = match (s.client_auth, &s.truststore) {
        (ClientAuth::None, _) | (_, None) => builder.with_no_client_auth(),
        (auth, Some(path)) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(path).map_err(|e| format!("{}: {e}", path.display()))? {
                let c = c.map_err(|e| format!("{}: {e}", path.display()))?;
                roots.add(c).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let verifier =
                if auth == ClientAuth::Requested { verifier.allow_unauthenticated() } else { verifier };
            builder
                .with_client_cert_verifier(verifier.build().map_err(|e| format!("{}: {e}", path.display()))?)
        }
    };
    builder.with_single_cert(certs, key).map_err(|e| format!("{}: {e}", s.certificate.display()))
}

/// Kafka's principal for a client certificate: `User:` and the subject's distinguished name
/// as RFC 2253 writes it (`CN=alice,OU=eng,O=Acme`).
pub fn certificate_principal(der: &[u8]) -> Option<String> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    Some(format!("User:{}", cert.tbs_certificate.subject))
}
