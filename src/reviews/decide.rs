//! Reviewers' decisions: keep or revoke, one item or many at once, reassignment, and the
//! revocations they make. A revocation is an access request like any other (planned and
//! checked against the synced org, carried out by the executor), approved by the decision
//! itself and linked both ways to its item.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::model::{Campaign, CampaignState, ReviewItem, StageReviewer};
use super::{named_reviewer, reviewer_of, Actor, ReviewError};
use crate::audit::AuditEvent;
use crate::config::OrgConfig;
use crate::provisioning::plan::{EntitlementRef, RequestInput};
use crate::provisioning::requests::{self, Approval, RequestError};
use crate::provisioning::Action;
use crate::store::reviews::{ItemDecision, Reassignment};
use crate::store::{OrgRecord, Store};

/// The most items one call decides.
pub const MAX_BATCH: usize = 10_000;
/// The longest comment, reassignment reason or cancel reason.
pub const MAX_COMMENT: usize = 4000;

/// Keep or revoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Keep,
    Revoke,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Keep => "keep",
            Verdict::Revoke => "revoke",
        }
    }
}

/// What became of one item of a decision call.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub item: i64,
    pub ok: bool,
    /// Why not, when not: `not_found`, `not_your_item`, `already_decided`, `campaign_not_active`,
    /// `comment_required`, `not_revocable`, `self_review`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The item as it is after the call, when the caller may see it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<Value>,
}

fn refused(item: i64, code: &'static str, message: String) -> Outcome {
    Outcome {
        item,
        ok: false,
        code: Some(code),
        message: Some(message),
        state: None,
    }
}

/// Whether `item`'s current reviewer is the caller.
fn assigned_to(item: &ReviewItem, reviewer: &str, account: Option<&str>) -> bool {
    let stage = usize::try_from(item.stage - 1)
        .ok()
        .and_then(|i| item.reviewers.get(i));
    item.reviewer == reviewer
        || (account.is_some() && stage.and_then(|s| s.account_id.as_deref()) == account)
}

fn is_subject(item: &ReviewItem, reviewer: &str, account: Option<&str>) -> bool {
    item.username.to_lowercase() == reviewer || account == Some(item.account_id.as_str())
}

