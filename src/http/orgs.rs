//! The synced model of each org: `GET /api/v1/orgs/{org}/sync-runs` (history and health) and
//! `GET /api/v1/orgs/{org}/changes` (the change history, filterable and paginated).
//! Both need a token with `reports:read`.

use axum::extract::{Path, Query, State};
use axum::Json;
use provost_connector::times::Timestamp;
use serde::Deserialize;
use serde_json::{json, Value};

use super::openapi::{schemas, Operation, Routes};
use super::{ApiError, AppState};
use crate::store::sync::{ChangeQuery, Entity, RunId};
use crate::store::OrgRecord;
use crate::sync::status;
use crate::tokens::Scope;

pub fn routes() -> Routes {
    let integer = |min: u32, max: u32| json!({"type": "integer", "minimum": min, "maximum": max});
    let time = json!({"type": "string", "format": "date-time"});
    Routes::new()
        .get(
            "/api/v1/orgs/{org}/sync-runs",
            sync_runs,
            Operation::new("Sync", "Recent sync runs and the org's sync health")
                .scope(Scope::ReportsRead)
                .query(
                    "limit",
                    integer(1, 500),
                    "How many runs, newest first (default 20).",
                )
                .ok(
                    200,
                    "The runs, newest first, with success rate and average duration.",
                    schemas::reference("SyncRuns"),
                ),
        )
        .get(
            "/api/v1/orgs/{org}/changes",
            changes,
            Operation::new(
                "Sync",
                "The change history: what appeared, changed or disappeared",
            )
            .scope(Scope::ReportsRead)
            .query(
                "entity",
                schemas::entities(),
                "Only changes of this kind of record.",
            )
            .query(
                "object_id",
                json!({"type": "string"}),
                "Only changes of this record.",
            )
            .query(
                "run",
                json!({"type": "integer", "minimum": 1}),
                "Only changes this sync run observed.",
            )
            .query("since", time.clone(), "Observed at or after (RFC 3339).")
            .query("until", time, "Observed before (RFC 3339).")
            .query(
                "after",
                json!({"type": "integer", "minimum": 0}),
                "The page after this change id (`next_after`).",
            )
            .query("limit", integer(1, 1000), "Page size (default 100).")
            .ok(
                200,
                "The changes, oldest first.",
                schemas::reference("ChangeList"),
            ),
        )
}

pub(super) async fn org(state: &AppState, name: &str) -> Result<OrgRecord, ApiError> {
    if state.config.org(name).is_err() {
        return Err(ApiError::NotFound(format!(
            "no org `{name}` is configured; GET /api/v1/orgs/NAME/... takes an [[orgs]] name"
        )));
    }
    Ok(state.store.ensure_org(name).await?)
}

/// The org named in the path with its configuration, for handlers that act on it.
pub(super) async fn org_and_config<'a>(
    state: &'a AppState,
    name: &str,
) -> Result<(&'a crate::config::OrgConfig, OrgRecord), ApiError> {
    let record = org(state, name).await?;
    let config = state
        .config
        .org(name)
        .map_err(|_| ApiError::NotFound(format!("no org `{name}` is configured")))?;
    Ok((config, record))
}

#[derive(Debug, Deserialize)]
struct RunsParams {
    limit: Option<u32>,
}

async fn sync_runs(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<RunsParams>,
) -> Result<Json<Value>, ApiError> {
    let limit = params.limit.unwrap_or(20);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit={limit} is outside 1..=500"
        )));
    }
    let org = org(&state, &name).await?;
    let runs = state.store.list_sync_runs(org.id, limit).await?;
    let health = status::org_health(state.store.as_ref(), org.id).await?;
    let runs: Vec<Value> = runs
        .iter()
        .map(|run| {
            let mut value = serde_json::to_value(run).expect("runs serialise");
            value["duration_seconds"] = json!(status::duration_seconds(run));
            value
        })
        .collect();
    Ok(Json(json!({ "org": name, "health": health, "runs": runs })))
}

#[derive(Debug, Deserialize)]
struct ChangesParams {
    entity: Option<String>,
    object_id: Option<String>,
    run: Option<i64>,
    since: Option<String>,
    until: Option<String>,
    after: Option<i64>,
    limit: Option<u32>,
}

fn timestamp(name: &str, value: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    value
        .map(|text| {
            provost_connector::times::parse_rfc3339(text).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{name}=`{text}` is not an RFC 3339 time such as 2026-01-31T00:00:00Z"
                ))
            })
        })
        .transpose()
}

async fn changes(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<ChangesParams>,
) -> Result<Json<Value>, ApiError> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit={limit} is outside 1..=1000"
        )));
    }
    let entity = params
        .entity
        .as_deref()
        .map(str::parse::<Entity>)
        .transpose()
        .map_err(ApiError::BadRequest)?;
    let query = ChangeQuery {
        entity,
        object_id: params.object_id,
        run: super::in_range("run", params.run, 1..=i64::MAX)?.map(RunId),
        since: timestamp("since", params.since.as_deref())?,
        until: timestamp("until", params.until.as_deref())?,
        after: super::in_range("after", params.after, 0..=i64::MAX)?,
        limit,
    };
    let org = org(&state, &name).await?;
    let changes = state.store.list_changes(org.id, &query).await?;
    let next = (changes.len() == limit as usize)
        .then(|| changes.last().map(|c| c.id))
        .flatten();
    Ok(Json(
        json!({ "org": name, "changes": changes, "next_after": next }),
    ))
}
