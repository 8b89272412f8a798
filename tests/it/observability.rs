//! Metrics and logs as operators see them: `/metrics`, `/health` and `/ready` scraped while a
//! run is applying, a Pushgateway receiving the run's metrics, the textfile written for
//! node-exporter, and JSON logs carrying the run id.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use serde_json::Value;

use crate::resilience::count;
use crate::support::scenario::Scenario;
use crate::support::{Output, QUICKSTART, Test};

/// `GET path` from `addr`: (status line, body). Plain HTTP/1.0 over loopback.
fn get(addr: &str, path: &str) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the metrics endpoint");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    (head.lines().next().unwrap_or_default().to_owned(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_while_the_run_applies() {
    let t = Scenario::new().await;
    t.one_target(12, None);
    // Slow writes keep the run alive while it is scraped.
    t.slow_creates(250);
    let mut child = t
        .args(&["pipeline", "--log-level", "info", "--metrics-port", "0"])
        .spawn();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    let mut line = String::new();
    while addr.is_none() {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the run ended before serving metrics"
        );
        addr = line
            .split("serving metrics on http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .map(str::to_owned);
    }
    let addr = addr.unwrap();
    // Scrape until the run is writing (the first CreateSecret is counted once answered).
    let deadline = std::time::Instant::now() + Duration::from_mins(1);
    let scraped = loop {
        let (status, body) = get(&addr, "/metrics");
        assert!(status.contains("200"), "{status}");
        if body.contains(r#"operation="CreateSecret",outcome="ok""#) {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no write was ever counted:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(scraped.contains("secretsync_build_info{"), "{scraped}");
    assert!(scraped.ends_with("# EOF\n"), "OpenMetrics text");
    assert!(!scraped.contains("secretsync_run_outcome{"), "the run is not over yet");
    assert!(get(&addr, "/health").0.contains("200"));
    assert!(
        get(&addr, "/ready").0.contains("200"),
        "stores are built, work has started"
    );
    assert!(get(&addr, "/nothing").0.contains("404"));
    let status = tokio::task::block_in_place(|| child.wait()).unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert_eq!(status.code(), Some(0), "{rest}");
    assert!(!rest.contains("CANARY-") && !scraped.contains("CANARY-"));
}

#[test]
fn metrics_are_pushed_to_a_pushgateway_and_written_as_a_textfile() {
    let env = Test::quickstart();
    let gateway = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", gateway.local_addr().unwrap());
    let received = std::thread::spawn(move || {
        let (mut stream, _) = gateway.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut head = Vec::new();
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap() > 2 {
            head.push(line.trim_end().to_owned());
            line.clear();
        }
        let length: usize = head
            .iter()
            .find_map(|h| {
                h.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(str::to_owned)
            })
            .expect("a content length")
            .parse()
            .unwrap();
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
        (head, String::from_utf8(body).unwrap())
    });
    let out = push_and_write(&env, &url);
    assert_eq!(out.code, 2, "out/ does not exist yet: {}", out.snapshot());
    assert!(
        out.stderr.contains("cannot write the metrics to out/secretsync.prom"),
        "{}",
        out.stderr
    );
    std::fs::create_dir_all(env.path().join("out")).unwrap();
    env.write("examples/quickstart/sources/platform/added.json", r#"{"k": "v"}"#);
    let out = push_and_write(&env, &url);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    let (head, body) = received.join().unwrap();
    assert_eq!(head[0], "PUT /metrics/job/secretsync HTTP/1.1", "{head:?}");
    assert!(
        head.iter()
            .any(|h| h.eq_ignore_ascii_case("content-type: text/plain; version=0.0.4; charset=utf-8")),
        "{head:?}"
    );
    let textfile = env.read("out/secretsync.prom");
    for text in [&body, &textfile] {
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "classic text format:\n{text}"
        );
        assert!(text.contains("# TYPE secretsync_secrets_total counter"), "{text}");
        assert_eq!(count(text, "secretsync_run_outcome{outcome=\"changes\"}"), 1, "{text}");
        assert_eq!(
            count(text, "secretsync_secrets_total{action=\"create\",result=\"applied\"}"),
            3,
            "the new secret, in each of the three targets:\n{text}"
        );
        assert!(
            count(text, "secretsync_run_finished_timestamp_seconds") > 1_700_000_000,
            "{text}"
        );
        assert_eq!(count(text, "secretsync_targets{outcome=\"ok\"}"), 3, "{text}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(env.path().join("out")).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "only the textfile; its temporary file was renamed");

    // A Pushgateway that is not there fails the command after the results are printed; the
    // credentials and query of its URL are never shown.
    let gone = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", gone.local_addr().unwrap());
    drop(gone);
    let with_secrets = url.replace("http://", "http://admin:pushpass@") + "/metrics/job/secretsync?auth=querytoken";
    let out = env.run(&["pipeline", "-c", QUICKSTART, "--metrics-push", &with_secrets]);
    for secret in ["pushpass", "querytoken", "admin"] {
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "{}",
            out.snapshot()
        );
    }
    assert_eq!(out.code, 2, "{}", out.snapshot());
    assert!(
        out.stdout.contains("in sync"),
        "the results were printed first: {}",
        out.stdout
    );
    assert!(
        out.stderr
            .contains(&format!("error: cannot push metrics to {url}/metrics/job/secretsync")),
        "{}",
        out.stderr
    );
}

/// The quickstart, pushing to `url` and writing `out/secretsync.prom`.
fn push_and_write(env: &Test, url: &str) -> Output {
    env.run(&[
        "pipeline",
        "-c",
        QUICKSTART,
        "--metrics-push",
        url,
        "--metrics-textfile",
        "out/secretsync.prom",
    ])
}

#[test]
fn json_logs_carry_the_run_id_on_every_line_of_the_run() {
    let env = Test::quickstart();
    let out = env
        .args(&[
            "pipeline",
            "-c",
            QUICKSTART,
            "--log-level",
            "debug",
            "--log-format",
            "json",
        ])
        .code(0);
    let lines: Vec<Value> = out
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 3, "{}", out.stderr);
    let ids: std::collections::BTreeSet<String> = lines
        .iter()
        .filter_map(|l| l["spans"][0]["run_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(ids.len(), 1, "one run id: {}", out.stderr);
    let id = ids.into_iter().next().unwrap();
    assert_eq!(id.len(), 16);
    let in_run = lines.iter().filter(|l| l["spans"][0]["run_id"] == id.as_str()).count();
    assert_eq!(in_run, lines.len(), "every line of the run carries it: {}", out.stderr);
    // run → phase → target, as the merge logs show.
    assert!(
        lines.iter().any(|l| {
            let names: Vec<&str> = l["spans"]
                .as_array()
                .map(|s| s.iter().filter_map(|s| s["name"].as_str()).collect())
                .unwrap_or_default();
            names == ["run", "phase", "target"] && l["spans"][1]["phase"] == "merge"
        }),
        "run, phase and target spans: {}",
        out.stderr
    );
}
