//! What tests use to reach the testbed: its addresses, an isolated AWS account per test on moto,
//! an isolated Vault mount per test on OpenBao, and the fault proxies' admin API.
//!
//! [`Services::get`] reads the `SECRETSYNC_TEST_*` variables, else `target/testbed/env`, else
//! brings the testbed up with `scripts/testbed up`. It never skips: if the services cannot be
//! reached, the test fails and says how to fix it.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::proxy::{Rule, RuleStats};

/// The running testbed.
#[derive(Debug, Clone)]
pub struct Services {
    /// moto, for AWS APIs.
    pub aws_endpoint: String,
    /// The fault proxy in front of moto.
    pub aws_proxy: String,
    /// OpenBao (or HashiCorp Vault from docker-compose.test.yml).
    pub vault_addr: String,
    /// The fault proxy in front of Vault.
    pub vault_proxy: String,
    /// A root token for Vault.
    pub vault_token: String,
    /// `openbao` or `vault`.
    pub vault_kind: String,
    /// OpenBao's unseal key (dev mode has one), when the testbed runs OpenBao.
    pub vault_unseal_key: Option<String>,
    /// The `bao` binary the testbed runs, for tests that start a private server.
    pub bao_binary: Option<PathBuf>,
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}

fn from_vars(lookup: &dyn Fn(&str) -> Option<String>) -> Option<Services> {
    Some(Services {
        aws_endpoint: lookup("SECRETSYNC_TEST_AWS_ENDPOINT")?,
        aws_proxy: lookup("SECRETSYNC_TEST_AWS_PROXY")?,
        vault_addr: lookup("SECRETSYNC_TEST_VAULT_ADDR")?,
        vault_proxy: lookup("SECRETSYNC_TEST_VAULT_PROXY")?,
        vault_token: lookup("SECRETSYNC_TEST_VAULT_TOKEN")?,
        vault_kind: lookup("SECRETSYNC_TEST_VAULT_KIND").unwrap_or_else(|| "openbao".to_owned()),
        vault_unseal_key: lookup("SECRETSYNC_TEST_VAULT_UNSEAL_KEY").filter(|k| !k.is_empty()),
        bao_binary: lookup("SECRETSYNC_TEST_BAO")
            .filter(|b| !b.is_empty())
            .map(PathBuf::from),
    })
}

