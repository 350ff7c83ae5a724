//! The document's `components.schemas`: JSON Schema (2020-12, as OpenAPI 3.1 uses it) of the
//! bodies the API takes and gives. Enumerations come from the code's own tables (`ALL`
//! constants), and the SCIM resources from the SCIM attribute tables that the service itself
//! filters and renders with; the object shapes are pinned by a test that checks real answers
//! against them.

use serde_json::{json, Map, Value};

use crate::provisioning::request::RequestState;
use crate::provisioning::Action;
use crate::reports::Report;
use crate::scim::schema::{self as scim, Attr, Mutability, ResourceType, Type};
use crate::store::sync::Entity;
use crate::store::Backend;
use provost_connector::model::EntitlementKind;

/// `{"$ref": "#/components/schemas/NAME"}`.
pub fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn text() -> Value {
    json!({"type": "string"})
}

fn nullable(ty: &str) -> Value {
    json!({"type": [ty, "null"]})
}

fn time() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn nullable_time() -> Value {
    json!({"type": ["string", "null"], "format": "date-time"})
}

fn one_of_strings<'a>(values: impl IntoIterator<Item = &'a str>) -> Value {
    json!({"type": "string", "enum": values.into_iter().collect::<Vec<_>>()})
}

/// An object with exactly these properties, the first `required` of them always present.
fn object(properties: Value, required: &[&str]) -> Value {
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

pub fn actions() -> Value {
    one_of_strings(Action::ALL.iter().map(|a| a.as_str()))
}

pub fn request_states() -> Value {
    one_of_strings(RequestState::ALL.iter().map(|s| s.as_str()))
}

pub fn entities() -> Value {
    one_of_strings(Entity::ALL.iter().map(|e| e.as_str()))
}

pub fn report_names() -> Value {
    one_of_strings(Report::NAMES)
}

fn entitlement_kinds() -> Value {
    one_of_strings(EntitlementKind::ALL.iter().map(|k| k.as_str()))
}

pub fn components() -> Value {
    let mut schemas = Map::new();
    let mut add = |name: &str, schema: Value| {
        schemas.insert(name.to_owned(), schema);
    };
    add(
        "Error",
        object(
            json!({
                "error": object(json!({
                    "code": {"type": "string", "description": "What went wrong, for programs: `not_found`, `bad_request`, `unauthorized`, `forbidden`, `unavailable`, `internal`, or the refusal's own code."},
                    "message": {"type": "string", "description": "What went wrong and what to do, for people."},
                }), &["code", "message"]),
            }),
            &["error"],
        ),
    );
    add(
        "Health",
        object(
            json!({
                "status": one_of_strings(["ok", "ready", "unavailable"]),
                "reason": text(),
                "database": object(json!({
                    "backend": one_of_strings([Backend::Sqlite.name(), Backend::Postgres.name()]),
                    "status": one_of_strings(["ok", "unreachable"]),
                }), &["backend", "status"]),
            }),
            &["status"],
        ),
    );
    add("AccessRequestInput", access_request_input());
    add("AccessRequest", access_request());
    add(
        "AccessRequestList",
        object(
            json!({
                "requests": {"type": "array", "items": reference("AccessRequest")},
                "next_before": {"type": ["integer", "null"], "description": "Pass as `before` for the next page; null on the last."},
            }),
            &["requests", "next_before"],
        ),
    );
    add("Decision", object(json!({ "comment": text() }), &[]));
    add("SyncRuns", sync_runs());
    add("ChangeList", change_list());
    add("ScimError", scim_error());
    add("ScimListResponse", scim_list(json!({"type": "object"})));
    add("ScimSearchRequest", scim_search_request());
    add("ScimPatchOp", scim_patch_op());
    for resource in scim::RESOURCE_TYPES {
        add(&scim_component(resource), scim_resource(resource));
    }
    add(
        "ScimDiscovery",
        json!({
            "type": "object",
            "description": "A ServiceProviderConfig, ResourceType or Schema resource (RFC 7643 sections 5-7), or a ListResponse of them.",
        }),
    );
    Value::Object(schemas)
}

fn access_request_input() -> Value {
    let user_changes = object(
        json!({
            "username": text(), "email": text(), "first_name": text(), "last_name": text(),
            "title": text(), "department": text(), "federation_id": text(),
        }),
        &[],
    );
    let new_user = object(
        json!({
            "username": text(), "email": text(), "last_name": text(), "first_name": text(),
            "alias": {"type": "string", "maxLength": 8}, "federation_id": text(),
            "department": text(), "title": text(),
        }),
        &["username", "email", "last_name"],
    );
    let entitlement = json!({
        "description": "An entitlement by Salesforce id, or by type and API name.",
        "oneOf": [
            {"type": "string"},
            object(json!({"type": entitlement_kinds(), "name": text()}), &["type", "name"]),
        ],
    });
    let mut schema = object(
        json!({
            "action": actions(),
            "user": {"type": "string", "description": "The Salesforce user: its id, username or email."},
            "entitlement": entitlement,
            "justification": text(),
            "requester": {"type": "string", "description": "Who asked, when not the caller itself."},
            "ticket": {"type": "string", "description": "An external ticket reference."},
            "expires_at": {"type": "string", "format": "date-time", "description": "When a time-bound grant ends."},
            "new_user": new_user,
            "changes": user_changes,
        }),
        &["action"],
    );
    schema["description"] = json!(
        "What to do. `grant`/`revoke` take `user` and `entitlement`; `change_profile` and \
         `change_role` take `user` and the new `entitlement`; `create_user` takes `new_user`; \
         `update_user` takes `user` and `changes`; the others take `user`."
    );
    // Null is how a serialised input shows absent fields.
    for field in [
        "user",
        "entitlement",
        "justification",
        "requester",
        "ticket",
        "expires_at",
        "new_user",
    ] {
        let inner = schema["properties"][field].take();
        schema["properties"][field] = json!({"anyOf": [inner, {"type": "null"}]});
    }
    schema
}

fn access_request() -> Value {
    let entry = object(
        json!({
            "seq": {"type": "integer"},
            "at": time(),
            "actor": text(),
            "event": text(),
            "data": {},
        }),
        &["seq", "at", "actor", "event", "data"],
    );
    object(
        json!({
            "id": {"type": "integer"},
            "action": actions(),
            "state": request_states(),
            "account_id": nullable("string"),
            "entitlement_id": nullable("string"),
            "requester": text(),
            "created_by": {"type": "string", "description": "The token that created the request."},
            "approver": nullable("string"),
            "justification": nullable("string"),
            "ticket": nullable("string"),
            "expires_at": nullable_time(),
            "idempotency_key": nullable("string"),
            "input": reference("AccessRequestInput"),
            "plan": {"type": "object", "description": "What will be (or was) written to Salesforce, and the checks made beforehand."},
            "result": {"description": "Salesforce's answer, record by record, once executed."},
            "error": nullable("string"),
            "attempts": {"type": "integer"},
            "next_attempt_at": nullable_time(),
            "created_at": time(),
            "updated_at": time(),
            "finished_at": nullable_time(),
            "timeline": {"type": "array", "items": entry, "description": "The audit entries of the request (on GET of one request)."},
            "gains": {"type": "array", "items": {"type": "string"}, "description": "On GET of a grant pending approval: the sensitive system permissions (as Setup names them, e.g. `Modify All Data`) that approving it would add to what the user holds now, through the set, the group's aggregate or the profile's set; empty when none."},
            "review_item": {"type": ["object", "null"], "description": "On GET of one request: the access-review item whose revoke decision made it (`campaign`, `item`, `decided_by`, `url`), or null."},
        }),
        &[
            "id",
            "action",
            "state",
            "requester",
            "created_by",
            "input",
            "plan",
            "attempts",
            "created_at",
            "updated_at",
        ],
    )
}

fn sync_runs() -> Value {
    let counts = object(
        json!({
            "created": {"type": "integer"},
            "updated": {"type": "integer"},
            "removed": {"type": "integer"},
        }),
        &["created", "updated", "removed"],
    );
    let run = object(
        json!({
            "id": {"type": "integer"},
            "mode": one_of_strings(["full", "incremental"]),
            "started_by": text(),
            "status": one_of_strings(["running", "paused", "succeeded", "failed"]),
            "pause_reason": {"type": ["string", "null"], "enum": ["daily_limit", "api_budget", null]},
            "started_at": time(),
            "updated_at": time(),
            "finished_at": nullable_time(),
            "attempts": {"type": "integer"},
            "api_calls": {"type": "integer"},
            "api_used": nullable("integer"),
            "api_limit": nullable("integer"),
            "counts": object(json!({
                "accounts": counts.clone(),
                "entitlements": counts.clone(),
                "grants": counts.clone(),
                "permissions": counts,
                "rows_read": {"type": "integer"},
                "grants_skipped": {"type": "integer"},
                "permissions_skipped": {"type": "integer"},
            }), &["accounts", "entitlements", "grants", "permissions", "rows_read"]),
            "error": nullable("string"),
            "duration_seconds": nullable("number"),
        }),
        &["id", "mode", "status", "started_at", "counts", "api_calls"],
    );
    let health = object(
        json!({
            "window_days": {"type": "integer", "description": "health is over the runs started in the last this many days, whatever `limit` lists"},
            "runs": {"type": "integer"},
            "finished_runs": {"type": "integer"},
            "failed_runs": {"type": "integer", "description": "including syncs that could not start"},
            "success_rate": nullable("number"),
            "average_duration_seconds": nullable("number"),
            "last_success_at": nullable_time(),
            "last_failure_at": nullable_time(),
            "last_error": nullable("string"),
            "failing": {"type": "boolean", "description": "the latest finished run failed"},
            "api_used": nullable("integer"),
            "api_limit": nullable("integer"),
        }),
        &[
            "window_days",
            "runs",
            "finished_runs",
            "failed_runs",
            "failing",
        ],
    );
    object(
        json!({
            "org": text(),
            "health": health,
            "runs": {"type": "array", "items": run},
        }),
        &["org", "health", "runs"],
    )
}

fn change_list() -> Value {
    let change = object(
        json!({
            "id": {"type": "integer"},
            "run_id": {"type": ["integer", "null"], "description": "The sync run that observed the change; null when Provost made it."},
            "request_id": {"type": ["integer", "null"], "description": "The access request whose execution made the change."},
            "resource": text(),
            "entity": entities(),
            "object_id": text(),
            "op": one_of_strings(["created", "updated", "removed"]),
            "fields": {"type": ["array", "null"], "items": {"type": "string"}},
            "before": {"type": ["object", "null"]},
            "after": {"type": ["object", "null"]},
            "observed_at": time(),
        }),
        &["id", "resource", "entity", "object_id", "op", "observed_at"],
    );
    object(
        json!({
            "org": text(),
            "changes": {"type": "array", "items": change},
            "next_after": {"type": ["integer", "null"], "description": "Pass as `after` for the next page; null on the last."},
        }),
        &["org", "changes", "next_after"],
    )
}

/// The component name of a SCIM resource type: `ScimUser`, `ScimGroup`, ...
pub fn scim_component(resource: &ResourceType) -> String {
    format!("Scim{}", resource.name)
}

fn scim_error() -> Value {
    object(
        json!({
            "schemas": {"type": "array", "items": one_of_strings(["urn:ietf:params:scim:api:messages:2.0:Error"])},
            "status": {"type": "string", "description": "The HTTP status, as a string."},
            "scimType": one_of_strings([
                "invalidFilter", "tooMany", "uniqueness", "mutability", "invalidSyntax",
                "invalidPath", "noTarget", "invalidValue", "invalidVers", "sensitive",
            ]),
            "detail": text(),
        }),
        &["schemas", "status"],
    )
}

/// A ListResponse whose `Resources` are `item`.
pub fn scim_list(item: Value) -> Value {
    object(
        json!({
            "schemas": {"type": "array", "items": one_of_strings(["urn:ietf:params:scim:api:messages:2.0:ListResponse"])},
            "totalResults": {"type": "integer"},
            "startIndex": {"type": "integer"},
            "itemsPerPage": {"type": "integer"},
            "Resources": {"type": "array", "items": item},
        }),
        &["schemas", "totalResults", "Resources"],
    )
}

fn scim_search_request() -> Value {
    json!({
        "type": "object",
        "description": "RFC 7644 section 3.4.3; parameter names are case-insensitive.",
        "properties": {
            "schemas": {"type": "array", "items": one_of_strings(["urn:ietf:params:scim:api:messages:2.0:SearchRequest"])},
            "filter": text(),
            "sortBy": text(),
            "sortOrder": one_of_strings(["ascending", "descending"]),
            "startIndex": {"type": "integer", "minimum": 1},
            "count": {"type": "integer", "minimum": 0},
            "attributes": {"type": "array", "items": {"type": "string"}},
            "excludedAttributes": {"type": "array", "items": {"type": "string"}},
        },
    })
}

fn scim_patch_op() -> Value {
    json!({
        "type": "object",
        "description": "RFC 7644 section 3.5.2. Operation names are case-insensitive (Entra ID sends `Replace`).",
        "required": ["schemas", "Operations"],
        "properties": {
            "schemas": {"type": "array", "items": one_of_strings(["urn:ietf:params:scim:api:messages:2.0:PatchOp"])},
            "Operations": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["op"],
                    "properties": {
                        "op": {"type": "string", "description": "add, replace or remove"},
                        "path": {"type": "string", "description": "An attribute path, with a value filter if needed: `members[value eq \"005...\"]`."},
                        "value": {},
                    },
                },
            },
        },
    })
}

