//! The calls provisioning makes: record collections (`composite/sobjects`, up to 200 records a
//! call, one result per record) and the queries that reconcile a write whose effect is already
//! there (a duplicate assignment after a crash) or that find a user's `UserLogin`.

use std::collections::HashMap;

use reqwest::Method as HttpMethod;
use serde_json::{json, Map, Value};

use super::writes::Method;
use crate::soql::{Condition, Literal, Query};
use crate::{SalesforceClient, SalesforceError};

/// Records a collection call takes at most.
pub const COLLECTION_SIZE: usize = 200;

/// One record of a collection write.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    pub id: Option<&'a str>,
    pub fields: &'a Map<String, Value>,
}

/// Salesforce's answer for one record.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordResult {
    pub success: bool,
    pub id: Option<String>,
    /// The first error's `statusCode`.
    pub code: Option<String>,
    pub message: Option<String>,
    /// The answer as Salesforce gave it, kept in the request's result and the audit log.
    pub raw: Value,
}

/// The static name of an object the executor writes (the SOQL builder takes only those).
pub fn object_name(sobject: &str) -> Option<&'static str> {
    [
        "PermissionSetAssignment",
        "GroupMember",
        "User",
        "UserLogin",
    ]
    .into_iter()
    .find(|name| *name == sobject)
}

fn field_name(field: &str) -> Option<&'static str> {
    [
        "AssigneeId",
        "PermissionSetId",
        "PermissionSetGroupId",
        "GroupId",
        "UserOrGroupId",
        "Username",
    ]
    .into_iter()
    .find(|name| *name == field)
}

