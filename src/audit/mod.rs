//! The audit log: what was done, by whom, to which request, in a hash chain. Each entry's hash
//! covers its own fields and the previous entry's hash, so editing, removing or reordering any
//! entry breaks the chain from there on. The store appends entries, computing their hashes
//! with [`entry_hash`]; [`log`] walks the chain (`provost audit verify`) and writes it out
//! (`provost audit export`).

pub mod log;

use chrono::Timelike;
use provost_connector::times::Timestamp;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::util::hex;
/// An entry to append to the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    pub actor: String,
    pub org: Option<String>,
    pub request_id: Option<i64>,
    pub event: String,
    pub data: Value,
}

/// An entry of the audit log, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    #[serde(with = "provost_connector::times::serde")]
    pub at: Timestamp,
    pub actor: String,
    pub org: Option<String>,
    pub request_id: Option<i64>,
    pub event: String,
    /// The event's data as the JSON text that was hashed.
    pub data: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An entry's fields, in the order and form that is hashed.
#[derive(Serialize)]
struct Hashed<'a> {
    seq: i64,
    at: String,
    actor: &'a str,
    org: Option<&'a str>,
    request_id: Option<i64>,
    event: &'a str,
    data: &'a str,
}

/// Times are kept to the microsecond, which both databases store exactly.
pub fn truncate(at: Timestamp) -> Timestamp {
    at.with_nanosecond(at.nanosecond() / 1000 * 1000)
        .expect("a truncated nanosecond is valid")
}

/// The hash of an entry whose predecessor's hash is `prev_hash`: SHA-256 over the previous
/// hash, a newline and the entry's canonical JSON, in lower-case hex.
#[allow(clippy::too_many_arguments)]
pub fn entry_hash(
    prev_hash: &str,
    seq: i64,
    at: Timestamp,
    actor: &str,
    org: Option<&str>,
    request_id: Option<i64>,
    event: &str,
    data: &str,
) -> String {
    let at = crate::util::times::rfc3339(at);
    let canonical = serde_json::to_string(&Hashed {
        seq,
        at,
        actor,
        org,
        request_id,
        event,
        data,
    })
    .expect("entries serialise");
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical.as_bytes());
    hex(&hasher.finalize())
}

/// The hash `entry` should have, given its predecessor's.
pub fn recomputed(entry: &AuditEntry) -> String {
    entry_hash(
        &entry.prev_hash,
        entry.seq,
        entry.at,
        &entry.actor,
        entry.org.as_deref(),
        entry.request_id,
        &entry.event,
        &entry.data,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_every_field_and_the_previous_hash() {
        let at = Timestamp::from_timestamp(1_800_000_000, 0).unwrap();
        let base = entry_hash(
            GENESIS,
            1,
            at,
            "alice",
            Some("prod"),
            Some(7),
            "created",
            "{}",
        );
        assert_eq!(base.len(), 64);
        assert_eq!(
            base,
            entry_hash(
                GENESIS,
                1,
                at,
                "alice",
                Some("prod"),
                Some(7),
                "created",
                "{}"
            )
        );
        let other = [
            entry_hash(
                &base,
                1,
                at,
                "alice",
                Some("prod"),
                Some(7),
                "created",
                "{}",
            ),
            entry_hash(
                GENESIS,
                2,
                at,
                "alice",
                Some("prod"),
                Some(7),
                "created",
                "{}",
            ),
            entry_hash(
                GENESIS,
                1,
                at,
                "bob",
                Some("prod"),
                Some(7),
                "created",
                "{}",
            ),
            entry_hash(GENESIS, 1, at, "alice", None, Some(7), "created", "{}"),
            entry_hash(GENESIS, 1, at, "alice", Some("prod"), None, "created", "{}"),
            entry_hash(
                GENESIS,
                1,
                at,
                "alice",
                Some("prod"),
                Some(7),
                "approved",
                "{}",
            ),
            entry_hash(
                GENESIS,
                1,
                at,
                "alice",
                Some("prod"),
                Some(7),
                "created",
                "{\"a\":1}",
            ),
        ];
        for hash in other {
            assert_ne!(hash, base);
        }
    }
}
