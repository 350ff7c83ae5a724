//! PostgreSQL, for deployments running several Provost replicas on one database; and its
//! statement deadline (`statement_timeout`, set for one transaction).

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use super::{Backend, StoreError};

pub(super) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub(super) async fn connect(
    url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
) -> Result<PgPool, StoreError> {
    let connect_error = |source| StoreError::Connect {
        backend: Backend::Postgres.name(),
        source,
    };
    let options = PgConnectOptions::from_str(url)
        .map_err(connect_error)?
        .application_name("provost");
    // One connection first, on its own: the pool would retry a refused connection until its
    // acquire timeout and then say only "pool timed out", hiding the cause (connection
    // refused, unknown host, authentication failed, no such database).
    let probe = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
        .await
        .map_err(|_| StoreError::Unreachable {
            backend: Backend::Postgres.name(),
            detail: format!(
                "no answer within {} s; check the host, port and firewall",
                CONNECT_TIMEOUT.as_secs()
            ),
        })?
        .map_err(connect_error)?;
    let _ = probe.close().await;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .connect_with(options)
        .await
        .map_err(connect_error)
}

/// How long opening the first connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A transaction whose statements stop at a deadline: the server cancels a statement past its
/// `statement_timeout` whether or not anyone still waits for it, and the transaction (never
/// committed) ends when the connection goes back to the pool.
pub(super) struct TimedConnection(sqlx::Transaction<'static, sqlx::Postgres>);

impl TimedConnection {
    /// The statement ended; nothing to disarm (see [`timed_connection`]).
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

/// A transaction of `pool` whose statements stop after `timeout` with
/// [`StoreError::TimedOut`] (`SET LOCAL statement_timeout`: it ends with the transaction, so
/// the connection goes back to the pool without it); waiting for a connection counts against
/// it too. Reads only: it is never committed.
pub(super) async fn timed_connection(
    pool: &PgPool,
    timeout: Duration,
) -> Result<TimedConnection, StoreError> {
    let mut transaction = tokio::time::timeout(timeout, pool.begin())
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

/// Whether `err` is a statement cancelled by [`timed_connection`]'s timeout.
pub(super) fn is_timeout(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("57014"))
}
