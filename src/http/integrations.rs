//! Connecting an org from a browser: `GET /api/integrations/salesforce/connect?org=NAME`
//! sends the user to Salesforce; Salesforce sends them back to
//! `GET /api/integrations/callback/salesforce`, which stores the refresh token (sealed) and
//! answers with the preflight.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::connect::{self, Callback, ConnectError};

pub const CALLBACK_PATH: &str = "/api/integrations/callback/salesforce";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/integrations/salesforce/connect", get(start))
        .route(CALLBACK_PATH, get(callback))
}

/// Where Salesforce must send the user back: this server's public URL and the callback path.
pub fn callback_url(state: &AppState) -> String {
    format!("{}{CALLBACK_PATH}", state.config.server.public_url())
}

#[derive(Debug, Deserialize)]
struct StartParams {
    org: Option<String>,
}

async fn start(
    State(state): State<AppState>,
    Query(params): Query<StartParams>,
) -> Result<Response, ApiError> {
    let name = params.org.ok_or_else(|| {
        ApiError::BadRequest(
            "add ?org=NAME: the org to connect, as named in the configuration".to_owned(),
        )
    })?;
    let org = state.config.org(&name).map_err(ApiError::NotFound)?;
    let url = connect::begin(&state.store, &state.secrets, org, &callback_url(&state))
        .await
        .map_err(refusal)?;
    Ok(Redirect::to(&url).into_response())
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
        other => ApiError::Refused {
            code: other.code(),
            message: other.to_string(),
        },
    }
}
