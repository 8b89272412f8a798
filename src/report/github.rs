//! GitHub Actions output: workflow commands on stdout (groups, annotations for problems),
//! step outputs for `$GITHUB_OUTPUT`, and a Markdown table for `$GITHUB_STEP_SUMMARY`.
//!
//! Changes are plain lines inside a group rather than annotations: GitHub shows at most a few
//! annotations per step, and problems must not drown among thousands of creates.

use std::fmt::Write as _;

use super::{RunReport, TargetStatus};
use crate::plan::{Action, ApplyResult};

/// Escapes workflow command data the way the runner unescapes it (`%`, CR, LF), which also
/// keeps text from outside (a server's error) on one line, where it cannot start a command
/// such as `::stop-commands::`.
fn escape_data(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Escapes annotation properties (`title=`).
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// Workflow commands for the log.
pub fn render(report: &RunReport) -> String {
    let mut out = String::new();
    for t in report
        .targets
        .iter()
        .filter(|t| t.sync_selected || t.status != TargetStatus::Ok)
    {
        let changes = t.counts().changes();
        let _ = writeln!(
            out,
            "::group::{} ({changes} change{})",
            escape_data(&t.name),
            if changes == 1 { "" } else { "s" }
        );
        for c in t.plan.iter().flat_map(|p| &p.changes) {
            let result = match &c.result {
                Some(ApplyResult::Failed(e)) => format!(" — failed: {}", escape_data(&e.text())),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "{} {} ({}){result}",
                c.action.sigil(),
                escape_data(c.path.as_str()),
                c.action.name()
            );
        }
        let _ = writeln!(out, "::endgroup::");
    }
    for problem in report.problems() {
        let mut title = problem
            .target
            .map_or_else(|| "secretsync".to_owned(), |t| format!("secretsync: {t}"));
        if let Some(class) = problem.class {
            title = format!("{title} ({class})");
        }
        let hint = problem.hint.map(|h| format!(" (hint: {h})")).unwrap_or_default();
        let run = if report.run_id.is_empty() {
            String::new()
        } else {
            format!(" [run {}]", report.run_id)
        };
        let _ = writeln!(
            out,
            "::error title={}::{}{}{}",
            escape_property(&title),
            escape_data(&problem.message),
            escape_data(&hint),
            escape_data(&run)
        );
    }
    for warning in &report.warnings {
        let _ = writeln!(out, "::warning title=secretsync::{}", escape_data(warning));
    }
    let s = report.summary();
    let c = &s.counts;
    let what = if report.dry_run { "plan" } else { "sync" };
    let level = if report.has_problems() { "warning" } else { "notice" };
    let _ = writeln!(
        out,
        "::{level} title=secretsync {what}::{} create, {} update, {} delete, {} unchanged across {} targets",
        c.create,
        c.update + c.restore + c.adopt,
        c.delete,
        c.unchanged,
        s.targets
    );
    out
}

/// `name=value` lines for `$GITHUB_OUTPUT`.
pub fn outputs(report: &RunReport, report_path: Option<&str>) -> String {
    let s = report.summary();
    let c = &s.counts;
    let deleted = report
        .targets
        .iter()
        .flat_map(|t| t.plan.iter().flat_map(|p| &p.changes))
        .filter(|ch| ch.action == Action::Delete && ch.result == Some(ApplyResult::Applied))
        .count();
    let mut out = format!(
        "changes={}\nadded={}\nmodified={}\nremoved={}\ndeleted={deleted}\nfailed={}\noutcome={}\n",
        s.changes,
        c.create,
        c.update + c.restore + c.adopt,
        c.delete,
        report.problems().len(),
        serde_json::to_value(report.outcome())
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
    );
    if let Some(path) = report_path {
        let _ = writeln!(out, "report={}", path.replace(['\n', '\r'], " "));
    }
    out
}

/// Text for the step summary and the pull-request comment (Markdown with HTML): one line, no
/// table-breaking `|`, no HTML (a discovered account's name or an error quoting a server must
/// not open a tag or a comment that hides the rows after it), and no `@` mention that would
/// notify people.
fn cell(text: &str) -> String {
    crate::output::one_line(text)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('@', "@\u{2060}")
        .replace('|', "\\|")
}

/// Text inside a code span (`` `name` ``), where Markdown and HTML are shown as written: one
/// line, no backtick to end the span early, `|` escaped for tables.
fn code_cell(text: &str) -> String {
    crate::output::one_line(text).replace('`', "ˋ").replace('|', "\\|")
}

/// `::add-mask::` commands for every line `--show-values` prints in the human output, so the
/// runner shows `***` in their place. Every line long enough to be masked is registered,
/// escaped as the runner unescapes it; shorter lines are not printed at all (see
/// [`super::human::maskable_or_punctuation`]).
pub fn masks_for_shown_values(report: &RunReport) -> String {
    let mut masks = std::collections::BTreeSet::new();
    for change in report
        .targets
        .iter()
        .flat_map(|t| t.plan.iter().flat_map(|p| &p.changes))
        .filter(|c| c.write_value)
    {
        for value in change.desired.iter().chain(&change.actual) {
            let text = super::human::printable(Some(value));
            for line in text.lines().map(str::trim) {
                if line.chars().count() >= super::human::MIN_MASKABLE {
                    masks.insert(line.to_owned());
                }
            }
        }
    }
    masks.into_iter().fold(String::new(), |mut out, mask| {
        let _ = writeln!(out, "::add-mask::{}", escape_data(&mask));
        out
    })
}

/// Markdown for `$GITHUB_STEP_SUMMARY`.
pub fn step_summary(report: &RunReport) -> String {
    let mut out = String::new();
    let title = if report.dry_run {
        "secretsync plan (dry run)"
    } else {
        "secretsync sync"
    };
    let _ = writeln!(out, "### {title}\n");
    let _ = writeln!(
        out,
        "| Target | Status | Create | Update | Delete | Unchanged | Problems |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|");
    for t in report.targets.iter().filter(|t| t.sync_selected) {
        let c = t.counts();
        let status = match &t.status {
            TargetStatus::Ok if t.has_problems() => "⚠️ needs attention",
            TargetStatus::Ok if c.changes() > 0 => {
                if report.dry_run {
                    "changes pending"
                } else {
                    "✅ applied"
                }
            }
            TargetStatus::Ok => "✅ in sync",
            TargetStatus::Failed { .. } => "❌ failed",
            TargetStatus::Skipped { .. } => "⏭️ skipped",
        };
        let _ = writeln!(
            out,
            "| {} | {status} | {} | {} | {} | {} | {} |",
            cell(&t.name),
            c.create,
            c.update + c.restore + c.adopt,
            c.delete,
            c.unchanged,
            c.problems() + t.failed_writes()
        );
    }
    let problems = report.problems();
    if !problems.is_empty() {
        let _ = writeln!(out, "\n**Problems**\n");
        for problem in problems {
            let hint = problem
                .hint
                .map(|h| format!(" — hint: {}", cell(&h)))
                .unwrap_or_default();
            let class = problem.class.map(|c| format!(" ({c})")).unwrap_or_default();
            let _ = writeln!(
                out,
                "- {}{}{class}{hint}",
                problem
                    .target
                    .map(|t| format!("`{}`: ", code_cell(&t)))
                    .unwrap_or_default(),
                cell(&problem.message)
            );
        }
    }
    if !report.warnings.is_empty() {
        let _ = writeln!(out, "\n**Warnings**\n");
        for warning in &report.warnings {
            let _ = writeln!(out, "- {}", cell(warning));
        }
    }
    out
}
