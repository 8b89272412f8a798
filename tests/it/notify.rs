//! `pipeline.notify` webhooks against a local receiver: when each trigger calls, what the JSON
//! and Slack bodies carry (names and counts, never a value), retries of a failing receiver that
//! end in a warning without changing the exit code, and a URL that is never shown.

use std::fmt::Write as _;

use crate::support::Test;
use crate::support::receiver::Receiver;

const CANARY: &str = "canary-7c1e55d0-never-sent";

fn pipeline(hook: &str) -> Test {
    let test = Test::new().pipeline(format!(
        "sources:\n  app: {{ file: {{ path: ./src }} }}\n\
         targets:\n  Prod: {{ file: {{ path: ./out }}, imports: [app] }}\n\
         pipeline:\n  notify:\n    webhooks:\n      - {hook}\n"
    ));
    test.write("src/db.json", format!(r#"{{"password": "{CANARY}"}}"#));
    test
}

#[test]
fn json_webhooks_are_called_on_changes_and_failures_with_the_run_summary() {
    let receiver = Receiver::answering(200);
    let test =
        pipeline("{ url_env: HOOK_URL, on: [changes, failure] }").var("HOOK_URL", &format!("{}/hook", receiver.url));

    let first = test
        .args(&["pipeline", "-o", "json", "--run-url", "https://ci.example/runs/7"])
        .code(0);
    let report: serde_json::Value = serde_json::from_str(&first.stdout).unwrap();
    let got = receiver.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].method.as_str(), got[0].path.as_str()), ("POST", "/hook"));
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    let body = got[0].json();
    assert_eq!(body["run_id"], report["run_id"], "{body}");
    assert_eq!(body["outcome"], "changes");
    assert_eq!(body["exit_code"], 0);
    assert_eq!(body["url"], "https://ci.example/runs/7");
    assert_eq!(body["targets"][0]["name"], "Prod");
    assert_eq!(body["targets"][0]["counts"]["create"], 1);
    assert_eq!(body["targets"][0]["applied"], 1);
    assert_eq!(body["summary"]["applied"], 1);

    // Nothing changed: not called. A plan (a review) never calls.
    test.args(&["pipeline"]).code(0);
    test.write("src/cache.json", r#"{"ttl": 5}"#);
    test.args(&["plan"]).code(0);
    assert_eq!(receiver.received().len(), 1);

    // A failed run is called, with its problem (the target folder holds a symlink, which a
    // folder store refuses).
    std::os::unix::fs::symlink("/etc/hostname", test.path().join("out/link")).unwrap();
    let failed = test.args(&["pipeline"]).code(2);
    let got = receiver.received();
    assert_eq!(got.len(), 2, "{}", failed.stderr);
    let body = got[1].json();
    assert_eq!(body["outcome"], "failed", "{body}");
    assert_eq!(body["exit_code"], 2);
    assert!(!body["problems"].as_array().unwrap().is_empty(), "{body}");
    for request in &got {
        assert!(!request.body.contains(CANARY), "a value was sent: {}", request.body);
    }
}

