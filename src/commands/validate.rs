//! `secretsync validate`: parse and compile the pipeline file, print what it describes.

use std::fmt::Write as _;

use super::{init_logging, load, not_yet};
use crate::cli::{GlobalArgs, ValidateArgs};
use crate::error::CliError;
use crate::output::Printer;

pub(super) fn run(global: &GlobalArgs, args: &ValidateArgs, printer: Printer) -> Result<u8, CliError> {
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
    if args.check_vault {
        return Err(not_yet("`validate --check-vault`", 4));
    }
    if args.check_aws {
        return Err(not_yet("`validate --check-aws`", 5));
    }
    Ok(0)
}
