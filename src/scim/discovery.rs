//! `ServiceProviderConfig`, `ResourceTypes` and `Schemas` (RFC 7644 section 4), made from the
//! same tables the service runs on.

use serde_json::{json, Value};

use super::schema::{self, RESOURCE_TYPES, SCHEMAS};
use super::{ScimError, LIST_RESPONSE, MAX_RESULTS};

pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://github.com/provost-dev/provost#scim",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A Provost API token (`provost token create --scopes scim:read,scim:write`) in `Authorization: Bearer TOKEN`.",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig"),
        },
    })
}

fn list(items: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": items.len(),
        "startIndex": 1,
        "itemsPerPage": items.len(),
        "Resources": items,
    })
}

pub fn resource_types(base: &str) -> Value {
    list(
        RESOURCE_TYPES
            .iter()
            .map(|r| schema::resource_type_json(r, base))
            .collect(),
    )
}

pub fn resource_type(base: &str, name: &str) -> Result<Value, ScimError> {
    schema::resource_type(name)
        .map(|r| schema::resource_type_json(r, base))
        .ok_or_else(|| {
            ScimError::not_found(format!(
                "no resource type `{name}`; there are {}",
                RESOURCE_TYPES
                    .iter()
                    .map(|r| r.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

pub fn schemas(base: &str) -> Value {
    list(
        SCHEMAS
            .iter()
            .map(|s| schema::schema_json(s, base))
            .collect(),
    )
}

pub fn schema(base: &str, id: &str) -> Result<Value, ScimError> {
    schema::schema(id)
        .map(|s| schema::schema_json(s, base))
        .ok_or_else(|| ScimError::not_found(format!("no schema `{id}`; GET /Schemas lists them")))
}
