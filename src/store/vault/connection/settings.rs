//! Where and how to connect, from the pipeline file, else the usual `VAULT_*` variables: the
//! address and namespace of each location ([`VaultEndpoint`]) and the login method of the
//! `vault:` block (token, AppRole, Kubernetes, JWT), checked before any call is made.

use std::path::PathBuf;

use super::connect_error;
use crate::config::{JwtSource, VaultAuth, VaultSettings};
use crate::env::EnvVars;
use crate::failure::Failure;

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

pub(super) fn describe_at(address: &str, namespace: Option<&str>) -> String {
    let address = crate::url_text::shown(address);
    match namespace {
        Some(ns) => format!("{address} (namespace {ns})"),
        None => address,
    }
}

/// Resolves the address and namespace a location uses.
pub(crate) fn endpoint(
    settings: &VaultSettings,
    address: Option<&str>,
    namespace: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<VaultEndpoint, Failure> {
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
pub(super) fn default_namespace(settings: &VaultSettings, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    settings
        .namespace
        .clone()
        .or_else(|| env(EnvVars::VAULT_NAMESPACE))
        .map(|n| n.trim_matches('/').to_owned())
        .filter(|n| !n.is_empty())
}

/// How to get a token (again).
#[derive(Clone)]
pub(super) enum Login {
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
pub(super) enum JwtFrom {
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
    pub(super) fn describe(&self) -> String {
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

pub(super) fn resolve_login(
    settings: &VaultSettings,
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&PathBuf>,
) -> Result<(String, Login), Failure> {
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
pub(super) fn resolve_jwt(source: &JwtSource, env: &dyn Fn(&str) -> Option<String>) -> Result<JwtFrom, Failure> {
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
