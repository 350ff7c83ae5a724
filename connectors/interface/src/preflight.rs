//! A preflight's report: can Provost work with a connected system as the connecting user, and
//! if not, exactly what is missing. Each connector runs its own checks; every check says what
//! it is needed for and how to fix a failure.

use serde::Serialize;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
/// One check of a preflight.
pub struct Check {
    pub id: &'static str,
    pub status: Status,
    /// Whether a failure stops Provost from working with the org at all.
    pub required: bool,
    pub needed_for: &'static str,
    pub detail: String,
    pub remedy: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
/// Every check of a preflight, and who was checked.
pub struct PreflightReport {
    /// Every required check passed.
    pub ok: bool,
    pub org_id: Option<String>,
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub checks: Vec<Check>,
}
