//! The web console as people use it, in headless Chromium (see `browser`): an employee signs in
//! with Salesforce (the emulator's login page), asks for a permission set and sees the plan;
//! the approval queue is refused to them; an approver (by membership of a public group in
//! Salesforce) approves, and the grant appears in the emulator; a form without its CSRF token,
//! or sent from another site, is refused; an auditor (by an assigned permission set) prepares
//! a report whose manifest verifies; an admin signs in with a one-time link and verifies the
//! audit chain. Screenshots of the pages are saved (see `Browser::screenshot`).

use std::collections::HashSet;

use provost_connector::model::EntitlementKind;
use serde_json::{json, Value};

use crate::browser::Browser;
use crate::helpers::TestDatabase;
use crate::provisioning::Fixture;

const APPROVER_GROUP: &str = "Finance_Team_2";
const AUDITOR_SET: &str = "Legal_Read_5";

/// Ids of the holders of entitlement `kind` `name`.
async fn holders(fixture: &Fixture, kind: EntitlementKind, name: &str) -> HashSet<String> {
    let entitlement = fixture
        .store
        .entitlement_by_name(fixture.org.id, kind, name)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("the small org has {kind} {name}"));
    let (page, _) = fixture
        .store
        .holders_page(fixture.org.id, &entitlement.id, None, 1000)
        .await
        .unwrap();
    page.into_iter().map(|h| h.account.id).collect()
}

/// Active standard users who may log in, by username, with their ids.
async fn people(fixture: &Fixture) -> Vec<(String, String)> {
    let accounts = fixture
        .store
        .list_accounts(fixture.org.id, provost::store::Page::first(10_000))
        .await
        .unwrap();
    let integration = fixture.emulator.integration_username();
    accounts
        .into_iter()
        .filter(|a| {
            a.active
                && a.user_type.as_deref() == Some("Standard")
                && a.attributes.get("IsFrozen") != Some(&Value::Bool(true))
                && a.username != integration
        })
        .map(|a| (a.id, a.username))
        .collect()
}

/// The sensitive permissions (fields) `user` holds effectively, by the effective-permissions
/// report.
async fn effective_of(fixture: &Fixture, user: &str) -> HashSet<String> {
    let mut out = Vec::new();
    provost::reports::generate(
        &fixture.store,
        "acme",
        provost::reports::Report::EffectivePermissions,
        &provost::reports::Params::default(),
        provost::reports::output::Format::Json,
        &mut out,
    )
    .await
    .unwrap();
    let rows: Vec<Value> = serde_json::from_slice(&out).unwrap();
    rows.iter()
        .filter(|r| r["user_id"] == user && r["effective"] == Value::Bool(true))
        .map(|r| r["permission_field"].as_str().unwrap().to_owned())
        .collect()
}

async fn sign_in(browser: &Browser, console: &str, username: &str) {
    browser.clear_cookies().await;
    browser.goto(&format!("{console}/console")).await;
    // Signed out: sent to the sign-in page, then to Salesforce's login page.
    browser.click("#sign-in-acme").await;
    browser.fill("#username", username).await;
    browser.fill("#password", "emulator").await;
    browser.click("#allow").await;
    // Signed in: back at the overview, whose header names the person's roles.
    browser.wait_text("header .who", "requester").await;
    assert_eq!(browser.url().await, format!("{console}/console"));
}

async fn sign_out(browser: &Browser, console: &str) {
    browser.goto(&format!("{console}/console")).await;
    browser.click("header form button").await;
    browser.find("#sign-in-acme").await;
}

