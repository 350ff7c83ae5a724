//! How Salesforce records become the model's rows: users and the grants their records imply,
//! entitlements, assignments (a group's through its component sets), and what permission sets
//! open. Pure functions of the records the reader fetched.

use std::collections::{HashMap, HashSet};

use provost_connector::model::{
    Account, Entitlement, EntitlementKind, Grant, GrantSource, Permission, PermissionKind,
};
use provost_connector::times::Timestamp;
use serde_json::{json, Map, Value};

use crate::record::Record;

use super::{parse_datetime, SYSTEM_PERMISSIONS};

/// ObjectPermissions' flags and the actions they stand for.
const OBJECT_ACTIONS: [(&str, &str); 7] = [
    ("PermissionsRead", "read"),
    ("PermissionsCreate", "create"),
    ("PermissionsEdit", "edit"),
    ("PermissionsDelete", "delete"),
    ("PermissionsViewAllRecords", "view_all"),
    ("PermissionsModifyAllRecords", "modify_all"),
    ("PermissionsViewAllFields", "view_all_fields"),
];
const FIELD_ACTIONS: [(&str, &str); 2] = [("PermissionsRead", "read"), ("PermissionsEdit", "edit")];

pub(super) fn text(record: &Record, field: &str) -> Option<String> {
    record.get(field).and_then(Value::as_str).map(str::to_owned)
}

pub(super) fn attributes(record: &Record, fields: &[&str]) -> Map<String, Value> {
    fields
        .iter()
        .map(|f| {
            (
                (*f).to_owned(),
                record.get(f).cloned().unwrap_or(Value::Null),
            )
        })
        .collect()
}

pub(super) fn entitlement(
    record: &Record,
    kind: EntitlementKind,
    api_name: &str,
    label: &str,
    grantable: bool,
    extra: &[&str],
) -> Entitlement {
    Entitlement {
        id: text(record, "Id").unwrap_or_default(),
        kind,
        api_name: text(record, api_name).unwrap_or_default(),
        label: text(record, label).unwrap_or_default(),
        description: text(record, "Description"),
        grantable,
        attributes: attributes(record, extra),
    }
}

pub(super) fn permission_set(record: &Record) -> Entitlement {
    let owned = record["IsOwnedByProfile"] == Value::Bool(true);
    let aggregate = !record["PermissionSetGroupId"].is_null() || record["Type"] == "Group";
    let role = if owned {
        "profile_owned"
    } else if aggregate {
        "group_aggregate"
    } else {
        "regular"
    };
    let mut attributes = attributes(
        record,
        &[
            "Type",
            "IsCustom",
            "NamespacePrefix",
            "LicenseId",
            "ProfileId",
            "PermissionSetGroupId",
            "CreatedDate",
        ],
    );
    attributes.insert("set_kind".to_owned(), json!(role));
    let held: Vec<&str> = SYSTEM_PERMISSIONS
        .iter()
        .copied()
        .filter(|p| record[*p] == Value::Bool(true))
        .collect();
    attributes.insert("system_permissions".to_owned(), json!(held));
    Entitlement {
        id: text(record, "Id").unwrap_or_default(),
        kind: EntitlementKind::PermissionSet,
        api_name: text(record, "Name").unwrap_or_default(),
        label: text(record, "Label").unwrap_or_default(),
        description: text(record, "Description"),
        // Profile-owned and group aggregate sets exist, but are never granted on their own.
        grantable: !owned && !aggregate,
        attributes,
    }
}

pub(super) fn grant(
    id: String,
    account: String,
    entitlement: String,
    source: GrantSource,
    expires_at: Option<Timestamp>,
) -> Grant {
    Grant {
        id,
        account_id: account,
        entitlement_id: entitlement,
        source,
        expires_at,
        attributes: Map::new(),
    }
}

/// A user, and the grants its own record implies: its profile, its role, its user license.
pub(super) fn user(record: &Record, frozen: &HashSet<String>) -> (Account, Vec<Grant>) {
    let id = text(record, "Id").unwrap_or_default();
    let mut attributes = attributes(
        record,
        &[
            "ProfileId",
            "UserRoleId",
            "ManagerId",
            "FederationIdentifier",
            "LastLoginDate",
            "Department",
            "Title",
            "TimeZoneSidKey",
            "LocaleSidKey",
            "LanguageLocaleKey",
            "CreatedDate",
        ],
    );
    let license = record["Profile"]["UserLicenseId"]
        .as_str()
        .map(str::to_owned);
    attributes.insert("UserLicenseId".to_owned(), json!(license));
    attributes.insert("IsFrozen".to_owned(), json!(frozen.contains(&id)));
    let mut grants = Vec::new();
    if let Some(profile) = text(record, "ProfileId") {
        grants.push(grant(
            format!("{id}:profile"),
            id.clone(),
            profile,
            GrantSource::Profile,
            None,
        ));
    }
    if let Some(role) = text(record, "UserRoleId") {
        grants.push(grant(
            format!("{id}:role"),
            id.clone(),
            role,
            GrantSource::Direct,
            None,
        ));
    }
    if let Some(license) = license {
        grants.push(grant(
            format!("{id}:license"),
            id.clone(),
            license,
            GrantSource::Profile,
            None,
        ));
    }
    let account = Account {
        id,
        username: text(record, "Username").unwrap_or_default(),
        email: text(record, "Email"),
        first_name: text(record, "FirstName"),
        last_name: text(record, "LastName"),
        display_name: text(record, "Name").unwrap_or_default(),
        active: record["IsActive"] == Value::Bool(true),
        user_type: text(record, "UserType"),
        attributes,
    };
    (account, grants)
}

