//! The emulator harness the connector's tests share: an org on loopback, credentials for it,
//! the admin path, and ground truth read without going through the connector.

// Each test binary uses the part of the harness it needs.
#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use provost_connector::secret::Secret;
use provost_salesforce::{ClientConfig, Credentials, RetryPolicy, SalesforceClient};
use provost_salesforce_emulator::{server, Emulator, EmulatorConfig};
use serde_json::Value;

pub struct Org {
    pub emulator: Arc<Emulator>,
    pub base: String,
    pub http: reqwest::Client,
}

impl Org {
    pub async fn start(config: EmulatorConfig) -> Org {
        let emulator = Emulator::new(config);
        let base = server::spawn(emulator.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        Org {
            emulator,
            base,
            http: reqwest::Client::new(),
        }
    }

    /// An org of the default (small) size.
    pub async fn small() -> Org {
        Org::start(EmulatorConfig::default()).await
    }

    /// A client of this org with quick retries (6 attempts, 5 to 40 ms apart).
    pub fn client(&self, credentials: Credentials) -> SalesforceClient {
        let mut config = ClientConfig::new(&self.base);
        config.retry = RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(40),
        };
        SalesforceClient::new(config, credentials).unwrap()
    }

    /// Sets the emulator's fault injection.
    pub async fn faults(&self, faults: Value) {
        assert_eq!(
            self.admin(reqwest::Method::PUT, "/faults", faults)
                .await
                .status(),
            200
        );
    }

    /// A new refresh token of the integration user, as a web server flow would have left.
    pub fn integration_refresh_token(&self) -> String {
        let user = self
            .emulator
            .org
            .read()
            .user_by_username(&self.emulator.integration_username())
            .unwrap();
        self.emulator.sessions.issue_refresh(user)
    }

    /// JWT bearer credentials for `username`, signed with the connected app's key.
    pub fn jwt_as(&self, username: &str) -> Credentials {
        Credentials::JwtBearer {
            client_id: self.emulator.app.client_id.clone(),
            username: username.to_owned(),
            private_key_pem: Secret::new(self.emulator.app.private_key_pem.clone()),
        }
    }

    /// JWT bearer credentials for the org's integration user (System Administrator).
    pub fn jwt(&self) -> Credentials {
        self.jwt_as(&self.emulator.integration_username())
    }

    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> reqwest::Response {
        self.http
            .request(method, format!("{}/__emulator{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// An admin call that must succeed; its JSON answer, or null.
    pub async fn admin_ok(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let response = self.admin(method, path, body).await;
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.text().await.unwrap()
        );
        response.json().await.unwrap_or(Value::Null)
    }

    /// Every row of a query, through the admin path: ground truth that spends no API calls.
    pub async fn rows(&self, soql: &str) -> Vec<Value> {
        let body: Value = self
            .http
            .get(format!("{}/__emulator/query", self.base))
            .query(&[("q", soql)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["records"]
            .as_array()
            .unwrap_or_else(|| panic!("{soql}: {body}"))
            .clone()
    }

    pub async fn ids(&self, soql: &str) -> HashSet<String> {
        self.rows(soql)
            .await
            .iter()
            .map(|r| r["Id"].as_str().unwrap().to_owned())
            .collect()
    }
}
