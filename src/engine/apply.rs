//! The apply phase and every write: the one place that writes to a target or a merge store, and
//! the one place that decides what a dry run skips.
//!
//! [`Writer`] holds the dry-run decision, the merge store's run lock, and the merge store's
//! begin/commit around each merged result; [`withhold_deletes`] is the run-wide `max_deletes`
//! guard; [`execute`] applies one plan. In a dry run targets are also wrapped read-only
//! ([`Writer::target_store`]), so a bug elsewhere still cannot write.
//!
//! Values are written before deletes, so an interrupted run never leaves a target with fewer
//! secrets than it had. Cancellation is checked before each write starts, never in the middle of
//! one. Stores that allow it get several writes in flight (`WritableStore::write_concurrency`);
//! the resilience layer's rate limiter paces them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::stream::{self, StreamExt};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::run::{ApplyOutcome, Engine, Planned};
use crate::failure::{ErrorClass, Failure};
use crate::history::{self, RecordName, Recording, Revision, TargetChange};
use crate::model::{SecretPath, SecretSet, SecretValue};
use crate::plan::{Action, ApplyResult, PlanOptions, TargetPlan, Withheld, plan};
use crate::report::{Event, Phase, RunLock, RunReport, TargetStatus, WithheldDeletes};
use crate::store::{Listing, MergeStore, ReadOnly, Receipt, Store, StoreError, WritableStore};

/// A listing and the current values of the desired secrets in it.
pub(crate) type Actual = (Listing, BTreeMap<SecretPath, Arc<SecretValue>>);

/// What a run may write, and the lock it writes under.
pub(crate) struct Writer<'a> {
    dry_run: bool,
    merge: Option<&'a dyn MergeStore>,
    /// The merge store's run lock, once taken (or why it could not be); shared by every target
    /// that needed it.
    lock: OnceCell<Result<(), Failure>>,
    interrupt: CancellationToken,
    /// How this run records its revision (`None`: no history).
    pub(super) recording: Option<Recording<'a>>,
    /// The history's record names and this run's revision number, listed at the first
    /// snapshot.
    numbering: OnceCell<Result<(u64, Vec<RecordName>), Failure>>,
    /// What this run changed in each target's merged result, for its revision record.
    recorded: Mutex<BTreeMap<String, TargetChange>>,
    /// Merged results written whose snapshot could not be.
    history_errors: Mutex<Vec<Failure>>,
    /// Makes the run's audit lines (JSON Lines) from its report, for the merge store to keep
    /// beside the revision; `None` when the run wrote nothing.
    pub(super) audit_lines: Option<&'a AuditLines<'a>>,
}

/// Makes a run's audit lines from its report (`None`: nothing to record).
pub type AuditLines<'a> = dyn Fn(&RunReport) -> Option<String> + Send + Sync + 'a;

impl<'a> Writer<'a> {
    /// A writer for a run; `merge` is the run's merge store.
    pub(crate) fn new(dry_run: bool, merge: Option<&'a dyn MergeStore>, interrupt: CancellationToken) -> Self {
        Self {
            dry_run,
            merge,
            lock: OnceCell::new(),
            interrupt,
            recording: None,
            numbering: OnceCell::new(),
            recorded: Mutex::new(BTreeMap::new()),
            history_errors: Mutex::new(Vec::new()),
            audit_lines: None,
        }
    }

    /// Whether this run writes nothing.
    pub(crate) fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    /// The store a target is planned and applied through: read-only in a dry run.
    pub(crate) fn target_store(&self, store: Arc<dyn WritableStore>) -> Arc<dyn WritableStore> {
        if self.dry_run { Arc::new(ReadOnly(store)) } else { store }
    }

    /// Takes the merge store's run lock, once per run. A merge store shared between machines
    /// is locked from the run's first write to it until the end of the run (a run with nothing
    /// to write takes no lock, and so makes no write call at all).
    async fn lock(&self, merge: &dyn MergeStore) -> Result<(), Failure> {
        self.lock
            .get_or_init(|| async { merge.lock().await.map_err(|e| e.failure()) })
            .await
            .clone()
    }

