//! An access request as Provost keeps it, and the states of its life.

use std::fmt;
use std::str::FromStr;

use provost_connector::times::Timestamp;
use serde::Serialize;
use serde_json::Value;

use crate::store::keys::OrgId;

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
    #[serde(with = "provost_connector::times::serde::option")]
    pub expires_at: Option<Timestamp>,
    pub idempotency_key: Option<String>,
    /// The request as it was made.
    pub input: Value,
    /// What will be (or was) written to Salesforce, and the checks made beforehand.
    pub plan: Value,
    /// Salesforce's answer, record by record, once executed.
    pub result: Option<Value>,
    pub error: Option<String>,
    pub attempts: i64,
    #[serde(with = "provost_connector::times::serde::option")]
    pub next_attempt_at: Option<Timestamp>,
    #[serde(with = "provost_connector::times::serde")]
    pub created_at: Timestamp,
    #[serde(with = "provost_connector::times::serde")]
    pub updated_at: Timestamp,
    #[serde(with = "provost_connector::times::serde::option")]
    pub finished_at: Option<Timestamp>,
}
