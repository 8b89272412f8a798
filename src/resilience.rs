//! The one policy every call to AWS or Vault goes through: rate limit, circuit breaker, per-call
//! timeout, retries with exponential backoff and full jitter, metrics.
//!
//! Stores classify their errors ([`ErrorClass`]); [`Resilience::call`] acts on the class:
//!
//! - **throttled / transient** (429, 5xx, timeouts, connection resets) are retried, up to
//!   `max_attempts` and within the call's `deadline`, waiting a random time between zero and an
//!   exponentially growing delay (full jitter, so many workers do not retry in step) — or the
//!   server's `Retry-After`, when longer;
//! - **auth, invalid, not-found, conflict** are returned at once: retrying cannot help;
//! - transient failures count towards the **circuit breaker** of the (service, account/region
//!   or Vault address) endpoint, shared by every target there (`failsafe`'s state machine with a
//!   consecutive-failures policy). When open it fails calls at once with
//!   [`ErrorClass::Unavailable`] — not retried, so a dead endpoint costs one quick error per
//!   target instead of a full retry schedule — and lets one call through after the cool-down.
//!   Throttling does not count: a throttling service is alive, and the rate limiter and retries
//!   deal with it;
//! - every attempt waits for the endpoint's **rate limiter** first (`governor` token buckets per
//!   endpoint and API class), so a large run slows itself down below AWS's quotas instead of
//!   being throttled.
//!
//! The AWS SDK's own retry layer is turned off for store clients (see `store::aws`), so a call
//! is never retried by both the SDK and this layer; vaultrs has none. Backoff schedules come from
//! `backon`, which also drives the retry loop.

use std::collections::BTreeMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder as _, ExponentialBuilder, Retryable as _};
use failsafe::StateMachine;
use failsafe::failure_policy::{ConsecutiveFailures, consecutive_failures};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tracing::Instrument as _;

use crate::metrics::{BreakerState, Metrics};

/// What kind of failure a call had: decides retrying and breaking here, and what a failure
/// means for a target in the engine. Stores classify; this module acts on the class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The thing does not exist.
    NotFound,
    /// Rate limited: retry later.
    Throttled,
    /// A passing fault (timeout, 5xx, connection reset): retry.
    Transient,
    /// Credentials missing, expired or not allowed.
    Auth,
    /// The request or data is invalid; retrying will not help.
    Invalid,
    /// The secret exists but belongs to someone else.
    Conflict,
    /// The store cannot do this.
    Unsupported,
    /// The endpoint is failing and its circuit breaker is open: not called.
    Unavailable,
    /// A safety guard held a change back (`max_deletes`, a source that read empty): not a
    /// failed call, never retried.
    Guarded,
    /// Anything else.
    Fatal,
}

impl ErrorClass {
    /// A metrics label: `not_found`, `throttled`, …
    pub fn label(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Throttled => "throttled",
            Self::Transient => "transient",
            Self::Auth => "auth",
            Self::Invalid => "invalid",
            Self::Conflict => "conflict",
            Self::Unsupported => "unsupported",
            Self::Unavailable => "unavailable",
            Self::Guarded => "guarded",
            Self::Fatal => "fatal",
        }
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NotFound => "not found",
            Self::Throttled => "throttled",
            Self::Transient => "transient",
            Self::Auth => "permission denied",
            Self::Invalid => "invalid",
            Self::Conflict => "conflict",
            Self::Unsupported => "unsupported",
            Self::Unavailable => "unavailable (circuit open)",
            Self::Guarded => "held back",
            Self::Fatal => "fatal",
        })
    }
}

/// `pipeline.resilience:` with defaults applied (see the raw type for what each means).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResilienceSettings {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// Backoff before the first retry.
    pub base_delay: Duration,
    /// Longest backoff.
    pub max_delay: Duration,
    /// Longest single attempt.
    pub call_timeout: Duration,
    /// Longest call with its retries.
    pub deadline: Duration,
    /// Consecutive failures that open a breaker.
    pub breaker_failures: u32,
    /// How long a breaker stays open.
    pub breaker_cool_down: Duration,
    /// Secrets Manager writes per second per account and region.
    pub aws_writes_per_second: u32,
    /// Secrets Manager reads per second of each read API, per account and region.
    pub aws_reads_per_second: u32,
    /// Requests per second per Vault address (0: no limit).
    pub vault_requests_per_second: u32,
    /// STS requests (`AssumeRole`, `GetCallerIdentity`) per second of the calling account.
    pub aws_sts_per_second: u32,
}

