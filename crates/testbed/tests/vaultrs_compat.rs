//! `vaultrs` (the client secretsync's Vault store is built on) against the emulator: every
//! response the product will read parses, and errors arrive as `ClientError::APIError` with
//! Vault's status codes and messages.

use std::collections::HashMap;

use serde_json::{Value, json};
use vaultrs::api::kv2::requests::{SetSecretMetadataRequest, SetSecretRequestOptions};
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

async fn setup() -> (VaultClient, String) {
    let running = testbed::vault::start("127.0.0.1:0".parse().unwrap(), "root-token")
        .await
        .unwrap();
    let address = format!("http://{}", running.addr);
    let client = VaultClient::new(
        VaultClientSettingsBuilder::default()
            .address(&address)
            .token("root-token")
            .build()
            .unwrap(),
    )
    .unwrap();
    (client, address)
}

fn client_with(address: &str, token: &str, namespace: Option<&str>) -> VaultClient {
    let mut settings = VaultClientSettingsBuilder::default();
    settings.address(address).token(token);
    if let Some(ns) = namespace {
        settings.set_namespace(ns.to_owned());
    }
    VaultClient::new(settings.build().unwrap()).unwrap()
}

fn api_error(err: ClientError) -> (u16, Vec<String>) {
    match err {
        ClientError::APIError { code, errors } => (code, errors),
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn raw(address: &str, method: &str, path: &str, body: Value) -> Value {
    let resp = reqwest::Client::new()
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{address}/v1/{path}"),
        )
        .header("X-Vault-Token", "root-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    let text = resp.text().await.unwrap();
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

#[tokio::test]
async fn sys_endpoints_parse() {
    let (client, _) = setup().await;
    let health = vaultrs::sys::health(&client).await.unwrap();
    assert!(health.initialized && !health.sealed);
    vaultrs::sys::mount::enable(&client, "teams/analytics", "kv-v2", None)
        .await
        .unwrap();
    let mounts = vaultrs::sys::mount::list(&client).await.unwrap();
    let analytics = &mounts["teams/analytics/"];
    assert_eq!(analytics.mount_type, "kv");
    assert_eq!(analytics.options.as_ref().unwrap()["version"], "2");
    let status = vaultrs::sys::status(&client).await;
    assert!(status.is_ok(), "{status:?}");
}

#[tokio::test]
async fn kv2_round_trip_with_cas_metadata_and_errors() {
    let (client, _) = setup().await;
    let data = json!({ "user": "app", "port": 5432, "ratio": 1.5, "nested": { "list": [1, "two", null] } });
    let written = vaultrs::kv2::set(&client, "secret", "app/db", &data).await.unwrap();
    assert_eq!(written.version, 1);
    let read: Value = vaultrs::kv2::read(&client, "secret", "app/db").await.unwrap();
    assert_eq!(read, data, "numbers, nesting and nulls come back exactly");
    let cas = SetSecretRequestOptions { cas: 1 };
    assert_eq!(
        vaultrs::kv2::set_with_options(&client, "secret", "app/db", &json!({ "v": 2 }), cas)
            .await
            .unwrap()
            .version,
        2
    );
    let stale = vaultrs::kv2::set_with_options(
        &client,
        "secret",
        "app/db",
        &json!({ "v": 3 }),
        SetSecretRequestOptions { cas: 1 },
    )
    .await
    .unwrap_err();
    assert_eq!(
        api_error(stale),
        (
            400,
            vec!["check-and-set parameter did not match the current version".to_owned()]
        )
    );
    let old: Value = vaultrs::kv2::read_version(&client, "secret", "app/db", 1)
        .await
        .unwrap();
    assert_eq!(old["user"], "app");

    let mut custom = SetSecretMetadataRequest::builder();
    custom.custom_metadata(HashMap::from([
        ("managed-by".to_owned(), "secretsync".to_owned()),
        ("secretsync:target".to_owned(), "Staging".to_owned()),
    ]));
    vaultrs::kv2::set_metadata(&client, "secret", "app/db", Some(&mut custom))
        .await
        .unwrap();
    let meta = vaultrs::kv2::read_metadata(&client, "secret", "app/db").await.unwrap();
    assert_eq!(meta.current_version, 2);
    assert_eq!(meta.custom_metadata.unwrap()["managed-by"], "secretsync");
    assert_eq!(meta.versions.len(), 2);

    vaultrs::kv2::set(&client, "secret", "app/other", &json!({ "a": 1 }))
        .await
        .unwrap();
    assert_eq!(
        vaultrs::kv2::list(&client, "secret", "app").await.unwrap(),
        ["db", "other"]
    );
    assert_eq!(
        vaultrs::kv2::list(&client, "secret", "").await.unwrap(),
        ["app/"],
        "listing at the mount root"
    );
    vaultrs::kv2::delete_latest(&client, "secret", "app/db").await.unwrap();
    // Vault answers a soft-deleted latest version with 404 and the version's metadata but no
    // `errors`, which vaultrs reports as a REST error carrying the body (the Vault store must
    // recognise both shapes of "not found").
    match vaultrs::kv2::read::<Value>(&client, "secret", "app/db")
        .await
        .unwrap_err()
    {
        ClientError::RestClientError {
            source: rustify::errors::ClientError::ServerResponseError { code, content },
        } => {
            assert_eq!(code, 404);
            let body: Value = serde_json::from_str(&content.unwrap()).unwrap();
            assert_ne!(body["data"]["metadata"]["deletion_time"], "");
        }
        other => panic!("unexpected error shape: {other:?}"),
    }
    assert_eq!(
        vaultrs::kv2::list(&client, "secret", "app").await.unwrap(),
        ["db", "other"],
        "and is still listed"
    );
    vaultrs::kv2::undelete_versions(&client, "secret", "app/db", vec![2])
        .await
        .unwrap();
    assert!(vaultrs::kv2::read::<Value>(&client, "secret", "app/db").await.is_ok());
    vaultrs::kv2::destroy_versions(&client, "secret", "app/db", vec![1])
        .await
        .unwrap();
    vaultrs::kv2::delete_versions(&client, "secret", "app/db", vec![2])
        .await
        .unwrap();
    vaultrs::kv2::delete_metadata(&client, "secret", "app/db")
        .await
        .unwrap();
    assert_eq!(vaultrs::kv2::list(&client, "secret", "app").await.unwrap(), ["other"]);
    let (code, errors) = api_error(vaultrs::kv2::list(&client, "secret", "missing").await.unwrap_err());
    assert_eq!(
        (code, errors.len()),
        (404, 0),
        "an empty listing is 404 with no messages, as Vault"
    );
}

#[tokio::test]
async fn kv1_round_trip() {
    let (client, _) = setup().await;
    vaultrs::sys::mount::enable(&client, "legacy", "kv", None)
        .await
        .unwrap();
    vaultrs::kv1::set(&client, "legacy", "app/token", &HashMap::from([("value", "abc")]))
        .await
        .unwrap();
    let read: HashMap<String, String> = vaultrs::kv1::get(&client, "legacy", "app/token").await.unwrap();
    assert_eq!(read["value"], "abc");
    assert_eq!(
        vaultrs::kv1::list(&client, "legacy", "app").await.unwrap().data.keys,
        ["token"]
    );
    vaultrs::kv1::delete(&client, "legacy", "app/token").await.unwrap();
    let (code, _) = api_error(
        vaultrs::kv1::get::<Value>(&client, "legacy", "app/token")
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 404);
}

#[tokio::test]
async fn logins_and_token_lifecycle() {
    let (client, address) = setup().await;
    raw(&address, "POST", "sys/auth/approle", json!({ "type": "approle" })).await;
    raw(
        &address,
        "POST",
        "auth/approle/role/sync",
        json!({ "token_policies": ["sync"], "token_ttl": "1h" }),
    )
    .await;
    let role_id = raw(&address, "GET", "auth/approle/role/sync/role-id", Value::Null).await["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret_id = raw(&address, "POST", "auth/approle/role/sync/secret-id", json!({})).await["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let auth = vaultrs::auth::approle::login(&client, "approle", &role_id, &secret_id)
        .await
        .unwrap();
    assert_eq!(auth.policies, ["default", "sync"]);
    assert_eq!(auth.lease_duration, 3600);
    let bad = vaultrs::auth::approle::login(&client, "approle", &role_id, "nope")
        .await
        .unwrap_err();
    assert_eq!(api_error(bad).0, 400);

    let token_client = client_with(&address, &auth.client_token, None);
    let me = vaultrs::token::lookup_self(&token_client).await.unwrap();
    assert_eq!(me.policies, ["default", "sync"]);
    let renewed = vaultrs::token::renew_self(&token_client, Some("2h")).await.unwrap();
    assert_eq!(renewed.lease_duration, 7200);
    reqwest::Client::new()
        .post(format!("{address}/__emulator/expire-token"))
        .json(&json!({ "token": auth.client_token }))
        .send()
        .await
        .unwrap();
    let expired = vaultrs::token::lookup_self(&token_client).await.unwrap_err();
    assert_eq!(
        api_error(expired).0,
        403,
        "an expired token is a 403, the signal to log in again"
    );

    raw(&address, "POST", "sys/auth/kubernetes", json!({ "type": "kubernetes" })).await;
    raw(&address, "POST", "auth/kubernetes/role/secretsync", json!({ "bound_service_account_names": ["secretsync"], "bound_service_account_namespaces": ["*"], "token_policies": ["sync"] })).await;
    use base64::Engine as _;
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(br#"{"sub":"system:serviceaccount:platform:secretsync"}"#);
    let jwt = format!("eyJhbGciOiJSUzI1NiJ9.{claims}.sig");
    let k8s = vaultrs::auth::kubernetes::login(&client, "kubernetes", "secretsync", &jwt)
        .await
        .unwrap();
    assert_eq!(k8s.policies, ["default", "sync"]);
}

#[tokio::test]
async fn namespaces_and_denials() {
    let (client, address) = setup().await;
    raw(&address, "POST", "sys/namespaces/eng", json!({})).await;
    let eng = client_with(&address, "root-token", Some("eng"));
    vaultrs::sys::mount::enable(&eng, "kv", "kv-v2", None).await.unwrap();
    vaultrs::kv2::set(&eng, "kv", "app", &json!({ "in": "eng" }))
        .await
        .unwrap();
    let read: Value = vaultrs::kv2::read(&eng, "kv", "app").await.unwrap();
    assert_eq!(read["in"], "eng");
    assert_eq!(
        api_error(vaultrs::kv2::read::<Value>(&client, "kv", "app").await.unwrap_err()).0,
        404,
        "not in the root namespace"
    );

    raw(
        &address,
        "PUT",
        "sys/policies/acl/reader",
        json!({ "policy": "path \"secret/data/public/*\" { capabilities = [\"read\"] }" }),
    )
    .await;
    let token =
        raw(&address, "POST", "auth/token/create", json!({ "policies": ["reader"] })).await["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_owned();
    vaultrs::kv2::set(&client, "secret", "public/a", &json!({ "a": 1 }))
        .await
        .unwrap();
    vaultrs::kv2::set(&client, "secret", "private/b", &json!({ "b": 1 }))
        .await
        .unwrap();
    let reader = client_with(&address, &token, None);
    assert!(vaultrs::kv2::read::<Value>(&reader, "secret", "public/a").await.is_ok());
    let (code, errors) = api_error(
        vaultrs::kv2::read::<Value>(&reader, "secret", "private/b")
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 403);
    assert!(errors[0].contains("permission denied"));

    vaultrs::sys::seal(&client).await.unwrap();
    let (code, errors) = api_error(
        vaultrs::kv2::read::<Value>(&client, "secret", "public/a")
            .await
            .unwrap_err(),
    );
    assert_eq!((code, errors), (503, vec!["Vault is sealed".to_owned()]));
}
