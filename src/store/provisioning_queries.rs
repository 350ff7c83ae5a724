//! [`ProvisioningStore`](super::provisioning::ProvisioningStore): tokens, access requests and
//! their claims, the audit log, preflights, and the effects of executed requests. The one
//! difference between the databases, the row-locking clause of a claim, is
//! `Backend::claim_lock`.
//!
//! Lock order, to keep PostgreSQL free of deadlocks: request rows first, then the live model,
//! then the audit chain's head, in every transaction.

use provost_connector::connector::ROWS_AS_READ;
use provost_connector::times::Timestamp;
use serde_json::Value;
use sqlx::types::Json;

use super::sql::{build, sql};
use super::{queries, sync_queries, SqlStore};
use super::{OrgId, StoreError};
use crate::audit::{AuditEntry, AuditEvent};
use crate::provisioning::request::AccessRequest;
use crate::tokens::ApiToken;

pub(super) const REQUEST_COLUMNS: &str = "id, org_id, action, state, account_id, \
    entitlement_id, requester, created_by, approver, justification, ticket, expires_at, \
    request_key AS idempotency_key, input, plan, result, error, attempts, next_attempt_at, \
    created_at, updated_at, finished_at";

pub(super) const AUDIT_COLUMNS: &str =
    "seq, at, actor, org, request_id, event, data, prev_hash, hash";

pub(super) const ACCOUNT_SELECT: &str = "SELECT id, username, email, first_name, last_name, \
    display_name, active, user_type, attributes FROM accounts";

#[derive(sqlx::FromRow)]
pub(super) struct TokenRow {
    id: i64,
    name: String,
    scopes: String,
    created_at: Timestamp,
    last_used_at: Option<Timestamp>,
    revoked_at: Option<Timestamp>,
    subject: Option<String>,
}

