//! Webhooks: access-request state changes, syncs that failed or could not start, and access
//! reviews (a campaign started, items assigned, a reminder before the due time, overdue,
//! closed or cancelled), sent to configured URLs, signed with HMAC-SHA256.
//!
//! Notifications are made from the audit log's request entries, which are written in the same
//! transaction as the state changes: a change cannot happen without its notification being
//! due, and a crash loses nothing (the webhook's cursor says how far it was told). Each webhook
//! receives its notifications one at a time in the log's order; a failing receiver is retried
//! with backoff and holds later notifications back until it answers or the notification is
//! dead-lettered. Delivery is at least once: receivers drop repeats by the event `id`.
//!
//! A notification is a POST of JSON:
//! `{"id": "1234", "type": "request.completed", "occurred_at": ..., "org": ..., "actor": ...,
//! "request": {...as it is when sent...}, "data": {...the audit entry's data...},
//! "audit": {"seq": 1234, "hash": ...}}` with the headers `Provost-Event-Id`,
//! `Provost-Event-Type` and `Provost-Signature: t=UNIX,v1=HEX`, where HEX is the lower-case
//! HMAC-SHA256, under the webhook's secret, of `UNIX`, a full stop, and the body's bytes.

pub mod deliverer;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::audit::AuditEntry;
use crate::provisioning::request::AccessRequest;

/// The event types a webhook can be sent, and the audit events they come from.
const EVENTS: [(&str, &str); 18] = [
    ("request_created", "request.created"),
    ("request_approved", "request.approved"),
    ("request_rejected", "request.rejected"),
    ("request_cancelled", "request.cancelled"),
    ("executing", "request.executing"),
    ("retry_scheduled", "request.retry_scheduled"),
    ("request_completed", "request.completed"),
    ("request_failed", "request.failed"),
    ("expiring", "request.expiring"),
    ("expiry_retry_scheduled", "request.expiry_retry_scheduled"),
    ("request_expired", "request.expired"),
    ("sync_failed", "sync.failed"),
    ("review_campaign_started", "review.campaign_started"),
    ("review_assigned", "review.assigned"),
    ("review_reminder", "review.reminder"),
    ("review_overdue", "review.overdue"),
    ("review_campaign_closed", "review.campaign_closed"),
    ("review_campaign_cancelled", "review.campaign_cancelled"),
];

/// Every event type, as named in `[[webhooks]] events`.
pub const EVENT_TYPES: [&str; 18] = {
    let mut names = [""; 18];
    let mut i = 0;
    while i < EVENTS.len() {
        names[i] = EVENTS[i].1;
        i += 1;
    }
    names
};

/// The event type an audit entry is sent as; `None` for entries that are neither a request's
/// state change nor a failed sync (a Salesforce write, a token change).
pub fn event_type(entry: &AuditEntry) -> Option<&'static str> {
    let (_, event) = EVENTS.iter().find(|(audit, _)| *audit == entry.event)?;
    // A request's events name their request; a sync's stand alone (`request` is null).
    if event.starts_with("request.") && entry.request_id.is_none() {
        return None;
    }
    Some(event)
}

/// The JSON body sent for `entry`, with the request as it is now (`None` when it is gone).
pub fn payload(entry: &AuditEntry, event: &str, request: Option<&AccessRequest>) -> Value {
    let data: Value = serde_json::from_str(&entry.data).unwrap_or(Value::Null);
    let org = entry.org.clone().unwrap_or_default();
    let request = request.map(|r| {
        json!({
            "id": r.id,
            "url": format!("/api/v1/orgs/{org}/access-requests/{}", r.id),
            "action": r.action,
            "state": r.state,
            "account_id": r.account_id,
            "entitlement_id": r.entitlement_id,
            "summary": r.plan.get("summary"),
            "requester": r.requester,
            "approver": r.approver,
            "ticket": r.ticket,
            "justification": r.justification,
            "expires_at": r.expires_at.map(crate::util::times::rfc3339),
            "error": r.error,
            "created_at": crate::util::times::rfc3339(r.created_at),
            "updated_at": crate::util::times::rfc3339(r.updated_at),
        })
    });
    json!({
        "id": entry.seq.to_string(),
        "type": event,
        "occurred_at": crate::util::times::rfc3339(entry.at),
        "org": entry.org,
        "actor": entry.actor,
        "request_id": entry.request_id,
        "request": request,
        "data": data,
        "audit": { "seq": entry.seq, "hash": entry.hash },
    })
}

/// The `Provost-Signature` header's value for `body` sent at `timestamp` (Unix seconds).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        crate::util::hex(&mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HMAC-SHA256 written out from RFC 2104, to check the crate's use against.
    fn hmac_by_hand(key: &[u8], message: &[u8]) -> String {
        use sha2::Digest;
        let mut block = [0u8; 64];
        block[..key.len()].copy_from_slice(key);
        let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
        let inner = Sha256::new()
            .chain_update(pad(0x36))
            .chain_update(message)
            .finalize();
        let outer = Sha256::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize();
        crate::util::hex(&outer)
    }

    #[test]
    fn signatures_are_hmac_sha256_of_the_timestamp_and_body() {
        // The hand-written HMAC against RFC 4231 test case 2 first.
        assert_eq!(
            hmac_by_hand(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let body = br#"{"id":"7","type":"request.completed"}"#;
        let header = signature("whsec-0123456789abcdef", 1_800_000_000, body);
        let mut signed = b"1800000000.".to_vec();
        signed.extend_from_slice(body);
        assert_eq!(
            header,
            format!(
                "t=1800000000,v1={}",
                hmac_by_hand(b"whsec-0123456789abcdef", &signed)
            )
        );
        assert_ne!(
            header,
            signature("another-secret-0123", 1_800_000_000, body)
        );
        assert_ne!(
            header,
            signature("whsec-0123456789abcdef", 1_800_000_001, body)
        );
    }

    #[test]
    fn request_state_changes_and_failed_syncs_are_events() {
        let entry = |event: &str, request_id: Option<i64>| AuditEntry {
            seq: 1,
            at: provost_connector::times::Timestamp::UNIX_EPOCH,
            actor: "a".into(),
            org: Some("prod".into()),
            request_id,
            event: event.into(),
            data: "{}".into(),
            prev_hash: String::new(),
            hash: String::new(),
        };
        assert_eq!(
            event_type(&entry("request_completed", Some(3))),
            Some("request.completed")
        );
        assert_eq!(
            event_type(&entry("executing", Some(3))),
            Some("request.executing")
        );
        assert_eq!(event_type(&entry("salesforce_write_sent", None)), None);
        assert_eq!(event_type(&entry("token_created", None)), None);
        assert_eq!(
            event_type(&entry("request_completed", None)),
            None,
            "a request's event without its request"
        );
        assert_eq!(event_type(&entry("sync_failed", None)), Some("sync.failed"));
        assert_eq!(EVENT_TYPES.len(), EVENTS.len());
        assert!(EVENT_TYPES
            .iter()
            .all(|t| t.starts_with("request.") || t.starts_with("review.") || *t == "sync.failed"));
        assert_eq!(
            event_type(&entry("review_reminder", None)),
            Some("review.reminder")
        );
        let body = payload(&entry("sync_failed", None), "sync.failed", None);
        assert_eq!(body["type"], "sync.failed");
        assert_eq!(body["request"], Value::Null);
    }
}
