//! `effective-permissions`: per user, each sensitive system permission held and every grant
//! that confers it: the profile (through its profile-owned permission set), a permission set
//! assigned directly, or a component set of an assigned permission set group. One row per
//! user, permission and path, so "who can Modify All Data, and exactly why" is a filter away.
//!
//! Muting permission sets in groups are not modelled (the sync does not read them yet): a
//! group's components are taken as granting what they hold.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

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

const COLUMNS: [&str; 10] = [
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
    // A profile's permissions are those of the permission set it owns.
    let profile_sets: HashMap<&str, &str> = context
        .entitlements
        .values()
        .filter(|e| e.attributes.get("set_kind") == Some(&json!("profile_owned")))
        .filter_map(|e| {
            e.attributes
                .get("ProfileId")
                .and_then(Value::as_str)
                .map(|profile| (profile, e.id.as_str()))
        })
        .collect();
    let mut writer = super::user_rows(out, format, &COLUMNS)?;
    let mut users = super::Users::new(params);
    while let Some(grants) = users.next(store, context).await? {
        rows_of_user(context, params, only, &profile_sets, &grants, &mut writer)?;
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

fn rows_of_user<W: Write>(
    context: &Context,
    params: &Params,
    only: Option<&str>,
    profile_sets: &HashMap<&str, &str>,
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
                if let Some(set) = profile_sets.get(grant.entitlement_id.as_str()) {
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
            let holds = context
                .entitlements
                .get(path.set_id)
                .and_then(|set| set.attributes.get("system_permissions"))
                .and_then(Value::as_array)
                .is_some_and(|held| held.iter().any(|p| p == field));
            if !holds {
                continue;
            }
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
            ]);
            writer.row(&values)?;
        }
    }
    Ok(())
}
