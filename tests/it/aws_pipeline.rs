//! The binary end to end on moto and OpenBao: Vault and file sources, an S3 merge
//! store, Secrets Manager targets in several accounts reached by AssumeRole; results read back
//! with separate clients, API calls counted by a private fault proxy in front of moto.

use std::collections::BTreeMap;

use serde_json::json;
use testbed::support::{Services, random_account_id};

use crate::support::Test;
use crate::support::aws::{self, WRITES, calls, endpoint, names, secrets_in, since, string_value, tags};
use crate::support::scenario::Scenario;
use crate::support::vault::Kv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_sources_through_an_s3_merge_store_into_three_accounts() {
    let s = Services::get();
    let management = s.aws_account().await;
    let (staging, prod, review) = (random_account_id(), random_account_id(), random_account_id());
    let bucket = aws::bucket(&s, &management).await;
    let mount = s.vault_mount(2).await;
    let nested = json!({ "user": "app", "pool": { "max": 10, "hosts": ["a", "b"] }, "ratio": 0.25 });
    for (path, data) in [("db", nested.clone()), ("api/keys", json!({ "stripe": "sk_test_1" }))] {
        Kv::shared(&s, &mount, 2).seed(path, &data).await;
    }
    let der: Vec<u8> = (0..=255u8).rev().collect();
    let proxy = aws::proxy(&s).await;
    let t = Test::new()
        .aws(&management, &endpoint(&proxy))
        .vault_token(&s.vault_token)
        .file("files/certs/client.der", &der)
        .pipeline(format!(
            "vault: {{ address: {} }}\n\
             sources:\n\
             \x20 platform: {{ vault: {{ mount: {mount} }} }}\n\
             \x20 certs: {{ file: {{ path: ./files }} }}\n\
             merge_store: {{ s3: {{ bucket: {bucket}, prefix: merged/ }} }}\n\
             targets:\n\
             \x20 Staging: {{ account_id: \"{staging}\", imports: [platform, certs], tags: {{ env: staging }}, kms_key_id: alias/staging }}\n\
             \x20 Prod: {{ account_id: \"{prod}\", imports: [Staging], secret_prefix: prod/, tags: {{ env: prod }} }}\n\
             \x20 Review: {{ account_id: \"{review}\", imports: [Staging], description: Review copy }}\n",
            s.vault_addr
        ));

    t.args(&["pipeline"]).code(0);
    let after_first = calls(&proxy);
    assert_eq!(
        after_first.get("AssumeRole"),
        Some(&3),
        "one role per account: {after_first:?}"
    );
    assert_eq!(after_first.get("CreateSecret"), Some(&9), "{after_first:?}");

    // Read back with separate clients, as each account.
    let sm = secrets_in(&s, &staging).await;
    assert_eq!(names(&sm).await, ["api/keys", "certs/client.der", "db"]);
    assert_eq!(string_value(&sm, "db").await, nested, "nested JSON is exact");
    let binary = sm
        .get_secret_value()
        .secret_id("certs/client.der")
        .send()
        .await
        .unwrap();
    assert_eq!(
        binary.secret_binary().map(|b| b.as_ref().to_vec()),
        Some(der.clone()),
        "binary is exact"
    );
    assert!(binary.secret_string().is_none());
    assert_eq!(
        tags(&sm, "db").await,
        BTreeMap::from([
            ("env".to_owned(), "staging".to_owned()),
            ("managed-by".to_owned(), "secretsync".to_owned()),
            ("secretsync:tags".to_owned(), "env".to_owned()),
            ("secretsync:target".to_owned(), "Staging".to_owned()),
        ])
    );
    let described = sm.describe_secret().secret_id("db").send().await.unwrap();
    assert_eq!(described.kms_key_id(), Some("alias/staging"));

    let sm = secrets_in(&s, &prod).await;
    assert_eq!(names(&sm).await, ["prod/api/keys", "prod/certs/client.der", "prod/db"]);
    assert_eq!(
        string_value(&sm, "prod/db").await,
        nested,
        "Prod inherits Staging's merged result"
    );
    assert_eq!(tags(&sm, "prod/db").await["secretsync:target"], "Prod");
    let sm = secrets_in(&s, &review).await;
    let described = sm.describe_secret().secret_id("api/keys").send().await.unwrap();
    assert_eq!(described.description(), Some("Review copy"));

    let s3 = aws::s3(&management, &s.aws_endpoint).await;
    let objects = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("merged/Staging/")
        .send()
        .await
        .unwrap();
    let mut keys: Vec<&str> = objects.contents().iter().filter_map(|o| o.key()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "merged/Staging/api/keys.json",
            "merged/Staging/certs/client.der.json",
            "merged/Staging/db.json"
        ]
    );

    // Nothing changed: the second run reads and writes nothing.
    t.args(&["pipeline", "--exit-code"]).code(0);
    let made = since(&after_first, &calls(&proxy));
    let writes: Vec<(&String, &u64)> = made.iter().filter(|(op, _)| WRITES.contains(&op.as_str())).collect();
    assert!(writes.is_empty(), "a no-op run makes no write call: {made:?}");
    assert_eq!(made.get("ListSecrets"), Some(&3), "one listing per target: {made:?}");
    assert_eq!(
        made.get("BatchGetSecretValue"),
        Some(&3),
        "one batch read per target: {made:?}"
    );
    assert_eq!(made.get("GetSecretValue"), None, "never one read per secret: {made:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desired_secret_scheduled_for_deletion_is_restored_then_updated() {
    let sc = Scenario::new().await;
    sc.write("src/keep.json", r#"{"k": 1}"#);
    sc.write("src/back.json", r#"{"v": 1}"#);
    sc.config("", "sync: { delete_orphans: true, recovery_window_days: 7 }");
    sc.args(&["pipeline"]).code(0);
    sc.write("src/back.json", r#"{"v": 2}"#);
    sc.args(&["pipeline"]).code(0);

    sc.remove("src/back.json");
    let deleted = sc.run(&["pipeline"]);
    assert!(deleted.stdout.contains("- back"), "{}", deleted.stdout);
    let sm = sc.sm().await;
    let described = sm.describe_secret().secret_id("back").send().await.unwrap();
    assert!(
        described.deleted_date().is_some(),
        "scheduled for deletion, recoverable"
    );

    // Desired again with its first value: restored, and that value is current again (the
    // write is not mistaken for a retry of the first version's write).
    sc.write("src/back.json", r#"{"v": 1}"#);
    let restored = sc.args(&["pipeline"]).code(0);
    assert!(restored.stdout.contains("↺ back"), "{}", restored.stdout);
    assert!(
        sm.describe_secret()
            .secret_id("back")
            .send()
            .await
            .unwrap()
            .deleted_date()
            .is_none()
    );
    assert_eq!(string_value(&sm, "back").await, json!({ "v": 1 }));
    assert_eq!(sc.run(&["pipeline", "--exit-code"]).code, 0, "converged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_someone_else_owns_is_a_conflict_until_adopted() {
    let sc = Scenario::new().await;
    sc.write("src/shared.json", r#"{"k": "ours"}"#);
    sc.config(", tags: { env: prod }", "");
    let sm = sc.sm().await;
    sm.create_secret()
        .name("shared")
        .secret_string(r#"{"k": "theirs"}"#)
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("team")
                .value("payments")
                .build(),
        )
        .send()
        .await
        .unwrap();

    let conflict = sc.args(&["pipeline"]).code(2);
    assert!(conflict.stdout.contains("! shared"), "{}", conflict.stdout);
    assert!(conflict.stdout.contains("pass `--adopt`"), "{}", conflict.stdout);
    assert_eq!(string_value(&sm, "shared").await, json!({ "k": "theirs" }), "untouched");

    sc.args(&["pipeline", "--adopt"]).code(0);
    assert_eq!(string_value(&sm, "shared").await, json!({ "k": "ours" }));
    let now = tags(&sm, "shared").await;
    assert_eq!(now["managed-by"], "secretsync");
    assert_eq!(now["secretsync:target"], "App");
    assert_eq!(now["env"], "prod");
    assert_eq!(now["team"], "payments", "adoption keeps the tags that were there");
    sc.args(&["pipeline", "--exit-code"]).code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_deletes_than_max_deletes_withholds_every_delete() {
    let sc = Scenario::new().await;
    for i in 0..4 {
        sc.write(&format!("src/s{i}.json"), format!(r#"{{"i": {i}}}"#));
    }
    sc.config("", "sync: { delete_orphans: true, max_deletes: 2 }");
    sc.args(&["pipeline"]).code(0);
    for i in 0..3 {
        sc.remove(&format!("src/s{i}.json"));
    }
    let before = calls(&sc.proxy);
    let out = sc.args(&["pipeline"]).code(2);
    assert!(
        out.stdout
            .contains("3 deletes planned, more than `max_deletes` (2): every delete was withheld"),
        "{}",
        out.stdout
    );
    let made = since(&before, &calls(&sc.proxy));
    assert_eq!(made.get("DeleteSecret"), None, "not one delete: {made:?}");
    assert_eq!(names(&sc.sm().await).await, ["s0", "s1", "s2", "s3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_source_means_no_deletes_and_no_partial_push() {
    let sc = Scenario::new().await;
    let source_account = sc.s.aws_account().await;
    let sm_source = aws::secrets_manager(&source_account, &sc.s.aws_endpoint).await;
    for (name, value) in [
        ("legacy/a", r#"{"a": 1}"#),
        ("legacy/b", r#"{"b": 1}"#),
        ("other/c", r#"{"c": 1}"#),
    ] {
        sm_source
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .unwrap();
    }
    sc.write("src/local.json", r#"{"l": 1}"#);
    sc.write(
        "config.yaml",
        format!(
            "sources:\n\
             \x20 files: {{ file: {{ path: ./src }} }}\n\
             \x20 legacy: {{ aws: {{ account_id: \"{}\", prefix: legacy/ }} }}\n\
             targets: {{ App: {{ account_id: \"{}\", imports: [files, legacy] }} }}\n\
             pipeline: {{ sync: {{ delete_orphans: true }} }}\n",
            source_account.account_id, sc.caller.account_id
        ),
    );
    sc.args(&["pipeline"]).code(0);
    let sm = sc.sm().await;
    assert_eq!(
        names(&sm).await,
        ["a", "b", "local"],
        "the AWS source's prefix is removed from paths"
    );

    // The source's account now refuses to be read; a local secret changes meanwhile.
    sc.write("src/local.json", r#"{"l": 2}"#);
    let rule = testbed::proxy::Rule {
        operation: Some("BatchGetSecretValue".to_owned()),
        fault: testbed::proxy::Fault {
            status: Some(400),
            code: Some("AccessDeniedException".to_owned()),
            ..testbed::proxy::Fault::default()
        },
        ..testbed::proxy::Rule::default()
    };
    let id = sc.proxy.add_rule(rule).unwrap();
    let before = calls(&sc.proxy);
    let out = sc.args(&["pipeline"]).code(2);
    assert!(out.stdout.contains("cannot read source `legacy`"), "{}", out.stdout);
    let made = since(&before, &calls(&sc.proxy));
    let writes: Vec<&String> = made.keys().filter(|op| WRITES.contains(&op.as_str())).collect();
    assert!(writes.is_empty(), "no partial push and no deletes: {made:?}");
    assert_eq!(string_value(&sm, "local").await, json!({ "l": 1 }));
    assert!(sc.proxy.rule_stats(id).unwrap().fired >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_to_b_to_a_makes_three_versions_and_a_70_kb_value_is_refused_in_the_plan() {
    let sc = Scenario::new().await;
    sc.config("", "");
    let mut versions = Vec::new();
    for value in ["A", "B", "A"] {
        sc.write("src/flip", value);
        sc.args(&["pipeline"]).code(0);
        let sm = sc.sm().await;
        let current = sm.get_secret_value().secret_id("flip").send().await.unwrap();
        assert_eq!(current.secret_string(), Some(value));
        versions.push(current.version_id().unwrap().to_owned());
    }
    versions.dedup();
    assert_eq!(
        versions.len(),
        3,
        "A→B→A is three versions, none swallowed: {versions:?}"
    );

    sc.write("src/huge", "x".repeat(70 * 1024));
    let before = calls(&sc.proxy);
    let plan = sc.args(&["plan"]).code(2);
    assert!(plan.stdout.contains("huge"), "{}", plan.stdout);
    assert!(
        plan.stdout
            .contains("the value is 71680 bytes; Secrets Manager holds at most 65536"),
        "{}",
        plan.stdout
    );
    assert!(!plan.stdout.contains("xxxx"), "the value is never shown");
    let made = since(&before, &calls(&sc.proxy));
    assert!(made.keys().all(|op| !WRITES.contains(&op.as_str())), "{made:?}");
}

/// AWS keeps a write's `ClientRequestToken` as the version id that `DescribeSecret` and
/// `CloudTrail` show; the same write made by two runs must not give the same id, or a reader
/// could test guesses of the value against it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_write_in_two_runs_gets_unrelated_version_ids() {
    let mut ids = Vec::new();
    for _ in 0..2 {
        let sc = Scenario::new().await;
        sc.config("", "");
        sc.write("src/weak", "1234");
        sc.args(&["pipeline"]).code(0);
        let current = sc.sm().await.get_secret_value().secret_id("weak").send().await.unwrap();
        ids.push(current.version_id().unwrap().to_owned());
    }
    assert_ne!(ids[0], ids[1], "the same name and value, created by two runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_that_cannot_be_assumed_fails_only_its_target_and_names_the_role() {
    let sc = Scenario::new().await;
    let (denied, fine) = (random_account_id(), random_account_id());
    sc.write("src/x.json", r#"{"x": 1}"#);
    sc.write(
        "config.yaml",
        format!(
            "sources: {{ files: {{ file: {{ path: ./src }} }} }}\n\
             targets:\n\
             \x20 Denied: {{ account_id: \"{denied}\", imports: [files] }}\n\
             \x20 Fine: {{ account_id: \"{fine}\", imports: [files] }}\n"
        ),
    );
    let id = sc
        .proxy
        .add_rule(testbed::proxy::Rule {
            operation: Some("AssumeRole".to_owned()),
            body: Some(format!("iam%3A%3A{denied}%3A")),
            fault: testbed::proxy::Fault {
                status: Some(403),
                code: Some("AccessDenied".to_owned()),
                message: Some("not authorized to perform sts:AssumeRole".to_owned()),
                ..testbed::proxy::Fault::default()
            },
            ..testbed::proxy::Rule::default()
        })
        .unwrap();
    let out = sc.args(&["pipeline"]).code(2);
    assert!(sc.proxy.rule_stats(id).unwrap().fired >= 1);
    let role = format!("arn:aws:iam::{denied}:role/OrganizationAccountAccessRole");
    assert!(out.stdout.contains(&role), "the failing role is named: {}", out.stdout);
    assert!(out.stdout.contains("1 failed"), "{}", out.stdout);
    assert_eq!(
        names(&secrets_in(&sc.s, &fine).await).await,
        ["x"],
        "the other account was synced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_aws_and_context_show_the_caller_the_organization_and_every_role() {
    let sc = Scenario::new().await;
    let org = sc.s.aws_organization(&sc.caller).await;
    let bucket = aws::bucket(&sc.s, &sc.caller).await;
    let (member, locked) = (random_account_id(), random_account_id());
    sc.write(
        "config.yaml",
        format!(
            "aws: {{ execution_context: {{ type: management_account, account_id: \"{}\" }} }}\n\
             sources: {{ files: {{ file: {{ path: ./src }} }} }}\n\
             merge_store: {{ s3: {{ bucket: {bucket} }} }}\n\
             targets:\n\
             \x20 Member: {{ account_id: \"{member}\", imports: [files] }}\n\
             \x20 Locked: {{ account_id: \"{locked}\", imports: [files], role_arn: \"arn:aws:iam::{locked}:role/Sync\" }}\n\
             \x20 Own: {{ imports: [files] }}\n",
            sc.caller.account_id
        ),
    );
    sc.proxy
        .add_rule(testbed::proxy::Rule {
            operation: Some("AssumeRole".to_owned()),
            body: Some(format!("iam%3A%3A{locked}%3A")),
            fault: testbed::proxy::Fault {
                status: Some(403),
                code: Some("AccessDenied".to_owned()),
                ..testbed::proxy::Fault::default()
            },
            ..testbed::proxy::Rule::default()
        })
        .unwrap();
    let out = sc.args(&["validate", "--check-aws"]).code(2);
    let lines: Vec<&str> = out.stdout.lines().skip_while(|l| *l != "AWS:").collect();
    let org_id = org["Id"].as_str().unwrap();
    let caller = &sc.caller.account_id;
    assert!(
        lines[1].starts_with("  ✓ caller: arn:aws:sts::") && lines[1].ends_with(&format!("(account {caller})")),
        "{lines:?}"
    );
    assert_eq!(lines[2], format!("  ✓ organization: management account of {org_id}"));
    assert!(lines[3].starts_with(&format!("  ✓ the merge store: account {caller} us-east-1 with the caller's own credentials: bucket {bucket} reachable")), "{lines:?}");
    assert!(lines[4].starts_with(&format!("  ✗ target `Locked`: account {locked} us-east-1 via arn:aws:iam::{locked}:role/Sync (role_arn): the role cannot be assumed")), "{lines:?}");
    assert!(lines[6].starts_with(&format!("  ✓ target `Member`: account {member} us-east-1 via arn:aws:iam::{member}:role/OrganizationAccountAccessRole (the default role): secrets can be listed")), "{lines:?}");
    assert!(
        lines[7].starts_with(&format!(
            "  ✓ target `Own`: account {caller} us-east-1 with the caller's own credentials"
        )),
        "{lines:?}"
    );
    assert_eq!(lines[8], "✗ 1 of 6 AWS checks failed");

    let context = sc.args(&["context"]).code(2);
    assert!(
        context.stdout.starts_with("AWS execution context:\n  ✓ caller: "),
        "{}",
        context.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_are_assumed_with_the_configured_external_id_and_session_name() {
    let sc = Scenario::new().await;
    let other = random_account_id();
    sc.write("src/x.json", r#"{"x": 1}"#);
    sc.write(
        "config.yaml",
        format!(
            "aws: {{ external_id: ext-4711, role_session_name: nightly-sync, execution_context: {{ custom_role_pattern: \"arn:aws:iam::{{{{.AccountID}}}}:role/SecretsSync\" }} }}\n\
             sources: {{ files: {{ file: {{ path: ./src }} }} }}\n\
             targets: {{ Other: {{ account_id: \"{other}\", imports: [files] }} }}\n"
        ),
    );
    let id = sc
        .proxy
        .add_rule(testbed::proxy::Rule {
            operation: Some("AssumeRole".to_owned()),
            // The SDK writes the form in the model's member order.
            body: Some(format!(
                "RoleArn=arn%3Aaws%3Aiam%3A%3A{other}%3Arole%2FSecretsSync&RoleSessionName=nightly-sync&.*ExternalId=ext-4711"
            )),
            fault: testbed::proxy::Fault::default(),
            ..testbed::proxy::Rule::default()
        })
        .unwrap();
    sc.args(&["pipeline"]).code(0);
    assert_eq!(
        sc.proxy.rule_stats(id).unwrap().matched,
        1,
        "one AssumeRole, with the pattern's role, the external id and the session name"
    );
}

/// A pipeline syncing one secret into `n` new accounts (targets `T00`, `T01`, …); the accounts.
fn one_secret_into_accounts(sc: &Scenario, n: usize) -> Vec<String> {
    use std::fmt::Write as _;
    sc.write("src/x.json", r#"{"x": 1}"#);
    let accounts: Vec<String> = (0..n).map(|_| random_account_id()).collect();
    let mut targets = String::new();
    for (k, a) in accounts.iter().enumerate() {
        writeln!(targets, "  T{k:02}: {{ account_id: \"{a}\", imports: [files] }}").unwrap();
    }
    sc.write(
        "config.yaml",
        format!("sources: {{ files: {{ file: {{ path: ./src }} }} }}\ntargets:\n{targets}"),
    );
    accounts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_account_is_assumed_once_even_beyond_the_sdks_64_cached_identities() {
    let sc = Scenario::new().await;
    one_secret_into_accounts(&sc, 70);
    let before = calls(&sc.proxy);
    sc.args(&["pipeline"]).code(0);
    let made = since(&before, &calls(&sc.proxy));
    assert_eq!(made.get("CreateSecret"), Some(&70), "{made:?}");
    assert_eq!(
        made.get("AssumeRole"),
        Some(&70),
        "one role assumption per account per run (the SDK's identity cache evicts beyond 64 roles unless sized): {made:?}"
    );
}

/// STS goes through the resilience layer: with the default settings, every target account's
/// `AssumeRole` throttled twice still syncs every account (each call retried, nothing failed),
/// and the report counts the STS calls like any other (service `sts`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_assume_role_calls_are_retried_paced_and_counted() {
    let sc = Scenario::new().await;
    let accounts = one_secret_into_accounts(&sc, 12);
    // Each account's AssumeRole is throttled exactly twice (one rule per account, so the test
    // does not depend on the order the accounts are reached in).
    let rules: Vec<u64> = accounts
        .iter()
        .map(|account| {
            sc.proxy
                .add_rule(testbed::proxy::Rule {
                    operation: Some("AssumeRole".to_owned()),
                    body: Some(format!("iam%3A%3A{account}%3A")),
                    fault: testbed::proxy::Fault {
                        status: Some(400),
                        code: Some("Throttling".to_owned()),
                        message: Some("Rate exceeded".to_owned()),
                        ..testbed::proxy::Fault::default()
                    },
                    times: Some(2),
                    ..testbed::proxy::Rule::default()
                })
                .unwrap()
        })
        .collect();
    let before = calls(&sc.proxy);
    let out = sc.args(&["pipeline", "--report", "report.json"]).code(0);
    assert!(out.stdout.contains("12 created, 0 updated"), "{}", out.stdout);
    let made = since(&before, &calls(&sc.proxy));
    for rule in &rules {
        assert_eq!(sc.proxy.rule_stats(*rule).unwrap().fired, 2);
    }
    assert_eq!(
        made.get("AssumeRole"),
        Some(&36),
        "two throttled attempts and one answer per account: {made:?}"
    );
    for account in &accounts {
        assert_eq!(
            names(&secrets_in(&sc.s, account).await).await,
            ["x"],
            "{account} was synced"
        );
    }
    let report: serde_json::Value = serde_json::from_str(&sc.read("report.json")).unwrap();
    assert_eq!(report["api_calls"]["sts"]["AssumeRole"], 36, "{}", report["api_calls"]);
    assert_eq!(
        report["api_calls"]["sts"]["GetCallerIdentity"], 1,
        "{}",
        report["api_calls"]
    );
}

/// The throttling fault for `AssumeRole` calls naming `account`'s role (`times`: how often;
/// `None`: always), after `latency_ms`.
fn throttle_assume_role(sc: &Scenario, account: &str, times: Option<u64>, latency_ms: Option<u64>) -> u64 {
    sc.proxy
        .add_rule(testbed::proxy::Rule {
            operation: Some("AssumeRole".to_owned()),
            body: Some(format!("iam%3A%3A{account}%3A")),
            fault: testbed::proxy::Fault {
                status: Some(400),
                code: Some("Throttling".to_owned()),
                message: Some("Rate exceeded".to_owned()),
                latency_ms,
                ..testbed::proxy::Fault::default()
            },
            times,
            ..testbed::proxy::Rule::default()
        })
        .unwrap()
}

/// An `AssumeRole` that backs off for longer than one Secrets Manager attempt may take is not
/// cut short by it: the role's credentials are had before the call starts its clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_throttled_assume_role_is_not_cut_short_by_the_call_that_needs_it() {
    let sc = Scenario::new().await;
    let accounts = one_secret_into_accounts(&sc, 2);
    let config = sc.read("config.yaml");
    sc.write(
        "config.yaml",
        format!("{config}pipeline: {{ resilience: {{ timeouts: {{ call: 2s }}, retries: {{ max_attempts: 1 }} }} }}\n"),
    );
    // Two throttled attempts of 1.2 s each plus backoff: longer than the 2 s the one attempt
    // of the Secrets Manager call may take (STS calls get more attempts whatever
    // `max_attempts` says), each attempt well within it. Resolved inside that call, the
    // role's credentials would time it out.
    for account in &accounts {
        throttle_assume_role(&sc, account, Some(2), Some(1200));
    }
    let before = calls(&sc.proxy);
    let out = sc.args(&["pipeline"]).code(0);
    assert!(out.stdout.contains("2 created, 0 updated"), "{}", out.stdout);
    let made = since(&before, &calls(&sc.proxy));
    assert_eq!(made.get("AssumeRole"), Some(&6), "{made:?}");
}

/// A role STS keeps throttling fails its own target — as throttled, naming STS and the role —
/// and no other: each role has its own breaker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_sts_keeps_throttling_fails_only_its_target_and_says_why() {
    let sc = Scenario::new().await;
    let accounts = one_secret_into_accounts(&sc, 8);
    let config = sc.read("config.yaml");
    sc.write(
        "config.yaml",
        format!("{config}pipeline: {{ resilience: {{ retries: {{ base_delay: 1ms, max_delay: 5ms }} }} }}\n"),
    );
    let broken = &accounts[3];
    throttle_assume_role(&sc, broken, None, None);
    let out = sc.args(&["pipeline", "-o", "json"]).code(2);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let targets = report["targets"].as_array().unwrap();
    for target in targets {
        if target["name"] == "T03" {
            let text = target.to_string();
            assert!(
                text.contains(&format!("sts:AssumeRole of arn:aws:iam::{broken}:role/"))
                    && text.contains("Rate exceeded"),
                "{text}"
            );
            assert_eq!(target["status"], "failed", "{text}");
            assert!(
                ["throttled", "unavailable"].contains(&target["error_class"].as_str().unwrap()),
                "STS throttled (and its breaker opened), not permission denied: {text}"
            );
        } else {
            assert_eq!(target["status"], "ok", "{target}");
        }
    }
    for (k, account) in accounts.iter().enumerate() {
        let expected: &[&str] = if k == 3 { &[] } else { &["x"] };
        assert_eq!(names(&secrets_in(&sc.s, account).await).await, expected, "{account}");
    }
}

/// A server's error text is data: in GitHub output it cannot start a workflow command (a
/// `::stop-commands::` would silence every later annotation), in human output it cannot forge
/// lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_text_cannot_start_workflow_commands_or_forge_lines() {
    let sc = Scenario::new().await;
    sc.config("", "");
    sc.write("src/app", "v");
    sc.proxy
        .add_rule(testbed::proxy::Rule {
            operation: Some("CreateSecret".into()),
            fault: testbed::proxy::Fault {
                status: Some(400),
                code: Some("ValidationException".into()),
                message: Some("refused\n::stop-commands::pwned\n::error::forged\r\n  ✓ in sync".into()),
                ..testbed::proxy::Fault::default()
            },
            ..testbed::proxy::Rule::default()
        })
        .unwrap();
    let github = sc.args(&["pipeline", "-o", "github"]).code(2);
    assert!(github.stdout.contains("refused"), "{}", github.stdout);
    for line in github.stdout.lines() {
        assert!(
            !line.starts_with("::stop-commands") && !line.starts_with("::error::forged"),
            "a forged command: {line}\n{}",
            github.stdout
        );
    }
    assert!(github.stdout.contains("%0A::stop-commands::pwned"), "{}", github.stdout);
    let human = sc.args(&["pipeline"]).code(2);
    assert!(
        human.stdout.contains("refused ⏎ ::stop-commands::pwned"),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.lines().all(|l| !l.trim_start().starts_with("✓ in sync")),
        "{}",
        human.stdout
    );
}

/// Replies lost after the server applied the request — a conditional write of a merged secret,
/// the lock write, a delete — are retried: the run completes, the next one has nothing to do,
/// and no lock is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_replies_to_conditional_writes_locks_and_deletes_still_converge() {
    use testbed::proxy::Rule;
    let sc = Scenario::new().await;
    sc.write("src/keep.json", r#"{"k": 1}"#);
    sc.write("src/gone", "old");
    let bucket = sc.with_s3_merge_store("sync: { delete_orphans: true }").await;
    sc.args(&["pipeline"]).code(0);
    sc.remove("src/gone");
    sc.write("src/keep.json", r#"{"k": 2}"#);
    let rules = [
        Rule::lose_one_reply(Some("PutObject"), Some(format!("{bucket}/\\.secretsync/lock"))),
        Rule::lose_one_reply(Some("PutObject"), Some(format!("{bucket}/App/keep"))),
        Rule::lose_one_reply(Some("DeleteSecret"), None),
        Rule::lose_one_reply(Some("PutSecretValue"), None),
    ]
    .map(|rule| sc.proxy.add_rule(rule).unwrap());
    sc.args(&["pipeline"]).code(0);
    for rule in rules {
        assert_eq!(sc.proxy.rule_stats(rule).unwrap().fired, 1, "every reply was lost once");
    }
    let again = sc.run(&["pipeline", "--exit-code"]);
    assert_eq!(again.code, 0, "converged: {}", again.snapshot());
    let status = sc.args(&["lock", "status", "-o", "json"]).code(0);
    assert_eq!(status.stdout.trim(), "[]", "no lock left behind");
    assert_eq!(string_value(&sc.sm().await, "keep").await, json!({ "k": 2 }));
}

/// `--sync-only` writes targets, so it takes the merge store's lock too: a run holding it keeps
/// it out, and `lock release` needs the holder's id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_only_runs_take_the_lock_and_release_needs_an_id() {
    let sc = Scenario::new().await;
    sc.write("src/app", "v1");
    let bucket = sc.with_s3_merge_store("").await;
    sc.args(&["pipeline", "--merge-only"]).code(0);
    // A run that died holding the lock.
    let s3 = aws::s3(&sc.caller, &sc.s.aws_endpoint).await;
    s3.put_object()
        .bucket(&bucket)
        .key(".secretsync/lock.json")
        .body(
            br#"{"holder":"secretsync on elsewhere, pid 7","run":"dead-run-7","acquired_at":1}"#
                .to_vec()
                .into(),
        )
        .send()
        .await
        .unwrap();
    let before = calls(&sc.proxy);
    let blocked = sc.args(&["pipeline", "--sync-only"]).code(2);
    assert!(
        blocked
            .stdout
            .contains("locked by another run (secretsync on elsewhere, pid 7, run id `dead-run-7`"),
        "{}",
        blocked.stdout
    );
    let made = since(&before, &calls(&sc.proxy));
    assert!(!made.contains_key("CreateSecret"), "nothing written: {made:?}");
    let status = sc.run(&["lock", "status"]);
    assert!(
        status
            .stdout
            .contains("held by secretsync on elsewhere, pid 7, run id `dead-run-7`"),
        "{}",
        status.stdout
    );
    assert_eq!(sc.run(&["lock", "release"]).code, 2, "refused without an id");
    sc.args(&["lock", "release", "--id", "dead-run-7"]).code(0);
    sc.args(&["pipeline", "--sync-only"]).code(0);
}

/// A run renews its lock while it works, so a long run keeps it (S3's `LastModified` of the
/// lock moves on) and a run that died is recognised by a lock that stopped moving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_run_renews_its_lock() {
    use testbed::proxy::Rule;
    let sc = Scenario::new().await;
    sc.write("src/app", "v1");
    let bucket = sc.with_s3_merge_store("").await;
    let lock_writes = sc
        .proxy
        .add_rule(Rule {
            operation: Some("PutObject".into()),
            path: Some(format!("{bucket}/\\.secretsync/lock")),
            ..Rule::default()
        })
        .unwrap();
    sc.slow_creates(3_500);
    sc.args(&["pipeline"]).var("SECRETSYNC_LOCK_RENEW_SECONDS", "1").code(0);
    let writes = sc.proxy.rule_stats(lock_writes).unwrap().matched;
    assert!(
        writes >= 3,
        "taken once and renewed while the write was slow: {writes} lock writes"
    );
    assert_eq!(sc.run(&["lock", "status", "-o", "json"]).stdout.trim(), "[]");
}
