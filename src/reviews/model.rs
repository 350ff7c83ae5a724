//! What an access review keeps: a campaign, its definition, its items and their decisions.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use provost_connector::times::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::keys::OrgId;

/// Where a campaign is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    Draft,
    Active,
    Closed,
    Cancelled,
}

impl CampaignState {
    pub const ALL: [CampaignState; 4] = [
        CampaignState::Draft,
        CampaignState::Active,
        CampaignState::Closed,
        CampaignState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Draft => "draft",
            CampaignState::Active => "active",
            CampaignState::Closed => "closed",
            CampaignState::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for CampaignState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CampaignState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CampaignState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown campaign state `{s}`: expected one of {}",
                    CampaignState::ALL.map(CampaignState::as_str).join(", ")
                )
            })
    }
}

/// What becomes of the items nobody decided when a campaign closes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClosePolicy {
    /// Left undecided, and reported as such.
    #[default]
    LeaveOpen,
    Keep,
    Revoke,
}

impl ClosePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ClosePolicy::LeaveOpen => "leave_open",
            ClosePolicy::Keep => "keep",
            ClosePolicy::Revoke => "revoke",
        }
    }
}

/// How often a recurring campaign runs again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recurrence {
    Monthly,
    Quarterly,
}

impl Recurrence {
    pub fn months(self) -> u32 {
        match self {
            Recurrence::Monthly => 1,
            Recurrence::Quarterly => 3,
        }
    }
}

/// Who reviews an item at one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The user's manager (`ManagerId`), when active.
    Manager,
    /// The entitlement's owner (`owners`, over the org's `entitlement_owners`).
    Owner,
    /// One of `reviewers`, the same one for all of a user's items.
    Reviewers,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Manager => "manager",
            Rule::Owner => "owner",
            Rule::Reviewers => "reviewers",
        }
    }
}

/// Which (user, entitlement) pairs a campaign reviews. Every part given must match; a list
/// matches when any of its values does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// `permission_set`, `permission_set_group`, `profile`, `role`, `public_group`,
    /// `user_license`, `permission_set_license`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entitlement_types: Vec<String>,
    /// Entitlements by id or API name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entitlements: Vec<String>,
    /// Entitlements that carry any of these system permissions (`ModifyAllData`, `View All
    /// Data`...): a permission set holding it, a profile whose own set does, a group whose
    /// result does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
    /// Users of these Salesforce user types (`Standard`...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_types: Vec<String>,
    /// Users with these profiles (id or API name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// Users with these roles (id or API name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Users by id or username.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub active_only: bool,
    /// Only grants made or changed at or after this time (a delta review).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "provost_connector::times::serde::option"
    )]
    pub changed_since: Option<Timestamp>,
}

/// Who reviews each item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewerRules {
    /// One rule per stage: `["manager"]`, or `["manager", "owner"]` for two stages.
    pub stages: Vec<Rule>,
    /// Reviewers for the `reviewers` rule: Salesforce usernames or user ids, or other names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reviewers: Vec<String>,
    /// Entitlement (API name or id) to owner, over the org's `entitlement_owners`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub owners: BTreeMap<String, String>,
    /// Who reviews what no rule reaches, in order: the first that is not the user under review.
    pub fallback: Vec<String>,
}

/// A campaign as defined: what it reviews, who reviews, and what happens at the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    pub scope: Scope,
    pub reviewers: ReviewerRules,
    #[serde(default)]
    pub close_policy: ClosePolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<Recurrence>,
    /// When `provost serve` starts the draft by itself (unset: when someone starts it).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "provost_connector::times::serde::option"
    )]
    pub starts_at: Option<Timestamp>,
    /// A fixed due time (unset: `duration_days` after the start).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "provost_connector::times::serde::option"
    )]
    pub due_at: Option<Timestamp>,
    /// Days a reviewer has from the start (each recurring run gets as many).
    pub duration_days: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dormant_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remind_days_before: Option<u32>,
    /// Refuse to start above this many items (unless forced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<u32>,
}

