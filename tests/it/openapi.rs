//! The OpenAPI document against the server that serves it: every described path and method is
//! routed and authenticated as described, and real answers have the described shapes.

use std::collections::HashSet;
use std::sync::Arc;

use provost::provisioning::executor::Executor;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{bearer_client, TestDatabase};
use crate::provisioning::Fixture;

/// The schema `reference` points to, or the schema itself.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(target) => {
            let name = target
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("a local reference: {target}"));
            let found = &document["components"]["schemas"][name];
            assert!(!found.is_null(), "{target} is not in the document");
            resolve(document, found)
        }
        None => schema,
    }
}

fn type_matches(ty: &str, value: &Value) -> bool {
    match ty {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        other => panic!("unknown JSON Schema type {other}"),
    }
}

/// Checks `value` against `schema`, strictly: an object schema with `properties` describes
/// every key the server may send, whatever its `additionalProperties` says.
fn conforms(document: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(document, schema);
    for combinator in ["anyOf", "oneOf"] {
        if let Some(options) = schema[combinator].as_array() {
            let errors: Vec<String> = options
                .iter()
                .filter_map(|option| conforms(document, option, value, at).err())
                .collect();
            if errors.len() == options.len() {
                return Err(format!("{at}: no option of {combinator} fits: {errors:?}"));
            }
        }
    }
    match &schema["type"] {
        Value::String(ty) if !type_matches(ty, value) => {
            return Err(format!("{at}: {value} is not of type {ty}"))
        }
        Value::Array(types)
            if !types
                .iter()
                .any(|t| type_matches(t.as_str().unwrap(), value)) =>
        {
            return Err(format!("{at}: {value} is not of a type in {types:?}"))
        }
        _ => {}
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            return Err(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    if schema["format"] == "date-time" {
        if let Some(text) = value.as_str() {
            provost_connector::times::parse_rfc3339(text)
                .ok_or_else(|| format!("{at}: `{text}` is not an RFC 3339 time"))?;
        }
    }
    if let (Some(object), Some(properties)) = (value.as_object(), schema["properties"].as_object())
    {
        for (key, item) in object {
            let described = properties
                .get(key)
                .ok_or_else(|| format!("{at}: `{key}` is not described"))?;
            conforms(document, described, item, &format!("{at}.{key}"))?;
        }
        for required in schema["required"].as_array().into_iter().flatten() {
            let key = required.as_str().unwrap();
            if !object.contains_key(key) {
                return Err(format!("{at}: required `{key}` is missing"));
            }
        }
    }
    if let (Some(items), Some(item_schema)) = (value.as_array(), schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            conforms(document, item_schema, item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// Calls the API through a described path and checks the answer against the description.
struct Described {
    api: String,
    document: Value,
}

impl Described {
    async fn call(
        &self,
        client: &reqwest::Client,
        method: Method,
        template: &str,
        params: &[(&str, &str)],
        query: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut path = template.to_owned();
        for (name, value) in params {
            path = path.replace(&format!("{{{name}}}"), value);
        }
        let mut request = client.request(method.clone(), format!("{}{path}{query}", self.api));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = response.text().await.unwrap();
        let body: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{method} {path}: not JSON: {text}"))
        };
        let operation = &self.document["paths"][template][method.as_str().to_lowercase()];
        assert!(
            operation.is_object(),
            "{method} {template} is not described"
        );
        let responses = &operation["responses"];
        let response = if responses[status.to_string()].is_object() {
            &responses[status.to_string()]
        } else {
            &responses["default"]
        };
        assert!(
            response.is_object(),
            "{method} {path} answered {status}, which is not described"
        );
        if let Some(content) = response["content"].as_object() {
            let schema = &content.get(&content_type).unwrap_or_else(|| {
                panic!("{method} {path}: {content_type} is not described for {status}: {content:?}")
            })["schema"];
            if let Err(problem) = conforms(&self.document, schema, &body, "body") {
                panic!("{method} {path} -> {status}: {problem}\n{body:#}");
            }
        } else {
            assert!(
                body.is_null(),
                "{method} {path} -> {status} has an undescribed body"
            );
        }
        (status, body)
    }
}

/// `GET /openapi.json`, without a token.
async fn served_document(fixture: &Fixture) -> Value {
    let response = fixture
        .raw
        .get(format!("{}/openapi.json", fixture.api))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn every_described_endpoint_is_served_and_authenticated() {
    let db = TestDatabase::sqlite().await;
    let fixture = Fixture::start(db.store().await, |_| {}).await;
    let document = served_document(&fixture).await;
    assert_eq!(document["openapi"], "3.1.0");
    // The document the CLI prints is the one served.
    assert_eq!(provost::http::openapi_document(&fixture.config), document);

    let mut ids = HashSet::new();
    let mut checked = 0;
    for (template, methods) in document["paths"].as_object().unwrap() {
        for (method, operation) in methods.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
            // Every reference resolves.
            let text = operation.to_string();
            for piece in text.split("\"#/components/schemas/").skip(1) {
                let name = &piece[..piece.find('"').unwrap()];
                assert!(
                    document["components"]["schemas"][name].is_object(),
                    "{id}: no schema {name}"
                );
            }
            let integer_id = operation["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "id" && p["schema"]["type"] == "integer");
            let path = template
                .replace("{org}", "acme")
                .replace(
                    "{id}",
                    if integer_id {
                        "1"
                    } else {
                        "005000000000001AAA"
                    },
                )
                .replace("{name}", "entitlements")
                .replace("{schema_id}", "urn:ietf:params:scim:schemas:core:2.0:User");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut request = fixture
                .raw
                .request(method.clone(), format!("{}{path}", fixture.api));
            if matches!(method, Method::POST | Method::PUT | Method::PATCH) {
                request = request
                    .header("content-type", "application/json")
                    .body("{}");
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            assert_ne!(
                status, 405,
                "{method} {template} is described but not routed"
            );
            assert!(
                !(status == 404 && body["error"]["message"] == "no such endpoint"),
                "{method} {template} is described but not routed"
            );
            let secured = operation["security"].as_array().unwrap();
            if secured.is_empty() {
                assert_ne!(
                    status, 401,
                    "{method} {template} is described as needing no token"
                );
            } else {
                assert_eq!(
                    status, 401,
                    "{method} {template} answered {status} without a token: {body}"
                );
                let scope = secured[0]["bearer"][0].as_str().unwrap();
                assert!(
                    provost::tokens::Scope::ALL
                        .iter()
                        .any(|s| s.as_str() == scope),
                    "{id} names an unknown scope {scope}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 50, "only {checked} operations are described");
    fixture.stop().await;
    db.drop_database().await;
}

#[tokio::test]
async fn answers_have_the_described_shapes() {
    let db = TestDatabase::sqlite().await;
    let fixture = Fixture::start(db.store().await, |_| {}).await;
    let executor = Arc::new(Executor::new(
        fixture.config.clone(),
        fixture.store.clone(),
        "openapi-test".into(),
    ));
    tokio::spawn(executor.run(fixture.work.clone()));
    let document = served_document(&fixture).await;
    let api = Described {
        api: fixture.api.clone(),
        document,
    };
    let admin = bearer_client(&fixture.store, "admin", &["admin"]).await;
    let org = [("org", "acme")];
    let get = Method::GET;
    let post = Method::POST;

    assert_eq!(
        api.call(&fixture.raw, get.clone(), "/healthz", &[], "", None)
            .await
            .0,
        200
    );
    assert_eq!(
        api.call(&fixture.raw, get.clone(), "/readyz", &[], "", None)
            .await
            .0,
        200
    );
    let (status, runs) = api
        .call(
            &admin,
            get.clone(),
            "/api/v1/orgs/{org}/sync-runs",
            &org,
            "",
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(!runs["runs"].as_array().unwrap().is_empty());
    let (status, changes) = api
        .call(
            &admin,
            get.clone(),
            "/api/v1/orgs/{org}/changes",
            &org,
            "?limit=5",
            None,
        )
        .await;
    assert_eq!(
        (status, changes["changes"].as_array().unwrap().len()),
        (200, 5)
    );
    // Errors have the error shape.
    let (status, _) = api
        .call(
            &admin,
            get.clone(),
            "/api/v1/orgs/{org}/changes",
            &org,
            "?limit=0",
            None,
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = api
        .call(
            &fixture.raw,
            get.clone(),
            "/api/v1/orgs/{org}/changes",
            &org,
            "",
            None,
        )
        .await;
    assert_eq!(status, 401);

    // An access request through its life: created, shown, listed, approved, carried out.
    let users = fixture.users().await;
    let user = &users[0];
    let requests = "/api/v1/orgs/{org}/access-requests";
    let (status, created) = api
        .call(
            &admin,
            post.clone(),
            requests,
            &org,
            "",
            Some(json!({
                "action": "update_user",
                "user": user.username,
                "changes": {"title": "Auditor of shapes"},
                "justification": "openapi test",
                "ticket": "OPS-1",
            })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap().to_string();
    let one = [("org", "acme"), ("id", id.as_str())];
    let (status, _) = api
        .call(
            &fixture.approver,
            post.clone(),
            &format!("{requests}/{{id}}/approve"),
            &one,
            "",
            Some(json!({"comment": "fine"})),
        )
        .await;
    assert_eq!(status, 200, "a second person approves");
    let mut shown = Value::Null;
    for _ in 0..100 {
        shown = api
            .call(
                &admin,
                get.clone(),
                &format!("{requests}/{{id}}"),
                &one,
                "",
                None,
            )
            .await
            .1;
        if shown["state"] == "completed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(shown["state"], "completed", "{shown}");
    assert!(!shown["timeline"].as_array().unwrap().is_empty());
    let (status, listed) = api
        .call(&admin, get.clone(), requests, &org, "?limit=10", None)
        .await;
    assert_eq!(
        (status, listed["requests"][0]["id"].as_i64()),
        (200, created["id"].as_i64())
    );
    let (status, refused) = api
        .call(&admin, post.clone(), requests, &org, "", Some(json!({"action": "grant", "user": "nobody@nowhere.test", "entitlement": {"type": "permission_set", "name": "X"}})))
        .await;
    assert_eq!(status, 400, "{refused}");
    let (status, _) = api
        .call(
            &admin,
            post.clone(),
            &format!("{requests}/{{id}}/cancel"),
            &one,
            "",
            None,
        )
        .await;
    assert_eq!(status, 409);
    // The change the request made is in the history, with its request.
    let (_, changes) = api
        .call(
            &admin,
            get.clone(),
            "/api/v1/orgs/{org}/changes",
            &org,
            &format!("?object_id={}", user.id),
            None,
        )
        .await;
    assert!(
        changes["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["request_id"].as_i64() == created["id"].as_i64()),
        "{changes}"
    );

    // SCIM, under both base URLs.
    for base in ["/orgs/{org}/scim/v2", "/scim/v2"] {
        for (kind, count) in [
            ("Users", "3"),
            ("Groups", "3"),
            ("Entitlements", "3"),
            ("Roles", "3"),
        ] {
            let (status, page) = api
                .call(
                    &admin,
                    get.clone(),
                    &format!("{base}/{kind}"),
                    &org,
                    &format!("?count={count}"),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{page}");
            let first = page["Resources"][0]["id"].as_str().unwrap().to_owned();
            let (status, _) = api
                .call(
                    &admin,
                    get.clone(),
                    &format!("{base}/{kind}/{{id}}"),
                    &[("org", "acme"), ("id", &first)],
                    "",
                    None,
                )
                .await;
            assert_eq!(status, 200);
            let (status, _) = api
                .call(
                    &admin,
                    post.clone(),
                    &format!("{base}/{kind}/.search"),
                    &org,
                    "",
                    Some(json!({"filter": "id pr", "count": 2})),
                )
                .await;
            assert_eq!(status, 200);
        }
        let (status, _) = api
            .call(
                &admin,
                post.clone(),
                &format!("{base}/.search"),
                &org,
                "",
                Some(json!({"count": 4})),
            )
            .await;
        assert_eq!(status, 200);
        let (status, _) = api
            .call(
                &admin,
                get.clone(),
                &format!("{base}/Users"),
                &org,
                "?filter=userName%20eq",
                None,
            )
            .await;
        assert_eq!(status, 400);
        for discovery in ["/ServiceProviderConfig", "/ResourceTypes", "/Schemas"] {
            let (status, _) = api
                .call(
                    &admin,
                    get.clone(),
                    &format!("{base}{discovery}"),
                    &org,
                    "",
                    None,
                )
                .await;
            assert_eq!(status, 200);
        }
    }
    // A SCIM write: PATCH the user's title, answered once Salesforce has it.
    let (status, patched) = api
        .call(
            &admin,
            Method::PATCH,
            "/orgs/{org}/scim/v2/Users/{id}",
            &[("org", "acme"), ("id", &user.id)],
            "",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "title", "value": "Patched through SCIM"}],
            })),
        )
        .await;
    assert_eq!(
        (status, &patched["title"]),
        (200, &json!("Patched through SCIM")),
        "{patched}"
    );
    fixture.stop().await;
    db.drop_database().await;
}
