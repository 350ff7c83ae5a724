//! Sync history and health of an org, for `provost sync status` and the API.

use std::fmt::Write;

use serde::Serialize;

use crate::store::sync::{RunStatus, SyncRun};
use crate::store::{OrgId, Store, StoreError};

/// Health is measured over the runs started in the last this many days, whatever part of the
/// history is shown.
pub const HEALTH_WINDOW_DAYS: i64 = 7;
/// At most this many runs of the window are read (a run every minute for a week is fewer).
const HEALTH_MOST_RUNS: u32 = 20_000;

/// How an org's syncs went over the last [`HEALTH_WINDOW_DAYS`] days. A sync that could not
/// start (its preflight failed, Salesforce could not be reached) is a failed run like one
/// that failed midway.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// The window, in days, ending now.
    pub window_days: i64,
    /// Runs started in the window, whatever their status.
    pub runs: usize,
    /// Runs of the window that ended (succeeded or failed).
    pub finished_runs: usize,
    pub failed_runs: usize,
    /// Succeeded / finished; `None` when no run of the window ended.
    pub success_rate: Option<f64>,
    /// Mean wall time of the window's finished runs, succeeded and failed, first start to end.
    pub average_duration_seconds: Option<f64>,
    /// When the window's latest successful run ended.
    pub last_success_at: Option<String>,
    /// When the window's latest failed run ended, and why it failed.
    pub last_failure_at: Option<String>,
    pub last_error: Option<String>,
    /// Whether the latest finished run failed: the org is not being synced.
    pub failing: bool,
    /// The org's API usage of the day as the latest run saw it.
    pub api_used: Option<i64>,
    pub api_limit: Option<i64>,
}

pub fn duration_seconds(run: &SyncRun) -> Option<f64> {
    run.finished_at
        .map(|end| (end - run.started_at).as_seconds_f64())
}

/// The health of `org` over the window, read from the store.
pub async fn org_health(store: &dyn Store, org: OrgId) -> Result<Health, StoreError> {
    Ok(health(&window_runs(store, org).await?))
}

/// The runs of `org` started in the window, newest first.
pub async fn window_runs(store: &dyn Store, org: OrgId) -> Result<Vec<SyncRun>, StoreError> {
    let since = chrono::Utc::now() - chrono::TimeDelta::days(HEALTH_WINDOW_DAYS);
    store.sync_runs_since(org, since, HEALTH_MOST_RUNS).await
}

/// Health over `runs`: the window's runs, newest first.
pub fn health(runs: &[SyncRun]) -> Health {
    // Latest to end first: a run recorded as not started while another was running has the
    // larger id but may end first.
    let mut finished: Vec<&SyncRun> = runs
        .iter()
        .filter(|r| matches!(r.status, RunStatus::Succeeded | RunStatus::Failed))
        .collect();
    finished.sort_by(|a, b| b.finished_at.cmp(&a.finished_at).then(b.id.0.cmp(&a.id.0)));
    let succeeded = finished
        .iter()
        .filter(|r| r.status == RunStatus::Succeeded)
        .count();
    let durations: Vec<f64> = finished
        .iter()
        .filter_map(|r| duration_seconds(r))
        .collect();
    let latest = |status: RunStatus| finished.iter().find(|r| r.status == status);
    let rfc3339 = crate::util::times::rfc3339;
    let last_failure = latest(RunStatus::Failed);
    Health {
        window_days: HEALTH_WINDOW_DAYS,
        runs: runs.len(),
        finished_runs: finished.len(),
        failed_runs: finished.len() - succeeded,
        success_rate: (!finished.is_empty()).then(|| succeeded as f64 / finished.len() as f64),
        average_duration_seconds: (!durations.is_empty())
            .then(|| durations.iter().sum::<f64>() / durations.len() as f64),
        last_success_at: latest(RunStatus::Succeeded)
            .and_then(|r| r.finished_at)
            .map(rfc3339),
        last_failure_at: last_failure.and_then(|r| r.finished_at).map(rfc3339),
        last_error: last_failure.and_then(|r| r.error.clone()),
        failing: finished
            .first()
            .is_some_and(|r| r.status == RunStatus::Failed),
        api_used: runs.iter().find_map(|r| r.api_used),
        api_limit: runs.iter().find_map(|r| r.api_limit),
    }
}

/// The history for a terminal.
pub fn render(org: &str, runs: &[SyncRun], health: &Health) -> String {
    let mut out = format!("Syncs of org `{org}`\n");
    if runs.is_empty() {
        out.push_str("  no sync has run yet: `provost sync --org NAME` starts one\n");
        return out;
    }
    let _ = writeln!(
        out,
        "  {:>5}  {:<11}  {:<9}  {:<20}  {:>9}  {:>9}  {:>9}",
        "run", "mode", "status", "started (UTC)", "seconds", "changes", "API calls"
    );
    for run in runs {
        let started = run.started_at.format("%Y-%m-%d %H:%M:%S").to_string();
        let seconds = duration_seconds(run)
            .map(|s| format!("{s:.1}"))
            .unwrap_or_else(|| "-".to_owned());
        let _ = writeln!(
            out,
            "  {:>5}  {:<11}  {:<9}  {:<20}  {:>9}  {:>9}  {:>9}",
            run.id.0,
            run.mode.as_str(),
            run.status.as_str(),
            started,
            seconds,
            run.counts.changes(),
            run.api_calls
        );
    }
    let percent = |rate: Option<f64>| {
        rate.map(|r| format!("{:.0}%", r * 100.0))
            .unwrap_or_else(|| "-".to_owned())
    };
    let _ = writeln!(
        out,
        "  last {} days: {} run(s), {} finished, {} failed; success rate {}; average duration {}",
        health.window_days,
        health.runs,
        health.finished_runs,
        health.failed_runs,
        percent(health.success_rate),
        health
            .average_duration_seconds
            .map(|s| format!("{s:.1} s"))
            .unwrap_or_else(|| "-".to_owned())
    );
    if let (Some(used), Some(limit)) = (health.api_used, health.api_limit) {
        let _ = writeln!(out, "  API usage of the day: {used} of {limit}");
    }
    if let (Some(at), Some(error)) = (&health.last_failure_at, &health.last_error) {
        let _ = writeln!(out, "  last failure ({at}): {error}");
    }
    if health.failing {
        let _ = writeln!(
            out,
            "  FAILING: the latest run failed{}",
            health
                .last_success_at
                .as_ref()
                .map(|at| format!("; last success {at}"))
                .unwrap_or_else(|| format!("; no success in the last {} days", health.window_days))
        );
    }
    out
}
