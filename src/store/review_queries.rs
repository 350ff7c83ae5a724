//! [`ReviewStore`](super::reviews::ReviewStore): campaigns, items and decisions, on either
//! database.
//!
//! Lock order, as in provisioning: the campaign or item rows first, then the audit chain's head.

use provost_connector::times::Timestamp;
use serde_json::Value;
use sqlx::types::Json;

use super::reviews::{CampaignMark, ItemDecision, ItemFilter, NewCampaign, Reassignment, Summary};
use super::sql::{build, sql};
use super::{OrgId, SqlStore, StoreError};
use crate::audit::AuditEvent;
use crate::reviews::model::{
    Campaign, CampaignState, DecisionRecord, NewItem, ReviewItem, StageReviewer,
};

const CAMPAIGN_COLUMNS: &str = "id, org_id, name, state, definition, due_at, created_by, \
    created_at, started_at, data_as_of, items, closed_at, closed_by, reminded_at, overdue_at, \
    next_run_at, start_failed_at, start_error, parent_id";

const ITEM_COLUMNS: &str = "i.id, i.campaign_id, i.account_id, i.username, i.display_name, \
    i.entitlement_id, i.kind, i.api_name, i.grant_id, i.context, i.privileged, i.suggestion, \
    i.priority, i.stage, i.stages, i.reviewer, i.reviewers, i.state, i.decision, i.comment, \
    i.decided_by, i.decided_at, i.drift, i.remediation, i.request_id, i.remediation_note, \
    r.state AS request_state, r.error AS request_error";

const ITEM_FROM: &str = "review_items i JOIN review_campaigns c ON c.id = i.campaign_id \
    LEFT JOIN access_requests r ON r.id = i.request_id";

#[derive(sqlx::FromRow)]
struct CampaignRow {
    id: i64,
    org_id: i64,
    name: String,
    state: String,
    definition: Json<Value>,
    due_at: Timestamp,
    created_by: String,
    created_at: Timestamp,
    started_at: Option<Timestamp>,
    data_as_of: Option<Timestamp>,
    items: i64,
    closed_at: Option<Timestamp>,
    closed_by: Option<String>,
    reminded_at: Option<Timestamp>,
    overdue_at: Option<Timestamp>,
    next_run_at: Option<Timestamp>,
    start_failed_at: Option<Timestamp>,
    start_error: Option<String>,
    parent_id: Option<i64>,
}

impl TryFrom<CampaignRow> for Campaign {
    type Error = StoreError;

