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
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::openapi::{schemas, Operation, Routes};
use super::orgs::{org, org_and_config};
use super::{ApiError, AppState};
use crate::provisioning::plan::RequestInput;
use crate::provisioning::request::{AccessRequest, RequestState};
use crate::provisioning::requests::{self, Decision, RequestError};
use crate::provisioning::Action;
use crate::store::provisioning::RequestFilter;
use crate::tokens::Scope;

const BASE: &str = "/api/v1/orgs/{org}/access-requests";

pub fn routes() -> Routes {
    let request = || schemas::reference("AccessRequest");
    let id = json!({"type": "integer"});
    let decision = |summary: &str, scope: Scope| {
        Operation::new("Access requests", summary)
            .scope(scope)
            .path("id", id.clone(), "The request's id.")
            .optional_body(&["application/json"], schemas::reference("Decision"))
            .ok(200, "The request in its new state.", request())
    };
    Routes::new()
        .post(
            BASE,
            create,
            Operation::new("Access requests", "Request a grant, a revocation or a user change")
                .describe(
                    "Plans the request against the synced org (refusing what cannot work, with \
                     a code saying why) and stores it pending approval, or approved when the \
                     org auto-approves the action. The executor writes approved requests to \
                     Salesforce exactly once.",
                )
                .scope(Scope::RequestsWrite)
                .header(
                    "Idempotency-Key",
                    "1 to 255 characters; a retried POST with the same key returns the first request (200).",
                )
                .body(&["application/json"], schemas::reference("AccessRequestInput"))
                .ok(201, "Created, with its plan.", request())
                .ok(200, "The request first made with this Idempotency-Key.", request()),
        )
        .get(
            BASE,
            list,
            Operation::new("Access requests", "List requests, newest first")
                .scope(Scope::ReportsRead)
                .query("state", schemas::request_states(), "Only requests in this state.")
                .query("action", schemas::actions(), "Only requests of this action.")
                .query("user", json!({"type": "string"}), "Only requests about this Salesforce user id.")
                .query("before", json!({"type": "integer", "minimum": 1}), "The page before this request id (`next_before`).")
                .query("limit", json!({"type": "integer", "minimum": 1, "maximum": 500}), "Page size (default 50).")
                .ok(200, "A page of requests.", schemas::reference("AccessRequestList")),
        )
        .get(
            &format!("{BASE}/{{id}}"),
            show,
            Operation::new("Access requests", "One request with its plan, result and timeline")
                .scope(Scope::ReportsRead)
                .path("id", id.clone(), "The request's id.")
                .ok(200, "The request and its audit entries.", request()),
        )
        .post(
            &format!("{BASE}/{{id}}/approve"),
            approve,
            decision("Approve a pending request", Scope::RequestsApprove),
        )
        .post(
            &format!("{BASE}/{{id}}/reject"),
            reject,
            decision("Reject a pending request", Scope::RequestsApprove),
        )
        .post(
            &format!("{BASE}/{{id}}/cancel"),
            cancel,
            decision("Cancel a request not yet executed (the token that made it, or an approver)", Scope::RequestsWrite),
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
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    super::json_content_type(&headers).map_err(ApiError::UnsupportedMediaType)?;
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
    let (org_config, org) = org_and_config(&state, &name).await?;
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
    Path(name): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
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
        before: super::in_range("before", params.before, 1..=i64::MAX)?,
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
    Path((name, id)): Path<(String, i64)>,
) -> Result<Json<Value>, ApiError> {
    let org = org(&state, &name).await?;
    let request = state
        .store
        .get_request(org.id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no access request {id} in org `{name}`")))?;
    let timeline = state.store.request_audit(id).await?;
    let mut body = body_of(&request);
    // What approving a pending grant would add to the user's sensitive permissions, now.
    if let (RequestState::PendingApproval, "grant", Some(user), Some(entitlement)) = (
        request.state,
        request.action.as_str(),
        &request.account_id,
        &request.entitlement_id,
    ) {
        if let Some(account) = state.store.get_account(org.id, user).await? {
            let gains = crate::reports::effective::gains(&state.store, &org, account, entitlement)
                .await
                .map_err(|err| ApiError::Internal(anyhow::anyhow!("{err}")))?;
            body["gains"] = json!(gains);
        }
    }
    // A revocation decided in an access review links back to its item.
    body["review_item"] = match state.store.item_of_request(id).await? {
        Some(item) => json!({
            "campaign": item.campaign_id,
            "item": item.id,
            "decided_by": item.decided_by,
            "url": format!("/api/v1/orgs/{name}/reviews/campaigns/{}", item.campaign_id),
        }),
        None => Value::Null,
    };
    body["timeline"] = json!(timeline
        .iter()
        .map(|entry| json!({
            "seq": entry.seq,
            "at": crate::util::times::rfc3339(entry.at),
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
    caller: Caller,
    headers: HeaderMap,
    name: String,
    id: i64,
    body: Bytes,
    decision: Decision,
) -> Result<Json<Value>, ApiError> {
    let body: DecisionBody = if body.iter().all(u8::is_ascii_whitespace) {
        DecisionBody::default()
    } else {
        super::json_content_type(&headers).map_err(ApiError::UnsupportedMediaType)?;
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
        caller.may(Scope::RequestsApprove),
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
    caller: Caller,
    headers: HeaderMap,
    Path((name, id)): Path<(String, i64)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    decide(state, caller, headers, name, id, body, Decision::Approve).await
}

async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((name, id)): Path<(String, i64)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    decide(state, caller, headers, name, id, body, Decision::Reject).await
}

async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((name, id)): Path<(String, i64)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    decide(state, caller, headers, name, id, body, Decision::Cancel).await
}
