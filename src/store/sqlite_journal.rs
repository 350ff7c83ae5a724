//! SQLite's journal copied into the database file by a connection of its own, beside the writer.
//!
//! In WAL mode every commit appends pages to the journal (`-wal`), and a checkpoint copies them
//! into the database file. SQLite's own rule makes the connection that committed past a
//! threshold do the copy before it returns: a sync staging a million changes paid each copy on
//! its one writing connection, and a first load's commit paid the copy of everything it wrote
//! before the run could end. Here a commit only signals a copy when at least [`COPY_BYTES`]
//! have been added since the last one (SQLite counts the journal in pages, each the
//! database's page size), and a task with its own connection makes it
//! (`PRAGMA wal_checkpoint(PASSIVE)`, which never blocks writers or readers) while the writer
//! goes on. Should that task fall far behind or be gone (the store closed), the committing
//! connection copies itself, as SQLite would, past [`INLINE_BYTES`] (or [`COPY_BYTES`] once
//! closed). And once the journal is [`RESTART_BYTES`] long, a commit that finds little left to
//! copy copies that rest itself, so that the next transaction starts the journal again from its
//! beginning: it does not grow without bound.
//!
//! A first load's commit is one transaction of several hundred megabytes (`large`: over
//! 256 MB), which no copy can start on before it ends: copied by the commit itself, it made the
//! commit 0.8 s longer; now the run ends first and the copy follows beside whatever comes next.

use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use libsqlite3_sys as ffi;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{ConnectOptions, SqliteConnection};

/// What is added to the journal before a copy is due: 64 MB. Copied every 4 MB (SQLite's
/// default), a sync wrote the same index pages again at each copy, and its writes took a fifth
/// longer.
pub(super) const COPY_BYTES: i64 = 64 << 20;

/// What is not yet copied past which a committing connection copies it itself, the copying task
/// being that far behind: 1 GB.
pub(super) const INLINE_BYTES: i64 = 1 << 30;

/// The journal's length past which a commit with less than [`COPY_BYTES`] left to copy copies
/// that rest itself: SQLite starts the journal again from its beginning only at a transaction
/// that finds all of it copied, which a copy beside a busy writer never quite achieves, so
/// without this a long staging would grow the journal to all it ever wrote. 256 MB.
pub(super) const RESTART_BYTES: i64 = 4 * COPY_BYTES;

/// What the commits of a store's connections and its copying task share.
pub(super) struct Journal {
    /// [`COPY_BYTES`], [`INLINE_BYTES`] and [`RESTART_BYTES`] (tests use smaller ones).
    copy_bytes: i64,
    inline_bytes: i64,
    restart_bytes: i64,
    /// The database's page size, which is what each page of the journal holds: SQLite counts
    /// the journal in pages. Read by the copying task as it starts (a database keeps the size
    /// it was created with).
    page_bytes: AtomicI64,
    /// Told when a copy is due.
    due: tokio::sync::Notify,
    /// Pages of the journal copied, as the last copy said.
    copied: AtomicI64,
    /// The journal's length at the last commit: a shorter one has started again.
    length: AtomicI64,
    /// The store is closed: no task copies any more.
    closed: AtomicBool,
}

impl Journal {
    /// A journal for a new pool, and the address its connections' hook is given: the journal
    /// is kept for the life of the process (a few bytes per store opened), since a connection
    /// may outlive the store.
    pub(super) fn new() -> (Arc<Journal>, usize) {
        Journal::with_thresholds(COPY_BYTES, INLINE_BYTES, RESTART_BYTES)
    }

    fn with_thresholds(copy: i64, inline: i64, restart: i64) -> (Arc<Journal>, usize) {
        let journal = Arc::new(Journal {
            copy_bytes: copy,
            inline_bytes: inline,
            restart_bytes: restart,
            page_bytes: AtomicI64::new(4096),
            due: tokio::sync::Notify::new(),
            copied: AtomicI64::new(0),
            length: AtomicI64::new(0),
            closed: AtomicBool::new(false),
        });
        let address = Arc::into_raw(journal.clone()) as usize;
        (journal, address)
    }

