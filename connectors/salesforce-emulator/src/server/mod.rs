//! The emulator's HTTP server: Salesforce's paths under `/services` and `/id`, and an admin
//! path under `/__emulator` for tests (faults, changing the org behind a client's back, call
//! counts, reset).

mod admin;
mod composite;
pub mod faults;
mod oauth;
mod rest;
mod session;
mod sobjects;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;

use crate::error::SfError;
use crate::generate::{self, Preset};
use crate::org::Org;
use faults::Dice;
pub use faults::Faults;
pub use session::{key_pair_from_pem, Sessions};

/// The API versions served, oldest first (`/services/data` lists them).
pub const API_VERSIONS: &[&str] = &[
    "45.0", "46.0", "47.0", "48.0", "49.0", "50.0", "51.0", "52.0", "53.0", "54.0", "55.0", "56.0",
    "57.0", "58.0", "59.0", "60.0", "61.0", "62.0", "63.0", "64.0",
];

/// The major number of a served version (`"52.0"` -> 52).
pub(crate) fn major(version: &str) -> u32 {
    version
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .unwrap_or(u32::MAX)
}

/// How an emulator is set up.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub org_name: String,
    pub preset: Preset,
    pub seed: u64,
    /// Daily API request allocation (`DailyApiRequests.Max`).
    pub daily_limit: u64,
    /// Access tokens expire this long after issue (Salesforce's session timeout).
    pub session_lifetime: Duration,
    /// A new refresh token on every refresh, the old one revoked.
    pub rotate_refresh_tokens: bool,
    /// Whether the login URL is a My Domain (client credentials work only there).
    pub my_domain: bool,
    /// The connected app's callback URLs; empty accepts any loopback URL.
    pub callback_urls: Vec<String>,
    /// The password every user logs in with on the authorize page.
    pub password: String,
    /// Load the org from this fixture JSON instead of generating it (see `fixture`).
    pub fixture: Option<Arc<str>>,
    pub faults: Faults,
    /// Set from a fixture's `integration_username`; otherwise the generated integration user.
    pub integration_username: Option<String>,
    /// The connected app's key pair (private PKCS#8 PEM, public SPKI PEM), as
    /// [`key_pair_from_pem`] reads a kept key file; a new pair per process when `None`.
    pub app_key: Option<(String, String)>,
}

fn build_org(
    config: &EmulatorConfig,
) -> Result<(Org, Option<String>), crate::fixture::FixtureError> {
    match &config.fixture {
        Some(text) => {
            let loaded = crate::fixture::load(text)?;
            Ok((loaded.org, loaded.integration_username))
        }
        None => Ok((
            generate::generate(&config.org_name, config.preset, config.seed),
            None,
        )),
    }
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            org_name: "Acme".to_owned(),
            preset: Preset::SMALL,
            seed: 1,
            daily_limit: 100_000,
            session_lifetime: Duration::from_secs(2 * 3600),
            rotate_refresh_tokens: false,
            my_domain: true,
            callback_urls: Vec::new(),
            password: "emulator".to_owned(),
            fixture: None,
            faults: Faults::default(),
            integration_username: None,
            app_key: None,
        }
    }
}

/// The connected app clients authenticate as.
pub struct ConnectedApp {
    pub client_id: String,
    pub client_secret: String,
    pub private_key_pem: String,
    pub public_key_pem: String,
}

/// Everything the handlers share.
pub struct Emulator {
    pub config: RwLock<EmulatorConfig>,
    pub org: RwLock<Org>,
    pub app: ConnectedApp,
    pub sessions: Sessions,
    pub faults: RwLock<Faults>,
    dice: Mutex<Dice>,
    pub usage: Mutex<ApiUsage>,
    pub calls: Mutex<HashMap<String, u64>>,
    in_flight: AtomicUsize,
    pub cursors: rest::Cursors,
    /// Set once the server is bound: `http://127.0.0.1:PORT`.
    pub base_url: RwLock<String>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct ApiUsage {
    pub used: u64,
    pub max: u64,
}

/// How a client connects: what `provost emulator` prints.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionInfo {
    pub login_url: String,
    pub instance_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub username: String,
    pub password: String,
    pub private_key_path: Option<String>,
    pub admin_url: String,
}

impl Emulator {
    /// Builds an emulator with a generated org. The RSA key of the connected app is made once
    /// per process and shared.
    pub fn new(config: EmulatorConfig) -> Arc<Emulator> {
        assert!(
            config.fixture.is_none(),
            "use Emulator::from_config for fixtures"
        );
        Emulator::from_config(config).expect("generated orgs always build")
    }

