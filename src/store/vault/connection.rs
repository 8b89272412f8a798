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

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustify::endpoint::Endpoint;
use rustify::enums::{RequestMethod, RequestType, ResponseType};
use std::future::Future;
use vaultrs::client::{Client as _, VaultClient, VaultClientSettings, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

use crate::config::{JwtSource, VaultAuth, VaultSettings};
use crate::env::EnvVars;
use crate::resilience::{self, ApiClass, CallError, Resilience};
use crate::store::ErrorClass;

/// How to get a token (again).
#[derive(Clone)]
enum Login {
    /// A fixed token; when it dies there is no way to get another.
    Static,
    AppRole {
        mount: String,
        role_id: String,
        secret_id: String,
    },
    Kubernetes {
        mount: String,
        role: String,
        jwt_path: PathBuf,
    },
    Jwt {
        mount: String,
        role: Option<String>,
        jwt: JwtFrom,
    },
}

/// Where a JWT login gets its JWT, resolved from the file and the environment.
#[derive(Clone)]
enum JwtFrom {
    /// Read at every login (a projected token is rotated on disk).
    File(PathBuf),
    /// The value of an environment variable (named, for messages).
    Env { name: String, jwt: String },
    /// Asked of GitHub Actions' OIDC token service at every login (its tokens live minutes).
    GitHubActions {
        url: String,
        bearer: String,
        audience: Option<String>,
    },
}

impl Login {
    fn describe(&self) -> String {
        match self {
            Self::Static => "token".to_owned(),
            Self::AppRole { mount, .. } => format!("AppRole (auth/{mount})"),
            Self::Kubernetes { mount, role, .. } => format!("Kubernetes role `{role}` (auth/{mount})"),
            Self::Jwt { mount, role, jwt } => {
                let role = role
                    .as_ref()
                    .map_or_else(|| "the default role".to_owned(), |r| format!("role `{r}`"));
                let from = match jwt {
                    JwtFrom::File(path) => format!("the JWT in `{}`", path.display()),
                    JwtFrom::Env { name, .. } => format!("the JWT in ${name}"),
                    JwtFrom::GitHubActions { .. } => "the GitHub Actions OIDC token".to_owned(),
                };
                format!("JWT {role} (auth/{mount}, {from})")
            }
        }
    }
}

/// A failed Vault call, classified. `detail` holds Vault's own messages (never a value or token).
#[derive(Debug, Clone)]
pub(crate) struct VaultError {
    pub(crate) status: Option<u16>,
    pub(crate) class: ErrorClass,
    pub(crate) detail: String,
}

impl VaultError {
    pub(crate) fn from_client(err: &ClientError) -> Self {
        // A response without `errors` (a soft-deleted KV v2 read) has only a status; its body
        // may hold secret data, so it is never kept.
        let (status, detail) = match err {
            ClientError::APIError { code, errors } => (Some(*code), errors.join("; ")),
            ClientError::RestClientError { source } => match source {
                rustify::errors::ClientError::ServerResponseError { code, .. } => (Some(*code), String::new()),
                // Transport failures: the cause chain says why (refused, timed out, TLS). Other
                // causes (response parsing) are not followed: they can quote the response.
                rustify::errors::ClientError::RequestError { source, .. }
                | rustify::errors::ClientError::ResponseError { source } => (None, transport_detail(source.as_ref())),
                other => (None, other.to_string()),
            },
            other => (None, other.to_string()),
        };
        let detail = detail.replace("1 error occurred:\n\t* ", "").trim().to_owned();
        let class = match status {
            Some(404) => ErrorClass::NotFound,
            Some(401 | 403) => ErrorClass::Auth,
            Some(429) => ErrorClass::Throttled,
            Some(400) if detail.contains("check-and-set") => ErrorClass::Conflict,
            Some(400 | 405 | 409 | 412 | 422) => ErrorClass::Invalid,
            Some(500..=599) | None => ErrorClass::Transient,
            Some(_) => ErrorClass::Fatal,
        };
        Self { status, class, detail }
    }

    pub(crate) fn is_not_found(&self) -> bool {
        self.status == Some(404)
    }

    /// `status 503: Vault is sealed` or the transport error.
    pub(crate) fn summary(&self) -> String {
        match (self.status, self.detail.is_empty()) {
            (Some(code), false) => format!("status {code}: {}", self.detail),
            (Some(code), true) => format!("status {code}"),
            (None, _) => self.detail.clone(),
        }
    }
}

/// Where and how to connect, resolved from the file and the environment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct VaultEndpoint {
    pub(crate) address: String,
    pub(crate) namespace: Option<String>,
}

