//! One run: merge phase level by level, then plan every selected target, then apply.
//!
//! Planning every target before applying any lets `max_deletes` count the deletes of the
//! whole run and withhold all of them at once, before anything is written.
//!
//! While the merge phase reads the sources, the targets about to be planned are already being
//! listed, and the values of the secrets each one manages read: neither depends on the desired
//! set, and against remote stores both phases wait on round trips, so overlapping them takes the
//! shorter wait off the run (issue #9's benchmark). Values of secrets a target does not manage
//! are read only once they are known to be desired. Prefetching is bounded by
//! [`PREFETCH_ENTRIES`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::apply;
use crate::config::{ImportKind, Pipeline};
use crate::merge::merge_layers;
use crate::model::{SecretPath, SecretSet, SecretValue};
use crate::plan::{Action, PlanOptions, TargetPlan, plan};
use crate::report::{
    Event, EventSink, GuardedDeletes, MergeReport, Phase, RunReport, TargetReport, TargetStatus, WithheldDeletes,
};
use crate::store::{EntryMeta, Fetched, Listing, MergeStore, Owner, ReadOnly, Store, StoreError, WritableStore};

/// Prefetching stops once its listings hold this many secrets (about 15 MB); later targets are
/// listed when they are planned, as without prefetching.
const PREFETCH_ENTRIES: usize = 100_000;

/// A store that could not be built, kept so the targets that need it fail with the reason.
#[derive(Debug, Clone)]
pub struct BuildFailure {
    /// What went wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

/// The stores of a run.
#[derive(Debug, Default)]
pub struct Stores {
    /// Sources by name.
    pub sources: BTreeMap<String, Result<Arc<dyn Store>, BuildFailure>>,
    /// Targets by name.
    pub targets: BTreeMap<String, Result<Arc<dyn WritableStore>, BuildFailure>>,
    /// The merge store, if configured.
    pub merge: Option<Arc<dyn MergeStore>>,
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Write nothing.
    pub dry_run: bool,
    /// Run the merge phase (else read merged results from the merge store).
    pub merge_phase: bool,
    /// Run the sync phase.
    pub sync_phase: bool,
    /// The targets the user selected (ancestors are merged too, but not synced).
    pub selected: BTreeSet<String>,
    /// Targets merged at once.
    pub merge_parallel: usize,
    /// Targets planned/applied at once.
    pub sync_parallel: usize,
    /// Keep going after a failure.
    pub continue_on_error: bool,
    /// Delete owned secrets that are no longer desired.
    pub delete_orphans: bool,
    /// Most deletes in the run (in this process: a shard counts its own).
    pub max_deletes: u64,
    /// Make the deletes of a target whose source read no secrets (`--allow-empty-sources`).
    pub allow_empty_sources: bool,
    /// Take over unmanaged same-named secrets.
    pub adopt: bool,
    /// Keep the current values of changed secrets in the report (for `--show-values`);
    /// otherwise they are dropped right after planning.
    pub keep_values: bool,
}

type Merged = Result<(Arc<SecretSet>, MergeReport), TargetStatus>;
/// A target's listing and the values of the secrets it manages, read ahead of planning.
type Prefetched = Result<(Listing, Fetched), StoreError>;
/// A source's secrets, or why it could not be read (message, hint).
type SourceRead = Result<Arc<SecretSet>, (String, Option<String>)>;
/// A planned target and the store to apply the plan to.
type Planned = (TargetPlan, Arc<dyn WritableStore>);
/// A target's planning outcome and the time it took.
type PlanOutcome = (String, Result<Planned, TargetStatus>, Duration);
/// A target after applying: its plan with results, and its new status if it failed.
type ApplyOutcome = (
    String,
    TargetPlan,
    Arc<dyn WritableStore>,
    Option<TargetStatus>,
    Duration,
);

/// The paths in both sorted sequences, by walking them together (no lookups).
fn sorted_intersection<'a>(
    left: impl Iterator<Item = &'a SecretPath>,
    right: impl Iterator<Item = &'a SecretPath>,
) -> Vec<SecretPath> {
    let mut right = right.peekable();
    let mut out = Vec::new();
    for path in left {
        while right.next_if(|r| *r < path).is_some() {}
        if right.next_if(|r| *r == path).is_some() {
            out.push(path.clone());
        }
    }
    out
}