    /// Builds an emulator from its configuration: a fixture when one is given, else a
    /// generated org.
    pub fn from_config(
        mut config: EmulatorConfig,
    ) -> Result<Arc<Emulator>, crate::fixture::FixtureError> {
        let (org, integration_username) = build_org(&config)?;
        config.integration_username = integration_username;
        let (private_key_pem, public_key_pem) =
            config.app_key.clone().unwrap_or_else(session::app_key_pair);
        let app = ConnectedApp {
            client_id: format!("3MVG9emulator{}", org.organization_id.as_str()),
            client_secret: format!(
                "EMU{:016X}",
                config.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ),
            private_key_pem,
            public_key_pem,
        };
        Ok(Arc::new(Emulator {
            faults: RwLock::new(config.faults.clone()),
            dice: Mutex::new(Dice::new(config.seed)),
            usage: Mutex::new(ApiUsage {
                used: 0,
                max: config.daily_limit,
            }),
            config: RwLock::new(config),
            org: RwLock::new(org),
            app,
            sessions: Sessions::default(),
            calls: Mutex::new(HashMap::new()),
            in_flight: AtomicUsize::new(0),
            cursors: rest::Cursors::default(),
            base_url: RwLock::new(String::new()),
        }))
    }

    /// The user the connected app lets in (JWT examples, client credentials).
    pub fn integration_username(&self) -> String {
        let config = self.config.read();
        config
            .integration_username
            .clone()
            .unwrap_or_else(|| generate::integration_username(&config.org_name))
    }

    pub fn base_url(&self) -> String {
        self.base_url.read().clone()
    }

    pub fn connection_info(&self, private_key_path: Option<String>) -> ConnectionInfo {
        let base = self.base_url();
        let config = self.config.read();
        ConnectionInfo {
            login_url: base.clone(),
            instance_url: base.clone(),
            client_id: self.app.client_id.clone(),
            client_secret: self.app.client_secret.clone(),
            username: config
                .integration_username
                .clone()
                .unwrap_or_else(|| generate::integration_username(&config.org_name)),
            password: config.password.clone(),
            private_key_path,
            admin_url: format!("{base}/__emulator"),
        }
    }

    /// Back to the generated org, no sessions, no faults, no usage, no counts.
    pub fn reset(&self) {
        let config = self.config.read().clone();
        *self.org.write() = build_org(&config).expect("the org built once already").0;
        *self.faults.write() = config.faults.clone();
        *self.usage.lock() = ApiUsage {
            used: 0,
            max: config.daily_limit,
        };
        self.calls.lock().clear();
        self.sessions.clear();
        self.cursors.clear();
    }

    fn roll(&self, rate: f64) -> bool {
        self.dice.lock().roll(rate)
    }

    fn count_call(&self, key: String) {
        *self.calls.lock().entry(key).or_default() += 1;
    }
}

/// Serves the emulator on `listener` until the task is dropped.
pub async fn serve(
    emulator: Arc<Emulator>,
    listener: tokio::net::TcpListener,
) -> std::io::Result<()> {
    let address: SocketAddr = listener.local_addr()?;
    *emulator.base_url.write() = format!("http://{address}");
    axum::serve(listener, router(emulator)).await
}

/// Binds `address` (port 0 for any) and serves in a background task; returns the base URL.
pub async fn spawn(emulator: Arc<Emulator>, address: SocketAddr) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let base = format!("http://{}", listener.local_addr()?);
    *emulator.base_url.write() = base.clone();
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, router(emulator)).await {
            tracing::error!(error = %err, "emulator server stopped");
        }
    });
    Ok(base)
}

pub fn router(emulator: Arc<Emulator>) -> Router {
    let services = Router::new()
        .merge(rest::router())
        .layer(middleware::from_fn_with_state(
            emulator.clone(),
            rest_pipeline,
        ));
    Router::new()
        .merge(oauth::router())
        .merge(services)
        .nest("/__emulator", admin::router())
        .with_state(emulator)
}

/// A Salesforce error as an HTTP response: the JSON array body.
pub(crate) fn error_response(err: &SfError) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (status, axum::Json(err.to_rest_json())).into_response();
    if err.status == 401 {
        response
            .headers_mut()
            .insert("WWW-Authenticate", HeaderValue::from_static("Token"));
    }
    response
}

