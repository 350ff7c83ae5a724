//! The REST client every Salesforce call goes through.
//!
//! - An expired session (401 INVALID_SESSION_ID) gets one new token, shared by every request
//!   in flight, then the request is retried once.
//! - Transient failures (503, UNABLE_TO_LOCK_ROW, ConcurrentRequests, timeouts, cut
//!   connections, HTML error pages with a 5xx status) are retried with capped exponential
//!   backoff and jitter.
//! - The daily limit (REQUEST_LIMIT_EXCEEDED, TotalRequests) stops at once with
//!   [`SalesforceError::DailyLimitExceeded`]: never a retry loop against an exhausted org.
//! - `Sforce-Limit-Info` is read from every answer, so callers can stay under a budget.
//! - Requests in flight are limited ([`MAX_IN_FLIGHT`] at first); each `ConcurrentRequests`
//!   refusal lowers the limit by one (never below one) for the client's life, besides the
//!   retry's backoff: an org that says it is busy gets fewer requests at once, not the same
//!   number again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use crate::auth::{request_token, Credentials, Session};
use crate::error::SalesforceError;
use crate::limits::ApiUsage;
use crate::record::{self, Record};
use crate::retry::RetryPolicy;
use crate::soql::Query;

/// A recent API version; configurable per org.
pub const DEFAULT_API_VERSION: &str = "62.0";

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://login.salesforce.com`, `https://test.salesforce.com`, a My Domain, or the emulator.
    pub login_url: String,
    pub api_version: String,
    /// Records per query page (`Sforce-Query-Options: batchSize`), 200 to 2000.
    pub batch_size: u16,
    pub retry: RetryPolicy,
    /// Per request, connection to last byte.
    pub timeout: Duration,
}

impl ClientConfig {
    pub fn new(login_url: impl Into<String>) -> ClientConfig {
        ClientConfig {
            login_url: login_url.into(),
            api_version: DEFAULT_API_VERSION.to_owned(),
            batch_size: 2000,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(120),
        }
    }
}

/// One page of a query.
#[derive(Debug, Clone)]
pub struct QueryPage {
    pub total_size: u64,
    pub done: bool,
    pub next_records_url: Option<String>,
    pub records: Vec<Record>,
}

pub struct SalesforceClient {
    http: reqwest::Client,
    config: ClientConfig,
    credentials: tokio::sync::Mutex<Credentials>,
    session: tokio::sync::RwLock<Option<Arc<Session>>>,
    /// Held while a new token is fetched, so concurrent expiries fetch one.
    renewal: tokio::sync::Mutex<()>,
    usage: Mutex<Option<ApiUsage>>,
    calls: AtomicU64,
    token_requests: AtomicU64,
    /// Requests in flight (see the module documentation).
    gate: tokio::sync::Semaphore,
    /// The current limit of requests in flight.
    limit: std::sync::atomic::AtomicUsize,
    /// Permits to take out of circulation as requests end (a refusal came while every permit
    /// was out).
    shrink: std::sync::atomic::AtomicUsize,
}

/// Requests a client has in flight at most, before Salesforce refuses any as concurrent.
pub const MAX_IN_FLIGHT: usize = 16;

/// What one attempt came to.
pub(crate) enum Outcome<T = Value> {
    Done(u16, T),
    SessionExpired,
    Retry(SalesforceError),
    Fail(SalesforceError),
}

#[derive(Deserialize)]
struct ApiErrorBody {
    #[serde(rename = "errorCode")]
    error_code: String,
    message: String,
    #[serde(default)]
    fields: Vec<String>,
}

