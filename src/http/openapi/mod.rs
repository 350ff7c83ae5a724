//! The OpenAPI 3.1 description of the HTTP API, served at `/openapi.json` and printed by
//! `provost openapi`.
//!
//! It cannot drift from the router because it is made by the same calls: every area of the
//! API registers its endpoints through [`Routes`], which adds each handler to the axum router
//! and its [`Operation`] to the document in one step. A route without a description does not
//! compile; the tests check that every described path is served and that real answers have
//! the described shape. Enumerations (scopes, actions, states, report names, SCIM attributes)
//! are read from the code's own tables, in [`schemas`].

pub mod schemas;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::handler::Handler;
use axum::routing::{on, MethodFilter};
use axum::{Extension, Json, Router};
use serde_json::{json, Map, Value};

use super::AppState;
use crate::tokens::Scope;

/// The HTTP methods the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
            Verb::Put => "put",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Put => MethodFilter::PUT,
            Verb::Patch => MethodFilter::PATCH,
            Verb::Delete => MethodFilter::DELETE,
        }
    }
}

pub use super::error::Errors;

/// One response of an operation.
#[derive(Debug, Clone)]
pub struct Answer {
    status: u16,
    description: String,
    /// Content type and schema of each representation.
    content: Vec<(&'static str, Value)>,
    /// Response headers: name, description.
    headers: Vec<(&'static str, &'static str)>,
}

impl Answer {
    pub fn new(status: u16, description: impl Into<String>) -> Answer {
        Answer {
            status,
            description: description.into(),
            content: Vec::new(),
            headers: Vec::new(),
        }
    }

    pub fn content(mut self, content_type: &'static str, schema: Value) -> Answer {
        self.content.push((content_type, schema));
        self
    }

    pub fn header(mut self, name: &'static str, description: &'static str) -> Answer {
        self.headers.push((name, description));
        self
    }
}

/// A query or header parameter.
#[derive(Debug, Clone)]
struct Parameter {
    name: &'static str,
    location: &'static str,
    description: String,
    schema: Value,
    required: bool,
}

/// What one method on one path does: the document's operation object, built in code.
#[derive(Debug, Clone)]
pub struct Operation {
    tag: &'static str,
    summary: String,
    description: Option<String>,
    /// The token scope it needs; `None` when it needs no token.
    scope: Option<Scope>,
    parameters: Vec<Parameter>,
    body: Option<(Vec<&'static str>, Value, bool)>,
    answers: Vec<Answer>,
    errors: Errors,
}

impl Operation {
    /// An operation of Provost's own JSON API.
    pub fn new(tag: &'static str, summary: impl Into<String>) -> Operation {
        Operation {
            tag,
            summary: summary.into(),
            description: None,
            scope: None,
            parameters: Vec::new(),
            body: None,
            answers: Vec::new(),
            errors: Errors::Api,
        }
    }

    /// An operation of the SCIM API: SCIM errors, `application/scim+json`.
    pub fn scim(summary: impl Into<String>) -> Operation {
        Operation {
            errors: Errors::Scim,
            ..Operation::new("SCIM 2.0", summary)
        }
    }

    pub fn describe(mut self, text: impl Into<String>) -> Operation {
        self.description = Some(text.into());
        self
    }

    pub fn scope(mut self, scope: Scope) -> Operation {
        self.scope = Some(scope);
        self
    }

    pub fn query(mut self, name: &'static str, schema: Value, description: &str) -> Operation {
        self.parameters.push(Parameter {
            name,
            location: "query",
            description: description.to_owned(),
            schema,
            required: false,
        });
        self
    }

    /// Describes a path parameter more closely than its name does.
    pub fn path(mut self, name: &'static str, schema: Value, description: &str) -> Operation {
        self.parameters.push(Parameter {
            name,
            location: "path",
            description: description.to_owned(),
            schema,
            required: true,
        });
        self
    }

    pub fn header(mut self, name: &'static str, description: &str) -> Operation {
        self.parameters.push(Parameter {
            name,
            location: "header",
            description: description.to_owned(),
            schema: json!({"type": "string"}),
            required: false,
        });
        self
    }

