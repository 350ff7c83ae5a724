//! Provisioning against the emulator as Salesforce, through the real HTTP API: every action,
//! every refusal, approval rules, idempotency keys, faults during a batch, expiry, concurrent
//! executors, a killed process, and the audit log catching a tampered row.
//!
//! The kill lands while a collection call is in flight (the emulator drops it); a write that
//! Salesforce made but whose answer was lost is covered by cut connections in the faults test.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use provost::config::{AuthConfig, Config, OrgConfig};
use provost::http::{self, AppState};
use provost::org::secrets::SecretBox;
use provost::org::sync::{request_for, sync_org};
use provost::provisioning::executor::Executor;
use provost::store::sync::{ChangeQuery, SyncMode};
use provost::store::{OrgRecord, Page, Store};
use provost::sync::progress::LogObserver;
use provost_connector::model::{Account, Entitlement, EntitlementKind, GrantSource};
use provost_salesforce_emulator::{server, Emulator, EmulatorConfig, Preset};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::helpers::{bearer_client, TestDatabase};

/// An emulated org, synced into a store, with Provost's API on loopback.
pub(crate) struct Fixture {
    pub(crate) emulator: Arc<Emulator>,
    pub(crate) sf: String,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) config: Arc<Config>,
    pub(crate) org: OrgRecord,
    pub(crate) api: String,
    pub(crate) requester: reqwest::Client,
    pub(crate) approver: reqwest::Client,
    pub(crate) raw: reqwest::Client,
    pub(crate) executor: Executor,
    /// What the executor counts (`/metrics`).
    pub(crate) metrics: Arc<provost::metrics::Metrics>,
    /// The API's wake-up for executors (a test may run one in the background on it).
    pub(crate) work: Arc<tokio::sync::Notify>,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) stop: Option<oneshot::Sender<()>>,
}

fn org_config(emulator: &Emulator, sf: &str, key: std::path::PathBuf) -> OrgConfig {
    OrgConfig {
        name: "acme".to_owned(),
        login_url: sf.to_owned(),
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
            client_id: emulator.app.client_id.clone(),
            username: emulator.integration_username(),
            private_key_file: key,
        },
    }
}

impl Fixture {
    pub(crate) async fn start(store: Arc<dyn Store>, tweak: impl FnOnce(&mut Config)) -> Fixture {
        Fixture::start_with(store, Preset::SMALL, tweak).await
    }