impl VaultEndpoint {
    /// `https://vault:8200` or `https://vault:8200 (namespace eng)`.
    pub(crate) fn describe(&self) -> String {
        describe_at(&self.address, self.namespace.as_deref())
    }
}

fn describe_at(address: &str, namespace: Option<&str>) -> String {
    let address = crate::url_text::shown(address);
    match namespace {
        Some(ns) => format!("{address} (namespace {ns})"),
        None => address,
    }
}

/// A token and how to get it again, shared by every connection to one Vault address: one
/// login per run (and per expiry), whatever namespaces the stores are in. Logins happen in the
/// `vault:` block's namespace (`vault.namespace`, else `VAULT_NAMESPACE`, else the root); a
/// token is valid in its namespace and the ones below it, so one set of credentials serves a
/// platform namespace and every team namespace under it — and a single-use AppRole secret id is
/// used once.
pub(crate) struct VaultLogin {
    address: String,
    /// Where `login` logs in.
    namespace: Option<String>,
    login: Login,
    /// Client settings (address, TLS, timeout) every client of this address starts from.
    base: VaultClientSettings,
    /// The current token; replaced (never mutated) on re-login.
    token: Mutex<Arc<str>>,
    /// Bumped by every login, so connections know their client's token is stale.
    generation: AtomicU64,
    /// Held while logging in, so concurrent callers wait for one login instead of making many.
    logging_in: tokio::sync::Mutex<()>,
    policies: Mutex<Vec<String>>,
    /// A call has succeeded: a token refused later expired during the run.
    used: AtomicBool,
    /// `lookup-self` refused the token: it is dead (expired, revoked or wrong).
    refused: AtomicBool,
}

impl std::fmt::Debug for VaultLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultLogin")
            .field("address", &self.address)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

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

impl CallError for VaultError {
    fn class(&self) -> ErrorClass {
        self.class
    }

    fn cause(&self) -> String {
        self.summary()
    }

    fn from_policy(class: ErrorClass, message: String) -> Self {
        Self {
            status: None,
            class,
            detail: message,
        }
    }

