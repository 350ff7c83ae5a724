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
use provost_connector::preflight::PreflightReport;
use provost_connector::secret::Secret;
use provost_salesforce::preflight::{self, PreflightOptions};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::AuditEvent;
use crate::config::{AuthConfig, Config, OrgConfig};
use crate::org::secrets::SecretBox;
use crate::store::{OAuthState, StateLimits, StateLookup, Store, StoredConnection};

/// How long an authorisation may take between `begin` and the callback.
const STATE_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// How long a state is kept after it was made, used or not: a callback replaying it within
/// this time is told it was replayed; after it, that it is unknown.
const STATE_MEMORY: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// How many authorisations may be under way at once (across orgs).
pub const MOST_OPEN_STATES: u32 = 20;

/// The fields Salesforce adds to a token response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct SalesforceFields {
    pub(super) instance_url: String,
    pub(super) id: String,
}

impl ExtraTokenFields for SalesforceFields {}

pub(super) type OAuthClient = oauth2::Client<
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
    #[error("{MOST_OPEN_STATES} connections are already being made (each waits up to 10 minutes for its callback): finish or abandon one, then start again")]
    TooManyOpen,
    #[error("the user who signed in, {user}, belongs to Salesforce org {new_org}, but org `{org}` is connected to Salesforce org {stored_org}: the stored connection was kept. If `{org}` is meant to move to {new_org}, start again with replace=true (`provost connect --replace` from a terminal)")]
    OtherOrg {
        org: String,
        user: String,
        stored_org: String,
        new_org: String,
    },
    #[error("the user who signed in, {user}, cannot do what Provost needs in org `{org}` ({missing}): the stored connection, which passes its preflight, was kept. Sign in as the integration user; or, to replace it anyway, start again with replace=true (`provost connect --replace`)")]
    PreflightFailed {
        org: String,
        user: String,
        missing: String,
    },
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
            ConnectError::TooManyOpen => "too_many_connections_started",
            ConnectError::OtherOrg { .. } => "other_salesforce_org",
            ConnectError::PreflightFailed { .. } => "preflight_failed",
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
    oauth_client_of(org, client_id, client_secret, redirect_uri)
}

