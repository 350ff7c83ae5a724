//! `composite/sobjects` (up to 200 records a call) and `composite` (up to 25 subrequests).
//! Either counts as one API call, as in Salesforce.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value as Json_};
use tower::ServiceExt;

use super::rest::check_version;
use super::session::SessionUser;
use super::sobjects::{before_write, json_object, object_of, parse_id};
use super::{error_response, Emulator};
use crate::error::SfError;
use crate::org::Org;
use crate::rules;

const MAX_COLLECTION: usize = 200;
const MAX_SUBREQUESTS: usize = 25;
/// Of which query operations (query, queryAll, the next page of a query).
const MAX_QUERIES: usize = 5;

/// Marks a subrequest of `composite`, which the pipeline neither counts nor faults.
#[derive(Debug, Clone, Copy)]
pub struct InternalCall;

pub fn router() -> Router<Arc<Emulator>> {
    Router::new()
        .route(
            "/services/data/{version}/composite/sobjects",
            post(create_collection)
                .patch(update_collection)
                .delete(delete_collection),
        )
        .route("/services/data/{version}/composite", post(composite))
}

fn respond(result: Result<Response, SfError>) -> Response {
    result.unwrap_or_else(|err| error_response(&err))
}

#[derive(Debug, Deserialize)]
struct CollectionBody {
    #[serde(rename = "allOrNone", default)]
    all_or_none: bool,
    #[serde(default)]
    records: Vec<Map<String, Json_>>,
}

fn collection_body(body: &[u8]) -> Result<CollectionBody, SfError> {
    let parsed: CollectionBody = serde_json::from_slice(body).map_err(|err| {
        SfError::new(
            400,
            "JSON_PARSER_ERROR",
            format!("Cannot deserialize the request: {err}"),
        )
    })?;
    if parsed.records.len() > MAX_COLLECTION {
        // UNCONFIRMED: the code for more than 200 records.
        return Err(SfError::new(
            400,
            "EXCEEDED_ID_LIMIT",
            "Number of records can't exceed 200",
        ));
    }
    Ok(parsed)
}

fn type_of(org: &Org, record: &Map<String, Json_>) -> Result<crate::schema::ObjectType, SfError> {
    let name = record
        .get("attributes")
        .and_then(|a| a.get("type"))
        .and_then(Json_::as_str)
        .ok_or_else(|| SfError::new(400, "INVALID_TYPE", "Must send a concrete entity type."))?;
    object_of(org, name).map_err(|_| SfError::invalid_type(name))
}

/// Runs `operation` for each item under one write lock; with `all_or_none`, any failure
/// restores the org as it was and marks the others rolled back.
fn run_collection<T>(
    emulator: &Emulator,
    items: &[T],
    all_or_none: bool,
    mut operation: impl FnMut(&mut Org, &T) -> Result<Option<String>, SfError>,
    id_of_failure: impl Fn(&T) -> Option<String>,
) -> Vec<Json_> {
    let mut org = emulator.org.write();
    // All-or-none keeps a copy to roll back to; copying is the price of that option only.
    let snapshot = all_or_none.then(|| org.clone());
    let outcomes: Vec<Result<Option<String>, SfError>> =
        items.iter().map(|item| operation(&mut org, item)).collect();
    let failed = outcomes.iter().any(Result::is_err);
    if let (true, Some(snapshot)) = (failed, snapshot) {
        *org = snapshot;
        let rolled_back = SfError::new(
            400,
            "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "Record rolled back because not all records were valid and the request was using AllOrNone header",
        );
        return outcomes
            .into_iter()
            .zip(items)
            .map(|(outcome, item)| {
                let err = outcome.err().unwrap_or_else(|| rolled_back.clone());
                failure(id_of_failure(item), &err)
            })
            .collect();
    }
    outcomes
        .into_iter()
        .zip(items)
        .map(|(outcome, item)| match outcome {
            Ok(id) => json!({ "id": id, "success": true, "errors": [] }),
            Err(err) => failure(id_of_failure(item), &err),
        })
        .collect()
}

fn failure(id: Option<String>, err: &SfError) -> Json_ {
    let mut entry = Map::new();
    if let Some(id) = id {
        entry.insert("id".into(), json!(id));
    }
    entry.insert("success".into(), json!(false));
    entry.insert("errors".into(), json!([err.to_record_json()]));
    Json_::Object(entry)
}

