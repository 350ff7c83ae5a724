//! Scheduled syncs inside `provost serve`: one task per org with `sync_interval_minutes`.
//!
//! Each task syncs when the interval has passed since the org's last run started (at once if
//! it never ran, or if a paused run waits). Replicas sharing a database each run the schedule;
//! the sync lock lets one of them sync and the others find the org busy and wait for the next
//! tick.

use std::sync::Arc;
use std::time::Duration;

use provost_connector::times::Timestamp;
use tokio::task::JoinHandle;

use super::progress::LogObserver;
use super::SyncError;
use crate::config::{Config, OrgConfig};
use crate::metrics::Metrics;
use crate::org::sync::{request_for, sync_org, OrgSyncError};
use crate::store::sync::{RunStatus, SyncMode};
use crate::store::Store;

/// Starts a task per scheduled org; they stop when the returned handles are aborted. The runs
/// they end are counted in `metrics`.
pub fn start(
    config: Arc<Config>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
) -> Vec<JoinHandle<()>> {
    config
        .orgs
        .iter()
        .filter_map(|org| {
            let interval = org.sync_interval_minutes?;
            let (config, store, org, metrics) =
                (config.clone(), store.clone(), org.clone(), metrics.clone());
            tracing::info!(org = %org.name, interval_minutes = interval, "scheduled syncs on");
            Some(tokio::spawn(async move {
                schedule(
                    config,
                    store,
                    org,
                    Duration::from_secs(u64::from(interval) * 60),
                    metrics,
                )
                .await
            }))
        })
        .collect()
}

async fn schedule(
    config: Arc<Config>,
    store: Arc<dyn Store>,
    org: OrgConfig,
    interval: Duration,
    metrics: Arc<Metrics>,
) {
    loop {
        let wait = match until_due(&store, &org, interval).await {
            Ok(wait) => wait,
            Err(err) => {
                tracing::warn!(org = %org.name, error = %err, "reading the sync history failed");
                Duration::from_secs(60)
            }
        };
        tokio::time::sleep(wait).await;
        let mut request = request_for(&org, SyncMode::Incremental, "schedule");
        // Another replica may have synced while this one waited.
        request.skip_if_synced_within = Some(
            chrono::TimeDelta::from_std(interval).unwrap_or(chrono::TimeDelta::MAX)
                - chrono::TimeDelta::seconds(5),
        );
        match sync_org(&config, &org, &store, &request, false, &LogObserver).await {
            Ok(finished) => {
                metrics.observe_sync(
                    &org.name,
                    finished.run.status.as_str(),
                    finished.elapsed.as_secs_f64(),
                );
                tracing::info!(
                    org = %org.name,
                    run = %finished.run.id,
                    status = %finished.run.status,
                    changes = finished.run.counts.changes(),
                    api_calls = finished.run.api_calls,
                    seconds = finished.elapsed.as_secs_f64(),
                    "scheduled sync ended"
                )
            }
            Err(OrgSyncError::Sync(SyncError::UpToDate { .. })) => {
                tracing::debug!(org = %org.name, "another process synced the org already");
            }
            Err(OrgSyncError::Sync(SyncError::Busy { .. })) => {
                tracing::debug!(org = %org.name, "another process is syncing the org");
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            Err(err) => {
                tracing::warn!(org = %org.name, error = %err, "scheduled sync did not run");
                tokio::time::sleep(Duration::from_secs(60).min(interval)).await;
            }
        }
    }
}

/// How long until the org's next sync is due.
async fn until_due(
    store: &Arc<dyn Store>,
    org: &OrgConfig,
    interval: Duration,
) -> anyhow::Result<Duration> {
    let Some(record) = store.find_org(&org.name).await? else {
        return Ok(Duration::ZERO);
    };
    let runs = store.list_sync_runs(record.id, 1).await?;
    let Some(last) = runs.first() else {
        return Ok(Duration::ZERO);
    };
    if matches!(last.status, RunStatus::Paused | RunStatus::Running) {
        // A paused run resumes at the next interval; an interrupted one at once.
        let since = last.updated_at;
        return Ok(remaining(
            since,
            interval,
            last.status == RunStatus::Running,
        ));
    }
    if last.status == RunStatus::Failed && last.attempts == 0 {
        // It could not start (preflight, Salesforce unreachable): try again sooner than a full
        // interval, so a short outage at sync time does not cost a whole interval.
        return Ok(remaining(
            last.started_at,
            interval.min(RETRY_NOT_STARTED),
            false,
        ));
    }
    Ok(remaining(last.started_at, interval, false))
}

/// How soon a scheduled sync that could not start is tried again (at most its interval).
const RETRY_NOT_STARTED: Duration = Duration::from_secs(5 * 60);

fn remaining(since: Timestamp, interval: Duration, now: bool) -> Duration {
    if now {
        return Duration::ZERO;
    }
    let elapsed = (chrono::Utc::now() - since)
        .to_std()
        .unwrap_or(Duration::ZERO);
    interval.saturating_sub(elapsed)
}
