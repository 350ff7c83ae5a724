//! Metrics in the Prometheus (OpenMetrics) text format, for `GET /metrics`.
//!
//! Two kinds. What this process sees as it works (HTTP requests by route template, method and
//! status, their latency; the syncs it ran and their durations; the executor's batches and
//! Salesforce's answers to its writes) is counted in [`Metrics`] as it happens. What the database knows
//! (each org's syncs, access requests, webhooks) is read from the store at each scrape, so
//! every replica on one PostgreSQL reports the same figures and a restart loses none. Label
//! values are bounded: route templates (never paths), org and webhook names from the
//! configuration, request states; no user, request or run ids.

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::config::Config;
use crate::store::sync::RunStatus;
use crate::store::{Store, StoreError};
use crate::sync::status;

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets of HTTP requests, in seconds: 5 ms to 10 s.
const HTTP_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OrgLabels {
    org: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OrgStateLabels {
    org: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    webhook: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: &'static str,
}

/// Durations of sync runs, in seconds: 1 s to 2 hours.
const SYNC_BUCKETS: [f64; 11] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0, 7200.0,
];

/// Requests in one executor batch (one collection call carries up to 200 records).
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 200.0, 1000.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OrgOutcomeLabels {
    org: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OrgCodeLabels {
    org: String,
    code: String,
}

/// What this process counts as it serves, syncs and executes. Cheap to clone: the counters
/// are shared. Each replica counts its own; Prometheus sums them.
#[derive(Clone)]
pub struct Metrics {
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram>,
    sync_duration: Family<OrgOutcomeLabels, Histogram>,
    executor_batch: Family<OrgLabels, Histogram>,
    writes: Family<OrgOutcomeLabels, Counter>,
    write_errors: Family<OrgCodeLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(|| Histogram::new(HTTP_BUCKETS)),
            sync_duration: Family::new_with_constructor(|| Histogram::new(SYNC_BUCKETS)),
            executor_batch: Family::new_with_constructor(|| Histogram::new(BATCH_BUCKETS)),
            writes: Family::default(),
            write_errors: Family::default(),
        }
    }
}

/// An error code as a label value: Salesforce's codes are upper-case words
/// (`UNABLE_TO_LOCK_ROW`); anything else, or none, is `other`, so a careless or hostile answer
/// cannot grow the label set.
fn code_label(code: Option<&str>) -> String {
    match code {
        Some(code)
            if !code.is_empty()
                && code.len() <= 64
                && code
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') =>
        {
            code.to_owned()
        }
        _ => "other".to_owned(),
    }
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// Counts one answered request. `route` is the matched route's template
    /// (`/orgs/{org}/scim/v2/Users`), or `unmatched`.
    pub fn observe_http(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.http_requests
            .get_or_create(&HttpLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
                method: method.to_owned(),
            })
            .observe(seconds);
    }

    /// Counts one sync run this process ran to its end (`outcome`: succeeded, failed, paused).
    pub fn observe_sync(&self, org: &str, outcome: &str, seconds: f64) {
        self.sync_duration
            .get_or_create(&OrgOutcomeLabels {
                org: org.to_owned(),
                outcome: outcome.to_owned(),
            })
            .observe(seconds);
    }

    /// Counts one batch of claimed requests the executor carried out.
    pub fn observe_batch(&self, org: &str, requests: usize) {
        self.executor_batch
            .get_or_create(&OrgLabels {
                org: org.to_owned(),
            })
            .observe(requests as f64);
    }

    /// Counts one write's end (`outcome`: done, already_done, refused, retry_later), and a
    /// refused or retried write by its error code.
    pub fn observe_write(&self, org: &str, outcome: &str, code: Option<&str>) {
        self.writes
            .get_or_create(&OrgOutcomeLabels {
                org: org.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        if matches!(outcome, "refused" | "retry_later") {
            self.write_errors
                .get_or_create(&OrgCodeLabels {
                    org: org.to_owned(),
                    code: code_label(code),
                })
                .inc();
        }
    }

    /// Every metric, in the text format: this process's counters and the store's figures
    /// as they are now.
    pub async fn render(&self, store: &dyn Store, config: &Config) -> Result<String, StoreError> {
        let figures = StoreFigures::read(store, config).await?;
        Ok(self.encode(Some(figures)))
    }

    /// This process's counters alone, in the text format.
    pub fn render_process(&self) -> String {
        self.encode(None)
    }

    fn encode(&self, figures: Option<StoreFigures>) -> String {
        let mut registry = Registry::with_prefix("provost");
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            self.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests, by route template and method",
            self.http_duration.clone(),
        );
        registry.register(
            "sync_duration_seconds",
            "Wall time of the sync runs this process ran, by org and outcome",
            self.sync_duration.clone(),
        );
        registry.register(
            "executor_batch_requests",
            "Requests in each batch this process's executor carried out",
            self.executor_batch.clone(),
        );
        registry.register(
            "salesforce_writes",
            "Writes this process's executor made, by org and outcome (done, already_done, refused, retry_later)",
            self.writes.clone(),
        );
        registry.register(
            "salesforce_write_errors",
            "Refused or retried writes of this process's executor, by Salesforce error code (`other` when there was none)",
            self.write_errors.clone(),
        );
        if let Some(figures) = figures {
            figures.register(&mut registry);
        }
        let mut text = String::new();
        encode(&mut text, &registry).expect("writing to a String cannot fail");
        text
    }
}

