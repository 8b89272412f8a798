//! The emulator's in-memory state.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::acl::Policy;

/// A secrets engine mount.
#[derive(Debug)]
pub(crate) struct Mount {
    pub(crate) version: u8,
    pub(crate) description: String,
    pub(crate) accessor: String,
    pub(crate) cas_required: bool,
    pub(crate) max_versions: u64,
    /// KV v1 data by path.
    pub(crate) v1: BTreeMap<String, Map<String, Value>>,
    /// KV v2 entries by path.
    pub(crate) v2: BTreeMap<String, Entry>,
}

impl Mount {
    pub(crate) fn new(version: u8, description: String, accessor: String) -> Self {
        Self {
            version,
            description,
            accessor,
            cas_required: false,
            max_versions: 0,
            v1: BTreeMap::new(),
            v2: BTreeMap::new(),
        }
    }

    pub(crate) fn info(&self, path: &str) -> Value {
        serde_json::json!({
            "path": path,
            "type": "kv",
            "description": self.description,
            "accessor": self.accessor,
            "options": { "version": self.version.to_string() },
            "config": { "default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": false },
            "local": false,
            "seal_wrap": false,
            "external_entropy_access": false,
            "uuid": self.accessor,
        })
    }
}

/// One KV v2 version.
#[derive(Debug, Clone)]
pub(crate) struct Version {
    pub(crate) data: Option<Map<String, Value>>,
    pub(crate) created_time: String,
    pub(crate) deletion_time: String,
    pub(crate) destroyed: bool,
}

impl Version {
    pub(crate) fn metadata(&self, version: u64, custom: &BTreeMap<String, String>) -> Value {
        serde_json::json!({
            "created_time": self.created_time,
            "custom_metadata": custom_value(custom),
            "deletion_time": self.deletion_time,
            "destroyed": self.destroyed,
            "version": version,
        })
    }

    pub(crate) fn readable(&self) -> bool {
        !self.destroyed && self.deletion_time.is_empty() && self.data.is_some()
    }
}

/// A KV v2 key: its versions and metadata.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) versions: BTreeMap<u64, Version>,
    pub(crate) current_version: u64,
    pub(crate) oldest_version: u64,
    pub(crate) created_time: String,
    pub(crate) updated_time: String,
    pub(crate) custom_metadata: BTreeMap<String, String>,
    pub(crate) max_versions: u64,
    pub(crate) cas_required: bool,
}

impl Entry {
    pub(crate) fn new(now: &str) -> Self {
        Self {
            versions: BTreeMap::new(),
            current_version: 0,
            oldest_version: 0,
            created_time: now.to_owned(),
            updated_time: now.to_owned(),
            custom_metadata: BTreeMap::new(),
            max_versions: 0,
            cas_required: false,
        }
    }
}

pub(crate) fn custom_value(custom: &BTreeMap<String, String>) -> Value {
    if custom.is_empty() {
        Value::Null
    } else {
        serde_json::to_value(custom).unwrap_or(Value::Null)
    }
}

/// An auth method mount.
#[derive(Debug)]
pub(crate) struct AuthMount {
    pub(crate) kind: String,
    pub(crate) accessor: String,
    pub(crate) approle_roles: BTreeMap<String, AppRole>,
    pub(crate) k8s_roles: BTreeMap<String, KubernetesRole>,
}

/// An AppRole role.
#[derive(Debug, Clone)]
pub(crate) struct AppRole {
    pub(crate) role_id: String,
    pub(crate) secret_ids: BTreeSet<String>,
    pub(crate) policies: Vec<String>,
    pub(crate) ttl: Option<Duration>,
}

/// A Kubernetes auth role.
#[derive(Debug, Clone)]
pub(crate) struct KubernetesRole {
    pub(crate) service_accounts: Vec<String>,
    pub(crate) namespaces: Vec<String>,
    pub(crate) policies: Vec<String>,
    pub(crate) ttl: Option<Duration>,
}

/// A token.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) accessor: String,
    pub(crate) policies: Vec<String>,
    pub(crate) display_name: String,
    pub(crate) path: String,
    pub(crate) created: String,
    pub(crate) ttl: Option<Duration>,
    pub(crate) expires: Option<Instant>,
    pub(crate) renewable: bool,
    pub(crate) meta: BTreeMap<String, String>,
}