impl Default for ResilienceSettings {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(20),
            call_timeout: Duration::from_secs(30),
            deadline: Duration::from_mins(5),
            breaker_failures: 5,
            breaker_cool_down: Duration::from_secs(30),
            aws_writes_per_second: 50,
            aws_reads_per_second: 100,
            vault_requests_per_second: 0,
            aws_sts_per_second: 100,
        }
    }
}

/// The fewest attempts an STS call gets, whatever `retries.max_attempts` says.
const STS_MIN_ATTEMPTS: u32 = 10;

/// Where a call goes: one breaker (and one set of rate limiters) per endpoint. Its trace
/// attributes describe it and take no part in telling endpoints apart.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `secretsmanager`, `s3` or `vault`.
    pub service: &'static str,
    /// `111111111111/us-east-1`, or the Vault address (and namespace).
    pub scope: String,
    /// The scope whose rate limiters this endpoint shares, when the quota is wider than the
    /// breaker (STS: one request quota per calling account, one breaker per assumed role).
    pub quota_scope: Option<String>,
    /// What traces say about the endpoint (`cloud.region`, `server.address`, …).
    pub attributes: Vec<(&'static str, String)>,
}

impl Endpoint {
    /// An endpoint.
    pub fn new(service: &'static str, scope: impl Into<String>) -> Self {
        Self {
            service,
            scope: scope.into(),
            quota_scope: None,
            attributes: Vec::new(),
        }
    }

    /// This endpoint with a trace attribute (OpenTelemetry semantic-convention names).
    #[must_use]
    pub fn with_attribute(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.attributes.push((key, value.into()));
        self
    }

    /// This endpoint with its own breaker but the rate limiters of `quota_scope`.
    #[must_use]
    pub fn sharing_quota_of(mut self, quota_scope: impl Into<String>) -> Self {
        self.quota_scope = Some(quota_scope.into());
        self
    }

    /// The endpoint whose rate limiters this one uses.
    fn quota(&self) -> Self {
        match &self.quota_scope {
            Some(scope) => Self::new(self.service, scope.clone()),
            None => self.clone(),
        }
    }

    /// What identifies the endpoint (breakers and rate limiters are kept per identity).
    fn identity(&self) -> (&'static str, &str, Option<&str>) {
        (self.service, &self.scope, self.quota_scope.as_deref())
    }
}

impl PartialEq for Endpoint {
    fn eq(&self, other: &Self) -> bool {
        self.identity() == other.identity()
    }
}

impl Eq for Endpoint {}

impl PartialOrd for Endpoint {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Endpoint {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.identity().cmp(&other.identity())
    }
}

impl std::hash::Hash for Endpoint {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.identity().hash(state);
    }
}

/// What a call does, for rate limiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApiClass {
    /// Lists and reads.
    Read,
    /// Creates, updates, tags and deletes.
    Write,
}

/// An error the policy can act on.
pub trait CallError: Sized {
    /// Its class.
    fn class(&self) -> ErrorClass;
    /// How long the server asked us to wait, if it said.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
    /// What went wrong, in one line (`status 503: Vault is sealed`, `connection refused`): named
    /// by the open breaker's error. Quotes the server's words, never a value.
    fn cause(&self) -> String;
    /// An error the policy itself produces (timeout, open breaker).
    fn from_policy(class: ErrorClass, message: String) -> Self;
    /// The error with a note about the attempts made appended.
    #[must_use]
    fn with_note(self, note: &str) -> Self;
    /// The HTTP status of the answer, when the error carries one (for traces).
    fn status(&self) -> Option<u16> {
        None
    }
}

/// Whether a failure of `class` is worth retrying.
pub fn retryable(class: ErrorClass) -> bool {
    matches!(class, ErrorClass::Throttled | ErrorClass::Transient)
}

/// Whether a failure of `class` says the endpoint is unhealthy (counts towards its breaker).
fn trips_breaker(class: ErrorClass) -> bool {
    matches!(class, ErrorClass::Transient | ErrorClass::Fatal)
}

