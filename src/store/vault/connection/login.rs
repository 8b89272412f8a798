//! One login per Vault address ([`VaultLogin`]), in the `vault:` block's namespace: the token,
//! logging in again when it dies (once, shared by every concurrent caller), and where a JWT
//! login gets its JWT (a file, a variable, GitHub Actions' OIDC token service).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use vaultrs::client::{VaultClient, VaultClientSettings};

use super::{
    JwtFrom, Login, LoginFailure, TOKEN_HINT, VaultEndpoint, VaultError, client, default_namespace, resolve_login,
    transport_detail,
};
use crate::config::VaultSettings;
use crate::failure::Failure;
use crate::store::ErrorClass;

/// A token and how to get it again, shared by every connection to one Vault address: one
/// login per run (and per expiry), whatever namespaces the stores are in. Logins happen in the
/// `vault:` block's namespace (`vault.namespace`, else `VAULT_NAMESPACE`, else the root); a
/// token is valid in its namespace and the ones below it, so one set of credentials serves a
/// platform namespace and every team namespace under it — and a single-use AppRole secret id is
/// used once.
pub(crate) struct VaultLogin {
    pub(super) address: String,
    /// Where `login` logs in.
    pub(super) namespace: Option<String>,
    pub(super) login: Login,
    /// Client settings (address, TLS, timeout) every client of this address starts from.
    pub(super) base: VaultClientSettings,
    /// The current token; replaced (never mutated) on re-login.
    pub(super) token: Mutex<Arc<str>>,
    /// Bumped by every login, so connections know their client's token is stale.
    pub(super) generation: AtomicU64,
    /// Held while logging in, so concurrent callers wait for one login instead of making many.
    pub(super) logging_in: tokio::sync::Mutex<()>,
    pub(super) policies: Mutex<Vec<String>>,
    /// A call has succeeded: a token refused later expired during the run.
    pub(super) used: AtomicBool,
    /// `lookup-self` refused the token: it is dead (expired, revoked or wrong).
    pub(super) refused: AtomicBool,
}

impl std::fmt::Debug for VaultLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultLogin")
            .field("address", &self.address)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
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
    ) -> Result<Arc<Self>, Failure> {
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
                Failure::new(e.class, format!("cannot log in to {}: {}", at.describe(), e.detail))
                    .with_optional_hint(e.hint)
            })?;
        }
        Ok(login)
    }

    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub(super) fn token(&self) -> Arc<str> {
        Arc::clone(&self.token.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// A client for `namespace` carrying the current token.
    pub(super) fn client_for(&self, namespace: Option<&str>, token: &str) -> Result<VaultClient, String> {
        let mut settings = self.base.clone();
        settings.namespace = namespace.map(str::to_owned);
        token.clone_into(&mut settings.token);
        VaultClient::new(settings).map_err(|e| format!("cannot create the Vault client: {e}"))
    }

    /// Logs in, unless another caller already did since `seen_generation`.
    pub(super) async fn log_in(&self, seen_generation: u64) -> Result<(), LoginFailure> {
        let _one_at_a_time = self.logging_in.lock().await;
        if self.generation() != seen_generation {
            return Ok(());
        }
        // No token on the login request: the old one is dead or absent.
        let client = self
            .client_for(self.namespace.as_deref(), "")
            .map_err(|detail| LoginFailure::new(ErrorClass::Invalid, detail, None))?;
        let info = match &self.login {
            Login::Static => return Err(LoginFailure::static_token()),
            Login::AppRole {
                mount,
                role_id,
                secret_id,
            } => vaultrs::auth::approle::login(&client, mount, role_id, secret_id).await,
            Login::Kubernetes { mount, role, jwt_path } => {
                let jwt = std::fs::read_to_string(jwt_path).map_err(|e| {
                    LoginFailure::new(
                        ErrorClass::Invalid,
                        format!(
                            "cannot read the Kubernetes service-account token `{}`: {e}",
                            jwt_path.display()
                        ),
                        Some("set `vault.auth.kubernetes.jwt_path`".to_owned()),
                    )
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
            LoginFailure::new(
                err.class,
                format!("{} login failed ({})", self.login.describe(), err.summary()),
                None,
            )
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
    /// Who the token belongs to, for revision records: `token-display (entity ID, role R)`
    /// from a token lookup (never the token or its accessor); `None` when the lookup fails.
    pub(crate) async fn who(&self) -> Option<String> {
        let client = self.client_for(self.namespace.as_deref(), &self.token()).ok()?;
        let me = vaultrs::token::lookup_self(&client).await.ok()?;
        let mut about = Vec::new();
        if !me.entity_id.is_empty() {
            about.push(format!("entity {}", me.entity_id));
        }
        if let Some(role) = me.role.filter(|r| !r.is_empty()) {
            about.push(format!("role {role}"));
        }
        let name = if me.display_name.is_empty() {
            me.path
        } else {
            me.display_name
        };
        Some(if about.is_empty() {
            name
        } else {
            format!("{name} ({})", about.join(", "))
        })
    }

    pub(super) async fn check_token(&self) -> Result<(), LoginFailure> {
        let client = self
            .client_for(self.namespace.as_deref(), &self.token())
            .map_err(|detail| LoginFailure::new(ErrorClass::Invalid, detail, None))?;
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
                Err(LoginFailure::new(err.class, detail, hint))
            }
        }
    }
}

/// The JWT to log in with now.
pub(super) async fn fetch_jwt(jwt: &JwtFrom, timeout: std::time::Duration) -> Result<String, LoginFailure> {
    match jwt {
        JwtFrom::File(path) => std::fs::read_to_string(path)
            .map(|text| text.trim().to_owned())
            .map_err(|e| {
                LoginFailure::new(
                    ErrorClass::Invalid,
                    format!("cannot read the JWT file `{}`: {e}", path.display()),
                    Some("set `vault.auth.jwt.jwt_path`".to_owned()),
                )
            }),
        JwtFrom::Env { jwt, .. } => Ok(jwt.clone()),
        JwtFrom::GitHubActions { url, bearer, audience } => {
            github_oidc_token(url, bearer, audience.as_deref(), timeout)
                .await
                .map_err(|detail| {
                    LoginFailure::new(
                        ErrorClass::Auth,
                        format!("cannot get the GitHub Actions OIDC token: {detail}"),
                        Some("the job needs `permissions: { id-token: write }`".to_owned()),
                    )
                })
        }
    }
}

/// GitHub Actions' token service's answer.
#[derive(serde::Deserialize)]
pub(super) struct OidcAnswer {
    pub(super) value: String,
}

/// Asks GitHub Actions' token service for an OIDC token (`GET $ACTIONS_ID_TOKEN_REQUEST_URL
/// &audience=…` with the request token as bearer; the answer is `{"value": JWT}`). Neither
/// token nor answer ever reaches a message.
pub(super) async fn github_oidc_token(
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
