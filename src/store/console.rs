//! What the web console keeps: signed-in sessions and one-time sign-in links (each secret as
//! its SHA-256 only), and the paged reads its pages need that no
//! API endpoint makes (the entitlement catalog with holder counts, one entitlement's holders,
//! the audit log filtered).

use async_trait::async_trait;
use provost_connector::model::{Account, Entitlement, EntitlementKind};
use provost_connector::times::Timestamp;

use super::{OrgId, StoreError};
use crate::audit::AuditEntry;

/// A signed-in person's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// The org whose Salesforce user signed in; `None` for a one-time link's session.
    pub org: Option<String>,
    pub user_id: Option<String>,
    /// The actor in the audit log: the Salesforce username, or `link:NAME`.
    pub username: String,
    pub display_name: String,
    /// `salesforce` or `link`.
    pub via: String,
    pub csrf_token: String,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    /// The absolute end, whatever the activity.
    pub expires_at: Timestamp,
}

/// An entitlement of the catalog and how many hold it.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogEntry {
    pub entitlement: Entitlement,
    pub holders: i64,
}

/// A holder of an entitlement, and how the grant came.
#[derive(Debug, Clone, PartialEq)]
pub struct Holder {
    pub account: Account,
    pub grant_id: String,
    /// `direct`, `profile` or `group:ID`.
    pub source: String,
    pub expires_at: Option<Timestamp>,
}

/// Which audit entries to read, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this org's entries (a Salesforce user's view); every entry when `None`.
    pub org: Option<String>,
    pub actor: Option<String>,
    pub event: Option<String>,
    pub request_id: Option<i64>,
    /// Entries before this sequence number (the next page).
    pub before: Option<i64>,
    pub limit: u32,
}

#[async_trait]
pub trait ConsoleStore: Send + Sync {
    async fn insert_session(
        &self,
        id_hash: &str,
        session: &ConsoleSession,
    ) -> Result<(), StoreError>;
    /// The session, if it is live at `now` (not ended, not past its absolute end, and seen
    /// since `idle_since`), its last use set to `now`.
    async fn touch_session(
        &self,
        id_hash: &str,
        now: Timestamp,
        idle_since: Timestamp,
    ) -> Result<Option<ConsoleSession>, StoreError>;
    /// Ends a session (sign-out); whether it was live.
    async fn end_session(&self, id_hash: &str, now: Timestamp) -> Result<bool, StoreError>;

    async fn insert_link(
        &self,
        token_hash: &str,
        name: &str,
        created_at: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError>;
    /// Uses a link up if it is unused and unexpired at `now`: its name.
    async fn use_link(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<String>, StoreError>;

    /// A page of the catalog in (kind, label) order, with holder counts, and how many match.
    /// `search` matches the API name or label, case-insensitively.
    async fn catalog(
        &self,
        org: OrgId,
        kind: Option<EntitlementKind>,
        search: Option<&str>,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<CatalogEntry>, u64), StoreError>;
    /// Up to `limit` grants of an entitlement with their users, in (user id, grant id) order
    /// after `after` (a user id and a grant id: one user may hold it several ways), and how
    /// many users hold it.
    async fn holders_page(
        &self,
        org: OrgId,
        entitlement: &str,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<(Vec<Holder>, u64), StoreError>;
    /// The committed changes of a user and of the user's grants, newest first, at most
    /// `limit`.
    async fn changes_of_user(
        &self,
        org: OrgId,
        account_id: &str,
        limit: u32,
    ) -> Result<Vec<super::sync::ChangeRecord>, StoreError>;
    /// Audit entries, newest first.
    async fn audit_page(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError>;
    /// Review items waiting for a decision in the org's active campaigns: all, or those
    /// assigned to `reviewer` (as items name reviewers: see `reviews::reviewer_of`).
    async fn open_review_items(
        &self,
        org: OrgId,
        reviewer: Option<&str>,
    ) -> Result<i64, StoreError>;
    /// Forgets sessions that ended or expired before `before`, and links used or expired
    /// before it.
    async fn purge_console(&self, before: Timestamp) -> Result<(), StoreError>;
}
