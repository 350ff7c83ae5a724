//! The stored model as SCIM resources: Users, Groups, Entitlements and Roles, each with its
//! `meta` (location, and a version that changes whenever anything the resource shows does),
//! and the `attributes` / `excludedAttributes` projection.

use std::collections::HashMap;

use provost_connector::model::{Account, Entitlement};
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::schema::{self, entitlement_type};
use crate::store::scim::{Member, UserGrant};

/// Salesforce's date-times (`2024-01-02T03:04:05.000+0000`) in RFC 3339.
fn rfc3339(value: Option<&Value>) -> Option<String> {
    let text = value?.as_str()?;
    provost_salesforce::reader::parse_datetime(text).map(crate::times::rfc3339)
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

fn finish(
    mut resource: Value,
    resource_type: &str,
    location: String,
    created: Option<String>,
) -> Value {
    resource = compact(resource);
    let version = version(&resource);
    resource["meta"] = compact(json!({
        "resourceType": resource_type,
        "created": created,
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
    location: String,
    version: String,
}

impl<'a> User<'a> {
    /// The user of `account`, with its grants (in the order they are listed).
    pub fn new(base: &str, account: &'a Account, grants: &'a [UserGrant]) -> User<'a> {
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
        let roles = grants
            .iter()
            .filter(|g| g.kind == "role")
            .map(held)
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
            location: format!("{base}/Users/{}", account.id),
            version: version(&user),
        });
        user
    }
}

/// A User as a JSON value (to project, patch or compare).
pub fn user(base: &str, account: &Account, grants: &[UserGrant]) -> Value {
    serde_json::to_value(User::new(base, account, grants)).expect("a User serialises")
}

pub fn group(base: &str, entitlement: &Entitlement, members: &[&Member]) -> Value {
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
        None,
    )
}

pub fn groups(
    base: &str,
    ids: &[String],
    entitlements: Vec<Entitlement>,
    members: &[Member],
) -> Vec<Value> {
    let mut by_group: HashMap<&str, Vec<&Member>> = HashMap::new();
    for member in members {
        by_group
            .entry(member.entitlement_id.as_str())
            .or_default()
            .push(member);
    }
    let entitlements: HashMap<String, Entitlement> = entitlements
        .into_iter()
        .map(|e| (e.id.clone(), e))
        .collect();
    ids.iter()
        .filter_map(|id| entitlements.get(id))
        .map(|e| {
            group(
                base,
                e,
                by_group
                    .get(e.id.as_str())
                    .map(Vec::as_slice)
                    .unwrap_or(&[]),
            )
        })
        .collect()
}

/// An Entitlement or a Role. `labels` holds the names of the licenses they refer to.
pub fn catalog_entry(
    base: &str,
    entitlement: &Entitlement,
    labels: &HashMap<String, String>,
) -> Value {
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
            None,
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
        None,
    )
}

/// The license an entitlement requires: a profile's user license, a permission set's license.
pub fn license_of(entitlement: &Entitlement) -> Option<&str> {
    text(entitlement.attributes.get("UserLicenseId"))
        .or_else(|| text(entitlement.attributes.get("LicenseId")))
}

/// A requested attribute path: its schema (when written with one), name and sub-attribute,
/// lower-cased for comparison.
struct Wanted {
    schema: Option<String>,
    name: String,
    sub: Option<String>,
}

fn wanted(list: &str) -> Vec<Wanted> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .filter_map(|p| super::filter::parse_attr_path(p).ok())
        .map(|p| Wanted {
            schema: p.schema.map(|s| s.to_ascii_lowercase()),
            name: p.name.to_ascii_lowercase(),
            sub: p.sub.map(|s| s.to_ascii_lowercase()),
        })
        .collect()
}

/// A bare extension URN names the whole extension.
fn matches_key(w: &Wanted, container: Option<&str>, key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    match (&w.schema, container) {
        (None, _) => w.name == key,
        (Some(s), Some(c)) => s == &c.to_ascii_lowercase() && w.name == key,
        (Some(s), None) => {
            // A core attribute written with its schema, or a whole extension named by URN.
            (format!("{s}:{}", w.name) == key)
                || (s.starts_with("urn:ietf:params:scim:schemas:core") && w.name == key)
        }
    }
}

