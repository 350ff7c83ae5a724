//! Comparing one page with the stored model: what was created, updated and removed.
//!
//! A page covers key ranges (see [`Coverage`]); the stored rows of the same resource in those
//! ranges are fetched as `(id, digest)` pairs and merged with the page. Only rows whose digest
//! differs, and removed rows, are fetched whole (for the history's before-values), so an
//! unchanged page costs one indexed range scan per table and writes nothing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use provost_connector::connector::{Coverage, Page};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::store::digest;
use crate::store::history::changed_fields;
use crate::store::sync::{ChangeOp, Entity, KeyRange, StagedChange};
use crate::store::{OrgId, Store, StoreError};

/// The character after `:` in byte order: `KEY;` bounds every `KEY` and `KEY:suffix` id.
const AFTER_SUFFIXES: char = ';';

/// The ids that exist (stored, or created by this run so far), for checking that a grant's
/// account and entitlement will be there when the run commits.
#[derive(Debug, Default)]
pub struct Known {
    pub accounts: HashSet<String>,
    pub entitlements: HashSet<String>,
}

impl Known {
    fn set(&mut self, entity: Entity) -> Option<&mut HashSet<String>> {
        match entity {
            Entity::Account => Some(&mut self.accounts),
            Entity::Entitlement => Some(&mut self.entitlements),
            Entity::Grant | Entity::Permission => None,
        }
    }

    pub fn apply(&mut self, entity: Entity, id: &str, op: ChangeOp) {
        if let Some(set) = self.set(entity) {
            match op {
                ChangeOp::Created => {
                    set.insert(id.to_owned());
                }
                ChangeOp::Removed => {
                    set.remove(id);
                }
                ChangeOp::Updated => {}
            }
        }
    }
}