    pub(crate) async fn start_with(
        store: Arc<dyn Store>,
        preset: Preset,
        tweak: impl FnOnce(&mut Config),
    ) -> Fixture {
        let emulator = Emulator::new(EmulatorConfig {
            preset,
            seed: 7,
            ..EmulatorConfig::default()
        });
        let sf = server::spawn(emulator.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, &emulator.app.private_key_pem).unwrap();
        let mut config = Config {
            orgs: vec![org_config(&emulator, &sf, key)],
            ..Config::default()
        };
        config.secrets.key_file = dir.path().join("provost.key");
        config.provisioning.max_attempts = 20;
        tweak(&mut config);
        let org_cfg = config.orgs[0].clone();
        let finished = sync_org(
            &config,
            &org_cfg,
            &store,
            &request_for(&org_cfg, SyncMode::Full, "test"),
            false,
            &LogObserver,
        )
        .await
        .expect("the first sync runs");
        assert_eq!(finished.run.status.as_str(), "succeeded");
        let org = store.ensure_org("acme").await.unwrap();
        let config = Arc::new(config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = format!("http://{}", listener.local_addr().unwrap());
        let work = Arc::new(tokio::sync::Notify::new());
        let state = AppState {
            store: store.clone(),
            config: config.clone(),
            secrets: Arc::new(SecretBox::load(&config.secrets.key_file).unwrap()),
            work: work.clone(),
            metrics: provost::metrics::Metrics::new(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(http::serve(listener, state, async {
            let _ = stopped.await;
        }));
        let requester = bearer_client(&store, "flow", &["requests:write", "reports:read"]).await;
        let approver =
            bearer_client(&store, "manager", &["requests:approve", "reports:read"]).await;
        let metrics = provost::metrics::Metrics::new();
        let executor = Executor::new(config.clone(), store.clone(), "test-worker".into())
            .with_metrics(metrics.clone());
        Fixture {
            emulator,
            sf,
            store,
            config,
            org,
            api,
            requester,
            approver,
            raw: reqwest::Client::new(),
            executor,
            metrics,
            work,
            dir,
            stop: Some(stop),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/api/v1/orgs/acme/access-requests{path}", self.api)
    }

    pub(crate) async fn send(
        &self,
        client: &reqwest::Client,
        path: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> (u16, Value) {
        let mut request = match body {
            Some(body) => client.post(self.url(path)).json(&body),
            None => client.get(self.url(path)),
        };
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn ask(&self, body: Value) -> (u16, Value) {
        self.send(&self.requester, "", Some(body), None).await
    }

    /// Creates a request that must be accepted, and returns its id.
    pub(crate) async fn ask_ok(&self, body: Value) -> i64 {
        let (status, created) = self.ask(body.clone()).await;
        assert_eq!(status, 201, "{body} -> {created}");
        created["id"].as_i64().unwrap()
    }

    pub(crate) async fn approve(&self, id: i64) -> (u16, Value) {
        self.send(
            &self.approver,
            &format!("/{id}/approve"),
            Some(json!({})),
            None,
        )
        .await
    }

    pub(crate) async fn show(&self, id: i64) -> Value {
        let (status, body) = self
            .send(&self.requester, &format!("/{id}"), None, None)
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Asks, approves and executes; returns the request as shown afterwards.
    pub(crate) async fn carry_out(&self, body: Value) -> Value {
        let id = self.ask_ok(body).await;
        let (status, approved) = self.approve(id).await;
        assert_eq!(status, 200, "{approved}");
        self.executor.run_once().await.unwrap();
        self.show(id).await
    }

    /// Removes a record in Salesforce, as an admin there would (the emulator's admin path).
    pub(crate) async fn remove_in_salesforce(&self, object: &str, id: &str) {
        let response = self
            .raw
            .delete(format!("{}/__emulator/records/{object}/{id}", self.sf))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "removing {object} {id}");
    }

    pub(crate) async fn rows(&self, soql: &str) -> Vec<Value> {
        let body: Value = self
            .raw
            .get(format!("{}/__emulator/query", self.sf))
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

    pub(crate) async fn faults(&self, faults: Value) {
        let response = self
            .raw
            .put(format!("{}/__emulator/faults", self.sf))
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }

    /// Write calls (record collections) the emulator has answered.
    pub(crate) async fn write_calls(&self) -> u64 {
        let body: Value = self
            .raw
            .get(format!("{}/__emulator/calls", self.sf))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["by_endpoint"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.ends_with("composite/sobjects"))
            .map(|(_, v)| v.as_u64().unwrap())
            .sum()
    }

    /// Active, standard, unfrozen users other than the connected one.
    pub(crate) async fn users(&self) -> Vec<Account> {
        let integration = self.emulator.integration_username();
        self.store
            .list_accounts(self.org.id, Page::first(10_000))
            .await
            .unwrap()
            .into_iter()
            .filter(|a| {
                a.active
                    && a.user_type.as_deref() == Some("Standard")
                    && a.username != integration
                    && a.attributes.get("IsFrozen") == Some(&Value::Bool(false))
            })
            .collect()
    }

    pub(crate) async fn entitlements(&self, kind: EntitlementKind) -> Vec<Entitlement> {
        self.store
            .list_entitlements(self.org.id, Some(kind), Page::first(10_000))
            .await
            .unwrap()
    }

    /// A profile `user` could move to: another one of the user's license.
    pub(crate) async fn another_profile(&self, user: &Account) -> Option<Entitlement> {
        let license = user.attributes["UserLicenseId"].as_str();
        self.entitlements(EntitlementKind::Profile)
            .await
            .into_iter()
            .find(|p| {
                p.attributes["UserLicenseId"].as_str() == license
                    && Some(p.id.as_str()) != user.attributes["ProfileId"].as_str()
            })
    }

    /// Grantable, license-free permission sets.
    pub(crate) async fn free_sets(&self) -> Vec<Entitlement> {
        self.entitlements(EntitlementKind::PermissionSet)
            .await
            .into_iter()
            .filter(|s| s.grantable && s.attributes.get("LicenseId").is_none_or(Value::is_null))
            .collect()
    }

    /// Up to `n` (username, set API name) pairs the user does not hold directly.
    pub(crate) async fn grantable_pairs(&self, n: usize) -> Vec<(String, String)> {
        let sets = self.free_sets().await;
        let mut pairs = Vec::new();
        for user in self.users().await {
            let held: HashSet<String> = self
                .store
                .grants_of_account(self.org.id, &user.id)
                .await
                .unwrap()
                .into_iter()
                .filter(|g| g.source == GrantSource::Direct)
                .map(|g| g.entitlement_id)
                .collect();
            for set in &sets {
                if !held.contains(&set.id) {
                    pairs.push((user.username.clone(), set.api_name.clone()));
                    if pairs.len() == n {
                        return pairs;
                    }
                }
            }
        }
        pairs
    }

    /// Up to 500 of the org's requests, newest first, optionally in one state.
    pub(crate) async fn requests(
        &self,
        state: Option<provost::provisioning::request::RequestState>,
    ) -> Vec<provost::provisioning::request::AccessRequest> {
        let filter = provost::store::provisioning::RequestFilter {
            state,
            limit: 500,
            ..Default::default()
        };
        self.store
            .list_requests(self.org.id, &filter)
            .await
            .unwrap()
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.store.close().await;
    }
}

pub(crate) fn grant_body(user: &str, kind: &str, name: &str) -> Value {
    json!({
        "action": "grant",
        "user": user,
        "entitlement": {"type": kind, "name": name},
        "justification": "test",
        "ticket": "T-1",
    })
}

/// (AssigneeId, PermissionSetId) pairs of the emulator's direct set assignments, counted.
async fn assignment_counts(fixture: &Fixture) -> HashMap<(String, String), usize> {
    let mut counts = HashMap::new();
    for row in fixture
        .rows("SELECT AssigneeId, PermissionSetId FROM PermissionSetAssignment")
        .await
    {
        *counts
            .entry((
                row["AssigneeId"].as_str().unwrap().to_owned(),
                row["PermissionSetId"].as_str().unwrap().to_owned(),
            ))
            .or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn every_action_reaches_salesforce_and_the_store_at_once_and_a_sync_confirms_it() {
    let db = TestDatabase::sqlite().await;
    let fixture = Fixture::start(db.store().await, |_| {}).await;
    let users = fixture.users().await;
    let (user, other) = (&users[0], &users[1]);

    // Grant a permission set, with the plan shown beforehand.
    let (name, set) = fixture.grantable_pairs(1).await.remove(0);
    let id = fixture
        .ask_ok(grant_body(&name, "permission_set", &set))
        .await;
    let pending = fixture.show(id).await;
    assert_eq!(pending["state"], "pending_approval");
    assert_eq!(pending["plan"]["write"]["method"], "create");
    assert_eq!(
        pending["plan"]["write"]["sobject"],
        "PermissionSetAssignment"
    );
    assert!(
        pending["plan"]["checks"].as_array().unwrap().len() >= 4,
        "{pending}"
    );
    fixture.approve(id).await;
    fixture.executor.run_once().await.unwrap();
    let done = fixture.show(id).await;
    assert_eq!(done["state"], "completed", "{done}");
    let assignment = done["result"]["record_id"].as_str().unwrap().to_owned();
    let rows = fixture
        .rows(&format!(
            "SELECT Id, AssigneeId FROM PermissionSetAssignment WHERE Id = '{assignment}'"
        ))
        .await;
    assert_eq!(rows.len(), 1);
    let account = rows[0]["AssigneeId"].as_str().unwrap().to_owned();
    let stored = fixture
        .store
        .grants_of_account(fixture.org.id, &account)
        .await
        .unwrap();
    assert!(
        stored.iter().any(|g| g.id == assignment),
        "the store has it at once"
    );
    let events: Vec<&str> = done["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "request_created",
            "request_approved",
            "executing",
            "request_completed"
        ]
    );
    let history = fixture
        .store
        .list_changes(
            fixture.org.id,
            &ChangeQuery {
                object_id: Some(assignment.clone()),
                limit: 10,
                ..ChangeQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].request_id, Some(id));

    // A permission set group and a public group.
    let group = fixture
        .entitlements(EntitlementKind::PermissionSetGroup)
        .await[0]
        .clone();
    let public = fixture.entitlements(EntitlementKind::PublicGroup).await[0].clone();
    for entitlement in [&group, &public] {
        let held = fixture
            .store
            .grants_of_account(fixture.org.id, &other.id)
            .await
            .unwrap();
        if held.iter().any(|g| g.entitlement_id == entitlement.id) {
            continue;
        }
        let done = fixture
            .carry_out(json!({"action": "grant", "user": other.id, "entitlement": entitlement.id}))
            .await;
        assert_eq!(done["state"], "completed", "{done}");
    }

    // Revoke the set granted above.
    let done = fixture
        .carry_out(json!({"action": "revoke", "user": name, "entitlement": {"type": "permission_set", "name": set}}))
        .await;
    assert_eq!(done["state"], "completed", "{done}");
    assert!(fixture
        .rows(&format!(
            "SELECT Id FROM PermissionSetAssignment WHERE Id = '{assignment}'"
        ))
        .await
        .is_empty());

    // Role and profile (one with the same license).
    let roles = fixture.entitlements(EntitlementKind::Role).await;
    let current_role = user.attributes["UserRoleId"].as_str().map(str::to_owned);
    let role = roles
        .iter()
        .find(|r| Some(&r.id) != current_role.as_ref())
        .unwrap();
    let done = fixture
        .carry_out(json!({"action": "change_role", "user": user.username, "entitlement": {"type": "role", "name": role.api_name}}))
        .await;
    assert_eq!(done["state"], "completed", "{done}");
    if let Some(profile) = fixture.another_profile(user).await {
        let done = fixture
            .carry_out(
                json!({"action": "change_profile", "user": user.id, "entitlement": profile.id}),
            )
            .await;
        assert_eq!(done["state"], "completed", "{done}");
        let row = &fixture
            .rows(&format!(
                "SELECT ProfileId FROM User WHERE Id = '{}'",
                user.id
            ))
            .await[0];
        assert_eq!(row["ProfileId"], profile.id.as_str());
    }

    // Freeze, unfreeze, deactivate, reactivate.
    for (action, soql, field, want) in [
        (
            "freeze_user",
            "SELECT IsFrozen FROM UserLogin WHERE UserId",
            "IsFrozen",
            true,
        ),
        (
            "unfreeze_user",
            "SELECT IsFrozen FROM UserLogin WHERE UserId",
            "IsFrozen",
            false,
        ),
        (
            "deactivate_user",
            "SELECT IsActive FROM User WHERE Id",
            "IsActive",
            false,
        ),
        (
            "reactivate_user",
            "SELECT IsActive FROM User WHERE Id",
            "IsActive",
            true,
        ),
    ] {
        let done = fixture
            .carry_out(json!({"action": action, "user": other.username}))
            .await;
        assert_eq!(done["state"], "completed", "{action}: {done}");
        let row = &fixture.rows(&format!("{soql} = '{}'", other.id)).await[0];
        assert_eq!(row[field], want, "{action}");
    }
    let stored = fixture
        .store
        .get_account(fixture.org.id, &other.id)
        .await
        .unwrap()
        .unwrap();
    assert!(stored.active);
    assert_eq!(stored.attributes["IsFrozen"], false);

    // Create a user with the org's defaults filling Salesforce's required fields.
    let profile = &user.attributes["ProfileId"];
    let done = fixture
        .carry_out(json!({
            "action": "create_user",
            "entitlement": profile,
            "new_user": {"username": "new.hire@acme.example.com", "email": "new.hire@acme.example.com", "first_name": "New", "last_name": "Hire"},
        }))
        .await;
    assert_eq!(done["state"], "completed", "{done}");
    let created = done["result"]["record_id"].as_str().unwrap().to_owned();
    let row = &fixture
        .rows(&format!(
            "SELECT Alias, TimeZoneSidKey, IsActive FROM User WHERE Id = '{created}'"
        ))
        .await[0];
    assert_eq!(row["Alias"], "nhire");
    assert_eq!(row["TimeZoneSidKey"], "America/Los_Angeles");
    assert!(fixture
        .store
        .get_account(fixture.org.id, &created)
        .await
        .unwrap()
        .is_some());

    // The next sync confirms what the executor stored: it finds nothing to add or remove for
    // the grants and accounts Provost wrote, and the history says which request made them.
    let before = fixture
        .store
        .grants_of_account(fixture.org.id, &other.id)
        .await
        .unwrap();
    let org_cfg = fixture.config.orgs[0].clone();
    sync_org(
        &fixture.config,
        &org_cfg,
        &fixture.store,
        &request_for(&org_cfg, SyncMode::Full, "test"),
        true,
        &LogObserver,
    )
    .await
    .unwrap();
    let after = fixture
        .store
        .grants_of_account(fixture.org.id, &other.id)
        .await
        .unwrap();
    let ids = |grants: &[provost_connector::model::Grant]| -> BTreeMap<String, String> {
        grants
            .iter()
            .filter(|g| g.source == GrantSource::Direct)
            .map(|g| (g.id.clone(), g.entitlement_id.clone()))
            .collect()
    };
    assert_eq!(
        ids(&before),
        ids(&after),
        "the sync agrees with the executor"
    );
    assert!(fixture
        .store
        .get_account(fixture.org.id, &created)
        .await
        .unwrap()
        .is_some());
    let verification = provost::audit::log::verify(&fixture.store).await.unwrap();
    assert_eq!(verification.problem, None);
    fixture.stop().await;
}

#[tokio::test]
async fn what_cannot_work_is_refused_with_its_reason_before_salesforce_is_called() {
    let db = TestDatabase::sqlite().await;
    let fixture = Fixture::start(db.store().await, |_| {}).await;
    let users = fixture.users().await;
    let user = &users[0];
    let held = fixture
        .store
        .grants_of_account(fixture.org.id, &user.id)
        .await
        .unwrap();
    let direct_set = held
        .iter()
        .find(|g| g.source == GrantSource::Direct && g.id.starts_with("0Pa"))
        .map(|g| g.entitlement_id.clone());
    let sets = fixture.entitlements(EntitlementKind::PermissionSet).await;
    let profile_owned = sets
        .iter()
        .find(|s| s.attributes["set_kind"] == "profile_owned")
        .unwrap();
    let licensed = sets.iter().find(|s| {
        s.grantable
            && s.attributes["LicenseId"].as_str().is_some()
            && s.attributes["LicenseId"] != user.attributes["UserLicenseId"]
    });
    let inactive = fixture
        .store
        .list_accounts(fixture.org.id, Page::first(10_000))
        .await
        .unwrap()
        .into_iter()
        .find(|a| !a.active)
        .unwrap();
    let role = fixture.entitlements(EntitlementKind::Role).await[0].clone();
    let profile = fixture.entitlements(EntitlementKind::Profile).await[0].clone();
    let free = fixture.free_sets().await[0].clone();
    let calls_before = fixture.write_calls().await;

    let mut cases = vec![
        (
            json!({"action": "grant", "user": "nobody@nowhere.example", "entitlement": free.id}),
            "unknown_user",
        ),
        (
            json!({"action": "grant", "user": user.id, "entitlement": "0PS000000000000AAA"}),
            "unknown_entitlement",
        ),
        (
            json!({"action": "grant", "user": user.id, "entitlement": profile_owned.id}),
            "not_grantable",
        ),
        (
            json!({"action": "grant", "user": user.id, "entitlement": role.id}),
            "wrong_action_for_kind",
        ),
        (
            json!({"action": "grant", "user": user.id, "entitlement": profile.id}),
            "wrong_action_for_kind",
        ),
        (
            json!({"action": "grant", "user": inactive.id, "entitlement": free.id}),
            "user_inactive",
        ),
        (json!({"action": "grant", "user": user.id}), "missing_field"),
        (
            json!({"action": "freeze_user", "user": user.id, "entitlement": free.id}),
            "unexpected_field",
        ),
        (
            json!({"action": "grant", "user": user.id, "entitlement": free.id, "expires_at": "2001-01-01T00:00:00Z"}),
            "bad_expiry",
        ),
        (
            json!({"action": "revoke", "user": user.id, "entitlement": free.id, "expires_at": "2099-01-01T00:00:00Z"}),
            "bad_expiry",
        ),
        (
            json!({"action": "unfreeze_user", "user": user.id}),
            "not_frozen",
        ),
        (
            json!({"action": "reactivate_user", "user": user.id}),
            "already_active",
        ),
        (
            json!({"action": "deactivate_user", "user": inactive.id}),
            "already_inactive",
        ),
        (
            json!({"action": "change_profile", "user": user.id, "entitlement": user.attributes["ProfileId"]}),
            "same_profile",
        ),
        (
            json!({"action": "create_user", "entitlement": profile.id, "new_user": {"username": user.username, "email": "x@y.example", "last_name": "X"}}),
            "username_taken",
        ),
        (
            json!({"action": "create_user", "entitlement": profile.id, "new_user": {"username": "not-an-email", "email": "x@y.example", "last_name": "X"}}),
            "missing_field",
        ),
    ];
    if let Some(set) = &direct_set {
        cases.push((
            json!({"action": "grant", "user": user.id, "entitlement": set}),
            "already_granted",
        ));
    }
    let not_held = sets
        .iter()
        .find(|s| s.grantable && !held.iter().any(|g| g.entitlement_id == s.id))
        .unwrap();
    cases.push((
        json!({"action": "revoke", "user": user.id, "entitlement": not_held.id}),
        "not_granted",
    ));
    if let Some(set) = licensed {
        cases.push((
            json!({"action": "grant", "user": user.id, "entitlement": set.id}),
            "license_mismatch",
        ));
    }
    if let Some(through_group) = held
        .iter()
        .find(|g| matches!(g.source, GrantSource::Group { .. }))
    {
        if !held.iter().any(|g| {
            g.entitlement_id == through_group.entitlement_id && g.source == GrantSource::Direct
        }) {
            cases.push((json!({"action": "revoke", "user": user.id, "entitlement": through_group.entitlement_id}), "granted_through_group"));
        }
    }
    for (body, code) in &cases {
        let (status, answer) = fixture.ask(body.clone()).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert_eq!(answer["error"]["code"], *code, "{body} -> {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().len() > 20);
    }
    // A body that is not a request at all, and a misspelt field.
    let (status, answer) = fixture.ask(json!({"action": "grant", "usr": "x"})).await;
    assert_eq!(status, 400);
    assert!(answer["error"]["message"].as_str().unwrap().contains("usr"));
    assert_eq!(
        fixture.write_calls().await,
        calls_before,
        "nothing was written"
    );

    // Without a preflight on record, or with one that says the connected user may not.
    let fresh = fixture
        .store
        .list_requests(fixture.org.id, &Default::default())
        .await
        .unwrap();
    assert!(fresh.is_empty(), "refused requests are not stored");
    let mut report = fixture
        .store
        .last_preflight(fixture.org.id)
        .await
        .unwrap()
        .unwrap()
        .0;
    for check in report["checks"].as_array_mut().unwrap() {
        if check["id"] == "manage_users" {
            check["status"] = json!("warn");
            check["detail"] = json!("missing: Manage Users");
        }
    }
    fixture
        .store
        .save_preflight(fixture.org.id, &report)
        .await
        .unwrap();
    let (status, answer) = fixture
        .ask(json!({"action": "freeze_user", "user": user.id}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["code"], "preflight_denies", "{answer}");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Manage Users"));
    fixture.stop().await;
}

#[tokio::test]
async fn approval_rules_scopes_auto_approval_and_idempotency_keys() {
    let db = TestDatabase::sqlite().await;
    let fixture = Fixture::start(db.store().await, |config| {
        config.orgs[0].auto_approve = vec!["freeze_user".into()];
    })
    .await;
    let pairs = fixture.grantable_pairs(4).await;
    let body = grant_body(&pairs[0].0, "permission_set", &pairs[0].1);

    // Scopes: no token, a token without the scope.
    let (status, _) = fixture
        .send(&fixture.raw, "", Some(body.clone()), None)
        .await;
    assert_eq!(status, 401);
    let (status, answer) = fixture
        .send(&fixture.approver, "", Some(body.clone()), None)
        .await;
    assert_eq!(status, 403);
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("requests:write"));

    // The requester cannot approve; a token that made it cannot either.
    let id = fixture.ask_ok(body.clone()).await;
    let both = bearer_client(
        &fixture.store,
        "self-approver",
        &["requests:write", "requests:approve"],
    )
    .await;
    let (status, mine) = fixture
        .send(
            &both,
            "",
            Some(grant_body(&pairs[1].0, "permission_set", &pairs[1].1)),
            None,
        )
        .await;
    assert_eq!(status, 201);
    let (status, answer) = fixture
        .send(
            &both,
            &format!("/{}/approve", mine["id"]),
            Some(json!({})),
            None,
        )
        .await;
    assert_eq!(status, 403, "{answer}");
    let on_behalf = bearer_client(&fixture.store, "flow-2", &["requests:write"]).await;
    let (_, theirs) = fixture
        .send(&on_behalf, "", Some(json!({"action": "grant", "user": pairs[2].0, "entitlement": {"type": "permission_set", "name": pairs[2].1}, "requester": "manager"})), None)
        .await;
    let (status, _) = fixture.approve(theirs["id"].as_i64().unwrap()).await;
    assert_eq!(status, 403, "the named requester cannot approve either");

    // Asking twice for the same thing while the first is open.
    let (status, answer) = fixture.ask(body.clone()).await;
    assert_eq!(status, 409);
    assert_eq!(answer["error"]["code"], "duplicate_request");

    // Approve, then approving again or rejecting is a conflict; cancel after approval works.
    let (status, approved) = fixture.approve(id).await;
    assert_eq!(status, 200);
    assert_eq!(approved["approver"], "manager");
    let (status, answer) = fixture.approve(id).await;
    assert_eq!(status, 409);
    assert_eq!(answer["error"]["code"], "wrong_state");
    let (status, cancelled) = fixture
        .send(
            &fixture.requester,
            &format!("/{id}/cancel"),
            Some(json!({"comment": "not needed"})),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(cancelled["state"], "cancelled");
    fixture.executor.run_once().await.unwrap();
    assert_eq!(
        fixture.show(id).await["state"],
        "cancelled",
        "a cancelled request is never executed"
    );
    let (status, rejected) = fixture
        .send(
            &fixture.approver,
            &format!("/{}/reject", theirs["id"]),
            Some(json!({"comment": "no"})),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(rejected["state"], "rejected");

    // Auto-approval for the actions the org lists.
    let user = &fixture.users().await[3];
    let (status, frozen) = fixture
        .ask(json!({"action": "freeze_user", "user": user.id}))
        .await;
    assert_eq!(status, 201);
    assert_eq!(frozen["state"], "approved");
    assert_eq!(frozen["approver"], "auto-approve");

    // Idempotency: the same key and body give the first request, even once it is carried
    // out; the same key with another body is refused.
    let keyed = grant_body(&pairs[3].0, "permission_set", &pairs[3].1);
    let (status, first) = fixture
        .send(&fixture.requester, "", Some(keyed.clone()), Some("k-1"))
        .await;
    assert_eq!(status, 201);
    let (status, again) = fixture
        .send(&fixture.requester, "", Some(keyed.clone()), Some("k-1"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["id"], first["id"]);
    fixture.approve(first["id"].as_i64().unwrap()).await;
    fixture.executor.run_once().await.unwrap();
    let (status, after) = fixture
        .send(&fixture.requester, "", Some(keyed.clone()), Some("k-1"))
        .await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["id"], first["id"]);
    assert_eq!(after["state"], "completed");
    let (status, answer) = fixture
        .send(&fixture.requester, "", Some(body.clone()), Some("k-1"))
        .await;
    assert_eq!(status, 409);
    assert_eq!(answer["error"]["code"], "idempotency_key_reused");

    // Listing and filtering.
    let (status, listed) = fixture
        .send(&fixture.requester, "?state=completed", None, None)
        .await;
    assert_eq!(status, 200);
    let states: HashSet<&str> = listed["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, HashSet::from(["completed"]));
    let (status, _) = fixture
        .send(&fixture.requester, "?state=done", None, None)
        .await;
    assert_eq!(status, 400);
    fixture.stop().await;
}

#[tokio::test]
async fn lock_errors_and_503s_during_a_batch_are_retried_until_each_grant_is_made_once() {
    let db = TestDatabase::sqlite().await;
    let fixture = Fixture::start(db.store().await, |config| {
        config.orgs[0].auto_approve = vec!["grant".into()];
    })
    .await;
    let pairs = fixture.grantable_pairs(60).await;
    assert_eq!(pairs.len(), 60);
    let mut ids = Vec::new();
    for (user, set) in &pairs {
        ids.push(
            fixture
                .ask_ok(grant_body(user, "permission_set", set))
                .await,
        );
    }
    fixture
        .faults(json!({"lock_row_rate": 0.3, "unavailable_rate": 0.3}))
        .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        fixture.executor.run_once().await.unwrap();
        let open = fixture
            .requests(Some(provost::provisioning::request::RequestState::Approved))
            .await;
        if open.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} requests still waiting",
            open.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    fixture.faults(json!({})).await;
    let mut retried = 0;
    for id in &ids {
        let shown = fixture.show(*id).await;
        assert_eq!(shown["state"], "completed", "{shown}");
        if shown["attempts"].as_i64().unwrap() > 1 {
            retried += 1;
        }
    }
    eprintln!("{retried} of 60 retried");
    assert!(retried > 0, "the faults made some requests try again");

    // Salesforce makes the records but the answer is lost (the connection is cut): the
    // retry finds them and counts them as done, instead of failing or making them twice.
    let more = fixture.grantable_pairs(5).await;
    let mut cut = Vec::new();
    for (user, set) in &more {
        cut.push(
            fixture
                .ask_ok(grant_body(user, "permission_set", set))
                .await,
        );
    }
    fixture.faults(json!({"cut_connection_rate": 1.0})).await;
    fixture.executor.run_once().await.unwrap();
    fixture.faults(json!({})).await;
    for id in &cut {
        let shown = fixture.show(*id).await;
        assert_eq!(shown["state"], "approved", "to be tried again: {shown}");
        assert!(
            shown["error"].as_str().unwrap().contains("tried again"),
            "{shown}"
        );
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    fixture.executor.run_once().await.unwrap();
    for id in &cut {
        let shown = fixture.show(*id).await;
        assert_eq!(shown["state"], "completed", "{shown}");
        assert!(
            shown["result"]["note"]
                .as_str()
                .unwrap()
                .contains("already present"),
            "{shown}"
        );
        assert!(shown["result"]["record_id"]
            .as_str()
            .unwrap()
            .starts_with("0Pa"));
    }
    let counts = assignment_counts(&fixture).await;
    assert!(
        counts.values().all(|n| *n == 1),
        "no assignment exists twice"
    );
    // The metrics count each end of a write, and the refusals by Salesforce's code.
    let text = fixture.metrics.render_process();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0.0, |v| v.parse().unwrap())
    };
    assert_eq!(
        value(r#"provost_salesforce_writes_total{org="acme",outcome="done"}"#)
            + value(r#"provost_salesforce_writes_total{org="acme",outcome="already_done"}"#),
        65.0,
        "{text}"
    );
    assert_eq!(
        value(r#"provost_salesforce_writes_total{org="acme",outcome="already_done"}"#),
        5.0,
        "{text}"
    );
    assert!(
        value(r#"provost_salesforce_write_errors_total{org="acme",code="UNABLE_TO_LOCK_ROW"}"#)
            + value(
                r#"provost_salesforce_write_errors_total{org="acme",code="SERVER_UNAVAILABLE"}"#
            )
            > 0.0,
        "{text}"
    );
    assert!(value(r#"provost_executor_batch_requests_count{org="acme"}"#) >= 2.0);
    assert!(value(r#"provost_executor_batch_requests_sum{org="acme"}"#) >= 65.0);
    fixture.stop().await;
}

#[tokio::test]
async fn a_time_bound_grant_carries_its_end_to_salesforce_and_is_revoked_when_it_passes() {
    let db = TestDatabase::sqlite().await;
    let fixture = Fixture::start(db.store().await, |_| {}).await;
    let (user, set) = fixture.grantable_pairs(1).await.remove(0);
    let mut body = grant_body(&user, "permission_set", &set);
    body["expires_at"] = json!("2099-06-30T17:00:00Z");
    let done = fixture.carry_out(body).await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["expires_at"], "2099-06-30T17:00:00Z");
    let assignment = done["result"]["record_id"].as_str().unwrap().to_owned();
    let row = &fixture
        .rows(&format!(
            "SELECT ExpirationDate FROM PermissionSetAssignment WHERE Id = '{assignment}'"
        ))
        .await[0];
    assert!(row["ExpirationDate"]
        .as_str()
        .unwrap()
        .starts_with("2099-06-30T17:00:00"));

    // Its end comes (the test moves it into the past), and the executor revokes it.
    let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
    sqlx::query("UPDATE access_requests SET expires_at = ? WHERE id = ?")
        .bind("2000-01-01T00:00:00.000000000Z")
        .bind(done["id"].as_i64().unwrap())
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    fixture.executor.run_once().await.unwrap();
    let expired = fixture.show(done["id"].as_i64().unwrap()).await;
    assert_eq!(expired["state"], "expired", "{expired}");
    assert!(fixture
        .rows(&format!(
            "SELECT Id FROM PermissionSetAssignment WHERE Id = '{assignment}'"
        ))
        .await
        .is_empty());
    let events: Vec<&str> = expired["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events.last(), Some(&"request_expired"));
    let account = fixture
        .users()
        .await
        .into_iter()
        .find(|a| a.username == user)
        .unwrap();
    let grants = fixture
        .store
        .grants_of_account(fixture.org.id, &account.id)
        .await
        .unwrap();
    assert!(
        !grants.iter().any(|g| g.id == assignment),
        "the store lost it at once"
    );
    fixture.stop().await;
}

#[tokio::test]
async fn audit_verify_finds_an_edited_a_removed_and_a_reordered_entry() {
    let db = TestDatabase::sqlite().await;
    let fixture = Fixture::start(db.store().await, |config| {
        config.orgs[0].auto_approve = vec!["grant".into()];
    })
    .await;
    for (user, set) in fixture.grantable_pairs(3).await {
        fixture
            .ask_ok(grant_body(&user, "permission_set", &set))
            .await;
    }
    fixture.executor.run_once().await.unwrap();
    let intact = provost::audit::log::verify(&fixture.store).await.unwrap();
    assert_eq!(intact.problem, None);
    assert!(intact.entries >= 12);
    let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
    let tamper = |sql: &'static str| {
        let pool = pool.clone();
        async move { sqlx::query(sql).execute(&pool).await.unwrap() }
    };
    let problem = |fixture: &Fixture| {
        let store = fixture.store.clone();
        async move {
            provost::audit::log::verify(&store)
                .await
                .unwrap()
                .problem
                .unwrap_or_default()
        }
    };

    tamper("UPDATE audit_log SET actor = 'mallory' WHERE seq = 4").await;
    assert!(
        problem(&fixture).await.contains("entry 4"),
        "{}",
        problem(&fixture).await
    );

    let db2 = TestDatabase::sqlite().await;
    let fixture2 = Fixture::start(db2.store().await, |config| {
        config.orgs[0].auto_approve = vec!["grant".into()];
    })
    .await;
    for (user, set) in fixture2.grantable_pairs(2).await {
        fixture2
            .ask_ok(grant_body(&user, "permission_set", &set))
            .await;
    }
    let pool2 = sqlx::SqlitePool::connect(&db2.url).await.unwrap();
    sqlx::query("DELETE FROM audit_log WHERE seq = 2")
        .execute(&pool2)
        .await
        .unwrap();
    let removed = problem(&fixture2).await;
    assert!(removed.contains("entry 2 is missing"), "{removed}");
    // Swapping two entries' positions (renumbering) breaks the links too.
    sqlx::query("UPDATE audit_log SET seq = 2 WHERE seq = 3")
        .execute(&pool2)
        .await
        .unwrap();
    assert!(!problem(&fixture2).await.is_empty());
    // Cutting the tail off is caught against the head.
    sqlx::query("DELETE FROM audit_log WHERE seq >= 2")
        .execute(&pool2)
        .await
        .unwrap();
    let cut = problem(&fixture2).await;
    assert!(cut.contains("head says"), "{cut}");
    pool.close().await;
    pool2.close().await;
    fixture.stop().await;
    fixture2.stop().await;
}

#[tokio::test]
async fn concurrent_executors_carry_out_each_request_once_on_every_backend() {
    for db in TestDatabase::all().await {
        let store = db.store().await;
        eprintln!("backend: {}", store.backend().name());
        let fixture = Fixture::start(store, |config| {
            config.orgs[0].auto_approve = vec!["grant".into()];
            // Small claims, so the workers take turns at the queue.
            config.provisioning.claim_limit = 40;
        })
        .await;
        let pairs = fixture.grantable_pairs(300).await;
        assert_eq!(pairs.len(), 300);
        for (user, set) in &pairs {
            fixture
                .ask_ok(grant_body(user, "permission_set", set))
                .await;
        }
        let workers: Vec<Executor> = (0..3)
            .map(|n| {
                Executor::new(
                    fixture.config.clone(),
                    fixture.store.clone(),
                    format!("worker-{n}"),
                )
            })
            .collect();
        let (a, b, c) = tokio::join!(
            workers[0].run_once(),
            workers[1].run_once(),
            workers[2].run_once()
        );
        for result in [a, b, c] {
            result.unwrap();
        }
        let requests = fixture.requests(None).await;
        assert_eq!(requests.len(), 300);
        let mut executed_by = HashMap::new();
        for request in &requests {
            assert_eq!(request.state.as_str(), "completed", "{request:?}");
            assert_eq!(request.attempts, 1, "claimed once: {request:?}");
            let timeline = fixture.store.request_audit(request.id).await.unwrap();
            let completions: Vec<_> = timeline
                .iter()
                .filter(|e| e.event == "request_completed")
                .collect();
            assert_eq!(completions.len(), 1);
            *executed_by.entry(completions[0].actor.clone()).or_insert(0) += 1;
            assert!(
                request.result.as_ref().unwrap()["note"].is_null(),
                "not reconciled: written once"
            );
        }
        // How the work was shared depends on scheduling (on a loaded machine one worker has
        // been seen to take every claim); what must hold is above: each request once.
        eprintln!("requests per worker: {executed_by:?}");
        assert!(executed_by.keys().all(|actor| actor.contains("worker-")));
        let counts = assignment_counts(&fixture).await;
        assert!(counts.values().all(|n| *n == 1));
        fixture.stop().await;
        db.drop_database().await;
    }
}

#[tokio::test]
async fn a_killed_server_mid_batch_loses_nothing_and_makes_nothing_twice_after_a_restart() {
    killed_mid_batch(TestDatabase::sqlite().await, 1).await;
}

/// Two `serve` replicas on one PostgreSQL: the one writing is killed with SIGKILL mid-batch,
/// and the other carries out the rest (the dead one's claims once their lease lapses).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgres_one_killed_mid_batch_lose_and_duplicate_nothing() {
    let Some(db) = TestDatabase::postgres().await else {
        eprintln!("skipped: PROVOST_TEST_POSTGRES_URL is not set");
        return;
    };
    killed_mid_batch(db, 2).await;
}

/// 300 grants carried out by `replicas` `provost serve` processes, the one that sent the first
/// write killed with SIGKILL while its collection call is in flight (with 503s and lock
/// errors on); with one replica, a new one is started after the kill. Every request ends once,
/// every grant is made once, and the audit chain verifies.
async fn killed_mid_batch(db: TestDatabase, replicas: usize) {
    let fixture = Fixture::start(db.store().await, |config| {
        config.orgs[0].auto_approve = vec!["grant".into()];
    })
    .await;
    let pairs = fixture.grantable_pairs(300).await;
    assert_eq!(pairs.len(), 300);
    let before: usize = assignment_counts(&fixture).await.values().sum();
    let org_cfg = &fixture.config.orgs[0];
    let AuthConfig::JwtBearer {
        private_key_file, ..
    } = &org_cfg.auth
    else {
        unreachable!()
    };
    // Replicas claim 50 at a time, so each has work of its own when one is killed.
    let claim_limit = if replicas > 1 { 50 } else { 1000 };
    std::fs::write(
        fixture.dir.path().join("provost.toml"),
        format!(
            "[database]\nurl = \"{}\"\n[secrets]\nkey_file = \"{}\"\n[provisioning]\nclaim_lease_seconds = 3\npoll_interval_ms = 100\nclaim_limit = {claim_limit}\nmax_attempts = 20\n\
             [[orgs]]\nname = \"acme\"\nlogin_url = \"{}\"\nauto_approve = [\"grant\"]\n[orgs.auth]\nmethod = \"jwt_bearer\"\nclient_id = \"{}\"\nusername = \"{}\"\nprivate_key_file = \"{}\"\n",
            db.url,
            fixture.config.secrets.key_file.display(),
            fixture.sf,
            fixture.emulator.app.client_id,
            fixture.emulator.integration_username(),
            private_key_file.display()
        ),
    )
    .unwrap();
    // Slow writes, so the kill lands while a collection is in flight; and with replicas, some
    // refused for a while (503, a locked row) and some made with the answer lost on the way
    // (a cut connection), each retried.
    let faults = if replicas > 1 {
        json!({"latency_ms": 1500, "lock_row_rate": 0.1, "unavailable_rate": 0.1, "cut_connection_rate": 0.1})
    } else {
        json!({"latency_ms": 1500})
    };
    fixture.faults(faults).await;
    let serve = |n: usize| {
        std::process::Command::new(env!("CARGO_BIN_EXE_provost"))
            .current_dir(fixture.dir.path())
            .args(["--config", "provost.toml", "--log-format", "json", "serve"])
            .env("PROVOST_SERVER__LISTEN", "127.0.0.1:0")
            .stdout(std::process::Stdio::null())
            .stderr(
                std::fs::File::create(fixture.dir.path().join(format!("serve-{n}.log"))).unwrap(),
            )
            .spawn()
            .unwrap()
    };
    let logs = || {
        (0..=replicas)
            .map(|n| {
                std::fs::read_to_string(fixture.dir.path().join(format!("serve-{n}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    // Requests go in through this test's own API on the same database; the servers' executors
    // pick them up.
    let mut running: Vec<Killed> = (0..replicas).map(|n| Killed(serve(n))).collect();
    for (user, set) in &pairs {
        fixture
            .ask_ok(grant_body(user, "permission_set", set))
            .await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let first_writer = loop {
        let entries = fixture.store.audit_entries(0, 100_000).await.unwrap();
        if let Some(sent) = entries.iter().find(|e| e.event == "salesforce_write_sent") {
            break sent.actor.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no server started writing: {}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    // The process that made the first write: its actor is `executor:HOST:PID:...`.
    let victim = running
        .iter()
        .position(|child| first_writer.contains(&format!(":{}:", child.0.id())))
        .expect("the first write came from one of the servers");
    let mut killed = running.remove(victim);
    killed.0.kill().unwrap();
    killed.0.wait().unwrap();
    let killed_at = fixture.requests(None).await;
    let unfinished = killed_at
        .iter()
        .filter(|r| r.state.as_str() != "completed")
        .count();
    assert!(unfinished > 0, "the kill came before the end");
    if running.is_empty() {
        running.push(Killed(serve(replicas)));
    }

    let deadline = Instant::now() + Duration::from_secs(180);
    let requests = loop {
        let requests = fixture.requests(None).await;
        if requests.iter().all(|r| r.state.as_str() == "completed") {
            break requests;
        }
        assert!(
            Instant::now() < deadline,
            "not every request ended after the kill: {:?}\n{}",
            requests
                .iter()
                .filter(|r| r.state.as_str() != "completed")
                .map(|r| (r.id, r.state.as_str(), r.error.clone()))
                .take(5)
                .collect::<Vec<_>>(),
            logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    drop(running);
    fixture.faults(json!({})).await;
    assert_eq!(requests.len(), 300);
    for request in &requests {
        let timeline = fixture.store.request_audit(request.id).await.unwrap();
        let completions = timeline
            .iter()
            .filter(|e| e.event == "request_completed")
            .count();
        assert_eq!(completions, 1, "request {} ended once", request.id);
    }
    let counts = assignment_counts(&fixture).await;
    assert_eq!(
        counts.values().sum::<usize>(),
        before + 300,
        "every grant was made, once"
    );
    assert!(
        counts.values().all(|n| *n == 1),
        "no assignment was made twice"
    );
    let entries = fixture.store.audit_entries(0, 100_000).await.unwrap();
    let mut writers: Vec<&str> = entries
        .iter()
        .filter(|e| e.event == "salesforce_write_sent")
        .map(|e| e.actor.as_str())
        .collect();
    writers.sort_unstable();
    writers.dedup();
    let reconciled = requests
        .iter()
        .filter(|r| !r.result.as_ref().unwrap()["note"].is_null())
        .count();
    eprintln!(
        "{replicas} replica(s): {unfinished} unfinished at the kill; {reconciled} found already made afterwards; {} processes wrote",
        writers.len()
    );
    assert!(writers.len() >= 2, "the work went on in another process");
    assert_eq!(
        provost::audit::log::verify(&fixture.store)
            .await
            .unwrap()
            .problem,
        None
    );
    fixture.stop().await;
    db.drop_database().await;
}

/// A child process killed when dropped, so a failing test leaves none behind.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn racing_posts_of_the_same_change_store_one_request_on_every_backend() {
    crate::helpers::on_each_backend(|store| async move {
        let fixture = Fixture::start(store, |_| {}).await;
        let pairs = fixture.grantable_pairs(1).await;
        let body = grant_body(&pairs[0].0, "permission_set", &pairs[0].1);
        // Eight POSTs of one grant at once, on eight connections: the database lets one in.
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (client, url, body) =
                    (fixture.requester.clone(), fixture.url(""), body.clone());
                tokio::spawn(async move {
                    let response = client.post(url).json(&body).send().await.unwrap();
                    let status = response.status().as_u16();
                    (status, response.json::<Value>().await.unwrap())
                })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        let created: Vec<&Value> = answers
            .iter()
            .filter(|(s, _)| *s == 201)
            .map(|(_, b)| b)
            .collect();
        assert_eq!(created.len(), 1, "{answers:?}");
        let id = created[0]["id"].as_i64().unwrap();
        for (status, answer) in answers.iter().filter(|(s, _)| *s != 201) {
            assert_eq!(*status, 409, "{answer}");
            assert_eq!(answer["error"]["code"], "duplicate_request");
            assert!(answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("request {id} ")));
        }
        assert_eq!(fixture.requests(None).await.len(), 1);
        // Once it has ended, the same change can be asked for again.
        let (status, _) = fixture
            .send(
                &fixture.requester,
                &format!("/{id}/cancel"),
                Some(json!({})),
                None,
            )
            .await;
        assert_eq!(status, 200);
        fixture.ask_ok(body).await;
        fixture.stop().await;
    })
    .await;
}

/// `ExpirationDate` exists from API version 52.0: an org spoken to at an older version cannot
/// take a time-bound grant, and the request is refused before Salesforce is called, saying
/// what to change; the same grant without an expiry is accepted.
#[tokio::test]
async fn a_time_bound_grant_is_refused_below_api_version_52() {
    let db = TestDatabase::sqlite().await;
    let fixture = Fixture::start(db.store().await, |config| {
        config.orgs[0].api_version = "51.0".to_owned();
    })
    .await;
    let pairs = fixture.grantable_pairs(1).await;
    let mut body = grant_body(&pairs[0].0, "permission_set", &pairs[0].1);
    body["expires_at"] = json!("2099-06-30T17:00:00Z");
    let (status, answer) = fixture.ask(body.clone()).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "bad_expiry", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("52.0") && message.contains("51.0"),
        "{message}"
    );
    body.as_object_mut().unwrap().remove("expires_at");
    let (status, answer) = fixture.ask(body).await;
    assert_eq!(status, 201, "{answer}");
}

#[tokio::test]
async fn a_grant_provost_made_and_salesforce_removed_before_the_next_sync_is_found_removed() {
    crate::helpers::on_each_backend(|store| async move {
        // Assignments of this org take several pages: an incremental sync takes their
        // fingerprint instead of reading them again when it has not changed.
        let preset = Preset {
            users: 100,
            ..Preset::SMALL
        };
        let fixture =
            Fixture::start_with(store, preset, |config| config.orgs[0].batch_size = 200).await;
        let marks = |store: Arc<dyn Store>, org| async move {
            let marks: BTreeMap<String, String> = store
                .sync_watermarks(org)
                .await
                .unwrap()
                .into_iter()
                .collect();
            marks
        };
        let assignments = "permission_set_assignments";
        let before = marks(fixture.store.clone(), fixture.org.id).await;
        assert!(before[assignments].starts_with("rows:"), "{before:?}");

        let pairs = fixture.grantable_pairs(1).await;
        let shown = fixture
            .carry_out(grant_body(&pairs[0].0, "permission_set", &pairs[0].1))
            .await;
        assert_eq!(shown["state"], "completed", "{shown}");
        let assignment = shown["result"]["record_id"].as_str().unwrap().to_owned();
        // The store now holds a row the fingerprint does not describe: it is dropped, and
        // other resources' watermarks stay.
        let after = marks(fixture.store.clone(), fixture.org.id).await;
        assert!(!after.contains_key(assignments), "{after:?}");
        assert_eq!(after["users"], before["users"]);

        let account = fixture
            .rows(&format!(
                "SELECT AssigneeId FROM PermissionSetAssignment WHERE Id = '{assignment}'"
            ))
            .await[0]["AssigneeId"]
            .as_str()
            .unwrap()
            .to_owned();
        let held = || async {
            fixture
                .store
                .grants_of_account(fixture.org.id, &account)
                .await
                .unwrap()
                .iter()
                .any(|g| g.id == assignment)
        };
        assert!(held().await);

        // Removed in Salesforce before any sync saw it: the fingerprint would be the last
        // sync's again, yet the next sync finds the grant gone.
        fixture
            .remove_in_salesforce("PermissionSetAssignment", &assignment)
            .await;
        crate::reports::resync(&fixture).await;
        assert!(!held().await);
        // A sync that starts within a minute of a grant (clocks of replicas differ) keeps
        // no fingerprint of its resource either.
        let again = marks(fixture.store.clone(), fixture.org.id).await;
        assert!(!again.contains_key(assignments), "{again:?}");
        fixture.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_grant_provost_makes_while_a_sync_runs_leaves_that_sync_no_fingerprint_of_its_resource() {
    crate::helpers::on_each_backend(|store| async move {
        let preset = Preset {
            users: 100,
            ..Preset::SMALL
        };
        let fixture =
            Fixture::start_with(store, preset, |config| config.orgs[0].batch_size = 200).await;
        let org_cfg = fixture.config.orgs[0].clone();
        let reader = provost::org::sync::reader_for(&fixture.config, &org_cfg, &fixture.store)
            .await
            .unwrap();
        let marks = fixture.store.sync_watermarks(fixture.org.id).await.unwrap();
        assert!(
            marks
                .iter()
                .any(|(r, m)| r == "permission_set_assignments" && m.starts_with("rows:")),
            "{marks:?}"
        );
        let pairs = fixture.grantable_pairs(1).await;
        let made = std::sync::Mutex::new(None::<String>);
        // Granted once the sync has taken the assignments' fingerprint, before it commits.
        let granting = crate::sync::Hooked {
            inner: &reader,
            planned: Box::new(|resource| {
                let (fixture, made, pairs) = (&fixture, &made, &pairs);
                let resource = resource.id;
                Box::pin(async move {
                    if resource != "permission_set_assignments" {
                        return;
                    }
                    let shown = fixture
                        .carry_out(grant_body(&pairs[0].0, "permission_set", &pairs[0].1))
                        .await;
                    assert_eq!(shown["state"], "completed", "{shown}");
                    *made.lock().unwrap() =
                        shown["result"]["record_id"].as_str().map(str::to_owned);
                })
            }),
            after: Box::new(|_| {}),
        };
        let run = provost::sync::run(
            &fixture.store,
            &fixture.org,
            &granting,
            &request_for(&org_cfg, SyncMode::Incremental, "test"),
            &LogObserver,
        )
        .await
        .unwrap();
        assert_eq!(run.run.status.as_str(), "succeeded");
        let marks: BTreeMap<String, String> = fixture
            .store
            .sync_watermarks(fixture.org.id)
            .await
            .unwrap()
            .into_iter()
            .collect();
        assert!(
            !marks.contains_key("permission_set_assignments"),
            "{marks:?}"
        );
        assert!(marks.contains_key("users"), "{marks:?}");

        // Removed in Salesforce: the next sync reads the assignments whole and finds it gone.
        let assignment = made.lock().unwrap().clone().unwrap();
        fixture
            .remove_in_salesforce("PermissionSetAssignment", &assignment)
            .await;
        crate::reports::resync(&fixture).await;
        let grants = fixture
            .store
            .list_changes(
                fixture.org.id,
                &ChangeQuery {
                    object_id: Some(assignment.clone()),
                    limit: 10,
                    ..ChangeQuery::default()
                },
            )
            .await
            .unwrap();
        let ops: Vec<String> = grants.iter().map(|c| c.op.as_str().to_owned()).collect();
        assert_eq!(ops.last().map(String::as_str), Some("removed"), "{ops:?}");
        drop(granting);
        fixture.stop().await;
    })
    .await;
}
