//! What each resource reads: its object, fields and scope, how its records become the
//! model's rows, and whether it is read by changes, in ranges or by fingerprint.

use provost_connector::connector::ResourceType;
use provost_connector::model::{EntitlementKind, PermissionKind};
use provost_connector::times::Timestamp;

use super::SYSTEM_PERMISSIONS;

/// A resource type the reader offers.
const fn resource(id: &'static str, label: &'static str) -> ResourceType {
    ResourceType { id, label }
}

pub const USER_LICENSES: ResourceType = resource("user_licenses", "User licenses");
pub const PERMISSION_SET_LICENSES: ResourceType =
    resource("permission_set_licenses", "Permission set licenses");
pub const PROFILES: ResourceType = resource("profiles", "Profiles");
pub const ROLES: ResourceType = resource("roles", "Roles");
pub const PERMISSION_SETS: ResourceType = resource("permission_sets", "Permission sets");
pub const PERMISSION_SET_GROUPS: ResourceType =
    resource("permission_set_groups", "Permission set groups");
pub const PUBLIC_GROUPS: ResourceType = resource("public_groups", "Public groups");
pub const USERS: ResourceType = resource("users", "Users");
pub const PERMISSION_SET_ASSIGNMENTS: ResourceType =
    resource("permission_set_assignments", "Permission set assignments");
pub const PERMISSION_SET_LICENSE_ASSIGNMENTS: ResourceType = resource(
    "permission_set_license_assignments",
    "Permission set license assignments",
);
pub const GROUP_MEMBERS: ResourceType = resource("group_members", "Public group members");
pub const OBJECT_PERMISSIONS: ResourceType = resource("object_permissions", "Object permissions");
pub const FIELD_PERMISSIONS: ResourceType = resource("field_permissions", "Field permissions");
pub const SETUP_ENTITY_ACCESS: ResourceType =
    resource("setup_entity_access", "Setup entity access");

/// Which records of its object a resource reads.
#[derive(Debug, Clone, Copy)]
pub(super) enum Scope {
    All,
    /// Public groups, not queues or roles' groups.
    RegularGroups,
    /// Users as the options filter them (portal users, inactive users).
    Users,
    /// Records whose assignee the options keep.
    OfKeptAssignees,
    /// Memberships of public groups held by users the options keep.
    MembersOfRegularGroups,
}

/// How a resource's records become the model's rows.
#[derive(Debug, Clone, Copy)]
pub(super) enum Mapping {
    /// One entitlement per record: its kind, the fields of its API name and label, whether
    /// it can be granted directly, and the fields kept as attributes.
    Entitlement {
        kind: EntitlementKind,
        api_name: &'static str,
        label: &'static str,
        grantable: bool,
        attributes: &'static [&'static str],
    },
    PermissionSets,
    /// Accounts, and the grants a user record implies (profile, role, license).
    Users,
    /// Grants, and those of a group's component sets.
    Assignments,
    LicenseAssignments,
    GroupMembers,
    /// Groups, with the muting sets among their components.
    PermissionSetGroups,
    /// ObjectPermissions, FieldPermissions, SetupEntityAccess rows of permission sets.
    Access(PermissionKind),
}

/// Everything the reader knows of one resource: what it queries, how it maps records, and
/// whether it can read only what changed since a watermark.
pub(super) struct Read {
    pub(super) resource: ResourceType,
    pub(super) object: &'static str,
    pub(super) fields: &'static [&'static str],
    pub(super) scope: Scope,
    pub(super) mapping: Mapping,
    /// Users can be read by changes (`SystemModstamp`, and `UserLogin` for freezes).
    /// Assignments have no `deleted` endpoint in Salesforce and are read whole, their keys
    /// compared by the core.
    pub(super) reads_changes: bool,
    /// Large enough to be read as several ranges side by side (see
    /// [`Connector::streams`](provost_connector::connector::Connector::streams)).
    pub(super) splits: bool,
    /// Has no `deleted` endpoint but is seldom changed: an incremental sync reads it again
    /// only when its fingerprint differs from the last read's (see [`super::fingerprint`]); of a
    /// resource held by users, it then reads only the records of users changed since.
    pub(super) fingerprinted: bool,
}

impl Read {
    /// The field naming the user who holds a record, for resources kept or left out by their
    /// holder (the options' user filters).
    pub(super) fn holder_field(&self) -> Option<&'static str> {
        match self.scope {
            Scope::OfKeptAssignees => Some("AssigneeId"),
            Scope::MembersOfRegularGroups => Some("UserOrGroupId"),
            Scope::All | Scope::RegularGroups | Scope::Users => None,
        }
    }
}

