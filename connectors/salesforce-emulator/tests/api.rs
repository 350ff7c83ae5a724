//! The emulator over real HTTP on loopback, checked against the facts in SALESFORCE.md.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use provost_salesforce_emulator::{server, Emulator, EmulatorConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const V: &str = "v62.0";

struct Org {
    emulator: Arc<Emulator>,
    base: String,
    http: reqwest::Client,
    token: String,
}

impl Org {
    async fn start() -> Org {
        Org::start_with(EmulatorConfig::default()).await
    }

    async fn start_with(config: EmulatorConfig) -> Org {
        let emulator = Emulator::new(config);
        let base = server::spawn(emulator.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut org = Org {
            emulator,
            base,
            http,
            token: String::new(),
        };
        let response = org.jwt_login(&org.username(), &org.base.clone(), 300).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        org.token = body["access_token"].as_str().unwrap().to_owned();
        org
    }

    fn username(&self) -> String {
        self.emulator.connection_info(None).username
    }

    fn assertion(&self, sub: &str, aud: &str, exp_in: i64, iss: Option<&str>) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let claims = json!({ "iss": iss.unwrap_or(&self.emulator.app.client_id), "sub": sub, "aud": aud, "exp": now + exp_in });
        let key =
            jsonwebtoken::EncodingKey::from_rsa_pem(self.emulator.app.private_key_pem.as_bytes())
                .unwrap();
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &key,
        )
        .unwrap()
    }

    async fn jwt_login(&self, sub: &str, aud: &str, exp_in: i64) -> reqwest::Response {
        let assertion = self.assertion(sub, aud, exp_in, None);
        self.assertion_request(&assertion).await
    }

    async fn assertion_request(&self, assertion: &str) -> reqwest::Response {
        self.token_request(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion),
        ])
        .await
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}/services/oauth2/token", self.base))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    async fn query(&self, soql: &str) -> reqwest::Response {
        self.http
            .get(format!("{}/services/data/{V}/query", self.base))
            .query(&[("q", soql)])
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    async fn query_ok(&self, soql: &str) -> Value {
        let response = self.query(soql).await;
        assert_eq!(response.status(), 200, "{soql}");
        response.json().await.unwrap()
    }

    /// Ground truth through the admin path: every row, no paging, no API usage.
    async fn truth(&self, soql: &str) -> Vec<Value> {
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
        body["records"].as_array().unwrap().clone()
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> reqwest::Response {
        self.http
            .request(method, format!("{}/services/data/{V}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn set_faults(&self, faults: Value) {
        let response = self
            .http
            .put(format!("{}/__emulator/faults", self.base))
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    async fn first_id(&self, soql: &str) -> String {
        self.truth(soql).await[0]["Id"].as_str().unwrap().to_owned()
    }
}

async fn error_of(response: reqwest::Response) -> (StatusCode, String, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    let first = &body.as_array().expect("errors are a JSON array")[0];
    (
        status,
        first["errorCode"].as_str().unwrap().to_owned(),
        first["message"].as_str().unwrap().to_owned(),
    )
}

async fn oauth_error_of(response: reqwest::Response) -> (String, String) {
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    (
        body["error"].as_str().unwrap().to_owned(),
        body["error_description"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn jwt_bearer_token_response_has_salesforces_fields_and_no_expiry() {
    let org = Org::start().await;
    let response = org
        .jwt_login(&org.username(), "https://login.salesforce.com", 180)
        .await;
    let body: Value = response.json().await.unwrap();
    for field in [
        "access_token",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
        "signature",
        "scope",
    ] {
        assert!(body.get(field).is_some(), "missing {field}: {body}");
    }
    assert_eq!(body["token_type"], "Bearer");
    assert!(
        body.get("expires_in").is_none(),
        "Salesforce sends no expires_in"
    );
    assert!(
        body.get("refresh_token").is_none(),
        "JWT bearer returns no refresh token"
    );
    assert!(body["issued_at"].is_string());
    assert!(body["id"].as_str().unwrap().contains("/id/00D"));
}

#[tokio::test]
async fn jwt_bearer_refusals_say_why() {
    let org = Org::start().await;
    let (error, description) = oauth_error_of(
        org.jwt_login(&org.username(), "https://evil.example.com", 180)
            .await,
    )
    .await;
    assert_eq!(
        (error.as_str(), description.as_str()),
        ("invalid_grant", "audience is invalid")
    );

    let (error, _) = oauth_error_of(org.jwt_login(&org.username(), &org.base, -120).await).await;
    assert_eq!(error, "invalid_grant", "expired assertion");

    let stranger = org.assertion(&org.username(), &org.base, 180, Some("not-our-app"));
    let (error, description) = oauth_error_of(org.assertion_request(&stranger).await).await;
    assert_eq!(
        (error.as_str(), description.as_str()),
        ("invalid_client_id", "client identifier invalid")
    );

    // Signed with another key.
    let other = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    use rsa::pkcs8::EncodePrivateKey;
    let pem = other.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    let claims = json!({ "iss": org.emulator.app.client_id, "sub": org.username(), "aud": org.base, "exp": 4_000_000_000u64 });
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap();
    let (error, description) = oauth_error_of(org.assertion_request(&forged).await).await;
    assert_eq!(
        (error.as_str(), description.as_str()),
        ("invalid_grant", "invalid assertion")
    );

    // An inactive user cannot get a session.
    let inactive = org
        .truth("SELECT Username FROM User WHERE IsActive = false LIMIT 1")
        .await[0]["Username"]
        .as_str()
        .unwrap()
        .to_owned();
    let (error, description) = oauth_error_of(org.jwt_login(&inactive, &org.base, 180).await).await;
    assert_eq!(
        (error.as_str(), description.as_str()),
        ("invalid_grant", "inactive user")
    );
}

#[tokio::test]
async fn client_credentials_work_on_my_domain_only() {
    let org = Org::start().await;
    let app = &org.emulator.app;
    let ok = org
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", &app.client_id),
            ("client_secret", &app.client_secret),
        ])
        .await;
    assert_eq!(ok.status(), 200);
    let wrong = org
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", &app.client_id),
            ("client_secret", "nope"),
        ])
        .await;
    assert_eq!(oauth_error_of(wrong).await.0, "invalid_client");

    let login_host = Org::start_with(EmulatorConfig {
        my_domain: false,
        ..EmulatorConfig::default()
    })
    .await;
    let app = &login_host.emulator.app;
    let refused = login_host
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", &app.client_id),
            ("client_secret", &app.client_secret),
        ])
        .await;
    assert_eq!(
        oauth_error_of(refused).await,
        (
            "invalid_grant".to_owned(),
            "request not supported on this domain".to_owned()
        )
    );
}