/// A connector broke the coverage contract; the run must not guess.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("the connector returned {entity} `{id}` outside the keys its page covers ({range}); this is a connector bug, and nothing was stored")]
    OutsideCoverage {
        entity: &'static str,
        id: String,
        range: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What comparing one page produced.
#[derive(Debug, Default)]
pub struct PageDiff {
    pub changes: Vec<StagedChange>,
    pub grants_skipped: u64,
    pub permissions_skipped: u64,
    /// The last key the page covered (full reads), shown in the checkpoint.
    pub last_key: Option<String>,
}

/// The key ranges a page covers.
pub fn ranges(coverage: &Coverage) -> Vec<KeyRange> {
    let bound = |key: &str| format!("{key}{AFTER_SUFFIXES}");
    match coverage {
        Coverage::Range { after, through } => vec![KeyRange {
            start: after.as_deref().map(bound).unwrap_or_default(),
            end: through.as_deref().map(bound),
        }],
        Coverage::Records(keys) => keys
            .iter()
            .map(|key| KeyRange {
                start: key.clone(),
                end: Some(bound(key)),
            })
            .collect(),
    }
}

fn covered(ranges: &[KeyRange], id: &str) -> bool {
    ranges
        .iter()
        .any(|r| id >= r.start.as_str() && r.end.as_deref().is_none_or(|end| id < end))
}

/// One page row ready to compare: its id, digest and JSON form.
struct Row {
    id: String,
    digest: i64,
    json: String,
    /// The account (grants) and entitlement (grants, permissions) the row needs.
    needs: Needs,
}

#[derive(Default)]
struct Needs {
    account: Option<String>,
    entitlement: Option<String>,
}

fn rows_of<T: Serialize>(items: &[T], id: impl Fn(&T) -> &str) -> Vec<Row> {
    items
        .iter()
        .map(|item| {
            let json = serde_json::to_string(item).expect("identity rows serialise to JSON");
            Row {
                id: id(item).to_owned(),
                digest: digest::of_json(&json),
                json,
                needs: Needs::default(),
            }
        })
        .collect()
}

/// A page serialised and digested, ready to compare: pure computation, done off the async
/// threads (see [`prepare`]).
pub struct Prepared {
    coverage: Coverage,
    tables: Vec<(Entity, Vec<Row>)>,
}

/// Serialises and digests every row of `page`.
pub fn prepare(page: Page) -> Prepared {
    let grants = page
        .grants
        .iter()
        .map(|grant| {
            let json = serde_json::to_string(grant).expect("identity rows serialise to JSON");
            Row {
                id: grant.id.clone(),
                digest: digest::of_json(&json),
                json,
                needs: Needs {
                    account: Some(grant.account_id.clone()),
                    entitlement: Some(grant.entitlement_id.clone()),
                },
            }
        })
        .collect();
    let permissions = page
        .permissions
        .iter()
        .map(|permission| {
            let json = serde_json::to_string(permission).expect("identity rows serialise to JSON");
            Row {
                id: permission.id.clone(),
                digest: digest::of_json(&json),
                json,
                needs: Needs {
                    account: None,
                    entitlement: Some(permission.entitlement_id.clone()),
                },
            }
        })
        .collect();
    Prepared {
        tables: vec![
            (Entity::Account, rows_of(&page.accounts, |a| &a.id)),
            (Entity::Entitlement, rows_of(&page.entitlements, |e| &e.id)),
            (Entity::Grant, grants),
            (Entity::Permission, permissions),
        ],
        coverage: page.coverage,
    }
}

/// Compares a prepared page of `resource` with the store.
pub async fn diff_page(
    store: &Arc<dyn Store>,
    org: OrgId,
    resource: &str,
    page: Prepared,
    known: &mut Known,
) -> Result<PageDiff, DiffError> {
    let ranges = ranges(&page.coverage);
    let mut diff = PageDiff {
        last_key: match &page.coverage {
            Coverage::Range { through, .. } => through.clone(),
            Coverage::Records(_) => None,
        },
        ..PageDiff::default()
    };
    for (entity, rows) in page.tables {
        if let Some(row) = rows.iter().find(|row| !covered(&ranges, &row.id)) {
            return Err(DiffError::OutsideCoverage {
                entity: entity.as_str(),
                id: row.id.clone(),
                range: describe(&ranges),
            });
        }
        compare(
            store, org, resource, entity, rows, &ranges, known, &mut diff,
        )
        .await?;
    }
    Ok(diff)
}

#[allow(clippy::too_many_arguments)]
async fn compare(
    store: &Arc<dyn Store>,
    org: OrgId,
    resource: &str,
    entity: Entity,
    rows: Vec<Row>,
    ranges: &[KeyRange],
    known: &mut Known,
    diff: &mut PageDiff,
) -> Result<(), StoreError> {
    if ranges.is_empty() {
        return Ok(());
    }
    let stored: HashMap<String, i64> = store
        .stored_digests(org, entity, resource, ranges)
        .await?
        .into_iter()
        .collect();
    let mut seen = HashSet::with_capacity(rows.len());
    let mut pending: Vec<(Row, ChangeOp)> = Vec::new();
    for row in rows {
        if !seen.insert(row.id.clone()) {
            continue;
        }
        match stored.get(&row.id) {
            Some(digest) if *digest == row.digest => {}
            Some(_) => pending.push((row, ChangeOp::Updated)),
            None => pending.push((row, ChangeOp::Created)),
        }
    }
    let mut removed: Vec<String> = stored
        .keys()
        .filter(|id| !seen.contains(*id))
        .cloned()
        .collect();
    removed.sort();
    let mut wanted: Vec<String> = pending
        .iter()
        .filter(|(_, op)| *op == ChangeOp::Updated)
        .map(|(row, _)| row.id.clone())
        .collect();
    wanted.extend(removed.iter().cloned());
    let mut before: HashMap<String, Value> = if wanted.is_empty() {
        HashMap::new()
    } else {
        store
            .stored_rows(org, entity, &wanted)
            .await?
            .into_iter()
            .collect()
    };
    for (row, op) in pending {
        let missing = row
            .needs
            .account
            .as_ref()
            .is_some_and(|account| !known.accounts.contains(account))
            || row
                .needs
                .entitlement
                .as_ref()
                .is_some_and(|entitlement| !known.entitlements.contains(entitlement));
        if missing {
            match entity {
                Entity::Permission => diff.permissions_skipped += 1,
                _ => diff.grants_skipped += 1,
            }
            continue;
        }
        known.apply(entity, &row.id, op);
        let previous = before.remove(&row.id);
        let fields = match (&op, &previous) {
            (ChangeOp::Updated, Some(old)) => {
                let new: Value = serde_json::from_str(&row.json).expect("serialised just now");
                Some(changed_fields(old, &new))
            }
            _ => None,
        };
        diff.changes.push(StagedChange {
            resource: resource.to_owned(),
            entity,
            object_id: row.id,
            op,
            fields,
            before: previous,
            after: Some(RawValue::from_string(row.json).expect("serialised just now")),
            digest: row.digest,
        });
    }
    for id in removed {
        known.apply(entity, &id, ChangeOp::Removed);
        diff.changes.push(StagedChange {
            resource: resource.to_owned(),
            entity,
            before: before.remove(&id),
            object_id: id,
            op: ChangeOp::Removed,
            fields: None,
            after: None,
            digest: 0,
        });
    }
    Ok(())
}

fn describe(ranges: &[KeyRange]) -> String {
    match ranges {
        [one] => format!(
            "from `{}` to {}",
            one.start,
            one.end
                .as_deref()
                .map(|e| format!("`{e}`"))
                .unwrap_or_else(|| "the end".to_owned())
        ),
        many => format!("{} records", many.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(after: Option<&str>, through: Option<&str>) -> Coverage {
        Coverage::Range {
            after: after.map(str::to_owned),
            through: through.map(str::to_owned),
        }
    }

    #[test]
    fn a_full_read_chains_half_open_ranges_that_hold_each_key_and_its_suffixes() {
        let first = ranges(&range(None, Some("005B")));
        assert_eq!(first[0].start, "");
        assert!(covered(&first, "005A:profile"));
        assert!(covered(&first, "005B"));
        assert!(covered(&first, "005B:role"));
        assert!(!covered(&first, "005C"));
        let last = ranges(&range(Some("005B"), None));
        assert!(!covered(&last, "005B:role"));
        assert!(covered(&last, "005C"));
        assert!(covered(&last, "zzz"));
    }

    #[test]
    fn a_read_of_changes_covers_only_the_named_records() {
        let ranges = ranges(&Coverage::Records(vec!["005B".into()]));
        assert!(covered(&ranges, "005B"));
        assert!(covered(&ranges, "005B:license"));
        assert!(!covered(&ranges, "005A"));
        assert!(!covered(&ranges, "005C"));
        assert!(!covered(&ranges, "005BA"), "a longer id is another record");
    }
}