/// Which token bucket a call takes from, within its endpoint and API class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Bucket {
    /// One bucket for every operation of the class.
    Shared,
    /// A bucket of this operation's own (Secrets Manager reads: each API has its own quota).
    PerOperation(&'static str),
}

/// Rate limiters by endpoint, API class and bucket.
type Limiters = BTreeMap<(Endpoint, ApiClass, Bucket), Option<Arc<DefaultDirectRateLimiter>>>;

type Breaker = StateMachine<ConsecutiveFailures<std::iter::Repeat<Duration>>, BreakerLog>;

/// Logs and exports a breaker's state changes.
struct BreakerLog {
    endpoint: Endpoint,
    metrics: Arc<Metrics>,
    cool_down: Duration,
    /// Whether the breaker has opened: failsafe also reports "closed" when a breaker is made,
    /// which is not worth a log line.
    has_opened: std::sync::atomic::AtomicBool,
}

impl failsafe::Instrument for BreakerLog {
    fn on_call_rejected(&self) {
        self.metrics
            .breaker_rejected(self.endpoint.service, &self.endpoint.scope);
    }

    fn on_open(&self) {
        self.has_opened.store(true, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(
            service = self.endpoint.service,
            endpoint = %self.endpoint.scope,
            "circuit breaker opened: failing calls at once for {}",
            crate::duration::show(self.cool_down)
        );
        self.metrics
            .breaker(self.endpoint.service, &self.endpoint.scope, BreakerState::Open);
    }

    fn on_half_open(&self) {
        tracing::info!(service = self.endpoint.service, endpoint = %self.endpoint.scope, "circuit breaker half-open: trying one call");
        self.metrics
            .breaker(self.endpoint.service, &self.endpoint.scope, BreakerState::HalfOpen);
    }

    fn on_closed(&self) {
        if self.has_opened.load(std::sync::atomic::Ordering::Relaxed) {
            tracing::info!(service = self.endpoint.service, endpoint = %self.endpoint.scope, "circuit breaker closed: the endpoint answers again");
        }
        self.metrics
            .breaker(self.endpoint.service, &self.endpoint.scope, BreakerState::Closed);
    }
}

/// The policy, with its breakers and rate limiters (one set per run, shared by every store).
pub struct Resilience {
    settings: ResilienceSettings,
    metrics: Arc<Metrics>,
    breakers: Mutex<BTreeMap<Endpoint, Breaker>>,
    /// The last failure that counted towards each endpoint's breaker, so that an open breaker
    /// says why it opened.
    last_failures: Mutex<BTreeMap<Endpoint, String>>,
    limiters: Mutex<Limiters>,
}

impl std::fmt::Debug for Resilience {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resilience")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Resilience {
    /// The policy for `settings`, recording into `metrics`.
    pub fn new(settings: &ResilienceSettings, metrics: Arc<Metrics>) -> Self {
        Self {
            settings: settings.clone(),
            metrics,
            breakers: Mutex::new(BTreeMap::new()),
            last_failures: Mutex::new(BTreeMap::new()),
            limiters: Mutex::new(BTreeMap::new()),
        }
    }

    /// The metrics calls are recorded in.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The retry, breaker and rate-limit settings this policy was made with.
    pub fn settings(&self) -> &ResilienceSettings {
        &self.settings
    }

    fn breaker(&self, endpoint: &Endpoint) -> Breaker {
        let mut breakers = self.breakers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        breakers
            .entry(endpoint.clone())
            .or_insert_with(|| {
                let policy = consecutive_failures(
                    self.settings.breaker_failures,
                    std::iter::repeat(self.settings.breaker_cool_down),
                );
                StateMachine::new(
                    policy,
                    BreakerLog {
                        endpoint: endpoint.clone(),
                        metrics: Arc::clone(&self.metrics),
                        cool_down: self.settings.breaker_cool_down,
                        has_opened: std::sync::atomic::AtomicBool::new(false),
                    },
                )
            })
            .clone()
    }

    fn record_failure(&self, endpoint: &Endpoint, cause: String) {
        self.last_failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(endpoint.clone(), cause);
    }

    fn last_failure(&self, endpoint: &Endpoint) -> Option<String> {
        self.last_failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(endpoint)
            .cloned()
    }

