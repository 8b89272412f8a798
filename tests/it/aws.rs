//! The AWS stores against moto (through the testbed): Secrets Manager as a target and a source,
//! S3 as the merge store, built from a pipeline file the way the binary builds them. Each test
//! works in its own account(s).

use std::sync::Arc;

use secretsync::model::{SecretPath, SecretValue};
use secretsync::store::{ErrorClass, Owner, WritableStore, conformance};
use serde_json::json;
use testbed::support::{AwsAccount, Services};

use crate::support::aws::{self, env_vars};
use crate::support::{built, p};

/// A Secrets Manager target `T` in the caller's account with `fields` (YAML mapping entries).
async fn sm_target(services: &Services, account: &AwsAccount, fields: &str) -> Arc<dyn WritableStore> {
    let yaml = format!(
        "sources: {{ s: {{ file: {{ path: ./unused }} }} }}\n\
         targets: {{ T: {{ imports: [s], account_id: \"{}\"{fields} }} }}\n",
        account.account_id
    );
    let (pipeline, context) = built(&yaml, env_vars(account, &services.aws_endpoint));
    context
        .target(&pipeline.targets["T"], None)
        .await
        .unwrap_or_else(|e| panic!("building the Secrets Manager target failed: {e}"))
}

#[tokio::test]
async fn secrets_manager_target_passes_the_store_contract() {
    let services = Services::get();
    let account = services.aws_account().await;
    let store = sm_target(&services, &account, ", secret_prefix: app/").await;
    let caps = store.capabilities();
    assert!(caps.binary && caps.soft_delete && caps.ownership && !caps.json_only);
    conformance::run(store.as_ref()).await.unwrap();
}

#[tokio::test]
async fn secrets_manager_reports_tag_and_key_drift_and_fixes_it_without_a_new_version() {
    let services = Services::get();
    let account = services.aws_account().await;
    let store = sm_target(&services, &account, ", tags: { env: prod, team: core }").await;
    store
        .put(&p("db"), &SecretValue::from_string(json!({ "k": 1 }).to_string()), "T")
        .await
        .unwrap();
    let listing = store.list().await.unwrap();
    assert_eq!(listing.entries[&p("db")].owner, Owner::Target("T".into()));
    assert_eq!(
        listing.entries[&p("db")].drift,
        None,
        "created in line with the configuration"
    );

    let changed = sm_target(&services, &account, ", tags: { env: staging, owner: me }").await;
    let listing = changed.list().await.unwrap();
    assert_eq!(
        listing.entries[&p("db")].drift.as_deref(),
        Some("tags differ: ~env +owner -team")
    );
    let values = changed.get_many(&[p("db")]).await.unwrap();
    let value = values[0].1.clone().unwrap();
    changed.put(&p("db"), &value, "T").await.unwrap();
    let listing = changed.list().await.unwrap();
    assert_eq!(listing.entries[&p("db")].drift, None, "put brought the tags in line");

    let rekeyed = sm_target(
        &services,
        &account,
        ", tags: { env: staging, owner: me }, kms_key_id: alias/rotated",
    )
    .await;
    let listing = rekeyed.list().await.unwrap();
    let drift = listing.entries[&p("db")].drift.clone().unwrap();
    assert!(
        drift.starts_with("KMS key differs: ") && drift.ends_with("→ alias/rotated"),
        "{drift}"
    );
    let value = rekeyed.get_many(&[p("db")]).await.unwrap()[0].1.clone().unwrap();
    rekeyed.put(&p("db"), &value, "T").await.unwrap();
    let sm = aws::secrets_manager(&account, &services.aws_endpoint).await;
    let described = sm.describe_secret().secret_id("db").send().await.unwrap();
    assert_eq!(described.kms_key_id(), Some("alias/rotated"));
    let versions = sm.list_secret_version_ids().secret_id("db").send().await.unwrap();
    assert_eq!(
        versions.versions().len(),
        1,
        "tags and key were fixed without a new version"
    );
}

