//! The fault suite: the binary against moto and OpenBao with faults injected by a private fault
//! proxy — throttling storms, a denied role beside a failing endpoint, connection resets and
//! latency spikes, a real Vault server sealed mid-run, SIGTERM during apply. Every run logs at
//! trace level as JSON and writes its report and metrics; canary values seeded in the secrets
//! must appear in none of it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use testbed::openbao::OpenBao;
use testbed::proxy::{Fault, Flavor, Hold, Rule};
use testbed::support::random_account_id;

use crate::support::Output;
use crate::support::aws::{WRITES, calls, names, secrets_in, since, string_value};
use crate::support::scenario::{OBSERVED, Scenario, canary};
use crate::support::vault::Kv;

/// A started run, killed (and reaped) if the test ends before it does.
struct KilledOnDrop(std::process::Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The report entry of target `name`.
fn target_in(report: &Value, name: &str) -> Value {
    report["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no target {name} in {report:#}"))
        .clone()
}

/// The value of the sample `name{labels}` in Prometheus text as written (`3`, `0.25`), or
/// `absent`.
pub(crate) fn sample(metrics: &str, name_and_labels: &str) -> String {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .map_or_else(|| "absent".to_owned(), |v| v.trim().to_owned())
}

/// A whole-number sample, 0 when absent.
pub(crate) fn count(metrics: &str, name_and_labels: &str) -> u64 {
    match sample(metrics, name_and_labels).as_str() {
        "absent" => 0,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("`{name_and_labels}` is not a count: {v}")),
    }
}

