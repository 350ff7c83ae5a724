//! `/console`: each org the viewer may see, with its last sync and health, the API calls of its
//! syncs per day (a chart), its preflight and what waits for people; a requester sees their own
//! access and requests.

use axum::extract::State;
use axum::response::Response;
use serde_json::{json, Value};

use super::super::charts;
use super::super::session::Viewer;
use super::super::view::{page, Problem};
use super::when;
use crate::http::AppState;
use crate::store::provisioning::RequestFilter;

pub async fn page_of(state: &AppState, viewer: &Viewer) -> Result<Response, Problem> {
    let mut orgs = Vec::new();
    for org in &state.config.orgs {
        if !viewer.may_open(&org.name) {
            continue;
        }
        let record = state.store.ensure_org(&org.name).await?;
        let mut entry = json!({ "name": org.name });
        if viewer.roles.directory() || viewer.roles.audit() {
            let runs = crate::sync::status::window_runs(state.store.as_ref(), record.id).await?;
            let health = crate::sync::status::health(&runs);
            let last = runs.first().map(|run| {
                json!({
                    "id": run.id.0,
                    "status": run.status,
                    "mode": run.mode,
                    "started": when(run.started_at),
                    "seconds": run.finished_at.map(|end| (end - run.started_at).num_milliseconds() as f64 / 1000.0),
                    "api_calls": run.api_calls,
                    "error": run.error,
                })
            });
            let mut per_day: std::collections::BTreeMap<String, f64> = Default::default();
            for run in &runs {
                *per_day
                    .entry(run.started_at.format("%m-%d").to_string())
                    .or_default() += run.api_calls as f64;
            }
            let bars: Vec<(String, f64)> = per_day.into_iter().collect();
            let preflight = state
                .store
                .last_preflight(record.id)
                .await?
                .map(|(report, at)| {
                    let failing: Vec<Value> = report["checks"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|c| c["status"] != "pass")
                        .cloned()
                        .collect();
                    json!({ "ok": report["ok"], "at": when(at), "failing": failing })
                });
            let counts = state.store.request_counts(record.id).await?;
            let count = |name: &str| {
                counts
                    .iter()
                    .find(|c| c.state == name)
                    .map_or(0, |c| c.count)
            };
            let open_items = state.store.open_review_items(record.id, None).await?;
            entry["last_run"] = json!(last);
            entry["health"] = serde_json::to_value(&health).unwrap_or(Value::Null);
            entry["chart"] = json!(charts::bars(
                &format!("API calls of {}'s syncs per day", org.name),
                &bars
            ));
            entry["preflight"] = json!(preflight);
            entry["pending"] = json!(count("pending_approval"));
            entry["failed"] = json!(count("failed"));
            entry["approved"] = json!(count("approved"));
            entry["open_items"] = json!(open_items);
        }
        if let (Some(own), Some(user_id)) = (&viewer.session.org, &viewer.session.user_id) {
            if own == &org.name {
                let mine = state
                    .store
                    .list_requests(
                        record.id,
                        &RequestFilter {
                            account_id: Some(user_id.clone()),
                            limit: 5,
                            ..RequestFilter::default()
                        },
                    )
                    .await?;
                let my_items =
                    super::super::roles::open_items_of(state, record.id, user_id).await?;
                entry["my_requests"] = json!(mine
                    .iter()
                    .map(|r| json!({
                        "id": r.id,
                        "action": r.action,
                        "state": r.state,
                        "summary": r.plan.get("summary"),
                        "created": when(r.created_at),
                    }))
                    .collect::<Vec<_>>());
                entry["my_items"] = json!(my_items);
            }
        }
        orgs.push(entry);
    }
    // Webhooks: how far each is behind the audit log it delivers from, and what failed.
    let mut webhooks = Vec::new();
    if viewer.roles.audit() && !state.config.webhooks.is_empty() {
        let (head, _) = state.store.audit_head().await?;
        let cursors = state.store.webhook_cursors().await?;
        let visible = state.config.webhooks.iter().filter(|hook| {
            // A webhook of every org, or of other orgs too, is a link admin's to see.
            match &viewer.session.org {
                None => true,
                Some(own) => hook.orgs.len() == 1 && &hook.orgs[0] == own,
            }
        });
        for hook in visible {
            let cursor = cursors.iter().find(|c| c.name == hook.name);
            webhooks.push(json!({
                "name": hook.name,
                "behind": cursor.map_or(head, |c| head - c.after_seq),
                "failing_since": cursor.and_then(|c| c.failing_since).map(when),
                "last_error": cursor.and_then(|c| c.last_error.clone()),
                "dead_letters": state.store.waiting_dead_letters(&hook.name).await?,
            }));
        }
    }
    page(
        "overview.html",
        Some(viewer),
        json!({ "orgs": orgs, "webhooks": webhooks }),
    )
}

pub async fn show(State(state): State<AppState>, viewer: Viewer) -> Result<Response, Problem> {
    page_of(&state, &viewer).await
}