async fn create_collection(
    State(emulator): State<Arc<Emulator>>,
    Extension(user): Extension<SessionUser>,
    Path(version): Path<String>,
    body: Bytes,
) -> Response {
    respond((|| {
        check_version(&version)?;
        let body = collection_body(&body)?;
        let results = run_collection(
            &emulator,
            &body.records,
            body.all_or_none,
            |org, record| {
                let object = type_of(org, record)?;
                before_write(&emulator, org, user, object)?;
                rules::create(org, object, record).map(|id| Some(id.as_str().to_owned()))
            },
            |_| None,
        );
        Ok(Json(Json_::Array(results)).into_response())
    })())
}

async fn update_collection(
    State(emulator): State<Arc<Emulator>>,
    Extension(user): Extension<SessionUser>,
    Path(version): Path<String>,
    body: Bytes,
) -> Response {
    respond((|| {
        check_version(&version)?;
        let body = collection_body(&body)?;
        let results = run_collection(
            &emulator,
            &body.records,
            body.all_or_none,
            |org, record| {
                let object = type_of(org, record)?;
                let id = record.get("Id").and_then(Json_::as_str).ok_or_else(|| {
                    SfError::new(
                        400,
                        "MISSING_ARGUMENT",
                        "Id not specified in an update call",
                    )
                })?;
                let id = parse_id(id)?;
                before_write(&emulator, org, user, object)?;
                let mut fields = record.clone();
                fields.remove("Id");
                rules::update(org, object, id, &fields).map(|()| Some(id.as_str().to_owned()))
            },
            |record| record.get("Id").and_then(Json_::as_str).map(str::to_owned),
        );
        Ok(Json(Json_::Array(results)).into_response())
    })())
}

#[derive(Debug, Deserialize)]
struct DeleteParams {
    ids: Option<String>,
    #[serde(rename = "allOrNone", default)]
    all_or_none: Option<String>,
}

async fn delete_collection(
    State(emulator): State<Arc<Emulator>>,
    Extension(user): Extension<SessionUser>,
    Path(version): Path<String>,
    Query(params): Query<DeleteParams>,
) -> Response {
    respond((|| {
        check_version(&version)?;
        let ids: Vec<String> = params
            .ids
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .collect();
        if ids.len() > MAX_COLLECTION {
            return Err(SfError::new(
                400,
                "EXCEEDED_ID_LIMIT",
                "Number of records can't exceed 200",
            ));
        }
        let all_or_none = params
            .all_or_none
            .as_deref()
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let results = run_collection(
            &emulator,
            &ids,
            all_or_none,
            |org, id| {
                let id = parse_id(id)?;
                let object = crate::schema::ObjectType::from_key_prefix(id.prefix())
                    .filter(|o| org.has_object(*o))
                    .ok_or_else(|| {
                        SfError::new(400, "MALFORMED_ID", format!("malformed id {id}"))
                    })?;
                before_write(&emulator, org, user, object)?;
                rules::delete(org, object, id).map(|()| Some(id.as_str().to_owned()))
            },
            |id| Some(id.clone()),
        );
        Ok(Json(Json_::Array(results)).into_response())
    })())
}

#[derive(Debug, Deserialize)]
struct CompositeBody {
    #[serde(rename = "allOrNone", default)]
    all_or_none: bool,
    #[serde(rename = "compositeRequest", default)]
    requests: Vec<SubRequest>,
}

#[derive(Debug, Deserialize)]
struct SubRequest {
    method: String,
    url: String,
    #[serde(rename = "referenceId")]
    reference_id: String,
    #[serde(default)]
    body: Option<Json_>,
    /// Headers of this subrequest alone (`Sforce-Query-Options`, say).
    #[serde(rename = "httpHeaders", default)]
    http_headers: HashMap<String, String>,
}

impl SubRequest {
    /// A query operation or a record collection: Salesforce allows five of them a call.
    fn is_query(&self) -> bool {
        let path = self.url.split('?').next().unwrap_or_default();
        path.split('/')
            .any(|part| part == "query" || part == "queryAll")
            || path.contains("/composite/sobjects")
    }
}

/// Headers a subrequest may not set (Salesforce takes them from the composite call).
const OUTER_HEADERS: [&str; 3] = ["accept", "authorization", "content-type"];

