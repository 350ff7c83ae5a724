//! Access reviews: the org's campaigns and their progress, and a reviewer's queue: each open
//! item with what a reviewer needs (how the grant is held, last login, dormancy, sensitive
//! permissions, peers holding it, the suggestion), keep or revoke with a comment, for the
//! items ticked or for every item shown at once. Plain forms: checkboxes and buttons work from
//! the keyboard, and without JavaScript. Deciding is `reviews::decide`, as for the API.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use super::super::session::{check_csrf, Viewer};
use super::super::view::{page, Problem};
use super::{open_org, require, when};
use crate::http::AppState;
use crate::reviews::decide::{self, Verdict};
use crate::reviews::{reviewer_of, Actor, ReviewError};
use crate::store::reviews::ItemFilter;

/// Items shown (and decidable at once) per page of the queue.
const QUEUE_SIZE: u32 = 200;

#[derive(Debug, Deserialize)]
pub struct QueueParams {
    campaign: Option<i64>,
    /// After a decision: how many were decided, as what, and how many refused (numbers and
    /// a verdict only: a link cannot put words on the page).
    decided: Option<u32>,
    refused: Option<u32>,
    verdict: Option<String>,
}

fn problem(err: ReviewError) -> Problem {
    match err {
        ReviewError::Store(err) => err.into(),
        other => Problem::bad_request(other.to_string()),
    }
}

pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(org): Path<String>,
    Query(params): Query<QueueParams>,
) -> Result<Response, Problem> {
    let (_, record) = open_org(&state, &viewer, &org).await?;
    let see_all = viewer.roles.audit();
    let identity = viewer
        .session
        .user_id
        .clone()
        .unwrap_or_else(|| viewer.actor().to_owned());
    let (reviewer, _) = reviewer_of(&*state.store, record.id, &identity)
        .await
        .map_err(problem)?;
    let items = state
        .store
        .list_items(
            record.id,
            &ItemFilter {
                campaign: params.campaign.filter(|c| *c > 0),
                reviewer: Some(reviewer.clone()),
                state: Some("open".to_owned()),
                entitlement: None,
                account: None,
                suggested: false,
                after: None,
                limit: QUEUE_SIZE,
            },
        )
        .await?;
    require(
        &state,
        &viewer,
        see_all || !items.is_empty() || params.decided.is_some(),
        "access reviews (you have no review items)",
    )
    .await?;
    let mut campaigns = Vec::new();
    for campaign in state.store.list_campaigns(record.id, None).await? {
        let mine = items
            .iter()
            .filter(|i| i.campaign_id == campaign.id)
            .count();
        if !see_all && mine == 0 {
            continue;
        }
        let summary = state.store.summary(campaign.id, chrono::Utc::now()).await?;
        let done = if summary.items > 0 {
            (summary.decided * 100) / summary.items
        } else {
            100
        };
        campaigns.push(json!({
            "id": campaign.id,
            "name": campaign.name,
            "state": campaign.state.as_str(),
            "due": when(campaign.due_at),
            "items": summary.items,
            "open": summary.open,
            "kept": summary.kept,
            "revoked": summary.revoked,
            "overdue": summary.overdue,
            "done_percent": done,
            "mine": mine,
        }));
    }
    let queue: Vec<Value> = items
        .iter()
        .map(|item| {
            let c = &item.context;
            json!({
                "id": item.id,
                "campaign": item.campaign_id,
                "user": item.display_name,
                "username": item.username,
                "account_id": item.account_id,
                "entitlement": c["entitlement_label"].as_str().unwrap_or(&item.api_name),
                "kind": item.kind,
                "privileged": item.privileged,
                "suggestion": item.suggestion,
                "held": c["held"],
                "last_login": c["last_login"],
                "dormant": c["dormant"],
                "active": c["user_active"],
                "permissions": c["system_permissions"],
                "peers": c["peers_holding"],
                "stage": item.stage,
                "stages": item.stages,
            })
        })
        .collect();
    page(
        "reviews.html",
        Some(&viewer),
        json!({
            "org": org,
            "campaigns": campaigns,
            "queue": queue,
            "done": params.decided.map(|decided| json!({
                "decided": decided,
                "refused": params.refused.unwrap_or(0),
                "verdict": match params.verdict.as_deref() {
                    Some("revoke") => "revoke",
                    _ => "keep",
                },
            })),
        }),
    )
}

pub async fn decide_items(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(org): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    let (org_config, record) = open_org(&state, &viewer, &org).await?;
    // The form repeats `item`: read the pairs in order rather than into a struct.
    let declared = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !declared.starts_with("application/x-www-form-urlencoded") || body.len() > 1024 * 1024 {
        return Err(Problem::bad_request(
            "send the page's form (application/x-www-form-urlencoded, at most 1 MiB)",
        ));
    }
    let mut csrf = None;
    let mut verdict = None;
    let mut comment = None;
    let mut ticked = Vec::new();
    let mut shown = Vec::new();
    for (key, value) in url::form_urlencoded::parse(&body) {
        match key.as_ref() {
            "csrf" => csrf = Some(value.into_owned()),
            "decision" => verdict = Some(value.into_owned()),
            "comment" => comment = Some(value.into_owned()),
            "item" | "shown" => {
                let id = value
                    .parse::<i64>()
                    .ok()
                    .filter(|id| *id > 0)
                    .ok_or_else(|| {
                        Problem::bad_request(format!("`{value}` is not an item number"))
                    })?;
                if key == "item" {
                    ticked.push(id);
                } else {
                    shown.push(id);
                }
            }
            _ => {}
        }
    }
    check_csrf(&state, Some(&viewer), &headers, csrf.as_deref())?;
    let (verdict, ids) = match verdict.as_deref() {
        Some("keep") => (Verdict::Keep, ticked),
        Some("revoke") => (Verdict::Revoke, ticked),
        Some("keep_all") => (Verdict::Keep, shown),
        Some("revoke_all") => (Verdict::Revoke, shown),
        other => {
            return Err(Problem::bad_request(format!(
                "decision {other:?}: keep or revoke, the ticked items or all shown"
            )))
        }
    };
    if ids.is_empty() {
        return Err(Problem::bad_request(
            "no item was ticked: tick the items to decide, or use the buttons for every item shown",
        ));
    }
    if ids.len() > QUEUE_SIZE as usize {
        return Err(Problem::bad_request(format!(
            "at most {QUEUE_SIZE} items at once, as the page shows them"
        )));
    }
    let identity = viewer
        .session
        .user_id
        .clone()
        .unwrap_or_else(|| viewer.actor().to_owned());
    let outcomes = decide::decide(
        &state.store,
        org_config,
        &record,
        &Actor {
            identity,
            admin: viewer.roles.admin(),
        },
        &ids,
        verdict,
        comment.as_deref(),
    )
    .await
    .map_err(problem)?;
    state.work.notify_one();
    let refused: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.ok)
        .map(|o| format!("item {}: {}", o.item, o.message.clone().unwrap_or_default()))
        .collect();
    if !refused.is_empty() && refused.len() == outcomes.len() {
        return Err(Problem::bad_request(refused.join("; ")));
    }
    for refusal in &refused {
        tracing::info!(refusal = %refusal, "a review decision from the console was refused");
    }
    let query = serde_urlencoded::to_string([
        ("decided", (outcomes.len() - refused.len()).to_string()),
        ("refused", refused.len().to_string()),
        ("verdict", verdict.as_str().to_owned()),
    ])
    .unwrap_or_default();
    Ok(Redirect::to(&format!("/console/orgs/{org}/reviews?{query}")).into_response())
}
