//! What access reviews keep: campaigns, their items and each decision. The types are the
//! domain's ([`crate::reviews::model`]); this module declares how they are stored and found.
//!
//! Every decision is a conditional update (the item is still open, at the stage and with the
//! reviewer the decider saw), written with its evidence row and its audit entry in one
//! transaction: two reviewers racing on one item cannot both decide it.

use async_trait::async_trait;
use provost_connector::times::Timestamp;
use serde_json::Value;

use super::{OrgId, StoreError};
use crate::audit::AuditEvent;
use crate::reviews::model::{
    Campaign, CampaignState, DecisionRecord, NewItem, ReviewItem, StageReviewer,
};

/// A campaign to store, as a draft.
#[derive(Debug, Clone)]
pub struct NewCampaign {
    pub org: OrgId,
    pub name: String,
    pub definition: Value,
    pub due_at: Timestamp,
    pub created_by: String,
    pub parent_id: Option<i64>,
}

/// Which items to list.
#[derive(Debug, Clone, Default)]
pub struct ItemFilter {
    pub campaign: Option<i64>,
    /// Only this reviewer's (as stored: a lower-case username or a name), in active campaigns.
    pub reviewer: Option<String>,
    /// `open` or `decided`.
    pub state: Option<String>,
    pub entitlement: Option<String>,
    pub account: Option<String>,
    /// Only items with a suggestion.
    pub suggested: bool,
    /// Keyset: after this (priority, id), ordered by priority then id, both descending.
    pub after: Option<(i64, i64)>,
    pub limit: u32,
}

/// A decision to write: the item must still be open at `stage` with `reviewer`.
#[derive(Debug, Clone)]
pub struct ItemDecision {
    pub item: i64,
    pub stage: i64,
    pub reviewer: String,
    pub actor: String,
    /// `keep` or `revoke`; a keep before the last stage moves the item on.
    pub decision: String,
    pub comment: Option<String>,
    /// Set when the item moves to its next stage.
    pub next: Option<StageReviewer>,
    pub drift: Option<String>,
    /// `pending` for a revocation to carry out, `not_needed` when Salesforce already lacks it.
    pub remediation: Option<String>,
}

/// A reassignment to write.
#[derive(Debug, Clone)]
pub struct Reassignment {
    pub item: i64,
    pub stage: i64,
    pub from: String,
    pub to: StageReviewer,
    pub actor: String,
    pub reason: String,
}

/// How many of a campaign's items are where.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub items: i64,
    pub open: i64,
    pub decided: i64,
    pub kept: i64,
    pub revoked: i64,
    /// Revocations whose request completed, or that needed no write.
    pub remediated: i64,
    /// Revocations whose request is on its way (pending, approved, executing).
    pub remediation_in_progress: i64,
    /// Revocations that failed or were refused: Salesforce's or the plan's reason is on the item.
    pub remediation_failed: i64,
    /// Open items of a campaign past its due time.
    pub overdue: i64,
}

#[async_trait]
pub trait ReviewStore: Send + Sync {
    /// Stores a draft with its audit entry; a recurring campaign's run (`parent_id`) clears the
    /// parent's next-run time in the same transaction, and is refused when it was cleared.
    async fn insert_campaign(
        &self,
        campaign: &NewCampaign,
        audit: &AuditEvent,
    ) -> Result<Campaign, StoreError>;
    async fn get_campaign(&self, org: OrgId, id: i64) -> Result<Option<Campaign>, StoreError>;
    /// Newest first; every state when `state` is `None`.
    async fn list_campaigns(
        &self,
        org: OrgId,
        state: Option<CampaignState>,
    ) -> Result<Vec<Campaign>, StoreError>;
    /// Campaigns of every org in these states (for `provost serve`'s passes).
    async fn campaigns_in(&self, states: &[CampaignState]) -> Result<Vec<Campaign>, StoreError>;

