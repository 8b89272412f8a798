//! `secretsync validate`: parse and compile the pipeline file, print what it describes.

use std::fmt::Write as _;

use super::{init_logging, load};
use crate::cli::{GlobalArgs, ValidateArgs};
use crate::error::CliError;
use crate::output::Printer;
use crate::store::check::CheckLine;

pub(super) async fn run(global: &GlobalArgs, args: &ValidateArgs, printer: Printer) -> Result<u8, CliError> {
    let pipeline = load(global, printer)?;
    init_logging(global, Some(&pipeline));
    let s = printer.out;
    let mut out = String::new();
    let _ = writeln!(out, "{} {} is valid", s.green("✓"), global.config.display());
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
    printer.stdout(&out);
    let mut code = 0;
    if args.check_vault || args.check_aws {
        let context = crate::store::BuildContext::new(&pipeline);
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
    }
    Ok(code)
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
