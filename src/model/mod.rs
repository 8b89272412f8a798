//! The vocabulary every other module speaks: secret paths, secret values and sets of them.
//!
//! These types exist so that the two properties the product cannot get wrong are enforced by
//! the type system rather than by care: a path can never escape its scope (`..`, NUL and
//! absolute paths are unrepresentable), and a value can never be printed by accident
//! (`Debug`/`Display` redact).

mod path;
mod value;

pub use path::{PathError, SecretPath};
pub use value::{
    JsonProblem, MAX_JSON_DEPTH, SecretValue, ValueKind, json_semantic_eq, parse_json_object, survives_float64,
};

use std::collections::BTreeMap;
use std::sync::Arc;

/// Tag (or metadata key) marking a secret as created by secretsync. The config refuses it as a
/// user tag; the stores write and read it.
pub const OWNER_TAG: &str = "managed-by";
/// Value of [`OWNER_TAG`].
pub const OWNER_VALUE: &str = "secretsync";
/// Tag (or metadata key) naming the target that owns a secret.
pub const TARGET_TAG: &str = "secretsync:target";

/// A set of secrets keyed by path, in sorted (deterministic) order.
///
/// Values are reference-counted: a source imported by a hundred targets is held once.
pub type SecretSet = BTreeMap<SecretPath, Arc<SecretValue>>;
