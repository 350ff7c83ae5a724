//! Provisioning for Salesforce: [`SalesforceWrites`] turns a change into the record write that
//! makes it (and says what a made write did to the stored model); [`SalesforceProvisioner`]
//! makes writes, grouped into record collections of up to 200, and reconciles what it finds
//! already done.
//!
//! Every write is safe to repeat: an update sets the same values again, a delete of what is
//! gone counts as done, and a create whose record already exists (Salesforce's
//! `DUPLICATE_VALUE`) is looked up and counts as done, naming the record found: except a user,
//! which counts as done only when it is provably the one this request created in an earlier
//! attempt (see [`created_by_earlier_attempt`]).

pub mod collections;
mod effects;
pub mod writes;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::TimeDelta;
use provost_connector::connector::ConnectorError;
use provost_connector::provisioner::{
    Applied, Change, Effect, ModelLookup, Pending, Provisioner, Writes,
};
use provost_connector::times::Timestamp;
use serde_json::{Map, Value};

use crate::{SalesforceClient, SalesforceError};
use collections::{Record, RecordResult, COLLECTION_SIZE};
pub use writes::{Method, UserDefaults, Write};

/// How far Salesforce's clock may be behind the core's when a created user's `CreatedDate` is
/// compared with when its request was made.
const CLOCK_SKEW: TimeDelta = TimeDelta::minutes(15);

/// Salesforce's writes, with the org's defaults for new users.
#[derive(Debug, Clone)]
pub struct SalesforceWrites {
    pub defaults: UserDefaults,
    /// The REST API version the org is spoken to at (`62.0`).
    pub api_version: String,
}

#[async_trait]
impl Writes for SalesforceWrites {
    fn prepare(&self, change: &Change) -> Value {
        serde_json::to_value(writes::prepare(change, &self.defaults)).expect("writes serialise")
    }

    /// `PermissionSetAssignment.ExpirationDate` exists from API version 52.0
    /// (shared/SALESFORCE.md); an older version would refuse it with INVALID_FIELD.
    fn can_expire(&self) -> Result<(), String> {
        let major = self
            .api_version
            .split('.')
            .next()
            .and_then(|major| major.parse::<u32>().ok());
        match major {
            Some(major) if major < 52 => Err(format!(
                "time-bound grants need Salesforce API version 52.0 or later (ExpirationDate on assignments); the org's api_version is {}: raise it in the configuration, or grant without expires_at",
                self.api_version
            )),
            _ => Ok(()),
        }
    }

    fn undo(&self, write: &Value, record: &str) -> Option<Value> {
        let write: Write = serde_json::from_value(write.clone()).ok()?;
        writes::undo(&write, record).map(|undo| serde_json::to_value(undo).expect("serialises"))
    }

    async fn effects(
        &self,
        write: &Value,
        record: Option<&str>,
        model: &dyn ModelLookup,
    ) -> Result<Vec<Effect>, ConnectorError> {
        let write: Write =
            serde_json::from_value(write.clone()).map_err(|err| ConnectorError::Other {
                message: format!("the write cannot be read: {err}"),
            })?;
        effects::of_write(&write, record, model).await
    }
}

/// Makes writes in an org through `client`.
pub struct SalesforceProvisioner {
    client: Arc<SalesforceClient>,
}

impl SalesforceProvisioner {
    pub fn new(client: Arc<SalesforceClient>) -> SalesforceProvisioner {
        SalesforceProvisioner { client }
    }

    pub fn client(&self) -> &Arc<SalesforceClient> {
        &self.client
    }
}

/// A write being made: what it is, and what the request knew of it.
struct Job {
    write: Write,
    attempt: i64,
    requested_at: Timestamp,
}

