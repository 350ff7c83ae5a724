//! The audit log's hash chain: each entry's hash covers its own fields and the previous
//! entry's hash, so editing, removing or reordering any entry breaks the chain from there on.
//! `provost audit verify` walks the chain; `provost audit export` writes it as JSON lines.

use std::io::Write;
use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::store::provisioning::AuditEntry;
use crate::store::Store;

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
pub fn truncate(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(at.nanosecond() / 1000 * 1000)
        .expect("a truncated nanosecond is valid")
}

/// The hash of an entry whose predecessor's hash is `prev_hash`: SHA-256 over the previous
/// hash, a newline and the entry's canonical JSON, in lower-case hex.
#[allow(clippy::too_many_arguments)]
pub fn entry_hash(
    prev_hash: &str,
    seq: i64,
    at: OffsetDateTime,
    actor: &str,
    org: Option<&str>,
    request_id: Option<i64>,
    event: &str,
    data: &str,
) -> String {
    let at = at
        .to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .expect("times format as RFC 3339");
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

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn recomputed(entry: &AuditEntry) -> String {
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

/// What a walk of the chain found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub entries: u64,
    pub head_seq: i64,
    /// The first break, in words; `None` when the chain is whole.
    pub problem: Option<String>,
}

/// Walks the whole chain in order and stops at the first break, saying where it is.
pub async fn verify(store: &Arc<dyn Store>) -> anyhow::Result<Verification> {
    let (head_seq, head_hash) = store.audit_head().await?;
    let mut expected_prev = GENESIS.to_owned();
    let mut expected_seq = 1;
    let mut count = 0u64;
    let mut after = 0;
    let problem = 'walk: loop {
        let page = store.audit_entries(after, 1000).await?;
        if page.is_empty() {
            break None;
        }
        for entry in &page {
            count += 1;
            if entry.seq != expected_seq {
                break 'walk Some(format!(
                    "entry {expected_seq} is missing: the entry after {} is {} (entries were removed or renumbered)",
                    expected_seq - 1,
                    entry.seq
                ));
            }
            if entry.prev_hash != expected_prev {
                break 'walk Some(format!(
                    "entry {} does not link to entry {}: its previous hash is {} where {} was expected (entries were removed, inserted or reordered)",
                    entry.seq,
                    entry.seq - 1,
                    short(&entry.prev_hash),
                    short(&expected_prev)
                ));
            }
            if recomputed(entry) != entry.hash {
                break 'walk Some(format!(
                    "entry {} was altered: its content no longer matches its hash ({} {} at {})",
                    entry.seq, entry.event, entry.actor, entry.at
                ));
            }
            expected_prev = entry.hash.clone();
            expected_seq += 1;
        }
        after = page.last().map_or(after, |e| e.seq);
    };
    let problem = problem.or_else(|| {
        if expected_seq - 1 != head_seq || expected_prev != head_hash {
            Some(format!(
                "the log ends at entry {} but the chain's head says {} (entries at the end were removed)",
                expected_seq - 1,
                head_seq
            ))
        } else {
            None
        }
    });
    Ok(Verification {
        entries: count,
        head_seq,
        problem,
    })
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// Writes every entry as one JSON object per line; returns how many.
pub async fn export(store: &Arc<dyn Store>, out: &mut dyn Write) -> anyhow::Result<u64> {
    let mut after = 0;
    let mut count = 0;
    loop {
        let page = store.audit_entries(after, 1000).await?;
        if page.is_empty() {
            break;
        }
        for entry in &page {
            serde_json::to_writer(&mut *out, entry)?;
            out.write_all(b"\n")?;
            count += 1;
        }
        after = page.last().map_or(after, |e| e.seq);
    }
    out.flush()?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_every_field_and_the_previous_hash() {
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
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
