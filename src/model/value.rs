//! `SecretValue`: what a secret holds, with formatting that can never reveal it.

use std::fmt;

use serde_json::{Map, Value};

/// The three kinds of secret value. A value keeps its kind through every store: binary is
/// never turned into text, and text is never turned into JSON behind the user's back.
#[derive(Clone)]
pub enum SecretValue {
    /// A JSON object (Vault KV data is always one; `NAME.json` files and JSON `SecretString`s).
    Json(Map<String, Value>),
    /// UTF-8 text that is not a JSON object.
    Text(String),
    /// Arbitrary bytes.
    Binary(Vec<u8>),
}

/// The kind of a [`SecretValue`], safe to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueKind {
    /// A JSON object.
    Json,
    /// Text.
    Text,
    /// Bytes.
    Binary,
}

impl fmt::Display for ValueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Json => "json",
            Self::Text => "text",
            Self::Binary => "binary",
        })
    }
}

/// Why text holding a JSON object cannot be read as one without changing it: a JSON reader
/// keeps only one of two equal keys, and one nested beyond the parser's limit would turn the
/// object into text (another kind, and in a file store another file name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonProblem {
    /// The same key twice in one object (which one a reader keeps differs between readers).
    #[error("the JSON object has the key `{}` twice; remove one", .0.escape_debug())]
    DuplicateKey(String),
    /// Nested deeper than [`MAX_JSON_DEPTH`].
    #[error("the JSON object is nested more than {MAX_JSON_DEPTH} levels deep")]
    TooDeep,
}

/// How deep JSON may nest (`serde_json`'s own limit).
pub const MAX_JSON_DEPTH: usize = 128;

/// `bytes` as a JSON object: `Ok(None)` when they are not one (text that merely starts with
/// `{`), an error when they are one that cannot be read without changing it.
pub fn parse_json_object(bytes: &[u8]) -> Result<Option<Map<String, Value>>, JsonProblem> {
    let starts_like_object = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if !starts_like_object {
        return Ok(None);
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => {
            let mut checker = serde_json::Deserializer::from_slice(bytes);
            match serde::de::DeserializeSeed::deserialize(UniqueKeys, &mut checker) {
                Ok(()) => Ok(Some(map)),
                Err(err) => Err(JsonProblem::DuplicateKey(
                    err.to_string()
                        .strip_prefix(DUPLICATE)
                        .and_then(|rest| rest.split_once(DUPLICATE_END))
                        .map_or_else(String::new, |(key, _)| key.to_owned()),
                )),
            }
        }
        Err(err) if err.to_string().starts_with("recursion limit exceeded") => Err(JsonProblem::TooDeep),
        Ok(_) | Err(_) => Ok(None),
    }
}

const DUPLICATE: &str = "duplicate key \u{1}";
const DUPLICATE_END: &str = "\u{1}";

/// Walks JSON and fails on the first object holding a key twice.
#[derive(Clone, Copy)]
struct UniqueKeys;

impl<'de> serde::de::DeserializeSeed<'de> for UniqueKeys {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for UniqueKeys {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!("{DUPLICATE}{key}{DUPLICATE_END}")));
            }
            map.next_value_seed(self)?;
        }
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

impl SecretValue {
    /// Interprets a string the way secret stores that hold strings do: a JSON object becomes a
    /// JSON secret, anything else stays text. Stores reading sources use
    /// [`SecretValue::from_string_checked`], which refuses objects that would change.
    pub fn from_string(text: String) -> Self {
        Self::from_string_checked(text).unwrap_or_else(|(text, _)| Self::Text(text))
    }

    /// [`SecretValue::from_string`], refusing a JSON object that cannot be read as one without
    /// changing it (the text comes back with the reason).
    pub fn from_string_checked(text: String) -> Result<Self, (String, JsonProblem)> {
        match parse_json_object(text.as_bytes()) {
            Ok(Some(map)) => Ok(Self::Json(map)),
            Ok(None) => Ok(Self::Text(text)),
            Err(problem) => Err((text, problem)),
        }
    }

