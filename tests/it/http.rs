//! The HTTP API on a real socket: health, readiness, request ids, errors.

use std::sync::Arc;

use provost::config::Config;
use provost::http::{self, AppState};
use provost::org::secrets::SecretBox;
use provost::store::Store;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::helpers::TestDatabase;

/// A server on an ephemeral loopback port, stopped when dropped.
struct TestServer {
    base: String,
    /// Holds the key file the server's secrets use.
    keys: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    async fn start(store: Arc<dyn Store>) -> TestServer {
        TestServer::start_with(store, |_| Config::default()).await
    }

    /// A server whose configuration is made knowing its address.
    async fn start_with(store: Arc<dyn Store>, config: impl FnOnce(&str) -> Config) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let keys = tempfile::tempdir().unwrap();
        let secrets = SecretBox::load(&keys.path().join("provost.key")).unwrap();
        let state = AppState {
            store,
            config: Arc::new(config(&base)),
            secrets: Arc::new(secrets),
            work: Arc::new(tokio::sync::Notify::new()),
            metrics: provost::metrics::Metrics::new(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(http::serve(listener, state, async {
            let _ = stopped.await;
        }));
        TestServer {
            base,
            keys,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The same key the server seals with.
    fn secrets(&self) -> SecretBox {
        SecretBox::load(&self.keys.path().join("provost.key")).unwrap()
    }

    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn health_and_readiness_on_each_backend() {
    for db in TestDatabase::all().await {
        let store = db.store().await;
        let server = TestServer::start(store.clone()).await;
        let client = reqwest::Client::new();

        let health = client
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);

        let ready = client
            .get(format!("{}/readyz", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 200);
        let body: Value = ready.json().await.unwrap();
        assert_eq!(body["status"], "ready");
        assert_eq!(body["database"]["backend"], store.backend().name());

        // The database goes away: the process stays healthy but is no longer ready.
        store.close().await;
        let ready = client
            .get(format!("{}/readyz", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 503);
        let body: Value = ready.json().await.unwrap();
        assert_eq!(body["status"], "unavailable");
        assert_eq!(body["database"]["status"], "unreachable");
        assert!(body["reason"].as_str().unwrap().contains("database"));
        let health = client
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);

        server.shutdown().await;
        db.drop_database().await;
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_the_callers() {
    let db = TestDatabase::sqlite().await;
    let server = TestServer::start(db.store().await).await;
    let client = reqwest::Client::new();

    let generated = client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");

    let propagated = client
        .get(format!("{}/healthz", server.base))
        .header("x-request-id", "caller-chosen-42")
        .send()
        .await
        .unwrap();
    assert_eq!(propagated.headers()["x-request-id"], "caller-chosen-42");
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_get_a_json_404() {
    let db = TestDatabase::sqlite().await;
    let server = TestServer::start(db.store().await).await;
    let response = reqwest::get(format!("{}/nope", server.base)).await.unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    server.shutdown().await;
}

#[tokio::test]
async fn connecting_an_org_through_the_web_server_flow() {
    crate::helpers::on_each_backend(connect_through_the_web_server_flow).await;
}

async fn connect_through_the_web_server_flow(store: Arc<dyn Store>) {
    use provost::config::{AuthConfig, OrgConfig};
    use provost::store::{OAuthState, StateLimits};
    use provost_salesforce_emulator::{server, Emulator, EmulatorConfig};

    let emulator = Emulator::new(EmulatorConfig::default());
    let login_url = server::spawn(emulator.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let org = OrgConfig {
        name: "web".to_owned(),
        login_url: login_url.clone(),
        api_version: "62.0".to_owned(),
        exclude_portal_users: true,
        include_inactive_users: true,
        sync_access_permissions: true,
        batch_size: 2000,
        sync_interval_minutes: None,
        api_budget_percent: 80,
        sync_concurrency: provost::sync::DEFAULT_CONCURRENCY as u8,
        auto_approve: Vec::new(),
        user_defaults: Default::default(),
        scim_max_changes: provost::config::default_scim_max_changes(),
        entitlement_owners: Default::default(),
        auth: AuthConfig::WebServer {
            client_id: emulator.app.client_id.clone(),
            client_secret: None,
        },
    };
    let configured = org.clone();
    let server = TestServer::start_with(store.clone(), move |base| {
        let mut config = Config::default();
        config.server.public_url = Some(base.to_owned());
        config.orgs = vec![configured];
        config
    })
    .await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let admin_token = provost::tokens::generate();
    store
        .create_token(
            "ops",
            &provost::tokens::hash(&admin_token),
            &["admin".to_owned()],
        )
        .await
        .unwrap();

    // Starting a connection needs an admin: anyone else is refused before a state is made.
    let anonymous = http
        .get(format!(
            "{}/api/integrations/salesforce/connect?org=web",
            server.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["content-type"], "application/json");

    // Logs in on the emulator's page as `username`; returns where Salesforce sends the browser
    // back. `query` is added to the start's URL.
    let sign_in = |username: String, decision: &'static str, query: &'static str| {
        let http = http.clone();
        let server_base = server.base.clone();
        let admin_token = admin_token.clone();
        async move {
            let start = http
                .get(format!(
                    "{server_base}/api/integrations/salesforce/connect?org=web{query}"
                ))
                .bearer_auth(&admin_token)
                .send()
                .await
                .unwrap();
            assert_eq!(start.status(), 303, "a redirect to Salesforce");
            let authorize_url =
                url::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
            let body: Value = start.json().await.unwrap();
            assert_eq!(
                body["authorize_url"],
                authorize_url.as_str(),
                "the URL to open, for scripts"
            );
            let params: Vec<(String, String)> = authorize_url.query_pairs().into_owned().collect();
            assert!(
                params
                    .iter()
                    .any(|(k, v)| k == "code_challenge_method" && v == "S256"),
                "PKCE: {params:?}"
            );
            let mut form = params.clone();
            form.extend([
                ("username".to_owned(), username),
                ("password".to_owned(), "emulator".to_owned()),
                ("decision".to_owned(), decision.to_owned()),
            ]);
            let login = http
                .post(authorize_url.as_str().split('?').next().unwrap())
                .form(&form)
                .send()
                .await
                .unwrap();
            login.headers()["location"].to_str().unwrap().to_owned()
        }
    };
    let authorize = |decision: &'static str| sign_in(emulator.integration_username(), decision, "");

    let callback = authorize("allow").await;
    assert!(
        callback.starts_with(&format!(
            "{}/api/integrations/callback/salesforce?",
            server.base
        )),
        "{callback}"
    );
    let connected = http.get(&callback).send().await.unwrap();
    assert_eq!(connected.status(), 200);
    let body: Value = connected.json().await.unwrap();
    assert_eq!(body["org"], "web");
    assert_eq!(body["preflight"]["ok"], true, "{body}");

    // The refresh token is stored sealed and works.
    let record = store.find_org("web").await.unwrap().unwrap();
    let stored = store.connection(record.id).await.unwrap().unwrap();
    assert!(
        stored.refresh_token_sealed.starts_with("v1:")
            && !stored.refresh_token_sealed.contains("5Aep861")
    );
    let secrets = server.secrets();
    let client = provost::org::client_for(&org, &store, Some(&secrets))
        .await
        .unwrap();
    let page = client
        .query(&provost_salesforce::soql::Query::select(
            "Organization",
            &["Id"],
        ))
        .await
        .unwrap();
    assert_eq!(page.total_size, 1);

    let refused = |response: reqwest::Response| async move {
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        (
            body["error"]["code"].as_str().unwrap().to_owned(),
            body["error"]["message"].as_str().unwrap().to_owned(),
        )
    };
    let (code, message) = refused(http.get(&callback).send().await.unwrap()).await;
    assert_eq!(code, "replayed_state");
    assert!(message.contains("already used"), "{message}");

    let (code, _) = refused(
        http.get(format!(
            "{}/api/integrations/callback/salesforce?code=x&state=forged",
            server.base
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(code, "unknown_state");

    let denied = authorize("deny").await;
    let (code, message) = refused(http.get(&denied).send().await.unwrap()).await;
    assert_eq!(code, "access_denied");
    assert!(message.contains("access_denied"), "{message}");

    let moved = OAuthState {
        org_name: "web".to_owned(),
        code_verifier_sealed: "v1:irrelevant".to_owned(),
        redirect_uri: "https://provost.example.com/api/integrations/callback/salesforce".to_owned(),
        created_at: chrono::Utc::now(),
        started_by: "ops".to_owned(),
        replace_confirmed: false,
    };
    let limits = StateLimits {
        forget_before: moved.created_at - chrono::TimeDelta::days(1),
        open_since: moved.created_at - chrono::TimeDelta::minutes(10),
        most_open: 100,
    };
    assert!(store
        .insert_oauth_state("moved", &moved, limits)
        .await
        .unwrap());
    let (code, message) = refused(
        http.get(format!(
            "{}/api/integrations/callback/salesforce?code=x&state=moved",
            server.base
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(code, "redirect_mismatch");
    assert!(
        message.contains("provost.example.com") && message.contains("server.public_url"),
        "{message}"
    );

    let missing = http
        .get(format!(
            "{}/api/integrations/salesforce/connect?org=nope",
            server.base
        ))
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert!(
        !body["error"]["message"].as_str().unwrap().contains("web"),
        "{body}: names no other org"
    );

    // Someone signing in as an ordinary user cannot re-bind the working connection.
    let ordinary: Value = http
        .get(format!("{login_url}/__emulator/query"))
        .query(&[("q", "SELECT Username FROM User WHERE IsActive = true AND UserType = 'Standard' ORDER BY Username LIMIT 5")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ordinary = ordinary["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Username"].as_str().unwrap().to_owned())
        .find(|u| *u != emulator.integration_username())
        .unwrap();
    let kept = store.connection(record.id).await.unwrap().unwrap();
    let callback = sign_in(ordinary.clone(), "allow", "").await;
    let answer = http.get(&callback).send().await.unwrap();
    assert_eq!(answer.status(), 409);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "preflight_failed", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("replace=true"),
        "{body}"
    );
    assert_eq!(store.connection(record.id).await.unwrap().unwrap(), kept);
    let still = provost::org::client_for(&org, &store, Some(&secrets))
        .await
        .unwrap();
    still
        .query(&provost_salesforce::soql::Query::select(
            "Organization",
            &["Id"],
        ))
        .await
        .expect("the kept connection still works");
    // A connection to another Salesforce org is refused the same way, even by a capable user.
    let mut elsewhere = kept.clone();
    elsewhere.identity_url =
        "https://login.salesforce.com/id/00D000000000OTHER/005000000000001".to_owned();
    store.save_connection(record.id, &elsewhere).await.unwrap();
    let callback = authorize("allow").await;
    let answer = http.get(&callback).send().await.unwrap();
    assert_eq!(answer.status(), 409);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "other_salesforce_org", "{body}");
    assert_eq!(
        store.connection(record.id).await.unwrap().unwrap(),
        elsewhere
    );
    // With replace=true the admin confirms it: the new connection is stored, and the answer
    // carries its failing preflight.
    let callback = sign_in(ordinary.clone(), "allow", "&replace=true").await;
    let answer = http.get(&callback).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["preflight"]["ok"], false, "{body}");
    let replaced = store.connection(record.id).await.unwrap().unwrap();
    assert_ne!(replaced, elsewhere);
    // A stored connection that fails its own preflight is not kept against a new one: another
    // sign-in replaces it without replace=true.
    let callback = sign_in(ordinary.clone(), "allow", "").await;
    let answer = http.get(&callback).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_ne!(
        store.connection(record.id).await.unwrap().unwrap(),
        replaced
    );
    // Each start, refusal and connection is in the audit log, with who started it.
    let events: Vec<(String, String)> = store
        .audit_entries(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.event, e.actor))
        .collect();
    for event in ["connection_started", "org_connected", "connection_refused"] {
        assert!(
            events.contains(&(event.to_owned(), "ops".to_owned())),
            "{event}: {events:?}"
        );
    }

    // Unused states are capped: starts beyond the cap are refused, and none is stored for them.
    let mut refused = 0;
    for _ in 0..provost::org::connect::MOST_OPEN_STATES + 5 {
        let start = http
            .get(format!(
                "{}/api/integrations/salesforce/connect?org=web",
                server.base
            ))
            .bearer_auth(&admin_token)
            .send()
            .await
            .unwrap();
        if start.status() == 429 {
            refused += 1;
        } else {
            assert_eq!(start.status(), 303);
        }
    }
    assert!(refused >= 5, "{refused} refused");
    server.shutdown().await;
}

#[tokio::test]
async fn sync_runs_and_changes_of_an_org_over_http() {
    use provost::config::{AuthConfig, OrgConfig};
    use provost::store::sync::SyncMode;
    use provost::sync::progress::LogObserver;
    use provost::sync::{self, SyncRequest};
    use provost_connector::secret::Secret;
    use provost_salesforce::reader::{ReadOptions, SalesforceReader};
    use provost_salesforce::{ClientConfig, Credentials, SalesforceClient};
    use provost_salesforce_emulator::{server, Emulator, EmulatorConfig};

    let emulator = Emulator::new(EmulatorConfig::default());
    let login_url = server::spawn(emulator.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    for db in TestDatabase::all().await {
        let store = db.store().await;
        let record = store.ensure_org("acme").await.unwrap();
        let reader = SalesforceReader::new(
            SalesforceClient::new(
                ClientConfig::new(&login_url),
                Credentials::JwtBearer {
                    client_id: emulator.app.client_id.clone(),
                    username: emulator.integration_username(),
                    private_key_pem: Secret::new(emulator.app.private_key_pem.clone()),
                },
            )
            .unwrap(),
            ReadOptions {
                exclude_portal_users: true,
                include_inactive_users: true,
                read_access: true,
            },
        );
        let request = SyncRequest {
            mode: SyncMode::Full,
            started_by: "test".into(),
            api_budget_percent: 80,
            concurrency: provost::sync::DEFAULT_CONCURRENCY,
            skip_if_synced_within: None,
        };
        let run = sync::run(&store, &record, &reader, &request, &LogObserver)
            .await
            .unwrap()
            .run;

        let key_dir = tempfile::tempdir().unwrap();
        let key = key_dir.path().join("key.pem");
        std::fs::write(&key, &emulator.app.private_key_pem).unwrap();
        let org = OrgConfig {
            name: "acme".to_owned(),
            login_url: login_url.clone(),
            api_version: "62.0".to_owned(),
            exclude_portal_users: true,
            include_inactive_users: true,
            sync_access_permissions: true,
            batch_size: 2000,
            sync_interval_minutes: None,
            api_budget_percent: 80,
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
        };
        let server = TestServer::start_with(store.clone(), move |_| Config {
            orgs: vec![org],
            ..Config::default()
        })
        .await;
        let anonymous = reqwest::Client::new();
        let response = anonymous
            .get(format!("{}/api/v1/orgs/acme/sync-runs", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401);
        assert!(response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
        let body: Value = response.json().await.unwrap();
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("provost token create"));
        let wrong_scope = crate::helpers::bearer_client(&store, "scim-only", &["scim:read"]).await;
        let response = wrong_scope
            .get(format!("{}/api/v1/orgs/acme/sync-runs", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 403);
        let body: Value = response.json().await.unwrap();
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("reports:read"));
        let http = crate::helpers::bearer_client(&store, "reporter", &["reports:read"]).await;
        let body: Value = http
            .get(format!("{}/api/v1/orgs/acme/sync-runs", server.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["runs"][0]["id"], run.id.0);
        assert_eq!(body["runs"][0]["status"], "succeeded");
        assert!(body["runs"][0]["duration_seconds"].as_f64().is_some());
        assert_eq!(body["health"]["success_rate"], 1.0);
        assert!(body["health"]["api_limit"].as_i64().is_some());

        let page: Value = http
            .get(format!(
                "{}/api/v1/orgs/acme/changes?entity=account&limit=5",
                server.base
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let changes = page["changes"].as_array().unwrap();
        assert_eq!(changes.len(), 5);
        assert!(changes
            .iter()
            .all(|c| c["entity"] == "account" && c["op"] == "created"));
        let after = page["next_after"].as_i64().unwrap();
        let next: Value = http
            .get(format!(
                "{}/api/v1/orgs/acme/changes?entity=account&limit=5&after={after}",
                server.base
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(next["changes"][0]["id"].as_i64().unwrap() > after);
        let user = changes[0]["object_id"].as_str().unwrap();
        let one: Value = http
            .get(format!(
                "{}/api/v1/orgs/acme/changes?object_id={user}",
                server.base
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(one["changes"].as_array().unwrap().len(), 1);

        // Metrics: for a metrics:read token only, by route template, with the store's figures.
        let scrape = |client: reqwest::Client| {
            let url = format!("{}/metrics", server.base);
            async move { client.get(url).send().await.unwrap() }
        };
        assert_eq!(scrape(anonymous.clone()).await.status().as_u16(), 401);
        assert_eq!(scrape(http.clone()).await.status().as_u16(), 403);
        let prometheus =
            crate::helpers::bearer_client(&store, "prometheus", &["metrics:read"]).await;
        let response = scrape(prometheus.clone()).await;
        assert_eq!(response.status().as_u16(), 200);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"));
        let text = response.text().await.unwrap();
        let value = |text: &str, series: &str| -> f64 {
            text.lines()
                .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
                .unwrap_or_else(|| panic!("no `{series}` in\n{text}"))
                .parse()
                .unwrap()
        };
        assert_eq!(value(&text, r#"provost_sync_failing{org="acme"}"#), 0.0);
        assert_eq!(
            value(&text, r#"provost_sync_runs{org="acme",state="succeeded"}"#),
            1.0
        );
        assert_eq!(
            value(&text, r#"provost_sync_runs{org="acme",state="failed"}"#),
            0.0
        );
        let ended = value(
            &text,
            r#"provost_sync_last_success_timestamp_seconds{org="acme"}"#,
        );
        assert!((ended - run.finished_at.unwrap().timestamp() as f64).abs() < 1.0);
        assert_eq!(
            value(&text, r#"provost_sync_last_api_calls{org="acme"}"#),
            run.api_calls as f64
        );
        assert!(value(&text, r#"provost_salesforce_api_limit{org="acme"}"#) > 0.0);
        assert_eq!(
            value(
                &text,
                r#"provost_executor_oldest_approved_seconds{org="acme"}"#
            ),
            0.0
        );
        assert_eq!(value(&text, "provost_db_pool_max_connections"), 4.0);
        assert!(
            value(
                &text,
                r#"provost_http_requests_total{route="/api/v1/orgs/{org}/sync-runs",method="GET",status="200"}"#
            ) >= 1.0
        );
        assert_eq!(
            value(
                &text,
                r#"provost_http_requests_total{route="/api/v1/orgs/{org}/sync-runs",method="GET",status="403"}"#
            ),
            1.0
        );
        assert!(
            value(
                &text,
                r#"provost_http_request_duration_seconds_count{route="/api/v1/orgs/{org}/sync-runs",method="GET"}"#
            ) >= 2.0
        );
        assert!(
            !text.contains("/orgs/acme/"),
            "labels carry route templates, never paths:\n{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"));
        // The example alert rules and dashboard name only metrics that exist.
        let served = provost::metrics::names_in(&text);
        for file in [
            "docs/monitoring/provost-alerts.yml",
            "docs/monitoring/grafana-dashboard.json",
        ] {
            let content =
                std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
            let mut named: Vec<&str> = content
                .match_indices("provost_")
                .map(|(at, _)| {
                    let rest = &content[at..];
                    let end = rest
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(rest.len());
                    &rest[..end]
                })
                .collect();
            named.sort_unstable();
            named.dedup();
            assert!(named.len() >= 5, "{file} names {named:?}");
            for name in named {
                assert!(
                    served.iter().any(|s| s == name),
                    "{file} names `{name}`, which /metrics does not serve"
                );
            }
        }

        // A sync that could not start makes the org failing.
        let event = provost::sync::failed_event(
            "acme",
            SyncMode::Incremental,
            "test",
            None,
            "did not start: test",
        );
        store
            .record_unstarted_sync_run(
                record.id,
                SyncMode::Incremental,
                "test",
                "did not start: test",
                &event,
            )
            .await
            .unwrap();
        let text = scrape(prometheus.clone()).await.text().await.unwrap();
        assert_eq!(value(&text, r#"provost_sync_failing{org="acme"}"#), 1.0);
        assert_eq!(
            value(&text, r#"provost_sync_runs{org="acme",state="failed"}"#),
            1.0
        );

        for (path, status) in [
            ("/api/v1/orgs/nope/sync-runs", 404),
            ("/api/v1/orgs/acme/sync-runs?limit=0", 400),
            ("/api/v1/orgs/acme/changes?entity=user", 400),
            ("/api/v1/orgs/acme/changes?since=yesterday", 400),
        ] {
            let response = http
                .get(format!("{}{path}", server.base))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), status, "{path}");
            let body: Value = response.json().await.unwrap();
            assert!(
                body["error"]["message"].as_str().is_some(),
                "{path}: {body}"
            );
        }
        // An unknown org is 404 before its body or query is looked at, in each API's shape.
        let admin = crate::helpers::bearer_client(&store, "root", &["admin"]).await;
        for (method, path, body, content_type) in [
            (
                "POST",
                "/api/v1/orgs/nope/access-requests",
                "null",
                "text/plain",
            ),
            ("GET", "/api/v1/orgs/nope/changes?since=yesterday", "", ""),
            ("PUT", "/orgs/nope/scim/v2/Groups/x", "{}", "text/plain"),
            ("GET", "/orgs/nope/scim/v2/Users?filter=(((", "", ""),
        ] {
            let mut request =
                admin.request(method.parse().unwrap(), format!("{}{path}", server.base));
            if !body.is_empty() {
                request = request.header("content-type", content_type).body(body);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), 404, "{method} {path}");
            let body: Value = response.json().await.unwrap();
            let message = body["error"]["message"]
                .as_str()
                .or(body["detail"].as_str())
                .unwrap_or_default()
                .to_owned();
            assert!(
                message.contains("no org `nope` is configured"),
                "{method} {path}: {body}"
            );
        }
        let revoked = crate::helpers::bearer_client(&store, "gone", &["admin"]).await;
        assert!(store.revoke_token("gone").await.unwrap());
        let response = revoked
            .get(format!("{}/api/v1/orgs/acme/sync-runs", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401);
        server.shutdown().await;
        store.close().await;
        db.drop_database().await;
    }
}

/// A PostgreSQL that goes away while Provost serves (its connections cut, new ones refused):
/// calls answer 503 with `Retry-After` within the acquire timeout, a bad token too, readiness
/// says unready; and once it is back, calls succeed again.
#[tokio::test]
async fn a_database_that_goes_away_answers_503_with_retry_after() {
    use provost::config::{DatabaseConfig, DatabaseUrl};
    use tokio::task::JoinSet;

    let Some(db) = TestDatabase::postgres().await else {
        eprintln!("note: PROVOST_TEST_POSTGRES_URL is not set; skipped");
        return;
    };
    db.store().await.close().await; // migrated
    let mut url = url::Url::parse(&db.url).unwrap();
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    // A proxy in front of the database that can be cut and restored.
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = proxy.local_addr().unwrap().port();
    let serve_proxy = |listener: tokio::net::TcpListener, target: String| {
        tokio::spawn(async move {
            let mut links = JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    break;
                };
                let target = target.clone();
                links.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        })
    };
    let running = serve_proxy(proxy, target.clone());
    url.set_port(Some(port)).unwrap();
    let store = provost::store::open(&DatabaseConfig {
        url: DatabaseUrl::new(url.as_str()),
        max_connections: 4,
        acquire_timeout_ms: 1_000,
    })
    .await
    .unwrap();
    let server = TestServer::start(store.clone()).await;
    let scraper = crate::helpers::bearer_client(&store, "prometheus", &["metrics:read"]).await;
    let stranger = reqwest::Client::new();
    let metrics = format!("{}/metrics", server.base);
    assert_eq!(scraper.get(&metrics).send().await.unwrap().status(), 200);

    // Cut: every open connection dropped (aborting the proxy drops its links), new ones refused.
    running.abort();
    let _ = running.await;
    for (client, token) in [(&scraper, None), (&stranger, Some("pvt_not_a_real_token"))] {
        let mut request = client
            .get(&metrics)
            .timeout(std::time::Duration::from_secs(30));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let started = std::time::Instant::now();
        let response = request.send().await.unwrap();
        eprintln!(
            "answered {} after {:?}",
            response.status(),
            started.elapsed()
        );
        assert_eq!(response.status(), 503, "{token:?}");
        assert!(response.headers().contains_key("retry-after"));
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unavailable", "{body}");
    }
    let ready = stranger
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);

    // Back on the same port: calls succeed again without a restart.
    let proxy = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let running = serve_proxy(proxy, target);
    let mut answered = 0;
    for _ in 0..20 {
        answered = scraper
            .get(&metrics)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if answered == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(answered, 200, "the database is back");
    server.shutdown().await;
    store.close().await;
    running.abort();
    db.drop_database().await;
}

/// Shutdown under keep-alive clients: once it begins, new connections are refused, and every
/// request a client sends on a connection that was open is answered (with `Connection: close`
/// while draining), none left without an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_every_request_sent_on_an_open_connection() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let db = TestDatabase::sqlite().await;
    let store = db.store().await;
    let mut server = TestServer::start(store.clone()).await;
    let stopping = Arc::new(AtomicBool::new(false));
    let answered_while_stopping = Arc::new(AtomicUsize::new(0));
    let told_to_close = Arc::new(AtomicUsize::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let url = format!("{}/healthz", server.base);
        let (stopping, answered, closed) = (
            stopping.clone(),
            answered_while_stopping.clone(),
            told_to_close.clone(),
        );
        clients.spawn(async move {
            let client = reqwest::Client::new();
            loop {
                match client.get(&url).send().await {
                    Ok(response) => {
                        assert_eq!(response.status(), 200);
                        if stopping.load(Ordering::SeqCst) {
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                        if response
                            .headers()
                            .get("connection")
                            .is_some_and(|v| v == "close")
                        {
                            closed.fetch_add(1, Ordering::SeqCst);
                        }
                        let _ = response.bytes().await;
                    }
                    // Refused: the server no longer accepts; this client is done.
                    Err(err) if err.is_connect() => return Ok(()),
                    Err(err) => return Err(format!("a request got no answer: {err:?}")),
                }
            }
        });
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stopping.store(true, Ordering::SeqCst);
    let _ = server.stop.take().unwrap().send(());
    let outcomes = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        let mut outcomes = Vec::new();
        while let Some(outcome) = clients.join_next().await {
            outcomes.push(outcome.unwrap());
        }
        outcomes
    })
    .await
    .expect("every client finished");
    let lost: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(
        lost.is_empty(),
        "{} of 32 clients lost a request: {lost:?}",
        lost.len()
    );
    assert!(
        told_to_close.load(Ordering::SeqCst) > 0,
        "answers while draining say Connection: close"
    );
    eprintln!(
        "answered after shutdown began: {}; told to close: {}",
        answered_while_stopping.load(Ordering::SeqCst),
        told_to_close.load(Ordering::SeqCst)
    );
    server.task.take().unwrap().await.unwrap().unwrap();
    store.close().await;
}
