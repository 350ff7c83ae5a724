//! An access review of every permission set grant of the emulator's `large` org, on SQLite:
//! `cargo bench --bench reviews` (`PROVOST_BENCH_PRESET=medium` for a smaller org).
//!
//! Prints: how long starting the campaign takes (items frozen, reviewers and suggestions worked
//! out, stored) and the peak resident memory of the start; how long a page of 50 of a
//! reviewer's queue takes (median of 50, for the largest queue and for a typical manager's);
//! and 10,000 revoke decisions made many at once (as `POST .../reviews/decisions` makes them)
//! through to revocations completed in the emulator by the executor: the time of the
//! decisions, of the remediation, and the Salesforce write calls made.

use std::sync::Arc;
use std::time::Instant;

use provost::config::{AuthConfig, Config, DatabaseConfig, DatabaseUrl, OrgConfig};
use provost::org::sync::{request_for, sync_org};
use provost::provisioning::executor::Executor;
use provost::reviews::campaigns::{self, CampaignInput};
use provost::reviews::decide::{self, Verdict};
use provost::reviews::Actor;
use provost::store;
use provost::store::reviews::ItemFilter;
use provost::store::sync::SyncMode;
use provost::sync::progress::LogObserver;
use provost_salesforce_emulator::{server, Emulator, EmulatorConfig, Preset};
use serde_json::json;

