//! Human output: a section per target with one line per change (sigils, key names only), a
//! summary, and with `--show-values` value diffs.

use std::fmt::Write as _;

use similar::{ChangeTag, TextDiff};

use super::{RunReport, TargetReport, TargetStatus};
use crate::model::SecretValue;
use crate::output::{Styler, one_line};
use crate::plan::{Action, ApplyResult, Change};

/// Rendering options.
#[derive(Debug, Clone, Copy, Default)]
pub struct HumanOptions {
    /// Show which keys changed (`--diff`).
    pub key_detail: bool,
    /// Show value diffs (`--show-values`).
    pub show_values: bool,
    /// The log is GitHub Actions': a shown line too short for the runner to mask reliably
    /// (see [`MIN_MASKABLE`]) is replaced by a placeholder instead of printed.
    pub only_maskable: bool,
}

/// The shortest text GitHub's runner is sure to mask: it may be configured to ignore masks of
/// up to four characters, and masking a one-letter value would garble the whole log.
pub const MIN_MASKABLE: usize = 4;

/// Whether a line of a shown value is printed as is in an Actions log: long enough to be masked,
/// or pure JSON punctuation (`{`, `],`), which reveals nothing.
pub fn maskable_or_punctuation(line: &str) -> bool {
    let trimmed = line.trim();
    trimmed.chars().count() >= MIN_MASKABLE || trimmed.chars().all(|c| "{}[],".contains(c))
}

/// Renders the report.
pub fn render(report: &RunReport, style: Styler, options: HumanOptions) -> String {
    let mut out = String::new();
    let shown: Vec<&TargetReport> = report.targets.iter().filter(|t| t.sync_selected).collect();
    for target in &shown {
        render_target(&mut out, target, report, style, options);
    }
    for target in report
        .targets
        .iter()
        .filter(|t| !t.sync_selected && t.status != TargetStatus::Ok)
    {
        render_target(&mut out, target, report, style, options);
    }
    for error in &report.errors {
        error.render(&mut out, style, "", &style.red(&format!("error ({}):", error.class)));
        out.push('\n');
    }
    for warning in &report.warnings {
        let _ = writeln!(out, "{} {}", style.yellow("warning:"), one_line(warning));
    }
    if !report.warnings.is_empty() {
        out.push('\n');
    }
    render_summary(&mut out, report, style);
    out
}

/// One target's section without colour, key names shown and values never (a pull-request
/// comment's collapsed block).
pub fn target_section(target: &TargetReport, report: &RunReport) -> String {
    let mut out = String::new();
    let options = HumanOptions {
        key_detail: true,
        show_values: false,
        only_maskable: false,
    };
    render_target(&mut out, target, report, Styler { color: false }, options);
    out
}

fn header(target: &TargetReport, style: Styler) -> String {
    let imports = if target.imports.is_empty() {
        String::from("no imports")
    } else {
        format!("imports {}", target.imports.join(", "))
    };
    format!(
        "{} → {}  {}",
        style.bold(&target.name),
        target.destination,
        style.dimmed(&format!("(level {}, {imports})", target.level))
    )
}

fn render_target(out: &mut String, target: &TargetReport, report: &RunReport, style: Styler, options: HumanOptions) {
    let _ = writeln!(out, "{}", header(target, style));
    match &target.status {
        TargetStatus::Failed { phase, failure } => {
            let label = format!("✗ failed ({}, {}):", phase.name(), failure.class);
            failure.render(out, style, "  ", &style.red(&label));
        }
        TargetStatus::Skipped { because } => {
            let _ = writeln!(out, "  {} {}", style.yellow("○ skipped:"), one_line(because));
        }
        TargetStatus::Ok => {}
    }
    if let Some(merge) = &target.merge
        && !report.sync_phase
    {
        let written = if report.dry_run {
            String::new()
        } else {
            format!(", {} written to the merge store", merge.store_writes)
        };
        let _ = writeln!(out, "  merged {} secrets{written}", merge.secrets);
    }
    if let Some(plan) = &target.plan {
        for change in &plan.changes {
            render_change(out, change, style, options);
        }
        if plan.changes.is_empty() {
            let _ = writeln!(
                out,
                "  {}",
                style.dimmed(&format!("✓ in sync ({} unchanged)", plan.unchanged))
            );
        } else if plan.unchanged > 0 {
            let _ = writeln!(out, "  {}", style.dimmed(&format!("= {} unchanged", plan.unchanged)));
        }
        if let Some(filtered) = plan.filtered.as_ref().filter(|f| f.left_alone > 0) {
            let n = filtered.left_alone;
            let noun = if n == 1 { "secret" } else { "secrets" };
            let line = format!("· {n} {noun} outside this target's filters left alone");
            let _ = writeln!(out, "  {}", style.dimmed(&line));
        }
    }
    out.push('\n');
}

fn sigil(action: Action, style: Styler) -> String {
    let s = action.sigil();
    match action {
        Action::Create => style.green(s),
        Action::Update | Action::Restore | Action::Adopt => style.yellow(s),
        Action::Delete | Action::Conflict | Action::Invalid => style.red(s),
        Action::Orphan | Action::Unchanged => style.dimmed(s),
    }
}

