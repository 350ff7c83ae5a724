//! A campaign's life: defined as a draft, started (its items frozen from the last successful
//! sync), closed with its policy or cancelled; and the passes of `provost serve` that remind,
//! mark overdue, finish remediation and make recurring runs.

use std::collections::HashMap;
use std::sync::Arc;

use provost_connector::model::Entitlement;
use provost_connector::times::Timestamp;
use serde::Deserialize;
use serde_json::json;

use super::items::{self, Assigner, Facts, Peers, People, Selector};
use super::model::{
    Campaign, CampaignState, ClosePolicy, Definition, NewItem, Recurrence, ReviewerRules, Rule,
    Scope,
};
use super::ReviewError;
use crate::audit::AuditEvent;
use crate::config::{Config, OrgConfig};
use crate::store::reviews::{CampaignMark, NewCampaign};
use crate::store::sync::{LockOutcome, RunStatus};
use crate::store::{OrgRecord, Store};

/// A campaign as asked for (the API's body, the CLI's file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignInput {
    pub name: String,
    #[serde(default)]
    pub scope: Scope,
    pub reviewers: ReviewerRules,
    #[serde(default)]
    pub close_policy: ClosePolicy,
    #[serde(default)]
    pub recurrence: Option<Recurrence>,
    /// RFC 3339: when `provost serve` starts it by itself.
    #[serde(default)]
    pub starts_at: Option<String>,
    /// RFC 3339: a fixed due time. Or `duration_days` from the start.
    #[serde(default)]
    pub due_at: Option<String>,
    #[serde(default)]
    pub duration_days: Option<u32>,
    #[serde(default)]
    pub dormant_days: Option<u32>,
    #[serde(default)]
    pub remind_days_before: Option<u32>,
    #[serde(default)]
    pub max_items: Option<u32>,
}

const MAX_DAYS: u32 = 3660;

fn bad(message: impl Into<String>) -> ReviewError {
    ReviewError::BadDefinition(message.into())
}

fn time(name: &str, text: &str) -> Result<Timestamp, ReviewError> {
    provost_connector::times::parse_rfc3339(text).ok_or_else(|| {
        bad(format!(
            "{name} `{text}` is not an RFC 3339 time such as 2027-01-31T17:00:00Z"
        ))
    })
}

fn names_ok(what: &str, names: &[String]) -> Result<(), ReviewError> {
    if let Some(name) = names.iter().find(|n| n.trim().is_empty() || n.len() > 255) {
        return Err(bad(format!(
            "{what} has `{name}`: each must be 1 to 255 characters"
        )));
    }
    if names.len() > 1000 {
        return Err(bad(format!(
            "{what} has {} values; at most 1000",
            names.len()
        )));
    }
    Ok(())
}

