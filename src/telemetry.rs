//! OpenTelemetry traces of a run, sent over OTLP/HTTP (protobuf) to a collector. Off unless
//! configured (`--otlp-endpoint`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
//! `OTEL_EXPORTER_OTLP_ENDPOINT`, or `OTEL_TRACES_EXPORTER=otlp`): a run without them installs
//! nothing and makes no network call for telemetry.
//!
//! The spans are the ones the logs already have (run → phase → target → source/call);
//! tracing-opentelemetry turns them into OpenTelemetry spans. This module names them, adds the
//! semantic-convention attributes of AWS and Vault calls (`rpc.*`, `cloud.region`,
//! `aws.request_id`, `http.response.status_code`, `server.address`, `error.type`) — names, ids
//! and statuses only, never a secret value, a token or a header — makes the run a child of
//! `TRACEPARENT` when the caller set one, and flushes what is left when the command ends,
//! waiting at most [`FLUSH_BOUND`].
//!
//! The OpenTelemetry SDK reads its own tuning variables (`OTEL_EXPORTER_OTLP_HEADERS`,
//! `…_TIMEOUT`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`,
//! `OTEL_BSP_*`); the variables that decide whether and where traces go are read here, through
//! [`crate::env`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{Status, TraceContextExt as _, TracerProvider as _};
use opentelemetry::{InstrumentationScope, Key, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, SdkTracer, SdkTracerProvider, SpanData, SpanExporter, SpanProcessor,
};
use tracing::{Level, Metadata, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

use crate::env::EnvVars;
use crate::url_text::shown;

/// The longest a command waits, when it ends, for its last spans to reach the collector.
/// Kubernetes gives a stopped pod 30 s by default; a collector that does not answer must not
/// hold the job that long.
pub const FLUSH_BOUND: Duration = Duration::from_secs(5);

/// Where OTLP/HTTP traces go under a base endpoint (the OTLP specification's path).
const TRACES_PATH: &str = "v1/traces";

/// Whether spans are exported: checked before recording anything only traces need.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// The exporter of this process, flushed by [`finish`].
static EXPORT: OnceLock<Export> = OnceLock::new();

struct Export {
    provider: SdkTracerProvider,
    /// The traces URL as it may be shown (no credentials, no query).
    shown: String,
    delivery: Arc<Mutex<Delivery>>,
}

/// What the exporter managed to send.
#[derive(Debug, Default)]
struct Delivery {
    /// Spans that ended (and were sampled): what should reach the collector.
    ended: u64,
    sent: u64,
    lost: u64,
    /// The exporter's last error: a status code or "network error", never a header or body.
    last_error: Option<String>,
}

/// Where traces go, and which setting said so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The full traces URL (`…/v1/traces`).
    pub url: String,
    /// The flag or variable it came from.
    pub from: &'static str,
}

/// A telemetry setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong, naming the setting.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

/// The outcome of reading the settings: a destination (or none: traces off) and warnings.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Where traces go; `None` when tracing is off.
    pub destination: Option<Destination>,
    /// Settings that were ignored, and why.
    pub warnings: Vec<String>,
}

