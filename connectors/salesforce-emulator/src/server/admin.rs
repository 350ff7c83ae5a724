//! The admin path, for tests only: change faults, limits and features, change the org behind
//! a client's back (as an admin in Setup would), read call counts, reset. Not under
//! `/services`, never counted against the API limit.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value as Json_};

use super::sobjects::{json_object, object_of, parse_id};
use super::{error_response, Emulator, Faults};
use crate::error::SfError;
use crate::rules;
use crate::schema::Feature;
use crate::soql;

pub fn router() -> Router<Arc<Emulator>> {
    Router::new()
        .route("/info", get(info))
        .route("/faults", get(get_faults).put(put_faults))
        .route("/limits", put(put_limits))
        .route("/features", put(put_features))
        .route("/hidden-fields", put(put_hidden_fields))
        .route("/recalculate-groups", post(recalculate_groups))
        .route("/sessions/expire", post(expire_sessions))
        .route("/calls", get(calls).delete(clear_calls))
        .route("/reset", post(reset))
        .route("/query", get(query))
        .route("/records/{object}", post(create))
        .route("/records/{object}/{id}", patch(update).delete(remove))
}

/// The JSON body as `T`, or a message naming what was being set.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|err| format!("invalid {what}: {err}"))
}

fn bad_request(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": message.into() })),
    )
        .into_response()
}

async fn info(State(emulator): State<Arc<Emulator>>) -> Json<Json_> {
    Json(serde_json::to_value(emulator.connection_info(None)).expect("serialisable"))
}

async fn get_faults(State(emulator): State<Arc<Emulator>>) -> Json<Faults> {
    Json(emulator.faults.read().clone())
}

