//! Discovery on moto, in a private organization per test: nested OUs, 32 accounts, tags, a
//! suspended account, an excluded one, Identity Center assignments and an SSM list; then an
//! end-to-end sync into discovered accounts.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_organizations::types::Tag as OrgTag;
use aws_sdk_ssoadmin::types::{PrincipalType, TargetType};
use serde_json::Value;
use testbed::support::{AwsAccount, Services};

use crate::support::Test;
use crate::support::aws::{self, WRITES, calls, endpoint, sdk_config, since};

/// An organization built for a test.
struct Org {
    caller: AwsAccount,
    /// Account ids by name (`acct-00` …).
    ids: BTreeMap<String, String>,
    prod_ou: String,
    ssm_parameter: String,
}

async fn ou(orgs: &aws_sdk_organizations::Client, parent: &str, name: &str) -> String {
    orgs.create_organizational_unit()
        .parent_id(parent)
        .name(name)
        .send()
        .await
        .unwrap()
        .organizational_unit()
        .unwrap()
        .id()
        .unwrap()
        .to_owned()
}

/// A new organization on moto, managed by a new account: that account, its SDK config and the
/// organization's root.
async fn new_organization(s: &Services) -> (AwsAccount, aws_config::SdkConfig, String) {
    let caller = s.aws_account().await;
    s.aws_organization(&caller).await;
    let config = sdk_config(&caller, &s.aws_endpoint).await;
    let orgs = aws_sdk_organizations::Client::new(&config);
    let root = orgs.list_roots().send().await.unwrap().roots()[0]
        .id()
        .unwrap()
        .to_owned();
    (caller, config, root)
}

/// A new permission set `name` in the Identity Center instance `instance_arn`; its ARN.
async fn permission_set(sso: &aws_sdk_ssoadmin::Client, instance_arn: &str, name: &str) -> String {
    sso.create_permission_set()
        .instance_arn(instance_arn)
        .name(name)
        // moto answers a missing duration with a number where AWS sends text; give one.
        .session_duration("PT1H")
        .send()
        .await
        .unwrap()
        .permission_set()
        .unwrap()
        .permission_set_arn()
        .unwrap()
        .to_owned()
}

/// A new account `name`, moved from the organization's `root` into `parent` when given; its id.
async fn new_account(orgs: &aws_sdk_organizations::Client, root: &str, name: &str, parent: Option<&str>) -> String {
    let created = orgs
        .create_account()
        .account_name(name)
        .email(format!("{name}@example.com"))
        .send()
        .await
        .unwrap();
    let id = created
        .create_account_status()
        .unwrap()
        .account_id()
        .unwrap()
        .to_owned();
    if let Some(parent) = parent {
        orgs.move_account()
            .account_id(&id)
            .source_parent_id(root)
            .destination_parent_id(parent)
            .send()
            .await
            .unwrap();
    }
    id
}

