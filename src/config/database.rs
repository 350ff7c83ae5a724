//! The `[database]` section: which database, and how many connections to it.

use serde::{Deserialize, Serialize};

use super::DatabaseUrl;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (created if missing) or `postgres://user:pass@host:port/db`.
    pub url: DatabaseUrl,
    /// Upper bound of the connection pool. 16 by default: concurrent API reads (SCIM lookups)
    /// wait for a connection less, measured in `cargo bench --bench scim`.
    pub max_connections: u32,
    /// How long a query waits for a pooled connection (or for the database to accept a new
    /// one) before it gives up: an API call then answers 503 with `Retry-After` instead of
    /// hanging while the database is down or every connection is busy.
    pub acquire_timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: DatabaseUrl::new("sqlite://provost.db"),
            max_connections: 16,
            acquire_timeout_ms: 5_000,
        }
    }
}

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a `database.url` selects, or `None` when it selects none.
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}
