//! Prometheus metrics for a run (`secretsync_` prefix).
//!
//! One [`Metrics`] per run, shared by the resilience layer (API calls, latency, retries,
//! throttles, breaker state — recorded as they happen) and the command (secrets planned and
//! applied, per-target and run duration and outcome — recorded from the report when the run
//! ends). Labels are bounded: service, operation (an API name or a Vault capability), outcome
//! (an error class), breaker endpoint (account/region or Vault address) and target name — never
//! a secret path, key or value.
//!
//! Rendered in the OpenMetrics text format for the `/metrics` endpoint, the node-exporter
//! textfile and the Pushgateway ([`export`]); the first and the last also get the standard
//! `process_*` metrics (module `process`).

pub mod export;
mod process;

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `service`, `operation`, `outcome`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CallLabels {
    service: &'static str,
    operation: &'static str,
    outcome: &'static str,
}

/// `service`, `operation`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OperationLabels {
    service: &'static str,
    operation: &'static str,
}

/// `service`, `endpoint`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EndpointLabels {
    service: &'static str,
    endpoint: String,
}

/// `action`, `result`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SecretLabels {
    action: &'static str,
    result: &'static str,
}

/// `target`, `outcome`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TargetLabels {
    target: String,
    outcome: &'static str,
}

/// `outcome`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// `version`, `commit`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    commit: &'static str,
}

type HistogramFamily = Family<OperationLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 5 ms … ~10 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 12))
}

fn target_duration_histogram() -> Histogram {
    // 0.1 s … ~7 min.
    Histogram::new(exponential_buckets(0.1, 2.0, 12))
}

/// A circuit breaker's state as a number (the `secretsync_circuit_breaker_state` gauge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed = 0,
    /// One call is let through to test the endpoint.
    HalfOpen = 1,
    /// Calls fail at once.
    Open = 2,
}

