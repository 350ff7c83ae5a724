//! Signing a person in to the web console with their Salesforce user ("Sign in with
//! Salesforce"): the OAuth 2.0 web server flow with PKCE through the org's connected app, then
//! the identity the token belongs to (`/services/oauth2/userinfo`). The token is used for
//! nothing else and revoked at once; Provost keeps only who signed in.
//!
//! `begin` makes the authorisation URL, and the sign-in's state, PKCE verifier, callback URL
//! and start time sealed (AES-GCM, the secrets key) for a cookie of the browser that starts
//! it: the sign-in is bound to that browser (a callback URL opened elsewhere signs nobody in),
//! and nothing is stored until someone has signed in, so starting sign-ins costs the server
//! nothing (no table to fill, no limit to exhaust). `complete` takes the callback with that
//! cookie: the same state, under 10 minutes old, at the same callback URL; then the code is
//! exchanged (once: Salesforce refuses a code used before) and the user read. The person must
//! be a user of the Salesforce org Provost syncs for this org (its id from the last preflight)
//! and in the synced model.

use std::sync::Arc;

use oauth2::{
    AuthorizationCode, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RequestTokenError,
    TokenResponse,
};
use provost_connector::secret::Secret;
use serde::{Deserialize, Serialize};

use super::connect::{identity_of, oauth_client_of, same_id, ConnectError};
use crate::config::{AuthConfig, OrgConfig};
use crate::org::secrets::SecretBox;
use crate::store::Store;

/// How long a sign-in may take between `begin` and the callback.
pub const LIFETIME: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// What the browser carries, sealed, between `begin` and the callback.
#[derive(Serialize, Deserialize)]
struct Pending {
    state: String,
    org: String,
    verifier: String,
    redirect_uri: String,
    /// Unix seconds.
    started: i64,
    /// Where to go once signed in (a console path).
    next: Option<String>,
}

const SEAL_CONTEXT: &str = "console_sign_in";

/// A sign-in begun: where to send the browser, and the sealed cookie value it must bring back.
#[derive(Debug)]
pub struct Started {
    pub url: String,
    pub cookie: String,
}

/// Who signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub org: String,
    pub user_id: String,
    pub username: String,
    pub display_name: String,
}

/// Why a sign-in failed; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("this sign-in was not started in this browser, was used already, or took longer than 10 minutes: sign in again")]
    UnknownState,
    #[error("the sign-in returned to {got}, but it was started for {expected}: set server.public_url to the address people open")]
    RedirectMismatch { expected: String, got: String },
    #[error("Salesforce did not sign you in ({error}): sign in again, and allow Provost when Salesforce asks")]
    Denied { error: String },
    #[error("Salesforce refused the sign-in ({error}: {description}); the connected app must allow the web server flow with the callback URL {callback}")]
    Exchange {
        error: String,
        description: String,
        callback: String,
    },
    #[error("you signed in to Salesforce org {signed_in}, but org `{org}` is Salesforce org {expected}: sign in with your user of that org")]
    OtherOrg {
        org: String,
        signed_in: String,
        expected: String,
    },
    #[error("Salesforce user {username} ({user_id}) is not in Provost's copy of org `{org}`: ask an admin to sync it, then sign in again")]
    NotSynced {
        org: String,
        username: String,
        user_id: String,
    },
    #[error("Provost does not know which Salesforce org `{org}` is yet: an admin runs `provost preflight --org {org}` (or a sync), then sign in again")]
    UnknownOrgId { org: String },
    #[error("{0}")]
    Other(#[from] anyhow::Error),
}

impl SignInError {
    /// The org a refusal concerns, when Salesforce vouched for who signed in.
    pub fn org(&self) -> Option<&str> {
        match self {
            SignInError::OtherOrg { org, .. }
            | SignInError::NotSynced { org, .. }
            | SignInError::UnknownOrgId { org } => Some(org),
            _ => None,
        }
    }
}

impl From<ConnectError> for SignInError {
    fn from(err: ConnectError) -> Self {
        SignInError::Other(anyhow::anyhow!("{err}"))
    }
}

/// The connected app a person signs in through: the org's own.
fn app_of(org: &OrgConfig) -> (&str, Option<&Secret>) {
    match &org.auth {
        AuthConfig::JwtBearer { client_id, .. } => (client_id, None),
        AuthConfig::ClientCredentials {
            client_id,
            client_secret,
        } => (client_id, Some(client_secret)),
        AuthConfig::RefreshToken {
            client_id,
            client_secret,
            ..
        }
        | AuthConfig::WebServer {
            client_id,
            client_secret,
        } => (client_id, client_secret.as_ref()),
    }
}

/// Starts a sign-in: the Salesforce URL to send the browser to, and its cookie.
pub fn begin(
    secrets: &SecretBox,
    org: &OrgConfig,
    redirect_uri: &str,
    next: Option<String>,
) -> Result<Started, SignInError> {
    let (client_id, secret) = app_of(org);
    let client = oauth_client_of(org, client_id, secret, redirect_uri)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(oauth2::Scope::new("openid".to_owned()))
        .set_pkce_challenge(challenge)
        .url();
    let pending = Pending {
        state: state.secret().clone(),
        org: org.name.clone(),
        verifier: verifier.secret().clone(),
        redirect_uri: redirect_uri.to_owned(),
        started: chrono::Utc::now().timestamp(),
        next,
    };
    let text = serde_json::to_string(&pending).map_err(anyhow::Error::from)?;
    Ok(Started {
        url: url.to_string(),
        cookie: secrets.seal(&Secret::new(text), SEAL_CONTEXT),
    })
}

