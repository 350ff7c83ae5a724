//! The sync engine against the emulator as Salesforce, on SQLite and PostgreSQL: full and
//! incremental syncs agree after random changes behind Provost's back, a failed run leaves the
//! stored state as it was, a run out of quota pauses and resumes, one sync per org at a time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use provost::store::sync::{ChangeOp, ChangeQuery, Entity, LockOutcome, RunStatus, SyncMode};
use provost::store::{OrgRecord, Store};
use provost::sync::progress::LogObserver;
use provost::sync::{self, SyncError, SyncRequest};
use provost_connector::connector::{
    Connector, ConnectorError, Cursor, Page, Quota, ResourceType, Watermark,
};
use provost_connector::secret::Secret;
use provost_salesforce::reader::{ReadOptions, SalesforceReader};
use provost_salesforce::{ClientConfig, Credentials, SalesforceClient};
use provost_salesforce_emulator::{server, Emulator, EmulatorConfig, Preset};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::helpers::{on_each_backend, TestDatabase};

/// An emulated org on loopback.
struct Org {
    emulator: Arc<Emulator>,
    base: String,
    http: reqwest::Client,
}

impl Org {
    async fn start(seed: u64) -> Org {
        Org::start_with(seed, Preset::SMALL).await
    }

    async fn start_with(seed: u64, preset: Preset) -> Org {
        let emulator = Emulator::new(EmulatorConfig {
            preset,
            seed,
            ..EmulatorConfig::default()
        });
        let base = server::spawn(emulator.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        Org {
            emulator,
            base,
            http: reqwest::Client::new(),
        }
    }

    /// A reader as the integration user; small pages so every resource spans several.
    fn reader(&self, include_inactive_users: bool) -> SalesforceReader {
        self.reader_at(
            include_inactive_users,
            provost_salesforce::client::DEFAULT_API_VERSION,
        )
    }

    /// The same, speaking API version `version` (`"51.0"`).
    fn reader_at(&self, include_inactive_users: bool, version: &str) -> SalesforceReader {
        self.reader_with(
            ReadOptions {
                exclude_portal_users: true,
                include_inactive_users,
                read_access: true,
            },
            version,
        )
    }

    fn reader_with(&self, options: ReadOptions, version: &str) -> SalesforceReader {
        let mut config = ClientConfig::new(&self.base);
        config.batch_size = 200;
        config.api_version = version.to_owned();
        let credentials = Credentials::JwtBearer {
            client_id: self.emulator.app.client_id.clone(),
            username: self.emulator.integration_username(),
            private_key_pem: Secret::new(self.emulator.app.private_key_pem.clone()),
        };
        SalesforceReader::new(SalesforceClient::new(config, credentials).unwrap(), options)
    }

    /// Deletes a record behind Provost's back.
    async fn delete(&self, object: &str, id: &str) {
        self.admin(
            reqwest::Method::DELETE,
            &format!("/records/{object}/{id}"),
            json!({}),
        )
        .await;
    }

    /// Assigns `user` a regular permission set they do not hold yet; false when they hold
    /// every one.
    async fn assign_a_set_not_held(&self, user: &str) -> bool {
        let held: Vec<String> = self
            .rows(&format!(
                "SELECT PermissionSetId FROM PermissionSetAssignment WHERE AssigneeId = '{user}'"
            ))
            .await
            .iter()
            .map(|r| r["PermissionSetId"].as_str().unwrap().to_owned())
            .collect();
        let sets = self
            .rows("SELECT Id FROM PermissionSet WHERE IsOwnedByProfile = false AND LicenseId = null AND Type = 'Regular'")
            .await;
        let Some(set) = sets
            .iter()
            .map(|s| s["Id"].as_str().unwrap())
            .find(|s| !held.iter().any(|h| h == s))
        else {
            return false;
        };
        self.admin(
            reqwest::Method::POST,
            "/records/PermissionSetAssignment",
            json!({"AssigneeId": user, "PermissionSetId": set}),
        )
        .await;
        true
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let response = self
            .http
            .request(method, format!("{}/__emulator{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn rows(&self, soql: &str) -> Vec<Value> {
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
}

fn request(mode: SyncMode) -> SyncRequest {
    SyncRequest {
        mode,
        started_by: "test".to_owned(),
        api_budget_percent: 100,
        concurrency: provost::sync::DEFAULT_CONCURRENCY,
        skip_if_synced_within: None,
    }
}

async fn sync_with(
    store: &Arc<dyn Store>,
    org: &OrgRecord,
    connector: &dyn Connector,
    mode: SyncMode,
) -> provost::store::sync::SyncRun {
    sync::run(store, org, connector, &request(mode), &LogObserver)
        .await
        .expect("the sync runs")
        .run
}

/// Everything stored for the org: entity and id to the row's JSON.
async fn snapshot(store: &Arc<dyn Store>, org: &OrgRecord) -> BTreeMap<(Entity, String), Value> {
    let mut all = BTreeMap::new();
    for entity in Entity::ALL {
        let ids = store.stored_ids(org.id, entity).await.unwrap();
        for (id, row) in store.stored_rows(org.id, entity, &ids).await.unwrap() {
            all.insert((entity, id), row);
        }
    }
    all
}

/// The org's committed change history, of one run or all.
async fn history(
    store: &Arc<dyn Store>,
    org: &OrgRecord,
    run: Option<provost::store::sync::RunId>,
    limit: u32,
) -> Vec<provost::store::sync::ChangeRecord> {
    let query = ChangeQuery {
        run,
        limit,
        ..ChangeQuery::default()
    };
    store.list_changes(org.id, &query).await.unwrap()
}

/// The model a full sync of the org into a new, empty SQLite store produces.
async fn full_sync_into_an_empty_store(
    reader: &dyn Connector,
) -> BTreeMap<(Entity, String), Value> {
    let db = TestDatabase::sqlite().await;
    let store = db.store().await;
    let org = store.ensure_org("acme").await.unwrap();
    // One query at a time: a single sequential read of every resource.
    let request = SyncRequest {
        concurrency: 1,
        ..request(SyncMode::Full)
    };
    let run = sync::run(&store, &org, reader, &request, &LogObserver)
        .await
        .expect("the sync runs")
        .run;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let model = snapshot(&store, &org).await;
    store.close().await;
    model
}

#[tokio::test]
async fn a_full_sync_stores_the_org_and_an_unchanged_resync_writes_no_history() {
    let org = Org::start(11).await;
    on_each_backend(|store| {
        let org = &org;
        async move {
            let record = store.ensure_org("acme").await.unwrap();
            let reader = org.reader(true);
            let run = sync_with(&store, &record, &reader, SyncMode::Full).await;
            assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
            let users = org
                .rows("SELECT Id FROM User WHERE UserType NOT IN ('PowerPartner','PowerCustomerSuccess','CustomerSuccess','CspLitePortal','SelfService','Guest')")
                .await;
            assert_eq!(run.counts.accounts.created, users.len() as u64);
            let stored = snapshot(&store, &record).await;
            let accounts = stored.keys().filter(|(e, _)| *e == Entity::Account).count();
            assert_eq!(accounts, users.len());
            assert!(run.counts.grants.created > run.counts.accounts.created);
            assert_eq!(
                run.counts.changes() as usize,
                stored.len(),
                "every stored row was recorded as created"
            );
            // The history holds the creations, with after-values.
            let created = history(&store, &record, Some(run.id), 10_000).await;
            assert_eq!(created.len(), stored.len());
            assert!(created.iter().all(|c| c.op == ChangeOp::Created && c.after.is_some() && c.before.is_none()));

            for mode in [SyncMode::Full, SyncMode::Incremental] {
                let again = sync_with(&store, &record, &reader, mode).await;
                assert_eq!(again.status, RunStatus::Succeeded);
                assert_eq!(again.counts.changes(), 0, "{mode:?} re-sync of an unchanged org");
                let none = history(&store, &record, Some(again.id), 10).await;
                assert!(none.is_empty());
                assert_eq!(snapshot(&store, &record).await, stored);
            }
        }
    })
    .await;
}

/// Random changes through the admin path, as an admin in Salesforce's setup would make them.
async fn change_randomly(org: &Org, rng: &mut StdRng) -> usize {
    let mut made = 0;
    let users = org
        .rows("SELECT Id, IsActive FROM User WHERE UserType = 'Standard' AND IsActive = true AND Username != 'integration@acme.example.com'")
        .await;
    let mut users: Vec<String> = users
        .iter()
        .map(|u| u["Id"].as_str().unwrap().to_owned())
        .collect();
    users.shuffle(rng);
    let roles = org.rows("SELECT Id FROM UserRole").await;
    // Titles and roles change; some users are deactivated (they leave the synced set).
    for user in users.iter().take(4) {
        let role = roles.choose(rng).unwrap()["Id"].clone();
        org.admin(
            reqwest::Method::PATCH,
            &format!("/records/User/{user}"),
            json!({"Title": format!("Title {}", rng.gen::<u16>()), "UserRoleId": role}),
        )
        .await;
        made += 1;
    }
    for user in users.iter().skip(4).take(2) {
        org.admin(
            reqwest::Method::PATCH,
            &format!("/records/User/{user}"),
            json!({"IsActive": false}),
        )
        .await;
        made += 1;
    }
    // A freeze changes UserLogin only.
    let user = &users[6];
    let login = org
        .rows(&format!("SELECT Id FROM UserLogin WHERE UserId = '{user}'"))
        .await;
    if let Some(login) = login.first() {
        org.admin(
            reqwest::Method::PATCH,
            &format!("/records/UserLogin/{}", login["Id"].as_str().unwrap()),
            json!({"IsFrozen": true}),
        )
        .await;
        made += 1;
    }
    // Assignments removed and added: removals have no deleted endpoint in Salesforce.
    let assignments = org
        .rows("SELECT Id FROM PermissionSetAssignment WHERE PermissionSet.IsOwnedByProfile = false")
        .await;
    for assignment in assignments.choose_multiple(rng, 5) {
        org.delete(
            "PermissionSetAssignment",
            assignment["Id"].as_str().unwrap(),
        )
        .await;
        made += 1;
    }
    let sets = org
        .rows("SELECT Id FROM PermissionSet WHERE IsOwnedByProfile = false AND LicenseId = null AND Type = 'Regular'")
        .await;
    for user in users.iter().skip(8).take(4) {
        if org.assign_a_set_not_held(user).await {
            made += 1;
        }
    }
    // A permission set relabelled; a public group member removed.
    let set = sets.choose(rng).unwrap()["Id"].as_str().unwrap().to_owned();
    org.admin(
        reqwest::Method::PATCH,
        &format!("/records/PermissionSet/{set}"),
        json!({"Label": format!("Relabelled {}", rng.gen::<u16>())}),
    )
    .await;
    made += 1;
    let members = org.rows("SELECT Id FROM GroupMember").await;
    if let Some(member) = members.choose(rng) {
        org.admin(
            reqwest::Method::DELETE,
            &format!("/records/GroupMember/{}", member["Id"].as_str().unwrap()),
            json!({}),
        )
        .await;
        made += 1;
    }
    made
}

#[tokio::test]
async fn after_random_changes_an_incremental_sync_yields_exactly_what_a_full_sync_yields() {
    let org = Org::start(12).await;
    on_each_backend(|store| {
        let org = &org;
        async move {
            let record = store.ensure_org("acme").await.unwrap();
            let reader = org.reader(false);
            let first = sync_with(&store, &record, &reader, SyncMode::Full).await;
            assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.error);
            let mut rng = StdRng::seed_from_u64(7);
            for round in 0..2 {
                let made = change_randomly(org, &mut rng).await;
                let incremental = sync_with(&store, &record, &reader, SyncMode::Incremental).await;
                assert_eq!(
                    incremental.status,
                    RunStatus::Succeeded,
                    "{:?}",
                    incremental.error
                );
                assert!(
                    incremental.counts.changes() >= made as u64 / 2,
                    "round {round}: {made} changes made, {:?} seen",
                    incremental.counts
                );
                assert!(
                    incremental.counts.accounts.removed >= 2,
                    "deactivated users leave: {:?}",
                    incremental.counts
                );
                assert!(
                    incremental.counts.grants.removed >= 5,
                    "deleted assignments are found: {:?}",
                    incremental.counts
                );
                let after_incremental = snapshot(&store, &record).await;

                // A full sync on the same store finds nothing more to change...
                let full = sync_with(&store, &record, &reader, SyncMode::Full).await;
                assert_eq!(
                    full.counts.changes(),
                    0,
                    "round {round}: the incremental sync missed {:?}",
                    full.counts
                );
                // ...and a full sync into an empty store yields the same model.
                assert_eq!(
                    full_sync_into_an_empty_store(&reader).await,
                    after_incremental,
                    "round {round}"
                );

                // Updated rows carry before and after values and the changed fields.
                let seen = history(&store, &record, Some(incremental.id), 10_000).await;
                let updated = seen
                    .iter()
                    .find(|c| c.op == ChangeOp::Updated)
                    .expect("an update");
                assert!(updated.before.is_some() && updated.after.is_some());
                assert!(!updated.fields.as_ref().unwrap().is_empty());
                let frozen = seen.iter().any(|c| {
                    c.fields
                        .as_ref()
                        .is_some_and(|f| f.iter().any(|f| f == "attributes.IsFrozen"))
                });
                if round == 0 {
                    assert!(
                        frozen,
                        "a freeze (UserLogin only) is seen by the incremental sync"
                    );
                }
            }
        }
    })
    .await;
}

/// Delegates to a reader, failing as told on the `fail_at`-th page read.
struct Failing<'a> {
    inner: &'a dyn Connector,
    pages: AtomicUsize,
    fail_at: usize,
    /// Waits forever instead of failing (a process that hangs, then dies).
    stall: bool,
    error: fn() -> ConnectorError,
}

#[async_trait]
impl Connector for Failing<'_> {
    fn resource_types(&self) -> &'static [ResourceType] {
        self.inner.resource_types()
    }

