//! The life of an access request before the executor takes it: creation (planned, refused
//! when it cannot work, idempotent by key, auto-approved where the org says so), approval,
//! rejection and cancellation. Every state change is stored with its audit entry.

use serde_json::json;

use super::plan::{self, PlanError, Refusal, RequestInput};
use crate::audit::AuditEvent;
use crate::config::OrgConfig;
use crate::provisioning::request::{AccessRequest, RequestState};
use crate::store::provisioning::{Inserted, NewRequest, Transition};
use crate::store::{OrgRecord, Store, StoreError};

/// Why a request operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Refused(Refusal),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// An open request already asks for the same thing.
    #[error("{message}")]
    Duplicate {
        twin: Box<AccessRequest>,
        message: String,
    },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<PlanError> for RequestError {
    fn from(err: PlanError) -> Self {
        match err {
            PlanError::Refused(refusal) => RequestError::Refused(refusal),
            PlanError::Store(err) => RequestError::Store(err),
        }
    }
}

/// What creating a request came to.
#[derive(Debug)]
pub struct Created {
    pub request: AccessRequest,
    /// False when the idempotency key returned an earlier request.
    pub new: bool,
}

/// How a new request is approved.
#[derive(Debug, Clone)]
pub enum Approval {
    /// As the org's `auto_approve` says: approved, or waiting for an approver.
    Policy,
    /// Approved already, by `by` for `reason` (a SCIM client, whose identity provider is where
    /// the assignment was decided).
    Given { by: String, reason: String },
}

/// Plans and stores a request made by the token `caller`, approved as the org's policy says.
pub async fn create(
    store: &dyn Store,
    org_config: &OrgConfig,
    org: &OrgRecord,
    caller: &str,
    input: RequestInput,
    idempotency_key: Option<String>,
) -> Result<Created, RequestError> {
    create_with(
        store,
        org_config,
        org,
        caller,
        input,
        idempotency_key,
        Approval::Policy,
    )
    .await
}

/// Plans and stores a request made by the token `caller`, approved as `approval` says.
pub async fn create_with(
    store: &dyn Store,
    org_config: &OrgConfig,
    org: &OrgRecord,
    caller: &str,
    input: RequestInput,
    idempotency_key: Option<String>,
    approval: Approval,
) -> Result<Created, RequestError> {
    let input_json = serde_json::to_value(&input).expect("request input serialises");
    if let Some(key) = &idempotency_key {
        // Before planning: the first request may have been carried out since, and planning
        // it again would refuse it as already done.
        if let Some(first) = store.request_by_key(org.id, caller, key).await? {
            return same_key(first, &input_json, key);
        }
    }
    let now = chrono::Utc::now();
    let writes = crate::org::writes_for(org_config);
    let planned = plan::plan(store, org.id, &input, &*writes, now).await?;
    let (auto, approver, reason) = match approval {
        Approval::Policy => (
            org_config
                .auto_approve
                .iter()
                .any(|a| a == input.action.as_str()),
            "auto-approve".to_owned(),
            format!("org `{}` auto-approves {}", org.name, input.action),
        ),
        Approval::Given { by, reason } => (true, by, reason),
    };
    let requester = input
        .requester
        .clone()
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| caller.to_owned());
    let plan = serde_json::to_value(&planned.plan).expect("plans serialise");
    let mut audit = vec![AuditEvent {
        actor: caller.to_owned(),
        org: Some(org.name.clone()),
        request_id: None,
        event: "request_created".into(),
        data: json!({
            "action": input.action,
            "requester": requester,
            "summary": planned.plan.summary,
            "write": planned.plan.write,
            "justification": input.justification,
            "ticket": input.ticket,
        }),
    }];
    if auto {
        audit.push(AuditEvent {
            actor: approver.clone(),
            org: Some(org.name.clone()),
            request_id: None,
            event: "request_approved".into(),
            data: json!({ "reason": reason }),
        });
    }
    let new = NewRequest {
        org: org.id,
        action: input.action.as_str().to_owned(),
        state: if auto {
            RequestState::Approved
        } else {
            RequestState::PendingApproval
        },
        account_id: planned.account_id,
        entitlement_id: planned.entitlement_id,
        requester,
        created_by: caller.to_owned(),
        approver: auto.then_some(approver),
        justification: input.justification.clone(),
        ticket: input.ticket.clone(),
        expires_at: planned.expires_at,
        idempotency_key: idempotency_key.clone(),
        input: input_json.clone(),
        plan,
    };
    match store.insert_request(&new, &audit).await? {
        Inserted::Created(request) => Ok(Created { request, new: true }),
        // A concurrent POST with the same key won the race.
        Inserted::Existing(first) | Inserted::KeyReused(first) => same_key(
            first,
            &input_json,
            idempotency_key.as_deref().unwrap_or_default(),
        ),
        // A retry of a POST whose first attempt is still open.
        Inserted::Duplicate(twin)
            if twin.idempotency_key.is_some()
                && twin.idempotency_key == idempotency_key
                && twin.created_by == caller =>
        {
            same_key(
                twin,
                &input_json,
                idempotency_key.as_deref().unwrap_or_default(),
            )
        }
        Inserted::Duplicate(twin) => Err(RequestError::Duplicate {
            message: format!(
                "request {} already asks for this and is {}; wait for it, or cancel it first",
                twin.id, twin.state
            ),
            twin: Box::new(twin),
        }),
    }
}

