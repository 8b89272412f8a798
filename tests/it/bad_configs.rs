//! Every file under `tests/fixtures/bad/` holds one mistake. Each must give exactly one
//! precise message with `file:line:col`, exit code 2, never a panic; the messages are
//! snapshot-tested. Also: configs users bring from jbcom/secretsync.

use crate::support::{Test, repo};

#[test]
fn each_bad_config_gives_one_located_error() {
    insta::glob!("../fixtures/bad", "*.yaml", |path| {
        let name = path.file_name().unwrap().to_str().unwrap();
        let env = Test::new();
        env.write(name, std::fs::read(path).unwrap());
        let out = env.run(&["validate", "-c", name]);
        assert_eq!(out.code, 2, "{name}: {}", out.snapshot());
        assert!(out.stdout.is_empty(), "{name}: nothing on stdout");
        assert!(!out.stderr.contains("panicked"), "{name}: {}", out.stderr);
        let located: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.starts_with(&format!("error: {name}:")))
            .collect();
        assert_eq!(
            located.len(),
            1,
            "{name}: exactly one located error, got:\n{}",
            out.stderr
        );
        let position = located[0].trim_start_matches(&format!("error: {name}:"));
        let mut parts = position.splitn(3, ':');
        let line: usize = parts
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("{name}: no line in {position}"));
        let col: usize = parts
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("{name}: no column in {position}"));
        assert!(line >= 1 && col >= 1);
        assert!(
            out.stderr.ends_with(&format!("error: {name} is invalid (1 error)\n")),
            "{name}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("hvs.EXAMPLE"), "{name}: a value was echoed");
        insta::assert_snapshot!(out.stderr);
    });
}