/// The figures read from the store at a scrape, as gauges.
#[derive(Default)]
struct StoreFigures {
    sync_last_success: Family<OrgLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    sync_last_run_end: Family<OrgLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    sync_failing: Family<OrgLabels, Gauge>,
    sync_last_duration: Family<OrgLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    sync_last_changes: Family<OrgLabels, Gauge>,
    sync_last_rows: Family<OrgLabels, Gauge>,
    sync_last_api_calls: Family<OrgLabels, Gauge>,
    sync_window_runs: Family<OrgStateLabels, Gauge>,
    api_used: Family<OrgLabels, Gauge>,
    api_limit: Family<OrgLabels, Gauge>,
    requests: Family<OrgStateLabels, Gauge>,
    executor_oldest: Family<OrgLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    webhook_behind: Family<WebhookLabels, Gauge>,
    webhook_failing_for: Family<WebhookLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    webhook_dead_letters: Family<WebhookLabels, Gauge>,
    pool: Family<PoolLabels, Gauge>,
    pool_max: Gauge,
}

impl StoreFigures {
    async fn read(store: &dyn Store, config: &Config) -> Result<StoreFigures, StoreError> {
        let figures = StoreFigures::default();
        let now = chrono::Utc::now();
        let seconds_since = |at: provost_connector::times::Timestamp| {
            (now - at).num_milliseconds().max(0) as f64 / 1000.0
        };
        for org in &config.orgs {
            let labels = OrgLabels {
                org: org.name.clone(),
            };
            let Some(record) = store.find_org(&org.name).await? else {
                // Configured but never synced or connected: it is failing to be synced only
                // once a run says so.
                figures.sync_failing.get_or_create(&labels).set(0);
                continue;
            };
            let runs = status::window_runs(store, record.id).await?;
            let window = status::health(&runs);
            figures
                .sync_failing
                .get_or_create(&labels)
                .set(i64::from(window.failing));
            for state in [
                RunStatus::Succeeded,
                RunStatus::Failed,
                RunStatus::Paused,
                RunStatus::Running,
            ] {
                let count = runs.iter().filter(|r| r.status == state).count();
                figures
                    .sync_window_runs
                    .get_or_create(&OrgStateLabels {
                        org: org.name.clone(),
                        state: state.as_str().to_owned(),
                    })
                    .set(count as i64);
            }
            // The run that ended last (a run recorded as not started while another ran has
            // the larger id but may end first).
            let latest = runs
                .iter()
                .filter(|r| r.finished_at.is_some())
                .max_by_key(|r| (r.finished_at, r.id.0));
            if let Some(run) = latest {
                if let Some(end) = run.finished_at {
                    figures
                        .sync_last_run_end
                        .get_or_create(&labels)
                        .set(end.timestamp_millis() as f64 / 1000.0);
                }
                if let Some(seconds) = status::duration_seconds(run) {
                    figures
                        .sync_last_duration
                        .get_or_create(&labels)
                        .set(seconds);
                }
                figures
                    .sync_last_changes
                    .get_or_create(&labels)
                    .set(run.counts.changes() as i64);
                figures
                    .sync_last_rows
                    .get_or_create(&labels)
                    .set(run.counts.rows_read as i64);
                figures
                    .sync_last_api_calls
                    .get_or_create(&labels)
                    .set(run.api_calls);
            }
            if let Some(success) = runs
                .iter()
                .find(|r| r.status == RunStatus::Succeeded)
                .and_then(|r| r.finished_at)
            {
                figures
                    .sync_last_success
                    .get_or_create(&labels)
                    .set(success.timestamp_millis() as f64 / 1000.0);
            }
            if let Some(used) = window.api_used {
                figures.api_used.get_or_create(&labels).set(used);
            }
            if let Some(limit) = window.api_limit {
                figures.api_limit.get_or_create(&labels).set(limit);
            }
            let counts = store.request_counts(record.id).await?;
            for count in &counts {
                figures
                    .requests
                    .get_or_create(&OrgStateLabels {
                        org: org.name.clone(),
                        state: count.state.clone(),
                    })
                    .set(count.count);
            }
            let oldest_approved = counts
                .iter()
                .find(|c| c.state == "approved")
                .and_then(|c| c.oldest_update)
                .map_or(0.0, seconds_since);
            figures
                .executor_oldest
                .get_or_create(&labels)
                .set(oldest_approved);
        }
        let (head, _) = store.audit_head().await?;
        let cursors = store.webhook_cursors().await?;
        for hook in &config.webhooks {
            let labels = WebhookLabels {
                webhook: hook.name.clone(),
            };
            let cursor = cursors.iter().find(|c| c.name == hook.name);
            figures
                .webhook_behind
                .get_or_create(&labels)
                .set(cursor.map_or(0, |c| head - c.after_seq));
            figures.webhook_failing_for.get_or_create(&labels).set(
                cursor
                    .and_then(|c| c.failing_since)
                    .map_or(0.0, seconds_since),
            );
            let dead = store.waiting_dead_letters(&hook.name).await?;
            figures
                .webhook_dead_letters
                .get_or_create(&labels)
                .set(dead);
        }
        let pool = store.pool_usage();
        figures
            .pool
            .get_or_create(&PoolLabels { state: "idle" })
            .set(i64::from(pool.idle));
        figures
            .pool
            .get_or_create(&PoolLabels { state: "in_use" })
            .set(i64::from(pool.open.saturating_sub(pool.idle)));
        figures.pool_max.set(i64::from(pool.max));
        Ok(figures)
    }

