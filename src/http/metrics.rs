//! `GET /metrics`: the Prometheus text format (see [`crate::metrics`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::json;

use super::openapi::{Answer, Operation, Routes};
use super::{ApiError, AppState};
use crate::tokens::Scope;

pub fn routes() -> Routes {
    Routes::new().get(
        "/metrics",
        metrics,
        Operation::new(
            "Health",
            "Metrics in the Prometheus (OpenMetrics) text format: HTTP requests and latency by route, each org's syncs, API usage, access requests by state, the executor's queue, webhooks and the database pool",
        )
        .scope(Scope::MetricsRead)
        .answer(Answer::new(200, "The metrics.").content(
            "application/openmetrics-text",
            json!({"type": "string"}),
        )),
    )
}

/// The router of `server.metrics_listen`: `GET /metrics` alone, without a token (the address
/// is meant for a private network), anything else 404. Whoever reaches it cannot make it work
/// the database harder than one scraper: one render at a time, each answer reused for
/// [`REUSE`], and a render that takes longer than [`RENDER_LIMIT`] answered 503.
pub fn unauthenticated_router(state: AppState) -> axum::Router {
    let scrapes = Arc::new(Scrapes {
        state,
        last: tokio::sync::Mutex::new(None),
    });
    axum::Router::new()
        .route("/metrics", axum::routing::get(public_metrics))
        .fallback(|| async {
            ApiError::NotFound("this address serves GET /metrics only".to_owned())
        })
        .with_state(scrapes)
}

/// How long a rendered answer of the unauthenticated address is served again.
const REUSE: Duration = Duration::from_secs(1);

/// The longest a render of the unauthenticated address may take.
const RENDER_LIMIT: Duration = Duration::from_secs(10);

struct Scrapes {
    state: AppState,
    /// The last answer and when it was made; the lock makes renders one at a time.
    last: tokio::sync::Mutex<Option<(Instant, String)>>,
}

async fn public_metrics(
    State(scrapes): State<Arc<Scrapes>>,
) -> Result<impl IntoResponse, ApiError> {
    let mut last = scrapes.last.lock().await;
    let text = match &*last {
        Some((at, text)) if at.elapsed() < REUSE => text.clone(),
        _ => {
            let state = &scrapes.state;
            let render = state.metrics.render(state.store.as_ref(), &state.config);
            let text = tokio::time::timeout(RENDER_LIMIT, render)
                .await
                .map_err(|_| {
                    ApiError::Unavailable(format!(
                        "reading the metrics took more than {} s; the database may be overloaded",
                        RENDER_LIMIT.as_secs()
                    ))
                })??;
            *last = Some((Instant::now(), text.clone()));
            text
        }
    };
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text))
}

async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let text = state
        .metrics
        .render(state.store.as_ref(), &state.config)
        .await?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text))
}
