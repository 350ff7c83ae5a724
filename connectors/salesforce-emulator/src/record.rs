//! Field values and records as the emulator stores them, and their JSON forms.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, NaiveDate, Timelike};
use serde_json::Value as Json;

use crate::id::Id;

/// One field's value. Date-times are milliseconds since the epoch (UTC), dates days since it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Text(Box<str>),
    Id(Id),
    DateTime(i64),
    Date(i32),
}

impl Value {
    pub fn text(s: impl Into<Box<str>>) -> Value {
        Value::Text(s.into())
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn as_id(&self) -> Option<Id> {
        match self {
            Value::Id(id) => Some(*id),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            Value::Id(id) => Some(id.as_str()),
            _ => None,
        }
    }

    pub fn to_json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Int(n) => Json::from(*n),
            Value::Text(s) => Json::String(s.to_string()),
            Value::Id(id) => Json::String(id.as_str().to_owned()),
            Value::DateTime(ms) => Json::String(format_datetime(*ms)),
            Value::Date(days) => Json::String(format_date(*days)),
        }
    }
}

/// Salesforce's date-time form: `2024-01-02T03:04:05.000+0000`.
pub fn format_datetime(ms: i64) -> String {
    let at = DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::UNIX_EPOCH);
    let mut out = String::with_capacity(28);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+0000",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.timestamp_subsec_millis()
    );
    out
}

pub fn format_date(days: i32) -> String {
    let date = NaiveDate::from_num_days_from_ce_opt(UNIX_EPOCH_DAY_FROM_CE + days)
        .unwrap_or(NaiveDate::MIN);
    format!("{:04}-{:02}-{:02}", date.year(), date.month(), date.day())
}

/// 1970-01-01 as days from the first day of the common era (0001-01-01 is day 1).
const UNIX_EPOCH_DAY_FROM_CE: i32 = 719_163;

/// Parses the date-time forms Salesforce accepts on input: `2024-01-02T03:04:05Z`,
/// `...05.000+0000`, `...05.000+00:00`.
pub fn parse_datetime(text: &str) -> Option<i64> {
    let normalised = match text.len().checked_sub(5).map(|at| text.split_at(at)) {
        // `+0000` -> `+00:00`, which RFC 3339 wants.
        Some((head, tail))
            if (tail.starts_with('+') || tail.starts_with('-'))
                && tail[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            format!("{head}{}:{}", &tail[..3], &tail[3..])
        }
        _ => text.to_owned(),
    };
    let at = DateTime::parse_from_rfc3339(&normalised).ok()?;
    Some(at.timestamp_millis())
}

pub fn parse_date(text: &str) -> Option<i32> {
    // Exactly YYYY-MM-DD, as Salesforce writes and reads dates.
    let shape = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shape {
        return None;
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(date.num_days_from_ce() - UNIX_EPOCH_DAY_FROM_CE)
}

/// One row: values in the order of its object's schema fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub values: Vec<Value>,
}

impl Record {
    pub fn id(&self) -> Id {
        self.values[0].as_id().expect("field 0 is the Id")
    }

    pub fn get(&self, index: usize) -> &Value {
        &self.values[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_times_use_salesforces_form_and_parse_back() {
        let ms = 1_704_164_645_007; // 2024-01-02T03:04:05.007Z
        assert_eq!(format_datetime(ms), "2024-01-02T03:04:05.007+0000");
        assert_eq!(parse_datetime("2024-01-02T03:04:05.007+0000"), Some(ms));
        assert_eq!(parse_datetime("2024-01-02T03:04:05.007Z"), Some(ms));
        assert_eq!(parse_datetime("2024-01-02T04:04:05.007+01:00"), Some(ms));
        assert_eq!(parse_datetime("yesterday"), None);
    }

    #[test]
    fn dates_round_trip() {
        let days = parse_date("2024-02-29").unwrap();
        assert_eq!(format_date(days), "2024-02-29");
        assert_eq!(format_date(0), "1970-01-01");
        assert_eq!(days, 19_782);
        assert_eq!(parse_date("1969-12-31"), Some(-1));
        for bad in [
            "2024-2-29",
            "2023-02-29",
            "24-02-29",
            "2024-02-29T00:00:00Z",
            "",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }
}
