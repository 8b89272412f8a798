//! The Vault store against the testbed's Vault (the emulator, or a real Vault from
//! `docker-compose.test.yml`): the store contract for KV v1 and v2, as a target and as a merge
//! store, with a root token and with AppRole, inside a namespace; listing, ownership, CAS and
//! token expiry. Stores are built the way the binary builds them: from a pipeline file, through
//! `BuildContext` (address, auth, mount preflight). Each test works in its own mount.

use std::sync::Arc;

use crate::support::built;
use secretsync::model::{SecretPath, SecretValue};
use secretsync::store::{ErrorClass, Owner, WritableStore, conformance};
use serde_json::{Value, json};
use testbed::support::{Services, kubernetes_jwt, random_account_id, vault_expire_tokens, vault_request};

/// A pipeline with one Vault target `T` (`vault_block` is the target's `vault:` mapping) and
/// the root token.
fn target_yaml(services: &Services, vault_block: &str) -> String {
    format!(
        "vault: {{ address: {}, auth: {{ token: {{ token: '${{TOKEN}}' }} }} }}\n\
         sources: {{ s: {{ file: {{ path: ./unused }} }} }}\n\
         targets: {{ T: {{ imports: [s], vault: {vault_block} }} }}\n",
        services.vault_addr
    )
}

async fn target(services: &Services, vault_block: &str) -> Arc<dyn WritableStore> {
    let (pipeline, context) = built(&target_yaml(services, vault_block), [("TOKEN", &services.vault_token)]);
    context
        .target(&pipeline.targets["T"])
        .await
        .unwrap_or_else(|e| panic!("building the Vault target failed: {e}"))
}

fn p(text: &str) -> SecretPath {
    SecretPath::parse(text).unwrap()
}

fn json_value(value: &Value) -> SecretValue {
    SecretValue::from_string(value.to_string())
}

/// Writes a KV secret through the HTTP API as root (`v2` wraps it in `data`).
pub(crate) async fn seed(services: &Services, mount: &str, version: u8, path: &str, data: Value) {
    let (api, body) = if version == 2 {
        (format!("{mount}/data/{path}"), json!({ "data": data }))
    } else {
        (format!("{mount}/{path}"), data)
    };
    let (status, answer) = services
        .vault_call("POST", &services.vault_addr, &api, Some(body))
        .await;
    assert!(status < 300, "seeding {api} failed: {status} {answer}");
}

#[tokio::test]
async fn kv2_target_passes_the_store_contract_with_a_root_token() {
    let services = Services::get();
    let mount = services.vault_mount(2).await;
    let store = target(&services, &format!("{{ mount: {mount}, path: sync/app }}")).await;
    assert!(store.capabilities().soft_delete && store.capabilities().json_only);
    conformance::run(store.as_ref()).await.unwrap();
}

