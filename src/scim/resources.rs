//! The stored model as SCIM resources: Users, Groups, Entitlements and Roles, each with its
//! `meta` (location, and a version that changes whenever anything the resource shows does).

use std::collections::HashMap;

use provost_connector::model::Entitlement;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::schema::{self, entitlement_type};
use crate::store::scim::{Member, ScimEntitlement, ScimUser, UserGrant};
use provost_connector::times::Timestamp;

/// Salesforce's date-times (`2024-01-02T03:04:05.000+0000`) in RFC 3339.
fn rfc3339(value: Option<&Value>) -> Option<String> {
    let text = value?.as_str()?;
    provost_connector::times::parse_datetime(text).map(crate::util::times::rfc3339)
}

/// `meta.created`, from Salesforce's `CreatedDate` where the synced record keeps it.
fn created(attrs: &serde_json::Map<String, Value>) -> Option<String> {
    rfc3339(attrs.get("CreatedDate"))
}

fn text(value: Option<&Value>) -> Option<&str> {
    value?.as_str().filter(|s| !s.is_empty())
}

/// Drops null members, so unassigned attributes are left out as RFC 7643 asks (and objects
/// left empty by that). In place: a rendered page holds thousands of members.
fn compact(mut value: Value) -> Value {
    compact_in_place(&mut value);
    value
}

fn compact_in_place(value: &mut Value) {
    match value {
        Value::Object(map) => map.retain(|_, v| {
            compact_in_place(v);
            !v.is_null() && !matches!(v, Value::Object(m) if m.is_empty())
        }),
        Value::Array(items) => items.iter_mut().for_each(compact_in_place),
        _ => {}
    }
}

/// `W/"..."`: a digest of everything the resource shows but its meta.
fn version<T: Serialize + ?Sized>(resource: &T) -> String {
    let mut digest = Digesting(Sha256::new());
    serde_json::to_writer(&mut digest, resource).expect("resources serialise");
    let digest = digest.0.finalize();
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("W/\"{hex}\"")
}

/// Feeds what is written to a digest.
struct Digesting(Sha256);

impl std::io::Write for Digesting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `last_modified`: when Provost last saw the resource change (`created` when never since).
fn finish(
    mut resource: Value,
    resource_type: &str,
    location: String,
    created: Option<String>,
    last_modified: Option<Timestamp>,
) -> Value {
    resource = compact(resource);
    let version = version(&resource);
    let last_modified = last_modified
        .map(crate::util::times::rfc3339)
        .or_else(|| created.clone());
    resource["meta"] = compact(json!({
        "resourceType": resource_type,
        "created": created,
        "lastModified": last_modified,
        "location": location,
        "version": version,
    }));
    resource
}

/// The version a rendered resource carries.
pub fn version_of(resource: &Value) -> Option<&str> {
    resource["meta"]["version"].as_str()
}

/// A User as it is served. Typed rather than built as a JSON value, so that a page of users is
/// serialised straight into the answer: building, compacting and copying values cost more than
/// reading the page. Unassigned attributes are left out, as RFC 7643 asks; the fields are in the
/// order they are served, which the version digests.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User<'a> {
    schemas: [&'static str; 3],
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_id: Option<&'a str>,
    user_name: &'a str,
    name: Name<'a>,
    display_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    preferred_language: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    locale: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timezone: Option<&'a str>,
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    emails: Option<[Email<'a>; 1]>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    entitlements: Vec<Held<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    roles: Vec<Held<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    groups: Vec<MemberOf<'a>>,
    #[serde(
        rename = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        skip_serializing_if = "Enterprise::is_empty"
    )]
    enterprise: Enterprise<'a>,
    #[serde(rename = "urn:provost:scim:schemas:extension:salesforce:2.0:User")]
    provost: ProvostUser<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<Meta>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Name<'a> {
    formatted: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    family_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    given_name: Option<&'a str>,
}

#[derive(Serialize)]
struct Email<'a> {
    value: &'a str,
    r#type: &'static str,
    primary: bool,
}

