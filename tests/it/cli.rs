//! The `provost` binary as an operator runs it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::TestDatabase;

fn provost(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_provost"));
    command.current_dir(dir);
    // The caller's environment must not leak configuration into the test.
    for (key, _) in std::env::vars() {
        if key.starts_with("PROVOST_") {
            command.env_remove(key);
        }
    }
    command
}

#[test]
fn config_check_with_a_wrong_type_exits_2_naming_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[server]\nlisten = 8080\n").unwrap();
    let output = provost(dir.path())
        .args(["--config", file.to_str().unwrap(), "config", "check"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("server.listen"), "{stderr}");
    assert!(stderr.contains("bad.toml"), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "nothing printed as if it were valid"
    );
}

#[test]
fn a_bad_environment_value_exits_2_naming_the_variable_source() {
    let dir = tempfile::tempdir().unwrap();
    let output = provost(dir.path())
        .env("PROVOST_DATABASE__MAX_CONNECTIONS", "lots")
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("database.max_connections"), "{stderr}");
    assert!(stderr.contains("PROVOST_"), "{stderr}");
}

#[test]
fn a_missing_config_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let output = provost(dir.path())
        .env("PROVOST_CONFIG", dir.path().join("absent.toml"))
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("absent.toml"));
}

#[test]
fn config_check_layers_file_then_environment_and_redacts_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("provost.toml"),
        "[server]\nlisten = \"127.0.0.1:9001\"\n[database]\nurl = \"postgres://provost:pa55word@db:5432/provost\"\n",
    )
    .unwrap();
    let output = provost(dir.path())
        .env("PROVOST_SERVER__LISTEN", "127.0.0.1:9002")
        .args(["config", "check"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let effective: toml::Value = toml::from_str(&stdout).expect("the output is TOML");
    assert_eq!(
        effective["server"]["listen"].as_str(),
        Some("127.0.0.1:9002")
    );
    assert_eq!(
        effective["server"]["shutdown_grace_seconds"].as_integer(),
        Some(30)
    );
    assert!(!stdout.contains("pa55word"), "{stdout}");
    assert!(stdout.contains("db:5432"), "{stdout}");
}

#[test]
fn migrate_creates_the_default_sqlite_file_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let output = provost(dir.path()).arg("migrate").output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.path().join("provost.db").is_file());
    // A second run finds nothing to do and succeeds.
    let again = provost(dir.path()).arg("migrate").output().unwrap();
    assert!(again.status.success());
}

