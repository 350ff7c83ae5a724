//! SQLite's journal copied into the database file by a connection of its own, beside the writer.
//!
//! In WAL mode every commit appends pages to the journal (`-wal`), and a checkpoint copies them
//! into the database file. SQLite's own rule makes the connection that committed past a
//! threshold do the copy before it returns: a sync staging a million changes paid each copy on
//! its one writing connection, and a first load's commit paid the copy of everything it wrote
//! before the run could end. Here a commit only signals a copy when at least [`COPY_FRAMES`]
//! pages have been added since the last one, and a task with its own connection makes it
//! (`PRAGMA wal_checkpoint(PASSIVE)`, which never blocks writers or readers) while the writer
//! goes on. Should that task fall far behind or be gone (the store closed), the committing
//! connection copies itself, as SQLite would, past [`INLINE_FRAMES`] (or [`COPY_FRAMES`] once
//! closed): the journal never grows without bound.
//!
//! A first load's commit is one transaction of several hundred megabytes (`large`: over
//! 256 MB), which no copy can start on before it ends: copied by the commit itself, it made the
//! commit 0.8 s longer; now the run ends first and the copy follows beside whatever comes next.

use std::ffi::{c_char, c_int, c_void};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use libsqlite3_sys as ffi;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{ConnectOptions, SqliteConnection};

/// Pages (4 KB each) added to the journal before a copy is due: 64 MB. Copied every 4 MB
/// (SQLite's default), a sync wrote the same index pages again at each copy, and its writes
/// took a fifth longer.
pub(super) const COPY_FRAMES: i64 = 16_000;

/// Pages not yet copied past which a committing connection copies them itself, the copying task
/// being that far behind: 1 GB.
pub(super) const INLINE_FRAMES: i64 = 262_144;

/// What the commits of a store's connections and its copying task share.
pub(super) struct Journal {
    /// [`COPY_FRAMES`] and [`INLINE_FRAMES`] (tests use smaller ones).
    copy_frames: i64,
    inline_frames: i64,
    /// Told when a copy is due.
    due: tokio::sync::Notify,
    /// The journal's size in pages when it was last copied (a journal started again from its
    /// beginning is smaller: then none of it is copied).
    copied: AtomicI64,
    /// The store is closed: no task copies any more.
    closed: AtomicBool,
}

impl Journal {
    /// A journal for a new pool, and the address its connections' hook is given: the journal
    /// is kept for the life of the process, since a connection may outlive the store.
    pub(super) fn new() -> (Arc<Journal>, usize) {
        Journal::with_thresholds(COPY_FRAMES, INLINE_FRAMES)
    }

    fn with_thresholds(copy_frames: i64, inline_frames: i64) -> (Arc<Journal>, usize) {
        let journal = Arc::new(Journal {
            copy_frames,
            inline_frames,
            due: tokio::sync::Notify::new(),
            copied: AtomicI64::new(0),
            closed: AtomicBool::new(false),
        });
        let address = Arc::into_raw(journal.clone()) as usize;
        (journal, address)
    }

    /// Pages added since the last copy, of a journal now `frames` pages long.
    fn behind(&self, frames: i64) -> i64 {
        let copied = self.copied.load(Ordering::Acquire);
        match frames >= copied {
            true => frames - copied,
            false => frames,
        }
    }
}

/// `options` with each new connection's commits signalling the journal at `address` (from
/// [`Journal::new`]) instead of copying it themselves.
pub(super) fn watched(options: SqlitePoolOptions, address: usize) -> SqlitePoolOptions {
    options.after_connect(move |connection, _| {
        Box::pin(async move {
            let mut handle = connection.lock_handle().await?;
            // SAFETY: the journal at `address` is never freed; the hook is a function of this
            // program; the connection is locked for this call, so no other thread uses it.
            unsafe {
                ffi::sqlite3_wal_hook(
                    handle.as_raw_handle().as_ptr(),
                    Some(committed),
                    address as *mut c_void,
                );
            }
            Ok(())
        })
    })
}

