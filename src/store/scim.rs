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
    /// How long each of its statements may run before it is stopped
    /// ([`StoreError::TimedOut`](super::StoreError::TimedOut)).
    pub timeout: std::time::Duration,
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