/// Logs in on the authorize page and returns the redirect's query pairs.
async fn authorize(org: &Org, verifier: &str, state: &str, password: &str) -> reqwest::Response {
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let page = org
        .http
        .get(format!("{}/services/oauth2/authorize", org.base))
        .query(&[
            ("response_type", "code"),
            ("client_id", org.emulator.app.client_id.as_str()),
            ("redirect_uri", "http://127.0.0.1:9/callback"),
            ("state", state),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("name=\"password\""));
    org.http
        .post(format!("{}/services/oauth2/authorize", org.base))
        .form(&[
            ("response_type", "code"),
            ("client_id", org.emulator.app.client_id.as_str()),
            ("redirect_uri", "http://127.0.0.1:9/callback"),
            ("state", state),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("username", org.username().as_str()),
            ("password", password),
            ("decision", "allow"),
        ])
        .send()
        .await
        .unwrap()
}

fn redirect_params(response: &reqwest::Response) -> std::collections::HashMap<String, String> {
    assert_eq!(response.status(), 303, "a redirect back to the client");
    let location = response.headers()["location"].to_str().unwrap();
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

#[tokio::test]
async fn web_server_flow_with_pkce_state_and_refresh() {
    let org = Org::start().await;
    let verifier = "a-long-random-verifier-0123456789-abcdefghijklmnop";
    let wrong_password = authorize(&org, verifier, "s1", "wrong").await;
    assert_eq!(
        wrong_password.status(),
        200,
        "the login page again, with an error"
    );
    assert!(wrong_password
        .text()
        .await
        .unwrap()
        .contains("id=\"error\""));

    let params = redirect_params(&authorize(&org, verifier, "state-42", "emulator").await);
    assert_eq!(params["state"], "state-42");
    let code = params["code"].clone();
    let client_id = org.emulator.app.client_id.clone();
    let exchange = |verifier: &'static str, code: String| {
        let org = &org;
        let client_id = client_id.clone();
        async move {
            org.token_request(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", &client_id),
                ("redirect_uri", "http://127.0.0.1:9/callback"),
                ("code_verifier", verifier),
            ])
            .await
        }
    };
    let (error, description) =
        oauth_error_of(exchange("the-wrong-verifier", code.clone()).await).await;
    assert_eq!(
        (error.as_str(), description.as_str()),
        ("invalid_grant", "invalid code verifier")
    );

    // The failed attempt used the code up; a new authorization gives a fresh one.
    let code = redirect_params(&authorize(&org, verifier, "s2", "emulator").await)["code"].clone();
    let tokens: Value = exchange(
        "a-long-random-verifier-0123456789-abcdefghijklmnop",
        code.clone(),
    )
    .await
    .json()
    .await
    .unwrap();
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("web server flow returns a refresh token")
        .to_owned();
    assert_eq!(
        oauth_error_of(exchange("a-long-random-verifier-0123456789-abcdefghijklmnop", code).await)
            .await
            .0,
        "invalid_grant",
        "a code works once"
    );

    let refreshed = org
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &client_id),
        ])
        .await;
    assert_eq!(refreshed.status(), 200);
    let refreshed: Value = refreshed.json().await.unwrap();
    assert!(
        refreshed.get("refresh_token").is_none(),
        "no rotation unless configured"
    );
    let access = refreshed["access_token"].as_str().unwrap().to_owned();

    // Revoking the refresh token revokes its access tokens.
    let revoke = org
        .http
        .post(format!("{}/services/oauth2/revoke", org.base))
        .form(&[("token", &refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 200);
    let after = org
        .http
        .get(format!("{}/services/data/{V}/limits", org.base))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(after).await.1, "INVALID_SESSION_ID");
    let again = org
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &client_id),
        ])
        .await;
    assert_eq!(
        oauth_error_of(again).await,
        (
            "invalid_grant".to_owned(),
            "expired access/refresh token".to_owned()
        )
    );
}

#[tokio::test]
async fn refresh_tokens_rotate_when_configured() {
    let org = Org::start_with(EmulatorConfig {
        rotate_refresh_tokens: true,
        ..EmulatorConfig::default()
    })
    .await;
    let verifier = "rotation-verifier-0123456789-0123456789-abcdefgh";
    let code = redirect_params(&authorize(&org, verifier, "s", "emulator").await)["code"].clone();
    let client_id = org.emulator.app.client_id.clone();
    let tokens: Value = org
        .token_request(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &client_id),
            ("redirect_uri", "http://127.0.0.1:9/callback"),
            ("code_verifier", verifier),
        ])
        .await
        .json()
        .await
        .unwrap();
    let first = tokens["refresh_token"].as_str().unwrap().to_owned();
    let rotated: Value = org
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &first),
            ("client_id", &client_id),
        ])
        .await
        .json()
        .await
        .unwrap();
    let second = rotated["refresh_token"]
        .as_str()
        .expect("a rotated refresh token");
    assert_ne!(first, second);
    let stale = org
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &first),
            ("client_id", &client_id),
        ])
        .await;
    assert_eq!(oauth_error_of(stale).await.0, "invalid_grant");
}

