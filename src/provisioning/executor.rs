//! The executor: claims approved requests (and time-bound grants past their end), writes them
//! to Salesforce in collections of up to 200 records, and ends each request exactly once.
//!
//! Exactly once rests on three things. A claim is a lease stored with the request, so work
//! of a worker that dies is taken over when the lease lapses, and a late answer of the dead
//! worker is ignored ([`ProvisioningStore::finish_requests`] only applies rows still claimed by
//! the caller). Every write is safe to repeat: an update sets the same values again, a delete
//! of what is gone counts as done, and a create whose record already exists (Salesforce's
//! `DUPLICATE_VALUE`) is reconciled by a query and counts as done, naming the record it found.
//! And a request's end state, its audit entry and its effect on the stored model are written
//! in one transaction.
//!
//! [`ProvisioningStore::finish_requests`]: crate::store::provisioning::ProvisioningStore::finish_requests

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use provost_salesforce::{SalesforceClient, SalesforceError};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;
use tokio::sync::{Mutex, Notify};

use super::effects;
use super::plan::{Method, Plan, Write};
use super::salesforce::{self as sf, Record, RecordResult, COLLECTION_SIZE};
use crate::audit::AuditEvent;
use crate::config::{Config, OrgConfig};
use crate::provisioning::request::{AccessRequest, RequestState};
use crate::store::provisioning::Outcome;
use crate::store::{OrgId, Store};

/// How far Salesforce's clock may be behind Provost's when a created user's `CreatedDate` is
/// compared with its request's creation.
const CLOCK_SKEW: time::Duration = time::Duration::minutes(15);

/// How long without a new request ends a batch window.
const QUIET: Duration = Duration::from_millis(50);

pub struct Executor {
    config: Arc<Config>,
    store: Arc<dyn Store>,
    worker: String,
    clients: Mutex<HashMap<String, Arc<SalesforceClient>>>,
}

/// A claimed request and the write that carries it out now.
struct Job {
    request: AccessRequest,
    write: Write,
    /// A time-bound grant past its end, being revoked.
    expiring: bool,
}

/// How one job ended this time.
enum JobEnd {
    Done {
        record_id: Option<String>,
        raw: Value,
        note: Option<&'static str>,
    },
    Retry(String),
    Failed {
        message: String,
        raw: Value,
    },
}

impl Executor {
    pub fn new(config: Arc<Config>, store: Arc<dyn Store>, worker: String) -> Executor {
        Executor {
            config,
            store,
            worker,
            clients: Mutex::new(HashMap::new()),
        }
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
            time::Duration::seconds(i64::from(self.config.provisioning.claim_lease_seconds));
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

    async fn client(&self, org: &OrgConfig) -> anyhow::Result<Arc<SalesforceClient>> {
        let mut clients = self.clients.lock().await;
        if let Some(client) = clients.get(&org.name) {
            return Ok(client.clone());
        }
        let secrets = crate::org::preflight::secrets_for(&self.config, org)?;
        let client = Arc::new(
            crate::org::client_for(org, &self.store, secrets.as_ref())
                .await
                .with_context(|| format!("connecting to org `{}`", org.name))?,
        );
        clients.insert(org.name.clone(), client.clone());
        Ok(client)
    }

    /// Carries out claimed requests; never fails as a whole: what could not be done is
    /// rescheduled or failed request by request.
    async fn execute(
        &self,
        org: &OrgConfig,
        org_id: OrgId,
        claimed: Vec<AccessRequest>,
    ) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(claimed.len());
        let mut jobs = Vec::with_capacity(claimed.len());
        for request in claimed {
            match job_of(request) {
                Ok(job) => jobs.push(job),
                Err(unusable) => {
                    let (request, message) = *unusable;
                    let job = Job {
                        write: empty_write(),
                        expiring: request.state == RequestState::Expiring,
                        request,
                    };
                    let end = JobEnd::Failed {
                        message,
                        raw: Value::Null,
                    };
                    outcomes.push(self.outcome_of(org, org_id, &job, end).await);
                }
            }
        }
        let client = match self.client(org).await {
            Ok(client) => client,
            Err(err) => {
                let message = format!("{err:#}");
                for job in &jobs {
                    outcomes.push(
                        self.outcome_of(org, org_id, job, JobEnd::Retry(message.clone()))
                            .await,
                    );
                }
                return outcomes;
            }
        };
        let ends = self.write_all(org, &client, &mut jobs).await;
        for (job, end) in jobs.iter().zip(ends) {
            outcomes.push(self.outcome_of(org, org_id, job, end).await);
        }
        if let Err(err) = crate::org::keep_rotated_token(
            org,
            &client,
            &self.store,
            crate::org::preflight::secrets_for(&self.config, org)
                .ok()
                .flatten()
                .as_ref(),
        )
        .await
        {
            tracing::warn!(org = %org.name, error = format!("{err:#}"), "keeping the rotated refresh token failed");
        }
        outcomes
    }

