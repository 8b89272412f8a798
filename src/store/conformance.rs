//! The store contract as one suite every store passes (memory and file here; Vault against
//! OpenBao in the integration tests; Secrets Manager and S3 when those stores land).
//!
//! It returns an error describing the first broken rule instead of panicking, so that service
//! tests can add context. The store must start empty.

use std::sync::Arc;

use super::{ErrorClass, Owner, WritableStore};
use crate::model::{SecretPath, SecretValue, ValueKind};

fn p(text: &str) -> SecretPath {
    SecretPath::parse(text).expect("suite paths are valid")
}

fn ensure(condition: bool, rule: &str) -> Result<(), String> {
    if condition {
        Ok(())
    } else {
        Err(format!("store contract broken: {rule}"))
    }
}

/// Runs the suite against an empty store.
pub async fn run(store: &dyn WritableStore) -> Result<(), String> {
    let name = store.describe();
    let e = |err: super::StoreError| format!("{name}: unexpected error: {err} ({})", err.class);
    let caps = store.capabilities();

    ensure(
        store.list().await.map_err(e)?.entries.is_empty(),
        "a new store lists nothing",
    )?;
    ensure(
        store.get(&p("missing")).await.map_err(e)?.is_none(),
        "a missing secret is Ok(None)",
    )?;

    let json = SecretValue::from_string(
        r#"{"user":"app","port":5432,"ratio":1.5,"nested":{"list":[1,"two",null,true]}}"#.into(),
    );
    let text = SecretValue::Text("line one\nline two ünïcødé 🔑".into());
    let binary = SecretValue::Binary((0..=255u8).collect());
    if caps.json_only {
        let refused = store.put(&p("certs/tls.pem"), &text, "T").await;
        ensure(
            matches!(&refused, Err(e) if e.class == ErrorClass::Invalid),
            "a JSON-only store refuses a text value as Invalid",
        )?;
        ensure(
            store.get(&p("certs/tls.pem")).await.map_err(e)?.is_none(),
            "a refused value is not written",
        )?;
    }
    // A JSON-only store gets the text cases wrapped in an object.
    let storable = |value: &SecretValue| match value {
        SecretValue::Text(t) if caps.json_only => {
            SecretValue::from_string(serde_json::json!({ "value": t }).to_string())
        }
        other => other.clone(),
    };
    let text = storable(&text);
    let cases = [
        (p("db/main"), json.clone()),
        (p("certs/tls.pem"), text.clone()),
        (p("blobs/all-bytes"), binary.clone()),
        (p("odd names/with spaces/ünï"), storable(&SecretValue::Text("x".into()))),
        (p("deep/a/b/c/d/e/f/g"), json.clone()),
    ];
    // A case the store says it cannot hold (a name it does not allow) must be refused, not
    // stored under another name; the rest of the suite skips it.
    let mut cases: Vec<(SecretPath, SecretValue)> = cases.into_iter().collect();
    let mut refused = Vec::new();
    for (path, value) in &cases {
        if store.check_value(path, value).is_err() && (value.kind() != ValueKind::Binary || caps.binary) {
            let put = store.put(path, value, "T").await;
            ensure(
                matches!(&put, Err(e) if e.class == ErrorClass::Invalid),
                &format!("a value `check_value` refuses (`{path}`) is refused by put as Invalid"),
            )?;
            refused.push(path.clone());
        }
    }
    cases.retain(|(path, _)| !refused.contains(path));
    for (path, value) in &cases {
        if value.kind() == ValueKind::Binary && !caps.binary {
            continue;
        }
        store.put(path, value, "T").await.map_err(e)?;
        let back = store.get(path).await.map_err(e)?;
        ensure(
            back.as_ref()
                .is_some_and(|b| b.semantic_eq(value) && b.kind() == value.kind()),
            &format!("`{path}` reads back as written, same kind"),
        )?;
        store.put(path, value, "T").await.map_err(e)?;
        ensure(
            store.get(path).await.map_err(e)?.is_some_and(|b| b.semantic_eq(value)),
            "put is idempotent",
        )?;
    }

    let listing = store.list().await.map_err(e)?;
    for (path, value) in &cases {
        if value.kind() == ValueKind::Binary && !caps.binary {
            continue;
        }
        let entry = listing
            .entries
            .get(path)
            .ok_or_else(|| format!("store contract broken: `{path}` is listed"))?;
        if caps.ownership {
            ensure(
                entry.owner == Owner::Target("T".into()),
                "the writer is recorded as owner",
            )?;
        }
    }

    let (all_listing, all) = store.read_all().await.map_err(e)?;
    ensure(all_listing == listing, "read_all lists what list lists")?;
    for (path, value) in &all {
        let single = store.get(path).await.map_err(e)?;
        ensure(
            single.is_some_and(|s| s.semantic_eq(value)),
            "read_all values equal get values",
        )?;
    }

    let (read_listing, read) = store.list_and_read(&|_, _| true).await.map_err(e)?;
    let read = read.map_err(e)?;
    ensure(read_listing == listing, "list_and_read lists what list lists")?;
    ensure(
        read.iter().map(|(p, _)| p).eq(listing.entries.keys()),
        "list_and_read reads every wanted secret, in path order",
    )?;
    for (path, value) in &read {
        ensure(
            value
                .as_ref()
                .is_some_and(|v| all.get(path).is_some_and(|a| a.semantic_eq(v))),
            "list_and_read values equal read_all values",
        )?;
    }
    let (_, none) = store.list_and_read(&|_, _| false).await.map_err(e)?;
    ensure(none.map_err(e)?.is_empty(), "list_and_read reads only what is wanted")?;

    let asked = [p("db/main"), p("missing"), p("certs/tls.pem")];
    let many = store.get_many(&asked).await.map_err(e)?;
    ensure(
        many.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>() == asked,
        "get_many answers in the order asked",
    )?;
    ensure(
        many[1].1.is_none() && many[0].1.is_some() && many[2].1.is_some(),
        "get_many reports missing secrets as None",
    )?;

    let updated = SecretValue::from_string(r#"{"user":"app","port":6543}"#.into());
    store.put(&p("db/main"), &updated, "T").await.map_err(e)?;
    ensure(
        store
            .get(&p("db/main"))
            .await
            .map_err(e)?
            .is_some_and(|v| v.semantic_eq(&updated)),
        "an update replaces the value",
    )?;
    if !caps.json_only {
        store.put(&p("db/main"), &text, "T").await.map_err(e)?;
        ensure(
            store
                .get(&p("db/main"))
                .await
                .map_err(e)?
                .is_some_and(|v| v.kind() == ValueKind::Text),
            "a value can change kind",
        )?;
    }

    if caps.ownership {
        let err = store.delete(&p("certs/tls.pem"), "Other").await;
        ensure(
            matches!(&err, Err(e) if e.class == ErrorClass::Conflict),
            "deleting another target's secret is a Conflict",
        )?;
        ensure(
            store.get(&p("certs/tls.pem")).await.map_err(e)?.is_some(),
            "a refused delete deletes nothing",
        )?;
    }
    store.delete(&p("certs/tls.pem"), "T").await.map_err(e)?;
    ensure(
        store.get(&p("certs/tls.pem")).await.map_err(e)?.is_none(),
        "a deleted secret is gone",
    )?;
    let gone = |listing: &super::Listing, path: &SecretPath| match listing.entries.get(path) {
        None => true,
        Some(entry) => caps.soft_delete && entry.pending_deletion,
    };
    ensure(
        gone(&store.list().await.map_err(e)?, &p("certs/tls.pem")),
        "a deleted secret is not listed (or, where deletes are soft, listed as pending deletion)",
    )?;
    store.delete(&p("certs/tls.pem"), "T").await.map_err(e)?;
    store.delete(&p("never-existed"), "T").await.map_err(e)?;

    let shared = Arc::new(json);
    store.put(&p("db/main"), &shared, "T").await.map_err(e)?;
    for (path, _) in &cases {
        store.delete(path, "T").await.map_err(e)?;
    }
    let listing = store.list().await.map_err(e)?;
    ensure(
        listing.entries.keys().all(|path| gone(&listing, path)),
        "deleting everything leaves an empty listing (or only pending deletions)",
    )?;
    if caps.soft_delete && !listing.entries.is_empty() {
        let path = p("db/main");
        store.restore(&path).await.map_err(e)?;
        ensure(
            store.get(&path).await.map_err(e)?.is_some(),
            "a restored secret can be read again",
        )?;
        ensure(
            store
                .list()
                .await
                .map_err(e)?
                .entries
                .get(&path)
                .is_some_and(|m| !m.pending_deletion),
            "a restored secret is listed as live",
        )?;
        store.delete(&path, "T").await.map_err(e)?;
    }
    Ok(())
}

/// The history-record contract every merge store keeps: a record reads back as written, is
/// listed, is never rewritten with other content (another run's record is a `Conflict`), and
/// writing the same record again succeeds (a retry after a lost reply). The store's history
/// must start empty.
pub async fn history_records(merge: &dyn super::MergeStore) -> Result<(), String> {
    let name = merge.describe();
    let e = |err: super::StoreError| format!("{name}: unexpected error: {err} ({})", err.class);
    let record = serde_json::json!({ "revision": 7, "n": 1.5, "nested": { "list": [1, "two", null] } });
    let other = serde_json::json!({ "revision": 7, "n": 2 });
    ensure(
        merge.history_names().await.map_err(e)?.is_empty(),
        "a new history lists nothing",
    )?;
    ensure(
        merge.history_read("00000007").await.map_err(e)?.is_none(),
        "a missing record is Ok(None)",
    )?;
    merge.history_write("00000007", &record).await.map_err(e)?;
    ensure(
        merge.history_read("00000007").await.map_err(e)?.as_ref() == Some(&record),
        "a record reads back as written",
    )?;
    merge.history_write("00000007", &record).await.map_err(e)?;
    match merge.history_write("00000007", &other).await {
        Err(err) if err.class == ErrorClass::Conflict => {}
        Err(err) => {
            return Err(format!(
                "{name}: rewriting a record: {err} ({}), not a conflict",
                err.class
            ));
        }
        Ok(_) => {
            return Err(format!(
                "store contract broken: {name} let a history record be rewritten"
            ));
        }
    }
    ensure(
        merge.history_read("00000007").await.map_err(e)?.as_ref() == Some(&record),
        "a refused rewrite leaves the record as it was",
    )?;
    merge.history_write("00000007@T", &other).await.map_err(e)?;
    let mut listed = merge.history_names().await.map_err(e)?;
    listed.sort();
    ensure(
        listed == ["00000007", "00000007@T"],
        "written records are listed by name",
    )?;
    merge.history_remove("00000007").await.map_err(e)?;
    merge.history_remove("00000007").await.map_err(e)?;
    ensure(
        merge.history_names().await.map_err(e)? == ["00000007@T"],
        "a removed record is no longer listed (removing twice is fine)",
    )?;
    merge.history_write("00000007", &other).await.map_err(e)?;
    ensure(
        merge.history_read("00000007").await.map_err(e)?.as_ref() == Some(&other),
        "a removed record's name can be written again",
    )?;
    Ok(())
}