mod support;
use support::{peak_rss_mb, reset_peak_rss, write_calls};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DECISIONS: usize = 10_000;

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

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    // As the `provost` binary does.
    provost::util::memory::tune_allocator();
    let preset = std::env::var("PROVOST_BENCH_PRESET").unwrap_or_else(|_| "large".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let emulator = Emulator::new(EmulatorConfig {
            preset: Preset::by_name(&preset).unwrap(),
            seed: 11,
            daily_limit: 100_000_000,
            ..EmulatorConfig::default()
        });
        let sf = server::spawn(emulator.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, &emulator.app.private_key_pem).unwrap();
        let mut config = Config {
            orgs: vec![OrgConfig {
                name: "acme".to_owned(),
                login_url: sf.clone(),
                api_version: "62.0".to_owned(),
                exclude_portal_users: true,
                include_inactive_users: true,
                sync_access_permissions: false,
                batch_size: 2000,
                sync_interval_minutes: None,
                api_budget_percent: 100,
                sync_concurrency: provost::sync::DEFAULT_CONCURRENCY as u8,
                auto_approve: Vec::new(),
                user_defaults: Default::default(),
                scim_max_changes: provost::config::default_scim_max_changes(),
                entitlement_owners: Default::default(),
                auth: AuthConfig::JwtBearer {
                    client_id: emulator.app.client_id.clone(),
                    username: emulator.integration_username(),
                    private_key_file: key,
                },
            }],
            ..Config::default()
        };
        config.database = DatabaseConfig {
            url: DatabaseUrl::new(format!(
                "sqlite://{}",
                dir.path().join("provost.db").display()
            )),
            max_connections: 4,
            acquire_timeout_ms: 30_000,
        };
        config.secrets.key_file = dir.path().join("provost.key");
        config.reviews.max_items = 10_000_000;
        let store = store::open(&config.database).await.unwrap();
        store.migrate().await.unwrap();
        let org_cfg = config.orgs[0].clone();
        let started = Instant::now();
        sync_org(
            &config,
            &org_cfg,
            &store,
            &request_for(&org_cfg, SyncMode::Full, "bench"),
            false,
            &LogObserver,
        )
        .await
        .unwrap();
        eprintln!(
            "synced the {preset} org in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let org = store.ensure_org("acme").await.unwrap();
        let config = Arc::new(config);

        // Start: every permission set grant, each user's manager reviewing.
        let input: CampaignInput = serde_json::from_value(json!({
            "name": "Every permission set",
            "scope": {"entitlement_types": ["permission_set"]},
            "reviewers": {"stages": ["manager"], "fallback": ["secops"]},
            "duration_days": 14,
        }))
        .unwrap();
        let draft = campaigns::create(&store, &org, "bench", &input).await.unwrap();
        let held_before = current_rss_mb();
        reset_peak_rss();
        let started = Instant::now();
        let campaign = campaigns::start(&store, &config, &config.orgs[0], &org, draft.id, "bench", false)
            .await
            .unwrap();
        let start_seconds = started.elapsed().as_secs_f64();
        let start_peak = peak_rss_mb();
        let reviewers = store.open_by_reviewer(campaign.id).await.unwrap();
        println!(
            "start: {} items, {} reviewers, {:.2} s, peak RSS {:.0} MB (the process held {:.0} MB before, the in-process emulator's org included)",
            campaign.items,
            reviewers.len(),
            start_seconds,
            start_peak,
            held_before
        );

        // A page of a reviewer's queue: the largest queue, and a typical manager's.
        let typical = &reviewers[reviewers.len() / 2];
        for (what, (reviewer, open)) in [("largest", &reviewers[0]), ("typical", typical)] {
            let mut times = Vec::new();
            let mut after = None;
            for _ in 0..50 {
                let started = Instant::now();
                let page = store
                    .list_items(
                        org.id,
                        &ItemFilter {
                            reviewer: Some(reviewer.clone()),
                            state: Some("open".into()),
                            after,
                            limit: 50,
                            ..ItemFilter::default()
                        },
                    )
                    .await
                    .unwrap();
                times.push(started.elapsed().as_secs_f64() * 1000.0);
                after = page.last().map(|i| (i.priority, i.id)).filter(|_| page.len() == 50);
            }
            println!(
                "queue page of 50 ({what}, {open} open items): median {:.2} ms, max {:.2} ms",
                median(times.clone()),
                times.iter().copied().fold(0.0, f64::max)
            );
        }

        // 10,000 revocations decided many at once, reviewer by reviewer, then carried out.
        let mut decided = 0;
        let calls_before = write_calls(&reqwest::Client::new(), &sf).await;
        let started = Instant::now();
        for (reviewer, _) in &reviewers {
            if decided >= DECISIONS {
                break;
            }
            let ids: Vec<i64> = store
                .list_items(
                    org.id,
                    &ItemFilter {
                        campaign: Some(campaign.id),
                        reviewer: Some(reviewer.clone()),
                        state: Some("open".into()),
                        limit: u32::try_from(DECISIONS - decided).unwrap(),
                        ..ItemFilter::default()
                    },
                )
                .await
                .unwrap()
                .into_iter()
                .map(|i| i.id)
                .collect();
            let outcomes = decide::decide(
                &store,
                &config.orgs[0],
                &org,
                &Actor {
                    identity: reviewer.clone(),
                    admin: false,
                },
                &ids,
                Verdict::Revoke,
                Some("bench: no longer needed"),
            )
            .await
            .unwrap();
            decided += outcomes.iter().filter(|o| o.ok).count();
        }
        let decide_seconds = started.elapsed().as_secs_f64();
        let executor = Executor::new(config.clone(), store.clone(), "bench".into());
        let started = Instant::now();
        let mut carried = 0;
        loop {
            let n = executor.run_once().await.unwrap();
            if n == 0 {
                break;
            }
            carried += n;
        }
        let execute_seconds = started.elapsed().as_secs_f64();
        let calls = write_calls(&reqwest::Client::new(), &sf).await - calls_before;
        let summary = store.summary(campaign.id, chrono::Utc::now()).await.unwrap();
        println!(
            "{decided} revoke decisions in {decide_seconds:.2} s ({:.0}/s, each an approved access request); \
             executor: {carried} requests in {execute_seconds:.2} s, {calls} write calls ({:.0} per call); \
             remediated {}, failed {}",
            decided as f64 / decide_seconds,
            carried as f64 / calls.max(1) as f64,
            summary.remediated,
            summary.remediation_failed
        );
    });
}
