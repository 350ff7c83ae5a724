//! Reports checked row by row against the emulator's org, with the ground truth computed here
//! from the emulator's own records (not from Provost's store or code); formulas neutralised;
//! the manifest catching a changed byte; the HTTP endpoint and its scope.

use std::collections::{BTreeSet, HashMap, HashSet};

use base64::Engine;
use provost::org::sync::{request_for, sync_org};
use provost::reports::manifest::{self, Manifest};
use provost::reports::output::Format;
use provost::reports::{self as reports, Params, Report};
use provost::store::sync::SyncMode;
use provost::sync::progress::LogObserver;
use provost_salesforce::preflight::EXTERNAL_USER_TYPES;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{bearer_client, on_each_backend, TestDatabase};
use crate::provisioning::{grant_body, Fixture};

/// CSV text as rows keyed by column name.
pub(crate) fn parse_csv(bytes: &[u8]) -> Vec<HashMap<String, String>> {
    let mut reader = csv::Reader::from_reader(bytes);
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            headers
                .iter()
                .zip(record.iter())
                .map(|(h, v)| (h.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

pub(crate) fn id(value: &Value, field: &str) -> String {
    value[field].as_str().unwrap_or_default().to_owned()
}

/// The org as the emulator holds it, read through its admin query path.
pub(crate) struct Truth {
    /// Internal users: id -> (active, profile id, last login).
    pub(crate) users: HashMap<String, (bool, String, Option<String>)>,
    /// (user, entitlement id, how held) for profiles, permission sets and groups.
    pub(crate) held: BTreeSet<(String, String, String)>,
    /// Users holding a permission set, a group or a public group.
    holding: HashSet<String>,
}

pub(crate) async fn truth(fixture: &Fixture) -> Truth {
    let mut users = HashMap::new();
    for user in fixture
        .rows("SELECT Id, IsActive, ProfileId, UserType, LastLoginDate FROM User")
        .await
    {
        if EXTERNAL_USER_TYPES.contains(&user["UserType"].as_str().unwrap_or_default()) {
            continue;
        }
        users.insert(
            id(&user, "Id"),
            (
                user["IsActive"] == json!(true),
                id(&user, "ProfileId"),
                user["LastLoginDate"].as_str().map(str::to_owned),
            ),
        );
    }
    let profile_owned: HashSet<String> = fixture
        .rows("SELECT Id FROM PermissionSet WHERE IsOwnedByProfile = true")
        .await
        .iter()
        .map(|r| id(r, "Id"))
        .collect();
    let group_names: HashMap<String, String> = fixture
        .rows("SELECT Id, DeveloperName FROM PermissionSetGroup")
        .await
        .iter()
        .map(|r| (id(r, "Id"), id(r, "DeveloperName")))
        .collect();
    let mut components: HashMap<String, Vec<String>> = HashMap::new();
    for component in fixture
        .rows("SELECT PermissionSetGroupId, PermissionSetId FROM PermissionSetGroupComponent")
        .await
    {
        components
            .entry(id(&component, "PermissionSetGroupId"))
            .or_default()
            .push(id(&component, "PermissionSetId"));
    }
    let mut held = BTreeSet::new();
    let mut holding = HashSet::new();
    for (user, (_, profile, _)) in &users {
        held.insert((user.clone(), profile.clone(), "direct".to_owned()));
    }
    for assignment in fixture
        .rows(
            "SELECT AssigneeId, PermissionSetId, PermissionSetGroupId FROM PermissionSetAssignment",
        )
        .await
    {
        let user = id(&assignment, "AssigneeId");
        let set = id(&assignment, "PermissionSetId");
        if !users.contains_key(&user) || profile_owned.contains(&set) {
            continue;
        }
        holding.insert(user.clone());
        match assignment["PermissionSetGroupId"].as_str() {
            Some(group) => {
                held.insert((user.clone(), group.to_owned(), "direct".to_owned()));
                // A muting set (0QM) among the components takes away; it grants nothing.
                for component in components
                    .get(group)
                    .into_iter()
                    .flatten()
                    .filter(|c| c.starts_with("0PS"))
                {
                    held.insert((
                        user.clone(),
                        component.clone(),
                        format!("permission_set_group:{}", group_names[group]),
                    ));
                }
            }
            None => {
                held.insert((user, set, "direct".to_owned()));
            }
        }
    }
    let public: HashSet<String> = fixture
        .rows("SELECT Id FROM Group WHERE Type = 'Regular'")
        .await
        .iter()
        .map(|r| id(r, "Id"))
        .collect();
    for member in fixture
        .rows("SELECT GroupId, UserOrGroupId FROM GroupMember")
        .await
    {
        let user = id(&member, "UserOrGroupId");
        if public.contains(&id(&member, "GroupId")) && users.contains_key(&user) {
            holding.insert(user);
        }
    }
    Truth {
        users,
        held,
        holding,
    }
}

/// An incremental sync of the fixture's org, as a schedule would run it.
pub(crate) async fn resync(fixture: &Fixture) {
    let org_cfg = fixture.config.orgs[0].clone();
    sync_org(
        &fixture.config,
        &org_cfg,
        &fixture.store,
        &request_for(&org_cfg, SyncMode::Incremental, "test"),
        false,
        &LogObserver,
    )
    .await
    .unwrap();
}

pub(crate) async fn generate(
    fixture: &Fixture,
    report: Report,
    params: &Params,
    format: Format,
) -> (Vec<u8>, Manifest) {
    let mut bytes = Vec::new();
    let manifest = reports::generate(&fixture.store, "acme", report, params, format, &mut bytes)
        .await
        .unwrap();
    (bytes, manifest)
}

#[tokio::test]
async fn entitlements_and_dormant_reports_match_the_org_row_by_row_on_every_backend() {
    on_each_backend(|store| async move {
        let fixture = Fixture::start(store, |_| {}).await;
        // A label a spreadsheet would run, set in Salesforce behind Provost's back.
        let sets = fixture
            .rows("SELECT Id FROM PermissionSet WHERE IsOwnedByProfile = false")
            .await;
        let relabelled = id(&sets[0], "Id");
        let response = fixture
            .raw
            .patch(format!(
                "{}/__emulator/records/PermissionSet/{relabelled}",
                fixture.sf
            ))
            .json(&json!({"Label": "=HYPERLINK(\"http://evil\",\"x\")"}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        // A grant made through Provost.
        let pairs = fixture.grantable_pairs(1).await;
        let shown = fixture
            .carry_out(grant_body(&pairs[0].0, "permission_set", &pairs[0].1))
            .await;
        assert_eq!(shown["state"], "completed", "{shown}");
        let request_id = shown["id"].as_i64().unwrap();
        resync(&fixture).await;

        let truth = truth(&fixture).await;
        let (bytes, manifest) = generate(
            &fixture,
            Report::Entitlements,
            &Params::default(),
            Format::Csv,
        )
        .await;
        let rows = parse_csv(&bytes);
        assert_eq!(manifest.rows as usize, rows.len());
        assert_eq!(manifest.sha256, provost::util::hex(&Sha256::digest(&bytes)));
        let reviewed = ["profile", "permission_set", "permission_set_group"];
        let reported: BTreeSet<(String, String, String)> = rows
            .iter()
            .filter(|r| reviewed.contains(&r["entitlement_type"].as_str()))
            .map(|r| {
                (
                    r["user_id"].clone(),
                    r["entitlement_id"].clone(),
                    r["held_through"].clone(),
                )
            })
            .collect();
        let missing: Vec<_> = truth.held.difference(&reported).take(5).collect();
        let extra: Vec<_> = reported.difference(&truth.held).take(5).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "missing {missing:?}, extra {extra:?}"
        );
        assert!(truth.held.len() > 100, "a real org: {}", truth.held.len());
        // Every user column agrees with the org.
        for row in &rows {
            let (active, profile, last_login) = &truth.users[&row["user_id"]];
            assert_eq!(row["active"], active.to_string());
            assert_eq!(row["last_login"], last_login.clone().unwrap_or_default());
            assert!(!row["profile"].is_empty(), "{row:?}");
            assert!(truth.held.contains(&(
                row["user_id"].clone(),
                profile.clone(),
                "direct".into()
            )));
        }
        // The formula is shown as text, in every row that carries it.
        let labelled: Vec<_> = rows
            .iter()
            .filter(|r| r["entitlement_id"] == relabelled)
            .collect();
        for row in &labelled {
            assert_eq!(
                row["entitlement_label"],
                "'=HYPERLINK(\"http://evil\",\"x\")"
            );
        }
        // The Provost grant names its request and since when it is held.
        let user = fixture
            .users()
            .await
            .into_iter()
            .find(|u| u.username == pairs[0].0)
            .unwrap();
        let granted = rows
            .iter()
            .find(|r| {
                r["user_id"] == user.id
                    && r["entitlement_api_name"] == pairs[0].1
                    && r["held_through"] == "direct"
            })
            .unwrap();
        assert_eq!(granted["request_id"], request_id.to_string());
        assert!(!granted["assigned_since"].is_empty());
        assert!(rows.iter().filter(|r| !r["request_id"].is_empty()).count() == 1);

        // Filters: one entitlement, active users only.
        let set_rows: Vec<_> = rows
            .iter()
            .filter(|r| r["entitlement_api_name"] == pairs[0].1)
            .collect();
        let (bytes, _) = generate(
            &fixture,
            Report::Entitlements,
            &Params {
                entitlement: Some(pairs[0].1.clone()),
                active_only: true,
                ..Params::default()
            },
            Format::Ndjson,
        )
        .await;
        let filtered: Vec<Value> = bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(
            filtered.len(),
            set_rows.iter().filter(|r| r["active"] == "true").count()
        );
        assert!(filtered
            .iter()
            .all(|r| r["entitlement_api_name"] == json!(pairs[0].1)));

        // Dormant, 30 days: computed here from the users' last logins and what they hold.
        let cutoff = chrono::Utc::now() - chrono::TimeDelta::days(30);
        let expected: BTreeSet<String> = truth
            .users
            .iter()
            .filter(|(user, (active, _, last))| {
                *active
                    && truth.holding.contains(*user)
                    && last
                        .as_deref()
                        .and_then(provost_connector::times::parse_datetime)
                        .is_none_or(|at| at < cutoff)
            })
            .map(|(user, _)| user.clone())
            .collect();
        let (bytes, manifest) = generate(
            &fixture,
            Report::Dormant,
            &Params {
                days: Some(30),
                ..Params::default()
            },
            Format::Json,
        )
        .await;
        let dormant: Vec<Value> = serde_json::from_slice(&bytes).unwrap();
        let reported: BTreeSet<String> = dormant.iter().map(|r| id(r, "user_id")).collect();
        assert_eq!(reported, expected);
        assert!(!expected.is_empty(), "the org has dormant users to find");
        assert_eq!(manifest.parameters, json!({"days": 30}));
        fixture.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_report_endpoint_sends_the_file_with_its_manifest_which_catches_a_changed_byte() {
    let db = crate::helpers::TestDatabase::sqlite().await;
    let fixture = Fixture::start(db.store().await, |_| {}).await;
    let url = format!(
        "{}/api/v1/orgs/acme/reports/entitlements?format=csv",
        fixture.api
    );
    // The scope is checked.
    let status = fixture.raw.get(&url).send().await.unwrap().status();
    assert_eq!(status, 401);
    let writer = bearer_client(&fixture.store, "writer", &["requests:write"]).await;
    assert_eq!(writer.get(&url).send().await.unwrap().status(), 403);
    let auditor = bearer_client(&fixture.store, "auditor", &["reports:read"]).await;
    for (path, status, code) in [
        ("/api/v1/orgs/acme/reports/nope", 404, "not_found"),
        (
            "/api/v1/orgs/acme/reports/entitlements?format=xlsx",
            400,
            "bad_request",
        ),
        ("/api/v1/orgs/acme/reports/dormant", 400, "bad_request"),
        // Numbers have ranges: a huge one is a 400, not a panic (it overflowed the date).
        (
            "/api/v1/orgs/acme/reports/dormant?days=4500000",
            400,
            "bad_request",
        ),
        (
            "/api/v1/orgs/acme/reports/dormant?days=99999999999",
            400,
            "bad_request",
        ),
        (
            "/api/v1/orgs/acme/reports/dormant?days=-1",
            400,
            "bad_request",
        ),
        (
            "/api/v1/orgs/acme/reports/dormant?days=ten",
            400,
            "bad_request",
        ),
        (
            "/api/v1/orgs/acme/reports/entitlements?entitlement=NoSuchSet",
            400,
            "bad_request",
        ),
        ("/api/v1/orgs/ghost/reports/entitlements", 404, "not_found"),
    ] {
        let response = auditor
            .get(format!("{}{path}", fixture.api))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
    }

    let response = auditor.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert!(headers["content-disposition"]
        .to_str()
        .unwrap()
        .contains("acme-entitlements-"));
    let encoded = headers["provost-manifest"].to_str().unwrap().to_owned();
    let bytes = response.bytes().await.unwrap().to_vec();
    let manifest: Manifest = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        headers["provost-report-sha256"].to_str().unwrap(),
        manifest.sha256
    );
    assert_eq!(manifest.sha256, provost::util::hex(&Sha256::digest(&bytes)));
    assert_eq!(manifest.rows as usize, parse_csv(&bytes).len());
    assert_eq!(manifest.org, "acme");
    assert!(manifest.sync_run.is_some() && manifest.data_as_of.is_some());

    // Saved with its manifest, the file verifies; one changed byte does not.
    let file = fixture.dir.path().join("entitlements.csv");
    std::fs::write(&file, &bytes).unwrap();
    std::fs::write(
        manifest::path_of(&file),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    let checked = manifest::verify(&file, None).unwrap();
    assert!(checked.ok, "{checked:?}");
    let mut changed = bytes.clone();
    let at = changed.len() / 2;
    changed[at] = if changed[at] == b'x' { b'y' } else { b'x' };
    std::fs::write(&file, &changed).unwrap();
    let checked = manifest::verify(&file, None).unwrap();
    assert!(!checked.ok);
    assert!(
        checked.problems[0].contains("SHA-256"),
        "{:?}",
        checked.problems
    );
    fixture.stop().await;
}

#[tokio::test]
async fn effective_permissions_name_every_path_to_each_permission_on_every_backend() {
    on_each_backend(|store| async move {
        let fixture = Fixture::start(store, |_| {}).await;
        let fields: Vec<&str> = provost::reports::PERMISSIONS
            .iter()
            .map(|(f, _)| *f)
            .collect();
        let sets = fixture
            .rows(&format!(
                "SELECT Id, IsOwnedByProfile, ProfileId, {} FROM PermissionSet",
                fields.join(", ")
            ))
            .await;
        let perms_of = |set: &str| -> Vec<String> {
            sets.iter()
                .find(|s| id(s, "Id") == set)
                .map(|s| {
                    fields
                        .iter()
                        .filter(|f| s[**f] == json!(true))
                        .map(|f| (*f).to_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        let profile_set: HashMap<String, String> = sets
            .iter()
            .filter(|s| s["IsOwnedByProfile"] == json!(true))
            .map(|s| (id(s, "ProfileId"), id(s, "Id")))
            .collect();
        let truth = truth(&fixture).await;
        let mut expected: BTreeSet<(String, String, String, String, String)> = BTreeSet::new();
        for (user, entitlement, through) in &truth.held {
            let (via_type, via_id, component, set) = if let Some(set) = profile_set.get(entitlement)
            {
                ("profile", entitlement.clone(), String::new(), set.clone())
            } else if through == "direct" {
                (
                    "permission_set",
                    entitlement.clone(),
                    String::new(),
                    entitlement.clone(),
                )
            } else {
                let group_name = through.trim_start_matches("permission_set_group:");
                let group = fixture
                    .rows(&format!(
                        "SELECT Id FROM PermissionSetGroup WHERE DeveloperName = '{group_name}'"
                    ))
                    .await;
                (
                    "permission_set_group",
                    id(&group[0], "Id"),
                    entitlement.clone(),
                    entitlement.clone(),
                )
            };
            for field in perms_of(&set) {
                expected.insert((
                    user.clone(),
                    field,
                    via_type.to_owned(),
                    via_id.clone(),
                    component.clone(),
                ));
            }
        }
        let (bytes, _) = generate(
            &fixture,
            Report::EffectivePermissions,
            &Params::default(),
            Format::Csv,
        )
        .await;
        let rows = parse_csv(&bytes);
        let reported: BTreeSet<(String, String, String, String, String)> = rows
            .iter()
            .map(|r| {
                (
                    r["user_id"].clone(),
                    r["permission_field"].clone(),
                    r["via_type"].clone(),
                    r["via_id"].clone(),
                    r["via_component_id"].clone(),
                )
            })
            .collect();
        assert_eq!(reported.len(), rows.len(), "no row twice");
        let missing: Vec<_> = expected.difference(&reported).take(5).collect();
        let extra: Vec<_> = reported.difference(&expected).take(5).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "missing {missing:?}, extra {extra:?}"
        );
        for via in ["profile", "permission_set", "permission_set_group"] {
            assert!(
                rows.iter().any(|r| r["via_type"] == via),
                "some permission comes through a {via}"
            );
        }

        // One permission, named as Setup names it.
        let (bytes, manifest) = generate(
            &fixture,
            Report::EffectivePermissions,
            &Params {
                permission: Some("modify all data".into()),
                ..Params::default()
            },
            Format::Csv,
        )
        .await;
        let mad = parse_csv(&bytes);
        assert_eq!(
            mad.len(),
            rows.iter()
                .filter(|r| r["permission_field"] == "PermissionsModifyAllData")
                .count()
        );
        assert!(!mad.is_empty());
        assert!(mad.iter().all(|r| r["permission"] == "Modify All Data"));
        assert_eq!(
            manifest.parameters,
            json!({"permission": "modify all data"})
        );
        let err = reports::generate(
            &fixture.store,
            "acme",
            Report::EffectivePermissions,
            &Params {
                permission: Some("Fly".into()),
                ..Params::default()
            },
            Format::Csv,
            Vec::new(),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("ModifyAllData"), "{err}");
        fixture.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_changes_report_tells_provost_changes_from_direct_ones_on_every_backend() {
    on_each_backend(|store| async move {
        let fixture = Fixture::start(store, |_| {}).await;
        let start = chrono::Utc::now();
        let pairs = fixture.grantable_pairs(1).await;
        let shown = fixture
            .carry_out(json!({
                "action": "grant",
                "user": pairs[0].0,
                "entitlement": {"type": "permission_set", "name": pairs[0].1},
                "ticket": "CHG-42",
            }))
            .await;
        assert_eq!(shown["state"], "completed", "{shown}");
        let request_id = shown["id"].as_i64().unwrap();

        // Behind Provost's back, as an admin in Setup: one assignment removed, one made, a user
        // deactivated, one frozen, one moved to another profile.
        let admin = |method: reqwest::Method, path: String, body: Value| {
            let request = fixture
                .raw
                .request(method, format!("{}/__emulator/records/{path}", fixture.sf))
                .json(&body);
            async move {
                let response = request.send().await.unwrap();
                assert!(response.status().is_success(), "{path}");
                response.json::<Value>().await.unwrap_or(Value::Null)
            }
        };
        let users = fixture.users().await;
        let (u1, u2, u3, u4) = (&users[1].id, &users[2].id, &users[3].id, &users[4].id);
        let removed = fixture
            .rows(&format!(
                "SELECT Id, PermissionSetId FROM PermissionSetAssignment WHERE AssigneeId = '{u1}' \
                 AND PermissionSetGroupId = null AND PermissionSet.IsOwnedByProfile = false"
            ))
            .await;
        let removed = removed.first().expect("the user has a permission set");
        admin(reqwest::Method::DELETE, format!("PermissionSetAssignment/{}", id(removed, "Id")), json!({})).await;
        let held: HashSet<String> = fixture
            .rows(&format!("SELECT PermissionSetId FROM PermissionSetAssignment WHERE AssigneeId = '{u2}'"))
            .await
            .iter()
            .map(|r| id(r, "PermissionSetId"))
            .collect();
        let added = fixture
            .free_sets()
            .await
            .into_iter()
            .find(|s| !held.contains(&s.id))
            .unwrap();
        admin(
            reqwest::Method::POST,
            "PermissionSetAssignment".into(),
            json!({"AssigneeId": u2, "PermissionSetId": added.id}),
        )
        .await;
        admin(reqwest::Method::PATCH, format!("User/{u3}"), json!({"IsActive": false})).await;
        let login = fixture
            .rows(&format!("SELECT Id FROM UserLogin WHERE UserId = '{u4}'"))
            .await;
        admin(reqwest::Method::PATCH, format!("UserLogin/{}", id(&login[0], "Id")), json!({"IsFrozen": true})).await;
        let before_profile = users[1].attributes["ProfileId"].as_str().unwrap().to_owned();
        let other_profile = fixture
            .rows(&format!(
                "SELECT ProfileId FROM User WHERE ProfileId != '{before_profile}' AND UserType = 'Standard'"
            ))
            .await;
        let after_profile = id(&other_profile[0], "ProfileId");
        admin(reqwest::Method::PATCH, format!("User/{u1}"), json!({"ProfileId": after_profile})).await;

        resync(&fixture).await;

        let (bytes, manifest) = generate(
            &fixture,
            Report::Changes,
            &Params { since: Some(start), ..Params::default() },
            Format::Csv,
        )
        .await;
        let rows = parse_csv(&bytes);
        let seen: BTreeSet<(String, String, String, String)> = rows
            .iter()
            .map(|r| {
                (
                    r["change"].clone(),
                    r["user_id"].clone(),
                    r["entitlement_id"].clone(),
                    r["origin"].clone(),
                )
            })
            .collect();
        let granted_user = users.iter().find(|u| u.username == pairs[0].0).unwrap();
        let granted_set = fixture
            .entitlements(provost_connector::model::EntitlementKind::PermissionSet)
            .await
            .into_iter()
            .find(|s| s.api_name == pairs[0].1)
            .unwrap();
        let s = |a: &str, b: &str, c: &str, d: &str| (a.to_owned(), b.to_owned(), c.to_owned(), d.to_owned());
        let expected: BTreeSet<_> = [
            s("grant_added", &granted_user.id, &granted_set.id, "provost"),
            s("grant_removed", u1, &id(removed, "PermissionSetId"), "salesforce"),
            s("grant_added", u2, &added.id, "salesforce"),
            s("user_deactivated", u3, "", "salesforce"),
            s("user_frozen", u4, "", "salesforce"),
            s("grant_changed", u1, &after_profile, "salesforce"),
        ]
        .into_iter()
        .collect();
        assert_eq!(seen, expected, "{}", String::from_utf8_lossy(&bytes));
        assert_eq!(rows.len(), expected.len());
        let provost = rows.iter().find(|r| r["origin"] == "provost").unwrap();
        assert_eq!(provost["request_id"], request_id.to_string());
        assert_eq!(provost["requester"], "flow");
        assert_eq!(provost["approver"], "manager");
        assert_eq!(provost["ticket"], "CHG-42");
        assert!(provost["sync_run"].is_empty());
        let profile = rows.iter().find(|r| r["change"] == "grant_changed").unwrap();
        assert_eq!(profile["previous_entitlement_id"], before_profile);
        assert_eq!(profile["entitlement_type"], "profile");
        assert!(!profile["sync_run"].is_empty());
        let deactivated = rows.iter().find(|r| r["change"] == "user_deactivated").unwrap();
        assert_eq!(deactivated["before"], r#"{"active":true}"#);
        assert_eq!(deactivated["after"], r#"{"active":false}"#);
        assert!(manifest.parameters["since"].is_string());

        // The entitlements report says since when each grant is held as it is: the profile
        // changed in Salesforce since the resync that saw it (its grant id stayed), the
        // Provost grant since its request's change, and the rest since the first sync.
        let (bytes, _) =
            generate(&fixture, Report::Entitlements, &Params::default(), Format::Csv).await;
        let held = parse_csv(&bytes);
        let row_of = |user: &str, entitlement: &str| {
            held.iter()
                .find(|r| r["user_id"] == user && r["entitlement_id"] == entitlement)
                .unwrap_or_else(|| panic!("{user} holds {entitlement}"))
        };
        let changed = row_of(u1, &after_profile);
        assert_eq!(changed["assigned_since"], profile["observed_at"]);
        assert!(changed["request_id"].is_empty());
        let granted = row_of(&granted_user.id, &granted_set.id);
        assert_eq!(granted["assigned_since"], provost["observed_at"]);
        assert_eq!(granted["request_id"], request_id.to_string());
        let at = |text: &str| {
            provost_connector::times::parse_rfc3339(text)
                .unwrap_or_else(|| panic!("a time: {text:?}"))
        };
        let untouched: Vec<_> = held
            .iter()
            .filter(|r| r["user_id"] != *u1 && r["user_id"] != *u2 && r["request_id"].is_empty())
            .collect();
        assert!(untouched.len() > 100);
        assert!(untouched
            .iter()
            .all(|r| at(&r["assigned_since"]) < at(&profile["observed_at"])));

        // A window that ends before the org was first synced holds nothing; one that ends
        // at `start` holds the first sync's creations and none of the changes after it.
        let (bytes, _) = generate(
            &fixture,
            Report::Changes,
            &Params {
                since: Some(start - chrono::TimeDelta::hours(2)),
                until: Some(start - chrono::TimeDelta::hours(1)),
                ..Params::default()
            },
            Format::Csv,
        )
        .await;
        assert!(parse_csv(&bytes).is_empty(), "{}", String::from_utf8_lossy(&bytes));
        let (bytes, _) = generate(
            &fixture,
            Report::Changes,
            &Params {
                since: Some(start - chrono::TimeDelta::hours(1)),
                until: Some(start),
                ..Params::default()
            },
            Format::Csv,
        )
        .await;
        let first = parse_csv(&bytes);
        assert!(first.iter().all(|r| r["sync_run"] == "1" && r["change"].ends_with("_created") || r["change"] == "grant_added"));
        assert_eq!(
            first.iter().filter(|r| r["change"] == "user_created").count(),
            fixture.store.list_accounts(fixture.org.id, provost::store::Page::first(100_000)).await.unwrap().len()
        );
        fixture.stop().await;
    })
    .await;
}

#[tokio::test]
async fn as_of_rebuilds_who_held_what_across_a_grant_added_and_removed_on_every_backend() {
    on_each_backend(|store| async move {
        let fixture = Fixture::start(store, |_| {}).await;
        let pause = || tokio::time::sleep(std::time::Duration::from_millis(20));
        pause().await;
        let before = chrono::Utc::now();
        pause().await;
        let pairs = fixture.grantable_pairs(1).await;
        let shown = fixture
            .carry_out(grant_body(&pairs[0].0, "permission_set", &pairs[0].1))
            .await;
        assert_eq!(shown["state"], "completed", "{shown}");
        let request_id = shown["id"].as_i64().unwrap().to_string();
        let assignment = shown["result"]["record_id"].as_str().unwrap().to_owned();
        pause().await;
        let held_then = chrono::Utc::now();
        pause().await;
        // Removed in Salesforce, seen by the next sync.
        fixture
            .remove_in_salesforce("PermissionSetAssignment", &assignment)
            .await;
        resync(&fixture).await;
        pause().await;
        let after = chrono::Utc::now();

        let as_of = |at| Params {
            as_of: Some(at),
            ..Params::default()
        };
        let rows_at = |bytes: Vec<u8>| -> BTreeSet<Vec<(String, String)>> {
            parse_csv(&bytes)
                .into_iter()
                .map(|row| {
                    let mut cells: Vec<_> = row.into_iter().collect();
                    cells.sort();
                    cells
                })
                .collect()
        };
        let grant_rows = |rows: &BTreeSet<Vec<(String, String)>>| -> Vec<Vec<(String, String)>> {
            rows.iter()
                .filter(|r| r.contains(&("grant_id".to_owned(), assignment.clone())))
                .cloned()
                .collect()
        };
        let (bytes, _) =
            generate(&fixture, Report::Entitlements, &as_of(before), Format::Csv).await;
        assert!(
            grant_rows(&rows_at(bytes)).is_empty(),
            "not held before it was granted"
        );
        let (bytes, manifest) = generate(
            &fixture,
            Report::Entitlements,
            &as_of(held_then),
            Format::Csv,
        )
        .await;
        let then = grant_rows(&rows_at(bytes));
        assert_eq!(then.len(), 1, "held while granted");
        assert!(then[0].contains(&("request_id".to_owned(), request_id.clone())));
        assert!(then[0].contains(&("entitlement_api_name".to_owned(), pairs[0].1.clone())));
        assert!(manifest.parameters["as_of"].is_string());
        let (bytes, _) = generate(&fixture, Report::Entitlements, &as_of(after), Format::Csv).await;
        let now_rebuilt = rows_at(bytes);
        assert!(
            grant_rows(&now_rebuilt).is_empty(),
            "gone after its removal"
        );

        // Rebuilt as of now, the history gives exactly the live model.
        let (bytes, _) = generate(
            &fixture,
            Report::Entitlements,
            &Params::default(),
            Format::Csv,
        )
        .await;
        let live = rows_at(bytes);
        assert_eq!(now_rebuilt.len(), live.len());
        assert_eq!(now_rebuilt, live);
        let (bytes, _) = generate(
            &fixture,
            Report::EffectivePermissions,
            &as_of(after),
            Format::Csv,
        )
        .await;
        let (live_bytes, _) = generate(
            &fixture,
            Report::EffectivePermissions,
            &Params::default(),
            Format::Csv,
        )
        .await;
        assert_eq!(rows_at(bytes), rows_at(live_bytes));

        // Mistakes are named.
        for (report, params, says) in [
            (
                Report::Entitlements,
                as_of(chrono::Utc::now() + chrono::TimeDelta::days(1)),
                "future",
            ),
            (
                Report::Dormant,
                Params {
                    days: Some(30),
                    ..as_of(before)
                },
                "applies to the reports of who holds what",
            ),
        ] {
            let err = reports::generate(
                &fixture.store,
                "acme",
                report,
                &params,
                Format::Csv,
                Vec::new(),
            )
            .await
            .unwrap_err();
            assert!(err.to_string().contains(says), "{err}");
        }
        fixture.stop().await;
    })
    .await;
}

/// A database migrated before grants kept `since` and `request_id`: migration 0010 fills them
/// in from the history, and the entitlements report comes out byte for byte as it does when the
/// sync and the executor set them.
#[tokio::test]
async fn migrating_fills_in_since_and_request_of_stored_grants_from_their_history() {
    for db in TestDatabase::all().await {
        let store = db.store().await;
        let fixture = Fixture::start(store.clone(), |_| {}).await;
        let pairs = fixture.grantable_pairs(1).await;
        let shown = fixture
            .carry_out(grant_body(&pairs[0].0, "permission_set", &pairs[0].1))
            .await;
        assert_eq!(shown["state"], "completed", "{shown}");
        let users = fixture.users().await;
        let profile = users[1].attributes["ProfileId"]
            .as_str()
            .unwrap()
            .to_owned();
        let other = fixture
            .rows(&format!(
                "SELECT ProfileId FROM User WHERE ProfileId != '{profile}' AND UserType = 'Standard'"
            ))
            .await;
        let response = fixture
            .raw
            .patch(format!(
                "{}/__emulator/records/User/{}",
                fixture.sf, users[1].id
            ))
            .json(&json!({"ProfileId": id(&other[0], "ProfileId")}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        resync(&fixture).await;
        let all = Params::default();
        let report = || generate(&fixture, Report::Entitlements, &all, Format::Csv);
        let (kept, _) = report().await;

        let dialect = if db.url.starts_with("sqlite") {
            "sqlite"
        } else {
            "postgres"
        };
        let migration = std::fs::read_to_string(format!(
            "{}/migrations/{dialect}/0010_grant_since.sql",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let backfill = &migration[migration.find("UPDATE grants").expect("the backfill")..];
        let run = |sql: String| {
            let url = db.url.clone();
            async move {
                use sqlx::Connection;
                if url.starts_with("sqlite") {
                    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                    sqlx::raw_sql(&sql).execute(&mut conn).await.unwrap();
                } else {
                    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                    sqlx::raw_sql(&sql).execute(&mut conn).await.unwrap();
                }
            }
        };
        run("UPDATE grants SET since = NULL, request_id = NULL".to_owned()).await;
        let (cleared, _) = report().await;
        let rows = parse_csv(&cleared);
        assert!(rows
            .iter()
            .all(|r| r["assigned_since"].is_empty() && r["request_id"].is_empty()));
        run(backfill.to_owned()).await;
        let (filled, _) = report().await;
        assert_eq!(parse_csv(&kept).len(), rows.len());
        assert!(
            filled == kept,
            "the backfilled report differs from the one the sync and executor made"
        );
        fixture.stop().await;
        store.close().await;
        db.drop_database().await;
    }
}
