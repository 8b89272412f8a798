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

    /// Size in bytes (the tests compare [`payload_len`] with it).
    #[cfg(test)]
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

/// The size of `value`'s [`Payload`], without building it: every desired secret is checked
/// against every target while planning (a million checks for 10,000 secrets into 100
/// accounts), and copying each JSON object to measure it cost more than the rest of the plan.
pub(crate) fn payload_len(value: &SecretValue) -> usize {
    match value {
        SecretValue::Json(_) => value.json_len().unwrap_or(usize::MAX),
        SecretValue::Text(text) => text.len(),
        SecretValue::Binary(bytes) => bytes.len(),
    }
}

/// Why `value` cannot be stored, if it cannot.
pub(crate) fn value_problem(value: &SecretValue) -> Option<String> {
    let size = payload_len(value);
    (size > MAX_VALUE)
        .then(|| format!("the value is {size} bytes; Secrets Manager holds at most {MAX_VALUE} bytes per secret"))
}

/// A `ClientRequestToken` for writing `payload` over version `current` of `name`.
///
/// AWS keeps the token as the new version's `VersionId`, visible to anyone allowed
/// `DescribeSecret` and in `CloudTrail`, so it must not let a reader test guesses of the value:
/// it is an HMAC keyed with [`run_key`], a secret drawn once per run and never stored. Within a
/// run the same inputs give the same token (a retried write creates no second version); across
/// runs tokens are unpredictable; A→B→A gives three different tokens because the current
/// version changes each time.
pub(crate) fn request_token(name: &str, current: Option<&str>, payload: &Payload) -> String {
    keyed_request_token(run_key(), name, current, payload)
}

/// [`request_token`] under an explicit key.
fn keyed_request_token(key: &[u8; 32], name: &str, current: Option<&str>, payload: &Payload) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(name.as_bytes());
    mac.update(&[0]);
    mac.update(current.unwrap_or("").as_bytes());
    mac.update(&[0]);
    mac.update(match payload {
        Payload::String(_) => b"s",
        Payload::Binary(_) => b"b",
    });
    mac.update(payload.bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// The key of this run's request tokens: 32 bytes from the operating system's random source,
/// drawn on first use and kept only in memory.
fn run_key() -> &'static [u8; 32] {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let mut key = [0; 32];
        // Without an OS random source there is no safe token; no supported platform lacks one.
        getrandom::fill(&mut key).expect("the operating system's random source is unavailable");
        key
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
        // `{"k":"…"}` is 8 bytes around the text: the JSON payload, not the text, is measured.
        let json = |len: usize| {
            let serde_json::Value::Object(map) = serde_json::json!({ "k": "x".repeat(len) }) else {
                unreachable!()
            };
            SecretValue::Json(map)
        };
        assert_eq!(value_problem(&json(MAX_VALUE - 8)), None);
        let over = value_problem(&json(MAX_VALUE - 7)).unwrap();
        assert!(over.contains("65537 bytes"), "{over}");
    }

    #[test]
    fn payload_len_is_the_length_of_the_payload() {
        let json = serde_json::json!({
            "plain": "v",
            "quote\"and\\slash": "line\nbreak\ttab\u{1}",
            "unicode": "ünï 🔑",
            "nested": {"list": [1, 2.5, -3e40, null, true], "empty": {}},
            "number": 12_345_678_901_234_u64,
        });
        let serde_json::Value::Object(map) = json else {
            unreachable!()
        };
        for value in [
            SecretValue::Json(map),
            SecretValue::Json(serde_json::Map::new()),
            SecretValue::Text("ünï text".into()),
            SecretValue::Binary(vec![0, 255, 7]),
        ] {
            assert_eq!(payload_len(&value), Payload::of(&value).len(), "{}", value.kind());
        }
    }

    #[test]
    fn tokens_change_with_the_current_version_and_are_hex_of_valid_length() {
        let a = Payload::String("A".into());
        let t1 = request_token("n", Some("v1"), &a);
        assert_eq!(
            t1,
            request_token("n", Some("v1"), &a),
            "a retry within the run reuses it"
        );
        assert_ne!(t1, request_token("n", Some("v3"), &a), "A→B→A differs");
        assert_ne!(t1, request_token("n", Some("v1"), &Payload::Binary(b"A".to_vec())));
        assert_eq!(t1.len(), 64);
        assert!(t1.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn tokens_depend_on_the_run_key_so_a_reader_cannot_test_guesses_of_the_value() {
        use sha2::Digest as _;
        let a = Payload::String("hunter2".into());
        let under = |key: u8| keyed_request_token(&[key; 32], "n", None, &a);
        assert_ne!(under(1), under(2), "another run, another token");
        // The token an unkeyed hash of the inputs would give, which anyone could recompute.
        let unkeyed = sha2::Sha256::digest(b"n\0\0shunter2")
            .iter()
            .fold(String::new(), |mut hex, b| {
                let _ = write!(hex, "{b:02x}");
                hex
            });
        assert_ne!(request_token("n", None, &a), unkeyed);
        assert_ne!(run_key(), &[0; 32], "the key is drawn, not defaulted");
    }
}
