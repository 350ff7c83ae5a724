//! The objects the emulator serves and their fields: types, references, relationship names.
//!
//! One table drives SOQL validation (INVALID_FIELD, INVALID_TYPE), `describe`, JSON rendering
//! and write validation, so they cannot disagree. Field lists follow Salesforce's object
//! reference for the identity objects; fields Provost never reads are left out (a query naming
//! one gets INVALID_FIELD, as a query naming a misspelt field would).

use std::collections::HashMap;
use std::sync::OnceLock;

/// The objects of an org the emulator knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectType {
    Organization,
    User,
    UserLogin,
    Profile,
    UserLicense,
    PermissionSet,
    PermissionSetGroup,
    PermissionSetGroupComponent,
    PermissionSetAssignment,
    PermissionSetLicense,
    PermissionSetLicenseAssign,
    UserRole,
    Group,
    GroupMember,
    MutingPermissionSet,
    ObjectPermissions,
    FieldPermissions,
    SetupEntityAccess,
    ConnectedApplication,
    ApexClass,
    CustomPermission,
}

impl ObjectType {
    pub const ALL: [ObjectType; 21] = [
        ObjectType::Organization,
        ObjectType::User,
        ObjectType::UserLogin,
        ObjectType::Profile,
        ObjectType::UserLicense,
        ObjectType::PermissionSet,
        ObjectType::PermissionSetGroup,
        ObjectType::PermissionSetGroupComponent,
        ObjectType::PermissionSetAssignment,
        ObjectType::PermissionSetLicense,
        ObjectType::PermissionSetLicenseAssign,
        ObjectType::UserRole,
        ObjectType::Group,
        ObjectType::GroupMember,
        ObjectType::MutingPermissionSet,
        ObjectType::ObjectPermissions,
        ObjectType::FieldPermissions,
        ObjectType::SetupEntityAccess,
        ObjectType::ConnectedApplication,
        ObjectType::ApexClass,
        ObjectType::CustomPermission,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ObjectType::Organization => "Organization",
            ObjectType::User => "User",
            ObjectType::UserLogin => "UserLogin",
            ObjectType::Profile => "Profile",
            ObjectType::UserLicense => "UserLicense",
            ObjectType::PermissionSet => "PermissionSet",
            ObjectType::PermissionSetGroup => "PermissionSetGroup",
            ObjectType::PermissionSetGroupComponent => "PermissionSetGroupComponent",
            ObjectType::PermissionSetAssignment => "PermissionSetAssignment",
            ObjectType::PermissionSetLicense => "PermissionSetLicense",
            ObjectType::PermissionSetLicenseAssign => "PermissionSetLicenseAssign",
            ObjectType::UserRole => "UserRole",
            ObjectType::Group => "Group",
            ObjectType::GroupMember => "GroupMember",
            ObjectType::MutingPermissionSet => "MutingPermissionSet",
            ObjectType::ObjectPermissions => "ObjectPermissions",
            ObjectType::FieldPermissions => "FieldPermissions",
            ObjectType::SetupEntityAccess => "SetupEntityAccess",
            ObjectType::ConnectedApplication => "ConnectedApplication",
            ObjectType::ApexClass => "ApexClass",
            ObjectType::CustomPermission => "CustomPermission",
        }
    }

    /// Case-insensitive, as SOQL and the REST paths are.
    pub fn from_name(name: &str) -> Option<ObjectType> {
        ObjectType::ALL
            .into_iter()
            .find(|object| object.name().eq_ignore_ascii_case(name))
    }

    pub fn key_prefix(self) -> &'static str {
        match self {
            ObjectType::Organization => "00D",
            ObjectType::User => "005",
            ObjectType::UserLogin => "0Yw",
            ObjectType::Profile => "00e",
            ObjectType::UserLicense => "100",
            ObjectType::PermissionSet => "0PS",
            ObjectType::PermissionSetGroup => "0PG",
            ObjectType::PermissionSetGroupComponent => "0PH",
            ObjectType::PermissionSetAssignment => "0Pa",
            ObjectType::PermissionSetLicense => "0PL",
            ObjectType::PermissionSetLicenseAssign => "2LA",
            ObjectType::UserRole => "00E",
            ObjectType::Group => "00G",
            ObjectType::GroupMember => "011",
            ObjectType::MutingPermissionSet => "0QM",
            ObjectType::ObjectPermissions => "110",
            ObjectType::FieldPermissions => "01k",
            ObjectType::SetupEntityAccess => "0J0",
            ObjectType::ConnectedApplication => "0H4",
            ObjectType::ApexClass => "01p",
            ObjectType::CustomPermission => "0CP",
        }
    }

    pub fn from_key_prefix(prefix: &str) -> Option<ObjectType> {
        ObjectType::ALL
            .into_iter()
            .find(|object| object.key_prefix() == prefix)
    }

    /// The optional feature an org must have for this object to exist.
    pub fn feature(self) -> Option<Feature> {
        match self {
            ObjectType::PermissionSetGroup
            | ObjectType::PermissionSetGroupComponent
            | ObjectType::MutingPermissionSet => Some(Feature::PermissionSetGroups),
            ObjectType::PermissionSetLicense | ObjectType::PermissionSetLicenseAssign => {
                Some(Feature::PermissionSetLicenses)
            }
            _ => None,
        }
    }

    /// The API version (major) that introduced the object: older versions answer INVALID_TYPE.
    /// From Salesforce's object reference.
    pub fn since(self) -> u32 {
        match self {
            ObjectType::PermissionSetGroup | ObjectType::PermissionSetGroupComponent => 45,
            ObjectType::MutingPermissionSet => 46,
            _ => 0,
        }
    }

    /// Records of this type can be deleted through the API (and then show in `queryAll`).
    pub fn deletable(self) -> bool {
        !matches!(
            self,
            ObjectType::Organization
                | ObjectType::User
                | ObjectType::UserLogin
                | ObjectType::UserLicense
                | ObjectType::PermissionSetLicense
                | ObjectType::ConnectedApplication
                | ObjectType::ApexClass
        )
    }

    /// `sobjects/{Type}/updated` and `/deleted` exist for these only.
    pub fn has_replication_endpoints(self) -> bool {
        matches!(
            self,
            ObjectType::User | ObjectType::Profile | ObjectType::Group
        )
    }

    pub fn schema(self) -> &'static ObjectSchema {
        &schemas()[self as usize]
    }
}

