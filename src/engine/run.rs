//! One run: the merge phase (`merge_phase.rs`) while the targets are read ahead
//! (`prefetch.rs`), then every selected target planned, then the apply phase (`apply.rs`).
//!
//! Planning every target before applying any lets `max_deletes` count the deletes of the
//! whole run and withhold all of them at once, before anything is written.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::apply::{self, Writer};
use crate::config::{ImportKind, Pipeline};
use crate::failure::{ErrorClass, Failure};
use crate::model::SecretSet;
use crate::plan::{Action, PlanOptions, TargetPlan, plan};
use crate::report::{Event, EventSink, GuardedDeletes, MergeReport, Phase, RunReport, TargetReport, TargetStatus};
use crate::store::{Fetched, Listing, MergeStore, Store, StoreError, WritableStore};

/// The stores of a run; a store that could not be built is kept as the failure, so the targets
/// that need it fail with the reason.
#[derive(Debug, Default)]
pub struct Stores {
    /// Sources by name.
    pub sources: BTreeMap<String, Result<Arc<dyn Store>, Failure>>,
    /// Targets by name.
    pub targets: BTreeMap<String, Result<Arc<dyn WritableStore>, Failure>>,
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
    /// For `rollback` (with `merge_phase` off): each selected target's merged result at the
    /// revision gone back to, or why it has none; a target not here keeps its current merged
    /// result. These are written to the merge store, then synced like any merged result.
    pub rollback: Option<BTreeMap<String, Result<Arc<SecretSet>, Failure>>>,
}

/// A target's merged result and what the merge phase did, or why it has none.
pub(super) type Merged = Result<(Arc<SecretSet>, MergeReport), TargetStatus>;
/// A target's listing and the values of the secrets it manages, read ahead of planning.
pub(super) type Prefetched = Result<(Listing, Fetched), StoreError>;
/// A source's secrets, or why it could not be read.
pub(super) type SourceRead = Result<Arc<SecretSet>, Failure>;
/// A planned target and the store to apply the plan to.
pub(super) type Planned = (TargetPlan, Arc<dyn WritableStore>);
/// A target's planning outcome and the time it took.
type PlanOutcome = (String, Result<Planned, TargetStatus>, Duration);
/// A target after applying: its plan with results, and its new status if it failed.
pub(super) type ApplyOutcome = (
    String,
    TargetPlan,
    Arc<dyn WritableStore>,
    Option<TargetStatus>,
    Duration,
);

/// Runs CPU work (merging, planning) on tokio's blocking pool, so it uses the other cores and
/// does not stall the I/O of other targets. A panic in it fails the target, not the run.
pub(super) async fn cpu_work<T: Send + 'static>(
    phase: Phase,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, TargetStatus> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| TargetStatus::Failed {
            phase,
            failure: Failure::new(
                ErrorClass::Fatal,
                "internal error while working on this target (this is a bug)",
            )
            .caused_by(&err),
        })
}

