//! The client against the emulator over real HTTP: auth methods, expiry, paging, faults, limits.

use std::sync::Arc;

use provost_connector::secret::Secret;
use provost_salesforce::soql::{Condition, Literal, Query};
use provost_salesforce::{ClientConfig, Credentials, SalesforceClient, SalesforceError};
use provost_salesforce_emulator::{EmulatorConfig, Preset};
use serde_json::json;

mod common;

use common::Org;

fn users() -> Query {
    Query::select("User", &["Id", "Username", "Profile.Name"])
}

#[tokio::test]
async fn jwt_bearer_connects_and_reads() {
    let org = Org::small().await;
    let client = org.client(org.jwt());
    let session = client.connect().await.unwrap();
    let (org_id, user_id) = session.org_and_user().unwrap();
    assert!(org_id.starts_with("00D") && user_id.starts_with("005"));
    let page = client.query(&users()).await.unwrap();
    assert_eq!(page.total_size, 50);
    assert!(page.done);
    assert_eq!(
        client.api_usage().unwrap().used,
        1,
        "Sforce-Limit-Info read: used first"
    );
}

#[tokio::test]
async fn client_credentials_connect_and_a_wrong_secret_says_what_to_fix() {
    let org = Org::small().await;
    let app = &org.emulator.app;
    let good = Credentials::ClientCredentials {
        client_id: app.client_id.clone(),
        client_secret: Secret::new(app.client_secret.clone()),
    };
    assert_eq!(
        org.client(good).query(&users()).await.unwrap().total_size,
        50
    );

    let bad = Credentials::ClientCredentials {
        client_id: app.client_id.clone(),
        client_secret: Secret::new("wrong"),
    };
    let err = org.client(bad).connect().await.unwrap_err();
    assert!(
        matches!(err, SalesforceError::Auth { ref error, .. } if error == "invalid_client"),
        "{err}"
    );
    assert!(err.to_string().contains("consumer secret"), "{err}");

    let login_host = Org::start(EmulatorConfig {
        my_domain: false,
        ..EmulatorConfig::default()
    })
    .await;
    let app = &login_host.emulator.app;
    let err = login_host
        .client(Credentials::ClientCredentials {
            client_id: app.client_id.clone(),
            client_secret: Secret::new(app.client_secret.clone()),
        })
        .connect()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("My Domain"), "{err}");
}

#[tokio::test]
async fn a_jwt_signed_with_the_wrong_key_or_for_an_unknown_user_is_refused_with_a_hint() {
    let org = Org::small().await;
    let other = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    use rsa::pkcs8::EncodePrivateKey;
    let pem = other
        .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap()
        .to_string();
    let wrong_key = Credentials::JwtBearer {
        client_id: org.emulator.app.client_id.clone(),
        username: org.emulator.integration_username(),
        private_key_pem: Secret::new(pem),
    };
    let err = org.client(wrong_key).connect().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("private key matches the certificate"),
        "{err}"
    );

    let stranger = Credentials::JwtBearer {
        client_id: org.emulator.app.client_id.clone(),
        username: "nobody@acme.example.com".to_owned(),
        private_key_pem: Secret::new(org.emulator.app.private_key_pem.clone()),
    };
    let err = org.client(stranger).connect().await.unwrap_err();
    assert!(err.to_string().contains("Pre-authorise"), "{err}");

    let not_pem = Credentials::JwtBearer {
        client_id: "x".into(),
        username: "y".into(),
        private_key_pem: Secret::new("not a key"),
    };
    assert!(matches!(
        org.client(not_pem).connect().await.unwrap_err(),
        SalesforceError::Config(_)
    ));
}

#[tokio::test]
async fn refresh_tokens_work_rotate_and_fail_clearly_when_revoked() {
    let org = Org::start(EmulatorConfig {
        rotate_refresh_tokens: true,
        ..EmulatorConfig::default()
    })
    .await;
    let first = org.integration_refresh_token();
    let credentials = Credentials::RefreshToken {
        client_id: org.emulator.app.client_id.clone(),
        client_secret: None,
        refresh_token: Secret::new(first.clone()),
    };
    let client = org.client(credentials);
    client.connect().await.unwrap();
    let rotated = client.current_refresh_token().await.unwrap();
    assert_ne!(
        rotated.expose(),
        first,
        "the rotated token replaces the first"
    );

    let revoked = org.integration_refresh_token();
    org.emulator.sessions.revoke(&revoked);
    let stale = Credentials::RefreshToken {
        client_id: org.emulator.app.client_id.clone(),
        client_secret: None,
        refresh_token: Secret::new(revoked),
    };
    let err = org.client(stale).connect().await.unwrap_err();
    assert!(err.to_string().contains("provost connect"), "{err}");
}

