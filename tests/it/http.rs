//! The HTTP API on a real socket: health, readiness, request ids, errors.

use std::sync::Arc;

use provost::config::Config;
use provost::http::{self, AppState};
use provost::store::Store;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::helpers::TestDatabase;

/// A server on an ephemeral loopback port, stopped when dropped.
struct TestServer {
    base: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    async fn start(store: Arc<dyn Store>) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = AppState {
            store,
            config: Arc::new(Config::default()),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(http::serve(listener, state, async {
            let _ = stopped.await;
        }));
        TestServer {
            base,
            stop: Some(stop),
            task: Some(task),
        }
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
