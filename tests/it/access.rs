//! The object, field and setup-entity access reports and muting in effective permissions,
//! checked against ground truth computed here from the emulator's records (ObjectPermissions,
//! FieldPermissions, SetupEntityAccess, aggregate sets), not from Provost's store or code.

use std::collections::{BTreeSet, HashMap};

use provost::reports::output::Format;
use provost::reports::{Params, Report};
use serde_json::{json, Value};

use crate::helpers::on_each_backend;
use crate::provisioning::Fixture;
use crate::reports::{generate, id, parse_csv, resync, truth};

/// Each internal user's paths to permission sets: (user, via entitlement, set it leads to).
/// Group components are not paths of their own: a group leads to its aggregate set.
async fn paths(fixture: &Fixture) -> Vec<(String, String, String)> {
    let sets = fixture
        .rows("SELECT Id, IsOwnedByProfile, ProfileId, PermissionSetGroupId FROM PermissionSet")
        .await;
    let mut leads: HashMap<String, String> = HashMap::new();
    for set in &sets {
        if set["IsOwnedByProfile"] == json!(true) {
            leads.insert(id(set, "ProfileId"), id(set, "Id"));
        } else if let Some(group) = set["PermissionSetGroupId"].as_str() {
            leads.insert(group.to_owned(), id(set, "Id"));
        } else {
            leads.insert(id(set, "Id"), id(set, "Id"));
        }
    }
    truth(fixture)
        .await
        .held
        .into_iter()
        .filter(|(_, _, how)| how == "direct")
        .filter_map(|(user, via, _)| leads.get(&via).map(|set| (user, via.clone(), set.clone())))
        .collect()
}

fn rows_of(bytes: &[u8], columns: &[&str]) -> BTreeSet<Vec<String>> {
    let rows = parse_csv(bytes);
    let set: BTreeSet<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|c| r[*c].clone()).collect())
        .collect();
    assert_eq!(set.len(), rows.len(), "no row twice");
    set
}

fn assert_same(expected: &BTreeSet<Vec<String>>, reported: &BTreeSet<Vec<String>>, what: &str) {
    let missing: Vec<_> = expected.difference(reported).take(5).collect();
    let extra: Vec<_> = reported.difference(expected).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: missing {missing:?}, extra {extra:?}"
    );
    assert!(!expected.is_empty(), "{what}: the org has some");
}

