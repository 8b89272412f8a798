//! AWS: Secrets Manager as a source and a target, S3 as the merge store.
//!
//! [`AwsClients`] is the one place that turns the `aws:` settings into SDK configuration:
//! the standard credential chain (environment, profile, SSO, web identity, container and
//! instance roles), the endpoint override for moto or LocalStack, the region precedence, and the
//! role to assume in each account (SPEC §2, [`crate::config::AwsSettings::role_for`]). Each
//! (account, role) gets one credentials provider shared by every client in that account, so a
//! role is assumed once per run and refreshed by the SDK's identity cache before it expires.
//! A role that cannot be assumed fails the stores that need it, naming the role.

mod check;
mod names;
mod s3;
mod secrets_manager;
mod sts;
mod traced_http;

pub use check::check_pipeline;
pub use s3::{LockSettings, S3MergeStore};
pub use secrets_manager::{SecretsManagerStore, SmMode};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use tokio::sync::{Mutex, OnceCell};

use super::{ErrorClass, StoreError};
use crate::config::{AwsSettings, RoleSource};
use crate::env::{self, EnvVars};
use crate::resilience::{ApiClass, CallError, Endpoint, Resilience};

/// Credentials cached at once: one per role a run assumes (an account each); enough for an
/// organisation's accounts, a few hundred bytes each.
const IDENTITY_CACHE_PARTITIONS: usize = 10_000;
/// Tag listing the tag keys secretsync set from the configuration (space-separated).
pub const TAGS_TAG: &str = "secretsync:tags";

/// The region when nothing else names one.
const DEFAULT_REGION: &str = "us-east-1";

/// Who the run's own credentials belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    /// The 12-digit account.
    pub account: String,
    /// The principal's ARN.
    pub arn: String,
}

/// Where and as whom a store talks to AWS.
#[derive(Clone)]
pub(crate) struct Session {
    /// SDK configuration for the account and region (credentials, endpoint, retries).
    pub(crate) config: SdkConfig,
    /// The AWS account id the session's credentials act in.
    pub(crate) account: String,
    /// The region the session's clients call.
    pub(crate) region: String,
    /// The role assumed, if any.
    pub(crate) role: Option<String>,
    /// Its credentials, resolved before each call (see [`Session::call`]).
    assumed: Option<sts::PacedAssumeRole>,
    /// Whether an endpoint override is in use (S3 then uses path-style addressing).
    pub(crate) custom_endpoint: bool,
    /// Retries, breakers and rate limits for every call made in this session.
    pub(crate) resilience: Arc<Resilience>,
}

/// A failed AWS call: the SDK's error, or one the resilience layer made (a timeout, an open
/// circuit breaker).
#[derive(Debug)]
pub(crate) enum AwsFailure<E> {
    /// What the SDK returned, and a note on the attempts made.
    Sdk(SdkError<E, HttpResponse>, Option<String>),
    /// The resilience layer's own error.
    Policy(StoreError),
}

impl<E: ProvideErrorMetadata> AwsFailure<E> {
    /// The service's error code (`ResourceNotFoundException`).
    pub(crate) fn code(&self) -> Option<&str> {
        match self {
            Self::Sdk(e, _) => e.as_service_error().and_then(ProvideErrorMetadata::code),
            Self::Policy(_) => None,
        }
    }

    /// The service's error message.
    pub(crate) fn message(&self) -> Option<&str> {
        match self {
            Self::Sdk(e, _) => e.as_service_error().and_then(ProvideErrorMetadata::message),
            Self::Policy(_) => None,
        }
    }

    /// The request id the service answered with (`x-amzn-RequestId`; S3: `x-amz-request-id`),
    /// to find the call in `CloudTrail`.
    pub(crate) fn request_id(&self) -> Option<&str> {
        let Self::Sdk(SdkError::ServiceError(service), _) = self else {
            return None;
        };
        let headers = service.raw().headers();
        headers
            .get("x-amzn-requestid")
            .or_else(|| headers.get("x-amz-request-id"))
    }

    /// ` (request id …)` when the service answered with one, else empty: the end of a message.
    pub(crate) fn request_id_note(&self) -> String {
        self.request_id()
            .map(|id| format!(" (request id {id})"))
            .unwrap_or_default()
    }

