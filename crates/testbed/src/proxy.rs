//! A fault-injecting reverse proxy for moto and OpenBao (or Vault).
//!
//! Every request is classified — AWS: service from the SigV4 credential scope, operation from
//! `X-Amz-Target`, a query-protocol `Action=`, or S3's method and path; Vault: method and path
//! shape — and counted per (service, operation), so benchmarks can read API-call counts here.
//! Rules, added over `POST /__fault/rules` or from test code, match on service, operation,
//! method, path and body regexes, and inject an error in the service's wire format (AWS JSON,
//! AWS query XML, S3 XML, Vault JSON), latency, a connection reset, or a lost reply (the request
//! is forwarded and applied, then the connection is reset instead of answering) — each rule firing
//! `times` times after letting `skip` matches through, with a seeded `probability`. A rule can
//! also hold its requests until another rule has matched ([`Hold`]): a test proves two calls
//! overlap without timing them, as a client that sends them one after the other never gets
//! the held answer.
//!
//! Admin API (same listener): `POST /__fault/rules` (a [`Rule`]) → `{"id": n}`;
//! `GET /__fault/rules/{id}` → `{"matched": n, "fired": n}`; `DELETE /__fault/rules[/{id}]`;
//! `GET /__fault/counts`; `POST /__fault/counts/reset`. Tests share one proxy, so a test scopes
//! its rules to its own requests (a path or body regex on something unique to it) and reads
//! that rule's stats rather than the global counts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use regex::Regex;
use serde::{Deserialize, Serialize};

/// Which kind of upstream the proxy fronts (decides error formats and classification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    /// AWS APIs (moto).
    Aws,
    /// The Vault HTTP API.
    Vault,
}

/// What a rule does to a matching request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Fault {
    /// Answer with this status instead of forwarding.
    pub status: Option<u16>,
    /// The error code (`ThrottlingException`, `Throttling`, `SlowDown`, …).
    pub code: Option<String>,
    /// The error message.
    pub message: Option<String>,
    /// A `Retry-After` header, in seconds.
    pub retry_after: Option<u64>,
    /// Delay before answering or forwarding, counted from the request's arrival (a hold counts
    /// towards it).
    pub latency_ms: Option<u64>,
    /// Reset the TCP connection instead of answering.
    #[serde(default)]
    pub reset: bool,
    /// Forward the request (the server applies it) and then reset the connection instead of
    /// returning the answer: a reply lost on the way back.
    #[serde(default)]
    pub drop_reply: bool,
    /// Hold the request until another rule has matched, then apply the rest of the fault.
    pub hold: Option<Hold>,
}

/// Holds a request until rule `until_rule` has matched `matched` requests; after `timeout_ms`
/// without that, answers 504 `HoldTimedOut` instead.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Hold {
    /// The rule to wait for (an id from [`RunningProxy::add_rule`] or `POST /__fault/rules`).
    pub until_rule: u64,
    /// How many of its matches to wait for (at least 1).
    pub matched: u64,
    /// How long to wait before giving up.
    pub timeout_ms: u64,
}

/// A fault rule. All given matchers must match.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Rule {
    /// Service, e.g. `secretsmanager`, `sts`, `s3`, `vault`.
    pub service: Option<String>,
    /// Operation, e.g. `ListSecrets`, `AssumeRole`, `PutObject`, `GET secret/data/*`.
    pub operation: Option<String>,
    /// HTTP method.
    pub method: Option<String>,
    /// Regex on the path (and query).
    pub path: Option<String>,
    /// Regex on the request body.
    pub body: Option<String>,
    /// AWS region, from the request's signature (`Credential=…/20260101/eu-west-1/…`).
    pub region: Option<String>,
    /// What to do.
    pub fault: Fault,
    /// Fire at most this many times (default: always).
    pub times: Option<u64>,
    /// Let this many matching requests through first.
    pub skip: Option<u64>,
    /// Fire with this probability (0–1), drawn from a generator seeded with `seed`.
    pub probability: Option<f64>,
    /// Seed for `probability` (default 1), so runs repeat.
    pub seed: Option<u64>,
}

impl Rule {
    /// Forwards the first request that matches `operation` (an AWS API name, or `None` for any)
    /// and `path` (a regex, or `None`), then drops the connection before the reply: the write
    /// happened, but the client never heard.
    pub fn lose_one_reply(operation: Option<&str>, path: Option<String>) -> Self {
        Self {
            operation: operation.map(str::to_owned),
            path,
            fault: Fault {
                drop_reply: true,
                ..Fault::default()
            },
            times: Some(1),
            ..Self::default()
        }
    }
}

