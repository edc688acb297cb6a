//! AlterUserScramCredentials and DescribeUserScramCredentials: SCRAM users in the metadata
//! image. The client sends a salted password (never the password); the broker keeps only the
//! salt, iteration count, StoredKey and ServerKey derived from it. Describe shows mechanisms
//! and iteration counts, never keys.

use std::collections::BTreeSet;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use riptide_quorum::{AdminCommand, MetadataRecord};

use super::Ctx;
use crate::security::scram;

type Verdict = Result<(), (ResponseError, String)>;

pub async fn alter(
    ctx: &Ctx,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let mut verdicts: Vec<(String, Verdict)> = Vec::new();
    let mut records = Vec::new();
    // Kafka answers a (user, mechanism) named twice in one request with DUPLICATE_RESOURCE
    // for everything of that user.
    let pairs: Vec<(String, i8)> = request
        .deletions
        .iter()
        .map(|d| (d.name.to_string(), d.mechanism))
        .chain(request.upsertions.iter().map(|u| (u.name.to_string(), u.mechanism)))
        .collect();
    let mut seen = BTreeSet::new();
    let dupes: BTreeSet<String> =
        pairs.iter().filter(|p| !seen.insert((*p).clone())).map(|p| p.0.clone()).collect();
    let existing = ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner()).scram.clone();
    for d in &request.deletions {
        let user = d.name.to_string();
        let verdict = if dupes.contains(&user) {
            Err((ResponseError::DuplicateResource, format!("user {user} names a mechanism more than once")))
        } else if user.is_empty() {
            Err((ResponseError::UnacceptableCredential, "empty user name".into()))
        } else if scram::Mechanism::from_scram_code(d.mechanism).is_none() {
            Err((ResponseError::UnsupportedSaslMechanism, format!("unknown SCRAM mechanism {}", d.mechanism)))
        } else if !existing.get(&user).is_some_and(|m| m.contains_key(&d.mechanism)) {
            Err((ResponseError::ResourceNotFound, format!("user {user} has no such credential to delete")))
        } else {
            records
                .push(MetadataRecord::DeleteScramCredential { user: user.clone(), mechanism: d.mechanism });
            Ok(())
        };
        verdicts.push((user, verdict));
    }
    for u in &request.upsertions {
        let user = u.name.to_string();
        let verdict = match scram::Mechanism::from_scram_code(u.mechanism) {
            _ if dupes.contains(&user) => Err((
                ResponseError::DuplicateResource,
                format!("user {user} names a mechanism more than once"),
            )),
            _ if user.is_empty() => Err((ResponseError::UnacceptableCredential, "empty user name".into())),
            None => Err((
                ResponseError::UnsupportedSaslMechanism,
                format!("unknown SCRAM mechanism {}", u.mechanism),
            )),
            Some(_)
                if !(scram::ITERATIONS_MIN as i32..=scram::ITERATIONS_MAX as i32).contains(&u.iterations) =>
            {
                Err((
                    ResponseError::UnacceptableCredential,
                    format!(
                        "iterations {} outside {}..={}",
                        u.iterations,
                        scram::ITERATIONS_MIN,
                        scram::ITERATIONS_MAX
                    ),
                ))
            }
            Some(_) if u.salt.is_empty() || u.salted_password.is_empty() => Err((
                ResponseError::UnacceptableCredential,
                "salt and salted password must not be empty".into(),
            )),
            Some(m) => {
                let credential = scram::credential_from_salted(
                    m,
                    u.salt.to_vec(),
                    &u.salted_password,
                    u.iterations as u32,
                );
                records.push(MetadataRecord::SetScramCredential {
                    user: user.clone(),
                    mechanism: u.mechanism,
                    credential,
                });
                Ok(())
            }
        };
        verdicts.push((user, verdict));
    }
    let written = write_security_records(ctx, records).await;
    // One result per user (Kafka's shape); a user's first error wins.
    let mut results: Vec<AlterUserScramCredentialsResult> = Vec::new();
    for (user, verdict) in verdicts {
        let verdict = match (&verdict, &written) {
            (Ok(()), Err(e)) => Err((ResponseError::UnknownServerError, e.to_string())),
            _ => verdict,
        };
        if let Some(r) = results.iter_mut().find(|r| r.user.as_str() == user) {
            if r.error_code == 0 {
                if let Err((code, msg)) = verdict {
                    r.error_code = code.code();
                    r.error_message = Some(StrBytes::from_string(msg));
                }
            }
            continue;
        }
        let mut r = AlterUserScramCredentialsResult::default().with_user(StrBytes::from_string(user));
        if let Err((code, msg)) = verdict {
            r = r.with_error_code(code.code()).with_error_message(Some(StrBytes::from_string(msg)));
        }
        results.push(r);
    }
    AlterUserScramCredentialsResponse::default().with_results(results)
}

pub fn describe(
    ctx: &Ctx,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let scram = ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner()).scram.clone();
    let users: Vec<String> = match request.users {
        Some(list) if !list.is_empty() => list.iter().map(|u| u.name.to_string()).collect(),
        _ => scram.keys().cloned().collect(),
    };
    let mut seen = BTreeSet::new();
    let results = users
        .into_iter()
        .map(|user| {
            let r =
                DescribeUserScramCredentialsResult::default().with_user(StrBytes::from_string(user.clone()));
            if !seen.insert(user.clone()) {
                return r
                    .with_error_code(ResponseError::DuplicateResource.code())
                    .with_error_message(Some(StrBytes::from_string(format!("user {user} asked for twice"))));
            }
            match scram.get(&user) {
                Some(m) => r.with_credential_infos(
                    m.iter()
                        .map(|(code, c)| {
                            CredentialInfo::default()
                                .with_mechanism(*code)
                                .with_iterations(c.iterations as i32)
                        })
                        .collect(),
                ),
                None => r.with_error_code(ResponseError::ResourceNotFound.code()).with_error_message(Some(
                    StrBytes::from_string(format!(
                        "Attempt to describe a user credential that does not exist: {user}"
                    )),
                )),
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

/// The answer when the principal may not alter the cluster: every user named fails.
pub fn denied(request: AlterUserScramCredentialsRequest) -> AlterUserScramCredentialsResponse {
    let mut users: Vec<StrBytes> = request
        .deletions
        .into_iter()
        .map(|d| d.name)
        .chain(request.upsertions.into_iter().map(|u| u.name))
        .collect();
    users.dedup();
    let results = users
        .into_iter()
        .map(|u| {
            AlterUserScramCredentialsResult::default()
                .with_user(u)
                .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

/// Has the controller write user or ACL records (nothing to do for none); answered once this
/// broker applied them.
pub async fn write_security_records(
    ctx: &Ctx,
    records: Vec<MetadataRecord>,
) -> Result<(), riptide_quorum::ControllerError> {
    if records.is_empty() {
        return Ok(());
    }
    ctx.broker.cluster.admin(AdminCommand::Security { records }).await.map(drop)
}
