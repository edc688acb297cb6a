//! ACLs in Kafka's model and the authorizer that reads them (Kafka's StandardAuthorizer rules):
//! super users may do anything; a matching DENY wins over any ALLOW; READ, WRITE, DELETE and
//! ALTER imply DESCRIBE, ALTER_CONFIGS implies DESCRIBE_CONFIGS, ALL is every operation; a
//! resource no ACL names is open only with `allow.everyone.if.no.acl.found`.
//!
//! The codes are Kafka's wire codes (resource type, pattern type, operation, permission).

use std::collections::HashMap;

use riptide_quorum::AclBinding;

pub use riptide_client::security::{op, pattern, permission, resource, ANONYMOUS, CLUSTER_NAME, WILDCARD};

/// Checks a binding to be created: concrete types only, a principal `Type:name`.
pub fn validate(b: &AclBinding) -> Result<(), String> {
    if !(resource::TOPIC..=resource::USER).contains(&b.resource_type) {
        return Err(format!("invalid resource type {}", b.resource_type));
    }
    if b.pattern != pattern::LITERAL && b.pattern != pattern::PREFIXED {
        return Err(format!("invalid pattern type {} (LITERAL or PREFIXED)", b.pattern));
    }
    if b.name.is_empty() {
        return Err("resource name must not be empty".into());
    }
    if b.resource_type == resource::CLUSTER && b.name != CLUSTER_NAME {
        return Err(format!("the cluster resource is named {CLUSTER_NAME}"));
    }
    if !(op::ALL..=op::DESCRIBE_TOKENS).contains(&b.operation) {
        return Err(format!("invalid operation {}", b.operation));
    }
    if b.permission != permission::ALLOW && b.permission != permission::DENY {
        return Err(format!("invalid permission type {}", b.permission));
    }
    match b.principal.split_once(':') {
        Some((t, n)) if !t.is_empty() && !n.is_empty() => {}
        _ => return Err(format!("principal {:?} is not Type:name (User:alice)", b.principal)),
    }
    if b.host.is_empty() {
        return Err("host must be an address or *".into());
    }
    Ok(())
}

/// What DescribeAcls and DeleteAcls select (Kafka's AclBindingFilter): `None` matches any.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub resource_type: i8,
    pub name: Option<String>,
    pub pattern: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

impl Filter {
    pub fn matches(&self, b: &AclBinding) -> bool {
        let resource_ok = self.resource_type == resource::ANY || self.resource_type == b.resource_type;
        let pattern_ok = match self.pattern {
            pattern::ANY => self.name.as_ref().is_none_or(|n| *n == b.name),
            pattern::MATCH => self.name.as_ref().is_none_or(|n| {
                b.name == *n
                    || (b.pattern == pattern::LITERAL && b.name == WILDCARD)
                    || (b.pattern == pattern::PREFIXED && n.starts_with(&b.name))
            }),
            p => p == b.pattern && self.name.as_ref().is_none_or(|n| *n == b.name),
        };
        resource_ok
            && pattern_ok
            && self.principal.as_ref().is_none_or(|p| *p == b.principal)
            && self.host.as_ref().is_none_or(|h| *h == b.host)
            && (self.operation == op::ANY || self.operation == b.operation)
            && (self.permission == permission::ANY || self.permission == b.permission)
    }
}

/// The ACLs by resource type, as this broker last applied them.
#[derive(Default, Debug)]
pub struct AclIndex {
    by_type: HashMap<i8, Vec<AclBinding>>,
}

impl AclIndex {
    pub fn new<'a>(acls: impl IntoIterator<Item = &'a AclBinding>) -> AclIndex {
        let mut by_type: HashMap<i8, Vec<AclBinding>> = HashMap::new();
        for a in acls {
            by_type.entry(a.resource_type).or_default().push(a.clone());
        }
        AclIndex { by_type }
    }

    pub fn all(&self) -> impl Iterator<Item = &AclBinding> {
        self.by_type.values().flatten()
    }

    fn on_resource<'a>(&'a self, resource_type: i8, name: &'a str) -> impl Iterator<Item = &'a AclBinding> {
        self.by_type.get(&resource_type).into_iter().flatten().filter(move |a| match a.pattern {
            pattern::LITERAL => a.name == name || a.name == WILDCARD,
            pattern::PREFIXED => name.starts_with(&a.name),
            _ => false,
        })
    }
}

/// The broker's authorization settings.
#[derive(Clone, Debug, Default)]
pub struct Authorizer {
    pub enabled: bool,
    pub super_users: Vec<String>,
    pub allow_if_no_acl: bool,
}

