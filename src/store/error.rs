//! `StoreError`: a failed store call, classified ([`ErrorClass`], defined beside the policy that
//! acts on it in `resilience`), with the secret concerned, a hint and the underlying error.

use std::fmt;

use crate::failure::Failure;
use crate::model::SecretPath;
pub use crate::resilience::ErrorClass;

/// A failed store call. The message names the store and path, never a value.
#[derive(Debug, thiserror::Error)]
pub struct StoreError {
    /// Decides retries (`resilience`) and what the failure means for a target.
    pub class: ErrorClass,
    /// What went wrong, naming the store (`s3://bucket/prefix: cannot …`).
    pub message: String,
    /// How to fix it, when the store knows.
    pub hint: Option<String>,
    /// The secret concerned, if any.
    pub path: Option<SecretPath>,
    /// The underlying error.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
    /// How long the service asked us to wait before trying again (`Retry-After`).
    pub retry_after: Option<std::time::Duration>,
}

impl StoreError {
    /// A new error.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
            hint: None,
            path: None,
            source: None,
            retry_after: None,
        }
    }

    /// The error with `note` appended to its message (`… (gave up after 5 attempts)`).
    #[must_use]
    pub fn with_note(mut self, note: &str) -> Self {
        self.message = format!("{} ({note})", self.message);
        self
    }

    /// Records how to fix it.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The failure as the report carries it: class, message, hint, and the underlying error's
    /// texts that the message does not already say.
    pub fn failure(&self) -> Failure {
        let failure = Failure::new(self.class, self.message.clone()).with_optional_hint(self.hint.clone());
        match &self.source {
            Some(source) => failure.caused_by(source.as_ref()),
            None => failure,
        }
    }

    /// Records the service's `Retry-After`.
    #[must_use]
    pub fn retrying_after(mut self, wait: std::time::Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// Records the path concerned.
    #[must_use]
    pub fn at(mut self, path: &SecretPath) -> Self {
        self.path = Some(path.clone());
        self
    }

    /// Records the underlying error.
    #[must_use]
    pub fn caused_by(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Classifies an I/O error.
    pub fn from_io(message: impl Into<String>, err: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let class = match err.kind() {
            K::NotFound => ErrorClass::NotFound,
            K::PermissionDenied => ErrorClass::Auth,
            K::Interrupted | K::TimedOut | K::WouldBlock => ErrorClass::Transient,
            K::InvalidData | K::InvalidInput | K::AlreadyExists | K::NotADirectory | K::IsADirectory => {
                ErrorClass::Invalid
            }
            _ => ErrorClass::Fatal,
        };
        Self::new(class, message).caused_by(err)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl crate::resilience::CallError for StoreError {
    fn class(&self) -> ErrorClass {
        self.class
    }

    fn retry_after(&self) -> Option<std::time::Duration> {
        self.retry_after
    }

    fn cause(&self) -> String {
        self.message.clone()
    }

    fn from_policy(class: ErrorClass, message: String) -> Self {
        Self::new(class, message)
    }

    fn with_note(self, note: &str) -> Self {
        StoreError::with_note(self, note)
    }
}
