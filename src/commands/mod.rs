//! One module per subcommand. Each is glue: load the config, build what it needs, run, render,
//! return the exit code. Shared steps (loading, logging) live here.

mod audit;
mod context;
mod discover;
mod graph;
mod history;
mod lock;
mod migrate;
mod pipeline;
mod validate;

use std::path::Path;

use clap::CommandFactory;

use crate::cli::{Cli, Command, EnvVars, GlobalArgs};
use crate::config::{self, LogFormat, LogLevel, Pipeline};
use crate::error::{CliError, render_diagnostic};
use crate::output::Printer;

/// Runs a parsed command line; returns the exit code.
pub(crate) async fn dispatch(cli: Cli, printer: Printer) -> Result<u8, CliError> {
    let global = &cli.global;
    match &cli.command {
        Command::Pipeline(args) => Box::pin(pipeline::run(global, args, false, printer)).await,
        Command::Plan(args) => Box::pin(pipeline::run(global, &args.into(), true, printer)).await,
        Command::Validate(args) => Box::pin(validate::run(global, args, printer)).await,
        Command::Graph(args) => graph::run(global, args, printer),
        Command::Discover(args) => Box::pin(discover::run(global, args, printer)).await,
        Command::Context => Box::pin(context::run(global, printer)).await,
        Command::Lock(command) => Box::pin(lock::run(global, command, printer)).await,
        Command::History(args) => Box::pin(history::history(global, args, printer)).await,
        Command::Diff(args) => Box::pin(history::diff(global, args, printer)).await,
        Command::Rollback(args) => Box::pin(pipeline::rollback(global, args, printer)).await,
        Command::Audit(command) => {
            init_logging(global, None)?;
            audit::run(command, printer)
        }
        Command::Migrate(args) => {
            init_logging(global, None)?;
            migrate::run(args, printer)
        }
        Command::Schema => {
            init_logging(global, None)?;
            let schema = serde_json::to_string_pretty(&config::json_schema()).unwrap_or_default();
            printer.stdout(&schema);
            Ok(0)
        }
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "secretsync", &mut buf);
            printer.stdout(&String::from_utf8_lossy(&buf));
            Ok(0)
        }
        Command::Version => {
            printer.stdout(&format!("secretsync {}", crate::version::LONG));
            Ok(0)
        }
    }
}

/// Reads an environment variable for `${VAR}` interpolation (names the user chose).
fn env_lookup(name: &str) -> Option<String> {
    crate::env::var(name)
}

/// Loads the pipeline file and prints its warnings.
fn load(global: &GlobalArgs, printer: Printer) -> Result<Pipeline, CliError> {
    let path = global.config();
    if global.config_is_fallback() {
        printer.stderr("note: reading config.yaml (there is no pipeline.yaml here)\n");
    }
    let pipeline = config::load(&path, &env_lookup)?;
    if !pipeline.warnings.is_empty() {
        let mut text = String::new();
        for warning in &pipeline.warnings {
            render_diagnostic(&mut text, warning, &path, printer.err);
        }
        printer.stderr(&text);
    }
    Ok(pipeline)
}