/// An entry of `entitlements` or `roles`.
#[derive(Serialize)]
struct Held<'a> {
    value: &'a str,
    display: &'a str,
    r#type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    primary: Option<bool>,
}

/// An entry of `groups`.
#[derive(Serialize)]
struct MemberOf<'a> {
    value: &'a str,
    #[serde(rename = "$ref")]
    reference: String,
    display: &'a str,
    r#type: &'static str,
}

#[derive(Serialize)]
struct Enterprise<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    department: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    manager: Option<Manager<'a>>,
}

impl Enterprise<'_> {
    fn is_empty(&self) -> bool {
        self.department.is_none() && self.manager.is_none()
    }
}

#[derive(Serialize)]
struct Manager<'a> {
    value: &'a str,
    #[serde(rename = "$ref")]
    reference: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProvostUser<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    profile_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_license_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_license: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    federation_identifier: Option<&'a str>,
    frozen: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_login: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    resource_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<String>,
    /// When Provost last saw the user or its grants change (not Salesforce's
    /// LastModifiedDate, which moves on every edit of the record and not when access does).
    #[serde(skip_serializing_if = "Option::is_none")]
    last_modified: Option<String>,
    location: String,
    version: String,
}

impl<'a> User<'a> {
    /// The user of `scim_user`, with its grants (in the order they are listed).
    pub fn new(base: &str, scim_user: &'a ScimUser) -> User<'a> {
        let (account, grants) = (&scim_user.account, &scim_user.grants);
        let attrs = &account.attributes;
        let held = |g: &'a UserGrant| Held {
            value: &g.entitlement_id,
            display: &g.label,
            r#type: entitlement_type(&g.kind),
            primary: (g.kind == "profile").then_some(true),
        };
        let entitlements = grants
            .iter()
            .filter(|g| {
                matches!(
                    g.kind.as_str(),
                    "profile" | "permission_set" | "permission_set_group"
                ) && (g.source == "direct" || g.source == "profile")
            })
            .map(held)
            .collect();
        // A user has at most one role: it is primary, as `/Schemas` says.
        let roles = grants
            .iter()
            .filter(|g| g.kind == "role")
            .map(|g| Held {
                primary: Some(true),
                ..held(g)
            })
            .collect();
        let groups = grants
            .iter()
            .filter(|g| {
                matches!(
                    g.kind.as_str(),
                    "permission_set" | "permission_set_group" | "public_group"
                ) && g.source == "direct"
            })
            .map(|g| MemberOf {
                value: &g.entitlement_id,
                reference: format!("{base}/Groups/{}", g.entitlement_id),
                display: &g.label,
                r#type: "direct",
            })
            .collect();
        let label_of = |kind: &str| {
            grants
                .iter()
                .find(|g| g.kind == kind)
                .map(|g| g.label.as_str())
        };
        let mut user = User {
            schemas: [schema::USER, schema::ENTERPRISE, schema::PROVOST_USER],
            id: &account.id,
            external_id: text(attrs.get("FederationIdentifier")),
            user_name: &account.username,
            name: Name {
                formatted: &account.display_name,
                family_name: account.last_name.as_deref(),
                given_name: account.first_name.as_deref(),
            },
            display_name: &account.display_name,
            title: text(attrs.get("Title")),
            user_type: account.user_type.as_deref(),
            preferred_language: text(attrs.get("LanguageLocaleKey")),
            locale: text(attrs.get("LocaleSidKey")),
            timezone: text(attrs.get("TimeZoneSidKey")),
            active: account.active,
            emails: account.email.as_deref().map(|value| {
                [Email {
                    value,
                    r#type: "work",
                    primary: true,
                }]
            }),
            entitlements,
            roles,
            groups,
            enterprise: Enterprise {
                department: text(attrs.get("Department")),
                manager: text(attrs.get("ManagerId")).map(|m| Manager {
                    value: m,
                    reference: format!("{base}/Users/{m}"),
                }),
            },
            provost: ProvostUser {
                profile_id: text(attrs.get("ProfileId")),
                profile: label_of("profile"),
                role_id: text(attrs.get("UserRoleId")),
                role: label_of("role"),
                user_license_id: text(attrs.get("UserLicenseId")),
                user_license: label_of("user_license"),
                federation_identifier: text(attrs.get("FederationIdentifier")),
                frozen: attrs
                    .get("IsFrozen")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                last_login: rfc3339(attrs.get("LastLoginDate")),
            },
            meta: None,
        };
        user.meta = Some(Meta {
            resource_type: "User",
            created: rfc3339(attrs.get("CreatedDate")),
            // Never modified since Provost first saw it: created, as RFC 7643 section 3.1 asks.
            last_modified: scim_user
                .changed_at
                .map(crate::util::times::rfc3339)
                .or_else(|| rfc3339(attrs.get("CreatedDate"))),
            location: format!("{base}/Users/{}", account.id),
            version: version(&user),
        });
        user
    }
}