fn same_key(
    first: AccessRequest,
    input: &serde_json::Value,
    key: &str,
) -> Result<Created, RequestError> {
    if &first.input == input {
        Ok(Created {
            request: first,
            new: false,
        })
    } else {
        Err(RequestError::Conflict {
            code: "idempotency_key_reused",
            message: format!(
                "the Idempotency-Key `{key}` was used for request {} with a different body; use a new key for a new request",
                first.id
            ),
        })
    }
}

/// What a reviewer does to a pending request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
    Cancel,
}

impl Decision {
    fn event(self) -> &'static str {
        match self {
            Decision::Approve => "request_approved",
            Decision::Reject => "request_rejected",
            Decision::Cancel => "request_cancelled",
        }
    }
}

/// Approves, rejects or cancels request `id` as the token `caller`. A requester (or the token
/// that made the request) cannot approve it. A request is cancelled by the token that made it,
/// or by an approver (`approver` says the caller is one): another requester's token cannot
/// withdraw what someone else asked for, nor stop what an approver approved.
pub async fn decide(
    store: &dyn Store,
    org: &OrgRecord,
    id: i64,
    caller: &str,
    approver: bool,
    decision: Decision,
    comment: Option<String>,
) -> Result<AccessRequest, RequestError> {
    let request = store.get_request(org.id, id).await?.ok_or_else(|| {
        RequestError::NotFound(format!("no access request {id} in org `{}`", org.name))
    })?;
    if decision == Decision::Approve
        && (request.requester == caller || request.created_by == caller)
    {
        return Err(RequestError::Forbidden(format!(
            "`{caller}` made or asked for request {id}, and nobody approves their own request; another approver must"
        )));
    }
    if decision == Decision::Cancel && request.created_by != caller && !approver {
        // As if it did not exist: another requester learns nothing of it (not even its maker).
        return Err(RequestError::NotFound(format!(
            "no access request {id} made by `{caller}` in org `{}`: a token cancels the requests it made (an approver's, any)",
            org.name
        )));
    }
    let (from, to): (&[RequestState], RequestState) = match decision {
        Decision::Approve => (&[RequestState::PendingApproval], RequestState::Approved),
        Decision::Reject => (&[RequestState::PendingApproval], RequestState::Rejected),
        Decision::Cancel => (
            &[RequestState::PendingApproval, RequestState::Approved],
            RequestState::Cancelled,
        ),
    };
    let transition = Transition {
        id,
        from,
        to,
        approver: matches!(decision, Decision::Approve | Decision::Reject).then_some(caller),
        audit: AuditEvent {
            actor: caller.to_owned(),
            org: Some(org.name.clone()),
            request_id: Some(id),
            event: decision.event().into(),
            data: json!({ "from": request.state, "comment": comment }),
        },
    };
    match store.transition_request(&transition).await? {
        Some(updated) => Ok(updated),
        None => {
            let now = store
                .get_request(org.id, id)
                .await?
                .map(|r| r.state)
                .unwrap_or(request.state);
            Err(RequestError::Conflict {
                code: "wrong_state",
                message: format!(
                    "request {id} is {now}; only a request that is {} can be {}",
                    from.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(" or "),
                    to
                ),
            })
        }
    }
}
