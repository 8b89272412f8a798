//! `secretsync migrate` from the documented Terraform formats to a pipeline that validates and
//! runs: the bundled example converted, validated, and synced from OpenBao into moto.

use serde_json::json;
use testbed::support::{Services, random_account_id};

use crate::support::aws::{self, endpoint, names, secrets_in, string_value};
use crate::support::vault::Kv;
use crate::support::{Output, Test, repo};

const EXAMPLE: &str = "examples/migrate/terraform-secretsmanager";

fn migrate(env: &Test, extra: &[&str]) -> Output {
    let mut args = vec![
        "migrate",
        "--from",
        "terraform-secretsmanager",
        "--targets",
        "in/targets.yaml",
        "--secrets",
        "in/secrets.yaml",
        "--accounts",
        "in/accounts.yaml",
        "--output",
        "pipeline.yaml",
    ];
    args.extend_from_slice(extra);
    env.run(&args)
}

#[test]
fn the_example_converts_with_every_dropped_and_guessed_item_reported() {
    let env = Test::new();
    for file in ["targets.yaml", "secrets.yaml", "accounts.yaml"] {
        env.write(
            &format!("in/{file}"),
            std::fs::read(repo().join(EXAMPLE).join(file)).unwrap(),
        );
    }
    let out = migrate(&env, &["--vault-addr", "https://vault.example.com"]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    insta::assert_snapshot!("migrate_stdout", out.stdout);
    insta::assert_snapshot!("migrate_pipeline", env.read("pipeline.yaml"));
    env.assert_private_file("pipeline.yaml");
    env.args(&["validate", "-c", "pipeline.yaml"]).code(0);

    let again = migrate(&env, &[]);
    assert_eq!(again.code, 2);
    assert!(
        again.stderr.contains("pipeline.yaml already exists"),
        "{}",
        again.stderr
    );
    assert!(again.stderr.contains("--force"), "{}", again.stderr);
    assert_eq!(migrate(&env, &["--force"]).code, 0);

    let missing = env.run(&[
        "migrate",
        "--from",
        "terraform-secretsmanager",
        "--targets",
        "in/nope.yaml",
        "--secrets",
        "in/secrets.yaml",
        "--accounts",
        "in/accounts.yaml",
    ]);
    assert_eq!(missing.code, 2);
    assert!(
        missing
            .stderr
            .contains("error: cannot read the targets file in/nope.yaml"),
        "{}",
        missing.stderr
    );
    let unknown = env.run(&[
        "migrate",
        "--from",
        "vault-secrets-operator",
        "--targets",
        "a",
        "--secrets",
        "b",
        "--accounts",
        "c",
    ]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("[possible values: terraform-secretsmanager]"),
        "{}",
        unknown.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_converted_example_syncs_from_vault_into_each_account() {
    let s = Services::get();
    let caller = s.aws_account().await;
    let proxy = aws::proxy(&s).await;
    let env = Test::new().aws(&caller, &endpoint(&proxy)).vault_token(&s.vault_token);
    let mount = s.vault_mount(2).await;
    let (staging, production) = (random_account_id(), random_account_id());
    // The example, pointed at this test's mount and accounts.
    let read = |file: &str| std::fs::read_to_string(repo().join(EXAMPLE).join(file)).unwrap();
    env.write("in/targets.yaml", read("targets.yaml"));
    env.write(
        "in/secrets.yaml",
        read("secrets.yaml").replace("vault_mount: secret", &format!("vault_mount: {mount}")),
    );
    env.write(
        "in/accounts.yaml",
        read("accounts.yaml")
            .replace("111111111111", &staging)
            .replace(
                "222222222222:role/SecretsSync",
                &format!("{production}:role/OrganizationAccountAccessRole"),
            )
            .replace("222222222222", &production),
    );
    for (path, data) in [
        ("platform/database", json!({ "host": "db", "password": "p1" })),
        ("payments/stripe", json!({ "api_key": "sk_test", "webhook": "wh" })),
        ("production/database", json!({ "host": "prod-db" })),
    ] {
        Kv::shared(&s, &mount, 2).seed(path, &data).await;
    }
    let out = migrate(&env, &["--vault-addr", &s.vault_addr]);
    assert_eq!(out.code, 0, "{}", out.snapshot());

    env.args(&["pipeline", "-c", "pipeline.yaml"]).code(0);
    let sm = secrets_in(&s, &staging).await;
    assert_eq!(names(&sm).await, ["payments/stripe", "platform/database"]);
    assert_eq!(
        string_value(&sm, "platform/database").await,
        json!({ "host": "db", "password": "p1" })
    );
    let sm = secrets_in(&s, &production).await;
    assert_eq!(
        names(&sm).await,
        ["payments/stripe", "platform/database", "production/database"],
        "Production imports its own secret and Staging's"
    );
    let second = env.run(&["pipeline", "-c", "pipeline.yaml", "--exit-code"]);
    assert_eq!(second.code, 0, "converges: {}", second.snapshot());
}