/// A User as a JSON value (to project, patch or compare).
pub fn user(base: &str, user: &ScimUser) -> Value {
    serde_json::to_value(User::new(base, user)).expect("a User serialises")
}

pub fn group(base: &str, dated: &ScimEntitlement, members: &[&Member]) -> Value {
    let entitlement = &dated.entitlement;
    let members: Vec<Value> = members
        .iter()
        .map(|m| {
            json!({
                "value": m.account_id,
                "$ref": format!("{base}/Users/{}", m.account_id),
                "display": m.display_name,
                "type": "User",
            })
        })
        .collect();
    let resource = json!({
        "schemas": [schema::GROUP, schema::PROVOST_GROUP],
        "id": entitlement.id,
        "displayName": entitlement.label,
        "members": members,
        schema::PROVOST_GROUP: {
            "type": entitlement_type(entitlement.kind.as_str()),
            "apiName": entitlement.api_name,
            "description": entitlement.description,
        },
    });
    finish(
        resource,
        "Group",
        format!("{base}/Groups/{}", entitlement.id),
        created(&entitlement.attributes),
        dated.changed_at,
    )
}

pub fn groups(
    base: &str,
    ids: &[String],
    entitlements: Vec<ScimEntitlement>,
    members: &[Member],
) -> Vec<Value> {
    let mut by_group: HashMap<&str, Vec<&Member>> = HashMap::new();
    for member in members {
        by_group
            .entry(member.entitlement_id.as_str())
            .or_default()
            .push(member);
    }
    let entitlements: HashMap<String, ScimEntitlement> = entitlements
        .into_iter()
        .map(|e| (e.entitlement.id.clone(), e))
        .collect();
    ids.iter()
        .filter_map(|id| entitlements.get(id))
        .map(|e| {
            group(
                base,
                e,
                by_group
                    .get(e.entitlement.id.as_str())
                    .map(Vec::as_slice)
                    .unwrap_or(&[]),
            )
        })
        .collect()
}

/// An Entitlement or a Role. `labels` holds the names of the licenses they refer to.
pub fn catalog_entry(
    base: &str,
    dated: &ScimEntitlement,
    labels: &HashMap<String, String>,
) -> Value {
    let entitlement = &dated.entitlement;
    let attrs = &entitlement.attributes;
    if entitlement.kind.as_str() == "role" {
        let resource = json!({
            "schemas": [schema::ROLE],
            "id": entitlement.id,
            "displayName": entitlement.label,
            "apiName": entitlement.api_name,
            "parentRoleId": text(attrs.get("ParentRoleId")),
        });
        return finish(
            resource,
            "Role",
            format!("{base}/Roles/{}", entitlement.id),
            created(attrs),
            dated.changed_at,
        );
    }
    let license = license_of(entitlement);
    let resource = json!({
        "schemas": [schema::ENTITLEMENT],
        "id": entitlement.id,
        "displayName": entitlement.label,
        "type": entitlement_type(entitlement.kind.as_str()),
        "apiName": entitlement.api_name,
        "description": entitlement.description,
        "licenseId": license,
        "license": license.and_then(|l| labels.get(l)),
    });
    finish(
        resource,
        "Entitlement",
        format!("{base}/Entitlements/{}", entitlement.id),
        created(attrs),
        dated.changed_at,
    )
}

