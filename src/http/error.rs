//! The HTTP boundary's error type. Every handler returns `Result<_, ApiError>`; the response
//! body is always `{"error": {"code", "message"}}` and a 5xx never shows its cause to the
//! client: the cause is logged with the request's id instead.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    /// No token, or one that is unknown or revoked: 401 with `WWW-Authenticate`.
    #[error("{0}")]
    Unauthorized(String),
    /// A valid token without the scope the endpoint needs.
    #[error("{0}")]
    Forbidden(String),
    /// The request conflicts with the resource's state (`code` names how).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The request was understood and refused for a stated reason (`code` names it).
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    /// A dependency (the database) is down; the message is safe to show.
    #[error("{0}")]
    Unavailable(String),
    /// Anything unexpected. Logged in full, shown as a generic message.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) | ApiError::Refused { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::NotFound(_) => "not_found",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Refused { code, .. } | ApiError::Conflict { code, .. } => code,
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(err: crate::store::StoreError) -> Self {
        ApiError::Internal(err.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "request failed");
                "an internal error occurred; the server log has the details under this request's id"
                    .to_owned()
            }
            other => other.to_string(),
        };
        let body = json!({ "error": { "code": self.code(), "message": message } });
        let mut response = (status, Json(body)).into_response();
        if let ApiError::Unauthorized(_) = self {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static(
                    "Bearer realm=\"provost\", error=\"invalid_token\"",
                ),
            );
        }
        response
    }
}