/// Decides whether and where traces go. `--otlp-endpoint` (`flag`) wins over every `OTEL_*`
/// variable and is a base URL like `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` is added);
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is used as given. `OTEL_SDK_DISABLED=true` and
/// `OTEL_TRACES_EXPORTER=none` turn the variables off. A bad flag is an error; a bad or
/// unsupported setting from the environment (a protocol other than `http/protobuf`, a URL that
/// is not one) turns tracing off with a warning — an injected variable must not break the job.
pub fn resolve(flag: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Result<Resolved, Problem> {
    let var = |name: &str| env(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    if let Some(base) = flag.map(str::trim).filter(|f| !f.is_empty()) {
        let url = under_base(base);
        checked(&url, "--otlp-endpoint")?;
        return Ok(Resolved {
            destination: Some(Destination {
                url,
                from: "--otlp-endpoint",
            }),
            warnings: Vec::new(),
        });
    }
    let mut resolved = Resolved::default();
    if var(EnvVars::OTEL_SDK_DISABLED).is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(resolved);
    }
    let exporter = var(EnvVars::OTEL_TRACES_EXPORTER);
    let otlp_asked = match exporter.as_deref() {
        None => false,
        Some(list) if list.split(',').any(|e| e.trim() == "otlp") => true,
        Some(list) if list.split(',').all(|e| e.trim() == "none") => return Ok(resolved),
        Some(other) => {
            resolved.warnings.push(format!(
                "{}=`{other}`: secretsync sends traces only over OTLP, so it sends none (set it to `otlp`, or leave it unset and set {})",
                EnvVars::OTEL_TRACES_EXPORTER,
                EnvVars::OTEL_EXPORTER_OTLP_ENDPOINT
            ));
            return Ok(resolved);
        }
    };
    let (url, from) = if let Some(url) = var(EnvVars::OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) {
        (url, EnvVars::OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
    } else if let Some(base) = var(EnvVars::OTEL_EXPORTER_OTLP_ENDPOINT) {
        (under_base(&base), EnvVars::OTEL_EXPORTER_OTLP_ENDPOINT)
    } else if otlp_asked {
        // The specification's default for OTLP/HTTP.
        (under_base("http://localhost:4318"), EnvVars::OTEL_TRACES_EXPORTER)
    } else {
        return Ok(resolved);
    };
    let protocol = [
        EnvVars::OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
        EnvVars::OTEL_EXPORTER_OTLP_PROTOCOL,
    ]
    .into_iter()
    .find_map(|name| var(name).map(|value| (name, value)));
    if let Some((name, protocol)) = protocol.filter(|(_, p)| p != "http/protobuf") {
        resolved.warnings.push(format!(
            "{name}=`{protocol}`: secretsync sends traces over OTLP/HTTP with protobuf only, so it sends none (set {name}=http/protobuf and point {from} at the collector's OTLP/HTTP port, 4318)"
        ));
        return Ok(resolved);
    }
    // From the environment (perhaps injected into every pod by a platform): a warning, and the
    // job runs without traces rather than not at all.
    match checked(&url, from) {
        Ok(()) => resolved.destination = Some(Destination { url, from }),
        Err(problem) => resolved
            .warnings
            .push(format!("{}; no traces are sent ({})", problem.message, problem.hint)),
    }
    Ok(resolved)
}

/// `base` with the traces path appended (`http://host:4318` → `http://host:4318/v1/traces`).
fn under_base(base: &str) -> String {
    format!("{}/{TRACES_PATH}", base.trim_end_matches('/'))
}

/// An `http(s)` URL with a host, or a problem naming `from`.
fn checked(url: &str, from: &str) -> Result<(), Problem> {
    let hint =
        "give the collector's OTLP/HTTP address, e.g. `http://localhost:4318` (the OpenTelemetry Collector's default)"
            .to_owned();
    match url::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => Ok(()),
        Ok(parsed) => Err(Problem {
            message: format!(
                "{from} gives `{}`, which is not an http(s) address of an OTLP collector (scheme `{}`)",
                shown(url),
                parsed.scheme()
            ),
            hint,
        }),
        Err(e) => Err(Problem {
            message: format!("{from} gives `{}`, which is not a URL: {e}", shown(url)),
            hint,
        }),
    }
}

/// Starts the exporter for `destination` and returns the tracer to build the layer with.
/// Call once per process (the first call wins).
pub fn start(destination: &Destination) -> Result<SdkTracer, Problem> {
    // The URL as `url` normalises it (ASCII, percent-encoded), which the exporter's parser takes:
    // its error for one it refused would quote it whole, credentials and all.
    let url = url::Url::parse(&destination.url).map_or_else(|_| destination.url.clone(), String::from);
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url.clone())
        .build()
        .map_err(|e| Problem {
            message: format!(
                "cannot send traces to {} (from {}): {}",
                shown(&destination.url),
                destination.from,
                e.to_string()
                    .replace(&url, &shown(&url))
                    .replace(&destination.url, &shown(&destination.url))
            ),
            hint: "check the OTEL_EXPORTER_OTLP_* variables (compression: only none is built in)".to_owned(),
        })?;
    let delivery = Arc::new(Mutex::new(Delivery::default()));
    let batches = BatchSpanProcessor::builder(Counted {
        inner: exporter,
        delivery: Arc::clone(&delivery),
    })
    .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(Ended {
            inner: batches,
            delivery: Arc::clone(&delivery),
        })
        .with_resource(resource())
        .build();
    let scope = InstrumentationScope::builder("secretsync")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build();
    let tracer = provider.tracer_with_scope(scope);
    if EXPORT
        .set(Export {
            provider,
            shown: shown(&destination.url),
            delivery,
        })
        .is_ok()
    {
        ENABLED.store(true, Ordering::SeqCst);
    }
    Ok(tracer)
}