/// Optional features an org may lack, in which case their objects get INVALID_TYPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feature {
    PermissionSetGroups,
    PermissionSetLicenses,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Id,
    String,
    Email,
    Picklist,
    Boolean,
    Int,
    DateTime,
    Date,
    /// A lookup to another object; its relationship name is on the field.
    Reference(ObjectType),
    /// A lookup that can point at several types (GroupMember.UserOrGroupId). No relationship.
    AnyId,
}

#[derive(Debug, Clone)]
pub struct FieldSchema {
    pub name: &'static str,
    pub field_type: FieldType,
    pub nillable: bool,
    pub createable: bool,
    pub updateable: bool,
    /// Required on create (nillable false, no default).
    pub required: bool,
    /// For references: the name used in SOQL paths (`Profile.Name`).
    pub relationship: Option<&'static str>,
    pub length: u32,
    /// The API version (major) that introduced the field: older versions do not have it.
    pub since: u32,
}

#[derive(Debug, Clone)]
pub struct ChildRelationship {
    pub name: &'static str,
    pub child: ObjectType,
    pub field: &'static str,
}

#[derive(Debug)]
pub struct ObjectSchema {
    pub object: ObjectType,
    pub fields: Vec<FieldSchema>,
    pub children: Vec<ChildRelationship>,
    by_name: HashMap<String, usize>,
    by_relationship: HashMap<String, usize>,
}

