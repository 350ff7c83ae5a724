//! Rendering: the templates (compiled into the binary, HTML auto-escaped), the headers every
//! page carries, and [`Problem`], a refusal or failure shown as a page that says what to do.

use std::sync::OnceLock;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use minijinja::Environment;
use serde::Serialize;

use super::session::Viewer;
use crate::store::StoreError;

/// Every template, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("message.html", include_str!("templates/message.html")),
    ("sign_in.html", include_str!("templates/sign_in.html")),
    ("link.html", include_str!("templates/link.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("users.html", include_str!("templates/users.html")),
    ("user.html", include_str!("templates/user.html")),
    (
        "entitlements.html",
        include_str!("templates/entitlements.html"),
    ),
    (
        "entitlement.html",
        include_str!("templates/entitlement.html"),
    ),
    ("requests.html", include_str!("templates/requests.html")),
    ("request.html", include_str!("templates/request.html")),
    (
        "request_new.html",
        include_str!("templates/request_new.html"),
    ),
    ("audit.html", include_str!("templates/audit.html")),
    ("reviews.html", include_str!("templates/reviews.html")),
    ("syncs.html", include_str!("templates/syncs.html")),
    ("reports.html", include_str!("templates/reports.html")),
    (
        "report_ready.html",
        include_str!("templates/report_ready.html"),
    ),
];

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|err| panic!("console template {name}: {err:#}"));
        }
        env
    })
}

/// The headers of every console answer: never cached (pages show who holds what) unless the
/// answer says otherwise (the static assets), never framed, scripts and styles only from the
/// console itself.
pub fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    ] {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}

/// Every console answer with the console's headers; and an error made outside the handlers
/// (a path or query parameter of the wrong type, a body too large, a method the path does not
/// serve) as a page that says what was wrong, like the handlers' own.
pub async fn harden(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if (status.is_client_error() || status.is_server_error()) && !html {
        let (_, body) = response.into_parts();
        let text = axum::body::to_bytes(body, 16 * 1024)
            .await
            .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
            .unwrap_or_default();
        let message = if text.is_empty() {
            status
                .canonical_reason()
                .unwrap_or("the request was refused")
                .to_owned()
        } else {
            text
        };
        return secure(
            Problem::new(
                status,
                "Cannot do that",
                format!("{message}; go back and try again"),
            )
            .into_response(),
        );
    }
    secure(response)
}

/// A page: `template` with `context`, and the viewer for the header and navigation.
pub fn page<S: Serialize>(
    template: &str,
    viewer: Option<&Viewer>,
    context: S,
) -> Result<Response, Problem> {
    page_with_status(StatusCode::OK, template, viewer, context)
}

pub fn page_with_status<S: Serialize>(
    status: StatusCode,
    template: &str,
    viewer: Option<&Viewer>,
    context: S,
) -> Result<Response, Problem> {
    let env = environment();
    let template = env
        .get_template(template)
        .map_err(|err| Problem::internal(anyhow::anyhow!("{err:#}")))?;
    let me = viewer.map(|v| {
        minijinja::context! {
            name => v.session.display_name,
            username => v.session.username,
            org => v.session.org,
            user_id => v.session.user_id,
            csrf => v.session.csrf_token,
            roles => v.roles.names(),
            directory => v.roles.directory(),
            approve => v.roles.approve(),
            audit => v.roles.audit(),
            admin => v.roles.admin(),
        }
    });
    let html = template
        .render(minijinja::context! { me, ..minijinja::Value::from_serialize(&context) })
        .map_err(|err| Problem::internal(anyhow::anyhow!("rendering a page: {err:#}")))?;
    Ok((status, Html(html)).into_response())
}

/// A refusal or failure, shown as a page with its status.
#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub title: &'static str,
    pub message: String,
}

impl Problem {
    pub fn new(status: StatusCode, title: &'static str, message: impl Into<String>) -> Problem {
        Problem {
            status,
            title,
            message: message.into(),
        }
    }

    pub fn unauthorized() -> Problem {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "Signed out",
            "your session ended or never began: sign in again",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, "Not allowed", message)
    }

    pub fn not_found(message: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "Not found", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "Cannot do that", message)
    }

    pub fn internal(err: anyhow::Error) -> Problem {
        tracing::error!(error = format!("{err:#}"), "a console page failed");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "the page could not be made; the server's log has the details. Try again, and tell your admin if it persists",
        )
    }
}

impl From<StoreError> for Problem {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::TimedOut(_) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too slow",
                "the database took too long for this page: narrow the search and try again",
            ),
            other => Problem::internal(anyhow::Error::from(other)),
        }
    }
}

impl From<anyhow::Error> for Problem {
    fn from(err: anyhow::Error) -> Self {
        Problem::internal(err)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let context = minijinja::context! {
            title => self.title,
            message => self.message,
            status => self.status.as_u16(),
        };
        match page_with_status(self.status, "message.html", None, context) {
            Ok(response) => response,
            Err(_) => (self.status, self.message).into_response(),
        }
    }
}
