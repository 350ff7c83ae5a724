//! Bearer-token authentication and scopes. Every endpoint of the API (all but health and the
//! OAuth callback a browser follows) calls [`require`] with the scope it needs.

use axum::http::HeaderMap;

use super::{ApiError, AppState};
use crate::tokens::{self, Scope};

/// Who is calling: the token's name, used as the actor in the audit log.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub scopes: Vec<String>,
}

impl Caller {
    pub fn may(&self, scope: Scope) -> bool {
        tokens::allows(&self.scopes, scope)
    }
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