    /// Gives the run lock back at the end of the run, if this run took it: the lock (for the
    /// audit log, stores with a real lock only) and why it could not be released.
    pub(crate) async fn release(&self) -> (Option<RunLock>, Option<Failure>) {
        let (Some(merge), Some(Ok(()))) = (self.merge, self.lock.get()) else {
            return (None, None);
        };
        let failed = merge.unlock().await.err().map(|err| {
            err.failure()
                .context("the merge store's run lock could not be released")
        });
        let lock = merge.has_run_lock().then(|| RunLock {
            store: merge.describe(),
            released: failed.is_none(),
        });
        (lock, failed)
    }

    /// Persists `name`'s merged result (nothing in a dry run, or without a merge store). `read`
    /// lists the target's scope and reads the values of the desired secrets; stale entries are
    /// removed, after every import was read. Writes happen under the run lock, between
    /// [`MergeStore::begin`] and [`MergeStore::commit`]. Returns the writes made.
    pub(crate) async fn write_merged(
        &self,
        name: &str,
        desired: &SecretSet,
        read: impl AsyncFnOnce(&dyn Store) -> Result<Actual, StoreError>,
    ) -> Result<u64, Failure> {
        let Some(merge) = self.merge.filter(|_| !self.dry_run) else {
            return Ok(0);
        };
        let scope = merge.for_target(name);
        let (listing, actual) = read(scope.as_ref())
            .await
            .map_err(|e| e.failure().context("cannot read the merge store"))?;
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
                filter: None,
            },
        );
        if let Some(bad) = merged_plan.changes.iter().find(|c| c.action.is_problem()) {
            return Err(Failure::new(
                ErrorClass::Invalid,
                format!(
                    "cannot store `{}` in the merge store: {}",
                    bad.path,
                    bad.note.as_deref().unwrap_or("invalid")
                ),
            ));
        }
        let writes = merged_plan.changes.iter().any(|c| c.action.writes());
        // What the merged result was before this write, for the snapshot (see
        // `history::observation_hash`).
        let before = self.recording.is_some().then(|| {
            let live = listing
                .entries
                .iter()
                .filter(|(_, meta)| !meta.pending_deletion)
                .map(|(path, _)| path);
            history::observation_hash(live, |p| {
                desired.contains_key(p).then(|| actual.get(p).map(|v| &**v)).flatten()
            })
        });
        let committed = |e: StoreError| e.failure().context("cannot read the merge store");
        if !writes && merge.has_result(name).await.map_err(committed)? {
            return Ok(0);
        }
        self.lock(merge).await?;
        merge
            .begin(name)
            .await
            .map_err(|e| e.failure().context("cannot prepare the merge store"))?;
        let applied = execute(&mut merged_plan, scope.as_ref(), name, &self.interrupt, &|| {}).await;
        if applied.failed > 0 || applied.not_attempted > 0 {
            let first = merged_plan.changes.iter().find_map(|c| match &c.result {
                Some(ApplyResult::Failed(e)) => Some((**e).clone()),
                _ => None,
            });
            let context = "cannot write the merged result to the merge store";
            return Err(first
                .unwrap_or_else(|| Failure::new(ErrorClass::Fatal, "interrupted"))
                .context(context));
        }
        merge
            .commit(name)
            .await
            .map_err(|e| e.failure().context("cannot commit the merged result"))?;
        if let Some(before) = before
            && let Err(failure) = self.snapshot(merge, name, desired, &merged_plan, &before).await
        {
            locked(&self.history_errors).push(failure.context(format!(
                "the merged result of `{name}` was written, but its revision could not be recorded"
            )));
        }
        Ok(applied.ok)
    }

    /// Writes `name`'s merged result as this run's snapshot of it, and notes what changed.
    async fn snapshot(
        &self,
        merge: &dyn MergeStore,
        name: &str,
        desired: &SecretSet,
        merged_plan: &TargetPlan,
        before: &str,
    ) -> Result<(), Failure> {
        let (seq, _) = self
            .numbering
            .get_or_init(|| async {
                let names = merge
                    .history_names()
                    .await
                    .map_err(|e| e.failure().context("cannot list the merge store's history"))?;
                let names: Vec<RecordName> = names.iter().filter_map(|n| RecordName::parse(n)).collect();
                Ok((history::next_revision(&names), names))
            })
            .await
            .clone()?;
        let record = history::snapshot_record(name, seq, desired, before);
        let version = merge
            .history_write(&RecordName::Snapshot(seq, name.to_owned()).to_string(), &record)
            .await
            .map_err(|e| e.failure())?;
        let mut change = TargetChange {
            secrets: desired.len(),
            snapshot_version: version,
            ..TargetChange::default()
        };
        for c in &merged_plan.changes {
            let list = match c.action {
                // A restored secret was not in the previous merged result: it comes back.
                Action::Create | Action::Restore => &mut change.created,
                Action::Delete => &mut change.deleted,
                Action::Update | Action::Adopt => &mut change.updated,
                _ => continue,
            };
            if c.result == Some(ApplyResult::Applied) {
                list.push(c.path.to_string());
            }
        }
        locked(&self.recorded).insert(name.to_owned(), change);
        Ok(())
    }

    /// Writes this run's revision record (when it changed a merged result) and prunes what
    /// retention lets go; run-level errors for whatever could not be done. Under the run lock.
    pub(crate) async fn record_revision(&self, report: &RunReport) -> Vec<Failure> {
        let mut errors = std::mem::take(&mut *locked(&self.history_errors));
        let (Some(merge), Some(recording), false) = (self.merge, self.recording.as_ref(), self.dry_run) else {
            return errors;
        };
        let audit = self.audit_lines.and_then(|lines| lines(report));
        let targets = std::mem::take(&mut *locked(&self.recorded));
        let numbered = match self.numbering.get() {
            Some(Ok(numbered)) => Some(numbered),
            _ => None,
        };
        let Some((seq, listed)) = numbered.filter(|_| !targets.is_empty()) else {
            if let Some(audit) = audit {
                // No revision this run (its merged results did not change, or none of its
                // snapshots could be written), but it wrote targets: its audit lines go beside
                // the newest revision.
                let names = match numbered {
                    Some((_, listed)) => listed.clone(),
                    None => match merge.history_names().await {
                        Ok(names) => names.iter().filter_map(|n| RecordName::parse(n)).collect(),
                        Err(e) => {
                            errors.push(
                                e.failure()
                                    .context("the run's audit lines could not be kept in the merge store"),
                            );
                            return errors;
                        }
                    },
                };
                let newest = history::next_revision(&names) - 1;
                errors.extend(self.keep_audit(merge, recording, newest, audit).await);
            }
            return errors;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut names = listed.clone();
        names.extend(targets.keys().map(|t| RecordName::Snapshot(*seq, t.clone())));
        let revision = Revision {
            revision: *seq,
            run_id: recording.run_id.to_owned(),
            time: crate::duration::utc(now),
            rollback_to: recording.rollback_to,
            identity: recording.identify.identify().await,
            config_sha256: recording.config_sha256.to_owned(),
            targets,
        };
        let record = serde_json::to_value(&revision).unwrap_or_default();
        let recorded = merge
            .history_write(&RecordName::Revision(*seq).to_string(), &record)
            .await;
        // The audit lines are kept even when the revision record is not (beside the run's
        // snapshots): they are the account of what the run did.
        if let Some(audit) = audit {
            errors.extend(self.keep_audit(merge, recording, *seq, audit).await);
        }
        if let Err(e) = recorded {
            errors.push(e.failure().context(format!(
                "the merged results were written, but revision {seq} could not be recorded"
            )));
            // Nothing is pruned without the revision that would justify it.
            return errors;
        }
        tracing::info!(revision = seq, "revision recorded");
        names.push(RecordName::Revision(*seq));
        for old in history::to_prune(&names, recording.keep) {
            if let Err(e) = merge.history_remove(&old.to_string()).await {
                errors.push(
                    e.failure()
                        .context(format!("revision {seq} was recorded, but `{old}` could not be pruned")),
                );
                break;
            }
        }
        errors
    }
}