/// How often a rule matched and fired.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RuleStats {
    /// Requests that matched the rule's matchers.
    pub matched: u64,
    /// Times it applied its fault.
    pub fired: u64,
}

/// Calls seen for one (service, operation).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Count {
    /// Requests received.
    pub requests: u64,
    /// Requests answered with an injected error or reset.
    pub injected: u64,
    /// Requests delayed.
    pub delayed: u64,
}

#[derive(Debug)]
struct ActiveRule {
    id: u64,
    rule: Rule,
    path: Option<Regex>,
    body: Option<Regex>,
    matched: u64,
    fired: u64,
    rng: u64,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<ActiveRule>,
    next_id: u64,
    counts: BTreeMap<(String, String), Count>,
    /// Woken whenever a rule matches, for held requests.
    matched: Arc<tokio::sync::Notify>,
}

/// A running proxy.
#[derive(Debug, Clone)]
pub struct RunningProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl RunningProxy {
    /// Adds a rule; returns its id.
    pub fn add_rule(&self, rule: Rule) -> Result<u64, String> {
        add_rule(&self.state, rule)
    }

    /// Removes every rule.
    pub fn clear_rules(&self) {
        lock(&self.state).rules.clear();
    }

    /// How often rule `id` matched and fired (`None` once removed).
    pub fn rule_stats(&self, id: u64) -> Option<RuleStats> {
        lock(&self.state).rules.iter().find(|r| r.id == id).map(|r| RuleStats {
            matched: r.matched,
            fired: r.fired,
        })
    }

    /// Counts so far by (service, operation).
    pub fn counts(&self) -> BTreeMap<(String, String), Count> {
        lock(&self.state).counts.clone()
    }
}

fn add_rule(state: &Mutex<State>, rule: Rule) -> Result<u64, String> {
    let compile = |r: &Option<String>| r.as_deref().map(Regex::new).transpose().map_err(|e| e.to_string());
    let path = compile(&rule.path)?;
    let body = compile(&rule.body)?;
    if rule.probability.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
        return Err("probability must be between 0 and 1".to_owned());
    }
    let mut state = lock(state);
    state.next_id += 1;
    let id = state.next_id;
    let rng = rule.seed.unwrap_or(1).max(1);
    state.rules.push(ActiveRule {
        id,
        rule,
        path,
        body,
        matched: 0,
        fired: 0,
        rng,
    });
    Ok(id)
}

