//! The GitHub Action started exactly as the GitHub runner starts a Docker action (actions/runner,
//! `ContainerActionHandler`), without a container: the image's ENTRYPOINT with action.yml's
//! `runs.args` — or, when action.yml has none, the raw `args` input split as a command line, and
//! only when that is empty the image's CMD — and an `INPUT_<NAME>` variable (upper-cased, spaces
//! as `_`, hyphens kept) for every declared input, defaults applied; the working directory is
//! the workspace, and `GITHUB_OUTPUT` / `GITHUB_STEP_SUMMARY` name files the step appends to.
//!
//! The argv and environment are derived from action.yml and the Dockerfile, so the test follows
//! them when they change; the real `entrypoint.sh` runs the real binary on the offline example.
//! `scripts/container-test` runs the same invocation inside the built image.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::distribution::yaml_as_json;
use crate::support::{Test, repo};

/// What the runner needs from action.yml and the Dockerfile.
struct Action {
    /// Declared inputs and their defaults.
    inputs: BTreeMap<String, String>,
    /// `runs.args`, when action.yml has it.
    runs_args: Option<Vec<String>>,
    /// `runs.entrypoint`, else the image's ENTRYPOINT (exec form).
    entrypoint: Vec<String>,
    /// The image's CMD.
    cmd: Vec<String>,
}

/// The exec-form JSON array of the last `{instruction} [...]` line of the Dockerfile.
fn dockerfile_exec_form(dockerfile: &str, instruction: &str) -> Vec<String> {
    let line = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(&format!("{instruction} ")))
        .unwrap_or_else(|| panic!("the Dockerfile has no {instruction}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{instruction} is not in exec form ({e}): {line}"))
}

/// The job's token, as the runner gives `${{ github.token }}`.
const JOB_TOKEN: &str = "ghs_job_token_from_the_runner";

fn action() -> Action {
    let manifest = yaml_as_json(&std::fs::read_to_string(repo().join("action.yml")).unwrap());
    assert_eq!(manifest["runs"]["using"], "docker");
    assert_eq!(
        manifest["runs"]["image"], "Dockerfile",
        "the runner builds the repository's Dockerfile"
    );
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let inputs = manifest["inputs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, spec)| {
            let default = match &spec["default"] {
                Value::Null => String::new(),
                // The runner evaluates defaults too; `github.token` is the job's token.
                Value::String(s) => s.replace("${{ github.token }}", JOB_TOKEN),
                other => other.to_string(),
            };
            assert!(
                !default.contains("${{"),
                "the runner model cannot evaluate the default of `{name}`: {default}"
            );
            (name.clone(), default)
        })
        .collect();
    let runs_args = manifest["runs"]["args"].as_array().map(|list| {
        list.iter()
            .map(|a| a.as_str().map_or_else(|| a.to_string(), str::to_owned))
            .collect()
    });
    let entrypoint = match manifest["runs"]["entrypoint"].as_str() {
        Some(e) => vec![e.to_owned()],
        None => dockerfile_exec_form(&dockerfile, "ENTRYPOINT"),
    };
    Action {
        inputs,
        runs_args,
        entrypoint,
        cmd: dockerfile_exec_form(&dockerfile, "CMD"),
    }
}

/// `${{ inputs.NAME }}` in a `runs.args` item, as the runner evaluates it (the only expression
/// this model knows; anything else fails the test so the model is extended, not bypassed).
fn evaluate(item: &str, inputs: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = item;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").expect("a closed expression") + start;
        let expression = rest[start + 3..end].trim();
        let name = expression
            .strip_prefix("inputs.")
            .unwrap_or_else(|| panic!("the runner model cannot evaluate `{expression}`"));
        out.push_str(&inputs[name]);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// A command line split as .NET splits the one the runner hands to `docker run`: on
/// whitespace, with double quotes grouping and `\"` a literal quote.
fn split_command_line(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let (mut quoted, mut started) = (false, false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'"') => {
                current.push('"');
                chars.next();
                started = true;
            }
            '"' => {
                quoted = !quoted;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                if started {
                    args.push(std::mem::take(&mut current));
                    started = false;
                }
            }
            c => {
                current.push(c);
                started = true;
            }
        }
    }
    if started {
        args.push(current);
    }
    args
}

/// One step run: exit code, stdout, stderr, and what the step wrote for the runner.
struct Step {
    code: i32,
    stdout: String,
    stderr: String,
    outputs: BTreeMap<String, String>,
    summary: String,
}