    /// The HTTP status the service answered with.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            Self::Sdk(SdkError::ServiceError(service), _) => Some(service.raw().status().as_u16()),
            _ => None,
        }
    }
}

impl<E: ProvideErrorMetadata + std::error::Error + 'static> CallError for AwsFailure<E> {
    fn class(&self) -> ErrorClass {
        match self {
            Self::Sdk(e, _) => classify(e),
            Self::Policy(p) => p.class,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        let Self::Sdk(SdkError::ServiceError(service), _) = self else {
            return None;
        };
        let seconds: u64 = service.raw().headers().get("retry-after")?.trim().parse().ok()?;
        Some(Duration::from_secs(seconds))
    }

    fn cause(&self) -> String {
        match self {
            Self::Sdk(SdkError::ServiceError(service), _) => {
                let e = service.err();
                match (e.code(), e.message()) {
                    (Some(code), Some(message)) => format!("{code}: {message}"),
                    (Some(code), None) => code.to_owned(),
                    _ => format!("status {}", service.raw().status().as_u16()),
                }
            }
            Self::Sdk(other, _) => crate::error_chain::chain(other),
            Self::Policy(p) => p.message.clone(),
        }
    }

    fn from_policy(class: ErrorClass, message: String) -> Self {
        Self::Policy(StoreError::new(class, message))
    }

    fn with_note(self, note: &str) -> Self {
        match self {
            Self::Sdk(e, _) => Self::Sdk(e, Some(note.to_owned())),
            Self::Policy(p) => Self::Policy(p.with_note(note)),
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("account", &self.account)
            .field("region", &self.region)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// `111111111111/us-east-1` (plus ` as arn:…` when a role is assumed).
    pub(crate) fn describe(&self) -> String {
        format!("{}/{}", self.account, self.region)
    }

    /// Makes one AWS call through the resilience layer (`service` and `operation` name it in
    /// metrics; `send` builds and sends the request, once per attempt).
    pub(crate) async fn call<T, E, F, Fut>(
        &self,
        service: &'static str,
        operation: &'static str,
        class: ApiClass,
        send: F,
    ) -> Result<T, AwsFailure<E>>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    {
        // The role's credentials first, outside the call's per-attempt timeout: a throttled
        // `AssumeRole` gets its own retries and backoff, and its failure names STS and the role.
        if let Some(assumed) = &self.assumed
            && let Err(failed) = assumed.credentials().await
        {
            return Err(AwsFailure::Policy(StoreError::new(failed.class, failed.message)));
        }
        let mut endpoint = Endpoint::new(service, self.describe());
        if crate::telemetry::enabled() {
            endpoint = endpoint
                .with_attribute("cloud.region", self.region.clone())
                .with_attribute("cloud.account.id", self.account.clone());
        }
        self.resilience
            .call(&endpoint, operation, class, || {
                // SDK futures are large (~20 KiB); boxed, they do not bloat every caller's future.
                let request = Box::pin(send());
                async move { request.await.map_err(|e| AwsFailure::Sdk(e, None)) }
            })
            .await
    }

    /// [`Session::error`] for a call made through [`Session::call`].
    pub(crate) fn failed<E>(&self, at: &str, doing: &str, failure: &AwsFailure<E>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let error = match failure {
            AwsFailure::Sdk(e, None) => self.error(at, doing, e),
            AwsFailure::Sdk(e, Some(note)) => self.error(at, doing, e).with_note(note),
            AwsFailure::Policy(p) => StoreError::new(p.class, format!("{at}: cannot {doing}: {}", p.message)),
        };
        match failure.request_id() {
            Some(id) => error.with_note(&format!("request id {id}")),
            None => error,
        }
    }

    /// An error from a call to AWS, classified, naming what was being done and, when the
    /// credentials came from a role, the role (an AssumeRole failure surfaces on first use).
    pub(crate) fn error<E, R>(&self, at: &str, doing: &str, err: &SdkError<E, R>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        let class = classify(err);
        let detail = match err {
            SdkError::ServiceError(service) => {
                let e = service.err();
                match (e.code(), e.message()) {
                    (Some(code), Some(message)) => format!("{code}: {message}"),
                    (Some(code), None) => code.to_owned(),
                    _ => crate::error_chain::chain(err),
                }
            }
            other => crate::error_chain::chain(other),
        };
        let role = match (&self.role, err) {
            (Some(role), SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_)) => {
                format!(" (using role {role})")
            }
            _ => String::new(),
        };
        StoreError::new(class, format!("{at}: cannot {doing}{role}: {detail}"))
    }
}

/// The class of an SDK error, for the engine and the resilience layer.
pub(crate) fn classify<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> ErrorClass {
    match err {
        SdkError::ServiceError(service) => class_of_code(service.err().code().unwrap_or_default()),
        // Identity resolution (no credentials, a role that cannot be assumed) fails as a
        // dispatch failure too.
        SdkError::DispatchFailure(failure)
            if !failure.is_io()
                && !failure.is_timeout()
                && let Some(class) = failure.as_connector_error().and_then(|e| credentials_failure(e)) =>
        {
            class
        }
        // Anything else that kept the request from being answered — a timeout, a connection
        // closed before the answer came (a lost reply), refused, or reset — passes.
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) | SdkError::DispatchFailure(_) => ErrorClass::Transient,
        SdkError::ConstructionFailure(_) => ErrorClass::Auth,
        _ => ErrorClass::Fatal,
    }
}

