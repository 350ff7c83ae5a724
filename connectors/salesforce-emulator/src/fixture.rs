//! Orgs loaded from a fixture file instead of generated:
//!
//! ```json
//! { "org_name": "Fixture Co", "integration_username": "admin@fixture.example.com",
//!   "features": { "permission_set_groups": false },
//!   "records": { "UserLicense": [ { "Id": "100...", "Name": "Salesforce", ... } ],
//!                "Profile": [ ... ], "User": [ ... ], ... } }
//! ```
//!
//! Records are stored as given (IDs kept; a record without `Id` gets one), typed by the
//! schema; every reference must name a record of the fixture. Business rules are not run:
//! a fixture states an org as it is, including states the API would not let a client create.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value as Json};

use crate::id::Id;
use crate::org::Org;
use crate::record::{parse_date, parse_datetime, Record, Value};
use crate::schema::{Feature, FieldType, ObjectType};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    org_name: String,
    #[serde(default)]
    integration_username: Option<String>,
    #[serde(default)]
    features: FixtureFeatures,
    records: BTreeMap<String, Vec<Map<String, Json>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureFeatures {
    #[serde(default = "yes")]
    permission_set_groups: bool,
    #[serde(default = "yes")]
    permission_set_licenses: bool,
}

impl Default for FixtureFeatures {
    fn default() -> Self {
        FixtureFeatures {
            permission_set_groups: true,
            permission_set_licenses: true,
        }
    }
}

fn yes() -> bool {
    true
}

/// A loaded fixture: the org and the user the connected app lets in.
pub struct LoadedFixture {
    pub org: Org,
    pub integration_username: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("the fixture is not valid JSON of the fixture form: {0}")]
    Format(#[from] serde_json::Error),
    #[error("{object} record {index}: {message}")]
    Record {
        object: String,
        index: usize,
        message: String,
    },
}

/// Loads an org from fixture JSON.
pub fn load(text: &str) -> Result<LoadedFixture, FixtureError> {
    let fixture: Fixture = serde_json::from_str(text)?;
    // Created long ago, so every change made while serving is newer.
    let mut org = Org::new(&fixture.org_name, 0, 1_577_836_800_000);
    org.set_feature(
        Feature::PermissionSetGroups,
        fixture.features.permission_set_groups,
    );
    org.set_feature(
        Feature::PermissionSetLicenses,
        fixture.features.permission_set_licenses,
    );
    let mut pending: Vec<(ObjectType, usize, Record)> = Vec::new();
    for (name, records) in &fixture.records {
        let object = ObjectType::from_name(name)
            .filter(|o| *o != ObjectType::Organization)
            .ok_or_else(|| FixtureError::Record {
                object: name.clone(),
                index: 0,
                message: format!("`{name}` is not an object the emulator serves"),
            })?;
        for (index, fields) in records.iter().enumerate() {
            let error = |message: String| FixtureError::Record {
                object: name.clone(),
                index,
                message,
            };
            let record = build(&mut org, object, fields).map_err(error)?;
            pending.push((object, index, record));
        }
    }
    // References are checked once every record exists, so order in the file does not matter.
    let known: std::collections::HashSet<Id> = pending.iter().map(|(_, _, r)| r.id()).collect();
    for (object, index, record) in &pending {
        for (i, field) in object.schema().fields.iter().enumerate() {
            let target = match field.field_type {
                FieldType::Reference(_) | FieldType::AnyId => record.get(i).as_id(),
                _ => None,
            };
            if let Some(target) = target {
                let matches_type = match field.field_type {
                    FieldType::Reference(expected) => target.prefix() == expected.key_prefix(),
                    _ => true,
                };
                if !known.contains(&target) || !matches_type {
                    return Err(FixtureError::Record {
                        object: object.name().to_owned(),
                        index: *index,
                        message: format!("{} refers to {target}, which is not a record of the right type in the fixture", field.name),
                    });
                }
            }
        }
    }
    for (object, _, record) in pending {
        org.insert(object, record);
    }
    Ok(LoadedFixture {
        org,
        integration_username: fixture.integration_username,
    })
}

