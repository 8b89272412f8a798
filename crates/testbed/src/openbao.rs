//! A private OpenBao server for one test: `bao server -dev` (in memory, unsealed, KV v2 at
//! `secret/`) on its own port, stopped when dropped.
//!
//! Most tests share the testbed's OpenBao and work in their own mounts. A test that changes the
//! whole server — seals it, or waits for tokens to expire — starts its own, so that tests
//! running in parallel are not disturbed. Starting one takes about a second.

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;

use crate::support::{Services, vault_request};

/// A running private OpenBao.
#[derive(Debug)]
pub struct OpenBao {
    /// `http://127.0.0.1:PORT`.
    pub addr: String,
    /// Its root token.
    pub root_token: String,
    /// Its one unseal key (dev mode).
    pub unseal_key: String,
    child: Child,
    _home: tempfile::TempDir,
}

/// The `bao` binary: `SECRETSYNC_TEST_BAO`, else the one the testbed installed.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SECRETSYNC_TEST_BAO") {
        return PathBuf::from(path);
    }
    Services::get().bao_binary.unwrap_or_else(|| {
        panic!("the testbed names no OpenBao binary; run `scripts/testbed down && scripts/testbed up`")
    })
}

impl OpenBao {
    /// Starts a server with root token `root_token` and waits until it serves requests.
    /// Panics (the test fails) with the server's output when it cannot start.
    pub async fn start(root_token: &str) -> Self {
        let bao = binary();
        let root_token = root_token.to_owned();
        // Dev mode also listens on the next port (cluster traffic); a port taken in between is
        // retried with another.
        let mut last_output = String::new();
        for _ in 0..5 {
            let port = free_port();
            let started = {
                let (bao, token) = (bao.clone(), root_token.clone());
                tokio::task::spawn_blocking(move || spawn(&bao, &token, port))
                    .await
                    .expect("starting OpenBao")
            };
            match started {
                Ok((child, unseal_key, home)) => {
                    let server = Self {
                        addr: format!("http://127.0.0.1:{port}"),
                        root_token,
                        unseal_key,
                        child,
                        _home: home,
                    };
                    server.wait_until_active().await;
                    return server;
                }
                Err(output) if output.contains("address already in use") => last_output = output,
                Err(output) => panic!("OpenBao ({}) did not start:\n{output}", bao.display()),
            }
        }
        panic!("OpenBao found no free port pair; last output:\n{last_output}")
    }

    /// A call to this server with its root token: status and JSON body.
    pub async fn call(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> (u16, serde_json::Value) {
        vault_request(&self.addr, &self.root_token, method, path, body).await
    }

    /// Enables a KV mount of `version` at `path`.
    pub async fn mount_kv(&self, path: &str, version: u8) {
        let body = json!({ "type": "kv", "options": { "version": version.to_string() } });
        let (status, answer) = self.call("POST", &format!("sys/mounts/{path}"), Some(body)).await;
        assert!(status < 300, "enabling KV v{version} at {path}: {status} {answer}");
    }

    /// Seals the server (`PUT sys/seal`): every request is then refused with 503.
    pub async fn seal(&self) {
        let (status, answer) = self.call("PUT", "sys/seal", None).await;
        assert_eq!(status, 204, "sealing: {answer}");
    }

    /// Unseals it with its key and waits until it serves requests again.
    pub async fn unseal(&self) {
        let (status, answer) = self
            .call("PUT", "sys/unseal", Some(json!({ "key": self.unseal_key })))
            .await;
        assert_eq!(status, 200, "unsealing: {answer}");
        assert_eq!(answer["sealed"], false, "one key unseals a dev server: {answer}");
        self.wait_until_active().await;
    }

    /// Waits (polling `sys/health`, at most 30 s) until the server answers 200: unsealed and
    /// active, its mounts loaded.
    async fn wait_until_active(&self) {
        for _ in 0..300 {
            let ready = reqwest::get(format!("{}/v1/sys/health", self.addr))
                .await
                .is_ok_and(|r| r.status().as_u16() == 200);
            if ready {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("OpenBao at {} did not become active within 30 s", self.addr);
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Starts `bao server -dev` and reads its output until it prints its unseal key and root token
/// (or exits: then the output is the error). A thread keeps draining the output afterwards.
fn spawn(bao: &Path, root_token: &str, port: u16) -> Result<(Child, String, tempfile::TempDir), String> {
    // Its own HOME and a clean environment: it neither reads the caller's VAULT_*/BAO_* nor
    // writes a token helper file anywhere shared.
    let home = tempfile::tempdir().expect("a home folder for OpenBao");
    let mut child = Command::new(bao)
        .args([
            "server",
            "-dev",
            "-dev-no-store-token",
            &format!("-dev-root-token-id={root_token}"),
            &format!("-dev-listen-address=127.0.0.1:{port}"),
        ])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bao.display()));
    let (tx, rx) = mpsc::channel::<String>();
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                // The receiver is gone once the server is up; keep draining regardless.
                let _ = tx.send(line);
            }
        });
    }
    drop(tx);
    let mut output = String::new();
    let mut unseal_key = None;
    let deadline = std::time::Instant::now() + Duration::from_mins(1);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{output}\n(no root token printed within a minute; stopped)"));
            }
        };
        if let Some(key) = line.strip_prefix("Unseal Key: ") {
            unseal_key = Some(key.trim().to_owned());
        }
        if line.starts_with("Root Token: ") {
            return match unseal_key {
                Some(key) => Ok((child, key, home)),
                None => Err(format!("{output}\n(no unseal key before the root token)")),
            };
        }
        output.push_str(&line);
        output.push('\n');
    }
    // Both streams closed: the server exited.
    let _ = child.wait();
    Err(output)
}
