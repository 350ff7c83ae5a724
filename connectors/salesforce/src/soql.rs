//! SOQL built from parts, never from concatenated input.
//!
//! Objects and fields are `&'static str` (names written in Provost's code, checked to be
//! identifiers); values are typed and rendered by this module: strings escaped, IDs validated,
//! date-times in Salesforce's form. Every query names its fields and orders by `Id`, so pages
//! are stable and a resumed read continues where it stopped.

use std::fmt::Write;

use chrono::{Datelike, Timelike};
use provost_connector::times::Timestamp;

use crate::id::SalesforceId;

/// A literal in a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Id(SalesforceId),
    Bool(bool),
    Int(i64),
    DateTime(Timestamp),
    Null,
}

impl From<&str> for Literal {
    fn from(value: &str) -> Self {
        Literal::Str(value.to_owned())
    }
}

impl From<SalesforceId> for Literal {
    fn from(value: SalesforceId) -> Self {
        Literal::Id(value)
    }
}

impl From<bool> for Literal {
    fn from(value: bool) -> Self {
        Literal::Bool(value)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Compare {
        field: &'static str,
        op: &'static str,
        value: Literal,
    },
    In {
        field: &'static str,
        negated: bool,
        values: Vec<Literal>,
    },
    /// A semi-join: `field IN (SELECT one_field FROM ... WHERE ...)`.
    InQuery {
        field: &'static str,
        query: Box<Query>,
    },
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
}

impl Condition {
    pub fn eq(field: &'static str, value: impl Into<Literal>) -> Condition {
        Condition::Compare {
            field,
            op: "=",
            value: value.into(),
        }
    }

    pub fn ne(field: &'static str, value: impl Into<Literal>) -> Condition {
        Condition::Compare {
            field,
            op: "!=",
            value: value.into(),
        }
    }

    pub fn gt(field: &'static str, value: impl Into<Literal>) -> Condition {
        Condition::Compare {
            field,
            op: ">",
            value: value.into(),
        }
    }

    pub fn ge(field: &'static str, value: impl Into<Literal>) -> Condition {
        Condition::Compare {
            field,
            op: ">=",
            value: value.into(),
        }
    }

    pub fn le(field: &'static str, value: impl Into<Literal>) -> Condition {
        Condition::Compare {
            field,
            op: "<=",
            value: value.into(),
        }
    }

    pub fn lt(field: &'static str, value: impl Into<Literal>) -> Condition {
        Condition::Compare {
            field,
            op: "<",
            value: value.into(),
        }
    }

    pub fn is_in(field: &'static str, values: impl IntoIterator<Item = Literal>) -> Condition {
        Condition::In {
            field,
            negated: false,
            values: values.into_iter().collect(),
        }
    }

    pub fn not_in(field: &'static str, values: impl IntoIterator<Item = Literal>) -> Condition {
        Condition::In {
            field,
            negated: true,
            values: values.into_iter().collect(),
        }
    }

    /// `field IN (subquery)`; the subquery selects one field and is not ordered.
    pub fn in_query(field: &'static str, query: Query) -> Condition {
        assert_eq!(query.fields.len(), 1, "a semi-join selects one field");
        Condition::InQuery {
            field,
            query: Box::new(query.unordered()),
        }
    }
}

/// A SELECT over one object.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    object: &'static str,
    fields: Vec<&'static str>,
    conditions: Vec<Condition>,
    order_by_id: bool,
    /// `ORDER BY field DESC` instead of by Id.
    descending_by: Option<&'static str>,
    limit: Option<u32>,
}

