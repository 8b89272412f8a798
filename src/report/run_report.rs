//! `RunReport`: the one record of a run. Every output format, the GitHub outputs and the exit
//! code are computed from it, so they can never disagree.

use std::time::Duration;

use super::Phase;
use crate::failure::{ErrorClass, Failure};
use crate::plan::{ApplyResult, Counts, TargetPlan};

/// Outcome of one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetStatus {
    /// Merged (and planned/applied if selected for sync) without errors.
    Ok,
    /// Failed; nothing more was done for it.
    Failed {
        /// In which phase.
        phase: Phase,
        /// What went wrong, why and how to fix it (never a secret value).
        failure: Failure,
    },
    /// Not run because something it depends on failed (or the run stopped).
    Skipped {
        /// Why.
        because: String,
    },
}

/// What the merge phase did for a target.
#[derive(Debug, Clone, Default)]
pub struct MergeReport {
    /// Secrets in the merged result.
    pub secrets: usize,
    /// Writes to the merge store (creates, updates, deletes).
    pub store_writes: u64,
}

/// One target's part of the run.
#[derive(Debug, Clone)]
pub struct TargetReport {
    /// Name.
    pub name: String,
    /// Inheritance level (1 = imports no target).
    pub level: usize,
    /// `aws`, `vault` or `file`.
    pub kind: &'static str,
    /// Where it syncs to.
    pub destination: String,
    /// Its imports, in order.
    pub imports: Vec<String>,
    /// Selected for the sync phase (false for ancestors merged only for inheritance).
    pub sync_selected: bool,
    /// Merge outcome.
    pub merge: Option<MergeReport>,
    /// The plan, once planned (applied results are recorded in it).
    pub plan: Option<TargetPlan>,
    /// Outcome.
    pub status: TargetStatus,
    /// Time spent on it.
    pub duration: Duration,
}

impl TargetReport {
    /// Counts of planned actions.
    pub fn counts(&self) -> Counts {
        self.plan.as_ref().map(TargetPlan::counts).unwrap_or_default()
    }

    /// Writes that failed.
    pub fn failed_writes(&self) -> u64 {
        self.plan.as_ref().map_or(0, |p| {
            p.changes
                .iter()
                .filter(|c| matches!(c.result, Some(ApplyResult::Failed(_))))
                .count() as u64
        })
    }

    /// Writes that succeeded.
    pub fn applied_writes(&self) -> u64 {
        self.plan.as_ref().map_or(0, |p| {
            p.changes
                .iter()
                .filter(|c| c.result == Some(ApplyResult::Applied))
                .count() as u64
        })
    }

    /// Whether anything about this target needs attention.
    pub fn has_problems(&self) -> bool {
        self.status != TargetStatus::Ok || self.counts().problems() > 0 || self.failed_writes() > 0
    }
}

/// Deletes of one target held back because a source it reads came back empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardedDeletes {
    /// The target whose deletes were held back.
    pub target: String,
    /// Deletes held back.
    pub deletes: u64,
    /// Why (`source `vault-prod` read no secrets`).
    pub because: String,
}

impl GuardedDeletes {
    /// The failure a user reads.
    pub fn failure(&self) -> Failure {
        Failure::new(
            ErrorClass::Guarded,
            format!("{} deletes withheld because {}", self.deletes, self.because),
        )
        .with_hint("if that is intended, pass `--allow-empty-sources`")
    }
}

/// Deletes held back because there were more than `max_deletes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WithheldDeletes {
    /// Deletes planned in the run.
    pub planned: u64,
    /// `max_deletes` of the run (`--max-deletes` or `pipeline.sync.max_deletes`).
    pub max: u64,
}

impl WithheldDeletes {
    /// The failure a user reads: the one wording of `max_deletes` holding deletes back.
    pub fn failure(&self) -> Failure {
        Failure::new(
            ErrorClass::Guarded,
            format!(
                "{} deletes planned, more than `max_deletes` ({}): every delete was withheld",
                self.planned, self.max
            ),
        )
        .with_hint(format!(
            "raise `pipeline.sync.max_deletes` or pass `--max-deletes {}` if they are intended",
            self.planned
        ))
    }
}

/// Something in a run that needs attention, for annotations and the JSON report's `errors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The target concerned, if one is.
    pub target: Option<String>,
    /// The failure's class (`None` for a skipped target: it did not fail itself).
    pub class: Option<ErrorClass>,
    /// What went wrong and why, on one line.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl Problem {
    fn of(target: Option<String>, failure: &Failure) -> Self {
        Self {
            target,
            class: Some(failure.class),
            message: failure.text(),
            hint: failure.hint.clone(),
        }
    }
}

/// The outcome of a run, for exit codes and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Nothing to change, no errors.
    NoChanges,
    /// Changes planned (dry run) or applied, no errors.
    Changes,
    /// Something failed or needs attention.
    Failed,
    /// Stopped by Ctrl-C.
    Interrupted,
}

/// Summary numbers of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Targets selected for sync.
    pub targets: u64,
    /// Targets that failed.
    pub targets_failed: u64,
    /// Targets skipped.
    pub targets_skipped: u64,
    /// Planned actions, over the targets selected for sync.
    #[serde(flatten)]
    pub counts: Counts,
    /// Writes that changed something (creates, updates, deletes, restores, adoptions).
    pub changes: u64,
    /// Writes that succeeded.
    pub applied: u64,
    /// Writes that failed.
    pub failed_writes: u64,
}

