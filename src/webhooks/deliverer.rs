//! The sender inside `provost serve`: walks each webhook's cursor through the audit log and
//! POSTs the request entries the webhook wants, in order, retrying a failing receiver.

use std::sync::Arc;
use std::time::Duration;

use crate::audit::AuditEntry;
use crate::config::{Config, WebhookConfig};
use crate::store::webhooks::DeliveryFailure;
use crate::store::Store;

/// How often the audit head is looked at for new entries (one indexed read).
const POLL: Duration = Duration::from_millis(250);
/// Entries read at once.
const PAGE: u32 = 100;
/// The longest wait between two attempts.
const MAX_BACKOFF_SECONDS: i64 = 300;

pub struct Deliverer {
    config: Arc<Config>,
    store: Arc<dyn Store>,
    worker: String,
    http: reqwest::Client,
}

/// What one webhook's turn did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Turn {
    pub delivered: usize,
    pub failed: usize,
}

impl Deliverer {
    pub fn new(
        config: Arc<Config>,
        store: Arc<dyn Store>,
        worker: String,
    ) -> anyhow::Result<Deliverer> {
        let http = reqwest::Client::builder()
            // A receiver answering with a redirect is an error to fix, not a place to send
            // access notifications to.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("provost-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Deliverer {
            config,
            store,
            worker,
            http,
        })
    }

    /// Sends until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        if self.config.webhooks.is_empty() {
            return;
        }
        tracing::info!(webhooks = self.config.webhooks.len(), "webhook sender on");
        loop {
            if let Err(err) = self.run_once().await {
                tracing::warn!(error = format!("{err:#}"), "webhook pass failed");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// One pass over every webhook: sends what is due. Returns the deliveries made and the
    /// attempts that failed.
    pub async fn run_once(&self) -> anyhow::Result<Turn> {
        let (head, _) = self.store.audit_head().await?;
        let cursors = self.store.webhook_cursors().await?;
        let now = chrono::Utc::now();
        let mut total = Turn::default();
        for hook in &self.config.webhooks {
            let cursor = match cursors.iter().find(|c| c.name == hook.name) {
                Some(cursor) => cursor.clone(),
                None => self.store.ensure_webhook(&hook.name, head).await?,
            };
            let waiting = cursor.next_attempt_at.is_some_and(|at| at > now);
            let held = cursor
                .claimed_by
                .as_ref()
                .is_some_and(|w| w != &self.worker)
                && cursor.claim_expires_at.is_some_and(|at| at > now);
            if cursor.after_seq >= head || waiting || held {
                continue;
            }
            let turn = self.turn(hook).await?;
            total.delivered += turn.delivered;
            total.failed += turn.failed;
        }
        Ok(total)
    }

    /// Sends webhook `hook` what is due, until it is told everything, a send fails, or another
    /// sender holds it.
    #[tracing::instrument(name = "webhook", skip_all, fields(webhook = %hook.name, worker = %self.worker, trace_id = tracing::field::Empty))]
    async fn turn(&self, hook: &WebhookConfig) -> anyhow::Result<Turn> {
        crate::telemetry::record_trace_id(&tracing::Span::current());
        let mut turn = Turn::default();
        loop {
            let Some(cursor) = self
                .store
                .claim_webhook(&hook.name, &self.worker, lease(hook))
                .await?
            else {
                return Ok(turn);
            };
            let entries = self.store.audit_entries(cursor.after_seq, PAGE).await?;
            if entries.is_empty() {
                self.store.release_webhook(&hook.name, &self.worker).await?;
                return Ok(turn);
            }
            let (mut attempts, mut failing_since) = (cursor.attempts, cursor.failing_since);
            // The last entry passed without sending (not wanted) and not yet recorded.
            let mut passed = None;
            for entry in &entries {
                let Some(event) = wanted(hook, entry) else {
                    passed = Some(entry.seq);
                    continue;
                };
                match self.send(hook, entry, event).await {
                    Ok(()) => {
                        turn.delivered += 1;
                        (attempts, failing_since, passed) = (0, None, None);
                        if !self
                            .store
                            .advance_webhook(&hook.name, &self.worker, entry.seq, 1, lease(hook))
                            .await?
                        {
                            return Ok(turn); // another sender took over
                        }
                    }
                    Err(error) => {
                        turn.failed += 1;
                        if let Some(seq) = passed {
                            self.store
                                .advance_webhook(&hook.name, &self.worker, seq, 0, lease(hook))
                                .await?;
                        }
                        let now = chrono::Utc::now();
                        let since = failing_since.unwrap_or(now);
                        let give_up = now - since
                            >= i64::try_from(hook.give_up_after_minutes)
                                .ok()
                                .and_then(chrono::TimeDelta::try_minutes)
                                .unwrap_or(chrono::TimeDelta::MAX);
                        attempts += 1;
                        tracing::warn!(
                            webhook = %hook.name,
                            seq = entry.seq,
                            attempts,
                            give_up,
                            error = %error,
                            "webhook delivery failed"
                        );
                        self.store
                            .webhook_failed(
                                &hook.name,
                                &self.worker,
                                &DeliveryFailure {
                                    seq: entry.seq,
                                    event,
                                    error: &error,
                                    attempts,
                                    next_attempt_at: now + backoff(attempts),
                                    give_up,
                                },
                            )
                            .await?;
                        if give_up {
                            // Dead-lettered and passed (which let the webhook go): claim it
                            // again and carry on with the next entries.
                            passed = None;
                            break;
                        }
                        return Ok(turn);
                    }
                }
            }
            if let Some(seq) = passed {
                if !self
                    .store
                    .advance_webhook(&hook.name, &self.worker, seq, 0, lease(hook))
                    .await?
                {
                    return Ok(turn);
                }
            }
        }
    }

    /// POSTs one notification; the error says what the receiver did, without the URL (which
    /// may carry a token of the receiver's).
    async fn send(
        &self,
        hook: &WebhookConfig,
        entry: &AuditEntry,
        event: &str,
    ) -> Result<(), String> {
        let request = self.request_of(entry).await.map_err(|e| format!("{e:#}"))?;
        let body = serde_json::to_vec(&super::payload(entry, event, request.as_ref()))
            .expect("payloads serialise");
        let timestamp = chrono::Utc::now().timestamp();
        let response = self
            .http
            .post(&hook.url)
            .timeout(Duration::from_secs(hook.timeout_seconds))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Provost-Event-Id", entry.seq.to_string())
            .header("Provost-Event-Type", event)
            .header(
                "Provost-Signature",
                super::signature(hook.secret.expose(), timestamp, &body),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| format!("the receiver could not be reached: {}", e.without_url()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        let text: String = text.chars().take(200).collect();
        Err(format!("the receiver answered HTTP {status}: {text}"))
    }

    async fn request_of(
        &self,
        entry: &AuditEntry,
    ) -> anyhow::Result<Option<crate::provisioning::request::AccessRequest>> {
        let (Some(org), Some(id)) = (&entry.org, entry.request_id) else {
            return Ok(None);
        };
        let Some(record) = self.store.find_org(org).await? else {
            return Ok(None);
        };
        Ok(self.store.get_request(record.id, id).await?)
    }
}

/// The event type `entry` is sent as to `hook`, if `hook` wants it.
fn wanted(hook: &WebhookConfig, entry: &AuditEntry) -> Option<&'static str> {
    let event = super::event_type(entry)?;
    let event_ok = hook.events.is_empty() || hook.events.iter().any(|e| e == event);
    let org_ok = hook.orgs.is_empty()
        || entry
            .org
            .as_ref()
            .is_some_and(|org| hook.orgs.iter().any(|o| o == org));
    (event_ok && org_ok).then_some(event)
}

/// How long a sender holds a webhook: two attempts' time and some; every recorded step
/// renews it, so a sender that dies is replaced within it.
fn lease(hook: &WebhookConfig) -> chrono::TimeDelta {
    // `timeout_seconds` is checked to be 1..=120 when the configuration loads.
    chrono::TimeDelta::seconds(i64::try_from(hook.timeout_seconds).unwrap_or(120) * 2 + 30)
}

/// 1 s after the first failure, doubling up to 5 minutes.
fn backoff(attempts: i64) -> chrono::TimeDelta {
    let exponent = u32::try_from((attempts - 1).clamp(0, 16)).unwrap_or(16);
    chrono::TimeDelta::seconds((1i64 << exponent).min(MAX_BACKOFF_SECONDS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_five_minutes() {
        let seconds: Vec<i64> = (1..=11).map(|n| backoff(n).num_seconds()).collect();
        assert_eq!(seconds, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    }
}
