//! `secretsync history` and `secretsync diff REV_A REV_B`: read the revisions the merge store
//! keeps (see `history`), list them with who ran them and what changed, and show the key-level
//! difference between two of them in the same formats as a plan. Read-only.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use super::{init_logging, load};
use crate::cli::{DiffArgs, GlobalArgs, HistoryArgs, LockOutput};
use crate::error::CliError;
use crate::failure::Failure;
use crate::history::{History, Revision};
use crate::model::SecretSet;
use crate::output::Printer;
use crate::plan::{PlanOptions, plan};
use crate::report::{RunReport, TargetReport, TargetStatus};
use crate::store::{EntryMeta, Listing, MemoryStore, MergeStore};

/// The pipeline's merge store, for the commands that read its history.
async fn open(global: &GlobalArgs, printer: Printer) -> Result<Arc<dyn MergeStore>, CliError> {
    let pipeline = load(global, printer)?;
    init_logging(global, Some(&pipeline))?;
    super::merge_store_of(&pipeline, "history", "a merge store's `history` keeps revisions").await
}

pub(super) async fn history(global: &GlobalArgs, args: &HistoryArgs, printer: Printer) -> Result<u8, CliError> {
    let merge = open(global, printer).await?;
    let history = History::load(merge.as_ref()).await.map_err(CliError::Failed)?;
    let revisions: Vec<&Revision> = history
        .revisions
        .values()
        .rev()
        .filter(|r| args.target.as_ref().is_none_or(|t| r.targets.contains_key(t)))
        .collect();
    printer.stdout(&match args.output {
        LockOutput::Json => {
            let mut text = serde_json::to_string_pretty(&serde_json::json!({
                "history_version": 1,
                "merge_store": merge.describe(),
                "revisions": revisions,
            }))
            .unwrap_or_default();
            text.push('\n');
            text
        }
        LockOutput::Text => text(merge.as_ref(), &revisions, args.target.as_deref()),
    });
    Ok(0)
}

fn text(merge: &dyn MergeStore, revisions: &[&Revision], target: Option<&str>) -> String {
    let mut out = String::new();
    if revisions.is_empty() {
        let _ = writeln!(
            out,
            "{}: no revisions{} yet (a revision is recorded by every run that changes a merged result)",
            merge.describe(),
            target.map(|t| format!(" of `{t}`")).unwrap_or_default()
        );
        return out;
    }
    for revision in revisions {
        let what = match revision.rollback_to {
            Some(to) => format!("rollback to {to}"),
            None => "run".to_owned(),
        };
        let _ = writeln!(
            out,
            "revision {}  {}  {what} {}  by {}",
            revision.revision,
            revision.time,
            revision.run_id,
            revision.identity.summary()
        );
        for (name, change) in &revision.targets {
            if target.is_some_and(|t| t != name) {
                continue;
            }
            let _ = writeln!(
                out,
                "  {name}: {} created, {} updated, {} deleted ({} secrets)",
                change.created.len(),
                change.updated.len(),
                change.deleted.len(),
                change.secrets
            );
            for (sign, names) in [("+", &change.created), ("~", &change.updated), ("-", &change.deleted)] {
                for secret in names {
                    let _ = writeln!(out, "    {sign} {secret}");
                }
            }
        }
    }
    out
}

pub(super) async fn diff(global: &GlobalArgs, args: &DiffArgs, printer: Printer) -> Result<u8, CliError> {
    let merge = open(global, printer).await?;
    let history = History::load(merge.as_ref()).await.map_err(CliError::Failed)?;
    let from = history.resolve(&args.from).map_err(CliError::Failed)?;
    let to = history.resolve(&args.to).map_err(CliError::Failed)?;
    let targets: BTreeSet<String> = match &args.target {
        Some(t) => BTreeSet::from([t.clone()]),
        None => history.targets(),
    };
    let mut report = RunReport {
        dry_run: true,
        sync_phase: true,
        ..RunReport::default()
    };
    for name in &targets {
        let before = state(merge.as_ref(), &history, name, from).await;
        let after = state(merge.as_ref(), &history, name, to).await;
        let (status, planned) = match (before, after) {
            (Ok(before), Ok(after)) => (TargetStatus::Ok, Some(difference(name, &before, &after))),
            (Err(failure), _) | (_, Err(failure)) => (
                TargetStatus::Failed {
                    phase: crate::report::Phase::Plan,
                    failure,
                },
                None,
            ),
        };
        report.targets.push(TargetReport {
            name: name.clone(),
            level: 0,
            kind: "revision",
            destination: format!("revision {from} → {to}"),
            imports: Vec::new(),
            sync_selected: true,
            merge: None,
            plan: planned,
            status,
            duration: std::time::Duration::ZERO,
        });
    }
    match args.output {
        LockOutput::Json => {
            printer
                .stdout_streamed(|out| crate::report::json::write(&report, &format!("diff {from} {to}"), false, out));
        }
        LockOutput::Text => {
            // As `pipeline --show-values`: in GitHub Actions every shown value is masked first.
            let in_actions = crate::env::in_github_actions();
            if args.show_values && in_actions {
                printer.stdout(&crate::report::github::masks_for_shown_values(&report));
            }
            let options = crate::report::human::HumanOptions {
                key_detail: true,
                show_values: args.show_values,
                only_maskable: in_actions,
            };
            printer.stdout(&crate::report::human::render(&report, printer.out, options));
        }
    }
    let failed = report
        .targets
        .iter()
        .any(|t| matches!(t.status, TargetStatus::Failed { .. }));
    Ok(if failed { 2 } else { 0 })
}

/// A target's merged result at `revision`. A target without any snapshot never changed since
/// history began: it is the same at both ends, so an empty set stands for it at both.
async fn state(merge: &dyn MergeStore, history: &History, target: &str, revision: u64) -> Result<SecretSet, Failure> {
    Ok(history
        .checked_state(merge, target, revision)
        .await?
        .unwrap_or_default())
}

/// The changes that turn `before` into `after`, as a plan (all of `before` counts as owned by
/// the target, so removed secrets show as deletes).
fn difference(target: &str, before: &SecretSet, after: &SecretSet) -> crate::plan::TargetPlan {
    let listing = Listing {
        entries: before
            .keys()
            .map(|p| (p.clone(), EntryMeta::owned_by(target)))
            .collect(),
        ..Listing::default()
    };
    let actual: BTreeMap<_, _> = before.iter().map(|(p, v)| (p.clone(), Arc::clone(v))).collect();
    plan(
        after,
        &listing,
        &actual,
        &MemoryStore::new("revision"),
        PlanOptions {
            target,
            delete_orphans: true,
            adopt: true,
            complete: true,
            filter: None,
        },
    )
}
