//! Connecting an org through the OAuth 2.0 web server flow, with PKCE and state.
//!
//! `begin` makes the authorisation URL and remembers, under a random one-use state, the PKCE
//! verifier (sealed) and the redirect URI. `complete` takes the callback: the state must be
//! one this Provost issued, unused and recent, and the callback must arrive where the
//! authorisation said it would; then the code is exchanged, the refresh token sealed and
//! stored, and the preflight run with it.

use std::sync::Arc;

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RequestTokenError, Scope, StandardRevocableToken, StandardTokenResponse, TokenResponse,
    TokenUrl,
};
use provost_connector::secret::Secret;
use provost_salesforce::preflight::{self, PreflightOptions, PreflightReport};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::config::{AuthConfig, Config, OrgConfig};
use crate::secrets::SecretBox;
use crate::store::{OAuthState, StateLookup, Store, StoredConnection};

/// How long an authorisation may take between `begin` and the callback.
const STATE_LIFETIME: time::Duration = time::Duration::minutes(10);

/// The fields Salesforce adds to a token response.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SalesforceFields {
    instance_url: String,
    id: String,
}

impl ExtraTokenFields for SalesforceFields {}

type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    StandardTokenResponse<SalesforceFields, BasicTokenType>,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Why a connection could not be made; each says which rule was broken.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("org `{0}` does not authenticate with the web server flow (auth.method = \"web_server\"); its credentials are in the configuration")]
    NotWebServer(String),
    #[error("{0}")]
    UnknownOrg(String),
    #[error("the callback's state was not issued by this Provost: start the connection again")]
    UnknownState,
    #[error(
        "the callback's state was already used: each authorisation completes once; start a new one"
    )]
    ReplayedState,
    #[error("the authorisation took longer than 10 minutes: start the connection again")]
    ExpiredState,
    #[error("the callback arrived at {got}, but the authorisation was started for {expected}: set server.public_url to the URL Salesforce redirects to, and make it the connected app's callback URL")]
    RedirectMismatch { expected: String, got: String },
    #[error("Salesforce did not authorise the connection ({error}: {description})")]
    Denied { error: String, description: String },
    #[error("Salesforce refused the authorisation code ({error}: {description}). {hint}")]
    Exchange {
        error: String,
        description: String,
        hint: &'static str,
    },
    #[error("Salesforce returned no refresh token: give the connected app the refresh_token (offline access) scope")]
    NoRefreshToken,
    #[error("{0}")]
    Other(#[from] anyhow::Error),
}

impl ConnectError {
    /// A short code for API answers.
    pub fn code(&self) -> &'static str {
        match self {
            ConnectError::NotWebServer(_) => "not_web_server",
            ConnectError::UnknownOrg(_) => "unknown_org",
            ConnectError::UnknownState => "unknown_state",
            ConnectError::ReplayedState => "replayed_state",
            ConnectError::ExpiredState => "expired_state",
            ConnectError::RedirectMismatch { .. } => "redirect_mismatch",
            ConnectError::Denied { .. } => "access_denied",
            ConnectError::Exchange { .. } => "exchange_refused",
            ConnectError::NoRefreshToken => "no_refresh_token",
            ConnectError::Other(_) => "internal",
        }
    }
}

/// A connected org and its preflight.
#[derive(Debug, Serialize)]
pub struct Connected {
    pub org: String,
    pub instance_url: String,
    pub preflight: PreflightReport,
}

fn refresh_token_context(org: &str) -> String {
    format!("org:{org}:refresh_token")
}

fn verifier_context(state: &str) -> String {
    format!("oauth_state:{state}:verifier")
}

fn web_server(org: &OrgConfig) -> Result<(&str, Option<&Secret>), ConnectError> {
    match &org.auth {
        AuthConfig::WebServer {
            client_id,
            client_secret,
        } => Ok((client_id, client_secret.as_ref())),
        _ => Err(ConnectError::NotWebServer(org.name.clone())),
    }
}