/// A run lock a run took (for the audit log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLock {
    /// The merge store it locked.
    pub store: String,
    /// Whether the run gave it back.
    pub released: bool,
}

/// Everything a run did.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// The run's id: the `run_id` of its log lines and the `run` of its audit-log lines (empty
    /// when the engine runs outside a command, as in tests).
    pub run_id: String,
    /// Nothing was written.
    pub dry_run: bool,
    /// The merge phase ran.
    pub merge_phase: bool,
    /// The sync phase ran.
    pub sync_phase: bool,
    /// Every target the run touched, by level then name.
    pub targets: Vec<TargetReport>,
    /// Deletes withheld by `max_deletes`.
    pub withheld_deletes: Option<WithheldDeletes>,
    /// Deletes withheld because a source came back empty, per target.
    pub guarded_deletes: Vec<GuardedDeletes>,
    /// Ctrl-C stopped the run.
    pub interrupted: bool,
    /// Failures not tied to one target (e.g. the merge store, a discovery group).
    pub errors: Vec<Failure>,
    /// Things to know that are not errors (a source skipped a soft-deleted secret), sorted.
    pub warnings: Vec<String>,
    /// Total time.
    pub duration: Duration,
    /// The merge store's run lock, when this run took one.
    pub run_lock: Option<RunLock>,
    /// API call attempts by service, then operation (filled in from the run's metrics).
    pub api_calls: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>,
}

impl Outcome {
    /// The metrics label and JSON spelling: `no_changes`, `changes`, `failed`, `interrupted`.
    pub fn label(self) -> &'static str {
        match self {
            Self::NoChanges => "no_changes",
            Self::Changes => "changes",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
        }
    }
}

impl RunReport {
    /// Summary over the targets selected for sync.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for t in self.targets.iter().filter(|t| t.sync_selected) {
            s.targets += 1;
            match t.status {
                TargetStatus::Failed { .. } => s.targets_failed += 1,
                TargetStatus::Skipped { .. } => s.targets_skipped += 1,
                TargetStatus::Ok => {}
            }
            s.counts.merge(&t.counts());
            s.applied += t.applied_writes();
            s.failed_writes += t.failed_writes();
        }
        for t in self.targets.iter().filter(|t| !t.sync_selected) {
            if let TargetStatus::Failed { .. } = t.status {
                s.targets_failed += 1;
            }
        }
        s.changes = s.counts.changes();
        s
    }

    /// Whether anything failed or needs attention.
    pub fn has_problems(&self) -> bool {
        !self.errors.is_empty()
            || self.withheld_deletes.is_some()
            || !self.guarded_deletes.is_empty()
            || self.targets.iter().any(TargetReport::has_problems)
    }

    /// How the run ended: interrupted, failed, changed something, or nothing to change.
    pub fn outcome(&self) -> Outcome {
        if self.interrupted {
            Outcome::Interrupted
        } else if self.has_problems() {
            Outcome::Failed
        } else if self.summary().changes > 0 {
            Outcome::Changes
        } else {
            Outcome::NoChanges
        }
    }

    /// The process exit code (SPEC §4): 130 interrupted, 2 any error, 1 changes with
    /// `--exit-code`, else 0.
    pub fn exit_code(&self, exit_code_mode: bool) -> u8 {
        match self.outcome() {
            Outcome::Interrupted => 130,
            Outcome::Failed => 2,
            Outcome::Changes if exit_code_mode => 1,
            Outcome::Changes | Outcome::NoChanges => 0,
        }
    }

    /// Every problem, in report order.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out: Vec<Problem> = self.errors.iter().map(|e| Problem::of(None, e)).collect();
        if let Some(w) = self.withheld_deletes {
            out.push(Problem::of(None, &w.failure()));
        }
        for g in &self.guarded_deletes {
            out.push(Problem::of(Some(g.target.clone()), &g.failure()));
        }
        for t in &self.targets {
            let name = Some(t.name.clone());
            match &t.status {
                TargetStatus::Failed { failure, .. } => out.push(Problem::of(name.clone(), failure)),
                TargetStatus::Skipped { because } if t.sync_selected => out.push(Problem {
                    target: name.clone(),
                    class: None,
                    message: format!("skipped: {because}"),
                    hint: None,
                }),
                _ => {}
            }
            for c in t.plan.iter().flat_map(|p| &p.changes) {
                if c.action.is_problem() {
                    let class = if c.action == crate::plan::Action::Conflict {
                        ErrorClass::Conflict
                    } else {
                        ErrorClass::Invalid
                    };
                    let message = format!("{} `{}`: {}", c.action.name(), c.path, c.note.as_deref().unwrap_or(""));
                    out.push(Problem::of(name.clone(), &Failure::new(class, message)));
                }
                if let Some(ApplyResult::Failed(failure)) = &c.result {
                    // Store messages name the secret; say which only when this one does not.
                    let named = failure.message.contains(&format!("`{}`", c.path));
                    let failure = if named {
                        (**failure).clone()
                    } else {
                        (**failure)
                            .clone()
                            .context(format!("cannot {} `{}`", c.action.name(), c.path))
                    };
                    out.push(Problem::of(name.clone(), &failure));
                }
            }
        }
        out
    }
}
