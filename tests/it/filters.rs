//! `filter:` on sources and targets, end to end: path globs and regular expressions on a folder
//! store (with the guarantee that a secret outside a target's filter is never written or
//! deleted), Secrets Manager tags on moto, KV v2 `custom_metadata` on the real Vault server, and
//! bad patterns as located config errors.

use serde_json::{Value, json};
use testbed::support::{Services, vault_request};

use crate::support::Test;
use crate::support::aws::names;
use crate::support::scenario::Scenario;
use crate::support::vault::Kv;

fn plan_json(test: &Test) -> Value {
    serde_json::from_str(&test.args(&["plan", "-o", "json"]).code(0).stdout).unwrap()
}

fn files_under(test: &Test, dir: &str) -> Vec<String> {
    let root = test.path().join(dir);
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if !path.file_name().unwrap().to_string_lossy().starts_with('.') {
                out.push(path.strip_prefix(&root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// Source filter: `include` conditions AND together (a glob and a regex), patterns in one
/// condition OR together, `exclude` wins. Target filter: narrows what the target manages — a
/// secret it synced before and that now falls outside is left alone even with
/// `delete_orphans`, and the plan says how many.
#[test]
fn globs_and_regexes_combine_and_a_target_never_touches_what_is_outside_its_filter() {
    let test = Test::new()
        .file("src/app/db.json", r#"{"k": 1}"#)
        .file("src/app/api.json", r#"{"k": 2}"#)
        .file("src/app/cache.json", r#"{"k": 3}"#)
        .file("src/app/legacy-db.json", r#"{"k": 4}"#)
        .file("src/shared/x/db.json", r#"{"k": 5}"#)
        .file("src/other/db.json", r#"{"k": 6}"#);
    let pipeline = |target_filter: &str| {
        format!(
            "sources:\n\
             \x20 s:\n\
             \x20   file: {{ path: ./src }}\n\
             \x20   filter:\n\
             \x20     include: {{ paths: [\"app/*\", \"shared/**\"], regex: [\"db\", \"api$\"] }}\n\
             \x20     exclude: {{ paths: [\"**/legacy-*\"] }}\n\
             targets:\n\
             \x20 T: {{ imports: [s], file: {{ path: ./out }}{target_filter} }}\n\
             pipeline: {{ sync: {{ delete_orphans: true }} }}\n"
        )
    };
    test.write("config.yaml", pipeline(""));
    test.args(&["pipeline"]).code(0);
    // app/db and app/api (glob AND regex); shared/x/db (`**`); not app/cache (regex fails),
    // not other/db (glob fails), not app/legacy-db (excluded although included).
    assert_eq!(
        files_under(&test, "out"),
        ["app/api.json", "app/db.json", "shared/x/db.json"]
    );

    // The target now manages `app/` only: shared/x/db stays although it is no longer desired
    // there and deletes are on.
    test.write(
        "config.yaml",
        pipeline(", filter: { include: { paths: [\"app/**\"] } }"),
    );
    test.write("src/app/db.json", r#"{"k": 10}"#);
    let json = plan_json(&test);
    let target = &json["targets"][0];
    assert_eq!(
        target["filters"],
        json!({
            "target": { "not_included": 1, "excluded": 0 },
            "left_alone": 1,
            "sources": { "s": { "not_included": 2, "excluded": 1 } }
        })
    );
    let paths: Vec<&str> = target["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["app/db"], "only the change inside the filter");
    let applied = test.args(&["pipeline"]).code(0);
    assert!(
        applied
            .stdout
            .contains("1 secret outside this target's filters left alone"),
        "{}",
        applied.stdout
    );
    assert_eq!(
        files_under(&test, "out"),
        ["app/api.json", "app/db.json", "shared/x/db.json"]
    );
    assert_eq!(test.read("out/app/db.json").trim(), "{\n  \"k\": 10\n}");

    // Without the target filter the same run deletes it: the filter is what kept it.
    test.write("config.yaml", pipeline(""));
    test.remove("src/shared/x/db.json");
    test.args(&["pipeline"]).code(0);
    assert_eq!(files_under(&test, "out"), ["app/api.json", "app/db.json"]);
}

/// A bad glob or regex is a config error at its own position, with a hint; a label condition
/// on a store without labels is refused.
#[test]
fn bad_patterns_and_misplaced_label_conditions_are_located_config_errors() {
    let test = Test::new().pipeline(
        "sources:\n\
         \x20 s:\n\
         \x20   file: { path: ./src }\n\
         \x20   filter: { include: { regex: [\"ok\", \"(unclosed\"] } }\n\
         targets:\n\
         \x20 T:\n\
         \x20   imports: [s]\n\
         \x20   file: { path: ./out }\n\
         \x20   filter: { exclude: { paths: [\"a/[b\"], tags: { team: x } } }\n",
    );
    let out = test.args(&["validate"]).code(2);
    assert!(
        out.stderr.contains(
            "config.yaml:4:40: `sources.s.filter.include.regex`: `(unclosed` is not a valid regular expression"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("config.yaml:9:34: `targets.T.filter.exclude.paths`: `a/[b` is not a valid glob"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("`targets.T.filter.exclude.tags` applies to Secrets Manager sources only"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint: globs use `*`"), "{}", out.stderr);
}

/// Secrets Manager tags on moto: a tag with several allowed values (OR), a second tag that
/// must also hold (AND), and an excluding tag that wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_manager_sources_filter_by_tags() {
    let sc = Scenario::new().await;
    let source = sc.s.aws_account().await;
    let sm_source = crate::support::aws::secrets_in(&sc.s, &source.account_id).await;
    let tagged = |name: &'static str, tags: &'static [(&'static str, &'static str)]| {
        let sm = sm_source.clone();
        async move {
            let mut create = sm
                .create_secret()
                .name(name)
                .secret_string(json!({ "v": name }).to_string());
            for (k, v) in tags {
                create = create.tags(aws_sdk_secretsmanager::types::Tag::builder().key(*k).value(*v).build());
            }
            create.send().await.unwrap();
        }
    };
    tagged("pay-db", &[("team", "payments"), ("env", "prod")]).await;
    tagged("core-db", &[("team", "core"), ("env", "prod")]).await;
    tagged("web-db", &[("team", "web"), ("env", "prod")]).await;
    tagged("pay-dev", &[("team", "payments"), ("env", "dev")]).await;
    tagged(
        "pay-old",
        &[("team", "payments"), ("env", "prod"), ("deprecated", "yes")],
    )
    .await;
    sc.write(
        "config.yaml",
        format!(
            "aws: {{ region: us-east-1 }}\n\
             sources:\n\
             \x20 sm:\n\
             \x20   aws: {{ account_id: \"{}\" }}\n\
             \x20   filter:\n\
             \x20     include: {{ tags: {{ team: [payments, core], env: prod }} }}\n\
             \x20     exclude: {{ tags: {{ deprecated: \"yes\" }} }}\n\
             targets:\n\
             \x20 App: {{ imports: [sm], account_id: \"{}\", secret_prefix: out/ }}\n",
            source.account_id, sc.caller.account_id
        ),
    );
    sc.args(&["pipeline"]).code(0);
    let written: Vec<String> = names(&sc.sm().await)
        .await
        .into_iter()
        .filter(|n| n.starts_with("out/"))
        .collect();
    assert_eq!(written, ["out/core-db", "out/pay-db"]);
    let json = plan_json(&sc);
    assert_eq!(
        json["targets"][0]["filters"]["sources"]["sm"],
        json!({ "not_included": 2, "excluded": 1 })
    );
}

/// KV v2 `custom_metadata` on the real Vault server: only secrets whose metadata says
/// `sync: "yes"` are read into the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_sources_filter_by_custom_metadata() {
    let s = Services::get();
    let (addr, token) = (s.vault_addr.as_str(), s.vault_token.as_str());
    let source = s.vault_mount(2).await;
    let kv = Kv::shared(&s, &source, 2);
    for name in ["a", "b", "c"] {
        kv.seed(name, &json!({ "v": name })).await;
    }
    for (name, sync) in [("a", "yes"), ("b", "no")] {
        let body = json!({ "custom_metadata": { "sync": sync } });
        let (status, _) = vault_request(addr, token, "POST", &format!("{source}/metadata/{name}"), Some(body)).await;
        assert_eq!(status, 204);
    }
    let test = Test::new().vault_token(token).pipeline(format!(
        "vault: {{ address: {addr} }}\n\
         sources: {{ v: {{ vault: {{ mount: {source} }}, filter: {{ include: {{ custom_metadata: {{ sync: \"yes\" }} }} }} }} }}\n\
         targets: {{ T: {{ imports: [v], file: {{ path: ./out }} }} }}\n"
    ));
    test.args(&["pipeline"]).code(0);
    assert_eq!(files_under(&test, "out"), ["a.json"]);
    let json = plan_json(&test);
    assert_eq!(
        json["targets"][0]["filters"]["sources"]["v"],
        json!({ "not_included": 2, "excluded": 0 })
    );
}

/// A secret outside the target's filter still occupies its file: a desired JSON `config`
/// (kept in `config.json`) must not replace an excluded text secret `config.json` — not even
/// with `--adopt`, since the target does not manage it.
#[test]
fn a_write_never_lands_on_the_file_of_a_secret_outside_the_filter() {
    let test = Test::new()
        .file("src/config.json", r#"{"k": 1}"#)
        .file("out/config.json", "a human's notes")
        .pipeline(
            "sources: { s: { file: { path: ./src } } }\n\
             targets:\n\
             \x20 T:\n\
             \x20   imports: [s]\n\
             \x20   file: { path: ./out }\n\
             \x20   filter: { exclude: { paths: [\"*.json\"] } }\n",
        );
    for args in [&["pipeline"][..], &["pipeline", "--adopt"][..]] {
        let out = test.args(args).code(2);
        assert!(
            out.stdout
                .contains("would be stored as `config.json`, which holds `config.json`, outside this target's filter"),
            "{}",
            out.stdout
        );
        assert_eq!(test.read("out/config.json"), "a human's notes");
    }
}

/// Empty filter blocks and lists would mean "everything" (or nothing): refused where written.
#[test]
fn empty_filter_blocks_and_lists_are_config_errors() {
    let test = Test::new().pipeline(
        "sources:\n\
         \x20 s: { file: { path: ./src }, filter: { exclude: {} } }\n\
         targets:\n\
         \x20 T: { imports: [s], file: { path: ./out }, filter: { include: { paths: [] } } }\n",
    );
    let out = test.args(&["validate"]).code(2);
    assert!(
        out.stderr
            .contains("config.yaml:2:50: `sources.s.filter.exclude` names no condition"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("`targets.T.filter.include.paths` is an empty list, which no secret matches"),
        "{}",
        out.stderr
    );
}

/// `custom_metadata` on a mount that turns out to be KV v1 (detected, not configured) would
/// read no labels, so an `exclude` would keep everything: the run refuses the source instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_metadata_on_a_detected_kv_v1_mount_is_refused() {
    let s = Services::get();
    let (addr, token) = (s.vault_addr.as_str(), s.vault_token.as_str());
    let source = s.vault_mount(1).await;
    Kv::shared(&s, &source, 1).seed("a", &json!({ "v": "a" })).await;
    let test = Test::new().vault_token(token).pipeline(format!(
        "vault: {{ address: {addr} }}\n\
         sources: {{ v: {{ vault: {{ mount: {source} }}, filter: {{ exclude: {{ custom_metadata: {{ sync: \"no\" }} }} }} }} }}\n\
         targets: {{ T: {{ imports: [v], file: {{ path: ./out }} }} }}\n"
    ));
    let out = test.args(&["pipeline"]).code(2);
    assert!(
        out.stdout
            .contains("the source's filter names `custom_metadata`, but the mount is KV version 1"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(files_under(&test, "out").is_empty());
}
