//! `secretsync lock status` and `secretsync lock release --id RUN`: what Terraform's
//! `force-unlock` gives operators — see who holds the merge store's run lock and since when,
//! and break the lock of a run that died, by its id only (never "whatever lock is there").

use std::fmt::Write as _;

use super::{init_logging, load};
use crate::cli::{GlobalArgs, LockCommand, LockOutput};
use crate::error::CliError;
use crate::output::Printer;
use crate::store::MergeStore;

pub(super) async fn run(global: &GlobalArgs, command: &LockCommand, printer: Printer) -> Result<u8, CliError> {
    let pipeline = load(global, printer)?;
    init_logging(global, Some(&pipeline))?;
    let merge = super::merge_store_of(&pipeline, "run lock", "runs lock the merge store they share").await?;
    let failed = |e: crate::store::StoreError| CliError::Failed(e.failure().context("cannot use the merge store"));
    match command {
        LockCommand::Status { output } => {
            let Some(locks) = merge.locks().await.map_err(failed)? else {
                printer.stdout(&format!(
                    "{} has no run lock (only S3 merge stores are shared between machines)\n",
                    merge.describe()
                ));
                return Ok(0);
            };
            printer.stdout(&match output {
                LockOutput::Json => json(&locks),
                LockOutput::Text => text(merge.as_ref(), &locks),
            });
            Ok(0)
        }
        LockCommand::Release { id } => {
            let released = merge.release_lock(id).await.map_err(failed)?;
            printer.stdout(&format!(
                "released {} ({}, run id `{}`)\n",
                released.key, released.holder, released.run
            ));
            Ok(0)
        }
    }
}

fn text(merge: &dyn MergeStore, locks: &[crate::store::LockInfo]) -> String {
    if locks.is_empty() {
        return format!("{}: not locked\n", merge.describe());
    }
    let mut out = String::new();
    for lock in locks {
        let _ = writeln!(
            out,
            "{}\n  held by {}, run id `{}`\n  taken {}, last renewed {}{}",
            lock.key,
            lock.holder,
            lock.run,
            crate::duration::utc(lock.acquired_at),
            crate::duration::utc(lock.renewed_at),
            if lock.stale {
                format!(
                    "\n  stale: not renewed for over 10 minutes; the next run takes it over, or `secretsync lock release --id {}` now",
                    lock.run
                )
            } else {
                String::new()
            }
        );
    }
    out
}

fn json(locks: &[crate::store::LockInfo]) -> String {
    let rows: Vec<serde_json::Value> = locks
        .iter()
        .map(|l| {
            serde_json::json!({
                "key": l.key,
                "holder": l.holder,
                "run": l.run,
                "acquired_at": l.acquired_at,
                "renewed_at": l.renewed_at,
                "stale": l.stale,
            })
        })
        .collect();
    let mut text = serde_json::to_string_pretty(&rows).unwrap_or_default();
    text.push('\n');
    text
}
