//! Each configured org, wired to its Salesforce: credentials (the stored refresh token of a
//! web-server org, sealed), the client, the OAuth connection flow, the preflight, and the
//! connector's capabilities (reading, writing) behind the interface's traits. This is where an
//! `[[orgs]]` entry becomes a connected client; the rest of Provost sees only the traits.

pub mod connect;
pub mod credentials;
pub mod preflight;
pub mod secrets;
pub mod sign_in;
pub mod sync;

use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use provost_connector::provisioner::{Applied, Pending, Provisioner, Writes};
use provost_connector::secret::Secret;
use provost_salesforce::provisioner::{SalesforceProvisioner, SalesforceWrites, UserDefaults};
use provost_salesforce::{ClientConfig, Credentials, SalesforceClient};

use crate::config::{AuthConfig, Config, OrgConfig};
use crate::store::Store;
use secrets::SecretBox;

/// A client for the org, with the credentials its configuration names (for a web-server org,
/// the refresh token stored by `provost connect`).
pub async fn client_for(
    org: &OrgConfig,
    store: &Arc<dyn Store>,
    secrets: Option<&SecretBox>,
) -> anyhow::Result<SalesforceClient> {
    let credentials = match &org.auth {
        AuthConfig::JwtBearer {
            client_id,
            username,
            private_key_file,
        } => Credentials::JwtBearer {
            client_id: client_id.clone(),
            username: username.clone(),
            private_key_pem: Secret::new(std::fs::read_to_string(private_key_file).with_context(
                || {
                    format!(
                        "reading the private key {} of org `{}`",
                        private_key_file.display(),
                        org.name
                    )
                },
            )?),
        },
        AuthConfig::ClientCredentials {
            client_id,
            client_secret,
        } => Credentials::ClientCredentials {
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
        },
        AuthConfig::RefreshToken {
            client_id,
            client_secret,
            refresh_token,
        } => Credentials::RefreshToken {
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            refresh_token: refresh_token.clone(),
        },
        AuthConfig::WebServer {
            client_id,
            client_secret,
        } => Credentials::RefreshToken {
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            refresh_token: {
                let secrets = secrets
                    .context("a web-server org needs the secret key to open its stored token")?;
                credentials::stored_refresh_token(org, store, secrets).await?
            },
        },
    };
    client_with(org, credentials)
}

/// A client for a web-server org with a refresh token not stored yet (a connection being
/// made, checked before it replaces the stored one).
pub fn client_with_refresh_token(
    org: &OrgConfig,
    refresh_token: Secret,
) -> anyhow::Result<SalesforceClient> {
    let AuthConfig::WebServer {
        client_id,
        client_secret,
    } = &org.auth
    else {
        anyhow::bail!("org `{}` does not use the web server flow", org.name);
    };
    client_with(
        org,
        Credentials::RefreshToken {
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            refresh_token,
        },
    )
}

fn client_with(org: &OrgConfig, credentials: Credentials) -> anyhow::Result<SalesforceClient> {
    let mut config = ClientConfig::new(&org.login_url);
    config.api_version = org.api_version.clone();
    config.batch_size = org.batch_size;
    Ok(SalesforceClient::new(config, credentials)?)
}

/// Keeps a refresh token the org rotated while `client` worked, for a web-server org.
pub async fn keep_rotated_token(
    org: &OrgConfig,
    client: &SalesforceClient,
    store: &Arc<dyn Store>,
    secrets: Option<&SecretBox>,
) -> anyhow::Result<()> {
    let (AuthConfig::WebServer { .. }, Some(secrets)) = (&org.auth, secrets) else {
        return Ok(());
    };
    if let Some(current) = client.current_refresh_token().await {
        let stored = credentials::stored_refresh_token(org, store, secrets).await?;
        if current != stored {
            credentials::store_refresh_token(org, &current, store, secrets).await?;
        }
    }
    Ok(())
}

/// How the org's connector writes changes (pure: for plans, before anything is connected).
pub fn writes_for(org: &OrgConfig) -> Arc<dyn Writes> {
    let defaults = &org.user_defaults;
    Arc::new(SalesforceWrites {
        defaults: UserDefaults {
            time_zone: defaults.time_zone.clone(),
            locale: defaults.locale.clone(),
            language: defaults.language.clone(),
            email_encoding: defaults.email_encoding.clone(),
        },
        api_version: org.api_version.clone(),
    })
}

/// The org's connected provisioner. For a web-server org, a refresh token the org rotates
/// while writing is kept after each batch.
pub async fn provisioner_for(
    config: &Config,
    org: &OrgConfig,
    store: &Arc<dyn Store>,
) -> anyhow::Result<Arc<dyn Provisioner>> {
    let secrets = preflight::secrets_for(config, org)?;
    let client = Arc::new(client_for(org, store, secrets.as_ref()).await?);
    Ok(Arc::new(OrgProvisioner {
        org: org.clone(),
        store: store.clone(),
        secrets,
        inner: SalesforceProvisioner::new(client),
    }))
}

/// Salesforce's provisioner, and the org's credentials kept up to date after it wrote.
struct OrgProvisioner {
    org: OrgConfig,
    store: Arc<dyn Store>,
    secrets: Option<SecretBox>,
    inner: SalesforceProvisioner,
}

#[async_trait]
impl Provisioner for OrgProvisioner {
    async fn apply(&self, writes: &[Pending<'_>]) -> Vec<Applied> {
        let applied = self.inner.apply(writes).await;
        if let Err(err) = keep_rotated_token(
            &self.org,
            self.inner.client(),
            &self.store,
            self.secrets.as_ref(),
        )
        .await
        {
            tracing::warn!(org = %self.org.name, error = format!("{err:#}"), "keeping the rotated refresh token failed");
        }
        applied
    }

    fn calls(&self) -> u64 {
        self.inner.calls()
    }
}