    /// Interprets bytes: UTF-8 goes through [`SecretValue::from_string`], anything else is binary.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        match String::from_utf8(bytes) {
            Ok(text) => Self::from_string(text),
            Err(err) => Self::Binary(err.into_bytes()),
        }
    }

    /// The kind of this value.
    pub fn kind(&self) -> ValueKind {
        match self {
            Self::Json(_) => ValueKind::Json,
            Self::Text(_) => ValueKind::Text,
            Self::Binary(_) => ValueKind::Binary,
        }
    }

    /// Equality as a secret store sees it: JSON objects compare by content (key order and
    /// number spelling such as `1` vs `1.0` do not matter); text and bytes compare exactly;
    /// different kinds are never equal.
    pub fn semantic_eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Json(a), Self::Json(b)) => map_semantic_eq(a, b),
            (Self::Text(a), Self::Text(b)) => a == b,
            (Self::Binary(a), Self::Binary(b)) => a == b,
            _ => false,
        }
    }

    /// The length of a JSON value's compact serialisation, counted without building it (`None`
    /// for text and binary). Planning and merging measure every value, and copying each object
    /// to measure it cost more than the rest of the plan.
    pub fn json_len(&self) -> Option<usize> {
        struct ByteCount(usize);
        impl std::io::Write for ByteCount {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0 += buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let Self::Json(map) = self else { return None };
        let mut count = ByteCount(0);
        // Writing to a counter cannot fail and an object always serialises; were it ever to,
        // the value counts as too large to measure.
        Some(serde_json::to_writer(&mut count, map).map_or(usize::MAX, |()| count.0))
    }

    /// The canonical serialised form: pretty JSON with sorted keys, the text, or the bytes.
    /// This is what stores write and what `--show-values` diffs.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Json(map) => {
                let mut out = serde_json::to_vec_pretty(map).unwrap_or_default();
                out.push(b'\n');
                out
            }
            Self::Text(text) => text.as_bytes().to_vec(),
            Self::Binary(bytes) => bytes.clone(),
        }
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretValue::{}(<redacted>)", self.kind())
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted {} secret>", self.kind())
    }
}

fn map_semantic_eq(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    if a.len() != b.len() {
        return false;
    }
    // serde_json's map is sorted unless some crate turns on `preserve_order`; then equal key
    // sets come out in the same order and a pairwise walk is enough. If the keys ever differ
    // in position (insertion-ordered maps), fall back to looking keys up.
    for ((ka, va), (kb, vb)) in a.iter().zip(b) {
        if ka != kb {
            return a
                .iter()
                .all(|(k, va)| b.get(k).is_some_and(|vb| json_semantic_eq(va, vb)));
        }
        if !json_semantic_eq(va, vb) {
            return false;
        }
    }
    true
}

/// JSON equality that ignores key order and number spelling (`1`, `1.0` and `1e0` are equal).
pub fn json_semantic_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => {
            x.as_str() == y.as_str()
                || canonical_number(x.as_str()).is_some_and(|cx| canonical_number(y.as_str()) == Some(cx))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_semantic_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => map_semantic_eq(x, y),
        _ => false,
    }
}

/// Whether a JSON number keeps its value when a server that parses JSON numbers into 64-bit
/// floats (Vault and OpenBao do) stores and returns it: `0.1`, `1.0` and `1e3` do;
/// `12345678901234567` (beyond 2^53) and `1e400` (out of range) do not.
pub fn survives_float64(number: &serde_json::Number) -> bool {
    let text = number.as_str();
    match text.parse::<f64>() {
        // `{:e}` writes the shortest digits that read back as the same float: what such a
        // server sends back.
        Ok(float) if float.is_finite() => {
            canonical_number(text).is_some_and(|c| canonical_number(&format!("{float:e}")) == Some(c))
        }
        _ => false,
    }
}

