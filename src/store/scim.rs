//! What the SCIM service reads: resources selected by a compiled filter, in a requested order,
//! a page at a time with the total count; and, for a page of users or groups, what their
//! resources show (grants with their entitlements, members).

use async_trait::async_trait;
use provost_connector::model::{Account, Entitlement};

use super::fragment::Sql;
use super::{OrgId, StoreError};

/// Which rows a SCIM resource type is.
#[derive(Debug, Clone, Copy)]
pub enum ScimTable {
    /// Users: `accounts a`.
    Accounts,
    /// Groups, Entitlements or Roles: `entitlements e` under this condition (a constant).
    Entitlements(&'static str),
}

/// What to select: the filter (over `a` or `e`), the `ORDER BY` keys (constants of the
/// code), and the page.
#[derive(Debug, Clone, Copy)]
pub struct ScimQuery<'a> {
    pub table: ScimTable,
    pub filter: Option<&'a Sql>,
    pub order: &'a str,
    pub offset: u64,
    /// 0 asks for the count only.
    pub limit: u32,
    /// How many rows match, when the caller counted them already: answered as the total
    /// instead of counting again.
    pub counted: Option<u64>,
    /// When its statements are stopped ([`StoreError::TimedOut`](super::StoreError::TimedOut)):
    /// one deadline for every statement of a request (a page, its count, each resource type
    /// of a search), so the request's whole work is bounded.
    pub deadline: QueryDeadline,
}

/// A request's deadline for its queries, and the time it was given (for the error).
#[derive(Debug, Clone, Copy)]
pub struct QueryDeadline {
    pub at: std::time::Instant,
    pub budget: std::time::Duration,
}

impl QueryDeadline {
    /// A deadline `budget` from now.
    pub fn after(budget: std::time::Duration) -> QueryDeadline {
        QueryDeadline {
            at: std::time::Instant::now() + budget,
            budget,
        }
    }

    /// The time left, or the error of a request out of time.
    pub fn remaining(&self) -> Result<std::time::Duration, super::StoreError> {
        self.at
            .checked_duration_since(std::time::Instant::now())
            .filter(|left| !left.is_zero())
            .ok_or(super::StoreError::TimedOut(self.budget))
    }
}

/// One grant of a user, with its entitlement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserGrant {
    pub entitlement_id: String,
    pub kind: String,
    pub label: String,
    /// `direct`, `profile` or `group:ID`.
    pub source: String,
}

/// A direct member of an entitlement served as a Group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub entitlement_id: String,
    pub account_id: String,
    pub display_name: String,
}

#[async_trait]
pub trait ScimStore: Send + Sync {
    /// The ids of one page of matching rows, and how many match in all.
    async fn scim_select(
        &self,
        org: OrgId,
        query: ScimQuery<'_>,
    ) -> Result<(Vec<String>, u64), StoreError>;

    /// One page of matching accounts in order, each with its grants (ordered by kind, label
    /// and entitlement id), and how many match in all. `query.table` must be `Accounts`.
    async fn scim_accounts(
        &self,
        org: OrgId,
        query: ScimQuery<'_>,
    ) -> Result<(Vec<(Account, Vec<UserGrant>)>, u64), StoreError>;

    /// Entitlements by id (in no particular order; unknown ids are left out).
    async fn entitlements_by_ids(
        &self,
        org: OrgId,
        ids: &[String],
    ) -> Result<Vec<Entitlement>, StoreError>;

    /// The direct members of these entitlements, in user id order.
    async fn members_of(&self, org: OrgId, ids: &[String]) -> Result<Vec<Member>, StoreError>;
}
