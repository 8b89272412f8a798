//! The binary end to end with Vault: sources, merge store and targets on the testbed's Vault,
//! results read back through the Vault HTTP API; ACL denials, a sealed Vault, and
//! `validate --check-vault`.

use serde_json::{Value, json};
use testbed::support::{Services, random_account_id, vault_request};

use crate::support::{Output, TestEnv};

/// Writes a KV secret through the HTTP API (`version` 2 wraps it in `data`).
async fn seed(base: &str, token: &str, mount: &str, version: u8, path: &str, data: &Value) {
    let (api, body) = if version == 2 {
        (format!("{mount}/data/{path}"), json!({ "data": data }))
    } else {
        (format!("{mount}/{path}"), data.clone())
    };
    let (status, answer) = vault_request(base, token, "POST", &api, Some(body)).await;
    assert!(status < 300, "seeding {api} failed: {status} {answer}");
}

/// Runs the binary without blocking the runtime (a private emulator may be serving on it).
fn run(env: &TestEnv, args: &[&str], vars: &[(&str, &str)]) -> Output {
    tokio::task::block_in_place(|| env.run_with(args, vars))
}

/// A scratch folder whose pipeline syncs all of `mount` into the folder `out`.
fn files_from_vault(s: &Services, mount: &str) -> TestEnv {
    let env = TestEnv::new();
    env.write(
        "config.yaml",
        format!(
            "vault: {{ address: {} }}\nsources: {{ all: {{ vault: {{ mount: {mount} }} }} }}\ntargets: {{ Files: {{ imports: [all], file: {{ path: ./out }} }} }}\n",
            s.vault_addr
        ),
    );
    env
}

