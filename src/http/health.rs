//! Liveness and readiness, for load balancers and orchestrators.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::openapi::{schemas, Operation, Routes};
use super::AppState;

pub fn routes() -> Routes {
    Routes::new()
        .get(
            "/healthz",
            healthz,
            Operation::new("Health", "Liveness: the process serves HTTP").ok(
                200,
                "Always, while the process runs.",
                schemas::reference("Health"),
            ),
        )
        .get(
            "/readyz",
            readyz,
            Operation::new(
                "Health",
                "Readiness: the database answers within two seconds",
            )
            .ok(200, "Ready.", schemas::reference("Health"))
            .ok(
                503,
                "The database did not answer.",
                schemas::reference("Health"),
            ),
        )
}

/// The process is up and serving HTTP. Deliberately checks nothing else, so that a database
/// outage makes the instance unready, not restarted.
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready to serve traffic: the database answers within two seconds.
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let backend = state.store.backend().name();
    let outcome = tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await;
    let reason = match outcome {
        Ok(Ok(())) => {
            return (
                StatusCode::OK,
                Json(
                    json!({ "status": "ready", "database": { "backend": backend, "status": "ok" } }),
                ),
            )
        }
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness check: database query failed");
            "the database did not answer a query"
        }
        Err(_) => {
            tracing::warn!("readiness check: database did not answer within 2 s");
            "the database did not answer within 2 seconds"
        }
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({
            "status": "unavailable",
            "reason": reason,
            "database": { "backend": backend, "status": "unreachable" },
        })),
    )
}
