//! One line of a connectivity check (`validate --check-vault`, `--check-aws`, `context`):
//! what was checked, whether it passed, and how to fix it. Rendered by the commands.

/// One line of the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLine {
    /// Passed.
    pub ok: bool,
    /// What was checked (`http://vault:8200`, ``source `analytics` ``).
    pub subject: String,
    /// What was found.
    pub detail: String,
    /// How to fix a failure.
    pub hint: Option<String>,
}

impl CheckLine {
    pub(crate) fn pass(subject: String, detail: String) -> Self {
        Self {
            ok: true,
            subject,
            detail,
            hint: None,
        }
    }

    pub(crate) fn fail(subject: String, detail: String, hint: Option<String>) -> Self {
        Self {
            ok: false,
            subject,
            detail,
            hint,
        }
    }
}