/// Decrements the in-flight count when a request ends, however it ends.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Every call under `/services/data`: session check, daily and concurrent limits, faults,
/// and the `Sforce-Limit-Info` header on the answer.
async fn rest_pipeline(
    State(emulator): State<Arc<Emulator>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if composite::is_internal(&request) {
        // A subrequest of `composite`: the outer call was counted, limited and faulted.
        return match emulator.sessions.authenticate(request.headers(), None) {
            Ok(user) => {
                request.extensions_mut().insert(user);
                next.run(request).await
            }
            Err(err) => error_response(&err),
        };
    }
    emulator.count_call(format!("{} {}", request.method(), endpoint_key(&path)));
    // The version list needs no session, as in Salesforce.
    if path == "/services/data" || path == "/services/data/" {
        return next.run(request).await;
    }
    let faults = emulator.faults.read().clone();
    let _in_flight = InFlight(&emulator.in_flight);
    let concurrent = emulator.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    if faults.latency_ms > 0 {
        // Slow answers hold their place among the concurrent requests, as on a busy org.
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }

    let user = match emulator
        .sessions
        .authenticate(request.headers(), faults.expire_sessions_after_calls)
    {
        Ok(user) => user,
        Err(err) => return with_limit_info(&emulator, error_response(&err)),
    };
    request.extensions_mut().insert(user);

    {
        let mut usage = emulator.usage.lock();
        if usage.used >= usage.max {
            let err = SfError::new(
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "TotalRequests Limit exceeded.",
            );
            drop(usage);
            return with_limit_info(&emulator, error_response(&err));
        }
        usage.used += 1;
    }
    if let Err(err) = check_api_enabled(&emulator, user) {
        return with_limit_info(&emulator, error_response(&err));
    }
    if faults
        .max_concurrent_requests
        .is_some_and(|max| concurrent > max)
    {
        let err = SfError::new(
            403,
            "REQUEST_LIMIT_EXCEEDED",
            "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
        );
        return with_limit_info(&emulator, error_response(&err));
    }
    if emulator.roll(faults.unavailable_rate) {
        let err = SfError::new(503, "SERVER_UNAVAILABLE", "Server Unavailable");
        return with_limit_info(&emulator, error_response(&err));
    }
    if emulator.roll(faults.html_error_rate) {
        return html_error_page();
    }
    let response = next.run(request).await;
    let response = with_limit_info(&emulator, response);
    if emulator.roll(faults.cut_connection_rate) {
        return cut_body(response).await;
    }
    response
}

/// Every REST call needs the user's API Enabled permission.
fn check_api_enabled(emulator: &Emulator, user: session::SessionUser) -> Result<(), SfError> {
    let org = emulator.org.read();
    if crate::rules::effective_permissions(&org, user.0).contains(&"PermissionsApiEnabled") {
        Ok(())
    } else {
        Err(SfError::new(
            403,
            "API_CURRENTLY_DISABLED",
            "API is disabled for this User",
        ))
    }
}

fn with_limit_info(emulator: &Emulator, mut response: Response) -> Response {
    let usage = *emulator.usage.lock();
    if let Ok(value) = HeaderValue::from_str(&format!("api-usage={}/{}", usage.used, usage.max)) {
        response.headers_mut().insert("Sforce-Limit-Info", value);
    }
    response
}

/// The maintenance page a client gets from Salesforce's edge when the org is unreachable.
fn html_error_page() -> Response {
    let body = "<!DOCTYPE html><html><head><title>Service Unavailable</title></head><body>\
                <h1>Service Unavailable</h1><p>The server is temporarily unable to service your \
                request due to maintenance downtime or capacity problems. Please try again later.</p>\
                </body></html>";
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
    response.headers_mut().insert(
        "Content-Type",
        HeaderValue::from_static("text/html;charset=UTF-8"),
    );
    response
}

/// Sends the headers and half the body, then drops the connection.
async fn cut_body(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let half = bytes.slice(..bytes.len() / 2);
    parts.headers.remove("content-length");
    let stream = futures_util::stream::unfold(0u8, move |step| {
        let half = half.clone();
        async move {
            match step {
                0 => Some((Ok::<_, std::io::Error>(half), 1)),
                1 => {
                    // Let the first half reach the client before the cut.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Some((
                        Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "connection cut by the emulator's fault injection",
                        )),
                        2,
                    ))
                }
                _ => None,
            }
        }
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

/// The endpoint a path belongs to, for call counts (`/services/data/v62.0/sobjects/User/005...`
/// -> `sobjects/{Type}/{id}`).
fn endpoint_key(path: &str) -> String {
    let rest = path.trim_start_matches("/services/data");
    let mut parts = rest.trim_start_matches('/').split('/');
    let _version = parts.next();
    let parts: Vec<&str> = parts.collect();
    match parts.as_slice() {
        [] | [""] => "versions".to_owned(),
        ["query", _cursor] | ["queryAll", _cursor] => format!("{}/next", parts[0]),
        ["sobjects", object, id] if !matches!(*id, "describe" | "updated" | "deleted") => {
            format!("sobjects/{object}/{{id}}")
        }
        _ => parts.join("/"),
    }
}
