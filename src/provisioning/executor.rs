//! The executor: claims approved requests (and time-bound grants past their end), has the
//! org's connector make their writes, and ends each request exactly once.
//!
//! Exactly once rests on three things. A claim is a lease stored with the request, so work
//! of a worker that dies is taken over when the lease lapses, and a late answer of the dead
//! worker is ignored ([`ProvisioningStore::finish_requests`] only applies rows still claimed by
//! the caller). Every write is safe to repeat: the connector reports what it finds already
//! done as done ([`Applied::AlreadyDone`]). And a request's end state, its audit entry and
//! its effect on the stored model are written in one transaction.
//!
//! [`ProvisioningStore::finish_requests`]: crate::store::provisioning::ProvisioningStore::finish_requests

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use provost_connector::connector::ConnectorError;
use provost_connector::model::{Account, Entitlement};
use provost_connector::provisioner::{Applied, ModelLookup, Pending, Provisioner, Write, Writes};
use provost_connector::times::Timestamp;
use serde_json::{json, Value};
use tokio::sync::{Mutex, Notify};

use super::plan::Plan;
use crate::audit::AuditEvent;
use crate::config::{Config, OrgConfig};
use crate::metrics::Metrics;
use crate::provisioning::request::{AccessRequest, RequestState};
use crate::store::provisioning::Outcome;
use crate::store::{OrgId, Store};

/// How long without a new request ends a batch window.
const QUIET: Duration = Duration::from_millis(50);

pub struct Executor {
    config: Arc<Config>,
    store: Arc<dyn Store>,
    worker: String,
    /// Each org's connected provisioner, made on first use.
    provisioners: Mutex<HashMap<String, Arc<dyn Provisioner>>>,
    /// Where batch sizes and Salesforce's answers are counted.
    metrics: Arc<Metrics>,
}

/// A claimed request and the write that carries it out now.
struct Job {
    request: AccessRequest,
    write: Write,
    /// A time-bound grant past its end, being revoked.
    expiring: bool,
}

impl Executor {
    pub fn new(config: Arc<Config>, store: Arc<dyn Store>, worker: String) -> Executor {
        Executor {
            config,
            store,
            worker,
            provisioners: Mutex::new(HashMap::new()),
            metrics: Metrics::new(),
        }
    }