#[tokio::test]
async fn kv1_target_passes_the_store_contract_at_the_mount_root() {
    let services = Services::get();
    let mount = services.vault_mount(1).await;
    let store = target(&services, &format!("{{ mount: {mount} }}")).await;
    assert!(!store.capabilities().soft_delete);
    conformance::run(store.as_ref()).await.unwrap();
    // The ownership manifest is a secret next to the managed ones, never listed as one of them.
    let (status, manifest) = services
        .vault_call(
            "GET",
            &services.vault_addr,
            &format!("{mount}/.secretsync-manifest"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{manifest}");
    assert_eq!(
        manifest["data"]["managed"],
        json!({}),
        "every managed secret was deleted"
    );
}

/// An AppRole on its own auth mount whose policy covers `mount` only; returns (auth mount,
/// role id, secret id).
async fn approle_for(services: &Services, mount: &str) -> (String, String, String) {
    let id = random_account_id();
    let (auth, policy) = (format!("approle-{id}"), format!("sync-{id}"));
    let root = &services.vault_addr;
    let rules =
        format!("path \"{mount}/*\" {{ capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\"] }}");
    let calls = [
        ("POST", format!("sys/auth/{auth}"), json!({ "type": "approle" })),
        ("PUT", format!("sys/policies/acl/{policy}"), json!({ "policy": rules })),
        (
            "POST",
            format!("auth/{auth}/role/sync"),
            json!({ "token_policies": [policy] }),
        ),
    ];
    for (method, path, body) in calls {
        let (status, answer) = services.vault_call(method, root, &path, Some(body)).await;
        assert!(status < 300, "{method} {path}: {status} {answer}");
    }
    let (_, role) = services
        .vault_call("GET", root, &format!("auth/{auth}/role/sync/role-id"), None)
        .await;
    let (_, secret) = services
        .vault_call("POST", root, &format!("auth/{auth}/role/sync/secret-id"), None)
        .await;
    (
        auth,
        role["data"]["role_id"].as_str().unwrap().to_owned(),
        secret["data"]["secret_id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn kv1_and_kv2_targets_pass_the_store_contract_with_approle() {
    let services = Services::get();
    for version in [1, 2] {
        let mount = services.vault_mount(version).await;
        let (auth, role_id, secret_id) = approle_for(&services, &mount).await;
        let yaml = format!(
            "vault: {{ address: {}, auth: {{ approle: {{ mount: {auth}, role_id: '${{ROLE}}', secret_id: '${{SECRET}}' }} }} }}\n\
             sources: {{ s: {{ file: {{ path: ./unused }} }} }}\n\
             targets: {{ T: {{ imports: [s], vault: {{ mount: {mount}, path: team }} }} }}\n",
            services.vault_addr
        );
        let (pipeline, context) = built(&yaml, [("ROLE", &role_id), ("SECRET", &secret_id)]);
        let store = context.target(&pipeline.targets["T"]).await.unwrap();
        conformance::run(store.as_ref())
            .await
            .unwrap_or_else(|e| panic!("KV v{version}: {e}"));
    }
}

#[tokio::test]
async fn a_wrong_approle_secret_fails_the_build_naming_the_login() {
    let services = Services::get();
    let mount = services.vault_mount(2).await;
    let (auth, role_id, _) = approle_for(&services, &mount).await;
    let yaml = format!(
        "vault: {{ address: {}, auth: {{ approle: {{ mount: {auth}, role_id: '${{ROLE}}', secret_id: wrong }} }} }}\n\
         sources: {{ s: {{ file: {{ path: ./unused }} }} }}\n\
         targets: {{ T: {{ imports: [s], vault: {{ mount: {mount} }} }} }}\n",
        services.vault_addr
    );
    let (pipeline, context) = built(&yaml, [("ROLE", &role_id)]);
    let err = context.target(&pipeline.targets["T"]).await.unwrap_err().to_string();
    assert!(err.contains(&format!("AppRole (auth/{auth}) login failed")), "{err}");
    assert!(err.contains("status 400"), "{err}");
    assert!(!err.contains(&role_id), "credentials never appear in errors: {err}");
}

#[tokio::test]
#[expect(clippy::print_stderr, reason = "a skipped test says why")]
async fn kubernetes_login_uses_the_service_account_token_file() {
    let services = Services::get();
    if services.vault_kind != "emulator" {
        eprintln!(
            "skipped: a real Vault verifies service-account tokens against a Kubernetes API, which the testbed does not run"
        );
        return;
    }
    let mount = services.vault_mount(2).await;
    let id = random_account_id();
    let (auth, policy) = (format!("k8s-{id}"), format!("k8s-sync-{id}"));
    let root = &services.vault_addr;
    let rules =
        format!("path \"{mount}/*\" {{ capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\"] }}");
    for (method, path, body) in [
        ("POST", format!("sys/auth/{auth}"), json!({ "type": "kubernetes" })),
        (
            "POST",
            format!("auth/{auth}/config"),
            json!({ "kubernetes_host": "https://k8s" }),
        ),
        ("PUT", format!("sys/policies/acl/{policy}"), json!({ "policy": rules })),
        (
            "POST",
            format!("auth/{auth}/role/secretsync"),
            json!({ "bound_service_account_names": ["secretsync"], "bound_service_account_namespaces": ["platform"], "token_policies": [policy] }),
        ),
    ] {
        let (status, answer) = services.vault_call(method, root, &path, Some(body)).await;
        assert!(status < 300, "{method} {path}: {status} {answer}");
    }
    let dir = tempfile::tempdir().unwrap();
    let jwt_file = dir.path().join("token");
    let build = |jwt: String| {
        std::fs::write(&jwt_file, jwt).unwrap();
        let yaml = format!(
            "vault: {{ address: {root}, auth: {{ kubernetes: {{ role: secretsync, mount_path: {auth}, jwt_path: '{}' }} }} }}\n\
             sources: {{ s: {{ file: {{ path: ./unused }} }} }}\n\
             targets: {{ T: {{ imports: [s], vault: {{ mount: {mount} }} }} }}\n",
            jwt_file.display()
        );
        built(&yaml, Vec::<(String, String)>::new())
    };
    let (pipe, context) = build(kubernetes_jwt("platform", "secretsync"));
    let store = context.target(&pipe.targets["T"]).await.unwrap();
    store.put(&p("db"), &json_value(&json!({ "k": 1 })), "T").await.unwrap();
    assert!(store.get(&p("db")).await.unwrap().is_some());

    let (pipe, context) = build(kubernetes_jwt("platform", "intruder"));
    let err = context.target(&pipe.targets["T"]).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!("Kubernetes role `secretsync` (auth/{auth}) login failed")),
        "{err}"
    );
    assert!(err.contains("status 403"), "{err}");
}

#[tokio::test]
#[expect(clippy::print_stderr, reason = "a skipped test says why")]
async fn stores_work_inside_a_namespace() {
    let services = Services::get();
    if services.vault_kind != "emulator" {
        eprintln!(
            "skipped: namespaces are a Vault Enterprise feature; the dev-mode Vault in docker-compose.test.yml has none"
        );
        return;
    }
    let ns = format!("ns-{}", random_account_id());
    let root = &services.vault_addr;
    assert_eq!(
        services
            .vault_call("POST", root, &format!("sys/namespaces/{ns}"), None)
            .await
            .0,
        200
    );
    for (mount, version) in [("kv-two", "2"), ("kv-one", "1")] {
        let body = json!({ "type": "kv", "options": { "version": version } });
        let (status, answer) = services
            .vault_call("POST", root, &format!("{ns}/sys/mounts/{mount}"), Some(body))
            .await;
        assert!(status < 300, "{answer}");
    }
    let yaml = format!(
        "vault: {{ address: {root}, namespace: {ns}, auth: {{ token: {{ token: '${{TOKEN}}' }} }} }}\n\
         sources: {{ s: {{ file: {{ path: ./unused }} }} }}\n\
         merge_store: {{ vault: {{ mount: kv-one, prefix: merged }} }}\n\
         targets: {{ T: {{ imports: [s], vault: {{ mount: kv-two, path: app }} }} }}\n"
    );
    let (pipeline, context) = built(&yaml, [("TOKEN", &services.vault_token)]);
    let store = context.target(&pipeline.targets["T"]).await.unwrap();
    assert!(
        store.describe().contains(&format!("(namespace {ns})")),
        "{}",
        store.describe()
    );
    conformance::run(store.as_ref()).await.unwrap();
    let merge = context
        .merge_store(pipeline.merge_store.as_ref().unwrap())
        .await
        .unwrap();
    conformance::run(merge.for_target("T").as_ref()).await.unwrap();

    // The secrets live in the namespace, not at the top level.
    store.put(&p("db"), &json_value(&json!({ "k": 1 })), "T").await.unwrap();
    let (inside, _) = services
        .vault_call("GET", root, &format!("{ns}/kv-two/data/app/db"), None)
        .await;
    let (outside, _) = services.vault_call("GET", root, "kv-two/data/app/db", None).await;
    assert_eq!((inside, outside), (200, 404));
}

#[tokio::test]
async fn merge_store_scopes_pass_the_store_contract_and_mark_complete_results() {
    let services = Services::get();
    for version in [2, 1] {
        let mount = services.vault_mount(version).await;
        let yaml = format!(
            "vault: {{ address: {}, auth: {{ token: {{ token: '${{TOKEN}}' }} }} }}\n\
             sources: {{ s: {{ file: {{ path: ./unused }} }} }}\n\
             merge_store: {{ vault: {{ mount: {mount}, prefix: runs/merged }} }}\n\
             targets: {{ Staging: {{ imports: [s], file: {{ path: ./out }} }} }}\n",
            services.vault_addr
        );
        let (pipeline, context) = built(&yaml, [("TOKEN", &services.vault_token)]);
        let merge = context
            .merge_store(pipeline.merge_store.as_ref().unwrap())
            .await
            .unwrap();
        let scope = merge.for_target("Staging");
        conformance::run(scope.as_ref())
            .await
            .unwrap_or_else(|e| panic!("KV v{version}: {e}"));
        assert!(!merge.has_result("Staging").await.unwrap());
        scope
            .put(&p("a/b"), &json_value(&json!({ "x": 1 })), "Staging")
            .await
            .unwrap();
        merge.commit("Staging").await.unwrap();
        assert!(merge.has_result("Staging").await.unwrap());
        assert!(!merge.has_result("Production").await.unwrap());
        // Live entries only: the suite's deleted secrets linger as soft deletes on KV v2.
        let listed: Vec<String> = scope
            .list()
            .await
            .unwrap()
            .entries
            .iter()
            .filter(|(_, meta)| !meta.pending_deletion)
            .map(|(path, _)| path.to_string())
            .collect();
        assert_eq!(
            listed,
            ["a/b"],
            "KV v{version}: the commit marker is not a merged secret"
        );
        let api = if version == 2 {
            format!("{mount}/data/runs/merged/Staging/a/b")
        } else {
            format!("{mount}/runs/merged/Staging/a/b")
        };
        assert_eq!(
            services.vault_call("GET", &services.vault_addr, &api, None).await.0,
            200
        );
        scope.delete(&p("a/b"), "Staging").await.unwrap();
        if version == 2 {
            let (status, meta) = services
                .vault_call(
                    "GET",
                    &services.vault_addr,
                    &format!("{mount}/metadata/runs/merged/Staging/a/b"),
                    None,
                )
                .await;
            assert_eq!(status, 200, "the history of a merged secret is kept");
            assert_ne!(meta["data"]["versions"]["1"]["deletion_time"], "");
        }
        let (_, read_back) = scope.read_all().await.unwrap();
        assert!(
            read_back.is_empty(),
            "KV v{version}: a deleted merged secret is not read back"
        );
        merge.begin("Staging").await.unwrap();
        assert!(
            !merge.has_result("Staging").await.unwrap(),
            "KV v{version}: begin withdraws the result"
        );
    }
}

#[tokio::test]
async fn sources_read_subtrees_skip_soft_deleted_secrets_and_keep_values_exact() {
    let services = Services::get();
    let mount = services.vault_mount(2).await;
    let exact = json!({ "port": 5432, "ratio": 0.1, "big": 12_345_678_901_234_567_u64, "list": [1, "two", null], "nested": { "deep": { "x": true } } });
    seed(&services, &mount, 2, "team/app/db", exact.clone()).await;
    seed(&services, &mount, 2, "team/app/l2/l3/l4/l5", json!({ "deep": "yes" })).await;
    seed(
        &services,
        &mount,
        2,
        "team/ünï cödé/key with spaces",
        json!({ "k": "v" }),
    )
    .await;
    seed(&services, &mount, 2, "team/old", json!({ "k": "v" })).await;
    seed(&services, &mount, 2, "other/not-read", json!({ "k": "v" })).await;
    let (status, _) = services
        .vault_call("DELETE", &services.vault_addr, &format!("{mount}/data/team/old"), None)
        .await;
    assert_eq!(status, 204);

    let yaml = format!(
        "vault: {{ address: {}, auth: {{ token: {{ token: '${{TOKEN}}' }} }} }}\n\
         sources: {{ s: {{ vault: {{ mount: {mount}/team, paths: [app/, 'ünï cödé/', old] }} }} }}\n\
         targets: {{ T: {{ imports: [s], file: {{ path: ./out }} }} }}\n",
        services.vault_addr
    );
    let (pipeline, context) = built(&yaml, [("TOKEN", &services.vault_token)]);
    let source = context.source(&pipeline.sources["s"]).await.unwrap();
    let (listing, set) = source.read_all().await.unwrap();
    let names: Vec<String> = set.keys().map(ToString::to_string).collect();
    assert_eq!(
        names,
        ["app/db", "app/l2/l3/l4/l5", "ünï cödé/key with spaces"],
        "paths are relative to `{mount}/team`"
    );
    let SecretValue::Json(read) = set[&p("app/db")].as_ref() else {
        panic!("a Vault secret reads as JSON")
    };
    assert_eq!(
        Value::Object(read.clone()),
        exact,
        "numbers, lists and nesting are kept exactly"
    );
    assert_eq!(listing.notes.len(), 1, "{:?}", listing.notes);
    assert!(
        listing.notes[0].contains(&format!("skipped `{mount}/data/team/old`"))
            && listing.notes[0].contains("deleted or destroyed"),
        "{}",
        listing.notes[0]
    );
    assert!(!listing.entries.contains_key(&p("old")));
}

#[tokio::test]
async fn a_source_reads_secrets_while_deeper_folders_are_still_being_listed() {
    use testbed::proxy::Rule;
    let services = Services::get();
    let mount = services.vault_mount(2).await;
    seed(&services, &mount, 2, "top", json!({ "k": "top" })).await;
    seed(&services, &mount, 2, "deep/er/s", json!({ "k": "deep" })).await;
    // The listing of `deep/er/` is answered only once `top` has been read: a store that walks
    // the whole tree before reading anything gets a 504 there instead.
    let read_top = services
        .vault_faults()
        .add(&Rule {
            method: Some("GET".into()),
            path: Some(format!("^/v1/{mount}/data/top(\\?|$)")),
            ..Rule::default()
        })
        .await;
    let deep_listing = Rule {
        path: Some(format!("^/v1/{mount}/metadata/deep/er/?(\\?|$)")),
        ..Rule::default()
    };
    let held_listing = services.vault_faults().add_held(deep_listing, &read_top, 5_000).await;
    let yaml = format!(
        "vault: {{ address: {}, auth: {{ token: {{ token: '${{TOKEN}}' }} }} }}\n\
         sources: {{ s: {{ vault: {{ mount: {mount} }} }} }}\n\
         targets: {{ T: {{ imports: [s], file: {{ path: ./out }} }} }}\n",
        services.vault_proxy
    );
    let (pipeline, context) = built(&yaml, [("TOKEN", &services.vault_token)]);
    let source = context.source(&pipeline.sources["s"]).await.unwrap();
    let (listing, set) = source.read_all().await.unwrap();
    assert_eq!(
        set.keys().map(ToString::to_string).collect::<Vec<_>>(),
        ["deep/er/s", "top"]
    );
    assert_eq!(
        listing.entries.keys().map(ToString::to_string).collect::<Vec<_>>(),
        ["deep/er/s", "top"]
    );
    assert_eq!(
        held_listing.stats().await.fired,
        1,
        "the deep folder was listed once, after the read"
    );
    assert_eq!(read_top.stats().await.matched, 1, "each secret is read once");

    // Limits still fail the whole read, naming where.
    let yaml = format!(
        "vault: {{ address: {}, auth: {{ token: {{ token: '${{TOKEN}}' }} }} }}\n\
         sources: {{ s: {{ vault: {{ mount: {mount}, max_secrets_per_mount: 1 }} }} }}\n\
         targets: {{ T: {{ imports: [s], file: {{ path: ./out }} }} }}\n",
        services.vault_addr
    );
    let (pipeline, context) = built(&yaml, [("TOKEN", &services.vault_token)]);
    let err = context
        .source(&pipeline.sources["s"])
        .await
        .unwrap()
        .read_all()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("more than 1 secrets found"), "{err}");
}

#[tokio::test]
async fn listing_limits_and_missing_filters_are_errors_that_say_where() {
    let services = Services::get();
    let mount = services.vault_mount(1).await;
    for i in 0..3 {
        seed(&services, &mount, 1, &format!("a/b/c/d/s{i}"), json!({ "k": i })).await;
    }
    let build = |block: String| {
        let yaml = format!(
            "vault: {{ address: {}, auth: {{ token: {{ token: '${{TOKEN}}' }} }} }}\n\
             sources: {{ s: {{ vault: {block} }} }}\n\
             targets: {{ T: {{ imports: [s], file: {{ path: ./out }} }} }}\n",
            services.vault_addr
        );
        built(&yaml, [("TOKEN", &services.vault_token)])
    };
    let (pipe, ctx) = build(format!("{{ mount: {mount}, max_traversal_depth: 2 }}"));
    let err = ctx.source(&pipe.sources["s"]).await.unwrap().list().await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Invalid);
    assert!(
        err.to_string()
            .contains(&format!("deeper than 2 folders at `{mount}/a/b/c`")),
        "{err}"
    );

    let (pipe, ctx) = build(format!("{{ mount: {mount}, max_secrets_per_mount: 2 }}"));
    let err = ctx.source(&pipe.sources["s"]).await.unwrap().list().await.unwrap_err();
    assert!(err.to_string().contains("more than 2 secrets found"), "{err}");
    assert!(err.to_string().contains("max_secrets_per_mount"), "{err}");

    let (pipe, ctx) = build(format!("{{ mount: {mount}, paths: [a/nothing-here/] }}"));
    let err = ctx.source(&pipe.sources["s"]).await.unwrap().list().await.unwrap_err();
    assert_eq!(err.class, ErrorClass::NotFound);
    assert!(
        err.to_string()
            .contains(&format!("nothing at `{mount}/a/nothing-here`")),
        "{err}"
    );

    let (pipe, ctx) = build(format!("{{ mount: {mount}, paths: [a/b/c/d/s1] }}"));
    let listed: Vec<String> = ctx
        .source(&pipe.sources["s"])
        .await
        .unwrap()
        .list()
        .await
        .unwrap()
        .entries
        .keys()
        .map(ToString::to_string)
        .collect();
    assert_eq!(listed, ["a/b/c/d/s1"], "a filter naming one secret reads that secret");

    let (pipe, ctx) = build("{ mount: no-such-mount }".to_owned());
    let err = ctx.source(&pipe.sources["s"]).await.unwrap_err();
    assert!(
        err.to_string().contains("no access to the mount `no-such-mount`"),
        "{err}"
    );
    assert!(err.hint().unwrap().contains("vault secrets list"), "{err:?}");
}