/// The run's metrics.
pub struct Metrics {
    registry: Registry,
    /// The `process_*` metrics (no prefix: the names every Prometheus client library uses).
    process: Registry,
    api_calls: Family<CallLabels, Counter>,
    api_latency: HistogramFamily,
    retries: Family<OperationLabels, Counter>,
    throttles: Family<OperationLabels, Counter>,
    breaker_state: Family<EndpointLabels, Gauge>,
    breaker_rejections: Family<EndpointLabels, Counter>,
    secrets: Family<SecretLabels, Counter>,
    target_duration: Family<TargetLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    target_durations: Family<OutcomeLabels, Histogram, fn() -> Histogram>,
    targets: Family<OutcomeLabels, Gauge>,
    run_duration: Gauge<f64, std::sync::atomic::AtomicU64>,
    run_outcome: Family<OutcomeLabels, Gauge>,
    run_finished: Gauge,
    /// Attempts by (service, operation), for the JSON report.
    calls: Mutex<std::collections::BTreeMap<(&'static str, &'static str), u64>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty metrics with `secretsync_build_info` set.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("secretsync");
        let api_calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "api_calls",
            "Calls to AWS and Vault APIs (each attempt), by service, operation and outcome",
            api_calls.clone(),
        );
        let api_latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "api_call_duration",
            "Latency of each API call attempt",
            prometheus_client::registry::Unit::Seconds,
            api_latency.clone(),
        );
        let retries = Family::<OperationLabels, Counter>::default();
        registry.register(
            "retries",
            "Calls retried after a throttled or transient failure",
            retries.clone(),
        );
        let throttles = Family::<OperationLabels, Counter>::default();
        registry.register(
            "throttles",
            "Calls the service throttled despite client-side rate limiting",
            throttles.clone(),
        );
        let breaker_state = Family::<EndpointLabels, Gauge>::default();
        registry.register(
            "circuit_breaker_state",
            "Circuit breaker per service and endpoint: 0 closed, 1 half-open, 2 open",
            breaker_state.clone(),
        );
        let breaker_rejections = Family::<EndpointLabels, Counter>::default();
        registry.register(
            "circuit_breaker_rejected_calls",
            "Calls failed at once because the endpoint's breaker was open",
            breaker_rejections.clone(),
        );
        let secrets = Family::<SecretLabels, Counter>::default();
        registry.register(
            "secrets",
            "Secrets by planned action and result (planned, applied, failed, not_attempted)",
            secrets.clone(),
        );
        let target_duration = Family::<TargetLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register_with_unit(
            "target_duration",
            "Time spent on each target, with its outcome (ok, failed, skipped)",
            prometheus_client::registry::Unit::Seconds,
            target_duration.clone(),
        );
        let target_durations: Family<OutcomeLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(target_duration_histogram);
        registry.register_with_unit(
            "target_durations",
            "How long targets took, by outcome (ok, failed, skipped): one observation per target",
            prometheus_client::registry::Unit::Seconds,
            target_durations.clone(),
        );
        let targets = Family::<OutcomeLabels, Gauge>::default();
        registry.register(
            "targets",
            "Targets of the run by outcome (ok, failed, skipped)",
            targets.clone(),
        );
        let run_duration = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register_with_unit(
            "run_duration",
            "Duration of the run",
            prometheus_client::registry::Unit::Seconds,
            run_duration.clone(),
        );
        let run_outcome = Family::<OutcomeLabels, Gauge>::default();
        registry.register(
            "run_outcome",
            "1 for the run's outcome (no_changes, changes, failed, interrupted)",
            run_outcome.clone(),
        );
        let run_finished = Gauge::default();
        registry.register(
            "run_finished_timestamp_seconds",
            "When the run finished (Unix time), for staleness alerts on scheduled jobs",
            run_finished.clone(),
        );
        let build_info = Family::<BuildLabels, Gauge>::default();
        registry.register("build_info", "The secretsync build", build_info.clone());
        build_info
            .get_or_create(&BuildLabels {
                version: crate::version::SHORT,
                commit: env!("SECRETSYNC_BUILD_COMMIT"),
            })
            .set(1);
        let mut process = Registry::default();
        process.register_collector(Box::new(process::ProcessCollector));
        Self {
            registry,
            process,
            api_calls,
            api_latency,
            retries,
            throttles,
            breaker_state,
            breaker_rejections,
            secrets,
            target_duration,
            target_durations,
            targets,
            run_duration,
            run_outcome,
            run_finished,
            calls: Mutex::new(std::collections::BTreeMap::new()),
        }
    }

    /// One attempt of one API call.
    pub fn api_call(&self, service: &'static str, operation: &'static str, outcome: &'static str, took: Duration) {
        self.api_calls
            .get_or_create(&CallLabels {
                service,
                operation,
                outcome,
            })
            .inc();
        self.api_latency
            .get_or_create(&OperationLabels { service, operation })
            .observe(took.as_secs_f64());
        *self
            .calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry((service, operation))
            .or_default() += 1;
    }

    /// API call attempts so far, by service then operation.
    pub fn call_counts(&self) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>> {
        let calls = self.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>> =
            std::collections::BTreeMap::new();
        for ((service, operation), n) in calls.iter() {
            out.entry((*service).to_owned())
                .or_default()
                .insert((*operation).to_owned(), *n);
        }
        out
    }

    /// A retry is about to happen.
    pub fn retry(&self, service: &'static str, operation: &'static str) {
        self.retries
            .get_or_create(&OperationLabels { service, operation })
            .inc();
    }

    /// The service throttled a call.
    pub fn throttle(&self, service: &'static str, operation: &'static str) {
        self.throttles
            .get_or_create(&OperationLabels { service, operation })
            .inc();
    }

    /// A breaker changed state.
    pub fn breaker(&self, service: &'static str, endpoint: &str, state: BreakerState) {
        self.breaker_state
            .get_or_create(&EndpointLabels {
                service,
                endpoint: endpoint.to_owned(),
            })
            .set(state as i64);
    }

    /// An open breaker failed a call at once.
    pub fn breaker_rejected(&self, service: &'static str, endpoint: &str) {
        self.breaker_rejections
            .get_or_create(&EndpointLabels {
                service,
                endpoint: endpoint.to_owned(),
            })
            .inc();
    }

    /// Records how one target ended (`ok`, `failed`, `skipped`) and the time it took.
    pub fn target_finished(&self, target: &str, outcome: &'static str, took: Duration) {
        self.targets.get_or_create(&OutcomeLabels { outcome }).inc();
        self.target_duration
            .get_or_create(&TargetLabels {
                target: target.to_owned(),
                outcome,
            })
            .set(took.as_secs_f64());
        self.target_durations
            .get_or_create(&OutcomeLabels { outcome })
            .observe(took.as_secs_f64());
    }

    /// Counts one secret change: `action` (`create`, …) and `result` (`planned`, `applied`,
    /// `failed`, `not_attempted`).
    pub fn secret(&self, action: &'static str, result: &'static str) {
        self.secrets.get_or_create(&SecretLabels { action, result }).inc();
    }

    /// Records how the run ended (`no_changes`, `changes`, `failed`, `interrupted`), how long it
    /// took, and when it finished.
    pub fn run_finished(&self, outcome: &'static str, took: Duration) {
        self.run_duration.set(took.as_secs_f64());
        self.run_outcome.get_or_create(&OutcomeLabels { outcome }).set(1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.run_finished.set(i64::try_from(now).unwrap_or(i64::MAX));
    }

    /// The OpenMetrics text, with the `process_*` metrics.
    pub fn render(&self) -> String {
        self.render_with(true)
    }

    /// The OpenMetrics text without the `process_*` metrics: for node-exporter's textfile
    /// collector, whose own `process_*` metrics the same names would clash with.
    pub fn render_own(&self) -> String {
        self.render_with(false)
    }

    fn render_with(&self, process: bool) -> String {
        use prometheus_client::encoding::text;
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = text::encode_registry(&mut out, &self.registry);
        if process {
            let _ = text::encode_registry(&mut out, &self.process);
        }
        let _ = text::encode_eof(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_calls_retries_and_build_info() {
        let m = Metrics::new();
        m.api_call("secretsmanager", "PutSecretValue", "ok", Duration::from_millis(12));
        m.api_call(
            "secretsmanager",
            "PutSecretValue",
            "throttled",
            Duration::from_millis(3),
        );
        m.retry("secretsmanager", "PutSecretValue");
        m.throttle("secretsmanager", "PutSecretValue");
        m.breaker("secretsmanager", "222222222222/us-east-1", BreakerState::Open);
        let text = m.render();
        for line in [
            r#"secretsync_api_calls_total{service="secretsmanager",operation="PutSecretValue",outcome="ok"} 1"#,
            r#"secretsync_api_calls_total{service="secretsmanager",operation="PutSecretValue",outcome="throttled"} 1"#,
            r#"secretsync_retries_total{service="secretsmanager",operation="PutSecretValue"} 1"#,
            r#"secretsync_throttles_total{service="secretsmanager",operation="PutSecretValue"} 1"#,
            r#"secretsync_circuit_breaker_state{service="secretsmanager",endpoint="222222222222/us-east-1"} 2"#,
            r#"secretsync_api_call_duration_seconds_count{service="secretsmanager",operation="PutSecretValue"} 2"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
        }
        assert!(text.contains("secretsync_build_info{version=\""), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
        for name in [
            "process_resident_memory_bytes ",
            "process_cpu_seconds_total ",
            "process_open_fds ",
        ] {
            assert!(text.lines().any(|l| l.starts_with(name)), "missing {name} in:\n{text}");
        }
        let own = m.render_own();
        assert!(!own.contains("process_"), "{own}");
        assert!(own.ends_with("# EOF\n"), "{own}");
    }

    #[test]
    fn target_durations_are_a_histogram_by_outcome() {
        let m = Metrics::new();
        m.target_finished("A", "ok", Duration::from_millis(150));
        m.target_finished("B", "ok", Duration::from_secs(3));
        m.target_finished("C", "failed", Duration::from_secs(1));
        let text = m.render();
        for line in [
            r#"secretsync_target_durations_seconds_count{outcome="ok"} 2"#,
            r#"secretsync_target_durations_seconds_bucket{le="0.2",outcome="ok"} 1"#,
            r#"secretsync_target_durations_seconds_count{outcome="failed"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
        }
    }
}