/// Applies `attributes` (keep only these, plus `id` and `schemas`) or `excludedAttributes`.
pub fn project(resource: Value, attributes: Option<&str>, excluded: Option<&str>) -> Value {
    let Value::Object(map) = resource else {
        return resource;
    };
    let always = |key: &str| key == "id" || key == "schemas";
    if let Some(list) = attributes.filter(|l| !l.trim().is_empty()) {
        let wanted = wanted(list);
        let keep = |container: Option<&str>, key: &str, value: Value| -> Option<Value> {
            let hits: Vec<&Wanted> = wanted
                .iter()
                .filter(|w| matches_key(w, container, key))
                .collect();
            if hits.is_empty() {
                return None;
            }
            if hits.iter().any(|w| w.sub.is_none()) {
                return Some(value);
            }
            let subs: Vec<&str> = hits.iter().filter_map(|w| w.sub.as_deref()).collect();
            let pick = |v: &Value| -> Value {
                match v {
                    Value::Object(o) => Value::Object(
                        o.iter()
                            .filter(|(k, _)| subs.contains(&k.to_ascii_lowercase().as_str()))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    ),
                    other => other.clone(),
                }
            };
            Some(match &value {
                Value::Array(items) => Value::Array(items.iter().map(pick).collect()),
                other => pick(other),
            })
        };
        let mut out = Map::new();
        for (key, value) in map {
            if always(&key) {
                out.insert(key, value);
            } else if key.starts_with("urn:") {
                if let Value::Object(ext) = value {
                    let whole = wanted.iter().any(|w| {
                        w.schema
                            .as_ref()
                            .is_some_and(|s| format!("{s}:{}", w.name) == key.to_ascii_lowercase())
                    });
                    let inner: Map<String, Value> = if whole {
                        ext
                    } else {
                        ext.into_iter()
                            .filter_map(|(k, v)| keep(Some(&key), &k, v).map(|v| (k, v)))
                            .collect()
                    };
                    if !inner.is_empty() {
                        out.insert(key, Value::Object(inner));
                    }
                }
            } else if let Some(kept) = keep(None, &key, value) {
                out.insert(key, kept);
            }
        }
        return Value::Object(out);
    }
    if let Some(list) = excluded.filter(|l| !l.trim().is_empty()) {
        let excluded = wanted(list);
        let mut out = Map::new();
        for (key, value) in map {
            if always(&key) {
                out.insert(key, value);
            } else if key.starts_with("urn:") {
                if let Value::Object(ext) = value {
                    let inner: Map<String, Value> = ext
                        .into_iter()
                        .filter(|(k, _)| {
                            !excluded
                                .iter()
                                .any(|w| w.sub.is_none() && matches_key(w, Some(&key), k))
                        })
                        .collect();
                    if !inner.is_empty() {
                        out.insert(key, Value::Object(inner));
                    }
                }
            } else if !excluded
                .iter()
                .any(|w| w.sub.is_none() && matches_key(w, None, &key))
            {
                out.insert(key, value);
            }
        }
        return Value::Object(out);
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({
            "schemas": [schema::USER, schema::ENTERPRISE],
            "id": "005A",
            "userName": "jane@acme.com",
            "name": {"givenName": "Jane", "familyName": "Doe"},
            "emails": [{"value": "jane@acme.com", "type": "work", "primary": true}],
            schema::ENTERPRISE: {"department": "Sales", "manager": {"value": "005B"}},
            "meta": {"resourceType": "User"},
        })
    }

    #[test]
    fn attributes_keep_only_what_is_asked_plus_id_and_schemas() {
        let projected = project(
            sample(),
            Some("userName,name.familyName,emails.value"),
            None,
        );
        assert_eq!(
            projected,
            json!({
                "schemas": [schema::USER, schema::ENTERPRISE],
                "id": "005A",
                "userName": "jane@acme.com",
                "name": {"familyName": "Doe"},
                "emails": [{"value": "jane@acme.com"}],
            })
        );
        let ext = project(
            sample(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"),
            None,
        );
        assert_eq!(ext[schema::ENTERPRISE], json!({"department": "Sales"}));
        assert!(ext.get("userName").is_none());
        let core_urn = project(
            sample(),
            Some("urn:ietf:params:scim:schemas:core:2.0:User:userName"),
            None,
        );
        assert_eq!(core_urn["userName"], "jane@acme.com");
    }

    #[test]
    fn excluded_attributes_drop_them() {
        let projected = project(sample(), None, Some("emails,department,meta"));
        assert!(projected.get("emails").is_none());
        assert!(projected.get("meta").is_none());
        assert_eq!(
            projected[schema::ENTERPRISE],
            json!({"manager": {"value": "005B"}})
        );
        assert_eq!(project(sample(), None, Some("id"))["id"], "005A");
    }

    #[test]
    fn the_version_follows_the_content() {
        let a = finish(json!({"id": "1", "x": 1}), "User", "l".into(), None);
        let b = finish(json!({"id": "1", "x": 2}), "User", "l".into(), None);
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
        let bare = user("https://p/scim/v2", &account(json!({"Title": ""})), &[]);
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
            &account(
                json!({"Department": "Sales", "ManagerId": "005B", "IsFrozen": true,
                            "ProfileId": "00e1", "UserRoleId": "00E1"}),
            ),
            &grants,
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
