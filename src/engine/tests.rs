//! Engine behaviour against memory stores: what runs, what is skipped, what is written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use tokio_util::sync::CancellationToken;

use super::{Engine, RunOptions, Stores};
use crate::config::{Pipeline, load_str};
use crate::failure::ErrorClass;
use crate::model::{SecretPath, SecretValue};
use crate::plan::{Action, ApplyResult};
use crate::report::{NoEvents, Phase, RunReport, TargetStatus};
use crate::store::memory::FailOn;
use crate::store::{MemoryMergeStore, MemoryStore, MergeStore, Owner, Store, WritableStore};

fn p(s: &str) -> SecretPath {
    SecretPath::parse(s).unwrap()
}

fn json(s: &str) -> SecretValue {
    SecretValue::from_string(s.to_owned())
}

const CONFIG: &str = "
sources:
  base: { file: { path: ./base } }
  extra: { file: { path: ./extra } }
  prod-overrides: { file: { path: ./prod } }
targets:
  Staging: { file: { path: ./t/staging }, imports: [base, extra] }
  Production: { file: { path: ./t/production }, imports: [Staging, prod-overrides] }
  Review: { file: { path: ./t/review }, imports: [Production] }
  Other: { file: { path: ./t/other }, imports: [base] }
";

struct World {
    pipeline: Pipeline,
    sources: BTreeMap<String, Arc<MemoryStore>>,
    targets: BTreeMap<String, Arc<MemoryStore>>,
    merge: Option<Arc<MemoryMergeStore>>,
}

impl World {
    fn new(config: &str) -> Self {
        let pipeline = load_str(config, Path::new("p.yaml"), Path::new("/nowhere"), &|_| None).unwrap();
        let sources = pipeline
            .sources
            .keys()
            .map(|k| (k.clone(), Arc::new(MemoryStore::new(k))))
            .collect();
        let targets = pipeline
            .targets
            .keys()
            .map(|k| (k.clone(), Arc::new(MemoryStore::new(k))))
            .collect();
        Self {
            pipeline,
            sources,
            targets,
            merge: None,
        }
    }

