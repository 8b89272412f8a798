//! Benchmark: a no-op sync of 1,000 secrets into 10 AWS accounts (issue #5's target: per
//! account at most ⌈N/100⌉ `ListSecrets` + ⌈N/20⌉ `BatchGetSecretValue` calls, plus the role
//! assumption), with 20 ms latency added to every AWS call by a fault proxy.
//!
//! It needs moto: it uses the testbed (`scripts/testbed up`, started if it is not running).
//! The first run creates the secrets without latency; the measured runs change nothing. The
//! engine runs as the binary runs it: a pipeline file, stores from `BuildContext`, `Engine`.
//! Run with `cargo bench --bench aws_sync`; results go in `docs/benchmarks.md`.

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]
#![expect(clippy::cast_precision_loss, reason = "ratios for display")]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secretsync::config::{Pipeline, load_str};
use secretsync::engine::{Engine, RunOptions, Stores};
use secretsync::report::NoEvents;
use secretsync::store::BuildContext;
use testbed::proxy::{Fault, Flavor, Rule};
use testbed::support::{AwsAccount, Services, random_account_id};
use tokio_util::sync::CancellationToken;

const SECRETS: usize = 1_000;
const ACCOUNTS: usize = 10;
const LATENCY_MS: u64 = 20;

fn vars(caller: &AwsAccount, endpoint: &str) -> Vec<(String, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID".to_owned(), caller.access_key_id.clone()),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), caller.secret_access_key.clone()),
        ("AWS_SESSION_TOKEN".to_owned(), caller.session_token.clone()),
        ("AWS_ENDPOINT_URL".to_owned(), endpoint.to_owned()),
        ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
    ]
}

/// One run of the whole pipeline through `endpoint`; the wall time and whether all was well.
async fn run(pipeline: &Pipeline, vars: Vec<(String, String)>) -> (Duration, String, u8) {
    let started = Instant::now();
    let lookup = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let context = BuildContext::with_env(pipeline, Arc::new(lookup), None);
    let mut stores = Stores::default();
    for (name, source) in &pipeline.sources {
        let built = context.source(source, false).await;
        stores.sources.insert(name.clone(), built);
    }
    for (name, target) in &pipeline.targets {
        let built = context.target(target, None).await;
        stores.targets.insert(name.clone(), built);
    }
    let options = RunOptions {
        dry_run: false,
        merge_phase: true,
        sync_phase: true,
        selected: pipeline.targets.keys().cloned().collect(),
        merge_parallel: pipeline.settings.merge_parallel,
        sync_parallel: pipeline.settings.sync_parallel,
        continue_on_error: true,
        delete_orphans: false,
        max_deletes: 50,
        allow_empty_sources: false,
        adopt: false,
        keep_values: false,
        rollback: None,
    };
    let report = Engine::new(pipeline, &stores, &options, &NoEvents, CancellationToken::new())
        .run()
        .await;
    let s = report.summary();
    let summary = format!(
        "{} created, {} updated, {} unchanged, {} failed",
        s.counts.create, s.counts.update, s.counts.unchanged, s.targets_failed
    );
    (started.elapsed(), summary, report.exit_code(true))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let services = Services::get();
    let caller = services.aws_account().await;
    let dir = tempfile::tempdir().expect("temp dir");
    for i in 0..SECRETS {
        let path = dir.path().join(format!("src/team-{}/service-{i:04}.json", i % 10));
        std::fs::create_dir_all(path.parent().expect("parent")).expect("folders");
        std::fs::write(
            &path,
            format!(
                r#"{{"user":"svc-{i}","password":"p-{i:08}","port":{}}}"#,
                5000 + i % 100
            ),
        )
        .expect("source file");
    }
    let mut yaml = format!(
        "sources: {{ files: {{ file: {{ path: {} }} }} }}\ntargets:\n",
        dir.path().join("src").display()
    );
    for n in 0..ACCOUNTS {
        let _ = writeln!(
            yaml,
            "  Account{n:02}: {{ account_id: \"{}\", imports: [files], tags: {{ env: bench }} }}",
            random_account_id()
        );
    }
    let pipeline = load_str(&yaml, Path::new("bench.yaml"), dir.path(), &|_| None).expect("valid bench pipeline");

    let seeding = run(&pipeline, vars(&caller, &services.aws_endpoint)).await;
    println!(
        "seeded {SECRETS} secrets into {ACCOUNTS} accounts in {:.1} s ({})",
        seeding.0.as_secs_f64(),
        seeding.1
    );
    assert_eq!(seeding.2, 1, "the first run creates everything");

    let proxy = testbed::proxy::start(
        "127.0.0.1:0".parse().expect("loopback"),
        &services.aws_endpoint,
        Flavor::Aws,
    )
    .await
    .expect("proxy starts");
    proxy
        .add_rule(Rule {
            fault: Fault {
                latency_ms: Some(LATENCY_MS),
                ..Fault::default()
            },
            ..Rule::default()
        })
        .expect("latency rule");
    let endpoint = format!("http://{}", proxy.addr);
    let mut times = Vec::new();
    let mut per_run: BTreeMap<String, u64> = BTreeMap::new();
    for round in 0..3 {
        let before: BTreeMap<String, u64> = proxy
            .counts()
            .into_iter()
            .map(|((_, op), c)| (op, c.requests))
            .collect();
        let (elapsed, summary, code) = run(&pipeline, vars(&caller, &endpoint)).await;
        assert_eq!(code, 0, "a no-op run: {summary}");
        times.push(elapsed);
        if round == 0 {
            for ((_, op), count) in proxy.counts() {
                per_run.insert(op.clone(), count.requests - before.get(&op).copied().unwrap_or(0));
            }
        }
    }
    times.sort();
    let total: u64 = per_run.values().sum();
    let budget = ACCOUNTS as u64 * (SECRETS.div_ceil(100) + SECRETS.div_ceil(20) + 1) as u64 + 1;
    println!("\n| Operation | Calls per no-op run | Per account |");
    println!("|---|---:|---:|");
    for (op, n) in &per_run {
        println!("| {op} | {n} | {:.1} |", *n as f64 / ACCOUNTS as f64);
    }
    println!("| **total** | **{total}** | {:.1} |", total as f64 / ACCOUNTS as f64);
    println!(
        "\nbudget: {budget} calls ({ACCOUNTS} × (⌈{SECRETS}/100⌉ + ⌈{SECRETS}/20⌉ + 1 AssumeRole) + 1 GetCallerIdentity)"
    );
    println!(
        "wall time with {LATENCY_MS} ms per call: median {:.2} s (runs: {})",
        times[1].as_secs_f64(),
        times
            .iter()
            .map(|t| format!("{:.2} s", t.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(total <= budget, "{total} calls is over the budget of {budget}");
}