fn from_env_file(text: &str) -> Option<Services> {
    let pairs: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect();
    from_vars(&|name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
}

impl Services {
    /// The testbed, brought up if needed. Panics with instructions when it cannot be reached.
    pub fn get() -> Self {
        if let Some(services) = from_vars(&|name| std::env::var(name).ok()) {
            return services;
        }
        let root = repo_root();
        let up = Command::new(root.join("scripts/testbed")).arg("up").output();
        let env_file = root.join("target/testbed/env");
        match up {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "the testbed did not start (scripts/testbed up):\n{}\nIt needs python3 (moto is installed into .venv) and cargo; see CONTRIBUTING.md",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(err) => panic!("cannot run scripts/testbed: {err}"),
        }
        let text = std::fs::read_to_string(&env_file)
            .unwrap_or_else(|e| panic!("{} is missing after scripts/testbed up: {e}", env_file.display()));
        from_env_file(&text).unwrap_or_else(|| panic!("{} is incomplete", env_file.display()))
    }

    /// A new, empty AWS account on moto: assumes a role in a random 12-digit account, so that
    /// tests running in parallel never see each other's resources.
    pub async fn aws_account(&self) -> AwsAccount {
        self.aws_account_with_id(&random_account_id()).await
    }

    /// Credentials in account `account_id` on moto (what a role assumed there would give).
    pub async fn aws_account_with_id(&self, account_id: &str) -> AwsAccount {
        let account_id = account_id.to_owned();
        let form = format!(
            "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A{account_id}%3Arole%2Ftestbed&RoleSessionName=test&DurationSeconds=3600"
        );
        let resp = reqwest::Client::new()
            .post(format!("{}/", self.aws_endpoint))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=0")
            .body(form)
            .send()
            .await
            .unwrap_or_else(|e| panic!("moto at {} does not answer: {e}", self.aws_endpoint));
        let xml = resp.text().await.unwrap_or_default();
        let tag = |name: &str| {
            xml.split(&format!("<{name}>"))
                .nth(1)
                .and_then(|r| r.split(&format!("</{name}>")).next())
                .map(str::to_owned)
                .unwrap_or_else(|| panic!("AssumeRole answered without {name}: {xml}"))
        };
        AwsAccount {
            account_id,
            access_key_id: tag("AccessKeyId"),
            secret_access_key: tag("SecretAccessKey"),
            session_token: tag("SessionToken"),
        }
    }

    /// Makes `account` the management account of a new organization on moto (its own, isolated
    /// from other tests' organizations) and returns the organization's description
    /// (`Organization` of `DescribeOrganization`: `Id`, `MasterAccountId`, …).
    pub async fn aws_organization(&self, account: &AwsAccount) -> Value {
        let create = self
            .aws_json(
                account,
                "organizations",
                "AWSOrganizationsV20161128.CreateOrganization",
                &json!({ "FeatureSet": "ALL" }),
            )
            .await;
        assert!(
            create.get("Organization").is_some(),
            "CreateOrganization failed: {create}"
        );
        let described = self
            .aws_json(
                account,
                "organizations",
                "AWSOrganizationsV20161128.DescribeOrganization",
                &json!({}),
            )
            .await;
        described["Organization"].clone()
    }

    /// An AWS JSON-protocol call to moto as `account` (moto identifies the account by the access
    /// key; it does not check signatures).
    pub async fn aws_json(&self, account: &AwsAccount, service: &str, target: &str, body: &Value) -> Value {
        let resp = reqwest::Client::new()
            .post(format!("{}/", self.aws_endpoint))
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", target)
            .header("x-amz-security-token", &account.session_token)
            .header(
                "authorization",
                format!("AWS4-HMAC-SHA256 Credential={}/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0", account.access_key_id),
            )
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("moto at {} does not answer: {e}", self.aws_endpoint));
        let text = resp.text().await.unwrap_or_default();
        serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text }))
    }

    /// A new KV mount (`t-…`) on Vault, of `version` 1 or 2.
    pub async fn vault_mount(&self, version: u8) -> String {
        let mount = format!("t-{}", random_account_id());
        let body = json!({ "type": "kv", "options": { "version": version.to_string() } });
        let resp = reqwest::Client::new()
            .post(format!("{}/v1/sys/mounts/{mount}", self.vault_addr))
            .header("X-Vault-Token", &self.vault_token)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("Vault at {} does not answer: {e}", self.vault_addr));
        assert!(
            resp.status().is_success(),
            "enabling mount {mount} failed: {}",
            resp.text().await.unwrap_or_default()
        );
        mount
    }

    /// A Vault API call with the root token to `base` (the Vault address or its proxy): the
    /// status and the JSON body (`null` when empty).
    pub async fn vault_call(&self, method: &str, base: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        vault_request(base, &self.vault_token, method, path, body).await
    }

    /// The admin API of the fault proxy in front of moto.
    pub fn aws_faults(&self) -> ProxyAdmin {
        ProxyAdmin {
            base: self.aws_proxy.clone(),
        }
    }

    /// The admin API of the fault proxy in front of Vault.
    pub fn vault_faults(&self) -> ProxyAdmin {
        ProxyAdmin {
            base: self.vault_proxy.clone(),
        }
    }
}