    fn standard() -> Self {
        let w = Self::new(CONFIG);
        w.sources["base"].insert(&p("db"), json(r#"{"user":"app","hosts":["a"]}"#), None);
        w.sources["base"].insert(&p("token"), SecretValue::Text("base-token".into()), None);
        w.sources["extra"].insert(&p("db"), json(r#"{"hosts":["b"],"port":5432}"#), None);
        w.sources["prod-overrides"].insert(&p("db"), json(r#"{"port":6543}"#), None);
        w.sources["prod-overrides"].insert(&p("token"), SecretValue::Text("prod-token".into()), None);
        w
    }

    fn stores(&self) -> Stores {
        Stores {
            sources: self
                .sources
                .iter()
                .map(|(k, v)| (k.clone(), Ok(Arc::clone(v) as Arc<dyn Store>)))
                .collect(),
            targets: self
                .targets
                .iter()
                .map(|(k, v)| (k.clone(), Ok(Arc::clone(v) as Arc<dyn WritableStore>)))
                .collect(),
            merge: self.merge.as_ref().map(|m| Arc::clone(m) as Arc<dyn MergeStore>),
        }
    }

    fn options(&self) -> RunOptions {
        RunOptions {
            dry_run: false,
            merge_phase: true,
            sync_phase: true,
            selected: self.pipeline.targets.keys().cloned().collect(),
            merge_parallel: 2,
            sync_parallel: 2,
            continue_on_error: true,
            delete_orphans: false,
            max_deletes: 50,
            allow_empty_sources: false,
            adopt: false,
            keep_values: false,
            rollback: None,
        }
    }

    async fn run(&self, options: &RunOptions) -> RunReport {
        let stores = self.stores();
        Engine::new(&self.pipeline, &stores, options, &NoEvents, CancellationToken::new())
            .run()
            .await
    }
}

fn status<'a>(report: &'a RunReport, name: &str) -> &'a TargetStatus {
    &report.targets.iter().find(|t| t.name == name).unwrap().status
}

#[tokio::test]
async fn merges_in_import_order_with_inheritance() {
    let w = World::standard();
    let report = w.run(&w.options()).await;
    assert_eq!(report.exit_code(false), 0);
    let staging = w.targets["Staging"].snapshot();
    assert!(staging[&p("db")].semantic_eq(&json(r#"{"user":"app","hosts":["a","b"],"port":5432}"#)));
    let production = w.targets["Production"].snapshot();
    assert!(production[&p("db")].semantic_eq(&json(r#"{"user":"app","hosts":["a","b"],"port":6543}"#)));
    assert!(production[&p("token")].semantic_eq(&SecretValue::Text("prod-token".into())));
    assert_eq!(w.targets["Review"].snapshot().len(), 2, "Review inherits Production");
    assert_eq!(
        w.targets["Staging"].owner(&p("db")),
        Some(Owner::Target("Staging".into()))
    );
    let again = w.run(&w.options()).await;
    assert_eq!(again.summary().changes, 0, "a second run changes nothing");
    assert_eq!(again.exit_code(true), 0);
}

#[tokio::test]
async fn a_failed_source_fails_its_importers_and_skips_their_dependents() {
    let w = World::standard();
    w.sources["extra"].fail(FailOn::List, ErrorClass::Transient);
    let report = w.run(&w.options()).await;
    assert!(
        matches!(status(&report, "Staging"), TargetStatus::Failed { phase: Phase::Merge, failure } if failure.message.contains("cannot read source `extra`"))
    );
    assert_eq!(
        status(&report, "Production"),
        &TargetStatus::Skipped {
            because: "it imports target `Staging`, which failed".into()
        }
    );
    assert_eq!(
        status(&report, "Review"),
        &TargetStatus::Skipped {
            because: "it imports target `Production`, which did not run".into()
        }
    );
    assert_eq!(
        status(&report, "Other"),
        &TargetStatus::Ok,
        "unrelated targets still run"
    );
    assert_eq!(w.targets["Other"].snapshot().len(), 2);
    for name in ["Staging", "Production", "Review"] {
        assert_eq!(w.targets[name].writes(), 0, "{name} must not receive a partial bundle");
    }
    assert_eq!(report.exit_code(false), 2);
}

#[tokio::test]
async fn a_dry_run_writes_nothing_anywhere() {
    let mut w = World::standard();
    let merge_store = Arc::new(MemoryMergeStore::default());
    // A tripwire: taking the run lock would fail every target.
    merge_store.hold_lock_elsewhere("a run that must not be waited for");
    w.merge = Some(merge_store);
    w.targets["Staging"].insert(&p("old"), SecretValue::Text("x".into()), Some("Staging"));
    let options = RunOptions {
        dry_run: true,
        delete_orphans: true,
        ..w.options()
    };
    let report = w.run(&options).await;
    assert!(report.summary().changes > 0);
    assert!(!report.has_problems(), "no lock was taken: {:?}", report.problems());
    assert_eq!(report.exit_code(true), 1);
    assert_eq!(report.exit_code(false), 0);
    for store in w.targets.values() {
        assert_eq!(store.writes(), 0);
    }
    let merge = w.merge.as_ref().unwrap();
    assert!(!merge.has_result("Staging").await.unwrap());
    assert!(merge.scope("Staging").snapshot().is_empty());
    let staging = report.targets.iter().find(|t| t.name == "Staging").unwrap();
    assert!(
        staging
            .plan
            .as_ref()
            .unwrap()
            .changes
            .iter()
            .any(|c| c.action == Action::Delete && c.path == p("old"))
    );
}

#[tokio::test]
async fn a_source_that_reads_empty_withholds_the_deletes_of_every_target_it_reaches() {
    // Review imports Staging, which reads `empty`; Other reads a source with secrets.
    let w = World::new(
        "sources:\n  empty: { file: { path: ./e } }\n  full: { file: { path: ./f } }\n\
         targets:\n  Staging: { file: { path: ./s }, imports: [empty] }\n  Review: { file: { path: ./r }, imports: [Staging] }\n  Other: { file: { path: ./o }, imports: [full] }\n",
    );
    w.sources["full"].insert(&p("keep"), SecretValue::Text("k".into()), None);
    for target in ["Staging", "Review", "Other"] {
        w.targets[target].insert(&p("owned"), SecretValue::Text("x".into()), Some(target));
    }
    let options = RunOptions {
        delete_orphans: true,
        ..w.options()
    };
    let report = w.run(&options).await;
    let guarded: Vec<&str> = report.guarded_deletes.iter().map(|g| g.target.as_str()).collect();
    assert_eq!(guarded, ["Review", "Staging"]);
    assert_eq!(report.guarded_deletes[0].because, "source `empty` read no secrets");
    assert_eq!(report.exit_code(false), 2);
    assert_eq!(w.targets["Staging"].snapshot().len(), 1, "nothing deleted");
    assert_eq!(w.targets["Review"].snapshot().len(), 1, "nothing deleted");
    assert_eq!(
        w.targets["Other"].snapshot().len(),
        1,
        "`owned` deleted, `keep` created"
    );
    assert!(report.problems().iter().any(|p| p.target.as_deref() == Some("Staging")
        && p.class == Some(ErrorClass::Guarded)
        && p.message == "1 deletes withheld because source `empty` read no secrets"
        && p.hint.as_deref() == Some("if that is intended, pass `--allow-empty-sources`")));

    let allowed = RunOptions {
        allow_empty_sources: true,
        ..options
    };
    let report = w.run(&allowed).await;
    assert!(report.guarded_deletes.is_empty());
    assert_eq!(report.exit_code(false), 0);
    assert!(w.targets["Staging"].snapshot().is_empty());
}

#[tokio::test]
async fn a_sync_only_run_from_an_empty_merged_result_withholds_the_targets_deletes() {
    let mut w =
        World::new("sources: { s: { file: { path: ./s } } }\ntargets: { T: { file: { path: ./t }, imports: [s] } }\n");
    w.merge = Some(Arc::new(MemoryMergeStore::default()));
    w.targets["T"].insert(&p("owned"), SecretValue::Text("x".into()), Some("T"));
    // The merge phase ran with an empty source while deletes were allowed: the merged result is
    // empty, and the target still owns its secret.
    w.run(&RunOptions {
        sync_phase: false,
        allow_empty_sources: true,
        ..w.options()
    })
    .await;
    let report = w
        .run(&RunOptions {
            merge_phase: false,
            delete_orphans: true,
            ..w.options()
        })
        .await;
    assert_eq!(report.guarded_deletes.len(), 1, "{:?}", report.problems());
    assert_eq!(
        report.guarded_deletes[0].because,
        "it has nothing to sync, yet owns secrets"
    );
    assert_eq!(w.targets["T"].snapshot().len(), 1);
}

#[tokio::test]
async fn too_many_deletes_withholds_every_delete() {
    let w = World::standard();
    for i in 0..3 {
        w.targets["Staging"].insert(&p(&format!("stale{i}")), SecretValue::Text("x".into()), Some("Staging"));
        w.targets["Other"].insert(&p(&format!("stale{i}")), SecretValue::Text("x".into()), Some("Other"));
    }
    let options = RunOptions {
        delete_orphans: true,
        max_deletes: 5,
        ..w.options()
    };
    let report = w.run(&options).await;
    assert_eq!(report.withheld_deletes.map(|w| (w.planned, w.max)), Some((6, 5)));
    assert_eq!(
        w.targets["Staging"].snapshot().len(),
        5,
        "no delete happened, creates did"
    );
    assert_eq!(report.exit_code(false), 2);

    let options = RunOptions {
        delete_orphans: true,
        max_deletes: 6,
        ..w.options()
    };
    let report = w.run(&options).await;
    assert_eq!(report.withheld_deletes, None);
    assert_eq!(w.targets["Staging"].snapshot().len(), 2);
    assert_eq!(report.exit_code(false), 0);
}

#[tokio::test]
async fn orphans_are_kept_unless_deletes_are_on_and_unmanaged_secrets_are_never_touched() {
    let w = World::standard();
    w.targets["Other"].insert(&p("mine"), SecretValue::Text("x".into()), Some("Other"));
    w.targets["Other"].insert(&p("human"), SecretValue::Text("x".into()), None);
    let report = w.run(&w.options()).await;
    let other = report.targets.iter().find(|t| t.name == "Other").unwrap();
    assert_eq!(other.counts().orphan, 1);
    assert!(w.targets["Other"].snapshot().contains_key(&p("mine")));
    w.run(&RunOptions {
        delete_orphans: true,
        ..w.options()
    })
    .await;
    let left = w.targets["Other"].snapshot();
    assert!(!left.contains_key(&p("mine")));
    assert!(left.contains_key(&p("human")));
}

#[tokio::test]
async fn conflicts_block_only_their_secret_and_adopt_takes_over() {
    let w = World::standard();
    w.targets["Other"].insert(&p("token"), SecretValue::Text("hand-made".into()), None);
    let report = w.run(&w.options()).await;
    let other = report.targets.iter().find(|t| t.name == "Other").unwrap();
    assert_eq!(other.counts().conflict, 1);
    assert_eq!(report.exit_code(false), 2, "a conflict needs attention");
    assert!(w.targets["Other"].snapshot()[&p("token")].semantic_eq(&SecretValue::Text("hand-made".into())));
    assert!(
        w.targets["Other"].snapshot().contains_key(&p("db")),
        "other secrets are still synced"
    );
    let report = w
        .run(&RunOptions {
            adopt: true,
            ..w.options()
        })
        .await;
    assert_eq!(report.exit_code(false), 0);
    assert_eq!(
        w.targets["Other"].owner(&p("token")),
        Some(Owner::Target("Other".into()))
    );
    assert!(w.targets["Other"].snapshot()[&p("token")].semantic_eq(&SecretValue::Text("base-token".into())));
}

#[tokio::test]
async fn stopping_on_error_skips_the_targets_that_had_not_started() {
    let w = World::standard();
    w.sources["base"].fail(FailOn::List, ErrorClass::Auth);
    let options = RunOptions {
        continue_on_error: false,
        merge_parallel: 1,
        ..w.options()
    };
    let report = w.run(&options).await;
    let failed = report
        .targets
        .iter()
        .filter(|t| matches!(t.status, TargetStatus::Failed { .. }))
        .count();
    assert_eq!(failed, 1, "the first failure stops the run");
    assert!(
        report
            .targets
            .iter()
            .any(|t| matches!(&t.status, TargetStatus::Skipped { because } if because.contains("continue_on_error")))
    );
}

#[tokio::test]
async fn target_selection_merges_ancestors_but_syncs_only_what_was_asked() {
    let w = World::standard();
    let options = RunOptions {
        selected: BTreeSet::from(["Review".to_owned()]),
        ..w.options()
    };
    let report = w.run(&options).await;
    assert_eq!(w.targets["Review"].snapshot().len(), 2);
    assert_eq!(
        w.targets["Staging"].writes() + w.targets["Production"].writes() + w.targets["Other"].writes(),
        0
    );
    let names: Vec<&str> = report.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["Staging", "Production", "Review"]);
    assert_eq!(report.summary().targets, 1);
}

#[tokio::test]
async fn the_merge_store_feeds_sync_only_runs_and_loses_stale_entries() {
    let mut w = World::standard();
    w.merge = Some(Arc::new(MemoryMergeStore::default()));
    let merge = Arc::clone(w.merge.as_ref().unwrap());
    let sync_only = RunOptions {
        merge_phase: false,
        ..w.options()
    };
    let report = w.run(&sync_only).await;
    assert!(
        matches!(status(&report, "Staging"), TargetStatus::Failed { failure, .. } if failure.hint.as_deref().is_some_and(|h| h.contains("merge phase first")))
    );

    w.run(&RunOptions {
        sync_phase: false,
        ..w.options()
    })
    .await;
    assert_eq!(merge.scope("Production").snapshot().len(), 2);
    assert!(
        w.targets.values().all(|t| t.writes() == 0),
        "merge-only writes no target"
    );
    w.sources["prod-overrides"].insert(&p("prod-only"), SecretValue::Text("p".into()), None);
    w.run(&RunOptions {
        sync_phase: false,
        ..w.options()
    })
    .await;
    assert!(merge.scope("Production").snapshot().contains_key(&p("prod-only")));
    let prod_source = Arc::new(MemoryStore::new("prod-overrides"));
    prod_source.insert(&p("db"), json(r#"{"port":6543}"#), None);
    w.sources.insert("prod-overrides".into(), prod_source);
    w.run(&RunOptions {
        sync_phase: false,
        ..w.options()
    })
    .await;
    assert!(
        !merge.scope("Production").snapshot().contains_key(&p("prod-only")),
        "stale merged entries are removed"
    );

    let report = w.run(&sync_only).await;
    assert_eq!(report.exit_code(false), 0);
    assert!(
        w.targets["Production"].snapshot()[&p("db")]
            .semantic_eq(&json(r#"{"user":"app","hosts":["a","b"],"port":6543}"#))
    );
}

#[tokio::test]
async fn a_merge_store_locked_by_another_run_fails_the_targets_before_any_write() {
    let mut w = World::standard();
    w.merge = Some(Arc::new(MemoryMergeStore::default()));
    let merge = Arc::clone(w.merge.as_ref().unwrap());
    merge.hold_lock_elsewhere("ci job 42");
    let report = w.run(&w.options()).await;
    assert_eq!(report.exit_code(false), 2);
    assert!(
        matches!(status(&report, "Staging"), TargetStatus::Failed { failure, .. } if failure.one_line().contains("locked by another run (ci job 42)")),
        "{:?}",
        status(&report, "Staging")
    );
    assert!(w.targets.values().all(|t| t.writes() == 0));
    assert_eq!(merge.scope("Staging").writes(), 0);
    let dry = w
        .run(&RunOptions {
            dry_run: true,
            ..w.options()
        })
        .await;
    assert!(dry.errors.is_empty(), "a dry run writes nothing, so it needs no lock");
}

#[tokio::test]
async fn a_merge_that_fails_halfway_is_never_read_by_sync_only() {
    let mut w = World::standard();
    w.merge = Some(Arc::new(MemoryMergeStore::default()));
    let merge = Arc::clone(w.merge.as_ref().unwrap());
    let merge_only = RunOptions {
        sync_phase: false,
        ..w.options()
    };
    w.run(&merge_only).await;
    assert!(merge.has_result("Staging").await.unwrap());
    let writes = merge.scope("Staging").writes();
    w.run(&merge_only).await;
    assert_eq!(
        merge.scope("Staging").writes(),
        writes,
        "an unchanged merged result is not rewritten"
    );

    w.sources["base"].insert(&p("new"), SecretValue::Text("n".into()), None);
    merge.scope("Staging").fail(FailOn::Write, ErrorClass::Transient);
    let report = w.run(&merge_only).await;
    assert!(matches!(status(&report, "Staging"), TargetStatus::Failed { .. }));
    assert!(
        !merge.has_result("Staging").await.unwrap(),
        "a result being rewritten is not complete"
    );
    let report = w
        .run(&RunOptions {
            merge_phase: false,
            ..w.options()
        })
        .await;
    assert!(
        matches!(status(&report, "Staging"), TargetStatus::Failed { failure, .. } if failure.hint.as_deref().is_some_and(|h| h.contains("merge phase first"))),
        "sync-only refuses the half-written result"
    );
}

#[tokio::test]
async fn a_desired_secret_scheduled_for_deletion_is_restored() {
    let w = World::standard();
    w.run(&w.options()).await;
    let other = &w.targets["Other"];
    other.schedule_deletion(&p("db"));
    assert!(!other.snapshot().contains_key(&p("db")));
    let report = w.run(&w.options()).await;
    let counts = report.targets.iter().find(|t| t.name == "Other").unwrap().counts();
    assert_eq!((counts.restore, counts.create), (1, 0), "restored, not created again");
    assert!(other.snapshot()[&p("db")].semantic_eq(&json(r#"{"user":"app","hosts":["a"]}"#)));
    assert_eq!(report.exit_code(true), 1);
    assert_eq!(w.run(&w.options()).await.summary().changes, 0);
}

#[tokio::test]
async fn a_failed_write_fails_its_target_and_the_run() {
    let w = World::standard();
    w.targets["Other"].fail(FailOn::Write, ErrorClass::Auth);
    let report = w.run(&w.options()).await;
    assert!(matches!(
        status(&report, "Other"),
        TargetStatus::Failed {
            phase: Phase::Apply,
            ..
        }
    ));
    let other = report.targets.iter().find(|t| t.name == "Other").unwrap();
    assert!(
        other
            .plan
            .as_ref()
            .unwrap()
            .changes
            .iter()
            .all(|c| matches!(c.result, Some(ApplyResult::Failed(_))))
    );
    assert_eq!(status(&report, "Staging"), &TargetStatus::Ok);
    assert_eq!(report.exit_code(false), 2);
}

#[tokio::test]
async fn an_interrupted_run_stops_writing_and_exits_130() {
    let w = World::standard();
    let stores = w.stores();
    let token = CancellationToken::new();
    token.cancel();
    let report = Engine::new(&w.pipeline, &stores, &w.options(), &NoEvents, token)
        .run()
        .await;
    assert!(report.interrupted);
    assert_eq!(report.exit_code(true), 130);
    assert!(w.targets.values().all(|t| t.writes() == 0));
}

fn arb_value() -> impl Strategy<Value = SecretValue> {
    prop_oneof![
        "[a-c]{0,3}".prop_map(SecretValue::Text),
        prop::collection::vec(any::<u8>(), 0..4).prop_map(SecretValue::Binary),
        prop::collection::btree_map("[a-c]", 0i64..3, 0..3)
            .prop_map(|m| SecretValue::Json(m.into_iter().map(|(k, v)| (k, serde_json::json!(v))).collect())),
    ]
}

fn arb_set() -> impl Strategy<Value = BTreeMap<String, SecretValue>> {
    prop::collection::btree_map("[a-e](/[a-c])?", arb_value(), 0..8)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// Applying a plan to a store holding `actual` yields `desired`, and re-planning yields no
    /// changes; secrets we do not own and do not want are never touched.
    #[test]
    fn applying_a_plan_converges(desired in arb_set(), owned in arb_set(), unmanaged in arb_set()) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let w = World::new("sources: { s: { file: { path: ./s } } }\ntargets: { T: { file: { path: ./t }, imports: [s] } }\n");
            for (path, value) in &desired {
                w.sources["s"].insert(&p(path), value.clone(), None);
            }
            let target = &w.targets["T"];
            for (path, value) in &owned {
                target.insert(&p(path), value.clone(), Some("T"));
            }
            for (path, value) in unmanaged.iter().filter(|(k, _)| !owned.contains_key(*k)) {
                target.insert(&p(path), value.clone(), None);
            }
            // An empty desired set is refused by the empty-source guard unless allowed (its own test).
            let options = RunOptions { delete_orphans: true, adopt: true, max_deletes: 1000, allow_empty_sources: true, ..w.options() };
            let first = w.run(&options).await;
            prop_assert_eq!(first.exit_code(false), 0);
            let state = target.snapshot();
            for (path, value) in &desired {
                prop_assert!(state[&p(path)].semantic_eq(value));
            }
            for (path, value) in &state {
                if !desired.contains_key(path.as_str()) {
                    prop_assert!(unmanaged.contains_key(path.as_str()) && !owned.contains_key(path.as_str()), "only unmanaged extras remain");
                    prop_assert!(value.semantic_eq(&unmanaged[path.as_str()]), "unmanaged secrets are untouched");
                }
            }
            let second = w.run(&options).await;
            prop_assert_eq!(second.summary().changes, 0);
            Ok(())
        })?;
    }
}

/// A memory target that lets several writes run at once and records how many did.
#[derive(Debug)]
struct ConcurrentTarget {
    inner: Arc<MemoryStore>,
    in_flight: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
    delete_during_puts: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Store for ConcurrentTarget {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn capabilities(&self) -> crate::store::Capabilities {
        self.inner.capabilities()
    }
    async fn list(&self) -> Result<crate::store::Listing, crate::store::StoreError> {
        self.inner.list().await
    }
    async fn get(&self, path: &SecretPath) -> Result<Option<SecretValue>, crate::store::StoreError> {
        self.inner.get(path).await
    }
}

#[async_trait::async_trait]
impl WritableStore for ConcurrentTarget {
    async fn put(
        &self,
        path: &SecretPath,
        value: &SecretValue,
        owner: &str,
    ) -> Result<crate::store::Receipt, crate::store::StoreError> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
        let result = self.inner.put(path, value, owner).await;
        self.in_flight.fetch_sub(1, SeqCst);
        result
    }
    async fn delete(&self, path: &SecretPath, owner: &str) -> Result<crate::store::Receipt, crate::store::StoreError> {
        if self.in_flight.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            self.delete_during_puts.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        self.inner.delete(path, owner).await
    }
    fn write_concurrency(&self) -> usize {
        4
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_run_up_to_the_stores_concurrency_and_deletes_wait_for_every_put() {
    let w =
        World::new("sources: { s: { file: { path: ./s } } }\ntargets: { T: { file: { path: ./t }, imports: [s] } }\n");
    for i in 0..40 {
        w.sources["s"].insert(&p(&format!("k{i:02}")), SecretValue::Text(format!("v{i}")), None);
    }
    w.targets["T"].insert(&p("gone"), SecretValue::Text("old".into()), Some("T"));
    let target = Arc::new(ConcurrentTarget {
        inner: Arc::clone(&w.targets["T"]),
        in_flight: 0.into(),
        most: 0.into(),
        delete_during_puts: false.into(),
    });
    let mut stores = w.stores();
    stores
        .targets
        .insert("T".to_owned(), Ok(Arc::clone(&target) as Arc<dyn WritableStore>));
    let options = RunOptions {
        delete_orphans: true,
        ..w.options()
    };
    let report = Engine::new(&w.pipeline, &stores, &options, &NoEvents, CancellationToken::new())
        .run()
        .await;
    assert_eq!(report.summary().applied, 41, "40 creates and 1 delete");
    let most = target.most.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (2..=4).contains(&most),
        "several writes at once, never more than 4: {most}"
    );
    assert!(
        !target.delete_during_puts.load(std::sync::atomic::Ordering::SeqCst),
        "values are written before anything is deleted"
    );
    assert_eq!(w.targets["T"].list().await.unwrap().entries.len(), 40);
}

/// A source that does not answer until a target has read a value (or failed to list): a run only
/// finishes if target reads overlap the merge phase.
#[derive(Debug)]
struct WaitsForATargetRead {
    inner: Arc<MemoryStore>,
    target_read: Arc<tokio::sync::Notify>,
}

#[async_trait::async_trait]
impl Store for WaitsForATargetRead {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn capabilities(&self) -> crate::store::Capabilities {
        self.inner.capabilities()
    }
    async fn list(&self) -> Result<crate::store::Listing, crate::store::StoreError> {
        self.target_read.notified().await;
        self.inner.list().await
    }
    async fn get(&self, path: &SecretPath) -> Result<Option<SecretValue>, crate::store::StoreError> {
        self.inner.get(path).await
    }
}

/// A memory target that counts its listings and value reads, and announces each value read and
/// each failed listing.
#[derive(Debug)]
struct CountsListings {
    inner: Arc<MemoryStore>,
    lists: std::sync::atomic::AtomicUsize,
    gets: std::sync::atomic::AtomicUsize,
    announced: Arc<tokio::sync::Notify>,
}

#[async_trait::async_trait]
impl Store for CountsListings {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn capabilities(&self) -> crate::store::Capabilities {
        self.inner.capabilities()
    }
    async fn list(&self) -> Result<crate::store::Listing, crate::store::StoreError> {
        self.lists.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let listing = self.inner.list().await;
        if listing.is_err() {
            self.announced.notify_one();
        }
        listing
    }
    async fn get(&self, path: &SecretPath) -> Result<Option<SecretValue>, crate::store::StoreError> {
        self.gets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let value = self.inner.get(path).await;
        self.announced.notify_one();
        value
    }
}

#[async_trait::async_trait]
impl WritableStore for CountsListings {
    async fn put(
        &self,
        path: &SecretPath,
        value: &SecretValue,
        owner: &str,
    ) -> Result<crate::store::Receipt, crate::store::StoreError> {
        self.inner.put(path, value, owner).await
    }
    async fn delete(&self, path: &SecretPath, owner: &str) -> Result<crate::store::Receipt, crate::store::StoreError> {
        self.inner.delete(path, owner).await
    }
}

/// The two-store world of the prefetch tests: source `s` (two secrets) gated on target `T`'s
/// listing, and `T` holding one stale secret it owns and one secret it does not manage.
fn gated_world() -> (World, Stores, Arc<CountsListings>) {
    gated_world_with("")
}

/// [`gated_world`] with `target_fields` added to `T`'s definition.
fn gated_world_with(target_fields: &str) -> (World, Stores, Arc<CountsListings>) {
    let w = World::new(&format!(
        "sources: {{ s: {{ file: {{ path: ./s }} }} }}\ntargets: {{ T: {{ file: {{ path: ./t }}, imports: [s]{target_fields} }} }}\n"
    ));
    w.sources["s"].insert(&p("a"), SecretValue::Text("1".into()), None);
    w.sources["s"].insert(&p("b"), SecretValue::Text("2".into()), None);
    w.targets["T"].insert(&p("a"), SecretValue::Text("old".into()), Some("T"));
    w.targets["T"].insert(&p("theirs"), SecretValue::Text("not ours".into()), None);
    let announced = Arc::new(tokio::sync::Notify::new());
    let target = Arc::new(CountsListings {
        inner: Arc::clone(&w.targets["T"]),
        lists: 0.into(),
        gets: 0.into(),
        announced: Arc::clone(&announced),
    });
    let mut stores = w.stores();
    stores.sources.insert(
        "s".to_owned(),
        Ok(Arc::new(WaitsForATargetRead {
            inner: Arc::clone(&w.sources["s"]),
            target_read: announced,
        }) as Arc<dyn Store>),
    );
    stores
        .targets
        .insert("T".to_owned(), Ok(Arc::clone(&target) as Arc<dyn WritableStore>));
    (w, stores, target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_are_listed_and_their_managed_values_read_while_the_sources_are_read_once() {
    let (w, stores, target) = gated_world();
    let options = w.options();
    let engine = Engine::new(&w.pipeline, &stores, &options, &NoEvents, CancellationToken::new());
    let run = engine.run();
    // Not a synchronisation: without the overlap the run waits forever, and this fails it.
    let report = tokio::time::timeout(std::time::Duration::from_secs(30), run)
        .await
        .expect("the source waits for a target read: the run must read targets while merging");
    assert_eq!(status(&report, "T"), &TargetStatus::Ok);
    assert_eq!(
        target.lists.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "planning used the prefetched listing"
    );
    assert_eq!(
        target.gets.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "`a` (managed) was read once, ahead; `theirs` (not managed, not desired) never"
    );
    let state = w.targets["T"].snapshot();
    assert!(state[&p("a")].semantic_eq(&SecretValue::Text("1".into())));
    assert!(state[&p("b")].semantic_eq(&SecretValue::Text("2".into())));
    assert!(state[&p("theirs")].semantic_eq(&SecretValue::Text("not ours".into())));
}

/// Prefetching reads only what the target manages: a secret it owns but its filter leaves
/// out is neither read nor touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_outside_the_target_filter_are_not_read_ahead() {
    let (w, stores, target) = gated_world_with(", filter: { exclude: { paths: [\"kept-out\"] } }");
    w.targets["T"].insert(&p("kept-out"), SecretValue::Text("ours, filtered".into()), Some("T"));
    let mut options = w.options();
    options.delete_orphans = true;
    let engine = Engine::new(&w.pipeline, &stores, &options, &NoEvents, CancellationToken::new());
    let report = tokio::time::timeout(std::time::Duration::from_secs(30), engine.run())
        .await
        .expect("the run finishes");
    assert_eq!(status(&report, "T"), &TargetStatus::Ok);
    assert_eq!(
        target.gets.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "only `a` was read; `kept-out` is owned by T but outside its filter"
    );
    assert!(w.targets["T"].snapshot()[&p("kept-out")].semantic_eq(&SecretValue::Text("ours, filtered".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefetched_listing_that_failed_fails_its_target_and_changes_nothing() {
    let (w, stores, target) = gated_world();
    w.targets["T"].fail(FailOn::List, ErrorClass::Transient);
    let options = w.options();
    let engine = Engine::new(&w.pipeline, &stores, &options, &NoEvents, CancellationToken::new());
    let run = engine.run();
    let report = tokio::time::timeout(std::time::Duration::from_secs(30), run)
        .await
        .expect("the run finishes");
    assert!(
        matches!(status(&report, "T"), TargetStatus::Failed { phase: Phase::Plan, failure }
            if failure.message == "cannot read the target; nothing was changed" && failure.causes.len() == 1),
        "{:?}",
        status(&report, "T")
    );
    assert_eq!(target.lists.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(w.targets["T"].writes(), 0);
}

/// Issue #22: a failure keeps its class, causes and hint from the store to the human and JSON
/// reports and the GitHub annotations, in each phase (merge, plan, apply) and on each failed
/// write.
#[tokio::test]
async fn every_failure_path_carries_class_message_and_hint_to_both_reports() {
    let merge_and_apply = World::standard();
    merge_and_apply.sources["extra"].fail(FailOn::List, ErrorClass::Auth);
    merge_and_apply.targets["Other"].fail(FailOn::Write, ErrorClass::Throttled);
    let plan = World::standard();
    plan.targets["Other"].fail(FailOn::List, ErrorClass::Transient);
    let no_color = crate::output::Styler { color: false };
    let mut human = String::new();
    let mut json = Vec::new();
    let mut github = String::new();
    for w in [&merge_and_apply, &plan] {
        let report = w.run(&w.options()).await;
        github.push_str(&crate::report::github::render(&report));
        github.push_str(&crate::report::github::step_summary(&report));
        human.push_str(&crate::report::human::render(
            &report,
            no_color,
            crate::report::human::HumanOptions::default(),
        ));
        crate::report::json::write(&report, "p.yaml", false, &mut json).unwrap();
        json.push(b'\n');
    }
    for expected in [
        "  ✗ failed (merge, permission denied): cannot read source `extra`\n    caused by: memory:extra: injected permission denied failure\n    hint: the test made List calls fail\n",
        "  ✗ failed (apply, throttled): 2 of 2 writes failed\n    hint: the test made Write calls fail\n",
        "  failed (throttled): memory:Other: injected throttled failure\n      hint: the test made Write calls fail\n",
        "  ✗ failed (plan, transient): cannot read the target; nothing was changed\n    caused by: memory:Other: injected transient failure\n    hint: the test made List calls fail\n",
    ] {
        assert!(human.contains(expected), "missing\n{expected}in\n{human}");
    }
    for expected in [
        "::error title=secretsync%3A Staging (permission denied)::cannot read source `extra`: memory:extra: injected permission denied failure (hint: the test made List calls fail)\n",
        "::error title=secretsync%3A Other (transient)::cannot read the target; nothing was changed: memory:Other: injected transient failure (hint: the test made List calls fail)\n",
    ] {
        assert!(github.contains(expected), "missing\n{expected}in\n{github}");
    }
    assert!(
        github.contains("- `Staging`: cannot read source `extra`: memory:extra: injected permission denied failure (permission denied) — hint: the test made List calls fail\n"),
        "the step summary names class and hint:\n{github}"
    );
    let reports: Vec<serde_json::Value> = serde_json::Deserializer::from_slice(&json)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    let target = |r: usize, name: &str| {
        reports[r]["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()
            .clone()
    };
    for (r, name, phase, class) in [
        (0, "Staging", "merge", "auth"),
        (0, "Other", "apply", "throttled"),
        (1, "Other", "plan", "transient"),
    ] {
        let t = target(r, name);
        assert_eq!(
            (t["status"].as_str(), t["phase"].as_str(), t["error_class"].as_str()),
            (Some("failed"), Some(phase), Some(class)),
            "{t}"
        );
        assert!(
            t["hint"].as_str().is_some_and(|h| h.starts_with("the test made")),
            "{t}"
        );
        assert!(t["error"].as_str().is_some_and(|e| !e.is_empty()), "{t}");
    }
    let failed_write = &target(0, "Other")["changes"][0];
    assert_eq!(
        (failed_write["result"].as_str(), failed_write["error_class"].as_str()),
        (Some("failed"), Some("throttled")),
        "{failed_write}"
    );
    assert_eq!(failed_write["hint"], "the test made Write calls fail");
    for report in &reports {
        for error in report["errors"].as_array().unwrap() {
            let skipped = error["message"].as_str().is_some_and(|m| m.starts_with("skipped: "));
            assert!(
                skipped || (error["class"].is_string() && error["hint"].is_string()),
                "{error}"
            );
        }
    }
}

/// A `--sync-only --dry-run` run — the one dry run that builds the merge store — reads the
/// merged results and plans, but takes no lock, begins and commits nothing, writes nothing.
#[tokio::test]
async fn a_sync_only_dry_run_reads_the_merge_store_and_writes_nothing() {
    let mut w = World::standard();
    let merge_store = Arc::new(MemoryMergeStore::default());
    w.merge = Some(Arc::clone(&merge_store));
    let merge_only = RunOptions {
        sync_phase: false,
        ..w.options()
    };
    assert!(!w.run(&merge_only).await.has_problems());
    let merged_writes = merge_store.scope("Staging").writes();
    assert!(merge_store.has_result("Staging").await.unwrap());
    merge_store.hold_lock_elsewhere("a run that must not be waited for");
    let sync_only_dry = RunOptions {
        dry_run: true,
        merge_phase: false,
        ..w.options()
    };
    let report = w.run(&sync_only_dry).await;
    assert!(!report.has_problems(), "{:?}", report.problems());
    assert!(report.summary().counts.create > 0, "planned from the merged results");
    assert!(w.targets.values().all(|t| t.writes() == 0));
    assert_eq!(merge_store.scope("Staging").writes(), merged_writes);
    assert!(merge_store.has_result("Staging").await.unwrap(), "not begun again");
}

/// A run's audit lines are kept in the merge store even when its revision cannot be: when the
/// revision record fails (beside the run's snapshots, nothing pruned), and when every snapshot
/// fails (beside the newest revision). Either way the run reports why history is incomplete.
#[tokio::test]
async fn audit_lines_are_kept_when_the_revision_or_its_snapshots_cannot_be_written() {
    use crate::history::{FixedIdentity, Recording};
    let identity = FixedIdentity::default();
    let recording = |run_id| Recording {
        keep: 1,
        run_id,
        config_sha256: "c",
        rollback_to: None,
        identify: &identity,
    };
    let lines = |_: &RunReport| Some("{\"event\":\"write\"}\n".to_owned());
    let cases: [(crate::store::memory::RecordFilter, &str, &str); 2] = [
        (
            |name| !name.contains('@') && !name.contains("-audit-"),
            "run1",
            "00000001-audit-run1",
        ),
        (|name| name.contains('@'), "run2", "00000000-audit-run2"),
    ];
    for (fails, run_id, kept) in cases {
        let mut w = World::standard();
        let merge_store = Arc::new(MemoryMergeStore::default());
        merge_store.fail_history_writes(fails);
        w.merge = Some(Arc::clone(&merge_store));
        let options = w.options();
        let stores = w.stores();
        let report = Engine::new(&w.pipeline, &stores, &options, &NoEvents, CancellationToken::new())
            .recording(recording(run_id))
            .audit_to_merge_store(&lines)
            .run()
            .await;
        let problems = format!("{:?}", report.problems());
        assert!(problems.contains("could not be recorded"), "{run_id}: {problems}");
        let records = merge_store.history_records();
        assert_eq!(
            records[kept]["jsonl"],
            "{\"event\":\"write\"}\n",
            "{run_id}: {:?}",
            records.keys().collect::<Vec<_>>()
        );
        assert!(records.keys().all(|name| !fails(name)), "{run_id}");
    }
}
