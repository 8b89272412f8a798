//! The command line: help, version, errors, environment fallbacks, generated files.

use crate::support::{QUICKSTART, Test, repo};

#[test]
fn help_texts() {
    let env = Test::new();
    for args in [
        &["--help"][..],
        &["pipeline", "--help"],
        &["validate", "--help"],
        &["graph", "--help"],
    ] {
        let out = env.run(args);
        assert_eq!(out.code, 0);
        insta::assert_snapshot!(format!("help_{}", args.join("_").trim_start_matches("--")), out.stdout);
    }
}

#[test]
fn version_names_commit_and_build_date() {
    let out = Test::new().run(&["version"]);
    assert_eq!(out.code, 0);
    let line = out.stdout.trim();
    assert!(
        line.starts_with(&format!("secretsync {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{line}"
    );
    assert!(line.contains(", built "), "{line}");
    assert_eq!(
        Test::new().run(&["--version"]).stdout,
        out.stdout,
        "--version is the long form"
    );
    let short = Test::new().run(&["-V"]);
    assert_eq!(short.stdout.trim(), format!("secretsync {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn usage_errors_exit_2() {
    let env = Test::new();
    let out = env.run(&["pipeline", "--shard", "3/3"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("out of range"), "{}", out.stderr);
    env.args(&["pipeline", "--merge-only", "--sync-only"]).code(2);
    env.args(&["frobnicate"]).code(2);
}

#[test]
fn a_missing_config_says_how_to_name_one() {
    let out = Test::new().args(&["validate"]).code(2);
    insta::assert_snapshot!(out.snapshot());
}

#[test]
fn unknown_targets_are_listed_with_the_valid_names() {
    let env = Test::quickstart();
    let out = env
        .args(&["plan", "-c", QUICKSTART, "--targets", "Prodution,Review,Nope"])
        .code(2);
    insta::assert_snapshot!(out.snapshot());
    let out = env.run(&["plan", "-c", QUICKSTART, "--targets", "platform"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("`platform` is a source, not a target"),
        "{}",
        out.stderr
    );
}

#[test]
fn flags_fall_back_to_secretsync_environment_variables() {
    let env = Test::quickstart();
    let out = env
        .args(&["pipeline"])
        .vars(&[
            ("SECRETSYNC_CONFIG", QUICKSTART),
            ("SECRETSYNC_DRY_RUN", "true"),
            ("SECRETSYNC_TARGETS", "Review"),
            ("SECRETSYNC_OUTPUT", "compact"),
            ("SECRETSYNC_EXIT_CODE", "1"),
        ])
        .code(1);
    assert_eq!(out.stdout, "secretsync: dry run · 1 target · +5 ~0 -0 =0\n");
    assert!(
        !env.exists("examples/quickstart/targets/review"),
        "SECRETSYNC_DRY_RUN=true means nothing is written"
    );
    env.args(&["pipeline", "-c", QUICKSTART, "-o", "compact"])
        .vars(&[("SECRETSYNC_DRY_RUN", "false"), ("SECRETSYNC_TARGETS", "Review")])
        .code(0);
    assert!(
        env.exists("examples/quickstart/targets/review"),
        "SECRETSYNC_DRY_RUN=false applies"
    );
}

#[test]
fn github_actions_defaults_to_github_output() {
    let env = Test::quickstart();
    let out = env
        .args(&["plan", "-c", QUICKSTART])
        .vars(&[("GITHUB_ACTIONS", "true")])
        .output();
    assert_eq!(out.code, 0);
    assert!(out.stdout.starts_with("::group::Staging"), "{}", out.stdout);
}

#[test]
fn features_of_later_issues_fail_clearly() {
    let env = Test::quickstart();
    let discover = env.run(&["discover", "-c", QUICKSTART]);
    assert_eq!(discover.code, 2);
    assert!(
        discover.stderr.contains("the pipeline has no `dynamic_targets`"),
        "{}",
        discover.stderr
    );
    let plan = env.args(&["plan", "-c", QUICKSTART, "--discover"]).code(0);
    assert!(plan.stderr.contains("nothing to discover"), "{}", plan.stderr);
    env.write(
        "aws.yaml",
        "sources:\n  s: { file: { path: ./examples/quickstart/sources/platform } }\ntargets:\n  Prod: { account_id: \"111111111111\", imports: [s] }\n  Local: { file: { path: ./local }, imports: [s] }\n",
    );
    let out = env.args(&["pipeline", "-c", "aws.yaml"]).code(2);
    assert!(
        out.stdout.contains("cannot find usable AWS credentials") && out.stdout.contains("hint: give AWS credentials"),
        "{}",
        out.stdout
    );
    assert!(env.exists("local/feature-flags.json"), "other targets still run");
    insta::assert_snapshot!("aws_target_without_credentials", out.snapshot());
}

#[test]
fn schema_is_generated_and_committed() {
    let out = Test::new().run(&["schema"]);
    assert_eq!(out.code, 0);
    let schema: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(schema["title"], "secretsync pipeline");
    assert!(schema["properties"]["targets"].is_object());
    let path = repo().join("schema/pipeline.schema.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != out.stdout {
        if std::env::var_os("SECRETSYNC_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &out.stdout).unwrap();
        } else {
            panic!(
                "schema/pipeline.schema.json is stale; regenerate it with `SECRETSYNC_BLESS=1 cargo nextest run schema`"
            );
        }
    }
}

#[test]
fn completions_are_generated() {
    let out = Test::new().run(&["completions", "bash"]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("secretsync"));
    assert!(out.stdout.contains("--dry-run"));
}

#[test]
fn every_example_validates() {
    for entry in std::fs::read_dir(repo().join("examples")).unwrap() {
        let dir = entry.unwrap().path();
        let config = dir.join("pipeline.yaml");
        if config.exists() {
            let out = Test::new().run(&["validate", "-c", config.to_str().unwrap()]);
            assert_eq!(out.code, 0, "{}: {}", config.display(), out.snapshot());
        }
    }
}

#[test]
fn configuration_docs_cover_every_key_of_the_schema() {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("schema/pipeline.schema.json")).unwrap()).unwrap();
    let docs = std::fs::read_to_string(repo().join("docs/configuration.md")).unwrap();
    let mut keys = std::collections::BTreeSet::new();
    collect_keys(&schema, &mut keys);
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| {
            !docs.contains(&format!("`{k}")) && !docs.contains(&format!("{k}:")) && !docs.contains(&format!(".{k}`"))
        })
        .collect();
    assert!(keys.len() > 50, "the schema walk found the keys");
    assert!(
        missing.is_empty(),
        "docs/configuration.md does not mention: {missing:?}"
    );
}

fn collect_keys(node: &serde_json::Value, keys: &mut std::collections::BTreeSet<String>) {
    match node {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Object(props)) = map.get("properties") {
                keys.extend(props.keys().cloned());
            }
            map.values().for_each(|v| collect_keys(v, keys));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_keys(v, keys)),
        _ => {}
    }
}

#[test]
fn connectivity_checks_of_a_pipeline_without_cloud_stores_have_nothing_to_do() {
    let env = Test::quickstart();
    let out = env
        .args(&["validate", "-c", QUICKSTART, "--check-aws", "--check-vault"])
        .code(0);
    assert!(
        out.stdout
            .contains("Vault: the pipeline uses no Vault store; nothing to check"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("AWS: the pipeline uses no AWS store; nothing to check"),
        "{}",
        out.stdout
    );
}

/// The files a run writes for itself are private and replace a link planted where they go
/// instead of writing through it.
#[cfg(unix)]
#[test]
fn report_and_metrics_files_are_private_and_never_written_through_a_link() {
    use std::os::unix::fs::symlink;
    let env = Test::quickstart();
    let outside = env.write("outside.txt", "untouched");
    symlink(&outside, env.path().join("report.json")).unwrap();
    symlink(&outside, env.path().join("metrics.prom")).unwrap();
    let out = env.run(&[
        "plan",
        "-c",
        QUICKSTART,
        "--report",
        "report.json",
        "--metrics-textfile",
        "metrics.prom",
    ]);
    assert!(matches!(out.code, 0 | 1), "{}", out.snapshot());
    assert_eq!(env.read("outside.txt"), "untouched");
    for written in ["report.json", "metrics.prom"] {
        env.assert_private_file(written);
    }
    assert!(env.read("report.json").contains("\"report_version\""));
}

/// Libraries' own logs (the AWS SDK's credential chain dumps provider errors with headers at
/// warn) stay off unless asked for with `SECRETSYNC_LOG_DEPENDENCIES`.
#[test]
fn dependency_logs_are_off_unless_asked_for() {
    let env = Test::new();
    env.write("src/a", "v");
    env.write(
        "config.yaml",
        "sources: { s: { file: { path: ./src } } }\ntargets: { T: { imports: [s] } }\n",
    );
    // No credentials anywhere and a closed endpoint: the SDK's chain fails and says so.
    let closed = [("AWS_REGION", "us-east-1"), ("AWS_ENDPOINT_URL", "http://127.0.0.1:9")];
    let quiet = env.args(&["plan"]).vars(&closed).code(2);
    assert!(
        !quiet.stderr.contains("ProviderError") && !quiet.stderr.contains("WARN aws"),
        "{}",
        quiet.stderr
    );
    let mut asked = closed.to_vec();
    asked.push(("SECRETSYNC_LOG_DEPENDENCIES", "aws_config=trace,aws_smithy=loudly"));
    let loud = env.args(&["plan"]).vars(&asked).output();
    assert!(loud.stderr.contains("default_credentials_chain"), "{}", loud.stderr);
    assert!(
        loud.stderr
            .contains("ignoring `aws_smithy=loudly` in SECRETSYNC_LOG_DEPENDENCIES"),
        "{}",
        loud.stderr
    );
}

/// `validate` checks what it can without a network — a missing source folder fails it, as the
/// run would — names a target that syncs to the caller's account because it names no kind, and
/// says which checks need a flag.
#[test]
fn validate_checks_local_folders_and_says_what_it_did_not_check() {
    let env = Test::new();
    env.write("present/a", "v");
    env.write("a-file", "not a folder");
    env.write(
        "config.yaml",
        "sources:\n  here: { file: { path: ./present } }\n  gone: { file: { path: ./missing } }\n\
         targets:\n  T: { imports: [here] }\n  F: { imports: [gone], file: { path: ./a-file } }\n",
    );
    let out = env.args(&["validate"]).code(2);
    for line in [
        "✓ source `here` (./present): the folder exists",
        "✗ source `gone` (./missing): the folder does not exist",
        "✗ target `F` (./a-file): is a file, not a folder",
        "note: target `T` names no kind: it syncs to AWS Secrets Manager in the account of the run's credentials",
        "Not checked offline: AWS access (--check-aws)",
    ] {
        assert!(out.stdout.contains(line), "missing `{line}`:\n{}", out.stdout);
    }
}

/// Without `--config`, `pipeline.yaml` (the name every doc uses) is read, else `config.yaml`
/// (jbcom/secretsync's name), and the run says so.
#[test]
fn the_default_pipeline_file_is_pipeline_yaml_then_config_yaml() {
    let env = Test::new();
    env.write("src/a", "v");
    let pipeline = |out: &str| {
        format!(
            "sources: {{ s: {{ file: {{ path: ./src }} }} }}\ntargets: {{ T: {{ imports: [s], file: {{ path: ./{out} }} }} }}\n"
        )
    };
    env.write("config.yaml", pipeline("from-config"));
    let fallback = env.args(&["validate"]).code(0);
    assert!(
        fallback
            .stderr
            .contains("note: reading config.yaml (there is no pipeline.yaml here)"),
        "{}",
        fallback.stderr
    );
    assert!(fallback.stdout.contains("config.yaml is valid"), "{}", fallback.stdout);
    env.write("pipeline.yaml", pipeline("from-pipeline"));
    let preferred = env.run(&["validate"]);
    assert!(
        preferred.stdout.contains("pipeline.yaml is valid") && preferred.stdout.contains("./from-pipeline"),
        "{}",
        preferred.stdout
    );
    assert!(!preferred.stderr.contains("note:"), "{}", preferred.stderr);
}

/// Help shows a command's own options first and the global ones once, after them; flags that
/// do not apply are refused, not ignored; `plan` does not offer what it implies; the JSON
/// Schema speaks to users.
#[test]
fn help_lists_what_applies_and_refuses_what_does_not() {
    let env = Test::new();
    let plan = env.run(&["plan", "--help"]);
    assert_eq!(plan.code, 0);
    let offered = |flag: &str| plan.stdout.lines().any(|l| l.trim_start().starts_with(flag));
    assert!(!offered("--dry-run") && !offered("--diff"), "{}", plan.stdout);
    let pipeline = env.run(&["pipeline", "--help"]).stdout;
    let own = pipeline.find("--dry-run").unwrap();
    let global = pipeline.find("Global options:").unwrap();
    assert!(own < global, "own options first:\n{pipeline}");
    assert_eq!(pipeline.matches("Global options:").count(), 1);
    assert_eq!(pipeline.matches("--metrics-push").count(), 1);
    for command in [
        &["schema", "--metrics-push", "http://127.0.0.1:9"][..],
        &["version", "--metrics-port", "0"],
    ] {
        let out = env.run(command);
        assert_eq!(out.code, 2, "{command:?} is refused: {}", out.snapshot());
        assert!(out.stderr.contains("unexpected argument"), "{}", out.stderr);
    }
    assert!(!env.run(&["schema"]).stdout.contains("`Debug`"), "no internal wording");
}
