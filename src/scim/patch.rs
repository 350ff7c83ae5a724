//! PATCH (RFC 7644 section 3.5.2) applied to a resource's JSON: `add`, `replace` and `remove`,
//! with a path (`attr`, `attr.sub`, `urn:...:attr`, `attr[filter]`, `attr[filter].sub`) or
//! without one (a value object whose keys may themselves be paths, as Entra ID sends them).
//! The patched document is then compared with the current one, like a PUT, to find the
//! Salesforce writes; nothing here writes anything.
//!
//! Operation names are case-insensitive (Entra ID sends `Replace`).

use serde_json::{Map, Value};

use super::error::ScimError;
use super::filter::{self, AttrPath, Filter, Op, PatchPath};
use super::schema::{self, Attr, Mutability, ResourceType};
use super::PATCH_OP;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Add,
    Replace,
    Remove,
}

/// Applies a PatchOp request body to `doc` (the resource as served).
pub fn apply(
    resource: &'static ResourceType,
    doc: &mut Value,
    body: &Value,
) -> Result<(), ScimError> {
    let schemas_ok = body["schemas"].as_array().is_some_and(|s| {
        s.iter()
            .any(|v| v.as_str().is_some_and(|v| v.eq_ignore_ascii_case(PATCH_OP)))
    });
    if !schemas_ok {
        return Err(ScimError::invalid_syntax(format!(
            "a PATCH body is {{\"schemas\": [\"{PATCH_OP}\"], \"Operations\": [...]}}"
        )));
    }
    let operations = body
        .get("Operations")
        .or_else(|| body.get("operations"))
        .and_then(Value::as_array)
        .filter(|ops| !ops.is_empty())
        .ok_or_else(|| ScimError::invalid_syntax("`Operations` must be a non-empty array"))?;
    for (i, op) in operations.iter().enumerate() {
        let name = op["op"].as_str().unwrap_or_default();
        let kind = match name.to_ascii_lowercase().as_str() {
            "add" => Kind::Add,
            "replace" => Kind::Replace,
            "remove" => Kind::Remove,
            _ => {
                return Err(ScimError::invalid_syntax(format!(
                    "Operations[{i}].op is `{name}`: use add, replace or remove"
                )))
            }
        };
        let value = op.get("value");
        match op.get("path").and_then(Value::as_str).map(str::trim) {
            Some(path) if !path.is_empty() => {
                let path = filter::parse_path(path)?;
                operate(resource, doc, kind, &path, value)?;
            }
            _ => {
                if kind == Kind::Remove {
                    return Err(ScimError::no_target(format!(
                        "Operations[{i}]: remove needs a `path`"
                    )));
                }
                let Some(Value::Object(values)) = value else {
                    return Err(ScimError::invalid_value(format!(
                        "Operations[{i}]: without a `path`, `value` must be an object of attributes"
                    )));
                };
                for (key, value) in values {
                    if key.eq_ignore_ascii_case("schemas") {
                        continue;
                    }
                    let is_extension = schema::schema(key).is_some()
                        && resource
                            .extensions
                            .iter()
                            .any(|e| e.eq_ignore_ascii_case(key));
                    if is_extension {
                        // {"urn:...:enterprise:2.0:User": {"department": "x"}}
                        let Value::Object(inner) = value else {
                            return Err(ScimError::invalid_value(format!(
                                "`{key}` must be an object of that extension's attributes"
                            )));
                        };
                        for (name, value) in inner {
                            let path = filter::parse_path(&format!("{key}:{name}"))?;
                            operate(resource, doc, kind, &path, Some(value))?;
                        }
                        continue;
                    }
                    let path = filter::parse_path(key)?;
                    operate(resource, doc, kind, &path, Some(value))?;
                }
            }
        }
    }
    Ok(())
}

