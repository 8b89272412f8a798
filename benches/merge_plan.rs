//! Benchmark: merge + plan of 10,000 secrets × 100 targets in memory (issue #2's target:
//! under 1 s and under 200 MB).
//!
//! Two measurements:
//! - the pure `merge_layers` + `plan` functions on one thread (reads excluded): the cost of
//!   secretsync's own logic;
//! - the real engine in dry-run mode (read sources and targets, merge, plan; no writes) over
//!   in-memory stores, with the peak resident memory of the run.
//!
//! Target stores are synthetic: they hold no per-secret state and build fresh values on every
//! read, as a deserialised API response would be, so the memory figure is secretsync's and not
//! a fixture's. Run with `cargo bench --bench merge_plan`; results go in `docs/benchmarks.md`.

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]
#![expect(clippy::cast_precision_loss, reason = "megabytes for display")]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use secretsync::config::load_str;
use secretsync::engine::{Engine, RunOptions, Stores};
use secretsync::merge::{merge_layers, merge_values};
use secretsync::model::{SecretPath, SecretSet, SecretValue};
use secretsync::plan::{PlanOptions, plan};
use secretsync::report::NoEvents;
use secretsync::store::{
    Capabilities, EntryMeta, Fetched, Listing, MemoryStore, Owner, Store, StoreError, WritableStore,
};
use tokio_util::sync::CancellationToken;

const SECRETS: usize = 10_000;
const TARGETS: usize = 100;
const ROOTS: usize = 10;
const ORPHANS: usize = 50;

fn value(i: usize, flavour: &str) -> SecretValue {
    SecretValue::from_string(format!(
        r#"{{"user":"svc-{i}","password":"{flavour}-{i:08}-xxxxxxxxxxxxxxxx","host":"db-{}.internal","port":{},"options":{{"ssl":true,"pool":{}}}}}"#,
        i % 97,
        5000 + i % 1000,
        i % 50
    ))
}

fn path(i: usize) -> SecretPath {
    SecretPath::parse(&format!("team-{}/service-{}/secret-{i}", i % 20, i % 300)).unwrap()
}

fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the kernel's peak-RSS counter (Linux), so the next reading covers only what follows.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn config() -> String {
    let mut yaml = String::from(
        "sources:\n  platform: { file: { path: ./p } }\n  team: { file: { path: ./t } }\n  overrides: { file: { path: ./o } }\ntargets:\n",
    );
    for r in 0..ROOTS {
        let _ = writeln!(
            yaml,
            "  root{r:02}: {{ file: {{ path: ./out/root{r:02} }}, imports: [platform, team] }}"
        );
    }
    for t in ROOTS..TARGETS {
        let _ = writeln!(
            yaml,
            "  t{t:03}: {{ file: {{ path: ./out/t{t:03} }}, imports: [root{:02}, overrides] }}",
            t % ROOTS
        );
    }
    yaml
}

/// The three sources' secrets and the position of every path (for the drift pattern).
struct World {
    layers: [SecretSet; 3],
    paths: BTreeMap<SecretPath, usize>,
}

impl fmt::Debug for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("World")
    }
}