/// A JSON number as (negative, significant digits, decimal exponent), with no leading or
/// trailing zeros in the digits, so that equal numbers have equal forms however they are
/// spelled. Exact: no conversion to floating point. `None` when the exponent does not fit in
/// 64 bits: such a number is compared by its exact text, never rounded to a neighbour.
fn canonical_number(text: &str) -> Option<(bool, String, i64)> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, mut exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (
            &unsigned[..at],
            unsigned[at + 1..].trim_start_matches('+').parse::<i64>().ok()?,
        ),
        None => (unsigned, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits: String = int_part.chars().chain(frac_part.chars()).collect();
    exponent = exponent.checked_sub(i64::try_from(frac_part.len()).ok()?)?;
    let trimmed = digits.trim_start_matches('0');
    if trimmed.is_empty() {
        return Some((false, "0".to_owned(), 0));
    }
    digits = trimmed.to_owned();
    while digits.ends_with('0') {
        digits.pop();
        exponent = exponent.checked_add(1)?;
    }
    Some((negative, digits, exponent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> SecretValue {
        match v {
            Value::Object(m) => SecretValue::Json(m),
            _ => unreachable!(),
        }
    }

    #[test]
    fn numbers_compare_by_value_not_spelling() {
        let a: Value = serde_json::from_str(r#"{"n": 1, "f": 0.5, "big": 123456789012345678901234567890}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"big": 1.2345678901234567890123456789e29, "f": 5e-1, "n": 1.0}"#).unwrap();
        assert!(json_semantic_eq(&a, &b));
        let c: Value = serde_json::from_str(r#"{"n": 1, "f": 0.5, "big": 123456789012345678901234567891}"#).unwrap();
        assert!(
            !json_semantic_eq(&a, &c),
            "numbers beyond f64 precision must still differ"
        );
        assert!(json_semantic_eq(
            &json!(0),
            &serde_json::from_str::<Value>("-0.0").unwrap()
        ));
        assert!(!json_semantic_eq(&json!(-1), &json!(1)));
    }

    #[test]
    fn only_numbers_a_float64_holds_exactly_survive_it() {
        let number = |text: &str| serde_json::from_str::<serde_json::Number>(text).unwrap();
        for kept in [
            "0",
            "-0.0",
            "1",
            "1.0",
            "0.1",
            "5432",
            "1e3",
            "2.5E-7",
            "9007199254740992",
            "1e23",
            "-1.5",
        ] {
            assert!(survives_float64(&number(kept)), "{kept}");
        }
        for lost in [
            "12345678901234567",
            "9007199254740993",
            "0.10000000000000000001",
            "1e400",
            "-1e400",
        ] {
            assert!(!survives_float64(&number(lost)), "{lost}");
        }
        // Exponents at and beyond i64's range neither overflow nor compare equal to small ones.
        assert!(
            !survives_float64(&number("1.5e-9223372036854775808")),
            "a float holds it as 0: a different number"
        );
        assert!(!survives_float64(&number("10e9223372036854775807")));
        let (huge, one) = (number("1e99999999999999999999"), number("1"));
        assert!(!json_semantic_eq(&Value::Number(huge.clone()), &Value::Number(one)));
        let bigger = number("1e99999999999999999998");
        assert!(
            !json_semantic_eq(&Value::Number(huge.clone()), &Value::Number(bigger)),
            "two exponents beyond 64 bits are different numbers"
        );
        assert!(json_semantic_eq(&Value::Number(huge.clone()), &Value::Number(huge)));
    }

    #[test]
    fn kinds_never_compare_equal() {
        assert!(!SecretValue::Text("{}".into()).semantic_eq(&obj(json!({}))));
        assert!(!SecretValue::Text("a".into()).semantic_eq(&SecretValue::Binary(b"a".to_vec())));
        assert!(!obj(json!({"a": 1})).semantic_eq(&obj(json!({"a": 1, "b": null}))));
        assert!(!obj(json!({"a": [1, 2]})).semantic_eq(&obj(json!({"a": [2, 1]}))));
        assert!(!obj(json!({"a": "1"})).semantic_eq(&obj(json!({"a": 1}))));
    }

    #[test]
    fn formatting_never_shows_the_value() {
        let v = obj(json!({"password": "hunter2"}));
        assert_eq!(format!("{v:?}"), "SecretValue::json(<redacted>)");
        assert_eq!(v.to_string(), "<redacted json secret>");
        let t = SecretValue::Text("hunter2".into());
        assert!(!format!("{t:?}{t}").contains("hunter2"));
    }

    #[test]
    fn strings_become_json_only_when_they_are_objects() {
        assert_eq!(SecretValue::from_string(r#" {"a":1}"#.into()).kind(), ValueKind::Json);
        assert_eq!(SecretValue::from_string("[1,2]".into()).kind(), ValueKind::Text);
        assert_eq!(SecretValue::from_string("{not json".into()).kind(), ValueKind::Text);
        assert_eq!(SecretValue::from_bytes(vec![0xff, 0xfe]).kind(), ValueKind::Binary);
    }

    #[test]
    fn json_serialises_with_sorted_keys() {
        let v = SecretValue::from_string(r#"{"b":1,"a":{"d":2,"c":3}}"#.into());
        let text = String::from_utf8(v.to_bytes()).unwrap();
        assert!(text.find("\"a\"").unwrap() < text.find("\"b\"").unwrap());
        assert!(text.find("\"c\"").unwrap() < text.find("\"d\"").unwrap());
    }

    #[test]
    fn duplicate_keys_and_over_deep_objects_are_problems_not_silent_changes() {
        let dup = parse_json_object(br#"{"a": {"b": 1, "b": 2}}"#).unwrap_err();
        assert_eq!(dup, JsonProblem::DuplicateKey("b".into()));
        assert_eq!(dup.to_string(), "the JSON object has the key `b` twice; remove one");
        let deep = format!("{}1{}", r#"{"k":"#.repeat(200), "}".repeat(200));
        assert_eq!(parse_json_object(deep.as_bytes()), Err(JsonProblem::TooDeep));
        assert_eq!(
            parse_json_object(b"{not json"),
            Ok(None),
            "text that starts with a brace"
        );
        assert_eq!(parse_json_object(b"[1]"), Ok(None));
        assert!(
            parse_json_object(br#" {"n": 1e5, "a": [{"x": 1}, {"x": 2}]}"#)
                .unwrap()
                .is_some()
        );
        assert!(matches!(
            SecretValue::from_string_checked(r#"{"k": 1, "k": 2}"#.into()),
            Err((_, JsonProblem::DuplicateKey(_)))
        ));
    }
}
