//! What the reader selects from an org that may not have every field: orgs differ by edition,
//! enabled features, API version and the connected user's field-level security, and a query
//! naming one field the org does not show fails whole (`INVALID_FIELD`; shared/SALESFORCE.md,
//! "Schema differences"). So the reader describes the objects whose fields may be missing,
//! selects what exists, does without the optional fields (saying what is lost) and stops,
//! naming the field and the remedy, when one it cannot work without is missing.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::client::SalesforceClient;
use crate::error::SalesforceError;
use crate::reader::SYSTEM_PERMISSIONS;

/// A field the reader can do without, and what is lost when the org does not show it.
struct Optional {
    object: &'static str,
    field: &'static str,
    lost: &'static str,
}

const fn optional(object: &'static str, field: &'static str, lost: &'static str) -> Optional {
    Optional {
        object,
        field,
        lost,
    }
}

/// Every optional field the reader selects. The system permission fields of PermissionSet
/// are optional too (each named in [`lost_without`]). Fields not listed, and relationship
/// paths (`Profile.UserLicenseId`), are required.
static OPTIONAL: [Optional; 17] = [
    optional("User", "Email", "users' email addresses"),
    optional("User", "FirstName", "users' first names"),
    optional("User", "ManagerId", "users' managers"),
    optional("User", "FederationIdentifier", "users' single sign-on ids (FederationIdentifier)"),
    optional("User", "LastLoginDate", "users' last logins: dormant-access reports are unavailable"),
    optional("User", "Department", "users' departments"),
    optional("User", "Title", "users' titles"),
    optional("User", "TimeZoneSidKey", "users' time zones"),
    optional("User", "LocaleSidKey", "users' locales"),
    optional("User", "LanguageLocaleKey", "users' languages"),
    optional("PermissionSet", "Description", "permission sets' descriptions"),
    optional("PermissionSet", "PermissionSetGroupId", "which group each aggregate permission set belongs to: effective permissions then take muting from the groups' muting sets alone, and the access reports show no paths through groups"),
    optional("PermissionSet", "LicenseId", "the license each permission set needs"),
    optional("PermissionSet", "IsCustom", "whether permission sets are custom"),
    optional("PermissionSet", "NamespacePrefix", "permission sets' namespaces"),
    optional("PermissionSetAssignment", "PermissionSetGroupId", "assignments of permission set groups (none are synced: the org has no permission set groups, or does not show them)"),
    optional("PermissionSetAssignment", "ExpirationDate", "when time-bound assignments end"),
];

/// The objects whose fields the reader adapts to what the org shows (described together, in
/// one `composite` call per reader); every other object's fields are all required and standard.
pub const ADAPTED_OBJECTS: [&str; 3] = ["User", "PermissionSet", "PermissionSetAssignment"];

/// What is lost without `object.field`, or `None` when the reader cannot do without it.
pub fn lost_without(object: &str, field: &str) -> Option<String> {
    if let Some(optional) = OPTIONAL
        .iter()
        .find(|o| o.object == object && o.field.eq_ignore_ascii_case(field))
    {
        return Some(optional.lost.to_owned());
    }
    (object == "PermissionSet"
        && SYSTEM_PERMISSIONS
            .iter()
            .any(|p| p.eq_ignore_ascii_case(field)))
    .then(|| {
        format!(
            "who holds {}: effective-permission reports leave it out",
            field.trim_start_matches("Permissions")
        )
    })
}

/// The fields of `object` the connected user can see, lower-cased (`sobjects/{object}/describe`).
pub async fn visible_fields(
    client: &SalesforceClient,
    object: &str,
) -> Result<HashSet<String>, SalesforceError> {
    let body = client
        .get_json(&client.data_path(&format!("sobjects/{object}/describe")))
        .await?;
    Ok(field_names(&body))
}

/// The fields of each of `objects` the connected user can see, described in one call; an
/// object whose describe failed is left out (described alone, its failure says why).
pub async fn visible_fields_of(
    client: &SalesforceClient,
    objects: &[&'static str],
) -> Result<HashMap<&'static str, HashSet<String>>, SalesforceError> {
    let paths: Vec<String> = objects
        .iter()
        .map(|object| client.data_path(&format!("sobjects/{object}/describe")))
        .collect();
    let answers = client.get_many(&paths).await?;
    Ok(objects
        .iter()
        .zip(answers)
        .filter_map(|(object, answer)| Some((*object, field_names(&answer.ok()?))))
        .collect())
}

/// The names of a describe's fields, lower-cased.
fn field_names(describe: &Value) -> HashSet<String> {
    describe["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|field| field["name"].as_str())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// `wanted` fields of `object` against what the org shows.
#[derive(Debug, Default, PartialEq)]
pub struct Adapted {
    /// What to select: the wanted fields that are shown, relationship paths as they are.
    pub fields: Vec<&'static str>,
    /// Optional fields not shown, with what is lost.
    pub lost: Vec<(&'static str, String)>,
    /// Required fields not shown.
    pub missing: Vec<&'static str>,
}

pub fn adapt(object: &str, wanted: &[&'static str], visible: &HashSet<String>) -> Adapted {
    let mut adapted = Adapted::default();
    for &field in wanted {
        if field.contains('.') || visible.contains(&field.to_ascii_lowercase()) {
            adapted.fields.push(field);
        } else if let Some(lost) = lost_without(object, field) {
            adapted.lost.push((field, lost));
        } else {
            adapted.missing.push(field);
        }
    }
    adapted
}

/// What to tell an admin when `object.field`, which Provost needs, is not shown.
pub fn remedy(object: &str, field: &str) -> String {
    format!(
        "Salesforce does not show {object}.{field} to the connected user, and Provost cannot sync without it: give the user read access to it in field-level security (Setup > Object Manager > {object} > Fields & Relationships > {field} > Set Field-Level Security), or connect with an API version that has it"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(fields: &[&str]) -> HashSet<String> {
        fields.iter().map(|f| f.to_ascii_lowercase()).collect()
    }

    #[test]
    fn missing_optional_fields_are_dropped_with_what_is_lost_and_required_ones_reported() {
        let adapted = adapt(
            "User",
            &[
                "Id",
                "Username",
                "LastLoginDate",
                "Profile.UserLicenseId",
                "IsActive",
            ],
            &shown(&["ID", "Username"]),
        );
        assert_eq!(
            adapted.fields,
            vec!["Id", "Username", "Profile.UserLicenseId"]
        );
        assert_eq!(adapted.lost.len(), 1);
        assert_eq!(adapted.lost[0].0, "LastLoginDate");
        assert!(adapted.lost[0].1.contains("dormant"));
        assert_eq!(adapted.missing, vec!["IsActive"]);
    }

    #[test]
    fn system_permissions_are_optional_and_named() {
        let lost = lost_without("PermissionSet", "PermissionsModifyAllData").unwrap();
        assert!(lost.contains("ModifyAllData"), "{lost}");
        assert_eq!(lost_without("PermissionSet", "Name"), None);
        assert_eq!(lost_without("User", "PermissionsModifyAllData"), None);
    }
}
