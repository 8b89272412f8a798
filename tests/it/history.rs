//! Revisions, `history`, `diff` and `rollback` end to end: a bad push undone on moto (S3 merge
//! store, Secrets Manager target) and on the real Vault server (KV v2 merge store and target),
//! with the source unavailable during the rollback; retention at its boundary on a folder
//! merge store.

use serde_json::{Value, json};
use testbed::support::{Services, vault_request};

use crate::support::Test;
use crate::support::aws::string_value;
use crate::support::scenario::{Scenario, canary};
use crate::support::vault::Kv;

/// The changes of a `--report` JSON file: `(target, secret, action)`, sorted.
fn changes(report: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for target in report["targets"].as_array().into_iter().flatten() {
        for change in target["changes"].as_array().into_iter().flatten() {
            out.push((
                target["name"].as_str().unwrap_or_default().to_owned(),
                change["path"].as_str().unwrap_or_default().to_owned(),
                change["action"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    out.sort();
    out
}

fn triple(target: &str, secret: &str, action: &str) -> (String, String, String) {
    (target.to_owned(), secret.to_owned(), action.to_owned())
}

/// Asserts the steps every scenario shares after runs A and B: `history` lists both with who
/// ran them, `diff 1 2` is exactly B's change, and `rollback --to 1 --dry-run` plans exactly
/// its inverse (`restore_action`: how the removed secret comes back).
fn assert_history_diff_and_dry_rollback(test: &Test, target: &str, who: &str, restore_action: &str) {
    let history = test.args(&["history"]).code(0);
    let listed = &history.stdout;
    let (two, one) = (
        listed.find("revision 2 ").expect("revision 2 listed"),
        listed.find("revision 1 ").expect("revision 1 listed"),
    );
    assert!(two < one, "newest first:\n{listed}");
    assert!(listed.contains("by tester ("), "the OS user:\n{listed}");
    assert!(listed.contains(who), "the service identity `{who}`:\n{listed}");
    assert!(
        listed.contains(&format!(
            "  {target}: 0 created, 1 updated, 1 deleted (1 secrets)\n    ~ db\n    - api\n"
        )),
        "{listed}"
    );
    let json: Value = serde_json::from_str(&test.args(&["history", "-o", "json"]).code(0).stdout).unwrap();
    let revisions = json["revisions"].as_array().unwrap();
    assert_eq!(revisions.len(), 2);
    assert_eq!(revisions[0]["targets"][target]["deleted"], json!(["api"]));
    assert_eq!(revisions[1]["targets"][target]["created"], json!(["api", "db"]));
    assert_eq!(revisions[0]["identity"]["os_user"], "tester");

    let diff = test.args(&["diff", "1", "2", "-o", "json"]).code(0);
    assert_eq!(
        changes(&serde_json::from_str(&diff.stdout).unwrap()),
        [triple(target, "api", "delete"), triple(target, "db", "update")],
        "the diff is exactly run B's change"
    );
    let human = test.args(&["diff", "1", "2"]).code(0);
    assert!(
        human.stdout.contains("  - api\n  ~ db\n      keys: ~password"),
        "{}",
        human.stdout
    );

    test.args(&["rollback", "--to", "1", "--dry-run", "--report", "plan.json"])
        .code(0);
    assert_eq!(
        changes(&test.read_json("plan.json")),
        [triple(target, "api", restore_action), triple(target, "db", "update")],
        "the rollback plans exactly the inverse"
    );
    let after_dry = test.args(&["history", "-o", "json"]).code(0);
    assert_eq!(
        serde_json::from_str::<Value>(&after_dry.stdout).unwrap()["revisions"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "a dry run records no revision"
    );
}

/// After the rollback: a rollback revision on top, nothing left to do, no value anywhere.
fn assert_rolled_back(test: &Test, target: &str) {
    let again = test.args(&["rollback", "--to", "1", "--exit-code"]).code(0);
    assert!(
        again.stdout.contains("0 created, 0 updated, 0 deleted"),
        "{}",
        again.stdout
    );
    test.args(&["pipeline", "--sync-only", "--exit-code"]).code(0);
    let history = test.args(&["history"]).code(0).stdout;
    assert!(history.starts_with("revision 3 "), "{history}");
    assert!(history.lines().next().unwrap().contains("rollback to 1"), "{history}");
    assert!(
        history.contains(&format!("  {target}: 1 created, 1 updated, 0 deleted (2 secrets)")),
        "{history}"
    );
    for out in [history, test.args(&["diff", "1", "3", "--show-values"]).code(0).stdout] {
        assert!(
            !out.contains("CANARY-"),
            "no value in history or a value-free diff:\n{out}"
        );
    }
    let same = test.args(&["diff", "1", "3", "-o", "json"]).code(0);
    assert_eq!(
        changes(&serde_json::from_str(&same.stdout).unwrap()),
        [],
        "revision 3 holds revision 1's merged result"
    );
}

/// The audit log of runs A, B and the rollback: every mutation with its request ids and the
/// version it made, the lock taken and released, no value, and a chain that verifies.
fn assert_audit_log_lists_every_mutation(test: &Test) {
    let log = test.read("audit.jsonl");
    assert!(!log.contains("CANARY-"), "no value in the audit log:\n{log}");
    let lines: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let writes: Vec<(String, String, Vec<String>)> = lines
        .iter()
        .filter(|l| l["event"] == "write")
        .map(|l| {
            assert_eq!(l["result"], "applied", "{l}");
            let calls = l["calls"].as_array().cloned().unwrap_or_default();
            for call in &calls {
                let id = call["request_id"].as_str().unwrap_or_default();
                assert!(!id.is_empty(), "every AWS call has its request id: {l}");
            }
            if l["action"] != "delete" {
                assert!(
                    l["version"].as_str().is_some_and(|v| !v.is_empty()),
                    "the version written: {l}"
                );
            }
            let operations = calls
                .iter()
                .map(|c| c["operation"].as_str().unwrap().to_owned())
                .collect();
            (
                l["secret"].as_str().unwrap().to_owned(),
                l["action"].as_str().unwrap().to_owned(),
                operations,
            )
        })
        .collect();
    let op = |names: &[&str]| names.iter().map(|&n| n.to_owned()).collect::<Vec<_>>();
    assert_eq!(
        writes,
        [
            // Run A.
            ("api".to_owned(), "create".to_owned(), op(&["CreateSecret"])),
            ("db".to_owned(), "create".to_owned(), op(&["CreateSecret"])),
            // Run B (lines follow the plan, in path order).
            ("api".to_owned(), "delete".to_owned(), op(&["DeleteSecret"])),
            ("db".to_owned(), "update".to_owned(), op(&["PutSecretValue"])),
            // The rollback: api restored (and its value written back), db updated.
            (
                "api".to_owned(),
                "restore".to_owned(),
                op(&["RestoreSecret", "PutSecretValue"])
            ),
            ("db".to_owned(), "update".to_owned(), op(&["PutSecretValue"])),
        ]
    );
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(events.iter().filter(|e| **e == "lock_taken").count(), 3, "{events:?}");
    assert_eq!(
        events.iter().filter(|e| **e == "lock_released").count(),
        3,
        "{events:?}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l["event"] != "lock_released" || l["released"] == true)
    );
    let started = lines.iter().find(|l| l["event"] == "run_started").unwrap();
    assert!(
        started["identity"]["aws_caller_arn"]
            .as_str()
            .is_some_and(|a| a.starts_with("arn:aws:sts::")),
        "{started}"
    );
    let verified = test.args(&["audit", "verify", "audit.jsonl"]).code(0);
    assert!(
        verified.stdout.contains("of 3 runs, chain intact"),
        "{}",
        verified.stdout
    );

    // A deleted, an edited and a reordered line are each found.
    let original: Vec<&str> = log.lines().collect();
    let write_at = original.iter().position(|l| l.contains("\"event\":\"write\"")).unwrap();
    let mut deleted = original.clone();
    deleted.remove(write_at);
    let mut edited = original.clone();
    let changed = edited[write_at].replacen("\"result\":\"applied\"", "\"result\":\"failed\"", 1);
    edited[write_at] = &changed;
    let mut reordered = original.clone();
    reordered.swap(write_at, write_at + 1);
    for (what, lines) in [("deleted", deleted), ("edited", edited), ("reordered", reordered)] {
        test.write("tampered.jsonl", lines.join("\n") + "\n");
        let broken = test.args(&["audit", "verify", "tampered.jsonl"]).code(2);
        assert!(
            broken.stderr.contains("the audit log's chain is broken at line "),
            "{what}: {}",
            broken.stderr
        );
    }
}

/// Moto: S3 merge store, Secrets Manager target with deletes on. Run A, run B (a value changed,
/// a secret removed), then back to A with the source folder gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_push_is_rolled_back_on_moto_while_the_source_is_down() {
    let sc = Scenario::new().await;
    sc.write("src/db.json", json!({ "password": canary(1) }).to_string());
    sc.write("src/api.json", json!({ "key": canary(2) }).to_string());
    let bucket = sc.with_s3_merge_store("sync: { delete_orphans: true }").await;
    let run = |args: &[&str]| {
        let mut args = args.to_vec();
        args.extend(["--audit-log", "audit.jsonl"]);
        sc.args(&args).var("USER", "tester").code(0)
    };
    run(&["pipeline"]);
    sc.write("src/db.json", json!({ "password": canary(3) }).to_string());
    sc.remove("src/api.json");
    run(&["pipeline"]);
    let sm = sc.sm().await;
    assert_eq!(string_value(&sm, "db").await, json!({ "password": canary(3) }));

    let who = format!("aws arn:aws:sts::{}:", sc.caller.account_id);
    assert_history_diff_and_dry_rollback(&sc, "App", &who, "restore");

    // The source goes away: a rollback reads no source.
    std::fs::rename(sc.path().join("src"), sc.path().join("src-gone")).unwrap();
    let rolled = run(&["rollback", "--to", "1"]);
    assert!(rolled.stdout.contains("↺ api"), "{}", rolled.stdout);
    assert_eq!(string_value(&sm, "db").await, json!({ "password": canary(1) }));
    assert_eq!(string_value(&sm, "api").await, json!({ "key": canary(2) }));
    assert_rolled_back(&sc, "App");
    assert_audit_log_lists_every_mutation(&sc);
    // The merge store keeps each writing run's audit lines beside its revision.
    let s3 = crate::support::aws::s3(&sc.caller, &sc.s.aws_endpoint).await;
    let listed = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix(".secretsync/history/")
        .send()
        .await
        .unwrap();
    let mut audits: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key())
        .filter(|k| k.contains("-audit-"))
        .map(str::to_owned)
        .collect();
    audits.sort();
    assert_eq!(audits.len(), 3, "runs A, B and the rollback: {audits:?}");
    assert!(
        audits[2].starts_with(".secretsync/history/00000003-audit-"),
        "{audits:?}"
    );
    let object = s3.get_object().bucket(&bucket).key(&audits[2]).send().await.unwrap();
    let body = object.body.collect().await.unwrap().into_bytes();
    let record: Value = serde_json::from_slice(&body).unwrap();
    let jsonl = record["jsonl"].as_str().unwrap();
    assert!(!jsonl.contains("CANARY-"), "{jsonl}");
    assert!(jsonl.contains("\"action\":\"restore\""), "{jsonl}");
    sc.write("rollback-audit.jsonl", jsonl);
    let verified = sc.args(&["audit", "verify", "rollback-audit.jsonl"]).code(0);
    assert!(
        verified.stdout.contains("of 1 run, chain intact"),
        "{}",
        verified.stdout
    );
    // A full run needs the source, which is down: it fails and writes nothing.
    let down = sc.args(&["pipeline"]).code(2);
    assert!(down.stdout.contains("cannot read source `files`"), "{}", down.stdout);
}

/// The real Vault server: KV v2 merge store and target, a Vault source whose mount is removed
/// before the rollback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_push_is_rolled_back_on_vault_while_the_source_mount_is_gone() {
    let s = Services::get();
    let (addr, token) = (s.vault_addr.as_str(), s.vault_token.as_str());
    let (source, out) = (s.vault_mount(2).await, s.vault_mount(2).await);
    let kv = Kv::shared(&s, &source, 2);
    kv.seed("db", &json!({ "password": canary(1) })).await;
    kv.seed("api", &json!({ "key": canary(2) })).await;
    let test = Test::new().vault_token(token).pipeline(format!(
        "vault: {{ address: {addr} }}\n\
         sources: {{ base: {{ vault: {{ mount: {source} }} }} }}\n\
         merge_store: {{ vault: {{ mount: {out}, prefix: merged }} }}\n\
         targets: {{ App: {{ imports: [base], vault: {{ mount: {out}, path: app }} }} }}\n\
         pipeline: {{ sync: {{ delete_orphans: true }} }}\n"
    ));
    let run = |args: &[&str]| test.args(args).var("USER", "tester").code(0);
    run(&["pipeline"]);
    kv.seed("db", &json!({ "password": canary(3) })).await;
    let (status, _) = vault_request(addr, token, "DELETE", &format!("{source}/metadata/api"), None).await;
    assert_eq!(status, 204);
    run(&["pipeline"]);
    let read = |path: String| async move { vault_request(addr, token, "GET", &path, None).await };
    assert_eq!(read(format!("{out}/data/app/api")).await.0, 404, "run B removed it");

    assert_history_diff_and_dry_rollback(&test, "App", "vault token", "restore");

    let (status, _) = vault_request(addr, token, "DELETE", &format!("sys/mounts/{source}"), None).await;
    assert_eq!(status, 204, "the source mount is gone");
    let rolled = run(&["rollback", "--to", "1"]);
    assert!(rolled.stdout.contains("↺ api"), "{}", rolled.stdout);
    assert_eq!(
        read(format!("{out}/data/app/db")).await.1["data"]["data"],
        json!({ "password": canary(1) })
    );
    assert_eq!(
        read(format!("{out}/data/app/api")).await.1["data"]["data"],
        json!({ "key": canary(2) })
    );
    assert_rolled_back(&test, "App");
}

/// `keep: 2`: the third revision prunes the first, but a target that has not changed since
/// then keeps its snapshot (its current state), and rollback names what is gone.
#[test]
fn retention_prunes_old_revisions_but_never_a_targets_current_state() {
    let test = Test::new()
        .file("src/a/v.json", r#"{"n": 1}"#)
        .file("src/b/v.json", r#"{"n": 1}"#)
        .pipeline(
            "sources: { a: { file: { path: ./src/a } }, b: { file: { path: ./src/b } } }\n\
             merge_store: { file: { path: ./merged }, history: { keep: 2 } }\n\
             targets:\n\
             \x20 A: { imports: [a], file: { path: ./out/a } }\n\
             \x20 B: { imports: [b], file: { path: ./out/b } }\n",
        );
    let all = || {
        let mut names: Vec<String> = std::fs::read_dir(test.path().join("merged/.secretsync-history"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    // Revision records and snapshots; the runs' audit lines, by the revision they sit beside.
    let records = || all().into_iter().filter(|n| !n.contains("-audit-")).collect::<Vec<_>>();
    let audits = || {
        all()
            .into_iter()
            .filter_map(|n| n.split_once("-audit-").map(|(seq, _)| seq.to_owned()))
            .collect::<Vec<_>>()
    };
    test.args(&["pipeline"]).code(0);
    test.write("src/a/v.json", r#"{"n": 2}"#);
    test.args(&["pipeline"]).code(0);
    // Exactly `keep` revisions: nothing pruned yet.
    assert_eq!(
        records(),
        [
            "00000001.json",
            "00000001@A.json",
            "00000001@B.json",
            "00000002.json",
            "00000002@A.json"
        ]
    );
    test.write("src/a/v.json", r#"{"n": 3}"#);
    test.args(&["pipeline"]).code(0);
    // One over: revision 1 and A's first snapshot go; B's only snapshot is its current state.
    assert_eq!(
        records(),
        [
            "00000001@B.json",
            "00000002.json",
            "00000002@A.json",
            "00000003.json",
            "00000003@A.json"
        ]
    );
    assert_eq!(
        audits(),
        ["00000002", "00000003"],
        "run 1's audit lines went with revision 1"
    );
    test.assert_private_file("merged/.secretsync-history/00000003@A.json");
    let gone = test.args(&["rollback", "--to", "1"]).code(2);
    assert!(
        gone.stderr.contains("no revision `1` in the history"),
        "{}",
        gone.stderr
    );
    assert!(gone.stderr.contains("hint: newest revisions: 3, 2;"), "{}", gone.stderr);
    // Revision 2 is still whole: A goes back to n=2, B (unchanged since 1) stays.
    test.args(&["rollback", "--to", "2"]).code(0);
    assert_eq!(
        serde_json::from_str::<Value>(&test.read("out/a/v.json")).unwrap()["n"],
        2
    );
    assert_eq!(
        serde_json::from_str::<Value>(&test.read("out/b/v.json")).unwrap()["n"],
        1
    );
}

/// A merged result that changed without being recorded (here: runs with `keep: 0`) is never
/// rolled back to a state it may not have had: the revision before the gap and the one that
/// recorded the change are refused for that target, the revisions that recorded it exactly
/// still work. Both places a gap can be are covered: between two snapshots (found from what
/// the later run saw before writing) and after the newest one (found from the merge store).
#[test]
fn a_merged_result_changed_without_a_revision_is_refused_not_guessed() {
    let pipeline = |keep: u32| {
        format!(
            "sources: {{ a: {{ file: {{ path: ./src/a }} }}, b: {{ file: {{ path: ./src/b }} }} }}\n\
             merge_store: {{ file: {{ path: ./merged }}, history: {{ keep: {keep} }} }}\n\
             targets:\n\
             \x20 A: {{ imports: [a], file: {{ path: ./out/a }} }}\n\
             \x20 B: {{ imports: [b], file: {{ path: ./out/b }} }}\n"
        )
    };
    let test = Test::new()
        .file("src/a/v.json", r#"{"n": 1}"#)
        .file("src/b/v.json", r#"{"n": 1}"#)
        .pipeline(pipeline(50));
    let a = || serde_json::from_str::<Value>(&test.read("out/a/v.json")).unwrap()["n"].clone();
    let set = |source: &str, n: u32| test.write(&format!("src/{source}/v.json"), format!(r#"{{"n": {n}}}"#));
    let history_off = |on: bool| test.write("config.yaml", pipeline(if on { 50 } else { 0 }));
    // Revision 1: A=1, B=1.
    test.args(&["pipeline"]).code(0);
    // Unrecorded: A=2.
    history_off(false);
    set("a", 2);
    test.args(&["pipeline"]).code(0);
    // Revision 2: only B changes (B=2), so A gets no snapshot; A was 2 here, not 1.
    history_off(true);
    set("b", 2);
    test.args(&["pipeline"]).code(0);
    // Revision 3: A=3 (its snapshot notes it found 2, not revision 1's 1).
    set("a", 3);
    test.args(&["pipeline"]).code(0);

    let refused = test.args(&["rollback", "--to", "2", "--targets", "A"]).code(2);
    assert!(
        refused.stdout.contains(
            "`A`'s state at revision 2 is not known: its merged result was recorded at revision 1, and changed between it and revision 3 without being recorded"
        ),
        "{}",
        refused.stdout
    );
    assert!(
        refused
            .stdout
            .contains("hint: use revision 1 (its recorded state) or 3, or leave `A` out"),
        "{}",
        refused.stdout
    );
    assert_eq!(a(), 3, "a refused target is not written");
    let diff = test.args(&["diff", "2", "3", "--target", "A"]).code(2);
    assert!(
        diff.stdout.contains("`A`'s state at revision 2 is not known"),
        "{}",
        diff.stdout
    );
    // B's history has no gap, so revision 2 is fine for it.
    test.args(&["rollback", "--to", "2", "--targets", "B", "--dry-run"])
        .code(0);
    // Revision 1 is exactly what revision 1 recorded.
    test.args(&["rollback", "--to", "1", "--targets", "A"]).code(0);
    assert_eq!(a(), 1);

    // A gap after the newest snapshot: revision 4 (the rollback) recorded A=1; then A=5
    // unrecorded; revision 5 changes B only.
    history_off(false);
    set("a", 5);
    test.args(&["pipeline"]).code(0);
    history_off(true);
    set("b", 5);
    test.args(&["pipeline"]).code(0);
    let refused = test
        .args(&["rollback", "--to", "5", "--targets", "A", "--dry-run"])
        .code(2);
    assert!(
        refused
            .stdout
            .contains("recorded at revision 4, and changed since without being recorded"),
        "{}",
        refused.stdout
    );
    assert!(
        refused
            .stdout
            .contains("hint: use revision 4 (its recorded state), or leave"),
        "{}",
        refused.stdout
    );
    test.args(&["rollback", "--to", "4", "--targets", "A"]).code(0);
    assert_eq!(a(), 1);
}

/// `history` and `diff` explain what is missing instead of failing obscurely.
#[test]
fn history_commands_explain_a_pipeline_without_revisions() {
    let none = Test::new().file("src/v", "x").pipeline(
        "sources: { s: { file: { path: ./src } } }\ntargets: { T: { imports: [s], file: { path: ./out } } }\n",
    );
    let out = none.args(&["history"]).code(2);
    assert!(
        out.stderr.contains("the pipeline has no `merge_store`, so no history"),
        "{}",
        out.stderr
    );
    let empty = Test::new()
        .file("src/v", "x")
        .pipeline("sources: { s: { file: { path: ./src } } }\nmerge_store: { file: { path: ./m } }\ntargets: { T: { imports: [s], file: { path: ./out } } }\n");
    let out = empty.args(&["history"]).code(0);
    assert!(out.stdout.contains("no revisions yet"), "{}", out.stdout);
    let out = empty.args(&["diff", "1", "2"]).code(2);
    assert!(out.stderr.contains("no revision `1` in the history"), "{}", out.stderr);
    assert!(
        out.stderr.contains("the merge store has no revisions yet"),
        "{}",
        out.stderr
    );
    let out = empty.args(&["rollback", "--to", "previous", "--merge-only"]).code(2);
    assert!(out.stderr.contains("cannot take `--merge-only`"), "{}", out.stderr);
}

/// A failure names the provider's request id (to find the call in `CloudTrail`), and a GitHub
/// annotation names the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_call_names_its_request_id_and_annotations_name_the_run() {
    let sc = Scenario::new().await;
    sc.write("src/db.json", json!({ "password": canary(1) }).to_string());
    sc.write(
        "config.yaml",
        format!(
            "sources: {{ files: {{ file: {{ path: ./src }} }} }}\n\
             merge_store: {{ s3: {{ bucket: no-such-bucket-{} }} }}\n\
             targets: {{ App: {{ account_id: \"{}\", imports: [files] }} }}\n",
            sc.caller.account_id, sc.caller.account_id
        ),
    );
    let out = sc
        .args(&["pipeline", "-o", "github", "--report", "report.json"])
        .code(2);
    let error = out
        .stdout
        .lines()
        .find(|l| l.starts_with("::error "))
        .unwrap_or_else(|| panic!("an error annotation:\n{}", out.stdout));
    assert!(error.contains("NoSuchBucket"), "{error}");
    let request_id = error
        .split("(request id ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_default();
    assert!(request_id.len() >= 8, "moto's request id: {error}");
    let report = sc.read_json("report.json");
    let run_id = report["run_id"].as_str().unwrap();
    assert!(error.ends_with(&format!(" [run {run_id}]")), "{error}");
    let text = serde_json::to_string(&report).unwrap();
    assert!(text.contains(request_id), "the JSON report carries the request id too");
}

/// `diff --show-values` in GitHub Actions masks every value it shows first, as `pipeline` does.
#[test]
fn diff_show_values_masks_values_in_github_actions() {
    let test = Test::new()
        .file("src/db.json", r#"{"password": "first-value-1234"}"#)
        .pipeline(
            "sources: { s: { file: { path: ./src } } }\nmerge_store: { file: { path: ./m } }\ntargets: { T: { imports: [s], file: { path: ./out } } }\n",
        );
    test.args(&["pipeline"]).code(0);
    test.write("src/db.json", r#"{"password": "second-value-5678"}"#);
    test.args(&["pipeline"]).code(0);
    let out = test
        .args(&["diff", "1", "2", "--show-values"])
        .var("GITHUB_ACTIONS", "true")
        .code(0);
    let shown = out.stdout.find("second-value-5678");
    let mask = out.stdout.find("::add-mask::");
    assert!(mask.is_some(), "{}", out.stdout);
    if let (Some(shown), Some(mask)) = (shown, mask) {
        assert!(mask < shown, "the mask comes before the value:\n{}", out.stdout);
    }
}