/// Decides `ids` as `verdict` with `comment`, as `actor`. Each item is checked on its own and
/// answered in order: only the caller's open items of active campaigns are decided; a
/// revocation needs a comment, and so does keeping a privileged grant. Revocations are
/// requested at once (see [`remediate`]).
pub async fn decide(
    store: &Arc<dyn Store>,
    org_config: &OrgConfig,
    org: &OrgRecord,
    actor: &Actor,
    ids: &[i64],
    verdict: Verdict,
    comment: Option<&str>,
) -> Result<Vec<Outcome>, ReviewError> {
    if ids.is_empty() || ids.len() > MAX_BATCH {
        return Err(ReviewError::BadDefinition(format!(
            "decide 1 to {MAX_BATCH} items at a time (got {})",
            ids.len()
        )));
    }
    let comment = comment.map(str::trim).filter(|c| super::says_something(c));
    if comment.is_some_and(|c| c.chars().count() > MAX_COMMENT) {
        return Err(ReviewError::BadDefinition(format!(
            "a comment is at most {MAX_COMMENT} characters"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    let ids: Vec<i64> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
    let ids = ids.as_slice();
    let (reviewer, account) = reviewer_of(&**store, org.id, &actor.identity).await?;
    // Evidence names the reviewer one way: as items store them (a user's lower-case username).
    let who = reviewer.clone();
    let found: HashMap<i64, ReviewItem> = store
        .get_items(org.id, ids)
        .await?
        .into_iter()
        .map(|i| (i.id, i))
        .collect();
    let mut campaigns: HashMap<i64, Campaign> = HashMap::new();
    // What each user holds now, read once for all the items: drift is judged by entitlement
    // (a grant removed and made again has a new id and is still held).
    let mut users: Vec<String> = found.values().map(|i| i.account_id.clone()).collect();
    users.sort();
    users.dedup();
    let holdings: HashMap<String, (bool, std::collections::HashSet<String>)> = store
        .holdings(org.id, &users)
        .await?
        .into_iter()
        .map(|(id, active, held)| (id, (active, held.into_iter().collect())))
        .collect();
    let mut outcomes = Vec::with_capacity(ids.len());
    let mut decisions = Vec::new();
    let mut audit = Vec::new();
    for &id in ids {
        let Some(item) = found.get(&id) else {
            outcomes.push(refused(
                id,
                "not_found",
                format!("no review item {id} in org `{}`", org.name),
            ));
            continue;
        };
        if !campaigns.contains_key(&item.campaign_id) {
            if let Some(c) = store.get_campaign(org.id, item.campaign_id).await? {
                campaigns.insert(c.id, c);
            }
        }
        let Some(campaign) = campaigns.get(&item.campaign_id) else {
            outcomes.push(refused(
                id,
                "not_found",
                format!("no review item {id} in org `{}`", org.name),
            ));
            continue;
        };
        if !assigned_to(item, &reviewer, account.as_deref()) {
            // Not the caller's: they learn only that it is not theirs.
            outcomes.push(refused(
                id,
                "not_your_item",
                format!("review item {id} is not assigned to `{}`; its reviewer can decide it, or an admin can reassign it", actor.identity),
            ));
            continue;
        }
        if campaign.state != CampaignState::Active {
            outcomes.push(refused(
                id,
                "campaign_not_active",
                format!(
                    "campaign {} is {}; decisions are taken while it is active",
                    campaign.id, campaign.state
                ),
            ));
            continue;
        }
        if item.state != "open" {
            outcomes.push(refused(
                id,
                "already_decided",
                format!(
                    "review item {id} was decided already ({} by {})",
                    item.decision.as_deref().unwrap_or("?"),
                    item.decided_by.as_deref().unwrap_or("?")
                ),
            ));
            continue;
        }
        if is_subject(item, &reviewer, account.as_deref()) {
            outcomes.push(refused(
                id,
                "self_review",
                format!("review item {id} is `{}`'s own access, and nobody reviews their own; an admin reassigns it", item.username),
            ));
            continue;
        }
        if comment.is_none() && (verdict == Verdict::Revoke || item.privileged) {
            outcomes.push(refused(
                id,
                "comment_required",
                if verdict == Verdict::Revoke {
                    format!("revoking review item {id} needs a comment saying why")
                } else {
                    format!("keeping review item {id} needs a comment: it brings privileged permissions ({})", item.context["system_permissions"])
                },
            ));
            continue;
        }
        if verdict == Verdict::Revoke
            && matches!(
                item.kind.as_str(),
                "profile" | "user_license" | "permission_set_license"
            )
        {
            outcomes.push(refused(
                id,
                "not_revocable",
                format!("{} `{}` cannot be taken away on its own: a user always has a profile and its license; keep it, and ask for change_profile or deactivate_user as an access request", item.kind, item.api_name),
            ));
            continue;
        }
        let last_stage = item.stage >= item.stages;
        let next = (verdict == Verdict::Keep && !last_stage)
            .then(|| {
                usize::try_from(item.stage)
                    .ok()
                    .and_then(|i| item.reviewers.get(i))
                    .cloned()
            })
            .flatten();
        // What changed in Salesforce since the start, as the store now holds it.
        let (active, held) = holdings
            .get(&item.account_id)
            .map_or((false, None), |(active, held)| (*active, Some(held)));
        let drift = if !held.is_some_and(|h| h.contains(&item.entitlement_id)) {
            Some(
                "the user no longer holds it: removed in Salesforce after the campaign started"
                    .to_owned(),
            )
        } else if !active && item.context["user_active"] == Value::Bool(true) {
            Some("the user was deactivated in Salesforce after the campaign started".to_owned())
        } else {
            None
        };
        let remediation = match (verdict, next.is_some(), drift.is_some()) {
            (Verdict::Revoke, _, true) => Some("not_needed".to_owned()),
            (Verdict::Revoke, _, false) => Some("pending".to_owned()),
            _ => None,
        };
        audit.push(AuditEvent {
            actor: who.clone(),
            org: Some(org.name.clone()),
            request_id: None,
            event: "review_decided".into(),
            data: json!({
                "campaign": item.campaign_id,
                "item": id,
                "stage": item.stage,
                "decision": verdict.as_str(),
                "comment": comment,
                "user": item.account_id,
                "username": item.username,
                "entitlement": item.entitlement_id,
                "entitlement_name": item.api_name,
                "grant": item.grant_id,
                "next_reviewer": next.as_ref().map(|n| &n.reviewer),
                "drift": drift,
            }),
        });
        decisions.push(ItemDecision {
            item: id,
            stage: item.stage,
            reviewer: item.reviewer.clone(),
            actor: who.clone(),
            decision: verdict.as_str().to_owned(),
            comment: comment.map(str::to_owned),
            next,
            drift,
            remediation,
        });
        outcomes.push(Outcome {
            item: id,
            ok: true,
            code: None,
            message: None,
            state: None,
        });
    }
    let written = store.decide_items(&decisions, &audit).await?;
    for outcome in outcomes.iter_mut().filter(|o| o.ok) {
        if !written.contains(&outcome.item) {
            outcome.ok = false;
            outcome.code = Some("already_decided");
            outcome.message = Some(format!(
                "review item {} was decided or reassigned by someone else at the same moment; list your items again",
                outcome.item
            ));
        }
    }
    if verdict == Verdict::Revoke {
        // The caller's own revocations are requested now; anything else left pending (a crash,
        // a close policy) is the background pass's.
        let pending: Vec<ReviewItem> = store
            .get_items(org.id, &written)
            .await?
            .into_iter()
            .filter(|i| i.remediation.as_deref() == Some("pending"))
            .collect();
        for item in &pending {
            if let Some(campaign) = campaigns.get(&item.campaign_id) {
                request_revocation(store, org_config, org, campaign, item).await?;
            }
        }
    }
    let now: HashMap<i64, ReviewItem> = store
        .get_items(org.id, &written)
        .await?
        .into_iter()
        .map(|i| (i.id, i))
        .collect();
    for outcome in &mut outcomes {
        if let Some(item) = now.get(&outcome.item) {
            outcome.state = Some(serde_json::to_value(item).expect("items serialise"));
        }
    }
    Ok(outcomes)
}

/// Requests the revocations of `campaign`'s items decided `revoke` that have no request yet,
/// at most `budget` of them (the rest wait for the next pass). Safe to repeat: each item's
/// request is made with an idempotency key of the item, so a crash between the decision and
/// its request, or two replicas at once, make one request. Returns how many it settled.
pub async fn remediate(
    store: &Arc<dyn Store>,
    org_config: &OrgConfig,
    org: &OrgRecord,
    campaign: &Campaign,
    budget: usize,
) -> Result<usize, ReviewError> {
    let mut settled = 0;
    while settled < budget {
        let pending = store
            .items_to_remediate(
                campaign.id,
                500.min(u32::try_from(budget - settled).unwrap_or(500)),
            )
            .await?;
        if pending.is_empty() {
            break;
        }
        for item in &pending {
            request_revocation(store, org_config, org, campaign, item).await?;
            settled += 1;
        }
    }
    Ok(settled)
}

/// Requests the revocation `item`'s decision asks for, and records what that came to on the
/// item: `requested` with the request, `not_needed` when the synced org shows it gone, or
/// `refused` with the plan's reason.
async fn request_revocation(
    store: &Arc<dyn Store>,
    org_config: &OrgConfig,
    org: &OrgRecord,
    campaign: &Campaign,
    item: &ReviewItem,
) -> Result<(), ReviewError> {
    let decided_by = item
        .decided_by
        .clone()
        .unwrap_or_else(|| "access review".to_owned());
    let justification = format!(
        "access review `{}` (campaign {}, item {}): revoke decided by {}{}",
        campaign.name,
        campaign.id,
        item.id,
        decided_by,
        item.comment
            .as_deref()
            .map(|c| format!(": {c}"))
            .unwrap_or_default()
    );
    let input = RequestInput {
        action: Action::Revoke,
        user: Some(item.account_id.clone()),
        entitlement: Some(EntitlementRef::Id(item.entitlement_id.clone())),
        justification: Some(justification),
        requester: Some(decided_by.clone()),
        ticket: Some(format!("review-{}-{}", campaign.id, item.id)),
        expires_at: None,
        new_user: None,
        changes: None,
    };
    let made = requests::create_with(
        &**store,
        org_config,
        org,
        "access-review",
        input,
        Some(format!("review-item-{}", item.id)),
        Approval::Given {
            by: decided_by.clone(),
            reason: format!(
                "revocation decided in access review `{}` (campaign {}, item {})",
                campaign.name, campaign.id, item.id
            ),
        },
    )
    .await;
    match made {
        Ok(created) => {
            store
                .set_remediation(item.id, "requested", Some(created.request.id), None)
                .await?
        }
        Err(RequestError::Duplicate { twin, .. }) => {
            store
                .set_remediation(
                    item.id,
                    "requested",
                    Some(twin.id),
                    Some(&format!(
                        "request {} (by {}) already asked for this revocation",
                        twin.id, twin.created_by
                    )),
                )
                .await?
        }
        Err(RequestError::Refused(refusal)) => {
            let note = format!("{}: {}", refusal.code, refusal.message);
            // Gone from the synced model since the decision: nothing to write.
            let state = if refusal.code == "not_granted" {
                "not_needed"
            } else {
                "refused"
            };
            store
                .set_remediation(item.id, state, None, Some(&note))
                .await?
        }
        Err(RequestError::Store(err)) => return Err(err.into()),
        Err(other) => {
            store
                .set_remediation(item.id, "refused", None, Some(&other.to_string()))
                .await?
        }
    }
    Ok(())
}

/// Hands item `id` to `to` (a username, user id or name) for `reason`: its reviewer or an
/// admin may; never to the user under review.
pub async fn reassign(
    store: &Arc<dyn Store>,
    org: &OrgRecord,
    actor: &Actor,
    id: i64,
    to: &str,
    reason: &str,
) -> Result<ReviewItem, ReviewError> {
    let reason = reason.trim();
    if !super::says_something(reason) || reason.chars().count() > MAX_COMMENT {
        return Err(ReviewError::BadDefinition(format!(
            "a reassignment needs a reason of 1 to {MAX_COMMENT} characters"
        )));
    }
    let to = to.trim();
    if to.is_empty() || to.len() > 255 {
        return Err(ReviewError::BadDefinition(
            "`to` names the new reviewer: a username, user id or name of 1 to 255 characters"
                .into(),
        ));
    }
    let (reviewer, account) = reviewer_of(&**store, org.id, &actor.identity).await?;
    let item = store.get_items(org.id, &[id]).await?.pop().ok_or_else(|| {
        ReviewError::NotFound(format!("no review item {id} in org `{}`", org.name))
    })?;
    if !actor.admin && !assigned_to(&item, &reviewer, account.as_deref()) {
        return Err(ReviewError::Forbidden {
            code: "not_your_item",
            message: format!(
                "review item {id} is not assigned to `{}`: its reviewer or a reviews:admin token reassigns it",
                actor.identity
            ),
        });
    }
    let campaign = store.get_campaign(org.id, item.campaign_id).await?;
    if campaign.as_ref().map(|c| c.state) != Some(CampaignState::Active) || item.state != "open" {
        return Err(ReviewError::Conflict {
            code: "wrong_state",
            message: format!("review item {id} is not open in an active campaign"),
        });
    }
    let (new, new_account) = named_reviewer(&**store, org.id, to).await?;
    if let Some(account_id) = &new_account {
        if store
            .get_account(org.id, account_id)
            .await?
            .is_some_and(|a| !a.active)
        {
            return Err(ReviewError::Refused {
                code: "reviewer_inactive",
                message: format!("{to} is an inactive user of the org; choose an active reviewer"),
            });
        }
    }
    let other_stage = item
        .reviewers
        .iter()
        .enumerate()
        .any(|(i, s)| i as i64 != item.stage - 1 && s.reviewer == new);
    if other_stage {
        return Err(ReviewError::Refused {
            code: "same_reviewer_twice",
            message: format!(
                "{to} reviews another stage of item {id}: two stages by one person are not two reviews; choose someone else"
            ),
        });
    }
    if new == item.username.to_lowercase() || new_account.as_deref() == Some(&item.account_id) {
        return Err(ReviewError::Refused {
            code: "self_review",
            message: format!("review item {id} is {to}'s own access; choose someone else"),
        });
    }
    let audit = AuditEvent {
        actor: reviewer.clone(),
        org: Some(org.name.clone()),
        request_id: None,
        event: "review_assigned".into(),
        data: json!({
            "campaign": item.campaign_id,
            "name": campaign.map(|c| c.name),
            "item": id,
            "reviewer": new,
            "items": 1,
            "from": item.reviewer,
            "reason": reason,
        }),
    };
    let moved = store
        .reassign_item(
            &Reassignment {
                item: id,
                stage: item.stage,
                from: item.reviewer.clone(),
                to: StageReviewer {
                    reviewer: new,
                    account_id: new_account,
                    rule: format!("reassigned by {reviewer}"),
                },
                actor: reviewer.clone(),
                reason: reason.to_owned(),
            },
            &audit,
        )
        .await?;
    if !moved {
        return Err(ReviewError::Conflict {
            code: "already_decided",
            message: format!("review item {id} changed while it was reassigned; look at it again"),
        });
    }
    store
        .get_items(org.id, &[id])
        .await?
        .pop()
        .ok_or_else(|| ReviewError::NotFound(format!("no review item {id}")))
}
