//! SQLite: one file, WAL journal (readers never wait for the writer), foreign keys on; and
//! its statement deadline, which SQLite lacks, made of a progress handler.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use super::sqlite_journal::{self, Copier, Journal};
use super::{Backend, StoreError};

/// Opens `url` (`sqlite://PATH`), creating the file if it does not exist, and starts the task
/// that copies its journal into the file (see [`super::sqlite_journal`]), which the returned
/// [`Copier`] ends when dropped.
pub(super) async fn connect(
    url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
) -> Result<(SqlitePool, Copier), StoreError> {
    super::sqlite_library::configure();
    let connect_error = |source| StoreError::Connect {
        backend: Backend::Sqlite.name(),
        source,
    };
    let options = SqliteConnectOptions::from_str(url)
        .map_err(connect_error)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // NORMAL is durable across process crashes in WAL mode; only a power loss can
        // drop the last transactions, never corrupt the file.
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10))
        // The journal cut back to 64 MB once copied, instead of staying as large as the
        // largest commit ever made it (a first sync's: hundreds of megabytes).
        .pragma("journal_size_limit", "67108864")
        // A new database's pages (an existing one keeps the size it was created with).
        .page_size(PAGE_BYTES)
        // A large sort (the indexes built at a first sync's commit: those of `large`'s 609,478
        // grants took 1.25 s on one thread, 0.81 s with two helpers) uses the other cores.
        .pragma("threads", sorter_threads().to_string());
    let (journal, address) = Journal::new();
    let pool = SqlitePoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        // A local file's connection does not go stale: no ping before each use (it cost
        // a round trip to the connection's thread on every query).
        .test_before_acquire(false);
    // Commits signal the copying task instead of copying the journal themselves.
    let pool = sqlite_journal::watched(pool, address)
        .connect_with(options.clone())
        .await
        .map_err(connect_error)?;
    let copier = sqlite_journal::start(&options, journal)
        .await
        .map_err(connect_error)?;
    Ok((pool, copier))
}

/// The page size of a database created by [`connect`]: 8 KB, where SQLite's default is 4 KB. A
/// first sync of `large` writes about 2 GB through the journal and its copy into the file,
/// one page at a time (a third of the writing threads' time went in the write calls): with
/// pages twice as large it took 9.5 to 10.3 s against 10.0 to 11.8 s, with 0.2 to 1.9
/// CPU-seconds less (docs/src/performance.md, "Larger pages"). 16 KB was as
/// fast at best and varied more.
pub(super) const PAGE_BYTES: u32 = 8192;

/// How many threads beside its own a statement may start to sort: one per other core, at most
/// three (SQLite's sorter merges its runs in as many threads).
fn sorter_threads() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get().saturating_sub(1).min(3))
}

/// A pooled connection whose statements are interrupted once a deadline passes (SQLite has no
/// statement timeout of its own: a progress handler checks the clock every few thousand
/// virtual-machine steps). [`TimedConnection::finished`] disarms it once a statement has ended,
/// and the connection goes back to the pool without a deadline. Dropped before that (the
/// request was cancelled, or a query beside it failed), the statement may still be running on
/// the connection's worker thread: the deadline stays armed, so it is still interrupted, and the
/// connection is closed rather than handed to another query.
pub(super) struct TimedConnection {
    connection: sqlx::pool::PoolConnection<sqlx::Sqlite>,
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    finished: bool,
}

impl TimedConnection {
    /// The statement ended (with rows or an error): the deadline no longer applies.
    pub(super) fn finished(mut self) {
        self.finished = true;
    }
}

impl std::ops::Deref for TimedConnection {
    type Target = sqlx::SqliteConnection;
    fn deref(&self) -> &Self::Target {
        &self.connection
    }
}

impl std::ops::DerefMut for TimedConnection {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.connection
    }
}

impl Drop for TimedConnection {
    fn drop(&mut self) {
        if self.finished {
            self.armed
                .store(false, std::sync::atomic::Ordering::Relaxed);
        } else {
            self.connection.close_on_drop();
        }
    }
}

/// A connection of `pool` whose statements stop after `timeout` with
/// [`StoreError::TimedOut`]; waiting for a free connection counts against it too.
pub(super) async fn timed_connection(
    pool: &SqlitePool,
    timeout: Duration,
) -> Result<TimedConnection, StoreError> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let deadline = std::time::Instant::now() + timeout;
    let mut connection = tokio::time::timeout(timeout, pool.acquire())
        .await
        .map_err(|_| StoreError::TimedOut(timeout))??;
    let armed = std::sync::Arc::new(AtomicBool::new(true));
    let watched = armed.clone();
    connection
        .lock_handle()
        .await?
        // About a millisecond of work between looks at the clock.
        .set_progress_handler(10_000, move || {
            !watched.load(Ordering::Relaxed) || std::time::Instant::now() < deadline
        });
    Ok(TimedConnection {
        connection,
        armed,
        finished: false,
    })
}

/// Whether `err` is a statement stopped by [`timed_connection`]'s deadline.
pub(super) fn is_timeout(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("9"))
}

pub(super) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[cfg(test)]
mod tests {
    use super::*;

    /// A new database is made with [`PAGE_BYTES`] pages, and its journal is counted in them; a
    /// database made with SQLite's default keeps its 4 KB pages, counted as such.
    #[tokio::test]
    async fn a_new_database_has_larger_pages_and_an_existing_one_keeps_its_own() {
        super::super::sqlite_library::configure();
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.db");
        // As an earlier version made it: SQLite's default pages, in WAL mode.
        let mut made = sqlx::ConnectOptions::connect(
            &SqliteConnectOptions::from_str(&format!("sqlite://{}", old.display()))
                .unwrap()
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal),
        )
        .await
        .unwrap();
        sqlx::query("CREATE TABLE t (x)")
            .execute(&mut made)
            .await
            .unwrap();
        sqlx::Connection::close(made).await.unwrap();
        for (path, expected) in [
            (dir.path().join("new.db"), i64::from(PAGE_BYTES)),
            (old, 4096),
        ] {
            let url = format!("sqlite://{}", path.display());
            let (pool, copier) = connect(&url, 2, Duration::from_secs(5)).await.unwrap();
            let (size,): (i64,) = sqlx::query_as("PRAGMA page_size")
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(size, expected, "{}", path.display());
            assert_eq!(copier.page_bytes(), expected, "{}", path.display());
            copier.close().await;
            pool.close().await;
        }
    }
}
