//! `changes --since T [--until T]`: every grant added, removed or changed and every user
//! lifecycle change (created, deactivated, reactivated, frozen, unfrozen, gone from the synced
//! scope) in the window, with when Provost observed it, before and after, and whether it came
//! through Provost (with the request, requester, approver and ticket) or happened directly in
//! Salesforce (with the sync run that saw it).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::output::{Format, RowWriter, Written};
use super::{Context, Params, ReportError, PAGE};
use crate::provisioning::request::AccessRequest;
use crate::store::sync::{ChangeOp, ChangeQuery, ChangeRecord, Entity};
use crate::store::Store;

const COLUMNS: [&str; 19] = [
    "change_id",
    "observed_at",
    "change",
    "user_id",
    "username",
    "entitlement_type",
    "entitlement_id",
    "entitlement_api_name",
    "previous_entitlement_id",
    "previous_entitlement_api_name",
    "fields",
    "before",
    "after",
    "origin",
    "sync_run",
    "request_id",
    "requester",
    "approver",
    "ticket",
];

pub(super) async fn write(
    store: &Arc<dyn Store>,
    context: &Context,
    params: &Params,
    format: Format,
    out: impl Write,
) -> Result<Written, ReportError> {
    let since = params.since.ok_or_else(|| {
        ReportError::BadParameter(
            "changes needs --since T (RFC 3339, e.g. 2026-07-01T00:00:00Z)".to_owned(),
        )
    })?;
    if params.until.is_some_and(|until| until <= since) {
        return Err(ReportError::BadParameter(
            "--until must be later than --since".to_owned(),
        ));
    }
    let mut writer = RowWriter::new(out, format, &COLUMNS)?;
    let mut usernames: HashMap<String, Option<String>> = HashMap::new();
    let mut requests: HashMap<i64, Option<AccessRequest>> = HashMap::new();
    let mut after = None;
    loop {
        let page = store
            .list_changes(
                context.org.id,
                &ChangeQuery {
                    since: Some(since),
                    until: params.until,
                    after,
                    limit: PAGE,
                    ..ChangeQuery::default()
                },
            )
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for change in &page {
            let kinds = classify(change);
            if kinds.is_empty() {
                continue;
            }
            let user_id = match change.entity {
                Entity::Account => Some(change.object_id.clone()),
                _ => field(change, "account_id"),
            };
            let username = match &user_id {
                Some(user) => match field(change, "username") {
                    Some(name) => Some(name),
                    None => {
                        if let Entry::Vacant(slot) = usernames.entry(user.clone()) {
                            let found = store.get_account(context.org.id, user).await?;
                            slot.insert(found.map(|a| a.username));
                        }
                        usernames[user].clone()
                    }
                },
                None => None,
            };
            let request = match change.request_id {
                Some(id) => {
                    if let Entry::Vacant(slot) = requests.entry(id) {
                        slot.insert(store.get_request(context.org.id, id).await?);
                    }
                    requests[&id].as_ref()
                }
                None => None,
            };
            let entitlement = |side: Option<&Value>| {
                side.and_then(|row| row.get("entitlement_id"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            let (now_ent, before_ent) = match change.entity {
                Entity::Grant => (
                    entitlement(change.after.as_ref())
                        .or_else(|| entitlement(change.before.as_ref())),
                    if change.op == ChangeOp::Updated {
                        entitlement(change.before.as_ref())
                    } else {
                        None
                    },
                ),
                _ => (None, None),
            };
            let named =
                |id: &Option<String>, what: fn(&provost_connector::model::Entitlement) -> Value| {
                    id.as_deref()
                        .and_then(|id| context.entitlements.get(id))
                        .map_or(Value::Null, what)
                };
            let (before, after) = changed_values(change);
            for kind in kinds {
                writer.row(&[
                    json!(change.id),
                    json!(crate::util::times::rfc3339(change.observed_at)),
                    json!(kind),
                    json!(user_id),
                    json!(username),
                    named(&now_ent, |e| json!(e.kind.as_str())),
                    json!(now_ent),
                    named(&now_ent, |e| json!(e.api_name)),
                    json!(before_ent),
                    named(&before_ent, |e| json!(e.api_name)),
                    json!(change.fields.as_ref().map(|f| f.join(";"))),
                    before.clone(),
                    after.clone(),
                    json!(if change.request_id.is_some() {
                        "provost"
                    } else {
                        "salesforce"
                    }),
                    json!(change.run_id.map(|r| r.0)),
                    json!(change.request_id),
                    json!(request.map(|r| &r.requester)),
                    json!(request.and_then(|r| r.approver.as_ref())),
                    json!(request.and_then(|r| r.ticket.as_ref())),
                ])?;
            }
        }
    }
    Ok(writer.finish()?)
}

/// What a change is, in an auditor's words; empty for changes the report leaves out
/// (entitlements themselves, and user edits that are not lifecycle changes).
fn classify(change: &ChangeRecord) -> Vec<&'static str> {
    let changed = |name: &str| {
        change
            .fields
            .as_ref()
            .is_some_and(|fields| fields.iter().any(|f| f == name))
    };
    let flag = |side: &Option<Value>, path: &[&str]| {
        let mut value = side.as_ref();
        for key in path {
            value = value.and_then(|v| v.get(*key));
        }
        value == Some(&Value::Bool(true))
    };
    match (change.entity, change.op) {
        (Entity::Grant, ChangeOp::Created) => vec!["grant_added"],
        (Entity::Grant, ChangeOp::Removed) => vec!["grant_removed"],
        (Entity::Grant, ChangeOp::Updated) if changed("entitlement_id") => vec!["grant_changed"],
        (Entity::Grant, ChangeOp::Updated) => vec!["grant_updated"],
        (Entity::Account, ChangeOp::Created) => vec!["user_created"],
        (Entity::Account, ChangeOp::Removed) => vec!["user_removed"],
        (Entity::Account, ChangeOp::Updated) => {
            let mut kinds = Vec::new();
            if changed("active") {
                kinds.push(if flag(&change.after, &["active"]) {
                    "user_reactivated"
                } else {
                    "user_deactivated"
                });
            }
            if changed("attributes.IsFrozen") {
                kinds.push(if flag(&change.after, &["attributes", "IsFrozen"]) {
                    "user_frozen"
                } else {
                    "user_unfrozen"
                });
            }
            kinds
        }
        (Entity::Entitlement | Entity::Permission, _) => Vec::new(),
    }
}

/// A top-level field of the change's row (after, else before).
fn field(change: &ChangeRecord, name: &str) -> Option<String> {
    change
        .after
        .as_ref()
        .and_then(|row| row.get(name))
        .or_else(|| change.before.as_ref().and_then(|row| row.get(name)))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The changed fields' values before and after, as compact JSON objects; null for a created
/// or removed object.
fn changed_values(change: &ChangeRecord) -> (Value, Value) {
    let Some(fields) = &change.fields else {
        return (Value::Null, Value::Null);
    };
    let pick = |side: &Option<Value>| -> Value {
        let Some(row) = side else { return Value::Null };
        let picked: Map<String, Value> = fields
            .iter()
            .map(|f| {
                let value = match f.strip_prefix("attributes.") {
                    Some(key) => row.get("attributes").and_then(|a| a.get(key)),
                    None => row.get(f.as_str()),
                };
                (f.clone(), value.cloned().unwrap_or(Value::Null))
            })
            .collect();
        json!(serde_json::to_string(&picked).expect("values serialise"))
    };
    (pick(&change.before), pick(&change.after))
}