    fn try_from(row: CampaignRow) -> Result<Self, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            what: "review campaign",
            detail: format!("{detail} (campaign {})", row.id),
        };
        let state = row.state.parse().map_err(corrupt)?;
        let definition =
            serde_json::from_value(row.definition.0).map_err(|e| corrupt(e.to_string()))?;
        Ok(Campaign {
            id: row.id,
            org: OrgId(row.org_id),
            name: row.name,
            state,
            definition,
            due_at: row.due_at,
            created_by: row.created_by,
            created_at: row.created_at,
            started_at: row.started_at,
            data_as_of: row.data_as_of,
            items: row.items,
            closed_at: row.closed_at,
            closed_by: row.closed_by,
            reminded_at: row.reminded_at,
            overdue_at: row.overdue_at,
            next_run_at: row.next_run_at,
            start_failed_at: row.start_failed_at,
            start_error: row.start_error,
            parent_id: row.parent_id,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    id: i64,
    campaign_id: i64,
    account_id: String,
    username: String,
    display_name: String,
    entitlement_id: String,
    kind: String,
    api_name: String,
    grant_id: String,
    context: Json<Value>,
    privileged: bool,
    suggestion: Option<String>,
    priority: i64,
    stage: i64,
    stages: i64,
    reviewer: String,
    reviewers: Json<Vec<StageReviewer>>,
    state: String,
    decision: Option<String>,
    comment: Option<String>,
    decided_by: Option<String>,
    decided_at: Option<Timestamp>,
    drift: Option<String>,
    remediation: Option<String>,
    request_id: Option<i64>,
    remediation_note: Option<String>,
    request_state: Option<String>,
    request_error: Option<String>,
}

impl From<ItemRow> for ReviewItem {
    fn from(row: ItemRow) -> Self {
        ReviewItem {
            id: row.id,
            campaign_id: row.campaign_id,
            account_id: row.account_id,
            username: row.username,
            display_name: row.display_name,
            entitlement_id: row.entitlement_id,
            kind: row.kind,
            api_name: row.api_name,
            grant_id: row.grant_id,
            context: row.context.0,
            privileged: row.privileged,
            suggestion: row.suggestion,
            priority: row.priority,
            stage: row.stage,
            stages: row.stages,
            reviewer: row.reviewer,
            reviewers: row.reviewers.0,
            state: row.state,
            decision: row.decision,
            comment: row.comment,
            decided_by: row.decided_by,
            decided_at: row.decided_at,
            drift: row.drift,
            remediation: row.remediation,
            request_id: row.request_id,
            remediation_note: row.remediation_note,
            request_state: row.request_state,
            request_error: row.request_error,
        }
    }
}

#[derive(sqlx::FromRow)]
struct DecisionRow {
    item_id: i64,
    stage: i64,
    actor: String,
    decision: String,
    comment: Option<String>,
    at: Timestamp,
}

fn campaigns(rows: Vec<CampaignRow>) -> Result<Vec<Campaign>, StoreError> {
    rows.into_iter().map(TryInto::try_into).collect()
}

/// Items are inserted this many rows per statement (SQLite binds at most 32,766 values).
const ITEM_CHUNK: usize = 1000;

#[async_trait::async_trait]
impl super::reviews::ReviewStore for SqlStore {
    async fn insert_campaign(
        &self,
        campaign: &NewCampaign,
        audit: &AuditEvent,
    ) -> Result<Campaign, StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some(parent) = campaign.parent_id {
            // A recurring campaign's next run is made once: the mark goes with the insert.
            let cleared = sql(
                "UPDATE review_campaigns SET next_run_at = NULL WHERE id = $1 \
                     AND next_run_at IS NOT NULL",
            )
            .bind(parent)
            .execute(&mut tx)
            .await?;
            if cleared != 1 {
                return Err(StoreError::Duplicate(format!(
                    "the next run of campaign {parent} was made already"
                )));
            }
        }
        let row: CampaignRow = sql(format!(
            "INSERT INTO review_campaigns (org_id, name, state, definition, due_at, created_by, \
                 created_at, parent_id) VALUES ($1, $2, 'draft', $3, $4, $5, $6, $7) \
                 RETURNING {CAMPAIGN_COLUMNS}"
        ))
        .bind(campaign.org.0)
        .bind(&campaign.name)
        .bind(Json(&campaign.definition))
        .bind(campaign.due_at)
        .bind(&campaign.created_by)
        .bind(chrono::Utc::now())
        .bind(campaign.parent_id)
        .fetch_one(&mut tx)
        .await?;
        let created = Campaign::try_from(row)?;
        let mut audit = audit.clone();
        audit.data["campaign"] = serde_json::json!(created.id);
        Self::append_audit_in(&mut tx, &[audit]).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn get_campaign(&self, org: OrgId, id: i64) -> Result<Option<Campaign>, StoreError> {
        let row: Option<CampaignRow> = sql(format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM review_campaigns WHERE org_id = $1 AND id = $2"
        ))
        .bind(org.0)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(TryInto::try_into).transpose()
    }

    async fn list_campaigns(
        &self,
        org: OrgId,
        state: Option<CampaignState>,
    ) -> Result<Vec<Campaign>, StoreError> {
        let mut select = build(format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM review_campaigns WHERE org_id = "
        ));
        select.push_bind(org.0);
        if let Some(state) = state {
            select.push(" AND state = ").push_bind(state.as_str());
        }
        select.push(" ORDER BY id DESC LIMIT 500");
        campaigns(select.fetch_all(&self.pool).await?)
    }

    async fn campaigns_in(&self, states: &[CampaignState]) -> Result<Vec<Campaign>, StoreError> {
        let mut select = build(format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM review_campaigns WHERE state IN "
        ));
        select.push_list(states.iter().map(|s| s.as_str()));
        select.push(" ORDER BY id");
        campaigns(select.fetch_all(&self.pool).await?)
    }

    async fn claim_start(
        &self,
        id: i64,
        now: Timestamp,
        stale: chrono::TimeDelta,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let claimed = sql(
            "UPDATE review_campaigns SET started_at = $2 WHERE id = $1 AND state = 'draft' \
                 AND (started_at IS NULL OR started_at < $3)",
        )
        .bind(id)
        .bind(now)
        .bind(now - stale)
        .execute(&mut tx)
        .await?;
        if claimed == 1 {
            sql("DELETE FROM review_items WHERE campaign_id = $1")
                .bind(id)
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await?;
        Ok(claimed == 1)
    }

    async fn insert_items(
        &self,
        campaign: i64,
        claim: Timestamp,
        items: &[NewItem],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let lock = match tx.backend() {
            super::Backend::Sqlite => "",
            super::Backend::Postgres => " FOR UPDATE",
        };
        let held: Option<(i64,)> = sql(format!(
            "SELECT id FROM review_campaigns WHERE id = $1 AND state = 'draft' \
                 AND started_at = $2{lock}"
        ))
        .bind(campaign)
        .bind(claim)
        .fetch_optional(&mut tx)
        .await?;
        if held.is_none() {
            return Err(StoreError::Duplicate(format!(
                "campaign {campaign}'s start was taken over by another (it ran past its lease); this one stops"
            )));
        }
        for chunk in items.chunks(ITEM_CHUNK) {
            let mut insert = build(
                "INSERT INTO review_items (campaign_id, account_id, username, display_name, \
                     entitlement_id, kind, api_name, grant_id, context, privileged, suggestion, \
                     priority, stage, stages, reviewer, reviewers, state) ",
            );
            insert.push_values(chunk, |mut row, item| {
                let first = item
                    .reviewers
                    .first()
                    .map(|r| r.reviewer.clone())
                    .unwrap_or_default();
                row.push_bind(campaign)
                    .push_bind(item.account_id.clone())
                    .push_bind(item.username.clone())
                    .push_bind(item.display_name.clone())
                    .push_bind(item.entitlement_id.clone())
                    .push_bind(item.kind.clone())
                    .push_bind(item.api_name.clone())
                    .push_bind(item.grant_id.clone())
                    .push_bind(Json(&item.context))
                    .push_bind(item.privileged)
                    .push_bind(item.suggestion.clone())
                    .push_bind(item.priority)
                    .push_bind(1_i64)
                    .push_bind(item.reviewers.len() as i64)
                    .push_bind(first)
                    .push_bind(Json(&item.reviewers))
                    .push_bind("open");
            });
            insert.execute(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn activate_campaign(
        &self,
        id: i64,
        claim: Timestamp,
        items: i64,
        data_as_of: Option<Timestamp>,
        due_at: Timestamp,
        next_run_at: Option<Timestamp>,
        audit: &[AuditEvent],
    ) -> Result<Option<Campaign>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row: Option<CampaignRow> = sql(format!(
            "UPDATE review_campaigns SET state = 'active', items = $2, data_as_of = $3, \
                 due_at = $4, next_run_at = $5, start_failed_at = NULL, start_error = NULL \
                 WHERE id = $1 AND state = 'draft' AND started_at = $6 \
                 RETURNING {CAMPAIGN_COLUMNS}"
        ))
        .bind(id)
        .bind(items)
        .bind(data_as_of)
        .bind(due_at)
        .bind(next_run_at)
        .bind(claim)
        .fetch_optional(&mut tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Self::append_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(Some(row.try_into()?))
    }

    async fn abandon_start(
        &self,
        id: i64,
        claim: Timestamp,
        failure: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let released = sql(
            "UPDATE review_campaigns SET started_at = NULL, start_failed_at = $3, \
                 start_error = $4 WHERE id = $1 AND state = 'draft' AND started_at = $2",
        )
        .bind(id)
        .bind(claim)
        .bind(failure.map(|_| chrono::Utc::now()))
        .bind(failure)
        .execute(&mut tx)
        .await?;
        if released == 1 {
            sql("DELETE FROM review_items WHERE campaign_id = $1")
                .bind(id)
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn end_campaign(
        &self,
        id: i64,
        from: &[CampaignState],
        to: CampaignState,
        actor: &str,
        policy_decision: Option<&str>,
        audit: &AuditEvent,
    ) -> Result<Option<Campaign>, StoreError> {
        let now = chrono::Utc::now();
        let mut tx = self.pool.begin().await?;
        let mut update = build("UPDATE review_campaigns SET state = ");
        update
            .push_bind(to.as_str())
            .push(", closed_at = ")
            .push_bind(now)
            .push(", closed_by = ")
            .push_bind(actor.to_owned())
            // A cancelled recurring campaign runs no more; a closed one runs again.
            .push(if to == CampaignState::Cancelled {
                ", next_run_at = NULL WHERE id = "
            } else {
                " WHERE id = "
            })
            .push_bind(id)
            .push(" AND state IN ");
        update.push_list(from.iter().map(|s| s.as_str()));
        update.push(&format!(" RETURNING {CAMPAIGN_COLUMNS}"));
        let row: Option<CampaignRow> = update.fetch_optional(&mut tx).await?;
        let Some(row) = row else {
            return Ok(None);
        };
        if let Some(decision) = policy_decision {
            let by = format!("close policy ({decision})");
            sql(
                "INSERT INTO review_decisions (item_id, stage, actor, decision, comment, at) \
                     SELECT id, stage, $2, $3, $4, $5 FROM review_items \
                     WHERE campaign_id = $1 AND state = 'open'",
            )
            .bind(id)
            .bind(&by)
            .bind(decision)
            .bind(format!(
                "decided by the campaign's close policy when {actor} closed it"
            ))
            .bind(now)
            .execute(&mut tx)
            .await?;
            sql(
                "UPDATE review_items SET state = 'decided', decision = $2, decided_by = $3, \
                     decided_at = $4, remediation = $5 WHERE campaign_id = $1 AND state = 'open'",
            )
            .bind(id)
            .bind(decision)
            .bind(&by)
            .bind(now)
            .bind((decision == "revoke").then_some("pending"))
            .execute(&mut tx)
            .await?;
        }
        Self::append_audit_in(&mut tx, std::slice::from_ref(audit)).await?;
        tx.commit().await?;
        Ok(Some(row.try_into()?))
    }

    async fn mark_campaign(
        &self,
        id: i64,
        mark: CampaignMark,
        audit: Option<&AuditEvent>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let marked = match mark {
            CampaignMark::Reminded(at) => sql(
                "UPDATE review_campaigns SET reminded_at = $2 WHERE id = $1 AND reminded_at IS NULL",
            )
            .bind(id)
            .bind(at),
            CampaignMark::Overdue(at) => sql(
                "UPDATE review_campaigns SET overdue_at = $2 WHERE id = $1 AND overdue_at IS NULL",
            )
            .bind(id)
            .bind(at),
            CampaignMark::StartFailed(at, error) => sql(
                "UPDATE review_campaigns SET start_failed_at = $2, start_error = $3 \
                     WHERE id = $1 AND state = 'draft'",
            )
            .bind(id)
            .bind(at)
            .bind(error),
        }
        .execute(&mut tx)
        .await?;
        if marked == 1 {
            if let Some(audit) = audit {
                Self::append_audit_in(&mut tx, std::slice::from_ref(audit)).await?;
            }
        }
        tx.commit().await?;
        Ok(marked == 1)
    }

    async fn holdings(
        &self,
        org: OrgId,
        accounts: &[String],
    ) -> Result<Vec<(String, bool, Vec<String>)>, StoreError> {
        let mut found: std::collections::BTreeMap<String, (bool, Vec<String>)> =
            std::collections::BTreeMap::new();
        for chunk in accounts.chunks(500) {
            let mut select = build("SELECT id, active FROM accounts WHERE org_id = ");
            select.push_bind(org.0).push(" AND id IN ");
            select.push_list(chunk.iter().map(String::as_str));
            let rows: Vec<(String, bool)> = select.fetch_all(&self.pool).await?;
            for (id, active) in rows {
                found.insert(id, (active, Vec::new()));
            }
            let mut select = build("SELECT account_id, entitlement_id FROM grants WHERE org_id = ");
            select
                .push_bind(org.0)
                .push(" AND source NOT LIKE 'group:%' AND account_id IN ");
            select.push_list(chunk.iter().map(String::as_str));
            let rows: Vec<(String, String)> = select.fetch_all(&self.pool).await?;
            for (account, entitlement) in rows {
                if let Some((_, held)) = found.get_mut(&account) {
                    held.push(entitlement);
                }
            }
        }
        Ok(found
            .into_iter()
            .map(|(id, (active, held))| (id, active, held))
            .collect())
    }

    async fn list_items(
        &self,
        org: OrgId,
        filter: &ItemFilter,
    ) -> Result<Vec<ReviewItem>, StoreError> {
        let mut select = build(format!(
            "SELECT {ITEM_COLUMNS} FROM {ITEM_FROM} WHERE c.org_id = "
        ));
        select.push_bind(org.0);
        if let Some(campaign) = filter.campaign {
            select.push(" AND i.campaign_id = ").push_bind(campaign);
        }
        if let Some(reviewer) = &filter.reviewer {
            select
                .push(" AND i.reviewer = ")
                .push_bind(reviewer.clone())
                .push(" AND c.state = 'active'");
        }
        if let Some(state) = &filter.state {
            select.push(" AND i.state = ").push_bind(state.clone());
        }
        if let Some(entitlement) = &filter.entitlement {
            select
                .push(" AND (i.entitlement_id = ")
                .push_bind(entitlement.clone())
                .push(" OR i.api_name = ")
                .push_bind(entitlement.clone())
                .push(")");
        }
        if let Some(account) = &filter.account {
            select
                .push(" AND (i.account_id = ")
                .push_bind(account.clone())
                .push(" OR lower(i.username) = lower(")
                .push_bind(account.clone())
                .push("))");
        }
        if filter.suggested {
            select.push(" AND i.suggestion IS NOT NULL");
        }
        // Most important first, then newest: one direction, so that the index on (reviewer,
        // state, priority, id) gives the order and the cursor seeks into it.
        if let Some((priority, id)) = filter.after {
            select
                .push(" AND (i.priority, i.id) < (")
                .push_bind(priority)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        select
            .push(" ORDER BY i.priority DESC, i.id DESC LIMIT ")
            .push_bind(i64::from(filter.limit));
        let rows: Vec<ItemRow> = select.fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn get_items(&self, org: OrgId, ids: &[i64]) -> Result<Vec<ReviewItem>, StoreError> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let mut select = build(format!(
                "SELECT {ITEM_COLUMNS} FROM {ITEM_FROM} WHERE c.org_id = "
            ));
            select.push_bind(org.0).push(" AND i.id IN ");
            select.push_list(chunk.iter().copied());
            select.push(" ORDER BY i.id");
            let rows: Vec<ItemRow> = select.fetch_all(&self.pool).await?;
            found.extend(rows.into_iter().map(ReviewItem::from));
        }
        Ok(found)
    }

    async fn campaign_items(
        &self,
        campaign: i64,
        after: i64,
        limit: u32,
    ) -> Result<Vec<ReviewItem>, StoreError> {
        let rows: Vec<ItemRow> = sql(format!(
            "SELECT {ITEM_COLUMNS} FROM {ITEM_FROM} WHERE i.campaign_id = $1 AND i.id > $2 \
                 ORDER BY i.id LIMIT $3"
        ))
        .bind(campaign)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn item_of_request(&self, request: i64) -> Result<Option<ReviewItem>, StoreError> {
        let row: Option<ItemRow> = sql(format!(
            "SELECT {ITEM_COLUMNS} FROM {ITEM_FROM} WHERE i.request_id = $1 ORDER BY i.id LIMIT 1"
        ))
        .bind(request)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Into::into))
    }

    async fn open_by_reviewer(&self, campaign: i64) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sql(
            "SELECT reviewer, COUNT(*) AS n FROM review_items WHERE campaign_id = $1 \
                 AND state = 'open' GROUP BY reviewer ORDER BY n DESC, reviewer",
        )
        .bind(campaign)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn summary(&self, campaign: i64, now: Timestamp) -> Result<Summary, StoreError> {
        let (items, open, kept, revoked, remediated, in_progress, failed, overdue): (
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
        ) = sql(
            "SELECT COUNT(*), \
                 COALESCE(SUM(CASE WHEN i.state = 'open' THEN 1 ELSE 0 END), 0), \
                 COALESCE(SUM(CASE WHEN i.decision = 'keep' THEN 1 ELSE 0 END), 0), \
                 COALESCE(SUM(CASE WHEN i.decision = 'revoke' THEN 1 ELSE 0 END), 0), \
                 COALESCE(SUM(CASE WHEN i.remediation = 'not_needed' OR (i.remediation = 'requested' \
                     AND r.state IN ('completed', 'expired')) THEN 1 ELSE 0 END), 0), \
                 COALESCE(SUM(CASE WHEN i.remediation = 'pending' OR (i.remediation = 'requested' \
                     AND r.state IN ('pending_approval', 'approved', 'executing', 'expiring')) THEN 1 ELSE 0 END), 0), \
                 COALESCE(SUM(CASE WHEN i.remediation = 'refused' OR (i.remediation = 'requested' \
                     AND (r.state IS NULL OR r.state IN ('failed', 'rejected', 'cancelled'))) THEN 1 ELSE 0 END), 0), \
                 COALESCE(SUM(CASE WHEN i.state = 'open' AND c.due_at < $2 THEN 1 ELSE 0 END), 0) \
             FROM review_items i JOIN review_campaigns c ON c.id = i.campaign_id \
             LEFT JOIN access_requests r ON r.id = i.request_id WHERE i.campaign_id = $1",
        )
        .bind(campaign)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(Summary {
            items,
            open,
            decided: items - open,
            kept,
            revoked,
            remediated,
            remediation_in_progress: in_progress,
            remediation_failed: failed,
            overdue,
        })
    }

    async fn decision_records(
        &self,
        campaign: i64,
        after_item: i64,
        through_item: i64,
    ) -> Result<Vec<DecisionRecord>, StoreError> {
        let rows: Vec<DecisionRow> = sql(
            "SELECT d.item_id, d.stage, d.actor, d.decision, d.comment, d.at \
                 FROM review_decisions d JOIN review_items i ON i.id = d.item_id \
                 WHERE i.campaign_id = $1 AND d.item_id > $2 AND d.item_id <= $3 \
                 ORDER BY d.item_id, d.id",
        )
        .bind(campaign)
        .bind(after_item)
        .bind(through_item)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| DecisionRecord {
                item_id: row.item_id,
                stage: row.stage,
                actor: row.actor,
                decision: row.decision,
                comment: row.comment,
                at: row.at,
            })
            .collect())
    }

    async fn decide_items(
        &self,
        decisions: &[ItemDecision],
        audit: &[AuditEvent],
    ) -> Result<Vec<i64>, StoreError> {
        let now = chrono::Utc::now();
        let mut tx = self.pool.begin().await?;
        if tx.backend() == super::Backend::Postgres && !decisions.is_empty() {
            // Wait for a close or cancel under way (it holds the campaign's row), so that no
            // decision lands on a campaign that has just ended.
            let mut lock = build(
                "SELECT c.id FROM review_campaigns c WHERE c.id IN \
                     (SELECT campaign_id FROM review_items WHERE id IN ",
            );
            lock.push_list(decisions.iter().map(|d| d.item));
            lock.push(") ORDER BY c.id FOR SHARE");
            let _: Vec<(i64,)> = lock.fetch_all(&mut tx).await?;
        }
        let mut written = Vec::new();
        let mut entries = Vec::new();
        for (decision, audit) in decisions.iter().zip(audit) {
            let moved =
                match &decision.next {
                    Some(next) => {
                        sql(
                            "UPDATE review_items SET stage = stage + 1, reviewer = $4, drift = $5 \
                         WHERE id = $1 AND state = 'open' AND stage = $2 AND reviewer = $3 \
                         AND EXISTS (SELECT 1 FROM review_campaigns c \
                             WHERE c.id = review_items.campaign_id AND c.state = 'active')",
                        )
                        .bind(decision.item)
                        .bind(decision.stage)
                        .bind(&decision.reviewer)
                        .bind(&next.reviewer)
                        .bind(&decision.drift)
                        .execute(&mut tx)
                        .await?
                    }
                    None => sql(
                        "UPDATE review_items SET state = 'decided', decision = $4, comment = $5, \
                         decided_by = $6, decided_at = $7, drift = $8, remediation = $9 \
                         WHERE id = $1 AND state = 'open' AND stage = $2 AND reviewer = $3 \
                         AND EXISTS (SELECT 1 FROM review_campaigns c \
                             WHERE c.id = review_items.campaign_id AND c.state = 'active')",
                    )
                    .bind(decision.item)
                    .bind(decision.stage)
                    .bind(&decision.reviewer)
                    .bind(&decision.decision)
                    .bind(&decision.comment)
                    .bind(&decision.actor)
                    .bind(now)
                    .bind(&decision.drift)
                    .bind(&decision.remediation)
                    .execute(&mut tx)
                    .await?,
                };
            if moved != 1 {
                continue;
            }
            sql(
                "INSERT INTO review_decisions (item_id, stage, actor, decision, comment, at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(decision.item)
            .bind(decision.stage)
            .bind(&decision.actor)
            .bind(&decision.decision)
            .bind(&decision.comment)
            .bind(now)
            .execute(&mut tx)
            .await?;
            written.push(decision.item);
            entries.push(audit.clone());
        }
        Self::append_audit_in(&mut tx, &entries).await?;
        tx.commit().await?;
        Ok(written)
    }

    async fn reassign_item(
        &self,
        reassignment: &Reassignment,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let now = chrono::Utc::now();
        let mut tx = self.pool.begin().await?;
        // The stage's reviewer in the JSON list is replaced in Rust: read, change, write back,
        // under the same conditions.
        let current: Option<(Json<Vec<StageReviewer>>,)> = sql(
            "SELECT reviewers FROM review_items WHERE id = $1 AND state = 'open' AND stage = $2 \
                 AND reviewer = $3",
        )
        .bind(reassignment.item)
        .bind(reassignment.stage)
        .bind(&reassignment.from)
        .fetch_optional(&mut tx)
        .await?;
        let Some((Json(mut reviewers),)) = current else {
            return Ok(false);
        };
        if let Some(slot) = usize::try_from(reassignment.stage - 1)
            .ok()
            .and_then(|i| reviewers.get_mut(i))
        {
            *slot = reassignment.to.clone();
        }
        let moved = sql("UPDATE review_items SET reviewer = $4, reviewers = $5 \
                 WHERE id = $1 AND state = 'open' AND stage = $2 AND reviewer = $3")
        .bind(reassignment.item)
        .bind(reassignment.stage)
        .bind(&reassignment.from)
        .bind(&reassignment.to.reviewer)
        .bind(Json(&reviewers))
        .execute(&mut tx)
        .await?;
        if moved != 1 {
            return Ok(false);
        }
        sql(
            "INSERT INTO review_decisions (item_id, stage, actor, decision, comment, at) \
                 VALUES ($1, $2, $3, 'reassign', $4, $5)",
        )
        .bind(reassignment.item)
        .bind(reassignment.stage)
        .bind(&reassignment.actor)
        .bind(format!(
            "from {} to {}: {}",
            reassignment.from, reassignment.to.reviewer, reassignment.reason
        ))
        .bind(now)
        .execute(&mut tx)
        .await?;
        Self::append_audit_in(&mut tx, std::slice::from_ref(audit)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn items_to_remediate(
        &self,
        campaign: i64,
        limit: u32,
    ) -> Result<Vec<ReviewItem>, StoreError> {
        let rows: Vec<ItemRow> = sql(format!(
            "SELECT {ITEM_COLUMNS} FROM {ITEM_FROM} WHERE i.campaign_id = $1 \
                 AND i.remediation = 'pending' ORDER BY i.id LIMIT $2"
        ))
        .bind(campaign)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn set_remediation(
        &self,
        item: i64,
        remediation: &str,
        request: Option<i64>,
        note: Option<&str>,
    ) -> Result<(), StoreError> {
        sql(
            "UPDATE review_items SET remediation = $2, request_id = $3, remediation_note = $4 \
                 WHERE id = $1",
        )
        .bind(item)
        .bind(remediation)
        .bind(request)
        .bind(note)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