impl From<TokenRow> for ApiToken {
    fn from(row: TokenRow) -> Self {
        ApiToken {
            id: row.id,
            name: row.name,
            scopes: row
                .scopes
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
            subject: row.subject,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct RequestRow {
    id: i64,
    org_id: i64,
    action: String,
    state: String,
    account_id: Option<String>,
    entitlement_id: Option<String>,
    requester: String,
    created_by: String,
    approver: Option<String>,
    justification: Option<String>,
    ticket: Option<String>,
    expires_at: Option<Timestamp>,
    idempotency_key: Option<String>,
    input: Json<Value>,
    plan: Json<Value>,
    result: Option<Json<Value>>,
    error: Option<String>,
    attempts: i64,
    next_attempt_at: Option<Timestamp>,
    created_at: Timestamp,
    updated_at: Timestamp,
    finished_at: Option<Timestamp>,
}

impl TryFrom<RequestRow> for AccessRequest {
    type Error = StoreError;

    fn try_from(row: RequestRow) -> Result<Self, StoreError> {
        let state = row.state.parse().map_err(|detail| StoreError::Corrupt {
            what: "access request",
            detail: format!("{detail} (request {})", row.id),
        })?;
        Ok(AccessRequest {
            id: row.id,
            org: OrgId(row.org_id),
            action: row.action,
            state,
            account_id: row.account_id,
            entitlement_id: row.entitlement_id,
            requester: row.requester,
            created_by: row.created_by,
            approver: row.approver,
            justification: row.justification,
            ticket: row.ticket,
            expires_at: row.expires_at,
            idempotency_key: row.idempotency_key,
            input: row.input.0,
            plan: row.plan.0,
            result: row.result.map(|j| j.0),
            error: row.error,
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
            finished_at: row.finished_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AuditRow {
    seq: i64,
    at: Timestamp,
    actor: String,
    org: Option<String>,
    request_id: Option<i64>,
    event: String,
    data: String,
    prev_hash: String,
    hash: String,
}

impl From<AuditRow> for AuditEntry {
    fn from(row: AuditRow) -> Self {
        AuditEntry {
            seq: row.seq,
            at: row.at,
            actor: row.actor,
            org: row.org,
            request_id: row.request_id,
            event: row.event,
            data: row.data,
            prev_hash: row.prev_hash,
            hash: row.hash,
        }
    }
}

/// The entries `events` become when appended after (`seq`, `hash`), chained, at `at`.
pub(super) fn chain(
    mut seq: i64,
    mut hash: String,
    at: Timestamp,
    events: &[AuditEvent],
) -> Vec<AuditEntry> {
    let at = crate::audit::truncate(at);
    events
        .iter()
        .map(|event| {
            seq += 1;
            let data = serde_json::to_string(&event.data).expect("audit data serialises");
            let next = crate::audit::entry_hash(
                &hash,
                seq,
                at,
                &event.actor,
                event.org.as_deref(),
                event.request_id,
                &event.event,
                &data,
            );
            AuditEntry {
                seq,
                at,
                actor: event.actor.clone(),
                org: event.org.clone(),
                request_id: event.request_id,
                event: event.event.clone(),
                data,
                prev_hash: std::mem::replace(&mut hash, next.clone()),
                hash: next,
            }
        })
        .collect()
}

impl SqlStore {
    /// Appends `events` to the audit chain inside `tx`. The head row is updated first, so
    /// concurrent appenders queue on it and each entry links to the one before.
    pub(super) async fn append_audit_in(
        tx: &mut super::sql::Tx,
        events: &[crate::audit::AuditEvent],
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let n = events.len() as i64;
        let (seq, hash): (i64, String) =
            sql("UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq - $1, hash")
                .bind(n)
                .fetch_one(&mut *tx)
                .await?;
        let entries = chain(seq, hash, chrono::Utc::now(), events);
        for chunk in entries.chunks(500) {
            let mut insert = build(
                "INSERT INTO audit_log (seq, at, actor, org, request_id, event, data, \
                     prev_hash, hash) ",
            );
            insert.push_values(chunk, |mut row, entry| {
                row.push_bind(entry.seq)
                    .push_bind(entry.at)
                    .push_bind(entry.actor.clone())
                    .push_bind(entry.org.clone())
                    .push_bind(entry.request_id)
                    .push_bind(entry.event.clone())
                    .push_bind(entry.data.clone())
                    .push_bind(entry.prev_hash.clone())
                    .push_bind(entry.hash.clone());
            });
            insert.execute(&mut *tx).await?;
        }
        let last = entries.last().expect("events are not empty");
        sql("UPDATE audit_head SET hash = $1 WHERE id = 1")
            .bind(&last.hash)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }

    async fn request_in(
        tx: &mut super::sql::Tx,
        id: i64,
    ) -> Result<Option<crate::provisioning::request::AccessRequest>, StoreError> {
        let row: Option<RequestRow> = sql(format!(
            "SELECT {} FROM access_requests WHERE id = $1",
            REQUEST_COLUMNS
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        row.map(TryInto::try_into).transpose()
    }

    /// Records one change made by a request in the history.
    #[allow(clippy::too_many_arguments)]
    async fn record_change_in(
        tx: &mut super::sql::Tx,
        org: OrgId,
        request: i64,
        observed_at: provost_connector::times::Timestamp,
        resource: &str,
        entity: super::sync::Entity,
        object_id: &str,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
        digest: i64,
    ) -> Result<(), StoreError> {
        let op = match (&before, &after) {
            (None, Some(_)) => super::sync::ChangeOp::Created,
            (Some(_), None) => super::sync::ChangeOp::Removed,
            (Some(old), Some(new)) if old == new => return Ok(()),
            (Some(_), Some(_)) => super::sync::ChangeOp::Updated,
            (None, None) => return Ok(()),
        };
        let fields = match (&before, &after) {
            (Some(old), Some(new)) => Some(
                serde_json::to_string(&super::history::changed_fields(old, new))
                    .expect("strings serialise"),
            ),
            _ => None,
        };
        // The user the change shows on (SCIM's meta.lastModified).
        let user = match entity {
            super::sync::Entity::Account => Some(object_id.to_owned()),
            super::sync::Entity::Grant => after
                .as_ref()
                .or(before.as_ref())
                .and_then(|row| row["account_id"].as_str())
                .map(str::to_owned),
            _ => None,
        };
        if let Some(user) = &user {
            sql("UPDATE accounts SET changed_at = $3 WHERE org_id = $1 AND id = $2")
                .bind(org.0)
                .bind(user.clone())
                .bind(observed_at)
                .execute(&mut *tx)
                .await?;
        }
        // And the entitlements whose holders changed (a SCIM Group's members).
        if entity == super::sync::Entity::Grant {
            let mut held: Vec<&str> = [&before, &after]
                .into_iter()
                .flatten()
                .filter_map(|row| row["entitlement_id"].as_str())
                .collect();
            held.dedup();
            // Many executors grant the same permission set at once: a row another
            // transaction is marking is skipped (it sets the time itself), never waited for,
            // so that no two transactions deadlock over a set's time. (`NO KEY UPDATE`: the
            // foreign-key checks of grants being inserted take `KEY SHARE`, which it lets be.)
            let skip_locked = match tx.backend() {
                super::Backend::Sqlite => "",
                super::Backend::Postgres => " FOR NO KEY UPDATE SKIP LOCKED",
            };
            for entitlement in held {
                sql(format!(
                    "UPDATE entitlements SET changed_at = $3 WHERE org_id = $1 AND id IN \
                     (SELECT id FROM entitlements WHERE org_id = $1 AND id = $2{skip_locked})"
                ))
                .bind(org.0)
                .bind(entitlement)
                .bind(observed_at)
                .execute(&mut *tx)
                .await?;
            }
        }
        sql(
            "INSERT INTO changes (org_id, run_id, request_id, resource, entity, object_id, \
                 op, fields, before, after, digest, observed_at, account_id) \
                 VALUES ($1, NULL, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(org.0)
        .bind(request)
        .bind(resource)
        .bind(entity.as_str())
        .bind(object_id)
        .bind(op.as_str())
        .bind(fields)
        .bind(before.map(sqlx::types::Json))
        .bind(after.map(sqlx::types::Json))
        .bind(digest)
        .bind(observed_at)
        // A grant's user, which its history is found by.
        .bind(user.filter(|_| entity == super::sync::Entity::Grant))
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// A stored grant as JSON (as the history keeps it), with the resource that reads it.
    async fn stored_grant_in(
        tx: &mut super::sql::Tx,
        org: OrgId,
        id: &str,
    ) -> Result<Option<(serde_json::Value, String)>, StoreError> {
        let Some(row) = sql(format!(
            "SELECT {}, resource FROM grants WHERE org_id = $1 AND id = $2",
            sync_queries::GRANT_COLUMNS
        ))
        .bind(org.0)
        .bind(id)
        .fetch_optional::<queries::GrantWithResource>(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        let (_, value) = sync_queries::row_json(sync_queries::StoredRow::Grant(row.grant))?;
        Ok(Some((value, row.resource)))
    }

    /// Applies one effect of an executed request to the live model and its history; returns
    /// the resource whose grants it wrote, if any.
    async fn apply_effect_in(
        tx: &mut super::sql::Tx,
        org: OrgId,
        request: i64,
        effect: &super::provisioning::Effect,
    ) -> Result<Option<String>, StoreError> {
        use super::provisioning::Effect;
        let mut granted = None;
        let now = chrono::Utc::now();
        match effect {
            Effect::GrantSaved { resource, grant } => {
                let before = Self::stored_grant_in(tx, org, &grant.id)
                    .await?
                    .map(|(value, _)| value);
                let digest = super::digest::of(grant);
                let saved = sql(format!(
                    "INSERT INTO grants (org_id, id, account_id, entitlement_id, source, \
                         expires_at, attributes, resource, digest, since, request_id) \
                         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 \
                         WHERE EXISTS (SELECT 1 FROM accounts WHERE org_id = $1 AND id = $3) \
                         AND EXISTS (SELECT 1 FROM entitlements WHERE org_id = $1 AND id = $4) \
                         ON CONFLICT (org_id, id) DO UPDATE SET account_id = excluded.account_id, \
                         entitlement_id = excluded.entitlement_id, source = excluded.source, \
                         expires_at = excluded.expires_at, attributes = excluded.attributes, \
                         resource = excluded.resource, digest = excluded.digest, {}",
                    sync_queries::SINCE_ON_CONFLICT
                ))
                .bind(org.0)
                .bind(&grant.id)
                .bind(&grant.account_id)
                .bind(&grant.entitlement_id)
                .bind(grant.source.encode())
                .bind(grant.expires_at)
                .bind(sqlx::types::Json(&grant.attributes))
                .bind(*resource)
                .bind(digest)
                .bind(now)
                .bind(request)
                .execute(&mut *tx)
                .await?;
                if saved == 1 {
                    granted = Some((*resource).to_owned());
                    let after = serde_json::to_value(grant).expect("grants serialise");
                    Self::record_change_in(
                        tx,
                        org,
                        request,
                        now,
                        resource,
                        super::sync::Entity::Grant,
                        &grant.id,
                        before,
                        Some(after),
                        digest,
                    )
                    .await?;
                }
            }
            Effect::GrantRemoved { id } => {
                let before = Self::stored_grant_in(tx, org, id).await?;
                // The grant and those derived from it (a group's component sets: `ID:...`).
                let derived = format!("{id}:");
                let derived_end = format!("{id};");
                sql("DELETE FROM grants WHERE org_id = $1 AND (id = $2 OR (id >= $3 AND id < $4))")
                    .bind(org.0)
                    .bind(id)
                    .bind(&derived)
                    .bind(&derived_end)
                    .execute(&mut *tx)
                    .await?;
                if let Some((before, resource)) = before {
                    granted = Some(resource.clone());
                    Self::record_change_in(
                        tx,
                        org,
                        request,
                        now,
                        &resource,
                        super::sync::Entity::Grant,
                        id,
                        Some(before),
                        None,
                        0,
                    )
                    .await?;
                }
            }
            Effect::AccountSaved { resource, account } => {
                let before = sql(format!("{} WHERE org_id = $1 AND id = $2", ACCOUNT_SELECT))
                    .bind(org.0)
                    .bind(&account.id)
                    .fetch_optional::<queries::AccountRow>(&mut *tx)
                    .await?
                    .map(|row| sync_queries::row_json(sync_queries::StoredRow::Account(row)))
                    .transpose()?
                    .map(|(_, value)| value);
                let digest = super::digest::of(account);
                sql(
                    "INSERT INTO accounts (org_id, id, username, email, first_name, last_name, \
                         display_name, active, user_type, attributes, resource, digest) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                         ON CONFLICT (org_id, id) DO UPDATE SET username = excluded.username, \
                         email = excluded.email, first_name = excluded.first_name, \
                         last_name = excluded.last_name, display_name = excluded.display_name, \
                         active = excluded.active, user_type = excluded.user_type, \
                         attributes = excluded.attributes, resource = excluded.resource, \
                         digest = excluded.digest",
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
                .bind(*resource)
                .bind(digest)
                .execute(&mut *tx)
                .await?;
                let after = serde_json::to_value(account).expect("accounts serialise");
                Self::record_change_in(
                    tx,
                    org,
                    request,
                    now,
                    resource,
                    super::sync::Entity::Account,
                    &account.id,
                    before,
                    Some(after),
                    digest,
                )
                .await?;
            }
        }
        Ok(granted)
    }
}

#[async_trait::async_trait]
impl super::provisioning::ProvisioningStore for SqlStore {
    async fn create_token_for(
        &self,
        name: &str,
        token_hash: &str,
        scopes: &[String],
        subject: Option<&str>,
    ) -> Result<crate::tokens::ApiToken, StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted: Option<TokenRow> = sql(
            "INSERT INTO api_tokens (name, token_hash, scopes, created_at, subject) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING \
                 RETURNING id, name, scopes, created_at, last_used_at, revoked_at, subject",
        )
        .bind(name)
        .bind(token_hash)
        .bind(scopes.join(","))
        .bind(chrono::Utc::now())
        .bind(subject)
        .fetch_optional(&mut tx)
        .await?;
        let Some(row) = inserted else {
            return Err(StoreError::Duplicate(format!(
                    "a token named `{name}` exists already (revoked tokens keep their names); choose another name"
                )));
        };
        let token = crate::tokens::ApiToken::from(row);
        Self::append_audit_in(
            &mut tx,
            &[crate::audit::AuditEvent {
                actor: "cli".to_owned(),
                org: None,
                request_id: None,
                event: "token_created".to_owned(),
                data: serde_json::json!({ "name": name, "scopes": scopes, "subject": subject }),
            }],
        )
        .await?;
        tx.commit().await?;
        Ok(token)
    }

    async fn list_tokens(&self) -> Result<Vec<crate::tokens::ApiToken>, StoreError> {
        let rows: Vec<TokenRow> = sql(
            "SELECT id, name, scopes, created_at, last_used_at, revoked_at, subject FROM api_tokens \
                 ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn revoke_token(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let revoked =
            sql("UPDATE api_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL")
                .bind(name)
                .bind(chrono::Utc::now())
                .execute(&mut tx)
                .await?;
        if revoked == 1 {
            Self::append_audit_in(
                &mut tx,
                &[crate::audit::AuditEvent {
                    actor: "cli".to_owned(),
                    org: None,
                    request_id: None,
                    event: "token_revoked".to_owned(),
                    data: serde_json::json!({ "name": name }),
                }],
            )
            .await?;
        }
        tx.commit().await?;
        if revoked == 1 {
            return Ok(true);
        }
        let exists: Option<(i64,)> = sql("SELECT id FROM api_tokens WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(exists.is_some())
    }

    async fn token_by_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<crate::tokens::ApiToken>, StoreError> {
        let row: Option<TokenRow> = sql(
            "SELECT id, name, scopes, created_at, last_used_at, revoked_at, subject FROM api_tokens \
                 WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(token) = row.map(crate::tokens::ApiToken::from) else {
            return Ok(None);
        };
        // Use is recorded to the minute: no write on every request.
        let now = chrono::Utc::now();
        if token.revoked_at.is_none()
            && token
                .last_used_at
                .is_none_or(|at| now - at > chrono::TimeDelta::minutes(1))
        {
            sql("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1")
                .bind(token.id)
                .bind(now)
                .execute(&self.pool)
                .await?;
        }
        Ok(Some(token))
    }

    async fn find_account(
        &self,
        org: OrgId,
        key: &str,
    ) -> Result<super::provisioning::AccountMatch, StoreError> {
        use super::provisioning::AccountMatch;
        let select = ACCOUNT_SELECT;
        // A 15-character id (as Salesforce shows in URLs and reports) is the 18-character one
        // without its case-safe suffix; an 18-character id is the same in any case.
        let alphanumeric = key.chars().all(|c| c.is_ascii_alphanumeric());
        let conditions: &[&str] = match key.len() {
            15 if alphanumeric => &[
                "id = $2",
                "substr(id, 1, 15) = $2",
                "username = $2",
                "lower(username) = lower($2)",
            ],
            18 if alphanumeric => &[
                "id = $2",
                "lower(id) = lower($2)",
                "username = $2",
                "lower(username) = lower($2)",
            ],
            _ => &["id = $2", "username = $2", "lower(username) = lower($2)"],
        };
        for condition in conditions {
            let row: Option<queries::AccountRow> = sql(format!(
                "{select} WHERE org_id = $1 AND {condition} LIMIT 1"
            ))
            .bind(org.0)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = row {
                return Ok(AccountMatch::One(Box::new(row.into())));
            }
        }
        let rows: Vec<queries::AccountRow> = sql(format!(
            "{select} WHERE org_id = $1 AND lower(email) = lower($2) ORDER BY id LIMIT 5"
        ))
        .bind(org.0)
        .bind(key)
        .fetch_all(&self.pool)
        .await?;
        let mut accounts: Vec<provost_connector::model::Account> =
            rows.into_iter().map(Into::into).collect();
        Ok(match accounts.len() {
            0 => AccountMatch::None,
            1 => AccountMatch::One(Box::new(accounts.remove(0))),
            _ => AccountMatch::Several(accounts.into_iter().map(|a| a.username).collect()),
        })
    }

    async fn get_entitlement(
        &self,
        org: OrgId,
        id: &str,
    ) -> Result<Option<provost_connector::model::Entitlement>, StoreError> {
        let row: Option<queries::EntitlementRow> = sql(
            "SELECT id, kind, api_name, label, description, grantable, attributes \
                 FROM entitlements WHERE org_id = $1 AND id = $2",
        )
        .bind(org.0)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(TryInto::try_into).transpose()
    }

    async fn entitlement_by_name(
        &self,
        org: OrgId,
        kind: provost_connector::model::EntitlementKind,
        api_name: &str,
    ) -> Result<Option<provost_connector::model::Entitlement>, StoreError> {
        let row: Option<queries::EntitlementRow> = sql(
            "SELECT id, kind, api_name, label, description, grantable, attributes \
                 FROM entitlements WHERE org_id = $1 AND kind = $2 AND api_name = $3 \
                 ORDER BY id LIMIT 1",
        )
        .bind(org.0)
        .bind(kind.as_str())
        .bind(api_name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(TryInto::try_into).transpose()
    }

    async fn save_preflight(
        &self,
        org: OrgId,
        report: &serde_json::Value,
    ) -> Result<(), StoreError> {
        sql(
            "INSERT INTO preflight_reports (org_id, report, checked_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (org_id) DO UPDATE SET report = excluded.report, \
                 checked_at = excluded.checked_at",
        )
        .bind(org.0)
        .bind(sqlx::types::Json(report))
        .bind(chrono::Utc::now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn last_preflight(
        &self,
        org: OrgId,
    ) -> Result<Option<(serde_json::Value, provost_connector::times::Timestamp)>, StoreError> {
        let row: Option<(
            sqlx::types::Json<serde_json::Value>,
            provost_connector::times::Timestamp,
        )> = sql("SELECT report, checked_at FROM preflight_reports WHERE org_id = $1")
            .bind(org.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(report, at)| (report.0, at)))
    }

    async fn insert_request(
        &self,
        request: &super::provisioning::NewRequest,
        audit: &[crate::audit::AuditEvent],
    ) -> Result<super::provisioning::Inserted, StoreError> {
        use super::provisioning::Inserted;
        let now = chrono::Utc::now();
        let mut tx = self.pool.begin().await?;
        let inserted: Result<Option<(i64,)>, sqlx::Error> = sql(
            "INSERT INTO access_requests (org_id, action, state, account_id, entitlement_id, \
                 requester, created_by, approver, justification, ticket, expires_at, \
                 request_key, input, plan, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15) \
                 ON CONFLICT (org_id, created_by, request_key) DO NOTHING RETURNING id",
        )
        .bind(request.org.0)
        .bind(&request.action)
        .bind(request.state.as_str())
        .bind(&request.account_id)
        .bind(&request.entitlement_id)
        .bind(&request.requester)
        .bind(&request.created_by)
        .bind(&request.approver)
        .bind(&request.justification)
        .bind(&request.ticket)
        .bind(request.expires_at)
        .bind(&request.idempotency_key)
        .bind(sqlx::types::Json(&request.input))
        .bind(sqlx::types::Json(&request.plan))
        .bind(now)
        .fetch_optional(&mut tx)
        .await;
        let inserted = match inserted {
            Err(sqlx::Error::Database(error))
                if error.is_unique_violation()
                    && (error.constraint() == Some("access_requests_open")
                        || error.message().contains("access_requests_open")) =>
            {
                // Another open request asks for the same thing (perhaps stored a moment
                // ago by a racing POST): name it.
                tx.rollback().await?;
                let twin: Option<RequestRow> = sql(format!(
                    "SELECT {} FROM access_requests WHERE org_id = $1 AND account_id = $2 \
                         AND action = $3 AND COALESCE(entitlement_id, '') = $4 \
                         AND state IN ('pending_approval', 'approved', 'executing') \
                         AND account_id IS NOT NULL",
                    REQUEST_COLUMNS
                ))
                .bind(request.org.0)
                .bind(&request.account_id)
                .bind(&request.action)
                .bind(request.entitlement_id.as_deref().unwrap_or(""))
                .fetch_optional(&self.pool)
                .await?;
                return match twin {
                    Some(row) => Ok(Inserted::Duplicate(row.try_into()?)),
                    // The twin ended between the insert and this read: say so as a
                    // duplicate of nothing the caller can see; a retry will succeed.
                    None => Err(StoreError::Duplicate(
                        "another request for the same change ended just now; send this one again"
                            .into(),
                    )),
                };
            }
            other => other?,
        };
        let Some((id,)) = inserted else {
            tx.rollback().await?;
            let row: RequestRow = sql(format!(
                "SELECT {} FROM access_requests WHERE org_id = $1 AND created_by = $2 \
                     AND request_key = $3",
                REQUEST_COLUMNS
            ))
            .bind(request.org.0)
            .bind(&request.created_by)
            .bind(&request.idempotency_key)
            .fetch_one(&self.pool)
            .await?;
            let first = crate::provisioning::request::AccessRequest::try_from(row)?;
            return Ok(if first.input == request.input {
                Inserted::Existing(first)
            } else {
                Inserted::KeyReused(first)
            });
        };
        let events: Vec<crate::audit::AuditEvent> = audit
            .iter()
            .cloned()
            .map(|mut event| {
                event.request_id = Some(id);
                event
            })
            .collect();
        Self::append_audit_in(&mut tx, &events).await?;
        let stored = Self::request_in(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                what: "access request",
                detail: format!("request {id} vanished after it was stored"),
            })?;
        tx.commit().await?;
        Ok(Inserted::Created(stored))
    }

    async fn get_request(
        &self,
        org: OrgId,
        id: i64,
    ) -> Result<Option<crate::provisioning::request::AccessRequest>, StoreError> {
        let row: Option<RequestRow> = sql(format!(
            "SELECT {} FROM access_requests WHERE org_id = $1 AND id = $2",
            REQUEST_COLUMNS
        ))
        .bind(org.0)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(TryInto::try_into).transpose()
    }

    async fn request_by_key(
        &self,
        org: OrgId,
        created_by: &str,
        key: &str,
    ) -> Result<Option<crate::provisioning::request::AccessRequest>, StoreError> {
        let row: Option<RequestRow> = sql(format!(
            "SELECT {} FROM access_requests WHERE org_id = $1 AND created_by = $2 \
                 AND request_key = $3",
            REQUEST_COLUMNS
        ))
        .bind(org.0)
        .bind(created_by)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        row.map(TryInto::try_into).transpose()
    }

    async fn request_counts(
        &self,
        org: OrgId,
    ) -> Result<Vec<super::provisioning::RequestCount>, StoreError> {
        let rows: Vec<(String, i64, Option<provost_connector::times::Timestamp>)> = sql(
            "SELECT state, COUNT(*), MIN(updated_at) FROM access_requests WHERE org_id = $1 \
                 GROUP BY state ORDER BY state",
        )
        .bind(org.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(state, count, oldest_update)| super::provisioning::RequestCount {
                    state,
                    count,
                    oldest_update,
                },
            )
            .collect())
    }

    async fn list_requests(
        &self,
        org: OrgId,
        filter: &super::provisioning::RequestFilter,
    ) -> Result<Vec<crate::provisioning::request::AccessRequest>, StoreError> {
        // Only the filters given, so that each database can use the index that fits
        // (`$n IS NULL OR ...` hid them and made every listing scan the org's history).
        let mut query = build(format!(
            "SELECT {} FROM access_requests WHERE org_id = ",
            REQUEST_COLUMNS
        ));
        query.push_bind(org.0);
        if let Some(state) = filter.state {
            query.push(" AND state = ").push_bind(state.as_str());
        }
        if let Some(action) = &filter.action {
            query.push(" AND action = ").push_bind(action.clone());
        }
        if let Some(account) = &filter.account_id {
            query.push(" AND account_id = ").push_bind(account.clone());
        }
        if let Some(before) = filter.before {
            query.push(" AND id < ").push_bind(before);
        }
        query
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(filter.limit));
        let rows: Vec<RequestRow> = query.fetch_all(&self.pool).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn transition_request(
        &self,
        transition: &super::provisioning::Transition<'_>,
    ) -> Result<Option<crate::provisioning::request::AccessRequest>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut update = build("UPDATE access_requests SET state = ");
        update
            .push_bind(transition.to.as_str())
            .push(", updated_at = ")
            .push_bind(chrono::Utc::now());
        if let Some(approver) = transition.approver {
            update.push(", approver = ").push_bind(approver.to_owned());
        }
        if transition.to.is_final() {
            update
                .push(", finished_at = ")
                .push_bind(chrono::Utc::now());
        }
        update
            .push(" WHERE id = ")
            .push_bind(transition.id)
            .push(" AND state IN (");
        let mut states = update.separated(", ");
        for state in transition.from {
            states.push_bind(state.as_str());
        }
        update.push(")");
        let changed = update.execute(&mut tx).await?;
        if changed != 1 {
            tx.rollback().await?;
            return Ok(None);
        }
        let mut event = transition.audit.clone();
        event.request_id = Some(transition.id);
        Self::append_audit_in(&mut tx, &[event]).await?;
        let request = Self::request_in(&mut tx, transition.id).await?;
        tx.commit().await?;
        Ok(request)
    }

    async fn claim_requests(
        &self,
        org: OrgId,
        org_name: &str,
        worker: &str,
        limit: u32,
        lease: chrono::TimeDelta,
    ) -> Result<Vec<crate::provisioning::request::AccessRequest>, StoreError> {
        let now = chrono::Utc::now();
        let mut tx = self.pool.begin().await?;
        let rows: Vec<RequestRow> = sql(format!(
            "UPDATE access_requests SET \
                 state = CASE state WHEN 'approved' THEN 'executing' \
                 WHEN 'completed' THEN 'expiring' ELSE state END, \
                 claimed_by = $2, claim_expires_at = $3, attempts = attempts + 1, updated_at = $4 \
                 WHERE id IN (SELECT id FROM access_requests WHERE org_id = $1 \
                 AND (state IN ('approved', 'executing', 'expiring') \
                     OR (state = 'completed' AND expires_at IS NOT NULL)) AND (\
                 (state = 'approved' AND (next_attempt_at IS NULL OR next_attempt_at <= $4)) \
                 OR (state IN ('executing', 'expiring') AND claim_expires_at < $4) \
                 OR (state = 'completed' AND expires_at IS NOT NULL AND expires_at <= $4 \
                     AND (next_attempt_at IS NULL OR next_attempt_at <= $4))) \
                 ORDER BY id LIMIT $5{}) RETURNING {}",
            self.pool.backend().claim_lock(),
            REQUEST_COLUMNS
        ))
        .bind(org.0)
        .bind(worker)
        .bind(now + lease)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut tx)
        .await?;
        let mut claimed: Vec<crate::provisioning::request::AccessRequest> = rows
            .into_iter()
            .map(TryInto::try_into)
            .collect::<Result<_, _>>()?;
        claimed.sort_by_key(|r| r.id);
        let events: Vec<crate::audit::AuditEvent> = claimed
            .iter()
            .map(|request| crate::audit::AuditEvent {
                actor: format!("executor:{worker}"),
                org: Some(org_name.to_owned()),
                request_id: Some(request.id),
                event: request.state.as_str().to_owned(),
                data: serde_json::json!({ "attempt": request.attempts }),
            })
            .collect();
        Self::append_audit_in(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn finish_requests(
        &self,
        org: OrgId,
        worker: &str,
        outcomes: &[super::provisioning::Outcome],
    ) -> Result<u64, StoreError> {
        let now = chrono::Utc::now();
        let mut tx = self.pool.begin().await?;
        if tx.backend() == super::Backend::Postgres {
            // A sync's commit keeps no fingerprint of a resource whose grants this writes, and
            // this drops the fingerprints stored: the two must not overlap, or each misses the
            // other's rows (PostgreSQL's statements see what was committed when they began).
            // A commit writes its org's lock row first; this waits for it, and it for this.
            // (SQLite writes one transaction at a time.)
            sql("SELECT org_id FROM sync_locks WHERE org_id = $1 FOR SHARE")
                .bind(org.0)
                .execute(&mut tx)
                .await?;
        }
        let mut applied = 0;
        let mut events = Vec::new();
        let mut granted: Vec<String> = Vec::new();
        for outcome in outcomes {
            let finished = outcome.state.is_final()
                || outcome.state == crate::provisioning::request::RequestState::Completed
                    && outcome.next_attempt_at.is_none();
            let changed = sql(
                "UPDATE access_requests SET state = $3, result = COALESCE($4, result), \
                     error = $5, next_attempt_at = $6, claimed_by = NULL, \
                     claim_expires_at = NULL, updated_at = $7, \
                     finished_at = CASE WHEN $8 THEN $7 ELSE finished_at END \
                     WHERE id = $1 AND claimed_by = $2 AND state IN ('executing', 'expiring')",
            )
            .bind(outcome.id)
            .bind(worker)
            .bind(outcome.state.as_str())
            .bind(outcome.result.as_ref().map(sqlx::types::Json))
            .bind(outcome.error.as_deref())
            .bind(outcome.next_attempt_at)
            .bind(now)
            .bind(finished)
            .execute(&mut tx)
            .await?;
            if changed != 1 {
                continue;
            }
            applied += 1;
            for effect in &outcome.effects {
                let touched = Self::apply_effect_in(&mut tx, org, outcome.id, effect).await?;
                if let Some(resource) = touched.filter(|r| !granted.contains(r)) {
                    granted.push(resource);
                }
            }
            let mut event = outcome.audit.clone();
            event.request_id = Some(outcome.id);
            events.push(event);
        }
        // A fingerprint of a resource's rows as read no longer describes what the store holds
        // of a resource whose grants were written: the next sync reads it whole. (After every
        // effect: the model's rows are locked before the watermarks, as a sync's commit does.)
        for resource in &granted {
            sql(format!(
                "DELETE FROM sync_watermarks WHERE org_id = $1 AND resource = $2 \
                     AND watermark LIKE '{ROWS_AS_READ}%'"
            ))
            .bind(org.0)
            .bind(resource)
            .execute(&mut tx)
            .await?;
        }
        Self::append_audit_in(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(applied)
    }

    async fn next_due(
        &self,
        org: OrgId,
    ) -> Result<Option<provost_connector::times::Timestamp>, StoreError> {
        let rows: Vec<(Option<provost_connector::times::Timestamp>,)> = sql(
            "SELECT MIN(next_attempt_at) FROM access_requests WHERE org_id = $1 \
                 AND state = 'approved' \
                 UNION ALL SELECT MIN(claim_expires_at) FROM access_requests WHERE org_id = $1 \
                 AND state IN ('executing', 'expiring') \
                 UNION ALL SELECT MIN(COALESCE(next_attempt_at, expires_at)) FROM access_requests \
                 WHERE org_id = $1 AND state = 'completed' AND expires_at IS NOT NULL",
        )
        .bind(org.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().filter_map(|(at,)| at).min())
    }

    async fn append_audit(&self, events: &[crate::audit::AuditEvent]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        Self::append_audit_in(&mut tx, events).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_entries(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<crate::audit::AuditEntry>, StoreError> {
        let rows: Vec<AuditRow> = sql(format!(
            "SELECT {} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
            AUDIT_COLUMNS
        ))
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn request_audit(
        &self,
        request_id: i64,
    ) -> Result<Vec<crate::audit::AuditEntry>, StoreError> {
        let rows: Vec<AuditRow> = sql(format!(
            "SELECT {} FROM audit_log WHERE request_id = $1 ORDER BY seq",
            AUDIT_COLUMNS
        ))
        .bind(request_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn audit_head(&self) -> Result<(i64, String), StoreError> {
        Ok(sql("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?)
    }
}
