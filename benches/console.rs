//! The web console's pages on the emulator's `large` org (about 100,000 users, 600,000 grants)
//! from SQLite, over HTTP on loopback: `cargo bench --bench console`. With
//! `PROVOST_BENCH_DATABASE_URL` naming an empty PostgreSQL database, from there instead.
//!
//! The org is synced first; then Provost serves it in this process and each page is asked for
//! `PROVOST_BENCH_REPEATS` times (default 40), one request at a time, as a signed-in admin
//! whose roles are resolved as on every request (config names and a permission set of the
//! synced model). Pages that take a user or an entitlement take a different one each time.
//! It prints the median, 95th percentile and slowest time per page, until the whole page is
//! received, and the page's size.

use std::sync::Arc;
use std::time::{Duration, Instant};

use provost::config::{AuthConfig, Config, OrgConfig};
use provost::http::{self, AppState};
use provost::org::secrets::SecretBox;
use provost::store::console::ConsoleSession;
use provost::store::Page;
use provost_connector::model::EntitlementKind;

mod support;
use support::{synced, synced_sqlite};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn main() {
    let preset = std::env::var("PROVOST_BENCH_PRESET").unwrap_or_else(|_| "large".to_owned());
    let repeats: usize = std::env::var("PROVOST_BENCH_REPEATS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (store, org, database) = match std::env::var("PROVOST_BENCH_DATABASE_URL") {
            Ok(url) => synced(&preset, &url, 16).await,
            Err(_) => synced_sqlite(&preset, dir.path(), 16).await,
        };
        // Users and entitlements to open, spread over the org.
        let mut users = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store
                .list_accounts(
                    org.id,
                    Page {
                        after: after.as_deref(),
                        limit: 5000,
                    },
                )
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            users.extend(
                page.iter()
                    .step_by(997)
                    .map(|a| (a.id.clone(), a.username.clone())),
            );
        }
        let (catalog, _) = store.catalog(org.id, None, None, 0, 100_000).await.unwrap();
        let largest_profile = catalog
            .iter()
            .filter(|e| e.entitlement.kind == EntitlementKind::Profile)
            .max_by_key(|e| e.holders)
            .unwrap();
        let sets: Vec<&str> = catalog
            .iter()
            .filter(|e| e.entitlement.kind == EntitlementKind::PermissionSet)
            .map(|e| e.entitlement.id.as_str())
            .collect();
        let auditor_set = catalog
            .iter()
            .find(|e| e.entitlement.kind == EntitlementKind::PermissionSet)
            .map(|e| e.entitlement.api_name.clone())
            .unwrap();
        let (admin_id, admin) = users[users.len() / 2].clone();

        let mut config = Config {
            database,
            ..Config::default()
        };
        config.secrets.key_file = dir.path().join("provost.key");
        config.console.admins.users = vec![admin.clone()];
        config.console.auditors.permission_sets = vec![auditor_set];
        config.orgs = vec![OrgConfig {
            name: "bench".to_owned(),
            login_url: "http://127.0.0.1:9".to_owned(),
            api_version: "62.0".to_owned(),
            exclude_portal_users: true,
            include_inactive_users: true,
            sync_access_permissions: true,
            batch_size: 2000,
            sync_interval_minutes: None,
            api_budget_percent: 100,
            sync_concurrency: provost::sync::DEFAULT_CONCURRENCY as u8,
            auto_approve: Vec::new(),
            user_defaults: Default::default(),
            scim_max_changes: provost::config::default_scim_max_changes(),
            entitlement_owners: Default::default(),
            auth: AuthConfig::JwtBearer {
                client_id: "unused".to_owned(),
                username: "unused@example.com".to_owned(),
                private_key_file: dir.path().join("unused.pem"),
            },
        }];
        let config = Arc::new(config);
        let state = AppState {
            store: store.clone(),
            config: config.clone(),
            secrets: Arc::new(SecretBox::load(&config.secrets.key_file).unwrap()),
            work: Arc::new(tokio::sync::Notify::new()),
            metrics: provost::metrics::Metrics::new(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(http::serve(listener, state, std::future::pending()));
        let session = provost::tokens::generate();
        let now = chrono::Utc::now();
        store
            .insert_session(
                &provost::tokens::hash(&session),
                &ConsoleSession {
                    org: Some("bench".to_owned()),
                    user_id: Some(admin_id),
                    username: admin.clone(),
                    display_name: admin,
                    via: "salesforce".to_owned(),
                    csrf_token: "bench".to_owned(),
                    created_at: now,
                    last_seen_at: now,
                    expires_at: now + chrono::TimeDelta::hours(12),
                },
            )
            .await
            .unwrap();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();

        let o = "/console/orgs/bench";
        let profile = largest_profile.entitlement.id.clone();
        type Path = Box<dyn Fn(usize) -> String>;
        let users_for_page = users.clone();
        let pages: Vec<(&str, Path)> = vec![
            ("overview", Box::new(|_| "/console".to_owned())),
            ("users, first page", Box::new(move |_| format!("{o}/users"))),
            (
                "users, search `smith`",
                Box::new(move |_| format!("{o}/users?q=smith")),
            ),
            (
                "users, largest profile, active",
                Box::new({
                    let profile = profile.clone();
                    move |_| format!("{o}/users?profile={profile}&active=yes")
                }),
            ),
            (
                "users, page 1,000",
                Box::new(move |_| format!("{o}/users?page=1000")),
            ),
            (
                "a user's page",
                Box::new(move |i| {
                    format!("{o}/users/{}", users_for_page[i % users_for_page.len()].0)
                }),
            ),
            (
                "entitlements",
                Box::new(move |_| format!("{o}/entitlements")),
            ),
            (
                "entitlements, search `read`",
                Box::new(move |_| format!("{o}/entitlements?q=read")),
            ),
            (
                "largest profile's holders",
                Box::new({
                    let profile = profile.clone();
                    move |_| format!("{o}/entitlements/{profile}")
                }),
            ),
            (
                "a permission set's page",
                Box::new({
                    let sets: Vec<String> = sets.iter().map(|s| (*s).to_owned()).collect();
                    move |i| format!("{o}/entitlements/{}", sets[i % sets.len()])
                }),
            ),
            (
                "request form",
                Box::new(move |_| format!("{o}/requests/new")),
            ),
            (
                "requests, all",
                Box::new(move |_| format!("{o}/requests?view=all")),
            ),
            ("reviews", Box::new(move |_| format!("{o}/reviews"))),
            ("syncs", Box::new(move |_| format!("{o}/syncs"))),
            ("audit log", Box::new(|_| "/console/audit".to_owned())),
        ];
        println!(
            "{preset} org, {} largest profile holders; {repeats} requests per page, one at a time",
            largest_profile.holders
        );
        println!(
            "{:<34} {:>10} {:>8} {:>8} {:>9}",
            "page", "median ms", "p95 ms", "max ms", "KiB"
        );
        for (name, path) in pages {
            let mut times = Vec::with_capacity(repeats);
            let mut size = 0;
            for i in 0..repeats {
                let started = Instant::now();
                let response = client
                    .get(format!("{base}{}", path(i)))
                    .header("cookie", format!("provost_session={session}"))
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let body = response.bytes().await.unwrap();
                times.push(started.elapsed().as_secs_f64() * 1000.0);
                assert_eq!(status, 200, "{name}: {}", String::from_utf8_lossy(&body));
                size = body.len();
            }
            times.sort_by(f64::total_cmp);
            println!(
                "{name:<34} {:>10.1} {:>8.1} {:>8.1} {:>9.0}",
                percentile(&times, 0.5),
                percentile(&times, 0.95),
                times[times.len() - 1],
                size as f64 / 1024.0
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}
