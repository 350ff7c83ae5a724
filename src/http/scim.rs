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
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;

use super::{auth, AppState};
use crate::scim::error::CONTENT_TYPE;
use crate::scim::schema::{self, ResourceType};
use crate::scim::writes::{self, Mode, Writer};
use crate::scim::{discovery, resources, ListParams, ScimError, Scope};
use crate::tokens::Scope as TokenScope;

pub fn router() -> Router<AppState> {
    let api = Router::new()
        .route("/ServiceProviderConfig", get(service_provider_config))
        .route("/ResourceTypes", get(resource_types))
        .route("/ResourceTypes/{name}", get(resource_type))
        .route("/Schemas", get(schemas))
        .route("/Schemas/{schema_id}", get(schema_by_id))
        .route("/.search", post(search_all))
        .route("/{kind}", get(list).post(create))
        .route("/{kind}/.search", post(search))
        .route(
            "/{kind}/{id}",
            get(show).put(replace).patch(modify).delete(remove),
        );
    Router::new()
        .nest("/orgs/{org}/scim/v2", api.clone())
        .nest("/scim/v2", api)
}

/// A SCIM answer: JSON as `application/scim+json`, with extra headers.
pub(crate) struct Scim {
    status: StatusCode,
    body: Option<Value>,
    headers: Vec<(header::HeaderName, String)>,
}

