//! Applying a plan: the one place that writes.
//!
//! Dry runs stop here (and targets are additionally wrapped read-only by the engine, so a bug
//! elsewhere still cannot write). Values are written before deletes, so an interrupted run
//! never leaves a target with fewer secrets than it had. Cancellation is checked between
//! writes, never in the middle of one.

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
        .filter(|c| c.action != Action::Delete && !c.withheld && c.desired.is_some())
        .map(|c| c.path.clone())
        .collect();
    let prepared = if to_put.is_empty() || cancel.is_cancelled() {
        Ok(())
    } else {
        store.prepare(owner, &to_put).await
    };
    for i in indexes {
        let change = &mut plan.changes[i];
        if change.withheld {
            change.result = Some(ApplyResult::NotAttempted(
                "withheld: the run planned more deletes than `max_deletes`".to_owned(),
            ));
            applied.not_attempted += 1;
            continue;
        }
        if cancel.is_cancelled() {
            change.result = Some(ApplyResult::NotAttempted("interrupted".to_owned()));
            applied.not_attempted += 1;
            continue;
        }
        if let (Err(err), false) = (&prepared, change.action == Action::Delete) {
            change.result = Some(ApplyResult::Failed(format!("not written: {err}")));
            applied.failed += 1;
            on_write();
            continue;
        }
        let outcome = match change.action {
            Action::Delete => store.delete(&change.path, owner).await,
            Action::Restore => match store.restore(&change.path).await {
                Ok(()) if change.write_value => put(store, change, owner).await,
                other => other,
            },
            _ => put(store, change, owner).await,
        };
        on_write();
        change.result = Some(match outcome {
            Ok(()) => {
                applied.ok += 1;
                ApplyResult::Applied
            }
            Err(err) => {
                applied.failed += 1;
                tracing::warn!(path = %change.path, class = %err.class, "write failed: {err}");
                ApplyResult::Failed(err.to_string())
            }
        });
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
