//! The client's SASL exchanges without I/O (`connection` sends the tokens in SaslAuthenticate
//! after a SaslHandshake v1): PLAIN, and SCRAM-SHA-256 / SCRAM-SHA-512 per RFC 5802 with ring's
//! primitives. The server's final signature is checked, so a broker that does not know the
//! password cannot pass for one that does.

use base64::Engine;
use ring::rand::SecureRandom;

use crate::error::{Error, Result};
use crate::scram::{hash, mac, salted_password, Mechanism};

/// Who to log in as, and how.
#[derive(Clone)]
pub struct Login {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: String,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Login {{ mechanism: {}, user: {}, password: <hidden> }}", self.mechanism, self.user)
    }
}

/// The client's side of one SASL exchange, without I/O: the connection sends each token
/// this gives it (SaslAuthenticate) and hands back the broker's answer.
pub enum Exchange {
    Plain,
    Scram(ScramClient),
}

impl Exchange {
    /// The first token to send.
    pub fn start(login: &Login) -> Result<(Exchange, Vec<u8>)> {
        match login.mechanism.as_str() {
            "PLAIN" => Ok((Exchange::Plain, format!("\0{}\0{}", login.user, login.password).into_bytes())),
            "SCRAM-SHA-256" => ScramClient::start(login, Mechanism::ScramSha256),
            "SCRAM-SHA-512" => ScramClient::start(login, Mechanism::ScramSha512),
            other => {
                Err(Error::Invalid(format!("SASL mechanism {other}: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")))
            }
        }
    }

    /// Takes the broker's answer to the last token: the next token to send, or `None` when
    /// the exchange is complete (and, for SCRAM, the broker proved it knows the password).
    pub fn next(&mut self, answer: &[u8]) -> Result<Option<Vec<u8>>> {
        match self {
            Exchange::Plain => Ok(None),
            Exchange::Scram(s) => s.next(answer),
        }
    }
}

pub struct ScramClient {
    sha: Mechanism,
    password: String,
    client_nonce: String,
    first_bare: String,
    /// The server's signature to expect, once client-final is sent.
    expected: Option<String>,
}

impl ScramClient {
    fn start(login: &Login, sha: Mechanism) -> Result<(Exchange, Vec<u8>)> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut nonce = [0u8; 24];
        ring::rand::SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| Error::Invalid("no random bytes".into()))?;
        let client_nonce = b64.encode(nonce);
        let user = login.user.replace('=', "=3D").replace(',', "=2C");
        let first_bare = format!("n={user},r={client_nonce}");
        let token = format!("n,,{first_bare}").into_bytes();
        let s =
            ScramClient { sha, password: login.password.clone(), client_nonce, first_bare, expected: None };
        Ok((Exchange::Scram(s), token))
    }

    fn next(&mut self, answer: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(expected) = &self.expected {
            if answer != expected.as_bytes() {
                return Err(bad("the server's signature is wrong (it does not know the password)"));
            }
            return Ok(None);
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let sha = self.sha;
        let server_first = std::str::from_utf8(answer).map_err(|_| bad("server-first is not UTF-8"))?;
        let attr = |k: &str| {
            server_first.split(',').find_map(|a| a.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
        };
        let server_nonce = attr("r").ok_or_else(|| bad("no nonce in server-first"))?;
        if !server_nonce.starts_with(&self.client_nonce) || server_nonce.len() == self.client_nonce.len() {
            return Err(bad("the server's nonce does not extend ours"));
        }
        let salt = b64.decode(attr("s").ok_or_else(|| bad("no salt"))?).map_err(|_| bad("bad salt"))?;
        let iterations: u32 =
            attr("i").and_then(|i| i.parse().ok()).ok_or_else(|| bad("bad iteration count"))?;
        if iterations == 0 {
            return Err(bad("zero iterations"));
        }
        let salted = salted_password(sha, self.password.as_bytes(), &salt, iterations);
        let client_key = mac(sha, &salted, b"Client Key");
        let stored_key = hash(sha, &client_key);
        let without_proof = format!("c=biws,r={server_nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
        let signature = mac(sha, stored_key.as_ref(), auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(k, s)| k ^ s).collect();
        let server_key = mac(sha, &salted, b"Server Key");
        self.expected = Some(format!("v={}", b64.encode(mac(sha, &server_key, auth_message.as_bytes()))));
        Ok(Some(format!("{without_proof},p={}", b64.encode(proof)).into_bytes()))
    }
}

fn bad(what: &str) -> Error {
    Error::Invalid(format!("SCRAM: {what}"))
}
