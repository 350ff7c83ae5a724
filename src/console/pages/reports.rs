//! Reports: each report with its filters (and as-of time). Asking for one writes it once, with
//! its manifest; the page that follows offers both files, so the manifest an auditor keeps is
//! the one of the very file they downloaded (`provost report verify FILE --manifest FILE`).
//!
//! Prepared files wait in the temporary directory for an hour, for the person who asked only.
//! A deployment with several replicas needs sticky sessions for the two downloads (the files
//! are on the replica that wrote them).

use std::path::PathBuf;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

use super::super::session::{check_csrf, random_token, Viewer};
use super::super::view::{page, Problem};
use super::{form, open_org, require};
use crate::http::reports::ReportQuery;
use crate::http::{ApiError, AppState};
use crate::reports::Report;

/// How long a prepared report waits for its downloads.
const KEPT: std::time::Duration = std::time::Duration::from_secs(3600);

fn downloads() -> PathBuf {
    std::env::temp_dir().join("provost-console-downloads")
}

pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(org): Path<String>,
) -> Result<Response, Problem> {
    open_org(&state, &viewer, &org).await?;
    require(&state, &viewer, viewer.roles.audit(), "reports").await?;
    page(
        "reports.html",
        Some(&viewer),
        json!({ "org": org, "reports": Report::NAMES }),
    )
}

#[derive(Debug, Deserialize)]
pub struct ReportForm {
    csrf: Option<String>,
    format: Option<String>,
    entitlement: Option<String>,
    user_type: Option<String>,
    active_only: Option<String>,
    permission: Option<String>,
    since: Option<String>,
    until: Option<String>,
    as_of: Option<String>,
    days: Option<String>,
    object: Option<String>,
    field: Option<String>,
    action: Option<String>,
    setup_entity: Option<String>,
}

/// A `datetime-local` value (`2026-12-01T10:00`, taken as UTC) or RFC 3339, as RFC 3339.
fn time(text: Option<String>) -> Option<String> {
    let text = text
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())?;
    if chrono::NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M").is_ok() {
        return Some(format!("{text}:00Z"));
    }
    Some(text)
}

fn given(text: Option<String>) -> Option<String> {
    text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
}

/// `POST /console/orgs/{org}/reports/{name}`: writes the report and its manifest.
pub async fn prepare(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((org, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, Problem> {
    open_org(&state, &viewer, &org).await?;
    require(&state, &viewer, viewer.roles.audit(), "reports").await?;
    let fields: ReportForm = form(&headers, &body)?;
    check_csrf(&state, Some(&viewer), &headers, fields.csrf.as_deref())?;
    let days = match given(fields.days) {
        None => None,
        Some(text) => Some(text.parse::<u32>().map_err(|_| {
            Problem::bad_request(format!("days `{text}` is not a whole number of days"))
        })?),
    };
    let query = ReportQuery {
        format: given(fields.format),
        entitlement: given(fields.entitlement),
        user_type: given(fields.user_type),
        active_only: Some(fields.active_only.as_deref() == Some("on")),
        permission: given(fields.permission),
        since: time(fields.since),
        until: time(fields.until),
        as_of: time(fields.as_of),
        days,
        object: given(fields.object),
        field: given(fields.field),
        action: given(fields.action),
        setup_entity: given(fields.setup_entity),
    };
    let dir = downloads();
    std::fs::create_dir_all(&dir).map_err(anyhow::Error::from)?;
    forget_old(&dir);
    let token = random_token();
    let path = dir.join(format!("{token}.report"));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(anyhow::Error::from)?;
    let written = crate::http::reports::write(&state, &org, &name, query, file).await;
    let (_, mut manifest, format, filename) = match written {
        Ok(written) => written,
        Err(err) => {
            let _ = std::fs::remove_file(&path);
            return Err(match err {
                ApiError::BadRequest(m) | ApiError::NotFound(m) => Problem::bad_request(m),
                ApiError::Conflict { message, .. } => Problem::bad_request(message),
                other => Problem::internal(anyhow::anyhow!("{other}")),
            });
        }
    };
    manifest.file = Some(filename.clone());
    manifest.generated_by = viewer.actor().to_owned();
    let meta = json!({
        "owner": viewer.actor(),
        "org": org,
        "filename": filename,
        "content_type": format.content_type(),
        "manifest": manifest,
    });
    std::fs::write(dir.join(format!("{token}.json")), meta.to_string())
        .map_err(anyhow::Error::from)?;
    Ok(Redirect::to(&format!("/console/orgs/{org}/downloads/{token}")).into_response())
}

/// Removes prepared reports older than [`KEPT`].
fn forget_old(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|at| at.elapsed().ok())
            .is_some_and(|age| age > KEPT);
        if old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The prepared report `token`, if it is the viewer's.
fn prepared(
    viewer: &Viewer,
    org: &str,
    token: &str,
) -> Result<(PathBuf, serde_json::Value), Problem> {
    let gone = || {
        Problem::not_found(
            "this report was not prepared here, or is over an hour old: prepare it again",
        )
    };
    if token.len() != 43
        || !token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(gone());
    }
    let dir = downloads();
    let meta: serde_json::Value = std::fs::read(dir.join(format!("{token}.json")))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(gone)?;
    if meta["owner"] != viewer.actor() || meta["org"] != org {
        return Err(gone());
    }
    Ok((dir.join(format!("{token}.report")), meta))
}

pub async fn ready(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((org, token)): Path<(String, String)>,
) -> Result<Response, Problem> {
    open_org(&state, &viewer, &org).await?;
    require(&state, &viewer, viewer.roles.audit(), "reports").await?;
    let (_, meta) = prepared(&viewer, &org, &token)?;
    page(
        "report_ready.html",
        Some(&viewer),
        json!({
            "org": org,
            "token": token,
            "parameters": meta["manifest"]["parameters"].to_string(),
            "meta": meta,
        }),
    )
}

pub async fn download(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((org, token, part)): Path<(String, String, String)>,
) -> Result<Response, Problem> {
    open_org(&state, &viewer, &org).await?;
    require(&state, &viewer, viewer.roles.audit(), "reports").await?;
    let (path, meta) = prepared(&viewer, &org, &token)?;
    let filename = meta["filename"].as_str().unwrap_or("report").to_owned();
    let (body, content_type, name) = match part.as_str() {
        "file" => {
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(anyhow::Error::from)?;
            (
                Body::from_stream(tokio_util::io::ReaderStream::new(file)),
                meta["content_type"]
                    .as_str()
                    .unwrap_or("application/octet-stream")
                    .to_owned(),
                filename,
            )
        }
        "manifest" => (
            Body::from(serde_json::to_vec_pretty(&meta["manifest"]).map_err(anyhow::Error::from)?),
            "application/json".to_owned(),
            format!("{filename}.manifest.json"),
        ),
        other => {
            return Err(Problem::not_found(format!(
                "no part `{other}`: file or manifest"
            )))
        }
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type).map_err(anyhow::Error::from)?,
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
            .map_err(anyhow::Error::from)?,
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
