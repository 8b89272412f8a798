//! Getting metrics out of a run: served over HTTP while it runs (`--metrics-addr/--metrics-port`),
//! written for node-exporter's textfile collector (`--metrics-textfile`), or pushed to a
//! Pushgateway (`--metrics-push`) when a scheduled job ends.
//!
//! The HTTP endpoint speaks OpenMetrics (what Prometheus asks for). The textfile collector and
//! the Pushgateway parse the classic text format 0.0.4, so those get [`classic_text`]: the same
//! samples without `# UNIT`/`# EOF`, counters' HELP/TYPE under their `_total` sample name.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::Metrics;

/// OpenMetrics text rewritten as Prometheus text format 0.0.4.
pub fn classic_text(openmetrics: &str) -> String {
    let counters: BTreeSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(name).then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Writes `metrics` to `path` for node-exporter's textfile collector: to a temporary file in the
/// same directory, then renamed over `path`, so the collector never reads half a file.
pub fn write_textfile(metrics: &Metrics, path: &Path) -> std::io::Result<()> {
    crate::files::write_atomic(path, classic_text(&metrics.render_own()).as_bytes())
}

/// Why a push to the Pushgateway failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot push metrics to {url}: {detail}")]
pub struct PushError {
    /// Where it was pushed.
    pub url: String,
    /// What went wrong.
    pub detail: String,
}

/// The URL metrics are PUT to: `URL` itself when it names a job (`…/metrics/job/NAME…`), else
/// `URL/metrics/job/secretsync`.
pub fn push_url(url: &str) -> String {
    if url.contains("/metrics/job/") {
        url.to_owned()
    } else {
        format!("{}/metrics/job/secretsync", url.trim_end_matches('/'))
    }
}

/// PUTs `metrics` to a Pushgateway (replacing the job's previous group).
pub async fn push(metrics: &Metrics, url: &str) -> Result<(), PushError> {
    let url = push_url(url);
    // The URL may carry the Pushgateway's credentials: errors show it without them.
    let fail = |detail: String| PushError {
        url: crate::url_text::shown(&url),
        detail,
    };
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let response = client
        .put(&url)
        .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
        .body(classic_text(&metrics.render()))
        .send()
        .await
        .map_err(|e| fail(crate::error_chain::chain(&e.without_url())))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(fail(format!("the Pushgateway answered {}", response.status())))
    }
}

/// Whether the run is ready (stores built, work started), for `/ready`.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the run as ready.
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The `/metrics`, `/health` and `/ready` endpoint, served until dropped.
#[derive(Debug)]
pub struct Server {
    /// Where it listens (the port is the real one when 0 was asked).
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts serving `metrics` on `addr`.
pub async fn serve(metrics: Arc<Metrics>, ready: Readiness, addr: SocketAddr) -> std::io::Result<Server> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    #[expect(
        clippy::disallowed_methods,
        reason = "the metrics server lives as long as the run; aborted when the Server is dropped"
    )]
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let metrics = Arc::clone(&metrics);
            let ready = ready.clone();
            #[expect(clippy::disallowed_methods, reason = "one short-lived task per scrape connection")]
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let response = answer(&metrics, &ready, &request);
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Server { addr, task })
}

fn answer<B>(metrics: &Metrics, ready: &Readiness, request: &Request<B>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method().as_str(), request.uri().path()) {
        ("GET", "/metrics") => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.render(),
        ),
        ("GET", "/health") => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        ("GET", "/ready") if ready.get() => (StatusCode::OK, "text/plain", "ready\n".to_owned()),
        ("GET", "/ready") => (StatusCode::SERVICE_UNAVAILABLE, "text/plain", "starting\n".to_owned()),
        ("GET", _) => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "try /metrics, /health or /ready\n".to_owned(),
        ),
        _ => (StatusCode::METHOD_NOT_ALLOWED, "text/plain", "only GET\n".to_owned()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_text_names_counters_by_their_samples() {
        let open = "# HELP secretsync_retries Calls retried.\n# TYPE secretsync_retries counter\nsecretsync_retries_total{service=\"s3\"} 2\n# HELP secretsync_run_duration_seconds Duration.\n# TYPE secretsync_run_duration_seconds gauge\n# UNIT secretsync_run_duration_seconds seconds\nsecretsync_run_duration_seconds 1.5\n# EOF\n";
        assert_eq!(
            classic_text(open),
            "# HELP secretsync_retries_total Calls retried.\n# TYPE secretsync_retries_total counter\nsecretsync_retries_total{service=\"s3\"} 2\n# HELP secretsync_run_duration_seconds Duration.\n# TYPE secretsync_run_duration_seconds gauge\nsecretsync_run_duration_seconds 1.5\n"
        );
    }

    #[test]
    fn push_urls() {
        assert_eq!(
            push_url("http://127.0.0.1:9091/"),
            "http://127.0.0.1:9091/metrics/job/secretsync"
        );
        assert_eq!(
            push_url("http://127.0.0.1:9091/metrics/job/nightly/shard/2"),
            "http://127.0.0.1:9091/metrics/job/nightly/shard/2"
        );
    }

    #[test]
    fn textfile_is_replaced_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secretsync.prom");
        std::fs::write(&path, "old").expect("seed");
        write_textfile(&Metrics::new(), &path).expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("# HELP secretsync_"), "{text}");
        assert!(!text.contains("# EOF"));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
        assert_eq!(leftovers.len(), 1, "the temporary file is gone");
    }
}
