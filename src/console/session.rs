//! Who is looking: the session cookie, read on every console request, and the CSRF token every
//! state-changing form carries.
//!
//! A session id is 256 random bits in an HttpOnly, SameSite=Lax cookie (Secure when the
//! console is served over HTTPS); the store keeps its SHA-256, so a copy of the database opens
//! no session. A session ends after `console.session_idle_minutes` without a request, after
//! `console.session_hours` in all, or at sign-out. Each session has its own CSRF token, which
//! forms carry as `csrf`; a POST without it, with another, or from another origin is refused.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use provost_connector::times::Timestamp;
use rand::RngCore;

use super::roles::Roles;
use super::view::Problem;
use crate::http::AppState;
use crate::store::console::ConsoleSession;

pub const COOKIE: &str = "provost_session";

/// The signed-in person of a request, with the roles they hold now.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub id_hash: String,
    pub session: ConsoleSession,
    pub roles: Roles,
}

impl Viewer {
    /// The actor in the audit log and in access requests.
    pub fn actor(&self) -> &str {
        &self.session.username
    }

    /// Whether the person may look at org `org`: a Salesforce user sees their own org, a
    /// one-time link's admin every org.
    pub fn may_open(&self, org: &str) -> bool {
        self.session.org.as_deref().is_none_or(|own| own == org)
    }
}

/// A new random secret, URL-safe.
pub fn random_token() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The session cookie's value, if the request carries one.
fn cookie_of(headers: &HeaderMap) -> Option<&str> {
    named_cookie(headers, COOKIE).filter(|value| value.len() <= 128)
}

/// The value of cookie `name`, if the request carries it (at most 4 KiB).
pub fn named_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(found, _)| *found == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty() && value.len() <= 4096)
}

/// ` Secure` when the console is served over HTTPS.
pub fn secure_flag(state: &AppState) -> &'static str {
    if state.config.server.public_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

/// The `Set-Cookie` value that starts a session (or, with `None`, ends it in the browser).
pub fn set_cookie(state: &AppState, value: Option<&str>) -> String {
    let secure = secure_flag(state);
    match value {
        Some(value) => format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax{secure}"),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
    }
}

/// Starts a session for `session` (its times set here): the cookie to send.
pub async fn start(state: &AppState, mut session: ConsoleSession) -> Result<String, Problem> {
    let id = random_token();
    let now = chrono::Utc::now();
    session.created_at = now;
    session.last_seen_at = now;
    session.expires_at =
        now + chrono::TimeDelta::hours(i64::from(state.config.console.session_hours));
    session.csrf_token = random_token();
    state
        .store
        .purge_console(now - chrono::TimeDelta::days(1))
        .await?;
    state
        .store
        .insert_session(&crate::tokens::hash(&id), &session)
        .await?;
    Ok(set_cookie(state, Some(&id)))
}

/// The live session the request's cookie names, its last use now.
pub async fn current(state: &AppState, headers: &HeaderMap) -> Result<Option<Viewer>, Problem> {
    let Some(id) = cookie_of(headers) else {
        return Ok(None);
    };
    let id_hash = crate::tokens::hash(id);
    let now: Timestamp = chrono::Utc::now();
    let idle = chrono::TimeDelta::minutes(i64::from(state.config.console.session_idle_minutes));
    let Some(session) = state.store.touch_session(&id_hash, now, now - idle).await? else {
        return Ok(None);
    };
    let roles = super::roles::resolve(state, &session).await?;
    Ok(Some(Viewer {
        id_hash,
        session,
        roles,
    }))
}

/// Pages need a signed-in person: without one, a page is sent to sign in (and back after),
/// anything else is refused with 401.
impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match current(state, &parts.headers).await {
            Ok(Some(viewer)) => Ok(viewer),
            Ok(None) if parts.method == axum::http::Method::GET => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/console");
                let target = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("next", next)
                    .finish();
                Err(Redirect::to(&format!("/console/sign-in?{target}")).into_response())
            }
            Ok(None) => Err(Problem::unauthorized().into_response()),
            Err(problem) => Err(problem.into_response()),
        }
    }
}

/// Refuses a state-changing request whose form lacks the session's CSRF token, or that a page
/// of another origin sent (its `Origin` or `Referer` names another host).
pub fn check_csrf(
    state: &AppState,
    viewer: Option<&Viewer>,
    headers: &HeaderMap,
    token: Option<&str>,
) -> Result<(), Problem> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let public = state.config.server.public_url();
    let from = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok())
        .filter(|v| *v != "null");
    if let Some(from) = from {
        let origin_host = url::Url::parse(from).ok().map(|u| match u.port() {
            Some(port) => format!("{}:{port}", u.host_str().unwrap_or_default()),
            None => u.host_str().unwrap_or_default().to_owned(),
        });
        let public_host = url::Url::parse(&public).ok().map(|u| match u.port() {
            Some(port) => format!("{}:{port}", u.host_str().unwrap_or_default()),
            None => u.host_str().unwrap_or_default().to_owned(),
        });
        if origin_host.as_deref() != Some(host) && origin_host != public_host {
            return Err(Problem::forbidden(
                "this form was sent from another site; open the console and submit it from there",
            ));
        }
    }
    let expected = viewer.map(|v| v.session.csrf_token.as_str());
    match (expected, token) {
        (Some(expected), Some(token)) if crate::tokens::same(expected, token) => Ok(()),
        (None, _) => Ok(()),
        _ => Err(Problem::forbidden(
            "the form's security token is missing or out of date (it changes with each sign-in): reload the page and submit it again",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others_and_nothing_else_is() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; provost_session=abc ; b=2".parse().unwrap(),
        );
        assert_eq!(cookie_of(&headers), Some("abc"));
        headers.insert(header::COOKIE, "provost_sessionx=abc".parse().unwrap());
        assert_eq!(cookie_of(&headers), None);
        headers.insert(
            header::COOKIE,
            format!("provost_session={}", "x".repeat(200))
                .parse()
                .unwrap(),
        );
        assert_eq!(
            cookie_of(&headers),
            None,
            "an overlong cookie is not looked up"
        );
    }
}
