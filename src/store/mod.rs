//! Provost's store: one interface ([`Store`]), one implementation for both databases.
//!
//! SQLite is the default (one file, nothing to install); PostgreSQL serves organisations
//! running several replicas. Both run the same migrations (`migrations/sqlite`,
//! `migrations/postgres`, same version numbers) and must behave the same: the store tests
//! run every case against both.

pub mod console;
mod console_queries;
mod dialect;
pub mod digest;
pub mod history;
pub mod keys;
mod postgres;
pub mod provisioning;
mod provisioning_queries;
mod queries;
mod report_queries;
pub mod reports;
mod review_queries;
pub mod reviews;
pub mod scim;
mod scim_filter;
mod scim_queries;
mod sql;
mod sqlite;
mod sqlite_journal;
mod sqlite_library;
mod sqlite_load;
pub mod sync;
mod sync_queries;
mod webhook_queries;
pub mod webhooks;

use std::sync::Arc;

use async_trait::async_trait;
use provost_connector::model::{Account, Entitlement, EntitlementKind, Grant};
use provost_connector::times::Timestamp;

pub use keys::OrgId;

use crate::config::DatabaseConfig;

pub use crate::config::Backend;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "`{url}` is not a database URL: expected `sqlite://PATH` or `postgres://USER@HOST:PORT/DB`"
    )]
    UnsupportedUrl { url: String },
    #[error("cannot open the {backend} database: {source}")]
    Connect {
        backend: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot open the {backend} database: {detail}")]
    Unreachable {
        backend: &'static str,
        detail: String,
    },
    #[error("applying database migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{what} refers to something that is not stored (an account or entitlement must be stored before grants of it)")]
    MissingReference { what: &'static str },
    /// A unique name is taken; the message says which and what to do.
    #[error("{0}")]
    Duplicate(String),
    #[error("org `{0}` is not known to the store")]
    UnknownOrg(String),
    #[error("stored {what} cannot be read back: {detail}")]
    Corrupt { what: &'static str, detail: String },
    /// A query ran past the time it was given and was stopped.
    #[error("the query ran longer than the {} ms it may take and was stopped", .0.as_millis())]
    TimedOut(std::time::Duration),
    /// A page was to be staged after one that was not: see [`Store::stage_page`].
    #[error("a page was not staged because the page before it was not")]
    OutOfTurn,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// What a [`StoreError`] means to whoever asked, whatever the backend: the HTTP layer answers
/// each kind with one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request conflicts with what is stored (a name taken, a reference to what is not
    /// stored): the caller can change the request.
    Conflict,
    /// The database did not answer in time or is out of connections: trying again later may
    /// work.
    Unavailable,
    /// Anything else: a fault of the store or of Provost.
    Internal,
}

impl StoreError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Duplicate(_) | StoreError::MissingReference { .. } => ErrorKind::Conflict,
            StoreError::TimedOut(_)
            | StoreError::Connect { .. }
            | StoreError::Unreachable { .. } => ErrorKind::Unavailable,
            StoreError::Database(err) => match err {
                sqlx::Error::Database(db)
                    if db.is_unique_violation() || db.is_foreign_key_violation() =>
                {
                    ErrorKind::Conflict
                }
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::WorkerCrashed => ErrorKind::Unavailable,
                _ => ErrorKind::Internal,
            },
            StoreError::UnsupportedUrl { .. }
            | StoreError::Migrate(_)
            | StoreError::UnknownOrg(_)
            | StoreError::Corrupt { .. }
            | StoreError::OutOfTurn => ErrorKind::Internal,
        }
    }
}

/// An org as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgRecord {
    pub id: OrgId,
    pub name: String,
    pub created_at: Timestamp,
}

/// An org's connection made through the web server flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConnection {
    /// The refresh token, sealed by [`crate::org::secrets::SecretBox`].
    pub refresh_token_sealed: String,
    pub instance_url: String,
    pub identity_url: String,
    pub connected_at: Timestamp,
}

/// A pending authorisation, as started by `connect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthState {
    pub org_name: String,
    pub code_verifier_sealed: String,
    pub redirect_uri: String,
    pub created_at: Timestamp,
    /// Who started it: an API token's name, or `cli`.
    pub started_by: String,
    /// Whether the starter confirmed it may replace a working connection, or one to another
    /// Salesforce org.
    pub replace_confirmed: bool,
}

/// How many authorisations may be under way, and how long used or abandoned states are kept
/// (long enough to tell a replayed callback from a forged one).
#[derive(Debug, Clone, Copy)]
pub struct StateLimits {
    /// States made before this are deleted, used or not.
    pub forget_before: Timestamp,
    /// Unused states made since this count as under way.
    pub open_since: Timestamp,
    /// A new state is refused when this many are under way.
    pub most_open: u32,
}