fn world() -> World {
    let (mut platform, mut team, mut overrides) = (SecretSet::new(), SecretSet::new(), SecretSet::new());
    for i in 0..SECRETS {
        if i < 6_000 {
            platform.insert(path(i), Arc::new(value(i, "platform")));
        }
        if i >= 4_000 {
            team.insert(path(i), Arc::new(value(i, "team")));
        }
        if i % 20 == 0 {
            overrides.insert(
                path(i),
                Arc::new(SecretValue::from_string(format!(r#"{{"password":"override-{i}"}}"#))),
            );
        }
    }
    let paths = platform
        .keys()
        .chain(team.keys())
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .enumerate()
        .map(|(n, p)| (p, n))
        .collect();
    World {
        layers: [platform, team, overrides],
        paths,
    }
}

/// One target account, simulated (see the module docs).
#[derive(Debug)]
struct Synthetic {
    name: String,
    owner: Arc<str>,
    derived: bool,
    world: Arc<World>,
}

impl Synthetic {
    fn fresh_value(&self, path: &SecretPath) -> Option<SecretValue> {
        let n = *self.world.paths.get(path)?;
        if n % 200 == 1 {
            return None;
        }
        if n % 100 == 0 {
            return Some(value(n, "stale"));
        }
        let layers = if self.derived {
            &self.world.layers[..]
        } else {
            &self.world.layers[..2]
        };
        let merged = layers
            .iter()
            .filter_map(|l| l.get(path))
            .fold(None, |acc: Option<Arc<SecretValue>>, v| {
                Some(acc.map_or_else(|| Arc::clone(v), |a| merge_values(&a, v)))
            })?;
        Some((*merged).clone())
    }
}

#[async_trait]
impl Store for Synthetic {
    fn describe(&self) -> String {
        format!("synthetic:{}", self.name)
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            ownership: true,
            ..Capabilities::default()
        }
    }
    async fn list(&self) -> Result<Listing, StoreError> {
        let meta = EntryMeta {
            owner: Owner::Target(Arc::clone(&self.owner)),
            pending_deletion: false,
            drift: None,
            labels: None,
        };
        let mut listing = Listing::default();
        for (p, n) in &self.world.paths {
            if n % 200 != 1 {
                listing.entries.insert(p.clone(), meta.clone());
            }
        }
        for i in 0..ORPHANS {
            listing
                .entries
                .insert(SecretPath::parse(&format!("orphans/{i}")).unwrap(), meta.clone());
        }
        Ok(listing)
    }
    async fn get(&self, path: &SecretPath) -> Result<Option<SecretValue>, StoreError> {
        Ok(self.fresh_value(path))
    }
    async fn get_many(&self, paths: &[SecretPath]) -> Result<Fetched, StoreError> {
        Ok(paths
            .iter()
            .map(|p| (p.clone(), self.fresh_value(p).map(Arc::new)))
            .collect())
    }
}

#[async_trait]
impl WritableStore for Synthetic {
    async fn put(&self, _: &SecretPath, _: &SecretValue, _: &str) -> Result<secretsync::store::Receipt, StoreError> {
        unreachable!("the benchmark is a dry run")
    }
    async fn delete(&self, _: &SecretPath, _: &str) -> Result<secretsync::store::Receipt, StoreError> {
        unreachable!("the benchmark is a dry run")
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let pipeline =
        load_str(&config(), Path::new("bench.yaml"), Path::new("/nowhere"), &|_| None).expect("bench config");
    let world = Arc::new(world());
    let sources: BTreeMap<String, Arc<MemoryStore>> = ["platform", "team", "overrides"]
        .iter()
        .zip(&world.layers)
        .map(|(name, set)| {
            let store = Arc::new(MemoryStore::new(name));
            for (p, v) in set {
                store.insert_shared(p, Arc::clone(v), None);
            }
            ((*name).to_owned(), store)
        })
        .collect();
    let targets: BTreeMap<String, Arc<Synthetic>> = pipeline
        .targets
        .keys()
        .map(|name| {
            let target = Synthetic {
                name: name.clone(),
                owner: name.as_str().into(),
                derived: !name.starts_with("root"),
                world: Arc::clone(&world),
            };
            (name.clone(), Arc::new(target))
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    // 1. secretsync's own logic: merge and plan, one thread, with the reads done beforehand.
    let mut pure_times = Vec::new();
    let mut merge_times = Vec::new();
    for _ in 0..3 {
        let [platform, team, overrides] = &world.layers;
        let mut measured = Duration::ZERO;
        let mut merging = Duration::ZERO;
        let mut planned = 0u64;
        let started = Instant::now();
        let root = merge_layers([platform, team]).expect("bench values are small");
        measured += started.elapsed();
        for (name, store) in &targets {
            let started = Instant::now();
            let desired = if store.derived {
                merge_layers([&root, overrides]).expect("bench values are small")
            } else {
                root.clone()
            };
            measured += started.elapsed();
            merging += started.elapsed();
            let listing = runtime.block_on(store.list()).unwrap();
            let wanted: Vec<SecretPath> = desired
                .keys()
                .filter(|p| listing.entries.contains_key(*p))
                .cloned()
                .collect();
            let actual: BTreeMap<SecretPath, Arc<SecretValue>> = runtime
                .block_on(store.get_many(&wanted))
                .unwrap()
                .into_iter()
                .filter_map(|(p, v)| v.map(|v| (p, v)))
                .collect();
            let started = Instant::now();
            let p = plan(
                &desired,
                &listing,
                &actual,
                store.as_ref(),
                PlanOptions {
                    target: name,
                    delete_orphans: true,
                    adopt: false,
                    complete: true,
                    filter: None,
                },
            );
            measured += started.elapsed();
            planned += p.counts().changes() + p.unchanged;
        }
        assert_eq!(planned, (TARGETS * (SECRETS + ORPHANS)) as u64);
        pure_times.push(measured);
        merge_times.push(merging);
    }

    if std::env::var_os("SECRETSYNC_BENCH_PURE_ONLY").is_some() {
        println!(
            "pure: {:.0} ms, of which merging {:.0} ms",
            median(pure_times).as_secs_f64() * 1000.0,
            median(merge_times).as_secs_f64() * 1000.0
        );
        return;
    }

    // 2. What the synthetic stores cost alone (listing and building fresh values for every
    //    target once), to read the engine's time against.
    let started = Instant::now();
    for store in targets.values() {
        let listing = runtime.block_on(store.list()).unwrap();
        let paths: Vec<SecretPath> = listing.entries.keys().cloned().collect();
        drop(runtime.block_on(store.get_many(&paths)).unwrap());
    }
    let reads = started.elapsed();

    // 3. The engine, end to end, in dry-run mode.
    let stores = Stores {
        sources: sources
            .iter()
            .map(|(k, v)| (k.clone(), Ok(Arc::clone(v) as Arc<dyn Store>)))
            .collect(),
        targets: targets
            .iter()
            .map(|(k, v)| (k.clone(), Ok(Arc::clone(v) as Arc<dyn WritableStore>)))
            .collect(),
        merge: None,
    };
    let options = RunOptions {
        dry_run: true,
        merge_phase: true,
        sync_phase: true,
        selected: pipeline.targets.keys().cloned().collect(),
        merge_parallel: 4,
        sync_parallel: 4,
        continue_on_error: true,
        delete_orphans: true,
        max_deletes: 1_000_000,
        allow_empty_sources: false,
        adopt: false,
        keep_values: false,
        rollback: None,
    };
    let baseline_kb = status_kb("VmRSS:").unwrap_or(0);
    let peak_measurable = reset_peak();
    let mut engine_times = Vec::new();
    let mut summary = None;
    let mut peak_kb = 0;
    for run in 0..3 {
        let started = Instant::now();
        let report =
            runtime.block_on(Engine::new(&pipeline, &stores, &options, &NoEvents, CancellationToken::new()).run());
        engine_times.push(started.elapsed());
        if run == 0 {
            peak_kb = status_kb("VmHWM:").unwrap_or(0);
        }
        summary = Some(report.summary());
    }

    let s = summary.unwrap();
    let mb = |kb: u64| format!("{:.0} MB", kb as f64 / 1024.0);
    println!("## merge + plan, {SECRETS} secrets × {TARGETS} targets (in memory)\n");
    println!("| Measurement | Result |\n|---|---|");
    println!(
        "| `merge_layers` + `plan` for all targets, one thread (median of 3) | {:.0} ms |",
        median(pure_times).as_secs_f64() * 1000.0
    );
    println!(
        "| of which merging | {:.0} ms |",
        median(merge_times).as_secs_f64() * 1000.0
    );
    println!(
        "| engine dry run: read, merge, plan (median of 3) | {:.0} ms |",
        median(engine_times).as_secs_f64() * 1000.0
    );
    println!(
        "| of which the synthetic stores' own reads (one thread) | {:.0} ms |",
        reads.as_secs_f64() * 1000.0
    );
    if peak_measurable {
        println!(
            "| peak RSS of the process during the first engine run | {} |",
            mb(peak_kb)
        );
        println!(
            "| RSS before the run (binary, sources, runtime) | {} |",
            mb(baseline_kb)
        );
    } else {
        println!("| peak RSS | not measurable here (no /proc/self/clear_refs) |");
    }
    println!(
        "| planned per run | {} create, {} update, {} delete, {} unchanged |",
        s.counts.create, s.counts.update, s.counts.delete, s.counts.unchanged
    );
}