/// The process's resource: what `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` say, with
/// `service.name` `secretsync` and `service.version` when they do not name them.
fn resource() -> Resource {
    let detected = Resource::builder().build();
    let mut builder = Resource::builder();
    let unnamed = detected
        .get(&Key::from_static_str("service.name"))
        .is_none_or(|name| name.as_str().starts_with("unknown_service"));
    if unnamed {
        builder = builder.with_service_name("secretsync");
    }
    if detected.get(&Key::from_static_str("service.version")).is_none() {
        builder = builder.with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    }
    builder.build()
}

/// The layer that turns secretsync's spans into OpenTelemetry spans: every span of ours down to
/// `debug` (calls are `debug` spans) and our `info`-and-above events (as span events), whatever
/// the log level; nothing of the libraries'.
pub fn layer<S>(tracer: SdkTracer) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        // Its `target` attribute (the module) would clash with ours (the target's name).
        .with_target(false)
        .with_filter(tracing_subscriber::filter::filter_fn(exported))
}

fn exported(meta: &Metadata<'_>) -> bool {
    let ours = meta.target() == "secretsync" || meta.target().starts_with("secretsync::");
    let deepest = if meta.is_span() { Level::DEBUG } else { Level::INFO };
    ours && *meta.level() <= deepest
}

/// Whether spans are exported.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Makes `span` (the run's root, not yet entered) a child of the trace in `TRACEPARENT`
/// (`TRACESTATE` too), the W3C trace context a CI system or scheduler hands the process it
/// starts. Returns a warning when `TRACEPARENT` is not a trace context.
pub fn continue_trace(span: &Span) -> Option<String> {
    if !enabled() {
        return None;
    }
    let parent = crate::env::var(EnvVars::TRACEPARENT)?;
    let mut carrier = HashMap::from([("traceparent".to_owned(), parent.trim().to_owned())]);
    if let Some(state) = crate::env::var(EnvVars::TRACESTATE) {
        carrier.insert("tracestate".to_owned(), state);
    }
    let context = TraceContextPropagator::new().extract(&carrier);
    if !context.span().span_context().is_valid() {
        let mut quoted: String = parent.chars().take(80).collect();
        if quoted.len() < parent.len() {
            quoted.push('…');
        }
        return Some(format!(
            "{} `{quoted}` is not a W3C trace context (`00-<32 hex digits>-<16 hex digits>-<2 hex digits>`); the run starts a trace of its own",
            EnvVars::TRACEPARENT
        ));
    }
    let unsampled = !context.span().span_context().is_sampled();
    if let Err(e) = span.set_parent(context) {
        return Some(format!("cannot continue the trace in {}: {e}", EnvVars::TRACEPARENT));
    }
    unsampled.then(|| {
        format!(
            "{} says the caller's trace is not sampled (flags `00`): as OpenTelemetry's parent-based sampling has it, no spans of this run are sent",
            EnvVars::TRACEPARENT
        )
    })
}

/// Names `span` in traces (its `otel.name` field, declared empty: recorded only with traces
/// on, when logs show it too); the tracing name stays what logs show.
pub fn name(span: &Span, name: &str) {
    if enabled() {
        span.record("otel.name", name);
    }
}

tokio::task_local! {
    /// The `call` span a request belongs to, for code below the resilience layer that sees
    /// only its own span (the AWS HTTP client, under the SDK's spans when their logs are on).
    static CALL: Span;
}

/// `work` (a call's attempts) with `span` as the call [`current_call`] finds.
pub fn within_call<F: std::future::Future>(span: &Span, work: F) -> tokio::task::futures::TaskLocalFuture<Span, F> {
    CALL.scope(span.clone(), work)
}

/// The call span of the request being made (see [`within_call`]), else the current span.
pub fn current_call() -> Span {
    CALL.try_with(Span::clone).unwrap_or_else(|_| Span::current())
}

