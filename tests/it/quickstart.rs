//! The bundled offline example, run the way the README tells users to run it.

use crate::support::{QUICKSTART, Test, files};

#[test]
fn dry_run_shows_creates_updates_and_a_delete_and_exits_1() {
    let env = Test::quickstart();
    let before = files(&env.path().join("examples/quickstart"));
    let out = env
        .args(&["pipeline", "-c", QUICKSTART, "--dry-run", "--exit-code"])
        .code(1);
    assert!(out.stdout.contains("+ api/stripe"));
    assert!(out.stdout.contains("~ database/main"));
    assert!(out.stdout.contains("- legacy/old-api-token"));
    assert!(
        !out.stdout.contains("EXAMPLE"),
        "values must not be printed without --show-values"
    );
    assert_eq!(
        files(&env.path().join("examples/quickstart")),
        before,
        "a dry run writes nothing, not even the merge store"
    );
    insta::assert_snapshot!("quickstart_dry_run", out.snapshot());
}

#[test]
fn apply_then_rerun_is_a_no_op_then_deletes_only_owned_files() {
    let env = Test::quickstart();
    let out = env.args(&["pipeline", "-c", QUICKSTART]).code(0);
    insta::assert_snapshot!("quickstart_apply", out.snapshot());

    let staging = "examples/quickstart/targets/staging";
    assert!(
        !env.exists(&format!("{staging}/legacy/old-api-token")),
        "the owned orphan is deleted"
    );
    assert!(env.exists(&format!("{staging}/README.md")), "the human's file is kept");
    let db: serde_json::Value = serde_json::from_str(&env.read(&format!("{staging}/database/main.json"))).unwrap();
    assert_eq!(db["user"], "payments", "payments wins over platform");
    assert_eq!(db["password"], "EXAMPLE-payments-staging-password");
    assert_eq!(
        db["options"]["sslmode"], "require",
        "nested keys from platform survive the deep merge"
    );
    let prod: serde_json::Value =
        serde_json::from_str(&env.read("examples/quickstart/targets/production/database/main.json")).unwrap();
    assert_eq!(prod["host"], "db.prod.internal");
    assert_eq!(prod["options"]["pool_size"], 20);
    assert_eq!(
        env.read("examples/quickstart/targets/production/webhooks/signing-secret"),
        "whsec_EXAMPLE_staging_signing_secret"
    );
    assert!(
        env.exists("examples/quickstart/.merged/Production/database/main.json"),
        "the merge store holds the merged result"
    );

    let again = env
        .args(&["pipeline", "-c", QUICKSTART, "--exit-code", "-o", "json"])
        .code(0);
    let report: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(report["summary"]["changes"], 0);
    assert_eq!(report["summary"]["applied"], 0, "zero writes on a re-run");

    env.write("examples/quickstart/targets/review/notes.txt", "a human's file");
    std::fs::remove_file(
        env.path()
            .join("examples/quickstart/sources/payments/webhooks/signing-secret"),
    )
    .unwrap();
    env.args(&["pipeline", "-c", QUICKSTART, "--exit-code"]).code(1);
    for target in ["staging", "production", "review"] {
        assert!(
            !env.exists(&format!("examples/quickstart/targets/{target}/webhooks/signing-secret")),
            "{target}: the removed secret is deleted"
        );
    }
    assert!(env.exists("examples/quickstart/targets/review/notes.txt"));
    assert!(env.exists(&format!("{staging}/README.md")));
    assert!(env.exists("examples/quickstart/targets/production/README.md"));
}

#[test]
fn sync_only_reads_the_merge_store() {
    let env = Test::quickstart();
    let out = env.run(&["pipeline", "-c", QUICKSTART, "--sync-only"]);
    assert_eq!(out.code, 2, "no merged result yet: {}", out.snapshot());
    assert!(out.stdout.contains("run the merge phase first"), "{}", out.stdout);
    env.args(&["pipeline", "-c", QUICKSTART, "--merge-only"]).code(0);
    assert!(
        !env.exists("examples/quickstart/targets/review"),
        "--merge-only writes no target"
    );
    env.args(&["pipeline", "-c", QUICKSTART, "--sync-only", "--targets", "Review"])
        .code(0);
    assert!(env.exists("examples/quickstart/targets/review/api/stripe.json"));
    assert!(
        !env.exists("examples/quickstart/targets/production/api"),
        "only the requested target is synced"
    );
}

