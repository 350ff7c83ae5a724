//! What a careless client or an attacker sends, answered as the API promises: authentication
//! before anything of the request is read, every error as JSON, requests that only their maker
//! (or an approver) may cancel, idempotency keys that belong to one token, user creation that
//! never claims someone else's user, and panics that are logged as JSON lines. On SQLite and
//! PostgreSQL.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{bearer_client, on_each_backend};
use crate::provisioning::{grant_body, Fixture};

async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(
        content_type.contains("json") && body["error"]["message"].is_string(),
        "{status} answers a JSON error: {content_type} {body}"
    );
    (status, body)
}

#[tokio::test]
async fn authentication_comes_first_and_every_error_is_json() {
    on_each_backend(|store| async move {
        let fixture = Fixture::start(store, |_| {}).await;
        let list = fixture.url("");
        // A token in the URL is refused whoever sends it, before the query is read.
        for query in [
            "access_token=pvt_x",
            "limit=abc&access_token=pvt_x",
            "ACCESS_TOKEN=x",
        ] {
            let (status, body) = answer(
                fixture
                    .raw
                    .get(format!("{list}?{query}"))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(status, 401, "{query}: {body}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("Authorization"),
                "{body}"
            );
            let (status, _) = answer(
                fixture
                    .requester
                    .get(format!("{list}?{query}"))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(status, 401, "{query}, even with a header");
        }
        // Without a token, malformed parameters are not looked at: 401, not 400.
        for path in [
            "?limit=abc",
            "?nonsense=1",
            "/not-a-number",
            "/99999999999999999999999",
        ] {
            let (status, _) = answer(
                fixture
                    .raw
                    .get(format!("{list}{path}"))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(status, 401, "{path}");
        }
        // With one, they are a JSON 400 saying what is wrong.
        for (path, says) in [
            ("?limit=abc", "limit"),
            ("?nonsense=1", "nonsense"),
            ("?before=0", "before=0"),
            ("/not-a-number", "not-a-number"),
            ("/99999999999999999999999", "99999999999999999999999"),
        ] {
            let (status, body) = answer(
                fixture
                    .requester
                    .get(format!("{list}{path}"))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(status, 400, "{path}: {body}");
            assert!(
                body["error"]["message"].as_str().unwrap().contains(says),
                "{path}: {body}"
            );
        }
        let changes = format!("{}/api/v1/orgs/acme/changes", fixture.api);
        for path in ["?run=-5", "?after=-1", "?limit=100000"] {
            let (status, _) = answer(
                fixture
                    .requester
                    .get(format!("{changes}{path}"))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(status, 400, "{path}");
        }
        // A method the path does not serve, and a body that is not JSON.
        let (status, body) = answer(fixture.requester.delete(&list).send().await.unwrap()).await;
        assert_eq!(status, 405, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("Allow header") || message.contains("GET"),
            "names the methods or where they are: {message}"
        );
        let (status, body) = answer(
            fixture
                .requester
                .post(&list)
                .header("content-type", "text/plain")
                .body(grant_body("x", "permission_set", "y").to_string())
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (415, Some("unsupported_media_type")),
            "{body}"
        );
        for body in ["null", "{}", "[]", "{\"action\": \"grant\"}"] {
            let (status, _) = answer(
                fixture
                    .requester
                    .post(&list)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(status, 400, "{body}");
        }
        assert!(fixture.requests(None).await.is_empty());
        fixture.stop().await;
    })
    .await;
}

#[tokio::test]
async fn only_its_maker_or_an_approver_cancels_a_request_and_keys_belong_to_one_token() {
    on_each_backend(|store| async move {
        let fixture = Fixture::start(store, |_| {}).await;
        let pairs = fixture.grantable_pairs(3).await;
        let other = bearer_client(
            &fixture.store,
            "other-flow",
            &["requests:write", "reports:read"],
        )
        .await;
        let ask = |client: &reqwest::Client, body: Value, key: Option<&str>| {
            let (client, url) = (client.clone(), fixture.url(""));
            let key = key.map(str::to_owned);
            async move {
                let mut request = client.post(url).json(&body);
                if let Some(key) = key {
                    request = request.header("Idempotency-Key", key);
                }
                let response = request.send().await.unwrap();
                (
                    response.status().as_u16(),
                    response.json::<Value>().await.unwrap(),
                )
            }
        };
        let cancel = |client: &reqwest::Client, id: i64| {
            let (client, url) = (client.clone(), fixture.url(&format!("/{id}/cancel")));
            async move { client.post(url).send().await.unwrap().status().as_u16() }
        };

        // Another requester's token cannot cancel; the maker can; an approver can, approved too.
        let (user, set) = &pairs[0];
        let mine = fixture
            .ask_ok(grant_body(user, "permission_set", set))
            .await;
        assert_eq!(cancel(&other, mine).await, 404);
        assert_eq!(fixture.show(mine).await["state"], "pending_approval");
        assert_eq!(cancel(&fixture.requester, mine).await, 200);
        let (user, set) = &pairs[1];
        let approved = fixture
            .ask_ok(grant_body(user, "permission_set", set))
            .await;
        assert_eq!(fixture.approve(approved).await.0, 200);
        assert_eq!(cancel(&other, approved).await, 404);
        assert_eq!(fixture.show(approved).await["state"], "approved");
        let lead = bearer_client(
            &fixture.store,
            "lead",
            &["requests:write", "requests:approve"],
        )
        .await;
        assert_eq!(cancel(&lead, approved).await, 200);
        assert_eq!(fixture.show(approved).await["state"], "cancelled");

        // The same Idempotency-Key from two tokens makes two requests; neither sees the other's.
        let (user, set) = &pairs[2];
        let mut first_body = grant_body(user, "permission_set", set);
        first_body["justification"] = json!("a secret reason");
        let (status, first) = ask(&fixture.requester, first_body.clone(), Some("key-1")).await;
        assert_eq!(status, 201, "{first}");
        let (status, again) = ask(&fixture.requester, first_body, Some("key-1")).await;
        assert_eq!((status, &again["id"]), (200, &first["id"]));
        let (user, set) = &pairs[0];
        let (status, theirs) = ask(
            &other,
            grant_body(user, "permission_set", set),
            Some("key-1"),
        )
        .await;
        assert_eq!(status, 201, "{theirs}");
        assert_ne!(theirs["id"], first["id"]);
        assert!(!theirs.to_string().contains("a secret reason"));
        let (status, theirs_again) = ask(
            &other,
            grant_body(user, "permission_set", set),
            Some("key-1"),
        )
        .await;
        assert_eq!((status, &theirs_again["id"]), (200, &theirs["id"]));
        fixture.stop().await;
    })
    .await;
}

#[tokio::test]
async fn creating_a_user_whose_username_exists_fails_unless_this_request_made_it() {
    on_each_backend(|store| async move {
        let fixture = Fixture::start(store, |_| {}).await;
        let profiles = fixture.entitlements(provost_connector::model::EntitlementKind::Profile).await;
        let admin = profiles.iter().find(|p| p.label == "System Administrator").unwrap();
        let standard = profiles.iter().find(|p| p.label == "Standard User").unwrap();
        // Someone makes a user in Salesforce; Provost has not synced it.
        let made: Value = fixture
            .raw
            .post(format!("{}/__emulator/records/User", fixture.sf))
            .json(&json!({
                "Username": "taken@acme.example.com", "Email": "taken@acme.example.com",
                "LastName": "Taken", "Alias": "taken", "ProfileId": admin.id,
                "TimeZoneSidKey": "America/Los_Angeles", "LocaleSidKey": "en_US",
                "LanguageLocaleKey": "en_US", "EmailEncodingKey": "UTF-8",
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let existing = made["id"].as_str().unwrap_or_else(|| panic!("{made}")).to_owned();
        let done = fixture
            .carry_out(json!({
                "action": "create_user",
                "entitlement": standard.id,
                "new_user": {"username": "taken@acme.example.com", "email": "new@acme.example.com", "first_name": "New", "last_name": "Person"},
            }))
            .await;
        assert_eq!(done["state"], "failed", "{done}");
        let error = done["error"].as_str().unwrap();
        assert!(error.contains("already has a user named") && error.contains(&existing), "{error}");
        // Nothing of the request is recorded for that user; Salesforce kept its profile.
        assert!(fixture.store.get_account(fixture.org.id, &existing).await.unwrap().is_none());
        let row = &fixture.rows(&format!("SELECT ProfileId, LastName FROM User WHERE Id = '{existing}'")).await[0];
        assert_eq!((row["ProfileId"].as_str(), row["LastName"].as_str()), (Some(admin.id.as_str()), Some("Taken")));

        // Salesforce makes the user but its answer is lost: the retry finds the user this
        // request made (same values, made after the request) and counts it as done.
        let id = fixture
            .ask_ok(json!({
                "action": "create_user",
                "entitlement": standard.id,
                "new_user": {"username": "lost.answer@acme.example.com", "email": "lost.answer@acme.example.com", "last_name": "Answer"},
            }))
            .await;
        assert_eq!(fixture.approve(id).await.0, 200);
        fixture.faults(json!({"cut_connection_rate": 1.0})).await;
        fixture.executor.run_once().await.unwrap();
        fixture.faults(json!({})).await;
        assert_eq!(fixture.show(id).await["state"], "approved");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        fixture.executor.run_once().await.unwrap();
        let shown = fixture.show(id).await;
        assert_eq!(shown["state"], "completed", "{shown}");
        assert!(shown["result"]["note"].as_str().unwrap().contains("earlier attempt"), "{shown}");
        let created = fixture.rows("SELECT Id FROM User WHERE Username = 'lost.answer@acme.example.com'").await;
        assert_eq!(created.len(), 1);
        assert_eq!(shown["result"]["record_id"], created[0]["Id"]);
        fixture.stop().await;
    })
    .await;
}

/// Run as a child process by the test below (which sets `PROVOST_PANIC_CHILD`): JSON logs,
/// then a panic. Run any other way, it does nothing.
#[test]
fn panicking_child() {
    if std::env::var_os("PROVOST_PANIC_CHILD").is_none() {
        return;
    }
    let _telemetry = provost::telemetry::init(
        &provost::config::LogConfig {
            format: provost::config::LogFormat::Json,
            filter: "info".to_owned(),
        },
        &provost::config::TracesConfig::default(),
    )
    .unwrap();
    panic!("a deliberate panic with \"quotes\"");
}

#[test]
fn panics_are_logged_as_json_lines() {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "hardening::panicking_child", "--nocapture"])
        .env("PROVOST_PANIC_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr
        .lines()
        .find(|line| line.contains("deliberate panic"))
        .unwrap_or_else(|| panic!("no panic line: {stderr}"));
    let logged: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
    assert_eq!(logged["level"], "ERROR");
    assert_eq!(logged["panic"], "a deliberate panic with \"quotes\"");
    assert!(
        logged["location"]
            .as_str()
            .unwrap()
            .contains("hardening.rs"),
        "{logged}"
    );
}