    fn limiter(
        &self,
        endpoint: &Endpoint,
        operation: &'static str,
        class: ApiClass,
    ) -> Option<Arc<DefaultDirectRateLimiter>> {
        let (rate, bucket) = match (endpoint.service, class) {
            // AWS counts each read API against its own quota (ListSecrets 100/s and
            // BatchGetSecretValue 100/s, not 100/s between them), so each gets its own bucket.
            ("secretsmanager", ApiClass::Read) => (self.settings.aws_reads_per_second, Bucket::PerOperation(operation)),
            // Writes share one bucket: the quotas of some write APIs are shared, and one
            // 50/s bucket never exceeds any of them.
            ("secretsmanager", ApiClass::Write) => (self.settings.aws_writes_per_second, Bucket::Shared),
            ("vault", _) => (self.settings.vault_requests_per_second, Bucket::Shared),
            // STS counts every request of the calling account against one limit that cannot be
            // raised: AssumeRole and GetCallerIdentity share one bucket.
            ("sts", _) => (self.settings.aws_sts_per_second, Bucket::Shared),
            // S3 allows thousands of requests per second per prefix; the merge store never
            // comes near that.
            _ => return None,
        };
        let mut limiters = self.limiters.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        limiters
            .entry((endpoint.quota(), class, bucket))
            .or_insert_with(|| NonZeroU32::new(rate).map(|rate| Arc::new(RateLimiter::direct(Quota::per_second(rate)))))
            .clone()
    }

    /// Runs `attempt` under the policy: `operation` is the API name (`PutSecretValue`) or Vault
    /// capability (`read`) — a metrics label, so never a path.
    pub async fn call<T, E, F, Fut>(
        &self,
        endpoint: &Endpoint,
        operation: &'static str,
        class: ApiClass,
        attempt: F,
    ) -> Result<T, E>
    where
        E: CallError,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let started = Instant::now();
        let breaker = self.breaker(endpoint);
        let limiter = self.limiter(endpoint, operation, class);
        let settings = &self.settings;
        let metrics = &self.metrics;
        let service = endpoint.service;
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let once = || async {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Some(limiter) = &limiter {
                limiter.until_ready().await;
            }
            if !breaker.is_call_permitted() {
                let last = self
                    .last_failure(endpoint)
                    .map(|cause| format!("; the last: {cause}"))
                    .unwrap_or_default();
                return Err(E::from_policy(
                    ErrorClass::Unavailable,
                    format!(
                        "{service} at {} is failing (circuit breaker open after {} consecutive failures{last}); not calling it for up to {}",
                        endpoint.scope,
                        settings.breaker_failures,
                        crate::duration::show(settings.breaker_cool_down)
                    ),
                ));
            }
            let sent = Instant::now();
            let result = match tokio::time::timeout(settings.call_timeout, attempt()).await {
                Ok(result) => result,
                Err(_) => Err(E::from_policy(
                    ErrorClass::Transient,
                    format!(
                        "{service} {operation} at {} did not answer within {}",
                        endpoint.scope,
                        crate::duration::show(settings.call_timeout)
                    ),
                )),
            };
            let outcome = match &result {
                Ok(_) => "ok",
                Err(e) => e.class().label(),
            };
            metrics.api_call(service, operation, outcome, sent.elapsed());
            match &result {
                Err(e) if trips_breaker(e.class()) => {
                    self.record_failure(endpoint, e.cause());
                    breaker.on_error();
                }
                Err(e) if e.class() == ErrorClass::Throttled => metrics.throttle(service, operation),
                _ => breaker.on_success(),
            }
            result
        };
        // One STS call (an AssumeRole) gates a whole target account, and STS throttles the
        // calling account as a whole: it gets a few more attempts (still within the deadline).
        let max_attempts = if service == "sts" {
            settings.max_attempts.max(STS_MIN_ATTEMPTS)
        } else {
            settings.max_attempts
        };
        let span = tracing::debug_span!(
            "call",
            service,
            operation,
            endpoint = %endpoint.scope,
            otel.name = tracing::field::Empty,
            otel.kind = tracing::field::Empty,
        );
        crate::telemetry::describe_call(&span, service, operation, &endpoint.attributes);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(settings.base_delay)
            .with_max_delay(settings.max_delay)
            .with_max_times(max_attempts.saturating_sub(1) as usize)
            .build()
            .map(full_jitter as fn(Duration) -> Duration);
        let retried = once
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e: &E| retryable(e.class()))
            .adjust(|e: &E, next: Option<Duration>| {
                let wait = next.map(|d| e.retry_after().map_or(d, |asked| asked.max(d)))?;
                // Give up rather than sleep past the deadline.
                (started.elapsed() + wait < settings.deadline).then_some(wait)
            })
            .notify(|e: &E, wait: Duration| {
                metrics.retry(service, operation);
                tracing::debug!(
                    service,
                    operation,
                    endpoint = %endpoint.scope,
                    class = %e.class(),
                    attempt = attempts.load(std::sync::atomic::Ordering::Relaxed),
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "retrying"
                );
            })
            .instrument(span.clone());
        let result = crate::telemetry::within_call(&span, retried).await;
        let made = attempts.load(std::sync::atomic::Ordering::Relaxed);
        result.map_err(|e| {
            crate::telemetry::failed(&span, e.class().label(), e.status());
            let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            if made > 1 {
                tracing::warn!(
                    service,
                    operation,
                    endpoint = %endpoint.scope,
                    class = %e.class(),
                    attempts = made,
                    elapsed_ms,
                    "call failed after retries"
                );
                e.with_note(&format!("gave up after {made} attempts"))
            } else {
                // Not-found and the like are ordinary answers; the store decides what they mean.
                tracing::debug!(service, operation, endpoint = %endpoint.scope, class = %e.class(), elapsed_ms, "call failed");
                e
            }
        })
    }
}