/// Runs CPU work (merging, planning) on tokio's blocking pool, so it uses the other cores and
/// does not stall the I/O of other targets. A panic in it fails the target, not the run.
async fn cpu_work<T: Send + 'static>(
    phase: &'static str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, TargetStatus> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| TargetStatus::Failed {
            phase,
            error: format!("internal error while working on this target (this is a bug): {err}"),
            hint: None,
        })
}

/// A run in progress.
pub struct Engine<'a> {
    pipeline: &'a Pipeline,
    stores: &'a Stores,
    options: &'a RunOptions,
    events: &'a dyn EventSink,
    interrupt: CancellationToken,
    halt: CancellationToken,
    sources: BTreeMap<String, OnceCell<SourceRead>>,
    merged: Mutex<BTreeMap<String, Merged>>,
    /// Merged sets by import list: targets with the same imports (in the same order) have the
    /// same desired set, so it is merged and held once (a discovered group of 1,000 accounts
    /// importing the same sources costs one merge).
    by_imports: Mutex<BTreeMap<Vec<String>, Arc<SecretSet>>>,
    durations: Mutex<BTreeMap<String, Duration>>,
    /// What sources reported while being read (secrets skipped and why).
    warnings: Mutex<Vec<String>>,
    /// The merge store's run lock, once taken (or the reason it could not be).
    merge_lock: OnceCell<Result<(), String>>,
    /// Target listings (and the values of the secrets each manages) read while the merge phase
    /// ran, taken by planning.
    listings: Mutex<BTreeMap<String, Prefetched>>,
    /// Secrets listed by prefetching so far (see [`PREFETCH_ENTRIES`]).
    prefetched: AtomicUsize,
}

impl<'a> Engine<'a> {
    /// Prepares a run. `interrupt` is cancelled on Ctrl-C.
    pub fn new(
        pipeline: &'a Pipeline,
        stores: &'a Stores,
        options: &'a RunOptions,
        events: &'a dyn EventSink,
        interrupt: CancellationToken,
    ) -> Self {
        Self {
            pipeline,
            stores,
            options,
            events,
            interrupt,
            halt: CancellationToken::new(),
            sources: pipeline.sources.keys().map(|k| (k.clone(), OnceCell::new())).collect(),
            merged: Mutex::new(BTreeMap::new()),
            by_imports: Mutex::new(BTreeMap::new()),
            durations: Mutex::new(BTreeMap::new()),
            warnings: Mutex::new(Vec::new()),
            merge_lock: OnceCell::new(),
            listings: Mutex::new(BTreeMap::new()),
            prefetched: AtomicUsize::new(0),
        }
    }

    /// Runs both phases and reports. A merge store shared between machines is locked from the
    /// run's first write to it until the end of the run (a run with nothing to write to it
    /// takes no lock, and so makes no write call at all).
    pub async fn run(&self) -> RunReport {
        let started = Instant::now();
        let mut report = self.run_phases(started).await;
        if let (Some(merge), Some(Ok(()))) = (&self.stores.merge, self.merge_lock.get())
            && let Err(err) = merge.unlock().await
        {
            report
                .errors
                .push(format!("the merge store's run lock could not be released: {err}"));
        }
        report
    }

    /// Takes the merge store's run lock, once per run; the error is shared by every target
    /// that needed it.
    async fn lock_merge_store(&self, merge: &dyn MergeStore) -> Result<(), String> {
        self.merge_lock
            .get_or_init(|| async { merge.lock().await.map_err(|e| e.to_string()) })
            .await
            .clone()
    }

