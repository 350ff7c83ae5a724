//! SCIM reads of the emulator's `large` org from SQLite, over HTTP on loopback:
//! `cargo bench --bench scim`. With `PROVOST_BENCH_DATABASE_URL` naming an empty database
//! (`postgres://postgres@127.0.0.1:5432/provost_scim_bench`, say), from that database instead.
//!
//! The org is synced first (the emulator runs as its own process and is stopped after), then
//! Provost's API serves it in this process and a load generator in the same process keeps
//! `PROVOST_BENCH_CONNECTIONS` (default 32) keep-alive connections busy for
//! `PROVOST_BENCH_SECONDS` (default 10) per scenario, on a pool of `PROVOST_BENCH_POOL` (default
//! 16, the configuration's default) database connections. It prints requests per second and the
//! median and 99th percentile latency of:
//! - `GET /healthz`: the ceiling of this server and this generator on this machine;
//! - `GET /Users?filter=userName eq "..."` for random existing users, back to back, then at
//!   1,000 and 2,000 requests per second offered (latency from when each request was due);
//!
//! then the same with `wrk` as the generator, in its own process, when it is installed (the
//! in-process generator costs this process's CPU: on 2 cores it halves what the server can
//! do): back to back on 32 and on 4 connections, and paced (each connection waits 32 ms after
//! each answer, about 1,000 requests per second in all; wrk measures from each send);
//! then, one request at a time, a page of 100 users deep in the list (startIndex 50,001),
//! `PROVOST_BENCH_DEEP` times (default 100), timed until the answer is received (without the
//! client's parsing of its JSON); then the costliest filters a client may send (at the filter
//! limits, `PROVOST_BENCH_COSTLY` times each, default 3), each bounded by the read's deadline.
//!
//! The server logs and traces as `provost serve` does by default (the log subscriber at `info`,
//! trace ids on every request span, no export); `PROVOST_BENCH_TELEMETRY=off` leaves the
//! subscriber out, to see what it costs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use provost::config::{AuthConfig, Config, OrgConfig};
use provost::http::{self, AppState};
use provost::org::secrets::SecretBox;
use provost::store::Page;

mod support;
use support::{peak_rss_mb, reset_peak_rss, synced, synced_sqlite};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Figures {
    /// Requests slower than 10 ms, per second of the scenario: where the tail is.
    slow_by_second: Vec<usize>,
    /// More percentiles (ms): how the tail is shaped.
    spread: String,
    requests: usize,
    seconds: f64,
    median_ms: f64,
    p99_ms: f64,
    errors: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// `connections` clients, each with its own keep-alive connection, sending `url(i)` back to
/// back for `duration` (closed loop: the capacity), or at `rate` requests per second in all
/// (open loop: each latency counts from when the request was due, so a server falling behind
/// shows in the figures rather than slowing the generator down).
async fn load(
    connections: usize,
    duration: Duration,
    rate: Option<f64>,
    token: &str,
    url: Arc<dyn Fn(usize) -> String + Send + Sync>,
) -> Figures {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for worker in 0..connections {
        let url = url.clone();
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .unwrap();
        let auth = format!("Bearer {token}");
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            let mut i = worker;
            let interval = rate.map(|r| Duration::from_secs_f64(connections as f64 / r));
            let mut due = started
                + interval.map_or(Duration::ZERO, |d| {
                    d.mul_f64(worker as f64 / connections as f64)
                });
            while Instant::now() < deadline {
                if interval.is_some() {
                    tokio::time::sleep_until(due.into()).await;
                }
                let sent = if interval.is_some() {
                    due
                } else {
                    Instant::now()
                };
                if let Some(interval) = interval {
                    due += interval;
                }
                let response = client
                    .get(url(i))
                    .header("authorization", &auth)
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        latencies.push((
                            sent.elapsed().as_secs_f64() * 1000.0,
                            sent.duration_since(started).as_secs() as usize,
                        ));
                    }
                    _ => errors += 1,
                }
                i += connections;
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (latencies, e) = task.await.unwrap();
        all.extend(latencies);
        errors += e;
    }
    let seconds = started.elapsed().as_secs_f64();
    let last = duration.as_secs() as usize;
    let mut slow_by_second = vec![0; last + 1];
    for (latency, second) in &all {
        if *latency > 10.0 {
            slow_by_second[(*second).min(last)] += 1;
        }
    }
    let mut all: Vec<f64> = all.into_iter().map(|(latency, _)| latency).collect();
    all.sort_by(f64::total_cmp);
    let spread = [0.8, 0.9, 0.95, 0.999]
        .iter()
        .map(|p| format!("p{}={:.2}", p * 100.0, percentile(&all, *p)))
        .collect::<Vec<_>>()
        .join(" ");
    Figures {
        slow_by_second,
        spread,
        requests: all.len(),
        seconds,
        median_ms: percentile(&all, 0.5),
        p99_ms: percentile(&all, 0.99),
        errors,
    }
}