/// A database that refuses connections: the error names the refusal (not a pool timeout),
/// once, as a line for a person or as one JSON log line.
#[test]
fn a_failing_command_prints_its_real_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    // Port 1 on loopback: nothing listens, so the connection is refused at once.
    std::fs::write(
        dir.path().join("provost.toml"),
        "[database]\nurl = \"postgres://postgres@127.0.0.1:1/postgres\"\n",
    )
    .unwrap();
    let output = provost(dir.path()).arg("migrate").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(
        lines[0].starts_with("provost: ") && lines[0].contains("refused"),
        "{stderr}"
    );
    assert!(!stderr.contains("pool timed out"), "{stderr}");
    assert_eq!(
        lines[0].matches("refused").count(),
        1,
        "each cause once: {stderr}"
    );

    let output = provost(dir.path())
        .args(["--log-format", "json", "migrate"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    let line: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(line["message"], "command failed", "{line}");
    assert!(
        line["error"].as_str().unwrap().contains("refused"),
        "{line}"
    );

    // An org the configuration does not name is exit 2 for reports too.
    let output = provost(dir.path())
        .args([
            "report",
            "entitlements",
            "--org",
            "nope",
            "--output",
            "x.csv",
        ])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn config_check_and_tokens_answer_json_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| provost(dir.path()).args(args).output().unwrap();
    let check = run(&["config", "check", "--json"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let config: Value = serde_json::from_slice(&check.stdout).expect("one JSON object");
    assert_eq!(config["database"]["url"], "sqlite://provost.db");

    let created = run(&[
        "token",
        "create",
        "--name",
        "ci",
        "--scopes",
        "metrics:read",
        "--json",
    ]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let token: Value = serde_json::from_slice(&created.stdout).expect("one JSON object");
    assert_eq!(token["name"], "ci");
    assert_eq!(token["scopes"], serde_json::json!(["metrics:read"]));
    assert!(token["token"].as_str().unwrap().starts_with("pvt_"));
    assert!(created.stderr.is_empty(), "nothing else printed");

    let revoked = run(&["token", "revoke", "--name", "ci", "--json"]);
    let answer: Value = serde_json::from_slice(&revoked.stdout).expect("one JSON object");
    assert_eq!(answer["revoked"], true);
}

#[test]
fn webhook_commands_show_status_refuse_bad_input_and_rewind() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("provost.toml"),
        "[[webhooks]]\nname = \"approvals\"\nurl = \"https://user:pw@hooks.example.com/p?token=t0k\"\nsecret = \"0123456789abcdef0123\"\n",
    )
    .unwrap();
    let run = |args: &[&str]| provost(dir.path()).args(args).output().unwrap();
    let status = run(&["webhook", "status", "--json"]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let line: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(line["name"], "approvals");
    assert_eq!(line["cursor"], Value::Null, "not started before serve runs");
    // The receiver's credentials and query never print.
    assert_eq!(line["url"], "https://hooks.example.com/p");

    let unknown = run(&["webhook", "replay", "--name", "nope", "--from", "1"]);
    assert_eq!(unknown.status.code(), Some(2), "a wrong command line");
    let text = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        text.contains("no webhook is named `nope`; configured: approvals"),
        "{text}"
    );

    let empty = run(&["webhook", "replay", "--name", "approvals", "--from", "1"]);
    assert_eq!(empty.status.code(), Some(1));
    let text = String::from_utf8_lossy(&empty.stderr);
    assert!(text.contains("the log holds entries 1 to 0"), "{text}");

    // A token change is an audit entry: replaying from it starts the webhook there.
    let token = run(&["token", "create", "--name", "ops", "--scopes", "admin"]);
    assert!(token.status.success());
    let replay = run(&[
        "webhook",
        "replay",
        "--name",
        "approvals",
        "--from",
        "1",
        "--json",
    ]);
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let answer: Value = serde_json::from_slice(&replay.stdout).unwrap();
    assert_eq!(answer["from"], 1);
    assert_eq!(answer["to"], 1);
    assert_eq!(answer["dead_letters_replayed"], 0);
    let status = run(&["webhook", "status", "--json"]);
    let line: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(line["cursor"]["after_seq"], 0);
    assert_eq!(line["behind"], 1);
    let dead = run(&["webhook", "dead-letters", "--name", "approvals"]);
    assert!(String::from_utf8_lossy(&dead.stdout).contains("No dead letters"));
}

/// A running `provost serve` child with its announced address, and its log lines as they come.
struct Served {
    child: Child,
    address: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Served {
    /// The log lines so far that are JSON objects.
    fn lines(&self) -> Vec<Value> {
        self.log.lock().unwrap().clone()
    }
}

fn start_serve(dir: &Path, database_url: &str) -> Served {
    start_serve_with(dir, database_url, &[])
}

fn start_serve_with(dir: &Path, database_url: &str, env: &[(&str, &str)]) -> Served {
    let mut command = provost(dir);
    command.envs(env.iter().copied());
    let mut child = command
        .args(["--log-format", "json", "serve"])
        .env("PROVOST_SERVER__LISTEN", "127.0.0.1:0")
        .env("PROVOST_DATABASE__URL", database_url)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let address = loop {
        assert!(
            Instant::now() < deadline,
            "serve did not announce its address"
        );
        let line = lines
            .next()
            .expect("serve exited before listening")
            .unwrap();
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if event["message"] == "provost is listening" {
            break event["address"].as_str().unwrap().to_owned();
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if let Ok(event) = serde_json::from_str::<Value>(&line) {
                kept.lock().unwrap().push(event);
            }
        }
    });
    Served {
        child,
        address,
        log,
    }
}

/// The (path, trace id) of every log line logged in a request's span.
fn trace_ids(lines: &[Value]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|line| {
            let span = &line["span"];
            Some((
                span["path"].as_str()?.to_owned(),
                span["trace_id"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// [`stop_serve`] off the test's runtime, which keeps serving what the child calls (a
/// collector) while it stops.
async fn stop_serve_in_background(mut served: Served) -> Served {
    tokio::task::spawn_blocking(move || {
        stop_serve(&mut served);
        served
    })
    .await
    .unwrap()
}

/// Sends SIGTERM and waits for a clean exit.
fn stop_serve(served: &mut Served) {
    let pid = served.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = served.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");
}

/// Without trace export, a request's log lines still carry a trace id: the caller's from a
/// valid `traceparent`, a new one otherwise (also for a malformed header).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_log_lines_carry_the_callers_trace_id_without_export() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("provost.db").display());
    let dir_path = dir.path().to_owned();
    let served = tokio::task::spawn_blocking(move || {
        start_serve_with(
            &dir_path,
            &db,
            &[("PROVOST_LOG__FILTER", "info,tower_http=debug")],
        )
    })
    .await
    .unwrap();
    let base = format!("http://{}", served.address);
    let client = reqwest::Client::new();
    let trace = "0af7651916cd43dd8448eb211c80319c";
    for (path, header) in [
        ("/healthz", format!("00-{trace}-b7ad6b7169203331-01")),
        (
            "/readyz",
            format!("00-{}-b7ad6b7169203331-01", trace.to_uppercase()),
        ),
    ] {
        let answer = client
            .get(format!("{base}{path}"))
            .header("traceparent", header)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    let served = stop_serve_in_background(served).await;
    let ids = trace_ids(&served.lines());
    assert!(
        ids.contains(&("/healthz".to_owned(), trace.to_owned())),
        "{ids:?}"
    );
    let other = ids
        .iter()
        .find(|(path, _)| path == "/readyz")
        .map(|(_, id)| id.as_str())
        .expect("the /readyz request was logged");
    assert!(
        other.len() == 32 && other != trace && !other.eq_ignore_ascii_case(trace),
        "a malformed traceparent (upper-case) starts a trace of its own: {other}"
    );
}

/// With `traces.otlp_endpoint` set, a request's span goes to the collector in the caller's
/// trace (its `traceparent`), its log lines carry the same trace id, and the spans not yet
/// sent are sent at shutdown; `server.metrics_listen` serves /metrics without a token and
/// nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_exports_traces_logs_their_ids_and_serves_metrics_on_its_own_address() {
    use axum::routing::post;
    type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;
    let received: Received = Default::default();
    let collector = axum::Router::new()
        .route(
            "/v1/traces",
            post(
                |axum::extract::State(received): axum::extract::State<Received>,
                 headers: axum::http::HeaderMap,
                 body: axum::body::Bytes| async move {
                    let kind = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    received.lock().unwrap().push((kind, body.to_vec()));
                    "{}"
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, collector).await });

    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("provost.db").display());
    let dir_path = dir.path().to_owned();
    let endpoint = collector_url.clone();
    let served = tokio::task::spawn_blocking(move || {
        start_serve_with(
            &dir_path,
            &db,
            &[
                ("PROVOST_TRACES__OTLP_ENDPOINT", endpoint.as_str()),
                ("PROVOST_TRACES__OTLP_PROTOCOL", "http/json"),
                ("PROVOST_SERVER__METRICS_LISTEN", "127.0.0.1:0"),
                ("PROVOST_LOG__FILTER", "info,tower_http=debug"),
            ],
        )
    })
    .await
    .unwrap();
    let base = format!("http://{}", served.address);
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let client = reqwest::Client::new();
    let answer = client
        .get(format!("{base}/healthz"))
        .header("traceparent", format!("00-{trace}-{parent}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    // A request without one starts a trace of its own.
    let other = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(other.status(), 200);

    // Metrics on their own address: no token needed, nothing else served there.
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics_address = loop {
        let found = served.lines().into_iter().find_map(|line| {
            (line["message"] == "metrics are served without a token on this address")
                .then(|| line["address"].as_str().unwrap().to_owned())
        });
        if let Some(address) = found {
            break address;
        }
        assert!(Instant::now() < deadline, "no metrics address announced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let scraped = reqwest::get(format!("http://{metrics_address}/metrics"))
        .await
        .unwrap();
    assert_eq!(scraped.status(), 200);
    let text = scraped.text().await.unwrap();
    assert!(
        text.contains(
            r#"provost_http_requests_total{route="/healthz",method="GET",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains("provost_sync_duration_seconds"), "{text}");
    let elsewhere = reqwest::get(format!("http://{metrics_address}/api/v1/orgs"))
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 404);
    let guarded = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(
        guarded.status(),
        401,
        "on the API's address it takes a token"
    );

    let served = stop_serve_in_background(served).await;
    // Log lines of the request carry the caller's trace id; the other request has its own.
    let lines = served.lines();
    let trace_ids = trace_ids(&lines);
    assert!(
        trace_ids.contains(&("/healthz".to_owned(), trace.to_owned())),
        "{lines:#?}"
    );
    let own = trace_ids
        .iter()
        .find(|(path, _)| path == "/readyz")
        .map(|(_, id)| id.clone())
        .expect("the /readyz request was logged");
    assert_eq!(own.len(), 32);
    assert!(own.bytes().all(|b| b.is_ascii_hexdigit()) && own != trace);

    // The collector has the request's span, in the caller's trace, under its parent.
    let received = received.lock().unwrap().clone();
    assert!(!received.is_empty(), "nothing was exported");
    let spans: Vec<Value> = received
        .iter()
        .flat_map(|(kind, body)| {
            assert!(kind.starts_with("application/json"), "{kind}");
            let body: Value = serde_json::from_slice(body).unwrap();
            let resource = body["resourceSpans"].as_array().unwrap().clone();
            resource.into_iter().flat_map(|r| {
                let service = r["resource"]["attributes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| a["key"] == "service.name" && a["value"]["stringValue"] == "provost");
                assert!(service, "the service is named: {r}");
                r["scopeSpans"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|s| s["spans"].as_array().unwrap().clone())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let request = spans
        .iter()
        .find(|span| span["traceId"] == trace)
        .unwrap_or_else(|| panic!("no span in trace {trace}: {spans:#?}"));
    assert_eq!(request["name"], "request");
    assert_eq!(request["parentSpanId"], parent);
    assert!(
        spans.iter().any(|span| span["traceId"] == own.as_str()),
        "the other request's span is exported under the id its log lines carry"
    );
}

#[tokio::test]
async fn serve_answers_health_and_stops_gracefully_on_sigterm() {
    for db in TestDatabase::all().await {
        let dir = tempfile::tempdir().unwrap();
        let served = start_serve(dir.path(), &db.url);
        let base = format!("http://{}", served.address);
        for path in ["/healthz", "/readyz"] {
            let response = reqwest::get(format!("{base}{path}")).await.unwrap();
            assert_eq!(response.status(), 200, "{path} on {}", db.url);
        }
        stop_serve_in_background(served).await;
        db.drop_database().await;
    }
}

#[tokio::test]
async fn emulator_prints_one_json_line_that_lets_a_client_connect() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("emulator.pem");
    let mut child = provost(dir.path())
        .args([
            "emulator",
            "--preset",
            "small",
            "--key-file",
            key_file.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: Value = serde_json::from_str(&line).expect("one JSON line on stdout");
    for field in [
        "login_url",
        "instance_url",
        "client_id",
        "client_secret",
        "username",
        "private_key_path",
    ] {
        assert!(info[field].is_string(), "{field} in {info}");
    }
    assert_eq!(info["private_key_path"], key_file.to_str().unwrap());
    let pem = std::fs::read_to_string(&key_file).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the private key is readable by its owner only");
    }
    let token = reqwest::Client::new()
        .post(format!(
            "{}/services/oauth2/token",
            info["login_url"].as_str().unwrap()
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", info["client_id"].as_str().unwrap()),
            ("client_secret", info["client_secret"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 200);
    child.kill().unwrap();
    let _ = child.wait();

    // Restarted, it keeps the key it wrote: a configuration naming the file stays valid, and
    // the JWT bearer flow signs with it.
    let start = || {
        provost(dir.path())
            .args([
                "emulator",
                "--preset",
                "small",
                "--key-file",
                key_file.to_str().unwrap(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut child = start();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: Value = serde_json::from_str(&line).expect("one JSON line on stdout");
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap(),
        pem,
        "the same key"
    );
    let client = provost_salesforce::SalesforceClient::new(
        provost_salesforce::ClientConfig::new(info["login_url"].as_str().unwrap()),
        provost_salesforce::Credentials::JwtBearer {
            client_id: info["client_id"].as_str().unwrap().to_owned(),
            username: info["username"].as_str().unwrap().to_owned(),
            private_key_pem: provost_connector::secret::Secret::new(pem.clone()),
        },
    )
    .unwrap();
    client
        .connect()
        .await
        .expect("a JWT signed with the kept key is accepted");
    child.kill().unwrap();
    let _ = child.wait();

    // A key file that holds no key is refused, saying what to do; it is not overwritten.
    std::fs::write(&key_file, "not a key").unwrap();
    let output = provost(dir.path())
        .args(["emulator", "--key-file", key_file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("holds no usable key: delete it"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), "not a key");
}

#[test]
fn a_bad_emulator_fixture_fails_naming_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = dir.path().join("org.json");
    std::fs::write(
        &fixture,
        r#"{"org_name":"F","records":{"Profile":[{"Name":"P","UserLicenseId":"100000000000009"}]}}"#,
    )
    .unwrap();
    let output = provost(dir.path())
        .args(["emulator", "--fixture", fixture.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("Profile record 0") && stderr.contains("UserLicenseId"),
        "{stderr}"
    );
}

/// A working directory whose provost.toml has two orgs on the emulator: `acme`, as its
/// integration user, and `ghost`, as a user who does not exist (every login fails).
fn acme_and_ghost(
    emulator: &provost_salesforce_emulator::Emulator,
    base: &str,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    std::fs::write(&key, &emulator.app.private_key_pem).unwrap();
    let org = |name: &str, username: &str| {
        format!(
            "[[orgs]]\nname = \"{name}\"\nlogin_url = \"{base}\"\n[orgs.auth]\nmethod = \"jwt_bearer\"\nclient_id = \"{}\"\nusername = \"{username}\"\nprivate_key_file = \"{}\"\n",
            emulator.app.client_id,
            key.display()
        )
    };
    let config = format!(
        "{}\n{}",
        org("acme", &emulator.integration_username()),
        org("ghost", "ghost@acme.example.com")
    );
    std::fs::write(dir.path().join("provost.toml"), config).unwrap();
    dir
}

/// Runs the binary off the async runtime, so the in-process emulator keeps serving.
async fn run_provost(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut command = provost(dir);
    command.args(args);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_reports_an_org_as_json_or_text_with_exit_codes() {
    use provost_salesforce_emulator::{server, Emulator, EmulatorConfig};
    let emulator = Emulator::new(EmulatorConfig::default());
    let base = server::spawn(emulator.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = acme_and_ghost(&emulator, &base);

    let output = run_provost(dir.path(), &["preflight", "--org", "acme", "--json"]).await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    assert_eq!(report["ok"], true);
    for check in report["checks"].as_array().unwrap() {
        for field in ["id", "status", "needed_for", "detail", "remedy"] {
            assert!(check.get(field).is_some(), "{field} in {check}");
        }
    }

    let output = run_provost(dir.path(), &["preflight", "--org", "ghost"]).await;
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("FAIL  authentication") && text.contains("fix: Pre-authorise"),
        "{text}"
    );

    let output = run_provost(dir.path(), &["preflight", "--org", "nope"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("acme, ghost"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_from_a_terminal_then_preflight_with_the_stored_token() {
    use provost_salesforce_emulator::{server, Emulator, EmulatorConfig};
    let emulator = Emulator::new(EmulatorConfig::default());
    let base = server::spawn(emulator.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("provost.toml"),
        format!("[[orgs]]\nname = \"web\"\nlogin_url = \"{base}\"\nauth = {{ method = \"web_server\", client_id = \"{}\" }}\n", emulator.app.client_id),
    )
    .unwrap();

    let output = run_provost(dir.path(), &["preflight", "--org", "web"]).await;
    assert_eq!(output.status.code(), Some(1), "not connected yet");
    assert!(String::from_utf8_lossy(&output.stderr).contains("provost connect --org web"));

    let mut child = provost(dir.path())
        .args(["connect", "--org", "web", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (url, lines) = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let url = lines
            .find_map(|l| l.ok().filter(|l| l.starts_with("http")))
            .expect("the URL to open");
        (url, lines)
    })
    .await
    .unwrap();
    let authorize = url::Url::parse(&url).unwrap();
    let mut form: Vec<(String, String)> = authorize.query_pairs().into_owned().collect();
    form.extend([
        ("username".into(), emulator.integration_username()),
        ("password".into(), "emulator".into()),
        ("decision".into(), "allow".into()),
    ]);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = http
        .post(format!("{base}/services/oauth2/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let back = login.headers()["location"].to_str().unwrap().to_owned();
    assert!(back.contains("/OauthRedirect?"), "{back}");
    assert_eq!(http.get(&back).send().await.unwrap().status(), 200);

    let (status, rest) = tokio::task::spawn_blocking(move || {
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        (child.wait().unwrap(), rest.join("\n"))
    })
    .await
    .unwrap();
    assert!(status.success(), "{rest}");
    assert!(
        rest.contains("Connected org `web`") && rest.contains("every required check passed"),
        "{rest}"
    );
    assert!(
        dir.path().join("provost.key").is_file(),
        "the key was created on first use"
    );

    let output = run_provost(dir.path(), &["preflight", "--org", "web", "--json"]).await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_from_the_command_line_with_a_json_summary_status_and_a_preflight_gate() {
    use provost_salesforce_emulator::{server, Emulator, EmulatorConfig};
    let emulator = Emulator::new(EmulatorConfig::default());
    let base = server::spawn(emulator.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = acme_and_ghost(&emulator, &base);

    let output = run_provost(dir.path(), &["sync", "--org", "acme", "--json"]).await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    assert_eq!(summary["org"], "acme");
    assert_eq!(summary["status"], "succeeded");
    assert_eq!(
        summary["mode"], "incremental",
        "the first run reads everything all the same"
    );
    assert!(
        summary["counts"]["accounts"]["created"].as_u64().unwrap() > 10,
        "{summary}"
    );
    assert!(summary["api_calls"].as_u64().unwrap() > 10);
    assert!(summary["duration_seconds"].as_f64().is_some());

    // Text summary of an unchanged re-sync.
    let output = run_provost(dir.path(), &["sync", "--org", "acme", "--full"]).await;
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("Sync of org `acme` completed") && text.contains("(full, attempt 1)"),
        "{text}"
    );
    assert!(
        text.contains("users                 0         0         0"),
        "{text}"
    );

    // The preflight gate: a user who cannot log in never starts a sync.
    let output = run_provost(dir.path(), &["sync", "--org", "ghost"]).await;
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("FAIL  authentication") && text.contains("did not start"),
        "{text}"
    );

    let output = run_provost(dir.path(), &["sync", "status", "--json"]).await;
    assert_eq!(output.status.code(), Some(0));
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "one line per org");
    assert_eq!(lines[0]["org"], "acme");
    assert_eq!(lines[0]["runs"].as_array().unwrap().len(), 2);
    assert_eq!(lines[0]["health"]["success_rate"], 1.0);
    assert_eq!(lines[0]["health"]["failing"], false);
    // A sync that did not start is a failed run with its reason, and health says so.
    let ghost = &lines[1];
    let runs = ghost["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{ghost}");
    assert_eq!(runs[0]["status"], "failed");
    assert_eq!(runs[0]["api_calls"], 0);
    let error = runs[0]["error"].as_str().unwrap();
    assert!(
        error.starts_with("did not start: the preflight failed: authentication"),
        "{error}"
    );
    assert_eq!(ghost["health"]["success_rate"], 0.0);
    assert_eq!(ghost["health"]["failed_runs"], 1);
    assert_eq!(ghost["health"]["failing"], true);
    assert_eq!(ghost["health"]["last_error"], error);
    assert!(ghost["health"]["last_failure_at"].is_string());

    // Health does not change with how much of the history is listed.
    let output = run_provost(
        dir.path(),
        &["sync", "status", "--org", "acme", "--limit", "1"],
    )
    .await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("last 7 days: 2 run(s), 2 finished, 0 failed; success rate 100%"),
        "{text}"
    );
    let output = run_provost(dir.path(), &["sync", "status", "--org", "ghost"]).await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("1 failed; success rate 0%")
            && text.contains("last failure (")
            && text.contains("FAILING: the latest run failed; no success in the last 7 days"),
        "{text}"
    );

    // It is in the audit log, which webhooks send as `sync.failed`.
    let output = run_provost(dir.path(), &["audit", "export"]).await;
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(
        log.lines()
            .any(|line| line.contains("\"sync_failed\"") && line.contains("ghost")),
        "{log}"
    );

    let output = run_provost(dir.path(), &["sync", "--org", "nope"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("acme, ghost"));
    // Reports from the command line: a file with its manifest, verified, then caught changed.
    let file = dir.path().join("entitlements.csv");
    let output = run_provost(
        dir.path(),
        &[
            "report",
            "entitlements",
            "--org",
            "acme",
            "--output",
            file.to_str().unwrap(),
            "--json",
        ],
    )
    .await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.path().join("entitlements.csv.manifest.json").is_file());
    let answer: Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    assert_eq!(answer["path"], file.to_str().unwrap());
    assert!(answer["rows"].as_u64().unwrap() > 0, "{answer}");
    assert_eq!(answer["sha256"].as_str().unwrap().len(), 64, "{answer}");
    // Bigger than a pipe holds, so the early reader below really cuts it.
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(size > 100_000, "{size}");
    assert!(!dir.path().join("entitlements.csv.partial").exists());
    let output = run_provost(dir.path(), &["report", "verify", file.to_str().unwrap()]).await;
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).contains("matches its manifest"));
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.push(b'x');
    std::fs::write(&file, bytes).unwrap();
    let output = run_provost(dir.path(), &["report", "verify", file.to_str().unwrap()]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("does NOT match"));
    let output = run_provost(dir.path(), &["report", "dormant", "--org", "acme"]).await;
    assert_eq!(output.status.code(), Some(2), "--days is required");
    let output = run_provost(
        dir.path(),
        &["report", "changes", "--org", "acme", "--since", "yesterday"],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("RFC 3339"));

    // A reader that stops early (`| head`) is not an error.
    let mut child = provost(dir.path())
        .args([
            "report",
            "entitlements",
            "--org",
            "acme",
            "--format",
            "ndjson",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1024];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_generates_an_org_and_syncs_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let output = run_provost(
        dir.path(),
        &[
            "demo",
            "--preset",
            "small",
            "--no-serve",
            "--data-dir",
            data.to_str().unwrap(),
        ],
    )
    .await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("Result: every required check passed."),
        "{text}"
    );
    assert!(
        text.contains("Sync of org `demo` completed: run 1 (full, attempt 1)"),
        "{text}"
    );
    assert!(data.join("provost.db").is_file());

    // Without --data-dir it works in a temporary directory and removes it when it ends.
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let mut command = provost(dir.path());
    command
        .args(["demo", "--preset", "small", "--no-serve"])
        .env("TMPDIR", &tmp);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.contains("the temporary data directory is removed"),
        "{text}"
    );
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name.to_string_lossy().starts_with("provost-demo-"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_syncs_run_inside_serve_once_per_org_across_two_replicas() {
    use provost_salesforce_emulator::{server, Emulator, EmulatorConfig};
    let emulator = Emulator::new(EmulatorConfig::default());
    let base = server::spawn(emulator.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    for db in TestDatabase::all().await {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, &emulator.app.private_key_pem).unwrap();
        std::fs::write(
            dir.path().join("provost.toml"),
            format!(
                "[[orgs]]\nname = \"acme\"\nlogin_url = \"{base}\"\nsync_interval_minutes = 60\n[orgs.auth]\nmethod = \"jwt_bearer\"\nclient_id = \"{}\"\nusername = \"{}\"\nprivate_key_file = \"{}\"\n",
                emulator.app.client_id,
                emulator.integration_username(),
                key.display()
            ),
        )
        .unwrap();
        let store = db.store().await;
        let http = crate::helpers::bearer_client(&store, "reporter", &["reports:read"]).await;
        store.close().await;
        // Two replicas on one database: both schedules are due at once (the org never synced).
        let (dir_path, url) = (dir.path().to_owned(), db.url.clone());
        let replicas = tokio::task::spawn_blocking(move || {
            [start_serve(&dir_path, &url), start_serve(&dir_path, &url)]
        })
        .await
        .unwrap();
        let runs_url = format!("http://{}/api/v1/orgs/acme/sync-runs", replicas[1].address);
        let deadline = Instant::now() + Duration::from_secs(60);
        let body = loop {
            let body: Value = http
                .get(&runs_url)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if body["runs"][0]["status"] == "succeeded" {
                break body;
            }
            assert!(
                Instant::now() < deadline,
                "no scheduled sync completed: {body}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(body["runs"][0]["started_by"], "schedule");
        // Give the other replica time to have tried; it found the org busy or already synced.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let body: Value = http
            .get(&runs_url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            body["runs"].as_array().unwrap().len(),
            1,
            "one sync, not one per replica: {body}"
        );
        for mut replica in replicas {
            let _ = replica.child.kill();
            let _ = replica.child.wait();
        }
        db.drop_database().await;
    }
}