#[tokio::test]
async fn access_reports_name_every_path_to_an_object_a_field_and_a_connected_app_on_every_backend()
{
    on_each_backend(|store| async move {
        let fixture = Fixture::start(store, |_| {}).await;
        let paths = paths(&fixture).await;
        let admins: BTreeSet<String> = fixture
            .rows("SELECT Id FROM PermissionSet WHERE PermissionsModifyAllData = true")
            .await
            .iter()
            .map(|r| id(r, "Id"))
            .collect();

        // Who can delete Opportunities.
        let deleting: BTreeSet<String> = fixture
            .rows("SELECT ParentId FROM ObjectPermissions WHERE SobjectType = 'Opportunity' AND PermissionsDelete = true")
            .await
            .iter()
            .map(|r| id(r, "ParentId"))
            .collect();
        let mut expected = BTreeSet::new();
        for (user, via, set) in &paths {
            if deleting.contains(set) {
                expected.insert(vec![user.clone(), via.clone(), "object_permission".to_owned()]);
            }
            if admins.contains(set) {
                expected.insert(vec![user.clone(), via.clone(), "Modify All Data".to_owned()]);
            }
        }
        let params = Params {
            object: Some("Opportunity".into()),
            action: Some("delete".into()),
            ..Params::default()
        };
        let (bytes, manifest) = generate(&fixture, Report::ObjectAccess, &params, Format::Csv).await;
        assert_same(&expected, &rows_of(&bytes, &["user_id", "via_id", "through"]), "deleters of Opportunity");
        assert_eq!(manifest.parameters["object"], "Opportunity");
        for row in parse_csv(&bytes) {
            assert_eq!(row["object"], "Opportunity");
            assert_eq!(row["delete"], "true");
        }
        // API names are case-insensitive in Salesforce: the stored spelling is used.
        let lower = Params {
            object: Some(" opportunity ".into()),
            ..params.clone()
        };
        let (same, _) = generate(&fixture, Report::ObjectAccess, &lower, Format::Csv).await;
        assert_eq!(same, bytes);

        // Who can read Contact.SSN__c: field permissions, and View All Fields on Contact.
        let field = "Contact.SSN__c";
        let mut opens: HashMap<String, Vec<(String, String, &str)>> = HashMap::new();
        for row in fixture
            .rows(&format!("SELECT ParentId, PermissionsRead, PermissionsEdit FROM FieldPermissions WHERE Field = '{field}'"))
            .await
        {
            opens.entry(id(&row, "ParentId")).or_default().push((row["PermissionsRead"].to_string(), row["PermissionsEdit"].to_string(), "field_permission"),
            );
        }
        for row in fixture
            .rows("SELECT ParentId FROM ObjectPermissions WHERE SobjectType = 'Contact' AND PermissionsViewAllFields = true")
            .await
        {
            opens.entry(id(&row, "ParentId")).or_default().push((
                "true".into(),
                "false".into(),
                "View All Fields",
            ));
        }
        let expected: BTreeSet<Vec<String>> = paths
            .iter()
            .flat_map(|(user, via, set)| {
                opens.get(set).into_iter().flatten().map(|(read, edit, through)| {
                    let through = (*through).to_owned();
                    vec![user.clone(), via.clone(), read.clone(), edit.clone(), through]
                })
            })
            .collect();
        let params = Params {
            field: Some(field.into()),
            ..Params::default()
        };
        let (bytes, _) = generate(&fixture, Report::FieldAccess, &params, Format::Csv).await;
        let columns = ["user_id", "via_id", "read", "edit", "through"];
        assert_same(&expected, &rows_of(&bytes, &columns), "readers of Contact.SSN__c");
        let before = chrono::Utc::now();

        // Who can use the connected app DataLoader, by name.
        let app = id(
            &fixture.rows("SELECT Id FROM ConnectedApplication WHERE Name = 'DataLoader'").await[0],
            "Id",
        );
        let using: BTreeSet<String> = fixture
            .rows(&format!("SELECT ParentId FROM SetupEntityAccess WHERE SetupEntityId = '{app}'"))
            .await
            .iter()
            .map(|r| id(r, "ParentId"))
            .collect();
        let expected: BTreeSet<Vec<String>> = paths
            .iter()
            .filter(|(_, _, set)| using.contains(set))
            .map(|(user, via, _)| vec![user.clone(), via.clone(), app.clone(), "DataLoader".to_owned()])
            .collect();
        let params = Params {
            setup_entity: Some("dataloader".into()),
            ..Params::default()
        };
        let (bytes, _) = generate(&fixture, Report::SetupAccess, &params, Format::Csv).await;
        let columns = ["user_id", "via_id", "entity_id", "entity_name"];
        assert_same(&expected, &rows_of(&bytes, &columns), "users of DataLoader");
        assert!(parse_csv(&bytes).iter().all(|r| r["entity_type"] == "ConnectedApplication"));

        // A field permission removed in Salesforce: gone now, there as of before.
        let profile_readers: Vec<Value> = fixture
            .rows(&format!("SELECT Id, ParentId FROM FieldPermissions WHERE Field = '{field}' AND PermissionsRead = true"))
            .await;
        let removed = profile_readers
            .iter()
            .find(|r| paths.iter().any(|(_, _, set)| *set == id(r, "ParentId")))
            .expect("some held set reads the field");
        let (removed_id, removed_set) = (id(removed, "Id"), id(removed, "ParentId"));
        let response = fixture
            .raw
            .delete(format!("{}/__emulator/records/FieldPermissions/{removed_id}", fixture.sf))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        resync(&fixture).await;
        let through_removed = |bytes: &[u8]| {
            parse_csv(bytes)
                .iter()
                .filter(|r| r["permission_set_id"] == removed_set && r["through"] == "field_permission")
                .count()
        };
        let params = Params {
            field: Some(field.into()),
            ..Params::default()
        };
        let (bytes, _) = generate(&fixture, Report::FieldAccess, &params, Format::Csv).await;
        assert_eq!(through_removed(&bytes), 0, "no longer read through the removed permission");
        let (bytes, _) = generate(
            &fixture,
            Report::FieldAccess,
            &Params { as_of: Some(before), ..params.clone() },
            Format::Csv,
        )
        .await;
        assert!(through_removed(&bytes) > 0, "read through it as of before");

        // Bad filters say what to give.
        for (report, params, says) in [
            (Report::FieldAccess, Params { field: Some("SSN__c".into()), ..Params::default() }, "Object.Field"),
            (Report::ObjectAccess, Params { action: Some("destroy".into()), ..Params::default() }, "delete"),
            (Report::SetupAccess, Params { object: Some("Contact".into()), ..Params::default() }, "object-access"),
            (Report::ObjectAccess, Params { object: Some("  ".into()), ..Params::default() }, "is empty"),
            (Report::FieldAccess, Params { field: Some("Contact. Email".into()), ..Params::default() }, "not a Salesforce API name"),
            (Report::FieldAccess, Params { field: Some("Contact.Email".into()), object: Some("Lead".into()), ..Params::default() }, "not a field of"),
        ] {
            let err = provost::reports::generate(&fixture.store, "acme", report, &params, Format::Csv, Vec::new())
                .await
                .unwrap_err();
            assert!(err.to_string().contains(says), "{err}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_muted_permission_is_cut_from_the_groups_paths_and_names_its_muting_set_on_every_backend()
{
    on_each_backend(|store| async move {
        let fixture = Fixture::start(store, |_| {}).await;
        let aggregates: HashMap<String, Value> = fixture
            .rows("SELECT PermissionSetGroupId, PermissionsModifyAllData, PermissionsViewAllData, PermissionsManageUsers, PermissionsAuthorApex, PermissionsApiEnabled FROM PermissionSet WHERE Type = 'Group'")
            .await
            .into_iter()
            .map(|r| (id(&r, "PermissionSetGroupId"), r))
            .collect();
        let muting: HashMap<String, Value> = fixture
            .rows("SELECT Id, DeveloperName, PermissionsModifyAllData, PermissionsViewAllData, PermissionsManageUsers, PermissionsAuthorApex, PermissionsApiEnabled FROM MutingPermissionSet")
            .await
            .into_iter()
            .map(|r| (id(&r, "Id"), r))
            .collect();
        assert!(!muting.is_empty(), "the org has muting sets");
        let mut muted_in: HashMap<(String, String), String> = HashMap::new();
        for component in fixture
            .rows("SELECT PermissionSetGroupId, PermissionSetId FROM PermissionSetGroupComponent")
            .await
        {
            if let Some(set) = muting.get(&id(&component, "PermissionSetId")) {
                for (field, on) in set.as_object().unwrap() {
                    if on == &json!(true) {
                        muted_in.insert(
                            (id(&component, "PermissionSetGroupId"), field.clone()),
                            id(set, "DeveloperName"),
                        );
                    }
                }
            }
        }
        let (bytes, _) = generate(&fixture, Report::EffectivePermissions, &Params::default(), Format::Csv).await;
        let rows = parse_csv(&bytes);
        let mut cut = 0;
        for row in rows.iter().filter(|r| r["via_type"] == "permission_set_group") {
            let field = &row["permission_field"];
            let Some(aggregate) = aggregates.get(&row["via_id"]) else { continue };
            if aggregate.get(field).is_none() {
                continue; // a permission the query above did not ask for
            }
            let effective = aggregate[field] == json!(true);
            assert_eq!(row["effective"], effective.to_string(), "{row:?}");
            if !effective {
                cut += 1;
                let expected = muted_in
                    .get(&(row["via_id"].clone(), field.clone()))
                    .cloned()
                    .unwrap_or_default();
                assert_eq!(row["muted_by"], expected, "{row:?}");
            }
        }
        assert!(cut > 0, "some path is cut by a muting set");
        assert!(rows.iter().any(|r| !r["muted_by"].is_empty()), "a muting set is named");
        for row in rows.iter().filter(|r| r["via_type"] != "permission_set_group") {
            assert_eq!(row["effective"], "true");
            assert_eq!(row["group_status"], "");
        }
    })
    .await;
}

#[tokio::test]
async fn scim_last_modified_moves_when_a_user_or_its_grants_change_and_filters_on_every_backend() {
    for db in crate::helpers::TestDatabase::all().await {
        let store = db.store().await;
        let fixture = Fixture::start(store, |_| {}).await;
        let scim = crate::helpers::bearer_client(&fixture.store, "idp", &["scim:read"]).await;
        let changed_since = |since: chrono::DateTime<chrono::Utc>| {
            let scim = scim.clone();
            let url = format!("{}/scim/v2/Users", fixture.api);
            async move {
                let filter = format!(
                    "meta.lastModified gt \"{}\"",
                    provost::util::times::rfc3339(since)
                );
                let body: Value = scim
                    .get(url)
                    .query(&[("filter", filter.as_str()), ("count", "1000")])
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                body["Resources"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{body}"))
                    .iter()
                    .map(|u| {
                        (
                            id(u, "id"),
                            u["meta"]["lastModified"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect::<HashMap<String, String>>()
            }
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let synced = chrono::Utc::now();
        assert!(
            changed_since(synced).await.is_empty(),
            "nothing changed since the sync"
        );

        // A permission set assigned in Salesforce: the next sync marks its user.
        // Two users, each with a permission set they do not hold.
        let mut pairs = fixture.grantable_pairs(20).await;
        let first = pairs[0].clone();
        pairs.retain(|(user, _)| *user != first.0);
        pairs.insert(0, first);
        let mut user_ids = Vec::new();
        for (username, _) in &pairs {
            let rows = fixture
                .rows(&format!(
                    "SELECT Id FROM User WHERE Username = '{username}'"
                ))
                .await;
            user_ids.push(id(&rows[0], "Id"));
        }
        let (direct_user, set) = (&user_ids[0], &pairs[0].1);
        let set_id = id(
            &fixture
                .rows(&format!(
                    "SELECT Id FROM PermissionSet WHERE Name = '{set}'"
                ))
                .await[0],
            "Id",
        );
        let response = fixture
            .raw
            .post(format!(
                "{}/__emulator/records/PermissionSetAssignment",
                fixture.sf
            ))
            .json(&json!({"AssigneeId": direct_user, "PermissionSetId": set_id}))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{:?}",
            response.text().await
        );
        resync(&fixture).await;
        let changed = changed_since(synced).await;
        assert_eq!(changed.keys().collect::<Vec<_>>(), vec![direct_user]);
        let at = provost_connector::times::parse_datetime(&changed[direct_user]).unwrap();
        assert!(at > synced);

        // A grant Provost makes marks its user too.
        let between = chrono::Utc::now();
        let shown = fixture
            .carry_out(crate::provisioning::grant_body(
                &pairs[1].0,
                "permission_set",
                &pairs[1].1,
            ))
            .await;
        assert_eq!(shown["state"], "completed", "{shown}");
        let changed = changed_since(between).await;
        assert_eq!(changed.keys().collect::<Vec<_>>(), vec![&user_ids[1]]);
        let both = changed_since(synced).await;
        assert_eq!(both.len(), 2);
        // The permission sets whose members changed moved too, and filter the same way.
        let groups_url = format!("{}/scim/v2/Groups", fixture.api);
        let filter = format!(
            "meta.lastModified gt \"{}\"",
            provost::util::times::rfc3339(synced)
        );
        let groups: Value = scim
            .get(&groups_url)
            .query(&[
                ("filter", filter.as_str()),
                ("excludedAttributes", "members"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let moved: BTreeSet<String> = groups["Resources"]
            .as_array()
            .unwrap_or_else(|| panic!("{groups}"))
            .iter()
            .map(|g| {
                g[provost::scim::schema::PROVOST_GROUP]["apiName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            moved,
            BTreeSet::from([pairs[0].1.clone(), pairs[1].1.clone()]),
            "{groups}"
        );

        // Migration 0018's backfill, from the history alone, finds the same two users.
        let url = db.url.clone();
        let dialect = if url.starts_with("sqlite") {
            "sqlite"
        } else {
            "postgres"
        };
        let migration = std::fs::read_to_string(format!(
            "{}/migrations/{dialect}/0018_account_changed_at.sql",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let start = migration.find("UPDATE accounts").expect("the backfill");
        let end = migration.find("CREATE INDEX").expect("the index");
        let entitlements = migration
            .find("UPDATE entitlements")
            .expect("the second backfill");
        let backfill = format!(
            "UPDATE accounts SET changed_at = NULL; UPDATE entitlements SET changed_at = NULL; {} {}",
            &migration[start..end],
            &migration[entitlements..]
        );
        {
            use sqlx::Connection;
            if url.starts_with("sqlite") {
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::raw_sql(&backfill).execute(&mut conn).await.unwrap();
            } else {
                let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                sqlx::raw_sql(&backfill).execute(&mut conn).await.unwrap();
            }
        }
        let backfilled = changed_since(synced).await;
        assert_eq!(
            backfilled.keys().collect::<BTreeSet<_>>(),
            both.keys().collect::<BTreeSet<_>>()
        );
        let groups: Value = scim
            .get(&groups_url)
            .query(&[
                ("filter", filter.as_str()),
                ("excludedAttributes", "members"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            groups["totalResults"].as_u64(),
            Some(moved.len() as u64),
            "the backfill finds the same groups: {groups}"
        );
    }
}

#[tokio::test]
async fn a_group_whose_components_changed_is_outdated_until_salesforce_recalculates_it_on_every_backend(
) {
    on_each_backend(|store| async move {
        let fixture = Fixture::start(store, |_| {}).await;
        let admin = |method: reqwest::Method, path: &str, body: Value| {
            let request = fixture
                .raw
                .request(method, format!("{}/__emulator{path}", fixture.sf))
                .json(&body);
            let path = path.to_owned();
            async move {
                let response = request.send().await.unwrap();
                let status = response.status();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                assert!(status.is_success(), "{path}: {status} {body}");
                body
            }
        };
        let held = fixture
            .rows("SELECT AssigneeId, PermissionSetGroupId FROM PermissionSetAssignment WHERE PermissionSetGroupId != null")
            .await;
        let (user, group) = (id(&held[0], "AssigneeId"), id(&held[0], "PermissionSetGroupId"));
        admin(reqwest::Method::POST, "/recalculate-groups", json!({})).await;
        // A new component that brings Manage Roles, which no generated group holds.
        let set = admin(
            reqwest::Method::POST,
            "/records/PermissionSet",
            json!({"Name": "Role_Managers", "Label": "Role Managers", "PermissionsManageRoles": true}),
        )
        .await;
        let set = set["id"].as_str().unwrap().to_owned();
        admin(
            reqwest::Method::POST,
            "/records/PermissionSetGroupComponent",
            json!({"PermissionSetGroupId": group, "PermissionSetId": set}),
        )
        .await;
        let path_row = || async {
            resync(&fixture).await;
            let params = Params {
                permission: Some("ManageRoles".into()),
                ..Params::default()
            };
            let (bytes, _) = generate(&fixture, Report::EffectivePermissions, &params, Format::Csv).await;
            parse_csv(&bytes)
                .into_iter()
                .find(|r| r["user_id"] == user && r["via_id"] == group && r["via_component_id"] == set)
                .expect("the path through the new component is reported")
        };
        let row = path_row().await;
        assert_eq!(
            (row["effective"].as_str(), row["group_status"].as_str(), row["muted_by"].as_str()),
            ("false", "Outdated", ""),
            "the aggregate has not taken the component in yet: {row:?}"
        );
        let recalculated = admin(reqwest::Method::POST, "/recalculate-groups", json!({})).await;
        assert!(recalculated["recalculated"].as_u64().unwrap() >= 1);
        let row = path_row().await;
        assert_eq!(
            (row["effective"].as_str(), row["group_status"].as_str()),
            ("true", "Updated"),
            "{row:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn access_reports_say_when_permissions_were_never_synced_or_not_yet_on_every_backend() {
    on_each_backend(|store| async move {
        let before = chrono::Utc::now();
        let off = Fixture::start(store.clone(), |config| {
            config.orgs[0].sync_access_permissions = false
        })
        .await;
        let err = provost::reports::generate(
            &off.store,
            "acme",
            Report::FieldAccess,
            &Params::default(),
            Format::Csv,
            Vec::new(),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("sync_access_permissions"), "{err}");
        // Turned on, the next sync reads them: the history of permissions starts there.
        let mut config = (*off.config).clone();
        config.orgs[0].sync_access_permissions = true;
        let between = chrono::Utc::now();
        provost::org::sync::sync_org(
            &config,
            &config.orgs[0],
            &off.store,
            &provost::org::sync::request_for(
                &config.orgs[0],
                provost::store::sync::SyncMode::Incremental,
                "test",
            ),
            false,
            &provost::sync::progress::LogObserver,
        )
        .await
        .unwrap();
        let (bytes, _) = generate(&off, Report::SetupAccess, &Params::default(), Format::Csv).await;
        assert!(!parse_csv(&bytes).is_empty());
        for (at, says) in [(before, "history starts"), (between, "first synced")] {
            let err = provost::reports::generate(
                &off.store,
                "acme",
                Report::SetupAccess,
                &Params {
                    as_of: Some(at),
                    ..Params::default()
                },
                Format::Csv,
                Vec::new(),
            )
            .await
            .unwrap_err();
            assert!(err.to_string().contains(says), "{err}");
        }
    })
    .await;
}
