//! Test harness: run the real `secretsync` binary in a temporary directory and capture what a
//! user would see, with machine-specific parts (temp paths, timings) redacted for snapshots.
//!
//! [`Test`] is the one way a test sets up and runs the binary, so that setup is written once:
//! `Test::new().pipeline(yaml).file(rel, contents).aws(&account, endpoint).vault_token(token)`,
//! then `.args(&[…]).code(n)`, which asserts the exit code and returns the [`Output`] (whose
//! `.snapshot()` is what snapshot tests compare). The [`aws`], [`vault`] and [`scenario`]
//! modules hold what tests against the testbed share.

pub(crate) mod aws;
pub(crate) mod otlp;
pub(crate) mod receiver;
pub(crate) mod scenario;
pub(crate) mod vault;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use secretsync::model::SecretPath;
use testbed::support::AwsAccount;

/// The bundled offline example's pipeline file, as [`Test::quickstart`] copies it.
pub(crate) const QUICKSTART: &str = "examples/quickstart/pipeline.yaml";

/// A scratch directory and the variables every run in it gets; runs the binary there.
#[must_use]
pub(crate) struct Test {
    dir: tempfile::TempDir,
    vars: Vec<(String, String)>,
}

/// What one run printed.
pub(crate) struct Output {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Output {
    /// The run in the shape snapshots use (exit code, stdout, stderr).
    pub(crate) fn snapshot(&self) -> String {
        redact_timings(&format!(
            "exit_code: {}\n----- stdout -----\n{}----- stderr -----\n{}",
            self.code, self.stdout, self.stderr
        ))
    }
}

impl Test {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            vars: Vec::new(),
        }
    }

    /// A scratch dir holding a copy of the bundled quickstart example ([`QUICKSTART`]).
    pub(crate) fn quickstart() -> Self {
        let test = Self::new();
        test.copy_from_repo("examples/quickstart");
        test
    }

    /// Writes `config.yaml`, the pipeline file runs read when no other is named.
    pub(crate) fn pipeline(self, yaml: impl AsRef<[u8]>) -> Self {
        self.file("config.yaml", yaml)
    }

    /// Writes a file (creating folders).
    pub(crate) fn file(self, rel: &str, contents: impl AsRef<[u8]>) -> Self {
        self.write(rel, contents);
        self
    }

    /// Every run acts as `account`, with AWS reached at `endpoint` (moto or a proxy in front).
    pub(crate) fn aws(mut self, account: &AwsAccount, endpoint: &str) -> Self {
        self.vars.extend(aws::env_vars(account, endpoint));
        self
    }

    /// Every run gets `token` as `VAULT_TOKEN`.
    pub(crate) fn vault_token(self, token: &str) -> Self {
        self.var("VAULT_TOKEN", token)
    }

    /// Every run gets the variable `key`.
    pub(crate) fn var(mut self, key: &str, value: &str) -> Self {
        self.vars.push((key.to_owned(), value.to_owned()));
        self
    }

    /// A run of `secretsync args…`, started by [`Run::code`] or [`Run::output`].
    pub(crate) fn args(&self, args: &[&str]) -> Run<'_> {
        Run {
            test: self,
            args: args.iter().map(|&a| a.to_owned()).collect(),
            vars: Vec::new(),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file (creating folders), for a test that changes files between runs.
    pub(crate) fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Deletes a file the test wrote.
    pub(crate) fn remove(&self, rel: &str) {
        std::fs::remove_file(self.path().join(rel)).unwrap_or_else(|e| panic!("remove {rel}: {e}"));
    }

    /// Copies a folder of the repository (e.g. `examples/quickstart`) into the scratch dir.
    pub(crate) fn copy_from_repo(&self, rel: &str) -> PathBuf {
        let from = repo().join(rel);
        let to = self.path().join(rel);
        copy_dir(&from, &to);
        to
    }

    pub(crate) fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    /// A file the run wrote, as JSON.
    pub(crate) fn read_json(&self, rel: &str) -> serde_json::Value {
        serde_json::from_str(&self.read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// Asserts that the run wrote `rel` as a private (0600) regular file, not through a link.
    pub(crate) fn assert_private_file(&self, rel: &str) {
        let meta = std::fs::symlink_metadata(self.path().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert!(meta.file_type().is_file(), "{rel} is a regular file, not a link");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{rel} is private");
        }
    }

    pub(crate) fn exists(&self, rel: &str) -> bool {
        self.path().join(rel).exists()
    }

    /// Runs `secretsync args…`, whatever its exit code.
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.args(args).output()
    }

    fn redact(&self, text: &str) -> String {
        text.replace(&self.path().display().to_string(), "[TMP]")
    }
}

/// One run of the binary, as [`Test::args`] describes it: in the scratch dir, with a clean,
/// deterministic environment plus the test's and the run's variables.
#[must_use]
pub(crate) struct Run<'a> {
    test: &'a Test,
    args: Vec<String>,
    vars: Vec<(String, String)>,
}