#[tokio::test]
async fn people_sign_in_ask_approve_audit_and_download_in_a_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let db = TestDatabase::sqlite().await;
    let fixture = Fixture::start(db.store().await, |config| {
        config.console.approvers.public_groups = vec![APPROVER_GROUP.to_owned()];
        config.console.auditors.permission_sets = vec![AUDITOR_SET.to_owned()];
    })
    .await;
    let console = fixture.api.clone();
    let in_group = holders(&fixture, EntitlementKind::PublicGroup, APPROVER_GROUP).await;
    let auditors = holders(&fixture, EntitlementKind::PermissionSet, AUDITOR_SET).await;
    let everyone = people(&fixture).await;
    let pick = |want: &dyn Fn(&str) -> bool| {
        everyone
            .iter()
            .find(|(id, _)| want(id))
            .cloned()
            .expect("the small org has such a user")
    };
    let approver = pick(&|id| in_group.contains(id) && !auditors.contains(id));
    let auditor = pick(&|id| auditors.contains(id) && !in_group.contains(id));
    let employee = pick(&|id| {
        !in_group.contains(id) && !auditors.contains(id) && id != approver.0 && id != auditor.0
    });

    // The employee asks for a permission set they do not hold, and sees the plan first.
    sign_in(&browser, &console, &employee.1).await;
    assert!(
        !browser.has("#nav-queue").await,
        "a requester is not offered the approval queue"
    );
    let mut accessibility = Vec::new();
    browser.screenshot("overview-employee").await;
    for problem in browser.accessibility_problems().await {
        accessibility.push(format!("overview-employee: {problem}"));
    }
    let held: HashSet<String> = fixture
        .store
        .grants_of_account(fixture.org.id, &employee.0)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.entitlement_id)
        .collect();
    let effective = effective_of(&fixture, &employee.0).await;
    let carried = |e: &provost_connector::model::Entitlement| -> Vec<String> {
        e.attributes
            .get("system_permissions")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let wanted = fixture
        .store
        .list_entitlements(
            fixture.org.id,
            Some(EntitlementKind::PermissionSet),
            provost::store::Page::first(1000),
        )
        .await
        .unwrap()
        .into_iter()
        .find(|e| {
            e.grantable
                && !held.contains(&e.id)
                && carried(e).iter().any(|p| !effective.contains(p))
        })
        .expect("a grantable set the employee lacks, which adds a sensitive permission");
    // What approving it adds: the set's sensitive permissions the employee lacks, as the
    // effective-permissions report (not the console's code) says what they hold.
    let expected_gains: Vec<&str> = provost::reports::PERMISSIONS
        .iter()
        .filter(|(field, _)| {
            carried(&wanted).contains(&field.to_string()) && !effective.contains(*field)
        })
        .map(|(_, label)| *label)
        .collect();
    browser
        .goto(&format!("{console}/console/orgs/acme/requests/new"))
        .await;
    browser
        .click(&format!("#entitlement option[value='{}']", wanted.id))
        .await;
    browser
        .fill("#justification", "Quarterly close needs it")
        .await;
    browser.click("#preview").await;
    let summary = browser.text("#plan-summary").await;
    assert!(
        summary.contains(&wanted.api_name) && summary.contains(&employee.1),
        "the plan names the set and the user: {summary}"
    );
    assert!(browser.text("#checks").await.contains("user exists"));
    assert!(browser.text("#write").await.contains(&wanted.id));
    browser.screenshot("request-plan").await;
    for problem in browser.accessibility_problems().await {
        accessibility.push(format!("request-plan: {problem}"));
    }
    browser.click("#submit").await;
    browser.find("#timeline").await;
    let request_url = browser.url().await;
    let request_id: i64 = request_url.rsplit('/').next().unwrap().parse().unwrap();
    assert!(browser.text("h1").await.contains("pending approval"));
    assert!(
        !browser.has("#approve").await,
        "nobody approves their own request"
    );

    // The approval queue is neither offered nor served to a requester.
    browser
        .goto(&format!("{console}/console/orgs/acme/requests?view=queue"))
        .await;
    assert_eq!(browser.text("h1").await, "Not allowed");
    assert!(browser
        .text("#message")
        .await
        .contains("do not include the approval queue"));
    let cookie = browser.cookie("provost_session").await.unwrap();
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let as_employee = |path: &str| {
        raw.get(format!("{console}{path}"))
            .header("cookie", format!("provost_session={cookie}"))
    };
    for path in [
        "/console/orgs/acme/requests?view=queue",
        "/console/orgs/acme/users",
        "/console/orgs/acme/reports",
        "/console/audit",
        &format!("/console/orgs/acme/users/{}", approver.0),
    ] {
        let status = as_employee(path).send().await.unwrap().status();
        assert_eq!(status, 403, "{path} is refused to a requester");
    }
    let own = as_employee(&format!("/console/orgs/acme/users/{}", employee.0))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200, "a requester sees their own access");
    sign_out(&browser, &console).await;
    let after = as_employee("/console").send().await.unwrap();
    assert_eq!(after.status(), 303, "a signed-out session opens nothing");

    // The approver, a member of the public group in Salesforce, approves.
    sign_in(&browser, &console, &approver.1).await;
    assert!(browser.has("#nav-queue").await);
    browser
        .goto(&format!("{console}/console/orgs/acme/requests?view=queue"))
        .await;
    browser.screenshot("approval-queue").await;
    for problem in browser.accessibility_problems().await {
        accessibility.push(format!("approval-queue: {problem}"));
    }
    browser
        .click(&format!("a[href$='/requests/{request_id}']"))
        .await;
    // The approver sees what approving adds, as the API's answer says it.
    let shown = browser.text("#gains").await;
    let answer: Value = fixture
        .approver
        .get(fixture.url(&format!("/{request_id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let gains: Vec<&str> = answer["gains"]
        .as_array()
        .expect("a pending grant's answer carries its gains")
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    assert_eq!(gains, expected_gains, "the API's gains");
    assert!(!gains.is_empty());
    for gain in &gains {
        assert!(shown.contains(gain), "the page shows {gain}: {shown}");
    }
    let cookie = browser.cookie("provost_session").await.unwrap();
    // Without the form's CSRF token, and from another site, the decision is refused.
    let decide = format!("{console}/console/orgs/acme/requests/{request_id}/decide");
    let forged = raw
        .post(&decide)
        .header("cookie", format!("provost_session={cookie}"))
        .form(&[("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(forged.text().await.unwrap().contains("security token"));
    let page = raw
        .get(&request_url)
        .header("cookie", format!("provost_session={cookie}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let cross_site = raw
        .post(&decide)
        .header("cookie", format!("provost_session={cookie}"))
        .header("origin", "https://evil.example")
        .form(&[("decision", "approve"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        cross_site.status(),
        403,
        "a form from another site is refused"
    );
    let state: String = fixture
        .store
        .get_request(fixture.org.id, request_id)
        .await
        .unwrap()
        .unwrap()
        .state
        .as_str()
        .to_owned();
    assert_eq!(state, "pending_approval", "refused forms changed nothing");
    browser.fill("#comment", "Fine for the close").await;
    browser.click("#approve").await;
    browser.wait_text("h1", "approved").await;
    fixture.executor.run_once().await.unwrap();
    let assigned = fixture
        .rows(&format!(
            "SELECT Id FROM PermissionSetAssignment WHERE AssigneeId = '{}' AND PermissionSetId = '{}'",
            employee.0, wanted.id
        ))
        .await;
    assert_eq!(assigned.len(), 1, "the grant is in Salesforce");
    browser.goto(&request_url).await;
    assert!(browser.text("h1").await.contains("completed"));
    assert!(browser
        .text("#timeline")
        .await
        .contains("Fine for the close"));
    browser.screenshot("request-approved").await;
    for problem in browser.accessibility_problems().await {
        accessibility.push(format!("request-approved: {problem}"));
    }

    // The approver also reviews the holders of the auditors' set, and finishes the campaign
    // with one decision on a ticked item and one on every item shown.
    let input: provost::reviews::campaigns::CampaignInput = serde_json::from_value(json!({
        "name": "Legal read access",
        "scope": {"entitlements": [AUDITOR_SET]},
        "reviewers": {"stages": ["reviewers"], "reviewers": [approver.1], "fallback": [approver.1]},
        "duration_days": 7,
    }))
    .unwrap();
    let campaign =
        provost::reviews::campaigns::create(&fixture.store, &fixture.org, "test", &input)
            .await
            .unwrap();
    let started = provost::reviews::campaigns::start(
        &fixture.store,
        &fixture.config,
        &fixture.config.orgs[0],
        &fixture.org,
        campaign.id,
        "test",
        false,
    )
    .await
    .unwrap();
    assert!(
        started.items >= 2,
        "the campaign has items to review: {}",
        started.items
    );
    browser.goto(&format!("{console}/console")).await;
    browser.click("#my-items").await;
    browser.find("#items").await;
    browser.screenshot("reviews").await;
    for problem in browser.accessibility_problems().await {
        accessibility.push(format!("reviews: {problem}"));
    }
    let first = browser
        .attribute("#items input[type=checkbox]", "value")
        .await;
    browser.click(&format!("#item-{first}")).await;
    browser.fill("#comment", "Still on the legal team").await;
    browser.click("#keep-ticked").await;
    browser.wait_text("#done", "1 decided (keep)").await;
    browser.fill("#comment", "Left the legal team").await;
    browser.click("#revoke-all").await;
    browser.wait_text("#done", "decided (revoke)").await;
    assert!(browser.has("#nothing-open").await, "the queue is empty");
    let summary = fixture
        .store
        .summary(campaign.id, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(summary.open, 0, "the campaign is finished");
    assert_eq!((summary.kept, summary.revoked), (1, started.items - 1));
    sign_out(&browser, &console).await;

    // The auditor, by an assigned permission set, prepares a report; its manifest verifies.
    sign_in(&browser, &console, &auditor.1).await;
    browser
        .goto(&format!("{console}/console/orgs/acme/reports"))
        .await;
    browser.screenshot("reports").await;
    for problem in browser.accessibility_problems().await {
        accessibility.push(format!("reports: {problem}"));
    }
    browser
        .click("#report-entitlements button[type=submit]")
        .await;
    browser.find("#download-file").await;
    let rows: u64 = browser.text("#rows").await.parse().unwrap();
    assert!(rows > 50, "the entitlements report has the org's grants");
    let cookie = browser.cookie("provost_session").await.unwrap();
    let mut parts = Vec::new();
    for id in ["#download-file", "#download-manifest"] {
        let href = browser.attribute(id, "href").await;
        let bytes = raw
            .get(format!("{console}{href}"))
            .header("cookie", format!("provost_session={cookie}"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        parts.push(bytes);
    }
    let (file, manifest) = (&parts[0], &parts[1]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("report.csv"), file).unwrap();
    std::fs::write(dir.path().join("report.manifest.json"), manifest).unwrap();
    let verified = provost::reports::manifest::verify(
        &dir.path().join("report.csv"),
        Some(&dir.path().join("report.manifest.json")),
    )
    .unwrap();
    assert!(verified.ok, "{:?}", verified.problems);
    sign_out(&browser, &console).await;

    // An admin's one-time link works once, and the audit chain verifies from the page.
    let link = provost::console::sign_in::make_link(fixture.store.as_ref(), "first-admin", 5)
        .await
        .unwrap();
    browser.clear_cookies().await;
    browser.goto(&format!("{console}{link}")).await;
    browser.click("#use-link").await;
    browser.wait_text("header .who", "first-admin").await;
    browser.screenshot("overview-admin").await;
    for problem in browser.accessibility_problems().await {
        accessibility.push(format!("overview-admin: {problem}"));
    }
    browser
        .goto(&format!("{console}/console/orgs/acme/users?active=yes"))
        .await;
    browser.find("#users").await;
    browser.screenshot("users").await;
    for problem in browser.accessibility_problems().await {
        accessibility.push(format!("users: {problem}"));
    }
    browser
        .goto(&format!("{console}/console/orgs/acme/users/{}", employee.0))
        .await;
    assert!(browser.text("#held").await.contains(&wanted.label));
    let history = browser.text("#history").await;
    assert!(
        history.contains(&wanted.label) && history.contains(&request_id.to_string()),
        "the grant the request made is in the user's history, linked to it: {history}"
    );
    browser.screenshot("user").await;
    for problem in browser.accessibility_problems().await {
        accessibility.push(format!("user: {problem}"));
    }
    browser
        .goto(&format!("{console}/console/orgs/acme/entitlements"))
        .await;
    browser.screenshot("entitlements").await;
    for problem in browser.accessibility_problems().await {
        accessibility.push(format!("entitlements: {problem}"));
    }
    browser.goto(&format!("{console}/console/audit")).await;
    browser.click("#verify").await;
    assert!(browser.text("#verification").await.contains("whole"));
    browser.screenshot("audit").await;
    for problem in browser.accessibility_problems().await {
        accessibility.push(format!("audit: {problem}"));
    }
    let events: Vec<String> = fixture
        .store
        .audit_page(&provost::store::console::AuditFilter {
            limit: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    for event in [
        "console_signed_in",
        "console_signed_out",
        "console_refused",
        "request_approved",
        "console_link_created",
    ] {
        assert!(events.iter().any(|e| e == event), "{event} is audited");
    }
    browser.clear_cookies().await;
    browser.goto(&format!("{console}{link}")).await;
    browser.click("#use-link").await;
    assert!(browser.text("#message").await.contains("used already"));
    assert!(
        accessibility.is_empty(),
        "every control has a name, every page one main and one h1:\n{}",
        accessibility.join("\n")
    );
    browser.quit().await;
}

/// Signs in through the emulator without a browser: the sign-in's start (its cookie and the
/// Salesforce URL), then the login form's answer, the callback URL.
async fn start_and_log_in(
    raw: &reqwest::Client,
    console: &str,
    sf: &str,
    username: &str,
    next: &str,
) -> (String, String) {
    let started = raw
        .get(format!("{console}/console/sign-in/acme?next={next}"))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 303);
    let cookie = started
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("provost_sign_in="))
        .expect("the sign-in is bound to this browser by a cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(started.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("HttpOnly"));
    let authorize = url::Url::parse(started.headers()["location"].to_str().unwrap()).unwrap();
    let mut form: Vec<(String, String)> = authorize.query_pairs().into_owned().collect();
    form.extend([
        ("username".to_owned(), username.to_owned()),
        ("password".to_owned(), "emulator".to_owned()),
        ("decision".to_owned(), "allow".to_owned()),
    ]);
    let logged_in = raw
        .post(format!("{sf}/services/oauth2/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let callback = logged_in.headers()["location"].to_str().unwrap().to_owned();
    assert!(callback.starts_with(&format!("{console}/console/auth/callback?")));
    (cookie, callback)
}

#[tokio::test]
async fn a_sign_in_completes_only_in_the_browser_that_started_it_and_only_once() {
    let db = TestDatabase::sqlite().await;
    let fixture = Fixture::start(db.store().await, |_| {}).await;
    let console = fixture.api.clone();
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (_, someone) = people(&fixture).await.into_iter().next().unwrap();

    // An attacker's callback URL opened in the victim's browser (without the attacker's
    // sign-in cookie) signs nobody in.
    let (cookie, callback) =
        start_and_log_in(&raw, &console, &fixture.sf, &someone, "/console/audit").await;
    let elsewhere = raw.get(&callback).send().await.unwrap();
    assert_eq!(elsewhere.status(), 403);
    assert!(elsewhere
        .headers()
        .get_all("set-cookie")
        .iter()
        .all(|v| !v.to_str().unwrap().starts_with("provost_session=")));
    assert!(elsewhere
        .text()
        .await
        .unwrap()
        .contains("not started in this browser"));

    // In the browser that started it, it signs in and returns where the person was going.
    let here = raw
        .get(&callback)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(here.status(), 303);
    assert_eq!(here.headers()["location"], "/console/audit");
    let set: Vec<&str> = here
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(set.iter().any(|c| c.starts_with("provost_session=")
        && c.contains("HttpOnly")
        && c.contains("SameSite=Lax")));
    assert!(
        set.iter()
            .any(|c| c.starts_with("provost_sign_in=;") && c.contains("Max-Age=0")),
        "the sign-in cookie is spent: {set:?}"
    );

    // Replayed, even with its cookie, the code is spent at Salesforce.
    let replayed = raw
        .get(&callback)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 403);

    // A `next` outside the console is ignored; a forged state is refused.
    let (cookie, callback) =
        start_and_log_in(&raw, &console, &fixture.sf, &someone, "//evil.example/x").await;
    let here = raw
        .get(&callback)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(here.headers()["location"], "/console");
    let forged = raw
        .get(format!(
            "{console}/console/auth/callback?code=x&state=forged"
        ))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let page = forged.text().await.unwrap();
    assert!(page.contains("sign in again") && page.contains("<html"));

    // Signed in once more, for a session to ask with.
    let (cookie, callback) =
        start_and_log_in(&raw, &console, &fixture.sf, &someone, "/console").await;
    let here = raw
        .get(&callback)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(here.status(), 303);
    let session = here
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("provost_session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    // Errors made outside the handlers are pages too, with the console's headers.
    let bad = raw
        .get(format!("{console}/console/orgs/acme/requests/abc"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert!(bad.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
}
