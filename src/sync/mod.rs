//! The sync engine: reads an org's access model through a [`Connector`] into the store.
//!
//! A run takes the org's sync lock (one sync per org, also across processes sharing a
//! PostgreSQL database), then reads each resource page by page. Each page is compared with the
//! stored model ([`diff`]) and its changes are staged together with the resource's checkpoint,
//! in one transaction. Nothing a reader sees changes until the run commits: one transaction
//! applies every staged change, which from then on is the change history. A run stopped by the
//! API quota or budget pauses with its checkpoints and the next sync of the org resumes it; so
//! does a run whose process died. A run that fails drops what it staged.

pub mod diff;
pub mod progress;
mod read;
pub mod schedule;
pub mod status;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use provost_connector::connector::{Connector, ConnectorError, ResourceType, Watermark};
use provost_connector::times::Timestamp;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::store::sync::{
    ChangeOp, Entity, LockOutcome, ResourceState, RunId, RunStatus, StagedBefore, StagedChange,
    SyncMode, SyncRun, NO_WATERMARK,
};
use crate::store::{OrgRecord, Store, StoreError};
use diff::{DiffError, Known};
use progress::Observer;
use read::{Item, Pages, Positions, Reading, Stop, Wanted, PAGES_AHEAD};

/// Queries a sync keeps running at once unless the org's configuration says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 6;
/// The most it may keep: Salesforce keeps 10 open query cursors per user, and provisioning
/// and the other lookups of the same user need some.
pub const MAX_CONCURRENCY: usize = 8;

/// How long a lock lasts without renewal: a process that dies frees its org after this.
pub(crate) const LOCK_TTL: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
/// How often a running sync renews its lock.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(15);

/// What to run.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub mode: SyncMode,
    /// What started it (`cli`, `schedule`, `demo`...), recorded on the run.
    pub started_by: String,
    /// Pause when the org's API usage of the day reaches this share (percent) of its limit.
    pub api_budget_percent: u8,
    /// Queries kept running at once (see [`DEFAULT_CONCURRENCY`]).
    pub concurrency: usize,
    /// Skip the run when the org's last run succeeded less than this long ago (checked under
    /// the lock, so replicas whose schedules fire together sync once).
    pub skip_if_synced_within: Option<chrono::TimeDelta>,
}

/// Why a sync could not run or finish. A run that reached Salesforce and failed there is not
/// an error: it ends `failed` (or `paused`) and the returned run says why.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("a sync of org `{org}` is already running ({holder}{}); it holds the org until {expires_at} unless it keeps working. Try again when it has finished", run.map(|r| format!(", run {r}")).unwrap_or_default())]
    Busy {
        org: String,
        holder: String,
        run: Option<RunId>,
        expires_at: Timestamp,
    },
    #[error("org `{org}` was synced by run {run} less than the interval ago; nothing to do")]
    UpToDate { org: String, run: RunId },
    #[error("this process lost the sync lock of org `{org}` (another process took it over after the lease expired); run {run} was not committed and will be resumed by the next sync")]
    LockLost { org: String, run: RunId },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The outcome of [`run`]: the run as stored, and how long this attempt took.
#[derive(Debug, Clone)]
pub struct Finished {
    pub run: SyncRun,
    pub elapsed: std::time::Duration,
}

