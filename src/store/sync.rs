//! What the store keeps for syncs: runs and their per-resource checkpoints, the lock that keeps
//! one sync per org, the staged changes that become the change history when a run commits, and
//! the key-range lookups a sync compares pages with.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use provost_connector::times::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::{OrgId, StoreError};

/// The three tables of the identity model, as the change history names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    Account,
    Entitlement,
    Grant,
    /// What an entitlement opens (object, field, setup-entity permissions).
    Permission,
}

impl Entity {
    pub const ALL: [Entity; 4] = [
        Entity::Account,
        Entity::Entitlement,
        Entity::Grant,
        Entity::Permission,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Account => "account",
            Entity::Entitlement => "entitlement",
            Entity::Grant => "grant",
            Entity::Permission => "permission",
        }
    }

    /// The live table holding this entity. A constant, never input: safe to put in SQL.
    pub(super) fn table(self) -> &'static str {
        match self {
            Entity::Account => "accounts",
            Entity::Entitlement => "entitlements",
            Entity::Grant => "grants",
            Entity::Permission => "permissions",
        }
    }
}

impl FromStr for Entity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Entity::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| {
                format!("unknown entity `{s}`: expected account, entitlement, grant or permission")
            })
    }
}

/// What happened to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    Created,
    Updated,
    Removed,
}

impl ChangeOp {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Created => "created",
            ChangeOp::Updated => "updated",
            ChangeOp::Removed => "removed",
        }
    }
}

impl FromStr for ChangeOp {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "created" => Ok(ChangeOp::Created),
            "updated" => Ok(ChangeOp::Updated),
            "removed" => Ok(ChangeOp::Removed),
            other => Err(format!(
                "unknown change `{other}`: expected created, updated or removed"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Reads everything and compares it with the store.
    Full,
    /// Reads what changed since the last completed run where the source allows it.
    Incremental,
}

impl SyncMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncMode::Full => "full",
            SyncMode::Incremental => "incremental",
        }
    }
}

impl FromStr for SyncMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(SyncMode::Full),
            "incremental" => Ok(SyncMode::Incremental),
            other => Err(format!("unknown sync mode `{other}`")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Reading, or interrupted while reading (its process died: the next sync resumes it).
    Running,
    /// Stopped by the API quota or budget, with its checkpoints: the next sync resumes it.
    Paused,
    Succeeded,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Paused => "paused",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "running" => Ok(RunStatus::Running),
            "paused" => Ok(RunStatus::Paused),
            "succeeded" => Ok(RunStatus::Succeeded),
            "failed" => Ok(RunStatus::Failed),
            other => Err(format!("unknown run status `{other}`")),
        }
    }
}

/// Created, updated and removed rows of one entity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OpCounts {
    pub created: u64,
    pub updated: u64,
    pub removed: u64,
}

impl OpCounts {
    pub fn add(&mut self, op: ChangeOp) {
        match op {
            ChangeOp::Created => self.created += 1,
            ChangeOp::Updated => self.updated += 1,
            ChangeOp::Removed => self.removed += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.created + self.updated + self.removed
    }
}

/// What a run read and changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunCounts {
    pub accounts: OpCounts,
    pub entitlements: OpCounts,
    pub grants: OpCounts,
    pub permissions: OpCounts,
    /// Rows the connector delivered (accounts, entitlements, grants and permissions).
    pub rows_read: u64,
    /// Grants left out because their account or entitlement was not read (created in the source
    /// while the run was reading); the next sync picks them up.
    #[serde(default)]
    pub grants_skipped: u64,
    /// Permissions left out because their entitlement was not read (created while the run
    /// was reading); the next sync picks them up.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub permissions_skipped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl RunCounts {
    pub fn of(&mut self, entity: Entity) -> &mut OpCounts {
        match entity {
            Entity::Account => &mut self.accounts,
            Entity::Entitlement => &mut self.entitlements,
            Entity::Grant => &mut self.grants,
            Entity::Permission => &mut self.permissions,
        }
    }