/// The class of a credentials or token provider's error among `err`'s causes: an
/// `AssumeRole` that failed says how (throttled, transient…); any other is permission denied.
fn credentials_failure(err: &(dyn std::error::Error + 'static)) -> Option<ErrorClass> {
    let mut found = None;
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(failed) = e.downcast_ref::<sts::AssumeRoleFailed>() {
            return Some(failed.class);
        }
        if e.is::<aws_credential_types::provider::error::CredentialsError>()
            || e.is::<aws_credential_types::provider::error::TokenError>()
        {
            found = Some(ErrorClass::Auth);
        }
        next = e.source();
    }
    found
}

/// The class of an AWS error code (Secrets Manager, S3, STS).
pub(crate) fn class_of_code(code: &str) -> ErrorClass {
    match code {
        "ResourceNotFoundException" | "NoSuchKey" | "NotFound" | "NoSuchBucket" => ErrorClass::NotFound,
        "AccessDeniedException"
        | "AccessDenied"
        | "UnrecognizedClientException"
        | "ExpiredTokenException"
        | "ExpiredToken"
        | "InvalidClientTokenId"
        | "InvalidAccessKeyId"
        | "SignatureDoesNotMatch" => ErrorClass::Auth,
        "ThrottlingException" | "Throttling" | "TooManyRequestsException" | "SlowDown" | "RequestLimitExceeded" => {
            ErrorClass::Throttled
        }
        "InternalServiceError" | "InternalFailure" | "InternalError" | "ServiceUnavailable" => ErrorClass::Transient,
        "ResourceExistsException" | "PreconditionFailed" | "ConditionalRequestConflict" => ErrorClass::Conflict,
        _ => ErrorClass::Invalid,
    }
}

/// One HTTPS client for every SDK client of the run: the Secrets Manager client of each account
/// and region, and the STS client behind each assumed role. Left to itself, every SDK client
/// builds its own default HTTPS client — its own connection pool and its own parsed root
/// certificates — which cost about 0.28 MB per account (283 MB for 1,000 accounts). This is the
/// SDK's default client (rustls with aws-lc, proxy settings from the environment as the SDK's
/// current behavior version does), built once; connectors are cached inside it per connector
/// settings, so every client with the same timeouts shares one pool.
/// With traces on, it is wrapped to record each answer's status and request id on its call.
fn shared_https_client() -> aws_sdk_secretsmanager::config::SharedHttpClient {
    use aws_smithy_http_client::{Builder, ConnectorBuilder, proxy::ProxyConfig, tls};
    let client = Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector =
            ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    });
    if crate::telemetry::enabled() {
        traced_http::traced(client)
    } else {
        client
    }
}

/// (account, region, role) of a client.
type ClientKey = (String, String, Option<String>);

/// SDK configuration for every account and region the run touches.
pub struct AwsClients {
    settings: AwsSettings,
    env: env::Lookup,
    base: OnceCell<SdkConfig>,
    caller: OnceCell<Result<CallerIdentity, (ErrorClass, String)>>,
    /// The one STS client (the run's own credentials, no SDK retries: the resilience layer
    /// retries), for `GetCallerIdentity` and every `AssumeRole`.
    sts: OnceCell<aws_sdk_sts::Client>,
    /// One credentials provider per assumed role.
    roles: Mutex<BTreeMap<String, sts::PacedAssumeRole>>,
    /// One Secrets Manager client per (account, region, role).
    secrets_manager: std::sync::Mutex<BTreeMap<ClientKey, aws_sdk_secretsmanager::Client>>,
    resilience: Arc<Resilience>,
}