impl Action {
    /// The container's argv for `with` (the step's inputs), as the runner builds it.
    fn argv(&self, with: &BTreeMap<String, String>) -> Vec<String> {
        let mut argv = self.entrypoint.clone();
        if let Some(list) = &self.runs_args {
            argv.extend(list.iter().map(|a| evaluate(a, with)));
        } else {
            let raw = with.get("args").map(String::as_str).unwrap_or_default();
            if raw.is_empty() {
                argv.extend(self.cmd.iter().cloned());
            } else {
                argv.extend(split_command_line(raw));
            }
        }
        argv
    }

    /// Runs the step in `workspace` with `given` inputs.
    fn run(&self, workspace: &Path, given: &[(&str, &str)]) -> Step {
        self.run_with(workspace, given, &[])
    }

    /// Runs the step with `given` inputs and these runner variables too.
    fn run_with(&self, workspace: &Path, given: &[(&str, &str)], vars: &[(&str, &str)]) -> Step {
        let mut with = self.inputs.clone();
        for (name, value) in given {
            assert!(with.contains_key(*name), "action.yml declares no input `{name}`");
            with.insert((*name).to_owned(), (*value).to_owned());
        }
        let argv = self.argv(&with);
        // The image copies entrypoint.sh to the ENTRYPOINT path; run the repository's copy.
        let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
        assert!(
            dockerfile.contains(&format!("entrypoint.sh {}", argv[0])),
            "the Dockerfile installs entrypoint.sh as {}",
            argv[0]
        );
        let runner_files = workspace.parent().unwrap().join("runner");
        std::fs::create_dir_all(runner_files.join("home")).unwrap();
        let (outputs, summary) = (runner_files.join("set_output"), runner_files.join("step_summary"));
        std::fs::write(&outputs, "").unwrap();
        std::fs::write(&summary, "").unwrap();
        let binary = PathBuf::from(env!("CARGO_BIN_EXE_secretsync"));
        let mut cmd = Command::new("bash");
        cmd.arg(repo().join("entrypoint.sh"))
            .args(&argv[1..])
            .current_dir(workspace)
            .env_clear()
            .env(
                "PATH",
                format!("{}:/usr/local/bin:/usr/bin:/bin", binary.parent().unwrap().display()),
            )
            .env("HOME", runner_files.join("home"))
            .env("CI", "true")
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_WORKSPACE", workspace)
            .env("GITHUB_OUTPUT", &outputs)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env("GITHUB_EVENT_NAME", "pull_request")
            .env("SECRETSYNC_NO_PROGRESS", "true");
        for (name, value) in &with {
            cmd.env(format!("INPUT_{}", name.replace(' ', "_").to_uppercase()), value);
        }
        cmd.envs(vars.iter().copied());
        let out = cmd.output().expect("run entrypoint.sh");
        let outputs = std::fs::read_to_string(&outputs)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Step {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            outputs,
            summary: std::fs::read_to_string(&summary).unwrap(),
        }
    }
}