impl SalesforceClient {
    pub fn new(
        config: ClientConfig,
        credentials: Credentials,
    ) -> Result<SalesforceClient, SalesforceError> {
        url::Url::parse(&config.login_url).map_err(|err| {
            SalesforceError::Config(format!(
                "login_url `{}` is not a URL: {err}",
                config.login_url
            ))
        })?;
        if !(200..=2000).contains(&config.batch_size) {
            return Err(SalesforceError::Config(format!(
                "batch size {} is outside 200..=2000",
                config.batch_size
            )));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("provost/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| {
                SalesforceError::Config(format!("cannot build the HTTP client: {err}"))
            })?;
        Ok(SalesforceClient {
            http,
            config,
            credentials: tokio::sync::Mutex::new(credentials),
            session: tokio::sync::RwLock::new(None),
            renewal: tokio::sync::Mutex::new(()),
            usage: Mutex::new(None),
            calls: AtomicU64::new(0),
            token_requests: AtomicU64::new(0),
            gate: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
            limit: std::sync::atomic::AtomicUsize::new(MAX_IN_FLIGHT),
            shrink: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Authenticates now (rather than on the first call) and returns the session.
    pub async fn connect(&self) -> Result<Arc<Session>, SalesforceError> {
        self.session().await
    }

    /// The API usage Salesforce last reported.
    pub fn api_usage(&self) -> Option<ApiUsage> {
        *self.usage.lock().expect("usage lock")
    }

    /// REST calls sent (retries included), for budgets and benchmarks.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Requests this client lets be in flight at once now.
    pub fn concurrency_limit(&self) -> usize {
        self.limit.load(Ordering::SeqCst)
    }

    /// One fewer request in flight from now on (never fewer than one).
    pub(crate) fn lower_limit(&self) {
        let lowered = self
            .limit
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |limit| {
                (limit > 1).then(|| limit - 1)
            });
        if let Ok(before) = lowered {
            match self.gate.try_acquire() {
                Ok(permit) => permit.forget(),
                Err(_) => {
                    self.shrink.fetch_add(1, Ordering::SeqCst);
                }
            }
            tracing::warn!(
                limit = before - 1,
                "Salesforce refused a request as one too many at once (ConcurrentRequests); sending fewer at once"
            );
        }
    }

    /// Records per page of a query.
    pub fn batch_size(&self) -> u16 {
        self.config.batch_size
    }

    /// Token requests made (the first included).
    pub fn token_requests(&self) -> u64 {
        self.token_requests.load(Ordering::Relaxed)
    }

    /// The refresh token in use, which changes when the org rotates them; callers persist it.
    pub async fn current_refresh_token(&self) -> Option<provost_connector::secret::Secret> {
        match &*self.credentials.lock().await {
            Credentials::RefreshToken { refresh_token, .. } => Some(refresh_token.clone()),
            _ => None,
        }
    }

    /// `/services/data/vNN.N/{rest}`.
    pub fn data_path(&self, rest: &str) -> String {
        format!(
            "/services/data/v{}/{}",
            self.config.api_version,
            rest.trim_start_matches('/')
        )
    }

    async fn session(&self) -> Result<Arc<Session>, SalesforceError> {
        if let Some(session) = self.session.read().await.clone() {
            return Ok(session);
        }
        self.renew(None).await
    }

    /// A new token, unless another request already replaced `stale` while this one waited.
    async fn renew(&self, stale: Option<&Arc<Session>>) -> Result<Arc<Session>, SalesforceError> {
        let _turn = self.renewal.lock().await;
        if let Some(current) = self.session.read().await.clone() {
            if stale.is_none_or(|stale| !Arc::ptr_eq(stale, &current)) {
                return Ok(current);
            }
        }
        let credentials = self.credentials.lock().await.clone();
        let mut attempt = 0;
        let session = loop {
            attempt += 1;
            self.token_requests.fetch_add(1, Ordering::Relaxed);
            match request_token(&self.http, &self.config.login_url, &credentials).await {
                Ok(session) => break session,
                Err(err)
                    if is_transient_token_error(&err)
                        && attempt < self.config.retry.max_attempts =>
                {
                    tracing::warn!(attempt, error = %err, "token request failed; retrying");
                    tokio::time::sleep(self.config.retry.delay(attempt)).await;
                }
                Err(err) => return Err(err),
            }
        };
        if let (Some(rotated), Credentials::RefreshToken { refresh_token, .. }) = (
            &session.rotated_refresh_token,
            &mut *self.credentials.lock().await,
        ) {
            *refresh_token = rotated.clone();
        }
        let session = Arc::new(session);
        *self.session.write().await = Some(session.clone());
        tracing::debug!(instance = %session.instance_url, "authenticated to Salesforce");
        Ok(session)
    }

    /// GET a path under the instance (`/services/data/...`) and parse its JSON.
    pub async fn get_json(&self, path: &str) -> Result<Value, SalesforceError> {
        self.execute(Method::GET, path, None, &[], true)
            .await
            .map(|(_, body)| body)
    }

    /// Sends a request with a JSON body. `idempotent` requests are retried after a cut
    /// connection too; others only when Salesforce certainly did not act (503, lock, limits).
    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        body: &Value,
        idempotent: bool,
    ) -> Result<(u16, Value), SalesforceError> {
        self.execute(method, path, Some(body), &[], idempotent)
            .await
    }

    /// DELETE a path (`composite/sobjects?ids=...`) and parse its JSON. Retried like any
    /// idempotent request: deleting what is already gone answers per record, not as a failure.
    pub async fn delete_json(&self, path: &str) -> Result<(u16, Value), SalesforceError> {
        self.execute(Method::DELETE, path, None, &[], true).await
    }

    /// The first page of a query.
    pub async fn query(&self, query: &Query) -> Result<QueryPage, SalesforceError> {
        let path = self.query_path(query);
        let options = format!("batchSize={}", self.config.batch_size);
        let (_, page) = self
            .execute_as(
                Method::GET,
                &path,
                None,
                &[("Sforce-Query-Options", options)],
                true,
                page_of_bytes,
            )
            .await?;
        Ok(page)
    }

    /// The data path that runs `query`.
    pub(crate) fn query_path(&self, query: &Query) -> String {
        format!(
            "{}?{}",
            self.data_path("query"),
            encode_query(&query.to_soql())
        )
    }

    /// The page a `nextRecordsUrl` names.
    pub async fn query_more(&self, next_records_url: &str) -> Result<QueryPage, SalesforceError> {
        if !next_records_url.starts_with("/services/data/") {
            return Err(SalesforceError::UnexpectedBody {
                status: 200,
                detail: format!("nextRecordsUrl `{next_records_url}` is not a data path"),
            });
        }
        let (_, page) = self
            .execute_as(
                Method::GET,
                next_records_url,
                None,
                &[],
                true,
                page_of_bytes,
            )
            .await?;
        Ok(page)
    }

    async fn execute(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&'static str, String)],
        idempotent: bool,
    ) -> Result<(u16, Value), SalesforceError> {
        self.execute_as(method, path, body, headers, idempotent, json_of_bytes)
            .await
    }

    /// [`Self::execute`], with a successful answer's body parsed by `parse`.
    async fn execute_as<T: Send + 'static>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&'static str, String)],
        idempotent: bool,
        parse: Parse<T>,
    ) -> Result<(u16, T), SalesforceError> {
        let mut renewed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let session = self.session().await?;
            let url = format!("{}{}", session.instance_url.trim_end_matches('/'), path);
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(session.access_token.expose())
                .timeout(self.config.timeout);
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let permit = self.gate.acquire().await.expect("the gate is never closed");
            self.calls.fetch_add(1, Ordering::Relaxed);
            let outcome = self.attempt(request, &url, idempotent, parse).await;
            let owed = self
                .shrink
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
            match owed {
                Ok(_) => permit.forget(),
                Err(_) => drop(permit),
            }
            if let Outcome::Retry(SalesforceError::Api { code, message, .. }) = &outcome {
                if code == "REQUEST_LIMIT_EXCEEDED" && message.contains("ConcurrentRequests") {
                    self.lower_limit();
                }
            }
            match outcome {
                Outcome::Done(status, value) => return Ok((status, value)),
                Outcome::SessionExpired if !renewed => {
                    renewed = true;
                    tracing::debug!("session expired; getting a new token");
                    self.renew(Some(&session)).await?;
                }
                Outcome::SessionExpired => {
                    return Err(SalesforceError::Api {
                        status: 401,
                        code: "INVALID_SESSION_ID".to_owned(),
                        message:
                            "Session expired or invalid, again right after a new token was issued"
                                .to_owned(),
                        fields: Vec::new(),
                    })
                }
                Outcome::Retry(err) if attempt < self.config.retry.max_attempts => {
                    let delay = self.config.retry.delay(attempt);
                    tracing::warn!(attempt, delay_ms = delay.as_millis() as u64, error = %err, "transient Salesforce failure; retrying");
                    tokio::time::sleep(delay).await;
                }
                Outcome::Retry(err) => {
                    return Err(SalesforceError::RetriesExhausted {
                        attempts: attempt,
                        last: Box::new(err),
                    })
                }
                Outcome::Fail(err) => return Err(err),
            }
        }
    }

    async fn attempt<T: Send + 'static>(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
        idempotent: bool,
        parse: Parse<T>,
    ) -> Outcome<T> {
        let response = match request.send().await {
            Ok(response) => response,
            // Refused connections never reached Salesforce; timeouts and resets might have.
            Err(err) if err.is_connect() || idempotent => {
                return Outcome::Retry(SalesforceError::transport(url, &err))
            }
            Err(err) => return Outcome::Fail(SalesforceError::transport(url, &err)),
        };
        let status = response.status().as_u16();
        if let Some(usage) = response
            .headers()
            .get("sforce-limit-info")
            .and_then(|v| v.to_str().ok())
            .and_then(ApiUsage::from_header)
        {
            *self.usage.lock().expect("usage lock") = Some(usage);
        }
        let html = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"));
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(err) if idempotent => return Outcome::Retry(SalesforceError::transport(url, &err)),
            Err(err) => return Outcome::Fail(SalesforceError::transport(url, &err)),
        };
        let usage = self.api_usage();
        // A large answer (a page of records) is parsed on a blocking thread, so the caller's
        // task can go on with other work (the sync compares and stores the previous page).
        if bytes.len() > PARSE_OFF_THREAD {
            return tokio::task::spawn_blocking(move || {
                classify_as(status, html, &bytes, usage, parse)
            })
            .await
            .unwrap_or_else(|err| {
                Outcome::Fail(SalesforceError::UnexpectedBody {
                    status,
                    detail: format!("parsing the answer failed: {err}"),
                })
            });
        }
        classify_as(status, html, &bytes, usage, parse)
    }
}