#[tokio::test]
async fn ownership_is_recorded_and_unmanaged_secrets_are_never_deleted() {
    let services = Services::get();
    for version in [2, 1] {
        let mount = services.vault_mount(version).await;
        seed(&services, &mount, version, "app/hand-made", json!({ "k": "v" })).await;
        let store = target(&services, &format!("{{ mount: {mount}, path: app }}")).await;
        store
            .put(&p("ours"), &json_value(&json!({ "k": 1 })), "T")
            .await
            .unwrap();
        let listing = store.list().await.unwrap();
        assert_eq!(listing.entries[&p("hand-made")].owner, Owner::Unmanaged);
        assert_eq!(listing.entries[&p("ours")].owner, Owner::Target("T".into()));
        let err = store.delete(&p("hand-made"), "T").await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Conflict, "KV v{version}: {err}");
        let api = if version == 2 {
            format!("{mount}/data/app/hand-made")
        } else {
            format!("{mount}/app/hand-made")
        };
        assert_eq!(
            services.vault_call("GET", &services.vault_addr, &api, None).await.0,
            200
        );
        if version == 2 {
            let (_, meta) = services
                .vault_call("GET", &services.vault_addr, &format!("{mount}/metadata/app/ours"), None)
                .await;
            assert_eq!(
                meta["data"]["custom_metadata"],
                json!({ "managed-by": "secretsync", "secretsync:target": "T" })
            );
        }
    }
}

