//! `vault:` — address, namespace, TLS, login (token, AppRole, Kubernetes, JWT) — and the pieces
//! every Vault location shares (mount, KV version, namespace).

use std::path::PathBuf;
use std::time::Duration;

use super::{Compiler, not_echoing};
use crate::config::checks;
use crate::config::de::Spanned;
use crate::config::diagnostics::Mark;
use crate::config::pipeline::{JwtSource, VaultAuth, VaultSettings};
use crate::config::raw::{RawJwtAuth, RawVault, RawVaultAuth};
use crate::model::SecretPath;

impl Compiler<'_> {
    pub(super) fn mount(&mut self, value: Option<&Spanned<String>>, parent: Mark, path: &str) -> Option<String> {
        let mount = self.required(value, parent, "mount", path)?;
        let trimmed = mount.value.trim_matches('/');
        match SecretPath::parse(trimmed) {
            Ok(p) => Some(p.as_str().to_owned()),
            Err(err) => {
                self.error(
                    mount.mark,
                    format!(
                        "`{path}.mount`: {}",
                        not_echoing(mount, err.to_string().replace("secret path", "mount"))
                    ),
                );
                None
            }
        }
    }

    pub(super) fn kv_version(&mut self, value: Option<&Spanned<u8>>, path: &str) -> Option<u8> {
        let v = value?;
        if v.value == 1 || v.value == 2 {
            Some(v.value)
        } else {
            self.error(v.mark, format!("`{path}.kv_version` must be 1 or 2, not {}", v.value));
            None
        }
    }

    /// A Vault namespace as written (`teams/payments`), without surrounding slashes.
    pub(super) fn namespace(&mut self, value: Option<&Spanned<String>>, what: &str) -> Option<String> {
        self.checked(value, what, checks::namespace)
            .map(|n| n.trim_matches('/').to_owned())
    }

    /// A Vault location's own `address` and `namespace` (`at` is `targets.X.vault`), which
    /// override `vault.address` and `vault.namespace`.
    pub(super) fn vault_connection_overrides(
        &mut self,
        address: Option<&Spanned<String>>,
        namespace: Option<&Spanned<String>>,
        at: &str,
    ) -> (Option<String>, Option<String>) {
        // `namespace: /` names the root namespace when `vault.namespace` names another.
        let namespace = match namespace {
            Some(root) if root.value.trim().trim_matches('/').is_empty() && root.value.contains('/') => {
                Some(String::new())
            }
            other => self.namespace(other, &format!("`{at}.namespace`")),
        };
        (
            self.checked(address, &format!("`{at}.address`"), checks::url),
            namespace,
        )
    }

    pub(super) fn vault(&mut self, raw: Option<&RawVault>) -> VaultSettings {
        let mut settings = VaultSettings {
            address: None,
            namespace: None,
            ca_cert: None,
            tls_skip_verify: false,
            auth: None,
            max_traversal_depth: 100,
            max_secrets_per_mount: 100_000,
            timeout: Duration::from_secs(30),
            list_concurrency: 16,
        };
        let Some(raw) = raw else { return settings };
        settings.address = self.checked(raw.address.as_ref(), "`vault.address`", checks::url);
        settings.namespace = self.namespace(raw.namespace.as_ref(), "`vault.namespace`");
        settings.ca_cert = raw.ca_cert.as_ref().map(|p| self.base_dir.join(&p.value));
        if let Some(skip) = &raw.tls_skip_verify {
            settings.tls_skip_verify = skip.value;
            if skip.value {
                self.warn(
                    skip.mark,
                    "TLS certificate verification is disabled for Vault",
                    "use `ca_cert` to trust a private CA instead",
                );
            }
        }
        settings.auth = raw.auth.as_ref().and_then(|a| self.vault_auth(a));
        settings.max_traversal_depth =
            self.positive(raw.max_traversal_depth.as_ref(), "vault.max_traversal_depth", 100);
        settings.max_secrets_per_mount = self.positive(
            raw.max_secrets_per_mount.as_ref(),
            "vault.max_secrets_per_mount",
            100_000,
        );
        self.positive(
            raw.queue_compaction_threshold.as_ref(),
            "vault.queue_compaction_threshold",
            1000,
        );
        settings.timeout =
            Duration::from_secs(self.positive(raw.timeout_seconds.as_ref(), "vault.timeout_seconds", 30));
        settings.list_concurrency =
            usize::try_from(self.positive(raw.list_concurrency.as_ref(), "vault.list_concurrency", 16)).unwrap_or(16);
        settings
    }

    pub(super) fn vault_auth(&mut self, raw: &Spanned<RawVaultAuth>) -> Option<VaultAuth> {
        let given: Vec<&str> = [
            raw.token.as_ref().map(|_| "token"),
            raw.approle.as_ref().map(|_| "approle"),
            raw.kubernetes.as_ref().map(|_| "kubernetes"),
            raw.jwt.as_ref().map(|_| "jwt"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if given.len() != 1 {
            let message = if given.is_empty() {
                "`vault.auth` names no method".to_owned()
            } else {
                format!(
                    "`vault.auth` names {} methods ({}); give exactly one",
                    given.len(),
                    given.join(", ")
                )
            };
            self.error(raw.mark, message).hint =
                Some("use one of `token: { token: \"${VAULT_TOKEN}\" }`, `approle: { role_id: …, secret_id: … }`, `kubernetes: { role: … }`, `jwt: { role: … }`".to_owned());
            return None;
        }
        if let Some(token) = &raw.token {
            return Some(VaultAuth::Token {
                token: token.value.token.clone(),
            });
        }
        if let Some(approle) = &raw.approle {
            return Some(VaultAuth::AppRole {
                mount: approle
                    .mount
                    .as_ref()
                    .map_or_else(|| "approle".to_owned(), |m| m.value.trim_matches('/').to_owned()),
                role_id: approle.role_id.clone(),
                secret_id: approle.secret_id.clone(),
            });
        }
        if let Some(jwt) = &raw.jwt {
            return self.jwt_auth(jwt);
        }
        let k8s = raw.kubernetes.as_ref()?;
        let role = self.required(k8s.role.as_ref(), k8s.mark, "role", "vault.auth.kubernetes")?;
        Some(VaultAuth::Kubernetes {
            role: role.value.clone(),
            mount: k8s
                .mount_path
                .as_ref()
                .map_or_else(|| "kubernetes".to_owned(), |m| m.value.trim_matches('/').to_owned()),
            jwt_path: k8s.jwt_path.as_ref().map_or_else(
                || PathBuf::from("/var/run/secrets/kubernetes.io/serviceaccount/token"),
                |p| self.base_dir.join(&p.value),
            ),
        })
    }

    pub(super) fn jwt_auth(&mut self, raw: &Spanned<RawJwtAuth>) -> Option<VaultAuth> {
        for (value, key) in [
            (&raw.role, "role"),
            (&raw.mount_path, "mount_path"),
            (&raw.audience, "audience"),
        ] {
            if let Some(v) = value
                && v.value.trim().trim_matches('/').is_empty()
            {
                self.error(v.mark, format!("`vault.auth.jwt.{key}` is empty")).hint =
                    Some("leave the key out for its default".to_owned());
                return None;
            }
        }
        let jwt = match (&raw.jwt_path, &raw.jwt_env) {
            (Some(_), Some(env)) => {
                self.error(
                    env.mark,
                    "`vault.auth.jwt` gives both `jwt_path` and `jwt_env`; give one",
                )
                .hint = Some("or neither, to use GitHub Actions' OIDC token".to_owned());
                return None;
            }
            (Some(path), None) => JwtSource::File(self.base_dir.join(&path.value)),
            (None, Some(env)) => {
                if !self.check(env, "`vault.auth.jwt.jwt_env`", checks::env_name) {
                    return None;
                }
                JwtSource::Env(env.value.clone())
            }
            (None, None) => JwtSource::GitHubActions {
                audience: raw.audience.as_ref().map(|a| a.value.clone()),
            },
        };
        if let (Some(audience), JwtSource::File(_) | JwtSource::Env(_)) = (&raw.audience, &jwt) {
            self.error(
                audience.mark,
                "`vault.auth.jwt.audience` is asked of GitHub Actions' OIDC token service, which `jwt_path`/`jwt_env` bypass",
            )
            .hint = Some("remove `audience`, or remove `jwt_path`/`jwt_env` to log in with the workflow's OIDC token".to_owned());
            return None;
        }
        Some(VaultAuth::Jwt {
            role: raw.role.as_ref().map(|r| r.value.clone()),
            mount: raw
                .mount_path
                .as_ref()
                .map_or_else(|| "jwt".to_owned(), |m| m.value.trim_matches('/').to_owned()),
            jwt,
        })
    }
}