fn throttle(operation: &str, probability: f64) -> Rule {
    Rule {
        service: Some("secretsmanager".into()),
        operation: Some(operation.into()),
        fault: Fault {
            status: Some(400),
            code: Some("ThrottlingException".into()),
            message: Some("Rate exceeded".into()),
            ..Fault::default()
        },
        probability: Some(probability),
        seed: Some(7),
        ..Rule::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_storm_on_reads_and_writes_is_ridden_out_and_counted() {
    let t = Scenario::new().await;
    // Half of all calls are throttled, so a call fails six times in a row once in 64: with 45
    // writes in flight in any order, allow enough attempts that giving up is out of the question
    // (2^-20 per call).
    let target = t.one_target(
        45,
        Some("resilience: { retries: { max_attempts: 20, base_delay: 10ms, max_delay: 50ms } }"),
    );
    let first = t.observed_pipeline(&[]);
    assert_eq!(first.code, 0, "{}", first.snapshot());

    // Every value changes; half of all reads and writes are throttled.
    t.write_canaries(45, 2);
    let reads = t.proxy.add_rule(throttle("BatchGetSecretValue", 0.5)).unwrap();
    let writes = t.proxy.add_rule(throttle("PutSecretValue", 0.5)).unwrap();
    let before = calls(&t.proxy);
    let stormy = t.observed_pipeline(&[]);
    assert_eq!(stormy.code, 0, "{}", stormy.snapshot());
    let made = since(&before, &calls(&t.proxy));
    let reported = &t.report()["api_calls"]["secretsmanager"];
    for operation in ["ListSecrets", "BatchGetSecretValue", "PutSecretValue"] {
        assert_eq!(
            reported[operation].as_u64(),
            made.get(operation).copied(),
            "the report counts every attempt the proxy saw: {reported} vs {made:?}"
        );
    }
    let (reads, writes) = (t.proxy.rule_stats(reads).unwrap(), t.proxy.rule_stats(writes).unwrap());
    assert!(
        reads.fired >= 1 && writes.fired >= 10,
        "a storm happened: {reads:?} {writes:?}"
    );

    let sm = secrets_in(&t.s, &target).await;
    for n in [0, 22, 44] {
        assert_eq!(
            string_value(&sm, &format!("s{n:03}")).await,
            json!({ "password": canary(n), "version": 2 }),
            "every write landed"
        );
    }
    let metrics = t.metrics();
    for (operation, stats) in [("BatchGetSecretValue", reads), ("PutSecretValue", writes)] {
        let labels = format!("{{service=\"secretsmanager\",operation=\"{operation}\"}}");
        assert_eq!(
            count(&metrics, &format!("secretsync_throttles_total{labels}")),
            stats.fired,
            "every injected throttle of {operation} is counted:\n{metrics}"
        );
        assert_eq!(
            count(&metrics, &format!("secretsync_retries_total{labels}")),
            stats.fired,
            "and retried once each"
        );
    }
    assert_eq!(
        count(
            &metrics,
            "secretsync_secrets_total{action=\"update\",result=\"applied\"}"
        ),
        45
    );
    assert_eq!(count(&metrics, "secretsync_run_outcome{outcome=\"changes\"}"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_role_and_a_failing_endpoint_fail_only_their_targets_and_the_next_run_converges() {
    let t = Scenario::new().await;
    let (good, denied, broken) = (random_account_id(), random_account_id(), random_account_id());
    let broken_account = broken.clone();
    t.write_canaries(5, 1);
    t.write(
        "config.yaml",
        format!(
            "sources:\n\
             \x20 files: {{ file: {{ path: ./src }} }}\n\
             \x20 remote: {{ aws: {{ account_id: \"{broken}\", prefix: broken/ }} }}\n\
             targets:\n\
             \x20 Good: {{ account_id: \"{good}\", imports: [files] }}\n\
             \x20 Denied: {{ account_id: \"{denied}\", imports: [files] }}\n\
             \x20 Broken: {{ account_id: \"{good}\", imports: [files, remote], secret_prefix: merged/ }}\n\
             \x20 AlsoBroken: {{ account_id: \"{broken}\", imports: [files], secret_prefix: broken-too/ }}\n\
             \x20 BrokenChild: {{ account_id: \"{good}\", imports: [Broken], secret_prefix: child/ }}\n\
             pipeline:\n\
             \x20 resilience: {{ retries: {{ max_attempts: 3, base_delay: 10ms, max_delay: 50ms }}, circuit_breaker: {{ failures: 3, cool_down: 10m }} }}\n"
        ),
    );
    let denied_rule = t
        .proxy
        .add_rule(Rule {
            operation: Some("AssumeRole".into()),
            body: Some(format!("iam%3A%3A{denied}%3A")),
            fault: Fault {
                status: Some(403),
                code: Some("AccessDenied".into()),
                message: Some("not authorized to perform sts:AssumeRole".into()),
                ..Fault::default()
            },
            ..Rule::default()
        })
        .unwrap();
    // Every Secrets Manager call about `broken…` names answers 500: the `remote` source (read
    // in the merge phase) and AlsoBroken's listing (prefetched while the merge phase runs). The
    // first three failed attempts, whichever of the two makes them, open the account's breaker;
    // the other is then refused at once.
    let broken_rule = t
        .proxy
        .add_rule(Rule {
            service: Some("secretsmanager".into()),
            body: Some("broken".into()),
            fault: Fault {
                status: Some(500),
                code: Some("InternalServiceError".into()),
                message: Some("we are having a bad day".into()),
                ..Fault::default()
            },
            ..Rule::default()
        })
        .unwrap();

    let failed = t.observed_pipeline(&["-o", "json"]);
    assert_eq!(failed.code, 2, "{}", failed.snapshot());
    let report = t.report();
    let status = |name: &str| -> Value { target_in(&report, name) };
    assert_eq!(status("Good")["status"], "ok", "{report:#}");
    let denied_error = status("Denied")["error"].as_str().unwrap().to_owned();
    assert!(
        denied_error.contains(&format!("arn:aws:iam::{denied}:role/OrganizationAccountAccessRole")),
        "{denied_error}"
    );
    let broken = status("Broken");
    let broken_error = broken["error"].as_str().unwrap().to_owned();
    let also_broken_error = status("AlsoBroken")["error"].as_str().unwrap().to_owned();
    assert!(broken_error.contains("cannot read source `remote`"), "{broken_error}");
    for error in [&broken_error, &also_broken_error] {
        assert!(
            error.contains("InternalServiceError")
                || error.contains("circuit breaker open after 3 consecutive failures"),
            "{error}"
        );
    }
    assert!(
        [&broken_error, &also_broken_error]
            .iter()
            .any(|e| e.contains("circuit breaker open after 3 consecutive failures")),
        "once the breaker opened, the next call to the broken account failed fast: {broken_error} / {also_broken_error}"
    );
    let child = status("BrokenChild");
    assert_eq!(child["status"], "skipped", "{child}");
    assert!(
        child["skipped_because"].as_str().unwrap().contains("`Broken`"),
        "{child}"
    );
    assert!(t.proxy.rule_stats(denied_rule).unwrap().fired >= 1);
    let fired = t.proxy.rule_stats(broken_rule).unwrap().fired;
    assert!(
        (3..=4).contains(&fired),
        "three failures opened the breaker (plus at most the other caller's attempt already in flight); then no more calls reached the endpoint: {fired}"
    );
    let metrics = t.metrics();
    let endpoint = format!("{{service=\"secretsmanager\",endpoint=\"{broken_account}/us-east-1\"}}");
    assert_eq!(
        count(&metrics, &format!("secretsync_circuit_breaker_state{endpoint}")),
        2,
        "{metrics}"
    );
    assert!(
        count(
            &metrics,
            &format!("secretsync_circuit_breaker_rejected_calls_total{endpoint}")
        ) >= 1
    );
    assert_eq!(count(&metrics, "secretsync_run_outcome{outcome=\"failed\"}"), 1);
    assert_eq!(
        count(&metrics, "secretsync_targets{outcome=\"failed\"}"),
        3,
        "{metrics}"
    );
    assert_eq!(count(&metrics, "secretsync_targets{outcome=\"skipped\"}"), 1);
    assert_eq!(names(&secrets_in(&t.s, &good).await).await.len(), 5, "Good was synced");

    // The faults clear: the next run writes only what is missing.
    t.proxy.clear_rules();
    let before = calls(&t.proxy);
    let healed = t.observed_pipeline(&[]);
    assert_eq!(healed.code, 0, "{}", healed.snapshot());
    let made = since(&before, &calls(&t.proxy));
    assert_eq!(
        made.get("CreateSecret"),
        Some(&20),
        "5 secrets in each of Denied, Broken, AlsoBroken and BrokenChild; none for Good: {made:?}"
    );
    let writes: u64 = made
        .iter()
        .filter(|(op, _)| WRITES.contains(&op.as_str()))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(writes, 20, "{made:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_resets_and_latency_spikes_are_survived_and_the_call_timeout_holds() {
    let t = Scenario::new().await;
    let target = random_account_id();
    t.write_canaries(25, 1);
    t.write(
        "config.yaml",
        format!(
            "sources: {{ files: {{ file: {{ path: ./src }} }} }}\n\
             targets: {{ App: {{ account_id: \"{target}\", imports: [files] }} }}\n\
             pipeline:\n\
             \x20 resilience: {{ retries: {{ max_attempts: 6, base_delay: 10ms, max_delay: 100ms }}, timeouts: {{ call: 1s }} }}\n"
        ),
    );
    assert_eq!(t.observed_pipeline(&[]).code, 0);
    t.write_canaries(25, 2);
    let resets = t
        .proxy
        .add_rule(Rule {
            operation: Some("ListSecrets".into()),
            fault: Fault {
                reset: true,
                ..Fault::default()
            },
            times: Some(2),
            ..Rule::default()
        })
        .unwrap();
    let spikes = t
        .proxy
        .add_rule(Rule {
            operation: Some("BatchGetSecretValue".into()),
            fault: Fault {
                latency_ms: Some(2000),
                ..Fault::default()
            },
            times: Some(2),
            ..Rule::default()
        })
        .unwrap();
    let out = t.observed_pipeline(&[]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    assert_eq!(t.proxy.rule_stats(resets).unwrap().fired, 2);
    assert_eq!(t.proxy.rule_stats(spikes).unwrap().fired, 2);
    let metrics = t.metrics();
    let transient = |op: &str| {
        count(
            &metrics,
            &format!(
                "secretsync_api_calls_total{{service=\"secretsmanager\",operation=\"{op}\",outcome=\"transient\"}}"
            ),
        )
    };
    assert_eq!(transient("ListSecrets"), 2, "each reset failed one attempt:\n{metrics}");
    assert_eq!(
        transient("BatchGetSecretValue"),
        2,
        "each 2 s spike was cut off by the 1 s call timeout and retried:\n{metrics}"
    );
    let sm = secrets_in(&t.s, &target).await;
    assert_eq!(
        string_value(&sm, "s024").await,
        json!({ "password": canary(24), "version": 2 })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_sealed_mid_run_fails_its_importers_with_no_partial_push_and_no_delete() {
    let t = Scenario::new().await;
    // A private OpenBao (the test seals it) behind a private proxy.
    let vault = OpenBao::start("sealed-mid-run").await;
    let vault_proxy = testbed::proxy::start("127.0.0.1:0".parse().unwrap(), &vault.addr, Flavor::Vault)
        .await
        .unwrap();
    vault.mount_kv("platform", 2).await;
    let kv = Kv::new(&vault.addr, &vault.root_token, "platform", 2);
    let write = |path: &'static str, n: usize, version: u32| {
        let kv = &kv;
        async move { kv.seed(path, &json!({ "secret": canary(n), "version": version })).await }
    };
    for (n, path) in ["alpha", "beta", "gamma"].into_iter().enumerate() {
        write(path, n, 1).await;
    }
    t.write("local/extra.json", r#"{"x": 1}"#);
    t.write(
        "config.yaml",
        format!(
            "vault: {{ address: \"http://{}\" }}\n\
             sources:\n\
             \x20 platform: {{ vault: {{ mount: platform }} }}\n\
             \x20 local: {{ file: {{ path: ./local }} }}\n\
             targets:\n\
             \x20 Out: {{ file: {{ path: ./out }}, imports: [platform] }}\n\
             \x20 Other: {{ file: {{ path: ./other }}, imports: [local] }}\n\
             pipeline:\n\
             \x20 sync: {{ delete_orphans: true }}\n\
             \x20 # The breaker would open after 5 failures and refuse the 6th attempt; this test\n\
             \x20 # counts retries, so it keeps the breaker out of the way.\n\
             \x20 resilience: {{ retries: {{ max_attempts: 6, base_delay: 10ms, max_delay: 100ms }}, circuit_breaker: {{ failures: 100 }} }}\n",
            vault_proxy.addr
        ),
    );
    t.args(&["pipeline"]).var("VAULT_TOKEN", &vault.root_token).code(0);
    let before: BTreeMap<String, String> = ["alpha", "beta", "gamma"]
        .iter()
        .map(|p| ((*p).to_owned(), t.read(&format!("out/{p}.json"))))
        .collect();

    // Alpha changes; then the run reads `beta` only after the server was sealed: the proxy holds
    // that read until the test has sealed the server and sent the release request.
    write("alpha", 0, 2).await;
    let release = vault_proxy
        .add_rule(Rule {
            path: Some("^/v1/sys/health\\?sealed=now$".into()),
            ..Rule::default()
        })
        .unwrap();
    let beta_reads = vault_proxy
        .add_rule(Rule {
            method: Some("GET".into()),
            path: Some("^/v1/platform/data/beta(\\?|$)".into()),
            fault: Fault {
                hold: Some(Hold {
                    until_rule: release,
                    matched: 1,
                    timeout_ms: 30_000,
                }),
                ..Fault::default()
            },
            times: Some(1),
            ..Rule::default()
        })
        .unwrap();
    let mut args = vec!["pipeline"];
    args.extend_from_slice(OBSERVED);
    // Output goes to files (a pipe nobody reads while the test waits could fill up and stall
    // the run); the run is killed if the test fails before it ends.
    let (stdout, stderr) = (t.path().join("run.stdout"), t.path().join("run.stderr"));
    let child = t
        .args(&args)
        .var("VAULT_TOKEN", &vault.root_token)
        .command()
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("start secretsync");
    let mut child = KilledOnDrop(child);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while vault_proxy.rule_stats(beta_reads).unwrap().matched == 0 {
        assert!(std::time::Instant::now() < deadline, "the run never read `beta`");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    vault.seal().await;
    let released = reqwest::get(format!("http://{}/v1/sys/health?sealed=now", vault_proxy.addr))
        .await
        .unwrap();
    assert_eq!(released.status().as_u16(), 503, "the real server is sealed");
    let status = tokio::task::block_in_place(|| child.0.wait()).unwrap();
    let out = Output {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&stdout).unwrap(),
        stderr: std::fs::read_to_string(&stderr).unwrap(),
    };
    t.assert_no_canary(&out);
    assert_eq!(out.code, 2, "{}", out.snapshot());
    assert_eq!(
        vault_proxy.rule_stats(beta_reads).unwrap().matched,
        6,
        "the read of `beta` was tried 6 times against the sealed server, then given up"
    );
    let report = t.report();
    let out_target = target_in(&report, "Out");
    assert_eq!(out_target["status"], "failed", "{out_target:#}");
    let error = out_target["error"].as_str().unwrap();
    assert!(error.contains("status 503: Vault is sealed"), "{error}");
    assert!(error.contains("gave up after 6 attempts"), "{error}");
    for (path, text) in &before {
        assert_eq!(
            &t.read(&format!("out/{path}.json")),
            text,
            "`{path}` untouched: no partial push (alpha's new value withheld) and no delete"
        );
    }
    assert_eq!(
        target_in(&report, "Other")["status"],
        "ok",
        "a target not importing Vault is synced"
    );
    assert!(t.exists("other/extra.json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_apply_stops_new_writes_reports_and_a_rerun_converges() {
    let t = Scenario::new().await;
    let target = t.one_target(30, None);
    // Slow writes, so the run is still applying when the signal comes.
    t.slow_creates(150);
    let mut args = vec!["pipeline", "-o", "json"];
    args.extend_from_slice(OBSERVED);
    let child = t.args(&args).spawn();
    // A few writes out, then what Kubernetes sends a pod.
    let output = t.terminate_after_creates(child, 3).await;
    t.assert_no_canary(&output);
    assert_eq!(output.code, 130, "{}", output.snapshot());
    assert!(output.stderr.contains("terminated (SIGTERM)"), "{}", output.stderr);
    let report: Value = serde_json::from_str(&output.stdout).expect("the JSON report");
    assert_eq!(report["outcome"], "interrupted", "{report:#}");
    let changes = report["targets"][0]["changes"].as_array().expect("changes").clone();
    let result_of = |c: &Value| c["result"].as_str().unwrap_or("none").to_owned();
    let applied = changes.iter().filter(|c| result_of(c) == "applied").count();
    let pending = changes.iter().filter(|c| result_of(c) == "not_attempted").count();
    assert!(applied >= 3 && pending >= 1, "{changes:#?}");
    assert_eq!(
        applied + pending,
        30,
        "every change is either applied or pending: {changes:#?}"
    );
    let sm = secrets_in(&t.s, &target).await;
    assert_eq!(names(&sm).await.len(), applied, "the report matches what was written");

    let before = calls(&t.proxy);
    let rerun = t.observed_pipeline(&[]);
    assert_eq!(rerun.code, 0, "{}", rerun.snapshot());
    let made = since(&before, &calls(&t.proxy));
    assert_eq!(
        made.get("CreateSecret"),
        Some(&(pending as u64)),
        "only what was pending: {made:?}"
    );
    assert_eq!(names(&sm).await.len(), 30);
}