#[test]
fn a_failing_receiver_is_retried_then_a_warning_and_the_exit_code_is_unchanged() {
    let receiver = Receiver::answering(503);
    let secret_url = format!("{}/services/T000/B000/XSECRETTOKEN", receiver.url);
    let test = pipeline("{ url_env: SLACK_URL, format: slack, on: [always], retries: 1, timeout: 5s }")
        .var("SLACK_URL", &secret_url);
    let out = test.args(&["pipeline"]).code(0);
    let got = receiver.received();
    assert_eq!(got.len(), 2, "one attempt and one retry: {got:?}");
    assert!(
        out.stderr
            .contains("warning: webhook `SLACK_URL` not told how the run went: the receiver answered 503 Service Unavailable (after 2 attempts)"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("XSECRETTOKEN") && !out.stdout.contains("XSECRETTOKEN"),
        "the URL is a secret: {}",
        out.stderr
    );
    let message = got[0].json();
    let headline = message["text"].as_str().unwrap();
    assert!(
        headline.contains("changed secrets: 1 targets (0 failed, 0 skipped), changes 1 applied"),
        "{headline}"
    );
    assert!(
        message["blocks"][1]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("`Prod`: 1 create"),
        "{message}"
    );
    assert!(!got[0].body.contains(CANARY));

    // A receiver that refuses the request (4xx) is not retried.
    let refusing = Receiver::answering(404);
    test.args(&["pipeline"]).var("SLACK_URL", &refusing.url).code(0);
    assert_eq!(refusing.received().len(), 1);
}

#[test]
fn a_webhook_without_its_variable_is_a_warning_and_a_bad_one_a_config_error() {
    let test = pipeline("{ url_env: NOT_SET_ANYWHERE, on: [always] }");
    let out = test.args(&["pipeline"]).code(0);
    assert!(
        out.stderr
            .contains("warning: webhook `NOT_SET_ANYWHERE` not called: the variable `NOT_SET_ANYWHERE` is not set"),
        "{}",
        out.stderr
    );
    let bad = pipeline("{ url_env: \"https://hooks.slack.com/services/X\", on: [] }");
    let out = bad.args(&["validate"]).code(2);
    assert!(
        out.stderr
            .contains("`pipeline.notify.webhooks[0].url_env` must name an environment variable"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("hooks.slack.com/services/X`"), "{}", out.stderr);
    assert!(
        out.stderr.contains("`pipeline.notify.webhooks[0].on` is empty"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_run_that_cannot_even_start_is_reported_as_a_failure() {
    let receiver = Receiver::answering(200);
    let test = pipeline("{ url_env: HOOK_URL, on: [failure] }").var("HOOK_URL", &receiver.url);
    // The audit log's folder does not exist: the run stops before it has a report.
    let out = test
        .args(&["pipeline", "--audit-log", "missing/dir/audit.jsonl"])
        .code(2);
    let got = receiver.received();
    assert_eq!(got.len(), 1, "{}", out.stderr);
    let body = got[0].json();
    assert_eq!(body["outcome"], "failed", "{body}");
    assert_eq!(body["exit_code"], 2);
    let problem = body["problems"][0]["message"].as_str().unwrap();
    assert!(problem.contains("audit"), "{body}");
    assert!(!test.exists("out/db.json"), "nothing was written");
}

#[test]
fn an_unreachable_receiver_is_named_by_its_variable_only() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let secret_url = format!(
        "http://{}/services/T000/B000/XSECRETTOKEN",
        closed.local_addr().unwrap()
    );
    drop(closed);
    let test =
        pipeline("{ url_env: SLACK_URL, format: slack, on: [always], retries: 1 }").var("SLACK_URL", &secret_url);
    let out = test.args(&["pipeline"]).code(0);
    assert!(
        out.stderr
            .contains("warning: webhook `SLACK_URL` not told how the run went:")
            && out.stderr.contains("(after 2 attempts)"),
        "{}",
        out.stderr
    );
    for output in [&out.stdout, &out.stderr] {
        assert!(!output.contains("XSECRETTOKEN"), "the URL is a secret: {output}");
        assert!(!output.contains("/services/"), "the URL is a secret: {output}");
    }
}

#[test]
fn a_redirect_is_not_followed_and_long_errors_fit_in_a_slack_message() {
    // A receiver that redirects elsewhere: the body is not sent on.
    let redirecting = Receiver::new(|_| (307, String::new()));
    let test = pipeline("{ url_env: HOOK_URL, format: slack, on: [always] }").var("HOOK_URL", &redirecting.url);
    let out = test.args(&["pipeline"]).code(0);
    assert_eq!(redirecting.received().len(), 1);
    assert!(out.stderr.contains("a redirect, not followed"), "{}", out.stderr);

    // Forty targets failing with a long error: the list stays inside Slack's 3,000 characters
    // per section, and says how many more there are.
    let receiver = Receiver::answering(200);
    let long = "x".repeat(200);
    let mut targets = String::new();
    for n in 0..40 {
        let _ = writeln!(
            targets,
            "  T{n:02}: {{ file: {{ path: ./out{n}-{long} }}, imports: [app] }}"
        );
    }
    let test = Test::new()
        .pipeline(format!(
            "sources:\n  app: {{ file: {{ path: ./src }} }}\ntargets:\n{targets}\
             pipeline:\n  continue_on_error: true\n  notify:\n    webhooks:\n      - {{ url_env: HOOK_URL, format: slack }}\n"
        ))
        .var("HOOK_URL", &receiver.url);
    test.write("src/db.json", r#"{"user": "app"}"#);
    for n in 0..40 {
        // A file where the target's folder should be: each target fails, naming its long path.
        test.write(&format!("out{n}-{long}"), "not a folder");
    }
    test.args(&["pipeline"]).code(2);
    let message = receiver.received()[0].json();
    let list = message["blocks"][1]["text"]["text"].as_str().unwrap();
    assert!(list.chars().count() <= 3000, "{} characters", list.chars().count());
    assert!(list.contains("more targets"), "{list}");
}

#[test]
fn a_webhook_timeout_over_a_minute_is_refused() {
    let test = pipeline("{ url_env: HOOK_URL, timeout: 1d, retries: 9 }");
    let out = test.args(&["validate"]).code(2);
    assert!(
        out.stderr
            .contains("`pipeline.notify.webhooks[0].timeout` must be at most 60s"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("`pipeline.notify.webhooks[0].retries` must be between 0 and 5, not 9"),
        "{}",
        out.stderr
    );
}