/// The object holding an attribute: the document itself for the core schema, else the
/// extension's object (created when missing).
fn container<'d>(
    resource: &'static ResourceType,
    doc: &'d mut Value,
    path: &AttrPath,
) -> Result<(&'d mut Map<String, Value>, &'static Attr), ScimError> {
    let to_path = |e: ScimError| ScimError::invalid_path(e.detail);
    let resolved = schema::resolve(resource, path).map_err(to_path)?;
    let owner = match &path.schema {
        Some(urn) => schema::schema(urn).map(|s| s.id),
        None => std::iter::once(resource.schema)
            .chain(resource.extensions.iter().copied())
            .find(|id| {
                schema::schema(id).is_some_and(|s| {
                    s.attrs
                        .iter()
                        .any(|a| a.name.eq_ignore_ascii_case(&path.name))
                })
            }),
    }
    .unwrap_or(resource.schema);
    let root = doc
        .as_object_mut()
        .ok_or_else(|| ScimError::invalid_value("the resource is not an object"))?;
    let map = if owner == resource.schema {
        root
    } else {
        root.entry(owner.to_owned())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .ok_or_else(|| ScimError::invalid_value(format!("`{owner}` is not an object")))?
    };
    Ok((map, resolved.attr))
}

/// The key under which `name` is stored in `map` (attribute names are case-insensitive).
fn key_of(map: &Map<String, Value>, name: &str) -> String {
    map.keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_owned())
}

fn writable(attr: &Attr, sub: Option<&Attr>) -> Result<(), ScimError> {
    let target = sub.unwrap_or(attr);
    if attr.mutability == Mutability::ReadOnly || target.mutability == Mutability::ReadOnly {
        return Err(ScimError::mutability(format!(
            "`{}{}` is read-only{}",
            attr.name,
            sub.map(|s| format!(".{}", s.name)).unwrap_or_default(),
            if attr.name == "entitlements" || attr.name == "groups" || attr.name == "roles" {
                ": grant and revoke by adding and removing the user in the Group's members"
            } else {
                ""
            }
        )));
    }
    Ok(())
}

fn operate(
    resource: &'static ResourceType,
    doc: &mut Value,
    kind: Kind,
    path: &PatchPath,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let (map, attr) = container(resource, doc, &path.attr)?;
    let sub_name = path.attr.sub.as_deref().or(path.sub.as_deref());
    let sub = match sub_name {
        Some(name) => Some(
            attr.sub
                .iter()
                .find(|s| s.name.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    ScimError::invalid_path(format!(
                        "`{}` has no sub-attribute `{name}`",
                        attr.name
                    ))
                })?,
        ),
        None => None,
    };
    writable(attr, sub)?;
    let key = key_of(map, attr.name);
    let needs_value = || {
        value.cloned().ok_or_else(|| {
            ScimError::invalid_value(format!("{:?} of `{}` needs a `value`", kind, attr.name))
        })
    };
    match (&path.filter, sub) {
        // attr[filter] or attr[filter].sub: act on the matching values.
        (Some(filter), _) => {
            let items = map.get_mut(&key).and_then(Value::as_array_mut);
            let Some(items) = items else {
                return if kind == Kind::Remove {
                    Ok(())
                } else {
                    Err(ScimError::no_target(format!(
                        "`{}` has no values to match",
                        attr.name
                    )))
                };
            };
            let mut matched = 0;
            let mut kept = Vec::new();
            for mut item in std::mem::take(items) {
                if !matches(attr, &item, filter)? {
                    kept.push(item);
                    continue;
                }
                matched += 1;
                match (kind, sub) {
                    (Kind::Remove, None) => {}
                    (Kind::Remove, Some(sub)) => {
                        if let Some(obj) = item.as_object_mut() {
                            let k = key_of(obj, sub.name);
                            obj.remove(&k);
                        }
                        kept.push(item);
                    }
                    (_, Some(sub)) => {
                        if let Some(obj) = item.as_object_mut() {
                            let k = key_of(obj, sub.name);
                            obj.insert(k, needs_value()?);
                        }
                        kept.push(item);
                    }
                    (_, None) => {
                        let mut replacement = needs_value()?;
                        if let (Some(new), Some(old)) =
                            (replacement.as_object_mut(), item.as_object())
                        {
                            if kind == Kind::Add {
                                for (k, v) in old {
                                    new.entry(k.clone()).or_insert_with(|| v.clone());
                                }
                            }
                        }
                        kept.push(replacement);
                    }
                }
            }
            *items = kept;
            if matched == 0 && kind != Kind::Remove {
                return Err(ScimError::no_target(format!(
                    "no value of `{}` matches the path's filter",
                    attr.name
                )));
            }
        }
        // attr.sub of a single complex attribute (name.givenName) or of every value.
        (None, Some(sub)) => {
            let entry = map.entry(key).or_insert_with(|| {
                if attr.multi {
                    Value::Array(Vec::new())
                } else {
                    Value::Object(Map::new())
                }
            });
            let set = |obj: &mut Map<String, Value>| -> Result<(), ScimError> {
                let k = key_of(obj, sub.name);
                if kind == Kind::Remove {
                    obj.remove(&k);
                } else {
                    obj.insert(k, needs_value()?);
                }
                Ok(())
            };
            match entry {
                Value::Array(items) => {
                    if items.is_empty() && kind != Kind::Remove {
                        items.push(Value::Object(Map::new()));
                    }
                    for item in items.iter_mut() {
                        if let Some(obj) = item.as_object_mut() {
                            set(obj)?;
                        }
                    }
                }
                Value::Object(obj) => set(obj)?,
                other => {
                    let mut obj = Map::new();
                    set(&mut obj)?;
                    *other = Value::Object(obj);
                }
            }
        }
        // The attribute itself.
        (None, None) => match kind {
            Kind::Remove => {
                map.remove(&key);
            }
            Kind::Replace => {
                let value = needs_value()?;
                if attr.multi || !attr.sub.is_empty() && !value.is_object() {
                    map.insert(key, as_array_if(attr, value));
                } else if let (Some(new), true) = (value.as_object(), !attr.sub.is_empty()) {
                    // Replacing a complex attribute replaces the sub-attributes given.
                    let obj = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
                    if let Some(obj) = obj.as_object_mut() {
                        for (k, v) in new {
                            let k2 = key_of(obj, k);
                            obj.insert(k2, v.clone());
                        }
                    }
                } else {
                    map.insert(key, value);
                }
            }
            Kind::Add => {
                let value = needs_value()?;
                if attr.multi {
                    let added = as_array_if(attr, value);
                    let items = map.entry(key).or_insert_with(|| Value::Array(Vec::new()));
                    if !items.is_array() {
                        *items = Value::Array(Vec::new());
                    }
                    let items = items.as_array_mut().expect("made an array");
                    for new in added.as_array().into_iter().flatten() {
                        let same = items.iter().any(|old| {
                            old == new
                                || (new.get("value").is_some()
                                    && old.get("value") == new.get("value"))
                        });
                        if !same {
                            items.push(new.clone());
                        }
                    }
                } else if let (Some(new), false) = (value.as_object(), attr.sub.is_empty()) {
                    let obj = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
                    if let Some(obj) = obj.as_object_mut() {
                        for (k, v) in new {
                            let k2 = key_of(obj, k);
                            obj.insert(k2, v.clone());
                        }
                    }
                } else {
                    map.insert(key, value);
                }
            }
        },
    }
    Ok(())
}

