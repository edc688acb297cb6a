//! SaslHandshake (v1) and SaslAuthenticate (v0-2): PLAIN and SCRAM-SHA-256/512 logins against
//! the SCRAM credentials in the metadata image, and KIP-368 re-authentication (v1 answers
//! the session's lifetime). A failed login answers SASL_AUTHENTICATION_FAILED with one message
//! for every cause (no telling an unknown user from a wrong password), after a delay that
//! grows with the address's recent failures, and then the connection is closed.

use bytes::Bytes;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use riptide_quorum::ScramCredential;

use super::Ctx;
use crate::config::Mechanism;
use crate::security::scram::{self, ScramError};
use crate::security::session::{SaslStep, Session};

const FAILED: &str = "Authentication failed: Invalid username or password";

pub fn handshake(
    ctx: &Ctx,
    session: &Session,
    version: i16,
    request: SaslHandshakeRequest,
) -> SaslHandshakeResponse {
    let enabled = &ctx.broker.config.security.sasl_mechanisms;
    let names = enabled.iter().map(|m| StrBytes::from_static_str(m.name())).collect();
    let response = SaslHandshakeResponse::default().with_mechanisms(names);
    if version == 0 {
        // v0 would be followed by bare tokens (see versions::SUPPORTED).
        return response.with_error_code(ResponseError::UnsupportedVersion.code());
    }
    if !session.is_sasl() || matches!(*session.step.borrow(), SaslStep::Scram(..)) {
        return response.with_error_code(ResponseError::IllegalSaslState.code());
    }
    match Mechanism::parse(request.mechanism.as_str()).filter(|m| enabled.contains(m)) {
        Some(m) => {
            *session.step.borrow_mut() = SaslStep::Chosen(m);
            response.with_error_code(0)
        }
        None => response.with_error_code(ResponseError::UnsupportedSaslMechanism.code()),
    }
}

/// The answer, and whether the connection closes after it.
pub async fn authenticate(
    ctx: &Ctx,
    session: &Session,
    version: i16,
    request: SaslAuthenticateRequest,
) -> (SaslAuthenticateResponse, bool) {
    if !session.is_sasl() {
        // Kafka's answer on a listener without SASL: refused, the connection stays.
        let r = SaslAuthenticateResponse::default()
            .with_error_code(ResponseError::IllegalSaslState.code())
            .with_error_message(Some(StrBytes::from_static_str("this listener does not use SASL")));
        return (r, false);
    }
    let step = std::mem::replace(&mut *session.step.borrow_mut(), SaslStep::Start);
    let outcome = match step {
        SaslStep::Start => {
            let r = SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code())
                .with_error_message(Some(StrBytes::from_static_str("SaslAuthenticate before SaslHandshake")));
            return (r, true);
        }
        SaslStep::Chosen(Mechanism::Plain) => {
            plain(ctx, &request.auth_bytes).map(|user| (Some(user), Bytes::new()))
        }
        SaslStep::Chosen(m) => {
            let secret = &ctx.broker.security.fake_salt_secret;
            match scram::server_first(
                m,
                &request.auth_bytes,
                |u| credential(ctx, u, m),
                |u| scram::fake_salt(secret, u),
            ) {
                Ok((exchange, first)) => {
                    *session.step.borrow_mut() = SaslStep::Scram(m, exchange);
                    Ok((None, Bytes::from(first)))
                }
                Err(e) => Err(e),
            }
        }
        SaslStep::Scram(m, exchange) => scram::server_final(m, exchange, &request.auth_bytes)
            .map(|(user, last)| (Some(user), Bytes::from(last))),
    };
    match outcome {
        Ok((None, challenge)) => (SaslAuthenticateResponse::default().with_auth_bytes(challenge), false),
        Ok((Some(user), last)) => {
            let principal = format!("User:{user}");
            if session.authenticated() && session.is_sasl() && *session.principal() != *principal {
                let r = SaslAuthenticateResponse::default()
                    .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "Cannot change principals during re-authentication",
                    )));
                return (r, true);
            }
            let lifetime_ms = ctx.broker.config.security.reauth_ms;
            session.authenticate(&principal, lifetime_ms);
            tracing::debug!("{} authenticated as {principal}", session.peer);
            let r = SaslAuthenticateResponse::default()
                .with_auth_bytes(last)
                .with_session_lifetime_ms(if version >= 1 { lifetime_ms as i64 } else { 0 });
            (r, false)
        }
        Err(e) => {
            let failures = &ctx.broker.security.failed_logins;
            let delay = failures.failed(session.peer);
            let why = match e {
                ScramError::Malformed(m) => m,
                ScramError::BadCredentials => "bad credentials",
            };
            tracing::warn!(
                "authentication failed from {} on listener {} ({why}; {} recent failure(s) from this address, answering in {} ms)",
                session.peer,
                session.listener.name,
                failures.count(session.peer),
                delay.as_millis()
            );
            compio::time::sleep(delay).await;
            let message = match e {
                ScramError::Malformed(m) => format!("Authentication failed: {m}"),
                ScramError::BadCredentials => FAILED.to_string(),
            };
            let r = SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                .with_error_message(Some(StrBytes::from_string(message)));
            (r, true)
        }
    }
}

fn credential(ctx: &Ctx, user: &str, m: Mechanism) -> Option<ScramCredential> {
    let code = m.scram_code()?;
    let cat = ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner());
    cat.scram.get(user)?.get(&code).cloned()
}

/// PLAIN: `authzid \0 user \0 password`, checked against the user's SCRAM credential (either
/// mechanism). An unknown user costs the same key derivation as a known one.
fn plain(ctx: &Ctx, bytes: &[u8]) -> Result<String, ScramError> {
    let mut parts = bytes.split(|b| *b == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ScramError::Malformed("PLAIN message is not authzid NUL user NUL password"));
    };
    let user = std::str::from_utf8(user).map_err(|_| ScramError::Malformed("user name is not UTF-8"))?;
    if user.is_empty() || (!authzid.is_empty() && authzid != user.as_bytes()) {
        return Err(ScramError::Malformed("authorization id differs from the user name"));
    }
    let stored = [Mechanism::ScramSha256, Mechanism::ScramSha512]
        .into_iter()
        .find_map(|m| credential(ctx, user, m).map(|c| (m, c)));
    match stored {
        Some((m, c)) if scram::verify_password(m, &c, password) => Ok(user.to_string()),
        Some(_) => Err(ScramError::BadCredentials),
        None => {
            let decoy = ScramCredential {
                salt: scram::fake_salt(&ctx.broker.security.fake_salt_secret, user),
                stored_key: vec![0; 32],
                server_key: Vec::new(),
                iterations: scram::ITERATIONS_MIN,
            };
            let _ = scram::verify_password(Mechanism::ScramSha256, &decoy, password);
            Err(ScramError::BadCredentials)
        }
    }
}
