//! Sync history and health of an org, for `provost sync status` and the API.

use std::fmt::Write;

use serde::Serialize;

use crate::store::sync::{RunStatus, SyncRun};

/// How an org's recent syncs went.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// Finished runs (succeeded or failed) among the recent ones.
    pub finished_runs: usize,
    /// Succeeded / finished, over the recent runs; `None` before any run finished.
    pub success_rate: Option<f64>,
    /// Mean wall time of the recent succeeded runs, first start to commit.
    pub average_duration_seconds: Option<f64>,
    pub last_success_at: Option<String>,
    pub last_error: Option<String>,
    /// The org's API usage of the day as the latest run saw it.
    pub api_used: Option<i64>,
    pub api_limit: Option<i64>,
}

pub fn duration_seconds(run: &SyncRun) -> Option<f64> {
    run.finished_at
        .map(|end| (end - run.started_at).as_seconds_f64())
}

/// Health over `runs` (newest first).
pub fn health(runs: &[SyncRun]) -> Health {
    let finished: Vec<&SyncRun> = runs
        .iter()
        .filter(|r| matches!(r.status, RunStatus::Succeeded | RunStatus::Failed))
        .collect();
    let succeeded: Vec<&SyncRun> = finished
        .iter()
        .copied()
        .filter(|r| r.status == RunStatus::Succeeded)
        .collect();
    let durations: Vec<f64> = succeeded
        .iter()
        .filter_map(|r| duration_seconds(r))
        .collect();
    let rfc3339 = crate::util::times::rfc3339;
    Health {
        finished_runs: finished.len(),
        success_rate: (!finished.is_empty())
            .then(|| succeeded.len() as f64 / finished.len() as f64),
        average_duration_seconds: (!durations.is_empty())
            .then(|| durations.iter().sum::<f64>() / durations.len() as f64),
        last_success_at: succeeded.first().and_then(|r| r.finished_at).map(rfc3339),
        last_error: runs.iter().find_map(|r| r.error.clone()),
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
        "  success rate {} over {} finished run(s); average duration {}",
        percent(health.success_rate),
        health.finished_runs,
        health
            .average_duration_seconds
            .map(|s| format!("{s:.1} s"))
            .unwrap_or_else(|| "-".to_owned())
    );
    if let (Some(used), Some(limit)) = (health.api_used, health.api_limit) {
        let _ = writeln!(out, "  API usage of the day: {used} of {limit}");
    }
    if let Some(error) = &health.last_error {
        let _ = writeln!(out, "  last error: {error}");
    }
    out
}