fn as_array_if(attr: &Attr, value: Value) -> Value {
    match value {
        Value::Array(_) => value,
        other if attr.multi => Value::Array(vec![other]),
        other => other,
    }
}

/// Whether a value of the complex attribute `parent` matches a `[...]` filter.
fn matches(parent: &'static Attr, item: &Value, filter: &Filter) -> Result<bool, ScimError> {
    Ok(match filter {
        Filter::And(a, b) => matches(parent, item, a)? && matches(parent, item, b)?,
        Filter::Or(a, b) => matches(parent, item, a)? || matches(parent, item, b)?,
        Filter::Not(a) => !matches(parent, item, a)?,
        Filter::ValuePath { .. } => {
            return Err(ScimError::invalid_path("value filters do not nest"))
        }
        Filter::Present(path) => {
            let sub =
                schema::resolve_sub(parent, path).map_err(|e| ScimError::invalid_path(e.detail))?;
            field(item, sub.name).is_some_and(|v| !v.is_null() && v != "")
        }
        Filter::Compare { path, op, value } => {
            let sub =
                schema::resolve_sub(parent, path).map_err(|e| ScimError::invalid_path(e.detail))?;
            let Some(actual) = field(item, sub.name) else {
                return Ok(*op == Op::Ne);
            };
            compare(actual, *op, value, sub.case_exact)
        }
    })
}

