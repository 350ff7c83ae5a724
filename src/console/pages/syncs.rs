//! Syncs: an org's runs with their errors and what to do about them, and "sync now" for admins
//! (an incremental sync started in the background, audited; a sync already running elsewhere
//! is reported by the run list, not started twice: the store's sync lock decides).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

use super::super::session::{check_csrf, Viewer};
use super::super::view::{page, Problem};
use super::{form, open_org, require, when};
use crate::audit::AuditEvent;
use crate::http::AppState;
use crate::org::sync::{request_for, sync_org};
use crate::store::sync::SyncMode;

pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(org): Path<String>,
) -> Result<Response, Problem> {
    let (_, record) = open_org(&state, &viewer, &org).await?;
    require(&state, &viewer, viewer.roles.audit(), "sync runs").await?;
    let runs = state.store.list_sync_runs(record.id, 50).await?;
    let health = crate::sync::status::org_health(state.store.as_ref(), record.id).await?;
    page(
        "syncs.html",
        Some(&viewer),
        json!({
            "org": org,
            "health": health,
            "runs": runs.iter().map(|run| json!({
                "id": run.id.0,
                "mode": run.mode,
                "status": run.status,
                "started_by": run.started_by,
                "started": when(run.started_at),
                "seconds": run.finished_at.map(|end| (end - run.started_at).num_milliseconds() as f64 / 1000.0),
                "api_calls": run.api_calls,
                "changes": run.counts.changes(),
                "pause_reason": run.pause_reason,
                "error": run.error,
            })).collect::<Vec<_>>(),
        }),
    )
}

#[derive(Debug, Deserialize)]
pub struct SyncForm {
    csrf: Option<String>,
    mode: Option<String>,
}

pub async fn sync_now(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(org): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    let (org_config, _) = open_org(&state, &viewer, &org).await?;
    let fields: SyncForm = form(&headers, &body)?;
    check_csrf(&state, Some(&viewer), &headers, fields.csrf.as_deref())?;
    require(&state, &viewer, viewer.roles.admin(), "starting syncs").await?;
    let mode = match fields.mode.as_deref() {
        None | Some("incremental") => SyncMode::Incremental,
        Some("full") => SyncMode::Full,
        Some(other) => {
            return Err(Problem::bad_request(format!(
                "mode `{other}`: incremental or full"
            )))
        }
    };
    state
        .store
        .append_audit(&[AuditEvent {
            actor: viewer.actor().to_owned(),
            org: Some(org.clone()),
            request_id: None,
            event: "console_sync_started".to_owned(),
            data: json!({ "mode": mode }),
        }])
        .await?;
    let config = state.config.clone();
    let store = state.store.clone();
    let org_config = org_config.clone();
    let started_by = format!("console:{}", viewer.actor());
    tokio::spawn(async move {
        let request = request_for(&org_config, mode, &started_by);
        match sync_org(
            &config,
            &org_config,
            &store,
            &request,
            false,
            &crate::sync::progress::LogObserver,
        )
        .await
        {
            Ok(finished) => {
                tracing::info!(org = %org_config.name, run = %finished.run.id, status = %finished.run.status, "sync from the console ended")
            }
            Err(err) => {
                tracing::warn!(org = %org_config.name, error = %err, "sync from the console did not run")
            }
        }
    });
    Ok(Redirect::to(&format!("/console/orgs/{org}/syncs")).into_response())
}