    async fn run_phases(&self, started: Instant) -> RunReport {
        let graph = &self.pipeline.graph;
        let opts = self.options;
        let involved: BTreeSet<String> = if opts.merge_phase {
            graph
                .with_ancestors(opts.selected.iter().map(String::as_str))
                .unwrap_or_else(|_| opts.selected.clone())
        } else {
            opts.selected.clone()
        };
        let merged_all = AtomicBool::new(false);
        let first_stage = async {
            let errors = self.merge_or_load(&involved).await;
            merged_all.store(true, Ordering::SeqCst);
            errors
        };
        let (errors, ()) = futures_util::future::join(first_stage, self.prefetch_listings(&merged_all)).await;

        let mut plans: BTreeMap<String, Planned> = BTreeMap::new();
        let mut statuses: BTreeMap<String, TargetStatus> = BTreeMap::new();
        if opts.sync_phase {
            let ready: Vec<(String, Arc<SecretSet>)> = opts
                .selected
                .iter()
                // Each desired set is moved out here and freed once its target is planned.
                .filter_map(|name| match self.merged_lock().get_mut(name) {
                    Some(Ok((desired, _))) => Some((name.clone(), std::mem::take(desired))),
                    _ => None,
                })
                .collect();
            self.events.emit(Event::PhaseStarted {
                phase: Phase::Plan,
                total: ready.len() as u64,
            });
            let phase = tracing::info_span!("phase", phase = "plan");
            let phase = &phase;
            let planned: Vec<PlanOutcome> = stream::iter(ready)
                .map(|(name, desired)| async move {
                    let t = Instant::now();
                    let result = self
                        .plan_target(&name, desired)
                        .instrument(tracing::info_span!(parent: phase, "target", target = %name, phase = "plan"))
                        .await;
                    self.note_failure(result.as_ref().err());
                    self.events.emit(Event::Progress {
                        phase: Phase::Plan,
                        target: name.clone(),
                    });
                    (name, result, t.elapsed())
                })
                .buffer_unordered(opts.sync_parallel.max(1))
                .collect()
                .await;
            self.events.emit(Event::PhaseFinished { phase: Phase::Plan });
            for (name, result, elapsed) in planned {
                self.add_time(&name, elapsed);
                match result {
                    Ok(p) => {
                        plans.insert(name, p);
                    }
                    Err(status) => {
                        statuses.insert(name, status);
                    }
                }
            }
        }

        let guarded_deletes = self.guard_empty_sources(&mut plans);
        let withheld = self.withhold_deletes(&mut plans);
        if opts.sync_phase && !opts.dry_run {
            self.apply_all(&mut plans, &mut statuses).await;
        }

        let report_targets = self.assemble(&involved, plans, statuses);
        RunReport {
            dry_run: opts.dry_run,
            merge_phase: opts.merge_phase,
            sync_phase: opts.sync_phase,
            targets: report_targets,
            withheld_deletes: withheld,
            guarded_deletes,
            interrupted: self.interrupt.is_cancelled(),
            errors,
            warnings: {
                let mut warnings =
                    std::mem::take(&mut *self.warnings.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
                warnings.sort();
                warnings
            },
            duration: started.elapsed(),
            api_calls: BTreeMap::new(),
        }
    }

    /// The first stage: the merge phase, or with `--sync-only` the merged results read back from
    /// the merge store. Returns run-level errors.
    async fn merge_or_load(&self, involved: &BTreeSet<String>) -> Vec<String> {
        let graph = &self.pipeline.graph;
        let opts = self.options;
        let mut errors = Vec::new();
        if opts.merge_phase {
            self.events.emit(Event::PhaseStarted {
                phase: Phase::Merge,
                total: involved.len() as u64,
            });
            let phase = tracing::info_span!("phase", phase = "merge");
            let phase = &phase;
            for level in graph.levels() {
                let names: Vec<&String> = level.iter().filter(|n| involved.contains(*n)).collect();
                let results: Vec<(String, Merged, Duration)> = stream::iter(names)
                    .map(|name| async move {
                        let t = Instant::now();
                        let result = self
                            .merge_target(name)
                            .instrument(tracing::info_span!(parent: phase, "target", target = %name, phase = "merge"))
                            .await;
                        self.note_failure(result.as_ref().err());
                        self.events.emit(Event::Progress {
                            phase: Phase::Merge,
                            target: name.clone(),
                        });
                        (name.clone(), result, t.elapsed())
                    })
                    .buffer_unordered(opts.merge_parallel.max(1))
                    .collect()
                    .await;
                for (name, result, elapsed) in results {
                    self.add_time(&name, elapsed);
                    self.merged_lock().insert(name, result);
                }
            }
            self.events.emit(Event::PhaseFinished { phase: Phase::Merge });
            self.by_imports
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clear();
        } else {
            match &self.stores.merge {
                Some(merge) => {
                    let results: Vec<(String, Merged)> = stream::iter(&opts.selected)
                        .map(|name| async move { (name.clone(), self.load_merged(merge.as_ref(), name).await) })
                        .buffer_unordered(opts.sync_parallel.max(1))
                        .collect()
                        .await;
                    self.merged_lock().extend(results);
                }
                None => errors.push("`--sync-only` needs a merge store to read merged results from".to_owned()),
            }
        }

        errors
    }

    /// Lists the selected targets and reads the values of the secrets each manages,
    /// `sync_parallel` targets at a time, until the first stage is over or
    /// [`PREFETCH_ENTRIES`] secrets were listed; planning takes what was read.
    async fn prefetch_listings(&self, merged_all: &AtomicBool) {
        if !self.options.sync_phase {
            return;
        }
        let stores = self
            .options
            .selected
            .iter()
            .filter_map(|name| match self.stores.targets.get(name) {
                Some(Ok(store)) => Some((name, Arc::clone(store))),
                _ => None,
            });
        stream::iter(stores)
            .for_each_concurrent(self.options.sync_parallel.max(1), |(name, store)| async move {
                if merged_all.load(Ordering::SeqCst)
                    || self.prefetched.load(Ordering::SeqCst) >= PREFETCH_ENTRIES
                    || self.stop_reason().is_some()
                {
                    return;
                }
                let span = tracing::info_span!("target", target = %name, phase = "prefetch");
                let read = async {
                    let managed =
                        |meta: &EntryMeta| matches!(&meta.owner, Owner::Target(t) if t.as_ref() == name.as_str());
                    let (listing, values) = self.interruptible(store.list_and_read(&managed)).await?;
                    self.prefetched.fetch_add(listing.entries.len(), Ordering::SeqCst);
                    // A failed read here is only a missed head start: planning reads them again
                    // and reports what fails then.
                    Ok((listing, values.unwrap_or_default()))
                };
                let prefetched = read.instrument(span).await;
                self.listings_lock().insert(name.clone(), prefetched);
            })
            .await;
    }

    fn listings_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Prefetched>> {
        self.listings.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn merged_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Merged>> {
        self.merged.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn add_time(&self, name: &str, elapsed: Duration) {
        *self
            .durations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(name.to_owned())
            .or_default() += elapsed;
    }

    /// Stops the run after a failure when `continue_on_error` is false.
    fn note_failure(&self, status: Option<&TargetStatus>) {
        if matches!(status, Some(TargetStatus::Failed { .. })) && !self.options.continue_on_error {
            self.halt.cancel();
        }
    }

    /// Why a target cannot start now, if it cannot.
    fn stop_reason(&self) -> Option<TargetStatus> {
        if self.interrupt.is_cancelled() {
            return Some(TargetStatus::Skipped {
                because: "the run was interrupted".to_owned(),
            });
        }
        self.halt.is_cancelled().then(|| TargetStatus::Skipped {
            because: "an earlier target failed and `continue_on_error` is false".to_owned(),
        })
    }

    /// Awaits `work` unless the run is interrupted first.
    async fn interruptible<T>(&self, work: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        tokio::select! {
            result = work => result,
            () = self.interrupt.cancelled() => Err(StoreError::new(crate::store::ErrorClass::Fatal, "interrupted")),
        }
    }

    async fn read_source(&self, name: &str) -> SourceRead {
        let cell = &self.sources[name];
        cell.get_or_init(|| async {
            let store = match &self.stores.sources.get(name) {
                Some(Ok(store)) => Arc::clone(store),
                Some(Err(failure)) => {
                    return Err((
                        format!("source `{name}` cannot be used: {}", failure.message),
                        failure.hint.clone(),
                    ));
                }
                None => return Err((format!("source `{name}` was not built (this is a bug)"), None)),
            };
            let span = tracing::info_span!("source", source = name, store = %store.describe());
            match self.interruptible(store.read_all()).instrument(span).await {
                Ok((listing, set)) => {
                    tracing::debug!(secrets = set.len(), "source read");
                    if !listing.notes.is_empty() {
                        let mut warnings = self.warnings.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        warnings.extend(listing.notes.iter().map(|note| format!("source `{name}`: {note}")));
                    }
                    Ok(Arc::new(set))
                }
                Err(err) => Err((format!("cannot read source `{name}`: {err}"), None)),
            }
        })
        .await
        .clone()
    }

    async fn merge_target(&self, name: &str) -> Merged {
        if let Some(reason) = self.stop_reason() {
            return Err(reason);
        }
        let target = &self.pipeline.targets[name];
        let mut layers: Vec<Arc<SecretSet>> = Vec::with_capacity(target.imports.len());
        for import in &target.imports {
            match import.kind {
                ImportKind::Source => match self.read_source(&import.name).await {
                    Ok(set) => layers.push(set),
                    Err((error, hint)) => {
                        return Err(TargetStatus::Failed {
                            phase: "merge",
                            error,
                            hint,
                        });
                    }
                },
                ImportKind::Target => match self.merged_lock().get(&import.name) {
                    Some(Ok((set, _))) => layers.push(Arc::clone(set)),
                    Some(Err(TargetStatus::Failed { .. })) => {
                        return Err(TargetStatus::Skipped {
                            because: format!("it imports target `{}`, which failed", import.name),
                        });
                    }
                    _ => {
                        return Err(TargetStatus::Skipped {
                            because: format!("it imports target `{}`, which did not run", import.name),
                        });
                    }
                },
            }
        }
        let key: Vec<String> = target.imports.iter().map(|i| i.name.clone()).collect();
        let known = self
            .by_imports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            .cloned();
        let desired = if let Some(desired) = known {
            desired
        } else {
            let merged = cpu_work("merge", move || merge_layers(layers.iter().map(|l| &**l)))
                .await?
                .map_err(|oversized| TargetStatus::Failed {
                    phase: "merge",
                    error: oversized.to_string(),
                    hint: Some(oversized.hint().to_owned()),
                })?;
            let merged = Arc::new(merged);
            self.by_imports
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(key, Arc::clone(&merged));
            merged
        };
        let mut report = MergeReport {
            secrets: desired.len(),
            store_writes: 0,
        };
        if let Some(merge) = &self.stores.merge {
            report.store_writes = self.write_merged(merge.as_ref(), name, &desired).await?;
        }
        tracing::debug!(target = name, secrets = desired.len(), "merged");
        Ok((desired, report))
    }

    /// Persists a merged result. Stale entries are removed here, after every import was read.
    async fn write_merged(&self, merge: &dyn MergeStore, name: &str, desired: &SecretSet) -> Result<u64, TargetStatus> {
        if self.options.dry_run {
            return Ok(0);
        }
        let failed = |error: String| TargetStatus::Failed {
            phase: "merge",
            error,
            hint: None,
        };
        let scope = merge.for_target(name);
        let (listing, actual) = self
            .read_actual(scope.as_ref(), desired, None)
            .await
            .map_err(|e| failed(format!("cannot read the merge store ({}): {e}", scope.describe())))?;
        let mut merged_plan = plan(
            desired,
            &listing,
            &actual,
            scope.as_ref(),
            PlanOptions {
                target: name,
                delete_orphans: true,
                adopt: true,
                complete: true,
            },
        );
        if let Some(bad) = merged_plan.changes.iter().find(|c| c.action.is_problem()) {
            return Err(failed(format!(
                "cannot store `{}` in the merge store: {}",
                bad.path,
                bad.note.as_deref().unwrap_or("invalid")
            )));
        }
        let writes = merged_plan.changes.iter().any(|c| c.action.writes());
        let committed = |e: StoreError| failed(format!("cannot read the merge store ({}): {e}", merge.describe()));
        if !writes && merge.has_result(name).await.map_err(committed)? {
            return Ok(0);
        }
        self.lock_merge_store(merge).await.map_err(failed)?;
        merge
            .begin(name)
            .await
            .map_err(|e| failed(format!("cannot prepare the merge store ({}): {e}", merge.describe())))?;
        let applied = apply::execute(&mut merged_plan, scope.as_ref(), name, false, &self.interrupt, &|| {}).await;
        if applied.failed > 0 || applied.not_attempted > 0 {
            let first = merged_plan.changes.iter().find_map(|c| match &c.result {
                Some(crate::plan::ApplyResult::Failed(e)) => Some(e.clone()),
                _ => None,
            });
            return Err(failed(format!(
                "cannot write the merged result to {}: {}",
                merge.describe(),
                first.unwrap_or_else(|| "interrupted".to_owned())
            )));
        }
        merge
            .commit(name)
            .await
            .map_err(|e| failed(format!("cannot commit the merged result to {}: {e}", merge.describe())))?;
        Ok(applied.ok)
    }

    async fn load_merged(&self, merge: &dyn MergeStore, name: &str) -> Merged {
        let failed = |error: String, hint: Option<String>| TargetStatus::Failed {
            phase: "merge",
            error,
            hint,
        };
        match merge.has_result(name).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(failed(
                    format!(
                        "the merge store ({}) has no merged result for `{name}`",
                        merge.describe()
                    ),
                    Some("run the merge phase first (without `--sync-only`)".to_owned()),
                ));
            }
            Err(e) => return Err(failed(format!("cannot read the merge store: {e}"), None)),
        }
        let scope = merge.for_target(name);
        match self.interruptible(scope.read_all()).await {
            Ok((_, set)) => Ok((
                Arc::new(set.clone()),
                MergeReport {
                    secrets: set.len(),
                    store_writes: 0,
                },
            )),
            Err(e) => Err(failed(
                format!("cannot read the merged result of `{name}` ({}): {e}", scope.describe()),
                None,
            )),
        }
    }

    /// Lists a store (unless its listing was `prefetched`) and reads the current values of the
    /// desired secrets it holds.
    async fn read_actual(
        &self,
        store: &dyn Store,
        desired: &SecretSet,
        prefetched: Option<Prefetched>,
    ) -> Result<(Listing, BTreeMap<SecretPath, Arc<SecretValue>>), StoreError> {
        let (listing, early) = match prefetched {
            Some(prefetched) => prefetched?,
            None => (self.interruptible(store.list()).await?, Vec::new()),
        };
        let wanted = sorted_intersection(desired.keys(), listing.entries.keys());
        let mut early: BTreeMap<SecretPath, Option<Arc<SecretValue>>> = early.into_iter().collect();
        let missing: Vec<SecretPath> = wanted.iter().filter(|p| !early.contains_key(*p)).cloned().collect();
        let late = if missing.is_empty() {
            Vec::new()
        } else {
            self.interruptible(store.get_many(&missing)).await?
        };
        // Only desired secrets' values: a managed secret no longer desired was read ahead but is
        // planned from its listing alone, as before.
        let actual = wanted
            .into_iter()
            .filter_map(|p| early.remove(&p).flatten().map(|v| (p, v)))
            .chain(late.into_iter().filter_map(|(p, v)| v.map(|v| (p, v))))
            .collect();
        Ok((listing, actual))
    }

    async fn plan_target(&self, name: &str, desired: Arc<SecretSet>) -> Result<Planned, TargetStatus> {
        if let Some(reason) = self.stop_reason() {
            return Err(reason);
        }
        let store = match self.stores.targets.get(name) {
            Some(Ok(store)) => Arc::clone(store),
            Some(Err(failure)) => {
                return Err(TargetStatus::Failed {
                    phase: "sync",
                    error: failure.message.clone(),
                    hint: failure.hint.clone(),
                });
            }
            None => {
                return Err(TargetStatus::Failed {
                    phase: "sync",
                    error: "target store was not built (this is a bug)".to_owned(),
                    hint: None,
                });
            }
        };
        let store: Arc<dyn WritableStore> = if self.options.dry_run {
            Arc::new(ReadOnly(store))
        } else {
            store
        };
        let prefetched = self.listings_lock().remove(name);
        let (listing, actual) = self
            .read_actual(store.as_ref(), &desired, prefetched)
            .await
            .map_err(|e| TargetStatus::Failed {
                phase: "sync",
                error: format!("cannot read {}: {e}; nothing was changed", store.describe()),
                hint: None,
            })?;
        let (delete_orphans, adopt, keep_values, target) = (
            self.options.delete_orphans,
            self.options.adopt,
            self.options.keep_values,
            name.to_owned(),
        );
        let plan_store = Arc::clone(&store);
        let planned = cpu_work("sync", move || {
            let options = PlanOptions {
                target: &target,
                delete_orphans,
                adopt,
                complete: true,
            };
            let mut target_plan = plan(&desired, &listing, &actual, plan_store.as_ref(), options);
            if !keep_values {
                target_plan.changes.iter_mut().for_each(|c| c.actual = None);
            }
            target_plan
        })
        .await?;
        Ok((planned, store))
    }

    /// The sources `target` reads, directly or through the targets it imports.
    fn sources_of(&self, target: &str, into: &mut BTreeSet<String>) {
        if let Some(t) = self.pipeline.targets.get(target) {
            for import in &t.imports {
                match import.kind {
                    ImportKind::Source => {
                        into.insert(import.name.clone());
                    }
                    ImportKind::Target => self.sources_of(&import.name, into),
                }
            }
        }
    }

    /// Withholds the deletes of every target that reads a source which came back empty, or that
    /// has nothing to sync at all (a `--sync-only` run from an emptied merged result): an empty
    /// Vault mount or an AWS prefix matching nothing would otherwise plan the deletion of
    /// everything the target owns. `--allow-empty-sources` lets them through.
    fn guard_empty_sources(&self, plans: &mut BTreeMap<String, Planned>) -> Vec<GuardedDeletes> {
        if self.options.allow_empty_sources {
            return Vec::new();
        }
        let empty: BTreeSet<&str> = self
            .sources
            .iter()
            .filter(|(_, cell)| matches!(cell.get(), Some(Ok(set)) if set.is_empty()))
            .map(|(name, _)| name.as_str())
            .collect();
        let mut guarded = Vec::new();
        for (name, (plan, _)) in plans.iter_mut() {
            let deletes = plan.changes.iter().filter(|c| c.action == Action::Delete).count() as u64;
            if deletes == 0 {
                continue;
            }
            let mut reads = BTreeSet::new();
            self.sources_of(name, &mut reads);
            let empty_here: Vec<&str> = reads.iter().map(String::as_str).filter(|s| empty.contains(s)).collect();
            let nothing_desired = plan.unchanged == 0
                && plan
                    .changes
                    .iter()
                    .all(|c| matches!(c.action, Action::Delete | Action::Orphan));
            let because = if !empty_here.is_empty() {
                let names: Vec<String> = empty_here.iter().map(|s| format!("`{s}`")).collect();
                format!("source {} read no secrets", names.join(", "))
            } else if nothing_desired {
                "it has nothing to sync, yet owns secrets".to_owned()
            } else {
                continue;
            };
            for change in plan.changes.iter_mut().filter(|c| c.action == Action::Delete) {
                change.withheld = Some(crate::plan::Withheld::EmptySource);
            }
            tracing::warn!(target = %name, deletes, "withholding deletes: {because}");
            guarded.push(GuardedDeletes {
                target: name.clone(),
                deletes,
                because,
            });
        }
        guarded
    }

    fn withhold_deletes(&self, plans: &mut BTreeMap<String, Planned>) -> Option<WithheldDeletes> {
        let to_make = |c: &&mut crate::plan::Change| c.action == Action::Delete && c.withheld.is_none();
        let planned: u64 = plans
            .values_mut()
            .map(|(p, _)| p.changes.iter_mut().filter(to_make).count() as u64)
            .sum();
        if planned <= self.options.max_deletes {
            return None;
        }
        for (plan, _) in plans.values_mut() {
            for change in plan.changes.iter_mut().filter(to_make) {
                change.withheld = Some(crate::plan::Withheld::MaxDeletes);
            }
        }
        tracing::warn!(planned, max = self.options.max_deletes, "withholding every delete");
        Some(WithheldDeletes {
            planned,
            max: self.options.max_deletes,
        })
    }

    async fn apply_all(&self, plans: &mut BTreeMap<String, Planned>, statuses: &mut BTreeMap<String, TargetStatus>) {
        let writes: u64 = plans
            .values()
            .map(|(p, _)| p.changes.iter().filter(|c| c.action.writes()).count() as u64)
            .sum();
        self.events.emit(Event::PhaseStarted {
            phase: Phase::Apply,
            total: writes,
        });
        let phase = tracing::info_span!("phase", phase = "apply");
        let phase = &phase;
        // Targets are written under the merge store's run lock too (taken here by a
        // `--sync-only` run, which writes nothing to the merge store), so two runs never apply
        // to the same targets at once.
        let lock_failure = match &self.stores.merge {
            Some(merge) if writes > 0 => {
                self.lock_merge_store(merge.as_ref())
                    .await
                    .err()
                    .map(|error| TargetStatus::Failed {
                        phase: "apply",
                        error,
                        hint: None,
                    })
            }
            _ => None,
        };
        let lock_failure = &lock_failure;
        let jobs: Vec<(String, TargetPlan, Arc<dyn WritableStore>)> = std::mem::take(plans)
            .into_iter()
            .map(|(name, (plan, store))| (name, plan, store))
            .collect();
        let done: Vec<ApplyOutcome> = stream::iter(jobs)
            .map(|(name, mut plan, store)| async move {
                let t = Instant::now();
                if let Some(reason) = lock_failure
                    .clone()
                    .or_else(|| self.stop_reason())
                    .filter(|_| plan.has_writes())
                {
                    return (name, plan, store, Some(reason), t.elapsed());
                }
                let progress = || {
                    self.events.emit(Event::Progress {
                        phase: Phase::Apply,
                        target: name.clone(),
                    });
                };
                let applied = apply::execute(
                    &mut plan,
                    store.as_ref(),
                    &name,
                    self.options.dry_run,
                    &self.interrupt,
                    &progress,
                )
                .instrument(tracing::info_span!(parent: phase, "target", target = %name, phase = "apply"))
                .await;
                let status = (applied.failed > 0).then(|| TargetStatus::Failed {
                    phase: "apply",
                    error: format!("{} of {} writes failed", applied.failed, applied.failed + applied.ok),
                    hint: None,
                });
                self.note_failure(status.as_ref());
                (name, plan, store, status, t.elapsed())
            })
            .buffer_unordered(self.options.sync_parallel.max(1))
            .collect()
            .await;
        self.events.emit(Event::PhaseFinished { phase: Phase::Apply });
        for (name, plan, store, status, elapsed) in done {
            self.add_time(&name, elapsed);
            if let Some(status) = status {
                statuses.insert(name.clone(), status);
            }
            plans.insert(name, (plan, store));
        }
    }

    fn assemble(
        &self,
        involved: &BTreeSet<String>,
        mut plans: BTreeMap<String, Planned>,
        mut statuses: BTreeMap<String, TargetStatus>,
    ) -> Vec<TargetReport> {
        let graph = &self.pipeline.graph;
        let merged = std::mem::take(&mut *self.merged_lock());
        let durations = std::mem::take(&mut *self.durations.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let mut out = Vec::new();
        for name in graph.order().into_iter().filter(|n| involved.contains(n)) {
            let target = &self.pipeline.targets[&name];
            let (merge, merge_status) = match merged.get(&name) {
                Some(Ok((_, report))) => (Some(report.clone()), None),
                Some(Err(status)) => (None, Some(status.clone())),
                None => (None, None),
            };
            let status = merge_status
                .or_else(|| statuses.remove(&name))
                .unwrap_or(TargetStatus::Ok);
            out.push(TargetReport {
                level: graph.level(&name),
                kind: target.kind.kind(),
                destination: target.kind.describe(),
                imports: target.imports.iter().map(|i| i.name.clone()).collect(),
                sync_selected: self.options.selected.contains(&name),
                merge,
                plan: plans.remove(&name).map(|(p, _)| p),
                status,
                duration: durations.get(&name).copied().unwrap_or_default(),
                name,
            });
        }
        out
    }
}
