//! The PostgreSQL store, for deployments running several Provost replicas on one database.

use std::str::FromStr;
use std::time::Duration;

use provost_connector::model::{Account, Entitlement, EntitlementKind, Grant};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use super::provisioning_queries::{self, impl_provisioning_store};
use super::queries::{self, impl_store};
use super::report_queries::{self, impl_report_store};
use super::scim_queries::{self, impl_scim_store};
use super::sync_queries::{self, impl_sync_store};
use super::webhook_queries::{self, impl_webhook_store};
use super::{Backend, OrgId, OrgRecord, Page, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PostgresStore {
    pool: PgPool,
    /// Orgs never change once stored, so each is read once.
    orgs: super::OrgCache,
}

impl PostgresStore {
    pub async fn connect(url: &str, max_connections: u32) -> Result<PostgresStore, StoreError> {
        let connect_error = |source| StoreError::Connect {
            backend: Backend::Postgres.name(),
            source,
        };
        let options = PgConnectOptions::from_str(url)
            .map_err(connect_error)?
            .application_name("provost");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(connect_error)?;
        Ok(PostgresStore {
            pool,
            orgs: Default::default(),
        })
    }
}

/// A transaction whose statements stop at a deadline: the server cancels a statement past its
/// `statement_timeout` whether or not anyone still waits for it, and the transaction (never
/// committed) ends when the connection goes back to the pool.
pub(super) struct TimedConnection(sqlx::Transaction<'static, sqlx::Postgres>);

impl TimedConnection {
    /// The statement ended; nothing to disarm (see [`PostgresStore::timed_connection`]).
    pub(super) fn finished(self) {}
}

impl std::ops::Deref for TimedConnection {
    type Target = sqlx::PgConnection;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for TimedConnection {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl PostgresStore {
    /// A transaction whose statements stop after `timeout` with [`StoreError::TimedOut`]
    /// (`SET LOCAL statement_timeout`: it ends with the transaction, so the connection goes
    /// back to the pool without it). Reads only: it is never committed.
    pub(super) async fn timed_connection(
        &self,
        timeout: Duration,
    ) -> Result<TimedConnection, StoreError> {
        let mut transaction = tokio::time::timeout(timeout, self.pool.begin())
            .await
            .map_err(|_| StoreError::TimedOut(timeout))??;
        // A number of the code's own making, not input: SET takes no bound parameters.
        sqlx::query(&format!(
            "SET LOCAL statement_timeout = {}",
            timeout.as_millis().clamp(1, i32::MAX as u128)
        ))
        .execute(&mut *transaction)
        .await?;
        Ok(TimedConnection(transaction))
    }

    /// Whether `err` is a statement cancelled by [`Self::timed_connection`]'s timeout.
    pub(super) fn is_timeout(err: &sqlx::Error) -> bool {
        matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("57014"))
    }
}

impl_sync_store!(
    PostgresStore,
    sqlx::Postgres,
    sync_queries::Dialect::Postgres
);
impl_store!(PostgresStore, Backend::Postgres, MIGRATOR);
impl_provisioning_store!(PostgresStore, sqlx::Postgres, " FOR UPDATE SKIP LOCKED");
impl_webhook_store!(PostgresStore);
impl_report_store!(
    PostgresStore,
    sqlx::Postgres,
    "(COALESCE(c.after, c.before) ->> 'account_id')"
);
impl_scim_store!(
    PostgresStore,
    sqlx::Postgres,
    scim_queries::POSTGRES_GRANTS_JSON
);
