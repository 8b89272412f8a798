//! The Vault store against the testbed's real Vault server (OpenBao, or HashiCorp Vault from
//! `docker-compose.test.yml`): the store contract for KV v1 and v2, as a target and as a merge
//! store, with a root token, AppRole, Kubernetes and JWT logins, inside namespaces; listing,
//! ownership, CAS and a real token expiry. Stores are built the way the binary builds them: from
//! a pipeline file, through `BuildContext` (address, auth, mount preflight). Each test works in
//! its own mount (and auth mount); a test that needs the whole server starts a private one.

use std::sync::Arc;

use secretsync::model::SecretValue;
use secretsync::store::{ErrorClass, Owner, WritableStore, conformance};
use serde_json::{Value, json};
use testbed::identity::{GitHubOidc, KubernetesApi, SigningKey, UNUSED_CA_PEM, now};
use testbed::openbao::OpenBao;
use testbed::support::{Services, random_account_id};

use crate::support::vault::{Kv, namespace};
use crate::support::{built, p};

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
        .target(&pipeline.targets["T"], None)
        .await
        .unwrap_or_else(|e| panic!("building the Vault target failed: {e}"))
}

fn json_value(value: &Value) -> SecretValue {
    SecretValue::from_string(value.to_string())
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
    let role = (
        "POST",
        "role/sync".to_owned(),
        json!({ "token_policies": ["{policy}"] }),
    );
    let (auth, _) = auth_mount(services, "approle", mount, &[role]).await;
    let (role_id, secret_id) = approle_credentials(services, &auth).await;
    (auth, role_id, secret_id)
}

/// The role id and a new secret id of role `sync` on the AppRole mount `auth`.
async fn approle_credentials(services: &Services, auth: &str) -> (String, String) {
    let root = &services.vault_addr;
    let (_, role) = services
        .vault_call("GET", root, &format!("auth/{auth}/role/sync/role-id"), None)
        .await;
    let (_, secret) = services
        .vault_call("POST", root, &format!("auth/{auth}/role/sync/secret-id"), None)
        .await;
    (
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
        let store = context.target(&pipeline.targets["T"], None).await.unwrap();
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
    let err = context
        .target(&pipeline.targets["T"], None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("AppRole (auth/{auth}) login failed")), "{err}");
    assert!(err.contains("status 400"), "{err}");
    assert!(!err.contains(&role_id), "credentials never appear in errors: {err}");
}

