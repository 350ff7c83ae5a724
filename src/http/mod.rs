//! Provost's HTTP API: the router, its middleware, and serving with graceful shutdown.
//! Each area of the API is a module exposing `routes()`: its handlers with their OpenAPI
//! descriptions ([`openapi::Routes`]), merged in [`router`].

pub mod auth;
mod error;
mod health;
pub mod integrations;
mod metrics;
pub mod openapi;
mod orgs;
mod reports;
mod requests;
mod scim;
mod server;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, Request, StatusCode};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use server::serve;

use crate::config::Config;
use crate::org::secrets::SecretBox;
use crate::store::Store;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    /// Seals and opens stored tokens.
    pub secrets: Arc<SecretBox>,
    /// Wakes the executor when a request is approved.
    pub work: Arc<tokio::sync::Notify>,
    /// What this process counts as it serves, for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Whether a request's body is declared as JSON: `application/json`, `application/scim+json`
/// or another `application/*+json`, with any parameters. The error says what to send.
pub(crate) fn json_content_type(headers: &axum::http::HeaderMap) -> Result<(), String> {
    let declared = headers
        .get(axum::http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    let media = declared
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let json = media == "application/json"
        || media
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"));
    if json {
        Ok(())
    } else {
        Err(format!(
            "the body must be JSON, sent with `Content-Type: application/json` (or application/scim+json); it was sent as {}",
            declared.map_or_else(|| "no content type".to_owned(), |v| format!("`{v}`"))
        ))
    }
}

/// A numeric query parameter, refused with 400 outside `range` (an id is 1 or more, an
/// `after` cursor 0 or more): every number a client sends has a range.
pub(crate) fn in_range(
    name: &str,
    value: Option<i64>,
    range: std::ops::RangeInclusive<i64>,
) -> Result<Option<i64>, ApiError> {
    match value {
        Some(v) if !range.contains(&v) => Err(ApiError::BadRequest(format!(
            "{name}={v} is outside {}..={}",
            range.start(),
            range.end()
        ))),
        other => Ok(other),
    }
}

/// Every endpoint of the API, with its description.
pub fn routes() -> openapi::Routes {
    openapi::Routes::new()
        .merge(health::routes())
        .merge(metrics::routes())
        .merge(integrations::routes())
        .merge(orgs::routes())
        .merge(requests::routes())
        .merge(reports::routes())
        .merge(scim::routes())
        .merge(openapi::routes())
}

/// The OpenAPI document of the API as `config`'s server serves it.
pub fn openapi_document(config: &Config) -> serde_json::Value {
    let routes = routes();
    openapi::document(routes.endpoints(), &config.server.public_url())
}

pub fn router(state: AppState) -> Router {
    let timeout = Duration::from_secs(state.config.server.request_timeout_seconds);
    routes()
        .into_router(&state.config.server.public_url())
        .route_layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            record_route,
        ))
        .fallback(|| async { ApiError::NotFound("no such endpoint".to_owned()) })
        .with_state(state.clone())
        // For the route guards (`auth::guard`), which run before the handler's extractors.
        .layer(axum::Extension(state))
        .layer(
            ServiceBuilder::new()
                // Outermost first: the id is set before the span is made, so every log line of
                // the request carries it, and it is echoed back to the client.
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                        let request_id = request
                            .headers()
                            .get(REQUEST_ID)
                            .and_then(|value| value.to_str().ok())
                            .unwrap_or("-");
                        // The org, for what a line concerns; the route's template
                        // (`/orgs/{org}/scim/v2/{kind}`), to group by, once routing found it.
                        let org = org_of(request.uri().path());
                        tracing::info_span!(
                            "request",
                            method = %request.method(),
                            path = %request.uri().path(),
                            route = tracing::field::Empty,
                            org,
                            request_id,
                        )
                    }),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                // Errors made outside the handlers (a path or query that does not parse, a
                // method the path does not serve, a body too large, a request out of time, a
                // panic) in the API's error shape, or SCIM's under /scim/v2, like every other.
                .layer(axum::middleware::from_fn(error::shape_plain_errors))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    timeout,
                ))
                // A panic answers 500 in the error shape (the connection is not dropped) and
                // is logged by the panic hook (`telemetry`) with this request's span.
                .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                    error::panic_response,
                )),
        )
}

/// Records the matched route's template on the request's span, and counts the answer by
/// route template, method and status.
async fn record_route(
    axum::extract::State(metrics): axum::extract::State<Arc<crate::metrics::Metrics>>,
    route: axum::extract::MatchedPath,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    tracing::Span::current().record("route", route.as_str());
    let method = request.method().clone();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    metrics.observe_http(
        route.as_str(),
        method.as_str(),
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// The org a path names (`/orgs/NAME/...` or `/api/v1/orgs/NAME/...`), for log lines.
fn org_of(path: &str) -> &str {
    let mut segments = path.split('/');
    while let Some(segment) = segments.next() {
        if segment == "orgs" {
            return segments.next().unwrap_or("-");
        }
    }
    "-"
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. The SIGTERM handler is installed when this is
/// called, not when the future is first polled: call it before announcing the server, so a
/// SIGTERM sent as soon as the address is known is never fatal.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    async move {
        let interrupt = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let terminate = async {
            match terminate {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                    std::future::pending::<()>().await;
                }
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            () = interrupt => {},
            () = terminate => {},
        }
    }
}
