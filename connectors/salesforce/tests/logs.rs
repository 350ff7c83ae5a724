//! Secrets never reach a log line, `Debug` output or an error: every auth flow and the retry
//! paths with logging at TRACE, captured. In a test binary of its own, because the capture is a
//! scoped subscriber and tracing caches, per log call site, whether anything listens: a test
//! running beside it without a subscriber could make it miss lines.

use std::sync::{Arc, Mutex};

use provost_connector::secret::Secret;
use provost_salesforce::soql::Query;
use provost_salesforce::Credentials;
use serde_json::json;

mod common;

use common::Org;

fn users() -> Query {
    Query::select("User", &["Id", "Username", "Profile.Name"])
}

/// Everything the client logs, at every level, for one test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_token_or_secret_reaches_a_log_line_or_an_error() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let org = Org::small().await;
    let app = &org.emulator.app;
    let refresh = org.integration_refresh_token();
    let client = org.client(Credentials::RefreshToken {
        client_id: app.client_id.clone(),
        client_secret: Some(Secret::new(app.client_secret.clone())),
        refresh_token: Secret::new(refresh.clone()),
    });
    let session = client.connect().await.unwrap();
    org.faults(json!({ "unavailable_rate": 0.5 })).await;
    client.query(&users()).await.unwrap();
    org.admin(reqwest::Method::POST, "/sessions/expire", json!({}))
        .await;
    client.query(&users()).await.unwrap();
    let bad = org.client(Credentials::ClientCredentials {
        client_id: app.client_id.clone(),
        client_secret: Secret::new("s3cr3t-value"),
    });
    let err = bad.connect().await.unwrap_err();

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("authenticated to Salesforce"),
        "the capture works: {logs}"
    );
    let debug = format!("{session:?} {err:?} {err}");
    for secret in [
        session.access_token.expose(),
        refresh.as_str(),
        app.client_secret.as_str(),
        "s3cr3t-value",
    ] {
        assert!(!logs.contains(secret), "a secret in the logs");
        assert!(
            !debug.contains(secret),
            "a secret in Debug or an error: {debug}"
        );
    }
}