async fn s3_merge_store(
    services: &Services,
    account: &AwsAccount,
    bucket: &str,
    extra: &str,
) -> Arc<dyn secretsync::store::MergeStore> {
    s3_merge_store_for(services, account, bucket, extra, None).await
}

/// The S3 merge store as the shard `lock_scope` of a sharded run builds it.
async fn s3_merge_store_for(
    services: &Services,
    account: &AwsAccount,
    bucket: &str,
    extra: &str,
    lock_scope: Option<&str>,
) -> Arc<dyn secretsync::store::MergeStore> {
    let yaml = format!(
        "sources: {{ s: {{ file: {{ path: ./unused }} }} }}\n\
         merge_store: {{ s3: {{ bucket: {bucket}, prefix: merged/{extra} }} }}\n\
         targets: {{ T: {{ imports: [s], file: {{ path: ./out }} }} }}\n"
    );
    let (pipeline, context) = built(&yaml, env_vars(account, &services.aws_endpoint));
    // Boxed: the context and pipeline make this future large for every test that awaits it.
    Box::pin(
        context
            .with_lock_scope(lock_scope.map(str::to_owned))
            .merge_store(pipeline.merge_store.as_ref().unwrap()),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn s3_merge_scopes_pass_the_store_contract_and_keep_kinds_exact() {
    let services = Services::get();
    let account = services.aws_account().await;
    let bucket = aws::bucket(&services, &account).await;
    let merge = s3_merge_store(&services, &account, &bucket, "").await;
    conformance::run(merge.for_target("T").as_ref()).await.unwrap();
    conformance::history_records(merge.as_ref()).await.unwrap();
    let scope = merge.for_target("Staging");

    assert!(!merge.has_result("Staging").await.unwrap());
    let binary = SecretValue::Binary(vec![0, 159, 146, 150, 255]);
    scope.put(&p("certs/key.der"), &binary, "Staging").await.unwrap();
    merge.commit("Staging").await.unwrap();
    assert!(merge.has_result("Staging").await.unwrap());
    let listed = crate::support::listed(scope.as_ref()).await;
    assert_eq!(listed, ["certs/key.der"], "markers live outside the target's folder");
    let back = scope.get(&p("certs/key.der")).await.unwrap().unwrap();
    assert!(matches!(&back, SecretValue::Binary(b) if b == &[0, 159, 146, 150, 255]));

    let s3 = aws::s3(&account, &services.aws_endpoint).await;
    let object = s3
        .head_object()
        .bucket(&bucket)
        .key("merged/Staging/certs/key.der.json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        object
            .metadata()
            .and_then(|m| m.get("secretsync-kind"))
            .map(String::as_str),
        Some("binary")
    );
    merge.begin("Staging").await.unwrap();
    assert!(!merge.has_result("Staging").await.unwrap());
}

#[tokio::test]
async fn s3_writes_are_conditional_and_the_run_lock_names_its_holder() {
    let services = Services::get();
    let account = services.aws_account().await;
    let bucket = aws::bucket(&services, &account).await;
    let merge = s3_merge_store(&services, &account, &bucket, "").await;
    let scope = merge.for_target("Prod");
    scope
        .put(&p("db"), &SecretValue::Text("one".into()), "Prod")
        .await
        .unwrap();
    scope.list().await.unwrap();

    // Another run replaces the object after this one read it.
    let other = s3_merge_store(&services, &account, &bucket, "")
        .await
        .for_target("Prod");
    other.list().await.unwrap();
    other
        .put(&p("db"), &SecretValue::Text("two".into()), "Prod")
        .await
        .unwrap();
    let err = scope
        .put(&p("db"), &SecretValue::Text("three".into()), "Prod")
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Conflict, "{err}");
    assert!(matches!(scope.get(&p("db")).await.unwrap(), Some(SecretValue::Text(t)) if t == "two"));

    merge.lock().await.unwrap();
    let second = s3_merge_store(&services, &account, &bucket, "").await;
    let err = second.lock().await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Conflict);
    assert!(
        err.to_string().contains("locked by another run (secretsync on"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&format!("s3://{bucket}/merged/.secretsync/lock.json")),
        "{err}"
    );
    second.unlock().await.unwrap();
    assert!(
        second.lock().await.is_err(),
        "unlock by a run that does not hold the lock leaves it"
    );
    merge.unlock().await.unwrap();
    second.lock().await.unwrap();
    second.unlock().await.unwrap();

    // The shards of a sharded run write disjoint targets: each locks its own shard, so they
    // run side by side, while a second run of the same shard is kept out.
    let shard0 = s3_merge_store_for(&services, &account, &bucket, "", Some("shard-0-of-2")).await;
    let shard1 = s3_merge_store_for(&services, &account, &bucket, "", Some("shard-1-of-2")).await;
    let shard0_again = s3_merge_store_for(&services, &account, &bucket, "", Some("shard-0-of-2")).await;
    shard0.lock().await.unwrap();
    shard1.lock().await.unwrap();
    let err = shard0_again.lock().await.unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("s3://{bucket}/merged/.secretsync/lock-shard-0-of-2.json")),
        "{err}"
    );
    // An unsharded run and shards of another count exclude each other, whichever came first.
    let whole = s3_merge_store(&services, &account, &bucket, "").await;
    let err = whole.lock().await.unwrap_err();
    assert!(err.to_string().contains("lock-shard-"), "{err}");
    let other_count = s3_merge_store_for(&services, &account, &bucket, "", Some("shard-0-of-3")).await;
    assert!(other_count.lock().await.is_err(), "shards of another count");
    shard0.unlock().await.unwrap();
    shard1.unlock().await.unwrap();
    whole.lock().await.unwrap();
    let err = shard0_again.lock().await.unwrap_err();
    assert!(err.to_string().contains("lock.json"), "{err}");
    let left: Vec<String> = whole
        .locks()
        .await
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|l| l.key)
        .collect();
    assert_eq!(
        left,
        [format!("s3://{bucket}/merged/.secretsync/lock.json")],
        "losers gave their lock back"
    );
    whole.unlock().await.unwrap();
    assert!(whole.locks().await.unwrap().unwrap().is_empty());
}

