//! What Provost serves over SCIM, declared once: each schema's attributes with their SCIM
//! characteristics (RFC 7643 section 7) and where each one lives in the store. The
//! `/Schemas` endpoint publishes these tables, and filters and `sortBy` resolve attribute paths
//! through them, so what is advertised and what is implemented cannot drift apart.

use serde_json::{json, Value};

use super::error::ScimError;
use super::filter::AttrPath;
use crate::store::scim::{Column, GrantScope};

pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const PROVOST_USER: &str = "urn:provost:scim:schemas:extension:salesforce:2.0:User";
pub const PROVOST_GROUP: &str = "urn:provost:scim:schemas:extension:salesforce:2.0:Group";
pub const ENTITLEMENT: &str = "urn:provost:scim:schemas:core:2.0:Entitlement";
pub const ROLE: &str = "urn:provost:scim:schemas:core:2.0:Role";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    String,
    Boolean,
    DateTime,
    Reference,
    Complex,
}

impl Type {
    fn as_str(self) -> &'static str {
        match self {
            Type::String => "string",
            Type::Boolean => "boolean",
            Type::DateTime => "dateTime",
            Type::Reference => "reference",
            Type::Complex => "complex",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
}

/// The SCIM `type` of a stored entitlement kind.
pub fn entitlement_type(kind: &str) -> &'static str {
    match kind {
        "profile" => "Profile",
        "permission_set" => "PermissionSet",
        "permission_set_group" => "PermissionSetGroup",
        "public_group" => "Group",
        "role" => "Role",
        "user_license" => "UserLicense",
        _ => "PermissionSetLicense",
    }
}

/// Where an attribute's value is, for filtering and sorting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Not filterable (`$ref`, `meta.location`).
    None,
    /// A column of the resource's row (or, inside a multi-valued attribute, of the value's).
    Column(Column),
    /// The same for every value.
    Const(&'static str),
    ConstTrue,
    /// The user's grants of a scope (sub-attributes over the entitlement).
    Grants(GrantScope),
    /// A group's direct members (sub-attributes over the member).
    Members,
}

#[derive(Debug, Clone, Copy)]
pub struct Attr {
    pub name: &'static str,
    pub ty: Type,
    pub multi: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub required: bool,
    pub unique: bool,
    pub description: &'static str,
    pub sub: &'static [Attr],
    pub source: Source,
    pub reference_types: &'static [&'static str],
}

const fn attr(name: &'static str, ty: Type, source: Source, description: &'static str) -> Attr {
    Attr {
        name,
        ty,
        multi: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        required: false,
        unique: false,
        description,
        sub: &[],
        source,
        reference_types: &[],
    }
}

const fn text(name: &'static str, source: Source, description: &'static str) -> Attr {
    attr(name, Type::String, source, description)
}

const fn read_only(mut a: Attr) -> Attr {
    a.mutability = Mutability::ReadOnly;
    a
}

const fn exact(mut a: Attr) -> Attr {
    a.case_exact = true;
    a
}

const fn multi(mut a: Attr) -> Attr {
    a.multi = true;
    a
}

const fn complex(
    name: &'static str,
    source: Source,
    sub: &'static [Attr],
    description: &'static str,
) -> Attr {
    let mut a = attr(name, Type::Complex, source, description);
    a.sub = sub;
    a
}

