//! The SCIM 2.0 endpoints of each org at `/orgs/{org}/scim/v2`, and at `/scim/v2` when exactly
//! one org is configured. Reading needs `scim:read`, writing `scim:write`. Bodies are read as
//! JSON whether sent as `application/scim+json` or `application/json`; answers are
//! `application/scim+json`.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::auth::Caller;
use super::openapi::{schemas, Answer, Operation, Routes, Verb};
use super::AppState;
use crate::scim::error::CONTENT_TYPE;
use crate::scim::schema::{self, ResourceType};
use crate::scim::writes::{self, Mode, Preconditions, Writer};
use crate::scim::{discovery, projection, resources, ListParams, ScimError, Scope};
use crate::tokens::Scope as TokenScope;

pub fn routes() -> Routes {
    let api = scim_routes();
    Routes::new()
        .nest("/orgs/{org}/scim/v2", api.clone())
        .nest("/scim/v2", api)
}

/// The SCIM endpoints under a base URL. `/{kind}` is one route for the four resource types,
/// described as each of them with what it supports.
fn scim_routes() -> Routes {
    let discovery = |summary: &str| {
        Operation::scim(summary).scope(TokenScope::ScimRead).ok(
            200,
            "The discovery resource.",
            schemas::reference("ScimDiscovery"),
        )
    };
    let resource = |r: &ResourceType| schemas::reference(&schemas::scim_component(r));
    let each = |pick: &dyn Fn(&ResourceType) -> bool,
                path: &str,
                describe: &dyn Fn(&ResourceType) -> Operation| {
        schema::RESOURCE_TYPES
            .iter()
            .filter(|r| pick(r))
            .map(|r| (path.replace("/{kind}", r.endpoint), describe(r)))
            .collect::<Vec<_>>()
    };
    let all = |_: &ResourceType| true;
    let users = |r: &ResourceType| r.name == "User";
    let writable = |r: &ResourceType| r.name == "User" || r.name == "Group";
    let search = Operation::scim("Search with a SearchRequest body")
        .scope(TokenScope::ScimRead)
        .body(
            &[crate::scim::error::CONTENT_TYPE, "application/json"],
            schemas::reference("ScimSearchRequest"),
        );
    let body_types = [crate::scim::error::CONTENT_TYPE, "application/json"];
    let version =
        |answer: Answer| answer.header("ETag", "The resource's version (`meta.version`).");
    // A PUT or PATCH: its body, and the resource as it is once Salesforce has the change.
    let write = |summary: String, description: &str, body: Value, r: &ResourceType| {
        Operation::scim(summary)
            .describe(description)
            .scope(TokenScope::ScimWrite)
            .header(
                "If-Match",
                "The version the change is based on: 412 if stale; an empty one is refused.",
            )
            .header(
                "If-None-Match",
                "A version the change must not apply to (`*`: any): 412 if the resource is at it.",
            )
            .body(&body_types, body)
            .answer(version(
                Answer::new(200, "The resource as it is now.")
                    .content(crate::scim::error::CONTENT_TYPE, resource(r)),
            ))
    };
    Routes::new()
        .get(
            "/ServiceProviderConfig",
            service_provider_config,
            discovery("What this service provider supports"),
        )
        .get("/ResourceTypes", resource_types, discovery("The resource types"))
        .get(
            "/ResourceTypes/{name}",
            resource_type,
            discovery("One resource type"),
        )
        .get("/Schemas", schemas, discovery("The schemas, with their attributes"))
        .get(
            "/Schemas/{schema_id}",
            schema_by_id,
            discovery("One schema"),
        )
        .post(
            "/.search",
            search_all,
            search
                .clone()
                .ok(200, "Matching resources of every type.", schemas::reference("ScimListResponse")),
        )
        .route(
            Verb::Get,
            "/{kind}",
            list,
            each(&all, "/{kind}", &|r| {
                Operation::scim(format!("List or filter {}", r.description))
                    .scope(TokenScope::ScimRead)
                    .query("filter", json!({"type": "string"}), "An RFC 7644 filter, e.g. `userName eq \"jane@acme.com\"`.")
                    .query("sortBy", json!({"type": "string"}), "An attribute path.")
                    .query("sortOrder", json!({"type": "string", "enum": ["ascending", "descending"]}), "Default ascending.")
                    .query("startIndex", json!({"type": "integer", "minimum": 1}), "1-based index of the first result.")
                    .query("count", json!({"type": "integer", "minimum": 0, "maximum": crate::scim::MAX_RESULTS}), "Page size (default 100).")
                    .query("attributes", json!({"type": "string"}), "Comma-separated attributes to return.")
                    .query("excludedAttributes", json!({"type": "string"}), "Comma-separated attributes to leave out.")
                    .ok(200, "A page of resources.", schemas::scim_list(resource(r)))
            }),
        )
        .route(
            Verb::Post,
            "/{kind}",
            create,
            each(&users, "/{kind}", &|r| {
                Operation::scim("Create a Salesforce user")
                    .describe("Carried out as a `create_user` access request; answered once Salesforce confirmed it.")
                    .scope(TokenScope::ScimWrite)
                    .body(&body_types, resource(r))
                    .answer(version(
                        Answer::new(201, "Created.")
                            .content(crate::scim::error::CONTENT_TYPE, resource(r))
                            .header("Location", "The new user's URL."),
                    ))
            }),
        )
        .route(
            Verb::Post,
            "/{kind}/.search",
            search_one,
            each(&all, "/{kind}/.search", &|r| {
                search
                    .clone()
                    .ok(200, "Matching resources.", schemas::scim_list(resource(r)))
            }),
        )
        .route(
            Verb::Get,
            "/{kind}/{id}",
            show,
            each(&all, "/{kind}/{id}", &|r| {
                Operation::scim(format!("One of the {}", r.description))
                    .scope(TokenScope::ScimRead)
                    .header("If-None-Match", "A version held: 304 if it is still current.")
                    .query("attributes", json!({"type": "string"}), "Comma-separated attributes to return.")
                    .query("excludedAttributes", json!({"type": "string"}), "Comma-separated attributes to leave out.")
                    .answer(version(
                        Answer::new(200, "The resource.")
                            .content(crate::scim::error::CONTENT_TYPE, resource(r)),
                    ))
                    .answer(Answer::new(304, "The held version is current."))
            }),
        )
        .route(
            Verb::Put,
            "/{kind}/{id}",
            replace,
            each(&writable, "/{kind}/{id}", &|r| {
                write(
                    format!("Replace a {}", r.name),
                    "Each difference becomes an access request (grant, revoke, update, deactivate...); answered once Salesforce confirmed them.",
                    resource(r),
                    r,
                )
            }),
        )
        .route(
            Verb::Patch,
            "/{kind}/{id}",
            modify,
            each(&writable, "/{kind}/{id}", &|r| {
                write(
                    format!("Modify a {} (add, replace, remove)", r.name),
                    "Each change becomes an access request; answered once Salesforce confirmed them.",
                    schemas::reference("ScimPatchOp"),
                    r,
                )
            }),
        )
        .route(
            Verb::Delete,
            "/{kind}/{id}",
            remove,
            each(&users, "/{kind}/{id}", &|_| {
                Operation::scim("Deactivate a user (Salesforce never deletes users)")
                    .scope(TokenScope::ScimWrite)
                    .header("If-Match", "The version the change is based on: 412 if stale.")
                    .header("If-None-Match", "A version the change must not apply to (`*`: any): 412 if the user is at it.")
                    .answer(Answer::new(204, "Deactivated."))
            }),
        )
}

