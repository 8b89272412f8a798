//! Config diagnostics: one message per problem, each with a location and an optional hint.

use std::fmt;
use std::path::{Path, PathBuf};

/// A position in the pipeline file (1-based line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Mark {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

impl Mark {
    /// A mark at `line`:`col`.
    pub fn new(line: usize, col: usize) -> Self {
        Self { line, col }
    }
}

/// Whether a diagnostic stops the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The config is invalid.
    Error,
    /// The config is valid but something deserves attention.
    Warning,
}

/// One problem found in a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Where.
    pub mark: Mark,
    /// What is wrong, as a lowercase sentence fragment without a final period.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// An error at `mark`.
    pub fn error(mark: Mark, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            mark,
            message: message.into(),
            hint: None,
        }
    }

    /// A warning at `mark`.
    pub fn warning(mark: Mark, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            mark,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds a hint.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a hint if there is one.
    #[must_use]
    pub fn with_optional_hint(mut self, hint: Option<String>) -> Self {
        if hint.is_some() {
            self.hint = hint;
        }
        self
    }

    /// `file:line:col: message`.
    pub fn located<'a>(&'a self, file: &'a Path) -> impl fmt::Display + 'a {
        Located { file, diagnostic: self }
    }
}

struct Located<'a> {
    file: &'a Path,
    diagnostic: &'a Diagnostic,
}

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.diagnostic;
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            d.mark.line,
            d.mark.col,
            d.message
        )
    }
}

/// Why a pipeline file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the pipeline file {}", .path.display())]
    Read {
        /// The path as given.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is invalid; every problem is listed.
    #[error("{} is invalid ({} error{})", .path.display(), .errors.len(), if .errors.len() == 1 { "" } else { "s" })]
    Invalid {
        /// The path as given.
        path: PathBuf,
        /// Every error, sorted by position.
        errors: Vec<Diagnostic>,
        /// Warnings found along the way.
        warnings: Vec<Diagnostic>,
    },
}