    /// Claims a draft for starting (false when it is not a draft, or another start holds it
    /// since less than `stale`), and removes items a start that died left behind.
    async fn claim_start(
        &self,
        id: i64,
        now: Timestamp,
        stale: chrono::TimeDelta,
    ) -> Result<bool, StoreError>;
    /// Adds items to a draft being started under the claim `claim` (the time
    /// [`ReviewStore::claim_start`] set); refused when another start took the claim over.
    async fn insert_items(
        &self,
        campaign: i64,
        claim: Timestamp,
        items: &[NewItem],
    ) -> Result<(), StoreError>;
    /// Makes the draft active with its items, data time and due time, with its audit entries;
    /// `None` when it is not a draft any more.
    #[allow(clippy::too_many_arguments)]
    async fn activate_campaign(
        &self,
        id: i64,
        claim: Timestamp,
        items: i64,
        data_as_of: Option<Timestamp>,
        due_at: Timestamp,
        next_run_at: Option<Timestamp>,
        audit: &[AuditEvent],
    ) -> Result<Option<Campaign>, StoreError>;
    /// Gives up the start claimed at `claim` (nothing was made active): its items go, and
    /// `failure` is recorded as the draft's failed automatic start.
    async fn abandon_start(
        &self,
        id: i64,
        claim: Timestamp,
        failure: Option<&str>,
    ) -> Result<(), StoreError>;
    /// For each of `accounts`: whether it is active, and the entitlements it holds other than
    /// through a group (what a decision checks for drift).
    async fn holdings(
        &self,
        org: OrgId,
        accounts: &[String],
    ) -> Result<Vec<(String, bool, Vec<String>)>, StoreError>;

    /// Moves a campaign from one of `from` to `to` (closed or cancelled), deciding its open
    /// items as `policy_decision` (`keep`, `revoke`) when given, with its audit entry.
    async fn end_campaign(
        &self,
        id: i64,
        from: &[CampaignState],
        to: CampaignState,
        actor: &str,
        policy_decision: Option<&str>,
        audit: &AuditEvent,
    ) -> Result<Option<Campaign>, StoreError>;
    /// Sets a campaign's reminder, overdue or next-run mark, with its audit entry; false when
    /// another replica set it first.
    async fn mark_campaign(
        &self,
        id: i64,
        mark: CampaignMark,
        audit: Option<&AuditEvent>,
    ) -> Result<bool, StoreError>;

    async fn list_items(
        &self,
        org: OrgId,
        filter: &ItemFilter,
    ) -> Result<Vec<ReviewItem>, StoreError>;
    async fn get_items(&self, org: OrgId, ids: &[i64]) -> Result<Vec<ReviewItem>, StoreError>;
    /// A campaign's items in id order, after `after` (for its report).
    async fn campaign_items(
        &self,
        campaign: i64,
        after: i64,
        limit: u32,
    ) -> Result<Vec<ReviewItem>, StoreError>;
    /// The item whose revocation request is `request`, if any.
    async fn item_of_request(&self, request: i64) -> Result<Option<ReviewItem>, StoreError>;
    /// Open items per reviewer of a campaign, most first.
    async fn open_by_reviewer(&self, campaign: i64) -> Result<Vec<(String, i64)>, StoreError>;
    async fn summary(&self, campaign: i64, now: Timestamp) -> Result<Summary, StoreError>;
    /// Every stage decision and reassignment of a campaign's items with ids in
    /// (`after_item`, `through_item`], by item then order.
    async fn decision_records(
        &self,
        campaign: i64,
        after_item: i64,
        through_item: i64,
    ) -> Result<Vec<DecisionRecord>, StoreError>;

    /// Writes the decisions that still apply (see [`ItemDecision`]) with their evidence and
    /// audit entries (`audit[i]` for `decisions[i]`); returns the ids written.
    async fn decide_items(
        &self,
        decisions: &[ItemDecision],
        audit: &[AuditEvent],
    ) -> Result<Vec<i64>, StoreError>;
    /// Writes a reassignment if the item is still open at its stage with `from`.
    async fn reassign_item(
        &self,
        reassignment: &Reassignment,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;
    /// Up to `limit` items of `campaign` whose revocation is still to be requested.
    async fn items_to_remediate(
        &self,
        campaign: i64,
        limit: u32,
    ) -> Result<Vec<ReviewItem>, StoreError>;
    /// Records what requesting an item's revocation came to.
    async fn set_remediation(
        &self,
        item: i64,
        remediation: &str,
        request: Option<i64>,
        note: Option<&str>,
    ) -> Result<(), StoreError>;
}

/// A mark on a campaign: reminded and overdue once each; a draft's failed automatic start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CampaignMark {
    Reminded(Timestamp),
    Overdue(Timestamp),
    StartFailed(Timestamp, String),
}
