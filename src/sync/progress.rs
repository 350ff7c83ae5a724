//! Watching a run: a bar per resource in a terminal, log lines elsewhere, and the summary.

use std::fmt::Write;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use provost_connector::connector::ResourceType;
use serde::Serialize;

use crate::store::sync::{ResourceState, RunStatus, SyncRun};

/// Told what a run does as it does it.
pub trait Observer: Send + Sync {
    fn run_started(&self, _run: &SyncRun) {}
    fn resource_started(&self, _resource: &ResourceType, _state: &ResourceState) {}
    fn page_read(&self, _resource: &ResourceType, _state: &ResourceState) {}
    fn resource_finished(&self, _state: &ResourceState) {}
    fn committing(&self, _run: &SyncRun) {}
}

/// Logs resource completions (for `serve`'s scheduled syncs and for tests).
pub struct LogObserver;

impl Observer for LogObserver {
    fn resource_finished(&self, state: &ResourceState) {
        tracing::debug!(
            resource = state.resource,
            records = state.records,
            pages = state.pages,
            "resource read"
        );
    }
}

/// One progress bar per resource, sized by the query's `totalSize`, on stderr. Hidden when
/// stderr is not a terminal.
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<Vec<(String, ProgressBar)>>,
}

impl Bars {
    pub fn new() -> Bars {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(Vec::new()),
        }
    }

    fn bar(&self, resource: &str, label: &str) -> ProgressBar {
        let mut bars = self.bars.lock().expect("bars lock");
        if let Some((_, bar)) = bars.iter().find(|(r, _)| r == resource) {
            return bar.clone();
        }
        let bar = self.multi.add(ProgressBar::new(0));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>36} [{bar:30}] {pos:>8}/{len:8} {elapsed:>4} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(label.to_owned());
        bars.push((resource.to_owned(), bar.clone()));
        bar
    }
}

impl Default for Bars {
    fn default() -> Self {
        Bars::new()
    }
}

impl Observer for Bars {
    fn resource_started(&self, resource: &ResourceType, state: &ResourceState) {
        let bar = self.bar(resource.id, resource.label);
        bar.set_position(state.records.max(0) as u64);
    }

    fn page_read(&self, resource: &ResourceType, state: &ResourceState) {
        let bar = self.bar(resource.id, resource.label);
        if let Some(total) = state.total {
            bar.set_length(total.max(state.records).max(0) as u64);
        }
        bar.set_position(state.records.max(0) as u64);
    }

    fn resource_finished(&self, state: &ResourceState) {
        let bars = self.bars.lock().expect("bars lock");
        if let Some((_, bar)) = bars.iter().find(|(r, _)| *r == state.resource) {
            bar.set_length(state.records.max(0) as u64);
            bar.finish_with_message("done");
        }
    }

    fn committing(&self, _run: &SyncRun) {
        let _ = self.multi.println("Committing the run...");
    }
}

impl Drop for Bars {
    /// Ends the bars' last line, so what is printed next starts on its own.
    fn drop(&mut self) {
        let drawn = !self.bars.lock().map(|b| b.is_empty()).unwrap_or(true);
        if drawn && !self.multi.is_hidden() {
            eprintln!();
        }
    }
}

/// A run's summary, for `--json` and the API.
#[derive(Debug, Serialize)]
pub struct Summary<'a> {
    pub org: &'a str,
    #[serde(flatten)]
    pub run: &'a SyncRun,
    pub duration_seconds: f64,
}

/// The summary for a terminal.
pub fn render(org: &str, run: &SyncRun, elapsed: std::time::Duration) -> String {
    let mut out = String::new();
    let verdict = match run.status {
        RunStatus::Succeeded => "completed".to_owned(),
        RunStatus::Paused => format!(
            "PAUSED ({})",
            run.pause_reason.as_deref().unwrap_or("paused")
        ),
        RunStatus::Failed => "FAILED".to_owned(),
        RunStatus::Running => "still running".to_owned(),
    };
    let _ = writeln!(
        out,
        "Sync of org `{org}` {verdict}: run {} ({}, attempt {}) in {:.1} s",
        run.id,
        run.mode.as_str(),
        run.attempts,
        elapsed.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "  {:<13} {:>9} {:>9} {:>9}",
        "", "created", "updated", "removed"
    );
    for (label, counts) in [
        ("users", &run.counts.accounts),
        ("entitlements", &run.counts.entitlements),
        ("grants", &run.counts.grants),
        ("permissions", &run.counts.permissions),
    ] {
        let _ = writeln!(
            out,
            "  {:<13} {:>9} {:>9} {:>9}",
            label, counts.created, counts.updated, counts.removed
        );
    }
    let _ = writeln!(out, "  rows read: {}", run.counts.rows_read);
    if run.counts.grants_skipped > 0 {
        let _ = writeln!(
            out,
            "  grants skipped: {} (their user or entitlement appeared while the sync was reading; the next sync picks them up)",
            run.counts.grants_skipped
        );
    }
    if run.counts.permissions_skipped > 0 {
        let _ = writeln!(
            out,
            "  permissions skipped: {} (their permission set appeared while the sync was reading; the next sync picks them up)",
            run.counts.permissions_skipped
        );
    }
    let usage = match (run.api_used, run.api_limit) {
        (Some(used), Some(limit)) => format!("; the org has used {used} of {limit} today"),
        _ => String::new(),
    };
    let _ = writeln!(out, "  API calls: {}{usage}", run.api_calls);
    if let Some(error) = &run.error {
        let _ = writeln!(out, "  {error}");
    }
    out
}