/// A name for this process as a lock holder: host, process id and a random UUID, so two
/// processes never share one even with the same host name and pid (containers).
pub fn holder_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown-host".to_owned());
    format!(
        "{host}:{}:{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Runs (or resumes) a sync of `org`.
#[tracing::instrument(name = "sync", skip_all, fields(org = %org.name, mode = ?request.mode, run = tracing::field::Empty, trace_id = tracing::field::Empty))]
pub async fn run(
    store: &Arc<dyn Store>,
    org: &OrgRecord,
    connector: &dyn Connector,
    request: &SyncRequest,
    observer: &dyn Observer,
) -> Result<Finished, SyncError> {
    crate::telemetry::record_trace_id(&tracing::Span::current());
    let started = Instant::now();
    let holder = holder_name();
    match store.acquire_sync_lock(org.id, &holder, LOCK_TTL).await? {
        LockOutcome::Acquired => {}
        LockOutcome::Held {
            holder,
            run_id,
            expires_at,
        } => {
            return Err(SyncError::Busy {
                org: org.name.clone(),
                holder,
                run: run_id,
                expires_at,
            })
        }
    }
    if let Some(window) = request.skip_if_synced_within {
        let latest = store.list_sync_runs(org.id, 1).await;
        let recent = match &latest {
            Ok(runs) => runs.first().filter(|run| {
                run.status == RunStatus::Succeeded
                    && run
                        .finished_at
                        .is_some_and(|at| chrono::Utc::now() - at < window)
            }),
            Err(_) => None,
        };
        if let Some(run) = recent {
            let run = run.id;
            store.release_sync_lock(org.id, &holder).await?;
            return Err(SyncError::UpToDate {
                org: org.name.clone(),
                run,
            });
        }
        latest?;
    }
    let lost = Arc::new(AtomicBool::new(false));
    // Aborted on drop: a run whose future is dropped (a cancelled task) stops renewing the
    // lock, which then expires like a dead process's would.
    let heartbeat = AbortOnDrop(tokio::spawn(heartbeat(
        store.clone(),
        org.clone(),
        holder.clone(),
        lost.clone(),
    )));
    let outcome = locked_run(store, org, connector, request, observer, &holder, &lost).await;
    drop(heartbeat);
    if let Err(err) = store.release_sync_lock(org.id, &holder).await {
        tracing::warn!(org = %org.name, error = %err, "releasing the sync lock failed; it expires by itself");
    }
    outcome.map(|run| Finished {
        run,
        elapsed: started.elapsed(),
    })
}

/// A spawned task that ends with the future that spawned it.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

/// Pages of a resource staged beside the one being staged, at most (with the store's leave).
const STAGED_BESIDE: usize = 2;

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> AbortOnDrop<Result<T, StoreError>> {
    /// What the task ended with: its panic goes on here, and a runtime shutting down is an
    /// error.
    async fn outcome(&mut self) -> Result<T, StoreError> {
        match (&mut self.0).await {
            Ok(outcome) => outcome,
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            // The runtime is shutting down.
            Err(_) => Err(StoreError::Database(sqlx::Error::WorkerCrashed)),
        }
    }
}

async fn heartbeat(store: Arc<dyn Store>, org: OrgRecord, holder: String, lost: Arc<AtomicBool>) {
    let mut ticker = tokio::time::interval(HEARTBEAT);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        match store.renew_sync_lock(org.id, &holder, None, LOCK_TTL).await {
            Ok(true) => {}
            Ok(false) => {
                lost.store(true, Ordering::SeqCst);
                return;
            }
            // A busy database (a long commit elsewhere) is retried at the next tick; the
            // commit itself checks the lock, so a lapse can never apply a stale run.
            Err(err) => {
                tracing::warn!(org = %org.name, error = %err, "renewing the sync lock failed")
            }
        }
    }
}

