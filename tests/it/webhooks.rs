//! Webhooks against a receiver on loopback: every request state change is sent in order,
//! signed (checked here with HMAC-SHA256 computed by the test), retried through 5xx answers,
//! filtered by event type, dead-lettered and replayed, never lost or repeated across a restart,
//! and sent once when two senders run at once; on every backend.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use provost::config::{Secret, WebhookConfig};
use provost::provisioning::request::RequestState;
use provost::webhooks::deliverer::Deliverer;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::on_each_backend;
use crate::provisioning::{grant_body, Fixture};

const SECRET: &str = "whsec-test-0123456789abcdef";

/// One POST as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    event: String,
    signature: String,
    body: Vec<u8>,
    /// What the receiver answered.
    status: u16,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// Records every POST per path and answers with scripted statuses (200 once the script for
/// the path is used up; `always` paths answer their status forever).
#[derive(Default)]
struct Receiver {
    seen: HashMap<String, Vec<Received>>,
    script: HashMap<String, VecDeque<u16>>,
    always: HashMap<String, u16>,
}

type Shared = Arc<Mutex<Receiver>>;

async fn receive(
    State(shared): State<Shared>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut receiver = shared.lock().unwrap();
    let status = match receiver.always.get(&path) {
        Some(status) => *status,
        None => receiver
            .script
            .get_mut(&path)
            .and_then(VecDeque::pop_front)
            .unwrap_or(200),
    };
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    receiver.seen.entry(path).or_default().push(Received {
        id: header("provost-event-id"),
        event: header("provost-event-type"),
        signature: header("provost-signature"),
        body: body.to_vec(),
        status,
    });
    StatusCode::from_u16(status).unwrap()
}

async fn spawn_receiver() -> (String, Shared) {
    let shared: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/hooks/{path}", axum::routing::post(receive))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, shared)
}

fn hook(name: &str, url: String, events: &[&str]) -> WebhookConfig {
    WebhookConfig {
        name: name.to_owned(),
        url,
        secret: Secret::new(SECRET),
        events: events.iter().map(|e| (*e).to_owned()).collect(),
        orgs: Vec::new(),
        timeout_seconds: 5,
        give_up_after_minutes: 24 * 60,
        allow_plain_http: false,
    }
}

/// Checks `Provost-Signature: t=..,v1=..` against HMAC-SHA256 computed here.
fn assert_signed(received: &Received) {
    let (t, v1) = received
        .signature
        .split_once(",v1=")
        .unwrap_or_else(|| panic!("signature header {:?}", received.signature));
    let timestamp: i64 = t.strip_prefix("t=").unwrap().parse().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(
        (now - timestamp).abs() < 300,
        "timestamp {timestamp} vs now {now}"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&received.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v1, expected, "the signature of {}", received.id);
}

/// The accepted (2xx) deliveries of `path`, in order.
fn accepted(shared: &Shared, path: &str) -> Vec<Received> {
    shared
        .lock()
        .unwrap()
        .seen
        .get(path)
        .map(|all| all.iter().filter(|r| r.status < 300).cloned().collect())
        .unwrap_or_default()
}

fn attempts(shared: &Shared, path: &str) -> Vec<Received> {
    shared
        .lock()
        .unwrap()
        .seen
        .get(path)
        .cloned()
        .unwrap_or_default()
}

