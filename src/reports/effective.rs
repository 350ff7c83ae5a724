//! `effective-permissions`: per user, each sensitive system permission held and every grant
//! that confers it: the profile (through its profile-owned permission set), a permission set
//! assigned directly, or a component set of an assigned permission set group. One row per
//! user, permission and path, so "who can Modify All Data, and exactly why" is a filter away.
//!
//! A path through a permission set group is cut when the group does not confer the
//! permission: Salesforce keeps the group's result (its components OR'ed, muted permissions
//! removed) on the group's aggregate permission set, and that is what decides `effective`. A
//! cut path is still a row, with `effective` false and `muted_by` naming the group's muting
//! sets that mute the permission; `group_status` says when the group is not `Updated` (its
//! aggregate may lag its components). Without a synced aggregate set, the muting sets decide.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use provost_connector::model::Entitlement;
use serde_json::{json, Value};

use super::output::{Format, RowWriter, Written};
use super::{user_values, Context, Params, ReportError};
use crate::store::reports::HeldEntitlement;
use crate::store::Store;

/// The sensitive permissions read on every permission set, with the names Setup shows.
pub const PERMISSIONS: [(&str, &str); 14] = [
    ("PermissionsModifyAllData", "Modify All Data"),
    ("PermissionsViewAllData", "View All Data"),
    ("PermissionsManageUsers", "Manage Users"),
    ("PermissionsManageInternalUsers", "Manage Internal Users"),
    ("PermissionsCustomizeApplication", "Customize Application"),
    ("PermissionsAuthorApex", "Author Apex"),
    (
        "PermissionsManageProfilesPermissionsets",
        "Manage Profiles and Permission Sets",
    ),
    ("PermissionsAssignPermissionSets", "Assign Permission Sets"),
    (
        "PermissionsResetPasswords",
        "Reset User Passwords and Unlock Users",
    ),
    ("PermissionsViewSetup", "View Setup and Configuration"),
    ("PermissionsApiEnabled", "API Enabled"),
    ("PermissionsManageRemoteAccess", "Manage Connected Apps"),
    ("PermissionsViewAllUsers", "View All Users"),
    ("PermissionsManageRoles", "Manage Roles"),
];

const COLUMNS: [&str; 13] = [
    "permission",
    "permission_field",
    "via_type",
    "via_id",
    "via_api_name",
    "via_component_id",
    "via_component_api_name",
    "grant_id",
    "assigned_since",
    "expires_at",
    "effective",
    "muted_by",
    "group_status",
];

