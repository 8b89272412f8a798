//! The JSON report: versioned and documented in `docs/report-format.md`. Secret values never
//! appear in it (not even with `--show-values`).

use serde::Serialize;
use std::io::Write as _;

use super::{Outcome, RunReport, Summary, TargetStatus};
use crate::failure::{ErrorClass, Failure};
use crate::plan::{Action, ApplyResult, KeyNames};

/// Bumped on any incompatible change to the report's shape.
pub const REPORT_VERSION: u32 = 1;

#[derive(Serialize)]
struct JsonReport<'a> {
    report_version: u32,
    tool: Tool,
    config: &'a str,
    run_id: &'a str,
    dry_run: bool,
    phases: Vec<&'static str>,
    outcome: Outcome,
    exit_code: u8,
    summary: Summary,
    withheld_deletes: Option<Withheld>,
    targets: Vec<Target<'a>>,
    errors: Vec<ErrorEntry>,
    warnings: &'a [String],
    timings: Timings,
    api_calls: &'a std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>,
}

#[derive(Serialize)]
struct Tool {
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct Withheld {
    planned: u64,
    max: u64,
}

#[derive(Serialize)]
struct Target<'a> {
    name: &'a str,
    level: usize,
    kind: &'static str,
    destination: &'a str,
    imports: &'a [String],
    synced: bool,
    status: &'static str,
    phase: Option<&'static str>,
    error: Option<String>,
    error_class: Option<ErrorClass>,
    hint: Option<&'a str>,
    skipped_because: Option<&'a str>,
    merged_secrets: Option<usize>,
    merge_store_writes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    filters: Option<&'a crate::plan::Filtered>,
    summary: crate::plan::Counts,
    changes: Changes<'a>,
    duration_ms: u128,
}

/// A target's changes, turned into entries one at a time while being written: a plan of a
/// million creates is never copied into a second list.
struct Changes<'a>(&'a [crate::plan::Change]);

impl Serialize for Changes<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(ChangeEntry::from))
    }
}

impl<'a> From<&'a crate::plan::Change> for ChangeEntry<'a> {
    fn from(c: &'a crate::plan::Change) -> Self {
        let (result, error, error_class, hint) = match &c.result {
            None => (None, None, None, None),
            Some(ApplyResult::Applied) => (Some("applied"), None, None, None),
            Some(ApplyResult::Failed(f)) => (Some("failed"), Some(f.text()), Some(f.class), f.hint.as_deref()),
            Some(ApplyResult::NotAttempted(e)) => (Some("not_attempted"), Some(e.clone()), None, None),
        };
        ChangeEntry {
            path: c.path.as_str(),
            action: c.action,
            value_kind: c.kind,
            previous_kind: c.previous_kind,
            writes_value: c.write_value,
            keys: c.key_names(),
            note: c.note.as_deref(),
            withheld: c.withheld.is_some(),
            result,
            error,
            error_class,
            hint,
        }
    }
}

#[derive(Serialize)]
struct ChangeEntry<'a> {
    path: &'a str,
    action: Action,
    value_kind: Option<crate::model::ValueKind>,
    previous_kind: Option<crate::model::ValueKind>,
    writes_value: bool,
    #[serde(skip_serializing_if = "KeyNames::is_empty")]
    keys: KeyNames<'a>,
    note: Option<&'a str>,
    withheld: bool,
    result: Option<&'static str>,
    error: Option<String>,
    /// Only on failed writes: a plan of a million changes stays as small as before.
    #[serde(skip_serializing_if = "Option::is_none")]
    error_class: Option<ErrorClass>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<&'a str>,
}

#[derive(Serialize)]
struct ErrorEntry {
    target: Option<String>,
    class: Option<ErrorClass>,
    message: String,
    hint: Option<String>,
}

#[derive(Serialize)]
struct Timings {
    total_ms: u128,
}

/// Writes the report as pretty JSON to `out` as it is serialised: a dry run planning a million
/// creates makes a document of hundreds of megabytes, which is never held in memory whole.
/// `exit_code_mode` is `--exit-code`, which the recorded exit code depends on.
///
/// # Errors
/// When `out` cannot be written.
pub fn write(
    report: &RunReport,
    config: &str,
    exit_code_mode: bool,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let mut phases = Vec::new();
    if report.merge_phase {
        phases.push("merge");
    }
    if report.sync_phase {
        phases.push("sync");
    }
    let targets = report
        .targets
        .iter()
        .map(|t| {
            let (status, phase, failure, because) = match &t.status {
                TargetStatus::Ok => ("ok", None, None, None),
                TargetStatus::Failed { phase, failure } => ("failed", Some(phase.name()), Some(failure), None),
                TargetStatus::Skipped { because } => ("skipped", None, None, Some(because.as_str())),
            };
            let changes = Changes(t.plan.as_ref().map_or(&[], |p| p.changes.as_slice()));
            Target {
                name: &t.name,
                level: t.level,
                kind: t.kind,
                destination: &t.destination,
                imports: &t.imports,
                synced: t.sync_selected,
                status,
                phase,
                error: failure.map(Failure::text),
                error_class: failure.map(|f| f.class),
                hint: failure.and_then(|f| f.hint.as_deref()),
                skipped_because: because,
                merged_secrets: t.merge.as_ref().map(|m| m.secrets),
                merge_store_writes: t.merge.as_ref().map(|m| m.store_writes),
                filters: t.plan.as_ref().and_then(|p| p.filtered.as_ref()),
                summary: t.counts(),
                changes,
                duration_ms: t.duration.as_millis(),
            }
        })
        .collect();
    let json = JsonReport {
        report_version: REPORT_VERSION,
        tool: Tool {
            name: "secretsync",
            version: env!("CARGO_PKG_VERSION"),
        },
        config,
        run_id: &report.run_id,
        dry_run: report.dry_run,
        phases,
        outcome: report.outcome(),
        exit_code: report.exit_code(exit_code_mode),
        summary: report.summary(),
        withheld_deletes: report.withheld_deletes.map(|w| Withheld {
            planned: w.planned,
            max: w.max,
        }),
        targets,
        errors: report
            .problems()
            .into_iter()
            .map(|p| ErrorEntry {
                target: p.target,
                class: p.class,
                message: p.message,
                hint: p.hint,
            })
            .collect(),
        warnings: &report.warnings,
        timings: Timings {
            total_ms: report.duration.as_millis(),
        },
        api_calls: &report.api_calls,
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
    serde_json::to_writer_pretty(&mut out, &json)?;
    out.write_all(b"\n")?;
    out.flush()
}
