//! Benchmark: listing 10,000 Vault secrets in a tree 6 levels deep, with 10 ms latency added
//! to every Vault request by the testbed's fault proxy — the concurrent breadth-first walk
//! against a walk with one request in flight (issue #4's target: ≥ 8× faster).
//!
//! Everything runs on loopback: a private OpenBao server (the real Vault API, `bao server -dev`,
//! from the testbed's `.venv`), a fault proxy in front of it in this process, and the Vault
//! source store built from a pipeline file the way the binary builds it. Run with
//! `cargo bench --bench vault_listing`; results go in `docs/benchmarks.md`.

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secretsync::config::load_str;
use secretsync::store::BuildContext;
use serde_json::json;
use testbed::proxy::{Fault, Flavor, Rule};
use testbed::support::vault_request;

/// Folders per folder at each of the five folder levels; secrets sit at level 6.
const FANOUT: usize = 4;
const FOLDER_LEVELS: u32 = 5;
const SECRETS_PER_LEAF: usize = 10;
const LATENCY_MS: u64 = 10;

/// Every secret's path: `f0/f1/f2/f3/f4/sN` (5 folders, the secret at depth 6).
fn secret_paths() -> Vec<String> {
    let leaves = FANOUT.pow(FOLDER_LEVELS);
    let mut out = Vec::with_capacity(leaves * SECRETS_PER_LEAF);
    for leaf in 0..leaves {
        let mut folders = Vec::new();
        let mut n = leaf;
        for level in 0..FOLDER_LEVELS {
            folders.push(format!("l{level}-{}", n % FANOUT));
            n /= FANOUT;
        }
        for s in 0..SECRETS_PER_LEAF {
            out.push(format!("{}/secret-{s}", folders.join("/")));
        }
    }
    out
}

async fn list_once(proxy: &str, token: &str, concurrency: usize) -> (Duration, usize) {
    let yaml = format!(
        "vault: {{ address: '{proxy}', list_concurrency: {concurrency}, auth: {{ token: {{ token: '${{TOKEN}}' }} }} }}\n\
         sources: {{ tree: {{ vault: {{ mount: bench }} }} }}\n\
         targets: {{ T: {{ imports: [tree], file: {{ path: ./unused }} }} }}\n"
    );
    let token = token.to_owned();
    let lookup = move |name: &str| (name == "TOKEN").then(|| token.clone());
    let pipeline = load_str(&yaml, Path::new("bench.yaml"), Path::new("."), &lookup).expect("valid bench pipeline");
    let context = BuildContext::with_env(&pipeline, Arc::new(lookup), None);
    let store = context
        .source(&pipeline.sources["tree"], false)
        .await
        .expect("source builds");
    let started = Instant::now();
    let listing = store.list().await.expect("listing succeeds");
    (started.elapsed(), listing.entries.len())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let loopback = "127.0.0.1:0".parse().expect("loopback address");
    let vault = testbed::openbao::OpenBao::start("bench-root").await;
    let direct = vault.addr.clone();
    let token = vault.root_token.clone();
    vault.mount_kv("bench", 2).await;
    let paths = secret_paths();
    let seeding = Instant::now();
    for chunk in paths.chunks(64) {
        let writes = chunk.iter().map(|p| {
            let (direct, token) = (direct.clone(), token.clone());
            async move {
                let data = json!({ "data": { "value": p } });
                vault_request(&direct, &token, "POST", &format!("bench/data/{p}"), Some(data))
                    .await
                    .0
            }
        });
        for status in futures_util::future::join_all(writes).await {
            assert!(status < 300, "seeding failed: {status}");
        }
    }
    let folders: usize = (1..=FOLDER_LEVELS).map(|l| FANOUT.pow(l)).sum();
    println!(
        "seeded {} secrets in {} folders (+ the mount root), 6 levels deep, in {:.1} s",
        paths.len(),
        folders,
        seeding.elapsed().as_secs_f64()
    );

    let proxy = testbed::proxy::start(loopback, &direct, Flavor::Vault)
        .await
        .expect("proxy starts");
    proxy
        .add_rule(Rule {
            service: Some("vault".to_owned()),
            fault: Fault {
                latency_ms: Some(LATENCY_MS),
                ..Fault::default()
            },
            ..Rule::default()
        })
        .expect("latency rule");
    let through_proxy = format!("http://{}", proxy.addr);

    println!("\n| list_concurrency | time (median of 3) | secrets listed | LIST requests | speed-up vs 1 |");
    println!("|---:|---:|---:|---:|---:|");
    let mut baseline = None;
    for concurrency in [1, 4, 8, 16, 32] {
        let mut times = Vec::new();
        let mut listed = 0;
        let lists_before = lists(&proxy);
        for _ in 0..3 {
            let (elapsed, n) = list_once(&through_proxy, &token, concurrency).await;
            times.push(elapsed);
            listed = n;
        }
        let requests = (lists(&proxy) - lists_before) / 3;
        times.sort();
        let median = times[1];
        let base = *baseline.get_or_insert(median);
        println!(
            "| {concurrency} | {:.2} s | {listed} | {requests} | {:.1}× |",
            median.as_secs_f64(),
            base.as_secs_f64() / median.as_secs_f64()
        );
        assert_eq!(listed, paths.len(), "every secret is listed");
    }
}

/// LIST requests the proxy has seen so far.
fn lists(proxy: &testbed::proxy::RunningProxy) -> u64 {
    proxy
        .counts()
        .iter()
        .filter(|((service, operation), _)| service == "vault" && operation.starts_with("LIST "))
        .map(|(_, count)| count.requests)
        .sum()
}
