//! AWS on moto for tests, written once: the variables a run gets to act as an account, SDK
//! clients for arranging and checking state, a private fault proxy whose API call counts belong
//! to one test, and readers of what a run left in Secrets Manager.

use std::collections::BTreeMap;

use serde_json::Value;
use testbed::proxy::{Count, Flavor, RunningProxy};
use testbed::support::{AwsAccount, Services};

/// Operations that change something in AWS.
pub(crate) const WRITES: &[&str] = &[
    "CreateSecret",
    "PutSecretValue",
    "UpdateSecret",
    "TagResource",
    "UntagResource",
    "DeleteSecret",
    "RestoreSecret",
    "PutObject",
    "DeleteObject",
    "DeleteObjects",
    "CopyObject",
];

/// The environment a run in `account` gets: its credentials, the `endpoint` (moto or a proxy in
/// front of it), a region.
pub(crate) fn env_vars(account: &AwsAccount, endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ACCESS_KEY_ID", account.access_key_id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", account.secret_access_key.as_str()),
        ("AWS_SESSION_TOKEN", account.session_token.as_str()),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .into()
}

/// An SDK client config for `account` on `endpoint`, for arranging and checking state.
pub(crate) async fn sdk_config(account: &AwsAccount, endpoint: &str) -> aws_config::SdkConfig {
    sdk_config_in(account, endpoint, "us-east-1").await
}

/// [`sdk_config`] in `region`.
pub(crate) async fn sdk_config_in(account: &AwsAccount, endpoint: &str, region: &str) -> aws_config::SdkConfig {
    let credentials = aws_sdk_secretsmanager::config::Credentials::new(
        &account.access_key_id,
        &account.secret_access_key,
        Some(account.session_token.clone()),
        None,
        "testbed",
    );
    aws_config::defaults(aws_config::BehaviorVersion::v2026_01_12())
        .region(aws_config::Region::new(region.to_owned()))
        .credentials_provider(credentials)
        .endpoint_url(endpoint)
        .load()
        .await
}

/// Secrets Manager as `account` on `endpoint`.
pub(crate) async fn secrets_manager(account: &AwsAccount, endpoint: &str) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&sdk_config(account, endpoint).await)
}

/// Secrets Manager as `account` on `endpoint` in `region`.
pub(crate) async fn secrets_manager_in(
    account: &AwsAccount,
    endpoint: &str,
    region: &str,
) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&sdk_config_in(account, endpoint, region).await)
}

/// S3 as `account` on `endpoint` (path-style, as moto serves it).
pub(crate) async fn s3(account: &AwsAccount, endpoint: &str) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk_config(account, endpoint).await)
            .force_path_style(true)
            .build(),
    )
}

/// Secrets Manager in `account_id`, read directly from moto.
pub(crate) async fn secrets_in(services: &Services, account_id: &str) -> aws_sdk_secretsmanager::Client {
    let account = services.aws_account_with_id(account_id).await;
    secrets_manager(&account, &services.aws_endpoint).await
}

/// A new bucket in `account`.
pub(crate) async fn bucket(services: &Services, account: &AwsAccount) -> String {
    let name = format!("merge-{}", account.account_id);
    let s3 = s3(account, &services.aws_endpoint).await;
    s3.create_bucket().bucket(&name).send().await.unwrap();
    name
}

/// A private proxy in front of moto, so this test's calls are counted apart from others'.
pub(crate) async fn proxy(services: &Services) -> RunningProxy {
    testbed::proxy::start("127.0.0.1:0".parse().unwrap(), &services.aws_endpoint, Flavor::Aws)
        .await
        .unwrap()
}

/// The address runs use to reach AWS through `proxy`.
pub(crate) fn endpoint(proxy: &RunningProxy) -> String {
    format!("http://{}", proxy.addr)
}

/// Requests `proxy` has seen, by operation.
pub(crate) fn calls(proxy: &RunningProxy) -> BTreeMap<String, u64> {
    proxy
        .counts()
        .into_iter()
        .map(|((_, op), Count { requests, .. })| (op, requests))
        .fold(BTreeMap::new(), |mut all, (op, n)| {
            *all.entry(op).or_default() += n;
            all
        })
}

/// The calls made between two [`calls`] counts.
pub(crate) fn since(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(op, n)| (op.clone(), n - before.get(op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// The secrets' names, sorted.
pub(crate) async fn names(sm: &aws_sdk_secretsmanager::Client) -> Vec<String> {
    let listed = sm.list_secrets().max_results(100).send().await.unwrap();
    let mut names: Vec<String> = listed
        .secret_list()
        .iter()
        .filter_map(|s| s.name().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// A secret's current string value, as JSON.
pub(crate) async fn string_value(sm: &aws_sdk_secretsmanager::Client, name: &str) -> Value {
    let out = sm.get_secret_value().secret_id(name).send().await.unwrap();
    serde_json::from_str(out.secret_string().unwrap()).unwrap()
}

/// A secret's tags.
pub(crate) async fn tags(sm: &aws_sdk_secretsmanager::Client, name: &str) -> BTreeMap<String, String> {
    let out = sm.describe_secret().secret_id(name).send().await.unwrap();
    out.tags()
        .iter()
        .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
        .collect()
}