fn is_transient_token_error(err: &SalesforceError) -> bool {
    match err {
        SalesforceError::Transport { .. } => true,
        SalesforceError::Html { status } | SalesforceError::UnexpectedBody { status, .. } => {
            *status >= 500
        }
        _ => false,
    }
}

/// Answers larger than this many bytes are parsed off the async worker threads.
const PARSE_OFF_THREAD: usize = 64 * 1024;

/// How a successful answer's body is parsed: into what, or why it cannot be.
type Parse<T> = fn(&[u8]) -> Result<T, String>;

/// A body as JSON; an empty one is `null`.
fn json_of_bytes(bytes: &[u8]) -> Result<Value, String> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(bytes).map_err(|err| err.to_string())
}

/// A body as a query's page, its records parsed as the reader takes them ([`Record`]).
fn page_of_bytes(bytes: &[u8]) -> Result<QueryPage, String> {
    let page = record::parse_page(bytes).map_err(|err| format!("not a query page: {err}"))?;
    page_of(page)
}

/// Decides what an answer means.
pub(crate) fn classify(status: u16, html: bool, bytes: &[u8], usage: Option<ApiUsage>) -> Outcome {
    classify_as(status, html, bytes, usage, json_of_bytes)
}

/// [`classify`], with a successful answer's body parsed by `parse`.
fn classify_as<T>(
    status: u16,
    html: bool,
    bytes: &[u8],
    usage: Option<ApiUsage>,
    parse: Parse<T>,
) -> Outcome<T> {
    let transient_status = matches!(status, 502..=504);
    if html {
        let err = SalesforceError::Html { status };
        return if status >= 500 {
            Outcome::Retry(err)
        } else {
            Outcome::Fail(err)
        };
    }
    if (200..300).contains(&status) {
        return match parse(bytes) {
            Ok(body) => Outcome::Done(status, body),
            Err(detail) => Outcome::Fail(SalesforceError::UnexpectedBody { status, detail }),
        };
    }
    let errors: Vec<ApiErrorBody> = match serde_json::from_slice(bytes) {
        Ok(errors) => errors,
        Err(_) => {
            let err = SalesforceError::UnexpectedBody {
                status,
                detail: "an error answer without Salesforce's error array".to_owned(),
            };
            return if status >= 500 {
                Outcome::Retry(err)
            } else {
                Outcome::Fail(err)
            };
        }
    };
    let Some(first) = errors.into_iter().next() else {
        return Outcome::Fail(SalesforceError::UnexpectedBody {
            status,
            detail: "an empty error array".to_owned(),
        });
    };
    let api_error = |first: ApiErrorBody| SalesforceError::Api {
        status,
        code: first.error_code,
        message: first.message,
        fields: first.fields,
    };
    match first.error_code.as_str() {
        "INVALID_SESSION_ID" if status == 401 => Outcome::SessionExpired,
        "REQUEST_LIMIT_EXCEEDED" if first.message.contains("ConcurrentRequests") => {
            Outcome::Retry(api_error(first))
        }
        "REQUEST_LIMIT_EXCEEDED" => Outcome::Fail(SalesforceError::DailyLimitExceeded { usage }),
        "UNABLE_TO_LOCK_ROW" | "SERVER_UNAVAILABLE" => Outcome::Retry(api_error(first)),
        _ if transient_status => Outcome::Retry(api_error(first)),
        _ => Outcome::Fail(api_error(first)),
    }
}