/// Checks an input and makes its definition and due time (for now; a campaign without a
/// fixed due time gets its own when it starts).
fn definition_of(
    input: &CampaignInput,
    now: Timestamp,
) -> Result<(Definition, Timestamp), ReviewError> {
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(bad("name must be 1 to 200 characters"));
    }
    let rules = &input.reviewers;
    if rules.stages.is_empty() || rules.stages.len() > 2 {
        return Err(bad(
            "reviewers.stages takes one or two rules: [\"manager\"], [\"owner\"], [\"reviewers\"] or [\"manager\", \"owner\"]",
        ));
    }
    if rules.fallback.is_empty() {
        return Err(bad(
            "reviewers.fallback names who reviews what no rule reaches (a username, user id or name): give at least one",
        ));
    }
    names_ok("reviewers.fallback", &rules.fallback)?;
    let owned: Vec<String> = rules.owners.keys().cloned().collect();
    names_ok("reviewers.owners", &owned)?;
    let owners: Vec<String> = rules.owners.values().cloned().collect();
    names_ok("reviewers.owners", &owners)?;
    let mut stages = rules.stages.clone();
    stages.dedup();
    if stages.len() != rules.stages.len() {
        return Err(bad(
            "reviewers.stages names one rule twice: two stages by the same rule are one review",
        ));
    }
    names_ok("reviewers.reviewers", &rules.reviewers)?;
    if rules.stages.contains(&Rule::Reviewers) && rules.reviewers.is_empty() {
        return Err(bad(
            "the rule `reviewers` needs reviewers.reviewers, the list of reviewers",
        ));
    }
    for (what, list) in [
        ("scope.entitlement_types", &input.scope.entitlement_types),
        ("scope.entitlements", &input.scope.entitlements),
        ("scope.permissions", &input.scope.permissions),
        ("scope.user_types", &input.scope.user_types),
        ("scope.profiles", &input.scope.profiles),
        ("scope.roles", &input.scope.roles),
        ("scope.users", &input.scope.users),
    ] {
        names_ok(what, list)?;
    }
    for text in &input.scope.permissions {
        crate::reports::resolve_permission(text).map_err(|e| bad(e.to_string()))?;
    }
    for (field, value) in [
        ("dormant_days", input.dormant_days),
        ("remind_days_before", input.remind_days_before),
        ("duration_days", input.duration_days),
    ] {
        if value.is_some_and(|v| v > MAX_DAYS) {
            return Err(bad(format!("{field} is at most {MAX_DAYS}")));
        }
    }
    if input.scope.changed_since.is_some_and(|at| at > now) {
        return Err(bad(
            "scope.changed_since is in the future: give a past time (grants changed since then)",
        ));
    }
    if input.max_items == Some(0) {
        return Err(bad("max_items must be at least 1"));
    }
    let starts_at = input
        .starts_at
        .as_deref()
        .map(|t| time("starts_at", t))
        .transpose()?;
    let fixed_due = input
        .due_at
        .as_deref()
        .map(|t| time("due_at", t))
        .transpose()?;
    let (duration_days, due_at) = match (fixed_due, input.duration_days) {
        (Some(_), Some(_)) => {
            return Err(bad("give due_at or duration_days, not both"));
        }
        (Some(due), None) => {
            if due <= starts_at.unwrap_or(now) {
                return Err(bad(
                    "due_at is not after the start: give a later time, or duration_days",
                ));
            }
            let days = (due - starts_at.unwrap_or(now)).num_days().max(1);
            (u32::try_from(days).unwrap_or(MAX_DAYS), due)
        }
        (None, Some(0)) => return Err(bad("duration_days must be at least 1")),
        (None, Some(days)) => (
            days,
            starts_at.unwrap_or(now) + chrono::TimeDelta::days(i64::from(days)),
        ),
        (None, None) => {
            return Err(bad(
                "say when the campaign is due: due_at (RFC 3339) or duration_days",
            ))
        }
    };
    if input.recurrence.is_some() && fixed_due.is_some() {
        return Err(bad(
            "a recurring campaign is due duration_days after each run starts: give duration_days instead of due_at",
        ));
    }
    Ok((
        Definition {
            scope: input.scope.clone(),
            reviewers: input.reviewers.clone(),
            close_policy: input.close_policy,
            recurrence: input.recurrence,
            starts_at,
            due_at: fixed_due,
            duration_days,
            dormant_days: input.dormant_days,
            remind_days_before: input.remind_days_before,
            max_items: input.max_items,
        },
        due_at,
    ))
}

/// Stores a draft campaign made by `actor`.
pub async fn create(
    store: &Arc<dyn Store>,
    org: &OrgRecord,
    actor: &str,
    input: &CampaignInput,
) -> Result<Campaign, ReviewError> {
    let now = chrono::Utc::now();
    let (definition, due_at) = definition_of(input, now)?;
    // Names the org lacks are refused now, when the org has been synced: entitlements,
    // profiles, roles and owned entitlements in the catalog, users and reviewers among its
    // users (a reviewer who is no user must be a team's plain name).
    if latest_sync(store, org).await?.is_some() {
        let catalog = crate::reports::catalog(store, org.id).await?;
        Selector::new(&definition, &catalog)?;
        let rules = &definition.reviewers;
        for key in rules.owners.keys() {
            if !catalog.values().any(|e| &e.id == key || &e.api_name == key) {
                return Err(bad(format!(
                    "reviewers.owners names the entitlement `{key}`, which the org does not have: give an id or an API name"
                )));
            }
        }
        for name in rules
            .fallback
            .iter()
            .chain(&rules.reviewers)
            .chain(rules.owners.values())
        {
            super::named_reviewer(&**store, org.id, name)
                .await
                .map_err(|e| bad(format!("reviewer `{name}`: {e}")))?;
        }
        for user in &definition.scope.users {
            if super::reviewer_of(&**store, org.id, user)
                .await?
                .1
                .is_none()
            {
                return Err(bad(format!(
                    "scope.users names `{user}`, who is not a user of the org as last synced: give an id or a username"
                )));
            }
        }
    }
    insert(
        store,
        org,
        actor,
        input.name.trim(),
        &definition,
        due_at,
        None,
    )
    .await
}