fn field<'v>(item: &'v Value, name: &str) -> Option<&'v Value> {
    item.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn compare(actual: &Value, op: Op, wanted: &Value, case_exact: bool) -> bool {
    match (actual, wanted) {
        (Value::String(a), Value::String(b)) => {
            let (a, b) = if case_exact {
                (a.clone(), b.clone())
            } else {
                (a.to_lowercase(), b.to_lowercase())
            };
            match op {
                Op::Eq => a == b,
                Op::Ne => a != b,
                Op::Co => a.contains(&b),
                Op::Sw => a.starts_with(&b),
                Op::Ew => a.ends_with(&b),
                Op::Gt => a > b,
                Op::Ge => a >= b,
                Op::Lt => a < b,
                Op::Le => a <= b,
            }
        }
        (Value::Bool(a), b) => {
            let b = match b {
                Value::Bool(b) => *b,
                Value::String(s) => s.eq_ignore_ascii_case("true"),
                _ => return false,
            };
            match op {
                Op::Eq => *a == b,
                Op::Ne => *a != b,
                _ => false,
            }
        }
        (a, b) => match op {
            Op::Eq => a == b,
            Op::Ne => a != b,
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn users() -> &'static ResourceType {
        schema::resource_type("User").unwrap()
    }

    fn groups() -> &'static ResourceType {
        schema::resource_type("Group").unwrap()
    }

    fn patch(ops: Value) -> Value {
        json!({"schemas": [PATCH_OP], "Operations": ops})
    }

    #[test]
    fn entra_style_replace_without_path_with_dotted_and_urn_keys() {
        let mut doc = json!({"userName": "a@x.com", "active": true, "name": {"givenName": "A"}});
        apply(
            users(),
            &mut doc,
            &patch(json!([{"op": "Replace", "value": {
                "active": "False",
                "name.familyName": "Zed",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Ops",
            }}])),
        )
        .unwrap();
        assert_eq!(doc["active"], "False");
        assert_eq!(doc["name"], json!({"givenName": "A", "familyName": "Zed"}));
        assert_eq!(doc[schema::ENTERPRISE]["department"], "Ops");
    }

    #[test]
    fn members_add_remove_by_filter_and_replace() {
        let mut doc = json!({"displayName": "G", "members": [{"value": "1"}, {"value": "2"}]});
        apply(
            groups(),
            &mut doc,
            &patch(json!([
                {"op": "add", "path": "members", "value": [{"value": "3"}, {"value": "1"}]},
                {"op": "remove", "path": "members[value eq \"2\"]"},
            ])),
        )
        .unwrap();
        assert_eq!(doc["members"], json!([{"value": "1"}, {"value": "3"}]));
        apply(
            groups(),
            &mut doc,
            &patch(json!([{"op": "replace", "path": "members", "value": [{"value": "9"}]}])),
        )
        .unwrap();
        assert_eq!(doc["members"], json!([{"value": "9"}]));
        apply(
            groups(),
            &mut doc,
            &patch(json!([{"op": "remove", "path": "members"}])),
        )
        .unwrap();
        assert!(doc.get("members").is_none());
    }

    #[test]
    fn errors_name_the_scim_type() {
        let mut doc = json!({"displayName": "G"});
        let cases = [
            (
                json!([{"op": "replace", "path": "displayName", "value": "H"}]),
                "mutability",
            ),
            (json!([{"op": "remove"}]), "noTarget"),
            (json!([{"op": "move", "path": "members"}]), "invalidSyntax"),
            (
                json!([{"op": "add", "path": "members[value eq"}]),
                "invalidPath",
            ),
            (
                json!([{"op": "add", "path": "nickName", "value": "x"}]),
                "invalidPath",
            ),
            (
                json!([{"op": "replace", "path": "members[value eq \"404\"].value", "value": "x"}]),
                "noTarget",
            ),
        ];
        for (ops, scim_type) in cases {
            let err = apply(groups(), &mut doc, &patch(ops.clone())).unwrap_err();
            assert_eq!(err.scim_type, Some(scim_type), "{ops}: {}", err.detail);
        }
        let err = apply(groups(), &mut doc, &json!({"Operations": []})).unwrap_err();
        assert_eq!(err.scim_type, Some("invalidSyntax"));
    }

    #[test]
    fn value_filters_with_sub_attributes() {
        let mut doc = json!({"userName": "a@x.com", "emails": [{"value": "a@x.com", "type": "work", "primary": true}]});
        apply(
            users(),
            &mut doc,
            &patch(json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "b@x.com"}])),
        )
        .unwrap();
        assert_eq!(doc["emails"][0]["value"], "b@x.com");
    }
}