/// The page's parts, moved out of a parsed body (a page inside a `composite` answer).
pub(crate) fn page_of_value(mut body: Value) -> Result<QueryPage, SalesforceError> {
    let bad = |detail: String| SalesforceError::UnexpectedBody {
        status: 200,
        detail,
    };
    // `get_mut`, not an index: a body that is not an object is told so, not a panic.
    let records = match body.get_mut("records").map(Value::take) {
        Some(Value::Array(records)) => Some(
            record::records_of_values(records)
                .map_err(|detail| bad(format!("not a query page: {detail}")))?,
        ),
        _ => None,
    };
    page_of(record::WirePage {
        total_size: body.get("totalSize").and_then(Value::as_u64),
        done: body.get("done").and_then(Value::as_bool),
        next_records_url: body.get_mut("nextRecordsUrl").map(Value::take),
        records,
    })
    .map_err(bad)
}

/// A page whose parts are what Salesforce sends, or what is wrong with it.
fn page_of(page: record::WirePage) -> Result<QueryPage, String> {
    let bad = |detail: &str| format!("not a query page: {detail}");
    let total_size = page.total_size.ok_or_else(|| bad("no totalSize"))?;
    let done = page.done.ok_or_else(|| bad("no done"))?;
    let next_records_url = match page.next_records_url {
        Some(Value::String(url)) => Some(url),
        Some(Value::Null) | None => None,
        Some(_) => return Err(bad("nextRecordsUrl is not text")),
    };
    let records = page.records.ok_or_else(|| bad("no records array"))?;
    Ok(QueryPage {
        total_size,
        done,
        next_records_url,
        records,
    })
}

