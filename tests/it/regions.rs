//! Multi-region targets on moto: `regions:` syncs one merged result into each region as its
//! own sync unit (its own plan, report line, breaker and rate limits), a failing region leaves
//! the others synced, and regions that drifted apart are shown in the plan.

use serde_json::Value;

use crate::support::aws::{names, secrets_manager_in, tags};
use crate::support::scenario::Scenario;

const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];

async fn names_in(sc: &Scenario, region: &str) -> Vec<String> {
    names(&secrets_manager_in(&sc.caller, &sc.s.aws_endpoint, region).await).await
}

fn target<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no target {name} in {report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_region_is_synced_planned_and_reported_on_its_own() {
    let sc = Scenario::new().await;
    sc.config(", regions: [us-east-1, eu-west-1]", "");
    sc.write("src/app.json", r#"{"k": 1}"#);
    sc.write("src/db.json", r#"{"k": 2}"#);

    let plan = sc.args(&["plan"]).code(0);
    for region in REGIONS {
        assert!(plan.stdout.contains(&format!("App@{region}")), "{}", plan.stdout);
    }
    // The merge happens once per target: a merge-only run reports the target, not its regions.
    let merged = sc.args(&["pipeline", "--merge-only", "-o", "json"]).code(0);
    let merged: Value = serde_json::from_str(&merged.stdout).unwrap();
    let lines: Vec<&str> = merged["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(lines, ["App"], "{merged}");
    sc.args(&["pipeline"]).code(0);
    for region in REGIONS {
        assert_eq!(names_in(&sc, region).await, ["app", "db"], "{region}");
        let sm = secrets_manager_in(&sc.caller, &sc.s.aws_endpoint, region).await;
        assert_eq!(
            tags(&sm, "app").await.get("secretsync:target").map(String::as_str),
            Some("App"),
            "every region is written as the target, whatever its regions"
        );
    }
    let checked = sc.args(&["validate", "--check-aws"]).code(0);
    for region in REGIONS {
        assert!(
            checked.stdout.contains(&format!(
                "✓ target `App@{region}`: account {} {region} ",
                sc.caller.account_id
            )),
            "{}",
            checked.stdout
        );
    }
    let again = sc.args(&["plan", "--exit-code"]).code(0);
    assert!(!again.stdout.contains("differ"), "{}", again.stdout);

    // Drift: `db` removed by hand in one region only.
    secrets_manager_in(&sc.caller, &sc.s.aws_endpoint, "eu-west-1")
        .await
        .delete_secret()
        .secret_id("db")
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    let drift = sc.args(&["plan"]).code(0);
    assert!(
        drift
            .stdout
            .contains("warning: the regions of `App` differ (us-east-1: in sync; eu-west-1: create `db`)"),
        "{}",
        drift.stdout
    );

    // One region failing: the other is still synced, and the run exits 2.
    sc.proxy
        .add_rule(testbed::proxy::Rule {
            service: Some("secretsmanager".to_owned()),
            region: Some("eu-west-1".to_owned()),
            fault: testbed::proxy::Fault {
                status: Some(400),
                code: Some("AccessDeniedException".to_owned()),
                message: Some("not in this region".to_owned()),
                ..testbed::proxy::Fault::default()
            },
            ..testbed::proxy::Rule::default()
        })
        .unwrap();
    sc.write("src/new.json", r#"{"k": 3}"#);
    let out = sc.args(&["pipeline", "-o", "json"]).code(2);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(target(&report, "App@us-east-1")["status"], "ok", "{report}");
    assert_eq!(target(&report, "App@eu-west-1")["status"], "failed", "{report}");
    assert!(
        target(&report, "App@eu-west-1")["error"]
            .as_str()
            .unwrap()
            .contains("not in this region"),
        "{report}"
    );
    assert_eq!(names_in(&sc, "us-east-1").await, ["app", "db", "new"]);
}

/// A `dynamic_targets` group with `regions` gives every discovered account one sync unit per
/// region.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_group_with_regions_syncs_every_discovered_account_in_each() {
    let sc = Scenario::new().await;
    sc.write("src/app.json", r#"{"k": 1}"#);
    sc.write(
        "accounts.yaml",
        format!("- id: \"{}\"\n  name: Data\n", sc.caller.account_id),
    );
    sc.write(
        "config.yaml",
        "sources: { files: { file: { path: ./src } } }\n\
         dynamic_targets:\n\
         \x20 data:\n\
         \x20   discovery: { accounts_list: { source: \"file:accounts.yaml\" } }\n\
         \x20   imports: [files]\n\
         \x20   regions: [us-east-1, eu-west-1]\n\
         pipeline: { discover: true }\n",
    );
    let out = sc.args(&["pipeline", "-o", "json"]).code(0);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    for region in REGIONS {
        assert_eq!(target(&report, &format!("Data@{region}"))["status"], "ok", "{report}");
        assert_eq!(names_in(&sc, region).await, ["app"], "{region}");
    }
}

/// The regions `name` is replicated to, with each replica's status.
async fn replicas_of(sc: &Scenario, name: &str) -> Vec<(String, String)> {
    let sm = secrets_manager_in(&sc.caller, &sc.s.aws_endpoint, "us-east-1").await;
    let out = sm.describe_secret().secret_id(name).send().await.unwrap();
    let mut replicas: Vec<(String, String)> = out
        .replication_status()
        .iter()
        .map(|r| {
            (
                r.region().unwrap().to_owned(),
                r.status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
            )
        })
        .collect();
    replicas.sort();
    replicas
}

/// `replica_regions`: created with the secret, added to existing secrets, reported when not in
/// sync, removed when no longer listed, and removed before a delete (AWS refuses to delete a replicated secret).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_regions_are_created_reported_removed_and_deleted_with_the_secret() {
    let sc = Scenario::new().await;
    // A human's `db` in ap-south-1: replicating our `db` there fails (moto, like AWS, refuses
    // to overwrite it).
    secrets_manager_in(&sc.caller, &sc.s.aws_endpoint, "ap-south-1")
        .await
        .create_secret()
        .name("db")
        .secret_string("theirs")
        .send()
        .await
        .unwrap();
    let config = |replicas: &str| {
        sc.config(
            &format!(", replica_regions: {replicas}"),
            "sync: { delete_orphans: true }",
        );
    };
    config("[eu-west-1, ap-south-1]");
    sc.write("src/app.json", r#"{"k": 1}"#);
    sc.write("src/db.json", r#"{"k": 2}"#);
    sc.args(&["pipeline"]).code(0);
    let both = [
        ("ap-south-1".to_owned(), "InSync".to_owned()),
        ("eu-west-1".to_owned(), "InSync".to_owned()),
    ];
    assert_eq!(replicas_of(&sc, "app").await, both);
    assert_eq!(
        replicas_of(&sc, "db").await,
        [
            ("ap-south-1".to_owned(), "Failed".to_owned()),
            ("eu-west-1".to_owned(), "InSync".to_owned())
        ]
    );
    let plan = sc.args(&["plan", "--exit-code"]).code(0);
    assert!(
        plan.stdout
            .contains("warning: target `App`: the replica of `db` in ap-south-1 is Failed: Replication failed"),
        "{}",
        plan.stdout
    );

    // Removing a replica deletes that copy at once: without `delete_orphans` it is kept.
    sc.config(", replica_regions: [eu-west-1]", "");
    let kept = sc.args(&["plan", "--exit-code"]).code(0);
    assert!(
        kept.stdout
            .contains("the replica of `app` in ap-south-1 is no longer in `replica_regions` but is kept"),
        "{}",
        kept.stdout
    );
    config("[eu-west-1]");
    let plan = sc.args(&["plan", "--exit-code"]).code(1);
    assert!(plan.stdout.contains("replicas differ: -ap-south-1"), "{}", plan.stdout);
    sc.args(&["pipeline"]).code(0);
    assert_eq!(
        replicas_of(&sc, "app").await,
        [("eu-west-1".to_owned(), "InSync".to_owned())]
    );
    assert_eq!(
        replicas_of(&sc, "db").await,
        [("eu-west-1".to_owned(), "InSync".to_owned())]
    );
    sc.args(&["plan", "--exit-code"]).code(0);

    // A region added to the list: existing secrets are replicated there.
    config("[eu-west-1, us-west-2]");
    sc.args(&["pipeline"]).code(0);
    let two = [
        ("eu-west-1".to_owned(), "InSync".to_owned()),
        ("us-west-2".to_owned(), "InSync".to_owned()),
    ];
    assert_eq!(replicas_of(&sc, "app").await, two);
    assert_eq!(replicas_of(&sc, "db").await, two);

    // `db` no longer desired: its replica goes first, then the secret.
    sc.remove("src/db.json");
    sc.args(&["pipeline"]).code(0);
    assert_eq!(names(&sc.sm().await).await, ["app"]);
    assert_eq!(
        names_in(&sc, "eu-west-1").await,
        ["app"],
        "the replica of `db` went with it"
    );
}

/// Region settings that cannot work are config errors where they are written.
#[test]
fn contradictory_region_settings_are_located_config_errors() {
    let test = crate::support::Test::new().pipeline(
        "sources: { s: { file: { path: ./src } } }\n\
         targets:\n\
         \x20 A: { imports: [s], account_id: \"111111111111\", region: us-east-1, regions: [eu-west-1, us-east-2] }\n\
         \x20 B: { imports: [s], account_id: \"111111111111\", regions: [eu-west-1, eu-west-1] }\n\
         \x20 C: { imports: [s], account_id: \"111111111111\", region: us-east-1, replica_regions: [us-east-1] }\n\
         \x20 D: { imports: [s], account_id: \"111111111111\", regions: [eu-west-1, us-east-2], replica_regions: [ap-south-1] }\n\
         \x20 E: { imports: [s], file: { path: ./out }, regions: [eu-west-1] }\n\
         \x20 F: { imports: [s], account_id: \"111111111111\", regions: [] }\n\
         \x20 G: { imports: [s], account_id: \"111111111111\", regions: [us-east-1, eu-west-1], kms_key_id: \"arn:aws:kms:us-east-1:111111111111:key/1\" }\n\
         dynamic_targets:\n\
         \x20 H: { discovery: { accounts_list: { source: \"file:a.yaml\" } }, imports: [s], region: us-east-1, regions: [eu-west-1] }\n",
    );
    let out = test.args(&["validate"]).code(2);
    for expected in [
        "config.yaml:3:58: `targets.A` has both `region` and `regions`",
        "config.yaml:4:71: `targets.B.regions` names `eu-west-1` twice",
        "config.yaml:5:87: `targets.C.replica_regions` names `us-east-1`, where the target itself syncs",
        "`targets.D` has both `regions` and `replica_regions`",
        "`targets.E.regions` applies to AWS targets only",
        "`targets.F.regions` is empty",
        "`targets.G.kms_key_id` is a key in us-east-1, but the target syncs to other regions too",
        "`dynamic_targets.H` has both `region` and `regions`",
    ] {
        assert!(out.stderr.contains(expected), "missing {expected} in\n{}", out.stderr);
    }
}
