//! Deep merge of imports into a target's desired secret set.
//!
//! Pure and synchronous on purpose: the merge rules are the product's contract with users who
//! come from the Python/Terraform pipeline, so they are tested exhaustively (property tests and
//! a differential test against Python's `deepmerge`) without any I/O.
//!
//! The rules are those of `deepmerge.always_merger`:
//! - objects merge recursively, key by key;
//! - lists append (left items, then right items; duplicates kept);
//! - anything else — scalars, `null`, and type conflicts — is replaced by the right-hand value.
//!
//! One deliberate difference from the Go tool (jbcom/secretsync): a right-hand `null` replaces
//! the left value, as Python does; the Go tool kept the left value.
//!
//! At the secret level, two imports that provide the same path merge their values when both
//! are JSON objects; otherwise the later import's value replaces the earlier one.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::model::{SecretSet, SecretValue};

/// Merges `right` into `left` in place with `always_merger` semantics.
pub fn merge_json(left: &mut Value, right: &Value) {
    match (left, right) {
        (Value::Object(l), Value::Object(r)) => merge_objects(l, r),
        (Value::Array(l), Value::Array(r)) => l.extend(r.iter().cloned()),
        (l, r) => *l = r.clone(),
    }
}

/// Merges the keys of `right` into `left` in place.
pub fn merge_objects(left: &mut Map<String, Value>, right: &Map<String, Value>) {
    for (key, r) in right {
        match left.get_mut(key) {
            Some(l) => merge_json(l, r),
            None => {
                left.insert(key.clone(), r.clone());
            }
        }
    }
}

/// Merges two secret values: JSON objects deep-merge; otherwise `right` wins.
///
/// Shares `right` (or `left`) instead of copying when nothing needs to change.
pub fn merge_values(left: &Arc<SecretValue>, right: &Arc<SecretValue>) -> Arc<SecretValue> {
    match (&**left, &**right) {
        (SecretValue::Json(l), SecretValue::Json(r)) => {
            if l.is_empty() {
                return Arc::clone(right);
            }
            if r.is_empty() {
                return Arc::clone(left);
            }
            let mut merged = l.clone();
            merge_objects(&mut merged, r);
            Arc::new(SecretValue::Json(merged))
        }
        _ => Arc::clone(right),
    }
}

/// The largest JSON value a merge may produce, serialised. Lists append at every level of
/// inheritance, so a source reached by two paths through the graph doubles its lists each
/// time: without a bound, a 2 KB pipeline asks for gigabytes. No store holds a secret near
/// this size (Secrets Manager: 64 KiB).
pub const MAX_MERGED_VALUE: usize = 4 * 1024 * 1024;

/// A merge that would produce a value over [`MAX_MERGED_VALUE`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the merged value of `{path}` would be larger than {} MiB", MAX_MERGED_VALUE / (1024 * 1024))]
pub struct Oversized {
    /// The secret whose merged value is too large.
    pub path: crate::model::SecretPath,
}

impl Oversized {
    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        "lists append at every merge: check whether the same source reaches this target through two imports (a diamond in the inheritance graph)"
    }
}

/// Merges layers in order (later layers take precedence) into one set.
pub fn merge_layers<'a>(layers: impl IntoIterator<Item = &'a SecretSet>) -> Result<SecretSet, Oversized> {
    let mut layers = layers.into_iter();
    let mut merged = layers.next().cloned().unwrap_or_default();
    for layer in layers {
        merge_into(&mut merged, layer)?;
    }
    Ok(merged)
}