    /// Counts into `metrics` (those `/metrics` serves) instead of a private set.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Executor {
        self.metrics = metrics;
        self
    }

    /// Runs until the task is aborted: a pass over every org whenever `wake` is notified (a
    /// request was approved) or the poll interval passes.
    pub async fn run(self: Arc<Self>, wake: Arc<Notify>) {
        let poll = Duration::from_millis(self.config.provisioning.poll_interval_ms.max(10));
        let window = Duration::from_millis(self.config.provisioning.batch_window_ms);
        tracing::info!(worker = %self.worker, "executor on");
        loop {
            match self.run_once().await {
                Ok(0) => {}
                Ok(ended) => tracing::info!(requests = ended, "executor pass done"),
                Err(err) => tracing::warn!(error = format!("{err:#}"), "executor pass failed"),
            }
            let woken = tokio::select! {
                _ = wake.notified() => true,
                _ = tokio::time::sleep(poll) => false,
            };
            if woken && !window.is_zero() {
                linger(&wake, window).await;
            }
        }
    }

    /// One pass: every org's work that is due when its claim is made. Returns how many requests ended
    /// or were rescheduled.
    pub async fn run_once(&self) -> anyhow::Result<usize> {
        let mut total = 0;
        let mut first_error = None;
        for org in &self.config.orgs {
            match self.run_org(org).await {
                Ok(n) => total += n,
                Err(err) => {
                    tracing::warn!(org = %org.name, error = format!("{err:#}"), "executing requests failed");
                    first_error.get_or_insert(err);
                }
            }
        }
        match first_error {
            Some(err) if total == 0 => Err(err),
            _ => Ok(total),
        }
    }

    async fn run_org(&self, org: &OrgConfig) -> anyhow::Result<usize> {
        let record = self.store.ensure_org(&org.name).await?;
        let lease =
            chrono::TimeDelta::seconds(i64::from(self.config.provisioning.claim_lease_seconds));
        let limit = self.config.provisioning.claim_limit.clamp(1, 10_000);
        let mut total = 0;
        loop {
            let claimed = self
                .store
                .claim_requests(record.id, &org.name, &self.worker, limit, lease)
                .await?;
            if claimed.is_empty() {
                return Ok(total);
            }
            // A full claim means more is waiting now; a partial one took all that was due, and
            // what arrived meanwhile is left to the next pass (after the batch window) rather
            // than claimed a few at a time, a collection call each.
            let full = claimed.len() >= limit as usize;
            self.metrics.observe_batch(&org.name, claimed.len());
            let outcomes = self.execute(org, record.id, claimed).await;
            total += outcomes.len();
            self.store
                .finish_requests(record.id, &self.worker, &outcomes)
                .await?;
            if !full {
                return Ok(total);
            }
        }
    }

    async fn provisioner(&self, org: &OrgConfig) -> anyhow::Result<Arc<dyn Provisioner>> {
        let mut provisioners = self.provisioners.lock().await;
        if let Some(provisioner) = provisioners.get(&org.name) {
            return Ok(provisioner.clone());
        }
        let provisioner = crate::org::provisioner_for(&self.config, org, &self.store)
            .await
            .with_context(|| format!("connecting to org `{}`", org.name))?;
        provisioners.insert(org.name.clone(), provisioner.clone());
        Ok(provisioner)
    }

    /// Carries out claimed requests; never fails as a whole: what could not be done is
    /// rescheduled or failed request by request. A span (and a trace) per batch: a pass that
    /// found nothing to do makes none.
    #[tracing::instrument(name = "execute", skip_all, fields(org = %org.name, worker = %self.worker, batch = claimed.len(), trace_id = tracing::field::Empty))]
    async fn execute(
        &self,
        org: &OrgConfig,
        org_id: OrgId,
        claimed: Vec<AccessRequest>,
    ) -> Vec<Outcome> {
        crate::telemetry::record_trace_id(&tracing::Span::current());
        let writes = crate::org::writes_for(org);
        let mut outcomes = Vec::with_capacity(claimed.len());
        let mut jobs = Vec::with_capacity(claimed.len());
        for request in claimed {
            match job_of(request, &*writes) {
                Ok(job) => jobs.push(job),
                Err(unusable) => {
                    let (request, reason) = *unusable;
                    let job = Job {
                        write: Value::Null,
                        expiring: request.state == RequestState::Expiring,
                        request,
                    };
                    let end = Applied::Refused {
                        reason,
                        answer: Value::Null,
                        code: None,
                    };
                    outcomes.push(self.outcome_of(org, org_id, &*writes, &job, end).await);
                }
            }
        }
        if jobs.is_empty() {
            return outcomes;
        }
        let ends = match self.provisioner(org).await {
            Ok(provisioner) => self.apply(org, &*provisioner, &jobs).await,
            Err(err) => {
                let reason = format!("{err:#}");
                jobs.iter()
                    .map(|_| Applied::RetryLater {
                        reason: reason.clone(),
                        code: None,
                    })
                    .collect()
            }
        };
        for (job, end) in jobs.iter().zip(ends) {
            outcomes.push(self.outcome_of(org, org_id, &*writes, job, end).await);
        }
        outcomes
    }

    /// Has the provisioner make the jobs' writes, once the audit log shows them: nothing is
    /// written to the org that the audit log does not show.
    #[tracing::instrument(name = "apply", skip_all, fields(requests = ?jobs.iter().map(|job| job.request.id).collect::<Vec<_>>()))]
    async fn apply(
        &self,
        org: &OrgConfig,
        provisioner: &dyn Provisioner,
        jobs: &[Job],
    ) -> Vec<Applied> {
        let request_ids: Vec<i64> = jobs.iter().map(|job| job.request.id).collect();
        if let Err(err) = self
            .store
            .append_audit(&[AuditEvent {
                actor: self.actor(),
                org: Some(org.name.clone()),
                request_id: None,
                event: "salesforce_write_sent".into(),
                data: json!({ "requests": request_ids, "records": jobs.len() }),
            }])
            .await
        {
            let reason = format!("the audit log could not be written, so nothing was sent: {err}");
            return jobs
                .iter()
                .map(|_| Applied::RetryLater {
                    reason: reason.clone(),
                    code: None,
                })
                .collect();
        }
        let pending: Vec<Pending<'_>> = jobs
            .iter()
            .map(|job| Pending {
                write: &job.write,
                attempt: job.request.attempts,
                requested_at: job.request.created_at,
            })
            .collect();
        let ends = provisioner.apply(&pending).await;
        for end in &ends {
            let (outcome, code) = match end {
                Applied::Done { .. } => ("done", None),
                Applied::AlreadyDone { .. } => ("already_done", None),
                Applied::Refused { code, .. } => ("refused", code.as_deref()),
                Applied::RetryLater { code, .. } => ("retry_later", code.as_deref()),
            };
            self.metrics.observe_write(&org.name, outcome, code);
        }
        ends
    }

    fn actor(&self) -> String {
        format!("executor:{}", self.worker)
    }

    /// The stored end of a job: its state, result, audit entry and effects.
    async fn outcome_of(
        &self,
        org: &OrgConfig,
        org_id: OrgId,
        writes: &dyn Writes,
        job: &Job,
        end: Applied,
    ) -> Outcome {
        let request = &job.request;
        let now = chrono::Utc::now();
        let audit = |event: &str, data: Value| AuditEvent {
            actor: self.actor(),
            org: Some(org.name.clone()),
            request_id: Some(request.id),
            event: event.to_owned(),
            data,
        };
        let max = i64::from(self.config.provisioning.max_attempts.max(1));
        let (record, answer, note) = match end {
            Applied::Done { record, answer } => (record, answer, None),
            Applied::AlreadyDone {
                record,
                answer,
                note,
            } => (record, answer, Some(note)),
            Applied::RetryLater { reason, .. } => return self.retry(job, reason, now, max, audit),
            Applied::Refused { reason, answer, .. } => {
                return self.failed(job, reason, answer, now, audit)
            }
        };
        let model = ModelOf {
            store: &*self.store,
            org: org_id,
        };
        let effects = match writes.effects(&job.write, record.as_deref(), &model).await {
            Ok(effects) => effects,
            Err(err) => {
                // The org has it; the next sync brings it into the store.
                tracing::warn!(request = request.id, error = %err, "reading the stored model for a request's effects failed");
                Vec::new()
            }
        };
        let data = json!({
            "record_id": record,
            "salesforce": answer,
            "note": note,
            "write": job.write,
        });
        if job.expiring {
            let mut result = request.result.clone().unwrap_or_else(|| json!({}));
            result["revoked_at_expiry"] = data.clone();
            Outcome {
                id: request.id,
                state: RequestState::Expired,
                result: Some(result),
                error: None,
                next_attempt_at: None,
                effects,
                audit: audit("request_expired", data),
            }
        } else {
            Outcome {
                id: request.id,
                state: RequestState::Completed,
                result: Some(data.clone()),
                error: None,
                next_attempt_at: None,
                effects,
                audit: audit("request_completed", data),
            }
        }
    }

    /// A job to try again later, or given up on after the most attempts.
    fn retry(
        &self,
        job: &Job,
        message: String,
        now: Timestamp,
        max: i64,
        audit: impl Fn(&str, Value) -> AuditEvent,
    ) -> Outcome {
        let request = &job.request;
        if job.expiring {
            return Outcome {
                id: request.id,
                state: RequestState::Completed,
                result: None,
                error: Some(format!(
                    "revoking at expiry failed, to be tried again: {message}"
                )),
                next_attempt_at: Some(now + backoff(request.attempts)),
                effects: Vec::new(),
                audit: audit(
                    "expiry_retry_scheduled",
                    json!({ "error": message, "attempt": request.attempts }),
                ),
            };
        }
        if request.attempts < max {
            let at = now + backoff(request.attempts);
            return Outcome {
                id: request.id,
                state: RequestState::Approved,
                result: None,
                error: Some(format!(
                    "attempt {} of {max} failed, to be tried again: {message}",
                    request.attempts
                )),
                next_attempt_at: Some(at),
                effects: Vec::new(),
                audit: audit(
                    "retry_scheduled",
                    json!({ "error": message, "attempt": request.attempts, "next_attempt_at": crate::util::times::rfc3339(at) }),
                ),
            };
        }
        Outcome {
            id: request.id,
            state: RequestState::Failed,
            result: None,
            error: Some(format!(
                "gave up after {} attempts; the last failure: {message}",
                request.attempts
            )),
            next_attempt_at: None,
            effects: Vec::new(),
            audit: audit(
                "request_failed",
                json!({ "error": message, "attempts": request.attempts }),
            ),
        }
    }

    /// A job the org refused: failed, or for a grant's revocation at its end, tried again in
    /// an hour (the grant must not outlive its end because of one refusal).
    fn failed(
        &self,
        job: &Job,
        message: String,
        raw: Value,
        now: Timestamp,
        audit: impl Fn(&str, Value) -> AuditEvent,
    ) -> Outcome {
        let request = &job.request;
        if job.expiring {
            return Outcome {
                id: request.id,
                state: RequestState::Completed,
                result: None,
                error: Some(format!(
                    "revoking at expiry failed; tried again in an hour: {message}"
                )),
                next_attempt_at: Some(now + chrono::TimeDelta::hours(1)),
                effects: Vec::new(),
                audit: audit(
                    "expiry_retry_scheduled",
                    json!({ "error": message, "salesforce": raw }),
                ),
            };
        }
        Outcome {
            id: request.id,
            state: RequestState::Failed,
            result: Some(json!({ "salesforce": raw, "write": job.write })),
            error: Some(message.clone()),
            next_attempt_at: None,
            effects: Vec::new(),
            audit: audit(
                "request_failed",
                json!({ "error": message, "salesforce": raw }),
            ),
        }
    }
}