/// An auth mount `{kind}-{id}` on the shared Vault, with a policy covering `mount` only, set up
/// by `setup` (calls under `auth/{kind}-{id}/`; `{policy}` in a body stands for the policy's
/// name); returns the auth mount's path and the policy's name.
async fn auth_mount(services: &Services, kind: &str, mount: &str, setup: &[(&str, String, Value)]) -> (String, String) {
    let id = random_account_id();
    let (auth, policy) = (format!("{kind}-{id}"), format!("sync-{id}"));
    let rules =
        format!("path \"{mount}/*\" {{ capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\"] }}");
    let mut calls = vec![
        ("POST", format!("sys/auth/{auth}"), json!({ "type": kind })),
        ("PUT", format!("sys/policies/acl/{policy}"), json!({ "policy": rules })),
    ];
    calls.extend(setup.iter().map(|(method, path, body)| {
        let body = serde_json::from_str(&body.to_string().replace("{policy}", &policy)).unwrap();
        (*method, format!("auth/{auth}/{path}"), body)
    }));
    for (method, path, body) in calls {
        let (status, answer) = services
            .vault_call(method, &services.vault_addr, &path, Some(body))
            .await;
        assert!(status < 300, "{method} {path}: {status} {answer}");
    }
    (auth, policy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(clippy::print_stderr, reason = "a skipped test says why")]
async fn kubernetes_login_uses_the_service_account_token_file() {
    let services = Services::get();
    if services.vault_kind == "vault" {
        eprintln!(
            "skipped: Vault in docker compose cannot reach the TokenReview stand-in on the host's loopback (OpenBao, the default testbed, runs on the host)"
        );
        return;
    }
    let mount = services.vault_mount(2).await;
    // Vault asks the cluster's TokenReview API whether a token is genuine; the stand-in answers
    // for the tokens it signed. Everything else is the real server's Kubernetes auth.
    let kubernetes = KubernetesApi::start().await;
    let (auth, _) = auth_mount(
        &services,
        "kubernetes",
        &mount,
        &[
            (
                "POST",
                "config".to_owned(),
                json!({ "kubernetes_host": kubernetes.url, "kubernetes_ca_cert": UNUSED_CA_PEM, "disable_local_ca_jwt": true }),
            ),
            (
                "POST",
                "role/secretsync".to_owned(),
                json!({ "bound_service_account_names": ["secretsync"], "bound_service_account_namespaces": ["platform"], "token_policies": ["{policy}"] }),
            ),
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let jwt_file = dir.path().join("token");
    let build = |jwt: String| {
        std::fs::write(&jwt_file, jwt).unwrap();
        let yaml = format!(
            "vault: {{ address: {}, auth: {{ kubernetes: {{ role: secretsync, mount_path: {auth}, jwt_path: '{}' }} }} }}\n\
             sources: {{ s: {{ file: {{ path: ./unused }} }} }}\n\
             targets: {{ T: {{ imports: [s], vault: {{ mount: {mount} }} }} }}\n",
            services.vault_addr,
            jwt_file.display()
        );
        built(&yaml, Vec::<(String, String)>::new())
    };
    let (pipe, context) = build(kubernetes.service_account_token("platform", "secretsync"));
    let store = context.target(&pipe.targets["T"], None).await.unwrap();
    store.put(&p("db"), &json_value(&json!({ "k": 1 })), "T").await.unwrap();
    assert!(store.get(&p("db")).await.unwrap().is_some());
    assert_eq!(kubernetes.reviews(), 1, "Vault reviewed the token with the cluster");

    // A genuine token of another service account: the role does not bind it.
    let intruder = kubernetes.service_account_token("platform", "intruder");
    let (pipe, context) = build(intruder.clone());
    let err = context.target(&pipe.targets["T"], None).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!("Kubernetes role `secretsync` (auth/{auth}) login failed")),
        "{err}"
    );
    assert!(err.contains("status 403"), "{err}");
    assert!(!err.contains(&intruder), "the token never appears: {err}");
}

/// Whether the testbed's Vault lacks namespaces (HashiCorp Vault's open-source dev mode, with
/// `--real-vault`); then says so, and the calling test returns: it is skipped, not passed.
#[expect(clippy::print_stderr, reason = "a skipped test says why")]
pub(crate) fn namespaces_unavailable(services: &Services) -> bool {
    let unavailable = services.vault_kind == "vault";
    if unavailable {
        eprintln!(
            "skipped: namespaces are a Vault Enterprise feature; the dev-mode Vault in docker-compose.test.yml has none (OpenBao, the default testbed, has them)"
        );
    }
    unavailable
}

#[tokio::test]
async fn stores_work_inside_a_namespace() {
    let services = Services::get();
    if namespaces_unavailable(&services) {
        return;
    }
    let ns = format!("ns-{}", random_account_id());
    let root = &services.vault_addr;
    namespace(&services, &ns, &[("kv-two", 2), ("kv-one", 1)]).await;
    let yaml = format!(
        "vault: {{ address: {root}, namespace: {ns}, auth: {{ token: {{ token: '${{TOKEN}}' }} }} }}\n\
         sources: {{ s: {{ file: {{ path: ./unused }} }} }}\n\
         merge_store: {{ vault: {{ mount: kv-one, prefix: merged }} }}\n\
         targets: {{ T: {{ imports: [s], vault: {{ mount: kv-two, path: app }} }} }}\n"
    );
    let (pipeline, context) = built(&yaml, [("TOKEN", &services.vault_token)]);
    let store = context.target(&pipeline.targets["T"], None).await.unwrap();
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
        conformance::history_records(merge.as_ref())
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
    let kv = Kv::shared(&services, &mount, 2);
    kv.seed("team/app/db", &exact).await;
    kv.seed("team/app/l2/l3/l4/l5", &json!({ "deep": "yes" })).await;
    kv.seed("team/ünï cödé/key with spaces", &json!({ "k": "v" })).await;
    kv.seed("team/old", &json!({ "k": "v" })).await;
    kv.seed("other/not-read", &json!({ "k": "v" })).await;
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
    let source = context.source(&pipeline.sources["s"], false).await.unwrap();
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
    // Vault parses JSON numbers into 64-bit floats: `big` is stored as 12345678901234568. What
    // secretsync reads is exactly what the server holds, number spelling included.
    let (_, stored) = services
        .vault_call("GET", &services.vault_addr, &format!("{mount}/data/team/app/db"), None)
        .await;
    assert_eq!(
        serde_json::to_string(&Value::Object(read.clone())).unwrap(),
        serde_json::to_string(&stored["data"]["data"]).unwrap(),
        "numbers, lists and nesting are read exactly as the server holds them"
    );
    assert_eq!(
        (&read["port"], &read["ratio"], &read["nested"], &read["list"]),
        (&exact["port"], &exact["ratio"], &exact["nested"], &exact["list"])
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
    let kv = Kv::shared(&services, &mount, 2);
    kv.seed("top", &json!({ "k": "top" })).await;
    kv.seed("deep/er/s", &json!({ "k": "deep" })).await;
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
    let source = context.source(&pipeline.sources["s"], false).await.unwrap();
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
        .source(&pipeline.sources["s"], false)
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
        Kv::shared(&services, &mount, 1)
            .seed(&format!("a/b/c/d/s{i}"), &json!({ "k": i }))
            .await;
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
    let err = ctx
        .source(&pipe.sources["s"], false)
        .await
        .unwrap()
        .list()
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Invalid);
    assert!(
        err.to_string()
            .contains(&format!("deeper than 2 folders at `{mount}/a/b/c`")),
        "{err}"
    );

    let (pipe, ctx) = build(format!("{{ mount: {mount}, max_secrets_per_mount: 2 }}"));
    let err = ctx
        .source(&pipe.sources["s"], false)
        .await
        .unwrap()
        .list()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("more than 2 secrets found"), "{err}");
    assert!(err.to_string().contains("max_secrets_per_mount"), "{err}");

    let (pipe, ctx) = build(format!("{{ mount: {mount}, paths: [a/nothing-here/] }}"));
    let err = ctx
        .source(&pipe.sources["s"], false)
        .await
        .unwrap()
        .list()
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::NotFound);
    assert!(
        err.to_string()
            .contains(&format!("nothing at `{mount}/a/nothing-here`")),
        "{err}"
    );

    let (pipe, ctx) = build(format!("{{ mount: {mount}, paths: [a/b/c/d/s1] }}"));
    let listed = crate::support::listed(ctx.source(&pipe.sources["s"], false).await.unwrap().as_ref()).await;
    assert_eq!(listed, ["a/b/c/d/s1"], "a filter naming one secret reads that secret");

    let (pipe, ctx) = build("{ mount: no-such-mount }".to_owned());
    let err = ctx.source(&pipe.sources["s"], false).await.unwrap_err();
    assert!(
        err.to_string().contains("no access to the mount `no-such-mount`"),
        "{err}"
    );
    assert!(err.hint.as_deref().unwrap().contains("vault secrets list"), "{err:?}");
}

