//! [`ConsoleStore`](super::console::ConsoleStore): the console's sessions and links,
//! and the paged reads of its pages.

use provost_connector::model::{Account, EntitlementKind};
use provost_connector::times::Timestamp;

use super::console::{AuditFilter, CatalogEntry, ConsoleSession, Holder};
use super::provisioning_queries::{AuditRow, AUDIT_COLUMNS};
use super::queries::{AccountRow, EntitlementRow};
use super::scim::TextOp;
use super::sql::{build, sql};
use super::{OrgId, SqlStore, StoreError};
use crate::audit::AuditEntry;

const SESSION_COLUMNS: &str = "org_name, user_id, username, display_name, via, csrf_token, \
    created_at, last_seen_at, expires_at";

#[derive(sqlx::FromRow)]
struct SessionRow {
    org_name: Option<String>,
    user_id: Option<String>,
    username: String,
    display_name: String,
    via: String,
    csrf_token: String,
    created_at: Timestamp,
    last_seen_at: Timestamp,
    expires_at: Timestamp,
}

impl From<SessionRow> for ConsoleSession {
    fn from(row: SessionRow) -> Self {
        ConsoleSession {
            org: row.org_name,
            user_id: row.user_id,
            username: row.username,
            display_name: row.display_name,
            via: row.via,
            csrf_token: row.csrf_token,
            created_at: row.created_at,
            last_seen_at: row.last_seen_at,
            expires_at: row.expires_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct CatalogRow {
    #[sqlx(flatten)]
    entitlement: EntitlementRow,
    holders: i64,
}

#[derive(sqlx::FromRow)]
struct HolderRow {
    #[sqlx(flatten)]
    account: AccountRow,
    grant_id: String,
    source: String,
    expires_at: Option<Timestamp>,
}

#[async_trait::async_trait]
impl super::console::ConsoleStore for SqlStore {
    async fn insert_session(
        &self,
        id_hash: &str,
        session: &ConsoleSession,
    ) -> Result<(), StoreError> {
        sql(format!(
            "INSERT INTO console_sessions (id_hash, {SESSION_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(id_hash)
        .bind(session.org.as_deref())
        .bind(session.user_id.as_deref())
        .bind(session.username.as_str())
        .bind(session.display_name.as_str())
        .bind(session.via.as_str())
        .bind(session.csrf_token.as_str())
        .bind(session.created_at)
        .bind(session.last_seen_at)
        .bind(session.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn touch_session(
        &self,
        id_hash: &str,
        now: Timestamp,
        idle_since: Timestamp,
    ) -> Result<Option<ConsoleSession>, StoreError> {
        let row: Option<SessionRow> = sql(format!(
            "UPDATE console_sessions SET last_seen_at = $2 \
             WHERE id_hash = $1 AND ended_at IS NULL AND expires_at > $2 AND last_seen_at > $3 \
             RETURNING {SESSION_COLUMNS}"
        ))
        .bind(id_hash)
        .bind(now)
        .bind(idle_since)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Into::into))
    }

    async fn end_session(&self, id_hash: &str, now: Timestamp) -> Result<bool, StoreError> {
        let ended = sql(
            "UPDATE console_sessions SET ended_at = $2 WHERE id_hash = $1 AND ended_at IS NULL",
        )
        .bind(id_hash)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(ended == 1)
    }

    async fn insert_link(
        &self,
        token_hash: &str,
        name: &str,
        created_at: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        sql("INSERT INTO console_links (token_hash, name, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(token_hash)
            .bind(name)
            .bind(created_at)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn use_link(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = sql("UPDATE console_links SET used_at = $2 \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING name")
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(name,)| name))
    }

    async fn catalog(
        &self,
        org: OrgId,
        kind: Option<EntitlementKind>,
        search: Option<&str>,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<CatalogEntry>, u64), StoreError> {
        let filter = |builder: &mut super::sql::Sql<'_>| {
            builder.push(" FROM entitlements e WHERE e.org_id = ");
            builder.push_bind(org.0);
            if let Some(kind) = kind {
                builder.push(" AND e.kind = ");
                builder.push_bind(kind.as_str().to_owned());
            }
            if let Some(search) = search.filter(|s| !s.is_empty()) {
                let pattern = super::scim_filter::like_pattern(TextOp::Contains, search);
                builder.push(" AND (lower(e.api_name) LIKE lower(");
                builder.push_bind(pattern.clone());
                builder.push(") ESCAPE '\\' OR lower(e.label) LIKE lower(");
                builder.push_bind(pattern);
                builder.push(") ESCAPE '\\')");
            }
        };
        let mut count = build("SELECT count(*)");
        filter(&mut count);
        let (total,): (i64,) = count.fetch_one(&self.pool).await?;
        let mut page = build(
            "SELECT e.id, e.kind, e.api_name, e.label, e.description, e.grantable, e.attributes, \
             (SELECT count(DISTINCT g.account_id) FROM grants g \
              WHERE g.org_id = e.org_id AND g.entitlement_id = e.id) AS holders",
        );
        filter(&mut page);
        page.push(" ORDER BY e.kind, e.label, e.id LIMIT ");
        page.push_bind(i64::from(limit));
        page.push(" OFFSET ");
        page.push_bind(i64::try_from(offset).unwrap_or(i64::MAX));
        let rows: Vec<CatalogRow> = page.fetch_all(&self.pool).await?;
        let entries = rows
            .into_iter()
            .map(|row| {
                Ok(CatalogEntry {
                    entitlement: row.entitlement.try_into()?,
                    holders: row.holders,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((entries, u64::try_from(total).unwrap_or(0)))
    }

    async fn holders_page(
        &self,
        org: OrgId,
        entitlement: &str,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<(Vec<Holder>, u64), StoreError> {
        let (total,): (i64,) = sql(
            "SELECT count(DISTINCT account_id) FROM grants WHERE org_id = $1 AND entitlement_id = $2",
        )
                .bind(org.0)
                .bind(entitlement)
                .fetch_one(&self.pool)
                .await?;
        let rows: Vec<HolderRow> = sql(
            "SELECT a.id, a.username, a.email, a.first_name, a.last_name, a.display_name, \
             a.active, a.user_type, a.attributes, g.id AS grant_id, g.source, g.expires_at \
             FROM grants g JOIN accounts a ON a.org_id = g.org_id AND a.id = g.account_id \
             WHERE g.org_id = $1 AND g.entitlement_id = $2 \
             AND (g.account_id > $3 OR (g.account_id = $3 AND g.id > $4)) \
             ORDER BY g.account_id, g.id LIMIT $5",
        )
        .bind(org.0)
        .bind(entitlement)
        .bind(after.map_or("", |(account, _)| account))
        .bind(after.map_or("", |(_, grant)| grant))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let holders = rows
            .into_iter()
            .map(|row| Holder {
                account: Account::from(row.account),
                grant_id: row.grant_id,
                source: row.source,
                expires_at: row.expires_at,
            })
            .collect();
        Ok((holders, u64::try_from(total).unwrap_or(0)))
    }

    async fn changes_of_user(
        &self,
        org: OrgId,
        account_id: &str,
        limit: u32,
    ) -> Result<Vec<super::sync::ChangeRecord>, StoreError> {
        let mut changes = Vec::new();
        for grants in [false, true] {
            let mut select = build(super::report_queries::COMMITTED_CHANGES_OF_ORG);
            select.push_bind(org.0);
            if grants {
                // The index on the grant's user.
                select.push(" AND c.entity = 'grant' AND c.account_id = ");
            } else {
                select.push(" AND c.entity = 'account' AND c.object_id = ");
            }
            select.push_bind(account_id.to_owned());
            select.push(" ORDER BY c.id DESC LIMIT ");
            select.push_bind(i64::from(limit));
            let rows: Vec<super::sync_queries::ChangeRow> = select.fetch_all(&self.pool).await?;
            for row in rows {
                changes.push(super::sync::ChangeRecord::try_from(row)?);
            }
        }
        changes.sort_by_key(|c| std::cmp::Reverse(c.id));
        changes.truncate(limit as usize);
        Ok(changes)
    }

    async fn audit_page(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let mut query = build(format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE 1 = 1"));
        if let Some(org) = &filter.org {
            query.push(" AND org = ");
            query.push_bind(org.clone());
        }
        if let Some(actor) = &filter.actor {
            query.push(" AND actor = ");
            query.push_bind(actor.clone());
        }
        if let Some(event) = &filter.event {
            query.push(" AND event = ");
            query.push_bind(event.clone());
        }
        if let Some(request) = filter.request_id {
            query.push(" AND request_id = ");
            query.push_bind(request);
        }
        if let Some(before) = filter.before {
            query.push(" AND seq < ");
            query.push_bind(before);
        }
        query.push(" ORDER BY seq DESC LIMIT ");
        query.push_bind(i64::from(filter.limit));
        let rows: Vec<AuditRow> = query.fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn open_review_items(
        &self,
        org: OrgId,
        reviewer: Option<&str>,
    ) -> Result<i64, StoreError> {
        let mut query = build(
            "SELECT count(*) FROM review_items i JOIN review_campaigns c ON c.id = i.campaign_id \
             WHERE c.org_id = ",
        );
        query.push_bind(org.0);
        query.push(" AND c.state = 'active' AND i.state = 'open'");
        if let Some(reviewer) = reviewer {
            query.push(" AND i.reviewer = ");
            query.push_bind(reviewer.to_owned());
        }
        let (open,): (i64,) = query.fetch_one(&self.pool).await?;
        Ok(open)
    }

    async fn purge_console(&self, before: Timestamp) -> Result<(), StoreError> {
        sql("DELETE FROM console_sessions WHERE expires_at < $1 OR ended_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        sql("DELETE FROM console_links WHERE expires_at < $1 OR used_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
