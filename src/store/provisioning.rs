//! What provisioning keeps: API tokens, access requests with the executor's claims, the
//! hash-chained audit log, and each org's last preflight. The things kept are the domain's
//! types ([`AccessRequest`], [`AuditEntry`], [`ApiToken`]); this module declares how they are
//! stored and found.
//!
//! Every state change of a request is written in the same transaction as its audit entry, and
//! an executed request's effect on the live model (grants and accounts, with history rows that
//! name the request) in the same transaction as its final state: nothing is acknowledged that
//! is not stored, and nothing is stored that the audit log does not show.

use async_trait::async_trait;
use provost_connector::model::{Account, Entitlement, EntitlementKind};
use provost_connector::times::Timestamp;
use serde_json::Value;

use super::{OrgId, StoreError};
use crate::audit::{AuditEntry, AuditEvent};
use crate::provisioning::request::{AccessRequest, RequestState};
use crate::tokens::ApiToken;

/// A request to store.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub org: OrgId,
    pub action: String,
    /// `pending_approval`, or `approved` when the org auto-approves the action.
    pub state: RequestState,
    pub account_id: Option<String>,
    pub entitlement_id: Option<String>,
    pub requester: String,
    pub created_by: String,
    pub approver: Option<String>,
    pub justification: Option<String>,
    pub ticket: Option<String>,
    pub expires_at: Option<Timestamp>,
    pub idempotency_key: Option<String>,
    pub input: Value,
    pub plan: Value,
}

/// What storing a request came to.
#[derive(Debug, Clone)]
pub enum Inserted {
    Created(AccessRequest),
    /// The idempotency key was used before, with the same input: the first request.
    Existing(AccessRequest),
    /// The idempotency key was used before for a different request.
    KeyReused(AccessRequest),
    /// An open request already asks for the same change of the same user.
    Duplicate(AccessRequest),
}

/// Which requests to list.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    pub state: Option<RequestState>,
    pub action: Option<String>,
    pub account_id: Option<String>,
    /// Keyset pagination: requests with a smaller id (newest first).
    pub before: Option<i64>,
    pub limit: u32,
}

/// A state change asked of a request, with its audit entry.
#[derive(Debug, Clone)]
pub struct Transition<'a> {
    pub id: i64,
    pub from: &'a [RequestState],
    pub to: RequestState,
    /// Set as the approver (approve, reject).
    pub approver: Option<&'a str>,
    pub audit: AuditEvent,
}

/// How an executed request ends, and what it changed in the live model.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub id: i64,
    /// `completed`, `failed`, `expired`, or `approved` again to retry at `next_attempt_at`.
    pub state: RequestState,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub next_attempt_at: Option<Timestamp>,
    pub effects: Vec<Effect>,
    pub audit: AuditEvent,
}

/// A change to the live model made by an executed request (the connector says which, in its
/// reader's terms); recorded in the history with it.
pub use provost_connector::provisioner::Effect;

/// Where a lookup of a user by a name found it.
#[derive(Debug, Clone, PartialEq)]
pub enum AccountMatch {
    None,
    One(Box<Account>),
    /// The name (an email address) fits several users.
    Several(Vec<String>),
}

#[async_trait]
pub trait ProvisioningStore: Send + Sync {
    async fn create_token(
        &self,
        name: &str,
        token_hash: &str,
        scopes: &[String],
    ) -> Result<ApiToken, StoreError> {
        self.create_token_for(name, token_hash, scopes, None).await
    }
    /// A token that acts for `subject` (a Salesforce username or user id): the person who
    /// decides access-review items with it.
    async fn create_token_for(
        &self,
        name: &str,
        token_hash: &str,
        scopes: &[String],
        subject: Option<&str>,
    ) -> Result<ApiToken, StoreError>;
    async fn list_tokens(&self) -> Result<Vec<ApiToken>, StoreError>;
    /// Revokes the token named `name`; false when there is no such token.
    async fn revoke_token(&self, name: &str) -> Result<bool, StoreError>;
    /// The token with this hash, revoked or not; records its use.
    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<ApiToken>, StoreError>;

