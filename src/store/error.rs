//! `StoreError` and the error classes the engine (and later the resilience layer) act on.

use std::fmt;

use crate::model::SecretPath;

/// What kind of failure a store call had; decides retrying, breaking and exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The thing does not exist.
    NotFound,
    /// Rate limited: retry later.
    Throttled,
    /// A passing fault (timeout, 5xx, connection reset): retry.
    Transient,
    /// Credentials missing, expired or not allowed.
    Auth,
    /// The request or data is invalid; retrying will not help.
    Invalid,
    /// The secret exists but belongs to someone else.
    Conflict,
    /// The store cannot do this.
    Unsupported,
    /// The endpoint is failing and its circuit breaker is open: not called.
    Unavailable,
    /// Anything else.
    Fatal,
}

impl ErrorClass {
    /// A metrics label: `not_found`, `throttled`, …
    pub fn label(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Throttled => "throttled",
            Self::Transient => "transient",
            Self::Auth => "auth",
            Self::Invalid => "invalid",
            Self::Conflict => "conflict",
            Self::Unsupported => "unsupported",
            Self::Unavailable => "unavailable",
            Self::Fatal => "fatal",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotFound => "not found",
            Self::Throttled => "throttled",
            Self::Transient => "transient",
            Self::Auth => "permission denied",
            Self::Invalid => "invalid",
            Self::Conflict => "conflict",
            Self::Unsupported => "unsupported",
            Self::Unavailable => "unavailable (circuit open)",
            Self::Fatal => "fatal",
        })
    }
}

/// A failed store call. The message names the store and path, never a value.
#[derive(Debug, thiserror::Error)]
pub struct StoreError {
    /// The class.
    pub class: ErrorClass,
    /// What went wrong.
    pub message: String,
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