    async fn read_page(
        &self,
        resource: &ResourceType,
        cursor: Option<&Cursor>,
        since: Option<&Watermark>,
    ) -> Result<Page, ConnectorError> {
        if self.pages.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at {
            if self.stall {
                std::future::pending::<()>().await;
            }
            return Err((self.error)());
        }
        self.inner.read_page(resource, cursor, since).await
    }

    fn quota(&self) -> Option<Quota> {
        self.inner.quota()
    }

    fn calls(&self) -> u64 {
        self.inner.calls()
    }
}

#[tokio::test]
async fn a_failed_run_leaves_the_stored_state_and_history_as_they_were() {
    let org = Org::start(13).await;
    on_each_backend(|store| {
        let org = &org;
        async move {
            let record = store.ensure_org("acme").await.unwrap();
            let reader = org.reader(true);
            sync_with(&store, &record, &reader, SyncMode::Full).await;
            let before = snapshot(&store, &record).await;
            let history_before = history(&store, &record, None, 100_000).await.len();
            let mut rng = StdRng::seed_from_u64(3);
            change_randomly(org, &mut rng).await;

            // Fails late, after pages with changes were staged.
            let failing = Failing {
                inner: &reader,
                pages: AtomicUsize::new(0),
                fail_at: 10,
                stall: false,
                error: || ConnectorError::Unavailable {
                    message: "Salesforce is down".into(),
                },
            };
            let failed = sync_with(&store, &record, &failing, SyncMode::Full).await;
            assert_eq!(failed.status, RunStatus::Failed);
            assert!(failed
                .error
                .as_deref()
                .unwrap()
                .contains("Salesforce is down"));
            assert_eq!(
                snapshot(&store, &record).await,
                before,
                "nothing of the failed run is visible"
            );
            let history_after = history(&store, &record, None, 100_000).await.len();
            assert_eq!(history_after, history_before);

            // The next run completes normally and sees the changes.
            let next = sync_with(&store, &record, &reader, SyncMode::Full).await;
            assert_eq!(next.status, RunStatus::Succeeded);
            assert!(next.counts.changes() > 0);
            assert_ne!(next.id, failed.id);
        }
    })
    .await;
}

#[tokio::test]
async fn a_page_the_store_refuses_stops_the_run_at_the_page_before_and_the_next_sync_resumes_it_to_the_model_of_one_read(
) {
    // Enough users that they span several 200-record pages, read as several ranges.
    let preset = Preset {
        users: 1_000,
        ..Preset::SMALL
    };
    let org = Org::start_with(17, preset).await;
    // An internal user in the middle of the users' read, whose profile grant the store will
    // refuse.
    let users = org.rows("SELECT Id, UserType FROM User ORDER BY Id").await;
    assert!(
        users.len() > 400,
        "the users span several pages of 200: {}",
        users.len()
    );
    let middle = users[users.len() / 2..]
        .iter()
        .find(|user| user["UserType"] == "Standard")
        .expect("an internal user");
    let refused = format!("{}:profile", middle["Id"].as_str().unwrap());
    for db in TestDatabase::all().await {
        let store = db.store().await;
        eprintln!("backend: {}", store.backend().name());
        let record = store.ensure_org("acme").await.unwrap();
        let reader = org.reader(true).with_min_stream_pages(1);
        db.execute(
            &format!(
                "CREATE TRIGGER refuse BEFORE INSERT ON changes WHEN NEW.object_id = '{refused}' \
                 BEGIN SELECT RAISE(ABORT, 'the disk is full'); END"
            ),
            &format!(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF NEW.object_id = '{refused}' THEN RAISE EXCEPTION 'the disk is full'; END IF; \
                 RETURN NEW; END $$; \
                 CREATE TRIGGER refuse BEFORE INSERT ON changes FOR EACH ROW \
                 EXECUTE FUNCTION refuse()"
            ),
        )
        .await;

        let failed = sync::run(
            &store,
            &record,
            &reader,
            &request(SyncMode::Full),
            &LogObserver,
        )
        .await
        .expect_err("the store refused a page");
        assert!(
            matches!(failed, SyncError::Store(_)) && failed.to_string().contains("disk is full"),
            "{failed}"
        );
        assert!(
            snapshot(&store, &record).await.is_empty(),
            "nothing is visible before the commit"
        );
        let run = store
            .unfinished_sync_run(record.id)
            .await
            .unwrap()
            .expect("the run is left to resume");
        let users_state = resource_state(&store, run.id, "users").await;
        assert!(!users_state.done, "the users were not read to the end");
        // Exactly the pages the checkpoint counts are staged: none of the refused page, none
        // after it (each user is one account).
        let staged = store.staged_keys(run.id, Entity::Account).await.unwrap();
        assert!(
            users_state.records > 0,
            "pages before the refused one were staged"
        );
        assert_eq!(staged.len() as i64, users_state.records);
        let staged_before = db
            .fetch_i64("SELECT COALESCE(MAX(id), 0) FROM changes")
            .await;

        // The store takes it again: the next sync resumes the run and ends where one
        // uninterrupted read does.
        db.execute(
            "DROP TRIGGER refuse",
            "DROP TRIGGER refuse ON changes; DROP FUNCTION refuse()",
        )
        .await;
        let resumed = sync_with(&store, &record, &reader, SyncMode::Full).await;
        assert_eq!(resumed.id, run.id);
        assert_eq!(resumed.status, RunStatus::Succeeded, "{:?}", resumed.error);
        assert_eq!(resumed.attempts, 2);
        // The pages staged before the failure were kept, not read and staged again.
        let first: std::collections::HashSet<String> =
            staged.into_iter().map(|(id, _)| id).collect();
        let kept: Vec<i64> = history(&store, &record, Some(run.id), 100_000)
            .await
            .into_iter()
            .filter(|change| change.entity == Entity::Account && first.contains(&change.object_id))
            .map(|change| change.id)
            .collect();
        assert_eq!(kept.len(), first.len());
        assert!(kept.iter().all(|id| *id <= staged_before));
        let model = snapshot(&store, &record).await;
        assert!(model.contains_key(&(Entity::Grant, refused.clone())));
        assert_eq!(
            model,
            full_sync_into_an_empty_store(&org.reader(true)).await
        );
        store.close().await;
        db.drop_database().await;
    }
}