/// The license an entitlement requires: a profile's user license, a permission set's license.
pub fn license_of(entitlement: &Entitlement) -> Option<&str> {
    text(entitlement.attributes.get("UserLicenseId"))
        .or_else(|| text(entitlement.attributes.get("LicenseId")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use provost_connector::model::Account;

    #[test]
    fn the_version_follows_the_content() {
        let a = finish(json!({"id": "1", "x": 1}), "User", "l".into(), None, None);
        let b = finish(json!({"id": "1", "x": 2}), "User", "l".into(), None, None);
        assert_ne!(version_of(&a), version_of(&b));
        assert!(version_of(&a).unwrap().starts_with("W/\""));
        assert_eq!(compact(json!({"a": null, "b": {"c": null}})), json!({}));
    }

    fn account(attributes: Value) -> Account {
        Account {
            id: "005A".into(),
            username: "jane@acme.com".into(),
            email: None,
            first_name: None,
            last_name: None,
            display_name: "Jane".into(),
            active: true,
            user_type: None,
            attributes: attributes.as_object().cloned().unwrap_or_default(),
        }
    }

    fn grant(id: &str, kind: &str, label: &str, source: &str) -> UserGrant {
        UserGrant {
            entitlement_id: id.into(),
            kind: kind.into(),
            label: label.into(),
            source: source.into(),
        }
    }

    #[test]
    fn a_user_leaves_out_what_is_unassigned_and_carries_its_extensions_under_their_urns() {
        let bare = user(
            "https://p/scim/v2",
            &ScimUser {
                account: account(json!({"Title": ""})),
                grants: Vec::new(),
                changed_at: None,
            },
        );
        assert_eq!(
            bare.as_object().unwrap().keys().collect::<Vec<_>>(),
            [
                "schemas",
                "id",
                "userName",
                "name",
                "displayName",
                "active",
                schema::PROVOST_USER,
                "meta"
            ]
        );
        assert_eq!(bare["name"], json!({"formatted": "Jane"}));
        assert_eq!(bare[schema::PROVOST_USER], json!({"frozen": false}));

        let grants = [
            grant("00e1", "profile", "Standard User", "profile"),
            grant("0PS1", "permission_set", "Sales", "direct"),
            grant("0PS2", "permission_set", "Via group", "group:0PG1"),
            grant("00E1", "role", "CEO", "direct"),
        ];
        let full = user(
            "https://p/scim/v2",
            &ScimUser {
                account: account(
                    json!({"Department": "Sales", "ManagerId": "005B", "IsFrozen": true,
                                "ProfileId": "00e1", "UserRoleId": "00E1"}),
                ),
                grants: grants.to_vec(),
                changed_at: None,
            },
        );
        assert_eq!(
            full[schema::ENTERPRISE],
            json!({"department": "Sales",
                   "manager": {"value": "005B", "$ref": "https://p/scim/v2/Users/005B"}})
        );
        assert_eq!(
            full[schema::PROVOST_USER],
            json!({"profileId": "00e1", "profile": "Standard User", "roleId": "00E1",
                   "role": "CEO", "frozen": true})
        );
        assert_eq!(
            full["entitlements"],
            json!([
                {"value": "00e1", "display": "Standard User", "type": "Profile", "primary": true},
                {"value": "0PS1", "display": "Sales", "type": "PermissionSet"},
            ])
        );
        assert_eq!(
            full["groups"],
            json!([{"value": "0PS1", "$ref": "https://p/scim/v2/Groups/0PS1", "display": "Sales",
                    "type": "direct"}])
        );
        assert_eq!(full["roles"][0]["display"], "CEO");
        assert_eq!(full["meta"]["location"], "https://p/scim/v2/Users/005A");
        assert_ne!(version_of(&bare), version_of(&full));
        // The version is the digest of what the resource shows but its meta.
        let mut shown = full.clone();
        shown.as_object_mut().unwrap().remove("meta");
        assert_eq!(version_of(&full), Some(version(&shown).as_str()));
    }
}