async fn locked_run(
    store: &Arc<dyn Store>,
    org: &OrgRecord,
    connector: &dyn Connector,
    request: &SyncRequest,
    observer: &dyn Observer,
    holder: &str,
    lost: &AtomicBool,
) -> Result<SyncRun, SyncError> {
    let types = connector.resource_types();
    let mut run = match store.unfinished_sync_run(org.id).await? {
        Some(previous) if request.mode == SyncMode::Full && previous.mode != SyncMode::Full => {
            let mut previous = previous;
            previous.error = Some("superseded by a full sync before it completed".to_owned());
            store.fail_sync_run(&previous, None).await?;
            new_run(store, org, types, request).await?
        }
        Some(mut previous) => {
            tracing::info!(org = %org.name, run = %previous.id, status = %previous.status, "resuming the unfinished run");
            previous.attempts += 1;
            previous.status = RunStatus::Running;
            previous.pause_reason = None;
            previous.error = None;
            store.save_sync_run(&previous).await?;
            previous
        }
        None => new_run(store, org, types, request).await?,
    };
    tracing::Span::current().record("run", run.id.0);
    store
        .renew_sync_lock(org.id, holder, Some(run.id), LOCK_TTL)
        .await?;
    observer.run_started(&run);
    let calls_before = connector.calls();
    let api_calls_before = run.api_calls;
    let mut known = known_ids(store, &run).await?;
    let mut restarted: HashSet<&str> = HashSet::new();
    let mut first_attempt = true;
    loop {
        let mut pending = Vec::new();
        for state in store.sync_resources(run.id).await? {
            if state.done {
                if first_attempt {
                    observer.resource_finished(&state);
                }
                continue;
            }
            let Some(resource) = types.iter().find(|t| t.id == state.resource) else {
                let message = format!(
                    "the run reads `{}`, which this connector no longer offers; start a full sync",
                    state.resource
                );
                return fail(store, org, run, message).await;
            };
            pending.push((resource, state));
        }
        first_attempt = false;
        let reading = Reading::new(
            connector,
            lost,
            request.api_budget_percent,
            request.concurrency.clamp(1, MAX_CONCURRENCY),
        );
        let wanted = pending
            .iter()
            .map(|(resource, state)| Wanted {
                resource,
                checkpoint: state.cursor.clone(),
                since: state.since.clone().map(Watermark),
            })
            .collect();
        let (receivers, reader) = reading.start(wanted);
        // The resources are stored one after another while the reader reads ahead: each page
        // compared while the one before is written.
        let storing = async {
            for ((resource, mut state), pages) in pending.into_iter().zip(receivers) {
                observer.resource_started(resource, &state);
                // One compared page waits while one is written (on PostgreSQL, up to three
                // side by side): the writer never waits for the comparing, and no more pages
                // are held than that.
                let (staged, to_write) = mpsc::channel(1);
                let (written, mut reported) = mpsc::channel(PAGES_AHEAD);
                // Writing runs as a task of its own, so the database is handed each page as
                // soon as the one before is in, whatever this task is busy comparing.
                let mut writer = AbortOnDrop(tokio::spawn(
                    write(store.clone(), to_write, written).in_current_span(),
                ));
                let report = async {
                    while let Some(state) = reported.recv().await {
                        observer.page_read(resource, &state);
                    }
                };
                let wrote = writer.outcome();
                let (stopped, written, ()) = tokio::join!(
                    compare(
                        store,
                        org,
                        resource,
                        &mut run,
                        &mut state,
                        &mut known,
                        pages,
                        staged,
                        (connector, calls_before, api_calls_before),
                    ),
                    wrote,
                    report,
                );
                written?;
                if let Some(stop) = stopped? {
                    return Ok::<_, SyncError>(Some((resource, state, stop)));
                }
                observer.resource_finished(&state);
            }
            Ok(None)
        };
        let stopped = {
            let mut reader = std::pin::pin!(reader);
            let mut storing = std::pin::pin!(storing);
            let mut read = false;
            loop {
                tokio::select! {
                    outcome = &mut storing => break outcome?,
                    () = &mut reader, if !read => read = true,
                }
            }
        };
        let Some((resource, state, stop)) = stopped else {
            break;
        };
        match stop {
            Stop::LockLost => {
                return Err(SyncError::LockLost {
                    org: org.name.clone(),
                    run: run.id,
                })
            }
            Stop::Budget(message) => {
                record_api(&mut run, connector, calls_before, api_calls_before);
                return pause(store, run, "api_budget", message).await;
            }
            Stop::Read(ConnectorError::QuotaExhausted { message }) => {
                record_api(&mut run, connector, calls_before, api_calls_before);
                return pause(store, run, "daily_limit", message).await;
            }
            Stop::Read(ConnectorError::InvalidCursor { message })
                if restarted.insert(resource.id) =>
            {
                tracing::warn!(org = %org.name, resource = resource.id, %message, "reading the resource again from the start");
                store.restart_sync_resource(run.id, &state.resource).await?;
                known = known_ids(store, &run).await?;
            }
            Stop::Read(err) => {
                record_api(&mut run, connector, calls_before, api_calls_before);
                return fail(
                    store,
                    org,
                    run,
                    format!("reading {}: {err}", resource.label),
                )
                .await;
            }
            Stop::Contract(message) => {
                record_api(&mut run, connector, calls_before, api_calls_before);
                return fail(store, org, run, message).await;
            }
        }
    }
    observer.committing(&run);
    let tc = std::time::Instant::now();
    let result = commit(store, org, run, holder).await;
    tracing::debug!(org = %org.name, elapsed_ms = tc.elapsed().as_millis() as u64, "committed");
    result
}

async fn commit(
    store: &Arc<dyn Store>,
    org: &OrgRecord,
    mut run: SyncRun,
    holder: &str,
) -> Result<SyncRun, SyncError> {
    run.status = RunStatus::Succeeded;
    run.finished_at = Some(chrono::Utc::now());
    if !store.commit_sync_run(&run, holder, LOCK_TTL).await? {
        return Err(SyncError::LockLost {
            org: org.name.clone(),
            run: run.id,
        });
    }
    // The model may have grown by orders of magnitude: let the planner know.
    if let Err(err) = store.refresh_statistics().await {
        tracing::warn!(org = %org.name, error = %err, "refreshing the planner's statistics failed");
    }
    Ok(store.sync_run(run.id).await?.unwrap_or(run))
}

/// A compared page on its way to the store: the run and checkpoint as they stand after it.
type Staged = (SyncRun, ResourceState, Vec<StagedChange>);