#[tokio::test]
async fn expired_and_missing_sessions_get_invalid_session_id() {
    let org = Org::start().await;
    let response = org
        .http
        .get(format!("{}/services/data/{V}/limits", org.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Token");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!([{ "message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID" }])
    );

    assert_eq!(
        org.get(&format!("/services/data/{V}/limits"))
            .await
            .status(),
        200
    );
    org.http
        .post(format!("{}/__emulator/sessions/expire", org.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(org.get(&format!("/services/data/{V}/limits")).await)
            .await
            .1,
        "INVALID_SESSION_ID"
    );
}

#[tokio::test]
async fn queries_page_through_next_records_url_at_batch_size_200() {
    let preset = provost_salesforce_emulator::Preset {
        users: 450,
        ..provost_salesforce_emulator::Preset::SMALL
    };
    let org = Org::start_with(EmulatorConfig {
        preset,
        ..EmulatorConfig::default()
    })
    .await;
    let users = org.truth("SELECT Id FROM User").await.len();
    assert_eq!(users, 450);
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut response = org
        .http
        .get(format!("{}/services/data/{V}/query", org.base))
        .query(&[("q", "SELECT Id, Username, Profile.Name FROM User")])
        .header("Sforce-Query-Options", "batchSize=200")
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    loop {
        pages += 1;
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["totalSize"], users);
        let records = body["records"].as_array().unwrap();
        assert!(records.len() <= 200);
        for record in records {
            assert_eq!(record["attributes"]["type"], "User");
            seen.push(record["Id"].as_str().unwrap().to_owned());
        }
        match body.get("nextRecordsUrl").and_then(Value::as_str) {
            Some(next) => {
                assert_eq!(body["done"], false);
                let (prefix, locator) = next.rsplit_once('/').unwrap();
                assert_eq!(prefix, format!("/services/data/{V}/query"));
                let (id, offset) = locator.split_once('-').unwrap();
                assert!(id.starts_with("01g") && id.len() == 18, "{next}");
                assert_eq!(offset.parse::<usize>().unwrap(), seen.len());
                response = org.get(next).await;
            }
            None => {
                assert_eq!(
                    body["done"], true,
                    "nextRecordsUrl is absent on the last page only"
                );
                break;
            }
        }
    }
    assert_eq!(pages, 3);

    // A user holds at most 10 open cursors: the 11th forgets the oldest.
    let mut locators = Vec::new();
    for _ in 0..11 {
        let body: Value = org
            .http
            .get(format!("{}/services/data/{V}/query", org.base))
            .query(&[("q", "SELECT Id FROM User")])
            .header("Sforce-Query-Options", "batchSize=200")
            .bearer_auth(&org.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        locators.push(body["nextRecordsUrl"].as_str().unwrap().to_owned());
    }
    let (status, code, _) = error_of(org.get(&locators[0]).await).await;
    assert_eq!(
        (status.as_u16(), code.as_str()),
        (400, "INVALID_QUERY_LOCATOR")
    );
    assert_eq!(org.get(&locators[10]).await.status(), 200);
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!((seen.len(), unique.len()), (users, users), "every row once");
}

#[tokio::test]
async fn records_have_attributes_nulls_nested_parents_and_null_empty_children() {
    let org = Org::start().await;
    let body = org
        .query_ok("SELECT Id, Username, UserRoleId, UserRole.Name, Profile.UserLicense.Name, (SELECT Id FROM GroupMembers) FROM User WHERE UserRoleId = null AND UserType = 'CsnOnly' LIMIT 1")
        .await;
    let user = &body["records"][0];
    assert!(user["attributes"]["url"]
        .as_str()
        .unwrap()
        .starts_with(&format!("/services/data/{V}/sobjects/User/005")));
    assert_eq!(
        user["UserRoleId"],
        Value::Null,
        "selected null fields are present"
    );
    assert_eq!(user["UserRole"], Value::Null, "a null parent is null");
    assert_eq!(user["Profile"]["attributes"]["type"], "Profile");
    assert_eq!(user["Profile"]["UserLicense"]["Name"], "Chatter Free");
    let id = user["Id"].as_str().unwrap();
    assert_eq!(id.len(), 18);

    // A child relationship with rows is a nested query result; one without rows is null.
    let members: std::collections::HashSet<String> = org
        .truth("SELECT UserOrGroupId FROM GroupMember")
        .await
        .iter()
        .map(|m| m["UserOrGroupId"].as_str().unwrap().to_owned())
        .collect();
    let users = org.truth("SELECT Id FROM User").await;
    let ids: Vec<&str> = users.iter().map(|u| u["Id"].as_str().unwrap()).collect();
    let member = ids
        .iter()
        .find(|id| members.contains(**id))
        .expect("a group member");
    let loner = ids
        .iter()
        .find(|id| !members.contains(**id))
        .expect("a user in no group");
    let children = |id: &str| {
        format!("SELECT Id, (SELECT Id, GroupId FROM GroupMembers) FROM User WHERE Id = '{id}'")
    };
    let with = org.query_ok(&children(member)).await;
    let nested = &with["records"][0]["GroupMembers"];
    assert_eq!(nested["done"], true);
    assert!(nested["totalSize"].as_u64().unwrap() >= 1);
    assert_eq!(nested["records"][0]["attributes"]["type"], "GroupMember");
    let without = org.query_ok(&children(loner)).await;
    assert_eq!(without["records"][0]["GroupMembers"], Value::Null);
}

#[tokio::test]
async fn the_effective_permission_semi_join_from_salesforce_md_works() {
    let org = Org::start().await;
    let admin = org
        .first_id(&format!(
            "SELECT Id FROM User WHERE Username = '{}'",
            org.username()
        ))
        .await;
    let body = org
        .query_ok(&format!(
            "SELECT Id, PermissionsModifyAllData, PermissionsCustomizeApplication FROM PermissionSet \
             WHERE Id IN (SELECT PermissionSetId FROM PermissionSetAssignment WHERE AssigneeId = '{}')",
            &admin[..15]
        ))
        .await;
    let records = body["records"].as_array().unwrap();
    assert!(!records.is_empty());
    assert!(
        records
            .iter()
            .any(|ps| ps["PermissionsModifyAllData"] == true),
        "the admin profile's set grants it"
    );
}

#[tokio::test]
async fn soql_filters_order_limit_offset_and_count() {
    let org = Org::start().await;
    let all = org
        .truth("SELECT Id, LastName, IsActive, UserType, LastLoginDate FROM User")
        .await;
    let expected = all
        .iter()
        .filter(|u| u["IsActive"] == true && u["UserType"] != "Guest")
        .count();
    let count = org
        .query_ok("SELECT COUNT() FROM User WHERE IsActive = true AND UserType NOT IN ('Guest')")
        .await;
    assert_eq!(count["totalSize"], expected);
    assert_eq!(count["records"], json!([]));

    let ordered = org
        .query_ok("SELECT Id, LastName FROM User ORDER BY LastName DESC, Id LIMIT 5 OFFSET 2")
        .await;
    let mut names: Vec<(String, String)> = all
        .iter()
        .map(|u| {
            (
                u["LastName"].as_str().unwrap().to_lowercase(),
                u["Id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    names.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let got: Vec<String> = ordered["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_owned())
        .collect();
    let want: Vec<String> = names[2..7].iter().map(|n| n.1.clone()).collect();
    assert_eq!(got, want);

    // A LIMIT picks the first rows of the order without sorting the whole table: ties (most
    // users share `IsActive`) stay in ID order, as the whole table ordered gives them.
    let ids = |page: &Value| -> Vec<String> {
        page["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["Id"].as_str().unwrap().to_owned())
            .collect()
    };
    for order in [
        "IsActive",
        "IsActive DESC, LastName",
        "LastLoginDate DESC NULLS LAST",
        "LastLoginDate NULLS FIRST, IsActive DESC",
    ] {
        let whole = ids(&org
            .query_ok(&format!("SELECT Id FROM User ORDER BY {order}"))
            .await);
        assert!(whole.len() > 40 && whole.len() < 2000, "{}", whole.len());
        for (limit, offset) in [
            (1, 0),
            (30, 0),
            (30, 5),
            (5, whole.len() - 10),
            (40, whole.len() - 10),
        ] {
            let limited = org
                .query_ok(&format!(
                    "SELECT Id FROM User ORDER BY {order} LIMIT {limit} OFFSET {offset}"
                ))
                .await;
            let end = (offset + limit).min(whole.len());
            assert_eq!(
                ids(&limited),
                whole[offset..end],
                "ORDER BY {order} LIMIT {limit} OFFSET {offset}"
            );
        }
    }

    let never = org
        .query_ok("SELECT Id FROM User WHERE LastLoginDate = null")
        .await;
    assert_eq!(
        never["totalSize"],
        all.iter().filter(|u| u["LastLoginDate"].is_null()).count()
    );

    let quoted = org
        .query_ok("SELECT Id, LastName FROM User WHERE LastName LIKE '%\\'%'")
        .await;
    let with_quote = all
        .iter()
        .filter(|u| u["LastName"].as_str().unwrap().contains('\''))
        .count();
    assert_eq!(quoted["totalSize"], with_quote);
    assert!(with_quote > 0, "the generated org has names with quotes");
}

/// Conditions on a record's own `Id` narrow the scan to a key range (as Salesforce's index on
/// it does): every combination selects what the filter selects from the whole table.
#[tokio::test]
async fn soql_id_ranges_select_what_the_whole_table_gives() {
    let org = Org::start().await;
    let all = org.truth("SELECT Id, IsActive FROM User").await;
    let mut ids: Vec<(String, bool)> = all
        .iter()
        .map(|u| {
            (
                u["Id"].as_str().unwrap().to_owned(),
                u["IsActive"].as_bool().unwrap(),
            )
        })
        .collect();
    ids.sort();
    assert!(ids.len() > 40, "{}", ids.len());
    // Leaked, so that each case's test can hold them.
    let id = |i: usize| -> &'static str { Box::leak(ids[i].0.clone().into_boxed_str()) };
    let (a, b, first, last) = (id(10), id(30), id(0), id(ids.len() - 1));
    type Keep = Box<dyn Fn(&str, bool) -> bool>;
    let cases: Vec<(String, Keep)> = vec![
        (format!("Id > '{a}'"), Box::new(move |id, _| id > a)),
        (format!("Id >= '{a}'"), Box::new(move |id, _| id >= a)),
        (format!("Id < '{a}'"), Box::new(move |id, _| id < a)),
        (format!("Id <= '{a}'"), Box::new(move |id, _| id <= a)),
        (format!("Id = '{a}'"), Box::new(move |id, _| id == a)),
        (
            format!("Id > '{a}' AND Id <= '{b}'"),
            Box::new(move |id, _| id > a && id <= b),
        ),
        (
            format!("Id >= '{a}' AND Id < '{b}' AND IsActive = true"),
            Box::new(move |id, active| id >= a && id < b && active),
        ),
        // The narrower of two bounds on one side.
        (
            format!("Id > '{a}' AND Id >= '{b}'"),
            Box::new(move |id, _| id >= b),
        ),
        (
            format!("Id < '{b}' AND Id <= '{a}'"),
            Box::new(move |id, _| id <= a),
        ),
        (
            format!("Id >= '{a}' AND Id > '{a}'"),
            Box::new(move |id, _| id > a),
        ),
        // Empty ranges: inverted, and one ID excluded at either end.
        (format!("Id > '{b}' AND Id < '{a}'"), Box::new(|_, _| false)),
        (format!("Id > '{a}' AND Id < '{a}'"), Box::new(|_, _| false)),
        (
            format!("Id >= '{a}' AND Id < '{a}'"),
            Box::new(|_, _| false),
        ),
        (
            format!("Id > '{a}' AND Id <= '{a}'"),
            Box::new(|_, _| false),
        ),
        (
            format!("Id >= '{a}' AND Id <= '{a}'"),
            Box::new(move |id, _| id == a),
        ),
        (format!("Id < '{first}'"), Box::new(|_, _| false)),
        (format!("Id > '{last}'"), Box::new(|_, _| false)),
        // Not narrowed: an OR, a NOT, another object's Id.
        (
            format!("Id > '{b}' OR Id < '{a}'"),
            Box::new(move |id, _| id > b || id < a),
        ),
        (format!("NOT (Id > '{a}')"), Box::new(move |id, _| id <= a)),
        (
            format!("ManagerId > '{a}' AND Id < '{b}'"),
            Box::new(|_, _| true),
        ),
    ];
    let manager: std::collections::HashMap<String, Option<String>> = org
        .truth("SELECT Id, ManagerId FROM User")
        .await
        .iter()
        .map(|u| {
            (
                u["Id"].as_str().unwrap().to_owned(),
                u["ManagerId"].as_str().map(str::to_owned),
            )
        })
        .collect();
    for (condition, keep) in cases {
        let mut want: Vec<&str> = ids
            .iter()
            .filter(|(id, active)| keep(id, *active))
            .map(|(id, _)| id.as_str())
            .collect();
        if condition.starts_with("ManagerId") {
            want.retain(|id| manager[*id].as_deref().is_some_and(|m| m > a) && *id < b);
        }
        for order in ["", " ORDER BY Id"] {
            let page = org
                .query_ok(&format!(
                    "SELECT Id FROM User WHERE {condition}{order} LIMIT 2000"
                ))
                .await;
            let mut got: Vec<&str> = page["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["Id"].as_str().unwrap())
                .collect();
            got.sort_unstable();
            assert_eq!(got, want, "WHERE {condition}{order}");
        }
        let count = org
            .query_ok(&format!("SELECT COUNT() FROM User WHERE {condition}"))
            .await;
        assert_eq!(count["totalSize"], want.len(), "COUNT() WHERE {condition}");
    }
}

#[tokio::test]
async fn wrong_queries_get_salesforces_error_codes_and_shapes() {
    let org = Org::start().await;
    let (status, code, message) = error_of(org.query("SELECT Id, Nme FROM User").await).await;
    assert_eq!((status.as_u16(), code.as_str()), (400, "INVALID_FIELD"));
    assert!(message.starts_with("SELECT Id, Nme FROM User\n           ^\nERROR at Row:1:Column:12\nNo such column 'Nme' on entity 'User'."), "{message}");

    let (_, code, message) = error_of(org.query("SELECT Id FROM Usr").await).await;
    assert_eq!(code, "INVALID_TYPE");
    assert!(
        message.contains("sObject type 'Usr' is not supported."),
        "{message}"
    );

    let (_, code, _) = error_of(org.query("SELECT Id FROM User WHERE").await).await;
    assert_eq!(code, "MALFORMED_QUERY");
    let (_, code, message) = error_of(
        org.query("SELECT Id FROM User WHERE IsActive = 'yes'")
            .await,
    )
    .await;
    assert_eq!(code, "INVALID_QUERY_FILTER_OPERATOR");
    assert!(message.contains("must be of type boolean"), "{message}");
    let (_, code, _) = error_of(org.query("SELECT Profil.Name FROM User").await).await;
    assert_eq!(code, "INVALID_FIELD");
    let (_, code, _) = error_of(
        org.query("SELECT Id FROM User WHERE Id = 'not-an-id'")
            .await,
    )
    .await;
    assert_eq!(code, "INVALID_QUERY_FILTER_OPERATOR");
}

#[tokio::test]
async fn an_org_without_permission_set_groups_answers_invalid_type() {
    let org = Org::start().await;
    assert_eq!(
        org.query("SELECT Id FROM PermissionSetGroup")
            .await
            .status(),
        200
    );
    org.http
        .put(format!("{}/__emulator/features", org.base))
        .json(&json!({ "permission_set_groups": false }))
        .send()
        .await
        .unwrap();
    let (status, code, message) = error_of(
        org.query("SELECT Id, DeveloperName FROM PermissionSetGroup")
            .await,
    )
    .await;
    assert_eq!((status.as_u16(), code.as_str()), (400, "INVALID_TYPE"));
    assert!(
        message.contains("sObject type 'PermissionSetGroup' is not supported"),
        "{message}"
    );
}

/// Field-level security and features decide which columns exist: describe lists only those,
/// and SOQL naming another is INVALID_FIELD, as in a real org.
#[tokio::test]
async fn hidden_fields_and_lookups_to_missing_objects_are_invalid_fields() {
    let org = Org::start().await;
    let describe = |object: &'static str| {
        let org = &org;
        async move {
            let body: Value = org
                .get(&format!("/services/data/{V}/sobjects/{object}/describe"))
                .await
                .json()
                .await
                .unwrap();
            body["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert!(describe("User").await.contains(&"LastLoginDate".to_owned()));
    let hide = |fields: Value| {
        let org = &org;
        async move {
            org.http
                .put(format!("{}/__emulator/hidden-fields", org.base))
                .json(&json!({ "fields": fields }))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(hide(json!(["User.LastLoginDate"])).await.status(), 200);
    assert!(!describe("User").await.contains(&"LastLoginDate".to_owned()));
    let (status, code, message) =
        error_of(org.query("SELECT Id, LastLoginDate FROM User").await).await;
    assert_eq!((status.as_u16(), code.as_str()), (400, "INVALID_FIELD"));
    assert!(
        message.contains("No such column 'LastLoginDate' on entity 'User'"),
        "{message}"
    );
    // What cannot be hidden, or does not exist, is refused naming it.
    for (fields, named) in [
        (json!(["User.Id"]), "User.Id"),
        (json!(["User.Nope"]), "Nope"),
        (json!(["Nothing.Id"]), "Nothing"),
        (json!(["User"]), "Object.Field"),
    ] {
        let response = hide(fields).await;
        assert_eq!(response.status(), 400);
        let text = response.text().await.unwrap();
        assert!(text.contains(named), "{text}");
    }
    assert_eq!(hide(json!([])).await.status(), 200);
    org.query_ok("SELECT Id, LastLoginDate FROM User").await;

    // Without permission set groups, the lookups to them are gone too.
    assert!(describe("PermissionSet")
        .await
        .contains(&"PermissionSetGroupId".to_owned()));
    org.http
        .put(format!("{}/__emulator/features", org.base))
        .json(&json!({ "permission_set_groups": false }))
        .send()
        .await
        .unwrap();
    assert!(!describe("PermissionSet")
        .await
        .contains(&"PermissionSetGroupId".to_owned()));
    let (status, code, _) = error_of(
        org.query("SELECT Id, PermissionSetGroupId FROM PermissionSetAssignment")
            .await,
    )
    .await;
    assert_eq!((status.as_u16(), code.as_str()), (400, "INVALID_FIELD"));
}

#[tokio::test]
async fn assignment_rules_match_salesforce() {
    let org = Org::start().await;
    let user = org.first_id("SELECT Id FROM User WHERE UserType = 'Standard' AND IsActive = true AND Profile.UserLicense.Name = 'Salesforce'").await;
    let free = org.first_id("SELECT Id FROM PermissionSet WHERE IsOwnedByProfile = false AND Type = 'Regular' AND LicenseId = null").await;
    let already: Vec<Value> = org.truth(&format!("SELECT Id FROM PermissionSetAssignment WHERE AssigneeId = '{user}' AND PermissionSetId = '{free}'")).await;
    for existing in already {
        org.send(
            reqwest::Method::DELETE,
            &format!(
                "/sobjects/PermissionSetAssignment/{}",
                existing["Id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    }

    let created = org
        .send(
            reqwest::Method::POST,
            "/sobjects/PermissionSetAssignment",
            json!({ "AssigneeId": user, "PermissionSetId": free }),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["success"], true);
    assert_eq!(created["errors"], json!([]));
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("0Pa"));

    let duplicate = org
        .send(
            reqwest::Method::POST,
            "/sobjects/PermissionSetAssignment",
            json!({ "AssigneeId": user, "PermissionSetId": free }),
        )
        .await;
    let (status, code, message) = error_of(duplicate).await;
    assert_eq!((status.as_u16(), code.as_str()), (400, "DUPLICATE_VALUE"));
    assert!(
        message.contains("Duplicate PermissionSetAssignment"),
        "{message}"
    );

    let profile_set = org
        .first_id("SELECT Id FROM PermissionSet WHERE IsOwnedByProfile = true")
        .await;
    let (_, code, _) = error_of(
        org.send(
            reqwest::Method::POST,
            "/sobjects/PermissionSetAssignment",
            json!({ "AssigneeId": user, "PermissionSetId": profile_set }),
        )
        .await,
    )
    .await;
    assert_eq!(code, "FIELD_INTEGRITY_EXCEPTION");

    let chatter = org
        .first_id("SELECT Id FROM User WHERE UserType = 'CsnOnly'")
        .await;
    let licensed = org.first_id("SELECT Id FROM PermissionSet WHERE LicenseId != null AND IsOwnedByProfile = false AND Type = 'Regular'").await;
    let (_, code, message) = error_of(
        org.send(
            reqwest::Method::POST,
            "/sobjects/PermissionSetAssignment",
            json!({ "AssigneeId": chatter, "PermissionSetId": licensed }),
        )
        .await,
    )
    .await;
    assert_eq!(code, "FIELD_INTEGRITY_EXCEPTION");
    assert!(
        message.starts_with("The user license doesn't allow the permission:"),
        "{message}"
    );

    // Deleted rows show in queryAll with IsDeleted.
    assert_eq!(
        org.send(
            reqwest::Method::DELETE,
            &format!("/sobjects/PermissionSetAssignment/{id}"),
            json!({})
        )
        .await
        .status(),
        204
    );
    let all: Value = org
        .http
        .get(format!("{}/services/data/{V}/queryAll", org.base))
        .query(&[(
            "q",
            format!("SELECT Id, IsDeleted FROM PermissionSetAssignment WHERE Id = '{id}'"),
        )])
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["records"][0]["IsDeleted"], true);
    assert_eq!(
        org.query_ok(&format!(
            "SELECT Id FROM PermissionSetAssignment WHERE Id = '{id}'"
        ))
        .await["totalSize"],
        0
    );
    let gone = org
        .get(&format!(
            "/services/data/{V}/sobjects/PermissionSetAssignment/{id}"
        ))
        .await;
    assert_eq!(error_of(gone).await.1, "ENTITY_IS_DELETED");
}

#[tokio::test]
async fn user_rules_required_fields_unique_usernames_no_deletes_freezing() {
    let org = Org::start().await;
    let profile = org
        .first_id("SELECT Id FROM Profile WHERE Name = 'Standard User'")
        .await;
    let (status, code, message) = error_of(
        org.send(
            reqwest::Method::POST,
            "/sobjects/User",
            json!({ "Username": "new@acme.example.com", "ProfileId": profile }),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status.as_u16(), code.as_str()),
        (400, "REQUIRED_FIELD_MISSING")
    );
    assert!(
        message.starts_with("Required fields are missing: ["),
        "{message}"
    );
    assert!(message.contains("LastName"));

    let new_user = json!({
        "Username": "d'angelo.new@acme.example.com", "LastName": "D'Angelo", "FirstName": "Zoë", "Email": "dangelo@acme.example.com",
        "Alias": "zdang", "TimeZoneSidKey": "Europe/Paris", "LocaleSidKey": "fr_FR", "EmailEncodingKey": "UTF-8",
        "LanguageLocaleKey": "fr", "ProfileId": profile,
    });
    let created = org
        .send(reqwest::Method::POST, "/sobjects/User", new_user.clone())
        .await;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, code, _) = error_of(
        org.send(reqwest::Method::POST, "/sobjects/User", new_user)
            .await,
    )
    .await;
    assert_eq!(code, "DUPLICATE_USERNAME");

    // The new user has a login row, the profile's permission set, and a name.
    let user = org.query_ok("SELECT Name, UserType, IsActive FROM User WHERE Username = 'd\\'angelo.new@acme.example.com'").await;
    assert_eq!(user["records"][0]["Name"], "Zoë D'Angelo");
    assert_eq!(user["records"][0]["IsActive"], true);
    let login = org
        .query_ok(&format!(
            "SELECT Id, IsFrozen FROM UserLogin WHERE UserId = '{id}'"
        ))
        .await;
    assert_eq!(login["records"][0]["IsFrozen"], false);
    let login_id = login["records"][0]["Id"].as_str().unwrap().to_owned();
    assert_eq!(
        org.query_ok(&format!(
            "SELECT COUNT() FROM PermissionSetAssignment WHERE AssigneeId = '{id}'"
        ))
        .await["totalSize"],
        1
    );

    let (_, code, _) = error_of(
        org.send(
            reqwest::Method::DELETE,
            &format!("/sobjects/User/{id}"),
            json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(
        code, "DELETE_FAILED",
        "users are deactivated, never deleted"
    );

    assert_eq!(
        org.send(
            reqwest::Method::PATCH,
            &format!("/sobjects/UserLogin/{login_id}"),
            json!({ "IsFrozen": true })
        )
        .await
        .status(),
        204
    );
    assert_eq!(
        org.query_ok(&format!(
            "SELECT IsFrozen FROM UserLogin WHERE UserId = '{id}'"
        ))
        .await["records"][0]["IsFrozen"],
        true
    );
    assert_eq!(
        org.send(
            reqwest::Method::PATCH,
            &format!("/sobjects/User/{}", &id[..15]),
            json!({ "IsActive": false })
        )
        .await
        .status(),
        204,
        "15-character ids are accepted"
    );
    assert_eq!(
        org.query_ok(&format!("SELECT IsActive FROM User WHERE Id = '{id}'"))
            .await["records"][0]["IsActive"],
        false
    );

    let (_, code, _) = error_of(
        org.send(reqwest::Method::POST, "/sobjects/User", json!({ "Id": id }))
            .await,
    )
    .await;
    assert_eq!(code, "INVALID_FIELD", "an Id in a create body");
}

#[tokio::test]
async fn composite_collections_report_per_record_and_roll_back_all_or_none() {
    let org = Org::start().await;
    let users: Vec<String> = org
        .truth("SELECT Id FROM User WHERE UserType = 'Standard' AND IsActive = true")
        .await
        .iter()
        .map(|u| u["Id"].as_str().unwrap().to_owned())
        .collect();
    let set = org
        .first_id("SELECT Id FROM PermissionSet WHERE Name = 'Sales_Read_0'")
        .await;
    let holders: std::collections::HashSet<String> = org
        .truth(&format!(
            "SELECT AssigneeId FROM PermissionSetAssignment WHERE PermissionSetId = '{set}'"
        ))
        .await
        .iter()
        .map(|a| a["AssigneeId"].as_str().unwrap().to_owned())
        .collect();
    let fresh: Vec<&String> = users
        .iter()
        .filter(|u| !holders.contains(*u))
        .take(2)
        .collect();
    let held = holders.iter().next().expect("someone holds Sales_Read_0");
    let record = |user: &str| json!({ "attributes": { "type": "PermissionSetAssignment" }, "AssigneeId": user, "PermissionSetId": set });

    let before = org
        .truth("SELECT Id FROM PermissionSetAssignment")
        .await
        .len();
    let rolled_back: Value = org
        .send(
            reqwest::Method::POST,
            "/composite/sobjects",
            json!({ "allOrNone": true, "records": [record(fresh[0]), record(held)] }),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        rolled_back[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(rolled_back[1]["errors"][0]["statusCode"], "DUPLICATE_VALUE");
    assert_eq!(
        org.truth("SELECT Id FROM PermissionSetAssignment")
            .await
            .len(),
        before,
        "nothing kept"
    );

    let partial: Value = org
        .send(reqwest::Method::POST, "/composite/sobjects", json!({ "allOrNone": false, "records": [record(fresh[0]), record(held), record(fresh[1])] }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(partial[0]["success"], true);
    assert!(partial[0]["id"].as_str().unwrap().starts_with("0Pa"));
    assert_eq!(
        partial[1],
        json!({ "success": false, "errors": [{ "statusCode": "DUPLICATE_VALUE", "message": partial[1]["errors"][0]["message"], "fields": [] }] })
    );
    assert_eq!(partial[2]["success"], true);
    let ids = format!(
        "{},{}",
        partial[0]["id"].as_str().unwrap(),
        partial[2]["id"].as_str().unwrap()
    );
    let deleted: Value = org
        .http
        .delete(format!("{}/services/data/{V}/composite/sobjects", org.base))
        .query(&[("ids", ids.as_str()), ("allOrNone", "false")])
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        deleted
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["success"] == true)
            .count(),
        2
    );

    let too_many: Vec<Value> = (0..201).map(|_| record(fresh[0])).collect();
    let (status, _, _) = error_of(
        org.send(
            reqwest::Method::POST,
            "/composite/sobjects",
            json!({ "records": too_many }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn composite_runs_subrequests_with_references_as_one_call() {
    let org = Org::start().await;
    let before = org.emulator.usage.lock().used;
    let body: Value = org
        .send(
            reqwest::Method::POST,
            "/composite",
            json!({ "compositeRequest": [
                { "method": "GET", "url": format!("/services/data/{V}/query?q=SELECT+Id+FROM+PermissionSet+WHERE+Name+=+'Sales_Read_0'"), "referenceId": "set" },
                { "method": "GET", "url": format!("/services/data/{V}/sobjects/PermissionSet/@{{set.records[0].Id}}?fields=Name"), "referenceId": "detail" },
            ] }),
        )
        .await
        .json()
        .await
        .unwrap();
    let responses = body["compositeResponse"].as_array().unwrap();
    assert_eq!(responses[0]["httpStatusCode"], 200);
    assert_eq!(responses[1]["httpStatusCode"], 200);
    assert_eq!(responses[1]["body"]["Name"], "Sales_Read_0");
    assert_eq!(responses[1]["referenceId"], "detail");
    assert_eq!(org.emulator.usage.lock().used, before + 1, "one API call");
}

#[tokio::test]
async fn composite_queries_take_their_own_headers_and_at_most_five_go_in_one_call() {
    let org = Org::start().await;
    let query = |n: usize| {
        json!({
            "method": "GET",
            "url": format!("/services/data/{V}/query?q=SELECT+Id+FROM+PermissionSetAssignment+ORDER+BY+Id"),
            "referenceId": format!("q{n}"),
            "httpHeaders": { "Sforce-Query-Options": "batchSize=200" },
        })
    };
    let whole: Value = org
        .get(&format!(
            "/services/data/{V}/query?q=SELECT+Id+FROM+PermissionSetAssignment+ORDER+BY+Id"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        whole["totalSize"].as_u64().unwrap() > 200,
        "{}",
        whole["totalSize"]
    );
    let before = org.emulator.usage.lock().used;
    let five: Vec<Value> = (0..5).map(query).collect();
    let body: Value = org
        .send(
            reqwest::Method::POST,
            "/composite",
            json!({ "compositeRequest": five }),
        )
        .await
        .json()
        .await
        .unwrap();
    let responses = body["compositeResponse"].as_array().unwrap();
    assert_eq!(responses.len(), 5);
    for response in responses {
        assert_eq!(response["httpStatusCode"], 200);
        // The subrequest's own batch size: 200 records and a next page.
        assert_eq!(response["body"]["records"].as_array().unwrap().len(), 200);
        assert_eq!(response["body"]["totalSize"], whole["totalSize"]);
        assert!(response["body"]["nextRecordsUrl"].is_string());
    }
    assert_eq!(org.emulator.usage.lock().used, before + 1, "one API call");

    // The call's own headers are not a subrequest's to set.
    let mut forged = query(0);
    forged["httpHeaders"]["Authorization"] = json!("Bearer someone-else");
    let body: Value = org
        .send(
            reqwest::Method::POST,
            "/composite",
            json!({ "compositeRequest": [forged] }),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["compositeResponse"][0]["httpStatusCode"], 400,
        "{body}"
    );

    let six: Vec<Value> = (0..6).map(query).collect();
    let refused = org
        .send(
            reqwest::Method::POST,
            "/composite",
            json!({ "compositeRequest": six }),
        )
        .await;
    assert_eq!(refused.status(), 400);
    let errors: Value = refused.json().await.unwrap();
    assert!(
        errors[0]["message"].as_str().unwrap().contains("5 query"),
        "{errors}"
    );
}

#[tokio::test]
async fn the_daily_limit_runs_out_and_every_response_carries_limit_info() {
    let org = Org::start().await;
    org.http
        .put(format!("{}/__emulator/limits", org.base))
        .json(&json!({ "used": 0, "max": 3 }))
        .send()
        .await
        .unwrap();
    for n in 1..=3 {
        let response = org.get(&format!("/services/data/{V}/limits")).await;
        assert_eq!(
            response.headers()["sforce-limit-info"],
            format!("api-usage={n}/3"),
            "USED/MAX, used first"
        );
        if n == 3 {
            let body: Value = response.json().await.unwrap();
            assert_eq!(
                body["DailyApiRequests"],
                json!({ "Max": 3, "Remaining": 0 })
            );
        }
    }
    let refused = org.get(&format!("/services/data/{V}/limits")).await;
    assert_eq!(refused.headers()["sforce-limit-info"], "api-usage=3/3");
    let (status, code, message) = error_of(refused).await;
    assert_eq!(
        (status.as_u16(), code.as_str(), message.as_str()),
        (
            403,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded."
        )
    );
}

#[tokio::test]
async fn injected_faults_behave_as_salesforce_on_a_bad_day() {
    let org = Org::start().await;
    let limits = format!("/services/data/{V}/limits");

    org.set_faults(json!({ "unavailable_rate": 1.0 })).await;
    let (status, code, _) = error_of(org.get(&limits).await).await;
    assert_eq!(
        (status.as_u16(), code.as_str()),
        (503, "SERVER_UNAVAILABLE")
    );

    org.set_faults(json!({ "html_error_rate": 1.0 })).await;
    let html = org.get(&limits).await;
    assert!(html.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(html.text().await.unwrap().starts_with("<!DOCTYPE html>"));

    org.set_faults(json!({ "cut_connection_rate": 1.0 })).await;
    let cut = org.query("SELECT Id, Username FROM User").await;
    assert_eq!(cut.status(), 200, "the headers arrive");
    assert!(cut.bytes().await.is_err(), "the body is cut off");

    org.set_faults(json!({ "lock_row_rate": 1.0 })).await;
    let login = org.first_id("SELECT Id FROM UserLogin LIMIT 1").await;
    let (_, code, _) = error_of(
        org.send(
            reqwest::Method::PATCH,
            &format!("/sobjects/UserLogin/{login}"),
            json!({ "IsFrozen": false }),
        )
        .await,
    )
    .await;
    assert_eq!(code, "UNABLE_TO_LOCK_ROW");

    org.set_faults(json!({ "max_concurrent_requests": 1, "latency_ms": 150 }))
        .await;
    let (a, b) = tokio::join!(org.get(&limits), async {
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        org.get(&limits).await
    });
    assert_eq!(a.status(), 200);
    let (status, code, message) = error_of(b).await;
    assert_eq!(
        (status.as_u16(), code.as_str()),
        (403, "REQUEST_LIMIT_EXCEEDED")
    );
    assert!(message.starts_with("ConcurrentRequests"), "{message}");

    org.set_faults(json!({ "expire_sessions_after_calls": 2 }))
        .await;
    let fresh: Value = org
        .jwt_login(&org.username(), &org.base, 180)
        .await
        .json()
        .await
        .unwrap();
    let token = fresh["access_token"].as_str().unwrap();
    let call = || {
        org.http
            .get(format!("{}{limits}", org.base))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(call().await.unwrap().status(), 200);
    assert_eq!(call().await.unwrap().status(), 200);
    let (status, code, _) = error_of(call().await.unwrap()).await;
    assert_eq!(
        (status.as_u16(), code.as_str()),
        (401, "INVALID_SESSION_ID"),
        "the session expired after 2 calls"
    );

    let bad = org
        .http
        .put(format!("{}/__emulator/faults", org.base))
        .json(&json!({ "unavailable_rate": 2.0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn admin_changes_are_seen_by_clients_and_counted_calls_add_up() {
    let org = Org::start().await;
    org.http
        .delete(format!("{}/__emulator/calls", org.base))
        .send()
        .await
        .unwrap();
    let user = org
        .first_id("SELECT Id FROM User WHERE UserType = 'Standard' AND IsActive = true")
        .await;
    let response = org
        .http
        .patch(format!("{}/__emulator/records/User/{user}", org.base))
        .json(&json!({ "Department": "Audit" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let body = org
        .query_ok(&format!(
            "SELECT Department, SystemModstamp FROM User WHERE Id = '{user}'"
        ))
        .await;
    assert_eq!(body["records"][0]["Department"], "Audit");
    let stamp = body["records"][0]["SystemModstamp"].as_str().unwrap();
    assert!(stamp.ends_with("+0000") && stamp.len() == 28, "{stamp}");
    let calls: Value = org
        .http
        .get(format!("{}/__emulator/calls", org.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(calls["rest_calls"], 1);
    assert_eq!(calls["by_endpoint"]["GET query"], 1);
}

#[tokio::test]
async fn updated_and_deleted_endpoints_exist_for_user_profile_and_group_only() {
    let org = Org::start().await;
    let format = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (start, end) = (format(now - 60_000), format(now + 60_000));
    let user = org
        .first_id("SELECT Id FROM User WHERE UserType = 'Standard'")
        .await;
    org.http
        .patch(format!("{}/__emulator/records/User/{user}", org.base))
        .json(&json!({ "Title": "Auditor" }))
        .send()
        .await
        .unwrap();
    let group = org
        .first_id("SELECT Id FROM Group WHERE Type = 'Regular'")
        .await;
    org.http
        .delete(format!("{}/__emulator/records/Group/{group}", org.base))
        .send()
        .await
        .unwrap();
    let window = |path: &str| {
        org.http
            .get(format!("{}/services/data/{V}/sobjects/{path}", org.base))
            .query(&[("start", start.as_str()), ("end", end.as_str())])
            .bearer_auth(&org.token)
            .send()
    };
    let updated: Value = window("User/updated").await.unwrap().json().await.unwrap();
    assert_eq!(
        updated["ids"],
        json!([user]),
        "only the user changed in the window"
    );
    assert!(updated["latestDateCovered"]
        .as_str()
        .unwrap()
        .ends_with("+0000"));
    let deleted: Value = window("Group/deleted").await.unwrap().json().await.unwrap();
    assert_eq!(deleted["deletedRecords"][0]["id"], group);
    let (status, code, _) =
        error_of(window("PermissionSetAssignment/updated").await.unwrap()).await;
    assert_eq!(
        (status.as_u16(), code.as_str()),
        (400, "INVALID_TYPE"),
        "not replicateable: compare key sets instead"
    );
}

#[tokio::test]
async fn versions_describe_userinfo_identity_and_expiration_dates() {
    let org = Org::start().await;
    let versions: Value = org
        .http
        .get(format!("{}/services/data", org.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed: Vec<&str> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&"62.0"));
    assert_eq!(versions[0]["url"], format!("/services/data/v{}", listed[0]));
    assert_eq!(
        error_of(org.get("/services/data/v12.0/limits").await)
            .await
            .1,
        "NOT_FOUND"
    );

    let describe: Value = org
        .get(&format!(
            "/services/data/{V}/sobjects/PermissionSetAssignment/describe"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(describe["keyPrefix"], "0Pa");
    let fields = describe["fields"].as_array().unwrap();
    let assignee = fields.iter().find(|f| f["name"] == "AssigneeId").unwrap();
    assert_eq!(assignee["type"], "reference");
    assert_eq!(assignee["referenceTo"], json!(["User"]));
    assert_eq!(assignee["relationshipName"], "Assignee");
    let user_describe: Value = org
        .get(&format!("/services/data/{V}/sobjects/User/describe"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(user_describe["deletable"], false);
    assert!(user_describe["childRelationships"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["relationshipName"] == "PermissionSetAssignments"));

    let info: Value = org
        .get("/services/oauth2/userinfo")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["preferred_username"], org.username());
    let identity_url = info["sub"].as_str().unwrap().to_owned();
    let identity: Value = org
        .http
        .get(&identity_url)
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(identity["username"], org.username());
    assert_eq!(identity["user_id"], info["user_id"]);
    assert_eq!(
        org.http.get(&identity_url).send().await.unwrap().status(),
        403,
        "the identity URL needs the token"
    );

    // Time-bound access: ExpirationDate is kept on the assignment.
    let user = org.first_id("SELECT Id FROM User WHERE UserType = 'Standard' AND IsActive = true AND Profile.UserLicense.Name = 'Salesforce'").await;
    let held: Vec<String> = org
        .truth(&format!(
            "SELECT PermissionSetId FROM PermissionSetAssignment WHERE AssigneeId = '{user}'"
        ))
        .await
        .iter()
        .map(|a| a["PermissionSetId"].as_str().unwrap().to_owned())
        .collect();
    let set = org
        .truth("SELECT Id FROM PermissionSet WHERE IsOwnedByProfile = false AND Type = 'Regular' AND LicenseId = null")
        .await
        .into_iter()
        .map(|s| s["Id"].as_str().unwrap().to_owned())
        .find(|id| !held.contains(id))
        .unwrap();
    let created: Value = org
        .send(reqwest::Method::POST, "/sobjects/PermissionSetAssignment", json!({ "AssigneeId": user, "PermissionSetId": set, "ExpirationDate": "2030-03-31T23:59:00.000+0000" }))
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let read = org.query_ok(&format!("SELECT ExpirationDate FROM PermissionSetAssignment WHERE Id = '{id}' AND ExpirationDate > 2030-01-01T00:00:00Z")).await;
    assert_eq!(
        read["records"][0]["ExpirationDate"],
        "2030-03-31T23:59:00.000+0000"
    );
}

#[tokio::test]
async fn access_rows_refuse_duplicates_and_go_with_their_permission_set() {
    let org = Org::start().await;
    let set: Value = org
        .send(
            reqwest::Method::POST,
            "/sobjects/PermissionSet",
            json!({"Name": "Lead_Fax", "Label": "Lead Fax"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let set = set["id"].as_str().unwrap().to_owned();
    let created = org
        .send(
            reqwest::Method::POST,
            "/sobjects/FieldPermissions",
            json!({"ParentId": set, "SobjectType": "Lead", "Field": "Lead.Fax__c", "PermissionsRead": true}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let (status, code, _) = error_of(
        org.send(
            reqwest::Method::POST,
            "/sobjects/FieldPermissions",
            json!({"ParentId": set, "SobjectType": "Lead", "Field": "Lead.Fax__c", "PermissionsRead": true}),
        )
        .await,
    )
    .await;
    assert_eq!((status.as_u16(), code.as_str()), (400, "DUPLICATE_VALUE"));

    // A group's component is a permission set or a muting set, nothing else.
    let group = org.first_id("SELECT Id FROM PermissionSetGroup").await;
    let user = org.first_id("SELECT Id FROM User").await;
    let (_, code, _) = error_of(
        org.send(
            reqwest::Method::POST,
            "/sobjects/PermissionSetGroupComponent",
            json!({"PermissionSetGroupId": group, "PermissionSetId": user}),
        )
        .await,
    )
    .await;
    assert_eq!(code, "INVALID_CROSS_REFERENCE_KEY");

    // Deleting the set deletes what it opens.
    let opened = format!("SELECT Id FROM FieldPermissions WHERE ParentId = '{set}'");
    assert!(!org.truth(&opened).await.is_empty());
    let deleted = org
        .send(
            reqwest::Method::DELETE,
            &format!("/sobjects/PermissionSet/{set}"),
            json!({}),
        )
        .await;
    assert_eq!(deleted.status(), 204);
    assert!(org.truth(&opened).await.is_empty());
}

#[tokio::test]
async fn older_api_versions_lack_newer_objects_and_fields() {
    let org = Org::start().await;
    let fields_at = |version: &str| {
        let path = format!("/services/data/v{version}/sobjects/PermissionSetAssignment/describe");
        let org = &org;
        async move {
            let body: Value = org.get(&path).await.json().await.unwrap();
            body["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert!(fields_at("52.0")
        .await
        .contains(&"ExpirationDate".to_owned()));
    assert!(!fields_at("51.0")
        .await
        .contains(&"ExpirationDate".to_owned()));
    let (status, code, _) = error_of(
        org.get("/services/data/v51.0/query?q=SELECT+ExpirationDate+FROM+PermissionSetAssignment")
            .await,
    )
    .await;
    assert_eq!((status.as_u16(), code.as_str()), (400, "INVALID_FIELD"));
    let (_, code, _) = error_of(
        org.get("/services/data/v45.0/query?q=SELECT+Id+FROM+MutingPermissionSet")
            .await,
    )
    .await;
    assert_eq!(code, "INVALID_TYPE");
    let muting: Value = org
        .get("/services/data/v46.0/query?q=SELECT+Id+FROM+MutingPermissionSet")
        .await
        .json()
        .await
        .unwrap();
    assert!(muting["totalSize"].as_u64().unwrap() > 0, "{muting}");
}
