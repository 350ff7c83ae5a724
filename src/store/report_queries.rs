//! [`ReportStore`](super::reports::ReportStore): who holds what, a page of users at a time, and
//! the history reports rebuild past states from.

use std::collections::HashMap;
use std::sync::Arc;

use provost_connector::model::{Account, Permission, PermissionKind};
use provost_connector::times::Timestamp;
use serde_json::Value;

use super::reports::{HeldEntitlement, Targets};
use super::sql::{build, sql};
use super::{queries, OrgId, SqlStore, StoreError};

/// Driven by the grants index (org_id, account_id, id), so each page is an index range read
/// in order (a row-value keyset: no sort, nothing read twice). The entitlements' names come
/// from the report's catalog, and the page's users are read afterwards, once each: a row is
/// the grant's own columns only.
pub(super) const HELD_SELECT: &str = "SELECT account_id, id AS grant_id, entitlement_id, \
    source, expires_at, since, request_id FROM grants \
    WHERE org_id = $1 AND (account_id, id) > ($2, $3) \
    ORDER BY account_id, id LIMIT $4";

#[derive(sqlx::FromRow)]
pub(super) struct HeldRow {
    pub(super) account_id: String,
    pub(super) grant_id: String,
    entitlement_id: String,
    source: String,
    expires_at: Option<Timestamp>,
    since: Option<Timestamp>,
    request_id: Option<i64>,
}

impl HeldRow {
    /// The row with its user; `None` when the user is not stored (cannot happen: grants
    /// reference accounts).
    pub(super) fn with(self, accounts: &HashMap<String, Arc<Account>>) -> Option<HeldEntitlement> {
        Some(HeldEntitlement {
            account: accounts.get(&self.account_id)?.clone(),
            grant_id: self.grant_id,
            entitlement_id: self.entitlement_id,
            source: self.source,
            expires_at: self.expires_at,
            since: self.since,
            request_id: self.request_id,
        })
    }
}

impl SqlStore {
    /// Held rows with their users, each user read once.
    async fn with_accounts(
        &self,
        org: OrgId,
        rows: Vec<HeldRow>,
    ) -> Result<Vec<HeldEntitlement>, StoreError> {
        let mut ids: Vec<&str> = rows.iter().map(|r| r.account_id.as_str()).collect();
        ids.dedup();
        let mut accounts = std::collections::HashMap::new();
        for chunk in ids.chunks(1000) {
            let mut select = build(
                "SELECT id, username, email, first_name, last_name, display_name, active, \
                     user_type, attributes FROM accounts WHERE org_id = ",
            );
            select.push_bind(org.0).push(" AND id IN (");
            let mut list = select.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            select.push(")");
            let found: Vec<queries::AccountRow> = select.fetch_all(&self.pool).await?;
            accounts.extend(found.into_iter().map(|row| {
                let account = provost_connector::model::Account::from(row);
                (account.id.clone(), std::sync::Arc::new(account))
            }));
        }
        Ok(rows
            .into_iter()
            .filter_map(|row| row.with(&accounts))
            .collect())
    }
}

/// The committed changes (those no sync made, or a sync that succeeded) of the org bound next,
/// as `ChangeRow`s: the text a query of a user's history starts with.
pub(super) const COMMITTED_CHANGES_OF_ORG: &str =
    "SELECT c.id, c.run_id, c.request_id, c.resource, c.entity, c.object_id, \
     c.op, c.fields, c.before, c.after, c.observed_at FROM changes c \
     LEFT JOIN sync_runs r ON r.id = c.run_id \
     WHERE (c.run_id IS NULL OR r.status = 'succeeded') AND c.org_id = ";

