//! Access reviews: `/api/v1/orgs/{org}/reviews`.
//!
//! - Campaigns (scope `reviews:admin` to define, start, close and cancel; `reports:read` to
//!   list, show and export): `POST /campaigns`, `GET /campaigns`, `GET /campaigns/{id}` (with
//!   its summary and open items per reviewer), `POST /campaigns/{id}/start|close|cancel`,
//!   `GET /campaigns/{id}/report?format=csv|json|ndjson` (the manifest in headers).
//! - Reviewing (scope `reviews:decide`, as the token's subject): `GET /items` (my open items,
//!   most important first, with context and suggestions), `POST /items/{id}/decision`,
//!   `POST /decisions` (many at once, by ids or by a filter of my open items),
//!   `POST /items/{id}/reassign`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::openapi::{Operation, Routes};
use super::orgs::{org, org_and_config};
use super::{ApiError, AppState};
use crate::reports::output::Format;
use crate::reviews::campaigns::{self, CampaignInput};
use crate::reviews::decide::{self, Verdict, MAX_BATCH};
use crate::reviews::model::{Campaign, CampaignState, ClosePolicy};
use crate::reviews::{reviewer_of, Actor, ReviewError};
use crate::store::reviews::ItemFilter;
use crate::tokens::Scope;

const BASE: &str = "/api/v1/orgs/{org}/reviews";

impl From<ReviewError> for ApiError {
    fn from(err: ReviewError) -> Self {
        match err {
            ReviewError::BadDefinition(message) => ApiError::BadRequest(message),
            ReviewError::NotFound(message) => ApiError::NotFound(message),
            ReviewError::Forbidden { code, message } => ApiError::Denied { code, message },
            ReviewError::Conflict { code, message } => ApiError::Conflict { code, message },
            ReviewError::Refused { code, message } => ApiError::Refused { code, message },
            ReviewError::Store(err) => err.into(),
        }
    }
}

