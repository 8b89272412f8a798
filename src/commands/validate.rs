//! `secretsync validate`: parse and compile the pipeline file, print what it describes.

use std::fmt::Write as _;

use super::{init_logging, load, not_yet};
use crate::cli::{GlobalArgs, ValidateArgs};
use crate::error::CliError;
use crate::output::Printer;

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
    if args.check_aws {
        return Err(not_yet("`validate --check-aws`", 5));
    }
    if args.check_vault {
        return Ok(check_vault(&pipeline, printer).await);
    }
    Ok(0)
}

/// Prints one ✓/✗ line per Vault and per Vault location; 2 when anything failed.
async fn check_vault(pipeline: &crate::config::Pipeline, printer: Printer) -> u8 {
    let s = printer.out;
    let context = crate::store::BuildContext::new(pipeline);
    let lines = crate::store::vault::check_pipeline(pipeline, &context).await;
    let mut out = String::new();
    if lines.is_empty() {
        let _ = writeln!(out, "Vault: the pipeline uses no Vault store; nothing to check");
        printer.stdout(&out);
        return 0;
    }
    let _ = writeln!(out, "Vault:");
    for line in &lines {
        let mark = if line.ok { s.green("✓") } else { s.red("✗") };
        let _ = writeln!(out, "  {mark} {}: {}", line.subject, line.detail);
        if let Some(hint) = &line.hint {
            let _ = writeln!(out, "      {} {hint}", s.dimmed("hint:"));
        }
    }
    let failed = lines.iter().filter(|l| !l.ok).count();
    if failed == 0 {
        let _ = writeln!(out, "{} every Vault check passed", s.green("✓"));
        printer.stdout(&out);
        0
    } else {
        let _ = writeln!(out, "{} {failed} of {} Vault checks failed", s.red("✗"), lines.len());
        printer.stdout(&out);
        2
    }
}
