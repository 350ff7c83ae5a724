//! A query's records as the reader takes them. Parsed straight from an answer's bytes, a page's
//! records share one list of field names (a record is its values by position), and the
//! `attributes` Salesforce adds to every record and related record (its type and URL, never
//! read) are dropped, at any depth. Parsing a page of 2,000 users this way takes a fraction of
//! parsing it into `serde_json::Value`, whose objects each build a hash map of owned names.
//!
//! A page is Salesforce's answer, but it is still input: one that names more fields than any
//! query does, or whose records each hold a few of many names (which would make each record as
//! large as all of them), is refused with what is wrong, not parsed into unbounded memory.

use std::collections::HashMap;
use std::fmt;
use std::ops::Index;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Number, Value};

/// What Salesforce adds to each record and related record: its type and URL.
const ATTRIBUTES: &str = "attributes";

/// The most distinct field names a page's records may have (Provost's queries name a few
/// dozen; Salesforce's SOQL allows a few hundred).
pub(crate) const MAX_FIELDS: usize = 1_000;

/// What [`Index`] gives for a field a record does not have.
static NULL: Value = Value::Null;

/// One record of a query's answer: its fields' values, by name.
#[derive(Clone)]
pub struct Record {
    fields: Arc<Fields>,
    /// By position in `fields`; `None` where this record did not have the field (a record of
    /// a page whose records differ in their fields, which Salesforce's do not).
    values: Vec<Option<Value>>,
}

impl Record {
    /// The value of `field`, as Salesforce sent it (`null` included); `None` when the record
    /// has no such field.
    pub fn get(&self, field: &str) -> Option<&Value> {
        let at = *self.fields.positions.get(field)?;
        self.values.get(at)?.as_ref()
    }

    /// The record's fields and values, in the order its page first named each field.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.fields
            .names
            .iter()
            .zip(&self.values)
            .filter_map(|(name, value)| Some((&**name, value.as_ref()?)))
    }

    /// The record as a JSON object.
    pub fn to_value(&self) -> Value {
        Value::Object(
            self.iter()
                .map(|(name, value)| (name.to_owned(), value.clone()))
                .collect(),
        )
    }

    /// A record from a JSON object (a test's record), its `attributes` dropped as a parsed
    /// page's are; `None` for anything but an object, or an object of more than
    /// [`MAX_FIELDS`] fields.
    pub fn from_value(value: Value) -> Option<Record> {
        let mut records = records_of_values(vec![value]).ok()?;
        records.pop()
    }
}

impl Index<&str> for Record {
    type Output = Value;

    /// The value of `field`, `null` when the record has no such field (as `Value`'s index).
    fn index(&self, field: &str) -> &Value {
        self.get(field).unwrap_or(&NULL)
    }
}

