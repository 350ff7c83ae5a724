//! API tokens: what they may do (scopes), how they are made and how they are recognised.
//! A token is shown once when created; the store keeps only its SHA-256.

use std::fmt;
use std::str::FromStr;

use provost_connector::times::Timestamp;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Every token starts with this, so a leaked one is recognisable (secret scanners, logs).
pub const PREFIX: &str = "pvt_";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    ScimRead,
    ScimWrite,
    RequestsWrite,
    RequestsApprove,
    ReportsRead,
    /// Define, start, close and cancel access-review campaigns, and reassign any item.
    ReviewsAdmin,
    /// Decide the access-review items assigned to the token's subject.
    ReviewsDecide,
    /// `GET /metrics`, for a Prometheus scraper.
    MetricsRead,
    /// Everything, including what no other scope names.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 9] = [
        Scope::ScimRead,
        Scope::ScimWrite,
        Scope::RequestsWrite,
        Scope::RequestsApprove,
        Scope::ReportsRead,
        Scope::ReviewsAdmin,
        Scope::ReviewsDecide,
        Scope::MetricsRead,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ScimRead => "scim:read",
            Scope::ScimWrite => "scim:write",
            Scope::RequestsWrite => "requests:write",
            Scope::RequestsApprove => "requests:approve",
            Scope::ReportsRead => "reports:read",
            Scope::ReviewsAdmin => "reviews:admin",
            Scope::ReviewsDecide => "reviews:decide",
            Scope::MetricsRead => "metrics:read",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown scope `{s}`: expected one of {}",
                    Scope::ALL.map(Scope::as_str).join(", ")
                )
            })
    }
}

/// Parses `a,b,c` into scopes, refusing unknown and empty lists.
pub fn parse_scopes(list: &str) -> Result<Vec<Scope>, String> {
    let mut scopes = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let scope: Scope = part.parse()?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    if scopes.is_empty() {
        return Err("a token needs at least one scope".to_owned());
    }
    Ok(scopes)
}

/// Whether `held` (as stored) allows `wanted`. `admin` allows everything; `reviews:admin`
/// allows `reviews:decide` too (an administrator of reviews may reassign any item and decide
/// what is assigned to them).
pub fn allows(held: &[String], wanted: Scope) -> bool {
    held.iter().any(|s| {
        s == wanted.as_str()
            || s == Scope::Admin.as_str()
            || (wanted == Scope::ReviewsDecide && s == Scope::ReviewsAdmin.as_str())
    })
}

/// A new random token: the prefix and 256 random bits, URL-safe.
pub fn generate() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// What the store keeps of a token.
pub fn hash(token: &str) -> String {
    crate::util::hex(&Sha256::digest(token.as_bytes()))
}

/// Whether two secrets are equal, in time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_admin_allows_everything() {
        assert_eq!(
            parse_scopes("scim:read, requests:write,scim:read").unwrap(),
            vec![Scope::ScimRead, Scope::RequestsWrite]
        );
        assert!(parse_scopes("scim:read,root").unwrap_err().contains("root"));
        assert!(parse_scopes(" , ").is_err());
        let held = vec!["scim:read".to_owned()];
        assert!(allows(&held, Scope::ScimRead));
        assert!(!allows(&held, Scope::ScimWrite));
        assert!(allows(&["admin".to_owned()], Scope::RequestsApprove));
        assert!(allows(&["reviews:admin".to_owned()], Scope::ReviewsDecide));
        assert!(!allows(&["reviews:decide".to_owned()], Scope::ReviewsAdmin));
    }

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 43);
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
    }
}

/// An API token as listed (the secret itself is never stored, only its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub scopes: Vec<String>,
    #[serde(with = "provost_connector::times::serde")]
    pub created_at: Timestamp,
    #[serde(with = "provost_connector::times::serde::option")]
    pub last_used_at: Option<Timestamp>,
    #[serde(with = "provost_connector::times::serde::option")]
    pub revoked_at: Option<Timestamp>,
    /// The person the token acts for (a Salesforce username or user id), if any: who decides
    /// access-review items with it.
    pub subject: Option<String>,
}
