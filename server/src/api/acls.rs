//! CreateAcls, DescribeAcls, DeleteAcls: ACL bindings in the metadata image, written through
//! the controller and answered once this broker applied them.

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse, DescribeAclsRequest,
    DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use riptide_quorum::{AclBinding, MetadataRecord};

use super::users::write_security_records;
use super::Ctx;
use crate::security::acl::{self, Filter};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub async fn create(ctx: &Ctx, request: CreateAclsRequest) -> CreateAclsResponse {
    let mut results = Vec::with_capacity(request.creations.len());
    let mut records = Vec::new();
    for c in request.creations {
        let b = AclBinding {
            resource_type: c.resource_type,
            name: c.resource_name.to_string(),
            pattern: c.resource_pattern_type,
            principal: c.principal.to_string(),
            host: c.host.to_string(),
            operation: c.operation,
            permission: c.permission_type,
        };
        match acl::validate(&b) {
            Ok(()) => {
                records.push(MetadataRecord::CreateAcl(b));
                results.push(Ok(()));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    let written = write_security_records(ctx, records).await.map_err(|e| e.to_string());
    let results = results
        .into_iter()
        .map(|r| match r.and(written.clone()) {
            Ok(()) => AclCreationResult::default(),
            Err(e) => AclCreationResult::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(StrBytes::from_string(e))),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

fn filter(
    resource_type: i8,
    name: Option<&StrBytes>,
    pattern: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    operation: i8,
    permission: i8,
) -> Filter {
    Filter {
        resource_type,
        name: name.map(|n| n.to_string()),
        pattern,
        principal: principal.map(|p| p.to_string()),
        host: host.map(|h| h.to_string()),
        operation,
        permission,
    }
}

/// Kafka refuses filters with UNKNOWN (0) codes.
fn check_filter(f: &Filter) -> Result<(), String> {
    if f.resource_type <= 0 || f.pattern <= 0 || f.operation <= 0 || f.permission <= 0 {
        return Err("the filter has an unknown resource, pattern, operation or permission type".into());
    }
    Ok(())
}

pub fn describe(ctx: &Ctx, request: DescribeAclsRequest) -> DescribeAclsResponse {
    let f = filter(
        request.resource_type_filter,
        request.resource_name_filter.as_ref(),
        request.pattern_type_filter,
        request.principal_filter.as_ref(),
        request.host_filter.as_ref(),
        request.operation,
        request.permission_type,
    );
    if let Err(e) = check_filter(&f) {
        return DescribeAclsResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(StrBytes::from_string(e)));
    }
    let acls = ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner()).acls.clone();
    let mut matched: Vec<&AclBinding> = acls.all().filter(|b| f.matches(b)).collect();
    matched.sort();
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for b in matched {
        let d = AclDescription::default()
            .with_principal(s(&b.principal))
            .with_host(s(&b.host))
            .with_operation(b.operation)
            .with_permission_type(b.permission);
        match resources.last_mut() {
            Some(r)
                if r.resource_type == b.resource_type
                    && r.resource_name.as_str() == b.name
                    && r.pattern_type == b.pattern =>
            {
                r.acls.push(d)
            }
            _ => resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(b.resource_type)
                    .with_resource_name(s(&b.name))
                    .with_pattern_type(b.pattern)
                    .with_acls(vec![d]),
            ),
        }
    }
    DescribeAclsResponse::default().with_resources(resources)
}

pub async fn delete(ctx: &Ctx, request: DeleteAclsRequest) -> DeleteAclsResponse {
    let acls = ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner()).acls.clone();
    let filters: Vec<Result<Filter, String>> = request
        .filters
        .iter()
        .map(|f: &DeleteAclsFilter| {
            let f = filter(
                f.resource_type_filter,
                f.resource_name_filter.as_ref(),
                f.pattern_type_filter,
                f.principal_filter.as_ref(),
                f.host_filter.as_ref(),
                f.operation,
                f.permission_type,
            );
            check_filter(&f).map(|_| f)
        })
        .collect();
    let matched: Vec<Vec<AclBinding>> = filters
        .iter()
        .map(|f| match f {
            Ok(f) => acls.all().filter(|b| f.matches(b)).cloned().collect(),
            Err(_) => Vec::new(),
        })
        .collect();
    let mut records: Vec<MetadataRecord> = Vec::new();
    for b in matched.iter().flatten() {
        let r = MetadataRecord::DeleteAcl(b.clone());
        if !records.contains(&r) {
            records.push(r);
        }
    }
    let written = write_security_records(ctx, records).await.map_err(|e| e.to_string());
    let filter_results = filters
        .into_iter()
        .zip(matched)
        .map(|(f, bindings)| match (f.as_ref(), &written) {
            (Err(e), _) | (Ok(_), Err(e)) => DeleteAclsFilterResult::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(StrBytes::from_string(e.clone()))),
            (Ok(_), Ok(())) => DeleteAclsFilterResult::default().with_matching_acls(
                bindings
                    .iter()
                    .map(|b| {
                        DeleteAclsMatchingAcl::default()
                            .with_resource_type(b.resource_type)
                            .with_resource_name(s(&b.name))
                            .with_pattern_type(b.pattern)
                            .with_principal(s(&b.principal))
                            .with_host(s(&b.host))
                            .with_operation(b.operation)
                            .with_permission_type(b.permission)
                    })
                    .collect(),
            ),
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(filter_results)
}