#[tokio::test]
async fn a_run_out_of_quota_pauses_with_its_checkpoint_and_resumes_where_it_stopped() {
    let org = Org::start(14).await;
    on_each_backend(|store| {
        let org = &org;
        async move {
            let record = store.ensure_org("acme").await.unwrap();
            // The daily limit runs out a few calls into the run, inside a page that makes more than
            // one call (a limit reached exactly at a page's end is the budget's pause instead).
            let usage = org.admin(reqwest::Method::PUT, "/limits", json!({})).await;
            let used = usage["used"].as_u64().unwrap();
            org.admin(reqwest::Method::PUT, "/limits", json!({"max": used + 11}))
                .await;
            let reader = org.reader(true);
            let paused = sync_with(&store, &record, &reader, SyncMode::Full).await;
            assert_eq!(paused.status, RunStatus::Paused, "{:?}", paused.error);
            assert_eq!(paused.pause_reason.as_deref(), Some("daily_limit"));
            assert!(
                snapshot(&store, &record).await.is_empty(),
                "nothing is visible before the commit"
            );
            let done_before: Vec<String> = store
                .sync_resources(paused.id)
                .await
                .unwrap()
                .into_iter()
                .filter(|r| r.done)
                .map(|r| r.resource)
                .collect();
            assert!(
                !done_before.is_empty(),
                "some resources were read before the limit"
            );

            // Another day: the next sync resumes the same run.
            org.admin(
                reqwest::Method::PUT,
                "/limits",
                json!({"used": 0, "max": 100_000}),
            )
            .await;
            let calls_before = reader.calls();
            let resumed = sync_with(&store, &record, &reader, SyncMode::Full).await;
            assert_eq!(resumed.id, paused.id);
            assert_eq!(resumed.status, RunStatus::Succeeded, "{:?}", resumed.error);
            assert_eq!(resumed.attempts, 2);
            let resumed_calls = reader.calls() - calls_before;

            // Same model as an uninterrupted full sync, which needs more calls than the resume.
            let fresh_reader = org.reader(true);
            assert_eq!(
                full_sync_into_an_empty_store(&fresh_reader).await,
                snapshot(&store, &record).await
            );
            assert!(
                resumed_calls < fresh_reader.calls(),
                "the resume re-read only what was left ({resumed_calls} vs {})",
                fresh_reader.calls()
            );
        }
    })
    .await;
}

#[tokio::test]
async fn the_api_budget_pauses_a_sync_before_it_eats_the_orgs_limit() {
    let org = Org::start(15).await;
    on_each_backend(|store| {
        let org = &org;
        async move {
            let record = store.ensure_org("acme").await.unwrap();
            org.admin(
                reqwest::Method::PUT,
                "/limits",
                json!({"used": 500, "max": 1000}),
            )
            .await;
            let reader = org.reader(true);
            let request = SyncRequest {
                api_budget_percent: 50,
                concurrency: provost::sync::DEFAULT_CONCURRENCY,
                ..request(SyncMode::Full)
            };
            let run = sync::run(&store, &record, &reader, &request, &LogObserver)
                .await
                .unwrap()
                .run;
            assert_eq!(run.status, RunStatus::Paused);
            assert_eq!(run.pause_reason.as_deref(), Some("api_budget"));
            assert!(
                run.error.as_deref().unwrap().contains("50%"),
                "{:?}",
                run.error
            );
            // One query runs until the first answer tells the usage.
            assert!(
                run.api_calls <= 2,
                "stopped after the first answer told the usage: {}",
                run.api_calls
            );
            org.admin(
                reqwest::Method::PUT,
                "/limits",
                json!({"used": 0, "max": 100_000}),
            )
            .await;
        }
    })
    .await;
}

#[tokio::test]
async fn one_sync_per_org_at_a_time_and_a_dead_holders_run_is_resumed() {
    let org = Org::start(16).await;
    on_each_backend(|store| {
        let org = &org;
        async move {
            let record = store.ensure_org("acme").await.unwrap();
            let ttl = chrono::TimeDelta::seconds(60);
            assert_eq!(
                store
                    .acquire_sync_lock(record.id, "other-host:1", ttl)
                    .await
                    .unwrap(),
                LockOutcome::Acquired
            );
            let reader = org.reader(true);
            let busy = sync::run(
                &store,
                &record,
                &reader,
                &request(SyncMode::Full),
                &LogObserver,
            )
            .await;
            match busy {
                Err(SyncError::Busy { holder, .. }) => assert_eq!(holder, "other-host:1"),
                other => panic!("expected Busy, got {other:?}"),
            }
            store
                .release_sync_lock(record.id, "other-host:1")
                .await
                .unwrap();

            // A run whose process dies mid-way (here: its future dropped while it waits on
            // its sixth page)...
            let stalling = Failing {
                inner: &reader,
                pages: AtomicUsize::new(0),
                fail_at: 6,
                stall: true,
                error: || unreachable!(),
            };
            let cut = tokio::time::timeout(std::time::Duration::from_secs(1), async {
                sync_with(&store, &record, &stalling, SyncMode::Full).await
            });
            assert!(cut.await.is_err(), "the run stalls");
            let interrupted = store
                .unfinished_sync_run(record.id)
                .await
                .unwrap()
                .expect("left running");
            assert_eq!(interrupted.status, RunStatus::Running);
            // ...keeps the org locked until its lease expires...
            let LockOutcome::Held { holder, run_id, .. } = store
                .acquire_sync_lock(record.id, "probe", ttl)
                .await
                .unwrap()
            else {
                panic!("the dead run's lease is still live");
            };
            assert_eq!(run_id, Some(interrupted.id));
            assert!(matches!(
                sync::run(
                    &store,
                    &record,
                    &reader,
                    &request(SyncMode::Full),
                    &LogObserver
                )
                .await,
                Err(SyncError::Busy { .. })
            ));
            // ...and once it has expired (as time would make it), the next sync resumes it.
            assert!(store
                .renew_sync_lock(record.id, &holder, None, chrono::TimeDelta::seconds(-1))
                .await
                .unwrap());
            let next = sync_with(&store, &record, &reader, SyncMode::Full).await;
            assert_eq!(next.status, RunStatus::Succeeded, "{:?}", next.error);
            assert_eq!(next.id, interrupted.id, "the interrupted run is resumed");
            assert_eq!(next.attempts, 2);
            assert_eq!(
                full_sync_into_an_empty_store(&reader).await,
                snapshot(&store, &record).await
            );
        }
    })
    .await;
}

/// The preflight of the org `reader` reads.
async fn preflight_of(reader: &SalesforceReader) -> provost_connector::preflight::PreflightReport {
    provost_salesforce::preflight::run(
        reader.client(),
        provost_salesforce::preflight::PreflightOptions {
            exclude_portal_users: false,
        },
    )
    .await
}

