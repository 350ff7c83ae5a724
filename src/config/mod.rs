//! Typed configuration: built-in defaults, then the TOML file, then `PROVOST_SECTION__KEY`
//! environment variables, each layer overriding the one before.
//!
//! Every value is checked when Provost starts: a wrong type, an unknown key or an invalid
//! value is a [`ConfigError`] naming the source, the key and what was expected, and the CLI
//! exits with status 2 before touching anything.

mod console;
mod database;
mod orgs;
mod secret;
mod webhooks;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

pub use console::{ConsoleConfig, RoleRule};
pub use database::{Backend, DatabaseConfig};
pub use orgs::{default_scim_max_changes, AuthConfig, OrgConfig, UserDefaults};
pub use provost_connector::secret::Secret;
pub use secret::DatabaseUrl;
pub use webhooks::WebhookConfig;

/// The file read when neither `--config` nor `PROVOST_CONFIG` names one. It is optional.
pub const DEFAULT_CONFIG_FILE: &str = "provost.toml";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub traces: TracesConfig,
    #[serde(default)]
    pub secrets: SecretsConfig,
    #[serde(default)]
    pub provisioning: ProvisioningConfig,
    #[serde(default)]
    pub reviews: ReviewsConfig,
    /// The web console: sessions and roles.
    #[serde(default)]
    pub console: ConsoleConfig,
    /// The Salesforce orgs to connect to.
    #[serde(default)]
    pub orgs: Vec<OrgConfig>,
    /// Receivers of access-request notifications.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
}

/// Access reviews: the defaults a campaign takes when its definition leaves them out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewsConfig {
    /// A campaign whose scope matches more items than this refuses to start unless forced.
    #[serde(default = "default_review_max_items")]
    pub max_items: u32,
    /// A user who has not signed in for this many days is dormant: their items are suggested
    /// for revocation.
    #[serde(default = "default_dormant_days")]
    pub dormant_days: u32,
    /// Reviewers are reminded this many days before a campaign is due.
    #[serde(default = "default_remind_days")]
    pub remind_days_before: u32,
    /// Seconds between passes of `provost serve` over campaigns: reminders, overdue notices,
    /// remediation left to finish, and recurring campaigns' next runs.
    #[serde(default = "default_review_tick")]
    pub tick_seconds: u32,
}

impl Default for ReviewsConfig {
    fn default() -> Self {
        ReviewsConfig {
            max_items: default_review_max_items(),
            dormant_days: default_dormant_days(),
            remind_days_before: default_remind_days(),
            tick_seconds: default_review_tick(),
        }
    }
}

fn default_review_max_items() -> u32 {
    100_000
}

fn default_dormant_days() -> u32 {
    90
}

fn default_remind_days() -> u32 {
    3
}

fn default_review_tick() -> u32 {
    60
}

/// The executor of access requests inside `provost serve`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisioningConfig {
    /// Run the executor inside `provost serve` (several replicas may all run it).
    #[serde(default = "yes")]
    pub executor: bool,
    /// How long a claim on requests lasts; a worker that dies mid-batch is replaced after it.
    #[serde(default = "default_claim_lease")]
    pub claim_lease_seconds: u32,
    /// How often the executor looks for due work when nothing woke it.
    #[serde(default = "default_poll_interval")]
    pub poll_interval_ms: u64,
    /// Transient failures of a request are retried this many times in all, with backoff.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Requests one worker claims at once (written in collections of 200).
    #[serde(default = "default_claim_limit")]
    pub claim_limit: u32,
    /// When a new request wakes the executor, it waits for more while they keep coming (each
    /// within 50 ms of the last), for at most this long, so that requests arriving together
    /// share `composite/sobjects` calls (up to 200 records each) instead of spending one call
    /// each. A lone request waits only the 50 ms. 0 executes at once.
    #[serde(default = "default_batch_window")]
    pub batch_window_ms: u64,
}

impl Default for ProvisioningConfig {
    fn default() -> Self {
        ProvisioningConfig {
            executor: true,
            claim_lease_seconds: default_claim_lease(),
            poll_interval_ms: default_poll_interval(),
            max_attempts: default_max_attempts(),
            claim_limit: default_claim_limit(),
            batch_window_ms: default_batch_window(),
        }
    }
}

fn yes() -> bool {
    true
}

fn default_batch_window() -> u64 {
    1000
}

