//! 1,000 permission set grants against the emulator's `medium` org, on SQLite:
//! `cargo bench --bench provisioning`.
//!
//! Each round takes 1,000 (user, permission set) pairs the users do not hold and measures two
//! things, printing each round and the medians:
//! - end to end: the grants are POSTed to the access-request API (8 at a time, auto-approved as
//!   an approval flow that approves upstream would configure it) while the executor runs as in
//!   `provost serve`, until the last request is completed;
//! - the executor alone: 1,000 requests already approved, one executor pass.
//!
//! It also counts the Salesforce write calls (`composite/sobjects`) each round made.
//! `PROVOST_BENCH_ROUNDS` sets the number of rounds (default 5); `RUST_LOG=provost=info` logs
//! each executor pass.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use provost::config::{AuthConfig, Config, DatabaseConfig, DatabaseUrl, OrgConfig};
use provost::http::{self, AppState};
use provost::org::secrets::SecretBox;
use provost::org::sync::{request_for, sync_org};
use provost::provisioning::executor::Executor;
use provost::provisioning::request::RequestState;
use provost::store::provisioning::RequestFilter;
use provost::store::sync::SyncMode;
use provost::store::{self, OrgRecord, Page, Store};
use provost::sync::progress::LogObserver;
use provost_connector::model::{EntitlementKind, GrantSource};
use provost_salesforce_emulator::{server, Emulator, EmulatorConfig, Preset};
use serde_json::{json, Value};

mod support;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const GRANTS: usize = 1000;

struct Bench {
    sf: String,
    store: Arc<dyn Store>,
    config: Arc<Config>,
    org: OrgRecord,
    pairs: Vec<(String, String)>,
    http: reqwest::Client,
    raw: reqwest::Client,
    api: String,
    /// The serving executor, woken by approvals as in `provost serve`.
    executor: Arc<Executor>,
    work: Arc<tokio::sync::Notify>,
}

impl Bench {
    async fn write_calls(&self) -> u64 {
        support::write_calls(&self.raw, &self.sf).await
    }

    async fn open(&self) -> usize {
        self.count(RequestState::Approved).await + self.count(RequestState::Executing).await
    }

    async fn completed(&self) -> usize {
        self.count(RequestState::Completed).await
    }

    async fn count(&self, state: RequestState) -> usize {
        let mut count = 0;
        let mut before = None;
        loop {
            let page = self
                .store
                .list_requests(
                    self.org.id,
                    &RequestFilter {
                        state: Some(state),
                        before,
                        limit: 500,
                        ..RequestFilter::default()
                    },
                )
                .await
                .unwrap();
            count += page.len();
            match page.last() {
                Some(last) if page.len() == 500 => before = Some(last.id),
                _ => return count,
            }
        }
    }

    fn take(&mut self) -> Vec<(String, String)> {
        assert!(self.pairs.len() >= GRANTS, "the org ran out of free pairs");
        self.pairs.drain(..GRANTS).collect()
    }

    fn body(user: &str, set: &str) -> Value {
        json!({
            "action": "grant",
            "user": user,
            "entitlement": {"type": "permission_set", "name": set},
            "justification": "bench",
        })
    }
}