impl ObjectSchema {
    /// The position of a field, by case-insensitive name.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.by_name.get(&name.to_ascii_lowercase()).copied()
    }

    pub fn field(&self, name: &str) -> Option<&FieldSchema> {
        self.field_index(name).map(|i| &self.fields[i])
    }

    /// The reference field behind a relationship name (`Profile` -> `ProfileId`).
    pub fn relationship(&self, name: &str) -> Option<(usize, ObjectType)> {
        let index = *self.by_relationship.get(&name.to_ascii_lowercase())?;
        match self.fields[index].field_type {
            FieldType::Reference(target) => Some((index, target)),
            _ => None,
        }
    }

    pub fn child_relationship(&self, name: &str) -> Option<&ChildRelationship> {
        self.children
            .iter()
            .find(|child| child.name.eq_ignore_ascii_case(name))
    }
}

/// The system permission fields of Profile and PermissionSet.
pub const PERMISSION_FIELDS: &[&str] = &[
    "PermissionsApiEnabled",
    "PermissionsAssignPermissionSets",
    "PermissionsAuthorApex",
    "PermissionsCustomizeApplication",
    "PermissionsManageInternalUsers",
    "PermissionsManageProfilesPermissionsets",
    "PermissionsManageRemoteAccess",
    "PermissionsManageRoles",
    "PermissionsManageSharing",
    "PermissionsManageUsers",
    "PermissionsModifyAllData",
    "PermissionsModifyMetadata",
    "PermissionsResetPasswords",
    "PermissionsViewAllData",
    "PermissionsViewAllUsers",
    "PermissionsViewSetup",
    "PermissionsExportReport",
    "PermissionsManageDataIntegrations",
];

/// The access flags of an ObjectPermissions row.
pub const OBJECT_PERMISSION_FIELDS: &[&str] = &[
    "PermissionsRead",
    "PermissionsCreate",
    "PermissionsEdit",
    "PermissionsDelete",
    "PermissionsViewAllRecords",
    "PermissionsModifyAllRecords",
    "PermissionsViewAllFields",
];

struct Builder {
    fields: Vec<FieldSchema>,
}

impl Builder {
    fn new() -> Builder {
        Builder {
            fields: vec![FieldSchema {
                name: "Id",
                field_type: FieldType::Id,
                nillable: false,
                createable: false,
                updateable: false,
                required: false,
                relationship: None,
                length: 18,
                since: 0,
            }],
        }
    }

    fn push(mut self, name: &'static str, field_type: FieldType, access: Access) -> Builder {
        let (createable, updateable, required, nillable) = match access {
            Access::ReadOnly => (false, false, false, true),
            Access::Create => (true, false, false, true),
            Access::Edit => (true, true, false, true),
            Access::Required => (true, true, true, false),
            Access::RequiredOnCreate => (true, false, true, false),
        };
        let relationship = match field_type {
            FieldType::Reference(_) => Some(name.strip_suffix("Id").unwrap_or(name)),
            _ => None,
        };
        let length = match field_type {
            FieldType::Id | FieldType::Reference(_) | FieldType::AnyId => 18,
            FieldType::String | FieldType::Email | FieldType::Picklist => 255,
            _ => 0,
        };
        self.fields.push(FieldSchema {
            name,
            field_type,
            nillable,
            createable,
            updateable,
            required,
            relationship,
            length,
            since: 0,
        });
        self
    }

    /// The API version that introduced the last pushed field.
    fn since(mut self, version: u32) -> Builder {
        self.fields.last_mut().expect("a field was pushed").since = version;
        self
    }

    fn length(mut self, length: u32) -> Builder {
        self.fields.last_mut().expect("a field was pushed").length = length;
        self
    }

    fn permissions(mut self) -> Builder {
        for name in PERMISSION_FIELDS {
            self = self.push(name, FieldType::Boolean, Access::Edit);
            self.fields.last_mut().expect("pushed").nillable = false;
        }
        self
    }

    /// ObjectPermissions' access flags.
    fn object_permissions(mut self) -> Builder {
        for name in OBJECT_PERMISSION_FIELDS {
            self = self.push(name, FieldType::Boolean, Access::Edit);
            self.fields.last_mut().expect("pushed").nillable = false;
        }
        self
    }

    fn audit(self) -> Builder {
        self.push("CreatedDate", FieldType::DateTime, Access::ReadOnly)
            .push("LastModifiedDate", FieldType::DateTime, Access::ReadOnly)
            .push("SystemModstamp", FieldType::DateTime, Access::ReadOnly)
    }

