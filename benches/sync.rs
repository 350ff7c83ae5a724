//! A full sync of the emulator's `large` org into a fresh store, then re-syncs of the
//! unchanged org: `cargo bench --bench sync`.
//!
//! The emulator runs as its own process (`provost emulator`), so the peak memory printed is
//! Provost's alone. For each backend (SQLite always; PostgreSQL when
//! `PROVOST_BENCH_POSTGRES_URL` names a server, default `postgres://postgres@127.0.0.1:5432/postgres`
//! if it answers) it prints wall time, rows per second, API calls against the minimum possible
//! (the sum over the queries of ceil(rows / 2000)), peak resident memory, and the same for an
//! incremental and a full re-sync of the unchanged org.
//!
//! `PROVOST_BENCH_PRESETS=large,xlarge` also syncs an org twice as large, for memory growth.
//! `PROVOST_BENCH_LATENCY_MS` (default `0,100`) adds that much latency to every emulated call,
//! as a real org's answers take; each latency runs Provost with its default concurrency and
//! with one query at a time (`PROVOST_BENCH_CONCURRENCY`, default `6,1`), and with the first
//! of those without object, field and setup-entity permissions (what the script reads; so does
//! PostgreSQL, on loopback); when Python's simple-salesforce is installed, the export script
//! an admin would otherwise run (`benches/export_script.py`). `PROVOST_BENCH_TIMELINE=1`
//! prints when each resource is stored, page by page, with the resident memory then.
//! `PROVOST_BENCH_ACCESS=off` runs SQLite only without those permissions (`on`: only with
//! them; default both), to measure one of the two quickly.

use std::sync::Arc;
use std::time::Instant;

use provost::config::{DatabaseConfig, DatabaseUrl};
use provost::store::sync::{ChangeQuery, ResourceState, RunStatus, SyncMode, SyncRun};
use provost::store::{self, Store};
use provost::sync::{self, SyncRequest};
use sqlx::Connection;

// The same allocator as the `provost` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: u64 = 2000;

mod support;
use support::{peak_rss_mb, reader, reader_with, reset_peak_rss, start_emulator, EmulatorProcess};

/// CPU seconds (user + system) a process has used, from `/proc/PID/stat`.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is the 12th, stime 13th.
    let rest = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

async fn postgres_database() -> Option<(String, String, String)> {
    let admin = std::env::var("PROVOST_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let mut connection = sqlx::PgConnection::connect(&admin).await.ok()?;
    let name = format!("provost_bench_{}", std::process::id());
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\""))
        .execute(&mut connection)
        .await
        .ok()?;
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut connection)
        .await
        .ok()?;
    let mut url = url::Url::parse(&admin).ok()?;
    url.set_path(&name);
    Some((url.to_string(), admin, name))
}

/// Notes when the run starts committing; with `PROVOST_BENCH_TIMELINE=1`, also prints when
/// each resource's storing starts and ends and when each page of it is stored, with the
/// resident memory then.
struct CommitClock {
    committing: std::sync::Mutex<Option<Instant>>,
    started: Instant,
    timeline: bool,
}

impl CommitClock {
    fn new() -> CommitClock {
        CommitClock {
            committing: std::sync::Mutex::new(None),
            started: Instant::now(),
            timeline: std::env::var("PROVOST_BENCH_TIMELINE").is_ok_and(|v| v == "1"),
        }
    }

    fn mark(&self, what: &str, resource: &str, pages: i64) {
        if self.timeline {
            let at = self.started.elapsed().as_secs_f64();
            let rss = support::rss_mb();
            println!("  {at:>7.3} s  {rss:>6.1} MB  {what:<8} {resource} (page {pages})");
        }
    }
}

impl provost::sync::progress::Observer for CommitClock {
    fn resource_started(
        &self,
        _resource: &provost_connector::connector::ResourceType,
        state: &ResourceState,
    ) {
        self.mark("started", &state.resource, state.pages);
    }

    fn page_read(
        &self,
        _resource: &provost_connector::connector::ResourceType,
        state: &ResourceState,
    ) {
        self.mark("page", &state.resource, state.pages);
    }

