//! `GET /metrics`: the Prometheus text format (see [`crate::metrics`]).

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
/// is meant for a private network), anything else 404.
pub fn unauthenticated_router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .fallback(|| async {
            ApiError::NotFound("this address serves GET /metrics only".to_owned())
        })
        .with_state(state)
}

async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let text = state
        .metrics
        .render(state.store.as_ref(), &state.config)
        .await?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text))
}