#[tokio::test]
async fn an_expired_session_is_renewed_once_for_all_requests_in_flight() {
    let org = Org::small().await;
    let client = Arc::new(org.client(org.jwt()));
    client.connect().await.unwrap();
    assert_eq!(client.token_requests(), 1);
    org.admin(reqwest::Method::POST, "/sessions/expire", json!({}))
        .await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.query(&users()).await.map(|page| page.total_size) })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), 50);
    }
    assert_eq!(
        client.token_requests(),
        2,
        "one renewal shared by eight requests"
    );
}

/// An org of 450 users, and a client that reads it 200 records a page.
async fn users_450_read_200_at_a_time() -> (Org, SalesforceClient) {
    let preset = Preset {
        users: 450,
        ..Preset::SMALL
    };
    let org = Org::start(EmulatorConfig {
        preset,
        ..EmulatorConfig::default()
    })
    .await;
    let mut config = ClientConfig::new(&org.base);
    config.batch_size = 200;
    let client = SalesforceClient::new(config, org.jwt()).unwrap();
    (org, client)
}

#[tokio::test]
async fn queries_page_at_batch_size_200() {
    let (_org, client) = users_450_read_200_at_a_time().await;
    let mut page = client.query(&users()).await.unwrap();
    let mut ids = vec![];
    let mut pages = 1;
    loop {
        assert!(page.records.len() <= 200);
        ids.extend(
            page.records
                .iter()
                .map(|r| r["Id"].as_str().unwrap().to_owned()),
        );
        match page.next_records_url.clone() {
            Some(next) => {
                page = client.query_more(&next).await.unwrap();
                pages += 1;
            }
            None => break,
        }
    }
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!((pages, ids.len(), sorted.len()), (3, 450, 450));
    assert_eq!(sorted, ids, "ordered by Id");
    assert_eq!(client.calls(), 3, "one call per page");
}

