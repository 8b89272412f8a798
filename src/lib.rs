//! secretsync: synchronise secrets across HashiCorp Vault, AWS Secrets Manager and local
//! stores from one YAML pipeline.
//!
//! A run has two phases. **Merge**: for every target, in inheritance order, deep-merge its
//! imports into the desired secret set (and keep it in the merge store). **Sync**: read each
//! target's actual state, plan the difference, print it, and apply it unless it is a dry run.
//! See `ARCHITECTURE.md` for the code map and the invariants.

pub mod audit;
pub mod cli;
mod commands;
pub mod config;
pub mod discovery;
pub mod duration;
pub mod engine;
pub mod env;
pub mod error;
pub mod error_chain;
pub mod failure;
pub mod files;
pub mod filter;
pub mod graph;
pub mod history;
pub mod merge;
pub mod metrics;
pub mod migrate;
pub mod model;
pub mod notify;
pub mod output;
pub mod plan;
pub mod pr_comment;
pub mod report;
pub mod resilience;
pub mod store;
pub mod suggest;
pub mod telemetry;
pub mod url_text;
pub mod version;

#[cfg(test)]
mod architecture;

use clap::Parser as _;

/// Parses the command line, runs the command, prints any error, and returns the exit code.
pub fn main() -> std::process::ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() { 2 } else { 0 };
            let _ = err.print();
            return std::process::ExitCode::from(code);
        }
    };
    let printer = output::Printer::new(cli.global.color, env::is_set(env::EnvVars::NO_COLOR));
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            printer.stderr(&format!("error: cannot start the async runtime: {err}"));
            return std::process::ExitCode::from(2);
        }
    };
    let code = match runtime.block_on(commands::dispatch(cli, printer)) {
        Ok(code) => code,
        Err(err) => {
            printer.stderr(&err.render(printer.err));
            err.exit_code()
        }
    };
    // Outside the runtime: the exporter's blocking HTTP client must not run on a runtime thread.
    if let Some(warning) = telemetry::finish() {
        printer.stderr(&format!("warning: {warning}"));
    }
    // Every write has finished by now; what may remain is a read abandoned after Ctrl-C, which
    // must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    std::process::ExitCode::from(code)
}