/// The JSON Schema of one SCIM attribute.
fn scim_attribute(attr: &Attr) -> Value {
    let mut single = match attr.ty {
        Type::String => json!({"type": "string"}),
        Type::Boolean => json!({"type": "boolean"}),
        Type::DateTime => json!({"type": "string", "format": "date-time"}),
        Type::Reference => json!({"type": "string", "description": "A reference (an id or URI)."}),
        Type::Complex => scim_object(attr.sub, false),
    };
    if !attr.multi {
        single["description"] = json!(attr.description);
    }
    let mut schema = if attr.multi {
        json!({"type": "array", "items": single, "description": attr.description})
    } else {
        single
    };
    if attr.mutability == Mutability::ReadOnly {
        schema["readOnly"] = json!(true);
    }
    schema
}

fn scim_object(attrs: &[Attr], with_required: bool) -> Value {
    let properties: Map<String, Value> = attrs
        .iter()
        .map(|a| (a.name.to_owned(), scim_attribute(a)))
        .collect();
    let mut schema = json!({"type": "object", "properties": properties});
    if with_required {
        let required: Vec<&str> = attrs
            .iter()
            .filter(|a| a.required)
            .map(|a| a.name)
            .collect();
        if !required.is_empty() {
            schema["required"] = json!(required);
        }
    }
    schema
}