/// The (service, operation) of a request.
pub fn classify(
    flavor: Flavor,
    method: &str,
    path_and_query: &str,
    headers: &hyper::HeaderMap,
    body: &[u8],
) -> (String, String) {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    if flavor == Flavor::Vault {
        let rest = path.trim_start_matches("/v1/").trim_matches('/');
        let segments: Vec<&str> = rest.split('/').collect();
        let cut = segments
            .iter()
            .position(|s| matches!(*s, "data" | "metadata" | "delete" | "undelete" | "destroy"))
            .map_or(segments.len().min(2), |i| i + 1);
        let mut shape = segments[..cut].join("/");
        if cut < segments.len() {
            shape.push_str("/*");
        }
        let verb = if query.split('&').any(|p| p == "list=true") {
            "LIST"
        } else {
            method
        };
        return ("vault".to_owned(), format!("{verb} {shape}"));
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let service = header("authorization")
        .split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').nth(3))
        .unwrap_or("unknown")
        .to_owned();
    if let Some((_, op)) = header("x-amz-target").rsplit_once('.') {
        return (service, op.to_owned());
    }
    let form = String::from_utf8_lossy(body);
    if let Some(action) = form
        .split('&')
        .chain(query.split('&'))
        .find_map(|p| p.strip_prefix("Action="))
    {
        return (service, action.to_owned());
    }
    if service == "s3" {
        return (service, s3_operation(method, path, query, headers));
    }
    (service, format!("{method} {path}"))
}

fn s3_operation(method: &str, path: &str, query: &str, headers: &hyper::HeaderMap) -> String {
    let parts: Vec<&str> = path
        .trim_start_matches('/')
        .splitn(2, '/')
        .filter(|p| !p.is_empty())
        .collect();
    let has = |name: &str| {
        query
            .split('&')
            .any(|p| p == name || p.starts_with(&format!("{name}=")))
    };
    let op = match (method, parts.len()) {
        ("GET", 0) => "ListBuckets",
        ("PUT", 1) => "CreateBucket",
        ("HEAD", 1) => "HeadBucket",
        ("DELETE", 1) => "DeleteBucket",
        ("POST", 1) if has("delete") => "DeleteObjects",
        ("GET", 1) if has("list-type") => "ListObjectsV2",
        ("GET", 1) if has("versions") => "ListObjectVersions",
        ("GET", 1) if has("location") => "GetBucketLocation",
        ("GET", 1) => "ListObjects",
        ("GET", 2) => "GetObject",
        ("HEAD", 2) => "HeadObject",
        ("PUT", 2) if headers.contains_key("x-amz-copy-source") => "CopyObject",
        ("PUT", 2) => "PutObject",
        ("DELETE", 2) => "DeleteObject",
        _ => return format!("{method} {path}"),
    };
    op.to_owned()
}

/// The error body in the service's wire format.
fn error_response(flavor: Flavor, service: &str, form_encoded: bool, fault: &Fault) -> hyper::Response<Full<Bytes>> {
    let status = fault.status.unwrap_or(if flavor == Flavor::Vault { 500 } else { 400 });
    let code = fault.code.clone().unwrap_or_else(|| "InjectedFault".to_owned());
    let message = fault
        .message
        .clone()
        .unwrap_or_else(|| format!("{code} injected by the secretsync fault proxy"));
    let request_id = "fault-proxy-0000";
    let (content_type, body, error_type) = if flavor == Flavor::Vault {
        (
            "application/json",
            serde_json::json!({ "errors": [message] }).to_string(),
            None,
        )
    } else if service == "s3" {
        (
            "application/xml",
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"#
            ),
            None,
        )
    } else if form_encoded || service == "sts" || service == "iam" {
        (
            "text/xml",
            format!(
                r"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
            ),
            None,
        )
    } else {
        (
            "application/x-amz-json-1.1",
            serde_json::json!({ "__type": code, "message": message }).to_string(),
            Some(code.clone()),
        )
    };
    let mut builder = hyper::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("x-amzn-requestid", request_id);
    if let Some(t) = error_type {
        builder = builder.header("x-amzn-errortype", t);
    }
    if let Some(seconds) = fault.retry_after {
        builder = builder.header("retry-after", seconds.to_string());
    }
    builder.body(Full::new(Bytes::from(body))).unwrap_or_default()
}

/// Picks the fault for a request and updates counters.
fn decide(
    state: &Mutex<State>,
    service: &str,
    operation: &str,
    method: &str,
    path: &str,
    body: &[u8],
    region: Option<&str>,
) -> Option<Fault> {
    let mut state = lock(state);
    let mut chosen = None;
    for active in &mut state.rules {
        let r = &active.rule;
        let matched = r.service.as_deref().is_none_or(|s| s == service)
            && r.operation.as_deref().is_none_or(|o| o == operation)
            && r.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
            && r.region.as_deref().is_none_or(|wanted| region == Some(wanted))
            && active.path.as_ref().is_none_or(|re| re.is_match(path))
            && active
                .body
                .as_ref()
                .is_none_or(|re| re.is_match(&String::from_utf8_lossy(body)));
        if !matched || chosen.is_some() {
            continue;
        }
        active.matched += 1;
        if active.matched <= r.skip.unwrap_or(0) || r.times.is_some_and(|t| active.fired >= t) {
            continue;
        }
        if let Some(p) = r.probability {
            active.rng ^= active.rng << 13;
            active.rng ^= active.rng >> 7;
            active.rng ^= active.rng << 17;
            #[expect(clippy::cast_precision_loss, reason = "a probability draw")]
            let draw = (active.rng % 1_000_000) as f64 / 1_000_000.0;
            if draw >= p {
                continue;
            }
        }
        active.fired += 1;
        chosen = Some(r.fault.clone());
    }
    if chosen.is_some() {
        state.matched.notify_waiters();
    }
    let count = state
        .counts
        .entry((service.to_owned(), operation.to_owned()))
        .or_default();
    count.requests += 1;
    if let Some(f) = &chosen {
        if f.latency_ms.is_some() {
            count.delayed += 1;
        }
        if f.status.is_some() || f.reset || f.drop_reply {
            count.injected += 1;
        }
    }
    chosen
}

