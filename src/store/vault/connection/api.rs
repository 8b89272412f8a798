//! The raw Vault endpoints vaultrs does not wrap: which mount a path is in and its KV version,
//! the token's capabilities on paths, and a tolerant `sys/health`.

use rustify::endpoint::Endpoint;
use rustify::enums::{RequestMethod, RequestType, ResponseType};
use vaultrs::client::Client as _;
use vaultrs::error::ClientError;

use super::{VaultEndpoint, VaultError, client};
use crate::config::VaultSettings;

/// `GET sys/internal/ui/mounts/<path>`: which mount a path is in and its KV version.
pub(super) struct PreflightMount {
    pub(super) path: String,
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
pub(super) struct CapabilitiesSelf {
    pub(super) paths: Vec<String>,
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

/// `GET sys/health?standbyok=true&perfstandbyok=true`: a standby forwards requests to the
/// active node, so it counts as healthy.
pub(super) struct Health;

/// The fields of a `sys/health` answer we read, each optional: servers differ in what they
/// send (OpenBao has no `performance_standby`, older Vaults no `enterprise`), and the answer to
/// a sealed or uninitialised server comes with an error status.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct HealthAnswer {
    pub(super) initialized: Option<bool>,
    pub(super) sealed: Option<bool>,
    pub(super) version: Option<String>,
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
pub(super) fn health_verdict(status: u16, answer: Option<HealthAnswer>) -> Result<String, String> {
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
