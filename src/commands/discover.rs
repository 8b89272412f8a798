//! `secretsync discover`: what each dynamic target group finds, read-only: the targets with
//! the reason each account is included, and the accounts skipped with the reason. Text for
//! people, JSON (docs/discovery-format.md) for tools. Also the discovery step of `pipeline
//! --discover`, shared here.

use std::fmt::Write as _;

use super::{init_logging, load};
use crate::cli::{DiscoverArgs, DiscoverFormat, DiscoveryCacheArgs, GlobalArgs};
use crate::config::Pipeline;
use crate::discovery::{CacheSettings, Discovered, discover_cached};
use crate::error::CliError;
use crate::output::Printer;
use crate::store::BuildContext;

/// Runs discovery for `pipeline` (with the cache when asked).
pub(super) async fn run_discovery(
    global: &GlobalArgs,
    pipeline: &Pipeline,
    context: &BuildContext,
    cache: &DiscoveryCacheArgs,
) -> Discovered {
    let config = cache
        .discovery_cache
        .as_ref()
        .and_then(|_| std::fs::read(global.config()).ok())
        .unwrap_or_default();
    let settings = cache.discovery_cache.as_deref().map(|path| CacheSettings {
        path,
        ttl: cache.discovery_ttl,
        config: &config,
    });
    let spinner = crate::report::progress::Spinner::new(
        !global.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    );
    let shown = spinner.clone();
    let progress: crate::discovery::Progress = std::sync::Arc::new(move |step: &str| shown.message(step));
    let discovered = discover_cached(pipeline, context.aws(), settings, progress).await;
    spinner.clear();
    discovered
}

pub(super) async fn run(global: &GlobalArgs, args: &DiscoverArgs, printer: Printer) -> Result<u8, CliError> {
    let pipeline = load(global, printer)?;
    init_logging(global, Some(&pipeline))?;
    if pipeline.dynamic_targets.is_empty() {
        return Err(CliError::usage(
            "the pipeline has no `dynamic_targets`, so there is nothing to discover",
            Some("add a `dynamic_targets:` group (docs/configuration.md)"),
        ));
    }
    let context = BuildContext::new(&pipeline);
    let discovered = Box::pin(super::traced(
        "discover",
        run_discovery(global, &pipeline, &context, &args.cache),
    ))
    .await;
    let text = match args.output {
        DiscoverFormat::Json => json(&discovered),
        DiscoverFormat::Text => text(&discovered, printer),
    };
    printer.stdout(&text);
    Ok(if discovered.errors().is_empty() { 0 } else { 2 })
}

/// The versioned JSON document.
pub(crate) fn json(discovered: &Discovered) -> String {
    let document = serde_json::json!({
        "discovery_version": 2,
        "groups": discovered.groups,
    });
    let mut text = serde_json::to_string_pretty(&document).unwrap_or_default();
    text.push('\n');
    text
}

fn text(discovered: &Discovered, printer: Printer) -> String {
    let s = printer.out;
    let mut out = String::new();
    for group in &discovered.groups {
        let _ = writeln!(
            out,
            "{}: {} target{}, {} account{} skipped",
            s.bold(&group.group),
            group.targets.len(),
            if group.targets.len() == 1 { "" } else { "s" },
            group.skipped.len(),
            if group.skipped.len() == 1 { "" } else { "s" }
        );
        if let Some(error) = &group.error {
            error.render(&mut out, s, "  ", &s.red(&format!("✗ failed ({}):", error.class)));
        }
        let width = group.targets.iter().map(|t| t.name.len()).max().unwrap_or(0);
        for t in &group.targets {
            let name = if t.account_name.is_empty() {
                String::new()
            } else {
                format!(" ({})", t.account_name)
            };
            let _ = writeln!(
                out,
                "  {} {:<width$}  {}{name}  {}",
                s.green("+"),
                t.name,
                t.account_id,
                s.dimmed(&format!("{}; imports {}", t.reason, t.imports.join(", ")))
            );
        }
        for a in &group.skipped {
            let name = if a.account_name.is_empty() {
                String::new()
            } else {
                format!(" ({})", a.account_name)
            };
            let _ = writeln!(
                out,
                "  {} {}{name}  {}",
                s.dimmed("-"),
                a.account_id,
                s.dimmed(&a.reason)
            );
        }
    }
    out
}
