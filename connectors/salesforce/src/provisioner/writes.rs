//! From a [`Change`] to the one Salesforce record write that makes it: which object, which
//! record, which field values. Pure: plans show these writes before anything is connected.

use provost_connector::model::EntitlementKind;
use provost_connector::provisioner::{AccountField, Change, NewAccount};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// How a write changes a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Create,
    Update,
    Delete,
}

/// The one Salesforce record write a change comes to, as shown in plans and kept with the
/// request (the JSON form is the stored form).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Write {
    pub method: Method,
    pub sobject: String,
    /// The record's id (update, delete); `None` for a create, or for a `UserLogin` update,
    /// whose id is looked up by `login_of` when the write is made.
    #[serde(default)]
    pub id: Option<String>,
    /// Field values sent (create, update).
    #[serde(default)]
    pub fields: Map<String, Value>,
    /// The user whose `UserLogin` record is updated (freeze, unfreeze).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_of: Option<String>,
}

impl Write {
    fn update(sobject: &str, id: &str, fields: Map<String, Value>) -> Write {
        Write {
            method: Method::Update,
            sobject: sobject.into(),
            id: Some(id.to_owned()),
            fields,
            login_of: None,
        }
    }
}

/// The values Salesforce requires of a new user that the request does not give: the org's
/// `user_defaults`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDefaults {
    pub time_zone: String,
    pub locale: String,
    pub language: String,
    pub email_encoding: String,
}

pub(super) fn fields<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

/// The `User` field a model field is.
pub(super) fn user_field(field: AccountField) -> &'static str {
    match field {
        AccountField::Username => "Username",
        AccountField::Email => "Email",
        AccountField::FirstName => "FirstName",
        AccountField::LastName => "LastName",
        AccountField::Title => "Title",
        AccountField::Department => "Department",
        AccountField::FederationId => "FederationIdentifier",
    }
}

/// The write that makes `change`.
pub fn prepare(change: &Change, defaults: &UserDefaults) -> Write {
    match change {
        Change::Grant {
            account,
            entitlement,
            kind,
            until,
        } => {
            let (sobject, mut record) = match kind {
                EntitlementKind::PublicGroup => (
                    "GroupMember",
                    fields([
                        ("GroupId", json!(entitlement)),
                        ("UserOrGroupId", json!(account)),
                    ]),
                ),
                EntitlementKind::PermissionSetGroup => (
                    "PermissionSetAssignment",
                    fields([
                        ("AssigneeId", json!(account)),
                        ("PermissionSetGroupId", json!(entitlement)),
                    ]),
                ),
                _ => (
                    "PermissionSetAssignment",
                    fields([
                        ("AssigneeId", json!(account)),
                        ("PermissionSetId", json!(entitlement)),
                    ]),
                ),
            };
            // Salesforce ends an assignment by itself too; Provost revokes it then regardless.
            if let (Some(until), "PermissionSetAssignment") = (until, sobject) {
                record.insert("ExpirationDate".into(), json!(until));
            }
            Write {
                method: Method::Create,
                sobject: sobject.into(),
                id: None,
                fields: record,
                login_of: None,
            }
        }
        Change::Revoke { grant, kind, .. } => Write {
            method: Method::Delete,
            sobject: match kind {
                EntitlementKind::PublicGroup => "GroupMember",
                _ => "PermissionSetAssignment",
            }
            .into(),
            id: Some(grant.clone()),
            fields: Map::new(),
            login_of: None,
        },
        Change::SetProfile { account, profile } => {
            Write::update("User", account, fields([("ProfileId", json!(profile))]))
        }
        Change::SetRole { account, role } => {
            Write::update("User", account, fields([("UserRoleId", json!(role))]))
        }
        Change::SetActive { account, active } => {
            Write::update("User", account, fields([("IsActive", json!(active))]))
        }
        Change::SetFrozen { account, frozen } => Write {
            method: Method::Update,
            sobject: "UserLogin".into(),
            id: None,
            fields: fields([("IsFrozen", json!(frozen))]),
            login_of: Some(account.clone()),
        },
        Change::UpdateAccount { account, fields } => Write::update(
            "User",
            account,
            fields
                .iter()
                .map(|(field, value)| (user_field(*field).to_owned(), json!(value)))
                .collect(),
        ),
        Change::CreateAccount { account, profile } => Write {
            method: Method::Create,
            sobject: "User".into(),
            id: None,
            fields: new_user(account, profile, defaults),
            login_of: None,
        },
    }
}

/// A new user's fields: what the request gave, an alias made from the names when it gave
/// none, and the org's defaults for what Salesforce requires besides.
fn new_user(new: &NewAccount, profile: &str, defaults: &UserDefaults) -> Map<String, Value> {
    let alias = new.alias.clone().unwrap_or_else(|| {
        let first = new
            .first_name
            .as_deref()
            .and_then(|f| f.chars().next())
            .map(String::from)
            .unwrap_or_default();
        first
            .chars()
            .chain(new.last_name.chars())
            .filter(char::is_ascii_alphanumeric)
            .take(8)
            .collect::<String>()
            .to_lowercase()
    });
    let mut record = fields([
        ("Username", json!(new.username.trim())),
        ("Email", json!(new.email.trim())),
        ("LastName", json!(new.last_name.trim())),
        ("Alias", json!(alias)),
        ("ProfileId", json!(profile)),
        ("IsActive", json!(true)),
        ("TimeZoneSidKey", json!(defaults.time_zone)),
        ("LocaleSidKey", json!(defaults.locale)),
        ("LanguageLocaleKey", json!(defaults.language)),
        ("EmailEncodingKey", json!(defaults.email_encoding)),
    ]);
    for (field, value) in [
        ("FirstName", &new.first_name),
        ("FederationIdentifier", &new.federation_id),
        ("Department", &new.department),
        ("Title", &new.title),
    ] {
        if let Some(value) = value {
            record.insert(field.into(), json!(value));
        }
    }
    record
}

/// The delete of the record a create made (a time-bound grant at its end).
pub fn undo(write: &Write, record: &str) -> Option<Write> {
    (write.method == Method::Create).then(|| Write {
        method: Method::Delete,
        sobject: write.sobject.clone(),
        id: Some(record.to_owned()),
        fields: Map::new(),
        login_of: None,
    })
}