#[test]
fn json_report_and_github_outputs() {
    let env = Test::quickstart();
    let out = env
        .args(&["plan", "-c", QUICKSTART, "-o", "json", "--report", "report.json"])
        .code(0);
    assert_eq!(
        out.stdout,
        env.read("report.json"),
        "--report writes the same JSON report"
    );
    assert!(!out.stdout.contains("EXAMPLE"));
    insta::assert_snapshot!("quickstart_json_report", crate::support::redact_timings(&out.stdout));

    let github_output = env.path().join("github_output");
    let summary = env.path().join("step_summary");
    let out = env
        .args(&["plan", "-c", QUICKSTART, "--show-values"])
        .vars(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_OUTPUT", github_output.to_str().unwrap()),
            ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
        ])
        .code(0);
    assert!(
        !out.stdout.contains("EXAMPLE"),
        "--show-values never reaches GitHub output"
    );
    insta::assert_snapshot!("quickstart_github", out.snapshot());
    insta::assert_snapshot!("quickstart_github_output", env.read("github_output"));
    insta::assert_snapshot!("quickstart_step_summary", env.read("step_summary"));
}

#[test]
fn show_values_prints_value_diffs_only_when_asked() {
    let env = Test::quickstart();
    let out = env.run(&["plan", "-c", QUICKSTART, "--targets", "Staging", "--show-values"]);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains("- EXAMPLE-old-staging-password")
            || out
                .stdout
                .contains("-   \"password\": \"EXAMPLE-old-staging-password\""),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("EXAMPLE-payments-staging-password"));
    let compact = env.run(&["plan", "-c", QUICKSTART, "-o", "compact"]);
    assert_eq!(compact.stdout, "secretsync: dry run · 3 targets · +15 ~1 -1 =0\n");
}

#[test]
fn shards_split_the_example_without_breaking_inheritance() {
    let env = Test::quickstart();
    let mut seen = Vec::new();
    for i in 0..3 {
        let out = env
            .args(&["plan", "-c", QUICKSTART, "-o", "json", "--shard", &format!("{i}/3")])
            .code(0);
        let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        for t in report["targets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["synced"] == true)
        {
            seen.push(t["name"].as_str().unwrap().to_owned());
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        ["Production", "Review", "Staging"],
        "every target in exactly one shard"
    );
}

#[test]
fn a_missing_source_folder_fails_instead_of_deleting_everything() {
    let env = Test::quickstart();
    env.args(&["pipeline", "-c", QUICKSTART]).code(0);
    let before = files(&env.path().join("examples/quickstart/targets"));
    std::fs::rename(
        env.path().join("examples/quickstart/sources/payments"),
        env.path().join("examples/quickstart/sources/payments-renamed"),
    )
    .unwrap();
    let out = env.args(&["pipeline", "-c", QUICKSTART]).code(2);
    assert!(out.stdout.contains("cannot read source `payments`"), "{}", out.stdout);
    assert!(out.stdout.contains("the folder does not exist"), "{}", out.stdout);
    assert_eq!(
        files(&env.path().join("examples/quickstart/targets")),
        before,
        "nothing is deleted or written"
    );
}

/// The README's first command, as a user runs it: it applies the example on a scratch copy, a
/// second run is a no-op, `reset` brings the README's plan back — and the repository's example is
/// never changed (so the second README command, the tests, still find it pristine).
#[test]
fn the_readme_quickstart_command_leaves_the_repository_unchanged_and_resets() {
    let repo = crate::support::repo();
    let example = repo.join("examples/quickstart");
    let contents = || -> Vec<(String, Vec<u8>)> {
        let mut all: Vec<(String, Vec<u8>)> = files(&example)
            .into_iter()
            .map(|f| (f.clone(), std::fs::read(example.join(&f)).unwrap()))
            .collect();
        all.sort();
        all
    };
    let before = contents();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("quickstart");
    let quickstart = |args: &[&str]| {
        let out = std::process::Command::new(repo.join("scripts/quickstart"))
            .args(args)
            .env("SECRETSYNC_BIN", env!("CARGO_BIN_EXE_secretsync"))
            .env("SECRETSYNC_QUICKSTART_DIR", &dir)
            .env("SECRETSYNC_NO_PROGRESS", "true")
            .env("SECRETSYNC_COLOR", "never")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.code(), text)
    };
    let (code, first) = quickstart(&[]);
    assert_eq!(code, Some(0), "{first}");
    assert!(first.contains("15 created, 1 updated, 1 deleted"), "{first}");
    let (code, again) = quickstart(&["--exit-code"]);
    assert_eq!(code, Some(0), "a no-op: {again}");
    assert!(again.contains("0 created, 0 updated, 0 deleted"), "{again}");
    assert_eq!(quickstart(&["reset"]).0, Some(0));
    let (code, plan) = quickstart(&["plan"]);
    assert_eq!(code, Some(0), "{plan}");
    assert!(
        plan.contains("15 to create, 1 to update, 1 to delete"),
        "the README's plan again: {plan}"
    );
    assert!(contents() == before, "the repository's example is untouched");
}