/// A SCIM answer: JSON as `application/scim+json`, with extra headers.
pub(crate) struct Scim {
    status: StatusCode,
    /// Serialised JSON.
    body: Option<String>,
    headers: Vec<(header::HeaderName, String)>,
}

impl Scim {
    pub(crate) fn ok(body: Value) -> Scim {
        Scim::serialised(body.to_string())
    }

    /// An answer already serialised (a ListResponse).
    pub(crate) fn serialised(body: String) -> Scim {
        Scim {
            status: StatusCode::OK,
            body: Some(body),
            headers: Vec::new(),
        }
    }

    /// A resource, with its version as `ETag` and, when created, its `Location`.
    pub(crate) fn resource(status: StatusCode, body: Value) -> Scim {
        let mut headers = Vec::new();
        if let Some(version) = resources::version_of(&body) {
            headers.push((header::ETAG, version.to_owned()));
        }
        if status == StatusCode::CREATED {
            if let Some(location) = body["meta"]["location"].as_str() {
                headers.push((header::LOCATION, location.to_owned()));
            }
        }
        Scim {
            status,
            body: Some(body.to_string()),
            headers,
        }
    }

    pub(crate) fn empty(status: StatusCode) -> Scim {
        Scim {
            status,
            body: None,
            headers: Vec::new(),
        }
    }
}