async fn composite(
    State(emulator): State<Arc<Emulator>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed = (|| {
        check_version(&version)?;
        let body: CompositeBody = serde_json::from_slice(&body).map_err(|err| {
            SfError::new(
                400,
                "JSON_PARSER_ERROR",
                format!("Cannot deserialize the request: {err}"),
            )
        })?;
        if body.requests.len() > MAX_SUBREQUESTS {
            return Err(SfError::new(
                400,
                "INVALID_FIELD",
                "Maximum of 25 subrequests is allowed.",
            ));
        }
        // Salesforce allows at most five query operations and record collections in one
        // composite request (the documented limit; the wording of its refusal is the emulator's).
        if body.requests.iter().filter(|sub| sub.is_query()).count() > MAX_QUERIES {
            return Err(SfError::new(
                400,
                "INVALID_FIELD",
                "Maximum of 5 query subrequests is allowed.",
            ));
        }
        Ok(body)
    })();
    let body = match parsed {
        Ok(body) => body,
        Err(err) => return error_response(&err),
    };
    let snapshot = body.all_or_none.then(|| emulator.org.read().clone());
    let app = super::router(emulator.clone());
    let mut results: HashMap<String, Json_> = HashMap::new();
    let mut responses: Vec<Json_> = Vec::new();
    let mut failed = false;
    for sub in &body.requests {
        if failed && body.all_or_none {
            responses.push(json!({
                "body": [{ "errorCode": "PROCESSING_HALTED", "message": "The transaction was rolled back since another operation in the same transaction failed." }],
                "httpHeaders": {}, "httpStatusCode": 400, "referenceId": sub.reference_id,
            }));
            continue;
        }
        let (status, value) = match run_subrequest(&app, &headers, sub, &results).await {
            Ok(outcome) => outcome,
            Err(err) => (err.status, err.to_rest_json()),
        };
        failed |= status >= 400;
        results.insert(sub.reference_id.clone(), value.clone());
        responses.push(json!({ "body": value, "httpHeaders": {}, "httpStatusCode": status, "referenceId": sub.reference_id }));
    }
    if let (true, Some(snapshot)) = (failed, snapshot) {
        *emulator.org.write() = snapshot;
    }
    Json(json!({ "compositeResponse": responses })).into_response()
}

async fn run_subrequest(
    app: &Router,
    headers: &HeaderMap,
    sub: &SubRequest,
    results: &HashMap<String, Json_>,
) -> Result<(u16, Json_), SfError> {
    if let Some(name) = sub
        .http_headers
        .keys()
        .find(|name| OUTER_HEADERS.contains(&name.to_ascii_lowercase().as_str()))
    {
        return Err(SfError::new(
            400,
            "INVALID_FIELD",
            format!("The {name} header cannot be set in a subrequest's httpHeaders."),
        ));
    }
    let url = substitute(&sub.url, results)?;
    let body = match &sub.body {
        Some(body) => {
            let text = substitute(&body.to_string(), results)?;
            json_object(text.as_bytes())?;
            Body::from(text)
        }
        None => Body::empty(),
    };
    let method = Method::from_bytes(sub.method.to_uppercase().as_bytes()).map_err(|_| {
        SfError::new(
            400,
            "INVALID_FIELD",
            format!("invalid method {}", sub.method),
        )
    })?;
    let mut request = Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json");
    if let Some(auth) = headers.get("authorization") {
        request = request.header("authorization", auth);
    }
    for (name, value) in &sub.http_headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let mut request = request
        .body(body)
        .map_err(|_| SfError::new(400, "INVALID_FIELD", "invalid subrequest URL or header"))?;
    request.extensions_mut().insert(InternalCall);
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let value = if bytes.is_empty() {
        Json_::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Json_::Null)
    };
    Ok((status, value))
}

/// Replaces `@{reference.path}` with values from earlier subresponses
/// (`@{newUser.id}`, `@{users.records[0].Id}`).
fn substitute(text: &str, results: &HashMap<String, Json_>) -> Result<String, SfError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("@{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| SfError::new(400, "INVALID_FIELD", "unterminated reference"))?;
        let expression = &after[..end];
        let value = resolve_reference(expression, results).ok_or_else(|| {
            SfError::new(
                400,
                "INVALID_FIELD",
                format!("Invalid reference specified. No value for {expression} found."),
            )
        })?;
        match value {
            Json_::String(s) => out.push_str(s),
            other => out.push_str(&other.to_string()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn resolve_reference<'a>(
    expression: &str,
    results: &'a HashMap<String, Json_>,
) -> Option<&'a Json_> {
    let mut parts = expression.split('.');
    let mut current = results.get(parts.next()?)?;
    for part in parts {
        let (name, index) = match part.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        current = current.get(name)?;
        if let Some(index) = index {
            current = current.get(index)?;
        }
    }
    Some(current)
}

pub(super) fn is_internal(request: &axum::extract::Request) -> bool {
    request.extensions().get::<InternalCall>().is_some()
}