/// The comparing stage: compares each page with the store and passes its changes on, with
/// the checkpoint after it, to [`write`]. Returns why reading stopped early, if it did.
#[allow(clippy::too_many_arguments)]
async fn compare(
    store: &Arc<dyn Store>,
    org: &OrgRecord,
    resource: &ResourceType,
    run: &mut SyncRun,
    state: &mut ResourceState,
    known: &mut Known,
    mut pages: Pages,
    staged: mpsc::Sender<Staged>,
    (connector, calls_before, api_calls_before): (&dyn Connector, u64, i64),
) -> Result<Option<Stop>, SyncError> {
    let mut positions: Option<Positions> = None;
    while let Some(item) = pages.recv().await {
        let (stream, page) = match item {
            Item::Streams(starts) => {
                positions = Some(Positions::new(starts));
                continue;
            }
            Item::Page(_, Err(stop)) => return Ok(Some(stop)),
            Item::Page(stream, Ok(page)) => (stream, page),
        };
        let Some(positions) = positions.as_mut() else {
            return Ok(Some(Stop::Contract(format!(
                "a page of {} came before the streams it is read as",
                resource.label
            ))));
        };
        let rows = page.accounts.len()
            + page.entitlements.len()
            + page.grants.len()
            + page.permissions.len();
        let records = page.records;
        let (total, next, watermark) = (page.total, page.next.clone(), page.watermark.clone());
        // Serialising and digesting is pure computation: on a blocking thread, it runs beside
        // the reading and writing stages instead of taking turns with them.
        let prepared = match tokio::task::spawn_blocking(move || diff::prepare(page)).await {
            Ok(prepared) => prepared,
            Err(err) => {
                return Ok(Some(Stop::Contract(format!(
                    "preparing a page failed: {err}"
                ))))
            }
        };
        let diff = match diff::diff_page(store, org.id, resource.id, prepared, known).await {
            Ok(diff) => diff,
            Err(DiffError::Store(err)) => return Err(err.into()),
            Err(err @ DiffError::OutsideCoverage { .. }) => {
                return Ok(Some(Stop::Contract(err.to_string())))
            }
        };
        run.counts.rows_read += rows as u64;
        run.counts.grants_skipped += diff.grants_skipped;
        run.counts.permissions_skipped += diff.permissions_skipped;
        for change in &diff.changes {
            run.counts.of(change.entity).add(change.op);
        }
        state.pages += 1;
        state.records += records as i64;
        if let Some(total) = total {
            state.total = Some(total as i64);
        }
        if diff.last_key.is_some() {
            state.last_key = diff.last_key.clone();
        }
        if diff.grants_skipped + diff.permissions_skipped > 0 {
            state.watermark = Some(NO_WATERMARK.to_owned());
        } else if let Some(watermark) = watermark {
            if state.watermark.as_deref() != Some(NO_WATERMARK) {
                state.watermark = Some(watermark.0);
            }
        }
        positions.advance(stream, next.map(|c| c.0));
        state.done = positions.done();
        state.cursor = positions.checkpoint();
        record_api(run, connector, calls_before, api_calls_before);
        if staged
            .send((run.clone(), state.clone(), diff.changes))
            .await
            .is_err()
        {
            // The writer stopped on an error, which it returns.
            return Ok(None);
        }
    }
    if !state.done {
        // Never a run committed with a resource half read.
        return Ok(Some(Stop::Contract(format!(
            "reading {} ended before its last page",
            resource.label
        ))));
    }
    Ok(None)
}

/// The writing stage: stages each compared page's changes with its checkpoint, in order, and
/// passes the checkpoint on to be reported.
///
/// Where the database takes several writers (the store gives leave, [`Store::stage_beside`]),
/// up to [`STAGED_BESIDE`] more pages are staged while one is, each a task of its own: a page's
/// changes are written while the page before commits, and its checkpoint waits for that commit.
/// The first failure, in page order, ends the stage (a page's failure is seen as soon as the
/// pages before it are staged); the pages after it are not staged.
async fn write(
    store: Arc<dyn Store>,
    mut staged: mpsc::Receiver<Staged>,
    written: mpsc::Sender<ResourceState>,
) -> Result<(), StoreError> {
    let mut writing: std::collections::VecDeque<AbortOnDrop<Result<ResourceState, StoreError>>> =
        std::collections::VecDeque::with_capacity(STAGED_BESIDE + 1);
    let mut before: Option<StagedBefore> = None;
    let mut open = true;
    loop {
        let mut leave = None;
        let take = open
            && (writing.is_empty()
                || (writing.len() <= STAGED_BESIDE && {
                    leave = store.stage_beside();
                    leave.is_some()
                }));
        tokio::select! {
            biased;
            // The oldest page first: its failure ends the stage without waiting for another.
            // (An async block: select! makes every branch's future, disabled or not.)
            staged_now = async { writing.front_mut().expect("not empty").outcome().await },
                if !writing.is_empty() =>
            {
                writing.pop_front();
                let state = staged_now?;
                // Nobody left to tell is no reason to stop writing what was compared.
                let _ = written.send(state).await;
            }
            page = staged.recv(), if take => {
                let Some((run, state, changes)) = page else {
                    open = false;
                    continue;
                };
                let (staged_now, after) = tokio::sync::oneshot::channel();
                let store = store.clone();
                let previous = before.replace(after);
                writing.push_back(AbortOnDrop(tokio::spawn(
                    async move {
                        store.stage_page(&run, &state, &changes, previous).await?;
                        let _ = staged_now.send(());
                        drop(leave);
                        Ok::<_, StoreError>(state)
                    }
                    .in_current_span(),
                )));
            }
            else => return Ok(()),
        }
    }
}