impl Query {
    /// `SELECT fields FROM object`. Panics if a name is not an identifier path: names are
    /// constants in Provost's code, so a bad one is a programming error, caught by tests.
    pub fn select(object: &'static str, fields: &[&'static str]) -> Query {
        assert!(is_identifier(object), "not an object name: {object}");
        assert!(!fields.is_empty(), "a query names its fields");
        for field in fields {
            assert!(is_field_path(field), "not a field path: {field}");
        }
        Query {
            object,
            fields: fields.to_vec(),
            conditions: Vec::new(),
            order_by_id: true,
            descending_by: None,
            limit: None,
        }
    }

    /// `SELECT COUNT() FROM object`: the answer's `totalSize` is the count.
    pub fn count(object: &'static str) -> Query {
        assert!(is_identifier(object), "not an object name: {object}");
        Query {
            object,
            fields: vec!["COUNT()"],
            conditions: Vec::new(),
            order_by_id: false,
            descending_by: None,
            limit: None,
        }
    }

    /// `SELECT COUNT()` of the records this query selects.
    pub fn counting(mut self) -> Query {
        self.fields = vec!["COUNT()"];
        self.order_by_id = false;
        self.descending_by = None;
        self.limit = None;
        self
    }

    /// Adds a condition, ANDed with the others.
    pub fn filter(mut self, condition: Condition) -> Query {
        self.conditions.push(condition);
        self
    }

    pub fn limit(mut self, limit: u32) -> Query {
        self.limit = Some(limit);
        self
    }

    /// `ORDER BY field DESC`, in place of `ORDER BY Id` (for "the latest" lookups).
    pub fn descending(mut self, field: &'static str) -> Query {
        assert!(is_field_path(field), "not a field path: {field}");
        self.order_by_id = false;
        self.descending_by = Some(field);
        self
    }

    /// Leaves out `ORDER BY Id` (for `COUNT()`-like uses where order is meaningless).
    pub fn unordered(mut self) -> Query {
        self.order_by_id = false;
        self
    }

    pub fn object(&self) -> &'static str {
        self.object
    }

    pub fn to_soql(&self) -> String {
        let mut soql = format!("SELECT {} FROM {}", self.fields.join(", "), self.object);
        if !self.conditions.is_empty() {
            soql.push_str(" WHERE ");
            write_all(&mut soql, &self.conditions, " AND ");
        }
        if self.order_by_id {
            soql.push_str(" ORDER BY Id");
        } else if let Some(field) = self.descending_by {
            let _ = write!(soql, " ORDER BY {field} DESC");
        }
        if let Some(limit) = self.limit {
            let _ = write!(soql, " LIMIT {limit}");
        }
        soql
    }
}

fn write_all(out: &mut String, conditions: &[Condition], separator: &str) {
    for (i, condition) in conditions.iter().enumerate() {
        if i > 0 {
            out.push_str(separator);
        }
        write_condition(out, condition);
    }
}

fn write_condition(out: &mut String, condition: &Condition) {
    match condition {
        Condition::Compare { field, op, value } => {
            assert!(is_field_path(field), "not a field path: {field}");
            let _ = write!(out, "{field} {op} ");
            write_literal(out, value);
        }
        Condition::In {
            field,
            negated,
            values,
        } => {
            assert!(is_field_path(field), "not a field path: {field}");
            let _ = write!(out, "{field} {}IN (", if *negated { "NOT " } else { "" });
            for (i, value) in values.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_literal(out, value);
            }
            out.push(')');
        }
        Condition::InQuery { field, query } => {
            assert!(is_field_path(field), "not a field path: {field}");
            let _ = write!(out, "{field} IN ({})", query.to_soql());
        }
        // Parenthesised: SOQL refuses AND and OR mixed without them.
        Condition::And(items) => {
            out.push('(');
            write_all(out, items, " AND ");
            out.push(')');
        }
        Condition::Or(items) => {
            out.push('(');
            write_all(out, items, " OR ");
            out.push(')');
        }
        Condition::Not(inner) => {
            out.push_str("(NOT ");
            write_condition(out, inner);
            out.push(')');
        }
    }
}

fn write_literal(out: &mut String, literal: &Literal) {
    match literal {
        Literal::Str(text) => {
            out.push('\'');
            out.push_str(&escape(text));
            out.push('\'');
        }
        Literal::Id(id) => {
            let _ = write!(out, "'{id}'");
        }
        Literal::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Literal::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Literal::DateTime(at) => {
            let _ = write!(
                out,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                at.year(),
                at.month(),
                at.day(),
                at.hour(),
                at.minute(),
                at.second()
            );
        }
        Literal::Null => out.push_str("null"),
    }
}