    fn with_note(mut self, note: &str) -> Self {
        self.detail = format!("{} ({note})", self.detail);
        self
    }
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

/// Why a connection could not be made: a [`Failure`](crate::failure::Failure) with a hint.
pub(crate) type ConnectError = crate::failure::Failure;

/// Settings that cannot work (an address, a login method, a CA file).
fn connect_error(message: impl Into<String>, hint: Option<&str>) -> ConnectError {
    ConnectError::new(ErrorClass::Invalid, message).or_hint(hint.map(str::to_owned))
}

/// Resolves the address and namespace a location uses.
pub(crate) fn endpoint(
    settings: &VaultSettings,
    address: Option<&str>,
    namespace: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<VaultEndpoint, ConnectError> {
    let address = address
        .map(str::to_owned)
        .or_else(|| settings.address.clone())
        .or_else(|| env(EnvVars::VAULT_ADDR).filter(|a| !a.is_empty()))
        .ok_or_else(|| {
            connect_error(
                "no Vault address",
                Some("set `vault.address` in the pipeline file or the VAULT_ADDR variable"),
            )
        })?;
    if !(address.starts_with("http://") || address.starts_with("https://")) {
        return Err(connect_error(
            format!(
                "the Vault address `{}` is not an http:// or https:// URL",
                crate::url_text::shown(&address)
            ),
            None,
        ));
    }
    let namespace = match namespace {
        Some(own) => Some(own.trim_matches('/').to_owned()).filter(|n| !n.is_empty()),
        None => default_namespace(settings, env),
    };
    Ok(VaultEndpoint {
        address: address.trim_end_matches('/').to_owned(),
        namespace,
    })
}

/// The `vault:` block's namespace: `vault.namespace`, else `VAULT_NAMESPACE`, else none (root).
fn default_namespace(settings: &VaultSettings, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    settings
        .namespace
        .clone()
        .or_else(|| env(EnvVars::VAULT_NAMESPACE))
        .map(|n| n.trim_matches('/').to_owned())
        .filter(|n| !n.is_empty())
}

fn resolve_login(
    settings: &VaultSettings,
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&PathBuf>,
) -> Result<(String, Login), ConnectError> {
    let token_file = || {
        home.and_then(|h| std::fs::read_to_string(h.join(".vault-token")).ok())
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
    };
    match &settings.auth {
        Some(VaultAuth::Token { token }) => {
            let token = token
                .as_ref()
                .map(|t| t.0.clone())
                .or_else(|| env(EnvVars::VAULT_TOKEN).filter(|t| !t.is_empty()))
                .or_else(token_file)
                .ok_or_else(|| {
                    connect_error(
                        "`vault.auth.token` gives no token",
                        Some("set `token:`, the VAULT_TOKEN variable, or ~/.vault-token"),
                    )
                })?;
            Ok((token, Login::Static))
        }
        Some(VaultAuth::AppRole {
            mount,
            role_id,
            secret_id,
        }) => {
            let role_id = role_id
                .as_ref()
                .map(|s| s.0.clone())
                .or_else(|| env(EnvVars::VAULT_ROLE_ID))
                .ok_or_else(|| {
                    connect_error(
                        "AppRole login needs a role id",
                        Some("set `vault.auth.approle.role_id` or VAULT_ROLE_ID"),
                    )
                })?;
            let secret_id = secret_id
                .as_ref()
                .map(|s| s.0.clone())
                .or_else(|| env(EnvVars::VAULT_SECRET_ID))
                .ok_or_else(|| {
                    connect_error(
                        "AppRole login needs a secret id",
                        Some("set `vault.auth.approle.secret_id` or VAULT_SECRET_ID"),
                    )
                })?;
            Ok((
                String::new(),
                Login::AppRole {
                    mount: mount.clone(),
                    role_id,
                    secret_id,
                },
            ))
        }
        Some(VaultAuth::Kubernetes { role, mount, jwt_path }) => Ok((
            String::new(),
            Login::Kubernetes {
                mount: mount.clone(),
                role: role.clone(),
                jwt_path: jwt_path.clone(),
            },
        )),
        Some(VaultAuth::Jwt { role, mount, jwt }) => Ok((
            String::new(),
            Login::Jwt {
                mount: mount.clone(),
                role: role.clone(),
                jwt: resolve_jwt(jwt, env)?,
            },
        )),
        None => {
            if let Some(token) = env(EnvVars::VAULT_TOKEN).filter(|t| !t.is_empty()).or_else(token_file) {
                return Ok((token, Login::Static));
            }
            match (env(EnvVars::VAULT_ROLE_ID), env(EnvVars::VAULT_SECRET_ID)) {
                (Some(role_id), Some(secret_id)) => {
                    let mount = env(EnvVars::VAULT_APPROLE_MOUNT).unwrap_or_else(|| "approle".to_owned());
                    Ok((
                        String::new(),
                        Login::AppRole {
                            mount,
                            role_id,
                            secret_id,
                        },
                    ))
                }
                _ => Err(connect_error(
                    "no Vault credentials",
                    Some(
                        "configure `vault.auth`, or set VAULT_TOKEN (or ~/.vault-token), or VAULT_ROLE_ID and VAULT_SECRET_ID",
                    ),
                )),
            }
        }
    }
}

/// Where the JWT comes from, checked against the environment now (a missing variable fails the
/// connection, before any target is touched).
fn resolve_jwt(source: &JwtSource, env: &dyn Fn(&str) -> Option<String>) -> Result<JwtFrom, ConnectError> {
    match source {
        JwtSource::File(path) => Ok(JwtFrom::File(path.clone())),
        JwtSource::Env(name) => match env(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
            Some(jwt) => Ok(JwtFrom::Env {
                name: name.clone(),
                jwt,
            }),
            None => Err(connect_error(
                format!("`vault.auth.jwt.jwt_env` names ${name}, which is not set"),
                Some("set the variable, or use `jwt_path` for a token in a file"),
            )),
        },
        JwtSource::GitHubActions { audience } => {
            let url = env(EnvVars::ACTIONS_ID_TOKEN_REQUEST_URL).filter(|v| !v.is_empty());
            let bearer = env(EnvVars::ACTIONS_ID_TOKEN_REQUEST_TOKEN).filter(|v| !v.is_empty());
            match (url, bearer) {
                (Some(url), Some(bearer)) => Ok(JwtFrom::GitHubActions {
                    url,
                    bearer,
                    audience: audience.clone(),
                }),
                _ => Err(connect_error(
                    "`vault.auth.jwt` gives no `jwt_path` or `jwt_env`, and GitHub Actions' OIDC token service is not available (ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set)",
                    Some(
                        "in a workflow, grant the job `permissions: { id-token: write }`; elsewhere, set `jwt_path` or `jwt_env`",
                    ),
                )),
            }
        }
    }
}

/// The JWT to log in with now.
async fn fetch_jwt(jwt: &JwtFrom, timeout: std::time::Duration) -> Result<String, LoginFailure> {
    match jwt {
        JwtFrom::File(path) => std::fs::read_to_string(path)
            .map(|text| text.trim().to_owned())
            .map_err(|e| LoginFailure {
                detail: format!("cannot read the JWT file `{}`: {e}", path.display()),
                hint: Some("set `vault.auth.jwt.jwt_path`".to_owned()),
            }),
        JwtFrom::Env { jwt, .. } => Ok(jwt.clone()),
        JwtFrom::GitHubActions { url, bearer, audience } => {
            github_oidc_token(url, bearer, audience.as_deref(), timeout)
                .await
                .map_err(|detail| LoginFailure {
                    detail: format!("cannot get the GitHub Actions OIDC token: {detail}"),
                    hint: Some("the job needs `permissions: { id-token: write }`".to_owned()),
                })
        }
    }
}

/// GitHub Actions' token service's answer.
#[derive(serde::Deserialize)]
struct OidcAnswer {
    value: String,
}

/// Asks GitHub Actions' token service for an OIDC token (`GET $ACTIONS_ID_TOKEN_REQUEST_URL
/// &audience=…` with the request token as bearer; the answer is `{"value": JWT}`). Neither
/// token nor answer ever reaches a message.
async fn github_oidc_token(
    url: &str,
    bearer: &str,
    audience: Option<&str>,
    timeout: std::time::Duration,
) -> Result<String, String> {
    let mut url = reqwest::Url::parse(url).map_err(|_| "ACTIONS_ID_TOKEN_REQUEST_URL is not a URL".to_owned())?;
    if let Some(audience) = audience {
        url.query_pairs_mut().append_pair("audience", audience);
    }
    let response = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| e.to_string())?
        .get(url)
        .bearer_auth(bearer)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| transport_detail(&e.without_url()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("the token service answered status {}", status.as_u16()));
    }
    let body = response.bytes().await.map_err(|e| transport_detail(&e.without_url()))?;
    serde_json::from_slice::<OidcAnswer>(&body)
        .map(|a| a.value)
        .map_err(|_| "the token service's answer has no `value`".to_owned())
}

