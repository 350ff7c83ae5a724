//! [`SyncStore`](super::sync::SyncStore): runs, their locks and checkpoints, staged changes
//! and their commit, and the change history.
//!
//! Bulk writes bind many rows per statement; table names come from
//! [`Entity::table`](super::sync::Entity), constants, never input.

use provost_connector::connector::ROWS_AS_READ;
use provost_connector::model::{Account, Entitlement, Grant, Permission};
use provost_connector::times::Timestamp;
use serde_json::Value;
use sqlx::types::Json;

use super::queries::{AccountRow, EntitlementRow, GrantRow, PermissionRow};
use super::sql::{build, sql};
use super::sync::{ChangeRecord, ResourceState, RunCounts, RunId, RunStatus, SyncMode, SyncRun};
use super::{queries, SqlStore};
use super::{OrgId, StoreError};

/// Rows per multi-row statement: 12 columns x 400 stays under both databases' bind limits.
pub(super) const CHUNK: usize = 400;

/// Whether org `$1` has anything stored: a commit into one without is a first load.
const ORG_HAS_ROWS: &str = "SELECT EXISTS (SELECT 1 FROM accounts WHERE org_id = $1) \
    OR EXISTS (SELECT 1 FROM entitlements WHERE org_id = $1)";

/// Rows a commit creates in an empty table from which it builds the table's indexes after
/// the rows are in rather than row by row.
const BULK_LOAD_ROWS: u64 = 5_000;

pub(super) const RUN_COLUMNS: &str = "id, org_id, mode, started_by, status, pause_reason, \
    started_at, updated_at, finished_at, attempts, api_calls, api_used, api_limit, counts, error";

pub(super) const ACCOUNT_COLUMNS: &str = "id, username, email, first_name, last_name, \
    display_name, active, user_type, attributes";
pub(super) const ENTITLEMENT_COLUMNS: &str =
    "id, kind, api_name, label, description, grantable, attributes";
pub(super) const GRANT_COLUMNS: &str =
    "id, account_id, entitlement_id, source, expires_at, attributes";
pub(super) const PERMISSION_COLUMNS: &str = "id, entitlement_id, kind, target, actions, attributes";

#[derive(sqlx::FromRow)]
pub(super) struct RunRow {
    id: i64,
    org_id: i64,
    mode: String,
    started_by: String,
    status: String,
    pause_reason: Option<String>,
    started_at: Timestamp,
    updated_at: Timestamp,
    finished_at: Option<Timestamp>,
    attempts: i64,
    api_calls: i64,
    api_used: Option<i64>,
    api_limit: Option<i64>,
    counts: Json<RunCounts>,
    error: Option<String>,
}

impl TryFrom<RunRow> for SyncRun {
    type Error = StoreError;