#[tokio::test]
async fn a_kv2_write_fails_when_the_secret_changed_after_it_was_read() {
    let services = Services::get();
    let mount = services.vault_mount(2).await;
    let store = target(&services, &format!("{{ mount: {mount} }}")).await;
    store.put(&p("db"), &json_value(&json!({ "v": 1 })), "T").await.unwrap();
    store.list().await.unwrap();
    seed(&services, &mount, 2, "db", json!({ "v": "someone else" })).await;
    let err = store
        .put(&p("db"), &json_value(&json!({ "v": 2 })), "T")
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Conflict, "{err}");
    assert!(
        err.to_string().contains("changed in Vault after secretsync read it"),
        "{err}"
    );
    let (_, now) = services
        .vault_call("GET", &services.vault_addr, &format!("{mount}/data/db"), None)
        .await;
    assert_eq!(
        now["data"]["data"],
        json!({ "v": "someone else" }),
        "the other writer's value stands"
    );
}

#[tokio::test]
async fn text_values_are_refused_by_vault_stores_while_planning() {
    let services = Services::get();
    let mount = services.vault_mount(2).await;
    let store = target(&services, &format!("{{ mount: {mount} }}")).await;
    let reason = store
        .check_value(&p("cert"), &SecretValue::Text("-----BEGIN".into()))
        .unwrap_err();
    assert!(reason.contains("Vault KV holds JSON objects"), "{reason}");
    assert!(!reason.contains("BEGIN"), "the value is never quoted: {reason}");
    let reserved = store
        .check_value(&p(".secretsync-manifest"), &json_value(&json!({})))
        .unwrap_err();
    assert!(reserved.contains("reserves"), "{reserved}");
}

