//! Access reviews: certification campaigns over who holds what.
//!
//! A campaign is defined as a draft ([`model::Definition`]: scope, reviewer rules, close policy,
//! recurrence), then started: its items are frozen from the last successful sync, one per user
//! and entitlement in scope, each with its reviewers per stage and the context and suggestions
//! a reviewer needs ([`items`]). Reviewers keep or revoke ([`decide`]); every revocation becomes
//! an access request approved by the decision and carried out by the executor, linked both
//! ways. Closing applies the campaign's policy to what is undecided; `provost serve` reminds,
//! marks overdue, finishes remediation and makes recurring runs ([`campaigns::tick`]). The
//! report ([`report`]) is the evidence, with a manifest.

pub mod campaigns;
pub mod decide;
pub mod items;
pub mod model;
pub mod report;

use crate::store::StoreError;

/// Why a review operation did not happen; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The definition or the input cannot work (400).
    #[error("{0}")]
    BadDefinition(String),
    #[error("{0}")]
    NotFound(String),
    /// The caller may not do this to this item or campaign (403).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// The campaign or item is not in a state that allows it (409).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Refused for a stated reason (`code` names it) (400).
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ReviewError {
    /// The code a client sees.
    pub fn code(&self) -> &'static str {
        match self {
            ReviewError::BadDefinition(_) => "bad_definition",
            ReviewError::NotFound(_) => "not_found",
            ReviewError::Forbidden { code, .. }
            | ReviewError::Conflict { code, .. }
            | ReviewError::Refused { code, .. } => code,
            ReviewError::Store(_) => "store",
        }
    }
}

/// Who acts on reviews: the identity items are assigned to, and whether they administer
/// campaigns.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The token's subject (or name): a Salesforce username or user id, or another name.
    pub identity: String,
    /// Holds `reviews:admin`.
    pub admin: bool,
}

/// `identity` as items store reviewers: a user of the org is their lower-case username
/// (whether named by id, 15-character id, username or email); anyone else, the name in lower
/// case. Also the user's id when they are one. An email several users share is refused: it
/// does not say who.
pub async fn reviewer_of(
    store: &dyn crate::store::Store,
    org: crate::store::OrgId,
    identity: &str,
) -> Result<(String, Option<String>), ReviewError> {
    use crate::store::provisioning::AccountMatch;
    Ok(match store.find_account(org, identity.trim()).await? {
        AccountMatch::One(account) => (account.username.to_lowercase(), Some(account.id)),
        AccountMatch::Several(names) => {
            return Err(ReviewError::Refused {
                code: "ambiguous_reviewer",
                message: format!(
                    "`{}` is the email of several users ({}); name one by username or id",
                    identity.trim(),
                    names.join(", ")
                ),
            })
        }
        AccountMatch::None => (identity.trim().to_lowercase(), None),
    })
}

/// A reviewer named where items will be assigned (a definition, a reassignment): a user of the
/// org as [`reviewer_of`] finds them, or else a team's plain name. A name with `@` or shaped
/// like a user id must be a user of the org, and a team's name is letters, digits, `.`, `_` and
/// `-`, so that no name can look like a person it is not (a username with an invisible
/// character, a trailing dot, a look-alike letter) and let them review their own access.
pub async fn named_reviewer(
    store: &dyn crate::store::Store,
    org: crate::store::OrgId,
    name: &str,
) -> Result<(String, Option<String>), ReviewError> {
    let found = reviewer_of(store, org, name).await?;
    if found.1.is_none() {
        plain_team_name(name)?;
    }
    Ok(found)
}

/// Checks that `name`, which names no user of the org, is a team's plain name.
pub fn plain_team_name(name: &str) -> Result<(), ReviewError> {
    let name = name.trim();
    let id_shaped = (name.len() == 15 || name.len() == 18)
        && name.to_ascii_lowercase().starts_with("005")
        && name.chars().all(|c| c.is_ascii_alphanumeric());
    if name.contains('@') || id_shaped {
        return Err(ReviewError::Refused {
            code: "unknown_reviewer",
            message: format!(
                "`{name}` is not a user of the org as last synced (no id, username or email matches): name a user, or a team by a plain name without `@`"
            ),
        });
    }
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(ReviewError::Refused {
            code: "unknown_reviewer",
            message: format!(
                "`{}` is not a user of the org, and a team's name is letters, digits, `.`, `_` and `-`",
                name.escape_default()
            ),
        });
    }
    Ok(())
}

/// Whether a comment says something: at least one letter or digit (not only spaces or
/// invisible characters).
pub fn says_something(comment: &str) -> bool {
    comment.chars().any(char::is_alphanumeric)
}