/// The stored model of one org, as a connector reads it to say what a write did.
struct ModelOf<'a> {
    store: &'a dyn Store,
    org: OrgId,
}

#[async_trait]
impl ModelLookup for ModelOf<'_> {
    async fn account(&self, id: &str) -> Result<Option<Account>, ConnectorError> {
        self.store
            .get_account(self.org, id)
            .await
            .map_err(|err| ConnectorError::Other {
                message: err.to_string(),
            })
    }

    async fn entitlement(&self, id: &str) -> Result<Option<Entitlement>, ConnectorError> {
        self.store
            .get_entitlement(self.org, id)
            .await
            .map_err(|err| ConnectorError::Other {
                message: err.to_string(),
            })
    }
}

/// Waits while requests keep arriving (each within [`QUIET`] of the last), for at most
/// `window`: a burst is claimed together, a lone request after [`QUIET`].
async fn linger(wake: &Notify, window: Duration) {
    let deadline = tokio::time::Instant::now() + window;
    loop {
        let quiet_until = (tokio::time::Instant::now() + QUIET).min(deadline);
        match tokio::time::timeout_at(quiet_until, wake.notified()).await {
            Ok(()) if tokio::time::Instant::now() < deadline => {}
            _ => return,
        }
    }
}

/// 1 s after the first attempt, doubling, at most 5 minutes.
fn backoff(attempts: i64) -> chrono::TimeDelta {
    let exponent = attempts.clamp(1, 10) - 1;
    chrono::TimeDelta::seconds((1_i64 << exponent).min(300))
}

