//! Times as Provost shows them: RFC 3339, in UTC as stored (`provost_connector::times`).

use provost_connector::times::Timestamp;

pub use provost_connector::times::{parse_rfc3339, rfc3339};

/// `at` as RFC 3339, or `-` when there is none (for tables in a terminal).
pub fn rfc3339_or_dash(at: Option<Timestamp>) -> String {
    at.map_or_else(|| "-".to_owned(), rfc3339)
}