/// Escapes a string for a SOQL single-quoted literal.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        match c {
            '\'' => escaped.push_str("\\'"),
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            other => escaped.push(other),
        }
    }
    escaped
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_field_path(path: &str) -> bool {
    path.split('.').all(is_identifier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_ordered_queries_with_typed_literals() {
        let id = SalesforceId::parse("0055g0000000001").unwrap();
        let query = Query::select(
            "PermissionSetAssignment",
            &["Id", "AssigneeId", "PermissionSet.Name"],
        )
        .filter(Condition::eq("AssigneeId", id))
        .filter(Condition::Or(vec![
            Condition::eq("PermissionSet.IsOwnedByProfile", false),
            Condition::ne("ExpirationDate", Literal::Null),
        ]))
        .limit(10);
        assert_eq!(
            query.to_soql(),
            "SELECT Id, AssigneeId, PermissionSet.Name FROM PermissionSetAssignment WHERE AssigneeId = '0055g0000000001AAA' \
             AND (PermissionSet.IsOwnedByProfile = false OR ExpirationDate != null) ORDER BY Id LIMIT 10"
        );
        // Counted: the same records, no order, no limit.
        assert_eq!(
            query.counting().to_soql(),
            "SELECT COUNT() FROM PermissionSetAssignment WHERE AssigneeId = '0055g0000000001AAA' \
             AND (PermissionSet.IsOwnedByProfile = false OR ExpirationDate != null)"
        );
    }

    #[test]
    fn strings_cannot_break_out_of_their_literal() {
        let hostile = "x' OR Name != '";
        let query = Query::select("User", &["Id"]).filter(Condition::eq("Username", hostile));
        assert_eq!(
            query.to_soql(),
            "SELECT Id FROM User WHERE Username = 'x\\' OR Name != \\'' ORDER BY Id"
        );
        assert_eq!(escape("a\\'b"), "a\\\\\\'b");
    }

    #[test]
    fn in_lists_and_date_times() {
        let at = provost_connector::times::parse_rfc3339("2024-01-02T03:04:05.25+02:00").unwrap();
        let query = Query::select("User", &["Id"])
            .filter(Condition::not_in(
                "UserType",
                ["Guest", "PowerPartner"].map(Literal::from),
            ))
            .filter(Condition::gt("SystemModstamp", Literal::DateTime(at)));
        assert_eq!(
            query.to_soql(),
            "SELECT Id FROM User WHERE UserType NOT IN ('Guest', 'PowerPartner') AND SystemModstamp > 2024-01-02T01:04:05Z ORDER BY Id"
        );
    }

    #[test]
    fn semi_joins_nest_an_unordered_query() {
        let user = SalesforceId::parse("0055g0000000001").unwrap();
        let query = Query::select("PermissionSet", &["Id"]).filter(Condition::in_query(
            "Id",
            Query::select("PermissionSetAssignment", &["PermissionSetId"])
                .filter(Condition::eq("AssigneeId", user)),
        ));
        assert_eq!(
            query.to_soql(),
            "SELECT Id FROM PermissionSet WHERE Id IN (SELECT PermissionSetId FROM PermissionSetAssignment WHERE AssigneeId = '0055g0000000001AAA') ORDER BY Id"
        );
    }

    #[test]
    fn descending_order_replaces_the_id_order() {
        let query = Query::select("User", &["SystemModstamp"])
            .descending("SystemModstamp")
            .limit(1);
        assert_eq!(
            query.to_soql(),
            "SELECT SystemModstamp FROM User ORDER BY SystemModstamp DESC LIMIT 1"
        );
    }

    #[test]
    #[should_panic(expected = "not a field path")]
    fn field_names_must_be_identifiers() {
        Query::select("User", &["Id, (SELECT Id FROM X)"]);
    }
}