    fn register(self, registry: &mut Registry) {
        let window = format!("over the last {} days", status::HEALTH_WINDOW_DAYS);
        registry.register(
            "sync_last_success_timestamp_seconds",
            format!("When the org's latest successful sync ended (Unix time), {window}"),
            self.sync_last_success,
        );
        registry.register(
            "sync_last_run_end_timestamp_seconds",
            format!("When the org's latest sync run ended (Unix time), {window}"),
            self.sync_last_run_end,
        );
        registry.register(
            "sync_failing",
            "1 when the org's latest finished sync failed or could not start",
            self.sync_failing,
        );
        registry.register(
            "sync_last_duration_seconds",
            "Wall time of the org's latest sync run",
            self.sync_last_duration,
        );
        registry.register(
            "sync_last_changes",
            "Changes the org's latest sync run found",
            self.sync_last_changes,
        );
        registry.register(
            "sync_last_rows_read",
            "Rows the org's latest sync run read from Salesforce",
            self.sync_last_rows,
        );
        registry.register(
            "sync_last_api_calls",
            "Salesforce API calls the org's latest sync run made",
            self.sync_last_api_calls,
        );
        registry.register(
            "sync_runs",
            format!("Sync runs started {window}, by status"),
            self.sync_window_runs,
        );
        registry.register(
            "salesforce_api_used",
            "The org's Salesforce API requests of the day, as its latest sync saw them",
            self.api_used,
        );
        registry.register(
            "salesforce_api_limit",
            "The org's Salesforce daily API request allocation",
            self.api_limit,
        );
        registry.register("access_requests", "Access requests by state", self.requests);
        registry.register(
            "executor_oldest_approved_seconds",
            "How long the longest-waiting approved request has waited for the executor (0: none)",
            self.executor_oldest,
        );
        registry.register(
            "webhook_behind_entries",
            "Audit entries not yet gone through the webhook",
            self.webhook_behind,
        );
        registry.register(
            "webhook_failing_seconds",
            "How long the webhook's receiver has been failing (0: it is not)",
            self.webhook_failing_for,
        );
        registry.register(
            "webhook_dead_letters",
            "Notifications the webhook gave up on and that were not replayed since",
            self.webhook_dead_letters,
        );
        registry.register(
            "db_pool_connections",
            "Database connections of this process, idle or in use",
            self.pool,
        );
        registry.register(
            "db_pool_max_connections",
            "The most database connections this process opens",
            self.pool_max,
        );
    }
}

