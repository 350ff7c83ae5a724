//! `entitlements`: one row per user and entitlement held, with how it is held (directly,
//! through a permission set group, through the profile), since when, until when, and the
//! Provost request that granted it.

use std::io::Write;
use std::sync::Arc;

use serde_json::{json, Value};

use super::output::{Format, Written};
use super::{resolve_entitlement, user_values, Context, Params, ReportError, USER_COLUMNS};
use crate::store::Store;

const COLUMNS: [&str; 9] = [
    "entitlement_type",
    "entitlement_id",
    "entitlement_api_name",
    "entitlement_label",
    "held_through",
    "grant_id",
    "assigned_since",
    "expires_at",
    "request_id",
];

pub(super) async fn write(
    store: &Arc<dyn Store>,
    context: &Context,
    params: &Params,
    format: Format,
    out: impl Write,
) -> Result<Written, ReportError> {
    let only = match &params.entitlement {
        Some(key) => Some(resolve_entitlement(context, key)?.id.clone()),
        None => None,
    };
    let mut writer = super::user_rows(out, format, &COLUMNS)?;
    let mut pages = super::Pages::new(params);
    let mut user: Option<String> = None;
    let mut values: Vec<Value> = Vec::new();
    while let Some(page) = pages.next(store, context.org.id).await? {
        for held in &page {
            if only.as_ref().is_some_and(|id| id != &held.entitlement_id)
                || !params.admits(&held.account)
            {
                continue;
            }
            // A user's columns are made once for all their rows (rows come in user order); each
            // row only replaces the entitlement's columns after them.
            if user.as_deref() != Some(held.account.id.as_str()) {
                user = Some(held.account.id.clone());
                values = user_values(context, &held.account);
            }
            let entitlement = context.entitlements.get(&held.entitlement_id);
            values.truncate(USER_COLUMNS.len());
            values.extend([
                json!(entitlement.map(|e| e.kind.as_str())),
                json!(held.entitlement_id),
                json!(entitlement.map(|e| &e.api_name)),
                json!(entitlement.map(|e| &e.label)),
                json!(held_through(context, held)),
                json!(held.grant_id),
                super::time_value(held.since),
                super::time_value(held.expires_at),
                json!(held.request_id),
            ]);
            writer.row(&values)?;
        }
    }
    Ok(writer.finish()?)
}

/// `direct`, `permission_set_group:API_NAME` (a component of a group the user holds), or
/// `profile:API_NAME` (a license that comes with the user's profile).
fn held_through(context: &Context, held: &crate::store::reports::HeldEntitlement) -> String {
    if let Some(group) = held.source.strip_prefix("group:") {
        let name = context
            .entitlements
            .get(group)
            .map_or(group, |e| e.api_name.as_str());
        return format!("permission_set_group:{name}");
    }
    if held.source == "profile" && context.kind_and_name(&held.entitlement_id).0 != "profile" {
        let profile = held
            .account
            .attributes
            .get("ProfileId")
            .and_then(Value::as_str)
            .and_then(|id| context.entitlements.get(id))
            .map_or("", |e| e.api_name.as_str());
        return format!("profile:{profile}");
    }
    "direct".to_owned()
}
