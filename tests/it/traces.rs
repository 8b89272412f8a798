//! OpenTelemetry traces as a collector receives them: a real run (OpenBao source, Secrets
//! Manager target on moto) exports over OTLP/HTTP to an independent receiver built from the
//! official protobuf definitions (`scripts/otlp_receiver.py`), which decodes every span; the
//! tests check the nesting run → phase → target → call along parent links, the semantic-
//! convention attributes and request ids, `TRACEPARENT`, flushing after an error and after
//! SIGTERM, a collector that fails or hangs, and that a run without OTLP settings makes no
//! network call at all.

use serde_json::json;
use testbed::proxy::{Fault, Rule};
use testbed::support::{Services, random_account_id};

use crate::support::aws;
use crate::support::otlp::{OtlpReceiver, ReceivedSpan, Trace};
use crate::support::scenario::{Scenario, canary};
use crate::support::vault::Kv;
use crate::support::{QUICKSTART, Test};

/// The spans of the one trace the receiver got; asserts there is exactly one, with one root.
fn one_trace(receiver: &OtlpReceiver) -> (Trace, ReceivedSpan) {
    let spans = receiver.spans();
    assert!(!spans.is_empty(), "the receiver got no span");
    let traces: std::collections::BTreeSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    assert_eq!(traces.len(), 1, "one trace per run: {traces:?}");
    let trace = Trace::new(spans.clone());
    let roots: Vec<&ReceivedSpan> = spans.iter().filter(|s| trace.by_id(&s.parent).is_none()).collect();
    assert_eq!(
        roots.len(),
        1,
        "one root: {:?}",
        roots.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let root = roots[0].clone();
    (trace, root)
}

/// The names of `span`'s ancestors, nearest first.
fn lineage(trace: &Trace, span: &ReceivedSpan) -> Vec<String> {
    trace.ancestors(span).iter().map(|s| s.name.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_one_trace_nesting_run_phase_target_call_with_aws_and_vault_attributes() {
    let s = Services::get();
    let caller = s.aws_account().await;
    let proxy = aws::proxy(&s).await;
    let mount = s.vault_mount(2).await;
    for n in 0..3 {
        Kv::shared(&s, &mount, 2)
            .seed(&format!("app/s{n}"), &json!({ "password": canary(n) }))
            .await;
    }
    let account = random_account_id();
    let receiver = OtlpReceiver::start();
    let t = Test::new()
        .aws(&caller, &aws::endpoint(&proxy))
        .vault_token(&s.vault_token)
        .pipeline(format!(
            "vault: {{ address: {} }}\n\
             sources: {{ platform: {{ vault: {{ mount: {mount}, paths: [app] }} }} }}\n\
             targets: {{ App: {{ account_id: \"{account}\", imports: [platform] }} }}\n",
            s.vault_addr
        ));
    let out = t
        .args(&["pipeline", "--report", "report.json"])
        .var("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint)
        .var("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test")
        .code(0);
    assert!(!out.stderr.contains("traces:"), "no delivery warning: {}", out.stderr);
    let (trace, root) = one_trace(&receiver);

    // The root is the run, carrying the report's run id; the resource names the service.
    assert_eq!(root.name, "pipeline");
    assert_eq!(root.parent, "", "no TRACEPARENT: a trace of its own");
    assert_eq!(
        root.attr("run_id"),
        t.read_json("report.json")["run_id"].as_str().unwrap()
    );
    assert_eq!(root.resource["service.name"], "secretsync");
    assert_eq!(root.resource["service.version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(root.resource["deployment.environment.name"], "test");

    // Phases hang off the run; every target span off the phase it names.
    for phase in ["merge", "plan", "apply"] {
        let spans = trace.named(phase);
        assert_eq!(spans.len(), 1, "one `{phase}` phase");
        assert_eq!(spans[0].parent, root.span_id, "`{phase}` is a child of the run");
    }
    let targets = trace.named("target");
    assert!(targets.len() >= 3, "a target span per phase");
    for target in &targets {
        assert_eq!(target.attr("target"), "App");
        let parent = trace.by_id(&target.parent).expect("the target's phase was received");
        assert_eq!(parent.name, target.attr("phase"), "a target span's parent is its phase");
    }

    // Vault calls: under the merge phase's target (through its source), with server attributes.
    let vault_calls: Vec<&ReceivedSpan> = trace.spans.iter().filter(|s| s.name.starts_with("Vault.")).collect();
    assert!(
        vault_calls.iter().any(|c| c.name == "Vault.read"),
        "{:?}",
        vault_calls.iter().map(|c| &c.name).collect::<Vec<_>>()
    );
    for call in &vault_calls {
        assert_eq!(call.kind, "SPAN_KIND_CLIENT", "{call:?}");
        assert_eq!(call.attr("server.address"), "127.0.0.1", "{call:?}");
        assert!(call.attributes["server.port"].as_i64().is_some(), "{call:?}");
        assert_eq!(call.status, "STATUS_CODE_UNSET", "{call:?}");
    }
    // The mount lookup happens while the stores are built (under the run); the listing and
    // the reads of the source's secrets under merge → target → source.
    let under_source: Vec<&&ReceivedSpan> = vault_calls
        .iter()
        .filter(|c| lineage(&trace, c) == ["source", "target", "merge", "pipeline"])
        .collect();
    assert!(under_source.iter().any(|c| c.name == "Vault.list"), "{under_source:?}");
    assert!(
        under_source.iter().filter(|c| c.name == "Vault.read").count() >= 3,
        "{under_source:?}"
    );
    for call in &vault_calls {
        assert_eq!(lineage(&trace, call).last().map(String::as_str), Some("pipeline"));
    }

    // AWS calls: the creates under the apply phase's target, with the semantic conventions
    // for AWS SDK spans and the request id AWS support asks for.
    let creates = trace.named("SecretsManager.CreateSecret");
    assert_eq!(creates.len(), 3, "one span per create");
    for create in &creates {
        assert_eq!(lineage(&trace, create), ["target", "apply", "pipeline"]);
        assert_eq!(trace.by_id(&create.parent).unwrap().attr("phase"), "apply");
        assert_eq!(create.kind, "SPAN_KIND_CLIENT");
        assert_eq!(create.attr("rpc.system"), "aws-api");
        assert_eq!(create.attr("rpc.service"), "SecretsManager");
        assert_eq!(create.attr("rpc.method"), "CreateSecret");
        assert_eq!(create.attr("cloud.region"), "us-east-1");
        assert_eq!(create.attr("cloud.account.id"), account);
        assert_eq!(create.attributes["http.response.status_code"], 200);
        assert!(create.attr("aws.request_id").len() >= 8, "{create:?}");
    }
    let ids: std::collections::BTreeSet<&str> = creates.iter().map(|c| c.attr("aws.request_id")).collect();
    assert_eq!(ids.len(), 3, "each call its own request id");
    // The role into the target account: an STS call, under a target too.
    let assume = trace.named("STS.AssumeRole");
    assert_eq!(assume.len(), 1, "one AssumeRole for the account");
    assert!(lineage(&trace, assume[0]).contains(&"target".to_owned()));
    assert!(!assume[0].attr("aws.request_id").is_empty());

    // Only secretsync's own spans; never a value, a token or a key.
    let raw = receiver.raw();
    for leak in ["CANARY-", s.vault_token.as_str(), caller.secret_access_key.as_str()] {
        assert!(!raw.contains(leak), "`{leak}` reached the collector");
    }
    let scopes: std::collections::BTreeSet<String> = receiver
        .raw()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["scope"]["name"].to_string())
        .collect();
    assert_eq!(
        scopes.into_iter().collect::<Vec<_>>(),
        ["\"secretsync\""],
        "only secretsync's spans"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_checks_are_one_trace_under_the_command() {
    let s = Services::get();
    let mount = s.vault_mount(2).await;
    let receiver = OtlpReceiver::start();
    let t = Test::new().vault_token(&s.vault_token).pipeline(format!(
        "vault: {{ address: {} }}\n\
         sources: {{ platform: {{ vault: {{ mount: {mount} }} }} }}\n\
         targets: {{ Out: {{ file: {{ path: ./out }}, imports: [platform] }} }}\n",
        s.vault_addr
    ));
    t.args(&["validate", "--check-vault", "--otlp-endpoint", &receiver.endpoint])
        .code(0);
    let (trace, root) = one_trace(&receiver);
    assert_eq!(root.name, "validate");
    let calls: Vec<&ReceivedSpan> = trace.spans.iter().filter(|s| s.name.starts_with("Vault.")).collect();
    assert!(!calls.is_empty(), "the checks' Vault calls");
    assert!(calls.iter().all(|c| c.parent == root.span_id));
}

#[test]
fn traceparent_makes_the_run_a_child_of_the_callers_trace() {
    let receiver = OtlpReceiver::start();
    let env = Test::quickstart();
    let parent_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_span = "00f067aa0ba902b7";
    env.args(&["pipeline", "-c", QUICKSTART, "--otlp-endpoint", &receiver.endpoint])
        .var("TRACEPARENT", &format!("00-{parent_trace}-{parent_span}-01"))
        .var("TRACESTATE", "vendor=opaque")
        .code(0);
    let (trace, root) = one_trace(&receiver);
    assert_eq!(root.name, "pipeline");
    assert_eq!(root.trace_id, parent_trace, "the run joins the caller's trace");
    assert_eq!(root.parent, parent_span, "its root is the caller's span's child");
    assert!(trace.spans.iter().all(|s| s.trace_id == parent_trace));

    // A TRACEPARENT that is not one: said, and the run starts its own trace.
    let receiver = OtlpReceiver::start();
    let out = env
        .args(&["plan", "-c", QUICKSTART, "--otlp-endpoint", &receiver.endpoint])
        .var("TRACEPARENT", "not-a-trace-context")
        .output();
    assert!(
        out.stderr
            .contains("warning: TRACEPARENT `not-a-trace-context` is not a W3C trace context"),
        "{}",
        out.stderr
    );
    let (_, root) = one_trace(&receiver);
    assert_eq!((root.name.as_str(), root.parent.as_str()), ("plan", ""));

    // A caller that does not sample: nothing is sent, and the run says why.
    let receiver = OtlpReceiver::start();
    let out = env
        .args(&["plan", "-c", QUICKSTART, "--otlp-endpoint", &receiver.endpoint])
        .var("TRACEPARENT", &format!("00-{parent_trace}-{parent_span}-00"))
        .output();
    assert!(
        out.stderr
            .contains("TRACEPARENT says the caller's trace is not sampled"),
        "{}",
        out.stderr
    );
    assert!(receiver.spans().is_empty(), "an unsampled trace sends nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_locks_renewals_stay_in_the_runs_trace() {
    let t = Scenario::new().await;
    let receiver = OtlpReceiver::start();
    t.with_s3_merge_store("").await;
    t.write_canaries(3, 1);
    // Writes slower than the renewal interval: the lock is renewed during the run.
    t.slow_creates(1500);
    t.args(&["pipeline", "--otlp-endpoint", &receiver.endpoint])
        .var("SECRETSYNC_LOCK_RENEW_SECONDS", "1")
        .code(0);
    let (trace, root) = one_trace(&receiver);
    assert_eq!(root.name, "pipeline");
    let puts = trace.named("S3.PutObject");
    assert!(
        puts.len() >= 3,
        "the lock, a renewal and the merged result: {}",
        puts.len()
    );
    assert!(trace.spans.iter().all(|s| s.resource["service.name"] == "secretsync"));
}

/// The `socket(AF_INET…)` calls of a run of the quickstart (local files only) under strace.
fn inet_sockets(env: &Test, vars: &[(&str, &str)]) -> Vec<String> {
    let cmd = env
        .args(&["pipeline", "-c", QUICKSTART, "--dry-run"])
        .vars(vars)
        .command();
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(ToOwned::to_owned).collect();
    let log = env.path().join("strace.log");
    let mut traced = std::process::Command::new("strace");
    traced
        .args(["-f", "-qq", "-e", "trace=socket,connect", "-o"])
        .arg(&log)
        .arg(program)
        .args(args)
        .current_dir(env.path());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => traced.env(key, value),
            None => traced.env_remove(key),
        };
    }
    let status = traced
        .status()
        .expect("strace must be installed to check for network calls (scripts/test installs it with root or sudo: apt-get install strace)");
    assert!(status.success(), "the run failed under strace");
    std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("AF_INET"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_run_without_otlp_settings_makes_no_network_call() {
    let env = Test::quickstart();
    // Variables that describe traces but do not turn them on.
    let quiet = inet_sockets(
        &env,
        &[
            ("OTEL_SERVICE_NAME", "sync"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=k"),
            ("TRACEPARENT", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
        ],
    );
    assert!(quiet.is_empty(), "no socket without OTLP settings: {quiet:#?}");
    // The same check sees the exporter's connection when traces are on.
    let receiver = OtlpReceiver::start();
    let port = receiver.endpoint.rsplit(':').next().unwrap().to_owned();
    let on = inet_sockets(&env, &[("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint)]);
    assert!(
        on.iter()
            .any(|l| l.contains("connect(") && l.contains(&format!("htons({port})"))),
        "with an endpoint, the exporter connects to it: {on:#?}"
    );
    assert!(!receiver.spans().is_empty());
}

#[test]
fn a_collector_that_refuses_or_hangs_is_a_warning_and_the_exit_code_stands() {
    let env = Test::quickstart();
    let failing = OtlpReceiver::with_args(&["--status", "503"]);
    let out = env
        .args(&["pipeline", "-c", QUICKSTART, "--otlp-endpoint", &failing.endpoint])
        .code(0);
    let shown = format!("{}/v1/traces", failing.endpoint);
    assert!(
        out.stderr.contains("warning: traces: ")
            && out.stderr.contains(&format!(
                " span(s) could not be sent to {shown} (HTTP export failed with status code: 503)"
            )),
        "{}",
        out.stderr
    );
    // A collector that accepts the connection and never answers holds the run at most the
    // flush bound, then is named.
    let stuck = OtlpReceiver::with_args(&["--hang"]);
    let out = env
        .args(&["plan", "-c", QUICKSTART, "--otlp-endpoint", &stuck.endpoint])
        .code(0);
    assert!(
        out.stderr.contains(&format!(
            "warning: traces: the collector at {}/v1/traces did not take the last spans within 5.0s",
            stuck.endpoint
        )),
        "{}",
        out.stderr
    );
    // Nothing listening at all.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let out = env.args(&["plan", "-c", QUICKSTART, "--otlp-endpoint", &url]).code(0);
    assert!(
        out.stderr.contains("could not be sent") && out.stderr.contains("(HTTP export failed: network error)"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_bad_flag_stops_the_command_and_a_bad_variable_only_turns_traces_off() {
    let env = Test::quickstart();
    let out = env
        .args(&["pipeline", "-c", QUICKSTART, "--otlp-endpoint", "collector:4318"])
        .code(2);
    assert!(
        out.stderr
            .contains("error: --otlp-endpoint gives `collector:4318/v1/traces`, which is not an http(s) address"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("hint: give the collector's OTLP/HTTP address"),
        "{}",
        out.stderr
    );
    assert!(!env.exists("examples/quickstart/targets/review"), "nothing ran");
    // The same from the environment (injected into every pod, say): the job runs, untraced.
    let out = env
        .args(&["pipeline", "-c", QUICKSTART])
        .var("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")
        .code(0);
    assert!(
        out.stderr
            .contains("OTEL_EXPORTER_OTLP_ENDPOINT gives `collector:4318/v1/traces`, which is not an http(s) address")
            && out.stderr.contains("no traces are sent"),
        "{}",
        out.stderr
    );
    assert!(env.exists("examples/quickstart/targets/review"), "the run went on");
    // A collector URL with credentials that cannot be reached: the warning shows it without them.
    let out = env
        .args(&["plan", "-c", QUICKSTART])
        .var(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://user:hunter2@127.0.0.1:9/v1/traces?key=k3y",
        )
        .code(0);
    assert!(
        out.stderr
            .contains("could not be sent to http://127.0.0.1:9/v1/traces (HTTP export failed: network error)"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("hunter2") && !out.stderr.contains("k3y"),
        "{}",
        out.stderr
    );
    let grpc = env
        .args(&["plan", "-c", QUICKSTART])
        .vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ])
        .code(0);
    assert!(
        grpc.stderr
            .contains("OTEL_EXPORTER_OTLP_PROTOCOL=`grpc`: secretsync sends traces over OTLP/HTTP with protobuf only"),
        "an injected gRPC setting is a warning, not a failed job: {}",
        grpc.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_flushed_with_the_failure_on_its_spans() {
    let t = Scenario::new().await;
    let receiver = OtlpReceiver::start();
    t.one_target(3, None);
    t.proxy
        .add_rule(Rule {
            operation: Some("CreateSecret".into()),
            fault: Fault {
                status: Some(400),
                code: Some("AccessDeniedException".into()),
                message: Some("not allowed".into()),
                ..Fault::default()
            },
            ..Rule::default()
        })
        .unwrap();
    // The SDK's own logs on: its spans are the current ones when the answer comes, and the
    // answer must still land on the call span.
    let out = t
        .args(&[
            "pipeline",
            "--otlp-endpoint",
            &receiver.endpoint,
            "--log-level",
            "debug",
        ])
        .var("SECRETSYNC_LOG_DEPENDENCIES", "aws_smithy_runtime=debug")
        .output();
    assert_eq!(out.code, 2, "a failed target: {}", out.snapshot());
    let (trace, root) = one_trace(&receiver);
    assert_eq!(root.name, "pipeline");
    let failed_target = trace
        .named("target")
        .into_iter()
        .find(|s| s.attr("phase") == "apply")
        .expect("the apply target span")
        .clone();
    assert_eq!(failed_target.status, "STATUS_CODE_ERROR");
    assert_eq!(
        failed_target.attr("error.type"),
        "auth",
        "the class, as metrics label it"
    );
    let create = trace.named("SecretsManager.CreateSecret")[0].clone();
    assert_eq!(create.status, "STATUS_CODE_ERROR");
    assert_eq!(create.attr("error.type"), "auth");
    assert_eq!(create.attributes["http.response.status_code"], 400);
    assert!(!receiver.raw().contains("CANARY-"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_by_sigterm_still_sends_its_trace() {
    let t = Scenario::new().await;
    let receiver = OtlpReceiver::start();
    t.one_target(20, None);
    t.slow_creates(150);
    let child = t.args(&["pipeline", "--otlp-endpoint", &receiver.endpoint]).spawn();
    let output = t.terminate_after_creates(child, 2).await;
    assert_eq!(output.code, 130, "{}", output.snapshot());
    let (trace, root) = one_trace(&receiver);
    assert_eq!(root.name, "pipeline", "the root span ended and was sent");
    let sent = trace.named("SecretsManager.CreateSecret").len();
    assert!((2..20).contains(&sent), "the creates made before the signal: {sent}");
    assert!(
        trace.named("apply").first().is_some_and(|a| a.parent == root.span_id),
        "the interrupted apply phase too"
    );
}