#[tokio::test]
async fn ownership_is_recorded_and_unmanaged_secrets_are_never_deleted() {
    let services = Services::get();
    for version in [2, 1] {
        let mount = services.vault_mount(version).await;
        Kv::shared(&services, &mount, version)
            .seed("app/hand-made", &json!({ "k": "v" }))
            .await;
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
    Kv::shared(&services, &mount, 2)
        .seed("db", &json!({ "v": "someone else" }))
        .await;
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

    // Vault keeps numbers as float64: a number it would change is refused, naming the key; one
    // it holds exactly (whatever its spelling) is fine.
    let numbers = |text: &str| SecretValue::from_string(text.to_owned());
    let changed = store
        .check_value(
            &p("db"),
            &numbers(r#"{"db": {"ports": [5432, 12345678901234567]}, "ok": 1.0}"#),
        )
        .unwrap_err();
    assert!(changed.contains("the number at `db.ports[1]` in `db`"), "{changed}");
    assert!(changed.contains("write it as a string"), "{changed}");
    assert!(
        !changed.contains("12345678901234567"),
        "the value is never quoted: {changed}"
    );
    store
        .check_value(
            &p("db"),
            &numbers(r#"{"port": 5432, "ratio": 0.1, "n": 1.0, "e": 1e3}"#),
        )
        .unwrap();
}

/// Polls `condition` (every 100 ms, for at most `limit`) until it holds: for states a real
/// server reaches in its own time, such as a token's expiry.
async fn wait_for<F, Fut>(what: &str, limit: std::time::Duration, condition: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + limit;
    while !condition().await {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_login_token_is_replaced_once_and_the_run_goes_on() {
    // A private server, so that its token store holds only this test's tokens.
    let vault = OpenBao::start("expiry-root").await;
    let proxy = testbed::proxy::start(
        "127.0.0.1:0".parse().unwrap(),
        &vault.addr,
        testbed::proxy::Flavor::Vault,
    )
    .await
    .unwrap();
    vault.mount_kv("kv", 2).await;
    for (method, path, body) in [
        ("POST", "sys/auth/approle", json!({ "type": "approle" })),
        (
            "PUT",
            "sys/policies/acl/sync",
            json!({ "policy": "path \"kv/*\" { capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\"] }" }),
        ),
        // Tokens of this role live two seconds (a real TTL, enforced by the server).
        (
            "POST",
            "auth/approle/role/ci",
            json!({ "token_policies": ["sync"], "token_ttl": "2s", "token_max_ttl": "2s" }),
        ),
        ("POST", "kv/data/app/db", json!({ "data": { "k": 1 } })),
    ] {
        let (status, answer) = vault.call(method, path, Some(body)).await;
        assert!(status < 300, "{path}: {answer}");
    }
    let role_id = vault.call("GET", "auth/approle/role/ci/role-id", None).await.1["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret_id = vault.call("POST", "auth/approle/role/ci/secret-id", None).await.1["data"]["secret_id"]
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
    let source = context.source(&pipeline.sources["s"], false).await.unwrap();
    let logins = |proxy: &testbed::proxy::RunningProxy| {
        proxy
            .counts()
            .get(&("vault".to_owned(), "POST auth/approle/*".to_owned()))
            .map_or(0, |c| c.requests)
    };
    assert_eq!(logins(&proxy), 1);

    // The one AppRole token on this server is the store's; wait until the server lets it die.
    // (If the machine was slow enough for it to be gone already, there is nothing to wait for.)
    let (_, listed) = vault.call("LIST", "auth/token/accessors", None).await;
    let lookup = |accessor: &Value| {
        vault.call(
            "POST",
            "auth/token/lookup-accessor",
            Some(json!({ "accessor": accessor })),
        )
    };
    let mut ours = Vec::new();
    for accessor in listed["data"]["keys"].as_array().unwrap() {
        if lookup(accessor).await.1["data"]["meta"]["role_name"] == "ci" {
            ours.push(accessor.clone());
        }
    }
    assert!(ours.len() <= 1, "the store logged in once: {listed}");
    for accessor in ours {
        wait_for(
            "the login token's expiry",
            std::time::Duration::from_secs(30),
            || async { lookup(&accessor).await.0 >= 400 },
        )
        .await;
    }
    // The next login gets a long-lived token, so nothing expires again during the test.
    let (status, answer) = vault
        .call(
            "POST",
            "auth/approle/role/ci",
            Some(json!({ "token_ttl": "1h", "token_max_ttl": "1h" })),
        )
        .await;
    assert!(status < 300, "{answer}");

    let (_, set) = source.read_all().await.unwrap();
    assert_eq!(set.len(), 1, "the read succeeded after logging in again");
    assert_eq!(logins(&proxy), 2, "exactly one new login");
    let (_, set) = source.read_all().await.unwrap();
    assert_eq!((set.len(), logins(&proxy)), (1, 2), "the new token is kept");
}

/// A JWT auth mount trusting `key` (`issuer` as the bound issuer), with role `sync` for tokens
/// with audience `secretsync` from the repository `acme/platform`; its policy covers `mount`.
pub(crate) async fn jwt_auth_mount(services: &Services, mount: &str, key: &SigningKey, issuer: &str) -> String {
    let (auth, _) = auth_mount(
        services,
        "jwt",
        mount,
        &[
            (
                "POST",
                "config".to_owned(),
                json!({ "jwt_validation_pubkeys": [key.public_pem()], "bound_issuer": issuer }),
            ),
            (
                "POST",
                "role/sync".to_owned(),
                json!({
                    "role_type": "jwt",
                    "user_claim": "sub",
                    "bound_audiences": ["secretsync"],
                    "bound_claims": { "repository": "acme/platform" },
                    "token_policies": ["{policy}"],
                }),
            ),
        ],
    )
    .await;
    auth
}

/// Claims of a CI job's JWT for `audience`, issued `age` seconds ago and valid for 5 minutes.
fn ci_claims(audience: &str, age: u64) -> Value {
    let issued = now() - age;
    json!({
        "iss": "https://ci.example.com",
        "aud": audience,
        "sub": "repo:acme/platform:ref:refs/heads/main",
        "repository": "acme/platform",
        "iat": issued,
        "nbf": issued,
        "exp": issued + 300,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_login_reads_the_token_from_a_file_or_a_variable_and_refusals_name_the_cause_not_the_token() {
    let services = Services::get();
    let mount = services.vault_mount(2).await;
    let key = SigningKey::generate();
    let auth = jwt_auth_mount(&services, &mount, &key, "https://ci.example.com").await;
    let yaml = |jwt_from: &str| {
        format!(
            "vault: {{ address: {}, auth: {{ jwt: {{ role: sync, mount_path: {auth}, {jwt_from} }} }} }}\n\
             sources: {{ s: {{ file: {{ path: ./unused }} }} }}\n\
             targets: {{ T: {{ imports: [s], vault: {{ mount: {mount}, path: ci }} }} }}\n",
            services.vault_addr
        )
    };
    let from_variable = |jwt: &str| built(&yaml("jwt_env: CI_JOB_JWT"), [("CI_JOB_JWT", jwt)]);

    let good = key.sign(&ci_claims("secretsync", 0));
    let (pipeline, context) = from_variable(&good);
    let store = context.target(&pipeline.targets["T"], None).await.unwrap();
    conformance::run(store.as_ref()).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwt");
    std::fs::write(&file, format!("{good}\n")).unwrap();
    let (pipeline, context) = built(
        &yaml(&format!("jwt_path: '{}'", file.display())),
        Vec::<(String, String)>::new(),
    );
    let store = context.target(&pipeline.targets["T"], None).await.unwrap();
    store.put(&p("db"), &json_value(&json!({ "k": 1 })), "T").await.unwrap();

    let named = format!("JWT role `sync` (auth/{auth}, the JWT in $CI_JOB_JWT) login failed");
    let refused = |jwt: String, cause: &'static str| {
        let (pipeline, context) = from_variable(&jwt);
        let named = &named;
        async move {
            let err = context
                .target(&pipeline.targets["T"], None)
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains(named.as_str()), "{err}");
            assert!(
                err.to_lowercase().contains(cause),
                "the server's reason ({cause}): {err}"
            );
            assert!(!err.contains(&jwt), "the JWT never appears: {err}");
            for part in jwt.split('.') {
                assert!(!err.contains(part), "no part of the JWT appears: {err}");
            }
        }
    };
    refused(key.sign(&ci_claims("someone-else", 0)), "aud").await;
    refused(key.sign(&ci_claims("secretsync", 3600)), "expired").await;
    refused(SigningKey::generate().sign(&ci_claims("secretsync", 0)), "signature").await;

    let (pipeline, context) = built(&yaml("jwt_env: CI_JOB_JWT"), Vec::<(String, String)>::new());
    let err = context.target(&pipeline.targets["T"], None).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("`vault.auth.jwt.jwt_env` names $CI_JOB_JWT, which is not set"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_login_in_github_actions_asks_the_runner_for_an_oidc_token_with_the_configured_audience() {
    let services = Services::get();
    let mount = services.vault_mount(2).await;
    let github = GitHubOidc::start("acme/platform").await;
    let auth = jwt_auth_mount(&services, &mount, &github.key, testbed::identity::GITHUB_ISSUER).await;
    let yaml = |audience: &str| {
        format!(
            "vault: {{ address: {}, auth: {{ jwt: {{ role: sync, mount_path: {auth}{audience} }} }} }}\n\
             sources: {{ s: {{ file: {{ path: ./unused }} }} }}\n\
             targets: {{ T: {{ imports: [s], vault: {{ mount: {mount} }} }} }}\n",
            services.vault_addr
        )
    };
    let runner = [
        ("ACTIONS_ID_TOKEN_REQUEST_URL", github.request_url.as_str()),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", github.request_token.as_str()),
    ];
    let (pipeline, context) = built(&yaml(", audience: secretsync"), runner);
    let store = context.target(&pipeline.targets["T"], None).await.unwrap();
    store.put(&p("db"), &json_value(&json!({ "k": 1 })), "T").await.unwrap();
    assert_eq!(github.issued(), 1, "one token, asked of the runner");

    // GitHub's default audience (the owner's URL) is not one the role accepts.
    let (pipeline, context) = built(&yaml(""), runner);
    let err = context
        .target(&pipeline.targets["T"], None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(", the GitHub Actions OIDC token) login failed") && err.to_lowercase().contains("aud"),
        "{err}"
    );
    assert!(!err.contains(&github.request_token), "{err}");

    // Outside a job with `id-token: write`, the variables are missing.
    let (pipeline, context) = built(&yaml(", audience: secretsync"), Vec::<(String, String)>::new());
    let err = context.target(&pipeline.targets["T"], None).await.unwrap_err();
    assert!(err.to_string().contains("ACTIONS_ID_TOKEN_REQUEST_URL"), "{err}");
    assert!(err.hint.as_deref().unwrap().contains("id-token: write"), "{err:?}");

    // A wrong request token: the runner's service refuses it, and the message says so.
    let (pipeline, context) = built(
        &yaml(", audience: secretsync"),
        [
            ("ACTIONS_ID_TOKEN_REQUEST_URL", github.request_url.as_str()),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "not-the-request-token"),
        ],
    );
    let err = context
        .target(&pipeline.targets["T"], None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot get the GitHub Actions OIDC token: the token service answered status 401"),
        "{err}"
    );
}

#[tokio::test]
async fn one_login_in_the_root_namespace_serves_stores_in_two_child_namespaces() {
    let services = Services::get();
    if namespaces_unavailable(&services) {
        return;
    }
    let root = &services.vault_addr;
    let id = random_account_id();
    let (team_a, team_b) = (format!("team-a-{id}"), format!("team-b-{id}"));
    for ns in [&team_a, &team_b] {
        namespace(&services, ns, &[("kv", 2)]).await;
    }
    // The AppRole and its policy live in the root namespace; the policy grants the child
    // namespaces' paths, as a platform team's would. Its secret id works once: a second login
    // (one per namespace) would be refused.
    let (auth, policy) = auth_mount(
        &services,
        "approle",
        "unused",
        &[(
            "POST",
            "role/sync".to_owned(),
            json!({ "token_policies": ["{policy}"], "secret_id_num_uses": 1 }),
        )],
    )
    .await;
    let rules = format!(
        "path \"{team_a}/kv/*\" {{ capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\"] }}\n\
         path \"{team_b}/kv/*\" {{ capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\"] }}"
    );
    let (status, answer) = services
        .vault_call(
            "PUT",
            root,
            &format!("sys/policies/acl/{policy}"),
            Some(json!({ "policy": rules })),
        )
        .await;
    assert!(status < 300, "{answer}");
    let (role_id, secret_id) = approle_credentials(&services, &auth).await;
    let yaml = format!(
        "vault: {{ address: {root}, auth: {{ approle: {{ mount: {auth}, role_id: '${{ROLE}}', secret_id: '${{SECRET}}' }} }} }}\n\
         sources: {{ s: {{ file: {{ path: ./unused }} }} }}\n\
         targets:\n\
         \x20 A: {{ imports: [s], vault: {{ mount: kv, path: app, namespace: {team_a} }} }}\n\
         \x20 B: {{ imports: [s], vault: {{ mount: kv, path: app, namespace: {team_b} }} }}\n"
    );
    let (pipeline, context) = built(&yaml, [("ROLE", &role_id), ("SECRET", &secret_id)]);
    for (target, ns) in [("A", &team_a), ("B", &team_b)] {
        let store = context
            .target(&pipeline.targets[target], None)
            .await
            .unwrap_or_else(|e| panic!("{target}: {e}"));
        assert!(
            store.describe().contains(&format!("(namespace {ns})")),
            "{}",
            store.describe()
        );
        conformance::run(store.as_ref()).await.unwrap();
        store
            .put(&p("db"), &json_value(&json!({ "k": 1 })), target)
            .await
            .unwrap();
        let (inside, _) = services
            .vault_call("GET", root, &format!("{ns}/kv/data/app/db"), None)
            .await;
        assert_eq!(inside, 200, "{target}'s secret is in {ns}");
    }
}