impl std::fmt::Debug for AwsClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsClients").finish_non_exhaustive()
    }
}

impl AwsClients {
    /// Clients for `settings`, reading `AWS_*` variables through `env`; store calls go through
    /// `resilience`.
    pub fn new(settings: &AwsSettings, env: env::Lookup, resilience: Arc<Resilience>) -> Self {
        Self {
            settings: settings.clone(),
            env,
            base: OnceCell::new(),
            caller: OnceCell::new(),
            sts: OnceCell::new(),
            roles: Mutex::new(BTreeMap::new()),
            secrets_manager: std::sync::Mutex::new(BTreeMap::new()),
            resilience,
        }
    }

    /// The Secrets Manager client for `session`'s account, region and role (shared by every
    /// store there).
    pub(crate) fn secrets_manager(&self, session: &Session) -> aws_sdk_secretsmanager::Client {
        let key = (session.account.clone(), session.region.clone(), session.role.clone());
        self.secrets_manager
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(key)
            .or_insert_with(|| aws_sdk_secretsmanager::Client::new(&session.config))
            .clone()
    }

    /// A region named here, else `aws.region`, else `AWS_REGION` / `AWS_DEFAULT_REGION`, else
    /// `us-east-1`.
    pub(crate) fn region(&self, explicit: Option<&str>) -> String {
        explicit
            .map(str::to_owned)
            .or_else(|| self.settings.region.clone())
            .or_else(|| (self.env)(EnvVars::AWS_REGION).filter(|r| !r.is_empty()))
            .or_else(|| (self.env)(EnvVars::AWS_DEFAULT_REGION).filter(|r| !r.is_empty()))
            .unwrap_or_else(|| DEFAULT_REGION.to_owned())
    }

    fn endpoint(&self) -> Option<String> {
        self.settings
            .endpoint_url
            .clone()
            .or_else(|| (self.env)(EnvVars::AWS_ENDPOINT_URL).filter(|u| !u.is_empty()))
    }

    /// The run's own SDK configuration: the standard credential chain (or the access key given
    /// in the environment), retries, timeouts and the endpoint override.
    pub(crate) async fn base(&self) -> &SdkConfig {
        self.base
            .get_or_init(|| async {
                let mut loader = aws_config::defaults(BehaviorVersion::v2026_01_12())
                    .http_client(shared_https_client())
                    .region(Region::new(self.region(None)))
                    // One partition per assumed role; the SDK's default of 64 evicts roles when a
                    // run reaches more accounts, and every eviction is another AssumeRole (the
                    // benchmark saw 818 for 100 accounts instead of 100).
                    .identity_cache(
                        aws_config::identity::IdentityCache::lazy()
                            .max_partitions(IDENTITY_CACHE_PARTITIONS)
                            // An AssumeRole is retried with backoff by the resilience layer
                            // (throttling included); the SDK's 5 s default would cut it short.
                            .load_timeout(Duration::from_mins(2))
                            .build(),
                    )
                    .retry_config(RetryConfig::standard().with_max_attempts(3))
                    .timeout_config(
                        TimeoutConfig::builder()
                            .connect_timeout(Duration::from_secs(5))
                            .operation_attempt_timeout(Duration::from_secs(30))
                            .operation_timeout(Duration::from_secs(90))
                            .build(),
                    );
                if let Some(url) = self.endpoint() {
                    loader = loader.endpoint_url(url);
                }
                // Environment credentials are read through the same lookup as everything else,
                // so tests (and embedders) can give them without touching the process.
                if let (Some(id), Some(secret)) = (
                    (self.env)(EnvVars::AWS_ACCESS_KEY_ID),
                    (self.env)(EnvVars::AWS_SECRET_ACCESS_KEY),
                ) {
                    let token = (self.env)(EnvVars::AWS_SESSION_TOKEN).filter(|t| !t.is_empty());
                    loader = loader.credentials_provider(Credentials::new(id, secret, token, None, "environment"));
                }
                loader.load().await
            })
            .await
    }