/// The write a claimed request comes to: its plan's, or for a grant past its end, the write
/// that takes back the record it created.
fn job_of(
    request: AccessRequest,
    writes: &dyn Writes,
) -> Result<Job, Box<(AccessRequest, String)>> {
    let plan: Plan = match serde_json::from_value(request.plan.clone()) {
        Ok(plan) => plan,
        Err(err) => {
            let message = format!("the stored plan cannot be read ({err}); make the request again");
            return Err(Box::new((request, message)));
        }
    };
    if request.state != RequestState::Expiring {
        return Ok(Job {
            request,
            write: plan.write,
            expiring: false,
        });
    }
    let record = request
        .result
        .as_ref()
        .and_then(|r| r["record_id"].as_str())
        .map(str::to_owned);
    match record.and_then(|id| writes.undo(&plan.write, &id)) {
        Some(write) => Ok(Job {
            write,
            request,
            expiring: true,
        }),
        None => {
            let message = "the grant's record id is not on record, so it cannot be revoked at expiry; revoke it with a new request".to_owned();
            Err(Box::new((request, message)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_second_up_to_five_minutes() {
        assert_eq!(backoff(1), chrono::TimeDelta::seconds(1));
        assert_eq!(backoff(2), chrono::TimeDelta::seconds(2));
        assert_eq!(backoff(4), chrono::TimeDelta::seconds(8));
        assert_eq!(backoff(40), chrono::TimeDelta::seconds(300));
    }
}
