//! What provisioning keeps: API tokens, access requests with the executor's claims, the
//! hash-chained audit log, and each org's last preflight.
//!
//! Every state change of a request is written in the same transaction as its audit entry, and
//! an executed request's effect on the live model (grants and accounts, with history rows that
//! name the request) in the same transaction as its final state: nothing is acknowledged that
//! is not stored, and nothing is stored that the audit log does not show.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use provost_connector::model::{Account, Entitlement, EntitlementKind, Grant};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::{OrgId, StoreError};

/// An API token as listed (the secret itself is never stored, only its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub scopes: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// Where an access request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    PendingApproval,
    Approved,
    /// Claimed by an executor, being written to Salesforce.
    Executing,
    Completed,
    Failed,
    Rejected,
    Cancelled,
    /// A time-bound grant past its end, claimed by an executor to be revoked.
    Expiring,
    /// A time-bound grant that Provost revoked at its end.
    Expired,
}

impl RequestState {
    pub const ALL: [RequestState; 9] = [
        RequestState::PendingApproval,
        RequestState::Approved,
        RequestState::Executing,
        RequestState::Completed,
        RequestState::Failed,
        RequestState::Rejected,
        RequestState::Cancelled,
        RequestState::Expiring,
        RequestState::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::PendingApproval => "pending_approval",
            RequestState::Approved => "approved",
            RequestState::Executing => "executing",
            RequestState::Completed => "completed",
            RequestState::Failed => "failed",
            RequestState::Rejected => "rejected",
            RequestState::Cancelled => "cancelled",
            RequestState::Expiring => "expiring",
            RequestState::Expired => "expired",
        }
    }

    /// No further change can happen to the request.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RequestState::Failed
                | RequestState::Rejected
                | RequestState::Cancelled
                | RequestState::Expired
        )
    }
}

impl fmt::Display for RequestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RequestState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RequestState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown request state `{s}`: expected one of {}",
                    RequestState::ALL.map(RequestState::as_str).join(", ")
                )
            })
    }
}

/// An access request as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccessRequest {
    pub id: i64,
    #[serde(skip)]
    pub org: OrgId,
    pub action: String,
    pub state: RequestState,
    pub account_id: Option<String>,
    pub entitlement_id: Option<String>,
    pub requester: String,
    /// The token that created the request.
    pub created_by: String,
    pub approver: Option<String>,
    pub justification: Option<String>,
    pub ticket: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    pub idempotency_key: Option<String>,
    /// The request as it was made.
    pub input: Value,
    /// What will be (or was) written to Salesforce, and the checks made beforehand.
    pub plan: Value,
    /// Salesforce's answer, record by record, once executed.
    pub result: Option<Value>,
    pub error: Option<String>,
    pub attempts: i64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

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
    pub expires_at: Option<OffsetDateTime>,
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

/// An entry to append to the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    pub actor: String,
    pub org: Option<String>,
    pub request_id: Option<i64>,
    pub event: String,
    pub data: Value,
}

/// An entry of the audit log, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: String,
    pub org: Option<String>,
    pub request_id: Option<i64>,
    pub event: String,
    /// The event's data as the JSON text that was hashed.
    pub data: String,
    pub prev_hash: String,
    pub hash: String,
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
    pub next_attempt_at: Option<OffsetDateTime>,
    pub effects: Vec<Effect>,
    pub audit: AuditEvent,
}

/// A change to the live model made by an executed request; recorded in the history with it.
#[derive(Debug, Clone)]
pub enum Effect {
    /// A grant as now held (added, or replaced: a profile or role), stored under the sync
    /// resource that reads it.
    GrantSaved {
        resource: &'static str,
        grant: Grant,
    },
    GrantRemoved {
        id: String,
    },
    /// The account as it is now.
    AccountSaved {
        resource: &'static str,
        account: Account,
    },
}

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
    ) -> Result<ApiToken, StoreError>;
    async fn list_tokens(&self) -> Result<Vec<ApiToken>, StoreError>;
    /// Revokes the token named `name`; false when there is no such token.
    async fn revoke_token(&self, name: &str) -> Result<bool, StoreError>;
    /// The token with this hash, revoked or not; records its use.
    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<ApiToken>, StoreError>;

    /// The user with this id, or else username, or else email (case-insensitive).
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
    async fn last_preflight(
        &self,
        org: OrgId,
    ) -> Result<Option<(Value, OffsetDateTime)>, StoreError>;

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
        lease: time::Duration,
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
    async fn next_due(&self, org: OrgId) -> Result<Option<OffsetDateTime>, StoreError>;

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
