//! Logging and traces. Logs are human-readable lines for a terminal or JSON lines for
//! collectors, on stderr so that stdout stays free for command output (`config check`, JSON
//! summaries). Every root span (an HTTP request, a sync run, an executor pass, a webhook
//! delivery) carries a W3C trace id in its `trace_id` field, so its log lines do; with
//! `traces.otlp_endpoint` set, the spans are also exported with OpenTelemetry (OTLP over HTTP)
//! under the same ids, and a request that arrives with a `traceparent` header joins the
//! caller's trace.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, Sampler, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogConfig, LogFormat, OtlpProtocol, TracesConfig};

/// How long an export may take before it is abandoned (the spans are dropped, the service
/// goes on).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the last spans may take to go out when the process stops: short, so that the
/// request drain plus this stays within a 30 s termination grace period.
const FINAL_FLUSH: Duration = Duration::from_secs(3);

/// Keeps the tracer provider while the process runs; dropping it sends the spans not yet
/// exported (at most [`EXPORT_TIMEOUT`]).
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(err) = provider.shutdown_with_timeout(FINAL_FLUSH) {
                eprintln!("provost: sending the last traces failed: {err}");
            }
        }
    }
}

/// Installs the global subscriber (logs, and the OpenTelemetry layer that gives spans their
/// trace ids and exports them when `traces` says so), and a panic hook that logs panics
/// through it (a JSON line like any other when logs are JSON, with the span of the request or
/// job that panicked). `RUST_LOG` overrides the configured filter. Call it outside an async
/// runtime: the exporter's client has its own.
pub fn init(log: &LogConfig, traces: &TracesConfig) -> anyhow::Result<Telemetry> {
    install_panic_hook();
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let lines = match log.format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
    };
    // The OpenTelemetry layer only when exporting: it costs about a fifth of the fastest
    // requests' throughput (`cargo bench --bench scim`), and without it root spans get trace
    // ids of their own (`record_trace_id`).
    let provider = traces
        .otlp_endpoint
        .as_deref()
        .map(|endpoint| tracer_provider(endpoint, traces))
        .transpose()?;
    let otel = provider
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer("provost")));
    // A second init (tests calling `run` twice in one process) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(lines)
        .with(otel)
        .try_init();
    Ok(Telemetry { provider })
}

/// The provider exporting to the collector at `endpoint` in batches.
fn tracer_provider(endpoint: &str, traces: &TracesConfig) -> anyhow::Result<SdkTracerProvider> {
    let builder = SdkTracerProvider::builder().with_resource(
        opentelemetry_sdk::Resource::builder()
            .with_service_name(traces.service_name.clone())
            .build(),
    );
    let protocol = match traces.otlp_protocol {
        OtlpProtocol::HttpProtobuf => Protocol::HttpBinary,
        OtlpProtocol::HttpJson => Protocol::HttpJson,
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(http_client()?)
        .with_protocol(protocol)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .with_context(|| format!("setting up the trace exporter to {endpoint}"))?;
    // By trace id alone, also for a caller's trace: a client's `traceparent` flag cannot make
    // every request it sends exported (the decision is the same for every span of a trace, and
    // the same as other services' sampling the same ratio).
    Ok(builder
        .with_sampler(Sampler::TraceIdRatioBased(traces.sample_ratio))
        .with_batch_exporter(exporter)
        .build())
}

/// The exporter's HTTP client: reqwest's blocking client, since the SDK exports from its own
/// thread outside any async runtime.
#[derive(Debug)]
struct BlockingClient(reqwest::blocking::Client);

fn http_client() -> anyhow::Result<BlockingClient> {
    let client = reqwest::blocking::Client::builder()
        .timeout(EXPORT_TIMEOUT)
        .build()
        .context("making the trace exporter's HTTP client")?;
    Ok(BlockingClient(client))
}

#[async_trait]
impl opentelemetry_http::HttpClient for BlockingClient {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> Result<
        opentelemetry_http::Response<opentelemetry_http::Bytes>,
        opentelemetry_http::HttpError,
    > {
        let (parts, body) = request.into_parts();
        let mut sent = self
            .0
            .request(parts.method, parts.uri.to_string())
            .body(body.to_vec());
        for (name, value) in &parts.headers {
            sent = sent.header(name, value);
        }
        let response = sent.send()?;
        let mut answer = opentelemetry_http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            answer = answer.header(name, value);
        }
        // A collector's answer is small; a larger one is cut rather than held.
        let body = response.bytes()?;
        Ok(answer.body(body.slice(..body.len().min(64 * 1024)))?)
    }
}

