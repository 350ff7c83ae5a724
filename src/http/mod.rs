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
pub(crate) mod reports;
mod requests;
mod reviews;
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
pub use metrics::unauthenticated_router as metrics_router;
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
        .merge(reviews::routes())
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
    let metrics = state.metrics.clone();
    let routed = routes()
        .into_router(&state.config.server.public_url())
        .merge(crate::console::router())
        .route_layer(axum::middleware::from_fn(record_route))
        .fallback(|| async { ApiError::NotFound("no such endpoint".to_owned()) })
        .with_state(state.clone())
        // For the route guards (`auth::guard`), which run before the handler's extractors.
        .layer(axum::Extension(state));
    with_middleware(routed, metrics, timeout)
}

/// The layers around the routes: request ids, the request's span, counting, error shapes, the
/// time limit and the panic catcher.
fn with_middleware(
    routed: Router,
    metrics: Arc<crate::metrics::Metrics>,
    timeout: Duration,
) -> Router {
    routed.layer(
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
                    // A one-time sign-in link's token is a secret: never in a log line.
                    let path = match request.uri().path().strip_prefix("/console/link/") {
                        Some(_) => "/console/link/[redacted]",
                        None => request.uri().path(),
                    };
                    let span = tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = %path,
                        route = tracing::field::Empty,
                        org,
                        request_id,
                        trace_id = tracing::field::Empty,
                    );
                    // The caller's trace when it sent a W3C `traceparent`, else a new one.
                    let traceparent = request
                        .headers()
                        .get("traceparent")
                        .and_then(|value| value.to_str().ok());
                    crate::telemetry::adopt_trace(&span, traceparent);
                    span
                }),
            )
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            // Outside the error shaping, the timeout and the panic catcher, so every answer
            // is counted with its final status: a 408, a panic's 500, an unmatched 404.
            .layer(axum::middleware::from_fn_with_state(metrics, count_request))
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

/// Where routing leaves the matched route's template for [`count_request`], which runs
/// outside the router (and outside the layers that may answer without reaching it).
#[derive(Clone, Default)]
struct MatchedRoute(Arc<std::sync::OnceLock<String>>);

/// Counts every answer by route template (`unmatched` when no route matched), method and
/// status, with its latency.
async fn count_request(
    axum::extract::State(metrics): axum::extract::State<Arc<crate::metrics::Metrics>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let matched = MatchedRoute::default();
    request.extensions_mut().insert(matched.clone());
    // Any token is a method to HTTP: an unknown one is `other`, so clients cannot grow the
    // label set.
    let method = match request.method().as_str() {
        known @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => {
            known.to_owned()
        }
        _ => "other".to_owned(),
    };
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let route = matched.0.get().map_or("unmatched", String::as_str);
    metrics.observe_http(
        route,
        &method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Records the matched route's template on the request's span and for [`count_request`].
async fn record_route(
    route: axum::extract::MatchedPath,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    tracing::Span::current().record("route", route.as_str());
    if let Some(matched) = request.extensions().get::<MatchedRoute>() {
        let _ = matched.0.set(route.as_str().to_owned());
    }
    next.run(request).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    /// Answers made outside the handler (a panic's 500, a timeout's 408, an unmatched 404)
    /// are counted, by the route that was matched or as `unmatched`.
    #[tokio::test]
    async fn every_answer_is_counted_with_its_final_status() {
        let metrics = crate::metrics::Metrics::new();
        let routed = Router::new()
            .route(
                "/boom/{id}",
                get(|| async {
                    panic!("a deliberate panic");
                    #[allow(unreachable_code)]
                    ""
                }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route("/fine", get(|| async { "fine" }))
            .route_layer(axum::middleware::from_fn(record_route));
        let app = with_middleware(routed, metrics.clone(), Duration::from_millis(100));
        for (path, status) in [
            ("/boom/7", 500),
            ("/slow", 408),
            ("/fine", 200),
            ("/nowhere/9", 404),
        ] {
            let request = Request::get(path).body(Body::empty()).unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status().as_u16(), status, "{path}");
        }
        for method in ["FOO123", "BAR456"] {
            let request = Request::builder()
                .method(method)
                .uri("/fine")
                .body(Body::empty())
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status().as_u16(), 405);
        }
        let text = metrics.render_process();
        for series in [
            r#"provost_http_requests_total{route="/boom/{id}",method="GET",status="500"} 1"#,
            r#"provost_http_requests_total{route="/slow",method="GET",status="408"} 1"#,
            r#"provost_http_requests_total{route="/fine",method="GET",status="200"} 1"#,
            r#"provost_http_requests_total{route="unmatched",method="GET",status="404"} 1"#,
            r#"method="other",status="405"} 2"#,
        ] {
            assert!(text.contains(series), "no `{series}` in\n{text}");
        }
        assert!(!text.contains("/boom/7"), "paths are never labels");
        assert!(!text.contains("FOO123"), "nor methods a client made up");
    }
}
