//! The web console at `/console`: people sign in with their Salesforce user (or, the first
//! admin, with a one-time link) and see who can do what, ask for access, approve, audit and
//! download reports, on the same services the HTTP API uses (requests are planned, decided and
//! executed by `provisioning`, users listed through the SCIM service's filters, reports
//! written by `reports`): no rule is written twice.
//!
//! Pages are rendered on the server from templates compiled into the binary ([`view`]); every
//! flow works without JavaScript, and htmx (served from the binary too) only makes searches
//! update as one types. Charts are SVG drawn here ([`charts`]).
//!
//! - [`session`]: the session cookie, the signed-in [`session::Viewer`] and CSRF checks.
//! - [`roles`]: admin, approver, reviewer, auditor and requester, resolved on every request.
//! - [`sign_in`]: Sign in with Salesforce, one-time links, sign-out.
//! - [`pages`]: one module per area of the console.

mod charts;
mod pages;
pub mod roles;
pub mod session;
pub mod sign_in;
mod view;

use axum::http::header;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::Router;

use crate::http::AppState;

/// The console's routes, merged into the HTTP server's router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/console/assets/htmx.min.js", get(htmx))
        .route("/console/assets/console.css", get(stylesheet))
        .route("/console/sign-in", get(sign_in::sign_in_page))
        .route("/console/sign-in/{org}", get(sign_in::begin))
        .route("/console/auth/callback", get(sign_in::callback))
        .route(
            "/console/link/{token}",
            get(sign_in::link_page).post(sign_in::use_link),
        )
        .route("/console/sign-out", post(sign_in::sign_out))
        .merge(pages::router())
        .layer(axum::middleware::from_fn(view::harden))
}

async fn htmx() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_str!("assets/htmx.min.js"),
    )
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("assets/console.css"),
    )
}