impl IntoResponse for Scim {
    fn into_response(self) -> Response {
        let has_body = self.body.is_some();
        let mut response = match self.body {
            Some(body) => (self.status, body).into_response(),
            None => self.status.into_response(),
        };
        let headers = response.headers_mut();
        if has_body {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        }
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        response
    }
}

/// The org a request is about, and the base URL of its SCIM API.
pub(crate) struct OrgAt {
    pub(crate) name: String,
    pub(crate) base: String,
}

fn org_at(state: &AppState, params: &HashMap<String, String>) -> Result<OrgAt, ScimError> {
    // The configured URL, never the request's Host header: a client must not decide the
    // `meta.location` and `$ref` URLs other clients are given.
    let root = state.config.server.public_url();
    match params.get("org") {
        Some(name) => {
            state.config.org(name).map_err(|_| {
                ScimError::not_found(format!(
                    "no org `{name}` is configured; SCIM is served at /orgs/NAME/scim/v2 for each [[orgs]] name"
                ))
            })?;
            Ok(OrgAt {
                name: name.clone(),
                base: format!("{root}/orgs/{name}/scim/v2"),
            })
        }
        None => match state.config.orgs.as_slice() {
            [only] => Ok(OrgAt {
                name: only.name.clone(),
                base: format!("{root}/scim/v2"),
            }),
            orgs => Err(ScimError::not_found(format!(
                "/scim/v2 serves the only org when exactly one is configured; {} are, so use /orgs/NAME/scim/v2 with one of: {}",
                orgs.len(),
                orgs.iter().map(|o| o.name.as_str()).collect::<Vec<_>>().join(", ")
            ))),
        },
    }
}

/// The org's store record (it exists once the org was synced), for the authenticated caller.
pub(crate) async fn scope<'a>(
    state: &'a AppState,
    caller: Caller,
    params: &HashMap<String, String>,
) -> Result<(Scope<'a>, Caller, OrgAt), ScimError> {
    let at = org_at(state, params)?;
    let org = state.store.find_org(&at.name).await?.ok_or_else(|| {
        ScimError::not_found(format!(
            "org `{}` has not been synced yet: run `provost sync --org {}` first",
            at.name, at.name
        ))
    })?;
    Ok((
        Scope {
            store: &*state.store,
            org,
            base: at.base.clone(),
            timeout: Duration::from_millis(state.config.server.query_timeout_ms),
        },
        caller,
        at,
    ))
}

pub(crate) fn resource_of(
    params: &HashMap<String, String>,
) -> Result<&'static ResourceType, ScimError> {
    let kind = params.get("kind").map(String::as_str).unwrap_or_default();
    schema::RESOURCE_TYPES
        .iter()
        .find(|r| r.endpoint[1..] == *kind)
        .ok_or_else(|| {
            ScimError::not_found(format!(
                "no SCIM endpoint `/{kind}`; there are /Users, /Groups, /Entitlements, /Roles, /ServiceProviderConfig, /ResourceTypes and /Schemas"
            ))
        })
}

