//! The `entitlements` report of the emulator's `large` org to CSV, from SQLite:
//! `cargo bench --bench reports`.
//!
//! The org is synced first (the emulator runs as its own process), then the report is written
//! to a file `PROVOST_BENCH_ROUNDS` times (default 3). Each round prints the wall time, rows,
//! rows per second, the file's size, and the peak resident memory of the round (the peak is
//! reset before each), next to the memory the process held before it; then once more with
//! `--as-of` now (the same rows, rebuilt from the change history). Then the access questions
//! auditors ask, each `PROVOST_BENCH_ROUNDS` times with its median: who can read one field
//! (`field-access --field Contact.SSN__c`), who can delete one object's records
//! (`object-access --object Opportunity --action delete`), who can use one connected app
//! (`setup-access --setup-entity DataLoader`).

use std::sync::Arc;
use std::time::Instant;

use provost::reports::manifest::Manifest;
use provost::reports::output::Format;
use provost::reports::{self, Params, Report};
use provost::store::Store;

mod support;
use support::{peak_rss_mb, reset_peak_rss, synced_sqlite};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn current_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Writes the entitlements report with `params` to `path`, timed, with the peak reset first.
async fn timed(store: &Arc<dyn Store>, params: &Params, path: &std::path::Path) -> (f64, Manifest) {
    timed_report(store, Report::Entitlements, params, path).await
}

/// Writes `report` with `params` to `path`, timed, with the peak reset first.
async fn timed_report(
    store: &Arc<dyn Store>,
    report: Report,
    params: &Params,
    path: &std::path::Path,
) -> (f64, Manifest) {
    reset_peak_rss();
    let started = Instant::now();
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let manifest = reports::generate(store, "bench", report, params, Format::Csv, file)
        .await
        .unwrap();
    (started.elapsed().as_secs_f64(), manifest)
}

fn main() {
    // As the `provost` binary does.
    provost::util::memory::tune_allocator();
    let rounds: usize = std::env::var("PROVOST_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let preset = std::env::var("PROVOST_BENCH_PRESET").unwrap_or_else(|_| "large".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (store, _org, _) = synced_sqlite(&preset, dir.path(), 4).await;

        println!("round  seconds  rows      rows/s   file MB  peak MB (held before)");
        let mut times = Vec::new();
        for round in 1..=rounds {
            let path = dir.path().join(format!("entitlements-{round}.csv"));
            let before = current_rss_mb();
            let (seconds, manifest) = timed(&store, &Params::default(), &path).await;
            println!(
                "{round:>5}  {seconds:>7.2}  {:>8}  {:>7.0}  {:>7.1}  {:>7.0} ({before:.0})",
                manifest.rows,
                manifest.rows as f64 / seconds,
                manifest.bytes as f64 / 1_048_576.0,
                peak_rss_mb()
            );
            times.push(seconds);
            std::fs::remove_file(&path).unwrap();
        }
        // The same report rebuilt from the change history (`--as-of` now).
        let path = dir.path().join("entitlements-as-of.csv");
        let as_of = Params {
            as_of: Some(chrono::Utc::now()),
            ..Params::default()
        };
        let (seconds, manifest) = timed(&store, &as_of, &path).await;
        println!(
            "as-of  {seconds:>7.2}  {:>8}  {:>7.0}  {:>7.1}  {:>7.0}",
            manifest.rows,
            manifest.rows as f64 / seconds,
            manifest.bytes as f64 / 1_048_576.0,
            peak_rss_mb()
        );
        times.sort_by(f64::total_cmp);
        println!(
            "median over {rounds} rounds: {:.2} s for the entitlements report of the {preset} org",
            times[times.len() / 2]
        );

        let questions = [
            (
                "readers of Contact.SSN__c",
                Report::FieldAccess,
                Params {
                    field: Some("Contact.SSN__c".to_owned()),
                    ..Params::default()
                },
            ),
            (
                "deleters of Opportunity",
                Report::ObjectAccess,
                Params {
                    object: Some("Opportunity".to_owned()),
                    action: Some("delete".to_owned()),
                    ..Params::default()
                },
            ),
            (
                "users of DataLoader",
                Report::SetupAccess,
                Params {
                    setup_entity: Some("DataLoader".to_owned()),
                    ..Params::default()
                },
            ),
        ];
        for (question, report, params) in questions {
            let mut times = Vec::new();
            let mut rows = 0;
            for round in 1..=rounds {
                let path = dir.path().join(format!("access-{round}.csv"));
                let (seconds, manifest) = timed_report(&store, report, &params, &path).await;
                times.push(seconds);
                rows = manifest.rows;
                std::fs::remove_file(&path).unwrap();
            }
            times.sort_by(f64::total_cmp);
            println!(
                "median over {rounds} rounds: {:.3} s for the {question} ({} report, {rows} rows, peak {:.0} MB)",
                times[times.len() / 2],
                report.as_str(),
                peak_rss_mb()
            );
        }
    });
}