/// The metric names a text in the format defines (`# TYPE` lines), for checking that alert
/// rules and dashboards name metrics that exist.
pub fn names_in(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some((name, kind)) = rest.split_once(' ') {
                names.push(name.to_owned());
                // Counters are sampled as `_total`, histograms as `_bucket`, `_sum`, `_count`.
                let suffixes: &[&str] = match kind {
                    "counter" => &["_total"],
                    "histogram" => &["_bucket", "_sum", "_count"],
                    _ => &[],
                };
                names.extend(suffixes.iter().map(|suffix| format!("{name}{suffix}")));
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_labels_only_in_salesforce_shape() {
        assert_eq!(code_label(Some("UNABLE_TO_LOCK_ROW")), "UNABLE_TO_LOCK_ROW");
        assert_eq!(code_label(Some("E404")), "E404");
        for odd in ["", "lower_case", "WITH SPACE", "QUOTE\"", &"A".repeat(65)] {
            assert_eq!(code_label(Some(odd)), "other", "{odd}");
        }
        assert_eq!(code_label(None), "other");
    }

    #[test]
    fn syncs_batches_and_writes_are_counted_by_org_and_outcome() {
        let metrics = Metrics::new();
        metrics.observe_sync("acme", "succeeded", 42.0);
        metrics.observe_sync("acme", "failed", 3.0);
        metrics.observe_batch("acme", 7);
        metrics.observe_write("acme", "done", None);
        metrics.observe_write("acme", "refused", Some("INSUFFICIENT_ACCESS"));
        metrics.observe_write("acme", "retry_later", Some("not a code"));
        let text = metrics.render_process();
        for series in [
            r#"provost_sync_duration_seconds_count{org="acme",outcome="succeeded"} 1"#,
            r#"provost_sync_duration_seconds_sum{org="acme",outcome="succeeded"} 42.0"#,
            r#"provost_sync_duration_seconds_bucket{le="60.0",org="acme",outcome="succeeded"} 1"#,
            r#"provost_sync_duration_seconds_bucket{le="30.0",org="acme",outcome="succeeded"} 0"#,
            r#"provost_executor_batch_requests_sum{org="acme"} 7.0"#,
            r#"provost_salesforce_writes_total{org="acme",outcome="done"} 1"#,
            r#"provost_salesforce_write_errors_total{org="acme",code="INSUFFICIENT_ACCESS"} 1"#,
            r#"provost_salesforce_write_errors_total{org="acme",code="other"} 1"#,
        ] {
            assert!(text.contains(series), "no `{series}` in\n{text}");
        }
        assert!(
            !text.contains(r#"code="NONE""#) && !text.contains("outcome=\"done\",code"),
            "a done write is not an error"
        );
    }
}
