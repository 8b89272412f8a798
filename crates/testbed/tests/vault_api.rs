//! The Vault emulator, endpoint by endpoint, over HTTP: status codes, JSON shapes and error
//! bodies as Vault's API documentation gives them.

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

struct Vault {
    base: String,
    root: String,
    http: Client,
}

impl Vault {
    async fn start() -> Self {
        let running = testbed::vault::start("127.0.0.1:0".parse().unwrap(), "root-token")
            .await
            .unwrap();
        Self {
            base: format!("http://{}/v1/", running.addr),
            root: running.root_token,
            http: Client::new(),
        }
    }

    async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        self.call_ns(method, path, token, None, body).await
    }

    async fn call_ns(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        ns: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", self.base),
        );
        if let Some(t) = token {
            req = req.header("X-Vault-Token", t);
        }
        if let Some(n) = ns {
            req = req.header("X-Vault-Namespace", n);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap()
            },
        )
    }

    async fn root(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(method, path, Some(&self.root.clone()), body).await
    }
}

#[tokio::test]
async fn health_and_seal() {
    let v = Vault::start().await;
    let (s, body) = v.call("GET", "sys/health", None, None).await;
    assert_eq!(s, 200);
    assert_eq!(
        (body["initialized"].clone(), body["sealed"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(v.root("PUT", "sys/seal", None).await.0, 204);
    assert_eq!(v.call("GET", "sys/health", None, None).await.0, 503);
    let (s, body) = v.root("GET", "secret/data/x", None).await;
    assert_eq!((s.as_u16(), body), (503, json!({ "errors": ["Vault is sealed"] })));
    assert_eq!(v.call("GET", "sys/seal-status", None, None).await.1["sealed"], true);
    let (s, body) = v.call("PUT", "sys/unseal", None, Some(json!({ "key": "k" }))).await;
    assert_eq!((s.as_u16(), body["sealed"].clone()), (200, json!(false)));
    assert_eq!(v.root("GET", "sys/health", None).await.0, 200);
}

#[tokio::test]
async fn tokens_are_required_and_checked() {
    let v = Vault::start().await;
    let (s, body) = v.call("GET", "secret/data/x", None, None).await;
    assert_eq!(s, 403);
    assert_eq!(
        body,
        json!({ "errors": ["1 error occurred:\n\t* permission denied\n\n"] })
    );
    assert_eq!(v.call("GET", "secret/data/x", Some("wrong"), None).await.0, 403);
    let bearer = v
        .http
        .get(format!("{}auth/token/lookup-self", v.base))
        .bearer_auth(&v.root)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200, "Authorization: Bearer works too");
    let (s, body) = v.root("GET", "auth/token/lookup-self", None).await;
    assert_eq!(s, 200);
    assert_eq!(body["data"]["policies"], json!(["root"]));
    assert_eq!(body["data"]["id"], v.root);
}

#[tokio::test]
async fn token_create_renew_revoke_and_expiry() {
    let v = Vault::start().await;
    let (s, body) = v
        .root(
            "POST",
            "auth/token/create",
            Some(json!({ "policies": ["reader"], "ttl": "1h" })),
        )
        .await;
    assert_eq!(s, 200);
    let auth = &body["auth"];
    let token = auth["client_token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("hvs."));
    assert_eq!(auth["lease_duration"], 3600);
    assert_eq!(auth["renewable"], true);
    let (s, body) = v.call("GET", "auth/token/lookup-self", Some(&token), None).await;
    assert_eq!(s, 200);
    assert_eq!(
        body["data"]["policies"],
        json!(["default", "reader"]),
        "`default` comes along, as in Vault"
    );
    let (_, bare) = v
        .root(
            "POST",
            "auth/token/create",
            Some(json!({ "policies": ["reader"], "no_default_policy": true })),
        )
        .await;
    assert_eq!(bare["auth"]["policies"], json!(["reader"]));
    let (s, body) = v
        .call(
            "POST",
            "auth/token/renew-self",
            Some(&token),
            Some(json!({ "increment": "2h" })),
        )
        .await;
    assert_eq!((s.as_u16(), body["auth"]["lease_duration"].clone()), (200, json!(7200)));
    let expire = v
        .http
        .post(format!(
            "http://{}/__emulator/expire-token",
            v.base.trim_start_matches("http://").trim_end_matches("/v1/")
        ))
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(expire.status(), 204);
    assert_eq!(
        v.call("GET", "auth/token/lookup-self", Some(&token), None).await.0,
        403,
        "an expired token is refused"
    );
    let (_, body) = v
        .root("POST", "auth/token/create", Some(json!({ "policies": ["x"] })))
        .await;
    let other = body["auth"]["client_token"].as_str().unwrap().to_owned();
    assert_eq!(
        v.call("POST", "auth/token/revoke-self", Some(&other), None).await.0,
        204
    );
    assert_eq!(v.call("GET", "auth/token/lookup-self", Some(&other), None).await.0, 403);
    let (_, body) = v
        .root("POST", "auth/token/create", Some(json!({ "policies": ["x"] })))
        .await;
    let third = body["auth"]["client_token"].as_str().unwrap().to_owned();
    let expire_all = v
        .http
        .post(format!(
            "http://{}/__emulator/expire-tokens",
            v.base.trim_start_matches("http://").trim_end_matches("/v1/")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(expire_all.status(), 204);
    assert_eq!(v.call("GET", "auth/token/lookup-self", Some(&third), None).await.0, 403);
    assert_eq!(
        v.root("GET", "auth/token/lookup-self", None).await.0,
        200,
        "the root token outlives expire-tokens"
    );
}

#[tokio::test]
async fn mounts_and_the_ui_preflight() {
    let v = Vault::start().await;
    assert_eq!(
        v.root(
            "POST",
            "sys/mounts/kv1",
            Some(json!({ "type": "kv", "options": { "version": "1" } }))
        )
        .await
        .0,
        204
    );
    assert_eq!(
        v.root("POST", "sys/mounts/teams/analytics", Some(json!({ "type": "kv-v2" })))
            .await
            .0,
        204
    );
    let (s, body) = v.root("POST", "sys/mounts/kv1", Some(json!({ "type": "kv" }))).await;
    assert_eq!(
        (s.as_u16(), body),
        (400, json!({ "errors": ["path is already in use at kv1/"] }))
    );
    let (s, body) = v
        .root("POST", "sys/mounts/x", Some(json!({ "type": "database" })))
        .await;
    assert_eq!(
        (
            s.as_u16(),
            body["errors"][0].as_str().unwrap().starts_with("plugin not found")
        ),
        (400, true)
    );
    let (s, body) = v.root("GET", "sys/mounts", None).await;
    assert_eq!(s, 200);
    assert_eq!(body["data"]["kv1/"]["options"]["version"], "1");
    assert_eq!(
        body["kv1/"]["type"], "kv",
        "mounts are also listed at the top level, as Vault does"
    );
    assert_eq!(body["data"]["teams/analytics/"]["options"]["version"], "2");
    let (s, body) = v
        .root("GET", "sys/internal/ui/mounts/teams/analytics/shared/db", None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        (
            body["data"]["path"].clone(),
            body["data"]["type"].clone(),
            body["data"]["options"]["version"].clone()
        ),
        (json!("teams/analytics/"), json!("kv"), json!("2"))
    );
    let (s, body) = v.root("GET", "sys/internal/ui/mounts/nope/x", None).await;
    assert_eq!(s, 403);
    assert_eq!(
        body["errors"][0],
        "preflight capability check returned 403, please ensure client's policies grant access to path \"nope/x/\""
    );
    assert_eq!(v.root("DELETE", "sys/mounts/kv1", None).await.0, 204);
    assert_eq!(v.root("GET", "kv1/a", None).await.0, 404);
}

#[tokio::test]
async fn kv_v1_read_write_list_delete() {
    let v = Vault::start().await;
    v.root(
        "POST",
        "sys/mounts/kv",
        Some(json!({ "type": "kv", "options": { "version": "1" } })),
    )
    .await;
    assert_eq!(
        v.root("PUT", "kv/app/db", Some(json!({ "user": "u", "port": 5432 })))
            .await
            .0,
        204
    );
    v.root("PUT", "kv/app/nested/key", Some(json!({ "a": 1 }))).await;
    v.root("PUT", "kv/top", Some(json!({ "b": true }))).await;
    let (s, body) = v.root("GET", "kv/app/db", None).await;
    assert_eq!(s, 200);
    assert_eq!(body["data"], json!({ "user": "u", "port": 5432 }));
    assert_eq!(
        v.root("LIST", "kv/", None).await.1["data"]["keys"],
        json!(["app/", "top"])
    );
    assert_eq!(
        v.root("GET", "kv/app?list=true", None).await.1["data"]["keys"],
        json!(["db", "nested/"])
    );
    assert_eq!(
        v.root("LIST", "kv/missing", None).await,
        (StatusCode::NOT_FOUND, json!({ "errors": [] }))
    );
    assert_eq!(
        v.root("GET", "kv/missing", None).await,
        (StatusCode::NOT_FOUND, json!({ "errors": [] }))
    );
    assert_eq!(v.root("DELETE", "kv/app/db", None).await.0, 204);
    assert_eq!(v.root("GET", "kv/app/db", None).await.0, 404);
}

#[tokio::test]
async fn kv_v2_versions_cas_soft_deletes_and_metadata() {
    let v = Vault::start().await;
    let (s, body) = v
        .root(
            "POST",
            "secret/data/app/db",
            Some(json!({ "data": { "password": "one" } })),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(body["data"]["version"], 1);
    assert_eq!(body["data"]["deletion_time"], "");
    let (_, body) = v
        .root(
            "POST",
            "secret/data/app/db",
            Some(json!({ "data": { "password": "two" }, "options": { "cas": 1 } })),
        )
        .await;
    assert_eq!(body["data"]["version"], 2);
    let (s, body) = v
        .root(
            "POST",
            "secret/data/app/db",
            Some(json!({ "data": { "password": "x" }, "options": { "cas": 1 } })),
        )
        .await;
    assert_eq!(
        (s.as_u16(), body),
        (
            400,
            json!({ "errors": ["check-and-set parameter did not match the current version"] })
        )
    );
    let (s, _) = v
        .root(
            "POST",
            "secret/data/app/new",
            Some(json!({ "data": { "a": 1 }, "options": { "cas": 0 } })),
        )
        .await;
    assert_eq!(s, 200, "cas 0 creates a key that does not exist");
    let (s, body) = v.root("GET", "secret/data/app/db", None).await;
    assert_eq!(s, 200);
    assert_eq!(body["data"]["data"], json!({ "password": "two" }));
    assert_eq!(body["data"]["metadata"]["version"], 2);
    assert_eq!(
        v.root("GET", "secret/data/app/db?version=1", None).await.1["data"]["data"]["password"],
        "one"
    );
    assert_eq!(v.root("GET", "secret/data/app/db?version=9", None).await.0, 404);

    assert_eq!(v.root("DELETE", "secret/data/app/db", None).await.0, 204);
    let (s, body) = v.root("GET", "secret/data/app/db", None).await;
    assert_eq!(s, 404);
    assert_eq!(
        body["data"]["data"],
        Value::Null,
        "a soft-deleted version answers 404 with its metadata"
    );
    assert_ne!(body["data"]["metadata"]["deletion_time"], "");
    assert_eq!(
        v.root("LIST", "secret/metadata/app", None).await.1["data"]["keys"],
        json!(["db", "new"]),
        "soft-deleted keys are still listed"
    );
    assert_eq!(
        v.root("POST", "secret/undelete/app/db", Some(json!({ "versions": [2] })))
            .await
            .0,
        204
    );
    assert_eq!(v.root("GET", "secret/data/app/db", None).await.0, 200);
    assert_eq!(
        v.root("PUT", "secret/destroy/app/db", Some(json!({ "versions": [2] })))
            .await
            .0,
        204
    );
    assert_eq!(
        v.root("POST", "secret/undelete/app/db", Some(json!({ "versions": [2] })))
            .await
            .0,
        204
    );
    assert_eq!(
        v.root("GET", "secret/data/app/db", None).await.1["data"]["metadata"]["destroyed"],
        true,
        "destroyed stays destroyed"
    );
    assert_eq!(
        v.root("POST", "secret/delete/app/db", Some(json!({ "versions": [1] })))
            .await
            .0,
        204
    );
    assert_eq!(v.root("GET", "secret/data/app/db?version=1", None).await.0, 404);
    let (s, body) = v.root("POST", "secret/delete/app/db", Some(json!({}))).await;
    assert_eq!(
        (s.as_u16(), body),
        (400, json!({ "errors": ["no version number provided"] }))
    );

    let (s, body) = v.root("GET", "secret/metadata/app/db", None).await;
    assert_eq!(s, 200);
    let meta = &body["data"];
    assert_eq!(meta["current_version"], 2);
    assert_eq!(meta["versions"]["2"]["destroyed"], true);
    assert_ne!(meta["versions"]["1"]["deletion_time"], "");
    assert_eq!(meta["custom_metadata"], Value::Null);
    let custom = json!({ "custom_metadata": { "managed-by": "secretsync", "secretsync:target": "Staging" } });
    assert_eq!(v.root("POST", "secret/metadata/app/db", Some(custom)).await.0, 204);
    let patch = v
        .http
        .patch(format!("{}secret/metadata/app/db", v.base))
        .header("X-Vault-Token", &v.root)
        .header("content-type", "application/merge-patch+json")
        .json(&json!({ "custom_metadata": { "owner": "team" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 204);
    let (_, body) = v.root("GET", "secret/metadata/app/db", None).await;
    assert_eq!(
        body["data"]["custom_metadata"],
        json!({ "managed-by": "secretsync", "secretsync:target": "Staging", "owner": "team" })
    );
    assert_eq!(
        v.root("GET", "secret/data/app/new", None).await.1["data"]["metadata"]["custom_metadata"],
        Value::Null
    );

    assert_eq!(v.root("DELETE", "secret/metadata/app/db", None).await.0, 204);
    assert_eq!(v.root("GET", "secret/metadata/app/db", None).await.0, 404);
    assert_eq!(
        v.root("LIST", "secret/metadata/app", None).await.1["data"]["keys"],
        json!(["new"])
    );
    assert_eq!(
        v.root("LIST", "secret/metadata/missing", None).await,
        (StatusCode::NOT_FOUND, json!({ "errors": [] }))
    );
    assert_eq!(
        v.root("GET", "secret/app/db", None).await.0,
        404,
        "v2 paths need data/ or metadata/"
    );
}

#[tokio::test]
async fn kv_v2_keeps_at_most_max_versions() {
    let v = Vault::start().await;
    v.root("POST", "secret/config", Some(json!({ "max_versions": 3 })))
        .await;
    for i in 0..5 {
        v.root("POST", "secret/data/k", Some(json!({ "data": { "i": i } })))
            .await;
    }
    let (_, body) = v.root("GET", "secret/metadata/k", None).await;
    let versions: Vec<&String> = body["data"]["versions"].as_object().unwrap().keys().collect();
    assert_eq!(versions, ["3", "4", "5"]);
    assert_eq!(body["data"]["oldest_version"], 3);
}

#[tokio::test]
async fn approle_login() {
    let v = Vault::start().await;
    assert_eq!(
        v.root("POST", "sys/auth/approle", Some(json!({ "type": "approle" })))
            .await
            .0,
        204
    );
    assert_eq!(
        v.root("POST", "sys/auth/ci-approle", Some(json!({ "type": "approle" })))
            .await
            .0,
        204
    );
    assert_eq!(
        v.root(
            "POST",
            "auth/ci-approle/role/sync",
            Some(json!({ "token_policies": ["reader"], "token_ttl": "20m" }))
        )
        .await
        .0,
        204
    );
    let role_id = v.root("GET", "auth/ci-approle/role/sync/role-id", None).await.1["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, body) = v.root("POST", "auth/ci-approle/role/sync/secret-id", None).await;
    assert_eq!(s, 200);
    let secret_id = body["data"]["secret_id"].as_str().unwrap().to_owned();
    assert!(body["data"]["secret_id_accessor"].is_string());
    let (s, body) = v
        .call(
            "POST",
            "auth/ci-approle/login",
            None,
            Some(json!({ "role_id": role_id, "secret_id": secret_id })),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(body["auth"]["policies"], json!(["default", "reader"]));
    assert_eq!(body["auth"]["lease_duration"], 1200);
    let token = body["auth"]["client_token"].as_str().unwrap();
    assert_eq!(v.call("GET", "auth/token/lookup-self", Some(token), None).await.0, 200);
    let (s, body) = v
        .call(
            "POST",
            "auth/ci-approle/login",
            None,
            Some(json!({ "role_id": role_id, "secret_id": "wrong" })),
        )
        .await;
    assert_eq!(
        (s.as_u16(), body),
        (400, json!({ "errors": ["invalid role or secret ID"] }))
    );
    assert_eq!(
        v.call(
            "POST",
            "auth/approle/login",
            None,
            Some(json!({ "role_id": role_id, "secret_id": secret_id }))
        )
        .await
        .0,
        400,
        "roles belong to their mount"
    );
}

fn jwt(claims: &Value) -> String {
    use base64::Engine as _;
    let part = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!("{}.{}.signature", part(&json!({ "alg": "RS256" })), part(claims))
}

#[tokio::test]
async fn kubernetes_login_checks_the_service_account() {
    let v = Vault::start().await;
    v.root("POST", "sys/auth/kubernetes", Some(json!({ "type": "kubernetes" })))
        .await;
    assert_eq!(
        v.root(
            "POST",
            "auth/kubernetes/config",
            Some(json!({ "kubernetes_host": "https://k8s" }))
        )
        .await
        .0,
        204
    );
    v.root("POST", "auth/kubernetes/role/secretsync", Some(json!({ "bound_service_account_names": ["secretsync"], "bound_service_account_namespaces": ["platform"], "token_policies": ["sync"] }))).await;
    let legacy = jwt(
        &json!({ "kubernetes.io/serviceaccount/namespace": "platform", "kubernetes.io/serviceaccount/service-account.name": "secretsync" }),
    );
    let (s, body) = v
        .call(
            "POST",
            "auth/kubernetes/login",
            None,
            Some(json!({ "role": "secretsync", "jwt": legacy })),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(body["auth"]["policies"], json!(["default", "sync"]));
    let projected = jwt(
        &json!({ "sub": "system:serviceaccount:platform:secretsync", "kubernetes.io": { "namespace": "platform", "serviceaccount": { "name": "secretsync" } } }),
    );
    assert_eq!(
        v.call(
            "POST",
            "auth/kubernetes/login",
            None,
            Some(json!({ "role": "secretsync", "jwt": projected }))
        )
        .await
        .0,
        200
    );
    let wrong_ns = jwt(&json!({ "sub": "system:serviceaccount:default:secretsync" }));
    let (s, body) = v
        .call(
            "POST",
            "auth/kubernetes/login",
            None,
            Some(json!({ "role": "secretsync", "jwt": wrong_ns })),
        )
        .await;
    assert_eq!(
        (s.as_u16(), body),
        (403, json!({ "errors": ["namespace not authorized"] }))
    );
    let wrong_sa = jwt(&json!({ "sub": "system:serviceaccount:platform:other" }));
    assert_eq!(
        v.call(
            "POST",
            "auth/kubernetes/login",
            None,
            Some(json!({ "role": "secretsync", "jwt": wrong_sa }))
        )
        .await
        .0,
        403
    );
    let (s, body) = v
        .call(
            "POST",
            "auth/kubernetes/login",
            None,
            Some(json!({ "role": "nope", "jwt": legacy })),
        )
        .await;
    assert_eq!(
        (s.as_u16(), body),
        (400, json!({ "errors": ["invalid role name \"nope\""] }))
    );
}

#[tokio::test]
async fn acl_policies_allow_and_deny_by_path() {
    let v = Vault::start().await;
    let policy = r#"
        path "secret/data/app/*" { capabilities = ["read", "create", "update"] }
        path "secret/metadata/app/*" { capabilities = ["list", "read"] }
        path "secret/data/app/admin" { capabilities = ["deny"] }
    "#;
    assert_eq!(
        v.root("PUT", "sys/policies/acl/app", Some(json!({ "policy": policy })))
            .await
            .0,
        204
    );
    assert_eq!(
        v.root("GET", "sys/policies/acl/app", None).await.1["data"]["name"],
        "app"
    );
    let (s, body) = v
        .root(
            "PUT",
            "sys/policies/acl/bad",
            Some(json!({ "policy": "path \"x\" { capabilities = [\"fly\"] }" })),
        )
        .await;
    assert_eq!(
        (
            s.as_u16(),
            body["errors"][0]
                .as_str()
                .unwrap()
                .starts_with("failed to parse policy")
        ),
        (400, true)
    );
    let token = v
        .root("POST", "auth/token/create", Some(json!({ "policies": ["app"] })))
        .await
        .1["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    v.root("POST", "secret/data/app/admin", Some(json!({ "data": { "a": 1 } })))
        .await;
    v.root("POST", "secret/data/other/x", Some(json!({ "data": { "a": 1 } })))
        .await;
    let t = Some(token.as_str());
    assert_eq!(
        v.call("POST", "secret/data/app/db", t, Some(json!({ "data": { "a": 1 } })))
            .await
            .0,
        200
    );
    assert_eq!(v.call("GET", "secret/data/app/db", t, None).await.0, 200);
    assert_eq!(v.call("LIST", "secret/metadata/app", t, None).await.0, 200);
    assert_eq!(
        v.call("GET", "secret/data/app/admin", t, None).await.0,
        403,
        "deny wins"
    );
    assert_eq!(v.call("GET", "secret/data/other/x", t, None).await.0, 403);
    assert_eq!(
        v.call("DELETE", "secret/data/app/db", t, None).await.0,
        403,
        "no delete capability"
    );
    assert_eq!(v.call("GET", "sys/mounts", t, None).await.0, 403);
    assert_eq!(
        v.call("GET", "sys/internal/ui/mounts/secret/app/db", t, None).await.0,
        200,
        "the preflight answers any token with access somewhere in the mount"
    );
    v.root("POST", "sys/mounts/closed", Some(json!({ "type": "kv" }))).await;
    assert_eq!(
        v.call("GET", "sys/internal/ui/mounts/closed/x", t, None).await.0,
        403,
        "…and no other"
    );
    let (s, caps) = v
        .call(
            "POST",
            "sys/capabilities-self",
            t,
            Some(json!({ "paths": ["secret/data/app/db", "secret/data/app/admin", "secret/metadata/app/"] })),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(caps["data"]["secret/data/app/db"], json!(["create", "read", "update"]));
    assert_eq!(caps["data"]["secret/data/app/admin"], json!(["deny"]));
    assert_eq!(
        caps["data"]["secret/metadata/app/"],
        json!(["list", "read"]),
        "`app/*` covers the folder itself"
    );
    assert_eq!(caps["data"]["capabilities"], json!(["create", "read", "update"]));
    let (_, root_caps) = v
        .root("POST", "sys/capabilities-self", Some(json!({ "paths": ["anything"] })))
        .await;
    assert_eq!(root_caps["data"]["anything"], json!(["root"]));
    assert_eq!(
        v.call("GET", "auth/token/lookup-self", t, None).await.0,
        200,
        "self-service is always allowed"
    );
}

#[tokio::test]
async fn namespaces_by_header_and_path_prefix() {
    let v = Vault::start().await;
    assert_eq!(v.root("POST", "sys/namespaces/eng", None).await.0, 200);
    assert_eq!(
        v.call_ns("POST", "sys/namespaces/platform", Some(&v.root), Some("eng"), None)
            .await
            .0,
        200
    );
    assert_eq!(
        v.call_ns(
            "POST",
            "sys/mounts/kv",
            Some(&v.root),
            Some("eng/platform"),
            Some(json!({ "type": "kv-v2" }))
        )
        .await
        .0,
        204
    );
    assert_eq!(
        v.call_ns(
            "POST",
            "kv/data/app",
            Some(&v.root),
            Some("eng/platform"),
            Some(json!({ "data": { "ns": "eng/platform" } }))
        )
        .await
        .0,
        200
    );
    let by_header = v
        .call_ns("GET", "kv/data/app", Some(&v.root), Some("eng/platform"), None)
        .await;
    assert_eq!(by_header.1["data"]["data"]["ns"], "eng/platform");
    let by_path = v.root("GET", "eng/platform/kv/data/app", None).await;
    assert_eq!(by_path.1["data"]["data"]["ns"], "eng/platform");
    let mixed = v
        .call_ns("GET", "platform/kv/data/app", Some(&v.root), Some("eng"), None)
        .await;
    assert_eq!(mixed.1["data"]["data"]["ns"], "eng/platform");
    assert_eq!(
        v.root("GET", "kv/data/app", None).await.0,
        404,
        "the root namespace has no such mount"
    );
    assert_eq!(
        v.call_ns("GET", "kv/data/app", Some(&v.root), Some("nope"), None)
            .await
            .0,
        403
    );
    assert_eq!(
        v.call_ns("LIST", "sys/namespaces", Some(&v.root), Some("eng"), None)
            .await
            .1["data"]["keys"],
        json!(["platform/"])
    );
}
