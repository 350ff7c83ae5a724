//! The model as it was at a past time, rebuilt from the change history: for each user and
//! each grant, the last committed change observed at or before that time says what it was
//! (and a removal, that it was gone).

use std::collections::BTreeMap;
use std::sync::Arc;

use provost_connector::model::{Account, Grant};
use serde_json::Value;

use crate::store::reports::HeldEntitlement;
use crate::store::sync::{ChangeOp, ChangeRecord, Entity};

/// The grants `users` held, in (user, grant) order, given every change of theirs up to the
/// time in question (in id order).
pub(super) fn held_at(users: &[String], changes: &[ChangeRecord]) -> Vec<HeldEntitlement> {
    // The last change of each user, and of each grant with the change that made it what it
    // was (its creation, or the last move to another entitlement).
    let mut accounts: BTreeMap<&str, &ChangeRecord> = BTreeMap::new();
    let mut grants: BTreeMap<(&str, &str), (&ChangeRecord, Option<&ChangeRecord>)> =
        BTreeMap::new();
    for change in changes {
        match change.entity {
            Entity::Account => {
                accounts.insert(&change.object_id, change);
            }
            Entity::Grant => {
                let Some(user) = side(change)
                    .and_then(|row| row.get("account_id"))
                    .and_then(Value::as_str)
                else {
                    continue;
                };
                let made = change.op == ChangeOp::Created
                    || (change.op == ChangeOp::Updated
                        && change
                            .fields
                            .as_ref()
                            .is_some_and(|f| f.iter().any(|f| f == "entitlement_id")));
                let entry = grants
                    .entry((user, change.object_id.as_str()))
                    .or_insert((change, None));
                entry.0 = change;
                if made {
                    entry.1 = Some(change);
                }
            }
            Entity::Entitlement | Entity::Permission => {}
        }
    }
    let mut held = Vec::new();
    for user in users {
        let Some(last) = accounts.get(user.as_str()) else {
            continue;
        };
        if last.op == ChangeOp::Removed {
            continue;
        }
        let Some(account) = last
            .after
            .clone()
            .and_then(|row| serde_json::from_value::<Account>(row).ok())
        else {
            continue;
        };
        let account = Arc::new(account);
        for ((owner, _), (last, made)) in grants.range((user.as_str(), "")..) {
            if owner != user {
                break;
            }
            let Some(grant) = (last.op != ChangeOp::Removed)
                .then(|| last.after.clone())
                .flatten()
                .and_then(|row| serde_json::from_value::<Grant>(row).ok())
            else {
                continue;
            };
            held.push(HeldEntitlement {
                account: account.clone(),
                grant_id: grant.id,
                entitlement_id: grant.entitlement_id,
                source: grant.source.encode(),
                expires_at: grant.expires_at,
                since: made.map(|c| c.observed_at),
                request_id: made.and_then(|c| c.request_id),
            });
        }
    }
    held
}

/// The row a change recorded: after it, or before it for a removal.
fn side(change: &ChangeRecord) -> Option<&Value> {
    change.after.as_ref().or(change.before.as_ref())
}