#[tokio::test]
async fn each_transient_fault_is_retried_until_it_passes() {
    let org = Org::small().await;
    let client = org.client(org.jwt());
    // Sequential queries: the emulator's fault dice are seeded, so the run is repeatable.
    for fault in [
        json!({ "unavailable_rate": 0.3 }),
        json!({ "html_error_rate": 0.3 }),
        json!({ "cut_connection_rate": 0.3 }),
    ] {
        org.faults(fault.clone()).await;
        let calls_before = client.calls();
        for _ in 0..8 {
            assert_eq!(
                client.query(&users()).await.unwrap().total_size,
                50,
                "{fault}"
            );
        }
        assert!(
            client.calls() > calls_before + 8,
            "retries happened under {fault}"
        );
    }
    org.faults(json!({ "max_concurrent_requests": 1, "latency_ms": 20 }))
        .await;
    let calls_before = client.calls();
    let query = users();
    let (a, b) = tokio::join!(client.query(&query), client.query(&query));
    assert_eq!((a.unwrap().total_size, b.unwrap().total_size), (50, 50));
    assert!(
        client.calls() > calls_before + 2,
        "the second concurrent request was refused, then retried"
    );
    org.faults(json!({ "lock_row_rate": 0.3 })).await;
    let login = client
        .query(&Query::select("UserLogin", &["Id"]).limit(1))
        .await
        .unwrap()
        .records[0]["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = client.data_path(&format!("sobjects/UserLogin/{login}"));
    for _ in 0..5 {
        let (status, _) = client
            .send_json(
                reqwest::Method::PATCH,
                &path,
                &json!({ "IsFrozen": false }),
                true,
            )
            .await
            .unwrap();
        assert_eq!(status, 204);
    }
}

#[tokio::test]
async fn a_fault_that_never_passes_exhausts_the_retries() {
    let org = Org::small().await;
    let client = org.client(org.jwt());
    client.connect().await.unwrap();
    org.faults(json!({ "unavailable_rate": 1.0 })).await;
    let err = client.query(&users()).await.unwrap_err();
    assert!(
        matches!(err, SalesforceError::RetriesExhausted { attempts: 6, .. }),
        "{err}"
    );
    assert_eq!(err.code(), Some("SERVER_UNAVAILABLE"));
}

#[tokio::test]
async fn the_daily_limit_stops_at_once_with_a_typed_error() {
    let org = Org::small().await;
    let client = org.client(org.jwt());
    client.connect().await.unwrap();
    org.admin(
        reqwest::Method::PUT,
        "/limits",
        json!({ "used": 500, "max": 500 }),
    )
    .await;
    let calls_before = client.calls();
    let err = client.query(&users()).await.unwrap_err();
    match &err {
        SalesforceError::DailyLimitExceeded { usage } => {
            assert_eq!(usage.map(|u| (u.used, u.max)), Some((500, 500)))
        }
        other => panic!("expected the daily limit, got {other}"),
    }
    assert_eq!(
        client.calls(),
        calls_before + 1,
        "no retry against an exhausted org"
    );
}

#[tokio::test]
async fn an_org_without_permission_set_groups_answers_invalid_type() {
    let org = Org::small().await;
    org.admin(
        reqwest::Method::PUT,
        "/features",
        json!({ "permission_set_groups": false }),
    )
    .await;
    let client = org.client(org.jwt());
    let err = client
        .query(&Query::select(
            "PermissionSetGroup",
            &["Id", "DeveloperName"],
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("INVALID_TYPE"), "{err}");
}

#[tokio::test]
async fn a_user_name_with_a_quote_is_found_by_the_builder() {
    let org = Org::small().await;
    let profile = org
        .emulator
        .org
        .read()
        .table(provost_salesforce_emulator::schema::ObjectType::Profile)
        .live
        .keys()
        .next()
        .unwrap()
        .to_string();
    let created = org
        .admin(
            reqwest::Method::POST,
            "/records/User",
            json!({ "Username": "o'hara.q@acme.example.com", "LastName": "O'Hara", "Email": "ohara@acme.example.com", "Alias": "ohara",
                    "TimeZoneSidKey": "GMT", "LocaleSidKey": "en_GB", "EmailEncodingKey": "UTF-8", "LanguageLocaleKey": "en_US", "ProfileId": profile }),
        )
        .await;
    assert_eq!(created.status(), 201);
    let client = org.client(org.jwt());
    let page = client
        .query(&users().filter(Condition::eq("Username", "o'hara.q@acme.example.com")))
        .await
        .unwrap();
    assert_eq!(page.total_size, 1);
    let hostile = client
        .query(&users().filter(Condition::eq(
            "Username",
            Literal::Str("x' OR Username != '".into()),
        )))
        .await
        .unwrap();
    assert_eq!(
        hostile.total_size, 0,
        "an injection attempt is only a strange username"
    );
}

#[tokio::test]
async fn several_queries_and_describes_go_in_one_composite_call_each_answering_apart() {
    let (org, client) = users_450_read_200_at_a_time().await;
    org.admin(
        reqwest::Method::PUT,
        "/features",
        json!({ "permission_set_groups": false }),
    )
    .await;
    let counting = Query::select("User", &["Id"]).counting();
    let groups = Query::select("PermissionSetGroup", &["Id"]);
    // Seven queries: five in the first call, two in the second.
    let queries = [
        &users(),
        &counting,
        &groups,
        &users(),
        &users(),
        &users(),
        &counting,
    ];
    let answers = client.queries(&queries).await.unwrap();
    assert_eq!(client.calls(), 2, "five queries a call");
    assert_eq!(answers.len(), 7);
    let first = answers[0].as_ref().unwrap();
    assert_eq!(
        (first.total_size, first.records.len()),
        (450, 200),
        "the batch size holds"
    );
    // The next page of a composite query reads on like any other.
    let next = client
        .query_more(first.next_records_url.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(next.records.len(), 200);
    assert_ne!(next.records[0]["Id"], first.records[0]["Id"]);
    assert_eq!(answers[1].as_ref().unwrap().total_size, 450);
    assert!(answers[1].as_ref().unwrap().records.is_empty());
    let missing = answers[2].as_ref().unwrap_err();
    assert_eq!(missing.code(), Some("INVALID_TYPE"), "{missing}");
    assert_eq!(answers[6].as_ref().unwrap().total_size, 450);

    let paths = ["User", "Nothing__x"]
        .map(|object| client.data_path(&format!("sobjects/{object}/describe")));
    let calls = client.calls();
    let described = client.get_many(&paths).await.unwrap();
    assert_eq!(client.calls(), calls + 1);
    let fields = described[0].as_ref().unwrap()["fields"].as_array().unwrap();
    assert!(fields.iter().any(|f| f["name"] == "Username"));
    assert_eq!(
        described[1].as_ref().unwrap_err().code(),
        Some("NOT_FOUND"),
        "{:?}",
        described[1]
    );
}