/// A Vault API call (`{base}/v1/{path}`) with `token`: the status and the JSON body (`null`
/// when empty). For a Vault other than the shared one, such as a test's private OpenBao.
pub async fn vault_request(base: &str, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("valid method");
    let mut request = reqwest::Client::new()
        .request(method, format!("{base}/v1/{path}"))
        .header("X-Vault-Token", token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let resp = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("Vault at {base} does not answer: {e}"));
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Credentials for an isolated account on moto.
#[derive(Debug, Clone)]
pub struct AwsAccount {
    /// The 12-digit account id.
    pub account_id: String,
    /// Access key id of the assumed role.
    pub access_key_id: String,
    /// Secret access key of the assumed role.
    pub secret_access_key: String,
    /// Session token of the assumed role.
    pub session_token: String,
}

/// A fault proxy's admin API over HTTP.
#[derive(Debug, Clone)]
pub struct ProxyAdmin {
    base: String,
}

impl ProxyAdmin {
    /// Adds a rule; returns its id. Removed when the returned guard is dropped.
    pub async fn add(&self, rule: &Rule) -> RuleGuard {
        let resp: Value = reqwest::Client::new()
            .post(format!("{}/__fault/rules", self.base))
            .json(rule)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = resp["id"].as_u64().unwrap_or_else(|| panic!("rule refused: {resp}"));
        RuleGuard {
            base: self.base.clone(),
            id,
        }
    }

    /// Adds `rule` holding its requests until `until` has matched once (a 504 after
    /// `timeout_ms`): proves a client sends them only after, or while, `until`'s request.
    pub async fn add_held(&self, rule: Rule, until: &RuleGuard, timeout_ms: u64) -> RuleGuard {
        let hold = crate::proxy::Hold {
            until_rule: until.id,
            matched: 1,
            timeout_ms,
        };
        self.add(&Rule {
            fault: crate::proxy::Fault {
                hold: Some(hold),
                ..rule.fault
            },
            ..rule
        })
        .await
    }
}

/// A rule on a shared proxy; removed on drop.
#[derive(Debug)]
pub struct RuleGuard {
    base: String,
    id: u64,
}

impl RuleGuard {
    /// The rule's id (for another rule's [`crate::proxy::Hold`]).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// How often the rule matched and fired.
    pub async fn stats(&self) -> RuleStats {
        reqwest::Client::new()
            .get(format!("{}/__fault/rules/{}", self.base, self.id))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for RuleGuard {
    fn drop(&mut self) {
        // Best effort and without a runtime (drop may run outside one): a plain HTTP/1.0 DELETE
        // on loopback, reading the reply so the proxy has handled it before we go on.
        let Some(addr) = self.base.strip_prefix("http://") else {
            return;
        };
        let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
            return;
        };
        let request = format!("DELETE /__fault/rules/{} HTTP/1.0\r\nHost: {addr}\r\n\r\n", self.id);
        if std::io::Write::write_all(&mut stream, request.as_bytes()).is_ok() {
            let _ = std::io::Read::read_to_end(&mut stream, &mut Vec::new());
        }
    }
}

/// A random 12-digit id (not starting with 0, to stay clear of moto's default account).
pub fn random_account_id() -> String {
    let mut bytes = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut bytes);
    }
    let n = u64::from_le_bytes(bytes)
        ^ u64::from(std::process::id())
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
    format!("{}", 100_000_000_000 + n % 899_999_999_999)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_env_file() {
        let text = "# comment\nexport SECRETSYNC_TEST_AWS_ENDPOINT=http://127.0.0.1:1\nexport SECRETSYNC_TEST_AWS_PROXY=http://127.0.0.1:2\nexport SECRETSYNC_TEST_VAULT_ADDR=http://127.0.0.1:3\nexport SECRETSYNC_TEST_VAULT_PROXY=http://127.0.0.1:4\nexport SECRETSYNC_TEST_VAULT_TOKEN=t\n";
        let s = from_env_file(text).unwrap();
        assert_eq!(
            (s.aws_endpoint.as_str(), s.vault_token.as_str(), s.vault_kind.as_str()),
            ("http://127.0.0.1:1", "t", "openbao")
        );
        assert!(from_env_file("export SECRETSYNC_TEST_AWS_ENDPOINT=x\n").is_none());
        let id = random_account_id();
        assert_eq!(id.len(), 12);
        assert!(!id.starts_with('0'));
    }
}