#[async_trait::async_trait]
impl super::reports::ReportStore for SqlStore {
    async fn held_entitlements(
        &self,
        org: OrgId,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<super::reports::HeldEntitlement>, StoreError> {
        let (account, grant) = after.unwrap_or(("", ""));
        let rows: Vec<HeldRow> = sql(HELD_SELECT)
            .bind(org.0)
            .bind(account)
            .bind(grant)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        self.with_accounts(org, rows).await
    }

    async fn permissions(
        &self,
        org: OrgId,
        kind: PermissionKind,
        targets: Targets<'_>,
    ) -> Result<Vec<Permission>, StoreError> {
        let mut select = build(format!(
            "SELECT {} FROM permissions WHERE org_id = ",
            super::sync_queries::PERMISSION_COLUMNS
        ));
        select
            .push_bind(org.0)
            .push(" AND kind = ")
            .push_bind(kind.as_str());
        match targets {
            Targets::All => {}
            Targets::Exactly(target) => {
                select.push(" AND target = ").push_bind(target.to_owned());
            }
            // `Object.` up to `Object/`, the next character: an index range of the fields.
            Targets::FieldsOf(object) => {
                select
                    .push(" AND target >= ")
                    .push_bind(format!("{object}."))
                    .push(" AND target < ")
                    .push_bind(format!("{object}/"));
            }
        }
        select.push(" ORDER BY id");
        let rows: Vec<queries::PermissionRow> = select.fetch_all(&self.pool).await?;
        rows.into_iter().map(Permission::try_from).collect()
    }

    async fn permissions_at(
        &self,
        org: OrgId,
        kind: PermissionKind,
        targets: Targets<'_>,
        at: Timestamp,
    ) -> Result<Vec<Permission>, StoreError> {
        let backend = self.pool.backend();
        // The last committed change of each permission at or before `at`; the kind and target
        // are read from the row it left (`after`), so a removal (no `after`) drops out.
        let mut select = build(
            "SELECT object_id, after FROM changes WHERE id IN (SELECT MAX(c.id) FROM changes c \
                 LEFT JOIN sync_runs r ON r.id = c.run_id \
                 WHERE (c.run_id IS NULL OR r.status = 'succeeded') AND c.org_id = ",
        );
        select
            .push_bind(org.0)
            .push(" AND c.entity = 'permission' AND c.observed_at <= ")
            .push_bind(at)
            .push(" GROUP BY c.object_id) AND after IS NOT NULL AND ")
            .push(&backend.text("kind"))
            .push(" = ")
            .push_bind(kind.as_str());
        // Compared byte by byte, as the live `permissions.target` (`COLLATE "C"`) is: a
        // database collation that ignores punctuation would break the `Object.` range.
        let target = match backend {
            super::Backend::Sqlite => backend.text("target"),
            super::Backend::Postgres => format!("({} COLLATE \"C\")", backend.text("target")),
        };
        match targets {
            Targets::All => {}
            Targets::Exactly(value) => {
                select
                    .push(&format!(" AND {target} = "))
                    .push_bind(value.to_owned());
            }
            Targets::FieldsOf(object) => {
                select
                    .push(&format!(" AND {target} >= "))
                    .push_bind(format!("{object}."))
                    .push(&format!(" AND {target} < "))
                    .push_bind(format!("{object}/"));
            }
        }
        select.push(" ORDER BY object_id");
        let rows: Vec<(String, sqlx::types::Json<Value>)> = select.fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(|(id, after)| {
                serde_json::from_value(after.0).map_err(|err| StoreError::Corrupt {
                    what: "permission change",
                    detail: format!("{err} (permission {id})"),
                })
            })
            .collect()
    }

    async fn entitlements_at(
        &self,
        org: OrgId,
        at: Timestamp,
    ) -> Result<Vec<provost_connector::model::Entitlement>, StoreError> {
        let rows: Vec<(String, sqlx::types::Json<Value>)> = sql(
            "SELECT object_id, after FROM changes WHERE id IN (SELECT MAX(c.id) FROM changes c \
                 LEFT JOIN sync_runs r ON r.id = c.run_id \
                 WHERE (c.run_id IS NULL OR r.status = 'succeeded') AND c.org_id = $1 \
                 AND c.entity = 'entitlement' AND c.observed_at <= $2 GROUP BY c.object_id) \
                 AND after IS NOT NULL ORDER BY object_id",
        )
        .bind(org.0)
        .bind(at)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, after)| {
                serde_json::from_value(after.0).map_err(|err| StoreError::Corrupt {
                    what: "entitlement change",
                    detail: format!("{err} (entitlement {id})"),
                })
            })
            .collect()
    }

    async fn holders(
        &self,
        org: OrgId,
        entitlements: &[String],
    ) -> Result<Vec<HeldEntitlement>, StoreError> {
        let mut rows: Vec<HeldRow> = Vec::new();
        for chunk in entitlements.chunks(super::sync_queries::CHUNK) {
            let mut select = build(
                "SELECT account_id, id AS grant_id, entitlement_id, source, expires_at, since, \
                     request_id FROM grants WHERE org_id = ",
            );
            select.push_bind(org.0).push(" AND entitlement_id IN (");
            let mut list = select.separated(", ");
            for id in chunk {
                list.push_bind(id.clone());
            }
            select.push(")");
            rows.extend(select.fetch_all::<HeldRow>(&self.pool).await?);
        }
        rows.sort_by(|a, b| {
            (a.account_id.as_str(), a.grant_id.as_str())
                .cmp(&(b.account_id.as_str(), b.grant_id.as_str()))
        });
        self.with_accounts(org, rows).await
    }

    async fn history_of_users(
        &self,
        org: OrgId,
        at: provost_connector::times::Timestamp,
        after: &str,
        limit: u32,
    ) -> Result<(Vec<String>, Vec<super::sync::ChangeRecord>), StoreError> {
        let users: Vec<(String,)> =
            sql("SELECT DISTINCT object_id FROM changes WHERE org_id = $1 \
                     AND entity = 'account' AND object_id > $2 ORDER BY object_id LIMIT $3")
            .bind(org.0)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        let users: Vec<String> = users.into_iter().map(|(id,)| id).collect();
        if users.is_empty() {
            return Ok((users, Vec::new()));
        }
        let mut changes = Vec::new();
        for grants in [false, true] {
            let mut select = build(COMMITTED_CHANGES_OF_ORG);
            select.push_bind(org.0);
            if grants {
                select.push(" AND c.entity = 'grant' AND c.account_id IN (");
            } else {
                select.push(" AND c.entity = 'account' AND c.object_id IN (");
            }
            let mut list = select.separated(", ");
            for user in &users {
                list.push_bind(user.clone());
            }
            select
                .push(") AND c.observed_at <= ")
                .push_bind(at)
                .push(" ORDER BY c.id");
            let rows: Vec<super::sync_queries::ChangeRow> = select.fetch_all(&self.pool).await?;
            for row in rows {
                changes.push(super::sync::ChangeRecord::try_from(row)?);
            }
        }
        changes.sort_by_key(|c| c.id);
        Ok((users, changes))
    }
}
