//! Access reviews through the real HTTP API against the emulator, on both backends: items and
//! reviewers checked against ground truth read from the emulator's records (assignments,
//! managers), every refusal, decisions one and many at once, a revocation carried out in the
//! emulator, a grant removed behind the campaign's back, close policies, the report and its
//! manifest, the audit entries, reminders, overdue notices and a recurring run.

use std::collections::{BTreeSet, HashMap};

use provost::reviews::campaigns;
use serde_json::{json, Value};

use crate::helpers::{bearer_client, on_each_backend};
use crate::provisioning::Fixture;
use crate::reports::{id, parse_csv, resync, truth};

const BASE: &str = "/api/v1/orgs/acme/reviews";

async fn call(
    fixture: &Fixture,
    client: &reqwest::Client,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client.request(method, format!("{}{path}", fixture.api));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn post(
    fixture: &Fixture,
    client: &reqwest::Client,
    path: &str,
    body: Value,
) -> (u16, Value) {
    call(fixture, client, reqwest::Method::POST, path, Some(body)).await
}

async fn get(fixture: &Fixture, client: &reqwest::Client, path: &str) -> (u16, Value) {
    call(fixture, client, reqwest::Method::GET, path, None).await
}

/// A client acting for `subject` with `scopes`.
async fn person(fixture: &Fixture, name: &str, subject: &str, scopes: &[&str]) -> reqwest::Client {
    let token = provost::tokens::generate();
    let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
    fixture
        .store
        .create_token_for(name, &provost::tokens::hash(&token), &scopes, Some(subject))
        .await
        .unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// The emulator's internal users (those the sync reads): id to (lower-case username, active,
/// manager id).
async fn users(fixture: &Fixture) -> HashMap<String, (String, bool, Option<String>)> {
    fixture
        .rows("SELECT Id, Username, IsActive, ManagerId, UserType FROM User")
        .await
        .iter()
        .filter(|u| {
            !provost_salesforce::preflight::EXTERNAL_USER_TYPES
                .contains(&u["UserType"].as_str().unwrap_or_default())
        })
        .map(|u| {
            (
                id(u, "Id"),
                (
                    id(u, "Username").to_lowercase(),
                    u["IsActive"] == json!(true),
                    u["ManagerId"].as_str().map(str::to_owned),
                ),
            )
        })
        .collect()
}

async fn all_items(fixture: &Fixture, campaign: i64) -> Vec<provost::reviews::model::ReviewItem> {
    let mut items = Vec::new();
    let mut after = 0;
    loop {
        let page = fixture
            .store
            .campaign_items(campaign, after, 1000)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = last.id;
        items.extend(page);
    }
    items
}

#[tokio::test]
async fn a_campaign_goes_from_draft_to_evidence_with_revocations_carried_out_on_every_backend() {
    on_each_backend(|store| async move {
        let fixture = Fixture::start(store, |config| {
            // An org configured and never synced.
            let mut never = config.orgs[0].clone();
            never.name = "never".into();
            config.orgs.push(never);
        })
        .await;
        let admin = bearer_client(&fixture.store, "review-admin", &["reviews:admin", "reports:read"]).await;
        let fallback = person(&fixture, "fallback", "secops-fallback", &["reviews:decide"]).await;

        // Ground truth: each internal user's direct permission set assignments, and managers.
        let expected: BTreeSet<(String, String)> = truth(&fixture)
            .await
            .held
            .into_iter()
            .filter(|(_, via, how)| how == "direct" && via.starts_with("0PS"))
            .map(|(user, via, _)| (user, via))
            .collect();
        assert!(expected.len() > 20, "the org has permission set grants");
        let people = users(&fixture).await;

        let definition = json!({
            "name": "Q1 permission sets",
            "scope": {"entitlement_types": ["permission_set"]},
            "reviewers": {"stages": ["manager"], "fallback": ["secops-fallback"]},
            "duration_days": 14,
            "close_policy": "keep",
            "max_items": 5,
        });
        // Bad definitions are refused with what to do.
        for (bad, says) in [
            (json!({"name": "x", "reviewers": {"stages": ["manager"], "fallback": []}, "duration_days": 3}), "fallback"),
            (json!({"name": "x", "reviewers": {"stages": [], "fallback": ["a"]}, "duration_days": 3}), "stages"),
            (json!({"name": "x", "reviewers": {"stages": ["manager"], "fallback": ["a"]}}), "due"),
            (json!({"name": "x", "scope": {"entitlement_types": ["castle"]}, "reviewers": {"stages": ["manager"], "fallback": ["a"]}, "duration_days": 3}), "castle"),
            (json!({"name": "x", "scope": {"entitlements": ["No_Such_Set"]}, "reviewers": {"stages": ["manager"], "fallback": ["a"]}, "duration_days": 3}), "No_Such_Set"),
            (json!({"name": "x", "scope": {"permissions": ["FlyToTheMoon"]}, "reviewers": {"stages": ["manager"], "fallback": ["a"]}, "duration_days": 3}), "FlyToTheMoon"),
            (json!({"name": "x", "reviewers": {"stages": ["reviewers"], "fallback": ["a"]}, "duration_days": 3}), "reviewers.reviewers"),
            (json!({"name": "x", "reviewers": {"stages": ["manager"], "fallback": ["a"]}, "duration_days": 3, "colour": "red"}), "colour"),
            (json!({"name": "x", "reviewers": {"stages": ["manager"], "fallback": ["nobody@acme.example.com"]}, "duration_days": 3}), "not a user of the org"),
            (json!({"name": "x", "reviewers": {"stages": ["manager", "manager"], "fallback": ["a"]}, "duration_days": 3}), "twice"),
            (json!({"name": "x", "scope": {"users": ["nobody@acme.example.com"]}, "reviewers": {"stages": ["manager"], "fallback": ["a"]}, "duration_days": 3}), "not a user"),
            (json!({"name": "x", "reviewers": {"stages": ["owner"], "owners": {"No_Such_Set": "a"}, "fallback": ["a"]}, "duration_days": 3}), "No_Such_Set"),
            (json!(null), "campaign"),
            (json!({}), "campaign"),
        ] {
            let (status, body) = post(&fixture, &admin, &format!("{BASE}/campaigns"), bad.clone()).await;
            assert_eq!(status, 400, "{bad} -> {body}");
            assert!(body.to_string().contains(says), "{bad} -> {body}");
        }
        // A reviewer cannot define campaigns.
        let (status, _) = post(&fixture, &fallback, &format!("{BASE}/campaigns"), definition.clone()).await;
        assert_eq!(status, 403);

        // An org never synced has nothing to review.
        let (status, draft) = post(&fixture, &admin, "/api/v1/orgs/never/reviews/campaigns", definition.clone()).await;
        assert_eq!(status, 201, "{draft}");
        let (status, body) = post(&fixture, &admin, &format!("/api/v1/orgs/never/reviews/campaigns/{}/start", draft["id"]), json!({})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("not_synced")), "{body}");

        let (status, draft) = post(&fixture, &admin, &format!("{BASE}/campaigns"), definition.clone()).await;
        assert_eq!(status, 201, "{draft}");
        assert_eq!(draft["state"], "draft");
        let id = draft["id"].as_i64().unwrap();
        // More items than max_items: refused unless forced.
        let (status, body) = post(&fixture, &admin, &format!("{BASE}/campaigns/{id}/start"), json!({})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("scope_too_large")), "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(&expected.len().to_string()), "{body}");
        let (status, started) = post(&fixture, &admin, &format!("{BASE}/campaigns/{id}/start"), json!({"force": true})).await;
        assert_eq!(status, 200, "{started}");
        assert_eq!(started["state"], "active");
        assert!(started["data_as_of"].is_string(), "says when the data is from");
        let (status, body) = post(&fixture, &admin, &format!("{BASE}/campaigns/{id}/start"), json!({})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (409, Some("wrong_state")));

        // One item per (user, permission set) held directly, frozen now.
        let items = all_items(&fixture, id).await;
        let got: BTreeSet<(String, String)> = items.iter().map(|i| (i.account_id.clone(), i.entitlement_id.clone())).collect();
        assert_eq!(got, expected);
        assert_eq!(items.len(), expected.len(), "no item twice");
        assert_eq!(started["summary"]["items"], json!(expected.len()));
        // Each goes to the user's active manager, else to the fallback; never to the user.
        for item in &items {
            let (username, _, manager) = &people[&item.account_id];
            let manager = manager.as_ref().and_then(|m| people.get(m)).filter(|(_, active, _)| *active);
            let want = match manager {
                Some((name, _, _)) if name != username => name.clone(),
                _ => "secops-fallback".to_owned(),
            };
            assert_eq!(item.reviewer, want, "item {} of {username}: {:?}", item.id, item.reviewers);
            assert_ne!(&item.reviewer, username);
            assert_eq!(item.reviewers[0].rule.starts_with("fallback"), want == "secops-fallback");
        }

        // A manager's queue: exactly their items, most important first, paged.
        let mut by_reviewer: HashMap<&str, Vec<&provost::reviews::model::ReviewItem>> = HashMap::new();
        for item in &items {
            by_reviewer.entry(item.reviewer.as_str()).or_default().push(item);
        }
        let (manager, theirs) = by_reviewer
            .iter()
            .filter(|(r, _)| **r != "secops-fallback")
            .max_by_key(|(_, i)| i.len())
            .map(|(r, i)| (r.to_string(), i.clone()))
            .unwrap();
        assert!(theirs.len() >= 3, "a manager with several items: {}", theirs.len());
        let reviewer = person(&fixture, "manager-token", &manager, &["reviews:decide"]).await;
        let mut queue = Vec::new();
        let mut path = format!("{BASE}/items?limit=2");
        loop {
            let (status, page) = get(&fixture, &reviewer, &path).await;
            assert_eq!(status, 200, "{page}");
            queue.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next"].as_str() {
                Some(next) => path = format!("{BASE}/items?limit=2&after={next}"),
                None => break,
            }
        }
        let queued: BTreeSet<i64> = queue.iter().map(|i| i["id"].as_i64().unwrap()).collect();
        assert_eq!(queued, theirs.iter().map(|i| i.id).collect());
        assert_eq!(queued.len(), queue.len(), "no item on two pages");
        let priorities: Vec<i64> = queue.iter().map(|i| i["priority"].as_i64().unwrap()).collect();
        assert!(priorities.windows(2).all(|w| w[0] >= w[1]), "most important first: {priorities:?}");
        for item in &queue {
            assert!(item["context"]["system_permissions"].is_array());
            assert!(item["context"].get("last_login").is_some());
            assert!(item["context"]["peers"].is_i64(), "{item}");
            if item["suggestion"] == "revoke" {
                assert!(!item["context"]["reasons"].as_array().unwrap().is_empty(), "a suggestion says why");
            }
        }
        for bad in ["limit=0", "limit=501", "after=x", "after=9.1", "state=maybe", "campaign=0", "colour=red"] {
            let (status, body) = get(&fixture, &reviewer, &format!("{BASE}/items?{bad}")).await;
            assert_eq!(status, 400, "{bad}: {body}");
        }

        // A token naming the manager by the 15-character id sees the same queue.
        let short = theirs[0].reviewers[0].account_id.clone().unwrap()[..15].to_owned();
        let by_short_id = person(&fixture, "manager-short-id", &short, &["reviews:decide"]).await;
        let (status, page) = get(&fixture, &by_short_id, &format!("{BASE}/items?limit=500")).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["items"].as_array().unwrap().len(), theirs.len(), "{page}");

        // Refusals, each with its code.
        let mine = theirs[0].id;
        let others = items.iter().find(|i| i.reviewer != manager).unwrap().id;
        let decide = |item: i64, body: Value| {
            let reviewer = reviewer.clone();
            let fixture = &fixture;
            async move { post(fixture, &reviewer, &format!("{BASE}/items/{item}/decision"), body).await }
        };
        for empty in [json!({"decision": "revoke"}), json!({"decision": "revoke", "comment": " \u{200b}\n"})] {
            let (status, body) = decide(mine, empty).await;
            assert_eq!((status, body["error"]["code"].as_str()), (400, Some("comment_required")), "{body}");
        }
        let (status, body) = decide(others, json!({"decision": "keep", "comment": "fine"})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (403, Some("not_your_item")), "someone else's item");
        let (status, _) = decide(999_999_999, json!({"decision": "keep", "comment": "fine"})).await;
        assert_eq!(status, 404);
        for bad in [json!({"decision": "maybe"}), json!({}), json!(null), json!({"decision": "keep", "extra": 1})] {
            let (status, body) = decide(mine, bad.clone()).await;
            assert_eq!(status, 400, "{bad}: {body}");
        }
        let response = reviewer
            .post(format!("{}{BASE}/items/{mine}/decision", fixture.api))
            .header("content-type", "text/plain")
            .body("keep")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 415);
        let (status, kept) = decide(mine, json!({"decision": "keep", "comment": "needed for the Q1 close"})).await;
        assert_eq!(status, 200, "{kept}");
        assert_eq!((kept["state"].as_str(), kept["decision"].as_str()), (Some("decided"), Some("keep")));
        assert_eq!(kept["decided_by"].as_str(), Some(manager.as_str()));
        let (status, body) = decide(mine, json!({"decision": "revoke", "comment": "changed my mind"})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (409, Some("already_decided")), "twice");

        // A grant removed in Salesforce behind the campaign's back: the item says so, no write.
        let gone = theirs[1];
        fixture
            .raw
            .delete(format!("{}/__emulator/records/PermissionSetAssignment/{}", fixture.sf, gone.grant_id))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
        resync(&fixture).await;
        let writes_before = fixture.write_calls().await;
        let (status, body) = decide(gone.id, json!({"decision": "revoke", "comment": "leaver"})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["remediation"], "not_needed", "{body}");
        assert!(body["drift"].as_str().unwrap().contains("removed"), "{body}");
        assert_eq!(body["request_id"], Value::Null);

        // Bulk: revoke the rest of the manager's items over a filter; each becomes an approved
        // request the executor carries out in Salesforce.
        let (status, bulk) = post(&fixture, &reviewer, &format!("{BASE}/decisions"), json!({
            "decision": "revoke", "comment": "quarterly clean-up", "filter": {"campaign": id},
        })).await;
        assert_eq!(status, 200, "{bulk}");
        let revoked: Vec<&provost::reviews::model::ReviewItem> = theirs[2..].to_vec();
        assert_eq!(bulk["decided"], json!(revoked.len()), "{bulk}");
        for outcome in bulk["outcomes"].as_array().unwrap() {
            assert_eq!(outcome["remediation"], "requested", "{outcome}");
        }
        assert_eq!(bulk["more_open"], false, "{bulk}");
        let (status, _) = post(&fixture, &reviewer, &format!("{BASE}/decisions"), json!({"decision": "keep", "items": []})).await;
        assert_eq!(status, 400, "no items");
        let (status, body) = post(&fixture, &reviewer, &format!("{BASE}/decisions"), json!({"decision": "keep", "comment": "x", "filter": {}})).await;
        assert_eq!(status, 400, "a filter names its campaign: {body}");
        let (status, _) = post(&fixture, &reviewer, &format!("{BASE}/decisions"), json!({"decision": "keep"})).await;
        assert_eq!(status, 400, "neither items nor filter");
        let (status, body) = post(&fixture, &reviewer, &format!("{BASE}/decisions"), json!({"decision": "keep", "items": (0..10_001).collect::<Vec<i64>>()})).await;
        assert_eq!(status, 400, "{body}");
        fixture.executor.run_once().await.unwrap();
        for item in &revoked {
            let left = fixture
                .rows(&format!("SELECT Id FROM PermissionSetAssignment WHERE AssigneeId = '{}' AND PermissionSetId = '{}'", item.account_id, item.entitlement_id))
                .await;
            assert!(left.is_empty(), "revoked in Salesforce: {}", item.id);
        }
        assert!(fixture.write_calls().await > writes_before);
        let (_, shown) = get(&fixture, &admin, &format!("{BASE}/campaigns/{id}")).await;
        assert_eq!(shown["summary"]["revoked"], json!(revoked.len() + 1), "{shown}");
        assert_eq!(shown["summary"]["remediated"], json!(revoked.len() + 1), "{shown}");
        // The request links back to its item, and the item to its request.
        let decided = fixture.store.get_items(fixture.org.id, &[revoked[0].id]).await.unwrap();
        let request_id = decided[0].request_id.unwrap();
        assert_eq!(decided[0].request_state.as_deref(), Some("completed"));
        let request = fixture.show(request_id).await;
        assert_eq!(request["review_item"]["item"], json!(revoked[0].id));
        assert_eq!(request["approver"].as_str(), Some(manager.as_str()));
        assert_eq!(request["action"], "revoke");

        // Reassigning: only the reviewer or an admin, never to the user under review.
        let fallback_item = items.iter().find(|i| i.reviewer == "secops-fallback" && i.state == "open").unwrap();
        let (status, _) = post(&fixture, &reviewer, &format!("{BASE}/items/{}/reassign", fallback_item.id), json!({"to": manager, "reason": "mine"})).await;
        assert_eq!(status, 403, "not the manager's to move");
        let (status, body) = post(&fixture, &fallback, &format!("{BASE}/items/{}/reassign", fallback_item.id), json!({"to": fallback_item.username, "reason": "x"})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("self_review")), "{body}");
        let (status, body) = post(&fixture, &fallback, &format!("{BASE}/items/{}/reassign", fallback_item.id), json!({"to": manager, "reason": ""})).await;
        assert_eq!(status, 400, "a reason is needed: {body}");
        // A name that looks like the user under review but is not a user: refused, never stored.
        for look_alike in [
            format!("{}\u{200b}", fallback_item.username),
            format!("{}.", fallback_item.username),
            "0055g0000000000AAA".to_owned(),
            "team with spaces".to_owned(),
        ] {
            let (status, body) = post(&fixture, &fallback, &format!("{BASE}/items/{}/reassign", fallback_item.id), json!({"to": look_alike, "reason": "x"})).await;
            assert_eq!((status, body["error"]["code"].as_str()), (400, Some("unknown_reviewer")), "{look_alike:?}: {body}");
        }
        // The user's id in upper case is the user.
        let (status, body) = post(&fixture, &fallback, &format!("{BASE}/items/{}/reassign", fallback_item.id), json!({"to": fallback_item.account_id.to_uppercase(), "reason": "x"})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("self_review")), "{body}");
        let (status, moved) = post(&fixture, &fallback, &format!("{BASE}/items/{}/reassign", fallback_item.id), json!({"to": manager, "reason": "knows the team"})).await;
        assert_eq!(status, 200, "{moved}");
        assert_eq!(moved["reviewer"].as_str(), Some(manager.as_str()));
        let (status, _) = decide(fallback_item.id, json!({"decision": "keep", "comment": "ok"})).await;
        assert_eq!(status, 200, "the new reviewer decides it");

        // Reminders before the due time, then overdue, each once; webhooks are made of them.
        let due = provost_connector::times::parse_rfc3339(started["due_at"].as_str().unwrap()).unwrap();
        let tick = campaigns::tick(&fixture.store, &fixture.config, due - chrono::TimeDelta::days(2)).await;
        assert_eq!(tick.reminded, vec![id], "{tick:?}");
        let again = campaigns::tick(&fixture.store, &fixture.config, due - chrono::TimeDelta::days(1)).await;
        assert!(again.reminded.is_empty(), "once");
        let late = campaigns::tick(&fixture.store, &fixture.config, due + chrono::TimeDelta::hours(1)).await;
        assert_eq!(late.overdue, vec![id], "{late:?}");
        assert!(late.failures.is_empty(), "{late:?}");

        // Closing keeps what is undecided (the policy); deciding after is refused.
        let open_before = shown["summary"]["open"].as_i64().unwrap() - 1;
        let (status, closed) = post(&fixture, &admin, &format!("{BASE}/campaigns/{id}/close"), json!({})).await;
        assert_eq!(status, 200, "{closed}");
        assert_eq!(closed["state"], "closed");
        assert_eq!(closed["summary"]["open"], 0);
        assert_eq!(closed["summary"]["kept"], json!(open_before + 2));
        let (status, body) = decide(mine, json!({"decision": "keep", "comment": "late"})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (409, Some("campaign_not_active")), "{body}");
        let (status, _) = post(&fixture, &admin, &format!("{BASE}/campaigns/{id}/close"), json!({})).await;
        assert_eq!(status, 409);

        // The report: one row per item, every decision, and a manifest that verifies.
        let response = admin.get(format!("{}{BASE}/campaigns/{id}/report?format=csv", fixture.api)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let encoded = response.headers()["provost-manifest"].to_str().unwrap().to_owned();
        let bytes = response.bytes().await.unwrap();
        use base64::Engine;
        let manifest: Value = serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded).unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("review.csv");
        std::fs::write(&file, &bytes).unwrap();
        std::fs::write(provost::reports::manifest::path_of(&file), manifest.to_string()).unwrap();
        assert!(provost::reports::manifest::verify(&file, None).unwrap().ok);
        assert_eq!(manifest["parameters"]["summary"]["items"], json!(expected.len()));
        let rows = parse_csv(&bytes);
        assert_eq!(rows.len(), expected.len());
        let row = |item: i64| rows.iter().find(|r| r["item_id"] == item.to_string()).unwrap();
        assert_eq!(row(mine)["decision"], "keep");
        assert_eq!(row(mine)["comment"], "needed for the Q1 close");
        assert!(row(mine)["history"].contains(&format!("keep by {manager}")));
        assert_eq!(row(gone.id)["remediation"], "not_needed");
        assert_eq!(row(revoked[0].id)["remediation_outcome"], "completed");
        assert!(row(fallback_item.id)["history"].contains("reassign by secops-fallback"));
        let by_policy = rows.iter().filter(|r| r["decided_by"] == "close policy (keep)").count();
        assert_eq!(by_policy as i64, open_before, "the undecided, kept by the policy");
        let (status, _) = get(&fixture, &reviewer, &format!("{BASE}/campaigns/{id}/report")).await;
        assert_eq!(status, 403, "a reviewer's token does not read reports");

        // The audit log holds every decision, the reassignment and the closure, and verifies.
        let entries = fixture.store.audit_entries(0, 100_000).await.unwrap();
        let count = |event: &str| entries.iter().filter(|e| e.event == event).count();
        assert_eq!(count("review_decided"), revoked.len() + 3);
        assert_eq!(count("review_campaign_started"), 1);
        assert_eq!(count("review_campaign_closed"), 1);
        assert_eq!(count("review_reminder"), 1);
        assert_eq!(count("review_overdue"), 1);
        assert!(count("review_assigned") >= 2);
        assert!(provost::audit::log::verify(&fixture.store).await.unwrap().problem.is_none());
        fixture.stop().await;
    })
    .await;
}

