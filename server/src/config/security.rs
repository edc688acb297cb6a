//! Listener and security settings under Kafka's names: `listeners`, `advertised.listeners`,
//! `listener.security.protocol.map`, `ssl.*`, `sasl.enabled.mechanisms`,
//! `connections.max.reauth.ms`, `authorizer.class.name`, `super.users`,
//! `allow.everyone.if.no.acl.found`, and Riptide's encryption at rest (`encryption.*`).
//! Parsing and validation only; `security/` acts on them.

use std::net::SocketAddr;
use std::path::PathBuf;

pub use riptide_client::security::SecurityProtocol;

/// One Kafka listener (`NAME://host:port` in `listeners`).
#[derive(Clone, Debug, PartialEq)]
pub struct KafkaListener {
    pub name: String,
    pub protocol: SecurityProtocol,
    pub addr: SocketAddr,
    /// `host:port` from `advertised.listeners` (port 0 follows the bound port).
    pub advertised: Option<String>,
}

impl KafkaListener {
    pub fn plaintext(addr: SocketAddr) -> KafkaListener {
        KafkaListener {
            name: "PLAINTEXT".into(),
            protocol: SecurityProtocol::Plaintext,
            addr,
            advertised: None,
        }
    }

    /// The host and port clients should connect to on this listener.
    pub fn advertised(&self) -> (String, i32) {
        if let Some((h, p)) = self.advertised.as_deref().and_then(|a| a.rsplit_once(':')) {
            if let Ok(port) = p.parse() {
                return (h.to_string(), port);
            }
        }
        let host = if self.addr.ip().is_unspecified() {
            "localhost".to_string()
        } else {
            self.addr.ip().to_string()
        };
        (host, i32::from(self.addr.port()))
    }
}

/// `listener.security.protocol.map`: `NAME:PROTOCOL,...`.
pub fn parse_protocol_map(value: &str) -> Result<Vec<(String, SecurityProtocol)>, String> {
    let mut out = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, proto) = entry
            .split_once(':')
            .ok_or_else(|| format!("listener.security.protocol.map: {entry:?} is not NAME:PROTOCOL"))?;
        let proto = SecurityProtocol::parse(proto.trim()).ok_or_else(|| {
            format!("listener.security.protocol.map: unknown protocol {proto:?} (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)")
        })?;
        out.push((name.trim().to_string(), proto));
    }
    Ok(out)
}

/// `ssl.client.auth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    /// A certificate is asked for; a client without one connects as `User:ANONYMOUS`.
    Requested,
    Required,
}

impl ClientAuth {
    pub fn parse(value: &str) -> Result<ClientAuth, String> {
        match value.to_ascii_lowercase().as_str() {
            "none" => Ok(ClientAuth::None),
            "requested" => Ok(ClientAuth::Requested),
            "required" => Ok(ClientAuth::Required),
            other => Err(format!("ssl.client.auth: {other:?} is not none, requested or required")),
        }
    }
}

/// The TLS identity of every TLS listener (`ssl.*`, PEM files only).
#[derive(Clone, Debug, PartialEq)]
pub struct TlsSettings {
    /// PEM certificate chain (leaf first): `ssl.keystore.location` with `ssl.keystore.type=PEM`
    /// (key and chain in one file), or `ssl.certificate.location`.
    pub certificate: PathBuf,
    /// PEM private key: the same keystore file, or `ssl.key.location`.
    pub key: PathBuf,
    /// `ssl.truststore.location` (PEM CA certificates): who may sign client certificates.
    pub truststore: Option<PathBuf>,
    pub client_auth: ClientAuth,
    /// `ssl.enabled.protocols`: TLSv1.2 and/or TLSv1.3.
    pub tls12: bool,
    pub tls13: bool,
}

/// SASL mechanisms the broker offers (`sasl.enabled.mechanisms`).
pub use riptide_client::scram::Mechanism;

#[derive(Clone, Debug, PartialEq)]
pub struct SecurityConfig {
    pub tls: Option<TlsSettings>,
    pub sasl_mechanisms: Vec<Mechanism>,
    /// `connections.max.reauth.ms`: a SASL session lasts at most this long before the client
    /// must re-authenticate (KIP-368); 0 means forever.
    pub reauth_ms: u64,
    /// ACLs are enforced when `authorizer.class.name` is set (Kafka's switch).
    pub authorizer: bool,
    /// `super.users`: `User:name;User:other`.
    pub super_users: Vec<String>,
    pub allow_everyone_if_no_acl_found: bool,
    /// `inter.broker.listener.name`: the listener replicas fetch from.
    pub inter_broker_listener: Option<String>,
    /// `sasl.mechanism.inter.broker.protocol` and the broker's own login on a SASL
    /// inter-broker listener (`inter.broker.sasl.username`, `inter.broker.sasl.password` or
    /// the environment variable RIPTIDE_INTER_BROKER_SASL_PASSWORD).
    pub inter_broker_mechanism: Mechanism,
    pub inter_broker_user: Option<String>,
    pub inter_broker_password: Option<String>,
    /// `encryption.key.file`: `id=hex` lines, AES-256 keys for encryption at rest.
    pub encryption_key_file: Option<PathBuf>,
    /// `encryption.key.id`: the key new batches are sealed with (default: the last in the file).
    pub encryption_key_id: Option<String>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            tls: None,
            sasl_mechanisms: vec![Mechanism::ScramSha256, Mechanism::ScramSha512, Mechanism::Plain],
            reauth_ms: 0,
            authorizer: false,
            super_users: Vec::new(),
            allow_everyone_if_no_acl_found: false,
            inter_broker_listener: None,
            inter_broker_mechanism: Mechanism::ScramSha512,
            inter_broker_user: None,
            inter_broker_password: None,
            encryption_key_file: None,
            encryption_key_id: None,
        }
    }
}