impl Token {
    pub(crate) fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == "root")
    }

    pub(crate) fn live(&self) -> bool {
        self.expires.is_none_or(|e| Instant::now() < e)
    }

    pub(crate) fn remaining(&self) -> u64 {
        self.expires
            .map_or(0, |e| e.saturating_duration_since(Instant::now()).as_secs())
    }
}

/// Everything the emulator holds.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) sealed: bool,
    /// Namespaces, as `a/` or `a/b/` (the root namespace is "").
    pub(crate) namespaces: BTreeSet<String>,
    /// Secrets mounts by namespace-qualified path (`ns/secret/`).
    pub(crate) mounts: BTreeMap<String, Mount>,
    /// Auth mounts by namespace-qualified path (`ns/approle/`).
    pub(crate) auth: BTreeMap<String, AuthMount>,
    pub(crate) policies: BTreeMap<String, Policy>,
    pub(crate) tokens: BTreeMap<String, Token>,
    counter: u64,
    seed: u64,
}

impl State {
    pub(crate) fn new(root_token: &str) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(7, |d| d.as_nanos() as u64);
        let mut state = Self {
            sealed: false,
            namespaces: BTreeSet::new(),
            mounts: BTreeMap::new(),
            auth: BTreeMap::new(),
            policies: BTreeMap::new(),
            tokens: BTreeMap::new(),
            counter: 0,
            seed: seed | 1,
        };
        let accessor = state.id("");
        state.tokens.insert(
            root_token.to_owned(),
            Token {
                accessor,
                policies: vec!["root".into()],
                display_name: "root".into(),
                path: "auth/token/root".into(),
                created: crate::time::now_rfc3339(),
                ttl: None,
                expires: None,
                renewable: false,
                meta: BTreeMap::new(),
            },
        );
        state.auth.insert(
            "token/".into(),
            AuthMount {
                kind: "token".into(),
                accessor: "auth_token_0".into(),
                approle_roles: BTreeMap::new(),
                k8s_roles: BTreeMap::new(),
            },
        );
        let mut default_kv = Mount::new(2, "key/value secret storage".into(), "kv_default".into());
        default_kv.max_versions = 0;
        state.mounts.insert("secret/".into(), default_kv);
        state
    }

    /// A fresh opaque id (`prefix` + 24 characters).
    pub(crate) fn id(&mut self, prefix: &str) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        self.counter += 1;
        let mut x = self.seed ^ self.counter.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut out = String::from(prefix);
        for _ in 0..24 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.push(ALPHABET[(x % ALPHABET.len() as u64) as usize] as char);
        }
        self.seed = x;
        out
    }

    /// Issues a token.
    pub(crate) fn issue(
        &mut self,
        policies: Vec<String>,
        ttl: Option<Duration>,
        display_name: &str,
        path: &str,
        meta: BTreeMap<String, String>,
    ) -> (String, Token) {
        let id = self.id("hvs.");
        let accessor = self.id("");
        let token = Token {
            accessor,
            policies,
            display_name: display_name.to_owned(),
            path: path.to_owned(),
            created: crate::time::now_rfc3339(),
            ttl,
            expires: ttl.map(|t| Instant::now() + t),
            renewable: ttl.is_some(),
            meta,
        };
        self.tokens.insert(id.clone(), token.clone());
        (id, token)
    }
}

/// Parses Vault durations: `30`, `30s`, `5m`, `1h`, `1h30m`.
pub(crate) fn parse_duration(value: &Value) -> Option<Duration> {
    match value {
        Value::Number(n) => n.as_u64().map(Duration::from_secs),
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => {
            if let Ok(n) = s.parse::<u64>() {
                return Some(Duration::from_secs(n));
            }
            let mut total = 0u64;
            let mut number = String::new();
            for c in s.chars() {
                if c.is_ascii_digit() {
                    number.push(c);
                    continue;
                }
                let n: u64 = number.parse().ok()?;
                number.clear();
                total += n * match c {
                    's' => 1,
                    'm' => 60,
                    'h' => 3600,
                    'd' => 86_400,
                    _ => return None,
                };
            }
            (number.is_empty()).then_some(Duration::from_secs(total))
        }
        _ => None,
    }
}

/// Strings from a JSON list or a comma-separated string (Vault accepts both).
pub(crate) fn string_list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect(),
        _ => Vec::new(),
    }
}
