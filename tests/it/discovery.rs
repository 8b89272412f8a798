//! `secretsync discover` and discovery errors with an accounts list in a file (no AWS needed),
//! and the discovery cache.

use crate::support::Test;

const ACCOUNTS: &str = "\
- id: \"111111111111\"
  name: Data Prod
  tags: { env: prod }
- id: \"222222222222\"
  name: Data Dev
- \"333333333333\"
- id: 444444444444
  name: web-prod
";

fn env_with(group: &str) -> Test {
    let env = Test::new();
    env.write("src/x.json", r#"{"a": 1}"#);
    env.write("accounts.yaml", ACCOUNTS);
    env.write(
        "config.yaml",
        format!(
            "sources:\n  shared: {{ file: {{ path: ./src }} }}\n\
             targets:\n  Base: {{ file: {{ path: ./base }}, imports: [shared] }}\n\
             dynamic_targets:\n{group}"
        ),
    );
    env
}

const DATA_GROUP: &str = concat!(
    "  data:\n",
    "    discovery: { accounts_list: { source: \"file:accounts.yaml\" } }\n",
    "    name_template: \"data-{{account_id}}\"\n",
    "    imports: [shared]\n",
    "    exclude: [\"222222222222\"]\n",
);

#[test]
fn discover_lists_targets_and_skipped_accounts_as_text_and_json() {
    let env = env_with(DATA_GROUP);
    let text = env.args(&["discover"]).code(0);
    insta::assert_snapshot!("discover_text", text.snapshot());
    let json = env.args(&["discover", "--output", "json"]).code(0);
    let parsed: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(parsed["discovery_version"], 2);
    insta::assert_snapshot!("discover_json", json.snapshot());
}

#[test]
fn colliding_names_fail_the_group_and_name_both_accounts() {
    let env = env_with(
        "  data:\n    discovery: { accounts_list: { source: \"file:accounts.yaml\" } }\n    name_template: \"{{tag:team}}x\"\n    imports: [shared]\n",
    );
    let out = env.args(&["discover"]).code(2);
    assert!(
        out.stdout
            .contains("accounts 111111111111 and 222222222222 both get the target name `x`"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_discovered_name_equal_to_a_static_target_fails_the_group() {
    let env = env_with(
        "  data:\n    discovery: { accounts_list: { source: \"file:accounts.yaml\" } }\n    name_template: \"Base{{tag:none}}\"\n    imports: [shared]\n    exclude: [\"222222222222\", \"333333333333\", \"444444444444\"]\n",
    );
    let out = env.args(&["discover"]).code(2);
    assert!(
        out.stdout
            .contains("gets the target name `Base`, which a static target already has"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_failing_group_does_not_stop_static_targets() {
    let env = env_with(
        "  data:\n    discovery: { accounts_list: { source: \"file:missing.yaml\" } }\n    imports: [shared]\n",
    );
    let out = env.args(&["pipeline", "--discover"]).code(2);
    assert!(
        out.stdout.contains(
            "error (not found): discovery for `data` failed\n  caused by: cannot read the accounts list `missing.yaml`\n"
        ),
        "{}",
        out.stdout
    );
    assert!(env.exists("base/x.json"), "the static target was synced");
}

#[test]
fn without_discover_the_run_says_how_to_enable_it() {
    let env = env_with(DATA_GROUP);
    let out = env.args(&["pipeline"]).code(0);
    assert!(out.stderr.contains("are only synced with --discover"), "{}", out.stderr);
}

#[test]
fn the_discovery_cache_is_reused_while_fresh_and_never_for_another_config() {
    let env = env_with(DATA_GROUP);
    let cached = |extra: &[&str]| {
        let mut args = vec!["discover", "--discovery-cache", "cache/discovery.json"];
        args.extend_from_slice(extra);
        env.run(&args)
    };
    let first = cached(&[]);
    assert_eq!(first.code, 0);
    assert!(env.exists("cache/discovery.json"));
    // The list changes, but the cache is fresh and the config is the same.
    env.write("accounts.yaml", "- \"999999999999\"\n");
    assert_eq!(cached(&[]).stdout, first.stdout, "served from the cache");
    assert!(
        cached(&["--discovery-ttl", "0s"]).stdout.contains("999999999999"),
        "an expired cache is ignored"
    );
    // Any change to the pipeline file invalidates it.
    env.write("accounts.yaml", ACCOUNTS);
    cached(&[]);
    env.write("accounts.yaml", "- \"888888888888\"\n");
    let config = env.read("config.yaml");
    env.write("config.yaml", format!("{config}# changed\n"));
    assert!(
        cached(&[]).stdout.contains("888888888888"),
        "another config never reuses the cache"
    );
}

/// The cache holds accounts, not targets: whatever is written into it goes through the same
/// checks fresh discovery makes, and it is private.
#[test]
fn an_edited_discovery_cache_is_checked_like_fresh_discovery() {
    let group = DATA_GROUP
        .replace("data-{{account_id}}", "{{account_name}}")
        .replace("[\"222222222222\"]", "[\"222222222222\", \"333333333333\"]");
    let env = env_with(&group);
    let args = [
        "discover",
        "--output",
        "json",
        "--discovery-cache",
        "cache/discovery.json",
    ];
    env.args(&args).code(0);
    env.assert_private_file("cache/discovery.json");
    let mut cache: serde_json::Value = serde_json::from_str(&env.read("cache/discovery.json")).unwrap();
    let account = |id: &str, name: &str| serde_json::json!({ "id": id, "name": name, "status": "ACTIVE", "tags": {}, "found_by": "edited" });
    cache["accounts"]["data"] = serde_json::json!([account("555555555555", "../../escape")]);
    cache["accounts"]["ghost"] = serde_json::json!([account("666666666666", "ghost")]);
    env.write("cache/discovery.json", cache.to_string());
    let out = env.args(&args).code(0);
    let parsed: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let groups = parsed["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "a group the pipeline lacks is ignored: {groups:?}");
    assert_eq!(groups[0]["targets"][0]["name"], "escape", "rendered by the template");
    assert_eq!(groups[0]["targets"][0]["imports"], serde_json::json!(["shared"]));

    cache["accounts"]["data"] = serde_json::json!([account("../../etc", "x")]);
    env.write("cache/discovery.json", cache.to_string());
    let out = env
        .args(&["discover", "--discovery-cache", "cache/discovery.json"])
        .code(2);
    assert!(
        out.stdout
            .contains("`../../etc` (edited) is not a 12-digit AWS account id"),
        "{}",
        out.stdout
    );
}