    /// The request body, accepted as any of `content_types`.
    pub fn body(mut self, content_types: &[&'static str], schema: Value) -> Operation {
        self.body = Some((content_types.to_vec(), schema, true));
        self
    }

    /// A body that may be left empty.
    pub fn optional_body(mut self, content_types: &[&'static str], schema: Value) -> Operation {
        self.body = Some((content_types.to_vec(), schema, false));
        self
    }

    pub fn answer(mut self, answer: Answer) -> Operation {
        self.answers.push(answer);
        self
    }

    /// A JSON answer (SCIM JSON for SCIM operations).
    pub fn ok(self, status: u16, description: &str, schema: Value) -> Operation {
        let content_type = match self.errors {
            Errors::Api => "application/json",
            Errors::Scim => crate::scim::error::CONTENT_TYPE,
        };
        self.answer(Answer::new(status, description).content(content_type, schema))
    }

    fn to_json(&self, verb: Verb, path: &str) -> Value {
        let described = |name: &str| {
            self.parameters
                .iter()
                .any(|p| p.location == "path" && p.name == name)
        };
        let mut parameters: Vec<Value> = path_parameters(path)
            .into_iter()
            .filter(|name| !described(name))
            .map(|name| {
                json!({
                    "name": name,
                    "in": "path",
                    "required": true,
                    "description": path_parameter_description(name),
                    "schema": {"type": "string"},
                })
            })
            .collect();
        parameters.extend(self.parameters.iter().map(|p| {
            json!({
                "name": p.name,
                "in": p.location,
                "required": p.required,
                "description": p.description,
                "schema": p.schema,
            })
        }));
        let mut responses = Map::new();
        for answer in &self.answers {
            let mut response = Map::new();
            response.insert("description".into(), json!(answer.description));
            if !answer.content.is_empty() {
                let content: Map<String, Value> = answer
                    .content
                    .iter()
                    .map(|(ty, schema)| (ty.to_string(), json!({ "schema": schema })))
                    .collect();
                response.insert("content".into(), Value::Object(content));
            }
            if !answer.headers.is_empty() {
                let headers: Map<String, Value> = answer
                    .headers
                    .iter()
                    .map(|(name, description)| {
                        (
                            name.to_string(),
                            json!({"description": description, "schema": {"type": "string"}}),
                        )
                    })
                    .collect();
                response.insert("headers".into(), Value::Object(headers));
            }
            responses.insert(answer.status.to_string(), Value::Object(response));
        }
        let (error_type, error_schema) = match self.errors {
            Errors::Api => ("application/json", schemas::reference("Error")),
            Errors::Scim => (
                crate::scim::error::CONTENT_TYPE,
                schemas::reference("ScimError"),
            ),
        };
        let error = |description: &str| {
            json!({
                "description": description,
                "content": { error_type: { "schema": error_schema } },
            })
        };
        if let Some(scope) = self.scope {
            responses.insert(
                "401".into(),
                error("No bearer token, or one that is unknown or revoked."),
            );
            responses.insert(
                "403".into(),
                error(&format!("The token lacks the `{}` scope.", scope.as_str())),
            );
        }
        responses.insert(
            "default".into(),
            error("An error: the body says what went wrong and what to do."),
        );
        let mut operation = json!({
            "operationId": operation_id(verb, path),
            "tags": [self.tag],
            "summary": self.summary,
            "parameters": parameters,
            "responses": responses,
            "security": match self.scope {
                Some(scope) => json!([{ "bearer": [scope.as_str()] }]),
                None => json!([]),
            },
        });
        if let Some(description) = &self.description {
            operation["description"] = json!(description);
        }
        if let Some((types, schema, required)) = &self.body {
            let content: Map<String, Value> = types
                .iter()
                .map(|ty| (ty.to_string(), json!({ "schema": schema })))
                .collect();
            operation["requestBody"] = json!({ "required": required, "content": content });
        }
        operation
    }
}

/// The `{name}` segments of a path template, in order.
pub fn path_parameters(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

fn path_parameter_description(name: &str) -> &'static str {
    match name {
        "org" => "The org's name in the configuration (`[[orgs]] name`).",
        "id" => "The resource's id.",
        "name" => "The name of the report or resource type.",
        "schema_id" => "The schema's URN.",
        _ => "",
    }
}

/// `get /api/v1/orgs/{org}/sync-runs` -> `getApiV1OrgsOrgSyncRuns`: unique per method and path.
fn operation_id(verb: Verb, path: &str) -> String {
    let mut id = verb.as_str().to_owned();
    for word in path.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            id.push(first.to_ascii_uppercase());
            id.extend(chars);
        }
    }
    id
}

/// A described endpoint: one method on one documented path.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub verb: Verb,
    pub path: String,
    pub operation: Operation,
}

/// The router and its description, built together.
#[derive(Clone, Default)]
pub struct Routes {
    router: Router<AppState>,
    endpoints: Vec<Endpoint>,
}

impl Routes {
    pub fn new() -> Routes {
        Routes::default()
    }

    pub fn get<H, T>(self, path: &str, handler: H, operation: Operation) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.route(Verb::Get, path, handler, vec![(path.to_owned(), operation)])
    }