    /// Pages a journal now `frames` pages long holds that no copy has copied.
    fn behind(&self, frames: i64) -> i64 {
        if frames < self.length.swap(frames, Ordering::AcqRel) {
            // Started again from its beginning: nothing of it is copied.
            self.copied.store(0, Ordering::Release);
        }
        let copied = self.copied.load(Ordering::Acquire);
        match frames >= copied {
            true => frames - copied,
            false => frames,
        }
    }

    /// What a commit that left the journal `frames` pages long does.
    fn after_commit(&self, frames: i64) -> Step {
        let page = self.page_bytes.load(Ordering::Acquire);
        let behind = self.behind(frames).saturating_mul(page);
        let length = frames.saturating_mul(page);
        let closed = self.closed.load(Ordering::Acquire);
        if closed && behind >= self.copy_bytes
            || behind >= self.inline_bytes
            || length >= self.restart_bytes && behind > 0 && behind < self.copy_bytes
        {
            Step::CopyHere
        } else if behind >= self.copy_bytes {
            Step::Signal
        } else {
            Step::Nothing
        }
    }
}

#[derive(Debug, PartialEq)]
enum Step {
    CopyHere,
    Signal,
    Nothing,
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
    // SAFETY: `journal` is the address `watched` was given: a journal that lives for the
    // process.
    let journal = unsafe { &*(journal as *const Journal) };
    match journal.after_commit(i64::from(frames)) {
        Step::CopyHere => {
            let (mut length, mut copied): (c_int, c_int) = (0, 0);
            // SAFETY: `db` and `name` are the committing connection and its database, valid
            // for this call (a checkpoint from the hook is what SQLite's own hook does); the
            // counts are written into locals.
            let code = unsafe {
                ffi::sqlite3_wal_checkpoint_v2(
                    db,
                    name,
                    ffi::SQLITE_CHECKPOINT_PASSIVE,
                    &mut length,
                    &mut copied,
                )
            };
            if code == ffi::SQLITE_OK && copied >= 0 {
                journal.copied.store(i64::from(copied), Ordering::Release);
            }
        }
        Step::Signal => journal.due.notify_one(),
        Step::Nothing => {}
    }
    ffi::SQLITE_OK
}

/// The copying task of a store; ends it when dropped.
pub(super) struct Copier {
    journal: Arc<Journal>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Copier {
    /// Ends the copying task and waits until its connection is closed (the store is closing:
    /// the pool's last connection then makes the final copy and removes the journal).
    pub(super) async fn close(&self) {
        self.stop();
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// The page size the journal is counted in.
    #[cfg(test)]
    pub(super) fn page_bytes(&self) -> i64 {
        self.journal.page_bytes.load(Ordering::Acquire)
    }

    fn stop(&self) {
        self.journal.closed.store(true, Ordering::Release);
        self.journal.due.notify_one();
    }
}

impl Drop for Copier {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the task that copies the journal of the database `options` open (the pool's own
/// settings) when due; it ends when the [`Copier`] is closed or dropped.
pub(super) async fn start(
    options: &SqliteConnectOptions,
    journal: Arc<Journal>,
) -> Result<Copier, sqlx::Error> {
    let mut connection = options.connect().await?;
    let (page_bytes,): (i64,) = sqlx::query_as("PRAGMA page_size")
        .fetch_one(&mut connection)
        .await?;
    journal
        .page_bytes
        .store(page_bytes.max(512), Ordering::Release);
    let task = tokio::spawn(copy_when_due(journal.clone(), connection));
    Ok(Copier {
        journal,
        task: std::sync::Mutex::new(Some(task)),
    })
}

async fn copy_when_due(journal: Arc<Journal>, mut connection: SqliteConnection) {
    loop {
        journal.due.notified().await;
        if journal.closed.load(Ordering::Acquire) {
            break;
        }
        // (whether another copy was under way, the journal's pages, those copied)
        let copied: Result<(i64, i64, i64), _> = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&mut connection)
            .await;
        match copied {
            // Pages a reader still needs stay uncopied: the next commit asks again.
            Ok((0, _, copied)) if copied >= 0 => journal.copied.store(copied, Ordering::Release),
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(error = %err, "could not copy SQLite's journal into the database file; commits copy it themselves past 1 GB");
            }
        }
    }
    let _ = sqlx::Connection::close(connection).await;
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

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
        let (journal, address) = Journal::with_thresholds(20 * 4096, 1 << 40, 1 << 40);
        let options = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let pool = watched(SqlitePoolOptions::new().max_connections(1), address)
            .connect_with(options.clone())
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
        let copier = start(&options, journal.clone()).await.unwrap();
        let mut waited = 0;
        while journal.copied.load(Ordering::Acquire) == 0 && waited < 100 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            waited += 1;
        }
        let copied = journal.copied.load(Ordering::Acquire);
        assert!(copied >= 200, "the task copied the journal: {copied} pages");
        // Gone with the store: commits copy themselves again, past the copy threshold.
        copier.close().await;
        write(&pool, 3).await;
        let now = journal.copied.load(Ordering::Acquire);
        assert!(
            now != copied && now > 0,
            "a commit copied the journal itself: {copied} then {now}"
        );
        pool.close().await;
    }