#[async_trait]
impl Provisioner for SalesforceProvisioner {
    async fn apply(&self, pending: &[Pending<'_>]) -> Vec<Applied> {
        let mut ends: Vec<Option<Applied>> = pending.iter().map(|_| None).collect();
        let mut jobs = Vec::with_capacity(pending.len());
        for (index, one) in pending.iter().enumerate() {
            match serde_json::from_value::<Write>(one.write.clone()) {
                Ok(write) => jobs.push(Job {
                    write,
                    attempt: one.attempt,
                    requested_at: one.requested_at,
                }),
                Err(err) => {
                    ends[index] = Some(Applied::Refused {
                        reason: format!(
                            "the stored write cannot be read ({err}); make the request again"
                        ),
                        answer: Value::Null,
                        code: None,
                    });
                    jobs.push(Job {
                        write: Write {
                            method: Method::Update,
                            sobject: String::new(),
                            id: None,
                            fields: Map::new(),
                            login_of: None,
                        },
                        attempt: one.attempt,
                        requested_at: one.requested_at,
                    });
                }
            }
        }
        self.write_all(&mut jobs, &mut ends).await;
        ends.into_iter()
            .map(|end| {
                end.unwrap_or_else(|| Applied::RetryLater {
                    reason: "not attempted".into(),
                    code: None,
                })
            })
            .collect()
    }

    fn calls(&self) -> u64 {
        self.client.calls()
    }
}

impl SalesforceProvisioner {
    /// Writes every job not ended yet, grouped by method and object into collections.
    async fn write_all(&self, jobs: &mut [Job], ends: &mut [Option<Applied>]) {
        let client = &*self.client;
        // Freezing writes the user's UserLogin record: find those ids first.
        let users: Vec<String> = jobs
            .iter()
            .zip(ends.iter())
            .filter(|(_, end)| end.is_none())
            .filter_map(|(job, _)| job.write.login_of.clone())
            .collect();
        if !users.is_empty() {
            match collections::login_ids(client, &users).await {
                Ok(logins) => {
                    for (index, job) in jobs.iter_mut().enumerate() {
                        if let Some(user) = job.write.login_of.clone() {
                            match logins.get(&user) {
                                Some(login) => job.write.id = Some(login.clone()),
                                None => {
                                    ends[index] = Some(Applied::Refused {
                                        reason: format!("Salesforce has no UserLogin record for the user {user}, so it cannot be frozen or unfrozen (the user may be gone: sync the org)"),
                                        answer: Value::Null,
                                        code: None,
                                    })
                                }
                            }
                        }
                    }
                }
                Err(err) => {
                    for (index, job) in jobs.iter().enumerate() {
                        if job.write.login_of.is_some() && ends[index].is_none() {
                            ends[index] = Some(call_failure(&err));
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
                match collections::write_collection(client, method, &sobject, &records).await {
                    Ok(results) => {
                        let chunk_ends =
                            self.reconcile(&sobject, method, chunk, jobs, results).await;
                        for (i, end) in chunk.iter().zip(chunk_ends) {
                            ends[*i] = Some(end);
                        }
                    }
                    Err(err) => {
                        for i in chunk {
                            ends[*i] = Some(call_failure(&err));
                        }
                    }
                }
            }
        }
    }

    /// Maps each record's result to the job's end; duplicates of a create are looked up, as
    /// the write may have been made before (by a worker that died before recording it).
    async fn reconcile(
        &self,
        sobject: &str,
        method: Method,
        chunk: &[usize],
        jobs: &[Job],
        results: Vec<RecordResult>,
    ) -> Vec<Applied> {
        let duplicate = |r: &RecordResult| {
            method == Method::Create
                && matches!(
                    r.code.as_deref(),
                    Some("DUPLICATE_VALUE" | "DUPLICATE_USERNAME")
                )
        };
        if sobject == "User" {
            return self.reconcile_users(chunk, jobs, results, duplicate).await;
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
            match collections::find_existing(&self.client, sobject, &keys).await {
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
                        return Applied::RetryLater {
                            reason: format!("Salesforce answered {code} ({message}) and looking up the existing record failed: {err}"),
                            code: Some(code),
                        };
                    }
                    if let Some(Some(id)) = existing.get(&at) {
                        return Applied::AlreadyDone {
                            record: Some(id.clone()),
                            answer: result.raw,
                            note: "already present in Salesforce: counted as done".into(),
                        };
                    }
                }
                if method == Method::Delete
                    && matches!(code.as_str(), "ENTITY_IS_DELETED" | "NOT_FOUND" | "INVALID_CROSS_REFERENCE_KEY" | "INVALID_ID_FIELD")
                {
                    return Applied::AlreadyDone {
                        record: jobs[chunk[at]].write.id.clone(),
                        answer: result.raw,
                        note: "already gone from Salesforce: counted as done".into(),
                    };
                }
                record_end(result, &jobs[chunk[at]].write)
            })
            .collect()
    }

    /// The ends of user creates. A user whose username is taken was created by this request
    /// only if [`created_by_earlier_attempt`]: then the request is done, naming it. Otherwise
    /// the username belongs to someone else, and the request fails saying so: counting it done
    /// would record the request's profile and names for a user Salesforce never changed.
    async fn reconcile_users(
        &self,
        chunk: &[usize],
        jobs: &[Job],
        results: Vec<RecordResult>,
        duplicate: impl Fn(&RecordResult) -> bool,
    ) -> Vec<Applied> {
        let taken: Vec<String> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| duplicate(r))
            .filter_map(|(at, _)| jobs[chunk[at]].write.fields["Username"].as_str())
            .map(str::to_owned)
            .collect();
        let holders = match collections::users_named(&self.client, &taken).await {
            Ok(found) => found,
            Err(err) => {
                return results
                    .into_iter()
                    .enumerate()
                    .map(|(at, result)| match duplicate(&result) {
                        true => Applied::RetryLater {
                            reason: format!(
                                "Salesforce answered {} and looking up the user holding the username failed: {err}",
                                result.code.as_deref().unwrap_or_default()
                            ),
                            code: result.code,
                        },
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
                    Some(user) if created_by_earlier_attempt(job, user) => Applied::AlreadyDone {
                        record: user["Id"].as_str().map(str::to_owned),
                        answer: result.raw,
                        note: "created by an earlier attempt of this request: counted as done".into(),
                    },
                    Some(user) => Applied::Refused {
                        reason: format!(
                            "Salesforce answered {}: it already has a user named `{username}` ({}, created {}), which this request did not create; nothing was changed. Choose another username, or manage that user by its id",
                            result.code.as_deref().unwrap_or_default(),
                            user["Id"].as_str().unwrap_or("?"),
                            user["CreatedDate"].as_str().unwrap_or("?")
                        ),
                        answer: result.raw,
                        code: result.code,
                    },
                    None if result.code.as_deref() == Some("DUPLICATE_USERNAME") => Applied::Refused {
                        reason: format!(
                            "Salesforce answered DUPLICATE_USERNAME: the username `{username}` is taken, by a user of another org (usernames are unique across every Salesforce org) or one the connected user cannot see: nothing was changed; choose another username",
                        ),
                        answer: result.raw,
                        code: result.code,
                    },
                    // Another of the user's unique fields (FederationIdentifier, a nickname).
                    None => record_end(result, &job.write),
                }
            })
            .collect()
    }
}

/// Whether `user` is the one `job`'s request created in an earlier attempt: one may have been
/// sent (this is a later attempt), Salesforce made it after the request was made (give or
/// take the clocks' difference), and it holds every value the request wrote.
fn created_by_earlier_attempt(job: &Job, user: &Value) -> bool {
    let after_request = user["CreatedDate"]
        .as_str()
        .and_then(crate::reader::parse_datetime)
        .is_some_and(|created| created >= job.requested_at - CLOCK_SKEW);
    let same_values = job.write.fields.iter().all(|(field, wanted)| {
        let held = &user[field.as_str()];
        match (field.as_str(), wanted, held) {
            ("Username" | "Email", Value::String(w), Value::String(h)) => w.eq_ignore_ascii_case(h),
            ("ProfileId", Value::String(w), Value::String(h)) => collections::same_id(w, h),
            _ => wanted == held,
        }
    });
    job.attempt > 1 && after_request && same_values
}

/// The end of a record's write that needs no lookup: done, retried or refused by its code.
fn record_end(result: RecordResult, write: &Write) -> Applied {
    if result.success {
        return Applied::Done {
            record: result.id.clone().or_else(|| write.id.clone()),
            answer: result.raw,
        };
    }
    let code = result.code.clone().unwrap_or_default();
    let message = result.message.clone().unwrap_or_default();
    if collections::is_transient(&code) {
        return Applied::RetryLater {
            reason: format!("Salesforce answered {code}: {message}"),
            code: result.code,
        };
    }
    Applied::Refused {
        reason: format!(
            "Salesforce answered {code}: {message}. {}",
            collections::explain(&code)
        ),
        answer: result.raw,
        code: result.code,
    }
}

/// A call that failed as a whole: every record of it retried later, or refused when the call
/// itself cannot pass.
fn call_failure(err: &SalesforceError) -> Applied {
    if collections::call_is_transient(err) {
        Applied::RetryLater {
            reason: err.to_string(),
            code: err.code().map(str::to_owned),
        }
    } else {
        let explanation = err
            .code()
            .map(collections::explain)
            .unwrap_or("Salesforce refused the call.");
        Applied::Refused {
            reason: format!("{err}. {explanation}"),
            answer: Value::Null,
            code: err.code().map(str::to_owned),
        }
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
    use serde_json::json;

    use super::*;

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