/// An older API version lacks newer objects and fields (shared/SALESFORCE.md: ExpirationDate
/// is v52+, MutingPermissionSet v46+): the sync selects what the version has, the preflight
/// names what is lost, and nothing fails.
#[tokio::test]
async fn an_older_api_version_syncs_without_what_it_lacks() {
    use provost_connector::preflight::Status;
    let org = Org::start(16).await;
    let expiring = org
        .admin(
            reqwest::Method::GET,
            "/query?q=SELECT+Id+FROM+PermissionSetAssignment+WHERE+ExpirationDate+!%3D+null",
            json!(null),
        )
        .await;
    assert!(expiring["totalSize"].as_u64().unwrap() > 0, "{expiring}");
    for (version, has_expiry, has_muting) in [
        ("62.0", true, true),
        ("51.0", false, true),
        ("45.0", false, false),
    ] {
        let db = TestDatabase::sqlite().await;
        let store = db.store().await;
        let record = store.ensure_org("acme").await.unwrap();
        let reader = org.reader_at(true, version);
        let run = sync_with(&store, &record, &reader, SyncMode::Full).await;
        assert_eq!(
            run.status,
            RunStatus::Succeeded,
            "v{version}: {:?}",
            run.error
        );
        let stored = snapshot(&store, &record).await;
        let expiries = stored
            .iter()
            .filter(|((entity, _), row)| *entity == Entity::Grant && !row["expires_at"].is_null())
            .count();
        assert_eq!(
            expiries > 0,
            has_expiry,
            "v{version}: {expiries} grants expire"
        );
        let muted = stored
            .iter()
            .filter(|((entity, _), row)| {
                *entity == Entity::Entitlement && row["attributes"]["muting_sets"].is_array()
            })
            .count();
        assert_eq!(
            muted > 0,
            has_muting,
            "v{version}: {muted} groups with muting sets"
        );
        let report = preflight_of(&reader).await;
        assert!(report.ok, "v{version}: {report:#?}");
        let assignments = report
            .checks
            .iter()
            .find(|c| c.id == "fields_permission_set_assignment")
            .unwrap();
        if has_expiry {
            assert_eq!(assignments.status, Status::Pass, "{assignments:?}");
        } else {
            assert_eq!(assignments.status, Status::Warn);
            assert!(
                assignments.detail.contains("ExpirationDate"),
                "{}",
                assignments.detail
            );
        }
    }
}

/// Orgs differ (shared/SALESFORCE.md, "Schema differences"): one without permission set
/// groups has no `PermissionSetGroupId` columns, and field-level security may hide fields from
/// the connected user. The sync selects what the org shows and the preflight says what is lost;
/// a field the sync cannot do without stops it with the remedy.
#[tokio::test]
async fn a_sync_selects_the_fields_the_org_shows_and_the_preflight_says_what_is_lost() {
    use provost_connector::preflight::Status;
    let org = Org::start(15).await;
    let db = TestDatabase::sqlite().await;
    let store = db.store().await;
    let record = store.ensure_org("acme").await.unwrap();
    org.admin(
        reqwest::Method::PUT,
        "/features",
        json!({"permission_set_groups": false}),
    )
    .await;
    let hidden = org
        .admin(
            reqwest::Method::PUT,
            "/hidden-fields",
            json!({"fields": ["User.LastLoginDate", "PermissionSet.PermissionsViewAllData"]}),
        )
        .await;
    assert_eq!(
        hidden["fields"],
        json!(["PermissionSet.PermissionsViewAllData", "User.LastLoginDate"])
    );
    let reader = org.reader(true);
    let run = sync_with(&store, &record, &reader, SyncMode::Full).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let stored = snapshot(&store, &record).await;
    let users: Vec<&Value> = stored
        .iter()
        .filter(|((entity, _), _)| *entity == Entity::Account)
        .map(|(_, row)| row)
        .collect();
    assert!(users.len() > 10, "{} rows stored", stored.len());
    assert!(
        users
            .iter()
            .all(|user| user["attributes"]["LastLoginDate"].is_null()),
        "a hidden field is not read"
    );

    let report = preflight_of(&reader).await;
    let check = |id: &str| {
        report
            .checks
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("no check {id}: {:#?}", report.checks))
            .clone()
    };
    assert!(report.ok, "optional fields do not stop the sync");
    let users = check("fields_user");
    assert_eq!(users.status, Status::Warn);
    assert!(
        users.detail.contains("User.LastLoginDate") && users.detail.contains("dormant"),
        "{}",
        users.detail
    );
    let sets = check("fields_permission_set");
    assert_eq!(sets.status, Status::Warn);
    assert!(
        sets.detail.contains("ViewAllData") && sets.detail.contains("PermissionSetGroupId"),
        "{}",
        sets.detail
    );
    assert_eq!(
        check("fields_permission_set_assignment").status,
        Status::Warn
    );

    // A field the sync needs (a mechanism test: Salesforce's field-level security does not
    // reach User.UserRoleId, but an API version or edition could lack a needed field).
    org.admin(
        reqwest::Method::PUT,
        "/hidden-fields",
        json!({"fields": ["User.UserRoleId"]}),
    )
    .await;
    let reader = org.reader(true);
    let failed = sync::run(
        &store,
        &record,
        &reader,
        &request(SyncMode::Full),
        &LogObserver,
    )
    .await;
    let message = match failed {
        Ok(finished) => {
            assert_eq!(finished.run.status, RunStatus::Failed);
            finished.run.error.unwrap_or_default()
        }
        Err(err) => err.to_string(),
    };
    assert!(
        message.contains("User.UserRoleId") && message.contains("field-level security"),
        "{message}"
    );
    let report = preflight_of(&reader).await;
    assert!(!report.ok);
    let users = report
        .checks
        .iter()
        .find(|c| c.id == "fields_user")
        .unwrap();
    assert_eq!(users.status, Status::Fail);
    assert!(users
        .remedy
        .as_deref()
        .unwrap()
        .contains("Set Field-Level Security"));
    org.admin(
        reqwest::Method::PUT,
        "/hidden-fields",
        json!({"fields": []}),
    )
    .await;
}

/// Delegates to a reader and notes how its reads were split; on the second page of the
/// assignments, changes the org at the edges of the ranges (as someone working in the org
/// would, while the sync reads).
struct Meddling<'a> {
    inner: &'a SalesforceReader,
    org: &'a Org,
    /// The last Id of every range but the last, by resource.
    cuts: std::sync::Mutex<BTreeMap<&'static str, Vec<String>>>,
    pages: AtomicUsize,
    meddled: AtomicUsize,
}

#[async_trait]
impl Connector for Meddling<'_> {
    fn resource_types(&self) -> &'static [ResourceType] {
        self.inner.resource_types()
    }

    async fn streams(
        &self,
        resource: &ResourceType,
        since: Option<&Watermark>,
        ways: usize,
    ) -> Result<Vec<Option<Cursor>>, ConnectorError> {
        let streams = self.inner.streams(resource, since, ways).await?;
        // The connector's cursors are its own; the test knows they name each range's end.
        let cuts: Vec<String> = streams
            .iter()
            .flatten()
            .filter_map(|c| serde_json::from_str::<Value>(&c.0).ok())
            .filter_map(|c| c["upto"].as_str().map(str::to_owned))
            .collect();
        self.cuts.lock().unwrap().insert(resource.id, cuts);
        Ok(streams)
    }

    async fn read_page(
        &self,
        resource: &ResourceType,
        cursor: Option<&Cursor>,
        since: Option<&Watermark>,
    ) -> Result<Page, ConnectorError> {
        if resource.id == "permission_set_assignments"
            && self.pages.fetch_add(1, Ordering::SeqCst) == 1
        {
            let cuts = self.cuts.lock().unwrap().get(resource.id).cloned();
            let made = change_at_the_edges(self.org, &cuts.unwrap_or_default()).await;
            self.meddled.fetch_add(made, Ordering::SeqCst);
        }
        self.inner.read_page(resource, cursor, since).await
    }

    fn calls(&self) -> u64 {
        self.inner.calls()
    }
}

/// Deletes the assignments on both sides of each cut (the last of a range, the first of the
/// next) and adds one: returns how many changes it made.
async fn change_at_the_edges(org: &Org, cuts: &[String]) -> usize {
    let mut made = 0;
    for cut in cuts {
        for soql in [
            format!("SELECT Id FROM PermissionSetAssignment WHERE Id <= '{cut}' AND PermissionSet.IsOwnedByProfile = false ORDER BY Id DESC LIMIT 1"),
            format!("SELECT Id FROM PermissionSetAssignment WHERE Id > '{cut}' AND PermissionSet.IsOwnedByProfile = false ORDER BY Id LIMIT 1"),
        ] {
            if let Some(row) = org.rows(&soql).await.first() {
                org.delete("PermissionSetAssignment", row["Id"].as_str().unwrap())
                    .await;
                made += 1;
            }
        }
    }
    let user = org
        .rows("SELECT Id FROM User WHERE UserType = 'Standard' AND IsActive = true ORDER BY Id DESC LIMIT 1")
        .await;
    if org
        .assign_a_set_not_held(user[0]["Id"].as_str().unwrap())
        .await
    {
        made += 1;
    }
    made
}

