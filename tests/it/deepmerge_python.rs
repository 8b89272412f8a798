//! Differential test: our deep merge against Python's `deepmerge.always_merger` (the
//! semantics users of the Python/Terraform pipeline rely on) on 1,000 generated pairs.
//!
//! `scripts/python-env` creates the project's `.venv` and installs the pinned `deepmerge`;
//! without Python 3 this test fails and says so (CI installs it).

use std::process::Command;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

use crate::support::{Test, repo, venv_python};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..3).prop_map(|n| serde_json::json!(n)),
        "[a-c]{0,2}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-d]", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map("[a-d]", arb_json(), 0..5).prop_map(|m| Value::Object(m.into_iter().collect()))
}

#[test]
fn deep_merge_agrees_with_python_deepmerge() {
    let python = venv_python();

    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        proptest::test_runner::TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha),
    );
    let strategy = (arb_object(), arb_object());
    let pairs: Vec<(Value, Value)> = (0..1000)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect();
    let env = Test::new();
    let input: String = pairs
        .iter()
        .map(|(a, b)| serde_json::to_string(&[a, b]).unwrap() + "\n")
        .collect();
    env.write("pairs.jsonl", input);
    let oracle = Command::new(&python)
        .arg(repo().join("scripts/deepmerge_oracle.py"))
        .arg(env.path().join("pairs.jsonl"))
        .output()
        .unwrap();
    assert!(oracle.status.success(), "{}", String::from_utf8_lossy(&oracle.stderr));
    let expected: Vec<Value> = String::from_utf8(oracle.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(expected.len(), pairs.len());
    let mut list_appends = 0;
    for ((left, right), python_result) in pairs.into_iter().zip(expected) {
        let mut ours = left.clone();
        secretsync::merge::merge_json(&mut ours, &right);
        assert_eq!(ours, python_result, "merge({left}, {right})");
        list_appends += usize::from(ours.to_string().matches('[').count() > left.to_string().matches('[').count());
    }
    assert!(
        list_appends > 50,
        "the generated pairs must exercise list appends ({list_appends})"
    );
}