    fn try_from(row: RunRow) -> Result<Self, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            what: "sync run",
            detail: format!("{detail} (run {})", row.id),
        };
        Ok(SyncRun {
            id: RunId(row.id),
            org: OrgId(row.org_id),
            mode: row.mode.parse().map_err(corrupt)?,
            started_by: row.started_by,
            status: row.status.parse().map_err(corrupt)?,
            pause_reason: row.pause_reason,
            started_at: row.started_at,
            updated_at: row.updated_at,
            finished_at: row.finished_at,
            attempts: row.attempts,
            api_calls: row.api_calls,
            api_used: row.api_used,
            api_limit: row.api_limit,
            counts: row.counts.0,
            error: row.error,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ResourceRow {
    resource: String,
    position: i64,
    done: bool,
    cursor: Option<String>,
    last_key: Option<String>,
    since: Option<String>,
    watermark: Option<String>,
    pages: i64,
    records: i64,
    total: Option<i64>,
}

impl From<ResourceRow> for ResourceState {
    fn from(row: ResourceRow) -> Self {
        ResourceState {
            resource: row.resource,
            position: row.position,
            done: row.done,
            cursor: row.cursor,
            last_key: row.last_key,
            since: row.since,
            watermark: row.watermark,
            pages: row.pages,
            records: row.records,
            total: row.total,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ChangeRow {
    id: i64,
    run_id: Option<i64>,
    request_id: Option<i64>,
    resource: String,
    entity: String,
    object_id: String,
    op: String,
    fields: Option<String>,
    before: Option<Json<Value>>,
    after: Option<Json<Value>>,
    observed_at: Timestamp,
}

impl TryFrom<ChangeRow> for ChangeRecord {
    type Error = StoreError;

    fn try_from(row: ChangeRow) -> Result<Self, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            what: "change",
            detail: format!("{detail} (change {})", row.id),
        };
        let fields = match row.fields {
            Some(text) => {
                Some(serde_json::from_str(&text).map_err(|err| corrupt(format!("fields: {err}")))?)
            }
            None => None,
        };
        Ok(ChangeRecord {
            id: row.id,
            run_id: row.run_id.map(RunId),
            request_id: row.request_id,
            resource: row.resource,
            entity: row.entity.parse().map_err(corrupt)?,
            object_id: row.object_id,
            op: row.op.parse().map_err(corrupt)?,
            fields,
            before: row.before.map(|j| j.0),
            after: row.after.map(|j| j.0),
            observed_at: row.observed_at,
        })
    }
}

/// The `ON CONFLICT (org_id, id) DO UPDATE` assignments of a grant's `since` and
/// `request_id`: kept while the grant's entitlement stays, taken from the new row when it
/// changes (the change recorded with it names the entitlement among its fields).
pub(super) const SINCE_ON_CONFLICT: &str = "\
    since = CASE WHEN grants.entitlement_id = excluded.entitlement_id \
        THEN grants.since ELSE excluded.since END, \
    request_id = CASE WHEN grants.entitlement_id = excluded.entitlement_id \
        THEN grants.request_id ELSE excluded.request_id END";

pub(super) fn row_json(row: StoredRow) -> Result<(String, Value), StoreError> {
    let (id, value) = match row {
        StoredRow::Account(row) => {
            let account = Account::from(row);
            (account.id.clone(), serde_json::to_value(account))
        }
        StoredRow::Entitlement(row) => {
            let entitlement = Entitlement::try_from(row)?;
            (entitlement.id.clone(), serde_json::to_value(entitlement))
        }
        StoredRow::Grant(row) => {
            let grant = Grant::try_from(row)?;
            (grant.id.clone(), serde_json::to_value(grant))
        }
        StoredRow::Permission(row) => {
            let permission = Permission::try_from(row)?;
            (permission.id.clone(), serde_json::to_value(permission))
        }
    };
    Ok((id, value.expect("identity rows serialise to JSON")))
}

pub(super) enum StoredRow {
    Account(AccountRow),
    Entitlement(EntitlementRow),
    Grant(GrantRow),
    Permission(PermissionRow),
}

/// How PostgreSQL takes a page's staged changes: one COPY, without a statement to plan or a
/// parameter per value.
const COPY_CHANGES: &str = "COPY changes (org_id, run_id, resource, entity, object_id, op, \
    fields, before, after, digest, observed_at, account_id) FROM STDIN";

/// `changes` as rows of COPY's text format, in [`COPY_CHANGES`]' column order.
fn copy_rows(
    run: &super::sync::SyncRun,
    changes: &[super::sync::StagedChange],
    now: Timestamp,
) -> Vec<u8> {
    use super::sql::copy_text;
    let (org, run_id) = (run.org.0.to_string(), run.id.0.to_string());
    // Microseconds, cut as a bound time's are: PostgreSQL keeps no more.
    let observed = now.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let mut rows = Vec::with_capacity(changes.len() * 320);
    for change in changes {
        let fields = change
            .fields
            .as_ref()
            .map(|f| serde_json::to_string(f).expect("strings serialise"));
        let before = change.before.as_ref().map(Value::to_string);
        let digest = change.digest.to_string();
        let account = change.account();
        let values = [
            Some(org.as_str()),
            Some(run_id.as_str()),
            Some(change.resource.as_str()),
            Some(change.entity.as_str()),
            Some(change.object_id.as_str()),
            Some(change.op.as_str()),
            fields.as_deref(),
            before.as_deref(),
            change
                .after
                .as_deref()
                .map(serde_json::value::RawValue::get),
            Some(digest.as_str()),
            Some(observed.as_str()),
            account.as_deref(),
        ];
        let last = values.len() - 1;
        for (i, value) in values.into_iter().enumerate() {
            copy_text(&mut rows, value, if i == last { b'\n' } else { b'\t' });
        }
    }
    rows
}

/// `changes` as multi-row inserts of [`CHUNK`] rows each (the last may hold fewer).
fn insert_changes<'q>(
    run: &super::sync::SyncRun,
    changes: &'q [super::sync::StagedChange],
    now: Timestamp,
) -> Vec<super::sql::Sql<'q>> {
    changes
        .chunks(CHUNK)
        .map(|chunk| {
            let mut insert = build(
                "INSERT INTO changes (org_id, run_id, resource, entity, object_id, op, \
                     fields, before, after, digest, observed_at, account_id) ",
            );
            insert.push_values(chunk, |mut row, change| {
                row.push_bind(run.org.0)
                    .push_bind(run.id.0)
                    .push_bind(change.resource.clone())
                    .push_bind(change.entity.as_str())
                    .push_bind(change.object_id.clone())
                    .push_bind(change.op.as_str())
                    .push_bind(
                        change
                            .fields
                            .as_ref()
                            .map(|f| serde_json::to_string(f).expect("strings serialise")),
                    )
                    .push_bind(change.before.clone().map(sqlx::types::Json))
                    .push_bind(change.after.as_deref().map(sqlx::types::Json))
                    .push_bind(change.digest)
                    .push_bind(now)
                    .push_bind(change.account());
            });
            // A full chunk's text is always the same and stays prepared; the last one's
            // varies with its number of rows, and kept it would fill the statement cache.
            if chunk.len() == CHUNK {
                insert
            } else {
                insert.once()
            }
        })
        .collect()
}

pub(super) fn status_name(status: RunStatus) -> &'static str {
    status.as_str()
}

pub(super) fn mode_name(mode: SyncMode) -> &'static str {
    mode.as_str()
}

