//! Errors that end a command, their exit code, and how they are shown:
//!
//! ```text
//! error: <what went wrong>
//!   caused by: <underlying error>
//!   hint: <how to fix it>
//! ```
//!
//! Failures of single targets are not errors here: they are recorded in the run report and
//! the run goes on.

use std::fmt::Write as _;

use crate::config::{ConfigError, Diagnostic, Severity};
use crate::output::Styler;

/// An error that stops a command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The pipeline file is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Bad flags or names on the command line.
    #[error("{message}")]
    Usage {
        /// What is wrong.
        message: String,
        /// How to fix it.
        hint: Option<String>,
    },
    /// A store could not be built or reached (the merge store, for `lock`): the failure says
    /// what, why and how to fix it.
    #[error(transparent)]
    Failed(crate::failure::Failure),
    /// An input file could not be read.
    #[error("cannot read {what} {path}")]
    Input {
        /// What was being read.
        what: &'static str,
        /// Where.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `migrate` could not convert its input.
    #[error(transparent)]
    Migrate(#[from] crate::migrate::MigrateError),
    /// An audit log could not be appended to or did not verify.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// Pushing metrics to the Pushgateway failed (after the run's results were printed).
    #[error(transparent)]
    Push(#[from] crate::metrics::export::PushError),
    /// Writing an output file failed.
    #[error("cannot write {what} to {path}")]
    Output {
        /// What was being written.
        what: &'static str,
        /// Where.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl CliError {
    /// A usage error with a hint.
    pub fn usage(message: impl Into<String>, hint: Option<&str>) -> Self {
        Self::Usage {
            message: message.into(),
            hint: hint.map(str::to_owned),
        }
    }

    /// The process exit code: every error is 2 (SPEC §4).
    pub fn exit_code(&self) -> u8 {
        2
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::Config(ConfigError::Read { .. }) => {
                Some("pass the pipeline file with `--config FILE` (or set SECRETSYNC_CONFIG); without it, `pipeline.yaml` (else `config.yaml`) in this folder is read".to_owned())
            }
            Self::Config(ConfigError::Invalid { .. }) => None,
            Self::Usage { hint, .. } => hint.clone(),
            Self::Failed(failure) => failure.hint.clone(),
            Self::Output { .. } => Some("check that the directory exists and is writable".to_owned()),
            Self::Input { .. } => Some("check the path".to_owned()),
            Self::Audit(crate::audit::AuditError::Broken { .. } | crate::audit::AuditError::Unreadable { .. }) => Some(
                "the log was changed after it was written; compare it with a copy or the head hash you kept, and start a new log file for the next runs".to_owned(),
            ),
            Self::Audit(_) => Some("check the path (`--audit-log FILE`) and that its folder is writable".to_owned()),
            Self::Migrate(_) => Some("fix the input file; see docs/migration.md for the formats".to_owned()),
            Self::Push(_) => Some(
                "check --metrics-push (a Pushgateway base URL such as http://pushgateway:9091) and that it is reachable; the run itself finished as reported above".to_owned(),
            ),
        }
    }

    /// The rendered message for stderr.
    pub fn render(&self, style: Styler) -> String {
        let mut out = String::new();
        if let Self::Config(ConfigError::Invalid { path, errors, warnings }) = self {
            for d in warnings.iter().chain(errors) {
                render_diagnostic(&mut out, d, path, style);
            }
            let _ = writeln!(out, "{} {self}", style.red("error:"));
            return out;
        }
        if let Self::Failed(failure) = self {
            failure.render(&mut out, style, "", &style.red("error:"));
            return out;
        }
        let _ = writeln!(out, "{} {self}", style.red("error:"));
        let causes = std::error::Error::source(self)
            .map(crate::error_chain::causes)
            .unwrap_or_default();
        crate::failure::render_tail(&mut out, style, "", &causes, self.hint().as_deref());
        out
    }
}

/// Renders one config diagnostic: `error: file:line:col: message` and its hint.
pub fn render_diagnostic(out: &mut String, d: &Diagnostic, path: &std::path::Path, style: Styler) {
    let label = match d.severity {
        Severity::Error => style.red("error:"),
        Severity::Warning => style.yellow("warning:"),
    };
    let _ = writeln!(out, "{label} {}", d.located(path));
    if let Some(hint) = &d.hint {
        let _ = writeln!(out, "  {} {hint}", style.cyan("hint:"));
    }
}