fn json_file(env: &TestEnv, rel: &str) -> Value {
    serde_json::from_str(&env.read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_vault_sources_sync_to_file_and_vault_targets_with_inheritance() {
    let s = Services::get();
    let (addr, token) = (s.vault_addr.as_str(), s.vault_token.as_str());
    let (v2, v1, out) = (s.vault_mount(2).await, s.vault_mount(1).await, s.vault_mount(2).await);
    let deep = json!({ "x": [1, 2.5, "three"], "n": { "big": 9_007_199_254_740_993_u64 } });
    seed(
        addr,
        token,
        &v2,
        2,
        "platform/db",
        &json!({ "port": 5432, "user": "app" }),
    )
    .await;
    seed(addr, token, &v2, 2, "platform/a/b/c/d/e", &deep).await;
    seed(
        addr,
        token,
        &v2,
        2,
        "platform/ünï cödé/key with spaces",
        &json!({ "k": "v" }),
    )
    .await;
    seed(addr, token, &v2, 2, "platform/retired", &json!({ "k": "old" })).await;
    let (status, _) = vault_request(addr, token, "DELETE", &format!("{v2}/data/platform/retired"), None).await;
    assert_eq!(status, 204, "soft-deleting the retired secret");
    seed(
        addr,
        token,
        &v1,
        1,
        "shared/db",
        &json!({ "user": "from-shared", "pool": { "max": 10 } }),
    )
    .await;
    seed(
        addr,
        token,
        &v1,
        1,
        "shared/api/keys",
        &json!({ "stripe": "sk_test_1" }),
    )
    .await;
    seed(addr, token, &v1, 1, "elsewhere/not-read", &json!({ "k": "v" })).await;

    let env = TestEnv::new();
    env.write(
        "config.yaml",
        format!(
            "vault: {{ address: {addr} }}\n\
             sources:\n\
             \x20 platform: {{ vault: {{ mount: {v2}/platform }} }}\n\
             \x20 shared: {{ vault: {{ mount: {v1}, paths: [shared/] }} }}\n\
             merge_store: {{ vault: {{ mount: {out}, prefix: merged }} }}\n\
             targets:\n\
             \x20 Staging: {{ imports: [platform, shared], file: {{ path: ./staging }} }}\n\
             \x20 Production: {{ imports: [Staging], vault: {{ mount: {out}, path: production }} }}\n"
        ),
    );
    let vars = [("VAULT_TOKEN", token)];
    let first = run(&env, &["pipeline"], &vars);
    assert_eq!(first.code, 0, "{}", first.snapshot());
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
    assert_eq!(json_file(&env, "staging/a/b/c/d/e.json"), deep);
    assert_eq!(
        json_file(&env, "staging/db.json"),
        json!({ "port": 5432, "user": "app" })
    );

    // The Vault target, read back over HTTP: values exact, ownership recorded.
    let read = |path: String| async move { vault_request(addr, token, "GET", &path, None).await };
    let (status, db) = read(format!("{out}/data/production/db")).await;
    assert_eq!(
        (status, &db["data"]["data"]),
        (200, &json!({ "port": 5432, "user": "app" }))
    );
    let (_, e) = read(format!("{out}/data/production/a/b/c/d/e")).await;
    assert_eq!(e["data"]["data"], deep, "nested values and big integers are exact");
    let (status, unicode) = read(format!("{out}/data/production/ünï cödé/key with spaces")).await;
    assert_eq!((status, &unicode["data"]["data"]), (200, &json!({ "k": "v" })));
    let (_, meta) = read(format!("{out}/metadata/production/shared/db")).await;
    assert_eq!(meta["data"]["custom_metadata"]["secretsync:target"], "Production");
    assert_eq!(read(format!("{out}/data/production/retired")).await.0, 404);
    let (_, merged) = vault_request(addr, token, "LIST", &format!("{out}/metadata/merged"), None).await;
    assert_eq!(merged["data"]["keys"], json!(["Production/", "Staging/"]));

    // A second run has nothing to do.
    let again = run(&env, &["pipeline", "--exit-code"], &vars);
    assert_eq!(again.code, 0, "{}", again.snapshot());
    assert!(
        again.stdout.contains("0 created, 0 updated, 0 deleted, 10 unchanged"),
        "{}",
        again.stdout
    );

    // A change in a source reaches both targets (Production through Staging) in the plan…
    seed(
        addr,
        token,
        &v1,
        1,
        "shared/db",
        &json!({ "user": "rotated", "pool": { "max": 10 } }),
    )
    .await;
    let plan = run(&env, &["plan", "--exit-code"], &vars);
    assert_eq!(plan.code, 1, "{}", plan.snapshot());
    assert_eq!(plan.stdout.matches("~ shared/db").count(), 2, "{}", plan.stdout);
    assert!(!plan.stdout.contains("rotated"), "values are masked: {}", plan.stdout);
    // …and a dry run writes nothing, not even the merge store: `--sync-only` still finds the
    // merged results of the first run and has nothing to do.
    let sync_only = run(&env, &["pipeline", "--sync-only", "--exit-code"], &vars);
    assert_eq!(sync_only.code, 0, "{}", sync_only.snapshot());
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
    seed(&s.vault_addr, &s.vault_token, &mount, 2, "app/db", &json!({ "k": "v" })).await;
    seed(
        &s.vault_addr,
        &s.vault_token,
        &mount,
        2,
        "admin/root",
        &json!({ "k": "v" }),
    )
    .await;
    let (policy, token) = token_with_policy(
        &s,
        &format!("path \"{mount}/metadata/*\" {{ capabilities = [\"list\"] }}\npath \"{mount}/data/app/*\" {{ capabilities = [\"read\"] }}"),
    )
    .await;
    let env = files_from_vault(&s, &mount);
    let out = run(&env, &["pipeline"], &[("VAULT_TOKEN", &token)]);
    assert_eq!(out.code, 2, "{}", out.snapshot());
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
    seed(&s.vault_addr, &s.vault_token, &mount, 2, "app/db", &json!({ "k": "v" })).await;
    let env = files_from_vault(&s, &mount);
    let dead = "hvs.not-a-live-token";
    // The token is not looked up before the first call; the refusal is told apart from a policy
    // problem when it comes.
    let out = run(&env, &["pipeline"], &[("VAULT_TOKEN", dead)]);
    assert_eq!(out.code, 2, "{}", out.snapshot());
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

    let checked = run(&env, &["validate", "--check-vault"], &[("VAULT_TOKEN", dead)]);
    assert_eq!(checked.code, 2, "{}", checked.snapshot());
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
    // A private emulator: sealing the shared one would break tests running in parallel.
    let vault = testbed::vault::start("127.0.0.1:0".parse().unwrap(), "sealed-root")
        .await
        .unwrap();
    let (addr, root) = (format!("http://{}", vault.addr), vault.root_token.clone());
    for mount in ["src", "dst"] {
        let body = json!({ "type": "kv", "options": { "version": "2" } });
        assert!(
            vault_request(&addr, &root, "POST", &format!("sys/mounts/{mount}"), Some(body))
                .await
                .0
                < 300
        );
    }
    seed(&addr, &root, "src", 2, "app/db", &json!({ "password": "first" })).await;
    let env = TestEnv::new();
    env.write(
        "config.yaml",
        format!(
            "vault: {{ address: '{addr}' }}\n\
             sources: {{ app: {{ vault: {{ mount: src }} }} }}\n\
             targets:\n\
             \x20 Files: {{ imports: [app], file: {{ path: ./out }} }}\n\
             \x20 Mirror: {{ imports: [app], vault: {{ mount: dst, path: mirror }} }}\n"
        ),
    );
    let vars = [("VAULT_TOKEN", root.as_str())];
    let first = run(&env, &["pipeline"], &vars);
    assert_eq!(first.code, 0, "{}", first.snapshot());
    let before = env.read("out/app/db.json");

    seed(&addr, &root, "src", 2, "app/db", &json!({ "password": "second" })).await;
    assert_eq!(vault_request(&addr, &root, "PUT", "sys/seal", None).await.0, 204);
    let sealed = run(&env, &["pipeline", "--exit-code"], &vars);
    assert_eq!(sealed.code, 2, "{}", sealed.snapshot());
    assert_eq!(
        sealed.stdout.matches("Vault is sealed").count(),
        2,
        "both targets name the cause: {}",
        sealed.stdout
    );
    assert!(sealed.stdout.contains("2 targets, 2 failed"), "{}", sealed.stdout);
    assert_eq!(env.read("out/app/db.json"), before, "the file target is untouched");

    assert_eq!(
        vault_request(&addr, &root, "PUT", "sys/unseal", Some(json!({ "key": "x" })))
            .await
            .0,
        200
    );
    let (_, mirrored) = vault_request(&addr, &root, "GET", "dst/data/mirror/app/db", None).await;
    assert_eq!(
        mirrored["data"]["data"]["password"], "first",
        "the Vault target is untouched"
    );
    assert_eq!(mirrored["data"]["metadata"]["version"], 1, "and was not written at all");
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
    let env = TestEnv::new();
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
    let as_root = run(&env, &["validate", "--check-vault"], &[("VAULT_TOKEN", &s.vault_token)]);
    assert_eq!(as_root.code, 0, "{}", as_root.snapshot());
    assert!(
        as_root.stdout.contains("✓ every Vault check passed"),
        "{}",
        as_root.stdout
    );

    let as_reader = run(&env, &["validate", "--check-vault"], &[("VAULT_TOKEN", &reader)]);
    assert_eq!(as_reader.code, 2, "{}", as_reader.snapshot());
    let lines: Vec<&str> = as_reader
        .stdout
        .lines()
        .filter(|l| l.contains('✓') || l.contains('✗'))
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
    let nowhere = run(
        &env,
        &["validate", "-c", "env.yaml", "--check-vault"],
        &[("VAULT_TOKEN", "x"), ("VAULT_ADDR", "http://127.0.0.1:9")],
    );
    assert_eq!(nowhere.code, 2, "{}", nowhere.snapshot());
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
    let env = TestEnv::new();
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
    let vars = [("VAULT_TOKEN", s.vault_token.as_str())];
    assert_eq!(run(&env, &["pipeline"], &vars).code, 0);

    std::fs::remove_file(env.path().join("src/gone.json")).unwrap();
    let deleted = run(&env, &["pipeline"], &vars);
    assert_eq!(deleted.code, 0, "{}", deleted.snapshot());
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
    let restored = run(&env, &["pipeline"], &vars);
    assert_eq!(restored.code, 0, "{}", restored.snapshot());
    assert!(restored.stdout.contains("↺ gone"), "{}", restored.stdout);
    let (_, back) = s
        .vault_call("GET", &s.vault_addr, &format!("{mount}/data/app/gone"), None)
        .await;
    assert_eq!(back["data"]["data"], json!({ "k": 3 }));
    let again = run(&env, &["pipeline", "--exit-code"], &vars);
    assert_eq!(again.code, 0, "converged: {}", again.snapshot());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ownership_costs_one_manifest_write_per_run_on_kv1_and_one_metadata_write_per_secret_on_kv2() {
    use testbed::proxy::{Fault, Rule};
    let s = Services::get();
    let (v1, v2) = (s.vault_mount(1).await, s.vault_mount(2).await);
    let env = TestEnv::new();
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
        fault: Fault::default(),
        ..Rule::default()
    };
    let faults = s.vault_faults();
    let manifest_writes = faults
        .add(&counter(format!("^/v1/{v1}/app/\\.secretsync-manifest$")))
        .await;
    let metadata_writes = faults.add(&counter(format!("^/v1/{v2}/metadata/app/"))).await;
    let vars = [("VAULT_TOKEN", s.vault_token.as_str())];

    let first = run(&env, &["pipeline"], &vars);
    assert_eq!(first.code, 0, "{}", first.snapshot());
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
    let second = run(&env, &["pipeline"], &vars);
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
