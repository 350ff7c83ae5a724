//! Syncing a configured org: the preflight gate, the connector's reader, and the credentials
//! kept up to date after it read.

use std::sync::Arc;

use anyhow::Context;
use provost_connector::preflight::{PreflightReport, Status};
use provost_salesforce::reader::{ReadOptions, SalesforceReader};

use crate::config::{Config, OrgConfig};
use crate::store::Store;
use crate::sync::progress::Observer;
use crate::sync::{Finished, SyncRequest};

/// Why a configured org's sync did not run.
#[derive(Debug, thiserror::Error)]
pub enum OrgSyncError {
    #[error("the preflight of org `{org}` failed, so the sync did not start; run `provost preflight --org {org}` to see what is missing")]
    Preflight {
        org: String,
        report: Box<PreflightReport>,
    },
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),
    #[error(transparent)]
    Setup(#[from] anyhow::Error),
}

/// The reader of an org, as configured.
pub async fn reader_for(
    config: &Config,
    org: &OrgConfig,
    store: &Arc<dyn Store>,
) -> anyhow::Result<SalesforceReader> {
    let secrets = super::preflight::secrets_for(config, org)?;
    let client = super::client_for(org, store, secrets.as_ref()).await?;
    Ok(SalesforceReader::new(
        client,
        ReadOptions {
            exclude_portal_users: org.exclude_portal_users,
            include_inactive_users: org.include_inactive_users,
            read_access: org.sync_access_permissions,
        },
    ))
}

/// Runs the preflight (unless `skip_preflight`) and then a sync of `org`. A sync that cannot
/// start (the preflight fails, Salesforce cannot be reached, credentials are missing) is
/// recorded as a failed run with its reason, so the history, health and webhooks say so.
pub async fn sync_org(
    config: &Config,
    org: &OrgConfig,
    store: &Arc<dyn Store>,
    request: &SyncRequest,
    skip_preflight: bool,
    observer: &dyn Observer,
) -> Result<Finished, OrgSyncError> {
    let record = store
        .ensure_org(&org.name)
        .await
        .with_context(|| format!("recording org `{}` in the store", org.name))?;
    let reader = match start(config, org, store, skip_preflight).await {
        Ok(reader) => reader,
        Err(err) => {
            let reason = not_started_reason(&err);
            match record_not_started(store, &record, request, &reason).await {
                Ok(Some(run)) => {
                    tracing::warn!(org = %org.name, run = %run, error = %reason, "the sync did not start")
                }
                Ok(None) => {
                    tracing::debug!(org = %org.name, error = %reason, "the sync did not start; another process is syncing or recorded it")
                }
                Err(store_err) => {
                    tracing::warn!(org = %org.name, error = %store_err, "recording a sync that did not start failed")
                }
            }
            return Err(err);
        }
    };
    let finished = crate::sync::run(store, &record, &reader, request, observer).await?;
    let secrets = super::preflight::secrets_for(config, org)?;
    super::keep_rotated_token(org, reader.client(), store, secrets.as_ref()).await?;
    Ok(finished)
}

/// Records a sync that did not start as a failed run, under the org's sync lock so that
/// replicas whose schedules fire together record it once: nothing is recorded while another
/// process holds the lock, nor, for a scheduled run, when a run of the org started within the
/// schedule's window (another replica got there first).
async fn record_not_started(
    store: &Arc<dyn Store>,
    record: &crate::store::OrgRecord,
    request: &SyncRequest,
    reason: &str,
) -> Result<Option<crate::store::sync::RunId>, crate::store::StoreError> {
    use crate::store::sync::LockOutcome;
    let holder = crate::sync::holder_name();
    if !matches!(
        store
            .acquire_sync_lock(record.id, &holder, crate::sync::LOCK_TTL)
            .await?,
        LockOutcome::Acquired
    ) {
        return Ok(None);
    }
    let recorded = async {
        if let Some(window) = request.skip_if_synced_within {
            let latest = store.list_sync_runs(record.id, 1).await?;
            if latest
                .first()
                .is_some_and(|run| chrono::Utc::now() - run.started_at < window)
            {
                return Ok(None);
            }
        }
        let event = crate::sync::failed_event(
            &record.name,
            request.mode,
            &request.started_by,
            None,
            reason,
        );
        let run = store
            .record_unstarted_sync_run(record.id, request.mode, &request.started_by, reason, &event)
            .await?;
        Ok(Some(run.id))
    }
    .await;
    store.release_sync_lock(record.id, &holder).await?;
    recorded
}

/// The gate before a sync: the preflight (unless skipped) and a reader.
async fn start(
    config: &Config,
    org: &OrgConfig,
    store: &Arc<dyn Store>,
    skip_preflight: bool,
) -> Result<SalesforceReader, OrgSyncError> {
    if !skip_preflight {
        let secrets = super::preflight::secrets_for(config, org)?;
        let report = super::preflight::run(org, store, secrets.as_ref()).await?;
        if !report.ok {
            return Err(OrgSyncError::Preflight {
                org: org.name.clone(),
                report: Box::new(report),
            });
        }
    }
    Ok(reader_for(config, org, store).await?)
}

/// Why a sync did not start, as its run records it: the failed required checks of a
/// preflight (each with its remedy), or the error.
fn not_started_reason(err: &OrgSyncError) -> String {
    match err {
        OrgSyncError::Preflight { report, .. } => {
            let failed: Vec<String> = report
                .checks
                .iter()
                .filter(|check| check.required && check.status == Status::Fail)
                .map(|check| match &check.remedy {
                    Some(remedy) => format!("{} ({}; {remedy})", check.id, check.detail),
                    None => format!("{} ({})", check.id, check.detail),
                })
                .collect();
            format!("did not start: the preflight failed: {}", failed.join("; "))
        }
        other => format!("did not start: {}", crate::util::error_line(other)),
    }
}

/// The request for a configured org.
pub fn request_for(
    org: &OrgConfig,
    mode: crate::store::sync::SyncMode,
    started_by: &str,
) -> SyncRequest {
    SyncRequest {
        mode,
        started_by: started_by.to_owned(),
        api_budget_percent: org.api_budget_percent,
        concurrency: usize::from(org.sync_concurrency),
        skip_if_synced_within: None,
    }
}
