//! `GET /api/v1/orgs/{org}/reports/{name}?format=csv|json|ndjson` (scope `reports:read`), with
//! the report's filters as query parameters (`entitlement`, `user_type`, `active_only`,
//! `permission`, `since`, `until`, `as_of`, `days`, `object`, `field`, `action`,
//! `setup_entity`).
//!
//! The report is written to a temporary file first (memory stays flat however many rows), then
//! sent with its manifest in headers: `Provost-Report-Sha256` and `Provost-Report-Rows`, and
//! the whole manifest as base64url JSON in `Provost-Manifest`.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use super::openapi::{schemas, Answer, Operation, Routes};
use super::{ApiError, AppState};
use crate::reports::output::Format;
use crate::reports::{self, Params, Report, ReportError};
use crate::tokens::Scope;

pub fn routes() -> Routes {
    let text = json!({"type": "string"});
    let time = json!({"type": "string", "format": "date-time"});
    let mut answer = Answer::new(200, "The report, streamed; its manifest is in the headers.")
        .header("Provost-Report-Sha256", "SHA-256 of the body, hex.")
        .header("Provost-Report-Rows", "How many rows the report has.")
        .header(
            "Provost-Manifest",
            "The manifest (report, parameters, org, sync run, generated at, rows, SHA-256) as base64url JSON; save it decoded beside the file for `provost report verify`.",
        )
        .header("Content-Disposition", "attachment, with a file name.");
    for format in [Format::Csv, Format::Json, Format::Ndjson] {
        let schema = match format {
            Format::Json => json!({"description": "The rows as one JSON document."}),
            Format::Csv | Format::Ndjson => json!({"type": "string"}),
        };
        answer = answer.content(format.content_type(), schema);
    }
    Routes::new().get(
        "/api/v1/orgs/{org}/reports/{name}",
        report,
        Operation::new("Reports", "An entitlement report, as a file with its manifest")
            .describe(
                "`entitlements`: one row per user and entitlement, and how it is held. \
                 `effective-permissions`: each sensitive system permission per user, and every \
                 grant that confers it. `changes`: grants and user lifecycle changes in a \
                 window, and whether Provost made them. `dormant`: active users with \
                 entitlements and no login for `days`. `object-access`, `field-access`, \
                 `setup-access`: what each user can do on objects, which fields they can read \
                 or edit, which connected apps, Apex classes and custom permissions they can \
                 use, and through which path.",
            )
            .scope(Scope::ReportsRead)
            .path("name", schemas::report_names(), "The report.")
            .query("format", json!({"type": "string", "enum": ["csv", "json", "ndjson"], "default": "csv"}), "The file format.")
            .query("entitlement", text.clone(), "Only this entitlement (id or API name).")
            .query("permission", text.clone(), "Only this system permission (effective-permissions).")
            .query("user_type", text.clone(), "Only users of this Salesforce user type (Standard, ...).")
            .query("active_only", json!({"type": "boolean"}), "Only active users.")
            .query("since", time.clone(), "Start of the window (changes), RFC 3339.")
            .query("until", time.clone(), "End of the window (changes), RFC 3339.")
            .query("as_of", time, "The state at this time, rebuilt from the change history (all reports but changes and dormant).")
            .query("object", text.clone(), "Only this object (object-access), or its fields (field-access).")
            .query("field", text.clone(), "Only this field, as Object.Field (field-access).")
            .query("action", text.clone(), "Only paths that allow this action (object-access: read, create, edit, delete, view_all, modify_all, view_all_fields; field-access: read, edit).")
            .query("setup_entity", text, "Only this setup entity, by id or name (setup-access).")
            .query("days", json!({"type": "integer", "minimum": 0, "maximum": crate::reports::dormant::MAX_DAYS}), "Days without a login (dormant; required there).")
            .answer(answer),
    )
}

/// A report's format and filters, as the API's query and the console's form give them.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ReportQuery {
    pub format: Option<String>,
    pub entitlement: Option<String>,
    pub user_type: Option<String>,
    pub active_only: Option<bool>,
    pub permission: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub as_of: Option<String>,
    pub days: Option<u32>,
    pub object: Option<String>,
    pub field: Option<String>,
    pub action: Option<String>,
    pub setup_entity: Option<String>,
}