/// Root ─ Workloads ─ Prod ─ Team, Workloads ─ Dev, and Sandbox; accounts spread over them.
async fn organization(s: &Services) -> Org {
    let (caller, config, root) = new_organization(s).await;
    let orgs = aws_sdk_organizations::Client::new(&config);
    let workloads = ou(&orgs, &root, "Workloads").await;
    let prod = ou(&orgs, &workloads, "Prod").await;
    let team = ou(&orgs, &prod, "Team").await;
    let dev = ou(&orgs, &workloads, "Dev").await;
    let sandbox = ou(&orgs, &root, "Sandbox").await;
    let mut ids = BTreeMap::new();
    for i in 0..32 {
        let name = format!("acct-{i:02}");
        let parent = match i {
            0..5 => Some(&team),
            5..10 => Some(&prod),
            10..18 => Some(&dev),
            18..26 => Some(&sandbox),
            _ => None,
        };
        let id = new_account(&orgs, &root, &name, parent.map(String::as_str)).await;
        let env = match i {
            0 | 1 | 2 | 5 | 6 => Some("prod"),
            3 | 7 => Some("PRODUCTION"),
            8 => Some("dev"),
            _ => None,
        };
        if let Some(env) = env {
            orgs.tag_resource()
                .resource_id(&id)
                .tags(OrgTag::builder().key("env").value(env).build().unwrap())
                .send()
                .await
                .unwrap();
        }
        ids.insert(name, id);
    }
    orgs.close_account().account_id(&ids["acct-01"]).send().await.unwrap();

    // Identity Center: a permission set assigned to a user in 10 and 11; a group in 20 and 21.
    let sso = aws_sdk_ssoadmin::Client::new(&config);
    let instance = sso.list_instances().send().await.unwrap().instances()[0].clone();
    let instance_arn = instance.instance_arn().unwrap();
    let data = permission_set(&sso, instance_arn, "DataAccess").await;
    let other = permission_set(&sso, instance_arn, "ReadOnly").await;
    let store = aws_sdk_identitystore::Client::new(&config);
    let group = store
        .create_group()
        .identity_store_id(instance.identity_store_id().unwrap())
        .display_name("Analysts")
        .send()
        .await
        .unwrap()
        .group_id;
    let assignments = [
        ("acct-10", &data, PrincipalType::User, "user-1".to_owned()),
        ("acct-11", &data, PrincipalType::User, "user-2".to_owned()),
        ("acct-12", &other, PrincipalType::User, "user-1".to_owned()),
        ("acct-20", &other, PrincipalType::Group, group.clone()),
        ("acct-21", &data, PrincipalType::Group, group.clone()),
    ];
    for (account, set, kind, principal) in assignments {
        sso.create_account_assignment()
            .instance_arn(instance_arn)
            .target_id(&ids[account])
            .target_type(TargetType::AwsAccount)
            .permission_set_arn(set.as_str())
            .principal_type(kind)
            .principal_id(principal)
            .send()
            .await
            .unwrap();
    }

    let ssm = aws_sdk_ssm::Client::new(&config);
    let ssm_parameter = format!("/secretsync/{}/accounts", caller.account_id);
    ssm.put_parameter()
        .name(&ssm_parameter)
        .value(format!("{},{}", ids["acct-26"], ids["acct-27"]))
        .r#type(aws_sdk_ssm::types::ParameterType::StringList)
        .send()
        .await
        .unwrap();
    Org {
        caller,
        ids,
        prod_ou: prod,
        ssm_parameter,
    }
}

/// Group name → (target names → account ids, skipped account ids → reasons).
type Found = BTreeMap<String, (BTreeMap<String, String>, BTreeMap<String, String>)>;