const fn reference(name: &'static str, types: &'static [&'static str]) -> Attr {
    let mut a = attr(
        name,
        Type::Reference,
        Source::None,
        "The URI of the resource.",
    );
    a.reference_types = types;
    a.case_exact = true;
    a.mutability = Mutability::ReadOnly;
    a
}

/// Sub-attributes of a user's entitlement-like values (over `e`).
const GRANT_VALUES: &[Attr] = &[
    read_only(exact(text(
        "value",
        Source::Column(Column::EntitlementId),
        "The Salesforce id of the profile, permission set, permission set group or role.",
    ))),
    read_only(text("display", Source::Column(Column::Label), "Its label.")),
    read_only(text(
        "type",
        Source::Column(Column::EntitlementType),
        "Profile, PermissionSet, PermissionSetGroup, Group or Role.",
    )),
    read_only(attr(
        "primary",
        Type::Boolean,
        Source::Column(Column::IsProfile),
        "True for the user's profile.",
    )),
];

const ROLE_VALUES: &[Attr] = &[
    read_only(exact(text(
        "value",
        Source::Column(Column::EntitlementId),
        "The role's Salesforce id.",
    ))),
    read_only(text(
        "display",
        Source::Column(Column::Label),
        "The role's name.",
    )),
    read_only(text("type", Source::Const("Role"), "Always Role.")),
    read_only(attr(
        "primary",
        Type::Boolean,
        Source::ConstTrue,
        "A user has at most one role.",
    )),
];

const USER_GROUP_VALUES: &[Attr] = &[
    read_only(exact(text(
        "value",
        Source::Column(Column::EntitlementId),
        "The Group's id.",
    ))),
    reference("$ref", &["Group"]),
    read_only(text(
        "display",
        Source::Column(Column::Label),
        "The Group's name.",
    )),
    read_only(text(
        "type",
        Source::Const("direct"),
        "Always direct: Provost lists direct memberships.",
    )),
];

const NAME: &[Attr] = &[
    read_only(text(
        "formatted",
        Source::Column(Column::DisplayName),
        "The full name (Salesforce's Name, made from the first and last names).",
    )),
    {
        let mut a = text(
            "familyName",
            Source::Column(Column::LastName),
            "LastName (Salesforce requires it).",
        );
        a.required = true;
        a
    },
    text("givenName", Source::Column(Column::FirstName), "FirstName."),
];

const EMAIL: &[Attr] = &[
    {
        let mut a = text(
            "value",
            Source::Column(Column::Email),
            "The user's Email (Salesforce requires one).",
        );
        a.required = true;
        a
    },
    text("type", Source::Const("work"), "Always work."),
    attr(
        "primary",
        Type::Boolean,
        Source::ConstTrue,
        "Always true: Salesforce holds one email.",
    ),
];

const USER_ATTRS: &[Attr] = &[
    {
        let mut a = text(
            "userName",
            Source::Column(Column::Username),
            "The Salesforce username, shaped like an email address and unique across all orgs.",
        );
        a.required = true;
        a.unique = true;
        a
    },
    {
        let mut a = complex("name", Source::None, NAME, "The user's name.");
        a.required = true;
        a
    },
    read_only(text("displayName", Source::Column(Column::DisplayName), "The full name.")),
    text(
        "title",
        Source::Column(Column::UserText("Title")),
        "The job title.",
    ),
    read_only(text("userType", Source::Column(Column::UserType), "Salesforce's UserType (Standard, PowerPartner, ...).")),
    read_only(text("preferredLanguage", Source::Column(Column::UserText("LanguageLocaleKey")), "LanguageLocaleKey.")),
    read_only(text("locale", Source::Column(Column::UserText("LocaleSidKey")), "LocaleSidKey.")),
    read_only(text("timezone", Source::Column(Column::UserText("TimeZoneSidKey")), "TimeZoneSidKey.")),
    attr(
        "active",
        Type::Boolean,
        Source::Column(Column::Active),
        "IsActive. Setting it false deactivates the user; true reactivates.",
    ),
    {
        let mut a = multi(complex("emails", Source::None, EMAIL, "The user's email."));
        a.required = true;
        a
    },
    read_only(multi(complex(
        "entitlements",
        Source::Grants(GrantScope::Entitlements),
        GRANT_VALUES,
        "The profile (primary), and the permission sets and permission set groups assigned directly. Grant and revoke through Groups' members.",
    ))),
    read_only(multi(complex(
        "roles",
        Source::Grants(GrantScope::Roles),
        ROLE_VALUES,
        "The user's role in the role hierarchy.",
    ))),
    read_only(multi(complex(
        "groups",
        Source::Grants(GrantScope::Groups),
        USER_GROUP_VALUES,
        "The Groups (grantable permission sets, permission set groups and public groups) the user is a direct member of.",
    ))),
];

const MANAGER: &[Attr] = &[
    read_only(exact(text(
        "value",
        Source::Column(Column::UserText("ManagerId")),
        "The manager's user id.",
    ))),
    reference("$ref", &["User"]),
];

const ENTERPRISE_ATTRS: &[Attr] = &[
    text(
        "department",
        Source::Column(Column::UserText("Department")),
        "Department.",
    ),
    read_only(complex(
        "manager",
        Source::None,
        MANAGER,
        "The user's manager (ManagerId).",
    )),
];

const PROVOST_USER_ATTRS: &[Attr] = &[
    exact(text(
        "profileId",
        Source::Column(Column::UserText("ProfileId")),
        "The profile's id; writing another changes the user's profile.",
    )),
    read_only(text(
        "profile",
        Source::Column(Column::LabelOf("ProfileId")),
        "The profile's name.",
    )),
    exact(text(
        "roleId",
        Source::Column(Column::UserText("UserRoleId")),
        "The role's id; writing another changes the user's role, removing it removes the role.",
    )),
    read_only(text(
        "role",
        Source::Column(Column::LabelOf("UserRoleId")),
        "The role's name.",
    )),
    read_only(exact(text(
        "userLicenseId",
        Source::Column(Column::UserText("UserLicenseId")),
        "The user license's id.",
    ))),
    read_only(text(
        "userLicense",
        Source::Column(Column::LabelOf("UserLicenseId")),
        "The user license's name.",
    )),
    read_only(exact(text(
        "federationIdentifier",
        Source::Column(Column::UserText("FederationIdentifier")),
        "The SAML federation id (also served as externalId).",
    ))),
    attr(
        "frozen",
        Type::Boolean,
        Source::Column(Column::UserFlag("IsFrozen")),
        "Whether the user's login is frozen; writing it freezes or unfreezes the user.",
    ),
    read_only(attr(
        "lastLogin",
        Type::DateTime,
        Source::Column(Column::UserTime("LastLoginDate")),
        "LastLoginDate, absent if the user never logged in.",
    )),
];

const MEMBER: &[Attr] = &[
    exact(text(
        "value",
        Source::Column(Column::MemberId),
        "The member's user id.",
    )),
    reference("$ref", &["User"]),
    read_only(text(
        "display",
        Source::Column(Column::MemberName),
        "The member's name.",
    )),
    read_only(text("type", Source::Const("User"), "Always User.")),
];

const GROUP_ATTRS: &[Attr] = &[
    {
        let mut a = read_only(text(
            "displayName",
            Source::Column(Column::Label),
            "The permission set's, permission set group's or public group's label.",
        ));
        a.required = true;
        a
    },
    multi(complex(
        "members",
        Source::Members,
        MEMBER,
        "The users holding it directly. Adding a member grants it; removing one revokes it.",
    )),
];

const PROVOST_GROUP_ATTRS: &[Attr] = &[
    read_only(text(
        "type",
        Source::Column(Column::EntitlementType),
        "PermissionSet, PermissionSetGroup or Group (a public group).",
    )),
    read_only(exact(text(
        "apiName",
        Source::Column(Column::ApiName),
        "The API name (Name or DeveloperName).",
    ))),
    read_only(text(
        "description",
        Source::Column(Column::Description),
        "The description.",
    )),
];

const ENTITLEMENT_ATTRS: &[Attr] = &[
    read_only(text("displayName", Source::Column(Column::Label), "The label.")),
    read_only(text(
        "type",
        Source::Column(Column::EntitlementType),
        "Profile, PermissionSet or PermissionSetGroup.",
    )),
    read_only(exact(text("apiName", Source::Column(Column::ApiName), "The API name."))),
    read_only(text("description", Source::Column(Column::Description), "The description.")),
    read_only(exact(text(
        "licenseId",
        Source::None,
        "The license it requires (a user license for a profile, the permission set's license), if any.",
    ))),
    read_only(text("license", Source::None, "That license's name.")),
];

const ROLE_ATTRS: &[Attr] = &[
    read_only(text(
        "displayName",
        Source::Column(Column::Label),
        "The role's name.",
    )),
    read_only(exact(text(
        "apiName",
        Source::Column(Column::ApiName),
        "DeveloperName.",
    ))),
    read_only(exact(text(
        "parentRoleId",
        Source::None,
        "The parent role's id, if any.",
    ))),
];

pub struct Schema {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attrs: &'static [Attr],
}

pub const SCHEMAS: &[Schema] = &[
    Schema {
        id: USER,
        name: "User",
        description: "A Salesforce user.",
        attrs: USER_ATTRS,
    },
    Schema {
        id: ENTERPRISE,
        name: "EnterpriseUser",
        description: "Enterprise user attributes.",
        attrs: ENTERPRISE_ATTRS,
    },
    Schema {
        id: PROVOST_USER,
        name: "SalesforceUser",
        description: "The user's Salesforce access: profile, role, license, frozen, last login.",
        attrs: PROVOST_USER_ATTRS,
    },
    Schema {
        id: GROUP,
        name: "Group",
        description: "A grantable permission set, permission set group or public group.",
        attrs: GROUP_ATTRS,
    },
    Schema {
        id: PROVOST_GROUP,
        name: "SalesforceGroup",
        description: "What kind of Salesforce grant a Group is.",
        attrs: PROVOST_GROUP_ATTRS,
    },
    Schema {
        id: ENTITLEMENT,
        name: "Entitlement",
        description: "A profile, permission set or permission set group (read-only catalog).",
        attrs: ENTITLEMENT_ATTRS,
    },
    Schema {
        id: ROLE,
        name: "Role",
        description: "A role of the role hierarchy (read-only catalog).",
        attrs: ROLE_ATTRS,
    },
];

/// A resource type: its endpoint, core schema and extensions.
pub struct ResourceType {
    pub name: &'static str,
    pub endpoint: &'static str,
    pub description: &'static str,
    pub schema: &'static str,
    pub extensions: &'static [&'static str],
}

