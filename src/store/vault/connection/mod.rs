//! A connection to one Vault (address + namespace) and the login it shares with the other
//! namespaces of that address ([`VaultLogin`]: one token per address, obtained in the `vault:`
//! block's namespace): settings, login, and the one place every Vault call goes through.
//!
//! Settings come from the pipeline file, else the usual `VAULT_*` variables; TLS verification is
//! on unless `tls_skip_verify: true` is written in the file (`VAULT_SKIP_VERIFY` is ignored on
//! purpose). Credentials: the `vault.auth` block, else `VAULT_TOKEN`, `~/.vault-token`, or
//! `VAULT_ROLE_ID` + `VAULT_SECRET_ID`; or a JWT (a file, a variable, GitHub Actions' OIDC
//! token). Tokens and JWTs never reach logs or messages.
//!
//! A 403 is ambiguous: an expired token and a policy that does not cover the path both give it.
//! [`VaultConnection::call`] tells them apart with `lookup-self`: a dead token is replaced by
//! logging in again (once, shared by all concurrent callers); a live one means the policy is the
//! problem, and the error names the path, the capability and the token's policies.
//!
//! A fixed token is not looked up when connecting: a run makes the lookup only when a call is
//! refused, so a no-op sync costs no extra call (`validate --check-vault` looks it up at once,
//! through [`VaultConnection::verify`]).
//!
//! `settings.rs` resolves address, namespace and login method; `login.rs` holds the token and
//! logs in again; `error.rs` classifies failures; `api.rs` has the raw endpoints (mount lookup,
//! capabilities, health); this file is the connection and its one call path.

mod api;
mod error;
mod login;
mod settings;

use api::{CapabilitiesSelf, PreflightMount};
pub(crate) use api::{MountInfo, health};
pub(crate) use error::VaultError;
use error::{LoginFailure, transport_detail};
pub(crate) use login::VaultLogin;
use settings::{JwtFrom, Login, default_namespace, describe_at, resolve_login};
pub(crate) use settings::{VaultEndpoint, endpoint};

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use std::future::Future;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

use crate::config::VaultSettings;
use crate::env::EnvVars;
use crate::failure::Failure;
use crate::resilience::{self, ApiClass, Resilience};
use crate::store::ErrorClass;

/// A client for one Vault address and namespace, shared by every Vault store there; its token
/// comes from the address's [`VaultLogin`].
pub(crate) struct VaultConnection {
    pub(crate) address: String,
    pub(crate) namespace: Option<String>,
    login: Arc<VaultLogin>,
    /// The client and the login generation its token is from; rebuilt when that is stale, so
    /// calls in flight keep the client they started with.
    client: Mutex<(u64, Arc<VaultClient>)>,
    resilience: Arc<Resilience>,
}

impl std::fmt::Debug for VaultConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultConnection")
            .field("address", &self.address)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// The hint for a refused fixed token.
pub(crate) const TOKEN_HINT: &str = "log in again (`vault login`) and set VAULT_TOKEN, or configure `vault.auth` (AppRole, Kubernetes or JWT) so secretsync logs in itself";

/// Settings that cannot work (an address, a login method, a CA file).
pub(super) fn connect_error(message: impl Into<String>, hint: Option<&str>) -> Failure {
    Failure::new(ErrorClass::Invalid, message).with_optional_hint(hint.map(str::to_owned))
}

impl VaultConnection {
    /// A connection to `endpoint` using `login`'s token (from [`VaultLogin::connect`] for the
    /// same address).
    pub(crate) fn new(
        endpoint: &VaultEndpoint,
        login: Arc<VaultLogin>,
        resilience: Arc<Resilience>,
    ) -> Result<Self, Failure> {
        let generation = login.generation();
        let client = login
            .client_for(endpoint.namespace.as_deref(), &login.token())
            .map_err(|message| Failure::new(ErrorClass::Invalid, message))?;
        Ok(Self {
            address: endpoint.address.clone(),
            namespace: endpoint.namespace.clone(),
            login,
            client: Mutex::new((generation, Arc::new(client))),
            resilience,
        })
    }