    pub fn changes(&self) -> u64 {
        self.accounts.total()
            + self.entitlements.total()
            + self.grants.total()
            + self.permissions.total()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub i64);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One sync run of one org.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncRun {
    pub id: RunId,
    #[serde(skip)]
    pub org: OrgId,
    pub mode: SyncMode,
    /// What started it: `cli`, `schedule`, `demo`, `bench`...
    pub started_by: String,
    pub status: RunStatus,
    /// Why a paused run paused: `daily_limit` or `api_budget`.
    pub pause_reason: Option<String>,
    #[serde(with = "provost_connector::times::serde")]
    pub started_at: Timestamp,
    #[serde(with = "provost_connector::times::serde")]
    pub updated_at: Timestamp,
    #[serde(with = "provost_connector::times::serde::option")]
    pub finished_at: Option<Timestamp>,
    /// How many times it was started: 1, plus one per resume.
    pub attempts: i64,
    /// API calls the run made, over all its attempts.
    pub api_calls: i64,
    /// The org's API usage of the day when the run last spoke to it.
    pub api_used: Option<i64>,
    pub api_limit: Option<i64>,
    pub counts: RunCounts,
    pub error: Option<String>,
}

/// A resource's [`ResourceState::watermark`] once its read skipped rows (a grant or
/// permission of something not stored), or a page said its watermark must not be kept (an
/// empty one): no later page's watermark replaces it, and the commit stores the watermark the
/// read started from (`since`), or none after a read from the start or from a watermark of
/// the rows as read ([`ROWS_AS_READ`](provost_connector::connector::ROWS_AS_READ): it
/// describes older rows than the store now holds), so the next sync reads again what this one
/// read and finds those rows. (A user whose grant was skipped had changed since `since`.)
pub const NO_WATERMARK: &str = "";

/// A run's checkpoint of one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceState {
    pub resource: String,
    pub position: i64,
    pub done: bool,
    /// The connector's cursor of the next page; `None` before the first page.
    #[serde(skip)]
    pub cursor: Option<String>,
    /// The last key the pages so far covered (full reads).
    #[serde(skip)]
    pub last_key: Option<String>,
    /// The watermark this run reads changes after (`None`: a full read of the resource).
    #[serde(skip)]
    pub since: Option<String>,
    /// The watermark to store once the resource is read to the end; [`NO_WATERMARK`] once
    /// rows of it were skipped (the next sync reads it whole).
    #[serde(skip)]
    pub watermark: Option<String>,
    pub pages: i64,
    /// Source records read so far (of `total`, the source's count when the read began).
    pub records: i64,
    pub total: Option<i64>,
}

/// Told (a value sent) once the page before is staged; dropped unsent when it is not: see
/// [`Store::stage_page`].
pub type StagedBefore = tokio::sync::oneshot::Receiver<()>;

/// See [`Store::stage_beside`].
pub type StagingLeave = tokio::sync::OwnedSemaphorePermit;

/// A change a run observed, staged until the run commits.
#[derive(Debug, Clone)]
pub struct StagedChange {
    pub resource: String,
    pub entity: Entity,
    pub object_id: String,
    pub op: ChangeOp,
    /// The fields that changed (`updated` only), attribute keys as `attributes.NAME`.
    pub fields: Option<Vec<String>>,
    pub before: Option<Value>,
    /// The row as the source has it now, serialised once (`None` for a removal).
    pub after: Option<Box<RawValue>>,
    /// The digest of `after` (0 for a removal), stored with the row when the run commits.
    pub digest: i64,
}

impl StagedChange {
    /// The user a grant's change concerns (`account_id` of the row after it, or before it for
    /// a removal), which the history of a user's grants is found by; `None` for other entities.
    pub fn account(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Grant {
            account_id: Option<String>,
        }
        if self.entity != Entity::Grant {
            return None;
        }
        match (&self.after, &self.before) {
            (Some(after), _) => serde_json::from_str::<Grant>(after.get())
                .ok()
                .and_then(|grant| grant.account_id),
            (None, Some(before)) => before["account_id"].as_str().map(str::to_owned),
            (None, None) => None,
        }
    }
}

/// A recorded change, as the history shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeRecord {
    pub id: i64,
    /// The sync run that observed the change, or `None` when Provost made it.
    pub run_id: Option<RunId>,
    /// The access request whose execution made the change.
    pub request_id: Option<i64>,
    pub resource: String,
    pub entity: Entity,
    pub object_id: String,
    pub op: ChangeOp,
    pub fields: Option<Vec<String>>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    #[serde(with = "provost_connector::times::serde")]
    pub observed_at: Timestamp,
}

/// Which changes to list: all of an org's committed history, narrowed by the set fields.
#[derive(Debug, Clone, Default)]
pub struct ChangeQuery {
    pub entity: Option<Entity>,
    pub object_id: Option<String>,
    pub run: Option<RunId>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Keyset pagination: changes with a larger id.
    pub after: Option<i64>,
    pub limit: u32,
}

/// Keys from `start` (inclusive) to `end` (exclusive; `None`: no end), in byte order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    pub start: String,
    pub end: Option<String>,
}

/// Who holds an org's sync lock, when someone else does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockOutcome {
    Acquired,
    Held {
        holder: String,
        run_id: Option<RunId>,
        expires_at: Timestamp,
    },
}

#[async_trait]
pub trait SyncStore: Send + Sync {
    /// Takes the org's sync lock for `ttl` unless another holder has it and it has not expired.
    async fn acquire_sync_lock(
        &self,
        org: OrgId,
        holder: &str,
        ttl: chrono::TimeDelta,
    ) -> Result<LockOutcome, StoreError>;
    /// Extends the lock and records the run it serves; `false` when `holder` no longer holds it.
    async fn renew_sync_lock(
        &self,
        org: OrgId,
        holder: &str,
        run: Option<RunId>,
        ttl: chrono::TimeDelta,
    ) -> Result<bool, StoreError>;
    async fn release_sync_lock(&self, org: OrgId, holder: &str) -> Result<(), StoreError>;