    /// A journal that signals at 100 pages of 4 KB, copies inline at 1,000 and starts again
    /// from 400, of a database whose pages are `page_bytes` long.
    fn small_journal(page_bytes: i64) -> Arc<Journal> {
        let (journal, _) = Journal::with_thresholds(100 * 4096, 1_000 * 4096, 400 * 4096);
        journal.page_bytes.store(page_bytes, Ordering::Release);
        journal
    }

    #[test]
    fn a_commit_signals_copies_itself_or_does_nothing_by_what_is_left_to_copy() {
        let journal = small_journal(4096);
        assert_eq!(journal.after_commit(50), Step::Nothing);
        assert_eq!(journal.after_commit(150), Step::Signal);
        // The task copied 150 pages; 60 more since.
        journal.copied.store(150, Ordering::Release);
        assert_eq!(journal.after_commit(210), Step::Nothing);
        assert_eq!(journal.after_commit(260), Step::Signal);
        // The task is far behind: the commit copies.
        assert_eq!(journal.after_commit(1_200), Step::CopyHere);
        // A long journal with a little left: the commit copies the rest, so that it can start
        // again.
        journal.copied.store(1_150, Ordering::Release);
        assert_eq!(journal.after_commit(1_200), Step::CopyHere);
        journal.copied.store(1_200, Ordering::Release);
        assert_eq!(journal.after_commit(1_200), Step::Nothing);
        // Started again: counted from its beginning, not from the old journal's copy.
        assert_eq!(journal.after_commit(30), Step::Nothing);
        assert_eq!(journal.after_commit(130), Step::Signal);
        // Closed: copies itself as SQLite would.
        journal.closed.store(true, Ordering::Release);
        assert_eq!(journal.after_commit(140), Step::CopyHere);
        // Pages twice as large: the same bytes are half as many pages.
        let journal = small_journal(8192);
        assert_eq!(journal.after_commit(49), Step::Nothing);
        assert_eq!(journal.after_commit(50), Step::Signal);
        assert_eq!(journal.after_commit(500), Step::CopyHere);
        // A long journal's rest is copied by the commit from 200 pages of 8 KB on (the bytes of
        // 400 pages of 4 KB), with less left than the 50 pages a copy waits for.
        let journal = small_journal(8192);
        assert_eq!(journal.after_commit(190), Step::Signal);
        journal.copied.store(190, Ordering::Release);
        assert_eq!(journal.after_commit(199), Step::Nothing);
        assert_eq!(journal.after_commit(200), Step::CopyHere);
    }
}