async fn insert(
    store: &Arc<dyn Store>,
    org: &OrgRecord,
    actor: &str,
    name: &str,
    definition: &Definition,
    due_at: Timestamp,
    parent_id: Option<i64>,
) -> Result<Campaign, ReviewError> {
    let definition_json = serde_json::to_value(definition).expect("definitions serialise");
    Ok(store
        .insert_campaign(
            &NewCampaign {
                org: org.id,
                name: name.to_owned(),
                definition: definition_json.clone(),
                due_at,
                created_by: actor.to_owned(),
                parent_id,
            },
            &AuditEvent {
                actor: actor.to_owned(),
                org: Some(org.name.clone()),
                request_id: None,
                event: "review_campaign_created".into(),
                data: json!({ "name": name, "definition": definition_json, "parent": parent_id }),
            },
        )
        .await?)
}

/// The campaign `id` of `org`, or a 404 that says so.
pub async fn get(
    store: &Arc<dyn Store>,
    org: &OrgRecord,
    id: i64,
) -> Result<Campaign, ReviewError> {
    store.get_campaign(org.id, id).await?.ok_or_else(|| {
        ReviewError::NotFound(format!("no review campaign {id} in org `{}`", org.name))
    })
}

async fn latest_sync(
    store: &Arc<dyn Store>,
    org: &OrgRecord,
) -> Result<Option<crate::store::sync::SyncRun>, ReviewError> {
    Ok(store
        .list_sync_runs(org.id, 1000)
        .await?
        .into_iter()
        .find(|r| r.status == RunStatus::Succeeded))
}

/// Revocations a close requests at once (the rest by `provost serve`'s passes), and per pass.
const REMEDIATE_NOW: usize = 2_000;
const REMEDIATE_PASS: usize = 10_000;

/// A failed automatic start is tried again after this long.
const RETRY_START: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Items are stored this many at a time while a campaign starts.
const BATCH: usize = 5000;
/// A start that has not finished in this long is taken to have died.
const STALE_START: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

/// Starts draft `id`: freezes its items from the last successful sync and makes it active.
/// Refused when the org never synced, when the scope matches nothing, or more than the
/// campaign's (or the configuration's) `max_items` unless `force`.
pub async fn start(
    store: &Arc<dyn Store>,
    config: &Config,
    org_config: &OrgConfig,
    org: &OrgRecord,
    id: i64,
    actor: &str,
    force: bool,
) -> Result<Campaign, ReviewError> {
    let campaign = get(store, org, id).await?;
    if campaign.state != CampaignState::Draft {
        return Err(ReviewError::Conflict {
            code: "wrong_state",
            message: format!(
                "campaign {id} is {}; only a draft can be started",
                campaign.state
            ),
        });
    }
    // The items are read from the stored model page by page: no sync may commit meanwhile.
    let holder = format!("review-start-{id}");
    if let LockOutcome::Held { holder, .. } = store
        .acquire_sync_lock(org.id, &holder, STALE_START)
        .await?
    {
        return Err(ReviewError::Conflict {
            code: "sync_running",
            message: format!(
                "org `{}` is being synced ({holder}); start the campaign when the sync has finished, so that its items come from one state of the org",
                org.name
            ),
        });
    }
    let started = start_locked(store, config, org_config, org, &campaign, actor, force).await;
    store.release_sync_lock(org.id, &holder).await?;
    started
}

