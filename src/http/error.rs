//! Errors, and where each kind goes.
//!
//! - Inside a layer, errors are typed at its boundary and say whether they are retryable:
//!   [`StoreError`] (and its [`ErrorKind`]: conflict, unavailable, internal) at the store,
//!   `ConnectorError` and `SalesforceError` at the connector, `PlanError`/`Refusal` when a
//!   request cannot work, `ScimError` for SCIM's own error schema.
//! - Jobs (syncs, the executor, webhook delivery) and commands carry `anyhow::Error` with
//!   `.context(...)` on each fallible step, and log or print the chain.
//! - At the HTTP boundary every handler returns `Result<_, ApiError>` (or `ScimError` under
//!   `/scim/v2`), answered as `{"error": {"code", "message"}}` (or SCIM's schema). The status
//!   is decided here, once: a store conflict is 409, a database out of time or connections 503
//!   (with `Retry-After`), anything unexpected 500, whose cause is logged under the request's
//!   id and never shown. Errors axum makes itself (a path or query that does not parse, a
//!   method not served, a body too large, a timeout, a panic) are put in the same shapes by
//!   [`shape_plain_errors`].
//! - Every message a client sees says what went wrong and what to do about it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::scim::ScimError;
use crate::store::{ErrorKind, StoreError};

/// How an operation's errors are shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Errors {
    /// `{"error": {"code", "message"}}` as JSON.
    Api,
    /// The SCIM error schema as `application/scim+json`.
    Scim,
}

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
    /// Not this caller's to do, for a stated reason (`code` names it): 403.
    #[error("{message}")]
    Denied { code: &'static str, message: String },
    /// The request conflicts with the resource's state (`code` names how).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The request was understood and refused for a stated reason (`code` names it).
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    /// Too much of something is under way; the message says what to wait for (429).
    #[error("{0}")]
    TooManyRequests(String),
    /// A body that is not of a type the endpoint reads (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
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
            ApiError::Forbidden(_) | ApiError::Denied { .. } => StatusCode::FORBIDDEN,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::NotFound(_) => "not_found",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Refused { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Denied { code, .. } => code,
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::TooManyRequests(_) => "too_many_requests",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err.kind() {
            ErrorKind::Conflict => ApiError::Conflict {
                code: "conflict",
                message: match err {
                    // Its message already says what is taken and what to do.
                    StoreError::Duplicate(message) => message,
                    other => format!(
                        "the change conflicts with what is stored ({other}): read the current state and try again"
                    ),
                },
            },
            ErrorKind::Unavailable => {
                tracing::warn!(error = %err, "the database did not answer");
                ApiError::Unavailable(
                    "the database did not answer in time; try again in a moment".to_owned(),
                )
            }
            ErrorKind::Internal => ApiError::Internal(err.into()),
        }
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
        if let ApiError::Unavailable(_) = self {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
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

/// The largest plain-text error body read to be reshaped (axum's own are a line).
const PLAIN_ERROR_LIMIT: usize = 16 * 1024;

/// Reshapes an error answer that is not JSON (axum's own rejections: a path or query that does
/// not parse, a method the path does not serve, a body over the limit, a missing content type)
/// into the API's error shape, or SCIM's under `/scim/v2`, keeping its status and headers.
pub(super) async fn shape_plain_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let scim = request.uri().path().contains("/scim/v2");
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json") || v.starts_with("text/html"));
    // JSON errors are shaped already, and the console's HTML error pages are meant for people.
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, PLAIN_ERROR_LIMIT)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let message = match (status, text.is_empty()) {
        // axum adds the `Allow` header after this layer has run, so the answer points at it
        // rather than listing the methods (it said "it serves: none" when it could not see it).
        (StatusCode::METHOD_NOT_ALLOWED, _) => match parts
            .headers
            .get(axum::http::header::ALLOW)
            .and_then(|v| v.to_str().ok())
        {
            Some(allowed) => format!("this path does not serve that method; it serves: {allowed}"),
            None => "this path does not serve that method; the Allow header lists those it serves"
                .to_owned(),
        },
        (StatusCode::REQUEST_TIMEOUT, true) => {
            "the request took longer than the server allows (server.request_timeout_seconds) and was stopped".to_owned()
        }
        (_, false) => text,
        (_, true) => status
            .canonical_reason()
            .unwrap_or("the request was refused")
            .to_owned(),
    };
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.remove(axum::http::header::CONTENT_TYPE);
    let shaped = if scim {
        ScimError::new(status, None, message).into_response()
    } else {
        let code = match status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::REQUEST_TIMEOUT => "timeout",
            s if s.is_server_error() => "internal",
            _ => "refused",
        };
        (
            status,
            Json(json!({ "error": { "code": code, "message": message } })),
        )
            .into_response()
    };
    let (shaped_parts, body) = shaped.into_parts();
    parts.headers.extend(shaped_parts.headers);
    Response::from_parts(parts, body)
}

/// The answer to a request whose handler panicked, as plain text that
/// [`shape_plain_errors`] puts in the error shape of the path. The panic itself is logged by
/// the panic hook; the client learns only that it failed.
pub(super) fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "an internal error occurred; the server log has the details under this request's id",
    )
        .into_response()
}

/// Authentication and the API's own errors keep their status and message, in SCIM's shape.
impl From<ApiError> for ScimError {
    fn from(err: ApiError) -> Self {
        match err {
            ApiError::Unauthorized(m) => ScimError::new(StatusCode::UNAUTHORIZED, None, m),
            ApiError::Forbidden(m) | ApiError::Denied { message: m, .. } => ScimError::forbidden(m),
            ApiError::NotFound(m) => ScimError::not_found(m),
            ApiError::BadRequest(m) => ScimError::invalid_value(m),
            ApiError::Refused { message, .. } => ScimError::invalid_value(message),
            ApiError::Conflict { message, .. } => {
                ScimError::new(StatusCode::CONFLICT, None, message)
            }
            ApiError::Unavailable(m) => ScimError::new(StatusCode::SERVICE_UNAVAILABLE, None, m),
            ApiError::TooManyRequests(m) => ScimError::new(StatusCode::TOO_MANY_REQUESTS, None, m),
            ApiError::UnsupportedMediaType(m) => {
                ScimError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, None, m)
            }
            ApiError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "SCIM request failed");
                ScimError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    None,
                    "an internal error occurred; the server log has the details under this request's id",
                )
            }
        }
    }
}

/// The store's errors in SCIM's shape, with the statuses the API gives them.
impl From<StoreError> for ScimError {
    fn from(err: StoreError) -> Self {
        ApiError::from(err).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(err: StoreError) -> (StatusCode, Option<String>) {
        let response = ApiError::from(err).into_response();
        let retry = response
            .headers()
            .get(axum::http::header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        (response.status(), retry)
    }

    #[test]
    fn store_errors_are_answered_by_what_they_mean() {
        let taken = StoreError::Duplicate("a token named `x` exists: pick another name".into());
        assert_eq!(status_of(taken), (StatusCode::CONFLICT, None));
        assert_eq!(
            status_of(StoreError::Database(sqlx::Error::PoolTimedOut)),
            (StatusCode::SERVICE_UNAVAILABLE, Some("1".to_owned()))
        );
        assert_eq!(
            status_of(StoreError::TimedOut(std::time::Duration::from_secs(5))).0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status_of(StoreError::Corrupt {
                what: "a plan",
                detail: "x".into()
            })
            .0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let scim = ScimError::from(StoreError::Database(sqlx::Error::PoolTimedOut));
        assert_eq!(scim.status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
