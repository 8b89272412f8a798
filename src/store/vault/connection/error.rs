//! Vault's failures, classified for the resilience layer ([`VaultError`]), and why a login
//! failed ([`LoginFailure`]) — Vault's own messages, never a value, token or JWT.

use vaultrs::error::ClientError;

use crate::resilience::CallError;
use crate::store::ErrorClass;

/// A failed Vault call, classified. `detail` holds Vault's own messages (never a value or token).
#[derive(Debug, Clone)]
pub(crate) struct VaultError {
    pub(crate) status: Option<u16>,
    pub(crate) class: ErrorClass,
    pub(crate) detail: String,
}

impl VaultError {
    pub(crate) fn from_client(err: &ClientError) -> Self {
        // A response without `errors` (a soft-deleted KV v2 read) has only a status; its body
        // may hold secret data, so it is never kept.
        let (status, detail) = match err {
            ClientError::APIError { code, errors } => (Some(*code), errors.join("; ")),
            ClientError::RestClientError { source } => match source {
                rustify::errors::ClientError::ServerResponseError { code, .. } => (Some(*code), String::new()),
                // Transport failures: the cause chain says why (refused, timed out, TLS). Other
                // causes (response parsing) are not followed: they can quote the response.
                rustify::errors::ClientError::RequestError { source, .. }
                | rustify::errors::ClientError::ResponseError { source } => (None, transport_detail(source.as_ref())),
                other => (None, other.to_string()),
            },
            other => (None, other.to_string()),
        };
        let detail = detail.replace("1 error occurred:\n\t* ", "").trim().to_owned();
        let class = match status {
            Some(404) => ErrorClass::NotFound,
            Some(401 | 403) => ErrorClass::Auth,
            Some(429) => ErrorClass::Throttled,
            Some(400) if detail.contains("check-and-set") => ErrorClass::Conflict,
            Some(400 | 405 | 409 | 412 | 422) => ErrorClass::Invalid,
            Some(500..=599) | None => ErrorClass::Transient,
            Some(_) => ErrorClass::Fatal,
        };
        Self { status, class, detail }
    }

    pub(crate) fn is_not_found(&self) -> bool {
        self.status == Some(404)
    }

    /// `status 503: Vault is sealed` or the transport error.
    pub(crate) fn summary(&self) -> String {
        match (self.status, self.detail.is_empty()) {
            (Some(code), false) => format!("status {code}: {}", self.detail),
            (Some(code), true) => format!("status {code}"),
            (None, _) => self.detail.clone(),
        }
    }
}

impl CallError for VaultError {
    fn class(&self) -> ErrorClass {
        self.class
    }

    fn status(&self) -> Option<u16> {
        self.status
    }

    fn cause(&self) -> String {
        self.summary()
    }

    fn from_policy(class: ErrorClass, message: String) -> Self {
        Self {
            status: None,
            class,
            detail: message,
        }
    }

    fn with_note(mut self, note: &str) -> Self {
        self.detail = format!("{} ({note})", self.detail);
        self
    }
}

/// A failed login.
#[derive(Debug)]
pub(super) struct LoginFailure {
    /// Auth when Vault refused the credentials; Transient when it could not be asked; Invalid
    /// when the settings cannot work (a missing JWT file).
    pub(super) class: ErrorClass,
    pub(super) detail: String,
    pub(super) hint: Option<String>,
}

impl LoginFailure {
    pub(super) fn new(class: ErrorClass, detail: String, hint: Option<String>) -> Self {
        Self { class, detail, hint }
    }

    pub(super) fn static_token() -> Self {
        Self::new(ErrorClass::Auth, "a fixed token cannot log in again".to_owned(), None)
    }
}

/// `connection refused` rather than `Error sending HTTP request`: the innermost causes of a
/// transport error, deduplicated.
pub(super) fn transport_detail(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = crate::error_chain::causes(err);
    match parts.len() {
        0 => "the request failed".to_owned(),
        1 => parts.remove(0),
        _ => parts[1..].join(": "),
    }
}
