//! The merge phase: every involved target, level by level, deep-merges its imports (sources read
//! once each, targets from the level before) and its merged result is written to the merge
//! store through the writer. With `--sync-only` the merged results are read back instead.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use tracing::Instrument as _;

use super::run::{Engine, Merged, SourceRead, cpu_work};
use crate::config::ImportKind;
use crate::failure::{ErrorClass, Failure};
use crate::filter::Verdict;
use crate::merge::merge_layers;
use crate::model::{SecretPath, SecretSet};
use crate::report::{Event, MergeReport, Phase, TargetStatus};
use crate::store::{EntryMeta, MergeStore};

impl Engine<'_> {
    /// The first stage: the merge phase, or with `--sync-only` the merged results read back from
    /// the merge store. Returns run-level errors.
    pub(super) async fn merge_or_load(&self, involved: &BTreeSet<String>) -> Vec<Failure> {
        let graph = &self.pipeline.graph;
        let opts = self.options;
        let mut errors = Vec::new();
        if opts.merge_phase {
            self.events.emit(Event::PhaseStarted {
                phase: Phase::Merge,
                total: involved.len() as u64,
            });
            let phase = tracing::info_span!("phase", phase = "merge", otel.name = tracing::field::Empty);
            crate::telemetry::name(&phase, "merge");
            let phase = &phase;
            for level in graph.levels() {
                let names: Vec<&String> = level.iter().filter(|n| involved.contains(*n)).collect();
                let results: Vec<(String, Merged, Duration)> = stream::iter(names)
                    .map(|name| async move {
                        let t = Instant::now();
                        let span = tracing::info_span!(parent: phase, "target", target = %name, phase = "merge");
                        let result = self.merge_target(name).instrument(span.clone()).await;
                        self.note_failure(&span, result.as_ref().err());
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
                        .map(|name| async move {
                            let merged = match opts.rollback.as_ref().and_then(|r| r.get(name)) {
                                Some(earlier) => self.roll_back(name, earlier.clone()).await,
                                None => self.load_merged(merge.as_ref(), name).await,
                            };
                            (name.clone(), merged)
                        })
                        .buffer_unordered(opts.sync_parallel.max(1))
                        .collect()
                        .await;
                    self.merged_lock().extend(results);
                }
                None => errors.push(Failure::new(
                    ErrorClass::Invalid,
                    "`--sync-only` needs a merge store to read merged results from",
                )),
            }
        }

        errors
    }

    async fn read_source(&self, name: &str) -> SourceRead {
        let cell = &self.sources[name];
        cell.get_or_init(|| async {
            let store = match &self.stores.sources.get(name) {
                Some(Ok(store)) => Arc::clone(store),
                Some(Err(failure)) => return Err(failure.clone()),
                None => {
                    return Err(Failure::new(
                        ErrorClass::Fatal,
                        format!("source `{name}` was not built (this is a bug)"),
                    ));
                }
            };
            let span = tracing::info_span!("source", source = name, store = %store.describe());
            let filter = self.pipeline.source_filters.get(name);
            let read = async {
                match filter {
                    // Paths alone decide: values outside the filter are never read.
                    Some(filter) if !filter.needs_labels() => {
                        let kept = |path: &SecretPath, _: &EntryMeta| filter.verdict(path, None) == Verdict::Kept;
                        let (listing, values) = store.list_and_read(&kept).await?;
                        let set = values?.into_iter().filter_map(|(p, v)| v.map(|v| (p, v))).collect();
                        Ok((listing, set))
                    }
                    // Labels may come with the values (KV v2 metadata): read, then filter.
                    _ => store.read_all().await,
                }
            };
            match self.interruptible(read).instrument(span).await {
                Ok((listing, mut set)) => {
                    if let Some(filter) = filter {
                        let mut removed = crate::filter::Removed::default();
                        let counted =
                            |path: &SecretPath, meta: &EntryMeta| filter.verdict(path, meta.labels.as_deref());
                        // Counted over the listing (what the filter saw), kept in the set.
                        for (path, meta) in listing.entries.iter().filter(|(_, m)| !m.pending_deletion) {
                            removed.count(counted(path, meta));
                        }
                        set.retain(|path, _| {
                            listing
                                .entries
                                .get(path)
                                .is_some_and(|meta| counted(path, meta) == Verdict::Kept)
                        });
                        tracing::debug!(
                            not_included = removed.not_included,
                            excluded = removed.excluded,
                            "source filtered"
                        );
                        self.source_filtered
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .insert(name.to_owned(), removed);
                    }
                    tracing::debug!(secrets = set.len(), "source read");
                    if !listing.notes.is_empty() {
                        let mut warnings = self.warnings.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        warnings.extend(listing.notes.iter().map(|note| format!("source `{name}`: {note}")));
                    }
                    Ok(Arc::new(set))
                }
                Err(err) => Err(err.failure().context(format!("cannot read source `{name}`"))),
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
                    Err(failure) => {
                        return Err(TargetStatus::Failed {
                            phase: Phase::Merge,
                            failure,
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
            let merged = cpu_work(Phase::Merge, move || merge_layers(layers.iter().map(|l| &**l)))
                .await?
                .map_err(|oversized| TargetStatus::Failed {
                    phase: Phase::Merge,
                    failure: Failure::new(ErrorClass::Invalid, oversized.to_string()).with_hint(oversized.hint()),
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
        report.store_writes = self
            .writer
            .write_merged(name, &desired, async |scope| {
                self.read_actual(scope, &desired, None).await
            })
            .await
            .map_err(|failure| TargetStatus::Failed {
                phase: Phase::Merge,
                failure,
            })?;
        tracing::debug!(target = name, secrets = desired.len(), "merged");
        Ok((desired, report))
    }

    /// A rollback's target: the merged result of the revision gone back to becomes the
    /// current one again (written to the merge store, recorded as this run's revision).
    async fn roll_back(&self, name: &str, earlier: Result<Arc<SecretSet>, Failure>) -> Merged {
        let failed = |failure: Failure| TargetStatus::Failed {
            phase: Phase::Merge,
            failure,
        };
        let desired = earlier.map_err(failed)?;
        let store_writes = self
            .writer
            .write_merged(name, &desired, async |scope| {
                self.read_actual(scope, &desired, None).await
            })
            .await
            .map_err(failed)?;
        let report = MergeReport {
            secrets: desired.len(),
            store_writes,
        };
        Ok((desired, report))
    }

    async fn load_merged(&self, merge: &dyn MergeStore, name: &str) -> Merged {
        let failed = |failure: Failure| TargetStatus::Failed {
            phase: Phase::Merge,
            failure,
        };
        match merge.has_result(name).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(failed(
                    Failure::new(
                        ErrorClass::NotFound,
                        format!(
                            "the merge store ({}) has no merged result for `{name}`",
                            merge.describe()
                        ),
                    )
                    .with_hint("run the merge phase first (without `--sync-only`)"),
                ));
            }
            Err(e) => return Err(failed(e.failure().context("cannot read the merge store"))),
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
                e.failure()
                    .context(format!("cannot read the merged result of `{name}`")),
            )),
        }
    }
}