pub const RESOURCE_TYPES: &[ResourceType] = &[
    ResourceType {
        name: "User",
        endpoint: "/Users",
        description: "Salesforce users",
        schema: USER,
        extensions: &[ENTERPRISE, PROVOST_USER],
    },
    ResourceType {
        name: "Group",
        endpoint: "/Groups",
        description: "Grantable permission sets, permission set groups and public groups",
        schema: GROUP,
        extensions: &[PROVOST_GROUP],
    },
    ResourceType {
        name: "Entitlement",
        endpoint: "/Entitlements",
        description: "Profiles, permission sets and permission set groups",
        schema: ENTITLEMENT,
        extensions: &[],
    },
    ResourceType {
        name: "Role",
        endpoint: "/Roles",
        description: "Roles",
        schema: ROLE,
        extensions: &[],
    },
];

pub fn schema(id: &str) -> Option<&'static Schema> {
    SCHEMAS.iter().find(|s| s.id.eq_ignore_ascii_case(id))
}

/// The attributes common to every resource (RFC 7643 section 3.1), for filtering.
const ID: Attr = read_only(exact(text(
    "id",
    Source::Column(Column::Id),
    "The Salesforce id.",
)));

/// An attribute path resolved against a resource type: the attribute, and its sub-attribute
/// when the path names one.
#[derive(Debug, Clone, Copy)]
pub struct Resolved {
    pub attr: &'static Attr,
    pub sub: Option<&'static Attr>,
}

