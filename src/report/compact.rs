//! Compact output: one line, for logs and chat notifications.

use std::fmt::Write as _;

use super::RunReport;

/// Renders the report as one line.
pub fn render(report: &RunReport) -> String {
    let s = report.summary();
    let c = &s.counts;
    let mode = if report.dry_run { "dry run" } else { "applied" };
    let mut line = format!(
        "secretsync: {mode} · {} target{} · +{} ~{} -{} ={}",
        s.targets,
        if s.targets == 1 { "" } else { "s" },
        c.create,
        c.update + c.restore + c.adopt,
        c.delete,
        c.unchanged
    );
    let problems = report.problems().len();
    if problems > 0 {
        let _ = write!(line, " · {problems} problem{}", if problems == 1 { "" } else { "s" });
    }
    let warnings = report.warnings.len();
    if warnings > 0 {
        let _ = write!(line, " · {warnings} warning{}", if warnings == 1 { "" } else { "s" });
    }
    if report.interrupted {
        line.push_str(" · interrupted");
    }
    line.push('\n');
    line
}
