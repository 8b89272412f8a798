//! Tests against the project's real local services (moto, OpenBao, the fault
//! proxies), brought up by `scripts/testbed up` if they are not running. Each test works in its
//! own AWS account or Vault mount, so tests run in parallel without resets.

use aws_config::retry::RetryConfig;
use testbed::proxy::{Fault, Rule};
use testbed::support::{AwsAccount, Services};

use crate::support::aws::sdk_config;

/// Secrets Manager as `account` on `endpoint` with the SDK's standard retries (3 attempts),
/// which the fault tests below count.
async fn retrying_secrets_manager(account: &AwsAccount, endpoint: &str) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&sdk_config(account, endpoint).await)
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .build(),
    )
}

#[tokio::test]
async fn the_same_secret_name_in_two_accounts_is_two_secrets() {
    let services = Services::get();
    let (a, b) = (services.aws_account().await, services.aws_account().await);
    assert_ne!(a.account_id, b.account_id);
    let (sm_a, sm_b) = (
        retrying_secrets_manager(&a, &services.aws_endpoint).await,
        retrying_secrets_manager(&b, &services.aws_endpoint).await,
    );
    let arn_a = sm_a
        .create_secret()
        .name("shared/name")
        .secret_string("value-a")
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let arn_b = sm_b
        .create_secret()
        .name("shared/name")
        .secret_string("value-b")
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    assert!(arn_a.contains(&format!(":{}:", a.account_id)), "{arn_a}");
    assert!(arn_b.contains(&format!(":{}:", b.account_id)), "{arn_b}");
    for (client, expected) in [(&sm_a, "value-a"), (&sm_b, "value-b")] {
        let listed = client.list_secrets().send().await.unwrap();
        let names: Vec<&str> = listed.secret_list().iter().filter_map(|s| s.name()).collect();
        assert_eq!(names, ["shared/name"], "each account sees only its own secret");
        let value = client.get_secret_value().secret_id("shared/name").send().await.unwrap();
        assert_eq!(value.secret_string(), Some(expected));
    }
}

#[tokio::test]
async fn an_injected_throttle_is_retried_by_the_sdk_and_counted() {
    let services = Services::get();
    let account = services.aws_account().await;
    let marker = format!("throttle-{}", account.account_id);
    let rule = Rule {
        service: Some("secretsmanager".into()),
        operation: Some("CreateSecret".into()),
        body: Some(marker.clone()),
        fault: Fault {
            status: Some(400),
            code: Some("ThrottlingException".into()),
            message: Some("Rate exceeded".into()),
            ..Fault::default()
        },
        times: Some(2),
        ..Rule::default()
    };
    let guard = services.aws_faults().add(&rule).await;
    let sm = retrying_secrets_manager(&account, &services.aws_proxy).await;
    let created = sm.create_secret().name(&marker).secret_string("v").send().await;
    assert!(created.is_ok(), "the third attempt succeeds: {created:?}");
    let stats = guard.stats().await;
    assert_eq!(
        (stats.matched, stats.fired),
        (3, 2),
        "two throttles, then the request went through"
    );

    let always = Rule {
        times: None,
        body: Some(format!("{marker}-always")),
        ..rule
    };
    let guard = services.aws_faults().add(&always).await;
    let err = sm
        .create_secret()
        .name(format!("{marker}-always"))
        .secret_string("v")
        .send()
        .await
        .unwrap_err();
    let service_error = err.into_service_error();
    assert_eq!(
        aws_sdk_secretsmanager::error::ProvideErrorMetadata::code(&service_error),
        Some("ThrottlingException"),
        "the SDK parses the injected AWS JSON error"
    );
    assert_eq!(guard.stats().await.fired, 3, "the SDK gives up after its 3 attempts");
}

#[tokio::test]
async fn a_connection_reset_is_retried_by_the_sdk() {
    let services = Services::get();
    let account = services.aws_account().await;
    let sm = retrying_secrets_manager(&account, &services.aws_proxy).await;
    let marker = format!("reset-{}", account.account_id);
    sm.create_secret()
        .name(&marker)
        .secret_string("v")
        .send()
        .await
        .unwrap();
    let rule = Rule {
        operation: Some("GetSecretValue".into()),
        body: Some(marker.clone()),
        fault: Fault {
            reset: true,
            ..Fault::default()
        },
        times: Some(1),
        ..Rule::default()
    };
    let guard = services.aws_faults().add(&rule).await;
    let value = sm.get_secret_value().secret_id(&marker).send().await.unwrap();
    assert_eq!(value.secret_string(), Some("v"));
    assert_eq!(
        guard.stats().await.fired,
        1,
        "the reset happened and the retry succeeded"
    );
}

#[tokio::test]
async fn the_vault_proxy_injects_vault_format_errors() {
    let services = Services::get();
    let mount = services.vault_mount(2).await;
    let rule = Rule {
        service: Some("vault".into()),
        path: Some(format!("^/v1/{mount}/")),
        fault: Fault {
            status: Some(503),
            message: Some("Vault is sealed".into()),
            ..Fault::default()
        },
        times: Some(1),
        ..Rule::default()
    };
    let guard = services.vault_faults().add(&rule).await;
    let path = format!("{mount}/data/x");
    let (status, body) = services.vault_call("GET", &services.vault_proxy, &path, None).await;
    assert_eq!(
        (status, body),
        (503, serde_json::json!({ "errors": ["Vault is sealed"] }))
    );
    let (status, _) = services.vault_call("GET", &services.vault_proxy, &path, None).await;
    assert_eq!(status, 404, "then OpenBao answers: nothing there yet");
    assert_eq!(guard.stats().await.fired, 1);
}

#[tokio::test]
async fn a_held_request_waits_for_another_rules_match_or_times_out() {
    let services = Services::get();
    let mount = services.vault_mount(2).await;
    let released_by = services
        .vault_faults()
        .add(&Rule {
            path: Some(format!("^/v1/{mount}/data/release")),
            ..Rule::default()
        })
        .await;
    let held_rule = Rule {
        path: Some(format!("^/v1/{mount}/data/held")),
        ..Rule::default()
    };
    let held = services.vault_faults().add_held(held_rule, &released_by, 200).await;
    let proxy = &services.vault_proxy;
    let (status, body) = services
        .vault_call("GET", proxy, &format!("{mount}/data/held"), None)
        .await;
    assert_eq!(status, 504, "nothing released it: {body}");
    assert!(body.to_string().contains("did not match 1 request(s)"), "{body}");

    let held_path = format!("{mount}/data/held");
    let held_read = services.vault_call("GET", proxy, &held_path, None);
    let release = async {
        // Sent only once the held request has reached the proxy, so it is really waiting.
        while held.stats().await.matched < 2 {
            tokio::task::yield_now().await;
        }
        services
            .vault_call("GET", proxy, &format!("{mount}/data/release"), None)
            .await
    };
    let ((status, _), _) = tokio::join!(held_read, release);
    assert_eq!(status, 404, "released, then forwarded: OpenBao has no such secret");
    assert_eq!(released_by.stats().await.matched, 1);
}