/// A lock whose run died is shown by `lock status` and broken by its id only; a lock write
/// whose reply was lost is recognised as the run's own on retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_runs_lock_is_shown_and_released_by_id_and_a_lost_lock_reply_is_ours() {
    use testbed::proxy::Rule;
    let services = Services::get();
    let account = services.aws_account().await;
    let bucket = aws::bucket(&services, &account).await;
    let dead = s3_merge_store(&services, &account, &bucket, "").await;
    dead.lock().await.unwrap();
    let locks = dead.locks().await.unwrap().unwrap();
    assert_eq!(locks.len(), 1);
    let run = locks[0].run.clone();
    assert!(
        locks[0].holder.starts_with("secretsync on ") && !locks[0].stale,
        "{locks:?}"
    );
    std::mem::forget(dead); // the run dies: its lock stays

    let next = s3_merge_store(&services, &account, &bucket, "").await;
    let err = next.lock().await.unwrap_err();
    assert!(
        err.hint
            .as_deref()
            .is_some_and(|h| h.contains(&format!("secretsync lock release --id {run}"))),
        "{err:?}"
    );
    assert_eq!(
        next.release_lock("not-a-run").await.unwrap_err().class,
        ErrorClass::NotFound
    );
    assert_eq!(next.release_lock(&run).await.unwrap().run, run);

    // Through the proxy, the first lock write is applied but its reply lost: the retry finds
    // the run's own lock and goes on.
    let lost = services
        .aws_faults()
        .add(&Rule::lose_one_reply(
            Some("PutObject"),
            Some(format!("{bucket}/merged/\\.secretsync/lock\\.json")),
        ))
        .await;
    let yaml = format!(
        "sources: {{ s: {{ file: {{ path: ./unused }} }} }}\n\
         merge_store: {{ s3: {{ bucket: {bucket}, prefix: merged/ }} }}\n\
         targets: {{ T: {{ imports: [s], file: {{ path: ./out }} }} }}\n"
    );
    let (pipeline, context) = built(&yaml, env_vars(&account, &services.aws_proxy));
    let through_proxy = context
        .merge_store(pipeline.merge_store.as_ref().unwrap())
        .await
        .unwrap();
    through_proxy.lock().await.unwrap();
    assert_eq!(lost.stats().await.fired, 1, "the reply was dropped");
    through_proxy.unlock().await.unwrap();
    assert!(
        through_proxy.locks().await.unwrap().unwrap().is_empty(),
        "no lock left behind"
    );
}

