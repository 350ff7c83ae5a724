//! The store's keys of what it holds, shared with the domain types that carry them.

/// The store's key of an org, used by every per-org table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrgId(pub i64);