    /// Whether the run has used AWS at all (its SDK configuration was loaded).
    pub fn was_used(&self) -> bool {
        self.base.initialized()
    }

    /// The run's STS client (see the `sts` field).
    async fn sts(&self) -> &aws_sdk_sts::Client {
        self.sts
            .get_or_init(|| async {
                let config = aws_sdk_sts::config::Builder::from(self.base().await)
                    .retry_config(RetryConfig::disabled())
                    .build();
                aws_sdk_sts::Client::from_conf(config)
            })
            .await
    }

    /// Who the run's credentials belong to (`sts:GetCallerIdentity`, once per run, through the
    /// resilience layer).
    pub async fn caller(&self) -> Result<CallerIdentity, StoreError> {
        self.caller
            .get_or_init(|| async {
                let sts = self.sts().await;
                let endpoint = sts::endpoint(&self.region(None));
                let me = self
                    .resilience
                    .call(&endpoint, "GetCallerIdentity", ApiClass::Read, || {
                        let request = Box::pin(sts.get_caller_identity().send());
                        async move { request.await.map_err(|e| AwsFailure::Sdk(e, None)) }
                    })
                    .await
                    .map_err(|failure| {
                        (
                            failure.class(),
                            format!(
                                "cannot find usable AWS credentials (sts:GetCallerIdentity failed: {})",
                                match &failure {
                                    AwsFailure::Sdk(e, _) => crate::error_chain::chain(e),
                                    AwsFailure::Policy(p) => p.message.clone(),
                                }
                            ),
                        )
                    })?;
                Ok(CallerIdentity {
                    account: me.account().unwrap_or_default().to_owned(),
                    arn: me.arn().unwrap_or_default().to_owned(),
                })
            })
            .await
            .clone()
            .map_err(|(class, message)| StoreError::new(class, message))
    }

    /// The role the run would assume for `account` (`None`: the caller's own credentials),
    /// by SPEC §2's rule.
    pub async fn role_for(
        &self,
        account: Option<&str>,
        explicit: Option<&str>,
    ) -> Result<Option<(String, RoleSource)>, StoreError> {
        let caller = self.caller().await?;
        Ok(match account {
            Some(account) => self.settings.role_for(account, explicit, Some(&caller.account)),
            None => explicit.map(|arn| (arn.to_owned(), RoleSource::Explicit)),
        })
    }

    /// A session for `account` (default: the caller's) in `region` (default: the precedence
    /// of [`Self::region`]), assuming the role the rules give.
    pub(crate) async fn session(
        &self,
        account: Option<&str>,
        explicit_role: Option<&str>,
        region: Option<&str>,
    ) -> Result<Session, StoreError> {
        let caller = self.caller().await?;
        let region = self.region(region);
        let role = self.role_for(account, explicit_role).await?.map(|(arn, _)| arn);
        let base = self.base().await;
        let mut builder = base.to_builder();
        builder.set_region(Some(Region::new(region.clone())));
        // Store calls are retried (and timed out) by the resilience layer; the SDK retrying too
        // would multiply attempts (3 × 5) and hide them from the metrics.
        builder.set_retry_config(Some(RetryConfig::disabled()));
        builder.set_timeout_config(Some(
            TimeoutConfig::builder().connect_timeout(Duration::from_secs(5)).build(),
        ));
        let assumed = match &role {
            Some(role) => Some(self.assumed(role).await),
            None => None,
        };
        if let Some(assumed) = &assumed {
            builder.set_credentials_provider(Some(SharedCredentialsProvider::new(assumed.clone())));
        }
        Ok(Session {
            assumed,
            config: builder.build(),
            account: account.unwrap_or(&caller.account).to_owned(),
            region,
            role,
            custom_endpoint: self.endpoint().is_some(),
            resilience: Arc::clone(&self.resilience),
        })
    }

    /// The (shared) credentials provider for `role`.
    pub(crate) async fn assumed(&self, role: &str) -> sts::PacedAssumeRole {
        let mut roles = self.roles.lock().await;
        if let Some(known) = roles.get(role) {
            return known.clone();
        }
        let provider = sts::PacedAssumeRole::new(
            self.sts().await.clone(),
            &self.region(None),
            Arc::clone(&self.resilience),
            role,
            &self.settings.role_session_name,
            self.settings.external_id.clone(),
        );
        roles.insert(role.to_owned(), provider.clone());
        provider
    }
}
