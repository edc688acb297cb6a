//! DescribeClientQuotas and AlterClientQuotas (KIP-546): client quotas per user, client id,
//! both, or IP address, kept in the metadata log (see `crate::quota` for their enforcement).
//! Checks and messages follow Kafka's controller (`ClientQuotaControlManager`,
//! `ClientQuotasImage`).

use std::collections::BTreeMap;

use kafka_protocol::messages::{
    alter_client_quotas_response, describe_client_quotas_response, AlterClientQuotasRequest,
    AlterClientQuotasResponse, DescribeClientQuotasRequest, DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use riptide_quorum::{AdminCommand, QuotaEntity, QuotaValue};

use super::{Ctx, RequestInfo};
use crate::quota::{self, check_value, keys_for};
use crate::security::acl::op;

const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

/// What a describe filter asks of one entity type: a name (`Some(None)`: the default entity),
/// or (`None`) any specified name.
type Filter = BTreeMap<String, Option<Option<String>>>;

fn invalid(message: impl Into<String>) -> (i16, String) {
    (ResponseError::InvalidRequest.code(), message.into())
}

fn filter(request: &DescribeClientQuotasRequest) -> Result<Filter, (i16, String)> {
    let mut f = Filter::new();
    for c in &request.components {
        let t = c.entity_type.as_str();
        if t.is_empty() {
            return Err(invalid("Invalid empty entity type."));
        }
        if f.contains_key(t) {
            return Err(invalid(format!("Entity type {t} cannot appear more than once in the filter.")));
        }
        if ![quota::USER, quota::CLIENT_ID, quota::IP].contains(&t) {
            return Err((ResponseError::UnsupportedVersion.code(), format!("Unsupported entity type {t}")));
        }
        let wanted = match (c.match_type, &c._match) {
            (MATCH_EXACT, Some(name)) => Some(Some(name.to_string())),
            (MATCH_EXACT, None) => {
                return Err(invalid("Request specified MATCH_TYPE_EXACT, but set match string to null."))
            }
            (MATCH_DEFAULT, None) => Some(None),
            (MATCH_DEFAULT, Some(_)) => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_DEFAULT, but also specified a match string.",
                ))
            }
            (MATCH_SPECIFIED, None) => None,
            (MATCH_SPECIFIED, Some(_)) => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.",
                ))
            }
            (other, _) => return Err(invalid(format!("Unknown match type {other}"))),
        };
        f.insert(t.to_string(), wanted);
    }
    if f.contains_key(quota::IP) && f.len() > 1 {
        return Err(invalid(
            "Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component.",
        ));
    }
    Ok(f)
}

fn matches(f: &Filter, entity: &QuotaEntity, strict: bool) -> bool {
    if strict && entity.len() != f.len() {
        return false;
    }
    f.iter().all(|(t, wanted)| match (entity.get(t), wanted) {
        (None, _) => false,
        (Some(name), Some(want)) => name == want,
        (Some(name), None) => name.is_some(),
    })
}