pub fn routes() -> Routes {
    let object = || json!({"type": "object"});
    let id = || json!({"type": "integer", "minimum": 1});
    let campaign_op = |summary: &str, scope: Scope| {
        Operation::new("Access reviews", summary).scope(scope).path(
            "id",
            id(),
            "The campaign's id.",
        )
    };
    Routes::new()
        .post(
            &format!("{BASE}/campaigns"),
            create,
            Operation::new("Access reviews", "Define a campaign (a draft)")
                .describe(
                    "`name`, `scope` (entitlement_types, entitlements, permissions, user_types, \
                     profiles, roles, users, active_only, changed_since), `reviewers` (stages: \
                     manager, owner, reviewers; reviewers; owners; fallback), `close_policy` \
                     (leave_open, keep, revoke), `recurrence` (monthly, quarterly), `starts_at`, \
                     `due_at` or `duration_days`, `dormant_days`, `remind_days_before`, `max_items`.",
                )
                .scope(Scope::ReviewsAdmin)
                .body(&["application/json"], object())
                .ok(201, "The draft.", object()),
        )
        .get(
            &format!("{BASE}/campaigns"),
            list,
            Operation::new("Access reviews", "List campaigns, newest first")
                .scope(Scope::ReportsRead)
                .query("state", json!({"type": "string", "enum": ["draft", "active", "closed", "cancelled"]}), "Only campaigns in this state.")
                .ok(200, "Campaigns with their summaries.", object()),
        )
        .get(
            &format!("{BASE}/campaigns/{{id}}"),
            show,
            campaign_op("A campaign, its summary and its open items per reviewer", Scope::ReportsRead)
                .ok(200, "The campaign.", object()),
        )
        .post(
            &format!("{BASE}/campaigns/{{id}}/start"),
            start,
            campaign_op("Start a draft: freeze its items from the last sync", Scope::ReviewsAdmin)
                .optional_body(&["application/json"], json!({"type": "object", "properties": {"force": {"type": "boolean"}}}))
                .ok(200, "The active campaign.", object()),
        )
        .post(
            &format!("{BASE}/campaigns/{{id}}/close"),
            close,
            campaign_op("Close an active campaign, applying its close policy", Scope::ReviewsAdmin)
                .optional_body(&["application/json"], json!({"type": "object", "properties": {"policy": {"type": "string", "enum": ["leave_open", "keep", "revoke"]}}}))
                .ok(200, "The closed campaign.", object()),
        )
        .post(
            &format!("{BASE}/campaigns/{{id}}/cancel"),
            cancel,
            campaign_op("Cancel a draft or active campaign", Scope::ReviewsAdmin)
                .optional_body(&["application/json"], json!({"type": "object", "properties": {"reason": {"type": "string"}}}))
                .ok(200, "The cancelled campaign.", object()),
        )
        .get(
            &format!("{BASE}/campaigns/{{id}}/report"),
            report,
            campaign_op("The campaign's evidence, as a file with its manifest", Scope::ReportsRead)
                .query("format", json!({"type": "string", "enum": ["csv", "json", "ndjson"], "default": "csv"}), "The file format.")
                .ok(200, "The report; its manifest is in the Provost-Manifest header.", json!({"type": "string"})),
        )
        .get(
            &format!("{BASE}/items"),
            items,
            Operation::new("Access reviews", "My open review items, most important first")
                .scope(Scope::ReviewsDecide)
                .query("campaign", id(), "Only this campaign's.")
                .query("state", json!({"type": "string", "enum": ["open", "decided"]}), "open (default) or decided.")
                .query("suggested", json!({"type": "boolean"}), "Only items with a suggestion.")
                .query("entitlement", json!({"type": "string"}), "Only this entitlement (id or API name).")
                .query("user", json!({"type": "string"}), "Only this user (id or username).")
                .query("after", json!({"type": "string"}), "The cursor of the page before (`next`).")
                .query("limit", json!({"type": "integer", "minimum": 1, "maximum": 500}), "Page size (default 50).")
                .ok(200, "A page of items.", object()),
        )
        .post(
            &format!("{BASE}/items/{{id}}/decision"),
            decide_one,
            Operation::new("Access reviews", "Keep or revoke one item")
                .scope(Scope::ReviewsDecide)
                .path("id", id(), "The item's id.")
                .body(&["application/json"], json!({"type": "object", "required": ["decision"], "properties": {"decision": {"type": "string", "enum": ["keep", "revoke"]}, "comment": {"type": "string"}}}))
                .ok(200, "The item as decided.", object()),
        )
        .post(
            &format!("{BASE}/decisions"),
            decide_many,
            Operation::new("Access reviews", "Keep or revoke many items at once")
                .describe("`{\"decision\", \"comment\", \"items\": [ids]}` or, instead of `items`, `\"filter\": {\"campaign\" (required), \"entitlement\", \"user\", \"suggested\"}` over my open items of one campaign, 10,000 at most at a time (`more_open` says whether some are left). Each item is answered on its own.")
                .scope(Scope::ReviewsDecide)
                .body(&["application/json"], object())
                .ok(200, "Each item's outcome.", object()),
        )
        .post(
            &format!("{BASE}/items/{{id}}/reassign"),
            reassign,
            Operation::new("Access reviews", "Hand an item to another reviewer")
                .scope(Scope::ReviewsDecide)
                .path("id", id(), "The item's id.")
                .body(&["application/json"], json!({"type": "object", "required": ["to", "reason"], "properties": {"to": {"type": "string"}, "reason": {"type": "string"}}}))
                .ok(200, "The item with its new reviewer.", object()),
        )
}

fn actor(caller: &Caller) -> Actor {
    Actor {
        identity: caller.reviewer().to_owned(),
        admin: caller.may(Scope::ReviewsAdmin),
    }
}

/// A JSON body, or the default when it is empty.
fn body_or_default<T: serde::de::DeserializeOwned + Default>(
    headers: &HeaderMap,
    body: &Bytes,
    shape: &str,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    json_body(headers, body, shape)
}

fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &Bytes,
    shape: &str,
) -> Result<T, ApiError> {
    super::json_content_type(headers).map_err(ApiError::UnsupportedMediaType)?;
    serde_json::from_slice(body)
        .map_err(|err| ApiError::BadRequest(format!("the body is not {shape} ({err})")))
}

async fn with_summary(state: &AppState, campaign: &Campaign) -> Result<Value, ApiError> {
    let mut body = serde_json::to_value(campaign).expect("campaigns serialise");
    body["summary"] = json!(state.store.summary(campaign.id, chrono::Utc::now()).await?);
    Ok(body)
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let input: CampaignInput = json_body(
        &headers,
        &body,
        "a campaign: {\"name\": \"Q1 admins\", \"scope\": {\"permissions\": [\"ModifyAllData\"]}, \"reviewers\": {\"stages\": [\"manager\"], \"fallback\": [\"secops@acme.com\"]}, \"duration_days\": 14}",
    )?;
    let org = org(&state, &name).await?;
    let campaign = campaigns::create(&state.store, &org, caller.reviewer(), &input).await?;
    Ok((
        StatusCode::CREATED,
        Json(with_summary(&state, &campaign).await?),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    state: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let wanted = params
        .state
        .as_deref()
        .map(str::parse::<CampaignState>)
        .transpose()
        .map_err(ApiError::BadRequest)?;
    let org = org(&state, &name).await?;
    let mut listed = Vec::new();
    for campaign in state.store.list_campaigns(org.id, wanted).await? {
        listed.push(with_summary(&state, &campaign).await?);
    }
    Ok(Json(json!({ "campaigns": listed })))
}

async fn show(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, i64)>,
) -> Result<Json<Value>, ApiError> {
    let org = org(&state, &name).await?;
    let campaign = campaigns::get(&state.store, &org, id).await?;
    let mut body = with_summary(&state, &campaign).await?;
    body["open_by_reviewer"] = json!(state
        .store
        .open_by_reviewer(id)
        .await?
        .into_iter()
        .map(|(reviewer, open)| json!({"reviewer": reviewer, "open": open}))
        .collect::<Vec<_>>());
    Ok(Json(body))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    #[serde(default)]
    force: bool,
}

async fn start(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((name, id)): Path<(String, i64)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: StartBody = body_or_default(&headers, &body, "empty or {\"force\": true}")?;
    let (org_config, org) = org_and_config(&state, &name).await?;
    let campaign = campaigns::start(
        &state.store,
        &state.config,
        org_config,
        &org,
        id,
        caller.reviewer(),
        body.force,
    )
    .await?;
    Ok(Json(with_summary(&state, &campaign).await?))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseBody {
    policy: Option<ClosePolicy>,
}

async fn close(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((name, id)): Path<(String, i64)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: CloseBody = body_or_default(
        &headers,
        &body,
        "empty or {\"policy\": \"leave_open\" | \"keep\" | \"revoke\"}",
    )?;
    let (org_config, org) = org_and_config(&state, &name).await?;
    let campaign = campaigns::close(
        &state.store,
        org_config,
        &org,
        id,
        caller.reviewer(),
        body.policy,
    )
    .await?;
    state.work.notify_one();
    Ok(Json(with_summary(&state, &campaign).await?))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    reason: Option<String>,
}

async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((name, id)): Path<(String, i64)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: CancelBody = body_or_default(&headers, &body, "empty or {\"reason\": \"...\"}")?;
    if body
        .reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > 4000)
    {
        return Err(ApiError::BadRequest(
            "a cancel reason is at most 4000 characters".to_owned(),
        ));
    }
    let org = org(&state, &name).await?;
    let campaign = campaigns::cancel(
        &state.store,
        &org,
        id,
        caller.reviewer(),
        body.reason.as_deref(),
    )
    .await?;
    Ok(Json(with_summary(&state, &campaign).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    format: Option<String>,
}

async fn report(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, i64)>,
    Query(query): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    let format = match query.format.as_deref() {
        None => Format::Csv,
        Some(text) => Format::parse(text).ok_or_else(|| {
            ApiError::BadRequest(format!("format={text} is not one of csv, json, ndjson"))
        })?,
    };
    let org = org(&state, &name).await?;
    let campaign = campaigns::get(&state.store, &org, id).await?;
    let file = super::reports::temporary_file().map_err(|e| ApiError::Internal(e.into()))?;
    let writer =
        std::io::BufWriter::new(file.try_clone().map_err(|e| ApiError::Internal(e.into()))?);
    let manifest =
        crate::reviews::report::write(&state.store, &org, &campaign, format, writer).await?;
    let filename = format!(
        "{name}-access-review-{id}-{}.{}",
        manifest.generated_at.replace(':', ""),
        format.as_str()
    );
    super::reports::send_file(file, &manifest, format, &filename).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemParams {
    campaign: Option<i64>,
    state: Option<String>,
    suggested: Option<bool>,
    entitlement: Option<String>,
    user: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

async fn items(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(params): Query<ItemParams>,
) -> Result<Json<Value>, ApiError> {
    let limit = params.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit={limit} is outside 1..=500"
        )));
    }
    let item_state = params.state.unwrap_or_else(|| "open".to_owned());
    if item_state != "open" && item_state != "decided" {
        return Err(ApiError::BadRequest(format!(
            "state={item_state} is not open or decided"
        )));
    }
    let after = match params.after.as_deref() {
        None => None,
        Some(text) => Some(
            text.split_once('.')
                .and_then(|(p, i)| Some((p.parse::<i64>().ok()?, i.parse::<i64>().ok()?)))
                .filter(|(p, i)| (0..=2).contains(p) && *i >= 0)
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "after={text} is not a cursor this API gave (`next`)"
                    ))
                })?,
        ),
    };
    super::in_range("campaign", params.campaign, 1..=i64::MAX)?;
    let org = org(&state, &name).await?;
    let (reviewer, _) = reviewer_of(&*state.store, org.id, caller.reviewer()).await?;
    let filter = ItemFilter {
        campaign: params.campaign,
        reviewer: Some(reviewer.clone()),
        state: Some(item_state),
        entitlement: params.entitlement,
        account: params.user,
        suggested: params.suggested.unwrap_or(false),
        after,
        limit,
    };
    let found = state.store.list_items(org.id, &filter).await?;
    let next = (found.len() == limit as usize)
        .then(|| found.last().map(|i| format!("{}.{}", i.priority, i.id)))
        .flatten();
    Ok(Json(json!({
        "reviewer": reviewer,
        "items": found,
        "next": next,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    decision: Verdict,
    comment: Option<String>,
}

async fn decide_one(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((name, id)): Path<(String, i64)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: DecisionBody = json_body(
        &headers,
        &body,
        "a decision: {\"decision\": \"keep\" | \"revoke\", \"comment\": \"...\"}",
    )?;
    let (org_config, org) = org_and_config(&state, &name).await?;
    let outcome = decide::decide(
        &state.store,
        org_config,
        &org,
        &actor(&caller),
        &[id],
        body.decision,
        body.comment.as_deref(),
    )
    .await?
    .pop()
    .expect("one outcome per item");
    state.work.notify_one();
    if outcome.ok {
        return Ok(Json(outcome.state.unwrap_or(Value::Null)));
    }
    let code = outcome.code.unwrap_or("refused");
    let message = outcome.message.unwrap_or_default();
    Err(match code {
        "not_found" => ApiError::NotFound(message),
        "not_your_item" | "self_review" => ApiError::Denied { code, message },
        "already_decided" | "campaign_not_active" => ApiError::Conflict { code, message },
        _ => ApiError::Refused { code, message },
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManyBody {
    decision: Verdict,
    comment: Option<String>,
    items: Option<Vec<i64>>,
    filter: Option<ManyFilter>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManyFilter {
    campaign: Option<i64>,
    entitlement: Option<String>,
    user: Option<String>,
    #[serde(default)]
    suggested: bool,
}

async fn decide_many(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: ManyBody = json_body(
        &headers,
        &body,
        "{\"decision\": \"keep\" | \"revoke\", \"comment\": \"...\", \"items\": [1, 2]} or, instead of items, \"filter\": {\"campaign\": 1, \"entitlement\": \"Sales_Ops\", \"suggested\": true}",
    )?;
    let (org_config, org) = org_and_config(&state, &name).await?;
    let (reviewer, _) = reviewer_of(&*state.store, org.id, caller.reviewer()).await?;
    let (ids, campaign) = match (body.items, body.filter) {
        (Some(ids), None) if ids.is_empty() => {
            return Err(ApiError::BadRequest(format!(
                "`items` is empty: give 1 to {MAX_BATCH} item ids"
            )))
        }
        (Some(ids), None) => (ids, None),
        (None, Some(filter)) => {
            let Some(campaign) = filter.campaign else {
                return Err(ApiError::BadRequest(
                    "a filter decides within one campaign: give filter.campaign".to_owned(),
                ));
            };
            super::in_range("filter.campaign", Some(campaign), 1..=i64::MAX)?;
            let ids = state
                .store
                .list_items(
                    org.id,
                    &ItemFilter {
                        campaign: Some(campaign),
                        reviewer: Some(reviewer.clone()),
                        state: Some("open".to_owned()),
                        entitlement: filter.entitlement,
                        account: filter.user,
                        suggested: filter.suggested,
                        after: None,
                        limit: MAX_BATCH as u32,
                    },
                )
                .await?
                .into_iter()
                .map(|i| i.id)
                .collect();
            (ids, Some(campaign))
        }
        _ => {
            return Err(ApiError::BadRequest(
                "give `items` (a list of item ids) or `filter`, one of the two".to_owned(),
            ))
        }
    };
    if ids.is_empty() {
        return Ok(Json(
            json!({"decided": 0, "refused": 0, "more_open": false, "outcomes": []}),
        ));
    }
    let outcomes = decide::decide(
        &state.store,
        org_config,
        &org,
        &actor(&caller),
        &ids,
        body.decision,
        body.comment.as_deref(),
    )
    .await?;
    state.work.notify_one();
    let decided = outcomes.iter().filter(|o| o.ok).count();
    // Each outcome without the whole item: a bulk answer stays small.
    let outcomes: Vec<Value> = outcomes
        .into_iter()
        .map(|mut o| {
            let remediation = o.state.as_ref().map(|s| s["remediation"].clone());
            o.state = None;
            let mut v = serde_json::to_value(o).expect("outcomes serialise");
            if let Some(r) = remediation {
                v["remediation"] = r;
            }
            v
        })
        .collect();
    // What is still open for the caller in the campaign (a filter takes 10,000 at a time).
    let open_left = match campaign {
        Some(campaign) => state
            .store
            .list_items(
                org.id,
                &ItemFilter {
                    campaign: Some(campaign),
                    reviewer: Some(reviewer),
                    state: Some("open".to_owned()),
                    limit: 1,
                    ..ItemFilter::default()
                },
            )
            .await?
            .len(),
        None => 0,
    };
    Ok(Json(json!({
        "decided": decided,
        "refused": outcomes.len() - decided,
        "more_open": open_left > 0,
        "outcomes": outcomes,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReassignBody {
    to: String,
    reason: String,
}

async fn reassign(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((name, id)): Path<(String, i64)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: ReassignBody = json_body(
        &headers,
        &body,
        "{\"to\": \"jane@acme.com\", \"reason\": \"...\"}",
    )?;
    let org = org(&state, &name).await?;
    let item = decide::reassign(
        &state.store,
        &org,
        &actor(&caller),
        id,
        &body.to,
        &body.reason,
    )
    .await?;
    Ok(Json(serde_json::to_value(item).expect("items serialise")))
}
