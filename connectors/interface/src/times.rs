//! Date-times as Provost writes and reads them: `chrono`'s UTC times, written in RFC 3339 in one
//! form everywhere (stored rows, digests, API bodies, reports): `2026-11-22T23:10:40.356717Z`,
//! whole seconds without a fraction, a fraction without trailing zeros, and `Z`.
//!
//! That form is the one Provost has always written, so stored rows, their digests and the
//! files auditors hold do not change with the library that formats them.

use chrono::{DateTime, SecondsFormat, Timelike, Utc};

/// A UTC date-time.
pub type Timestamp = DateTime<Utc>;

/// `at` in RFC 3339 (`2026-11-22T23:10:40.356717Z`).
pub fn rfc3339(at: Timestamp) -> String {
    // Whole seconds, then the fraction with its trailing zeros trimmed.
    let mut text = at.to_rfc3339_opts(SecondsFormat::Secs, true);
    let nanos = at.nanosecond() % 1_000_000_000;
    if nanos != 0 {
        let fraction = format!("{nanos:09}");
        text.pop(); // the `Z`
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
        text.push('Z');
    }
    text
}

/// RFC 3339 text as a UTC time; any offset is converted.
pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// A date-time as a source keeps it in `attributes`: RFC 3339, or with an offset written
/// without its colon (`2024-01-02T03:04:05.000+0000`, Salesforce's form).
pub fn parse_datetime(text: &str) -> Option<Timestamp> {
    let normalised = match text.len().checked_sub(5).map(|at| text.split_at(at)) {
        Some((head, tail))
            if (tail.starts_with('+') || tail.starts_with('-'))
                && tail[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            format!("{head}{}:{}", &tail[..3], &tail[3..])
        }
        _ => text.to_owned(),
    };
    parse_rfc3339(&normalised)
}

/// `#[serde(with = "provost_connector::times::serde")]`: a time as [`rfc3339`] text.
pub mod serde {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    use super::Timestamp;

    pub fn serialize<S: Serializer>(at: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::rfc3339(*at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        super::parse_rfc3339(&text).ok_or_else(|| {
            D::Error::custom(format!(
                "`{text}` is not an RFC 3339 date-time (e.g. 2026-07-01T00:00:00Z)"
            ))
        })
    }

    /// The same for an `Option`: `null` (or an absent field, with `#[serde(default)]`) is
    /// `None`.
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        use super::super::Timestamp;

        pub fn serialize<S: Serializer>(
            at: &Option<Timestamp>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match at {
                Some(at) => super::serialize(at, serializer),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Timestamp>, D::Error> {
            #[derive(Deserialize)]
            struct Wrapped(#[serde(with = "super")] Timestamp);
            Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(at)| at))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(nanos: u32) -> Timestamp {
        Utc.with_ymd_and_hms(2026, 11, 22, 23, 10, 40).unwrap()
            + chrono::TimeDelta::nanoseconds(i64::from(nanos))
    }

    #[test]
    fn writes_the_form_provost_has_always_stored() {
        assert_eq!(rfc3339(at(0)), "2026-11-22T23:10:40Z");
        assert_eq!(rfc3339(at(500_000_000)), "2026-11-22T23:10:40.5Z");
        assert_eq!(rfc3339(at(356_717_000)), "2026-11-22T23:10:40.356717Z");
        assert_eq!(rfc3339(at(1)), "2026-11-22T23:10:40.000000001Z");
        assert_eq!(rfc3339(at(343_522_725)), "2026-11-22T23:10:40.343522725Z");
    }

    #[test]
    fn reads_what_it_writes_and_sources_forms() {
        for nanos in [0, 1, 500_000_000, 356_717_000, 999_999_999] {
            assert_eq!(parse_rfc3339(&rfc3339(at(nanos))), Some(at(nanos)));
        }
        assert_eq!(
            parse_datetime("2026-11-23T01:10:40.000+0200"),
            Some(at(0)),
            "Salesforce's offset without a colon"
        );
        assert_eq!(parse_datetime("2026-11-22T23:10:40Z"), Some(at(0)));
        assert_eq!(parse_datetime("yesterday"), None);
        assert_eq!(parse_datetime("2026-11-22"), None);
    }

    #[test]
    fn serde_round_trips_and_explains_bad_text() {
        #[derive(::serde::Serialize, ::serde::Deserialize, PartialEq, Debug)]
        struct Row {
            #[serde(with = "super::serde")]
            at: Timestamp,
            #[serde(default, with = "super::serde::option")]
            until: Option<Timestamp>,
        }
        let row = Row {
            at: at(500_000_000),
            until: None,
        };
        let text = serde_json::to_string(&row).unwrap();
        assert_eq!(text, r#"{"at":"2026-11-22T23:10:40.5Z","until":null}"#);
        assert_eq!(serde_json::from_str::<Row>(&text).unwrap(), row);
        assert_eq!(
            serde_json::from_str::<Row>(r#"{"at":"2026-11-22T23:10:40.5Z"}"#).unwrap(),
            row
        );
        let err = serde_json::from_str::<Row>(r#"{"at":"soon"}"#).unwrap_err();
        assert!(err.to_string().contains("RFC 3339"), "{err}");
    }
}