fn default_claim_limit() -> u32 {
    1000
}

fn default_claim_lease() -> u32 {
    120
}

fn default_poll_interval() -> u64 {
    1000
}

fn default_max_attempts() -> u32 {
    8
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// The key that seals stored tokens, used when `PROVOST_SECRET_KEY` is not set; created on
    /// first use, readable by its owner only. Losing it means connecting the orgs again.
    pub key_file: PathBuf,
}

impl Default for SecretsConfig {
    fn default() -> Self {
        SecretsConfig {
            key_file: PathBuf::from("provost.key"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address `provost serve` listens on.
    pub listen: SocketAddr,
    /// Seconds in-flight requests get to finish after SIGINT/SIGTERM.
    pub shutdown_grace_seconds: u64,
    /// Seconds after which a request is answered 408 rather than held open.
    pub request_timeout_seconds: u64,
    /// The URL users and Salesforce reach this server at (for OAuth callbacks); defaults to
    /// `http://` + `listen`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// The longest one statement of a SCIM list or search may run before it is stopped and
    /// the client told to simplify its filter: a bound on the work one request can cause.
    #[serde(default = "default_query_timeout")]
    pub query_timeout_ms: u64,
    /// A second address that serves `GET /metrics` alone, without a token, for a scraper on
    /// a private network; unset, `/metrics` is served on `listen` for a `metrics:read` token.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
}

fn default_query_timeout() -> u64 {
    5000
}

impl ServerConfig {
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_owned()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            shutdown_grace_seconds: 30,
            request_timeout_seconds: 60,
            public_url: None,
            query_timeout_ms: default_query_timeout(),
            metrics_listen: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines for a terminal.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter directive such as `info` or `provost=debug,sqlx=warn`.
    /// `RUST_LOG`, when set, takes precedence.
    pub filter: String,
}

/// Traces exported with OpenTelemetry (OTLP over HTTP); off while `otlp_endpoint` is unset.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracesConfig {
    /// The collector's OTLP/HTTP base URL (`http://127.0.0.1:4318`); spans go to
    /// `{otlp_endpoint}/v1/traces`.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// `http/protobuf` (what collectors expect by default) or `http/json`.
    #[serde(default = "default_otlp_protocol")]
    pub otlp_protocol: OtlpProtocol,
    /// The `service.name` resource attribute the spans carry.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// The share of traces kept, 0.0 to 1.0; a trace started by a caller that sampled it
    /// (its `traceparent`) is kept whatever this says.
    #[serde(default = "default_sample_ratio")]
    pub sample_ratio: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OtlpProtocol {
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    #[serde(rename = "http/json")]
    HttpJson,
}

fn default_otlp_protocol() -> OtlpProtocol {
    OtlpProtocol::HttpProtobuf
}

fn default_service_name() -> String {
    "provost".to_owned()
}

fn default_sample_ratio() -> f64 {
    1.0
}

impl Default for TracesConfig {
    fn default() -> Self {
        TracesConfig {
            otlp_endpoint: None,
            otlp_protocol: default_otlp_protocol(),
            service_name: default_service_name(),
            sample_ratio: default_sample_ratio(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Pretty,
            filter: "info".to_owned(),
        }
    }
}

/// Why the configuration could not be loaded. Each variant says where to look and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path} does not exist: create it or point --config / PROVOST_CONFIG at an existing file")]
    MissingFile { path: PathBuf },
    #[error("{}", render_invalid(.problems))]
    Invalid { problems: Vec<ConfigProblem> },
}

/// One wrong value: where it came from, which key, and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The file or environment the value came from, e.g. `TOML file /etc/provost.toml`.
    pub source: String,
    /// The dotted key, e.g. `server.listen`; empty when the whole file is unreadable.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.source, self.message)
        } else {
            write!(f, "{}: key `{}`: {}", self.source, self.key, self.message)
        }
    }
}

/// Whether `name` is a valid name for an org or a webhook: lower-case letters, digits, `-`
/// and `_`, not empty.
fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn render_invalid(problems: &[ConfigProblem]) -> String {
    let mut text = String::from("invalid configuration:");
    for problem in problems {
        text.push_str("\n  - ");
        text.push_str(&problem.to_string());
    }
    text
}

