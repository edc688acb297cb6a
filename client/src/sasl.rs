//! The client's SASL login (SaslHandshake v1, then SaslAuthenticate): PLAIN, and
//! SCRAM-SHA-256 / SCRAM-SHA-512 per RFC 5802 with ring's primitives. The server's final
//! signature is checked, so a broker that does not know the password cannot pass for one that
//! does.

use base64::Engine;
use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use ring::{digest, hmac, pbkdf2, rand::SecureRandom};

use crate::connection::Connection;
use crate::error::{Error, Result};

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

pub async fn authenticate(connection: &Connection, login: &Login) -> Result<()> {
    let handshake = connection
        .send(&SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(login.mechanism.clone())))
        .await?;
    if handshake.error_code != 0 {
        let offered: Vec<&str> = handshake.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(Error::kafka(
            handshake.error_code,
            format!("SASL {} (the broker offers {})", login.mechanism, offered.join(", ")),
            None,
        ));
    }
    match login.mechanism.as_str() {
        "PLAIN" => {
            let token = format!("\0{}\0{}", login.user, login.password);
            exchange(connection, token.into_bytes()).await.map(drop)
        }
        "SCRAM-SHA-256" => scram(connection, login, Sha::Sha256).await,
        "SCRAM-SHA-512" => scram(connection, login, Sha::Sha512).await,
        other => {
            Err(Error::Invalid(format!("SASL mechanism {other}: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")))
        }
    }
}

async fn exchange(connection: &Connection, token: Vec<u8>) -> Result<Bytes> {
    let r = connection.send(&SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token))).await?;
    if r.error_code != 0 {
        return Err(Error::kafka(r.error_code, "SASL login", r.error_message.as_deref()));
    }
    Ok(r.auth_bytes)
}

#[derive(Clone, Copy)]
enum Sha {
    Sha256,
    Sha512,
}

impl Sha {
    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Sha::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Sha::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Sha::Sha256 => hmac::HMAC_SHA256,
            Sha::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Sha::Sha256 => &digest::SHA256,
            Sha::Sha512 => &digest::SHA512,
        }
    }
}

fn mac(sha: Sha, key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(sha.hmac(), key), data).as_ref().to_vec()
}

async fn scram(connection: &Connection, login: &Login, sha: Sha) -> Result<()> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut nonce = [0u8; 24];
    ring::rand::SystemRandom::new().fill(&mut nonce).map_err(|_| Error::Invalid("no random bytes".into()))?;
    let client_nonce = b64.encode(nonce);
    let user = login.user.replace('=', "=3D").replace(',', "=2C");
    let first_bare = format!("n={user},r={client_nonce}");
    let server_first = exchange(connection, format!("n,,{first_bare}").into_bytes()).await?;
    let server_first =
        String::from_utf8(server_first.to_vec()).map_err(|_| bad("server-first is not UTF-8"))?;
    let attr =
        |k: &str| server_first.split(',').find_map(|a| a.strip_prefix(k).and_then(|v| v.strip_prefix('=')));
    let server_nonce = attr("r").ok_or_else(|| bad("no nonce in server-first"))?;
    if !server_nonce.starts_with(&client_nonce) || server_nonce.len() == client_nonce.len() {
        return Err(bad("the server's nonce does not extend ours"));
    }
    let salt = b64.decode(attr("s").ok_or_else(|| bad("no salt"))?).map_err(|_| bad("bad salt"))?;
    let iterations: u32 = attr("i").and_then(|i| i.parse().ok()).ok_or_else(|| bad("bad iteration count"))?;
    let iterations = std::num::NonZeroU32::new(iterations).ok_or_else(|| bad("zero iterations"))?;
    let mut salted = vec![0u8; sha.digest().output_len()];
    pbkdf2::derive(sha.pbkdf2(), iterations, &salt, login.password.as_bytes(), &mut salted);
    let client_key = mac(sha, &salted, b"Client Key");
    let stored_key = digest::digest(sha.digest(), &client_key);
    let without_proof = format!("c=biws,r={server_nonce}");
    let auth_message = format!("{first_bare},{server_first},{without_proof}");
    let signature = mac(sha, stored_key.as_ref(), auth_message.as_bytes());
    let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(k, s)| k ^ s).collect();
    let server_final =
        exchange(connection, format!("{without_proof},p={}", b64.encode(proof)).into_bytes()).await?;
    let server_key = mac(sha, &salted, b"Server Key");
    let expected = format!("v={}", b64.encode(mac(sha, &server_key, auth_message.as_bytes())));
    if server_final.as_ref() != expected.as_bytes() {
        return Err(bad("the server's signature is wrong (it does not know the password)"));
    }
    Ok(())
}

fn bad(what: &str) -> Error {
    Error::Invalid(format!("SCRAM: {what}"))
}