fn admin(state: &Mutex<State>, method: &str, path: &str, body: &[u8]) -> hyper::Response<Full<Bytes>> {
    let json = |status: u16, value: serde_json::Value| {
        hyper::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(value.to_string())))
            .unwrap_or_default()
    };
    match (method, path) {
        ("POST", "/__fault/rules") => match serde_json::from_slice::<Rule>(body)
            .map_err(|e| e.to_string())
            .and_then(|r| add_rule(state, r))
        {
            Ok(id) => json(200, serde_json::json!({ "id": id })),
            Err(e) => json(400, serde_json::json!({ "error": e })),
        },
        ("GET", p) if p.starts_with("/__fault/rules/") => {
            let id: u64 = p.trim_start_matches("/__fault/rules/").parse().unwrap_or(0);
            match lock(state).rules.iter().find(|r| r.id == id) {
                Some(r) => json(
                    200,
                    serde_json::json!({ "id": id, "matched": r.matched, "fired": r.fired }),
                ),
                None => json(404, serde_json::json!({ "error": "no such rule" })),
            }
        }
        ("DELETE", "/__fault/rules") => {
            lock(state).rules.clear();
            json(200, serde_json::json!({}))
        }
        ("DELETE", p) if p.starts_with("/__fault/rules/") => {
            let id: u64 = p.trim_start_matches("/__fault/rules/").parse().unwrap_or(0);
            lock(state).rules.retain(|r| r.id != id);
            json(200, serde_json::json!({}))
        }
        ("GET", "/__fault/counts") => {
            let guard = lock(state);
            let counts: Vec<serde_json::Value> = guard
                .counts
                .iter()
                .map(|((s, o), c)| serde_json::json!({ "service": s, "operation": o, "requests": c.requests, "injected": c.injected, "delayed": c.delayed }))
                .collect();
            let total: u64 = guard.counts.values().map(|c| c.requests).sum();
            json(200, serde_json::json!({ "counts": counts, "total": total }))
        }
        ("POST", "/__fault/counts/reset") => {
            lock(state).counts.clear();
            json(200, serde_json::json!({}))
        }
        _ => json(404, serde_json::json!({ "error": "unknown fault-proxy admin path" })),
    }
}

/// Starts a proxy on `listen` (loopback) in front of `upstream` (`http://host:port`).
pub async fn start(listen: SocketAddr, upstream: &str, flavor: Flavor) -> std::io::Result<RunningProxy> {
    let listener = crate::http::bind(listen).await?;
    let addr = listener.local_addr()?;
    let upstream: Arc<str> = upstream.trim_end_matches('/').into();
    let state = Arc::new(Mutex::new(State::default()));
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let shared = Arc::clone(&state);
    let accept = async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let Ok(std_stream) = stream.into_std() else { continue };
            let Ok(raw) = std_stream.try_clone() else { continue };
            let Ok(stream) = tokio::net::TcpStream::from_std(std_stream) else {
                continue;
            };
            let raw = Arc::new(raw);
            let (state, upstream, client) = (Arc::clone(&shared), Arc::clone(&upstream), client.clone());
            let service = service_fn(move |req: hyper::Request<Incoming>| {
                let (state, upstream, client, raw) = (
                    Arc::clone(&state),
                    Arc::clone(&upstream),
                    client.clone(),
                    Arc::clone(&raw),
                );
                async move { handle(req, flavor, &state, &upstream, &client, &raw).await }
            });
            #[expect(
                clippy::disallowed_methods,
                reason = "a test proxy serves each connection on its own task"
            )]
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    };
    #[expect(clippy::disallowed_methods, reason = "a test proxy runs until the process ends")]
    tokio::spawn(accept);
    Ok(RunningProxy { addr, state })
}

/// Waits until the rule `hold` waits for has matched often enough; false after its timeout.
async fn held_until_released(state: &Mutex<State>, hold: &Hold) -> bool {
    let matched = Arc::clone(&lock(state).matched);
    let released = || {
        lock(state)
            .rules
            .iter()
            .find(|r| r.id == hold.until_rule)
            .is_some_and(|r| r.matched >= hold.matched.max(1))
    };
    let wait = async {
        loop {
            let notified = matched.notified();
            tokio::pin!(notified);
            // Registered before checking, so a match between the check and the wait wakes it.
            notified.as_mut().enable();
            if released() {
                return;
            }
            notified.await;
        }
    };
    tokio::time::timeout(Duration::from_millis(hold.timeout_ms), wait)
        .await
        .is_ok()
}

/// The region a SigV4-signed request was signed for (the third part of its credential scope).
fn signed_region(headers: &hyper::HeaderMap) -> Option<String> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let scope = auth.split("Credential=").nth(1)?.split(',').next()?;
    scope.split('/').nth(2).map(str::to_owned)
}

/// Why a connection was reset on purpose (returned to hyper so it drops the connection).
#[derive(Debug)]
struct ResetByRule;

