//! The fault proxy in front of the testbed's OpenBao (a private proxy per test): counting,
//! Vault-format errors, rule limits, latency and connection resets. (AWS formats are exercised
//! with the AWS SDK against moto in secretsync's service tests.)

use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{Value, json};
use testbed::proxy::{Fault, Flavor, Rule};
use testbed::support::Services;

/// A private proxy in front of the shared OpenBao; its base URL; a fresh KV v2 mount.
async fn setup() -> (testbed::proxy::RunningProxy, String, String) {
    let services = Services::get();
    let proxy = testbed::proxy::start("127.0.0.1:0".parse().unwrap(), &services.vault_addr, Flavor::Vault)
        .await
        .unwrap();
    let base = format!("http://{}", proxy.addr);
    (proxy, base, services.vault_mount(2).await)
}

async fn get(base: &str, path: &str) -> reqwest::Result<(u16, Value)> {
    let resp = Client::new()
        .get(format!("{base}{path}"))
        .header("X-Vault-Token", Services::get().vault_token)
        .send()
        .await?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

#[tokio::test]
async fn forwards_and_counts_by_operation() {
    let (proxy, base, mount) = setup().await;
    Client::new()
        .post(format!("{base}/v1/{mount}/data/a/b"))
        .header("X-Vault-Token", Services::get().vault_token)
        .json(&json!({ "data": { "x": 1 } }))
        .send()
        .await
        .unwrap();
    let (status, body) = get(&base, &format!("/v1/{mount}/data/a/b")).await.unwrap();
    assert_eq!((status, body["data"]["data"]["x"].clone()), (200, json!(1)));
    let (status, listed) = get(&base, &format!("/v1/{mount}/metadata/a?list=true")).await.unwrap();
    assert_eq!((status, listed["data"]["keys"].clone()), (200, json!(["b"])));
    get(&base, "/v1/sys/health").await.unwrap();
    let counts = proxy.counts();
    let count = |op: &str| {
        counts
            .get(&("vault".to_owned(), op.to_owned()))
            .map_or(0, |c| c.requests)
    };
    assert_eq!(count(&format!("POST {mount}/data/*")), 1);
    assert_eq!(count(&format!("GET {mount}/data/*")), 1);
    assert_eq!(count(&format!("LIST {mount}/metadata/*")), 1);
    assert_eq!(count("GET sys/health"), 1);
    let over_http: Value = Client::new()
        .get(format!("{base}/__fault/counts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http["total"], 4);
}

#[tokio::test]
async fn injects_vault_format_errors_with_times_and_skip() {
    let (proxy, base, _) = setup().await;
    let rule = Rule {
        operation: Some("GET sys/health".into()),
        fault: Fault {
            status: Some(503),
            message: Some("Vault is sealed".into()),
            ..Fault::default()
        },
        skip: Some(1),
        times: Some(2),
        ..Rule::default()
    };
    proxy.add_rule(rule).unwrap();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, body) = get(&base, "/v1/sys/health").await.unwrap();
        if status == 503 {
            assert_eq!(body, json!({ "errors": ["Vault is sealed"] }), "Vault's error shape");
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 503, 503, 200], "skip 1, then fire twice, then stop");
    let counts = proxy.counts();
    let health = counts[&("vault".to_owned(), "GET sys/health".to_owned())];
    assert_eq!((health.requests, health.injected), (4, 2));
}

#[tokio::test]
async fn rules_can_be_added_over_http_and_match_paths() {
    let (_proxy, base, mount) = setup().await;
    let http = Client::new();
    let rule = json!({ "path": format!("^/v1/{mount}/data/forbidden"), "fault": { "status": 403, "message": "permission denied" } });
    let id: Value = http
        .post(format!("{base}/__fault/rules"))
        .json(&rule)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(id["id"].as_u64().is_some());
    let forbidden = format!("/v1/{mount}/data/forbidden/x");
    assert_eq!(get(&base, &forbidden).await.unwrap().0, 403);
    assert_eq!(
        get(&base, &format!("/v1/{mount}/data/allowed")).await.unwrap().0,
        404,
        "other paths reach OpenBao"
    );
    let bad = http
        .post(format!("{base}/__fault/rules"))
        .json(&json!({ "path": "(", "fault": {} }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    http.delete(format!("{base}/__fault/rules")).send().await.unwrap();
    assert_eq!(get(&base, &forbidden).await.unwrap().0, 404);
}

#[tokio::test]
async fn seeded_probability_repeats() {
    let pattern = |seed: u64| async move {
        let (proxy, base, _) = setup().await;
        proxy
            .add_rule(Rule {
                fault: Fault {
                    status: Some(500),
                    ..Fault::default()
                },
                probability: Some(0.5),
                seed: Some(seed),
                ..Rule::default()
            })
            .unwrap();
        let mut out = Vec::new();
        for _ in 0..20 {
            out.push(get(&base, "/v1/sys/health").await.unwrap().0);
        }
        out
    };
    let first = pattern(42).await;
    assert_eq!(first, pattern(42).await, "the same seed gives the same faults");
    let failures = first.iter().filter(|s| **s == 500).count();
    assert!((3..=17).contains(&failures), "about half fail: {failures}/20");
}

#[tokio::test]
async fn latency_and_resets_are_observable() {
    let (proxy, base, _) = setup().await;
    proxy
        .add_rule(Rule {
            operation: Some("GET sys/health".into()),
            fault: Fault {
                latency_ms: Some(150),
                ..Fault::default()
            },
            times: Some(1),
            ..Rule::default()
        })
        .unwrap();
    let started = Instant::now();
    assert_eq!(
        get(&base, "/v1/sys/health").await.unwrap().0,
        200,
        "a delayed request still succeeds"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "the injected delay happened"
    );

    proxy
        .add_rule(Rule {
            operation: Some("GET sys/seal-status".into()),
            fault: Fault {
                reset: true,
                ..Fault::default()
            },
            times: Some(1),
            ..Rule::default()
        })
        .unwrap();
    let err = get(&base, "/v1/sys/seal-status").await.unwrap_err();
    let chain = format!("{err:?}").to_lowercase();
    assert!(
        chain.contains("reset") || chain.contains("closed") || chain.contains("connection"),
        "{chain}"
    );
    assert_eq!(
        get(&base, "/v1/sys/seal-status").await.unwrap().0,
        200,
        "the next connection works"
    );
    let counts = proxy.counts();
    assert_eq!(
        counts[&("vault".to_owned(), "GET sys/seal-status".to_owned())].injected,
        1
    );
    assert_eq!(counts[&("vault".to_owned(), "GET sys/health".to_owned())].delayed, 1);
}

#[test]
fn classifies_aws_requests() {
    use testbed::proxy::classify;
    let mut headers = hyper::HeaderMap::new();
    headers.insert("authorization", "AWS4-HMAC-SHA256 Credential=test/20261122/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=x".parse().unwrap());
    headers.insert("x-amz-target", "secretsmanager.BatchGetSecretValue".parse().unwrap());
    assert_eq!(
        classify(Flavor::Aws, "POST", "/", &headers, b"{}"),
        ("secretsmanager".into(), "BatchGetSecretValue".into())
    );
    let mut sts = hyper::HeaderMap::new();
    sts.insert(
        "authorization",
        "AWS4-HMAC-SHA256 Credential=test/20261122/us-east-1/sts/aws4_request"
            .parse()
            .unwrap(),
    );
    assert_eq!(
        classify(Flavor::Aws, "POST", "/", &sts, b"Action=AssumeRole&Version=2011-06-15"),
        ("sts".into(), "AssumeRole".into())
    );
    let mut s3 = hyper::HeaderMap::new();
    s3.insert(
        "authorization",
        "AWS4-HMAC-SHA256 Credential=test/20261122/us-east-1/s3/aws4_request"
            .parse()
            .unwrap(),
    );
    assert_eq!(
        classify(Flavor::Aws, "GET", "/bucket?list-type=2&prefix=a", &s3, b"").1,
        "ListObjectsV2"
    );
    assert_eq!(
        classify(Flavor::Aws, "PUT", "/bucket/merged/T/a.json?x-id=PutObject", &s3, b"").1,
        "PutObject"
    );
    assert_eq!(
        classify(Flavor::Aws, "GET", "/bucket/merged/T/a.json", &s3, b"").1,
        "GetObject"
    );
    assert_eq!(classify(Flavor::Aws, "DELETE", "/bucket/k", &s3, b"").1, "DeleteObject");
    assert_eq!(classify(Flavor::Aws, "PUT", "/bucket", &s3, b"").1, "CreateBucket");
}
