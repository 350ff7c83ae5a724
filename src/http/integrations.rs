//! Connecting an org through Salesforce's sign-in in a browser. An admin asks
//! `GET /api/integrations/salesforce/connect?org=NAME` (with an admin token) for the
//! authorisation URL (a 303 to it, with the URL in the body as well) and opens it in a
//! browser; Salesforce sends the browser back to `GET /api/integrations/callback/salesforce`,
//! which checks the new connection, stores its refresh token (sealed) and answers with the
//! preflight.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::openapi::{Answer, Operation, Routes};
use super::{ApiError, AppState};
use crate::org::connect::{self, Callback, ConnectError, Start};
use crate::tokens::Scope as TokenScope;

pub const CALLBACK_PATH: &str = "/api/integrations/callback/salesforce";

pub fn routes() -> Routes {
    Routes::new()
        .get(
            "/api/integrations/salesforce/connect",
            start,
            Operation::new("Connect", "Start connecting an org in a browser")
                .describe(
                    "Redirects to Salesforce's authorization page (OAuth 2.0 web server flow \
                     with PKCE) for an org configured with `auth.method = \"web_server\"`. \
                     Needs an admin token: whoever completes the sign-in binds the org's \
                     connection. The callback keeps a working connection rather than replace \
                     it with one whose preflight fails or that belongs to another Salesforce \
                     org, unless `replace=true` was given here.",
                )
                .scope(TokenScope::Admin)
                .query(
                    "org",
                    json!({"type": "string"}),
                    "The org's name in the configuration.",
                )
                .query(
                    "replace",
                    json!({"type": "boolean", "default": false}),
                    "Let the new connection replace a working one, or one to another Salesforce org.",
                )
                .answer(
                    Answer::new(303, "To Salesforce's authorization page.")
                        .header("Location", "The authorization URL.")
                        .content(
                            "application/json",
                            json!({
                                "type": "object",
                                "required": ["authorize_url"],
                                "properties": {"authorize_url": {"type": "string", "description": "The same URL, to open in a browser."}},
                            }),
                        ),
                ),
        )
        .get(
            CALLBACK_PATH,
            callback,
            Operation::new("Connect", "Where Salesforce sends the browser back")
                .describe(
                    "Exchanges the authorization code, stores the refresh token sealed, and \
                     answers with the preflight of the connected user.",
                )
                .query("code", json!({"type": "string"}), "The authorization code.")
                .query(
                    "state",
                    json!({"type": "string"}),
                    "The state Provost sent.",
                )
                .query(
                    "error",
                    json!({"type": "string"}),
                    "Salesforce's refusal, if any.",
                )
                .query(
                    "error_description",
                    json!({"type": "string"}),
                    "Salesforce's explanation of a refusal.",
                )
                .ok(
                    200,
                    "Connected: the org, the user and the preflight.",
                    json!({"type": "object"}),
                ),
        )
}

/// Where Salesforce must send the user back: this server's public URL and the callback path.
pub fn callback_url(state: &AppState) -> String {
    format!("{}{CALLBACK_PATH}", state.config.server.public_url())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartParams {
    org: Option<String>,
    replace: Option<bool>,
}

async fn start(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<StartParams>,
) -> Result<Response, ApiError> {
    let name = params.org.ok_or_else(|| {
        ApiError::BadRequest(
            "add ?org=NAME: the org to connect, as named in the configuration".to_owned(),
        )
    })?;
    let org = state
        .config
        .org(&name)
        .map_err(|_| ApiError::NotFound(format!("no org `{name}` is configured")))?;
    let start = Start {
        started_by: caller.name,
        replace: params.replace.unwrap_or(false),
    };
    let url = connect::begin(
        &state.store,
        &state.secrets,
        org,
        &callback_url(&state),
        &start,
    )
    .await
    .map_err(refusal)?;
    // A browser follows the redirect; a script (curl with a token) reads the URL to open.
    let mut answer = Json(json!({ "authorize_url": url })).into_response();
    *answer.status_mut() = axum::http::StatusCode::SEE_OTHER;
    answer.headers_mut().insert(
        axum::http::header::LOCATION,
        axum::http::HeaderValue::from_str(&url).map_err(|err| ApiError::Internal(err.into()))?,
    );
    Ok(answer)
}

async fn callback(
    State(state): State<AppState>,
    Query(callback): Query<Callback>,
) -> Result<Response, ApiError> {
    let connected = connect::complete(
        &state.config,
        &state.store,
        &state.secrets,
        callback,
        &callback_url(&state),
    )
    .await
    .map_err(refusal)?;
    Ok(Json(connected).into_response())
}

fn refusal(err: ConnectError) -> ApiError {
    match err {
        ConnectError::Other(cause) => ApiError::Internal(cause),
        ConnectError::TooManyOpen => ApiError::TooManyRequests(err.to_string()),
        ConnectError::OtherOrg { .. } | ConnectError::PreflightFailed { .. } => {
            ApiError::Conflict {
                code: err.code(),
                message: err.to_string(),
            }
        }
        other => ApiError::Refused {
            code: other.code(),
            message: other.to_string(),
        },
    }
}