impl Scim {
    pub(crate) fn ok(body: Value) -> Scim {
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
            body: Some(body),
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
            Some(body) => (self.status, body.to_string()).into_response(),
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

fn org_at(
    state: &AppState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<OrgAt, ScimError> {
    let root = match &state.config.server.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            format!("http://{host}")
        }
    };
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

/// Authenticates, then finds the org's store record (it exists once the org was synced).
pub(crate) async fn scope<'a>(
    state: &'a AppState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    needs: TokenScope,
) -> Result<(Scope<'a>, auth::Caller, OrgAt), ScimError> {
    let caller = auth::require(state, headers, needs).await?;
    let at = org_at(state, headers, params)?;
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

/// Discovery needs a token too (any SCIM scope), like the rest of the API.
async fn discovery_base(
    state: &AppState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<String, ScimError> {
    auth::require(state, headers, TokenScope::ScimRead).await?;
    Ok(org_at(state, headers, params)?.base)
}

async fn service_provider_config(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Scim, ScimError> {
    let base = discovery_base(&state, &headers, &params).await?;
    Ok(Scim::ok(discovery::service_provider_config(&base)))
}

async fn resource_types(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Scim, ScimError> {
    let base = discovery_base(&state, &headers, &params).await?;
    Ok(Scim::ok(discovery::resource_types(&base)))
}

async fn resource_type(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Scim, ScimError> {
    let base = discovery_base(&state, &headers, &params).await?;
    let name = params.get("name").map(String::as_str).unwrap_or_default();
    Ok(Scim::ok(discovery::resource_type(&base, name)?))
}

async fn schemas(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Scim, ScimError> {
    let base = discovery_base(&state, &headers, &params).await?;
    Ok(Scim::ok(discovery::schemas(&base)))
}

async fn schema_by_id(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Scim, ScimError> {
    let base = discovery_base(&state, &headers, &params).await?;
    let id = params
        .get("schema_id")
        .map(String::as_str)
        .unwrap_or_default();
    Ok(Scim::ok(discovery::schema(&base, id)?))
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Scim, ScimError> {
    let resource = resource_of(&params)?;
    let (scope, _, _) = scope(&state, &headers, &params, TokenScope::ScimRead).await?;
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
    Ok(Scim::ok(scope.list(resource, &list).await?))
}

pub(crate) fn json_body(body: &Bytes) -> Result<Value, ScimError> {
    serde_json::from_slice(body)
        .map_err(|err| ScimError::invalid_syntax(format!("the body is not JSON: {err}")))
}

async fn search(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(params): Path<HashMap<String, String>>,
    body: Bytes,
) -> Result<Scim, ScimError> {
    let resource = resource_of(&params)?;
    let (scope, _, _) = scope(&state, &headers, &params, TokenScope::ScimRead).await?;
    let list: ListParams = serde_json::from_value(json_body(&body)?).map_err(|err| {
        ScimError::invalid_syntax(format!("the body is not a SearchRequest: {err}"))
    })?;
    Ok(Scim::ok(scope.list(resource, &list).await?))
}

/// `POST /.search` at the root: every resource type in one list.
async fn search_all(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(params): Path<HashMap<String, String>>,
    body: Bytes,
) -> Result<Scim, ScimError> {
    let (scope, _, _) = scope(&state, &headers, &params, TokenScope::ScimRead).await?;
    let list: ListParams = serde_json::from_value(json_body(&body)?).map_err(|err| {
        ScimError::invalid_syntax(format!("the body is not a SearchRequest: {err}"))
    })?;
    Ok(Scim::ok(scope.search_all(&list).await?))
}

/// `If-None-Match` on a read: 304 when the client holds the current version.
async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Scim, ScimError> {
    let resource = resource_of(&params)?;
    let (scope, _, _) = scope(&state, &headers, &params, TokenScope::ScimRead).await?;
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
    let projected = resources::project(found, text("attributes"), text("excludedAttributes"));
    let mut answer = Scim::ok(projected);
    if let Some(version) = version {
        answer.headers.push((header::ETAG, version));
    }
    Ok(answer)
}

fn if_match(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::IF_MATCH).and_then(|h| h.to_str().ok())
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

/// Builds the writer of a request: authenticated with scim:write, for its org.
macro_rules! writer {
    ($state:expr, $headers:expr, $params:expr, $scope:ident, $caller:ident, $writer:ident) => {
        let ($scope, $caller, at) =
            scope(&$state, &$headers, &$params, TokenScope::ScimWrite).await?;
        let org_config = $state
            .config
            .org(&at.name)
            .map_err(|_| ScimError::not_found(format!("no org `{}` is configured", at.name)))?;
        let $writer = Writer {
            scope: &$scope,
            org_config,
            caller: &$caller.name,
            work: &$state.work,
            wait: wait_of(&$state),
        };
    };
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(params): Path<HashMap<String, String>>,
    body: Bytes,
) -> Result<Scim, ScimError> {
    let resource = resource_of(&params)?;
    if resource.name != "User" {
        auth::require(&state, &headers, TokenScope::ScimWrite).await?;
        return Err(writes::not_authored(resource));
    }
    let body = json_body(&body)?;
    writer!(state, headers, params, scope, caller, writer);
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
    headers: HeaderMap,
    Path(params): Path<HashMap<String, String>>,
    body: Bytes,
) -> Result<Scim, ScimError> {
    change(state, headers, params, body, Mode::Put).await
}

async fn modify(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(params): Path<HashMap<String, String>>,
    body: Bytes,
) -> Result<Scim, ScimError> {
    change(state, headers, params, body, Mode::Patch).await
}

/// A PUT or a PATCH of a User or a Group.
async fn change(
    state: AppState,
    headers: HeaderMap,
    params: HashMap<String, String>,
    body: Bytes,
    mode: Mode,
) -> Result<Scim, ScimError> {
    let resource = resource_of(&params)?;
    writable(resource)?;
    let body = json_body(&body)?;
    writer!(state, headers, params, scope, caller, writer);
    let id = id_of(&params);
    let held = if_match(&headers);
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
    headers: HeaderMap,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Scim, ScimError> {
    let resource = resource_of(&params)?;
    if resource.name != "User" {
        auth::require(&state, &headers, TokenScope::ScimWrite).await?;
        return Err(writes::not_authored(resource));
    }
    writer!(state, headers, params, scope, caller, writer);
    writer
        .delete_user(&id_of(&params), if_match(&headers))
        .await?;
    Ok(Scim::empty(StatusCode::NO_CONTENT))
}