    pub fn post<H, T>(self, path: &str, handler: H, operation: Operation) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.route(
            Verb::Post,
            path,
            handler,
            vec![(path.to_owned(), operation)],
        )
    }

    /// Routes `verb` on `path` to `handler`, described as `described`: usually the path itself,
    /// or, where a path parameter stands for a fixed set of endpoints (SCIM's `/{kind}`), each
    /// of them.
    ///
    /// # Panics
    /// When `described` is empty: every route is described.
    pub fn route<H, T>(
        mut self,
        verb: Verb,
        path: &str,
        handler: H,
        described: Vec<(String, Operation)>,
    ) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        assert!(
            !described.is_empty(),
            "{} {path} is routed without a description",
            verb.as_str()
        );
        // The scope is enforced here, by the router, for every operation the route serves;
        // they must agree on it.
        let (scope, errors) = (described[0].1.scope, described[0].1.errors);
        assert!(
            described
                .iter()
                .all(|(_, op)| op.scope == scope && op.errors == errors),
            "{} {path} is described with different scopes or error shapes",
            verb.as_str()
        );
        let method = on(verb.filter(), handler);
        let method = match scope {
            Some(scope) => method.route_layer(axum::middleware::from_fn(move |request, next| {
                super::auth::guard(scope, errors, request, next)
            })),
            None => method,
        };
        self.router = self.router.route(path, method);
        self.endpoints
            .extend(described.into_iter().map(|(path, operation)| Endpoint {
                verb,
                path,
                operation,
            }));
        self
    }

    pub fn merge(mut self, other: Routes) -> Routes {
        self.router = self.router.merge(other.router);
        self.endpoints.extend(other.endpoints);
        self
    }

    /// Serves `other` under `prefix`, described there.
    pub fn nest(mut self, prefix: &str, other: Routes) -> Routes {
        self.router = self.router.nest(prefix, other.router);
        self.endpoints
            .extend(other.endpoints.into_iter().map(|endpoint| Endpoint {
                path: format!("{prefix}{}", endpoint.path),
                ..endpoint
            }));
        self
    }

    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The router, with the description of its endpoints for [`routes`]'s handler.
    pub fn into_router(self, server_url: &str) -> Router<AppState> {
        let document = Arc::new(document(&self.endpoints, server_url));
        self.router.layer(Extension(document))
    }
}

/// `GET /openapi.json`: the document, without a token (it holds no data).
pub fn routes() -> Routes {
    Routes::new().get(
        "/openapi.json",
        openapi_json,
        Operation::new("Meta", "This description of the API (OpenAPI 3.1)").ok(
            200,
            "The OpenAPI document.",
            json!({"type": "object"}),
        ),
    )
}

async fn openapi_json(Extension(document): Extension<Arc<Value>>) -> Json<Value> {
    Json((*document).clone())
}

/// The OpenAPI 3.1 document of `endpoints`.
pub fn document(endpoints: &[Endpoint], server_url: &str) -> Value {
    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for endpoint in endpoints {
        let previous = paths.entry(&endpoint.path).or_default().insert(
            endpoint.verb.as_str().to_owned(),
            endpoint.operation.to_json(endpoint.verb, &endpoint.path),
        );
        assert!(
            previous.is_none(),
            "{} {} is described twice",
            endpoint.verb.as_str(),
            endpoint.path
        );
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Provost",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Identity governance for Salesforce orgs: the synced access model, \
                access requests that grant and revoke through a previewed, audited executor, \
                entitlement reports, and a SCIM 2.0 service provider per org. Every endpoint \
                but health, this document and the OAuth browser flow needs a bearer token \
                created with `provost token create --scope ...`.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{ "url": server_url }],
        "tags": [
            {"name": "Health", "description": "Liveness and readiness."},
            {"name": "Meta", "description": "This description."},
            {"name": "Connect", "description": "Connecting an org through the OAuth web server flow, in a browser."},
            {"name": "Sync", "description": "Sync history and the change history of each org."},
            {"name": "Access requests", "description": "Grant, revoke and manage users through approved, audited requests."},
            {"name": "Reports", "description": "Entitlement reports for auditors, with their manifests."},
            {"name": "SCIM 2.0", "description": "RFC 7643/7644 service provider, one base URL per org."},
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": format!(
                        "A Provost API token (`provost token create --name NAME --scope SCOPE`). \
                         Each operation lists the scope it needs; `admin` holds them all. Scopes: {}.",
                        Scope::ALL.iter().map(|s| format!("`{}`", s.as_str())).collect::<Vec<_>>().join(", ")
                    ),
                }
            },
            "schemas": schemas::components(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_are_camel_case_words_of_the_method_and_path() {
        assert_eq!(
            operation_id(Verb::Get, "/api/v1/orgs/{org}/sync-runs"),
            "getApiV1OrgsOrgSyncRuns"
        );
        assert_eq!(
            operation_id(Verb::Post, "/scim/v2/.search"),
            "postScimV2Search"
        );
    }

    #[test]
    fn path_parameters_are_read_from_the_template() {
        assert_eq!(
            path_parameters("/orgs/{org}/scim/v2/Users/{id}"),
            vec!["org", "id"]
        );
        assert!(path_parameters("/healthz").is_empty());
    }
}