impl PartialEq for Record {
    fn eq(&self, other: &Record) -> bool {
        self.iter().count() == other.iter().count()
            && self
                .iter()
                .all(|(name, value)| other.get(name) == Some(value))
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (name, value) in self.iter() {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// A page of a query's answer, as Salesforce sends it: each part `None` when it is missing or
/// not of its type (the caller says which).
#[derive(Debug)]
pub(crate) struct WirePage {
    pub(crate) total_size: Option<u64>,
    pub(crate) done: Option<bool>,
    pub(crate) next_records_url: Option<Value>,
    pub(crate) records: Option<Vec<Record>>,
}

/// Parses a query's answer. The page's parts are checked by the caller; here, that it is JSON,
/// that each record is an object, and the bounds on fields ([`MAX_FIELDS`], [`Page::end`]).
pub(crate) fn parse_page(bytes: &[u8]) -> Result<WirePage, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let page = de::Deserializer::deserialize_map(&mut deserializer, PageVisitor)?;
    deserializer.end()?;
    Ok(page)
}

/// The records of a page inside a `composite` answer, already parsed as JSON: checked and
/// sharing their names as [`parse_page`]'s.
pub(crate) fn records_of_values(values: Vec<Value>) -> Result<Vec<Record>, String> {
    let mut page = Page::default();
    for value in values {
        let Value::Object(map) = value else {
            return Err("a record that is not an object".to_owned());
        };
        let (mut row, mut keys) = (page.begin(), 0);
        for (name, value) in map {
            if name == ATTRIBUTES {
                continue;
            }
            page.put(&mut row, &name, keys, without_attributes(value))?;
            keys += 1;
        }
        page.end(row, keys)?;
    }
    Ok(page.records())
}

/// The field names of a page's records, each once, in the order first named.
#[derive(Default)]
struct Fields {
    names: Vec<Box<str>>,
    positions: HashMap<Box<str>, usize>,
}

/// A page's records as they are parsed: the names so far, and each record's values.
#[derive(Default)]
struct Page {
    fields: Fields,
    rows: Vec<Vec<Option<Value>>>,
}

impl Page {
    /// A record's values to fill, as many reserved as the record before had.
    fn begin(&self) -> Vec<Option<Value>> {
        Vec::with_capacity(self.rows.last().map_or(0, Vec::len))
    }

    /// Puts `name`'s value in `row`; `expected` is where the field is when this record's fields
    /// come in the same order as the records' before (they do: a query names its fields once).
    fn put(
        &mut self,
        row: &mut Vec<Option<Value>>,
        name: &str,
        expected: usize,
        value: Value,
    ) -> Result<(), String> {
        let at = match self.fields.names.get(expected) {
            Some(known) if **known == *name => expected,
            _ => match self.fields.positions.get(name) {
                Some(at) => *at,
                None if self.fields.names.len() >= MAX_FIELDS => {
                    return Err(format!(
                        "records with more than {MAX_FIELDS} different fields"
                    ))
                }
                None => {
                    let at = self.fields.names.len();
                    self.fields.names.push(name.into());
                    self.fields.positions.insert(name.into(), at);
                    at
                }
            },
        };
        if row.len() <= at {
            row.resize(at + 1, None);
        }
        row[at] = Some(value);
        Ok(())
    }

    /// Ends a record of `keys` fields. Its values are by position among all the page's names,
    /// so a record of a few fields named late would take room for all of them: a record's
    /// room may be at most about twice its fields (Salesforce's records all have the same).
    fn end(&mut self, row: Vec<Option<Value>>, keys: usize) -> Result<(), String> {
        if row.len() > 2 * keys + 8 {
            return Err(format!(
                "a record of {keys} fields among {} others of the page's records",
                row.len()
            ));
        }
        self.rows.push(row);
        Ok(())
    }

    fn records(self) -> Vec<Record> {
        let fields = Arc::new(self.fields);
        self.rows
            .into_iter()
            .map(|values| Record {
                fields: fields.clone(),
                values,
            })
            .collect()
    }
}

/// A related record's value without its `attributes`, as a parsed page's.
fn without_attributes(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(name, _)| name != ATTRIBUTES)
                .map(|(name, value)| (name, without_attributes(value)))
                .collect(),
        ),
        Value::Array(values) => Value::Array(values.into_iter().map(without_attributes).collect()),
        other => other,
    }
}

struct PageVisitor;