/// What a callback's state turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateLookup {
    /// Issued and not used before: it is now used.
    Fresh(OAuthState),
    /// Issued, and already used by an earlier callback.
    Replayed,
    /// Never issued here.
    Unknown,
}

/// The orgs a store has read. An org's record never changes and is never deleted, so a
/// process reads each once instead of on every request.
#[derive(Debug, Default)]
pub(crate) struct OrgCache(std::sync::RwLock<std::collections::HashMap<String, OrgRecord>>);

impl OrgCache {
    fn get(&self, name: &str) -> Option<OrgRecord> {
        self.0.read().ok()?.get(name).cloned()
    }

    fn put(&self, org: OrgRecord) {
        if let Ok(mut orgs) = self.0.write() {
            orgs.insert(org.name.clone(), org);
        }
    }
}

/// Keyset pagination: up to `limit` rows whose id sorts after `after`.
#[derive(Debug, Clone, Copy)]
pub struct Page<'a> {
    pub after: Option<&'a str>,
    pub limit: u32,
}

impl Page<'_> {
    pub fn first(limit: u32) -> Page<'static> {
        Page { after: None, limit }
    }
}

/// The store: the identity model and connections ([`Store`]'s own methods), syncs
/// ([`sync::SyncStore`]), the web console ([`console::ConsoleStore`]), provisioning ([`provisioning::ProvisioningStore`]) and webhook
/// delivery ([`webhooks::WebhookStore`]), reports ([`reports::ReportStore`]), access reviews
/// ([`reviews::ReviewStore`]) and SCIM ([`scim::ScimStore`]).
#[async_trait]
pub trait Store:
    sync::SyncStore
    + provisioning::ProvisioningStore
    + webhooks::WebhookStore
    + reports::ReportStore
    + reviews::ReviewStore
    + scim::ScimStore
    + console::ConsoleStore
    + Send
    + Sync
    + 'static
{
    fn backend(&self) -> Backend;

    /// Applies every migration not yet applied. Safe to run at every start.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Refreshes the query planner's statistics of the identity model, on every pooled
    /// connection, so that lookups use the most selective index (done after migrations that
    /// changed the schema and after each sync commits); on PostgreSQL also vacuums it, so
    /// index-only scans stay so.
    async fn refresh_statistics(&self) -> Result<(), StoreError>;

    /// Round-trips a trivial query: the database is reachable and answering.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The connection pool's use, now.
    fn pool_usage(&self) -> PoolUsage;

    /// Closes the pool; later calls fail. Used at shutdown.
    async fn close(&self);

    /// The org named `name`, created if it was not stored yet.
    async fn ensure_org(&self, name: &str) -> Result<OrgRecord, StoreError>;
    async fn find_org(&self, name: &str) -> Result<Option<OrgRecord>, StoreError>;
    async fn list_orgs(&self) -> Result<Vec<OrgRecord>, StoreError>;

    /// Inserts or replaces accounts by id, all or none.
    async fn upsert_accounts(&self, org: OrgId, accounts: &[Account]) -> Result<(), StoreError>;
    async fn get_account(&self, org: OrgId, id: &str) -> Result<Option<Account>, StoreError>;
    /// Accounts in id order.
    async fn list_accounts(&self, org: OrgId, page: Page<'_>) -> Result<Vec<Account>, StoreError>;

    /// Inserts or replaces entitlements by id, all or none.
    async fn upsert_entitlements(
        &self,
        org: OrgId,
        entitlements: &[Entitlement],
    ) -> Result<(), StoreError>;
    /// Entitlements in id order, optionally of one kind.
    async fn list_entitlements(
        &self,
        org: OrgId,
        kind: Option<EntitlementKind>,
        page: Page<'_>,
    ) -> Result<Vec<Entitlement>, StoreError>;

    /// Inserts or replaces grants by id, all or none. The account and the entitlement of each
    /// grant must be stored already ([`StoreError::MissingReference`] otherwise).
    async fn upsert_grants(&self, org: OrgId, grants: &[Grant]) -> Result<(), StoreError>;
    /// The grants an account holds, in id order.
    async fn grants_of_account(
        &self,
        org: OrgId,
        account_id: &str,
    ) -> Result<Vec<Grant>, StoreError>;
    /// Removes grants by id; returns how many existed.
    async fn delete_grants(&self, org: OrgId, ids: &[String]) -> Result<u64, StoreError>;

    /// Stores (or replaces) the org's web-server-flow connection.
    async fn save_connection(
        &self,
        org: OrgId,
        connection: &StoredConnection,
    ) -> Result<(), StoreError>;
    async fn connection(&self, org: OrgId) -> Result<Option<StoredConnection>, StoreError>;

    /// Records a state issued with an authorisation URL, after deleting states older than
    /// `limits.forget_before`; `false` (nothing stored) when `limits.most_open` are under way.
    async fn insert_oauth_state(
        &self,
        state: &str,
        pending: &OAuthState,
        limits: StateLimits,
    ) -> Result<bool, StoreError>;
    /// Uses a state up: the first call for a state gets it, any later call learns it was replayed.
    async fn consume_oauth_state(&self, state: &str) -> Result<StateLookup, StoreError>;
}

/// The store on either database: every query is written once, run through [`sql`] on the
/// database's own driver.
/// A connection pool's use at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// Connections open, idle or in use.
    pub open: u32,
    pub idle: u32,
    /// The most it may open (`database.max_connections`).
    pub max: u32,
}