/// Who signed in, and where they were going.
#[derive(Debug)]
pub struct SignedIn {
    pub identity: Identity,
    pub next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct UserInfo {
    user_id: String,
    organization_id: String,
    #[serde(default)]
    preferred_username: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// Finishes a sign-in from its callback (received at `redirect_uri`) and the cookie the
/// browser brought back (`cookie`, as `begin` made it): who signed in.
pub async fn complete(
    config: &crate::config::Config,
    store: &Arc<dyn Store>,
    secrets: &SecretBox,
    callback: super::connect::Callback,
    redirect_uri: &str,
    cookie: Option<&str>,
) -> Result<SignedIn, SignInError> {
    let state = callback.state.ok_or(SignInError::UnknownState)?;
    let pending: Pending = cookie
        .and_then(|sealed| secrets.open(sealed, SEAL_CONTEXT).ok())
        .and_then(|text| serde_json::from_str(text.expose()).ok())
        .ok_or(SignInError::UnknownState)?;
    if !crate::tokens::same(&pending.state, &state)
        || chrono::Utc::now().timestamp() - pending.started > LIFETIME.num_seconds()
    {
        return Err(SignInError::UnknownState);
    }
    if pending.redirect_uri != redirect_uri {
        return Err(SignInError::RedirectMismatch {
            expected: pending.redirect_uri,
            got: redirect_uri.to_owned(),
        });
    }
    if let Some(error) = callback.error {
        // Only a known code is shown: the description is whatever the link said.
        let error = match error.as_str() {
            "access_denied"
            | "invalid_request"
            | "unauthorized_client"
            | "server_error"
            | "temporarily_unavailable"
            | "invalid_scope" => error,
            _ => "error".to_owned(),
        };
        tracing::info!(error = %error, description = ?callback.error_description, "Salesforce refused a console sign-in");
        return Err(SignInError::Denied { error });
    }
    let code = callback.code.ok_or_else(|| SignInError::Denied {
        error: "no_code".into(),
    })?;
    let org = config
        .org(&pending.org)
        .map_err(|err| SignInError::Other(anyhow::anyhow!(err)))?;
    let (client_id, secret) = app_of(org);
    let client = oauth_client_of(org, client_id, secret, &pending.redirect_uri)?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(anyhow::Error::from)?;
    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()))
        .request_async(&http)
        .await
        .map_err(|err| match err {
            RequestTokenError::ServerResponse(response) => SignInError::Exchange {
                error: response.error().to_string(),
                description: response.error_description().cloned().unwrap_or_default(),
                callback: pending.redirect_uri.clone(),
            },
            other => SignInError::Other(anyhow::anyhow!(
                "exchanging the sign-in code failed: {other}"
            )),
        })?;
    let access = token.access_token().secret().clone();
    let base = org.login_url.trim_end_matches('/');
    let info = http
        .get(format!("{base}/services/oauth2/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|err| anyhow::anyhow!("reading who signed in (userinfo) failed: {err}"))?
        .json::<UserInfo>()
        .await
        .map_err(|err| anyhow::anyhow!("Salesforce's userinfo answer was not understood: {err}"));
    revoke(base, &access).await;
    let info = info?;
    // The identity URL of the token response names the same user and org.
    if let Some((org_id, user_id)) = identity_of(&token.extra_fields().id) {
        if !same_id(org_id, &info.organization_id) || !same_id(user_id, &info.user_id) {
            return Err(SignInError::Other(anyhow::anyhow!(
                "Salesforce's token and userinfo name different users: sign in again"
            )));
        }
    }
    let record = store
        .ensure_org(&org.name)
        .await
        .map_err(anyhow::Error::from)?;
    let expected = store
        .last_preflight(record.id)
        .await
        .map_err(anyhow::Error::from)?
        .and_then(|(report, _)| report["org_id"].as_str().map(str::to_owned));
    // Without the org's id, a user of another org sharing user ids (a sandbox copied from
    // the same production org) could pass for one of this org's users.
    let Some(expected) = expected else {
        return Err(SignInError::UnknownOrgId {
            org: org.name.clone(),
        });
    };
    if !same_id(&expected, &info.organization_id) {
        return Err(SignInError::OtherOrg {
            org: org.name.clone(),
            signed_in: info.organization_id,
            expected,
        });
    }
    let username = info.preferred_username.unwrap_or_default();
    let account = store
        .get_account(record.id, &info.user_id)
        .await
        .map_err(anyhow::Error::from)?;
    let Some(account) = account else {
        return Err(SignInError::NotSynced {
            org: org.name.clone(),
            username,
            user_id: info.user_id,
        });
    };
    Ok(SignedIn {
        identity: Identity {
            org: org.name.clone(),
            user_id: account.id,
            username: account.username,
            display_name: info.name.unwrap_or(account.display_name),
        },
        next: pending.next,
    })
}

/// Revokes the sign-in's access token: Provost keeps no Salesforce session of a person. Best
/// effort; a failure is logged.
async fn revoke(base: &str, token: &str) {
    let outcome = reqwest::Client::new()
        .post(format!("{base}/services/oauth2/revoke"))
        .form(&[("token", token)])
        .send()
        .await;
    if let Err(err) = outcome.and_then(reqwest::Response::error_for_status) {
        tracing::warn!(error = %err, "revoking a sign-in's access token failed");
    }
}
