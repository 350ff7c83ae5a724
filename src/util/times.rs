//! Times as Provost shows them: RFC 3339, in UTC as stored.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// `at` as RFC 3339 (`2026-11-22T23:10:40.356717Z`).
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339)
        .expect("stored times (years 0000-9999, whole-minute offsets) format as RFC 3339")
}

/// `at` as RFC 3339, or `-` when there is none (for tables in a terminal).
pub fn rfc3339_or_dash(at: Option<OffsetDateTime>) -> String {
    at.map_or_else(|| "-".to_owned(), rfc3339)
}