fn found(json: &str) -> Found {
    let doc: Value = serde_json::from_str(json).unwrap();
    // `[{ key: …, value: … }, …]` as a map.
    let pairs = |list: &Value, key: &str, value: &str| -> BTreeMap<String, String> {
        let text = |item: &Value, field: &str| item[field].as_str().unwrap().to_owned();
        list.as_array()
            .unwrap()
            .iter()
            .map(|item| (text(item, key), text(item, value)))
            .collect()
    };
    doc["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            assert!(g["error"].is_null(), "group failed: {g}");
            let targets = pairs(&g["targets"], "name", "account_id");
            let skipped = pairs(&g["skipped"], "account_id", "reason");
            (g["group"].as_str().unwrap().to_owned(), (targets, skipped))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_finds_exactly_the_expected_accounts() {
    let s = Services::get();
    let org = organization(&s).await;
    let id = |n: u32| org.ids[&format!("acct-{n:02}")].clone();
    let t = Test::new()
        .aws(&org.caller, &s.aws_endpoint)
        .file("src/x.json", r#"{"x": 1}"#)
        .pipeline(format!(
            "sources: {{ files: {{ file: {{ path: ./src }} }} }}\n\
             targets: {{ Local: {{ file: {{ path: ./local }}, imports: [files] }} }}\n\
             dynamic_targets:\n\
             \x20 prod: {{ discovery: {{ organizations: {{ ou: Workloads/Prod, recursive: true, tags: {{ env: [prod, production] }} }} }}, name_template: \"prod-{{{{account_name}}}}\", imports: [files] }}\n\
             \x20 direct: {{ discovery: {{ organizations: {{ ou: {} }} }}, name_template: \"direct-{{{{account_id}}}}\", imports: [files] }}\n\
             \x20 data: {{ discovery: {{ identity_center: {{ permission_set: DataAccess }} }}, name_template: \"data-{{{{account_id}}}}\", imports: [files] }}\n\
             \x20 analysts: {{ discovery: {{ identity_center: {{ group: Analysts }} }}, name_template: \"an-{{{{account_name}}}}\", imports: [files] }}\n\
             \x20 listed: {{ discovery: {{ accounts_list: {{ source: \"ssm:{}\" }} }}, name_template: \"ssm-{{{{account_id}}}}\", imports: [files] }}\n\
             \x20 sandbox: {{ discovery: {{ organizations: {{ ou: Sandbox }} }}, exclude: [\"{}\"], account_name_patterns: [{{ pattern: \"acct-2[0-3]\", target: Local }}], name_template: \"{{{{account_name}}}}\", imports: [files] }}\n",
            org.prod_ou,
            org.ssm_parameter,
            id(18)
        ));
    let out = t.args(&["discover", "-o", "json"]).code(0);
    let found = found(&out.stdout);
    let targets = |group: &str| -> BTreeSet<String> { found[group].0.values().cloned().collect() };
    let ids = |ns: &[u32]| -> BTreeSet<String> { ns.iter().map(|n| id(*n)).collect() };

    assert_eq!(
        targets("prod"),
        ids(&[0, 2, 3, 5, 6, 7]),
        "recursive below Workloads/Prod, env prod/PRODUCTION, active"
    );
    assert_eq!(found["prod"].0["prod-acct-03"], id(3), "named from the account");
    assert!(
        found["prod"].1[&id(1)].starts_with("SUSPENDED"),
        "{:?}",
        found["prod"].1
    );
    assert!(found["prod"].1[&id(8)].contains("tag env is not prod or production (env=dev)"));
    assert!(found["prod"].1[&id(4)].contains("no such tag"));
    assert_eq!(targets("direct"), ids(&[5, 6, 7, 8, 9]), "the OU by id, not below it");
    assert_eq!(
        targets("data"),
        ids(&[10, 11, 21]),
        "every account where DataAccess is assigned"
    );
    assert_eq!(
        targets("analysts"),
        ids(&[20, 21]),
        "where the group has any assignment"
    );
    assert_eq!(
        found["analysts"].0["an-acct-20"],
        id(20),
        "names come from Organizations"
    );
    assert_eq!(targets("listed"), ids(&[26, 27]));
    assert_eq!(targets("sandbox"), ids(&[20, 21, 22, 23]));
    assert_eq!(found["sandbox"].1[&id(18)], "listed in `exclude`");
    assert!(found["sandbox"].1[&id(24)].contains("matches no `account_name_patterns`"));
    assert_eq!(
        found["sandbox"].1.len(),
        4,
        "18 excluded; 19, 24 and 25 match no pattern"
    );

    let text = t.run(&["discover"]);
    assert!(
        text.stdout.contains("prod: 6 targets, 4 accounts skipped"),
        "{}",
        text.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovered_accounts_are_synced_and_a_second_run_writes_nothing() {
    let s = Services::get();
    let (caller, config, root) = new_organization(&s).await;
    let orgs = aws_sdk_organizations::Client::new(&config);
    let apps = ou(&orgs, &root, "Apps").await;
    let mut ids = Vec::new();
    for name in ["payments", "search", "web"] {
        let id = new_account(&orgs, &root, name, Some(&apps)).await;
        ids.push((name, id));
    }
    let proxy = aws::proxy(&s).await;
    let t = Test::new()
        .aws(&caller, &endpoint(&proxy))
        .file("src/db.json", r#"{"user": "app"}"#)
        .file("src/flags.json", r#"{"beta": true}"#)
        .pipeline(
            "sources: { files: { file: { path: ./src } } }\n\
         targets: { Base: { file: { path: ./base }, imports: [files], filter: { exclude: { paths: [db] } } } }\n\
         dynamic_targets:\n\
         \x20 apps:\n\
         \x20   discovery: { organizations: { ou: Apps } }\n\
         \x20   name_template: \"app-{{account_name}}\"\n\
         \x20   imports: [Base]\n\
         \x20   secret_prefix: shared/\n\
         \x20   tags: { owner: platform }\n\
         \x20   filter: { exclude: { paths: [flags] } }\n\
         \x20   account_name_patterns: [{ pattern: search, target: Base }, { pattern: \"payments|web\" }]\n",
        );
    let first = t.args(&["pipeline", "--discover"]).code(0);
    for (name, id) in &ids {
        assert!(
            first.stdout.contains(&format!("app-{name} → aws: {id}")),
            "{}",
            first.stdout
        );
        let account = s.aws_account_with_id(id).await;
        let sm = aws::secrets_manager(&account, &s.aws_endpoint).await;
        let listed = sm.list_secrets().send().await.unwrap();
        let mut names: Vec<&str> = listed.secret_list().iter().filter_map(|x| x.name()).collect();
        names.sort_unstable();
        // The group's filter leaves `flags` out; `search` uses Base's imports and so Base's
        // filter, which leaves `db` out instead.
        let expected = if *name == "search" { "shared/flags" } else { "shared/db" };
        assert_eq!(names, [expected], "account {name} got its secrets, with the prefix");
        let tags = &listed.secret_list()[0].tags();
        assert!(
            tags.iter()
                .any(|t| t.key() == Some("secretsync:target") && t.value() == Some(&format!("app-{name}")))
        );
    }
    let before = calls(&proxy);
    t.args(&["pipeline", "--discover", "--exit-code"]).code(0);
    let made = since(&before, &calls(&proxy));
    let writes: Vec<(&String, &u64)> = made.iter().filter(|(op, _)| WRITES.contains(&op.as_str())).collect();
    assert!(writes.is_empty(), "a second run writes nothing: {writes:?}");
}

/// Identity Center answers only in its home region: a pipeline in another region names it with
/// `identity_center.region`; without it, the error says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_center_discovery_asks_the_instances_home_region() {
    let s = Services::get();
    let (caller, config, root) = new_organization(&s).await;
    let orgs = aws_sdk_organizations::Client::new(&config);
    let account = new_account(&orgs, &root, "eu-data", None).await;
    // The instance in eu-west-1 (the pipeline's region is us-east-1) holds the permission set.
    let eu = config.to_builder().region(aws_config::Region::new("eu-west-1")).build();
    let sso = aws_sdk_ssoadmin::Client::new(&eu);
    let instance = sso.list_instances().send().await.unwrap().instances()[0].clone();
    let instance_arn = instance.instance_arn().unwrap();
    let set = permission_set(&sso, instance_arn, "EuAccess").await;
    sso.create_account_assignment()
        .instance_arn(instance_arn)
        .target_id(&account)
        .target_type(TargetType::AwsAccount)
        .permission_set_arn(&set)
        .principal_type(PrincipalType::User)
        .principal_id("user-1")
        .send()
        .await
        .unwrap();
    let pipeline = |region: &str| {
        format!(
            "sources: {{ files: {{ file: {{ path: ./src }} }} }}\n\
             targets: {{ Local: {{ file: {{ path: ./local }}, imports: [files] }} }}\n\
             dynamic_targets:\n\
             \x20 eu: {{ discovery: {{ identity_center: {{ permission_set: EuAccess{region} }} }}, name_template: \"eu-{{{{account_id}}}}\", imports: [files] }}\n"
        )
    };
    let elsewhere = Test::new()
        .aws(&caller, &s.aws_endpoint)
        .file("src/x.json", r#"{"x": 1}"#)
        .pipeline(pipeline(""));
    let out = elsewhere.args(&["discover"]).output();
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(text.contains("no permission set named `EuAccess`"), "{text}");
    assert!(text.contains("set `discovery.identity_center.region`"), "{text}");

    let home = Test::new()
        .aws(&caller, &s.aws_endpoint)
        .file("src/x.json", r#"{"x": 1}"#)
        .pipeline(pipeline(", region: eu-west-1"));
    let out = home.args(&["discover", "-o", "json"]).code(0);
    let found = found(&out.stdout);
    assert_eq!(
        found["eu"].0,
        BTreeMap::from([(format!("eu-{account}"), account.clone())]),
        "the account where the permission set is assigned, found in the home region"
    );
}