#[tokio::test]
async fn a_read_split_into_ranges_leaves_exactly_what_one_sequential_read_gives() {
    // Enough users that users and assignments span several 200-record pages.
    let preset = Preset {
        users: 1_500,
        ..Preset::SMALL
    };
    let org = Org::start_with(16, preset).await;
    on_each_backend(|store| {
        let org = &org;
        async move {
            let record = store.ensure_org("acme").await.unwrap();
            let split = org.reader(true).with_min_stream_pages(1);
            let meddling = Meddling {
                inner: &split,
                org,
                cuts: Default::default(),
                pages: AtomicUsize::new(0),
                meddled: AtomicUsize::new(0),
            };
            // Changes at the edges of the ranges while they are read.
            let first = sync_with(&store, &record, &meddling, SyncMode::Full).await;
            assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.error);
            // The first load dropped the grants' keys (PostgreSQL) and added them again: a
            // grant of nobody is still refused.
            let dangling = provost_connector::model::Grant {
                id: "0Pa0000000NOBODY".to_owned(),
                account_id: "005000000000NOBODY".to_owned(),
                entitlement_id: "0PS000000000NOTHING".to_owned(),
                source: provost_connector::model::GrantSource::Direct,
                expires_at: None,
                attributes: Default::default(),
            };
            assert!(matches!(
                store.upsert_grants(record.id, &[dangling]).await,
                Err(provost::store::StoreError::MissingReference { .. })
            ));
            let cuts = meddling.cuts.lock().unwrap().clone();
            for resource in ["users", "permission_set_assignments", "field_permissions"] {
                assert!(
                    cuts.get(resource).is_some_and(|c| !c.is_empty()),
                    "{resource} was read as several ranges: {cuts:?}"
                );
            }
            assert!(meddling.meddled.load(Ordering::SeqCst) >= 3);

            // Changes at the edges between two runs: a split re-read finds every one...
            let edges = cuts["permission_set_assignments"].clone();
            let made = change_at_the_edges(org, &edges).await;
            assert!(
                made >= edges.len(),
                "{made} changes at {} cuts",
                edges.len()
            );
            let again = sync_with(&store, &record, &split, SyncMode::Full).await;
            assert_eq!(again.status, RunStatus::Succeeded, "{:?}", again.error);
            assert!(
                again.counts.grants.removed >= edges.len() as u64,
                "{:?}",
                again.counts
            );
            // ...and leaves what one sequential read of the org gives, row for row.
            assert_eq!(
                snapshot(&store, &record).await,
                full_sync_into_an_empty_store(&org.reader(true)).await
            );

            // A run that runs out of its daily limit halfway resumes every range where it
            // stopped, and ends with the same model.
            change_at_the_edges(org, &edges).await;
            let usage = org.admin(reqwest::Method::PUT, "/limits", json!({})).await;
            let used = usage["used"].as_u64().unwrap();
            let halfway = used + again.api_calls as u64 / 2;
            org.admin(reqwest::Method::PUT, "/limits", json!({"max": halfway}))
                .await;
            let paused = sync_with(&store, &record, &split, SyncMode::Full).await;
            assert_eq!(paused.status, RunStatus::Paused, "{:?}", paused.error);
            let checkpoints: Vec<String> = store
                .sync_resources(paused.id)
                .await
                .unwrap()
                .into_iter()
                .filter_map(|r| r.cursor)
                .collect();
            assert!(
                checkpoints.iter().any(|c| c.starts_with("streams:")),
                "the run paused while several ranges were being read: {checkpoints:?}"
            );
            org.admin(
                reqwest::Method::PUT,
                "/limits",
                json!({"used": 0, "max": 1_000_000}),
            )
            .await;
            // As `provost sync` does, with a reader of its own: nothing cached from the first.
            let fresh = org.reader(true).with_min_stream_pages(1);
            let resumed = sync_with(&store, &record, &fresh, SyncMode::Full).await;
            assert_eq!(resumed.id, paused.id);
            assert_eq!(resumed.status, RunStatus::Succeeded, "{:?}", resumed.error);
            assert_eq!(
                snapshot(&store, &record).await,
                full_sync_into_an_empty_store(&org.reader(true)).await
            );
        }
    })
    .await;
}

#[tokio::test]
async fn an_org_that_refuses_concurrent_requests_gets_fewer_at_once_and_is_read_whole() {
    let preset = Preset {
        users: 1_500,
        ..Preset::SMALL
    };
    let org = Org::start_with(17, preset).await;
    let mut faults = org.admin(reqwest::Method::GET, "/faults", json!({})).await;
    // Answers that take a while, so that requests overlap, and at most two at once.
    faults["max_concurrent_requests"] = json!(2);
    faults["latency_ms"] = json!(20);
    org.admin(reqwest::Method::PUT, "/faults", faults.clone())
        .await;
    let db = TestDatabase::sqlite().await;
    let store = db.store().await;
    let record = store.ensure_org("acme").await.unwrap();
    let split = org.reader(true).with_min_stream_pages(1);
    let run = sync_with(&store, &record, &split, SyncMode::Full).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let limit = split.client().concurrency_limit();
    assert!(
        limit <= 2,
        "each ConcurrentRequests refusal lowered the limit from {} until the org took them: {limit}",
        provost_salesforce::client::MAX_IN_FLIGHT
    );
    faults["max_concurrent_requests"] = Value::Null;
    faults["latency_ms"] = json!(0);
    org.admin(reqwest::Method::PUT, "/faults", faults).await;
    assert_eq!(
        snapshot(&store, &record).await,
        full_sync_into_an_empty_store(&org.reader(true)).await
    );
    store.close().await;
}

/// Planning a resource's read makes calls (a fingerprint, a first page), and planned one after
/// another they were most of an incremental sync at real latency: the next resources are planned
/// while one is. Here the assignments' plan waits for the license assignments' (the next
/// resource) to be made, which a sync that planned one resource at a time would never do.
#[tokio::test]
async fn the_next_resources_are_planned_while_one_is_and_the_model_is_what_a_sequential_read_gives()
{
    let org = Org::start(18).await;
    let db = TestDatabase::sqlite().await;
    let store = db.store().await;
    let record = store.ensure_org("acme").await.unwrap();
    let reader = org.reader(true);
    let next_planned = std::sync::atomic::AtomicBool::new(false);
    let waited_for_it = std::sync::atomic::AtomicBool::new(false);
    let (next, waited) = (&next_planned, &waited_for_it);
    let hooked = Hooked {
        inner: &reader,
        planned: Box::new(move |resource| {
            let resource = resource.id;
            Box::pin(async move {
                match resource {
                    "permission_set_license_assignments" => next.store(true, Ordering::SeqCst),
                    "permission_set_assignments" => {
                        let deadline =
                            std::time::Instant::now() + std::time::Duration::from_secs(10);
                        while !next.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        }
                        waited.store(next.load(Ordering::SeqCst), Ordering::SeqCst);
                    }
                    _ => {}
                }
            })
        }),
        after: Box::new(|_| {}),
    };
    for mode in [SyncMode::Full, SyncMode::Incremental] {
        next_planned.store(false, Ordering::SeqCst);
        waited_for_it.store(false, Ordering::SeqCst);
        let run = sync_with(&store, &record, &hooked, mode).await;
        assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
        assert!(
            waited_for_it.load(Ordering::SeqCst),
            "{mode:?}: the license assignments were not planned while the assignments were"
        );
    }
    assert_eq!(
        snapshot(&store, &record).await,
        full_sync_into_an_empty_store(&org.reader(true)).await
    );
    store.close().await;
}

/// Something a test does once a resource's read is planned.
pub(crate) type Planned<'a> = Box<
    dyn Fn(&ResourceType) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>
        + Send
        + Sync
        + 'a,
>;

/// Delegates to a reader, doing `planned` once a resource's read is planned and `after` to each
/// page read (as the org changing while the sync reads, or a set left out of what it reads).
pub(crate) struct Hooked<'a> {
    pub(crate) inner: &'a SalesforceReader,
    pub(crate) planned: Planned<'a>,
    pub(crate) after: Box<dyn Fn(&mut Page) + Send + Sync + 'a>,
}

impl<'a> Hooked<'a> {
    /// Leaves one permission set out of what `inner` reads: the rows of what that set opens are
    /// then skipped, as when a set is created while a sync runs.
    fn hiding(inner: &'a SalesforceReader, set: String) -> Hooked<'a> {
        Hooked {
            inner,
            planned: Box::new(|_| Box::pin(async {})),
            after: Box::new(move |page| page.entitlements.retain(|e| e.id != set)),
        }
    }
}

#[async_trait]
impl Connector for Hooked<'_> {
    fn resource_types(&self) -> &'static [ResourceType] {
        self.inner.resource_types()
    }

    async fn streams(
        &self,
        resource: &ResourceType,
        since: Option<&Watermark>,
        ways: usize,
    ) -> Result<Vec<Option<Cursor>>, ConnectorError> {
        let streams = self.inner.streams(resource, since, ways).await?;
        (self.planned)(resource).await;
        Ok(streams)
    }

    async fn read_page(
        &self,
        resource: &ResourceType,
        cursor: Option<&Cursor>,
        since: Option<&Watermark>,
    ) -> Result<Page, ConnectorError> {
        let mut page = self.inner.read_page(resource, cursor, since).await?;
        (self.after)(&mut page);
        Ok(page)
    }

    fn calls(&self) -> u64 {
        self.inner.calls()
    }
}

