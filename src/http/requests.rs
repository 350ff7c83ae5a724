//! Access requests: `/api/v1/orgs/{org}/access-requests`.
//!
//! - `POST` (scope `requests:write`) plans and stores a request; `Idempotency-Key` makes a
//!   retried POST return the first request (200) instead of a second one (201).
//! - `GET` (scope `reports:read`) lists them, newest first, filtered by `state`, `action`,
//!   `user` (an account id), paginated with `before` (a request id) and `limit`.
//! - `GET /{id}` shows one with its plan, Salesforce's answer and its timeline (audit entries).
//! - `POST /{id}/approve|reject` (scope `requests:approve`) and `/{id}/cancel`
//!   (`requests:write`), with an optional `{"comment": "..."}` body.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth;
use super::orgs::org;
use super::{ApiError, AppState};
use crate::provisioning::plan::RequestInput;
use crate::provisioning::requests::{self, Decision, RequestError};
use crate::provisioning::Action;
use crate::store::provisioning::{AccessRequest, RequestFilter, RequestState};
use crate::tokens::Scope;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/orgs/{org}/access-requests", post(create).get(list))
        .route("/api/v1/orgs/{org}/access-requests/{id}", get(show))
        .route(
            "/api/v1/orgs/{org}/access-requests/{id}/approve",
            post(approve),
        )
        .route(
            "/api/v1/orgs/{org}/access-requests/{id}/reject",
            post(reject),
        )
        .route(
            "/api/v1/orgs/{org}/access-requests/{id}/cancel",
            post(cancel),
        )
}

impl From<RequestError> for ApiError {
    fn from(err: RequestError) -> Self {
        match err {
            RequestError::Refused(refusal) => ApiError::Refused {
                code: refusal.code,
                message: refusal.message,
            },
            RequestError::Conflict { code, message } => ApiError::Conflict { code, message },
            RequestError::Duplicate { message, .. } => ApiError::Conflict {
                code: "duplicate_request",
                message,
            },
            RequestError::Forbidden(message) => ApiError::Forbidden(message),
            RequestError::NotFound(message) => ApiError::NotFound(message),
            RequestError::Store(err) => err.into(),
        }
    }
}

fn body_of(request: &AccessRequest) -> Value {
    serde_json::to_value(request).expect("requests serialise")
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let caller = auth::require(&state, &headers, Scope::RequestsWrite).await?;
    let input: RequestInput = serde_json::from_slice(&body).map_err(|err| {
        ApiError::BadRequest(format!(
            "the body is not an access request ({err}); send {{\"action\": \"grant\", \"user\": \"jane@acme.com\", \"entitlement\": {{\"type\": \"permission_set\", \"name\": \"Sales_Ops\"}}, \"justification\": \"...\"}}"
        ))
    })?;
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .map(str::trim)
                .filter(|k| !k.is_empty() && k.len() <= 255)
                .ok_or_else(|| {
                    ApiError::BadRequest(
                        "the Idempotency-Key header must be 1 to 255 characters of text".into(),
                    )
                })?
                .to_owned(),
        ),
    };
    let org_config = state
        .config
        .org(&name)
        .map_err(|_| ApiError::NotFound(format!("no org `{name}` is configured")))?;
    let org = org(&state, &name).await?;
    let created =
        requests::create(&*state.store, org_config, &org, &caller.name, input, key).await?;
    if created.request.state == RequestState::Approved {
        state.work.notify_one();
    }
    let status = if created.new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(body_of(&created.request))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    state: Option<String>,
    action: Option<String>,
    user: Option<String>,
    before: Option<i64>,
    limit: Option<u32>,
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    auth::require(&state, &headers, Scope::ReportsRead).await?;
    let limit = params.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit={limit} is outside 1..=500"
        )));
    }
    let filter = RequestFilter {
        state: params
            .state
            .as_deref()
            .map(str::parse::<RequestState>)
            .transpose()
            .map_err(ApiError::BadRequest)?,
        action: params
            .action
            .as_deref()
            .map(str::parse::<Action>)
            .transpose()
            .map_err(ApiError::BadRequest)?
            .map(|a| a.as_str().to_owned()),
        account_id: params.user,
        before: params.before,
        limit,
    };
    let org = org(&state, &name).await?;
    let found = state.store.list_requests(org.id, &filter).await?;
    let next = (found.len() == limit as usize)
        .then(|| found.last().map(|r| r.id))
        .flatten();
    Ok(Json(json!({
        "requests": found.iter().map(body_of).collect::<Vec<_>>(),
        "next_before": next,
    })))
}

async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, i64)>,
) -> Result<Json<Value>, ApiError> {
    auth::require(&state, &headers, Scope::ReportsRead).await?;
    let org = org(&state, &name).await?;
    let request = state
        .store
        .get_request(org.id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no access request {id} in org `{name}`")))?;
    let timeline = state.store.request_audit(id).await?;
    let mut body = body_of(&request);
    body["timeline"] = json!(timeline
        .iter()
        .map(|entry| json!({
            "seq": entry.seq,
            "at": entry.at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            "actor": entry.actor,
            "event": entry.event,
            "data": serde_json::from_str::<Value>(&entry.data).unwrap_or(Value::Null),
        }))
        .collect::<Vec<_>>());
    Ok(Json(body))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    comment: Option<String>,
}

async fn decide(
    state: AppState,
    headers: HeaderMap,
    name: String,
    id: i64,
    body: Bytes,
    decision: Decision,
) -> Result<Json<Value>, ApiError> {
    let scope = match decision {
        Decision::Approve | Decision::Reject => Scope::RequestsApprove,
        Decision::Cancel => Scope::RequestsWrite,
    };
    let caller = auth::require(&state, &headers, scope).await?;
    let body: DecisionBody = if body.iter().all(u8::is_ascii_whitespace) {
        DecisionBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|err| {
            ApiError::BadRequest(format!(
                "the body must be empty or {{\"comment\": \"...\"}} ({err})"
            ))
        })?
    };
    let org = org(&state, &name).await?;
    let request = requests::decide(
        &*state.store,
        &org,
        id,
        &caller.name,
        decision,
        body.comment,
    )
    .await?;
    if request.state == RequestState::Approved {
        state.work.notify_one();
    }
    Ok(Json(body_of(&request)))
}

async fn approve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, i64)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    decide(state, headers, name, id, body, Decision::Approve).await
}

async fn reject(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, i64)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    decide(state, headers, name, id, body, Decision::Reject).await
}

async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, i64)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    decide(state, headers, name, id, body, Decision::Cancel).await
}