impl Run<'_> {
    /// This run also gets the variable `key`.
    pub(crate) fn var(mut self, key: &str, value: &str) -> Self {
        self.vars.push((key.to_owned(), value.to_owned()));
        self
    }

    /// This run also gets these variables.
    pub(crate) fn vars(self, vars: &[(&str, &str)]) -> Self {
        vars.iter().fold(self, |run, (key, value)| run.var(key, value))
    }

    /// Runs it; asserts it exited with `code` (showing the whole run if not).
    #[track_caller]
    pub(crate) fn code(self, code: i32) -> Output {
        let out = self.output();
        assert_eq!(out.code, code, "{}", out.snapshot());
        out
    }

    /// Runs it, whatever its exit code.
    pub(crate) fn output(self) -> Output {
        let test = self.test;
        let mut cmd = self.command();
        let out = off_the_runtime(|| cmd.output()).expect("run secretsync");
        let redact = |bytes: &[u8]| test.redact(&String::from_utf8_lossy(bytes));
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: redact(&out.stdout),
            stderr: redact(&out.stderr),
        }
    }

    /// Starts it with stdout and stderr piped.
    pub(crate) fn spawn(self) -> Child {
        self.command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start secretsync")
    }

    /// The command, for a test that starts it itself.
    pub(crate) fn command(self) -> Command {
        let test = self.test;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_secretsync"));
        cmd.args(&self.args).current_dir(test.path());
        for (key, _) in std::env::vars() {
            let ours = ["SECRETSYNC_", "GITHUB_", "ACTIONS_", "VAULT_", "AWS_", "OTEL_"]
                .iter()
                .any(|p| key.starts_with(p));
            if ours || ["NO_COLOR", "TRACEPARENT", "TRACESTATE"].contains(&key.as_str()) {
                cmd.env_remove(key);
            }
        }
        // HOME is the scratch dir, so a developer's ~/.vault-token and ~/.aws are never used;
        // the instance-metadata service is off, so no credential lookup leaves loopback.
        cmd.env("HOME", test.path())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("SECRETSYNC_COLOR", "never")
            .env("SECRETSYNC_NO_PROGRESS", "true");
        cmd.envs(test.vars.iter().chain(&self.vars).map(|(k, v)| (k, v)));
        cmd
    }
}

/// Runs blocking `f` without stalling a multi-threaded runtime the test may be serving a proxy
/// or stand-in on; elsewhere simply runs it.
fn off_the_runtime<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// A secret path (tests write them as text).
pub(crate) fn p(text: &str) -> SecretPath {
    SecretPath::parse(text).unwrap()
}

/// Replaces timings (which vary run to run) with `[MS]`.
pub(crate) fn redact_timings(text: &str) -> String {
    let ms = regex_lite_replace(text, "\"duration_ms\": ", "[MS]");
    let ms = regex_lite_replace(&ms, "\"total_ms\": ", "[MS]");
    redact_run_ids(&ms)
}

/// Replaces ids drawn per run — run ids (`"run_id": "5d0b3c8e1f2a4b6c"`, `Run id …`, `[run …]`)
/// and provider request ids (`request id …`) — with `[RUN ID]` / `[REQUEST ID]`.
fn redact_run_ids(text: &str) -> String {
    let mut out = text.to_owned();
    for (marker, with) in [
        ("\"run_id\": \"", "[RUN ID]"),
        ("Run id ", "[RUN ID]"),
        ("[run ", "[RUN ID]"),
        ("request id ", "[REQUEST ID]"),
    ] {
        out = replace_ids_after(&out, marker, with);
    }
    out
}

/// Replaces the id (letters, digits, `-`) after each `marker` with `with`.
fn replace_ids_after(text: &str, marker: &str, with: &str) -> String {
    replace_after(text, marker, with, |c| c.is_ascii_alphanumeric() || c == '-')
}

/// Replaces the number after each `marker` with `with`.
fn regex_lite_replace(text: &str, marker: &str, with: &str) -> String {
    replace_after(text, marker, with, |c| c.is_ascii_digit())
}

/// Replaces the run of characters `part_of` accepts after each `marker` with `with`.
fn replace_after(text: &str, marker: &str, with: &str, part_of: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        out.push_str(&rest[..at + marker.len()]);
        rest = &rest[at + marker.len()..];
        let len: usize = rest.chars().take_while(|&c| part_of(c)).map(char::len_utf8).sum();
        if len > 0 {
            out.push_str(with);
            rest = &rest[len..];
        }
    }
    out.push_str(rest);
    out
}

/// The repository root.
/// The project's `.venv` Python (`scripts/python-env` creates it and installs the pinned
/// packages: deepmerge, opentelemetry-proto, …).
pub(crate) fn venv_python() -> String {
    let setup = Command::new(repo().join("scripts/python-env"))
        .output()
        .expect("scripts/python-env must run (needs bash and python3; .ci/run installs them)");
    assert!(
        setup.status.success(),
        "scripts/python-env failed:\n{}",
        String::from_utf8_lossy(&setup.stderr)
    );
    String::from_utf8(setup.stdout).unwrap().trim().to_owned()
}

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() == ".merged" {
                continue;
            }
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every file under `root` (relative, sorted), for asserting what a run wrote.
pub(crate) fn files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                dirs.push(entry.path());
            } else {
                out.push(entry.path().strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// A pipeline file read with `vars` as its environment, and a store-building context with the
/// same environment (so tests never depend on the process's).
pub(crate) fn built<K: Into<String>, V: Into<String>>(
    yaml: &str,
    vars: impl IntoIterator<Item = (K, V)>,
) -> (secretsync::config::Pipeline, secretsync::store::BuildContext) {
    let vars: Vec<(String, String)> = vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
    let lookup = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let pipeline = secretsync::config::load_str(yaml, Path::new("test.yaml"), Path::new("."), &lookup)
        .unwrap_or_else(|e| panic!("test pipeline is invalid: {e:?}\n{yaml}"));
    let context = secretsync::store::BuildContext::with_env(&pipeline, std::sync::Arc::new(lookup), None);
    (pipeline, context)
}

/// The paths a store lists, as text, in order.
pub(crate) async fn listed(store: &dyn secretsync::store::Store) -> Vec<String> {
    store
        .list()
        .await
        .expect("the store lists")
        .entries
        .keys()
        .map(ToString::to_string)
        .collect()
}