    /// Looks the token up now: is it alive, and which policies does it carry (shown by
    /// [`VaultConnection::policies`]). A run does this only when a call is refused.
    pub(crate) async fn verify(&self) -> Result<(), Failure> {
        self.login.check_token().await.map_err(|e| {
            Failure::new(e.class, format!("cannot use {}: {}", self.describe(), e.detail)).with_optional_hint(e.hint)
        })
    }

    /// Whether the token was found dead (expired, revoked or wrong) when a call was refused.
    pub(crate) fn token_refused(&self) -> bool {
        self.login.refused.load(Ordering::SeqCst)
    }

    /// `https://vault:8200` or `https://vault:8200 (namespace eng)`.
    pub(crate) fn describe(&self) -> String {
        describe_at(&self.address, self.namespace.as_deref())
    }

    /// How this connection logs in (for `validate --check-vault`).
    pub(crate) fn login_method(&self) -> String {
        self.login.login.describe()
    }

    /// The token's policies, as last looked up: `default, reader`, or `none`.
    pub(crate) fn policies(&self) -> String {
        let policies = self
            .login
            .policies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if policies.is_empty() {
            "none".to_owned()
        } else {
            policies.join(", ")
        }
    }

    /// The client to use now: rebuilt (once) after a login replaced the token.
    fn current(&self) -> Result<Arc<VaultClient>, VaultError> {
        let generation = self.login.generation();
        let mut slot = self.client.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.0 != generation {
            let client = self
                .login
                .client_for(self.namespace.as_deref(), &self.login.token())
                .map_err(|detail| VaultError {
                    status: None,
                    class: ErrorClass::Fatal,
                    detail,
                })?;
            *slot = (generation, Arc::new(client));
        }
        Ok(Arc::clone(&slot.1))
    }

    /// Runs a call through the resilience layer (retries of 429/5xx/timeouts, the breaker and
    /// rate limit of this Vault); `capability` (`read`, `list`, `update`, …) names it in metrics.
    pub(crate) async fn call<T, F, Fut>(&self, what: &str, capability: &'static str, op: F) -> Result<T, VaultError>
    where
        F: Fn(Arc<VaultClient>) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let mut endpoint = resilience::Endpoint::new("vault", self.describe());
        if crate::telemetry::enabled() {
            endpoint = server_attributes(endpoint, &self.address);
            if let Some(namespace) = &self.namespace {
                endpoint = endpoint.with_attribute("vault.namespace", namespace.clone());
            }
        }
        let class = if matches!(capability, "read" | "list") {
            ApiClass::Read
        } else {
            ApiClass::Write
        };
        self.resilience
            .call(&endpoint, capability, class, || self.call_once(what, capability, &op))
            .await
    }