/// Starts logging to stderr — flags win over the pipeline file, which wins over the defaults
/// (`warn`, text); text logs carry no timestamp (terminals and CI runners add their own, and
/// output stays reproducible), JSON logs do — and, when configured, the export of traces
/// ([`crate::telemetry`]), which sees secretsync's spans whatever the log level.
fn init_logging(global: &GlobalArgs, pipeline: Option<&Pipeline>) -> Result<(), CliError> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let level = global
        .log_level
        .or(pipeline.and_then(|p| p.log.level))
        .unwrap_or(LogLevel::Warn);
    let format = global
        .log_format
        .or(pipeline.and_then(|p| p.log.format))
        .unwrap_or(LogFormat::Text);
    let name = match level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    };
    // Only secretsync's own events by default: libraries log raw HTTP answers (the AWS SDK's
    // credential chain dumps provider errors with headers at warn; vaultrs and rustify log every
    // non-2xx answer at error), and the stores classify and report failures themselves. A user
    // debugging a library asks for it with SECRETSYNC_LOG_DEPENDENCIES.
    let dependencies = crate::env::var(EnvVars::LOG_DEPENDENCIES).unwrap_or_default();
    let mut directives = format!("off,secretsync={name}");
    let mut ignored = Vec::new();
    for directive in dependencies.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if directive.parse::<tracing_subscriber::filter::Directive>().is_ok() {
            directives.push(',');
            directives.push_str(directive);
        } else {
            ignored.push(directive.to_owned());
        }
    }
    let telemetry = crate::telemetry::resolve(global.otlp_endpoint.as_deref(), &env_lookup)
        .map_err(|problem| CliError::usage(problem.message, Some(&problem.hint)))?;
    let mut warnings = telemetry.warnings;
    let traces = match &telemetry.destination {
        Some(destination) => match crate::telemetry::start(destination) {
            Ok(tracer) => Some(crate::telemetry::layer(tracer)),
            // Asked for on the command line: an error. From the environment: a warning.
            Err(problem) if destination.from == "--otlp-endpoint" => {
                return Err(CliError::usage(problem.message, Some(&problem.hint)));
            }
            Err(problem) => {
                warnings.push(format!("{}; no traces are sent ({})", problem.message, problem.hint));
                None
            }
        },
        None => None,
    };
    let filter = tracing_subscriber::EnvFilter::new(directives);
    let color = match global.color {
        crate::output::ColorChoice::Always => true,
        crate::output::ColorChoice::Never => false,
        crate::output::ColorChoice::Auto => {
            std::io::IsTerminal::is_terminal(&std::io::stderr()) && !crate::env::is_set(EnvVars::NO_COLOR)
        }
    };
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let subscriber = tracing_subscriber::registry().with(traces);
    let _ = match format {
        LogFormat::Json => subscriber.with(logs.json().with_filter(filter)).try_init(),
        LogFormat::Text => subscriber
            .with(logs.with_ansi(color).without_time().compact().with_filter(filter))
            .try_init(),
    };
    for directive in ignored {
        tracing::warn!(
            "ignoring `{directive}` in {}: not a log filter directive (like `aws_config=debug`)",
            EnvVars::LOG_DEPENDENCIES
        );
    }
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    Ok(())
}

/// Runs `work` inside the root span of command `name`, so that in traces its calls form one
/// trace (`pipeline`, `plan` and `rollback` have their run span instead).
async fn traced<T>(name: &str, work: impl std::future::Future<Output = T>) -> T {
    use tracing::Instrument as _;
    let span = tracing::info_span!("command", otel.name = tracing::field::Empty);
    crate::telemetry::name(&span, name);
    if let Some(warning) = crate::telemetry::continue_trace(&span) {
        tracing::warn!("{warning}");
    }
    work.instrument(span).await
}

/// The pipeline's merge store, for commands that only use it (`lock`, `history`, `diff`):
/// `needs` names what the command wants from it, `why` what a merge store gives.
async fn merge_store_of(
    pipeline: &Pipeline,
    needs: &str,
    why: &str,
) -> Result<std::sync::Arc<dyn crate::store::MergeStore>, CliError> {
    let Some(spec) = &pipeline.merge_store else {
        return Err(CliError::usage(
            format!("the pipeline has no `merge_store`, so no {needs}"),
            Some(&format!("configure `merge_store`: {why}")),
        ));
    };
    crate::store::BuildContext::new(pipeline)
        .merge_store(spec)
        .await
        .map_err(|e| CliError::Failed(e.context("cannot use the merge store")))
}

/// The config path as the user wrote it, for messages and reports.
fn shown(path: &Path) -> String {
    path.display().to_string()
}
