//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka speaks them: the server's
//! side of the exchange, and the credentials it keeps (salt, iteration count, StoredKey,
//! ServerKey; never the password). The primitives (PBKDF2, HMAC, SHA-2, random bytes) are
//! ring's; this module is the message flow.
//!
//! An unknown user gets the same exchange as a known one (a salt derived from the name and a
//! per-process secret) and fails only at the proof, so the answers never tell whether a user
//! exists.

use base64::Engine;
use riptide_quorum::ScramCredential;

pub use riptide_client::scram::{
    hash, mac, new_salted, random_bytes, salted_password, Mechanism, ITERATIONS_MAX, ITERATIONS_MIN,
};

/// The stored form of a salted password (what AlterUserScramCredentials sends).
pub fn credential_from_salted(
    m: Mechanism,
    salt: Vec<u8>,
    salted: &[u8],
    iterations: u32,
) -> ScramCredential {
    let client_key = mac(m, salted, b"Client Key");
    ScramCredential {
        stored_key: hash(m, &client_key),
        server_key: mac(m, salted, b"Server Key"),
        salt,
        iterations,
    }
}

/// Checks a plain password against a stored SCRAM credential (how PLAIN logins are verified).
pub fn verify_password(m: Mechanism, cred: &ScramCredential, password: &[u8]) -> bool {
    let salted = salted_password(m, password, &cred.salt, cred.iterations);
    let client_key = mac(m, &salted, b"Client Key");
    constant_time_eq(&hash(m, &client_key), &cred.stored_key)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// RFC 5802 `saslname`: `=2C` is `,` and `=3D` is `=`.
fn unescape_name(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

#[derive(Debug, PartialEq, Eq)]
pub enum ScramError {
    /// The client's message does not follow RFC 5802 (or asks for what Kafka refuses).
    Malformed(&'static str),
    /// Wrong password or unknown user: the same error for both.
    BadCredentials,
}

/// Where one exchange stands.
pub enum Exchange {
    /// Waiting for client-final.
    SentFirst {
        user: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
        credential: Option<ScramCredential>,
    },
    Done,
}

/// Answers client-first with server-first. `lookup` finds the user's credential; `fake_salt`
/// makes a believable one for an unknown user.
pub fn server_first(
    m: Mechanism,
    client_first: &[u8],
    lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    fake_salt: impl FnOnce(&str) -> Vec<u8>,
) -> Result<(Exchange, String), ScramError> {
    let text = std::str::from_utf8(client_first).map_err(|_| ScramError::Malformed("not UTF-8"))?;
    // gs2-header: no channel binding ("n") or "client could but server did not" ("y"); an
    // authorization id, if given, must be the user itself (checked below).
    let (cbind, rest) = text.split_once(',').ok_or(ScramError::Malformed("no gs2 header"))?;
    if cbind != "n" && cbind != "y" {
        return Err(ScramError::Malformed("channel binding is not supported"));
    }
    let (authzid, bare) = rest.split_once(',').ok_or(ScramError::Malformed("no gs2 header"))?;
    let mut user = None;
    let mut nonce = None;
    for attr in bare.split(',') {
        match attr.split_once('=') {
            Some(("n", v)) => user = unescape_name(v),
            Some(("r", v)) => nonce = Some(v.to_string()),
            Some(("m", _)) => return Err(ScramError::Malformed("mandatory extension not supported")),
            Some(("tokenauth", _)) => {
                return Err(ScramError::Malformed("delegation tokens are not supported"))
            }
            _ => {}
        }
    }
    let user = user.filter(|u| !u.is_empty()).ok_or(ScramError::Malformed("no user name"))?;
    let client_nonce = nonce.filter(|n| !n.is_empty()).ok_or(ScramError::Malformed("no nonce"))?;
    if let Some(z) = authzid.strip_prefix("a=") {
        if unescape_name(z).as_deref() != Some(user.as_str()) {
            return Err(ScramError::Malformed("authorization id differs from the user name"));
        }
    }
    let credential = lookup(&user);
    let (salt, iterations) = match &credential {
        Some(c) => (c.salt.clone(), c.iterations),
        None => (fake_salt(&user), ITERATIONS_MIN),
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let nonce = format!("{client_nonce}{}", b64.encode(random_bytes(18)));
    let server_first = format!("r={nonce},s={},i={iterations}", b64.encode(&salt));
    let _ = m;
    Ok((
        Exchange::SentFirst {
            user,
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
            nonce,
            credential,
        },
        server_first,
    ))
}

/// Checks client-final's proof; on success the user name and server-final.
pub fn server_final(
    m: Mechanism,
    state: Exchange,
    client_final: &[u8],
) -> Result<(String, String), ScramError> {
    let Exchange::SentFirst { user, client_first_bare, server_first, nonce, credential } = state else {
        return Err(ScramError::Malformed("no exchange in progress"));
    };
    let text = std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed("not UTF-8"))?;
    let (without_proof, proof) = text.rsplit_once(",p=").ok_or(ScramError::Malformed("no proof"))?;
    let mut channel = None;
    let mut got_nonce = None;
    for attr in without_proof.split(',') {
        match attr.split_once('=') {
            Some(("c", v)) => channel = Some(v),
            Some(("r", v)) => got_nonce = Some(v),
            _ => {}
        }
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let channel = channel.ok_or(ScramError::Malformed("no channel binding"))?;
    let channel = b64.decode(channel).map_err(|_| ScramError::Malformed("bad channel binding"))?;
    if !channel.starts_with(b"n,") && !channel.starts_with(b"y,") {
        return Err(ScramError::Malformed("channel binding is not supported"));
    }
    // Kafka checks that the nonce ends with the server's, not that it equals it: some
    // librdkafka versions send the client nonce twice (client nonce + the whole server nonce).
    if !got_nonce.is_some_and(|n| n.ends_with(nonce.as_str())) {
        return Err(ScramError::Malformed("nonce mismatch"));
    }
    let proof = b64.decode(proof).map_err(|_| ScramError::Malformed("bad proof"))?;
    let Some(cred) = credential else { return Err(ScramError::BadCredentials) };
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let client_signature = mac(m, &cred.stored_key, auth_message.as_bytes());
    if proof.len() != client_signature.len() {
        return Err(ScramError::BadCredentials);
    }
    let client_key: Vec<u8> = proof.iter().zip(&client_signature).map(|(p, s)| p ^ s).collect();
    if !constant_time_eq(&hash(m, &client_key), &cred.stored_key) {
        return Err(ScramError::BadCredentials);
    }
    let server_signature = mac(m, &cred.server_key, auth_message.as_bytes());
    Ok((user, format!("v={}", b64.encode(server_signature))))
}

/// A salt for a user that does not exist: stable per name within this process, so that
/// asking twice does not give it away.
pub fn fake_salt(secret: &[u8], user: &str) -> Vec<u8> {
    mac(Mechanism::ScramSha256, secret, user.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client side of RFC 5802, for the test only.
    fn client_final(m: Mechanism, password: &str, client_first_bare: &str, server_first: &str) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        let attrs: Vec<(&str, &str)> = server_first.split(',').filter_map(|a| a.split_once('=')).collect();
        let get = |k: &str| attrs.iter().find(|(a, _)| *a == k).map(|(_, v)| *v).expect("attr");
        let salt = b64.decode(get("s")).expect("salt");
        let salted = salted_password(m, password.as_bytes(), &salt, get("i").parse().expect("i"));
        let client_key = mac(m, &salted, b"Client Key");
        let stored = hash(m, &client_key);
        let without_proof = format!("c=biws,r={}", get("r"));
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let sig = mac(m, &stored, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        format!("{without_proof},p={}", b64.encode(proof))
    }

    fn run(m: Mechanism, stored_password: Option<&str>, password: &str) -> Result<String, ScramError> {
        let cred = stored_password.map(|p| {
            let (salt, salted) = new_salted(m, p, 4096);
            credential_from_salted(m, salt, &salted, 4096)
        });
        let bare = "n=al=3Dice,r=fyko+d2lbbFgONRv9qkxdawL";
        let (state, first) =
            server_first(m, format!("n,,{bare}").as_bytes(), |_| cred.clone(), |u| fake_salt(b"k", u))?;
        let fin = client_final(m, password, bare, &first);
        server_final(m, state, fin.as_bytes()).map(|(user, _)| user)
    }

    #[test]
    fn exchange_accepts_the_password_and_nothing_else() {
        for m in [Mechanism::ScramSha256, Mechanism::ScramSha512] {
            assert_eq!(run(m, Some("s3cret"), "s3cret"), Ok("al=ice".to_string()));
            assert_eq!(run(m, Some("s3cret"), "guess"), Err(ScramError::BadCredentials));
            // An unknown user goes through the same steps and fails the same way.
            assert_eq!(run(m, None, "s3cret"), Err(ScramError::BadCredentials));
        }
    }

    /// riptide-client's SCRAM (the CLI's, the replica fetcher's) against this server side.
    #[test]
    fn the_client_crate_logs_in_and_checks_the_server() {
        use riptide_client::sasl::{Exchange as Client, Login};
        for (m, name) in
            [(Mechanism::ScramSha256, "SCRAM-SHA-256"), (Mechanism::ScramSha512, "SCRAM-SHA-512")]
        {
            let (salt, salted) = new_salted(m, "pw", 4096);
            let cred = credential_from_salted(m, salt, &salted, 4096);
            let login = |password: &str| Login {
                mechanism: name.into(),
                user: "a,b".into(),
                password: password.into(),
            };
            let run = |password: &str| -> Result<(), String> {
                let (mut client, first) = Client::start(&login(password)).map_err(|e| e.to_string())?;
                let (state, server_first) =
                    server_first(m, &first, |u| (u == "a,b").then(|| cred.clone()), |_| vec![1])
                        .map_err(|e| format!("{e:?}"))?;
                let fin =
                    client.next(server_first.as_bytes()).map_err(|e| e.to_string())?.expect("client-final");
                let (user, server_final) = server_final(m, state, &fin).map_err(|e| format!("{e:?}"))?;
                assert_eq!(user, "a,b");
                assert!(client.next(server_final.as_bytes()).map_err(|e| e.to_string())?.is_none());
                Ok(())
            };
            assert!(run("pw").is_ok());
            assert!(run("nope").is_err());
            // A server that does not know the password cannot fake server-final.
            let (mut client, first) = Client::start(&login("pw")).expect("start");
            let (_, server_first) =
                server_first(m, &first, |_| Some(cred.clone()), |_| vec![1]).expect("first");
            client.next(server_first.as_bytes()).expect("client-final");
            assert!(client.next(b"v=bm90IHRoZSBzaWduYXR1cmU=").is_err());
        }
    }

    #[test]
    fn plain_passwords_verify_against_the_stored_credential() {
        let m = Mechanism::ScramSha256;
        let (salt, salted) = new_salted(m, "pw", 4096);
        let cred = credential_from_salted(m, salt, &salted, 4096);
        assert!(verify_password(m, &cred, b"pw"));
        assert!(!verify_password(m, &cred, b"pW"));
    }

    #[test]
    fn malformed_messages_are_refused() {
        let m = Mechanism::ScramSha256;
        let first = |s: &str| server_first(m, s.as_bytes(), |_| None, |_| vec![1]).map(|_| ());
        assert!(first("p=tls-unique,,n=a,r=x").is_err());
        assert!(first("n,,n=a").is_err());
        assert!(first("n,a=bob,n=alice,r=x").is_err());
        assert!(first("n,,n=a=2,r=x").is_err());
        assert!(first("n,,n=a,r=x,tokenauth=true").is_err());
        assert!(first("\u{0}\u{0}").is_err());
    }
}
