//! Signing in and out: "Sign in with Salesforce" (the flow itself is `org::sign_in`), the
//! one-time sign-in links that let the first admin in before any org is connected
//! (`provost console link`), and sign-out. Sign-ins, refusals and sign-outs are audited.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use serde_json::json;

use super::session::{self, Viewer};
use super::view::{page, Problem};
use crate::audit::AuditEvent;
use crate::http::AppState;
use crate::org::connect::Callback;
use crate::org::sign_in::{self, SignInError};
use crate::store::console::ConsoleSession;
use crate::store::Store;

/// How long a one-time sign-in link works, unless the command says otherwise.
pub const LINK_MINUTES: u32 = 15;

/// Makes a one-time sign-in link for an admin named `name`, working for `minutes`: the path
/// to open (`/console/link/TOKEN`). Only the token's SHA-256 is stored.
pub async fn make_link(store: &dyn Store, name: &str, minutes: u32) -> anyhow::Result<String> {
    let token = session::random_token();
    let now = chrono::Utc::now();
    store
        .insert_link(
            &crate::tokens::hash(&token),
            name,
            now,
            now + chrono::TimeDelta::minutes(i64::from(minutes)),
        )
        .await?;
    store
        .append_audit(&[AuditEvent {
            actor: "cli".to_owned(),
            org: None,
            request_id: None,
            event: "console_link_created".to_owned(),
            data: json!({ "name": name, "minutes": minutes }),
        }])
        .await?;
    Ok(format!("/console/link/{token}"))
}

/// Where this console is reached: `server.public_url` when set, else the address the browser
/// used (so a server on `127.0.0.1:0` or behind a port mapping still sends people back to it).
pub fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if state.config.server.public_url.is_some() {
        return state.config.server.public_url();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        });
    match host {
        Some(host) => format!("http://{host}"),
        None => state.config.server.public_url(),
    }
}

fn callback_url(state: &AppState, headers: &HeaderMap) -> String {
    format!("{}/console/auth/callback", base_url(state, headers))
}

async fn audit(
    state: &AppState,
    actor: &str,
    org: Option<&str>,
    event: &str,
    data: serde_json::Value,
) {
    let entry = AuditEvent {
        actor: actor.to_owned(),
        org: org.map(str::to_owned),
        request_id: None,
        event: event.to_owned(),
        data,
    };
    if let Err(err) = state.store.append_audit(&[entry]).await {
        tracing::error!(error = %err, event, "the console could not audit an event");
    }
}

/// `GET /console/sign-in`: a button per org.
pub async fn sign_in_page(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    if let Some(viewer) = session::current(&state, &headers).await? {
        let _ = viewer;
        return Ok(Redirect::to("/console").into_response());
    }
    let orgs: Vec<_> = state.config.orgs.iter().map(|o| &o.name).collect();
    page("sign_in.html", None, json!({ "orgs": orgs }))
}

/// `GET /console/sign-in/{org}`: off to Salesforce.
pub async fn begin(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(org): Path<String>,
) -> Result<Response, Problem> {
    let org = state.config.org(&org).map_err(Problem::not_found)?;
    let url = sign_in::begin(
        &state.store,
        &state.secrets,
        org,
        &callback_url(&state, &headers),
    )
    .await
    .map_err(|err| match err {
        SignInError::TooManyOpen => Problem::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "Busy",
            err.to_string(),
        ),
        other => Problem::internal(anyhow::anyhow!(other)),
    })?;
    Ok(Redirect::to(&url).into_response())
}

/// `GET /console/auth/callback`: back from Salesforce; signed in, or told why not.
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(callback): Query<Callback>,
) -> Result<Response, Problem> {
    let redirect = callback_url(&state, &headers);
    match sign_in::complete(
        &state.config,
        &state.store,
        &state.secrets,
        callback,
        &redirect,
    )
    .await
    {
        Ok(identity) => {
            let cookie = session::start(
                &state,
                ConsoleSession {
                    org: Some(identity.org.clone()),
                    user_id: Some(identity.user_id.clone()),
                    username: identity.username.clone(),
                    display_name: identity.display_name.clone(),
                    via: "salesforce".to_owned(),
                    csrf_token: String::new(),
                    created_at: chrono::Utc::now(),
                    last_seen_at: chrono::Utc::now(),
                    expires_at: chrono::Utc::now(),
                },
            )
            .await?;
            audit(
                &state,
                &identity.username,
                Some(&identity.org),
                "console_signed_in",
                json!({ "via": "salesforce", "user_id": identity.user_id }),
            )
            .await;
            Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/console")).into_response())
        }
        Err(err) => {
            let code = match &err {
                SignInError::UnknownState => "unknown_state",
                SignInError::RedirectMismatch { .. } => "redirect_mismatch",
                SignInError::Denied { .. } => "denied",
                SignInError::Exchange { .. } => "exchange_refused",
                SignInError::OtherOrg { .. } => "other_org",
                SignInError::NotSynced { .. } => "not_synced",
                SignInError::TooManyOpen => "too_many",
                SignInError::Other(_) => "internal",
            };
            audit(
                &state,
                "anonymous",
                None,
                "console_sign_in_refused",
                json!({ "reason": code, "message": err.to_string() }),
            )
            .await;
            if let SignInError::Other(inner) = err {
                return Err(Problem::internal(inner));
            }
            Err(Problem::new(
                axum::http::StatusCode::FORBIDDEN,
                "Not signed in",
                err.to_string(),
            ))
        }
    }
}

/// `GET /console/link/{token}`: asks before using the link up (a link previewer fetching it
/// must not spend it).
pub async fn link_page(Path(token): Path<String>) -> Result<Response, Problem> {
    page("link.html", None, json!({ "token": token }))
}

/// `POST /console/link/{token}`: signs the link's admin in, once.
pub async fn use_link(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, Problem> {
    let now = chrono::Utc::now();
    let Some(name) = state
        .store
        .use_link(&crate::tokens::hash(&token), now)
        .await?
    else {
        audit(
            &state,
            "anonymous",
            None,
            "console_sign_in_refused",
            json!({ "reason": "link_unknown_used_or_expired" }),
        )
        .await;
        return Err(Problem::forbidden(
            "this sign-in link is unknown, used already, or expired: make a new one with `provost console link`",
        ));
    };
    let actor = format!("link:{name}");
    let cookie = session::start(
        &state,
        ConsoleSession {
            org: None,
            user_id: None,
            username: actor.clone(),
            display_name: name.clone(),
            via: "link".to_owned(),
            csrf_token: String::new(),
            created_at: now,
            last_seen_at: now,
            expires_at: now,
        },
    )
    .await?;
    audit(
        &state,
        &actor,
        None,
        "console_signed_in",
        json!({ "via": "link" }),
    )
    .await;
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/console")).into_response())
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    pub csrf: Option<String>,
}

/// `POST /console/sign-out`.
pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    viewer: Viewer,
    Form(form): Form<CsrfForm>,
) -> Result<Response, Problem> {
    session::check_csrf(&state, Some(&viewer), &headers, form.csrf.as_deref())?;
    state
        .store
        .end_session(&viewer.id_hash, chrono::Utc::now())
        .await?;
    audit(
        &state,
        viewer.actor(),
        viewer.session.org.as_deref(),
        "console_signed_out",
        json!({}),
    )
    .await;
    Ok((
        [(header::SET_COOKIE, session::set_cookie(&state, None))],
        Redirect::to("/console/sign-in"),
    )
        .into_response())
}