    /// The user with this id (18 characters, or the 15 Salesforce also shows), or else
    /// username, or else email (case-insensitive).
    async fn find_account(&self, org: OrgId, key: &str) -> Result<AccountMatch, StoreError>;
    async fn get_entitlement(
        &self,
        org: OrgId,
        id: &str,
    ) -> Result<Option<Entitlement>, StoreError>;
    async fn entitlement_by_name(
        &self,
        org: OrgId,
        kind: EntitlementKind,
        api_name: &str,
    ) -> Result<Option<Entitlement>, StoreError>;

    async fn save_preflight(&self, org: OrgId, report: &Value) -> Result<(), StoreError>;
    async fn last_preflight(&self, org: OrgId) -> Result<Option<(Value, Timestamp)>, StoreError>;

    /// Stores a request with its audit entries (created, and approved when auto-approved),
    /// unless its creator used its idempotency key before (keys are per creating token).
    async fn insert_request(
        &self,
        request: &NewRequest,
        audit: &[AuditEvent],
    ) -> Result<Inserted, StoreError>;
    async fn get_request(&self, org: OrgId, id: i64) -> Result<Option<AccessRequest>, StoreError>;
    /// The request the token `created_by` made with this idempotency key, if any.
    async fn request_by_key(
        &self,
        org: OrgId,
        created_by: &str,
        key: &str,
    ) -> Result<Option<AccessRequest>, StoreError>;
    /// Newest first.
    async fn list_requests(
        &self,
        org: OrgId,
        filter: &RequestFilter,
    ) -> Result<Vec<AccessRequest>, StoreError>;
    /// Applies a state change if the request is in one of `from`; `None` when it was not.
    async fn transition_request(
        &self,
        transition: &Transition<'_>,
    ) -> Result<Option<AccessRequest>, StoreError>;

    /// Claims up to `limit` requests of `org` for `worker` for `lease`: approved ones due now,
    /// ones whose previous claim lapsed (a worker died), and completed time-bound grants past
    /// their end (to revoke). Each claim is audited.
    async fn claim_requests(
        &self,
        org: OrgId,
        org_name: &str,
        worker: &str,
        limit: u32,
        lease: chrono::TimeDelta,
    ) -> Result<Vec<AccessRequest>, StoreError>;
    /// Ends (or reschedules) claimed requests, applying their effects to the live model, in one
    /// transaction. A request no longer claimed by `worker` is left alone (another worker took
    /// it over); returns how many were applied.
    async fn finish_requests(
        &self,
        org: OrgId,
        worker: &str,
        outcomes: &[Outcome],
    ) -> Result<u64, StoreError>;
    /// The soonest time work will be due for `org` (approved, retrying, or a grant expiring).
    async fn next_due(&self, org: OrgId) -> Result<Option<Timestamp>, StoreError>;
    /// How many of `org`'s requests are in each state, and the oldest last change of each.
    async fn request_counts(&self, org: OrgId) -> Result<Vec<RequestCount>, StoreError>;

    /// Appends entries to the audit log on their own (a write to Salesforce, a token change).
    async fn append_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError>;
    /// Entries after `after_seq`, in order.
    async fn audit_entries(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError>;
    /// The audit entries of one request, in order (its timeline).
    async fn request_audit(&self, request_id: i64) -> Result<Vec<AuditEntry>, StoreError>;
    /// The head of the chain: the last sequence number and hash.
    async fn audit_head(&self) -> Result<(i64, String), StoreError>;
}

/// How many of an org's requests are in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestCount {
    pub state: String,
    pub count: i64,
    /// The longest-standing one's last change: for `approved`, how long the executor's queue
    /// has waited.
    pub oldest_update: Option<Timestamp>,
}