/// Runs `deliverer` until `done` holds, for at most 30 s.
async fn deliver_until(deliverer: &Deliverer, done: impl Fn() -> bool) {
    let started = Instant::now();
    loop {
        deliverer.run_once().await.unwrap();
        if done() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "webhooks were not delivered in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn state_changes_reach_webhooks_signed_in_order_through_retries_and_restarts() {
    on_each_backend(|store| async move {
        let (base, shared) = spawn_receiver().await;
        {
            let mut receiver = shared.lock().unwrap();
            // The first notification is refused twice before it is accepted.
            receiver
                .script
                .insert("all".into(), VecDeque::from([500, 503]));
            receiver.always.insert("broken".into(), 500);
        }
        let fixture = Fixture::start(store, |config| {
            config.webhooks = vec![
                hook("all", format!("{base}/all"), &[]),
                hook(
                    "done",
                    format!("{base}/done"),
                    &["request.completed", "request.failed"],
                ),
                WebhookConfig {
                    give_up_after_minutes: 0,
                    ..hook("broken", format!("{base}/broken"), &[])
                },
            ];
        })
        .await;
        let deliverer = Deliverer::new(
            fixture.config.clone(),
            fixture.store.clone(),
            "sender-1".into(),
        )
        .unwrap();
        // Started before any request: the webhooks are told what happens from now on.
        deliverer.run_once().await.unwrap();
        let (head, _) = fixture.store.audit_head().await.unwrap();

        let pairs = fixture.grantable_pairs(3).await;
        let granted = fixture
            .ask_ok(grant_body(&pairs[0].0, "permission_set", &pairs[0].1))
            .await;
        let (status, _) = fixture.approve(granted).await;
        assert_eq!(status, 200);
        fixture.executor.run_once().await.unwrap();
        let rejected = fixture
            .ask_ok(grant_body(&pairs[1].0, "permission_set", &pairs[1].1))
            .await;
        let (status, _) = fixture
            .send(
                &fixture.approver,
                &format!("/{rejected}/reject"),
                Some(json!({"comment": "not needed"})),
                None,
            )
            .await;
        assert_eq!(status, 200);

        let expected = [
            (granted, "request.created"),
            (granted, "request.approved"),
            (granted, "request.executing"),
            (granted, "request.completed"),
            (rejected, "request.created"),
            (rejected, "request.rejected"),
        ];
        deliver_until(&deliverer, || {
            accepted(&shared, "all").len() >= expected.len()
                && attempts(&shared, "broken").len() >= expected.len()
                && !accepted(&shared, "done").is_empty()
        })
        .await;

        // In order, each once, signed, with the request as it is now.
        let all = accepted(&shared, "all");
        let seen: Vec<(i64, String)> = all
            .iter()
            .map(|r| (r.json()["request_id"].as_i64().unwrap(), r.event.clone()))
            .collect();
        let want: Vec<(i64, String)> = expected
            .iter()
            .map(|(id, e)| (*id, (*e).to_owned()))
            .collect();
        assert_eq!(seen, want);
        let ids: Vec<i64> = all.iter().map(|r| r.id.parse().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert!(
            ids[0] > head,
            "only what happened after the webhook started"
        );
        for received in &all {
            assert_signed(received);
            let body = received.json();
            assert_eq!(body["id"], json!(received.id));
            assert_eq!(body["type"], json!(received.event));
            assert_eq!(body["org"], json!("acme"));
            assert_eq!(
                body["audit"]["seq"].as_i64().unwrap().to_string(),
                received.id
            );
        }
        let completed = all
            .iter()
            .find(|r| r.event == "request.completed")
            .unwrap()
            .json();
        assert_eq!(completed["request"]["state"], json!("completed"));
        assert_eq!(completed["request"]["action"], json!("grant"));
        assert!(
            completed["data"]["record_id"].as_str().is_some(),
            "{completed}"
        );
        let rejection = all.last().unwrap().json();
        assert_eq!(rejection["actor"], json!("manager"));
        assert_eq!(rejection["request"]["state"], json!("rejected"));

        // The refused attempts were the first notification, tried again under the same id.
        let tries = attempts(&shared, "all");
        assert_eq!(tries.len(), expected.len() + 2);
        assert_eq!(
            tries[..3]
                .iter()
                .map(|r| (r.id.as_str(), r.status))
                .collect::<Vec<_>>(),
            [
                (all[0].id.as_str(), 500),
                (all[0].id.as_str(), 503),
                (all[0].id.as_str(), 200)
            ]
        );

        // The filtered webhook got only the completion.
        let done = accepted(&shared, "done");
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].event, "request.completed");
        assert_eq!(done[0].id, all[3].id);

        // The broken receiver: each notification tried once, given up on, and passed.
        let broken = attempts(&shared, "broken");
        assert_eq!(broken.len(), expected.len());
        let dead = fixture
            .store
            .webhook_dead_letters("broken", 100)
            .await
            .unwrap();
        assert_eq!(dead.len(), expected.len());
        assert!(
            dead.iter().all(|d| d.last_error.contains("HTTP 500")),
            "{dead:?}"
        );
        let cursors = fixture.store.webhook_cursors().await.unwrap();
        let cursor = |name: &str| cursors.iter().find(|c| c.name == name).unwrap().clone();
        assert_eq!(cursor("all").delivered, expected.len() as i64);
        assert_eq!(cursor("all").attempts, 0);
        assert_eq!(cursor("all").last_error, None);
        assert_eq!(cursor("broken").delivered, 0);

        // Replayed once the receiver works: every dead letter arrives.
        shared.lock().unwrap().always.remove("broken");
        let first_dead = dead.iter().map(|d| d.seq).min().unwrap();
        assert_eq!(
            fixture.store.waiting_dead_letters("broken").await.unwrap(),
            dead.len() as i64
        );
        assert_eq!(
            fixture
                .store
                .rewind_webhook("broken", first_dead - 1)
                .await
                .unwrap(),
            Some(dead.len() as u64),
            "every dead letter after the cursor is marked replayed"
        );
        let marked = fixture
            .store
            .webhook_dead_letters("broken", 100)
            .await
            .unwrap();
        assert!(marked.iter().all(|d| d.replayed_at.is_some()), "{marked:?}");
        assert_eq!(
            fixture.store.waiting_dead_letters("broken").await.unwrap(),
            0
        );
        assert!(dead.iter().all(|d| d.replayed_at.is_none()));
        assert_eq!(
            fixture.store.rewind_webhook("nobody", 0).await.unwrap(),
            None
        );
        deliver_until(&deliverer, || {
            accepted(&shared, "broken").len() == expected.len()
        })
        .await;
        let replayed: Vec<String> = accepted(&shared, "broken")
            .iter()
            .map(|r| r.id.clone())
            .collect();
        let originals: Vec<String> = all.iter().map(|r| r.id.clone()).collect();
        assert_eq!(replayed, originals);

        // A restarted sender (another process) carries on where the first stopped: nothing
        // told twice, nothing skipped.
        drop(deliverer);
        let restarted = Deliverer::new(
            fixture.config.clone(),
            fixture.store.clone(),
            "sender-2".into(),
        )
        .unwrap();
        let cancelled = fixture
            .ask_ok(grant_body(&pairs[2].0, "permission_set", &pairs[2].1))
            .await;
        let (status, _) = fixture
            .send(
                &fixture.requester,
                &format!("/{cancelled}/cancel"),
                Some(json!({})),
                None,
            )
            .await;
        assert_eq!(status, 200);
        deliver_until(&restarted, || {
            accepted(&shared, "all").len() == expected.len() + 2
        })
        .await;
        let all = accepted(&shared, "all");
        let tail: Vec<&str> = all[expected.len()..]
            .iter()
            .map(|r| r.event.as_str())
            .collect();
        assert_eq!(tail, ["request.created", "request.cancelled"]);
        assert_eq!(
            fixture.requests(Some(RequestState::Cancelled)).await.len(),
            1
        );
        fixture.stop().await;
    })
    .await;
}

