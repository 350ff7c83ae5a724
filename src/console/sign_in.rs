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

/// The cookie that binds a Salesforce sign-in to the browser that started it.
const SIGN_IN_COOKIE: &str = "provost_sign_in";

/// `next`, if it is a console path to return to after signing in (never another site).
fn console_path(next: Option<&str>) -> Option<String> {
    next.filter(|n| {
        n.starts_with("/console")
            && !n.starts_with("//")
            && !n.contains('\\')
            && n.len() <= 512
            && n.chars().all(|c| c.is_ascii_graphic())
            && !n.starts_with("/console/sign-")
            && !n.starts_with("/console/auth/")
    })
    .map(str::to_owned)
}

#[derive(Debug, Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// `GET /console/sign-in`: a button per org.
pub async fn sign_in_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(next): Query<Next>,
) -> Result<Response, Problem> {
    if session::current(&state, &headers).await?.is_some() {
        return Ok(Redirect::to("/console").into_response());
    }
    let next = console_path(next.next.as_deref());
    let query = next
        .map(|n| {
            format!(
                "?{}",
                serde_urlencoded::to_string([("next", n)]).unwrap_or_default()
            )
        })
        .unwrap_or_default();
    let orgs: Vec<_> = state.config.orgs.iter().map(|o| &o.name).collect();
    page(
        "sign_in.html",
        None,
        json!({ "orgs": orgs, "query": query }),
    )
}

/// `GET /console/sign-in/{org}`: off to Salesforce, with the sign-in sealed in a cookie.
pub async fn begin(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(org): Path<String>,
    Query(next): Query<Next>,
) -> Result<Response, Problem> {
    let org = state.config.org(&org).map_err(Problem::not_found)?;
    let started = sign_in::begin(
        &state.secrets,
        org,
        &callback_url(&state, &headers),
        console_path(next.next.as_deref()),
    )
    .map_err(|err| Problem::internal(anyhow::anyhow!(err)))?;
    let cookie = format!(
        "{SIGN_IN_COOKIE}={}; Path=/console/auth; HttpOnly; SameSite=Lax; Max-Age={}{}",
        started.cookie,
        sign_in::LIFETIME.num_seconds(),
        session::secure_flag(&state)
    );
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to(&started.url)).into_response())
}

/// `GET /console/auth/callback`: back from Salesforce; signed in, or told why not.
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(callback): Query<Callback>,
) -> Result<Response, Problem> {
    let redirect = callback_url(&state, &headers);
    let sealed = session::named_cookie(&headers, SIGN_IN_COOKIE);
    let spent = format!(
        "{SIGN_IN_COOKIE}=; Path=/console/auth; HttpOnly; SameSite=Lax; Max-Age=0{}",
        session::secure_flag(&state)
    );
    let signed_in = sign_in::complete(
        &state.config,
        &state.store,
        &state.secrets,
        callback,
        &redirect,
        sealed,
    )
    .await;
    match signed_in {
        Ok(signed_in) => {
            let identity = signed_in.identity;
            let now = chrono::Utc::now();
            let cookie = session::start(
                &state,
                ConsoleSession {
                    org: Some(identity.org.clone()),
                    user_id: Some(identity.user_id.clone()),
                    username: identity.username.clone(),
                    display_name: identity.display_name.clone(),
                    via: "salesforce".to_owned(),
                    csrf_token: String::new(),
                    created_at: now,
                    last_seen_at: now,
                    expires_at: now,
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
            let mut response =
                Redirect::to(signed_in.next.as_deref().unwrap_or("/console")).into_response();
            for value in [cookie, spent] {
                if let Ok(value) = header::HeaderValue::from_str(&value) {
                    response.headers_mut().append(header::SET_COOKIE, value);
                }
            }
            Ok(response)
        }
        Err(err) => {
            let code = match &err {
                SignInError::UnknownState => "unknown_state",
                SignInError::RedirectMismatch { .. } => "redirect_mismatch",
                SignInError::Denied { .. } => "denied",
                SignInError::Exchange { .. } => "exchange_refused",
                SignInError::OtherOrg { .. } => "other_org",
                SignInError::NotSynced { .. } => "not_synced",
                SignInError::UnknownOrgId { .. } => "unknown_org_id",
                SignInError::Other(_) => "internal",
            };
            // A refusal of someone Salesforce vouched for is audited; a callback anyone can
            // make up (a stale or forged state) is logged, so it cannot flood the audit log.
            if let SignInError::OtherOrg { .. } | SignInError::NotSynced { .. } = &err {
                audit(
                    &state,
                    "anonymous",
                    err.org(),
                    "console_sign_in_refused",
                    json!({ "reason": code, "message": err.to_string() }),
                )
                .await;
            } else {
                tracing::info!(reason = code, "a console sign-in was refused");
            }
            if let SignInError::Other(inner) = err {
                return Err(Problem::internal(inner));
            }
            let mut response = Problem::new(
                axum::http::StatusCode::FORBIDDEN,
                "Not signed in",
                err.to_string(),
            )
            .into_response();
            if let Ok(value) = header::HeaderValue::from_str(&spent) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            Ok(response)
        }
    }
}

/// Whether `token` is shaped as the links' tokens are (43 URL-safe characters).
fn link_token(token: &str) -> Result<(), Problem> {
    if token.len() == 43
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(())
    } else {
        Err(Problem::not_found(
            "no such sign-in link: make one with `provost console link`",
        ))
    }
}

/// `GET /console/link/{token}`: asks before using the link up (a link previewer fetching it
/// must not spend it).
pub async fn link_page(Path(token): Path<String>) -> Result<Response, Problem> {
    link_token(&token)?;
    page("link.html", None, json!({ "token": token }))
}

/// `POST /console/link/{token}`: signs the link's admin in, once.
pub async fn use_link(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, Problem> {
    link_token(&token)?;
    // No session yet, so no CSRF token: the link itself is the secret; the form must still
    // come from this console.
    session::check_csrf(&state, None, &headers, None)?;
    let now = chrono::Utc::now();
    let Some(name) = state
        .store
        .use_link(&crate::tokens::hash(&token), now)
        .await?
    else {
        tracing::info!("an unknown, used or expired console sign-in link was refused");
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