/// Writes `records` of `sobject` in one call (at most [`COLLECTION_SIZE`]), without
/// all-or-none: each record succeeds or fails on its own.
pub async fn write_collection(
    client: &SalesforceClient,
    method: Method,
    sobject: &str,
    records: &[Record<'_>],
) -> Result<Vec<RecordResult>, SalesforceError> {
    assert!(
        records.len() <= COLLECTION_SIZE,
        "a collection holds at most 200 records"
    );
    let path = client.data_path("composite/sobjects");
    let (status, body) = match method {
        Method::Create | Method::Update => {
            let body = json!({
                "allOrNone": false,
                "records": records.iter().map(|record| {
                    let mut fields = Map::new();
                    fields.insert("attributes".into(), json!({ "type": sobject }));
                    if let Some(id) = record.id {
                        fields.insert("Id".into(), json!(id));
                    }
                    fields.extend(record.fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                    Value::Object(fields)
                }).collect::<Vec<_>>(),
            });
            let (verb, idempotent) = if method == Method::Create {
                // A create is not repeated after a cut connection: the retry would make a
                // second record where Salesforce allows it. The executor reconciles instead.
                (HttpMethod::POST, false)
            } else {
                (HttpMethod::PATCH, true)
            };
            client.send_json(verb, &path, &body, idempotent).await?
        }
        Method::Delete => {
            let ids: Vec<&str> = records.iter().filter_map(|r| r.id).collect();
            client
                .delete_json(&format!("{path}?ids={}&allOrNone=false", ids.join(",")))
                .await?
        }
    };
    let results = body
        .as_array()
        .filter(|results| results.len() == records.len());
    let Some(results) = results else {
        return Err(SalesforceError::UnexpectedBody {
            status,
            detail: format!(
                "a collection of {} records answered with something else than one result per record",
                records.len()
            ),
        });
    };
    Ok(results
        .iter()
        .map(|raw| {
            let error = &raw["errors"][0];
            RecordResult {
                success: raw["success"] == Value::Bool(true),
                id: raw["id"].as_str().map(str::to_owned),
                code: error["statusCode"].as_str().map(str::to_owned),
                message: error["message"].as_str().map(str::to_owned),
                raw: raw.clone(),
            }
        })
        .collect())
}

async fn all_records(
    client: &SalesforceClient,
    query: &Query,
) -> Result<Vec<Value>, SalesforceError> {
    let mut page = client.query(query).await?;
    let mut records = std::mem::take(&mut page.records);
    while let Some(next) = page.next_records_url.take() {
        page = client.query_more(&next).await?;
        records.append(&mut page.records);
    }
    Ok(records.iter().map(|record| record.to_value()).collect())
}

/// The fields a `create_user` may write, read back to tell whether an existing user is the one
/// an earlier attempt of the request created.
pub const USER_FIELDS: [&str; 14] = [
    "Username",
    "Email",
    "LastName",
    "FirstName",
    "Alias",
    "ProfileId",
    "IsActive",
    "TimeZoneSidKey",
    "LocaleSidKey",
    "LanguageLocaleKey",
    "EmailEncodingKey",
    "FederationIdentifier",
    "Department",
    "Title",
];

/// The users holding these usernames (Salesforce matches usernames case-insensitively), each
/// with its id, `CreatedDate` and [`USER_FIELDS`].
pub async fn users_named(
    client: &SalesforceClient,
    usernames: &[String],
) -> Result<Vec<Value>, SalesforceError> {
    if usernames.is_empty() {
        return Ok(Vec::new());
    }
    let mut select = vec!["Id", "CreatedDate"];
    select.extend(USER_FIELDS);
    let query = Query::select("User", &select).filter(Condition::is_in(
        "Username",
        usernames.iter().cloned().map(Literal::Str),
    ));
    all_records(client, &query).await
}

/// The ids of records of `sobject` that already hold each of `keys` (field values that make a
/// record unique: assignee and set, group and member, username); `None` where none does.
pub async fn find_existing(
    client: &SalesforceClient,
    sobject: &str,
    keys: &[Map<String, Value>],
) -> Result<Vec<Option<String>>, SalesforceError> {
    let Some(object) = object_name(sobject) else {
        return Ok(vec![None; keys.len()]);
    };
    // One query per shape of key (a set's assignment and a group's differ).
    let mut shapes: HashMap<Vec<&'static str>, Vec<usize>> = HashMap::new();
    for (index, key) in keys.iter().enumerate() {
        let fields: Option<Vec<&'static str>> = key.keys().map(|k| field_name(k)).collect();
        if let Some(mut fields) = fields.filter(|f| !f.is_empty()) {
            fields.sort_unstable();
            shapes.entry(fields).or_default().push(index);
        }
    }
    let mut found = vec![None; keys.len()];
    for (fields, indices) in shapes {
        let mut select = vec!["Id"];
        select.extend(fields.iter().copied());
        let mut query = Query::select(object, &select);
        for field in &fields {
            let mut values: Vec<String> = indices
                .iter()
                .filter_map(|i| keys[*i][*field].as_str().map(str::to_owned))
                .collect();
            values.sort_unstable();
            values.dedup();
            query = query.filter(Condition::is_in(
                field,
                values.into_iter().map(Literal::Str),
            ));
        }
        let records = all_records(client, &query).await?;
        for index in indices {
            let key = &keys[index];
            let holder = records.iter().find(|record| {
                fields.iter().all(|field| {
                    let (want, have) = (key[*field].as_str(), record[*field].as_str());
                    match (want, have) {
                        (Some(want), Some(have)) if *field == "Username" => {
                            want.eq_ignore_ascii_case(have)
                        }
                        (Some(want), Some(have)) => same_id(want, have),
                        _ => false,
                    }
                })
            });
            found[index] = holder.and_then(|r| r["Id"].as_str()).map(str::to_owned);
        }
    }
    Ok(found)
}

/// Salesforce ids compare on their first 15 characters (the rest is a case checksum).
pub(super) fn same_id(a: &str, b: &str) -> bool {
    a.get(..15).zip(b.get(..15)).is_some_and(|(a, b)| a == b)
}

/// The `UserLogin` id of each of `users`.
pub async fn login_ids(
    client: &SalesforceClient,
    users: &[String],
) -> Result<HashMap<String, String>, SalesforceError> {
    let mut logins = HashMap::new();
    for chunk in users.chunks(COLLECTION_SIZE) {
        let query = Query::select("UserLogin", &["Id", "UserId"]).filter(Condition::is_in(
            "UserId",
            chunk.iter().map(|u| Literal::Str(u.clone())),
        ));
        for record in all_records(client, &query).await? {
            if let (Some(user), Some(id)) = (record["UserId"].as_str(), record["Id"].as_str()) {
                if let Some(asked) = chunk.iter().find(|u| same_id(u, user)) {
                    logins.insert(asked.clone(), id.to_owned());
                }
            }
        }
    }
    Ok(logins)
}

/// Whether a record's failure may pass if tried again later.
pub fn is_transient(code: &str) -> bool {
    matches!(
        code,
        "UNABLE_TO_LOCK_ROW" | "REQUEST_LIMIT_EXCEEDED" | "SERVER_UNAVAILABLE" | "QUERY_TIMEOUT"
    )
}

/// Whether a failed call may pass if tried again later (the connector already retried it).
pub fn call_is_transient(err: &SalesforceError) -> bool {
    match err {
        SalesforceError::Api { status, code, .. } => *status >= 500 || is_transient(code),
        // Cut connections, HTML pages, exhausted retries, refused credentials, the daily
        // limit: all may pass later (credentials once someone fixes them).
        _ => true,
    }
}

/// What a Salesforce error code means, in plain words, for the request's error.
pub fn explain(code: &str) -> &'static str {
    match code {
        "FIELD_INTEGRITY_EXCEPTION" => "Salesforce found the values inconsistent: typically a permission set that needs a license the user lacks, a profile-owned or group aggregate set, or a profile change blocked by a licensed set.",
        "INSUFFICIENT_ACCESS_OR_READONLY" | "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY" => "The connected user may not make this change: run `provost preflight` and grant what it says is missing.",
        "LICENSE_LIMIT_EXCEEDED" => "No free license of that type is left in the org: free one (deactivate a user) or buy more, then make the request again.",
        "INVALID_CROSS_REFERENCE_KEY" | "MALFORMED_ID" => "A record the request refers to (user, permission set, group, profile or role) no longer exists in Salesforce: sync the org and make the request again.",
        "DUPLICATE_USERNAME" => "The username is taken, possibly in another Salesforce org (usernames are unique across all orgs): pick another.",
        "DUPLICATE_VALUE" => "Salesforce holds a record with the same unique values, and Provost could not find it to count it as done.",
        "REQUIRED_FIELD_MISSING" | "INVALID_FIELD" | "INVALID_FIELD_FOR_INSERT_UPDATE" | "STRING_TOO_LONG" | "INVALID_EMAIL_ADDRESS" | "INVALID_NEW_VALUE" | "JSON_PARSER_ERROR" => "Salesforce did not accept a field value: check the request's values and the org's user_defaults.",
        "ENTITY_IS_DELETED" | "NOT_FOUND" => "The record is gone from Salesforce: sync the org to see the current state.",
        "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY" => "An automation in the org (a trigger, flow or validation rule) refused the change; its message says why.",
        _ => "Salesforce refused the write; its message says why.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_compare_on_their_case_sensitive_part() {
        assert!(same_id("005000000000001AAA", "005000000000001"));
        assert!(!same_id("005000000000001AAA", "005000000000002AAA"));
        assert!(!same_id("005", "005"));
    }

    #[test]
    fn lock_and_availability_failures_are_transient_and_integrity_ones_are_not() {
        assert!(is_transient("UNABLE_TO_LOCK_ROW"));
        assert!(!is_transient("FIELD_INTEGRITY_EXCEPTION"));
        assert!(call_is_transient(&SalesforceError::Api {
            status: 503,
            code: "SERVER_UNAVAILABLE".into(),
            message: String::new(),
            fields: Vec::new(),
        }));
        assert!(!call_is_transient(&SalesforceError::Api {
            status: 400,
            code: "INVALID_TYPE".into(),
            message: String::new(),
            fields: Vec::new(),
        }));
    }
}