#[tokio::test]
async fn two_senders_at_once_tell_each_change_once_and_in_order() {
    on_each_backend(|store| async move {
        let (base, shared) = spawn_receiver().await;
        let fixture = Fixture::start(store, |config| {
            config.webhooks = vec![hook("all", format!("{base}/all"), &[])];
            config.orgs[0].auto_approve = vec!["grant".into()];
        })
        .await;
        let senders: Vec<Deliverer> = (0..2)
            .map(|i| {
                Deliverer::new(
                    fixture.config.clone(),
                    fixture.store.clone(),
                    format!("sender-{i}"),
                )
                .unwrap()
            })
            .collect();
        senders[0].run_once().await.unwrap();
        for (user, set) in fixture.grantable_pairs(20).await {
            fixture
                .ask_ok(grant_body(&user, "permission_set", &set))
                .await;
        }
        fixture.executor.run_once().await.unwrap();
        // Per request: created, approved, executing, completed.
        let expected = 80;
        let started = Instant::now();
        while accepted(&shared, "all").len() < expected {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "not delivered in 30 s"
            );
            let (a, b) = tokio::join!(senders[0].run_once(), senders[1].run_once());
            a.unwrap();
            b.unwrap();
        }
        let all = attempts(&shared, "all");
        assert_eq!(all.len(), expected, "nothing was sent twice");
        let ids: Vec<i64> = all.iter().map(|r| r.id.parse().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {ids:?}");
        fixture.stop().await;
    })
    .await;
}