/// A run in progress. Its parts live beside the phase that uses them: `merge_phase.rs`,
/// `prefetch.rs`, `apply.rs`.
pub struct Engine<'a> {
    pub(super) pipeline: &'a Pipeline,
    pub(super) stores: &'a Stores,
    pub(super) options: &'a RunOptions,
    pub(super) events: &'a dyn EventSink,
    pub(super) interrupt: CancellationToken,
    halt: CancellationToken,
    /// Decides what the run may write, and writes.
    pub(super) writer: Writer<'a>,
    pub(super) sources: BTreeMap<String, OnceCell<SourceRead>>,
    merged: Mutex<BTreeMap<String, Merged>>,
    /// Merged sets by import list: targets with the same imports (in the same order) have the
    /// same desired set, so it is merged and held once (a discovered group of 1,000 accounts
    /// importing the same sources costs one merge).
    pub(super) by_imports: Mutex<BTreeMap<Vec<String>, Arc<SecretSet>>>,
    durations: Mutex<BTreeMap<String, Duration>>,
    /// What sources reported while being read (secrets skipped and why).
    pub(super) warnings: Mutex<Vec<String>>,
    /// Target listings (and the values of the secrets each manages) read while the merge phase
    /// ran, taken by planning.
    pub(super) listings: Mutex<BTreeMap<String, Prefetched>>,
    /// Secrets listed by prefetching so far (see [`super::prefetch::PREFETCH_ENTRIES`]).
    pub(super) prefetched: AtomicUsize,
    /// What each source's `filter` removed from what it read.
    pub(super) source_filtered: Mutex<BTreeMap<String, crate::filter::Removed>>,
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
            writer: Writer::new(options.dry_run, stores.merge.as_deref(), interrupt.clone()),
            interrupt,
            halt: CancellationToken::new(),
            sources: pipeline.sources.keys().map(|k| (k.clone(), OnceCell::new())).collect(),
            merged: Mutex::new(BTreeMap::new()),
            by_imports: Mutex::new(BTreeMap::new()),
            durations: Mutex::new(BTreeMap::new()),
            warnings: Mutex::new(Vec::new()),
            listings: Mutex::new(BTreeMap::new()),
            prefetched: AtomicUsize::new(0),
            source_filtered: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records a revision of the merged results this run changes (`history`).
    #[must_use]
    pub fn recording(mut self, recording: crate::history::Recording<'a>) -> Self {
        self.writer.recording = Some(recording);
        self
    }

    /// Keeps the run's audit lines (made by `lines` from the report) in the merge store,
    /// beside its revision.
    #[must_use]
    pub fn audit_to_merge_store(mut self, lines: &'a super::apply::AuditLines<'a>) -> Self {
        self.writer.audit_lines = Some(lines);
        self
    }

    /// Runs both phases and reports; the run's revision is recorded and the merge store's run
    /// lock, if the run took it, given back at the end.
    pub async fn run(&self) -> RunReport {
        let started = Instant::now();
        let mut report = self.run_phases(started).await;
        let recorded = self.writer.record_revision(&report).await;
        report.errors.extend(recorded);
        let (lock, failed) = self.writer.release().await;
        report.run_lock = lock;
        report.errors.extend(failed);
        report
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
                // A multi-region target is planned once per region, from one merged result.
                .flat_map(|(name, desired)| {
                    let units = self.pipeline.targets[&name].units();
                    units.into_iter().map(move |unit| (unit, Arc::clone(&desired)))
                })
                .collect();
            self.events.emit(Event::PhaseStarted {
                phase: Phase::Plan,
                total: ready.len() as u64,
            });
            let phase = tracing::info_span!("phase", phase = "plan", otel.name = tracing::field::Empty);
            crate::telemetry::name(&phase, "plan");
            let phase = &phase;
            let planned: Vec<PlanOutcome> = stream::iter(ready)
                .map(|(name, desired)| async move {
                    let t = Instant::now();
                    let span = tracing::info_span!(parent: phase, "target", target = %name, phase = "plan");
                    let result = self.plan_target(&name, desired).instrument(span.clone()).await;
                    self.note_failure(&span, result.as_ref().err());
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

        self.note_region_drift(&plans);
        let guarded_deletes = self.guard_empty_sources(&mut plans);
        let withheld = apply::withhold_deletes(&mut plans, opts.max_deletes);
        if opts.sync_phase {
            self.apply_all(&mut plans, &mut statuses).await;
        }

        let report_targets = self.assemble(&involved, plans, statuses);
        RunReport {
            run_id: String::new(),
            dry_run: self.writer.is_dry_run(),
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
            run_lock: None,
            api_calls: BTreeMap::new(),
        }
    }

    pub(super) fn merged_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Merged>> {
        self.merged.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn add_time(&self, name: &str, elapsed: Duration) {
        *self
            .durations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(name.to_owned())
            .or_default() += elapsed;
    }

    /// Stops the run after a failure when `continue_on_error` is false.
    /// After a target's phase: a failure halts the run (unless `continue_on_error`) and marks the
    /// target's `span` failed in traces.
    pub(super) fn note_failure(&self, span: &tracing::Span, status: Option<&TargetStatus>) {
        if let Some(TargetStatus::Failed { failure, .. }) = status {
            crate::telemetry::failed(span, failure.class.label(), None);
            if !self.options.continue_on_error {
                self.halt.cancel();
            }
        }
    }

    /// Why a target cannot start now, if it cannot.
    pub(super) fn stop_reason(&self) -> Option<TargetStatus> {
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
    pub(super) async fn interruptible<T>(
        &self,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::select! {
            result = work => result,
            () = self.interrupt.cancelled() => Err(StoreError::new(crate::store::ErrorClass::Fatal, "interrupted")),
        }
    }

    async fn plan_target(&self, name: &str, desired: Arc<SecretSet>) -> Result<Planned, TargetStatus> {
        if let Some(reason) = self.stop_reason() {
            return Err(reason);
        }
        let store = match self.stores.targets.get(name) {
            Some(Ok(store)) => Arc::clone(store),
            Some(Err(failure)) => {
                return Err(TargetStatus::Failed {
                    phase: Phase::Plan,
                    failure: failure.clone(),
                });
            }
            None => {
                return Err(TargetStatus::Failed {
                    phase: Phase::Plan,
                    failure: Failure::new(ErrorClass::Fatal, "target store was not built (this is a bug)"),
                });
            }
        };
        let store = self.writer.target_store(store);
        let prefetched = self.listings_lock().remove(name);
        // `name` is a sync unit: the target itself, or one region of it.
        let owner = crate::config::target_of_unit(name);
        let target_filter = &self.pipeline.targets[owner].filter;
        let mut filtered = crate::plan::Filtered {
            sources: self.filters_of_sources(owner),
            ..crate::plan::Filtered::default()
        };
        let desired = if target_filter.is_empty() {
            desired
        } else {
            let mut kept = (*desired).clone();
            kept.retain(|path, _| filtered.target.count(target_filter.verdict(path, None)));
            Arc::new(kept)
        };
        let (listing, actual) = self
            .read_actual(store.as_ref(), &desired, prefetched)
            .await
            .map_err(|e| TargetStatus::Failed {
                phase: Phase::Plan,
                failure: e.failure().context("cannot read the target; nothing was changed"),
            })?;
        if !listing.notes.is_empty() {
            let mut warnings = self.warnings.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            warnings.extend(listing.notes.iter().map(|note| format!("target `{name}`: {note}")));
        }
        // Outside the filter the target is not ours to manage: those secrets are neither
        // written nor deleted, whoever owns them (the plan skips them, but still keeps a write
        // from landing on their storage names).
        let target_filter = (!target_filter.is_empty()).then(|| target_filter.clone());
        if let Some(target_filter) = &target_filter {
            filtered.left_alone = listing
                .entries
                .iter()
                .filter(|(path, meta)| {
                    !meta.pending_deletion && target_filter.verdict(path, None) != crate::filter::Verdict::Kept
                })
                .count() as u64;
        }
        let filtered = (target_filter.is_some() || !filtered.sources.is_empty()).then_some(filtered);
        let (delete_orphans, adopt, keep_values, target) = (
            self.options.delete_orphans,
            self.options.adopt,
            self.options.keep_values,
            owner.to_owned(),
        );
        let plan_store = Arc::clone(&store);
        let planned = cpu_work(Phase::Plan, move || {
            let options = PlanOptions {
                target: &target,
                delete_orphans,
                adopt,
                complete: true,
                filter: target_filter.as_ref(),
            };
            let mut target_plan = plan(&desired, &listing, &actual, plan_store.as_ref(), options);
            target_plan.filtered = filtered;
            let writing = target_plan
                .changes
                .iter()
                .filter(|c| c.action.writes())
                .map(|c| c.path.clone())
                .collect();
            plan_store.planned(&writing);
            if !keep_values {
                target_plan.changes.iter_mut().for_each(|c| c.actual = None);
            }
            target_plan
        })
        .await?;
        Ok((planned, store))
    }

    /// What the filters of `target`'s directly imported sources removed.
    fn filters_of_sources(&self, target: &str) -> BTreeMap<String, crate::filter::Removed> {
        let counted = self
            .source_filtered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.pipeline.targets[target]
            .imports
            .iter()
            .filter_map(|i| counted.get(&i.name).map(|removed| (i.name.clone(), *removed)))
            .collect()
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

    /// Warns when the regions of a multi-region target were planned differently: the same
    /// merged result went to each, so a difference is drift (a secret changed or removed by
    /// hand in one region, a region added later, a failed write) the plan should show.
    fn note_region_drift(&self, plans: &BTreeMap<String, Planned>) {
        const SHOWN: usize = 3;
        for name in &self.options.selected {
            let units = self.pipeline.targets[name].units();
            let planned: Vec<(&str, BTreeSet<(&str, Action)>)> = units
                .iter()
                .filter_map(|unit| {
                    let (plan, _) = plans.get(unit)?;
                    let changes = plan.changes.iter().map(|c| (c.path.as_str(), c.action)).collect();
                    Some((crate::config::region_of_unit(unit)?, changes))
                })
                .collect();
            if planned.len() < 2 || planned.windows(2).all(|w| w[0].1 == w[1].1) {
                continue;
            }
            let regions: Vec<String> = planned
                .iter()
                .map(|(region, changes)| {
                    if changes.is_empty() {
                        return format!("{region}: in sync");
                    }
                    let mut shown: Vec<String> = changes
                        .iter()
                        .take(SHOWN)
                        .map(|(path, action)| format!("{} `{path}`", format!("{action:?}").to_lowercase()))
                        .collect();
                    if changes.len() > SHOWN {
                        shown.push(format!("{} more", changes.len() - SHOWN));
                    }
                    format!("{region}: {}", shown.join(", "))
                })
                .collect();
            tracing::debug!(target = %name, "regions differ");
            self.warnings
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(format!("the regions of `{name}` differ ({})", regions.join("; ")));
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
            self.sources_of(crate::config::target_of_unit(name), &mut reads);
            let empty_here: Vec<&str> = reads.iter().map(String::as_str).filter(|s| empty.contains(s)).collect();
            let nothing_desired = plan.unchanged == 0
                && plan
                    .changes
                    .iter()
                    .all(|c| matches!(c.action, Action::Delete | Action::Orphan));
            let because = if !empty_here.is_empty() {
                let names: Vec<String> = empty_here.iter().map(|s| format!("`{s}`")).collect();
                let filtered = self
                    .source_filtered
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .iter()
                    .any(|(source, removed)| empty_here.contains(&source.as_str()) && removed.total() > 0);
                let by_filter = if filtered { " (nothing its `filter` kept)" } else { "" };
                format!("source {} read no secrets{by_filter}", names.join(", "))
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
            let sync_selected = self.options.selected.contains(&name);
            // One line per sync unit: a multi-region target reports each region it synced.
            let units = if sync_selected && self.options.sync_phase {
                target.units()
            } else {
                vec![name.clone()]
            };
            for (i, unit) in units.into_iter().enumerate() {
                let status = merge_status
                    .clone()
                    .or_else(|| statuses.remove(&unit))
                    .unwrap_or(TargetStatus::Ok);
                out.push(TargetReport {
                    level: graph.level(&name),
                    kind: target.kind.kind(),
                    destination: target.kind.describe_unit(crate::config::region_of_unit(&unit)),
                    imports: target.imports.iter().map(|i| i.name.clone()).collect(),
                    sync_selected,
                    // The merge happened once: its merge-store writes are counted once.
                    merge: merge.clone().map(|m| MergeReport {
                        store_writes: if i == 0 { m.store_writes } else { 0 },
                        ..m
                    }),
                    plan: plans.remove(&unit).map(|(p, _)| p),
                    status,
                    // The merge's time is the target's; it is counted on its first line.
                    duration: durations.get(&unit).copied().unwrap_or_default()
                        + if i == 0 && unit != name {
                            durations.get(&name).copied().unwrap_or_default()
                        } else {
                            Duration::ZERO
                        },
                    name: unit,
                });
            }
        }
        out
    }
}