/// Merges `layer` into `merged` in place.
pub fn merge_into(merged: &mut SecretSet, layer: &SecretSet) -> Result<(), Oversized> {
    for (path, value) in layer {
        match merged.get_mut(path) {
            Some(existing) => {
                let result = merge_values(existing, value);
                // Inputs were within the bound, so the result is at most twice it.
                if !Arc::ptr_eq(&result, value)
                    && !Arc::ptr_eq(&result, existing)
                    && result.json_len().unwrap_or(0) > MAX_MERGED_VALUE
                {
                    return Err(Oversized { path: path.clone() });
                }
                *existing = result;
            }
            None => {
                merged.insert(path.clone(), Arc::clone(value));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SecretPath;
    use proptest::prelude::*;
    use serde_json::json;

    fn merged(l: Value, r: &Value) -> Value {
        let mut l = l;
        merge_json(&mut l, r);
        l
    }

    #[test]
    fn documented_rules() {
        assert_eq!(
            merged(json!({"a": {"x": 1}}), &json!({"a": {"y": 2}})),
            json!({"a": {"x": 1, "y": 2}})
        );
        assert_eq!(
            merged(json!({"a": [1, 2]}), &json!({"a": [2, 3]})),
            json!({"a": [1, 2, 2, 3]})
        );
        assert_eq!(merged(json!({"a": 1}), &json!({"a": "1"})), json!({"a": "1"}));
        assert_eq!(
            merged(json!({"a": 1}), &json!({"a": null})),
            json!({"a": null}),
            "right null replaces (Python), unlike the Go tool"
        );
        assert_eq!(merged(json!({"a": null}), &json!({"a": 1})), json!({"a": 1}));
        assert_eq!(merged(json!({"a": {"x": 1}}), &json!({"a": [1]})), json!({"a": [1]}));
        assert_eq!(
            merged(json!({"a": [1]}), &json!({"a": {"x": 1}})),
            json!({"a": {"x": 1}})
        );
        assert_eq!(merged(json!({"a": [1]}), &json!({"a": []})), json!({"a": [1]}));
        assert_eq!(
            merged(json!({"a": {"x": 1}}), &json!({"a": {}})),
            json!({"a": {"x": 1}})
        );
        assert_eq!(merged(json!({"a": true}), &json!({"a": 1})), json!({"a": 1}));
    }

    #[test]
    fn secret_level_rules() {
        let p = SecretPath::parse("db").unwrap();
        let json_a = Arc::new(SecretValue::from_string(r#"{"user":"a","port":1}"#.into()));
        let json_b = Arc::new(SecretValue::from_string(r#"{"port":2}"#.into()));
        let text = Arc::new(SecretValue::Text("plain".into()));
        let set = |v: &Arc<SecretValue>| SecretSet::from([(p.clone(), Arc::clone(v))]);

        let out = merge_layers([&set(&json_a), &set(&json_b)]).unwrap();
        assert!(out[&p].semantic_eq(&SecretValue::from_string(r#"{"user":"a","port":2}"#.into())));
        let out = merge_layers([&set(&json_a), &set(&text)]).unwrap();
        assert!(out[&p].semantic_eq(&text), "a non-object later import replaces");
        let out = merge_layers([&set(&text), &set(&json_a)]).unwrap();
        assert!(out[&p].semantic_eq(&json_a));
        assert!(merge_layers(std::iter::empty::<&SecretSet>()).unwrap().is_empty());
    }

    pub(crate) fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-5i64..5).prop_map(|n| json!(n)),
            "[a-c]{0,2}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map("[a-d]", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn arb_object() -> impl Strategy<Value = Value> {
        prop::collection::btree_map("[a-d]", arb_json(), 0..4).prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    /// Objects whose leaves are all strings at fixed depth: no type conflicts, no lists.
    fn arb_objects_only() -> impl Strategy<Value = Value> {
        prop::collection::btree_map(
            "[a-c]",
            prop::collection::btree_map("[a-c]", "[x-z]".prop_map(Value::String), 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            0..3,
        )
        .prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    /// Removes every list, so that laws that lists (append) break can be checked on the rest.
    fn without_lists(v: &Value) -> Value {
        match v {
            Value::Array(_) => Value::Null,
            Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), without_lists(v))).collect()),
            other => other.clone(),
        }
    }

    proptest! {
        #[test]
        fn empty_object_is_an_identity(a in arb_object()) {
            prop_assert_eq!(merged(a.clone(), &json!({})), a.clone());
            prop_assert_eq!(merged(json!({}), &a), a);
        }

        #[test]
        fn objects_only_merge_is_associative(a in arb_objects_only(), b in arb_objects_only(), c in arb_objects_only()) {
            // Associativity holds only while no type conflict or list is involved: with
            // {k:[1]}, {k:1}, {k:[2]} the grouping changes the result, as in Python.
            let left = merged(merged(a.clone(), &b), &c);
            let right = merged(a, &merged(b, &c));
            prop_assert_eq!(left, right);
        }

        #[test]
        fn list_free_merge_is_idempotent(a in arb_object()) {
            let a = without_lists(&a);
            prop_assert_eq!(merged(a.clone(), &a), a);
        }

        #[test]
        fn right_scalars_win(a in arb_object(), key in "[a-d]", v in prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::Bool), "[x-z]{1,3}".prop_map(Value::String)]) {
            let right = json!({ key.clone(): v.clone() });
            let out = merged(a, &right);
            prop_assert_eq!(&out[&key], &v);
        }

        #[test]
        fn every_key_survives(a in arb_object(), b in arb_object()) {
            let out = merged(a.clone(), &b);
            for key in a.as_object().unwrap().keys().chain(b.as_object().unwrap().keys()) {
                prop_assert!(out.as_object().unwrap().contains_key(key));
            }
        }

        #[test]
        fn lists_keep_every_item_in_order(x in prop::collection::vec(arb_json(), 0..4), y in prop::collection::vec(arb_json(), 0..4)) {
            let out = merged(json!({"l": x.clone()}), &json!({"l": y.clone()}));
            let mut expected = x;
            expected.extend(y);
            prop_assert_eq!(&out["l"], &Value::Array(expected));
        }
    }

    #[test]
    fn a_diamond_that_doubles_lists_stops_at_the_bound_naming_the_secret() {
        let p = SecretPath::parse("app/config").unwrap();
        let mut layer: SecretSet = SecretSet::new();
        layer.insert(
            p.clone(),
            Arc::new(SecretValue::from_string(format!(
                r#"{{"l": ["{}"]}}"#,
                "x".repeat(1000)
            ))),
        );
        // Each level imports the level below twice: lists double every time.
        let mut level = layer;
        let mut failed = None;
        for depth in 0..40 {
            match merge_layers([&level, &level]) {
                Ok(next) => level = next,
                Err(err) => {
                    failed = Some((depth, err));
                    break;
                }
            }
        }
        let (depth, err) = failed.expect("the bound stops the doubling");
        assert!(depth < 15, "stopped after {depth} doublings");
        assert_eq!(err.path, p);
        assert_eq!(
            err.to_string(),
            "the merged value of `app/config` would be larger than 4 MiB"
        );
    }
}