#[async_trait::async_trait]
impl super::sync::SyncStore for SqlStore {
    async fn acquire_sync_lock(
        &self,
        org: OrgId,
        holder: &str,
        ttl: chrono::TimeDelta,
    ) -> Result<super::sync::LockOutcome, StoreError> {
        let now = chrono::Utc::now();
        sql(
            "INSERT INTO sync_locks (org_id, holder, run_id, acquired_at, expires_at) \
                 VALUES ($1, $2, NULL, $3, $4) ON CONFLICT (org_id) DO UPDATE SET \
                 holder = excluded.holder, run_id = NULL, acquired_at = excluded.acquired_at, \
                 expires_at = excluded.expires_at \
                 WHERE sync_locks.expires_at < $3 OR sync_locks.holder = $2",
        )
        .bind(org.0)
        .bind(holder)
        .bind(now)
        .bind(now + ttl)
        .execute(&self.pool)
        .await?;
        let (current, run_id, expires_at): (
            String,
            Option<i64>,
            provost_connector::times::Timestamp,
        ) = sql("SELECT holder, run_id, expires_at FROM sync_locks WHERE org_id = $1")
            .bind(org.0)
            .fetch_one(&self.pool)
            .await?;
        Ok(if current == holder {
            super::sync::LockOutcome::Acquired
        } else {
            super::sync::LockOutcome::Held {
                holder: current,
                run_id: run_id.map(super::sync::RunId),
                expires_at,
            }
        })
    }

    async fn renew_sync_lock(
        &self,
        org: OrgId,
        holder: &str,
        run: Option<super::sync::RunId>,
        ttl: chrono::TimeDelta,
    ) -> Result<bool, StoreError> {
        let renewed = sql(
            "UPDATE sync_locks SET expires_at = $3, run_id = COALESCE($4, run_id) \
                 WHERE org_id = $1 AND holder = $2",
        )
        .bind(org.0)
        .bind(holder)
        .bind(chrono::Utc::now() + ttl)
        .bind(run.map(|r| r.0))
        .execute(&self.pool)
        .await?;
        Ok(renewed == 1)
    }

    async fn release_sync_lock(&self, org: OrgId, holder: &str) -> Result<(), StoreError> {
        sql("DELETE FROM sync_locks WHERE org_id = $1 AND holder = $2")
            .bind(org.0)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_sync_run(
        &self,
        org: OrgId,
        mode: super::sync::SyncMode,
        started_by: &str,
        resources: &[(&str, Option<String>)],
    ) -> Result<super::sync::SyncRun, StoreError> {
        let now = chrono::Utc::now();
        let mut tx = self.pool.begin().await?;
        let (id,): (i64,) = sql(
            "INSERT INTO sync_runs (org_id, mode, started_by, status, started_at, updated_at) \
                 VALUES ($1, $2, $3, 'running', $4, $4) RETURNING id",
        )
        .bind(org.0)
        .bind(mode_name(mode))
        .bind(started_by)
        .bind(now)
        .fetch_one(&mut tx)
        .await?;
        for (position, (resource, since)) in resources.iter().enumerate() {
            sql(
                "INSERT INTO sync_resources (run_id, position, resource, since) \
                     VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(position as i64)
            .bind(*resource)
            .bind(since.as_deref())
            .execute(&mut tx)
            .await?;
        }
        tx.commit().await?;
        self.sync_run(super::sync::RunId(id))
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                what: "sync run",
                detail: format!("run {id} vanished after it was created"),
            })
    }

    async fn unfinished_sync_run(
        &self,
        org: OrgId,
    ) -> Result<Option<super::sync::SyncRun>, StoreError> {
        let row: Option<RunRow> = sql(format!(
            "SELECT {} FROM sync_runs WHERE org_id = $1 AND status IN ('running', 'paused') \
                 ORDER BY id DESC LIMIT 1",
            RUN_COLUMNS
        ))
        .bind(org.0)
        .fetch_optional(&self.pool)
        .await?;
        row.map(super::sync::SyncRun::try_from).transpose()
    }

    async fn sync_run(
        &self,
        run: super::sync::RunId,
    ) -> Result<Option<super::sync::SyncRun>, StoreError> {
        let row: Option<RunRow> = sql(format!(
            "SELECT {} FROM sync_runs WHERE id = $1",
            RUN_COLUMNS
        ))
        .bind(run.0)
        .fetch_optional(&self.pool)
        .await?;
        row.map(super::sync::SyncRun::try_from).transpose()
    }

    async fn list_sync_runs(
        &self,
        org: OrgId,
        limit: u32,
    ) -> Result<Vec<super::sync::SyncRun>, StoreError> {
        let rows: Vec<RunRow> = sql(format!(
            "SELECT {} FROM sync_runs WHERE org_id = $1 ORDER BY id DESC LIMIT $2",
            RUN_COLUMNS
        ))
        .bind(org.0)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(super::sync::SyncRun::try_from)
            .collect()
    }

    async fn sync_runs_since(
        &self,
        org: OrgId,
        since: provost_connector::times::Timestamp,
        limit: u32,
    ) -> Result<Vec<super::sync::SyncRun>, StoreError> {
        let rows: Vec<RunRow> = sql(format!(
            "SELECT {} FROM sync_runs WHERE org_id = $1 AND started_at >= $2 \
                 ORDER BY id DESC LIMIT $3",
            RUN_COLUMNS
        ))
        .bind(org.0)
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(super::sync::SyncRun::try_from)
            .collect()
    }

