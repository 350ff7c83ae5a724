//! From an `[[orgs]]` entry to a connected Salesforce client.

use anyhow::Context;
use provost_connector::secret::Secret;
use provost_salesforce::{ClientConfig, Credentials, SalesforceClient};

use crate::config::{AuthConfig, OrgConfig};

/// A client for the org, with the credentials its configuration names.
pub fn client_for(org: &OrgConfig) -> anyhow::Result<SalesforceClient> {
    let credentials = match &org.auth {
        AuthConfig::JwtBearer { client_id, username, private_key_file } => Credentials::JwtBearer {
            client_id: client_id.clone(),
            username: username.clone(),
            private_key_pem: Secret::new(
                std::fs::read_to_string(private_key_file)
                    .with_context(|| format!("reading the private key {} of org `{}`", private_key_file.display(), org.name))?,
            ),
        },
        AuthConfig::ClientCredentials { client_id, client_secret } => Credentials::ClientCredentials {
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
        },
        AuthConfig::RefreshToken { client_id, client_secret, refresh_token } => Credentials::RefreshToken {
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            refresh_token: refresh_token.clone(),
        },
        AuthConfig::WebServer { .. } => anyhow::bail!(
            "org `{}` authenticates with the web server flow, whose interactive `provost connect` is not built yet; \
             use jwt_bearer, client_credentials or refresh_token for now",
            org.name
        ),
    };
    let mut config = ClientConfig::new(&org.login_url);
    config.api_version = org.api_version.clone();
    config.batch_size = org.batch_size;
    Ok(SalesforceClient::new(config, credentials)?)
}