impl Config {
    /// Loads the configuration. `path` is the file named by `--config`/`PROVOST_CONFIG`,
    /// which must exist; without one, `provost.toml` in the working directory is read if present.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(path, Env::prefixed("PROVOST_"))
    }

    fn load_with_env(path: Option<&Path>, env: Env) -> Result<Config, ConfigError> {
        let file = match path {
            Some(path) if !path.is_file() => {
                return Err(ConfigError::MissingFile {
                    path: path.to_owned(),
                })
            }
            Some(path) => path.to_owned(),
            None => PathBuf::from(DEFAULT_CONFIG_FILE),
        };
        // Only nested keys (`PROVOST_SERVER__LISTEN`) are configuration; single-level names such
        // as `PROVOST_CONFIG` or `PROVOST_SECRET_KEY` are read by other parts of Provost.
        let env = env.filter(|key| key.as_str().contains("__")).split("__");
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(&file))
            .merge(env)
            .extract()
            .map_err(|err| ConfigError::Invalid {
                problems: err.into_iter().map(problem_of).collect(),
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types alone cannot express.
    fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let url = self.database.url.expose();
        if Backend::of_url(url).is_none() {
            problems.push(ConfigProblem {
                source: "configuration".to_owned(),
                key: "database.url".to_owned(),
                message: format!(
                    "`{}` is not a database URL: expected `sqlite://PATH` or `postgres://USER@HOST:PORT/DB`",
                    self.database.url
                ),
            });
        }
        if self.database.max_connections == 0 {
            problems.push(ConfigProblem {
                source: "configuration".to_owned(),
                key: "database.max_connections".to_owned(),
                message: "must be at least 1".to_owned(),
            });
        }
        if !(100..=60_000).contains(&self.database.acquire_timeout_ms) {
            problems.push(ConfigProblem {
                source: "configuration".to_owned(),
                key: "database.acquire_timeout_ms".to_owned(),
                message: format!(
                    "{} is outside 100..=60000 (milliseconds)",
                    self.database.acquire_timeout_ms
                ),
            });
        }
        if !(1..=600_000).contains(&self.server.query_timeout_ms) {
            problems.push(ConfigProblem {
                source: "configuration".to_owned(),
                key: "server.query_timeout_ms".to_owned(),
                message: format!(
                    "{} is outside 1..=600000 (milliseconds)",
                    self.server.query_timeout_ms
                ),
            });
        }
        if let Some(metrics) = self.server.metrics_listen {
            if metrics == self.server.listen && metrics.port() != 0 {
                problems.push(ConfigProblem {
                    source: "configuration".to_owned(),
                    key: "server.metrics_listen".to_owned(),
                    message: format!(
                        "{metrics} is `server.listen` too: give metrics another port, or leave it unset to serve /metrics on `listen` for a metrics:read token"
                    ),
                });
            }
        }
        if let Some(endpoint) = &self.traces.otlp_endpoint {
            let parsed = url::Url::parse(endpoint);
            if !parsed.as_ref().is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.has_host()
                    && u.query().is_none()
                    && u.fragment().is_none()
                    && u.username().is_empty()
                    && u.password().is_none()
            }) {
                problems.push(ConfigProblem {
                    source: "configuration".to_owned(),
                    key: "traces.otlp_endpoint".to_owned(),
                    message: format!(
                        "`{endpoint}` is not an http(s) URL without credentials or query: give the collector's OTLP/HTTP address, such as http://127.0.0.1:4318 (credentials go in OTEL_EXPORTER_OTLP_HEADERS)"
                    ),
                });
            }
        }
        if !(0.0..=1.0).contains(&self.traces.sample_ratio) {
            problems.push(ConfigProblem {
                source: "configuration".to_owned(),
                key: "traces.sample_ratio".to_owned(),
                message: format!("{} is outside 0.0..=1.0", self.traces.sample_ratio),
            });
        }
        console::validate(&self.console, &mut problems);
        orgs::validate(&self.orgs, &mut problems);
        webhooks::validate(&self.webhooks, &self.orgs, &mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid { problems })
        }
    }

    /// The org named `name`, or an error listing the configured ones.
    /// The configured webhook named `name`, or an error listing the configured ones.
    pub fn webhook(&self, name: &str) -> Result<&WebhookConfig, String> {
        self.webhooks
            .iter()
            .find(|h| h.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self.webhooks.iter().map(|h| h.name.as_str()).collect();
                format!(
                    "no webhook is named `{name}`; configured: {}",
                    if known.is_empty() {
                        "none (add a [[webhooks]] entry)".to_owned()
                    } else {
                        known.join(", ")
                    }
                )
            })
    }

    pub fn org(&self, name: &str) -> Result<&OrgConfig, String> {
        self.orgs
            .iter()
            .find(|org| org.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self.orgs.iter().map(|org| org.name.as_str()).collect();
                if known.is_empty() {
                    format!("no org named `{name}`: the configuration has no [[orgs]] entries")
                } else {
                    format!(
                        "no org named `{name}`: the configuration has {}",
                        known.join(", ")
                    )
                }
            })
    }

    /// The effective configuration as TOML, every secret redacted, for `provost config check`.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).expect("configuration always serialises to TOML")
    }
}