    fn resource_finished(&self, state: &ResourceState) {
        self.mark("finished", &state.resource, state.pages);
    }

    fn committing(&self, _run: &SyncRun) {
        self.mark("commit", "", 0);
        *self.committing.lock().unwrap() = Some(Instant::now());
    }
}

struct Measured {
    /// Seconds the commit took.
    commit: f64,
    run: SyncRun,
    seconds: f64,
    /// CPU seconds of Provost's process and of the emulator's during the run.
    cpu: (f64, f64),
    peak_mb: f64,
    calls: u64,
}

async fn measure(
    store: &Arc<dyn Store>,
    emulator: &EmulatorProcess,
    mode: SyncMode,
    (concurrency, access): (usize, bool),
) -> Measured {
    let org = store.ensure_org("bench").await.unwrap();
    let reader = reader_with(emulator, access);
    reset_peak_rss();
    let cpu_before = (
        cpu_seconds("self"),
        cpu_seconds(&emulator.child.id().to_string()),
    );
    let started = Instant::now();
    let request = SyncRequest {
        mode,
        started_by: "bench".to_owned(),
        api_budget_percent: 100,
        concurrency,
        skip_if_synced_within: None,
    };
    let clock = CommitClock::new();
    let finished = sync::run(store, &org, &reader, &request, &clock)
        .await
        .expect("the sync runs");
    let seconds = started.elapsed().as_secs_f64();
    let commit = clock
        .committing
        .lock()
        .unwrap()
        .map_or(0.0, |at| at.elapsed().as_secs_f64());
    let cpu = (
        cpu_seconds("self") - cpu_before.0,
        cpu_seconds(&emulator.child.id().to_string()) - cpu_before.1,
    );
    assert_eq!(
        finished.run.status,
        RunStatus::Succeeded,
        "{:?}",
        finished.run.error
    );
    Measured {
        commit,
        calls: finished.run.api_calls as u64,
        run: finished.run,
        seconds,
        cpu,
        peak_mb: peak_rss_mb(),
    }
}

async fn bench_backend(
    label: &str,
    url: &str,
    emulator: &EmulatorProcess,
    (concurrency, access): (usize, bool),
) {
    let label = match access {
        true => format!("{label} x{concurrency}"),
        false => format!("{label} x{concurrency} no access"),
    };
    let store = store::open(&DatabaseConfig {
        url: DatabaseUrl::new(url),
        max_connections: 4,
        acquire_timeout_ms: 5_000,
    })
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let full = measure(&store, emulator, SyncMode::Full, (concurrency, access)).await;
    let resources = store.sync_resources(full.run.id).await.unwrap();
    let minimum: u64 = resources
        .iter()
        .map(|r| (r.total.unwrap_or(0) as u64).div_ceil(BATCH).max(1))
        .sum();
    let source_rows: i64 = resources.iter().map(|r| r.total.unwrap_or(0)).sum();
    println!(
        "{label:<10} full sync      {:>7.2} s  {:>9} rows stored ({:>7.0}/s, {} source records)  {} API calls vs minimum {minimum} (+{:.1}%)  peak RSS {:>6.1} MB",
        full.seconds,
        full.run.counts.changes(),
        full.run.counts.changes() as f64 / full.seconds,
        source_rows,
        full.calls,
        (full.calls as f64 / minimum as f64 - 1.0) * 100.0,
        full.peak_mb,
    );
    println!(
        "{label:<10}   of which the commit {:.2} s; CPU during the full sync: Provost {:.1} s, emulator {:.1} s (2 cores shared)",
        full.commit, full.cpu.0, full.cpu.1
    );
    for (name, mode) in [
        ("incremental", SyncMode::Incremental),
        ("full", SyncMode::Full),
    ] {
        let again = measure(&store, emulator, mode, (concurrency, access)).await;
        let org = store.ensure_org("bench").await.unwrap();
        let history = store
            .list_changes(
                org.id,
                &ChangeQuery {
                    run: Some(again.run.id),
                    limit: 10,
                    ..ChangeQuery::default()
                },
            )
            .await
            .unwrap();
        println!(
            "{label:<10} {name:<11} re-sync of the unchanged org {:>7.2} s ({:.0}% of the full sync)  {} changes, {} history rows  {} API calls  peak RSS {:>6.1} MB",
            again.seconds,
            again.seconds / full.seconds * 100.0,
            again.run.counts.changes(),
            history.len(),
            again.calls,
            again.peak_mb,
        );
    }
    store.close().await;
}