/// `GET sys/internal/ui/mounts/<path>`: which mount a path is in and its KV version.
struct PreflightMount {
    path: String,
}

/// The part of the preflight answer we read.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct MountInfo {
    /// The mount's path, with a trailing slash.
    pub(crate) path: String,
    /// The engine type (`kv`).
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// Engine options (`version`).
    pub(crate) options: Option<std::collections::HashMap<String, String>>,
}

impl Endpoint for PreflightMount {
    type Response = MountInfo;
    const REQUEST_BODY_TYPE: RequestType = RequestType::JSON;
    const RESPONSE_BODY_TYPE: ResponseType = ResponseType::JSON;

    fn path(&self) -> String {
        format!("sys/internal/ui/mounts/{}", self.path)
    }

    fn method(&self) -> RequestMethod {
        RequestMethod::GET
    }
}

/// `POST sys/capabilities-self`: what the token may do on each of `paths`.
struct CapabilitiesSelf {
    paths: Vec<String>,
}

impl Endpoint for CapabilitiesSelf {
    type Response = std::collections::HashMap<String, serde_json::Value>;
    const REQUEST_BODY_TYPE: RequestType = RequestType::JSON;
    const RESPONSE_BODY_TYPE: ResponseType = ResponseType::JSON;

    fn path(&self) -> String {
        "sys/capabilities-self".to_owned()
    }

