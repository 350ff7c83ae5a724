//! Bearer-token authentication and scopes, enforced by the router: every route declares the
//! scope it needs in its [`Operation`](super::openapi::Operation), and [`guard`] checks the
//! token before anything of the request is read (its path parameters, query or body), so an
//! unauthenticated caller learns nothing but 401. Handlers receive the [`Caller`] the guard
//! found; none checks a scope by hand.

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::RequestExt;

use super::error::Errors;
use super::{ApiError, AppState};
use crate::scim::ScimError;
use crate::tokens::{self, Scope};

/// Who is calling: the token's name, used as the actor in the audit log.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub scopes: Vec<String>,
    /// The person the token acts for, if it names one.
    pub subject: Option<String>,
}

impl Caller {
    /// Who decides access-review items as this caller: the token's subject, else its name.
    pub fn reviewer(&self) -> &str {
        self.subject.as_deref().unwrap_or(&self.name)
    }

    pub fn may(&self, scope: Scope) -> bool {
        tokens::allows(&self.scopes, scope)
    }
}

/// The caller the route's guard authenticated. A handler of a route that declares no scope
/// has no caller: asking for one there is a mistake of the code, answered 500.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "{} {} asks for the caller but its route declares no scope",
                parts.method,
                parts.uri.path()
            ))
        })
    }
}

/// The route layer of an operation that needs `scope`: authenticates, then hands the request
/// on with its [`Caller`], or answers 401/403 in the operation's error shape.
pub(super) async fn guard(
    scope: Scope,
    errors: Errors,
    mut request: Request,
    next: Next,
) -> Response {
    let refuse = |err: ApiError| match errors {
        Errors::Api => err.into_response(),
        Errors::Scim => ScimError::from(err).into_response(),
    };
    let Some(state) = request.extensions().get::<AppState>().cloned() else {
        return refuse(ApiError::Internal(anyhow::anyhow!(
            "the router serves without its state extension"
        )));
    };
    if let Some(query) = request.uri().query() {
        if url::form_urlencoded::parse(query.as_bytes())
            .any(|(key, _)| key.eq_ignore_ascii_case("access_token"))
        {
            return refuse(ApiError::Unauthorized(
                "a token in the URL is refused: URLs are kept in logs, proxies and browser history; \
                 send `Authorization: Bearer TOKEN` instead, and revoke the token that was sent \
                 (`provost token revoke --name NAME`)"
                    .to_owned(),
            ));
        }
    }
    let caller = match require(&state, request.headers(), scope).await {
        Ok(caller) => caller,
        Err(err) => return refuse(err),
    };
    // An org the configuration does not name is 404 before the body or query is read, so a
    // caller is not told to fix a body for an org that does not exist.
    if let Ok(params) = request
        .extract_parts::<axum::extract::RawPathParams>()
        .await
    {
        if let Some((_, org)) = params.iter().find(|(name, _)| *name == "org") {
            if state.config.org(org).is_err() {
                return refuse(ApiError::NotFound(format!(
                    "no org `{org}` is configured; the path takes an [[orgs]] name"
                )));
            }
        }
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The caller, if its bearer token is valid and holds `scope`: 401 otherwise, or 403 when the
/// token is valid but lacks the scope. Both say which.
pub async fn require(
    state: &AppState,
    headers: &HeaderMap,
    scope: Scope,
) -> Result<Caller, ApiError> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "no bearer token: send `Authorization: Bearer TOKEN` (create one with `provost token create`)"
                    .to_owned(),
            )
        })?
        .to_str()
        .map_err(|_| ApiError::Unauthorized("the Authorization header is not text".to_owned()))?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header is not `Bearer TOKEN`".to_owned())
        })?;
    let stored = state
        .store
        .token_by_hash(&tokens::hash(token))
        .await?
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "the bearer token is not known here: check it, or create one with `provost token create`"
                    .to_owned(),
            )
        })?;
    if stored.revoked_at.is_some() {
        return Err(ApiError::Unauthorized(format!(
            "the token `{}` was revoked; create a new one with `provost token create`",
            stored.name
        )));
    }
    let caller = Caller {
        name: stored.name,
        scopes: stored.scopes,
        subject: stored.subject,
    };
    if !caller.may(scope) {
        return Err(ApiError::Forbidden(format!(
            "the token `{}` lacks the scope `{scope}` this endpoint needs (it has: {}); create a token with it: provost token create --name NAME --scopes {scope}",
            caller.name,
            if caller.scopes.is_empty() { "none".to_owned() } else { caller.scopes.join(", ") }
        )));
    }
    Ok(caller)
}