    /// Writes every job, grouped by method and object into collections; one end per job.
    async fn write_all(
        &self,
        org: &OrgConfig,
        client: &SalesforceClient,
        jobs: &mut [Job],
    ) -> Vec<JobEnd> {
        let mut ends: Vec<Option<JobEnd>> = jobs.iter().map(|_| None).collect();
        // Freezing writes the user's UserLogin record: find those ids first.
        let users: Vec<String> = jobs
            .iter()
            .filter_map(|job| job.write.login_of.clone())
            .collect();
        if !users.is_empty() {
            match sf::login_ids(client, &users).await {
                Ok(logins) => {
                    for (index, job) in jobs.iter_mut().enumerate() {
                        if let Some(user) = job.write.login_of.clone() {
                            match logins.get(&user) {
                                Some(login) => job.write.id = Some(login.clone()),
                                None => {
                                    ends[index] = Some(JobEnd::Failed {
                                        message: format!("Salesforce has no UserLogin record for the user {user}, so it cannot be frozen or unfrozen (the user may be gone: sync the org)"),
                                        raw: Value::Null,
                                    })
                                }
                            }
                        }
                    }
                }
                Err(err) => {
                    let transient = sf::call_is_transient(&err);
                    for (index, job) in jobs.iter().enumerate() {
                        if job.write.login_of.is_some() {
                            ends[index] = Some(call_failure(&err, transient));
                        }
                    }
                }
            }
        }
        let mut groups: BTreeMap<(u8, String), Vec<usize>> = BTreeMap::new();
        for (index, job) in jobs.iter().enumerate() {
            if ends[index].is_none() {
                let order = match job.write.method {
                    Method::Create => 0,
                    Method::Update => 1,
                    Method::Delete => 2,
                };
                groups
                    .entry((order, job.write.sobject.clone()))
                    .or_default()
                    .push(index);
            }
        }
        for ((_, sobject), indices) in groups {
            for chunk in indices.chunks(COLLECTION_SIZE) {
                let method = jobs[chunk[0]].write.method;
                let records: Vec<Record<'_>> = chunk
                    .iter()
                    .map(|i| Record {
                        id: jobs[*i].write.id.as_deref(),
                        fields: &jobs[*i].write.fields,
                    })
                    .collect();
                let request_ids: Vec<i64> = chunk.iter().map(|i| jobs[*i].request.id).collect();
                if let Err(err) = self
                    .store
                    .append_audit(&[AuditEvent {
                        actor: self.actor(),
                        org: Some(org.name.clone()),
                        request_id: None,
                        event: "salesforce_write_sent".into(),
                        data: json!({
                            "method": method,
                            "sobject": sobject,
                            "requests": request_ids,
                            "records": records.len(),
                        }),
                    }])
                    .await
                {
                    // Nothing is written to Salesforce that the audit log does not show.
                    let message =
                        format!("the audit log could not be written, so nothing was sent: {err}");
                    for i in chunk {
                        ends[*i] = Some(JobEnd::Retry(message.clone()));
                    }
                    continue;
                }
                match sf::write_collection(client, method, &sobject, &records).await {
                    Ok(results) => {
                        let chunk_ends = self
                            .reconcile(client, &sobject, method, chunk, jobs, results)
                            .await;
                        for (i, end) in chunk.iter().zip(chunk_ends) {
                            ends[*i] = Some(end);
                        }
                    }
                    Err(err) => {
                        let transient = sf::call_is_transient(&err);
                        for i in chunk {
                            ends[*i] = Some(call_failure(&err, transient));
                        }
                    }
                }
            }
        }
        ends.into_iter()
            .map(|end| end.unwrap_or_else(|| JobEnd::Retry("not attempted".into())))
            .collect()
    }