pub struct SqlStore {
    pool: sql::Pool,
    /// Orgs never change once stored, so each is read once.
    orgs: OrgCache,
    /// Pages staged beside another page of the same resource, across every sync of this
    /// store: see [`sync::SyncStore::stage_beside`].
    staging_beside: Arc<tokio::sync::Semaphore>,
    /// SQLite's journal copier, ended with the store.
    journal: Option<sqlite_journal::Copier>,
}

impl SqlStore {
    /// A connection, or on PostgreSQL a read-only transaction, whose statements stop after
    /// `timeout` with [`StoreError::TimedOut`].
    async fn timed_connection(&self, timeout: std::time::Duration) -> Result<Timed, StoreError> {
        Ok(match &self.pool {
            sql::Pool::Sqlite(pool) => {
                Timed::Sqlite(sqlite::timed_connection(pool, timeout).await?)
            }
            sql::Pool::Postgres(pool) => {
                Timed::Postgres(postgres::timed_connection(pool, timeout).await?)
            }
        })
    }

    /// Whether `err` is a statement stopped at its deadline.
    fn is_timeout(&self, err: &sqlx::Error) -> bool {
        match self.pool {
            sql::Pool::Sqlite(_) => sqlite::is_timeout(err),
            sql::Pool::Postgres(_) => postgres::is_timeout(err),
        }
    }
}

/// A connection with a statement deadline (see [`SqlStore::timed_connection`]).
enum Timed {
    Sqlite(sqlite::TimedConnection),
    Postgres(postgres::TimedConnection),
}

impl Timed {
    /// The statement ended: the connection goes back without its deadline.
    fn finished(self) {
        match self {
            Timed::Sqlite(connection) => connection.finished(),
            Timed::Postgres(connection) => connection.finished(),
        }
    }
}

impl<'c> From<&'c mut Timed> for sql::On<'c> {
    fn from(timed: &'c mut Timed) -> Self {
        match timed {
            Timed::Sqlite(connection) => sql::On::Sqlite(connection),
            Timed::Postgres(connection) => sql::On::Postgres(connection),
        }
    }
}

/// Opens (and creates, for SQLite) the database the configuration names. Does not migrate.
pub async fn open(config: &DatabaseConfig) -> Result<Arc<dyn Store>, StoreError> {
    let url = config.url.expose();
    let acquire_timeout = std::time::Duration::from_millis(config.acquire_timeout_ms);
    let (pool, journal) = match Backend::of_url(url) {
        Some(Backend::Sqlite) => {
            let (pool, copier) =
                sqlite::connect(url, config.max_connections, acquire_timeout).await?;
            (sql::Pool::Sqlite(pool), Some(copier))
        }
        Some(Backend::Postgres) => (
            sql::Pool::Postgres(
                postgres::connect(url, config.max_connections, acquire_timeout).await?,
            ),
            None,
        ),
        None => {
            return Err(StoreError::UnsupportedUrl {
                url: config.url.redacted(),
            })
        }
    };
    // A page staged beside the one before holds a connection while it waits for that one:
    // a quarter of the pool at most, so the pages at the head of every sync still find one
    // (a pool of fewer than 4 stages one page at a time).
    let beside = match pool.backend() {
        Backend::Sqlite => 0,
        Backend::Postgres => (config.max_connections as usize / 4).min(4),
    };
    Ok(Arc::new(SqlStore {
        pool,
        orgs: OrgCache::default(),
        staging_beside: Arc::new(tokio::sync::Semaphore::new(beside)),
        journal,
    }))
}

/// Turns a constraint violation into the error that says what was wrong with the input.
fn classify(err: sqlx::Error, what: &'static str) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::MissingReference { what }
        }
        _ => StoreError::Database(err),
    }
}