/// A permission set assignment as grants: the set itself, or a group and, through it, each of
/// the group's component sets. The profile-owned assignment is the user's profile, already a
/// grant of the user record.
pub(super) fn assignment(record: &Record, components: &HashMap<String, Vec<String>>) -> Vec<Grant> {
    let (Some(id), Some(user)) = (text(record, "Id"), text(record, "AssigneeId")) else {
        return Vec::new();
    };
    if record["PermissionSet"]["IsOwnedByProfile"] == Value::Bool(true) {
        return Vec::new();
    }
    let expires = record["ExpirationDate"].as_str().and_then(parse_datetime);
    match text(record, "PermissionSetGroupId") {
        Some(group) => {
            let mut grants = vec![grant(
                id.clone(),
                user.clone(),
                group.clone(),
                GrantSource::Direct,
                expires,
            )];
            // A muting set (0QM) among the components takes away; it grants nothing.
            for set in components
                .get(&group)
                .into_iter()
                .flatten()
                .filter(|set| set.starts_with("0PS"))
            {
                grants.push(grant(
                    format!("{id}:{set}"),
                    user.clone(),
                    set.clone(),
                    GrantSource::Group {
                        group_id: group.clone(),
                    },
                    expires,
                ));
            }
            grants
        }
        None => text(record, "PermissionSetId")
            .map(|set| vec![grant(id, user, set, GrantSource::Direct, expires)])
            .unwrap_or_default(),
    }
}

/// A muting permission set: what it turns off in the group it is a component of.
#[derive(Debug, Clone)]
pub(super) struct MutingSet {
    pub(super) id: String,
    pub(super) api_name: String,
    pub(super) muted: Vec<&'static str>,
}

/// A permission set group, with its muting sets and what they mute (system permissions).
pub(super) fn permission_set_group(
    record: &Record,
    components: &HashMap<String, Vec<String>>,
    muting: &HashMap<String, MutingSet>,
) -> Entitlement {
    let mut group = entitlement(
        record,
        EntitlementKind::PermissionSetGroup,
        "DeveloperName",
        "MasterLabel",
        true,
        &["Status", "CreatedDate"],
    );
    let sets: Vec<Value> = components
        .get(&group.id)
        .into_iter()
        .flatten()
        .filter_map(|component| muting.get(component))
        .map(|set| json!({"id": set.id, "api_name": set.api_name, "muted": set.muted}))
        .collect();
    if !sets.is_empty() {
        group
            .attributes
            .insert("muting_sets".to_owned(), Value::Array(sets));
    }
    group
}

/// An ObjectPermissions, FieldPermissions or SetupEntityAccess row of a permission set;
/// `None` for rows of other parents (muting sets, licenses) and rows without a target.
pub(super) fn access_permission(
    record: &Record,
    kind: PermissionKind,
    names: &HashMap<String, String>,
) -> Option<Permission> {
    let parent = text(record, "ParentId")?;
    if !parent.starts_with("0PS") {
        return None;
    }
    let flags = |actions: &[(&str, &'static str)]| -> Vec<String> {
        actions
            .iter()
            .filter(|(field, _)| record[*field] == Value::Bool(true))
            .map(|(_, action)| (*action).to_owned())
            .collect()
    };
    let mut attributes = Map::new();
    let (target, actions) = match kind {
        PermissionKind::Object => (text(record, "SobjectType")?, flags(&OBJECT_ACTIONS)),
        PermissionKind::Field => (text(record, "Field")?, flags(&FIELD_ACTIONS)),
        PermissionKind::SetupEntity => {
            let entity = text(record, "SetupEntityId")?;
            attributes.insert("type".to_owned(), json!(text(record, "SetupEntityType")));
            attributes.insert("name".to_owned(), json!(names.get(&entity)));
            (entity, vec!["access".to_owned()])
        }
    };
    Some(Permission {
        id: text(record, "Id")?,
        entitlement_id: parent,
        kind,
        target,
        actions,
        attributes,
    })
}
