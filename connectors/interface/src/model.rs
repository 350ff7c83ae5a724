//! The identity model every connector maps its system onto, and the core stores.
//!
//! Three things are enough to answer "who can do what": an [`Account`] (a user in the
//! connected system), an [`Entitlement`] (something that confers access: a profile, a
//! permission set, a role...) and a [`Grant`] (an account holding an entitlement, and how).
//! Connector-specific detail that the core does not interpret travels in `attributes`.

use std::fmt;
use std::str::FromStr;

use crate::times::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A user of the connected system, as the connector reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// The system's own stable identifier (for Salesforce, the 18-character User Id).
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub display_name: String,
    pub active: bool,
    /// The system's classification of the user (Salesforce `UserType`: Standard, CsnOnly, ...).
    pub user_type: Option<String>,
    /// Detail the core keeps and shows but does not interpret.
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

/// What kind of access an entitlement stands for. The kind decides how it can be granted,
/// so it is part of the model rather than an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntitlementKind {
    /// Every user has exactly one; changing it replaces the previous one.
    Profile,
    PermissionSet,
    PermissionSetGroup,
    /// A user has at most one role.
    Role,
    PublicGroup,
    UserLicense,
    PermissionSetLicense,
}

impl EntitlementKind {
    pub const ALL: [EntitlementKind; 7] = [
        EntitlementKind::Profile,
        EntitlementKind::PermissionSet,
        EntitlementKind::PermissionSetGroup,
        EntitlementKind::Role,
        EntitlementKind::PublicGroup,
        EntitlementKind::UserLicense,
        EntitlementKind::PermissionSetLicense,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntitlementKind::Profile => "profile",
            EntitlementKind::PermissionSet => "permission_set",
            EntitlementKind::PermissionSetGroup => "permission_set_group",
            EntitlementKind::Role => "role",
            EntitlementKind::PublicGroup => "public_group",
            EntitlementKind::UserLicense => "user_license",
            EntitlementKind::PermissionSetLicense => "permission_set_license",
        }
    }
}

impl fmt::Display for EntitlementKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind name that is not one of [`EntitlementKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown entitlement kind `{0}`: expected one of profile, permission_set, permission_set_group, role, public_group, user_license, permission_set_license")]
pub struct UnknownKind(pub String);

impl FromStr for EntitlementKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntitlementKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

/// Something that confers access in the connected system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entitlement {
    pub id: String,
    pub kind: EntitlementKind,
    /// The API name (`DeveloperName`, `Name`) a request can refer to it by.
    pub api_name: String,
    pub label: String,
    pub description: Option<String>,
    /// Whether Provost may grant and revoke it directly. A profile-owned permission set or a
    /// group's aggregate set exists but is never granted on its own.
    pub grantable: bool,
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

/// How an account comes to hold an entitlement. Auditors need the path, not just the fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GrantSource {
    /// Assigned to the account itself.
    Direct,
    /// Held because the account is assigned the permission set group `group_id`.
    Group { group_id: String },
    /// Held through the account's profile.
    Profile,
}

impl GrantSource {
    /// The source as one column of text (`direct`, `profile`, `group:0PG...`), for storage.
    pub fn encode(&self) -> String {
        match self {
            GrantSource::Direct => "direct".to_owned(),
            GrantSource::Profile => "profile".to_owned(),
            GrantSource::Group { group_id } => format!("group:{group_id}"),
        }
    }

    pub fn decode(s: &str) -> Option<GrantSource> {
        match s {
            "direct" => Some(GrantSource::Direct),
            "profile" => Some(GrantSource::Profile),
            other => other
                .strip_prefix("group:")
                .filter(|id| !id.is_empty())
                .map(|id| GrantSource::Group {
                    group_id: id.to_owned(),
                }),
        }
    }
}

/// An account holding an entitlement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    /// The system's identifier of the holding (for Salesforce, the PermissionSetAssignment Id,
    /// or a derived key for holdings that have no record of their own, such as a profile).
    pub id: String,
    pub account_id: String,
    pub entitlement_id: String,
    pub source: GrantSource,
    /// When the system itself ends the grant (Salesforce `ExpirationDate`).
    #[serde(default, with = "crate::times::serde::option")]
    pub expires_at: Option<Timestamp>,
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

/// What a permission opens: a kind of thing in the connected system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PermissionKind {
    /// Records of an object type (Salesforce ObjectPermissions): read, create, edit, delete,
    /// view_all, modify_all, view_all_fields.
    Object,
    /// One field of an object type (FieldPermissions): read, edit.
    Field,
    /// A setup entity: a connected app, an Apex class or page, a custom permission
    /// (SetupEntityAccess): access.
    SetupEntity,
}

impl PermissionKind {
    pub const ALL: [PermissionKind; 3] = [
        PermissionKind::Object,
        PermissionKind::Field,
        PermissionKind::SetupEntity,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PermissionKind::Object => "object",
            PermissionKind::Field => "field",
            PermissionKind::SetupEntity => "setup_entity",
        }
    }
}

impl FromStr for PermissionKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PermissionKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| {
                format!("unknown permission kind `{s}`: expected object, field or setup_entity")
            })
    }
}

/// Access an entitlement opens on one thing, beyond who holds it: kept per entitlement (a
/// permission set), never multiplied per user; reports join it with the grants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Permission {
    /// The system's identifier of the permission record.
    pub id: String,
    /// The entitlement that opens it.
    pub entitlement_id: String,
    pub kind: PermissionKind,
    /// What it opens: an object (`Opportunity`), a field (`Contact.SSN__c`), a setup
    /// entity's id.
    pub target: String,
    /// What it allows on the target, in the kind's order (`read`, `edit`...).
    pub actions: Vec<String>,
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in EntitlementKind::ALL {
            assert_eq!(kind.as_str().parse::<EntitlementKind>(), Ok(kind));
        }
        let err = "permset".parse::<EntitlementKind>().unwrap_err();
        assert!(err.to_string().contains("permission_set"), "{err}");
    }

    #[test]
    fn grant_sources_round_trip_and_reject_garbage() {
        for source in [
            GrantSource::Direct,
            GrantSource::Profile,
            GrantSource::Group {
                group_id: "0PG000000000001AAA".into(),
            },
        ] {
            assert_eq!(GrantSource::decode(&source.encode()), Some(source));
        }
        assert_eq!(GrantSource::decode("group:"), None);
        assert_eq!(GrantSource::decode("inherited"), None);
    }
}
