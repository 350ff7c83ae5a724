//! What can go wrong talking to Salesforce, typed so callers can act: retry, pause, or tell
//! the user what to fix. No variant ever carries a token or a secret.

use crate::limits::ApiUsage;

#[derive(Debug, Clone, thiserror::Error)]
pub enum SalesforceError {
    /// The token endpoint refused the credentials.
    #[error("Salesforce refused the credentials ({error}: {description}). {hint}")]
    Auth {
        error: String,
        description: String,
        hint: &'static str,
    },
    /// The REST API answered with one of its errors.
    #[error("Salesforce answered {status} {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        fields: Vec<String>,
    },
    /// The org's daily API allocation is used up: stop now and resume after Salesforce resets it.
    #[error("the org's daily API request limit is used up{}; stop and resume once Salesforce resets it (a rolling 24 hours)", usage.map(|u| format!(" ({u})")).unwrap_or_default())]
    DailyLimitExceeded { usage: Option<ApiUsage> },
    /// An HTML page where JSON was expected: maintenance, a proxy, or a wrong URL.
    #[error("Salesforce answered {status} with an HTML page instead of JSON: the org may be in maintenance, or the instance or login URL may be wrong")]
    Html { status: u16 },
    /// The answer was not the JSON Salesforce sends.
    #[error("Salesforce answered {status} with a body that is not the expected JSON: {detail}")]
    UnexpectedBody { status: u16, detail: String },
    /// The connection failed, timed out or was cut.
    #[error("could not talk to Salesforce at {url}: {message}")]
    Transport { url: String, message: String },
    /// Transient failures went on past the retry budget.
    #[error("gave up after {attempts} attempts; the last failure: {last}")]
    RetriesExhausted {
        attempts: u32,
        last: Box<SalesforceError>,
    },
    /// The connector's own configuration is unusable (a key that is not PEM, a bad URL).
    #[error("{0}")]
    Config(String),
}

impl SalesforceError {
    pub(crate) fn transport(url: &str, err: &reqwest::Error) -> SalesforceError {
        // reqwest's text can include the URL, which never holds a secret: tokens travel in
        // headers and form bodies only.
        let kind = if err.is_timeout() {
            "timed out"
        } else if err.is_connect() {
            "connection failed"
        } else {
            "connection broken"
        };
        SalesforceError::Transport {
            url: strip_query(url),
            message: format!("{kind}: {err}"),
        }
    }

    /// The Salesforce error code, when the API gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            SalesforceError::Api { code, .. } => Some(code),
            SalesforceError::RetriesExhausted { last, .. } => last.code(),
            _ => None,
        }
    }
}

fn strip_query(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_owned()
}

/// What the user should do about a token-endpoint refusal.
pub(crate) fn auth_hint(error: &str, description: &str) -> &'static str {
    match (error, description) {
        ("invalid_client_id", _) => "Check the connected app's consumer key (client_id) in the org's configuration.",
        ("invalid_client", _) => "Check the connected app's consumer secret (client_secret).",
        (_, "audience is invalid") => "Set login_url to https://login.salesforce.com (production), https://test.salesforce.com (sandbox) or the org's My Domain URL.",
        (_, "request not supported on this domain") => "The client credentials flow needs the org's My Domain URL (https://NAME.my.salesforce.com) as login_url.",
        (_, "user hasn't approved this consumer") => "Pre-authorise the connecting user for the connected app (Manage Connected Apps: admin-approved users, add the user's profile or a permission set), or approve it once through the web server flow.",
        (_, "expired access/refresh token") => "The refresh token was revoked or has expired: connect the org again with `provost connect`.",
        (_, "inactive user") => "The connecting user is inactive in Salesforce: reactivate it or connect with another user.",
        (_, "invalid assertion") => "The JWT was not accepted: check that the private key matches the certificate uploaded to the connected app.",
        (_, "authentication failure") => "Salesforce did not accept the user: check the username, and that the user is active and not frozen.",
        _ => "Check the org's auth settings against the connected app in Salesforce Setup.",
    }
}
