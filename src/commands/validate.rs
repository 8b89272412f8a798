//! `secretsync validate`: parse and compile the pipeline file, print what it describes.

use std::fmt::Write as _;

use super::{init_logging, load};
use crate::cli::{GlobalArgs, ValidateArgs};
use crate::error::CliError;
use crate::output::Printer;
use crate::store::check::CheckLine;

pub(super) async fn run(global: &GlobalArgs, args: &ValidateArgs, printer: Printer) -> Result<u8, CliError> {
    let pipeline = load(global, printer)?;
    init_logging(global, Some(&pipeline))?;
    let s = printer.out;
    let mut out = String::new();
    let _ = writeln!(out, "{} {} is valid", s.green("✓"), global.config().display());
    let _ = writeln!(out, "  sources: {}", pipeline.sources.len());
    for (name, source) in &pipeline.sources {
        let _ = writeln!(out, "    {name:<20} {}", source.describe());
    }
    let levels = pipeline.graph.levels();
    let _ = writeln!(
        out,
        "  targets: {} in {} level{}",
        pipeline.targets.len(),
        levels.len(),
        if levels.len() == 1 { "" } else { "s" }
    );
    for (i, level) in levels.iter().enumerate() {
        for name in level {
            let t = &pipeline.targets[name];
            let _ = writeln!(out, "    {:<20} level {}  {}", name, i + 1, t.kind.describe());
        }
    }
    if !pipeline.dynamic_targets.is_empty() {
        let names: Vec<&str> = pipeline.dynamic_targets.keys().map(String::as_str).collect();
        let _ = writeln!(out, "  dynamic targets: {} (run with --discover)", names.join(", "));
    }
    let merge = pipeline.merge_store.as_ref().map_or_else(
        || "none (merged in memory)".to_owned(),
        crate::config::MergeStoreSpec::describe,
    );
    let _ = writeln!(out, "  merge store: {merge}");
    let _ = writeln!(out, "  warnings: {}", pipeline.warnings.len());
    for note in implicit_kind_notes(&pipeline) {
        let _ = writeln!(out, "  {} {note}", s.cyan("note:"));
    }
    printer.stdout(&out);
    let folders = local_checks(&pipeline);
    let mut code = if folders.is_empty() {
        0
    } else {
        render_checks("Folder", "no local folder", &folders, printer)
    };
    let mut unchecked = Vec::new();
    if uses_aws(&pipeline) && !args.check_aws {
        unchecked.push("AWS access (--check-aws)");
    }
    if uses_vault(&pipeline) && !args.check_vault {
        unchecked.push("Vault access (--check-vault)");
    }
    if !unchecked.is_empty() {
        printer.stdout(&format!("Not checked offline: {}\n", unchecked.join(", ")));
    }
    if args.check_vault || args.check_aws {
        let context = crate::store::BuildContext::new(&pipeline);
        let checks = async {
            if args.check_vault {
                let lines = crate::store::vault::check_pipeline(&pipeline, &context).await;
                code = code.max(render_checks("Vault", "no Vault store", &lines, printer));
            }
            if args.check_aws {
                let lines = if uses_aws(&pipeline) {
                    crate::store::aws::check_pipeline(&pipeline, context.aws()).await
                } else {
                    Vec::new()
                };
                code = code.max(render_checks("AWS", "no AWS store", &lines, printer));
            }
        };
        Box::pin(super::traced("validate", checks)).await;
    }
    Ok(code)
}

/// Whether any source, target or the merge store is on Vault.
fn uses_vault(pipeline: &crate::config::Pipeline) -> bool {
    use crate::config::{MergeStoreSpec, Source, TargetKind};
    pipeline.sources.values().any(|s| matches!(s, Source::Vault(_)))
        || pipeline
            .targets
            .values()
            .any(|t| matches!(t.kind, TargetKind::Vault(_)))
        || matches!(pipeline.merge_store, Some(MergeStoreSpec::Vault { .. }))
}

