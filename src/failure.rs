//! `Failure`: one failure as a user sees it — its class, what went wrong, why (the causes) and how
//! to fix it — carried unchanged from the store that classified it to the report that shows it.
//!
//! Every failure is rendered by [`Failure::render`] (or, where one line is all there is room for,
//! [`Failure::one_line`]), in the house shape:
//!
//! ```text
//! error: <what went wrong>
//!   caused by: <underlying error>
//!   hint: <how to fix it>
//! ```
//!
//! Causes come from [`crate::error_chain`], the one place that flattens an error's `source()`
//! chain.

use std::fmt::Write as _;

use crate::error_chain::causes;
use crate::output::{Styler, one_line};
pub use crate::resilience::ErrorClass;

/// A failure: class, message, causes (outermost first) and an optional hint. Never holds a
/// secret value: messages name stores, paths and keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{}", self.one_line())]
pub struct Failure {
    /// What kind of failure (decides retries, and what a user can do).
    pub class: ErrorClass,
    /// What went wrong.
    pub message: String,
    /// Why, outermost first; each text once.
    pub causes: Vec<String>,
    /// How to fix it.
    pub hint: Option<String>,
}

impl Failure {
    /// A failure without causes or hint.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
            causes: Vec::new(),
            hint: None,
        }
    }

    /// The failure with a hint (replacing any).
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The failure with `hint` when there is one, else its own.
    #[must_use]
    pub fn with_optional_hint(mut self, hint: Option<String>) -> Self {
        if hint.is_some() {
            self.hint = hint;
        }
        self
    }

    /// The failure with `err` and its sources added as causes (texts already said are left out).
    #[must_use]
    pub fn caused_by(mut self, err: &(dyn std::error::Error + 'static)) -> Self {
        for text in causes(err) {
            self.add_cause(text);
        }
        self
    }

    /// This failure as the cause of a wider one: `message` says what could not be done, the old
    /// message becomes the first cause; class and hint stay.
    #[must_use]
    pub fn context(mut self, message: impl Into<String>) -> Self {
        let old = std::mem::replace(&mut self.message, message.into());
        self.causes.insert(0, old);
        self
    }

    fn add_cause(&mut self, text: String) {
        let said = |s: &String| s.contains(text.as_str());
        if !text.is_empty() && !said(&self.message) && !self.causes.iter().any(said) {
            self.causes.push(text);
        }
    }

    /// Message and causes joined (`cannot read X: access denied`), as written: for formats that
    /// escape text themselves (JSON, GitHub workflow commands).
    pub fn text(&self) -> String {
        let mut text = self.message.clone();
        for cause in &self.causes {
            text.push_str(": ");
            text.push_str(cause);
        }
        text
    }

    /// [`Failure::text`] on one line, control characters escaped (a line break shows as `⏎`):
    /// for terminals and logs.
    pub fn one_line(&self) -> String {
        one_line(&self.text()).into_owned()
    }

    /// Writes the failure as `{indent}{label} message`, then `caused by:` and `hint:` lines
    /// indented two more spaces — the one rendering of every failure a person reads.
    pub fn render(&self, out: &mut String, style: Styler, indent: &str, label: &str) {
        let _ = writeln!(out, "{indent}{label} {}", one_line(&self.message));
        render_tail(out, style, indent, &self.causes, self.hint.as_deref());
    }
}

/// The `caused by:` and `hint:` lines under a first line written at `indent`.
pub fn render_tail(out: &mut String, style: Styler, indent: &str, causes: &[String], hint: Option<&str>) {
    for cause in causes {
        let _ = writeln!(out, "{indent}  {} {}", style.dimmed("caused by:"), one_line(cause));
    }
    if let Some(hint) = hint {
        let _ = writeln!(out, "{indent}  {} {}", style.cyan("hint:"), one_line(hint));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: inner detail")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn causes_are_flattened_once_and_context_moves_the_message_down() {
        let err = Outer(std::io::Error::other("inner detail"));
        assert_eq!(causes(&err), vec!["outer: inner detail".to_owned()]);
        let failure = Failure::new(ErrorClass::Transient, "cannot list `s3://b/`")
            .caused_by(&std::io::Error::other("connection refused"))
            .with_hint("check the endpoint")
            .context("cannot read the merge store");
        assert_eq!(
            failure.one_line(),
            "cannot read the merge store: cannot list `s3://b/`: connection refused"
        );
        let mut out = String::new();
        failure.render(&mut out, Styler { color: false }, "  ", "error:");
        assert_eq!(
            out,
            "  error: cannot read the merge store\n    caused by: cannot list `s3://b/`\n    caused by: connection refused\n    hint: check the endpoint\n"
        );
    }

    #[test]
    fn a_cause_the_message_already_says_is_left_out() {
        let failure =
            Failure::new(ErrorClass::Auth, "s3://b: access denied").caused_by(&std::io::Error::other("access denied"));
        assert!(failure.causes.is_empty(), "{failure:?}");
    }
}