/// Where a run stands with `resource`.
async fn resource_state(
    store: &Arc<dyn Store>,
    run: provost::store::sync::RunId,
    resource: &str,
) -> provost::store::sync::ResourceState {
    store
        .sync_resources(run)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.resource == resource)
        .unwrap()
}

/// The records a run read of `resource`.
async fn records_read(
    store: &Arc<dyn Store>,
    run: provost::store::sync::RunId,
    resource: &str,
) -> i64 {
    resource_state(store, run, resource).await.records
}

/// How many grants the store holds of `user`.
async fn grants_of(store: &Arc<dyn Store>, org: &OrgRecord, user: &str) -> usize {
    snapshot(store, org)
        .await
        .into_iter()
        .filter(|((entity, _), row)| *entity == Entity::Grant && row["account_id"] == user)
        .count()
}

#[tokio::test]
async fn an_incremental_sync_reads_assignments_and_members_again_only_of_users_changed_since_and_finds_every_change_to_them(
) {
    const HELD: [&str; 3] = [
        "permission_set_assignments",
        "permission_set_license_assignments",
        "group_members",
    ];
    on_each_backend(|store| {
        async move {
            // An org of its own on each backend: users the last one changed are not recent.
            let org = &Org::start(22).await;
            let record = store.ensure_org("acme").await.unwrap();
            // Inactive and portal users are left out: whose rows are synced depends on users.
            // (Resources of one page are read whole; this org's are fingerprinted all the same.)
            let reader = org.reader(false).with_max_unfingerprinted_rows(0);
            let full = sync_with(&store, &record, &reader, SyncMode::Full).await;
            assert_eq!(full.status, RunStatus::Succeeded, "{:?}", full.error);
            let marks: BTreeMap<String, String> =
                store.sync_watermarks(record.id).await.unwrap().into_iter().collect();
            for resource in HELD {
                assert!(
                    marks.get(resource).is_some_and(|m| m.starts_with("rows:fp2-") && m.contains("|users>")),
                    "{marks:?}"
                );
                assert!(records_read(&store, full.id, resource).await > 0, "{resource}");
            }

            // Unchanged: only the rows of users stamped within the overlap before the last
            // read's latest user stamp are read again.
            let unchanged = sync_with(&store, &record, &reader, SyncMode::Incremental).await;
            assert_eq!(unchanged.status, RunStatus::Succeeded, "{:?}", unchanged.error);
            assert_eq!(unchanged.counts.changes(), 0, "{:?}", unchanged.counts);
            for resource in HELD {
                let (now, then) = (
                    records_read(&store, unchanged.id, resource).await,
                    records_read(&store, full.id, resource).await,
                );
                assert!(now * 10 < then, "{resource}: {now} of {then}");
            }
            let held_pages: i64 = store
                .sync_resources(full.id)
                .await
                .unwrap()
                .iter()
                .filter(|r| HELD.contains(&r.resource.as_str()))
                .map(|r| r.pages)
                .sum();
            assert!(
                unchanged.api_calls + held_pages <= full.api_calls + 3 * 5,
                "{} calls, a full read {} with {held_pages} pages of them",
                unchanged.api_calls,
                full.api_calls
            );

            // Users deactivated (one with a license, one in a group) and one activated: no row
            // of the three changes, and yet their rows leave or join the synced set.
            let licensed = org
                .rows("SELECT AssigneeId FROM PermissionSetLicenseAssign WHERE Assignee.IsActive = true AND Assignee.UserType = 'Standard' ORDER BY Id LIMIT 1")
                .await[0]["AssigneeId"]
                .clone();
            let member = org
                .rows("SELECT UserOrGroupId FROM GroupMember WHERE Group.Type = 'Regular' AND UserOrGroupId IN (SELECT Id FROM User WHERE IsActive = true AND UserType = 'Standard') ORDER BY Id LIMIT 1")
                .await[0]["UserOrGroupId"]
                .clone();
            let returning = org
                .rows("SELECT AssigneeId FROM PermissionSetAssignment WHERE Assignee.IsActive = false AND Assignee.UserType = 'Standard' AND PermissionSet.IsOwnedByProfile = false ORDER BY Id LIMIT 1")
                .await[0]["AssigneeId"]
                .clone();
            let (licensed, member, returning) = (
                licensed.as_str().unwrap().to_owned(),
                member.as_str().unwrap().to_owned(),
                returning.as_str().unwrap().to_owned(),
            );
            let leaving = grants_of(&store, &record, &licensed).await
                + grants_of(&store, &record, &member).await;
            assert!(leaving >= 2, "{leaving}");
            for (user, active) in [(&licensed, false), (&member, false), (&returning, true)] {
                org.admin(
                    reqwest::Method::PATCH,
                    &format!("/records/User/{user}"),
                    json!({"IsActive": active}),
                )
                .await;
            }
            let moved = sync_with(&store, &record, &reader, SyncMode::Incremental).await;
            assert_eq!(moved.status, RunStatus::Succeeded, "{:?}", moved.error);
            assert_eq!(moved.counts.accounts.removed, 2, "{:?}", moved.counts);
            assert_eq!(moved.counts.accounts.created, 1, "{:?}", moved.counts);
            assert!(moved.counts.grants.removed >= leaving as u64, "{:?}", moved.counts);
            assert_eq!(grants_of(&store, &record, &licensed).await, 0);
            assert_eq!(grants_of(&store, &record, &member).await, 0);
            // The profile and at least the assignment picked.
            assert!(grants_of(&store, &record, &returning).await >= 2);
            for resource in HELD {
                assert!(
                    records_read(&store, moved.id, resource).await
                        < records_read(&store, full.id, resource).await,
                    "{resource}"
                );
            }
            assert_eq!(
                snapshot(&store, &record).await,
                full_sync_into_an_empty_store(&reader).await
            );

            // The rows themselves changed: an assignment removed alone (the count), one
            // created and one removed (the count as it was, the stamp not), a set added to a
            // group (what the group's assignments grant): each found, by a whole read.
            let held = org
                .rows("SELECT Id, AssigneeId, PermissionSetId FROM PermissionSetAssignment WHERE Assignee.IsActive = true AND Assignee.UserType = 'Standard' AND PermissionSet.IsOwnedByProfile = false AND PermissionSetGroupId = null ORDER BY Id")
                .await;
            org.delete("PermissionSetAssignment", held[0]["Id"].as_str().unwrap())
                .await;
            let removed = sync_with(&store, &record, &reader, SyncMode::Incremental).await;
            assert_eq!(removed.counts.grants.removed, 1, "{:?}", removed.counts);
            assert_eq!(removed.counts.changes(), 1, "{:?}", removed.counts);

            org.delete("PermissionSetAssignment", held[1]["Id"].as_str().unwrap())
                .await;
            org.admin(
                reqwest::Method::POST,
                "/records/PermissionSetAssignment",
                json!({"AssigneeId": held[0]["AssigneeId"], "PermissionSetId": held[0]["PermissionSetId"]}),
            )
            .await;
            let swapped = sync_with(&store, &record, &reader, SyncMode::Incremental).await;
            assert_eq!(swapped.counts.grants.removed, 1, "{:?}", swapped.counts);
            assert_eq!(swapped.counts.grants.created, 1, "{:?}", swapped.counts);

            let group = org
                .rows("SELECT PermissionSetGroupId FROM PermissionSetAssignment WHERE PermissionSetGroupId != null AND Assignee.IsActive = true AND Assignee.UserType = 'Standard' ORDER BY Id LIMIT 1")
                .await[0]["PermissionSetGroupId"]
                .clone();
            let set = org
                .admin(
                    reqwest::Method::POST,
                    "/records/PermissionSet",
                    json!({"Name": "Late_Component", "Label": "Late Component"}),
                )
                .await["id"]
                .clone();
            let grouped = sync_with(&store, &record, &reader, SyncMode::Incremental).await;
            assert_eq!(grouped.counts.entitlements.created, 1, "{:?}", grouped.counts);
            org.admin(
                reqwest::Method::POST,
                "/records/PermissionSetGroupComponent",
                json!({"PermissionSetGroupId": group, "PermissionSetId": set}),
            )
            .await;
            let components = sync_with(&store, &record, &reader, SyncMode::Incremental).await;
            assert!(components.counts.grants.created >= 1, "{:?}", components.counts);
            assert_eq!(
                snapshot(&store, &record).await,
                full_sync_into_an_empty_store(&reader).await
            );

            // Most users changed (as where logins move users' stamps): the rows are read
            // whole, side by side, not as the rows of the users changed.
            let users = org
                .rows("SELECT Id FROM User WHERE IsActive = true AND UserType = 'Standard'")
                .await;
            for (n, user) in users.iter().enumerate() {
                org.admin(
                    reqwest::Method::PATCH,
                    &format!("/records/User/{}", user["Id"].as_str().unwrap()),
                    json!({"Title": format!("Busy {n}")}),
                )
                .await;
            }
            let busy = sync_with(&store, &record, &reader, SyncMode::Incremental).await;
            assert_eq!(busy.counts.grants, Default::default(), "{:?}", busy.counts);
            let read = resource_state(&store, busy.id, "permission_set_assignments").await;
            // Read whole: every record the read counted (a read of changes counts none).
            assert_eq!(read.total, Some(read.records), "{read:?}");

            // Without user filters, an unchanged resource reads nothing at all.
            let everyone = org
                .reader_with(
                    ReadOptions {
                        exclude_portal_users: false,
                        include_inactive_users: true,
                        read_access: true,
                    },
                    provost_salesforce::client::DEFAULT_API_VERSION,
                )
                .with_max_unfingerprinted_rows(0);
            let widened = sync_with(&store, &record, &everyone, SyncMode::Incremental).await;
            assert_eq!(widened.status, RunStatus::Succeeded, "{:?}", widened.error);
            // Users the filters left out before are all read (a change of filters is not a
            // change of theirs), and their grants with them.
            assert!(widened.counts.accounts.created > 10, "{:?}", widened.counts);
            assert_eq!(widened.counts.grants_skipped, 0, "{:?}", widened.counts);
            let marks: BTreeMap<String, String> =
                store.sync_watermarks(record.id).await.unwrap().into_iter().collect();
            let again = sync_with(&store, &record, &everyone, SyncMode::Incremental).await;
            assert_eq!(again.counts.changes(), 0, "{:?}", again.counts);
            for resource in HELD {
                assert!(!marks[resource].contains("|users>"), "{marks:?}");
                assert_eq!(records_read(&store, again.id, resource).await, 0, "{resource}");
            }
            assert_eq!(
                snapshot(&store, &record).await,
                full_sync_into_an_empty_store(&everyone).await
            );
        }
    })
    .await;
}