fn render_change(out: &mut String, change: &Change, style: Styler, options: HumanOptions) {
    let mut line = format!("  {} {}", sigil(change.action, style), change.path);
    let label = match change.action {
        Action::Create | Action::Update | Action::Delete => String::new(),
        Action::Restore if change.write_value => " (restore and update)".to_owned(),
        Action::Adopt if change.differs => " (adopt and update)".to_owned(),
        other => format!(" ({})", other.name()),
    };
    line.push_str(&label);
    if let (Some(before), Some(after)) = (change.previous_kind, change.kind) {
        let _ = write!(line, " [{before} → {after}]");
    }
    if let Some(withheld) = change.withheld {
        line.push_str(&style.red(&format!(" (withheld: {})", withheld.label())));
    }
    match &change.result {
        Some(ApplyResult::Failed(failure)) => {
            let label = format!("failed ({}):", failure.class);
            let _ = write!(line, "  {} {}", style.red(&label), failure.one_line());
        }
        Some(ApplyResult::NotAttempted(why)) if change.withheld.is_none() => {
            let _ = write!(line, "  {}", style.yellow(&format!("not applied: {}", one_line(why))));
        }
        _ => {}
    }
    let _ = writeln!(out, "{line}");
    if let Some(ApplyResult::Failed(failure)) = &change.result {
        crate::failure::render_tail(out, style, "    ", &[], failure.hint.as_deref());
    }
    if let Some(note) = &change.note {
        let _ = writeln!(out, "      {}", style.dimmed(&one_line(note)));
    }
    if options.key_detail && change.write_value {
        let keys = change.key_names();
        let mut parts: Vec<String> = Vec::new();
        parts.extend(keys.added.iter().map(|k| style.green(&format!("+{k}"))));
        parts.extend(keys.changed.iter().map(|k| style.yellow(&format!("~{k}"))));
        parts.extend(keys.removed.iter().map(|k| style.red(&format!("-{k}"))));
        if !parts.is_empty() {
            let _ = writeln!(out, "      keys: {}", parts.join(" "));
        }
    }
    if options.show_values && change.write_value {
        render_value_diff(out, change.actual.as_deref(), change.desired.as_deref(), style, options);
    }
}

/// A value as `--show-values` prints it, one line per line of text (binary as a byte count).
pub fn printable(value: Option<&SecretValue>) -> String {
    match value {
        None => String::new(),
        Some(SecretValue::Binary(bytes)) => format!("<{} bytes of binary data>\n", bytes.len()),
        Some(v) => {
            let mut text = String::from_utf8_lossy(&v.to_bytes()).into_owned();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text
        }
    }
}

fn render_value_diff(
    out: &mut String,
    actual: Option<&SecretValue>,
    desired: Option<&SecretValue>,
    style: Styler,
    options: HumanOptions,
) {
    let (before, after) = (printable(actual), printable(desired));
    let diff = TextDiff::from_lines(&before, &after);
    for change in diff.iter_all_changes() {
        let text = change.value().trim_end_matches('\n');
        let text = if options.only_maskable && !maskable_or_punctuation(text) {
            "<hidden: too short to be masked in the Actions log>"
        } else {
            text
        };
        let line = match change.tag() {
            ChangeTag::Delete => style.red(&format!("- {text}")),
            ChangeTag::Insert => style.green(&format!("+ {text}")),
            ChangeTag::Equal => style.dimmed(&format!("  {text}")),
        };
        let _ = writeln!(out, "      │ {line}");
    }
}

fn render_summary(out: &mut String, report: &RunReport, style: Styler) {
    let s = report.summary();
    let c = &s.counts;
    let verb = |n: u64, what: &str| format!("{n} {what}");
    let mut parts = Vec::new();
    if report.dry_run {
        parts.push(verb(c.create, "to create"));
        parts.push(verb(c.update, "to update"));
        parts.push(verb(c.delete, "to delete"));
    } else {
        parts.push(verb(c.create, "created"));
        parts.push(verb(c.update, "updated"));
        parts.push(verb(c.delete, "deleted"));
    }
    if c.restore > 0 {
        parts.push(verb(c.restore, if report.dry_run { "to restore" } else { "restored" }));
    }
    if c.adopt > 0 {
        parts.push(verb(c.adopt, if report.dry_run { "to adopt" } else { "adopted" }));
    }
    parts.push(verb(c.unchanged, "unchanged"));
    if c.problems() > 0 {
        parts.push(style.red(&verb(c.problems(), "conflicts or invalid")));
    }
    if c.orphan > 0 {
        parts.push(verb(c.orphan, "orphaned (kept)"));
    }
    let targets = format!(
        "{} target{}{}{}",
        s.targets,
        if s.targets == 1 { "" } else { "s" },
        if s.targets_failed > 0 {
            style.red(&format!(", {} failed", s.targets_failed))
        } else {
            String::new()
        },
        if s.targets_skipped > 0 {
            style.yellow(&format!(", {} skipped", s.targets_skipped))
        } else {
            String::new()
        },
    );
    if report.sync_phase {
        let _ = writeln!(out, "{} {} · {targets}", style.bold("Summary:"), parts.join(", "));
    } else {
        let _ = writeln!(out, "{} merged {targets}", style.bold("Summary:"));
    }
    if s.failed_writes > 0 {
        let _ = writeln!(out, "{}", style.red(&format!("{} writes failed", s.failed_writes)));
    }
    if let Some(w) = report.withheld_deletes {
        let failure = w.failure();
        failure.render(out, style, "", &style.red(&format!("error ({}):", failure.class)));
    }
    for g in &report.guarded_deletes {
        let mut failure = g.failure();
        failure.message = format!("{}: {}", g.target, failure.message);
        failure.render(out, style, "", &style.red(&format!("error ({}):", failure.class)));
    }
    if report.interrupted {
        let _ = writeln!(
            out,
            "{}",
            style.yellow("Interrupted: the run stopped before finishing; changes not marked as applied were not made.")
        );
    } else if report.dry_run {
        let _ = writeln!(out, "{}", style.dimmed("Dry run: nothing was written."));
    }
    if report.has_problems() && !report.run_id.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            style.dimmed(&format!(
                "Run id {}: its log lines, JSON report and audit-log lines carry it.",
                report.run_id
            ))
        );
    }
}