fn print(name: &str, f: &Figures) {
    println!(
        "{name:<28} {:>9.0} {:>10.2} {:>8.2} {:>9} {:>6}",
        f.requests as f64 / f.seconds,
        f.median_ms,
        f.p99_ms,
        f.requests,
        f.errors
    );
    if f.slow_by_second.iter().any(|&n| n > 0) {
        println!(
            "{:<28} requests over 10 ms, per second of the run: {:?}; {}",
            "", f.slow_by_second, f.spread
        );
    }
}

/// `wrk`'s figures: requests per second, and latency percentiles in ms.
struct WrkFigures {
    rate: f64,
    percentiles: Vec<(String, f64)>,
    requests: u64,
    errors: u64,
}

/// Runs `wrk` (a separate process, so the generator does not share this process's runtime)
/// against `base` with `paths` in turn; `delay_ms` makes each connection wait that long after
/// each answer (a paced load). `None` when wrk is not installed.
fn wrk(
    dir: &std::path::Path,
    base: &str,
    token: &str,
    paths: &[String],
    connections: usize,
    duration: Duration,
    delay_ms: Option<u64>,
) -> Option<WrkFigures> {
    let script = dir.join("wrk.lua");
    let mut lua = String::from("paths = {\n");
    for path in paths {
        lua.push_str(&format!("  {path:?},\n"));
    }
    lua.push_str(&format!(
        "}}\ni = 0\nwrk.headers[\"Authorization\"] = \"Bearer {token}\"\n\
         request = function()\n  i = i + 1\n  return wrk.format(\"GET\", paths[(i % #paths) + 1])\nend\n"
    ));
    if let Some(delay) = delay_ms {
        lua.push_str(&format!("delay = function()\n  return {delay}\nend\n"));
    }
    std::fs::write(&script, lua).unwrap();
    let output = std::process::Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{}s", duration.as_secs()),
            "--latency",
            "-s",
            script.to_str().unwrap(),
            base,
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let ms = |value: &str| -> f64 {
        let (number, unit) = value.split_at(
            value
                .find(|c: char| c.is_alphabetic())
                .unwrap_or(value.len()),
        );
        let number: f64 = number.parse().unwrap_or(f64::NAN);
        match unit {
            "us" => number / 1000.0,
            "s" => number * 1000.0,
            _ => number,
        }
    };
    let mut figures = WrkFigures {
        rate: 0.0,
        percentiles: Vec::new(),
        requests: 0,
        errors: 0,
    };
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", rate] => figures.rate = rate.parse().unwrap_or(0.0),
            [p, value] if p.ends_with('%') => figures.percentiles.push((p.to_string(), ms(value))),
            [count, "requests", "in", ..] => figures.requests = count.parse().unwrap_or(0),
            ["Non-2xx", "or", "3xx", "responses:", count] => {
                figures.errors = count.parse().unwrap_or(0)
            }
            _ => {}
        }
    }
    Some(figures)
}