fn oauth_client(org: &OrgConfig, redirect_uri: &str) -> Result<OAuthClient, ConnectError> {
    let (client_id, client_secret) = web_server(org)?;
    let base = org.login_url.trim_end_matches('/');
    let invalid = |what: &str, err: url::ParseError| {
        ConnectError::Other(anyhow::anyhow!(
            "the {what} URL of org `{}` is invalid: {err}",
            org.name
        ))
    };
    let mut client = oauth2::Client::new(ClientId::new(client_id.to_owned()))
        .set_auth_uri(
            AuthUrl::new(format!("{base}/services/oauth2/authorize"))
                .map_err(|e| invalid("authorize", e))?,
        )
        .set_token_uri(
            TokenUrl::new(format!("{base}/services/oauth2/token"))
                .map_err(|e| invalid("token", e))?,
        )
        .set_redirect_uri(
            RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| invalid("redirect", e))?,
        )
        // Salesforce takes the client credentials in the form body.
        .set_auth_type(AuthType::RequestBody);
    if let Some(secret) = client_secret {
        client = client.set_client_secret(ClientSecret::new(secret.expose().to_owned()));
    }
    Ok(client)
}

/// Starts an authorisation: the URL to send the user to.
pub async fn begin(
    store: &Arc<dyn Store>,
    secrets: &SecretBox,
    org: &OrgConfig,
    redirect_uri: &str,
) -> Result<String, ConnectError> {
    let client = oauth_client(org, redirect_uri)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("api".to_owned()))
        .add_scope(Scope::new("refresh_token".to_owned()))
        .set_pkce_challenge(challenge)
        .url();
    let pending = OAuthState {
        org_name: org.name.clone(),
        code_verifier_sealed: secrets.seal(
            &Secret::new(verifier.secret().clone()),
            &verifier_context(state.secret()),
        ),
        redirect_uri: redirect_uri.to_owned(),
        created_at: OffsetDateTime::now_utc(),
    };
    store
        .insert_oauth_state(state.secret(), &pending)
        .await
        .map_err(anyhow::Error::from)?;
    Ok(url.to_string())
}

/// What the callback received. `Debug` never shows the code or the state.
#[derive(Default, Deserialize)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callback")
            .field("code", &self.code.as_ref().map(|_| "[redacted]"))
            .field("state", &self.state.as_ref().map(|_| "[redacted]"))
            .field("error", &self.error)
            .field("error_description", &self.error_description)
            .finish()
    }
}