/// A campaign as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Campaign {
    pub id: i64,
    #[serde(skip)]
    pub org: OrgId,
    pub name: String,
    pub state: CampaignState,
    pub definition: Definition,
    #[serde(with = "provost_connector::times::serde")]
    pub due_at: Timestamp,
    pub created_by: String,
    #[serde(with = "provost_connector::times::serde")]
    pub created_at: Timestamp,
    #[serde(with = "provost_connector::times::serde::option")]
    pub started_at: Option<Timestamp>,
    /// When the sync the items were taken from finished.
    #[serde(with = "provost_connector::times::serde::option")]
    pub data_as_of: Option<Timestamp>,
    pub items: i64,
    #[serde(with = "provost_connector::times::serde::option")]
    pub closed_at: Option<Timestamp>,
    pub closed_by: Option<String>,
    #[serde(with = "provost_connector::times::serde::option")]
    pub reminded_at: Option<Timestamp>,
    #[serde(with = "provost_connector::times::serde::option")]
    pub overdue_at: Option<Timestamp>,
    #[serde(with = "provost_connector::times::serde::option")]
    pub next_run_at: Option<Timestamp>,
    /// A draft's last failed automatic start, and why.
    #[serde(with = "provost_connector::times::serde::option")]
    pub start_failed_at: Option<Timestamp>,
    pub start_error: Option<String>,
    /// The recurring campaign this run was made from.
    pub parent_id: Option<i64>,
}

/// The reviewer of one stage of an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageReviewer {
    /// A lower-case Salesforce username, or a name given in the definition.
    pub reviewer: String,
    /// Their Salesforce user id, when they are a user of the org.
    pub account_id: Option<String>,
    /// The rule that chose them (`manager`, `owner`, `reviewers`, `fallback`), and why a
    /// fallback was needed.
    pub rule: String,
}

/// An item of a campaign: one user holding one entitlement when it started.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewItem {
    pub id: i64,
    pub campaign_id: i64,
    pub account_id: String,
    pub username: String,
    pub display_name: String,
    pub entitlement_id: String,
    pub kind: String,
    pub api_name: String,
    pub grant_id: String,
    /// Last login, how and when the grant was made, what it brings, peers (see `context`).
    pub context: Value,
    pub privileged: bool,
    /// `revoke` when the data says so (`context.reasons` says why).
    pub suggestion: Option<String>,
    /// Higher first: 2 privileged and suggested, 1 either, 0 neither.
    pub priority: i64,
    pub stage: i64,
    pub stages: i64,
    pub reviewer: String,
    pub reviewers: Vec<StageReviewer>,
    pub state: String,
    pub decision: Option<String>,
    pub comment: Option<String>,
    pub decided_by: Option<String>,
    #[serde(with = "provost_connector::times::serde::option")]
    pub decided_at: Option<Timestamp>,
    /// What had changed in Salesforce since the start when the item was decided.
    pub drift: Option<String>,
    /// For a revocation: `pending`, `requested`, `not_needed`, `refused`.
    pub remediation: Option<String>,
    pub request_id: Option<i64>,
    pub remediation_note: Option<String>,
    /// The remediation request's state, read with the item.
    pub request_state: Option<String>,
    pub request_error: Option<String>,
}

/// An item to store when a campaign starts.
#[derive(Debug, Clone)]
pub struct NewItem {
    pub account_id: String,
    pub username: String,
    pub display_name: String,
    pub entitlement_id: String,
    pub kind: String,
    pub api_name: String,
    pub grant_id: String,
    pub context: Value,
    pub privileged: bool,
    pub suggestion: Option<String>,
    pub priority: i64,
    pub reviewers: Vec<StageReviewer>,
}

/// One stage's decision or a reassignment, as kept for the evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionRecord {
    pub item_id: i64,
    pub stage: i64,
    pub actor: String,
    pub decision: String,
    pub comment: Option<String>,
    #[serde(with = "provost_connector::times::serde")]
    pub at: Timestamp,
}
