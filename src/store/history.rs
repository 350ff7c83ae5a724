//! What the change history records of a row that changed: the names of the fields that did.

use serde_json::{Map, Value};

/// The top-level fields whose values differ, attribute keys as `attributes.NAME`.
pub fn changed_fields(before: &Value, after: &Value) -> Vec<String> {
    let empty = Map::new();
    let old = before.as_object().unwrap_or(&empty);
    let new = after.as_object().unwrap_or(&empty);
    let mut fields = Vec::new();
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for key in keys {
        let (a, b) = (old.get(key), new.get(key));
        if a == b {
            continue;
        }
        match (a.and_then(Value::as_object), b.and_then(Value::as_object)) {
            (Some(a), Some(b)) if key == "attributes" => {
                let inner: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
                fields.extend(
                    inner
                        .into_iter()
                        .filter(|k| a.get(*k) != b.get(*k))
                        .map(|k| format!("attributes.{k}")),
                );
            }
            _ => fields.push(key.clone()),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn changed_fields_name_attributes_one_by_one() {
        let before =
            json!({"username": "a", "active": true, "attributes": {"Title": "x", "Dept": "y"}});
        let after = json!({"username": "a", "active": false, "attributes": {"Title": "z", "Dept": "y", "New": 1}});
        assert_eq!(
            changed_fields(&before, &after),
            vec!["active", "attributes.New", "attributes.Title"]
        );
    }
}
