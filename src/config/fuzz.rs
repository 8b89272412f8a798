//! Property tests over the pipeline loader and the secret value parser with hostile input:
//! random bytes, and the bundled example mutated with the characters YAML gives meaning to.
//! Nothing may panic, and no message may echo a value taken from the environment. Bounded:
//! a fixed number of cases with small inputs, so it runs in CI in about a second.

use std::path::Path;

use proptest::prelude::*;

use crate::model::{SecretValue, parse_json_object};

/// Every variable the pipeline asks for resolves to this; it must never appear in a message.
const CANARY: &str = "CANARY-value-from-env";

const EXAMPLE: &str = include_str!("../../examples/quickstart/pipeline.yaml");

fn load(text: &str) -> Option<String> {
    let env = |_: &str| Some(CANARY.to_owned());
    match super::load_str(text, Path::new("fuzz.yaml"), Path::new("."), &env) {
        Ok(_) => None,
        Err(err) => Some(format!("{err} {err:?}")),
    }
}

/// One edit of the example: insert a YAML-significant snippet, or cut a range.
#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, &'static str),
    Cut(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let snippets = prop::sample::select(vec![
        "{", "}", "[", "]", ":", ", ", "- ", "\n", "  ", "&a ", "*a", "<<: *a", "!!str ", "!custom ", "|\n", ">-\n",
        "#", "'", "\"", "${X}", "${", "$${Y}", "\t", "\u{0}", "? ", "---\n", "~", "0x1f", "1e999", "-1", "yes", "null",
    ]);
    prop_oneof![
        (0..EXAMPLE.len(), snippets).prop_map(|(at, s)| Edit::Insert(at, s)),
        (0..EXAMPLE.len(), 1usize..40).prop_map(|(at, n)| Edit::Cut(at, n)),
    ]
}

fn apply(edits: &[Edit]) -> String {
    let mut text = EXAMPLE.to_owned();
    for edit in edits {
        let floor = |t: &str, mut i: usize| {
            i = i.min(t.len());
            while !t.is_char_boundary(i) {
                i -= 1;
            }
            i
        };
        match edit {
            Edit::Insert(at, snippet) => {
                let at = floor(&text, *at);
                text.insert_str(at, snippet);
            }
            Edit::Cut(at, n) => {
                let start = floor(&text, *at);
                let end = floor(&text, start + n);
                text.replace_range(start..end, "");
            }
        }
    }
    text
}

/// Pipelines with one checked setting taken from the environment.
const SETTINGS: &[&str] = &[
    "sources: { s: { file: { path: ./x } } }\ntargets: { T: { imports: [s], account_id: \"{V}\" } }\n",
    "sources: { s: { file: { path: ./x } } }\ntargets: { T: { imports: [s], region: \"{V}\" } }\n",
    "sources: { s: { file: { path: ./x } } }\ntargets: { T: { imports: [s], role_arn: \"{V}\" } }\n",
    "sources: { s: { file: { path: ./x } } }\ntargets: { T: { imports: [s], secret_prefix: \"{V} \" } }\n",
    "sources: { s: { file: { path: ./x } } }\ntargets: { T: { imports: [s], file: { path: ./t } } }\nmerge_store: { s3: { bucket: \"{V}\" } }\n",
    "sources: { s: { vault: { mount: \"{V}/../x\" } } }\ntargets: { T: { imports: [s], file: { path: ./t } } }\n",
    "sources: { s: { vault: { mount: kv, paths: [\"{V}/*\"] } } }\ntargets: { T: { imports: [s], file: { path: ./t } } }\n",
    "sources: { s: { vault: { mount: kv, namespace: \"{V}/ root\" } } }\ntargets: { T: { imports: [s], file: { path: ./t } } }\n",
    "log: { level: \"{V}\" }\nsources: { s: { file: { path: ./x } } }\ntargets: { T: { imports: [s], file: { path: ./t } } }\n",
    "vault: { address: \"{V}\" }\nsources: { s: { vault: { mount: kv } } }\ntargets: { T: { imports: [s], file: { path: ./t } } }\n",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_loader_never_panics_or_echoes_environment_values_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Some(message) = load(&String::from_utf8_lossy(&bytes)) {
            prop_assert!(!message.contains(CANARY), "{message}");
        }
    }

    #[test]
    fn the_loader_never_panics_or_echoes_environment_values_on_a_mutated_example(edits in prop::collection::vec(edit(), 1..8)) {
        let text = apply(&edits);
        if let Some(message) = load(&text) {
            prop_assert!(!message.contains(CANARY), "{message}");
        }
    }

    #[test]
    fn a_checked_setting_from_the_environment_is_never_echoed(
        (template, junk) in (prop::sample::select(SETTINGS.to_vec()), "[a-z0-9/ .:*{}-]{0,12}")
    ) {
        let value = format!("{CANARY}{junk}");
        let env = |_: &str| Some(value.clone());
        let text = template.replace("{V}", "${SETTING}");
        if let Err(err) = super::load_str(&text, Path::new("fuzz.yaml"), Path::new("."), &env) {
            let message = format!("{err} {err:?}");
            prop_assert!(!message.contains(CANARY), "{message}");
            prop_assert!(message.contains("${SETTING}"), "{message}");
        }
    }

    #[test]
    fn the_value_parser_never_panics_and_what_it_accepts_round_trips(
        text in "[{}\\[\\]:,\"a-c0-9eE+\\-. \\\\ntu\\u{1}]{0,64}"
    ) {
        let parsed = parse_json_object(text.as_bytes());
        if let Ok(Some(map)) = parsed {
            let value = SecretValue::Json(map);
            let again = SecretValue::from_string_checked(String::from_utf8(value.to_bytes()).unwrap());
            prop_assert!(matches!(&again, Ok(v) if v.semantic_eq(&value)), "{text:?}");
        }
        let value = SecretValue::from_string(text.clone());
        if text.len() > 3 {
            let shown = format!("{value:?} {value}");
            prop_assert!(!shown.contains(&text), "{}", shown);
        }
    }
}