/// SQLite calls this after each commit, on the committing connection's thread, with the
/// journal's length in pages.
unsafe extern "C" fn committed(
    journal: *mut c_void,
    db: *mut ffi::sqlite3,
    name: *const c_char,
    frames: c_int,
) -> c_int {
    // SAFETY: `journal` is the address `watch` was given: a journal that lives for the process.
    let journal = unsafe { &*(journal as *const Journal) };
    let behind = journal.behind(i64::from(frames));
    let closed = journal.closed.load(Ordering::Acquire);
    let copy_here = if closed {
        behind >= journal.copy_frames
    } else {
        behind >= journal.inline_frames
    };
    if copy_here {
        // SAFETY: `db` and `name` are the committing connection and its database, valid for
        // this call; a checkpoint from the hook is what SQLite's own hook does.
        unsafe {
            ffi::sqlite3_wal_checkpoint_v2(
                db,
                name,
                ffi::SQLITE_CHECKPOINT_PASSIVE,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
        }
        journal.copied.store(i64::from(frames), Ordering::Release);
    } else if behind >= journal.copy_frames {
        journal.due.notify_one();
    }
    ffi::SQLITE_OK
}

/// Ends the copying task when dropped (with the store).
pub(super) struct Copier {
    journal: Arc<Journal>,
}

impl Copier {
    /// Ends the copying task (the store is closing): commits copy the journal themselves.
    pub(super) fn stop(&self) {
        self.journal.closed.store(true, Ordering::Release);
        self.journal.due.notify_one();
    }
}

impl Drop for Copier {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the task that copies `url`'s journal when due; it ends when the [`Copier`] is dropped.
pub(super) async fn start(url: &str, journal: Arc<Journal>) -> Result<Copier, sqlx::Error> {
    let connection = SqliteConnectOptions::from_str(url)?
        .busy_timeout(std::time::Duration::from_secs(10))
        .connect()
        .await?;
    tokio::spawn(copy_when_due(journal.clone(), connection));
    Ok(Copier { journal })
}

async fn copy_when_due(journal: Arc<Journal>, mut connection: SqliteConnection) {
    loop {
        journal.due.notified().await;
        if journal.closed.load(Ordering::Acquire) {
            break;
        }
        // (whether it had to stop early, the journal's pages, those copied)
        let copied: Result<(i64, i64, i64), _> = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&mut connection)
            .await;
        match copied {
            // Pages a reader still needs stay uncopied: the next commit asks again.
            Ok((_, _, copied)) => journal.copied.store(copied, Ordering::Release),
            Err(err) => {
                tracing::warn!(error = %err, "could not copy SQLite's journal into the database file; commits copy it themselves past 1 GB");
            }
        }
    }
    let _ = sqlx::Connection::close(connection).await;
}

#[cfg(test)]
mod tests {
    use sqlx::sqlite::SqliteJournalMode;
    use sqlx::SqlitePool;

    use super::*;

    /// Commits of `rounds` transactions of about 20 pages each.
    async fn write(pool: &SqlitePool, rounds: usize) {
        for _ in 0..rounds {
            sqlx::query(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) \
                 INSERT INTO blobs SELECT randomblob(8000) FROM n",
            )
            .execute(pool)
            .await
            .unwrap();
        }
    }

    #[tokio::test]
    async fn commits_leave_the_copy_to_the_copying_task_and_copy_themselves_once_it_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("journal.db").display());
        let (journal, address) = Journal::with_thresholds(20, 1_000_000);
        let options = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let pool = watched(SqlitePoolOptions::new().max_connections(1), address)
            .connect_with(options)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE blobs (b BLOB)")
            .execute(&pool)
            .await
            .unwrap();
        // No copying task yet, and far from the inline threshold: nobody copies.
        write(&pool, 10).await;
        assert_eq!(journal.copied.load(Ordering::Acquire), 0);
        // The task starts, takes the signal the commits left, and copies.
        let copier = start(&url, journal.clone()).await.unwrap();
        let mut waited = 0;
        while journal.copied.load(Ordering::Acquire) == 0 && waited < 100 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            waited += 1;
        }
        let copied = journal.copied.load(Ordering::Acquire);
        assert!(copied >= 200, "the task copied the journal: {copied} pages");
        // Gone with the store: commits copy themselves again, past the copy threshold.
        drop(copier);
        write(&pool, 3).await;
        let now = journal.copied.load(Ordering::Acquire);
        assert!(
            now != copied && now > 0,
            "a commit copied the journal itself: {copied} then {now}"
        );
        pool.close().await;
    }

    #[test]
    fn pages_behind_count_from_the_last_copy_or_from_a_journal_started_again() {
        let (journal, _) = Journal::new();
        assert_eq!(journal.behind(100), 100);
        journal.copied.store(20_000, Ordering::Release);
        assert_eq!(journal.behind(36_000), 16_000);
        // Started again from its beginning: shorter than when last copied.
        assert_eq!(journal.behind(500), 500);
    }
}