#[test]
fn every_error_of_a_file_is_reported_at_once_in_order() {
    let env = Test::new();
    env.write(
        "many.yaml",
        "sources:\n  base: { file: { path: ./base } }\ntargets:\n  A:\n    improts: [base]\n    file: { path: ./a }\n  B:\n    account_id: \"123\"\n    imports: [nope]\n  C: { file: { path: ./c }, imports: [C] }\npipeline:\n  merge: { parallel: 0 }\n  sync: { prallel: 2 }\n",
    );
    let out = env.run(&["validate", "-c", "many.yaml"]);
    assert_eq!(out.code, 2);
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn jbcom_pipeline_config_validates_with_warnings_for_unused_keys() {
    let env = Test::new();
    env.write(
        "pipeline-config.yaml",
        std::fs::read(repo().join("tests/fixtures/jbcom/pipeline-config.yaml")).unwrap(),
    );
    let out = env
        .args(&["validate", "-c", "pipeline-config.yaml"])
        .vars(&[("VAULT_ROLE_ID", "r"), ("VAULT_SECRET_ID", "s")])
        .code(0);
    insta::assert_snapshot!(out.snapshot());
    let graph = env
        .args(&["graph", "-c", "pipeline-config.yaml"])
        .vars(&[("VAULT_ROLE_ID", "r"), ("VAULT_SECRET_ID", "s")])
        .output();
    assert!(
        graph.stdout.contains("level 3"),
        "inheritance Serverless_Stg -> Serverless_Prod -> livequery_demos:\n{}",
        graph.stdout
    );
}

#[test]
fn jbcom_configs_we_treat_differently_get_actionable_messages() {
    for file in ["readme-example.yaml"] {
        let env = Test::new();
        env.write(
            file,
            std::fs::read(repo().join("tests/fixtures/jbcom").join(file)).unwrap(),
        );
        let out = env
            .args(&["validate", "-c", file])
            .vars(&[("VAULT_TOKEN", "t")])
            .output();
        assert_eq!(out.code, 2);
        assert!(out.stderr.lines().filter(|l| l.starts_with("error:")).count() >= 2);
        assert!(out.stderr.contains("hint:"));
        insta::assert_snapshot!(file, out.stderr);
    }
}

/// A value from the environment is never echoed by a config error: the message quotes the
/// text as written (`${…}`) instead.
#[test]
fn config_errors_never_echo_values_from_the_environment() {
    let env = Test::new();
    env.write(
        "env.yaml",
        "sources:\n  s: { vault: { mount: \"${MOUNT}\", paths: [\"${SUBTREE}\"] } }\n\
         targets:\n  T:\n    imports: [s]\n    account_id: \"${ACCOUNT}\"\n    region: \"prefix-${REGION}\"\n\
         merge_store: { s3: { bucket: \"${BUCKET}\" } }\n",
    );
    let secrets = [
        ("ACCOUNT", "sk-account-canary"),
        ("REGION", "region-canary"),
        ("BUCKET", "Bucket_Canary"),
        ("MOUNT", "mount/../canary"),
        ("SUBTREE", "subtree-canary/*"),
    ];
    let out = env.args(&["validate", "-c", "env.yaml"]).vars(&secrets).code(2);
    for (_, value) in secrets {
        assert!(!out.stderr.contains(value), "`{value}` was echoed:\n{}", out.stderr);
    }
    for (name, _) in secrets {
        assert!(
            out.stderr.contains(&format!("${{{name}}}")),
            "the error names `${{{name}}}`:\n{}",
            out.stderr
        );
    }
    assert!(
        out.stderr
            .contains("`${ACCOUNT}` (from the environment) is not an AWS account id"),
        "{}",
        out.stderr
    );
}

/// A 2 KB pipeline whose inheritance graph is a chain of diamonds doubles a list at every
/// level; the merge stops at its bound with an error naming the target and the secret instead
/// of asking for gigabytes.
#[test]
fn diamond_inheritance_is_bounded_and_names_the_target_and_secret() {
    use std::fmt::Write as _;
    let env = Test::new();
    env.write(
        "src/app.json",
        r#"{"hosts": ["a-fairly-long-host-name.internal.example"]}"#,
    );
    let mut config = String::from(
        "sources: { s: { file: { path: ./src } } }\ntargets:\n  L0a: { file: { path: ./out/L0a }, imports: [s] }\n  L0b: { file: { path: ./out/L0b }, imports: [s] }\n",
    );
    for level in 1..40 {
        let below = level - 1;
        for side in ["a", "b"] {
            let _ = writeln!(
                config,
                "  L{level}{side}: {{ file: {{ path: ./out/L{level}{side} }}, imports: [L{below}a, L{below}b] }}"
            );
        }
    }
    env.write("config.yaml", &config);
    let out = env.args(&["plan", "-o", "json"]).code(2);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let failed: Vec<&serde_json::Value> = report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| {
            t["error"]
                .as_str()
                .is_some_and(|e| e.contains("would be larger than 4 MiB"))
        })
        .collect();
    assert!(!failed.is_empty(), "{}", out.stdout);
    assert_eq!(failed[0]["phase"], "merge");
    let error = failed[0]["error"].as_str().unwrap();
    assert!(error.contains("the merged value of `app`"), "{error}");
    assert!(failed[0]["hint"].as_str().unwrap().contains("diamond"), "{}", failed[0]);
}

/// Ten independent mistakes of mixed kinds — types, unknown keys, bad values, bad references —
/// in neighbouring sections: a type error never hides what follows it.
#[test]
fn ten_mistakes_are_all_reported_in_one_run() {
    let env = Test::new();
    env.write(
        "ten.yaml",
        "log: { level: loud }\n\
         sources:\n  s: { file: { path: ./s }, colour: blue }\n\
         targets:\n\
         \x20 A: { imports: [s, nope], account_id: \"123\" }\n\
         \x20 B: { imports: [s], region: mars, secret_prefx: x }\n\
         pipeline:\n\
         \x20 merge: { parallel: \"four\" }\n\
         \x20 sync:\n\
         \x20   max_deletes: lots\n\
         \x20   parallel: many\n\
         \x20   delete_orphan: true\n\
         \x20   dry_run: maybe\n",
    );
    let out = env.args(&["validate", "-c", "ten.yaml"]).code(2);
    let located: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: ten.yaml:"))
        .collect();
    for expected in [
        "ten.yaml:1:",
        "`colour`",
        "`nope`",
        "`123`",
        "`mars`",
        "secret_prefx",
        "pipeline.merge.parallel",
        "max_deletes",
        "pipeline.sync.parallel",
        "delete_orphan",
    ] {
        assert!(
            located.iter().any(|l| l.contains(expected)),
            "`{expected}` not reported:\n{}",
            out.stderr
        );
    }
    assert!(located.len() >= 10, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("ten.yaml is invalid ({} errors)", located.len())),
        "{}",
        out.stderr
    );
}