/// Discovery needs a token too (`scim:read`, checked by the route), like the rest of the API.
fn discovery_base(state: &AppState, params: &HashMap<String, String>) -> Result<String, ScimError> {
    Ok(org_at(state, params)?.base)
}

async fn service_provider_config(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Scim, ScimError> {
    let base = discovery_base(&state, &params)?;
    Ok(Scim::ok(discovery::service_provider_config(&base)))
}

async fn resource_types(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Scim, ScimError> {
    let base = discovery_base(&state, &params)?;
    Ok(Scim::ok(discovery::resource_types(&base)))
}

async fn resource_type(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Scim, ScimError> {
    let base = discovery_base(&state, &params)?;
    let name = params.get("name").map(String::as_str).unwrap_or_default();
    Ok(Scim::ok(discovery::resource_type(&base, name)?))
}

async fn schemas(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Scim, ScimError> {
    let base = discovery_base(&state, &params)?;
    Ok(Scim::ok(discovery::schemas(&base)))
}

async fn schema_by_id(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Scim, ScimError> {
    let base = discovery_base(&state, &params)?;
    let id = params
        .get("schema_id")
        .map(String::as_str)
        .unwrap_or_default();
    Ok(Scim::ok(discovery::schema(&base, id)?))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Scim, ScimError> {
    let resource = resource_of(&params)?;
    let (scope, _, _) = scope(&state, caller, &params).await?;
    let text = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let list = ListParams {
        filter: text("filter"),
        sort_by: text("sortBy"),
        sort_order: text("sortOrder"),
        start_index: text("startIndex").map(Value::String),
        count: text("count").map(Value::String),
        attributes: text("attributes").map(Value::String),
        excluded_attributes: text("excludedAttributes").map(Value::String),
        schemas: None,
    };
    Ok(Scim::serialised(scope.list(resource, &list).await?))
}

/// The body as JSON, if it is declared as JSON (`application/scim+json` or
/// `application/json`): a body of another type is refused with 415 before it is read, so a
/// form or text a browser or careless client sends is never taken for a resource.
pub(crate) fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ScimError> {
    super::json_content_type(headers)
        .map_err(|message| ScimError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, None, message))?;
    serde_json::from_slice(body)
        .map_err(|err| ScimError::invalid_syntax(format!("the body is not JSON: {err}")))
}

async fn search_one(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(params): Path<HashMap<String, String>>,
    body: Bytes,
) -> Result<Scim, ScimError> {
    let resource = resource_of(&params)?;
    let (scope, _, _) = scope(&state, caller, &params).await?;
    let list: ListParams = serde_json::from_value(json_body(&headers, &body)?).map_err(|err| {
        ScimError::invalid_syntax(format!("the body is not a SearchRequest: {err}"))
    })?;
    Ok(Scim::serialised(scope.list(resource, &list).await?))
}

/// `POST /.search` at the root: every resource type in one list.
async fn search_all(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(params): Path<HashMap<String, String>>,
    body: Bytes,
) -> Result<Scim, ScimError> {
    let (scope, _, _) = scope(&state, caller, &params).await?;
    let list: ListParams = serde_json::from_value(json_body(&headers, &body)?).map_err(|err| {
        ScimError::invalid_syntax(format!("the body is not a SearchRequest: {err}"))
    })?;
    Ok(Scim::serialised(scope.search_all(&list).await?))
}

/// `If-None-Match` on a read: 304 when the client holds the current version.
async fn show(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Scim, ScimError> {
    let resource = resource_of(&params)?;
    let (scope, _, _) = scope(&state, caller, &params).await?;
    let id = params.get("id").map(String::as_str).unwrap_or_default();
    let found = scope.get(resource, id).await?;
    if let Some(held) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|h| h.to_str().ok())
    {
        let current = resources::version_of(&found).unwrap_or_default();
        if held
            .split(',')
            .any(|v| v.trim() == current || v.trim() == "*")
        {
            let mut not_modified = Scim::empty(StatusCode::NOT_MODIFIED);
            not_modified
                .headers
                .push((header::ETAG, current.to_owned()));
            return Ok(not_modified);
        }
    }
    let text = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let version = resources::version_of(&found).map(str::to_owned);
    let projected = projection::project(found, text("attributes"), text("excludedAttributes"));
    let mut answer = Scim::ok(projected);
    if let Some(version) = version {
        answer.headers.push((header::ETAG, version));
    }
    Ok(answer)
}

/// A write's `If-Match` and `If-None-Match`, every value of each.
fn preconditions(headers: &HeaderMap) -> Result<Preconditions, ScimError> {
    let values = |name| {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("(not text)"))
    };
    Preconditions::parse(values(header::IF_MATCH), values(header::IF_NONE_MATCH))
}

fn wait_of(state: &AppState) -> Duration {
    Duration::from_secs(
        state
            .config
            .server
            .request_timeout_seconds
            .saturating_sub(5)
            .max(1),
    )
}

/// Builds the writer of a request of the caller (authenticated with scim:write), for its org.
macro_rules! writer {
    ($state:expr, $caller:expr, $headers:expr, $params:expr, $scope:ident, $writer:ident) => {
        let ($scope, caller, at) = scope(&$state, $caller, &$params).await?;
        let org_config = $state
            .config
            .org(&at.name)
            .map_err(|_| ScimError::not_found(format!("no org `{}` is configured", at.name)))?;
        let $writer = Writer {
            scope: &$scope,
            org_config,
            caller: &caller.name,
            work: &$state.work,
            wait: wait_of(&$state),
        };
    };
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(params): Path<HashMap<String, String>>,
    body: Bytes,
) -> Result<Scim, ScimError> {
    let resource = resource_of(&params)?;
    if resource.name != "User" {
        return Err(writes::not_authored(resource));
    }
    let body = json_body(&headers, &body)?;
    writer!(state, caller, headers, params, scope, writer);
    let created = writer.create_user(&body).await?;
    Ok(Scim::resource(StatusCode::CREATED, created))
}

/// Writes to the read-only catalogs are refused before anything else.
fn writable(resource: &ResourceType) -> Result<(), ScimError> {
    match resource.name {
        "User" | "Group" => Ok(()),
        _ => Err(writes::not_authored(resource)),
    }
}

fn id_of(params: &HashMap<String, String>) -> String {
    params.get("id").cloned().unwrap_or_default()
}

async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(params): Path<HashMap<String, String>>,
    body: Bytes,
) -> Result<Scim, ScimError> {
    change(state, caller, headers, params, body, Mode::Put).await
}

async fn modify(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(params): Path<HashMap<String, String>>,
    body: Bytes,
) -> Result<Scim, ScimError> {
    change(state, caller, headers, params, body, Mode::Patch).await
}

/// A PUT or a PATCH of a User or a Group.
async fn change(
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    params: HashMap<String, String>,
    body: Bytes,
    mode: Mode,
) -> Result<Scim, ScimError> {
    let resource = resource_of(&params)?;
    writable(resource)?;
    let body = json_body(&headers, &body)?;
    writer!(state, caller, headers, params, scope, writer);
    let id = id_of(&params);
    let held = &preconditions(&headers)?;
    let done = match (resource.name, mode) {
        ("User", Mode::Put) => writer.replace_user(&id, &body, held).await?,
        ("User", Mode::Patch) => writer.patch_user(&id, &body, held).await?,
        (_, Mode::Put) => writer.replace_group(&id, &body, held).await?,
        (_, Mode::Patch) => writer.patch_group(&id, &body, held).await?,
    };
    Ok(Scim::resource(StatusCode::OK, done))
}

/// DELETE of a User deactivates it (Salesforce never deletes users); Groups and the catalogs
/// are Salesforce's to delete.
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Scim, ScimError> {
    let resource = resource_of(&params)?;
    if resource.name != "User" {
        return Err(writes::not_authored(resource));
    }
    writer!(state, caller, headers, params, scope, writer);
    writer
        .delete_user(&id_of(&params), &preconditions(&headers)?)
        .await?;
    Ok(Scim::empty(StatusCode::NO_CONTENT))
}