/// Makes `span` (a `call` span with empty `otel.name` and `otel.kind` fields) a client span
/// with the semantic-convention attributes of its service: AWS calls get `rpc.system`
/// `aws-api`, `rpc.service` and `rpc.method` and are named `Service.Operation`; Vault calls
/// are named `Vault.<capability>`. `attributes` come from the endpoint (`cloud.region`,
/// `cloud.account.id`, `server.address`, …).
pub fn describe_call(span: &Span, service: &str, operation: &str, attributes: &[(&'static str, String)]) {
    if !enabled() {
        return;
    }
    span.record("otel.kind", "client");
    if let Some(aws) = aws_service_name(service) {
        span.record("otel.name", format!("{aws}.{operation}"));
        span.set_attribute("rpc.system", "aws-api");
        span.set_attribute("rpc.service", aws);
        span.set_attribute("rpc.method", operation.to_owned());
    } else {
        span.record("otel.name", format!("Vault.{operation}"));
        span.set_attribute("vault.operation", operation.to_owned());
    }
    for (key, value) in attributes {
        match value.parse::<i64>() {
            // The conventions make ports integers.
            Ok(port) if *key == "server.port" => span.set_attribute(*key, port),
            _ => span.set_attribute(*key, value.clone()),
        }
    }
}

/// The AWS API's name of a service (`secretsmanager` → `SecretsManager`), as the semantic
/// conventions for AWS SDK spans use it; `None` for Vault.
fn aws_service_name(service: &str) -> Option<&'static str> {
    Some(match service {
        "secretsmanager" => "SecretsManager",
        "sts" => "STS",
        "s3" => "S3",
        "organizations" => "Organizations",
        "sso" => "SSOAdmin",
        "identitystore" => "IdentityStore",
        "ssm" => "SSM",
        _ => return None,
    })
}

/// Records an HTTP answer on `span` (the call it belongs to): its status and, for AWS, the
/// request id AWS support asks for.
pub fn record_response(span: &Span, status: u16, request_id: Option<&str>) {
    if !enabled() {
        return;
    }
    span.set_attribute("http.response.status_code", i64::from(status));
    if let Some(id) = request_id {
        span.set_attribute("aws.request_id", id.to_owned());
    }
}

/// Marks `span` failed: status error, `error.type` the failure's class as metrics label it
/// (`throttled`, `auth`, …), and the HTTP status when the error carries one. The status
/// names the class only; the message is in the warning logged for it (a span event) and the
/// report.
pub fn failed(span: &Span, class: &str, status: Option<u16>) {
    if !enabled() {
        return;
    }
    span.set_attribute("error.type", class.to_owned());
    if let Some(status) = status {
        span.set_attribute("http.response.status_code", i64::from(status));
    }
    // "Not found" is an answer the stores expect (a first read of the merge store, a secret to
    // create): marked, not red.
    if class != "not_found" {
        span.set_status(Status::error(class.to_owned()));
    }
}

/// Sends the spans not sent yet, waiting at most [`FLUSH_BOUND`]; returns a warning when some
/// could not be delivered. Call once, when the command has ended (also after an error or a
/// SIGTERM-stopped run), outside the async runtime.
pub fn finish() -> Option<String> {
    use opentelemetry_sdk::error::OTelSdkError;
    let export = EXPORT.get()?;
    ENABLED.store(false, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let flushed = export.provider.shutdown_with_timeout(FLUSH_BOUND);
    let delivery = export
        .delivery
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let shown = &export.shown;
    // The provider reports a processor's timeout inside an `InternalFailure`: the clock says it.
    if started.elapsed() >= FLUSH_BOUND || matches!(flushed, Err(OTelSdkError::Timeout(_))) {
        return Some(format!(
            "traces: the collector at {shown} did not take the last spans within {} ({} span(s) sent before); this run's trace is incomplete",
            crate::duration::show(FLUSH_BOUND),
            delivery.sent
        ));
    }
    if delivery.lost > 0 {
        let reason = delivery.last_error.as_deref().unwrap_or("no reason given");
        return Some(format!(
            "traces: {} of {} span(s) could not be sent to {shown} ({}); this run's trace is incomplete",
            delivery.lost,
            delivery.lost + delivery.sent,
            reason.trim_start_matches("Operation failed: ")
        ));
    }
    // A full queue drops spans without a word (the SDK's own logs are off): counted here.
    let dropped = delivery.ended.saturating_sub(delivery.sent);
    if dropped > 0 {
        return Some(format!(
            "traces: {dropped} of {} span(s) were dropped before they could be sent to {shown} (the export queue was full: raise OTEL_BSP_MAX_QUEUE_SIZE); this run's trace is incomplete",
            delivery.ended
        ));
    }
    flushed
        .err()
        .map(|e| format!("traces: cannot flush the last spans to {shown}: {e}"))
}

/// The batch processor, counting the spans that ended: those the queue dropped are what was
/// neither sent nor lost.
#[derive(Debug)]
struct Ended<P> {
    inner: P,
    delivery: Arc<Mutex<Delivery>>,
}

impl<P: SpanProcessor> SpanProcessor for Ended<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        self.delivery
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .ended += 1;
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP exporter, counting what it sent and lost (the SDK only logs export failures, and
/// its logs are off).
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    delivery: Arc<Mutex<Delivery>>,
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len() as u64;
        let result = self.inner.export(batch).await;
        let mut delivery = self.delivery.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match &result {
            Ok(()) => delivery.sent += spans,
            Err(e) => {
                delivery.lost += spans;
                delivery.last_error = Some(e.to_string());
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
    }

    fn url(flag: Option<&str>, vars: &[(&str, &str)]) -> Option<String> {
        resolve(flag, &env(vars)).unwrap().destination.map(|d| d.url)
    }

    #[test]
    fn nothing_configured_means_no_traces() {
        assert_eq!(resolve(None, &env(&[])).unwrap(), Resolved::default());
        assert_eq!(url(Some("  "), &[]), None, "an empty flag is no flag");
        assert_eq!(url(None, &[("OTEL_SERVICE_NAME", "sync")]), None);
    }

    #[test]
    fn the_flag_wins_then_the_traces_endpoint_then_the_base_endpoint() {
        let both = [
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4318/custom"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318/"),
        ];
        assert_eq!(
            url(Some("http://flag:4318/"), &both).as_deref(),
            Some("http://flag:4318/v1/traces")
        );
        assert_eq!(url(None, &both).as_deref(), Some("http://traces:4318/custom"));
        assert_eq!(url(None, &both[1..]).as_deref(), Some("http://base:4318/v1/traces"));
        assert_eq!(
            url(None, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://gw/otlp")]).as_deref(),
            Some("https://gw/otlp/v1/traces"),
            "a base endpoint with a path keeps it"
        );
        assert_eq!(
            url(None, &[("OTEL_TRACES_EXPORTER", "otlp")]).as_deref(),
            Some("http://localhost:4318/v1/traces"),
            "the specification's default when OTLP is asked for without an endpoint"
        );
    }

    #[test]
    fn disabling_variables_turn_the_environment_off_but_not_the_flag() {
        let base = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318");
        assert_eq!(url(None, &[base, ("OTEL_SDK_DISABLED", "TRUE")]), None);
        assert_eq!(url(None, &[base, ("OTEL_TRACES_EXPORTER", "none")]), None);
        assert!(url(None, &[base, ("OTEL_SDK_DISABLED", "false")]).is_some());
        assert!(url(Some("http://c:4318"), &[("OTEL_SDK_DISABLED", "true")]).is_some());
        let zipkin = resolve(None, &env(&[base, ("OTEL_TRACES_EXPORTER", "zipkin")])).unwrap();
        assert_eq!(zipkin.destination, None);
        assert!(zipkin.warnings[0].contains("`zipkin`"), "{:?}", zipkin.warnings);
    }

    #[test]
    fn another_protocol_is_a_warning_and_no_traces() {
        let grpc = resolve(
            None,
            &env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ]),
        )
        .unwrap();
        assert_eq!(grpc.destination, None);
        assert!(
            grpc.warnings[0].starts_with("OTEL_EXPORTER_OTLP_PROTOCOL=`grpc`") && grpc.warnings[0].contains("4318"),
            "{:?}",
            grpc.warnings
        );
        let traces_wins = resolve(
            None,
            &env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
            ]),
        )
        .unwrap();
        assert!(traces_wins.destination.is_some() && traces_wins.warnings.is_empty());
    }

    #[test]
    fn a_bad_flag_is_an_error_and_a_bad_variable_a_warning_neither_showing_credentials() {
        let bad = resolve(None, &env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4318")])).unwrap();
        assert_eq!(bad.destination, None, "no traces");
        assert!(
            bad.warnings[0].starts_with("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT gives `collector:4318`")
                && bad.warnings[0].contains("http://localhost:4318"),
            "{:?}",
            bad.warnings
        );
        let secret = resolve(Some("ftp://user:hunter2@host"), &env(&[])).unwrap_err();
        assert!(
            secret.message.starts_with("--otlp-endpoint gives"),
            "{}",
            secret.message
        );
        assert!(!secret.message.contains("hunter2"), "{}", secret.message);
        assert!(resolve(Some("not a url"), &env(&[])).is_err());
    }
}