    /// One attempt; on a 403 tells an expired token (log in again, once, and retry) from a
    /// policy that does not allow the call (an error naming `what` and the token's policies).
    async fn call_once<T, F, Fut>(&self, what: &str, capability: &str, op: &F) -> Result<T, VaultError>
    where
        F: Fn(Arc<VaultClient>) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let login = &self.login;
        let generation = login.generation();
        let err = match op(self.current()?).await {
            Ok(value) => {
                login.used.store(true, Ordering::SeqCst);
                return Ok(value);
            }
            Err(e) => VaultError::from_client(&e),
        };
        if err.status != Some(403) {
            return Err(err);
        }
        if login.check_token().await.is_ok() {
            return Err(self.denied(what, capability, &err));
        }
        if matches!(login.login, Login::Static) {
            let what_happened = if login.used.load(Ordering::SeqCst) {
                "the Vault token expired or was revoked during the run"
            } else {
                "the Vault token was refused (expired, revoked or wrong)"
            };
            return Err(VaultError {
                detail: format!("{what_happened} ({})", err.summary()),
                ..err
            });
        }
        tracing::info!(vault = %self.describe(), "the Vault token expired; logging in again");
        login.log_in(generation).await.map_err(|f| VaultError {
            class: f.class,
            detail: f.detail,
            ..err.clone()
        })?;
        op(self.current()?).await.map_err(|e| {
            let again = VaultError::from_client(&e);
            if again.status == Some(403) {
                self.denied(what, capability, &again)
            } else {
                again
            }
        })
    }

    fn denied(&self, what: &str, capability: &str, err: &VaultError) -> VaultError {
        let listed = self.policies();
        VaultError {
            detail: format!(
                "permission denied on `{what}`: the token's policies ({listed}) do not grant `{capability}` there; add e.g. `path \"{what}\" {{ capabilities = [\"{capability}\"] }}` to one of them"
            ),
            ..err.clone()
        }
    }

    /// The mount `path` is in and its KV version, via the UI preflight endpoint.
    pub(crate) async fn mount_of(&self, path: &str) -> Result<MountInfo, VaultError> {
        let path = path.trim_matches('/').to_owned();
        self.call(&format!("sys/internal/ui/mounts/{path}"), "read", |c| {
            let path = path.clone();
            async move { vaultrs::api::exec_with_result(&*c, PreflightMount { path }).await }
        })
        .await
    }

    /// The token's capabilities on each of `paths` (API paths such as `kv/data/app/db`).
    pub(crate) async fn capabilities(
        &self,
        paths: &[String],
    ) -> Result<std::collections::BTreeMap<String, Vec<String>>, VaultError> {
        let paths = paths.to_vec();
        let answer = self
            .call("sys/capabilities-self", "update", |c| {
                let paths = paths.clone();
                async move { vaultrs::api::exec_with_result(&*c, CapabilitiesSelf { paths }).await }
            })
            .await?;
        Ok(paths
            .into_iter()
            .map(|p| {
                let caps = answer
                    .get(&p)
                    .and_then(serde_json::Value::as_array)
                    .map(|list| list.iter().filter_map(|c| c.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default();
                (p, caps)
            })
            .collect())
    }
}

/// `endpoint` with the semantic-convention attributes of the server at `address`.
fn server_attributes(endpoint: resilience::Endpoint, address: &str) -> resilience::Endpoint {
    let Ok(url) = url::Url::parse(address) else {
        return endpoint;
    };
    let endpoint = match url.host_str() {
        Some(host) => endpoint.with_attribute("server.address", host),
        None => endpoint,
    };
    match url.port_or_known_default() {
        Some(port) => endpoint.with_attribute("server.port", port.to_string()),
        None => endpoint,
    }
}

/// A client for `endpoint` with the file's TLS and timeout settings.
pub(super) fn client(
    settings: &VaultSettings,
    endpoint: &VaultEndpoint,
    env: &dyn Fn(&str) -> Option<String>,
    token: String,
) -> Result<VaultClient, Failure> {
    let mut builder = VaultClientSettingsBuilder::default();
    builder
        .address(&endpoint.address)
        .token(token)
        .timeout(Some(settings.timeout))
        .verify(!settings.tls_skip_verify);
    let ca_cert = settings
        .ca_cert
        .as_ref()
        .map(|p| p.display().to_string())
        .or_else(|| env(EnvVars::VAULT_CACERT));
    match ca_cert {
        Some(path) if !std::path::Path::new(&path).is_file() => {
            return Err(connect_error(
                format!("the Vault CA certificate file `{path}` does not exist"),
                Some("fix `vault.ca_cert` or VAULT_CACERT"),
            ));
        }
        Some(path) => {
            builder.ca_certs(vec![path]);
        }
        None => {
            builder.ca_certs(Vec::new());
        }
    }
    if let Some(ns) = &endpoint.namespace {
        builder.set_namespace(ns.clone());
    }
    let built = builder
        .build()
        .map_err(|e| connect_error(format!("invalid Vault client settings: {e}"), None))?;
    VaultClient::new(built).map_err(|e| connect_error(format!("cannot create the Vault client: {e}"), None))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::api::{HealthAnswer, health_verdict};
    use super::*;
    use crate::config::VaultAuth;
    use crate::config::raw::ConfigSecret;

    fn settings(auth: Option<VaultAuth>) -> VaultSettings {
        VaultSettings {
            address: None,
            namespace: None,
            ca_cert: None,
            tls_skip_verify: false,
            auth,
            max_traversal_depth: 100,
            max_secrets_per_mount: 100_000,
            timeout: Duration::from_secs(30),
            list_concurrency: 16,
        }
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn the_address_comes_from_the_location_then_the_file_then_vault_addr() {
        let vars = [
            ("VAULT_ADDR", "https://from-env:8200/"),
            ("VAULT_NAMESPACE", "/env-ns/"),
        ];
        let mut s = settings(None);
        let found = endpoint(&s, None, None, &env(&vars)).unwrap();
        assert_eq!(
            (found.address.as_str(), found.namespace.as_deref()),
            ("https://from-env:8200", Some("env-ns"))
        );
        s.address = Some("https://from-file".to_owned());
        s.namespace = Some("file-ns".to_owned());
        let found = endpoint(&s, None, None, &env(&vars)).unwrap();
        assert_eq!(
            (found.address.as_str(), found.namespace.as_deref()),
            ("https://from-file", Some("file-ns"))
        );
        let found = endpoint(&s, Some("http://override"), Some("eng/team"), &env(&vars)).unwrap();
        assert_eq!(
            (found.address.as_str(), found.namespace.as_deref()),
            ("http://override", Some("eng/team"))
        );

        let missing = endpoint(&settings(None), None, None, &env(&[])).unwrap_err();
        assert_eq!(missing.message, "no Vault address");
        assert!(missing.hint.unwrap().contains("VAULT_ADDR"));
        let bad = endpoint(&settings(None), None, None, &env(&[("VAULT_ADDR", "vault:8200")])).unwrap_err();
        assert!(
            bad.message.contains("not an http:// or https:// URL"),
            "{}",
            bad.message
        );
    }

    #[test]
    fn credentials_follow_the_auth_block_then_the_environment_then_the_token_file() {
        let home = tempfile::tempdir().unwrap();
        let home_path = home.path().to_path_buf();
        std::fs::write(home.path().join(".vault-token"), "from-file\n").unwrap();
        let token_of = |auth: Option<VaultAuth>, vars: &[(&str, &str)], home: Option<&PathBuf>| {
            resolve_login(&settings(auth), &env(vars), home).map(|(token, login)| (token, login.describe()))
        };
        let in_file = Some(VaultAuth::Token {
            token: Some(ConfigSecret("from-config".to_owned())),
        });
        assert_eq!(
            token_of(in_file, &[("VAULT_TOKEN", "env")], Some(&home_path))
                .unwrap()
                .0,
            "from-config"
        );
        let block = Some(VaultAuth::Token { token: None });
        assert_eq!(
            token_of(block.clone(), &[("VAULT_TOKEN", "env")], Some(&home_path))
                .unwrap()
                .0,
            "env"
        );
        assert_eq!(token_of(block, &[], Some(&home_path)).unwrap().0, "from-file");
        assert_eq!(token_of(None, &[], Some(&home_path)).unwrap().0, "from-file");
        assert_eq!(
            token_of(None, &[("VAULT_TOKEN", "env")], Some(&home_path)).unwrap().0,
            "env"
        );

        let approle = token_of(
            None,
            &[
                ("VAULT_ROLE_ID", "r"),
                ("VAULT_SECRET_ID", "s"),
                ("VAULT_APPROLE_MOUNT", "ci"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(approle.1, "AppRole (auth/ci)");
        let configured = Some(VaultAuth::AppRole {
            mount: "team".to_owned(),
            role_id: None,
            secret_id: Some(ConfigSecret("s".to_owned())),
        });
        let no_role = resolve_login(&settings(configured), &env(&[]), None)
            .err()
            .expect("no role id");
        assert!(no_role.message.contains("role id") && no_role.hint.unwrap().contains("VAULT_ROLE_ID"));

        let none = resolve_login(&settings(None), &env(&[]), None)
            .err()
            .expect("no credentials");
        assert_eq!(none.message, "no Vault credentials");
        assert!(none.hint.unwrap().contains("~/.vault-token"));
    }

    #[test]
    fn a_missing_ca_bundle_is_an_error_not_a_silent_fallback() {
        let mut s = settings(None);
        s.ca_cert = Some(PathBuf::from("/nonexistent/ca.pem"));
        let endpoint = VaultEndpoint {
            address: "https://vault".to_owned(),
            namespace: None,
        };
        let err = client(&s, &endpoint, &env(&[]), String::new())
            .err()
            .expect("missing CA");
        assert!(
            err.message.contains("/nonexistent/ca.pem") && err.message.contains("does not exist"),
            "{}",
            err.message
        );
        let from_env = client(
            &settings(None),
            &endpoint,
            &env(&[("VAULT_CACERT", "/nonexistent/env.pem")]),
            String::new(),
        )
        .err()
        .expect("missing CA from the environment");
        assert!(
            from_env.message.contains("/nonexistent/env.pem"),
            "{}",
            from_env.message
        );
    }

    #[test]
    fn health_answers_are_read_tolerantly_and_name_what_is_wrong() {
        let answer = |json: &str| Some(serde_json::from_str::<HealthAnswer>(json).unwrap());
        // OpenBao 2.7 (no `performance_standby`, no `enterprise`), as it answers.
        let openbao = r#"{"initialized":true,"sealed":false,"standby":false,"replication_performance_mode":"disabled","replication_dr_mode":"disabled","server_time_utc":1796403177,"version":"2.7.2","cluster_name":"vault-cluster-09ca7f1f","cluster_id":"b61b0976"}"#;
        assert_eq!(health_verdict(200, answer(openbao)), Ok("2.7.2".to_owned()));
        let sealed = r#"{"initialized":true,"sealed":true,"standby":true,"version":"2.7.2"}"#;
        assert_eq!(
            health_verdict(503, answer(sealed)),
            Err("Vault is sealed (status 503)".to_owned())
        );
        assert!(
            health_verdict(503, None)
                .unwrap_err()
                .starts_with("Vault is unavailable (status 503"),
            "a 503 without Vault's body is not called sealed"
        );
        assert_eq!(
            health_verdict(503, answer(r#"{"sealed":false}"#)),
            Err("Vault is not ready (status 503)".to_owned())
        );
        assert!(
            health_verdict(200, None).unwrap_err().contains("is not Vault's"),
            "a web page is not a healthy Vault"
        );
        let uninit = health_verdict(501, answer(r#"{"initialized":false,"sealed":true}"#)).unwrap_err();
        assert!(uninit.starts_with("Vault is not initialized (status 501)"), "{uninit}");
        assert_eq!(
            health_verdict(429, answer(r#"{"standby":true,"version":"1.17.6"}"#)),
            Ok("1.17.6".to_owned()),
            "a standby forwards requests"
        );
        assert!(
            health_verdict(472, answer("{}"))
                .unwrap_err()
                .contains("disaster-recovery")
        );
        assert_eq!(health_verdict(200, answer("{}")), Ok("(version not given)".to_owned()));
    }

    #[test]
    fn errors_are_classified_for_the_resilience_layer() {
        let api = |code: u16, message: &str| {
            VaultError::from_client(&ClientError::APIError {
                code,
                errors: vec![message.to_owned()],
            })
        };
        assert_eq!(api(404, "").class, ErrorClass::NotFound);
        assert_eq!(api(403, "permission denied").class, ErrorClass::Auth);
        assert_eq!(api(429, "").class, ErrorClass::Throttled);
        assert_eq!(api(503, "Vault is sealed").class, ErrorClass::Transient);
        assert_eq!(
            api(400, "check-and-set parameter did not match the current version").class,
            ErrorClass::Conflict
        );
        assert_eq!(api(400, "invalid path").class, ErrorClass::Invalid);
        let sealed = api(503, "1 error occurred:\n\t* Vault is sealed\n\n");
        assert_eq!(sealed.summary(), "status 503: Vault is sealed");
    }
}
