//! What webhook delivery keeps: each webhook's cursor in the audit log (how far it was
//! notified, its current failure, who is sending) and the notifications given up on.
//!
//! The notifications themselves are not stored again: they are the audit log's request
//! entries, which are written in the same transaction as the state changes they describe.

use async_trait::async_trait;
use provost_connector::times::Timestamp;
use serde::Serialize;

use super::StoreError;

/// A webhook's place in the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookCursor {
    pub name: String,
    /// Every entry up to this sequence number was delivered, dead-lettered or not wanted.
    pub after_seq: i64,
    /// Failed attempts at the next entry.
    pub attempts: i64,
    #[serde(with = "provost_connector::times::serde::option")]
    pub next_attempt_at: Option<Timestamp>,
    /// When the current run of failures began.
    #[serde(with = "provost_connector::times::serde::option")]
    pub failing_since: Option<Timestamp>,
    pub last_error: Option<String>,
    pub delivered: i64,
    #[serde(with = "provost_connector::times::serde::option")]
    pub last_delivered_at: Option<Timestamp>,
    pub claimed_by: Option<String>,
    #[serde(with = "provost_connector::times::serde::option")]
    pub claim_expires_at: Option<Timestamp>,
    #[serde(with = "provost_connector::times::serde")]
    pub created_at: Timestamp,
}

/// A notification given up on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub name: String,
    /// The audit entry it was made from.
    pub seq: i64,
    pub event: String,
    pub attempts: i64,
    pub last_error: String,
    #[serde(with = "provost_connector::times::serde")]
    pub failed_at: Timestamp,
    /// When `provost webhook replay` sent it again; `None` while it waits for a replay.
    #[serde(with = "provost_connector::times::serde::option")]
    pub replayed_at: Option<Timestamp>,
}

/// A failed attempt to deliver the entry `seq`.
#[derive(Debug, Clone)]
pub struct DeliveryFailure<'a> {
    pub seq: i64,
    pub event: &'a str,
    pub error: &'a str,
    /// Attempts made so far, this one included.
    pub attempts: i64,
    /// When to try again; unused when `give_up`.
    pub next_attempt_at: Timestamp,
    /// Dead-letter the entry and move on.
    pub give_up: bool,
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// The cursor of webhook `name`, created just after `start_after` (the audit head when
    /// the webhook is first configured: it is told about what happens from then on).
    async fn ensure_webhook(
        &self,
        name: &str,
        start_after: i64,
    ) -> Result<WebhookCursor, StoreError>;
    /// Takes webhook `name` for `worker` for `lease` if it is due (no retry pending) and no
    /// other worker holds it; `None` otherwise. One sender per webhook keeps the order.
    async fn claim_webhook(
        &self,
        name: &str,
        worker: &str,
        lease: chrono::TimeDelta,
    ) -> Result<Option<WebhookCursor>, StoreError>;
    /// Moves the cursor to `seq` after `delivered` notifications were accepted (entries not
    /// wanted by the webhook are passed with 0), clearing any failure and renewing the claim
    /// for `lease`. False when `worker` no longer holds the webhook.
    async fn advance_webhook(
        &self,
        name: &str,
        worker: &str,
        seq: i64,
        delivered: i64,
        lease: chrono::TimeDelta,
    ) -> Result<bool, StoreError>;
    /// Records a failed attempt and lets the webhook go: retried at `next_attempt_at`, or
    /// dead-lettered and passed when `give_up`.
    async fn webhook_failed(
        &self,
        name: &str,
        worker: &str,
        failure: &DeliveryFailure<'_>,
    ) -> Result<bool, StoreError>;
    /// Lets the webhook go without changing its place (shutdown, nothing to send).
    async fn release_webhook(&self, name: &str, worker: &str) -> Result<(), StoreError>;
    async fn webhook_cursors(&self) -> Result<Vec<WebhookCursor>, StoreError>;
    /// How many dead letters of webhook `name` wait for a replay.
    async fn waiting_dead_letters(&self, name: &str) -> Result<i64, StoreError>;
    /// The newest dead letters of webhook `name` first.
    async fn webhook_dead_letters(
        &self,
        name: &str,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StoreError>;
    /// Puts webhook `name` back to just after `after_seq`, so the entries after it are sent
    /// again, clears its failure and marks its dead letters after it replayed, in one
    /// transaction: how many were marked, or `None` when there is no such webhook.
    async fn rewind_webhook(&self, name: &str, after_seq: i64) -> Result<Option<u64>, StoreError>;
}
