//! Walking the audit log: verifying its chain and exporting it.

use std::io::Write;
use std::sync::Arc;

use serde::Serialize;

use super::{recomputed, GENESIS};
use crate::store::Store;

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