impl Step {
    fn show(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A workspace holding the offline example at `folder` (`""` for the root), its pipeline file
/// named `config.yaml` (the `config` input's default).
fn workspace(env: &Test, folder: &str) -> PathBuf {
    let example = env.copy_from_repo("examples/quickstart");
    let root = env.path().join("workspace");
    let place = root.join(folder);
    std::fs::create_dir_all(place.parent().unwrap()).unwrap();
    std::fs::rename(&example, &place).unwrap();
    std::fs::rename(place.join("pipeline.yaml"), place.join("config.yaml")).unwrap();
    root
}

#[test]
fn the_runner_model_follows_actions_runner() {
    assert_eq!(
        split_command_line(r#"--shard 0/4  --name "a b" x\"y "#),
        ["--shard", "0/4", "--name", "a b", "x\"y"]
    );
    let inputs = BTreeMap::from([("dry-run".to_owned(), "true".to_owned())]);
    assert_eq!(evaluate("--dry-run=${{ inputs.dry-run }}", &inputs), "--dry-run=true");
    // Without runs.args, the raw `args` input is the container's arguments, else the CMD.
    let without = Action {
        inputs: BTreeMap::new(),
        runs_args: None,
        entrypoint: vec!["/e".into()],
        cmd: vec!["pipeline".into()],
    };
    let with_args = BTreeMap::from([("args".to_owned(), "--parallel 2".to_owned())]);
    assert_eq!(without.argv(&with_args), ["/e", "--parallel", "2"]);
    assert_eq!(without.argv(&BTreeMap::new()), ["/e", "pipeline"]);
}

#[test]
fn with_default_inputs_the_action_syncs_and_writes_outputs_and_summary() {
    let env = Test::new();
    let workspace = workspace(&env, "");
    let step = action().run(&workspace, &[]);
    assert_eq!(step.code, 0, "{}", step.show());
    assert_eq!(step.outputs["outcome"], "changes", "{:?}", step.outputs);
    assert_eq!(step.outputs["added"], "15", "{:?}", step.outputs);
    assert_eq!(step.outputs["deleted"], "1", "{:?}", step.outputs);
    assert!(step.summary.contains("| Staging |"), "{}", step.summary);
    assert!(
        step.stdout.contains("::group::"),
        "github output by default: {}",
        step.stdout
    );
    assert!(workspace.join("targets/production/api/stripe.json").exists());
    let again = action().run(&workspace, &[("exit-code", "true")]);
    assert_eq!(again.code, 0, "converged: {}", again.show());
    assert_eq!(again.outputs["outcome"], "no_changes");
}

#[test]
fn a_dry_run_with_exit_code_flags_changes_and_writes_nothing() {
    let env = Test::new();
    let workspace = workspace(&env, "");
    let before = crate::support::files(&workspace);
    let step = action().run(
        &workspace,
        &[("dry-run", "true"), ("exit-code", "true"), ("report", "plan.json")],
    );
    assert_eq!(step.code, 1, "changes pending: {}", step.show());
    assert_eq!(step.outputs["changes"], "17", "{:?}", step.outputs);
    assert_eq!(step.outputs["report"], "plan.json");
    let mut after = crate::support::files(&workspace);
    after.retain(|f| f != "plan.json");
    assert_eq!(after, before, "a dry run writes only its report");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(workspace.join("plan.json")).unwrap()).unwrap();
    assert_eq!(report["dry_run"], true);
}

#[test]
fn the_args_input_reaches_secretsync_once_after_the_inputs_flags() {
    let env = Test::new();
    let workspace = workspace(&env, "");
    // `--targets` in args and `--parallel`: each given once; a doubled flag is a clap error.
    let step = action().run(&workspace, &[("args", "--parallel 2 --targets Staging")]);
    assert_eq!(step.code, 0, "{}", step.show());
    assert!(workspace.join("targets/staging/api/stripe.json").exists());
    assert!(
        !workspace.join("targets/production/api/stripe.json").exists(),
        "only Staging was selected"
    );
}

#[test]
fn working_directory_is_relative_to_the_workspace() {
    let env = Test::new();
    let workspace = workspace(&env, "deploy/secrets");
    let step = action().run(
        &workspace,
        &[("working-directory", "deploy/secrets"), ("output", "compact")],
    );
    assert_eq!(step.code, 0, "{}", step.show());
    assert!(workspace.join("deploy/secrets/targets/review/api/stripe.json").exists());
    let missing = action().run(&workspace, &[("working-directory", "nowhere")]);
    assert_eq!(missing.code, 2, "{}", missing.show());
    assert!(
        missing
            .stderr
            .contains("::error::secretsync action: working-directory 'nowhere' does not exist"),
        "{}",
        missing.show()
    );
}

#[test]
fn hostile_input_values_run_nothing_and_fail_with_an_annotation() {
    let env = Test::new();
    let workspace = workspace(&env, "");
    let step = action().run(
        &workspace,
        &[
            ("targets", "$(touch pwned-subst)`touch pwned-backquote`"),
            ("config", "config.yaml; touch pwned-semicolon"),
            ("args", "--diff ;touch pwned-args *"),
        ],
    );
    assert_eq!(step.code, 2, "{}", step.show());
    let leftovers: Vec<String> = crate::support::files(&workspace)
        .into_iter()
        .filter(|f| f.contains("pwned"))
        .collect();
    assert!(leftovers.is_empty(), "an input ran a command: {leftovers:?}");
    assert!(
        step.stdout.contains("::error") || step.stderr.contains("error"),
        "{}",
        step.show()
    );
    assert!(!workspace.join("targets/staging/api").exists(), "nothing was synced");
}

/// What the runner does with a step's log: `::add-mask::DATA` registers DATA unescaped
/// (`%0D`, `%0A`, `%25`, as the runner's command parser does) and every later line shows
/// `***` for each registered text.
fn as_the_runner_masks(log: &str) -> String {
    let mut masks: Vec<String> = Vec::new();
    let mut shown = String::new();
    for line in log.lines() {
        if let Some(data) = line.strip_prefix("::add-mask::") {
            masks.push(data.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%"));
            continue;
        }
        let mut line = line.to_owned();
        for mask in masks.iter().filter(|m| !m.is_empty()) {
            line = line.replace(mask.as_str(), "***");
        }
        shown.push_str(&line);
        shown.push('\n');
    }
    shown
}

#[test]
fn show_values_in_actions_masks_every_value_it_prints_even_with_percent_and_short_values() {
    let env = Test::new();
    env.write("src/pct", "%25percent-secret");
    env.write("src/escaped-newline", "x%0Ay-looks-escaped");
    env.write("src/short", "ab");
    env.write("src/lines", "first-line-secret\nzz\n");
    env.write("src/doc.json", r#"{"k": "json-secret", "n": [7, "q"]}"#);
    env.write(
        "config.yaml",
        "sources: { s: { file: { path: ./src } } }\ntargets: { T: { file: { path: ./out }, imports: [s] } }\n",
    );
    let out = env
        .args(&["plan", "--show-values", "-o", "human"])
        .vars(&[("GITHUB_ACTIONS", "true")])
        .code(0);
    let shown = as_the_runner_masks(&out.stdout);
    for value in [
        "%25percent-secret",
        "x%0Ay-looks-escaped",
        "first-line-secret",
        "json-secret",
    ] {
        assert!(out.stdout.contains(value), "printed before masking: {}", out.stdout);
        assert!(!shown.contains(value), "`{value}` shows in the log:\n{shown}");
    }
    for short in ["+ ab", "+ zz", "+     \"q\"", "+     7,"] {
        assert!(!shown.contains(short), "`{short}` shows in the log:\n{shown}");
    }
    assert!(
        shown.contains("<hidden: too short to be masked in the Actions log>"),
        "{shown}"
    );

    // Outside Actions the values are printed whole.
    let local = env.run(&["plan", "--show-values"]);
    assert!(
        local.stdout.contains("+ ab") && !local.stdout.contains("::add-mask::"),
        "{}",
        local.stdout
    );
}

/// The comments of the pull request, with their ids.
/// A comment as the mock keeps it: id, body, author's login and type (`User` or `Bot`).
#[derive(Debug, Clone)]
struct Comment {
    id: u64,
    body: String,
    login: String,
    kind: &'static str,
}

impl Comment {
    /// A comment the job's token wrote (GitHub Actions' app, a `Bot`).
    fn ours(id: u64, body: &str) -> Self {
        Self {
            id,
            body: body.to_owned(),
            login: "github-actions[bot]".to_owned(),
            kind: "Bot",
        }
    }
}

type Comments = std::sync::Arc<std::sync::Mutex<Vec<Comment>>>;

/// Comments with ids from this one are listed but gone when edited (deleted in between).
const GHOST_IDS: u64 = 1_000_000;

/// A local server speaking the GitHub REST shapes of issue comments (list, create, edit) for
/// `acme/infra#5`, checking the token; `writable: false` answers writes as a token without
/// `pull-requests: write` gets answered. `GET /user` is refused, as it is for the job's token;
/// what the job posts is authored by `github-actions[bot]`, a `Bot`.
fn github_api(writable: bool) -> (crate::support::receiver::Receiver, Comments) {
    let comments: Comments = std::sync::Arc::default();
    let state = std::sync::Arc::clone(&comments);
    let receiver = crate::support::receiver::Receiver::new(move |req| {
        if req.header("authorization") != Some(&format!("Bearer {JOB_TOKEN}")) {
            return (401, r#"{"message": "Bad credentials"}"#.to_owned());
        }
        let mut comments = state.lock().unwrap();
        let list = |c: &Vec<Comment>| {
            serde_json::to_string(
                &c.iter()
                    .map(
                        |c| serde_json::json!({"id": c.id, "body": c.body, "user": {"login": c.login, "type": c.kind}}),
                    )
                    .collect::<Vec<_>>(),
            )
            .unwrap()
        };
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/user") => (
                403,
                r#"{"message": "Resource not accessible by integration"}"#.to_owned(),
            ),
            ("GET", path) if path.starts_with("/repos/acme/infra/issues/5/comments?per_page=100&page=") => {
                // Pages of 100, oldest first, as GitHub lists them.
                let page: usize = path.rsplit('=').next().and_then(|p| p.parse().ok()).unwrap_or(1);
                let start = (page.max(1) - 1) * 100;
                let page = comments
                    .get(start..)
                    .map_or(&[][..], |rest| &rest[..rest.len().min(100)]);
                (200, list(&page.to_vec()))
            }
            ("POST" | "PATCH", _) if !writable => (
                403,
                r#"{"message": "Resource not accessible by integration"}"#.to_owned(),
            ),
            ("POST", "/repos/acme/infra/issues/5/comments") => {
                let id = 1000 + comments.len() as u64;
                comments.push(Comment::ours(id, req.json()["body"].as_str().unwrap()));
                (201, serde_json::json!({"id": id}).to_string())
            }
            ("PATCH", path) => {
                let id: u64 = path
                    .strip_prefix("/repos/acme/infra/issues/comments/")
                    .and_then(|id| id.parse().ok())
                    .unwrap_or(0);
                match comments.iter_mut().find(|c| c.id == id && id < GHOST_IDS) {
                    Some(comment) => {
                        req.json()["body"].as_str().unwrap().clone_into(&mut comment.body);
                        (200, serde_json::json!({"id": id}).to_string())
                    }
                    None => (404, r#"{"message": "Not Found"}"#.to_owned()),
                }
            }
            _ => (404, r#"{"message": "Not Found"}"#.to_owned()),
        }
    });
    (receiver, comments)
}

/// Runner variables of a `pull_request` event for `acme/infra#5`, the API at `api`.
fn pull_request_event(env: &Test, api: &str) -> Vec<(String, String)> {
    let event = env.write(
        "event.json",
        r#"{"action": "synchronize", "number": 5, "pull_request": {"number": 5}}"#,
    );
    vec![
        ("GITHUB_EVENT_NAME".to_owned(), "pull_request".to_owned()),
        ("GITHUB_EVENT_PATH".to_owned(), event.display().to_string()),
        ("GITHUB_REPOSITORY".to_owned(), "acme/infra".to_owned()),
        ("GITHUB_API_URL".to_owned(), api.to_owned()),
    ]
}

fn as_refs(vars: &[(String, String)]) -> Vec<(&str, &str)> {
    vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[test]
fn comment_true_posts_the_plan_once_and_later_runs_edit_it() {
    let env = Test::new();
    let workspace = workspace(&env, "");
    let (api, comments) = github_api(true);
    let vars = pull_request_event(&env, &api.url);
    std::fs::write(
        workspace.join("sources/payments/zz-canary.json"),
        format!(r#"{{"token": "{CANARY}"}}"#),
    )
    .unwrap();
    let inputs = [("dry-run", "true"), ("comment", "true")];
    let step = action().run_with(&workspace, &inputs, &as_refs(&vars));
    assert_eq!(step.code, 0, "{}", step.show());
    let first = comments.lock().unwrap().clone();
    assert_eq!(first.len(), 1, "one comment: {first:?}");
    let body = &first[0].body;
    assert!(body.starts_with("<!-- secretsync:plan config.yaml -->"), "{body}");
    assert!(body.contains("<details><summary><code>Staging</code>:"), "{body}");
    // Key names only: the canary's key is named, its value never.
    assert!(body.contains("+ zz-canary") && body.contains("keys: +token"), "{body}");
    assert!(!body.contains(CANARY), "a value in the comment: {body}");

    // The next push: the same comment, edited.
    let step = action().run_with(&workspace, &[("comment", "true")], &as_refs(&vars));
    assert_eq!(step.code, 0, "{}", step.show());
    let second = comments.lock().unwrap().clone();
    assert_eq!(second.len(), 1, "still one comment: {second:?}");
    assert_eq!(second[0].id, first[0].id);
    assert_ne!(second[0].body, first[0].body, "edited with the new plan");
    assert!(second[0].body.contains("secretsync sync"), "{}", second[0].body);
    let requests = api.received();
    assert_eq!(
        requests
            .iter()
            .map(|r| format!("{} {}", r.method, r.path.split('?').next().unwrap()))
            .collect::<Vec<_>>(),
        [
            "GET /user",
            "GET /repos/acme/infra/issues/5/comments",
            "POST /repos/acme/infra/issues/5/comments",
            "GET /user",
            "GET /repos/acme/infra/issues/5/comments",
            &format!("PATCH /repos/acme/infra/issues/comments/{}", first[0].id),
        ],
    );
    for output in [&step.stdout, &step.stderr] {
        assert!(!output.contains(JOB_TOKEN), "the token was shown: {output}");
    }
}

#[test]
fn the_comment_is_found_on_a_later_page() {
    let env = Test::new();
    let workspace = workspace(&env, "");
    let (api, comments) = github_api(true);
    let vars = pull_request_event(&env, &api.url);
    // A busy pull request: 150 comments by people, then ours (on the second page).
    comments.lock().unwrap().extend((0..150).map(|n| Comment {
        id: n + 1,
        body: format!("LGTM {n}"),
        login: "reviewer".to_owned(),
        kind: "User",
    }));
    comments
        .lock()
        .unwrap()
        .push(Comment::ours(500, "<!-- secretsync:plan config.yaml -->\nold plan"));
    let step = action().run_with(&workspace, &[("dry-run", "true"), ("comment", "true")], &as_refs(&vars));
    assert_eq!(step.code, 0, "{}", step.show());
    let after = comments.lock().unwrap().clone();
    assert_eq!(after.len(), 151, "edited, not added");
    assert!(after[150].body.contains("<details>"), "{}", after[150].body);
    let paths: Vec<String> = api
        .received()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(paths.iter().any(|p| p.ends_with("&page=2")), "{paths:?}");
    assert!(
        paths
            .last()
            .unwrap()
            .starts_with("PATCH /repos/acme/infra/issues/comments/500"),
        "{paths:?}"
    );
}

#[test]
fn a_comment_someone_else_wrote_with_the_marker_is_never_edited() {
    let env = Test::new();
    let workspace = workspace(&env, "");
    let (api, comments) = github_api(true);
    let vars = pull_request_event(&env, &api.url);
    let planted = "<!-- secretsync:plan config.yaml -->\nLooks good, nothing to delete!";
    comments.lock().unwrap().extend([
        Comment {
            id: 1,
            body: planted.to_owned(),
            login: "mallory".to_owned(),
            kind: "User",
        },
        // Ours once, deleted since: listed, but gone when edited.
        Comment::ours(GHOST_IDS, "<!-- secretsync:plan config.yaml -->\nold plan"),
    ]);
    let step = action().run_with(&workspace, &[("dry-run", "true"), ("comment", "true")], &as_refs(&vars));
    assert_eq!(step.code, 0, "{}", step.show());
    let after = comments.lock().unwrap().clone();
    assert_eq!(after[0].body, planted, "the planted comment is untouched");
    assert_eq!(after.len(), 3, "a new comment of our own: {after:?}");
    assert!(after[2].body.contains("<details>") && after[2].kind == "Bot");
    let methods: Vec<String> = api.received().iter().map(|r| r.method.clone()).collect();
    assert_eq!(
        methods,
        ["GET", "GET", "PATCH", "POST"],
        "the ghost's edit failed, then a new one"
    );
}

/// A value that must never reach a comment.
const CANARY: &str = "canary-4b1d9e-never-in-a-comment";

#[test]
fn a_token_that_cannot_comment_is_a_warning_with_the_fix_and_a_push_is_not_commented() {
    let env = Test::new();
    let workspace = workspace(&env, "");
    let (api, comments) = github_api(false);
    let vars = pull_request_event(&env, &api.url);
    let step = action().run_with(&workspace, &[("dry-run", "true"), ("comment", "true")], &as_refs(&vars));
    assert_eq!(step.code, 0, "the exit code is the plan's: {}", step.show());
    assert!(
        step.stderr.contains(
            "warning: cannot comment on pull request #5: cannot post the comment: GitHub answered 403 Forbidden"
        ) && step.stderr.contains("permissions: { pull-requests: write }"),
        "{}",
        step.show()
    );
    assert!(comments.lock().unwrap().is_empty());

    // Asked for, on a pull request, but no token: said, not silently skipped.
    let step = action().run_with(
        &workspace,
        &[("dry-run", "true"), ("comment", "true"), ("github-token", "")],
        &as_refs(&vars),
    );
    assert_eq!(step.code, 0, "{}", step.show());
    assert!(
        step.stderr
            .contains("warning: no pull-request comment: `GITHUB_TOKEN` is not set"),
        "{}",
        step.show()
    );

    let mut push = vars.clone();
    push[0].1 = "push".to_owned();
    let before = api.received().len();
    let step = action().run_with(&workspace, &[("dry-run", "true"), ("comment", "true")], &as_refs(&push));
    assert_eq!(step.code, 0, "{}", step.show());
    assert_eq!(api.received().len(), before, "no pull request, no call");
}