#[tokio::test]
async fn two_stage_reviews_owners_lists_self_review_policies_and_recurring_runs_on_every_backend() {
    on_each_backend(|store| async move {
        let fixture = Fixture::start(store, |_| {}).await;
        let admin = bearer_client(&fixture.store, "review-admin", &["reviews:admin", "reports:read"]).await;
        let held: Vec<(String, String)> = truth(&fixture)
            .await
            .held
            .into_iter()
            .filter(|(_, via, how)| how == "direct" && via.starts_with("0PS"))
            .map(|(user, via, _)| (user, via))
            .collect();
        let people = users(&fixture).await;
        // The most held permission set, and two of its holders as the reviewer list: each
        // holder's own items go to the other.
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for (_, set) in &held {
            *counts.entry(set.as_str()).or_default() += 1;
        }
        let (set, _) = counts.iter().max_by_key(|(_, n)| **n).unwrap();
        let set = set.to_string();
        let holders: Vec<&String> = held.iter().filter(|(_, s)| *s == set).map(|(u, _)| u).collect();
        let active: Vec<&String> = holders.iter().copied().filter(|u| people[*u].1).collect();
        let (a, b) = (&people[active[0]].0, &people[active[1]].0);
        let owner = people.values().find(|(name, active, _)| *active && name != a && name != b && !holders.iter().any(|h| &people[*h].0 == name)).unwrap().0.clone();
        let set_name = fixture.store.get_entitlement(fixture.org.id, &set).await.unwrap().unwrap().api_name;
        let (status, draft) = post(&fixture, &admin, &format!("{BASE}/campaigns"), json!({
            "name": "Owner review",
            "scope": {"entitlements": [set_name]},
            "reviewers": {"stages": ["reviewers", "owner"], "reviewers": [a, b], "owners": {set_name.clone(): owner}, "fallback": ["fallback-1"]},
            "duration_days": 7,
            "close_policy": "revoke",
            "recurrence": "monthly",
        })).await;
        assert_eq!(status, 201, "{draft}");
        let campaign = draft["id"].as_i64().unwrap();
        // Not while a sync is committing what the items would be read from.
        let lock = fixture.store.acquire_sync_lock(fixture.org.id, "a-sync", chrono::TimeDelta::minutes(5)).await.unwrap();
        assert!(matches!(lock, provost::store::sync::LockOutcome::Acquired));
        let (status, body) = post(&fixture, &admin, &format!("{BASE}/campaigns/{campaign}/start"), json!({})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (409, Some("sync_running")), "{body}");
        fixture.store.release_sync_lock(fixture.org.id, "a-sync").await.unwrap();
        let (status, started) = post(&fixture, &admin, &format!("{BASE}/campaigns/{campaign}/start"), json!({})).await;
        assert_eq!(status, 200, "{started}");
        assert!(started["next_run_at"].is_string(), "a recurring campaign knows its next run");
        let items = all_items(&fixture, campaign).await;
        assert_eq!(items.len(), holders.len());
        for item in &items {
            assert_eq!(item.stages, 2);
            let first = &item.reviewers[0].reviewer;
            assert!(first == a || first == b, "{first}");
            assert_ne!(first, &item.username.to_lowercase(), "never their own access");
            assert_eq!(item.reviewers[1].reviewer, owner);
        }
        let a_item = items.iter().find(|i| &i.username.to_lowercase() == a).unwrap();
        assert_eq!(&a_item.reviewer, b, "a's own item goes to b");

        // Stage one keeps, stage two (the owner) revokes; one person cannot take both stages.
        let first = person(&fixture, "first", &a_item.reviewers[0].reviewer, &["reviews:decide"]).await;
        let (status, body) = post(&fixture, &first, &format!("{BASE}/items/{}/reassign", a_item.id), json!({"to": owner, "reason": "owner knows"})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("same_reviewer_twice")), "{body}");
        let second = person(&fixture, "second", &owner, &["reviews:decide"]).await;
        let (status, moved) = post(&fixture, &first, &format!("{BASE}/items/{}/decision", a_item.id), json!({"decision": "keep", "comment": "still on the team"})).await;
        assert_eq!(status, 200, "{moved}");
        assert_eq!((moved["state"].as_str(), moved["stage"].as_i64()), (Some("open"), Some(2)));
        assert_eq!(moved["reviewer"].as_str(), Some(owner.as_str()));
        let (status, _) = post(&fixture, &first, &format!("{BASE}/items/{}/decision", a_item.id), json!({"decision": "keep", "comment": "again"})).await;
        assert_eq!(status, 403, "stage two is the owner's");
        let (status, done) = post(&fixture, &second, &format!("{BASE}/items/{}/decision", a_item.id), json!({"decision": "revoke", "comment": "owner says no"})).await;
        assert_eq!(status, 200, "{done}");
        assert_eq!(done["decision"], "revoke");

        // Closing with the revoke policy revokes what nobody decided.
        let (status, closed) = post(&fixture, &admin, &format!("{BASE}/campaigns/{campaign}/close"), json!({})).await;
        assert_eq!(status, 200, "{closed}");
        assert_eq!(closed["summary"]["revoked"], json!(items.len()));
        fixture.executor.run_once().await.unwrap();
        let left = fixture.rows(&format!("SELECT AssigneeId FROM PermissionSetAssignment WHERE PermissionSetId = '{set}' AND PermissionSetGroupId = null")).await;
        for row in &left {
            assert!(!holders.contains(&&id(row, "AssigneeId")), "revoked from every user of the campaign");
        }
        let (_, shown) = get(&fixture, &admin, &format!("{BASE}/campaigns/{campaign}")).await;
        assert_eq!(shown["summary"]["remediated"], json!(items.len()), "{shown}");

        // A month later the next run is made and started by itself; it finds nothing left, and
        // says so on the draft and in the audit log, to be tried again an hour later.
        let later = chrono::Utc::now() + chrono::TimeDelta::days(32);
        let tick = campaigns::tick(&fixture.store, &fixture.config, later).await;
        assert_eq!(tick.runs_made.len(), 1, "{tick:?}");
        assert_eq!(tick.failures.len(), 1, "{tick:?}");
        assert!(tick.failures[0].contains("matches no grant"), "{tick:?}");
        let runs = fixture.store.list_campaigns(fixture.org.id, None).await.unwrap();
        let run = runs.iter().find(|c| c.parent_id == Some(campaign)).expect("the next run");
        assert!(run.name.starts_with("Owner review (run "), "{}", run.name);
        assert!(run.start_error.as_deref().unwrap().contains("matches no grant"));
        let again = campaigns::tick(&fixture.store, &fixture.config, later + chrono::TimeDelta::minutes(1)).await;
        assert!(again.failures.is_empty() && again.runs_made.is_empty(), "once per period, retried after an hour: {again:?}");
        assert_eq!(fixture.store.list_campaigns(fixture.org.id, None).await.unwrap().len(), runs.len());
        let retried = campaigns::tick(&fixture.store, &fixture.config, later + chrono::TimeDelta::hours(2)).await;
        assert_eq!(retried.failures.len(), 1, "tried again after the hour: {retried:?}");

        // Leave-open closing leaves undecided items open and reported as such; cancelling.
        let (_, draft) = post(&fixture, &admin, &format!("{BASE}/campaigns"), json!({
            "name": "Admins", "scope": {"permissions": ["ModifyAllData"]},
            "reviewers": {"stages": ["manager"], "fallback": ["fallback-1"]}, "duration_days": 3,
        })).await;
        let admins = draft["id"].as_i64().unwrap();
        let (status, started) = post(&fixture, &admin, &format!("{BASE}/campaigns/{admins}/start"), json!({})).await;
        assert_eq!(status, 200, "{started}");
        for item in all_items(&fixture, admins).await {
            assert!(item.privileged, "Modify All Data is privileged");
            assert!(item.priority >= 1);
        }
        let (status, closed) = post(&fixture, &admin, &format!("{BASE}/campaigns/{admins}/close"), json!({"policy": "leave_open"})).await;
        assert_eq!(status, 200);
        assert_eq!(closed["summary"]["open"], closed["summary"]["items"]);
        let (status, cancelled) = post(&fixture, &admin, &format!("{BASE}/campaigns/{admins}/cancel"), json!({})).await;
        assert_eq!(status, 409, "a closed campaign is not cancelled: {cancelled}");
        let (_, draft) = post(&fixture, &admin, &format!("{BASE}/campaigns"), json!({
            "name": "Never started", "reviewers": {"stages": ["manager"], "fallback": ["x"]}, "duration_days": 3,
        })).await;
        let (status, cancelled) = post(&fixture, &admin, &format!("{BASE}/campaigns/{}/cancel", draft["id"]), json!({"reason": "wrong quarter"})).await;
        assert_eq!((status, cancelled["state"].as_str()), (200, Some("cancelled")));
        fixture.stop().await;
    })
    .await;
}

#[test]
fn the_manuals_campaign_definitions_are_campaigns() {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/src/reviews.md"))
        .unwrap();
    let mut checked = 0;
    for block in page.split("```json\n").skip(1) {
        let text = &block[..block.find("```").unwrap()];
        let input: campaigns::CampaignInput =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert!(!input.name.is_empty());
        checked += 1;
    }
    assert!(checked > 0, "the page shows a campaign");
}