/// The JSON Schema of a SCIM resource type: the common attributes (RFC 7643 section 3.1), its
/// core schema's attributes and each extension as an object under its URN.
pub fn scim_resource(resource: &ResourceType) -> Value {
    let core = scim::schema(resource.schema).expect("resource types name known schemas");
    let mut schema = scim_object(core.attrs, true);
    schema["description"] = json!(core.description);
    let properties = schema["properties"]
        .as_object_mut()
        .expect("an object schema");
    let mut uris = vec![resource.schema];
    uris.extend(resource.extensions);
    properties.insert(
        "schemas".into(),
        json!({"type": "array", "items": one_of_strings(uris)}),
    );
    properties.insert(
        "id".into(),
        json!({"type": "string", "readOnly": true, "description": "The Salesforce id."}),
    );
    if resource.name == "User" {
        properties.insert(
            "externalId".into(),
            json!({"type": "string", "description": "The user's FederationIdentifier."}),
        );
    }
    properties.insert(
        "meta".into(),
        json!({
            "type": "object",
            "readOnly": true,
            "properties": {
                "resourceType": {"type": "string"},
                "created": time(),
                "lastModified": time(),
                "location": {"type": "string", "format": "uri"},
                "version": {"type": "string", "description": "A weak ETag, as in the ETag header."},
            },
        }),
    );
    for uri in resource.extensions {
        let extension = scim::schema(uri).expect("extensions name known schemas");
        let mut object = scim_object(extension.attrs, false);
        object["description"] = json!(extension.description);
        properties.insert((*uri).to_owned(), object);
    }
    schema
}