/// A `traceparent` header as the W3C propagator reads it.
struct Traceparent<'a>(Option<&'a str>);

impl Extractor for Traceparent<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent").then_some(self.0).flatten()
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

/// Whether `header` has the W3C trace-context shape: `VV-TRACEID-PARENTID-FF`, lower-case hex
/// of 2, 32, 16 and 2 digits, version `00` exactly 55 characters, a later version possibly
/// followed by `-` and more. (The SDK's parser lets a short or upper-case id through.)
fn w3c_shaped(header: &str) -> bool {
    let hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if header.len() < 55 || !header.is_ascii() {
        return false;
    }
    let (head, rest) = header.split_at(55);
    let version = &head[0..2];
    let shaped = hex(version)
        && version != "ff"
        && head.as_bytes()[2] == b'-'
        && hex(&head[3..35])
        && head.as_bytes()[35] == b'-'
        && hex(&head[36..52])
        && head.as_bytes()[52] == b'-'
        && hex(&head[53..55]);
    shaped && (rest.is_empty() || (version != "00" && rest.starts_with('-')))
}

/// The caller's context and trace id a W3C `traceparent` header names, when it is valid.
fn caller_of(traceparent: Option<&str>) -> Option<(opentelemetry::Context, TraceId)> {
    if !traceparent.is_some_and(w3c_shaped) {
        return None;
    }
    let context = TraceContextPropagator::new().extract(&Traceparent(traceparent));
    let id = context.span().span_context().clone();
    id.is_valid().then(|| (context, id.trace_id()))
}

/// The trace id a W3C `traceparent` header names, when it is valid.
pub fn trace_id_of(traceparent: Option<&str>) -> Option<TraceId> {
    caller_of(traceparent).map(|(_, id)| id)
}

/// Puts `span` (a root span declaring an empty `trace_id` field) in the caller's trace when
/// `traceparent` is a valid W3C header, and records its trace id in `trace_id`.
pub fn adopt_trace(span: &tracing::Span, traceparent: Option<&str>) {
    let caller = caller_of(traceparent).map(|(context, id)| {
        // Exported as a child of the caller's span (when traces are exported at all).
        let _ = span.set_parent(context);
        id
    });
    record(span, caller);
}

/// Records the trace id of `span` (a root span declaring an empty `trace_id` field) in that
/// field: the exported trace's, or a new one when traces are not exported. Nothing when the
/// span is filtered out of the logs.
pub fn record_trace_id(span: &tracing::Span) {
    record(span, None);
}

fn record(span: &tracing::Span, caller: Option<TraceId>) {
    if span.is_disabled() {
        return;
    }
    let context = span.context();
    let otel = context.span();
    let id = otel.span_context();
    let trace_id = if id.is_valid() {
        id.trace_id()
    } else {
        caller.unwrap_or_else(|| RandomIdGenerator::default().new_trace_id())
    };
    span.record("trace_id", tracing::field::display(trace_id));
}

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let backtrace = std::backtrace::Backtrace::capture();
        match backtrace.status() {
            std::backtrace::BacktraceStatus::Captured => {
                tracing::error!(panic = %message, location, backtrace = %backtrace, "panicked")
            }
            _ => tracing::error!(panic = %message, location, "panicked"),
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_valid_traceparent_names_its_trace_and_anything_else_none() {
        let id = trace_id_of(Some(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ));
        assert_eq!(
            id.map(|id| id.to_string()).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(trace_id_of(Some(bad)), None, "{bad}");
        }
        assert_eq!(trace_id_of(None), None);
    }

    proptest! {
        /// Whatever a caller sends as `traceparent`, reading it does not panic, and a trace id
        /// comes out only from a header of the W3C shape.
        #[test]
        fn any_header_is_read_without_panicking(header in ".{0,80}") {
            if let Some(id) = trace_id_of(Some(&header)) {
                prop_assert!(header.contains(&id.to_string()));
            }
        }

        #[test]
        fn well_formed_headers_keep_their_trace_id(
            trace in "[0-9a-f]{32}",
            parent in "[0-9a-f]{16}",
            flags in "0[01]",
        ) {
            let header = format!("00-{trace}-{parent}-{flags}");
            let valid = trace.bytes().any(|b| b != b'0') && parent.bytes().any(|b| b != b'0');
            let id = trace_id_of(Some(&header)).map(|id| id.to_string());
            prop_assert_eq!(id, valid.then_some(trace));
        }
    }
}