pub fn describe(
    ctx: &Ctx,
    info: &RequestInfo,
    request: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let refused = |(code, message): (i16, String)| {
        DescribeClientQuotasResponse::default()
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message)))
    };
    if !ctx.allowed_on_cluster(info, op::DESCRIBE_CONFIGS) {
        return refused((
            ResponseError::ClusterAuthorizationFailed.code(),
            "Cluster authorization failed.".into(),
        ));
    }
    let f = match filter(&request) {
        Ok(f) => f,
        Err(e) => return refused(e),
    };
    let cat = ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner());
    let entries = cat
        .client_quotas
        .iter()
        .filter(|q| matches(&f, &q.entity, request.strict))
        .map(|q| {
            let entity = q
                .entity
                .iter()
                .map(|(t, name)| {
                    describe_client_quotas_response::EntityData::default()
                        .with_entity_type(StrBytes::from_string(t.clone()))
                        .with_entity_name(name.clone().map(StrBytes::from_string))
                })
                .collect();
            let values = q
                .quotas
                .iter()
                .map(|(k, v)| {
                    describe_client_quotas_response::ValueData::default()
                        .with_key(StrBytes::from_string(k.clone()))
                        .with_value(v.0)
                })
                .collect();
            describe_client_quotas_response::EntryData::default().with_entity(entity).with_values(values)
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

/// Quota keys to set (`Some`) or remove.
type QuotaOps = BTreeMap<String, Option<QuotaValue>>;

/// One entry's entity and its operations, checked as Kafka's controller checks them.
fn checked(
    entry: &kafka_protocol::messages::alter_client_quotas_request::EntryData,
) -> Result<(QuotaEntity, QuotaOps), (i16, String)> {
    let parts: Vec<(&str, Option<&str>)> =
        entry.entity.iter().map(|e| (e.entity_type.as_str(), e.entity_name.as_deref())).collect();
    let keys = keys_for(&parts).map_err(invalid)?;
    let entity: QuotaEntity = parts.iter().map(|(t, n)| (t.to_string(), n.map(str::to_string))).collect();
    let mut ops = BTreeMap::new();
    for o in &entry.ops {
        let key = o.key.as_str();
        let Some((_, value_type)) = keys.iter().find(|(k, _)| *k == key) else {
            return Err(invalid(format!("Invalid configuration key {key}")));
        };
        if ops.contains_key(key) {
            return Err(invalid(format!("Duplicate quota key {key}")));
        }
        if o.remove {
            ops.insert(key.to_string(), None);
        } else {
            check_value(key, *value_type, o.value).map_err(invalid)?;
            ops.insert(key.to_string(), Some(QuotaValue(o.value)));
        }
    }
    Ok((entity, ops))
}

pub async fn alter(
    ctx: &Ctx,
    info: &RequestInfo,
    request: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let allowed = ctx.allowed_on_cluster(info, op::ALTER_CONFIGS);
    let mut entries = Vec::with_capacity(request.entries.len());
    for entry in &request.entries {
        let outcome = if !allowed {
            Err((ResponseError::ClusterAuthorizationFailed.code(), "Cluster authorization failed.".into()))
        } else {
            match checked(entry) {
                Err(e) => Err(e),
                Ok(_) if request.validate_only => Ok(()),
                Ok((entity, ops)) => {
                    super::configs::admin_command(ctx, AdminCommand::AlterClientQuotas { entity, ops }).await
                }
            }
        };
        let (code, message) = match outcome {
            Ok(()) => (0, None),
            Err((code, message)) => (code, Some(StrBytes::from_string(message))),
        };
        let entity = entry
            .entity
            .iter()
            .map(|e| {
                alter_client_quotas_response::EntityData::default()
                    .with_entity_type(e.entity_type.clone())
                    .with_entity_name(e.entity_name.clone())
            })
            .collect();
        entries.push(
            alter_client_quotas_response::EntryData::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_entity(entity),
        );
    }
    AlterClientQuotasResponse::default().with_entries(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_client_quotas_request::ComponentData;

    fn component(t: &str, match_type: i8, name: Option<&str>) -> ComponentData {
        ComponentData::default()
            .with_entity_type(StrBytes::from_string(t.into()))
            .with_match_type(match_type)
            .with_match(name.map(|n| StrBytes::from_string(n.into())))
    }

    fn entity(parts: &[(&str, Option<&str>)]) -> QuotaEntity {
        parts.iter().map(|(t, n)| (t.to_string(), n.map(str::to_string))).collect()
    }

    #[test]
    fn filters_match_as_kafka_describes() {
        let request = |components, strict| {
            DescribeClientQuotasRequest::default().with_components(components).with_strict(strict)
        };
        let alice = entity(&[("user", Some("alice"))]);
        let alice_app = entity(&[("user", Some("alice")), ("client-id", Some("app"))]);
        let default_user = entity(&[("user", None)]);
        let f = filter(&request(vec![component("user", MATCH_EXACT, Some("alice"))], false)).unwrap();
        assert!(matches(&f, &alice, false) && matches(&f, &alice_app, false));
        assert!(!matches(&f, &alice_app, true) && !matches(&f, &default_user, false));
        let f = filter(&request(vec![component("user", MATCH_SPECIFIED, None)], true)).unwrap();
        assert!(matches(&f, &alice, true) && !matches(&f, &default_user, true));
        let f = filter(&request(vec![component("user", MATCH_DEFAULT, None)], true)).unwrap();
        assert!(matches(&f, &default_user, true) && !matches(&f, &alice, true));
        let f = filter(&request(vec![], false)).unwrap();
        assert!(matches(&f, &alice, false));
        // Refused filters.
        for bad in [
            vec![component("user", MATCH_EXACT, None)],
            vec![component("user", MATCH_DEFAULT, Some("x"))],
            vec![component("user", 7, None)],
            vec![component("user", MATCH_SPECIFIED, None), component("user", MATCH_SPECIFIED, None)],
            vec![component("ip", MATCH_SPECIFIED, None), component("user", MATCH_SPECIFIED, None)],
        ] {
            assert_eq!(filter(&request(bad, false)).unwrap_err().0, ResponseError::InvalidRequest.code());
        }
        let unknown = filter(&request(vec![component("group", MATCH_SPECIFIED, None)], false));
        assert_eq!(unknown.unwrap_err().0, ResponseError::UnsupportedVersion.code());
    }
}