#[tokio::test]
async fn secrets_manager_sources_filter_by_prefix_and_tags_and_skip_deleted_secrets() {
    let services = Services::get();
    let account = services.aws_account().await;
    let sm = aws::secrets_manager(&account, &services.aws_endpoint).await;
    let tag = |k: &str, v: &str| aws_sdk_secretsmanager::types::Tag::builder().key(k).value(v).build();
    sm.create_secret()
        .name("legacy/db")
        .secret_string(r#"{"u":"a"}"#)
        .tags(tag("team", "data"))
        .send()
        .await
        .unwrap();
    sm.create_secret()
        .name("legacy/cert")
        .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(vec![1, 2, 255]))
        .tags(tag("team", "data"))
        .send()
        .await
        .unwrap();
    sm.create_secret()
        .name("legacy/other-team")
        .secret_string("x")
        .tags(tag("team", "web"))
        .send()
        .await
        .unwrap();
    sm.create_secret()
        .name("LEGACY/case")
        .secret_string("x")
        .tags(tag("team", "data"))
        .send()
        .await
        .unwrap();
    sm.create_secret()
        .name("legacy/gone")
        .secret_string("x")
        .tags(tag("team", "data"))
        .send()
        .await
        .unwrap();
    sm.delete_secret()
        .secret_id("legacy/gone")
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();

    let yaml = format!(
        "sources: {{ legacy: {{ aws: {{ account_id: \"{}\", prefix: legacy/, tags: {{ team: data }} }} }} }}\n\
         targets: {{ T: {{ imports: [legacy], file: {{ path: ./out }} }} }}\n",
        account.account_id
    );
    let (pipeline, context) = built(&yaml, env_vars(&account, &services.aws_endpoint));
    let source = context.source(&pipeline.sources["legacy"], false).await.unwrap();
    let (_, set) = source.read_all().await.unwrap();
    let names: Vec<String> = set.keys().map(ToString::to_string).collect();
    assert_eq!(
        names,
        ["cert", "db"],
        "prefix removed, tag filter applied, case kept, deleted skipped"
    );
    assert!(matches!(set[&p("cert")].as_ref(), SecretValue::Binary(b) if b == &[1, 2, 255]));
    assert!(matches!(set[&p("db")].as_ref(), SecretValue::Json(_)));
}

