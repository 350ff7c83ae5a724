//! Getting an access token: JWT bearer, client credentials, or a stored refresh token.
//! (The interactive web server flow, with PKCE and state, comes with `provost connect`.)

use std::time::{SystemTime, UNIX_EPOCH};

use provost_connector::secret::Secret;
use serde::Deserialize;
use serde_json::json;

use crate::error::{auth_hint, SalesforceError};

/// How Provost authenticates to an org.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// Server-to-server: an assertion signed with the key whose certificate the connected
    /// app holds. No refresh token; a new assertion replaces an expired session.
    JwtBearer {
        client_id: String,
        username: String,
        private_key_pem: Secret,
    },
    /// The connected app's own credentials; runs as its configured execution user.
    ClientCredentials {
        client_id: String,
        client_secret: Secret,
    },
    /// A refresh token from an earlier authorisation (the web server flow).
    RefreshToken {
        client_id: String,
        client_secret: Option<Secret>,
        refresh_token: Secret,
    },
}

/// An authenticated session.
#[derive(Debug, Clone)]
pub struct Session {
    pub access_token: Secret,
    pub instance_url: String,
    /// The identity URL: `/id/{orgId}/{userId}`.
    pub identity_url: String,
    /// A new refresh token, when the org rotates them; the caller must keep it.
    pub rotated_refresh_token: Option<Secret>,
}

impl Session {
    /// The org and user IDs from the identity URL.
    pub fn org_and_user(&self) -> Option<(&str, &str)> {
        let mut parts = self.identity_url.rsplit('/');
        let user = parts.next()?;
        let org = parts.next()?;
        Some((org, user))
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    instance_url: String,
    id: String,
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct TokenError {
    error: String,
    #[serde(default)]
    error_description: String,
}

/// The JWT `aud` Salesforce expects for a login URL: `login` for production and My Domains,
/// `test` for sandboxes, and the URL itself for anything else (such as the emulator).
pub fn audience_for(login_url: &str) -> String {
    let host = url::Url::parse(login_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    if host == "test.salesforce.com" || host.ends_with(".sandbox.my.salesforce.com") {
        "https://test.salesforce.com".to_owned()
    } else if host == "login.salesforce.com" || host.ends_with(".my.salesforce.com") {
        "https://login.salesforce.com".to_owned()
    } else {
        login_url.trim_end_matches('/').to_owned()
    }
}

fn jwt_assertion(
    client_id: &str,
    username: &str,
    login_url: &str,
    key_pem: &Secret,
) -> Result<String, SalesforceError> {
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.expose().as_bytes()).map_err(|_| {
            SalesforceError::Config(
                "the JWT private key is not a PEM-encoded RSA private key".to_owned(),
            )
        })?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // A few minutes ahead, as Salesforce asks; it refuses assertions that live too long.
    let claims = json!({ "iss": client_id, "sub": username, "aud": audience_for(login_url), "exp": now + 180 });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .map_err(|err| SalesforceError::Config(format!("signing the JWT assertion failed: {err}")))
}

/// One token request. Transport failures and 5xx answers come back as retryable errors
/// (`Transport`, `Html`, `UnexpectedBody` with a 5xx status); refusals as `Auth`.
pub async fn request_token(
    http: &reqwest::Client,
    login_url: &str,
    credentials: &Credentials,
) -> Result<Session, SalesforceError> {
    let token_url = format!("{}/services/oauth2/token", login_url.trim_end_matches('/'));
    let form: Vec<(&str, String)> = match credentials {
        Credentials::JwtBearer {
            client_id,
            username,
            private_key_pem,
        } => vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned(),
            ),
            (
                "assertion",
                jwt_assertion(client_id, username, login_url, private_key_pem)?,
            ),
        ],
        Credentials::ClientCredentials {
            client_id,
            client_secret,
        } => vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", client_id.clone()),
            ("client_secret", client_secret.expose().to_owned()),
        ],
        Credentials::RefreshToken {
            client_id,
            client_secret,
            refresh_token,
        } => {
            let mut form = vec![
                ("grant_type", "refresh_token".to_owned()),
                ("client_id", client_id.clone()),
                ("refresh_token", refresh_token.expose().to_owned()),
            ];
            if let Some(secret) = client_secret {
                form.push(("client_secret", secret.expose().to_owned()));
            }
            form
        }
    };
    let response = http
        .post(&token_url)
        .form(&form)
        .send()
        .await
        .map_err(|err| SalesforceError::transport(&token_url, &err))?;
    let status = response.status().as_u16();
    let html = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let body = response
        .bytes()
        .await
        .map_err(|err| SalesforceError::transport(&token_url, &err))?;
    if html {
        return Err(SalesforceError::Html { status });
    }
    if (200..300).contains(&status) {
        let token: TokenResponse =
            serde_json::from_slice(&body).map_err(|err| SalesforceError::UnexpectedBody {
                status,
                detail: format!("the token response lacks a field: {err}"),
            })?;
        return Ok(Session {
            access_token: Secret::new(token.access_token),
            instance_url: token.instance_url,
            identity_url: token.id,
            rotated_refresh_token: token.refresh_token.map(Secret::new),
        });
    }
    match serde_json::from_slice::<TokenError>(&body) {
        Ok(refusal) if status < 500 => Err(SalesforceError::Auth {
            hint: auth_hint(&refusal.error, &refusal.error_description),
            error: refusal.error,
            description: refusal.error_description,
        }),
        _ => Err(SalesforceError::UnexpectedBody {
            status,
            detail: "the token endpoint's answer is not an OAuth error".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_follow_the_login_host() {
        assert_eq!(
            audience_for("https://login.salesforce.com"),
            "https://login.salesforce.com"
        );
        assert_eq!(
            audience_for("https://acme.my.salesforce.com"),
            "https://login.salesforce.com"
        );
        assert_eq!(
            audience_for("https://test.salesforce.com/"),
            "https://test.salesforce.com"
        );
        assert_eq!(
            audience_for("https://acme--uat.sandbox.my.salesforce.com"),
            "https://test.salesforce.com"
        );
        assert_eq!(
            audience_for("http://127.0.0.1:4000/"),
            "http://127.0.0.1:4000"
        );
    }
}
