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
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, future};

use super::AwsFailure;
use crate::resilience::{ApiClass, CallError as _, Endpoint, Resilience};

/// The `sts` endpoint of the calling account: STS counts requests against the caller.
pub(super) fn endpoint(region: &str) -> Endpoint {
    Endpoint::new("sts", format!("caller/{region}"))
}

/// Assumes one role, through the resilience layer.
#[derive(Debug)]
pub(super) struct PacedAssumeRole {
    pub(super) sts: aws_sdk_sts::Client,
    pub(super) endpoint: Endpoint,
    pub(super) resilience: Arc<Resilience>,
    pub(super) role: String,
    pub(super) session_name: String,
    pub(super) external_id: Option<String>,
}

impl PacedAssumeRole {
    async fn assume(&self) -> Result<Credentials, CredentialsError> {
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
            .map_err(|failure| {
                let request_id = failure.request_id_note();
                CredentialsError::provider_error(format!(
                    "sts:AssumeRole of {} failed: {}{request_id}",
                    self.role,
                    failure.cause()
                ))
            })?;
        let Some(given) = answer.credentials() else {
            return Err(CredentialsError::provider_error(format!(
                "sts:AssumeRole of {} returned no credentials",
                self.role
            )));
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
        future::ProvideCredentials::new(self.assume())
    }
}