fn problem_of(err: figment::Error) -> ConfigProblem {
    let source = err
        .metadata
        .as_ref()
        .map(|meta| match &meta.source {
            // Figment shows file paths relative to the working directory; name the file as given.
            Some(figment::Source::File(path)) => format!("{} {}", meta.name, path.display()),
            Some(source) => format!("{} {source}", meta.name),
            None => meta.name.to_string(),
        })
        .unwrap_or_else(|| "configuration".to_owned());
    let key = err.path.join(".");
    ConfigProblem {
        source,
        key,
        message: err.kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(contents: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(contents.as_bytes()).unwrap();
        file
    }

    fn no_env() -> Env {
        Env::prefixed("PROVOST_TEST_NOTHING_SET_")
    }

    #[test]
    fn defaults_apply_without_a_file() {
        let config = Config::load_with_env(None, no_env()).unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.database.url.expose(), "sqlite://provost.db");
        assert_eq!(config.log.format, LogFormat::Pretty);
    }

    #[test]
    fn file_values_override_defaults() {
        let file = file_with("[server]\nlisten = \"0.0.0.0:9000\"\n[log]\nformat = \"json\"\n");
        let config = Config::load_with_env(Some(file.path()), no_env()).unwrap();
        assert_eq!(config.server.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(
            config.server.shutdown_grace_seconds, 30,
            "unset keys keep their default"
        );
    }

    #[test]
    fn a_wrong_type_names_the_file_and_the_key() {
        let file = file_with("[database]\nmax_connections = \"many\"\n");
        let err = Config::load_with_env(Some(file.path()), no_env()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("database.max_connections"), "{text}");
        assert!(text.contains(&file.path().display().to_string()), "{text}");
        assert!(text.contains("u32"), "says what is expected: {text}");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let file = file_with("[server]\nlistn = \"127.0.0.1:1\"\n");
        let text = Config::load_with_env(Some(file.path()), no_env())
            .unwrap_err()
            .to_string();
        assert!(text.contains("listn"), "{text}");
        assert!(text.contains("listen"), "names the expected keys: {text}");
    }

    #[test]
    fn a_missing_explicit_file_is_an_error() {
        let err = Config::load_with_env(Some(Path::new("/nonexistent/provost.toml")), no_env())
            .unwrap_err();
        assert!(matches!(err, ConfigError::MissingFile { .. }));
    }

    #[test]
    fn an_unsupported_database_url_is_refused() {
        let file = file_with("[database]\nurl = \"mysql://root@localhost/provost\"\n");
        let text = Config::load_with_env(Some(file.path()), no_env())
            .unwrap_err()
            .to_string();
        assert!(text.contains("database.url"), "{text}");
        assert!(text.contains("sqlite://"), "{text}");
    }

    #[test]
    fn webhooks_parse_and_their_mistakes_are_named() {
        let good = file_with(
            r#"
[[webhooks]]
name = "approvals"
url = "https://hooks.example.com/provost?token=abc"
secret = "0123456789abcdef0123"
events = ["request.completed"]

[[webhooks]]
name = "local"
url = "http://127.0.0.1:9000/hook"
secret = "0123456789abcdef0123"
"#,
        );
        let config = Config::load_with_env(Some(good.path()), no_env()).unwrap();
        assert_eq!(config.webhooks.len(), 2);
        assert_eq!(config.webhooks[0].timeout_seconds, 10);
        assert_eq!(config.webhooks[0].give_up_after_minutes, 1440);
        assert!(!config.to_redacted_toml().contains("0123456789abcdef0123"));

        let bad = file_with(
            r#"
[[webhooks]]
name = "Bad Name"
url = "http://hooks.example.com/provost"
secret = "short"
events = ["request.done"]
orgs = ["nowhere"]
timeout_seconds = 0

[[webhooks]]
name = "x"
url = "ftp://example.com"
secret = "0123456789abcdef0123"
"#,
        );
        let text = Config::load_with_env(Some(bad.path()), no_env())
            .unwrap_err()
            .to_string();
        for expected in [
            "webhooks[0].name",
            "webhooks[0].url",
            "allow_plain_http",
            "webhooks[0].secret",
            "openssl rand",
            "`request.done` is not an event type",
            "request.completed",
            "`nowhere` is not a configured org",
            "webhooks[0].timeout_seconds",
            "webhooks[1].url",
        ] {
            assert!(text.contains(expected), "{expected} in {text}");
        }
    }

    #[test]
    fn orgs_parse_each_auth_method_and_hide_secrets() {
        let key = tempfile::NamedTempFile::new().unwrap();
        let file = file_with(&format!(
            r#"
[[orgs]]
name = "production"
login_url = "https://acme.my.salesforce.com"
auth = {{ method = "jwt_bearer", client_id = "3MVG", username = "int@acme.com", private_key_file = "{}" }}

[[orgs]]
name = "sandbox"
login_url = "https://test.salesforce.com"
api_version = "61.0"
exclude_portal_users = false
auth = {{ method = "client_credentials", client_id = "3MVG", client_secret = "cs-value" }}

[[orgs]]
name = "legacy"
login_url = "https://login.salesforce.com"
auth = {{ method = "refresh_token", client_id = "3MVG", refresh_token = "rt-value" }}

[[orgs]]
name = "interactive"
login_url = "https://login.salesforce.com"
auth = {{ method = "web_server", client_id = "3MVG" }}
"#,
            key.path().display()
        ));
        let config = Config::load_with_env(Some(file.path()), no_env()).unwrap();
        assert_eq!(config.orgs.len(), 4);
        assert!(config.orgs[0].exclude_portal_users, "defaults to true");
        assert!(!config.orgs[1].exclude_portal_users);
        assert_eq!(config.orgs[0].api_version, "62.0");
        assert_eq!(config.orgs[0].scim_max_changes, 1000);
        assert!(matches!(
            config.org("legacy").unwrap().auth,
            AuthConfig::RefreshToken { .. }
        ));
        assert!(config
            .org("missing")
            .unwrap_err()
            .contains("production, sandbox, legacy, interactive"));
        let shown = config.to_redacted_toml();
        assert!(
            !shown.contains("cs-value") && !shown.contains("rt-value"),
            "{shown}"
        );
    }

    #[test]
    fn bad_orgs_are_refused_naming_the_entry() {
        let file = file_with(
            r#"
[[orgs]]
name = "Prod!"
login_url = "login.salesforce.com"
api_version = "v62"
auth = { method = "jwt_bearer", client_id = "x", username = "y", private_key_file = "/nonexistent.pem" }

[[orgs]]
name = "x"
login_url = "https://login.salesforce.com"
auth = { method = "password", client_id = "x" }
"#,
        );
        let text = Config::load_with_env(Some(file.path()), no_env())
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("password") || text.contains("method"),
            "{text}"
        );
        let file = file_with(
            r#"
[[orgs]]
name = "Prod!"
login_url = "login.salesforce.com"
api_version = "v62"
scim_max_changes = 0
auth = { method = "jwt_bearer", client_id = "x", username = "y", private_key_file = "/nonexistent.pem" }
"#,
        );
        let text = Config::load_with_env(Some(file.path()), no_env())
            .unwrap_err()
            .to_string();
        for key in [
            "orgs[0].name",
            "orgs[0].login_url",
            "orgs[0].api_version",
            "orgs[0].scim_max_changes",
            "orgs[0].auth.private_key_file",
        ] {
            assert!(text.contains(key), "{key} in {text}");
        }
    }

    #[test]
    fn redacted_output_hides_the_database_password() {
        let file = file_with("[database]\nurl = \"postgres://u:topsecret@h:5432/d\"\n");
        let config = Config::load_with_env(Some(file.path()), no_env()).unwrap();
        let shown = config.to_redacted_toml();
        assert!(!shown.contains("topsecret"), "{shown}");
        assert!(!format!("{config:?}").contains("topsecret"));
    }
}