    fn deletable(self) -> Builder {
        self.push("IsDeleted", FieldType::Boolean, Access::ReadOnly)
    }

    fn build(self, object: ObjectType, children: Vec<ChildRelationship>) -> ObjectSchema {
        let by_name = self
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.to_ascii_lowercase(), i))
            .collect();
        let by_relationship = self
            .fields
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.relationship.map(|r| (r.to_ascii_lowercase(), i)))
            .collect();
        ObjectSchema {
            object,
            fields: self.fields,
            children,
            by_name,
            by_relationship,
        }
    }
}

#[derive(Clone, Copy)]
enum Access {
    ReadOnly,
    Create,
    Edit,
    Required,
    RequiredOnCreate,
}

fn child(name: &'static str, child: ObjectType, field: &'static str) -> ChildRelationship {
    ChildRelationship { name, child, field }
}

fn schemas() -> &'static Vec<ObjectSchema> {
    static SCHEMAS: OnceLock<Vec<ObjectSchema>> = OnceLock::new();
    SCHEMAS.get_or_init(|| ObjectType::ALL.into_iter().map(build).collect())
}

fn build(object: ObjectType) -> ObjectSchema {
    use Access::*;
    use FieldType as T;
    use ObjectType as O;
    match object {
        O::Organization => Builder::new()
            .push("Name", T::String, ReadOnly)
            .push("OrganizationType", T::Picklist, ReadOnly)
            .push("IsSandbox", T::Boolean, ReadOnly)
            .push("InstanceName", T::String, ReadOnly)
            .push("NamespacePrefix", T::String, ReadOnly)
            .push("DefaultLocaleSidKey", T::Picklist, ReadOnly)
            .push("TimeZoneSidKey", T::Picklist, ReadOnly)
            .audit()
            .build(object, vec![]),
        O::User => Builder::new()
            .push("Username", T::String, Required)
            .length(80)
            .push("Email", T::Email, Required)
            .length(128)
            .push("FirstName", T::String, Edit)
            .length(40)
            .push("LastName", T::String, Required)
            .length(80)
            .push("Name", T::String, ReadOnly)
            .length(121)
            .push("Alias", T::String, Required)
            .length(8)
            .push("CommunityNickname", T::String, Edit)
            .length(40)
            .push("FederationIdentifier", T::String, Edit)
            .length(512)
            .push("IsActive", T::Boolean, Edit)
            .push("UserType", T::Picklist, ReadOnly)
            .push("ProfileId", T::Reference(O::Profile), Required)
            .push("UserRoleId", T::Reference(O::UserRole), Edit)
            .push("ManagerId", T::Reference(O::User), Edit)
            .push("ContactId", T::AnyId, Create)
            .push("AccountId", T::AnyId, ReadOnly)
            .push("IsPortalEnabled", T::Boolean, ReadOnly)
            .push("Department", T::String, Edit)
            .length(80)
            .push("Title", T::String, Edit)
            .length(80)
            .push("EmployeeNumber", T::String, Edit)
            .length(20)
            .push("LastLoginDate", T::DateTime, ReadOnly)
            .push("TimeZoneSidKey", T::Picklist, Required)
            .push("LocaleSidKey", T::Picklist, Required)
            .push("EmailEncodingKey", T::Picklist, Required)
            .push("LanguageLocaleKey", T::Picklist, Required)
            .audit()
            .build(
                object,
                vec![
                    child(
                        "PermissionSetAssignments",
                        O::PermissionSetAssignment,
                        "AssigneeId",
                    ),
                    child("GroupMembers", O::GroupMember, "UserOrGroupId"),
                    child("UserLogins", O::UserLogin, "UserId"),
                ],
            ),
        O::UserLogin => Builder::new()
            .push("UserId", T::Reference(O::User), ReadOnly)
            .push("IsFrozen", T::Boolean, Edit)
            .push("IsPasswordLocked", T::Boolean, Edit)
            .push("LastModifiedDate", T::DateTime, ReadOnly)
            .push("SystemModstamp", T::DateTime, ReadOnly)
            .build(object, vec![]),
        O::Profile => Builder::new()
            .push("Name", T::String, Required)
            .push("Description", T::String, Edit)
            .push(
                "UserLicenseId",
                T::Reference(O::UserLicense),
                RequiredOnCreate,
            )
            .push("UserType", T::Picklist, ReadOnly)
            .permissions()
            .audit()
            .build(object, vec![child("Users", O::User, "ProfileId")]),
        O::UserLicense => Builder::new()
            .push("Name", T::String, ReadOnly)
            .push("MasterLabel", T::String, ReadOnly)
            .push("LicenseDefinitionKey", T::String, ReadOnly)
            .push("Status", T::Picklist, ReadOnly)
            .push("TotalLicenses", T::Int, ReadOnly)
            .push("UsedLicenses", T::Int, ReadOnly)
            .audit()
            .build(object, vec![]),
        O::PermissionSet => Builder::new()
            .push("Name", T::String, Required)
            .length(80)
            .push("Label", T::String, Required)
            .length(80)
            .push("Description", T::String, Edit)
            .push("IsOwnedByProfile", T::Boolean, ReadOnly)
            .push("ProfileId", T::Reference(O::Profile), ReadOnly)
            .push(
                "PermissionSetGroupId",
                T::Reference(O::PermissionSetGroup),
                ReadOnly,
            )
            .push("LicenseId", T::Reference(O::UserLicense), Create)
            .push("IsCustom", T::Boolean, ReadOnly)
            .push("Type", T::Picklist, ReadOnly)
            .push("NamespacePrefix", T::String, ReadOnly)
            .permissions()
            .audit()
            .deletable()
            .build(
                object,
                vec![child(
                    "Assignments",
                    O::PermissionSetAssignment,
                    "PermissionSetId",
                )],
            ),
        O::PermissionSetGroup => Builder::new()
            .push("DeveloperName", T::String, Required)
            .length(80)
            .push("MasterLabel", T::String, Required)
            .length(80)
            .push("Description", T::String, Edit)
            .push("Status", T::Picklist, ReadOnly)
            .push("NamespacePrefix", T::String, ReadOnly)
            .audit()
            .deletable()
            .build(
                object,
                vec![child(
                    "PermissionSetGroupComponents",
                    O::PermissionSetGroupComponent,
                    "PermissionSetGroupId",
                )],
            ),
        O::PermissionSetGroupComponent => Builder::new()
            .push(
                "PermissionSetGroupId",
                T::Reference(O::PermissionSetGroup),
                RequiredOnCreate,
            )
            // A permission set or a muting permission set (0QM): polymorphic.
            .push("PermissionSetId", T::AnyId, RequiredOnCreate)
            .audit()
            .deletable()
            .build(object, vec![]),
        O::PermissionSetAssignment => Builder::new()
            .push("AssigneeId", T::Reference(O::User), RequiredOnCreate)
            .push("PermissionSetId", T::Reference(O::PermissionSet), Create)
            .push(
                "PermissionSetGroupId",
                T::Reference(O::PermissionSetGroup),
                Create,
            )
            .push("ExpirationDate", T::DateTime, Edit)
            .since(52)
            .push("IsActive", T::Boolean, ReadOnly)
            .audit()
            .deletable()
            .build(object, vec![]),
        O::PermissionSetLicense => Builder::new()
            .push("DeveloperName", T::String, ReadOnly)
            .push("MasterLabel", T::String, ReadOnly)
            .push("Status", T::Picklist, ReadOnly)
            .push("TotalLicenses", T::Int, ReadOnly)
            .push("UsedLicenses", T::Int, ReadOnly)
            .push("ExpirationDate", T::Date, ReadOnly)
            .audit()
            .build(object, vec![]),
        O::PermissionSetLicenseAssign => Builder::new()
            .push("AssigneeId", T::Reference(O::User), RequiredOnCreate)
            .push(
                "PermissionSetLicenseId",
                T::Reference(O::PermissionSetLicense),
                RequiredOnCreate,
            )
            .audit()
            .deletable()
            .build(object, vec![]),
        O::UserRole => Builder::new()
            .push("Name", T::String, Required)
            .length(80)
            .push("DeveloperName", T::String, Edit)
            .length(80)
            .push("ParentRoleId", T::Reference(O::UserRole), Edit)
            .push("PortalType", T::Picklist, ReadOnly)
            .audit()
            .deletable()
            .build(object, vec![child("Users", O::User, "UserRoleId")]),
        O::Group => Builder::new()
            .push("Name", T::String, Required)
            .length(40)
            .push("DeveloperName", T::String, Edit)
            .length(80)
            .push("Type", T::Picklist, Create)
            .push("RelatedId", T::AnyId, ReadOnly)
            .audit()
            .deletable()
            .build(
                object,
                vec![child("GroupMembers", O::GroupMember, "GroupId")],
            ),
        O::GroupMember => Builder::new()
            .push("GroupId", T::Reference(O::Group), RequiredOnCreate)
            .push("UserOrGroupId", T::AnyId, RequiredOnCreate)
            .push("SystemModstamp", T::DateTime, ReadOnly)
            .deletable()
            .build(object, vec![]),
        O::MutingPermissionSet => Builder::new()
            .push("DeveloperName", T::String, Required)
            .length(80)
            .push("MasterLabel", T::String, Required)
            .length(80)
            .push("Description", T::String, Edit)
            .permissions()
            .audit()
            .deletable()
            .build(object, vec![]),
        // ParentId is polymorphic (a permission set, profile-owned and group aggregates
        // included, or a muting permission set); only enabled rows exist.
        O::ObjectPermissions => Builder::new()
            .push("ParentId", T::AnyId, RequiredOnCreate)
            .push("SobjectType", T::Picklist, RequiredOnCreate)
            .object_permissions()
            .audit()
            .deletable()
            .build(object, vec![]),
        O::FieldPermissions => Builder::new()
            .push("ParentId", T::AnyId, RequiredOnCreate)
            .push("SobjectType", T::Picklist, RequiredOnCreate)
            .push("Field", T::String, RequiredOnCreate)
            .push("PermissionsRead", T::Boolean, Edit)
            .push("PermissionsEdit", T::Boolean, Edit)
            .audit()
            .deletable()
            .build(object, vec![]),
        O::SetupEntityAccess => Builder::new()
            .push("ParentId", T::AnyId, RequiredOnCreate)
            .push("SetupEntityId", T::AnyId, RequiredOnCreate)
            .push("SetupEntityType", T::Picklist, ReadOnly)
            .audit()
            .deletable()
            .build(object, vec![]),
        O::ConnectedApplication => Builder::new()
            .push("Name", T::String, ReadOnly)
            .audit()
            .build(object, vec![]),
        O::ApexClass => Builder::new()
            .push("Name", T::String, ReadOnly)
            .push("NamespacePrefix", T::String, ReadOnly)
            .audit()
            .build(object, vec![]),
        O::CustomPermission => Builder::new()
            .push("DeveloperName", T::String, Required)
            .length(80)
            .push("MasterLabel", T::String, Required)
            .length(80)
            .push("NamespacePrefix", T::String, ReadOnly)
            .audit()
            .deletable()
            .build(object, vec![]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_object_resolves_by_name_and_prefix() {
        for object in ObjectType::ALL {
            assert_eq!(
                ObjectType::from_name(&object.name().to_lowercase()),
                Some(object)
            );
            assert_eq!(
                ObjectType::from_key_prefix(object.key_prefix()),
                Some(object)
            );
            assert_eq!(object.schema().object, object);
            assert_eq!(object.schema().fields[0].name, "Id");
        }
    }

    #[test]
    fn relationships_resolve_to_their_reference_fields() {
        let user = ObjectType::User.schema();
        let (index, target) = user.relationship("profile").unwrap();
        assert_eq!(user.fields[index].name, "ProfileId");
        assert_eq!(target, ObjectType::Profile);
        assert!(user.relationship("ContactId").is_none());
        assert_eq!(
            user.child_relationship("permissionsetassignments")
                .unwrap()
                .child,
            ObjectType::PermissionSetAssignment
        );
    }
}
