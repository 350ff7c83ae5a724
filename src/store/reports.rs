//! What reports read: the live model joined as auditors need it, streamed in keyset pages.

use std::sync::Arc;

use async_trait::async_trait;
use provost_connector::model::{Account, Permission, PermissionKind};
use provost_connector::times::Timestamp;

use super::sync::ChangeRecord;
use super::{OrgId, StoreError};

/// One grant of one user, and where the grant came from.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldEntitlement {
    /// Shared by the user's grants in a page (read once per user).
    pub account: Arc<Account>,
    pub grant_id: String,
    pub entitlement_id: String,
    /// `direct`, `profile` or `group:ID` (see `GrantSource::encode`).
    pub source: String,
    pub expires_at: Option<Timestamp>,
    /// When Provost first saw the grant as it is now: the change that created it (or, for a
    /// user's profile and role, last pointed it at this entitlement).
    pub since: Option<Timestamp>,
    /// The Provost request that made that change, if one did.
    pub request_id: Option<i64>,
}

/// Which targets of a kind of permission to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Targets<'a> {
    All,
    /// One target: an object (`Opportunity`), a field (`Contact.SSN__c`), an entity id.
    Exactly(&'a str),
    /// The fields of one object (`Contact` gives `Contact.*`).
    FieldsOf(&'a str),
}

#[async_trait]
pub trait ReportStore: Send + Sync {
    /// The stored permissions of `kind` on `targets`, in id order.
    async fn permissions(
        &self,
        org: OrgId,
        kind: PermissionKind,
        targets: Targets<'_>,
    ) -> Result<Vec<Permission>, StoreError>;

    /// The permissions of `kind` on `targets` as they were at `at`, rebuilt from the committed
    /// history (the last change of each at or before `at`), in id order.
    async fn permissions_at(
        &self,
        org: OrgId,
        kind: PermissionKind,
        targets: Targets<'_>,
        at: Timestamp,
    ) -> Result<Vec<Permission>, StoreError>;

    /// The entitlements as they were at `at`, rebuilt from the committed history.
    async fn entitlements_at(
        &self,
        org: OrgId,
        at: Timestamp,
    ) -> Result<Vec<provost_connector::model::Entitlement>, StoreError>;

    /// The grants of `entitlements` with their users, in (user id, grant id) order: who holds
    /// a few entitlements, without reading everyone's grants.
    async fn holders(
        &self,
        org: OrgId,
        entitlements: &[String],
    ) -> Result<Vec<HeldEntitlement>, StoreError>;

    /// Grants with their users in (user id, grant id) order, after the
    /// position `after`.
    async fn held_entitlements(
        &self,
        org: OrgId,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<HeldEntitlement>, StoreError>;

    /// The committed history up to `at` of up to `limit` users after `after` (in id order):
    /// the users' ids, and every change of those users and of their grants observed at or
    /// before `at`, in id order.
    async fn history_of_users(
        &self,
        org: OrgId,
        at: Timestamp,
        after: &str,
        limit: u32,
    ) -> Result<(Vec<String>, Vec<ChangeRecord>), StoreError>;
}
