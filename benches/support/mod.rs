//! What the benchmarks share: the emulator as its own process (so memory figures are
//! Provost's alone), a reader of it, an org synced into a fresh SQLite store, and the process's
//! peak memory. Each bench uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use provost_connector::secret::Secret;
use provost_salesforce::reader::{ReadOptions, SalesforceReader};
use provost_salesforce::{ClientConfig, Credentials, SalesforceClient};
use serde_json::Value;

/// Salesforce write calls (record collections, `composite/sobjects`) the emulator at `sf` has
/// answered.
pub async fn write_calls(client: &reqwest::Client, sf: &str) -> u64 {
    let body: Value = client
        .get(format!("{sf}/__emulator/calls"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["by_endpoint"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.ends_with("composite/sobjects"))
        .map(|(_, v)| v.as_u64().unwrap())
        .sum()
}

/// The process's peak resident memory since the last reset, in MiB.
pub fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

/// Resident memory now, in MB.
pub fn rss_mb() -> f64 {
    status_mb("VmRSS:")
}

/// A figure of `/proc/self/status`, in MB.
fn status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resets the peak RSS, so each measurement sees its own peak (Linux 4.0+).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

pub struct EmulatorProcess {
    pub child: Child,
    pub info: Value,
    _dir: tempfile::TempDir,
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_emulator(preset: &str) -> EmulatorProcess {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    let mut child = Command::new(env!("CARGO_BIN_EXE_provost"))
        .args(["emulator", "--preset", preset, "--daily-limit", "100000000"])
        .arg("--key-file")
        .arg(&key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start provost emulator");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: Value = serde_json::from_str(&line).expect("the emulator's JSON line");
    EmulatorProcess {
        child,
        info,
        _dir: dir,
    }
}

pub fn reader(emulator: &EmulatorProcess) -> SalesforceReader {
    reader_with(emulator, true)
}

/// The same, reading object, field and setup-entity permissions or not.
pub fn reader_with(emulator: &EmulatorProcess, read_access: bool) -> SalesforceReader {
    let info = &emulator.info;
    let credentials = Credentials::JwtBearer {
        client_id: info["client_id"].as_str().unwrap().to_owned(),
        username: info["username"].as_str().unwrap().to_owned(),
        private_key_pem: Secret::new(
            std::fs::read_to_string(info["private_key_path"].as_str().unwrap()).unwrap(),
        ),
    };
    let config = ClientConfig::new(info["login_url"].as_str().unwrap());
    SalesforceReader::new(
        SalesforceClient::new(config, credentials).unwrap(),
        ReadOptions {
            exclude_portal_users: true,
            include_inactive_users: true,
            read_access,
        },
    )
}

/// The emulator's `preset` org, fully synced into a new SQLite file in `dir` (the emulator is
/// stopped afterwards): the store, the org, and the database's configuration.
pub async fn synced_sqlite(
    preset: &str,
    dir: &std::path::Path,
    max_connections: u32,
) -> (
    std::sync::Arc<dyn provost::store::Store>,
    provost::store::OrgRecord,
    provost::config::DatabaseConfig,
) {
    let url = format!("sqlite://{}", dir.join("provost.db").display());
    synced(preset, &url, max_connections).await
}

/// The `preset` org synced into the (new or empty) database at `url`.
pub async fn synced(
    preset: &str,
    url: &str,
    max_connections: u32,
) -> (
    std::sync::Arc<dyn provost::store::Store>,
    provost::store::OrgRecord,
    provost::config::DatabaseConfig,
) {
    use provost::store::sync::{RunStatus, SyncMode};
    let emulator = start_emulator(preset);
    let database = provost::config::DatabaseConfig {
        url: provost::config::DatabaseUrl::new(url.to_owned()),
        max_connections,
        acquire_timeout_ms: 5_000,
    };
    let store = provost::store::open(&database).await.unwrap();
    store.migrate().await.unwrap();
    let org = store.ensure_org("bench").await.unwrap();
    let started = std::time::Instant::now();
    let finished = provost::sync::run(
        &store,
        &org,
        &reader(&emulator),
        &provost::sync::SyncRequest {
            mode: SyncMode::Full,
            started_by: "bench".to_owned(),
            api_budget_percent: 100,
            concurrency: provost::sync::DEFAULT_CONCURRENCY,
            skip_if_synced_within: None,
        },
        &provost::sync::progress::LogObserver,
    )
    .await
    .expect("the sync runs");
    assert_eq!(finished.run.status, RunStatus::Succeeded);
    eprintln!(
        "synced the {preset} org in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    (store, org, database)
}