async fn put_faults(State(emulator): State<Arc<Emulator>>, body: Bytes) -> Response {
    let faults: Faults = match parse(&body, "faults") {
        Ok(faults) => faults,
        Err(message) => return bad_request(message),
    };
    if let Err(message) = faults.validate() {
        return bad_request(message);
    }
    *emulator.faults.write() = faults.clone();
    Json(faults).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Limits {
    used: Option<u64>,
    max: Option<u64>,
}

async fn put_limits(State(emulator): State<Arc<Emulator>>, body: Bytes) -> Response {
    let limits: Limits = match parse(&body, "limits") {
        Ok(limits) => limits,
        Err(message) => return bad_request(message),
    };
    let mut usage = emulator.usage.lock();
    if let Some(used) = limits.used {
        usage.used = used;
    }
    if let Some(max) = limits.max {
        usage.max = max;
    }
    Json(json!({ "used": usage.used, "max": usage.max })).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Features {
    permission_set_groups: Option<bool>,
    permission_set_licenses: Option<bool>,
}

async fn put_features(State(emulator): State<Arc<Emulator>>, body: Bytes) -> Response {
    let features: Features = match parse(&body, "features") {
        Ok(features) => features,
        Err(message) => return bad_request(message),
    };
    let mut org = emulator.org.write();
    if let Some(enabled) = features.permission_set_groups {
        org.set_feature(Feature::PermissionSetGroups, enabled);
    }
    if let Some(enabled) = features.permission_set_licenses {
        org.set_feature(Feature::PermissionSetLicenses, enabled);
    }
    Json(json!({
        "permission_set_groups": org.has_feature(Feature::PermissionSetGroups),
        "permission_set_licenses": org.has_feature(Feature::PermissionSetLicenses),
    }))
    .into_response()
}

/// Runs Salesforce's background recalculation of permission set groups now: every group not
/// `Updated` gets its aggregate set recomputed and becomes `Updated`.
async fn recalculate_groups(State(emulator): State<Arc<Emulator>>) -> Response {
    let mut org = emulator.org.write();
    let recalculated = rules::recalculate_groups(&mut org);
    Json(json!({ "recalculated": recalculated })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HiddenFields {
    fields: Vec<String>,
}

/// Field-level security: `{"fields": ["User.LastLoginDate"]}` hides those fields from every
/// API user (describe leaves them out, SOQL naming them is INVALID_FIELD); `[]` shows all.
async fn put_hidden_fields(State(emulator): State<Arc<Emulator>>, body: Bytes) -> Response {
    let hidden: HiddenFields = match parse(&body, "hidden fields") {
        Ok(hidden) => hidden,
        Err(message) => return bad_request(message),
    };
    let mut org = emulator.org.write();
    if let Err(message) = org.hide_fields(&hidden.fields) {
        return bad_request(message);
    }
    Json(json!({ "fields": org.hidden_fields() })).into_response()
}

async fn expire_sessions(State(emulator): State<Arc<Emulator>>) -> StatusCode {
    emulator.sessions.expire_access_tokens();
    StatusCode::NO_CONTENT
}

async fn calls(State(emulator): State<Arc<Emulator>>) -> Json<Json_> {
    let calls = emulator.calls.lock().clone();
    let total: u64 = calls
        .iter()
        .filter(|(k, _)| !k.contains("oauth2"))
        .map(|(_, v)| v)
        .sum();
    let usage = *emulator.usage.lock();
    Json(json!({ "rest_calls": total, "api_usage": usage, "by_endpoint": calls }))
}

async fn clear_calls(State(emulator): State<Arc<Emulator>>) -> StatusCode {
    emulator.calls.lock().clear();
    StatusCode::NO_CONTENT
}

async fn reset(State(emulator): State<Arc<Emulator>>) -> StatusCode {
    emulator.reset();
    StatusCode::NO_CONTENT
}

#[derive(Debug, Deserialize)]
struct QueryParams {
    q: String,
    #[serde(default)]
    all: bool,
}

/// Every matching row at once, for tests' ground truth (no paging, no API usage).
async fn query(
    State(emulator): State<Arc<Emulator>>,
    Query(params): Query<QueryParams>,
) -> Response {
    let result = (|| {
        let parsed = soql::parse(&params.q)?;
        let org = emulator.org.read();
        // The admin path sees the newest version's objects and fields.
        let compiled = soql::compile(&org, &parsed, &params.q, params.all, u32::MAX)?;
        let output = compiled.run(&org, params.all);
        let version = super::API_VERSIONS.last().expect("versions");
        let total = output.total_size;
        let mut body = format!("{{\"totalSize\":{total},\"done\":true,\"records\":").into_bytes();
        compiled.write_records(&org, &output, 0..output.rows.len(), version, &mut body);
        body.push(b'}');
        Ok::<_, SfError>(body)
    })();
    match result {
        Ok(body) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(err) => error_response(&err),
    }
}

async fn create(
    State(emulator): State<Arc<Emulator>>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    let result = (|| {
        let fields = json_object(&body)?;
        let mut org = emulator.org.write();
        let object = object_of(&org, &object)?;
        rules::create(&mut org, object, &fields)
    })();
    match result {
        Ok(id) => (
            StatusCode::CREATED,
            Json(json!({ "id": id.as_str(), "success": true, "errors": [] })),
        )
            .into_response(),
        Err(err) => error_response(&err),
    }
}

async fn update(
    State(emulator): State<Arc<Emulator>>,
    Path((object, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let result = (|| {
        let fields = json_object(&body)?;
        let mut org = emulator.org.write();
        let object = object_of(&org, &object)?;
        rules::update(&mut org, object, parse_id(&id)?, &fields)
    })();
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => error_response(&err),
    }
}

async fn remove(
    State(emulator): State<Arc<Emulator>>,
    Path((object, id)): Path<(String, String)>,
) -> Response {
    let result = (|| {
        let mut org = emulator.org.write();
        let object = object_of(&org, &object)?;
        rules::delete(&mut org, object, parse_id(&id)?)
    })();
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => error_response(&err),
    }
}
