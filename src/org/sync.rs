//! Syncing a configured org: the preflight gate, the connector's reader, and the credentials
//! kept up to date after it read.

use std::sync::Arc;

use anyhow::Context;
use provost_connector::preflight::PreflightReport;
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
        },
    ))
}

/// Runs the preflight (unless `skip_preflight`) and then a sync of `org`.
pub async fn sync_org(
    config: &Config,
    org: &OrgConfig,
    store: &Arc<dyn Store>,
    request: &SyncRequest,
    skip_preflight: bool,
    observer: &dyn Observer,
) -> Result<Finished, OrgSyncError> {
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
    let record = store
        .ensure_org(&org.name)
        .await
        .with_context(|| format!("recording org `{}` in the store", org.name))?;
    let reader = reader_for(config, org, store).await?;
    let finished = crate::sync::run(store, &record, &reader, request, observer).await?;
    let secrets = super::preflight::secrets_for(config, org)?;
    super::keep_rotated_token(org, reader.client(), store, secrets.as_ref()).await?;
    Ok(finished)
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
        skip_if_synced_within: None,
    }
}
