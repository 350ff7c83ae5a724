//! Salesforce's error shapes: `[{"message","errorCode","fields"}]` on REST responses, and
//! `{"statusCode","message","fields"}` inside composite per-record results.

use serde_json::{json, Value as Json};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub fields: Vec<String>,
}

impl SfError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> SfError {
        SfError {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
        }
    }

    pub fn with_fields(mut self, fields: impl IntoIterator<Item = impl Into<String>>) -> SfError {
        self.fields = fields.into_iter().map(Into::into).collect();
        self
    }

    pub fn not_found() -> SfError {
        SfError::new(404, "NOT_FOUND", "The requested resource does not exist")
    }

    pub fn entity_is_deleted() -> SfError {
        SfError::new(404, "ENTITY_IS_DELETED", "entity is deleted")
    }

    pub fn invalid_session() -> SfError {
        SfError::new(401, "INVALID_SESSION_ID", "Session expired or invalid")
    }

    pub fn invalid_type(object: &str) -> SfError {
        SfError::new(
            400,
            "INVALID_TYPE",
            format!(
                "sObject type '{object}' is not supported. If you are attempting to use a custom object, \
                 be sure to append the '__c' after the entity name. Please reference your WSDL or the \
                 describe call for the appropriate names."
            ),
        )
    }

    /// The body of a REST error response: a one-element array.
    pub fn to_rest_json(&self) -> Json {
        let mut entry = json!({ "message": self.message, "errorCode": self.code });
        if !self.fields.is_empty() {
            entry["fields"] = json!(self.fields);
        }
        json!([entry])
    }

    /// One error inside a composite per-record result.
    pub fn to_record_json(&self) -> Json {
        json!({ "statusCode": self.code, "message": self.message, "fields": self.fields })
    }
}