/// A private emulator (so the test may expire every token) behind a private counting proxy.
async fn private_vault() -> (testbed::vault::RunningVault, testbed::proxy::RunningProxy) {
    let loopback = "127.0.0.1:0".parse().unwrap();
    let vault = testbed::vault::start(loopback, "private-root").await.unwrap();
    let proxy = testbed::proxy::start(
        loopback,
        &format!("http://{}", vault.addr),
        testbed::proxy::Flavor::Vault,
    )
    .await
    .unwrap();
    (vault, proxy)
}

#[tokio::test]
async fn an_expired_login_token_is_replaced_once_and_the_run_goes_on() {
    let (vault, proxy) = private_vault().await;
    let addr = format!("http://{}", vault.addr);
    let root = vault.root_token.as_str();
    for (method, path, body) in [
        (
            "POST",
            "sys/mounts/kv",
            json!({ "type": "kv", "options": { "version": "2" } }),
        ),
        ("POST", "sys/auth/approle", json!({ "type": "approle" })),
        (
            "PUT",
            "sys/policies/acl/sync",
            json!({ "policy": "path \"kv/*\" { capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\"] }" }),
        ),
        ("POST", "auth/approle/role/ci", json!({ "token_policies": ["sync"] })),
        ("POST", "kv/data/app/db", json!({ "data": { "k": 1 } })),
    ] {
        let (status, answer) = vault_request(&addr, root, method, path, Some(body)).await;
        assert!(status < 300, "{path}: {answer}");
    }
    let role_id = vault_request(&addr, root, "GET", "auth/approle/role/ci/role-id", None)
        .await
        .1["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret_id = vault_request(&addr, root, "POST", "auth/approle/role/ci/secret-id", None)
        .await
        .1["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let yaml = format!(
        "vault: {{ address: 'http://{}', auth: {{ approle: {{ role_id: '${{ROLE}}', secret_id: '${{SECRET}}' }} }} }}\n\
         sources: {{ s: {{ vault: {{ mount: kv }} }} }}\n\
         targets: {{ T: {{ imports: [s], file: {{ path: ./out }} }} }}\n",
        proxy.addr
    );
    let (pipeline, context) = built(&yaml, [("ROLE", &role_id), ("SECRET", &secret_id)]);
    let source = context.source(&pipeline.sources["s"]).await.unwrap();
    let logins = |proxy: &testbed::proxy::RunningProxy| {
        proxy
            .counts()
            .get(&("vault".to_owned(), "POST auth/approle/*".to_owned()))
            .map_or(0, |c| c.requests)
    };
    assert_eq!(logins(&proxy), 1);

    vault_expire_tokens(&addr).await;
    let (_, set) = source.read_all().await.unwrap();
    assert_eq!(set.len(), 1, "the read succeeded after logging in again");
    assert_eq!(logins(&proxy), 2, "exactly one new login");
    let (_, set) = source.read_all().await.unwrap();
    assert_eq!((set.len(), logins(&proxy)), (1, 2), "the new token is kept");
}