#[tokio::test]
async fn secrets_manager_reads_a_pages_values_while_the_next_page_is_listed() {
    use testbed::proxy::Rule;
    let services = Services::get();
    let account = services.aws_account().await;
    let prefix = format!("overlap-{}/", account.account_id);
    let sm = aws::secrets_manager(&account, &services.aws_endpoint).await;
    for i in 0..120 {
        sm.create_secret()
            .name(format!("{prefix}s{i:03}"))
            .secret_string(format!(r#"{{"n":{i}}}"#))
            .send()
            .await
            .unwrap();
    }
    // The second ListSecrets page is answered only once a value was read: a store that lists
    // everything before reading gets a 504 there instead.
    let value_read = services
        .aws_faults()
        .add(&Rule {
            operation: Some("BatchGetSecretValue".into()),
            body: Some(prefix.clone()),
            ..Rule::default()
        })
        .await;
    let listing_rule = Rule {
        operation: Some("ListSecrets".into()),
        body: Some(format!("(?s)NextToken.*{prefix}|{prefix}.*NextToken")),
        ..Rule::default()
    };
    let second_page = services.aws_faults().add_held(listing_rule, &value_read, 5_000).await;
    let yaml = format!(
        "sources: {{ s: {{ file: {{ path: ./unused }} }} }}\n\
         targets: {{ T: {{ imports: [s], account_id: \"{}\", secret_prefix: {prefix} }} }}\n",
        account.account_id
    );
    let (pipeline, context) = built(&yaml, env_vars(&account, &services.aws_proxy));
    let store = context.target(&pipeline.targets["T"], None).await.unwrap();
    let (listing, values) = store.list_and_read(&|_, _| true).await.unwrap();
    let values = values.unwrap();
    assert_eq!(listing.entries.len(), 120);
    assert_eq!(values.len(), 120);
    let (path, value) = &values[7];
    assert_eq!(path.as_str(), "s007", "values come back in path order");
    let Some(SecretValue::Json(read)) = value.as_deref() else {
        panic!("a JSON object string reads as a JSON secret")
    };
    assert_eq!(read["n"], 7);
    assert!(values.iter().all(|(_, v)| v.is_some()));
    assert_eq!(second_page.stats().await.fired, 1, "two pages: the second was held");
    assert_eq!(value_read.stats().await.matched, 6, "120 values in batches of 20");

    // Only what `wanted` picks is read.
    let (_, none) = store.list_and_read(&|_, _| false).await.unwrap();
    assert!(none.unwrap().is_empty());
    assert_eq!(value_read.stats().await.matched, 6);
}

/// `x//db` is not the secret path `x/db`: a source reports it instead of reading `a/b` twice
/// (merging the two) or not at all, and a target leaves it alone.
#[tokio::test]
async fn a_source_name_that_is_not_a_secret_path_is_reported_never_renamed() {
    let services = Services::get();
    let account = services.aws_account().await;
    let sm = aws::secrets_manager(&account, &services.aws_endpoint).await;
    for (name, value) in [("app/x//db", "double"), ("app/x/db", "single")] {
        sm.create_secret().name(name).secret_string(value).send().await.unwrap();
    }
    let yaml = format!(
        "sources: {{ s: {{ aws: {{ account_id: \"{}\", prefix: app/ }} }} }}\n\
         targets: {{ T: {{ imports: [s], account_id: \"{}\", secret_prefix: app/ }} }}\n",
        account.account_id, account.account_id
    );
    let (pipeline, context) = built(&yaml, env_vars(&account, &services.aws_endpoint));
    let source = context.source(&pipeline.sources["s"], false).await.unwrap();
    let err = source.read_all().await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Invalid);
    assert!(
        err.message
            .contains("the secret `app/x//db` is not a valid secret path")
            && err.message.contains("would be read as `x/db`"),
        "{err}"
    );
    assert!(!err.message.contains("double") && !err.message.contains("single"));
    let target = context.target(&pipeline.targets["T"], None).await.unwrap();
    let listing = target.list().await.unwrap();
    let names: Vec<&str> = listing.entries.keys().map(SecretPath::as_str).collect();
    assert_eq!(names, ["x/db"], "the target lists `app/x/db` only");

    // A JSON string a reader would change is refused, not read with one key dropped.
    sm.delete_secret()
        .secret_id("app/x//db")
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    sm.put_secret_value()
        .secret_id("app/x/db")
        .secret_string(r#"{"password": "first", "password": "second"}"#)
        .send()
        .await
        .unwrap();
    let err = source.read_all().await.unwrap_err();
    assert!(
        err.message
            .contains("the secret `app/x/db`: the JSON object has the key `password` twice"),
        "{err}"
    );
    assert!(!err.message.contains("first") && !err.message.contains("second"));
}