#[tokio::test]
async fn an_assignment_created_while_a_read_runs_leaves_no_fingerprint_and_its_removal_is_found() {
    // Enough users that assignments take several pages, read as ranges side by side: the row
    // created once the read is planned (after its fingerprint) is in the last range, whose
    // query runs after.
    let org = Org::start_with(
        23,
        Preset {
            users: 300,
            ..Preset::SMALL
        },
    )
    .await;
    on_each_backend(|store| {
        let org = &org;
        async move {
            let record = store.ensure_org("acme").await.unwrap();
            let reader = org.reader(false).with_min_stream_pages(1);
            let full = sync_with(&store, &record, &reader, SyncMode::Full).await;
            assert_eq!(full.status, RunStatus::Succeeded, "{:?}", full.error);
            let marks: BTreeMap<String, String> =
                store.sync_watermarks(record.id).await.unwrap().into_iter().collect();
            assert!(marks["permission_set_assignments"].starts_with("rows:"), "{marks:?}");
            // Each run below creates one assignment once its read of assignments is planned:
            // a set of an active user, assigned again (the pair's assignment removed first).
            let picks = org
                .rows("SELECT Id, AssigneeId, PermissionSetId FROM PermissionSetAssignment WHERE Assignee.IsActive = true AND Assignee.UserType = 'Standard' AND PermissionSet.IsOwnedByProfile = false AND PermissionSetGroupId = null ORDER BY Id LIMIT 3")
                .await;
            for pick in &picks {
                org.delete("PermissionSetAssignment", pick["Id"].as_str().unwrap())
                    .await;
            }
            let assign = |pick: &Value| {
                json!({"AssigneeId": pick["AssigneeId"], "PermissionSetId": pick["PermissionSetId"]})
            };
            let marks = || async {
                let marks: BTreeMap<String, String> =
                    store.sync_watermarks(record.id).await.unwrap().into_iter().collect();
                marks
            };

            // In a full read, which sees it: it is newer than the fingerprint taken before, so
            // the read keeps none, and its removal before the next sync is found. (Kept, the
            // fingerprint would be the org's again once it is removed: the store would keep it.)
            let created = std::sync::Mutex::new(None);
            let creating = creating_once_planned(&reader, org, assign(&picks[0]), &created);
            let during = sync_with(&store, &record, &creating, SyncMode::Full).await;
            assert_eq!(during.counts.grants.created, 1, "{:?}", during.counts);
            assert_eq!(during.counts.grants.removed, 3, "{:?}", during.counts);
            assert!(!marks().await.contains_key("permission_set_assignments"));
            let one = created.lock().unwrap().clone().unwrap();
            org.delete("PermissionSetAssignment", &one).await;
            let undone = sync_with(&store, &record, &reader, SyncMode::Incremental).await;
            assert_eq!(undone.counts.grants.removed, 1, "{:?}", undone.counts);
            assert!(marks().await["permission_set_assignments"].starts_with("rows:"));

            // In an incremental read (another assignment changed the fingerprint): the read
            // cannot keep the fingerprint it started from either, which describes the rows
            // before both; when both are removed, the next sync finds them gone.
            let other = org
                .admin(
                    reqwest::Method::POST,
                    "/records/PermissionSetAssignment",
                    assign(&picks[1]),
                )
                .await["id"]
                .as_str()
                .unwrap()
                .to_owned();
            let created = std::sync::Mutex::new(None);
            let creating = creating_once_planned(&reader, org, assign(&picks[2]), &created);
            let during = sync_with(&store, &record, &creating, SyncMode::Incremental).await;
            assert_eq!(during.counts.grants.created, 2, "{:?}", during.counts);
            assert!(!marks().await.contains_key("permission_set_assignments"));
            let one = created.lock().unwrap().clone().unwrap();
            org.delete("PermissionSetAssignment", &one).await;
            org.delete("PermissionSetAssignment", &other).await;
            let undone = sync_with(&store, &record, &reader, SyncMode::Incremental).await;
            assert_eq!(undone.counts.grants.removed, 2, "{:?}", undone.counts);
            assert_eq!(
                snapshot(&store, &record).await,
                full_sync_into_an_empty_store(&reader).await
            );
        }
    })
    .await;
}

/// `reader`, creating the record `body` describes (an assignment) once a read of assignments
/// is planned (after its fingerprint, before its pages), the first time only; its id goes in
/// `created`.
fn creating_once_planned<'a>(
    reader: &'a SalesforceReader,
    org: &'a Org,
    body: Value,
    created: &'a std::sync::Mutex<Option<String>>,
) -> Hooked<'a> {
    Hooked {
        inner: reader,
        planned: Box::new(move |resource| {
            let body = body.clone();
            let resource = resource.id;
            Box::pin(async move {
                if resource != "permission_set_assignments" || created.lock().unwrap().is_some() {
                    return;
                }
                let answer = org
                    .admin(
                        reqwest::Method::POST,
                        "/records/PermissionSetAssignment",
                        body,
                    )
                    .await;
                *created.lock().unwrap() = answer["id"].as_str().map(str::to_owned);
            })
        }),
        after: Box::new(|_| {}),
    }
}