fn find(attrs: &'static [Attr], name: &str) -> Option<&'static Attr> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

static ID_ATTR: Attr = ID;
static EXTERNAL_ID: Attr = exact(text(
    "externalId",
    Source::Column(Column::UserText("FederationIdentifier")),
    "FederationIdentifier.",
));
static META_USER: Attr = {
    const SUBS: &[Attr] = &[
        read_only(attr(
            "created",
            Type::DateTime,
            Source::Column(Column::UserTime("CreatedDate")),
            "",
        )),
        read_only(attr(
            "lastModified",
            Type::DateTime,
            Source::Column(Column::ChangedAt),
            "",
        )),
        read_only(text("resourceType", Source::Const("User"), "")),
    ];
    read_only(complex("meta", Source::None, SUBS, ""))
};
static META_OTHER: Attr = {
    const SUBS: &[Attr] = &[
        read_only(attr(
            "lastModified",
            Type::DateTime,
            Source::Column(Column::ChangedAt),
            "",
        )),
        read_only(text("resourceType", Source::None, "")),
    ];
    read_only(complex("meta", Source::None, SUBS, ""))
};

/// Resolves `path` against `resource` (its core schema and extensions), or says it is unknown.
pub fn resolve(resource: &ResourceType, path: &AttrPath) -> Result<Resolved, ScimError> {
    let unknown = || {
        ScimError::invalid_filter(format!(
            "{}s have no attribute `{path}`; see /Schemas for the attributes served",
            resource.name
        ))
    };
    let schemas: Vec<&'static Schema> = std::iter::once(resource.schema)
        .chain(resource.extensions.iter().copied())
        .filter_map(schema)
        .collect();
    let common = |name: &str| -> Option<&'static Attr> {
        if name.eq_ignore_ascii_case("id") {
            Some(&ID_ATTR)
        } else if name.eq_ignore_ascii_case("externalId") && resource.name == "User" {
            Some(&EXTERNAL_ID)
        } else if name.eq_ignore_ascii_case("meta") {
            Some(if resource.name == "User" {
                &META_USER
            } else {
                &META_OTHER
            })
        } else {
            None
        }
    };
    let attr = match &path.schema {
        Some(urn) => {
            let schema = schemas
                .iter()
                .find(|s| s.id.eq_ignore_ascii_case(urn))
                .ok_or_else(unknown)?;
            find(schema.attrs, &path.name)
                .or_else(|| {
                    if schema.id == resource.schema {
                        common(&path.name)
                    } else {
                        None
                    }
                })
                .ok_or_else(unknown)?
        }
        None => common(&path.name)
            .or_else(|| schemas.iter().find_map(|s| find(s.attrs, &path.name)))
            .ok_or_else(unknown)?,
    };
    let sub = match &path.sub {
        None => None,
        Some(name) => Some(find(attr.sub, name).ok_or_else(unknown)?),
    };
    Ok(Resolved { attr, sub })
}