/// `q=...` with the SOQL percent-encoded.
fn encode_query(soql: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("q", soql)
        .finish()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn what_is_wrong_with_a_page_is_said_whichever_way_it_came() {
        let said = |bytes: &[u8]| match classify_as(200, false, bytes, None, page_of_bytes) {
            Outcome::Fail(SalesforceError::UnexpectedBody { status, detail }) => {
                assert_eq!(status, 200);
                detail
            }
            _ => panic!("{} was taken as a page", String::from_utf8_lossy(bytes)),
        };
        assert!(said(b"").starts_with("not a query page: EOF"));
        assert_eq!(
            said(br#"{"done": true, "records": []}"#),
            "not a query page: no totalSize"
        );
        assert_eq!(
            said(br#"{"totalSize": 1, "done": true}"#),
            "not a query page: no records array"
        );
        assert_eq!(
            said(br#"{"totalSize": 1, "done": false, "nextRecordsUrl": 3, "records": []}"#),
            "not a query page: nextRecordsUrl is not text"
        );
        assert!(said(br#"{"totalSize": 1, "done": true, "records": [1]}"#)
            .contains("expected a record (an object)"));

        let detail = |body: Value| match page_of_value(body) {
            Err(SalesforceError::UnexpectedBody { detail, .. }) => detail,
            other => panic!("{other:?}"),
        };
        for body in [json!([1]), json!("x"), Value::Null] {
            assert_eq!(detail(body), "not a query page: no totalSize");
        }
        assert_eq!(
            detail(json!({"totalSize": 1, "done": true, "records": [null]})),
            "not a query page: a record that is not an object"
        );
        let page = page_of_value(json!({"totalSize": 1, "done": true, "records": [{"Id": "1"}]}));
        assert_eq!(page.unwrap().records[0]["Id"], json!("1"));
    }
}