impl std::fmt::Display for ResetByRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by a fault rule")
    }
}

impl std::error::Error for ResetByRule {}

/// Waits until `deadline`, to within the OS's sleep precision (tens of microseconds), so a
/// latency rule adds what it says. tokio's timer counts whole milliseconds and wakes up to
/// two late: a 20 ms rule added about 22 ms (22.7 ms per call against 0.7 ms without it),
/// 10% more than the benchmark's floor is computed from. The timer's wait (which a dropped request cancels) ends [`TIMER_SLACK`]
/// early and a blocking-pool thread sleeps the rest.
async fn wait_until(deadline: tokio::time::Instant) {
    if let Some(coarse) = deadline.checked_sub(TIMER_SLACK) {
        tokio::time::sleep_until(coarse).await;
    }
    let rest = deadline.saturating_duration_since(tokio::time::Instant::now());
    if !rest.is_zero() {
        // A failed join (a panic cannot happen in a sleep) only ends the wait early.
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
    }
}

/// How late tokio's timer may wake (see [`wait_until`]).
const TIMER_SLACK: Duration = Duration::from_millis(2);

async fn handle(
    req: hyper::Request<Incoming>,
    flavor: Flavor,
    state: &Mutex<State>,
    upstream: &str,
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    raw: &std::net::TcpStream,
) -> Result<hyper::Response<Full<Bytes>>, ResetByRule> {
    let arrived = tokio::time::Instant::now();
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let method = parts.method.as_str().to_owned();
    if path_and_query.starts_with("/__fault/") {
        return Ok(admin(state, &method, parts.uri.path(), &body));
    }
    let (service, operation) = classify(flavor, &method, &path_and_query, &parts.headers, &body);
    let region = signed_region(&parts.headers);
    let fault = decide(
        state,
        &service,
        &operation,
        &method,
        &path_and_query,
        &body,
        region.as_deref(),
    );
    if let Some(fault) = &fault {
        if let Some(hold) = &fault.hold
            && !held_until_released(state, hold).await
        {
            let timed_out = Fault {
                status: Some(504),
                code: Some("HoldTimedOut".into()),
                message: Some(format!(
                    "held for {} ms and rule {} did not match {} request(s) meanwhile",
                    hold.timeout_ms,
                    hold.until_rule,
                    hold.matched.max(1)
                )),
                ..Fault::default()
            };
            return Ok(error_response(flavor, &service, false, &timed_out));
        }
        if let Some(ms) = fault.latency_ms {
            wait_until(arrived + Duration::from_millis(ms)).await;
        }
        if fault.reset {
            // Linger 0 makes the close send a RST instead of a FIN.
            let _ = socket2::SockRef::from(raw).set_linger(Some(Duration::ZERO));
            return Err(ResetByRule);
        }
        if fault.status.is_some() {
            let form = parts
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
            return Ok(error_response(flavor, &service, form, fault));
        }
    }
    let uri: hyper::Uri = match format!("{upstream}{path_and_query}").parse() {
        Ok(uri) => uri,
        Err(_) => {
            return Ok(error_response(
                flavor,
                &service,
                false,
                &Fault {
                    status: Some(502),
                    code: Some("BadGateway".into()),
                    ..Fault::default()
                },
            ));
        }
    };
    let mut forward = hyper::Request::builder().method(parts.method).uri(uri);
    for (name, value) in &parts.headers {
        forward = forward.header(name, value);
    }
    let Ok(forward) = forward.body(Full::new(body)) else {
        return Ok(error_response(
            flavor,
            &service,
            false,
            &Fault {
                status: Some(502),
                code: Some("BadGateway".into()),
                ..Fault::default()
            },
        ));
    };
    let drop_reply = fault.as_ref().is_some_and(|f| f.drop_reply);
    match client.request(forward).await {
        Ok(resp) if drop_reply => {
            // Let the server finish; the client never hears of it.
            let _ = resp.into_body().collect().await;
            let _ = socket2::SockRef::from(raw).set_linger(Some(Duration::ZERO));
            Err(ResetByRule)
        }
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map(http_body_util::Collected::to_bytes)
                .unwrap_or_default();
            Ok(hyper::Response::from_parts(parts, Full::new(body)))
        }
        Err(err) => Ok(error_response(
            flavor,
            &service,
            false,
            &Fault {
                status: Some(502),
                code: Some("BadGateway".into()),
                message: Some(format!("upstream unreachable: {err}")),
                ..Fault::default()
            },
        )),
    }
}