    /// Maps each record's result to the job's end; duplicates of a create are looked up, as
    /// the write may have been made before (by a worker that died before recording it).
    async fn reconcile(
        &self,
        client: &SalesforceClient,
        sobject: &str,
        method: Method,
        chunk: &[usize],
        jobs: &[Job],
        results: Vec<RecordResult>,
    ) -> Vec<JobEnd> {
        let duplicate = |r: &RecordResult| {
            method == Method::Create
                && matches!(
                    r.code.as_deref(),
                    Some("DUPLICATE_VALUE" | "DUPLICATE_USERNAME")
                )
        };
        if sobject == "User" {
            return self
                .reconcile_users(client, chunk, jobs, results, duplicate)
                .await;
        }
        let duplicates: Vec<usize> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| duplicate(r))
            .map(|(at, _)| at)
            .collect();
        let mut existing: HashMap<usize, Option<String>> = HashMap::new();
        let mut lookup_error = None;
        if !duplicates.is_empty() {
            let keys: Vec<Map<String, Value>> = duplicates
                .iter()
                .map(|at| unique_key(&jobs[chunk[*at]].write))
                .collect();
            match sf::find_existing(client, sobject, &keys).await {
                Ok(found) => existing.extend(duplicates.iter().copied().zip(found)),
                Err(err) => lookup_error = Some(err),
            }
        }
        results
            .into_iter()
            .enumerate()
            .map(|(at, result)| {
                if result.success {
                    return record_end(result, &jobs[chunk[at]].write);
                }
                let code = result.code.clone().unwrap_or_default();
                let message = result.message.clone().unwrap_or_default();
                if duplicate(&result) {
                    if let Some(err) = &lookup_error {
                        return JobEnd::Retry(format!("Salesforce answered {code} ({message}) and looking up the existing record failed: {err}"));
                    }
                    if let Some(Some(id)) = existing.get(&at) {
                        return JobEnd::Done {
                            record_id: Some(id.clone()),
                            raw: result.raw,
                            note: Some("already present in Salesforce: counted as done"),
                        };
                    }
                }
                if method == Method::Delete
                    && matches!(code.as_str(), "ENTITY_IS_DELETED" | "NOT_FOUND" | "INVALID_CROSS_REFERENCE_KEY" | "INVALID_ID_FIELD")
                {
                    return JobEnd::Done {
                        record_id: jobs[chunk[at]].write.id.clone(),
                        raw: result.raw,
                        note: Some("already gone from Salesforce: counted as done"),
                    };
                }
                record_end(result, &jobs[chunk[at]].write)
            })
            .collect()
    }

    /// The ends of user creates. A user whose username is taken was created by this request
    /// only if an earlier attempt may have sent it (this is not the first), Salesforce made it
    /// after the request was, and it holds exactly what the request wrote: then the request is
    /// done, naming it. Otherwise the username belongs to someone else, and the request fails
    /// saying so: counting it done would record the request's profile and names for a user
    /// Salesforce never changed.
    async fn reconcile_users(
        &self,
        client: &SalesforceClient,
        chunk: &[usize],
        jobs: &[Job],
        results: Vec<RecordResult>,
        duplicate: impl Fn(&RecordResult) -> bool,
    ) -> Vec<JobEnd> {
        let taken: Vec<String> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| duplicate(r))
            .filter_map(|(at, _)| jobs[chunk[at]].write.fields["Username"].as_str())
            .map(str::to_owned)
            .collect();
        let holders = match sf::users_named(client, &taken).await {
            Ok(found) => found,
            Err(err) => {
                return results
                    .into_iter()
                    .enumerate()
                    .map(|(at, result)| match duplicate(&result) {
                        true => JobEnd::Retry(format!(
                            "Salesforce answered {} and looking up the user holding the username failed: {err}",
                            result.code.unwrap_or_default()
                        )),
                        false => record_end(result, &jobs[chunk[at]].write),
                    })
                    .collect();
            }
        };
        results
            .into_iter()
            .enumerate()
            .map(|(at, result)| {
                let job = &jobs[chunk[at]];
                if !duplicate(&result) {
                    return record_end(result, &job.write);
                }
                let username = job.write.fields["Username"].as_str().unwrap_or_default();
                let holder = holders.iter().find(|u| {
                    u["Username"]
                        .as_str()
                        .is_some_and(|name| name.eq_ignore_ascii_case(username))
                });
                match holder {
                    Some(user) if created_by(&job.request, &job.write, user) => JobEnd::Done {
                        record_id: user["Id"].as_str().map(str::to_owned),
                        raw: result.raw,
                        note: Some("created by an earlier attempt of this request: counted as done"),
                    },
                    Some(user) => JobEnd::Failed {
                        message: format!(
                            "Salesforce answered {}: it already has a user named `{username}` ({}, created {}), which this request did not create; nothing was changed. Choose another username, or manage that user by its id",
                            result.code.as_deref().unwrap_or_default(),
                            user["Id"].as_str().unwrap_or("?"),
                            user["CreatedDate"].as_str().unwrap_or("?")
                        ),
                        raw: result.raw,
                    },
                    None if result.code.as_deref() == Some("DUPLICATE_USERNAME") => JobEnd::Failed {
                        message: format!(
                            "Salesforce answered DUPLICATE_USERNAME: the username `{username}` is taken, by a user of another org (usernames are unique across every Salesforce org) or one the connected user cannot see: nothing was changed; choose another username",
                        ),
                        raw: result.raw,
                    },
                    // Another of the user's unique fields (FederationIdentifier, a nickname).
                    None => record_end(result, &job.write),
                }
            })
            .collect()
    }

    fn actor(&self) -> String {
        format!("executor:{}", self.worker)
    }

    /// The stored end of a job: its state, result, audit entry and effects.
    async fn outcome_of(&self, org: &OrgConfig, org_id: OrgId, job: &Job, end: JobEnd) -> Outcome {
        let request = &job.request;
        let now = OffsetDateTime::now_utc();
        let audit = |event: &str, data: Value| AuditEvent {
            actor: self.actor(),
            org: Some(org.name.clone()),
            request_id: Some(request.id),
            event: event.to_owned(),
            data,
        };
        let max = i64::from(self.config.provisioning.max_attempts.max(1));
        match end {
            JobEnd::Done {
                record_id,
                raw,
                note,
            } => {
                let effects = match effects::of_write(
                    &*self.store,
                    org_id,
                    request,
                    &job.write,
                    record_id.as_deref(),
                )
                .await
                {
                    Ok(effects) => effects,
                    Err(err) => {
                        // Salesforce has it; the next sync brings it into the store.
                        tracing::warn!(request = request.id, error = %err, "reading the stored model for a request's effects failed");
                        Vec::new()
                    }
                };
                let data = json!({
                    "record_id": record_id,
                    "salesforce": raw,
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
            JobEnd::Retry(message) if job.expiring => Outcome {
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
            },
            JobEnd::Retry(message) if request.attempts < max => {
                let at = now + backoff(request.attempts);
                Outcome {
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
                }
            }
            JobEnd::Retry(message) => Outcome {
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
            },
            JobEnd::Failed { message, raw } if job.expiring => Outcome {
                id: request.id,
                state: RequestState::Completed,
                result: None,
                error: Some(format!(
                    "revoking at expiry failed; tried again in an hour: {message}"
                )),
                next_attempt_at: Some(now + time::Duration::hours(1)),
                effects: Vec::new(),
                audit: audit(
                    "expiry_retry_scheduled",
                    json!({ "error": message, "salesforce": raw }),
                ),
            },
            JobEnd::Failed { message, raw } => Outcome {
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
            },
        }
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
fn backoff(attempts: i64) -> time::Duration {
    let exponent = attempts.clamp(1, 10) - 1;
    time::Duration::seconds((1_i64 << exponent).min(300))
}

fn empty_write() -> Write {
    Write {
        method: Method::Update,
        sobject: String::new(),
        id: None,
        fields: Map::new(),
        login_of: None,
    }
}

fn call_failure(err: &SalesforceError, transient: bool) -> JobEnd {
    if transient {
        JobEnd::Retry(err.to_string())
    } else {
        let explanation = err
            .code()
            .map(sf::explain)
            .unwrap_or("Salesforce refused the call.");
        JobEnd::Failed {
            message: format!("{err}. {explanation}"),
            raw: Value::Null,
        }
    }
}

/// The write a claimed request comes to: its plan's, or for a grant past its end, the delete
/// of the record it created.
fn job_of(request: AccessRequest) -> Result<Job, Box<(AccessRequest, String)>> {
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
    match record {
        Some(id) => Ok(Job {
            write: Write {
                method: Method::Delete,
                sobject: plan.write.sobject,
                id: Some(id),
                fields: Map::new(),
                login_of: None,
            },
            request,
            expiring: true,
        }),
        None => {
            let message = "the grant's record id is not on record, so it cannot be revoked at expiry; revoke it with a new request".to_owned();
            Err(Box::new((request, message)))
        }
    }
}

/// Whether `user` is the one `request` created in an earlier attempt: one may have been sent
/// (this is a later attempt), Salesforce made it after the request was made (give or take the
/// clocks' difference), and it holds every value the request wrote.
fn created_by(request: &AccessRequest, write: &Write, user: &Value) -> bool {
    let after_request = user["CreatedDate"]
        .as_str()
        .and_then(provost_salesforce::reader::parse_datetime)
        .is_some_and(|created| created >= request.created_at - CLOCK_SKEW);
    let same_values = write.fields.iter().all(|(field, wanted)| {
        let held = &user[field.as_str()];
        match (field.as_str(), wanted, held) {
            ("Username" | "Email", Value::String(w), Value::String(h)) => w.eq_ignore_ascii_case(h),
            ("ProfileId", Value::String(w), Value::String(h)) => {
                w.get(..15).is_some() && w.get(..15) == h.get(..15)
            }
            _ => wanted == held,
        }
    });
    request.attempts > 1 && after_request && same_values
}

/// The end of a record's write that needs no lookup: done, retried or failed by its code.
fn record_end(result: RecordResult, write: &Write) -> JobEnd {
    if result.success {
        return JobEnd::Done {
            record_id: result.id.clone().or_else(|| write.id.clone()),
            raw: result.raw,
            note: None,
        };
    }
    let code = result.code.clone().unwrap_or_default();
    let message = result.message.clone().unwrap_or_default();
    if sf::is_transient(&code) {
        return JobEnd::Retry(format!("Salesforce answered {code}: {message}"));
    }
    JobEnd::Failed {
        message: format!(
            "Salesforce answered {code}: {message}. {}",
            sf::explain(&code)
        ),
        raw: result.raw,
    }
}

/// The field values that make a created record unique, to find it when it already exists.
fn unique_key(write: &Write) -> Map<String, Value> {
    let keep: &[&str] = match write.sobject.as_str() {
        "User" => &["Username"],
        "PermissionSetAssignment" => &["AssigneeId", "PermissionSetId", "PermissionSetGroupId"],
        "GroupMember" => &["GroupId", "UserOrGroupId"],
        _ => &[],
    };
    write
        .fields
        .iter()
        .filter(|(name, value)| keep.contains(&name.as_str()) && !value.is_null())
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_second_up_to_five_minutes() {
        assert_eq!(backoff(1), time::Duration::seconds(1));
        assert_eq!(backoff(2), time::Duration::seconds(2));
        assert_eq!(backoff(4), time::Duration::seconds(8));
        assert_eq!(backoff(40), time::Duration::seconds(300));
    }

    #[test]
    fn an_assignment_is_found_again_by_assignee_and_set_only() {
        let write = Write {
            method: Method::Create,
            sobject: "PermissionSetAssignment".into(),
            id: None,
            fields: serde_json::from_value(json!({
                "AssigneeId": "005A", "PermissionSetId": "0PSA", "ExpirationDate": "2027-01-01T00:00:00Z"
            }))
            .unwrap(),
            login_of: None,
        };
        let key = unique_key(&write);
        assert_eq!(key.len(), 2);
        assert!(key.contains_key("AssigneeId") && key.contains_key("PermissionSetId"));
    }
}