/// What can be checked without a network: every file source's folder exists and is a folder
/// (a run would fail on it), and no file target or merge store path is a file.
fn local_checks(pipeline: &crate::config::Pipeline) -> Vec<CheckLine> {
    use crate::config::{MergeStoreSpec, Source, TargetKind};
    let hint = || Some("paths are relative to the pipeline file's folder".to_owned());
    let mut lines = Vec::new();
    for (name, source) in &pipeline.sources {
        if let Source::File(location) = source {
            let subject = format!("source `{name}` ({})", location.written);
            lines.push(match std::fs::metadata(&location.path) {
                Ok(meta) if meta.is_dir() => CheckLine::pass(subject, "the folder exists".to_owned()),
                Ok(_) => CheckLine::fail(subject, "is not a folder".to_owned(), hint()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    CheckLine::fail(subject, "the folder does not exist".to_owned(), hint())
                }
                Err(e) => CheckLine::fail(subject, format!("cannot be read: {e}"), hint()),
            });
        }
    }
    let written: Vec<(String, &crate::config::FileLocation)> = pipeline
        .targets
        .iter()
        .filter_map(|(name, t)| match &t.kind {
            TargetKind::File(location) => Some((format!("target `{name}`"), location)),
            _ => None,
        })
        .chain(match &pipeline.merge_store {
            Some(MergeStoreSpec::File(location)) => Some(("the merge store".to_owned(), location)),
            _ => None,
        })
        .collect();
    for (what, location) in written {
        let subject = format!("{what} ({})", location.written);
        lines.push(match std::fs::metadata(&location.path) {
            Ok(meta) if !meta.is_dir() => CheckLine::fail(subject, "is a file, not a folder".to_owned(), hint()),
            Ok(_) => CheckLine::pass(subject, "the folder exists".to_owned()),
            Err(_) => CheckLine::pass(subject, "created on the first write".to_owned()),
        });
    }
    lines
}

/// Targets that name no kind sync to Secrets Manager in the caller's own account — said aloud,
/// since a forgotten `file:` or `vault:` would otherwise only show when the run asks AWS.
fn implicit_kind_notes(pipeline: &crate::config::Pipeline) -> Vec<String> {
    pipeline
        .targets
        .iter()
        .filter(|(_, t)| matches!(&t.kind, crate::config::TargetKind::Aws(aws) if aws.account_id.is_none() && aws.role_arn.is_none()))
        .map(|(name, _)| {
            format!(
                "target `{name}` names no kind: it syncs to AWS Secrets Manager in the account of the run's credentials (give `account_id`, or `file:`/`vault:` for another kind)"
            )
        })
        .collect()
}

/// Whether any source, target or the merge store is on AWS.
pub(super) fn uses_aws(pipeline: &crate::config::Pipeline) -> bool {
    use crate::config::{MergeStoreSpec, Source, TargetKind};
    pipeline.sources.values().any(|s| matches!(s, Source::Aws(_)))
        || pipeline.targets.values().any(|t| matches!(t.kind, TargetKind::Aws(_)))
        || matches!(pipeline.merge_store, Some(MergeStoreSpec::S3 { .. }))
        || !pipeline.dynamic_targets.is_empty()
}

/// Prints one ✓/✗ line per check under `title`; 2 when anything failed.
pub(super) fn render_checks(title: &str, nothing: &str, lines: &[CheckLine], printer: Printer) -> u8 {
    let s = printer.out;
    let mut out = String::new();
    if lines.is_empty() {
        let _ = writeln!(out, "{title}: the pipeline uses {nothing}; nothing to check");
        printer.stdout(&out);
        return 0;
    }
    let _ = writeln!(out, "{title}:");
    for line in lines {
        let mark = if line.ok { s.green("✓") } else { s.red("✗") };
        let _ = writeln!(out, "  {mark} {}: {}", line.subject, line.detail);
        if let Some(hint) = &line.hint {
            let _ = writeln!(out, "      {} {hint}", s.dimmed("hint:"));
        }
    }
    let failed = lines.iter().filter(|l| !l.ok).count();
    let code = if failed == 0 {
        let _ = writeln!(out, "{} every {title} check passed", s.green("✓"));
        0
    } else {
        let _ = writeln!(out, "{} {failed} of {} {title} checks failed", s.red("✗"), lines.len());
        2
    };
    printer.stdout(&out);
    code
}
