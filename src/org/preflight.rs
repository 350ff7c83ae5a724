//! An org's preflight: what its connecting user may do, kept for the plans of access
//! requests.

use std::sync::Arc;

use provost_connector::preflight::PreflightReport;
use provost_salesforce::preflight::{self, PreflightOptions};

use crate::config::{AuthConfig, Config, OrgConfig};
use crate::org::secrets::SecretBox;
use crate::store::Store;

/// The secret key, when the org's credentials need it (web-server orgs keep a sealed token).
pub fn secrets_for(config: &Config, org: &OrgConfig) -> anyhow::Result<Option<SecretBox>> {
    match org.auth {
        AuthConfig::WebServer { .. } => Ok(Some(SecretBox::load(&config.secrets.key_file)?)),
        _ => Ok(None),
    }
}

/// Runs the preflight of an org.
pub async fn run(
    org: &OrgConfig,
    store: &Arc<dyn Store>,
    secrets: Option<&SecretBox>,
) -> anyhow::Result<PreflightReport> {
    let client = crate::org::client_for(org, store, secrets).await?;
    let options = PreflightOptions {
        exclude_portal_users: org.exclude_portal_users,
    };
    let report = preflight::run(&client, options).await;
    crate::org::keep_rotated_token(org, &client, store, secrets).await?;
    // Kept for access requests, whose plans check what the connected user may do.
    let record = store.ensure_org(&org.name).await?;
    store
        .save_preflight(record.id, &serde_json::to_value(&report)?)
        .await?;
    Ok(report)
}