#[allow(clippy::too_many_arguments)]
async fn start_locked(
    store: &Arc<dyn Store>,
    config: &Config,
    org_config: &OrgConfig,
    org: &OrgRecord,
    campaign: &Campaign,
    actor: &str,
    force: bool,
) -> Result<Campaign, ReviewError> {
    let id = campaign.id;
    let definition = &campaign.definition;
    // The sync the items come from, and the catalog, read under the lock: none can commit
    // while the items are read.
    let run = latest_sync(store, org).await?.ok_or_else(|| ReviewError::Refused {
        code: "not_synced",
        message: format!(
            "org `{}` has no successful sync: a campaign reviews what a sync read; run `provost sync --org {}` first",
            org.name, org.name
        ),
    })?;
    let catalog = crate::reports::catalog(store, org.id).await?;
    let selector = Selector::new(definition, &catalog)?;
    let now = chrono::Utc::now();
    // Kept to the microsecond, as both databases store it: the claim is compared as stored.
    let claim = crate::audit::truncate(now);
    if !store.claim_start(id, claim, STALE_START).await? {
        return Err(ReviewError::Conflict {
            code: "start_in_progress",
            message: format!("campaign {id} is being started already; wait for it"),
        });
    }
    match fill(
        store, config, org_config, org, campaign, &catalog, &selector, force, claim,
    )
    .await
    {
        Ok(count) => {
            let due_at = definition
                .due_at
                .unwrap_or(now + chrono::TimeDelta::days(i64::from(definition.duration_days)));
            let next_run_at = definition
                .recurrence
                .and_then(|r| now.checked_add_months(chrono::Months::new(r.months())));
            let mut audit = vec![AuditEvent {
                actor: actor.to_owned(),
                org: Some(org.name.clone()),
                request_id: None,
                event: "review_campaign_started".into(),
                data: json!({
                    "campaign": id,
                    "name": campaign.name,
                    "items": count,
                    "data_as_of": run.finished_at.map(crate::util::times::rfc3339),
                    "sync_run": run.id.0,
                    "due_at": crate::util::times::rfc3339(due_at),
                    "forced": force,
                }),
            }];
            for (reviewer, items) in store.open_by_reviewer(id).await? {
                audit.push(AuditEvent {
                    actor: actor.to_owned(),
                    org: Some(org.name.clone()),
                    request_id: None,
                    event: "review_assigned".into(),
                    data: json!({ "campaign": id, "name": campaign.name, "reviewer": reviewer, "items": items }),
                });
            }
            store
                .activate_campaign(id, claim, count, run.finished_at, due_at, next_run_at, &audit)
                .await?
                .ok_or_else(|| ReviewError::Conflict {
                    code: "start_in_progress",
                    message: format!(
                        "campaign {id} stopped being a draft, or another start took it over, while it started"
                    ),
                })
        }
        Err(err) => {
            store
                .abandon_start(id, claim, Some(&err.to_string()))
                .await?;
            Err(err)
        }
    }
}

