//! Vault for tests, written once: secrets seeded into a KV mount over the HTTP API (on the
//! testbed's shared server or a test's private one), and namespaces with their own KV mounts.

use serde_json::{Value, json};
use testbed::support::{Services, vault_request};

/// A KV mount on a Vault server, reached with `token`, for seeding what a test reads.
pub(crate) struct Kv {
    base: String,
    token: String,
    mount: String,
    version: u8,
}

impl Kv {
    /// KV `version` (1 or 2) at `mount` on the server at `base`.
    pub(crate) fn new(base: &str, token: &str, mount: &str, version: u8) -> Self {
        Self {
            base: base.to_owned(),
            token: token.to_owned(),
            mount: mount.to_owned(),
            version,
        }
    }

    /// KV `version` at `mount` on the testbed's shared server, as root.
    pub(crate) fn shared(services: &Services, mount: &str, version: u8) -> Self {
        Self::new(&services.vault_addr, &services.vault_token, mount, version)
    }

    /// Writes the secret at `path` (KV v2 wraps it in `data`).
    pub(crate) async fn seed(&self, path: &str, data: &Value) {
        let (api, body) = if self.version == 2 {
            (format!("{}/data/{path}", self.mount), json!({ "data": data }))
        } else {
            (format!("{}/{path}", self.mount), data.clone())
        };
        let (status, answer) = vault_request(&self.base, &self.token, "POST", &api, Some(body)).await;
        assert!(status < 300, "seeding {api} failed: {status} {answer}");
    }
}

/// Creates namespace `ns` on the shared server, with a KV mount of each `(path, version)`.
pub(crate) async fn namespace(services: &Services, ns: &str, mounts: &[(&str, u8)]) {
    let root = &services.vault_addr;
    let (status, answer) = services
        .vault_call("POST", root, &format!("sys/namespaces/{ns}"), None)
        .await;
    assert_eq!(status, 200, "creating namespace {ns}: {answer}");
    for (mount, version) in mounts {
        let body = json!({ "type": "kv", "options": { "version": version.to_string() } });
        let (status, answer) = services
            .vault_call("POST", root, &format!("{ns}/sys/mounts/{mount}"), Some(body))
            .await;
        assert!(status < 300, "{answer}");
    }
}