/// A random wait between zero and `delay` ("full jitter").
fn full_jitter(delay: Duration) -> Duration {
    let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(0..=nanos))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::store::StoreError;

    fn fast() -> ResilienceSettings {
        ResilienceSettings {
            max_attempts: 4,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            call_timeout: Duration::from_millis(200),
            deadline: Duration::from_secs(10),
            breaker_failures: 3,
            breaker_cool_down: Duration::from_mins(1),
            ..ResilienceSettings::default()
        }
    }

    fn policy(settings: &ResilienceSettings) -> Resilience {
        Resilience::new(settings, Arc::new(Metrics::new()))
    }

    /// Fails with `class` `failures` times, then answers 7.
    async fn flaky(
        r: &Resilience,
        endpoint: &Endpoint,
        class: ErrorClass,
        failures: u32,
    ) -> (Result<u32, StoreError>, u32) {
        let calls = AtomicU32::new(0);
        let result = r
            .call(endpoint, "GetThing", ApiClass::Read, || async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                if n < failures {
                    Err(StoreError::new(class, "boom"))
                } else {
                    Ok(7)
                }
            })
            .await;
        (result, calls.load(Ordering::SeqCst))
    }

    fn sm() -> Endpoint {
        Endpoint::new("secretsmanager", "111111111111/us-east-1")
    }

    #[test]
    fn each_secrets_manager_read_api_has_its_own_bucket_and_writes_share_one() {
        let r = policy(&fast());
        let bucket = |endpoint: &Endpoint, op: &'static str, class: ApiClass| {
            r.limiter(endpoint, op, class)
                .expect("Secrets Manager calls are rate limited")
        };
        let list = bucket(&sm(), "ListSecrets", ApiClass::Read);
        assert!(Arc::ptr_eq(&list, &bucket(&sm(), "ListSecrets", ApiClass::Read)));
        assert!(
            !Arc::ptr_eq(&list, &bucket(&sm(), "BatchGetSecretValue", ApiClass::Read)),
            "AWS's read quotas are per API"
        );
        let create = bucket(&sm(), "CreateSecret", ApiClass::Write);
        assert!(Arc::ptr_eq(&create, &bucket(&sm(), "PutSecretValue", ApiClass::Write)));
        let other_account = Endpoint::new("secretsmanager", "222222222222/us-east-1");
        assert!(
            !Arc::ptr_eq(&list, &bucket(&other_account, "ListSecrets", ApiClass::Read)),
            "quotas are per account"
        );
        assert!(
            r.limiter(&Endpoint::new("s3", "bucket"), "GetObject", ApiClass::Read)
                .is_none()
        );
    }

    #[tokio::test]
    async fn throttled_and_transient_failures_are_retried_and_counted() {
        let r = policy(&fast());
        assert_eq!(flaky(&r, &sm(), ErrorClass::Throttled, 2).await.0.ok(), Some(7));
        assert_eq!(flaky(&r, &sm(), ErrorClass::Transient, 1).await.1, 2);
        let text = r.metrics().render();
        assert!(
            text.contains(r#"secretsync_retries_total{service="secretsmanager",operation="GetThing"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"secretsync_throttles_total{service="secretsmanager",operation="GetThing"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"outcome="throttled"} 2"#), "{text}");
        assert!(text.contains(r#"outcome="ok"} 2"#), "{text}");
    }

    #[tokio::test]
    async fn auth_invalid_and_not_found_are_never_retried() {
        let r = policy(&fast());
        for class in [
            ErrorClass::Auth,
            ErrorClass::Invalid,
            ErrorClass::NotFound,
            ErrorClass::Conflict,
        ] {
            let (result, calls) = flaky(&r, &sm(), class, 1).await;
            assert_eq!(calls, 1, "{class}");
            let err = result.unwrap_err();
            assert_eq!(err.class, class);
            assert_eq!(err.message, "boom", "a single attempt gets no note");
        }
    }

    #[tokio::test]
    async fn attempts_are_bounded_and_named() {
        let r = policy(&fast());
        let (result, calls) = flaky(
            &r,
            &Endpoint::new("vault", "http://127.0.0.1:1"),
            ErrorClass::Throttled,
            100,
        )
        .await;
        assert_eq!(calls, 4);
        assert_eq!(result.unwrap_err().message, "boom (gave up after 4 attempts)");
    }

    #[tokio::test]
    async fn the_deadline_stops_retrying() {
        let settings = ResilienceSettings {
            base_delay: Duration::from_millis(300),
            max_delay: Duration::from_millis(300),
            deadline: Duration::from_millis(250),
            ..fast()
        };
        // Full jitter may draw a short wait; a Retry-After past the deadline never is.
        let r = policy(&settings);
        let calls = AtomicU32::new(0);
        let result: Result<(), StoreError> = r
            .call(&sm(), "GetThing", ApiClass::Read, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(StoreError::new(ErrorClass::Throttled, "slow down").retrying_after(Duration::from_secs(1)))
            })
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(result.unwrap_err().class, ErrorClass::Throttled);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured() {
        let r = policy(&fast());
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let result: Result<u32, StoreError> = r
            .call(&sm(), "GetThing", ApiClass::Read, || async {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err(StoreError::new(ErrorClass::Throttled, "slow down").retrying_after(Duration::from_secs(3)))
                } else {
                    Ok(1)
                }
            })
            .await;
        assert_eq!(result.ok(), Some(1));
        assert!(
            started.elapsed() >= Duration::from_secs(3),
            "waited {:?}",
            started.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_call_times_out_and_is_retried() {
        let r = policy(&fast());
        let calls = AtomicU32::new(0);
        let result: Result<u32, StoreError> = r
            .call(&sm(), "GetThing", ApiClass::Read, || async {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    tokio::time::sleep(Duration::from_hours(1)).await;
                }
                Ok(5)
            })
            .await;
        assert_eq!(result.ok(), Some(5));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(r.metrics().render().contains(r#"outcome="transient"} 1"#));
    }

    #[tokio::test]
    async fn the_breaker_opens_fails_fast_and_is_per_endpoint() {
        let settings = ResilienceSettings {
            max_attempts: 1,
            ..fast()
        };
        let r = policy(&settings);
        let broken = Endpoint::new("secretsmanager", "222222222222/us-east-1");
        for _ in 0..3 {
            assert_eq!(flaky(&r, &broken, ErrorClass::Transient, 1).await.1, 1);
        }
        let (result, calls) = flaky(&r, &broken, ErrorClass::Transient, 0).await;
        assert_eq!(calls, 0, "an open breaker does not call");
        let err = result.unwrap_err();
        assert_eq!(err.class, ErrorClass::Unavailable);
        assert!(
            err.message
                .contains("circuit breaker open after 3 consecutive failures; the last: boom)"),
            "the open breaker names the failure that opened it: {}",
            err.message
        );
        // Another account is unaffected.
        assert_eq!(flaky(&r, &sm(), ErrorClass::Transient, 0).await.0.ok(), Some(7));
        let text = r.metrics().render();
        assert!(
            text.contains(
                r#"secretsync_circuit_breaker_state{service="secretsmanager",endpoint="222222222222/us-east-1"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"secretsync_circuit_breaker_rejected_calls_total{service="secretsmanager",endpoint="222222222222/us-east-1"} 1"#), "{text}");
    }

    /// STS: one request quota for the calling account, one breaker per assumed role — a role
    /// whose calls keep failing does not stop the others.
    #[tokio::test]
    async fn endpoints_sharing_a_quota_have_their_own_breakers() {
        let settings = ResilienceSettings {
            max_attempts: 1,
            ..fast()
        };
        let r = policy(&settings);
        let role = |name: &str| Endpoint::new("sts", name).sharing_quota_of("caller/us-east-1");
        let (broken, fine) = (role("arn:aws:iam::2:role/a"), role("arn:aws:iam::3:role/a"));
        let limiter = |e: &Endpoint| r.limiter(e, "AssumeRole", ApiClass::Read).expect("STS is paced");
        assert!(Arc::ptr_eq(&limiter(&broken), &limiter(&fine)), "one quota");
        assert!(Arc::ptr_eq(
            &limiter(&broken),
            &limiter(&Endpoint::new("sts", "caller/us-east-1"))
        ));
        // STS calls get several attempts whatever the settings say: a role that always fails
        // opens its breaker during them.
        assert!(flaky(&r, &broken, ErrorClass::Transient, u32::MAX).await.0.is_err());
        let (result, calls) = flaky(&r, &broken, ErrorClass::Transient, 0).await;
        assert_eq!((result.unwrap_err().class, calls), (ErrorClass::Unavailable, 0));
        assert_eq!(flaky(&r, &fine, ErrorClass::Transient, 0).await.0.ok(), Some(7));
    }

    #[tokio::test]
    async fn not_found_and_denied_do_not_open_the_breaker() {
        let settings = ResilienceSettings {
            max_attempts: 1,
            ..fast()
        };
        let r = policy(&settings);
        for class in [
            ErrorClass::NotFound,
            ErrorClass::Auth,
            ErrorClass::NotFound,
            ErrorClass::Auth,
        ] {
            let _ = flaky(&r, &sm(), class, 1).await;
        }
        assert_eq!(flaky(&r, &sm(), ErrorClass::Transient, 0).await.1, 1, "still closed");
    }

    #[test]
    fn the_breaker_half_opens_after_the_cool_down_and_closes_on_success() {
        let settings = ResilienceSettings {
            max_attempts: 1,
            breaker_cool_down: Duration::from_secs(30),
            ..fast()
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let log = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(log.clone())
            .with_ansi(false)
            .finish();
        let _logging = tracing::subscriber::set_default(subscriber);
        // failsafe reads its own clock; freezing it lets the test move time on.
        failsafe::clock::freeze(|clock| {
            let r = policy(&settings);
            runtime.block_on(async {
                for _ in 0..3 {
                    let _ = flaky(&r, &sm(), ErrorClass::Transient, 1).await;
                }
                assert_eq!(flaky(&r, &sm(), ErrorClass::Transient, 0).await.1, 0, "open");
            });
            clock.advance(Duration::from_secs(31));
            runtime.block_on(async {
                assert_eq!(
                    flaky(&r, &sm(), ErrorClass::Transient, 0).await.1,
                    1,
                    "half-open lets one through"
                );
                assert_eq!(flaky(&r, &sm(), ErrorClass::Transient, 0).await.1, 1, "closed again");
            });
            let text = r.metrics().render();
            assert!(text.contains(
                r#"secretsync_circuit_breaker_state{service="secretsmanager",endpoint="111111111111/us-east-1"} 0"#
            ));
        });
        let log = log.text();
        let order: Vec<usize> = [
            "circuit breaker opened",
            "circuit breaker half-open",
            "circuit breaker closed",
        ]
        .iter()
        .map(|line| log.find(line).unwrap_or_else(|| panic!("no `{line}` in:\n{log}")))
        .collect();
        assert!(order.is_sorted(), "{log}");
        assert_eq!(log.matches("circuit breaker closed").count(), 1, "not when made: {log}");
    }

    /// Log lines written by a test's subscriber.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    #[test]
    fn full_jitter_stays_within_the_delay() {
        for _ in 0..1000 {
            assert!(full_jitter(Duration::from_millis(10)) <= Duration::from_millis(10));
        }
        assert_eq!(full_jitter(Duration::ZERO), Duration::ZERO);
    }
}
