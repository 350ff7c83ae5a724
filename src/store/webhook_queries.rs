//! [`WebhookStore`](super::webhooks::WebhookStore): each webhook's cursor and claim, and its
//! dead letters.

use provost_connector::times::Timestamp;

use super::sql::sql;
use super::webhooks::{DeadLetter, WebhookCursor};
use super::{SqlStore, StoreError};

pub(super) const CURSOR_COLUMNS: &str = "name, after_seq, attempts, next_attempt_at, \
    failing_since, last_error, delivered, last_delivered_at, claimed_by, claim_expires_at, \
    created_at";

#[derive(sqlx::FromRow)]
pub(super) struct CursorRow {
    name: String,
    after_seq: i64,
    attempts: i64,
    next_attempt_at: Option<Timestamp>,
    failing_since: Option<Timestamp>,
    last_error: Option<String>,
    delivered: i64,
    last_delivered_at: Option<Timestamp>,
    claimed_by: Option<String>,
    claim_expires_at: Option<Timestamp>,
    created_at: Timestamp,
}

impl From<CursorRow> for WebhookCursor {
    fn from(row: CursorRow) -> Self {
        WebhookCursor {
            name: row.name,
            after_seq: row.after_seq,
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at,
            failing_since: row.failing_since,
            last_error: row.last_error,
            delivered: row.delivered,
            last_delivered_at: row.last_delivered_at,
            claimed_by: row.claimed_by,
            claim_expires_at: row.claim_expires_at,
            created_at: row.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct DeadLetterRow {
    id: i64,
    name: String,
    seq: i64,
    event: String,
    attempts: i64,
    last_error: String,
    failed_at: Timestamp,
    replayed_at: Option<Timestamp>,
}

impl From<DeadLetterRow> for DeadLetter {
    fn from(row: DeadLetterRow) -> Self {
        DeadLetter {
            id: row.id,
            name: row.name,
            seq: row.seq,
            event: row.event,
            attempts: row.attempts,
            last_error: row.last_error,
            failed_at: row.failed_at,
            replayed_at: row.replayed_at,
        }
    }
}

#[async_trait::async_trait]
impl super::webhooks::WebhookStore for SqlStore {
    async fn ensure_webhook(
        &self,
        name: &str,
        start_after: i64,
    ) -> Result<super::webhooks::WebhookCursor, StoreError> {
        sql(
            "INSERT INTO webhook_cursors (name, after_seq, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(start_after)
        .bind(chrono::Utc::now())
        .execute(&self.pool)
        .await?;
        let row: CursorRow = sql(format!(
            "SELECT {} FROM webhook_cursors WHERE name = $1",
            CURSOR_COLUMNS
        ))
        .bind(name)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.into())
    }

    async fn claim_webhook(
        &self,
        name: &str,
        worker: &str,
        lease: chrono::TimeDelta,
    ) -> Result<Option<super::webhooks::WebhookCursor>, StoreError> {
        let now = chrono::Utc::now();
        let row: Option<CursorRow> = sql(format!(
            "UPDATE webhook_cursors SET claimed_by = $2, claim_expires_at = $3 \
                 WHERE name = $1 \
                 AND (claimed_by IS NULL OR claimed_by = $2 OR claim_expires_at < $4) \
                 AND (next_attempt_at IS NULL OR next_attempt_at <= $4) \
                 RETURNING {}",
            CURSOR_COLUMNS
        ))
        .bind(name)
        .bind(worker)
        .bind(now + lease)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Into::into))
    }

    async fn advance_webhook(
        &self,
        name: &str,
        worker: &str,
        seq: i64,
        delivered: i64,
        lease: chrono::TimeDelta,
    ) -> Result<bool, StoreError> {
        let now = chrono::Utc::now();
        let changed = sql(
            "UPDATE webhook_cursors SET after_seq = $3, delivered = delivered + $4, \
                 last_delivered_at = CASE WHEN $4 > 0 THEN $5 ELSE last_delivered_at END, \
                 attempts = 0, next_attempt_at = NULL, failing_since = NULL, last_error = NULL, \
                 claim_expires_at = $6 \
                 WHERE name = $1 AND claimed_by = $2 AND after_seq <= $3",
        )
        .bind(name)
        .bind(worker)
        .bind(seq)
        .bind(delivered)
        .bind(now)
        .bind(now + lease)
        .execute(&self.pool)
        .await?;
        Ok(changed == 1)
    }

    async fn webhook_failed(
        &self,
        name: &str,
        worker: &str,
        failure: &super::webhooks::DeliveryFailure<'_>,
    ) -> Result<bool, StoreError> {
        let now = chrono::Utc::now();
        let mut tx = self.pool.begin().await?;
        let changed = if failure.give_up {
            let changed = sql("UPDATE webhook_cursors SET after_seq = $3, attempts = 0, \
                     next_attempt_at = NULL, failing_since = NULL, last_error = $4, \
                     claimed_by = NULL, claim_expires_at = NULL \
                     WHERE name = $1 AND claimed_by = $2 AND after_seq < $3")
            .bind(name)
            .bind(worker)
            .bind(failure.seq)
            .bind(format!(
                "gave up on entry {}: {}",
                failure.seq, failure.error
            ))
            .execute(&mut tx)
            .await?;
            if changed == 1 {
                sql("INSERT INTO webhook_dead_letters \
                         (name, seq, event, attempts, last_error, failed_at) \
                         VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(name)
                .bind(failure.seq)
                .bind(failure.event)
                .bind(failure.attempts)
                .bind(failure.error)
                .bind(now)
                .execute(&mut tx)
                .await?;
            }
            changed
        } else {
            sql(
                "UPDATE webhook_cursors SET attempts = $3, next_attempt_at = $4, \
                     failing_since = COALESCE(failing_since, $5), last_error = $6, \
                     claimed_by = NULL, claim_expires_at = NULL \
                     WHERE name = $1 AND claimed_by = $2",
            )
            .bind(name)
            .bind(worker)
            .bind(failure.attempts)
            .bind(failure.next_attempt_at)
            .bind(now)
            .bind(failure.error)
            .execute(&mut tx)
            .await?
        };
        tx.commit().await?;
        Ok(changed == 1)
    }

    async fn release_webhook(&self, name: &str, worker: &str) -> Result<(), StoreError> {
        sql(
            "UPDATE webhook_cursors SET claimed_by = NULL, claim_expires_at = NULL \
                 WHERE name = $1 AND claimed_by = $2",
        )
        .bind(name)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn webhook_cursors(&self) -> Result<Vec<super::webhooks::WebhookCursor>, StoreError> {
        let rows: Vec<CursorRow> = sql(format!(
            "SELECT {} FROM webhook_cursors ORDER BY name",
            CURSOR_COLUMNS
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn waiting_dead_letters(&self, name: &str) -> Result<i64, StoreError> {
        let (count,): (i64,) = sql(
            "SELECT COUNT(*) FROM webhook_dead_letters WHERE name = $1 AND replayed_at IS NULL",
        )
        .bind(name)
        .fetch_one(&self.pool)
        .await?;
        Ok(count)
    }

    async fn webhook_dead_letters(
        &self,
        name: &str,
        limit: u32,
    ) -> Result<Vec<super::webhooks::DeadLetter>, StoreError> {
        let rows: Vec<DeadLetterRow> = sql(
            "SELECT id, name, seq, event, attempts, last_error, failed_at, replayed_at \
                 FROM webhook_dead_letters WHERE name = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(name)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn rewind_webhook(&self, name: &str, after_seq: i64) -> Result<Option<u64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let changed = sql(
            "UPDATE webhook_cursors SET after_seq = $2, attempts = 0, next_attempt_at = NULL, \
                 failing_since = NULL, last_error = NULL WHERE name = $1",
        )
        .bind(name)
        .bind(after_seq)
        .execute(&mut tx)
        .await?;
        if changed != 1 {
            return Ok(None);
        }
        let replayed = sql("UPDATE webhook_dead_letters SET replayed_at = $3 \
                 WHERE name = $1 AND seq > $2 AND replayed_at IS NULL")
        .bind(name)
        .bind(after_seq)
        .bind(chrono::Utc::now())
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(Some(replayed))
    }
}