    async fn sync_resources(
        &self,
        run: super::sync::RunId,
    ) -> Result<Vec<super::sync::ResourceState>, StoreError> {
        let rows: Vec<ResourceRow> = sql(
            "SELECT resource, position, done, cursor, last_key, since, watermark, pages, \
                 records, total FROM sync_resources WHERE run_id = $1 ORDER BY position",
        )
        .bind(run.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn save_sync_run(&self, run: &super::sync::SyncRun) -> Result<(), StoreError> {
        sql(
            "UPDATE sync_runs SET status = $2, pause_reason = $3, updated_at = $4, \
                 finished_at = $5, attempts = $6, api_calls = $7, api_used = $8, api_limit = $9, \
                 counts = $10, error = $11 WHERE id = $1",
        )
        .bind(run.id.0)
        .bind(status_name(run.status))
        .bind(run.pause_reason.as_deref())
        .bind(chrono::Utc::now())
        .bind(run.finished_at)
        .bind(run.attempts)
        .bind(run.api_calls)
        .bind(run.api_used)
        .bind(run.api_limit)
        .bind(sqlx::types::Json(&run.counts))
        .bind(run.error.as_deref())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    fn stage_beside(&self) -> Option<super::sync::StagingLeave> {
        // A page's changes written while the one before commits: PostgreSQL's backends work
        // side by side (SQLite's semaphore has no permits).
        self.staging_beside.clone().try_acquire_owned().ok()
    }

    async fn stage_page(
        &self,
        run: &super::sync::SyncRun,
        checkpoint: &super::sync::ResourceState,
        changes: &[super::sync::StagedChange],
        mut before: Option<super::sync::StagedBefore>,
    ) -> Result<(), StoreError> {
        let now = chrono::Utc::now();
        // The statements are made before the transaction begins: SQLite's write lock, which
        // other writers (the executor, other orgs' syncs) wait for, is not held while values are
        // encoded (0.46 s of the 7.3 s a first sync of `large` held it staging). One page at a
        // time is staged on SQLite, so this takes nothing off the sync's own time there: one
        // page made beside the one being written (a permit of the staging semaphore) gained
        // nothing measurable and was not kept.
        // COPY pays two round trips of its own: a page with a few changes is inserted.
        let rows = (self.pool.backend() == super::Backend::Postgres && changes.len() >= CHUNK)
            .then(|| copy_rows(run, changes, now));
        let mut inserts = match rows {
            Some(_) => Vec::new(),
            None => insert_changes(run, changes, now),
        };
        // SQLite has one writer: this page's transaction starts once the one before ended.
        if self.pool.backend() == super::Backend::Sqlite {
            if let Some(before) = before.take() {
                before.await.map_err(|_| StoreError::OutOfTurn)?;
            }
        }
        let mut tx = self.pool.begin().await?;
        if let Some(settings) = self.pool.backend().staging_settings() {
            sql(settings).execute(&mut tx).await?;
        }
        if let Some(rows) = rows {
            if tx.copy_in(COPY_CHANGES, rows).await?.is_none() {
                inserts = insert_changes(run, changes, now);
            }
        }
        for insert in inserts {
            insert.execute(&mut tx).await?;
        }
        // The checkpoint moves past this page only once the page before is staged.
        if let Some(before) = before {
            if before.await.is_err() {
                tx.rollback().await?;
                return Err(StoreError::OutOfTurn);
            }
        }
        sql(
            "UPDATE sync_resources SET done = $3, cursor = $4, last_key = $5, \
                 watermark = $6, pages = $7, records = $8, total = $9 \
                 WHERE run_id = $1 AND resource = $2",
        )
        .bind(run.id.0)
        .bind(&checkpoint.resource)
        .bind(checkpoint.done)
        .bind(checkpoint.cursor.as_deref())
        .bind(checkpoint.last_key.as_deref())
        .bind(checkpoint.watermark.as_deref())
        .bind(checkpoint.pages)
        .bind(checkpoint.records)
        .bind(checkpoint.total)
        .execute(&mut tx)
        .await?;
        sql(
            "UPDATE sync_runs SET updated_at = $2, api_calls = $3, api_used = $4, \
                 api_limit = $5, counts = $6 WHERE id = $1",
        )
        .bind(run.id.0)
        .bind(now)
        .bind(run.api_calls)
        .bind(run.api_used)
        .bind(run.api_limit)
        .bind(sqlx::types::Json(&run.counts))
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn restart_sync_resource(
        &self,
        run: super::sync::RunId,
        resource: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sql("DELETE FROM changes WHERE run_id = $1 AND resource = $2")
            .bind(run.0)
            .bind(resource)
            .execute(&mut tx)
            .await?;
        sql(
            "UPDATE sync_resources SET done = FALSE, cursor = NULL, last_key = NULL, \
                 watermark = NULL, pages = 0, records = 0 WHERE run_id = $1 AND resource = $2",
        )
        .bind(run.0)
        .bind(resource)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn fail_sync_run(
        &self,
        run: &super::sync::SyncRun,
        event: Option<&crate::audit::AuditEvent>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sql("DELETE FROM changes WHERE run_id = $1")
            .bind(run.id.0)
            .execute(&mut tx)
            .await?;
        sql(
            "UPDATE sync_runs SET status = 'failed', pause_reason = NULL, updated_at = $2, \
                 finished_at = $2, attempts = $3, api_calls = $4, api_used = $5, api_limit = $6, \
                 counts = $7, error = $8 WHERE id = $1",
        )
        .bind(run.id.0)
        .bind(chrono::Utc::now())
        .bind(run.attempts)
        .bind(run.api_calls)
        .bind(run.api_used)
        .bind(run.api_limit)
        .bind(sqlx::types::Json(&run.counts))
        .bind(run.error.as_deref())
        .execute(&mut tx)
        .await?;
        if let Some(event) = event {
            Self::append_audit_in(&mut tx, std::slice::from_ref(event)).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn record_unstarted_sync_run(
        &self,
        org: OrgId,
        mode: super::sync::SyncMode,
        started_by: &str,
        error: &str,
        event: &crate::audit::AuditEvent,
    ) -> Result<super::sync::SyncRun, StoreError> {
        let now = chrono::Utc::now();
        let mut tx = self.pool.begin().await?;
        let (id,): (i64,) = sql(
            "INSERT INTO sync_runs (org_id, mode, started_by, status, started_at, updated_at, \
                 finished_at, attempts, error) \
                 VALUES ($1, $2, $3, 'failed', $4, $4, $4, 0, $5) RETURNING id",
        )
        .bind(org.0)
        .bind(mode_name(mode))
        .bind(started_by)
        .bind(now)
        .bind(error)
        .fetch_one(&mut tx)
        .await?;
        let mut event = event.clone();
        if let Some(data) = event.data.as_object_mut() {
            data.insert("run".to_owned(), serde_json::json!(id));
        }
        Self::append_audit_in(&mut tx, &[event]).await?;
        tx.commit().await?;
        self.sync_run(super::sync::RunId(id))
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                what: "sync run",
                detail: format!("run {id} vanished after it was recorded"),
            })
    }

    async fn commit_sync_run(
        &self,
        run: &super::sync::SyncRun,
        holder: &str,
        ttl: chrono::TimeDelta,
    ) -> Result<bool, StoreError> {
        // Into an org with nothing stored, SQLite checks the references once the rows are in
        // (see `sqlite_load`); otherwise the commit checks each row.
        let (tx, unchecked) = match self.unchecked_load(run.org).await? {
            Some(tx) => (tx, true),
            None => (self.pool.begin().await?, false),
        };
        self.apply_run(tx, run, holder, ttl, unchecked).await
    }

    async fn sync_watermarks(&self, org: OrgId) -> Result<Vec<(String, String)>, StoreError> {
        Ok(sql(
            "SELECT resource, watermark FROM sync_watermarks WHERE org_id = $1 ORDER BY resource",
        )
        .bind(org.0)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn stored_digests(
        &self,
        org: OrgId,
        entity: super::sync::Entity,
        resource: &str,
        ranges: &[super::sync::KeyRange],
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut found = Vec::new();
        for chunk in ranges.chunks(100) {
            let mut select = build(format!(
                "SELECT id, digest FROM {} WHERE org_id = ",
                entity.table()
            ));
            select
                .push_bind(org.0)
                .push(" AND resource = ")
                .push_bind(resource.to_owned());
            select.push(" AND (");
            for (i, range) in chunk.iter().enumerate() {
                if i > 0 {
                    select.push(" OR ");
                }
                select.push("(id >= ").push_bind(range.start.clone());
                if let Some(end) = &range.end {
                    select.push(" AND id < ").push_bind(end.clone());
                }
                select.push(")");
            }
            select.push(") ORDER BY id");
            let rows: Vec<(String, i64)> = select.fetch_all(&self.pool).await?;
            found.extend(rows);
        }
        if ranges.len() > 100 {
            found.sort();
        }
        Ok(found)
    }

    async fn stored_rows(
        &self,
        org: OrgId,
        entity: super::sync::Entity,
        ids: &[String],
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let columns = match entity {
            super::sync::Entity::Account => ACCOUNT_COLUMNS,
            super::sync::Entity::Entitlement => ENTITLEMENT_COLUMNS,
            super::sync::Entity::Grant => GRANT_COLUMNS,
            super::sync::Entity::Permission => PERMISSION_COLUMNS,
        };
        let mut found = Vec::new();
        for chunk in ids.chunks(CHUNK) {
            let mut select = build(format!(
                "SELECT {columns} FROM {} WHERE org_id = ",
                entity.table()
            ));
            select.push_bind(org.0).push(" AND id IN (");
            let mut list = select.separated(", ");
            for id in chunk {
                list.push_bind(id.as_str());
            }
            select.push(")");
            let rows: Vec<StoredRow> = match entity {
                super::sync::Entity::Account => select
                    .fetch_all::<queries::AccountRow>(&self.pool)
                    .await?
                    .into_iter()
                    .map(StoredRow::Account)
                    .collect(),
                super::sync::Entity::Entitlement => select
                    .fetch_all::<queries::EntitlementRow>(&self.pool)
                    .await?
                    .into_iter()
                    .map(StoredRow::Entitlement)
                    .collect(),
                super::sync::Entity::Grant => select
                    .fetch_all::<queries::GrantRow>(&self.pool)
                    .await?
                    .into_iter()
                    .map(StoredRow::Grant)
                    .collect(),
                super::sync::Entity::Permission => select
                    .fetch_all::<queries::PermissionRow>(&self.pool)
                    .await?
                    .into_iter()
                    .map(StoredRow::Permission)
                    .collect(),
            };
            for stored in rows {
                found.push(row_json(stored)?);
            }
        }
        Ok(found)
    }

    async fn staged_keys(
        &self,
        run: super::sync::RunId,
        entity: super::sync::Entity,
    ) -> Result<Vec<(String, super::sync::ChangeOp)>, StoreError> {
        let rows: Vec<(String, String)> = sql(
            "SELECT object_id, op FROM changes WHERE run_id = $1 AND entity = $2 \
                 AND op <> 'updated' ORDER BY id",
        )
        .bind(run.0)
        .bind(entity.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, op)| {
                let op = op.parse().map_err(|detail| StoreError::Corrupt {
                    what: "staged change",
                    detail,
                })?;
                Ok((id, op))
            })
            .collect()
    }

    async fn stored_ids(
        &self,
        org: OrgId,
        entity: super::sync::Entity,
    ) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = sql(format!(
            "SELECT id FROM {} WHERE org_id = $1",
            entity.table()
        ))
        .bind(org.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    async fn first_change_at(
        &self,
        org: OrgId,
        entity: super::sync::Entity,
    ) -> Result<Option<Timestamp>, StoreError> {
        // The smallest id of the entity's committed changes, read from the `changes_by_object`
        // index (org, entity, ...): an entity without changes costs nothing, where walking the
        // history in id order to its first change of the entity could read all of it.
        let first: Option<(Timestamp,)> = sql(
            "SELECT observed_at FROM changes WHERE id = (SELECT MIN(c.id) FROM changes c \
                 LEFT JOIN sync_runs r ON r.id = c.run_id \
                 WHERE c.org_id = $1 AND c.entity = $2 \
                 AND (c.run_id IS NULL OR r.status = 'succeeded'))",
        )
        .bind(org.0)
        .bind(entity.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(first.map(|(at,)| at))
    }

    async fn list_changes(
        &self,
        org: OrgId,
        query: &super::sync::ChangeQuery,
    ) -> Result<Vec<super::sync::ChangeRecord>, StoreError> {
        // Only the filters given, so that each database can use the index that fits
        // (`$n IS NULL OR ...` hides them from the planner).
        let mut select = build(
            "SELECT c.id, c.run_id, c.request_id, c.resource, c.entity, c.object_id, c.op, \
                 c.fields, c.before, c.after, c.observed_at FROM changes c \
                 LEFT JOIN sync_runs r ON r.id = c.run_id \
                 WHERE (c.run_id IS NULL OR r.status = 'succeeded') AND c.org_id = ",
        );
        select.push_bind(org.0);
        if let Some(entity) = query.entity {
            select.push(" AND c.entity = ").push_bind(entity.as_str());
        }
        if let Some(object_id) = &query.object_id {
            select
                .push(" AND c.object_id = ")
                .push_bind(object_id.clone());
        }
        if let Some(run) = query.run {
            select.push(" AND c.run_id = ").push_bind(run.0);
        }
        if let Some(since) = query.since {
            select.push(" AND c.observed_at >= ").push_bind(since);
        }
        if let Some(until) = query.until {
            select.push(" AND c.observed_at < ").push_bind(until);
        }
        select
            .push(" AND c.id > ")
            .push_bind(query.after.unwrap_or(0))
            .push(" ORDER BY c.id LIMIT ")
            .push_bind(i64::from(query.limit));
        let rows: Vec<ChangeRow> = select.fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(super::sync::ChangeRecord::try_from)
            .collect()
    }
}

impl SqlStore {
    /// A transaction for the commit of a first load into `org` that checks its references once
    /// its rows are in (SQLite; see [`super::sqlite_load`]): `None` on PostgreSQL, which drops
    /// the keys for a load instead, or when the org has rows stored (seen again once the
    /// transaction holds the write lock).
    async fn unchecked_load(&self, org: OrgId) -> Result<Option<super::sql::Tx>, StoreError> {
        let super::sql::Pool::Sqlite(pool) = &self.pool else {
            return Ok(None);
        };
        let (stored,): (bool,) = sql(ORG_HAS_ROWS).bind(org.0).fetch_one(&self.pool).await?;
        if stored {
            return Ok(None);
        }
        let Some(mut tx) = super::sqlite_load::begin_unchecked(pool).await? else {
            return Ok(None);
        };
        // Something may have been stored since the look above; the transaction holds the
        // write lock from its start, so what it sees now stays so until it ends.
        let (stored,): (bool,) = sql(ORG_HAS_ROWS).bind(org.0).fetch_one(&mut tx).await?;
        if stored {
            tx.rollback().await?;
            return Ok(None);
        }
        Ok(Some(tx))
    }

    /// Applies the staged changes of `run` in `tx` and ends it: `false` when `holder` no longer
    /// holds the org's lease. `unchecked`: `tx` is from [`Self::unchecked_load`] (the org has
    /// nothing stored, and the references are checked once the rows are in).
    async fn apply_run(
        &self,
        mut tx: super::sql::Tx,
        run: &super::sync::SyncRun,
        holder: &str,
        ttl: chrono::TimeDelta,
        unchecked: bool,
    ) -> Result<bool, StoreError> {
        let now = chrono::Utc::now();
        let org = run.org.0;
        // Fencing: the lock row is written first, so a holder whose lease was taken over
        // applies nothing, and nobody takes it over while this transaction runs.
        let held = sql("UPDATE sync_locks SET expires_at = $3 WHERE org_id = $1 AND holder = $2")
            .bind(org)
            .bind(holder)
            .bind(now + ttl)
            .execute(&mut tx)
            .await?;
        if held != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        // The last two statements mark the users and entitlements whose grants changed as
        // changed now: into an org without any yet (a first load), every one the grants name
        // is written by this commit with that time.
        let (stored,): (bool,) = sql(ORG_HAS_ROWS).bind(org).fetch_one(&mut tx).await?;
        let first_load = !stored;
        // The counts of what is committed, from the staged changes themselves: grouped by
        // entity alone, in the order of the `changes_by_run_entity` index (by entity and
        // operation, SQLite grouped in a temporary tree: 0.40 to 0.47 s for the 1.1 million
        // changes of a first load of `large` with access, against 0.17 to 0.19 s).
        let tallies: Vec<(String, i64, i64, i64)> =
            sql("SELECT entity, COUNT(*) FILTER (WHERE op = 'created'), \
                 COUNT(*) FILTER (WHERE op = 'updated'), \
                 COUNT(*) FILTER (WHERE op = 'removed') \
                 FROM changes WHERE run_id = $1 GROUP BY entity")
            .bind(run.id.0)
            .fetch_all(&mut tx)
            .await?;
        let mut counts = run.counts.clone();
        counts.accounts = Default::default();
        counts.entitlements = Default::default();
        counts.grants = Default::default();
        counts.permissions = Default::default();
        for (entity, created, updated, removed) in tallies {
            let Ok(entity) = entity.parse::<super::sync::Entity>() else {
                continue;
            };
            *counts.of(entity) = super::sync::OpCounts {
                created: created as u64,
                updated: updated as u64,
                removed: removed as u64,
            };
        }
        let loads: Vec<super::sync::Entity> = super::sync::Entity::ALL
            .into_iter()
            .filter(|entity| counts.of(*entity).created >= BULK_LOAD_ROWS)
            .collect();
        let (rebuilt, keyless) = self.drop_indexes_for_load(&mut tx, &loads).await?;
        let statements = self.pool.backend().apply_statements();
        let wanted = if first_load { 4 } else { statements.len() };
        for apply in statements.into_iter().take(wanted) {
            // Into a table whose primary key is dropped for the load, the rows go in without
            // ON CONFLICT (which needs the key); a run stages an object once, and a row twice
            // would fail as the key is added again, as the statement with it would have.
            let keyless = apply.entity.is_some_and(|entity| keyless.contains(&entity));
            let statement = match keyless {
                true => apply.statement,
                false => apply.statement + &apply.on_conflict,
            };
            let query = sql(&statement).bind(run.id.0);
            let query = if apply.at_commit {
                query.bind(now)
            } else {
                query
            };
            query
                .execute(&mut tx)
                .await
                .map_err(|err| super::classify(err, "a staged grant"))?;
        }
        for (_, definition) in &rebuilt {
            // A key added again fails as a row written with it would have.
            sql(definition.as_str())
                .execute(&mut tx)
                .await
                .map_err(|err| super::classify(err, "a staged grant"))?;
        }
        if !rebuilt.is_empty() {
            tracing::debug!(indexes = rebuilt.len(), "built the indexes of a first load");
        }
        // Grants and permissions first: removing an account or entitlement cascades to them.
        // An entity with nothing removed is not looked at (a first load removes nothing; each
        // statement walked all of its entity's changes: 0.13 s for `large`).
        for entity in [
            super::sync::Entity::Permission,
            super::sync::Entity::Grant,
            super::sync::Entity::Entitlement,
            super::sync::Entity::Account,
        ] {
            if counts.of(entity).removed == 0 {
                continue;
            }
            sql(format!(
                "DELETE FROM {} WHERE org_id = $1 AND id IN (SELECT object_id FROM changes \
                     WHERE run_id = $2 AND entity = $3 AND op = 'removed')",
                entity.table()
            ))
            .bind(org)
            .bind(run.id.0)
            .bind(entity.as_str())
            .execute(&mut tx)
            .await?;
        }
        // Once the model's rows are written (the watermarks below name the same org), and with
        // the indexes back: each user and entitlement is looked up once.
        if unchecked {
            super::sqlite_load::check(&mut tx, run.org).await?;
        }
        // The watermarks are those the run's reads ended with; a read that skipped rows ends
        // with the one it started from (`NO_WATERMARK`), so the next sync reads again what it
        // read. A resource left without one is read whole next time, as is one whose rows as
        // read (a fingerprint) this run's could not describe: the one it started from describes
        // older rows than the store now holds. Nor is a watermark of the rows as read kept when
        // provisioning wrote rows of the resource since about when the run started (a minute
        // before: clocks of replicas differ): the store then holds what it does not describe.
        let read = format!(
            "CASE WHEN watermark = '' AND since LIKE '{ROWS_AS_READ}%' THEN NULL \
                 WHEN watermark = '' THEN since ELSE watermark END"
        );
        let ended = format!(
            "CASE WHEN ({read}) LIKE '{ROWS_AS_READ}%' AND EXISTS (SELECT 1 FROM changes \
                 WHERE request_id IS NOT NULL AND org_id = $1 \
                 AND changes.resource = sync_resources.resource AND observed_at >= $3) \
                 THEN NULL ELSE {read} END"
        );
        let provisioned_since = run.started_at - chrono::TimeDelta::minutes(1);
        sql(format!(
            "DELETE FROM sync_watermarks WHERE org_id = $1 AND resource IN \
                 (SELECT resource FROM sync_resources WHERE run_id = $2 AND {ended} IS NULL)"
        ))
        .bind(org)
        .bind(run.id.0)
        .bind(provisioned_since)
        .execute(&mut tx)
        .await?;
        sql(format!(
            "INSERT INTO sync_watermarks (org_id, resource, watermark) \
                 SELECT $1, resource, {ended} FROM sync_resources \
                 WHERE run_id = $2 AND {ended} IS NOT NULL \
                 ON CONFLICT (org_id, resource) DO UPDATE SET watermark = excluded.watermark"
        ))
        .bind(org)
        .bind(run.id.0)
        .bind(provisioned_since)
        .execute(&mut tx)
        .await?;
        sql(
            "UPDATE sync_runs SET status = 'succeeded', pause_reason = NULL, updated_at = $2, \
                 finished_at = $2, attempts = $3, api_calls = $4, api_used = $5, api_limit = $6, \
                 counts = $7, error = NULL WHERE id = $1",
        )
        .bind(run.id.0)
        .bind(now)
        .bind(run.attempts)
        .bind(run.api_calls)
        .bind(run.api_used)
        .bind(run.api_limit)
        .bind(sqlx::types::Json(&counts))
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// For a commit that loads many rows into `loads`' tables: drops the secondary indexes of
    /// those that are empty (on PostgreSQL also their foreign keys to the other model tables,
    /// and their primary key when no foreign key refers to the table), to be built again once
    /// the rows are in. Returns the statements that build what it dropped, and the entities
    /// whose table is without its primary key until then. On PostgreSQL the tables are locked first,
    /// without waiting: when another transaction uses one, the rows go in one by one as usual
    /// rather than risk a deadlock with it.
    async fn drop_indexes_for_load(
        &self,
        tx: &mut super::sql::Tx,
        loads: &[super::sync::Entity],
    ) -> Result<(Vec<(String, String)>, Vec<super::sync::Entity>), StoreError> {
        if loads.is_empty() {
            return Ok(Default::default());
        }
        let tables: Vec<&str> = loads.iter().map(|entity| entity.table()).collect();
        if let Some(lock) = self.pool.backend().lock_for_load(&tables) {
            if !Self::lock_at_once(tx, &lock).await? {
                tracing::debug!("the tables are in use; loading row by row");
                return Ok(Default::default());
            }
        }
        let mut keys_again = Vec::new();
        let mut rebuilt = Vec::new();
        let mut keyless = Vec::new();
        for entity in loads {
            let table = entity.table();
            let (any,): (bool,) = sql(format!("SELECT EXISTS (SELECT 1 FROM {table})"))
                .fetch_one(&mut *tx)
                .await?;
            if any {
                continue;
            }
            let indexes: Vec<(String, String)> = sql(self.pool.backend().secondary_indexes())
                .bind(table)
                .fetch_all(&mut *tx)
                .await?;
            for (name, _) in &indexes {
                sql(format!("DROP INDEX \"{}\"", name.replace('"', "\"\"")))
                    .execute(&mut *tx)
                    .await?;
            }
            rebuilt.extend(indexes);
            if let Some(primary_key) = self.pool.backend().unreferenced_primary_key() {
                let key: Option<(String, String)> = sql(primary_key)
                    .bind(table)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some((name, definition)) = key {
                    let name = format!("\"{}\"", name.replace('"', "\"\""));
                    sql(format!("ALTER TABLE {table} DROP CONSTRAINT {name}"))
                        .execute(&mut *tx)
                        .await?;
                    // Added again first: the keys of the other tables do not need it.
                    rebuilt.insert(
                        0,
                        (
                            name.clone(),
                            format!("ALTER TABLE {table} ADD CONSTRAINT {name} {definition}"),
                        ),
                    );
                    keyless.push(*entity);
                }
            }
            let Some(foreign_keys) = self.pool.backend().model_foreign_keys() else {
                continue;
            };
            let keys: Vec<(String, String, String)> =
                sql(foreign_keys).bind(table).fetch_all(&mut *tx).await?;
            let mut referred: Vec<&str> = keys
                .iter()
                .map(|(_, referred, _)| referred.as_str())
                .filter(|referred| !tables.contains(referred))
                .collect();
            referred.sort_unstable();
            referred.dedup();
            // Readers of the tables referred to wait for this commit too; if any is in use,
            // the keys stay and each row is checked as it goes in.
            let lock = match referred.is_empty() {
                true => None,
                false => self.pool.backend().lock_for_load(&referred),
            };
            if let Some(lock) = lock {
                if !Self::lock_at_once(tx, &lock).await? {
                    tracing::debug!(table, "the tables it refers to are in use; keys kept");
                    continue;
                }
            }
            for (name, _, definition) in keys {
                let name = format!("\"{}\"", name.replace('"', "\"\""));
                sql(format!("ALTER TABLE {table} DROP CONSTRAINT {name}"))
                    .execute(&mut *tx)
                    .await?;
                keys_again.push((
                    name.clone(),
                    format!("ALTER TABLE {table} ADD CONSTRAINT {name} {definition}"),
                ));
            }
        }
        // The keys are checked once every index is back.
        rebuilt.extend(keys_again);
        Ok((rebuilt, keyless))
    }

    /// Runs `lock`, a `LOCK TABLE ... NOWAIT`, in a savepoint: whether it took the tables (a
    /// table in use leaves the transaction as it was).
    async fn lock_at_once(tx: &mut super::sql::Tx, lock: &str) -> Result<bool, StoreError> {
        sql("SAVEPOINT bulk_load").execute(&mut *tx).await?;
        let taken = match sql(lock).execute(&mut *tx).await {
            Ok(_) => true,
            Err(err) => {
                tracing::debug!(error = %err, "a table is in use");
                sql("ROLLBACK TO SAVEPOINT bulk_load")
                    .execute(&mut *tx)
                    .await?;
                false
            }
        };
        sql("RELEASE SAVEPOINT bulk_load").execute(&mut *tx).await?;
        Ok(taken)
    }
}
