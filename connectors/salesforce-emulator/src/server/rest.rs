//! The REST API under `/services/data`: versions, limits, queries with cursors. Records and
//! composite calls are in `sobjects.rs` and `composite.rs`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{json, Value as Json_};

use super::session::SessionUser;
use super::{composite, error_response, sobjects, Emulator, API_VERSIONS};
use crate::error::SfError;
use crate::id::Id;
use crate::soql::{self, CompiledQuery, QueryOutput};

pub fn router() -> Router<Arc<Emulator>> {
    Router::new()
        .route("/services/data", get(versions))
        .route("/services/data/", get(versions))
        .route("/services/data/{version}", get(resources))
        .route("/services/data/{version}/", get(resources))
        .route("/services/data/{version}/limits", get(limits))
        .route("/services/data/{version}/limits/", get(limits))
        .route("/services/data/{version}/query", get(query))
        .route("/services/data/{version}/query/", get(query))
        .route("/services/data/{version}/queryAll", get(query_all))
        .route("/services/data/{version}/queryAll/", get(query_all))
        .route("/services/data/{version}/query/{locator}", get(next_page))
        .route(
            "/services/data/{version}/queryAll/{locator}",
            get(next_page),
        )
        .merge(sobjects::router())
        .merge(composite::router())
}

/// A version segment `vNN.N` that the emulator serves, or 404 as Salesforce answers.
pub(super) fn check_version(segment: &str) -> Result<&str, SfError> {
    segment
        .strip_prefix('v')
        .filter(|v| API_VERSIONS.contains(v))
        .ok_or_else(SfError::not_found)
}

fn label_of(version: &str) -> String {
    let number: u32 = version
        .split('.')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // v45 was Spring '19 (v55 Summer '22); three releases a year.
    let offset = number.saturating_sub(45);
    let season = ["Spring", "Summer", "Winter"][(offset % 3) as usize];
    let year = 19 + (offset + 1) / 3;
    format!("{season} '{year}")
}

async fn versions() -> Json<Json_> {
    Json(Json_::Array(
        API_VERSIONS
            .iter()
            .map(|v| json!({ "label": label_of(v), "url": format!("/services/data/v{v}"), "version": v }))
            .collect(),
    ))
}

async fn resources(Path(version): Path<String>) -> Response {
    match check_version(&version) {
        Ok(v) => {
            let base = format!("/services/data/v{v}");
            Json(json!({
                "limits": format!("{base}/limits"),
                "sobjects": format!("{base}/sobjects"),
                "query": format!("{base}/query"),
                "queryAll": format!("{base}/queryAll"),
                "composite": format!("{base}/composite"),
                "identity": "/id",
            }))
            .into_response()
        }
        Err(err) => error_response(&err),
    }
}