#[tokio::test]
async fn an_incremental_sync_reads_unchanged_object_and_field_permissions_in_one_call_each_and_finds_every_change_to_them(
) {
    const ACCESS: [&str; 2] = ["object_permissions", "field_permissions"];
    let org = Org::start(21).await;
    on_each_backend(|store| {
        let org = &org;
        async move {
            // As configured: a resource of one page is read whole; object permissions (153
            // rows) are, field permissions (1,364) are fingerprinted, and their pages not read
            // again; the fingerprint costs one call (its latest rows and count together).
            let plain = store.ensure_org("plain").await.unwrap();
            let reader = org.reader(true);
            let full = sync_with(&store, &plain, &reader, SyncMode::Full).await;
            let marks: BTreeMap<String, String> =
                store.sync_watermarks(plain.id).await.unwrap().into_iter().collect();
            assert!(!marks.contains_key("object_permissions"), "{marks:?}");
            assert!(marks["field_permissions"].starts_with("rows:fp2-"), "{marks:?}");
            let unchanged = sync_with(&store, &plain, &reader, SyncMode::Incremental).await;
            assert_eq!(unchanged.counts.changes(), 0, "{:?}", unchanged.counts);
            assert_eq!(records_read(&store, unchanged.id, "field_permissions").await, 0);
            let field_pages = resource_state(&store, full.id, "field_permissions")
                .await
                .pages;
            assert!(field_pages >= 7, "{field_pages}");
            // Besides the field permissions, the two syncs differ by a few calls: the full one
            // describes the objects (the same reader then keeps what it found) and reads the
            // users' first page with their stamp, the incremental one reads users' changes in
            // three phases. Reading the field permissions' pages again would take six more.
            assert!(
                unchanged.api_calls + field_pages - 1 <= full.api_calls + 3,
                "{} calls, a full read {} with {field_pages} pages of field permissions",
                unchanged.api_calls,
                full.api_calls
            );

            // Every permission resource fingerprinted, small as they are here.
            let record = store.ensure_org("acme").await.unwrap();
            let reader = org.reader(true).with_max_unfingerprinted_rows(0);
            let full = sync_with(&store, &record, &reader, SyncMode::Full).await;
            assert_eq!(full.status, RunStatus::Succeeded, "{:?}", full.error);
            let marks: BTreeMap<String, String> =
                store.sync_watermarks(record.id).await.unwrap().into_iter().collect();
            for resource in ACCESS {
                assert!(
                    marks.get(resource).is_some_and(|m| m.starts_with("rows:fp2-")),
                    "{marks:?} {:?}",
                    full.counts
                );
            }
            let stored = snapshot(&store, &record).await;

            // Unchanged: nothing read of them, in one call each instead of every page.
            let unchanged = sync_with(&store, &record, &reader, SyncMode::Incremental).await;
            assert_eq!(unchanged.status, RunStatus::Succeeded, "{:?}", unchanged.error);
            assert_eq!(unchanged.counts.changes(), 0);
            for resource in ACCESS {
                assert_eq!(records_read(&store, unchanged.id, resource).await, 0, "{resource}");
                assert!(records_read(&store, full.id, resource).await > 100, "{resource}");
            }
            assert_eq!(snapshot(&store, &record).await, stored);

            // Each kind of change alone: found, and only it. A removal alone changes only the
            // count (the removed row was older than the window).
            let row = org
                .rows("SELECT Id, ParentId, SobjectType, Field, PermissionsRead, PermissionsEdit FROM FieldPermissions WHERE ParentId IN (SELECT Id FROM PermissionSet WHERE IsOwnedByProfile = false) ORDER BY Id LIMIT 1")
                .await[0]
                .clone();
            org.delete("FieldPermissions", row["Id"].as_str().unwrap()).await;
            let removed = sync_with(&store, &record, &reader, SyncMode::Incremental).await;
            assert_eq!(removed.status, RunStatus::Succeeded, "{:?}", removed.error);
            assert_eq!(removed.counts.permissions.removed, 1, "{:?}", removed.counts);
            assert_eq!(removed.counts.changes(), 1, "{:?}", removed.counts);

            let edited = org
                .rows("SELECT Id, PermissionsEdit FROM ObjectPermissions ORDER BY Id DESC LIMIT 1")
                .await[0]
                .clone();
            org.admin(
                reqwest::Method::PATCH,
                &format!("/records/ObjectPermissions/{}", edited["Id"].as_str().unwrap()),
                json!({"PermissionsEdit": !edited["PermissionsEdit"].as_bool().unwrap()}),
            )
            .await;
            let updated = sync_with(&store, &record, &reader, SyncMode::Incremental).await;
            assert_eq!(updated.counts.permissions.updated, 1, "{:?}", updated.counts);
            assert_eq!(updated.counts.changes(), 1, "{:?}", updated.counts);
            // The change is now within the window: an incremental again finds it unchanged.
            let again = sync_with(&store, &record, &reader, SyncMode::Incremental).await;
            assert_eq!(again.counts.changes(), 0, "{:?}", again.counts);
            for resource in ACCESS {
                assert_eq!(records_read(&store, again.id, resource).await, 0, "{resource}");
            }

            // A row removed and one created: the count is as it was, the latest stamp not.
            let other_row = org
                .rows("SELECT Id FROM FieldPermissions ORDER BY Id DESC LIMIT 1")
                .await[0]
                .clone();
            org.delete("FieldPermissions", other_row["Id"].as_str().unwrap())
                .await;
            org.admin(
                reqwest::Method::POST,
                "/records/FieldPermissions",
                json!({
                    "ParentId": row["ParentId"], "SobjectType": row["SobjectType"],
                    "Field": row["Field"], "PermissionsRead": row["PermissionsRead"],
                    "PermissionsEdit": row["PermissionsEdit"],
                }),
            )
            .await;
            let created = sync_with(&store, &record, &reader, SyncMode::Incremental).await;
            assert_eq!(created.counts.permissions.created, 1, "{:?}", created.counts);
            assert_eq!(created.counts.permissions.removed, 1, "{:?}", created.counts);
            assert_eq!(created.counts.changes(), 2, "{:?}", created.counts);

            // Hundreds of rows changed at once (more than the fingerprint's first query
            // reads): the window is read by itself, and an unchanged org is still told.
            let many = org
                .rows("SELECT Id, PermissionsEdit FROM FieldPermissions ORDER BY Id LIMIT 250")
                .await;
            for one in &many {
                org.admin(
                    reqwest::Method::PATCH,
                    &format!("/records/FieldPermissions/{}", one["Id"].as_str().unwrap()),
                    json!({"PermissionsEdit": !one["PermissionsEdit"].as_bool().unwrap()}),
                )
                .await;
            }
            let deployed = sync_with(&store, &record, &reader, SyncMode::Incremental).await;
            assert_eq!(deployed.counts.permissions.updated, 250, "{:?}", deployed.counts);
            let marks: BTreeMap<String, String> =
                store.sync_watermarks(record.id).await.unwrap().into_iter().collect();
            let window: u64 = marks["field_permissions"].split('|').nth(2).unwrap().parse().unwrap();
            assert!(window >= 250, "{marks:?}");
            assert!(marks.contains_key("users"), "{marks:?}");
            let quiet = sync_with(&store, &record, &reader, SyncMode::Incremental).await;
            assert_eq!(quiet.counts.changes(), 0, "{:?}", quiet.counts);
            assert_eq!(records_read(&store, quiet.id, "field_permissions").await, 0);
            assert_eq!(
                snapshot(&store, &record).await,
                full_sync_into_an_empty_store(&reader).await
            );

            // A run that skipped rows (their permission set was not read) stores no
            // fingerprint of them: the next incremental reads them whole and finds them.
            let other = store.ensure_org("hidden").await.unwrap();
            let hiding = Hooked::hiding(&reader, row["ParentId"].as_str().unwrap().to_owned());
            let hidden = sync_with(&store, &other, &hiding, SyncMode::Full).await;
            assert!(hidden.counts.permissions_skipped > 0, "{:?}", hidden.counts);
            let marks: BTreeMap<String, String> =
                store.sync_watermarks(other.id).await.unwrap().into_iter().collect();
            assert!(!marks.contains_key("field_permissions"), "{marks:?}");
            let found = sync_with(&store, &other, &reader, SyncMode::Incremental).await;
            assert!(
                found.counts.permissions.created >= hidden.counts.permissions_skipped,
                "{:?}",
                found.counts
            );
            assert_eq!(
                snapshot(&store, &other).await,
                snapshot(&store, &record).await
            );

            // Permissions not read for a while, then read again: read whole.
            let without = org.reader_with(
                ReadOptions {
                    exclude_portal_users: true,
                    include_inactive_users: true,
                    read_access: false,
                },
                provost_salesforce::client::DEFAULT_API_VERSION,
            );
            let off = sync_with(&store, &record, &without, SyncMode::Incremental).await;
            assert!(off.counts.permissions.removed > 400, "{:?}", off.counts);
            let on = sync_with(&store, &record, &reader, SyncMode::Incremental).await;
            assert_eq!(on.counts.permissions.created, off.counts.permissions.removed);
            assert_eq!(
                snapshot(&store, &record).await,
                full_sync_into_an_empty_store(&reader).await
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_users_watermark_of_an_earlier_version_makes_one_full_read_of_users_that_misses_no_change(
) {
    // Users take two pages, read as one stream: the first page is read when the read is
    // planned, the second by its locator.
    let org = Org::start_with(
        24,
        Preset {
            users: 500,
            ..Preset::SMALL
        },
    )
    .await;
    let db = TestDatabase::sqlite().await;
    let store = db.store().await;
    let record = store.ensure_org("acme").await.unwrap();
    let reader = org.reader(false);
    let full = sync_with(&store, &record, &reader, SyncMode::Full).await;
    assert_eq!(full.status, RunStatus::Succeeded, "{:?}", full.error);
    let pages = resource_state(&store, full.id, "users").await.pages;
    assert!(pages >= 2, "{pages}");

    // A user on the first page changes; the users' watermark is as an earlier version wrote
    // it: a bare stamp, naming no filters.
    let first = org
        .rows("SELECT Id FROM User WHERE IsActive = true AND UserType = 'Standard' ORDER BY Id LIMIT 1")
        .await[0]["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    org.admin(
        reqwest::Method::PATCH,
        &format!("/records/User/{first}"),
        json!({"Title": "Changed before the upgrade's first sync"}),
    )
    .await;
    let mut raw = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    let untagged = sqlx::query(
        "UPDATE sync_watermarks SET watermark = substr(watermark, 1, instr(watermark, '|') - 1) \
         WHERE resource = 'users' AND instr(watermark, '|') > 0",
    )
    .execute(&mut raw)
    .await
    .unwrap();
    assert_eq!(untagged.rows_affected(), 1);

    // Every user is read (the filters the stamp was read with are unknown), page after page
    // as one full read: the change is found, and the watermark names the filters again.
    let upgraded = sync_with(&store, &record, &reader, SyncMode::Incremental).await;
    assert_eq!(
        upgraded.status,
        RunStatus::Succeeded,
        "{:?}",
        upgraded.error
    );
    assert_eq!(upgraded.counts.accounts.updated, 1, "{:?}", upgraded.counts);
    assert!(
        records_read(&store, upgraded.id, "users").await
            >= records_read(&store, full.id, "users").await
    );
    let marks: BTreeMap<String, String> = store
        .sync_watermarks(record.id)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert!(marks["users"].contains("|filters>"), "{marks:?}");
    assert_eq!(
        snapshot(&store, &record).await,
        full_sync_into_an_empty_store(&reader).await
    );
    store.close().await;
}