/// Stores the items of a campaign being started; returns how many.
#[allow(clippy::too_many_arguments)]
async fn fill(
    store: &Arc<dyn Store>,
    config: &Config,
    org_config: &OrgConfig,
    org: &OrgRecord,
    campaign: &Campaign,
    catalog: &HashMap<String, Entitlement>,
    selector: &Selector,
    force: bool,
    claim: Timestamp,
) -> Result<i64, ReviewError> {
    let now = claim;
    let definition = &campaign.definition;
    // First pass: how many items, the peers of each profile, and everyone's name.
    let mut peers = Peers::default();
    let mut people = People::default();
    let mut matched: u64 = 0;
    let mut users = crate::reports::Users::new(&Default::default());
    while let Some(grants) = users.next(store, org.id).await? {
        people.add(&grants[0].account);
        peers.count(&grants);
        matched += grants
            .iter()
            .filter(|g| {
                catalog
                    .get(&g.entitlement_id)
                    .is_some_and(|e| selector.admits(g, e))
            })
            .count() as u64;
    }
    let max = definition.max_items.unwrap_or(config.reviews.max_items);
    if matched == 0 {
        return Err(ReviewError::Refused {
            code: "empty_scope",
            message: format!(
                "the scope of campaign {} matches no grant in org `{}` as last synced; widen it",
                campaign.id, org.name
            ),
        });
    }
    if matched > u64::from(max) && !force {
        return Err(ReviewError::Refused {
            code: "scope_too_large",
            message: format!(
                "the scope matches {matched} items, more than the {max} a campaign may start with: narrow the scope, raise max_items, or start it with force"
            ),
        });
    }
    let assigner = Assigner::new(definition, &org_config.entitlement_owners, catalog, &people)?;
    let brings = items::Brings::of_catalog(catalog);
    let facts = Facts {
        catalog,
        brings: &brings,
        peers: &peers,
        dormant_days: definition
            .dormant_days
            .unwrap_or(config.reviews.dormant_days),
        now,
    };
    // Items are written by a task of their own while the next ones are read and made, a few
    // batches in flight at most.
    let (batches, mut to_write) = tokio::sync::mpsc::channel::<Vec<NewItem>>(2);
    let writer = {
        let (store, id) = (store.clone(), campaign.id);
        tokio::spawn(async move {
            while let Some(batch) = to_write.recv().await {
                store.insert_items(id, claim, &batch).await?;
            }
            Ok::<(), crate::store::StoreError>(())
        })
    };
    let made = async {
        let mut batch = Vec::with_capacity(BATCH);
        let mut count = 0_i64;
        let mut users = crate::reports::Users::new(&Default::default());
        while let Some(grants) = users.next(store, org.id).await? {
            for held in &grants {
                let Some(entitlement) = catalog.get(&held.entitlement_id) else {
                    continue;
                };
                if !selector.admits(held, entitlement) {
                    continue;
                }
                let reviewers = assigner.reviewers(&held.account, &entitlement.id)?;
                batch.push(items::item(&facts, held, &grants, entitlement, reviewers));
            }
            if batch.len() >= BATCH {
                count += batch.len() as i64;
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                if batches.send(full).await.is_err() {
                    break; // The writer stopped: its error is returned below.
                }
            }
        }
        count += batch.len() as i64;
        let _ = batches.send(batch).await;
        Ok::<i64, ReviewError>(count)
    }
    .await;
    drop(batches);
    let written = writer.await.map_err(|e| {
        ReviewError::Store(crate::store::StoreError::Corrupt {
            what: "review items",
            detail: format!("the task writing them stopped: {e}"),
        })
    })?;
    let count = made?;
    written?;
    Ok(count)
}

/// Closes an active campaign as `actor`, deciding what is undecided as `policy` says (the
/// campaign's own when `None`), then requests the revocations that makes.
pub async fn close(
    store: &Arc<dyn Store>,
    org_config: &OrgConfig,
    org: &OrgRecord,
    id: i64,
    actor: &str,
    policy: Option<ClosePolicy>,
) -> Result<Campaign, ReviewError> {
    let campaign = get(store, org, id).await?;
    let policy = policy.unwrap_or(campaign.definition.close_policy);
    let summary = store.summary(id, chrono::Utc::now()).await?;
    let decision = match policy {
        ClosePolicy::LeaveOpen => None,
        ClosePolicy::Keep => Some("keep"),
        ClosePolicy::Revoke => Some("revoke"),
    };
    let audit = AuditEvent {
        actor: actor.to_owned(),
        org: Some(org.name.clone()),
        request_id: None,
        event: "review_campaign_closed".into(),
        data: json!({
            "campaign": id,
            "name": campaign.name,
            "policy": policy.as_str(),
            "undecided": summary.open,
            "summary_before": summary,
        }),
    };
    let closed = store
        .end_campaign(
            id,
            &[CampaignState::Active],
            CampaignState::Closed,
            actor,
            decision,
            &audit,
        )
        .await?
        .ok_or_else(|| ReviewError::Conflict {
            code: "wrong_state",
            message: format!(
                "campaign {id} is {}; only an active campaign can be closed (a draft is cancelled)",
                campaign.state
            ),
        })?;
    if decision == Some("revoke") {
        super::decide::remediate(store, org_config, org, &closed, REMEDIATE_NOW).await?;
    }
    Ok(closed)
}