/// Finishes an authorisation from its callback, received at `redirect_uri`.
pub async fn complete(
    config: &Config,
    store: &Arc<dyn Store>,
    secrets: &SecretBox,
    callback: Callback,
    redirect_uri: &str,
) -> Result<Connected, ConnectError> {
    let state = callback.state.ok_or(ConnectError::UnknownState)?;
    let pending = match store
        .consume_oauth_state(&state)
        .await
        .map_err(anyhow::Error::from)?
    {
        StateLookup::Fresh(pending) => pending,
        StateLookup::Replayed => return Err(ConnectError::ReplayedState),
        StateLookup::Unknown => return Err(ConnectError::UnknownState),
    };
    if OffsetDateTime::now_utc() - pending.created_at > STATE_LIFETIME {
        return Err(ConnectError::ExpiredState);
    }
    if pending.redirect_uri != redirect_uri {
        return Err(ConnectError::RedirectMismatch {
            expected: pending.redirect_uri,
            got: redirect_uri.to_owned(),
        });
    }
    if let Some(error) = callback.error {
        return Err(ConnectError::Denied {
            error,
            description: callback.error_description.unwrap_or_default(),
        });
    }
    let code = callback.code.ok_or_else(|| ConnectError::Denied {
        error: "no_code".into(),
        description: "the callback carried no authorisation code".into(),
    })?;
    let org = config
        .org(&pending.org_name)
        .map_err(ConnectError::UnknownOrg)?;
    let verifier = secrets
        .open(&pending.code_verifier_sealed, &verifier_context(&state))
        .map_err(anyhow::Error::from)?;

    let client = oauth_client(org, &pending.redirect_uri)?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(anyhow::Error::from)?;
    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.expose().to_owned()))
        .request_async(&http)
        .await
        .map_err(|err| match err {
            RequestTokenError::ServerResponse(response) => {
                let error = response.error().to_string();
                let description = response.error_description().cloned().unwrap_or_default();
                let hint = match error.as_str() {
                    "redirect_uri_mismatch" => "The connected app's callback URL must be exactly this Provost's callback URL.",
                    "invalid_grant" => "The code expired or was already used, or the PKCE verifier did not match: start the connection again.",
                    "invalid_client_id" | "invalid_client" => "Check the org's client_id (and client_secret, if the app requires one).",
                    _ => "Check the connected app's settings in Salesforce Setup.",
                };
                ConnectError::Exchange { error, description, hint }
            }
            other => ConnectError::Other(anyhow::anyhow!("exchanging the authorisation code failed: {other}")),
        })?;
    let refresh = token.refresh_token().ok_or(ConnectError::NoRefreshToken)?;
    let record = store
        .ensure_org(&org.name)
        .await
        .map_err(anyhow::Error::from)?;
    let connection = StoredConnection {
        refresh_token_sealed: secrets.seal(
            &Secret::new(refresh.secret().clone()),
            &refresh_token_context(&org.name),
        ),
        instance_url: token.extra_fields().instance_url.clone(),
        identity_url: token.extra_fields().id.clone(),
        connected_at: OffsetDateTime::now_utc(),
    };
    store
        .save_connection(record.id, &connection)
        .await
        .map_err(anyhow::Error::from)?;
    tracing::info!(org = %org.name, instance = %connection.instance_url, "org connected");

    let client = crate::orgs::client_for(org, store, Some(secrets)).await?;
    let report = preflight::run(
        &client,
        PreflightOptions {
            exclude_portal_users: org.exclude_portal_users,
        },
    )
    .await;
    crate::orgs::keep_rotated_token(org, &client, store, Some(secrets)).await?;
    Ok(Connected {
        org: org.name.clone(),
        instance_url: connection.instance_url,
        preflight: report,
    })
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
        anyhow::anyhow!("org `{}` is not connected yet: run `provost connect --org {}` (or open /api/integrations/salesforce/connect?org={} on `provost serve`)", org.name, org.name, org.name)
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

/// Waits on `listener` for the browser's return from Salesforce (`GET /OauthRedirect?...`),
/// answers it with a short page, and hands back what it carried.
pub async fn await_browser_callback(
    listener: tokio::net::TcpListener,
    timeout: std::time::Duration,
) -> anyhow::Result<Callback> {
    use axum::extract::Query;
    use axum::routing::get;
    let (sender, receiver) = tokio::sync::mpsc::channel::<Callback>(1);
    let app = axum::Router::new().route(
        "/OauthRedirect",
        get(move |Query(callback): Query<Callback>| {
            let sender = sender.clone();
            async move {
                let _ = sender.send(callback).await;
                axum::response::Html("<!DOCTYPE html><html><body><p>Provost received Salesforce's answer. Return to the terminal.</p></body></html>")
            }
        }),
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let mut receiver = receiver;
    let callback = tokio::time::timeout(timeout, receiver.recv()).await;
    server.abort();
    match callback {
        Ok(Some(callback)) => Ok(callback),
        Ok(None) => anyhow::bail!("the local callback listener stopped before Salesforce answered"),
        Err(_) => anyhow::bail!(
            "no answer from Salesforce within {} minutes: run `provost connect` again",
            timeout.as_secs() / 60
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callback_never_prints_its_code() {
        let callback = Callback {
            code: Some("aPrx-secret-code".into()),
            state: Some("s".into()),
            ..Callback::default()
        };
        assert!(!format!("{callback:?}").contains("aPrx-secret-code"));
    }
}