async fn report(
    State(state): State<AppState>,
    Path((org_name, name)): Path<(String, String)>,
    Query(query): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    super::orgs::org(&state, &org_name).await?;
    let file = temporary_file().map_err(|e| ApiError::Internal(e.into()))?;
    let (file, manifest, format, filename) = write(&state, &org_name, &name, query, file).await?;
    send_file(file, &manifest, format, &filename).await
}

/// Writes report `name` of org `org_name` to `file`: the file, its manifest, its format and
/// the name to save it as.
pub(crate) async fn write(
    state: &AppState,
    org_name: &str,
    name: &str,
    query: ReportQuery,
    file: std::fs::File,
) -> Result<
    (
        std::fs::File,
        crate::reports::manifest::Manifest,
        Format,
        String,
    ),
    ApiError,
> {
    let report = Report::parse(name).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no report is named `{name}`; reports: {}",
            Report::NAMES.join(", ")
        ))
    })?;
    let format = match query.format.as_deref() {
        None => Format::Csv,
        Some(text) => Format::parse(text).ok_or_else(|| {
            ApiError::BadRequest(format!("format={text} is not one of csv, json, ndjson"))
        })?,
    };
    if report == Report::Dormant && query.days.is_none() {
        return Err(ApiError::BadRequest(
            "the dormant report needs days=N (days without a login)".to_owned(),
        ));
    }
    let params = Params {
        entitlement: query.entitlement,
        user_type: query.user_type,
        active_only: query.active_only.unwrap_or(false),
        permission: query.permission,
        since: timestamp("since", query.since.as_deref())?,
        until: timestamp("until", query.until.as_deref())?,
        as_of: timestamp("as_of", query.as_of.as_deref())?,
        days: query.days,
        object: query.object,
        field: query.field,
        action: query.action,
        setup_entity: query.setup_entity,
    };
    let writer =
        std::io::BufWriter::new(file.try_clone().map_err(|e| ApiError::Internal(e.into()))?);
    let manifest =
        match reports::generate(&state.store, org_name, report, &params, format, writer).await {
            Ok(manifest) => manifest,
            Err(ReportError::BadParameter(message)) => return Err(ApiError::BadRequest(message)),
            Err(ReportError::NotSynced(org)) => {
                return Err(ApiError::Conflict {
                    code: "not_synced",
                    message: format!(
                "org `{org}` has no successful sync yet: sync it first (provost sync --org {org})"
            ),
                })
            }
            Err(other) => return Err(ApiError::Internal(other.into())),
        };
    let stamp = manifest.generated_at.replace(':', "");
    let filename = format!("{org_name}-{}-{stamp}.{}", report.as_str(), format.as_str());
    Ok((file, manifest, format, filename))
}

/// Sends a written report file from its start, with its manifest in headers.
pub(super) async fn send_file(
    file: std::fs::File,
    manifest: &crate::reports::manifest::Manifest,
    format: Format,
    filename: &str,
) -> Result<Response, ApiError> {
    let mut file = tokio::fs::File::from_std(file);
    tokio::io::AsyncSeekExt::seek(&mut file, std::io::SeekFrom::Start(0))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(manifest).expect("manifests serialise"));
    let mut response = Body::from_stream(tokio_util::io::ReaderStream::new(file)).into_response();
    let headers = response.headers_mut();
    let value =
        |text: String| HeaderValue::from_str(&text).map_err(|e| ApiError::Internal(e.into()));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    headers.insert(header::CONTENT_LENGTH, value(manifest.bytes.to_string())?);
    headers.insert(
        header::CONTENT_DISPOSITION,
        value(format!("attachment; filename=\"{filename}\""))?,
    );
    headers.insert("provost-report-sha256", value(manifest.sha256.clone())?);
    headers.insert("provost-report-rows", value(manifest.rows.to_string())?);
    headers.insert("provost-manifest", value(encoded)?);
    Ok(response)
}

fn timestamp(
    name: &str,
    text: Option<&str>,
) -> Result<Option<provost_connector::times::Timestamp>, ApiError> {
    text.map(|text| {
        provost_connector::times::parse_rfc3339(text).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "{name}={text} is not an RFC 3339 time such as 2026-07-01T00:00:00Z"
            ))
        })
    })
    .transpose()
}

/// An anonymous file in the temporary directory: removed from the directory at once, so it
/// disappears when the response is sent (or dropped), whatever happens.
pub(super) fn temporary_file() -> std::io::Result<std::fs::File> {
    let path = std::env::temp_dir().join(format!(
        "provost-report-{}-{}",
        std::process::id(),
        crate::tokens::generate()
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}