fn build(org: &mut Org, object: ObjectType, fields: &Map<String, Json>) -> Result<Record, String> {
    let schema = object.schema();
    let mut values = vec![Value::Null; schema.fields.len()];
    for (i, field) in schema.fields.iter().enumerate() {
        if field.field_type == FieldType::Boolean {
            values[i] = Value::Bool(field.name == "IsActive");
        }
    }
    for (key, json) in fields {
        let index = schema
            .field_index(key)
            .ok_or_else(|| format!("`{key}` is not a field of {}", object.name()))?;
        let field = &schema.fields[index];
        let wrong = |expected: &str| format!("{}: expected {expected}, found {json}", field.name);
        values[index] = match (field.field_type, json) {
            (_, Json::Null) => Value::Null,
            (FieldType::Boolean, Json::Bool(b)) => Value::Bool(*b),
            (FieldType::Int, Json::Number(n)) => {
                Value::Int(n.as_i64().ok_or_else(|| wrong("an integer"))?)
            }
            (FieldType::DateTime, Json::String(s)) => {
                Value::DateTime(parse_datetime(s).ok_or_else(|| wrong("a date-time"))?)
            }
            (FieldType::Date, Json::String(s)) => {
                Value::Date(parse_date(s).ok_or_else(|| wrong("a date"))?)
            }
            (FieldType::String | FieldType::Email | FieldType::Picklist, Json::String(s)) => {
                Value::text(s.as_str())
            }
            (FieldType::Id | FieldType::Reference(_) | FieldType::AnyId, Json::String(s)) => {
                Value::Id(Id::parse(s).ok_or_else(|| wrong("a 15- or 18-character Salesforce ID"))?)
            }
            (FieldType::Boolean, _) => return Err(wrong("true or false")),
            (FieldType::Int, _) => return Err(wrong("an integer")),
            _ => return Err(wrong("a string")),
        };
    }
    match values[0].as_id() {
        Some(id) if id.prefix() != object.key_prefix() => {
            return Err(format!(
                "Id {id} does not have {}'s key prefix {}",
                object.name(),
                object.key_prefix()
            ))
        }
        Some(_) => {}
        None => values[0] = Value::Id(org.next_id(object)),
    }
    for stamp in ["CreatedDate", "LastModifiedDate", "SystemModstamp"] {
        if let Some(i) = schema.field_index(stamp) {
            if values[i].is_null() {
                values[i] = Value::DateTime(1_577_836_800_000);
            }
        }
    }
    if object == ObjectType::User {
        let name = |f: &str| {
            values[schema.field_index(f).expect("known field")]
                .as_text()
                .map(str::to_owned)
        };
        let full = [name("FirstName"), name("LastName")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        let index = schema.field_index("Name").expect("known field");
        if values[index].is_null() {
            values[index] = Value::text(full);
        }
    }
    Ok(Record { values })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = r#"{
        "org_name": "Fixture Co",
        "integration_username": "admin@fixture.example.com",
        "features": { "permission_set_groups": false },
        "records": {
            "User": [ { "Id": "005000000000001", "Username": "admin@fixture.example.com", "LastName": "Admin",
                        "Email": "admin@fixture.example.com", "Alias": "admin", "IsActive": true,
                        "UserType": "Standard", "ProfileId": "00e000000000001" } ],
            "Profile": [ { "Id": "00e000000000001", "Name": "System Administrator", "UserLicenseId": "100000000000001",
                           "UserType": "Standard", "PermissionsModifyAllData": true } ],
            "UserLicense": [ { "Id": "100000000000001", "Name": "Salesforce", "TotalLicenses": 10, "UsedLicenses": 1 } ]
        }
    }"#;

    #[test]
    fn a_fixture_loads_with_its_ids_features_and_names() {
        let loaded = load(FIXTURE).unwrap();
        let org = loaded.org;
        assert_eq!(
            loaded.integration_username.as_deref(),
            Some("admin@fixture.example.com")
        );
        let admin = org
            .user_by_username("ADMIN@fixture.example.com")
            .expect("indexed case-insensitively");
        assert_eq!(admin.as_str(), "005000000000001AAA");
        assert!(!org.has_object(ObjectType::PermissionSetGroup));
        let record = org.get(ObjectType::User, admin).unwrap();
        assert_eq!(
            record
                .get(ObjectType::User.schema().field_index("Name").unwrap())
                .as_text(),
            Some("Admin")
        );
    }

    #[test]
    fn bad_fixtures_name_the_record_and_field() {
        let dangling = FIXTURE.replace(
            "\"UserLicenseId\": \"100000000000001\"",
            "\"UserLicenseId\": \"100000000000009\"",
        );
        let err = load(&dangling).err().unwrap().to_string();
        assert!(
            err.contains("Profile record 0") && err.contains("UserLicenseId"),
            "{err}"
        );
        let typo = FIXTURE.replace("\"Alias\"", "\"Alais\"");
        let err = load(&typo).err().unwrap().to_string();
        assert!(err.contains("`Alais` is not a field of User"), "{err}");
        let wrong_type = FIXTURE.replace("\"TotalLicenses\": 10", "\"TotalLicenses\": \"ten\"");
        assert!(load(&wrong_type)
            .err()
            .unwrap()
            .to_string()
            .contains("TotalLicenses: expected an integer"));
    }
}