/// The `ssl.*` keys of the config file, gathered before they are checked together.
#[derive(Debug, Default)]
pub struct SslKeys {
    pub keystore_type: Option<String>,
    pub keystore_location: Option<PathBuf>,
    pub certificate_location: Option<PathBuf>,
    pub key_location: Option<PathBuf>,
    pub key_password: Option<String>,
    pub truststore_type: Option<String>,
    pub truststore_location: Option<PathBuf>,
    pub client_auth: Option<String>,
    pub enabled_protocols: Option<String>,
}

impl SslKeys {
    pub fn is_empty(&self) -> bool {
        self.keystore_location.is_none() && self.certificate_location.is_none() && self.key_location.is_none()
    }

    pub fn into_settings(self) -> Result<TlsSettings, String> {
        for (name, t) in
            [("ssl.keystore.type", &self.keystore_type), ("ssl.truststore.type", &self.truststore_type)]
        {
            if let Some(t) = t.as_deref().filter(|t| !t.eq_ignore_ascii_case("PEM")) {
                return Err(format!("{name}={t}: only PEM files are read (convert with openssl or keytool)"));
            }
        }
        if self.key_password.is_some() {
            return Err("ssl.key.password: encrypted private keys are not read; give an unencrypted PEM key (file mode 0600)".into());
        }
        let (certificate, key) = match (self.keystore_location, self.certificate_location, self.key_location) {
            (Some(ks), None, None) => (ks.clone(), ks),
            (None, Some(c), Some(k)) => (c, k),
            (None, Some(c), None) => (c.clone(), c),
            _ => {
                return Err("TLS needs ssl.keystore.location (a PEM file with the key and the certificate chain) or ssl.certificate.location and ssl.key.location".into())
            }
        };
        let client_auth = match self.client_auth {
            Some(v) => ClientAuth::parse(&v)?,
            None => ClientAuth::None,
        };
        if client_auth != ClientAuth::None && self.truststore_location.is_none() {
            return Err(
                "ssl.client.auth needs ssl.truststore.location (the CA that signs client certificates)"
                    .into(),
            );
        }
        let (mut tls12, mut tls13) = (true, true);
        if let Some(p) = self.enabled_protocols {
            tls12 = false;
            tls13 = false;
            for v in p.split(',').map(str::trim).filter(|v| !v.is_empty()) {
                match v {
                    "TLSv1.2" => tls12 = true,
                    "TLSv1.3" => tls13 = true,
                    other => return Err(format!("ssl.enabled.protocols: {other:?} (TLSv1.2, TLSv1.3)")),
                }
            }
            if !tls12 && !tls13 {
                return Err("ssl.enabled.protocols names no protocol".into());
            }
        }
        Ok(TlsSettings { certificate, key, truststore: self.truststore_location, client_auth, tls12, tls13 })
    }
}

pub fn parse_mechanisms(value: &str) -> Result<Vec<Mechanism>, String> {
    let mut out = Vec::new();
    for m in value.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        out.push(Mechanism::parse(m).ok_or_else(|| {
            format!("sasl.enabled.mechanisms: {m:?} is not offered (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)")
        })?);
    }
    Ok(out)
}

/// `super.users`: `User:alice;User:bob`.
pub fn parse_super_users(value: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for p in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        if !p.contains(':') {
            return Err(format!("super.users: {p:?} is not TYPE:name (User:alice)"));
        }
        out.push(p.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_map_and_keys_parse() {
        let map = parse_protocol_map("INTERNAL:PLAINTEXT, EXTERNAL:SASL_SSL").expect("map");
        assert_eq!(map[1], ("EXTERNAL".to_string(), SecurityProtocol::SaslSsl));
        assert!(parse_protocol_map("X:TLS").is_err());
        let keys = SslKeys {
            keystore_type: Some("JKS".into()),
            keystore_location: Some("/k.jks".into()),
            ..Default::default()
        };
        assert!(keys.into_settings().expect_err("JKS").contains("PEM"));
        let keys = SslKeys {
            keystore_location: Some("/k.pem".into()),
            client_auth: Some("required".into()),
            ..Default::default()
        };
        assert!(keys.into_settings().expect_err("no truststore").contains("truststore"));
        let keys = SslKeys {
            certificate_location: Some("/c.pem".into()),
            key_location: Some("/k.pem".into()),
            enabled_protocols: Some("TLSv1.3".into()),
            ..Default::default()
        };
        let s = keys.into_settings().expect("ok");
        assert!(!s.tls12 && s.tls13);
        assert_eq!(parse_super_users("User:a; User:b").expect("users"), vec!["User:a", "User:b"]);
        assert!(parse_mechanisms("GSSAPI").is_err());
    }
}