async fn setup(rounds: usize) -> Bench {
    let emulator = Emulator::new(EmulatorConfig {
        preset: Preset::by_name("medium").unwrap(),
        seed: 11,
        ..EmulatorConfig::default()
    });
    let sf = server::spawn(emulator.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap().keep();
    let key = dir.join("key.pem");
    std::fs::write(&key, &emulator.app.private_key_pem).unwrap();
    let mut config = Config {
        orgs: vec![OrgConfig {
            name: "acme".to_owned(),
            login_url: sf.clone(),
            api_version: "62.0".to_owned(),
            exclude_portal_users: true,
            include_inactive_users: true,
            sync_access_permissions: true,
            batch_size: 2000,
            sync_interval_minutes: None,
            api_budget_percent: 100,
            sync_concurrency: provost::sync::DEFAULT_CONCURRENCY as u8,
            auto_approve: vec!["grant".to_owned()],
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
        url: DatabaseUrl::new(format!("sqlite://{}", dir.join("provost.db").display())),
        max_connections: 4,
        acquire_timeout_ms: 5_000,
    };
    config.secrets.key_file = dir.join("provost.key");
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
        "synced the medium org in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let org = store.ensure_org("acme").await.unwrap();

    // Free (user, set) pairs, spread over users so that rounds do not reuse a pair.
    let integration = emulator.integration_username();
    let sets: Vec<_> = store
        .list_entitlements(
            org.id,
            Some(EntitlementKind::PermissionSet),
            Page::first(10_000),
        )
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.grantable && s.attributes.get("LicenseId").is_none_or(Value::is_null))
        .collect();
    let mut pairs = Vec::new();
    let mut after: Option<String> = None;
    let needed = GRANTS * (2 * rounds);
    'users: loop {
        let accounts = store
            .list_accounts(
                org.id,
                Page {
                    after: after.as_deref(),
                    limit: 1000,
                },
            )
            .await
            .unwrap();
        let Some(last) = accounts.last() else { break };
        after = Some(last.id.clone());
        for account in accounts {
            if !account.active
                || account.user_type.as_deref() != Some("Standard")
                || account.username == integration
            {
                continue;
            }
            let held: HashSet<String> = store
                .grants_of_account(org.id, &account.id)
                .await
                .unwrap()
                .into_iter()
                .filter(|g| g.source == GrantSource::Direct)
                .map(|g| g.entitlement_id)
                .collect();
            // A few sets per user, so the writes spread over many users.
            for set in sets.iter().filter(|s| !held.contains(&s.id)).take(2) {
                pairs.push((account.username.clone(), set.api_name.clone()));
                if pairs.len() == needed {
                    break 'users;
                }
            }
        }
    }
    eprintln!(
        "picked {} (user, set) pairs in {:.1} s",
        pairs.len(),
        started.elapsed().as_secs_f64()
    );
    let config = Arc::new(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let work = Arc::new(tokio::sync::Notify::new());
    let state = AppState {
        store: store.clone(),
        config: config.clone(),
        secrets: Arc::new(SecretBox::load(&config.secrets.key_file).unwrap()),
        work: work.clone(),
        metrics: provost::metrics::Metrics::new(),
    };
    tokio::spawn(http::serve(listener, state, std::future::pending()));
    let token = provost::tokens::generate();
    store
        .create_token(
            "bench",
            &provost::tokens::hash(&token),
            &["admin".to_owned()],
        )
        .await
        .unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    let executor = Arc::new(Executor::new(
        config.clone(),
        store.clone(),
        "bench-serve".into(),
    ));
    Bench {
        sf,
        store,
        config,
        org,
        pairs,
        http,
        raw: reqwest::Client::new(),
        api,
        executor,
        work,
    }
}

/// End to end through the API: returns (seconds, write calls).
async fn end_to_end(bench: &mut Bench) -> (f64, u64) {
    let pairs = bench.take();
    // Stopped again at the end, so the executor-alone rounds run on their own.
    let serving = tokio::spawn(bench.executor.clone().run(bench.work.clone()));
    let calls_before = bench.write_calls().await;
    let completed_before = bench.completed().await;
    let started = Instant::now();
    let url = format!("{}/api/v1/orgs/acme/access-requests", bench.api);
    let mut chunks = pairs.chunks(GRANTS.div_ceil(8));
    let mut senders = Vec::new();
    for chunk in chunks.by_ref() {
        let (http, url, chunk) = (bench.http.clone(), url.clone(), chunk.to_vec());
        senders.push(tokio::spawn(async move {
            for (user, set) in chunk {
                let response = http
                    .post(&url)
                    .json(&Bench::body(&user, &set))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    response.status().as_u16(),
                    201,
                    "{}",
                    response.text().await.unwrap()
                );
            }
        }));
    }
    for sender in senders {
        sender.await.unwrap();
    }
    // Every request was approved on creation: done when none is waiting or executing.
    while bench.open().await > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    serving.abort();
    assert_eq!(bench.completed().await, completed_before + GRANTS);
    (elapsed, bench.write_calls().await - calls_before)
}

/// The executor alone on 1,000 approved requests: returns (seconds, write calls).
async fn executor_alone(bench: &mut Bench) -> (f64, u64) {
    let pairs = bench.take();
    for (user, set) in &pairs {
        let response = bench
            .http
            .post(format!("{}/api/v1/orgs/acme/access-requests", bench.api))
            .json(&Bench::body(user, set))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 201);
    }
    assert_eq!(bench.open().await, GRANTS);
    let calls_before = bench.write_calls().await;
    let executor = Executor::new(bench.config.clone(), bench.store.clone(), "bench".into());
    let started = Instant::now();
    executor.run_once().await.unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(bench.open().await, 0);
    (elapsed, bench.write_calls().await - calls_before)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    // RUST_LOG=provost=info shows each executor pass (how many requests it carried out).
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let rounds: usize = std::env::var("PROVOST_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut bench = setup(rounds).await;
        let (mut e2e, mut alone) = (Vec::new(), Vec::new());
        println!("round  end-to-end: s  grants/s  writes | executor alone: s  grants/s  writes");
        for round in 1..=rounds {
            let (e2e_s, e2e_calls) = end_to_end(&mut bench).await;
            let (alone_s, alone_calls) = executor_alone(&mut bench).await;
            println!(
                "{round:>5}  {e2e_s:>15.2}  {:>8.0}  {e2e_calls:>6} | {alone_s:>17.2}  {:>8.0}  {alone_calls:>6}",
                GRANTS as f64 / e2e_s,
                GRANTS as f64 / alone_s
            );
            e2e.push(e2e_s);
            alone.push(alone_s);
        }
        let (e2e, alone) = (median(&mut e2e), median(&mut alone));
        println!(
            "median over {rounds} rounds of {GRANTS} grants on SQLite: end to end {e2e:.2} s ({:.0} grants/s); executor alone {alone:.2} s ({:.0} grants/s)",
            GRANTS as f64 / e2e,
            GRANTS as f64 / alone
        );
    });
}
