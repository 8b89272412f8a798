//! Secrets Manager's rules for names and values, checked while planning so that a secret AWS
//! would refuse is an `invalid` line in the plan rather than a failed write.

use std::fmt::Write as _;

use crate::model::SecretValue;

/// Longest secret name Secrets Manager accepts.
pub(crate) const MAX_NAME: usize = 512;
/// Largest secret value (string or binary), in bytes.
pub(crate) const MAX_VALUE: usize = 65_536;

/// Why `name` is not a valid Secrets Manager name, if it is not.
pub(crate) fn name_problem(name: &str) -> Option<String> {
    if name.len() > MAX_NAME {
        return Some(format!(
            "the name is {} characters; Secrets Manager names are at most {MAX_NAME}",
            name.len()
        ));
    }
    let bad: Vec<char> = name
        .chars()
        .filter(|c| !(c.is_ascii_alphanumeric() || "/_+=.@-".contains(*c)))
        .collect();
    if !bad.is_empty() {
        let mut shown: Vec<String> = bad.iter().map(|c| format!("{c:?}")).collect();
        shown.dedup();
        return Some(format!(
            "`{name}` is not a valid Secrets Manager name: {} not allowed (use letters, digits and `/_+=.@-`)",
            shown.join(", ")
        ));
    }
    None
}

/// The bytes Secrets Manager would store for `value`: `SecretString` (JSON or text) or
/// `SecretBinary`.
pub(crate) enum Payload {
    /// `SecretString`.
    String(String),
    /// `SecretBinary`.
    Binary(Vec<u8>),
}

impl Payload {
    /// How a value is stored.
    pub(crate) fn of(value: &SecretValue) -> Self {
        match value {
            SecretValue::Json(map) => Self::String(serde_json::Value::Object(map.clone()).to_string()),
            SecretValue::Text(text) => Self::String(text.clone()),
            SecretValue::Binary(bytes) => Self::Binary(bytes.clone()),
        }
    }

    /// Size in bytes.
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::String(s) => s.len(),
            Self::Binary(b) => b.len(),
        }
    }

    /// The bytes (for hashing).
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Self::String(s) => s.as_bytes(),
            Self::Binary(b) => b,
        }
    }
}

/// Why `value` cannot be stored, if it cannot.
pub(crate) fn value_problem(value: &SecretValue) -> Option<String> {
    let size = Payload::of(value).len();
    (size > MAX_VALUE)
        .then(|| format!("the value is {size} bytes; Secrets Manager holds at most {MAX_VALUE} bytes per secret"))
}

/// A `ClientRequestToken` for writing `payload` over version `current` of `name`: the same
/// inputs give the same token (a retried write creates no second version), and A→B→A gives
/// three different tokens because the current version changes each time.
pub(crate) fn request_token(name: &str, current: Option<&str>, payload: &Payload) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(name.as_bytes());
    hash.update([0]);
    hash.update(current.unwrap_or("").as_bytes());
    hash.update([0]);
    hash.update(match payload {
        Payload::String(_) => b"s",
        Payload::Binary(_) => b"b",
    });
    hash.update(payload.bytes());
    hash.finalize().iter().fold(String::with_capacity(64), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_aws_rules() {
        assert_eq!(name_problem("app/db/main_1+x=y.z@w-v"), None);
        let spaced = name_problem("app/with space").unwrap();
        assert!(spaced.contains("' ' not allowed"), "{spaced}");
        assert!(name_problem("ünï").unwrap().contains("'ü'"));
        assert!(name_problem(&"a".repeat(513)).unwrap().contains("at most 512"));
    }

    #[test]
    fn values_over_64_kib_are_refused_and_the_message_holds_no_value() {
        let big = SecretValue::Text("x".repeat(70 * 1024));
        let problem = value_problem(&big).unwrap();
        assert!(problem.contains("71680 bytes") && !problem.contains("xxx"), "{problem}");
        assert_eq!(value_problem(&SecretValue::Binary(vec![0; MAX_VALUE])), None);
    }

    #[test]
    fn tokens_change_with_the_current_version_and_are_hex_of_valid_length() {
        let a = Payload::String("A".into());
        let t1 = request_token("n", Some("v1"), &a);
        assert_eq!(t1, request_token("n", Some("v1"), &a), "deterministic");
        assert_ne!(t1, request_token("n", Some("v3"), &a), "A→B→A differs");
        assert_ne!(t1, request_token("n", Some("v1"), &Payload::Binary(b"A".to_vec())));
        assert_eq!(t1.len(), 64);
        assert!(t1.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
