//! Applying a plan: the one place that writes.
//!
//! Dry runs stop here (and targets are additionally wrapped read-only by the engine, so a bug
//! elsewhere still cannot write). Values are written before deletes, so an interrupted run
//! never leaves a target with fewer secrets than it had. Cancellation is checked before each
//! write starts, never in the middle of one. Stores that allow it get several writes in flight
//! (`WritableStore::write_concurrency`); the resilience layer's rate limiter paces them.

use futures_util::stream::{self, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::model::SecretPath;
use crate::plan::{Action, ApplyResult, TargetPlan};
use crate::store::WritableStore;

/// Counts of what an apply did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Writes that succeeded.
    pub ok: u64,
    /// Writes that failed.
    pub failed: u64,
    /// Writes not attempted (withheld, interrupted).
    pub not_attempted: u64,
}

/// Applies `plan` to `store` on behalf of `owner`, recording each change's result, unless
/// `dry_run`. `on_write` is called after every attempted write (for progress).
pub async fn execute(
    plan: &mut TargetPlan,
    store: &dyn WritableStore,
    owner: &str,
    dry_run: bool,
    cancel: &CancellationToken,
    on_write: &(dyn Fn() + Sync),
) -> Applied {
    let mut applied = Applied::default();
    if dry_run {
        return applied;
    }
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
        let results: Vec<(usize, ApplyResult)> = stream::iter(group)
            .map(|i| async move {
                let change = &changes[i];
                let result = if let Some(withheld) = change.withheld {
                    ApplyResult::NotAttempted(format!("withheld: {}", withheld.reason()))
                } else if cancel.is_cancelled() {
                    ApplyResult::NotAttempted("interrupted".to_owned())
                } else if let (Err(err), false) = (prepared, change.action == Action::Delete) {
                    on_write();
                    ApplyResult::Failed(format!("not written: {err}"))
                } else {
                    let outcome = match change.action {
                        Action::Delete => store.delete(&change.path, owner).await,
                        Action::Restore => match store.restore(&change.path).await {
                            Ok(()) if change.write_value => put(store, change, owner).await,
                            other => other,
                        },
                        _ => put(store, change, owner).await,
                    };
                    on_write();
                    match outcome {
                        Ok(()) => ApplyResult::Applied,
                        Err(err) => {
                            tracing::warn!(path = %change.path, class = %err.class, "write failed: {err}");
                            ApplyResult::Failed(err.to_string())
                        }
                    }
                };
                (i, result)
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        for (i, result) in results {
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
                change.result = Some(ApplyResult::Failed(format!(
                    "written, but the batch could not be finished: {err}"
                )));
                applied.ok -= 1;
                applied.failed += 1;
            }
        }
    }
    applied
}

async fn put(
    store: &dyn WritableStore,
    change: &crate::plan::Change,
    owner: &str,
) -> Result<(), crate::store::StoreError> {
    match &change.desired {
        Some(value) => store.put(&change.path, value, owner).await,
        None => Ok(()),
    }
}