    /// Creates a running run with one checkpoint per resource, in order, each with the
    /// watermark its read of changes starts after (`None`: read it whole).
    async fn create_sync_run(
        &self,
        org: OrgId,
        mode: SyncMode,
        started_by: &str,
        resources: &[(&str, Option<String>)],
    ) -> Result<SyncRun, StoreError>;
    /// The org's latest run that is paused or was interrupted (running without a lock holder).
    async fn unfinished_sync_run(&self, org: OrgId) -> Result<Option<SyncRun>, StoreError>;
    async fn sync_run(&self, run: RunId) -> Result<Option<SyncRun>, StoreError>;
    /// The org's runs, newest first.
    async fn list_sync_runs(&self, org: OrgId, limit: u32) -> Result<Vec<SyncRun>, StoreError>;
    /// The org's runs started at or after `since`, newest first, at most `limit`.
    async fn sync_runs_since(
        &self,
        org: OrgId,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<SyncRun>, StoreError>;
    async fn sync_resources(&self, run: RunId) -> Result<Vec<ResourceState>, StoreError>;
    /// Saves a run's status, counts, API figures and error.
    async fn save_sync_run(&self, run: &SyncRun) -> Result<(), StoreError>;
    /// Leave to stage a page beside the page before it, still being staged (with
    /// [`Store::stage_page`]'s `before`), held until the page is staged; `None` when no more
    /// may be now, and always where the database has one writer (SQLite). Such a page holds a
    /// connection while it waits, so the leave is counted across every sync of the store.
    fn stage_beside(&self) -> Option<StagingLeave>;
    /// Stages a page's changes and moves the resource's checkpoint past it, in one transaction.
    ///
    /// `before` is the stage of the page before it when that one may still be in progress:
    /// this page's changes are written meanwhile, but its checkpoint and its commit wait for
    /// that one's. When that one is not staged (`before` ends without a value), nor is this one:
    /// it fails with [`StoreError::OutOfTurn`]. So the checkpoints move in the pages' order,
    /// and a run that resumes after a failure or a kill finds every page before its
    /// checkpoint staged.
    async fn stage_page(
        &self,
        run: &SyncRun,
        checkpoint: &ResourceState,
        changes: &[StagedChange],
        before: Option<StagedBefore>,
    ) -> Result<(), StoreError>;
    /// Drops what a run staged for one resource and rewinds its checkpoint to the start.
    async fn restart_sync_resource(&self, run: RunId, resource: &str) -> Result<(), StoreError>;
    /// Ends a run as failed and drops everything it staged: the stored state stays as it was.
    /// `event` (the `sync_failed` audit entry, which webhooks send as `sync.failed`) is
    /// appended in the same transaction.
    async fn fail_sync_run(
        &self,
        run: &SyncRun,
        event: Option<&crate::audit::AuditEvent>,
    ) -> Result<(), StoreError>;
    /// Records a run that could not start (its preflight failed, Salesforce could not be
    /// reached, its credentials are missing) as failed with `error`, and `event` with it.
    async fn record_unstarted_sync_run(
        &self,
        org: OrgId,
        mode: SyncMode,
        started_by: &str,
        error: &str,
        event: &crate::audit::AuditEvent,
    ) -> Result<SyncRun, StoreError>;
    /// Applies a run's staged changes to the stored model, stores its watermarks and marks it
    /// succeeded, in one transaction. `false` (and nothing applied) when `holder` lost the lock.
    async fn commit_sync_run(
        &self,
        run: &SyncRun,
        holder: &str,
        ttl: chrono::TimeDelta,
    ) -> Result<bool, StoreError>;

    /// The watermarks of the org's last completed reads, by resource.
    async fn sync_watermarks(&self, org: OrgId) -> Result<Vec<(String, String)>, StoreError>;
    /// Ids and digests of the stored rows of `entity` read by `resource` whose ids fall in
    /// `ranges`, in id order.
    async fn stored_digests(
        &self,
        org: OrgId,
        entity: Entity,
        resource: &str,
        ranges: &[KeyRange],
    ) -> Result<Vec<(String, i64)>, StoreError>;
    /// Stored rows of `entity` by id, as JSON (the history's before-values).
    async fn stored_rows(
        &self,
        org: OrgId,
        entity: Entity,
        ids: &[String],
    ) -> Result<Vec<(String, Value)>, StoreError>;
    /// The ids of `entity` a run has staged as created or removed, with the operation.
    async fn staged_keys(
        &self,
        run: RunId,
        entity: Entity,
    ) -> Result<Vec<(String, ChangeOp)>, StoreError>;
    /// Every stored id of `entity`.
    async fn stored_ids(&self, org: OrgId, entity: Entity) -> Result<Vec<String>, StoreError>;
    /// When the first committed change of `entity` was observed, if there is one: where its
    /// history begins.
    async fn first_change_at(
        &self,
        org: OrgId,
        entity: Entity,
    ) -> Result<Option<Timestamp>, StoreError>;
    /// The committed change history, oldest first.
    async fn list_changes(
        &self,
        org: OrgId,
        query: &ChangeQuery,
    ) -> Result<Vec<ChangeRecord>, StoreError>;
}