/// Every YAML file in jbcom/secretsync v1.1.0's `examples/` and `tests/integration/fixtures/`
/// (verbatim copies) validates unchanged, or is refused with one sentence saying what it is.
#[test]
fn every_jbcom_config_validates_or_is_refused_in_one_sentence() {
    let dir = repo().join("tests/fixtures/jbcom-v1.1.0");
    let vars = [
        ("VAULT_TOKEN", "t"),
        ("VAULT_ROLE_ID", "r"),
        ("VAULT_SECRET_ID", "s"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
    ];
    let one_error = |sentence: &str| Some(sentence.to_owned());
    let expected: &[(&str, Option<String>)] = &[
        ("examples-action-test-config.yaml", None),
        ("examples-pipeline-config.yaml", None),
        ("fixtures-pipeline-config.yaml", None),
        (
            "examples-config-full.yaml",
            one_error("jbcom/secretsync's server configuration"),
        ),
        (
            "examples-vault-to-aws-secrets.yaml",
            one_error("this is a Kubernetes manifest (`kind: SecretSync`"),
        ),
        (
            "examples-vault-to-github.yaml",
            one_error("this is a Kubernetes manifest (`kind: SecretSync`"),
        ),
        (
            "examples-vault-to-vault.yaml",
            one_error("this is a Kubernetes manifest (`kind: SecretSync`"),
        ),
        (
            "fixtures-sandbox_targets.yaml",
            one_error("this is not a pipeline file"),
        ),
        ("fixtures-secrets.yaml", one_error("this is not a pipeline file")),
        ("fixtures-targets.yaml", one_error("this is not a pipeline file")),
    ];
    for (file, refusal) in expected {
        let env = Test::new();
        env.write(file, std::fs::read(dir.join(file)).unwrap());
        let out = env.args(&["validate", "-c", file]).vars(&vars).output();
        let errors: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("error:")).collect();
        match refusal {
            None => assert_eq!(out.code, 0, "{file} validates unchanged:\n{}", out.snapshot()),
            Some(sentence) => {
                assert_eq!(out.code, 2, "{file}: {}", out.snapshot());
                assert_eq!(errors.len(), 2, "{file}: one error and the summary:\n{}", out.stderr);
                assert!(errors[0].contains(sentence), "{file}:\n{}", out.stderr);
            }
        }
    }
    // The discovery example imports sources it never defines and uses placeholder OU ids
    // (`ou-xxxx-dev`): each is named, nothing else.
    let file = "examples-organizations-discovery.yaml";
    let env = Test::new();
    env.write(file, std::fs::read(dir.join(file)).unwrap());
    let out = env.run(&["validate", "-c", file]);
    assert_eq!(out.code, 2);
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: examples"))
        .collect();
    assert!(
        errors
            .iter()
            .all(|l| l.contains("which is neither a source nor a target")
                || l.contains("is not an OU id")
                || l.contains("is invalid (")),
        "{}",
        out.stderr
    );
    // The shorthand and the alias are read, with warnings saying what to write.
    let file = "fixtures-pipeline-config.yaml";
    let env = Test::new();
    env.write(file, std::fs::read(dir.join(file)).unwrap());
    let out = env.args(&["validate", "-c", file]).vars(&vars).output();
    assert!(
        out.stderr.contains("`aws.endpoint` is read as `aws.endpoint_url`"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("http://127.0.0.1:4566") && !out.stdout.contains(": t\n"),
        "no value echoed"
    );
    let file = "examples-action-test-config.yaml";
    let env = Test::new();
    env.write(file, std::fs::read(dir.join(file)).unwrap());
    let out = env.args(&["validate", "-c", file]).vars(&vars).output();
    assert!(
        out.stderr.contains("`test/*` is read as the subtree `test/`"),
        "{}",
        out.stderr
    );
}
