//! Bakes the commit and build date into the binary for `secretsync version`.
//!
//! The date is the commit date, not the time of the build, so the same commit always builds
//! the same binary. Container builds without `.git` pass `SECRETSYNC_BUILD_COMMIT` and
//! `SECRETSYNC_BUILD_DATE` instead.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-env-changed=SECRETSYNC_BUILD_COMMIT");
    println!("cargo:rerun-if-env-changed=SECRETSYNC_BUILD_DATE");
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={head}");
    }
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]).and_then(|r| git(&["rev-parse", "--git-path", &r])) {
        println!("cargo:rerun-if-changed={reference}");
    }
    let commit = std::env::var("SECRETSYNC_BUILD_COMMIT")
        .ok()
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    let date = std::env::var("SECRETSYNC_BUILD_DATE")
        .ok()
        .or_else(|| git(&["log", "-1", "--format=%cs"]))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=SECRETSYNC_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=SECRETSYNC_BUILD_DATE={date}");
}