/// The permission a `--permission` value names: the field (`PermissionsModifyAllData`), the
/// field without its prefix, or the Setup name, in any case and spacing.
pub fn resolve_permission(text: &str) -> Result<&'static str, ReportError> {
    let squash = |s: &str| {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase()
    };
    let wanted = squash(text);
    PERMISSIONS
        .iter()
        .find(|(field, label)| {
            squash(field) == wanted
                || squash(field.trim_start_matches("Permissions")) == wanted
                || squash(label) == wanted
        })
        .map(|(field, _)| *field)
        .ok_or_else(|| {
            ReportError::BadParameter(format!(
                "`{text}` is not a permission the report covers: use one of {}",
                PERMISSIONS
                    .iter()
                    .map(|(f, _)| f.trim_start_matches("Permissions"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

pub(super) async fn write(
    store: &Arc<dyn Store>,
    context: &Context,
    params: &Params,
    format: Format,
    out: impl Write,
) -> Result<Written, ReportError> {
    let only = params
        .permission
        .as_deref()
        .map(resolve_permission)
        .transpose()?;
    // A profile's permissions are those of the permission set it owns; a group's result is
    // kept on its aggregate set.
    let sets = super::carrying_sets(&context.entitlements);
    let mut writer = super::user_rows(out, format, &COLUMNS)?;
    let mut users = super::Users::new(params);
    while let Some(grants) = users.next(store, context.org.id).await? {
        rows_of_user(context, params, only, &sets, &grants, &mut writer)?;
    }
    Ok(writer.finish()?)
}

/// One path to permissions: the set that holds them and how the user came by it.
struct Path<'a> {
    set_id: &'a str,
    via_type: &'static str,
    via_id: &'a str,
    via_api_name: &'a str,
    component: Option<(&'a str, &'a str)>,
    grant: &'a HeldEntitlement,
}

/// Whether a path through group `group_id` confers `field`, the muting sets that mute it there,
/// and the group's status.
fn through_group(
    context: &Context,
    sets: &HashMap<&str, &Entitlement>,
    group_id: &str,
    field: &str,
) -> (bool, Value, Value) {
    let group = context.entitlements.get(group_id);
    let status = group
        .and_then(|g| g.attributes.get("Status"))
        .cloned()
        .unwrap_or(Value::Null);
    let muting: Vec<&str> = group
        .and_then(|g| g.attributes.get("muting_sets"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|set| {
            set["muted"]
                .as_array()
                .is_some_and(|muted| muted.iter().any(|p| p == field))
        })
        .filter_map(|set| set["api_name"].as_str())
        .collect();
    let effective = match sets.get(group_id) {
        Some(aggregate) => super::holds_permission(aggregate, field),
        None => muting.is_empty(),
    };
    let muted_by = if effective || muting.is_empty() {
        Value::Null
    } else {
        json!(muting.join(", "))
    };
    (effective, muted_by, status)
}

fn rows_of_user<W: Write>(
    context: &Context,
    params: &Params,
    only: Option<&str>,
    sets: &HashMap<&str, &Entitlement>,
    grants: &[HeldEntitlement],
    writer: &mut RowWriter<W>,
) -> Result<(), ReportError> {
    let Some(first) = grants.first() else {
        return Ok(());
    };
    let account = &first.account;
    if !params.admits(account) {
        return Ok(());
    }
    let mut paths = Vec::new();
    for grant in grants {
        let (kind, api_name) = context.kind_and_name(&grant.entitlement_id);
        match (kind, grant.source.as_str()) {
            ("profile", _) => {
                if let Some(set) = sets
                    .get(grant.entitlement_id.as_str())
                    .map(|s| s.id.as_str())
                {
                    paths.push(Path {
                        set_id: set,
                        via_type: "profile",
                        via_id: &grant.entitlement_id,
                        via_api_name: api_name,
                        component: None,
                        grant,
                    });
                }
            }
            ("permission_set", "direct") => paths.push(Path {
                set_id: &grant.entitlement_id,
                via_type: "permission_set",
                via_id: &grant.entitlement_id,
                via_api_name: api_name,
                component: None,
                grant,
            }),
            ("permission_set", source) => {
                if let Some(group) = source.strip_prefix("group:") {
                    let group_name = context
                        .entitlements
                        .get(group)
                        .map_or(group, |e| e.api_name.as_str());
                    paths.push(Path {
                        set_id: &grant.entitlement_id,
                        via_type: "permission_set_group",
                        via_id: group,
                        via_api_name: group_name,
                        component: Some((&grant.entitlement_id, api_name)),
                        grant,
                    });
                }
            }
            _ => {}
        }
    }
    let user = user_values(context, account);
    for (field, label) in PERMISSIONS {
        if only.is_some_and(|o| o != field) {
            continue;
        }
        for path in &paths {
            if !context
                .entitlements
                .get(path.set_id)
                .is_some_and(|set| super::holds_permission(set, field))
            {
                continue;
            }
            let (effective, muted_by, group_status) = match path.via_type {
                "permission_set_group" => through_group(context, sets, path.via_id, field),
                _ => (true, Value::Null, Value::Null),
            };
            let mut values = user.clone();
            values.extend([
                json!(label),
                json!(field),
                json!(path.via_type),
                json!(path.via_id),
                json!(path.via_api_name),
                json!(path.component.map(|(id, _)| id)),
                json!(path.component.map(|(_, name)| name)),
                json!(path.grant.grant_id),
                super::time_value(path.grant.since),
                super::time_value(path.grant.expires_at),
                json!(effective),
                muted_by,
                group_status,
            ]);
            writer.row(&values)?;
        }
    }
    Ok(())
}

/// Every sensitive system permission `account` holds now and each path to it, as the rows of
/// this report (JSON objects): "why does this person have Modify All Data", for one user
/// without reading everyone's grants. The same rules as the report: profiles through the set
/// they own, groups through their aggregate set and muting sets.
pub async fn of_user(
    store: &Arc<dyn Store>,
    org: &crate::store::OrgRecord,
    account: provost_connector::model::Account,
) -> Result<Vec<Value>, ReportError> {
    let context = Context {
        org: org.clone(),
        entitlements: super::catalog(store, org.id).await?,
        now: chrono::Utc::now(),
    };
    rows_for(store, &context, account).await
}

async fn rows_for(
    store: &Arc<dyn Store>,
    context: &Context,
    account: provost_connector::model::Account,
) -> Result<Vec<Value>, ReportError> {
    let account = Arc::new(account);
    let grants: Vec<HeldEntitlement> = store
        .grants_of_account(context.org.id, &account.id)
        .await?
        .into_iter()
        .map(|grant| HeldEntitlement {
            account: account.clone(),
            grant_id: grant.id,
            entitlement_id: grant.entitlement_id,
            source: grant.source.encode(),
            expires_at: grant.expires_at,
            since: None,
            request_id: None,
        })
        .collect();
    let sets = super::carrying_sets(&context.entitlements);
    let mut out = Vec::new();
    let mut writer = super::user_rows(&mut out, Format::Json, &COLUMNS)?;
    rows_of_user(
        context,
        &Params::default(),
        None,
        &sets,
        &grants,
        &mut writer,
    )?;
    writer.finish()?;
    let rows: Value =
        serde_json::from_slice(&out).map_err(|err| ReportError::Io(std::io::Error::other(err)))?;
    Ok(match rows {
        Value::Array(rows) => rows,
        _ => Vec::new(),
    })
}

/// The sensitive system permissions (as Setup names them) that granting `entitlement` would
/// add to what `account` holds effectively now: a permission set's own, a permission set
/// group's result (its aggregate set), a profile's owned set's. Empty for what confers none
/// (a public group, a role) or adds nothing new.
pub async fn gains(
    store: &Arc<dyn Store>,
    org: &crate::store::OrgRecord,
    account: provost_connector::model::Account,
    entitlement: &str,
) -> Result<Vec<&'static str>, ReportError> {
    let context = Context {
        org: org.clone(),
        entitlements: super::catalog(store, org.id).await?,
        now: chrono::Utc::now(),
    };
    let sets = super::carrying_sets(&context.entitlements);
    let Some(granted) = context.entitlements.get(entitlement) else {
        return Ok(Vec::new());
    };
    let carrier = match granted.kind {
        provost_connector::model::EntitlementKind::PermissionSet => Some(granted),
        provost_connector::model::EntitlementKind::PermissionSetGroup
        | provost_connector::model::EntitlementKind::Profile => sets.get(entitlement).copied(),
        _ => None,
    };
    let Some(carrier) = carrier else {
        return Ok(Vec::new());
    };
    let held: std::collections::HashSet<String> = rows_for(store, &context, account)
        .await?
        .iter()
        .filter(|row| row["effective"] == Value::Bool(true))
        .filter_map(|row| row["permission_field"].as_str().map(str::to_owned))
        .collect();
    Ok(PERMISSIONS
        .iter()
        .filter(|(field, _)| super::holds_permission(carrier, field) && !held.contains(*field))
        .map(|(_, label)| *label)
        .collect())
}