    fn method(&self) -> RequestMethod {
        RequestMethod::POST
    }

    fn body(&self) -> Result<Option<Vec<u8>>, rustify::errors::ClientError> {
        Ok(Some(
            serde_json::to_vec(&serde_json::json!({ "paths": self.paths })).unwrap_or_default(),
        ))
    }
}

impl VaultLogin {
    /// Resolves the credentials for `address` and logs in (a fixed token is taken as it is), so
    /// that bad credentials fail before any target is touched.
    pub(crate) async fn connect(
        settings: &VaultSettings,
        address: &str,
        env: &dyn Fn(&str) -> Option<String>,
        home: Option<&PathBuf>,
    ) -> Result<Arc<Self>, ConnectError> {
        let (token, login) = resolve_login(settings, env, home)?;
        let namespace = default_namespace(settings, env);
        let at = VaultEndpoint {
            address: address.to_owned(),
            namespace: namespace.clone(),
        };
        let base = client(settings, &at, env, String::new())?.settings;
        let login = Arc::new(Self {
            address: address.to_owned(),
            namespace,
            login,
            base,
            token: Mutex::new(token.into()),
            generation: AtomicU64::new(0),
            logging_in: tokio::sync::Mutex::new(()),
            policies: Mutex::new(Vec::new()),
            used: AtomicBool::new(false),
            refused: AtomicBool::new(false),
        });
        if !matches!(login.login, Login::Static) {
            login.log_in(0).await.map_err(|e| {
                ConnectError::new(
                    ErrorClass::Auth,
                    format!("cannot log in to {}: {}", at.describe(), e.detail),
                )
                .or_hint(e.hint)
            })?;
        }
        Ok(login)
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn token(&self) -> Arc<str> {
        Arc::clone(&self.token.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// A client for `namespace` carrying the current token.
    fn client_for(&self, namespace: Option<&str>, token: &str) -> Result<VaultClient, String> {
        let mut settings = self.base.clone();
        settings.namespace = namespace.map(str::to_owned);
        token.clone_into(&mut settings.token);
        VaultClient::new(settings).map_err(|e| format!("cannot create the Vault client: {e}"))
    }

    /// Logs in, unless another caller already did since `seen_generation`.
    async fn log_in(&self, seen_generation: u64) -> Result<(), LoginFailure> {
        let _one_at_a_time = self.logging_in.lock().await;
        if self.generation() != seen_generation {
            return Ok(());
        }
        // No token on the login request: the old one is dead or absent.
        let client = self
            .client_for(self.namespace.as_deref(), "")
            .map_err(|detail| LoginFailure { detail, hint: None })?;
        let info = match &self.login {
            Login::Static => return Err(LoginFailure::static_token()),
            Login::AppRole {
                mount,
                role_id,
                secret_id,
            } => vaultrs::auth::approle::login(&client, mount, role_id, secret_id).await,
            Login::Kubernetes { mount, role, jwt_path } => {
                let jwt = std::fs::read_to_string(jwt_path).map_err(|e| LoginFailure {
                    detail: format!(
                        "cannot read the Kubernetes service-account token `{}`: {e}",
                        jwt_path.display()
                    ),
                    hint: Some("set `vault.auth.kubernetes.jwt_path`".to_owned()),
                })?;
                vaultrs::auth::kubernetes::login(&client, mount, role, jwt.trim()).await
            }
            Login::Jwt { mount, role, jwt } => {
                let timeout = self.base.timeout.unwrap_or(std::time::Duration::from_secs(30));
                let jwt = fetch_jwt(jwt, timeout).await?;
                vaultrs::auth::oidc::login(&client, mount, &jwt, role.clone()).await
            }
        };
        let info = info.map_err(|e| {
            let err = VaultError::from_client(&e);
            LoginFailure {
                detail: format!("{} login failed ({})", self.login.describe(), err.summary()),
                hint: None,
            }
        })?;
        self.policies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone_from(&info.policies);
        self.refused.store(false, Ordering::SeqCst);
        *self.token.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = info.client_token.into();
        self.generation.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Looks the token up (is it alive, which policies does it carry), where it was issued.
    async fn check_token(&self) -> Result<(), LoginFailure> {
        let client = self
            .client_for(self.namespace.as_deref(), &self.token())
            .map_err(|detail| LoginFailure { detail, hint: None })?;
        match vaultrs::token::lookup_self(&client).await {
            Ok(me) => {
                *self.policies.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = me.policies;
                self.refused.store(false, Ordering::SeqCst);
                Ok(())
            }
            Err(e) => {
                let err = VaultError::from_client(&e);
                if err.class == ErrorClass::Auth {
                    self.refused.store(true, Ordering::SeqCst);
                }
                let (detail, hint) = if err.class == ErrorClass::Auth {
                    (
                        format!(
                            "the Vault token was refused (expired, revoked or wrong) — {}",
                            err.summary()
                        ),
                        Some(TOKEN_HINT.to_owned()),
                    )
                } else {
                    (format!("Vault did not answer as expected — {}", err.summary()), None)
                };
                Err(LoginFailure { detail, hint })
            }
        }
    }
}

impl VaultConnection {
    /// A connection to `endpoint` using `login`'s token (from [`VaultLogin::connect`] for the
    /// same address).
    pub(crate) fn new(
        endpoint: &VaultEndpoint,
        login: Arc<VaultLogin>,
        resilience: Arc<Resilience>,
    ) -> Result<Self, ConnectError> {
        let generation = login.generation();
        let client = login
            .client_for(endpoint.namespace.as_deref(), &login.token())
            .map_err(|message| ConnectError::new(ErrorClass::Invalid, message))?;
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
    pub(crate) async fn verify(&self) -> Result<(), ConnectError> {
        self.login.check_token().await.map_err(|e| {
            ConnectError::new(
                ErrorClass::Auth,
                format!("cannot use {}: {}", self.describe(), e.detail),
            )
            .or_hint(e.hint)
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
        let endpoint = resilience::Endpoint::new("vault", self.describe());
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

/// A client for `endpoint` with the file's TLS and timeout settings.
fn client(
    settings: &VaultSettings,
    endpoint: &VaultEndpoint,
    env: &dyn Fn(&str) -> Option<String>,
    token: String,
) -> Result<VaultClient, ConnectError> {
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

/// `GET sys/health?standbyok=true&perfstandbyok=true`: a standby forwards requests to the
/// active node, so it counts as healthy.
struct Health;

/// The fields of a `sys/health` answer we read, each optional: servers differ in what they
/// send (OpenBao has no `performance_standby`, older Vaults no `enterprise`), and the answer to
/// a sealed or uninitialised server comes with an error status.
#[derive(Debug, Default, serde::Deserialize)]
struct HealthAnswer {
    initialized: Option<bool>,
    sealed: Option<bool>,
    version: Option<String>,
}

impl Endpoint for Health {
    type Response = HealthAnswer;
    const REQUEST_BODY_TYPE: RequestType = RequestType::JSON;
    const RESPONSE_BODY_TYPE: ResponseType = ResponseType::JSON;

    fn path(&self) -> String {
        "sys/health".to_owned()
    }

    fn method(&self) -> RequestMethod {
        RequestMethod::GET
    }

    fn query(&self) -> Result<Option<String>, rustify::errors::ClientError> {
        Ok(Some("standbyok=true&perfstandbyok=true".to_owned()))
    }
}

/// Vault's health (`sys/health`, no token needed): its version when it can serve requests,
/// else why not (`Vault is sealed (status 503)`).
pub(crate) async fn health(
    settings: &VaultSettings,
    endpoint: &VaultEndpoint,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    // sys/health belongs to the server, not to a namespace: asked inside one, Vault answers 400.
    let server = VaultEndpoint {
        namespace: None,
        ..endpoint.clone()
    };
    let client = client(settings, &server, env, String::new()).map_err(|e| e.message)?;
    let answered = Health
        .with_middleware(client.middle())
        .exec(client.http())
        .await
        .map(|response| (200, response.parse().ok()));
    let (status, answer) = match answered {
        Ok(found) => found,
        // Not-ready answers carry the same JSON body, with the state in it.
        Err(rustify::errors::ClientError::ServerResponseError { code, content }) => {
            (code, content.and_then(|body| serde_json::from_str(&body).ok()))
        }
        Err(other) => {
            let err = VaultError::from_client(&ClientError::RestClientError { source: other });
            return Err(format!("cannot reach Vault: {}", err.summary()));
        }
    };
    health_verdict(status, answer)
}

/// What a `sys/health` status and answer mean for secretsync.
fn health_verdict(status: u16, answer: Option<HealthAnswer>) -> Result<String, String> {
    let Some(answer) = answer else {
        return Err(match status {
            200..=299 => {
                format!("the answer to sys/health (status {status}) is not Vault's; is `vault.address` a Vault server?")
            }
            503 => {
                "Vault is unavailable (status 503, no health details: sealed, or a proxy in front of it has no server)"
                    .to_owned()
            }
            other => format!("Vault's health check answered with status {other}"),
        });
    };
    let version = answer.version.unwrap_or_else(|| "(version not given)".to_owned());
    // An uninitialised Vault is sealed too; say the first thing to do.
    if answer.initialized == Some(false) || status == 501 {
        return Err(format!(
            "Vault is not initialized (status {status}); run `vault operator init`"
        ));
    }
    if answer.sealed == Some(true) {
        return Err(format!("Vault is sealed (status {status})"));
    }
    if status == 503 {
        return Err("Vault is not ready (status 503)".to_owned());
    }
    match status {
        200..=299 | 429 | 473 => Ok(version),
        472 => Err("this Vault is a disaster-recovery secondary and serves no secrets (status 472)".to_owned()),
        530 => Err("this Vault node was removed from its cluster (status 530)".to_owned()),
        other => Err(format!("Vault's health check answered with status {other}")),
    }
}

/// A failed login.
#[derive(Debug)]
struct LoginFailure {
    detail: String,
    hint: Option<String>,
}

impl LoginFailure {
    fn static_token() -> Self {
        Self {
            detail: "a fixed token cannot log in again".to_owned(),
            hint: None,
        }
    }
}

/// `connection refused` rather than `Error sending HTTP request`: the innermost causes of a
/// transport error, deduplicated.
fn transport_detail(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = crate::error_chain::causes(err);
    match parts.len() {
        0 => "the request failed".to_owned(),
        1 => parts.remove(0),
        _ => parts[1..].join(": "),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
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