/// Cancels a draft or active campaign: nothing more is decided or revoked.
pub async fn cancel(
    store: &Arc<dyn Store>,
    org: &OrgRecord,
    id: i64,
    actor: &str,
    reason: Option<&str>,
) -> Result<Campaign, ReviewError> {
    let campaign = get(store, org, id).await?;
    let audit = AuditEvent {
        actor: actor.to_owned(),
        org: Some(org.name.clone()),
        request_id: None,
        event: "review_campaign_cancelled".into(),
        data: json!({ "campaign": id, "name": campaign.name, "reason": reason }),
    };
    store
        .end_campaign(
            id,
            &[CampaignState::Draft, CampaignState::Active],
            CampaignState::Cancelled,
            actor,
            None,
            &audit,
        )
        .await?
        .ok_or_else(|| ReviewError::Conflict {
            code: "wrong_state",
            message: format!(
                "campaign {id} is {}; only a draft or an active campaign can be cancelled",
                campaign.state
            ),
        })
}

/// What one pass over the campaigns did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tick {
    pub started: Vec<i64>,
    pub reminded: Vec<i64>,
    pub overdue: Vec<i64>,
    pub runs_made: Vec<i64>,
    pub remediated: usize,
    pub failures: Vec<String>,
}

/// One pass of `provost serve` at `now`: starts drafts whose start time came, reminds
/// reviewers before the due time, marks overdue campaigns, requests revocations left pending
/// (a crash between a decision and its request), and makes recurring campaigns' next runs.
/// Each mark is set once, whichever replica gets there first.
pub async fn tick(store: &Arc<dyn Store>, config: &Config, now: Timestamp) -> Tick {
    let mut done = Tick::default();
    let campaigns = match store
        .campaigns_in(&[
            CampaignState::Draft,
            CampaignState::Active,
            CampaignState::Closed,
        ])
        .await
    {
        Ok(campaigns) => campaigns,
        Err(err) => {
            done.failures.push(format!("listing campaigns: {err}"));
            return done;
        }
    };
    let orgs: HashMap<i64, OrgRecord> = match store.list_orgs().await {
        Ok(orgs) => orgs.into_iter().map(|o| (o.id.0, o)).collect(),
        Err(err) => {
            done.failures.push(format!("listing orgs: {err}"));
            return done;
        }
    };
    for campaign in campaigns {
        let Some(org) = orgs.get(&campaign.org.0) else {
            continue;
        };
        let Ok(org_config) = config.org(&org.name) else {
            continue; // An org no longer configured: its campaigns wait.
        };
        if let Err(err) = tick_one(store, config, org_config, org, &campaign, now, &mut done).await
        {
            done.failures.push(format!(
                "campaign {} of org `{}`: {err}",
                campaign.id, org.name
            ));
        }
    }
    done
}

async fn tick_one(
    store: &Arc<dyn Store>,
    config: &Config,
    org_config: &OrgConfig,
    org: &OrgRecord,
    campaign: &Campaign,
    now: Timestamp,
    done: &mut Tick,
) -> Result<(), ReviewError> {
    let event = |name: &str, data: serde_json::Value| AuditEvent {
        actor: "provost".into(),
        org: Some(org.name.clone()),
        request_id: None,
        event: name.into(),
        data,
    };
    match campaign.state {
        CampaignState::Draft => {
            // A failed automatic start is tried again an hour later (its error is on the draft).
            let due = campaign.definition.starts_at.is_some_and(|at| at <= now)
                && campaign
                    .start_failed_at
                    .is_none_or(|at| now - at >= RETRY_START);
            if due {
                auto_start(store, config, org_config, org, campaign, now, done).await?;
            }
        }
        CampaignState::Active | CampaignState::Closed => {
            if campaign.state == CampaignState::Active {
                notice(store, config, campaign, now, &event, done).await?;
            }
            done.remediated +=
                super::decide::remediate(store, org_config, org, campaign, REMEDIATE_PASS).await?;
            next_run(store, config, org_config, org, campaign, now, done).await?;
        }
        CampaignState::Cancelled => {}
    }
    Ok(())
}