impl Writer<'_> {
    /// Writes a run's audit lines beside revision `seq` (`{seq}-audit-{run}`).
    async fn keep_audit(
        &self,
        merge: &dyn MergeStore,
        recording: &Recording<'_>,
        seq: u64,
        lines: String,
    ) -> Option<Failure> {
        let name = RecordName::Audit(seq, recording.run_id.to_owned()).to_string();
        let record = serde_json::json!({ "run_id": recording.run_id, "jsonl": lines });
        merge.history_write(&name, &record).await.err().map(|e| {
            e.failure()
                .context("the run's audit lines could not be kept in the merge store")
        })
    }
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Withholds every delete of the run when there are more than `max` (deletes already withheld
/// by another guard are not counted).
pub(crate) fn withhold_deletes(plans: &mut BTreeMap<String, Planned>, max: u64) -> Option<WithheldDeletes> {
    let to_make = |c: &&mut crate::plan::Change| c.action == Action::Delete && c.withheld.is_none();
    let planned: u64 = plans
        .values_mut()
        .map(|(p, _)| p.changes.iter_mut().filter(to_make).count() as u64)
        .sum();
    if planned <= max {
        return None;
    }
    for (plan, _) in plans.values_mut() {
        for change in plan.changes.iter_mut().filter(to_make) {
            change.withheld = Some(Withheld::MaxDeletes);
        }
    }
    tracing::warn!(planned, max, "withholding every delete");
    Some(WithheldDeletes { planned, max })
}

impl Engine<'_> {
    /// The apply phase: every planned target's writes (nothing in a dry run). Targets are
    /// written under the merge store's run lock too (taken here by a `--sync-only` run whose
    /// merged results did not change), so two runs never apply to the same targets at once.
    pub(super) async fn apply_all(
        &self,
        plans: &mut BTreeMap<String, Planned>,
        statuses: &mut BTreeMap<String, TargetStatus>,
    ) {
        if self.writer.dry_run {
            return;
        }
        let writes: u64 = plans
            .values()
            .map(|(p, _)| p.changes.iter().filter(|c| c.action.writes()).count() as u64)
            .sum();
        self.events.emit(Event::PhaseStarted {
            phase: Phase::Apply,
            total: writes,
        });
        let phase = tracing::info_span!("phase", phase = "apply", otel.name = tracing::field::Empty);
        crate::telemetry::name(&phase, "apply");
        let phase = &phase;
        let lock_failure = match self.writer.merge {
            Some(merge) if writes > 0 => self.writer.lock(merge).await.err().map(|failure| TargetStatus::Failed {
                phase: Phase::Apply,
                failure,
            }),
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
                let owner = crate::config::target_of_unit(&name);
                let span = tracing::info_span!(parent: phase, "target", target = %name, phase = "apply");
                let applied = execute(&mut plan, store.as_ref(), owner, &self.writer.interrupt, &progress)
                    .instrument(span.clone())
                    .await;
                let status = (applied.failed > 0).then(|| {
                    // The class and hint of the first failed write: usually all fail alike.
                    let first = first_failure(&plan);
                    TargetStatus::Failed {
                        phase: Phase::Apply,
                        failure: Failure::new(
                            first.map_or(ErrorClass::Fatal, |f| f.class),
                            format!("{} of {} writes failed", applied.failed, applied.failed + applied.ok),
                        )
                        .with_optional_hint(first.and_then(|f| f.hint.clone())),
                    }
                });
                self.note_failure(&span, status.as_ref());
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
}

/// The first failed write of a plan.
fn first_failure(plan: &TargetPlan) -> Option<&Failure> {
    plan.changes.iter().find_map(|c| match &c.result {
        Some(ApplyResult::Failed(f)) => Some(&**f),
        _ => None,
    })
}

/// Counts of what an apply did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Applied {
    /// Writes that succeeded.
    pub ok: u64,
    /// Writes that failed.
    pub failed: u64,
    /// Writes not attempted (withheld, interrupted).
    pub not_attempted: u64,
}

/// Applies `plan` to `store` on behalf of `owner`, recording each change's result. `on_write`
/// is called after every attempted write (for progress). Callers outside this module go through
/// [`Writer`], which knows whether the run may write.
pub(crate) async fn execute(
    plan: &mut TargetPlan,
    store: &dyn WritableStore,
    owner: &str,
    cancel: &CancellationToken,
    on_write: &(dyn Fn() + Sync),
) -> Applied {
    let mut applied = Applied::default();
    let order = |a: Action| u8::from(a == Action::Delete);
    let mut indexes: Vec<usize> = (0..plan.changes.len())
        .filter(|&i| plan.changes[i].action.writes())
        .collect();
    indexes.sort_by_key(|&i| (order(plan.changes[i].action), i));
    let to_put: Vec<SecretPath> = indexes
        .iter()
        .map(|&i| &plan.changes[i])
        .filter(|c| c.action != Action::Delete && c.withheld.is_none() && c.desired.is_some())
        .map(|c| c.path.clone())
        .collect();
    let prepared = if to_put.is_empty() || cancel.is_cancelled() {
        Ok(())
    } else {
        store.prepare(owner, &to_put).await
    };
    // Values first, then deletes: an interrupted run never leaves a target with fewer secrets
    // than it had. Within each group up to the store's write concurrency run at once.
    let (puts, deletes): (Vec<usize>, Vec<usize>) = indexes
        .into_iter()
        .partition(|&i| plan.changes[i].action != Action::Delete);
    let concurrency = store.write_concurrency().max(1);
    for group in [puts, deletes] {
        let changes = &plan.changes;
        let prepared = &prepared;
        let results: Vec<(usize, ApplyResult, Option<Box<Receipt>>)> = stream::iter(group)
            .map(|i| async move {
                let change = &changes[i];
                let mut receipt = None;
                let result = if let Some(withheld) = change.withheld {
                    ApplyResult::NotAttempted(format!("withheld: {}", withheld.reason()))
                } else if cancel.is_cancelled() {
                    ApplyResult::NotAttempted("interrupted".to_owned())
                } else if let (Err(err), false) = (prepared, change.action == Action::Delete) {
                    on_write();
                    ApplyResult::Failed(Box::new(err.failure().context("not written")))
                } else {
                    let outcome = match change.action {
                        Action::Delete => store.delete(&change.path, owner).await,
                        Action::Restore => match store.restore(&change.path).await {
                            Ok(restored) if change.write_value => {
                                put(store, change, owner).await.map(|written| restored.then(written))
                            }
                            other => other,
                        },
                        _ => put(store, change, owner).await,
                    };
                    on_write();
                    match outcome {
                        Ok(written) => {
                            receipt = (written != Receipt::default()).then(|| Box::new(written));
                            ApplyResult::Applied
                        }
                        Err(err) => {
                            tracing::warn!(path = %change.path, class = %err.class, "write failed: {err}");
                            ApplyResult::Failed(Box::new(err.failure()))
                        }
                    }
                };
                (i, result, receipt)
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        for (i, result, receipt) in results {
            plan.changes[i].receipt = receipt;
            match &result {
                ApplyResult::Applied => applied.ok += 1,
                ApplyResult::Failed(_) => applied.failed += 1,
                ApplyResult::NotAttempted(_) => applied.not_attempted += 1,
            }
            plan.changes[i].result = Some(result);
        }
    }
    // Also after a batch whose writes were all interrupted: `prepare` may have claimed them.
    if (applied.ok + applied.failed > 0 || !to_put.is_empty())
        && let Err(err) = store.finish(owner).await
    {
        // Only the bookkeeping of a batch is left (a file store's manifest after deletes):
        // the writes happened, but the run must not look clean.
        tracing::warn!(class = %err.class, "finishing the batch failed: {err}");
        for change in &mut plan.changes {
            if change.result == Some(ApplyResult::Applied) {
                change.result = Some(ApplyResult::Failed(Box::new(
                    err.failure().context("written, but the batch could not be finished"),
                )));
                applied.ok -= 1;
                applied.failed += 1;
            }
        }
    }
    applied
}

async fn put(store: &dyn WritableStore, change: &crate::plan::Change, owner: &str) -> Result<Receipt, StoreError> {
    match &change.desired {
        Some(value) => store.put(&change.path, value, owner).await,
        None => Ok(Receipt::default()),
    }
}