async fn new_run(
    store: &Arc<dyn Store>,
    org: &OrgRecord,
    types: &[ResourceType],
    request: &SyncRequest,
) -> Result<SyncRun, StoreError> {
    let marks: HashMap<String, String> = match request.mode {
        SyncMode::Full => HashMap::new(),
        SyncMode::Incremental => store.sync_watermarks(org.id).await?.into_iter().collect(),
    };
    let resources: Vec<(&str, Option<String>)> = types
        .iter()
        .map(|t| (t.id, marks.get(t.id).cloned()))
        .collect();
    store
        .create_sync_run(org.id, request.mode, &request.started_by, &resources)
        .await
}

/// The accounts and entitlements that exist for this run: stored, plus what the run staged.
async fn known_ids(store: &Arc<dyn Store>, run: &SyncRun) -> Result<Known, StoreError> {
    let mut known = Known {
        accounts: store
            .stored_ids(run.org, Entity::Account)
            .await?
            .into_iter()
            .collect(),
        entitlements: store
            .stored_ids(run.org, Entity::Entitlement)
            .await?
            .into_iter()
            .collect(),
    };
    for entity in [Entity::Account, Entity::Entitlement] {
        for (id, op) in store.staged_keys(run.id, entity).await? {
            if op != ChangeOp::Updated {
                known.apply(entity, &id, op);
            }
        }
    }
    Ok(known)
}

fn record_api(run: &mut SyncRun, connector: &dyn Connector, calls_before: u64, api_before: i64) {
    run.api_calls = api_before + (connector.calls().saturating_sub(calls_before)) as i64;
    if let Some(quota) = connector.quota() {
        run.api_used = Some(quota.used as i64);
        run.api_limit = Some(quota.limit as i64);
    }
}

async fn fail(
    store: &Arc<dyn Store>,
    org: &OrgRecord,
    mut run: SyncRun,
    message: String,
) -> Result<SyncRun, SyncError> {
    tracing::warn!(run = %run.id, %message, "sync failed; the stored state is unchanged");
    run.status = RunStatus::Failed;
    run.finished_at = Some(chrono::Utc::now());
    let event = failed_event(&org.name, run.mode, &run.started_by, Some(run.id), &message);
    run.error = Some(message);
    store.fail_sync_run(&run, Some(&event)).await?;
    Ok(run)
}

/// The audit entry of a run that failed or could not start (`run` is `None` until the store
/// has recorded it); webhooks send it as `sync.failed`.
pub fn failed_event(
    org: &str,
    mode: SyncMode,
    started_by: &str,
    run: Option<RunId>,
    error: &str,
) -> crate::audit::AuditEvent {
    let mut data = serde_json::json!({
        "mode": mode.as_str(),
        "started_by": started_by,
        "error": error,
    });
    if let Some(run) = run {
        data["run"] = serde_json::json!(run.0);
    }
    crate::audit::AuditEvent {
        actor: format!("sync:{started_by}"),
        org: Some(org.to_owned()),
        request_id: None,
        event: "sync_failed".to_owned(),
        data,
    }
}

async fn pause(
    store: &Arc<dyn Store>,
    mut run: SyncRun,
    reason: &str,
    message: String,
) -> Result<SyncRun, SyncError> {
    tracing::warn!(run = %run.id, reason, %message, "sync paused");
    run.status = RunStatus::Paused;
    run.pause_reason = Some(reason.to_owned());
    run.error = Some(message);
    store.save_sync_run(&run).await?;
    Ok(run)
}