/// Sets the emulator's added latency per call.
async fn set_latency(emulator: &EmulatorProcess, latency_ms: u64) {
    let url = format!(
        "{}/__emulator/faults",
        emulator.info["login_url"].as_str().unwrap()
    );
    let http = reqwest::Client::new();
    let mut faults: serde_json::Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    faults["latency_ms"] = latency_ms.into();
    let answer = http.put(&url).json(&faults).send().await.unwrap();
    assert!(
        answer.status().is_success(),
        "{}",
        answer.text().await.unwrap()
    );
}

/// What an admin would otherwise run: `benches/export_script.py`, a simple-salesforce script
/// that exports users, permission sets, groups, assignments and frozen logins to CSV.
async fn script_baseline(emulator: &EmulatorProcess, latency_ms: u64) {
    let has_library = std::process::Command::new("python3")
        .args(["-c", "import simple_salesforce"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !has_library {
        println!("script    (simple-salesforce not installed: `pip install simple-salesforce` to compare)");
        return;
    }
    let session = reader(emulator).client().connect().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/benches/export_script.py"
        ))
        .arg(&session.instance_url)
        .arg(session.access_token.expose())
        .arg(dir.path())
        .output()
        .unwrap();
    print!(
        "script     +{latency_ms} ms/call  {}",
        String::from_utf8_lossy(&out.stdout)
    );
    if !out.status.success() {
        println!("script failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}

fn main() {
    // As the `provost` binary does.
    provost::util::memory::tune_allocator();
    let presets = std::env::var("PROVOST_BENCH_PRESETS").unwrap_or_else(|_| "large".to_owned());
    let latencies: Vec<u64> = std::env::var("PROVOST_BENCH_LATENCY_MS")
        .unwrap_or_else(|_| "0,100".to_owned())
        .split(',')
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let default = provost::sync::DEFAULT_CONCURRENCY.to_string();
    let concurrencies: Vec<usize> = std::env::var("PROVOST_BENCH_CONCURRENCY")
        .unwrap_or_else(|_| format!("{default},1"))
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for preset in presets.split(',') {
            let started = Instant::now();
            let emulator = start_emulator(preset);
            println!(
                "preset {preset}: emulator ready in {:.1} s (separate process)",
                started.elapsed().as_secs_f64()
            );
            for &latency in &latencies {
                set_latency(&emulator, latency).await;
                println!("--- {latency} ms added to every Salesforce call");
                script_baseline(&emulator, latency).await;
                // Without object, field and setup-entity permissions: what the script reads.
                let access = std::env::var("PROVOST_BENCH_ACCESS").unwrap_or_default();
                let runs = concurrencies
                    .iter()
                    .map(|&c| (c, true))
                    .filter(|_| access != "off")
                    .chain(concurrencies.first().map(|&c| (c, false)))
                    .filter(|&(_, with)| access != "on" || with);
                for run in runs {
                    let dir = tempfile::tempdir().unwrap();
                    let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
                    bench_backend("SQLite", &sqlite, &emulator, run).await;
                }
                if latency > 0 {
                    continue;
                }
                // With and without object, field and setup-entity permissions, each into a
                // database of its own.
                for access in [true, false] {
                    match postgres_database().await {
                        Some((url, admin, name)) => {
                            bench_backend(
                                "PostgreSQL",
                                &url,
                                &emulator,
                                (provost::sync::DEFAULT_CONCURRENCY, access),
                            )
                            .await;
                            if let Ok(mut connection) = sqlx::PgConnection::connect(&admin).await {
                                let _ = sqlx::query(&format!(
                                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                                ))
                                .execute(&mut connection)
                                .await;
                            }
                        }
                        None => {
                            println!("PostgreSQL: not reachable; set PROVOST_BENCH_POSTGRES_URL");
                            break;
                        }
                    }
                }
            }
        }
    });
}