async fn limits(State(emulator): State<Arc<Emulator>>, Path(version): Path<String>) -> Response {
    if let Err(err) = check_version(&version) {
        return error_response(&err);
    }
    let usage = *emulator.usage.lock();
    let remaining = usage.max.saturating_sub(usage.used);
    Json(json!({
        "ConcurrentAsyncGetReportInstances": { "Max": 200, "Remaining": 200 },
        "DailyApiRequests": { "Max": usage.max, "Remaining": remaining },
        "DailyAsyncApexExecutions": { "Max": 250000, "Remaining": 250000 },
        "DailyBulkApiBatches": { "Max": 15000, "Remaining": 15000 },
        "DailyBulkV2QueryJobs": { "Max": 10000, "Remaining": 10000 },
        "DataStorageMB": { "Max": 1024, "Remaining": 1000 },
        "FileStorageMB": { "Max": 1024, "Remaining": 1024 },
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
struct QueryParams {
    q: Option<String>,
}

const DEFAULT_BATCH: usize = 2000;

/// `Sforce-Query-Options: batchSize=N`, 200..=2000; Salesforce treats it as a hint.
fn batch_size(headers: &HeaderMap) -> usize {
    headers
        .get("sforce-query-options")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .filter_map(|part| part.trim().split_once('='))
                .find(|(key, _)| key.trim().eq_ignore_ascii_case("batchSize"))
                .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        })
        .map(|n| n.clamp(200, 2000))
        .unwrap_or(DEFAULT_BATCH)
}

async fn query(
    State(emulator): State<Arc<Emulator>>,
    Extension(user): Extension<SessionUser>,
    Path(version): Path<String>,
    Query(params): Query<QueryParams>,
    headers: HeaderMap,
) -> Response {
    run_query(&emulator, user, &version, params.q, &headers, false)
}

async fn query_all(
    State(emulator): State<Arc<Emulator>>,
    Extension(user): Extension<SessionUser>,
    Path(version): Path<String>,
    Query(params): Query<QueryParams>,
    headers: HeaderMap,
) -> Response {
    run_query(&emulator, user, &version, params.q, &headers, true)
}

fn run_query(
    emulator: &Emulator,
    user: SessionUser,
    version: &str,
    q: Option<String>,
    headers: &HeaderMap,
    all_rows: bool,
) -> Response {
    let result = (|| {
        let version = check_version(version)?;
        let source = q.filter(|q| !q.trim().is_empty()).ok_or_else(|| {
            SfError::new(400, "MALFORMED_QUERY", "A query string has to be specified")
        })?;
        let parsed = soql::parse(&source)?;
        let org = emulator.org.read();
        let compiled = soql::compile(&org, &parsed, &source, all_rows, super::major(version))?;
        let output = compiled.run(&org, all_rows);
        let cursor = Cursor {
            owner: user.0,
            query: compiled,
            output,
            batch: batch_size(headers),
            all_rows,
        };
        Ok::<_, SfError>(emulator.cursors.page(&org, Arc::new(cursor), 0, version))
    })();
    match result {
        Ok(body) => json_bytes(body),
        Err(err) => error_response(&err),
    }
}

async fn next_page(
    State(emulator): State<Arc<Emulator>>,
    Path((version, locator)): Path<(String, String)>,
) -> Response {
    let result = (|| {
        let version = check_version(&version)?;
        let invalid = || SfError::new(400, "INVALID_QUERY_LOCATOR", "invalid query locator");
        let (id, position) = locator.split_once('-').ok_or_else(invalid)?;
        let position: usize = position.parse().map_err(|_| invalid())?;
        let cursor = emulator.cursors.get(id).ok_or_else(invalid)?;
        if position >= cursor.output.rows.len() {
            return Err(invalid());
        }
        let org = emulator.org.read();
        Ok(emulator
            .cursors
            .page_existing(&org, id, cursor, position, version))
    })();
    match result {
        Ok(body) => json_bytes(body),
        Err(err) => error_response(&err),
    }
}

/// A query's result held for its `nextRecordsUrl` pages.
pub struct Cursor {
    owner: Id,
    query: CompiledQuery,
    output: QueryOutput,
    batch: usize,
    all_rows: bool,
}

/// Open query cursors. Salesforce lets a user hold 10 open at a time; opening another
/// forgets that user's oldest (its locator then gets INVALID_QUERY_LOCATOR).
#[derive(Default)]
pub struct Cursors {
    inner: Mutex<CursorsInner>,
}

#[derive(Default)]
struct CursorsInner {
    next: u64,
    open: HashMap<String, Arc<Cursor>>,
    order: VecDeque<(Id, String)>,
}

const MAX_OPEN_CURSORS_PER_USER: usize = 10;

impl Cursors {
    pub fn clear(&self) {
        let mut inner = self.inner.lock();
        inner.open.clear();
        inner.order.clear();
    }

    fn get(&self, id: &str) -> Option<Arc<Cursor>> {
        self.inner.lock().open.get(id).cloned()
    }

    fn open(&self, cursor: Arc<Cursor>) -> String {
        let mut inner = self.inner.lock();
        inner.next += 1;
        let id = Id::new("01g", inner.next).as_str().to_owned();
        let owner = cursor.owner;
        inner.open.insert(id.clone(), cursor);
        inner.order.push_back((owner, id.clone()));
        let held = inner
            .order
            .iter()
            .filter(|(user, _)| *user == owner)
            .count();
        if held > MAX_OPEN_CURSORS_PER_USER {
            let oldest = inner
                .order
                .iter()
                .position(|(user, _)| *user == owner)
                .expect("held > 0");
            if let Some((_, old)) = inner.order.remove(oldest) {
                inner.open.remove(&old);
            }
        }
        id
    }

    /// The first page of a fresh query result.
    fn page(
        &self,
        org: &crate::org::Org,
        cursor: Arc<Cursor>,
        position: usize,
        version: &str,
    ) -> Vec<u8> {
        if cursor.query.count_only {
            let total = cursor.output.total_size;
            return format!("{{\"totalSize\":{total},\"done\":true,\"records\":[]}}").into_bytes();
        }
        let more = cursor.output.rows.len() > position + cursor.batch;
        let id = more.then(|| self.open(cursor.clone()));
        render_page(org, &cursor, id.as_deref(), position, version)
    }

    fn page_existing(
        &self,
        org: &crate::org::Org,
        id: &str,
        cursor: Arc<Cursor>,
        position: usize,
        version: &str,
    ) -> Vec<u8> {
        let body = render_page(org, &cursor, Some(id), position, version);
        if position + cursor.batch >= cursor.output.rows.len() {
            let mut inner = self.inner.lock();
            inner.open.remove(id);
            inner.order.retain(|(_, open)| open != id);
        }
        body
    }
}

/// `{"totalSize","done","nextRecordsUrl"?,"records"}`, in Salesforce's key order.
fn render_page(
    org: &crate::org::Org,
    cursor: &Cursor,
    id: Option<&str>,
    position: usize,
    version: &str,
) -> Vec<u8> {
    use std::io::Write;
    let total = cursor.output.rows.len();
    let end = (position + cursor.batch).min(total);
    let mut out = Vec::with_capacity((end - position) * 600 + 256);
    let _ = write!(out, "{{\"totalSize\":{total},\"done\":{}", end >= total);
    if end < total {
        let kind = if cursor.all_rows { "queryAll" } else { "query" };
        let id = id.expect("a cursor is open while rows remain");
        let _ = write!(
            out,
            ",\"nextRecordsUrl\":\"/services/data/v{version}/{kind}/{id}-{end}\""
        );
    }
    out.extend_from_slice(b",\"records\":");
    cursor
        .query
        .write_records(org, &cursor.output, position..end, version, &mut out);
    out.push(b'}');
    out
}

fn json_bytes(body: Vec<u8>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/json;charset=UTF-8",
        )],
        body,
    )
        .into_response()
}