fn print_wrk(name: &str, f: &WrkFigures) {
    let at = |p: &str| {
        f.percentiles
            .iter()
            .find(|(q, _)| q == p)
            .map_or(f64::NAN, |(_, v)| *v)
    };
    println!(
        "{name:<28} {:>9.0} {:>10.2} {:>8.2} {:>9} {:>6}   (p75 {:.2}, p90 {:.2})",
        f.rate,
        at("50%"),
        at("99%"),
        f.requests,
        f.errors,
        at("75%"),
        at("90%"),
    );
}

fn main() {
    // As the `provost` binary does.
    provost::util::memory::tune_allocator();
    let preset = std::env::var("PROVOST_BENCH_PRESET").unwrap_or_else(|_| "large".to_owned());
    let connections: usize = env_or("PROVOST_BENCH_CONNECTIONS", 32);
    let duration = Duration::from_secs(env_or("PROVOST_BENCH_SECONDS", 10));
    let _telemetry =
        (std::env::var("PROVOST_BENCH_TELEMETRY").as_deref() != Ok("off")).then(|| {
            provost::telemetry::init(
                &provost::config::LogConfig::default(),
                &provost::config::TracesConfig::default(),
            )
            .unwrap()
        });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let pool = env_or("PROVOST_BENCH_POOL", 16);
        let (store, org, database) = match std::env::var("PROVOST_BENCH_DATABASE_URL") {
            Ok(url) => synced(&preset, &url, pool).await,
            Err(_) => synced_sqlite(&preset, dir.path(), pool).await,
        };

        // Usernames to look up, spread over the whole org.
        let mut usernames = Vec::new();
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
            usernames.extend(page.iter().step_by(50).map(|a| a.username.clone()));
        }
        let users = usernames.len() * 50;
        let mut config = Config {
            database,
            ..Config::default()
        };
        config.secrets.key_file = dir.path().join("provost.key");
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
        let api = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(http::serve(listener, state, std::future::pending()));
        let token = provost::tokens::generate();
        store
            .create_token(
                "bench",
                &provost::tokens::hash(&token),
                &["scim:read".to_owned()],
            )
            .await
            .unwrap();

        println!(
            "{preset} org: about {users} users; {connections} connections, {} s per scenario",
            duration.as_secs()
        );
        println!(
            "{:<28} {:>9} {:>10} {:>8} {:>9} {:>6}",
            "scenario", "req/s", "median ms", "p99 ms", "requests", "errors"
        );
        let health = format!("{api}/healthz");
        let ceiling = load(
            connections,
            duration,
            None,
            &token,
            Arc::new(move |_| health.clone()),
        )
        .await;
        print("GET /healthz (ceiling)", &ceiling);
        let base = format!("{api}/orgs/bench/scim/v2/Users");
        let names = Arc::new(usernames);
        let lookup = {
            let names = names.clone();
            let base = base.clone();
            Arc::new(move |i: usize| {
                let name = &names[(i * 7919) % names.len()];
                let filter: String = url::form_urlencoded::byte_serialize(
                    format!("userName eq \"{name}\"").as_bytes(),
                )
                .collect();
                format!("{base}?filter={filter}")
            })
        };
        reset_peak_rss();
        let found = load(connections, duration, None, &token, lookup.clone()).await;
        print("GET /Users?filter=userName eq", &found);
        for rate in [1000.0, 2000.0] {
            let paced = load(connections, duration, Some(rate), &token, lookup.clone()).await;
            print(&format!("  the same at {rate:.0}/s offered"), &paced);
        }
        eprintln!("peak memory during the lookups: {:.0} MB", peak_rss_mb());

        // The same, with wrk as the load generator in its own process.
        let paths: Vec<String> = (0..2000)
            .map(|i| lookup(i)[api.len()..].to_owned())
            .collect();
        let scenarios: [(&str, usize, Option<u64>); 4] = [
            ("GET /healthz (ceiling)", connections, None),
            ("GET /Users?filter=userName eq", connections, None),
            ("  the same, 4 connections", 4, None),
            ("  the same, paced ~1000/s", connections, Some(32)),
        ];
        let mut outside = true;
        for (name, c, delay) in scenarios {
            let wanted = if name.contains("healthz") {
                vec!["/healthz".to_owned()]
            } else {
                paths.clone()
            };
            match wrk(dir.path(), &api, &token, &wanted, c, duration, delay) {
                Some(figures) => {
                    if outside {
                        println!("with wrk as the generator (its own process; latency from each send):");
                        outside = false;
                    }
                    print_wrk(name, &figures);
                }
                None => {
                    println!("wrk is not installed (apt-get install wrk): no figures from a separate generator");
                    break;
                }
            }
        }

        // A deep page, one request at a time.
        let client = reqwest::Client::new();
        let mut deep = Vec::new();
        for _ in 0..env_or("PROVOST_BENCH_DEEP", 100) {
            let sent = Instant::now();
            let body = client
                .get(format!("{base}?startIndex=50001&count=100"))
                .header("authorization", format!("Bearer {token}"))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            // Until the whole answer is received; reading its JSON is the client's work.
            deep.push(sent.elapsed().as_secs_f64() * 1000.0);
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["itemsPerPage"], 100, "{body}");
        }
        deep.sort_by(f64::total_cmp);
        println!(
            "page of 100 at startIndex 50001, one at a time: median {:.2} ms, p99 {:.2} ms over {} requests",
            percentile(&deep, 0.5),
            percentile(&deep, 0.99),
            deep.len()
        );
        // The costliest filters a client may send: each is bounded by the filter limits and
        // the read's deadline (server.query_timeout_ms), answered 200 or 400, never held.
        let org_base = format!("{api}/orgs/bench/scim/v2");
        let many = |n: usize, term: &str| {
            (0..n)
                .map(|i| term.replace('#', &i.to_string()))
                .collect::<Vec<_>>()
                .join(" or ")
        };
        let costly = [
            ("/Users", many(150, r##"roles[display co "#"]"##), "150 roles[display co] (refused)"),
            ("/Users", many(5, r##"roles[display co "#"]"##), "5 roles[display co]"),
            ("/Users", many(5, r##"entitlements[display co "#"]"##), "5 entitlements[display co]"),
            ("/Users", many(100, r##"displayName co "zq#""##), "100 displayName co"),
            ("/Groups", many(1, r##"members[display co "#"]"##), "1 members[display co]"),
            ("/Groups", many(5, r##"members[display co "#"]"##), "5 members[display co]"),
        ];
        println!("costly filters, one at a time, {} runs each:", env_or("PROVOST_BENCH_COSTLY", 3));
        for (path, filter, name) in costly {
            let encoded: String = url::form_urlencoded::byte_serialize(filter.as_bytes()).collect();
            let mut times = Vec::new();
            let mut status = 0;
            for _ in 0..env_or("PROVOST_BENCH_COSTLY", 3) {
                let sent = Instant::now();
                let response = client
                    .get(format!("{org_base}{path}?count=10&attributes=id&filter={encoded}"))
                    .header("authorization", format!("Bearer {token}"))
                    .send()
                    .await
                    .unwrap();
                status = response.status().as_u16();
                response.bytes().await.unwrap();
                times.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            times.sort_by(f64::total_cmp);
            println!("  {name:<34} {path:<8} {status}  median {:>7.0} ms", percentile(&times, 0.5));
        }
        println!(
            "filter lookups reach {:.0}% of the ceiling's rate",
            100.0 * (found.requests as f64 / found.seconds)
                / (ceiling.requests as f64 / ceiling.seconds)
        );
    });
}
