//! STS through the resilience layer: `AssumeRole` for every target account's credentials and
//! `GetCallerIdentity` for the run's own, paced, retried, metered and breaker-guarded like every
//! other call.
//!
//! The SDK's own `AssumeRoleProvider` builds an STS client per role (its own HTTP client and
//! connection pool each) and calls STS outside our policy: a 1,000-account run made 1,000
//! unpaced AssumeRole calls, each retried only by the SDK, invisible to the metrics. STS limits
//! requests per *calling* account and the limit cannot be raised, so a large organization run
//! throttled itself into failures. [`PacedAssumeRole`] is a credentials provider that makes the
//! one `AssumeRole` call through [`Resilience::call`] on one shared STS client; the SDK's identity
//! cache still keeps each role's credentials until shortly before they expire.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, future};

use super::AwsFailure;
use crate::resilience::{ApiClass, CallError as _, Endpoint, ErrorClass, Resilience};

/// Credentials this close to expiry are renewed before the next call.
const RENEW_BEFORE_EXPIRY: Duration = Duration::from_mins(5);

/// The `sts` endpoint of the calling account: STS counts requests against the caller.
pub(super) fn endpoint(region: &str) -> Endpoint {
    Endpoint::new("sts", caller_scope(region)).with_attribute("cloud.region", region)
}

fn caller_scope(region: &str) -> String {
    format!("caller/{region}")
}

/// Why `AssumeRole` failed, with the class the resilience layer gave it. It travels inside
/// the SDK's `CredentialsError`, so a call that needed the credentials fails as throttled or
/// transient when STS did, not as "permission denied".
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub(crate) struct AssumeRoleFailed {
    /// The class of the last failure.
    pub(crate) class: ErrorClass,
    /// `sts:AssumeRole of arn:… failed: …`.
    pub(crate) message: String,
}

/// Assumes one role, through the resilience layer, and keeps its credentials until shortly
/// before they expire (clones share them).
#[derive(Debug, Clone)]
pub(crate) struct PacedAssumeRole(Arc<AssumedRole>);

#[derive(Debug)]
struct AssumedRole {
    sts: aws_sdk_sts::Client,
    /// Its own breaker, the caller's STS rate limiter.
    endpoint: Endpoint,
    resilience: Arc<Resilience>,
    role: String,
    session_name: String,
    external_id: Option<String>,
    /// The credentials, or why they cannot be had (permanent failures only): one `AssumeRole`
    /// (with its retries) at a time per role, however many calls wait for it.
    assumed: tokio::sync::Mutex<Option<Result<Credentials, AssumeRoleFailed>>>,
}

impl PacedAssumeRole {
    pub(super) fn new(
        sts: aws_sdk_sts::Client,
        region: &str,
        resilience: Arc<Resilience>,
        role: &str,
        session_name: &str,
        external_id: Option<String>,
    ) -> Self {
        Self(Arc::new(AssumedRole {
            sts,
            endpoint: Endpoint::new("sts", role)
                .sharing_quota_of(caller_scope(region))
                .with_attribute("cloud.region", region),
            resilience,
            role: role.to_owned(),
            session_name: session_name.to_owned(),
            external_id,
            assumed: tokio::sync::Mutex::new(None),
        }))
    }

    /// The role's credentials: kept ones while they last, else one `AssumeRole`. Sessions call
    /// this before each request, outside the request's own timeout, so a throttled
    /// `AssumeRole` backs off as long as its policy allows.
    pub(crate) async fn credentials(&self) -> Result<Credentials, AssumeRoleFailed> {
        let mut assumed = self.0.assumed.lock().await;
        match &*assumed {
            Some(Ok(credentials)) if lasts(credentials) => return Ok(credentials.clone()),
            Some(Err(failed)) => return Err(failed.clone()),
            _ => {}
        }
        match self.0.assume().await {
            Ok(fresh) => {
                *assumed = Some(Ok(fresh.clone()));
                Ok(fresh)
            }
            Err(failed) => {
                // A renewal that failed: the credentials held are still good for a while.
                if let Some(Ok(held)) = &*assumed
                    && still_valid(held)
                {
                    return Ok(held.clone());
                }
                // Only an answer that will not change within the run is kept (the role may not
                // be assumed, does not exist…); throttling and outages are tried again by the
                // next call that needs the role, after its breaker's cool-down.
                if matches!(
                    failed.class,
                    ErrorClass::Auth | ErrorClass::Invalid | ErrorClass::NotFound
                ) {
                    *assumed = Some(Err(failed.clone()));
                }
                Err(failed)
            }
        }
    }
}

/// Whether credentials have not expired yet.
fn still_valid(credentials: &Credentials) -> bool {
    credentials.expiry().is_none_or(|expiry| expiry > SystemTime::now())
}

/// Whether credentials stay valid for a while yet.
fn lasts(credentials: &Credentials) -> bool {
    credentials.expiry().is_none_or(|expiry| {
        expiry
            .duration_since(SystemTime::now())
            .is_ok_and(|left| left > RENEW_BEFORE_EXPIRY)
    })
}

impl AssumedRole {
    async fn assume(&self) -> Result<Credentials, AssumeRoleFailed> {
        let answer = self
            .resilience
            .call(&self.endpoint, "AssumeRole", ApiClass::Read, || {
                let request = Box::pin(
                    self.sts
                        .assume_role()
                        .role_arn(&self.role)
                        .role_session_name(&self.session_name)
                        .set_external_id(self.external_id.clone())
                        .send(),
                );
                async move { request.await.map_err(|e| AwsFailure::Sdk(e, None)) }
            })
            .await
            .map_err(|failure| AssumeRoleFailed {
                class: failure.class(),
                message: format!(
                    "sts:AssumeRole of {} failed: {}{}",
                    self.role,
                    failure.cause(),
                    failure.request_id_note()
                ),
            })?;
        let Some(given) = answer.credentials() else {
            return Err(AssumeRoleFailed {
                class: ErrorClass::Fatal,
                message: format!("sts:AssumeRole of {} returned no credentials", self.role),
            });
        };
        let expiry = SystemTime::try_from(*given.expiration()).ok();
        Ok(Credentials::new(
            given.access_key_id(),
            given.secret_access_key(),
            Some(given.session_token().to_owned()),
            expiry,
            "AssumeRole",
        ))
    }
}

impl ProvideCredentials for PacedAssumeRole {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async { self.credentials().await.map_err(CredentialsError::provider_error) })
    }
}