/// The web server flow's client for `org`'s login URL, as the connected app `client_id`.
pub(super) fn oauth_client_of(
    org: &OrgConfig,
    client_id: &str,
    client_secret: Option<&Secret>,
    redirect_uri: &str,
) -> Result<OAuthClient, ConnectError> {
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

/// Who starts an authorisation, and whether it may replace a working connection.
#[derive(Debug, Clone)]
pub struct Start {
    /// An API token's name, or `cli`: the actor in the audit log.
    pub started_by: String,
    /// The starter confirms the new connection may replace one that works, or one to another
    /// Salesforce org.
    pub replace: bool,
}

/// Starts an authorisation: the URL to send the user to.
pub async fn begin(
    store: &Arc<dyn Store>,
    secrets: &SecretBox,
    org: &OrgConfig,
    redirect_uri: &str,
    start: &Start,
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
        created_at: chrono::Utc::now(),
        started_by: start.started_by.clone(),
        replace_confirmed: start.replace,
    };
    let now = pending.created_at;
    let limits = StateLimits {
        forget_before: now - STATE_MEMORY,
        open_since: now - STATE_LIFETIME,
        most_open: MOST_OPEN_STATES,
    };
    if !store
        .insert_oauth_state(state.secret(), &pending, limits)
        .await
        .map_err(anyhow::Error::from)?
    {
        return Err(ConnectError::TooManyOpen);
    }
    store
        .append_audit(&[AuditEvent {
            actor: start.started_by.clone(),
            org: Some(org.name.clone()),
            request_id: None,
            event: "connection_started".into(),
            data: json!({ "replace": start.replace, "redirect_uri": redirect_uri }),
        }])
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
    if chrono::Utc::now() - pending.created_at > STATE_LIFETIME {
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
    let identity_url = token.extra_fields().id.clone();
    let instance_url = token.extra_fields().instance_url.clone();

    // The new connection is checked before it may replace the stored one.
    let client = crate::org::client_with_refresh_token(org, Secret::new(refresh.secret().clone()))?;
    let report = preflight::run(
        &client,
        PreflightOptions {
            exclude_portal_users: org.exclude_portal_users,
        },
    )
    .await;
    let record = store
        .ensure_org(&org.name)
        .await
        .map_err(anyhow::Error::from)?;
    let stored = store
        .connection(record.id)
        .await
        .map_err(anyhow::Error::from)?;
    let user = report
        .username
        .clone()
        .or_else(|| identity_of(&identity_url).map(|(_, user)| user.to_owned()))
        .unwrap_or_else(|| identity_url.clone());
    let audit = |event: &str, data: serde_json::Value| AuditEvent {
        actor: pending.started_by.clone(),
        org: Some(org.name.clone()),
        request_id: None,
        event: event.to_owned(),
        data,
    };
    let details = json!({
        "salesforce_user": user,
        "identity_url": identity_url,
        "instance_url": instance_url,
        "preflight_ok": report.ok,
        "replace_confirmed": pending.replace_confirmed,
        "replaced": stored.as_ref().map(|c| &c.identity_url),
    });
    if let (Some(stored), false) = (&stored, pending.replace_confirmed) {
        let stored_org = identity_of(&stored.identity_url).map(|(org, _)| org.to_owned());
        let new_org = report
            .org_id
            .clone()
            .or_else(|| identity_of(&identity_url).map(|(org, _)| org.to_owned()));
        let refusal = match (stored_org, new_org) {
            (Some(stored_org), Some(new_org)) if !same_id(&stored_org, &new_org) => {
                Some(ConnectError::OtherOrg {
                    org: org.name.clone(),
                    user: user.clone(),
                    stored_org,
                    new_org,
                })
            }
            _ if !report.ok && stored_works(org, store, secrets).await => {
                Some(ConnectError::PreflightFailed {
                    org: org.name.clone(),
                    user: user.clone(),
                    missing: report
                        .checks
                        .iter()
                        .filter(|c| c.required && c.status == preflight::Status::Fail)
                        .map(|c| c.id)
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
            _ => None,
        };
        if let Some(refusal) = refusal {
            let mut data = details.clone();
            data["refused"] = json!(refusal.code());
            store
                .append_audit(&[audit("connection_refused", data)])
                .await
                .map_err(anyhow::Error::from)?;
            // The token the preflight may have rotated to, and the one it started with.
            if let Some(rotated) = client.current_refresh_token().await {
                if rotated.expose() != refresh.secret() {
                    revoke(org, rotated.expose()).await;
                }
            }
            revoke(org, refresh.secret()).await;
            tracing::warn!(org = %org.name, user = %user, reason = refusal.code(), "a new connection was refused; the stored one was kept");
            return Err(refusal);
        }
    }
    let current = client
        .current_refresh_token()
        .await
        .unwrap_or_else(|| Secret::new(refresh.secret().clone()));
    let connection = StoredConnection {
        refresh_token_sealed: secrets.seal(
            &current,
            &super::credentials::refresh_token_context(&org.name),
        ),
        instance_url,
        identity_url,
        connected_at: chrono::Utc::now(),
    };
    store
        .save_connection(record.id, &connection)
        .await
        .map_err(anyhow::Error::from)?;
    store
        .append_audit(&[audit("org_connected", details)])
        .await
        .map_err(anyhow::Error::from)?;
    tracing::info!(org = %org.name, instance = %connection.instance_url, user = %user, "org connected");
    Ok(Connected {
        org: org.name.clone(),
        instance_url: connection.instance_url,
        preflight: report,
    })
}

/// Whether the org's stored connection passes its preflight: a connection that does not (its
/// token revoked, its user stripped of what Provost needs) is not kept against a new one.
async fn stored_works(org: &OrgConfig, store: &Arc<dyn Store>, secrets: &SecretBox) -> bool {
    let Ok(client) = crate::org::client_for(org, store, Some(secrets)).await else {
        return false;
    };
    let report = preflight::run(
        &client,
        PreflightOptions {
            exclude_portal_users: org.exclude_portal_users,
        },
    )
    .await;
    if report.ok {
        // A rotation during the check is kept, as after any use of the stored token.
        if let Err(err) = crate::org::keep_rotated_token(org, &client, store, Some(secrets)).await {
            tracing::warn!(org = %org.name, error = format!("{err:#}"), "keeping a rotated refresh token failed");
        }
    }
    report.ok
}

/// The org id and user id an identity URL names (`.../id/00D.../005...`).
pub(super) fn identity_of(identity_url: &str) -> Option<(&str, &str)> {
    let mut parts = identity_url.trim_end_matches('/').rsplit('/');
    let user = parts.next()?;
    let org = parts.next()?;
    (org.starts_with("00D") && user.starts_with("005")).then_some((org, user))
}

/// Salesforce ids compare on their first 15 characters.
pub(super) fn same_id(a: &str, b: &str) -> bool {
    a.get(..15).is_some() && a.get(..15) == b.get(..15)
}

/// Revokes a refresh token Provost will not keep, so it does not outlive the refusal. Best
/// effort: a failure is logged, not raised.
async fn revoke(org: &OrgConfig, token: &str) {
    let url = format!(
        "{}/services/oauth2/revoke",
        org.login_url.trim_end_matches('/')
    );
    let outcome = reqwest::Client::new()
        .post(&url)
        .form(&[("token", token)])
        .send()
        .await;
    match outcome {
        Ok(response) if response.status().is_success() => {}
        Ok(response) => {
            tracing::warn!(org = %org.name, status = %response.status(), "revoking a refused refresh token failed")
        }
        Err(err) => {
            tracing::warn!(org = %org.name, error = %err, "revoking a refused refresh token failed")
        }
    }
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