/// A sub-attribute of a complex attribute, for paths inside `attr[...]`.
pub fn resolve_sub(parent: &'static Attr, path: &AttrPath) -> Result<&'static Attr, ScimError> {
    if path.schema.is_some() || path.sub.is_some() {
        return Err(ScimError::invalid_filter(format!(
            "inside `{}[...]` name a sub-attribute of {} (such as `value`), not `{path}`",
            parent.name, parent.name
        )));
    }
    find(parent.sub, &path.name).ok_or_else(|| {
        ScimError::invalid_filter(format!(
            "`{}` has no sub-attribute `{}` (it has: {})",
            parent.name,
            path.name,
            parent
                .sub
                .iter()
                .map(|a| a.name)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

fn attr_json(a: &Attr) -> Value {
    let mut value = json!({
        "name": a.name,
        "type": a.ty.as_str(),
        "multiValued": a.multi,
        "description": a.description,
        "required": a.required,
        "caseExact": a.case_exact,
        "mutability": match a.mutability {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
        },
        "returned": "default",
        "uniqueness": if a.unique { "server" } else { "none" },
    });
    if !a.sub.is_empty() {
        value["subAttributes"] = a.sub.iter().map(attr_json).collect();
    }
    if a.ty == Type::Reference {
        value["referenceTypes"] = json!(a.reference_types);
    }
    value
}

/// A schema as `/Schemas` serves it.
pub fn schema_json(schema: &Schema, base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": schema.id,
        "name": schema.name,
        "description": schema.description,
        "attributes": schema.attrs.iter().map(attr_json).collect::<Vec<_>>(),
        "meta": {
            "resourceType": "Schema",
            "location": format!("{base}/Schemas/{}", schema.id),
        },
    })
}

pub fn resource_type_json(resource: &ResourceType, base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": resource.name,
        "name": resource.name,
        "endpoint": resource.endpoint,
        "description": resource.description,
        "schema": resource.schema,
        "schemaExtensions": resource.extensions.iter()
            .map(|e| json!({"schema": e, "required": false}))
            .collect::<Vec<_>>(),
        "meta": {
            "resourceType": "ResourceType",
            "location": format!("{base}/ResourceTypes/{}", resource.name),
        },
    })
}

pub fn resource_type(name: &str) -> Option<&'static ResourceType> {
    RESOURCE_TYPES.iter().find(|r| r.name == name)
}