/// Which holders' records a query of a resource held by users selects (see
/// [`Read::holder_field`]); other resources ignore it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Holders {
    /// Those of the users the options keep: what a read stores.
    Kept,
    /// Any user's: what users' changes cannot change, fingerprinted.
    Any,
    /// Those of users changed after `since` whom the options keep (`kept`), or leave out, or
    /// either (`None`).
    Changed {
        since: Timestamp,
        kept: Option<bool>,
    },
}

/// The resources, in the order a sync reads them: entitlements before the grants of them.
pub(super) static READS: [Read; 14] = [
    Read {
        resource: USER_LICENSES,
        object: "UserLicense",
        fields: &[
            "Id",
            "Name",
            "MasterLabel",
            "LicenseDefinitionKey",
            "Status",
            "TotalLicenses",
            "UsedLicenses",
        ],
        scope: Scope::All,
        mapping: Mapping::Entitlement {
            kind: EntitlementKind::UserLicense,
            api_name: "LicenseDefinitionKey",
            label: "MasterLabel",
            grantable: false,
            attributes: &["Status", "TotalLicenses", "UsedLicenses", "Name"],
        },
        reads_changes: false,
        splits: false,
        fingerprinted: false,
    },
    Read {
        resource: PERMISSION_SET_LICENSES,
        object: "PermissionSetLicense",
        fields: &[
            "Id",
            "DeveloperName",
            "MasterLabel",
            "Status",
            "TotalLicenses",
            "UsedLicenses",
        ],
        scope: Scope::All,
        mapping: Mapping::Entitlement {
            kind: EntitlementKind::PermissionSetLicense,
            api_name: "DeveloperName",
            label: "MasterLabel",
            grantable: false,
            attributes: &["Status", "TotalLicenses", "UsedLicenses"],
        },
        reads_changes: false,
        splits: false,
        fingerprinted: false,
    },
    Read {
        resource: PROFILES,
        object: "Profile",
        fields: &["Id", "Name", "Description", "UserLicenseId", "UserType"],
        scope: Scope::All,
        mapping: Mapping::Entitlement {
            kind: EntitlementKind::Profile,
            api_name: "Name",
            label: "Name",
            grantable: false,
            attributes: &["UserLicenseId", "UserType"],
        },
        reads_changes: false,
        splits: false,
        fingerprinted: false,
    },
    Read {
        resource: ROLES,
        object: "UserRole",
        fields: &["Id", "Name", "DeveloperName", "ParentRoleId"],
        scope: Scope::All,
        mapping: Mapping::Entitlement {
            kind: EntitlementKind::Role,
            api_name: "DeveloperName",
            label: "Name",
            grantable: false,
            attributes: &["ParentRoleId"],
        },
        reads_changes: false,
        splits: false,
        fingerprinted: false,
    },
    Read {
        resource: PERMISSION_SETS,
        object: "PermissionSet",
        // And every one of SYSTEM_PERMISSIONS.
        fields: &[
            "Id",
            "Name",
            "Label",
            "Description",
            "IsOwnedByProfile",
            "ProfileId",
            "PermissionSetGroupId",
            "LicenseId",
            "IsCustom",
            "Type",
            "NamespacePrefix",
            "CreatedDate",
        ],
        scope: Scope::All,
        mapping: Mapping::PermissionSets,
        reads_changes: false,
        splits: false,
        fingerprinted: false,
    },
    Read {
        resource: PERMISSION_SET_GROUPS,
        object: "PermissionSetGroup",
        fields: &[
            "Id",
            "DeveloperName",
            "MasterLabel",
            "Description",
            "Status",
            "CreatedDate",
        ],
        scope: Scope::All,
        mapping: Mapping::PermissionSetGroups,
        reads_changes: false,
        splits: false,
        fingerprinted: false,
    },
    Read {
        resource: PUBLIC_GROUPS,
        object: "Group",
        fields: &["Id", "Name", "DeveloperName", "Type", "CreatedDate"],
        scope: Scope::RegularGroups,
        mapping: Mapping::Entitlement {
            kind: EntitlementKind::PublicGroup,
            api_name: "DeveloperName",
            label: "Name",
            grantable: true,
            attributes: &["Type", "CreatedDate"],
        },
        reads_changes: false,
        splits: false,
        fingerprinted: false,
    },
    Read {
        resource: USERS,
        object: "User",
        fields: &[
            "Id",
            "Username",
            "Email",
            "FirstName",
            "LastName",
            "Name",
            "IsActive",
            "UserType",
            "ProfileId",
            "Profile.UserLicenseId",
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
        scope: Scope::Users,
        mapping: Mapping::Users,
        reads_changes: true,
        splits: true,
        fingerprinted: false,
    },
    Read {
        resource: PERMISSION_SET_ASSIGNMENTS,
        object: "PermissionSetAssignment",
        fields: &[
            "Id",
            "AssigneeId",
            "PermissionSetId",
            "PermissionSetGroupId",
            "ExpirationDate",
            "PermissionSet.IsOwnedByProfile",
            "SystemModstamp",
        ],
        scope: Scope::OfKeptAssignees,
        mapping: Mapping::Assignments,
        reads_changes: false,
        splits: true,
        fingerprinted: true,
    },
    Read {
        resource: PERMISSION_SET_LICENSE_ASSIGNMENTS,
        object: "PermissionSetLicenseAssign",
        fields: &[
            "Id",
            "AssigneeId",
            "PermissionSetLicenseId",
            "SystemModstamp",
        ],
        scope: Scope::OfKeptAssignees,
        mapping: Mapping::LicenseAssignments,
        reads_changes: false,
        splits: true,
        fingerprinted: true,
    },
    Read {
        resource: GROUP_MEMBERS,
        object: "GroupMember",
        fields: &["Id", "GroupId", "UserOrGroupId"],
        scope: Scope::MembersOfRegularGroups,
        mapping: Mapping::GroupMembers,
        reads_changes: false,
        splits: true,
        fingerprinted: true,
    },
    // What permission sets open, after the sets themselves. Rows of other parents
    // (muting sets, licenses) are left out in the mapping: ParentId is polymorphic.
    Read {
        resource: OBJECT_PERMISSIONS,
        object: "ObjectPermissions",
        fields: &[
            "Id",
            "ParentId",
            "SobjectType",
            "PermissionsRead",
            "PermissionsCreate",
            "PermissionsEdit",
            "PermissionsDelete",
            "PermissionsViewAllRecords",
            "PermissionsModifyAllRecords",
            "PermissionsViewAllFields",
        ],
        scope: Scope::All,
        mapping: Mapping::Access(PermissionKind::Object),
        reads_changes: false,
        splits: true,
        fingerprinted: true,
    },
    Read {
        resource: FIELD_PERMISSIONS,
        object: "FieldPermissions",
        fields: &[
            "Id",
            "ParentId",
            "SobjectType",
            "Field",
            "PermissionsRead",
            "PermissionsEdit",
        ],
        scope: Scope::All,
        mapping: Mapping::Access(PermissionKind::Field),
        reads_changes: false,
        splits: true,
        fingerprinted: true,
    },
    Read {
        resource: SETUP_ENTITY_ACCESS,
        object: "SetupEntityAccess",
        fields: &["Id", "ParentId", "SetupEntityId", "SetupEntityType"],
        scope: Scope::All,
        mapping: Mapping::Access(PermissionKind::SetupEntity),
        reads_changes: false,
        splits: false,
        fingerprinted: false,
    },
];

/// The setup entities whose names the reader looks up: object, name field.
pub(super) const SETUP_ENTITY_NAMES: [(&str, &str); 3] = [
    ("ConnectedApplication", "Name"),
    ("ApexClass", "Name"),
    ("CustomPermission", "DeveloperName"),
];

/// The resource types, in [`READS`]'s order.
pub(super) static RESOURCES: std::sync::LazyLock<Vec<ResourceType>> =
    std::sync::LazyLock::new(|| READS.iter().map(|read| read.resource).collect());

/// Every field the reader selects from `object` when the org shows them all.
pub fn wanted_fields(object: &str) -> Vec<&'static str> {
    let mut fields: Vec<&'static str> = READS
        .iter()
        .filter(|read| read.object == object)
        .flat_map(|read| {
            let system = matches!(read.mapping, Mapping::PermissionSets)
                .then_some(SYSTEM_PERMISSIONS.as_slice())
                .unwrap_or_default();
            read.fields.iter().chain(system).copied()
        })
        .collect();
    fields.dedup();
    fields
}

pub(super) fn read_of(resource: &str) -> Option<&'static Read> {
    READS.iter().find(|read| read.resource.id == resource)
}
