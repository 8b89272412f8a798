//! The binary end to end with a real Vault server (the testbed's OpenBao): sources, merge store
//! and targets, results read back through the Vault HTTP API; namespaces, ACL denials (real
//! policies), a sealed server, JWT login with a GitHub Actions OIDC token, and
//! `validate --check-vault`.

use serde_json::json;
use testbed::identity::{GITHUB_ISSUER, GitHubOidc};
use testbed::openbao::OpenBao;
use testbed::support::{Services, random_account_id, vault_request};

use crate::support::Test;
use crate::support::vault::{Kv, namespace};

/// A scratch folder whose pipeline syncs all of `mount` into the folder `out`.
fn files_from_vault(s: &Services, mount: &str) -> Test {
    Test::new().pipeline(format!(
        "vault: {{ address: {} }}\nsources: {{ all: {{ vault: {{ mount: {mount} }} }} }}\ntargets: {{ Files: {{ imports: [all], file: {{ path: ./out }} }} }}\n",
        s.vault_addr
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_vault_sources_sync_to_file_and_vault_targets_with_inheritance() {
    let s = Services::get();
    let (addr, token) = (s.vault_addr.as_str(), s.vault_token.as_str());
    let (v2, v1, out) = (s.vault_mount(2).await, s.vault_mount(1).await, s.vault_mount(2).await);
    let deep = json!({ "x": [1, 2.5, "three"], "n": { "big": 9_007_199_254_740_993_u64 } });
    let (platform, shared) = (Kv::shared(&s, &v2, 2), Kv::shared(&s, &v1, 1));
    platform
        .seed("platform/db", &json!({ "port": 5432, "user": "app" }))
        .await;
    platform.seed("platform/a/b/c/d/e", &deep).await;
    platform
        .seed("platform/ünï cödé/key with spaces", &json!({ "k": "v" }))
        .await;
    platform.seed("platform/retired", &json!({ "k": "old" })).await;
    let (status, _) = vault_request(addr, token, "DELETE", &format!("{v2}/data/platform/retired"), None).await;
    assert_eq!(status, 204, "soft-deleting the retired secret");
    shared
        .seed("shared/db", &json!({ "user": "from-shared", "pool": { "max": 10 } }))
        .await;
    shared.seed("shared/api/keys", &json!({ "stripe": "sk_test_1" })).await;
    shared.seed("elsewhere/not-read", &json!({ "k": "v" })).await;

    let env = Test::new().vault_token(token).pipeline(format!(
        "vault: {{ address: {addr} }}\n\
             sources:\n\
             \x20 platform: {{ vault: {{ mount: {v2}/platform }} }}\n\
             \x20 shared: {{ vault: {{ mount: {v1}, paths: [shared/] }} }}\n\
             merge_store: {{ vault: {{ mount: {out}, prefix: merged }} }}\n\
             targets:\n\
             \x20 Staging: {{ imports: [platform, shared], file: {{ path: ./staging }} }}\n\
             \x20 Production: {{ imports: [Staging], vault: {{ mount: {out}, path: production }} }}\n"
    ));
    let first = env.args(&["pipeline"]).code(0);
    assert!(
        first.stdout.contains(&format!(
            "warning: source `platform`: vault:{addr}/{v2}/platform: skipped `{v2}/data/platform/retired`"
        )),
        "the soft-deleted secret is reported: {}",
        first.stdout
    );

    // The file target: `platform` paths relative to `{v2}/platform`, `shared` keeps its folder.
    let files = crate::support::files(&env.path().join("staging"));
    assert_eq!(
        files,
        [
            ".secretsync-manifest.json",
            "a/b/c/d/e.json",
            "db.json",
            "shared/api/keys.json",
            "shared/db.json",
            "ünï cödé/key with spaces.json"
        ]
    );
    // Vault keeps numbers as 64-bit floats: `big` (2^53 + 1) is held as 2^53. Targets get
    // exactly what the source Vault holds.
    let (_, held) = vault_request(addr, token, "GET", &format!("{v2}/data/platform/a/b/c/d/e"), None).await;
    let deep = held["data"]["data"].clone();
    assert_eq!(deep["n"]["big"].to_string(), "9007199254740992", "{deep}");
    assert_eq!(env.read_json("staging/a/b/c/d/e.json"), deep);
    assert_eq!(env.read_json("staging/db.json"), json!({ "port": 5432, "user": "app" }));

    // The Vault target, read back over HTTP: values exact, ownership recorded.
    let read = |path: String| async move { vault_request(addr, token, "GET", &path, None).await };
    let (status, db) = read(format!("{out}/data/production/db")).await;
    assert_eq!(
        (status, &db["data"]["data"]),
        (200, &json!({ "port": 5432, "user": "app" }))
    );
    let (_, e) = read(format!("{out}/data/production/a/b/c/d/e")).await;
    assert_eq!(e["data"]["data"], deep, "nested values and numbers are exact");
    let (status, unicode) = read(format!("{out}/data/production/ünï cödé/key with spaces")).await;
    assert_eq!((status, &unicode["data"]["data"]), (200, &json!({ "k": "v" })));
    let (_, meta) = read(format!("{out}/metadata/production/shared/db")).await;
    assert_eq!(meta["data"]["custom_metadata"]["secretsync:target"], "Production");
    assert_eq!(read(format!("{out}/data/production/retired")).await.0, 404);
    let (_, merged) = vault_request(addr, token, "LIST", &format!("{out}/metadata/merged"), None).await;
    // One folder per target, and the revisions `history` lists beside them.
    assert_eq!(
        merged["data"]["keys"],
        json!([".secretsync-history/", "Production/", "Staging/"])
    );

    // A second run has nothing to do.
    let again = env.args(&["pipeline", "--exit-code"]).code(0);
    assert!(
        again.stdout.contains("0 created, 0 updated, 0 deleted, 10 unchanged"),
        "{}",
        again.stdout
    );

    // A change in a source reaches both targets (Production through Staging) in the plan…
    shared
        .seed("shared/db", &json!({ "user": "rotated", "pool": { "max": 10 } }))
        .await;
    let plan = env.args(&["plan", "--exit-code"]).code(1);
    assert_eq!(plan.stdout.matches("~ shared/db").count(), 2, "{}", plan.stdout);
    assert!(!plan.stdout.contains("rotated"), "values are masked: {}", plan.stdout);
    // …and a dry run writes nothing, not even the merge store: `--sync-only` still finds the
    // merged results of the first run and has nothing to do.
    env.args(&["pipeline", "--sync-only", "--exit-code"]).code(0);
    let (_, merged_db) = read(format!("{out}/data/merged/Staging/shared/db")).await;
    assert_eq!(merged_db["data"]["data"]["user"], "from-shared");
}

/// A policy (unique name) and a token carrying it.
async fn token_with_policy(s: &Services, rules: &str) -> (String, String) {
    let policy = format!("p-{}", random_account_id());
    let (status, answer) = s
        .vault_call(
            "PUT",
            &s.vault_addr,
            &format!("sys/policies/acl/{policy}"),
            Some(json!({ "policy": rules })),
        )
        .await;
    assert!(status < 300, "{answer}");
    let (_, created) = s
        .vault_call(
            "POST",
            &s.vault_addr,
            "auth/token/create",
            Some(json!({ "policies": [policy] })),
        )
        .await;
    (policy, created["auth"]["client_token"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_denied_by_acl_names_the_path_and_the_policy_problem() {
    let s = Services::get();
    let mount = s.vault_mount(2).await;
    let kv = Kv::shared(&s, &mount, 2);
    kv.seed("app/db", &json!({ "k": "v" })).await;
    kv.seed("admin/root", &json!({ "k": "v" })).await;
    let (policy, token) = token_with_policy(
        &s,
        &format!("path \"{mount}/metadata/*\" {{ capabilities = [\"list\"] }}\npath \"{mount}/data/app/*\" {{ capabilities = [\"read\"] }}"),
    )
    .await;
    let env = files_from_vault(&s, &mount).vault_token(&token);
    let out = env.args(&["pipeline"]).code(2);
    assert!(
        out.stdout.contains(&format!(
            "permission denied on `{mount}/data/admin/root`: the token's policies (default, {policy}) do not grant `read` there"
        )),
        "{}",
        out.stdout
    );
    assert!(
        !env.exists("out"),
        "nothing is written for a target whose source failed"
    );
    assert!(
        !out.stdout.contains(&token) && !out.stderr.contains(&token),
        "the token never appears"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_named_by_the_run_and_by_validate() {
    let s = Services::get();
    let mount = s.vault_mount(2).await;
    Kv::shared(&s, &mount, 2).seed("app/db", &json!({ "k": "v" })).await;
    let dead = "hvs.not-a-live-token";
    let env = files_from_vault(&s, &mount).vault_token(dead);
    // The token is not looked up before the first call; the refusal is told apart from a policy
    // problem when it comes.
    let out = env.args(&["pipeline"]).code(2);
    assert!(
        out.stdout.contains(&format!(
            "cannot use {}: the Vault token was refused (expired, revoked or wrong)",
            s.vault_addr
        )) && out
            .stdout
            .contains("hint: log in again (`vault login`) and set VAULT_TOKEN"),
        "{}",
        out.snapshot()
    );
    assert!(!env.exists("out"), "nothing is written");

    let checked = env.args(&["validate", "--check-vault"]).code(2);
    assert!(
        checked.stdout.contains(&format!(
            "✗ {}: cannot use {}: the Vault token was refused (expired, revoked or wrong)",
            s.vault_addr, s.vault_addr
        )),
        "{}",
        checked.stdout
    );
    for output in [&out, &checked] {
        assert!(
            !output.stdout.contains(dead) && !output.stderr.contains(dead),
            "the token never appears"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_vault_fails_the_importing_targets_and_touches_nothing() {
    // A private server: sealing the shared one would break tests running in parallel.
    let vault = OpenBao::start("sealed-root").await;
    let (addr, root) = (vault.addr.clone(), vault.root_token.clone());
    vault.mount_kv("src", 2).await;
    vault.mount_kv("dst", 2).await;
    let kv = Kv::new(&addr, &root, "src", 2);
    kv.seed("app/db", &json!({ "password": "first" })).await;
    let env = Test::new().vault_token(&root).pipeline(format!(
        "vault: {{ address: '{addr}' }}\n\
             sources: {{ app: {{ vault: {{ mount: src }} }} }}\n\
             targets:\n\
             \x20 Files: {{ imports: [app], file: {{ path: ./out }} }}\n\
             \x20 Mirror: {{ imports: [app], vault: {{ mount: dst, path: mirror }} }}\n\
             pipeline: {{ resilience: {{ retries: {{ base_delay: 10ms, max_delay: 50ms }} }} }}\n"
    ));
    env.args(&["pipeline"]).code(0);
    let before = env.read("out/app/db.json");

    kv.seed("app/db", &json!({ "password": "second" })).await;
    vault.seal().await;
    let sealed = env.args(&["pipeline", "--exit-code"]).code(2);
    assert_eq!(
        sealed.stdout.matches("Vault is sealed").count(),
        2,
        "both targets name the cause: {}",
        sealed.stdout
    );
    assert!(sealed.stdout.contains("2 targets, 2 failed"), "{}", sealed.stdout);
    assert_eq!(env.read("out/app/db.json"), before, "the file target is untouched");
    assert!(!sealed.stdout.contains("second"), "values never appear");

    let checked = env.args(&["validate", "--check-vault"]).code(2);
    assert!(
        checked
            .stdout
            .contains(&format!("✗ {addr}: Vault is sealed (status 503)")),
        "{}",
        checked.stdout
    );

    vault.unseal().await;
    let (_, mirrored) = vault_request(&addr, &root, "GET", "dst/data/mirror/app/db", None).await;
    assert_eq!(
        mirrored["data"]["data"]["password"], "first",
        "the Vault target is untouched"
    );
    assert_eq!(mirrored["data"]["metadata"]["version"], 1, "and was not written at all");
    let healthy = env.run(&["validate", "--check-vault"]);
    assert_eq!(healthy.code, 0, "unsealed, every check passes: {}", healthy.snapshot());
    env.args(&["pipeline"]).code(0);
    assert!(
        env.read("out/app/db.json").contains("second"),
        "the change arrives once unsealed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_check_vault_reports_each_location() {
    let s = Services::get();
    let mount = s.vault_mount(2).await;
    let (policy, reader) = token_with_policy(
        &s,
        &format!("path \"{mount}/*\" {{ capabilities = [\"read\", \"list\"] }}"),
    )
    .await;
    let env = Test::new();
    env.write(
        "config.yaml",
        format!(
            "vault: {{ address: {} }}\n\
             sources: {{ app: {{ vault: {{ mount: {mount}, paths: [app/] }} }} }}\n\
             targets:\n\
             \x20 Files: {{ imports: [app], file: {{ path: ./out }} }}\n\
             \x20 Mirror: {{ imports: [app], vault: {{ mount: {mount}, path: mirror }} }}\n",
            s.vault_addr
        ),
    );
    let as_root = env
        .args(&["validate", "--check-vault"])
        .var("VAULT_TOKEN", &s.vault_token)
        .code(0);
    assert!(
        as_root.stdout.contains("✓ every Vault check passed"),
        "{}",
        as_root.stdout
    );

    let as_reader = env
        .args(&["validate", "--check-vault"])
        .var("VAULT_TOKEN", &reader)
        .code(2);
    let vault_section = as_reader.stdout.split("\nVault:\n").nth(1).unwrap_or_default();
    let lines: Vec<&str> = std::iter::once("✓ (the Vault section)")
        .chain(vault_section.lines().filter(|l| l.contains('✓') || l.contains('✗')))
        .collect();
    assert!(lines[1].contains(&format!("policies: default, {policy}")), "{lines:?}");
    assert!(
        lines[2].starts_with(&format!("  ✓ source `app`: {mount}/app/ (KV v2)")),
        "{lines:?}"
    );
    assert!(
        lines[3].starts_with(&format!("  ✗ target `Mirror`: {mount}/mirror/ (KV v2): the token's policies (default, {policy}) do not grant create on `{mount}/data/mirror/*`")),
        "{lines:?}"
    );
    assert!(lines[4].contains("1 of 3 Vault checks failed"), "{lines:?}");

    // Without `vault.address` the address comes from VAULT_ADDR; nothing listens there.
    env.write(
        "env.yaml",
        format!("sources: {{ app: {{ vault: {{ mount: {mount} }} }} }}\ntargets: {{ Files: {{ imports: [app], file: {{ path: ./out }} }} }}\n"),
    );
    let nowhere = env
        .args(&["validate", "-c", "env.yaml", "--check-vault"])
        .var("VAULT_TOKEN", "x")
        .var("VAULT_ADDR", "http://127.0.0.1:9")
        .code(2);
    assert!(
        nowhere.stdout.contains("✗ http://127.0.0.1:9: cannot reach Vault"),
        "{}",
        nowhere.stdout
    );
    assert!(
        nowhere
            .stdout
            .contains("✗ source `app`: not checked: http://127.0.0.1:9 cannot be used (see above)"),
        "{}",
        nowhere.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_soft_deleted_from_a_kv2_target_and_restored_when_desired_again() {
    let s = Services::get();
    let mount = s.vault_mount(2).await;
    let env = Test::new().vault_token(&s.vault_token);
    env.write("src/keep.json", r#"{"k": 1}"#);
    env.write("src/gone.json", r#"{"k": 2}"#);
    env.write(
        "config.yaml",
        format!(
            "vault: {{ address: {} }}\n\
             sources: {{ files: {{ file: {{ path: ./src }} }} }}\n\
             targets: {{ Vaulted: {{ imports: [files], vault: {{ mount: {mount}, path: app }} }} }}\n\
             pipeline: {{ sync: {{ delete_orphans: true }} }}\n",
            s.vault_addr
        ),
    );
    env.args(&["pipeline"]).code(0);

    std::fs::remove_file(env.path().join("src/gone.json")).unwrap();
    let deleted = env.args(&["pipeline"]).code(0);
    assert!(deleted.stdout.contains("- gone"), "{}", deleted.stdout);
    let (status, _) = s
        .vault_call("GET", &s.vault_addr, &format!("{mount}/data/app/gone"), None)
        .await;
    assert_eq!(status, 404, "the latest version is deleted");
    let (_, meta) = s
        .vault_call("GET", &s.vault_addr, &format!("{mount}/metadata/app/gone"), None)
        .await;
    assert_ne!(
        meta["data"]["versions"]["1"]["deletion_time"], "",
        "…softly: the version is still there"
    );

    env.write("src/gone.json", r#"{"k": 3}"#);
    let restored = env.args(&["pipeline"]).code(0);
    assert!(restored.stdout.contains("↺ gone"), "{}", restored.stdout);
    let (_, back) = s
        .vault_call("GET", &s.vault_addr, &format!("{mount}/data/app/gone"), None)
        .await;
    assert_eq!(back["data"]["data"], json!({ "k": 3 }));
    let again = env.run(&["pipeline", "--exit-code"]);
    assert_eq!(again.code, 0, "converged: {}", again.snapshot());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ownership_costs_one_manifest_write_per_run_on_kv1_and_one_metadata_write_per_secret_on_kv2() {
    use testbed::proxy::Rule;
    let s = Services::get();
    let (v1, v2) = (s.vault_mount(1).await, s.vault_mount(2).await);
    let env = Test::new().vault_token(&s.vault_token);
    for i in 0..20 {
        env.write(&format!("src/s{i:02}.json"), format!(r#"{{"n": {i}}}"#));
    }
    env.write(
        "config.yaml",
        format!(
            "vault: {{ address: {} }}\n\
             sources: {{ files: {{ file: {{ path: ./src }} }} }}\n\
             targets:\n\
             \x20 One: {{ imports: [files], vault: {{ mount: {v1}, path: app }} }}\n\
             \x20 Two: {{ imports: [files], vault: {{ mount: {v2}, path: app }} }}\n",
            s.vault_proxy
        ),
    );
    let counter = |path: String| Rule {
        service: Some("vault".to_owned()),
        method: Some("POST".to_owned()),
        path: Some(path),
        fault: testbed::proxy::Fault::default(),
        ..Rule::default()
    };
    let faults = s.vault_faults();
    let manifest_writes = faults
        .add(&counter(format!("^/v1/{v1}/app/\\.secretsync-manifest$")))
        .await;
    let metadata_writes = faults.add(&counter(format!("^/v1/{v2}/metadata/app/"))).await;

    env.args(&["pipeline"]).code(0);
    assert_eq!(
        manifest_writes.stats().await.matched,
        1,
        "20 secrets claimed in one manifest write"
    );
    assert_eq!(
        metadata_writes.stats().await.matched,
        20,
        "each new KV v2 secret gets its ownership once"
    );

    for i in 0..5 {
        env.write(
            &format!("src/s{i:02}.json"),
            format!(r#"{{"n": {i}, "changed": true}}"#),
        );
    }
    let second = env.run(&["pipeline"]);
    assert!(second.stdout.contains("0 created, 10 updated"), "{}", second.stdout);
    assert_eq!(
        manifest_writes.stats().await.matched,
        1,
        "updates of owned secrets claim nothing"
    );
    assert_eq!(
        metadata_writes.stats().await.matched,
        20,
        "nor rewrite ownership already recorded"
    );
    let (_, manifest) = s
        .vault_call("GET", &s.vault_addr, &format!("{v1}/app/.secretsync-manifest"), None)
        .await;
    assert_eq!(
        manifest["data"]["managed"].as_object().map(serde_json::Map::len),
        Some(20)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_namespace_feeds_two_team_namespaces_through_a_root_merge_store() {
    let s = Services::get();
    if crate::vault::namespaces_unavailable(&s) {
        return;
    }
    let (addr, token) = (s.vault_addr.as_str(), s.vault_token.as_str());
    let id = random_account_id();
    let (platform, team_a, team_b) = (format!("platform-{id}"), format!("team-a-{id}"), format!("team-b-{id}"));
    for (ns, mount, version) in [(&platform, "shared", 2), (&team_a, "kv", 1), (&team_b, "kv", 2)] {
        namespace(&s, ns, &[(mount, version)]).await;
    }
    let merged = s.vault_mount(2).await;
    let db = json!({ "password": "pl-secret", "port": 5432, "ratio": 0.25, "big": 9_007_199_254_740_993_u64, "tags": ["a", 1, null] });
    let kv = Kv::shared(&s, &format!("{platform}/shared"), 2);
    kv.seed("db", &db).await;
    kv.seed("api/key", &json!({ "token": "pl-token" })).await;

    let env = Test::new().vault_token(token);
    env.write(
        "config.yaml",
        format!(
            "vault: {{ address: {addr}, namespace: {platform} }}\n\
             sources:\n\
             \x20 platform: {{ vault: {{ mount: shared }} }}\n\
             merge_store: {{ vault: {{ mount: {merged}, prefix: merged, namespace: / }} }}\n\
             targets:\n\
             \x20 TeamA: {{ imports: [platform], vault: {{ mount: kv, path: app, namespace: {team_a} }} }}\n\
             \x20 TeamB: {{ imports: [platform], vault: {{ mount: kv, namespace: '{team_b}/' }} }}\n"
        ),
    );
    let checked = env.args(&["validate", "--check-vault"]).code(0);
    for ns in [&platform, &team_a, &team_b] {
        assert!(
            checked.stdout.contains(&format!("✓ {addr} (namespace {ns}): Vault ")),
            "one connection per namespace: {}",
            checked.stdout
        );
    }
    assert!(
        checked.stdout.contains(&format!("✓ {addr}: Vault ")),
        "`namespace: /` puts the merge store in the root: {}",
        checked.stdout
    );
    let first = env.args(&["pipeline"]).code(0);

    // Each target holds exactly what the platform namespace holds (as the server stores it).
    let (_, held) = vault_request(addr, token, "GET", &format!("{platform}/shared/data/db"), None).await;
    let held = held["data"]["data"].to_string();
    let (status, a) = vault_request(addr, token, "GET", &format!("{team_a}/kv/app/db"), None).await;
    assert_eq!(
        (status, a["data"].to_string()),
        (200, held.clone()),
        "KV v1 in {team_a}"
    );
    let (status, b) = vault_request(addr, token, "GET", &format!("{team_b}/kv/data/db"), None).await;
    assert_eq!(
        (status, b["data"]["data"].to_string()),
        (200, held.clone()),
        "KV v2 in {team_b}"
    );
    let (status, m) = vault_request(addr, token, "GET", &format!("{merged}/data/merged/TeamB/db"), None).await;
    assert_eq!(
        (status, m["data"]["data"].to_string()),
        (200, held),
        "the merge store in the root"
    );
    let (_, meta) = vault_request(addr, token, "GET", &format!("{team_b}/kv/metadata/api/key"), None).await;
    assert_eq!(meta["data"]["custom_metadata"]["secretsync:target"], "TeamB");
    // Nothing landed in the other team's namespace or in the root.
    assert_eq!(
        vault_request(addr, token, "GET", &format!("{team_a}/kv/db"), None)
            .await
            .0,
        404
    );
    assert_eq!(
        vault_request(addr, token, "GET", &format!("{team_b}/kv/data/app/db"), None)
            .await
            .0,
        404
    );

    let again = env.run(&["pipeline", "--exit-code"]);
    assert_eq!(again.code, 0, "converged: {}", again.snapshot());
    assert!(
        again.stdout.contains("0 created, 0 updated, 0 deleted, 4 unchanged"),
        "{}",
        again.stdout
    );
    for output in [&first, &again, &checked] {
        for value in ["pl-secret", "pl-token"] {
            assert!(!output.stdout.contains(value) && !output.stderr.contains(value));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_logs_in_with_its_github_oidc_token_and_syncs_with_no_stored_vault_secret() {
    let s = Services::get();
    let (addr, root) = (s.vault_addr.as_str(), s.vault_token.as_str());
    let mount = s.vault_mount(2).await;
    Kv::shared(&s, &mount, 2)
        .seed("src/db", &json!({ "password": "from-ci" }))
        .await;
    let github = GitHubOidc::start("acme/platform").await;
    let auth = crate::vault::jwt_auth_mount(&s, &mount, &github.key, GITHUB_ISSUER).await;
    // What the runner sets in a job with `permissions: { id-token: write }`; no VAULT_TOKEN.
    let env = Test::new()
        .var("GITHUB_ACTIONS", "true")
        .var("ACTIONS_ID_TOKEN_REQUEST_URL", &github.request_url)
        .var("ACTIONS_ID_TOKEN_REQUEST_TOKEN", &github.request_token)
        .pipeline(format!(
            "vault: {{ address: {addr}, auth: {{ jwt: {{ role: sync, mount_path: {auth}, audience: secretsync }} }} }}\n\
             sources: {{ app: {{ vault: {{ mount: {mount}, paths: [src/] }} }} }}\n\
             targets: {{ Mirror: {{ imports: [app], vault: {{ mount: {mount}, path: mirror }} }} }}\n"
        ));
    let out = env.args(&["pipeline", "-o", "human"]).code(0);
    assert_eq!(github.issued(), 1, "one OIDC token for the run");
    let (status, mirrored) = vault_request(addr, root, "GET", &format!("{mount}/data/mirror/src/db"), None).await;
    assert_eq!(
        (status, &mirrored["data"]["data"]["password"]),
        (200, &json!("from-ci"))
    );
    let checked = env.args(&["validate", "--check-vault"]).code(0);
    assert!(
        checked.stdout.contains(&format!(
            "logged in with JWT role `sync` (auth/{auth}, the GitHub Actions OIDC token)"
        )),
        "{}",
        checked.stdout
    );
    for output in [&out, &checked] {
        let all = format!("{}{}", output.stdout, output.stderr);
        assert!(!all.contains(&github.request_token), "the request token never appears");
        assert!(!all.contains("eyJ"), "no JWT appears: {all}");
        assert!(!all.contains("from-ci"), "no value appears");
    }
}

/// The policy blocks of `docs/vault.md` (`# policy: NAME` on their first line), by name.
fn documented_policies() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(crate::support::repo().join("docs/vault.md")).unwrap();
    doc.split("```hcl\n")
        .skip(1)
        .filter_map(|block| {
            let block = block.split("```").next()?;
            let name = block.lines().next()?.strip_prefix("# policy: ")?;
            Some((name.to_owned(), block.to_owned()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policies_in_docs_vault_md_are_enough_and_validate_says_so() {
    let s = Services::get();
    let (addr, root) = (s.vault_addr.as_str(), s.vault_token.as_str());
    let mount = s.vault_mount(2).await;
    let policies = documented_policies();
    let names: Vec<&str> = policies.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["source", "target", "merge store"],
        "docs/vault.md's policy blocks"
    );
    let id = random_account_id();
    let mut granted = Vec::new();
    for (name, rules) in &policies {
        let policy = format!("{}-{id}", name.replace(' ', "-"));
        let rules = rules.replace("\"kv/", &format!("\"{mount}/"));
        let (status, answer) = s
            .vault_call(
                "PUT",
                addr,
                &format!("sys/policies/acl/{policy}"),
                Some(json!({ "policy": rules })),
            )
            .await;
        assert!(status < 300, "{name}: {answer}");
        granted.push(policy);
    }
    let (_, created) = s
        .vault_call("POST", addr, "auth/token/create", Some(json!({ "policies": granted })))
        .await;
    let token = created["auth"]["client_token"].as_str().unwrap().to_owned();
    let kv = Kv::shared(&s, &mount, 2);
    kv.seed("app/db", &json!({ "password": "v1" })).await;
    kv.seed("app/api", &json!({ "key": "k1" })).await;
    let env = Test::new().vault_token(&token);
    env.write(
        "config.yaml",
        format!(
            "vault: {{ address: {addr} }}\n\
             sources: {{ app: {{ vault: {{ mount: {mount}, paths: [app/] }} }} }}\n\
             merge_store: {{ vault: {{ mount: {mount}, prefix: merged }} }}\n\
             targets: {{ Mirror: {{ imports: [app], vault: {{ mount: {mount}, path: synced }} }} }}\n\
             pipeline: {{ sync: {{ delete_orphans: true }} }}\n"
        ),
    );
    env.args(&["validate", "--check-vault"]).code(0);
    let step = |what: &str, expect: &str| {
        let out = env.run(&["pipeline"]);
        assert_eq!(out.code, 0, "{what}: {}", out.snapshot());
        assert!(out.stdout.contains(expect), "{what}: {}", out.stdout);
    };
    step("create", "2 created");
    kv.seed("app/db", &json!({ "password": "v2" })).await;
    step("update", "1 updated");
    let (status, _) = vault_request(addr, root, "DELETE", &format!("{mount}/metadata/app/api"), None).await;
    assert_eq!(status, 204);
    step("delete", "1 deleted");
    kv.seed("app/api", &json!({ "key": "k2" })).await;
    step("restore", "↺ app/api");
    let again = env.run(&["pipeline", "--exit-code"]);
    assert_eq!(again.code, 0, "converged: {}", again.snapshot());
    let (_, api) = vault_request(addr, root, "GET", &format!("{mount}/data/synced/app/api"), None).await;
    assert_eq!(api["data"]["data"]["key"], "k2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_vault_would_round_is_refused_while_planning_and_spelling_changes_converge() {
    let s = Services::get();
    let mount = s.vault_mount(2).await;
    let env = Test::new().vault_token(&s.vault_token);
    env.write("src/db.json", r#"{"id": 12345678901234567, "port": 5432.0}"#);
    env.write("src/api.json", r#"{"ratio": 1e-1, "n": 1.0}"#);
    env.write(
        "config.yaml",
        format!(
            "vault: {{ address: {} }}\n\
             sources: {{ files: {{ file: {{ path: ./src }} }} }}\n\
             targets: {{ Vaulted: {{ imports: [files], vault: {{ mount: {mount} }} }} }}\n",
            s.vault_addr
        ),
    );
    let out = env.args(&["pipeline"]).code(2);
    assert!(
        out.stdout.contains("the number at `id` in `db`"),
        "the plan names the key: {}",
        out.stdout
    );
    assert!(!out.stdout.contains("12345678901234567"), "{}", out.stdout);
    let (status, _) = s
        .vault_call("GET", &s.vault_addr, &format!("{mount}/data/db"), None)
        .await;
    assert_eq!(status, 404, "nothing rounded was written");

    // Fixed as the message says; `1.0` and `1e-1` come back as `1` and `0.1` and still
    // compare equal, so the second run has nothing to do.
    env.write("src/db.json", r#"{"id": "12345678901234567", "port": 5432.0}"#);
    env.args(&["pipeline"]).code(0);
    let again = env.run(&["pipeline", "--exit-code"]);
    assert_eq!(again.code, 0, "converged: {}", again.snapshot());
}

/// A check-and-set write whose reply was lost after OpenBao applied it: the retry meets a
/// version mismatch, finds its own value there, and counts the write as done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_reply_to_a_check_and_set_write_still_converges() {
    use testbed::proxy::Rule;
    let s = Services::get();
    let v2 = s.vault_mount(2).await;
    let env = Test::new().vault_token(&s.vault_token);
    env.write("src/db.json", r#"{"n": 1}"#);
    env.write(
        "config.yaml",
        format!(
            "vault: {{ address: {} }}\n\
             sources: {{ files: {{ file: {{ path: ./src }} }} }}\n\
             targets: {{ T: {{ imports: [files], vault: {{ mount: {v2}, path: app }} }} }}\n",
            s.vault_proxy
        ),
    );
    env.args(&["pipeline"]).code(0);
    env.write("src/db.json", r#"{"n": 2}"#);
    let lost = s
        .vault_faults()
        .add(&Rule {
            service: Some("vault".to_owned()),
            method: Some("POST".to_owned()),
            ..Rule::lose_one_reply(None, Some(format!("^/v1/{v2}/data/app/db$")))
        })
        .await;
    env.args(&["pipeline"]).code(0);
    assert_eq!(lost.stats().await.fired, 1, "the reply was lost once");
    let again = env.run(&["pipeline", "--exit-code"]);
    assert_eq!(again.code, 0, "converged: {}", again.snapshot());
    let (_, read) = s
        .vault_call("GET", &s.vault_addr, &format!("{v2}/data/app/db"), None)
        .await;
    assert_eq!(read["data"]["data"], json!({ "n": 2 }));
    assert_eq!(read["data"]["metadata"]["version"], 2, "one write, no second version");
}
