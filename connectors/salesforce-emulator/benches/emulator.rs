//! Emulator speed: `cargo bench -p provost-salesforce-emulator --bench emulator`.
//!
//! Prints the time to generate each preset and the time to serve a 2,000-record page of
//! Users on loopback (the first page, which runs the query, and a `nextRecordsUrl` page),
//! as medians over repeated runs in this one process.

use std::time::{Duration, Instant};

use provost_salesforce_emulator::{generate, server, Emulator, EmulatorConfig, Preset};
use serde_json::Value;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    println!("emulator benchmark ({runs} generation runs per preset)");
    let presets: Vec<(&str, Preset)> = if std::env::var("BENCH_SKIP_GENERATE").is_ok() {
        vec![]
    } else {
        vec![
            ("small", Preset::SMALL),
            ("medium", Preset::MEDIUM),
            ("large", Preset::LARGE),
        ]
    };
    for (name, preset) in presets {
        let mut samples = Vec::new();
        let mut counts = (0, 0);
        for seed in 0..runs as u64 {
            let started = Instant::now();
            let org = generate::generate("Bench", preset, seed + 1);
            samples.push(started.elapsed());
            counts = (
                org.count(provost_salesforce_emulator::schema::ObjectType::User),
                org.count(provost_salesforce_emulator::schema::ObjectType::PermissionSetAssignment),
            );
        }
        println!(
            "generate {name:<6} users={:<7} assignments={:<7} median={} (min {}, max {})",
            counts.0,
            counts.1,
            ms(median(samples.clone())),
            ms(*samples.iter().min().unwrap()),
            ms(*samples.iter().max().unwrap()),
        );
    }

    // In-process breakdown of a page: run the query, render 2,000 records, serialise them.
    {
        let org = generate::generate("Bench", Preset::LARGE, 1);
        let soql = "SELECT Id, Username, Email, FirstName, LastName, Name, IsActive, UserType, ProfileId, \
                    UserRoleId, ManagerId, FederationIdentifier, LastLoginDate, SystemModstamp FROM User";
        let parsed = provost_salesforce_emulator::soql::parse(soql).unwrap();
        let (mut run, mut render, mut serialise) = (Vec::new(), Vec::new(), Vec::new());
        let mut walk = Vec::new();
        for _ in 0..20 {
            let started = Instant::now();
            let users = org.table(provost_salesforce_emulator::schema::ObjectType::User);
            let count = users.live.keys().map(std::hint::black_box).count();
            walk.push(started.elapsed());
            assert_eq!(count, 100_000);
        }
        println!("in-process large: walking the 100,000 User keys of the table alone median={} (the floor of any query over every user)", ms(median(walk)));
        for _ in 0..20 {
            let started = Instant::now();
            let compiled =
                provost_salesforce_emulator::soql::compile(&org, &parsed, soql, false, u32::MAX)
                    .unwrap();
            let output = compiled.run(&org, false);
            run.push(started.elapsed());
            let started = Instant::now();
            let mut bytes = Vec::new();
            compiled.write_records(&org, &output, 2000..4000, "62.0", &mut bytes);
            render.push(started.elapsed());
            let started = Instant::now();
            let parsed: Value = serde_json::from_slice(&bytes).unwrap();
            serialise.push(started.elapsed());
            assert_eq!(parsed.as_array().unwrap().len(), 2000);
        }
        println!(
            "in-process large: compile+run over 100,000 users median={}; write 2,000 records as JSON median={} (a client parsing them back: {})",
            ms(median(run)),
            ms(median(render)),
            ms(median(serialise))
        );
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let emulator = Emulator::new(EmulatorConfig { preset: Preset::LARGE, daily_limit: 10_000_000, ..EmulatorConfig::default() });
        let base = server::spawn(emulator.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let http = reqwest::Client::new();
        let app = &emulator.app;
        let token: Value = http
            .post(format!("{base}/services/oauth2/token"))
            .form(&[("grant_type", "client_credentials"), ("client_id", &app.client_id), ("client_secret", &app.client_secret)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = token["access_token"].as_str().unwrap().to_owned();
        let soql = "SELECT Id, Username, Email, FirstName, LastName, Name, IsActive, UserType, ProfileId, \
                    UserRoleId, ManagerId, FederationIdentifier, LastLoginDate, SystemModstamp FROM User";
        let iterations = 40;
        let (mut first_pages, mut next_pages) = (Vec::new(), Vec::new());
        let mut bytes = 0;
        for _ in 0..iterations {
            let started = Instant::now();
            let response = http
                .get(format!("{base}/services/data/v62.0/query"))
                .query(&[("q", soql)])
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            let body = response.bytes().await.unwrap();
            first_pages.push(started.elapsed());
            let page: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(page["records"].as_array().unwrap().len(), 2000);
            let next = page["nextRecordsUrl"].as_str().unwrap().to_owned();
            let started = Instant::now();
            let body = http.get(format!("{base}{next}")).bearer_auth(&token).send().await.unwrap().bytes().await.unwrap();
            next_pages.push(started.elapsed());
            bytes = body.len();
        }
        println!(
            "serve large: 2,000-User page over loopback, {iterations} runs: first page (runs the query over 100,000 users) median={}; nextRecordsUrl page median={} ({} KB)",
            ms(median(first_pages)),
            ms(median(next_pages)),
            bytes / 1024
        );
    });
}