impl Authorizer {
    pub fn from_config(c: &crate::config::SecurityConfig) -> Authorizer {
        Authorizer {
            enabled: c.authorizer,
            super_users: c.super_users.clone(),
            allow_if_no_acl: c.allow_everyone_if_no_acl_found,
        }
    }

    /// May `principal` connecting from `host` do `operation` on the resource?
    pub fn allows(
        &self,
        acls: &AclIndex,
        principal: &str,
        host: &str,
        operation: i8,
        resource_type: i8,
        name: &str,
    ) -> bool {
        if !self.enabled || self.super_users.iter().any(|s| s == principal) {
            return true;
        }
        let mut any = false;
        let mut allowed = false;
        for a in acls.on_resource(resource_type, name) {
            any = true;
            let who = a.principal == principal || a.principal == "User:*";
            let whence = a.host == host || a.host == WILDCARD;
            if !(who && whence) {
                continue;
            }
            if a.permission == permission::DENY && (a.operation == operation || a.operation == op::ALL) {
                return false;
            }
            if a.permission == permission::ALLOW && implies(a.operation, operation) {
                allowed = true;
            }
        }
        allowed || (!any && self.allow_if_no_acl)
    }
}

/// Does an ALLOW for `granted` also allow `wanted`?
fn implies(granted: i8, wanted: i8) -> bool {
    granted == wanted
        || granted == op::ALL
        || (wanted == op::DESCRIBE && matches!(granted, op::READ | op::WRITE | op::DELETE | op::ALTER))
        || (wanted == op::DESCRIBE_CONFIGS && granted == op::ALTER_CONFIGS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(rt: i8, name: &str, pat: i8, who: &str, o: i8, perm: i8) -> AclBinding {
        AclBinding {
            resource_type: rt,
            name: name.into(),
            pattern: pat,
            principal: who.into(),
            host: "*".into(),
            operation: o,
            permission: perm,
        }
    }

    #[test]
    fn kafka_rules() {
        let acls = AclIndex::new(&[
            acl(resource::TOPIC, "orders", pattern::LITERAL, "User:alice", op::READ, permission::ALLOW),
            acl(resource::TOPIC, "logs-", pattern::PREFIXED, "User:*", op::WRITE, permission::ALLOW),
            acl(resource::TOPIC, "logs-secret", pattern::LITERAL, "User:bob", op::ALL, permission::DENY),
        ]);
        let z = Authorizer { enabled: true, super_users: vec!["User:admin".into()], allow_if_no_acl: false };
        let ok = |who: &str, o: i8, name: &str| z.allows(&acls, who, "10.0.0.1", o, resource::TOPIC, name);
        assert!(ok("User:alice", op::READ, "orders"));
        assert!(ok("User:alice", op::DESCRIBE, "orders"), "READ implies DESCRIBE");
        assert!(!ok("User:alice", op::WRITE, "orders"));
        assert!(!ok("User:bob", op::READ, "orders"));
        assert!(ok("User:bob", op::WRITE, "logs-app"), "prefixed, any user");
        assert!(!ok("User:bob", op::WRITE, "logs-secret"), "deny wins");
        assert!(ok("User:admin", op::DELETE, "orders"), "super user");
        assert!(!ok("User:alice", op::READ, "unnamed"), "no ACL: denied by default");
        let open = Authorizer { allow_if_no_acl: true, ..z.clone() };
        assert!(open.allows(&acls, "User:x", "h", op::READ, resource::TOPIC, "unnamed"));
        assert!(!open.allows(&acls, "User:x", "h", op::READ, resource::TOPIC, "orders"), "named: ACLs apply");
        let off = Authorizer::default();
        assert!(off.allows(&acls, "User:x", "h", op::READ, resource::TOPIC, "orders"), "no authorizer");
    }

    #[test]
    fn filters_select_like_kafka() {
        let a = acl(resource::TOPIC, "logs-", pattern::PREFIXED, "User:*", op::WRITE, permission::ALLOW);
        let any = Filter {
            resource_type: resource::ANY,
            pattern: pattern::ANY,
            operation: op::ANY,
            permission: permission::ANY,
            ..Default::default()
        };
        assert!(any.matches(&a));
        let matching = Filter { pattern: pattern::MATCH, name: Some("logs-app".into()), ..any.clone() };
        assert!(matching.matches(&a));
        let literal = Filter { pattern: pattern::LITERAL, name: Some("logs-".into()), ..any.clone() };
        assert!(!literal.matches(&a));
        assert!(validate(&a).is_ok());
        assert!(validate(&AclBinding { principal: "alice".into(), ..a.clone() }).is_err());
        assert!(validate(&AclBinding { pattern: pattern::MATCH, ..a }).is_err());
    }
}