/// Tells the reviewers of an active campaign, once each, that it is due soon (its reminder
/// window) or overdue, with their open items.
async fn notice(
    store: &Arc<dyn Store>,
    config: &Config,
    campaign: &Campaign,
    now: Timestamp,
    event: &impl Fn(&str, serde_json::Value) -> AuditEvent,
    done: &mut Tick,
) -> Result<(), ReviewError> {
    let remind = campaign
        .definition
        .remind_days_before
        .unwrap_or(config.reviews.remind_days_before);
    let reminder_from = campaign.due_at - chrono::TimeDelta::days(i64::from(remind));
    let (mark, name, marked) = if now >= campaign.due_at {
        if campaign.overdue_at.is_some() {
            return Ok(());
        }
        (
            CampaignMark::Overdue(now),
            "review_overdue",
            &mut done.overdue,
        )
    } else if now >= reminder_from && campaign.reminded_at.is_none() {
        (
            CampaignMark::Reminded(now),
            "review_reminder",
            &mut done.reminded,
        )
    } else {
        return Ok(());
    };
    let reviewers = store.open_by_reviewer(campaign.id).await?;
    if reviewers.is_empty() {
        return Ok(());
    }
    let data = json!({
        "campaign": campaign.id,
        "name": campaign.name,
        "due_at": crate::util::times::rfc3339(campaign.due_at),
        "open_by_reviewer": reviewers.iter().map(|(r, n)| json!({"reviewer": r, "open": n})).collect::<Vec<_>>(),
    });
    if store
        .mark_campaign(campaign.id, mark, Some(&event(name, data)))
        .await?
    {
        marked.push(campaign.id);
    }
    Ok(())
}

/// Starts a draft as `provost`; a failure is recorded on the draft and in the audit log.
async fn auto_start(
    store: &Arc<dyn Store>,
    config: &Config,
    org_config: &OrgConfig,
    org: &OrgRecord,
    campaign: &Campaign,
    now: Timestamp,
    done: &mut Tick,
) -> Result<(), ReviewError> {
    match start(
        store,
        config,
        org_config,
        org,
        campaign.id,
        "provost",
        false,
    )
    .await
    {
        Ok(_) => {
            done.started.push(campaign.id);
            Ok(())
        }
        Err(err) => {
            let data =
                json!({"campaign": campaign.id, "name": campaign.name, "error": err.to_string()});
            store
                .mark_campaign(
                    campaign.id,
                    CampaignMark::StartFailed(now, err.to_string()),
                    Some(&AuditEvent {
                        actor: "provost".into(),
                        org: Some(org.name.clone()),
                        request_id: None,
                        event: "review_start_failed".into(),
                        data,
                    }),
                )
                .await?;
            Err(err)
        }
    }
}

/// Makes and starts a recurring campaign's next run when its time has come.
async fn next_run(
    store: &Arc<dyn Store>,
    config: &Config,
    org_config: &OrgConfig,
    org: &OrgRecord,
    campaign: &Campaign,
    now: Timestamp,
    done: &mut Tick,
) -> Result<(), ReviewError> {
    if campaign.next_run_at.is_none_or(|at| at > now) {
        return Ok(());
    }
    let mut definition = campaign.definition.clone();
    // The run starts now, through the drafts' path: a failed start is retried and shown.
    definition.starts_at = Some(now);
    let root = campaign
        .name
        .rsplit_once(" (run ")
        .map_or(campaign.name.as_str(), |(root, _)| root);
    let name = format!("{root} (run {})", now.format("%Y-%m-%d"));
    let due_at = now + chrono::TimeDelta::days(i64::from(definition.duration_days));
    let run = match insert(
        store,
        org,
        "provost",
        &name,
        &definition,
        due_at,
        Some(campaign.id),
    )
    .await
    {
        Ok(run) => run,
        // Another replica made it.
        Err(ReviewError::Store(crate::store::StoreError::Duplicate(_))) => return Ok(()),
        Err(err) => return Err(err),
    };
    done.runs_made.push(run.id);
    auto_start(store, config, org_config, org, &run, now, done).await
}
