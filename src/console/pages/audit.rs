//! The audit log: filtered by actor, event or request, newest first, paged; and the check of
//! its hash chain (`provost audit verify`), from the page.

use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

use super::super::session::Viewer;
use super::super::view::{page, Problem};
use super::{require, when};
use crate::http::AppState;
use crate::store::console::AuditFilter;

const PAGE_SIZE: u32 = 100;

#[derive(Debug, Deserialize)]
pub struct AuditParams {
    actor: Option<String>,
    event: Option<String>,
    request: Option<String>,
    before: Option<i64>,
}

fn given(text: &Option<String>) -> Option<String> {
    text.as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

async fn render(
    state: &AppState,
    viewer: &Viewer,
    params: &AuditParams,
    verification: Value,
) -> Result<Response, Problem> {
    require(state, viewer, viewer.roles.audit(), "the audit log").await?;
    let request_id = match given(&params.request) {
        None => None,
        Some(text) => Some(
            text.parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| {
                    Problem::bad_request(format!("request `{text}` is not a request number"))
                })?,
        ),
    };
    // A Salesforce user's session sees its own org's entries; a link admin's, every entry.
    let filter = AuditFilter {
        org: viewer.session.org.clone(),
        actor: given(&params.actor),
        event: given(&params.event),
        request_id,
        before: params.before.filter(|b| *b > 0),
        limit: PAGE_SIZE,
    };
    let entries = state.store.audit_page(&filter).await?;
    let next = (entries.len() == PAGE_SIZE as usize)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    let query = serde_urlencoded::to_string([
        ("actor", filter.actor.clone().unwrap_or_default()),
        ("event", filter.event.clone().unwrap_or_default()),
        (
            "request",
            request_id.map(|r| r.to_string()).unwrap_or_default(),
        ),
    ])
    .unwrap_or_default();
    page(
        "audit.html",
        Some(viewer),
        json!({
            "entries": entries.iter().map(|e| json!({
                "seq": e.seq, "at": when(e.at), "actor": e.actor, "org": e.org,
                "request": e.request_id, "event": e.event, "data": e.data,
            })).collect::<Vec<_>>(),
            "f": { "actor": filter.actor, "event": filter.event, "request": request_id },
            "query": query,
            "next": next,
            "verification": verification,
        }),
    )
}

pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(params): Query<AuditParams>,
) -> Result<Response, Problem> {
    render(&state, &viewer, &params, Value::Null).await
}

#[derive(Debug, Deserialize)]
pub struct VerifyForm {
    csrf: Option<String>,
}

pub async fn verify(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: axum::http::HeaderMap,
    Query(params): Query<AuditParams>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let form: VerifyForm = super::form(&headers, &body)?;
    super::super::session::check_csrf(&state, Some(&viewer), &headers, form.csrf.as_deref())?;
    require(&state, &viewer, viewer.roles.audit(), "the audit log").await?;
    let verification = crate::audit::log::verify(&state.store).await?;
    let verification = serde_json::to_value(&verification).map_err(anyhow::Error::from)?;
    render(&state, &viewer, &params, verification).await
}
