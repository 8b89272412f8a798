//! The files users meet secretsync through: the container's entrypoint (fed hostile Action
//! inputs), the Dockerfile (hadolint), action.yml and workflow examples (the `SchemaStore` schemas
//! GitHub's metadata follows), every shell script (shellcheck), and every file under `examples/`.
//!
//! The linters come from the project's virtualenv (`scripts/python-env`, which `scripts/test`
//! runs first); a missing linter fails the test with that instruction rather than skipping.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Test, repo};

/// A tool installed in `.venv/bin` by `scripts/python-env`.
fn venv_tool(name: &str) -> PathBuf {
    let path = repo().join(".venv/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/python-env (scripts/test does) to install the linters",
        path.display()
    );
    path
}

fn run_tool(tool: &str, args: &[&str], cwd: &Path) -> (bool, String) {
    let out = Command::new(venv_tool(tool))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Every file of the repository outside build output, relative to the root.
fn repository_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let name = entry.file_name();
            if [".git", "target", ".venv", "node_modules"].iter().any(|s| name == *s) {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                walk(&path, root, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().to_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo(), &repo(), &mut out);
    out.sort();
    out
}

#[test]
fn every_shell_script_is_shellcheck_clean() {
    let scripts: Vec<String> = repository_files()
        .into_iter()
        .filter(|p| {
            let first = std::fs::read(repo().join(p))
                .ok()
                .and_then(|b| b.split(|c| *c == b'\n').next().map(<[u8]>::to_vec))
                .unwrap_or_default();
            let first = String::from_utf8_lossy(&first);
            p.extension().is_some_and(|e| e == "sh") || (first.starts_with("#!") && first.contains("sh"))
        })
        .map(|p| p.display().to_string())
        .collect();
    for expected in [
        "entrypoint.sh",
        "scripts/test",
        "scripts/testbed",
        ".ci/run",
        "scripts/pin-images",
    ] {
        assert!(
            scripts.iter().any(|s| s == expected),
            "{expected} not found among {scripts:?}"
        );
    }
    let args: Vec<&str> = scripts.iter().map(String::as_str).collect();
    let (ok, text) = run_tool("shellcheck", &args, &repo());
    assert!(ok, "shellcheck:\n{text}");
}

#[test]
fn the_dockerfile_passes_hadolint_and_follows_the_image_rules() {
    let (ok, text) = run_tool("hadolint", &["Dockerfile"], &repo());
    assert!(ok, "hadolint:\n{text}");
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let lines: Vec<&str> = dockerfile.lines().collect();
    let arg = |name: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("ARG {name}=")))
            .unwrap_or_else(|| panic!("ARG {name}"))
            .to_owned()
    };
    for image in [arg("RUST_IMAGE"), arg("RUNTIME_IMAGE")] {
        let tag = image.split('@').next().unwrap();
        assert!(tag.contains(':') && !tag.ends_with(":latest"), "a version tag: {image}");
    }
    assert!(
        arg("RUST_IMAGE").starts_with("rust:1.95"),
        "the toolchain Cargo.toml asks for"
    );
    let stages: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(stages.len(), 2, "multi-stage: {stages:?}");
    // GitHub runs Docker actions as the image's default user and needs it to be root (the
    // workspace and file-command folders belong to the runner); scheduled jobs set uid 1001
    // where they run, so the image has that account and neither USER nor WORKDIR.
    let runtime_stage = dockerfile.rsplit("\nFROM ").next().unwrap();
    assert!(
        !runtime_stage
            .lines()
            .any(|l| l.starts_with("USER ") || l.starts_with("WORKDIR ")),
        "the runtime stage sets no USER or WORKDIR"
    );
    assert!(
        dockerfile.contains("useradd --uid 1001 --gid 1001"),
        "the non-root account scheduled jobs run as"
    );
    assert!(dockerfile.contains(r#"ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]"#));
    for label in ["title", "version", "revision", "source", "licenses"] {
        assert!(
            dockerfile.contains(&format!("org.opencontainers.image.{label}=")),
            "OCI label {label}"
        );
    }
    assert!(dockerfile.contains("ca-certificates.crt"), "CA certificates");
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    for excluded in ["target", ".git", ".venv"] {
        assert!(
            ignore.lines().any(|l| l == excluded),
            ".dockerignore excludes {excluded}"
        );
    }
}

#[test]
fn action_yml_and_workflow_examples_follow_githubs_schemas() {
    let (ok, text) = run_tool(
        "check-jsonschema",
        &["--builtin-schema", "vendor.github-actions", "action.yml"],
        &repo(),
    );
    assert!(ok, "action.yml:\n{text}");
    // The validator does reject a broken action (so the check above means something).
    let env = Test::new();
    let broken = std::fs::read_to_string(repo().join("action.yml"))
        .unwrap()
        .replace("using: docker", "using: dockr");
    let path = env.write("action.yml", broken);
    let (ok, _) = run_tool(
        "check-jsonschema",
        &["--builtin-schema", "vendor.github-actions", path.to_str().unwrap()],
        env.path(),
    );
    assert!(!ok, "a broken action.yml must fail validation");

    let workflows: Vec<String> = repository_files()
        .into_iter()
        .filter(|p| {
            (p.starts_with("examples/github") || p.starts_with(".github/workflows"))
                && p.extension().is_some_and(|e| e == "yml" || e == "yaml")
        })
        .map(|p| p.display().to_string())
        .collect();
    for expected in [".github/workflows/ci.yml", ".github/workflows/release.yml"] {
        assert!(
            workflows.iter().any(|w| w == expected),
            "{expected} among {workflows:?}"
        );
    }
    let mut args = vec!["--builtin-schema", "vendor.github-workflows"];
    args.extend(workflows.iter().map(String::as_str));
    let (ok, text) = run_tool("check-jsonschema", &args, &repo());
    assert!(ok, "workflow examples:\n{text}");
}

#[test]
fn action_inputs_map_to_the_documented_flags() {
    let action = yaml_as_json(&std::fs::read_to_string(repo().join("action.yml")).unwrap());
    let inputs: Vec<&String> = action["inputs"].as_object().unwrap().keys().collect();
    for name in [
        "config",
        "targets",
        "dry-run",
        "output",
        "exit-code",
        "discover",
        "show-values",
        "adopt",
        "max-deletes",
        "working-directory",
        "args",
    ] {
        assert!(inputs.iter().any(|i| *i == name), "input {name}");
    }
    let outputs: Vec<&String> = action["outputs"].as_object().unwrap().keys().collect();
    for name in ["changes", "added", "modified", "removed", "deleted", "failed", "report"] {
        assert!(outputs.iter().any(|o| *o == name), "output {name}");
    }
    let entrypoint = std::fs::read_to_string(repo().join("entrypoint.sh")).unwrap();
    for name in inputs {
        assert!(
            entrypoint.contains(&format!(" {name} ")) || entrypoint.contains(&format!("input {name})")),
            "entrypoint.sh reads input `{name}`"
        );
    }
}

pub(crate) fn yaml_as_json(text: &str) -> serde_json::Value {
    // The pipeline loader's YAML reader, through the binary's `schema`-free path: parse via
    // serde_json after a YAML → JSON round trip in Python (which the test env has).
    let python = repo().join(".venv/bin/python");
    let out = Command::new(&python)
        .args([
            "-c",
            "import json,sys,yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .expect("python");
    assert!(out.status.success(), "YAML: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs entrypoint.sh with `inputs` (as GitHub sets them) and a stand-in `secretsync` that
/// records its arguments; returns (exit code, the arguments, stderr).
fn entrypoint(inputs: &[(&str, &str)], args: &[&str]) -> (i32, Vec<String>, String, Test) {
    let env = Test::new();
    let recorded = env.path().join("argv");
    let fake = env.write(
        "bin/secretsync",
        format!(
            "#!/usr/bin/env bash\nprintf '%s\\0' \"$@\" > '{}'\n",
            recorded.display()
        ),
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::create_dir_all(env.path().join("work")).unwrap();
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("entrypoint.sh"))
        .args(args)
        .current_dir(env.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("SECRETSYNC_BIN", &fake);
    for (k, v) in inputs {
        cmd.env(format!("INPUT_{}", k.to_uppercase()), v);
    }
    let out = cmd.output().unwrap();
    let received = std::fs::read(&recorded)
        .map(|bytes| {
            bytes
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default();
    (
        out.status.code().unwrap_or(-1),
        received,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        env,
    )
}

#[test]
fn the_entrypoint_builds_flags_from_action_inputs() {
    let (code, argv, stderr, _env) = entrypoint(
        &[
            ("config", "deploy/pipeline.yaml"),
            ("targets", "Staging,Prod"),
            ("dry-run", "true"),
            ("output", "github"),
            ("exit-code", "TRUE"),
            ("discover", "false"),
            ("show-values", ""),
            ("adopt", "false"),
            ("max-deletes", "10"),
            ("report", "report.json"),
            ("working-directory", "work"),
            ("args", "--shard 0/4\n  --parallel   8"),
        ],
        &["github-action"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        argv,
        [
            "pipeline",
            "--config",
            "deploy/pipeline.yaml",
            "--targets",
            "Staging,Prod",
            "--output",
            "github",
            "--dry-run",
            "--exit-code",
            "--max-deletes",
            "10",
            "--report",
            "report.json",
            "--shard",
            "0/4",
            "--parallel",
            "8"
        ]
    );
    // Any other first argument passes through untouched, INPUT_* variables or not.
    let (code, argv, _, _env) = entrypoint(&[("config", "ignored.yaml")], &["plan", "-c", "/config/pipeline.yaml"]);
    assert_eq!(code, 0);
    assert_eq!(argv, ["plan", "-c", "/config/pipeline.yaml"]);
}

#[test]
fn hostile_inputs_reach_secretsync_as_literal_text_and_run_nothing() {
    let hostile = BTreeMap::from([
        ("config", "x.yaml; touch pwned-semicolon"),
        ("targets", "$(touch pwned-subst)`touch pwned-backquote`"),
        ("output", "github\ntouch pwned-newline"),
        ("report", "r.json && touch pwned-and"),
        ("args", "--diff $(touch${IFS}pwned-args) ;touch pwned-args2 *"),
    ]);
    let inputs: Vec<(&str, &str)> = hostile.iter().map(|(k, v)| (*k, *v)).collect();
    let (code, argv, stderr, env) = entrypoint(&inputs, &["github-action"]);
    assert_eq!(code, 0, "{stderr}");
    let leftovers: Vec<String> = std::fs::read_dir(env.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pwned"))
        .collect();
    assert!(leftovers.is_empty(), "an input ran a command: {leftovers:?}");
    assert_eq!(
        argv,
        [
            "pipeline",
            "--config",
            "x.yaml; touch pwned-semicolon",
            "--targets",
            "$(touch pwned-subst)`touch pwned-backquote`",
            "--output",
            "github\ntouch pwned-newline",
            "--report",
            "r.json && touch pwned-and",
            "--diff",
            "$(touch${IFS}pwned-args)",
            ";touch",
            "pwned-args2",
            "*",
        ],
        "every input is one literal argument; args are split on whitespace only, never globbed"
    );

    for (input, value, message) in [
        (
            "dry-run",
            "yes please; rm -rf /",
            "input 'dry-run' must be true or false",
        ),
        (
            "max-deletes",
            "5; rm -rf /",
            "input 'max-deletes' must be a whole number",
        ),
        (
            "working-directory",
            "../../nowhere",
            "working-directory '../../nowhere' does not exist",
        ),
    ] {
        let (code, argv, stderr, _env) = entrypoint(&[(input, value)], &["github-action"]);
        assert_eq!(code, 2, "{input}: {stderr}");
        assert!(argv.is_empty(), "secretsync did not run");
        assert!(stderr.contains("::error::") && stderr.contains(message), "{stderr}");
    }
}

#[test]
fn every_file_under_examples_is_parsed_and_checked() {
    let files: Vec<PathBuf> = repository_files()
        .into_iter()
        .filter(|p| p.starts_with("examples"))
        .collect();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(repo().join(file)).unwrap();
        let name = file.display().to_string();
        match file.extension().and_then(|e| e.to_str()) {
            Some("md") => {
                assert!(!text.trim().is_empty(), "{name}: an empty README");
            }
            Some("yaml" | "yml") if file.file_name().is_some_and(|n| n == "pipeline.yaml") => {
                let out = Test::new().run(&["validate", "-c", repo().join(file).to_str().unwrap()]);
                assert_eq!(out.code, 0, "{name}: {}", out.snapshot());
            }
            Some("yaml" | "yml") => {
                let doc = yaml_as_json(&text);
                if file.starts_with("examples/kubernetes") {
                    check_kubernetes(&name, &doc);
                } else if file.starts_with("examples/github") {
                    check_workflow(&name, &doc);
                } else if file.starts_with("examples/observability") {
                    assert!(doc["groups"].is_array(), "{name}: a Prometheus rule file");
                } else if file.starts_with("examples/migrate") {
                    assert!(doc.is_object() || doc.is_array(), "{name}: a migrate input");
                } else {
                    panic!("{name}: no check for this example; add one");
                }
            }
            Some("json") => {
                let _: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            // Secret files of the offline example (any content is a valid secret).
            _ if file.starts_with("examples/quickstart") => {}
            _ => panic!("{name}: no check for this kind of example; add one"),
        }
        checked += 1;
    }
    assert!(checked >= 10, "{files:?}");
}

/// The secretsync arguments of a container spec parse as a command line.
fn check_args(name: &str, args: &[String]) {
    use clap::Parser as _;
    let mut command_line = vec!["secretsync".to_owned()];
    command_line.extend(args.iter().cloned());
    if let Err(e) = secretsync::cli::Cli::try_parse_from(&command_line) {
        panic!("{name}: `{}` is not a valid command line: {e}", command_line.join(" "));
    }
}

fn check_kubernetes(name: &str, doc: &serde_json::Value) {
    let kind = doc["kind"].as_str().unwrap_or_else(|| panic!("{name}: kind"));
    assert!(
        doc["apiVersion"].is_string() && doc["metadata"]["name"].is_string(),
        "{name}"
    );
    let pod = match kind {
        "CronJob" => &doc["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        "Job" => &doc["spec"]["template"]["spec"],
        "ConfigMap" | "ServiceAccount" => return,
        other => panic!("{name}: unexpected kind {other}"),
    };
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}: runAsNonRoot");
    // The image's default user is root (for the GitHub Action), so the pod names its user.
    assert!(
        pod["securityContext"]["runAsUser"].as_u64().is_some_and(|uid| uid != 0),
        "{name}: runAsUser, non-root"
    );
    let container = &pod["containers"][0];
    assert!(
        container["image"].as_str().is_some_and(|i| i.contains("secretsync")),
        "{name}: image"
    );
    let args: Vec<String> = container["args"]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: args"))
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    if kind == "Job" {
        assert_eq!(doc["spec"]["completionMode"], "Indexed", "{name}");
        assert!(
            args.iter().any(|a| a == "$(JOB_COMPLETION_INDEX)/4"),
            "{name}: --shard from the index"
        );
        // Kubernetes expands $(NAME) in args only for variables the container declares.
        let declared = container["env"]
            .as_array()
            .is_some_and(|env| env.iter().any(|e| e["name"] == "JOB_COMPLETION_INDEX"));
        assert!(declared, "{name}: JOB_COMPLETION_INDEX is declared in env");
    }
    let expanded: Vec<String> = args.iter().map(|a| a.replace("$(JOB_COMPLETION_INDEX)", "3")).collect();
    check_args(name, &expanded);
}

fn check_workflow(name: &str, doc: &serde_json::Value) {
    let jobs = doc["jobs"].as_object().unwrap_or_else(|| panic!("{name}: jobs"));
    let uses_action = jobs
        .values()
        .flat_map(|j| j["steps"].as_array().into_iter().flatten())
        .any(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("secretsync/secretsync@"))
        });
    assert!(uses_action, "{name}: uses the action");
}
