//! The console's pages, one module per area, and what they share: opening an org the viewer
//! may see, refusing (and auditing) what a role may not do, reading forms.

mod audit;
mod entitlements;
mod overview;
mod reports;
mod requests;
mod reviews;
mod syncs;
mod users;

use axum::body::Bytes;
use axum::http::{header, HeaderMap};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::session::Viewer;
use super::view::Problem;
use crate::audit::AuditEvent;
use crate::config::OrgConfig;
use crate::http::AppState;
use crate::store::OrgRecord;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(overview::show))
        .route("/console/orgs/{org}/users", get(users::list))
        .route("/console/orgs/{org}/users/{id}", get(users::show))
        .route("/console/orgs/{org}/entitlements", get(entitlements::list))
        .route(
            "/console/orgs/{org}/entitlements/{id}",
            get(entitlements::show),
        )
        .route("/console/orgs/{org}/requests", get(requests::list))
        .route(
            "/console/orgs/{org}/requests/new",
            get(requests::new_form).post(requests::preview_or_submit),
        )
        .route("/console/orgs/{org}/requests/{id}", get(requests::show))
        .route(
            "/console/orgs/{org}/requests/{id}/decide",
            post(requests::decide),
        )
        .route(
            "/console/orgs/{org}/syncs",
            get(syncs::list).post(syncs::sync_now),
        )
        .route("/console/orgs/{org}/reports", get(reports::list))
        .route("/console/orgs/{org}/reports/{name}", post(reports::prepare))
        .route("/console/orgs/{org}/downloads/{token}", get(reports::ready))
        .route(
            "/console/orgs/{org}/downloads/{token}/{part}",
            get(reports::download),
        )
        .route("/console/orgs/{org}/reviews", get(reviews::list))
        .route(
            "/console/orgs/{org}/reviews/decide",
            post(reviews::decide_items),
        )
        .route("/console/audit", get(audit::list))
        .route("/console/audit/verify", post(audit::verify))
}

/// Refuses what `viewer`'s roles do not allow, and audits the refusal.
pub(super) async fn require(
    state: &AppState,
    viewer: &Viewer,
    allowed: bool,
    what: &str,
) -> Result<(), Problem> {
    if allowed {
        return Ok(());
    }
    let entry = AuditEvent {
        actor: viewer.actor().to_owned(),
        org: viewer.session.org.clone(),
        request_id: None,
        event: "console_refused".to_owned(),
        data: json!({ "what": what, "roles": viewer.roles.names() }),
    };
    if let Err(err) = state.store.append_audit(&[entry]).await {
        tracing::error!(error = %err, "the console could not audit a refusal");
    }
    Err(Problem::forbidden(format!(
        "your roles ({}) do not include {what}; ask an admin if you need it",
        viewer
            .roles
            .names()
            .iter()
            .map(|r| serde_json::to_value(r)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// The org named in the path, if it is configured and the viewer may open it.
pub(super) async fn open_org<'a>(
    state: &'a AppState,
    viewer: &Viewer,
    name: &str,
) -> Result<(&'a OrgConfig, OrgRecord), Problem> {
    let config = state
        .config
        .org(name)
        .map_err(|_| Problem::not_found(format!("no org `{name}` is configured")))?;
    if !viewer.may_open(name) {
        return Err(Problem::forbidden(format!(
            "you signed in with a user of org `{}`; sign in with a user of `{name}` to see it",
            viewer.session.org.as_deref().unwrap_or("?")
        )));
    }
    let record = state.store.ensure_org(name).await?;
    Ok((config, record))
}

/// A form body: `application/x-www-form-urlencoded`, at most 64 KiB, into `T`.
pub(super) fn form<T: DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> Result<T, Problem> {
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !declared.starts_with("application/x-www-form-urlencoded") {
        return Err(Problem::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Not a form",
            "send the page's form (application/x-www-form-urlencoded)",
        ));
    }
    if body.len() > 64 * 1024 {
        return Err(Problem::bad_request("the form is larger than 64 KiB"));
    }
    serde_urlencoded::from_bytes(body).map_err(|err| {
        Problem::bad_request(format!(
            "the form could not be read ({err}): reload the page and try again"
        ))
    })
}

/// A time for people: `2026-12-04 09:30 UTC`.
pub(super) fn when(at: provost_connector::times::Timestamp) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Page numbers of a list: `page` (1-based) within `total` rows of `size`.
pub(super) fn pages(page: u64, size: u64, total: u64) -> serde_json::Value {
    let last = total.div_ceil(size).max(1);
    json!({
        "page": page,
        "last": last,
        "total": total,
        "prev": (page > 1).then(|| page - 1),
        "next": (page < last).then(|| page + 1),
    })
}