impl<'de> Visitor<'de> for PageVisitor {
    type Value = WirePage;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a query page (an object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WirePage, A::Error> {
        let mut page = WirePage {
            total_size: None,
            done: None,
            next_records_url: None,
            records: None,
        };
        while let Some(key) = map.next_key::<Key>()? {
            match &*key.0 {
                "totalSize" => page.total_size = map.next_value::<Value>()?.as_u64(),
                "done" => page.done = map.next_value::<Value>()?.as_bool(),
                "nextRecordsUrl" => page.next_records_url = Some(map.next_value::<Value>()?),
                "records" => {
                    let mut records = Page::default();
                    let rows = map.next_value_seed(Rows(&mut records))?;
                    page.records = rows.then(|| records.records());
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(page)
    }
}

/// An object's key, borrowed from the answer where it has no escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Key<'de>, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(v.into()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(v.to_owned().into()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(v.into()))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// A page's `records` into its [`Page`]: `true` when they are an array of records, `false`
/// when they are not an array (the caller says the page has no records array).
struct Rows<'a>(&'a mut Page);

impl<'de> DeserializeSeed<'de> for Rows<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Rows<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element_seed(Row(&mut *self.0))?.is_some() {}
        Ok(true)
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

/// One record, into the [`Page`].
struct Row<'a>(&'a mut Page);

impl<'de> DeserializeSeed<'de> for Row<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Row<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record (an object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (mut row, mut keys) = (self.0.begin(), 0);
        while let Some(key) = map.next_key::<Key>()? {
            if key.0 == ATTRIBUTES {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let value = map.next_value_seed(Related)?;
            self.0
                .put(&mut row, &key.0, keys, value)
                .map_err(de::Error::custom)?;
            keys += 1;
        }
        self.0.end(row, keys).map_err(de::Error::custom)
    }
}

/// A value as `serde_json::Value` parses it, but with every object's `attributes` dropped
/// (`"Profile": {"attributes": ..., "Name": ...}`).
struct Related;

impl<'de> DeserializeSeed<'de> for Related {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Related {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(value) = seq.next_element_seed(Related)? {
            values.push(value);
        }
        Ok(Value::Array(values))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<Key>()? {
            if key.0 == ATTRIBUTES {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let value = map.next_value_seed(Related)?;
            object.insert(key.0.into_owned(), value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    /// What `serde_json` parses, without the `attributes` of records and related records: what
    /// a parsed page's records must equal.
    fn as_value_parses(bytes: &[u8]) -> Vec<Value> {
        let page: Value = serde_json::from_slice(bytes).unwrap();
        page["records"]
            .as_array()
            .unwrap()
            .iter()
            .cloned()
            .map(without_attributes)
            .collect()
    }

    #[test]
    fn a_page_parses_as_json_does_without_the_records_attributes() {
        let body = json!({
            "totalSize": 3,
            "done": false,
            "nextRecordsUrl": "/services/data/v60.0/query/01g-2000",
            "records": [
                {"attributes": {"type": "User", "url": "/services/data/v60.0/sobjects/User/005A"},
                 "Id": "005A", "IsActive": true, "Department": null,
                 "Profile": {"attributes": {"type": "Profile", "url": "/x"}, "UserLicenseId": "100A"}},
                {"attributes": {"type": "User", "url": "/services/data/v60.0/sobjects/User/005B"},
                 "Id": "005B", "IsActive": false, "Department": "Sales \"East\"",
                 "Profile": null},
                {"Id": "005C", "IsActive": true, "Department": "R\u{e9}seau", "Profile": {"UserLicenseId": null}}
            ]
        });
        let bytes = serde_json::to_vec(&body).unwrap();
        let page = parse_page(&bytes).unwrap();
        assert_eq!(page.total_size, Some(3));
        assert_eq!(page.done, Some(false));
        assert_eq!(
            page.next_records_url,
            Some(json!("/services/data/v60.0/query/01g-2000"))
        );
        let records = page.records.unwrap();
        let expected = as_value_parses(&bytes);
        assert_eq!(records.len(), 3);
        for (record, expected) in records.iter().zip(&expected) {
            assert_eq!(&record.to_value(), expected);
            assert_eq!(record, &Record::from_value(expected.clone()).unwrap());
        }
        let first = &records[0];
        assert_eq!(first["Id"], json!("005A"));
        assert_eq!(first["Profile"]["UserLicenseId"], json!("100A"));
        assert_eq!(first.get("Department"), Some(&Value::Null));
        assert_eq!(first.get("attributes"), None);
        assert_eq!(first["Profile"].get("attributes"), None);
        assert_eq!(first.get("Nope"), None);
        assert_eq!(first["Nope"], Value::Null);
        assert_eq!(records[1]["Department"], json!("Sales \"East\""));
        assert_eq!(records[2]["Department"], json!("R\u{e9}seau"));
        // Fields in the order sent, and the same as JSON serialises it.
        let names: Vec<&str> = first.iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["Id", "IsActive", "Department", "Profile"]);
        assert_eq!(serde_json::to_value(first).unwrap(), first.to_value());
    }

    #[test]
    fn records_with_other_fields_or_another_order_keep_each_its_own() {
        let bytes = br#"{"totalSize":3,"done":true,"records":[
            {"Id":"1","Name":"a"},
            {"Name":"b","Id":"2","Extra":7},
            {"Id":"3"}]}"#;
        let records = parse_page(bytes).unwrap().records.unwrap();
        assert_eq!(records[0].to_value(), json!({"Id": "1", "Name": "a"}));
        assert_eq!(records[0].get("Extra"), None);
        assert_eq!(
            records[1].to_value(),
            json!({"Id": "2", "Name": "b", "Extra": 7})
        );
        assert_eq!(records[2].to_value(), json!({"Id": "3"}));
        assert_eq!(records[2].get("Name"), None);
        // Escaped names are names like any other.
        let escaped = br#"{"totalSize":1,"done":true,"records":[{"I\u0064":"1","Na\"me":"x"}]}"#;
        let records = parse_page(escaped).unwrap().records.unwrap();
        assert_eq!(records[0]["Id"], json!("1"));
        assert_eq!(records[0]["Na\"me"], json!("x"));
    }

    #[test]
    fn what_is_not_a_page_is_told_apart_from_what_is_not_json() {
        // Well-formed JSON with the wrong parts: the caller names what is missing.
        let page = parse_page(br#"{"records": {"a": 1}, "totalSize": "3"}"#).unwrap();
        assert!(page.records.is_none() && page.total_size.is_none() && page.done.is_none());
        let page =
            parse_page(br#"{"records": null, "done": true, "other": [1, {"x": 2}]}"#).unwrap();
        assert!(page.records.is_none());
        assert_eq!(page.done, Some(true));
        // Not JSON, not an object, a record that is not one, trailing bytes: errors.
        for bad in [
            &b""[..],
            b"null",
            b"[1, 2]",
            b"{\"records\": [1]}",
            b"{\"records\": [null]}",
            b"{\"records\": [{\"Id\": }]}",
            b"{\"done\": true} x",
            b"{\"records\": [{\"Id\": \"1\"}",
        ] {
            assert!(parse_page(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_record_is_an_object_and_its_last_value_of_a_name_counts_as_in_json() {
        for value in [Value::Null, json!(3), json!("x"), json!([1])] {
            assert!(Record::from_value(value).is_none());
        }
        let bytes = br#"{"totalSize":1,"done":true,"records":[{"Id":"1","Name":"a","Id":"2"}]}"#;
        let records = parse_page(bytes).unwrap().records.unwrap();
        assert_eq!(records[0]["Id"], json!("2"));
        assert_eq!(records[0].to_value(), as_value_parses(bytes)[0]);
        assert_eq!(records[0].iter().count(), 2);
    }

    #[test]
    fn a_page_of_more_fields_than_any_query_or_of_sparse_records_is_refused() {
        let wide: Map<String, Value> = (0..=MAX_FIELDS)
            .map(|i| (format!("f{i}"), json!(i)))
            .collect();
        let body =
            serde_json::to_vec(&json!({"totalSize": 1, "done": true, "records": [wide]})).unwrap();
        let err = parse_page(&body).unwrap_err().to_string();
        assert!(err.contains("more than 1000 different fields"), "{err}");
        assert!(records_of_values(vec![Value::Object(wide)]).is_err());
        // As many names as allowed, then records of one name each, named last: each would take
        // room for all of them.
        let names: Map<String, Value> = (0..MAX_FIELDS)
            .map(|i| (format!("f{i}"), json!(i)))
            .collect();
        let last = format!("f{}", MAX_FIELDS - 1);
        let mut records = vec![Value::Object(names)];
        records.extend((0..1_000).map(|_| json!({ last.clone(): 0 })));
        let body =
            serde_json::to_vec(&json!({"totalSize": 1001, "done": true, "records": records}))
                .unwrap();
        let err = parse_page(&body).unwrap_err().to_string();
        assert!(err.contains("a record of 1 fields among 1000"), "{err}");
        assert!(records_of_values(records).is_err());
        // Records in another order than the first's, or of fewer fields, are records.
        let names: Map<String, Value> = (0..40).map(|i| (format!("f{i}"), json!(i))).collect();
        let reversed: Map<String, Value> =
            (0..40).rev().map(|i| (format!("f{i}"), json!(i))).collect();
        let body = serde_json::to_vec(&json!({"totalSize": 3, "done": true,
            "records": [names, reversed, {"f0": 1, "f3": 2}]}))
        .unwrap();
        let records = parse_page(&body).unwrap().records.unwrap();
        assert_eq!(records[1]["f39"], json!(39));
        assert_eq!(records[2]["f3"], json!(2));
    }

    #[test]
    fn a_composite_page_is_checked_as_a_page_read_by_itself() {
        let records = vec![
            json!({"attributes": {"type": "User"}, "Id": "1", "Profile": {"attributes": {}, "Name": "x"}}),
            json!({"Id": "2", "Profile": null}),
        ];
        let parsed = records_of_values(records.clone()).unwrap();
        let body =
            serde_json::to_vec(&json!({"totalSize": 2, "done": true, "records": records})).unwrap();
        assert_eq!(parsed, parse_page(&body).unwrap().records.unwrap());
        assert_eq!(parsed[0]["Profile"], json!({"Name": "x"}));
        assert_eq!(
            records_of_values(vec![json!({"Id": "1"}), json!(1)]).unwrap_err(),
            "a record that is not an object"
        );
    }

    /// A name from a small set, so that records share and reorder fields, and `attributes`
    /// comes up.
    fn any_name() -> impl Strategy<Value = &'static str> + Clone {
        prop::sample::select(vec![
            "Id",
            "Name",
            "attributes",
            "Profile",
            "é\"x",
            "IsActive",
        ])
    }

    fn object_of(pairs: Vec<(&str, Value)>) -> Value {
        Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    /// Any JSON value, nested a few levels, its objects' names from [`any_name`].
    fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|n| json!(n)),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((any_name(), inner), 0..5).prop_map(object_of),
            ]
        })
    }

    fn any_record() -> impl Strategy<Value = Value> {
        prop::collection::vec((any_name(), any_value()), 0..7).prop_map(object_of)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn any_page_of_records_parses_as_json_does(records in prop::collection::vec(any_record(), 0..6)) {
            let bytes = serde_json::to_vec(&json!({"totalSize": records.len(), "done": true, "records": records})).unwrap();
            let parsed = parse_page(&bytes).unwrap().records.unwrap();
            let expected = as_value_parses(&bytes);
            prop_assert_eq!(parsed.len(), expected.len());
            for (record, expected) in parsed.iter().zip(&expected) {
                // The same fields and values; the order may differ where records differ in it.
                prop_assert_eq!(record, &Record::from_value(expected.clone()).unwrap());
                for (name, value) in expected.as_object().unwrap() {
                    prop_assert_eq!(record.get(name), Some(value));
                }
            }
        }

        #[test]
        fn any_bytes_are_a_page_or_an_error_never_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_page(&bytes);
        }

        #[test]
        fn any_records_are_a_page_or_an_error_never_a_panic(value in any_value(), rows in prop::collection::vec(any_value(), 0..5)) {
            for records in [value, Value::Array(rows)] {
                let body = json!({"totalSize": 1, "done": true, "records": records});
                let parsed = parse_page(&serde_json::to_vec(&body).unwrap());
                // Either way, as a page inside a composite answer.
                let composite = records_of_values(body["records"].as_array().cloned().unwrap_or_default()).is_ok();
                if body["records"].is_array() {
                    prop_assert_eq!(parsed.is_ok(), composite);
                }
            }
        }
    }
}
