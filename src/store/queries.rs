//! [`Store`](super::Store)'s own queries: orgs, the identity model, connections and OAuth
//! states.
//!
//! Both databases speak `$N` placeholders, `ON CONFLICT ... DO UPDATE` and the same schema, so
//! each query is written once and run through [`sql`](super::sql) on either. What differs
//! (connecting, migrating, a statement's deadline) is in `sqlite.rs` and `postgres.rs`; SQL
//! that differs, in `dialect.rs`.

use provost_connector::model::{
    Account, Entitlement, EntitlementKind, Grant, GrantSource, Permission, PermissionKind,
};
use provost_connector::times::Timestamp;
use serde_json::{Map, Value};
use sqlx::types::Json;

use super::sql::sql;
use super::{OAuthState, OrgId, OrgRecord, StoreError, StoredConnection};
use super::{Page, SqlStore};

#[derive(sqlx::FromRow)]
pub(super) struct OrgRow {
    id: i64,
    name: String,
    created_at: Timestamp,
}

impl From<OrgRow> for OrgRecord {
    fn from(row: OrgRow) -> Self {
        OrgRecord {
            id: OrgId(row.id),
            name: row.name,
            created_at: row.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AccountRow {
    pub(super) id: String,
    username: String,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    display_name: String,
    active: bool,
    user_type: Option<String>,
    attributes: Json<Map<String, Value>>,
}

impl From<AccountRow> for Account {
    fn from(row: AccountRow) -> Self {
        Account {
            id: row.id,
            username: row.username,
            email: row.email,
            first_name: row.first_name,
            last_name: row.last_name,
            display_name: row.display_name,
            active: row.active,
            user_type: row.user_type,
            attributes: row.attributes.0,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct EntitlementRow {
    id: String,
    kind: String,
    api_name: String,
    label: String,
    description: Option<String>,
    grantable: bool,
    attributes: Json<Map<String, Value>>,
}

impl TryFrom<EntitlementRow> for Entitlement {
    type Error = StoreError;

    fn try_from(row: EntitlementRow) -> Result<Self, StoreError> {
        let kind: EntitlementKind = row.kind.parse().map_err(|err| StoreError::Corrupt {
            what: "entitlement",
            detail: format!("{err} (entitlement {})", row.id),
        })?;
        Ok(Entitlement {
            id: row.id,
            kind,
            api_name: row.api_name,
            label: row.label,
            description: row.description,
            grantable: row.grantable,
            attributes: row.attributes.0,
        })
    }
}

/// A grant, and the resource that read it.
#[derive(sqlx::FromRow)]
pub(super) struct GrantWithResource {
    #[sqlx(flatten)]
    pub(super) grant: GrantRow,
    pub(super) resource: String,
}

#[derive(sqlx::FromRow)]
pub(super) struct GrantRow {
    id: String,
    account_id: String,
    entitlement_id: String,
    source: String,
    expires_at: Option<Timestamp>,
    attributes: Json<Map<String, Value>>,
}

impl TryFrom<GrantRow> for Grant {
    type Error = StoreError;

    fn try_from(row: GrantRow) -> Result<Self, StoreError> {
        let source = GrantSource::decode(&row.source).ok_or_else(|| StoreError::Corrupt {
            what: "grant",
            detail: format!("unknown source `{}` (grant {})", row.source, row.id),
        })?;
        Ok(Grant {
            id: row.id,
            account_id: row.account_id,
            entitlement_id: row.entitlement_id,
            source,
            expires_at: row.expires_at,
            attributes: row.attributes.0,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct PermissionRow {
    id: String,
    entitlement_id: String,
    kind: String,
    target: String,
    actions: Json<Vec<String>>,
    attributes: Json<Map<String, Value>>,
}

impl TryFrom<PermissionRow> for Permission {
    type Error = StoreError;

    fn try_from(row: PermissionRow) -> Result<Self, StoreError> {
        let kind: PermissionKind = row.kind.parse().map_err(|err| StoreError::Corrupt {
            what: "permission",
            detail: format!("{err} (permission {})", row.id),
        })?;
        Ok(Permission {
            id: row.id,
            entitlement_id: row.entitlement_id,
            kind,
            target: row.target,
            actions: row.actions.0,
            attributes: row.attributes.0,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ConnectionRow {
    refresh_token_sealed: String,
    instance_url: String,
    identity_url: String,
    connected_at: Timestamp,
}

impl From<ConnectionRow> for StoredConnection {
    fn from(row: ConnectionRow) -> Self {
        StoredConnection {
            refresh_token_sealed: row.refresh_token_sealed,
            instance_url: row.instance_url,
            identity_url: row.identity_url,
            connected_at: row.connected_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct StateRow {
    org_name: String,
    code_verifier_sealed: String,
    redirect_uri: String,
    created_at: Timestamp,
    started_by: String,
    replace_confirmed: bool,
}

impl From<StateRow> for OAuthState {
    fn from(row: StateRow) -> Self {
        OAuthState {
            org_name: row.org_name,
            code_verifier_sealed: row.code_verifier_sealed,
            redirect_uri: row.redirect_uri,
            created_at: row.created_at,
            started_by: row.started_by,
            replace_confirmed: row.replace_confirmed,
        }
    }
}

#[async_trait::async_trait]
impl super::Store for SqlStore {
    fn backend(&self) -> super::Backend {
        self.pool.backend()
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        // Every command opens the store through here: statistics are refreshed only when a
        // migration changed the schema (each sync refreshes them after it commits).
        let applied = || async {
            sql("SELECT COUNT(*) FROM _sqlx_migrations")
                .fetch_value::<i64>(&self.pool)
                .await
                // Before the first migration the table does not exist.
                .unwrap_or(0)
        };
        let before = applied().await;
        match &self.pool {
            super::sql::Pool::Sqlite(pool) => super::sqlite::MIGRATOR.run(pool).await?,
            super::sql::Pool::Postgres(pool) => super::postgres::MIGRATOR.run(pool).await?,
        }
        self.fill_grant_change_users().await;
        if applied().await != before {
            self.refresh_statistics().await?;
        }
        Ok(())
    }

    async fn refresh_statistics(&self) -> Result<(), StoreError> {
        match &self.pool {
            super::sql::Pool::Sqlite(pool) => {
                // Sampled (a thousand rows per index): milliseconds, even for a large org.
                let mut conn = pool.acquire().await?;
                sql("PRAGMA analysis_limit = 1000")
                    .execute(&mut *conn)
                    .await?;
                sql("ANALYZE").execute(&mut *conn).await?;
                // Other connections keep the statistics they loaded with the schema (for a
                // first sync: those of empty tables, which made a userName lookup scan
                // every user) until the schema changes: change it, so each reloads.
                sql("CREATE TABLE IF NOT EXISTS provost_statistics_refreshed (x)")
                    .execute(&mut *conn)
                    .await?;
                sql("DROP TABLE IF EXISTS provost_statistics_refreshed")
                    .execute(&mut *conn)
                    .await?;
            }
            super::sql::Pool::Postgres(_) => {
                // VACUUM too: until it marks a table's pages all-visible, an index-only
                // scan visits the table for every entry. After a first sync of `large`,
                // SCIM's count of users scanned the table (37 ms, 19 ms after) and a page
                // at startIndex 50,001 fetched 50,100 rows to skip them (29 ms, 12 ms).
                sql("VACUUM (ANALYZE) accounts, entitlements, grants")
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sql("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn pool_usage(&self) -> super::PoolUsage {
        self.pool.usage()
    }

    async fn close(&self) {
        if let Some(journal) = &self.journal {
            journal.close().await;
        }
        self.pool.close().await;
    }

    async fn ensure_org(&self, name: &str) -> Result<OrgRecord, StoreError> {
        if let Some(org) = self.orgs.get(name) {
            return Ok(org);
        }
        sql("INSERT INTO orgs (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(chrono::Utc::now())
            .execute(&self.pool)
            .await?;
        self.find_org(name)
            .await?
            .ok_or_else(|| StoreError::UnknownOrg(name.to_owned()))
    }

    async fn find_org(&self, name: &str) -> Result<Option<OrgRecord>, StoreError> {
        if let Some(org) = self.orgs.get(name) {
            return Ok(Some(org));
        }
        let row: Option<OrgRow> = sql("SELECT id, name, created_at FROM orgs WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        let org = row.map(OrgRecord::from);
        if let Some(org) = &org {
            self.orgs.put(org.clone());
        }
        Ok(org)
    }

    async fn list_orgs(&self) -> Result<Vec<OrgRecord>, StoreError> {
        let rows: Vec<OrgRow> = sql("SELECT id, name, created_at FROM orgs ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(OrgRecord::from).collect())
    }

    async fn upsert_accounts(&self, org: OrgId, accounts: &[Account]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for account in accounts {
            sql(
                "INSERT INTO accounts (org_id, id, username, email, first_name, last_name, \
                     display_name, active, user_type, attributes, digest) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT (org_id, id) DO UPDATE SET username = excluded.username, \
                     email = excluded.email, first_name = excluded.first_name, \
                     last_name = excluded.last_name, display_name = excluded.display_name, \
                     active = excluded.active, user_type = excluded.user_type, \
                     attributes = excluded.attributes, digest = excluded.digest",
            )
            .bind(org.0)
            .bind(&account.id)
            .bind(&account.username)
            .bind(&account.email)
            .bind(&account.first_name)
            .bind(&account.last_name)
            .bind(&account.display_name)
            .bind(account.active)
            .bind(&account.user_type)
            .bind(sqlx::types::Json(&account.attributes))
            .bind(super::digest::of(account))
            .execute(&mut tx)
            .await
            .map_err(|err| super::classify(err, "an account"))?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get_account(&self, org: OrgId, id: &str) -> Result<Option<Account>, StoreError> {
        let row: Option<AccountRow> = sql(
            "SELECT id, username, email, first_name, last_name, display_name, active, \
                 user_type, attributes FROM accounts WHERE org_id = $1 AND id = $2",
        )
        .bind(org.0)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Account::from))
    }

    async fn list_accounts(&self, org: OrgId, page: Page<'_>) -> Result<Vec<Account>, StoreError> {
        let rows: Vec<AccountRow> = sql(
            "SELECT id, username, email, first_name, last_name, display_name, active, \
                 user_type, attributes FROM accounts WHERE org_id = $1 AND id > $2 \
                 ORDER BY id LIMIT $3",
        )
        .bind(org.0)
        .bind(page.after.unwrap_or(""))
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Account::from).collect())
    }

    async fn upsert_entitlements(
        &self,
        org: OrgId,
        entitlements: &[Entitlement],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for entitlement in entitlements {
            sql(
                "INSERT INTO entitlements (org_id, id, kind, api_name, label, description, \
                     grantable, attributes, digest) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (org_id, id) DO UPDATE SET kind = excluded.kind, \
                     api_name = excluded.api_name, label = excluded.label, \
                     description = excluded.description, grantable = excluded.grantable, \
                     attributes = excluded.attributes, digest = excluded.digest",
            )
            .bind(org.0)
            .bind(&entitlement.id)
            .bind(entitlement.kind.as_str())
            .bind(&entitlement.api_name)
            .bind(&entitlement.label)
            .bind(&entitlement.description)
            .bind(entitlement.grantable)
            .bind(sqlx::types::Json(&entitlement.attributes))
            .bind(super::digest::of(entitlement))
            .execute(&mut tx)
            .await
            .map_err(|err| super::classify(err, "an entitlement"))?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_entitlements(
        &self,
        org: OrgId,
        kind: Option<EntitlementKind>,
        page: Page<'_>,
    ) -> Result<Vec<Entitlement>, StoreError> {
        let rows: Vec<EntitlementRow> = sql(
            "SELECT id, kind, api_name, label, description, grantable, attributes \
                 FROM entitlements WHERE org_id = $1 AND ($2 IS NULL OR kind = $2) AND id > $3 \
                 ORDER BY id LIMIT $4",
        )
        .bind(org.0)
        .bind(kind.map(EntitlementKind::as_str))
        .bind(page.after.unwrap_or(""))
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Entitlement::try_from).collect()
    }

    async fn upsert_grants(&self, org: OrgId, grants: &[Grant]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for grant in grants {
            sql(
                "INSERT INTO grants (org_id, id, account_id, entitlement_id, source, \
                     expires_at, attributes, digest) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (org_id, id) DO UPDATE SET account_id = excluded.account_id, \
                     entitlement_id = excluded.entitlement_id, source = excluded.source, \
                     expires_at = excluded.expires_at, attributes = excluded.attributes, \
                     digest = excluded.digest",
            )
            .bind(org.0)
            .bind(&grant.id)
            .bind(&grant.account_id)
            .bind(&grant.entitlement_id)
            .bind(grant.source.encode())
            .bind(grant.expires_at)
            .bind(sqlx::types::Json(&grant.attributes))
            .bind(super::digest::of(grant))
            .execute(&mut tx)
            .await
            .map_err(|err| super::classify(err, "a grant"))?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn grants_of_account(
        &self,
        org: OrgId,
        account_id: &str,
    ) -> Result<Vec<Grant>, StoreError> {
        let rows: Vec<GrantRow> = sql(
            "SELECT id, account_id, entitlement_id, source, expires_at, attributes \
                 FROM grants WHERE org_id = $1 AND account_id = $2 ORDER BY id",
        )
        .bind(org.0)
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Grant::try_from).collect()
    }

    async fn delete_grants(&self, org: OrgId, ids: &[String]) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut removed = 0;
        for id in ids {
            removed += sql("DELETE FROM grants WHERE org_id = $1 AND id = $2")
                .bind(org.0)
                .bind(id)
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    async fn save_connection(
        &self,
        org: OrgId,
        connection: &super::StoredConnection,
    ) -> Result<(), StoreError> {
        sql(
                "INSERT INTO org_credentials (org_id, refresh_token_sealed, instance_url, identity_url, connected_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id) DO UPDATE SET \
                 refresh_token_sealed = excluded.refresh_token_sealed, instance_url = excluded.instance_url, \
                 identity_url = excluded.identity_url, connected_at = excluded.connected_at",
            )
            .bind(org.0)
            .bind(&connection.refresh_token_sealed)
            .bind(&connection.instance_url)
            .bind(&connection.identity_url)
            .bind(connection.connected_at)
            .execute(&self.pool)
            .await
            .map_err(|err| super::classify(err, "a connection"))?;
        Ok(())
    }

    async fn connection(&self, org: OrgId) -> Result<Option<super::StoredConnection>, StoreError> {
        let row: Option<ConnectionRow> = sql(
            "SELECT refresh_token_sealed, instance_url, identity_url, connected_at \
                 FROM org_credentials WHERE org_id = $1",
        )
        .bind(org.0)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Into::into))
    }

    async fn insert_oauth_state(
        &self,
        state: &str,
        pending: &super::OAuthState,
        limits: super::StateLimits,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sql("DELETE FROM oauth_states WHERE created_at < $1")
            .bind(limits.forget_before)
            .execute(&mut tx)
            .await?;
        let (open,): (i64,) =
            sql("SELECT COUNT(*) FROM oauth_states WHERE consumed_at IS NULL AND created_at >= $1")
                .bind(limits.open_since)
                .fetch_one(&mut tx)
                .await?;
        if open >= i64::from(limits.most_open) {
            tx.rollback().await?;
            return Ok(false);
        }
        sql(
            "INSERT INTO oauth_states (state, org_name, code_verifier_sealed, redirect_uri, \
                 created_at, started_by, replace_confirmed) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(state)
        .bind(&pending.org_name)
        .bind(&pending.code_verifier_sealed)
        .bind(&pending.redirect_uri)
        .bind(pending.created_at)
        .bind(&pending.started_by)
        .bind(pending.replace_confirmed)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn consume_oauth_state(&self, state: &str) -> Result<super::StateLookup, StoreError> {
        // One statement marks it used and returns it, so two callbacks racing with the same
        // state cannot both get it.
        let row: Option<StateRow> = sql(
            "UPDATE oauth_states SET consumed_at = $1 WHERE state = $2 AND consumed_at IS NULL \
                 RETURNING org_name, code_verifier_sealed, redirect_uri, created_at, started_by, \
                 replace_confirmed",
        )
        .bind(chrono::Utc::now())
        .bind(state)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = row {
            return Ok(super::StateLookup::Fresh(row.into()));
        }
        let known: Option<(String,)> = sql("SELECT state FROM oauth_states WHERE state = $1")
            .bind(state)
            .fetch_optional(&self.pool)
            .await?;
        Ok(if known.is_some() {
            super::StateLookup::Replayed
        } else {
            super::StateLookup::Unknown
        })
    }
}

impl SqlStore {
    /// Gives the grant changes a server of a version before migration 0023 wrote beside this
    /// one (a rolling upgrade) the user they concern; none once every server is past it. Best
    /// effort, retried at the next open: on SQLite the update would wait for the write lock
    /// (a first sync's commit holds it for seconds), so it is made only when such a change
    /// exists, found by an index that holds only those.
    async fn fill_grant_change_users(&self) {
        let missing = "WHERE entity = 'grant' AND account_id IS NULL";
        let filled = async {
            if self.pool.backend() == super::Backend::Sqlite {
                let any = sql(format!("SELECT EXISTS (SELECT 1 FROM changes {missing})"))
                    .fetch_value::<bool>(&self.pool)
                    .await?;
                if !any {
                    return Ok(0);
                }
            }
            sql(format!(
                "UPDATE changes SET account_id = {} {missing}",
                self.pool.backend().account_in_change()
            ))
            .execute(&self.pool)
            .await
        };
        match filled.await {
            Ok(0) => {}
            Ok(rows) => {
                tracing::info!(rows, "gave grant changes an older version wrote their user")
            }
            Err(err) => tracing::warn!(
                error = %err,
                "could not give grant changes an older version wrote their user; the next start tries again"
            ),
        }
    }
}
