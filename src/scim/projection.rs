//! `attributes` and `excludedAttributes` (RFC 7644 section 3.4.2.5): which of a rendered
//! resource's attributes an answer carries.

use serde_json::{Map, Value};

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

/// A list of attribute names as the query gives it, when it names any.
fn given(list: Option<&str>) -> Option<&str> {
    list.filter(|l| !l.trim().is_empty())
}

/// Whether [`project`] would change a resource: the query names attributes to keep or drop.
pub fn asked(attributes: Option<&str>, excluded: Option<&str>) -> bool {
    given(attributes).is_some() || given(excluded).is_some()
}

/// Applies `attributes` (keep only these, plus `id` and `schemas`) or `excludedAttributes`.
pub fn project(resource: Value, attributes: Option<&str>, excluded: Option<&str>) -> Value {
    let Value::Object(map) = resource else {
        return resource;
    };
    if let Some(list) = given(attributes) {
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
        return rebuild(
            map,
            |urn, ext| {
                let whole = wanted.iter().any(|w| {
                    w.schema
                        .as_ref()
                        .is_some_and(|s| format!("{s}:{}", w.name) == urn.to_ascii_lowercase())
                });
                if whole {
                    return ext;
                }
                ext.into_iter()
                    .filter_map(|(k, v)| keep(Some(urn), &k, v).map(|v| (k, v)))
                    .collect()
            },
            |key, value| keep(None, key, value),
        );
    }
    if let Some(list) = given(excluded) {
        let excluded = wanted(list);
        let dropped = |container: Option<&str>, key: &str| {
            excluded
                .iter()
                .any(|w| w.sub.is_none() && matches_key(w, container, key))
        };
        return rebuild(
            map,
            |urn, ext| {
                ext.into_iter()
                    .filter(|(k, _)| !dropped(Some(urn), k))
                    .collect()
            },
            |key, value| (!dropped(None, key)).then_some(value),
        );
    }
    Value::Object(map)
}

/// The resource's attributes again: `id` and `schemas` always, each extension with what
/// `extension` keeps of it (left out when that is nothing), any other as `core` decides.
fn rebuild(
    map: Map<String, Value>,
    extension: impl Fn(&str, Map<String, Value>) -> Map<String, Value>,
    core: impl Fn(&str, Value) -> Option<Value>,
) -> Value {
    let mut out = Map::new();
    for (key, value) in map {
        if key == "id" || key == "schemas" {
            out.insert(key, value);
        } else if key.starts_with("urn:") {
            if let Value::Object(ext) = value {
                let inner = extension(&key, ext);
                if !inner.is_empty() {
                    out.insert(key, Value::Object(inner));
                }
            }
        } else if let Some(kept) = core(&key, value) {
            out.insert(key, kept);
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scim::schema;

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
}
