//! The stored credentials of a web-server org: its refresh token, sealed under the secret key
//! and bound to the org, so a sealed token copied to another org's row does not open.

use std::sync::Arc;

use provost_connector::secret::Secret;

use super::secrets::SecretBox;
use crate::config::OrgConfig;
use crate::store::Store;

/// What a sealed refresh token is bound to.
pub(super) fn refresh_token_context(org: &str) -> String {
    format!("org:{org}:refresh_token")
}

/// The stored refresh token of a web-server org, opened.
pub async fn stored_refresh_token(
    org: &OrgConfig,
    store: &Arc<dyn Store>,
    secrets: &SecretBox,
) -> anyhow::Result<Secret> {
    let record = store.find_org(&org.name).await?;
    let connection = match record {
        Some(record) => store.connection(record.id).await?,
        None => None,
    };
    let connection = connection.ok_or_else(|| {
        anyhow::anyhow!("org `{}` is not connected yet: run `provost connect --org {}` (or, on `provost serve`, GET /api/integrations/salesforce/connect?org={} with an admin token and open the URL it answers in a browser)", org.name, org.name, org.name)
    })?;
    Ok(secrets.open(
        &connection.refresh_token_sealed,
        &refresh_token_context(&org.name),
    )?)
}

/// Seals and stores `token` as the org's refresh token (after a rotation).
pub async fn store_refresh_token(
    org: &OrgConfig,
    token: &Secret,
    store: &Arc<dyn Store>,
    secrets: &SecretBox,
) -> anyhow::Result<()> {
    let record = store.ensure_org(&org.name).await?;
    if let Some(mut connection) = store.connection(record.id).await? {
        connection.refresh_token_sealed = secrets.seal(token, &refresh_token_context(&org.name));
        store.save_connection(record.id, &connection).await?;
    }
    Ok(())
}
